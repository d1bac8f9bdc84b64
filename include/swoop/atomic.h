/*
 * 64-bit atomics that work across processes. A swoop_atomic_t is a small
 * public struct that must live in memory shared by the processes using it:
 * either let swoop_atomic_new give it a shared page of its own (before
 * fork), or place it inside a segment you own (swoop_shm_new, a table's
 * neighbour, a server's stats block) and call swoop_atomic_init on it.
 * Every operation is sequentially consistent. wait/wakeup sleep on a Linux
 * futex, so a waiter uses no CPU.
 */
#ifndef SWOOP_ATOMIC_H
#define SWOOP_ATOMIC_H

#include <stdint.h>

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/**
 * A 64-bit shared counter. Fields are private; the size (16 bytes) and the
 * 8-byte alignment are part of the ABI so it can be embedded in shared
 * structures.
 */
typedef struct swoop_atomic_s {
    int64_t _value;   /* the counter */
    uint32_t _seq;    /* futex word: bumped by every wakeup */
    uint32_t _unused; /* keeps the size at 16 */
} swoop_atomic_t;

/** Initialises an atomic that lives in caller-provided shared memory. */
SWOOP_EXTERN void swoop_atomic_init(swoop_atomic_t *a, int64_t initial);

/**
 * Allocates an atomic in a shared anonymous page of its own (call before
 * fork) and initialises it. Free it with swoop_atomic_free in the creator.
 */
SWOOP_EXTERN int swoop_atomic_new(swoop_atomic_t **out, int64_t initial);

/** Unmaps an atomic made by swoop_atomic_new. NULL is ignored. */
SWOOP_EXTERN void swoop_atomic_free(swoop_atomic_t *a);

/** Returns the current value. */
SWOOP_EXTERN int64_t swoop_atomic_get(const swoop_atomic_t *a);

/** Stores `v`. */
SWOOP_EXTERN void swoop_atomic_set(swoop_atomic_t *a, int64_t v);

/** Adds `n` and returns the new value (wraps like unsigned arithmetic). */
SWOOP_EXTERN int64_t swoop_atomic_add(swoop_atomic_t *a, int64_t n);

/** Subtracts `n` and returns the new value. */
SWOOP_EXTERN int64_t swoop_atomic_sub(swoop_atomic_t *a, int64_t n);

/** Stores `desired` if the value is `expected`; returns 1 if it did, 0 if not. */
SWOOP_EXTERN int swoop_atomic_cmpset(swoop_atomic_t *a, int64_t expected, int64_t desired);

/**
 * Waits for a wakeup, Swoole's semantics: if the value is 1 it is reset to 0
 * and the call returns 0 at once; otherwise the caller sleeps until
 * swoop_atomic_wakeup sets it to 1 (then consumes it: 1 -> 0, returns 0), or
 * `timeout_ms` passes (SWOOP_ETIMEDOUT). A negative timeout waits forever.
 * Only one waiter consumes each wakeup; the others sleep again.
 */
SWOOP_EXTERN int swoop_atomic_wait(swoop_atomic_t *a, int timeout_ms);

/**
 * Sets the value from 0 to 1 and wakes up to `n` waiters (n <= 0 wakes all).
 * Returns the number of processes or threads woken (>= 0), or 0 when the
 * value was not 0 (a wakeup is already pending).
 */
SWOOP_EXTERN int swoop_atomic_wakeup(swoop_atomic_t *a, int n);

SWOOP_END_DECLS

#endif /* SWOOP_ATOMIC_H */
