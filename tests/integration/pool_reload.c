/*
 * Pool reload (SIGUSR1): every worker is replaced; a worker stuck in user
 * code is SIGKILLed after max_wait_time and that is logged; with
 * reload_async=0 the workers are replaced one by one, in id order.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/error.h>
#include <swoop/process.h>
#include <swoop/timer.h>

#include "pool_common.h"

struct shared {
    _Atomic int starts[4];
    _Atomic uint64_t gen1_ms[4]; /* when each id's second process started */
    _Atomic int stuck;
    _Atomic int spin;
};

static struct shared *sh;

static void spin(int64_t id, void *arg)
{
    atomic_store(&sh->stuck, 1);
    for (;;)
        atomic_fetch_add(&sh->spin, 1);
}

static void on_worker_start(swoop_pool_t *pool, int id)
{
    int gen = atomic_fetch_add(&sh->starts[id], 1);
    if (gen == 1)
        atomic_store(&sh->gen1_ms[id], swoop_test_now_ms());
    if (id == 1 && gen == 0 && swoop_pool_data(pool) != NULL)
        swoop_timer_after(5, spin, NULL);
}

static int count_in_log(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

static swoop_pool_t *make_pool(const char *log_file, int stuck, const char *async)
{
    sh = pool_test_shared(sizeof(*sh));
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 3));
    ASSERT_OK(swoop_pool_set(pool, "max_wait_time", "1"));
    ASSERT_OK(swoop_pool_set(pool, "reload_async", async));
    ASSERT_OK(swoop_pool_set(pool, "log_file", log_file));
    if (stuck)
        swoop_pool_set_data(pool, pool);
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = on_worker_start}));
    return pool;
}

TEST(pool_reload_kills_stuck_worker)
{
    char log_file[512];
    snprintf(log_file, sizeof(log_file), "%s/pool.log", swoop_test_tmpdir());
    swoop_pool_t *pool = make_pool(log_file, 1, "true");
    pid_t manager = pool_test_start(pool);
    pid_t old[3];
    pool_test_wait_all(pool, 3, old);
    for (int id = 0; id < 3; id++)
        WAIT_UNTIL(atomic_load(&sh->starts[id]) == 1, 2000);
    WAIT_UNTIL(atomic_load(&sh->stuck) == 1, 2000);

    uint64_t t0 = swoop_test_now_ms();
    ASSERT_OK(swoop_pool_reload(pool)); /* from outside: SIGUSR1 to the manager */
    /* reload_async: the two healthy ones are replaced at once. */
    for (int id = 0; id < 3; id += 2)
        WAIT_UNTIL(!swoop_test_pid_alive(old[id]) && atomic_load(&sh->starts[id]) == 2, 500);
    uint64_t healthy = swoop_test_now_ms() - t0;
    WAIT_UNTIL(!swoop_test_pid_alive(old[1]), 3000);
    uint64_t killed = swoop_test_now_ms() - t0;
    printf("# reload: healthy workers replaced in %llu ms, stuck one SIGKILLed after %llu ms "
           "(max_wait_time 1 s)\n",
           (unsigned long long)healthy, (unsigned long long)killed);
    ASSERT_UGE(killed, 950);
    ASSERT_ULE(killed, 1300 * swoop_test_multiplier());
    for (int id = 0; id < 3; id++) {
        WAIT_UNTIL(atomic_load(&sh->starts[id]) == 2, 1000);
        pid_t now = pool_test_pid(pool, id);
        ASSERT_NE(now, old[id]);
        ASSERT(swoop_test_pid_alive(now));
    }
    pool_test_stop(manager, 5000);
    ASSERT_EQ(count_in_log(log_file, "forced kill"), 1);
    swoop_test_assert_log_clean(log_file);
    swoop_pool_free(pool);
}

TEST(pool_reload_one_by_one)
{
    char log_file[512];
    snprintf(log_file, sizeof(log_file), "%s/pool.log", swoop_test_tmpdir());
    swoop_pool_t *pool = make_pool(log_file, 0, "0");
    pid_t manager = pool_test_start(pool);
    pid_t old[3];
    pool_test_wait_all(pool, 3, old);
    for (int id = 0; id < 3; id++)
        WAIT_UNTIL(atomic_load(&sh->starts[id]) == 1, 2000);
    ASSERT_EQ(kill(manager, SIGUSR1), 0);
    for (int id = 0; id < 3; id++)
        WAIT_UNTIL(atomic_load(&sh->starts[id]) == 2, 2000);
    /* In order: each one forked only after the previous one exited and was replaced. */
    swoop_pool_worker_info_t info[3];
    for (int id = 0; id < 3; id++)
        ASSERT_OK(swoop_pool_worker_info(pool, id, &info[id]));
    ASSERT_ULE(info[0].start_ms, info[1].start_ms);
    ASSERT_ULE(info[1].start_ms, info[2].start_ms);
    for (int id = 0; id < 3; id++) {
        ASSERT(!swoop_test_pid_alive(old[id]));
        ASSERT_NE(pool_test_pid(pool, id), old[id]);
    }
    WAIT_UNTIL(count_in_log(log_file, "reload finished") == 1, 1000);
    pool_test_stop(manager, 5000);
    ASSERT_EQ(count_in_log(log_file, "forced kill"), 0);
    swoop_test_assert_log_clean(log_file);
    swoop_pool_free(pool);
}

static void on_worker_stop_fatal(swoop_pool_t *pool, int id)
{
    /* Worker 0 refuses to come back: it leaves with the fatal code when reloaded. */
    if (id == 0)
        _exit(SWOOP_EXIT_FATAL);
}

/*
 * Regression (review): a one-by-one reload whose current worker exits with
 * the fatal code must go on with the next workers, and later reloads must
 * still work (the reload queue used to stay stuck on the fatal slot).
 */
TEST(pool_reload_one_by_one_survives_fatal_exit)
{
    char log_file[512];
    snprintf(log_file, sizeof(log_file), "%s/pool.log", swoop_test_tmpdir());
    swoop_pool_t *pool = make_pool(log_file, 0, "0");
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = on_worker_start,
                                                         .on_worker_stop = on_worker_stop_fatal}));
    pid_t manager = pool_test_start(pool);
    pool_test_wait_all(pool, 3, NULL);
    for (int id = 0; id < 3; id++)
        WAIT_UNTIL(atomic_load(&sh->starts[id]) == 1, 2000);
    ASSERT_EQ(kill(manager, SIGUSR1), 0);
    /* Worker 0 is gone for good; 1 and 2 are still replaced, in order. */
    WAIT_UNTIL(atomic_load(&sh->starts[1]) == 2 && atomic_load(&sh->starts[2]) == 2, 3000);
    ASSERT_EQ(atomic_load(&sh->starts[0]), 1);
    /* A second reload is not refused as "already in progress". */
    ASSERT_EQ(kill(manager, SIGUSR1), 0);
    WAIT_UNTIL(atomic_load(&sh->starts[1]) == 3 && atomic_load(&sh->starts[2]) == 3, 3000);
    pool_test_stop(manager, 5000);
    swoop_pool_free(pool);
}
