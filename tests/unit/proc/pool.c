/* Pool settings and calls that need no running pool: the string setter, states, back-off. */
#include <swoop/process.h>

#include <swoop/error.h>

#include "proc/internal.h"
#include "test.h"

TEST(pool_new_rejects_bad_worker_num)
{
    swoop_pool_t *pool;
    ASSERT_EQ(swoop_pool_new(&pool, 0), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_new(&pool, 1025), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_new(NULL, 1), SWOOP_EINVAL);
}

TEST(pool_string_setter)
{
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 2));
    swoop_pool_settings_t *s = swoop_pool_settings(pool);
    ASSERT_EQ(s->max_request, 0);
    ASSERT_EQ(s->max_request_grace, -1);
    ASSERT_EQ(s->max_wait_time, 3);
    ASSERT_EQ(s->reload_async, 1);
    ASSERT_EQ(s->ipc_mode, SWOOP_POOL_IPC_NONE);

    ASSERT_OK(swoop_pool_set(pool, "max_request", "100"));
    ASSERT_EQ(s->max_request, 100);
    ASSERT_OK(swoop_pool_set(pool, "max_request_grace", "7"));
    ASSERT_EQ(s->max_request_grace, 7);
    ASSERT_OK(swoop_pool_set(pool, "max_wait_time", "5"));
    ASSERT_EQ(s->max_wait_time, 5);
    ASSERT_OK(swoop_pool_set(pool, "reload_async", "false"));
    ASSERT_EQ(s->reload_async, 0);
    ASSERT_OK(swoop_pool_set(pool, "daemonize", "0"));
    ASSERT_OK(swoop_pool_set(pool, "ipc_mode", "msgqueue"));
    ASSERT_EQ(s->ipc_mode, SWOOP_POOL_IPC_MSGQUEUE);
    ASSERT_OK(swoop_pool_set(pool, "ipc_mode", "pipe"));
    ASSERT_EQ(s->ipc_mode, SWOOP_POOL_IPC_PIPE);
    ASSERT_OK(swoop_pool_set(pool, "log_level", "warning"));
    ASSERT_EQ(s->log_level, 4);
    ASSERT_OK(swoop_pool_set(pool, "pid_file", "/tmp/x.pid"));
    ASSERT_STR_EQ(s->pid_file, "/tmp/x.pid");
    ASSERT_OK(swoop_pool_set(pool, "message_queue_key", "1234"));
    ASSERT_OK(swoop_pool_set(pool, "restart_backoff_max_ms", "500"));

    ASSERT_EQ(swoop_pool_set(pool, "no_such_key", "1"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_set(pool, "max_request", "-1"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_set(pool, "max_request", "12x"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_set(pool, "max_wait_time", ""), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_set(pool, "reload_async", "maybe"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_set(pool, "ipc_mode", "carrier-pigeon"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_set(pool, "log_level", "loud"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_set(pool, "max_request", NULL), SWOOP_EINVAL);
    ASSERT_EQ(s->max_request, 100); /* a bad value changes nothing */

    int x = 42;
    swoop_pool_set_data(pool, &x);
    ASSERT(swoop_pool_data(pool) == &x);
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){0}));
    ASSERT_EQ(swoop_pool_worker_id(pool), -1);
    ASSERT_EQ(swoop_pool_count_request(pool), SWOOP_ESTATE);
    ASSERT_EQ(swoop_pool_send(pool, 0, "x", 1), SWOOP_ESTATE);
    ASSERT_EQ(swoop_pool_send(pool, 2, "x", 1), SWOOP_EINVAL);
    ASSERT_EQ(swoop_pool_shutdown(pool), SWOOP_ESTATE);
    ASSERT_EQ(swoop_pool_manager_pid(pool), 0);
    swoop_pool_worker_info_t info;
    ASSERT_EQ(swoop_pool_worker_info(pool, 2, &info), SWOOP_EINVAL);
    ASSERT_OK(swoop_pool_worker_info(pool, 1, &info));
    ASSERT_EQ(info.pid, 0);
    ASSERT_OK(swoop_pool_free(pool));
}

TEST(manager_backoff_sequence)
{
    swoop_manager_t mgr;
    swoop_manager_hooks_t hooks = {0};
    ASSERT_OK(swoop__manager_init(&mgr, 1, &hooks));
    mgr.backoff_min_ms = 10;
    mgr.backoff_max_ms = 3000;
    ASSERT_EQ(swoop__manager_backoff_ms(&mgr, 1), 0);
    ASSERT_EQ(swoop__manager_backoff_ms(&mgr, 2), 10);
    ASSERT_EQ(swoop__manager_backoff_ms(&mgr, 3), 20);
    ASSERT_EQ(swoop__manager_backoff_ms(&mgr, 9), 1280);
    ASSERT_EQ(swoop__manager_backoff_ms(&mgr, 10), 2560);
    ASSERT_EQ(swoop__manager_backoff_ms(&mgr, 11), 3000);
    ASSERT_EQ(swoop__manager_backoff_ms(&mgr, 1000), 3000);
    swoop__manager_destroy(&mgr);
}
