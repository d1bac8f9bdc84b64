/*
 * Pool restart policy with real processes: a killed worker comes back with
 * the same id at once and on_worker_error sees the signal; a worker that
 * crashes at start is restarted with growing delays while the manager stays
 * responsive; the fatal exit code stops restarts; manager-side timers run.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/error.h>
#include <swoop/process.h>
#include <swoop/timer.h>

#include "pool_common.h"

#define NSTART 64

struct shared {
    _Atomic int starts[8];
    _Atomic uint64_t start_ms[NSTART]; /* worker 0's start times */
    _Atomic int errors;
    _Atomic int err_id;
    _Atomic int err_pid;
    _Atomic int err_code;
    _Atomic int err_signo;
    _Atomic int ticks;
    _Atomic int on_start;
    _Atomic int on_shutdown;
    _Atomic uint64_t shutdown_ms;
};

static struct shared *sh;

static void on_worker_start(swoop_pool_t *pool, int id)
{
    int k = atomic_fetch_add(&sh->starts[id], 1);
    if (id == 0 && k < NSTART)
        atomic_store(&sh->start_ms[k], swoop_test_now_ms());
}

static void on_worker_error(swoop_pool_t *pool, int id, pid_t pid, int code, int signo)
{
    atomic_store(&sh->err_id, id);
    atomic_store(&sh->err_pid, (int)pid);
    atomic_store(&sh->err_code, code);
    atomic_store(&sh->err_signo, signo);
    atomic_fetch_add(&sh->errors, 1);
}

static swoop_pool_t *make_pool(int n)
{
    sh = pool_test_shared(sizeof(*sh));
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, n));
    ASSERT_OK(swoop_pool_set(pool, "max_wait_time", "1"));
    return pool;
}

TEST(pool_kill_worker_restarts_same_id)
{
    swoop_pool_t *pool = make_pool(4);
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = on_worker_start,
                                                         .on_worker_error = on_worker_error}));
    pid_t manager = pool_test_start(pool);
    pid_t pids[4];
    pool_test_wait_all(pool, 4, pids);
    uint64_t worst = 0;
    for (int id = 0; id < 4; id++) {
        WAIT_UNTIL(atomic_load(&sh->starts[id]) == 1, 2000);
        int errors = atomic_load(&sh->errors);
        uint64_t t0 = swoop_test_now_ms();
        ASSERT_EQ(kill(pids[id], SIGKILL), 0);
        /* The replacement has the same id and ran on_worker_start. */
        WAIT_UNTIL(atomic_load(&sh->starts[id]) == 2, 1000);
        uint64_t latency = swoop_test_now_ms() - t0;
        if (latency > worst)
            worst = latency;
        pid_t now = pool_test_pid(pool, id);
        ASSERT_NE(now, pids[id]);
        ASSERT_GT(now, 0);
        ASSERT(swoop_test_pid_alive(now));
        WAIT_UNTIL(atomic_load(&sh->errors) == errors + 1, 1000);
        ASSERT_EQ(atomic_load(&sh->err_id), id);
        ASSERT_EQ(atomic_load(&sh->err_pid), pids[id]);
        ASSERT_EQ(atomic_load(&sh->err_signo), SIGKILL);
        swoop_pool_worker_info_t info;
        ASSERT_OK(swoop_pool_worker_info(pool, id, &info));
        ASSERT_UEQ(info.restarts, 1);
        ASSERT_EQ(info.last_signal, SIGKILL);
    }
    printf("# restart latency after SIGKILL (kill -> on_worker_start of the new pid): worst %llu "
           "ms of 4\n",
           (unsigned long long)worst);
    ASSERT_ULE(worst, 100 * swoop_test_multiplier());
    pool_test_stop(manager, 5000);
    for (int id = 0; id < 4; id++)
        ASSERT_EQ(pool_test_pid(pool, id), 0);
    swoop_pool_free(pool);
}

static void crash_at_start(swoop_pool_t *pool, int id)
{
    on_worker_start(pool, id);
    if (id == 0)
        _exit(1);
}

TEST_TIMEOUT(pool_crash_loop_backs_off, 60)
{
    swoop_pool_t *pool = make_pool(2);
    ASSERT_OK(swoop_pool_set(pool, "restart_backoff_min_ms", "10"));
    ASSERT_OK(swoop_pool_set(pool, "restart_backoff_max_ms", "200"));
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = crash_at_start,
                                                         .on_worker_error = on_worker_error}));
    pid_t manager = pool_test_start(pool);
    WAIT_UNTIL(atomic_load(&sh->starts[1]) == 1, 2000);
    pid_t healthy = pool_test_pid(pool, 1);
    WAIT_UNTIL(atomic_load(&sh->starts[0]) >= 20, 20000);

    /* While it backs off, SIGTERM must still be served at once. */
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(kill(manager, SIGTERM), 0);
    swoop_test_wait_ok(manager, 3000);
    uint64_t stop_ms = swoop_test_now_ms() - t0;

    char line[1024];
    int len = 0;
    uint64_t prev_iv = 0, in_first_second = 0; /* restarts, not counting the first start */
    for (int k = 1; k < 20; k++) {
        uint64_t iv = sh->start_ms[k] - sh->start_ms[k - 1];
        len += snprintf(line + len, sizeof(line) - (size_t)len, " %llu", (unsigned long long)iv);
        /* Delay after the k-th death: 0, 10, 20, 40, ... capped at 200; never early. */
        uint64_t expect = k == 1 ? 0 : (10u << (k - 2 < 5 ? k - 2 : 5));
        if (expect > 200)
            expect = 200;
        ASSERT_UGE(iv, expect);
        ASSERT_ULE(iv, expect + 100 * swoop_test_multiplier()); /* so it really grows */
        prev_iv = iv;
        if (sh->start_ms[k] - sh->start_ms[0] < 1000)
            in_first_second++;
    }
    printf("# crash loop restart intervals (ms):%s\n", line);
    printf("# restarts in the first second: %llu; SIGTERM during back-off served in %llu ms\n",
           (unsigned long long)in_first_second, (unsigned long long)stop_ms);
    ASSERT_UGE(prev_iv, 200);
    ASSERT_ULE(in_first_second, 10);
    ASSERT_ULE(stop_ms, 500 * swoop_test_multiplier());
    ASSERT_GE(atomic_load(&sh->errors), 19);
    ASSERT_EQ(atomic_load(&sh->err_code), 1);
    ASSERT_EQ(atomic_load(&sh->starts[1]), 1); /* the healthy worker was never touched */
    ASSERT(!swoop_test_pid_alive(healthy));
    swoop_pool_free(pool);
}

static void fatal_at_start(swoop_pool_t *pool, int id)
{
    on_worker_start(pool, id);
    if (id == 1)
        _exit(SWOOP_EXIT_FATAL);
}

TEST(pool_fatal_exit_not_restarted)
{
    swoop_pool_t *pool = make_pool(2);
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = fatal_at_start,
                                                         .on_worker_error = on_worker_error}));
    pid_t manager = pool_test_start(pool);
    swoop_pool_worker_info_t info;
    WAIT_UNTIL(swoop_pool_worker_info(pool, 1, &info) == 0 && info.last_exit_code == 2 &&
                   info.pid == 0,
               2000);
    WAIT_UNTIL(atomic_load(&sh->err_code) == SWOOP_EXIT_FATAL, 1000);
    /* A restart would come within milliseconds; give it ten times that. */
    uint64_t until = swoop_test_now_ms() + 200;
    while (swoop_test_now_ms() < until)
        ASSERT_EQ(atomic_load(&sh->starts[1]), 1);
    ASSERT_GT(pool_test_pid(pool, 0), 0);
    pool_test_stop(manager, 5000);
    swoop_pool_free(pool);
}

static swoop_pool_t *timer_pool;

static void on_tick(int64_t id, void *arg)
{
    /* Ticks of the 300 ms before the shutdown call: the manager keeps ticking while it stops. */
    if (atomic_load(&sh->shutdown_ms) == 0)
        atomic_fetch_add(&sh->ticks, 1);
}

static void on_stop_timer(int64_t id, void *arg)
{
    atomic_store(&sh->shutdown_ms, swoop_test_now_ms());
    ASSERT_OK(swoop_pool_shutdown(arg));
}

static void timer_on_start(swoop_pool_t *pool)
{
    atomic_store(&sh->on_start, 1);
    ASSERT_GT(swoop_timer_tick(20, on_tick, NULL), 0);
    ASSERT_GT(swoop_timer_after(300, on_stop_timer, pool), 0);
}

static void timer_on_shutdown(swoop_pool_t *pool)
{
    atomic_store(&sh->on_shutdown, 1);
}

TEST(pool_manager_timers_and_shutdown_call)
{
    timer_pool = make_pool(2);
    ASSERT_OK(swoop_pool_on(timer_pool, &(swoop_pool_events_t){.on_start = timer_on_start,
                                                               .on_shutdown = timer_on_shutdown}));
    uint64_t t0 = swoop_test_now_ms();
    pid_t manager = pool_test_start(timer_pool);
    swoop_test_wait_ok(manager, 3000);
    uint64_t took = swoop_test_now_ms() - t0;
    ASSERT_EQ(atomic_load(&sh->on_start), 1);
    ASSERT_EQ(atomic_load(&sh->on_shutdown), 1);
    ASSERT_UGE(atomic_load(&sh->shutdown_ms) - t0, 300);
    /* 300 ms of 20 ms ticks: about 14 (never early, so at most 15). */
    int ticks = atomic_load(&sh->ticks);
    printf("# manager ticks in 300 ms: %d; start to exit %llu ms\n", ticks,
           (unsigned long long)took);
    ASSERT_GE(ticks, 10);
    ASSERT_LE(ticks, 15);
    swoop_pool_free(timer_pool);
}
