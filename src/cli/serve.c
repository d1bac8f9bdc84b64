/*
 * `swoop serve [DIR] [--host H] [--port P] [--mode process|base]
 * [--ssl-cert F --ssl-key F] [--set key=value]...`: a static file server on
 * DIR (default "."), over HTTPS with a certificate and key, like
 * `python3 -m http.server` but on swoop's HTTP server: the connection
 * owners serve the files (sendfile, ETag, 304; nothing outside DIR) and
 * list directories without an index file (http_autoindex, on by default
 * here as python's lists them), the workers answer 404 for the rest. Prints its URL, then one
 * access line per request (combined log format, on stdout; --set http_access_log=F sends them to a
 * file); Ctrl-C (or SIGTERM) stops it in order.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <swoop/swoop.h>

#include "cli/cli.h"

static void not_found(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    swoop_http_status(res, 404);
    swoop_http_header_set(res, "Content-Type", "text/plain");
    swoop_http_end(res, "404 Not Found\n", 14);
}

static void serve_usage(void)
{
    fprintf(stderr, "usage: swoop serve [DIR] [--host H] [--port P] [--mode process|base] "
                    "[--ssl-cert F --ssl-key F] [--set key=value]...\n");
}

int swoop_cli_serve(int argc, char **argv)
{
    const char *dir = ".", *host = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = 8000;
    swoop_mode_t mode = SWOOP_MODE_PROCESS;
    const char *sets[64];
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--host") == 0 && v) {
            host = argv[++i];
        } else if (strcmp(a, "--port") == 0 && v) {
            port = atoi(argv[++i]);
        } else if (strcmp(a, "--mode") == 0 && v) {
            if (strcmp(v, "base") != 0 && strcmp(v, "process") != 0) {
                serve_usage();
                return 2;
            }
            mode = strcmp(argv[++i], "base") == 0 ? SWOOP_MODE_BASE : SWOOP_MODE_PROCESS;
        } else if (strcmp(a, "--ssl-cert") == 0 && v) {
            cert = argv[++i];
        } else if (strcmp(a, "--ssl-key") == 0 && v) {
            key = argv[++i];
        } else if (strcmp(a, "--set") == 0 && v && nsets < 64) {
            sets[nsets++] = argv[++i];
        } else if (a[0] != '-' && i == 1) {
            dir = a;
        } else {
            serve_usage();
            return 2;
        }
    }
    if ((cert == NULL) != (key == NULL)) {
        fprintf(stderr, "swoop serve: --ssl-cert and --ssl-key go together\n");
        return 2;
    }
    char root[PATH_MAX];
    struct stat st;
    if (realpath(dir, root) == NULL || stat(root, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "swoop serve: \"%s\" is not a directory\n", dir);
        return 2;
    }
    swoop_server_t *srv;
    if (swoop_server_new(&srv, mode) < 0)
        return 1;
    int rc = 0;
    swoop_server_set(srv, "worker_num", "2");
    if (swoop_server_set(srv, "open_http_protocol", "1") < 0 ||
        swoop_server_set(srv, "enable_static_handler", "1") < 0 ||
        swoop_server_set(srv, "document_root", root) < 0 ||
        swoop_server_set(srv, "http_autoindex", "1") < 0 ||
        swoop_server_set(srv, "http_access_log", "/dev/stdout") < 0 ||
        swoop_http_on_request(srv, not_found))
        rc = 1;
    if (rc == 0 && cert &&
        (swoop_server_set(srv, "ssl_cert_file", cert) < 0 ||
         swoop_server_set(srv, "ssl_key_file", key) < 0))
        rc = 1;
    if (rc == 0)
        rc = swoop_cli_apply_sets(srv, "serve", sets, nsets);
    swoop_sock_type_t type = strchr(host, ':') ? SWOOP_SOCK_TCP6 : SWOOP_SOCK_TCP;
    swoop_port_t *p = NULL;
    if (rc == 0 &&
        swoop_server_listen(srv, host, port, (swoop_sock_type_t)(type | (cert ? SWOOP_SSL : 0)),
                            &p) < 0) {
        fprintf(stderr, "swoop serve: cannot listen on %s:%d\n", host, port);
        rc = 1;
    }
    if (rc == 0) {
        int bracket = type == SWOOP_SOCK_TCP6;
        printf("swoop serve: %s on http%s://%s%s%s:%d/ (%s mode); Ctrl-C stops it\n", root,
               cert ? "s" : "", bracket ? "[" : "", host, bracket ? "]" : "", swoop_port_number(p),
               mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS");
        fflush(stdout);
        rc = swoop_server_start(srv) == 0 ? 0 : 1;
    }
    swoop_server_free(srv);
    return rc;
}
