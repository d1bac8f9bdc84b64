/*
 * Limits with real servers: a client that never reads cannot grow the
 * server's output buffer past socket_buffer_size (sends fail with
 * SWOOP_EBUFFERFULL instead); heartbeat closes idle connections and spares
 * active ones; max_conn closes the connections above it at once.
 */
#include <stdio.h>

#include "server_common.h"

struct shared {
    _Atomic long full;
    _Atomic long sent;
    _Atomic uint64_t max_queued;
    _Atomic long closes;
};
static struct shared *sh;

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    long kb = 0;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

static long server_rss_kb(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    long kb = rss_kb(st.master_pid);
    if (st.mode == SWOOP_MODE_BASE) {
        for (int i = 0; i < st.worker_num; i++)
            kb += rss_kb(st.workers[i].pid);
    }
    return kb;
}

static void on_flood(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                     size_t len)
{
    int rc = swoop_server_send(srv, conn, data, len);
    if (rc == SWOOP_EBUFFERFULL)
        atomic_fetch_add(&sh->full, 1);
    else if (rc == 0)
        atomic_fetch_add(&sh->sent, 1);
}

static void setup_flood(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "socket_buffer_size", "1M"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_flood}));
}

static void never_reads(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_flood, NULL, 2);
    long before = server_rss_kb(&h);
    int fd = cli_connect(h.port);
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    char chunk[65536];
    memset(chunk, 'x', sizeof(chunk));
    size_t total = 64u << 20;
    for (size_t sent = 0; sent < total; sent += sizeof(chunk))
        cli_write(fd, chunk, sizeof(chunk));
    /* Every packet was handled: the server kept reading while its replies were refused. */
    WAIT_UNTIL(atomic_load(&sh->full) + atomic_load(&sh->sent) > 0, 5000);
    swoop_test_sleep_ms(200);
    long after = server_rss_kb(&h);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    printf("# %s: 64 MiB sent to a server echoing to a client that never reads: %ld sends "
           "accepted, %ld refused (EBUFFERFULL); server RSS %ld -> %ld KiB\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", atomic_load(&sh->sent),
           atomic_load(&sh->full), before, after);
    ASSERT_GT(atomic_load(&sh->full), 0);
    /* What was accepted fits the limit plus what the kernel buffers hold. */
    ASSERT_LT((uint64_t)atomic_load(&sh->sent) * 65536, 16u << 20);
    if (swoop_test_multiplier() == 1)
        ASSERT_LT(after - before, 16 * 1024); /* far below the 64 MiB that went through */
    close(fd);
    srv_stop(&h, 10000);
}

TEST(server_never_reading_client_process)
{
    never_reads(SWOOP_MODE_PROCESS);
}

TEST(server_never_reading_client_base)
{
    never_reads(SWOOP_MODE_BASE);
}

/* ---- heartbeat ---- */

static void on_close_count(swoop_server_t *srv, swoop_conn_id_t conn, int rid)
{
    atomic_fetch_add(&sh->closes, 1);
}

static void setup_heartbeat(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "heartbeat_check_interval", "1"));
    ASSERT_OK(swoop_server_set(srv, "heartbeat_idle_time", "2"));
    ASSERT_OK(swoop_server_on(
        srv, &(swoop_server_events_t){.on_receive = srv_echo, .on_close = on_close_count}));
}

static void heartbeat(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_heartbeat, NULL, 2);
    int idle = cli_connect(h.port);
    int busy = cli_connect(h.port);
    uint64_t t0 = swoop_test_now_ms();
    int closed_at = -1;
    char buf[8];
    /* 4.5 s: the busy one talks every 300 ms, the idle one says nothing. */
    while (swoop_test_now_ms() - t0 < 4500) {
        cli_write(busy, "ping", 4);
        ASSERT_EQ(cli_read_n(busy, buf, 4, 2000), 4);
        if (closed_at < 0 && cli_wait_closed(idle, 300))
            closed_at = (int)(swoop_test_now_ms() - t0);
    }
    printf("# %s: idle connection closed after %d ms (idle time 2 s, checked every 1 s)\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", closed_at);
    ASSERT_GE(closed_at, 1900);
    ASSERT_LE(closed_at, 3500 * (int)swoop_test_multiplier());
    WAIT_UNTIL(atomic_load(&sh->closes) == 1, 2000);
    cli_write(busy, "ping", 4);
    ASSERT_EQ(cli_read_n(busy, buf, 4, 2000), 4);
    close(idle);
    close(busy);
    srv_stop(&h, 10000);
}

TEST(server_heartbeat_process)
{
    heartbeat(SWOOP_MODE_PROCESS);
}

TEST(server_heartbeat_base)
{
    heartbeat(SWOOP_MODE_BASE);
}

/* ---- max_conn ---- */

static void setup_maxconn(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "max_conn", "20"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
}

static void max_conn(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_maxconn, NULL, 2);
    int fds[25];
    for (int i = 0; i < 25; i++) {
        fds[i] = cli_connect(h.port);
        /* One at a time, so the server counts them in order. */
        char b[2];
        cli_write(fds[i], "x", 1);
        if (i < 20)
            ASSERT_EQ(cli_read_n(fds[i], b, 1, 3000), 1);
    }
    int refused = 0;
    for (int i = 20; i < 25; i++)
        refused += cli_wait_closed(fds[i], 2000);
    ASSERT_EQ(refused, 5);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(st.connection_num, 20);
    for (int i = 0; i < 25; i++)
        close(fds[i]);
    /* Below the limit again: a new client is served. */
    WAIT_UNTIL((srv_stats(&h, &st), st.connection_num == 0), 3000);
    int fd = cli_connect(h.port);
    char b[2];
    cli_write(fd, "y", 1);
    ASSERT_EQ(cli_read_n(fd, b, 1, 3000), 1);
    close(fd);
    srv_stop(&h, 10000);
}

TEST(server_max_conn_process)
{
    max_conn(SWOOP_MODE_PROCESS);
}

TEST(server_max_conn_base)
{
    max_conn(SWOOP_MODE_BASE);
}
