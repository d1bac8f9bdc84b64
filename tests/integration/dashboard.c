/*
 * Issue 14: the dashboard and `swoop demo`'s HTTP port, with `swoop demo`
 * run as a user runs it (PROCESS and BASE).
 *
 * In a real browser (headless Chromium over the DevTools protocol,
 * dashboard.py): the page served by the demo's HTTP port, and the one
 * served by admin_port, loads with no console error, its process tree
 * lists every pid of the server (read here from /proc: the master, its
 * reactor threads, the manager, workers and task workers), and its
 * requests/s chart moves while a load runs (the demo's Load button; for
 * admin_port, GET /hello from the script). The screenshots stay in the
 * build directory (dashboard-*.png).
 *
 * Without a browser: the demo's endpoints (/hello, POST /echo, /task,
 * /wait, /after, /ws echo, /metrics, /stats.json, the page and Chart.js),
 * its buttons refused from a non-loopback peer (403) and to GET (405), the
 * caps (400), and the line protocol on its second port. In BASE, a worker
 * forked while a dashboard is connected to admin_port keeps no copy of
 * its socket.
 */
#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/stat.h>

#include "client_util.h"
#include "server_common.h"

static const char *swoop_bin(void)
{
    static char path[1024];
    const char *dir = getenv("SWOOP_BUILD_DIR");
    snprintf(path, sizeof(path), "%s/swoop", dir ? dir : ".");
    return path;
}

/* A port free now (bound to 0, read, closed): the server binds it a moment later. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    socklen_t l = sizeof(a);
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &l));
    close(fd);
    return ntohs(a.sin_port);
}

/* Reads lines from fd until one contains `needle` (returned in buf) or ms pass. */
static int read_until(int fd, const char *needle, char *buf, size_t cap, int ms)
{
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    while (swoop_test_now_ms() < deadline) {
        int n = swoop_test_read_line(fd, buf, cap, 500);
        if (n >= 0 && strstr(buf, needle))
            return 1;
    }
    return 0;
}

typedef struct demo_s {
    pid_t pid;
    int out;       /* its stdout */
    int http_port; /* dashboard and endpoints */
    int line_port;
} demo_t;

/* Starts `swoop demo --port 0` in mode with extra arguments; returns once every worker is up. */
static demo_t demo_start(const char *mode, const char *host, const char *admin)
{
    demo_t d = {0};
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    d.pid = fork();
    ASSERT(d.pid >= 0);
    if (d.pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        if (admin)
            execl(swoop_bin(), "swoop", "demo", "--port", "0", "--mode", mode, "--host", host,
                  "--set", admin, (char *)NULL);
        else
            execl(swoop_bin(), "swoop", "demo", "--port", "0", "--mode", mode, "--host", host,
                  (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    d.out = out[0];
    char line[1024];
    ASSERT(read_until(d.out, "dashboard: http://", line, sizeof(line), 10000));
    char *p = strstr(line, "http://");
    ASSERT_NOT_NULL(p);
    p = strchr(p + 7, ':');
    ASSERT_NOT_NULL(p);
    d.http_port = atoi(p + 1);
    ASSERT(read_until(d.out, "line-protocol server on", line, sizeof(line), 5000));
    p = strstr(line, " on ");
    ASSERT_NOT_NULL(p);
    p = strchr(p + 4, ':');
    ASSERT_NOT_NULL(p);
    d.line_port = atoi(p + 1);
    ASSERT_GT(d.http_port, 0);
    ASSERT_GT(d.line_port, 0);
    ASSERT(read_until(d.out, "worker 1 pid", line, sizeof(line), 10000));
    return d;
}

static void demo_stop(demo_t *d)
{
    ASSERT_EQ(kill(d->pid, SIGTERM), 0);
    swoop_test_wait_ok(d->pid, 15000);
    close(d->out);
}

/* The parent pid of pid from /proc, or -1. */
static pid_t ppid_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    int pp = -1;
    if (p == NULL || sscanf(p + 1, " %*c %d", &pp) != 1)
        return -1;
    return pp;
}

/* Appends the children of parent (from /proc) to out as "pid,"; their count. */
static int children(pid_t parent, char *out, size_t cap, pid_t *kids, int max)
{
    DIR *d = opendir("/proc");
    ASSERT_NOT_NULL(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        pid_t pid = atoi(e->d_name);
        if (ppid_of(pid) != parent)
            continue;
        kids[n++] = pid;
        snprintf(out + strlen(out), cap - strlen(out), "%d,", (int)pid);
    }
    closedir(d);
    return n;
}

/*
 * Every pid the dashboard must list: the master, its reactor threads (their
 * tids), its children (PROCESS: the manager; BASE: the workers) and theirs.
 * Waits until the 2 workers and 2 task workers (and admin_port's process
 * when `admin`) are all up.
 */
static void server_pids(pid_t master, int base, int admin, char *out, size_t cap)
{
    uint64_t deadline = swoop_test_now_ms() + 10000ull * swoop_test_multiplier();
    for (;;) {
        out[0] = '\0';
        snprintf(out, cap, "%d,", (int)master);
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/task", (int)master);
        DIR *d = opendir(path);
        ASSERT_NOT_NULL(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char cpath[320], name[32] = "";
            snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/comm", (int)master, e->d_name);
            FILE *f = fopen(cpath, "r");
            if (f == NULL)
                continue;
            if (fgets(name, sizeof(name), f) && strncmp(name, "reactor-", 8) == 0)
                snprintf(out + strlen(out), cap - strlen(out), "%s,", e->d_name);
            fclose(f);
        }
        closedir(d);
        pid_t kids[16], grand[16];
        int n = children(master, out, cap, kids, 16), total = n;
        if (!base && n == 1)
            total = children(kids[0], out, cap, grand, 16);
        if (total == 4 + admin)
            return; /* 2 workers and 2 task workers, the admin process */
        ASSERT(swoop_test_now_ms() < deadline);
        swoop_test_sleep_ms(50);
    }
}

/* The browser part: dashboard.py against url; load "click" or a port. */
static void browse(const char *url, const char *pids, const char *load, int demo, const char *shot)
{
    const char *src = getenv("SWOOP_SOURCE_DIR");
    const char *bdir = getenv("SWOOP_BUILD_DIR");
    ASSERT_NOT_NULL(src);
    ASSERT_NOT_NULL(bdir);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "timeout %u /usr/bin/python3 %s/tests/integration/dashboard.py --url %s --pids %s "
             "--load %s %s --scale %u --screenshot %s/%s 2>&1",
             90 * swoop_test_multiplier(), src, url, pids, load, demo ? "--demo" : "",
             swoop_test_multiplier(), bdir, shot);
    uint64_t t0 = swoop_test_now_ms();
    FILE *f = popen(cmd, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int ok = 0;
    while (fgets(line, sizeof(line), f)) {
        fprintf(stderr, "  %s", line);
        ok |= strncmp(line, "OK dashboard", 12) == 0;
    }
    int st = pclose(f);
    fprintf(stderr, "dashboard in chromium: %llu ms\n",
            (unsigned long long)(swoop_test_now_ms() - t0));
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT(ok);
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", bdir, shot);
    struct stat sb;
    ASSERT_EQ(stat(path, &sb), 0);
    ASSERT_GT(sb.st_size, 10000); /* a PNG of the page, not an empty one */
}

static void dashboard_demo(const char *mode)
{
    demo_t d = demo_start(mode, "127.0.0.1", NULL);
    char pids[512], url[128], shot[64];
    server_pids(d.pid, strcmp(mode, "base") == 0, 0, pids, sizeof(pids));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", d.http_port);
    snprintf(shot, sizeof(shot), "dashboard-demo-%s.png", mode);
    browse(url, pids, "click", 1, shot);
    demo_stop(&d);
}

static int http_req(in_addr_t addr, int port, const char *method, const char *path,
                    const char *body, char *buf, size_t cap);

static void dashboard_admin(const char *mode)
{
    char admin[64];
    int aport = free_port();
    snprintf(admin, sizeof(admin), "admin_port=%d", aport);
    demo_t d = demo_start(mode, "127.0.0.1", admin);
    char pids[512], url[128], shot[64], load[16];
    server_pids(d.pid, strcmp(mode, "base") == 0, 1, pids, sizeof(pids));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", aport);
    snprintf(shot, sizeof(shot), "dashboard-admin-%s.png", mode);
    snprintf(load, sizeof(load), "%d", d.http_port);
    /* The admin process's routes: the page, Chart.js, and /live only as a WebSocket. */
    static char buf[1 << 19];
    in_addr_t lo = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(http_req(lo, aport, "GET", "/", NULL, buf, sizeof(buf)), 200);
    ASSERT(strstr(buf, "Content-Type: text/html; charset=utf-8\r\n") != NULL);
    ASSERT(strstr(buf, "new WebSocket(") != NULL);
    ASSERT_EQ(http_req(lo, aport, "HEAD", "/chart.js", NULL, buf, sizeof(buf)), 200);
    ASSERT(strstr(buf, "Content-Type: text/javascript") != NULL);
    ASSERT_EQ(http_req(lo, aport, "GET", "/live", NULL, buf, sizeof(buf)), 400);
    ASSERT_EQ(http_req(lo, aport, "POST", "/", NULL, buf, sizeof(buf)), 405);
    ASSERT_EQ(http_req(lo, aport, "GET", "/nope", NULL, buf, sizeof(buf)), 404);
    browse(url, pids, load, 0, shot);
    demo_stop(&d);
}

TEST_TIMEOUT(dashboard_browser_demo_process, 240)
{
    dashboard_demo("process");
}

TEST_TIMEOUT(dashboard_browser_demo_base, 240)
{
    dashboard_demo("base");
}

TEST_TIMEOUT(dashboard_browser_admin_process, 240)
{
    dashboard_admin("process");
}

TEST_TIMEOUT(dashboard_browser_admin_base, 240)
{
    dashboard_admin("base");
}

/* ---- the demo's endpoints, no browser ---- */

/* One request to addr:port (Connection: close); the status, the response in buf. */
static int http_req(in_addr_t addr, int port, const char *method, const char *path,
                    const char *body, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = addr;
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n"
                     "Content-Type: text/plain\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    cli_write(fd, req, (size_t)n);
    size_t got = read_all(fd, buf, cap, 8000);
    close(fd);
    int status = 0;
    if (got < 12 || sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    ASSERT_NOT_NULL(b);
    return b + 4;
}

/* A non-loopback IPv4 address of this host (network order), or 0 when it has none. */
static in_addr_t outside_addr(void)
{
    struct ifaddrs *ifs, *i;
    in_addr_t found = 0;
    if (getifaddrs(&ifs) < 0)
        return 0;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && !(i->ifa_flags & IFF_LOOPBACK) &&
            (i->ifa_flags & IFF_UP))
            found = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
    }
    freeifaddrs(ifs);
    return found;
}

static void endpoints(const char *mode)
{
    /* 0.0.0.0: so a peer that is not loopback can try the buttons. */
    demo_t d = demo_start(mode, "0.0.0.0", NULL);
    in_addr_t lo = htonl(INADDR_LOOPBACK);
    static char buf[1 << 20];
    int port = d.http_port;

    ASSERT_EQ(http_req(lo, port, "GET", "/hello", NULL, buf, sizeof(buf)), 200);
    ASSERT(strncmp(body_of(buf), "hello from worker ", 18) == 0);
    ASSERT_EQ(http_req(lo, port, "POST", "/echo", "round trip", buf, sizeof(buf)), 200);
    ASSERT_STR_EQ(body_of(buf), "round trip");
    ASSERT_EQ(http_req(lo, port, "GET", "/task?n=100000", NULL, buf, sizeof(buf)), 200);
    ASSERT(strstr(body_of(buf), "\"n\":100000,\"primes\":9592,") != NULL);
    ASSERT(strstr(body_of(buf), "\"via\":\"task\"") != NULL);
    ASSERT_EQ(http_req(lo, port, "GET", "/wait?n=10", NULL, buf, sizeof(buf)), 200);
    ASSERT(strstr(body_of(buf), "\"n\":10,\"primes\":4,") != NULL);
    ASSERT(strstr(body_of(buf), "\"via\":\"taskwait\"") != NULL);
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(http_req(lo, port, "GET", "/after?ms=300", NULL, buf, sizeof(buf)), 200);
    ASSERT_GE(swoop_test_now_ms() - t0, 300);
    ASSERT(strstr(body_of(buf), "\"after_ms\":300") != NULL);
    ASSERT_EQ(http_req(lo, port, "GET", "/task?n=10000001", NULL, buf, sizeof(buf)), 400);
    ASSERT_EQ(http_req(lo, port, "GET", "/after?ms=x", NULL, buf, sizeof(buf)), 400);
    ASSERT_EQ(http_req(lo, port, "GET", "/nothing", NULL, buf, sizeof(buf)), 404);

    /* The dashboard's files and data, from the library. */
    ASSERT_EQ(http_req(lo, port, "GET", "/", NULL, buf, sizeof(buf)), 200);
    ASSERT(strstr(buf, "Content-Type: text/html") != NULL);
    ASSERT(strstr(buf, "<title>swoop dashboard</title>") != NULL);
    ASSERT_EQ(http_req(lo, port, "GET", "/chart.js", NULL, buf, sizeof(buf)), 200);
    ASSERT(strstr(buf, "Chart.js v") != NULL);
    ASSERT_EQ(http_req(lo, port, "GET", "/metrics", NULL, buf, sizeof(buf)), 200);
    ASSERT(strstr(buf, "\nswoop_requests_total ") != NULL);
    ASSERT_EQ(http_req(lo, port, "GET", "/stats.json", NULL, buf, sizeof(buf)), 200);
    ASSERT(strstr(buf, "\"task_worker_num\":2") != NULL);
    ASSERT_EQ(http_req(lo, port, "GET", "/dashboard.json", NULL, buf, sizeof(buf)), 200);
    char want[64];
    snprintf(want, sizeof(want), "\"pid\":%d,", (int)d.pid);
    ASSERT(strstr(body_of(buf), want) != NULL);

    /* The buttons: POST only, loopback only, bounded. */
    ASSERT_EQ(http_req(lo, port, "GET", "/demo/crash", NULL, buf, sizeof(buf)), 405);
    ASSERT_EQ(http_req(lo, port, "POST", "/demo/load?k=33", NULL, buf, sizeof(buf)), 400);
    ASSERT_EQ(http_req(lo, port, "POST", "/demo/load?s=31", NULL, buf, sizeof(buf)), 400);
    ASSERT_EQ(http_req(lo, port, "POST", "/demo/tasks?n=201", NULL, buf, sizeof(buf)), 400);
    ASSERT_EQ(http_req(lo, port, "POST", "/demo/tasks?n=3", NULL, buf, sizeof(buf)), 202);
    ASSERT(strstr(body_of(buf), "posted 3 of 3 tasks") != NULL);
    in_addr_t out = outside_addr();
    if (out != 0) {
        static const char *const acts[] = {"/demo/crash", "/demo/tasks?n=1", "/demo/reload",
                                           "/demo/load?k=1&s=1"};
        for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
            ASSERT_EQ(http_req(out, port, "POST", acts[i], NULL, buf, sizeof(buf)), 403);
            ASSERT(strstr(body_of(buf), "loopback") != NULL);
        }
        /* The rest stays open to it. */
        ASSERT_EQ(http_req(out, port, "GET", "/hello", NULL, buf, sizeof(buf)), 200);
    } else {
        fprintf(stderr, "no non-loopback IPv4 address here: the 403 part is skipped\n");
    }

    /* /ws echoes (python3-websockets as the client). */
    char cmd[1024], outbuf[1024];
    snprintf(cmd, sizeof(cmd),
             "timeout 20 /usr/bin/python3 -c 'import asyncio, websockets\n"
             "async def m():\n"
             "  async with websockets.connect(\"ws://127.0.0.1:%d/ws\") as ws:\n"
             "    hi = await asyncio.wait_for(ws.recv(), 10)\n"
             "    await ws.send(\"ping 1\"); print(hi); print(await asyncio.wait_for(ws.recv(), "
             "10))\n"
             "asyncio.run(m())'",
             port);
    ASSERT_EQ(run(cmd, outbuf, sizeof(outbuf)), 0);
    ASSERT(strstr(outbuf, "WebSocket echo") != NULL);
    ASSERT(strstr(outbuf, "\nping 1\n") != NULL);

    /* The line protocol on the second port. */
    int fd = cli_connect(d.line_port);
    char line[1024];
    ASSERT(read_until(fd, "swoop demo: conn", line, sizeof(line), 3000));
    cli_write(fd, "echo two ports\n", 15);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 3000), 0);
    ASSERT_STR_EQ(line, "two ports");
    close(fd);

    /* The crash button: the worker that answered restarts (from loopback). */
    ASSERT_EQ(http_req(lo, port, "POST", "/demo/crash", NULL, buf, sizeof(buf)), 200);
    ASSERT(strstr(body_of(buf), "aborts now") != NULL);
    uint64_t deadline = swoop_test_now_ms() + 10000ull * swoop_test_multiplier();
    int restarted = 0;
    while (!restarted && swoop_test_now_ms() < deadline) {
        ASSERT_EQ(http_req(lo, port, "GET", "/stats.json", NULL, buf, sizeof(buf)), 200);
        restarted = strstr(buf, "\"starts\":2") != NULL;
        if (!restarted)
            swoop_test_sleep_ms(50);
    }
    ASSERT(restarted);
    ASSERT_EQ(http_req(lo, port, "GET", "/hello", NULL, buf, sizeof(buf)), 200);

    /* The reload button: every worker restarts (the crashed one's third start). */
    ASSERT_EQ(http_req(lo, port, "POST", "/demo/reload", NULL, buf, sizeof(buf)), 202);
    int reloaded = 0;
    while (!reloaded && swoop_test_now_ms() < deadline + 10000ull * swoop_test_multiplier()) {
        ASSERT_EQ(http_req(lo, port, "GET", "/stats.json", NULL, buf, sizeof(buf)), 200);
        reloaded = strstr(buf, "\"starts\":3") != NULL && strstr(buf, "\"starts\":1") == NULL;
        if (!reloaded)
            swoop_test_sleep_ms(50);
    }
    ASSERT(reloaded);
    ASSERT_EQ(http_req(lo, port, "GET", "/hello", NULL, buf, sizeof(buf)), 200);
    demo_stop(&d);
}

TEST_TIMEOUT(demo_http_endpoints_process, 120)
{
    endpoints("process");
}

TEST_TIMEOUT(demo_http_endpoints_base, 120)
{
    endpoints("base");
}

/*
 * A worker started while a dashboard is open must not hold a copy of its
 * socket, or closing it would not end the connection (the admin server was
 * once a thread of BASE's manager, which forks the workers; it is a process
 * of its own now). A client opens /live, a worker is SIGKILLed and
 * restarted, then the client closes: the admin process answers and closes,
 * and the client sees EOF at once.
 */
TEST_TIMEOUT(dashboard_admin_base_restart_keeps_no_socket, 60)
{
    char admin[64];
    int aport = free_port();
    snprintf(admin, sizeof(admin), "admin_port=%d", aport);
    demo_t d = demo_start("base", "127.0.0.1", admin);
    char pids[512];
    server_pids(d.pid, 1, 1, pids, sizeof(pids));

    int fd = cli_connect(aport);
    static const char hs[] =
        "GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    cli_write(fd, hs, sizeof(hs) - 1);
    char buf[8192] = "";
    size_t got = 0;
    uint64_t deadline = swoop_test_now_ms() + 5000ull * swoop_test_multiplier();
    /* The 101 and the first snapshot (a text frame holding "procs"). */
    while (!strstr(buf, "\"procs\"") && swoop_test_now_ms() < deadline && got + 1 < sizeof(buf)) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t k = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        ASSERT_GT(k, 0);
        got += (size_t)k;
        buf[got] = '\0';
    }
    ASSERT(strncmp(buf, "HTTP/1.1 101 ", 13) == 0);
    ASSERT(strstr(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    ASSERT(strstr(buf, "\"procs\"") != NULL);

    /* A worker dies; the manager (the admin process's parent) forks its successor. */
    int victim = atoi(strchr(pids, ',') + 1);
    ASSERT_GT(victim, 0);
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    pid_t kids[16];
    char list[256];
    int back = 0;
    while (!back && swoop_test_now_ms() < deadline + 5000ull * swoop_test_multiplier()) {
        list[0] = '\0';
        int n = children(d.pid, list, sizeof(list), kids, 16);
        back = n == 4;
        for (int i = 0; i < n; i++)
            back &= kids[i] != victim;
        if (!back)
            swoop_test_sleep_ms(50);
    }
    ASSERT(back);

    /* A masked close frame (no status): the answer, then EOF. */
    static const unsigned char bye[6] = {0x88, 0x80, 1, 2, 3, 4};
    cli_write(fd, bye, sizeof(bye));
    int eof = 0;
    deadline = swoop_test_now_ms() + 3000ull * swoop_test_multiplier();
    while (!eof && swoop_test_now_ms() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        eof = k == 0;
        ASSERT_GE(k, 0);
    }
    ASSERT(eof);
    close(fd);
    demo_stop(&d);
}
