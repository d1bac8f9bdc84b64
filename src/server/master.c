/*
 * PROCESS mode, the master process (DESIGN.md section 1). Start order: the
 * shared memory and every channel exist already (server.c); the master
 * forks the manager first, while it is still single-threaded; then it
 * writes the pid file, starts its signal watchers (which block the signals
 * for every thread made afterwards), starts the reactor threads and only
 * then accepts. The main thread accepts in batches and hands each
 * connection to reactor thread fd % reactor_num through a loop post; every
 * connection is then touched only by that thread.
 *
 * Reactor thread r and worker w talk over socketpair (w, r): DATA, CONNECT,
 * CLOSE and DGRAM go to the worker, SEND, CLOSE (acknowledgement),
 * CLOSE_REQ, PAUSE and RESUME come back, so a reply always reaches the
 * thread that owns its connection without a hop between threads. With
 * ipc_batch, the messages of one wake-up are queued and leave with one
 * sendmmsg per channel after the loop iteration.
 *
 * Shutdown (SIGTERM, SIGINT or a worker's swoop_server_shutdown) drains in
 * three phases. 1. Intake: the master closes its listening stream sockets
 * (new connects are refused at once) and posts an intake stop to each
 * reactor thread, which reads each connection one last time and then no
 * more; once its queues to the workers are empty it posts an acknowledgement
 * back. When every thread acknowledged (or INTAKE_TIMEOUT_MS passed) the
 * master SIGTERMs the manager. 2. The workers (worker.c) handle what their
 * channels hold, flush their replies and exit (the manager SIGKILLs them
 * after max_wait_time). 3. When the manager is reaped, each reactor thread
 * reads every worker channel to the end, closes the connections with
 * nothing to write (FIN) and keeps writing the others until they are
 * flushed and closed, or resets them at the deadline: max_wait_time (plus
 * the intake timeout) after the shutdown began, so the whole tree is gone
 * within max_wait_time + 1 s. The threads are joined, the pid file is
 * removed and swoop_server_start returns.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/timer.h>

#include "base/ratelimit.h"
#include "event/internal.h"
#include "net/socket.h"
#include "server/internal.h"

#define PIPE_BATCHES      8
#define ACCEPT_PAUSE_MS   100
#define INTAKE_TIMEOUT_MS 500 /* shutdown: reactors' queues to workers must empty by then */
/*
 * Shutdown: a manager still alive this long past max_wait_time (its own
 * SIGKILL deadlines start up to INTAKE_TIMEOUT_MS after ours) is stuck
 * (stopped, or in a blocking on_worker_error / on_manager_stop): the master
 * SIGKILLs it, and its children die with it (PR_SET_PDEATHSIG), so the
 * tree is still gone within max_wait_time + 1 s.
 */
#define ESCALATE_MARGIN_MS 600

typedef struct pending_s {
    int fd;
    swoop_conn_id_t id;
    swoop_port_t *port;
} pending_t;

typedef struct handoff_s {
    swoop_reactor_t *r;
    int n;
    pending_t items[];
} handoff_t;

/* Master-thread state (one server per process runs at a time). */
static swoop_signal_t sig_term, sig_int, sig_quit, sig_usr1, sig_usr2, sig_chld, sig_rtmin;
static int master_exit_rc;
static swoop_loop_t *master_loop; /* the main thread's loop (reactor threads post to it) */

/* ---- the manager process ---- */

static void hook_manager_start(void *data)
{
    swoop_server_t *srv = data;
    if (srv->events.on_manager_start)
        srv->events.on_manager_start(srv);
}

/* BASE: hands the process about to fork a session range no live process holds. */
static int hook_before_spawn(void *data, int id)
{
    swoop_server_t *srv = data;
    /* Task workers hold no connections: no session range for them. */
    if (srv->mode != SWOOP_MODE_BASE || srv->ranges == NULL || id >= srv->worker_num)
        return 0;
    for (int i = 0; i < srv->nranges; i++) {
        int32_t free_pid = 0;
        if (atomic_compare_exchange_strong(&srv->ranges[i].pid, &free_pid, -1)) {
            atomic_store(&srv->ranges[i].worker_id, id);
            atomic_store(&srv->ranges[i].hwm, 0);
            atomic_store(&srv->ranges[i].accepting, 0);
            atomic_store(&srv->ranges[i].conns, 0);
            srv->range = i; /* the child inherits it */
            return 0;
        }
    }
    swoop_log(SWOOP_LOG_WARNING, 0,
              "worker %d: all %d session ranges are held by running processes (old ones still "
              "finishing after a reload or max_request): its start waits for one to exit",
              id, srv->nranges);
    return SWOOP_EBUSY;
}

static void hook_after_spawn(void *data, int id, pid_t pid)
{
    swoop_server_t *srv = data;
    if (srv->mode != SWOOP_MODE_BASE || srv->range < 0)
        return;
    /* A failed fork gives the range back at once. */
    atomic_store(&srv->ranges[srv->range].pid, pid > 0 ? (int32_t)pid : 0);
    srv->range = -1;
}

/*
 * BASE: `pid` is gone; the connections it still held died with it. Release
 * exactly its range (never the range of another process of the same worker
 * id), then free the range for a later process.
 */
/*
 * BASE: a worker owns its connections, and the request bodies and uploads
 * it was receiving are files named "swoop-<kind>.<pid>.<...>" in its ports'
 * upload_tmp_dir (src/http). A worker that died (a crash, a kill) removes
 * none of them: they are removed here, by name, once its pid is reaped.
 */
static void sweep_tmp_files(swoop_server_t *srv, pid_t pid)
{
    char pfx[32];
    int pl = snprintf(pfx, sizeof(pfx), ".%d.", (int)pid);
    for (int i = 0; i < srv->nports; i++) {
        const char *dir = srv->ports[i]->eff.upload_tmp_dir;
        int seen = 0; /* one look per directory */
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(srv->ports[j]->eff.upload_tmp_dir, dir) == 0;
        DIR *d = (seen || !srv->ports[i]->eff.open_http_protocol) ? NULL : opendir(dir);
        if (d == NULL)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            const char *dot = strchr(e->d_name, '.');
            if (strncmp(e->d_name, "swoop-", 6) != 0 || dot == NULL ||
                strncmp(dot, pfx, (size_t)pl) != 0)
                continue;
            if (unlinkat(dirfd(d), e->d_name, 0) == 0)
                swoop_log(SWOOP_LOG_INFO, 0, "removed \"%s/%s\" left by dead worker pid %d", dir,
                          e->d_name, (int)pid);
        }
        closedir(d);
    }
}

static void hook_reap(void *data, int id, pid_t pid, int code, int signo)
{
    swoop_server_t *srv = data;
    swoop__task_reaped(srv, id, pid);         /* task/: its task, its spill blocks */
    swoop__worker_token_reaped(srv, id, pid); /* PROCESS: a successor may wait for it */
    if (srv->mode != SWOOP_MODE_BASE || srv->ranges == NULL || pid <= 0)
        return;
    if (signo != 0 || code != 0)
        sweep_tmp_files(srv, pid);
    for (int i = 0; i < srv->nranges; i++) {
        swoop_srv_range_t *rg = &srv->ranges[i];
        if (atomic_load(&rg->pid) != (int32_t)pid)
            continue;
        uint32_t hwm = atomic_load(&rg->hwm);
        if (hwm > srv->fd_limit)
            hwm = srv->fd_limit;
        swoop_session_t *first = &srv->sessions[(size_t)i * srv->fd_limit];
        int n = 0;
        for (uint32_t k = 0; k < hwm; k++) {
            swoop_session_t *s = &first[k];
            uint64_t cur = atomic_load(&s->id);
            if (cur == 0 || !atomic_compare_exchange_strong(&s->id, &cur, 0))
                continue;
            /* Never freed by its owner: still counted in connection_num. */
            atomic_fetch_sub(&srv->gs->connection_num, 1);
            if (!atomic_exchange(&s->closed, 1))
                atomic_fetch_add(&srv->gs->close_count, 1);
            n++;
        }
        if (n)
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "worker %d (pid %d) died with %d connections: they are closed", id, (int)pid,
                      n);
        atomic_store(&rg->hwm, 0);
        atomic_store(&rg->worker_id, -1);
        atomic_store(&rg->pid, 0);
        return;
    }
}

static void hook_worker_error(void *data, int id, pid_t pid, int code, int signo)
{
    swoop_server_t *srv = data;
    if (srv->events.on_worker_error)
        srv->events.on_worker_error(srv, id, pid, code, signo);
}

/*
 * BASE: the manager's certificates are the ones the new workers inherit.
 * (PROCESS: the master reloads its own before it forwards SIGUSR1.)
 */
static void hook_reload(void *data)
{
    swoop_server_t *srv = data;
    if (srv->mode == SWOOP_MODE_BASE)
        swoop_server_reload_certs(srv);
}

static void hook_reopen(void *data)
{
    swoop__server_reopen_logs(data);
    swoop__admin_reopen(data);
}

static int hook_stray(void *data, pid_t pid, int code, int signo)
{
    return swoop__admin_reaped(data, pid, code, signo);
}

/*
 * BASE: the manager is the process the user signals. The workers learn the
 * server is shutting down (not reloading) before their SIGTERM, and new
 * connects are refused at once: shutdown(2) of the listening socket acts on
 * the socket every worker shares, also while they are busy in a callback.
 */
static void hook_shutdown_begin(void *data)
{
    swoop_server_t *srv = data;
    if (srv->mode != SWOOP_MODE_BASE)
        return; /* PROCESS: the master did both before it signalled the manager */
    atomic_store(&srv->gs->shutting_down, 1);
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (!p->dgram && p->fd >= 0 && shutdown(p->fd, SHUT_RD) < 0 && errno != ENOTCONN)
            swoop_log(SWOOP_LOG_WARNING, errno, "shutdown() of listening fd %d (port %d) failed",
                      p->fd, p->port);
    }
}

static void hook_manager_stop(void *data)
{
    swoop_server_t *srv = data;
    swoop__task_manager_exit(srv); /* task/: the master's leftovers if it died */
    if (srv->events.on_manager_stop)
        srv->events.on_manager_stop(srv);
}

/* Runs the manager in the calling process (PROCESS: a child of the master; BASE: the caller). */
int swoop__server_manager_run(swoop_server_t *srv)
{
    swoop_manager_hooks_t hooks = {
        .worker_main = swoop__worker_main,
        .role = SWOOP_ROLE_WORKER,
        .data = srv,
        .on_start = hook_manager_start,
        .before_spawn = hook_before_spawn,
        .after_spawn = hook_after_spawn,
        .on_reap = hook_reap,
        .on_worker_error = hook_worker_error,
        .on_reopen = hook_reopen,
        .on_stray = hook_stray,
        .on_reload = hook_reload,
        .on_shutdown_begin = hook_shutdown_begin,
        .on_shutdown = hook_manager_stop,
    };
    swoop__manager_init(&srv->mgr, srv->worker_num + swoop__task_num(srv), &hooks);
    swoop__task_manager_setup(srv, &srv->mgr); /* task/: tags the task slots */
    srv->mgr.stats = srv->proc_stats;
    srv->mgr.max_wait_ms = srv->settings.max_wait_time * 1000;
    srv->mgr.reload_async = srv->settings.reload_async;
    atomic_store(&srv->gs->manager_pid, getpid());
    /* admin_port's process first: it answers while the workers start (admin.c). */
    swoop__admin_spawn(srv);
    int rc = swoop__manager_run(&srv->mgr);
    swoop__admin_stop(srv); /* after the last worker: /metrics answered the whole shutdown */
    swoop__manager_destroy(&srv->mgr);
    return rc;
}

static void manager_child(swoop_server_t *srv, pid_t master)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master)
        _exit(1);
    swoop_log_set_role(SWOOP_ROLE_MANAGER, -1);
    /* admin_port's socket stays: the manager forks the process that serves it. */
    /* The manager accepts nothing: without its copies a closed port refuses at once. */
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (!p->dgram && p->fd >= 0) {
            close(p->fd);
            p->fd = -1;
        }
    }
    for (int i = 0; i < srv->worker_num * srv->reactor_num; i++)
        swoop__channel_close_end(&srv->pairs[i], 0);
    int rc = swoop__server_manager_run(srv);
    _exit(rc == 0 ? 0 : 1);
}

/* ---- pid file ---- */

int swoop__server_write_pid_file(swoop_server_t *srv)
{
    if (srv->settings.pid_file[0] == '\0')
        return 0;
    int rc = swoop__pid_file_write(srv->settings.pid_file);
    if (rc == 0)
        srv->pid_file_written = 1;
    return rc;
}

void swoop__server_remove_pid_file(swoop_server_t *srv)
{
    if (srv->pid_file_written && unlink(srv->settings.pid_file) < 0)
        swoop_log(SWOOP_LOG_WARNING, errno, "unlink(\"%s\") of the pid file failed",
                  srv->settings.pid_file);
    srv->pid_file_written = 0;
}

/* ---- reactor side: delivery to workers ---- */

static void ipc_failed(swoop_reactor_t *r, int w, int rc, const char *what)
{
    swoop__log_limited(SWOOP_LOG_ERROR, rc, "reactor %d: %s to worker %d failed", r->id, what, w);
}

void swoop__master_deliver_connect(swoop_reactor_t *r, swoop_conn_t *c)
{
    if (r->srv->events.on_connect == NULL)
        return;
    swoop_ipc_head_t h = {.type = SWOOP_IPC_CONNECT,
                          .reactor_id = (int16_t)r->id,
                          .worker_id = (int16_t)c->worker_id,
                          .port_id = (uint16_t)c->port->index,
                          .conn_id = c->id};
    int rc = swoop__ipc_send(&r->outs[c->worker_id], &h, NULL, 0);
    if (rc < 0)
        ipc_failed(r, c->worker_id, rc, "CONNECT");
}

void swoop__master_deliver_data(swoop_reactor_t *r, swoop_conn_t *c, const char *data, size_t len)
{
    int w = swoop__dispatch_worker(r, c);
    c->data_worker = w;
    swoop_ipc_head_t h = {.type = SWOOP_IPC_DATA,
                          .reactor_id = (int16_t)r->id,
                          .worker_id = (int16_t)w,
                          .port_id = (uint16_t)c->port->index,
                          .aux = c->proto ? (uint32_t)c->proto->kind : 0,
                          .conn_id = c->id};
    swoop_ipc_out_t *out = &r->outs[w];
    int rc = swoop__ipc_send(out, &h, data, len);
    if (rc < 0) {
        ipc_failed(r, w, rc, "DATA");
        return;
    }
    /* Backpressure: a worker that does not keep up stops the reading of its connections. */
    if (out->queued_bytes > (size_t)r->srv->settings.pipe_buffer_size && !c->ipc_blocked) {
        swoop__log_limited(
            SWOOP_LOG_WARNING, 0,
            "reactor %d: %zu bytes queued for worker %d (pipe_buffer_size %lld): pausing "
            "conn %llu until it drains",
            r->id, out->queued_bytes, w, (long long)r->srv->settings.pipe_buffer_size,
            (unsigned long long)c->id);
        c->ipc_blocked = w + 1;
        r->blocked++;
        swoop__conn_pause(c, 1);
    }
}

int swoop__master_deliver_close(swoop_reactor_t *r, swoop_conn_t *c, int always)
{
    if (r->srv->events.on_close == NULL && !(c->proto && c->proto->closed) && !always)
        return -1;
    int w = swoop__dispatch_close_worker(r, c);
    c->worker_id = w;
    swoop_ipc_head_t h = {.type = SWOOP_IPC_CLOSE,
                          .reactor_id = (int16_t)r->id,
                          .worker_id = (int16_t)w,
                          .port_id = (uint16_t)c->port->index,
                          .aux = c->proto ? (uint32_t)c->proto->kind : 0,
                          .conn_id = c->id};
    int rc = swoop__ipc_send(&r->outs[w], &h, NULL, 0);
    if (rc < 0) {
        ipc_failed(r, w, rc, "CLOSE");
        return -1;
    }
    return 0;
}

void swoop__master_deliver_dgram(swoop_reactor_t *r, swoop_port_t *p, const swoop_addr_t *from,
                                 const char *data, size_t len)
{
    int w = swoop__dispatch_dgram_worker(r, from);
    /*
     * Datagrams have no connection to pause: past pipe_buffer_size queued for
     * this worker they are dropped (as the kernel would), counted and logged
     * at most once a second, so the master's memory stays bounded.
     */
    size_t queued = r->outs[w].queued_bytes;
    if (queued > (size_t)r->srv->settings.pipe_buffer_size) {
        r->dgram_dropped++;
        uint64_t now = swoop_loop_now(r->loop);
        if (now - r->dgram_drop_log_ms >= 1000) {
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "reactor %d: %zu bytes queued for worker %d (pipe_buffer_size %lld): "
                      "dropped %llu datagrams on port %d in the last second",
                      r->id, queued, w, (long long)r->srv->settings.pipe_buffer_size,
                      (unsigned long long)r->dgram_dropped, p->port);
            r->dgram_drop_log_ms = now;
            r->dgram_dropped = 0;
        }
        return;
    }
    swoop_ipc_head_t h = {.type = SWOOP_IPC_DGRAM,
                          .reactor_id = (int16_t)r->id,
                          .worker_id = (int16_t)w,
                          .port_id = (uint16_t)p->index};
    int rc = swoop__ipc_send2(&r->outs[w], &h, from, sizeof(*from), data, len);
    if (rc < 0)
        ipc_failed(r, w, rc, "DGRAM");
}

/* ---- reactor side: messages from workers ---- */

static void handle_worker_msg(swoop_reactor_t *r, swoop_ipc_msg_t *m)
{
    const swoop_ipc_head_t *h = &m->head;
    if (h->type == SWOOP_IPC_PROTO_OUT) {
        const swoop_proto_t *p = h->aux < SWOOP_PROTO_MAX ? r->srv->protos[h->aux] : NULL;
        if (p && p->out)
            p->out(r, h->conn_id, m->data, m->len);
        return;
    }
    swoop_conn_t *c = swoop__reactor_conn(r, h->conn_id);
    if (c == NULL) {
        /* Closed meanwhile: the data is dropped, nobody else is touched. */
        return;
    }
    switch (h->type) {
    case SWOOP_IPC_SEND:
        /* The worker reserved the bytes (swoop__session_reserve): nothing is refused here. */
        swoop__conn_send(c, m->data, m->len, 1);
        if (h->aux)
            swoop__conn_reply(c, h->aux); /* the port's protocol: a response ended */
        break;
    case SWOOP_IPC_CLOSE:
        swoop__conn_release(c);
        break;
    case SWOOP_IPC_SENDFILE:
        swoop__conn_sendfile_msg(c, m->data, m->len);
        break;
    case SWOOP_IPC_CLOSE_REQ:
        swoop__conn_close(c, h->aux != 0);
        break;
    case SWOOP_IPC_PAUSE:
    case SWOOP_IPC_RESUME:
        /* While a full worker queue holds the reading, the user's wish waits for unblock(). */
        c->user_paused = h->type == SWOOP_IPC_PAUSE;
        if (!c->ipc_blocked)
            swoop__conn_pause(c, c->user_paused);
        break;
    default:
        swoop_log(SWOOP_LOG_WARNING, 0, "reactor %d: unexpected message type %u from worker %d",
                  r->id, h->type, h->worker_id);
        break;
    }
}

static void on_worker_msg(void *arg, swoop_ipc_msg_t *m)
{
    handle_worker_msg(arg, m);
}

static void unblock(swoop_reactor_t *r, int w)
{
    if (r->blocked == 0)
        return;
    swoop_queue_t *q = swoop_queue_head(&r->conns);
    while (q != &r->conns) {
        swoop_conn_t *c = swoop_queue_data(q, swoop_conn_t, link);
        q = q->next;
        if (c->ipc_blocked == w + 1) {
            c->ipc_blocked = 0;
            r->blocked--;
            if (!c->user_paused)
                swoop__conn_pause(c, 0);
        }
    }
}

/* ipc_ring: takes what the workers' rings hold (a bounded amount per ring). */
static void reactor_drain_rings(swoop_reactor_t *r)
{
    swoop_server_t *srv = r->srv;
    for (int w = 0; w < srv->worker_num; w++) {
        swoop_ring_t *ring = r->in_rings[w];
        for (int b = 0; b < PIPE_BATCHES && swoop__ring_readable(ring); b++) {
            int wake = 0;
            int n = swoop__ring_recv(ring, &r->rb, SWOOP_IPC_RECV_BATCH, &wake);
            if (wake)
                swoop__ring_signal(srv->wake_fds[w]);
            swoop__ipc_feed_batch(&r->in, &r->rb, n, on_worker_msg, r);
        }
    }
}

static void reactor_wake_cb(swoop_io_t *io, unsigned events)
{
    swoop__ring_clear(swoop_io_fd(io));
}

static void reactor_flush(swoop_reactor_t *r)
{
    swoop_server_t *srv = r->srv;
    if (srv->rings) {
        for (int w = 0; w < srv->worker_num; w++) {
            swoop_ipc_out_t *out = &r->outs[w];
            if (swoop__ipc_pending(out))
                swoop__ipc_flush(out);
            if (srv->settings.ipc_batch)
                swoop__ipc_cork(out);
            if (out->queued_bytes == 0)
                unblock(r, w);
        }
        return;
    }
    for (int w = 0; w < srv->worker_num; w++) {
        swoop_ipc_out_t *out = &r->outs[w];
        int pending = 0;
        if (swoop__ipc_pending(out))
            pending = swoop__ipc_flush(out) == 1;
        if (srv->settings.ipc_batch)
            swoop__ipc_cork(out);
        unsigned want = SWOOP_READABLE | (pending ? SWOOP_WRITABLE : 0);
        if (r->pipe_io[w]._events != want)
            swoop_io_start(&r->pipe_io[w], want);
        if (!pending && out->queued_bytes == 0)
            unblock(r, w);
    }
}

static void reactor_pipe_cb(swoop_io_t *io, unsigned events)
{
    swoop_reactor_t *r = io->data;
    int w = (int)(io - r->pipe_io);
    if (events & SWOOP_WRITABLE)
        swoop__ipc_flush(&r->outs[w]);
    if (!(events & SWOOP_READABLE))
        return;
    for (int b = 0; b < PIPE_BATCHES; b++) {
        int n = swoop__ipc_recv(swoop_io_fd(io), &r->rb, SWOOP_IPC_RECV_BATCH);
        if (n <= 0)
            return;
        swoop__ipc_feed_batch(&r->in, &r->rb, n, on_worker_msg, r);
        if (n < SWOOP_IPC_RECV_BATCH)
            return;
    }
}

static void reactor_port_cb(swoop_io_t *io, unsigned events)
{
    swoop_port_t *p = io->data;
    swoop_reactor_t *r = &p->srv->reactors[p->index % p->srv->reactor_num];
    swoop__port_dgram_readable(r, p);
}

static void reactor_tick_cb(int64_t id, void *arg)
{
    swoop_reactor_t *r = arg;
    swoop__reactor_tick(r);
    swoop__ipc_in_sweep(&r->in); /* partial replies of workers that died */
}

static void reactor_adopt(swoop_loop_t *loop, void *arg)
{
    handoff_t *h = arg;
    for (int i = 0; i < h->n; i++)
        swoop__conn_open(h->r, h->items[i].fd, h->items[i].id, h->items[i].port);
    swoop_free(h);
}

static void master_intake_ack_cb(swoop_loop_t *loop, void *arg);

/* Shutdown, phase 1 (posted by the main thread): what the kernel holds is read, then no more. */
static void reactor_intake_cb(swoop_loop_t *loop, void *arg)
{
    swoop_reactor_t *r = arg;
    swoop__reactor_stop_reading(r);
    for (int i = 0; i < r->srv->nports; i++)
        swoop_io_stop(&r->port_io[i]);
}

/* Phase 1 done here once nothing read waits in user space for a worker. */
static void reactor_check_intake(swoop_reactor_t *r)
{
    if (!r->no_read || r->intake_acked || r->workers_gone)
        return;
    for (int w = 0; w < r->srv->worker_num; w++) {
        if (swoop__ipc_pending(&r->outs[w]) || r->outs[w].queued_bytes > 0)
            return;
    }
    r->intake_acked = 1;
    int rc = swoop_loop_post(master_loop, master_intake_ack_cb, r);
    if (rc < 0)
        swoop_log(SWOOP_LOG_ERROR, rc, "reactor %d: cannot acknowledge the intake stop", r->id);
}

/* Every worker exited: what they wrote is all in the channels; take it to the end. */
static void reactor_drain_all(swoop_reactor_t *r)
{
    swoop_server_t *srv = r->srv;
    if (srv->rings) {
        for (;;) {
            int any = 0;
            for (int w = 0; w < srv->worker_num; w++)
                any |= swoop__ring_readable(r->in_rings[w]);
            if (!any)
                break;
            reactor_drain_rings(r);
        }
    }
    for (int w = 0; w < srv->worker_num; w++) {
        int fd = swoop_io_fd(&r->pipe_io[w]);
        for (;;) {
            int n = swoop__ipc_recv(fd, &r->rb, SWOOP_IPC_RECV_BATCH);
            if (n <= 0)
                break;
            swoop__ipc_feed_batch(&r->in, &r->rb, n, on_worker_msg, r);
        }
    }
}

static void reactor_deadline_cb(int64_t id, void *arg)
{
    swoop_reactor_t *r = arg;
    swoop__reactor_expire(r, "shutdown");
    r->stop = 1;
}

/*
 * Shutdown, phase 3 (posted once the manager was reaped): deliver every
 * reply the workers left, then close each connection once its output is
 * flushed; reactor_main stops when none is left or at the deadline.
 */
static void reactor_stop_cb(swoop_loop_t *loop, void *arg)
{
    swoop_reactor_t *r = arg;
    swoop_server_t *srv = r->srv;
    r->no_read = 1; /* also when phase 1 never ran (the manager died) */
    r->workers_gone = 1;
    reactor_drain_all(r);
    swoop__reactor_finish(r);
    r->draining = 1;
    uint64_t wait = (uint64_t)srv->settings.max_wait_time * 1000u;
    uint64_t end = srv->shutdown_ms + wait + INTAKE_TIMEOUT_MS;
    uint64_t now = swoop__now_ms();
    uint64_t ms = end > now ? end - now : 0;
    if (ms > wait)
        ms = wait;
    if (swoop_queue_empty(&r->conns) ||
        swoop_loop_timer_after(r->loop, ms, reactor_deadline_cb, r) <= 0) {
        swoop__reactor_expire(r, "shutdown");
        r->stop = 1;
    }
}

static void *reactor_main(void *arg)
{
    swoop_reactor_t *r = arg;
    swoop_server_t *srv = r->srv;
    char name[16];
    snprintf(name, sizeof(name), "reactor-%d", r->id % 1000);
    pthread_setname_np(pthread_self(), name);
    swoop_ring_waker_t *waker = srv->rings ? &srv->wakers[srv->worker_num + r->id] : NULL;
    while (!r->stop) {
        int rc;
        if (waker && swoop__ring_prepare_sleep(waker, r->in_rings, srv->worker_num))
            rc = swoop__loop_run_nowait(r->loop);
        else
            rc = swoop_loop_run_once(r->loop);
        if (rc < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "reactor %d: loop failed", r->id);
            break;
        }
        if (waker) {
            swoop__ring_awake(waker);
            reactor_drain_rings(r);
        }
        reactor_flush(r);
        reactor_check_intake(r);
        if (r->draining && swoop_queue_empty(&r->conns))
            break;
    }
    swoop__reactor_close_all(r, 0);
    /* Every connection paused for a full worker queue was counted out when freed. */
    SWOOP_ASSERT(r->blocked == 0);
    if (waker)
        swoop_io_stop(&r->wake_io);
    for (int w = 0; w < srv->worker_num; w++) {
        swoop_io_stop(&r->pipe_io[w]);
        swoop__ipc_out_free(&r->outs[w]);
    }
    for (int i = 0; i < srv->nports; i++)
        swoop_io_stop(&r->port_io[i]);
    swoop_loop_timer_clear_all(r->loop);
    return NULL;
}

static int reactor_setup(swoop_server_t *srv, swoop_reactor_t *r, int id)
{
    swoop_loop_t *loop;
    int rc = swoop_loop_new(&loop);
    if (rc < 0) {
        swoop_log(SWOOP_LOG_ERROR, rc, "reactor %d: cannot make its loop", id);
        return rc;
    }
    swoop__reactor_init(r, srv, id, loop);
    r->outs = swoop_calloc((size_t)srv->worker_num, sizeof(*r->outs));
    r->pipe_io = swoop_calloc((size_t)srv->worker_num, sizeof(*r->pipe_io));
    r->port_io = swoop_calloc((size_t)srv->nports, sizeof(*r->port_io));
    swoop__ipc_in_init(&r->in, (size_t)srv->settings.buffer_output_size + 4096);
    r->in.gone_cb = swoop__server_writer_gone;
    r->in.gone_arg = srv;
    swoop__ipc_rbuf_init(&r->rb);
    if (srv->rings) {
        r->in_rings = swoop_calloc((size_t)srv->worker_num, sizeof(*r->in_rings));
        r->wake_io.data = r;
        swoop_io_init(loop, &r->wake_io, srv->wake_fds[srv->worker_num + id], reactor_wake_cb);
        if ((rc = swoop_io_start(&r->wake_io, SWOOP_READABLE)) < 0)
            return rc;
    }
    for (int w = 0; w < srv->worker_num; w++) {
        int fd = srv->pairs[w * srv->reactor_num + id].fds[0];
        swoop__ipc_out_init(&r->outs[w], fd);
        if (srv->settings.ipc_batch)
            swoop__ipc_cork(&r->outs[w]);
        r->pipe_io[w].data = r;
        swoop_io_init(loop, &r->pipe_io[w], fd, reactor_pipe_cb);
        if (srv->rings) {
            swoop__ipc_out_use_ring(&r->outs[w], swoop__ring_of(srv, w, id, 1), &srv->wakers[w],
                                    srv->wake_fds[w]);
            r->in_rings[w] = swoop__ring_of(srv, w, id, 0);
            continue;
        }
        if ((rc = swoop_io_start(&r->pipe_io[w], SWOOP_READABLE)) < 0)
            return rc;
    }
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (!p->dgram || i % srv->reactor_num != id)
            continue;
        r->port_io[i].data = p;
        swoop_io_init(loop, &r->port_io[i], p->fd, reactor_port_cb);
        if ((rc = swoop_io_start(&r->port_io[i], SWOOP_READABLE)) < 0)
            return rc;
    }
    r->tick_timer = swoop_loop_timer_tick(loop, 1000, reactor_tick_cb, r);
    return 0;
}

static void reactor_teardown(swoop_reactor_t *r)
{
    if (r->loop == NULL)
        return;
    swoop__ipc_in_free(&r->in);
    swoop__ipc_rbuf_free(&r->rb);
    swoop_free(r->outs);
    swoop_free(r->in_rings);
    swoop_free(r->pipe_io);
    swoop_free(r->port_io);
    swoop_loop_free(r->loop);
    r->loop = NULL;
    swoop__reactor_free(r);
}

/* ---- main thread: accept ---- */

static void accept_resume_cb(int64_t id, void *arg);

static void accept_watch(swoop_server_t *srv, int on)
{
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (p->dgram || p->fd < 0)
            continue;
        if (on)
            swoop_io_start(&p->io, SWOOP_READABLE);
        else
            swoop_io_stop(&p->io);
    }
}

typedef struct accept_ctx_s {
    swoop_server_t *srv;
    swoop_port_t *port;
    handoff_t **batches;
} accept_ctx_t;

static void accept_one(void *arg, int fd, const swoop_addr_t *addr)
{
    accept_ctx_t *ctx = arg;
    swoop_server_t *srv = ctx->srv;
    swoop_port_t *p = ctx->port;
    int r = fd % srv->reactor_num;
    swoop_conn_id_t id = swoop__session_admit(srv, p, fd, addr, 0, r);
    if (id == 0)
        return;

    handoff_t *h = ctx->batches[r];
    if (h == NULL) {
        h = swoop_malloc(sizeof(*h) + SWOOP_ACCEPT_BATCH * sizeof(pending_t));
        h->r = &srv->reactors[r];
        h->n = 0;
        ctx->batches[r] = h;
    }
    h->items[h->n++] = (pending_t){.fd = fd, .id = id, .port = p};
}

/*
 * A batch no reactor adopted: nobody owns these connections, so release
 * what accept_one published for each (session, count) and close the fd.
 */
static void handoff_abort(swoop_server_t *srv, handoff_t *h)
{
    swoop_srv_shared_t *gs = srv->gs;
    for (int i = 0; i < h->n; i++) {
        swoop_session_t *s = &srv->sessions[h->items[i].fd];
        uint64_t id = h->items[i].id;
        atomic_store(&s->closed, 1);
        atomic_compare_exchange_strong(&s->id, &id, 0);
        atomic_fetch_sub(&gs->connection_num, 1);
        atomic_fetch_add(&gs->close_count, 1);
        if (close(h->items[i].fd) < 0)
            swoop_log(SWOOP_LOG_WARNING, errno, "close() of fd %d failed", h->items[i].fd);
    }
    swoop_free(h);
}

static void on_accept(swoop_io_t *io, unsigned events)
{
    swoop_port_t *p = io->data;
    swoop_server_t *srv = p->srv;
    handoff_t *batches[64] = {0};
    accept_ctx_t ctx = {.srv = srv, .port = p, .batches = batches};
    int accepted;
    int rc = swoop__sock_accept_batch(p->fd, SWOOP_ACCEPT_BATCH, accept_one, &ctx, &accepted);
    for (int r = 0; r < srv->reactor_num; r++) {
        if (batches[r] == NULL)
            continue;
        int prc = swoop_loop_post(srv->reactors[r].loop, reactor_adopt, batches[r]);
        if (prc < 0) {
            swoop__log_limited(SWOOP_LOG_ERROR, prc,
                               "cannot hand %d connections to reactor %d: closing them",
                               batches[r]->n, r);
            handoff_abort(srv, batches[r]);
        }
    }
    if (rc == SWOOP_EMFILE || rc == SWOOP_ENFILE || rc == SWOOP_ENOBUFS || rc == SWOOP_ENOMEM) {
        swoop__log_limited(SWOOP_LOG_ERROR, rc,
                           "accept4() on port %d failed: pausing accept for %d ms", p->port,
                           ACCEPT_PAUSE_MS);
        if (!srv->accept_paused) {
            srv->accept_paused = 1;
            accept_watch(srv, 0);
            srv->accept_timer = swoop_timer_after(ACCEPT_PAUSE_MS, accept_resume_cb, srv);
        }
    } else if (rc < 0) {
        swoop__log_limited(SWOOP_LOG_ERROR, rc, "accept4() on port %d (fd %d) failed", p->port,
                           p->fd);
    }
}

static void accept_resume_cb(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    srv->accept_paused = 0;
    srv->accept_timer = 0;
    if (!atomic_load(&srv->gs->shutting_down))
        accept_watch(srv, 1);
}

/* ---- main thread: signals ---- */

static swoop_server_t *master_srv;

/* Phase 2 of the shutdown: the workers finish what they were given. */
static void stop_manager(swoop_server_t *srv)
{
    if (srv->manager_signalled)
        return;
    srv->manager_signalled = 1;
    atomic_store(&srv->gs->manager_told, 1); /* before the signal: the manager reads it */
    if (srv->intake_timer) {
        swoop_timer_clear(srv->intake_timer);
        srv->intake_timer = 0;
    }
    if (srv->manager_pid > 0 && kill(srv->manager_pid, SIGTERM) < 0)
        swoop_log(SWOOP_LOG_ERROR, errno, "kill(%d, SIGTERM) of the manager failed",
                  (int)srv->manager_pid);
}

static void master_intake_ack_cb(swoop_loop_t *loop, void *arg)
{
    swoop_reactor_t *r = arg;
    if (--r->srv->intake_wait == 0)
        stop_manager(r->srv);
}

static void intake_timeout_cb(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    srv->intake_timer = 0;
    swoop_log(SWOOP_LOG_WARNING, 0,
              "shutdown: %d reactor threads still hold requests for the workers after %d ms: "
              "stopping the workers anyway",
              srv->intake_wait, INTAKE_TIMEOUT_MS);
    stop_manager(srv);
}

static void escalate_cb(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    srv->escalate_timer = 0;
    if (srv->manager_pid <= 0)
        return;
    swoop_log(SWOOP_LOG_ERROR, 0,
              "shutdown: the manager (pid %d) is still running %d ms after the shutdown began "
              "(max_wait_time %d s): killing it and its workers (SIGKILL)",
              (int)srv->manager_pid, srv->settings.max_wait_time * 1000 + ESCALATE_MARGIN_MS,
              srv->settings.max_wait_time);
    srv->manager_killed = 1;
    if (kill(srv->manager_pid, SIGKILL) < 0 && errno != ESRCH)
        swoop_log(SWOOP_LOG_ERROR, errno, "kill(%d, SIGKILL) of the manager failed",
                  (int)srv->manager_pid);
    /* A stopped manager's children are ours to take down too (they die with it anyway). */
    for (int i = 0; i < srv->worker_num + swoop__task_num(srv); i++) {
        pid_t pid = (pid_t)atomic_load(&srv->proc_stats[i].pid);
        if (pid > 0)
            kill(pid, SIGKILL);
    }
}

/*
 * `drain`: the reactor threads first stop reading and hand what they read to
 * the workers, and only then is the manager stopped; else (start failure,
 * the manager died) it is stopped at once.
 */
static void begin_shutdown(swoop_server_t *srv, int drain)
{
    if (atomic_exchange(&srv->gs->shutting_down, 1))
        return;
    srv->shutdown_ms = swoop__now_ms();
    swoop_log(SWOOP_LOG_NOTICE, 0, "shutting down: closing listening sockets, stopping workers");
    if (srv->manager_pid > 0) {
        srv->escalate_timer = swoop_timer_after(
            (int64_t)srv->settings.max_wait_time * 1000 + ESCALATE_MARGIN_MS, escalate_cb, srv);
        if (srv->escalate_timer < 0)
            swoop_log(SWOOP_LOG_ERROR, (int)srv->escalate_timer,
                      "shutdown: cannot arm the manager's kill deadline");
    }
    accept_watch(srv, 0);
    if (srv->accept_timer) {
        swoop_timer_clear(srv->accept_timer);
        srv->accept_timer = 0;
    }
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (!p->dgram && p->fd >= 0) {
            close(p->fd);
            p->fd = -1;
        }
    }
    srv->intake_wait = 0;
    for (int r = 0; drain && srv->manager_pid > 0 && r < srv->reactor_num; r++) {
        swoop_reactor_t *re = &srv->reactors[r];
        if (re->thread_started && swoop_loop_post(re->loop, reactor_intake_cb, re) == 0)
            srv->intake_wait++;
    }
    if (srv->intake_wait == 0) {
        stop_manager(srv);
        return;
    }
    srv->intake_timer = swoop_timer_after(INTAKE_TIMEOUT_MS, intake_timeout_cb, srv);
    if (srv->intake_timer <= 0)
        stop_manager(srv);
}

static void on_master_signal(swoop_signal_t *sig, int signo)
{
    swoop_server_t *srv = master_srv;
    if (signo == SIGTERM || signo == SIGINT || signo == SIGQUIT) {
        begin_shutdown(srv, 1);
    } else if (signo == SIGUSR1 || signo == SIGUSR2) {
        if (atomic_load(&srv->gs->shutting_down))
            swoop_log(SWOOP_LOG_NOTICE, 0, "reload ignored: the server is shutting down");
        else if (srv->manager_pid > 0) {
            if (signo == SIGUSR1)
                swoop_server_reload_certs(srv); /* new handshakes of the reactor threads */
            kill(srv->manager_pid, signo);
        }
    } else if (signo == SIGCHLD) {
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                break;
            if (pid != srv->manager_pid)
                continue;
            srv->manager_pid = 0;
            atomic_store(&srv->gs->manager_pid, 0);
            int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (srv->escalate_timer > 0) {
                swoop_timer_clear(srv->escalate_timer);
                srv->escalate_timer = 0;
            }
            if (srv->manager_killed) {
                master_exit_rc = SWOOP_ETIMEDOUT; /* logged by escalate_cb */
            } else if (!atomic_load(&srv->gs->shutting_down) || !clean) {
                swoop_log(SWOOP_LOG_ERROR, 0,
                          "the manager (pid %d) exited unexpectedly (status 0x%x): shutting down",
                          (int)pid, status);
                master_exit_rc = SWOOP_ECHILD;
                begin_shutdown(srv, 0);
            }
            swoop_loop_stop(sig->_loop);
        }
    } else if (signo == SIGRTMIN) {
        swoop__server_reopen_logs(srv);
        if (srv->manager_pid > 0)
            kill(srv->manager_pid, SIGRTMIN);
    }
}

static int watch_signals(swoop_loop_t *loop, int on)
{
    swoop_signal_t *sigs[] = {&sig_term, &sig_int,  &sig_quit, &sig_usr1,
                              &sig_usr2, &sig_chld, &sig_rtmin};
    int nums[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, 0};
    nums[6] = SIGRTMIN;
    for (size_t i = 0; i < SWOOP_ARRAY_SIZE(sigs); i++) {
        if (!on) {
            swoop_signal_stop(sigs[i]);
            continue;
        }
        int rc = swoop_signal_init(loop, sigs[i], on_master_signal);
        if (rc == 0)
            rc = swoop_signal_start(sigs[i], nums[i]);
        if (rc < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "cannot watch signal %d", nums[i]);
            return rc;
        }
    }
    return 0;
}

int swoop__master_run(swoop_server_t *srv)
{
    pid_t master = getpid();
    master_srv = srv;
    master_exit_rc = 0;
    swoop_log_set_role(SWOOP_ROLE_MASTER, -1);
    atomic_store(&srv->gs->master_pid, master);
    srv->conns = swoop_calloc(srv->fd_limit, sizeof(*srv->conns));

    /* admin_port is bound first: a port in use fails the start before any fork. */
    int arc = swoop__admin_open(srv);
    if (arc < 0) {
        swoop_free(srv->conns);
        srv->conns = NULL;
        return arc;
    }
    /* 1. The manager, while this process is single-threaded. */
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "fork() of the manager failed");
        swoop__admin_stop(srv);
        swoop_free(srv->conns);
        srv->conns = NULL;
        return -err;
    }
    if (pid == 0)
        manager_child(srv, master);
    srv->manager_pid = pid;
    atomic_store(&srv->gs->manager_pid, pid);
    swoop__admin_child(srv); /* admin_port is the manager's now */
    for (int i = 0; i < srv->worker_num * srv->reactor_num; i++)
        swoop__channel_close_end(&srv->pairs[i], 1);
    for (int i = 0; i < srv->worker_num; i++)
        swoop__channel_close(&srv->msgs[i]);

    int rc = swoop__server_write_pid_file(srv);
    swoop_loop_t *loop = swoop_loop_default();
    if (loop == NULL)
        rc = SWOOP_ENOMEM;
    master_loop = loop;
    srv->manager_signalled = 0;
    srv->intake_wait = 0;
    srv->intake_timer = 0;
    srv->escalate_timer = 0;
    srv->manager_killed = 0;
    struct sigaction sa, old_pipe;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old_pipe);

    /* 2. Signals (blocked in every thread made from now on), 3. reactor threads. */
    if (rc == 0)
        rc = watch_signals(loop, 1);
    srv->reactors = swoop_calloc((size_t)srv->reactor_num, sizeof(*srv->reactors));
    int started = 0;
    for (int r = 0; r < srv->reactor_num && rc == 0; r++) {
        rc = reactor_setup(srv, &srv->reactors[r], r);
        if (rc == 0) {
            int err =
                pthread_create(&srv->reactors[r].thread, NULL, reactor_main, &srv->reactors[r]);
            if (err != 0) {
                swoop_log(SWOOP_LOG_ERROR, err, "pthread_create() of reactor %d failed", r);
                rc = -err;
            } else {
                srv->reactors[r].thread_started = 1;
                started++;
            }
        }
    }
    /* 4. Accept. */
    for (int i = 0; i < srv->nports && rc == 0; i++) {
        swoop_port_t *p = srv->ports[i];
        if (p->dgram)
            continue;
        p->io.data = p;
        swoop_io_init(loop, &p->io, p->fd, on_accept);
        rc = swoop_io_start(&p->io, SWOOP_READABLE);
    }
    if (rc == 0) {
        swoop_log(SWOOP_LOG_INFO, 0,
                  "server started (PROCESS): master %d, manager %d, %d reactor threads, %d "
                  "workers, dispatch_mode %d",
                  (int)master, (int)pid, srv->reactor_num, srv->worker_num,
                  srv->settings.dispatch_mode);
        if (srv->events.on_start)
            srv->events.on_start(srv);
        if (srv->manager_pid > 0)
            swoop_loop_run(loop);
    } else {
        begin_shutdown(srv, 0);
        /* Wait for the manager without the loop: its SIGCHLD watcher may not exist. */
        if (srv->manager_pid > 0) {
            kill(srv->manager_pid, SIGTERM);
            waitpid(srv->manager_pid, NULL, 0);
            srv->manager_pid = 0;
        }
    }
    begin_shutdown(srv, 0); /* no-op after a normal shutdown */

    /* 5. Reactor threads deliver what is left (all at once), then stop. */
    for (int r = 0; r < srv->reactor_num; r++) {
        swoop_reactor_t *re = &srv->reactors[r];
        if (re->thread_started && swoop_loop_post(re->loop, reactor_stop_cb, re) < 0) {
            swoop_log(SWOOP_LOG_ERROR, SWOOP_ENOMEM, "cannot stop reactor %d: retrying", r);
            while (swoop_loop_post(re->loop, reactor_stop_cb, re) < 0)
                usleep(1000);
        }
    }
    for (int r = 0; r < srv->reactor_num; r++) {
        swoop_reactor_t *re = &srv->reactors[r];
        if (re->thread_started)
            pthread_join(re->thread, NULL);
        reactor_teardown(re);
    }
    swoop_free(srv->reactors);
    srv->reactors = NULL;
    accept_watch(srv, 0);
    if (srv->accept_timer)
        swoop_timer_clear(srv->accept_timer);
    watch_signals(loop, 0);
    swoop_timer_clear_all();
    if (loop)
        swoop_loop_free(loop);
    swoop__admin_stop(srv);
    sigaction(SIGPIPE, &old_pipe, NULL);
    swoop_free(srv->conns);
    srv->conns = NULL;
    swoop__server_remove_pid_file(srv);
    atomic_store(&srv->gs->master_pid, 0);
    if (srv->events.on_shutdown)
        srv->events.on_shutdown(srv);
    swoop_log(SWOOP_LOG_INFO, 0, "server stopped");
    swoop_log_set_role(SWOOP_ROLE_STANDALONE, -1);
    master_srv = NULL;
    master_loop = NULL;
    (void)started;
    return rc < 0 ? rc : master_exit_rc;
}
