/*
 * Metrics (issue 14), both modes: a real HTTP server with a task worker
 * and admin_port. The text of GET /metrics on admin_port and of
 * `swoop metrics --pid` passes `promtool check metrics` (Debian
 * prometheus) and python3-prometheus-client's parser, whose families a
 * checker walks: histogram buckets cumulative and ending with +Inf equal
 * to _count, the request latency's _count equal to the HTTP requests sent
 * and the task histograms' to the tasks run. After a worker is SIGKILLed
 * and restarted every counter is >= its value before. With every worker
 * and task worker SIGSTOPped, admin_port still answers within 1 s.
 * admin_port is "0": the kernel picks the port, the stats and
 * swoop_server_admin_port tell it. The admin process is a child of the
 * manager, comes back after a SIGKILL, and leaves the manager
 * single-threaded (only such a process may fork: STYLE 6).
 */
/* TEST_LABELS: tsan */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <swoop/http.h>
#include <swoop/timer.h>

#include "client_util.h"
#include "server_common.h"

static int admin_port; /* the port the server's kernel picked (stats.admin_port) */

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

static const char *swoop_bin(void)
{
    static char path[1024];
    const char *dir = getenv("SWOOP_BUILD_DIR");
    snprintf(path, sizeof(path), "%s/swoop", dir ? dir : ".");
    return path;
}

/* Threads of process pid (the Threads: line of /proc/PID/status), -1 if gone. */
static int thread_count(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int n = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* The parent of process pid (PPid: of /proc/PID/status), -1 if gone. */
static int parent_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int n = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "PPid: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

static swoop_server_t *later_srv;

/* A detached response ended from a timer: its latency is observed all the same. */
static void on_later(int64_t timer_id, void *arg)
{
    (void)timer_id;
    uint64_t id = (uint64_t)(uintptr_t)arg;
    ASSERT_OK(swoop_http_respond(later_srv, id, 200, "text/plain", "later\n", 6));
}

static void handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    const char *path = swoop_http_path(req);
    if (strcmp(path, "/later") == 0) {
        uint64_t id = swoop_http_detach(res);
        ASSERT_GT(id, 0);
        later_srv = srv;
        ASSERT_GT(swoop_timer_after(5, on_later, (void *)(uintptr_t)id), 0);
        return;
    }
    if (strcmp(path, "/task") == 0) {
        int64_t id = swoop_server_task(srv, "t", 1, -1);
        ASSERT_GT(id, 0);
        swoop_http_end(res, "posted\n", 7);
        return;
    }
    if (strcmp(path, "/self") == 0) {
        /*
         * swoop_server_metrics inside a worker: the length first, then the
         * text, with room to spare (values may gain digits in between).
         */
        int n = swoop_server_metrics(srv, NULL, 0);
        ASSERT_GT(n, 0);
        size_t cap = (size_t)n + 4096;
        char *text = malloc(cap);
        ASSERT_NOT_NULL(text);
        int m = swoop_server_metrics(srv, text, cap);
        ASSERT_GT(m, 0);
        ASSERT_LT((size_t)m, cap);
        ASSERT_EQ(strlen(text), (size_t)m);
        swoop_http_end(res, text, (size_t)m);
        free(text);
        return;
    }
    if (strcmp(path, "/admin_port") == 0) {
        char text[32];
        int n = snprintf(text, sizeof(text), "%d\n", swoop_server_admin_port(srv));
        swoop_http_end(res, text, (size_t)n);
        return;
    }
    if (strcmp(path, "/big") == 0) {
        /* 8 MiB: more than the kernel buffers of a reader with a 4 KiB receive buffer. */
        size_t len = 8u << 20;
        char *body = malloc(len);
        ASSERT_NOT_NULL(body);
        memset(body, 'b', len);
        swoop_http_end(res, body, len);
        free(body);
        return;
    }
    if (strcmp(path, "/missing") == 0) {
        swoop_http_status(res, 404);
        swoop_http_end(res, "no\n", 3);
        return;
    }
    swoop_http_end(res, "hello\n", 6);
}

static void on_task(swoop_server_t *srv, int64_t id, int src, const void *data, size_t len)
{
    swoop_test_sleep_ms(2); /* a run time the run histogram sees above its first buckets */
}

static char dir[64];

static void setup(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    if (dir[0]) { /* static files: answered by the connection owner */
        ASSERT_OK(swoop_server_set(srv, "enable_static_handler", "1"));
        ASSERT_OK(swoop_server_set(srv, "document_root", dir));
    }
    ASSERT_OK(swoop_server_set(srv, "task_worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "admin_port", "0"));
    ASSERT_OK(swoop_http_on_request(srv, handler));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_task = on_task}));
}

/* One request on its own connection (Connection: close); returns the status. */
static int http_get(int port, const char *method, const char *path, char *buf, size_t cap)
{
    int fd = cli_connect(port);
    char req[256];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     method, path);
    cli_write(fd, req, (size_t)n);
    size_t got = read_all(fd, buf, cap, 3000);
    close(fd);
    int status = 0;
    if (got < 12 || sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
}

/* GET path from admin_port into the file `out`; returns the status. */
static int scrape(const char *path, const char *out)
{
    static char buf[1 << 20];
    int st = http_get(admin_port, "GET", path, buf, sizeof(buf));
    const char *body = strstr(buf, "\r\n\r\n");
    ASSERT_NOT_NULL(body);
    FILE *f = fopen(out, "w");
    ASSERT_NOT_NULL(f);
    fputs(body + 4, f);
    fclose(f);
    return st;
}

static const char *tmp(const char *name)
{
    static char paths[64][128]; /* a ring: a path stays valid for the next 63 calls */
    static int k;
    char *p = paths[k++ % 64];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

/*
 * The checker: parses each file with prometheus_client, checks every
 * histogram, prints the counts asked for, and with two files checks every
 * counter of the second is >= the first.
 */
static const char checker[] =
    "import sys\n"
    "from prometheus_client.parser import text_string_to_metric_families as parse\n"
    "def load(p):\n"
    "    fams = {f.name: f for f in parse(open(p).read())}\n"
    "    for f in fams.values():\n"
    "        if f.type != 'histogram':\n"
    "            continue\n"
    "        series = {}\n"
    "        for s in f.samples:\n"
    "            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != 'le'))\n"
    "            series.setdefault(key, {'b': [], 'count': None})\n"
    "            if s.name.endswith('_bucket'):\n"
    "                series[key]['b'].append((float(s.labels['le']), s.value))\n"
    "            elif s.name.endswith('_count'):\n"
    "                series[key]['count'] = s.value\n"
    "        for key, v in series.items():\n"
    "            b = v['b']\n"
    "            assert b and b[-1][0] == float('inf'), (f.name, key, 'no +Inf')\n"
    "            for i in range(1, len(b)):\n"
    "                assert b[i][0] > b[i-1][0], (f.name, key, 'le order')\n"
    "                assert b[i][1] >= b[i-1][1], (f.name, key, 'not cumulative')\n"
    "            assert b[-1][1] == v['count'], (f.name, key, '+Inf != _count')\n"
    "    return fams\n"
    "def total(fams, name, suffix):\n"
    "    return sum(s.value for s in fams[name].samples if s.name == name + suffix)\n"
    "a = load(sys.argv[1])\n"
    "print('requests', int(total(a, 'swoop_http_request_duration_seconds', '_count')))\n"
    "print('hops', int(total(a, 'swoop_ipc_hop_duration_seconds', '_count')))\n"
    "print('task_runs', int(total(a, 'swoop_task_run_duration_seconds', '_count')))\n"
    "print('task_waits', int(total(a, 'swoop_task_wait_duration_seconds', '_count')))\n"
    "print('n404', int(sum(s.value for s in a['swoop_http_request_duration_seconds'].samples\n"
    "      if s.name.endswith('_count') and s.labels['class'] == '4xx')))\n"
    "print('procs', len(a['swoop_process_resident_memory_bytes'].samples))\n"
    "if len(sys.argv) > 2:\n"
    "    b = load(sys.argv[2])\n"
    "    n = 0\n"
    "    for name, f in a.items():\n"
    "        if f.type not in ('counter', 'histogram'):\n"
    "            continue\n"
    "        after = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in "
    "b[name].samples}\n"
    "        for s in f.samples:\n"
    "            if 'pid' in s.labels:\n"
    "                continue\n" /* a process's CPU: the killed worker's pid is gone */
    "            k = (s.name, tuple(sorted(s.labels.items())))\n"
    "            assert k in after, ('gone after the restart', k)\n"
    "            assert after[k] >= s.value, ('went down', k, s.value, after[k])\n"
    "            n += 1\n"
    "    print('monotonic', n)\n";

/* Runs the checker on one or two files (once per pair); returns the value printed for `key`. */
static long check(const char *a, const char *b, const char *key)
{
    static char last[512], out[65536];
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/check.py %s %s 2>&1", dir, a, b ? b : "");
    if (strcmp(cmd, last) != 0) {
        int rc = run(cmd, out, sizeof(out));
        if (rc != 0)
            FAIL("metrics checker failed on %s: %s", a,
                 out + (strlen(out) > 2000 ? strlen(out) - 2000 : 0));
        snprintf(last, sizeof(last), "%s", cmd);
    }
    char *p = strstr(out, key);
    if (p == NULL)
        FAIL("metrics checker printed no %s: %s", key, out);
    return atol(p + strlen(key) + 1);
}

/*
 * Scrapes /metrics into `name` until its latency histograms count `want`
 * requests (bounded). A worker observes a response just after it hands the
 * last byte on (BASE: after writing it), so a client can have the answer a
 * moment before it is counted.
 */
static void scrape_counting(const char *name, long want)
{
    uint64_t deadline = swoop_test_now_ms() + 5000u * swoop_test_multiplier();
    for (int i = 0;; i++) {
        char attempt[64];
        snprintf(attempt, sizeof(attempt), "%s.%d", name, i); /* check() caches by file name */
        char path[128];
        snprintf(path, sizeof(path), "%s", tmp(attempt));
        ASSERT_EQ(scrape("/metrics", path), 200);
        long got = check(path, NULL, "requests");
        if (got == want || swoop_test_now_ms() >= deadline) {
            ASSERT_EQ(got, want);
            ASSERT_EQ(rename(path, tmp(name)), 0);
            return;
        }
        unlink(path);
        swoop_test_sleep_ms(20);
    }
}

static void promtool(const char *file)
{
    char cmd[512], out[8192];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", file);
    int rc = run(cmd, out, sizeof(out));
    if (rc != 0)
        FAIL("promtool check metrics %s: %s", file, out);
}

/* Event and task worker pids (the master and manager are left running). */
static int worker_pids(srv_handle_t *h, pid_t *out, int max)
{
    char buf[8192];
    ASSERT_EQ(scrape("/metrics", tmp("pids.txt")), 200);
    FILE *f = fopen(tmp("pids.txt"), "r");
    ASSERT_NOT_NULL(f);
    int n = 0;
    while (fgets(buf, sizeof(buf), f) && n < max) {
        int pid;
        char role[32];
        if (sscanf(buf,
                   "swoop_process_resident_memory_bytes{role=\"%31[a-z_]\",id=\"%*d\",pid=\"%d\"}",
                   role, &pid) == 2 &&
            (strcmp(role, "worker") == 0 || strcmp(role, "task_worker") == 0))
            out[n++] = pid;
    }
    fclose(f);
    return n;
}

static void run_metrics(swoop_mode_t mode)
{
    snprintf(dir, sizeof(dir), "/tmp/swoop-metrics-XXXXXX");
    ASSERT_NOT_NULL(mkdtemp(dir));
    FILE *f = fopen(tmp("check.py"), "w");
    ASSERT_NOT_NULL(f);
    fputs(checker, f);
    fclose(f);
    f = fopen(tmp("static.txt"), "w");
    ASSERT_NOT_NULL(f);
    fputs("static\n", f);
    fclose(f);
    srv_handle_t h = srv_start(mode, setup, NULL, 2);
    char buf[4096];
    swoop_server_stats_t st;
    /* admin_port "0": the port the kernel picked, in the stats and from a worker. */
    WAIT_UNTIL((srv_stats(&h, &st), st.admin_pid > 0), 3000);
    admin_port = st.admin_port;
    ASSERT_GT(admin_port, 0);
    ASSERT_NE(admin_port, h.port);
    ASSERT_EQ(http_get(h.port, "GET", "/admin_port", buf, sizeof(buf)), 200);
    char want[32];
    snprintf(want, sizeof(want), "\r\n\r\n%d\n", admin_port);
    ASSERT_NOT_NULL(strstr(buf, want));
    /* 20 requests answered 200, 5 answered 404, 4 that post a task. */
    const int n200 = 20, n404 = 5, ntask = 4;
    for (int i = 0; i < n200 - 1; i++)
        ASSERT_EQ(http_get(h.port, "GET", "/hello", buf, sizeof(buf)), 200);
    for (int i = 0; i < n404; i++)
        ASSERT_EQ(http_get(h.port, "GET", "/missing", buf, sizeof(buf)), 404);
    for (int i = 0; i < ntask; i++)
        ASSERT_EQ(http_get(h.port, "GET", "/task", buf, sizeof(buf)), 200);
    /* Answered by the owner (static) and from a timer (detached): timed all the same. */
    const int nstatic = 2, nlater = 2;
    for (int i = 0; i < nstatic; i++) {
        ASSERT_EQ(http_get(h.port, "GET", "/static.txt", buf, sizeof(buf)), 200);
        ASSERT_NOT_NULL(strstr(buf, "\r\n\r\nstatic\n"));
    }
    for (int i = 0; i < nlater; i++) {
        ASSERT_EQ(http_get(h.port, "GET", "/later", buf, sizeof(buf)), 200);
        ASSERT_NOT_NULL(strstr(buf, "\r\n\r\nlater\n"));
    }
    const int nall = n200 + n404 + ntask + 1 + nstatic + nlater;
    WAIT_UNTIL((srv_stats(&h, &st), st.task_count == (uint64_t)ntask), 3000);

    /* From inside a worker (its own request is not counted yet: it has not ended). */
    static char self[1 << 18];
    ASSERT_EQ(http_get(h.port, "GET", "/self", self, sizeof(self)), 200);
    ASSERT_NOT_NULL(strstr(self, "\nswoop_tasks_completed_total 4\n"));
    ASSERT_NOT_NULL(strstr(self, "\nswoop_http_responses_total{class=\"4xx\"} 5\n"));

    /* admin_port: the content type, 405 and 404. */
    ASSERT_EQ(http_get(admin_port, "GET", "/metrics", buf, sizeof(buf)), 200);
    ASSERT_NOT_NULL(strstr(buf, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    ASSERT_EQ(http_get(admin_port, "POST", "/metrics", buf, sizeof(buf)), 405);
    ASSERT_EQ(http_get(admin_port, "GET", "/nothing", buf, sizeof(buf)), 404);
    ASSERT_EQ(scrape("/stats.json", tmp("stats.json")), 200);
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import json,sys; d=json.load(open(\"%s\")); "
             "print(d[\"task_count\"], len(d[\"workers\"]))'",
             tmp("stats.json"));
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "4 2\n");

    /* The text from admin_port and from the CLI: both valid, both counting what was sent. */
    scrape_counting("a.txt", nall);
    snprintf(cmd, sizeof(cmd), "%s metrics --pid %d > %s", swoop_bin(), (int)h.pid, tmp("cli.txt"));
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    promtool(tmp("a.txt"));
    promtool(tmp("cli.txt"));
    char files[2][128];
    snprintf(files[0], sizeof(files[0]), "%s", tmp("a.txt"));
    snprintf(files[1], sizeof(files[1]), "%s", tmp("cli.txt"));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(check(files[i], NULL, "requests"), nall);
        ASSERT_EQ(check(files[i], NULL, "hops"), nall - nstatic); /* no hop for a static file */
        ASSERT_EQ(check(files[i], NULL, "n404"), n404);
        ASSERT_EQ(check(files[i], NULL, "task_runs"), ntask);
        ASSERT_EQ(check(files[i], NULL, "task_waits"), ntask);
        /* master (PROCESS), manager, admin, 2 workers, 1 task worker */
        ASSERT_EQ(check(files[i], NULL, "procs"), mode == SWOOP_MODE_PROCESS ? 6 : 5);
    }

    /* A worker SIGKILLed and restarted: no counter goes down. */
    srv_stats(&h, &st);
    pid_t victim = st.workers[0].pid;
    uint64_t starts = st.workers[0].starts;
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    WAIT_UNTIL((srv_stats(&h, &st), st.workers[0].starts > starts && st.workers[0].pid > 0 &&
                                        st.workers[0].pid != victim),
               5000);
    srv_wait_ready(h.pid, 2);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(http_get(h.port, "GET", "/hello", buf, sizeof(buf)), 200);
    scrape_counting("b.txt", nall + 3);
    promtool(tmp("b.txt"));
    ASSERT_GT(check(files[0], tmp("b.txt"), "monotonic"), 100);
    ASSERT_EQ(check(tmp("b.txt"), NULL, "requests"), nall + 3);

    /* Every worker and task worker stopped: admin_port answers within 1 s. */
    pid_t pids[8];
    int np = worker_pids(&h, pids, 8);
    ASSERT_EQ(np, 3);
    for (int i = 0; i < np; i++)
        ASSERT_EQ(kill(pids[i], SIGSTOP), 0);
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = swoop_test_now_ms();
        ASSERT_EQ(scrape("/metrics", tmp("c.txt")), 200);
        uint64_t ms = swoop_test_now_ms() - t0;
        if (ms >= 1000)
            FAIL("admin_port took %llu ms with the workers stopped", (unsigned long long)ms);
    }
    for (int i = 0; i < np; i++)
        ASSERT_EQ(kill(pids[i], SIGCONT), 0);
    promtool(tmp("c.txt"));

    /*
     * The admin process: the manager's child, not the manager (which stays
     * single-threaded: it forks), back with a new pid after a SIGKILL.
     */
    srv_stats(&h, &st);
    pid_t admin = st.admin_pid;
    ASSERT_GT(admin, 0);
    ASSERT_NE(admin, st.manager_pid);
    ASSERT_NE(admin, st.master_pid);
    ASSERT_EQ(parent_of(admin), st.manager_pid);
    if (!UNDER_TSAN) { /* TSan starts a thread of its own in a forked child */
        ASSERT_EQ(thread_count(admin), 1);
        ASSERT_EQ(thread_count(st.manager_pid), 1);
    }
    ASSERT_EQ(kill(admin, SIGKILL), 0);
    WAIT_UNTIL((srv_stats(&h, &st), st.admin_pid > 0 && st.admin_pid != admin), 5000);
    ASSERT_EQ(st.admin_port, admin_port);
    ASSERT_EQ(scrape("/metrics", tmp("c.txt")), 200);
    admin = st.admin_pid;
    srv_stop(&h, 5000);
    ASSERT(!swoop_test_pid_alive(admin));

    const char *names[] = {"check.py", "a.txt",      "b.txt",    "c.txt",
                           "cli.txt",  "stats.json", "pids.txt", "static.txt"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(tmp(names[i]));
    ASSERT_OK(rmdir(dir));
}

TEST_TIMEOUT(metrics_process, 60)
{
    run_metrics(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(metrics_base, 60)
{
    run_metrics(SWOOP_MODE_BASE);
}

/* `swoop metrics` usage errors, and a process without a server. */
TEST(metrics_cli_errors)
{
    char cmd[512], out[4096];
    snprintf(cmd, sizeof(cmd), "%s metrics 2>&1", swoop_bin());
    ASSERT_EQ(run(cmd, out, sizeof(out)), 2);
    ASSERT_NOT_NULL(strstr(out, "usage: swoop metrics"));
    snprintf(cmd, sizeof(cmd), "%s metrics --pid %d 2>&1", swoop_bin(), (int)getpid());
    ASSERT_EQ(run(cmd, out, sizeof(out)), 1);
    ASSERT_NOT_NULL(strstr(out, "no swoop server stats"));
}

/* admin_port values: checked when set (and again at start, from the struct). */
TEST(metrics_admin_port_values)
{
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_PROCESS));
    const char *good[] = {"",          "9600",       "0",           "127.0.0.1:9600",
                          "0.0.0.0:0", "[::1]:9600", "localhost:80"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ASSERT_OK(swoop_server_set(srv, "admin_port", good[i]));
    const char *bad[] = {"x",
                         "65536",
                         "9600x",
                         "::1:9600",
                         ":9600",
                         "[::1]:",
                         "-1",
                         "127.0.0.1:123456",
                         "a-very-long-host-name-that-does-not-fit-in-the-field.example.com:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (swoop_server_set(srv, "admin_port", bad[i]) != SWOOP_EINVAL)
            FAIL("admin_port \"%s\" accepted", bad[i]);
    }
    ASSERT_OK(swoop_server_set(srv, "enable_metrics", "0"));
    ASSERT_EQ(swoop_server_set(srv, "enable_metrics", "2"), SWOOP_EINVAL);
    ASSERT_OK(swoop_server_free(srv));
}

static void start_busy_admin(void *arg, int ready_fd)
{
    int port = *(int *)arg;
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_PROCESS));
    swoop_port_t *p;
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &p));
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    char v[32];
    snprintf(v, sizeof(v), "127.0.0.1:%d", port);
    ASSERT_OK(swoop_server_set(srv, "admin_port", v));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
    int rc = swoop_server_start(srv);
    ASSERT_EQ(write(ready_fd, &rc, sizeof(rc)), (ssize_t)sizeof(rc));
    ASSERT_OK(swoop_server_free(srv));
}

/* An admin_port in use fails the start at once, before any process is forked. */
TEST(metrics_admin_port_in_use)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(listen(fd, 1));
    socklen_t l = sizeof(a);
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &l));
    int port = ntohs(a.sin_port), rfd, rc = 0;
    pid_t pid = swoop_test_fork(start_busy_admin, &port, &rfd);
    struct pollfd pf = {.fd = rfd, .events = POLLIN};
    ASSERT_EQ(poll(&pf, 1, 5000 * (int)swoop_test_multiplier()), 1);
    ASSERT_EQ(read(rfd, &rc, sizeof(rc)), (ssize_t)sizeof(rc));
    ASSERT_LT(rc, 0);
    close(rfd);
    swoop_test_wait_ok(pid, 3000);
    close(fd);
}

static void setup_off(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "enable_metrics", "0"));
    ASSERT_OK(swoop_http_on_request(srv, handler));
}

/* enable_metrics 0: the histograms stay empty, the counters count. */
TEST_TIMEOUT(metrics_off, 30)
{
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_off, NULL, 2);
    char buf[4096];
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(http_get(h.port, "GET", "/hello", buf, sizeof(buf)), 200);
    static char text[1 << 18];
    int n = swoop_server_metrics_by_pid(h.pid, text, sizeof(text));
    ASSERT_GT(n, 0);
    ASSERT_LT(n, (int)sizeof(text));
    ASSERT_NOT_NULL(strstr(text, "\nswoop_http_responses_total{class=\"2xx\"} 3\n"));
    char line[128];
    snprintf(line, sizeof(line),
             "\nswoop_http_request_duration_seconds_count{port=\"%d\",class=\"2xx\"} 0\n", h.port);
    ASSERT_NOT_NULL(strstr(text, line));
    ASSERT_NOT_NULL(strstr(text, "\nswoop_ipc_hop_duration_seconds_count 0\n"));
    srv_stop(&h, 5000);
}

/* The sum of the samples of the metric family `name` (a gauge without a _suffix). */
static long long metric_sum(pid_t pid, const char *name)
{
    static char text[1 << 18];
    int n = swoop_server_metrics_by_pid(pid, text, sizeof(text));
    ASSERT_GT(n, 0);
    ASSERT_LT(n, (int)sizeof(text));
    long long sum = 0;
    size_t nl = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) != 0 || (p[nl] != '{' && p[nl] != ' '))
            continue;
        const char *sp = strchr(p, ' ');
        ASSERT_NOT_NULL(sp);
        sum += atoll(sp + 1);
    }
    return sum;
}

static void setup_big(swoop_server_t *srv, void *arg)
{
    setup(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "socket_buffer_size", "32M"));
}

/*
 * swoop_output_buffer_bytes: a response the reader does not take waits in
 * its connection's output buffer and shows in the owner's gauge; once read,
 * the gauge is back to 0. A task worker killed shows in
 * swoop_task_worker_restarts_total.
 */
static void output_buffer(swoop_mode_t mode)
{
    srv_handle_t h = srv_start(mode, setup_big, NULL, 2);
    ASSERT_EQ(metric_sum(h.pid, "swoop_output_buffer_bytes"), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    int small = 4096;
    ASSERT_OK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)h.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_OK(connect(fd, (struct sockaddr *)&a, sizeof(a)));
    /*
     * Keep-alive: the response is read to its Content-Length with the
     * connection open, so no close waits for the slow reader (a close gives
     * it max_wait_time, which a loaded TSan run can exceed).
     */
    const char *q = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_write(fd, q, strlen(q));
    /* The kernel takes a few MiB at most: the rest waits in the owner's buffer. */
    WAIT_UNTIL(metric_sum(h.pid, "swoop_output_buffer_bytes") >= (1ll << 20), 5000);
    printf("# buffered while the reader waits: %lld bytes\n",
           metric_sum(h.pid, "swoop_output_buffer_bytes"));
    int big = 1 << 20; /* now read it quickly */
    ASSERT_OK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big)));
    static char buf[1 << 16];
    size_t got = 0, want = 0, head = 0;
    uint64_t deadline = swoop_test_now_ms() + 10000 * swoop_test_multiplier();
    while (want == 0 || got < want) {
        ssize_t k = read(fd, buf + (head ? 0 : got), head ? sizeof(buf) : sizeof(buf) - 1 - got);
        ASSERT_GT(k, 0);
        got += (size_t)k;
        if (head == 0) {
            buf[got] = '\0';
            const char *end = strstr(buf, "\r\n\r\n");
            const char *cl = strstr(buf, "Content-Length: ");
            if (end && cl) {
                head = (size_t)(end + 4 - buf);
                want = head + (size_t)strtoull(cl + 16, NULL, 10);
            } else {
                ASSERT_LT(got, sizeof(buf) - 1);
            }
        }
        ASSERT(swoop_test_now_ms() < deadline);
    }
    ASSERT_EQ(got, want);
    ASSERT_EQ(want - head, (size_t)(8u << 20));
    WAIT_UNTIL(metric_sum(h.pid, "swoop_output_buffer_bytes") == 0, 3000);
    close(fd);

    ASSERT_EQ(metric_sum(h.pid, "swoop_task_worker_restarts_total"), 0);
    static char text[1 << 18];
    ASSERT_GT(swoop_server_metrics_by_pid(h.pid, text, sizeof(text)), 0);
    const char *tl = strstr(text, "swoop_process_resident_memory_bytes{role=\"task_worker\"");
    ASSERT_NOT_NULL(tl);
    int task = 0;
    ASSERT_EQ(sscanf(tl,
                     "swoop_process_resident_memory_bytes{role=\"task_worker\",id=\"%*d\","
                     "pid=\"%d\"}",
                     &task),
              1);
    ASSERT_GT(task, 0);
    ASSERT_EQ(kill(task, SIGKILL), 0);
    WAIT_UNTIL(metric_sum(h.pid, "swoop_task_worker_restarts_total") == 1, 5000);
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(metrics_output_buffer_process, 60)
{
    output_buffer(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(metrics_output_buffer_base, 60)
{
    output_buffer(SWOOP_MODE_BASE);
}
