/* TEST_LABELS: heavy */
/*
 * WebSocket under load and faults (issue 12): a broadcast reaching 5,000
 * connections, a client that never reads while the server pushes (memory
 * bounded, the port's policy applied and counted, other clients unharmed),
 * a PROCESS worker killed with open WebSockets (connections stay, the next
 * message reaches its successor) and reloads under traffic (PROCESS: every
 * message answered, no connection lost).
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <swoop/websocket.h>

#include "client_util.h"
#include "net/sendmany.h"
#include "server_common.h"

#define MANY 5000

typedef struct shared_s {
    _Atomic int closes;
    _Atomic int echoes;
} shared_t;

static shared_t *sh;
static const char *policy = "close";
static int uring_off; /* enable_io_uring 0: a broadcast's writes are one send() each */

#define BIG (256u << 10) /* a broadcast bigger than a socket buffer takes at once */

static uint8_t big_byte(size_t i)
{
    return (uint8_t)(i * 7u + (i >> 12));
}

static void on_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    if (len == 5 && memcmp(data, "bcast", 5) == 0) {
        ASSERT_OK(swoop_ws_broadcast(srv, NULL, 0, SWOOP_WS_TEXT, "to everyone", 11));
        return;
    }
    if (len == 7 && memcmp(data, "bigcast", 7) == 0) {
        static uint8_t big[BIG];
        for (size_t i = 0; i < BIG; i++)
            big[i] = big_byte(i);
        ASSERT_OK(swoop_ws_broadcast(srv, NULL, 0, SWOOP_WS_BINARY, big, BIG));
        return;
    }
    if (len == 5 && memcmp(data, "flood", 5) == 0) {
        /* 64 MiB at a client that does not read: the owner's policy bounds what waits. */
        static char chunk[65536];
        int refused = 0;
        for (int i = 0; i < 1024 && !refused; i++)
            refused = swoop_ws_push(srv, conn, SWOOP_WS_BINARY, chunk, sizeof(chunk)) < 0;
        return;
    }
    if (len == 3 && memcmp(data, "pid", 3) == 0) {
        char out[32];
        int n = snprintf(out, sizeof(out), "%d", (int)getpid());
        ASSERT_OK(swoop_ws_push(srv, conn, SWOOP_WS_TEXT, out, (size_t)n));
        return;
    }
    atomic_fetch_add(&sh->echoes, 1);
    swoop_ws_push(srv, conn, opcode, data, len);
}

static void on_close(swoop_server_t *srv, swoop_conn_id_t conn, int code)
{
    (void)srv;
    (void)conn;
    (void)code;
    atomic_fetch_add(&sh->closes, 1);
}

static void setup(swoop_server_t *srv, void *arg)
{
    (void)arg;
    ASSERT_OK(swoop_server_set(srv, "open_websocket_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "websocket_output_high_water", "1M"));
    ASSERT_OK(swoop_server_set(srv, "websocket_output_policy", policy));
    ASSERT_OK(swoop_server_set(srv, "max_conn", "12000"));
    ASSERT_OK(swoop_server_set(srv, "backlog", "4096"));
    if (uring_off)
        ASSERT_OK(swoop_server_set(srv, "enable_io_uring", "0"));
    swoop_ws_events_t ev = {.on_message = on_message, .on_close = on_close};
    ASSERT_OK(swoop_ws_on(srv, &ev));
}

static srv_handle_t start(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    return srv_start(mode, setup, NULL, 2);
}

static void stop(srv_handle_t *h)
{
    srv_stop(h, 10000);
    munmap(sh, sizeof(*sh));
}

static const char handshake[] =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";
#define RESPONSE_101_LEN 129 /* the 101 this server sends (checked in ws_open) */

/* Reads exactly n bytes (blocking fd, bounded wait); 0 on EOF or timeout. */
static int read_n(int fd, void *buf, size_t n, int ms)
{
    size_t got = 0;
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    while (got < n) {
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t k = recv(fd, (char *)buf + got, n - got, 0);
        if (k <= 0)
            return 0;
        got += (size_t)k;
    }
    return 1;
}

/* Connects and reads the 101 up to its blank line. */
static int ws_open(int port)
{
    int fd = cli_connect(port);
    cli_write(fd, handshake, strlen(handshake));
    char buf[512];
    size_t n = 0;
    while (n < 4 || memcmp(buf + n - 4, "\r\n\r\n", 4) != 0) {
        ASSERT_LT(n, sizeof(buf));
        ASSERT_EQ(read_n(fd, buf + n, 1, 10000), 1);
        n++;
    }
    ASSERT_EQ(strncmp(buf, "HTTP/1.1 101 ", 13), 0);
    return fd;
}

static void ws_send(int fd, const char *text)
{
    size_t len = strlen(text);
    uint8_t f[256] = {0x81, (uint8_t)(0x80 | len), 0, 0, 0, 0};
    ASSERT_LT(len, 126u);
    memcpy(f + 6, text, len); /* mask 0: the payload as is */
    cli_write(fd, f, 6 + len);
}

/* One text frame (< 126 bytes) into out (NUL-terminated); 0 on EOF/timeout. */
static int ws_recv_text(int fd, char *out, int ms)
{
    uint8_t h[2];
    if (!read_n(fd, h, 2, ms))
        return 0;
    size_t len = h[1] & 0x7f;
    ASSERT_LT(len, 126u);
    if (len && !read_n(fd, out, len, ms))
        return 0;
    out[len] = '\0';
    return 1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * MANY + 1000) {
        rl.rlim_cur = rl.rlim_max < 2 * MANY + 1000 ? rl.rlim_max : 2 * MANY + 1000;
        ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < 2 * MANY + 100)
        FAIL("RLIMIT_NOFILE hard limit %llu is below what %d connections need",
             (unsigned long long)rl.rlim_max, MANY);
}

/* Whether this kernel lets a process use io_uring (else swoop falls back to send()). */
static int io_uring_usable(void)
{
    swoop_sendmany_t *m;
    if (swoop__sendmany_open(&m, 8) < 0)
        return 0;
    swoop__sendmany_close(m);
    return 1;
}

/*
 * One broadcast reaches every one of 5,000 connections, whatever owner
 * holds it; the owners write it with io_uring (sends_batched) where the
 * kernel allows.
 */
static void broadcast_many(swoop_mode_t mode)
{
    raise_nofile();
    srv_handle_t h = start(mode);
    static int fds[MANY];
    for (int i = 0; i < MANY; i++)
        fds[i] = ws_open(h.port);
    ws_send(fds[0], "bcast");
    int got = 0;
    char text[128];
    for (int i = 0; i < MANY; i++) {
        if (ws_recv_text(fds[i], text, 10000) && strcmp(text, "to everyone") == 0)
            got++;
    }
    ASSERT_EQ(got, MANY);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    printf("# %d connections: %llu of the broadcast's writes through io_uring\n", MANY,
           (unsigned long long)st.sends_batched);
    if (io_uring_usable())
        ASSERT_EQ(st.sends_batched, (uint64_t)MANY);
    else
        ASSERT_EQ(st.sends_batched, 0u);
    for (int i = 0; i < MANY; i++)
        close(fds[i]);
    WAIT_UNTIL(atomic_load(&sh->closes) == MANY, 30000);
    stop(&h);
}

TEST_TIMEOUT(ws_broadcast_5000_process, 180)
{
    broadcast_many(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(ws_broadcast_5000_base, 180)
{
    broadcast_many(SWOOP_MODE_BASE);
}

/* Reads one binary frame of BIG bytes (127-length head) and checks every byte. */
static void recv_big(int fd)
{
    uint8_t hd[10];
    ASSERT_EQ(read_n(fd, hd, sizeof(hd), 10000), 1);
    ASSERT_EQ(hd[0], 0x82);
    ASSERT_EQ(hd[1], 127);
    uint64_t n = 0;
    for (int i = 2; i < 10; i++)
        n = n << 8 | hd[i];
    ASSERT_EQ(n, (uint64_t)BIG);
    static uint8_t buf[BIG];
    ASSERT_EQ(read_n(fd, buf, BIG, 10000), 1);
    for (size_t i = 0; i < BIG; i++) {
        if (buf[i] != big_byte(i))
            FAIL("byte %zu of the broadcast is %u, not %u", i, buf[i], big_byte(i));
    }
}

/*
 * A broadcast bigger than what the sockets take at once, to connections
 * that read only afterwards: each write is partial, the rest waits in the
 * connection's output behind it, and every client gets the whole frame,
 * byte for byte; then a small broadcast follows in order. With io_uring
 * and with enable_io_uring 0 (no io_uring write counted).
 */
#define PARTIAL_CONNS 40

static void broadcast_partial(swoop_mode_t mode, int off)
{
    uring_off = off;
    srv_handle_t h = start(mode);
    int fds[PARTIAL_CONNS];
    for (int i = 0; i < PARTIAL_CONNS; i++)
        fds[i] = ws_open(h.port);
    ws_send(fds[0], "bigcast");
    ws_send(fds[0], "bcast");
    char text[128];
    for (int i = 0; i < PARTIAL_CONNS; i++) {
        recv_big(fds[i]);
        ASSERT_EQ(ws_recv_text(fds[i], text, 10000), 1);
        ASSERT_EQ(strcmp(text, "to everyone"), 0);
    }
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    printf("# enable_io_uring %d: %llu writes through io_uring\n", !off,
           (unsigned long long)st.sends_batched);
    /* An owner with fewer than 16 of them (BASE splits them) writes with send(). */
    if (off || !io_uring_usable())
        ASSERT_EQ(st.sends_batched, 0u);
    else
        ASSERT_GT(st.sends_batched, 0u);
    for (int i = 0; i < PARTIAL_CONNS; i++)
        close(fds[i]);
    WAIT_UNTIL(atomic_load(&sh->closes) == PARTIAL_CONNS, 30000);
    stop(&h);
    uring_off = 0;
}

TEST(ws_broadcast_partial_writes_process)
{
    broadcast_partial(SWOOP_MODE_PROCESS, 0);
}

TEST(ws_broadcast_partial_writes_base)
{
    broadcast_partial(SWOOP_MODE_BASE, 0);
}

TEST(ws_broadcast_without_io_uring_process)
{
    broadcast_partial(SWOOP_MODE_PROCESS, 1);
}

TEST(ws_broadcast_without_io_uring_base)
{
    broadcast_partial(SWOOP_MODE_BASE, 1);
}

/* The process that owns connections: the master (PROCESS) or both workers (BASE). */
static long owners_rss_kb(srv_handle_t *h, swoop_mode_t mode)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    if (mode == SWOOP_MODE_PROCESS)
        return rss_anon_kb(h->pid);
    return rss_anon_kb(st.workers[0].pid) + rss_anon_kb(st.workers[1].pid);
}

/* A client that never reads while 64 MiB are pushed at it; another keeps being served. */
static void slow_reader(swoop_mode_t mode, const char *pol)
{
    policy = pol;
    srv_handle_t h = start(mode);
    int other = ws_open(h.port);
    char text[128];
    ws_send(other, "hello");
    ASSERT_EQ(ws_recv_text(other, text, 10000), 1);
    long before = owners_rss_kb(&h, mode);
    int slow = ws_open(h.port);
    int rcv = 4096;
    setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    ws_send(slow, "flood");
    swoop_server_stats_t st;
    if (strcmp(pol, "close") == 0) {
        WAIT_UNTIL((srv_stats(&h, &st), st.ws_slow_closed == 1), 30000);
        WAIT_UNTIL(atomic_load(&sh->closes) == 1, 10000);
    } else {
        WAIT_UNTIL((srv_stats(&h, &st), st.ws_dropped > 0), 30000);
        ASSERT_EQ(st.ws_slow_closed, 0u);
    }
    long after = owners_rss_kb(&h, mode);
    fprintf(stderr, "# %s, policy %s: owners' anonymous memory %ld -> %ld KiB\n",
            mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", pol, before, after);
    /* 64 MiB pushed: what stays is the high-water mark (1 MiB) and the kernel's share. */
    ASSERT_LT(after - before, 16 * 1024);
    /* The other client is served all along. */
    for (int i = 0; i < 20; i++) {
        ws_send(other, "again");
        ASSERT_EQ(ws_recv_text(other, text, 10000), 1);
        ASSERT_STR_EQ(text, "again");
    }
    close(slow);
    close(other);
    stop(&h);
    policy = "close";
}

TEST_TIMEOUT(ws_slow_reader_closed_process, 90)
{
    slow_reader(SWOOP_MODE_PROCESS, "close");
}

TEST_TIMEOUT(ws_slow_reader_closed_base, 90)
{
    slow_reader(SWOOP_MODE_BASE, "close");
}

TEST_TIMEOUT(ws_slow_reader_dropped_process, 90)
{
    slow_reader(SWOOP_MODE_PROCESS, "drop");
}

/* PROCESS: a worker dies; its WebSocket connections stay (the reactor owns them). */
TEST_TIMEOUT(ws_worker_killed_process, 60)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS);
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = ws_open(h.port);
    char text[128];
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    pid_t victim = st.workers[0].pid;
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    WAIT_UNTIL((srv_stats(&h, &st), st.workers[0].pid != victim && st.workers[0].pid > 0), 10000);
    /* Every connection still answers; some of them through the successor. */
    int successor = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 8; i++) {
            ws_send(fds[i], "pid");
            ASSERT_EQ(ws_recv_text(fds[i], text, 10000), 1);
            int pid = atoi(text);
            ASSERT_NE(pid, victim);
            successor |= pid == st.workers[0].pid;
        }
    }
    ASSERT_EQ(successor, 1);
    ASSERT_EQ(atomic_load(&sh->closes), 0);
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    stop(&h);
}

/* PROCESS: reloads while clients talk; every message is answered, no connection closes. */
TEST_TIMEOUT(ws_reload_under_load_process, 90)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS);
    enum { CLIENTS = 16, ROUNDS = 150 };
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        fds[i] = ws_open(h.port);
    int answered = 0, reloads = 0;
    char text[128], msg[32];
    for (int r = 0; r < ROUNDS; r++) {
        if (r % 50 == 25) {
            ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
            reloads++;
        }
        for (int i = 0; i < CLIENTS; i++) {
            snprintf(msg, sizeof(msg), "m%d-%d", r, i);
            ws_send(fds[i], msg);
        }
        for (int i = 0; i < CLIENTS; i++) {
            snprintf(msg, sizeof(msg), "m%d-%d", r, i);
            ASSERT_EQ(ws_recv_text(fds[i], text, 10000), 1);
            ASSERT_STR_EQ(text, msg);
            answered++;
        }
    }
    ASSERT_EQ(answered, CLIENTS * ROUNDS);
    ASSERT_EQ(reloads, 3);
    /* The reloads did replace the workers while the clients talked. */
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.workers[0].starts >= 2 && st.workers[1].starts >= 2), 10000);
    ASSERT_EQ(atomic_load(&sh->closes), 0);
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    stop(&h);
}
