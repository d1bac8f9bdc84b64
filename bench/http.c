/*
 * HTTP benchmark (issue 11): wrk (Debian) against swoop BASE, swoop PROCESS
 * and nginx (Debian nginx-light, `return 200`), each with the same number of
 * server processes, 64 keep-alive connections, a 6-byte "hello\n" response.
 * The servers start once and are measured in alternating rounds (nginx,
 * BASE, PROCESS, nginx, ...), so a noisy moment hits one sample of every
 * row. Each row prints the median requests per second and the servers' CPU
 * microseconds per request (user + system of every process in the server's
 * process group, from /proc), and both as ratios to nginx's medians.
 *
 *   http [-c connections] [-d seconds] [-n rounds] [-w workers]
 *   defaults: 64 connections, 2 s per sample, 3 rounds, 2 workers
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swoop/http.h>
#include <swoop/log.h>
#include <swoop/server.h>

#define ROWS 3

static int conns = 64, seconds = 2, nrounds = 3, workers = 2;

static void hello(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    swoop_http_end(res, "hello\n", 6);
}

/* Starts swoop in `mode` in its own process group; returns the pid, sets *port. */
static pid_t start_swoop(swoop_mode_t mode, int *port)
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
        char w[16];
        snprintf(w, sizeof(w), "%d", workers);
        if (swoop_server_new(&srv, mode) < 0 ||
            swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &p) < 0 ||
            swoop_server_set(srv, "worker_num", w) < 0 ||
            swoop_server_set(srv, "reactor_num", mode == SWOOP_MODE_PROCESS ? "1" : "0") < 0 ||
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
static pid_t start_nginx(const char *dir, int port)
{
    char conf[512];
    snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "daemon off; master_process on; worker_processes %d; pid %s/nginx.pid;\n"
            "error_log %s/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http { access_log off; keepalive_requests 100000;\n"
            "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
            "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
            "  server { listen 127.0.0.1:%d; location / { default_type text/plain;\n"
            "    return 200 \"hello\\n\"; } } }\n",
            workers, dir, dir, dir, dir, dir, dir, dir, port);
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

/* One wrk sample; returns requests per second, *cpu_us the server CPU per request. */
static double sample(int port, pid_t pgid, double *cpu_us)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "wrk -t1 -c%d -d%ds http://127.0.0.1:%d/hello 2>&1", conns, seconds,
             port);
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

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "c:d:n:w:")) != -1) {
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
        default:
            fprintf(stderr, "usage: http [-c conns] [-d s] [-n rounds] [-w workers]\n");
            return 2;
        }
    }
    if (access("/usr/bin/wrk", X_OK) != 0 || access("/usr/sbin/nginx", X_OK) != 0) {
        printf(
            "http: skipped (wrk or nginx missing: scripts/install-deps.sh bench installs them)\n");
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/swoop-bench-nginx.XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    int ports[ROWS];
    pid_t pids[ROWS];
    const char *names[ROWS] = {"nginx (return 200)", "swoop BASE", "swoop PROCESS"};
    pids[1] = start_swoop(SWOOP_MODE_BASE, &ports[1]);
    pids[2] = start_swoop(SWOOP_MODE_PROCESS, &ports[2]);
    ports[0] = free_port();
    pids[0] = start_nginx(dir, ports[0]);
    usleep(300000); /* nginx says nothing when it is ready: give it its start-up */
    printf("%d server processes each, %d keep-alive connections, wrk -t1, %d rounds of %d s\n",
           workers, conns, nrounds, seconds);
    double rps[ROWS][16], cpu[ROWS][16];
    if (nrounds > 16)
        nrounds = 16;
    for (int r = 0; r < nrounds; r++) {
        for (int i = 0; i < ROWS; i++)
            rps[i][r] = sample(ports[i], pids[i], &cpu[i][r]);
    }
    double ref_rps = 0, ref_cpu = 0;
    printf("%-22s %12s %12s %10s %10s\n", "server (median)", "requests/s", "cpu us/req",
           "rps ratio", "cpu ratio");
    for (int i = 0; i < ROWS; i++) {
        double m = median(rps[i], nrounds), c = median(cpu[i], nrounds);
        if (i == 0) {
            ref_rps = m;
            ref_cpu = c;
        }
        printf("%-22s %12.0f %12.2f %10.2f %10.2f\n", names[i], m, c, ref_rps > 0 ? m / ref_rps : 0,
               ref_cpu > 0 ? c / ref_cpu : 0);
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
