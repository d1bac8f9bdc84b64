/*
 * admin_port: GET /metrics (Prometheus text, metrics.c) and /stats.json
 * over HTTP/1.1, served by a process of its own that runs no user code and
 * reads only the shared memfd and /proc, so it answers while every worker
 * is stuck, stopped or crashing, and while the master or manager is in a
 * user callback.
 *
 * Who does what: the socket is bound before anything is forked (PROCESS:
 * by the master, before the manager; BASE: by the manager), so a port in
 * use fails the start at once. The manager forks the admin process before
 * its workers, restarts it when it dies (a second later if it died at
 * once), forwards SIGRTMIN to it, and stops it after its last worker is
 * gone, so /metrics answers through a whole shutdown. The manager is
 * single-threaded, and STYLE 6 lets only such a process fork: this is why
 * the admin server is not a thread (it was one, in the manager of BASE,
 * which forks its workers). The master of PROCESS keeps no copy.
 *
 * One connection at a time, Connection: close: a scraper asks every few
 * seconds, and a client that stalls is cut after ADMIN_IO_MS.
 *
 * It also serves the dashboard (dashboard.c): the page at / and Chart.js,
 * compiled in, and the page's WebSocket at /live, to which it pushes the
 * snapshot once a second. Those few sockets stay open, polled with the
 * listener; a push never waits on a slow one (it is dropped instead).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/timer.h>

#include "base/clock.h"
#include "net/socket.h"
#include "proto/http_parser.h"
#include "proto/ws_frame.h"
#include "proto/ws_handshake.h"
#include "server/dashboard.h"
#include "server/internal.h"

#define ADMIN_HEAD_MAX 8192
#define ADMIN_IO_MS    1000 /* a client gets this long to send its head and read the answer */
#define ADMIN_HEADERS  32
#define ADMIN_LIVE_MAX 16   /* dashboards watching at once (WebSocket /live) */
#define ADMIN_LIVE_MS  1000 /* a snapshot to each of them this often */

int swoop__admin_parse(const char *v, char *host, size_t cap, int *port)
{
    if (v == NULL || v[0] == '\0' || cap < 16)
        return SWOOP_EINVAL;
    const char *colon = strrchr(v, ':');
    const char *num = colon ? colon + 1 : v;
    if (colon == NULL) {
        snprintf(host, cap, "127.0.0.1");
    } else {
        const char *h = v;
        size_t hl = (size_t)(colon - v);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h++;
            hl -= 2;
        } else if (memchr(h, ':', hl)) {
            return SWOOP_EINVAL; /* an IPv6 address without brackets */
        }
        if (hl == 0 || hl >= cap)
            return SWOOP_EINVAL;
        memcpy(host, h, hl);
        host[hl] = '\0';
    }
    if (num[0] == '\0' || strlen(num) > 5)
        return SWOOP_EINVAL;
    int n = 0;
    for (const char *p = num; *p; p++) {
        if (*p < '0' || *p > '9')
            return SWOOP_EINVAL;
        n = n * 10 + (*p - '0');
    }
    if (n > 65535)
        return SWOOP_EINVAL;
    *port = n;
    return 0;
}

/* Writes all of p within the deadline; 0 or -1. */
static int write_all(int fd, const char *p, size_t len, uint64_t deadline_ms)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -1;
        uint64_t now = swoop__clock_ms();
        if (now >= deadline_ms)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)(deadline_ms - now)) < 0 && errno != EINTR)
            return -1;
    }
    return 0;
}

static void answer(int fd, int status, const char *reason, const char *type, const char *extra,
                   const char *body, size_t len, int head_only, uint64_t deadline_ms)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, reason, type, len, extra);
    if (write_all(fd, head, (size_t)n, deadline_ms) == 0 && !head_only && len > 0)
        write_all(fd, body, len, deadline_ms);
}

typedef struct admin_buf_s {
    char *p;
    size_t cap;
} admin_buf_t;

/* Renders into b, growing it once the length needed is known; the length or < 0. */
static int render(swoop_server_t *srv, admin_buf_t *b, int json)
{
    for (int tries = 0; tries < 3; tries++) {
        int n;
        if (json) {
            swoop_server_stats_t st;
            swoop__stats_fill(srv->gs, &st);
            n = swoop_server_stats_json(&st, b->p, b->cap);
            if (n == SWOOP_ENOSPC)
                n = (int)b->cap * 2;
        } else {
            n = swoop__metrics_render(srv->gs, b->p, b->cap);
        }
        if (n < 0)
            return n;
        if ((size_t)n < b->cap)
            return n;
        size_t cap = (size_t)n + 4096;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return SWOOP_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    return SWOOP_ENOSPC;
}

/* The value of field `name` in the parsed head, or NULL (*len set). */
static const char *field(const char *req, const swoop_http_head_t *h, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < h->num_headers; i++) {
        const swoop_http_header_t *f = &h->headers[i];
        if (f->name.len == nl && strncasecmp(req + f->name.off, name, nl) == 0) {
            *len = f->value.len;
            return req + f->value.off;
        }
    }
    return NULL;
}

/*
 * GET /live: the dashboard's WebSocket. 1 when the 101 went out (the caller
 * keeps fd and pushes a snapshot to it every second), 0 when it was refused.
 */
static int live_upgrade(int fd, const char *req, const swoop_http_head_t *h, int get, int nlive,
                        uint64_t deadline)
{
    size_t kl = 0, vl = 0;
    const char *key = field(req, h, "Sec-WebSocket-Key", &kl);
    const char *ver = field(req, h, "Sec-WebSocket-Version", &vl);
    if (!get || !h->upgrade_requested ||
        !swoop__ws_token_has(req + h->upgrade.off, h->upgrade.len, "websocket") || key == NULL ||
        !swoop__ws_key_valid(key, kl) || ver == NULL || vl != 2 || memcmp(ver, "13", 2) != 0) {
        static const char br[] = "400 Bad Request: /live is a WebSocket (version 13)\n";
        answer(fd, 400, "Bad Request", "text/plain", "Sec-WebSocket-Version: 13\r\n", br,
               sizeof(br) - 1, 0, deadline);
        return 0;
    }
    if (nlive >= ADMIN_LIVE_MAX) {
        static const char busy[] = "503 Service Unavailable: too many dashboards open\n";
        answer(fd, 503, "Service Unavailable", "text/plain", "", busy, sizeof(busy) - 1, 0,
               deadline);
        return 0;
    }
    char accept[SWOOP_WS_ACCEPT_LEN + 1], head[256];
    swoop__ws_accept(key, kl, accept);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    return write_all(fd, head, (size_t)n, deadline) == 0;
}

/* One connection: reads a head, answers it, closes (returns 0), or keeps it as a dashboard (1). */
static int serve_one(swoop_server_t *srv, int fd, admin_buf_t *b, int nlive)
{
    uint64_t deadline = swoop__clock_ms() + ADMIN_IO_MS;
    char req[ADMIN_HEAD_MAX];
    size_t len = 0;
    swoop_http_header_t fields[ADMIN_HEADERS];
    swoop_http_head_t h;
    swoop__http_head_init(&h, fields, ADMIN_HEADERS);
    swoop_http_limits_t lim = {.max_head = ADMIN_HEAD_MAX, .max_uri = 1024, .max_body = 0};
    ssize_t rc = SWOOP_HTTP_INCOMPLETE;
    while (rc == SWOOP_HTTP_INCOMPLETE) {
        uint64_t now = swoop__clock_ms();
        if (now >= deadline || len == sizeof(req))
            return 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return 0;
        ssize_t n = recv(fd, req + len, sizeof(req) - len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return 0;
        len += (size_t)n;
        rc = swoop__http_parse_request(&h, req, len, &lim);
    }
    if (rc < 0) {
        static const char bad[] = "400 Bad Request\n";
        answer(fd, 400, "Bad Request", "text/plain", "", bad, sizeof(bad) - 1, 0, deadline);
        return 0;
    }
    const char *m = req + h.method.off;
    int get = h.method.len == 3 && memcmp(m, "GET", 3) == 0;
    int head = h.method.len == 4 && memcmp(m, "HEAD", 4) == 0;
    const char *path = h.path.len ? req + h.path.off : "/";
    size_t pl = h.path.len ? h.path.len : 1;
    int metrics = pl == 8 && memcmp(path, "/metrics", 8) == 0;
    int json = pl == 11 && memcmp(path, "/stats.json", 11) == 0;
    /* The dashboard: its page and Chart.js (compiled in), and its WebSocket. */
    const void *asset;
    size_t alen;
    const char *atype;
    if (pl == 5 && memcmp(path, "/live", 5) == 0)
        return live_upgrade(fd, req, &h, get, nlive, deadline);
    int dash = swoop__dash_asset(path, pl, &asset, &alen, &atype) == 0;
    if (!metrics && !json && !dash) {
        static const char nf[] = "404 Not Found: /, /metrics, /stats.json\n";
        answer(fd, 404, "Not Found", "text/plain", "", nf, sizeof(nf) - 1, head, deadline);
        return 0;
    }
    if (!get && !head) {
        static const char na[] = "405 Method Not Allowed\n";
        answer(fd, 405, "Method Not Allowed", "text/plain", "Allow: GET, HEAD\r\n", na,
               sizeof(na) - 1, 0, deadline);
        return 0;
    }
    if (dash) {
        answer(fd, 200, "OK", atype, "", asset, alen, head, deadline);
        return 0;
    }
    int n = render(srv, b, json);
    if (n < 0) {
        static const char ie[] = "500 Internal Server Error\n";
        answer(fd, 500, "Internal Server Error", "text/plain", "", ie, sizeof(ie) - 1, head,
               deadline);
        return 0;
    }
    answer(fd, 200, "OK", json ? "application/json" : "text/plain; version=0.0.4; charset=utf-8",
           "", b->p, (size_t)n, head, deadline);
    return 0;
}

/*
 * The dashboards watching: each gets the snapshot as one text frame a
 * second. A push that does not fit the socket's buffer at once (a client
 * that stopped reading for tens of seconds) drops that client: the process
 * never waits on one. What they send is read and dropped; a close frame
 * gets its answer, and the connection closes.
 */
typedef struct admin_live_s {
    int fd[ADMIN_LIVE_MAX];
    int n;
    uint64_t next_ms; /* the next push */
    /*
     * Connections accepted whose request has not arrived: polled with the
     * rest, served once readable, so a client that connects and waits (a
     * browser opens spare connections ahead of need) never holds up the
     * pushes. Closed after ADMIN_IO_MS.
     */
    int pend[ADMIN_LIVE_MAX];
    uint64_t pend_until[ADMIN_LIVE_MAX];
    int npend;
} admin_live_t;

static void live_drop(admin_live_t *lv, int i)
{
    close(lv->fd[i]);
    lv->fd[i] = lv->fd[--lv->n];
}

static void live_read(admin_live_t *lv, int i)
{
    uint8_t in[512];
    ssize_t n = recv(lv->fd[i], in, sizeof(in), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n > 0 && (in[0] & 0x0f) != SWOOP_WS_OP_CLOSE)
        return; /* pings and text from the page: nothing to do (the page sends none) */
    if (n > 0) {
        static const uint8_t bye[2] = {0x88, 0x00}; /* close, no status */
        send(lv->fd[i], bye, sizeof(bye), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    live_drop(lv, i);
}

static void live_push(swoop_server_t *srv, admin_live_t *lv, admin_buf_t *b)
{
    int n = -1;
    for (int tries = 0; tries < 3 && b->cap > SWOOP_WS_HEAD_MAX; tries++) {
        n = swoop__dash_json(srv->gs, b->p + SWOOP_WS_HEAD_MAX, b->cap - SWOOP_WS_HEAD_MAX);
        if (n < 0 || (size_t)n < b->cap - SWOOP_WS_HEAD_MAX)
            break;
        size_t cap = (size_t)n + SWOOP_WS_HEAD_MAX + 4096;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return;
        b->p = p;
        b->cap = cap;
        n = -1;
    }
    if (n < 0)
        return;
    uint8_t fh[SWOOP_WS_HEAD_MAX];
    size_t hl = swoop__ws_frame_head(fh, 1, 0, SWOOP_WS_OP_TEXT, (uint64_t)n, NULL);
    char *frame = b->p + SWOOP_WS_HEAD_MAX - hl;
    memcpy(frame, fh, hl);
    for (int i = lv->n - 1; i >= 0; i--) {
        ssize_t w = send(lv->fd[i], frame, hl + (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w != (ssize_t)(hl + (size_t)n))
            live_drop(lv, i);
    }
}

/*
 * The admin process's loop until SIGTERM arrives on sfd (a signalfd;
 * SIGRTMIN reopens the log file): requests one at a time, dashboards and
 * connections whose request has not arrived held in the poll set.
 */
static void admin_serve(swoop_server_t *srv, int sfd)
{
    admin_buf_t b = {.p = malloc(65536), .cap = 65536};
    if (b.p == NULL)
        b.cap = 0;
    admin_live_t lv = {.n = 0};
    for (;;) {
        struct pollfd pfd[2 + 2 * ADMIN_LIVE_MAX] = {{.fd = srv->admin_fd, .events = POLLIN},
                                                     {.fd = sfd, .events = POLLIN}};
        /* A full pending set stops accepting: the backlog waits in the kernel. */
        if (lv.npend == ADMIN_LIVE_MAX)
            pfd[0].fd = -1;
        for (int i = 0; i < lv.n; i++)
            pfd[2 + i] = (struct pollfd){.fd = lv.fd[i], .events = POLLIN};
        for (int i = 0; i < lv.npend; i++)
            pfd[2 + lv.n + i] = (struct pollfd){.fd = lv.pend[i], .events = POLLIN};
        uint64_t now = swoop__clock_ms(), wake = UINT64_MAX;
        if (lv.n > 0)
            wake = lv.next_ms;
        for (int i = 0; i < lv.npend; i++)
            wake = lv.pend_until[i] < wake ? lv.pend_until[i] : wake;
        int timeout = wake == UINT64_MAX ? -1 : wake > now ? (int)(wake - now) : 0;
        int nlive = lv.n, npend = lv.npend;
        int pr = poll(pfd, (nfds_t)(2 + nlive + npend), timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr > 0 && pfd[1].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if ((int)si.ssi_signo != SIGRTMIN)
                    break;
                swoop_log_reopen(); /* logrotate: the manager forwards its SIGRTMIN */
            }
        }
        /* Pending first (from the end, so a removal moves only entries already seen). */
        now = swoop__clock_ms();
        for (int i = npend - 1; i >= 0; i--) {
            int ready = pr > 0 && pfd[2 + nlive + i].revents;
            if (!ready && now < lv.pend_until[i])
                continue;
            int fd = lv.pend[i];
            lv.pend[i] = lv.pend[lv.npend - 1];
            lv.pend_until[i] = lv.pend_until[lv.npend - 1];
            lv.npend--;
            if (ready && serve_one(srv, fd, &b, lv.n) && lv.n < ADMIN_LIVE_MAX) {
                lv.fd[lv.n++] = fd;
                /* The first snapshot at once: the page draws without waiting a second. */
                lv.next_ms = 0;
                continue;
            }
            close(fd);
        }
        for (int i = nlive - 1; i >= 0 && pr > 0; i--) {
            if (pfd[2 + i].revents)
                live_read(&lv, i);
        }
        if (lv.n > 0 && swoop__clock_ms() >= lv.next_ms) {
            live_push(srv, &lv, &b);
            lv.next_ms = swoop__clock_ms() + ADMIN_LIVE_MS;
        }
        if (pr <= 0 || !(pfd[0].revents & POLLIN))
            continue;
        int fd = accept4(srv->admin_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* EAGAIN, ECONNABORTED, EMFILE: the next wake-up tries again */
        lv.pend[lv.npend] = fd;
        lv.pend_until[lv.npend] = swoop__clock_ms() + ADMIN_IO_MS;
        lv.npend++;
    }
    while (lv.n > 0)
        live_drop(&lv, lv.n - 1);
    while (lv.npend > 0)
        close(lv.pend[--lv.npend]);
    free(b.p);
}

/*
 * The admin process, forked by the manager (single-threaded: STYLE 6). It
 * inherited the manager's signal handlers and mask: every signal goes back
 * to its default, SIGTERM and SIGRTMIN come through a signalfd, and the
 * signals that reach a whole process group (SIGINT of a Ctrl-C, SIGHUP,
 * SIGQUIT, SIGUSR1/2 of a group reload) are ignored: the manager stops it
 * in order after the workers, and a reload is not its business. It dies
 * with the manager (PR_SET_PDEATHSIG) and leaves through _exit, running
 * nothing of the user's image.
 */
static void admin_process(swoop_server_t *srv, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(0);
    swoop_log_set_role(SWOOP_ROLE_ADMIN, -1);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    for (int signo = 1; signo < NSIG; signo++) {
        int ignored = signo == SIGPIPE || signo == SIGINT || signo == SIGHUP || signo == SIGQUIT ||
                      signo == SIGUSR1 || signo == SIGUSR2;
        sa.sa_handler = ignored ? SIG_IGN : SIG_DFL;
        sigaction(signo, &sa, NULL); /* EINVAL for SIGKILL, SIGSTOP and libc's own: fine */
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_SETMASK, &set, NULL);
    /* The listening ports are the workers': a stopped server must refuse at once. */
    for (int i = 0; i < srv->nports; i++) {
        if (srv->ports[i]->fd >= 0)
            close(srv->ports[i]->fd);
    }
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        swoop_log(SWOOP_LOG_ERROR, errno, "admin: signalfd() failed");
        _exit(1);
    }
    admin_serve(srv, sfd);
    _exit(0);
}

int swoop__admin_open(swoop_server_t *srv)
{
    const char *v = srv->settings.admin_port;
    if (v[0] == '\0' || srv->admin_fd >= 0)
        return 0;
    char host[64];
    int port;
    if (swoop__admin_parse(v, host, sizeof(host), &port) < 0) {
        swoop_log(SWOOP_LOG_ERROR, 0, "admin_port \"%s\": not PORT or HOST:PORT", v);
        return SWOOP_EINVAL;
    }
    swoop_sock_type_t type = strchr(host, ':') ? SWOOP_SOCK_TCP6 : SWOOP_SOCK_TCP;
    int fd = swoop__sock_listen(type, host, port, 64, 0);
    if (fd < 0) {
        swoop_log(SWOOP_LOG_ERROR, fd, "admin_port \"%s\": cannot listen", v);
        return fd;
    }
    srv->admin_fd = fd;
    int bound = swoop__sock_local_port(fd);
    if (srv->gs)
        srv->gs->admin_port = (uint16_t)(bound > 0 ? bound : 0);
    swoop_log(SWOOP_LOG_INFO, 0, "admin: /metrics and /stats.json on %s (port %d)", v, bound);
    return 0;
}

static void on_admin_respawn(int64_t timer_id, void *arg)
{
    (void)timer_id;
    swoop_server_t *srv = arg;
    srv->admin_timer = 0;
    if (srv->admin_fd >= 0 && srv->admin_pid == 0 && !srv->mgr.shutting_down)
        swoop__admin_spawn(srv);
}

int swoop_server_admin_port(swoop_server_t *srv)
{
    if (srv == NULL)
        return SWOOP_EINVAL;
    if (srv->gs == NULL)
        return SWOOP_ESTATE;
    return srv->settings.admin_port[0] ? (int)srv->gs->admin_port : 0;
}

int swoop__admin_spawn(swoop_server_t *srv)
{
    if (srv->admin_fd < 0 || srv->admin_pid > 0)
        return 0;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "admin: fork() failed: retrying in 1 s");
        int64_t t = swoop_timer_after(1000, on_admin_respawn, srv);
        srv->admin_timer = t > 0 ? t : 0;
        return -err;
    }
    if (pid == 0)
        admin_process(srv, parent);
    srv->admin_pid = pid;
    srv->admin_spawned_ms = swoop__clock_ms();
    atomic_store(&srv->gs->admin_pid, pid);
    return 0;
}

int swoop__admin_reaped(swoop_server_t *srv, pid_t pid, int code, int signo)
{
    if (pid <= 0 || pid != srv->admin_pid)
        return 0;
    srv->admin_pid = 0;
    atomic_store(&srv->gs->admin_pid, 0);
    if (srv->mgr.shutting_down || srv->admin_fd < 0)
        return 1;
    /* A process that dies at once would die again: the next try waits a second. */
    int quick = swoop__clock_ms() - srv->admin_spawned_ms < 1000;
    swoop_log(SWOOP_LOG_WARNING, 0, "admin process %d died (exit code %d, signal %d): %s", (int)pid,
              code, signo, quick ? "restart in 1 s" : "restarted");
    if (quick) {
        int64_t t = swoop_timer_after(1000, on_admin_respawn, srv);
        srv->admin_timer = t > 0 ? t : 0;
    } else
        swoop__admin_spawn(srv);
    return 1;
}

void swoop__admin_reopen(swoop_server_t *srv)
{
    if (srv->admin_pid > 0)
        kill(srv->admin_pid, SIGRTMIN);
}

void swoop__admin_stop(swoop_server_t *srv)
{
    if (srv->admin_timer) {
        swoop_timer_clear(srv->admin_timer);
        srv->admin_timer = 0;
    }
    if (srv->admin_pid > 0) {
        /* It answers at most one request (ADMIN_IO_MS) before it sees SIGTERM. */
        kill(srv->admin_pid, SIGTERM);
        uint64_t deadline = swoop__clock_ms() + 2 * ADMIN_IO_MS + 500;
        pid_t r;
        while ((r = waitpid(srv->admin_pid, NULL, WNOHANG)) == 0 && swoop__clock_ms() < deadline)
            usleep(2000);
        if (r == 0) {
            swoop_log(SWOOP_LOG_WARNING, 0, "admin process %d ignored SIGTERM: killed",
                      (int)srv->admin_pid);
            kill(srv->admin_pid, SIGKILL);
            while (waitpid(srv->admin_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        srv->admin_pid = 0;
        atomic_store(&srv->gs->admin_pid, 0);
    }
    swoop__admin_child(srv);
}

void swoop__admin_child(swoop_server_t *srv)
{
    if (srv->admin_fd >= 0)
        close(srv->admin_fd);
    srv->admin_fd = -1;
    srv->admin_pid = 0;
    srv->admin_timer = 0;
}
