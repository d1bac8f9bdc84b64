/* TEST_LABELS: heavy */
/*
 * The WebSocket conformance matrix (issue 12): the Autobahn testsuite's
 * categories 1-7, 9 (sizes bounded: messages up to 1 MiB, fragments up to
 * 64 KiB) and 10, rebuilt on python3-autobahn's frame sender (it writes
 * invalid frames on purpose), against an echo server in each mode. The
 * cases and their expected outcomes are the table in ws_conformance.py;
 * this file forks the server, runs the table and fails listing every case
 * that did not pass. Compression (categories 12, 13) is tested elsewhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <swoop/websocket.h>

#include "server_common.h"

/* The server's websocket_max_message_size: ws_conformance.py's MAX_MESSAGE. */
#define MAX_MESSAGE "1M"
/* The table's size: a case that disappears from the script fails here. */
#define MIN_CASES 300

static void on_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    ASSERT(opcode == SWOOP_WS_TEXT || opcode == SWOOP_WS_BINARY);
    int rc = swoop_ws_push(srv, conn, opcode, data, len);
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static void setup(swoop_server_t *srv, void *arg)
{
    (void)arg;
    ASSERT_OK(swoop_server_set(srv, "open_websocket_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "websocket_max_message_size", MAX_MESSAGE));
    swoop_ws_events_t ev = {.on_message = on_message};
    ASSERT_OK(swoop_ws_on(srv, &ev));
}

static void matrix(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, setup, NULL, 2);
    const char *src = getenv("SWOOP_SOURCE_DIR");
    ASSERT_NOT_NULL(src);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "WS_CONF_STEP=%d /usr/bin/python3 %s/tests/integration/ws_conformance.py %d 2>&1",
             5 * swoop_test_multiplier(), src, h.port);
    uint64_t t0 = swoop_test_now_ms();
    FILE *f = popen(cmd, "r");
    ASSERT_NOT_NULL(f);
    char line[4096];
    int total = -1, pass = 0, nonstrict = 0, failed = 0, listed = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "FAIL", 4) == 0) {
            listed++;
            fprintf(stderr, "  %s", line);
        } else if (strncmp(line, "NONSTRICT", 9) == 0) {
            fprintf(stderr, "  %s", line);
        } else if (strncmp(line, "total ", 6) == 0) {
            ASSERT_EQ(sscanf(line, "total %d pass %d nonstrict %d fail %d", &total, &pass,
                             &nonstrict, &failed),
                      4);
        } else if (strncmp(line, "PASS", 4) != 0) {
            fprintf(stderr, "  script: %s", line); /* a traceback: the script broke */
        }
    }
    int st = pclose(f);
    fprintf(stderr,
            "ws conformance (%s): %d cases, %d passed, %d non-strict, %d failed in %llu ms\n",
            mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", total, pass, nonstrict, failed,
            (unsigned long long)(swoop_test_now_ms() - t0));
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_GE(total, MIN_CASES);
    ASSERT_EQ(failed, listed);
    if (failed > 0)
        FAIL("%d of %d WebSocket conformance cases failed (listed above)", failed, total);
    ASSERT_EQ(pass + nonstrict, total);
    /* Every connection of the matrix is gone: none leaked by a failed or lingering close. */
    swoop_server_stats_t s;
    uint64_t deadline = swoop_test_now_ms() + 5000 * swoop_test_multiplier();
    for (;;) {
        srv_stats(&h, &s);
        if (s.connection_num == 0 || swoop_test_now_ms() > deadline)
            break;
        swoop_test_sleep_ms(10);
    }
    ASSERT_EQ(s.connection_num, 0);
    ASSERT_EQ(s.close_count, s.accept_count);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(ws_conformance_process, 180)
{
    matrix(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_conformance_base, 180)
{
    matrix(SWOOP_MODE_BASE);
}
