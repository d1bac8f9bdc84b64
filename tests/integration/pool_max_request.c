/*
 * max_request: a worker that counted its limit of requests stops taking
 * messages, a replacement (same id) takes the rest at once; with
 * max_request_grace the workers' limits, and so their restarts, spread out.
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <swoop/error.h>
#include <swoop/process.h>
#include <swoop/timer.h>

#include "pool_common.h"

struct shared {
    _Atomic int starts[4];
    _Atomic int per_gen[8];
    _Atomic int total;
    _Atomic uint64_t retired_ms[4];
    _Atomic int64_t limit[4];
};

static struct shared *sh;
static int my_gen; /* per worker process */

static void on_worker_start(swoop_pool_t *pool, int id)
{
    my_gen = atomic_fetch_add(&sh->starts[id], 1);
}

static void on_message(swoop_pool_t *pool, int id, const void *data, size_t len)
{
    if (my_gen < 8)
        atomic_fetch_add(&sh->per_gen[my_gen], 1);
    atomic_fetch_add(&sh->total, 1);
    swoop_pool_count_request(pool);
}

static void on_start(swoop_pool_t *pool)
{
    for (int i = 0; i < 30; i++)
        ASSERT_OK(swoop_pool_send(pool, 0, "req", 3));
}

TEST(pool_max_request_exact)
{
    sh = pool_test_shared(sizeof(*sh));
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 1));
    ASSERT_OK(swoop_pool_set(pool, "ipc_mode", "pipe"));
    ASSERT_OK(swoop_pool_set(pool, "max_request", "12"));
    ASSERT_OK(swoop_pool_set(pool, "max_request_grace", "0"));
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_start = on_start,
                                                         .on_worker_start = on_worker_start,
                                                         .on_message = on_message}));
    pid_t manager = pool_test_start(pool);
    WAIT_UNTIL(atomic_load(&sh->total) == 30, 3000);
    printf("# 30 requests, max_request 12: per process %d %d %d\n", sh->per_gen[0], sh->per_gen[1],
           sh->per_gen[2]);
    ASSERT_EQ(sh->per_gen[0], 12);
    ASSERT_EQ(sh->per_gen[1], 12);
    ASSERT_EQ(sh->per_gen[2], 6);
    swoop_pool_worker_info_t info;
    ASSERT_OK(swoop_pool_worker_info(pool, 0, &info));
    ASSERT_UEQ(info.restarts, 2);
    ASSERT_EQ(info.request_limit, 12);
    ASSERT_UEQ(info.requests, 6);
    pool_test_stop(manager, 5000);
    swoop_pool_free(pool);
}

static void tick_request(int64_t id, void *arg)
{
    swoop_pool_t *pool = arg;
    swoop_pool_count_request(pool);
}

static void grace_start(swoop_pool_t *pool, int id)
{
    int gen = atomic_fetch_add(&sh->starts[id], 1);
    if (gen == 0)
        swoop_timer_tick(10, tick_request, pool);
}

static void grace_stop(swoop_pool_t *pool, int id)
{
    if (atomic_load(&sh->retired_ms[id]) == 0)
        atomic_store(&sh->retired_ms[id], swoop_test_now_ms());
}

TEST(pool_max_request_grace_spreads_restarts)
{
    sh = pool_test_shared(sizeof(*sh));
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 4));
    swoop_pool_settings(pool)->max_request = 20;
    swoop_pool_settings(pool)->max_request_grace = 200;
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = grace_start,
                                                         .on_worker_stop = grace_stop}));
    pid_t manager = pool_test_start(pool);
    int64_t limits[4];
    for (int id = 0; id < 4; id++) {
        swoop_pool_worker_info_t info;
        WAIT_UNTIL(swoop_pool_worker_info(pool, id, &info) == 0 && info.request_limit > 0, 2000);
        limits[id] = info.request_limit;
        ASSERT_GE(limits[id], 20);
        ASSERT_LE(limits[id], 220);
    }
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int id = 0; id < 4; id++) {
        WAIT_UNTIL(atomic_load(&sh->retired_ms[id]) != 0, 5000);
        WAIT_UNTIL(atomic_load(&sh->starts[id]) == 2, 1000);
        uint64_t t = atomic_load(&sh->retired_ms[id]);
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    printf("# grace 200: limits %lld %lld %lld %lld, retirements spread over %llu ms\n",
           (long long)limits[0], (long long)limits[1], (long long)limits[2], (long long)limits[3],
           (unsigned long long)(hi - lo));
    ASSERT_UGE(hi - lo, 100);
    pool_test_stop(manager, 5000);
    swoop_pool_free(pool);
}
