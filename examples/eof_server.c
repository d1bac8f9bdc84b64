/*
 * An EOF-framed server: packets end with "\r\n" (open_eof_split), and each
 * line comes back upper-cased. Two ports: 9504 splits lines, 9505 is set
 * per port to split on a "|" byte instead.
 *   eof_server
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include <swoop/swoop.h>

static void on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len)
{
    char *up = malloc(len);
    for (size_t i = 0; i < len; i++)
        up[i] = (char)toupper(((const unsigned char *)data)[i]);
    swoop_server_send(srv, conn, up, len);
    free(up);
}

int main(void)
{
    swoop_server_t *srv;
    swoop_port_t *lines, *bars;
    if (swoop_server_new(&srv, SWOOP_MODE_PROCESS) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", 9504, SWOOP_SOCK_TCP, &lines) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", 9505, SWOOP_SOCK_TCP, &bars) < 0)
        return 1;
    swoop_server_set(srv, "open_eof_split", "1");
    swoop_server_set(srv, "package_eof", "\\r\\n");
    swoop_port_set(bars, "package_eof", "|");
    swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_receive});
    printf("eof_server: lines on 127.0.0.1:9504, \"|\"-terminated on 127.0.0.1:9505\n");
    fflush(stdout);
    int rc = swoop_server_start(srv);
    swoop_server_free(srv);
    return rc == 0 ? 0 : 1;
}
