/*
 * The process pool (like Swoole's Process\Pool): a manager process forks
 * `worker_num` workers, notices every exit, restarts what must run (same
 * worker id, with back-off for a worker that keeps dying at start), recycles
 * workers after `max_request` requests, carries reloads (SIGUSR1/SIGUSR2)
 * and shutdowns (SIGTERM) out, and passes messages to workers through one
 * socketpair per worker or a SysV message queue. docs/api/process.md
 * describes the signals, the restart policy and every setting.
 *
 * Processes: swoop_pool_start() turns the calling process into the manager
 * and blocks there until shutdown. Workers are forked from it; in a worker,
 * on_worker_start runs, then the worker runs its default event loop (timers,
 * fd watchers, on_message) until it is told to stop.
 */
#ifndef SWOOP_PROCESS_H
#define SWOOP_PROCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/** A worker that exits with this code is not restarted (nginx's fatal exit code). */
#define SWOOP_EXIT_FATAL 2

/** Largest message swoop_pool_send carries in pipe mode (one datagram). */
#define SWOOP_POOL_PIPE_MSG_MAX 65536

/** Longest path accepted for pid_file and log_file, including the NUL. */
#define SWOOP_POOL_PATH_MAX 1024

/** A process pool (opaque). */
typedef struct swoop_pool_s swoop_pool_t;

/** How messages reach workers (setting `ipc_mode`). */
typedef enum {
    SWOOP_POOL_IPC_NONE = 0,    /**< no messages ("none") */
    SWOOP_POOL_IPC_PIPE = 1,    /**< one SOCK_DGRAM socketpair per worker ("pipe") */
    SWOOP_POOL_IPC_MSGQUEUE = 2 /**< a SysV message queue, mtype = worker id + 1 ("msgqueue") */
} swoop_pool_ipc_mode_t;

/**
 * Settings; change them between swoop_pool_new and swoop_pool_start, through
 * swoop_pool_settings() or swoop_pool_set(). Defaults in brackets.
 */
typedef struct swoop_pool_settings_s {
    /** Requests (swoop_pool_count_request) after which a worker is replaced; 0 = never [0]. */
    int64_t max_request;
    /**
     * Each worker's limit is max_request + a random value in [0, grace], so
     * that workers do not all restart together. -1 = max_request / 2 when
     * max_request > 10, else 0 (Swoole's rule) [-1].
     */
    int64_t max_request_grace;
    /** Seconds a stopping worker may take before it is SIGKILLed [3]. */
    int max_wait_time;
    /** Reload: 1 = all workers at once, replacements started at once; 0 = one by one [1]. */
    int reload_async;
    /** Detach from the terminal (double fork, setsid, stdio to log_file or /dev/null) [0]. */
    int daemonize;
    /** Log threshold, a SWOOP_LOG_* level; -1 = leave the process's level alone [-1]. */
    int log_level;
    /** Message transport [SWOOP_POOL_IPC_NONE]. */
    swoop_pool_ipc_mode_t ipc_mode;
    /** SysV key for msgqueue mode; 0 = a private queue removed at shutdown [0]. */
    int message_queue_key;
    /** First delay (ms) when a worker dies again right after a restart [10]. */
    int restart_backoff_min_ms;
    /** Cap (ms) of the doubling restart delay [3000]. */
    int restart_backoff_max_ms;
    /** Written with the manager's pid at start, removed at exit; "" = none [""]. */
    char pid_file[SWOOP_POOL_PATH_MAX];
    /** Log file of every pool process (reopened on SIGRTMIN); "" = stderr [""]. */
    char log_file[SWOOP_POOL_PATH_MAX];
} swoop_pool_settings_t;

/**
 * Callbacks, set once before start with swoop_pool_on. Every one is
 * optional. They run in the process named after each.
 */
typedef struct swoop_pool_events_s {
    /** Manager: all workers were forked the first time. */
    void (*on_start)(swoop_pool_t *pool);
    /** Worker: the worker starts; its event loop runs after this returns. */
    void (*on_worker_start)(swoop_pool_t *pool, int worker_id);
    /** Worker: the worker was told to stop (SIGTERM, reload, max_request); it exits after. */
    void (*on_worker_stop)(swoop_pool_t *pool, int worker_id);
    /**
     * Manager: a worker exited abnormally (exit code != 0 or killed by
     * signal `signo`, else 0); it is restarted unless the code is
     * SWOOP_EXIT_FATAL or the pool is shutting down.
     */
    void (*on_worker_error)(swoop_pool_t *pool, int worker_id, pid_t pid, int exit_code, int signo);
    /** Worker: a message sent with swoop_pool_send; `data` is borrowed for the call. */
    void (*on_message)(swoop_pool_t *pool, int worker_id, const void *data, size_t len);
    /** Manager: every worker is gone; the manager is about to return from swoop_pool_start. */
    void (*on_shutdown)(swoop_pool_t *pool);
} swoop_pool_events_t;

/** What swoop_pool_worker_info reports about one worker slot (read from shared memory). */
typedef struct swoop_pool_worker_info_s {
    pid_t pid;             /**< current process of the slot, 0 while none runs */
    uint64_t requests;     /**< requests counted by the current process */
    uint64_t restarts;     /**< processes started for this slot after the first */
    uint64_t start_ms;     /**< CLOCK_MONOTONIC ms when the current process was forked */
    int last_exit_code;    /**< exit code of the slot's last exited process, -1 if signaled */
    int last_signal;       /**< signal that ended it, or 0 */
    int64_t request_limit; /**< max_request plus this process's grace, 0 = unlimited */
} swoop_pool_worker_info_t;

/**
 * Creates a pool of `worker_num` workers (1..1024). The shared stats region
 * is mapped here, so a process that forks the manager afterwards can read
 * swoop_pool_worker_info too. Returns 0 and sets *out, or SWOOP_EINVAL /
 * SWOOP_ENOMEM.
 */
SWOOP_EXTERN int swoop_pool_new(swoop_pool_t **out, int worker_num);

/** Frees the pool. Not while swoop_pool_start runs in this process (SWOOP_EBUSY). */
SWOOP_EXTERN int swoop_pool_free(swoop_pool_t *pool);

/** Returns the typed settings, to change before swoop_pool_start. */
SWOOP_EXTERN swoop_pool_settings_t *swoop_pool_settings(swoop_pool_t *pool);

/**
 * Sets one setting from a string (config files, command lines): the keys are
 * the field names of swoop_pool_settings_t; booleans take 0/1/true/false;
 * ipc_mode takes none/pipe/msgqueue; log_level a level name or number.
 * Returns 0, or SWOOP_EINVAL for an unknown key or a bad value (logged), or
 * SWOOP_ESTATE once the pool started.
 */
SWOOP_EXTERN int swoop_pool_set(swoop_pool_t *pool, const char *key, const char *value);

/** Copies the callback table. Returns 0, or SWOOP_ESTATE once the pool started. */
SWOOP_EXTERN int swoop_pool_on(swoop_pool_t *pool, const swoop_pool_events_t *events);

/** Stores a user pointer; it is inherited by every pool process. */
SWOOP_EXTERN void swoop_pool_set_data(swoop_pool_t *pool, void *data);

/** Returns the user pointer. */
SWOOP_EXTERN void *swoop_pool_data(const swoop_pool_t *pool);

/**
 * Runs the manager in the calling process: forks the workers and supervises
 * them until shutdown (SIGTERM, SIGINT or swoop_pool_shutdown). Returns 0
 * after a clean shutdown, or a negative error if the pool could not start
 * (the cause is logged). The calling process must be single-threaded. With
 * `daemonize` the caller's process exits and the manager runs in a detached
 * grandchild. Never returns in a worker: workers _exit.
 */
SWOOP_EXTERN int swoop_pool_start(swoop_pool_t *pool);

/**
 * Sends one message to worker `worker_id`; it arrives whole in that worker's
 * on_message (the current process of the slot, or its replacement). May be
 * called after start from the manager (callbacks, timers) and from any
 * worker. Returns 0, SWOOP_EMSGSIZE when it does not fit in one message
 * (SWOOP_POOL_PIPE_MSG_MAX in pipe mode, kernel.msgmax minus an 8-byte
 * header in msgqueue mode; nothing is truncated), SWOOP_EAGAIN when the
 * worker's buffer or the queue is full, SWOOP_EINVAL for a bad id, or
 * SWOOP_ESTATE when the pool has no IPC or is not running.
 */
SWOOP_EXTERN int swoop_pool_send(swoop_pool_t *pool, int worker_id, const void *data, size_t len);

/**
 * Restarts every worker (as SIGUSR1 does). From the manager it starts at
 * once; from any other process it signals the manager. Returns 0 or an error.
 */
SWOOP_EXTERN int swoop_pool_reload(swoop_pool_t *pool);

/**
 * Stops the pool (as SIGTERM does): from the manager at once, from a worker
 * or the process that forked the manager by signalling it. Returns 0 or an
 * error (SWOOP_ESTATE when the pool never started).
 */
SWOOP_EXTERN int swoop_pool_shutdown(swoop_pool_t *pool);

/** In a worker: its id (0..worker_num-1). Elsewhere: -1. */
SWOOP_EXTERN int swoop_pool_worker_id(const swoop_pool_t *pool);

/**
 * In a worker: counts one request toward max_request. When the limit is
 * reached the worker stops taking messages, a replacement starts at once, and
 * this worker runs on_worker_stop and exits after the current callback.
 * Returns the count so far, or SWOOP_ESTATE outside a worker.
 */
SWOOP_EXTERN int64_t swoop_pool_count_request(swoop_pool_t *pool);

/** Returns the manager's pid once started (0 before). */
SWOOP_EXTERN pid_t swoop_pool_manager_pid(const swoop_pool_t *pool);

/**
 * Fills `out` for slot `worker_id`, from the shared stats region (works in
 * the manager, the workers and a process that forked the manager after
 * swoop_pool_new). Returns 0 or SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_pool_worker_info(const swoop_pool_t *pool, int worker_id,
                                        swoop_pool_worker_info_t *out);

SWOOP_END_DECLS

#endif /* SWOOP_PROCESS_H */
