/*
 * What the task modules share (internal to src/task/):
 *   task.c          settings, start and stop, the event worker's API
 *                   (task, taskwait, taskwait_multi, on_finish, on_task_error)
 *   payload.c       how a payload travels: inline, in a block of the spill
 *                   file, or in a file of its own
 *   queue.c         how a message reaches a task worker: its socketpair
 *                   (task_ipc_mode 1) or the SysV message queue (2, 3)
 *   worker.c        the task worker's loop, task_finish, and what the
 *                   manager does when a task worker dies (on_task_error or
 *                   redelivery)
 */
#ifndef SWOOP_TASK_INTERNAL_H
#define SWOOP_TASK_INTERNAL_H

#include <assert.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/idmap.h"
#include "base/queue.h"
#include "ipc/channel.h"
#include "ipc/msg.h"
#include "ipc/msgqueue.h"
#include "ipc/spill.h"
#include "server/internal.h"

#define TASK_PREFIX "swoop-task."
/* The mark of a private queue: "swoop-msq.<pid>.<id>.<ctime>" (task_queue_mark). */
#define TASK_MARK_PREFIX "swoop-msq."

/* TASK aux: bit 0 the poster blocks in taskwait; bits 8..15 the attempt - 1 (redelivery). */
#define TASK_AUX_WAIT          1u
#define TASK_AUX_ATTEMPT_SHIFT 8
#define TASK_AUX_ATTEMPT_MASK  0xff00u
/*

 * TASK aux: its payload was counted in its poster's pending bytes
 * (task_max_pending_bytes) under epoch bits 16..31; the task worker that
 * takes it gives the bytes back. A task delivered again was counted once:
 * redelivery clears the bit.
 */
#define TASK_AUX_COUNTED     0x10u
#define TASK_AUX_EPOCH_SHIFT 16
/* FINISH aux: the task has no result; the payload is the int32 error code. */
#define TASK_AUX_ERROR 2u

/* msg_id of every TASK message: a message in the queue without it is not ours. */
#define TASK_MAGIC 0x53575441534b3031ull /* "SWTASK01" */

/*
 * TASK messages carry the low 16 bits of the server run's random id in
 * reactor_id (unused for tasks): a queue with a fixed key can hand a task
 * to a later run, whose workers never posted it (a tag that matches by
 * chance, 1 in 65,536, still names a task id no live taskwait waits for:
 * ids start from the wall clock).
 *
 * port_id carries the taskwait channel the result goes to (with
 * TASK_AUX_WAIT): the worker id in PROCESS mode, where one process of an id
 * runs at a time; in BASE mode the poster's session range, because an old
 * process of the id drains (and may wait for a task) while its successor
 * runs.
 */
static inline void task_tag_set(swoop_ipc_head_t *h, uint64_t run_id)
{
    h->reactor_id = (int16_t)(uint16_t)(run_id & 0xffff);
}

static inline int task_tag_ours(const swoop_ipc_head_t *h, uint64_t run_id)
{
    return (uint16_t)h->reactor_id == (uint16_t)(run_id & 0xffff);
}

/* The taskwait channel a TASK message names. */
static inline int task_reply(const swoop_ipc_head_t *h)
{
    return h->port_id;
}

/* Path of a file-borne payload: "<tmpdir>/swoop-task.<pid>.XXXXXX". */
#define TASK_PATH_MAX (SWOOP_SERVER_PATH_MAX + 72)

/* The largest TASK or FINISH message: header, then at most the inline payload. */
#define TASK_MSG_MAX (sizeof(swoop_ipc_head_t) + SWOOP_TASK_INLINE_MAX)

/* Per task worker id, in shared memory: one cache line each. */
typedef struct task_slot_s {
    _Alignas(64) _Atomic int32_t busy; /* its processes in on_task (a reload runs two at once) */
    _Atomic int32_t queued;            /* mode 2: posted to it, not yet taken */
    _Atomic uint64_t done;             /* tasks run by this id (all its processes) */
    char pad_[48];
} task_slot_t;

static_assert(sizeof(task_slot_t) == 64, "one cache line per task worker");

/*
 * What one task worker process is running, keyed by its pid: after a
 * reload (reload_async) or a task_max_request retirement the old and the
 * new process of one id run side by side, so the record cannot be the id's.
 * The process claims a free record at start and is its only writer; the
 * manager reads it after waitpid() (which orders the dead writer's stores
 * before) and frees it.
 */
typedef struct task_run_s {
    _Alignas(64) _Atomic int32_t pid; /* 0: free */
    int32_t slot;
    int32_t src;            /* the poster, -1 for a task of another run */
    int32_t wait;           /* the poster waits in taskwait */
    int32_t reply;          /* then: its taskwait channel */
    int32_t in_task;        /* in on_task: counted in its slot's busy and the stats */
    int32_t finished;       /* its result was sent: nothing to redeliver or report */
    _Atomic int32_t active; /* runs a task it took (run_task): swoop__task_quiet looks here */
    uint32_t len;           /* bytes of msg */
    _Atomic int64_t task;   /* the task taken, 0 between tasks; stored last */
    char msg[TASK_MSG_MAX]; /* the message as it came (header, inline payload or reference) */
} task_run_t;

typedef struct task_shared_s {
    _Atomic uint64_t task_seq;
    _Atomic uint32_t rr;
    char pad_[52];
    task_slot_t slots[];
    /*
     * then nruns task_run_t, then worker_num pending words
     * (task_pending_word), then nwaits unsent counts (task_unsent_word)
     */
} task_shared_t;

/*
 * Pending payload bytes per event worker id: the epoch in bits 48..63, the
 * bytes below. The poster adds, the task worker that takes a message
 * subtracts if the epoch is still the message's, and the manager, when it
 * reaps a process of that id, zeroes the bytes and bumps the epoch: what a
 * dead process had counted (tasks it never sent among them) is given back
 * at once, and the later takes of its messages find another epoch and
 * subtract nothing. (A successor that overlaps the dying process in a
 * reload loses its own count at that reap: the cap is exceeded for a
 * while, never stuck.)
 */
#define TASK_PENDING_BITS 48
#define TASK_PENDING_MASK ((1ull << TASK_PENDING_BITS) - 1)

/* The payload of a TMPFILE message: the length, then the path (with its NUL). */
typedef struct task_tmpfile_s {
    uint64_t length;
} task_tmpfile_t;

/* A payload packed for sending: header flags, and the pieces that follow the header. */
typedef struct task_out_s {
    const void *p1, *p2;
    size_t l1, l2;
    union {
        task_tmpfile_t tf;
        swoop_spill_ref_t ref;
    } u;
    char path[TASK_PATH_MAX];
} task_out_t;

/* A received payload: the bytes, and what holds them until task_payload_done. */
typedef struct task_in_s {
    const char *data;
    size_t len;
    char *owned;           /* a copy read from a file */
    swoop_spill_ref_t ref; /* a claimed spill block (ref.len > 0 when held) */
    int spilled;
    char path[TASK_PATH_MAX]; /* the file it came in ("" when none) */
    int keep_file;            /* the file is removed by task_payload_done, not at once */
} task_in_t;

/*
 * A message the socket or queue did not take yet: an event worker's task
 * (modes 2, 3), or a task the manager delivers again (every mode).
 */
typedef struct task_pending_s {
    swoop_queue_t node;
    int t; /* the task worker it is for */
    size_t len;
    long mtype; /* right before msg: what msgsnd takes */
    char msg[]; /* header and payload */
} task_pending_t;

typedef struct swoop_task_s {
    int num;
    int mode;    /* task_ipc_mode */
    pid_t owner; /* the process that opened it (master; BASE: manager) */
    char prefix[SWOOP_SERVER_PATH_MAX + 64]; /* "<tmpdir>/swoop-task.<owner>." */
    int redeliver;                           /* task_redeliver */
    int64_t big;                             /* package_max_length: larger tasks log a warning */
    size_t inline_max; /* SWOOP_TASK_INLINE_MAX, less when kernel.msgmax is smaller */
    task_shared_t *sh;
    size_t sh_size;
    swoop_spill_t *spill;   /* NULL: every payload above the inline size gets its own file */
    uint64_t run_id;        /* random, per server run: tags TASK messages and spill references */
    int nruns;              /* task_run_t records */
    swoop_channel_t *chans; /* mode 1: [t] event workers -> task worker t */
    swoop_msgqueue_t mq;    /* modes 2, 3 */
    swoop_channel_t *waits; /* [i]: task workers -> taskwait channel i (task_reply) */
    int nwaits;
    char *wbuf;           /* taskwait's receive buffer */
    uint64_t warn_ms;     /* when "no idle task worker" was last logged */
    int64_t max_pending;  /* task_max_pending_bytes, 0 none */
    int nposters;         /* event workers: pending words */
    uint64_t cap_warn_ms; /* when the cap refusal was last logged */
    /* Event worker side (made at the first post). */
    swoop_ipc_out_t *outs; /* mode 1 */
    swoop_io_t *out_io;
    swoop_queue_t pending; /* modes 2, 3: task_pending_t, oldest first */
    size_t npending;
    int64_t retry_timer;
    int waits_watched; /* the taskwait channel drains late results in the loop */
    swoop_io_t wait_io;
    /* taskwaits parked in coroutines, by task id (co_taskwait_t) */
    swoop_idmap_t co_waits;
    int co_waits_ready;
    /* Task worker side. */
    int in_task_worker;
    int slot;
    task_run_t *run;  /* its record, NULL when none was free */
    int64_t cur_task; /* the task whose on_task runs, 0 outside */
    int cur_src;
    int cur_wait;  /* the current task's poster waits in taskwait */
    int cur_reply; /* on that channel */
    int cur_attempt;
    int finished;
    const char *cur_path; /* the current task's file, NULL if none */
} swoop_task_t;

static inline task_slot_t *task_slot(swoop_task_t *tk, int t)
{
    return &tk->sh->slots[t];
}

static inline task_run_t *task_run(swoop_task_t *tk, int i)
{
    return (task_run_t *)(tk->sh->slots + tk->num) + i;
}

static inline _Atomic uint64_t *task_pending_word(swoop_task_t *tk, int w)
{
    return (_Atomic uint64_t *)task_run(tk, tk->nruns) + w;
}

/*
 * Tasks counted in `posted` that poster slot i (its taskwait channel: the
 * worker id, or the BASE range) still holds in its memory, not yet sent:
 * published by the poster after each post and loop iteration, given back
 * (subtracted from `posted`) by the manager when the poster dies, so a
 * dead poster's unsent tasks do not keep shutdown waiting for them.
 */
static inline _Atomic int64_t *task_unsent_word(swoop_task_t *tk, int i)
{
    return (_Atomic int64_t *)task_pending_word(tk, tk->nposters) + i;
}

/* ---- task.c ---- */

/*
 * A taken TASK message (or one that will never be taken): gives its
 * payload's bytes back to its poster's pending count, if it was counted
 * under the current epoch.
 */
void task_pending_release(swoop_task_t *tk, const swoop_ipc_head_t *h, const char *payload,
                          size_t plen);
/* Manager: a process of event worker `w` was reaped; its pending count starts over. */
void task_pending_reset(swoop_task_t *tk, int w);

/* ---- payload.c ---- */

/*
 * Packs `data` into `h` (flags) and `out`: inline, a spill block or a file.
 * 0 or an error (logged).
 */
int task_payload_pack(swoop_task_t *tk, swoop_ipc_head_t *h, const void *data, size_t len,
                      task_out_t *out);
/* Undoes a pack whose message was never sent (frees the block, removes the file). */
void task_payload_discard(swoop_task_t *tk, const swoop_ipc_head_t *h, task_out_t *out);
/*
 * Takes the payload of a received message. With `keep_file` a file stays
 * until task_payload_done (redelivery needs it). 0 or an error (logged).
 */
int task_payload_take(swoop_task_t *tk, const swoop_ipc_head_t *h, const char *payload, size_t plen,
                      int keep_file, task_in_t *in);
/* The payload length a TASK or FINISH message declares (its file's, its block's), or 0. */
uint64_t task_payload_len(const swoop_ipc_head_t *h, const char *payload, size_t plen);
/* Releases what task_payload_take holds. */
void task_payload_done(swoop_task_t *tk, task_in_t *in);
/*
 * A TASK or FINISH message that will never be read (its process exits with
 * it unsent, its sender gave up): frees its spill block if still queued,
 * removes its file.
 */
void task_payload_drop(swoop_task_t *tk, const char *msg, size_t len);
/* A copy of the payload (malloc'd, never NULL), then task_payload_done. */
void *task_payload_copy(swoop_task_t *tk, task_in_t *in);
/*
 * Removes this server's files left in task_tmpdir, or with `dead` those of
 * servers whose process is gone (SIGKILLed before their own sweep); returns
 * how many.
 */
int task_payload_sweep(swoop_server_t *srv, int dead);
/*
 * Marks private queue `id` as this server's: an empty file
 * "swoop-msq.<pid>.<id>.<ctime>" in task_tmpdir. The next server's sweep
 * removes the queue once this one is dead (SIGKILLed before its own
 * cleanup), the file with it. 0 or an error (logged).
 */
int task_queue_mark(swoop_server_t *srv, int id);

/* ---- queue.c ---- */
/* Event worker: tasks it holds unsent (queued in its memory). */
int64_t task_queue_unsent(swoop_task_t *tk);

/* Start: the channels or the queue. 0 or an error (logged). */
int task_queue_open(swoop_server_t *srv);
/* Closes them; the process that opened a private queue removes it. */
void task_queue_close(swoop_server_t *srv);
/* Event worker: 1 when task worker t looks idle (nothing queued for it, not in on_task). */
int task_queue_idle(swoop_server_t *srv, int t);
/*
 * Event worker: sends one TASK message to task worker t (mode 3: to any).
 * Never blocks: 0 sent, 1 queued in this process, or an error (logged).
 */
int task_queue_post(swoop_server_t *srv, int t, const swoop_ipc_head_t *h, const task_out_t *o);
/* Event worker: sends what waits in this process; 1 while some still waits, else 0. */
int task_queue_flush(swoop_server_t *srv);
/* Event worker: fds to poll (POLLOUT) while tasks wait in this process; returns how many. */
int task_queue_pollfds(swoop_server_t *srv, struct pollfd *pf, int cap);
/*
 * Task worker t: the next message into buf (cap >= SWOOP_IPC_MAX). Blocks
 * with `waitmask` (signals open only while waiting). Returns its length, or
 * SWOOP_EINTR after a signal, or another error (logged).
 */
ssize_t task_queue_recv(swoop_server_t *srv, int t, char *buf, size_t cap,
                        const sigset_t *waitmask);
/* Task worker t: the reads it needs after fork; closes the rest. */
void task_queue_child(swoop_server_t *srv, int t);
/*
 * Manager: sends a whole message to task worker t (mode 3: any) without
 * blocking: 0 sent, 1 queued here and retried by a 1 ms timer, or an error
 * (logged).
 */
int task_queue_resend(swoop_server_t *srv, int t, const void *msg, size_t len);
/* An exiting event worker or manager: drops (task_payload_drop) what it never sent. */
void task_queue_drop_unsent(swoop_server_t *srv);
/* Task worker: a signal handler calls this; a recv blocked in msgrcv returns SWOOP_EINTR. */
void task_queue_interrupt(void);

#endif /* SWOOP_TASK_INTERNAL_H */
