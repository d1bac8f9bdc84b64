/*
 * The worker side of both modes, the worker-side API, and BASE mode.
 *
 * A worker runs its default event loop: in PROCESS mode it reads its
 * channels from the reactor threads (CONNECT, DATA, CLOSE, DGRAM) and runs
 * the callbacks; replies and requests go back to the reactor thread that
 * owns the connection. In BASE mode it accepts on the listening sockets
 * itself (or on its own SO_REUSEPORT socket) and its connection engine
 * (conn.c) calls the callbacks directly. In both modes the worker's message
 * channel carries swoop_server_send_message (and, in BASE mode, sends and
 * closes for connections another worker owns).
 *
 * PROCESS: one process of a worker id at a time. A reload (reload_async)
 * or max_request forks the successor while the old process still runs its
 * last callback; the id's rings are single-consumer and single-producer,
 * and its pipes, message channel and taskwait channel belong to the id, so
 * the successor waits for the id's token (gs->workers[id].owner, a futex
 * word) before it reads or writes any of them. The old process gives the
 * token up once it stopped reading, ran what it had taken and flushed its
 * replies; the manager frees it when the holder dies. What the old process
 * did not take stays in the channels for the successor: every request runs
 * exactly once, and the id's waker flag has one user at a time.
 *
 * Each loop iteration runs with the outgoing channels corked (ipc_batch):
 * whatever the callbacks of one wake-up sent leaves in one sendmmsg per
 * channel once the iteration ends.
 *
 * Stopping (SIGTERM from the manager for a reload, max_request): a PROCESS
 * worker stops taking messages (what it did not read stays in the channel
 * for its replacement), on_worker_stop runs and the process exits. A
 * SIGTERM while the server shuts down (gs->shutting_down, published before
 * the signal) has no successor to leave work to: PROCESS first handles
 * everything its input channels hold (the reactor threads stopped reading
 * before the manager was told to stop). A BASE worker owns its connections,
 * so in every case (shutdown, reload, max_request) it stops accepting,
 * reads its connections one last time, runs those requests, then keeps the
 * loop running until every connection's output is flushed and closed (or
 * DRAIN_MARGIN_MS before the manager's SIGKILL at max_wait_time, when the
 * rest is reset); at shutdown it also refuses new connects.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <swoop/co.h>
#include <swoop/timer.h>

#include "base/ratelimit.h"
#include "event/internal.h"
#include "net/socket.h"
#include "server/internal.h"

#define FLUSH_TRIES_AT_EXIT 200
#define DRAIN_MARGIN_MS     250 /* BASE: stop draining this long before the manager's SIGKILL */
#define TOKEN_POLL_MS       20  /* a successor re-checks a silent token holder this often */
#define TASK_POLL_MS        2   /* shutdown: how often a worker looks whether tasks still run */
#define DRAIN_IDLE_MS       200 /* BASE: a retiring worker closes connections idle this long */
#define ACCEPT_SLACK        1   /* BASE: connections a worker may hold above the least loaded */
#define ACCEPT_YIELD_MS     5 /* BASE: how long a worker holding more leaves accepting to others */
#define RELAY_WAIT_MS       10000 /* a task worker's relay waits this long for room */
#define ACCEPT_STUCK_MS     200   /* BASE: others accepting nothing this long are not waited for */

static swoop_signal_t wsig_term, wsig_reopen;
static swoop_io_t *mout_io; /* writability of message channels with a queue */
static swoop_io_t *accept_io;
static swoop_loop_t *wloop;

static void base_set_accepting(swoop_server_t *srv, int on);

static void worker_stop(swoop_server_t *srv)
{
    if (srv->worker_stopping)
        return;
    srv->worker_stopping = 1;
    if (srv->wpipe_io && !srv->rings) {
        for (int r = 0; r < srv->reactor_num; r++)
            swoop_io_start(&srv->wpipe_io[r],
                           swoop__ipc_pending(&srv->wouts[r]) ? SWOOP_WRITABLE : 0);
    }
    swoop_io_stop(&srv->msg_io);
    if (accept_io) {
        base_set_accepting(srv, 0);
        for (int i = 0; i < srv->nports; i++)
            swoop_io_stop(&accept_io[i]);
    }
    swoop_loop_stop(wloop);
}

static void worker_drain_input(swoop_server_t *srv);
static void base_drain_begin(swoop_server_t *srv, int shutting_down);

static void on_worker_signal(swoop_signal_t *sig, int signo)
{
    swoop_server_t *srv = sig->data;
    if (signo == SIGTERM) {
        int shutting_down = atomic_load(&srv->gs->shutting_down);
        if (srv->base && !srv->worker_stopping) {
            /* Shutdown, reload: its connections drain (a successor accepts on a reload). */
            base_drain_begin(srv, shutting_down); /* stops once the output is out */
            return;
        }
        if (shutting_down && !srv->worker_stopping)
            worker_drain_input(srv);
        worker_stop(srv);
    } else {
        swoop__server_reopen_logs(srv);
    }
}

static int64_t pick_limit(const swoop_server_settings_t *s)
{
    return swoop__request_limit(s->max_request, s->max_request_grace);
}

static void count_request(swoop_server_t *srv)
{
    swoop_srv_wstat_t *ws = &srv->gs->workers[srv->worker_id];
    atomic_fetch_add_explicit(&ws->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&swoop__counter(srv->gs, srv->worker_id)->requests, 1,
                              memory_order_relaxed);
    int64_t n = ++srv->requests;
    swoop_proc_stat_t *st = &srv->proc_stats[srv->worker_id];
    atomic_store_explicit(&st->requests, (uint64_t)n, memory_order_relaxed);
    /* Once: a retiring BASE worker still runs what its last read brought. */
    if (srv->request_limit > 0 && n >= srv->request_limit && !srv->worker_stopping &&
        !srv->worker_retiring && !srv->worker_draining) {
        swoop_log(SWOOP_LOG_INFO, 0, "worker reached max_request (%lld): asking for a replacement",
                  (long long)srv->request_limit);
        atomic_store(&st->retire_pid, getpid());
        pid_t mpid = (pid_t)atomic_load(&srv->gs->manager_pid);
        if (mpid > 0 && kill(mpid, SIGIO) < 0)
            swoop_log(SWOOP_LOG_ERROR, errno, "kill(%d, SIGIO) of the manager failed", (int)mpid);
        if (srv->base)
            srv->worker_retiring = 1; /* BASE: its connections drain, outside this callback */
        else
            worker_stop(srv);
    }
}

/*
 * The id's busy flag belongs to its current process: a BASE process still
 * draining after a reload or max_request runs beside its successor and
 * must not overwrite the successor's state (nor dispatch_mode 3's view).
 */
static void set_busy(swoop_server_t *srv, int busy)
{
    swoop_srv_wstat_t *ws = &srv->gs->workers[srv->worker_id];
    if (atomic_load_explicit(&ws->pid, memory_order_relaxed) == swoop__getpid())
        atomic_store_explicit(&ws->busy, busy, memory_order_relaxed);
}

/* ---- enable_coroutine: a coroutine per delivery ---- */

/*
 * What one coroutine delivers. The payload is copied: the IPC buffer or
 * the connection's read buffer it came in is reused as soon as the loop
 * runs again, which happens at the callback's first wait.
 */
typedef struct co_call_s {
    swoop_server_t *srv;
    const swoop_proto_t *proto; /* DATA through a protocol, or NULL */
    swoop_conn_id_t conn;
    int reactor_id;
    int port; /* DGRAM: the port, for replies; -1 for DATA */
    swoop_addr_t from;
    size_t len;
    char data[];
} co_call_t;

static void co_call_run(void *arg)
{
    co_call_t *c = arg;
    swoop_server_t *srv = c->srv;
    if (c->port >= 0) {
        /* cur_port is right until the callback first waits: reply before that, or
         * with swoop_server_sendto's explicit port. */
        srv->cur_port = c->port;
        if (srv->events.on_packet)
            srv->events.on_packet(srv, c->data, c->len, &c->from);
        srv->cur_port = -1;
    } else if (c->proto && c->proto->message) {
        c->proto->message(srv, c->conn, c->reactor_id, c->data, c->len);
    } else if (srv->events.on_receive) {
        srv->events.on_receive(srv, c->conn, c->reactor_id, c->data, c->len);
    }
    swoop_free(c);
}

/* Runs the delivery in a new coroutine (inline if none can be made). */
static void co_deliver(swoop_server_t *srv, const swoop_proto_t *proto, swoop_conn_id_t conn,
                       int reactor_id, int port, const swoop_addr_t *from, const char *data,
                       size_t len)
{
    co_call_t *c = swoop_malloc(sizeof(*c) + len + 1);
    c->srv = srv;
    c->proto = proto;
    c->conn = conn;
    c->reactor_id = reactor_id;
    c->port = port;
    if (from)
        c->from = *from;
    c->len = len;
    memcpy(c->data, data, len);
    c->data[len] = 0;
    int64_t id = swoop_co_go(co_call_run, c);
    if (id < 0) {
        swoop__log_limited(SWOOP_LOG_ERROR, (int)id,
                           "enable_coroutine: no coroutine for a delivery; running it on the "
                           "worker's stack");
        co_call_run(c);
    }
}

/* A user timer's callback in a coroutine of its own (enable_coroutine). */
typedef struct co_timer_s {
    swoop_timer_cb cb;
    int64_t id;
    void *arg;
} co_timer_t;

static void co_timer_body(void *p)
{
    co_timer_t t = *(co_timer_t *)p; /* the caller's copy is gone after our first wait */
    t.cb(t.id, t.arg);
}

static void co_timer_run(swoop_timer_cb cb, int64_t id, void *arg)
{
    co_timer_t t = {.cb = cb, .id = id, .arg = arg};
    int64_t co = swoop_co_go(co_timer_body, &t);
    if (co < 0) {
        swoop__log_limited(SWOOP_LOG_ERROR, (int)co,
                           "enable_coroutine: no coroutine for timer %lld; running it on the "
                           "worker's stack",
                           (long long)id);
        cb(id, arg);
    }
}

static int co_setup(swoop_server_t *srv)
{
    if (!srv->settings.enable_coroutine)
        return 0;
    /* User timers (swoop_timer_after/tick) run in coroutines; the library's own
     * timers are armed with the _lib calls and stay plain calls. */
    swoop__loop_set_timer_runner(wloop, co_timer_run);
    swoop_co_options_t o = {.stack_size = (size_t)srv->settings.coroutine_stack_size};
    int rc = swoop_co_set_options(&o);
    if (rc < 0)
        swoop_log(SWOOP_LOG_ERROR, rc, "coroutine_stack_size %lld refused",
                  (long long)srv->settings.coroutine_stack_size);
    return rc;
}

/* ---- PROCESS: messages from the reactor threads ---- */

static void handle_reactor_msg(swoop_server_t *srv, int r, swoop_ipc_msg_t *m)
{
    const swoop_ipc_head_t *h = &m->head;
    const swoop_server_events_t *ev = &srv->events;
    switch (h->type) {
    case SWOOP_IPC_CONNECT:
        if (ev->on_connect)
            ev->on_connect(srv, h->conn_id, h->reactor_id);
        break;
    case SWOOP_IPC_DATA: {
        /* The connection's protocol when the owner sent it (aux), on a port that has one. */
        const swoop_proto_t *proto =
            h->port_id < srv->nports && srv->ports[h->port_id]->proto && h->aux < SWOOP_PROTO_MAX
                ? srv->protos[h->aux]
                : NULL;
        set_busy(srv, 1);
        if (srv->settings.enable_coroutine)
            co_deliver(srv, proto, h->conn_id, h->reactor_id, -1, NULL, m->data, m->len);
        else if (proto && proto->message)
            proto->message(srv, h->conn_id, h->reactor_id, m->data, m->len);
        else if (ev->on_receive)
            ev->on_receive(srv, h->conn_id, h->reactor_id, m->data, m->len);
        set_busy(srv, 0);
        count_request(srv);
        break;
    }
    case SWOOP_IPC_CLOSE: {
        /*
         * After a peer's half-close the owner keeps the session open until this
         * acknowledgement (replies to the last DATA still go out); on_close
         * itself sees the connection closed, as after any other close.
         */
        srv->closing_conn = h->conn_id;
        const swoop_proto_t *proto =
            h->port_id < srv->nports && srv->ports[h->port_id]->proto && h->aux < SWOOP_PROTO_MAX
                ? srv->protos[h->aux]
                : NULL;
        if (proto && proto->closed)
            proto->closed(srv, h->conn_id);
        if (ev->on_close)
            ev->on_close(srv, h->conn_id, h->reactor_id);
        srv->closing_conn = 0;
        swoop_ipc_head_t ack = {.type = SWOOP_IPC_CLOSE,
                                .reactor_id = h->reactor_id,
                                .worker_id = (int16_t)srv->worker_id,
                                .conn_id = h->conn_id};
        int rc = swoop__ipc_send(&srv->wouts[r], &ack, NULL, 0);
        if (rc < 0)
            swoop__log_limited(SWOOP_LOG_ERROR, rc, "cannot acknowledge the close of conn %llu",
                               (unsigned long long)h->conn_id);
        break;
    }
    case SWOOP_IPC_DGRAM: {
        swoop_addr_t from;
        if (m->len < sizeof(from)) {
            swoop_log(SWOOP_LOG_WARNING, 0, "short DGRAM message (%zu bytes) dropped", m->len);
            break;
        }
        memcpy(&from, m->data, sizeof(from));
        srv->cur_port = h->port_id;
        set_busy(srv, 1);
        if (srv->settings.enable_coroutine)
            co_deliver(srv, NULL, 0, h->reactor_id, h->port_id, &from, m->data + sizeof(from),
                       m->len - sizeof(from));
        else if (ev->on_packet)
            ev->on_packet(srv, m->data + sizeof(from), m->len - sizeof(from), &from);
        set_busy(srv, 0);
        srv->cur_port = -1;
        count_request(srv);
        break;
    }
    default:
        swoop_log(SWOOP_LOG_WARNING, 0, "unexpected message type %u from reactor %d", h->type, r);
        break;
    }
}

typedef struct reactor_msg_ctx_s {
    swoop_server_t *srv;
    int reactor;
} reactor_msg_ctx_t;

static void on_reactor_msg(void *arg, swoop_ipc_msg_t *m)
{
    reactor_msg_ctx_t *ctx = arg;
    handle_reactor_msg(ctx->srv, ctx->reactor, m);
}

static void wpipe_cb(swoop_io_t *io, unsigned events)
{
    swoop_server_t *srv = io->data;
    int r = (int)(io - srv->wpipe_io);
    if (events & SWOOP_WRITABLE)
        swoop__ipc_flush(&srv->wouts[r]);
    if (!(events & SWOOP_READABLE) || srv->worker_stopping)
        return;
    /* One batch per wake-up: the loop comes back while data waits (level-triggered). */
    int n = swoop__ipc_recv(swoop_io_fd(io), &srv->wrb, SWOOP_IPC_RECV_BATCH);
    /* Every datagram read is handled, also after a stop: it is gone from the channel. */
    reactor_msg_ctx_t ctx = {srv, r};
    swoop__ipc_feed_batch(&srv->win, &srv->wrb, n, on_reactor_msg, &ctx);
}

/* ipc_ring: takes one batch per ring from each reactor's ring. */
/* One batch from reactor r's ring, handled; returns how many datagrams it held. */
static int worker_ring_batch(swoop_server_t *srv, int r)
{
    swoop_ring_t *ring = srv->win_rings[r];
    if (!swoop__ring_readable(ring))
        return 0;
    int wake = 0;
    int n = swoop__ring_recv(ring, &srv->wrb, SWOOP_IPC_RECV_BATCH, &wake);
    if (wake)
        swoop__ring_signal(srv->wake_fds[srv->worker_num + r]);
    /* Every datagram taken is handled, also after a stop: it is gone from the ring. */
    reactor_msg_ctx_t ctx = {srv, r};
    swoop__ipc_feed_batch(&srv->win, &srv->wrb, n, on_reactor_msg, &ctx);
    return n > 0 ? n : 0;
}

static void worker_drain_rings(swoop_server_t *srv)
{
    for (int r = 0; r < srv->reactor_num && !srv->worker_stopping; r++)
        worker_ring_batch(srv, r);
}

static void worker_wake_cb(swoop_io_t *io, unsigned events)
{
    swoop__ring_clear(swoop_io_fd(io));
}

static void worker_flush(swoop_server_t *srv);

/*
 * Shutdown (PROCESS): handles everything the input channels hold, sending
 * the replies after each batch, until they are empty. Nothing new comes in:
 * the reactor threads stopped reading before the manager was signalled.
 */
static void worker_drain_input(swoop_server_t *srv)
{
    if (srv->wouts == NULL)
        return;
    for (;;) {
        int got = 0;
        for (int r = 0; r < srv->reactor_num; r++) {
            reactor_msg_ctx_t ctx = {srv, r};
            while (srv->rings && worker_ring_batch(srv, r) > 0)
                got = 1;
            int n =
                swoop__ipc_recv(swoop_io_fd(&srv->wpipe_io[r]), &srv->wrb, SWOOP_IPC_RECV_BATCH);
            if (n > 0) {
                swoop__ipc_feed_batch(&srv->win, &srv->wrb, n, on_reactor_msg, &ctx);
                got = 1;
            }
        }
        worker_flush(srv);
        if (!got)
            return;
    }
}

/* ---- both modes: the message channel ---- */

static swoop_conn_t *own_conn(swoop_server_t *srv, swoop_conn_id_t id)
{
    return srv->base ? swoop__reactor_conn(srv->base, id) : NULL;
}

static void handle_peer_msg(swoop_server_t *srv, swoop_ipc_msg_t *m)
{
    const swoop_ipc_head_t *h = &m->head;
    if (h->type == SWOOP_IPC_FINISH) {
        swoop__task_finish_msg(srv, m); /* task/: on_finish */
        return;
    }
    if (h->type == SWOOP_IPC_RELAY) {
        const swoop_proto_t *proto = h->aux < SWOOP_PROTO_MAX ? srv->protos[h->aux] : NULL;
        if (proto && proto->relay) {
            set_busy(srv, 1);
            proto->relay(srv, m->data, m->len);
            set_busy(srv, 0);
        }
        return;
    }
    if (h->type == SWOOP_IPC_PIPE_MESSAGE) {
        if (srv->events.on_pipe_message) {
            set_busy(srv, 1);
            srv->events.on_pipe_message(srv, h->worker_id, m->data, m->len);
            set_busy(srv, 0);
        }
        return;
    }
    if (h->type == SWOOP_IPC_PROTO_OUT) {
        const swoop_proto_t *proto = h->aux < SWOOP_PROTO_MAX ? srv->protos[h->aux] : NULL;
        if (proto && proto->out && srv->base)
            proto->out(srv->base, h->conn_id, m->data, m->len);
        return;
    }
    swoop_conn_t *c = own_conn(srv, h->conn_id);
    if (c == NULL)
        return;
    switch (h->type) {
    case SWOOP_IPC_SEND:
        /* The sending worker reserved the bytes: nothing is refused here. */
        swoop__conn_send(c, m->data, m->len, 1);
        if (h->aux)
            swoop__conn_reply(c, h->aux);
        break;
    case SWOOP_IPC_SENDFILE:
        swoop__conn_sendfile_msg(c, m->data, m->len);
        break;
    case SWOOP_IPC_CLOSE_REQ:
        swoop__conn_close(c, h->aux != 0);
        break;
    case SWOOP_IPC_PAUSE:
    case SWOOP_IPC_RESUME:
        swoop__conn_pause(c, h->type == SWOOP_IPC_PAUSE);
        break;
    default:
        swoop_log(SWOOP_LOG_WARNING, 0, "unexpected message type %u from worker %d", h->type,
                  h->worker_id);
        break;
    }
}

static void on_peer_msg(void *arg, swoop_ipc_msg_t *m)
{
    handle_peer_msg(arg, m);
}

/* One batch from this worker's message channel, handled; returns how many datagrams. */
static int msg_batch(swoop_server_t *srv)
{
    int n = swoop__ipc_recv(swoop_io_fd(&srv->msg_io), &srv->wrb, SWOOP_IPC_RECV_BATCH);
    swoop__ipc_feed_batch(&srv->win_msg, &srv->wrb, n, on_peer_msg, srv);
    return n;
}

static void msg_cb(swoop_io_t *io, unsigned events)
{
    msg_batch(io->data);
}

static void mout_cb(swoop_io_t *io, unsigned events)
{
    swoop_server_t *srv = io->data;
    int w = (int)(io - mout_io);
    if (swoop__ipc_flush(&srv->mouts[w]) == 0)
        swoop_io_stop(io);
}

/* After each iteration: send what the callbacks queued, watch what could not leave. */
static void worker_flush(swoop_server_t *srv)
{
    if (srv->task)
        swoop__task_publish_unsent(srv); /* task/: what a death of this process would lose */
    int batch = srv->settings.ipc_batch;
    if (srv->wouts && srv->rings) {
        /* A full ring signals our eventfd once it has room: nothing to watch. */
        for (int r = 0; r < srv->reactor_num; r++) {
            swoop_ipc_out_t *out = &srv->wouts[r];
            if (swoop__ipc_pending(out))
                swoop__ipc_flush(out);
            if (batch)
                swoop__ipc_cork(out);
        }
    } else if (srv->wouts) {
        for (int r = 0; r < srv->reactor_num; r++) {
            swoop_ipc_out_t *out = &srv->wouts[r];
            int pending = swoop__ipc_pending(out) && swoop__ipc_flush(out) == 1;
            if (batch)
                swoop__ipc_cork(out);
            unsigned want =
                (srv->worker_stopping ? 0 : SWOOP_READABLE) | (pending ? SWOOP_WRITABLE : 0);
            if (srv->wpipe_io[r]._events != want)
                swoop_io_start(&srv->wpipe_io[r], want);
        }
    }
    for (int w = 0; w < srv->worker_num; w++) {
        swoop_ipc_out_t *out = &srv->mouts[w];
        if (swoop__ipc_pending(out) && swoop__ipc_flush(out) == 1)
            swoop_io_start(&mout_io[w], SWOOP_WRITABLE);
    }
}

/* ---- BASE: accepting ---- */

/* Publishes the number of connections this BASE process holds (the accept policy reads it). */
static void base_publish_conns(swoop_server_t *srv)
{
    if (srv->ranges == NULL || srv->range < 0)
        return;
    swoop_srv_range_t *rg = &srv->ranges[srv->range];
    if (atomic_load_explicit(&rg->conns, memory_order_relaxed) != srv->base->nconns)
        atomic_store_explicit(&rg->conns, srv->base->nconns, memory_order_relaxed);
}

static void base_accept_one(void *arg, int fd, const swoop_addr_t *addr)
{
    swoop_port_t *p = arg;
    swoop_server_t *srv = p->srv;
    /*
     * Our own range: an old or new process of this worker id uses another one.
     * The high-water mark moves before the session is published, so the reap
     * sweep of a process that dies right after covers it.
     */
    swoop_srv_range_t *rg = &srv->ranges[srv->range];
    if ((uint32_t)fd < srv->fd_limit &&
        (uint32_t)fd >= atomic_load_explicit(&rg->hwm, memory_order_relaxed))
        atomic_store_explicit(&rg->hwm, (uint32_t)fd + 1, memory_order_relaxed);
    swoop_conn_id_t id = swoop__session_admit(srv, p, fd, addr, srv->slot_base, srv->worker_id);
    if (id == 0)
        return;
    swoop__conn_open(srv->base, fd, id, p);
    atomic_fetch_add_explicit(&rg->accepts, 1, memory_order_relaxed);
    base_publish_conns(srv);
}

/* Tells the other workers' accept policy whether this process takes connections. */
static void base_set_accepting(swoop_server_t *srv, int on)
{
    if (srv->ranges && srv->range >= 0)
        atomic_store_explicit(&srv->ranges[srv->range].accepting, on, memory_order_relaxed);
}

/*
 * The accept policy on a shared listening socket. Every worker's loop
 * wakes for a new connection (level-triggered, no EPOLLEXCLUSIVE), and
 * without a policy the first one awake takes the whole queue: a burst of
 * 64 connections split 64/0 as often as not. A worker takes connections
 * only while it holds at most ACCEPT_SLACK more than the least loaded other
 * worker that accepts (not starting, draining or paused on EMFILE). Returns
 * how many it may accept now, 0 to yield; *progress is the others' accept
 * count, to see later whether they took what we left (a worker stuck in a
 * handler does not: base_accept_retry). The busy flag is no guide: it is
 * set for every on_receive, however short.
 */
static int base_accept_budget(swoop_server_t *srv, uint32_t *progress)
{
    int mine = srv->base->nconns, least = INT_MAX;
    uint32_t prog = 0;
    for (int i = 0; i < srv->nranges; i++) {
        swoop_srv_range_t *rg = &srv->ranges[i];
        if (i == srv->range || atomic_load_explicit(&rg->pid, memory_order_relaxed) <= 0 ||
            !atomic_load_explicit(&rg->accepting, memory_order_relaxed))
            continue;
        int wid = atomic_load_explicit(&rg->worker_id, memory_order_relaxed);
        if (wid < 0 || wid >= srv->worker_num)
            continue;
        prog += atomic_load_explicit(&rg->accepts, memory_order_relaxed);
        int n = atomic_load_explicit(&rg->conns, memory_order_relaxed);
        if (n < least)
            least = n;
    }
    *progress = prog;
    if (least == INT_MAX)
        return SWOOP_ACCEPT_BATCH;
    int budget = least + ACCEPT_SLACK + 1 - mine;
    return budget <= 0 ? 0 : budget < SWOOP_ACCEPT_BATCH ? budget : SWOOP_ACCEPT_BATCH;
}

/*
 * After a yield: watch the listening sockets again. If we still hold more
 * than our share and the others have accepted nothing for ACCEPT_STUCK_MS,
 * they are stuck (a long handler, or no CPU): we accept freely until one of
 * them accepts again. (Two workers can yield at once, each seeing the
 * other's older count: then the budget is no longer 0.)
 */
static void base_accept_retry(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    srv->accept_yielded = 0;
    if (srv->worker_stopping || srv->worker_draining || srv->worker_retiring || srv->accept_paused)
        return;
    uint32_t prog;
    int budget = base_accept_budget(srv, &prog);
    if (budget == 0 && prog == srv->accept_yield_progress &&
        swoop__now_ms() - srv->accept_stall_ms >= ACCEPT_STUCK_MS)
        srv->accept_stuck = 1;
    for (int i = 0; i < srv->nports; i++) {
        if (!srv->ports[i]->dgram)
            swoop_io_start(&accept_io[i], SWOOP_READABLE);
    }
}

/*
 * After each loop iteration of a worker that yielded: once its own load
 * fell back within its share (its short connections closed), it takes
 * connections again at once rather than at the retry timer. Without this,
 * two workers serving short connections (Connection: close) each took two
 * per ACCEPT_YIELD_MS and slept in between: 800 requests/s at 40 ms each.
 */
static void base_accept_recheck(swoop_server_t *srv)
{
    if (!srv->accept_balance || !srv->accept_yielded || srv->worker_stopping ||
        srv->worker_draining || srv->worker_retiring || srv->accept_paused)
        return;
    uint32_t prog;
    if (base_accept_budget(srv, &prog) <= 0)
        return;
    for (int i = 0; i < srv->nports; i++) {
        if (!srv->ports[i]->dgram)
            swoop_io_start(&accept_io[i], SWOOP_READABLE);
    }
}

static void base_accept_yield(swoop_server_t *srv, uint32_t progress)
{
    /* Already yielded (the EMFILE pause's end restarted the watch): its timer still runs. */
    if (!srv->accept_yielded &&
        swoop__timer_after_lib(ACCEPT_YIELD_MS, base_accept_retry, srv) <= 0)
        return; /* no timer: keep accepting rather than risk never resuming */
    srv->accept_yielded = 1;
    if (progress != srv->accept_yield_progress || srv->accept_stall_ms == 0) {
        srv->accept_yield_progress = progress;
        srv->accept_stall_ms = swoop__now_ms();
    }
    for (int i = 0; i < srv->nports; i++) {
        if (!srv->ports[i]->dgram)
            swoop_io_stop(&accept_io[i]);
    }
}

static void base_resume_accept(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    srv->accept_paused = 0;
    if (srv->worker_stopping || srv->worker_draining || srv->worker_retiring)
        return;
    base_set_accepting(srv, 1);
    for (int i = 0; i < srv->nports; i++) {
        if (!srv->ports[i]->dgram)
            swoop_io_start(&accept_io[i], SWOOP_READABLE);
    }
}

static void base_accept_cb(swoop_io_t *io, unsigned events)
{
    swoop_port_t *p = io->data;
    swoop_server_t *srv = p->srv;
    int accepted, max = SWOOP_ACCEPT_BATCH;
    if (srv->accept_balance) {
        uint32_t progress;
        max = base_accept_budget(srv, &progress);
        if (srv->accept_stuck && progress == srv->accept_yield_progress)
            max = SWOOP_ACCEPT_BATCH; /* the others still took nothing */
        else
            srv->accept_stuck = 0;
        if (max == 0) {
            base_accept_yield(srv, progress);
            return;
        }
        if (!srv->accept_stuck)
            srv->accept_stall_ms = 0; /* a stall is timed from the first of consecutive yields */
    }
    int rc = swoop__sock_accept_batch(swoop_io_fd(io), max, base_accept_one, p, &accepted);
    if (rc < 0 && rc != SWOOP_EAGAIN && atomic_load(&srv->gs->shutting_down)) {
        /* The manager shut the listening socket down: our SIGTERM is on its way. */
        for (int i = 0; i < srv->nports; i++)
            swoop_io_stop(&accept_io[i]);
        return;
    }
    if (rc == SWOOP_EMFILE || rc == SWOOP_ENFILE || rc == SWOOP_ENOBUFS || rc == SWOOP_ENOMEM) {
        swoop__log_limited(SWOOP_LOG_ERROR, rc,
                           "accept4() on port %d failed: pausing accept for 100 ms", p->port);
        if (!srv->accept_paused) {
            srv->accept_paused = 1;
            base_set_accepting(srv, 0);
            for (int i = 0; i < srv->nports; i++)
                swoop_io_stop(&accept_io[i]);
            swoop__timer_after_lib(100, base_resume_accept, srv);
        }
    } else if (rc < 0 && rc != SWOOP_EAGAIN) {
        swoop__log_limited(SWOOP_LOG_ERROR, rc, "accept4() on port %d failed", p->port);
    }
}

static void base_dgram_cb(swoop_io_t *io, unsigned events)
{
    swoop_port_t *p = io->data;
    swoop__port_dgram_readable(p->srv->base, p);
}

static void base_tick_cb(int64_t id, void *arg)
{
    swoop__reactor_tick(arg);
}

static void task_poll_cb(int64_t id, void *arg);
static int msg_batch(swoop_server_t *srv);

/* BASE shutdown: once no task runs, their results are run and the connections close. */
static void base_tasks_check(swoop_server_t *srv)
{
    if (srv->task_poll_timer <= 0 || !swoop__task_quiet(srv))
        return;
    swoop_timer_clear(srv->task_poll_timer);
    srv->task_poll_timer = 0;
    while (msg_batch(srv) > 0) {
    }
    swoop__reactor_finish(srv->base);
}

static void base_drain_deadline_cb(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    if (srv->task_poll_timer > 0) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "shutdown: tasks still run after max_wait_time: their results are lost");
        swoop_timer_clear(srv->task_poll_timer);
        srv->task_poll_timer = 0;
    }
    swoop__reactor_expire(srv->base, srv->drain_why ? srv->drain_why : "shutdown");
    worker_stop(srv);
}

/*
 * A retiring BASE worker (reload, max_request) closes a connection only
 * between two requests: nothing read for DRAIN_IDLE_MS, no unread byte in
 * the kernel or in its input buffer, no output left. A client that sends
 * its next request at that very moment still meets the close: the race of
 * every keep-alive close, which HTTP clients answer by retrying on a new
 * connection when not one byte of the answer came. A WebSocket is never
 * between two requests: it gets a close frame 1001 (going away) at once and
 * closes when the client answers it, within max_wait_time.
 */
static void base_close_idle(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    swoop_reactor_t *r = srv->base;
    uint64_t now = swoop_loop_now(wloop);
    swoop_queue_t *q = swoop_queue_head(&r->conns);
    while (q != &r->conns) {
        swoop_conn_t *c = swoop_queue_data(q, swoop_conn_t, link);
        q = q->next; /* the close may free c */
        int unread = 0;
        /* A protocol that says goodbye (WebSocket: 1001) closes it once the client answers. */
        if (c->state == CONN_OPEN && c->proto && c->proto->going_away && c->proto->going_away(c, 1))
            continue;
        /* A protocol in the middle of a request (a chunked body between chunks) keeps it. */
        if (c->state == CONN_OPEN && c->proto && c->proto->busy && c->proto->busy(c))
            continue;
        if (c->state != CONN_OPEN || now - c->last_recv_ms < DRAIN_IDLE_MS ||
            swoop__buf_rlen(&c->in) || swoop__buf_rlen(&c->out) || !swoop_queue_empty(&c->files) ||
            (c->tls && swoop__tls_pending(c->tls)) || ioctl(c->fd, FIONREAD, &unread) < 0 ||
            unread > 0)
            continue;
        swoop__conn_close(c, 0);
    }
}

/*
 * BASE, at shutdown, or when a reload or max_request replaces the process
 * (its successor already accepts): no more accepting or reading; the requests the kernel
 * already holds run now; connections close once their output is flushed.
 * The main loop stops the worker when none is left.
 */
static void base_drain_begin(swoop_server_t *srv, int shutting_down)
{
    base_set_accepting(srv, 0);
    for (int i = 0; i < srv->nports; i++) {
        swoop_io_stop(&accept_io[i]);
        /*
         * Shutdown: an own SO_REUSEPORT socket refuses its connects too (the
         * manager did the shared one). Reload, max_request: the successor
         * serves them.
         */
        if (shutting_down && !srv->ports[i]->dgram && srv->ports[i]->fd >= 0)
            shutdown(srv->ports[i]->fd, SHUT_RD);
    }
    if (srv->worker_draining)
        return;
    srv->worker_draining = 1;
    /* A retiring worker drains for max_request; else the manager's SIGTERM: reload or shutdown. */
    srv->drain_why = shutting_down ? "shutdown" : srv->worker_retiring ? "max_request" : "reload";
    /*
     * Reload, max_request: the successor reads this id's message channel
     * from now on (sends to its connections, on_finish, pipe messages); two
     * readers would split them. At shutdown there is no successor.
     */
    if (!shutting_down)
        swoop_io_stop(&srv->msg_io);
    if (shutting_down) {
        swoop__reactor_stop_reading(srv->base);
        /*
         * Requests that posted tasks are answered from on_finish; the task
         * workers run until this process is gone, so keep the connections
         * (and the message channel) until no task runs (base_tasks_check).
         */
        if (swoop__task_quiet(srv) ||
            (srv->task_poll_timer = swoop__timer_tick_lib(TASK_POLL_MS, task_poll_cb, NULL)) <= 0)
            swoop__reactor_finish(srv->base);
    } else {
        /* Reload, max_request: requests keep being answered; idle connections close. */
        base_close_idle(0, srv);
        swoop__loop_timer_tick_lib(wloop, DRAIN_IDLE_MS / 4, base_close_idle, srv);
    }
    int64_t ms = (int64_t)srv->settings.max_wait_time * 1000 - DRAIN_MARGIN_MS;
    if (swoop__timer_after_lib(ms > 0 ? ms : 0, base_drain_deadline_cb, srv) <= 0)
        base_drain_deadline_cb(0, srv);
}

void swoop__base_deliver_data(swoop_reactor_t *r, swoop_conn_t *c, const char *data, size_t len)
{
    swoop_server_t *srv = r->srv;
    set_busy(srv, 1);
    if (srv->settings.enable_coroutine)
        co_deliver(srv, c->proto, c->id, r->id, -1, NULL, data, len);
    else if (c->proto && c->proto->message)
        c->proto->message(srv, c->id, r->id, (char *)data, len); /* ours: writable */
    else if (srv->events.on_receive)
        srv->events.on_receive(srv, c->id, r->id, data, len);
    set_busy(srv, 0);
    count_request(srv);
}

void swoop__base_deliver_dgram(swoop_reactor_t *r, swoop_port_t *p, const swoop_addr_t *from,
                               const char *data, size_t len)
{
    swoop_server_t *srv = r->srv;
    srv->cur_port = p->index;
    set_busy(srv, 1);
    if (srv->settings.enable_coroutine)
        co_deliver(srv, NULL, 0, r->id, p->index, from, data, len);
    else if (srv->events.on_packet)
        srv->events.on_packet(srv, data, len, from);
    set_busy(srv, 0);
    srv->cur_port = -1;
    count_request(srv);
}

/* ---- PROCESS: the worker id's token ---- */

/* A SIGTERM waits for this process (blocked, for the signalfd). */
static int sigterm_pending(void)
{
    sigset_t set;
    return sigpending(&set) == 0 && sigismember(&set, SIGTERM) == 1;
}

/*
 * Waits until this process holds its worker id's token; returns 0 then, or
 * -1 when it was replaced before it ever ran (a reload during a reload: a
 * SIGTERM waits while the server is not shutting down), and must exit
 * without touching the id's channels. The holder gives the token up when
 * it exits in order; one that died is freed by the manager's reap (or
 * here, once it is gone without one).
 * Bounded by the manager's SIGKILL of a holder that does not finish within
 * max_wait_time. At shutdown a waiting successor still takes over: what
 * its predecessor (stopped earlier by a reload) left in the channels is
 * its to drain.
 */
static int worker_token_take(swoop_server_t *srv, int id)
{
    _Atomic uint32_t *owner = &srv->gs->workers[id].owner;
    uint32_t me = (uint32_t)getpid();
    uint64_t since = swoop__now_ms();
    int told = 0;
    for (;;) {
        if (sigterm_pending() && !atomic_load(&srv->gs->shutting_down))
            return -1;
        uint32_t cur = 0;
        if (atomic_compare_exchange_strong(owner, &cur, me) || cur == me)
            break;
        /*
         * A holder that is gone without the manager's reap (the manager is
         * gone too) can touch nothing. A zombie waits for the reap, which
         * settles what it left (task/: its unsent tasks) before freeing it.
         */
        if (kill((pid_t)cur, 0) < 0 && errno == ESRCH) {
            atomic_compare_exchange_strong(owner, &cur, 0);
            continue;
        }
        if (!told && swoop__now_ms() - since >= 1000) {
            told = 1;
            swoop_log(SWOOP_LOG_INFO, 0,
                      "worker %d: waiting for its previous process (pid %u) to finish its callback",
                      id, cur);
        }
        swoop__futex_wait(owner, cur, TOKEN_POLL_MS);
    }
    if (told)
        swoop_log(SWOOP_LOG_INFO, 0, "worker %d: took over after %llu ms", id,
                  (unsigned long long)(swoop__now_ms() - since));
    return 0;
}

/* Gives the token up (nothing of the id's channels is touched after this). */
static void worker_token_give(swoop_server_t *srv, int id)
{
    _Atomic uint32_t *owner = &srv->gs->workers[id].owner;
    uint32_t me = (uint32_t)getpid();
    if (atomic_compare_exchange_strong(owner, &me, 0))
        swoop__futex_wake_all(owner);
}

void swoop__worker_token_reaped(swoop_server_t *srv, int id, pid_t pid)
{
    if (srv->mode != SWOOP_MODE_PROCESS || id < 0 || id >= srv->worker_num || pid <= 0)
        return;
    _Atomic uint32_t *owner = &srv->gs->workers[id].owner;
    uint32_t dead = (uint32_t)pid;
    if (atomic_compare_exchange_strong(owner, &dead, 0))
        swoop__futex_wake_all(owner);
}

/* ---- shutdown: the tasks this worker's requests posted ---- */

static void task_poll_cb(int64_t id, void *arg)
{
    (void)id;
    (void)arg; /* only wakes the loop */
}

/*
 * PROCESS shutdown, after the input was drained: the task workers run until
 * the event workers are gone (the manager stops them last), so a request
 * that posted a task still gets its on_finish here, and its reply leaves.
 * Waits until no task is queued or running anywhere and this worker's
 * message channel is empty, or until DRAIN_MARGIN_MS before the manager's
 * SIGKILL.
 */
static void worker_await_tasks(swoop_server_t *srv)
{
    if (srv->task == NULL || swoop__task_quiet(srv))
        return;
    int64_t ms = (int64_t)srv->settings.max_wait_time * 1000 - DRAIN_MARGIN_MS;
    uint64_t deadline = swoop__now_ms() + (uint64_t)(ms > 0 ? ms : 0);
    int64_t t = swoop__loop_timer_tick_lib(wloop, TASK_POLL_MS, task_poll_cb, NULL);
    swoop_io_start(&srv->msg_io, SWOOP_READABLE);
    for (;;) {
        while (!swoop__task_quiet(srv) && swoop__now_ms() < deadline) {
            if (swoop_loop_run_once(wloop) < 0)
                break;
            worker_flush(srv);
        }
        /* Results sent before the count dropped are in the channel: run them. */
        while (msg_batch(srv) > 0)
            worker_flush(srv);
        /* An on_finish may have posted the next task of a chain: wait for it too. */
        if (swoop__task_quiet(srv) || swoop__now_ms() >= deadline)
            break;
    }
    if (!swoop__task_quiet(srv))
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "shutdown: tasks still run after max_wait_time: their results are lost");
    swoop_io_stop(&srv->msg_io);
    if (t > 0)
        swoop_loop_timer_clear(wloop, t);
    worker_flush(srv);
}

/*
 * PROCESS, stopping for a reload or max_request: a message larger than one
 * datagram may be half assembled (its chunks come over several wake-ups).
 * Its other chunks are in the id's channels or on their way, and the
 * successor would drop them as unknown: read on until nothing is half
 * assembled, running the whole messages that come along (they were taken,
 * so they run here), for at most max_wait_time less the margin.
 */
static void worker_finish_partial(swoop_server_t *srv)
{
    if (srv->wouts == NULL || swoop__idmap_len(&srv->win.pending) == 0)
        return;
    int64_t ms = (int64_t)srv->settings.max_wait_time * 1000 - DRAIN_MARGIN_MS;
    uint64_t deadline = swoop__now_ms() + (uint64_t)(ms > 0 ? ms : 0);
    while (swoop__idmap_len(&srv->win.pending) > 0 && swoop__now_ms() < deadline) {
        int got = 0;
        for (int r = 0; r < srv->reactor_num; r++) {
            if (srv->rings) {
                got |= worker_ring_batch(srv, r) > 0;
                continue;
            }
            int n =
                swoop__ipc_recv(swoop_io_fd(&srv->wpipe_io[r]), &srv->wrb, SWOOP_IPC_RECV_BATCH);
            if (n > 0) {
                reactor_msg_ctx_t ctx = {srv, r};
                swoop__ipc_feed_batch(&srv->win, &srv->wrb, n, on_reactor_msg, &ctx);
                got = 1;
            }
        }
        worker_flush(srv);
        if (!got)
            usleep(1000); /* the writer is still sending the rest */
    }
    if (swoop__idmap_len(&srv->win.pending) > 0)
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "worker %d: a message still half received at the stop: it is lost",
                  srv->worker_id);
}

/* ---- the worker main ---- */

/* Partial messages of writers that died mid-message are dropped after a few seconds. */
static void worker_sweep_cb(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    swoop__ipc_in_sweep(&srv->win);
    swoop__ipc_in_sweep(&srv->win_msg);
}

static int worker_setup(swoop_server_t *srv, int id)
{
    int rc;
    swoop_loop_t *loop = wloop;
    int R = srv->reactor_num;
    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the group: the manager stops us in order */
    wsig_term.data = srv;
    wsig_reopen.data = srv;
    if ((rc = swoop_signal_init(loop, &wsig_term, on_worker_signal)) < 0 ||
        (rc = swoop_signal_start(&wsig_term, SIGTERM)) < 0 ||
        (rc = swoop_signal_init(loop, &wsig_reopen, on_worker_signal)) < 0 ||
        (rc = swoop_signal_start(&wsig_reopen, SIGRTMIN)) < 0) {
        swoop_log(SWOOP_LOG_ERROR, rc, "worker %d: cannot watch its signals", id);
        return rc;
    }
    swoop__ipc_in_init(&srv->win, 0);
    srv->win.gone_cb = swoop__server_writer_gone;
    srv->win.gone_arg = srv;
    swoop__ipc_in_init(&srv->win_msg, 0);
    srv->win_msg.gone_cb = swoop__server_writer_gone;
    srv->win_msg.gone_arg = srv;
    swoop__loop_timer_tick_lib(loop, 1000, worker_sweep_cb, srv);
    swoop__ipc_rbuf_init(&srv->wrb);

    /* Message channels: our read end, everybody's write end. */
    srv->mouts = swoop_calloc((size_t)srv->worker_num, sizeof(*srv->mouts));
    mout_io = swoop_calloc((size_t)srv->worker_num, sizeof(*mout_io));
    for (int w = 0; w < srv->worker_num; w++) {
        if (w != id)
            swoop__channel_close_end(&srv->msgs[w], 1);
        swoop__ipc_out_init(&srv->mouts[w], srv->msgs[w].fds[0]);
        mout_io[w].data = srv;
        swoop_io_init(loop, &mout_io[w], srv->msgs[w].fds[0], mout_cb);
    }
    srv->msg_io.data = srv;
    swoop_io_init(loop, &srv->msg_io, srv->msgs[id].fds[1], msg_cb);
    if ((rc = swoop_io_start(&srv->msg_io, SWOOP_READABLE)) < 0)
        return rc;

    if (srv->mode == SWOOP_MODE_PROCESS) {
        for (int i = 0; i < srv->nports; i++) {
            swoop_port_t *p = srv->ports[i];
            if (!p->dgram && p->fd >= 0) {
                close(p->fd);
                p->fd = -1;
            }
        }
        for (int w = 0; w < srv->worker_num; w++) {
            if (w == id)
                continue;
            for (int r = 0; r < R; r++)
                swoop__channel_close_end(&srv->pairs[w * R + r], 1);
        }
        srv->wouts = swoop_calloc((size_t)R, sizeof(*srv->wouts));
        srv->wpipe_io = swoop_calloc((size_t)R, sizeof(*srv->wpipe_io));
        if (srv->rings) {
            srv->win_rings = swoop_calloc((size_t)R, sizeof(*srv->win_rings));
            srv->wwake_io.data = srv;
            swoop_io_init(loop, &srv->wwake_io, srv->wake_fds[id], worker_wake_cb);
            if ((rc = swoop_io_start(&srv->wwake_io, SWOOP_READABLE)) < 0)
                return rc;
        }
        for (int r = 0; r < R; r++) {
            int fd = srv->pairs[id * R + r].fds[1];
            swoop__ipc_out_init(&srv->wouts[r], fd);
            if (srv->settings.ipc_batch)
                swoop__ipc_cork(&srv->wouts[r]);
            srv->wpipe_io[r].data = srv;
            swoop_io_init(loop, &srv->wpipe_io[r], fd, wpipe_cb);
            if (srv->rings) {
                swoop__ipc_out_use_ring(&srv->wouts[r], swoop__ring_of(srv, id, r, 0),
                                        &srv->wakers[srv->worker_num + r],
                                        srv->wake_fds[srv->worker_num + r]);
                srv->win_rings[r] = swoop__ring_of(srv, id, r, 1);
                continue;
            }
            if ((rc = swoop_io_start(&srv->wpipe_io[r], SWOOP_READABLE)) < 0)
                return rc;
        }
        return 0;
    }

    /* BASE: our own connection engine and the listening sockets. */
    srv->base = swoop_calloc(1, sizeof(*srv->base));
    swoop__reactor_init(srv->base, srv, id, loop);
    srv->conns = swoop_calloc(srv->fd_limit, sizeof(*srv->conns));
    accept_io = swoop_calloc((size_t)srv->nports, sizeof(*accept_io));
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        int fd = p->fd;
        if (srv->settings.enable_reuse_port && id > 0 &&
            (p->type == SWOOP_SOCK_TCP || p->type == SWOOP_SOCK_TCP6 || p->type == SWOOP_SOCK_UDP ||
             p->type == SWOOP_SOCK_UDP6)) {
            int own = swoop__sock_listen(p->type, p->host, p->port, p->eff.backlog, 1);
            if (own < 0) {
                swoop_log(SWOOP_LOG_ERROR, own,
                          "worker %d: cannot open its SO_REUSEPORT socket "
                          "on port %d: sharing the common one",
                          id, p->port);
            } else {
                close(p->fd);
                p->fd = own;
                fd = own;
            }
        }
        accept_io[i].data = p;
        swoop_io_init(loop, &accept_io[i], fd, p->dgram ? base_dgram_cb : base_accept_cb);
        if ((rc = swoop_io_start(&accept_io[i], SWOOP_READABLE)) < 0)
            return rc;
    }
    srv->base->tick_timer = swoop__loop_timer_tick_lib(loop, 1000, base_tick_cb, srv->base);
    /* Own SO_REUSEPORT sockets: the kernel spreads the connections instead. */
    srv->accept_balance = srv->worker_num > 1 && !srv->settings.enable_reuse_port;
    srv->accept_yielded = 0;
    srv->accept_stuck = 0;
    srv->accept_stall_ms = 0;
    base_set_accepting(srv, 1);
    return 0;
}

/*
 * BASE, at the worker's end (its connections are closed): what the worker
 * made for itself goes, the engine with the protocols' per-owner state
 * (swoop__reactor_free runs their owner_free: the WebSocket layer's shared
 * compressors), as a PROCESS reactor thread's does (master.c). The
 * process exits right after, but the protocols' state is theirs to end,
 * and a leak check or a zlib that counts its streams sees them ended.
 */
static void base_teardown(swoop_server_t *srv)
{
    swoop_reactor_t *r = srv->base;
    if (r->tick_timer > 0)
        swoop_loop_timer_clear(wloop, r->tick_timer);
    r->tick_timer = 0;
    for (int i = 0; accept_io && i < srv->nports; i++)
        swoop_io_stop(&accept_io[i]);
    swoop_free(accept_io);
    accept_io = NULL;
    swoop__reactor_free(r);
    swoop_free(r);
    srv->base = NULL;
    swoop_free(srv->conns);
    srv->conns = NULL;
}

int swoop__worker_main(void *data, int id)
{
    swoop_server_t *srv = data;
    swoop__admin_child(srv); /* forked by the manager, which holds admin_port's socket */
    if (id >= srv->worker_num)
        return swoop__task_worker_main(srv, id); /* task/task.c */
    srv->worker_id = id;
    srv->worker_stopping = 0;
    srv->worker_draining = 0;
    srv->worker_retiring = 0;
    srv->drain_why = NULL;
    srv->task_poll_timer = 0;
    srv->requests = 0;
    srv->request_limit = pick_limit(&srv->settings);
    srv->running = 0;
    srv->pid_file_written = 0;
    if (srv->mode == SWOOP_MODE_BASE) {
        /* The manager reserved our session range right before the fork. */
        SWOOP_ASSERT(srv->range >= 0 && srv->range < srv->nranges);
        srv->slot_base = (uint32_t)srv->range * srv->fd_limit;
    }
    swoop_srv_wstat_t *ws = &srv->gs->workers[id];
    atomic_store(&ws->requests, 0);
    atomic_store(&ws->start_seq, atomic_load(&srv->gs->msg_seq));
    atomic_fetch_add(&ws->starts, 1);
    atomic_store(&srv->proc_stats[id].pid, getpid());
    atomic_store(&srv->proc_stats[id].request_limit, srv->request_limit);
    wloop = swoop_loop_default();
    if (wloop == NULL || co_setup(srv) < 0 || worker_setup(srv, id) < 0)
        return 1;
    /* PROCESS: the id's previous process must be done with the id's channels. */
    if (srv->mode == SWOOP_MODE_PROCESS && worker_token_take(srv, id) < 0) {
        swoop_log(SWOOP_LOG_INFO, 0, "worker %d: replaced by a later reload before it ran", id);
        return 0;
    }
    /*
     * The stats show the worker once it listens (BASE) or holds its id's
     * channels (PROCESS): a client that waited for that is served.
     */
    atomic_store(&ws->pid, getpid());
    atomic_store(&ws->busy, 0); /* the flag is ours from now on (set_busy) */
    if (srv->events.on_worker_start)
        srv->events.on_worker_start(srv, id);
    swoop_ring_waker_t *waker = srv->win_rings ? &srv->wakers[id] : NULL;
    while (!srv->worker_stopping) {
        int rc;
        if (waker && swoop__ring_prepare_sleep(waker, srv->win_rings, srv->reactor_num))
            rc = swoop__loop_run_nowait(wloop);
        else
            rc = swoop_loop_run_once(wloop);
        if (waker) {
            swoop__ring_awake(waker);
            worker_drain_rings(srv);
        }
        worker_flush(srv);
        if (srv->base) {
            base_publish_conns(srv);
            base_accept_recheck(srv);
        }
        if (srv->worker_retiring && !srv->worker_draining)
            base_drain_begin(srv, 0);
        if (srv->base)
            base_tasks_check(srv);
        if (srv->worker_draining && swoop_queue_empty(&srv->base->conns))
            worker_stop(srv);
        if (rc < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "worker %d: loop failed", id);
            break;
        }
    }
    worker_stop(srv);
    if (waker)
        swoop_io_stop(&srv->wwake_io);
    if (!srv->base && atomic_load(&srv->gs->shutting_down))
        worker_await_tasks(srv);
    else if (!srv->base)
        worker_finish_partial(srv);
    if (srv->base) {
        swoop__reactor_close_all(srv->base, 1);
        worker_flush(srv);
    }
    if (srv->events.on_worker_stop)
        srv->events.on_worker_stop(srv, id);
    /* Replies still queued: give the reactor a moment to take them. */
    for (int tries = 0; tries < FLUSH_TRIES_AT_EXIT; tries++) {
        int left = 0;
        for (int r = 0; srv->wouts && r < srv->reactor_num; r++)
            left |= swoop__ipc_pending(&srv->wouts[r]) && swoop__ipc_flush(&srv->wouts[r]) == 1;
        for (int w = 0; w < srv->worker_num; w++)
            left |= swoop__ipc_pending(&srv->mouts[w]) && swoop__ipc_flush(&srv->mouts[w]) == 1;
        left |= swoop__task_flush(srv); /* task/: tasks still queued */
        if (!left)
            break;
        usleep(5000);
    }
    size_t unsent = swoop__task_abandon(srv);
    if (unsent)
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "worker %d exits with %zu task(s) its task workers never took in 1 s: lost", id,
                  unsent);
    set_busy(srv, 0);
    if (srv->mode == SWOOP_MODE_PROCESS)
        worker_token_give(srv, id); /* the successor may read and write the id's channels now */
    if (srv->base)
        base_teardown(srv);
    /* _exit follows in spawn: nothing of the parent's image is torn down here. */
    return 0;
}

/* ---- BASE mode: the manager runs in the calling process ---- */

int swoop__base_run(swoop_server_t *srv)
{
    swoop_log_set_role(SWOOP_ROLE_MANAGER, -1);
    atomic_store(&srv->gs->master_pid, getpid());
    int rc = swoop__server_write_pid_file(srv);
    if (rc < 0)
        return rc;
    /* Bound here, served by a process the manager forks (admin.c). */
    if ((rc = swoop__admin_open(srv)) < 0) {
        swoop__server_remove_pid_file(srv);
        return rc;
    }
    swoop_log(SWOOP_LOG_INFO, 0, "server started (BASE): manager %d, %d workers%s", (int)getpid(),
              srv->worker_num, srv->settings.enable_reuse_port ? ", SO_REUSEPORT" : "");
    if (srv->events.on_start)
        srv->events.on_start(srv);
    rc = swoop__server_manager_run(srv);
    swoop__admin_stop(srv); /* closes the socket if the manager could not start */
    atomic_store(&srv->gs->manager_pid, 0);
    atomic_store(&srv->gs->master_pid, 0);
    swoop__server_remove_pid_file(srv);
    if (srv->events.on_shutdown)
        srv->events.on_shutdown(srv);
    swoop_log(SWOOP_LOG_INFO, 0, "server stopped");
    swoop_log_set_role(SWOOP_ROLE_STANDALONE, -1);
    return rc;
}

/* ---- worker-side API ---- */

static int route_base(swoop_server_t *srv, swoop_session_t *s, swoop_ipc_head_t *h,
                      const void *data, size_t len)
{
    int owner = s->reactor_id;
    if (owner < 0 || owner >= srv->worker_num)
        return SWOOP_ECLOSED;
    h->worker_id = (int16_t)srv->worker_id;
    int rc = swoop__ipc_send(&srv->mouts[owner], h, data, len);
    return rc < 0 ? rc : 0;
}

int swoop__server_wait_room(swoop_server_t *srv, swoop_conn_id_t conn, size_t len, int timeout_ms)
{
    uint64_t limit = (uint64_t)srv->settings.socket_buffer_size;
    if (len > limit)
        return SWOOP_EMSGSIZE;
    uint64_t deadline = swoop__now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        swoop_session_t *s = swoop__session_get(srv, conn);
        if (s == NULL)
            return SWOOP_ECLOSED;
        if (atomic_load_explicit(&s->out_queued, memory_order_relaxed) + len <= limit)
            return 0;
        uint64_t now = swoop__now_ms();
        if (now >= deadline)
            return SWOOP_ETIMEDOUT;
        int ms = deadline - now > 50 ? 50 : (int)(deadline - now);
        swoop_conn_t *c = own_conn(srv, conn);
        if (c) {
            swoop__conn_flush_wait(c, ms); /* BASE: we are the writer */
        } else {
            worker_flush(srv); /* our queued sends reach the owner, which writes them */
            usleep(1000);
        }
    }
}

int swoop_server_send(swoop_server_t *srv, swoop_conn_id_t conn, const void *data, size_t len)
{
    return swoop__server_send_reply(srv, conn, data, len, 0);
}

int swoop__server_send_reply(swoop_server_t *srv, swoop_conn_id_t conn, const void *data,
                             size_t len, uint32_t flags)
{
    if (srv == NULL || (data == NULL && len))
        return SWOOP_EINVAL;
    if (srv->worker_id < 0 || swoop_server_is_task_worker(srv))
        return SWOOP_ESTATE;
    if (len > (size_t)srv->settings.buffer_output_size) {
        swoop__log_limited(SWOOP_LOG_WARNING, 0,
                           "send of %zu bytes to conn %llu refused: above buffer_output_size %lld",
                           len, (unsigned long long)conn,
                           (long long)srv->settings.buffer_output_size);
        return SWOOP_EMSGSIZE;
    }
    swoop_session_t *s = swoop__session_get(srv, conn);
    if (s == NULL)
        return SWOOP_ECLOSED;
    if (srv->mode == SWOOP_MODE_BASE) {
        swoop_conn_t *c = own_conn(srv, conn);
        if (c) {
            int rc = swoop__conn_send(c, data, len, 0);
            if (rc == 0 && flags)
                swoop__conn_reply(c, flags);
            return rc;
        }
    }
    /*
     * Reserve the bytes before they travel: once this returns 0 the owner
     * takes them (or the connection is gone), so no accepted send is lost
     * from the middle of the stream.
     */
    int r = s->reactor_id;
    if (srv->mode == SWOOP_MODE_PROCESS && (r < 0 || r >= srv->reactor_num))
        return SWOOP_ECLOSED;
    int rc = swoop__session_reserve(srv, s, conn, len);
    if (rc < 0)
        return rc;
    swoop_ipc_head_t h = {.type = SWOOP_IPC_SEND,
                          .reactor_id = s->reactor_id,
                          .worker_id = (int16_t)srv->worker_id,
                          .aux = flags,
                          .conn_id = conn};
    if (srv->mode == SWOOP_MODE_BASE)
        rc = route_base(srv, s, &h, data, len);
    else
        rc = swoop__ipc_send(&srv->wouts[r], &h, data, len);
    if (rc < 0) {
        swoop__session_release(s, len);
        return rc;
    }
    return 0;
}

static int conn_request(swoop_server_t *srv, swoop_conn_id_t conn, int type, uint32_t aux)
{
    if (srv == NULL)
        return SWOOP_EINVAL;
    if (srv->worker_id < 0 || swoop_server_is_task_worker(srv))
        return SWOOP_ESTATE;
    swoop_session_t *s = swoop__session_get(srv, conn);
    if (s == NULL)
        return SWOOP_ECLOSED;
    if (srv->mode == SWOOP_MODE_BASE) {
        swoop_conn_t *c = own_conn(srv, conn);
        if (c) {
            if (type == SWOOP_IPC_CLOSE_REQ)
                swoop__conn_close(c, aux != 0);
            else
                swoop__conn_pause(c, type == SWOOP_IPC_PAUSE);
            return 0;
        }
    }
    swoop_ipc_head_t h = {.type = (uint8_t)type,
                          .reactor_id = s->reactor_id,
                          .worker_id = (int16_t)srv->worker_id,
                          .aux = aux,
                          .conn_id = conn};
    if (srv->mode == SWOOP_MODE_BASE)
        return route_base(srv, s, &h, NULL, 0);
    int r = s->reactor_id;
    if (r < 0 || r >= srv->reactor_num)
        return SWOOP_ECLOSED;
    int rc = swoop__ipc_send(&srv->wouts[r], &h, NULL, 0);
    return rc < 0 ? rc : 0;
}

int swoop_server_close(swoop_server_t *srv, swoop_conn_id_t conn, int reset)
{
    return conn_request(srv, conn, SWOOP_IPC_CLOSE_REQ, reset ? 1u : 0u);
}

int swoop_server_pause(swoop_server_t *srv, swoop_conn_id_t conn)
{
    return conn_request(srv, conn, SWOOP_IPC_PAUSE, 0);
}

int swoop_server_resume(swoop_server_t *srv, swoop_conn_id_t conn)
{
    return conn_request(srv, conn, SWOOP_IPC_RESUME, 0);
}

int swoop_server_sendto(swoop_server_t *srv, const swoop_addr_t *to, const void *data, size_t len)
{
    if (srv == NULL || to == NULL || (data == NULL && len))
        return SWOOP_EINVAL;
    swoop_port_t *use = NULL;
    if (srv->cur_port >= 0 && srv->cur_port < srv->nports) {
        swoop_port_t *p = srv->ports[srv->cur_port];
        if (p->dgram && p->fd >= 0)
            use = p;
    }
    int want = to->u.sa.sa_family;
    for (int i = 0; use == NULL && i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        int fam = p->type == SWOOP_SOCK_UDP    ? AF_INET
                  : p->type == SWOOP_SOCK_UDP6 ? AF_INET6
                                               : AF_UNIX;
        if (p->dgram && p->fd >= 0 && fam == want)
            use = p;
    }
    if (use == NULL) {
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "sendto: no datagram port of address family %d",
                           want);
        return SWOOP_EINVAL;
    }
    for (;;) {
        ssize_t n = sendto(use->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, &to->u.sa, to->len);
        if (n >= 0) {
            if (srv->worker_id >= 0)
                atomic_fetch_add_explicit(&swoop__counter(srv->gs, srv->worker_id)->bytes_out,
                                          (uint64_t)n, memory_order_relaxed);
            return 0;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err != EAGAIN)
            swoop__log_limited(SWOOP_LOG_WARNING, err, "sendto() of %zu bytes on port %d failed",
                               len, use->port);
        return -err;
    }
}

int swoop_server_sendfile(swoop_server_t *srv, swoop_conn_id_t conn, const char *path, off_t offset,
                          size_t length)
{
    if (srv == NULL || path == NULL || offset < 0)
        return SWOOP_EINVAL;
    if (srv->worker_id < 0 || swoop_server_is_task_worker(srv))
        return SWOOP_ESTATE;
    /* Checked here, so the caller learns of a missing or odd file at once. */
    size_t len = length;
    int fd = swoop__sendfile_open(path, offset, &len);
    if (fd < 0)
        return fd;
    swoop_session_t *s = swoop__session_get(srv, conn);
    if (s == NULL) {
        close(fd);
        return SWOOP_ECLOSED;
    }
    if (srv->mode == SWOOP_MODE_BASE) {
        swoop_conn_t *c = own_conn(srv, conn);
        if (c)
            return swoop__conn_sendfile(c, fd, offset, len); /* takes fd */
    }
    close(fd);
    if (len == 0)
        return 0;
    /* The owner opens the file again: pass an absolute path (a worker may chdir). */
    char *abs = realpath(path, NULL);
    if (abs == NULL) {
        int err = errno;
        swoop__log_limited(SWOOP_LOG_WARNING, err, "sendfile: realpath(\"%s\") failed", path);
        return -err;
    }
    size_t plen = strlen(abs);
    swoop_sendfile_req_t req = {.offset = offset, .length = len};
    swoop_ipc_head_t h = {.type = SWOOP_IPC_SENDFILE,
                          .reactor_id = s->reactor_id,
                          .worker_id = (int16_t)srv->worker_id,
                          .conn_id = conn};
    int rc;
    if (plen >= 4096) {
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "sendfile: path \"%s\" too long", abs);
        rc = SWOOP_EINVAL;
    } else if (srv->mode == SWOOP_MODE_BASE) {
        int owner = s->reactor_id;
        if (owner < 0 || owner >= srv->worker_num) {
            rc = SWOOP_ECLOSED;
        } else {
            rc = swoop__ipc_send2(&srv->mouts[owner], &h, &req, sizeof(req), abs, plen);
        }
    } else {
        int r = s->reactor_id;
        rc = r < 0 || r >= srv->reactor_num
                 ? SWOOP_ECLOSED
                 : swoop__ipc_send2(&srv->wouts[r], &h, &req, sizeof(req), abs, plen);
    }
    free(abs);
    return rc < 0 ? rc : 0;
}

int swoop_server_send_message(swoop_server_t *srv, int dst, const void *data, size_t len)
{
    if (srv == NULL || (data == NULL && len) || dst < 0 || dst >= srv->worker_num)
        return SWOOP_EINVAL;
    if (srv->worker_id < 0 || srv->mouts == NULL)
        return SWOOP_ESTATE;
    if (dst == srv->worker_id) {
        swoop_log(SWOOP_LOG_WARNING, 0, "send_message: a worker cannot message itself");
        return SWOOP_EINVAL;
    }
    swoop_ipc_head_t h = {.type = SWOOP_IPC_PIPE_MESSAGE, .worker_id = (int16_t)srv->worker_id};
    int rc = swoop__ipc_send(&srv->mouts[dst], &h, data, len);
    return rc < 0 ? rc : 0;
}

int swoop__server_owner_count(const swoop_server_t *srv)
{
    return srv->mode == SWOOP_MODE_PROCESS ? srv->reactor_num : srv->worker_num;
}

int swoop__server_proto_out(swoop_server_t *srv, swoop_conn_id_t conn, int owner, int kind,
                            const void *data, size_t len)
{
    if (srv == NULL || (data == NULL && len) || kind < 0 || kind >= SWOOP_PROTO_MAX)
        return SWOOP_EINVAL;
    if (srv->worker_id < 0 || swoop_server_is_task_worker(srv))
        return SWOOP_ESTATE;
    if (conn) {
        swoop_session_t *s = swoop__session_get(srv, conn);
        if (s == NULL)
            return SWOOP_ECLOSED;
        owner = s->reactor_id;
    }
    if (owner < 0 || owner >= swoop__server_owner_count(srv))
        return conn ? SWOOP_ECLOSED : SWOOP_EINVAL;
    const swoop_proto_t *proto = srv->protos[kind];
    if (proto == NULL || proto->out == NULL)
        return SWOOP_EINVAL;
    swoop_ipc_head_t h = {.type = SWOOP_IPC_PROTO_OUT,
                          .reactor_id = (int16_t)owner,
                          .worker_id = (int16_t)srv->worker_id,
                          .aux = (uint32_t)kind,
                          .conn_id = conn};
    int rc;
    if (srv->mode == SWOOP_MODE_PROCESS) {
        rc = swoop__ipc_send(&srv->wouts[owner], &h, data, len);
    } else if (owner == srv->worker_id && srv->base) {
        proto->out(srv->base, conn, data, len); /* ours: run it now, in order */
        rc = 0;
    } else {
        rc = swoop__ipc_send(&srv->mouts[owner], &h, data, len);
    }
    return rc < 0 ? rc : 0;
}

int swoop__server_relay(swoop_server_t *srv, int dst, int kind, const void *data, size_t len)
{
    if (srv == NULL || (data == NULL && len) || dst < 0 || dst >= srv->worker_num || kind < 0 ||
        kind >= SWOOP_PROTO_MAX)
        return SWOOP_EINVAL;
    if (srv->worker_id < 0 || srv->msgs == NULL)
        return SWOOP_ESTATE;
    swoop_ipc_head_t h = {
        .type = SWOOP_IPC_RELAY, .worker_id = (int16_t)srv->worker_id, .aux = (uint32_t)kind};
    if (!swoop_server_is_task_worker(srv)) {
        if (srv->mouts == NULL)
            return SWOOP_ESTATE;
        int rc = swoop__ipc_send(&srv->mouts[dst], &h, data, len); /* our loop flushes the rest */
        return rc < 0 ? rc : 0;
    }
    /*
     * A task worker has no loop to flush a queue: the message goes whole
     * now, waiting (bounded) while the event worker's channel is full.
     */
    swoop_ipc_out_t out;
    int fd = srv->msgs[dst].fds[0];
    swoop__ipc_out_init(&out, fd);
    int rc = swoop__ipc_send(&out, &h, data, len);
    uint64_t deadline = swoop__now_ms() + RELAY_WAIT_MS;
    while (rc == 1) {
        uint64_t now = swoop__now_ms();
        if (now >= deadline) {
            rc = SWOOP_ETIMEDOUT;
            swoop__log_limited(SWOOP_LOG_ERROR, rc,
                               "relay of %zu bytes to worker %d: its channel stayed full", len,
                               dst);
            break;
        }
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        poll(&pf, 1, (int)(deadline - now));
        rc = swoop__ipc_flush(&out);
    }
    swoop__ipc_out_free(&out);
    return rc < 0 ? rc : 0;
}

int swoop_server_reload(swoop_server_t *srv)
{
    if (srv == NULL)
        return SWOOP_EINVAL;
    pid_t m = swoop_server_manager_pid(srv);
    if (m <= 0)
        return SWOOP_ESTATE;
    if (m == getpid()) {
        swoop__manager_request_reload(0);
        return 0;
    }
    return kill(m, SIGUSR1) < 0 ? -errno : 0;
}

int swoop_server_shutdown(swoop_server_t *srv)
{
    if (srv == NULL)
        return SWOOP_EINVAL;
    pid_t m = swoop_server_master_pid(srv);
    if (m <= 0)
        return SWOOP_ESTATE;
    if (m == getpid() && srv->mode == SWOOP_MODE_BASE) {
        swoop__manager_request_shutdown();
        return 0;
    }
    return kill(m, SIGTERM) < 0 ? -errno : 0;
}
