/*
 * Reload benchmark (issue 10, item 3): latency of a ping-pong load while
 * SIGUSR1 reloads replace every worker, against the same load on the same
 * server without reloads, measured in alternating rounds (quiet, reloading,
 * quiet, ...) so a noisy moment on a shared machine hits both rows. Each
 * row prints the round trips per second and the p50 / p99 / max latency
 * over all its rounds, and the reloading row its p99 minus the quiet one's.
 *
 *   reload [-c connections] [-d seconds per round] [-n rounds] [-w workers] [-i reload ms]
 *   defaults: 64 connections, 2 s, 3 rounds, 4 workers, a reload every 200 ms
 *
 * PROCESS mode over rings (the default) and over socketpairs (ipc_ring 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swoop/log.h>
#include <swoop/server.h>

static int conns = 64, seconds = 2, nrounds = 3, workers = 4, reload_ms = 200;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void echo(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                 size_t len)
{
    swoop_server_send(srv, conn, data, len);
}

/* Starts the server in a child; returns its pid and sets *port. */
static pid_t start_server(int ring, int *port)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        exit(1);
    fflush(stdout); /* or the child would print the table's head again */
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        swoop_log_set_level(SWOOP_LOG_WARNING);
        swoop_server_t *srv;
        swoop_port_t *p;
        char w[16];
        snprintf(w, sizeof(w), "%d", workers);
        if (swoop_server_new(&srv, SWOOP_MODE_PROCESS) < 0 ||
            swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &p) < 0 ||
            swoop_server_set(srv, "worker_num", w) < 0 ||
            swoop_server_set(srv, "reactor_num", "2") < 0 ||
            swoop_server_set(srv, "ipc_ring", ring ? "1" : "0") < 0 ||
            swoop_server_on(srv, &(swoop_server_events_t){.on_receive = echo}) < 0)
            _exit(1);
        int n = swoop_port_number(p);
        if (write(pfd[1], &n, sizeof(n)) != (ssize_t)sizeof(n))
            _exit(1);
        close(pfd[1]);
        _exit(swoop_server_start(srv) == 0 ? 0 : 1);
    }
    close(pfd[1]);
    if (read(pfd[0], port, sizeof(*port)) != (ssize_t)sizeof(*port))
        exit(1);
    close(pfd[0]);
    /* Every worker up: the stats show their pids. */
    for (int tries = 0; tries < 5000; tries++) {
        swoop_server_stats_t st;
        int up = 0;
        if (swoop_server_stats_by_pid(pid, &st) == 0)
            for (int i = 0; i < st.worker_num; i++)
                up += st.workers[i].pid > 0;
        if (up == workers)
            break;
        usleep(1000);
    }
    return pid;
}

typedef struct lat_s {
    uint64_t *us;
    size_t n, cap;
    uint64_t trips;
    double secs;
} lat_t;

static void lat_add(lat_t *l, uint64_t us)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1u << 16;
        l->us = realloc(l->us, l->cap * sizeof(uint64_t));
    }
    l->us[l->n++] = us;
}

/* One round: `conns` ping-pong connections for `seconds`, reloading every reload_ms if asked. */
static void round_run(int port, pid_t master, int reload, lat_t *l)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int *fd = calloc((size_t)conns, sizeof(int));
    uint64_t *sent = calloc((size_t)conns, sizeof(uint64_t));
    char msg[64];
    memset(msg, 'x', sizeof(msg));
    for (int i = 0; i < conns; i++) {
        fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd[i], (struct sockaddr *)&a, sizeof(a)) < 0)
            exit(1);
        int one = 1;
        setsockopt(fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev);
        sent[i] = now_us();
        if (send(fd[i], msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
            exit(1);
    }
    uint64_t start = now_us(), end = start + (uint64_t)seconds * 1000000u;
    uint64_t next_reload = start + (uint64_t)reload_ms * 1000u;
    struct epoll_event evs[256];
    char buf[4096];
    for (;;) {
        uint64_t now = now_us();
        if (now >= end)
            break;
        if (reload && now >= next_reload) {
            kill(master, SIGUSR1);
            next_reload = now + (uint64_t)reload_ms * 1000u;
        }
        int n = epoll_wait(ep, evs, 256, 5);
        for (int e = 0; e < n; e++) {
            int i = (int)evs[e].data.u32;
            ssize_t k = recv(fd[i], buf, sizeof(buf), 0);
            if (k <= 0)
                continue;
            /* 64-byte messages over loopback arrive whole. */
            uint64_t t = now_us();
            lat_add(l, t - sent[i]);
            l->trips++;
            sent[i] = t;
            send(fd[i], msg, sizeof(msg), MSG_NOSIGNAL);
        }
    }
    l->secs += (double)(now_us() - start) / 1e6;
    for (int i = 0; i < conns; i++)
        close(fd[i]);
    close(ep);
    free(fd);
    free(sent);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(lat_t *l, int p)
{
    if (l->n == 0)
        return 0;
    size_t i = (l->n * (size_t)p) / 100;
    if (i >= l->n)
        i = l->n - 1;
    return (double)l->us[i] / 1000.0;
}

static void row(const char *name, lat_t *l, double ref_p99)
{
    qsort(l->us, l->n, sizeof(uint64_t), cmp_u64);
    double p99 = pct_ms(l, 99);
    printf("%-34s %10.0f %8.2f %8.2f %9.2f", name, (double)l->trips / l->secs, pct_ms(l, 50), p99,
           l->n ? (double)l->us[l->n - 1] / 1000.0 : 0.0);
    if (ref_p99 >= 0)
        printf("   %+7.2f", p99 - ref_p99);
    printf("\n");
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "c:d:n:w:i:")) != -1) {
        switch (opt) {
        case 'c':
            conns = atoi(optarg);
            break;
        case 'd':
            seconds = atoi(optarg);
            break;
        case 'n':
            nrounds = atoi(optarg);
            break;
        case 'w':
            workers = atoi(optarg);
            break;
        case 'i':
            reload_ms = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: reload [-c conns] [-d s] [-n rounds] [-w workers] [-i ms]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    printf("PROCESS, %d workers, 2 reactor threads, %d connections, 64-byte ping-pong, %d rounds "
           "of %d s; reloads every %d ms\n",
           workers, conns, nrounds, seconds, reload_ms);
    printf("%-34s %10s %8s %8s %9s   %7s\n", "row", "trips/s", "p50 ms", "p99 ms", "max ms",
           "p99 +ms");
    for (int ring = 1; ring >= 0; ring--) {
        int port;
        pid_t master = start_server(ring, &port);
        lat_t quiet = {0}, busy = {0};
        for (int r = 0; r < nrounds; r++) {
            round_run(port, master, 0, &quiet);
            round_run(port, master, 1, &busy);
        }
        char name[64];
        snprintf(name, sizeof(name), "%s, no reload", ring ? "rings" : "socketpairs");
        row(name, &quiet, -1);
        qsort(quiet.us, quiet.n, sizeof(uint64_t), cmp_u64);
        snprintf(name, sizeof(name), "%s, reloading", ring ? "rings" : "socketpairs");
        row(name, &busy, pct_ms(&quiet, 99));
        kill(master, SIGTERM);
        waitpid(master, NULL, 0);
        free(quiet.us);
        free(busy.us);
    }
    return 0;
}
