/*
 * Metrics: the shared counters (stats.c) and the latency histograms of the
 * memfd rendered in the Prometheus text format 0.0.4 (docs/api/metrics.md).
 *
 * Every histogram block has one writer (an event worker, a task worker),
 * so an observation is two relaxed adds on lines no other process writes;
 * the reader sums the blocks of a series and makes the buckets cumulative.
 * Buckets are per bucket, not cumulative, in memory: one add per
 * observation instead of one per bound above it. _count is the sum of the
 * buckets the reader saw, so it always equals the +Inf bucket even while
 * writers go on.
 *
 * The bounds: a 1-2-5 series from 1 us to 50 s. Ten times the range of a
 * powers-of-two series of the same length would cost nothing, and 1-2-5
 * bounds read as round numbers on a dashboard (0.0002 s, not 0.000262144);
 * three buckets per decade keep a percentile within a factor of 2.5.
 * 1 us is below any request or task latency a process hop allows; 50 s is
 * past any timeout a server would keep a request for (the rest is +Inf).
 *
 * Per-process RSS and CPU come from /proc/PID/statm and /proc/PID/stat at
 * render time: the reader pays for them, the processes do nothing.
 */
#include <swoop/server.h>
#include <swoop/swoop.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <unistd.h>

#include "base/procstat.h"
#include "base/textout.h"
#include "server/internal.h"

const uint64_t swoop__hist_bounds_ns[SWOOP_HIST_FINITE] = {
    1000ull,       2000ull,       5000ull,       10000ull,       20000ull,       50000ull,
    100000ull,     200000ull,     500000ull,     1000000ull,     2000000ull,     5000000ull,
    10000000ull,   20000000ull,   50000000ull,   100000000ull,   200000000ull,   500000000ull,
    1000000000ull, 2000000000ull, 5000000000ull, 10000000000ull, 20000000000ull, 50000000000ull,
};

/* The same bounds as the le label writes them (seconds). */
static const char *const bound_text[SWOOP_HIST_FINITE] = {
    "0.000001", "0.000002", "0.000005", "0.00001", "0.00002", "0.00005", "0.0001", "0.0002",
    "0.0005",   "0.001",    "0.002",    "0.005",   "0.01",    "0.02",    "0.05",   "0.1",
    "0.2",      "0.5",      "1",        "2",       "5",       "10",      "20",     "50",
};


size_t swoop__metrics_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        const char *rep = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        size_t k = rep ? 2 : 1;
        if (n + k < cap)
            memcpy(dst + n, rep ? rep : s, k);
        n += k;
    }
    if (cap > 0)
        dst[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* One family's HELP and TYPE lines. */
static void family(swoop_textout_t *o, const char *name, const char *type, const char *help)
{
    swoop__textout_put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u(swoop_textout_t *o, const char *name, const char *labels, uint64_t v)
{
    swoop__textout_put(o, "%s%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
                       labels[0] ? "}" : "", (unsigned long long)v);
}

/* A counter with one sample and no labels: its HELP and TYPE lines, then the value. */
static void counter(swoop_textout_t *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "counter", help);
    sample_u(o, name, "", v);
}

/* A sum of observations: blocks summed into *acc. */
typedef struct hist_acc_s {
    uint64_t bucket[SWOOP_HIST_FINITE + 1];
    uint64_t sum_ns;
} hist_acc_t;

static void hist_add(hist_acc_t *acc, const swoop_srv_hist_t *h)
{
    for (int i = 0; i <= SWOOP_HIST_FINITE; i++)
        acc->bucket[i] += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    acc->sum_ns += atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}

static uint64_t hist_count(const hist_acc_t *acc)
{
    uint64_t c = 0;
    for (int i = 0; i <= SWOOP_HIST_FINITE; i++)
        c += acc->bucket[i];
    return c;
}

/* One histogram series: cumulative buckets, +Inf, _sum (seconds), _count. */
static void hist_put(swoop_textout_t *o, const char *name, const char *labels,
                     const hist_acc_t *acc)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i < SWOOP_HIST_FINITE; i++) {
        cum += acc->bucket[i];
        swoop__textout_put(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep, bound_text[i],
                           (unsigned long long)cum);
    }
    cum += acc->bucket[SWOOP_HIST_FINITE];
    swoop__textout_put(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                       (unsigned long long)cum);
    swoop__textout_put(o, "%s_sum%s%s%s %llu.%09llu\n", name, labels[0] ? "{" : "", labels,
                       labels[0] ? "}" : "", (unsigned long long)(acc->sum_ns / 1000000000ull),
                       (unsigned long long)(acc->sum_ns % 1000000000ull));
    swoop__textout_put(o, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
                       labels[0] ? "}" : "", (unsigned long long)cum);
}

/* CPU seconds and resident bytes of `pid` from /proc; -1 if gone. */
static int proc_usage(pid_t pid, double *cpu_s, uint64_t *rss_bytes)
{
    swoop_procstat_t ps;
    if (swoop__procstat_read(pid, 0, &ps) < 0 || swoop__proc_rss(pid, rss_bytes) < 0)
        return -1;
    *cpu_s = ps.cpu_s;
    return 0;
}

typedef struct proc_ref_s {
    const char *role;
    int id;
    pid_t pid;
    int ok; /* its /proc figures were read */
    double cpu;
    uint64_t rss;
} proc_ref_t;

/* Every process of the server with a pid now: master, manager, workers, task workers. */
static int procs_list(swoop_srv_shared_t *gs, proc_ref_t *out, int max)
{
    int n = 0;
    pid_t master = atomic_load(&gs->master_pid), manager = atomic_load(&gs->manager_pid);
    /* BASE: the master is the manager: one process, named once. */
    if (master > 0 && master != manager && n < max)
        out[n++] = (proc_ref_t){.role = "master", .pid = master};
    if (manager > 0 && n < max)
        out[n++] = (proc_ref_t){.role = "manager", .pid = manager};
    pid_t admin = atomic_load(&gs->admin_pid);
    if (admin > 0 && n < max)
        out[n++] = (proc_ref_t){.role = "admin", .pid = admin};
    for (int i = 0; i < gs->worker_num && n < max; i++) {
        pid_t p = atomic_load(&gs->workers[i].pid);
        if (p > 0)
            out[n++] = (proc_ref_t){.role = "worker", .id = i, .pid = p};
    }
    for (int t = 0; t < gs->metric_tasks && n < max; t++) {
        pid_t p = atomic_load(swoop__task_pid(gs, t));
        if (p > 0)
            out[n++] = (proc_ref_t){.role = "task_worker", .id = t, .pid = p};
    }
    return n;
}

static const char *const class_name[SWOOP_METRICS_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

int swoop__metrics_render(swoop_srv_shared_t *gs, char *buf, size_t cap)
{
    swoop_textout_t o = {.buf = buf, .cap = cap, .n = 0};
    if (cap > 0)
        buf[0] = '\0';
    swoop_server_stats_t *st = swoop_malloc(sizeof(*st));
    if (st == NULL)
        return SWOOP_ENOMEM;
    swoop__stats_fill(gs, st);
    char lab[256], esc[128];

    family(&o, "swoop_info", "gauge", "The server's mode and library version (value 1).");
    swoop__metrics_escape(esc, sizeof(esc), swoop_version());
    swoop__textout_put(&o, "swoop_info{mode=\"%s\",version=\"%s\"} 1\n",
                       gs->mode == SWOOP_MODE_BASE ? "base" : "process", esc);
    family(&o, "swoop_start_time_seconds", "gauge", "Unix time the server started.");
    sample_u(&o, "swoop_start_time_seconds", "", st->start_time);

    family(&o, "swoop_connections_open", "gauge", "Connections open now.");
    swoop__textout_put(&o, "swoop_connections_open %lld\n", (long long)st->connection_num);
    counter(&o, "swoop_connections_accepted_total", "Connections accepted.", st->accept_count);
    counter(&o, "swoop_connections_closed_total", "Connections closed.", st->close_count);
    counter(&o, "swoop_requests_total",
            "Messages delivered to workers: HTTP requests, framed packets, datagrams.",
            st->request_count);
    counter(&o, "swoop_received_bytes_total", "Bytes read from clients.", st->bytes_in);
    counter(&o, "swoop_sent_bytes_total", "Bytes written to clients.", st->bytes_out);

    family(&o, "swoop_http_responses_total", "counter", "HTTP responses by status class.");
    uint64_t cls[4] = {st->http_2xx, st->http_3xx, st->http_4xx, st->http_5xx};
    for (int c = 0; c < 4; c++) {
        snprintf(lab, sizeof(lab), "class=\"%s\"", class_name[c + 1]);
        sample_u(&o, "swoop_http_responses_total", lab, cls[c]);
    }
    counter(&o, "swoop_http_bad_requests_total",
            "HTTP requests the parser refused (400, 413, 431, 501, ...).", st->http_bad_requests);

    family(&o, "swoop_http_request_duration_seconds", "histogram",
           "HTTP requests by port and status class: from the connection owner having the whole "
           "request to the response's last byte handed back to it (static files: queued).");
    for (int p = 0; p < gs->metric_ports; p++) {
        for (int c = 0; c < SWOOP_METRICS_CLASSES; c++) {
            hist_acc_t acc = {0};
            for (int w = 0; w < gs->worker_num; w++)
                hist_add(&acc, swoop__hist_latency(gs, w, p, c));
            for (int r = 0; r < gs->reactor_num; r++) /* static files of PROCESS owners */
                hist_add(&acc, swoop__hist_owner(gs, r, p, c));
            /* HTTP ports always show 2xx..5xx (stable series); any other only once seen. */
            if (hist_count(&acc) == 0 && !((gs->port_http >> p & 1u) && c > 0))
                continue;
            snprintf(lab, sizeof(lab), "port=\"%u\",class=\"%s\"", (unsigned)gs->port_num[p],
                     class_name[c]);
            hist_put(&o, "swoop_http_request_duration_seconds", lab, &acc);
        }
    }
    family(&o, "swoop_ipc_hop_duration_seconds", "histogram",
           "HTTP requests: from the connection owner handing one on to a worker taking it.");
    {
        hist_acc_t acc = {0};
        for (int w = 0; w < gs->worker_num; w++)
            hist_add(&acc, swoop__hist_hop(gs, w));
        hist_put(&o, "swoop_ipc_hop_duration_seconds", "", &acc);
    }

    counter(&o, "swoop_websocket_messages_received_total",
            "WebSocket messages delivered to workers.", st->ws_messages_in);
    counter(&o, "swoop_websocket_pushes_dropped_total",
            "WebSocket pushes dropped for a slow reader (policy drop).", st->ws_dropped);
    counter(&o, "swoop_websocket_slow_closed_total",
            "WebSocket connections closed for a slow reader (policy close).", st->ws_slow_closed);
    counter(&o, "swoop_broadcast_batched_sends_total",
            "Broadcast writes that went through io_uring.", st->sends_batched);

    family(&o, "swoop_worker_busy", "gauge", "1 while the event worker runs a callback.");
    for (int i = 0; i < gs->worker_num; i++) {
        snprintf(lab, sizeof(lab), "worker=\"%d\"", i);
        sample_u(&o, "swoop_worker_busy", lab, (uint64_t)atomic_load(&gs->workers[i].busy));
    }
    family(&o, "swoop_worker_starts_total", "counter", "Processes started for the worker id.");
    uint64_t restarts = 0;
    for (int i = 0; i < gs->worker_num; i++) {
        uint64_t s = atomic_load(&gs->workers[i].starts);
        restarts += s > 1 ? s - 1 : 0;
        snprintf(lab, sizeof(lab), "worker=\"%d\"", i);
        sample_u(&o, "swoop_worker_starts_total", lab, s);
    }
    counter(&o, "swoop_worker_restarts_total",
            "Event worker processes started after the first of their id (crashes, reloads, "
            "max_request).",
            restarts);

    family(&o, "swoop_task_worker_restarts_total", "counter",
           "Task worker processes started after the first of their id (crashes, reloads, "
           "max_request).");
    {
        uint64_t s = atomic_load(&gs->task.starts), n = (uint64_t)gs->task.worker_num;
        sample_u(&o, "swoop_task_worker_restarts_total", "", s > n ? s - n : 0);
    }

    family(&o, "swoop_output_buffer_bytes", "gauge",
           "Bytes waiting in the output buffers of the connections of each connection owner "
           "(PROCESS: reactor threads; BASE: workers), files to send not included.");
    for (int i = 0; i < gs->worker_num + gs->reactor_num; i++) {
        /* PROCESS workers own no connection: their blocks would only add zeros. */
        if (gs->mode == SWOOP_MODE_PROCESS && i < gs->worker_num)
            continue;
        int64_t v =
            atomic_load_explicit(&swoop__counter(gs, i)->out_buffered, memory_order_relaxed);
        snprintf(lab, sizeof(lab), "owner=\"%s\",id=\"%d\"",
                 i < gs->worker_num ? "worker" : "reactor",
                 i < gs->worker_num ? i : i - gs->worker_num);
        swoop__textout_put(&o, "swoop_output_buffer_bytes{%s} %lld\n", lab,
                           (long long)(v > 0 ? v : 0));
    }

    counter(&o, "swoop_tls_handshakes_total", "TLS handshakes completed on SWOOP_SSL ports.",
            st->tls_handshakes);
    counter(&o, "swoop_tls_handshake_failures_total",
            "TLS handshakes that failed, were abandoned by the client or timed out.",
            st->tls_handshake_failures);
    counter(&o, "swoop_lingering_closes_total",
            "Closes that lingered: the FIN, then the client's bytes read and dropped.",
            st->lingering_closes);

    family(&o, "swoop_task_workers", "gauge", "Task worker processes configured.");
    sample_u(&o, "swoop_task_workers", "", (uint64_t)gs->task.worker_num);
    family(&o, "swoop_task_workers_busy", "gauge", "Task workers in on_task now.");
    sample_u(&o, "swoop_task_workers_busy", "",
             (uint64_t)(st->task_worker_num - st->task_idle_worker_num));
    family(&o, "swoop_tasks_queued", "gauge", "Tasks posted and not yet taken by a task worker.");
    swoop__textout_put(&o, "swoop_tasks_queued %lld\n",
                       (long long)(st->tasking_num > 0 ? st->tasking_num : 0));
    counter(&o, "swoop_tasks_taken_total", "Tasks a task worker took.",
            atomic_load(&gs->task.taken));
    counter(&o, "swoop_tasks_completed_total", "on_task calls that returned.", st->task_count);
    counter(&o, "swoop_tasks_failed_total",
            "Tasks reported without a result (on_task_error, a failed taskwait).", st->task_failed);
    counter(&o, "swoop_tasks_redelivered_total",
            "Tasks delivered again after their task worker died.", st->task_redelivered);
    static const char *const task_hist[2][2] = {
        {"swoop_task_wait_duration_seconds", "Tasks: from posted to taken by a task worker."},
        {"swoop_task_run_duration_seconds", "Tasks: on_task's run time."}};
    for (int run = 0; run < 2; run++) {
        family(&o, task_hist[run][0], "histogram", task_hist[run][1]);
        hist_acc_t acc = {0};
        for (int t = 0; t < gs->metric_tasks; t++)
            hist_add(&acc, swoop__hist_task(gs, t, run));
        hist_put(&o, task_hist[run][0], "", &acc);
    }

    int maxp = gs->worker_num + gs->metric_tasks + 3;
    proc_ref_t *procs = swoop_calloc((size_t)maxp, sizeof(*procs));
    int np = procs ? procs_list(gs, procs, maxp) : 0;
    for (int i = 0; i < np; i++)
        procs[i].ok = proc_usage(procs[i].pid, &procs[i].cpu, &procs[i].rss) == 0;
    family(&o, "swoop_process_resident_memory_bytes", "gauge",
           "Resident memory of each server process (/proc/PID/statm).");
    for (int i = 0; i < np; i++) {
        if (!procs[i].ok)
            continue;
        snprintf(lab, sizeof(lab), "role=\"%s\",id=\"%d\",pid=\"%d\"", procs[i].role, procs[i].id,
                 (int)procs[i].pid);
        sample_u(&o, "swoop_process_resident_memory_bytes", lab, procs[i].rss);
    }
    family(&o, "swoop_process_cpu_seconds_total", "counter",
           "User and system CPU time of each server process (/proc/PID/stat; the master's "
           "includes its reactor threads).");
    for (int i = 0; i < np; i++) {
        if (!procs[i].ok)
            continue;
        swoop__textout_put(
            &o, "swoop_process_cpu_seconds_total{role=\"%s\",id=\"%d\",pid=\"%d\"} %.2f\n",
            procs[i].role, procs[i].id, (int)procs[i].pid, procs[i].cpu);
    }
    swoop_free(procs);
    swoop_free(st);
    if (o.n > (size_t)INT32_MAX)
        return SWOOP_ENOSPC;
    return (int)o.n;
}

int swoop_server_metrics(swoop_server_t *srv, char *buf, size_t cap)
{
    if (srv == NULL || (buf == NULL && cap > 0))
        return SWOOP_EINVAL;
    if (srv->gs == NULL)
        return SWOOP_ESTATE;
    return swoop__metrics_render(srv->gs, buf, cap);
}

int swoop_server_metrics_by_pid(pid_t pid, char *buf, size_t cap)
{
    if (buf == NULL && cap > 0)
        return SWOOP_EINVAL;
    swoop_srv_shared_t *gs;
    size_t size;
    int rc = swoop__stats_map_pid(pid, &gs, &size);
    if (rc < 0)
        return rc;
    rc = swoop__metrics_render(gs, buf, cap);
    munmap(gs, size);
    return rc;
}
