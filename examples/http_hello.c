/*
 * An HTTP/1.1 server: GET /hello answers "hello", POST /echo echoes the
 * request body, anything else is a 404.
 *   http_hello [process|base] [port] [workers]
 * Try: curl http://127.0.0.1:9502/hello ; curl --data-binary @file http://127.0.0.1:9502/echo
 * Stop it with Ctrl-C or SIGTERM to the pid it prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <swoop/swoop.h>

static void on_request(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    const char *path = swoop_http_path(req);
    if (strcmp(path, "/hello") == 0) {
        swoop_http_header_set(res, "Content-Type", "text/plain");
        swoop_http_end(res, "hello\n", 6);
    } else if (strcmp(path, "/echo") == 0 && strcmp(swoop_http_method(req), "POST") == 0) {
        size_t len;
        const void *body = swoop_http_body(req, &len);
        swoop_http_end(res, body, len);
    } else {
        swoop_http_status(res, 404);
        swoop_http_end(res, "not found\n", 10);
    }
}

static void on_start(swoop_server_t *srv)
{
    printf("http_hello: master pid %d\n", (int)getpid());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    swoop_mode_t mode =
        argc > 1 && strcmp(argv[1], "base") == 0 ? SWOOP_MODE_BASE : SWOOP_MODE_PROCESS;
    int port = argc > 2 ? atoi(argv[2]) : 9502;
    swoop_server_t *srv;
    swoop_port_t *p;
    if (swoop_server_new(&srv, mode) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", port, SWOOP_SOCK_TCP, &p) < 0 ||
        swoop_port_set(p, "open_http_protocol", "1") < 0 ||
        swoop_http_on_request(srv, on_request) < 0)
        return 1;
    if (argc > 3)
        swoop_server_set(srv, "worker_num", argv[3]);
    swoop_server_on(srv, &(swoop_server_events_t){.on_start = on_start});
    printf("http_hello: %s mode on 127.0.0.1:%d\n", mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS",
           swoop_port_number(p));
    fflush(stdout);
    int rc = swoop_server_start(srv);
    swoop_server_free(srv);
    return rc == 0 ? 0 : 1;
}
