/*
 * Millisecond timers on a min-heap (DESIGN.md section 3). A timer is named by
 * an int64 id > 0 that is never reused within the process. Timers never fire
 * early: a timer armed for `ms` runs at least `ms` milliseconds after the
 * call that armed it. Timers due at the same moment run in the order they
 * were armed; a timer armed inside a timer callback waits for the next pass;
 * a callback may clear its own timer or any other; a tick that fell behind
 * skips the beats it missed instead of running them in a burst.
 *
 * swoop_timer_* act on the calling thread's default loop; swoop_loop_timer_*
 * on a given loop. In an event-loop process the loop's poll timeout drives
 * them. A blocking process (one that sits in waitpid() or msgrcv()) uses the
 * alarm driver instead: swoop_timer_alarm_start() arms setitimer(ITIMER_REAL)
 * for the next timer; SIGALRM only sets a flag and interrupts the blocking
 * call with EINTR, after which swoop_timer_alarm_dispatch() runs the due
 * timers outside signal context.
 */
#ifndef SWOOP_TIMER_H
#define SWOOP_TIMER_H

#include <stdint.h>

#include <swoop/common.h>
#include <swoop/loop.h>

SWOOP_BEGIN_DECLS

/** A timer callback; `id` is the timer's id, `arg` what was given when arming it. */
typedef void (*swoop_timer_cb)(int64_t id, void *arg);

/** What swoop_timer_info reports about one timer. */
typedef struct swoop_timer_info_s {
    int64_t interval_ms; /**< the tick interval, or 0 for a one-shot timer */
    uint64_t runs;       /**< how many times the callback ran so far */
    uint64_t expire_ms;  /**< next expiry on the loop's monotonic clock (swoop_loop_now) */
} swoop_timer_info_t;

/** What swoop_timer_stats reports about a loop's timers. */
typedef struct swoop_timer_stats_s {
    uint64_t count; /**< pending timers */
    uint64_t round; /**< timer passes run so far */
    uint64_t fired; /**< callbacks run so far */
} swoop_timer_stats_t;

/**
 * Runs `cb(id, arg)` once, `ms` milliseconds from now, on the default loop.
 * Returns the id (> 0) or a negative error: SWOOP_EINVAL for ms < 1 or a NULL
 * callback.
 */
SWOOP_EXTERN int64_t swoop_timer_after(int64_t ms, swoop_timer_cb cb, void *arg);

/** Runs `cb(id, arg)` every `ms` milliseconds (ms >= 1) until cleared. Returns the id or an error.
 */
SWOOP_EXTERN int64_t swoop_timer_tick(int64_t ms, swoop_timer_cb cb, void *arg);

/**
 * Cancels a timer of the default loop; allowed inside any timer callback,
 * including the timer's own. Returns 0 or SWOOP_ENOENT (unknown, already run
 * or cleared).
 */
SWOOP_EXTERN int swoop_timer_clear(int64_t id);

/** Cancels every timer of the default loop. */
SWOOP_EXTERN void swoop_timer_clear_all(void);

/** Fills `out` for a pending timer of the default loop. Returns 0 or SWOOP_ENOENT. */
SWOOP_EXTERN int swoop_timer_info(int64_t id, swoop_timer_info_t *out);

/** Fills `out` with the default loop's timer counters. */
SWOOP_EXTERN void swoop_timer_stats(swoop_timer_stats_t *out);

/** As swoop_timer_after, on `loop`. */
SWOOP_EXTERN int64_t swoop_loop_timer_after(swoop_loop_t *loop, int64_t ms, swoop_timer_cb cb,
                                            void *arg);
/** As swoop_timer_tick, on `loop`. */
SWOOP_EXTERN int64_t swoop_loop_timer_tick(swoop_loop_t *loop, int64_t ms, swoop_timer_cb cb,
                                           void *arg);
/** As swoop_timer_clear, on `loop`. */
SWOOP_EXTERN int swoop_loop_timer_clear(swoop_loop_t *loop, int64_t id);
/** As swoop_timer_clear_all, on `loop`. */
SWOOP_EXTERN void swoop_loop_timer_clear_all(swoop_loop_t *loop);
/** As swoop_timer_info, on `loop`. */
SWOOP_EXTERN int swoop_loop_timer_info(swoop_loop_t *loop, int64_t id, swoop_timer_info_t *out);
/** As swoop_timer_stats, on `loop`. */
SWOOP_EXTERN void swoop_loop_timer_stats(swoop_loop_t *loop, swoop_timer_stats_t *out);

/**
 * Switches `loop`'s timers to the alarm driver for a process that blocks
 * instead of running the loop: installs a SIGALRM handler (without
 * SA_RESTART, so blocking calls return EINTR) and keeps ITIMER_REAL armed for
 * the earliest timer. One loop per process may own the alarm; another gets
 * SWOOP_EBUSY. Returns 0 or a negative error.
 */
SWOOP_EXTERN int swoop_loop_alarm_start(swoop_loop_t *loop);

/** Disarms ITIMER_REAL and restores SIGALRM's previous disposition. */
SWOOP_EXTERN int swoop_loop_alarm_stop(swoop_loop_t *loop);

/**
 * Runs the timers that are due, if any, and re-arms the alarm. Call it after
 * a blocking call returned EINTR (or at any convenient point). Returns how
 * many callbacks ran, or a negative error.
 */
SWOOP_EXTERN int swoop_loop_alarm_dispatch(swoop_loop_t *loop);

/** swoop_loop_alarm_start on the default loop. */
SWOOP_EXTERN int swoop_timer_alarm_start(void);
/** swoop_loop_alarm_stop on the default loop. */
SWOOP_EXTERN int swoop_timer_alarm_stop(void);
/** swoop_loop_alarm_dispatch on the default loop. */
SWOOP_EXTERN int swoop_timer_alarm_dispatch(void);

SWOOP_END_DECLS

#endif /* SWOOP_TIMER_H */
