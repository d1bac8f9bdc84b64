/*
 * Pool shutdown: SIGTERM stops every worker (on_worker_stop runs, a stuck
 * one is SIGKILLed after max_wait_time), removes the pid file and exits 0;
 * SIGKILL of the manager takes every worker with it (PR_SET_PDEATHSIG).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/error.h>
#include <swoop/process.h>
#include <swoop/timer.h>

#include "pool_common.h"

struct shared {
    _Atomic int started[4];
    _Atomic int stopped[4];
    _Atomic int stuck;
    _Atomic int on_shutdown;
};

static struct shared *sh;

static void spin(int64_t id, void *arg)
{
    atomic_store(&sh->stuck, 1);
    for (;;)
        atomic_fetch_add(&sh->started[3], 0); /* busy in user code: never sees SIGTERM */
}

static void on_worker_start(swoop_pool_t *pool, int id)
{
    atomic_fetch_add(&sh->started[id], 1);
    if (id == 2 && swoop_pool_data(pool) != NULL)
        swoop_timer_after(5, spin, NULL);
}

static void on_worker_stop(swoop_pool_t *pool, int id)
{
    atomic_fetch_add(&sh->stopped[id], 1);
}

static void on_shutdown(swoop_pool_t *pool)
{
    atomic_store(&sh->on_shutdown, 1);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

TEST(pool_sigterm_stops_everything)
{
    sh = pool_test_shared(sizeof(*sh));
    char pid_file[512], log_file[512];
    snprintf(pid_file, sizeof(pid_file), "%s/pool.pid", swoop_test_tmpdir());
    snprintf(log_file, sizeof(log_file), "%s/pool.log", swoop_test_tmpdir());
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 3));
    ASSERT_OK(swoop_pool_set(pool, "max_wait_time", "1"));
    ASSERT_OK(swoop_pool_set(pool, "pid_file", pid_file));
    ASSERT_OK(swoop_pool_set(pool, "log_file", log_file));
    ASSERT_OK(swoop_pool_set(pool, "ipc_mode", "pipe"));
    swoop_pool_set_data(pool, pool); /* non-NULL: worker 2 gets stuck */
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = on_worker_start,
                                                         .on_worker_stop = on_worker_stop,
                                                         .on_shutdown = on_shutdown}));
    pid_t manager = pool_test_start(pool);
    pid_t pids[3];
    pool_test_wait_all(pool, 3, pids);
    WAIT_UNTIL(atomic_load(&sh->stuck) == 1, 2000);

    /* The pid file names the manager. */
    FILE *f = fopen(pid_file, "r");
    ASSERT_NOT_NULL(f);
    int filed = 0;
    ASSERT_EQ(fscanf(f, "%d", &filed), 1);
    fclose(f);
    ASSERT_EQ(filed, manager);

    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(kill(manager, SIGTERM), 0);
    for (int i = 0; i < 2; i++)
        WAIT_UNTIL(!swoop_test_pid_alive(pids[i]), 500);
    uint64_t fast = swoop_test_now_ms() - t0;
    swoop_test_wait_ok(manager, 2000 + 500);
    uint64_t all = swoop_test_now_ms() - t0;
    printf("# SIGTERM: idle workers gone in %llu ms, stuck worker killed and manager exited in "
           "%llu ms (max_wait_time 1 s)\n",
           (unsigned long long)fast, (unsigned long long)all);
    ASSERT_UGE(all, 1000);
    ASSERT_ULE(all, 2000 * swoop_test_multiplier());
    for (int i = 0; i < 3; i++)
        ASSERT(!swoop_test_pid_alive(pids[i]));
    ASSERT_EQ(atomic_load(&sh->stopped[0]), 1);
    ASSERT_EQ(atomic_load(&sh->stopped[1]), 1);
    ASSERT_EQ(atomic_load(&sh->stopped[2]), 0); /* killed: it never got to run it */
    ASSERT_EQ(atomic_load(&sh->on_shutdown), 1);
    ASSERT(!file_exists(pid_file));

    /* The log names the forced kill once and nothing worse than a warning. */
    f = fopen(log_file, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int forced = 0;
    while (fgets(line, sizeof(line), f))
        forced += strstr(line, "forced kill") != NULL;
    fclose(f);
    ASSERT_EQ(forced, 1);
    swoop_test_assert_log_clean(log_file);
    swoop_pool_free(pool);
}

TEST(pool_manager_sigkill_takes_workers_along)
{
    sh = pool_test_shared(sizeof(*sh));
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 3));
    ASSERT_OK(swoop_pool_set(pool, "ipc_mode", "pipe"));
    swoop_pool_set_data(pool, pool); /* worker 2 busy-loops: only SIGKILL can end it */
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = on_worker_start}));
    pid_t manager = pool_test_start(pool);
    pid_t pids[3];
    pool_test_wait_all(pool, 3, pids);
    WAIT_UNTIL(atomic_load(&sh->stuck) == 1, 2000);
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(kill(manager, SIGKILL), 0);
    for (int i = 0; i < 3; i++)
        WAIT_UNTIL(!swoop_test_pid_alive(pids[i]), 1000);
    printf("# manager SIGKILLed: all workers gone in %llu ms\n",
           (unsigned long long)(swoop_test_now_ms() - t0));
    int status = swoop_test_wait_pid(manager, 1000);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    swoop_pool_free(pool);
}

/*
 * Signals that reach the manager while it stops (a retiring worker's late
 * SIGIO, a reload, a second SIGTERM) are still pending when it restores the
 * caller's signal actions: they are discarded, not delivered with their
 * default action (SIGIO's and SIGUSR1's kill), so swoop_pool_start returns
 * 0 and the manager exits 0.
 */
static void raise_late_signals(swoop_pool_t *pool)
{
    raise(SIGIO); /* blocked in the manager until it restores the mask */
    raise(SIGUSR1);
    raise(SIGTERM);
}

TEST(pool_late_signals_at_stop_are_discarded)
{
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 1));
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_shutdown = raise_late_signals}));
    pid_t manager = pool_test_start(pool);
    pool_test_wait_all(pool, 1, NULL);
    pool_test_stop(manager, 5000); /* fails unless the manager exits 0 */
    swoop_pool_free(pool);
}
