/*
 * TLS benchmark (issue 13): swoop (BASE and PROCESS) against nginx (Debian
 * nginx-light), the same ECDSA P-256 certificate, the same OpenSSL, TLS 1.3
 * with its default suite, the same number of server processes (2 workers;
 * nginx worker_processes 2), measured in alternating rounds (nginx, BASE,
 * PROCESS, nginx, ...) so a noisy moment hits a sample of every row:
 *   - HTTPS hello over keep-alive: wrk -t1 -c64, requests per second;
 *   - full handshakes per second: `openssl s_time -new` (one client, a new
 *     connection and a full handshake each, no request);
 *   - resumed handshakes per second: `openssl s_time -reuse` (tickets).
 * Medians of the rounds and their ratio to nginx's.
 *
 *   tls [-d seconds] [-n rounds] [-w workers]
 *   defaults: 2 s per sample, 3 rounds, 2 workers
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/http.h>
#include <swoop/log.h>
#include <swoop/server.h>

static int seconds = 2, nrounds = 3, workers = 2;
static char dir[] = "/tmp/swoop-bench-tls.XXXXXX";

static void hello(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    (void)srv;
    (void)req;
    swoop_http_end(res, "hello\n", 6);
}

/* A swoop HTTPS server on 127.0.0.1:port in `mode`, in a process group of its own. */
static pid_t start_swoop(swoop_mode_t mode, int port)
{
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0)
            setpgid(pid, pid);
        return pid;
    }
    setpgid(0, 0);
    swoop_log_set_level(SWOOP_LOG_WARNING);
    char cert[256], key[256], n[16];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(n, sizeof(n), "%d", workers);
    swoop_server_t *srv;
    swoop_port_t *p;
    if (swoop_server_new(&srv, mode) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", port, SWOOP_SOCK_TCP | SWOOP_SSL, &p) < 0 ||
        swoop_server_set(srv, "worker_num", n) < 0 || swoop_server_set(srv, "reactor_num", n) < 0 ||
        swoop_server_set(srv, "open_http_protocol", "1") < 0 ||
        swoop_server_set(srv, "http_keepalive_timeout", "600") < 0 ||
        swoop_server_set(srv, "ssl_cert_file", cert) < 0 ||
        swoop_server_set(srv, "ssl_key_file", key) < 0 || swoop_http_on_request(srv, hello) < 0)
        _exit(1);
    _exit(swoop_server_start(srv) == 0 ? 0 : 1);
}

static pid_t start_nginx(int port)
{
    char conf[512];
    snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "daemon off; master_process on; worker_processes %d; pid %s/nginx.pid;\n"
            "error_log %s/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http { access_log off; keepalive_requests 1000000; keepalive_timeout 600;\n"
            "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
            "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
            "  server { listen 127.0.0.1:%d ssl; ssl_certificate %s/cert.pem;\n"
            "    ssl_certificate_key %s/key.pem; ssl_protocols TLSv1.2 TLSv1.3;\n"
            "    ssl_session_tickets on;\n"
            "    location / { default_type text/plain; return 200 \"hello\\n\"; } } }\n",
            workers, dir, dir, dir, dir, dir, dir, dir, port, dir, dir);
    fclose(f);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/usr/sbin/nginx", "nginx", "-c", conf, "-p", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        setpgid(pid, pid);
    return pid;
}

/* The first number after `key` in the output of `cmd`, or -1. */
static double run_number(const char *cmd, const char *key)
{
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    char line[1024];
    double v = -1;
    while (fgets(line, sizeof(line), f)) {
        char *p = strstr(line, key);
        if (p && v < 0)
            v = atof(p + strlen(key));
    }
    pclose(f);
    return v;
}

/* Waits until a TLS handshake with the port succeeds (at most 5 s). */
static int wait_up(int port)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "echo | timeout 2 openssl s_client -connect 127.0.0.1:%d >/dev/null 2>&1", port);
    for (int i = 0; i < 100; i++) {
        if (system(cmd) == 0)
            return 0;
        usleep(50000);
    }
    return -1;
}

static double keepalive(int port)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "wrk -t1 -c64 -d%ds https://127.0.0.1:%d/ 2>/dev/null", seconds,
             port);
    return run_number(cmd, "Requests/sec:");
}

/* s_time: "N connections in T real seconds"; connections per real second. */
static double handshakes(int port, int reuse)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "openssl s_time -connect 127.0.0.1:%d %s -time %d 2>/dev/null | grep 'real seconds'",
             port, reuse ? "-reuse" : "-new", seconds);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    long n = 0;
    double t = 0;
    char line[512];
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%ld connections in %lf real seconds", &n, &t) == 2)
            break;
    pclose(f);
    return t > 0 ? (double)n / t : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "d:n:w:")) != -1) {
        if (opt == 'd')
            seconds = atoi(optarg);
        else if (opt == 'n')
            nrounds = atoi(optarg);
        else if (opt == 'w')
            workers = atoi(optarg);
        else
            return 2;
    }
    if (nrounds < 1 || nrounds > 16 || seconds < 1 || workers < 1)
        return 2;
    if (access("/usr/sbin/nginx", X_OK) != 0 || system("wrk -v >/dev/null 2>&1") == 127) {
        printf("tls: nginx or wrk missing (scripts/install-deps.sh bench): skipped\n");
        return 0;
    }
    if (mkdtemp(dir) == NULL)
        return 1;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout key.pem -out cert.pem -days 30 -subj /CN=localhost 2>/dev/null",
             dir);
    if (system(cmd) != 0)
        return 1;
    enum { NGINX, BASE, PROC, SERVERS };
    const char *names[SERVERS] = {"nginx", "swoop BASE", "swoop PROCESS"};
    int ports[SERVERS] = {18443, 18444, 18445};
    pid_t pids[SERVERS] = {start_nginx(ports[NGINX]), start_swoop(SWOOP_MODE_BASE, ports[BASE]),
                           start_swoop(SWOOP_MODE_PROCESS, ports[PROC])};
    int ok = 1;
    for (int s = 0; s < SERVERS; s++)
        if (pids[s] <= 0 || wait_up(ports[s]) < 0) {
            printf("tls: %s did not start\n", names[s]);
            ok = 0;
        }
    double v[3][SERVERS][16];
    for (int r = 0; ok && r < nrounds; r++)
        for (int s = 0; s < SERVERS; s++) {
            v[0][s][r] = keepalive(ports[s]);
            v[1][s][r] = handshakes(ports[s], 0);
            v[2][s][r] = handshakes(ports[s], 1);
        }
    if (ok) {
        const char *rows[3] = {"HTTPS hello keep-alive req/s (wrk -c64)",
                               "full handshakes/s (ECDSA P-256, s_time -new)",
                               "resumed handshakes/s (tickets, s_time -reuse)"};
        printf("TLS, %d workers each, median of %d rounds of %d s (ratio: swoop / nginx)\n",
               workers, nrounds, seconds);
        printf("%-46s %10s %10s %10s %7s %7s\n", "", "nginx", "BASE", "PROCESS", "BASE", "PROC");
        for (int k = 0; k < 3; k++) {
            double m[SERVERS];
            for (int s = 0; s < SERVERS; s++)
                m[s] = median(v[k][s], nrounds);
            printf("%-46s %10.0f %10.0f %10.0f %7.2f %7.2f\n", rows[k], m[NGINX], m[BASE], m[PROC],
                   m[BASE] / m[NGINX], m[PROC] / m[NGINX]);
        }
    }
    for (int s = 0; s < SERVERS; s++) {
        if (pids[s] > 0) {
            kill(-pids[s], SIGTERM);
            waitpid(pids[s], NULL, 0);
        }
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return ok ? 0 : 1;
}
