/*
 * WebSocket (issue 12), both modes, against real clients: Python's
 * websockets library (Debian python3-websockets) for echo at the sizes
 * around each length encoding, fragmented and binary messages, pushes from
 * another worker and from a task worker, broadcast, the close handshake
 * with its code reaching on_close; raw sockets for what a library will not
 * send: an unmasked frame (1002), text that is not UTF-8 (1007), a message
 * over websocket_max_message_size (1009), a ping answered by the owner,
 * refused handshakes (426, 400, on_handshake's 403); and HTTP on the same
 * port.
 */
/* TEST_LABELS: tsan */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <swoop/websocket.h>

#include "server_common.h"
#include "ws_client.h"

typedef struct shared_s {
    _Atomic int opens;
    _Atomic int closes;
    _Atomic int last_code;
} shared_t;

static shared_t *sh;

static void on_task(swoop_server_t *srv, int64_t task, int src, const void *data, size_t len)
{
    (void)task;
    (void)src;
    swoop_conn_id_t conn;
    ASSERT_EQ(len, sizeof(conn));
    memcpy(&conn, data, sizeof(conn));
    ASSERT_OK(swoop_ws_push(srv, conn, SWOOP_WS_TEXT, "from a task worker", 18));
}

static void on_pipe_message(swoop_server_t *srv, int src, const void *data, size_t len)
{
    (void)src;
    swoop_conn_id_t conn;
    ASSERT_EQ(len, sizeof(conn));
    memcpy(&conn, data, sizeof(conn));
    char msg[64];
    int n = snprintf(msg, sizeof(msg), "from worker %d", swoop_server_worker_id(srv));
    ASSERT_OK(swoop_ws_push(srv, conn, SWOOP_WS_TEXT, msg, (size_t)n));
}

static void on_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    if (opcode == SWOOP_WS_TEXT && len == 4 && memcmp(data, "task", 4) == 0) {
        ASSERT_GT(swoop_server_task(srv, &conn, sizeof(conn), -1), 0);
        return;
    }
    if (opcode == SWOOP_WS_TEXT && len == 5 && memcmp(data, "other", 5) == 0) {
        ASSERT_OK(
            swoop_server_send_message(srv, 1 - swoop_server_worker_id(srv), &conn, sizeof(conn)));
        return;
    }
    if (opcode == SWOOP_WS_TEXT && len > 6 && memcmp(data, "bcast:", 6) == 0) {
        ASSERT_GE(swoop_ws_broadcast(srv, NULL, 0, SWOOP_WS_TEXT, (const char *)data + 6, len - 6),
                  0);
        return;
    }
    if (opcode == SWOOP_WS_TEXT && len == 5 && memcmp(data, "close", 5) == 0) {
        ASSERT_OK(swoop_ws_close(srv, conn, 4000, "bye"));
        return;
    }
    ASSERT(opcode == SWOOP_WS_TEXT || opcode == SWOOP_WS_BINARY);
    ASSERT_OK(swoop_ws_push(srv, conn, opcode, data, len));
}

static int on_handshake(swoop_server_t *srv, swoop_conn_id_t conn, swoop_http_request_t *req)
{
    (void)srv;
    (void)conn;
    return strcmp(swoop_http_path(req), "/forbidden") == 0 ? 403 : 0;
}

static void on_open(swoop_server_t *srv, swoop_conn_id_t conn, swoop_http_request_t *req)
{
    (void)srv;
    (void)conn;
    ASSERT_STR_EQ(swoop_http_path(req), "/ws");
    atomic_fetch_add(&sh->opens, 1);
}

static void on_close(swoop_server_t *srv, swoop_conn_id_t conn, int code)
{
    (void)srv;
    (void)conn;
    atomic_store(&sh->last_code, code);
    atomic_fetch_add(&sh->closes, 1);
}

static void http_handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    (void)srv;
    (void)req;
    swoop_http_end(res, "hello\n", 6);
}

static void setup(swoop_server_t *srv, void *arg)
{
    (void)arg;
    ASSERT_OK(swoop_server_set(srv, "open_websocket_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "websocket_max_message_size", "2M"));
    ASSERT_OK(swoop_server_set(srv, "task_worker_num", "1"));
    ASSERT_OK(swoop_http_on_request(srv, http_handler));
    swoop_ws_events_t ev = {.on_handshake = on_handshake,
                            .on_open = on_open,
                            .on_message = on_message,
                            .on_close = on_close};
    ASSERT_OK(swoop_ws_on(srv, &ev));
    ASSERT_OK(swoop_server_on(
        srv, &(swoop_server_events_t){.on_task = on_task, .on_pipe_message = on_pipe_message}));
}

static srv_handle_t start(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    return srv_start(mode, setup, NULL, 2);
}

static void stop(srv_handle_t *h)
{
    srv_stop(h, 5000);
    munmap(sh, sizeof(*sh));
}

/* Runs a Python script with the Debian interpreter (its websockets module); stdout, status. */
static int python(const char *script, int port, char *out, size_t cap)
{
    char cmd[16384];
    snprintf(cmd, sizeof(cmd), "PORT=%d /usr/bin/python3 - <<'EOF'\n%s\nEOF\n", port, script);
    FILE *f = popen(cmd, "r");
    ASSERT_NOT_NULL(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char echo_script[] =
    "import asyncio, os, websockets\n"
    "async def main():\n"
    "    url = 'ws://127.0.0.1:' + os.environ['PORT'] + '/ws'\n"
    "    async with websockets.connect(url, max_size=None, compression=None) as ws:\n"
    "        for n in (0, 1, 125, 126, 127, 128, 65535, 65536, 1 << 20):\n"
    "            s = ''.join(chr(0x61 + i % 26) for i in range(n)) if n < 70000 else 'x' * n\n"
    "            await ws.send(s)\n"
    "            r = await ws.recv()\n"
    "            assert r == s, n\n"
    "            b = bytes(i % 256 for i in range(n)) if n < 70000 else b'\\xff' * n\n"
    "            await ws.send(b)\n"
    "            assert await ws.recv() == b, n\n"
    "        await ws.send(iter(['fr', 'ag', 'mented \\u00e9\\u4e2d']))\n"
    "        assert await ws.recv() == 'fragmented \\u00e9\\u4e2d'\n"
    "        pong = await ws.ping(b'hi')\n"
    "        await asyncio.wait_for(pong, 5)\n"
    "        await ws.send('other')\n"
    "        print(await ws.recv())\n"
    "        await ws.send('task')\n"
    "        print(await ws.recv())\n"
    "        await ws.close(1000, 'done')\n"
    "    print('closed', ws.close_code)\n"
    "asyncio.run(main())\n";

static void echo(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    char out[4096];
    ASSERT_EQ(python(echo_script, h.port, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "from worker "));
    ASSERT_NOT_NULL(strstr(out, "\nfrom a task worker\nclosed 1000\n"));
    WAIT_UNTIL(atomic_load(&sh->closes) == 1, 5000);
    ASSERT_EQ(atomic_load(&sh->opens), 1);
    ASSERT_EQ(atomic_load(&sh->last_code), 1000);
    /* HTTP on the same port. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "curl -sS http://127.0.0.1:%d/hello", h.port);
    FILE *f = popen(cmd, "r");
    ASSERT_NOT_NULL(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    pclose(f);
    ASSERT_STR_EQ(out, "hello\n");
    stop(&h);
}

TEST_TIMEOUT(ws_echo_push_close_process, 90)
{
    echo(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_echo_push_close_base, 90)
{
    echo(SWOOP_MODE_BASE);
}

static const char bcast_script[] =
    "import asyncio, os, websockets\n"
    "N = 50\n"
    "async def main():\n"
    "    url = 'ws://127.0.0.1:' + os.environ['PORT'] + '/ws'\n"
    "    conns = [await websockets.connect(url) for _ in range(N)]\n"
    "    await conns[0].send('bcast:hello all')\n"
    "    got = await asyncio.gather(*[asyncio.wait_for(c.recv(), 10) for c in conns])\n"
    "    print(sum(1 for g in got if g == 'hello all'))\n"
    "    await conns[1].send('close')\n"
    "    try:\n"
    "        await asyncio.wait_for(conns[1].recv(), 10)\n"
    "    except websockets.ConnectionClosed as e:\n"
    "        print('server closed', e.rcvd.code, e.rcvd.reason)\n"
    "    for c in conns:\n"
    "        await c.close()\n"
    "asyncio.run(main())\n";

static void broadcast(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    char out[4096];
    ASSERT_EQ(python(bcast_script, h.port, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "50\nserver closed 4000 bye\n");
    WAIT_UNTIL(atomic_load(&sh->closes) == 50, 10000);
    ASSERT_EQ(atomic_load(&sh->opens), 50);
    stop(&h);
}

TEST_TIMEOUT(ws_broadcast_process, 90)
{
    broadcast(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_broadcast_base, 90)
{
    broadcast(SWOOP_MODE_BASE);
}

/* ---- raw sockets ---- */

/* The close frame's code, and then the server's close of the connection. */
static int expect_close(int fd)
{
    uint8_t p[128];
    size_t len;
    ASSERT_EQ(recv_frame(fd, p, &len), 8);
    ASSERT_GE(len, 2u);
    char rest[16];
    ASSERT_EQ(read_some(fd, rest, sizeof(rest), sizeof(rest), 5000), 0u); /* EOF */
    return p[0] << 8 | p[1];
}

static void setup_small(swoop_server_t *srv, void *arg)
{
    setup(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "websocket_max_message_size", "100"));
}

/*
 * The n-th on_close ran, with `code`. Waited for before the next client
 * opens: two workers may run the on_close of different connections in
 * either order.
 */
static void closed_with(int n, int code)
{
    WAIT_UNTIL(atomic_load(&sh->closes) == n, 5000);
    ASSERT_EQ(atomic_load(&sh->last_code), code);
}

static void raw(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_small, NULL, 2);
    /* A ping is answered by the owner with its payload; a text echoes. */
    int fd = ws_connect(h.port);
    uint8_t p[128];
    size_t len;
    send_frame(fd, 0x89, "ping!", 5, 0);
    ASSERT_EQ(recv_frame(fd, p, &len), 10);
    ASSERT_MEM_EQ(p, "ping!", 5);
    send_frame(fd, 0x81, "abc", 3, 0);
    ASSERT_EQ(recv_frame(fd, p, &len), 1);
    ASSERT_MEM_EQ(p, "abc", 3);
    /* Unmasked: 1002. */
    send_frame(fd, 0x81, "abc", 3, 1);
    ASSERT_EQ(expect_close(fd), 1002);
    close(fd);
    closed_with(1, 1002);
    /* Not UTF-8: 1007. */
    fd = ws_connect(h.port);
    send_frame(fd, 0x81, "a\xed\xa0\x80", 4, 0);
    ASSERT_EQ(expect_close(fd), 1007);
    close(fd);
    closed_with(2, 1007);
    /* Over websocket_max_message_size (100): 1009, decided from the header. */
    fd = ws_connect(h.port);
    char big[120];
    memset(big, 'x', sizeof(big));
    send_frame(fd, 0x82, big, sizeof(big), 0);
    ASSERT_EQ(expect_close(fd), 1009);
    close(fd);
    closed_with(3, 1009);
    /* A reserved opcode: 1002; a close frame from the client is echoed. */
    fd = ws_connect(h.port);
    send_frame(fd, 0x83, "", 0, 0);
    ASSERT_EQ(expect_close(fd), 1002);
    close(fd);
    closed_with(4, 1002);
    fd = ws_connect(h.port);
    send_frame(fd, 0x88,
               "\x0b\xb8"
               "ok",
               4, 0);
    ASSERT_EQ(expect_close(fd), 3000);
    close(fd);
    closed_with(5, 3000);
    /* Refused handshakes: another version (426), a bad key (400), on_handshake (403). */
    const char *bad[] = {
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 8\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET /forbidden HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"};
    const char *want[] = {"HTTP/1.1 426 ", "HTTP/1.1 400 ", "HTTP/1.1 403 "};
    for (int i = 0; i < 3; i++) {
        fd = cli_connect(h.port);
        cli_write(fd, bad[i], strlen(bad[i]));
        char buf[1024];
        size_t n = read_some(fd, buf, sizeof(buf) - 1, sizeof(buf) - 1, 5000);
        buf[n] = '\0';
        close(fd);
        if (strncmp(buf, want[i], strlen(want[i])) != 0)
            FAIL("handshake %d: got \"%.40s\", want \"%s\"", i, buf, want[i]);
        if (i == 0)
            ASSERT_NOT_NULL(strstr(buf, "Sec-WebSocket-Version: 13\r\n"));
    }
    ASSERT_EQ(atomic_load(&sh->opens), 5);
    stop(&h);
}

TEST_TIMEOUT(ws_raw_rules_process, 60)
{
    raw(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_raw_rules_base, 60)
{
    raw(SWOOP_MODE_BASE);
}
