/*
 * A chat room: GET / serves the page, /chat is the WebSocket. Every text a
 * member sends is broadcast to every member (framed once per connection
 * owner); joins and leaves are announced. Any worker may take any message:
 * the broadcast reaches the members whatever worker or reactor holds them.
 *   ws_chat [process|base] [port]
 * Open http://127.0.0.1:9503/ in two browser tabs, or:
 *   python3 -m websockets ws://127.0.0.1:9503/chat
 * Stop it with Ctrl-C or SIGTERM to the pid it prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <swoop/swoop.h>

static const char page[] =
    "<!doctype html><meta charset=utf-8><title>swoop chat</title>\n"
    "<style>body{font:16px sans-serif;max-width:40em;margin:2em auto}#log{height:20em;"
    "overflow:auto;border:1px solid #ccc;padding:.5em;white-space:pre-wrap}</style>\n"
    "<h1>swoop chat</h1><div id=log></div>\n"
    "<form id=f><input id=m autofocus size=50 placeholder='say something'> <button>send</button>"
    "</form>\n<script>\n"
    "const log = document.getElementById('log'), m = document.getElementById('m');\n"
    "const ws = new WebSocket('ws://' + location.host + '/chat');\n"
    "ws.onmessage = e => { log.textContent += e.data + '\\n'; log.scrollTop = 1e9; };\n"
    "ws.onclose = e => { log.textContent += '[closed ' + e.code + ']\\n'; };\n"
    "document.getElementById('f').onsubmit = e => { e.preventDefault();\n"
    "  if (m.value) ws.send(m.value); m.value = ''; };\n"
    "</script>\n";

static void on_request(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    (void)srv;
    if (strcmp(swoop_http_path(req), "/") == 0) {
        swoop_http_header_set(res, "Content-Type", "text/html; charset=utf-8");
        swoop_http_end(res, page, sizeof(page) - 1);
        return;
    }
    swoop_http_status(res, 404);
    swoop_http_end(res, "not found\n", 10);
}

static int on_handshake(swoop_server_t *srv, swoop_conn_id_t conn, swoop_http_request_t *req)
{
    (void)srv;
    (void)conn;
    return strcmp(swoop_http_path(req), "/chat") == 0 ? 0 : 404;
}

static void announce(swoop_server_t *srv, swoop_conn_id_t conn, const char *what)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "* member %llu %s", (unsigned long long)(conn & 0xffffff),
                     what);
    swoop_ws_broadcast(srv, NULL, 0, SWOOP_WS_TEXT, line, (size_t)n);
}

static void on_open(swoop_server_t *srv, swoop_conn_id_t conn, swoop_http_request_t *req)
{
    (void)req;
    announce(srv, conn, "joined");
}

static void on_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    if (opcode != SWOOP_WS_TEXT || len > 1000)
        return;
    char line[1100];
    int n = snprintf(line, sizeof(line), "%llu: %.*s", (unsigned long long)(conn & 0xffffff),
                     (int)len, (const char *)data);
    swoop_ws_broadcast(srv, NULL, 0, SWOOP_WS_TEXT, line, (size_t)n);
}

static void on_close(swoop_server_t *srv, swoop_conn_id_t conn, int code)
{
    (void)code;
    announce(srv, conn, "left");
}

static void on_start(swoop_server_t *srv)
{
    (void)srv;
    printf("ws_chat: master pid %d\n", (int)getpid());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    swoop_mode_t mode =
        argc > 1 && strcmp(argv[1], "base") == 0 ? SWOOP_MODE_BASE : SWOOP_MODE_PROCESS;
    int port = argc > 2 ? atoi(argv[2]) : 9503;
    swoop_server_t *srv;
    swoop_port_t *p;
    swoop_ws_events_t ws = {.on_handshake = on_handshake,
                            .on_open = on_open,
                            .on_message = on_message,
                            .on_close = on_close};
    if (swoop_server_new(&srv, mode) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", port, SWOOP_SOCK_TCP, &p) < 0 ||
        swoop_port_set(p, "open_http_protocol", "1") < 0 ||
        swoop_port_set(p, "open_websocket_protocol", "1") < 0 ||
        /* Browsers offer permessage-deflate; lines under 64 bytes go uncompressed. */
        swoop_port_set(p, "websocket_compression", "1") < 0 ||
        swoop_http_on_request(srv, on_request) < 0 || swoop_ws_on(srv, &ws) < 0)
        return 1;
    swoop_server_on(srv, &(swoop_server_events_t){.on_start = on_start});
    printf("ws_chat: %s mode on 127.0.0.1:%d (open http://127.0.0.1:%d/)\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", swoop_port_number(p),
           swoop_port_number(p));
    fflush(stdout);
    int rc = swoop_server_start(srv);
    swoop_server_free(srv);
    return rc == 0 ? 0 : 1;
}
