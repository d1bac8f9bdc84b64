/*
 * Regressions from the server review (session 1): a heartbeat set on one
 * port only is honoured; the string setter refuses values that overflow
 * and values with junk around them.
 */
#include <stdio.h>

#include "server_common.h"

/* ---- heartbeat set on a port only ---- */

static void setup_port_heartbeat(swoop_server_t *srv, void *arg)
{
    swoop_port_t *p;
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &p));
    ASSERT_OK(swoop_port_set(p, "heartbeat_idle_time", "1"));
    *(int *)arg = swoop_port_number(p);
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
}

TEST(server_port_heartbeat_closes_idle)
{
    int *port2 = srv_shared(sizeof(int));
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup_port_heartbeat, port2, 2);
    int idle = cli_connect(*port2);
    uint64_t t0 = swoop_test_now_ms();
    ASSERT(cli_wait_closed(idle, 5000));
    uint64_t took = swoop_test_now_ms() - t0;
    ASSERT_UGE(took, 900);
    close(idle);
    srv_stop(&h, 5000);
}

/* ---- the string setter refuses what does not fit ---- */

TEST(server_setter_refuses_overflow_and_junk)
{
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_PROCESS));
    ASSERT_EQ(swoop_server_set(srv, "socket_buffer_size", "17179869185G"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "socket_buffer_size", "9007199254740993M"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "worker_num", " 4"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "worker_num", "4x"), SWOOP_EINVAL);
    ASSERT_OK(swoop_server_set(srv, "socket_buffer_size", "2M"));
    ASSERT_OK(swoop_server_free(srv));
}
