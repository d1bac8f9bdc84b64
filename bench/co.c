/*
 * Coroutines (issue 15). References measured in the same run: boost.context's
 * fcontext (Debian libboost-context-dev: jump_fcontext/make_fcontext, the
 * switch Swoole uses) and glibc's ucontext (swapcontext).
 *
 * 1. ns per switch: a ping-pong between the main context and one coroutine
 *    context, raw (no scheduler), for swoop's switch, fcontext and ucontext.
 * 2. create + run + finish of an empty coroutine with pooled stacks
 *    (swoop_co_go), and a channel round trip between two coroutines.
 * 3. HTTP hello (wrk, 1 worker) with enable_coroutine 0 and 1.
 * 4. 10,000 concurrent requests in one worker, each waiting 100 ms on a
 *    backend (swoop_co_connect/write/read): the time from the first request
 *    written to the last answer read (connections made beforehand).
 */
#include <swoop/co.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <swoop/http.h>
#include <swoop/log.h>
#include <swoop/server.h>

#include "co/internal.h"

/* boost.context's C-linkage entry points (boost/context/detail/fcontext.hpp). */
typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx;
    void *data;
} transfer_t;
transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

enum { SWITCHES = 10000000, UC_SWITCHES = 1000000, STACK = 64 * 1024 };

/* ---- 1. raw switches ---- */

static void *main_sp, *co_sp;

static void swoop_pingpong(void *arg)
{
    for (;;)
        swoop__co_switch(&co_sp, main_sp);
}

static double bench_swoop_switch(void)
{
    char *stack = malloc(STACK);
    co_sp = swoop__co_make(stack, STACK, swoop_pingpong, NULL);
    double t0 = now_ns();
    for (int i = 0; i < SWITCHES; i++)
        swoop__co_switch(&main_sp, co_sp);
    double ns = (now_ns() - t0) / (2.0 * SWITCHES);
    free(stack);
    return ns;
}

static void fctx_pingpong(transfer_t t)
{
    for (;;)
        t = jump_fcontext(t.fctx, NULL);
}

static double bench_fcontext(void)
{
    char *stack = malloc(STACK);
    fcontext_t f = make_fcontext(stack + STACK, STACK, fctx_pingpong);
    double t0 = now_ns();
    for (int i = 0; i < SWITCHES; i++)
        f = jump_fcontext(f, NULL).fctx;
    double ns = (now_ns() - t0) / (2.0 * SWITCHES);
    free(stack);
    return ns;
}

static ucontext_t uc_main, uc_co;

static void uc_pingpong(void)
{
    for (;;)
        swapcontext(&uc_co, &uc_main);
}

static double bench_ucontext(void)
{
    char *stack = malloc(STACK);
    getcontext(&uc_co);
    uc_co.uc_stack.ss_sp = stack;
    uc_co.uc_stack.ss_size = STACK;
    uc_co.uc_link = NULL;
    makecontext(&uc_co, uc_pingpong, 0);
    double t0 = now_ns();
    for (int i = 0; i < UC_SWITCHES; i++)
        swapcontext(&uc_main, &uc_co);
    double ns = (now_ns() - t0) / (2.0 * UC_SWITCHES);
    free(stack);
    return ns;
}

/* ---- 2. create + run + finish, channel round trip ---- */

static void empty(void *arg)
{
}

static double bench_create(int n)
{
    swoop_co_go(empty, NULL); /* the first maps the stack; the rest reuse it */
    double t0 = now_ns();
    for (int i = 0; i < n; i++)
        swoop_co_go(empty, NULL);
    return (now_ns() - t0) / n;
}

enum { ROUNDS = 1000000 };
static swoop_co_chan_t *ping, *pong;

static void echo_side(void *arg)
{
    void *v;
    while (swoop_co_chan_pop(ping, &v, -1) == 0)
        swoop_co_chan_push(pong, v, -1);
}

static double chan_ns;

static void chan_main(void *arg)
{
    swoop_co_go(echo_side, NULL);
    double t0 = now_ns();
    for (intptr_t i = 0; i < ROUNDS; i++) {
        void *v;
        swoop_co_chan_push(ping, (void *)i, -1);
        swoop_co_chan_pop(pong, &v, -1);
    }
    chan_ns = (now_ns() - t0) / ROUNDS;
    swoop_co_chan_close(ping);
}

/* ---- servers for 3 and 4 ---- */

static int backend_port;
enum { CONC = 10000 };

static void hello(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    if (req && strcmp(swoop_http_path(req), "/wait") == 0 && getenv("CO_BENCH_SLEEP")) {
        swoop_co_sleep(100);
        swoop_http_end(res, "ok\n", 3);
        return;
    }
    const char *path = req ? swoop_http_path(req) : "";
    int pooled = strcmp(path, "/wait") == 0;
    if (pooled || strcmp(path, "/wait-connect") == 0) {
        /* One request to the backend: on a pooled connection, or on a new one each time. */
        static swoop_co_pool_t *pool;
        if (pooled && pool == NULL) {
            swoop_co_pool_options_t o = {.max_idle = CONC, .check_after_ms = 1000};
            if (swoop_co_pool_new(&pool, "127.0.0.1", backend_port, &o) < 0)
                pooled = 0;
        }
        char buf[64];
        ssize_t n = -1;
        int fd = pooled ? swoop_co_pool_get(pool, 5000)
                        : swoop_co_connect("127.0.0.1", backend_port, 5000);
        if (fd >= 0) {
            if (swoop_co_write(fd, "x", 1, 5000) == 1)
                n = swoop_co_read(fd, buf, sizeof(buf), 5000);
            if (pooled)
                swoop_co_pool_put(pool, fd, n == 3);
            else
                close(fd);
        }
        if (n <= 0) {
            swoop_http_status(res, 502);
            swoop_http_end(res, "backend\n", 8);
            return;
        }
        swoop_http_end(res, buf, (size_t)n);
        return;
    }
    swoop_http_end(res, "hello\n", 6);
}

static pid_t start_server(int co, int *port)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        exit(1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        close(pfd[0]);
        swoop_log_set_level(SWOOP_LOG_ERROR);
        swoop_server_t *srv;
        swoop_port_t *p;
        if (swoop_server_new(&srv, SWOOP_MODE_PROCESS) < 0 ||
            swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &p) < 0 ||
            swoop_server_set(srv, "worker_num", "1") < 0 ||
            swoop_server_set(srv, "reactor_num", "1") < 0 ||
            swoop_server_set(srv, "enable_coroutine", co ? "1" : "0") < 0 ||
            swoop_port_set(p, "backlog", "65535") < 0 ||
            swoop_port_set(p, "open_http_protocol", "1") < 0 ||
            swoop_http_on_request(srv, hello) < 0)
            _exit(1);
        int n = swoop_port_number(p);
        if (write(pfd[1], &n, sizeof(n)) != (ssize_t)sizeof(n))
            _exit(1);
        close(pfd[1]);
        _exit(swoop_server_start(srv) == 0 ? 0 : 1);
    }
    setpgid(pid, pid);
    close(pfd[1]);
    if (read(pfd[0], port, sizeof(*port)) != (ssize_t)sizeof(*port))
        exit(1);
    close(pfd[0]);
    for (int tries = 0; tries < 5000; tries++) {
        swoop_server_stats_t st;
        if (swoop_server_stats_by_pid(pid, &st) == 0 && st.worker_num == 1 && st.workers[0].pid > 0)
            break;
        usleep(1000);
    }
    return pid;
}

static void stop_group(pid_t pid)
{
    kill(-pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static double wrk_rps(int port)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "wrk -t1 -c64 -d2s http://127.0.0.1:%d/hello 2>&1", port);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return 0;
    char line[512];
    double rps = 0;
    while (fgets(line, sizeof(line), f))
        sscanf(line, "Requests/sec: %lf", &rps);
    pclose(f);
    return rps;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void warm_one(void *arg)
{
    swoop_co_sleep(1);
}

static void warm_main(void *arg)
{
    for (int i = 0; i < CONC; i++)
        swoop_co_go(warm_one, NULL);
}

/* The backend: a coroutine server that answers each request after 100 ms. */
static void be_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    /* A request at a time; the connection stays for the next (pooled) or ends (connect). */
    while (swoop_co_read(fd, &c, 1, -1) == 1) {
        swoop_co_sleep(100);
        if (swoop_co_write(fd, "ok\n", 3, 10000) != 3)
            break;
    }
    close(fd);
}

static void be_accept(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        if (swoop_co_wait_fd(lfd, SWOOP_READABLE, -1) < 0)
            return;
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
            swoop_co_go(be_conn, (void *)(intptr_t)c);
    }
}

static pid_t start_backend(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 65535) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &l) < 0)
        exit(1);
    backend_port = ntohs(a.sin_port);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* The backend is scenery: its stacks are made before the clock starts. */
        swoop_co_options_t o = {.stack_size = 64 * 1024, .pool_max = 2 * CONC};
        swoop_co_set_options(&o);
        swoop_co_run(warm_main, NULL);
        swoop_co_run(be_accept, (void *)(intptr_t)lfd);
        _exit(0);
    }
    close(lfd);
    return pid;
}

/* ---- 4. the client: 10,000 coroutines, one connection each ---- */

static int conc_ok;
static int conc_fds[CONC];
static swoop_co_wg_t *conc_wg;
static double conc_first, conc_last;

/* Whether buf holds a whole response: the head and Content-Length bytes of body. */
static int response_complete(const char *buf, size_t got)
{
    const char *end = memmem(buf, got, "\r\n\r\n", 4);
    const char *cl = memmem(buf, got, "Content-Length: ", 16);
    if (end == NULL || cl == NULL || cl > end)
        return 0;
    size_t body = strtoul(cl + 16, NULL, 10);
    return got >= (size_t)(end + 4 - buf) + body;
}

static const char *conc_path = "/wait";

static void conc_one(void *arg)
{
    int fd = conc_fds[(intptr_t)arg];
    char req[128];
    int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", conc_path);
    char buf[512];
    if (swoop_co_write(fd, req, (size_t)len, 10000) == len) {
        size_t got = 0;
        ssize_t n;
        while (got < sizeof(buf) - 1 &&
               (n = swoop_co_read(fd, buf + got, sizeof(buf) - 1 - got, 10000)) > 0) {
            got += (size_t)n;
            if (response_complete(buf, got))
                break;
        }
        buf[got] = 0;
        if (strstr(buf, "200 OK") && strstr(buf, "ok\n"))
            conc_ok++;
        double t = now_ns();
        if (conc_first == 0)
            conc_first = t;
        conc_last = t;
    }
    swoop_co_wg_done(conc_wg);
}

static double conc_s, conc_t0;

static void conc_main(void *arg)
{
    swoop_co_wg_new(&conc_wg);
    double t0 = now_ns();
    conc_t0 = t0;
    for (intptr_t i = 0; i < CONC; i++) {
        swoop_co_wg_add(conc_wg, 1);
        swoop_co_go(conc_one, (void *)i);
    }
    swoop_co_wg_wait(conc_wg, 60000);
    conc_s = (now_ns() - t0) / 1e9;
    swoop_co_wg_free(conc_wg);
}

static void http_hello(void);
static void concurrent(void);

/* CPU time (user + system, all threads) a process has used, in ms. */
static double cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* After the name: state is field 3, utime 14, stime 15. */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "--conc") == 0) {
        concurrent();
        return 0;
    }
    printf("context switch, ns per switch (best of 3; ratio = swoop / fcontext)\n");
    double sw = 1e9, fc = 1e9, uc = 1e9;
    for (int r = 0; r < 3; r++) {
        double a = bench_swoop_switch(), b = bench_fcontext(), c = bench_ucontext();
        sw = a < sw ? a : sw;
        fc = b < fc ? b : fc;
        uc = c < uc ? c : uc;
    }
    printf("%-28s %8.2f\n%-28s %8.2f\n%-28s %8.2f\n%-28s %8.2f\n", "swoop (asm)", sw,
           "boost fcontext", fc, "ucontext (swapcontext)", uc, "ratio swoop/fcontext", sw / fc);

    double cr = 1e9;
    for (int r = 0; r < 3; r++) {
        double x = bench_create(1000000);
        cr = x < cr ? x : cr;
    }
    swoop_co_chan_new(&ping, 0);
    swoop_co_chan_new(&pong, 0);
    swoop_co_run(chan_main, NULL);
    printf("\ncoroutines, ns per operation (best of 3)\n");
    printf("%-40s %8.1f   (goal <= 150)\n", "swoop_co_go: create + run + finish", cr);
    printf("%-40s %8.1f\n", "channel round trip (cap 0, 2 coroutines)", chan_ns);

    if (argc > 1 && strcmp(argv[1], "--no-server") == 0)
        return 0;

    int conc_only = argc > 1 && strcmp(argv[1], "--conc") == 0;
    if (!conc_only)
        http_hello();
    concurrent();
    return 0;
}

static void http_hello(void)
{
    printf("\nHTTP hello, 1 worker, wrk -c64 -d2s, requests/s (median of 3, alternating)\n");
    double off[3], on[3];
    for (int r = 0; r < 3; r++) {
        for (int co = 0; co < 2; co++) {
            int port;
            pid_t pid = start_server(co, &port);
            double rps = wrk_rps(port);
            stop_group(pid);
            (co ? on : off)[r] = rps;
        }
    }
    qsort(off, 3, sizeof(double), cmp_d);
    qsort(on, 3, sizeof(double), cmp_d);
    printf("%-28s %10.0f\n%-28s %10.0f\n%-28s %10.2f   (goal >= 0.9)\n", "enable_coroutine 0",
           off[1], "enable_coroutine 1", on[1], "ratio on/off", off[1] > 0 ? on[1] / off[1] : 0);
}

static void concurrent(void)
{
    /* Backend and server are forked first: forked after the client's pool is
     * warm, they would inherit its 10,000 stacks (and unmap them all when
     * they set their own options, one TLB flush each), and every page of
     * the client's stacks would be copy-on-write, a fault per page when a
     * client coroutine touches it. */
    pid_t be = start_backend();
    int port;
    pid_t pid = start_server(1, &port);
    /* The client's own 10,000 stacks are made beforehand, so what is timed is the
     * server (the client shares the 2 cores with it). */
    swoop_co_options_t o = {.stack_size = 64 * 1024, .pool_max = 2 * CONC};
    swoop_co_set_options(&o);
    swoop_co_run(warm_main, NULL);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    pid_t worker = 0;
    swoop_server_stats_t st;
    if (swoop_server_stats_by_pid(pid, &st) == 0)
        worker = st.workers[0].pid;
    printf("\n%d concurrent requests, each waiting 100 ms on a backend, 1 worker\n", CONC);
    /* Keep-alive client connections, made once before the clock starts. */
    int made = 0;
    for (int i = 0; i < CONC; i++) {
        conc_fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (conc_fds[i] < 0 || connect(conc_fds[i], (struct sockaddr *)&a, sizeof(a)) < 0)
            break;
        made++;
    }
    static const struct {
        const char *path, *what;
    } rounds[] = {
        {"/wait", "round 1, pooled backend connections (server stacks and pool new)"},
        {"/wait", "round 2, pooled backend connections (stacks and pool warm)"},
        {"/wait-connect", "round 3, a backend connect + close per request (stacks warm)"},
    };
    for (size_t round = 0; made == CONC && round < sizeof(rounds) / sizeof(rounds[0]); round++) {
        conc_ok = 0;
        conc_first = 0;
        conc_path = rounds[round].path;
        pid_t who[4] = {getpid(), pid, worker, be};
        double before[4];
        for (int k = 0; k < 4; k++)
            before[k] = cpu_ms(who[k]);
        swoop_co_run(conc_main, NULL);
        printf("%s:\n  all %d answered (%d with the backend's) in %.3f s (goal < 0.5); "
               "first answer after %.3f s\n",
               rounds[round].what, CONC, conc_ok, conc_s, (conc_first - conc_t0) / 1e9);
        /* Where the two cores went (the master's CPU is its reactor thread). */
        printf("  CPU ms: client %.0f, master %.0f, worker %.0f, backend %.0f\n",
               cpu_ms(who[0]) - before[0], cpu_ms(who[1]) - before[1], cpu_ms(who[2]) - before[2],
               cpu_ms(who[3]) - before[3]);
    }
    if (made < CONC)
        printf("only %d of %d connections could be made (ulimit -n?)\n", made, CONC);
    for (int i = 0; i < made; i++)
        close(conc_fds[i]);
    stop_group(pid);
    kill(be, SIGKILL);
    waitpid(be, NULL, 0);
}
