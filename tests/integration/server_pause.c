/*
 * swoop_server_pause / _resume and swoop_server_send_message, in both
 * modes. While a connection is paused the server reads nothing from it: the
 * client's bytes stay in the kernel (the server socket's receive queue in
 * /proc/net/tcp holds all of them) and no on_receive runs; after a resume
 * issued from another connection they arrive whole and in order. A message
 * from one worker to the other reaches on_pipe_message intact, from a few
 * bytes to 4 MiB (chunked, and queued past the channel's socket buffer).
 *
 * Protocol, one command per line: "pause" answers "paused <conn id>",
 * "resume <conn id>" answers "r<rc>", "msg <size>" has the other worker
 * answer "got <size> from <src> ok", data lines ("d...") are echoed.
 */
#include <inttypes.h>
#include <stdio.h>

#include "server_common.h"

struct shared {
    _Atomic long data_lines;
    _Atomic long pipe_msgs;
};
static struct shared *sh;

static void say(swoop_server_t *srv, swoop_conn_id_t conn, const char *line)
{
    int rc = swoop_server_send(srv, conn, line, strlen(line));
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static unsigned char pat(size_t i, size_t size)
{
    return (unsigned char)((i * 7 + size) & 0xff);
}

static void on_cmd(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data, size_t len)
{
    const char *d = data;
    char out[96];
    if (len >= 1 && d[0] == 'd') {
        atomic_fetch_add(&sh->data_lines, 1);
        int rc = swoop_server_send(srv, conn, data, len);
        ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
    } else if (len >= 6 && memcmp(d, "pause\n", 6) == 0) {
        ASSERT_OK(swoop_server_pause(srv, conn));
        snprintf(out, sizeof(out), "paused %" PRIu64 "\n", (uint64_t)conn);
        say(srv, conn, out);
    } else if (len > 7 && memcmp(d, "resume ", 7) == 0) {
        swoop_conn_id_t id = strtoull(d + 7, NULL, 10);
        snprintf(out, sizeof(out), "r%d\n", swoop_server_resume(srv, id));
        say(srv, conn, out);
    } else if (len > 4 && memcmp(d, "msg ", 4) == 0) {
        size_t size = strtoull(d + 4, NULL, 10);
        int me = swoop_server_worker_id(srv);
        ASSERT_EQ(swoop_server_send_message(srv, me, "x", 1), SWOOP_EINVAL);
        ASSERT_EQ(swoop_server_send_message(srv, 7, "x", 1), SWOOP_EINVAL);
        unsigned char *p = malloc(sizeof(conn) + size);
        ASSERT_NOT_NULL(p);
        memcpy(p, &conn, sizeof(conn));
        for (size_t i = 0; i < size; i++)
            p[sizeof(conn) + i] = pat(i, size);
        ASSERT_OK(swoop_server_send_message(srv, 1 - me, p, sizeof(conn) + size));
        free(p);
    } else {
        FAIL("unexpected command of %zu bytes", len);
    }
}

static void on_pipe(swoop_server_t *srv, int src, const void *data, size_t len)
{
    ASSERT_GE(len, sizeof(swoop_conn_id_t));
    swoop_conn_id_t conn;
    memcpy(&conn, data, sizeof(conn));
    const unsigned char *p = (const unsigned char *)data + sizeof(conn);
    size_t size = len - sizeof(conn);
    int ok = 1;
    for (size_t i = 0; i < size && ok; i++)
        ok = p[i] == pat(i, size);
    ASSERT_EQ(src, 1 - swoop_server_worker_id(srv));
    atomic_fetch_add(&sh->pipe_msgs, 1);
    char out[96];
    snprintf(out, sizeof(out), "got %zu from %d %s\n", size, src, ok ? "ok" : "bad");
    say(srv, conn, out);
}

static void setup(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_on(
        srv, &(swoop_server_events_t){.on_receive = on_cmd, .on_pipe_message = on_pipe}));
}

static void read_line(int fd, char *line, size_t cap)
{
    size_t n = 0;
    while (n < cap - 1) {
        ASSERT_EQ(cli_read_n(fd, line + n, 1, 5000), 1);
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
}

static void pause_resume(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup, NULL, 2);
    int a = cli_connect(h.port);
    int b = cli_connect(h.port);
    char line[96];
    cli_write(a, "pause\n", 6);
    read_line(a, line, sizeof(line));
    unsigned long long id;
    ASSERT_EQ(sscanf(line, "paused %llu", &id), 1);

    /* 40 lines of 1000 bytes while paused: all of them wait in the kernel. */
    size_t total = 40 * 1000;
    char *sent = malloc(total), *back = malloc(total);
    for (int i = 0; i < 40; i++) {
        char *l = sent + (size_t)i * 1000;
        for (int k = 0; k < 999; k++)
            l[k] = (char)('a' + (i + k) % 26);
        l[0] = 'd';
        l[1] = (char)('0' + i / 10);
        l[2] = (char)('0' + i % 10);
        l[3] = ':';
        l[999] = '\n';
    }
    cli_write(a, sent, total);
    WAIT_UNTIL(srv_rx_queue(a, h.port) == (long)total, 3000);
    ASSERT_EQ(atomic_load(&sh->data_lines), 0);

    /* Resumed from another connection (BASE: maybe another worker's). */
    snprintf(line, sizeof(line), "resume %llu\n", id);
    cli_write(b, line, strlen(line));
    read_line(b, line, sizeof(line));
    ASSERT_STR_EQ(line, "r0\n");
    ASSERT_EQ(cli_read_n(a, back, total, 5000), total);
    ASSERT_MEM_EQ(back, sent, total);
    ASSERT_EQ(atomic_load(&sh->data_lines), 40);
    ASSERT_EQ(srv_rx_queue(a, h.port), 0);
    free(sent);
    free(back);
    close(a);
    close(b);
    srv_stop(&h, 10000);
}

TEST(server_pause_resume_process)
{
    pause_resume(SWOOP_MODE_PROCESS);
}

TEST(server_pause_resume_base)
{
    pause_resume(SWOOP_MODE_BASE);
}

static void pipe_messages(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup, NULL, 2);
    size_t sizes[] = {0, 1, 8180, 65536 - 32 - 8, 65536 - 32 - 7, 65536, 300000, 4u << 20};
    int fd = cli_connect(h.port);
    for (size_t i = 0; i < (sizeof(sizes) / sizeof(sizes[0])); i++) {
        char line[96], want[96];
        snprintf(line, sizeof(line), "msg %zu\n", sizes[i]);
        cli_write(fd, line, strlen(line));
        read_line(fd, line, sizeof(line));
        size_t got;
        int src;
        char verdict[8];
        ASSERT_EQ(sscanf(line, "got %zu from %d %7s", &got, &src, verdict), 3);
        snprintf(want, sizeof(want), "got %zu from %d ok\n", sizes[i], src);
        ASSERT_STR_EQ(line, want);
    }
    ASSERT_EQ(atomic_load(&sh->pipe_msgs), (long)(sizeof(sizes) / sizeof(sizes[0])));
    close(fd);
    srv_stop(&h, 10000);
}

TEST(server_send_message_process)
{
    pipe_messages(SWOOP_MODE_PROCESS);
}

TEST(server_send_message_base)
{
    pipe_messages(SWOOP_MODE_BASE);
}
