/*
 * The owner's side of a WebSocket connection (PROCESS: a reactor thread;
 * BASE: the worker that owns it). The HTTP layer switches the connection
 * here once the 101 response is queued. Every rule of the frame decoder is
 * applied before anything reaches a worker: a frame that breaks one gets a
 * close frame with its code (1002, 1007, 1009) and the connection closes
 * after it is written. Pings are answered here; a close frame from the
 * client is echoed and the connection closes; a close the server began
 * waits WS_CLOSE_TIMEOUT_MS for the client's. Workers' pushes and
 * broadcasts arrive through the out hook and are framed here, once per
 * broadcast for all of this owner's connections, and bounded by the
 * port's websocket_output_high_water and policy. With permessage-deflate
 * (deflate.c) compressed messages are inflated here, under the message
 * limit, before their UTF-8 is checked; pushes and broadcasts of at least
 * websocket_compression_min_length bytes go out compressed (a broadcast
 * compressed once per window size for all of the owner's connections).
 */
#include <string.h>

#include "base/buf.h"
#include "base/ratelimit.h"
#include "proto/utf8.h"
#include "proto/ws_deflate.h"
#include "proto/ws_frame.h"
#include "ws/internal.h"

typedef struct ws_conn_s {
    swoop_ws_decoder_t dec;
    swoop_buf_t msg;       /* the data message being assembled: a ws_msg_t, then its payload */
    ws_deflate_t *z;       /* permessage-deflate was agreed (NULL: not) */
    swoop_utf8_t utf8;     /* a compressed text message's inflated bytes so far */
    int closing;           /* a close frame went out: the client's is awaited */
    int close_received;    /* the client's close frame came: nothing more is read */
    uint64_t close_by_ms;  /* closing: when to give up waiting */
    uint64_t ping_sent_ms; /* websocket_ping_interval: the last ping, 0 none outstanding */
} ws_conn_t;

static void conn_open(swoop_conn_t *c)
{
    ws_conn_t *w = swoop_calloc(1, sizeof(*w));
    if (w == NULL) {
        swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM, "ws: conn %llu: no memory",
                           (unsigned long long)c->id);
        swoop__conn_close(c, 1);
        return;
    }
    const swoop_port_settings_t *ps = &c->port->eff;
    swoop__buf_init(&w->msg);
    c->proto_state = w;
    if (c->proto_arg) {
        /* The 101 promised compression: without its state the client cannot be understood. */
        w->z = swoop__ws_deflate_new(c->proto_arg);
        if (w->z == NULL) {
            swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM, "ws: conn %llu: no memory",
                               (unsigned long long)c->id);
            swoop__conn_close(c, 1);
            return;
        }
    }
    swoop__ws_decoder_init(&w->dec, (uint64_t)ps->websocket_max_message_size, 1, w->z != NULL);
    if (c->sess)
        atomic_store_explicit(&c->sess->proto_flags, 0, memory_order_release);
}

static void conn_free(swoop_conn_t *c)
{
    ws_conn_t *w = c->proto_state;
    if (w == NULL)
        return;
    swoop__buf_free(&w->msg);
    swoop__ws_deflate_free(w->z);
    swoop_free(w);
    c->proto_state = NULL;
}

/* The close code on_close reports: the first one known wins. */
static void note_code(swoop_conn_t *c, int code)
{
    if (c->sess == NULL)
        return;
    uint32_t f = atomic_load_explicit(&c->sess->proto_flags, memory_order_relaxed);
    if (!(f & WS_SESS_CODE))
        atomic_store_explicit(&c->sess->proto_flags, WS_SESS_CODE | ((uint32_t)code & 0xffffu),
                              memory_order_release);
}

/* One frame (head and payload) in one send. 0, or a send error (c may be closing). */
static int send_frame_rsv(swoop_conn_t *c, int rsv1, int opcode, const void *data, size_t len)
{
    uint8_t head[SWOOP_WS_HEAD_MAX];
    size_t hl = swoop__ws_frame_head(head, 1, rsv1, opcode, len, NULL);
    if (len <= 125) {
        uint8_t small[SWOOP_WS_HEAD_MAX + 125];
        memcpy(small, head, hl);
        if (len)
            memcpy(small + hl, data, len);
        return swoop__conn_send(c, small, hl + len, 0);
    }
    int rc = swoop__conn_send(c, head, hl, 0);
    return rc == 0 ? swoop__conn_send(c, data, len, 0) : rc;
}

static int send_frame(swoop_conn_t *c, int opcode, const void *data, size_t len)
{
    return send_frame_rsv(c, 0, opcode, data, len);
}

/*
 * A close frame with code (and reason); 1005 sends an empty one. Outside
 * the connection's own callbacks (tick, out) a failed send may have freed
 * c: the caller looks it up again (still_open).
 */
static int send_close(swoop_conn_t *c, int code, const char *reason, size_t rl)
{
    uint8_t p[125];
    size_t n = 0;
    if (code != SWOOP_WS_CODE_NO_STATUS) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        n = 2;
        if (rl > sizeof(p) - 2)
            rl = sizeof(p) - 2;
        if (rl)
            memcpy(p + 2, reason, rl);
        n += rl;
    }
    return send_frame(c, SWOOP_WS_OP_CLOSE, p, n);
}

/* c after a send that failed (c may be gone), or NULL. */
static swoop_conn_t *still_open(swoop_reactor_t *r, swoop_conn_id_t id)
{
    swoop_conn_t *c = swoop__reactor_conn(r, id);
    return c && c->state == CONN_OPEN && c->proto == &swoop__ws_proto ? c : NULL;
}

/* The client broke a rule: the close frame with its code, then the close (after the bytes). */
static void fail(swoop_conn_t *c, int code, const char *why)
{
    swoop__log_limited(SWOOP_LOG_INFO, 0, "ws: conn %llu (port %d): %s: closing with %d",
                       (unsigned long long)c->id, c->port->port, why, code);
    note_code(c, code);
    ws_conn_t *w = c->proto_state;
    if (w && !w->closing)
        send_close(c, code, NULL, 0);
    swoop__conn_close(c, 0);
}

/* A whole message (or a control frame the port delivers) to the worker. */
static void deliver(swoop_conn_t *c, ws_conn_t *w, int opcode, const void *data, size_t len)
{
    ws_msg_t m = {.magic = WS_MSG_MAGIC, .opcode = (uint8_t)opcode};
    if (data) {
        swoop__buf_clear(&w->msg);
        if (swoop__buf_reserve(&w->msg, sizeof(m) + len) < 0) {
            fail(c, 1011, "no memory for a message");
            return;
        }
        swoop__buf_append(&w->msg, &m, sizeof(m));
        swoop__buf_append(&w->msg, data, len);
    } else {
        memcpy((char *)swoop__buf_rdata(&w->msg), &m, sizeof(m));
    }
    atomic_fetch_add_explicit(&c->reactor->cnt->ws_messages_in, 1, memory_order_relaxed);
    swoop__conn_deliver(c, swoop__buf_rdata(&w->msg), swoop__buf_rlen(&w->msg));
    if (c->state == CONN_OPEN && c->proto_state == w) {
        swoop__buf_clear(&w->msg);
        swoop__buf_shrink(&w->msg, 0, 65536); /* an idle connection keeps no big message */
    }
}

static void on_control(swoop_conn_t *c, ws_conn_t *w, const swoop_ws_event_t *ev)
{
    const swoop_port_settings_t *ps = &c->port->eff;
    switch (ev->opcode) {
    case SWOOP_WS_OP_PING:
        send_frame(c, SWOOP_WS_OP_PONG, ev->data, ev->len);
        if (ps->open_websocket_ping_frame && c->state == CONN_OPEN)
            deliver(c, w, SWOOP_WS_OP_PING, ev->data, ev->len);
        break;
    case SWOOP_WS_OP_PONG:
        w->ping_sent_ms = 0;
        if (ps->open_websocket_pong_frame)
            deliver(c, w, SWOOP_WS_OP_PONG, ev->data, ev->len);
        break;
    case SWOOP_WS_OP_CLOSE:
        w->close_received = 1;
        note_code(c, ev->code);
        if (ps->open_websocket_close_frame)
            deliver(c, w, SWOOP_WS_OP_CLOSE, ev->data, ev->len);
        if (c->state != CONN_OPEN)
            return;
        /* The client began: echo its code (RFC 6455 5.5.1); we began: the handshake is done. */
        if (!w->closing)
            send_close(c, ev->code, NULL, 0);
        swoop__conn_close(c, 0);
        break;
    }
}

/*
 * A piece of a compressed message: inflated onto the message, whose
 * payload may not pass websocket_max_message_size (1009: the output stops
 * there), then its text checked as UTF-8 (1007), failing at the first bad
 * byte as for an uncompressed message. 0, or -1 when c failed.
 */
static int inflate_piece(swoop_conn_t *c, ws_conn_t *w, const swoop_ws_event_t *ev)
{
    uint64_t limit = (uint64_t)c->port->eff.websocket_max_message_size;
    size_t max =
        limit && limit < SIZE_MAX - sizeof(ws_msg_t) ? sizeof(ws_msg_t) + (size_t)limit : SIZE_MAX;
    size_t before = swoop__buf_rlen(&w->msg);
    const char *why = NULL;
    int code = swoop__ws_inflate(w->z, &w->msg, max, ev->data, ev->len, ev->fin, &why);
    if (code) {
        fail(c, code, why);
        return -1;
    }
    if (ev->opcode != SWOOP_WS_OP_TEXT)
        return 0;
    const uint8_t *p = (const uint8_t *)swoop__buf_rdata(&w->msg) + before;
    if (swoop__utf8_feed(&w->utf8, p, swoop__buf_rlen(&w->msg) - before) < 0) {
        fail(c, SWOOP_WS_CODE_INVALID, "text message is not UTF-8");
        return -1;
    }
    if (ev->fin && !swoop__utf8_complete(&w->utf8)) {
        fail(c, SWOOP_WS_CODE_INVALID, "text message ends inside a character");
        return -1;
    }
    return 0;
}

static ssize_t input(swoop_conn_t *c, char *data, size_t len, size_t *need)
{
    ws_conn_t *w = c->proto_state;
    *need = 0;
    if (w == NULL)
        return -1;
    size_t off = 0;
    while (off < len && c->state == CONN_OPEN && c->proto_state == w) {
        if (w->close_received)
            return (ssize_t)len; /* after the close frame: ignored (RFC 6455 5.5.1) */
        swoop_ws_event_t ev;
        size_t n = swoop__ws_decode(&w->dec, (uint8_t *)data + off, len - off, &ev);
        off += n;
        switch (ev.type) {
        case SWOOP_WS_EV_NONE:
            break;
        case SWOOP_WS_EV_DATA:
            if (ev.first) {
                swoop__buf_clear(&w->msg);
                ws_msg_t m = {0};
                if (swoop__buf_append(&w->msg, &m, sizeof(m)) < 0) {
                    fail(c, 1011, "no memory for a message");
                    return -1;
                }
                swoop__utf8_init(&w->utf8);
            }
            if (ev.compressed) {
                if (inflate_piece(c, w, &ev) < 0)
                    return -1;
            } else if (ev.len && swoop__buf_append(&w->msg, ev.data, ev.len) < 0) {
                fail(c, 1011, "no memory for a message");
                return -1;
            }
            if (ev.fin && !w->closing)
                deliver(c, w, ev.opcode, NULL, 0);
            break;
        case SWOOP_WS_EV_CONTROL:
            on_control(c, w, &ev);
            break;
        case SWOOP_WS_EV_ERROR:
            fail(c, ev.code, ev.reason);
            return -1;
        }
    }
    if (c->state != CONN_OPEN || c->proto_state != w)
        return -1;
    return (ssize_t)off;
}

static void tick(swoop_conn_t *c, uint64_t now)
{
    ws_conn_t *w = c->proto_state;
    if (w == NULL)
        return;
    if (w->closing) {
        if (now >= w->close_by_ms)
            swoop__conn_close(c, 0); /* the client never answered our close frame */
        return;
    }
    int interval = c->port->eff.websocket_ping_interval;
    if (interval <= 0)
        return;
    if (c->paused || c->proto_hold || c->reactor->no_read) {
        /* The owner does not read it (paused, worker queue full, drain): its silence is ours. */
        w->ping_sent_ms = 0;
        return;
    }
    uint64_t ms = (uint64_t)interval * 1000u;
    /* Any frame from the client since the ping counts, not only its pong. */
    if (w->ping_sent_ms && c->last_recv_ms >= w->ping_sent_ms)
        w->ping_sent_ms = 0;
    if (w->ping_sent_ms && now - w->ping_sent_ms >= ms) {
        /*
         * Failing the connection (RFC 6455 7.1.7): a close frame with a code
         * first (1011, as other servers do for a keepalive timeout), then the
         * close without waiting for an answer from a client that gives none.
         */
        swoop__log_limited(SWOOP_LOG_INFO, 0, "ws: conn %llu: no answer to a ping in %d s: closing",
                           (unsigned long long)c->id, interval);
        note_code(c, SWOOP_WS_INTERNAL_ERROR);
        swoop_reactor_t *r = c->reactor;
        swoop_conn_id_t id = c->id;
        if (send_close(c, SWOOP_WS_INTERNAL_ERROR, "ping timeout", 12) < 0 &&
            (c = still_open(r, id)) == NULL)
            return;
        swoop__conn_close(c, 0);
        return;
    }
    if (!w->ping_sent_ms && now - c->last_recv_ms >= ms) {
        send_frame(c, SWOOP_WS_OP_PING, NULL, 0);
        w->ping_sent_ms = now;
    }
}

/*
 * Shutdown, or a retiring BASE worker: the close frame 1001 (going away,
 * RFC 6455 7.4.1). While the owner still reads (`wait`), the client's
 * answer completes the handshake and closes c (tick gives up after
 * WS_CLOSE_TIMEOUT_MS, the worker's max_wait_time deadline sooner); at
 * shutdown nothing is read any more and the caller closes c after it.
 */
static int going_away(swoop_conn_t *c, int wait)
{
    ws_conn_t *w = c->proto_state;
    if (w == NULL || w->close_received)
        return 0;
    if (!w->closing) {
        note_code(c, SWOOP_WS_GOING_AWAY);
        swoop_reactor_t *r = c->reactor;
        swoop_conn_id_t id = c->id;
        if (send_close(c, SWOOP_WS_GOING_AWAY, NULL, 0) < 0 && still_open(r, id) == NULL)
            return wait; /* gone with the send: nothing left to close */
        w->closing = 1;
        w->close_by_ms = swoop__now_ms() + WS_CLOSE_TIMEOUT_MS;
    }
    return wait;
}

/*
 * The server closes c: the client may still send frames until its close
 * frame came (it answers ours, or began), so only then is the close not
 * lingering (swoop_proto_t.peer_may_send).
 */
static int peer_may_send(swoop_conn_t *c)
{
    ws_conn_t *w = c->proto_state;
    return w != NULL && !w->close_received;
}

/* Above the port's high-water mark: the policy. 1 when the frame may go. */
static int room_for(swoop_conn_t *c, size_t len)
{
    const swoop_port_settings_t *ps = &c->port->eff;
    size_t queued = swoop__conn_out_len(c);
    if (queued + len <= (uint64_t)ps->websocket_output_high_water || queued == 0)
        return 1;
    swoop_srv_counter_t *cnt = c->reactor->cnt;
    if (ps->websocket_output_policy == 1) {
        atomic_fetch_add_explicit(&cnt->ws_dropped, 1, memory_order_relaxed);
        return 0;
    }
    atomic_fetch_add_explicit(&cnt->ws_slow_closed, 1, memory_order_relaxed);
    swoop__log_limited(SWOOP_LOG_WARNING, 0,
                       "ws: conn %llu: %zu bytes wait for a client that does not read "
                       "(websocket_output_high_water): closing it",
                       (unsigned long long)c->id, queued);
    note_code(c, SWOOP_WS_POLICY);
    swoop__conn_close(c, 1);
    return 0;
}

#define WS_BITS_N (SWOOP_WS_DEFLATE_BITS_MAX - SWOOP_WS_DEFLATE_BITS_MIN + 1)

/* A broadcast in one owner: the frame, and its compressed frames by window size (built once). */
typedef struct bcast_s {
    swoop_reactor_t *r;
    int opcode;
    const void *payload;
    size_t plen;
    uint8_t *frame;
    size_t len;
    uint8_t *zframe[WS_BITS_N];
    size_t zlen[WS_BITS_N];
    uint8_t ztried[WS_BITS_N];
    /* the connections picked, by frame: [0] the plain one, [1 + i] zframe[i] */
    swoop_conn_t **list;
    uint8_t *variant;
    size_t n;
    size_t count[1 + WS_BITS_N];
} bcast_t;

/* The compressed frame for clients of window `bits` (NULL: none smaller, or no memory). */
static const uint8_t *bcast_zframe(bcast_t *b, int bits, size_t *len)
{
    int i = bits - SWOOP_WS_DEFLATE_BITS_MIN;
    if (!b->ztried[i]) {
        b->ztried[i] = 1;
        const uint8_t *p;
        size_t n;
        if (swoop__ws_deflate_shared(b->r, bits, b->payload, b->plen, &p, &n)) {
            uint8_t head[SWOOP_WS_HEAD_MAX];
            size_t hl = swoop__ws_frame_head(head, 1, 1, b->opcode, n, NULL);
            b->zframe[i] = swoop_try_malloc(hl + n);
            if (b->zframe[i]) {
                memcpy(b->zframe[i], head, hl);
                memcpy(b->zframe[i] + hl, p, n);
                b->zlen[i] = hl + n;
            }
        }
        swoop__ws_deflate_scratch_done(b->r);
    }
    *len = b->zlen[i];
    return b->zframe[i];
}

/*
 * Whether c takes the broadcast, and in which frame: the compressed one of
 * its window when it agreed to compression and the message is long enough,
 * else the plain one. The output policy may close c here.
 */
static void bcast_pick(swoop_conn_t *c, void *arg)
{
    bcast_t *b = arg;
    ws_conn_t *w = c->proto_state;
    if (c->proto != &swoop__ws_proto || w == NULL || w->closing)
        return;
    int v = 0;
    size_t fl = b->len;
    if (w->z && b->plen >= (uint64_t)c->port->eff.websocket_compression_min_length) {
        int bits = swoop__ws_deflate_bits(w->z);
        size_t zl;
        if (bcast_zframe(b, bits, &zl) != NULL) {
            v = 1 + bits - SWOOP_WS_DEFLATE_BITS_MIN;
            fl = zl;
        }
    }
    if (!room_for(c, fl))
        return;
    if (v)
        swoop__ws_deflate_unsync(w->z); /* the client's window gets bytes our stream did not see */
    b->list[b->n] = c;
    b->variant[b->n++] = (uint8_t)v;
    b->count[v]++;
}

/*
 * A broadcast in this owner: framed (and compressed, per window size) once,
 * then each frame goes to its connections in one pass
 * (swoop__conn_send_many: one io_uring submission for the lot rather than
 * a send() each).
 */
static void broadcast(swoop_reactor_t *r, const ws_out_t *o, const char *ids, const char *payload,
                      size_t plen)
{
    uint8_t head[SWOOP_WS_HEAD_MAX];
    size_t hl = swoop__ws_frame_head(head, 1, 0, o->opcode, plen, NULL);
    size_t most = o->nconns ? o->nconns : (size_t)r->nconns;
    bcast_t b = {.r = r, .opcode = o->opcode, .payload = payload, .plen = plen, .len = hl + plen};
    b.frame = swoop_try_malloc(hl + plen);
    b.list = swoop_try_malloc((most ? most : 1) * sizeof(*b.list));
    b.variant = swoop_try_malloc(most ? most : 1);
    swoop_conn_t **batch = swoop__reactor_batch(r, most);
    if (b.frame == NULL || b.list == NULL || b.variant == NULL || batch == NULL) {
        swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM,
                           "ws: no memory for a broadcast of %zu bytes: dropped", plen);
        goto done;
    }
    memcpy(b.frame, head, hl);
    memcpy(b.frame + hl, payload, plen);
    if (o->nconns == 0) {
        swoop__reactor_foreach(r, bcast_pick, &b);
    } else {
        for (uint32_t i = 0; i < o->nconns; i++) {
            uint64_t id;
            memcpy(&id, ids + i * sizeof(id), sizeof(id));
            swoop_conn_t *c = swoop__reactor_conn(r, id);
            if (c && c->state == CONN_OPEN)
                bcast_pick(c, &b);
        }
    }
    /* Nothing was written while picking: no connection in the list has closed since. */
    for (int v = 0; v <= WS_BITS_N; v++) {
        if (b.count[v] == 0)
            continue;
        size_t k = 0;
        for (size_t i = 0; i < b.n; i++) {
            if (b.variant[i] == v)
                batch[k++] = b.list[i];
        }
        if (v == 0)
            swoop__conn_send_many(r, batch, k, b.frame, b.len);
        else
            swoop__conn_send_many(r, batch, k, b.zframe[v - 1], b.zlen[v - 1]);
    }
done:
    swoop_free(b.frame);
    swoop_free(b.list);
    swoop_free(b.variant);
    for (int i = 0; i < WS_BITS_N; i++)
        swoop_free(b.zframe[i]);
}

/* A push, close or broadcast from a worker (swoop__server_proto_out). */
static void out(swoop_reactor_t *r, swoop_conn_id_t conn, const char *data, size_t len)
{
    ws_out_t o;
    if (len < sizeof(o))
        return;
    memcpy(&o, data, sizeof(o));
    if (o.magic != WS_OUT_MAGIC)
        return;
    data += sizeof(o);
    len -= sizeof(o);
    if (o.op == WS_OUT_BROADCAST) {
        size_t ids = (size_t)o.nconns * sizeof(uint64_t);
        if (len >= ids)
            broadcast(r, &o, data, data + ids, len - ids);
        return;
    }
    swoop_conn_t *c = swoop__reactor_conn(r, conn);
    if (c == NULL || c->state != CONN_OPEN || c->proto != &swoop__ws_proto)
        return; /* gone meanwhile (or not upgraded yet: the push came before the 101) */
    ws_conn_t *w = c->proto_state;
    if (w == NULL || w->closing)
        return;
    if (o.op == WS_OUT_PUSH) {
        const uint8_t *p = (const uint8_t *)data;
        size_t n = len;
        int z = w->z && (o.opcode == SWOOP_WS_OP_TEXT || o.opcode == SWOOP_WS_OP_BINARY) &&
                len >= (uint64_t)c->port->eff.websocket_compression_min_length &&
                swoop__ws_deflate_msg(r, w->z, data, len, &p, &n);
        if (room_for(c, n + SWOOP_WS_HEAD_MAX))
            send_frame_rsv(c, z, o.opcode, p, n);
        else if (z && still_open(r, conn) != NULL)
            swoop__ws_deflate_unsync(w->z); /* dropped: the client never sees what we compressed */
        if (z)
            swoop__ws_deflate_scratch_done(r);
    } else if (o.op == WS_OUT_CLOSE) {
        note_code(c, o.code);
        if (send_close(c, o.code, data, len) < 0 && still_open(r, conn) == NULL)
            return; /* the failed send closed (BASE: freed) c */
        w->closing = 1;
        w->close_by_ms = swoop__now_ms() + WS_CLOSE_TIMEOUT_MS;
    }
}

const swoop_proto_t swoop__ws_proto = {
    .name = "websocket",
    .kind = SWOOP_PROTO_WS,
    .conn_open = conn_open,
    .conn_free = conn_free,
    .input = input,
    .tick = tick,
    .going_away = going_away,
    .peer_may_send = peer_may_send,
    .out = out,
    .message = swoop__ws_message,
    .closed = swoop__ws_closed,
    .relay = swoop__ws_relay,
    .owner_free = swoop__ws_deflate_owner_free,
};
