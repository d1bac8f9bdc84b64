/*
 * What the task modules share (internal to src/server/task*.c):
 *   task.c          settings, start and stop, the event worker's API
 *                   (task, taskwait, taskwait_multi, on_finish, on_task_error)
 *   task_payload.c  how a payload travels: inline, in a block of the spill
 *                   file, or in a file of its own
 *   task_queue.c    how a message reaches a task worker: its socketpair
 *                   (task_ipc_mode 1) or the SysV message queue (2, 3)
 *   task_worker.c   the task worker's loop, task_finish, and what the
 *                   manager does when a task worker dies (on_task_error or
 *                   redelivery)
 */
#ifndef SWOOP_SERVER_TASK_IMPL_H
#define SWOOP_SERVER_TASK_IMPL_H

#include <assert.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/queue.h"
#include "ipc/channel.h"
#include "ipc/msg.h"
#include "ipc/msgqueue.h"
#include "ipc/spill.h"
#include "server/internal.h"

#define TASK_PREFIX "swoop-task."

/* TASK aux: bit 0 the poster blocks in taskwait; bits 8..15 the attempt - 1 (redelivery). */
#define TASK_AUX_WAIT          1u
#define TASK_AUX_ATTEMPT_SHIFT 8
#define TASK_AUX_ATTEMPT_MASK  0xff00u
/* FINISH aux: the task has no result; the payload is the int32 error code. */
#define TASK_AUX_ERROR 2u

/* msg_id of every TASK message: a message in the queue without it is not ours. */
#define TASK_MAGIC 0x53575441534b3031ull /* "SWTASK01" */

/* Path of a file-borne payload: "<tmpdir>/swoop-task.<pid>.XXXXXX". */
#define TASK_PATH_MAX (SWOOP_SERVER_PATH_MAX + 72)

/* The largest TASK or FINISH message: header, then at most the inline payload. */
#define TASK_MSG_MAX (sizeof(swoop_ipc_head_t) + SWOOP_TASK_INLINE_MAX)

/* Per task worker, in shared memory: one cache line each. */
typedef struct task_slot_s {
    _Alignas(64) _Atomic int32_t busy; /* in on_task (reset when a process starts) */
    _Atomic int32_t cur_src;           /* the running task's poster */
    _Atomic uint64_t done;             /* tasks run by this slot (all its processes) */
    _Atomic int64_t cur_task;          /* the task in on_task, 0 if none */
    _Atomic int32_t cur_wait;          /* its poster waits in taskwait */
    _Atomic int32_t cur_pid;           /* the process running it */
    _Atomic int32_t queued;            /* posted to this slot, not yet taken (modes 1, 2) */
    _Atomic uint32_t cur_len;          /* redelivery: bytes of the message in `saved` */
    char pad_[24];
} task_slot_t;

static_assert(sizeof(task_slot_t) == 64, "one cache line per task worker");

typedef struct task_shared_s {
    _Atomic uint64_t task_seq;
    _Atomic uint32_t rr;
    char pad_[52];
    task_slot_t slots[];
    /* then, with task_redeliver: TASK_MSG_MAX bytes per task worker, its current message */
} task_shared_t;

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

/* A task an event worker could not hand to the message queue yet (modes 2, 3). */
typedef struct task_pending_s {
    swoop_queue_t node;
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
    swoop_channel_t *chans; /* mode 1: [t] event workers -> task worker t */
    swoop_msgqueue_t mq;    /* modes 2, 3 */
    swoop_channel_t *waits; /* [w]: task workers -> event worker w's taskwait */
    char *wbuf;             /* taskwait's receive buffer */
    uint64_t warn_ms;       /* when "no idle task worker" was last logged */
    /* Event worker side (made at the first post). */
    swoop_ipc_out_t *outs; /* mode 1 */
    swoop_io_t *out_io;
    swoop_queue_t pending; /* modes 2, 3: task_pending_t, oldest first */
    size_t npending;
    int64_t retry_timer;
    /* Task worker side. */
    int in_task_worker;
    int slot;
    int64_t cur_task; /* the task whose on_task runs, 0 outside */
    int cur_src;
    int cur_wait; /* the current task's poster waits in taskwait */
    int cur_attempt;
    int finished;
    const char *cur_path; /* the current task's file, NULL if none */
} swoop_task_t;

static inline task_slot_t *task_slot(swoop_task_t *tk, int t)
{
    return &tk->sh->slots[t];
}

/* Redelivery: task worker t's copy of the message it runs (task_redeliver only). */
static inline char *task_saved(swoop_task_t *tk, int t)
{
    return (char *)(tk->sh->slots + tk->num) + (size_t)t * TASK_MSG_MAX;
}

/* ---- task_payload.c ---- */

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
/* Releases what task_payload_take holds. */
void task_payload_done(swoop_task_t *tk, task_in_t *in);
/* A copy of the payload (malloc'd, never NULL), then task_payload_done. */
void *task_payload_copy(swoop_task_t *tk, task_in_t *in);
/* Removes this server's files left in task_tmpdir; returns how many. */
int task_payload_sweep(swoop_server_t *srv);

/* ---- task_queue.c ---- */

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
/* Manager: sends a whole message to task worker t (mode 3: any), waiting at most timeout_ms. */
int task_queue_send_wait(swoop_server_t *srv, int t, const void *msg, size_t len, int timeout_ms);
/* Task worker: a signal handler calls this; a recv blocked in msgrcv returns SWOOP_EINTR. */
void task_queue_interrupt(void);

#endif /* SWOOP_SERVER_TASK_IMPL_H */
