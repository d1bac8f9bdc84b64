/*
 * Helpers shared by the pool integration tests: a shared page the test maps
 * before forking the manager (so workers and the manager can report to the
 * test), forking the manager, and waiting for the slots' pids.
 */
#ifndef SWOOP_TEST_POOL_COMMON_H
#define SWOOP_TEST_POOL_COMMON_H

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <swoop/process.h>

#include "test.h"

static inline void *pool_test_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT(p != MAP_FAILED);
    memset(p, 0, size);
    return p;
}

static void pool_test_manager_main(void *arg, int ready_fd)
{
    swoop_pool_t *pool = arg;
    int rc = swoop_pool_start(pool);
    ASSERT_EQ(rc, 0);
    swoop_pool_free(pool);
}

/* Forks the manager: the child runs swoop_pool_start on (its copy of) `pool`. */
static inline pid_t pool_test_start(swoop_pool_t *pool)
{
    pid_t pid = swoop_test_fork(pool_test_manager_main, pool, NULL);
    ASSERT_GT(pid, 0);
    WAIT_UNTIL(swoop_pool_manager_pid(pool) == pid, 2000);
    return pid;
}

static inline pid_t pool_test_pid(swoop_pool_t *pool, int id)
{
    swoop_pool_worker_info_t info;
    ASSERT_OK(swoop_pool_worker_info(pool, id, &info));
    return info.pid;
}

/* Waits until every slot has a running process. */
static inline void pool_test_wait_all(swoop_pool_t *pool, int n, pid_t *pids)
{
    for (int i = 0; i < n; i++) {
        WAIT_UNTIL(pool_test_pid(pool, i) > 0 && swoop_test_pid_alive(pool_test_pid(pool, i)),
                   3000);
        if (pids)
            pids[i] = pool_test_pid(pool, i);
    }
}

/* SIGTERMs the manager and checks it exits 0 within `ms`. */
static inline void pool_test_stop(pid_t manager, int ms)
{
    ASSERT_EQ(kill(manager, SIGTERM), 0);
    swoop_test_wait_ok(manager, ms);
}

#endif /* SWOOP_TEST_POOL_COMMON_H */
