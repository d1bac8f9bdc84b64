/*
 * A UDP echo server: every datagram goes back to its sender.
 *   udp_echo [process|base] [port]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/swoop.h>

static void on_packet(swoop_server_t *srv, const void *data, size_t len, const swoop_addr_t *from)
{
    swoop_server_sendto(srv, from, data, len);
}

int main(int argc, char **argv)
{
    swoop_mode_t mode =
        argc > 1 && strcmp(argv[1], "base") == 0 ? SWOOP_MODE_BASE : SWOOP_MODE_PROCESS;
    int port = argc > 2 ? atoi(argv[2]) : 9502;
    swoop_server_t *srv;
    swoop_port_t *p;
    if (swoop_server_new(&srv, mode) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", port, SWOOP_SOCK_UDP, &p) < 0)
        return 1;
    swoop_server_on(srv, &(swoop_server_events_t){.on_packet = on_packet});
    printf("udp_echo on 127.0.0.1:%d\n", swoop_port_number(p));
    fflush(stdout);
    int rc = swoop_server_start(srv);
    swoop_server_free(srv);
    return rc == 0 ? 0 : 1;
}
