/*
 * dispatch_mode with real servers (PROCESS mode, 4 workers unless stated):
 * round robin spreads one connection's packets evenly; idle worker skips a
 * worker blocked in a callback; IP hash sends every connection of one
 * client address to one worker (127.0.0.1 and 127.0.0.2: Linux routes all
 * of 127/8 to lo, so a client can bind 127.0.0.2); uid sends a
 * connection's packets to uid % worker_num once bound, and refuses a
 * second bind. BASE mode has no dispatch: it still serves, and a
 * connection stays with the worker that accepted it.
 *
 * The protocol is one command per line: "who" answers "w<worker id>",
 * "block" holds its worker until the test releases it, "bind N" answers
 * "b<rc of swoop_server_bind_uid>".
 */
#include <stdio.h>

#include "server_common.h"

#define MAXW 8

struct shared {
    _Atomic long served[MAXW];
    _Atomic int blocked; /* worker id + 1 of the blocked callback */
    _Atomic int release;
};
static struct shared *sh;

static void reply(swoop_server_t *srv, swoop_conn_id_t conn, char letter, long v)
{
    char out[32];
    int n = snprintf(out, sizeof(out), "%c%ld\n", letter, v);
    int rc = swoop_server_send(srv, conn, out, (size_t)n);
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static void on_cmd(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data, size_t len)
{
    int id = swoop_server_worker_id(srv);
    ASSERT(id >= 0 && id < MAXW);
    const char *d = data;
    if (len >= 4 && memcmp(d, "who\n", 4) == 0) {
        atomic_fetch_add(&sh->served[id], 1);
        reply(srv, conn, 'w', id);
    } else if (len >= 6 && memcmp(d, "block\n", 6) == 0) {
        atomic_store(&sh->blocked, id + 1);
        uint64_t deadline = swoop_test_now_ms() + 10000;
        while (!atomic_load(&sh->release) && swoop_test_now_ms() < deadline)
            swoop_test_sleep_ms(1);
        reply(srv, conn, 'w', id);
    } else if (len > 5 && memcmp(d, "bind ", 5) == 0) {
        long uid = strtol(d + 5, NULL, 10);
        reply(srv, conn, 'b', swoop_server_bind_uid(srv, conn, (uint64_t)uid));
    } else {
        FAIL("unexpected command of %zu bytes", len);
    }
}

typedef struct {
    const char *mode;
    int workers;
} setup_arg_t;

static void setup(swoop_server_t *srv, void *varg)
{
    setup_arg_t *a = varg;
    char n[16];
    snprintf(n, sizeof(n), "%d", a->workers);
    ASSERT_OK(swoop_server_set(srv, "worker_num", n));
    ASSERT_OK(swoop_server_set(srv, "dispatch_mode", a->mode));
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_cmd}));
}

static srv_handle_t start(swoop_mode_t mode, const char *dmode, int workers)
{
    sh = srv_shared(sizeof(*sh));
    static setup_arg_t a;
    a.mode = dmode;
    a.workers = workers;
    return srv_start(mode, setup, &a, workers);
}

/* Sends one command line, returns the number after the reply's letter. */
static long ask(int fd, const char *cmd)
{
    cli_write(fd, cmd, strlen(cmd));
    char line[32];
    size_t n = 0;
    while (n < sizeof(line) - 1) {
        ASSERT_EQ(cli_read_n(fd, line + n, 1, 5000), 1);
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
    ASSERT(n >= 3);
    return strtol(line + 1, NULL, 10);
}

static int connect_from(int port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    ASSERT_EQ(inet_pton(AF_INET, src, &a.sin_addr), 1);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&d, sizeof(d)), 0);
    return fd;
}

TEST(server_dispatch_round_robin)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS, "1", 4);
    /* One connection, 40 requests one after the other: 10 per worker, in turn. */
    int fd = cli_connect(h.port);
    long prev = -1;
    for (int i = 0; i < 40; i++) {
        long w = ask(fd, "who\n");
        ASSERT(w >= 0 && w < 4);
        if (prev >= 0)
            ASSERT_EQ(w, (prev + 1) % 4);
        prev = w;
    }
    for (int w = 0; w < 4; w++)
        ASSERT_EQ(atomic_load(&sh->served[w]), 10);
    close(fd);
    srv_stop(&h, 10000);
}

TEST(server_dispatch_idle_worker_skips_busy)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS, "3", 2);
    int a = cli_connect(h.port);
    int b = cli_connect(h.port);
    cli_write(a, "block\n", 6);
    WAIT_UNTIL(atomic_load(&sh->blocked) != 0, 5000);
    int busy = atomic_load(&sh->blocked) - 1;
    /* While it is held, every packet goes to the other worker, from both connections. */
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(ask(b, "who\n"), 1 - busy);
        ASSERT_EQ(ask(a, "who\n") >= 0, 1);
    }
    ASSERT_EQ(atomic_load(&sh->served[busy]), 0);
    ASSERT_EQ(atomic_load(&sh->served[1 - busy]), 40);
    atomic_store(&sh->release, 1);
    /* The blocked request answers once released; its worker takes packets again. */
    char line[4];
    ASSERT_EQ(cli_read_n(a, line, 3, 5000), 3);
    ASSERT_MEM_EQ(line, "w", 1);
    ASSERT_EQ(line[1] - '0', busy);
    int seen_busy = 0;
    for (int i = 0; i < 20 && !seen_busy; i++)
        seen_busy = ask(b, "who\n") == busy;
    ASSERT(seen_busy);
    close(a);
    close(b);
    srv_stop(&h, 10000);
}

TEST(server_dispatch_ip_hash)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS, "4", 4);
    const char *ips[2] = {"127.0.0.1", "127.0.0.2"};
    for (int k = 0; k < 2; k++) {
        struct in_addr in;
        ASSERT_EQ(inet_pton(AF_INET, ips[k], &in), 1);
        long want = (long)(ntohl(in.s_addr) % 4u);
        /* Several connections (different fds, so fd modulo would spread them). */
        int fds[5];
        for (int c = 0; c < 5; c++)
            fds[c] = connect_from(h.port, ips[k]);
        for (int r = 0; r < 4; r++) {
            for (int c = 0; c < 5; c++)
                ASSERT_EQ(ask(fds[c], "who\n"), want);
        }
        for (int c = 0; c < 5; c++)
            close(fds[c]);
    }
    /* 127.0.0.1 -> worker 1, 127.0.0.2 -> worker 2, nobody else. */
    ASSERT_EQ(atomic_load(&sh->served[1]), 20);
    ASSERT_EQ(atomic_load(&sh->served[2]), 20);
    ASSERT_EQ(atomic_load(&sh->served[0]) + atomic_load(&sh->served[3]), 0);
    srv_stop(&h, 10000);
}

TEST(server_dispatch_uid)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS, "5", 4);
    uint64_t uids[3] = {7, 9, 22};
    int fds[3];
    for (int c = 0; c < 3; c++) {
        fds[c] = cli_connect(h.port);
        ASSERT_EQ(ask(fds[c], "bind 0\n"), SWOOP_EINVAL); /* 0 is not a uid */
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "bind %llu\n", (unsigned long long)uids[c]);
        ASSERT_EQ(ask(fds[c], cmd), 0);
    }
    for (int r = 0; r < 5; r++) {
        for (int c = 0; c < 3; c++)
            ASSERT_EQ(ask(fds[c], "who\n"), (long)(uids[c] % 4));
    }
    /* Bound once: a second bind is refused and changes nothing. */
    ASSERT_EQ(ask(fds[0], "bind 6\n"), SWOOP_EEXIST);
    ASSERT_EQ(ask(fds[0], "who\n"), 3);
    for (int c = 0; c < 3; c++)
        close(fds[c]);
    srv_stop(&h, 10000);
}

/* BASE: dispatch_mode is accepted and ignored; the accepting worker serves everything. */
static void base_ignores(const char *dmode)
{
    srv_handle_t h = start(SWOOP_MODE_BASE, dmode, 2);
    for (int c = 0; c < 4; c++) {
        int fd = cli_connect(h.port);
        long first = ask(fd, "who\n");
        ASSERT(first == 0 || first == 1);
        ASSERT_EQ(ask(fd, "bind 5\n"), 0);
        ASSERT_EQ(ask(fd, "bind 6\n"), SWOOP_EEXIST);
        for (int r = 0; r < 10; r++)
            ASSERT_EQ(ask(fd, "who\n"), first);
        close(fd);
    }
    srv_stop(&h, 10000);
}

TEST(server_dispatch_base_ignores_mode)
{
    base_ignores("1");
    base_ignores("5");
}
