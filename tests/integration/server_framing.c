/*
 * Framing through real servers, both modes: an 8 MiB length-framed packet
 * and 100,000 small EOF-split packets arrive intact and in order; a header
 * declaring more than package_max_length closes that connection only (and
 * the log says why) while another client keeps being served.
 */
#include "server_common.h"

struct shared {
    _Atomic long packets;
    _Atomic long bad;
};
static struct shared *sh;

static void on_length(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                      size_t len)
{
    const unsigned char *p = data;
    uint32_t body = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    if (len != 4 + (size_t)body)
        atomic_fetch_add(&sh->bad, 1);
    atomic_fetch_add(&sh->packets, 1);
    int rc = swoop_server_send(srv, conn, data, len);
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static void setup_length(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_length_check", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_length_type", "N"));
    ASSERT_OK(swoop_server_set(srv, "package_body_offset", "4"));
    ASSERT_OK(swoop_server_set(srv, "package_max_length", "16M"));
    ASSERT_OK(swoop_server_set(srv, "buffer_output_size", "16M"));
    ASSERT_OK(swoop_server_set(srv, "socket_buffer_size", "32M"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_length}));
}

static void big_packet(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_length, NULL, 2);
    size_t body = 8u << 20;
    unsigned char *pkt = malloc(body + 4);
    pkt[0] = (unsigned char)(body >> 24);
    pkt[1] = (unsigned char)(body >> 16);
    pkt[2] = (unsigned char)(body >> 8);
    pkt[3] = (unsigned char)body;
    for (size_t i = 0; i < body; i++)
        pkt[4 + i] = (unsigned char)(i * 131 + (i >> 13));
    int fd = cli_connect(h.port);
    uint64_t t0 = swoop_test_now_ms();
    /* Send and read concurrently: the echo starts while we still write. */
    unsigned char *back = malloc(body + 4);
    size_t sent = 0, got = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    uint64_t deadline = swoop_test_now_ms() + 20000 * swoop_test_multiplier();
    while (got < body + 4 && swoop_test_now_ms() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN | (sent < body + 4 ? POLLOUT : 0)};
        poll(&pf, 1, 100);
        if ((pf.revents & POLLOUT) && sent < body + 4) {
            ssize_t k = send(fd, pkt + sent, body + 4 - sent, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
        }
        if (pf.revents & POLLIN) {
            ssize_t k = recv(fd, back + got, body + 4 - got, 0);
            ASSERT_GT(k, 0);
            got += (size_t)k;
        }
    }
    ASSERT_EQ(got, body + 4);
    ASSERT_MEM_EQ(back, pkt, body + 4);
    printf("# %s: 8 MiB packet echoed in %llu ms\n", mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS",
           (unsigned long long)(swoop_test_now_ms() - t0));
    ASSERT_EQ(atomic_load(&sh->packets), 1);
    ASSERT_EQ(atomic_load(&sh->bad), 0);
    close(fd);
    free(pkt);
    free(back);
    srv_stop(&h, 10000);
}

TEST(server_length_8mib_process)
{
    big_packet(SWOOP_MODE_PROCESS);
}

TEST(server_length_8mib_base)
{
    big_packet(SWOOP_MODE_BASE);
}

/* ---- EOF split ---- */

static void on_line(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                    size_t len)
{
    const char *p = data;
    if (len < 2 || p[len - 2] != '\r' || p[len - 1] != '\n' || memchr(p, '\n', len - 1))
        atomic_fetch_add(&sh->bad, 1);
    atomic_fetch_add(&sh->packets, 1);
    int rc = swoop_server_send(srv, conn, data, len);
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static void setup_eof(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\r\\n"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_line}));
}

static void eof_split(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_eof, NULL, 2);
    enum { N = 100000 };
    size_t cap = (size_t)N * 16;
    char *out = malloc(cap), *back = malloc(cap);
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(out + len, cap - len, "%d:%x\r\n", i, i * 7);
    int fd = cli_connect(h.port);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    uint64_t t0 = swoop_test_now_ms();
    size_t sent = 0, got = 0;
    uint64_t deadline = swoop_test_now_ms() + 30000 * swoop_test_multiplier();
    while (got < len && swoop_test_now_ms() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        poll(&pf, 1, 100);
        if ((pf.revents & POLLOUT) && sent < len) {
            /* Odd-sized writes: packets straddle the writes. */
            size_t chunk = len - sent < 4093 ? len - sent : 4093;
            ssize_t k = send(fd, out + sent, chunk, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
        }
        if (pf.revents & POLLIN) {
            ssize_t k = recv(fd, back + got, len - got, 0);
            ASSERT_GT(k, 0);
            got += (size_t)k;
        }
    }
    ASSERT_EQ(got, len);
    ASSERT_MEM_EQ(back, out, len);
    ASSERT_EQ(atomic_load(&sh->packets), N);
    ASSERT_EQ(atomic_load(&sh->bad), 0);
    printf("# %s: %d EOF-split packets echoed in order in %llu ms\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", N,
           (unsigned long long)(swoop_test_now_ms() - t0));
    close(fd);
    free(out);
    free(back);
    srv_stop(&h, 10000);
}

TEST(server_eof_split_100k_process)
{
    eof_split(SWOOP_MODE_PROCESS);
}

TEST(server_eof_split_100k_base)
{
    eof_split(SWOOP_MODE_BASE);
}

/* ---- package_max_length ---- */

static char log_path[512];

static void setup_max(swoop_server_t *srv, void *arg)
{
    setup_length(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "package_max_length", "2M"));
    ASSERT_OK(swoop_server_set(srv, "log_file", log_path));
}

static void too_big(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    snprintf(log_path, sizeof(log_path), "%s/server.log", swoop_test_tmpdir());
    srv_handle_t h = srv_start(mode, setup_max, NULL, 2);
    int good = cli_connect(h.port);
    int bad = cli_connect(h.port);
    /* A header announcing 3 MiB: closed from the header alone. */
    unsigned char hdr[4] = {0x00, 0x30, 0x00, 0x00};
    uint64_t t0 = swoop_test_now_ms();
    cli_write(bad, hdr, 4);
    ASSERT(cli_wait_closed(bad, 2000));
    uint64_t ms = swoop_test_now_ms() - t0;
    printf("# %s: oversized packet: connection closed %llu ms after its header\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", (unsigned long long)ms);
    /* The other connection is untouched. */
    unsigned char ok[9] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}, back[9];
    cli_write(good, ok, sizeof(ok));
    ASSERT_EQ(cli_read_n(good, back, sizeof(back), 3000), sizeof(back));
    ASSERT_MEM_EQ(back, ok, sizeof(ok));
    close(good);
    close(bad);
    srv_stop(&h, 10000);
    FILE *f = fopen(log_path, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof(line), f))
        found += strstr(line, "larger than package_max_length") != NULL;
    fclose(f);
    ASSERT_EQ(found, 1);
}

TEST(server_package_max_length_process)
{
    too_big(SWOOP_MODE_PROCESS);
}

TEST(server_package_max_length_base)
{
    too_big(SWOOP_MODE_BASE);
}
