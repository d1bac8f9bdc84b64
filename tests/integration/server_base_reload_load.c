/*
 * BASE reload under request/response load (issue 10, "BASE mode reload"):
 * 64 connections each send an 8-byte request and wait for its echo before
 * the next, 4,000 requests in all, while the manager gets SIGUSR1 three
 * times (each after every worker pid changed, read from the shared stats).
 * Every request sent must be answered exactly once. The server may close a
 * connection only between two requests: the client sees the EOF before it
 * sends the next one, reconnects and counts a reconnect. A request sent and
 * then met by EOF or a reset without its answer is a failure.
 */
#include <stdio.h>

#include "server_common.h"

#define NCONN   64
#define TOTAL   4000
#define RELOADS 3
#define REQ     8

static void setup_reload_load(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "worker_num", "2"));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "3"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
}

typedef struct rl_conn_s {
    int fd;
    int waiting; /* a request is out, its echo not complete */
    size_t got;
    char req[REQ];
} rl_conn_t;

typedef struct rl_state_s {
    int ep, port;
    long sent, answered, failed, reconnects;
} rl_state_t;

static void rl_open(rl_state_t *st, rl_conn_t *c, int idx)
{
    c->fd = cli_connect(st->port);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->waiting = 0;
    c->got = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)idx};
    ASSERT_EQ(epoll_ctl(st->ep, EPOLL_CTL_ADD, c->fd, &ev), 0);
}

static void rl_reopen(rl_state_t *st, rl_conn_t *c, int idx)
{
    epoll_ctl(st->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    rl_open(st, c, idx);
}

/*
 * Sends the next request unless the server closed the connection while it
 * was idle (EOF already here): that is a close between requests.
 */
static void rl_send(rl_state_t *st, rl_conn_t *c, int idx)
{
    char b;
    ssize_t k = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        st->reconnects++;
        rl_reopen(st, c, idx);
    } else {
        ASSERT(k < 0); /* nothing may arrive unasked */
    }
    char num[32];
    snprintf(num, sizeof(num), "%07ld\n", st->sent % 10000000);
    memcpy(c->req, num, REQ);
    ssize_t n = send(c->fd, c->req, REQ, MSG_NOSIGNAL);
    ASSERT_EQ(n, REQ); /* 8 bytes always fit an empty socket buffer */
    c->waiting = 1;
    c->got = 0;
    st->sent++;
}

static void rl_read(rl_state_t *st, rl_conn_t *c, int idx)
{
    char buf[REQ];
    ssize_t k = recv(c->fd, buf, REQ - c->got, 0);
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (k <= 0) {
        if (c->waiting) {
            st->failed++;
            fprintf(stderr, "# conn %d: request %.7s got %s after %zu bytes of its answer\n", idx,
                    c->req, k == 0 ? "EOF" : strerror(errno), c->got);
        } else {
            st->reconnects++;
        }
        rl_reopen(st, c, idx);
        return;
    }
    ASSERT(c->waiting);
    ASSERT_MEM_EQ(buf, c->req + c->got, (size_t)k);
    c->got += (size_t)k;
    if (c->got == REQ) {
        c->waiting = 0;
        st->answered++;
    }
}

/* 1 when every worker pid differs from `old` and is alive. */
static int rl_all_replaced(pid_t pid, const pid_t *old, int workers)
{
    swoop_server_stats_t s;
    if (swoop_server_stats_by_pid(pid, &s) != 0)
        return 0;
    for (int i = 0; i < workers; i++) {
        if (s.workers[i].pid <= 0 || s.workers[i].pid == old[i] ||
            !swoop_test_pid_alive(s.workers[i].pid))
            return 0;
    }
    return 1;
}

TEST(server_base_reload_under_load_fails_no_request)
{
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_reload_load, NULL, 2);
    rl_state_t st = {.ep = epoll_create1(EPOLL_CLOEXEC), .port = h.port};
    ASSERT_GE(st.ep, 0);
    static rl_conn_t cl[NCONN];
    for (int i = 0; i < NCONN; i++)
        rl_open(&st, &cl[i], i);
    for (int i = 0; i < NCONN; i++)
        rl_send(&st, &cl[i], i);
    int reloads = 0, reloading = 0;
    pid_t old[2];
    uint64_t deadline = swoop_test_now_ms() + 60000 * swoop_test_multiplier();
    struct epoll_event evs[NCONN];
    while ((st.answered + st.failed < TOTAL || reloading) && swoop_test_now_ms() < deadline) {
        /* A reload at each quarter of the load, the next once the previous one is done. */
        if (reloading && rl_all_replaced(h.pid, old, 2)) {
            reloading = 0;
            reloads++;
        }
        if (!reloading && reloads < RELOADS && st.sent >= (long)TOTAL * (reloads + 1) / 4) {
            swoop_server_stats_t s;
            srv_stats(&h, &s);
            old[0] = s.workers[0].pid;
            old[1] = s.workers[1].pid;
            ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
            reloading = 1;
        }
        int n = epoll_wait(st.ep, evs, NCONN, 10);
        for (int e = 0; e < n; e++) {
            int idx = (int)evs[e].data.u32;
            rl_conn_t *c = &cl[idx];
            rl_read(&st, c, idx);
            if (!c->waiting && st.sent < TOTAL)
                rl_send(&st, c, idx);
        }
    }
    fprintf(stderr, "# %ld requests sent, %ld answered, %ld failed, %ld reconnects, %d reloads\n",
            st.sent, st.answered, st.failed, st.reconnects, reloads);
    for (int i = 0; i < NCONN; i++)
        close(cl[i].fd);
    close(st.ep);
    ASSERT_EQ(reloads, RELOADS);
    ASSERT_EQ(st.failed, 0);
    ASSERT_EQ(st.answered, st.sent);
    ASSERT_EQ(st.sent, TOTAL);
    srv_stop(&h, 10000);
}
