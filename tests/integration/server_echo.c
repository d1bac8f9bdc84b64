/*
 * Echo through real servers in both modes: 1, 100 and 1,000 concurrent
 * connections, every byte checked; then SIGTERM: clean exit, nothing left.
 */
#include "server_common.h"

static void setup_echo(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
    /* 1,000 connects arrive faster than one accept thread takes them under ASan. */
    ASSERT_OK(swoop_server_set(srv, "backlog", "4096"));
}

static void echo_run(swoop_mode_t mode, int nconn, int rounds, size_t size)
{
    srv_handle_t h = srv_start(mode, setup_echo, NULL, 2);
    uint64_t t0 = swoop_test_now_ms();
    long done = cli_echo_load(h.port, nconn, rounds, size, 20000);
    uint64_t ms = swoop_test_now_ms() - t0;
    ASSERT_EQ(done, (long)nconn * rounds);
    printf("# %s: %d connections x %d round trips of %zu bytes in %llu ms\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", nconn, rounds, size,
           (unsigned long long)ms);
    /* The count follows the callback, which sent the reply: it may trail by a moment. */
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.request_count >= (uint64_t)done), 2000);
    ASSERT_UGE(st.accept_count, (uint64_t)nconn);
    srv_stop(&h, 10000);
}

TEST(server_echo_process_1)
{
    echo_run(SWOOP_MODE_PROCESS, 1, 100, 100);
}

TEST(server_echo_base_1)
{
    echo_run(SWOOP_MODE_BASE, 1, 100, 100);
}

TEST(server_echo_process_100)
{
    echo_run(SWOOP_MODE_PROCESS, 100, 20, 1000);
}

TEST(server_echo_base_100)
{
    echo_run(SWOOP_MODE_BASE, 100, 20, 1000);
}

TEST(server_echo_process_1000)
{
    echo_run(SWOOP_MODE_PROCESS, 1000, 5, 64);
}

TEST(server_echo_base_1000)
{
    echo_run(SWOOP_MODE_BASE, 1000, 5, 64);
}

static void setup_echo_socketpairs(swoop_server_t *srv, void *arg)
{
    setup_echo(srv, arg);
    /* The reactor<->worker hop over datagram socketpairs instead of the rings. */
    ASSERT_OK(swoop_server_set(srv, "ipc_ring", "0"));
}

TEST(server_echo_process_socketpair_hop)
{
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup_echo_socketpairs, NULL, 2);
    /* Small and large messages: the latter are chunked above 64 KiB on the socketpairs. */
    ASSERT_EQ(cli_echo_load(h.port, 50, 20, 200, 20000), 1000);
    ASSERT_EQ(cli_echo_load(h.port, 4, 3, 300000, 20000), 12);
    srv_stop(&h, 10000);
}
