/*
 * HTTP benchmark (issue 11): wrk (Debian) against swoop BASE, swoop PROCESS
 * and nginx (Debian nginx-light), each with the same number of server
 * processes and 64 connections, in four cases: a 6-byte "hello\n" from
 * the handler (nginx: `return 200`) over keep-alive, and a 1 MiB static
 * file (swoop's static handler; nginx with sendfile and tcp_nopush on) over
 * keep-alive and with `Connection: close`; hello with `Connection: close`
 * too (a connection per request). The servers start once and are
 * measured in alternating rounds (nginx, BASE, PROCESS, nginx, ...), so a
 * noisy moment hits one sample of every row. Each row prints the median
 * requests per second and the servers' CPU microseconds per request (user
 * + system of every process in the server's process group, from /proc),
 * and both as ratios to nginx's medians.
 *
 * Then the cost of idle keep-alive connections: `-i` connections (10,000)
 * each make one request and stay open; the growth of the resident memory
 * of all the server's processes (/proc/PID/statm), divided by their count.
 *
 *   http [-c connections] [-d seconds] [-n rounds] [-w workers] [-i idle] [-m]
 *   defaults: 64 connections, 2 s per sample, 3 rounds, 2 workers, 10000 idle
 *   -n 0: only the idle connections' cost
 *
 * Then the metrics' cost: hello over keep-alive against BASE and PROCESS
 * with metrics on (the default) and off (enable_metrics 0), alternating
 * rounds; the ratio on / off (goal >= 0.97). `-m` runs only this part.
 *
 * wrk runs on the same machine with one thread; every row pays that alike.
 * Skipped (with a note) when wrk or nginx is missing: `make bench` installs
 * both (scripts/install-deps.sh bench).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swoop/http.h>
#include <swoop/log.h>
#include <swoop/server.h>

#define ROWS 4

static int conns = 64, seconds = 2, nrounds = 3, workers = 2, idle = 10000;
static int metrics_off;  /* start_swoop: enable_metrics 0 */
static int metrics_only; /* -m: only the metrics on / off comparison */

/* The directory nginx runs in; static/big.bin (1 MiB) is the file both servers serve. */
static char dir[] = "/tmp/swoop-bench-nginx.XXXXXX";

static void hello(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    swoop_http_end(res, "hello\n", 6);
}

/*
 * Starts swoop in `mode` in its own process group (PROCESS: with `reactors`
 * reactor threads); returns the pid, sets *port.
 */
static pid_t start_swoop(swoop_mode_t mode, int reactors, int *port)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        exit(1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        close(pfd[0]);
        swoop_log_set_level(SWOOP_LOG_WARNING);
        swoop_server_t *srv;
        swoop_port_t *p;
        char w[16], rn[16];
        snprintf(w, sizeof(w), "%d", workers);
        snprintf(rn, sizeof(rn), "%d", reactors);
        if (swoop_server_new(&srv, mode) < 0 ||
            swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &p) < 0 ||
            swoop_server_set(srv, "worker_num", w) < 0 ||
            swoop_server_set(srv, "reactor_num", mode == SWOOP_MODE_PROCESS ? rn : "0") < 0 ||
            swoop_server_set(srv, "enable_metrics", metrics_off ? "0" : "1") < 0 ||
            swoop_port_set(p, "open_http_protocol", "1") < 0 ||
            swoop_port_set(p, "enable_static_handler", "1") < 0 ||
            swoop_port_set(p, "document_root", dir) < 0 ||
            /* Only /static is looked up on disk: /hello goes straight to the handler. */
            swoop_port_set(p, "static_handler_locations", "/static") < 0 ||
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

/* Starts nginx (master + `workers` workers, its own group) on a free port; returns its pid. */
static pid_t start_nginx(int port)
{
    char conf[512];
    snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "daemon off; master_process on; worker_processes %d; pid %s/nginx.pid;\n"
            "error_log %s/error.log warn; worker_rlimit_nofile %d;\n"
            "events { worker_connections %d; }\n"
            "http { access_log off; keepalive_requests 100000; sendfile on; tcp_nopush on;\n"
            "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
            "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
            "  server { listen 127.0.0.1:%d; location / { default_type text/plain;\n"
            "    return 200 \"hello\\n\"; }\n"
            "    location /static/ { root %s; } } }\n",
            workers, dir, dir, idle + 1024, idle + 1024, dir, dir, dir, dir, dir, port, dir);
    fclose(f);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/usr/sbin/nginx", "nginx", "-c", conf, "-p", dir, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

/* A port the kernel just handed out (bound to port 0, then closed): free for nginx. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &sl) < 0)
        exit(1);
    close(fd);
    return ntohs(a.sin_port);
}

/* CPU ticks (user + system) of every process in group `pgid`. */
static long long group_ticks(pid_t pgid)
{
    long long sum = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[1024];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (p == NULL)
            continue;
        /* After ')': state ppid pgrp ... utime (14th field) stime (15th). */
        char st;
        int ppid, pgrp;
        unsigned long long ut, stt;
        if (sscanf(p + 2, "%c %d %d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &st, &ppid, &pgrp,
                   &ut, &stt) == 5 &&
            pgrp == pgid)
            sum += (long long)(ut + stt);
    }
    closedir(d);
    return sum;
}

/* One wrk sample of `path`; returns requests per second, *cpu_us the server CPU per request. */
static double sample(int port, pid_t pgid, const char *path, int close_each, double *cpu_us)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "wrk -t1 -c%d -d%ds %s http://127.0.0.1:%d%s 2>&1", conns, seconds,
             close_each ? "-H 'Connection: close'" : "", port, path);
    long long t0 = group_ticks(pgid);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return 0;
    char line[512];
    double rps = 0;
    long long reqs = 0;
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, " %lld requests in", &reqs);
        sscanf(line, "Requests/sec: %lf", &rps);
    }
    pclose(f);
    long long t1 = group_ticks(pgid);
    *cpu_us = reqs > 0 ? (double)(t1 - t0) * 1e6 / (double)sysconf(_SC_CLK_TCK) / (double)reqs : 0;
    return rps;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Resident bytes of every process in group `pgid`. */
static long long group_rss(pid_t pgid)
{
    long long sum = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        pid_t pid = atoi(e->d_name);
        if (getpgid(pid) != pgid)
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/statm", e->d_name);
        FILE *f = fopen(path, "r");
        long long size, res;
        if (f && fscanf(f, "%lld %lld", &size, &res) == 2)
            sum += res * sysconf(_SC_PAGESIZE);
        if (f)
            fclose(f);
    }
    closedir(d);
    return sum;
}

/*
 * `idle` keep-alive connections, each after one answered request: the
 * growth of the group's resident memory per connection (bytes), or -1.
 */
static double idle_cost(int port, pid_t pgid)
{
    int *fds = calloc((size_t)idle, sizeof(int));
    if (fds == NULL)
        return -1;
    usleep(200000);
    long long before = group_rss(pgid);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    int n = 0;
    for (; n < idle; n++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
            if (fd >= 0)
                close(fd);
            break;
        }
        fds[n] = fd;
        /* The whole answer (it ends with the 6-byte body), with a 5 s bound. */
        char buf[1024];
        size_t got = 0;
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while (got < 6 || memcmp(buf + got - 6, "hello\n", 6) != 0) {
            ssize_t k = read(fd, buf + got, sizeof(buf) - got);
            if (k <= 0 || got + (size_t)k >= sizeof(buf))
                break;
            got += (size_t)k;
        }
        if (got < 6 || memcmp(buf + got - 6, "hello\n", 6) != 0) {
            n++;
            break;
        }
    }
    usleep(500000); /* the owners settle (their reads of the request done) */
    long long after = group_rss(pgid);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    if (n < idle) {
        printf("  (only %d of %d connections were answered)\n", n, idle);
        return -1;
    }
    return (double)(after - before) / n;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "c:d:n:w:i:m")) != -1) {
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
            idle = atoi(optarg);
            break;
        case 'm':
            metrics_only = 1;
            break;
        default:
            fprintf(stderr,
                    "usage: http [-c conns] [-d s] [-n rounds] [-w workers] [-i idle] [-m]\n");
            return 2;
        }
    }
    if (access("/usr/bin/wrk", X_OK) != 0 || access("/usr/sbin/nginx", X_OK) != 0) {
        printf(
            "http: skipped (wrk or nginx missing: scripts/install-deps.sh bench installs them)\n");
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    /* The idle connections: the client's fds here, the servers' (inherited) there. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)idle + 1024) {
        idle = (int)rl.rlim_cur - 1024;
        printf("RLIMIT_NOFILE %llu: %d idle connections\n", (unsigned long long)rl.rlim_cur, idle);
    }
    if (mkdtemp(dir) == NULL)
        return 1;
    char path[600];
    snprintf(path, sizeof(path), "%s/static", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/static/big.bin", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; f && i < 1024 * 1024; i++)
        fputc("0123456789abcdef"[(i * 7) & 15], f);
    if (f == NULL || fclose(f) != 0)
        return 1;
    int ports[ROWS];
    pid_t pids[ROWS];
    /*
     * PROCESS answers static files in its reactor threads: with one, a
     * single thread writes every file while nginx writes with `workers`
     * processes; the last row gives it as many.
     */
    const char *names[ROWS] = {"nginx", "swoop BASE", "swoop PROCESS", "swoop PROCESS 2 reactors"};
    pids[1] = start_swoop(SWOOP_MODE_BASE, 0, &ports[1]);
    pids[2] = start_swoop(SWOOP_MODE_PROCESS, 1, &ports[2]);
    pids[3] = start_swoop(SWOOP_MODE_PROCESS, workers, &ports[3]);
    ports[0] = free_port();
    pids[0] = start_nginx(ports[0]);
    usleep(300000); /* nginx says nothing when it is ready: give it its start-up */
    printf("%d server processes each, %d connections, wrk -t1, %d rounds of %d s\n", workers, conns,
           nrounds, seconds);
    static const struct {
        const char *title, *path;
        int close_each;
    } cases[] = {
        {"hello (handler; nginx return 200), keep-alive", "/hello", 0},
        /* A new connection per request: the accept path (BASE: the shared socket's balance). */
        {"hello, Connection: close", "/hello", 1},
        {"1 MiB static file, keep-alive", "/static/big.bin", 0},
        {"1 MiB static file, Connection: close", "/static/big.bin", 1},
    };
    if (nrounds > 16)
        nrounds = 16;
    for (size_t k = 0; nrounds > 0 && !metrics_only && k < sizeof(cases) / sizeof(cases[0]); k++) {
        double rps[ROWS][16], cpu[ROWS][16];
        for (int r = 0; r < nrounds; r++) {
            for (int i = 0; i < ROWS; i++)
                rps[i][r] =
                    sample(ports[i], pids[i], cases[k].path, cases[k].close_each, &cpu[i][r]);
        }
        double ref_rps = 0, ref_cpu = 0;
        printf("\n%s\n%-24s %12s %12s %10s %10s\n", cases[k].title, "server (median)", "requests/s",
               "cpu us/req", "rps ratio", "cpu ratio");
        for (int i = 0; i < ROWS; i++) {
            double m = median(rps[i], nrounds), c = median(cpu[i], nrounds);
            if (i == 0) {
                ref_rps = m;
                ref_cpu = c;
            }
            printf("%-24s %12.0f %12.2f %10.2f %10.2f\n", names[i], m, c,
                   ref_rps > 0 ? m / ref_rps : 0, ref_cpu > 0 ? c / ref_cpu : 0);
        }
    }
    /* Metrics on (rows 1, 2 above) against off, hello, in alternating rounds. */
    metrics_off = 1;
    int offp[2];
    pid_t offpid[2];
    offpid[0] = start_swoop(SWOOP_MODE_BASE, 0, &offp[0]);
    offpid[1] = start_swoop(SWOOP_MODE_PROCESS, 1, &offp[1]);
    metrics_off = 0;
    if (nrounds > 0) {
        double on[2][16], off[2][16], con[2][16], coff[2][16];
        for (int r = 0; r < nrounds; r++) {
            for (int m = 0; m < 2; m++) {
                /* Which goes first alternates too: neither always follows the other. */
                if (r % 2 == 0) {
                    on[m][r] = sample(ports[1 + m], pids[1 + m], "/hello", 0, &con[m][r]);
                    off[m][r] = sample(offp[m], offpid[m], "/hello", 0, &coff[m][r]);
                } else {
                    off[m][r] = sample(offp[m], offpid[m], "/hello", 0, &coff[m][r]);
                    on[m][r] = sample(ports[1 + m], pids[1 + m], "/hello", 0, &con[m][r]);
                }
            }
        }
        printf("\nhello, keep-alive: metrics on (default) against off (enable_metrics 0)\n"
               "%-24s %12s %12s %10s %12s %12s %10s\n",
               "server (median)", "on req/s", "off req/s", "on / off", "on cpu us", "off cpu us",
               "on / off");
        for (int m = 0; m < 2; m++) {
            double a = median(on[m], nrounds), b = median(off[m], nrounds);
            double ca = median(con[m], nrounds), cb = median(coff[m], nrounds);
            printf("%-24s %12.0f %12.0f %10.3f %12.2f %12.2f %10.3f\n", names[1 + m], a, b,
                   b > 0 ? a / b : 0, ca, cb, cb > 0 ? ca / cb : 0);
        }
    }
    for (int m = 0; m < 2; m++) {
        kill(-offpid[m], SIGTERM);
        waitpid(offpid[m], NULL, 0);
    }
    if (!metrics_only && idle > 0) {
        printf("\n%d idle keep-alive connections (one request each): resident memory growth of "
               "all the server's processes\n%-24s %12s\n",
               idle, "server", "bytes/conn");
        for (int i = 0; i < ROWS; i++)
            printf("%-24s %12.0f\n", names[i], idle_cost(ports[i], pids[i]));
    }
    for (int i = 0; i < ROWS; i++) {
        kill(-pids[i], SIGTERM);
        waitpid(pids[i], NULL, 0);
    }
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "http: could not remove %s\n", dir);
    return 0;
}
