/*
 * Echo over a Unix stream socket and a Unix datagram socket.
 *   unix_echo [stream-path] [dgram-path]
 * A datagram client must bind its own path to get the reply.
 */
#include <stdio.h>

#include <swoop/swoop.h>

static void on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len)
{
    swoop_server_send(srv, conn, data, len);
}

static void on_packet(swoop_server_t *srv, const void *data, size_t len, const swoop_addr_t *from)
{
    swoop_server_sendto(srv, from, data, len);
}

int main(int argc, char **argv)
{
    const char *stream = argc > 1 ? argv[1] : "/tmp/swoop-echo.sock";
    const char *dgram = argc > 2 ? argv[2] : "/tmp/swoop-echo-dgram.sock";
    swoop_server_t *srv;
    if (swoop_server_new(&srv, SWOOP_MODE_PROCESS) < 0 ||
        swoop_server_listen(srv, stream, 0, SWOOP_SOCK_UNIX_STREAM, NULL) < 0 ||
        swoop_server_listen(srv, dgram, 0, SWOOP_SOCK_UNIX_DGRAM, NULL) < 0)
        return 1;
    swoop_server_on(srv,
                    &(swoop_server_events_t){.on_receive = on_receive, .on_packet = on_packet});
    printf("unix_echo: stream %s, datagram %s\n", stream, dgram);
    fflush(stdout);
    int rc = swoop_server_start(srv);
    swoop_server_free(srv); /* removes the socket files */
    return rc == 0 ? 0 : 1;
}
