/*
 * The connection engine: what a PROCESS reactor thread and a BASE worker
 * both do with the connections they own. Reading (up to a few reads per
 * wake-up), framing by the port's protocol, delivery (PROCESS: a message to
 * a worker; BASE: the callback itself), the output buffer (written at once
 * when empty, the rest kept and flushed on writability, bounded by
 * socket_buffer_size), closing, heartbeat.
 *
 * Close order: the session is marked closed first (late sends fail), then
 * the worker runs on_close (PROCESS: a CLOSE message behind the last DATA of
 * the connection, acknowledged by the worker), and only then is the session
 * released and the fd closed, so the fd number cannot be reused before
 * on_close ran. A BASE callback may close its own connection: the engine
 * holds a reference around every callback, and on_close (then the free)
 * runs after the outermost one returned, as in PROCESS mode.
 */
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <swoop/timer.h>

#include "base/ratelimit.h"
#include "net/socket.h"
#include "server/internal.h"

#define READS_PER_WAKEUP  4
#define DGRAMS_PER_WAKEUP 64
#define ACK_TIMEOUT_MS    5000
#define SENDFILE_CHUNK    (1024 * 1024)

/*
 * Lingering close (as nginx's lingering_close). When the server closes a
 * connection on purpose while the client may still be sending (a
 * WebSocket protocol error, an HTTP 413 during an upload, a Connection:
 * close answer behind pipelined requests), close() with unread bytes in the
 * kernel makes Linux send an RST instead of a FIN, and the RST throws away
 * whatever of the server's last bytes the client had not read yet: the
 * close frame or the error answer never arrives. So once the output is
 * flushed the server sends its FIN (shutdown(SHUT_WR)) and, after the
 * connection is released (on_close ran, the session is gone), keeps the fd
 * open reading and discarding: until the client's EOF or a reset, at most
 * lingering_time ms in all and lingering_timeout ms without a byte, and at
 * most LINGER_MAX_BYTES; then close(). lingering_time 0: close at once.
 *
 * Only when the client may still be sending (as nginx's lingering_close
 * auto): a lingering close costs a shutdown, a timer, a watcher and loop
 * passes, and holds the fd until the client's FIN or the bounds. So a
 * close lingers when c->in holds unread bytes (a partial packet, pipelined
 * requests), OpenSSL holds records not read yet, the protocol says the
 * client may still send (peer_may_send: a body not read whole, a
 * WebSocket close it has not answered, an HTTP keep-alive client), or,
 * decided when the fd is about to be closed (LINGER_IF_UNREAD), bytes wait
 * in the kernel's receive queue (FIONREAD): those are what make close()
 * send the RST. A client that said it is done (HTTP Connection: close with
 * its request read whole, a WebSocket close frame) and sent nothing more
 * gets its FIN with the close() at once.
 */
#define LINGER_MAX_BYTES (8u << 20)

/* conn_ext_t.linger */
enum {
    LINGER_NO = 0,       /* close() at once */
    LINGER_YES = 1,      /* the FIN after the output, then linger */
    LINGER_FIN_SENT = 2, /* LINGER_YES, and the FIN went out */
    LINGER_IF_UNREAD = 3 /* a server's close: LINGER_YES if bytes wait in the kernel at close() */
};

/*
 * Buffer memory an idle connection may keep. An input or output buffer that
 * drained keeps at most CONN_BUF_KEEP bytes of capacity (a bigger one is
 * freed), so a connection that once sent or received megabytes costs about
 * its struct when idle, and the common small request reuses its block
 * instead of calling malloc. A partial packet up to CONN_TAIL_MAX bytes is
 * copied in front of the next read in the reactor's buffer rather than
 * growing c->in to read behind it.
 */
#define CONN_BUF_KEEP 4096
#define CONN_TAIL_MAX (16 * 1024)

/*
 * A file range queued by swoop_server_sendfile. It is written with
 * sendfile(2) once the `pre` bytes of the output buffer queued before it
 * are out; bytes sent after it wait in the buffer behind it.
 */
typedef struct file_seg_s {
    swoop_queue_t link;
    size_t pre; /* bytes at the front of c->out that go before this file */
    int fd;
    off_t off;
    size_t left;
    /*
     * TLS: the chunk read from the file with pread and being written with
     * SSL_write, kept until the record layer took all of it (a write that
     * must be retried is retried with the same bytes).
     */
    char *stage;
    size_t stage_off, stage_len;
} file_seg_t;

/* TLS: bytes of a file read at a time (four records). */
#define TLS_FILE_CHUNK (64 * 1024)

/* Connection-private flags beyond `state`. */
typedef struct conn_ext_s {
    int busy;                /* callbacks of this connection on the stack */
    int free_pending;        /* freed while busy: conn_unbusy frees */
    int close_pending;       /* BASE: closed while busy: conn_unbusy runs on_close, then frees */
    int linger;              /* closed by the server on purpose: LINGER_* */
    int64_t linger_timer;    /* LINGER: the loop timer bounding it (0 none) */
    uint64_t linger_last_ms; /* LINGER: when a byte last came */
    uint64_t linger_bytes;   /* LINGER: bytes read and discarded */
    size_t out_counted;      /* c->out's bytes in the owner's out_buffered gauge */
    int64_t tls_kick;        /* TLS: the timer that reads what OpenSSL holds decrypted (0 none) */
    int tls_quiet;           /* TLS: a reset is meant: no close_notify */
} conn_ext_t;

static void conn_io_cb(swoop_io_t *io, unsigned events);
static void conn_begin_close(swoop_conn_t *c);
static void conn_peer_eof(swoop_conn_t *c);
static void conn_free(swoop_conn_t *c);
static int conn_unbusy(swoop_conn_t *c);
static int conn_has_files(swoop_conn_t *c);
static void drop_files(swoop_conn_t *c);
static int conn_queue_rest(swoop_conn_t *c, const void *data, size_t off, size_t len);

/* Batches smaller than this go out with send(): a submission costs about as much as a few. */
#define SENDMANY_MIN 16
/* Sends per io_uring submission (the ring's size, allocated at the first big broadcast). */
#define SENDMANY_ENTRIES 1024
static void linger_read(swoop_conn_t *c);
static void conn_read(swoop_conn_t *c);
static void conn_flush(swoop_conn_t *c);
static void tls_kick(swoop_conn_t *c);
static swoop_conn_t *conn_announce(swoop_conn_t *c);
static void tls_goodbye(swoop_conn_t *c);
static void tls_release(swoop_conn_t *c);

/* The reference count sits right after the connection, in the same allocation. */
static inline conn_ext_t *ext(swoop_conn_t *c)
{
    return (conn_ext_t *)(c + 1);
}

int swoop__reactor_init(swoop_reactor_t *r, swoop_server_t *srv, int id, swoop_loop_t *loop)
{
    memset(r, 0, sizeof(*r));
    r->srv = srv;
    r->id = id;
    r->loop = loop;
    swoop_queue_init(&r->conns);
    r->rdbuf = swoop_malloc(SWOOP_READ_BUF);
    /* BASE: the worker's block; PROCESS: reactor thread `id` after the workers. */
    r->cnt = swoop__counter(srv->gs, srv->mode == SWOOP_MODE_BASE ? id : srv->worker_num + id);
    return 0;
}

void swoop__reactor_free(swoop_reactor_t *r)
{
    for (int k = 0; k < SWOOP_PROTO_MAX; k++) {
        const swoop_proto_t *p = r->srv ? r->srv->protos[k] : NULL;
        if (r->proto_owner[k] && p && p->owner_free)
            p->owner_free(r);
    }
    swoop_free(r->rdbuf);
    r->rdbuf = NULL;
    swoop__sendmany_close(r->sendmany);
    r->sendmany = NULL;
    swoop_free(r->batch_conns);
    swoop_free(r->batch_fds);
    swoop_free(r->batch_res);
    r->batch_conns = NULL;
    r->batch_fds = NULL;
    r->batch_res = NULL;
    r->batch_cap = 0;
}

static int conn_slot_fd(swoop_reactor_t *r, swoop_conn_id_t id)
{
    swoop_server_t *srv = r->srv;
    uint32_t slot = (uint32_t)(id & SWOOP_SLOT_MASK);
    if (srv->mode == SWOOP_MODE_BASE) {
        uint32_t base = srv->slot_base;
        if (slot < base || slot >= base + srv->fd_limit)
            return -1;
        return (int)(slot - base);
    }
    return slot < srv->fd_limit ? (int)slot : -1;
}

swoop_conn_t *swoop__reactor_conn(swoop_reactor_t *r, swoop_conn_id_t id)
{
    int fd = conn_slot_fd(r, id);
    if (fd < 0 || r->srv->conns == NULL)
        return NULL;
    swoop_conn_t *c = r->srv->conns[fd];
    return c && c->id == id && c->reactor == r ? c : NULL;
}

/* Whether c may be read now (the watcher's READABLE interest). */
static int conn_readable(const swoop_conn_t *c)
{
    return c->state == CONN_OPEN && !c->paused && !c->proto_hold && !c->reactor->no_read;
}

static void update_io(swoop_conn_t *c)
{
    unsigned ev = 0;
    if (c->tls_hs) {
        /* The handshake alone: what OpenSSL waits for, and no output of the layers above. */
        if (c->state == CONN_OPEN)
            ev = c->tls_want == SWOOP_TLS_WANT_WRITE ? SWOOP_WRITABLE : SWOOP_READABLE;
        c->writing = 0;
        if (swoop_io_start(&c->io, ev) < 0)
            swoop__log_limited(SWOOP_LOG_ERROR, 0, "cannot watch fd %d of conn %llu", c->fd,
                               (unsigned long long)c->id);
        return;
    }
    if (conn_readable(c))
        ev |= SWOOP_READABLE;
    if (c->state != CONN_WAIT_ACK && (swoop__buf_rlen(&c->out) > 0 || conn_has_files(c)))
        ev |= SWOOP_WRITABLE;
    /* Bytes OpenSSL already decrypted raise no epoll event: read them from a timer. */
    if ((ev & SWOOP_READABLE) && c->tls && swoop__tls_pending(c->tls))
        tls_kick(c);
    c->writing = (ev & SWOOP_WRITABLE) != 0;
    int rc = swoop_io_start(&c->io, ev);
    if (rc < 0)
        swoop__log_limited(SWOOP_LOG_ERROR, rc, "cannot watch fd %d of conn %llu", c->fd,
                           (unsigned long long)c->id);
}

swoop_conn_t *swoop__conn_open(swoop_reactor_t *r, int fd, swoop_conn_id_t id, swoop_port_t *port)
{
    swoop_server_t *srv = r->srv;
    swoop_conn_t *c = swoop_calloc(1, sizeof(*c) + sizeof(conn_ext_t));
    c->reactor = r;
    c->fd = fd;
    c->id = id;
    c->port = port;
    c->sess = swoop__session_at(srv, (uint32_t)(id & SWOOP_SLOT_MASK));
    c->last_recv_ms = swoop__now_ms();
    swoop__buf_init(&c->in);
    swoop__buf_init(&c->out);
    swoop_queue_init(&c->files);
    swoop_queue_insert_tail(&r->conns, &c->link);
    r->nconns++;
    srv->conns[fd] = c;
    c->io.data = c;
    swoop_io_init(r->loop, &c->io, fd, conn_io_cb);
    c->proto = port->proto;
    if (c->sess)
        atomic_store_explicit(&c->sess->proto_kind, port->proto ? (uint32_t)port->proto->kind : 0,
                              memory_order_relaxed);
    if (c->proto && c->proto->conn_open)
        c->proto->conn_open(c);
    if (port->ssl) {
        /*
         * The handshake first: the worker hears of the connection (on_connect)
         * once it completed, and until then nothing is read for the layers
         * above nor written for them. Closed before that, nothing ran in a
         * worker, so nothing needs to be told: `notified`.
         */
        c->notified = 1;
        c->tls_hs = 1;
        c->tls_want = SWOOP_TLS_WANT_READ;
        c->state_ms = swoop_loop_now(r->loop);
        /* Under the port's lock: a certificate reload may be replacing the context. */
        pthread_mutex_lock(&port->tls_lock);
        c->tls = port->tls_ctx ? swoop__tls_new(port->tls_ctx, fd) : NULL;
        pthread_mutex_unlock(&port->tls_lock);
        if (c->tls == NULL) {
            conn_free(c);
            return NULL;
        }
        update_io(c);
        return c;
    }
    return conn_announce(c);
}

/* The connection is ready for the layers above: the worker is told (on_connect). */
static swoop_conn_t *conn_announce(swoop_conn_t *c)
{
    swoop_reactor_t *r = c->reactor;
    swoop_server_t *srv = r->srv;
    if (srv->mode == SWOOP_MODE_PROCESS) {
        c->worker_id = swoop__dispatch_worker(r, c);
        update_io(c);
        swoop__master_deliver_connect(r, c);
    } else {
        c->worker_id = srv->worker_id;
        update_io(c);
        if (srv->events.on_connect) {
            ext(c)->busy++;
            srv->events.on_connect(srv, c->id, r->id);
            if (conn_unbusy(c))
                return NULL;
        }
    }
    return c;
}

static void count_out(swoop_conn_t *c, size_t n)
{
    atomic_fetch_add_explicit(&c->reactor->cnt->bytes_out, n, memory_order_relaxed);
}

/*
 * Output budget. A session's out_queued counts the bytes senders were told
 * were accepted and that have not reached the socket yet: reserved by the
 * sender (swoop__session_reserve) before the bytes travel to the owner, and
 * released by the owner as they are written or dropped. The budget is
 * checked once, at the sender, so the owner never has to refuse bytes a
 * worker already accepted.
 */
int swoop__session_reserve(swoop_server_t *srv, swoop_session_t *s, swoop_conn_id_t id, size_t len)
{
    uint64_t limit = (uint64_t)srv->settings.socket_buffer_size;
    uint64_t before = atomic_fetch_add(&s->out_queued, (uint64_t)len);
    if (before + len > limit) {
        swoop__session_release(s, len);
        swoop__log_limited(
            SWOOP_LOG_WARNING, 0,
            "conn %llu: output buffer overflow (%llu queued + %zu > socket_buffer_size "
            "%llu): send refused",
            (unsigned long long)id, (unsigned long long)before, len, (unsigned long long)limit);
        return SWOOP_EBUFFERFULL;
    }
    /* The slot may have been released and reused meanwhile: not ours to charge. */
    if (atomic_load_explicit(&s->id, memory_order_acquire) != id) {
        swoop__session_release(s, len);
        return SWOOP_ECLOSED;
    }
    return 0;
}

/* Never below zero: a slot reset while a reservation was in flight must not wrap. */
void swoop__session_release(swoop_session_t *s, size_t len)
{
    uint64_t cur = atomic_load(&s->out_queued);
    for (;;) {
        uint64_t next = cur > len ? cur - len : 0;
        if (atomic_compare_exchange_weak(&s->out_queued, &cur, next))
            return;
    }
}

/*
 * The connection's session while it still holds its id: a process only
 * touches (charges, marks, clears) its own sessions, never a record that
 * changed hands.
 */
static swoop_session_t *own_sess(swoop_conn_t *c)
{
    swoop_session_t *s = c->sess;
    return s && atomic_load_explicit(&s->id, memory_order_acquire) == c->id ? s : NULL;
}

static void conn_release_budget(swoop_conn_t *c, size_t n)
{
    swoop_session_t *s = n > 0 ? own_sess(c) : NULL;
    if (s)
        swoop__session_release(s, n);
}

/*
 * The owner's output-buffer gauge (metrics: swoop_output_buffer_bytes)
 * follows c->out: called after every change of its length. One relaxed
 * add on the owner's own counter line, and only when the length changed:
 * a response that the socket takes at once costs a comparison.
 */
static void out_gauge(swoop_conn_t *c)
{
    size_t now = swoop__buf_rlen(&c->out), was = ext(c)->out_counted;
    if (now == was)
        return;
    atomic_fetch_add_explicit(&c->reactor->cnt->out_buffered, (int64_t)now - (int64_t)was,
                              memory_order_relaxed);
    ext(c)->out_counted = now;
}

/* Drops the pending output, releasing its budget. */
static void drop_output(swoop_conn_t *c)
{
    conn_release_budget(c, swoop__buf_rlen(&c->out));
    swoop__buf_free(&c->out);
    swoop__buf_init(&c->out);
    out_gauge(c);
    drop_files(c);
}

/* The peer is gone or the write failed: close without flushing. */
static void conn_fail(swoop_conn_t *c, int err, const char *what)
{
    if (err != ECONNRESET && err != EPIPE)
        swoop__log_limited(SWOOP_LOG_NOTICE, err, "%s() on fd %d of conn %llu failed: closing",
                           what, c->fd, (unsigned long long)c->id);
    ext(c)->linger = LINGER_NO; /* the peer is gone: nothing to wait for */
    drop_output(c);
    conn_begin_close(c);
}

/*
 * A TLS read or write failed with `rc` (SWOOP_ETLS: OpenSSL's reason is
 * logged, once a second at most; else -errno): close without flushing.
 */
static void conn_tls_fail(swoop_conn_t *c, int rc, const char *what)
{
    if (rc == SWOOP_ETLS) {
        swoop__log_limited(SWOOP_LOG_NOTICE, 0, "%s on conn %llu (fd %d) failed: %s: closing", what,
                           (unsigned long long)c->id, c->fd, swoop__tls_reason(c->tls));
        conn_fail(c, ECONNRESET, what); /* logged already */
        return;
    }
    conn_fail(c, rc == SWOOP_EOF || rc == 0 ? ECONNRESET : -rc, what);
}

/* Replies are still taken after the peer's half-close, until on_close was acknowledged. */
static int conn_sendable(swoop_conn_t *c)
{
    return c->state == CONN_OPEN || (c->state == CONN_PEER_EOF && !c->notified);
}

/* swoop__conn_send; `more`: MSG_MORE, the next bytes follow at once (a file behind its head). */
static int conn_send_flags(swoop_conn_t *c, const void *data, size_t len, int reserved, int more)
{
    if (!conn_sendable(c)) {
        if (reserved)
            conn_release_budget(c, len);
        return SWOOP_ECLOSED;
    }
    if (!reserved && c->sess) {
        int rc = swoop__session_reserve(c->reactor->srv, c->sess, c->id, len);
        if (rc < 0)
            return rc;
    }
    size_t off = 0;
    if (c->tls) {
        /* Nothing before the handshake completed: it waits in the output. */
        if (!c->tls_hs && swoop__buf_rlen(&c->out) == 0 && !conn_has_files(c)) {
            int want = 0;
            ssize_t n = swoop__tls_write(c->tls, data, len, &want);
            if (n >= 0) {
                off = (size_t)n;
                count_out(c, off);
                conn_release_budget(c, off);
            } else if (n != SWOOP_EAGAIN) {
                conn_release_budget(c, len);
                conn_tls_fail(c, (int)n, "SSL_write");
                return SWOOP_ECLOSED;
            }
        }
        return conn_queue_rest(c, data, off, len);
    }
    if (swoop__buf_rlen(&c->out) == 0 && !conn_has_files(c)) {
        for (;;) {
            ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
            if (n >= 0) {
                off = (size_t)n;
                count_out(c, off);
                conn_release_budget(c, off);
                break;
            }
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                break;
            conn_release_budget(c, len);
            conn_fail(c, err, "send");
            return SWOOP_ECLOSED;
        }
    }
    return conn_queue_rest(c, data, off, len);
}

/* What the socket did not take, data[off, len), waits in c's output. 0, or SWOOP_ENOMEM (closed).
 */
static int conn_queue_rest(swoop_conn_t *c, const void *data, size_t off, size_t len)
{
    if (off >= len)
        return 0;
    if (swoop__buf_append(&c->out, (const char *)data + off, len - off) < 0) {
        swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM,
                           "conn %llu (fd %d): no memory for %zu bytes of output: closing",
                           (unsigned long long)c->id, c->fd, len - off);
        conn_release_budget(c, len - off);
        /* Bytes the sender was told were accepted are lost: reset, never a clean end. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        conn_fail(c, ENOMEM, "buffer");
        return SWOOP_ENOMEM;
    }
    out_gauge(c);
    if (!c->writing)
        update_io(c);
    return 0;
}

/* Scratch of swoop__conn_send_many: room for n connections. 0 or SWOOP_ENOMEM. */
static int batch_reserve(swoop_reactor_t *r, size_t n)
{
    if (n <= r->batch_cap)
        return 0;
    size_t cap = r->batch_cap ? r->batch_cap : 256;
    while (cap < n)
        cap *= 2;
    swoop_conn_t **conns = swoop_try_realloc(r->batch_conns, cap * sizeof(*conns));
    if (conns)
        r->batch_conns = conns;
    int *fds = swoop_try_realloc(r->batch_fds, cap * sizeof(*fds));
    if (fds)
        r->batch_fds = fds;
    ssize_t *res = swoop_try_realloc(r->batch_res, cap * sizeof(*res));
    if (res)
        r->batch_res = res;
    if (conns == NULL || fds == NULL || res == NULL)
        return SWOOP_ENOMEM;
    r->batch_cap = cap;
    return 0;
}

swoop_conn_t **swoop__reactor_batch(swoop_reactor_t *r, size_t n)
{
    return batch_reserve(r, n ? n : 1) == 0 ? r->batch_conns : NULL;
}

/* The io_uring sender of r, opened at its first big batch (NULL: send() one by one). */
static swoop_sendmany_t *batch_sender(swoop_reactor_t *r, size_t n)
{
    if (n < SENDMANY_MIN || !r->srv->settings.enable_io_uring)
        return NULL;
    if (r->sendmany == NULL && !r->sendmany_refused &&
        swoop__sendmany_open(&r->sendmany, SENDMANY_ENTRIES) < 0)
        r->sendmany_refused = 1;
    return r->sendmany;
}

void swoop__conn_send_many(swoop_reactor_t *r, swoop_conn_t **cs, size_t n, const void *data,
                           size_t len)
{
    if (batch_reserve(r, n) < 0) {
        /* No scratch for the batch: the slow way, still every byte. */
        for (size_t i = 0; i < n; i++)
            conn_send_flags(cs[i], data, len, 0, 0);
        return;
    }
    /* Connections with output waiting queue behind it; the others write now, together. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        swoop_conn_t *c = cs[i];
        if (!conn_sendable(c))
            continue;
        if (swoop__buf_rlen(&c->out) > 0 || conn_has_files(c) || c->tls) {
            conn_send_flags(c, data, len, 0, 0); /* TLS: each its own records */
            continue;
        }
        if (c->sess && swoop__session_reserve(r->srv, c->sess, c->id, len) < 0)
            continue;
        cs[k] = c;
        r->batch_fds[k++] = c->fd;
    }
    size_t via = swoop__sendmany(batch_sender(r, k), r->batch_fds, k, data, len, r->batch_res);
    if (via)
        atomic_fetch_add_explicit(&r->cnt->sends_batched, via, memory_order_relaxed);
    for (size_t i = 0; i < k; i++) {
        swoop_conn_t *c = cs[i];
        ssize_t rc = r->batch_res[i];
        size_t off = 0;
        if (rc >= 0) {
            off = (size_t)rc;
            count_out(c, off);
            conn_release_budget(c, off);
        } else if (rc != -EAGAIN && rc != -EWOULDBLOCK) {
            conn_release_budget(c, len);
            conn_fail(c, (int)-rc, "send");
            continue;
        }
        conn_queue_rest(c, data, off, len);
    }
}

int swoop__conn_send(swoop_conn_t *c, const void *data, size_t len, int reserved)
{
    return conn_send_flags(c, data, len, reserved, 0);
}

int swoop__conn_send_more(swoop_conn_t *c, const void *data, size_t len)
{
    return conn_send_flags(c, data, len, 0, 1);
}

static void file_seg_free(file_seg_t *f)
{
    swoop_queue_remove(&f->link);
    close(f->fd);
    swoop_free(f->stage);
    swoop_free(f);
}

/*
 * TLS: the file through the record layer, pread + SSL_write a chunk at a
 * time (kTLS, which would let sendfile(2) work, is not used: this kernel
 * has no "tls" ULP). Results as flush_file's.
 */
static int flush_file_tls(swoop_conn_t *c, file_seg_t *f)
{
    for (;;) {
        if (f->stage_off == f->stage_len) {
            if (f->left == 0)
                break;
            if (f->stage == NULL)
                f->stage = swoop_malloc(TLS_FILE_CHUNK);
            size_t want = f->left < TLS_FILE_CHUNK ? f->left : TLS_FILE_CHUNK;
            ssize_t n = pread(f->fd, f->stage, want, f->off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                swoop_log(SWOOP_LOG_WARNING, n < 0 ? errno : 0,
                          "sendfile over TLS on conn %llu (fd %d): reading the file failed with "
                          "%zu bytes left: closing",
                          (unsigned long long)c->id, c->fd, f->left);
                conn_fail(c, EIO, "pread");
                return -1;
            }
            f->off += n;
            f->left -= (size_t)n;
            f->stage_off = 0;
            f->stage_len = (size_t)n;
        }
        int want = 0;
        ssize_t n =
            swoop__tls_write(c->tls, f->stage + f->stage_off, f->stage_len - f->stage_off, &want);
        if (n == SWOOP_EAGAIN)
            return 1;
        if (n < 0) {
            conn_tls_fail(c, (int)n, "SSL_write");
            return -1;
        }
        count_out(c, (size_t)n);
        f->stage_off += (size_t)n;
    }
    file_seg_free(f);
    return 0;
}

/* Writes file `f` with sendfile(2): 0 done (dropped from the queue), 1 EAGAIN, -1 failed. */
static int flush_file(swoop_conn_t *c, file_seg_t *f)
{
    if (c->tls)
        return c->tls_hs ? 1 : flush_file_tls(c, f);
    while (f->left > 0) {
        size_t want = f->left < SENDFILE_CHUNK ? f->left : SENDFILE_CHUNK;
        ssize_t n = sendfile(c->fd, f->fd, &f->off, want);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return 1;
            conn_fail(c, err, "sendfile");
            return -1;
        }
        if (n == 0) {
            /* The file shrank: the promised bytes cannot come, so the stream is cut. */
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "sendfile on conn %llu (fd %d): file ended %zu bytes early: closing",
                      (unsigned long long)c->id, c->fd, f->left);
            conn_fail(c, EIO, "sendfile");
            return -1;
        }
        count_out(c, (size_t)n);
        f->left -= (size_t)n;
    }
    file_seg_free(f);
    return 0;
}

/* Writes out[0, n) to the socket (or the record layer): bytes taken, SWOOP_EAGAIN, or an error. */
static ssize_t conn_write_out(swoop_conn_t *c, size_t n)
{
    const char *data = swoop__buf_rdata(&c->out);
    if (c->tls) {
        int want = 0;
        return swoop__tls_write(c->tls, data, n, &want);
    }
    for (;;) {
        ssize_t k = send(c->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k >= 0)
            return k;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? SWOOP_EAGAIN : -errno;
    }
}

static void conn_flush(swoop_conn_t *c)
{
    if (c->tls_hs)
        return; /* the handshake's own I/O comes first */
    for (;;) {
        size_t n_out = swoop__buf_rlen(&c->out);
        file_seg_t *f = NULL;
        if (conn_has_files(c)) {
            f = swoop_queue_data(swoop_queue_head(&c->files), file_seg_t, link);
            if (f->pre < n_out)
                n_out = f->pre;
            if (n_out == 0) {
                int rc = flush_file(c, f);
                if (rc < 0)
                    return;
                if (rc == 1)
                    break;
                continue;
            }
        }
        if (n_out == 0)
            break;
        ssize_t n = conn_write_out(c, n_out);
        if (n == SWOOP_EAGAIN)
            break;
        if (n < 0) {
            if (c->tls)
                conn_tls_fail(c, (int)n, "SSL_write");
            else
                conn_fail(c, (int)-n, "send");
            return;
        }
        count_out(c, (size_t)n);
        conn_release_budget(c, (size_t)n);
        swoop__buf_consume(&c->out, (size_t)n);
        if (f)
            f->pre -= (size_t)n;
    }
    /* A big reply went out (or most of it): its block goes back. */
    swoop__buf_shrink(&c->out, 0, CONN_BUF_KEEP);
    out_gauge(c);
    if (c->proto_drain && swoop__buf_rlen(&c->out) < SWOOP_PROTO_OUT_LOW && c->state == CONN_OPEN) {
        c->proto_drain = 0;
        c->proto->drained(c); /* may close c: nothing below touches it then */
        if (c->state != CONN_OPEN)
            return;
    }
    if (swoop__buf_rlen(&c->out) == 0 && !conn_has_files(c)) {
        if (c->state == CONN_DRAINING) {
            conn_begin_close(c);
            return;
        }
        update_io(c);
    }
}

void swoop__conn_deliver(swoop_conn_t *c, const char *data, size_t len)
{
    swoop_reactor_t *r = c->reactor;
    if (r->srv->mode == SWOOP_MODE_PROCESS)
        swoop__master_deliver_data(r, c, data, len);
    else
        swoop__base_deliver_data(r, c, data, len);
}

static void deliver(swoop_conn_t *c, const char *data, size_t len)
{
    swoop__conn_deliver(c, data, len);
}

static void too_big(swoop_conn_t *c, ssize_t rc, size_t have)
{
    swoop__log_limited(
        SWOOP_LOG_WARNING, 0,
        "conn %llu (fd %d, port %d): %s (package_max_length %zu, %zu bytes buffered): "
        "closing the connection",
        (unsigned long long)c->id, c->fd, c->port->port,
        rc == SWOOP_ETOOBIG ? "packet larger than package_max_length" : "malformed packet header",
        c->port->framing.max_length, have);
    swoop__buf_free(&c->in);
    swoop__buf_init(&c->in);
    swoop__conn_close(c, 1);
}

/*
 * Cuts and delivers the whole packets at the front of data[0, len): the
 * unread bytes of c->in or the reactor's read buffer. Returns the bytes
 * consumed, with *need set as swoop__frame_length sets it for the packet
 * still incomplete, or -1 when c must not be touched (closed or freed by a
 * callback). `data` stays valid while callbacks run: only a close frees
 * c->in, and that ends the loop; nothing reads into r->rdbuf from a
 * callback (draining and stop_reading run from the loop, never inside one).
 */
static ssize_t frame_packets(swoop_conn_t *c, const char *data, size_t len, size_t *need)
{
    if (c->proto) {
        /* The buffers handed here (c->in, r->rdbuf) are ours: writable. */
        *need = 0;
        ssize_t k = c->proto->input(c, (char *)data, len, need);
        if (k < 0 || c->state != CONN_OPEN || ext(c)->free_pending)
            return -1;
        return k;
    }
    const swoop_framing_t *f = &c->port->framing;
    size_t off = 0;
    for (;;) {
        *need = 0;
        ssize_t n = swoop__frame_length(f, data + off, len - off, &c->scan, need);
        if (n == 0)
            return (ssize_t)off;
        if (n < 0) {
            too_big(c, n, len - off);
            return -1;
        }
        deliver(c, data + off, (size_t)n);
        if (c->state != CONN_OPEN || ext(c)->free_pending)
            return -1;
        off += (size_t)n;
        c->scan = 0;
    }
}

/*
 * c->in now holds only the incomplete packet, if any. A block much larger
 * than that goes back (an idle connection must not keep the largest packet
 * it ever sent), and what the header announced is reserved in one step
 * (bounded by package_max_length). Returns 0, or -1 when c was closed.
 */
static int input_settle(swoop_conn_t *c, size_t need)
{
    size_t have = swoop__buf_rlen(&c->in);
    swoop__buf_shrink(&c->in, need > have ? need : have, CONN_BUF_KEEP);
    if (need > have && swoop__buf_reserve(&c->in, need - have) < 0) {
        swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM,
                           "conn %llu: no memory for a %zu-byte packet: closing",
                           (unsigned long long)c->id, need);
        swoop__conn_close(c, 1);
        return -1;
    }
    return 0;
}

/* Frames c->in after a read into it; returns 0, or -1 when c must not be touched. */
static int frame_input(swoop_conn_t *c)
{
    size_t need;
    ssize_t k = frame_packets(c, swoop__buf_rdata(&c->in), swoop__buf_rlen(&c->in), &need);
    if (k < 0)
        return -1;
    swoop__buf_consume(&c->in, (size_t)k);
    return input_settle(c, need);
}

/*
 * Frames r->rdbuf[0, len) in place (what c->in held, then what was just
 * read) and keeps the incomplete rest in c->in: whole packets are never
 * copied, and c->in only ever holds a partial packet.
 */
static int frame_rdbuf(swoop_conn_t *c, size_t len)
{
    const char *data = c->reactor->rdbuf;
    size_t need;
    swoop__buf_clear(&c->in);
    ssize_t k = frame_packets(c, data, len, &need);
    if (k < 0)
        return -1;
    size_t rest = len - (size_t)k;
    if (rest > 0 && swoop__buf_append(&c->in, data + k, rest) < 0) {
        swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM,
                           "conn %llu: no memory for %zu bytes of input: closing",
                           (unsigned long long)c->id, rest);
        swoop__conn_close(c, 1);
        return -1;
    }
    return input_settle(c, need);
}

/*
 * Reads up to READS_PER_WAKEUP times. A framed port reads into the
 * reactor's buffer, behind a copy of the partial packet c->in carried over,
 * and frames there; only a partial packet above CONN_TAIL_MAX (a big packet
 * on its way) is read straight into c->in, which grows to hold it.
 */
/* One read from the socket (or the record layer): > 0 bytes, 0 EOF, SWOOP_EAGAIN, or an error. */
static ssize_t conn_recv(swoop_conn_t *c, char *dst, size_t cap)
{
    if (c->tls) {
        int want = 0;
        return swoop__tls_read(c->tls, dst, cap, &want);
    }
    for (;;) {
        ssize_t n = recv(c->fd, dst, cap, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? SWOOP_EAGAIN : -errno;
    }
}

static void conn_read_some(swoop_conn_t *c)
{
    swoop_reactor_t *r = c->reactor;
    int framed = c->port->framing.mode != SWOOP_FRAME_NONE || c->proto != NULL;
    for (int round = 0; round < READS_PER_WAKEUP; round++) {
        if (c->state != CONN_OPEN || c->paused || c->proto_hold || ext(c)->free_pending)
            return;
        size_t held = framed ? swoop__buf_rlen(&c->in) : 0;
        int direct = held > CONN_TAIL_MAX;
        char *dst;
        size_t cap;
        if (direct) {
            if (swoop__buf_wlen(&c->in) < 4096 && swoop__buf_reserve(&c->in, SWOOP_READ_BUF) < 0) {
                swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM,
                                   "conn %llu: no memory to read: closing",
                                   (unsigned long long)c->id);
                swoop__conn_close(c, 1);
                return;
            }
            dst = swoop__buf_wdata(&c->in);
            cap = swoop__buf_wlen(&c->in);
        } else {
            /* A copy: c->in keeps its bytes in case nothing comes (EAGAIN). */
            if (held > 0)
                memcpy(r->rdbuf, swoop__buf_rdata(&c->in), held);
            dst = r->rdbuf + held;
            cap = SWOOP_READ_BUF - held;
        }
        ssize_t n = conn_recv(c, dst, cap);
        if (n == SWOOP_EAGAIN)
            return;
        if (n < 0) {
            if (c->tls)
                conn_tls_fail(c, (int)n, "SSL_read");
            else
                conn_fail(c, (int)-n, "recv");
            return;
        }
        if (n == 0) {
            conn_peer_eof(c);
            return;
        }
        uint64_t now = swoop_loop_now(r->loop);
        c->last_recv_ms = now;
        if (c->sess)
            atomic_store_explicit(&c->sess->last_recv_ms, now, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->cnt->bytes_in, (uint64_t)n, memory_order_relaxed);
        if (direct) {
            swoop__buf_commit(&c->in, (size_t)n);
            if (frame_input(c) < 0)
                return;
        } else if (framed) {
            if (frame_rdbuf(c, held + (size_t)n) < 0)
                return;
        } else {
            deliver(c, dst, (size_t)n);
        }
        /* Drained the socket (TLS: a record at a time, so only EAGAIN tells). */
        if ((size_t)n < cap && c->tls == NULL)
            return;
    }
}

/*
 * Reads c. TLS: what OpenSSL decrypted but the reads did not take (the
 * rounds ran out, the buffer was short) raises no epoll event: a timer
 * comes back for it.
 */
static void conn_read(swoop_conn_t *c)
{
    if (c->tls_hs)
        return;
    conn_read_some(c);
    if (c->tls && conn_readable(c) && !ext(c)->free_pending && swoop__tls_pending(c->tls))
        tls_kick(c);
}

static void tls_kick_cb(int64_t id, void *arg)
{
    (void)id;
    swoop_conn_t *c = arg;
    ext(c)->tls_kick = 0;
    ext(c)->busy++;
    conn_read(c);
    conn_unbusy(c);
}

static void tls_kick(swoop_conn_t *c)
{
    conn_ext_t *x = ext(c);
    if (x->tls_kick > 0)
        return;
    x->tls_kick = swoop_loop_timer_after(c->reactor->loop, 0, tls_kick_cb, c);
    if (x->tls_kick < 0) {
        swoop__log_limited(SWOOP_LOG_ERROR, (int)x->tls_kick,
                           "conn %llu: no timer to read its buffered TLS records",
                           (unsigned long long)c->id);
        x->tls_kick = 0;
    }
}

static void tls_kick_stop(swoop_conn_t *c)
{
    conn_ext_t *x = ext(c);
    if (x->tls_kick > 0)
        swoop_loop_timer_clear(c->reactor->loop, x->tls_kick);
    x->tls_kick = 0;
}

/*
 * One step of c's TLS handshake. Completed: the worker is told, the output
 * queued meanwhile goes out and what the client sent behind its Finished is
 * read. Failed: closed without a word to any worker, with one line in the
 * log (rate-limited: a scanner must not flood it).
 */
static void tls_handshake_step(swoop_conn_t *c)
{
    int rc = swoop__tls_handshake(c->tls);
    if (rc > 0) {
        if (rc != c->tls_want) {
            c->tls_want = rc;
            update_io(c);
        }
        return;
    }
    if (rc < 0) {
        char peer[SWOOP_ADDR_STRLEN] = "?";
        if (c->sess)
            swoop_addr_format(&c->sess->peer, peer, sizeof(peer));
        if (rc == SWOOP_ETLS)
            swoop__log_limited(SWOOP_LOG_NOTICE, 0,
                               "TLS handshake with %s on port %d failed: %s: closing", peer,
                               c->port->port, swoop__tls_reason(c->tls));
        else
            swoop__log_limited(SWOOP_LOG_INFO, rc == SWOOP_EOF ? 0 : rc,
                               "TLS handshake with %s on port %d: the client went away", peer,
                               c->port->port);
        atomic_fetch_add_explicit(&c->reactor->cnt->tls_failed, 1, memory_order_relaxed);
        ext(c)->tls_quiet = 1;
        ext(c)->linger = LINGER_NO;
        drop_output(c);
        conn_begin_close(c);
        return;
    }
    atomic_fetch_add_explicit(&c->reactor->cnt->tls_handshakes, 1, memory_order_relaxed);
    c->tls_hs = 0;
    c->notified = 0;
    swoop_server_t *srv = c->reactor->srv;
    if (srv->tls_subjects) {
        /* Before the worker hears of it: the CONNECT message orders the write before its reads. */
        char *dst = srv->tls_subjects + (size_t)(c->id & SWOOP_SLOT_MASK) * SWOOP_TLS_SUBJECT_MAX;
        if ((size_t)(dst - srv->tls_subjects) < srv->tls_subjects_size)
            swoop__tls_peer_subject(c->tls, dst, SWOOP_TLS_SUBJECT_MAX);
    }
    if (conn_announce(c) == NULL || c->state != CONN_OPEN || ext(c)->free_pending)
        return;
    if (swoop__buf_rlen(&c->out) > 0 || conn_has_files(c))
        conn_flush(c);
    if (c->state == CONN_OPEN && !ext(c)->free_pending)
        conn_read(c);
}

static void conn_io_cb(swoop_io_t *io, unsigned events)
{
    swoop_conn_t *c = io->data;
    if (c->state == CONN_LINGER) {
        linger_read(c); /* may free c */
        return;
    }
    ext(c)->busy++;
    if (c->tls_hs) {
        if (c->state == CONN_OPEN)
            tls_handshake_step(c);
        conn_unbusy(c);
        return;
    }
    if ((events & SWOOP_WRITABLE) && c->state != CONN_WAIT_ACK)
        conn_flush(c);
    if ((events & SWOOP_READABLE) && c->state == CONN_OPEN && !c->reactor->no_read) {
        if (c->proto_hold)
            update_io(c); /* input waits until the protocol releases the hold */
        else
            conn_read(c);
    }
    conn_unbusy(c);
}

/* Whether a close runs anything in a worker: on_close, or the protocol's closed hook. */
static int close_hooks(const swoop_conn_t *c)
{
    return c->reactor->srv->events.on_close || (c->proto && c->proto->closed);
}

/* BASE: the protocol's closed hook and on_close, which see the connection closed. */
static void conn_run_on_close(swoop_conn_t *c)
{
    swoop_server_t *srv = c->reactor->srv;
    ext(c)->busy++;
    if (c->proto && c->proto->closed)
        c->proto->closed(srv, c->id);
    if (srv->events.on_close)
        srv->events.on_close(srv, c->id, c->reactor->id);
    ext(c)->busy--;
}

/*
 * Drops the reference taken around a callback. The outermost one runs what
 * the callbacks deferred: on_close of a connection they closed (BASE: after
 * on_receive / on_connect returned, as in PROCESS mode), then the free.
 * Returns 1 when `c` was freed.
 */
static int conn_unbusy(swoop_conn_t *c)
{
    if (--ext(c)->busy > 0)
        return 0;
    if (ext(c)->close_pending) {
        ext(c)->close_pending = 0;
        conn_run_on_close(c);
        conn_free(c);
        return 1;
    }
    if (ext(c)->free_pending) {
        conn_free(c);
        return 1;
    }
    return 0;
}

/*
 * Marks the session closed (sends fail from now on) and counts the close
 * once. connection_num drops only in conn_free, when the fd is closed: a
 * connection still draining its output holds its fd and is counted.
 */
static void mark_closed(swoop_conn_t *c)
{
    swoop_session_t *s = own_sess(c);
    if (s && !atomic_exchange(&s->closed, 1)) {
        swoop_srv_shared_t *gs = c->reactor->srv->gs;
        atomic_fetch_add_explicit(&gs->close_count, 1, memory_order_relaxed);
    }
}

/*
 * The peer half-closed: stop reading, tell the worker (CLOSE behind the last
 * DATA; BASE: on_close now) and keep the output and the session until the
 * worker acknowledged, so a reply to the last request still goes out.
 */
static void conn_peer_eof(swoop_conn_t *c)
{
    swoop_reactor_t *r = c->reactor;
    swoop_server_t *srv = r->srv;
    swoop__buf_free(&c->in);
    swoop__buf_init(&c->in);
    ext(c)->linger = LINGER_NO; /* the client sends nothing more */
    c->state = CONN_PEER_EOF;
    c->state_ms = swoop_loop_now(r->loop);
    update_io(c);
    if (srv->mode == SWOOP_MODE_PROCESS) {
        /* Also without on_close: the acknowledgement says the last DATA was handled. */
        if (swoop__master_deliver_close(r, c, 1) == 0)
            return; /* swoop__conn_release follows the acknowledgement */
    } else if (close_hooks(c)) {
        /* BASE: every on_receive ran already; on_close sees the connection closed. */
        mark_closed(c);
        conn_run_on_close(c);
    }
    c->state = CONN_PEER_EOF;
    swoop__conn_release(c);
}

static void conn_begin_close(swoop_conn_t *c)
{
    if (c->state == CONN_LINGER) {
        conn_free(c); /* already released: only the fd is left */
        return;
    }
    if (c->state == CONN_WAIT_ACK || ext(c)->free_pending)
        return;
    swoop_reactor_t *r = c->reactor;
    swoop_server_t *srv = r->srv;
    mark_closed(c);
    swoop__buf_free(&c->in);
    swoop__buf_init(&c->in);
    drop_output(c);
    if (ext(c)->linger == LINGER_YES) {
        /* The output is out: the FIN now, before on_close and the lingering. */
        tls_goodbye(c);
        if (shutdown(c->fd, SHUT_WR) == 0)
            ext(c)->linger = LINGER_FIN_SENT;
        else
            ext(c)->linger = LINGER_NO;
    }
    if (c->notified || r->workers_gone) {
        conn_free(c); /* on_close ran already, or no worker is left to run it */
        return;
    }
    int eof = c->state == CONN_PEER_EOF;
    c->state = CONN_WAIT_ACK;
    c->state_ms = swoop_loop_now(r->loop);
    update_io(c); /* stops the watcher */
    if (eof)
        return; /* CLOSE went out at the peer's EOF: its acknowledgement frees */
    if (srv->mode == SWOOP_MODE_PROCESS) {
        if (swoop__master_deliver_close(r, c, 0) == 0)
            return; /* the worker acknowledges with CLOSE */
    } else if (close_hooks(c)) {
        if (ext(c)->busy > 0) {
            /*
             * Closed from inside one of its callbacks (swoop_server_close in
             * on_receive or on_connect): on_close runs once that callback
             * returned, never while it is still on the stack.
             */
            ext(c)->close_pending = 1;
            return;
        }
        conn_run_on_close(c);
    }
    conn_free(c);
}

/*
 * A close the server decided: whether the client may still be sending
 * (see the top). Asked while c->in and the protocol's state are still
 * there; the kernel's queue is looked at later, when the fd is closed.
 */
static int client_may_send(swoop_conn_t *c)
{
    if (swoop__buf_rlen(&c->in) > 0)
        return 1;
    if (c->tls && swoop__tls_pending(c->tls))
        return 1;
    return c->proto && c->proto->peer_may_send && c->proto->peer_may_send(c);
}

/* Whether bytes the client sent wait unread in the kernel (close() would send an RST). */
static int unread_in_kernel(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

static void set_linger0(swoop_conn_t *c)
{
    ext(c)->linger = LINGER_NO; /* a reset is meant: no lingering close either */
    ext(c)->tls_quiet = 1;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
        swoop__log_limited(SWOOP_LOG_WARNING, errno,
                           "setsockopt(SO_LINGER) on fd %d (conn %llu) failed", c->fd,
                           (unsigned long long)c->id);
}

void swoop__conn_close(swoop_conn_t *c, int reset)
{
    if (c->state == CONN_PEER_EOF && !c->notified) {
        /* on_close is under way: sends stop now, the acknowledgement drains or frees. */
        mark_closed(c);
        if (reset) {
            set_linger0(c);
            drop_output(c);
            update_io(c);
        }
        return;
    }
    if (c->state != CONN_OPEN)
        return;
    mark_closed(c);
    if (c->tls_hs) {
        /* Mid-handshake: nothing of the layers above may go out, so nothing waits. */
        ext(c)->linger = LINGER_NO;
        ext(c)->tls_quiet = 1;
        drop_output(c);
        conn_begin_close(c);
        return;
    }
    /* The client may still be sending: FIN after the output, then read it out (see top). */
    if (!reset && c->reactor->srv->settings.lingering_time > 0)
        ext(c)->linger = client_may_send(c) ? LINGER_YES : LINGER_IF_UNREAD;
    if (!reset && (swoop__buf_rlen(&c->out) > 0 || conn_has_files(c))) {
        c->state = CONN_DRAINING;
        c->state_ms = swoop_loop_now(c->reactor->loop);
        update_io(c);
        return;
    }
    if (reset) {
        /* RST instead of FIN, and drop what is buffered. */
        set_linger0(c);
        drop_output(c);
    }
    conn_begin_close(c);
}

void swoop__conn_release(swoop_conn_t *c)
{
    if (c->state == CONN_WAIT_ACK) {
        conn_free(c);
        return;
    }
    if (c->state != CONN_PEER_EOF || c->notified)
        return;
    /* on_close ran after the peer's EOF: write what is left, then free. */
    c->notified = 1;
    mark_closed(c);
    if (swoop__buf_rlen(&c->out) > 0 || conn_has_files(c)) {
        c->state = CONN_DRAINING;
        c->state_ms = swoop_loop_now(c->reactor->loop);
        update_io(c);
        return;
    }
    conn_free(c);
}

void swoop__conn_pause(swoop_conn_t *c, int pause)
{
    if (c->state != CONN_OPEN || c->paused == pause)
        return;
    c->paused = pause;
    update_io(c);
}

/* Clears the session's id (sends and lookups by id fail from now on). */
static void release_session(swoop_conn_t *c)
{
    swoop_session_t *s = own_sess(c);
    if (s) {
        /* Compare-and-swap: only our own id is cleared, never a successor's. */
        swoop_conn_id_t mine = c->id;
        atomic_store_explicit(&s->out_queued, 0, memory_order_relaxed);
        atomic_compare_exchange_strong_explicit(&s->id, &mine, 0, memory_order_release,
                                                memory_order_relaxed);
    }
}

/* LINGER: the bounds (see top); the timer is re-armed for the nearer one until one is reached. */
static void linger_timer_cb(int64_t id, void *arg)
{
    (void)id;
    swoop_conn_t *c = arg;
    swoop_reactor_t *r = c->reactor;
    const swoop_server_settings_t *st = &r->srv->settings;
    conn_ext_t *x = ext(c);
    x->linger_timer = 0;
    uint64_t now = swoop_loop_now(r->loop);
    uint64_t end = c->state_ms + (uint64_t)st->lingering_time;
    uint64_t idle_end = x->linger_last_ms + (uint64_t)st->lingering_timeout;
    uint64_t next = idle_end < end ? idle_end : end;
    if (now >= next) {
        if (now >= end && x->linger_last_ms > c->state_ms)
            swoop__log_limited(SWOOP_LOG_INFO, 0,
                               "conn %llu (fd %d): the client still sends %llu ms after the "
                               "server's close (lingering_time): closing",
                               (unsigned long long)c->id, c->fd,
                               (unsigned long long)(now - c->state_ms));
        conn_free(c);
        return;
    }
    x->linger_timer = swoop_loop_timer_after(r->loop, (int64_t)(next - now), linger_timer_cb, c);
    if (x->linger_timer <= 0) {
        x->linger_timer = 0;
        conn_free(c);
    }
}

/* LINGER: reads and drops what came; the client's EOF or reset (or too much) ends it. */
static void linger_read(swoop_conn_t *c)
{
    swoop_reactor_t *r = c->reactor;
    conn_ext_t *x = ext(c);
    for (int round = 0; round < READS_PER_WAKEUP; round++) {
        ssize_t n = recv(c->fd, r->rdbuf, SWOOP_READ_BUF, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_free(c); /* EOF (the clean end) or a reset */
            return;
        }
        atomic_fetch_add_explicit(&r->cnt->bytes_in, (uint64_t)n, memory_order_relaxed);
        x->linger_last_ms = swoop_loop_now(r->loop);
        x->linger_bytes += (uint64_t)n;
        if (x->linger_bytes > LINGER_MAX_BYTES) {
            swoop__log_limited(SWOOP_LOG_INFO, 0,
                               "conn %llu (fd %d): the client sent %llu bytes more after the "
                               "server's close: closing",
                               (unsigned long long)c->id, c->fd,
                               (unsigned long long)x->linger_bytes);
            conn_free(c);
            return;
        }
        if ((size_t)n < SWOOP_READ_BUF)
            return;
    }
}

/*
 * The connection is released as for a close (session, protocol state,
 * buffers; no longer found by id), but keeps its fd, still counted in
 * connection_num, and lingers (see top). Returns 0 when it cannot (closes
 * at once then).
 */
static int linger_begin(swoop_conn_t *c)
{
    swoop_reactor_t *r = c->reactor;
    swoop_server_t *srv = r->srv;
    conn_ext_t *x = ext(c);
    if (x->linger == LINGER_YES)
        tls_goodbye(c);
    if (x->linger == LINGER_YES && shutdown(c->fd, SHUT_WR) < 0)
        return 0;
    if (c->tls)
        tls_release(c); /* what the client still sends is read raw and dropped */
    x->linger = LINGER_NO;
    x->free_pending = 0;
    x->close_pending = 0;
    mark_closed(c);
    if (c->ipc_blocked) {
        c->ipc_blocked = 0;
        r->blocked--;
    }
    drop_output(c);
    release_session(c);
    if (c->proto && c->proto->conn_free)
        c->proto->conn_free(c);
    c->proto = NULL;
    c->proto_state = NULL;
    swoop__buf_free(&c->in);
    swoop__buf_init(&c->in);
    if (srv->conns[c->fd] == c)
        srv->conns[c->fd] = NULL;
    c->state = CONN_LINGER;
    c->state_ms = swoop_loop_now(r->loop);
    x->linger_last_ms = c->state_ms;
    x->linger_bytes = 0;
    int64_t ms = srv->settings.lingering_timeout < srv->settings.lingering_time
                     ? srv->settings.lingering_timeout
                     : srv->settings.lingering_time;
    x->linger_timer = swoop_loop_timer_after(r->loop, ms, linger_timer_cb, c);
    if (x->linger_timer <= 0 || swoop_io_start(&c->io, SWOOP_READABLE) < 0) {
        if (x->linger_timer < 0)
            x->linger_timer = 0;
        conn_free(c);
        return 1;
    }
    atomic_fetch_add_explicit(&r->cnt->lingering, 1, memory_order_relaxed);
    linger_read(c); /* the client may have closed already: may free c */
    return 1;
}

/* TLS: close_notify before the FIN (not for a reset, nor after a failure). Once. */
static void tls_goodbye(swoop_conn_t *c)
{
    if (c->tls && !c->tls_hs && !ext(c)->tls_quiet)
        swoop__tls_close_notify(c->tls);
    ext(c)->tls_quiet = 1;
}

/* TLS: the connection's record layer goes (its fd stays the caller's). */
static void tls_release(swoop_conn_t *c)
{
    tls_kick_stop(c);
    swoop__tls_free(c->tls);
    c->tls = NULL;
    c->tls_hs = 0;
}

static void conn_free(swoop_conn_t *c)
{
    if (ext(c)->busy > 0) {
        ext(c)->free_pending = 1;
        return;
    }
    if (ext(c)->linger == LINGER_IF_UNREAD)
        ext(c)->linger = unread_in_kernel(c->fd) ? LINGER_YES : LINGER_NO;
    if (ext(c)->linger && c->state != CONN_LINGER && linger_begin(c))
        return;
    swoop_reactor_t *r = c->reactor;
    swoop_server_t *srv = r->srv;
    if (ext(c)->linger_timer > 0) {
        swoop_loop_timer_clear(r->loop, ext(c)->linger_timer);
        ext(c)->linger_timer = 0;
    }
    mark_closed(c);
    if (c->ipc_blocked) {
        /* Else unblock() would walk every connection on every pass from now on. */
        c->ipc_blocked = 0;
        r->blocked--;
    }
    swoop_io_stop(&c->io);
    if (c->tls) {
        tls_goodbye(c);
        tls_release(c);
    }
    swoop_queue_remove(&c->link);
    r->nconns--;
    if (srv->conns[c->fd] == c)
        srv->conns[c->fd] = NULL;
    /* Release the session before the fd: the number may be reused right after close(). */
    drop_output(c);
    release_session(c);
    atomic_fetch_sub_explicit(&srv->gs->connection_num, 1, memory_order_relaxed);
    if (close(c->fd) < 0)
        swoop__log_limited(SWOOP_LOG_WARNING, errno, "close() of fd %d (conn %llu) failed", c->fd,
                           (unsigned long long)c->id);
    if (c->proto && c->proto->conn_free)
        c->proto->conn_free(c);
    swoop__buf_free(&c->in);
    swoop_free(c);
}

/*
 * Lazy: holding only stops conn_read; the READABLE interest goes only when
 * a held connection is woken with more input (a pipelining client), and
 * comes back at the release. A request answered at once (BASE) or a
 * client that waits for each response costs no epoll_ctl.
 */
int swoop__conn_set_proto(swoop_conn_t *c, int kind, uint32_t arg)
{
    swoop_server_t *srv = c->reactor->srv;
    const swoop_proto_t *to = kind >= 0 && kind < SWOOP_PROTO_MAX ? srv->protos[kind] : NULL;
    if (to == NULL)
        return SWOOP_EINVAL;
    if (c->proto && c->proto->conn_free)
        c->proto->conn_free(c);
    c->proto_state = NULL;
    c->proto_drain = 0;
    c->proto = to;
    c->proto_arg = arg;
    if (c->sess)
        atomic_store_explicit(&c->sess->proto_kind, (uint32_t)kind, memory_order_release);
    if (to->conn_open)
        to->conn_open(c);
    return 0;
}

void swoop__reactor_foreach(swoop_reactor_t *r, void (*fn)(swoop_conn_t *c, void *arg), void *arg)
{
    swoop_queue_t *q = swoop_queue_head(&r->conns);
    while (q != &r->conns) {
        swoop_conn_t *c = swoop_queue_data(q, swoop_conn_t, link);
        q = q->next; /* fn may close c */
        if (c->state == CONN_OPEN)
            fn(c, arg);
    }
}

void swoop__conn_hold(swoop_conn_t *c, int hold)
{
    if (c->proto_hold == hold)
        return;
    c->proto_hold = hold;
    if (!hold && c->state == CONN_OPEN && !(c->io._registered & SWOOP_READABLE))
        update_io(c);
}

int swoop__conn_reframe(swoop_conn_t *c)
{
    if (c->state != CONN_OPEN || ext(c)->free_pending || swoop__buf_rlen(&c->in) == 0)
        return 0;
    ext(c)->busy++;
    int rc = frame_input(c);
    if (conn_unbusy(c))
        return -1;
    return rc;
}

void swoop__conn_flush_wait(swoop_conn_t *c, int ms)
{
    struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
    if (c->state == CONN_OPEN || c->state == CONN_DRAINING) {
        poll(&pf, 1, ms);
        conn_flush(c);
    }
}

size_t swoop__conn_out_len(swoop_conn_t *c)
{
    return swoop__buf_rlen(&c->out);
}

void swoop__conn_reply(swoop_conn_t *c, uint32_t flags)
{
    if (c->proto && c->proto->reply)
        c->proto->reply(c, flags);
}

void swoop__reactor_close_all(swoop_reactor_t *r, int notify)
{
    while (!swoop_queue_empty(&r->conns)) {
        swoop_conn_t *c = swoop_queue_data(swoop_queue_head(&r->conns), swoop_conn_t, link);
        ext(c)->linger = LINGER_NO; /* the owner goes away: no lingering now */
        if (notify && c->state != CONN_WAIT_ACK && c->state != CONN_LINGER &&
            r->srv->mode == SWOOP_MODE_BASE) {
            conn_begin_close(c); /* runs on_close and frees */
            continue;
        }
        ext(c)->busy = 0;
        conn_free(c);
    }
}

/* The ids of the reactor's connections: a callback may free any of them meanwhile. */
static swoop_conn_id_t *conn_ids(swoop_reactor_t *r, size_t *n)
{
    size_t k = 0;
    for (swoop_queue_t *q = swoop_queue_head(&r->conns); q != &r->conns; q = q->next)
        k++;
    swoop_conn_id_t *ids = swoop_malloc((k ? k : 1) * sizeof(*ids));
    k = 0;
    for (swoop_queue_t *q = swoop_queue_head(&r->conns); q != &r->conns; q = q->next)
        ids[k++] = swoop_queue_data(q, swoop_conn_t, link)->id;
    *n = k;
    return ids;
}

void swoop__reactor_stop_reading(swoop_reactor_t *r)
{
    if (r->no_read)
        return;
    size_t n;
    swoop_conn_id_t *ids = conn_ids(r, &n);
    for (size_t i = 0; i < n; i++) {
        swoop_conn_t *c = swoop__reactor_conn(r, ids[i]);
        if (c == NULL || c->state != CONN_OPEN || c->paused)
            continue;
        ext(c)->busy++;
        conn_read(c);
        conn_unbusy(c);
    }
    r->no_read = 1;
    for (size_t i = 0; i < n; i++) {
        swoop_conn_t *c = swoop__reactor_conn(r, ids[i]);
        if (c && c->state == CONN_OPEN)
            update_io(c);
    }
    swoop_free(ids);
}

void swoop__reactor_finish(swoop_reactor_t *r)
{
    size_t n;
    swoop_conn_id_t *ids = conn_ids(r, &n);
    for (size_t i = 0; i < n; i++) {
        swoop_conn_t *c = swoop__reactor_conn(r, ids[i]);
        if (c == NULL)
            continue;
        if (c->state == CONN_OPEN && c->proto && c->proto->going_away) {
            c->proto->going_away(c, 0); /* its goodbye goes before the FIN */
            if ((c = swoop__reactor_conn(r, ids[i])) == NULL)
                continue;
        }
        if (c->state == CONN_OPEN)
            swoop__conn_close(c, 0); /* FIN now, or once the output is out */
        else if (r->workers_gone && c->state == CONN_WAIT_ACK)
            conn_free(c);
        else if (r->workers_gone && c->state == CONN_PEER_EOF)
            swoop__conn_release(c); /* writes what is left, then frees */
    }
    swoop_free(ids);
}

void swoop__reactor_expire(swoop_reactor_t *r, const char *why)
{
    size_t n, bytes = 0;
    swoop_conn_id_t *ids = conn_ids(r, &n);
    for (size_t i = 0; i < n; i++) {
        swoop_conn_t *c = swoop__reactor_conn(r, ids[i]);
        if (c)
            bytes += swoop__buf_rlen(&c->out);
    }
    if (n)
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "%s: %zu connections with %zu bytes of output left after max_wait_time "
                  "%d s: resetting them",
                  why, n, bytes, r->srv->settings.max_wait_time);
    for (size_t i = 0; i < n; i++) {
        swoop_conn_t *c = swoop__reactor_conn(r, ids[i]);
        if (c == NULL)
            continue;
        set_linger0(c);
        drop_output(c);
        if (c->state == CONN_OPEN || c->state == CONN_DRAINING)
            conn_begin_close(c); /* BASE: on_close runs */
        else
            conn_free(c);
    }
    swoop_free(ids);
}

void swoop__reactor_tick(swoop_reactor_t *r)
{
    swoop_server_t *srv = r->srv;
    uint64_t now = swoop_loop_now(r->loop);
    int interval = srv->settings.heartbeat_check_interval;
    int check_idle = 0;
    if (interval > 0) {
        if (now >= r->next_heartbeat_ms) {
            check_idle = 1;
            r->next_heartbeat_ms = now + (uint64_t)interval * 1000u;
        }
    }
    swoop_queue_t *q = swoop_queue_head(&r->conns);
    while (q != &r->conns) {
        swoop_conn_t *c = swoop_queue_data(q, swoop_conn_t, link);
        q = q->next;
        if (c->state == CONN_WAIT_ACK || (c->state == CONN_PEER_EOF && !c->notified)) {
            if (now - c->state_ms >
                ACK_TIMEOUT_MS + (uint64_t)srv->settings.max_wait_time * 1000u) {
                swoop__log_limited(
                    SWOOP_LOG_WARNING, 0,
                    "conn %llu (fd %d): no on_close acknowledgement from worker %d within "
                    "%d ms (the worker died?): releasing it",
                    (unsigned long long)c->id, c->fd, c->worker_id, ACK_TIMEOUT_MS);
                conn_free(c);
            }
            continue;
        }
        /* Closed with output pending: max_wait_time to flush, heartbeat or not, then RST. */
        if (c->state == CONN_DRAINING) {
            if (now - c->state_ms >= (uint64_t)srv->settings.max_wait_time * 1000u) {
                swoop__log_limited(SWOOP_LOG_WARNING, 0,
                                   "conn %llu (fd %d): %zu bytes of output not flushed within "
                                   "max_wait_time %d s after the close: resetting",
                                   (unsigned long long)c->id, c->fd, swoop__buf_rlen(&c->out),
                                   srv->settings.max_wait_time);
                set_linger0(c);
                drop_output(c);
                conn_begin_close(c);
            }
            continue;
        }
        if (c->tls_hs && c->state == CONN_OPEN) {
            int limit = swoop__tls_handshake_timeout(c->tls);
            if (limit > 0 && now - c->state_ms >= (uint64_t)limit * 1000u) {
                char peer[SWOOP_ADDR_STRLEN] = "?";
                if (c->sess)
                    swoop_addr_format(&c->sess->peer, peer, sizeof(peer));
                swoop__log_limited(SWOOP_LOG_INFO, 0,
                                   "TLS handshake with %s on port %d not done within "
                                   "ssl_handshake_timeout %d s: closing",
                                   peer, c->port->port, limit);
                atomic_fetch_add_explicit(&c->reactor->cnt->tls_failed, 1, memory_order_relaxed);
                swoop__conn_close(c, 0);
                continue;
            }
        }
        int idle = c->port->eff.heartbeat_idle_time;
        if (idle <= 0 && interval > 0)
            idle = interval * 2;
        if (check_idle && idle > 0 && c->state == CONN_OPEN &&
            now - c->last_recv_ms > (uint64_t)idle * 1000u) {
            swoop__log_limited(
                SWOOP_LOG_INFO, 0,
                "heartbeat: conn %llu (fd %d) idle for %llu ms (heartbeat_idle_time %d s): "
                "closing",
                (unsigned long long)c->id, c->fd, (unsigned long long)(now - c->last_recv_ms),
                idle);
            swoop__conn_close(c, 1);
            continue;
        }
        if (c->state == CONN_OPEN && c->proto && c->proto->tick)
            c->proto->tick(c, now); /* may close c (q already moved on) */
    }
}

void swoop__port_dgram_readable(swoop_reactor_t *r, swoop_port_t *p)
{
    swoop_server_t *srv = r->srv;
    for (int i = 0; i < DGRAMS_PER_WAKEUP; i++) {
        swoop_addr_t from;
        memset(&from, 0, sizeof(from));
        from.len = sizeof(from.u);
        ssize_t n = recvfrom(p->fd, r->rdbuf, SWOOP_READ_BUF, MSG_DONTWAIT, &from.u.sa, &from.len);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err != EAGAIN && err != EWOULDBLOCK)
                swoop__log_limited(SWOOP_LOG_WARNING, err, "recvfrom() on port %d (fd %d) failed",
                                   p->port, p->fd);
            return;
        }
        atomic_fetch_add_explicit(&r->cnt->bytes_in, (uint64_t)n, memory_order_relaxed);
        if (srv->mode == SWOOP_MODE_PROCESS)
            swoop__master_deliver_dgram(r, p, &from, r->rdbuf, (size_t)n);
        else
            swoop__base_deliver_dgram(r, p, &from, r->rdbuf, (size_t)n);
    }
}

/* ---- sendfile ---- */

static int conn_has_files(swoop_conn_t *c)
{
    return !swoop_queue_empty(&c->files);
}

static void drop_files(swoop_conn_t *c)
{
    while (!swoop_queue_empty(&c->files))
        file_seg_free(swoop_queue_data(swoop_queue_head(&c->files), file_seg_t, link));
}

int swoop__sendfile_open(const char *path, off_t offset, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        swoop__log_limited(SWOOP_LOG_WARNING, err, "sendfile: open(\"%s\") failed", path);
        return -err;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int err = errno;
        swoop__log_limited(SWOOP_LOG_WARNING, err, "sendfile: fstat(\"%s\") failed", path);
        close(fd);
        return -err;
    }
    if (!S_ISREG(st.st_mode)) {
        int rc = S_ISDIR(st.st_mode) ? -EISDIR : SWOOP_EINVAL;
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "sendfile: \"%s\" is not a regular file", path);
        close(fd);
        return rc;
    }
    uint64_t size = (uint64_t)st.st_size;
    if ((uint64_t)offset > size || (*len > 0 && *len > size - (uint64_t)offset)) {
        swoop__log_limited(SWOOP_LOG_WARNING, 0,
                           "sendfile: range %lld + %zu is past the end of \"%s\" (%llu bytes)",
                           (long long)offset, *len, path, (unsigned long long)size);
        close(fd);
        return SWOOP_EINVAL;
    }
    if (*len == 0)
        *len = (size_t)(size - (uint64_t)offset);
    return fd;
}

int swoop__conn_sendfile(swoop_conn_t *c, int fd, off_t offset, size_t len)
{
    if (!conn_sendable(c)) {
        close(fd);
        return SWOOP_ECLOSED;
    }
    if (len == 0) {
        close(fd);
        return 0;
    }
    size_t pre = swoop__buf_rlen(&c->out);
    for (swoop_queue_t *q = swoop_queue_head(&c->files); q != &c->files; q = q->next)
        pre -= swoop_queue_data(q, file_seg_t, link)->pre;
    file_seg_t *f = swoop_malloc(sizeof(*f));
    f->pre = pre;
    f->fd = fd;
    f->off = offset;
    f->left = len;
    f->stage = NULL;
    f->stage_off = f->stage_len = 0;
    swoop_queue_insert_tail(&c->files, &f->link);
    /*
     * Nothing ahead of it: written now, behind the head its caller just
     * sent (MSG_MORE), rather than a loop iteration and two epoll_ctl later.
     * What the socket does not take waits for the writability callback.
     */
    if (pre == 0 && swoop_queue_head(&c->files) == &f->link) {
        int rc = flush_file(c, f);
        if (rc < 0)
            return SWOOP_ECLOSED;
        if (rc == 0)
            return 0;
    }
    /* Written from the writability callback, like any queued output. */
    if (!c->writing)
        update_io(c);
    return 0;
}

void swoop__conn_sendfile_msg(swoop_conn_t *c, const char *data, size_t len)
{
    swoop_sendfile_req_t req;
    char path[4096];
    if (len <= sizeof(req) || len - sizeof(req) >= sizeof(path)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "conn %llu: malformed SENDFILE message (%zu bytes) dropped",
                  (unsigned long long)c->id, len);
        return;
    }
    memcpy(&req, data, sizeof(req));
    memcpy(path, data + sizeof(req), len - sizeof(req));
    path[len - sizeof(req)] = '\0';
    size_t n = (size_t)req.length;
    int fd = swoop__sendfile_open(path, (off_t)req.offset, &n);
    if (fd < 0 || n != req.length) {
        /* The worker checked this file a moment ago: the stream would have a hole. */
        swoop_log(SWOOP_LOG_ERROR, fd < 0 ? fd : 0,
                  "conn %llu: the file \"%s\" changed before it could be sent: closing",
                  (unsigned long long)c->id, path);
        if (fd >= 0)
            close(fd);
        swoop__conn_close(c, 1);
        return;
    }
    swoop__conn_sendfile(c, fd, (off_t)req.offset, n);
}
