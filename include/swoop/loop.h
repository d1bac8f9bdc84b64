/*
 * The event loop: one per thread, epoll underneath. It watches file
 * descriptors (swoop_io_t), signals (swoop_signal_t, delivered through
 * signalfd as ordinary loop events, never in signal context), timers
 * (<swoop/timer.h>) and callbacks posted from other threads
 * (swoop_loop_post). A loop is used from the thread that runs it; only
 * swoop_loop_post and swoop_loop_stop may be called from other threads.
 *
 * One iteration (docs/design.md has the details): update the cached clock,
 * run due timers, poll for I/O with a timeout that ends at the next timer,
 * dispatch I/O events, signals and posted callbacks, run due timers again.
 */
#ifndef SWOOP_LOOP_H
#define SWOOP_LOOP_H

#include <stdint.h>

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/** An event loop (opaque). */
typedef struct swoop_loop_s swoop_loop_t;
/** A watcher on one file descriptor; the caller allocates it. */
typedef struct swoop_io_s swoop_io_t;
/** A watcher on one signal number; the caller allocates it. */
typedef struct swoop_signal_s swoop_signal_t;

/** Interest and event bits for swoop_io_t. */
#define SWOOP_READABLE 0x01u
#define SWOOP_WRITABLE 0x02u
/** Reported with READABLE/WRITABLE: the peer hung up (EPOLLHUP/EPOLLRDHUP). */
#define SWOOP_HANGUP 0x04u
/** Reported with READABLE/WRITABLE: an error is pending on the fd (EPOLLERR). */
#define SWOOP_IOERROR 0x08u

/**
 * Called when the fd is ready. `events` holds the ready bits among those
 * asked for, plus SWOOP_HANGUP / SWOOP_IOERROR (an error or hang-up is also
 * reported as readable and writable, as far as the watcher asked for them,
 * so the next read or write sees it). The callback may stop or restart this
 * watcher or any other, and may close this fd after stopping its watcher.
 */
typedef void (*swoop_io_cb)(swoop_io_t *io, unsigned events);

/** Called on the loop's thread for each delivery of `signo`. */
typedef void (*swoop_signal_cb)(swoop_signal_t *sig, int signo);

/** A callback posted with swoop_loop_post. */
typedef void (*swoop_post_cb)(swoop_loop_t *loop, void *arg);

/** fd watcher. Fields starting with `_` are private. */
struct swoop_io_s {
    /** Free for the user. */
    void *data;
    swoop_loop_t *_loop;
    swoop_io_cb _cb;
    int _fd;
    unsigned _events;     /* interest asked for */
    unsigned _registered; /* interest the kernel has */
    unsigned _flags;
};

/** Signal watcher. Fields starting with `_` are private. */
struct swoop_signal_s {
    /** Free for the user. */
    void *data;
    swoop_loop_t *_loop;
    swoop_signal_cb _cb;
    int _signo;
    int _active;
    swoop_signal_t *_next; /* watchers of the same signal */
};

/**
 * Creates a loop. Returns 0 and sets *out, or a negative error (SWOOP_EMFILE,
 * SWOOP_ENOMEM...). Free it with swoop_loop_free.
 */
SWOOP_EXTERN int swoop_loop_new(swoop_loop_t **out);

/**
 * Frees a loop and every timer still pending on it (their callbacks do not
 * run). Returns SWOOP_EBUSY, and frees nothing, while an fd or signal watcher
 * is still started: stop them first. Freeing the thread's default loop is
 * allowed; the next swoop_loop_default() makes a new one.
 */
SWOOP_EXTERN int swoop_loop_free(swoop_loop_t *loop);

/**
 * Returns the calling thread's default loop, creating it on first use, or
 * NULL if it could not be created (the cause is logged). Timers made with
 * swoop_timer_after/tick live there. It is freed when the thread exits. A
 * child process does not inherit its parent's default loop: after fork() the
 * child's first call makes a fresh one (the parent's timers, watchers and
 * descriptors are dropped in the child without running anything).
 */
SWOOP_EXTERN swoop_loop_t *swoop_loop_default(void);

/**
 * Runs the loop until swoop_loop_stop is called or nothing is left to wait
 * for (no started watcher, no timer, no posted callback). Returns 0 in the
 * latter case, 1 if stopped while work remains, or a negative error.
 */
SWOOP_EXTERN int swoop_loop_run(swoop_loop_t *loop);

/**
 * Runs one iteration, waiting for events if there is something to wait for
 * (and no timer ran at its start: then it only collects what is ready, so
 * the caller's end-of-iteration work follows those timers at once).
 * Returns 1 if work remains, 0 if not, or a negative error.
 */
SWOOP_EXTERN int swoop_loop_run_once(swoop_loop_t *loop);

/**
 * Makes swoop_loop_run return at the end of the current iteration. Safe from
 * any thread and from callbacks.
 */
SWOOP_EXTERN void swoop_loop_stop(swoop_loop_t *loop);

/**
 * Runs `cb(loop, arg)` on the loop's thread during one of its next
 * iterations, waking it if it sleeps. Safe from any thread; callbacks run in
 * the order they were posted. Returns 0 or SWOOP_ENOMEM. A pending post keeps
 * swoop_loop_run from returning.
 */
SWOOP_EXTERN int swoop_loop_post(swoop_loop_t *loop, swoop_post_cb cb, void *arg);

/** Returns the loop's cached monotonic time in milliseconds (updated each iteration). */
SWOOP_EXTERN uint64_t swoop_loop_now(const swoop_loop_t *loop);

/** Refreshes the cached time; for callbacks that ran for long. */
SWOOP_EXTERN void swoop_loop_update_time(swoop_loop_t *loop);

/** Returns the name of the I/O backend ("epoll"). */
SWOOP_EXTERN const char *swoop_loop_backend(const swoop_loop_t *loop);

/**
 * Prepares `io` to watch `fd` on `loop`; nothing is watched until
 * swoop_io_start. Borrows `io` until it is stopped. Returns 0 or SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_io_init(swoop_loop_t *loop, swoop_io_t *io, int fd, swoop_io_cb cb);

/**
 * Sets the interest to `events` (SWOOP_READABLE | SWOOP_WRITABLE); 0 stops
 * the watcher. May be called again at any time, also from callbacks.
 * Returns 0, SWOOP_EEXIST if another watcher of this loop has the fd,
 * SWOOP_EPERM for an fd epoll cannot watch (a regular file), or another
 * negative errno.
 */
SWOOP_EXTERN int swoop_io_start(swoop_io_t *io, unsigned events);

/**
 * Stops watching. From the moment it returns the loop no longer touches `io`
 * (its memory may be freed) and delivers no event still pending for the fd,
 * even in the batch being dispatched. Stop the watcher before closing the
 * fd. Returns 0 (also when not started).
 */
SWOOP_EXTERN int swoop_io_stop(swoop_io_t *io);

/** Returns the fd given to swoop_io_init. */
SWOOP_EXTERN int swoop_io_fd(const swoop_io_t *io);

/** Returns nonzero while the watcher is started. */
SWOOP_EXTERN int swoop_io_is_active(const swoop_io_t *io);

/** Prepares a signal watcher on `loop`. Returns 0 or SWOOP_EINVAL. */
SWOOP_EXTERN int swoop_signal_init(swoop_loop_t *loop, swoop_signal_t *sig, swoop_signal_cb cb);

/**
 * Starts delivering `signo` to the watcher's callback. The signal is blocked
 * in the calling thread and read through the loop's signalfd; threads created
 * afterwards inherit the block, so start signal watchers before creating
 * threads (or block the signal in them). Several watchers may watch one
 * signal. SIGKILL, SIGSTOP and SIGALRM while the alarm driver runs are
 * refused with SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_signal_start(swoop_signal_t *sig, int signo);

/**
 * Stops the watcher. When it was the last one for its signal, pending
 * deliveries are discarded and the signal's previous blocked state returns.
 */
SWOOP_EXTERN int swoop_signal_stop(swoop_signal_t *sig);

SWOOP_END_DECLS

#endif /* SWOOP_LOOP_H */
