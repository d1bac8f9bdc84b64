/*
 * permessage-deflate (RFC 7692), both modes, against real clients (the
 * cases themselves are in ws_deflate.py and ws_deflate.js beside this
 * file): Python's websockets (Debian python3-websockets) for every
 * negotiation variant with echo of text and binary up to 1 MiB (Autobahn
 * categories 12 and 13); a raw socket client for what a library hides or
 * will not send: RSV1 on what the server sends (below
 * websocket_compression_min_length uncompressed), a zip bomb (1009),
 * invalid DEFLATE data (1007), RSV1 on a continuation or without the
 * extension (1002); a broadcast to compressed and uncompressed clients at
 * once; compression off (no extension in the 101); the server without
 * compression context (websocket_compression_context_takeover 0);
 * interop with node-ws with and without perMessageDeflate.
 */
/* TEST_LABELS: tsan */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/websocket.h>

#include "client_util.h"
#include "server_common.h"

static void on_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    if (opcode == SWOOP_WS_TEXT && len >= 6 && memcmp(data, "bcast:", 6) == 0) {
        ASSERT_GE(swoop_ws_broadcast(srv, NULL, 0, SWOOP_WS_TEXT, (const char *)data + 6, len - 6),
                  0);
        return;
    }
    ASSERT(opcode == SWOOP_WS_TEXT || opcode == SWOOP_WS_BINARY);
    ASSERT_OK(swoop_ws_push(srv, conn, opcode, data, len));
}

static void setup_common(swoop_server_t *srv, const char *compression)
{
    ASSERT_OK(swoop_server_set(srv, "open_websocket_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "websocket_max_message_size", "2M"));
    ASSERT_OK(swoop_server_set(srv, "websocket_compression", compression));
    ASSERT_OK(swoop_ws_on(srv, &(swoop_ws_events_t){.on_message = on_message}));
}

static void setup_on(swoop_server_t *srv, void *arg)
{
    (void)arg;
    setup_common(srv, "on");
    /* The default (64) is what the raw case checks; set to make the test say so. */
    ASSERT_OK(swoop_server_set(srv, "websocket_compression_min_length", "64"));
}

static void setup_shared(swoop_server_t *srv, void *arg)
{
    (void)arg;
    setup_common(srv, "on");
    ASSERT_OK(swoop_server_set(srv, "websocket_compression_context_takeover", "0"));
}

static void setup_off(swoop_server_t *srv, void *arg)
{
    (void)arg;
    setup_common(srv, "off");
}

/* Runs a client script beside this file; its output in out. */
static int client(const char *interp, const char *script, const char *args, int port, char *out,
                  size_t cap)
{
    const char *src = getenv("SWOOP_SOURCE_DIR");
    ASSERT_NOT_NULL(src);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "NODE_PATH=/usr/share/nodejs timeout %d %s %s/tests/integration/%s %s %d 2>&1",
             120 * swoop_test_multiplier(), interp, src, script, args, port);
    int st = run(cmd, out, cap);
    if (st != 0)
        fprintf(stderr, "# %s %s: exit %d:\n%s\n", script, args, st, out);
    return st;
}

static void py_case(swoop_mode_t mode, srv_setup_fn setup, const char *name, const char *want)
{
    srv_handle_t h = srv_start(mode, setup, NULL, 2);
    static char out[65536];
    ASSERT_EQ(client("/usr/bin/python3", "ws_deflate.py", name, h.port, out, sizeof(out)), 0);
    if (strstr(out, want) == NULL)
        FAIL("%s: output \"%s\" lacks \"%s\"", name, out, want);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(ws_deflate_variants_process, 120)
{
    py_case(SWOOP_MODE_PROCESS, setup_on, "echo", "ok echo");
}

TEST_TIMEOUT(ws_deflate_variants_base, 120)
{
    py_case(SWOOP_MODE_BASE, setup_on, "echo", "ok echo");
}

TEST_TIMEOUT(ws_deflate_raw_process, 60)
{
    py_case(SWOOP_MODE_PROCESS, setup_on, "raw", "ok raw");
}

TEST_TIMEOUT(ws_deflate_raw_base, 60)
{
    py_case(SWOOP_MODE_BASE, setup_on, "raw", "ok raw");
}

TEST_TIMEOUT(ws_deflate_broadcast_mixed_process, 60)
{
    py_case(SWOOP_MODE_PROCESS, setup_on, "bcast", "bcast 30\nok bcast");
}

TEST_TIMEOUT(ws_deflate_broadcast_mixed_base, 60)
{
    py_case(SWOOP_MODE_BASE, setup_on, "bcast", "bcast 30\nok bcast");
}

TEST_TIMEOUT(ws_deflate_off_process, 60)
{
    py_case(SWOOP_MODE_PROCESS, setup_off, "off", "ok off");
}

TEST_TIMEOUT(ws_deflate_off_base, 60)
{
    py_case(SWOOP_MODE_BASE, setup_off, "off", "ok off");
}

TEST_TIMEOUT(ws_deflate_no_server_context_process, 60)
{
    py_case(SWOOP_MODE_PROCESS, setup_shared, "shared", "ok shared");
}

TEST_TIMEOUT(ws_deflate_no_server_context_base, 60)
{
    py_case(SWOOP_MODE_BASE, setup_shared, "shared", "ok shared");
}

static void node_case(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, setup_on, NULL, 2);
    static char out[65536];
    ASSERT_EQ(client("/usr/bin/node", "ws_deflate.js", "", h.port, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "ok node"));
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(ws_deflate_node_process, 60)
{
    node_case(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_deflate_node_base, 60)
{
    node_case(SWOOP_MODE_BASE);
}
