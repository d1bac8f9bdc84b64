/*
 * Pool log rotation (SIGRTMIN reopens the log in the manager and in every
 * worker) and daemonize (the caller exits, a detached manager runs, writes
 * its pid file and still shuts down cleanly on SIGTERM).
 */
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <swoop/error.h>
#include <swoop/process.h>

#include "pool_common.h"

struct shared {
    _Atomic int started[4];
};

static struct shared *sh;

static void on_worker_start(swoop_pool_t *pool, int id)
{
    atomic_fetch_add(&sh->started[id], 1);
}

static int count_in_file(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

TEST(pool_sigrtmin_reopens_logs)
{
    sh = pool_test_shared(sizeof(*sh));
    char log_file[512], rotated[512];
    snprintf(log_file, sizeof(log_file), "%s/pool.log", swoop_test_tmpdir());
    snprintf(rotated, sizeof(rotated), "%s/pool.log.1", swoop_test_tmpdir());
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 2));
    ASSERT_OK(swoop_pool_set(pool, "log_file", log_file));
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = on_worker_start}));
    pid_t manager = pool_test_start(pool);
    for (int id = 0; id < 2; id++)
        WAIT_UNTIL(atomic_load(&sh->started[id]) == 1, 2000);
    ASSERT_EQ(rename(log_file, rotated), 0);
    ASSERT_EQ(kill(manager, SIGRTMIN), 0);
    /* One line from the manager and one from each worker, all in the new file. */
    WAIT_UNTIL(count_in_file(log_file, "log file reopened") == 3, 2000);
    ASSERT_EQ(count_in_file(rotated, "log file reopened"), 0);
    ASSERT_EQ(atomic_load(&sh->started[0]), 1); /* nobody died of SIGRTMIN */
    ASSERT_EQ(atomic_load(&sh->started[1]), 1);
    pool_test_stop(manager, 5000);
    swoop_test_assert_log_clean(log_file);
    swoop_pool_free(pool);
}

TEST(pool_daemonize)
{
    sh = pool_test_shared(sizeof(*sh));
    char pid_file[512], log_file[512];
    snprintf(pid_file, sizeof(pid_file), "%s/pool.pid", swoop_test_tmpdir());
    snprintf(log_file, sizeof(log_file), "%s/pool.log", swoop_test_tmpdir());
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 2));
    ASSERT_OK(swoop_pool_set(pool, "daemonize", "true"));
    ASSERT_OK(swoop_pool_set(pool, "pid_file", pid_file));
    ASSERT_OK(swoop_pool_set(pool, "log_file", log_file));
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = on_worker_start}));
    pid_t caller = swoop_test_fork(pool_test_manager_main, pool, NULL);
    swoop_test_wait_ok(caller, 2000); /* the caller exits 0 at once */
    WAIT_UNTIL(swoop_pool_manager_pid(pool) > 0, 2000);
    pid_t daemon = swoop_pool_manager_pid(pool);
    ASSERT_NE(daemon, caller);
    ASSERT_NE(getsid(daemon), getsid(0)); /* a session of its own */
    ASSERT_NE(getsid(daemon), daemon);    /* but not its leader: no terminal can come back */
    struct stat st;
    WAIT_UNTIL(stat(pid_file, &st) == 0, 2000);
    FILE *f = fopen(pid_file, "r");
    ASSERT_NOT_NULL(f);
    int filed = 0;
    ASSERT_EQ(fscanf(f, "%d", &filed), 1);
    fclose(f);
    ASSERT_EQ(filed, daemon);
    pid_t pids[2];
    pool_test_wait_all(pool, 2, pids);
    ASSERT_EQ(kill(daemon, SIGTERM), 0);
    WAIT_UNTIL(!swoop_test_pid_alive(daemon), 3000);
    for (int id = 0; id < 2; id++)
        ASSERT(!swoop_test_pid_alive(pids[id]));
    ASSERT(stat(pid_file, &st) < 0);
    ASSERT_GE(count_in_file(log_file, "manager stopped"), 1);
    swoop_pool_free(pool);
}
