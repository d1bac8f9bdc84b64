/*
 * Issue 10, item 7: a peer cannot fill the disk through the log. A client
 * pipelines echo requests for 2.5 s and never reads: once its socket and
 * the server's output buffer (socket_buffer_size 64K) are full every reply
 * is refused, and every other request asks for a reply above
 * buffer_output_size; then 100 connections each send a packet above
 * package_max_length. Each of those causes logs at most about once a
 * second, and the line after a quiet second says how many it suppressed.
 * Before, every refused send wrote a WARNING line (650,000 lines, 114 MB,
 * in 3 s in the issue). Reactor threads share the limiters: TSan runs it.
 * TEST_LABELS: tsan
 */
#include <stdio.h>
#include <sys/stat.h>

#include "server_common.h"

#define FLOOD_MS  2500
#define SMALL     1000  /* echoed: fits buffer_output_size */
#define BIG       10000 /* echoed: above buffer_output_size */
#define OVERSIZED 100

struct shared {
    _Atomic long full;    /* sends refused with SWOOP_EBUFFERFULL */
    _Atomic long toobig;  /* sends refused with SWOOP_EMSGSIZE */
    _Atomic long packets; /* packets received */
};
static struct shared *sh;
static char log_path[512];

static void on_flood(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                     size_t len)
{
    atomic_fetch_add(&sh->packets, 1);
    int rc = swoop_server_send(srv, conn, data, len);
    if (rc == SWOOP_EBUFFERFULL)
        atomic_fetch_add(&sh->full, 1);
    else if (rc == SWOOP_EMSGSIZE)
        atomic_fetch_add(&sh->toobig, 1);
    else
        ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static void setup_flood(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_set(srv, "package_max_length", "64K"));
    ASSERT_OK(swoop_server_set(srv, "buffer_output_size", "8K"));
    ASSERT_OK(swoop_server_set(srv, "socket_buffer_size", "64K"));
    ASSERT_OK(swoop_server_set(srv, "log_file", log_path));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_flood}));
}

/* Pipelines SMALL and BIG lines for FLOOD_MS without reading a byte. */
static void pipeline_never_read(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd, 0);
    int small = 4096;
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    ASSERT(rc == 0 || errno == EINPROGRESS);
    static char lines[SMALL + BIG];
    memset(lines, 'x', sizeof(lines));
    lines[SMALL - 1] = '\n';
    lines[SMALL + BIG - 1] = '\n';
    size_t off = 0;
    uint64_t end = swoop_test_now_ms() + FLOOD_MS;
    while (swoop_test_now_ms() < end) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        ssize_t k = send(fd, lines + off, sizeof(lines) - off, MSG_NOSIGNAL);
        if (k > 0)
            off = (off + (size_t)k) % sizeof(lines);
        else
            ASSERT(k < 0 && (errno == EAGAIN || errno == EINTR));
    }
    close(fd);
}

/* Connections that each send a packet above package_max_length: each is closed. */
static void oversized_packets(int port)
{
    static char big[65 * 1024];
    memset(big, 'y', sizeof(big));
    for (int i = 0; i < OVERSIZED; i++) {
        int fd = cli_connect(port);
        ssize_t k = send(fd, big, sizeof(big), MSG_NOSIGNAL); /* may be cut short by the close */
        (void)k;
        ASSERT(cli_wait_closed(fd, 5000));
        close(fd);
    }
}

typedef struct cause_s {
    const char *needle;
    int lines;
    int with_count;
} cause_t;

static void log_flood(swoop_mode_t mode)
{
    const char *name = mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS";
    sh = srv_shared(sizeof(*sh));
    snprintf(log_path, sizeof(log_path), "%s/flood.log", swoop_test_tmpdir());
    uint64_t t0 = swoop_test_now_ms();
    srv_handle_t h = srv_start(mode, setup_flood, NULL, 1);
    pipeline_never_read(h.port);
    oversized_packets(h.port);
    srv_stop(&h, 10000);
    double secs = (double)(swoop_test_now_ms() - t0) / 1000.0;
    long full = atomic_load(&sh->full), toobig = atomic_load(&sh->toobig);
    /* The flood happened: many refusals of each kind. */
    ASSERT_GT(full, 1000);
    ASSERT_GT(toobig, 1000);

    cause_t causes[] = {{"output buffer overflow", 0, 0},
                        {"above buffer_output_size", 0, 0},
                        {"larger than package_max_length", 0, 0}};
    FILE *f = fopen(log_path, "r");
    ASSERT_NOT_NULL(f);
    char line[4096];
    int total = 0;
    while (fgets(line, sizeof(line), f)) {
        total++;
        for (size_t i = 0; i < sizeof(causes) / sizeof(causes[0]); i++) {
            if (strstr(line, causes[i].needle)) {
                causes[i].lines++;
                causes[i].with_count += strstr(line, " more suppressed)") != NULL;
            }
        }
    }
    fclose(f);
    struct stat st;
    ASSERT_EQ(stat(log_path, &st), 0);
    printf("# %s: %ld sends refused (buffer full), %ld refused (too big), %d oversized packets in "
           "%.1f s: log of %d lines, %lld bytes; per cause %d, %d, %d lines\n",
           name, full, toobig, OVERSIZED, secs, total, (long long)st.st_size, causes[0].lines,
           causes[1].lines, causes[2].lines);
    /* At most one line a second per cause (plus the first), and a small log overall. */
    for (size_t i = 0; i < sizeof(causes) / sizeof(causes[0]); i++) {
        ASSERT_GE(causes[i].lines, 1);
        ASSERT_LE(causes[i].lines, (int)secs + 2);
    }
    ASSERT_LE(total, 100);
    ASSERT_LE(st.st_size, 32 * 1024);
    /* The flooding causes outlived a second: a later line carried the count. */
    ASSERT_GE(causes[0].with_count, 1);
    ASSERT_GE(causes[1].with_count, 1);
    swoop_test_assert_log_clean(log_path);
}

TEST(server_log_flood_is_rate_limited_process)
{
    log_flood(SWOOP_MODE_PROCESS);
}

TEST(server_log_flood_is_rate_limited_base)
{
    log_flood(SWOOP_MODE_BASE);
}
