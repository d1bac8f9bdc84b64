/*
 * Stats: the counters every server process keeps in the shared memfd,
 * summed for swoop_server_stats, read from outside by pid (the CLI maps
 * the memfd through /proc), and written as JSON.
 */
#include <swoop/server.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/ratelimit.h"
#include "net/socket.h"
#include "server/internal.h"

/* ---- stats ---- */

static void stats_fill(swoop_srv_shared_t *gs, const swoop_proc_stat_t *ps,
                       swoop_server_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->start_time = atomic_load(&gs->start_time);
    out->connection_num = atomic_load(&gs->connection_num);
    out->accept_count = atomic_load(&gs->accept_count);
    out->close_count = atomic_load(&gs->close_count);
    for (int i = 0; i < gs->worker_num + gs->reactor_num; i++) {
        swoop_srv_counter_t *c = swoop__counter(gs, i);
        out->request_count += atomic_load(&c->requests);
        out->bytes_in += atomic_load(&c->bytes_in);
        out->bytes_out += atomic_load(&c->bytes_out);
        out->http_2xx += atomic_load(&c->http_status[0]);
        out->http_3xx += atomic_load(&c->http_status[1]);
        out->http_4xx += atomic_load(&c->http_status[2]);
        out->http_5xx += atomic_load(&c->http_status[3]);
        out->http_bad_requests += atomic_load(&c->http_bad);
        out->ws_messages_in += atomic_load(&c->ws_messages_in);
        out->ws_dropped += atomic_load(&c->ws_dropped);
        out->ws_slow_closed += atomic_load(&c->ws_slow_closed);
        out->sends_batched += atomic_load(&c->sends_batched);
        out->tls_handshakes += atomic_load(&c->tls_handshakes);
        out->tls_handshake_failures += atomic_load(&c->tls_failed);
        out->lingering_closes += atomic_load(&c->lingering);
    }
    out->worker_num = gs->worker_num;
    out->reactor_num = gs->reactor_num;
    out->mode = gs->mode;
    out->master_pid = atomic_load(&gs->master_pid);
    out->manager_pid = atomic_load(&gs->manager_pid);
    out->admin_port = gs->admin_port;
    out->admin_pid = atomic_load(&gs->admin_pid);
    const swoop_srv_task_stats_t *t = &gs->task;
    out->task_worker_num = t->worker_num;
    out->task_idle_worker_num = t->worker_num - atomic_load(&t->busy);
    out->tasking_num = (int64_t)(atomic_load(&t->posted) - atomic_load(&t->taken));
    out->task_count = atomic_load(&t->done);
    out->task_redelivered = atomic_load(&t->redelivered);
    out->task_failed = atomic_load(&t->failed);
    out->task_queue_num = out->task_queue_bytes = -1;
    struct msqid_ds ds;
    if (t->queue_id >= 0 && t->worker_num > 0 && msgctl(t->queue_id, IPC_STAT, &ds) == 0) {
        out->task_queue_num = (int64_t)ds.msg_qnum;
        out->task_queue_bytes = (int64_t)ds.__msg_cbytes;
    }
    for (int i = 0; i < gs->worker_num && i < SWOOP_STATS_WORKERS_MAX; i++) {
        const swoop_srv_wstat_t *w = &gs->workers[i];
        out->workers[i].pid = atomic_load(&w->pid);
        out->workers[i].busy = atomic_load(&w->busy);
        out->workers[i].requests = atomic_load(&w->requests);
        out->workers[i].starts = atomic_load(&w->starts);
        (void)ps;
    }
}

void swoop__stats_fill(swoop_srv_shared_t *gs, swoop_server_stats_t *out)
{
    stats_fill(gs, NULL, out);
}

int swoop_server_stats(swoop_server_t *srv, swoop_server_stats_t *out)
{
    if (srv == NULL || out == NULL)
        return SWOOP_EINVAL;
    if (srv->gs == NULL)
        return SWOOP_ESTATE;
    stats_fill(srv->gs, srv->proc_stats, out);
    return 0;
}

int swoop__stats_map_pid(pid_t pid, swoop_srv_shared_t **gs_out, size_t *size_out)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    for (int fd = 0; fd < 4096; fd++) {
        char path[96], target[256];
        snprintf(path, sizeof(path), "%s/%d", dir, fd);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0) {
            if (errno == EACCES)
                return SWOOP_EACCES;
            continue;
        }
        target[n] = '\0';
        if (strstr(target, "/memfd:" SWOOP_STATS_MEMFD) != target)
            continue;
        int mfd = open(path, O_RDONLY | O_CLOEXEC);
        if (mfd < 0)
            return -errno;
        struct stat st;
        if (fstat(mfd, &st) < 0 || (size_t)st.st_size < sizeof(swoop_srv_shared_t)) {
            close(mfd);
            return SWOOP_EPROTO;
        }
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, mfd, 0);
        int err = errno;
        close(mfd);
        if (p == MAP_FAILED)
            return -err;
        swoop_srv_shared_t *gs = p; /* read only: the mapping is PROT_READ */
        if (gs->magic != SWOOP_STATS_MAGIC || gs->version != SWOOP_STATS_VERSION ||
            gs->worker_num < 0 || gs->worker_num > SERVER_WORKER_MAX || gs->reactor_num < 0 ||
            gs->reactor_num > SERVER_REACTOR_MAX || gs->metric_ports < 0 ||
            gs->metric_ports > SWOOP_METRICS_PORTS_MAX || gs->metric_tasks < 0 ||
            gs->metric_tasks > SERVER_WORKER_MAX || swoop__shared_size(gs) > (size_t)st.st_size) {
            munmap(p, (size_t)st.st_size);
            return SWOOP_EPROTO;
        }
        *gs_out = gs;
        *size_out = (size_t)st.st_size;
        return 0;
    }
    return SWOOP_ENOENT;
}

int swoop_server_stats_by_pid(pid_t pid, swoop_server_stats_t *out)
{
    swoop_srv_shared_t *gs;
    size_t size;
    int rc = swoop__stats_map_pid(pid, &gs, &size);
    if (rc < 0)
        return rc;
    stats_fill(gs, NULL, out);
    munmap(gs, size);
    return 0;
}

int swoop_server_stats_json(const swoop_server_stats_t *st, char *buf, size_t cap)
{
    size_t n = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__);                            \
        if (k_ < 0)                                                                                \
            return SWOOP_EINVAL;                                                                   \
        n += (size_t)k_;                                                                           \
    } while (0)
    PUT("{\"mode\":\"%s\",\"master_pid\":%d,\"manager_pid\":%d,\"start_time\":%llu,"
        "\"worker_num\":%d,\"reactor_num\":%d,\"connection_num\":%lld,\"accept_count\":%llu,"
        "\"close_count\":%llu,\"request_count\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,"
        "\"task_worker_num\":%d,\"task_idle_worker_num\":%d,\"tasking_num\":%lld,"
        "\"task_count\":%llu,\"task_redelivered\":%llu,\"task_failed\":%llu,"
        "\"task_queue_num\":%lld,\"task_queue_bytes\":%lld,\"http_2xx\":%llu,\"http_3xx\":%llu,"
        "\"http_4xx\":%llu,\"http_5xx\":%llu,\"http_bad_requests\":%llu,\"ws_messages_in\":%llu,"
        "\"ws_dropped\":%llu,\"ws_slow_closed\":%llu,\"sends_batched\":%llu,\"tls_handshakes\":%"
        "llu,"
        "\"tls_handshake_failures\":%llu,\"lingering_closes\":%llu,\"admin_port\":%d,"
        "\"admin_pid\":%d,\"workers\":[",
        st->mode == SWOOP_MODE_BASE ? "base" : "process", (int)st->master_pid, (int)st->manager_pid,
        (unsigned long long)st->start_time, st->worker_num, st->reactor_num,
        (long long)st->connection_num, (unsigned long long)st->accept_count,
        (unsigned long long)st->close_count, (unsigned long long)st->request_count,
        (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out, st->task_worker_num,
        st->task_idle_worker_num, (long long)st->tasking_num, (unsigned long long)st->task_count,
        (unsigned long long)st->task_redelivered, (unsigned long long)st->task_failed,
        (long long)st->task_queue_num, (long long)st->task_queue_bytes,
        (unsigned long long)st->http_2xx, (unsigned long long)st->http_3xx,
        (unsigned long long)st->http_4xx, (unsigned long long)st->http_5xx,
        (unsigned long long)st->http_bad_requests, (unsigned long long)st->ws_messages_in,
        (unsigned long long)st->ws_dropped, (unsigned long long)st->ws_slow_closed,
        (unsigned long long)st->sends_batched, (unsigned long long)st->tls_handshakes,
        (unsigned long long)st->tls_handshake_failures, (unsigned long long)st->lingering_closes,
        st->admin_port, (int)st->admin_pid);
    for (int i = 0; i < st->worker_num && i < SWOOP_STATS_WORKERS_MAX; i++) {
        const swoop_worker_stats_t *w = &st->workers[i];
        PUT("%s{\"id\":%d,\"pid\":%d,\"state\":\"%s\",\"requests\":%llu,\"starts\":%llu}",
            i ? "," : "", i, (int)w->pid, w->busy ? "busy" : "idle",
            (unsigned long long)w->requests, (unsigned long long)w->starts);
    }
    PUT("]}");
#undef PUT
    if (n >= cap)
        return SWOOP_ENOSPC;
    return (int)n;
}
