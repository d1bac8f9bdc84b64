/*
 * Helpers shared by the server integration tests: fork a real server on
 * port 0 (the child reports the port and its pid over a pipe), wait until
 * every worker runs (read from the server's shared stats, as `swoop stats`
 * does), blocking and epoll-driven clients, and a clean stop that checks
 * nothing is left behind.
 */
#ifndef SWOOP_TEST_SERVER_COMMON_H
#define SWOOP_TEST_SERVER_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <swoop/error.h>
#include <swoop/server.h>

#include "test.h"

typedef void (*srv_setup_fn)(swoop_server_t *srv, void *arg);

typedef struct srv_handle_s {
    pid_t pid; /* the process running swoop_server_start (master, or BASE manager) */
    int port;  /* the first TCP port */
    int fd0;   /* the test's fd count before the start */
} srv_handle_t;

typedef struct srv_child_arg_s {
    swoop_mode_t mode;
    srv_setup_fn setup;
    void *arg;
} srv_child_arg_t;

static inline void *srv_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT(p != MAP_FAILED);
    memset(p, 0, size);
    return p;
}

static void srv_child(void *varg, int ready_fd)
{
    srv_child_arg_t *a = varg;
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, a->mode));
    swoop_port_t *port;
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &port));
    ASSERT_OK(swoop_server_set(srv, "worker_num", "2"));
    ASSERT_OK(swoop_server_set(srv, "reactor_num", "2"));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "2"));
    if (a->setup)
        a->setup(srv, a->arg);
    char line[64];
    int n = snprintf(line, sizeof(line), "port %d\n", swoop_port_number(port));
    ASSERT_EQ(write(ready_fd, line, (size_t)n), n);
    close(ready_fd);
    int rc = swoop_server_start(srv);
    ASSERT_EQ(rc, 0);
    ASSERT_OK(swoop_server_free(srv));
}

/* Waits until the server's stats show every worker running. */
static inline void srv_wait_ready(pid_t pid, int workers)
{
    uint64_t deadline = swoop_test_now_ms() + 5000 * swoop_test_multiplier();
    for (;;) {
        swoop_server_stats_t st;
        if (swoop_server_stats_by_pid(pid, &st) == 0 && st.manager_pid > 0) {
            int up = 0;
            for (int i = 0; i < st.worker_num; i++)
                up += st.workers[i].pid > 0 && swoop_test_pid_alive(st.workers[i].pid);
            if (up == workers && st.worker_num == workers)
                return;
        }
        if (swoop_test_now_ms() > deadline)
            FAIL("server %d not ready within 5 s", (int)pid);
        swoop_test_sleep_ms(2);
    }
}

static inline srv_handle_t srv_start(swoop_mode_t mode, srv_setup_fn setup, void *arg, int workers)
{
    srv_handle_t h;
    h.fd0 = swoop_test_fd_count();
    static srv_child_arg_t a;
    a.mode = mode;
    a.setup = setup;
    a.arg = arg;
    int rfd;
    h.pid = swoop_test_fork(srv_child, &a, &rfd);
    char line[64];
    ASSERT_GT(swoop_test_read_line(rfd, line, sizeof(line), 5000), 0);
    close(rfd);
    ASSERT_EQ(sscanf(line, "port %d", &h.port), 1);
    srv_wait_ready(h.pid, workers);
    return h;
}

static inline void srv_stats(srv_handle_t *h, swoop_server_stats_t *st)
{
    ASSERT_OK(swoop_server_stats_by_pid(h->pid, st));
}

/* SIGTERM, clean exit within `ms`, no worker left, no fd leaked in the test. */
static inline void srv_stop(srv_handle_t *h, int ms)
{
    swoop_server_stats_t st;
    ASSERT_OK(swoop_server_stats_by_pid(h->pid, &st));
    ASSERT_EQ(kill(h->pid, SIGTERM), 0);
    swoop_test_wait_ok(h->pid, ms);
    WAIT_UNTIL(!swoop_test_pid_alive(st.manager_pid), 2000);
    for (int i = 0; i < st.worker_num; i++) {
        if (st.workers[i].pid > 0)
            WAIT_UNTIL(!swoop_test_pid_alive(st.workers[i].pid), 2000);
    }
    ASSERT_EQ(swoop_test_fd_count(), h->fd0);
}

/* ---- clients ---- */

static inline int cli_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static inline void cli_write(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        ASSERT_GT(k, 0);
        c += k;
        n -= (size_t)k;
    }
}

/* Reads exactly n bytes within ms; returns n, or the count read before EOF/timeout. */
static inline size_t cli_read_n(int fd, void *p, size_t n, int ms)
{
    char *c = p;
    size_t got = 0;
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    while (got < n) {
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, (int)(deadline - now));
        if (r <= 0)
            continue;
        ssize_t k = recv(fd, c + got, n - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

/* Waits until the peer closes (EOF or reset) within ms; returns 1 if it did. */
static inline int cli_wait_closed(int fd, int ms)
{
    char buf[4096];
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    for (;;) {
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
            return 1;
    }
}

/*
 * `nconn` connections, each doing `rounds` request/echo round trips of
 * `size` bytes concurrently (epoll). Every echo is checked byte for byte.
 * Returns the round trips completed within `ms`.
 */
static inline long cli_echo_load(int port, int nconn, int rounds, size_t size, int ms)
{
    typedef struct {
        int fd;
        int round;
        size_t sent, got;
    } cl_t;
    cl_t *cl = calloc((size_t)nconn, sizeof(cl_t));
    char *msg = malloc(size), *buf = malloc(size);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nconn; i++) {
        cl[i].fd = cli_connect(port);
        fcntl(cl[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
        ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev), 0);
    }
    long done = 0, target = (long)nconn * rounds;
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    struct epoll_event evs[256];
    while (done < target && swoop_test_now_ms() < deadline) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < n; e++) {
            cl_t *c = &cl[evs[e].data.u32];
            int idx = (int)evs[e].data.u32;
            for (size_t k = 0; k < size; k++)
                msg[k] = (char)('a' + (idx + c->round + (int)k) % 26);
            if ((evs[e].events & EPOLLOUT) && c->sent < size) {
                ssize_t k = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
                if (k > 0)
                    c->sent += (size_t)k;
                if (c->sent == size) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t k = recv(c->fd, buf + c->got, size - c->got, 0);
                if (k == 0)
                    FAIL("connection %d closed by the server after %d rounds", idx, c->round);
                if (k < 0)
                    continue;
                ASSERT_MEM_EQ(buf + c->got, msg + c->got, (size_t)k);
                c->got += (size_t)k;
                if (c->got == size) {
                    done++;
                    c->round++;
                    c->sent = c->got = 0;
                    if (c->round < rounds) {
                        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT,
                                                 .data.u32 = (uint32_t)idx};
                        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                    } else {
                        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    }
                }
            }
        }
    }
    for (int i = 0; i < nconn; i++)
        close(cl[i].fd);
    close(ep);
    free(cl);
    free(msg);
    free(buf);
    return done;
}

/* Bytes the kernel holds unread on the server's end of the client socket `fd`. */
static inline long srv_rx_queue(int fd, int server_port)
{
    struct sockaddr_in me;
    socklen_t sl = sizeof(me);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&me, &sl), 0);
    unsigned cport = ntohs(me.sin_port);
    FILE *f = fopen("/proc/net/tcp", "r");
    ASSERT_NOT_NULL(f);
    char line[512];
    long rx = -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned la, lp, ra, rp, st;
        unsigned long tx, rq;
        if (sscanf(line, " %*d: %x:%x %x:%x %x %lx:%lx", &la, &lp, &ra, &rp, &st, &tx, &rq) == 7 &&
            lp == (unsigned)server_port && rp == cport) {
            rx = (long)rq;
            break;
        }
    }
    fclose(f);
    return rx;
}

/* An echo server's on_receive. */
static inline void srv_echo(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                            const void *data, size_t len)
{
    int rc = swoop_server_send(srv, conn, data, len);
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

#endif /* SWOOP_TEST_SERVER_COMMON_H */
