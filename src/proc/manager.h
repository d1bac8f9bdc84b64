/*
 * The manager: a blocking process that forks a fixed set of worker slots,
 * reaps every exit, restarts what must run, and carries reloads and
 * shutdowns out (DESIGN.md section 1, SWOOLE-NOTES.md section 3). The pool
 * drives it now; the server will drive it for its event and task workers.
 * What a child runs is a role main function given in the hooks, never
 * hard-wired here. One manager per process: it owns the process's signal
 * handlers and the alarm timer driver while it runs.
 */
#ifndef SWOOP_PROC_MANAGER_H
#define SWOOP_PROC_MANAGER_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc/spawn.h"

/* Slot flags. */
#define SWOOP_SLOT_TASK 0x1u /* a task worker: reloaded by SIGUSR2 too */

/*
 * Per-slot statistics, in memory shared with every pool process (and the
 * process that made the pool). Written by the manager, except `requests`
 * and `request_limit` (the slot's worker) and `retire_pid` (a worker asking
 * to be replaced).
 */
typedef struct swoop_proc_stat_s {
    _Atomic int32_t pid;
    _Atomic int32_t retire_pid;
    _Atomic uint64_t requests;
    _Atomic uint64_t restarts;
    _Atomic uint64_t start_ms;
    _Atomic int64_t request_limit;
    _Atomic int32_t last_exit_code;
    _Atomic int32_t last_signal;
} swoop_proc_stat_t;

typedef struct swoop_manager_hooks_s {
    swoop_proc_main_pt worker_main; /* runs in each child */
    char role;                      /* log role symbol of children */
    void *data;                     /* passed to every hook and to worker_main */
    /* All slots were forked the first time. */
    void (*on_start)(void *data);
    /*
     * Right before slot `id` forks (the child inherits what it prepares):
     * 0, or a negative error (logged by the hook) to refuse the start, which
     * is retried later like a failed fork. May be NULL.
     */
    int (*before_spawn)(void *data, int id);
    /* After that fork: the child's pid, or the negative error of a failed fork. May be NULL. */
    void (*after_spawn)(void *data, int id, pid_t pid);
    /* Any child (current or detached) was reaped, before on_worker_error. May be NULL. */
    void (*on_reap)(void *data, int id, pid_t pid, int exit_code, int signo);
    /*
     * A child that is no slot's and no detached worker's was reaped: one the
     * hooks' owner forked itself from manager context. Returns 1 if it knew
     * the pid, 0 (the manager logs an unknown child). May be NULL.
     */
    int (*on_stray)(void *data, pid_t pid, int exit_code, int signo);
    /* A process exited with a nonzero code or was killed. */
    void (*on_worker_error)(void *data, int id, pid_t pid, int exit_code, int signo);
    /* A reload of every worker begins (SIGUSR1), before any new worker forks. May be NULL. */
    void (*on_reload)(void *data);
    /* SIGRTMIN: reopen logs here (the manager forwards the signal to the workers). */
    void (*on_reopen)(void *data);
    /*
     * The shutdown begins, right before the children get SIGTERM (what the
     * hook publishes is seen by them when they handle it). May be NULL.
     */
    void (*on_shutdown_begin)(void *data);
    /* Every child is gone; the manager is about to return. */
    void (*on_shutdown)(void *data);
} swoop_manager_hooks_t;

/* One slot: the current process of a worker id. */
typedef struct swoop_mgr_slot_s {
    pid_t pid;             /* current process, 0 while none runs */
    unsigned flags;        /* SWOOP_SLOT_* */
    int fails;             /* consecutive deaths right after start */
    int fatal;             /* exited with SWOOP_EXIT_FATAL: never restarted */
    int stopping;          /* SIGTERM sent to the current process (sync reload, shutdown) */
    int spawned;           /* forked at least once */
    uint64_t started_ms;   /* when the current process was forked */
    int64_t respawn_timer; /* pending back-off restart, 0 if none */
    int64_t kill_timer;    /* SIGKILL deadline of a stopping current process */
} swoop_mgr_slot_t;

/* A process that left its slot (reload_async, max_request) and is finishing. */
typedef struct swoop_mgr_detached_s {
    pid_t pid;
    int id;
    int64_t kill_timer;
} swoop_mgr_detached_t;

typedef struct swoop_manager_s {
    int worker_num;
    swoop_manager_hooks_t hooks;
    swoop_proc_stat_t *stats; /* worker_num entries, shared; may be NULL */
    int max_wait_ms;
    int reload_async;
    int backoff_min_ms;
    int backoff_max_ms;

    swoop_mgr_slot_t *slots;
    swoop_mgr_detached_t *detached;
    int ndetached;
    int detached_cap;
    int running;
    int shutting_down;
    int task_stop_pending;   /* shutdown: SWOOP_SLOT_TASK processes get SIGTERM once alone */
    int64_t task_term_timer; /* or max_wait_ms - 250 ms after the shutdown began */
    /* One-by-one reload: the ids still to restart. */
    int *reload_queue;
    int reload_len;
    int reload_pos;
} swoop_manager_t;

/* Deaths within this many ms of the fork count toward the restart back-off. */
#define SWOOP_MANAGER_QUICK_DEATH_MS 1000

/*
 * Prepares `mgr` (zeroing it) for `worker_num` slots. The caller then sets
 * max_wait_ms, reload_async, backoff_* and stats. Returns 0.
 */
int swoop__manager_init(swoop_manager_t *mgr, int worker_num, const swoop_manager_hooks_t *hooks);

/* Frees the slot table. */
void swoop__manager_destroy(swoop_manager_t *mgr);

/* Tags slot `id` with SWOOP_SLOT_* flags (before run). */
void swoop__manager_set_flags(swoop_manager_t *mgr, int id, unsigned flags);

/*
 * Runs the manager in the calling (single-threaded) process until shutdown.
 * Returns 0 after a clean shutdown, or a negative error if it could not
 * start (signals, timers). Restores the signal handlers and mask on return.
 */
int swoop__manager_run(swoop_manager_t *mgr);

/* Requests, usable from manager context (callbacks, timers); acted on by the loop. */
void swoop__manager_request_shutdown(void);
void swoop__manager_request_reload(int task_only);

/* The delay before restarting a slot after `fails` consecutive quick deaths. */
int swoop__manager_backoff_ms(const swoop_manager_t *mgr, int fails);

#endif /* SWOOP_PROC_MANAGER_H */
