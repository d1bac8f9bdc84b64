/*
 * The worker's side of WebSocket: the upgrade of a handshake request the
 * HTTP layer hands over (on_handshake, the 101 response, on_open), the
 * messages and closes the owner delivers (on_message, on_close), and
 * pushes, closes and broadcasts from any process. An event worker sends
 * them to the connection's owner (swoop__server_proto_out); a task worker,
 * which has no route to the owners, relays them to an event worker first.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/ratelimit.h"
#include "proto/utf8.h"
#include "proto/ws_deflate.h"
#include "proto/ws_frame.h"
#include "proto/ws_handshake.h"
#include "ws/internal.h"

static swoop_ws_events_t *events_of(swoop_server_t *srv)
{
    return srv->proto_data[SWOOP_PROTO_WS];
}

/* ---- the upgrade (called by the HTTP layer for a handshake request) ---- */

/* The next comma-separated element of v[*i, len), blanks trimmed; 0 at the end. */
static int next_token(const char *v, size_t len, size_t *i, const char **tok, size_t *tl)
{
    for (;;) {
        while (*i < len && (v[*i] == ' ' || v[*i] == '\t' || v[*i] == ','))
            (*i)++;
        if (*i >= len)
            return 0;
        size_t start = *i;
        while (*i < len && v[*i] != ',')
            (*i)++;
        size_t end = *i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end > start) {
            *tok = v + start;
            *tl = end - start;
            return 1;
        }
    }
}

/* Whether some Sec-WebSocket-Protocol field of req (there may be several) lists tok exactly. */
static int offered(swoop_http_request_t *req, const char *tok, size_t tl)
{
    int n = swoop_http_header_count(req);
    for (int k = 0; k < n; k++) {
        const char *name, *value;
        if (swoop_http_header_at(req, k, &name, &value) < 0 ||
            strcasecmp(name, "Sec-WebSocket-Protocol") != 0)
            continue;
        size_t i = 0, len = strlen(value), ol;
        const char *o;
        while (next_token(value, len, &i, &o, &ol)) {
            if (ol == tl && memcmp(o, tok, tl) == 0)
                return 1;
        }
    }
    return 0;
}

/*
 * The subprotocol to accept (RFC 6455 4.2.2): the first name of the port's
 * websocket_subprotocol (one name, or several separated by commas in the
 * server's order of preference) that the client offered. Names compare
 * exactly (the client checks the answer against its offer byte for byte).
 * None (0) when the client offered none of them: a server must not answer
 * with a subprotocol the client did not offer. An answer is always one of
 * the client's own tokens, so it cannot smuggle a line break into the 101.
 */
static int subprotocol(swoop_server_t *srv, swoop_http_request_t *req, char *out, size_t cap)
{
    swoop_port_t *p = swoop__conn_port(srv, swoop_http_conn(req));
    const char *want = p ? p->eff.websocket_subprotocol : "";
    size_t i = 0, len = strlen(want), tl;
    const char *tok;
    while (next_token(want, len, &i, &tok, &tl)) {
        if (tl < cap && offered(req, tok, tl)) {
            memcpy(out, tok, tl);
            out[tl] = '\0';
            return 1;
        }
    }
    return 0;
}

/*
 * permessage-deflate: with websocket_compression on the port, the first
 * acceptable offer of every Sec-WebSocket-Extensions field (fields of the
 * same name form one list, RFC 9110 5.3). Writes the response field into
 * `field` ("" without) and returns the parameters packed for the owner (0:
 * none).
 */
static uint32_t deflate_offer(swoop_server_t *srv, swoop_http_request_t *req, char *field,
                              size_t cap)
{
    field[0] = '\0';
    swoop_port_t *p = swoop__conn_port(srv, swoop_http_conn(req));
    if (p == NULL || p->eff.websocket_compression != 1)
        return 0;
    swoop_buf_t all;
    swoop__buf_init(&all);
    int n = swoop_http_header_count(req);
    for (int i = 0; i < n; i++) {
        const char *name, *value;
        if (swoop_http_header_at(req, i, &name, &value) == 0 &&
            strcasecmp(name, "Sec-WebSocket-Extensions") == 0 &&
            (swoop__buf_append(&all, ",", 1) < 0 ||
             swoop__buf_append(&all, value, strlen(value)) < 0)) {
            swoop__buf_free(&all);
            return 0; /* no memory: the connection goes uncompressed */
        }
    }
    swoop_ws_deflate_params_t dp;
    char value[SWOOP_WS_DEFLATE_RESPONSE_MAX];
    uint32_t arg = 0;
    if (swoop__buf_rlen(&all) &&
        swoop__ws_deflate_negotiate(swoop__buf_rdata(&all), swoop__buf_rlen(&all),
                                    p->eff.websocket_compression_context_takeover, &dp, value,
                                    sizeof(value))) {
        snprintf(field, cap, "Sec-WebSocket-Extensions: %s\r\n", value);
        arg = swoop__ws_deflate_pack(&dp);
    }
    swoop__buf_free(&all);
    return arg;
}

static void upgrade(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    const swoop_ws_events_t *ev = events_of(srv);
    swoop_conn_id_t conn = swoop_http_conn(req);
    if (ev && ev->on_handshake) {
        int st = ev->on_handshake(srv, conn, req);
        if (st != 0) {
            if (st < 400 || st > 599) {
                swoop__log_limited(SWOOP_LOG_WARNING, 0,
                                   "ws: on_handshake returned %d (not 0 or 400..599): 500", st);
                st = 500;
            }
            swoop_http_status(res, st);
            swoop_http_header_set(res, "Connection", "close");
            swoop_http_end(res, NULL, 0);
            return;
        }
    }
    const char *key = swoop_http_header(req, "Sec-WebSocket-Key"); /* the owner checked it */
    char accept[SWOOP_WS_ACCEPT_LEN + 1];
    swoop__ws_accept(key ? key : "", key ? strlen(key) : 0, accept);
    char fields[SWOOP_SERVER_PATH_MAX + 128 + SWOOP_WS_DEFLATE_RESPONSE_MAX + 32];
    char ext[SWOOP_WS_DEFLATE_RESPONSE_MAX + 32];
    uint32_t arg = deflate_offer(srv, req, ext, sizeof(ext));
    char proto[SWOOP_SERVER_PATH_MAX];
    int has_proto = subprotocol(srv, req, proto, sizeof(proto));
    snprintf(fields, sizeof(fields), "Sec-WebSocket-Accept: %s\r\n%s%s%s%s", accept,
             has_proto ? "Sec-WebSocket-Protocol: " : "", has_proto ? proto : "",
             has_proto ? "\r\n" : "", ext);
    if (swoop__http_upgrade_end(res, "websocket", fields, arg) < 0)
        return;
    /* Pushes from on_open follow the 101 on the same channel: the owner has switched by then. */
    swoop_session_t *s = swoop__session_get(srv, conn);
    if (s)
        atomic_store_explicit(&s->proto_kind, SWOOP_PROTO_WS, memory_order_release);
    if (ev && ev->on_open)
        ev->on_open(srv, conn, req);
}

int swoop_ws_on(swoop_server_t *srv, const swoop_ws_events_t *events)
{
    if (srv == NULL || events == NULL)
        return SWOOP_EINVAL;
    if (srv->started)
        return SWOOP_ESTATE;
    swoop_ws_events_t *copy = events_of(srv);
    if (copy == NULL && (copy = swoop_calloc(1, sizeof(*copy))) == NULL)
        return SWOOP_ENOMEM;
    *copy = *events;
    srv->proto_data[SWOOP_PROTO_WS] = copy;
    int rc = swoop__http_enable(srv, upgrade);
    if (rc == 0)
        rc = swoop__server_set_proto(srv, SWOOP_PROTO_WS, &swoop__ws_proto, NULL);
    return rc;
}

/* ---- from the owner ---- */

void swoop__ws_message(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, char *data,
                       size_t len)
{
    (void)reactor_id;
    ws_msg_t m;
    if (len < sizeof(m) || (memcpy(&m, data, sizeof(m)), m.magic != WS_MSG_MAGIC)) {
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "ws: malformed message (%zu bytes) for conn %llu",
                           len, (unsigned long long)conn);
        return;
    }
    const swoop_ws_events_t *ev = events_of(srv);
    if (ev && ev->on_message)
        ev->on_message(srv, conn, m.opcode, data + sizeof(m), len - sizeof(m));
}

void swoop__ws_closed(swoop_server_t *srv, swoop_conn_id_t conn)
{
    const swoop_ws_events_t *ev = events_of(srv);
    if (ev == NULL || ev->on_close == NULL)
        return;
    /* Closed already (swoop__session_get says so): the slot still holds it until on_close ends. */
    swoop_session_t *s = swoop__session_at(srv, (uint32_t)(conn & SWOOP_SLOT_MASK));
    uint32_t f = s && atomic_load_explicit(&s->id, memory_order_acquire) == conn
                     ? atomic_load_explicit(&s->proto_flags, memory_order_acquire)
                     : 0;
    int code = (f & WS_SESS_CODE) ? (int)(f & WS_SESS_CODE_MASK) : SWOOP_WS_ABNORMAL;
    ev->on_close(srv, conn, code);
}

/* ---- pushes ---- */

int swoop_ws_is_websocket(swoop_server_t *srv, swoop_conn_id_t conn)
{
    swoop_session_t *s = srv ? swoop__session_get(srv, conn) : NULL;
    return s != NULL && !atomic_load(&s->closed) &&
           atomic_load_explicit(&s->proto_kind, memory_order_acquire) == SWOOP_PROTO_WS;
}

/* Scratch for what goes to an owner (header, ids, payload). */
static swoop_buf_t out_buf; /* a worker is one thread */

/* Sends header + extra + payload to the owner (conn, or owner index); a task worker relays. */
static int send_out(swoop_server_t *srv, swoop_conn_id_t conn, int owner, ws_out_t *o,
                    const void *extra, size_t el, const void *data, size_t len)
{
    swoop__buf_clear(&out_buf);
    if (swoop__buf_reserve(&out_buf, sizeof(*o) + el + len) < 0)
        return SWOOP_ENOMEM;
    o->magic = WS_OUT_MAGIC;
    swoop__buf_append(&out_buf, o, sizeof(*o));
    if (el)
        swoop__buf_append(&out_buf, extra, el);
    if (len)
        swoop__buf_append(&out_buf, data, len);
    int rc;
    if (swoop_server_is_task_worker(srv)) {
        /* Relayed whole to an event worker, which sends it on (the same call there). */
        int dst = (int)((conn & 0xffffffu) % (uint64_t)srv->worker_num);
        rc = swoop__server_relay(srv, dst, SWOOP_PROTO_WS, swoop__buf_rdata(&out_buf),
                                 swoop__buf_rlen(&out_buf));
    } else {
        rc = swoop__server_proto_out(srv, conn, owner, SWOOP_PROTO_WS, swoop__buf_rdata(&out_buf),
                                     swoop__buf_rlen(&out_buf));
    }
    swoop__buf_shrink(&out_buf, 0, 65536);
    return rc;
}

static int payload_check(int opcode, const void *data, size_t len)
{
    if (data == NULL && len)
        return SWOOP_EINVAL;
    if (opcode == SWOOP_WS_PING || opcode == SWOOP_WS_PONG)
        return len <= SWOOP_WS_CONTROL_MAX ? 0 : SWOOP_EINVAL;
    if (opcode == SWOOP_WS_BINARY)
        return 0;
    if (opcode == SWOOP_WS_TEXT) {
        if (swoop__utf8_valid(data, len))
            return 0;
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "ws: a text message that is not UTF-8 refused");
    }
    return SWOOP_EINVAL;
}

int swoop_ws_push(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                  size_t len)
{
    if (srv == NULL || payload_check(opcode, data, len) < 0)
        return SWOOP_EINVAL;
    if (srv->worker_id < 0)
        return SWOOP_ESTATE;
    if (!swoop_ws_is_websocket(srv, conn))
        return SWOOP_ECLOSED;
    ws_out_t o = {.op = WS_OUT_PUSH, .opcode = (uint8_t)opcode, .conn = conn};
    return send_out(srv, conn, -1, &o, NULL, 0, data, len);
}

int swoop_ws_close(swoop_server_t *srv, swoop_conn_id_t conn, int code, const char *reason)
{
    size_t rl = reason ? strlen(reason) : 0;
    if (srv == NULL || !swoop__ws_close_code_valid(code) || rl > 123 ||
        (rl && !swoop__utf8_valid(reason, rl)))
        return SWOOP_EINVAL;
    if (srv->worker_id < 0)
        return SWOOP_ESTATE;
    if (!swoop_ws_is_websocket(srv, conn))
        return SWOOP_ECLOSED;
    ws_out_t o = {.op = WS_OUT_CLOSE, .code = (uint16_t)code, .conn = conn};
    return send_out(srv, conn, -1, &o, NULL, 0, reason, rl);
}

int swoop_ws_broadcast(swoop_server_t *srv, const swoop_conn_id_t *conns, size_t n, int opcode,
                       const void *data, size_t len)
{
    if (srv == NULL || (opcode != SWOOP_WS_TEXT && opcode != SWOOP_WS_BINARY) ||
        payload_check(opcode, data, len) < 0 || (conns == NULL && n) || n > UINT32_MAX)
        return SWOOP_EINVAL;
    if (srv->worker_id < 0)
        return SWOOP_ESTATE;
    ws_out_t o = {.op = WS_OUT_BROADCAST, .opcode = (uint8_t)opcode};
    if (swoop_server_is_task_worker(srv)) {
        o.nconns = (uint32_t)n;
        int rc = send_out(srv, 0, -1, &o, conns, n * sizeof(*conns), data, len);
        return rc < 0 ? rc : (int)n;
    }
    int owners = swoop__server_owner_count(srv);
    if (conns == NULL) {
        /* Every owner frames it once for all of its WebSocket connections. */
        for (int w = 0; w < owners; w++) {
            o.nconns = 0;
            int rc = send_out(srv, 0, w, &o, NULL, 0, data, len);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    /* One message per owner with the ids it holds. */
    uint64_t *ids = swoop_malloc((n ? n : 1) * sizeof(*ids));
    if (ids == NULL)
        return SWOOP_ENOMEM;
    int sent = 0, rc = 0;
    for (int w = 0; w < owners && rc >= 0; w++) {
        uint32_t k = 0;
        for (size_t i = 0; i < n; i++) {
            swoop_session_t *s = swoop__session_get(srv, conns[i]);
            if (s && s->reactor_id == w && swoop_ws_is_websocket(srv, conns[i]))
                ids[k++] = conns[i];
        }
        if (k == 0)
            continue;
        o.nconns = k;
        rc = send_out(srv, 0, w, &o, ids, k * sizeof(*ids), data, len);
        sent += (int)k;
    }
    swoop_free(ids);
    return rc < 0 ? rc : sent;
}

/* An event worker: a task worker's push, close or broadcast, sent on to the owners. */
void swoop__ws_relay(swoop_server_t *srv, char *data, size_t len)
{
    ws_out_t o;
    if (len < sizeof(o) || (memcpy(&o, data, sizeof(o)), o.magic != WS_OUT_MAGIC))
        return;
    const char *p = data + sizeof(o);
    size_t rest = len - sizeof(o);
    int rc = 0;
    if (o.op == WS_OUT_PUSH) {
        rc = swoop_ws_push(srv, o.conn, o.opcode, p, rest);
    } else if (o.op == WS_OUT_CLOSE) {
        char reason[124];
        size_t rl = rest < sizeof(reason) ? rest : sizeof(reason) - 1;
        memcpy(reason, p, rl);
        reason[rl] = '\0';
        rc = swoop_ws_close(srv, o.conn, o.code, reason);
    } else if (o.op == WS_OUT_BROADCAST) {
        size_t ids = (size_t)o.nconns * sizeof(uint64_t);
        if (rest < ids)
            return;
        uint64_t *list = NULL;
        if (o.nconns) {
            list = swoop_malloc(ids);
            if (list == NULL)
                return;
            memcpy(list, p, ids);
        }
        rc = swoop_ws_broadcast(srv, list, o.nconns, o.opcode, p + ids, rest - ids);
        swoop_free(list);
    }
    if (rc < 0 && rc != SWOOP_ECLOSED)
        swoop__log_limited(SWOOP_LOG_WARNING, rc, "ws: a task worker's send failed here");
}
