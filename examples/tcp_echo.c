/*
 * A TCP echo server: every byte a client sends comes back.
 *   tcp_echo [process|base] [port] [workers]
 * Stop it with Ctrl-C or SIGTERM to the pid it prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <swoop/swoop.h>

static void on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len)
{
    swoop_server_send(srv, conn, data, len);
}

static void on_start(swoop_server_t *srv)
{
    printf("tcp_echo: master pid %d\n", (int)getpid());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    swoop_mode_t mode =
        argc > 1 && strcmp(argv[1], "base") == 0 ? SWOOP_MODE_BASE : SWOOP_MODE_PROCESS;
    int port = argc > 2 ? atoi(argv[2]) : 9501;
    swoop_server_t *srv;
    swoop_port_t *p;
    if (swoop_server_new(&srv, mode) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", port, SWOOP_SOCK_TCP, &p) < 0)
        return 1;
    if (argc > 3)
        swoop_server_set(srv, "worker_num", argv[3]);
    swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_receive, .on_start = on_start});
    printf("tcp_echo: %s mode on 127.0.0.1:%d\n", mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS",
           swoop_port_number(p));
    fflush(stdout);
    int rc = swoop_server_start(srv);
    swoop_server_free(srv);
    return rc == 0 ? 0 : 1;
}
