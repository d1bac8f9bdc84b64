/*
 * The monotonic clock. The event loop caches its reading once per iteration
 * (swoop_loop_now); code that must never be early (timer arming) reads it
 * fresh. CLOCK_MONOTONIC ignores wall-clock steps.
 */
#ifndef SWOOP_BASE_CLOCK_H
#define SWOOP_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

#define SWOOP_NS_PER_MS  1000000ULL
#define SWOOP_NS_PER_SEC 1000000000ULL

/* Nanoseconds on CLOCK_MONOTONIC; a vDSO call, no syscall. */
static inline uint64_t swoop__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SWOOP_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static inline uint64_t swoop__clock_ms(void)
{
    return swoop__clock_ns() / SWOOP_NS_PER_MS;
}

#endif /* SWOOP_BASE_CLOCK_H */
