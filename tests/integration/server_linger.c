/*
 * Lingering close, both modes: when the server closes a connection while
 * the client is still sending, the client must still read the server's
 * last bytes (a WebSocket close frame, an HTTP error answer) and see a
 * FIN, not a reset. Without it, close() with unread input in the kernel
 * makes Linux send an RST, which also throws away what the client had not
 * read yet. Here the client pipelines megabytes behind the request the
 * server refuses, so the server's receive buffer is full at the close.
 * Also the bounds: a client that keeps its socket open without sending is
 * let go after lingering_timeout, one that trickles after lingering_time,
 * one that floods after 8 MiB, and a shutdown waits at most
 * lingering_time for a lingering connection; each counted out once.
 * And only when the client may still send: a client that said it is done
 * (Connection: close, HTTP/1.0, its WebSocket close frame) and sent
 * nothing more has its fd closed at once, while one that pipelined, sent
 * bytes while its answer was on its way, or did not ask for the close
 * (keep-alive) gets the lingering close (lingering_closes in the stats).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/http.h>
#include <swoop/websocket.h>

#include "server_common.h"

/* Bytes the client pushes behind the refused request: far more than the socket buffers hold. */
#define PUSH_BYTES (3u << 20)

typedef enum end_e { END_EOF, END_RESET, END_TIMEOUT } end_t;

/*
 * Writes head, then PUSH_BYTES of filler, while reading what the server
 * sends into out, until the server's FIN. A failed write is a reset too:
 * it takes the socket's error, so the next read would only see EOF (and
 * a client library gives up there, not reading what was still queued).
 */
static end_t pump(int fd, const void *head, size_t hl, char *out, size_t cap, size_t *got)
{
    ASSERT_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    static char fill[65536];
    memset(fill, 'z', sizeof(fill));
    size_t sent = 0, total = hl + PUSH_BYTES;
    int writing = 1;
    *got = 0;
    uint64_t deadline = swoop_test_now_ms() + 10000 * (uint64_t)swoop_test_multiplier();
    for (;;) {
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline)
            return END_TIMEOUT;
        struct pollfd pf = {.fd = fd, .events = POLLIN | (writing ? POLLOUT : 0)};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        if (writing && (pf.revents & POLLOUT)) {
            const char *p = sent < hl ? (const char *)head + sent : fill;
            size_t n = sent < hl ? hl - sent : total - sent;
            if (n > sizeof(fill))
                n = sizeof(fill);
            ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
            else if (k < 0 && errno != EAGAIN && errno != EINTR)
                return END_RESET;
            if (sent == total)
                writing = 0;
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = recv(fd, out + *got, cap - *got, 0);
            if (k == 0)
                return END_EOF;
            if (k < 0 && errno != EAGAIN && errno != EINTR)
                return END_RESET;
            if (k > 0)
                *got += (size_t)k;
            ASSERT_LT(*got, cap);
        }
    }
}

static const char *end_name(end_t e)
{
    return e == END_EOF ? "FIN" : e == END_RESET ? "reset" : "timeout";
}

/* Every connection closed is counted out (connection_num back to 0), once each. */
static void counted_out(srv_handle_t *h, uint64_t closes)
{
    swoop_server_stats_t st;
    uint64_t deadline = swoop_test_now_ms() + 5000 * (uint64_t)swoop_test_multiplier();
    for (;;) {
        srv_stats(h, &st);
        if (st.connection_num == 0 || swoop_test_now_ms() > deadline)
            break;
        swoop_test_sleep_ms(5);
    }
    ASSERT_EQ(st.connection_num, 0);
    ASSERT_EQ(st.close_count, closes);
    ASSERT_EQ(st.accept_count, closes);
}

/* ---- WebSocket: a protocol error while the client pipelines megabytes ---- */

static void ws_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    int rc = swoop_ws_push(srv, conn, opcode, data, len);
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static void ws_setup(swoop_server_t *srv, void *arg)
{
    (void)arg;
    ASSERT_OK(swoop_server_set(srv, "open_websocket_protocol", "1"));
    swoop_ws_events_t ev = {.on_message = ws_message};
    ASSERT_OK(swoop_ws_on(srv, &ev));
}

static const char ws_handshake[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* Connects and upgrades; returns the fd with the 101 read. */
static int ws_open(int port)
{
    int fd = cli_connect(port);
    cli_write(fd, ws_handshake, strlen(ws_handshake));
    char resp[1024];
    size_t n = 0;
    while (n < sizeof(resp) - 1) {
        ASSERT_EQ(cli_read_n(fd, resp + n, 1, 5000), 1u);
        n++;
        if (n >= 4 && memcmp(resp + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    resp[n] = '\0';
    ASSERT_NOT_NULL(strstr(resp, " 101 "));
    return fd;
}

/* A masked frame with reserved opcode 3: the server fails the connection with 1002. */
static const uint8_t bad_frame[] = {0x83, 0x80, 1, 2, 3, 4};

static void ws_case(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, ws_setup, NULL, 2);
    for (int round = 0; round < 3; round++) {
        int fd = ws_open(h.port);
        const uint8_t *head = bad_frame;
        char out[256];
        size_t got;
        end_t e = pump(fd, head, sizeof(bad_frame), out, sizeof(out), &got);
        close(fd);
        static const uint8_t want[] = {0x88, 2, 0x03, 0xea};
        if (e != END_EOF || got != sizeof(want) || memcmp(out, want, sizeof(want)) != 0)
            FAIL("round %d: read %zu bytes (want a 1002 close frame: 4), then a %s "
                 "(want a FIN)",
                 round, got, end_name(e));
    }
    counted_out(&h, 3);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(linger_ws_protocol_error_process, 60)
{
    ws_case(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(linger_ws_protocol_error_base, 60)
{
    ws_case(SWOOP_MODE_BASE);
}

/* ---- HTTP: 413 for a body over package_max_length while the client uploads ---- */

static void http_handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    (void)srv;
    (void)req;
    swoop_http_end(res, "ok\n", 3);
}

static void http_setup(swoop_server_t *srv, void *arg)
{
    (void)arg;
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_max_length", "65536"));
    ASSERT_OK(swoop_http_on_request(srv, http_handler));
}

static void http_case(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, http_setup, NULL, 2);
    for (int round = 0; round < 3; round++) {
        int fd = cli_connect(h.port);
        char head[256];
        int hl =
            snprintf(head, sizeof(head),
                     "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n", PUSH_BYTES);
        char out[4096];
        size_t got;
        end_t e = pump(fd, head, (size_t)hl, out, sizeof(out) - 1, &got);
        close(fd);
        out[got] = '\0';
        const char *body = strstr(out, "\r\n\r\n");
        long cl = -1;
        const char *clh = strstr(out, "Content-Length: ");
        if (clh)
            cl = strtol(clh + 16, NULL, 10);
        if (e != END_EOF || strncmp(out, "HTTP/1.1 413 ", 13) != 0 || body == NULL || cl < 0 ||
            strlen(body + 4) != (size_t)cl)
            FAIL("round %d: read %zu bytes \"%.60s\" (want a whole 413 answer), then a %s (want a "
                 "FIN)",
                 round, got, out, end_name(e));
    }
    counted_out(&h, 3);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(linger_http_413_process, 60)
{
    http_case(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(linger_http_413_base, 60)
{
    http_case(SWOOP_MODE_BASE);
}

/* ---- the bounds: an idle client, a trickling one, a flood, a shutdown ---- */

static void bounds_setup(swoop_server_t *srv, void *arg)
{
    ws_setup(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "lingering_time", "1000"));
    ASSERT_OK(swoop_server_set(srv, "lingering_timeout", "300"));
}

static void flood_setup(swoop_server_t *srv, void *arg)
{
    ws_setup(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "lingering_time", "20000"));
    ASSERT_OK(swoop_server_set(srv, "lingering_timeout", "20000"));
}

/* Sends the bad frame, reads the 1002 close frame and the server's FIN; the socket stays open. */
static int ws_failed(int port)
{
    int fd = ws_open(port);
    cli_write(fd, bad_frame, sizeof(bad_frame));
    uint8_t p[4];
    ASSERT_EQ(cli_read_n(fd, p, 4, 5000), 4u);
    ASSERT_EQ(p[0], 0x88);
    ASSERT_EQ(p[2] << 8 | p[3], 1002);
    char b;
    ASSERT_EQ(cli_read_n(fd, &b, 1, 5000), 0u); /* the FIN, while the client keeps its end */
    return fd;
}

static int64_t conns_now(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    return st.connection_num;
}

/* Milliseconds until connection_num is 0 (fails after `ms`). */
static uint64_t ms_until_no_conn(srv_handle_t *h, uint64_t t0, int ms)
{
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    while (conns_now(h) != 0) {
        if (swoop_test_now_ms() > deadline)
            FAIL("a lingering connection still counted after %d ms", ms);
        swoop_test_sleep_ms(5);
    }
    return swoop_test_now_ms() - t0;
}

static void bounds(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, bounds_setup, NULL, 2);
    /* Idle: the client keeps its socket open and sends nothing: lingering_timeout (300 ms). */
    int fd = ws_failed(h.port);
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(conns_now(&h), 1); /* lingering: still holds its fd */
    uint64_t idle = ms_until_no_conn(&h, t0, 3000);
    ASSERT_GE(idle, 250u);
    close(fd);
    /* Trickle: a byte every 50 ms never leaves it idle: lingering_time (1000 ms) ends it. */
    fd = ws_failed(h.port);
    t0 = swoop_test_now_ms();
    int reset = 0;
    while (!reset && swoop_test_now_ms() - t0 < 5000u * swoop_test_multiplier()) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) < 0)
            reset = 1;
        swoop_test_sleep_ms(50);
    }
    uint64_t total = swoop_test_now_ms() - t0;
    ASSERT(reset); /* the server closed while bytes kept coming: a reset, as meant */
    ASSERT_GE(total, 900u);
    ASSERT_EQ(conns_now(&h), 0);
    close(fd);
    /* Shutdown while a client holds a lingering connection: bounded by lingering_time. */
    fd = ws_failed(h.port);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    uint64_t stop0 = swoop_test_now_ms();
    ASSERT_EQ(kill(h.pid, SIGTERM), 0);
    swoop_test_wait_ok(h.pid, 5000);
    uint64_t stop_ms = swoop_test_now_ms() - stop0;
    close(fd);
    WAIT_UNTIL(!swoop_test_pid_alive(st.manager_pid), 2000);
    for (int i = 0; i < st.worker_num; i++)
        if (st.workers[i].pid > 0)
            WAIT_UNTIL(!swoop_test_pid_alive(st.workers[i].pid), 2000);
    ASSERT_EQ(swoop_test_fd_count(), h.fd0);
    fprintf(stderr,
            "idle client let go after %llu ms, trickling client after %llu ms, "
            "shutdown with a lingering client took %llu ms\n",
            (unsigned long long)idle, (unsigned long long)total, (unsigned long long)stop_ms);
    ASSERT_LT(stop_ms, 1000u + 2000u * swoop_test_multiplier());
}

TEST_TIMEOUT(linger_bounds_process, 60)
{
    bounds(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(linger_bounds_base, 60)
{
    bounds(SWOOP_MODE_BASE);
}

/* A client that floods after the close: at most 8 MiB are read, then the close (a reset). */
static void flood(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, flood_setup, NULL, 2);
    int fd = ws_failed(h.port);
    ASSERT_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    static char fill[65536];
    size_t sent = 0;
    int reset = 0;
    uint64_t t0 = swoop_test_now_ms();
    while (!reset && sent < (64u << 20) &&
           swoop_test_now_ms() - t0 < 10000u * swoop_test_multiplier()) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t k = send(fd, fill, sizeof(fill), MSG_NOSIGNAL);
        if (k > 0)
            sent += (size_t)k;
        else if (k < 0 && errno != EAGAIN && errno != EINTR)
            reset = 1;
    }
    close(fd);
    fprintf(stderr, "flooding client cut after %zu bytes\n", sent);
    ASSERT(reset);
    ASSERT_GT(sent, 8u << 20);
    ASSERT_LT(sent, 32u << 20);
    ms_until_no_conn(&h, t0, 2000);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(linger_flood_process, 60)
{
    flood(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(linger_flood_base, 60)
{
    flood(SWOOP_MODE_BASE);
}

/* ---- lingering only when the client may still send ---- */

/* Shared with the server: the /wait handler runs (started), the client sent more (go). */
typedef struct wait_sync_s {
    _Atomic int started;
    _Atomic int go;
} wait_sync_t;

static wait_sync_t *sync_sh;

static void when_handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    const char *path = swoop_http_path(req);
    if (strcmp(path, "/wait") == 0) {
        /* The owner reads nothing meanwhile: what the client sends now waits in the kernel. */
        atomic_store(&sync_sh->started, 1);
        uint64_t deadline = swoop_test_now_ms() + 5000 * (uint64_t)swoop_test_multiplier();
        while (!atomic_load(&sync_sh->go) && swoop_test_now_ms() < deadline)
            swoop_test_sleep_ms(1);
    }
    swoop_http_end(res, "ok\n", 3);
    if (strcmp(path, "/bye") == 0)
        swoop_server_close(srv, swoop_http_conn(req), 0); /* a keep-alive client: not its wish */
}

static void when_setup(swoop_server_t *srv, void *arg)
{
    (void)arg;
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "open_websocket_protocol", "1"));
    ASSERT_OK(swoop_http_on_request(srv, when_handler));
    swoop_ws_events_t ev = {.on_message = ws_message};
    ASSERT_OK(swoop_ws_on(srv, &ev));
    /* Far longer than the test waits: a connection that lingers stays counted. */
    ASSERT_OK(swoop_server_set(srv, "lingering_time", "20000"));
    ASSERT_OK(swoop_server_set(srv, "lingering_timeout", "20000"));
}

/* Reads until the server's FIN (or a reset, or 5 s); out gets what came, NUL-terminated. */
static end_t read_to_end(int fd, char *out, size_t cap, size_t *got)
{
    *got = 0;
    uint64_t deadline = swoop_test_now_ms() + 5000 * (uint64_t)swoop_test_multiplier();
    for (;;) {
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline)
            return END_TIMEOUT;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t k = recv(fd, out + *got, cap - 1 - *got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            out[*got] = '\0';
            return k == 0 ? END_EOF : END_RESET;
        }
        *got += (size_t)k;
        ASSERT_LT(*got, cap - 1);
    }
}

/* Responses in out: "HTTP/1.1 200 " heads, each with its whole body "ok\n". */
static int answers(const char *out)
{
    int n = 0;
    for (const char *p = strstr(out, "HTTP/1.1 200 "); p; p = strstr(p + 1, "HTTP/1.1 200 ")) {
        const char *body = strstr(p, "\r\n\r\n");
        ASSERT_NOT_NULL(body);
        ASSERT_EQ(strncmp(body + 4, "ok\n", 3), 0);
        n++;
    }
    return n;
}

static uint64_t lingered(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    return st.lingering_closes;
}

/* Sends req, reads one whole answer and the server's FIN; the client keeps its socket open. */
static int http_once(int port, const char *req, const char *what)
{
    int fd = cli_connect(port);
    cli_write(fd, req, strlen(req));
    char out[4096];
    size_t got;
    end_t e = read_to_end(fd, out, sizeof(out), &got);
    if (e != END_EOF || answers(out) != 1)
        FAIL("%s: read %zu bytes \"%.80s\", then a %s (want one answer, then a FIN)", what, got,
             out, end_name(e));
    return fd;
}

static void not_lingering(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, when_setup, NULL, 2);
    static const char *const reqs[] = {
        "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /a HTTP/1.0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    };
    uint64_t t0 = swoop_test_now_ms();
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        int fd = http_once(h.port, reqs[i], reqs[i]);
        /* The fd is gone while the client keeps its end: no lingering (else 20 s). */
        ms_until_no_conn(&h, swoop_test_now_ms(), 3000);
        close(fd);
    }
    /* WebSocket: the client's close frame, echoed: it said it is done. */
    int fd = ws_open(h.port);
    static const uint8_t bye[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8};
    cli_write(fd, bye, sizeof(bye));
    char out[64];
    size_t got;
    end_t e = read_to_end(fd, out, sizeof(out), &got);
    static const uint8_t want[] = {0x88, 2, 0x03, 0xe8};
    if (e != END_EOF || got != sizeof(want) || memcmp(out, want, sizeof(want)) != 0)
        FAIL("ws close: read %zu bytes (want the echoed close frame: 4), then a %s (want a FIN)",
             got, end_name(e));
    ms_until_no_conn(&h, swoop_test_now_ms(), 3000);
    close(fd);
    fprintf(stderr, "4 closes of clients that were done, none lingering, in %llu ms\n",
            (unsigned long long)(swoop_test_now_ms() - t0));
    ASSERT_EQ(lingered(&h), 0u);
    counted_out(&h, 4);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(linger_not_when_client_done_process, 60)
{
    not_lingering(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(linger_not_when_client_done_base, 60)
{
    not_lingering(SWOOP_MODE_BASE);
}

/* The close lingered: counted, and the fd held while the client keeps its end open. */
static void lingers_then_close(srv_handle_t *h, int fd, uint64_t before, const char *what)
{
    uint64_t deadline = swoop_test_now_ms() + 5000 * (uint64_t)swoop_test_multiplier();
    while (lingered(h) == before && swoop_test_now_ms() < deadline)
        swoop_test_sleep_ms(2);
    if (lingered(h) != before + 1)
        FAIL("%s: %llu lingering closes (want %llu)", what, (unsigned long long)lingered(h),
             (unsigned long long)(before + 1));
    ASSERT_EQ(conns_now(h), 1);
    close(fd); /* its FIN ends the lingering */
    ms_until_no_conn(h, swoop_test_now_ms(), 3000);
}

static void lingering(swoop_mode_t mode)
{
    sync_sh = srv_shared(sizeof(*sync_sh));
    srv_handle_t h = srv_start(mode, when_setup, NULL, 2);
    /* Pipelined behind a Connection: close request: read, not answered, but it was sending. */
    uint64_t n0 = lingered(&h);
    int fd = http_once(h.port,
                       "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                       "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
                       "pipelined");
    lingers_then_close(&h, fd, n0, "pipelined");
    /* Bytes sent while the answer is on its way wait in the kernel at the close: no RST. */
    n0 = lingered(&h);
    fd = cli_connect(h.port);
    static const char req[] = "GET /wait HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cli_write(fd, req, sizeof(req) - 1);
    WAIT_UNTIL(atomic_load(&sync_sh->started), 5000);
    static char more[4096];
    memset(more, 'z', sizeof(more));
    cli_write(fd, more, sizeof(more));
    atomic_store(&sync_sh->go, 1);
    char out[4096];
    size_t got;
    end_t e = read_to_end(fd, out, sizeof(out), &got);
    if (e != END_EOF || answers(out) != 1)
        FAIL("unread bytes in the kernel: read %zu bytes \"%.80s\", then a %s (want one answer, "
             "then a FIN)",
             got, out, end_name(e));
    lingers_then_close(&h, fd, n0, "unread bytes in the kernel");
    /* A keep-alive client closed by the server: its next request may be on its way. */
    n0 = lingered(&h);
    fd = http_once(h.port, "GET /bye HTTP/1.1\r\nHost: x\r\n\r\n", "keep-alive closed");
    lingers_then_close(&h, fd, n0, "keep-alive closed");
    counted_out(&h, 3);
    munmap(sync_sh, sizeof(*sync_sh));
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(linger_when_client_may_send_process, 60)
{
    lingering(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(linger_when_client_may_send_base, 60)
{
    lingering(SWOOP_MODE_BASE);
}
