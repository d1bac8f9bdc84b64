/*
 * The HTTP/1.1 server (issue 11), both modes, against real clients (curl,
 * raw sockets): GET and POST with Content-Length and chunked bodies,
 * keep-alive and pipelining answered in request order, streaming (chunked)
 * responses, HEAD, HTTP/1.0, 100-continue, a handler that forgets to end
 * (500), and malformed requests answered with their status and a close
 * before any handler runs (the handler counts its calls in shared memory).
 */
/* TEST_LABELS: tsan */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <swoop/http.h>
#include <swoop/timer.h>

#include "client_util.h"
#include "server_common.h"

typedef struct shared_s {
    _Atomic int calls; /* handler calls */
} shared_t;

static shared_t *sh;

static swoop_server_t *the_srv;

static void respond_later(int64_t timer, void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    char body[64];
    int n = snprintf(body, sizeof(body), "later from pid %d\n", (int)getpid());
    ASSERT_OK(swoop_http_respond(the_srv, id, 200, "text/plain", body, (size_t)n));
    /* Once: the request is answered (or, after the last one, the connection is closed). */
    int again = swoop_http_respond(the_srv, id, 200, NULL, "x", 1);
    ASSERT(again == SWOOP_ESTATE || again == SWOOP_ECLOSED);
}

/* Another worker answers a detached response it was sent the id of. */
static void on_pipe_message(swoop_server_t *srv, int src, const void *data, size_t len)
{
    uint64_t id;
    ASSERT_EQ(len, sizeof(id));
    memcpy(&id, data, sizeof(id));
    char body[64];
    int n = snprintf(body, sizeof(body), "answered by worker %d\n", swoop_server_worker_id(srv));
    ASSERT_OK(swoop_http_respond(srv, id, 201, NULL, body, (size_t)n));
}

static void handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    atomic_fetch_add(&sh->calls, 1);
    the_srv = srv;
    const char *path = swoop_http_path(req);
    if (strcmp(path, "/later") == 0) {
        uint64_t id = swoop_http_detach(res);
        ASSERT_NE(id, 0u);
        ASSERT_GT(swoop_timer_after(50, respond_later, (void *)(uintptr_t)id), 0);
        return;
    }
    if (strcmp(path, "/other") == 0) {
        uint64_t id = swoop_http_detach(res);
        int other = 1 - swoop_server_worker_id(srv);
        ASSERT_OK(swoop_server_send_message(srv, other, &id, sizeof(id)));
        return;
    }
    if (strcmp(path, "/params") == 0) {
        char q[64], f[64], c[64], out[256];
        int qa = swoop_http_query_get(req, "a b", q, sizeof(q));
        int fb = swoop_http_form_get(req, "b", f, sizeof(f));
        int cs = swoop_http_cookie_get(req, "sid", c, sizeof(c));
        int small = swoop_http_query_get(req, "a b", out, 2);
        int none = swoop_http_query_get(req, "zz", out, sizeof(out));
        int n = snprintf(out, sizeof(out), "q=%s f=%s c=%s small=%d none=%d\n", qa >= 0 ? q : "-",
                         fb >= 0 ? f : "-", cs >= 0 ? c : "-", small, none);
        swoop_http_end(res, out, (size_t)n);
        return;
    }
    if (strcmp(path, "/cookie") == 0) {
        swoop_http_cookie_t a = {.max_age = 3600, .path = "/", .same_site = "Lax", .http_only = 1};
        ASSERT_OK(swoop_http_cookie_set(res, "sid", "abc123", &a));
        ASSERT_OK(swoop_http_cookie_set(res, "theme", "dark", NULL));
        ASSERT_EQ(swoop_http_cookie_set(res, "bad", "a;b", NULL), SWOOP_EINVAL);
        ASSERT_EQ(
            swoop_http_cookie_set(res, "bad", "x", &(swoop_http_cookie_t){.path = "/\r\nX: y"}),
            SWOOP_EINVAL);
        swoop_http_end(res, "c\n", 2);
        return;
    }
    if (strcmp(path, "/redirect") == 0) {
        ASSERT_OK(swoop_http_redirect(res, 302, "/hello"));
        return;
    }
    if (strcmp(path, "/hello") == 0) {
        swoop_http_header_set(res, "Content-Type", "text/plain");
        swoop_http_end(res, "hello\n", 6);
    } else if (strcmp(path, "/echo") == 0) {
        size_t len;
        const void *body = swoop_http_body(req, &len);
        swoop_http_end(res, body, len);
    } else if (strcmp(path, "/info") == 0) {
        char out[512];
        const char *ua = swoop_http_header(req, "user-agent");
        int n = snprintf(out, sizeof(out), "%s %s ?%s 1.%d ua=%s\n", swoop_http_method(req), path,
                         swoop_http_query(req), swoop_http_version(req), ua ? ua : "-");
        swoop_http_end(res, out, (size_t)n);
    } else if (strcmp(path, "/stream") == 0) {
        for (int i = 0; i < 3; i++) {
            char part[16];
            int n = snprintf(part, sizeof(part), "part%d\n", i);
            swoop_http_write(res, part, (size_t)n);
        }
        swoop_http_end(res, "end\n", 4);
    } else if (strcmp(path, "/slow") == 0) {
        swoop_test_sleep_ms(300);
        swoop_http_end(res, "slow\n", 5);
    } else if (strcmp(path, "/crash") == 0) {
        raise(SIGKILL); /* the worker dies with the request */
    } else if (strcmp(path, "/forget") == 0) {
        /* returns without ending: the library answers 500 */
    } else {
        swoop_http_status(res, 404);
        swoop_http_end(res, "not found\n", 10);
    }
}

static void setup_http(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_max_length", "1M"));
    ASSERT_OK(swoop_http_on_request(srv, handler));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_pipe_message = on_pipe_message}));
}

static srv_handle_t start(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    return srv_start(mode, setup_http, NULL, 2);
}

static void stop(srv_handle_t *h)
{
    srv_stop(h, 5000);
    munmap(sh, sizeof(*sh));
}

static void curl_basics(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd), "curl -sS -i http://127.0.0.1:%d/hello", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "HTTP/1.1 200 OK\r\n"));
    ASSERT_NOT_NULL(strstr(out, "Content-Type: text/plain\r\n"));
    ASSERT_NOT_NULL(strstr(out, "Content-Length: 6\r\n"));
    ASSERT_NOT_NULL(strstr(out, "\r\n\r\nhello\n"));
    /* POST with a body, 100-continue on (curl sends Expect above 1 KiB). */
    snprintf(cmd, sizeof(cmd),
             "head -c 200000 /dev/zero | tr '\\0' x | curl -sS --data-binary @- "
             "http://127.0.0.1:%d/echo | wc -c",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_EQ(atol(out), 200000);
    /* Chunked request body. */
    snprintf(cmd, sizeof(cmd),
             "printf 'abc%%.0s' $(seq 1 1000) | curl -sS -H 'Transfer-Encoding: chunked' "
             "--data-binary @- http://127.0.0.1:%d/echo | wc -c",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_EQ(atol(out), 3000);
    /* Streaming response (chunked), decoded by curl. */
    snprintf(cmd, sizeof(cmd), "curl -sS http://127.0.0.1:%d/stream", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "part0\npart1\npart2\nend\n");
    /* Query, method, version, a header. */
    snprintf(cmd, sizeof(cmd), "curl -sS -0 -A tester 'http://127.0.0.1:%d/info?a=1&b=2'", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "GET /info ?a=1&b=2 1.0 ua=tester\n");
    /* 404, and a handler that forgets to end gets a 500. */
    snprintf(cmd, sizeof(cmd), "curl -sS -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/nope",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "404");
    snprintf(cmd, sizeof(cmd),
             "curl -sS -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/forget", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "500");
    /* swoop stats counts the responses by class. */
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(st.http_2xx, 5u);
    ASSERT_EQ(st.http_4xx, 1u);
    ASSERT_EQ(st.http_5xx, 1u);
    ASSERT_EQ(st.http_bad_requests, 0u);
    stop(&h);
}

TEST_TIMEOUT(http_curl_basics_process, 60)
{
    curl_basics(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_curl_basics_base, 60)
{
    curl_basics(SWOOP_MODE_BASE);
}

/* 50 pipelined requests in one write: 50 answers in order, then the close of the last. */
static void pipelining(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    int fd = cli_connect(h.port);
    static char reqs[50 * 128];
    size_t n = 0;
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(reqs + n, sizeof(reqs) - n,
                              "GET /info?%d HTTP/1.1\r\nHost: x\r\n%s\r\n", i,
                              i == 49 ? "Connection: close\r\n" : "");
    cli_write(fd, reqs, n);
    static char buf[65536];
    read_all(fd, buf, sizeof(buf), 5000);
    const char *p = buf;
    for (int i = 0; i < 50; i++) {
        char want[64];
        snprintf(want, sizeof(want), "GET /info ?%d 1.1 ua=-\n", i);
        const char *at = strstr(p, want);
        if (at == NULL)
            FAIL("answer %d missing or out of order", i);
        p = at + strlen(want);
    }
    ASSERT_NOT_NULL(strstr(buf, "Connection: close\r\n"));
    close(fd);
    ASSERT_EQ(atomic_load(&sh->calls), 50);
    stop(&h);
}

TEST_TIMEOUT(http_pipelined_in_order_process, 60)
{
    pipelining(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_pipelined_in_order_base, 60)
{
    pipelining(SWOOP_MODE_BASE);
}

/* Each bad request gets its status and a close; no handler runs. */
static void rejects(swoop_mode_t mode)
{
    static const struct {
        const char *req;
        const char *status;
    } rows[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         "400"},
        {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "400"},
        {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "400"},
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "400"},
        {"GET / HTTP/1.1\nHost: x\n\n", "400"},
        {"GET / HTTP/1.1\r\n\r\n", "400"},
        {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505"},
        {"get / HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo, chunked\r\n\r\n", "501"},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", "413"},
        {"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", "501"},
    };
    srv_handle_t h = start(mode);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int fd = cli_connect(h.port);
        /* A smuggled canary behind each: it must never reach the handler. */
        char req[512];
        int n =
            snprintf(req, sizeof(req), "%sGET /canary HTTP/1.1\r\nHost: x\r\n\r\n", rows[i].req);
        cli_write(fd, req, (size_t)n);
        char buf[2048];
        read_all(fd, buf, sizeof(buf), 3000);
        char want[32];
        snprintf(want, sizeof(want), "HTTP/1.1 %s ", rows[i].status);
        if (strncmp(buf, want, strlen(want)) != 0)
            FAIL("row %zu: expected %s, got \"%.40s\"", i, rows[i].status, buf);
        ASSERT_NOT_NULL(strstr(buf, "Connection: close\r\n"));
        close(fd);
    }
    ASSERT_EQ(atomic_load(&sh->calls), 0);
    size_t nrows = sizeof(rows) / sizeof(rows[0]);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(st.http_bad_requests, (uint64_t)nrows);
    ASSERT_EQ(st.http_4xx + st.http_5xx, (uint64_t)nrows);
    stop(&h);
}

TEST_TIMEOUT(http_rejects_bad_requests_process, 60)
{
    rejects(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_rejects_bad_requests_base, 60)
{
    rejects(SWOOP_MODE_BASE);
}

/* HEAD: the length of the body, no body; keep-alive across requests; HTTP/1.0 keep-alive. */
static void head_and_keepalive(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    int fd = cli_connect(h.port);
    const char *q = "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_write(fd, q, strlen(q));
    char buf[2048];
    size_t n = cli_read_n(fd, buf, 1, 3000);
    ASSERT_EQ(n, 1u);
    n += (size_t)recv(fd, buf + 1, sizeof(buf) - 2, 0);
    buf[n] = '\0';
    ASSERT_NOT_NULL(strstr(buf, "Content-Length: 6\r\n"));
    ASSERT_NULL(strstr(buf, "hello"));
    /* The same connection serves the next request (1.0 with keep-alive). */
    q = "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    cli_write(fd, q, strlen(q));
    read_all(fd, buf, sizeof(buf), 500);
    ASSERT_NOT_NULL(strstr(buf, "Connection: keep-alive\r\n"));
    ASSERT_NOT_NULL(strstr(buf, "\r\n\r\nhello\n"));
    /* HTTP/1.0 without keep-alive: answered, then closed. */
    q = "GET /hello HTTP/1.0\r\n\r\n";
    cli_write(fd, q, strlen(q));
    read_all(fd, buf, sizeof(buf), 3000);
    ASSERT_NOT_NULL(strstr(buf, "Connection: close\r\n"));
    ASSERT(cli_wait_closed(fd, 3000));
    close(fd);
    stop(&h);
}

TEST_TIMEOUT(http_head_and_keepalive_process, 60)
{
    head_and_keepalive(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_head_and_keepalive_base, 60)
{
    head_and_keepalive(SWOOP_MODE_BASE);
}

static void setup_http_timeouts(swoop_server_t *srv, void *arg)
{
    setup_http(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "http_keepalive_timeout", "1"));
    ASSERT_OK(swoop_server_set(srv, "http_header_timeout", "1"));
    ASSERT_OK(swoop_server_set(srv, "http_body_timeout", "1"));
}

/* Slowloris gets a 408 (head and body); an idle keep-alive connection is closed. */
static void timeouts(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_http_timeouts, NULL, 2);
    int slow_head = cli_connect(h.port), slow_body = cli_connect(h.port);
    int idle = cli_connect(h.port), silent = cli_connect(h.port);
    const char *q = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    cli_write(slow_head, q, strlen(q));
    q = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
    cli_write(slow_body, q, strlen(q));
    q = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_write(idle, q, strlen(q));
    char buf[1024];
    uint64_t t0 = swoop_test_now_ms();
    read_all(slow_head, buf, sizeof(buf), 4000);
    ASSERT_EQ(strncmp(buf, "HTTP/1.1 408 ", 13), 0);
    read_all(slow_body, buf, sizeof(buf), 4000);
    ASSERT_EQ(strncmp(buf, "HTTP/1.1 408 ", 13), 0);
    read_all(idle, buf, sizeof(buf), 4000); /* the answer, then the close */
    ASSERT_NOT_NULL(strstr(buf, "\r\n\r\nhello\n"));
    ASSERT(cli_wait_closed(silent, 4000));
    uint64_t took = swoop_test_now_ms() - t0;
    printf("# 408s and keep-alive closes within %llu ms (timeouts of 1 s, checked each second)\n",
           (unsigned long long)took);
    ASSERT_EQ(atomic_load(&sh->calls), 1);
    close(slow_head);
    close(slow_body);
    close(idle);
    close(silent);
    stop(&h);
}

TEST_TIMEOUT(http_timeouts_process, 60)
{
    timeouts(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_timeouts_base, 60)
{
    timeouts(SWOOP_MODE_BASE);
}

/*
 * A request in flight across a reload is answered by its process; PROCESS:
 * the connection goes on (the reactor owns it); BASE: the draining process
 * closes it after that response (Connection: close) and the next
 * connection reaches the successor.
 */
static void reload_in_flight(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    int fd = cli_connect(h.port);
    const char *q = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_write(fd, q, strlen(q));
    swoop_test_sleep_ms(50); /* the request is in the handler (300 ms) */
    ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
    char buf[2048];
    size_t n = cli_read_n(fd, buf, 1, 5000);
    ASSERT_EQ(n, 1u);
    n += (size_t)recv(fd, buf + 1, sizeof(buf) - 2, 0);
    buf[n] = '\0';
    ASSERT_NOT_NULL(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    ASSERT_NOT_NULL(strstr(buf, "\r\n\r\nslow\n"));
    if (mode == SWOOP_MODE_BASE) {
        /* The draining process owns the connection: its last response says so, then the close. */
        ASSERT_NOT_NULL(strstr(buf, "Connection: close\r\n"));
        ASSERT(cli_wait_closed(fd, 5000));
        close(fd);
        fd = cli_connect(h.port);
    }
    q = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cli_write(fd, q, strlen(q));
    read_all(fd, buf, sizeof(buf), 5000);
    ASSERT_NOT_NULL(strstr(buf, "\r\n\r\nhello\n"));
    close(fd);
    stop(&h);
}

TEST_TIMEOUT(http_reload_answers_in_flight_process, 60)
{
    reload_in_flight(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_reload_answers_in_flight_base, 60)
{
    reload_in_flight(SWOOP_MODE_BASE);
}

/* SIGTERM with a request in flight: answered, marked as the last one, then the close. */
static void shutdown_in_flight(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    int fd = cli_connect(h.port);
    const char *q = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_write(fd, q, strlen(q));
    swoop_test_sleep_ms(50);
    ASSERT_EQ(kill(h.pid, SIGTERM), 0);
    char buf[2048];
    read_all(fd, buf, sizeof(buf), 5000);
    ASSERT_NOT_NULL(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    ASSERT_NOT_NULL(strstr(buf, "Connection: close\r\n"));
    ASSERT_NOT_NULL(strstr(buf, "\r\n\r\nslow\n"));
    close(fd);
    swoop_test_wait_ok(h.pid, 5000);
    WAIT_UNTIL(!swoop_test_pid_alive(st.manager_pid), 2000);
    munmap(sh, sizeof(*sh));
}

TEST_TIMEOUT(http_shutdown_answers_in_flight_process, 60)
{
    shutdown_in_flight(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_shutdown_answers_in_flight_base, 60)
{
    shutdown_in_flight(SWOOP_MODE_BASE);
}

/* PROCESS: the worker dies with the request: the client gets a 503, not a hang. */
TEST_TIMEOUT(http_worker_crash_gets_503_process, 60)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS);
    int fd = cli_connect(h.port);
    const char *q = "GET /crash HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_write(fd, q, strlen(q));
    char buf[2048];
    uint64_t t0 = swoop_test_now_ms();
    read_all(fd, buf, sizeof(buf), 6000);
    printf("# 503 after %llu ms\n", (unsigned long long)(swoop_test_now_ms() - t0));
    ASSERT_EQ(strncmp(buf, "HTTP/1.1 503 ", 13), 0);
    close(fd);
    /* The restarted worker serves. */
    srv_wait_ready(h.pid, 2);
    fd = cli_connect(h.port);
    q = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cli_write(fd, q, strlen(q));
    read_all(fd, buf, sizeof(buf), 5000);
    ASSERT_NOT_NULL(strstr(buf, "\r\n\r\nhello\n"));
    close(fd);
    stop(&h);
}

/* Detached responses, answered later (a timer) and by another worker, in request order. */
static void detached(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    int fd = cli_connect(h.port);
    const char *q = "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cli_write(fd, q, strlen(q));
    static char buf[8192];
    read_all(fd, buf, sizeof(buf), 5000);
    const char *a = strstr(buf, "later from pid");
    const char *b = a ? strstr(a, "HTTP/1.1 201 Created") : NULL;
    const char *b2 = b ? strstr(b, "answered by worker") : NULL;
    const char *c = b2 ? strstr(b2, "later from pid") : NULL;
    const char *d = c ? strstr(c, "hello\n") : NULL;
    if (!a || !b || !b2 || !c || !d)
        FAIL("answers missing or out of order: \"%.300s\"", buf);
    close(fd);
    stop(&h);
}

TEST_TIMEOUT(http_detached_in_order_process, 60)
{
    detached(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_detached_in_order_base, 60)
{
    detached(SWOOP_MODE_BASE);
}

static void setup_http_max3(swoop_server_t *srv, void *arg)
{
    setup_http(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "http_max_requests_per_conn", "3"));
}

/* http_max_requests_per_conn 3: the third answer says Connection: close, then the close. */
TEST_TIMEOUT(http_max_requests_per_conn, 60)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup_http_max3, NULL, 2);
    int fd = cli_connect(h.port);
    const char *q = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 5; i++)
        cli_write(fd, q, strlen(q));
    static char buf[8192];
    read_all(fd, buf, sizeof(buf), 5000);
    int answers = 0;
    for (const char *p = buf; (p = strstr(p, "hello\n")) != NULL; p++)
        answers++;
    ASSERT_EQ(answers, 3);
    ASSERT_NOT_NULL(strstr(buf, "Connection: close\r\n"));
    ASSERT_EQ(atomic_load(&sh->calls), 3);
    close(fd);
    stop(&h);
}

static char docroot[512];

static void setup_http_static(swoop_server_t *srv, void *arg)
{
    setup_http(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "enable_static_handler", "1"));
    ASSERT_OK(swoop_server_set(srv, "document_root", docroot));
}

static void write_file(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", docroot, name);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs(text, f);
    fclose(f);
}

/* Static files: types, index, HEAD, empty files, 304s, and no way out of the root. */
static void static_files(swoop_mode_t mode)
{
    snprintf(docroot, sizeof(docroot), "%s/www", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(docroot, 0755), 0);
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/sub", docroot);
    ASSERT_EQ(mkdir(sub, 0755), 0);
    write_file("index.html", "<h1>index</h1>\n");
    write_file("a.txt", "alpha\n");
    write_file("sub/b.css", "b{}\n");
    write_file("empty.txt", "");
    char link[600];
    snprintf(link, sizeof(link), "%s/outside", docroot);
    ASSERT_EQ(symlink("/etc/passwd", link), 0);
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_http_static, NULL, 2);
    char cmd[1024], out[8192];
    snprintf(cmd, sizeof(cmd), "curl -sS -i http://127.0.0.1:%d/a.txt", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "HTTP/1.1 200 OK\r\n"));
    ASSERT_NOT_NULL(strstr(out, "Content-Type: text/plain\r\n"));
    ASSERT_NOT_NULL(strstr(out, "Content-Length: 6\r\n"));
    ASSERT_NOT_NULL(strstr(out, "\r\n\r\nalpha\n"));
    const char *et = strstr(out, "ETag: ");
    ASSERT_NOT_NULL(et);
    char etag[64];
    ASSERT_EQ(sscanf(et, "ETag: %63s", etag), 1);
    snprintf(cmd, sizeof(cmd), "curl -sS http://127.0.0.1:%d/ http://127.0.0.1:%d/sub/b.css",
             h.port, h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "<h1>index</h1>\nb{}\n");
    snprintf(cmd, sizeof(cmd),
             "curl -sS -o /dev/null -w '%%{http_code} %%{size_download} %%{content_type}' "
             "http://127.0.0.1:%d/sub/b.css",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "200 4 text/css");
    snprintf(cmd, sizeof(cmd), "curl -sS -I http://127.0.0.1:%d/a.txt", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "Content-Length: 6\r\n"));
    snprintf(cmd, sizeof(cmd), "curl -sS -i http://127.0.0.1:%d/empty.txt", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "200 OK\r\n"));
    ASSERT_NOT_NULL(strstr(out, "Content-Length: 0\r\n"));
    /* Conditional requests. */
    snprintf(
        cmd, sizeof(cmd),
        "curl -sS -o /dev/null -w '%%{http_code}' -H 'If-None-Match: %s' http://127.0.0.1:%d/a.txt",
        etag, h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "304");
    snprintf(cmd, sizeof(cmd),
             "curl -sS -o /dev/null -w '%%{http_code}' -H 'If-Modified-Since: Fri, 01 Jan 2100 "
             "00:00:00 GMT' http://127.0.0.1:%d/a.txt",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "304");
    snprintf(cmd, sizeof(cmd),
             "curl -sS -o /dev/null -w '%%{http_code}' -H 'If-None-Match: \"other\"' "
             "http://127.0.0.1:%d/a.txt",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "200");
    /* Ranges: one range is a 206, overlapping ones are served whole, past the end is a 416. */
    static const struct {
        const char *range, *want;
    } ranges[] = {{"1-3", "206 lph"},       {"-2", "206 a\n"},     {"4-", "206 a\n"},
                  {"2-100", "206 pha\n"},   {"10-20", "416 "},     {"0-2,1-3", "200 alpha\n"},
                  {"x=1-2", "200 alpha\n"}, {"3-1", "200 alpha\n"}};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        snprintf(cmd, sizeof(cmd),
                 "curl -sS -H 'Range: %s%s' -w '%%{http_code} ' -o /tmp/swoop-range.$$ "
                 "http://127.0.0.1:%d/a.txt; cat /tmp/swoop-range.$$; rm -f /tmp/swoop-range.$$",
                 strchr(ranges[i].range, '=') ? "" : "bytes=", ranges[i].range, h.port);
        ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
        if (strcmp(out, ranges[i].want) != 0)
            FAIL("Range %s: \"%s\", expected \"%s\"", ranges[i].range, out, ranges[i].want);
    }
    snprintf(cmd, sizeof(cmd), "curl -sS -i -r 1-3 http://127.0.0.1:%d/a.txt", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "Content-Range: bytes 1-3/6\r\n"));
    snprintf(cmd, sizeof(cmd),
             "curl -sS -r 1-3 -H 'If-Range: \"stale\"' -w ' %%{http_code}' "
             "http://127.0.0.1:%d/a.txt",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "alpha\n 200");
    snprintf(cmd, sizeof(cmd),
             "curl -sS -r 1-3 -H 'If-Range: %s' -w ' %%{http_code}' http://127.0.0.1:%d/a.txt",
             etag, h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "lph 206");
    int before = atomic_load(&sh->calls);
    ASSERT_EQ(before, 0); /* every answer so far came from the owner */
    /* No way out of the root: each goes to the handler (404 there). */
    static const char *escapes[] = {"/../../../../etc/passwd",
                                    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                                    "/sub/..%2f..%2f..%2fetc/passwd",
                                    "/outside",
                                    "/a.txt%00",
                                    "/sub/../../www2"};
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        int fd = cli_connect(h.port);
        char q[256];
        int n = snprintf(q, sizeof(q), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                         escapes[i]);
        cli_write(fd, q, (size_t)n);
        read_all(fd, out, sizeof(out), 3000);
        if (strstr(out, "root:") != NULL || strncmp(out, "HTTP/1.1 404 ", 13) != 0)
            FAIL("%s: \"%.60s\"", escapes[i], out);
        close(fd);
    }
    ASSERT_EQ(atomic_load(&sh->calls), (int)(sizeof(escapes) / sizeof(escapes[0])));
    stop(&h);
}

TEST_TIMEOUT(http_static_files_process, 60)
{
    static_files(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_static_files_base, 60)
{
    static_files(SWOOP_MODE_BASE);
}

static char access_path[512];

static void setup_http_access(swoop_server_t *srv, void *arg)
{
    setup_http_static(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "http_access_log", access_path));
}

/*
 * The line of lines[0, n) holding `needle`, or -1. BASE may write a
 * pipelined request's line before the one of the request before it (the
 * owner serves the next request inside the previous response's send, and
 * the worker logs after that send), so the tests look lines up by content.
 */
static int line_with(char lines[][1024], int n, const char *needle)
{
    for (int i = 0; i < n; i++)
        if (strstr(lines[i], needle))
            return i;
    return -1;
}

/* One combined-format line per request: handler, static file, refused request; nothing forged. */
static void access_log(swoop_mode_t mode)
{
    snprintf(docroot, sizeof(docroot), "%s/www", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(docroot, 0755), 0);
    write_file("a.txt", "alpha\n");
    snprintf(access_path, sizeof(access_path), "%s/access.log", swoop_test_tmpdir());
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_http_access, NULL, 2);
    int fd = cli_connect(h.port);
    const char *q = "GET /hello?x=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: evil\"\xff\r\n"
                    "Referer: http://r/\r\n\r\n"
                    "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /nope HTTP/1.0\r\n\r\n";
    cli_write(fd, q, strlen(q));
    char buf[4096];
    read_all(fd, buf, sizeof(buf), 3000);
    close(fd);
    fd = cli_connect(h.port);
    q = "GET / HTTP/1.1\r\nHost : x\r\n\r\n";
    cli_write(fd, q, strlen(q));
    read_all(fd, buf, sizeof(buf), 3000);
    close(fd);
    stop(&h);
    FILE *f = fopen(access_path, "r");
    ASSERT_NOT_NULL(f);
    char lines[8][1024];
    int n = 0;
    while (n < 8 && fgets(lines[n], sizeof(lines[n]), f))
        n++;
    fclose(f);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "# %s", lines[i]);
    ASSERT_EQ(n, 4);
    int hello = line_with(lines, n, "/hello");
    ASSERT_GE(hello, 0);
    ASSERT_NOT_NULL(strstr(lines[hello], "127.0.0.1 - - ["));
    ASSERT_NOT_NULL(strstr(lines[hello], "] \"GET /hello?x=1 HTTP/1.1\" 200 "));
    ASSERT_NOT_NULL(strstr(lines[hello], "\"http://r/\" \"evil\\\"\\xff\"\n"));
    ASSERT_GE(line_with(lines, n, "\"GET /a.txt HTTP/1.1\" 200 "), 0);
    ASSERT_GE(line_with(lines, n, "\"GET /nope HTTP/1.0\" 404 "), 0);
    ASSERT_GE(line_with(lines, n, "\"-\" 400 "), 0);
}

TEST_TIMEOUT(http_access_log_process, 60)
{
    access_log(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_access_log_base, 60)
{
    access_log(SWOOP_MODE_BASE);
}

static char access_format[16];

static void setup_http_access_format(swoop_server_t *srv, void *arg)
{
    setup_http_access(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "http_access_log_format", access_format));
}

/* Sends the four requests of access_log (handler, static, 404, 400); returns the pids serving. */
static srv_handle_t access_requests(swoop_mode_t mode, const char *format, char *pids, size_t cap)
{
    snprintf(docroot, sizeof(docroot), "%s/www", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(docroot, 0755), 0);
    write_file("a.txt", "alpha\n");
    snprintf(access_path, sizeof(access_path), "%s/access.log", swoop_test_tmpdir());
    snprintf(access_format, sizeof(access_format), "%s", format);
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_http_access_format, NULL, 2);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    size_t n = (size_t)snprintf(pids, cap, "%d", (int)h.pid);
    for (int i = 0; i < st.worker_num && i < SWOOP_STATS_WORKERS_MAX && n < cap; i++)
        n += (size_t)snprintf(pids + n, cap - n, ",%d", (int)st.workers[i].pid);
    int fd = cli_connect(h.port);
    const char *q = "GET /hello?x=%22y HTTP/1.1\r\nHost: x\r\nUser-Agent: evil\"\\\xff\tz\r\n"
                    "Referer: http://r/\r\n\r\n"
                    "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /nope HTTP/1.0\r\n\r\n";
    cli_write(fd, q, strlen(q));
    char buf[4096];
    read_all(fd, buf, sizeof(buf), 3000);
    close(fd);
    fd = cli_connect(h.port);
    q = "GET / HTTP/1.1\r\nHost : x\r\n\r\n";
    cli_write(fd, q, strlen(q));
    read_all(fd, buf, sizeof(buf), 3000);
    close(fd);
    return h;
}

/*
 * http_access_log_format json: python's json module parses every line (a
 * second implementation, strict: no NaN, the whole line one object) and
 * checks each field; the client's quote, backslash, tab and 0xff byte come
 * back as they were sent, the pid is a server process's.
 */
static void access_log_json(swoop_mode_t mode)
{
    char pids[512];
    srv_handle_t h = access_requests(mode, "json", pids, sizeof(pids));
    stop(&h);
    char cmd[4096], out[1024];
    snprintf(
        cmd, sizeof(cmd),
        "/usr/bin/python3 - '%s' '%s' <<'EOF'\n"
        "import json, re, sys\n"
        "pids = {int(p) for p in sys.argv[2].split(',')}\n"
        "lines = open(sys.argv[1], 'rb').read().decode('ascii').splitlines()\n"
        "assert len(lines) == 4, lines\n"
        "def const(x): raise ValueError(x)\n"
        "recs = [json.loads(l, parse_constant=const) for l in lines]\n"
        "keys = ['time', 'remote_addr', 'method', 'target', 'protocol', 'status', 'bytes',\n"
        "        'referer', 'user_agent', 'duration_us', 'pid']\n"
        "for r in recs:\n"
        "    assert list(r) == keys, r\n"
        "    assert re.fullmatch(r'\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z', "
        "r['time']), r\n"
        "    assert r['remote_addr'] == '127.0.0.1', r\n"
        "    assert r['pid'] in pids, (r, pids)\n"
        "    assert isinstance(r['bytes'], int) and r['bytes'] > 0, r\n"
        "want = [('GET', '/hello?x=%%22y', 'HTTP/1.1', 200, 'http://r/', 'evil\"\\\\\\xff\\tz'),\n"
        "        ('GET', '/a.txt', 'HTTP/1.1', 200, None, None),\n"
        "        ('GET', '/nope', 'HTTP/1.0', 404, None, None),\n"
        "        (None, None, None, 400, None, None)]\n"
        "# BASE may write a pipelined request's line before the one before it\n"
        "key = lambda t: tuple('' if v is None else str(v) for v in t)\n"
        "got = sorted(((r['method'], r['target'], r['protocol'], r['status'], r['referer'],\n"
        "               r['user_agent']) for r in recs), key=key)\n"
        "assert got == sorted(want, key=key), (got, want)\n"
        "for r in recs:\n"
        "    if r['method'] is None:\n"
        "        assert r['duration_us'] is None, r\n"
        "    else:\n"
        "        assert isinstance(r['duration_us'], int) and 0 <= r['duration_us'] < 10**7, r\n"
        "print('ok', len(recs))\n"
        "EOF\n",
        access_path, pids);
    int rc = run(cmd, out, sizeof(out));
    fprintf(stderr, "# %s", out);
    ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(out, "ok 4\n");
}

TEST_TIMEOUT(http_access_log_json_process, 60)
{
    access_log_json(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_access_log_json_base, 60)
{
    access_log_json(SWOOP_MODE_BASE);
}

/* http_access_log_format common: the combined line without Referer and User-Agent. */
static void access_log_common(swoop_mode_t mode)
{
    char pids[512];
    srv_handle_t h = access_requests(mode, "common", pids, sizeof(pids));
    stop(&h);
    FILE *f = fopen(access_path, "r");
    ASSERT_NOT_NULL(f);
    char lines[8][1024];
    int n = 0;
    while (n < 8 && fgets(lines[n], sizeof(lines[n]), f))
        n++;
    fclose(f);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "# %s", lines[i]);
    ASSERT_EQ(n, 4);
    unsigned long long bytes = 0;
    char tail[64];
    int hello = line_with(lines, n, "/hello");
    ASSERT_GE(hello, 0);
    const char *req = strchr(lines[hello], '"');
    ASSERT_NOT_NULL(req);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(strncmp(lines[i], "127.0.0.1 - - [", 15), 0);
    ASSERT_EQ(sscanf(req, "\"GET /hello?x=%%22y HTTP/1.1\" 200 %llu%63s", &bytes, tail), 1);
    ASSERT_UGE(bytes, 1);
    ASSERT_GE(line_with(lines, n, "\"GET /a.txt HTTP/1.1\" 200 "), 0);
    ASSERT_GE(line_with(lines, n, "\"GET /nope HTTP/1.0\" 404 "), 0);
    ASSERT_GE(line_with(lines, n, "\"-\" 400 "), 0);
    for (int i = 0; i < n; i++) {
        int quotes = 0;
        for (const char *p = lines[i]; *p; p++)
            quotes += *p == '"';
        ASSERT_EQ(quotes, 2); /* the request line's only: no Referer, no User-Agent */
    }
}

TEST_TIMEOUT(http_access_log_common_base, 60)
{
    access_log_common(SWOOP_MODE_BASE);
}

TEST_TIMEOUT(http_access_log_common_process, 60)
{
    access_log_common(SWOOP_MODE_PROCESS);
}

/* A format the setter does not know is refused by name. */
TEST(http_access_log_format_names)
{
    swoop_server_t *srv = NULL;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_BASE));
    ASSERT_OK(swoop_server_set(srv, "http_access_log_format", "json"));
    ASSERT_OK(swoop_server_set(srv, "http_access_log_format", "common"));
    ASSERT_OK(swoop_server_set(srv, "http_access_log_format", "combined"));
    ASSERT_EQ(swoop_server_set(srv, "http_access_log_format", "xml"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "http_access_log_format", ""), SWOOP_EINVAL);
    ASSERT_OK(swoop_server_free(srv));
}

/* Query, urlencoded form and cookie parameters, decoded into the caller's buffer. */
TEST_TIMEOUT(http_params_base, 60)
{
    srv_handle_t h = start(SWOOP_MODE_BASE);
    char cmd[512], out[512];
    snprintf(cmd, sizeof(cmd),
             "curl -sS -b 'x=1; sid=ab%%21c' --data 'a=1&b=hello+w%%C3%%B6rld' "
             "'http://127.0.0.1:%d/params?a+b=%%2Fx%%20y&c=3'",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "q=/x y f=hello w\xc3\xb6rld c=ab!c small=-28 none=-2\n");
    stop(&h);
}

static char upload_dir[512];

/* "/sum": the body's length and byte sum (the body may be a mapped file). */
static void sum_handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    size_t len;
    const unsigned char *b = swoop_http_body(req, &len);
    uint64_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += b[i];
    char out[64];
    int n = snprintf(out, sizeof(out), "%zu %llu\n", len, (unsigned long long)sum);
    swoop_http_end(res, out, (size_t)n);
}

static void setup_http_upload(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "reactor_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_max_length", "512M"));
    ASSERT_OK(swoop_server_set(srv, "http_body_memory_max", "1M"));
    ASSERT_OK(swoop_server_set(srv, "upload_tmp_dir", upload_dir));
    ASSERT_OK(swoop_http_on_request(srv, sum_handler));
}

static int body_files(void)
{
    DIR *d = opendir(upload_dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "swoop-body.", 11) == 0;
    closedir(d);
    return n;
}

/*
 * Bodies above http_body_memory_max go to a file in upload_tmp_dir as they
 * arrive: a 64 MiB upload (Content-Length, then chunked) arrives whole, the
 * connection owner's anonymous memory grows by a few MiB at most, and the
 * file is gone once the response ended.
 */
static void big_upload(swoop_mode_t mode)
{
    snprintf(upload_dir, sizeof(upload_dir), "%s/up", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(upload_dir, 0700), 0);
    srv_handle_t h = srv_start(mode, setup_http_upload, NULL, 1);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    pid_t owner = mode == SWOOP_MODE_PROCESS ? h.pid : st.workers[0].pid;
    long before = rss_anon_kb(owner);
    ASSERT_GE(before, 0);
    char cmd[512], out[256];
    /* 64 MiB of the bytes 0..255 repeated: the sum is known. */
    const uint64_t size = 64ull << 20, sum = (size / 256) * (255 * 256 / 2);
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import sys; sys.stdout.buffer.write(bytes(range(256)) * %llu)\" | "
             "curl -sS --data-binary @- http://127.0.0.1:%d/sum",
             (unsigned long long)(size / 256), h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    char want[64];
    snprintf(want, sizeof(want), "%llu %llu\n", (unsigned long long)size, (unsigned long long)sum);
    ASSERT_STR_EQ(out, want);
    long after = rss_anon_kb(owner);
    ASSERT_GE(after, 0);
    printf("# 64 MiB upload: the owner's anonymous memory %ld -> %ld kB\n", before, after);
    /*
     * BASE: the owner is also the process whose handler reads the mapped
     * body, and TSan keeps shadow memory for what it reads (anonymous, 1x
     * and more of the file): the bound holds for the server's own memory,
     * which only the PROCESS owner shows alone under TSan.
     */
    if (!TEST_UNDER_TSAN || mode == SWOOP_MODE_PROCESS)
        ASSERT_LT(after - before, 16 * 1024);
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import sys; sys.stdout.buffer.write(bytes(range(256)) * %llu)\" | "
             "curl -sS -H 'Transfer-Encoding: chunked' --data-binary @- http://127.0.0.1:%d/sum",
             (unsigned long long)(8u << 20) / 256, h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    snprintf(want, sizeof(want), "%llu %llu\n", (unsigned long long)(8u << 20),
             (unsigned long long)((8u << 20) / 256) * (255 * 256 / 2));
    ASSERT_STR_EQ(out, want);
    WAIT_UNTIL(body_files() == 0, 2000);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(http_big_upload_to_file_process, 120)
{
    big_upload(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_big_upload_to_file_base, 120)
{
    big_upload(SWOOP_MODE_BASE);
}

/* Response cookies with their attributes, and a redirect curl follows. */
TEST_TIMEOUT(http_cookies_and_redirect_process, 60)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS);
    char cmd[512], out[2048];
    snprintf(cmd, sizeof(cmd), "curl -sS -i http://127.0.0.1:%d/cookie", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(
        strstr(out, "Set-Cookie: sid=abc123; Max-Age=3600; Path=/; SameSite=Lax; HttpOnly\r\n"));
    ASSERT_NOT_NULL(strstr(out, "Set-Cookie: theme=dark\r\n"));
    ASSERT_NULL(strstr(out, "X: y"));
    snprintf(cmd, sizeof(cmd), "curl -sS -L -w ' %%{num_redirects}' http://127.0.0.1:%d/redirect",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "hello\n 1");
    stop(&h);
}
