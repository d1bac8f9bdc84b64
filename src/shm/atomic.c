/*
 * Cross-process 64-bit atomics on GCC/Clang __atomic builtins (lock-free on
 * every 64-bit Linux target). wait/wakeup sleep on a separate 32-bit futex
 * word, because a futex compares 32 bits and the counter has 64: a waiter
 * reads the word, re-checks the counter, then sleeps only if the word is
 * unchanged, so a wakeup between the check and the sleep is never lost. The
 * futex is not FUTEX_PRIVATE, so waiters in other processes are found.
 */
#include <swoop/atomic.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/internal.h"
#include "shm/internal.h"

_Static_assert(sizeof(swoop_atomic_t) == 16, "swoop_atomic_t is part of the ABI");

void swoop_atomic_init(swoop_atomic_t *a, int64_t initial)
{
    __atomic_store_n(&a->_seq, 0, __ATOMIC_RELAXED);
    a->_unused = 0;
    __atomic_store_n(&a->_value, initial, __ATOMIC_SEQ_CST);
}

int swoop_atomic_new(swoop_atomic_t **out, int64_t initial)
{
    if (out == NULL)
        return SWOOP_EINVAL;
    swoop_atomic_t *a = swoop__shm_map(sizeof(*a), "atomic");
    if (a == NULL) {
        *out = NULL;
        return SWOOP_ENOMEM;
    }
    swoop_atomic_init(a, initial);
    *out = a;
    return 0;
}

void swoop_atomic_free(swoop_atomic_t *a)
{
    swoop__shm_unmap(a, sizeof(*a));
}

int64_t swoop_atomic_get(const swoop_atomic_t *a)
{
    return __atomic_load_n(&a->_value, __ATOMIC_SEQ_CST);
}

void swoop_atomic_set(swoop_atomic_t *a, int64_t v)
{
    __atomic_store_n(&a->_value, v, __ATOMIC_SEQ_CST);
}

int64_t swoop_atomic_add(swoop_atomic_t *a, int64_t n)
{
    /* Through uint64_t so that overflow wraps instead of being undefined. */
    return (int64_t)__atomic_add_fetch((uint64_t *)&a->_value, (uint64_t)n, __ATOMIC_SEQ_CST);
}

int64_t swoop_atomic_sub(swoop_atomic_t *a, int64_t n)
{
    return (int64_t)__atomic_sub_fetch((uint64_t *)&a->_value, (uint64_t)n, __ATOMIC_SEQ_CST);
}

int swoop_atomic_cmpset(swoop_atomic_t *a, int64_t expected, int64_t desired)
{
    return __atomic_compare_exchange_n(&a->_value, &expected, desired, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int swoop_atomic_wait(swoop_atomic_t *a, int timeout_ms)
{
    /* Nanosecond deadline: a timeout never ends early, not even by a rounded millisecond. */
    int64_t deadline = timeout_ms >= 0 ? now_ns() + (int64_t)timeout_ms * 1000000 : 0;
    for (;;) {
        uint32_t seq = __atomic_load_n(&a->_seq, __ATOMIC_SEQ_CST);
        if (swoop_atomic_cmpset(a, 1, 0))
            return 0;
        struct timespec ts, *tsp = NULL;
        if (timeout_ms >= 0) {
            int64_t left = deadline - now_ns();
            if (left <= 0)
                return SWOOP_ETIMEDOUT;
            ts.tv_sec = (time_t)(left / 1000000000);
            ts.tv_nsec = (long)(left % 1000000000);
            tsp = &ts;
        }
        if (syscall(SYS_futex, &a->_seq, FUTEX_WAIT, seq, tsp, NULL, 0) != 0) {
            int err = errno;
            if (err != EAGAIN && err != EINTR && err != ETIMEDOUT) {
                swoop_log(SWOOP_LOG_ERROR, err, "futex(FUTEX_WAIT) on atomic %p failed", (void *)a);
                return -err;
            }
        }
    }
}

int swoop_atomic_wakeup(swoop_atomic_t *a, int n)
{
    if (!swoop_atomic_cmpset(a, 0, 1))
        return 0;
    __atomic_add_fetch(&a->_seq, 1, __ATOMIC_SEQ_CST);
    long woken = syscall(SYS_futex, &a->_seq, FUTEX_WAKE, n <= 0 ? INT_MAX : n, NULL, NULL, 0);
    if (woken < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "futex(FUTEX_WAKE) on atomic %p failed", (void *)a);
        return -err;
    }
    return (int)woken;
}
