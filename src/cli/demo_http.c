/*
 * `swoop demo`'s HTTP and WebSocket port (docs/demo.md): the dashboard
 * (the library's page, swoop_server_dashboard_asset, fed over the WebSocket
 * /live by a one-second timer in every event worker), /metrics,
 * /stats.json, and endpoints that show the architecture:
 *   GET /hello          a line from the worker that answered
 *   POST /echo          the body back
 *   GET /task?n=N       primes below N counted in a task worker; the
 *                       response is detached and given from on_finish
 *   GET /wait?n=N       the same through swoop_server_taskwait
 *   GET /after?ms=M     answered from a timer M ms later (detached)
 *   /ws                 WebSocket echo
 * and the dashboard's buttons, POST only and refused (403) unless the peer
 * is on loopback: /demo/crash, /demo/tasks?n=N, /demo/reload,
 * /demo/load?k=K&s=S (K keep-alive clients for S seconds, from a thread of
 * the worker, so the charts move on their own).
 *
 * Everything a client may start is capped per worker: pending /task
 * responses, /after timers, one load at a time; past a cap the answer is 503.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/demo.h"

#define DEMO_HTTP_TASKS 256   /* GET /task responses pending per worker */
#define DEMO_AFTER_MAX  1024  /* GET /after timers pending per worker */
#define DEMO_AFTER_MS   10000 /* the longest /after */
#define DEMO_LIVE_MAX   64    /* dashboards per worker */
#define DEMO_POST_TASKS 200   /* /demo/tasks?n= at most */
#define DEMO_POST_BOUND 300000
#define DEMO_LOAD_K     32 /* /demo/load: clients */
#define DEMO_LOAD_S     30 /* and seconds, at most */
#define DEMO_LOAD_BUF   1024

int demo_http_port;
char demo_http_host[64] = "127.0.0.1";

/* Per worker process. */
static struct {
    int64_t task;
    uint64_t http;
} pending[DEMO_HTTP_TASKS];
static int npending;
static int nafter;
static swoop_conn_id_t live[DEMO_LIVE_MAX];
static int nlive;
static atomic_int load_running;

static void send_text(swoop_http_response_t *res, int status, const char *type, const char *body)
{
    swoop_http_status(res, status);
    swoop_http_header_set(res, "Content-Type", type);
    swoop_http_header_set(res, "Cache-Control", "no-store");
    swoop_http_end(res, body, strlen(body));
}

static int is_loopback(const swoop_http_request_t *req)
{
    swoop_addr_t a;
    if (swoop_http_remote_addr(req, &a) < 0)
        return 0;
    if (a.u.sa.sa_family == AF_INET)
        return (ntohl(a.u.in.sin_addr.s_addr) >> 24) == 127;
    if (a.u.sa.sa_family == AF_INET6) {
        const struct in6_addr *x = &a.u.in6.sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(x) || (IN6_IS_ADDR_V4MAPPED(x) && x->s6_addr[12] == 127);
    }
    return a.u.sa.sa_family == AF_UNIX;
}

/* The query parameter `name` as an integer in [lo, hi]; 0 or -1. */
static int query_long(const swoop_http_request_t *req, const char *name, long lo, long hi,
                      long *out)
{
    char v[32], *end;
    if (swoop_http_query_get(req, name, v, sizeof(v)) < 0)
        return -1;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

/* Prometheus text or the dashboard snapshot, sized by a first call. */
static void send_rendered(swoop_server_t *srv, swoop_http_response_t *res, int metrics)
{
    int n =
        metrics ? swoop_server_metrics(srv, NULL, 0) : swoop_server_dashboard_json(srv, NULL, 0);
    char *buf = n >= 0 ? malloc((size_t)n + 4096) : NULL;
    if (buf)
        n = metrics ? swoop_server_metrics(srv, buf, (size_t)n + 4096)
                    : swoop_server_dashboard_json(srv, buf, (size_t)n + 4096);
    if (buf == NULL || n < 0) {
        free(buf);
        send_text(res, 500, "text/plain", "500 cannot render\n");
        return;
    }
    swoop_http_header_set(res, "Content-Type",
                          metrics ? "text/plain; version=0.0.4; charset=utf-8"
                                  : "application/json");
    swoop_http_header_set(res, "Cache-Control", "no-store");
    swoop_http_end(res, buf, (size_t)n);
    free(buf);
}

static void send_stats(swoop_server_t *srv, swoop_http_response_t *res)
{
    swoop_server_stats_t st;
    char json[16384];
    if (swoop_server_stats(srv, &st) < 0 || swoop_server_stats_json(&st, json, sizeof(json)) < 0) {
        send_text(res, 500, "text/plain", "500 no stats\n");
        return;
    }
    send_text(res, 200, "application/json", json);
}

static void task_json(swoop_server_t *srv, char *out, size_t cap, const demo_result_t *r,
                      const char *how)
{
    snprintf(out, cap,
             "{\"n\":%llu,\"primes\":%llu,\"task_worker\":%d,\"via\":\"%s\",\"worker\":%d,"
             "\"pid\":%d}\n",
             (unsigned long long)r->n, (unsigned long long)r->value, r->worker_id, how,
             swoop_server_worker_id(srv), (int)getpid());
}

/* GET /task?n=N: a task worker counts, on_finish answers the detached response. */
static void get_task(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    long n;
    if (query_long(req, "n", 0, DEMO_TASK_MAX, &n) < 0) {
        send_text(res, 400, "text/plain", "400 want ?n=N, 0 <= N <= 10000000\n");
        return;
    }
    if (npending >= DEMO_HTTP_TASKS) {
        send_text(res, 503, "text/plain", "503 this worker has 256 /task requests pending\n");
        return;
    }
    uint64_t id = swoop_http_detach(res);
    if (id == 0) {
        send_text(res, 500, "text/plain", "500 cannot detach\n");
        return;
    }
    demo_task_t t = {.kind = DEMO_PRIMES, .n = (uint64_t)n, .http = id};
    int64_t tid = swoop_server_task(srv, &t, sizeof(t), -1);
    if (tid < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "503 task: %s\n", swoop_strerror((int)tid));
        swoop_http_respond(srv, id, 503, "text/plain", msg, strlen(msg));
        return;
    }
    pending[npending].task = tid;
    pending[npending].http = id;
    npending++;
}

static int pending_take(int64_t task_id, uint64_t *http)
{
    for (int i = 0; i < npending; i++) {
        if (pending[i].task == task_id) {
            *http = pending[i].http;
            pending[i] = pending[--npending];
            return 1;
        }
    }
    return 0;
}

void demo_http_task_done(swoop_server_t *srv, int64_t task_id, const demo_result_t *r)
{
    uint64_t http;
    if (!pending_take(task_id, &http))
        return;
    char json[256];
    task_json(srv, json, sizeof(json), r, "task");
    int rc = swoop_http_respond(srv, http, 200, "application/json", json, strlen(json));
    if (rc < 0 && rc != SWOOP_ECLOSED)
        swoop_log(SWOOP_LOG_WARNING, rc, "demo: the answer to GET /task is lost");
}

int demo_http_task_error(swoop_server_t *srv, int64_t task_id, int error)
{
    uint64_t http;
    if (!pending_take(task_id, &http))
        return 0;
    char msg[160];
    snprintf(msg, sizeof(msg), "500 the task has no result: %s\n", swoop_strerror(error));
    swoop_http_respond(srv, http, 500, "text/plain", msg, strlen(msg));
    return 1;
}

static void get_wait(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    long n;
    if (query_long(req, "n", 0, DEMO_TASK_MAX, &n) < 0) {
        send_text(res, 400, "text/plain", "400 want ?n=N, 0 <= N <= 10000000\n");
        return;
    }
    demo_task_t t = {.kind = DEMO_PRIMES, .n = (uint64_t)n};
    void *out = NULL;
    size_t len = 0;
    int rc = swoop_server_taskwait(srv, &t, sizeof(t), DEMO_WAIT_MS, -1, &out, &len);
    demo_result_t r;
    if (rc < 0 || len != sizeof(r)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "503 taskwait: %s\n", rc < 0 ? swoop_strerror(rc) : "no result");
        swoop_free(out);
        send_text(res, 503, "text/plain", msg);
        return;
    }
    memcpy(&r, out, sizeof(r));
    swoop_free(out);
    char json[256];
    task_json(srv, json, sizeof(json), &r, "taskwait");
    send_text(res, 200, "application/json", json);
}

typedef struct after_s {
    swoop_server_t *srv;
    uint64_t http;
    long ms;
} after_t;

static void on_after(int64_t id, void *arg)
{
    after_t *a = arg;
    char json[160];
    snprintf(json, sizeof(json), "{\"after_ms\":%ld,\"worker\":%d,\"pid\":%d}\n", a->ms,
             swoop_server_worker_id(a->srv), (int)getpid());
    /* The client may have gone meanwhile: SWOOP_ECLOSED, nothing to do. */
    swoop_http_respond(a->srv, a->http, 200, "application/json", json, strlen(json));
    nafter--;
    free(a);
}

static void get_after(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    long ms;
    if (query_long(req, "ms", 0, DEMO_AFTER_MS, &ms) < 0) {
        send_text(res, 400, "text/plain", "400 want ?ms=M, 0 <= M <= 10000\n");
        return;
    }
    if (nafter >= DEMO_AFTER_MAX) {
        send_text(res, 503, "text/plain", "503 this worker has 1024 /after timers pending\n");
        return;
    }
    after_t *a = malloc(sizeof(*a));
    if (a == NULL) {
        send_text(res, 503, "text/plain", "503 out of memory\n");
        return;
    }
    a->srv = srv;
    a->ms = ms;
    a->http = swoop_http_detach(res);
    if (a->http == 0 || swoop_timer_after(ms > 0 ? ms : 1, on_after, a) < 0) {
        if (a->http)
            swoop_http_respond(srv, a->http, 500, "text/plain", "500 no timer\n", 13);
        else
            send_text(res, 500, "text/plain", "500 cannot detach\n");
        free(a);
        return;
    }
    nafter++;
}

/* ---- the load generator: K keep-alive clients asking GET /hello for S seconds ---- */

typedef struct load_client_s {
    int fd;
    size_t got; /* bytes of the current response's head in buf */
    long body;  /* body bytes still to come once the head is in; -1 while reading it */
    uint64_t done;
    char buf[DEMO_LOAD_BUF];
} load_client_t;

typedef struct load_s {
    int k, s;
} load_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char load_req[] =
    "GET /hello HTTP/1.1\r\nHost: demo\r\nUser-Agent: swoop-demo-load\r\n\r\n";

static int load_connect(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)demo_http_port)};
    if (inet_pton(AF_INET, demo_http_host, &sa.sin_addr) != 1)
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        send(fd, load_req, sizeof(load_req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(load_req) - 1) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Consumes n new bytes of c's response; 1 when it ended (the next request may go), -1 on junk. */
static int load_consume(load_client_t *c, size_t n)
{
    if (c->body < 0) {
        c->got += n;
        c->buf[c->got] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (end == NULL)
            return c->got >= DEMO_LOAD_BUF - 1 ? -1 : 0;
        const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
        if (cl == NULL || cl > end)
            return -1;
        long len = strtol(cl + 17, NULL, 10);
        size_t after = c->got - (size_t)(end + 4 - c->buf);
        c->body = len - (long)after;
        c->got = 0;
    } else {
        c->body -= (long)n;
    }
    return c->body <= 0;
}

static void *load_main(void *arg)
{
    load_t L = *(load_t *)arg;
    free(arg);
    load_client_t *cs = calloc((size_t)L.k, sizeof(*cs));
    struct pollfd *pfd = calloc((size_t)L.k, sizeof(*pfd));
    uint64_t deadline = now_ms() + (uint64_t)L.s * 1000u, total = 0;
    for (int i = 0; cs && pfd && i < L.k; i++) {
        cs[i].fd = load_connect();
        cs[i].body = -1;
    }
    while (cs && pfd && now_ms() < deadline) {
        int n = 0;
        for (int i = 0; i < L.k; i++) {
            if (cs[i].fd < 0)
                cs[i].fd = load_connect(); /* the worker that served it restarted */
            pfd[i] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
            n += cs[i].fd >= 0;
        }
        if (n == 0)
            break;
        if (poll(pfd, (nfds_t)L.k, 200) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < L.k; i++) {
            load_client_t *c = &cs[i];
            if (c->fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char *dst = c->body < 0 ? c->buf + c->got : c->buf;
            size_t room = c->body < 0 ? DEMO_LOAD_BUF - 1 - c->got : DEMO_LOAD_BUF - 1;
            ssize_t r = recv(c->fd, dst, room, MSG_DONTWAIT);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            int st = r > 0 ? load_consume(c, (size_t)r) : -1;
            if (st == 1) {
                c->done++;
                total++;
                c->body = -1;
                if (send(c->fd, load_req, sizeof(load_req) - 1, MSG_NOSIGNAL) ==
                    (ssize_t)sizeof(load_req) - 1)
                    continue;
                st = -1;
            }
            if (st < 0) {
                close(c->fd);
                c->fd = -1;
                c->got = 0;
                c->body = -1;
            }
        }
    }
    for (int i = 0; cs && i < L.k; i++) {
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    }
    free(cs);
    free(pfd);
    swoop_log(SWOOP_LOG_INFO, 0, "demo: load of %d clients for %d s done: %llu requests", L.k, L.s,
              (unsigned long long)total);
    atomic_store(&load_running, 0);
    return NULL;
}

static void post_load(swoop_http_request_t *req, swoop_http_response_t *res)
{
    long k = 8, s = 10;
    if ((swoop_http_query(req) && strstr(swoop_http_query(req), "k=") &&
         query_long(req, "k", 1, DEMO_LOAD_K, &k) < 0) ||
        (swoop_http_query(req) && strstr(swoop_http_query(req), "s=") &&
         query_long(req, "s", 1, DEMO_LOAD_S, &s) < 0)) {
        send_text(res, 400, "text/plain", "400 want k=1..32 clients and s=1..30 seconds\n");
        return;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&load_running, &expected, 1)) {
        send_text(res, 409, "text/plain", "409 a load is running in this worker\n");
        return;
    }
    load_t *L = malloc(sizeof(*L));
    pthread_t th;
    pthread_attr_t attr;
    sigset_t all, old;
    int err = L ? 0 : ENOMEM;
    if (L) {
        L->k = (int)k;
        L->s = (int)s;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        /* The thread takes no signal: they stay the worker's loop's. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        err = pthread_create(&th, &attr, load_main, L);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    if (err != 0) {
        free(L);
        atomic_store(&load_running, 0);
        send_text(res, 503, "text/plain", "503 cannot start the load\n");
        return;
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "load: %ld clients asking GET /hello for %ld s\n", k, s);
    send_text(res, 202, "text/plain", msg);
}

static void crash_now(int64_t id, void *arg)
{
    abort();
}

/* The dashboard's buttons (POST, loopback peers only). */
static void demo_action(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res,
                        const char *what)
{
    char msg[160];
    if (strcmp(swoop_http_method(req), "POST") != 0) {
        swoop_http_header_set(res, "Allow", "POST");
        send_text(res, 405, "text/plain", "405 POST only\n");
        return;
    }
    if (!is_loopback(req)) {
        send_text(res, 403, "text/plain", "403 demo actions are for loopback clients only\n");
        return;
    }
    if (strcmp(what, "crash") == 0) {
        snprintf(msg, sizeof(msg), "worker %d (pid %d) aborts now; the manager restarts it\n",
                 swoop_server_worker_id(srv), (int)getpid());
        swoop_log(SWOOP_LOG_WARNING, 0, "demo: crash requested from the dashboard: abort()");
        send_text(res, 200, "text/plain", msg);
        /* Let the answer leave first: sends are flushed after the callback returns. */
        swoop_timer_after(50, crash_now, NULL);
    } else if (strcmp(what, "tasks") == 0) {
        long n;
        if (query_long(req, "n", 1, DEMO_POST_TASKS, &n) < 0) {
            send_text(res, 400, "text/plain", "400 want ?n=N, 1 <= N <= 200\n");
            return;
        }
        long posted = 0;
        for (long i = 0; i < n; i++) {
            demo_task_t t = {.kind = DEMO_PRIMES, .n = DEMO_POST_BOUND + (uint64_t)i};
            posted += swoop_server_task(srv, &t, sizeof(t), -1) >= 0;
        }
        snprintf(msg, sizeof(msg), "posted %ld of %ld tasks (primes below %d)\n", posted, n,
                 DEMO_POST_BOUND);
        send_text(res, posted == n ? 202 : 503, "text/plain", msg);
    } else if (strcmp(what, "reload") == 0) {
        int rc = swoop_server_reload(srv);
        snprintf(msg, sizeof(msg), "%s\n",
                 rc == 0 ? "reload: every worker restarts" : swoop_strerror(rc));
        send_text(res, rc == 0 ? 202 : 503, "text/plain", msg);
    } else if (strcmp(what, "load") == 0) {
        post_load(req, res);
    } else {
        send_text(res, 404, "text/plain", "404 actions: crash, tasks, reload, load\n");
    }
}

static void on_request(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    const char *path = swoop_http_path(req);
    const char *m = swoop_http_method(req);
    int get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    const void *data;
    size_t len;
    const char *type;
    if (strncmp(path, "/demo/", 6) == 0) {
        demo_action(srv, req, res, path + 6);
    } else if (get && swoop_server_dashboard_asset(path, &data, &len, &type) == 0) {
        swoop_http_header_set(res, "Content-Type", type);
        swoop_http_end(res, data, len);
    } else if (get && strcmp(path, "/metrics") == 0) {
        send_rendered(srv, res, 1);
    } else if (get && strcmp(path, "/dashboard.json") == 0) {
        send_rendered(srv, res, 0);
    } else if (get && strcmp(path, "/stats.json") == 0) {
        send_stats(srv, res);
    } else if (get && strcmp(path, "/hello") == 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "hello from worker %d (pid %d)\n", swoop_server_worker_id(srv),
                 (int)getpid());
        send_text(res, 200, "text/plain", msg);
    } else if (strcmp(m, "POST") == 0 && strcmp(path, "/echo") == 0) {
        const void *body = swoop_http_body(req, &len);
        const char *ct = swoop_http_header(req, "Content-Type");
        swoop_http_header_set(res, "Content-Type", ct ? ct : "application/octet-stream");
        swoop_http_end(res, body, len);
    } else if (get && strcmp(path, "/task") == 0) {
        get_task(srv, req, res);
    } else if (get && strcmp(path, "/wait") == 0) {
        get_wait(srv, req, res);
    } else if (get && strcmp(path, "/after") == 0) {
        get_after(srv, req, res);
    } else {
        send_text(res, 404, "text/plain",
                  "404 try: / (dashboard), /metrics, /stats.json, /hello, POST /echo, "
                  "/task?n=N, /wait?n=N, /after?ms=M, /ws (WebSocket)\n");
    }
}

/* ---- WebSocket: /live feeds the dashboard, /ws echoes ---- */

static int ws_handshake(swoop_server_t *srv, swoop_conn_id_t conn, swoop_http_request_t *req)
{
    const char *path = swoop_http_path(req);
    if (strcmp(path, "/ws") == 0)
        return 0;
    if (strcmp(path, "/live") == 0)
        return nlive < DEMO_LIVE_MAX ? 0 : 503;
    return 404;
}

static void live_push(swoop_server_t *srv, swoop_conn_id_t only)
{
    int n = swoop_server_dashboard_json(srv, NULL, 0);
    char *buf = n >= 0 ? malloc((size_t)n + 4096) : NULL;
    if (buf == NULL)
        return;
    n = swoop_server_dashboard_json(srv, buf, (size_t)n + 4096);
    for (int i = nlive - 1; n >= 0 && i >= 0; i--) {
        if (only && live[i] != only)
            continue;
        if (swoop_ws_push(srv, live[i], SWOOP_WS_TEXT, buf, (size_t)n) == SWOOP_ECLOSED)
            live[i] = live[--nlive];
    }
    free(buf);
}

static void ws_open(swoop_server_t *srv, swoop_conn_id_t conn, swoop_http_request_t *req)
{
    if (strcmp(swoop_http_path(req), "/live") != 0) {
        static const char hi[] = "swoop demo: WebSocket echo; what you send comes back";
        swoop_ws_push(srv, conn, SWOOP_WS_TEXT, hi, sizeof(hi) - 1);
        return;
    }
    if (nlive >= DEMO_LIVE_MAX) {
        swoop_ws_close(srv, conn, 1013, "too many dashboards");
        return;
    }
    live[nlive++] = conn;
    /* The page shows the demo's buttons on this; then a snapshot at once. */
    static const char demo[] = "{\"demo\":true}";
    swoop_ws_push(srv, conn, SWOOP_WS_TEXT, demo, sizeof(demo) - 1);
    live_push(srv, conn);
}

static void ws_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    for (int i = 0; i < nlive; i++) {
        if (live[i] == conn)
            return; /* a dashboard sends nothing we use */
    }
    if (opcode == SWOOP_WS_TEXT || opcode == SWOOP_WS_BINARY)
        swoop_ws_push(srv, conn, opcode, data, len);
}

static void ws_close(swoop_server_t *srv, swoop_conn_id_t conn, int code)
{
    for (int i = 0; i < nlive; i++) {
        if (live[i] == conn) {
            live[i] = live[--nlive];
            return;
        }
    }
}

static void live_tick(int64_t id, void *arg)
{
    if (nlive > 0)
        live_push(arg, 0);
}

void demo_http_worker_start(swoop_server_t *srv, int worker_id)
{
    if (swoop_timer_tick(1000, live_tick, srv) < 0)
        swoop_log(SWOOP_LOG_WARNING, 0, "demo: worker %d cannot feed dashboards", worker_id);
}

int demo_http_setup(swoop_server_t *srv)
{
    int rc = swoop_http_on_request(srv, on_request);
    if (rc == 0)
        rc = swoop_ws_on(srv, &(swoop_ws_events_t){.on_handshake = ws_handshake,
                                                   .on_open = ws_open,
                                                   .on_message = ws_message,
                                                   .on_close = ws_close});
    return rc;
}
