/*
 * The dashboard's data: a JSON snapshot of the server, one a second, that the
 * page (src/server/dashboard.html) turns into the process tree and charts.
 * Everything comes from the shared stats memfd and /proc, like the metrics:
 * the reader pays, the processes do nothing. Counters are sent as they are
 * (the page charts the difference between two snapshots), and the latency
 * histogram as per-bucket counts summed over ports and status classes, so
 * the page can read p50/p99 of the last second from the difference.
 *
 * The tree: the master and its threads (PROCESS), the manager, the event
 * workers, the task workers and admin_port's process. A worker's state is its busy flag (set
 * while it runs a callback); reactor threads and task workers have no flag
 * of their own, so theirs is the scheduler's: busy while /proc shows them
 * running (R), idle otherwise.
 */
#include <swoop/server.h>
#include <swoop/swoop.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/procstat.h"
#include "base/textout.h"
#include "server/dashboard.h"


typedef struct pstat_s {
    char state; /* /proc's scheduler state: R, S, D, T, Z ... */
    double cpu; /* user + system seconds */
    uint64_t rss;
} pstat_t;

/* A process's (tid 0) or one of its threads' state and CPU, and the process's RSS; -1 if gone. */
static int pstat_read(pid_t id, pid_t tid, pstat_t *out)
{
    swoop_procstat_t ps;
    if (swoop__procstat_read(id, tid, &ps) < 0)
        return -1;
    out->state = ps.state;
    out->cpu = ps.cpu_s;
    out->rss = 0;
    if (swoop__proc_rss(id, &out->rss) < 0)
        out->rss = 0;
    return 0;
}

/* One process or thread of the tree as a JSON object (with a leading comma after the first). */
static void proc_put(swoop_textout_t *o, int *first, const char *role, int id, pid_t pid,
                     pid_t parent, pid_t tid_of, const char *name, int busy, uint64_t requests,
                     uint64_t starts)
{
    pstat_t ps = {.state = '?'};
    if (pstat_read(tid_of > 0 ? tid_of : pid, tid_of > 0 ? pid : 0, &ps) < 0)
        return; /* gone between the read of its pid and now: the next second shows its successor */
    if (busy < 0)
        busy = ps.state == 'R';
    swoop__textout_put(
        o,
        "%s{\"role\":\"%s\",\"id\":%d,\"pid\":%d,\"parent\":%d,\"name\":\"%s\",\"state\":\"%s\","
        "\"cpu\":%.2f,\"rss\":%llu,\"requests\":%llu,\"starts\":%llu}",
        *first ? "" : ",", role, id, (int)pid, (int)parent, name, busy ? "busy" : "idle", ps.cpu,
        (unsigned long long)ps.rss, (unsigned long long)requests, (unsigned long long)starts);
    *first = 0;
}

/* The master's threads: the main one accepts, reactor-N serve connections; others skipped. */
static void threads_put(swoop_textout_t *o, int *first, swoop_srv_shared_t *gs, pid_t master)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)master);
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int tid = atoi(e->d_name);
        char cpath[128], name[32] = "";
        snprintf(cpath, sizeof(cpath), "/proc/%d/task/%d/comm", (int)master, tid);
        int fd = open(cpath, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, name, sizeof(name) - 1);
        close(fd);
        if (n <= 0)
            continue;
        name[n] = '\0';
        name[strcspn(name, "\n\"\\")] = '\0';
        int r = -1;
        if (sscanf(name, "reactor-%d", &r) != 1 || r < 0)
            continue;
        /*
         * Requests are counted by the workers; a reactor thread's own block
         * counts the bytes it read and wrote, which is what it shows.
         */
        uint64_t bytes = 0;
        if (r < gs->reactor_num) {
            swoop_srv_counter_t *c = swoop__counter(gs, gs->worker_num + r);
            bytes = atomic_load_explicit(&c->bytes_in, memory_order_relaxed) +
                    atomic_load_explicit(&c->bytes_out, memory_order_relaxed);
        }
        proc_put(o, first, "reactor", r, tid, master, master, name, -1, bytes, 1);
    }
    closedir(d);
}

int swoop__dash_json(swoop_srv_shared_t *gs, char *buf, size_t cap)
{
    swoop_textout_t o = {.buf = buf, .cap = cap, .n = 0};
    if (cap > 0)
        buf[0] = '\0';
    swoop_server_stats_t *st = swoop_malloc(sizeof(*st));
    if (st == NULL)
        return SWOOP_ENOMEM;
    swoop__stats_fill(gs, st);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t restarts = 0;
    for (int i = 0; i < gs->worker_num; i++) {
        uint64_t s = atomic_load(&gs->workers[i].starts);
        restarts += s > 1 ? s - 1 : 0;
    }
    int base = gs->mode == SWOOP_MODE_BASE;
    swoop__textout_put(
        &o,
        "{\"t\":%llu,\"mode\":\"%s\",\"version\":\"%s\",\"start_time\":%llu,\"conns\":%lld,"
        "\"requests\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,\"tasks_queued\":%lld,"
        "\"tasks_running\":%d,\"tasks_done\":%llu,\"restarts\":%llu,\"ws_in\":%llu,"
        "\"http\":[%llu,%llu,%llu,%llu],\"bounds_ns\":[",
        (unsigned long long)tv.tv_sec * 1000ull + (unsigned long long)tv.tv_usec / 1000ull,
        base ? "base" : "process", swoop_version(), (unsigned long long)st->start_time,
        (long long)st->connection_num, (unsigned long long)st->request_count,
        (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out,
        (long long)(st->tasking_num > 0 ? st->tasking_num : 0),
        st->task_worker_num - st->task_idle_worker_num, (unsigned long long)st->task_count,
        (unsigned long long)restarts, (unsigned long long)st->ws_messages_in,
        (unsigned long long)st->http_2xx, (unsigned long long)st->http_3xx,
        (unsigned long long)st->http_4xx, (unsigned long long)st->http_5xx);
    for (int i = 0; i < SWOOP_HIST_FINITE; i++)
        swoop__textout_put(&o, "%s%llu", i ? "," : "",
                           (unsigned long long)swoop__hist_bounds_ns[i]);
    /* Request latency: every port and class of every worker, per bucket (+Inf last). */
    uint64_t lat[SWOOP_HIST_FINITE + 1] = {0};
    for (int w = 0; w < gs->worker_num; w++) {
        for (int p = 0; p < gs->metric_ports; p++) {
            for (int c = 0; c < SWOOP_METRICS_CLASSES; c++) {
                swoop_srv_hist_t *h = swoop__hist_latency(gs, w, p, c);
                for (int i = 0; i <= SWOOP_HIST_FINITE; i++)
                    lat[i] += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
            }
        }
    }
    swoop__textout_put(&o, "],\"latency\":[");
    for (int i = 0; i <= SWOOP_HIST_FINITE; i++)
        swoop__textout_put(&o, "%s%llu", i ? "," : "", (unsigned long long)lat[i]);
    swoop__textout_put(&o, "],\"procs\":[");

    int first = 1;
    pid_t master = atomic_load(&gs->master_pid), manager = atomic_load(&gs->manager_pid);
    if (!base && master > 0) {
        proc_put(&o, &first, "master", 0, master, 0, 0, "swoop", -1, st->request_count, 1);
        threads_put(&o, &first, gs, master);
    }
    if (manager > 0)
        proc_put(&o, &first, "manager", 0, manager, base ? 0 : master, 0, "manager", -1, 0, 1);
    for (int i = 0; i < gs->worker_num; i++) {
        pid_t p = atomic_load(&gs->workers[i].pid);
        if (p > 0)
            proc_put(&o, &first, "worker", i, p, manager, 0, "worker",
                     atomic_load(&gs->workers[i].busy) != 0, atomic_load(&gs->workers[i].requests),
                     atomic_load(&gs->workers[i].starts));
    }
    for (int t = 0; t < gs->metric_tasks; t++) {
        pid_t p = atomic_load(swoop__task_pid(gs, t));
        if (p > 0)
            proc_put(&o, &first, "task_worker", gs->worker_num + t, p, manager, 0, "task worker",
                     -1, 0, 0);
    }
    /* admin_port's own process (admin.c): the manager's child, runs no user code. */
    pid_t admin = atomic_load(&gs->admin_pid);
    if (admin > 0)
        proc_put(&o, &first, "admin", 0, admin, manager, 0, "admin", -1, 0, 0);
    swoop__textout_put(&o, "]}");
    swoop_free(st);
    if (o.n > (size_t)INT32_MAX)
        return SWOOP_ENOSPC;
    return (int)o.n;
}

int swoop__dash_asset(const char *path, size_t len, const void **data, size_t *size,
                      const char **type)
{
    if ((len == 1 && path[0] == '/') || (len == 11 && memcmp(path, "/index.html", 11) == 0)) {
        *data = swoop__dash_html;
        *size = swoop__dash_html_len;
        *type = "text/html; charset=utf-8";
        return 0;
    }
    if (len == 9 && memcmp(path, "/chart.js", 9) == 0) {
        *data = swoop__dash_chartjs;
        *size = swoop__dash_chartjs_len;
        *type = "text/javascript; charset=utf-8";
        return 0;
    }
    return SWOOP_ENOENT;
}

int swoop_server_dashboard_json(swoop_server_t *srv, char *buf, size_t cap)
{
    if (srv == NULL || (buf == NULL && cap > 0))
        return SWOOP_EINVAL;
    if (srv->gs == NULL)
        return SWOOP_ESTATE;
    return swoop__dash_json(srv->gs, buf, cap);
}

int swoop_server_dashboard_asset(const char *path, const void **data, size_t *len,
                                 const char **content_type)
{
    if (path == NULL || data == NULL || len == NULL || content_type == NULL)
        return SWOOP_EINVAL;
    return swoop__dash_asset(path, strlen(path), data, len, content_type);
}
