/*
 * The log rate limiter (base/ratelimit.h): one line per second per call
 * site, the next one carrying the count of the lines dropped meanwhile,
 * and exactly one winner per interval among racing threads.
 * TEST_LABELS: tsan
 */
#include "base/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "test.h"

TEST(log_limit_one_line_per_interval_with_the_dropped_count)
{
    swoop_log_limit_t l = {0};
    ASSERT_EQ(swoop__log_limit(&l, 5000), 0); /* the first line goes out */
    for (int i = 0; i < 7; i++)
        ASSERT_EQ(swoop__log_limit(&l, 5000 + (uint64_t)i * 100), -1);
    ASSERT_EQ(swoop__log_limit(&l, 5999), -1);
    /* One interval later: out, telling the 8 it dropped. */
    ASSERT_EQ(swoop__log_limit(&l, 6000), 8);
    ASSERT_EQ(swoop__log_limit(&l, 6500), -1);
    /* A long quiet time: the next line is out at once with the one dropped line. */
    ASSERT_EQ(swoop__log_limit(&l, 60000), 1);
    ASSERT_EQ(swoop__log_limit(&l, 61000), 0);
}

#define THREADS 4
#define CALLS   20000

static swoop_log_limit_t shared_limit;
static _Atomic int winners;
static _Atomic int64_t
    reported; /* what the winner's line said it dropped (a racer may count first) */

static void *racer(void *arg)
{
    for (int i = 0; i < CALLS; i++) {
        int64_t n = swoop__log_limit(&shared_limit, 100000);
        if (n >= 0) {
            atomic_fetch_add(&winners, 1);
            atomic_fetch_add(&reported, n);
        }
    }
    return NULL;
}

TEST(log_limit_threads_elect_one_line)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, racer, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    ASSERT_EQ(atomic_load(&winners), 1);
    /* Every other call was counted once: by the winner's line or by the next interval's. */
    int64_t next = swoop__log_limit(&shared_limit, 101000);
    ASSERT_EQ(atomic_load(&reported) + next, THREADS * CALLS - 1);
}

static void log_many(int n)
{
    for (int i = 0; i < n; i++)
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "flood line %d", i);
}

TEST(log_limited_macro_writes_the_suppressed_count)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/limit.log", swoop_test_tmpdir());
    ASSERT_OK(swoop_log_open(path));
    swoop_log_set_level(SWOOP_LOG_INFO);
    /* Within one interval: one line of 1000. */
    uint64_t t0 = swoop__clock_ms();
    log_many(1000);
    ASSERT_LT(swoop__clock_ms() - t0, SWOOP_LOG_LIMIT_MS); /* else the count below differs */
    /* Below the level nothing is evaluated or counted. */
    swoop_log_set_level(SWOOP_LOG_ERROR);
    log_many(50);
    swoop_log_set_level(SWOOP_LOG_INFO);
    /* The next interval: one line, with the count. */
    swoop_test_sleep_ms(SWOOP_LOG_LIMIT_MS + 50);
    log_many(1);
    ASSERT_OK(swoop_log_open(NULL));
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int lines = 0;
    int first = 0, second = 0;
    while (fgets(line, sizeof(line), f)) {
        lines++;
        if (strstr(line, "flood line 0") && strstr(line, "suppressed") == NULL)
            first++;
        if (strstr(line, "flood line 0 (999 more suppressed)\n"))
            second++;
    }
    fclose(f);
    ASSERT_EQ(lines, 2);
    ASSERT_EQ(first, 1);
    ASSERT_EQ(second, 1);
}
