/*
 * Regressions from the BASE-mode review: the old and the new process of one
 * worker id (reload_async, max_request) never share session slots, so the
 * old one finishing cleanly or being killed after max_wait_time leaves the
 * new one's connections working (issue H).
 */
#include <stdio.h>

#include "server_common.h"

/* ---- H: old and new process of one worker id ---- */

struct reload_state {
    _Atomic int holding;   /* the old process is inside the held on_receive */
    _Atomic int release;   /* the test lets it return */
    _Atomic int a_send_rc; /* the old process's reply to the held connection */
    _Atomic int a_done;
};
static struct reload_state *rs;

/*
 * "hold": stays in on_receive until the test releases it (bounded), then
 * replies "done". Anything else: replies "<pid> <exists>" (10 bytes).
 */
static void on_hold_or_echo(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                            size_t len)
{
    if (len >= 4 && memcmp(data, "hold", 4) == 0) {
        atomic_store(&rs->holding, 1);
        uint64_t deadline = swoop_test_now_ms() + 10000 * swoop_test_multiplier();
        while (!atomic_load(&rs->release) && swoop_test_now_ms() < deadline)
            swoop_test_sleep_ms(1);
        atomic_store(&rs->a_send_rc, swoop_server_send(srv, conn, "done", 4));
        atomic_store(&rs->a_done, 1);
        return;
    }
    char reply[16];
    int n =
        snprintf(reply, sizeof(reply), "%08d %d", (int)getpid(), swoop_server_exists(srv, conn));
    ASSERT_EQ(n, 10);
    int rc = swoop_server_send(srv, conn, reply, (size_t)n);
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static void setup_reload(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", (const char *)arg));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_hold_or_echo}));
}

/* One round trip on `fd`: the responder's pid, and swoop_server_exists as it saw it. */
static void ping(int fd, pid_t *pid, int *exists)
{
    char buf[11] = {0};
    cli_write(fd, "ping", 4);
    ASSERT_UEQ(cli_read_n(fd, buf, 10, 3000), 10);
    int p = 0;
    ASSERT_EQ(sscanf(buf, "%d %d", &p, exists), 2);
    *pid = (pid_t)p;
}

static pid_t worker0_pid(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    return st.workers[0].pid;
}

/* `kill_old`: the old process never returns and is killed after max_wait_time (1 s). */
static void old_and_new_process(int kill_old)
{
    rs = srv_shared(sizeof(*rs));
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_reload, kill_old ? "1" : "5", 1);
    pid_t old = worker0_pid(&h);

    /* A: held inside on_receive of the old process. */
    int a = cli_connect(h.port);
    cli_write(a, "hold", 4);
    WAIT_UNTIL(atomic_load(&rs->holding), 3000);

    /* reload_async: the replacement starts while the old process still runs. */
    ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
    pid_t young = 0;
    WAIT_UNTIL((young = worker0_pid(&h)) != old && young > 0 && swoop_test_pid_alive(young), 3000);

    /* B: served by the new process (the old one is stuck in its handler). */
    int b = cli_connect(h.port);
    pid_t who;
    int exists;
    ping(b, &who, &exists);
    ASSERT_EQ(who, young);
    ASSERT_EQ(exists, 1);

    if (kill_old) {
        /* SIGKILL after max_wait_time; the manager releases what the old pid held. */
        ASSERT(cli_wait_closed(a, 5000));
    } else {
        atomic_store(&rs->release, 1);
        char buf[4];
        ASSERT_UEQ(cli_read_n(a, buf, 4, 3000), 4);
        ASSERT_MEM_EQ(buf, "done", 4);
        ASSERT(cli_wait_closed(a, 3000));
        ASSERT_EQ(atomic_load(&rs->a_send_rc), 0);
    }
    /* Reaped (a zombie still answers kill 0): the manager's release hook ran. */
    WAIT_UNTIL(kill(old, 0) < 0 && errno == ESRCH, 5000);
    close(a);

    /* B still works, on the same process, and only B is counted. */
    for (int i = 0; i < 3; i++) {
        ping(b, &who, &exists);
        ASSERT_EQ(who, young);
        ASSERT_EQ(exists, 1);
    }
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.connection_num == 1), 3000);
    ASSERT_EQ(worker0_pid(&h), young);
    close(b);
    atomic_store(&rs->release, 1);
    srv_stop(&h, 5000);
    munmap(rs, sizeof(*rs));
}

TEST(server_base_reload_old_process_exits_new_conn_kept)
{
    old_and_new_process(0);
}

TEST(server_base_reload_old_process_killed_new_conn_kept)
{
    old_and_new_process(1);
}
