/*
 * The connection owner's side of HTTP (a PROCESS reactor thread or a BASE
 * worker): every byte of a request is parsed here once (proto/http_parser.c),
 * and the worker gets one message per request (internal.h, http_msg_t). A
 * request that breaks a rule is answered here with its status and the
 * connection closes; no handler sees it. The body comes with the request:
 * a Content-Length body is awaited in the connection's input buffer (up to
 * package_max_length), a chunked one is decoded as it arrives. A
 * multipart/form-data body of either kind streams through the form parser
 * (upload.c): its files go to upload_tmp_dir as they arrive.
 *
 * One request at a time: once a request is delivered, the connection is
 * not read until its response ended (SWOOP_REPLY_END on the worker's last
 * send), so pipelined requests are answered in order whoever answers them
 * and whenever. Then the connection closes (Connection: close, HTTP/1.0
 * without keep-alive) or the bytes already buffered are parsed next.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "proto/ws_handshake.h"
#include "base/buf.h"
#include "base/ratelimit.h"
#include "http/internal.h"
#include "shm/internal.h"

/*
 * BODY: a Content-Length body above http_body_memory_max, written to its
 * file as it arrives. DRAIN: answered, but the next request waits for the
 * output to drain.
 */
/* PHASE_UPGRADED: the 101 went out; the connection switches to WebSocket (upgrade_now). */
enum {
    PHASE_IDLE = 0,
    PHASE_HEAD,
    PHASE_CHUNKED,
    PHASE_BODY,
    PHASE_WAITING,
    PHASE_DRAIN,
    PHASE_UPGRADED
};

/* Bytes of message buffer a connection keeps between requests (reused, not reallocated). */
#define SAVED_KEEP 4096

/*
 * The parser's header slots (1,600 bytes) are needed only while a head is
 * parsed and handed on, which for nearly every request happens within one
 * read: the head is parsed into this per-thread scratch array, and only a
 * head that spans reads gets slots of its own (head_keep), freed once it
 * was parsed. An idle keep-alive connection then keeps none (bench/http.c
 * -i: about 4 KiB per idle connection before, mostly these slots and the
 * body path). Every owner is one thread (a reactor thread or a BASE
 * worker) and nothing reads the slots once input() returned or the
 * request was handed on, so a thread's parses never overlap.
 */
static _Thread_local swoop_http_header_t scratch_headers[HTTP_MAX_HEADERS];

typedef struct http_conn_s {
    int phase;
    uint64_t since_ms; /* HEAD: when the request's first byte came; IDLE: the last response's end */
    int in_input;      /* input() is on the stack (BASE: the handler runs inside it) */
    int orphaned;      /* the connection switched protocols inside input(): it frees this */
    int keep_alive;    /* of the request being answered */
    int client_done;   /* the client's last request asked for the close (Connection: close, 1.0) */
    int idle_closed;   /* closed for http_keepalive_timeout: the client sends nothing */
    size_t rest;       /* inside input(): bytes read behind the request being answered */
    int continue_sent; /* 100 Continue went out for this request */
    int expect_done;   /* the Expect hook allowed this request */
    swoop_http_head_t head;
    swoop_http_chunked_t chunked;
    swoop_buf_t saved;     /* the request message being built (header, fields, head, body) */
    int worker;            /* PROCESS, WAITING: the worker the request went to */
    int dead_ticks;        /* ticks that found that process gone */
    uint32_t seq;          /* requests handed on so far */
    uint64_t body_left;    /* PHASE_BODY: bytes still to come */
    uint64_t body_written; /* chunked, in a file: its bytes */
    int body_fd;           /* the body's file while it is written, else -1 */
    char *body_path;       /* its path until the response ended (allocated), NULL none */
    http_upload_t *upload; /* multipart/form-data: its parser and files, until the response ended */
    swoop_buf_t trailers;  /* chunked: its trailer section so far (raw), until it is delivered */
    swoop_http_header_t *own_headers; /* a head that spans reads: its slots, else NULL */
} http_conn_t;

static void conn_open(swoop_conn_t *c)
{
    c->proto_state = NULL; /* made at the first byte: a connection that sends nothing costs none */
}

/* The request's body file, if any: closed and removed (its request ended or died). */
static void body_file_drop(http_conn_t *h)
{
    if (h->body_fd >= 0)
        close(h->body_fd);
    h->body_fd = -1;
    if (h->body_path && unlink(h->body_path) < 0 && errno != ENOENT)
        swoop__log_limited(SWOOP_LOG_WARNING, errno, "http: unlink(\"%s\") failed", h->body_path);
    swoop_free(h->body_path);
    h->body_path = NULL;
    swoop__http_upload_free(h->upload);
    h->upload = NULL;
}

static void state_free(swoop_conn_t *c)
{
    http_conn_t *h = c->proto_state;
    if (h == NULL)
        return;
    c->proto_state = NULL;
    if (h->in_input) {
        h->orphaned = 1; /* input_requests is on the stack: input() frees it when it returns */
        return;
    }
    body_file_drop(h);
    swoop__buf_free(&h->saved);
    swoop__buf_free(&h->trailers);
    swoop_free(h->own_headers);
    swoop_free(h);
    c->proto_state = NULL;
}

/*
 * The head being parsed goes on in a later read: its slots move from the
 * thread's scratch array to the connection's own (the parser indexes
 * head.headers, so it resumes on the copy).
 */
static void head_keep(http_conn_t *h)
{
    if (h->head.headers == h->own_headers)
        return;
    h->own_headers = swoop_malloc(sizeof(scratch_headers));
    uint32_t used =
        h->head.num_headers < HTTP_MAX_HEADERS ? h->head.num_headers + 1 : HTTP_MAX_HEADERS;
    memcpy(h->own_headers, h->head.headers, used * sizeof(swoop_http_header_t));
    h->head.headers = h->own_headers;
}

/* No head is being parsed: a head's own slots go (see scratch_headers). */
static void head_release(http_conn_t *h)
{
    if (h->own_headers == NULL)
        return;
    swoop_free(h->own_headers);
    h->own_headers = NULL;
    h->head.headers = NULL;
}

static void conn_free(swoop_conn_t *c)
{
    state_free(c);
}

/* An access log line for a response the owner gave without a parsed request (errors). */
static void owner_access(swoop_conn_t *c, int status, size_t bytes)
{
    if (c->port->access_fd < 0)
        return;
    swoop_http_access_t a = {.status = status, .bytes = bytes, .duration_us = -1};
    swoop__http_access(c->port->access_fd, c->port->eff.http_access_log_format,
                       c->sess ? &c->sess->peer : NULL, &a);
}

/* An empty response of `status` with Connection: close, then the close (408, 503). */
static void owner_answer(swoop_conn_t *c, int status)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", status,
                     swoop__http_reason(status), swoop__http_server_date(&c->port->eff));
    swoop__http_count(c->reactor->cnt, status, 0);
    owner_access(c, status, (size_t)n);
    swoop__conn_send(c, buf, (size_t)n, 0);
    swoop__conn_close(c, 0);
}

/* ---- WebSocket handshakes (upgraded by the layer above, src/ws/) ---- */

/* The value of the first field `name` of the parsed head (NULL if absent). */
static const char *head_field(const http_conn_t *h, const char *req, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < h->head.num_headers; i++) {
        const swoop_http_header_t *f = &h->head.headers[i];
        if (f->name.len == nl && strncasecmp(req + f->name.off, name, nl) == 0) {
            *len = f->value.len;
            return req + f->value.off;
        }
    }
    return NULL;
}

/* A request asking for WebSocket on a port that speaks it. */
static int wants_websocket(const swoop_conn_t *c, const http_conn_t *h, const char *req)
{
    return c->port->eff.open_websocket_protocol && h->head.upgrade_requested &&
           swoop__ws_token_has(req + h->head.upgrade.off, h->head.upgrade.len, "websocket");
}

/*
 * RFC 6455 4.2.1: GET, HTTP/1.1, no body, version 13 and a 16-byte key.
 * 0, or the status to refuse with: 426 (with the version we speak) for
 * another version, 400 for the rest. The owner refuses; the worker never
 * sees a handshake it could not accept.
 */
static int websocket_check(const http_conn_t *h, const char *req, const char **why)
{
    size_t vl = 0;
    const char *v;
    if (h->head.method.len != 3 || memcmp(req + h->head.method.off, "GET", 3) != 0) {
        *why = "a WebSocket handshake that is not a GET";
        return 400;
    }
    if (h->head.version_minor != 1) {
        *why = "a WebSocket handshake in HTTP/1.0";
        return 400;
    }
    if (h->head.body == SWOOP_HTTP_BODY_CHUNKED ||
        (h->head.body == SWOOP_HTTP_BODY_LENGTH && h->head.content_length > 0)) {
        *why = "a WebSocket handshake with a body";
        return 400;
    }
    v = head_field(h, req, "Sec-WebSocket-Version", &vl);
    if (v == NULL || vl != 2 || memcmp(v, "13", 2) != 0) {
        *why = "a WebSocket version other than 13";
        return 426;
    }
    v = head_field(h, req, "Sec-WebSocket-Key", &vl);
    if (v == NULL || !swoop__ws_key_valid(v, vl)) {
        *why = "a missing or malformed Sec-WebSocket-Key";
        return 400;
    }
    return 0;
}

static void websocket_refuse(swoop_conn_t *c, int status, const char *why)
{
    swoop__log_limited(SWOOP_LOG_INFO, 0, "http: conn %llu (port %d): %s: %d, closing",
                       (unsigned long long)c->id, c->port->port, why, status);
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\n%s%sContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n",
                     status, swoop__http_reason(status), swoop__http_server_date(&c->port->eff),
                     status == 426 ? "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n" : "");
    swoop__http_count(c->reactor->cnt, status, 1);
    owner_access(c, status, (size_t)n);
    swoop__conn_send(c, buf, (size_t)n, 0);
    swoop__conn_close(c, 0);
}

/* Answers `status` with a short text body, then closes (after the bytes); logs why. */
static void reply_status(swoop_conn_t *c, int status, const char *why, int bad)
{
    const char *reason = swoop__http_reason(status);
    swoop__log_limited(SWOOP_LOG_INFO, 0, "http: conn %llu (port %d): %s: %d %s, closing",
                       (unsigned long long)c->id, c->port->port, why, status, reason);
    char body[128], buf[512];
    int bl = snprintf(body, sizeof(body), "%d %s\n", status, reason);
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     status, reason, swoop__http_server_date(&c->port->eff), bl, body);
    swoop__http_count(c->reactor->cnt, status, bad);
    owner_access(c, status, (size_t)n);
    swoop__conn_send(c, buf, (size_t)n, 0);
    swoop__conn_close(c, 0);
}

/* Answers a request that broke a rule with its status, then closes (after the bytes). */
static void reply_error(swoop_conn_t *c, int err)
{
    reply_status(c, swoop__http_error_status(err), swoop__http_error_reason(err), 1);
}

/* The message's fixed header for the parsed head h (body_len filled in later). */
static void msg_head(const http_conn_t *h, const char *head, http_msg_t *m)
{
    const swoop_http_head_t *p = &h->head;
    memset(m, 0, sizeof(*m));
    m->magic = HTTP_MSG_MAGIC;
    m->num_headers = p->num_headers;
    m->head_len = p->head_len;
    m->method = p->method;
    m->path = p->path;
    m->query = p->query;
    m->version_minor = p->version_minor;
    if (p->keep_alive)
        m->flags |= HTTP_MSG_KEEP_ALIVE;
    if (p->method.len == 4 && memcmp(head + p->method.off, "HEAD", 4) == 0)
        m->flags |= HTTP_MSG_HEAD;
}

/* Appends header, fields and raw head of the request at `head` to b; 0 or -1 (no memory). */
static int msg_build(swoop_buf_t *b, const http_conn_t *h, const char *head, uint64_t body_len)
{
    http_msg_t m;
    msg_head(h, head, &m);
    m.body_len = body_len;
    size_t fields = (size_t)h->head.num_headers * sizeof(swoop_http_header_t);
    if (swoop__buf_reserve(b, sizeof(m) + fields + h->head.head_len + body_len) < 0)
        return -1;
    swoop__buf_append(b, &m, sizeof(m));
    swoop__buf_append(b, h->head.headers, fields);
    swoop__buf_append(b, head, h->head.head_len);
    return 0;
}

/* Bytes of h->saved before the body: the message header, the fields, the head. */
static size_t saved_fixed(http_conn_t *h)
{
    http_msg_t m;
    memcpy(&m, swoop__buf_rdata(&h->saved), sizeof(m));
    return sizeof(m) + (size_t)m.num_headers * sizeof(swoop_http_header_t) + m.head_len;
}

/*
 * A chunked body ended: its trailer fields, packed, go last in the message
 * (h->saved, whose header gets their length). 0, or -1 without memory.
 */
static int msg_trailers(http_conn_t *h)
{
    size_t n = swoop__buf_rlen(&h->trailers);
    if (n == 0)
        return 0;
    uint32_t count;
    n = swoop__http_trailer_pack((char *)swoop__buf_rdata(&h->trailers), n, &count);
    int rc = 0;
    if (n > 0) {
        http_msg_t m;
        if (swoop__buf_append(&h->saved, swoop__buf_rdata(&h->trailers), n) < 0) {
            rc = -1;
        } else {
            char *saved = (char *)swoop__buf_rdata(&h->saved);
            memcpy(&m, saved, sizeof(m));
            m.trailer_len = (uint32_t)n; /* at most max_trailer (http_max_header_size) */
            memcpy(saved, &m, sizeof(m));
        }
    }
    swoop__buf_free(&h->trailers); /* an idle connection keeps none */
    return rc;
}

/* The request is whole: to the worker, and the reading waits for its response. */
static void deliver(swoop_conn_t *c, http_conn_t *h, const char *data, size_t len)
{
    swoop_server_t *srv = c->reactor->srv;
    h->phase = PHASE_WAITING;
    h->keep_alive = h->head.keep_alive;
    http_msg_t m;
    memcpy(&m, data, sizeof(m));
    m.seq = ++h->seq;
    /* The request latency (docs/api/metrics.md) and the access log's duration start here. */
    m.queued_us = srv->gs->metrics_on || c->port->access_fd >= 0 ? swoop__http_us32() : 0;
    memcpy((char *)data, &m, sizeof(m)); /* the message is ours (h->saved) */
    if (c->sess) {
        uint32_t f = HTTP_SESS_AWAITING | (h->keep_alive ? HTTP_SESS_KEEP_ALIVE : 0) |
                     ((uint32_t)h->head.version_minor << 8) | ((m.seq & 0xffu) << 16);
        if (m.flags & HTTP_MSG_HEAD)
            f |= HTTP_SESS_HEAD;
        /* What Accept-Encoding allows, for a detached answer (it has no request to read). */
        /* The fields as the message carries them: the parser's slots may be gone (a body came). */
        swoop_http_head_t hd = h->head;
        hd.headers = (swoop_http_header_t *)(data + sizeof(m));
        f |= HTTP_SESS_CODING_BITS(swoop__http_accept_of_head(
            &hd, data + sizeof(m) + (size_t)m.num_headers * sizeof(swoop_http_header_t),
            SWOOP_HTTP_CODING_GZIP | SWOOP_HTTP_CODING_DEFLATE));
        atomic_store_explicit(&c->sess->proto_taker, 0, memory_order_relaxed);
        atomic_store_explicit(&c->sess->proto_flags, f, memory_order_release);
    }
    swoop__conn_hold(c, 1);
    swoop__conn_deliver(c, data, len);
    if (srv->mode == SWOOP_MODE_PROCESS && c->state == CONN_OPEN && c->proto_state == h &&
        h->phase == PHASE_WAITING) {
        h->worker = c->data_worker;
        h->dead_ticks = 0;
    }
}

/* Expect: 100-continue: the client waits for it before it sends the body. */
static void maybe_continue(swoop_conn_t *c, http_conn_t *h)
{
    if (!h->head.expect_continue || h->continue_sent)
        return;
    h->continue_sent = 1;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    swoop__conn_send(c, cont, sizeof(cont) - 1, 0);
}

static int no_memory(swoop_conn_t *c);

/*
 * Expect: 100-continue: the swoop_http_on_expect hook decides, here in the
 * owner, before a byte of the body is read (or the 100 sent). The owner
 * rather than a worker: a round trip to a worker would hold the client and
 * the connection on a busy (or dying) worker for what is meant to be a
 * quick look at the head, and would need a state waiting for a verdict;
 * the hook's contract (thread-safe, non-blocking, accessors only) is in
 * <swoop/http.h>. Runs once per request: a head parsed again while its
 * Content-Length body arrives does not ask twice. 0: go on; -1: refused,
 * answered and closing.
 */
static int expect_check(swoop_conn_t *c, http_conn_t *h, const char *req)
{
    swoop_server_t *srv = c->reactor->srv;
    if (!h->head.expect_continue || h->expect_done || srv->proto_hook[SWOOP_PROTO_HTTP] == NULL)
        return 0;
    h->expect_done = 1;
    /* The hook reads the request as a worker does: a body-less message, built in h->saved. */
    swoop__buf_clear(&h->saved);
    if (msg_build(&h->saved, h, req, 0) < 0)
        return no_memory(c);
    int st = swoop__http_expect(srv, c->id, c->sess ? &c->sess->peer : NULL,
                                (char *)swoop__buf_rdata(&h->saved), swoop__buf_rlen(&h->saved));
    swoop__buf_clear(&h->saved);
    if (st == 0)
        return 0;
    reply_status(c, st, "refused by the Expect hook", 0);
    return -1;
}

/* Opens the file a large body goes to (upload_tmp_dir); 0, or -1 when c was answered 500. */
static int body_file_open(swoop_conn_t *c, http_conn_t *h)
{
    /* Allocated only now: an idle connection does not keep a path's worth of bytes. */
    size_t cap = strlen(c->port->eff.upload_tmp_dir) + 48;
    h->body_path = swoop_malloc(cap);
    snprintf(h->body_path, cap, "%s/swoop-body.%d.XXXXXX", c->port->eff.upload_tmp_dir,
             (int)swoop__getpid());
    h->body_fd = mkostemp(h->body_path, O_CLOEXEC);
    if (h->body_fd >= 0)
        return 0;
    int err = errno;
    swoop__log_limited(SWOOP_LOG_ERROR, err,
                       "http: conn %llu: cannot make a body file in upload_tmp_dir \"%s\": 500",
                       (unsigned long long)c->id, c->port->eff.upload_tmp_dir);
    swoop_free(h->body_path);
    h->body_path = NULL;
    owner_answer(c, 500);
    return -1;
}

/* Appends p[0, n) to the body file; 0, or -1 when c was answered 500. */
static int body_file_write(swoop_conn_t *c, http_conn_t *h, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(h->body_fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int err = k < 0 ? errno : ENOSPC;
            swoop__log_limited(SWOOP_LOG_ERROR, err, "http: conn %llu: writing \"%s\" failed: 500",
                               (unsigned long long)c->id, h->body_path);
            body_file_drop(h);
            owner_answer(c, 500);
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/*
 * The body in its file is whole: the message (header, fields, head in
 * h->saved) gets the file flag, the size and the path, and goes.
 */
static void body_file_deliver(swoop_conn_t *c, http_conn_t *h, uint64_t size)
{
    close(h->body_fd);
    h->body_fd = -1;
    http_msg_t m;
    char *saved = (char *)swoop__buf_rdata(&h->saved);
    memcpy(&m, saved, sizeof(m));
    m.flags |= HTTP_MSG_BODY_FILE;
    m.body_len = size;
    memcpy(saved, &m, sizeof(m));
    if (swoop__buf_append(&h->saved, h->body_path, strlen(h->body_path)) < 0 ||
        msg_trailers(h) < 0) {
        no_memory(c);
        return;
    }
    deliver(c, h, swoop__buf_rdata(&h->saved), swoop__buf_rlen(&h->saved));
}

/* A multipart request refused (status from upload.c, which logged why): its files go now. */
static int upload_refused(swoop_conn_t *c, http_conn_t *h, int status)
{
    body_file_drop(h);
    if (status < 500)
        swoop__http_count(c->reactor->cnt, 0, 1); /* a bad request (its status is counted next) */
    owner_answer(c, status);
    return -1;
}

/* A multipart body ended: whole (its parts are in the message) or refused. */
static int upload_deliver(swoop_conn_t *c, http_conn_t *h)
{
    int st = swoop__http_upload_end(c, h->upload);
    if (st)
        return upload_refused(c, h, st);
    http_msg_t m;
    char *saved = (char *)swoop__buf_rdata(&h->saved);
    memcpy(&m, saved, sizeof(m));
    m.flags |= HTTP_MSG_MULTIPART;
    m.body_len = 0;
    memcpy(saved, &m, sizeof(m));
    if (msg_trailers(h) < 0)
        return no_memory(c);
    deliver(c, h, swoop__buf_rdata(&h->saved), swoop__buf_rlen(&h->saved));
    if (c->state == CONN_OPEN && c->proto_state == h)
        swoop__buf_shrink(&h->saved, 0, SAVED_KEEP);
    return 0;
}

/* Starts a multipart/form-data body: streamed through the form parser, whatever its size. */
static int upload_start(swoop_conn_t *c, http_conn_t *h, const char *req,
                        const swoop_http_limits_t *lim)
{
    swoop__buf_clear(&h->saved);
    if (msg_build(&h->saved, h, req, 0) < 0)
        return no_memory(c);
    maybe_continue(c, h);
    if (h->head.body == SWOOP_HTTP_BODY_CHUNKED) {
        swoop__http_chunked_init(&h->chunked, lim->max_body, lim->max_head);
        h->phase = PHASE_CHUNKED;
        return 0;
    }
    h->body_left = h->head.body == SWOOP_HTTP_BODY_LENGTH ? h->head.content_length : 0;
    h->phase = PHASE_BODY;
    if (h->body_left == 0)
        return upload_deliver(c, h) < 0 ? -1 : 0; /* no body: refused as truncated */
    return 0;
}

static int no_memory(swoop_conn_t *c)
{
    swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM, "http: conn %llu: no memory for a request",
                       (unsigned long long)c->id);
    swoop__conn_close(c, 1);
    return -1;
}

/* Parses (and delivers) what it can of data[0, len); see swoop_proto_t.input. */
static ssize_t input_requests(swoop_conn_t *c, http_conn_t *h, char *data, size_t len, size_t *need)
{
    const swoop_port_settings_t *ps = &c->port->eff;
    /* The target gets half the head: a long URI is a 414, a long head a 431. */
    swoop_http_limits_t lim = {.max_head = (uint32_t)ps->http_max_header_size,
                               .max_uri = (uint32_t)ps->http_max_header_size / 2,
                               .max_body = (uint64_t)ps->package_max_length};
    size_t off = 0;
    while (off < len && h->phase != PHASE_WAITING && h->phase != PHASE_DRAIN &&
           h->phase != PHASE_UPGRADED && c->state == CONN_OPEN) {
        if (h->phase == PHASE_IDLE) {
            head_release(h);
            swoop__http_head_init(&h->head, scratch_headers, HTTP_MAX_HEADERS);
            h->continue_sent = 0;
            h->expect_done = 0;
            h->phase = PHASE_HEAD;
            h->since_ms = c->last_recv_ms;
        }
        if (h->phase == PHASE_HEAD) {
            char *req = data + off;
            ssize_t n = swoop__http_parse_request(&h->head, req, len - off, &lim);
            if (n == SWOOP_HTTP_INCOMPLETE) {
                head_keep(h); /* the rest comes in a later read */
                break;
            }
            if (n < 0) {
                reply_error(c, (int)n);
                return -1;
            }
            /* Before the server's own reasons to close (below): what the client asked for. */
            h->client_done = !h->head.keep_alive;
            /* The connection's last request by http_max_requests_per_conn: closed after it. */
            if (ps->http_max_requests_per_conn > 0 &&
                h->seq + 1 >= (uint32_t)ps->http_max_requests_per_conn)
                h->head.keep_alive = 0;
            if (wants_websocket(c, h, req)) {
                const char *why = NULL;
                int refuse = websocket_check(h, req, &why);
                if (refuse) {
                    websocket_refuse(c, refuse, why);
                    return -1;
                }
                swoop__buf_clear(&h->saved);
                if (msg_build(&h->saved, h, req, 0) < 0)
                    return no_memory(c);
                http_msg_t m;
                memcpy(&m, swoop__buf_rdata(&h->saved), sizeof(m));
                m.flags |= HTTP_MSG_UPGRADE;
                m.flags &= ~HTTP_MSG_KEEP_ALIVE;
                memcpy((char *)swoop__buf_rdata(&h->saved), &m, sizeof(m));
                h->head.keep_alive = 0; /* refused: the close; accepted: no more HTTP */
                off += (size_t)n;
                h->rest = len - off;
                deliver(c, h, swoop__buf_rdata(&h->saved), swoop__buf_rlen(&h->saved));
                continue;
            }
            if (expect_check(c, h, req) < 0)
                return -1;
            int st = swoop__http_static(c, &h->head, req, h->head.keep_alive);
            if (st < 0)
                return -1;
            if (st > 0) {
                /* Answered here: the next request, or the close after the file. */
                off += (size_t)n + (size_t)h->head.content_length;
                h->rest = off < len ? len - off : 0;
                h->phase = PHASE_IDLE;
                h->since_ms = swoop__now_ms();
                if (!h->head.keep_alive) {
                    swoop__conn_close(c, 0);
                    return -1;
                }
                continue;
            }
            int ust = swoop__http_upload_begin(c, &h->head, req, &h->upload);
            if (ust)
                return upload_refused(c, h, ust);
            if (h->upload) {
                off += (size_t)n;
                h->rest = len - off;
                if (upload_start(c, h, req, &lim) < 0)
                    return -1;
                continue;
            }
            if (h->head.body == SWOOP_HTTP_BODY_CHUNKED) {
                swoop__buf_clear(&h->saved);
                if (msg_build(&h->saved, h, req, 0) < 0)
                    return no_memory(c);
                swoop__http_chunked_init(&h->chunked, lim.max_body, lim.max_head);
                maybe_continue(c, h);
                off += (size_t)n;
                h->phase = PHASE_CHUNKED;
                continue;
            }
            uint64_t body = h->head.body == SWOOP_HTTP_BODY_LENGTH ? h->head.content_length : 0;
            if (body > (uint64_t)ps->http_body_memory_max) {
                /* Large: to a file as it comes; memory holds only what one read brings. */
                swoop__buf_clear(&h->saved);
                if (msg_build(&h->saved, h, req, 0) < 0)
                    return no_memory(c);
                if (body_file_open(c, h) < 0)
                    return -1;
                maybe_continue(c, h);
                off += (size_t)n;
                h->body_left = body;
                h->phase = PHASE_BODY;
                continue;
            }
            uint64_t total = (uint64_t)n + body;
            if (total > len - off) {
                maybe_continue(c, h);
                head_keep(h);          /* parsed again (the result is kept) once the body is in */
                *need = (size_t)total; /* at most max_head + package_max_length */
                break;
            }
            swoop__buf_clear(&h->saved);
            if (msg_build(&h->saved, h, req, body) < 0)
                return no_memory(c);
            swoop__buf_append(&h->saved, req + n, (size_t)body);
            off += (size_t)total;
            h->rest = len - off;
            deliver(c, h, swoop__buf_rdata(&h->saved), swoop__buf_rlen(&h->saved));
            if (c->state == CONN_OPEN && c->proto_state == h)
                swoop__buf_shrink(&h->saved, 0, SAVED_KEEP); /* an idle keep-alive costs little */
            continue;
        }
        if (h->phase == PHASE_BODY) {
            size_t take = len - off < h->body_left ? len - off : (size_t)h->body_left;
            if (h->upload) {
                int st = swoop__http_upload_feed(c, h->upload, &h->saved, data + off, take);
                if (st)
                    return upload_refused(c, h, st);
            } else if (body_file_write(c, h, data + off, take) < 0) {
                return -1;
            }
            off += take;
            h->rest = len - off;
            h->body_left -= take;
            if (h->body_left == 0 && h->upload) {
                if (upload_deliver(c, h) < 0)
                    return -1;
            } else if (h->body_left == 0) {
                body_file_deliver(c, h, h->head.content_length);
            }
            continue;
        }
        /* PHASE_CHUNKED: every byte is given to the decoder once, then consumed. */
        size_t out = 0;
        ssize_t k = swoop__http_chunked_decode(&h->chunked, data + off, len - off, &out);
        if (k < 0 && k != SWOOP_HTTP_INCOMPLETE) {
            reply_error(c, (int)k);
            return -1;
        }
        /* Trailer bytes the decoder saw (left in place, after the data it moved): kept. */
        if (h->chunked.trailer_len &&
            swoop__buf_append(&h->trailers, data + off + h->chunked.trailer_off,
                              h->chunked.trailer_len) < 0)
            return no_memory(c);
        if (h->upload) {
            int st = out ? swoop__http_upload_feed(c, h->upload, &h->saved, data + off, out) : 0;
            if (st)
                return upload_refused(c, h, st);
            if (k == SWOOP_HTTP_INCOMPLETE) {
                off = len;
                break;
            }
            off += (size_t)k;
            h->rest = len - off;
            if (upload_deliver(c, h) < 0)
                return -1;
            continue;
        }
        if (h->body_fd >= 0) {
            if (out && body_file_write(c, h, data + off, out) < 0)
                return -1;
        } else if (out && swoop__buf_append(&h->saved, data + off, out) < 0) {
            return no_memory(c);
        }
        /* Past http_body_memory_max: what was decoded so far moves to a file, the rest follows. */
        size_t fixed_len = saved_fixed(h);
        if (h->body_fd < 0 &&
            swoop__buf_rlen(&h->saved) - fixed_len > (size_t)ps->http_body_memory_max) {
            if (body_file_open(c, h) < 0 ||
                body_file_write(c, h, swoop__buf_rdata(&h->saved) + fixed_len,
                                swoop__buf_rlen(&h->saved) - fixed_len) < 0)
                return -1;
            h->body_written = swoop__buf_rlen(&h->saved) - fixed_len;
            h->saved.len = h->saved.off + fixed_len;
        } else if (h->body_fd >= 0) {
            h->body_written += out;
        }
        if (k == SWOOP_HTTP_INCOMPLETE) {
            off = len;
            break;
        }
        off += (size_t)k;
        h->rest = len - off;
        if (h->body_fd >= 0) {
            body_file_deliver(c, h, h->body_written);
            continue;
        }
        http_msg_t m;
        char *saved = (char *)swoop__buf_rdata(&h->saved);
        memcpy(&m, saved, sizeof(m));
        size_t fixed = sizeof(m) + (size_t)m.num_headers * sizeof(swoop_http_header_t) + m.head_len;
        m.body_len = swoop__buf_rlen(&h->saved) - fixed;
        memcpy(saved, &m, sizeof(m));
        if (msg_trailers(h) < 0)
            return no_memory(c);
        deliver(c, h, swoop__buf_rdata(&h->saved), swoop__buf_rlen(&h->saved));
        if (c->state == CONN_OPEN && c->proto_state == h)
            swoop__buf_shrink(&h->saved, 0, SAVED_KEEP);
    }
    return (ssize_t)off;
}

static ssize_t input(swoop_conn_t *c, char *data, size_t len, size_t *need)
{
    http_conn_t *h = c->proto_state;
    if (h == NULL) {
        h = swoop_calloc(1, sizeof(*h));
        h->body_fd = -1;
        swoop__buf_init(&h->saved);
        swoop__buf_init(&h->trailers);
        c->proto_state = h;
    }
    if (h->phase == PHASE_WAITING || h->phase == PHASE_DRAIN || h->phase == PHASE_UPGRADED)
        return 0; /* read before the hold took effect: parsed after the response */
    h->in_input++;
    h->rest = 0;
    ssize_t off = input_requests(c, h, data, len, need);
    h->in_input--;
    h->rest = 0; /* what is left is the engine's now (c->in) */
    if (h->orphaned) {
        /* BASE: upgraded while the handler ran inside input_requests; c speaks WebSocket now. */
        body_file_drop(h);
        swoop__buf_free(&h->saved);
        swoop__buf_free(&h->trailers);
        swoop_free(h->own_headers);
        swoop_free(h);
        return off;
    }
    /* Still open (a close frees h later, not here): a head parsed is done with its slots. */
    if (c->proto_state == h && h->phase != PHASE_HEAD)
        head_release(h);
    return off;
}

/* PROCESS (or BASE outside input()): the switch, and bytes already read go to WebSocket. */
/*
 * At once, so what the worker sends right after the 101 (on_open's
 * pushes) is framed as WebSocket. Inside input() (BASE: the handler
 * answered at once) the HTTP state outlives the switch until input()
 * returns (state_free), and the loop there takes no more bytes.
 */
static void upgrade_now(swoop_conn_t *c, int reframe, uint32_t arg)
{
    if (swoop__conn_set_proto(c, SWOOP_PROTO_WS, arg) < 0) {
        swoop__conn_close(c, 1);
        return;
    }
    swoop__conn_hold(c, 0);
    if (reframe)
        swoop__conn_reframe(c); /* bytes already read go to WebSocket */
}

/* A send with reply flags was queued: a response ended. */
static void reply(swoop_conn_t *c, uint32_t flags)
{
    http_conn_t *h = c->proto_state;
    if (h == NULL || h->phase != PHASE_WAITING || !(flags & SWOOP_REPLY_END))
        return;
    if (flags & SWOOP_REPLY_UPGRADE) {
        /*
         * 101 queued: the connection speaks WebSocket from the next byte.
         * Inside input() (BASE: the handler answered at once) the switch
         * waits until input_requests has returned: it frees this state.
         */
        if (c->sess)
            atomic_store_explicit(&c->sess->proto_flags, 0, memory_order_release);
        h->phase = PHASE_UPGRADED;
        upgrade_now(c, h->in_input == 0, flags >> SWOOP_REPLY_ARG_SHIFT);
        return;
    }
    h->phase = PHASE_IDLE;
    h->since_ms = swoop__now_ms();
    body_file_drop(h); /* the handler is done with it */
    if (c->sess)
        atomic_store_explicit(&c->sess->proto_flags, 0, memory_order_release);
    /* Shutting down (the owner reads no more): this response is the connection's last. */
    if ((flags & SWOOP_REPLY_CLOSE) || !h->keep_alive || c->reactor->no_read) {
        swoop__conn_close(c, 0); /* after the response's bytes */
        return;
    }
    /*
     * A client that sends requests and does not read their answers: take no
     * more until its output drains (drained() goes on), or the responses
     * pile up to the budget.
     */
    if (swoop__conn_out_len(c) > SWOOP_PROTO_OUT_HIGH) {
        h->phase = PHASE_DRAIN;
        c->proto_drain = 1;
        return;
    }
    swoop__conn_hold(c, 0);
    /* Inside input() (BASE: the handler answered at once) its loop goes on. */
    if (h->in_input == 0)
        swoop__conn_reframe(c); /* pipelined bytes already buffered */
}

static void drained(swoop_conn_t *c)
{
    http_conn_t *h = c->proto_state;
    if (h == NULL || h->phase != PHASE_DRAIN)
        return;
    h->phase = PHASE_IDLE;
    swoop__conn_hold(c, 0);
    if (h->in_input == 0)
        swoop__conn_reframe(c);
}

static int busy(swoop_conn_t *c)
{
    http_conn_t *h = c->proto_state;
    return h != NULL && h->phase != PHASE_IDLE;
}

/*
 * The server closes c: whether the client may still be sending (the close
 * lingers then; swoop_proto_t.peer_may_send). It may when a request is not
 * read whole (an error answer, a 413, a refused upload, a 408 mid-body),
 * when bytes came behind the answered request (pipelining), or when its
 * last request did not ask for the close (keep-alive: the next request
 * may be on its way). Not: nothing ever came, the keep-alive timeout of an
 * idle client, or a Connection: close request read whole.
 */
static int peer_may_send(swoop_conn_t *c)
{
    http_conn_t *h = c->proto_state;
    if (h == NULL)
        return 0;
    if (h->phase == PHASE_HEAD || h->phase == PHASE_BODY || h->phase == PHASE_CHUNKED)
        return 1;
    if (h->phase == PHASE_UPGRADED)
        return 0;
    if (h->in_input && h->rest > 0)
        return 1;
    return !h->client_done && !h->idle_closed;
}

/*
 * Whether process `pid` is alive, asked of /proc once per pid per sweep of
 * the reactor's connections (`now` is the sweep's): every connection waiting
 * for an answer is checked, and with 10,000 of them waiting on one worker an
 * open + read + close of /proc/<pid>/stat each (66-75 us in the 2-core
 * VM) stalled the reactor thread for 0.7 s of every second. A small direct-mapped cache per
 * thread (each reactor sweeps its own connections) keyed by pid and sweep.
 */
static int taker_alive(int32_t pid, uint64_t now)
{
    static _Thread_local struct {
        int32_t pid;
        int alive;
        uint64_t now;
    } cache[16];
    unsigned slot = (unsigned)pid % 16u;
    if (cache[slot].pid != pid || cache[slot].now != now) {
        cache[slot].pid = pid;
        cache[slot].now = now;
        cache[slot].alive = swoop__tid_alive(pid);
    }
    return cache[slot].alive;
}

/*
 * PROCESS: the worker that got the request crashed: nobody will answer.
 * 503 and the close, rather than a client waiting forever.
 */
static void worker_check(swoop_conn_t *c, http_conn_t *h, uint64_t now)
{
    swoop_server_t *srv = c->reactor->srv;
    /* The process that took the request (0: still queued, its successor will take it). */
    int32_t taker = c->sess ? atomic_load(&c->sess->proto_taker) : 0;
    if (srv->mode != SWOOP_MODE_PROCESS || taker <= 0 || taker_alive(taker, now)) {
        h->dead_ticks = 0;
        return;
    }
    /*
     * An exit in order (a reload, max_request) leaves what the process did
     * not take to its successor, which answers: only a crash (a signal, or
     * a nonzero exit) loses the request.
     */
    const swoop_proc_stat_t *ps = &srv->proc_stats[h->worker];
    if (atomic_load(&ps->last_signal) == 0 && atomic_load(&ps->last_exit_code) == 0)
        return;
    /*
     * What a process wrote before it exited is read within a loop iteration:
     * a response still on its way when the death is first seen has arrived
     * by the next tick, so only a second tick in a row decides.
     */
    if (++h->dead_ticks < 2)
        return;
    uint32_t f = atomic_load(&c->sess->proto_flags);
    swoop__log_limited(SWOOP_LOG_WARNING, 0,
                       "http: conn %llu: worker %d (pid %d) died with its request: %s",
                       (unsigned long long)c->id, h->worker, (int)taker,
                       (f & HTTP_SESS_STARTED) ? "its response was cut: reset" : "503, closing");
    h->phase = PHASE_IDLE;
    if (f & HTTP_SESS_STARTED) {
        swoop__conn_close(c, 1); /* bytes of a response went out: no 503 inside its body */
        return;
    }
    owner_answer(c, 503);
}

/*
 * Timeouts, checked about once a second: a request head that takes longer
 * than http_header_timeout, or a body silent for http_body_timeout, gets a
 * 408 and the close (slowloris); a keep-alive connection idle between
 * requests for http_keepalive_timeout is closed quietly. A request waiting
 * for its response has no timeout here (a handler may answer late).
 */
static void tick(swoop_conn_t *c, uint64_t now)
{
    const swoop_port_settings_t *ps = &c->port->eff;
    http_conn_t *h = c->proto_state;
    int phase = h ? h->phase : PHASE_IDLE;
    if (phase == PHASE_WAITING) {
        worker_check(c, h, now);
        return;
    }
    if (phase == PHASE_DRAIN)
        return;
    if (phase == PHASE_IDLE && h == NULL) {
        /* Not one byte since the accept: its first request is late (slowloris). */
        if (now - c->last_recv_ms > (uint64_t)ps->http_header_timeout * 1000u)
            swoop__conn_close(c, 0);
        return;
    }
    if (phase == PHASE_IDLE) {
        if (swoop__buf_rlen(&c->in) == 0 && ps->http_keepalive_timeout > 0 &&
            now - h->since_ms > (uint64_t)ps->http_keepalive_timeout * 1000u) {
            h->idle_closed = 1;
            swoop__conn_close(c, 0);
        }
        return;
    }
    int in_body = phase == PHASE_CHUNKED || phase == PHASE_BODY || h->head.head_len > 0;
    if (in_body ? now - c->last_recv_ms > (uint64_t)ps->http_body_timeout * 1000u
                : now - h->since_ms > (uint64_t)ps->http_header_timeout * 1000u) {
        swoop__log_limited(SWOOP_LOG_INFO, 0,
                           "http: conn %llu (port %d): request %s not received in time: 408, "
                           "closing",
                           (unsigned long long)c->id, c->port->port, in_body ? "body" : "head");
        owner_answer(c, 408);
    }
}

const swoop_proto_t swoop__http_proto = {
    .tick = tick,
    .name = "http",
    .kind = SWOOP_PROTO_HTTP,
    .conn_open = conn_open,
    .conn_free = conn_free,
    .input = input,
    .reply = reply,
    .drained = drained,
    .busy = busy,
    .peer_may_send = peer_may_send,
    .message = swoop__http_message,
    .relay = swoop__http_relay,
};
