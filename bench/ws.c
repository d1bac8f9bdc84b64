/*
 * WebSocket benchmark (issue 12).
 *
 * 1. Echo: one load client, N connections, each sends a message and waits
 *    for its echo before the next, against swoop's raw TCP echo and its
 *    WebSocket echo in the same mode (BASE, PROCESS), measured in
 *    alternating rounds; per row the median round trips/s and server CPU
 *    µs per round trip, and WebSocket as a ratio to TCP of its mode (goal
 *    >= 0.95; Swoole measured 0.85 on this kind of machine).
 * 2. Broadcast: B WebSocket connections (default 10,000) to one server;
 *    one of them asks for a broadcast of a 64-byte message; the server
 *    notes the time of the swoop_ws_broadcast call (CLOCK_MONOTONIC, in
 *    shared memory) and the client the time each connection got the frame:
 *    printed are the time to the first and to the last client (goal: last
 *    <= 30 ms; Swoole PROCESS 106 ms, BASE 120 ms), median of rounds.
 *    "server cpu" is the CPU time (ms) all server threads spent in the
 *    round. "server ms" is the server side alone: the latest kernel receive
 *    timestamp (SO_TIMESTAMPING, software) over all connections, which on
 *    loopback is taken inside the server's send(), minus the call's time
 *    (CLOCK_REALTIME, the clock of those timestamps). The rest of "last
 *    client" is this one client process reading 10,000 sockets.

 * 3. Compression: echo of a Z-byte JSON-like text (default 1024) in
 *    PROCESS mode, plain and with permessage-deflate (both sides without
 *    context takeover: the client sends the same compressed frame each
 *    time, the server inflates, the worker echoes, the owner compresses);
 *    per row round trips/s, server CPU µs per round trip and the bytes of
 *    the server's frame, then the ratios (what compression costs in time,
 *    what it saves on the wire).
 *
 *   ws [-c connections] [-s size] [-d seconds] [-n rounds] [-w workers] [-b broadcast_conns]
 *      [-z text_size] [-E]
 *   defaults: 64 connections, 64 bytes, 1 s per sample, 5 rounds, 2 workers, 10000, 1024
 *   (-z 0 skips the compression rows; -E runs the broadcast alone)
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/net_tstamp.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include <swoop/log.h>
#include <swoop/server.h>
#include <swoop/websocket.h>

#define MAXPIDS   16
#define MAXROUNDS 21

static int conns = 64, msg_size = 64, seconds = 1, nrounds = 5, workers = 2, bconns = 10000;
static int ztext = 1024;
static int no_echo;
static int uring_off; /* the next server starts with enable_io_uring 0 */
/* shared: when the server called swoop_ws_broadcast, [0] CLOCK_MONOTONIC, [1] CLOCK_REALTIME */
static _Atomic uint64_t *bcast_ns;

static uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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
    long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) != 2)
        return 0;
    return ut + st;
}

/* CPU time of every thread of pid in ns (schedstat: exact, unlike the ticks of stat). */
static uint64_t cpu_ns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sp[300];
        snprintf(sp, sizeof(sp), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(sp, "r");
        unsigned long long ns = 0;
        if (f && fscanf(f, "%llu", &ns) == 1)
            sum += ns;
        if (f)
            fclose(f);
    }
    closedir(d);
    return sum;
}

/* ---- servers ---- */

static void tcp_echo(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                     size_t len)
{
    (void)rid;
    swoop_server_send(srv, conn, data, len);
}

static void ws_echo(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                    size_t len)
{
    if (len == 5 && memcmp(data, "bcast", 5) == 0) {
        static char msg[64];
        memset(msg, 'b', sizeof(msg));
        atomic_store(&bcast_ns[1], real_ns());
        atomic_store(&bcast_ns[0], now_ns());
        swoop_ws_broadcast(srv, NULL, 0, SWOOP_WS_BINARY, msg, sizeof(msg));
        return;
    }
    swoop_ws_push(srv, conn, opcode, data, len);
}

/* Starts a server (ws: WebSocket echo, 2 with compression; 0 TCP echo); returns its port. */
static int start_server(swoop_mode_t mode, int ws, pid_t *pids, int *npids)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    fflush(stdout); /* the child must not print our buffer again */
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        swoop_log_set_level(SWOOP_LOG_WARNING);
        swoop_server_t *srv;
        swoop_port_t *port;
        char w[16];
        snprintf(w, sizeof(w), "%d", workers);
        if (swoop_server_new(&srv, mode) < 0 ||
            swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &port) < 0)
            _exit(1);
        swoop_server_set(srv, "worker_num", w);
        swoop_server_set(srv, "backlog", "8192");
        swoop_server_set(srv, "max_conn", "30000");
        if (mode == SWOOP_MODE_BASE)
            swoop_server_set(srv, "enable_reuse_port", "1");
        if (uring_off)
            swoop_server_set(srv, "enable_io_uring", "0");
        if (ws) {
            swoop_port_set(port, "open_websocket_protocol", "1");
            if (ws == 2)
                swoop_port_set(port, "websocket_compression", "1");
            swoop_ws_on(srv, &(swoop_ws_events_t){.on_message = ws_echo});
        } else {
            swoop_server_on(srv, &(swoop_server_events_t){.on_receive = tcp_echo});
        }
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
    for (int tries = 0; tries < 500; tries++) {
        swoop_server_stats_t st;
        int up = 0;
        if (swoop_server_stats_by_pid(pid, &st) == 0 && st.manager_pid > 0) {
            for (int i = 0; i < st.worker_num; i++)
                up += st.workers[i].pid > 0;
            if (up == workers) {
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
    fprintf(stderr, "ws: server did not start\n");
    return -1;
}

/* ---- clients ---- */

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("ws: connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Blocking handshake: writes the request, reads the 101 up to its blank line. */
static void ws_handshake_ext(int fd, int deflate)
{
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    static const char zreq[] =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        "client_no_context_takeover\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    const char *r = deflate ? zreq : req;
    size_t rl = deflate ? sizeof(zreq) - 1 : sizeof(req) - 1;
    if (send(fd, r, rl, MSG_NOSIGNAL) != (ssize_t)rl)
        exit(1);
    char buf[1024];
    size_t n = 0;
    while (n < 4 || memcmp(buf + n - 4, "\r\n\r\n", 4) != 0) {
        if (n >= sizeof(buf) || recv(fd, buf + n, 1, 0) != 1) {
            fprintf(stderr, "ws: handshake failed\n");
            exit(1);
        }
        n++;
    }
    if (deflate && memmem(buf, n, "permessage-deflate", 18) == NULL) {
        fprintf(stderr, "ws: compression was not agreed\n");
        exit(1);
    }
}

static void ws_handshake(int fd)
{
    ws_handshake_ext(fd, 0);
}

typedef struct client_s {
    int fd;
    int got;
} client_t;

/* Ping-pong for `dur` seconds; ws: framed (masked, 7-bit or 16-bit length). Round trips. */
static long run_client(int port, int ws, double dur)
{
    client_t *cl = calloc((size_t)conns, sizeof(*cl));
    size_t head = ws ? (msg_size < 126 ? 6 : 8) : 0;
    size_t out_len = head + (size_t)msg_size;
    size_t in_len = (ws ? (msg_size < 126 ? 2 : 4) : 0) + (size_t)msg_size;
    uint8_t *msg = calloc(1, out_len), *buf = malloc(in_len);
    if (ws) {
        msg[0] = 0x82;
        if (msg_size < 126) {
            msg[1] = (uint8_t)(0x80 | msg_size);
        } else {
            msg[1] = 0x80 | 126;
            msg[2] = (uint8_t)(msg_size >> 8);
            msg[3] = (uint8_t)msg_size;
        }
        /* A zero mask: the payload travels as is (the server unmasks anyway). */
    }
    memset(msg + head, 'p', (size_t)msg_size);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < conns; i++) {
        int fd = connect_to(port);
        if (ws)
            ws_handshake(fd);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        cl[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        send(fd, msg, out_len, MSG_NOSIGNAL);
    }
    long rounds = 0;
    uint64_t end = now_ns() + (uint64_t)(dur * 1e9);
    struct epoll_event evs[256];
    while (now_ns() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < n; e++) {
            client_t *c = &cl[evs[e].data.u32];
            ssize_t k = recv(c->fd, buf, in_len - (size_t)c->got, 0);
            if (k <= 0) {
                if (k == 0) {
                    fprintf(stderr, "ws: server closed a connection\n");
                    exit(1);
                }
                continue;
            }
            c->got += (int)k;
            if ((size_t)c->got == in_len) {
                c->got = 0;
                rounds++;
                send(c->fd, msg, out_len, MSG_NOSIGNAL);
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

/* ---- compression ---- */

static uint8_t *zframe; /* the client's frame (masked with a zero key) */
static size_t zframe_len;
static size_t zreply_len; /* the server's frame, learned from the first answer */

/* A JSON-like text of `n` bytes: what dashboards and chats send. */
static void json_text(char *p, size_t n)
{
    size_t at = 0;
    for (int i = 0; at < n; i++) {
        char item[128];
        int k = (i & 1) ? snprintf(item, sizeof(item),
                                   "{\"id\":%d,\"event\":\"update\",\"seq\":%d,\"value\":%d.%d},",
                                   1000 + i * 7, i * 13 % 97, i * 31 % 1000, i % 100)
                        : snprintf(item, sizeof(item),
                                   "{\"id\":%d,\"user\":\"user%d\",\"price\":%d.%02d,"
                                   "\"tags\":[\"a\",\"b\"]},",
                                   1000 + i * 7, i * 13 % 97, i * 31 % 1000, i % 100);
        size_t c = (size_t)k < n - at ? (size_t)k : n - at;
        memcpy(p + at, item, c);
        at += c;
    }
}

/* The client's frame of the text: plain, or compressed as a client without context would. */
static void zframe_build(int compress)
{
    char *t = malloc((size_t)ztext);
    json_text(t, (size_t)ztext);
    uint8_t *pl = (uint8_t *)t;
    size_t n = (size_t)ztext;
    uint8_t *z = NULL;
    if (compress) {
        z_stream s;
        memset(&s, 0, sizeof(s));
        deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
        size_t cap = deflateBound(&s, n) + 16;
        z = malloc(cap);
        s.next_in = pl;
        s.avail_in = (uInt)n;
        s.next_out = z;
        s.avail_out = (uInt)cap;
        deflate(&s, Z_SYNC_FLUSH);
        n = cap - s.avail_out - 4; /* without the 00 00 ff ff */
        deflateEnd(&s);
        pl = z;
    }
    free(zframe);
    zframe = malloc(n + 14);
    size_t h = 0;
    zframe[h++] = (uint8_t)(0x81 | (compress ? 0x40 : 0));
    if (n < 126) {
        zframe[h++] = (uint8_t)(0x80 | n);
    } else {
        zframe[h++] = 0x80 | 126;
        zframe[h++] = (uint8_t)(n >> 8);
        zframe[h++] = (uint8_t)n;
    }
    memset(zframe + h, 0, 4); /* a zero mask */
    h += 4;
    memcpy(zframe + h, pl, n);
    zframe_len = h + n;
    free(z);
    free(t);
}

/* Sends the frame once and reads the whole answer: its length (the same every time). */
static size_t zreply_learn(int fd)
{
    if (send(fd, zframe, zframe_len, MSG_NOSIGNAL) != (ssize_t)zframe_len)
        exit(1);
    uint8_t h[4];
    if (recv(fd, h, 2, MSG_WAITALL) != 2)
        exit(1);
    size_t n = h[1] & 0x7f, hl = 2;
    if (n == 126) {
        if (recv(fd, h + 2, 2, MSG_WAITALL) != 2)
            exit(1);
        n = (size_t)h[2] << 8 | h[3];
        hl = 4;
    }
    uint8_t *b = malloc(n ? n : 1);
    if (recv(fd, b, n, MSG_WAITALL) != (ssize_t)n)
        exit(1);
    free(b);
    return hl + n;
}

/* Ping-pong of the text frame for `dur` seconds over `conns` connections. Round trips. */
static long run_zclient(int port, int deflate, double dur)
{
    int *fd = calloc((size_t)conns, sizeof(int));
    size_t *got = calloc((size_t)conns, sizeof(size_t));
    uint8_t *buf = malloc(zframe_len + 16 + (size_t)ztext);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < conns; i++) {
        fd[i] = connect_to(port);
        ws_handshake_ext(fd[i], deflate);
        zreply_len = zreply_learn(fd[i]);
        fcntl(fd[i], F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev);
        send(fd[i], zframe, zframe_len, MSG_NOSIGNAL);
    }
    long rounds = 0;
    uint64_t end = now_ns() + (uint64_t)(dur * 1e9);
    struct epoll_event evs[256];
    while (now_ns() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < n; e++) {
            int i = (int)evs[e].data.u32;
            ssize_t k = recv(fd[i], buf, zreply_len - got[i], 0);
            if (k <= 0) {
                if (k == 0) {
                    fprintf(stderr, "ws: server closed a connection\n");
                    exit(1);
                }
                continue;
            }
            got[i] += (size_t)k;
            if (got[i] == zreply_len) {
                got[i] = 0;
                rounds++;
                send(fd[i], zframe, zframe_len, MSG_NOSIGNAL);
            }
        }
    }
    for (int i = 0; i < conns; i++)
        close(fd[i]);
    close(ep);
    free(fd);
    free(got);
    free(buf);
    return rounds;
}

typedef struct row_s {
    double rps, cpu_us;
} row_t;

/* ws: 0 TCP, 1 WebSocket; 2, 3: the text echo plain and compressed (run_zclient). */
static row_t measure(int port, int ws, pid_t *pids, int npids)
{
    if (ws >= 2)
        zframe_build(ws == 3);
    long (*run)(int, int, double) = ws >= 2 ? run_zclient : run_client;
    int arg = ws >= 2 ? ws == 3 : ws;
    run(port, arg, 0.2);
    long long t0 = 0, t1 = 0;
    for (int i = 0; i < npids; i++)
        t0 += cpu_ticks(pids[i]);
    uint64_t s0 = now_ns();
    long rounds = run(port, arg, seconds);
    double el = (double)(now_ns() - s0) / 1e9;
    for (int i = 0; i < npids; i++)
        t1 += cpu_ticks(pids[i]);
    double cpu_s = (double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK);
    return (row_t){(double)rounds / el, rounds ? cpu_s * 1e6 / (double)rounds : 0};
}

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

static void stop(pid_t master)
{
    kill(master, SIGTERM);
    waitpid(master, NULL, 0);
}

/* The kernel's receive timestamp of the data recvmsg returned (CLOCK_REALTIME ns), 0 none. */
static uint64_t rx_stamp(struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPING) {
            struct timespec ts[3];
            memcpy(ts, CMSG_DATA(cm), sizeof(ts));
            return (uint64_t)ts[0].tv_sec * 1000000000ull + (uint64_t)ts[0].tv_nsec;
        }
    }
    return 0;
}

typedef struct bresult_s {
    double first_ms, last_ms, server_ms;
} bresult_t;

/* One broadcast round over fds: ms to the first and the last client, and the server side. */
static bresult_t broadcast_round(int *fds, int n, int ep)
{
    atomic_store(&bcast_ns[0], 0);
    static const uint8_t ask[] = {0x81, 0x85, 0, 0, 0, 0, 'b', 'c', 'a', 's', 't'};
    send(fds[0], ask, sizeof(ask), MSG_NOSIGNAL);
    int *got = calloc((size_t)n, sizeof(int));
    int done = 0;
    uint64_t first = 0, last = 0, last_rx = 0, give_up = now_ns() + 20000000000ull;
    uint8_t buf[256];
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec) * 3)];
        struct cmsghdr align;
    } ctl;
    struct epoll_event evs[512];
    while (done < n && now_ns() < give_up) {
        int k = epoll_wait(ep, evs, 512, 100);
        uint64_t t = now_ns();
        for (int e = 0; e < k; e++) {
            int i = (int)evs[e].data.u32;
            struct iovec iov = {buf, sizeof(buf)};
            struct msghdr mh = {.msg_iov = &iov,
                                .msg_iovlen = 1,
                                .msg_control = ctl.buf,
                                .msg_controllen = sizeof(ctl)};
            ssize_t r = recvmsg(fds[i], &mh, 0);
            if (r <= 0)
                continue;
            got[i] += (int)r;
            if (got[i] >= 66 && got[i] - (int)r < 66) { /* 2-byte head + 64 bytes */
                done++;
                if (first == 0)
                    first = t;
                last = t;
                uint64_t rx = rx_stamp(&mh);
                if (rx > last_rx)
                    last_rx = rx;
            }
        }
    }
    uint64_t t0 = atomic_load(&bcast_ns[0]), t0_real = atomic_load(&bcast_ns[1]);
    bresult_t res = {-1, -1, -1};
    if (done && t0)
        res.first_ms = (double)(first - t0) / 1e6;
    if (done == n && t0) {
        res.last_ms = (double)(last - t0) / 1e6;
        if (last_rx > t0_real)
            res.server_ms = (double)(last_rx - t0_real) / 1e6;
    }
    if (done < n)
        fprintf(stderr, "ws: broadcast reached %d of %d connections\n", done, n);
    free(got);
    return res;
}

static void broadcast_bench(swoop_mode_t mode, const char *name)
{
    pid_t pids[MAXPIDS];
    int np = 0;
    int port = start_server(mode, 1, pids, &np);
    if (port < 0)
        return;
    int *fds = calloc((size_t)bconns, sizeof(int));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < bconns; i++) {
        fds[i] = connect_to(port);
        ws_handshake(fds[i]);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        int stamp = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
        setsockopt(fds[i], SOL_SOCKET, SO_TIMESTAMPING, &stamp, sizeof(stamp));
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    double first[MAXROUNDS], last[MAXROUNDS], server[MAXROUNDS], cpu[MAXROUNDS];
    int ok = 0, oks = 0;
    for (int k = 0; k < nrounds; k++) {
        uint64_t c0 = 0, c1 = 0;
        for (int i = 0; i < np; i++)
            c0 += cpu_ns(pids[i]);
        bresult_t r = broadcast_round(fds, bconns, ep);
        for (int i = 0; i < np; i++)
            c1 += cpu_ns(pids[i]);
        cpu[k] = (double)(c1 - c0) / 1e6;
        if (r.last_ms >= 0) {
            first[ok] = r.first_ms;
            last[ok++] = r.last_ms;
        }
        if (r.server_ms >= 0)
            server[oks++] = r.server_ms;
        usleep(100000);
    }
    if (ok)
        printf("%-26s %8d %12.1f %12.1f %16.1f %16.1f\n", name, bconns, median(cpu, nrounds),
               oks ? median(server, oks) : -1.0, median(first, ok), median(last, ok));
    for (int i = 0; i < bconns; i++)
        close(fds[i]);
    close(ep);
    free(fds);
    stop(pids[0]);
}

static int echo_bench(void)
{
    printf("websocket echo: %d connections, %d-byte messages, %d rounds of %d s per row, %d "
           "workers, %ld CPUs\n",
           conns, msg_size, nrounds, seconds, workers, sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
    static const char *names[4] = {"BASE tcp echo", "BASE websocket echo", "PROCESS tcp echo",
                                   "PROCESS websocket echo"};
    pid_t pids[4][MAXPIDS];
    int np[4] = {0}, ports[4];
    for (int i = 0; i < 4; i++) {
        ports[i] =
            start_server(i < 2 ? SWOOP_MODE_BASE : SWOOP_MODE_PROCESS, i & 1, pids[i], &np[i]);
        if (ports[i] < 0)
            return -1;
    }
    double rps[4][MAXROUNDS], cpu[4][MAXROUNDS];
    for (int k = 0; k < nrounds; k++) {
        for (int i = 0; i < 4; i++) {
            row_t r = measure(ports[i], i & 1, pids[i], np[i]);
            rps[i][k] = r.rps;
            cpu[i][k] = r.cpu_us;
        }
    }
    for (int i = 0; i < 4; i++)
        stop(pids[i][0]);
    double mr[4], mc[4];
    for (int i = 0; i < 4; i++) {
        mr[i] = median(rps[i], nrounds);
        mc[i] = median(cpu[i], nrounds);
    }
    printf("%-26s %14s %12s %12s %12s\n", "server (median of rounds)", "round trips/s", "cpu us/rt",
           "rt vs tcp", "cpu vs tcp");
    for (int i = 0; i < 4; i++) {
        int ref = i & ~1;
        printf("%-26s %14.0f %12.1f %12.2f %12.2f\n", names[i], mr[i], mc[i], mr[i] / mr[ref],
               mc[ref] > 0 ? mc[i] / mc[ref] : 0);
    }
    return 0;
}

/* Plain and compressed text echo, PROCESS, alternating rounds. */
static int deflate_bench(void)
{
    /* Plain and compressed text echo, PROCESS, alternating rounds. */
    pid_t zp[2][MAXPIDS];
    int znp[2] = {0}, zport[2];
    for (int i = 0; i < 2; i++)
        if ((zport[i] = start_server(SWOOP_MODE_PROCESS, 1 + i, zp[i], &znp[i])) < 0)
            return -1;
    double zr[2][MAXROUNDS], zc[2][MAXROUNDS];
    size_t wire[2] = {0, 0};
    for (int k = 0; k < nrounds; k++) {
        for (int i = 0; i < 2; i++) {
            row_t r = measure(zport[i], 2 + i, zp[i], znp[i]);
            zr[i][k] = r.rps;
            zc[i][k] = r.cpu_us;
            wire[i] = zreply_len;
        }
    }
    for (int i = 0; i < 2; i++)
        stop(zp[i][0]);
    printf("\nPROCESS websocket echo of %d-byte JSON text (median of %d rounds)\n", ztext, nrounds);
    printf("%-26s %14s %12s %12s %12s\n", "server", "round trips/s", "cpu us/rt", "reply bytes",
           "rt vs plain");
    static const char *zn[2] = {"plain", "permessage-deflate"};
    double m0 = median(zr[0], nrounds);
    for (int i = 0; i < 2; i++) {
        double m = i ? median(zr[i], nrounds) : m0;
        printf("%-26s %14.0f %12.1f %12zu %12.2f\n", zn[i], m, median(zc[i], nrounds), wire[i],
               m / m0);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "c:s:d:n:w:b:z:E")) != -1) {
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
        case 'b':
            bconns = atoi(optarg);
            break;
        case 'z':
            ztext = atoi(optarg);
            break;
        case 'E':
            no_echo = 1;
            break;
        default:
            fprintf(stderr, "usage: ws [-c conns] [-s size] [-d seconds] [-n rounds] [-w workers] "
                            "[-b broadcast_conns] [-z text_size] [-E]\n");
            return 2;
        }
    }
    if (conns < 1 || conns > 10000 || msg_size < 1 || msg_size > 65535 || seconds < 1 ||
        seconds > 60 || nrounds < 1 || nrounds > MAXROUNDS || workers < 1 || workers > 8 ||
        bconns < 0 || bconns > 60000 || ztext < 0 || ztext > 60000)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t want = (rlim_t)bconns * 2 + 1000;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < want) {
            bconns = (int)(rl.rlim_cur - 1000) / 2;
            fprintf(stderr, "ws: RLIMIT_NOFILE allows %d broadcast connections\n", bconns);
        }
    }
    bcast_ns = mmap(NULL, 2 * sizeof(*bcast_ns), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
    if (!no_echo && echo_bench() < 0)
        return 1;
    if (!no_echo && ztext > 0 && deflate_bench() < 0)
        return 1;
    if (bconns > 0) {
        printf("\nbroadcast of 64 bytes (median of %d rounds)\n", nrounds);
        printf("%-26s %8s %12s %12s %16s %16s\n", "server", "conns", "server cpu", "server ms",
               "first client ms", "last client ms");
        broadcast_bench(SWOOP_MODE_BASE, "BASE");
        broadcast_bench(SWOOP_MODE_PROCESS, "PROCESS");
        /* The reference: the same servers writing with one send() per connection. */
        uring_off = 1;
        broadcast_bench(SWOOP_MODE_BASE, "BASE, send() each");
        broadcast_bench(SWOOP_MODE_PROCESS, "PROCESS, send() each");
        uring_off = 0;
    }
    return 0;
}
