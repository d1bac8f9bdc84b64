/*
 * enable_coroutine (issue 15), both modes, one worker: HTTP handlers that call a slow
 * backend (a test TCP server) with swoop_co_connect/write/read are served concurrently
 * and other requests are answered meanwhile; taskwait in a coroutine parks only it;
 * a handler overflowing its coroutine stack is logged and the manager replaces the
 * worker.
 */
#include <swoop/co.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <swoop/alloc.h>
#include <swoop/http.h>
#include <swoop/timer.h>
#include <swoop/websocket.h>

#include "client_util.h"
#include "server_common.h"
#include "ws_client.h"

enum { BACKEND_MS = 300, SLOW_N = 10 };

static int backend_port;
static int use_co = 1;
static int with_udp;
static int with_ws;
static _Atomic int *udp_port; /* shared with the server process */

/* What the worker's user timer saw, shared with the test. */
typedef struct timer_seen_s {
    _Atomic int ran;
    _Atomic int in_co;
    _Atomic int slept;
    /* The same for a timer in a task worker, which stays a plain call. */
    _Atomic int task_ran;
    _Atomic int task_in_co;
    _Atomic int task_sleep_rc;
} timer_seen_t;
static timer_seen_t *tseen;
static char log_path[PATH_MAX];

/* ---- the backend: a coroutine server in a process of its own ---- */

static void backend_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    ssize_t n = swoop_co_read(fd, buf, sizeof(buf), 5000);
    if (n > 0) {
        swoop_co_sleep(BACKEND_MS);
        swoop_co_write(fd, "pong\n", 5, 5000);
    }
    close(fd);
}

static void backend_accept(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        if (swoop_co_wait_fd(lfd, SWOOP_READABLE, -1) < 0)
            return;
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
            swoop_co_go(backend_conn, (void *)(intptr_t)c);
    }
}

static void backend_main(void *arg, int ready_fd)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_OK(bind(lfd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(listen(lfd, 256));
    socklen_t l = sizeof(a);
    ASSERT_OK(getsockname(lfd, (struct sockaddr *)&a, &l));
    char line[32];
    int n = snprintf(line, sizeof(line), "port %d\n", ntohs(a.sin_port));
    ASSERT_EQ(write(ready_fd, line, (size_t)n), n);
    swoop_co_run(backend_accept, (void *)(intptr_t)lfd); /* until SIGKILL */
}

static pid_t backend_start(void)
{
    int rfd;
    pid_t pid = swoop_test_fork(backend_main, NULL, &rfd);
    char line[32];
    ASSERT_GT(swoop_test_read_line(rfd, line, sizeof(line), 5000), 0);
    close(rfd);
    ASSERT_EQ(sscanf(line, "port %d", &backend_port), 1);
    return pid;
}

static void backend_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    swoop_test_wait_pid(pid, 5000);
}

/* ---- the server ---- */

static int __attribute__((noinline)) runaway(int depth, volatile char *prev)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = prev ? prev[0] : 0;
    if (depth == -1)
        return 0;
    return runaway(depth + 1, frame) + frame[1];
}

static void on_task(swoop_server_t *srv, int64_t task, int src, const void *data, size_t len)
{
    swoop_test_sleep_ms(BACKEND_MS);
    char out[32];
    int n = snprintf(out, sizeof(out), "task %.*s done", (int)len, (const char *)data);
    swoop_server_task_finish(srv, out, (size_t)n);
}

static void cancel_later(void *arg)
{
    int64_t id = *(int64_t *)arg; /* read before the first wait: the caller's frame stays */
    ASSERT_OK(swoop_co_sleep(50));
    ASSERT_OK(swoop_co_cancel(id));
}

static void handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    const char *path = swoop_http_path(req);
    char body[128];
    if (strcmp(path, "/slow") == 0) {
        int fd = swoop_co_connect("127.0.0.1", backend_port, 5000);
        if (fd < 0) {
            int n = snprintf(body, sizeof(body), "connect: %s\n", swoop_strerror(fd));
            swoop_http_status(res, 502);
            swoop_http_end(res, body, (size_t)n);
            return;
        }
        ssize_t n = swoop_co_write(fd, "ping\n", 5, 5000);
        if (n == 5)
            n = swoop_co_read(fd, body, sizeof(body), 5000);
        close(fd);
        /* The request survived the waits: its path is still readable. */
        int m = snprintf(body + (n > 0 ? n : 0), 32, "%s\n", swoop_http_path(req));
        swoop_http_end(res, body, (size_t)((n > 0 ? n : 0) + m));
    } else if (strcmp(path, "/twmcancel") == 0) {
        /* A helper coroutine cancels this one 50 ms into its taskwait_multi. */
        int64_t me = swoop_co_id();
        ASSERT_GT(swoop_co_go(cancel_later, &me), 0);
        const void *data[2] = {"c1", "c2"};
        size_t lens[2] = {2, 2};
        void *results[2] = {(void *)1, (void *)1};
        size_t rlens[2];
        uint64_t t0 = swoop_test_now_ms();
        int rc = swoop_server_taskwait_multi(srv, 2, data, lens, NULL, 5000, results, rlens);
        int n = snprintf(body, sizeof(body), "%s %s %s %s", swoop_strerror(rc),
                         results[0] ? "set" : "null", results[1] ? "set" : "null",
                         swoop_test_now_ms() - t0 < BACKEND_MS ? "early" : "late");
        swoop_http_end(res, body, (size_t)n);
    } else if (strncmp(path, "/twm", 4) == 0) {
        /* Two tasks named <tag>1 and <tag>2 in one taskwait_multi; body: both results. */
        char a[16], b[16];
        snprintf(a, sizeof(a), "%s1", path + 4);
        snprintf(b, sizeof(b), "%s2", path + 4);
        const void *data[2] = {a, b};
        size_t lens[2] = {strlen(a), strlen(b)};
        void *results[2];
        size_t rlens[2];
        int got = swoop_server_taskwait_multi(srv, 2, data, lens, NULL, 5000, results, rlens);
        int n = snprintf(body, sizeof(body), "%d:%.*s|%.*s", got, results[0] ? (int)rlens[0] : 0,
                         results[0] ? (const char *)results[0] : "", results[1] ? (int)rlens[1] : 0,
                         results[1] ? (const char *)results[1] : "");
        for (int i = 0; i < 2 && got >= 0; i++)
            swoop_free(results[i]);
        swoop_http_end(res, body, (size_t)n);
    } else if (strncmp(path, "/tw", 3) == 0) {
        void *result = NULL;
        size_t len = 0;
        int rc = swoop_server_taskwait(srv, path + 3, strlen(path + 3), 5000, -1, &result, &len);
        if (rc < 0) {
            swoop_http_status(res, 500);
            swoop_http_end(res, swoop_strerror(rc), strlen(swoop_strerror(rc)));
            return;
        }
        swoop_http_end(res, result, len);
        swoop_free(result);
    } else if (strcmp(path, "/overflow") == 0) {
        runaway(0, NULL);
    } else {
        int n = snprintf(body, sizeof(body), "fast co=%d\n", swoop_co_id() > 0);
        swoop_http_end(res, body, (size_t)n);
    }
}

/* "sleep" waits BACKEND_MS in the message's coroutine before its answer; anything else
 * is answered at once. Both answers say whether they ran in a coroutine. */
static void ws_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    char out[64];
    int slept = len == 5 && memcmp(data, "sleep", 5) == 0;
    if (slept)
        ASSERT_OK(swoop_co_sleep(BACKEND_MS));
    int n = snprintf(out, sizeof(out), "%s co=%d", slept ? "slept" : "quick", swoop_co_id() > 0);
    ASSERT_OK(swoop_ws_push(srv, conn, SWOOP_WS_TEXT, out, (size_t)n));
}

/* Each datagram waits 100 ms in its own coroutine, then is answered. */
static void on_packet(swoop_server_t *srv, const void *data, size_t len, const swoop_addr_t *from)
{
    char out[64];
    int n = snprintf(out, sizeof(out), "late %.*s co=%d", (int)len, (const char *)data,
                     swoop_co_id() > 0);
    swoop_addr_t to = *from; /* copied: kept by us across the wait anyway */
    ASSERT_OK(swoop_co_sleep(100));
    ASSERT_OK(swoop_server_sendto(srv, &to, out, (size_t)n));
}

static void user_timer(int64_t id, void *arg)
{
    atomic_store(&tseen->ran, 1);
    atomic_store(&tseen->in_co, swoop_co_id() > 0);
    if (swoop_co_sleep(20) == 0) /* SWOOP_ESTATE outside a coroutine */
        atomic_store(&tseen->slept, 1);
}

/* Task workers block in on_task and have no loop for a coroutine's waits: their timers
 * stay plain calls with enable_coroutine too (co.md). */
static void task_timer(int64_t id, void *arg)
{
    atomic_store(&tseen->task_in_co, swoop_co_id() > 0);
    atomic_store(&tseen->task_sleep_rc, swoop_co_sleep(1));
    atomic_store(&tseen->task_ran, 1);
}

static void on_worker_start(swoop_server_t *srv, int worker_id)
{
    if (tseen && worker_id == 0) /* the event worker; task workers have ids 1.. here */
        ASSERT_GT(swoop_timer_after(10, user_timer, NULL), 0);
    if (tseen && worker_id == 1)
        ASSERT_GT(swoop_timer_after(10, task_timer, NULL), 0);
}

static void setup(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "enable_coroutine", use_co ? "1" : "0"));
    ASSERT_OK(swoop_server_set(srv, "coroutine_stack_size", "65536"));
    ASSERT_OK(swoop_server_set(srv, "task_worker_num", "4"));
    if (log_path[0])
        ASSERT_OK(swoop_server_set(srv, "log_file", log_path));
    ASSERT_OK(swoop_http_on_request(srv, handler));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_task = on_task,
                                                            .on_packet = on_packet,
                                                            .on_worker_start = on_worker_start}));
    if (with_ws) {
        ASSERT_OK(swoop_server_set(srv, "open_websocket_protocol", "1"));
        ASSERT_OK(swoop_ws_on(srv, &(swoop_ws_events_t){.on_message = ws_message}));
    }
    if (with_udp) {
        swoop_port_t *p;
        ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_UDP, &p));
        atomic_store(udp_port, swoop_port_number(p));
    }
}

static int send_get(int port, const char *path)
{
    int fd = cli_connect(port);
    char req[128];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    cli_write(fd, req, (size_t)n);
    return fd;
}

static void get_body(int fd, char *out, size_t cap)
{
    static char buf[8192];
    read_all(fd, buf, sizeof(buf), 10000);
    close(fd);
    ASSERT_NOT_NULL(strstr(buf, "HTTP/1.1 200"));
    const char *b = strstr(buf, "\r\n\r\n");
    ASSERT_NOT_NULL(b);
    snprintf(out, cap, "%s", b + 4);
}

/* SLOW_N handlers each wait BACKEND_MS on the backend in one worker; a fast request
 * sent meanwhile is answered at once; all slow ones end together, not one by one. */
static void slow_backend(swoop_mode_t mode)
{
    pid_t be = backend_start();
    srv_handle_t h = srv_start(mode, setup, NULL, 1);
    char body[256];
    int fast = send_get(h.port, "/fast");
    get_body(fast, body, sizeof(body));
    ASSERT_STR_EQ(body, "fast co=1\n");

    uint64_t t0 = swoop_test_now_ms();
    int fds[SLOW_N];
    for (int i = 0; i < SLOW_N; i++)
        fds[i] = send_get(h.port, "/slow");
    swoop_test_sleep_ms(50);
    uint64_t tf = swoop_test_now_ms();
    fast = send_get(h.port, "/fast");
    get_body(fast, body, sizeof(body));
    uint64_t fast_ms = swoop_test_now_ms() - tf;
    ASSERT_STR_EQ(body, "fast co=1\n");
    for (int i = 0; i < SLOW_N; i++) {
        get_body(fds[i], body, sizeof(body));
        ASSERT_STR_EQ(body, "pong\n/slow\n");
    }
    uint64_t all_ms = swoop_test_now_ms() - t0;
    printf("# fast answer in %llu ms while %d slow ones waited; all slow in %llu ms\n",
           (unsigned long long)fast_ms, SLOW_N, (unsigned long long)all_ms);
    /* Served one after another this would be >= SLOW_N * BACKEND_MS. */
    ASSERT_ULE(fast_ms, BACKEND_MS - 100);
    ASSERT_ULE(all_ms, (uint64_t)(SLOW_N / 2) * BACKEND_MS * swoop_test_multiplier());
    ASSERT_UGE(all_ms, BACKEND_MS);
    srv_stop(&h, 5000);
    backend_stop(be);
}

TEST_TIMEOUT(slow_backend_concurrent_process, 60)
{
    slow_backend(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(slow_backend_concurrent_base, 60)
{
    slow_backend(SWOOP_MODE_BASE);
}

/* Four taskwaits (each task takes BACKEND_MS in one of 4 task workers) run at once in one
 * worker, which answers a fast request meanwhile. */
static void taskwait_parks(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, setup, NULL, 1);
    uint64_t t0 = swoop_test_now_ms();
    int fds[4];
    char path[16], body[256], want[32];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "/tw%d", i);
        fds[i] = send_get(h.port, path);
    }
    swoop_test_sleep_ms(50);
    uint64_t tf = swoop_test_now_ms();
    int fast = send_get(h.port, "/fast");
    get_body(fast, body, sizeof(body));
    uint64_t fast_ms = swoop_test_now_ms() - tf;
    for (int i = 0; i < 4; i++) {
        get_body(fds[i], body, sizeof(body));
        snprintf(want, sizeof(want), "task %d done", i);
        ASSERT_STR_EQ(body, want);
    }
    uint64_t all_ms = swoop_test_now_ms() - t0;
    printf("# fast answer in %llu ms during 4 taskwaits; all in %llu ms\n",
           (unsigned long long)fast_ms, (unsigned long long)all_ms);
    ASSERT_ULE(fast_ms, BACKEND_MS - 100);
    ASSERT_ULE(all_ms, 3 * BACKEND_MS * swoop_test_multiplier());
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(taskwait_parks_the_coroutine_process, 60)
{
    taskwait_parks(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(taskwait_parks_the_coroutine_base, 60)
{
    taskwait_parks(SWOOP_MODE_BASE);
}

/* Two taskwait_multi calls of two tasks each (4 task workers, BACKEND_MS per task) run at
 * once in one worker, which answers a fast request meanwhile: blocking, the fast request
 * would wait for the first call and the second call would start after it. */
static void taskwait_multi_parks(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, setup, NULL, 1);
    uint64_t t0 = swoop_test_now_ms();
    int a = send_get(h.port, "/twmA");
    int b = send_get(h.port, "/twmB");
    swoop_test_sleep_ms(50);
    uint64_t tf = swoop_test_now_ms();
    int fast = send_get(h.port, "/fast");
    char body[256];
    get_body(fast, body, sizeof(body));
    uint64_t fast_ms = swoop_test_now_ms() - tf;
    ASSERT_STR_EQ(body, "fast co=1\n");
    get_body(a, body, sizeof(body));
    ASSERT_STR_EQ(body, "2:task A1 done|task A2 done");
    get_body(b, body, sizeof(body));
    ASSERT_STR_EQ(body, "2:task B1 done|task B2 done");
    uint64_t all_ms = swoop_test_now_ms() - t0;
    printf("# fast answer in %llu ms during 2 taskwait_multi; all in %llu ms\n",
           (unsigned long long)fast_ms, (unsigned long long)all_ms);
    ASSERT_ULE(fast_ms, BACKEND_MS - 100);
    ASSERT_ULE(all_ms, 3 * BACKEND_MS * swoop_test_multiplier());
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(taskwait_multi_parks_the_coroutine_process, 60)
{
    taskwait_multi_parks(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(taskwait_multi_parks_the_coroutine_base, 60)
{
    taskwait_multi_parks(SWOOP_MODE_BASE);
}

/* swoop_co_cancel ends a taskwait_multi at once: SWOOP_ECANCELED, every result NULL. */
TEST_TIMEOUT(taskwait_multi_cancelled, 60)
{
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup, NULL, 1);
    char body[256], want[128];
    int fd = send_get(h.port, "/twmcancel");
    get_body(fd, body, sizeof(body));
    snprintf(want, sizeof(want), "%s null null early", swoop_strerror(SWOOP_ECANCELED));
    ASSERT_STR_EQ(body, want);
    srv_stop(&h, 5000);
}

/* WS_N connections each send "sleep" (BACKEND_MS in on_message) to one worker; a
 * "quick" on another connection meanwhile is answered at once, and the sleepers all
 * end together: one after another they would take WS_N * BACKEND_MS. (It also caught
 * pushes made by coroutines that a timer woke at the start of a loop pass waiting in
 * the cork for an unrelated event: 580-830 ms, half the runs.) */
enum { WS_N = 5 };

static void ws_message_parks(swoop_mode_t mode)
{
    with_ws = 1;
    srv_handle_t h = srv_start(mode, setup, NULL, 1);
    int fds[WS_N];
    for (int i = 0; i < WS_N; i++)
        fds[i] = ws_connect(h.port);
    int quick = ws_connect(h.port);
    uint64_t t0 = swoop_test_now_ms();
    for (int i = 0; i < WS_N; i++)
        send_frame(fds[i], 0x81, "sleep", 5, 0);
    swoop_test_sleep_ms(50);
    uint64_t tq = swoop_test_now_ms();
    send_frame(quick, 0x81, "ping", 4, 0);
    uint8_t p[128];
    size_t len;
    ASSERT_EQ(recv_frame(quick, p, &len), 1);
    uint64_t quick_ms = swoop_test_now_ms() - tq;
    ASSERT_EQ(len, 10u);
    ASSERT_OK(memcmp(p, "quick co=1", 10));
    for (int i = 0; i < WS_N; i++) {
        ASSERT_EQ(recv_frame(fds[i], p, &len), 1);
        ASSERT_EQ(len, 10u);
        ASSERT_OK(memcmp(p, "slept co=1", 10));
    }
    uint64_t all_ms = swoop_test_now_ms() - t0;
    printf("# quick answer in %llu ms while %d messages slept; all in %llu ms\n",
           (unsigned long long)quick_ms, WS_N, (unsigned long long)all_ms);
    ASSERT_ULE(quick_ms, BACKEND_MS - 100);
    ASSERT_UGE(all_ms, BACKEND_MS);
    ASSERT_ULE(all_ms, 2 * BACKEND_MS * swoop_test_multiplier());
    for (int i = 0; i < WS_N; i++)
        close(fds[i]);
    close(quick);
    srv_stop(&h, 5000);
    with_ws = 0;
}

TEST_TIMEOUT(ws_on_message_parks_the_coroutine_process, 60)
{
    ws_message_parks(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_on_message_parks_the_coroutine_base, 60)
{
    ws_message_parks(SWOOP_MODE_BASE);
}

/* Without enable_coroutine the same handler blocks the worker: the fast request waits
 * for the taskwait (the contrast that shows the setting is what makes the difference). */
TEST_TIMEOUT(without_coroutines_taskwait_blocks, 60)
{
    use_co = 0;
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup, NULL, 1);
    int tw = send_get(h.port, "/tw7");
    swoop_test_sleep_ms(50);
    uint64_t tf = swoop_test_now_ms();
    int fast = send_get(h.port, "/fast");
    char body[256];
    get_body(fast, body, sizeof(body));
    uint64_t fast_ms = swoop_test_now_ms() - tf;
    ASSERT_STR_EQ(body, "fast co=0\n");
    get_body(tw, body, sizeof(body));
    ASSERT_STR_EQ(body, "task 7 done");
    ASSERT_UGE(fast_ms, BACKEND_MS - 100);
    srv_stop(&h, 5000);
}

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, needle) != NULL;
}

/* A handler that overflows its 64 KiB coroutine stack: the worker logs which coroutine
 * overflowed, dies of SIGSEGV, the manager logs it and starts another worker. */
TEST_TIMEOUT(stack_overflow_restarts_the_worker, 60)
{
    snprintf(log_path, sizeof(log_path), "%s/server.log", swoop_test_tmpdir());
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup, NULL, 1);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    pid_t old = st.workers[0].pid;
    int fd = send_get(h.port, "/overflow");
    char buf[1024];
    read_all(fd, buf, sizeof(buf), 10000);
    close(fd);
    WAIT_UNTIL(file_has(log_path, "overflowed its 65536-byte stack"), 10000);
    ASSERT(file_has(log_path, "killed by signal 11"));
    WAIT_UNTIL(swoop_server_stats_by_pid(h.pid, &st) == 0 && st.workers[0].pid > 0 &&
                   st.workers[0].pid != old && swoop_test_pid_alive(st.workers[0].pid),
               10000);
    char body[256];
    int fast = send_get(h.port, "/fast");
    get_body(fast, body, sizeof(body));
    ASSERT_STR_EQ(body, "fast co=1\n");
    srv_stop(&h, 5000);
    log_path[0] = 0;
}

/* UDP: five datagrams, each answered after a 100 ms wait in its own coroutine, all
 * answered together (about 100 ms), not one after another (500 ms). */
static void udp_packets(swoop_mode_t mode)
{
    udp_port = srv_shared(sizeof(*udp_port));
    with_udp = 1;
    srv_handle_t h = srv_start(mode, setup, NULL, 1);
    int port = atomic_load(udp_port);
    ASSERT_GT(port, 0);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    uint64_t t0 = swoop_test_now_ms();
    for (int i = 0; i < 5; i++) {
        char msg[8];
        int n = snprintf(msg, sizeof(msg), "d%d", i);
        ASSERT_EQ(sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&a, sizeof(a)), n);
    }
    int seen = 0;
    while (seen != 0x1f) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        ASSERT_GT(poll(&pf, 1, 5000), 0);
        char buf[64];
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        ASSERT_GT(n, 0);
        buf[n] = 0;
        int i;
        ASSERT_EQ(sscanf(buf, "late d%d co=1", &i), 1);
        ASSERT(i >= 0 && i < 5);
        seen |= 1 << i;
    }
    uint64_t took = swoop_test_now_ms() - t0;
    printf("# 5 datagrams answered after 100 ms waits in %llu ms\n", (unsigned long long)took);
    ASSERT_UGE(took, 100);
    ASSERT_ULE(took, 450); /* one after another would take >= 500 */
    close(fd);
    srv_stop(&h, 5000);
    with_udp = 0;
    munmap((void *)udp_port, sizeof(*udp_port));
}

TEST_TIMEOUT(udp_packets_wait_concurrently_process, 60)
{
    udp_packets(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(udp_packets_wait_concurrently_base, 60)
{
    udp_packets(SWOOP_MODE_BASE);
}

/* A user timer in a worker runs in a coroutine with enable_coroutine (it can sleep), and
 * as a plain call without it (sleep refused with SWOOP_ESTATE). */
static void user_timers(int co)
{
    tseen = srv_shared(sizeof(*tseen));
    use_co = co;
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup, NULL, 1);
    WAIT_UNTIL(atomic_load(&tseen->ran), 5000);
    if (co)
        WAIT_UNTIL(atomic_load(&tseen->slept), 5000);
    ASSERT_EQ(atomic_load(&tseen->in_co), co);
    ASSERT_EQ(atomic_load(&tseen->slept), co);
    WAIT_UNTIL(atomic_load(&tseen->task_ran), 5000);
    ASSERT_EQ(atomic_load(&tseen->task_in_co), 0);
    ASSERT_EQ(atomic_load(&tseen->task_sleep_rc), SWOOP_ESTATE);
    /* The worker's own timers still work: requests are served. */
    char body[64];
    int fd = send_get(h.port, "/fast");
    get_body(fd, body, sizeof(body));
    srv_stop(&h, 5000);
    munmap(tseen, sizeof(*tseen));
    tseen = NULL;
    use_co = 1;
}

TEST_TIMEOUT(user_timer_runs_in_a_coroutine, 60)
{
    user_timers(1);
}

TEST_TIMEOUT(user_timer_plain_without_enable_coroutine, 60)
{
    user_timers(0);
}
