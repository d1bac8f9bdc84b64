/*
 * A length-framed server: every packet is a 4-byte big-endian length
 * followed by that many bytes (package_length_type N, body offset 4); the
 * server answers each packet with a packet holding its length as text.
 * A packet above package_max_length (1 MiB here) closes its connection.
 *   length_server [port]
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/swoop.h>

static void on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "got %zu bytes", len - 4);
    uint32_t be = htonl((uint32_t)n);
    char out[68];
    memcpy(out, &be, 4);
    memcpy(out + 4, body, (size_t)n);
    swoop_server_send(srv, conn, out, 4 + (size_t)n);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 9503;
    swoop_server_t *srv;
    swoop_port_t *p;
    if (swoop_server_new(&srv, SWOOP_MODE_PROCESS) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", port, SWOOP_SOCK_TCP, &p) < 0)
        return 1;
    swoop_server_settings_t *s = swoop_server_settings(srv);
    s->protocol.open_length_check = 1;
    s->protocol.package_length_type = 'N';
    s->protocol.package_length_offset = 0;
    s->protocol.package_body_offset = 4;
    s->protocol.package_max_length = 1024 * 1024;
    swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_receive});
    printf("length_server on 127.0.0.1:%d\n", swoop_port_number(p));
    fflush(stdout);
    int rc = swoop_server_start(srv);
    swoop_server_free(srv);
    return rc == 0 ? 0 : 1;
}
