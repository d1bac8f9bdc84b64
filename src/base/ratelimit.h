/*
 * Rate-limited log lines, for every line a peer can cause (a client that
 * pipelines and never reads, a flood of oversized packets or connections):
 * each call site logs at most once per SWOOP_LOG_LIMIT_MS, and the next line
 * that goes out ends with "(N more suppressed)", the count of the lines it
 * dropped meanwhile. The state is a pair of atomics per call site, shared by
 * the threads of a process (PROCESS reactor threads) without a lock; a
 * forked child starts from its parent's copy, which at worst delays its
 * first line by one interval. Internal: never included by a public header.
 */
#ifndef SWOOP_BASE_RATELIMIT_H
#define SWOOP_BASE_RATELIMIT_H

#include <stdatomic.h>
#include <stdint.h>

#include <swoop/log.h>

#include "base/clock.h"

#define SWOOP_LOG_LIMIT_MS 1000

typedef struct swoop_log_limit_s {
    _Atomic uint64_t next_ms;    /* monotonic ms before which lines are dropped */
    _Atomic uint64_t suppressed; /* lines dropped since the last one written */
} swoop_log_limit_t;

/*
 * Decides for one line at `now_ms` (monotonic): returns -1 when it must be
 * dropped (and counts it), else the number of lines dropped since the last
 * one that went out. Exactly one caller wins each interval, however many
 * threads race for it.
 */
int64_t swoop__log_limit(swoop_log_limit_t *l, uint64_t now_ms);

/* swoop_log_write, with " (N more suppressed)" appended when N > 0. */
void swoop__log_write_limited(int level, int err, const char *func, uint64_t suppressed,
                              const char *fmt, ...) SWOOP_PRINTF(5, 6);

/*
 * swoop_log, rate-limited per call site: each expansion owns a static
 * limiter. Arguments are evaluated only for a line that goes out.
 */
#define swoop__log_limited(level, err, ...)                                                        \
    do {                                                                                           \
        static swoop_log_limit_t swoop_limit_;                                                     \
        if (swoop_log_enabled(level)) {                                                            \
            int64_t swoop_dropped_ = swoop__log_limit(&swoop_limit_, swoop__clock_ms());           \
            if (swoop_dropped_ >= 0)                                                               \
                swoop__log_write_limited((level), (err), __func__, (uint64_t)swoop_dropped_,       \
                                         __VA_ARGS__);                                             \
        }                                                                                          \
    } while (0)

#endif /* SWOOP_BASE_RATELIMIT_H */
