/*
 * Graceful shutdown (RELIABILITY scenario 6), in both modes: a SIGTERM to
 * the master refuses new connects at once, still completes the requests the
 * server had taken (also those queued behind a busy worker) and delivers
 * every byte of the replies it accepted (also to a client that reads only
 * after the SIGTERM), closes each connection with a clean FIN, and the
 * master exits 0 within max_wait_time + 1 s.
 */
/* TEST_LABELS: tsan */
#include <stdio.h>
#include <string.h>

#include "server_common.h"

#define BIG_REPLY   (3u * 1024 * 1024)
#define INFLIGHT_N  8
#define MAX_WAIT_MS 2000 /* server_common.h sets max_wait_time 2 */
/*
 * In BASE mode one worker may have accepted all 8 connections: 1.6 s of
 * requests to finish, so these tests give max_wait_time 4 s of headroom.
 */
#define INFLIGHT_WAIT_MS 4000

typedef struct shared_s {
    _Atomic int queued;  /* the big reply was accepted by swoop_server_send */
    _Atomic int started; /* on_receive calls of "slow" that began */
} shared_t;

static shared_t *sh;

/* PROCESS variants: the worker channels as shared-memory rings, with batched sends. */
static int use_ring;

static void set_ipc(swoop_server_t *srv)
{
    if (!use_ring)
        return;
    ASSERT_OK(swoop_server_set(srv, "ipc_ring", "1"));
    ASSERT_OK(swoop_server_set(srv, "ipc_batch", "1"));
}

static unsigned char pattern_byte(size_t i)
{
    return (unsigned char)((i * 7u) ^ (i >> 11));
}

/* After the SIGTERM: a clean exit within max_wait_time + 1 s and for the whole tree. */
static void term_and_wait(srv_handle_t *h, const swoop_server_stats_t *st, uint64_t t_term,
                          int max_wait_ms)
{
    swoop_test_wait_ok(h->pid, max_wait_ms + 1000);
    /* The bound itself, not scaled for sanitizer builds. */
    uint64_t took = swoop_test_now_ms() - t_term;
    if (took > (uint64_t)max_wait_ms + 1000)
        FAIL("the master exited %llu ms after the SIGTERM", (unsigned long long)took);
    WAIT_UNTIL(!swoop_test_pid_alive(st->manager_pid), 1000);
    for (int i = 0; i < st->worker_num; i++) {
        if (st->workers[i].pid > 0)
            WAIT_UNTIL(!swoop_test_pid_alive(st->workers[i].pid), 1000);
    }
}

/* A clean end of stream: recv() returns 0 (a reset fails the test). */
static void expect_eof(int fd, int ms)
{
    char buf[256];
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    for (;;) {
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline)
            FAIL("no EOF within %d ms", ms);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            FAIL("recv() failed with errno %d instead of a clean EOF", errno);
        if (k > 0)
            FAIL("%zd unexpected bytes before EOF", k);
        return;
    }
}

/* ---- a slow reader's queued reply survives the SIGTERM ---- */

static void on_big(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data, size_t len)
{
    static unsigned char *reply;
    if (len < 3 || memcmp(data, "big", 3) != 0)
        return;
    if (reply == NULL) {
        reply = malloc(BIG_REPLY);
        ASSERT_NOT_NULL(reply);
        for (size_t i = 0; i < BIG_REPLY; i++)
            reply[i] = pattern_byte(i);
    }
    ASSERT_OK(swoop_server_send(srv, conn, reply, BIG_REPLY));
    atomic_store(&sh->queued, 1);
}

static void setup_big(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "socket_buffer_size", "16777216"));
    ASSERT_OK(swoop_server_set(srv, "buffer_output_size", "8388608"));
    set_ipc(srv);
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_big}));
}

/* A client with a small receive buffer, so most of the reply stays in the server. */
static int slow_client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    int small = 4096;
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Once the big reply is queued, waits until what the server writes stops growing (nothing read). */
static void wait_reply_parked(srv_handle_t *h, swoop_server_stats_t *st)
{
    uint64_t last = UINT64_MAX;
    for (int stable = 0; stable < 5;) {
        srv_stats(h, st);
        stable = st->bytes_out == last ? stable + 1 : 0;
        last = st->bytes_out;
        swoop_test_sleep_ms(10);
    }
    ASSERT(st->bytes_out < BIG_REPLY); /* the rest waits in the server, not in the kernel */
}

/* Reads the whole big reply and checks every byte. */
static void read_big_reply(int fd)
{
    unsigned char *got = malloc(BIG_REPLY);
    ASSERT_NOT_NULL(got);
    size_t n = cli_read_n(fd, got, BIG_REPLY, MAX_WAIT_MS + 1000);
    ASSERT_UEQ(n, BIG_REPLY);
    for (size_t i = 0; i < BIG_REPLY; i++) {
        if (got[i] != pattern_byte(i))
            FAIL("byte %zu of the reply is 0x%02x, not 0x%02x", i, got[i], pattern_byte(i));
    }
    free(got);
}

static void flushes_slow_reader(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_big, NULL, 2);
    int fd = slow_client(h.port);
    cli_write(fd, "big", 3);
    WAIT_UNTIL(atomic_load(&sh->queued), 3000);
    swoop_server_stats_t st;
    wait_reply_parked(&h, &st);
    uint64_t t_term = swoop_test_now_ms();
    ASSERT_EQ(kill(h.pid, SIGTERM), 0);
    read_big_reply(fd);
    expect_eof(fd, 1000);
    close(fd);
    term_and_wait(&h, &st, t_term, MAX_WAIT_MS);
    ASSERT_EQ(swoop_test_fd_count(), h.fd0);
}

TEST(server_shutdown_flushes_slow_reader_process)
{
    flushes_slow_reader(SWOOP_MODE_PROCESS);
}

TEST(server_shutdown_flushes_slow_reader_process_ring)
{
    use_ring = 1;
    flushes_slow_reader(SWOOP_MODE_PROCESS);
}

TEST(server_shutdown_flushes_slow_reader_base)
{
    flushes_slow_reader(SWOOP_MODE_BASE);
}

/*
 * BASE reload (SIGUSR1 to the manager): the connection lives in the old
 * worker process, which drains it before it exits, while its successor
 * already serves: the slow reader gets the whole reply, then EOF.
 */
static void setup_big_one(swoop_server_t *srv, void *arg)
{
    setup_big(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
}

/*
 * A slow reader asks for the big reply; once it is parked in the worker's
 * output, SIGUSR1 reloads. Returns the old worker's pid, the client in *fd.
 */
static pid_t reload_with_reply_parked(srv_handle_t *h, swoop_server_stats_t *st, int *fd)
{
    srv_stats(h, st);
    pid_t old = st->workers[0].pid;
    *fd = slow_client(h->port);
    cli_write(*fd, "big", 3);
    WAIT_UNTIL(atomic_load(&sh->queued), 3000);
    wait_reply_parked(h, st);
    ASSERT_EQ(kill(st->manager_pid, SIGUSR1), 0);
    return old;
}

TEST(server_reload_flushes_slow_reader_base)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_big_one, NULL, 1);
    swoop_server_stats_t st;
    int fd;
    pid_t old = reload_with_reply_parked(&h, &st, &fd);
    /* The successor serves while the old process still writes to the slow reader. */
    WAIT_UNTIL((srv_stats(&h, &st), st.workers[0].pid != old && st.workers[0].pid > 0), 3000);
    ASSERT(swoop_test_pid_alive(old));
    int fresh = cli_connect(h.port);
    atomic_store(&sh->queued, 0);
    cli_write(fresh, "big", 3);
    WAIT_UNTIL(atomic_load(&sh->queued), 3000);
    read_big_reply(fd);
    expect_eof(fd, 1000);
    close(fd);
    WAIT_UNTIL(!swoop_test_pid_alive(old), 3000);
    read_big_reply(fresh);
    close(fresh);
    srv_stop(&h, MAX_WAIT_MS + 2000);
}

/*
 * A BASE reload whose old worker still has output for a client that never
 * reads when max_wait_time runs out: the connection is reset and the log
 * line says it was the reload's drain, not a shutdown.
 */
static char reload_log[512];

static void setup_big_one_log(swoop_server_t *srv, void *arg)
{
    setup_big_one(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "log_file", reload_log));
}

TEST(server_reload_expiry_logged_as_reload_base)
{
    sh = srv_shared(sizeof(*sh));
    snprintf(reload_log, sizeof(reload_log), "%s/reload.log", swoop_test_tmpdir());
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_big_one_log, NULL, 1);
    swoop_server_stats_t st;
    int fd;
    pid_t old = reload_with_reply_parked(&h, &st, &fd);
    /* The client reads nothing: the old process gives up at max_wait_time and exits. */
    WAIT_UNTIL(!swoop_test_pid_alive(old), MAX_WAIT_MS + 3000);
    close(fd);
    FILE *f = fopen(reload_log, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int reload = 0, shutdown = 0;
    while (fgets(line, sizeof(line), f)) {
        reload += strstr(line, "reload: 1 connections with ") != NULL;
        shutdown += strstr(line, "shutdown: 1 connections with ") != NULL;
    }
    fclose(f);
    if (reload != 1 || shutdown != 0)
        FAIL("the reload's expiry logged %d time(s) as \"reload\" and %d as \"shutdown\" (want 1 "
             "and 0)",
             reload, shutdown);
    srv_stop(&h, MAX_WAIT_MS + 2000);
}

/* ---- requests taken before the SIGTERM complete ---- */

static void on_slow(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                    size_t len)
{
    atomic_fetch_add(&sh->started, 1);
    swoop_test_sleep_ms(200);
    ASSERT_OK(swoop_server_send(srv, conn, "done\n", 5));
}

static void setup_slow(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "4"));
    set_ipc(srv);
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_slow}));
}

/* connect() to `port` fails with ECONNREFUSED within `ms` (each success is closed). */
static void expect_refused(int port, int ms)
{
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
        int err = errno;
        close(fd);
        /* A SYN that meets the listening socket's shutdown half-way gets a reset: refused too. */
        if (rc < 0 && (err == ECONNREFUSED || err == ECONNRESET))
            return;
        if (rc < 0)
            FAIL("connect() failed with errno %d, not ECONNREFUSED", err);
        if (swoop_test_now_ms() > deadline)
            FAIL("new connects still accepted %d ms after the SIGTERM", ms);
        swoop_test_sleep_ms(1);
    }
}

static void completes_inflight(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_slow, NULL, 2);
    int fds[INFLIGHT_N];
    swoop_server_stats_t st;
    for (int i = 0; i < INFLIGHT_N; i++)
        fds[i] = cli_connect(h.port);
    /* Every connection accepted, so each request reaches a connection the server owns. */
    WAIT_UNTIL((srv_stats(&h, &st), st.accept_count >= INFLIGHT_N), 3000);
    /*
     * One request first: once its worker sleeps in on_receive, the other 7
     * queue behind the running ones (in the worker's channel, PROCESS, or in
     * the kernel, BASE), not read yet when the SIGTERM comes.
     */
    cli_write(fds[0], "slow", 4);
    WAIT_UNTIL(atomic_load(&sh->started) >= 1, 3000);
    for (int i = 1; i < INFLIGHT_N; i++)
        cli_write(fds[i], "slow", 4);
    /* PROCESS: the reactor threads read all 8 (loopback: BASE has them in its socket queues). */
    if (mode == SWOOP_MODE_PROCESS)
        WAIT_UNTIL((srv_stats(&h, &st), st.bytes_in >= 4 * INFLIGHT_N), 3000);
    srv_stats(&h, &st);
    uint64_t t_term = swoop_test_now_ms();
    ASSERT_EQ(kill(h.pid, SIGTERM), 0);
    expect_refused(h.port, 100);
    for (int i = 0; i < INFLIGHT_N; i++) {
        char buf[8];
        size_t n = cli_read_n(fds[i], buf, 5, INFLIGHT_WAIT_MS);
        if (n != 5 || memcmp(buf, "done\n", 5) != 0)
            FAIL("client %d got %zu bytes instead of \"done\\n\" (%d of %d requests started)", i, n,
                 atomic_load(&sh->started), INFLIGHT_N);
        expect_eof(fds[i], INFLIGHT_WAIT_MS); /* BASE: after the whole last-read batch ran */
        close(fds[i]);
    }
    ASSERT_EQ(atomic_load(&sh->started), INFLIGHT_N);
    term_and_wait(&h, &st, t_term, INFLIGHT_WAIT_MS);
    ASSERT_EQ(swoop_test_fd_count(), h.fd0);
}

TEST(server_shutdown_completes_inflight_process)
{
    completes_inflight(SWOOP_MODE_PROCESS);
}

TEST(server_shutdown_completes_inflight_process_ring)
{
    use_ring = 1;
    completes_inflight(SWOOP_MODE_PROCESS);
}

TEST(server_shutdown_completes_inflight_base)
{
    completes_inflight(SWOOP_MODE_BASE);
}

/*
 * BASE reload: while the old worker 0 still drains a slow reader, worker 1
 * sends 20 messages to a connection of the new worker 0. They travel over
 * worker id 0's message channel, which the draining process must leave to
 * its successor: all 20 arrive, in order.
 */
#define FWD_N 20

typedef struct fwd_s {
    _Atomic int last_worker, last_pid;
    _Atomic uint64_t last_conn;
    _Atomic int queued;
} fwd_t;

static fwd_t *fw;

static void fwd_on_connect(swoop_server_t *srv, swoop_conn_id_t conn, int rid)
{
    atomic_store(&fw->last_conn, conn);
    atomic_store(&fw->last_pid, getpid());
    atomic_store(&fw->last_worker, swoop_server_worker_id(srv));
}

static void fwd_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                           size_t len)
{
    if (len >= 3 && memcmp(data, "big", 3) == 0) {
        on_big(srv, conn, rid, data, len);
        atomic_store(&fw->queued, 1);
        return;
    }
    unsigned long long to;
    char cmd[64];
    size_t n = len < sizeof(cmd) - 1 ? len : sizeof(cmd) - 1;
    memcpy(cmd, data, n);
    cmd[n] = '\0';
    if (sscanf(cmd, "fwd %llu", &to) == 1) {
        for (int i = 0; i < FWD_N; i++) {
            char m[16];
            int k = snprintf(m, sizeof(m), "m%02d\n", i);
            ASSERT_OK(swoop_server_send(srv, (swoop_conn_id_t)to, m, (size_t)k));
        }
    }
}

static void setup_fwd(swoop_server_t *srv, void *arg)
{
    setup_big(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "4"));
    ASSERT_OK(swoop_server_on(
        srv, &(swoop_server_events_t){.on_connect = fwd_on_connect, .on_receive = fwd_on_receive}));
}

/* A connection accepted by worker `want` (a process other than `not_pid`); sets *conn. */
static int connect_to_worker(int port, int want, int not_pid, uint64_t *conn, int slow)
{
    for (int tries = 0; tries < 500; tries++) {
        atomic_store(&fw->last_conn, 0);
        int fd = slow ? slow_client(port) : cli_connect(port);
        WAIT_UNTIL(atomic_load(&fw->last_conn) != 0, 3000);
        if (atomic_load(&fw->last_worker) == want && atomic_load(&fw->last_pid) != not_pid) {
            *conn = atomic_load(&fw->last_conn);
            return fd;
        }
        close(fd);
    }
    FAIL("no connection landed on worker %d", want);
}

TEST(server_reload_keeps_message_channel_for_successor_base)
{
    sh = srv_shared(sizeof(*sh));
    fw = srv_shared(sizeof(*fw));
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_fwd, NULL, 2);
    uint64_t sconn, fconn, gconn;
    int s = connect_to_worker(h.port, 0, 0, &sconn, 1);
    cli_write(s, "big", 3);
    WAIT_UNTIL(atomic_load(&fw->queued), 3000);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    pid_t old0 = st.workers[0].pid;
    ASSERT_EQ(kill(st.manager_pid, SIGUSR1), 0);
    WAIT_UNTIL((srv_stats(&h, &st), st.workers[0].pid != old0 && st.workers[0].pid > 0 &&
                                        st.workers[1].starts == 2 && st.workers[1].pid > 0),
               3000);
    int f = connect_to_worker(h.port, 0, old0, &fconn, 0);
    int g = connect_to_worker(h.port, 1, 0, &gconn, 0);
    ASSERT(swoop_test_pid_alive(old0)); /* still draining the slow reader */
    char cmd[64];
    int k = snprintf(cmd, sizeof(cmd), "fwd %llu", (unsigned long long)fconn);
    cli_write(g, cmd, (size_t)k);
    char want[FWD_N * 4 + 1], got[FWD_N * 4 + 1];
    size_t len = 0;
    for (int i = 0; i < FWD_N; i++)
        len += (size_t)snprintf(want + len, sizeof(want) - len, "m%02d\n", i);
    ASSERT_UEQ(cli_read_n(f, got, len, 3000), len);
    ASSERT_MEM_EQ(got, want, len);
    ASSERT(swoop_test_pid_alive(old0)); /* the old process was draining all along */
    /* The slow reader still gets its whole reply, then EOF. */
    read_big_reply(s);
    expect_eof(s, 1000);
    close(s);
    close(f);
    close(g);
    WAIT_UNTIL(!swoop_test_pid_alive(old0), 3000);
    srv_stop(&h, 6000);
}
