/*
 * TLS: swoop's HTTPS ports (SWOOP_SOCK_TCP | SWOOP_SSL) against nginx
 * (Debian nginx-light) with the same ECDSA P-256 certificate, the same
 * protocols (TLS 1.2 and 1.3: clients get 1.3, cipher TLS_AES_256_GCM_SHA384
 * on both) and the same number of server processes (workers).
 *
 * Rows: nginx, BASE, PROCESS with one reactor thread per worker, and
 * PROCESS with one reactor thread (on 2 cores, 2 reactor threads and 2
 * workers oversubscribe them; bench/http shows the same for plain HTTP).
 * Three figures, in alternating rounds (nginx, BASE, PROCESS, ..., nginx, ...),
 * medians printed with their ratio to nginx's median of the same run:
 *   - hello over keep-alive HTTPS: wrk -t1 (wrk speaks TLS through OpenSSL);
 *   - full handshakes per second: `clients` processes of our own client
 *     (OpenSSL) each connect, handshake, send one GET with Connection: close,
 *     read the answer and close, in a loop, never offering a session;
 *   - resumed handshakes per second: the same, each offering the session
 *     (TLS 1.3 ticket) its previous connection received; the share of
 *     connections the server really resumed is printed with it.
 * The clients share the 2 cores with the servers, as wrk does in bench/http:
 * a ratio, not an absolute, is what this machine can measure.
 *
 * Options: -d seconds per sample (2), -n rounds (3), -w workers (2),
 * -c wrk connections (64), -k handshake client processes (2).
 * Skipped (with a note) when wrk, nginx or openssl is missing.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <swoop/http.h>
#include <swoop/server.h>
#include <swoop/log.h>

#define ROWS 4

static int conns = 64, seconds = 2, nrounds = 3, workers = 2, clients = 2;

/* The directory nginx runs in; cert.pem and key.pem are what both servers present. */
static char dir[] = "/tmp/swoop-bench-tls.XXXXXX";
static char cert[600], key[600];

static void hello(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    (void)srv;
    (void)req;
    swoop_http_end(res, "hello\n", 6);
}

/*
 * Starts swoop in `mode` with one HTTPS port, in its own process group;
 * returns its pid. PROCESS: `reactors` reactor threads (0: one per worker).
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
        snprintf(rn, sizeof(rn), "%d", reactors > 0 ? reactors : workers);
        if (swoop_server_new(&srv, mode) < 0 ||
            swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP | SWOOP_SSL, &p) < 0 ||
            swoop_server_set(srv, "worker_num", w) < 0 ||
            swoop_server_set(srv, "reactor_num", mode == SWOOP_MODE_PROCESS ? rn : "0") < 0 ||
            swoop_server_set(srv, "ssl_cert_file", cert) < 0 ||
            swoop_server_set(srv, "ssl_key_file", key) < 0 ||
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

/* Starts nginx (master + `workers` workers, its own group) with TLS on `port`. */
static pid_t start_nginx(int port)
{
    char conf[700];
    snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "daemon off; master_process on; worker_processes %d; pid %s/nginx.pid;\n"
            "error_log %s/error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http { access_log off; keepalive_requests 100000;\n"
            "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
            "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
            "  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on;\n"
            "  ssl_session_cache shared:bench:10m;\n"
            "  server { listen 127.0.0.1:%d ssl; ssl_certificate %s; ssl_certificate_key %s;\n"
            "    location / { default_type text/plain; return 200 \"hello\\n\"; } } }\n",
            workers, dir, dir, dir, dir, dir, dir, dir, port, cert, key);
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

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * One connection: handshake (offering *sess when resume), GET /hello with
 * Connection: close, read to the end. Keeps the session the server gave for
 * the next one. Returns 1 when the answer came (*reused: the server resumed).
 */
static int one_request(SSL_CTX *ctx, int port, SSL_SESSION **sess, int resume, int *reused)
{
    int fd = tcp_connect(port);
    if (fd < 0)
        return 0;
    SSL *ssl = SSL_new(ctx);
    int ok = 0;
    if (ssl == NULL)
        goto out;
    SSL_set_fd(ssl, fd);
    if (resume && *sess != NULL)
        SSL_set_session(ssl, *sess);
    if (SSL_connect(ssl) != 1)
        goto out;
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    if (SSL_write(ssl, req, (int)sizeof(req) - 1) != (int)sizeof(req) - 1)
        goto out;
    char buf[4096];
    int n, got = 0;
    while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0)
        got += n;
    ok = got > 0;
    *reused = SSL_session_reused(ssl);
    /*
     * The answer is whole: the connection ends well. Without this mark
     * SSL_free would take the session for a failed one and make it
     * unresumable (the close_notify itself is not worth a write here).
     */
    if (ok)
        SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    if (resume) {
        /* A TLS 1.3 ticket arrives after the handshake: read above, kept now. */
        SSL_SESSION *s = SSL_get1_session(ssl);
        if (s != NULL && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(*sess);
            *sess = s;
        } else {
            SSL_SESSION_free(s);
        }
    }
out:
    SSL_free(ssl);
    close(fd);
    return ok;
}

/*
 * `clients` processes make connections for `seconds`; returns handshakes per
 * second, *reused_share the share the server resumed.
 */
static double handshakes(int port, int resume, double *reused_share)
{
    long *counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED)
        return 0;
    memset(counts, 0, 4096);
    double t0 = now_s();
    fflush(stdout);
    pid_t kids[200];
    int nkids = 0;
    for (int c = 0; c < clients && c < 200; c++) {
        pid_t k = fork();
        if (k > 0)
            kids[nkids++] = k;
        if (k == 0) {
            SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
            /* The session to offer is the one each client keeps, not a cache's. */
            SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
            SSL_SESSION *sess = NULL;
            long done = 0, reused = 0;
            double end = t0 + seconds;
            while (now_s() < end) {
                int r = 0;
                if (one_request(ctx, port, &sess, resume, &r)) {
                    done++;
                    reused += r;
                }
            }
            counts[2 * c] = done;
            counts[2 * c + 1] = reused;
            SSL_SESSION_free(sess);
            SSL_CTX_free(ctx);
            _exit(0);
        }
    }
    /* Only the clients: the servers are children of this process too. */
    for (int c = 0; c < nkids; c++)
        waitpid(kids[c], NULL, 0);
    double el = now_s() - t0;
    long done = 0, reused = 0;
    for (int c = 0; c < clients && c < 200; c++) {
        done += counts[2 * c];
        reused += counts[2 * c + 1];
    }
    munmap(counts, 4096);
    *reused_share = done > 0 ? (double)reused / (double)done : 0;
    return el > 0 ? (double)done / el : 0;
}

/* One wrk sample of https://127.0.0.1:port/hello over keep-alive; requests per second. */
static double keepalive(int port)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "wrk -t1 -c%d -d%ds https://127.0.0.1:%d/hello 2>&1", conns, seconds,
             port);
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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "c:d:n:w:k:")) != -1) {
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
        case 'k':
            clients = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: tls [-c conns] [-d s] [-n rounds] [-w workers] [-k clients]\n");
            return 2;
        }
    }
    if (access("/usr/bin/wrk", X_OK) != 0 || access("/usr/sbin/nginx", X_OK) != 0 ||
        access("/usr/bin/openssl", X_OK) != 0) {
        printf("tls: skipped (wrk, nginx or openssl missing: scripts/install-deps.sh bench "
               "installs them)\n");
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
             "-keyout %s -out %s >/dev/null 2>&1",
             key, cert);
    if (system(cmd) != 0) {
        fprintf(stderr, "tls: openssl could not make the certificate\n");
        return 1;
    }
    int ports[ROWS];
    pid_t pids[ROWS];
    const char *names[ROWS] = {"nginx", "swoop BASE", "swoop PROCESS", "swoop PROCESS 1 reactor"};
    pids[1] = start_swoop(SWOOP_MODE_BASE, 0, &ports[1]);
    pids[2] = start_swoop(SWOOP_MODE_PROCESS, 0, &ports[2]);
    pids[3] = start_swoop(SWOOP_MODE_PROCESS, 1, &ports[3]);
    ports[0] = free_port();
    pids[0] = start_nginx(ports[0]);
    /* nginx says nothing when it is ready: wait until a handshake succeeds (bounded). */
    {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        SSL_SESSION *s = NULL;
        int r = 0, up = 0;
        for (int i = 0; i < 300 && !up; i++) {
            for (int k = 0; k < ROWS && (k == 0 || up); k++)
                up = one_request(ctx, ports[k], &s, 0, &r);
            if (!up)
                usleep(10000);
        }
        SSL_CTX_free(ctx);
        if (!up) {
            fprintf(stderr, "tls: a server never answered over TLS\n");
            for (int i = 0; i < ROWS; i++)
                kill(-pids[i], SIGKILL);
            return 1;
        }
    }
    printf("%d server processes each (PROCESS: %d reactor threads), ECDSA P-256, TLS 1.3, "
           "%d rounds of %d s\n",
           workers, workers, nrounds, seconds);
    if (nrounds > 16)
        nrounds = 16;
    static const char *titles[] = {
        "hello over keep-alive HTTPS (wrk -t1)", "full handshakes (a connection per request)",
        "resumed handshakes (TLS 1.3 tickets, a connection per request)"};
    for (int k = 0; nrounds > 0 && k < 3; k++) {
        double v[ROWS][16], share[ROWS][16];
        for (int r = 0; r < nrounds; r++)
            for (int i = 0; i < ROWS; i++) {
                share[i][r] = 0;
                v[i][r] = k == 0 ? keepalive(ports[i]) : handshakes(ports[i], k == 2, &share[i][r]);
            }
        printf("\n%s\n%-24s %12s %10s %s\n", titles[k], "server (median)",
               k == 0 ? "requests/s" : "conns/s", "ratio", k == 2 ? "   resumed" : "");
        double ref = 0;
        for (int i = 0; i < ROWS; i++) {
            double m = median(v[i], nrounds);
            if (i == 0)
                ref = m;
            printf("%-24s %12.0f %10.2f", names[i], m, ref > 0 ? m / ref : 0);
            if (k == 2)
                printf(" %9.0f%%", 100 * median(share[i], nrounds));
            printf("\n");
        }
    }
    for (int i = 0; i < ROWS; i++) {
        kill(-pids[i], SIGTERM);
        waitpid(pids[i], NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "tls: could not remove %s\n", dir);
    return 0;
}
