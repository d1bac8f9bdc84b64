/*
 * Ping-pong benchmark: one load client (N connections, each sends a
 * message and waits for its echo before the next, for a fixed time)
 * against three servers with the same worker count: a minimal epoll echo
 * server (the reference ceiling: W single-threaded processes on
 * SO_REUSEPORT sockets, no framework at all), swoop BASE and swoop PROCESS
 * (over shared-memory rings, and over socketpairs with ipc_ring=0), and BASE on its shared
 * listening socket (the accept policy) with 1 and with W workers. All servers are started
 * first and stay up; the client then measures them in alternating rounds (reference, BASE, PROCESS,
 * PROCESS ipc_ring=0, reference, ...), so a noisy moment on a shared machine hits one sample of
 * every row rather than one whole row. For each row it prints the median over the rounds of round
 * trips per second and of the servers' CPU time per round trip (user + system of every server
 * process and thread, from /proc/PID/stat), and both as a ratio to the reference's median.
 *
 *   pingpong [-c connections] [-s size] [-d seconds] [-n rounds] [-w workers]
 *            [-r reactor_num] [-m rowmask: 2 BASE (enable_reuse_port), 4 PROCESS, 8 PROCESS
 *            ipc_ring=0, 16 BASE with 1 worker, 32 BASE on the shared socket]
 *   defaults: 64 connections, 64 bytes, 1 s per sample, 5 rounds, 2 workers
 *
 * The client runs in this process on the same machine, so it competes with
 * the server for the CPUs; every row pays that the same way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#define MAXPIDS 64

static int conns = 64, msg_size = 64, seconds = 1, nrounds = 5, workers = 2, reactors = 0,
           rowmask = 63;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of a process (all its threads), in clock ticks. */
static long long cpu_ticks(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    long long ut = 0, st = 0;
    /* Fields after the comm: state(3) ... utime(14) stime(15). */
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14)
            ut = atoll(tok);
        else if (field == 15) {
            st = atoll(tok);
            break;
        }
    }
    return ut + st;
}

/* ---- the reference server ---- */

static int listen_reuseport(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
        perror("reference: bind/listen");
        exit(1);
    }
    return fd;
}

static void reference_main(int lfd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static char buf[65536];
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t k = recv(fd, buf, sizeof(buf), 0);
            if (k <= 0) {
                if (k == 0 || (errno != EAGAIN && errno != EINTR))
                    close(fd);
                continue;
            }
            send(fd, buf, (size_t)k, MSG_NOSIGNAL);
        }
    }
}

static int start_reference(pid_t *pids, int *npids)
{
    int first = listen_reuseport(0);
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    getsockname(first, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    for (int i = 0; i < workers; i++) {
        int lfd = i == 0 ? first : listen_reuseport(port);
        pid_t pid = fork();
        if (pid == 0)
            reference_main(lfd);
        pids[(*npids)++] = pid;
        if (lfd != first)
            close(lfd);
    }
    close(first);
    return port;
}

/* ---- swoop servers ---- */

static void swoop_echo(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                       size_t len)
{
    swoop_server_send(srv, conn, data, len);
}

static int start_swoop(swoop_mode_t mode, int ring, int reuse_port, int nworkers, pid_t *pids,
                       int *npids)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        swoop_log_set_level(SWOOP_LOG_WARNING);
        swoop_server_t *srv;
        swoop_port_t *port;
        char w[16];
        snprintf(w, sizeof(w), "%d", nworkers);
        if (swoop_server_new(&srv, mode) < 0 ||
            swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &port) < 0)
            _exit(1);
        swoop_server_set(srv, "worker_num", w);
        if (reactors > 0) {
            snprintf(w, sizeof(w), "%d", reactors);
            swoop_server_set(srv, "reactor_num", w);
        }
        swoop_server_set(srv, "backlog", "4096");
        swoop_server_set(srv, "ipc_ring", ring ? "1" : "0");
        if (reuse_port)
            swoop_server_set(srv, "enable_reuse_port", "1");
        swoop_server_on(srv, &(swoop_server_events_t){.on_receive = swoop_echo});
        int num = swoop_port_number(port);
        if (write(p[1], &num, sizeof(num)) != sizeof(num))
            _exit(1);
        close(p[1]);
        int rc = swoop_server_start(srv);
        swoop_server_free(srv);
        _exit(rc == 0 ? 0 : 1);
    }
    close(p[1]);
    int port = 0;
    if (read(p[0], &port, sizeof(port)) != sizeof(port))
        port = -1;
    close(p[0]);
    /* Wait for every worker, then list the processes to measure. */
    for (int tries = 0; tries < 500; tries++) {
        swoop_server_stats_t st;
        int up = 0;
        if (swoop_server_stats_by_pid(pid, &st) == 0 && st.manager_pid > 0) {
            for (int i = 0; i < st.worker_num; i++)
                up += st.workers[i].pid > 0;
            if (up == nworkers) {
                pids[(*npids)++] = pid;
                if (st.manager_pid != pid)
                    pids[(*npids)++] = st.manager_pid;
                for (int i = 0; i < st.worker_num; i++)
                    pids[(*npids)++] = st.workers[i].pid;
                usleep(100000);
                return port;
            }
        }
        usleep(10000);
    }
    fprintf(stderr, "pingpong: swoop server did not start\n");
    return -1;
}

/* ---- the client ---- */

typedef struct {
    int fd;
    int sent, got;
} client_t;

/* Runs the ping-pong for `dur` seconds; returns round trips. */
static long run_client(int port, double dur)
{
    client_t *cl = calloc((size_t)conns, sizeof(*cl));
    char *msg = malloc((size_t)msg_size), *buf = malloc((size_t)msg_size);
    memset(msg, 'p', (size_t)msg_size);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            perror("pingpong: connect");
            exit(1);
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fcntl(fd, F_SETFL, O_NONBLOCK);
        cl[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        send(fd, msg, (size_t)msg_size, MSG_NOSIGNAL);
    }
    long rounds = 0;
    double end = now_s() + dur;
    struct epoll_event evs[256];
    while (now_s() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < n; e++) {
            client_t *c = &cl[evs[e].data.u32];
            ssize_t k = recv(c->fd, buf, (size_t)(msg_size - c->got), 0);
            if (k <= 0) {
                if (k == 0) {
                    fprintf(stderr, "pingpong: server closed a connection\n");
                    exit(1);
                }
                continue;
            }
            c->got += (int)k;
            if (c->got == msg_size) {
                c->got = 0;
                rounds++;
                send(c->fd, msg, (size_t)msg_size, MSG_NOSIGNAL);
            }
        }
    }
    for (int i = 0; i < conns; i++)
        close(cl[i].fd);
    close(ep);
    free(cl);
    free(msg);
    free(buf);
    return rounds;
}

typedef struct row_s {
    const char *name;
    double rps;
    double cpu_us;
} row_t;

static row_t measure(const char *name, int port, pid_t *pids, int npids)
{
    run_client(port, 0.2); /* warm-up: connects, caches */
    long long t0 = 0, t1 = 0;
    for (int i = 0; i < npids; i++)
        t0 += cpu_ticks(pids[i]);
    double s0 = now_s();
    long rounds = run_client(port, seconds);
    double el = now_s() - s0;
    for (int i = 0; i < npids; i++)
        t1 += cpu_ticks(pids[i]);
    double cpu_s = (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK);
    row_t r = {.name = name,
               .rps = (double)rounds / el,
               .cpu_us = rounds ? cpu_s * 1e6 / (double)rounds : 0};
    return r;
}

static void stop(pid_t *pids, int npids, int swoop_master)
{
    if (npids == 0)
        return;
    if (swoop_master) {
        kill(pids[0], SIGTERM);
        waitpid(pids[0], NULL, 0);
        return;
    }
    for (int i = 0; i < npids; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
}

#define NROWS     6
#define MAXROUNDS 21

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "c:s:d:n:w:r:m:")) != -1) {
        switch (opt) {
        case 'c':
            conns = atoi(optarg);
            break;
        case 's':
            msg_size = atoi(optarg);
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
        case 'r':
            reactors = atoi(optarg);
            break;
        case 'm':
            rowmask = atoi(optarg) | 1; /* the reference always runs */
            break;
        default:
            fprintf(stderr, "usage: pingpong [-c conns] [-s size] [-d seconds] [-n rounds] [-w "
                            "workers] [-r reactor_num] [-m rowmask]\n");
            return 2;
        }
    }
    if (conns < 1 || conns > 10000 || msg_size < 1 || msg_size > 65536 || seconds < 1 ||
        seconds > 60 || nrounds < 1 || nrounds > MAXROUNDS || workers < 1 || workers > 16)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    printf("ping-pong: %d connections, %d-byte messages, %d rounds of %d s per row, %d workers, "
           "%ld CPUs\n",
           conns, msg_size, nrounds, seconds, workers, sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
    static const char *names[NROWS] = {"reference epoll",     "swoop BASE",
                                       "swoop PROCESS",       "swoop PROCESS ipc_ring=0",
                                       "swoop BASE 1 worker", "swoop BASE shared socket"};
    pid_t pids[NROWS][MAXPIDS];
    int np[NROWS] = {0}, ports[NROWS];
    ports[0] = start_reference(pids[0], &np[0]);
    if (rowmask & 2)
        ports[1] = start_swoop(SWOOP_MODE_BASE, 1, 1, workers, pids[1], &np[1]);
    if (rowmask & 4)
        ports[2] = start_swoop(SWOOP_MODE_PROCESS, 1, 0, workers, pids[2], &np[2]);
    if (rowmask & 8)
        ports[3] = start_swoop(SWOOP_MODE_PROCESS, 0, 0, workers, pids[3], &np[3]);
    if (rowmask & 16)
        ports[4] = start_swoop(SWOOP_MODE_BASE, 1, 0, 1, pids[4], &np[4]);
    if (rowmask & 32)
        ports[5] = start_swoop(SWOOP_MODE_BASE, 1, 0, workers, pids[5], &np[5]);
    int ok = 1;
    for (int i = 1; i < NROWS; i++)
        ok &= !(rowmask & (1 << i)) || ports[i] > 0;
    double rps[NROWS][MAXROUNDS], cpu[NROWS][MAXROUNDS];
    for (int k = 0; ok && k < nrounds; k++) {
        for (int i = 0; i < NROWS; i++) {
            if (!(rowmask & (1 << i)))
                continue;
            row_t r = measure(names[i], ports[i], pids[i], np[i]);
            rps[i][k] = r.rps;
            cpu[i][k] = r.cpu_us;
        }
    }
    for (int i = 0; i < NROWS; i++)
        stop(pids[i], np[i], i > 0);
    if (!ok)
        return 1;

    row_t rows[NROWS];
    for (int i = 0; i < NROWS; i++) {
        if (!(rowmask & (1 << i)))
            continue;
        rows[i] = (row_t){
            .name = names[i], .rps = median(rps[i], nrounds), .cpu_us = median(cpu[i], nrounds)};
    }
    printf("%-26s %12s %14s %10s %10s\n", "server (median of rounds)", "round trips/s", "cpu us/rt",
           "rt ratio", "cpu ratio");
    for (int i = 0; i < NROWS; i++) {
        if (rowmask & (1 << i))
            printf("%-26s %12.0f %14.2f %10.2f %10.2f\n", rows[i].name, rows[i].rps, rows[i].cpu_us,
                   rows[i].rps / rows[0].rps, rows[i].cpu_us / rows[0].cpu_us);
    }
    printf("goal: BASE >= 0.95, PROCESS >= 0.80 of the reference's round trips/s\n");
    if ((rowmask & 48) == 48 && rows[4].rps > 0)
        printf("BASE %d workers (shared socket, accept policy) / BASE 1 worker: %.2f round trips/s "
               "(goal >= 1)\n",
               workers, rows[5].rps / rows[4].rps);
    return 0;
}
