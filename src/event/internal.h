/*
 * The loop's private layout, shared by the files of the event layer.
 */
#ifndef SWOOP_EVENT_INTERNAL_H
#define SWOOP_EVENT_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include <swoop/loop.h>
#include <swoop/timer.h>

#include "base/heap.h"
#include "base/idmap.h"
#include "base/internal.h"
#include "event/backend.h"

/* swoop_io_t._flags */
#define SWOOP_IO_INTERNAL 0x1u /* the loop's own watcher: does not keep it alive */
#define SWOOP_IO_ONESHOT  0x2u /* armed by swoop__io_arm_once: its first event disarms it */

typedef struct swoop_timer_node_s swoop_timer_node_t;
struct swoop_timer_node_s {
    swoop_heap_node_t heap;
    int64_t id;
    uint64_t expire_ns;
    uint64_t interval_ns; /* 0 for a one-shot timer */
    uint64_t runs;
    swoop_timer_cb cb;
    void *arg;
    int user; /* armed through the public API: runs through the loop's timer_runner */
    swoop_timer_node_t *next_free;
};

/* Runs a user timer's callback in place of a plain call (see swoop__loop_set_timer_runner). */
typedef void (*swoop_timer_runner_fn)(swoop_timer_cb cb, int64_t id, void *arg);

typedef struct swoop_post_s swoop_post_t;
struct swoop_post_s {
    swoop_post_cb cb;
    void *arg;
    swoop_post_t *next;
};

struct swoop_loop_s {
    const swoop_backend_t *backend;
    void *backend_data;

    /* fd -> watcher; the fd table of redis ae.c */
    swoop_io_t **watchers;
    int nwatchers;
    unsigned active_io; /* started user watchers */

    uint64_t now_ns; /* cached CLOCK_MONOTONIC */
    /*
     * The fork generation the loop was made in. In a forked child the epoll
     * set, the eventfd and the signalfd are shared with the parent, so a loop
     * from an earlier generation (or one being discarded: `detached`) must
     * not touch them: no epoll_ctl, no signalfd mask change, no wake-up, no
     * poll. See swoop__loop_detached.
     */
    unsigned fork_gen;
    int detached;
    atomic_int stop_flag;

    /* timers */
    swoop_heap_t timer_heap;
    swoop_idmap_t timer_ids;
    swoop_timer_node_t *timer_free;   /* recycled nodes */
    size_t timer_free_count;          /* how many are on timer_free */
    swoop_timer_node_t *timer_firing; /* the node whose callback runs now */
    int timer_firing_cleared;
    uint64_t timer_seq;
    uint64_t timer_round;
    uint64_t timer_fired;
    swoop_timer_runner_fn timer_runner;
    int alarm_mode;

    /* posts from other threads, woken through an eventfd */
    pthread_mutex_t post_lock;
    swoop_post_t *post_head;
    swoop_post_t *post_tail;
    int post_signaled; /* under post_lock: the eventfd holds a wake-up */
    atomic_int post_pending;
    int wake_fd;
    swoop_io_t wake_io;

    /* signals, read from a signalfd */
    int signal_fd;
    swoop_io_t signal_io;
    sigset_t signal_mask;     /* signals with at least one watcher */
    sigset_t signal_preblock; /* which of them were blocked before we blocked them */
    swoop_signal_t *signal_watchers[NSIG];
    swoop_signal_t *signal_cursor; /* next watcher during a dispatch */
    unsigned active_signals;
};

/* timer.c */
void swoop__timers_init(swoop_loop_t *loop);
void swoop__timers_free(swoop_loop_t *loop);
/* Runs the due timers; returns how many callbacks ran. */
int swoop__timers_run(swoop_loop_t *loop);
/*
 * The library's own timers: as the public calls, but never handed to the
 * loop's timer runner (a worker with enable_coroutine runs user timers in
 * coroutines; its own bookkeeping timers stay plain calls).
 */
int64_t swoop__timer_after_lib(int64_t ms, swoop_timer_cb cb, void *arg);
int64_t swoop__timer_tick_lib(int64_t ms, swoop_timer_cb cb, void *arg);
int64_t swoop__loop_timer_after_lib(swoop_loop_t *loop, int64_t ms, swoop_timer_cb cb, void *arg);
int64_t swoop__loop_timer_tick_lib(swoop_loop_t *loop, int64_t ms, swoop_timer_cb cb, void *arg);
/* Sets the runner user timers' callbacks go through on `loop` (NULL: plain calls). */
void swoop__loop_set_timer_runner(swoop_loop_t *loop, swoop_timer_runner_fn fn);
/* Absolute expiry (CLOCK_MONOTONIC ns) of the earliest timer, or 0 if there is none. */
uint64_t swoop__timers_deadline_ns(const swoop_loop_t *loop);
/* alarm.c: the heap's head changed; re-arm ITIMER_REAL if this loop owns it. */
void swoop__alarm_rearm(swoop_loop_t *loop);
/*
 * alarm.c: `hook` runs inside the SIGALRM handler, after the flag is set
 * (async-signal-safe code only; it may siglongjmp out of a blocking call).
 */
void swoop__alarm_set_hook(void (*hook)(void));
/* alarm.c: 1 when SIGALRM came since the last dispatch. */
int swoop__alarm_fired(void);
/* Drops the alarm if this loop owns it (loop being freed or discarded in a child). */
void swoop__alarm_release(swoop_loop_t *loop);
/* In a forked child: no loop owns the alarm any more. */
void swoop__alarm_atfork_child(void);

/* signal.c */
void swoop__signals_free(swoop_loop_t *loop);

/* post.c */
int swoop__post_init(swoop_loop_t *loop);
void swoop__post_free(swoop_loop_t *loop);
void swoop__loop_wake(swoop_loop_t *loop);

/*
 * One iteration like swoop_loop_run_once, but the poll does not block:
 * for a caller that knows work waits outside the loop's fds (the server's
 * shared-memory rings).
 */
int swoop__loop_run_nowait(swoop_loop_t *loop);

/*
 * post.c: runs the callbacks posted so far, in order, in the calling thread
 * (the loop's own). A process that stops its loop and exits calls it so
 * that no posted callback is silently lost.
 */
void swoop__loop_run_posts(swoop_loop_t *loop);

/* loop.c: incremented in every forked child (pthread_atfork). */
extern _Atomic unsigned swoop__fork_generation;

/* Nonzero when the loop belongs to the parent of this (forked) process. */
static inline int swoop__loop_detached(const swoop_loop_t *loop)
{
    return loop->detached ||
           loop->fork_gen != atomic_load_explicit(&swoop__fork_generation, memory_order_relaxed);
}

/* default.c */
void swoop__loop_forget_default(swoop_loop_t *loop);
/* The child half of the fork handling: drops the default loop and the alarm. */
void swoop__loop_atfork_child(void);
int swoop__loop_default_get(swoop_loop_t **out);
/* loop.c: tears a loop down; `in_child` closes fds without touching shared kernel state. */
void swoop__loop_destroy(swoop_loop_t *loop, int in_child);

/*
 * Starts `io` for one event: the kernel disarms the interest when it
 * reports it, so the callback's swoop_io_stop costs no syscall, and the
 * registration stays in the kernel (disarmed) for the next arm of the same
 * fd, which re-arms it with one epoll_ctl instead of an add and a delete
 * per wait. For waits that end at the first event (the coroutines' fd
 * waits). A stop before the event removes the registration as usual.
 */
int swoop__io_arm_once(swoop_io_t *io, unsigned events);

#endif /* SWOOP_EVENT_INTERNAL_H */
