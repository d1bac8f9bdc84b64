/*
 * Regressions from the BASE-mode review: the old and the new process of one
 * worker id (reload_async, max_request) never share session slots, so the
 * old one finishing cleanly or being killed after max_wait_time leaves the
 * new one's connections working (issue H); a callback that closes its own
 * connection gets on_close after it returned, never while it is still on
 * the stack, exactly once (issue I).
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

/* ---- I: on_close after the callback that closed the connection ---- */

enum { EV_RECV = 1, EV_RECV_AFTER = 2, EV_CLOSE = 3, EV_CONN = 4, EV_CONN_AFTER = 5 };

struct close_order {
    _Atomic int n;
    _Atomic int ev[16];
    _Atomic int closes;
    _Atomic int close_rc;
    _Atomic int exists_after;
    _Atomic int close_in_connect;
};
static struct close_order *co;

static void co_record(int ev)
{
    int i = atomic_fetch_add(&co->n, 1);
    if (i < 16)
        atomic_store(&co->ev[i], ev);
}

/* Closes `conn` from inside its callback, then keeps going as user code would. */
static void close_inside(swoop_server_t *srv, swoop_conn_id_t conn, int before, int after)
{
    co_record(before);
    atomic_store(&co->close_rc, swoop_server_close(srv, conn, 0));
    atomic_store(&co->exists_after, swoop_server_exists(srv, conn));
    co_record(after);
}

static void co_on_connect(swoop_server_t *srv, swoop_conn_id_t conn, int rid)
{
    if (atomic_load(&co->close_in_connect))
        close_inside(srv, conn, EV_CONN, EV_CONN_AFTER);
}

static void co_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                          size_t len)
{
    close_inside(srv, conn, EV_RECV, EV_RECV_AFTER);
}

static void co_on_close(swoop_server_t *srv, swoop_conn_id_t conn, int rid)
{
    co_record(EV_CLOSE);
    atomic_fetch_add(&co->closes, 1);
}

static void setup_close_order(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_connect = co_on_connect,
                                                            .on_receive = co_on_receive,
                                                            .on_close = co_on_close}));
}

static void close_from_callback(int in_connect)
{
    co = srv_shared(sizeof(*co));
    atomic_store(&co->close_in_connect, in_connect);
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_close_order, NULL, 2);
    int fd = cli_connect(h.port);
    if (!in_connect)
        cli_write(fd, "x", 1);
    ASSERT(cli_wait_closed(fd, 3000));
    close(fd);
    WAIT_UNTIL(atomic_load(&co->closes) == 1, 3000);
    srv_stop(&h, 5000);
    /* Exactly once, and only after the closing callback returned. */
    ASSERT_EQ(atomic_load(&co->closes), 1);
    ASSERT_EQ(atomic_load(&co->n), 3);
    int first = atomic_load(&co->ev[0]), second = atomic_load(&co->ev[1]);
    int third = atomic_load(&co->ev[2]);
    int want_first = in_connect ? EV_CONN : EV_RECV;
    int want_second = in_connect ? EV_CONN_AFTER : EV_RECV_AFTER;
    ASSERT_EQ(first, want_first);
    ASSERT_EQ(second, want_second);
    ASSERT_EQ(third, EV_CLOSE);
    ASSERT_EQ(atomic_load(&co->close_rc), 0);
    ASSERT_EQ(atomic_load(&co->exists_after), 0);
    munmap(co, sizeof(*co));
}

TEST(server_base_close_in_on_receive_defers_on_close)
{
    close_from_callback(0);
}

TEST(server_base_close_in_on_connect_defers_on_close)
{
    close_from_callback(1);
}
