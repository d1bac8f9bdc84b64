/*
 * Workers dying and being replaced, with clients connected: SIGKILL of a
 * worker under load (PROCESS: every client keeps its connection and the
 * replacement takes the dead worker's connections over; BASE: the other
 * worker keeps serving, the dead worker's clients see EOF), the worker is
 * back within 100 ms; SIGUSR1 reloads every worker while connections stay.
 */
/* TEST_LABELS: tsan */
#include "server_common.h"

enum { NCONN = 16 };

static void setup_lines(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "1"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
}

typedef struct lc_s {
    int fd;
    int seq;       /* the request in flight */
    uint64_t sent; /* when it was sent */
    long ok, lost, ok_after;
    char buf[256];
    size_t have;
    int closed;
} lc_t;

static void lc_send(lc_t *c, int i)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "%d:%d\n", i, ++c->seq);
    cli_write(c->fd, line, (size_t)n);
    c->sent = swoop_test_now_ms();
}

/*
 * Runs request/reply rounds on every connection for `ms`; a request without
 * a reply within 1 s counts as lost and the next one is sent. `mark` is a
 * time after which successes are counted separately.
 */
static void lc_run(lc_t *cl, int n, int ms, uint64_t mark, void (*at)(void *), void *arg, int at_ms)
{
    uint64_t t0 = swoop_test_now_ms(), end = t0 + (uint64_t)ms;
    int fired = 0;
    for (int i = 0; i < n; i++)
        if (!cl[i].closed)
            lc_send(&cl[i], i);
    while (swoop_test_now_ms() < end) {
        if (!fired && at && swoop_test_now_ms() - t0 >= (uint64_t)at_ms) {
            fired = 1;
            at(arg);
        }
        struct pollfd pf[NCONN];
        for (int i = 0; i < n; i++) {
            pf[i].fd = cl[i].closed ? -1 : cl[i].fd;
            pf[i].events = POLLIN;
        }
        poll(pf, (nfds_t)n, 20);
        uint64_t now = swoop_test_now_ms();
        for (int i = 0; i < n; i++) {
            lc_t *c = &cl[i];
            if (c->closed)
                continue;
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t k =
                    recv(c->fd, c->buf + c->have, sizeof(c->buf) - 1 - c->have, MSG_DONTWAIT);
                if (k == 0 || (k < 0 && errno != EAGAIN)) {
                    c->closed = 1;
                    continue;
                }
                if (k > 0)
                    c->have += (size_t)k;
                char *nl;
                while ((nl = memchr(c->buf, '\n', c->have)) != NULL) {
                    int id, seq;
                    *nl = '\0';
                    if (sscanf(c->buf, "%d:%d", &id, &seq) == 2 && id == i && seq == c->seq) {
                        c->ok++;
                        if (mark && now > mark)
                            c->ok_after++;
                        lc_send(c, i);
                    }
                    size_t used = (size_t)(nl - c->buf) + 1;
                    memmove(c->buf, nl + 1, c->have - used);
                    c->have -= used;
                }
            }
            if (!c->closed && now > c->sent + 1000) {
                c->lost++;
                lc_send(c, i);
            }
        }
    }
}

struct kill_arg {
    srv_handle_t *h;
    pid_t victim;
    uint64_t at;
};

static void do_kill(void *p)
{
    struct kill_arg *k = p;
    k->at = swoop_test_now_ms();
    ASSERT_EQ(kill(k->victim, SIGKILL), 0);
}

static void kill_under_load(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, setup_lines, NULL, 2);
    lc_t cl[NCONN];
    memset(cl, 0, sizeof(cl));
    for (int i = 0; i < NCONN; i++)
        cl[i].fd = cli_connect(h.port);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    struct kill_arg k = {.h = &h, .victim = st.workers[0].pid};
    uint64_t mark = swoop_test_now_ms() + 800 + 600 * swoop_test_multiplier();
    lc_run(cl, NCONN, 2000 + 1000 * (int)swoop_test_multiplier(), mark, do_kill, &k, 800);
    /* The worker is back (same id, new pid). */
    swoop_server_stats_t after;
    WAIT_UNTIL(
        (srv_stats(&h, &after), after.workers[0].pid != k.victim && after.workers[0].pid > 0),
        1000);
    ASSERT_UEQ(after.workers[0].starts, 2);
    long ok = 0, lost = 0, closed = 0, ok_after_all = 1;
    for (int i = 0; i < NCONN; i++) {
        ok += cl[i].ok;
        lost += cl[i].lost;
        closed += cl[i].closed;
        if (mode == SWOOP_MODE_PROCESS && cl[i].ok_after == 0)
            ok_after_all = 0;
    }
    printf("# %s: SIGKILL of worker 0 under load: %ld round trips ok, %ld lost, %ld of %d "
           "connections closed\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", ok, lost, closed, NCONN);
    if (mode == SWOOP_MODE_PROCESS) {
        /* Nobody lost the connection, at most the requests in flight were lost... */
        ASSERT_EQ(closed, 0);
        ASSERT_LE(lost, NCONN);
        /* ...and every connection was served after the kill, the dead worker's by its successor. */
        ASSERT(ok_after_all);
    } else {
        /*
         * The dead worker's clients saw EOF (how many depends on which worker
         * won each accept); nothing hangs, and new clients are served.
         */
        /* New clients are served (by either worker). */
        for (int i = 0; i < 8; i++) {
            int fd = cli_connect(h.port);
            char buf[8];
            cli_write(fd, "new\n", 4);
            ASSERT_EQ(cli_read_n(fd, buf, 4, 3000), 4);
            close(fd);
        }
    }
    /*
     * SIGKILL worker 1: a successor takes its place. How soon is printed,
     * not asserted (a loaded machine delays it; speed lives in bench/).
     */
    pid_t victim = after.workers[1].pid;
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    WAIT_UNTIL((srv_stats(&h, &after), after.workers[1].pid != victim && after.workers[1].pid > 0),
               5000);
    uint64_t latency = swoop_test_now_ms() - t0;
    printf("# %s: worker 1 back %llu ms after SIGKILL\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", (unsigned long long)latency);
    for (int i = 0; i < NCONN; i++)
        close(cl[i].fd);
    srv_stop(&h, 10000);
}

TEST(server_kill_worker_process)
{
    kill_under_load(SWOOP_MODE_PROCESS);
}

TEST(server_kill_worker_base)
{
    kill_under_load(SWOOP_MODE_BASE);
}

static void do_reload(void *p)
{
    struct kill_arg *k = p;
    ASSERT_EQ(kill(k->h->pid, SIGUSR1), 0);
}

TEST(server_reload_keeps_connections_process)
{
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup_lines, NULL, 2);
    lc_t cl[NCONN];
    memset(cl, 0, sizeof(cl));
    for (int i = 0; i < NCONN; i++)
        cl[i].fd = cli_connect(h.port);
    swoop_server_stats_t before;
    srv_stats(&h, &before);
    struct kill_arg k = {.h = &h};
    lc_run(cl, NCONN, 1500 + 500 * (int)swoop_test_multiplier(), 0, do_reload, &k, 300);
    swoop_server_stats_t after;
    WAIT_UNTIL(
        (srv_stats(&h, &after), after.workers[0].starts == 2 && after.workers[1].starts == 2),
        3000);
    ASSERT_NE(after.workers[0].pid, before.workers[0].pid);
    ASSERT_NE(after.workers[1].pid, before.workers[1].pid);
    long lost = 0;
    for (int i = 0; i < NCONN; i++) {
        ASSERT_EQ(cl[i].closed, 0);
        ASSERT_GT(cl[i].ok, 0);
        lost += cl[i].lost;
    }
    printf("# PROCESS: SIGUSR1 reload under load: %ld requests lost\n", lost);
    for (int i = 0; i < NCONN; i++)
        close(cl[i].fd);
    srv_stop(&h, 10000);
}
