/*
 * A coroutine HTTP server whose handler asks a backend on every request,
 * written top to bottom, through a per-worker connection pool: the
 * handler's waits park only its coroutine, and warm connections save a TCP
 * handshake and a close per request.
 *
 * The "backend" is a tiny coroutine TCP service forked by this program: it
 * answers a line "N" with "N*N" after 20 ms (think of a database query).
 *
 *   co_backend_pool [port] [workers]   (default 9503 and 2; port 0 picks one)
 *   curl 'http://127.0.0.1:9503/square?n=12'   -> 144
 *   curl  http://127.0.0.1:9503/pool           -> this worker's pool counters
 *
 * Prints "co_backend_pool: PROCESS mode on 127.0.0.1:PORT", then the master's
 * pid once it runs. Stop it with SIGTERM or Ctrl-C: the server stops, then
 * the backend.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/co.h>
#include <swoop/swoop.h>

static int backend_port;

/* ---- the backend: one coroutine per connection, one line at a time ---- */

static void backend_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char line[32];
    ssize_t n;
    while ((n = swoop_co_read(fd, line, sizeof(line) - 1, -1)) > 0) {
        line[n] = '\0';
        long v = atol(line);
        swoop_co_sleep(20);
        char out[32];
        int len = snprintf(out, sizeof(out), "%ld\n", v * v);
        if (swoop_co_write(fd, out, (size_t)len, 2000) != len)
            break;
    }
    close(fd);
}

static void backend_accept(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    while (swoop_co_wait_fd(lfd, SWOOP_READABLE, -1) > 0) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
            swoop_co_go(backend_conn, (void *)(intptr_t)c);
    }
}

static pid_t backend_start(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 512) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &l) < 0) {
        perror("co_backend_pool: backend socket");
        return -1;
    }
    backend_port = ntohs(a.sin_port);
    pid_t pid = fork();
    if (pid == 0) {
        swoop_co_run(backend_accept, (void *)(intptr_t)lfd);
        _exit(0);
    }
    close(lfd);
    return pid;
}

/* ---- the server ---- */

static swoop_co_pool_t *pool; /* one per worker: made by its first request */

static void on_request(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    if (pool == NULL) {
        /* Reuse without a probe within a second; at most 64 connections per worker. */
        swoop_co_pool_options_t o = {.max_idle = 32, .max_open = 64, .check_after_ms = 1000};
        if (swoop_co_pool_new(&pool, "127.0.0.1", backend_port, &o) < 0) {
            swoop_http_status(res, 500);
            swoop_http_end(res, "no pool\n", 8);
            return;
        }
    }
    const char *path = swoop_http_path(req);
    char body[160];
    if (strcmp(path, "/pool") == 0) {
        swoop_co_pool_stats_t st;
        swoop_co_pool_stats(pool, &st);
        int len =
            snprintf(body, sizeof(body), "open %zu idle %zu connects %llu reuses %llu\n", st.open,
                     st.idle, (unsigned long long)st.connects, (unsigned long long)st.reuses);
        swoop_http_end(res, body, (size_t)len);
        return;
    }
    char n[24];
    if (strcmp(path, "/square") != 0 || swoop_http_query_get(req, "n", n, sizeof(n)) < 0) {
        swoop_http_status(res, 404);
        swoop_http_end(res, "try /square?n=12 or /pool\n", 26);
        return;
    }
    /* Ask the backend: get, write, read, put. Waiting parks this coroutine only. */
    int fd = swoop_co_pool_get(pool, 2000);
    ssize_t got = -1;
    if (fd >= 0) {
        int len = snprintf(body, sizeof(body), "%ld\n", atol(n));
        if (swoop_co_write(fd, body, (size_t)len, 2000) == len)
            got = swoop_co_read(fd, body, sizeof(body), 2000);
        /* Reusable only after a whole answer; after an error its state is unknown. */
        swoop_co_pool_put(pool, fd, got > 0 && body[got - 1] == '\n');
    }
    if (got <= 0) {
        swoop_http_status(res, 502);
        swoop_http_end(res, "backend unavailable\n", 20);
        return;
    }
    swoop_http_end(res, body, (size_t)got);
}

static void on_start(swoop_server_t *srv)
{
    printf("co_backend_pool: master pid %d\n", (int)getpid());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 9503;
    const char *workers = argc > 2 ? argv[2] : "2";
    pid_t backend = backend_start();
    if (backend < 0)
        return 1;
    swoop_server_t *srv;
    swoop_port_t *p;
    int rc = 1;
    if (swoop_server_new(&srv, SWOOP_MODE_PROCESS) == 0) {
        if (swoop_server_listen(srv, "127.0.0.1", port, SWOOP_SOCK_TCP, &p) == 0 &&
            swoop_port_set(p, "open_http_protocol", "1") == 0 &&
            swoop_server_set(srv, "worker_num", workers) == 0 &&
            swoop_server_set(srv, "enable_coroutine", "1") == 0 &&
            swoop_http_on_request(srv, on_request) == 0 &&
            swoop_server_on(srv, &(swoop_server_events_t){.on_start = on_start}) == 0) {
            printf("co_backend_pool: PROCESS mode on 127.0.0.1:%d\n", swoop_port_number(p));
            fflush(stdout);
            rc = swoop_server_start(srv) == 0 ? 0 : 1;
        }
        swoop_server_free(srv);
    }
    kill(backend, SIGTERM);
    waitpid(backend, NULL, 0);
    return rc;
}
