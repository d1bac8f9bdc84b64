/*
 * Coroutine internals shared by the files of src/co: the context switch seam (our
 * assembly, or ucontext with SWOOP_CO_UCONTEXT), the coroutine record, the
 * per-thread scheduler, and the wait/wake primitive every blocking call is
 * built on.
 */
#ifndef SWOOP_CO_INTERNAL_H
#define SWOOP_CO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef SWOOP_CO_UCONTEXT
#include <ucontext.h>
#endif

#include <swoop/co.h>
#include <swoop/loop.h>

#include "base/idmap.h"
#include "base/queue.h"

#if defined(__SANITIZE_ADDRESS__)
#define SWOOP_CO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWOOP_CO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SWOOP_CO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SWOOP_CO_TSAN 1
#endif
#endif

/* A saved execution context. */
typedef struct swoop_co_ctx_s {
#ifdef SWOOP_CO_UCONTEXT
    ucontext_t uc;
#else
    void *sp; /* the stack pointer of a switched-out context */
#endif
} swoop_co_ctx_t;

#ifndef SWOOP_CO_UCONTEXT
/* Saves the running context's state and sp in *save_sp, resumes load_sp. */
void swoop__co_switch(void **save_sp, void *load_sp);
/* Lays out a fresh stack whose first switch-in calls entry(arg); returns its sp. */
void *swoop__co_make(void *stack_lo, size_t size, void (*entry)(void *), void *arg);
#endif

enum { CO_RUNNING = 1, CO_WAITING, CO_DEAD };

typedef struct swoop_co_s swoop_co_t;

/* Unlinks a waiting coroutine from whatever it waits on (timeout, cancel). */
typedef void (*swoop_co_unlink_fn)(swoop_co_t *co);

/*
 * One coroutine. The record lives at the top of its own stack mapping, so a
 * pooled stack is also a pooled record and starting a coroutine allocates
 * nothing.
 */
struct swoop_co_s {
    swoop_co_ctx_t ctx;
    swoop_co_t *origin; /* who resumed us; we go back there when we wait or end */
    int64_t id;
    int state;
    int cancel_pending; /* swoop_co_cancel while not waiting */
    swoop_co_fn fn;
    void *arg;
    /* The current wait. */
    int64_t timer_id; /* 0 = none */
    int wait_result;
    swoop_co_unlink_fn unlink;
    void *wait_obj; /* what unlink needs (a watcher, a channel node) */
    /* The stack: [map, map + guard) is PROT_NONE, [stack_lo, this record) usable. */
    void *map;
    size_t map_len;
    char *stack_lo;
    size_t stack_size; /* the configured size, for messages and reuse */
    size_t guard;
    swoop_co_t *pool_next;
    int keep; /* set when it ends: its stack goes back to the pool */
#ifdef SWOOP_CO_ASAN
    void *asan_fake; /* ASan's fake stack, kept with a pooled stack */
#endif
#ifdef SWOOP_CO_TSAN
    void *tsan_fiber;
#endif
};

typedef struct swoop_co_sched_s {
    swoop_co_t main; /* the thread's own context (no stack of ours) */
    swoop_co_t *current;
    swoop_co_t *pool;
    size_t pooled;
    size_t mapped;
    int64_t next_id;
    uint64_t live, peak, created;
    swoop_idmap_t by_id;
    swoop_co_options_t opt;
    size_t page;
    void *altstack; /* our sigaltstack mapping, if we made one */
    size_t altstack_len;
    swoop_co_t *switch_from; /* for the sanitizers: who switched to the running context */
    int64_t trim_timer;      /* the pool's trimming timer on the default loop, 0 = none */
} swoop_co_sched_t;

/* The calling thread's scheduler, made on first use; NULL if that failed. */
swoop_co_sched_t *swoop__co_sched(void);

/* The running coroutine or NULL. */
swoop_co_t *swoop__co_current(void);

/*
 * Parks the running coroutine until swoop__co_wake. `timeout_ms` < 0 waits
 * for ever; > 0 arms a loop timer that wakes it with SWOOP_ETIMEDOUT (0 is
 * handled by callers: they must not wait). `unlink` removes it from the
 * waker's list when a timeout or cancel wakes it instead. Returns the
 * result given to the wake, or SWOOP_ECANCELED at once for a pending
 * cancel, or SWOOP_ESTATE outside a coroutine.
 */
int swoop__co_wait(int64_t timeout_ms, swoop_co_unlink_fn unlink);

/* Resumes a waiting coroutine now; its swoop__co_wait returns `result`. */
void swoop__co_wake(swoop_co_t *co, int result);

#endif /* SWOOP_CO_INTERNAL_H */
