/*
 * `swoop demo`: the project's main job (docs/demo.md). Two ports of one
 * server show the architecture working: HTTP and WebSocket on 127.0.0.1:9501
 * (the live dashboard and demo endpoints: demo_http.c), and a line protocol
 * on 127.0.0.1:9502 (this file). At start it prints both URLs and the
 * process tree (master and its reactor threads, manager, workers with
 * pids); then every line a client of the line port sends is a command:
 *   echo TEXT       TEXT comes back
 *   stats           the server's shared-memory stats as JSON
 *   after MS TEXT   TEXT comes back MS milliseconds later, from a timer
 *   crash           the worker aborts; the manager restarts it, the client
 *                   keeps its connection (PROCESS mode) and sees the new pid
 *   task N          counts the primes below N in a task worker (2 of them);
 *                   the reply comes from on_finish
 *   bigtask BYTES   a payload of BYTES round-trips through a task worker,
 *                   which checks its checksum (through the spill file above
 *                   8 KiB, a file of its own above 64 KiB)
 *   wait N          as task N, through swoop_server_taskwait (5 s timeout)
 *   limits          what this worker holds for its connections, and the caps
 *   help            this list
 * Options: --host H (127.0.0.1), --port P (HTTP, 9501), --line-port L (9502;
 * 0 when --port is 0 and L is not given), --mode process|base,
 * --set key=value (any server setting, repeatable), --pid-file F.
 *
 * One client must not take the machine: each connection may have at most
 * DEMO_CONN_TASKS tasks (task, bigtask) running, DEMO_CONN_BYTES bytes of
 * bigtask payloads among them, and DEMO_CONN_TIMERS `after` timers pending;
 * past a cap the command gets an "error: ... cap ..." line. The counts live
 * in the worker that serves the connection, and its timers are cleared when
 * it closes (a timer would otherwise outlive it, holding its text).
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <swoop/swoop.h>

#include "cli/cli.h"
#include "cli/demo.h"

#define DEMO_BIGTASK_MAX (64L << 20)
#define DEMO_CONN_TASKS  16
#define DEMO_CONN_BYTES  (128L << 20)
#define DEMO_CONN_TIMERS 64
#define DEMO_BUCKETS     256

static char demo_addr[160];
static char demo_http_url[192];
static int demo_line_index = 1; /* the line port's index: the HTTP port is listened first */

typedef struct demo_conn_s demo_conn_t;

/* An `after` timer, linked in its connection's list until it fires or is cleared. */
typedef struct later_s {
    struct later_s *prev, *next;
    demo_conn_t *dc;
    int64_t id;
    swoop_server_t *srv;
    size_t len;
    char text[];
} later_t;

/* What one connection holds in this worker: its running tasks and pending timers. */
struct demo_conn_s {
    demo_conn_t *next; /* in its hash bucket */
    swoop_conn_id_t conn;
    int ntasks;
    int64_t task_ids[DEMO_CONN_TASKS];
    uint64_t task_bytes[DEMO_CONN_TASKS];
    uint64_t bytes; /* bigtask payload bytes of the running tasks */
    int ntimers;
    later_t *timers;
};

static demo_conn_t *demo_conns[DEMO_BUCKETS]; /* per worker process */

static demo_conn_t **conn_slot(swoop_conn_id_t conn)
{
    demo_conn_t **pp = &demo_conns[(conn * 0x9e3779b97f4a7c15ull) >> 56];
    while (*pp && (*pp)->conn != conn)
        pp = &(*pp)->next;
    return pp;
}

/* The connection's record; with `make`, a new one when it has none. */
static demo_conn_t *conn_get(swoop_conn_id_t conn, int make)
{
    demo_conn_t **pp = conn_slot(conn);
    if (*pp == NULL && make) {
        *pp = calloc(1, sizeof(**pp));
        if (*pp)
            (*pp)->conn = conn;
    }
    return *pp;
}

/* Frees a record that holds nothing any more. */
static void conn_put(demo_conn_t *dc)
{
    if (dc == NULL || dc->ntasks > 0 || dc->timers != NULL)
        return;
    demo_conn_t **pp = conn_slot(dc->conn);
    *pp = dc->next;
    free(dc);
}

/* A task of this connection ended (result or error): its share is given back. */
static void conn_task_done(demo_conn_t *dc, int64_t task_id)
{
    for (int i = 0; dc && i < dc->ntasks; i++) {
        if (dc->task_ids[i] != task_id)
            continue;
        dc->bytes -= dc->task_bytes[i];
        dc->ntasks--;
        dc->task_ids[i] = dc->task_ids[dc->ntasks];
        dc->task_bytes[i] = dc->task_bytes[dc->ntasks];
        conn_put(dc);
        return;
    }
}

static void later_unlink(later_t *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        l->dc->timers = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->dc->ntimers--;
}

static void reply(swoop_server_t *srv, swoop_conn_id_t conn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply(swoop_server_t *srv, swoop_conn_id_t conn, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    swoop_server_send(srv, conn, buf, (size_t)n);
}

static void on_later(int64_t id, void *arg)
{
    later_t *l = arg;
    demo_conn_t *dc = l->dc;
    int rc = swoop_server_send(l->srv, dc->conn, l->text, l->len);
    if (rc < 0 && rc != SWOOP_ECLOSED)
        swoop_log(SWOOP_LOG_WARNING, rc, "demo: timer reply to conn %llu failed",
                  (unsigned long long)dc->conn);
    later_unlink(l);
    free(l);
    conn_put(dc);
}

/* Adler-style checksum: cheap, order-sensitive. */
static uint32_t checksum(const uint8_t *p, size_t len)
{
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < len; i++) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return b << 16 | a;
}

/* The number of primes below n (a sieve: n bytes, n <= DEMO_TASK_MAX). */
static uint64_t count_primes(uint64_t n)
{
    if (n < 3)
        return 0;
    uint8_t *comp = calloc(n, 1);
    if (comp == NULL)
        return 0;
    uint64_t count = 0;
    for (uint64_t i = 2; i < n; i++) {
        if (comp[i])
            continue;
        count++;
        for (uint64_t j = i * i; j < n; j += i)
            comp[j] = 1;
    }
    free(comp);
    return count;
}

static void on_task(swoop_server_t *srv, int64_t task_id, int src_worker_id, const void *data,
                    size_t len)
{
    demo_task_t t;
    demo_result_t r = {.worker_id = swoop_server_worker_id(srv)};
    if (len < sizeof(t)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "demo: task %lld of %zu bytes is too short",
                  (long long)task_id, len);
        swoop_server_task_finish(srv, &r, 0);
        return;
    }
    memcpy(&t, data, sizeof(t));
    r.conn = t.conn;
    r.http = t.http;
    r.kind = t.kind;
    r.n = t.n;
    if (t.kind == DEMO_PRIMES) {
        r.value = count_primes(t.n);
    } else {
        const char *path = swoop_server_task_path(srv);
        r.value = t.n == len - sizeof(t) &&
                  checksum((const uint8_t *)data + sizeof(t), len - sizeof(t)) == t.sum;
        snprintf(r.path, sizeof(r.path), "%s", path ? path : "inline");
    }
    int rc = swoop_server_task_finish(srv, &r, sizeof(r));
    if (rc < 0)
        swoop_log(SWOOP_LOG_WARNING, rc, "demo: the result of task %lld is lost",
                  (long long)task_id);
}

static void reply_result(swoop_server_t *srv, const demo_result_t *r, const char *how)
{
    if (r->kind == DEMO_PRIMES)
        reply(srv, r->conn, "%s %llu: %llu primes below %llu (task worker %d)\n", how,
              (unsigned long long)r->n, (unsigned long long)r->value, (unsigned long long)r->n,
              r->worker_id);
    else
        reply(srv, r->conn, "bigtask %llu: %s (task worker %d, %s)\n", (unsigned long long)r->n,
              r->value ? "checksum ok" : "checksum MISMATCH", r->worker_id, r->path);
}

static void on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    demo_result_t r;
    if (len != sizeof(r)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "demo: task %lld gave %zu bytes, not a result",
                  (long long)task_id, len);
        return;
    }
    memcpy(&r, data, sizeof(r));
    if (r.http != 0) {
        demo_http_task_done(srv, task_id, &r);
        return;
    }
    if (r.conn == 0)
        return; /* one of the dashboard's "post tasks": nobody waits for it */
    conn_task_done(conn_get(r.conn, 0), task_id);
    reply_result(srv, &r, "task");
}

static void on_task_error(swoop_server_t *srv, int64_t task_id, int error)
{
    swoop_log(SWOOP_LOG_WARNING, error, "demo: task %lld has no result", (long long)task_id);
    if (demo_http_task_error(srv, task_id, error))
        return;
    /* No result, so no connection id: look for the task among the connections. */
    for (int b = 0; b < DEMO_BUCKETS; b++) {
        for (demo_conn_t *dc = demo_conns[b]; dc; dc = dc->next) {
            for (int i = 0; i < dc->ntasks; i++) {
                if (dc->task_ids[i] != task_id)
                    continue;
                swoop_conn_id_t conn = dc->conn;
                conn_task_done(dc, task_id);
                reply(srv, conn, "error: task %lld has no result: %s\n", (long long)task_id,
                      swoop_strerror(error));
                return;
            }
        }
    }
}

/*
 * Admits one more task of `bytes` payload for the connection, or replies
 * with the cap it would pass and returns NULL.
 */
static demo_conn_t *conn_task_admit(swoop_server_t *srv, swoop_conn_id_t conn, const char *cmd,
                                    uint64_t bytes)
{
    demo_conn_t *dc = conn_get(conn, 1);
    if (dc == NULL) {
        reply(srv, conn, "error: %s: out of memory\n", cmd);
        return NULL;
    }
    if (dc->ntasks >= DEMO_CONN_TASKS) {
        reply(srv, conn,
              "error: %s: this connection has %d tasks running, the cap per connection\n", cmd,
              DEMO_CONN_TASKS);
        return NULL;
    }
    if (dc->bytes + bytes > (uint64_t)DEMO_CONN_BYTES) {
        reply(srv, conn,
              "error: %s: this connection has %llu bytes of tasks running; %llu more would pass "
              "the cap per connection (%ld)\n",
              cmd, (unsigned long long)dc->bytes, (unsigned long long)bytes, DEMO_CONN_BYTES);
        return NULL;
    }
    return dc;
}

static void conn_task_add(demo_conn_t *dc, int64_t id, uint64_t bytes)
{
    if (id < 0) {
        conn_put(dc);
        return;
    }
    dc->task_ids[dc->ntasks] = id;
    dc->task_bytes[dc->ntasks] = bytes;
    dc->ntasks++;
    dc->bytes += bytes;
}

/* Parses "N" in [lo, hi]; returns 0 or -1. */
static int parse_bound(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    while (*end == ' ')
        end++;
    if (end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static void cmd_task(swoop_server_t *srv, swoop_conn_id_t conn, const char *arg, int wait)
{
    long n;
    if (parse_bound(arg, 0, DEMO_TASK_MAX, &n) < 0) {
        reply(srv, conn, "error: %s wants N, 0 <= N <= %ld\n", wait ? "wait" : "task",
              DEMO_TASK_MAX);
        return;
    }
    demo_task_t t = {.conn = conn, .kind = DEMO_PRIMES, .n = (uint64_t)n};
    if (!wait) {
        demo_conn_t *dc = conn_task_admit(srv, conn, "task", 0);
        if (dc == NULL)
            return;
        int64_t id = swoop_server_task(srv, &t, sizeof(t), -1);
        conn_task_add(dc, id, 0);
        if (id < 0)
            reply(srv, conn, "error: task: %s\n", swoop_strerror((int)id));
        return;
    }
    void *res = NULL;
    size_t rlen = 0;
    int rc = swoop_server_taskwait(srv, &t, sizeof(t), DEMO_WAIT_MS, -1, &res, &rlen);
    if (rc < 0) {
        reply(srv, conn, "error: wait: %s\n", swoop_strerror(rc));
        return;
    }
    demo_result_t r;
    if (rlen == sizeof(r)) {
        memcpy(&r, res, sizeof(r));
        reply_result(srv, &r, "wait");
    } else {
        reply(srv, conn, "error: wait: a %zu-byte result\n", rlen);
    }
    swoop_free(res);
}

static void cmd_bigtask(swoop_server_t *srv, swoop_conn_id_t conn, const char *arg)
{
    long n;
    if (parse_bound(arg, 0, DEMO_BIGTASK_MAX, &n) < 0) {
        reply(srv, conn, "error: bigtask wants BYTES, 0 <= BYTES <= %ld\n", DEMO_BIGTASK_MAX);
        return;
    }
    demo_conn_t *dc = conn_task_admit(srv, conn, "bigtask", (uint64_t)n);
    if (dc == NULL)
        return;
    uint8_t *buf = malloc(sizeof(demo_task_t) + (size_t)n);
    if (buf == NULL) {
        conn_put(dc);
        reply(srv, conn, "error: bigtask: out of memory\n");
        return;
    }
    uint8_t *p = buf + sizeof(demo_task_t);
    for (long i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131 + (i >> 9));
    demo_task_t t = {.conn = conn, .kind = DEMO_BIG, .n = (uint64_t)n};
    t.sum = checksum(p, (size_t)n);
    memcpy(buf, &t, sizeof(t));
    int64_t id = swoop_server_task(srv, buf, sizeof(t) + (size_t)n, -1);
    free(buf);
    conn_task_add(dc, id, (uint64_t)n);
    if (id < 0)
        reply(srv, conn, "error: bigtask: %s\n", swoop_strerror((int)id));
}

static void cmd_after(swoop_server_t *srv, swoop_conn_id_t conn, long ms, const char *text)
{
    demo_conn_t *dc = conn_get(conn, 1);
    if (dc == NULL || dc->ntimers >= DEMO_CONN_TIMERS) {
        if (dc)
            reply(srv, conn,
                  "error: after: this connection has %d timers pending, the cap per "
                  "connection\n",
                  DEMO_CONN_TIMERS);
        else
            reply(srv, conn, "error: after: out of memory\n");
        return;
    }
    size_t tl = strlen(text);
    later_t *l = malloc(sizeof(*l) + tl + 2);
    if (l == NULL) {
        conn_put(dc);
        reply(srv, conn, "error: after: out of memory\n");
        return;
    }
    l->srv = srv;
    l->dc = dc;
    memcpy(l->text, text, tl);
    l->text[tl] = '\n';
    l->len = tl + 1;
    l->id = swoop_timer_after(ms, on_later, l);
    if (l->id < 0) {
        free(l);
        conn_put(dc);
        reply(srv, conn, "error: cannot arm a timer\n");
        return;
    }
    l->prev = NULL;
    l->next = dc->timers;
    if (dc->timers)
        dc->timers->prev = l;
    dc->timers = l;
    dc->ntimers++;
}

/* The connection closed: its timers go (their replies have nowhere to go), its record too. */
static void on_close(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id)
{
    demo_conn_t *dc = conn_get(conn, 0);
    if (dc == NULL)
        return;
    while (dc->timers) {
        later_t *l = dc->timers;
        swoop_timer_clear(l->id);
        later_unlink(l);
        free(l);
    }
    /* Results of its running tasks find no record and no connection. */
    dc->ntasks = 0;
    conn_put(dc);
}

/* What this worker holds for its connections, and the caps. */
static void cmd_limits(swoop_server_t *srv, swoop_conn_id_t conn)
{
    long nconns = 0, ntimers = 0, ntasks = 0;
    for (int b = 0; b < DEMO_BUCKETS; b++) {
        for (demo_conn_t *dc = demo_conns[b]; dc; dc = dc->next) {
            nconns++;
            ntimers += dc->ntimers;
            ntasks += dc->ntasks;
        }
    }
    reply(srv, conn,
          "limits: worker %d holds %ld timers and %ld tasks of %ld connections (per connection: "
          "%d tasks, %ld task bytes, %d timers)\n",
          swoop_server_worker_id(srv), ntimers, ntasks, nconns, DEMO_CONN_TASKS, DEMO_CONN_BYTES,
          DEMO_CONN_TIMERS);
}

static const char *help_text =
    "commands:\n"
    "  echo TEXT       TEXT comes back\n"
    "  stats           the server's stats (JSON, from shared memory)\n"
    "  after MS TEXT   TEXT comes back after MS milliseconds, from a timer in the worker\n"
    "  crash           this worker aborts; the manager restarts it (try stats afterwards)\n"
    "  task N          counts the primes below N (N <= 10000000) in a task worker\n"
    "  bigtask BYTES   BYTES (<= 67108864) round-trip through a task worker, checksum checked\n"
    "  wait N          as task N, the worker blocking in swoop_server_taskwait (5 s)\n"
    "  limits          this worker's timers and tasks, and the caps per connection\n"
    "  help            this list\n";

static void on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len)
{
    char line[2048];
    if (len >= sizeof(line))
        len = sizeof(line) - 1;
    memcpy(line, data, len);
    line[len] = '\0';
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    int wid = swoop_server_worker_id(srv);
    if (strncmp(line, "echo ", 5) == 0 || strcmp(line, "echo") == 0) {
        reply(srv, conn, "%s\n", len > 5 ? line + 5 : "");
    } else if (strcmp(line, "stats") == 0) {
        swoop_server_stats_t st;
        char json[8192];
        if (swoop_server_stats(srv, &st) == 0 &&
            swoop_server_stats_json(&st, json, sizeof(json)) > 0)
            reply(srv, conn, "%s\n", json);
        else
            reply(srv, conn, "error: no stats\n");
    } else if (strncmp(line, "after ", 6) == 0) {
        char *end;
        long ms = strtol(line + 6, &end, 10);
        if (end == line + 6 || ms < 1 || ms > 3600000) {
            reply(srv, conn, "usage: after MS TEXT (1 <= MS <= 3600000)\n");
            return;
        }
        while (*end == ' ')
            end++;
        cmd_after(srv, conn, ms, end);
    } else if (strcmp(line, "crash") == 0) {
        reply(srv, conn, "worker %d (pid %d) aborts now; the manager restarts it\n", wid,
              (int)getpid());
        swoop_log(SWOOP_LOG_WARNING, 0, "demo: crash requested by conn %llu: abort()",
                  (unsigned long long)conn);
        /* Let the reply leave first: sends are flushed after the callback returns. */
        swoop_timer_after(20, (swoop_timer_cb)(void (*)(void))abort, NULL);
    } else if (strncmp(line, "task ", 5) == 0 || strcmp(line, "task") == 0) {
        cmd_task(srv, conn, len > 5 ? line + 5 : "", 0);
    } else if (strncmp(line, "wait ", 5) == 0 || strcmp(line, "wait") == 0) {
        cmd_task(srv, conn, len > 5 ? line + 5 : "", 1);
    } else if (strncmp(line, "bigtask ", 8) == 0 || strcmp(line, "bigtask") == 0) {
        cmd_bigtask(srv, conn, len > 8 ? line + 8 : "");
    } else if (strcmp(line, "limits") == 0) {
        cmd_limits(srv, conn);
    } else if (strcmp(line, "help") == 0 || len == 0) {
        reply(srv, conn, "%s", help_text);
    } else {
        reply(srv, conn, "unknown command \"%s\"; try help\n", line);
    }
}

static void on_connect(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id)
{
    swoop_conn_info_t info;
    char peer[SWOOP_ADDR_STRLEN] = "?";
    if (swoop_server_conn_info(srv, conn, &info) < 0 || info.port_index != demo_line_index)
        return; /* HTTP speaks when asked */
    swoop_addr_format(&info.peer, peer, sizeof(peer));
    reply(srv, conn, "swoop demo: conn %llu from %s, reactor %d, worker %d (pid %d); try help\n",
          (unsigned long long)conn, peer, reactor_id, swoop_server_worker_id(srv), (int)getpid());
}

static void print_threads(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char cpath[320], name[64] = "?";
        snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
        FILE *f = fopen(cpath, "r");
        if (f) {
            if (fgets(name, sizeof(name), f))
                name[strcspn(name, "\n")] = '\0';
            fclose(f);
        }
        printf("  |   thread %-7s %s\n", e->d_name, name);
    }
    closedir(d);
}

static void print_tree(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    swoop_server_stats_t st;
    if (swoop_server_stats(srv, &st) < 0)
        return;
    for (int i = 0; i < st.worker_num; i++) {
        if (st.workers[i].pid <= 0)
            return; /* not all up yet: the tick comes back */
    }
    swoop_timer_clear(id);
    printf("process tree (%s mode):\n", st.mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS");
    if (st.mode == SWOOP_MODE_PROCESS) {
        printf("  master  pid %d (main thread accepts, %d reactor threads)\n", (int)st.master_pid,
               st.reactor_num);
        print_threads(st.master_pid);
        printf("  +- manager pid %d\n", (int)st.manager_pid);
    } else {
        printf("  manager pid %d (BASE: the starting process)\n", (int)st.manager_pid);
    }
    for (int i = 0; i < st.worker_num; i++)
        printf("     +- worker %d pid %d\n", i, (int)st.workers[i].pid);
    printf("try: open %s in a browser; telnet %s (or nc), then `help`\n", demo_http_url, demo_addr);
    fflush(stdout);
}

static void on_start(swoop_server_t *srv)
{
    /* PROCESS: the master's loop runs the tick; BASE prints from on_manager_start. */
    swoop_server_stats_t st;
    if (swoop_server_stats(srv, &st) == 0 && st.mode == SWOOP_MODE_PROCESS &&
        swoop_timer_tick(20, print_tree, srv) < 0)
        fprintf(stderr, "demo: cannot print the process tree\n");
}

static void on_manager_start(swoop_server_t *srv)
{
    /* BASE mode: the manager is the starting process; its timers run from here on. */
    swoop_server_stats_t st;
    if (swoop_server_stats(srv, &st) == 0 && st.mode == SWOOP_MODE_BASE)
        swoop_timer_tick(20, print_tree, srv);
}

static void on_worker_error(swoop_server_t *srv, int worker_id, pid_t pid, int code, int signo)
{
    printf("manager: worker %d (pid %d) died (exit code %d, signal %d); restarting it\n", worker_id,
           (int)pid, code, signo);
    fflush(stdout);
}

static void on_worker_start(swoop_server_t *srv, int worker_id)
{
    if (!swoop_server_is_task_worker(srv))
        demo_http_worker_start(srv, worker_id);
}

static void usage(void)
{
    fprintf(stderr, "usage: swoop demo [--host H] [--port P] [--line-port L] "
                    "[--mode process|base] [--set key=value]... [--pid-file F]\n");
}

int swoop_cli_demo(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 9501, line_port = -1;
    swoop_mode_t mode = SWOOP_MODE_PROCESS;
    const char *pid_file = NULL;
    const char *sets[64];
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--host") == 0 && v) {
            host = v;
            i++;
        } else if (strcmp(a, "--port") == 0 && v) {
            port = atoi(v);
            i++;
        } else if (strcmp(a, "--line-port") == 0 && v) {
            line_port = atoi(v);
            i++;
        } else if (strcmp(a, "--mode") == 0 && v) {
            if (strcmp(v, "base") == 0)
                mode = SWOOP_MODE_BASE;
            else if (strcmp(v, "process") == 0)
                mode = SWOOP_MODE_PROCESS;
            else {
                usage();
                return 2;
            }
            i++;
        } else if (strcmp(a, "--set") == 0 && v && nsets < 64) {
            sets[nsets++] = v;
            i++;
        } else if (strcmp(a, "--pid-file") == 0 && v) {
            pid_file = v;
            i++;
        } else {
            usage();
            return 2;
        }
    }
    swoop_server_t *srv;
    if (swoop_server_new(&srv, mode) < 0)
        return 1;
    int rc = 0;
    if (line_port < 0)
        line_port = port == 0 ? 0 : 9502;
    /* A reasonable default for a demo on a small machine. */
    swoop_server_set(srv, "worker_num", "2");
    swoop_server_set(srv, "task_worker_num", "2");
    if (rc == 0)
        rc = swoop_cli_apply_sets(srv, "demo", sets, nsets);
    if (rc == 0 && pid_file && swoop_server_set(srv, "pid_file", pid_file) < 0)
        rc = 2;
    swoop_sock_type_t type = strchr(host, ':') ? SWOOP_SOCK_TCP6 : SWOOP_SOCK_TCP;
    swoop_port_t *hp = NULL, *p = NULL;
    if (rc == 0 && swoop_server_listen(srv, host, port, type, &hp) < 0) {
        fprintf(stderr, "swoop demo: cannot listen on %s:%d\n", host, port);
        rc = 1;
    }
    if (rc == 0 && swoop_server_listen(srv, host, line_port, type, &p) < 0) {
        fprintf(stderr, "swoop demo: cannot listen on %s:%d\n", host, line_port);
        rc = 1;
    }
    /* The first port speaks HTTP and WebSocket; the second lines (one command each). */
    if (rc == 0 &&
        (swoop_port_set(hp, "open_http_protocol", "1") < 0 ||
         swoop_port_set(hp, "open_websocket_protocol", "1") < 0 ||
         swoop_port_set(p, "open_eof_split", "1") < 0 ||
         swoop_port_set(p, "package_eof", "\\n") < 0 ||
         swoop_port_set(p, "package_max_length", "64K") < 0 || demo_http_setup(srv) < 0)) {
        fprintf(stderr, "swoop demo: cannot set up its ports\n");
        rc = 1;
    }
    if (rc == 0) {
        swoop_server_on(srv, &(swoop_server_events_t){.on_start = on_start,
                                                      .on_manager_start = on_manager_start,
                                                      .on_worker_start = on_worker_start,
                                                      .on_worker_error = on_worker_error,
                                                      .on_connect = on_connect,
                                                      .on_receive = on_receive,
                                                      .on_close = on_close,
                                                      .on_task = on_task,
                                                      .on_finish = on_finish,
                                                      .on_task_error = on_task_error});
        snprintf(demo_addr, sizeof(demo_addr), "%s %d", host, swoop_port_number(p));
        demo_http_port = swoop_port_number(hp);
        snprintf(demo_http_host, sizeof(demo_http_host), "%s", host);
        int v6 = type == SWOOP_SOCK_TCP6;
        snprintf(demo_http_url, sizeof(demo_http_url), "http://%s%s%s:%d/", v6 ? "[" : "", host,
                 v6 ? "]" : "", demo_http_port);
        printf("swoop demo %s (%s mode); Ctrl-C stops it\n"
               "  dashboard: %s (HTTP and WebSocket; /metrics, /stats.json, /hello, ...)\n"
               "  line-protocol server on %s:%d (telnet %s, then help)\n",
               swoop_version(), mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", demo_http_url, host,
               swoop_port_number(p), demo_addr);
        fflush(stdout);
        rc = swoop_server_start(srv) == 0 ? 0 : 1;
    }
    swoop_server_free(srv);
    return rc;
}
