/*
 * An HTTPS server: GET /hello answers "hello" (and the client certificate's
 * subject, when it sent one), anything else is a 404.
 *   https_hello CERT KEY [process|base] [port] [client-CA]
 * With client-CA, clients must present a certificate it signed (mTLS).
 * Try (a self-signed pair):
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
 *     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
 *     -keyout key.pem -out cert.pem
 *   https_hello cert.pem key.pem & curl --cacert cert.pem https://127.0.0.1:9503/hello
 * Stop it with Ctrl-C or SIGTERM to the pid it prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <swoop/swoop.h>

static void on_request(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    if (strcmp(swoop_http_path(req), "/hello") != 0) {
        swoop_http_status(res, 404);
        swoop_http_end(res, "not found\n", 10);
        return;
    }
    char subject[256], body[320];
    int n = swoop_server_conn_peer_subject(srv, swoop_http_conn(req), subject, sizeof(subject));
    int len = snprintf(body, sizeof(body), "hello%s%s\n", n > 0 ? " " : "", n > 0 ? subject : "");
    swoop_http_header_set(res, "Content-Type", "text/plain");
    swoop_http_end(res, body, (size_t)len);
}

static void on_start(swoop_server_t *srv)
{
    printf("https_hello: master pid %d\n", (int)getpid());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: https_hello CERT KEY [process|base] [port] [client-CA]\n");
        return 2;
    }
    swoop_mode_t mode =
        argc > 3 && strcmp(argv[3], "base") == 0 ? SWOOP_MODE_BASE : SWOOP_MODE_PROCESS;
    int port = argc > 4 ? atoi(argv[4]) : 9503;
    swoop_server_t *srv;
    swoop_port_t *p;
    if (swoop_server_new(&srv, mode) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", port, SWOOP_SOCK_TCP | SWOOP_SSL, &p) < 0 ||
        swoop_port_set(p, "open_http_protocol", "1") < 0 ||
        swoop_server_set(srv, "ssl_cert_file", argv[1]) < 0 ||
        swoop_server_set(srv, "ssl_key_file", argv[2]) < 0 ||
        swoop_http_on_request(srv, on_request) < 0)
        return 1;
    if (argc > 5 && (swoop_server_set(srv, "ssl_client_cert_file", argv[5]) < 0 ||
                     swoop_server_set(srv, "ssl_verify_peer", "1") < 0))
        return 1;
    swoop_server_on(srv, &(swoop_server_events_t){.on_start = on_start});
    printf("https_hello: %s mode on https://127.0.0.1:%d/\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", swoop_port_number(p));
    fflush(stdout);
    int rc = swoop_server_start(srv);
    swoop_server_free(srv);
    return rc == 0 ? 0 : 1;
}
