/*
 * WebSocket settings and the going-away behaviour (issue 12), against raw
 * sockets (which answer pings only when told to) and Python's websockets
 * library (Debian python3-websockets):
 *   - websocket_ping_interval: pings at the interval; a client answering
 *     pongs stays open, one sending anything else after a ping too, a
 *     silent one gets a close frame 1011 and the close within about twice
 *     the interval (+ one tick);
 *   - websocket_subprotocol: the server's first name the client offered,
 *     compared exactly; no header when the client offered none of them;
 *   - open_websocket_close_frame / _ping_frame / _pong_frame: control
 *     frames reach on_message with their payload while the owner still
 *     answers pings and completes the close handshake; off, they do not;
 *   - swoop_ws_close: the code and reason reach the client (also from a
 *     task worker); codes that may not be sent and long reasons are
 *     SWOOP_EINVAL, a connection gone SWOOP_ECLOSED;
 *   - going away: at shutdown (both modes) and on a BASE reload every
 *     WebSocket gets a close frame 1001 in bounded time (BASE: on_close
 *     sees 1001); a PROCESS reload closes none.
 */
/* TEST_LABELS: tsan */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <swoop/timer.h>
#include <swoop/websocket.h>

#include "server_common.h"

typedef struct cfg_s {
    int ping_interval;       /* websocket_ping_interval, 0 off */
    int control;             /* open_websocket_close/ping/pong_frame */
    const char *subprotocol; /* websocket_subprotocol, NULL unset */
} cfg_t;

typedef struct shared_s {
    _Atomic int opens;
    _Atomic int closes;
    _Atomic int last_code;
    _Atomic int going_away;                 /* on_close with 1001 */
    _Atomic int ping_timeouts;              /* on_close with 1011 */
    _Atomic int pings, pongs, close_frames; /* control frames seen by on_message */
    _Atomic int ping_len, pong_len, close_len;
    unsigned char ping_data[128], pong_data[128], close_data[128];
    _Atomic int api_done;
    _Atomic int api_rc[10];
    _Atomic int after_close_rc; /* swoop_ws_close from on_close: the connection is gone */
    _Atomic int after_close_done;
} shared_t;

static shared_t *sh;
static cfg_t cur;

/* The reason of "close:" messages: 123 bytes, the most a close frame carries. */
static char long_reason[124];

static void record(_Atomic int *count, _Atomic int *lenp, unsigned char *dst, const void *data,
                   size_t len)
{
    ASSERT_LE(len, 125u);
    memcpy(dst, data, len);
    atomic_store(lenp, (int)len);
    atomic_fetch_add(count, 1);
}

static void api_checks(swoop_server_t *srv, swoop_conn_id_t conn)
{
    /* Codes that may not be sent (RFC 6455 7.4.1), then reasons too long or not UTF-8. */
    static const int bad[] = {0, 999, 1004, 1005, 1006, 1015, 2000, 5000};
    char r124[125];
    memset(r124, 'r', 124);
    r124[124] = '\0';
    int i = 0;
    for (; i < (int)(sizeof(bad) / sizeof(bad[0])); i++)
        atomic_store(&sh->api_rc[i], swoop_ws_close(srv, conn, bad[i], NULL));
    atomic_store(&sh->api_rc[i++], swoop_ws_close(srv, conn, 4000, r124));
    atomic_store(&sh->api_rc[i++], swoop_ws_close(srv, conn, 4000, "\xff\xfe"));
    atomic_store(&sh->api_done, 1);
    ASSERT_OK(swoop_ws_push(srv, conn, SWOOP_WS_TEXT, "checked", 7));
}

static void on_task(swoop_server_t *srv, int64_t task, int src, const void *data, size_t len)
{
    (void)task;
    (void)src;
    swoop_conn_id_t conn;
    ASSERT_EQ(len, sizeof(conn));
    memcpy(&conn, data, sizeof(conn));
    ASSERT_OK(swoop_ws_close(srv, conn, 4002, "from a task worker"));
}

/* "pause": the server stops reading the connection this long (swoop_server_pause). */
#define PAUSE_MS 3500

static swoop_server_t *worker_srv;

static void resume_cb(int64_t id, void *arg)
{
    (void)id;
    ASSERT_OK(swoop_server_resume(worker_srv, (swoop_conn_id_t)(uintptr_t)arg));
}

static void on_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    if (opcode == SWOOP_WS_PING) {
        record(&sh->pings, &sh->ping_len, sh->ping_data, data, len);
        return;
    }
    if (opcode == SWOOP_WS_PONG) {
        record(&sh->pongs, &sh->pong_len, sh->pong_data, data, len);
        return;
    }
    if (opcode == SWOOP_WS_CLOSE) {
        record(&sh->close_frames, &sh->close_len, sh->close_data, data, len);
        return;
    }
    if (opcode == SWOOP_WS_TEXT && len == 8 && memcmp(data, "apicheck", 8) == 0) {
        api_checks(srv, conn);
        return;
    }
    if (opcode == SWOOP_WS_TEXT && len == 5 && memcmp(data, "close", 5) == 0) {
        ASSERT_OK(swoop_ws_close(srv, conn, 4001, long_reason));
        return;
    }
    if (opcode == SWOOP_WS_TEXT && len == 5 && memcmp(data, "pause", 5) == 0) {
        ASSERT_OK(swoop_server_pause(srv, conn));
        ASSERT_GT(swoop_timer_after(PAUSE_MS, resume_cb, (void *)(uintptr_t)conn), 0);
        return;
    }
    if (opcode == SWOOP_WS_TEXT && len == 6 && memcmp(data, "tclose", 6) == 0) {
        ASSERT_GT(swoop_server_task(srv, &conn, sizeof(conn), -1), 0);
        return;
    }
    ASSERT(opcode == SWOOP_WS_TEXT || opcode == SWOOP_WS_BINARY);
    int rc = swoop_ws_push(srv, conn, opcode, data, len);
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED); /* a ping timeout may close it meanwhile */
}

static void on_open(swoop_server_t *srv, swoop_conn_id_t conn, swoop_http_request_t *req)
{
    (void)conn;
    (void)req;
    worker_srv = srv;
    atomic_fetch_add(&sh->opens, 1);
}

static void on_close(swoop_server_t *srv, swoop_conn_id_t conn, int code)
{
    atomic_store(&sh->last_code, code);
    if (code == SWOOP_WS_GOING_AWAY)
        atomic_fetch_add(&sh->going_away, 1);
    if (code == SWOOP_WS_INTERNAL_ERROR)
        atomic_fetch_add(&sh->ping_timeouts, 1);
    atomic_store(&sh->after_close_rc, swoop_ws_close(srv, conn, 1000, NULL));
    atomic_store(&sh->after_close_done, 1);
    atomic_fetch_add(&sh->closes, 1);
}

static void setup(swoop_server_t *srv, void *arg)
{
    const cfg_t *c = arg;
    char v[32];
    ASSERT_OK(swoop_server_set(srv, "open_websocket_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "task_worker_num", "1"));
    snprintf(v, sizeof(v), "%d", c->ping_interval);
    ASSERT_OK(swoop_server_set(srv, "websocket_ping_interval", v));
    const char *on = c->control ? "1" : "0";
    ASSERT_OK(swoop_server_set(srv, "open_websocket_close_frame", on));
    ASSERT_OK(swoop_server_set(srv, "open_websocket_ping_frame", on));
    ASSERT_OK(swoop_server_set(srv, "open_websocket_pong_frame", on));
    if (c->subprotocol)
        ASSERT_OK(swoop_server_set(srv, "websocket_subprotocol", c->subprotocol));
    swoop_ws_events_t ev = {.on_open = on_open, .on_message = on_message, .on_close = on_close};
    ASSERT_OK(swoop_ws_on(srv, &ev));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_task = on_task}));
}

static srv_handle_t start(swoop_mode_t mode, cfg_t c)
{
    memset(long_reason, 'r', 123);
    long_reason[123] = '\0';
    if (sh == NULL)
        sh = srv_shared(sizeof(*sh));
    memset(sh, 0, sizeof(*sh));
    cur = c;
    return srv_start(mode, setup, &cur, 2);
}

/* ---- a raw client: frames the server sends (payloads < 126 bytes) ---- */

typedef struct raw_s {
    int fd;
    int eof;
    size_t n;
    uint8_t buf[4096];
} raw_t;

static const char key_fields[] = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                 "Sec-WebSocket-Version: 13\r\n";

/* Connects and upgrades with `extra` header lines; the response head goes to head. */
static void raw_open(raw_t *c, int port, const char *extra, char *head, size_t cap)
{
    memset(c, 0, sizeof(*c));
    c->fd = cli_connect(port);
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\n%s%s\r\n",
                     key_fields, extra ? extra : "");
    cli_write(c->fd, req, (size_t)n);
    size_t got = 0;
    while (got < cap - 1) {
        ASSERT_EQ(cli_read_n(c->fd, head + got, 1, 5000), 1u);
        got++;
        if (got >= 4 && memcmp(head + got - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[got] = '\0';
    ASSERT_NOT_NULL(strstr(head, "HTTP/1.1 101 Switching Protocols\r\n"));
}

static void raw_send(raw_t *c, int b0, const void *payload, size_t len)
{
    uint8_t f[256];
    ASSERT_LT(len, 126u);
    f[0] = (uint8_t)b0;
    f[1] = (uint8_t)(0x80 | len);
    uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    memcpy(f + 2, key, 4);
    for (size_t i = 0; i < len; i++)
        f[6 + i] = ((const uint8_t *)payload)[i] ^ key[i & 3];
    cli_write(c->fd, f, 6 + len);
}

/* A whole frame from the buffer: 1 (opcode, payload), 0 none yet. */
static int raw_take(raw_t *c, int *op, uint8_t *p, size_t *len)
{
    if (c->n < 2)
        return 0;
    ASSERT_EQ(c->buf[1] & 0x80, 0); /* a server never masks */
    size_t l = c->buf[1] & 0x7f;
    ASSERT_LT(l, 126u);
    if (c->n < 2 + l)
        return 0;
    ASSERT(c->buf[0] & 0x80); /* FIN: these are all single frames */
    *op = c->buf[0] & 0x0f;
    memcpy(p, c->buf + 2, l);
    *len = l;
    memmove(c->buf, c->buf + 2 + l, c->n - 2 - l);
    c->n -= 2 + l;
    return 1;
}

/* Reads what the socket holds now (after poll said so); sets eof at EOF or a reset. */
static void raw_fill(raw_t *c)
{
    ssize_t k = recv(c->fd, c->buf + c->n, sizeof(c->buf) - c->n, MSG_DONTWAIT);
    if (k > 0)
        c->n += (size_t)k;
    else if (k == 0 || (errno != EAGAIN && errno != EINTR))
        c->eof = 1;
}

/* The next frame within ms: 1, or 0 at EOF / timeout. */
static int raw_next(raw_t *c, int *op, uint8_t *p, size_t *len, int ms)
{
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    for (;;) {
        if (raw_take(c, op, p, len))
            return 1;
        uint64_t now = swoop_test_now_ms();
        if (c->eof || now >= deadline)
            return 0;
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) > 0)
            raw_fill(c);
    }
}

/* The next frame, which must be `op` (answering pings on the way when `pong`). */
static size_t raw_expect(raw_t *c, int want, uint8_t *p)
{
    int op;
    size_t len;
    for (int i = 0; i < 20; i++) {
        if (!raw_next(c, &op, p, &len, 5000))
            FAIL("no frame (opcode %d) within 5 s (eof %d)", want, c->eof);
        if (op == want)
            return len;
        if (op != 9)
            FAIL("opcode %d, want %d", op, want);
        raw_send(c, 0x8a, p, len); /* a ping from websocket_ping_interval */
    }
    FAIL("only pings, no opcode %d", want);
}

/* The server's close frame (code returned, reason to reason), then its close. */
static int raw_expect_close(raw_t *c, char *reason, size_t cap)
{
    uint8_t p[128];
    size_t len = raw_expect(c, 8, p);
    ASSERT_GE(len, 2u);
    if (reason) {
        ASSERT_LT(len - 2, cap);
        memcpy(reason, p + 2, len - 2);
        reason[len - 2] = '\0';
    }
    int op;
    raw_send(c, 0x88, p, 2); /* the client's answer: the same code */
    ASSERT_EQ(raw_next(c, &op, p, &len, 5000), 0);
    ASSERT_EQ(c->eof, 1);
    return p[0] << 8 | p[1];
}

static void raw_echo(raw_t *c, const char *text)
{
    uint8_t p[128];
    raw_send(c, 0x81, text, strlen(text));
    size_t len = raw_expect(c, 1, p);
    ASSERT_EQ(len, strlen(text));
    ASSERT_MEM_EQ(p, text, len);
}

/* ---- Python (the Debian interpreter, for its websockets module) ---- */

static FILE *python_start(const char *script, int port)
{
    char cmd[16384];
    snprintf(cmd, sizeof(cmd), "PORT=%d /usr/bin/python3 - <<'EOF'\n%s\nEOF\n", port, script);
    FILE *f = popen(cmd, "r");
    ASSERT_NOT_NULL(f);
    return f;
}

/* The rest of the script's output and its exit status. */
static int python_end(FILE *f, char *out, size_t cap)
{
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int python(const char *script, int port, char *out, size_t cap)
{
    return python_end(python_start(script, port), out, cap);
}

/* ---- websocket_ping_interval ---- */

static const char idle_script[] =
    "import asyncio, os, websockets\n"
    "async def main():\n"
    "    url = 'ws://127.0.0.1:' + os.environ['PORT'] + '/ws'\n"
    "    async with websockets.connect(url, ping_interval=None, compression=None) as ws:\n"
    "        await asyncio.sleep(4)\n"
    "        await ws.send('py')\n"
    "        assert await asyncio.wait_for(ws.recv(), 5) == 'py'\n"
    "    print('py ok', ws.close_code)\n"
    "asyncio.run(main())\n";

typedef struct pinger_s {
    raw_t c;
    int pings;
    uint64_t first_ping_ms, last_ping_ms;
    int close_code;
    uint64_t close_ms;
    int echoes;
} pinger_t;

/*
 * Three clients for 5 s with websocket_ping_interval 1: `ponger` answers
 * each ping with a pong, `talker` with a text message instead, `silent`
 * with nothing.
 */
static void ping_interval(swoop_mode_t mode)
{
    srv_handle_t h = start(mode, (cfg_t){.ping_interval = 1});
    /* A real client, which answers pings by itself, idle meanwhile. */
    FILE *py = python_start(idle_script, h.port);
    char head[1024];
    pinger_t cl[3];
    memset(cl, 0, sizeof(cl));
    enum { PONGER, TALKER, SILENT };
    for (int i = 0; i < 3; i++)
        raw_open(&cl[i].c, h.port, NULL, head, sizeof(head));
    uint64_t t0 = swoop_test_now_ms();
    uint64_t end = t0 + 5000;
    while (swoop_test_now_ms() < end) {
        struct pollfd pf[3];
        for (int i = 0; i < 3; i++)
            pf[i] = (struct pollfd){.fd = cl[i].c.eof ? -1 : cl[i].c.fd, .events = POLLIN};
        if (poll(pf, 3, 20) <= 0)
            continue;
        uint64_t now = swoop_test_now_ms();
        for (int i = 0; i < 3; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            pinger_t *p = &cl[i];
            raw_fill(&p->c);
            int op;
            uint8_t data[128];
            size_t len;
            while (raw_take(&p->c, &op, data, &len)) {
                if (op == 9) {
                    if (p->pings++ == 0)
                        p->first_ping_ms = now;
                    p->last_ping_ms = now;
                    if (i == PONGER)
                        raw_send(&p->c, 0x8a, data, len);
                    else if (i == TALKER)
                        raw_send(&p->c, 0x81, "alive", 5);
                } else if (op == 1) {
                    ASSERT_EQ(len, 5u);
                    ASSERT_MEM_EQ(data, "alive", 5);
                    p->echoes++;
                } else if (op == 8) {
                    ASSERT_GE(len, 2u);
                    p->close_code = data[0] << 8 | data[1];
                } else {
                    FAIL("client %d: opcode %d", i, op);
                }
            }
            if (p->c.eof && p->close_ms == 0)
                p->close_ms = now;
        }
    }
    /* The silent one: pinged after about 1 s, closed with 1011 about 1 s after that. */
    pinger_t *s = &cl[SILENT];
    ASSERT_EQ(s->pings, 1);
    ASSERT_EQ(s->close_code, SWOOP_WS_INTERNAL_ERROR);
    ASSERT_EQ(s->c.eof, 1);
    unsigned m = swoop_test_multiplier();
    ASSERT_GE(s->first_ping_ms - t0, 700); /* silence since the handshake, a little before t0 */
    ASSERT_LE(s->first_ping_ms - t0, 2500 * m);
    /* Seen by this client: the ping may be read late under load, which shortens the gap. */
    ASSERT_GE(s->close_ms - s->first_ping_ms, 500);
    ASSERT_LE(s->close_ms - t0, 4000 * m);
    WAIT_UNTIL(atomic_load(&sh->ping_timeouts) == 1, 5000);
    /* The Python client: still served after 4 s of silence, then closed by itself (1000). */
    char out[256];
    ASSERT_EQ(python_end(py, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "py ok 1000\n");
    WAIT_UNTIL(atomic_load(&sh->closes) == 2, 5000);
    /* The others: pinged again and again (the owner ticks once a second). */
    for (int i = PONGER; i <= TALKER; i++) {
        pinger_t *p = &cl[i];
        if (p->pings < 2 || p->pings > 5 || p->close_code || p->c.eof)
            FAIL("client %d: %d pings, close code %d, eof %d", i, p->pings, p->close_code,
                 p->c.eof);
        ASSERT_GE(p->first_ping_ms - t0, 700);
        ASSERT_LE(p->first_ping_ms - t0, 2500 * m);
        /* Not faster than the interval: every 2 s here (1 s of silence after the answer, + a tick).
         */
        ASSERT_GE(p->last_ping_ms - p->first_ping_ms, (uint64_t)(p->pings - 1) * 800);
    }
    /* Still served; the talker's messages were answered (the last one may be under way). */
    raw_echo(&cl[PONGER].c, "still here");
    pinger_t *t = &cl[TALKER];
    raw_send(&t->c, 0x81, "alive", 5);
    for (int k = 0; k < 20 && t->echoes < t->pings + 1; k++) {
        uint8_t data[128];
        size_t len = raw_expect(&t->c, 1, data);
        ASSERT_EQ(len, 5u);
        t->echoes++;
    }
    ASSERT_EQ(t->echoes, t->pings + 1);
    ASSERT_EQ(atomic_load(&sh->closes), 2);
    ASSERT_EQ(atomic_load(&sh->ping_timeouts), 1);
    for (int i = 0; i < 3; i++)
        close(cl[i].c.fd);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(ws_ping_interval_process, 60)
{
    ping_interval(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_ping_interval_base, 60)
{
    ping_interval(SWOOP_MODE_BASE);
}

/*
 * While the server does not read a connection (swoop_server_pause here; a
 * full worker queue, a drain) the client's answers cannot arrive: no ping
 * timeout then. After the resume the connection is served as before.
 */
static void ping_paused(swoop_mode_t mode)
{
    srv_handle_t h = start(mode, (cfg_t){.ping_interval = 1});
    raw_t c;
    char head[1024];
    raw_open(&c, h.port, NULL, head, sizeof(head));
    raw_send(&c, 0x81, "pause", 5);
    uint64_t end = swoop_test_now_ms() + PAUSE_MS + 500;
    int op, pings = 0;
    uint8_t p[128];
    size_t len;
    while (swoop_test_now_ms() < end) {
        if (!raw_next(&c, &op, p, &len, 100)) {
            if (c.eof)
                FAIL("closed while paused");
            continue;
        }
        if (op != 9)
            FAIL("opcode %d while paused (a close: %d)", op, len >= 2 ? p[0] << 8 | p[1] : 0);
        pings++;
        raw_send(&c, 0x8a, p, len);
    }
    raw_echo(&c, "resumed");
    ASSERT_EQ(atomic_load(&sh->closes), 0);
    ASSERT_LE(pings, 1); /* at most one, sent before the pause took effect */
    close(c.fd);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(ws_ping_interval_paused_process, 60)
{
    ping_paused(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_ping_interval_paused_base, 60)
{
    ping_paused(SWOOP_MODE_BASE);
}

/* ---- websocket_subprotocol ---- */

static const char subproto_script[] =
    "import asyncio, os, websockets\n"
    "async def main():\n"
    "    url = 'ws://127.0.0.1:' + os.environ['PORT'] + '/ws'\n"
    "    for offer in (['x', 'chat.v1', 'chat.v2'], ['other'], None):\n"
    "        async with websockets.connect(url, subprotocols=offer) as ws:\n"
    "            await ws.send('hi')\n"
    "            assert await asyncio.wait_for(ws.recv(), 5) == 'hi'\n"
    "            print(ws.subprotocol)\n"
    "asyncio.run(main())\n";

static void subprotocol(swoop_mode_t mode)
{
    /* Two names, the server's preference first. */
    srv_handle_t h = start(mode, (cfg_t){.subprotocol = "chat.v2, chat.v1"});
    struct {
        const char *extra, *want;
    } cases[] = {
        {"Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n", "chat.v2"},
        {"Sec-WebSocket-Protocol: x, chat.v1\r\n", "chat.v1"},
        {"Sec-WebSocket-Protocol: x\r\nSec-WebSocket-Protocol: chat.v1\r\n", "chat.v1"},
        {"Sec-WebSocket-Protocol: other\r\n", NULL},
        {"Sec-WebSocket-Protocol: CHAT.V2\r\n", NULL}, /* names compare exactly */
        {"Sec-WebSocket-Protocol: chat\r\n", NULL},
        {NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        raw_t c;
        char head[1024], want[128];
        raw_open(&c, h.port, cases[i].extra, head, sizeof(head));
        if (cases[i].want) {
            snprintf(want, sizeof(want), "\r\nSec-WebSocket-Protocol: %s\r\n", cases[i].want);
            if (strstr(head, want) == NULL)
                FAIL("case %zu: no \"%s\" in:\n%s", i, cases[i].want, head);
        } else if (strstr(head, "Sec-WebSocket-Protocol") != NULL) {
            FAIL("case %zu: a subprotocol the client did not offer:\n%s", i, head);
        }
        raw_echo(&c, "hello"); /* accepted either way */
        close(c.fd);
    }
    char out[1024];
    ASSERT_EQ(python(subproto_script, h.port, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "chat.v2\nNone\nNone\n");
    srv_stop(&h, 5000);
    /* Unset: never a header, whatever the client offers. */
    h = start(mode, (cfg_t){0});
    raw_t c;
    char head[1024];
    raw_open(&c, h.port, "Sec-WebSocket-Protocol: chat.v2\r\n", head, sizeof(head));
    ASSERT_NULL(strstr(head, "Sec-WebSocket-Protocol"));
    raw_echo(&c, "hello");
    close(c.fd);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(ws_subprotocol_process, 60)
{
    subprotocol(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_subprotocol_base, 60)
{
    subprotocol(SWOOP_MODE_BASE);
}

/* ---- open_websocket_close_frame / _ping_frame / _pong_frame ---- */

static void control_frames(swoop_mode_t mode)
{
    srv_handle_t h = start(mode, (cfg_t){.control = 1});
    raw_t c;
    char head[1024];
    uint8_t p[128];
    raw_open(&c, h.port, NULL, head, sizeof(head));
    /* A ping: answered by the owner, and delivered. */
    raw_send(&c, 0x89, "p1", 2);
    ASSERT_EQ(raw_expect(&c, 10, p), 2u);
    ASSERT_MEM_EQ(p, "p1", 2);
    WAIT_UNTIL(atomic_load(&sh->pings) == 1, 5000);
    ASSERT_EQ(atomic_load(&sh->ping_len), 2);
    ASSERT_MEM_EQ(sh->ping_data, "p1", 2);
    /* An unsolicited pong (RFC 6455 5.5.3): delivered, nothing answered. */
    raw_send(&c, 0x8a, "u1", 2);
    WAIT_UNTIL(atomic_load(&sh->pongs) == 1, 5000);
    ASSERT_EQ(atomic_load(&sh->pong_len), 2);
    ASSERT_MEM_EQ(sh->pong_data, "u1", 2);
    raw_echo(&c, "data still flows");
    /* A close: delivered with its payload (code, reason), echoed, closed. */
    raw_send(&c, 0x88,
             "\x03\xe8"
             "bye",
             5);
    ASSERT_EQ(raw_expect(&c, 8, p), 2u);
    ASSERT_EQ(p[0] << 8 | p[1], 1000);
    int op;
    size_t len;
    ASSERT_EQ(raw_next(&c, &op, p, &len, 5000), 0);
    ASSERT_EQ(c.eof, 1);
    close(c.fd);
    WAIT_UNTIL(atomic_load(&sh->closes) == 1, 5000);
    ASSERT_EQ(atomic_load(&sh->close_frames), 1);
    ASSERT_EQ(atomic_load(&sh->close_len), 5);
    ASSERT_MEM_EQ(sh->close_data,
                  "\x03\xe8"
                  "bye",
                  5);
    ASSERT_EQ(atomic_load(&sh->last_code), 1000);
    srv_stop(&h, 5000);

    /* Off (the default): the same frames work, on_message sees none of them. */
    h = start(mode, (cfg_t){0});
    raw_open(&c, h.port, NULL, head, sizeof(head));
    raw_send(&c, 0x89, "p2", 2);
    ASSERT_EQ(raw_expect(&c, 10, p), 2u);
    ASSERT_MEM_EQ(p, "p2", 2);
    raw_send(&c, 0x8a, "u2", 2);
    raw_echo(&c, "after them"); /* the same worker took the frames before, in order */
    raw_send(&c, 0x88, "\x03\xe8", 2);
    ASSERT_EQ(raw_expect(&c, 8, p), 2u);
    ASSERT_EQ(raw_next(&c, &op, p, &len, 5000), 0);
    close(c.fd);
    WAIT_UNTIL(atomic_load(&sh->closes) == 1, 5000);
    ASSERT_EQ(atomic_load(&sh->pings), 0);
    ASSERT_EQ(atomic_load(&sh->pongs), 0);
    ASSERT_EQ(atomic_load(&sh->close_frames), 0);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(ws_control_frames_process, 60)
{
    control_frames(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_control_frames_base, 60)
{
    control_frames(SWOOP_MODE_BASE);
}

/* ---- swoop_ws_close ---- */

static void ws_close_api(swoop_mode_t mode)
{
    srv_handle_t h = start(mode, (cfg_t){0});
    raw_t c;
    char head[1024], reason[128];
    raw_open(&c, h.port, NULL, head, sizeof(head));
    raw_send(&c, 0x81, "apicheck", 8);
    uint8_t p[128];
    ASSERT_EQ(raw_expect(&c, 1, p), 7u); /* "checked": none of the bad calls closed it */
    ASSERT_EQ(atomic_load(&sh->api_done), 1);
    for (int i = 0; i < 10; i++) {
        if (atomic_load(&sh->api_rc[i]) != SWOOP_EINVAL)
            FAIL("bad call %d: %d, want SWOOP_EINVAL", i, atomic_load(&sh->api_rc[i]));
    }
    /* The code and a 123-byte reason (a 125-byte payload, the most) reach the client. */
    raw_send(&c, 0x81, "close", 5);
    ASSERT_EQ(raw_expect_close(&c, reason, sizeof(reason)), 4001);
    ASSERT_STR_EQ(reason, long_reason);
    close(c.fd);
    WAIT_UNTIL(atomic_load(&sh->closes) == 1, 5000);
    ASSERT_EQ(atomic_load(&sh->last_code), 4001);
    ASSERT_EQ(atomic_load(&sh->after_close_rc), SWOOP_ECLOSED);
    /* From a task worker (relayed by an event worker). */
    raw_open(&c, h.port, NULL, head, sizeof(head));
    raw_send(&c, 0x81, "tclose", 6);
    ASSERT_EQ(raw_expect_close(&c, reason, sizeof(reason)), 4002);
    ASSERT_STR_EQ(reason, "from a task worker");
    close(c.fd);
    WAIT_UNTIL(atomic_load(&sh->closes) == 2, 5000);
    ASSERT_EQ(atomic_load(&sh->last_code), 4002);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(ws_close_api_process, 60)
{
    ws_close_api(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_close_api_base, 60)
{
    ws_close_api(SWOOP_MODE_BASE);
}

/* ---- going away (1001) ---- */

/*
 * N connections; "open" once they are; then each one's close code as the
 * server closes it and the seconds that took. With AGAIN set, a new
 * connection afterwards is served (a reload's successor).
 */
static const char away_script[] =
    "import asyncio, os, time, websockets\n"
    "N = 4\n"
    "async def wait_close(ws):\n"
    "    try:\n"
    "        await asyncio.wait_for(ws.recv(), 10)\n"
    "        return 'message?'\n"
    "    except websockets.ConnectionClosed as e:\n"
    "        return str(e.rcvd.code) if e.rcvd else 'none'\n"
    "async def main():\n"
    "    url = 'ws://127.0.0.1:' + os.environ['PORT'] + '/ws'\n"
    "    conns = [await websockets.connect(url, compression=None) for _ in range(N)]\n"
    "    for c in conns:\n"
    "        await c.send('x')\n"
    "        assert await asyncio.wait_for(c.recv(), 5) == 'x'\n"
    "    print('open', flush=True)\n"
    "    t0 = time.monotonic()\n"
    "    codes = await asyncio.gather(*[wait_close(c) for c in conns])\n"
    "    print(' '.join(codes), 'in', round(time.monotonic() - t0, 1), flush=True)\n"
    "    if os.environ.get('AGAIN'):\n"
    "        for i in range(50):\n"
    "            try:\n"
    "                async with websockets.connect(url) as ws:\n"
    "                    await ws.send('again')\n"
    "                    print(await asyncio.wait_for(ws.recv(), 5))\n"
    "                    break\n"
    "            except (OSError, websockets.InvalidHandshake):\n"
    "                await asyncio.sleep(0.1)\n"
    "asyncio.run(main())\n";

/* Starts the script and reads its "open" line. */
static FILE *away_clients(int port, int again)
{
    char script[sizeof(away_script) + 64];
    snprintf(script, sizeof(script), "import os\nos.environ['AGAIN'] = '%s'\n%s", again ? "1" : "",
             away_script);
    FILE *f = python_start(script, port);
    char line[64];
    ASSERT_NOT_NULL(fgets(line, sizeof(line), f));
    ASSERT_STR_EQ(line, "open\n");
    return f;
}

/* "1001 1001 1001 1001 in S": every code 1001, S seconds at most `max_s`. */
static void expect_away(const char *out, double max_s)
{
    double s = -1;
    if (strncmp(out, "1001 1001 1001 1001 in ", 23) != 0 || sscanf(out + 23, "%lf", &s) != 1 ||
        s > max_s)
        FAIL("clients saw \"%s\", want 1001 from all 4 within %.1f s", out, max_s);
}

static void going_away_shutdown(swoop_mode_t mode)
{
    srv_handle_t h = start(mode, (cfg_t){0});
    FILE *f = away_clients(h.port, 0);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(kill(h.pid, SIGTERM), 0);
    char out[1024];
    ASSERT_EQ(python_end(f, out, sizeof(out)), 0);
    expect_away(out, 2.0);
    swoop_test_wait_ok(h.pid, 5000);
    WAIT_UNTIL(!swoop_test_pid_alive(st.manager_pid), 2000);
    for (int i = 0; i < st.worker_num; i++) {
        if (st.workers[i].pid > 0)
            WAIT_UNTIL(!swoop_test_pid_alive(st.workers[i].pid), 2000);
    }
    ASSERT_EQ(swoop_test_fd_count(), h.fd0);
    /* BASE: the workers owned the connections and ran on_close with the code sent. */
    if (mode == SWOOP_MODE_BASE) {
        ASSERT_EQ(atomic_load(&sh->closes), 4);
        ASSERT_EQ(atomic_load(&sh->going_away), 4);
    }
}

TEST_TIMEOUT(ws_going_away_shutdown_process, 60)
{
    going_away_shutdown(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_going_away_shutdown_base, 60)
{
    going_away_shutdown(SWOOP_MODE_BASE);
}

/* BASE: a reload retires the workers that own the connections: 1001, then the successors serve. */
TEST_TIMEOUT(ws_going_away_reload_base, 60)
{
    srv_handle_t h = start(SWOOP_MODE_BASE, (cfg_t){0});
    FILE *f = away_clients(h.port, 1);
    ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
    char out[1024];
    ASSERT_EQ(python_end(f, out, sizeof(out)), 0);
    expect_away(out, 1.5); /* well within max_wait_time (2 s): the clients' answers ended it */
    ASSERT_NOT_NULL(strstr(out, "\nagain\n"));
    WAIT_UNTIL(atomic_load(&sh->going_away) == 4, 5000);
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.workers[0].starts >= 2 && st.workers[1].starts >= 2), 5000);
    srv_stop(&h, 5000);
}

/*
 * BASE: a client that never answers the 1001 keeps the retiring worker
 * waiting, but only until max_wait_time (2 s here; reset 250 ms before).
 */
TEST_TIMEOUT(ws_going_away_reload_silent_base, 60)
{
    srv_handle_t h = start(SWOOP_MODE_BASE, (cfg_t){0});
    raw_t c;
    char head[1024];
    raw_open(&c, h.port, NULL, head, sizeof(head));
    raw_echo(&c, "hello");
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
    uint8_t p[128];
    ASSERT_EQ(raw_expect(&c, 8, p), 2u);
    ASSERT_EQ(p[0] << 8 | p[1], SWOOP_WS_GOING_AWAY);
    ASSERT_LE(swoop_test_now_ms() - t0, 1000 * swoop_test_multiplier());
    /* No answer from us: the end comes at the worker's deadline, not before. */
    int op;
    size_t len;
    ASSERT_EQ(raw_next(&c, &op, p, &len, 4000), 0);
    ASSERT_EQ(c.eof, 1);
    uint64_t took = swoop_test_now_ms() - t0;
    ASSERT_GE(took, 1000);
    ASSERT_LE(took, 2500 * swoop_test_multiplier());
    close(c.fd);
    WAIT_UNTIL(atomic_load(&sh->going_away) == 1, 5000);
    srv_stop(&h, 5000);
}

/* PROCESS: the reactor threads own the connections; a reload closes none of them. */
TEST_TIMEOUT(ws_reload_keeps_process, 60)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS, (cfg_t){0});
    raw_t c[4];
    char head[1024];
    for (int i = 0; i < 4; i++)
        raw_open(&c[i], h.port, NULL, head, sizeof(head));
    ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.workers[0].starts >= 2 && st.workers[1].starts >= 2), 5000);
    for (int i = 0; i < 4; i++)
        raw_echo(&c[i], "after the reload");
    ASSERT_EQ(atomic_load(&sh->closes), 0);
    for (int i = 0; i < 4; i++)
        close(c[i].fd);
    srv_stop(&h, 5000);
}
