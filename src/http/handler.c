/*
 * The worker's side of HTTP: a request message from the connection owner
 * (internal.h, http_msg_t) becomes a swoop_http_request_t whose strings
 * point into the message (each span is NUL-terminated in place: the byte
 * after it is a delimiter no other span needs), the user's handler runs,
 * and the response is serialised here: the status line, Date, the user's
 * fields, Content-Length or chunked framing, and the body, sent with
 * swoop_server_send's route; the last send carries SWOOP_REPLY_END so the
 * owner reads the connection's next request (or closes it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/ratelimit.h"
#include "http/internal.h"

/*
 * Responses are assembled here, one at a time (a worker is one thread):
 * reused, so a response costs no allocation; trimmed after a big one.
 */
static swoop_buf_t out_buf;

static swoop_buf_t *out_begin(void)
{
    swoop__buf_clear(&out_buf);
    return &out_buf;
}

static void out_done(void)
{
    swoop__buf_shrink(&out_buf, 0, 65536);
}

/* Compressed body bytes (compress.c) on their way into out_buf; reused the same way. */
static swoop_buf_t z_buf;

struct swoop_http_request_s {
    swoop_server_t *srv;
    swoop_conn_id_t conn;
    int version_minor;
    int num_headers;
    const char *method, *path, *query;
    const char *body;
    size_t body_len;
    uint32_t seq;
    uint32_t queued_us; /* the owner's stamp (http_msg_t); 0: no metrics, no access log */
    char
        body_path[SWOOP_SERVER_PATH_MAX + 32]; /* a body in a file: mapped while the handler runs */
    void *body_map;
    swoop_addr_t peer; /* taken when the request arrived: a close frees the session */
    const char *parts; /* multipart/form-data: the parts' entries (files.c), else NULL */
    size_t parts_len;
    const char
        *trailers; /* a chunked body's trailer fields: name and value pairs, each NUL-ended */
    size_t trailers_len;
    int num_trailers;
    const char *names[HTTP_MAX_HEADERS];
    const char *values[HTTP_MAX_HEADERS];
};

struct swoop_http_response_s {
    swoop_server_t *srv;
    swoop_conn_id_t conn;
    int status;
    int version_minor;
    int keep_alive; /* the request allows another one on the connection */
    int head_only;  /* HEAD: no body bytes */
    int started;    /* the head was sent (streaming) */
    int chunked;    /* streaming with chunked framing (else until the close) */
    int ended;
    int close; /* the connection closes after this response */
    int detached;
    uint32_t seq;                    /* the request's number on its connection */
    const swoop_http_request_t *req; /* for the access log; NULL from swoop_http_respond */
    uint64_t bytes;                  /* sent so far, head included */
    int sent_any;                    /* bytes went out (HTTP_SESS_STARTED is set) */
    int server_set;                  /* the user set a Server field */
    int access_fd;                   /* the port's access log, -1 */
    int access_format;               /* its SWOOP_ACCESS_LOG_* format */
    swoop_addr_t peer;               /* for it: taken at the start (a close frees the session) */
    swoop_buf_t fields;
    swoop_buf_t trailers;    /* swoop_http_trailer_set: sent after the last chunk */
    int accept;              /* swoop_http_respond: the coding the request accepts (no req) */
    int coding;              /* the body's Content-Encoding (SWOOP_HTTP_CODING_*), 0 identity */
    swoop_http_zstream_t *z; /* a streamed compressed body's deflate stream */
    int timed;               /* metrics: the latency is observed at the end (queued_us, port) */
    int port;                /* the request's port index */
    uint32_t queued_us;      /* the owner's stamp of the request */
};

/* The WebSocket layer's upgrade (swoop__http_enable): one implementation per library. */
static swoop_http_upgrade_fn upgrade_fn;

int swoop__http_enable(swoop_server_t *srv, swoop_http_upgrade_fn upgrade)
{
    upgrade_fn = upgrade;
    if (srv->protos[SWOOP_PROTO_HTTP])
        return 0; /* swoop_http_on_request came first: its handler stays */
    return swoop__server_set_proto(srv, SWOOP_PROTO_HTTP, &swoop__http_proto, NULL);
}

int swoop_http_on_request(swoop_server_t *srv, swoop_http_handler_t handler)
{
    if (srv == NULL || handler == NULL)
        return SWOOP_EINVAL;
    return swoop__server_set_proto(srv, SWOOP_PROTO_HTTP, &swoop__http_proto,
                                   (void (*)(void))handler);
}

int swoop_http_on_expect(swoop_server_t *srv, swoop_http_expect_fn fn)
{
    if (srv == NULL)
        return SWOOP_EINVAL;
    if (srv->started)
        return SWOOP_ESTATE;
    srv->proto_hook[SWOOP_PROTO_HTTP] = (void (*)(void))fn;
    return 0;
}

/* ---- request ---- */

/* Terminates span sp of head in place and returns it ("" for an empty one). */
static const char *span_str(char *head, swoop_http_span_t sp, const char *empty)
{
    if (sp.len == 0)
        return empty;
    head[sp.off + sp.len] = '\0';
    return head + sp.off;
}

const char *swoop_http_method(const swoop_http_request_t *req)
{
    return req ? req->method : NULL;
}

const char *swoop_http_path(const swoop_http_request_t *req)
{
    return req ? req->path : NULL;
}

const char *swoop_http_query(const swoop_http_request_t *req)
{
    return req ? req->query : NULL;
}

int swoop_http_version(const swoop_http_request_t *req)
{
    return req ? req->version_minor : SWOOP_EINVAL;
}

const char *swoop_http_header(const swoop_http_request_t *req, const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    for (int i = 0; i < req->num_headers; i++) {
        if (strcasecmp(req->names[i], name) == 0)
            return req->values[i];
    }
    return NULL;
}

int swoop_http_header_count(const swoop_http_request_t *req)
{
    return req ? req->num_headers : 0;
}

int swoop_http_header_at(const swoop_http_request_t *req, int i, const char **name,
                         const char **value)
{
    if (req == NULL || i < 0 || i >= req->num_headers || name == NULL || value == NULL)
        return SWOOP_EINVAL;
    *name = req->names[i];
    *value = req->values[i];
    return 0;
}

const void *swoop_http_body(const swoop_http_request_t *req, size_t *len)
{
    if (req == NULL) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = req->body_len;
    return req->body;
}

int swoop_http_trailer_count(const swoop_http_request_t *req)
{
    return req ? req->num_trailers : 0;
}

int swoop_http_trailer_at(const swoop_http_request_t *req, int i, const char **name,
                          const char **value)
{
    if (req == NULL || i < 0 || i >= req->num_trailers || name == NULL || value == NULL)
        return SWOOP_EINVAL;
    /* A walk over the pairs: trailers are few, and this keeps the message as it came. */
    const char *p = req->trailers;
    for (int k = 0; k < i; k++) {
        p += strlen(p) + 1;
        p += strlen(p) + 1;
    }
    *name = p;
    *value = p + strlen(p) + 1;
    return 0;
}

const char *swoop_http_trailer(const swoop_http_request_t *req, const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    const char *p = req->trailers;
    for (int k = 0; k < req->num_trailers; k++) {
        const char *v = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

int swoop_http_remote_addr(const swoop_http_request_t *req, swoop_addr_t *out)
{
    if (req == NULL || out == NULL)
        return SWOOP_EINVAL;
    *out = req->peer;
    return 0;
}

const char *swoop__http_parts(const swoop_http_request_t *req, size_t *len)
{
    *len = req->parts_len;
    return req->parts;
}

swoop_conn_id_t swoop_http_conn(const swoop_http_request_t *req)
{
    return req ? req->conn : 0;
}

/* ---- response ---- */

const char *swoop__http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

const char *swoop__http_date(void)
{
    static __thread char date[40];
    static __thread time_t last;
    time_t now = time(NULL);
    if (now != last || date[0] == '\0') {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return date;
}

const char *swoop__http_server_date(const swoop_port_settings_t *ps)
{
    static __thread char buf[sizeof("Server: \r\nDate: \r\n") + 128 + 40];
    static __thread const char *last_name;
    static __thread char last_date[40];
    const char *name = ps ? ps->http_server_name : "";
    const char *date = swoop__http_date();
    /* Made again only when the second or the port's name changed: one per response is hot. */
    if (name != last_name || strcmp(date, last_date) != 0 || buf[0] == '\0') {
        if (name[0])
            snprintf(buf, sizeof(buf), "Server: %s\r\nDate: %s\r\n", name, date);
        else
            snprintf(buf, sizeof(buf), "Date: %s\r\n", date);
        last_name = name;
        snprintf(last_date, sizeof(last_date), "%s", date);
    }
    return buf;
}

static int no_body_status(int status)
{
    return status == 204 || status == 304 || (status >= 100 && status < 200);
}

int swoop_http_status(swoop_http_response_t *res, int code)
{
    if (res == NULL || code < 200 || code > 999)
        return SWOOP_EINVAL;
    if (res->started || res->ended)
        return SWOOP_ESTATE;
    res->status = code;
    return 0;
}

static int is_token_char(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A field name and value a response may carry (token name, no CR/LF): 0 or SWOOP_EINVAL. */
static int field_check(const char *what, const char *name, const char *value)
{
    for (const char *p = name; *p; p++) {
        if (!is_token_char((unsigned char)*p)) {
            swoop_log(SWOOP_LOG_WARNING, 0, "%s: \"%s\" is not a field name", what, name);
            return SWOOP_EINVAL;
        }
    }
    if (strpbrk(value, "\r\n") != NULL) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "%s: a CR or LF in the value of \"%s\" (refused: no response splitting)", what,
                  name);
        return SWOOP_EINVAL;
    }
    return 0;
}

/* Removes the field `name` (any case) from the serialized fields, if there. */
void swoop__http_field_remove(swoop_buf_t *b, const char *name, size_t nl)
{
    char *p = (char *)swoop__buf_rdata(b);
    size_t len = swoop__buf_rlen(b);
    size_t off = 0;
    while (off < len) {
        char *eol = memchr(p + off, '\n', len - off);
        size_t line = eol ? (size_t)(eol - (p + off)) + 1 : len - off;
        if (line > nl && p[off + nl] == ':' && strncasecmp(p + off, name, nl) == 0) {
            memmove(p + off, p + off + line, len - off - line);
            len -= line;
            b->len -= line;
            continue;
        }
        off += line;
    }
}

int swoop_http_header_set(swoop_http_response_t *res, const char *name, const char *value)
{
    if (res == NULL || name == NULL || value == NULL || name[0] == '\0')
        return SWOOP_EINVAL;
    if (res->started || res->ended)
        return SWOOP_ESTATE;
    int rc = field_check("swoop_http_header_set", name, value);
    if (rc < 0)
        return rc;
    if (strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Transfer-Encoding") == 0 ||
        strcasecmp(name, "Date") == 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_http_header_set: \"%s\" is set by the library",
                  name);
        return SWOOP_EINVAL;
    }
    if (strcasecmp(name, "Connection") == 0) {
        if (strcasecmp(value, "close") == 0)
            res->close = 1;
        return 0; /* the library writes Connection itself */
    }
    if (strcasecmp(name, "Server") == 0)
        res->server_set = 1; /* replaces the default ("" leaves the field out) */
    size_t nl = strlen(name), vl = strlen(value);
    swoop__http_field_remove(&res->fields, name, nl); /* a second set replaces the first */
    if (vl == 0 && res->server_set && strcasecmp(name, "Server") == 0)
        return 0;
    return swoop__http_field_add(res, name, value);
}

int swoop__http_field_add(swoop_http_response_t *res, const char *name, const char *value)
{
    if (res->started || res->ended)
        return SWOOP_ESTATE;
    size_t nl = strlen(name), vl = strlen(value);
    if (swoop__buf_reserve(&res->fields, nl + vl + 4) < 0)
        return SWOOP_ENOMEM;
    swoop__buf_append(&res->fields, name, nl);
    swoop__buf_append(&res->fields, ": ", 2);
    swoop__buf_append(&res->fields, value, vl);
    swoop__buf_append(&res->fields, "\r\n", 2);
    return 0;
}

/*
 * BASE: this process is being replaced (reload, max_request): its successor
 * already published its pid in the id's stats (one load, no system call).
 */
static int replaced(const swoop_server_t *srv)
{
    return atomic_load_explicit(&srv->gs->workers[srv->worker_id].pid, memory_order_relaxed) !=
           swoop__getpid();
}

/* The head of the response into b: `length` >= 0 gives Content-Length, -1 streams. */
static int head_build(swoop_http_response_t *res, swoop_buf_t *b, int64_t length)
{
    /*
     * The connection's last response says so: at shutdown, and from a BASE
     * worker draining after a reload or max_request (its successor serves
     * the client's next connection; no keep-alive close can race a request).
     */
    swoop_server_t *srv = res->srv;
    if (atomic_load(&srv->gs->shutting_down) || srv->worker_draining || srv->worker_retiring ||
        (srv->mode == SWOOP_MODE_BASE && replaced(srv)))
        res->close = 1;
    swoop__http_count(swoop__counter(srv->gs, srv->worker_id), res->status, 0);
    char line[384];
    const char *reason = swoop__http_reason(res->status);
    /* The port's http_server_name unless the handler set its own (or none). */
    const swoop_port_t *p = res->server_set ? NULL : swoop__conn_port(srv, res->conn);
    const swoop_port_settings_t *ps = res->server_set ? NULL
                                      : p             ? &p->eff
                                                      : &srv->settings.protocol;
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n%s", res->status, reason,
                     swoop__http_server_date(ps));
    if (swoop__buf_append(b, line, (size_t)n) < 0 ||
        swoop__buf_append(b, swoop__buf_rdata(&res->fields), swoop__buf_rlen(&res->fields)) < 0)
        return SWOOP_ENOMEM;
    n = 0;
    if (no_body_status(res->status))
        ;
    else if (length >= 0)
        n = snprintf(line, sizeof(line), "Content-Length: %lld\r\n", (long long)length);
    else if (res->chunked)
        n = snprintf(line, sizeof(line), "Transfer-Encoding: chunked\r\n");
    if (res->close)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "Connection: close\r\n\r\n");
    else if (res->version_minor == 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "Connection: keep-alive\r\n\r\n");
    else
        n += snprintf(line + n, sizeof(line) - (size_t)n, "\r\n");
    return swoop__buf_append(b, line, (size_t)n) < 0 ? SWOOP_ENOMEM : 0;
}

/* One access log line for a response that ended (the port's http_access_log). */
static void access_prepare(swoop_http_response_t *res)
{
    /* Looked up once per process: without an access log a response costs no lookup. */
    static int any = -1;
    if (any < 0) {
        any = 0;
        for (int i = 0; i < res->srv->nports; i++)
            any |= res->srv->ports[i]->access_fd >= 0;
    }
    res->access_fd = -1;
    if (!any)
        return;
    swoop_port_t *p = swoop__conn_port(res->srv, res->conn);
    swoop_session_t *s = swoop__session_get(res->srv, res->conn);
    res->access_fd = p ? p->access_fd : -1;
    res->access_format = p ? p->eff.http_access_log_format : 0;
    if (res->access_fd >= 0 && s)
        res->peer = s->peer;
}

/*
 * The request latency histogram (metrics.c): from the owner handing the
 * request on to the response's last byte handed back to it, in the
 * worker's own block. Responses ended elsewhere (swoop_http_respond) have
 * no start and are not timed.
 */
static void observe_latency(swoop_http_response_t *res)
{
    if (!res->timed)
        return;
    res->timed = 0;
    swoop_srv_shared_t *gs = res->srv->gs;
    int cls = res->status / 100 - 1;
    if (cls < 0 || cls >= SWOOP_METRICS_CLASSES || res->port >= gs->metric_ports)
        return;
    uint32_t us = swoop__http_us32() - res->queued_us;
    swoop__hist_observe(swoop__hist_latency(gs, res->srv->worker_id, res->port, cls),
                        (uint64_t)us * 1000u);
}

/* A response ended: its latency, its access log line. */
static void log_access(swoop_http_response_t *res)
{
    observe_latency(res);
    if (res->access_fd < 0)
        return;
    swoop_http_access_t a = {.status = res->status, .bytes = res->bytes, .duration_us = -1};
    /* The owner stamps a request for a port with an access log even without metrics. */
    if (res->queued_us)
        a.duration_us = (int64_t)(uint32_t)(swoop__http_us32() - res->queued_us);
    char target[2048];
    const swoop_http_request_t *req = res->req;
    if (req) {
        a.method = req->method;
        a.method_len = strlen(req->method);
        int n = snprintf(target, sizeof(target), "%s%s%s", req->path, req->query[0] ? "?" : "",
                         req->query);
        a.target = target;
        a.target_len = n < 0 ? 0 : (size_t)n < sizeof(target) ? (size_t)n : sizeof(target) - 1;
        a.version_minor = req->version_minor;
        a.referer = swoop_http_header(req, "Referer");
        a.referer_len = a.referer ? strlen(a.referer) : 0;
        a.user_agent = swoop_http_header(req, "User-Agent");
        a.user_agent_len = a.user_agent ? strlen(a.user_agent) : 0;
    }
    swoop__http_access(res->access_fd, res->access_format, &res->peer, &a);
}

/*
 * Sends b's bytes; the last piece carries `flags`. Pieces are at most half
 * the connection's output budget, and each waits (at most HTTP_SEND_WAIT_MS)
 * for room: a response larger than the budget goes out as the client reads
 * it. A piece that cannot go (the client does not read, the connection
 * closed) resets the connection: its client must never wait for a response
 * cut short.
 */
static int send_buf(swoop_http_response_t *res, const char *p, size_t len, uint32_t flags)
{
    swoop_server_t *srv = res->srv;
    res->bytes += len;
    size_t max = (size_t)srv->settings.buffer_output_size;
    size_t half = (size_t)srv->settings.socket_buffer_size / 2;
    if (half > 0 && max > half)
        max = half;
    do {
        size_t n = len > max ? max : len;
        uint32_t f = n == len ? flags : 0;
        /* Bytes that leave without the end: a crash from now on cuts a started response. */
        if (!(f & SWOOP_REPLY_END) && !res->sent_any) {
            res->sent_any = 1;
            swoop_session_t *s = swoop__session_get(srv, res->conn);
            if (s)
                atomic_fetch_or(&s->proto_flags, HTTP_SESS_STARTED);
        }
        /* Tried first: waiting for room costs a look at the budget only when it is short. */
        int rc = swoop__server_send_reply(srv, res->conn, p, n, f);
        for (int tries = 0; rc == SWOOP_EBUFFERFULL && tries < 2; tries++) {
            rc = swoop__server_wait_room(srv, res->conn, n, HTTP_SEND_WAIT_MS);
            if (rc == 0)
                rc = swoop__server_send_reply(srv, res->conn, p, n, f);
        }
        if (rc < 0) {
            if (rc != SWOOP_ECLOSED) {
                swoop__log_limited(SWOOP_LOG_WARNING, rc,
                                   "http: conn %llu: the response cannot be sent whole: "
                                   "resetting the connection",
                                   (unsigned long long)res->conn);
                swoop_server_close(srv, res->conn, 1);
            }
            return rc;
        }
        p += n;
        len -= n;
    } while (len > 0);
    return 0;
}

static uint32_t end_flags(const swoop_http_response_t *res)
{
    return SWOOP_REPLY_END | (res->close ? SWOOP_REPLY_CLOSE : 0);
}

/* The coding the request accepts, from its Accept-Encoding fields (proto/http_codings.c). */
static int accept_of(const swoop_http_request_t *req)
{
    swoop_http_codings_t acc;
    swoop__http_codings_init(&acc);
    for (int i = 0; i < req->num_headers; i++) {
        if (strcasecmp(req->names[i], "Accept-Encoding") == 0)
            swoop__http_codings_parse(&acc, req->values[i], strlen(req->values[i]));
    }
    return swoop__http_codings_pick(&acc, SWOOP_HTTP_CODING_GZIP | SWOOP_HTTP_CODING_DEFLATE);
}

/*
 * Compression (compress.c), decided once before the head is built: sets
 * res->coding and edits the fields. len: the body's, -1 when streamed.
 */
static int coding_decide(swoop_http_response_t *res, int64_t len)
{
    swoop_port_t *p = swoop__conn_port(res->srv, res->conn);
    if (p == NULL || !p->eff.http_compression)
        return 0;
    int accept = res->req ? accept_of(res->req) : res->accept;
    int cd = swoop__http_compress_decide(&p->eff, accept, res->status, len, &res->fields);
    if (cd < 0)
        return cd;
    res->coding = cd;
    return 0;
}

static int start_stream(swoop_http_response_t *res)
{
    res->started = 1;
    res->chunked = res->version_minor >= 1 && !res->head_only && !no_body_status(res->status);
    if (!res->chunked && !res->head_only && !no_body_status(res->status))
        res->close = 1; /* HTTP/1.0: the body ends with the connection */
    int rc = coding_decide(res, -1);
    if (rc == 0 && res->coding && !res->head_only && !no_body_status(res->status)) {
        swoop_port_t *p = swoop__conn_port(res->srv, res->conn);
        rc = swoop__http_zstream_new(&res->z, res->coding, p->eff.http_compression_level);
    }
    if (rc < 0)
        return rc;
    swoop_buf_t *b = out_begin();
    rc = head_build(res, b, -1);
    if (rc == 0)
        rc = send_buf(res, swoop__buf_rdata(b), swoop__buf_rlen(b), 0);
    out_done();
    return rc;
}

/* The chunked body's end: the last chunk and the trailer section (swoop_http_trailer_set). */
static int last_chunk(swoop_http_response_t *res)
{
    size_t tl = swoop__buf_rlen(&res->trailers);
    if (tl == 0)
        return send_buf(res, "0\r\n\r\n", 5, end_flags(res));
    swoop_buf_t *b = out_begin();
    if (swoop__buf_append(b, "0\r\n", 3) < 0 ||
        swoop__buf_append(b, swoop__buf_rdata(&res->trailers), tl) < 0 ||
        swoop__buf_append(b, "\r\n", 2) < 0)
        return SWOOP_ENOMEM;
    int rc = send_buf(res, swoop__buf_rdata(b), swoop__buf_rlen(b), end_flags(res));
    out_done();
    return rc;
}

int swoop_http_write(swoop_http_response_t *res, const void *data, size_t len)
{
    if (res == NULL || (data == NULL && len))
        return SWOOP_EINVAL;
    if (res->ended)
        return SWOOP_ESTATE;
    int rc = res->started ? 0 : start_stream(res);
    if (rc < 0 || len == 0 || res->head_only || no_body_status(res->status))
        return rc;
    if (res->z) {
        /* Flushed per write: what the handler wrote reaches the client now. */
        swoop__buf_clear(&z_buf);
        if ((rc = swoop__http_zstream_push(res->z, data, len, 0, &z_buf)) < 0)
            return rc;
        data = swoop__buf_rdata(&z_buf);
        len = swoop__buf_rlen(&z_buf);
    }
    if (!res->chunked) {
        rc = send_buf(res, data, len, 0);
        swoop__buf_shrink(&z_buf, 0, 65536);
        return rc;
    }
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    swoop_buf_t *b = out_begin();
    if (swoop__buf_reserve(b, (size_t)n + len + 2) < 0)
        return SWOOP_ENOMEM;
    swoop__buf_append(b, size, (size_t)n);
    swoop__buf_append(b, data, len);
    swoop__buf_append(b, "\r\n", 2);
    rc = send_buf(res, swoop__buf_rdata(b), swoop__buf_rlen(b), 0);
    out_done();
    swoop__buf_shrink(&z_buf, 0, 65536);
    return rc;
}

/* A streamed compressed body's end: the last data and the stream's trailer in one piece. */
static int end_stream_compressed(swoop_http_response_t *res, const void *data, size_t len)
{
    swoop__buf_clear(&z_buf);
    int rc = swoop__http_zstream_push(res->z, data, len, 1, &z_buf);
    swoop__http_zstream_free(res->z);
    res->z = NULL;
    res->ended = 1;
    if (rc < 0)
        return rc;
    /* Never empty: the stream's end always writes its final block (and gzip's trailer). */
    size_t zl = swoop__buf_rlen(&z_buf);
    size_t tl = swoop__buf_rlen(&res->trailers);
    swoop_buf_t *b = out_begin();
    char size[24];
    int n = res->chunked ? snprintf(size, sizeof(size), "%zx\r\n", zl) : 0;
    if (swoop__buf_reserve(b, (size_t)n + zl + 7 + tl) < 0) {
        rc = SWOOP_ENOMEM;
    } else {
        swoop__buf_append(b, size, (size_t)n);
        swoop__buf_append(b, swoop__buf_rdata(&z_buf), zl);
        if (res->chunked) {
            swoop__buf_append(b, "\r\n0\r\n", 5);
            swoop__buf_append(b, swoop__buf_rdata(&res->trailers), tl);
            swoop__buf_append(b, "\r\n", 2);
        }
        rc = send_buf(res, swoop__buf_rdata(b), swoop__buf_rlen(b), end_flags(res));
    }
    out_done();
    swoop__buf_shrink(&z_buf, 0, 65536);
    log_access(res);
    return rc;
}

int swoop_http_end(swoop_http_response_t *res, const void *data, size_t len)
{
    if (res == NULL || (data == NULL && len))
        return SWOOP_EINVAL;
    if (res->ended)
        return SWOOP_ESTATE;
    /* Trailers need chunked framing: a response that has them streams (HTTP/1.1 only). */
    if (!res->started && swoop__buf_rlen(&res->trailers) && res->version_minor >= 1 &&
        !res->head_only && !no_body_status(res->status)) {
        int rc = start_stream(res);
        if (rc < 0) {
            res->ended = 1;
            return rc;
        }
    }
    if (res->started && res->z)
        return end_stream_compressed(res, data, len);
    if (res->started) {
        int rc = len ? swoop_http_write(res, data, len) : 0;
        res->ended = 1;
        if (rc < 0)
            return rc;
        if (res->chunked)
            rc = last_chunk(res);
        else
            rc = swoop__server_send_reply(res->srv, res->conn, NULL, 0, end_flags(res));
        log_access(res);
        return rc;
    }
    res->ended = 1;
    int nobody = no_body_status(res->status);
    int rc = coding_decide(res, nobody ? -1 : (int64_t)len);
    if (rc == 0 && res->coding && !nobody) {
        /*
         * Compressed whole, for HEAD too: its Content-Length is the one a
         * GET would get (when the handler passes the body to a HEAD).
         */
        swoop_port_t *p = swoop__conn_port(res->srv, res->conn);
        swoop__buf_clear(&z_buf);
        rc =
            swoop__http_deflate_once(res->coding, p->eff.http_compression_level, data, len, &z_buf);
        data = swoop__buf_rdata(&z_buf);
        len = swoop__buf_rlen(&z_buf);
    }
    if (rc < 0) {
        /* Nothing went out: the client must not wait for a response that will not come. */
        swoop_server_close(res->srv, res->conn, 1);
        log_access(res);
        return rc;
    }
    swoop_buf_t *b = out_begin();
    rc = head_build(res, b, nobody ? -1 : (int64_t)len);
    if (rc == 0 && len && !nobody && !res->head_only && swoop__buf_append(b, data, len) < 0)
        rc = SWOOP_ENOMEM;
    if (rc == 0)
        rc = send_buf(res, swoop__buf_rdata(b), swoop__buf_rlen(b), end_flags(res));
    out_done();
    swoop__buf_shrink(&z_buf, 0, 65536);
    log_access(res);
    return rc;
}

int swoop_http_trailer_set(swoop_http_response_t *res, const char *name, const char *value)
{
    if (res == NULL || name == NULL || value == NULL || name[0] == '\0')
        return SWOOP_EINVAL;
    if (res->ended)
        return SWOOP_ESTATE;
    int rc = field_check("swoop_http_trailer_set", name, value);
    if (rc < 0)
        return rc;
    /* RFC 9110 6.5.1: framing, routing and the like never travel in trailers. */
    static const char *const banned[] = {"Content-Length", "Transfer-Encoding", "Host",
                                         "Content-Type",   "Content-Encoding",  "Content-Range",
                                         "Connection",     "Trailer",           "Date",
                                         "Set-Cookie",     "Cache-Control",     "Authorization"};
    for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++) {
        if (strcasecmp(name, banned[i]) == 0) {
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "swoop_http_trailer_set: \"%s\" may not be sent as a trailer", name);
            return SWOOP_EINVAL;
        }
    }
    size_t nl = strlen(name), vl = strlen(value);
    if (swoop__buf_reserve(&res->trailers, nl + vl + 4) < 0)
        return SWOOP_ENOMEM;
    swoop__buf_append(&res->trailers, name, nl);
    swoop__buf_append(&res->trailers, ": ", 2);
    swoop__buf_append(&res->trailers, value, vl);
    swoop__buf_append(&res->trailers, "\r\n", 2);
    return 0;
}

int swoop_http_is_writable(const swoop_http_response_t *res)
{
    if (res == NULL || res->ended || res->detached)
        return 0;
    swoop_session_t *s = swoop__session_get(res->srv, res->conn);
    return s != NULL && !atomic_load(&s->closed);
}

/* Whether the user set the field `name` (any case). */
static int field_has(const swoop_buf_t *b, const char *name)
{
    const char *p = swoop__buf_rdata(b);
    size_t len = swoop__buf_rlen(b), nl = strlen(name), off = 0;
    while (off < len) {
        const char *eol = memchr(p + off, '\n', len - off);
        size_t line = eol ? (size_t)(eol - (p + off)) + 1 : len - off;
        if (line > nl && p[off + nl] == ':' && strncasecmp(p + off, name, nl) == 0)
            return 1;
        off += line;
    }
    return 0;
}

int swoop_http_sendfile(swoop_http_response_t *res, const char *path, uint64_t offset,
                        uint64_t length)
{
    if (res == NULL || path == NULL)
        return SWOOP_EINVAL;
    if (res->ended || res->started || res->detached)
        return SWOOP_ESTATE;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int err = fd < 0 || fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EISDIR;
    if (fd >= 0)
        close(fd);
    if (err) {
        swoop__log_limited(SWOOP_LOG_WARNING, err,
                           "swoop_http_sendfile: \"%s\" is not a regular file that can be read",
                           path);
        return -err;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (offset > size || (length && length > size - offset)) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "swoop_http_sendfile: bytes %llu+%llu are past the end of \"%s\" (%llu bytes)",
                  (unsigned long long)offset, (unsigned long long)length, path,
                  (unsigned long long)size);
        return SWOOP_EINVAL;
    }
    if (length == 0)
        length = size - offset;
    if (!field_has(&res->fields, "Content-Type")) {
        int rc = swoop_http_header_set(res, "Content-Type", swoop__http_mime_type(path));
        if (rc < 0)
            return rc;
    }
    int nobody = no_body_status(res->status);
    res->ended = 1;
    swoop_buf_t *b = out_begin();
    int rc = head_build(res, b, nobody ? -1 : (int64_t)length);
    int body = rc == 0 && !nobody && !res->head_only && length > 0;
    if (rc == 0)
        rc = send_buf(res, swoop__buf_rdata(b), swoop__buf_rlen(b), body ? 0 : end_flags(res));
    out_done();
    if (rc == 0 && body) {
        res->sent_any = 1;
        swoop_session_t *s = swoop__session_get(res->srv, res->conn);
        if (s)
            atomic_fetch_or(&s->proto_flags, HTTP_SESS_STARTED);
        rc = swoop_server_sendfile(res->srv, res->conn, path, (off_t)offset, (size_t)length);
        if (rc == 0) {
            res->bytes += length;
            rc = swoop__server_send_reply(res->srv, res->conn, NULL, 0, end_flags(res));
        } else if (rc != SWOOP_ECLOSED) {
            /* The head went out promising `length` bytes: the client must not wait for them. */
            swoop_server_close(res->srv, res->conn, 1);
        }
    }
    log_access(res);
    return rc;
}

int swoop__http_upgrade_end(swoop_http_response_t *res, const char *protocol, const char *fields,
                            uint32_t arg)
{
    if (res->ended || res->started || arg >= (1u << (32 - SWOOP_REPLY_ARG_SHIFT)))
        return SWOOP_ESTATE;
    res->ended = 1;
    res->status = 101;
    swoop_buf_t *b = out_begin();
    const swoop_port_t *p = res->server_set ? NULL : swoop__conn_port(res->srv, res->conn);
    const swoop_port_settings_t *ps = res->server_set ? NULL
                                      : p             ? &p->eff
                                                      : &res->srv->settings.protocol;
    char line[512];
    int n = snprintf(line, sizeof(line),
                     "HTTP/1.1 101 Switching Protocols\r\n%sUpgrade: %s\r\nConnection: Upgrade\r\n",
                     swoop__http_server_date(ps), protocol);
    int rc = swoop__buf_append(b, line, (size_t)n) < 0 ||
                     swoop__buf_append(b, swoop__buf_rdata(&res->fields),
                                       swoop__buf_rlen(&res->fields)) < 0 ||
                     swoop__buf_append(b, fields, strlen(fields)) < 0 ||
                     swoop__buf_append(b, "\r\n", 2) < 0
                 ? SWOOP_ENOMEM
                 : 0;
    if (rc == 0)
        rc = send_buf(res, swoop__buf_rdata(b), swoop__buf_rlen(b),
                      SWOOP_REPLY_END | SWOOP_REPLY_UPGRADE | arg << SWOOP_REPLY_ARG_SHIFT);
    out_done();
    log_access(res);
    return rc;
}

uint64_t swoop_http_detach(swoop_http_response_t *res)
{
    if (res == NULL || res->ended || res->detached || res->started)
        return 0;
    res->detached = 1;
    /* Its latency is observed by whoever ends it (respond_claimed): the stamp goes along. */
    swoop_session_t *s = swoop__session_get(res->srv, res->conn);
    if (s)
        atomic_store_explicit(&s->proto_stamp, res->queued_us, memory_order_relaxed);
    return swoop__http_detach_id(res->conn, res->seq);
}

/* Ends a detached response this process claimed (HTTP_SESS_CLAIMED); f: the session's flags. */
static int respond_claimed(swoop_server_t *srv, swoop_conn_id_t conn, uint32_t f, int status,
                           const char *content_type, const void *body, size_t len)
{
    swoop_http_response_t res = {.srv = srv,
                                 .conn = conn,
                                 .status = status,
                                 .version_minor = (int)HTTP_SESS_MINOR(f),
                                 .keep_alive = (f & HTTP_SESS_KEEP_ALIVE) != 0,
                                 .head_only = (f & HTTP_SESS_HEAD) != 0,
                                 .accept = (int)HTTP_SESS_CODING(f)};
    res.close = !res.keep_alive;
    swoop__buf_init(&res.fields);
    swoop__buf_init(&res.trailers);
    access_prepare(&res);
    swoop_session_t *s = swoop__session_get(srv, conn);
    if (s) {
        /* The stamp swoop_http_detach kept: latency and access log duration as if not detached. */
        res.queued_us = atomic_load_explicit(&s->proto_stamp, memory_order_relaxed);
        res.port = s->port_index;
        res.timed = res.queued_us && srv->gs->metrics_on && srv->worker_id >= 0 &&
                    srv->worker_id < srv->gs->worker_num;
    }
    int rc = content_type ? swoop_http_header_set(&res, "Content-Type", content_type) : 0;
    if (rc == 0)
        rc = swoop_http_end(&res, body, len);
    swoop__buf_free(&res.fields);
    swoop__buf_free(&res.trailers);
    return rc;
}

/*
 * A task worker's answer, relayed to an event worker (task workers have no
 * route to the connection owners): this head, the Content-Type, the body.
 */
typedef struct http_relay_s {
    uint32_t magic;
    int32_t status;
    uint64_t conn;
    uint32_t flags; /* the session's, as claimed */
    uint32_t type_len;
} http_relay_t;

#define HTTP_RELAY_MAGIC    0x59524c48u /* "HLRY" */
#define HTTP_RELAY_TYPE_MAX 256         /* bytes of a Content-Type given to swoop_http_respond */

static int respond_relay(swoop_server_t *srv, swoop_session_t *s, swoop_conn_id_t conn, uint32_t f,
                         int status, const char *content_type, const void *body, size_t len)
{
    http_relay_t r = {.magic = HTTP_RELAY_MAGIC,
                      .status = status,
                      .conn = conn,
                      .flags = f,
                      .type_len = content_type ? (uint32_t)strlen(content_type) : UINT32_MAX};
    size_t tl = content_type ? r.type_len : 0;
    char *msg = swoop_malloc(sizeof(r) + tl + len);
    if (msg == NULL)
        return SWOOP_ENOMEM;
    memcpy(msg, &r, sizeof(r));
    if (tl)
        memcpy(msg + sizeof(r), content_type, tl);
    if (len)
        memcpy(msg + sizeof(r) + tl, body, len);
    /* BASE: straight to the worker that owns the connection; PROCESS: any event worker. */
    int dst = (int)((conn & 0xffffffu) % (uint64_t)srv->worker_num);
    if (srv->mode == SWOOP_MODE_BASE && s->reactor_id >= 0 && s->reactor_id < srv->worker_num)
        dst = s->reactor_id;
    int rc = swoop__server_relay(srv, dst, SWOOP_PROTO_HTTP, msg, sizeof(r) + tl + len);
    swoop_free(msg);
    return rc;
}

/* Event worker: a task worker's answer (respond_relay). */
void swoop__http_relay(swoop_server_t *srv, char *data, size_t len)
{
    http_relay_t r;
    if (len < sizeof(r))
        return;
    memcpy(&r, data, sizeof(r));
    size_t tl = r.type_len == UINT32_MAX ? 0 : r.type_len;
    if (r.magic != HTTP_RELAY_MAGIC || len - sizeof(r) < tl) {
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "http: malformed relayed response (%zu bytes)",
                           len);
        return;
    }
    char type[HTTP_RELAY_TYPE_MAX];
    if (tl >= sizeof(type)) {
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "http: relayed response with a %zu-byte type", tl);
        return;
    }
    memcpy(type, data + sizeof(r), tl);
    type[tl] = '\0';
    size_t skip = r.type_len == UINT32_MAX ? 0 : r.type_len;
    int rc = respond_claimed(srv, r.conn, r.flags, r.status, r.type_len == UINT32_MAX ? NULL : type,
                             data + sizeof(r) + skip, len - sizeof(r) - skip);
    if (rc < 0 && rc != SWOOP_ECLOSED)
        swoop__log_limited(SWOOP_LOG_WARNING, rc,
                           "http: a task worker's answer to conn %llu could not be sent",
                           (unsigned long long)r.conn);
}

int swoop_http_respond(swoop_server_t *srv, uint64_t id, int status, const char *content_type,
                       const void *body, size_t len)
{
    if (srv == NULL || id == 0 || status < 200 || status > 999 || (body == NULL && len))
        return SWOOP_EINVAL;
    int task = swoop_server_is_task_worker(srv);
    if (srv->worker_id < 0)
        return SWOOP_ESTATE;
    /* Checked before the claim: a claimed response that then fails would never be answered. */
    if (content_type &&
        (strlen(content_type) >= HTTP_RELAY_TYPE_MAX || strpbrk(content_type, "\r\n") != NULL)) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "swoop_http_respond: a Content-Type with CR or LF, or of %d bytes or more",
                  HTTP_RELAY_TYPE_MAX);
        return SWOOP_EINVAL;
    }
    swoop_session_t *s = swoop__session_at(srv, (uint32_t)(id & 0xffffffu));
    swoop_conn_id_t conn = s ? atomic_load_explicit(&s->id, memory_order_acquire) : 0;
    if (conn == 0 || ((conn >> 24) & 0xffffffffu) != id >> 32 ||
        (conn & 0xffffffu) != (id & 0xffffffu) || atomic_load(&s->closed))
        return SWOOP_ECLOSED;
    /* Claimed once: a second call, or a late one for an answered request, is refused. */
    uint32_t f = atomic_load_explicit(&s->proto_flags, memory_order_acquire);
    do {
        if (!(f & HTTP_SESS_AWAITING) || (f & HTTP_SESS_CLAIMED) ||
            HTTP_SESS_SEQ(f) != ((id >> 24) & 0xffu))
            return SWOOP_ESTATE;
    } while (!atomic_compare_exchange_weak(&s->proto_flags, &f, f | HTTP_SESS_CLAIMED));
    if (!task)
        return respond_claimed(srv, conn, f, status, content_type, body, len);
    int rc = respond_relay(srv, s, conn, f, status, content_type, body, len);
    if (rc < 0) /* nobody will answer it: let another try */
        atomic_fetch_and(&s->proto_flags, ~HTTP_SESS_CLAIMED);
    return rc;
}

/* ---- a request from the owner ---- */

/* A body in a file: mapped read-only for the handler (file pages, not the heap). */
static int body_map(swoop_http_request_t *req)
{
    int fd = open(req->body_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        swoop__log_limited(SWOOP_LOG_ERROR, errno, "http: open(\"%s\") of a request body failed",
                           req->body_path);
        return -1;
    }
    void *p = req->body_len ? mmap(NULL, req->body_len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    int err = errno;
    close(fd);
    if (p == MAP_FAILED) {
        swoop__log_limited(SWOOP_LOG_ERROR, err, "http: mmap() of a %zu-byte request body failed",
                           req->body_len);
        return -1;
    }
    req->body_map = p;
    req->body = p ? p : "";
    return 0;
}

static int msg_parse(swoop_http_request_t *req, char *data, size_t len)
{
    http_msg_t m;
    if (len < sizeof(m))
        return -1;
    memcpy(&m, data, sizeof(m));
    size_t fields = (size_t)m.num_headers * sizeof(swoop_http_header_t);
    if (m.magic != HTTP_MSG_MAGIC || m.num_headers > HTTP_MAX_HEADERS || len - sizeof(m) < fields ||
        len - sizeof(m) - fields < m.head_len)
        return -1;
    size_t rest = len - sizeof(m) - fields - m.head_len;
    /* The trailer fields come last: pairs of NUL-terminated strings (the owner packed them). */
    if (m.trailer_len > rest)
        return -1;
    if (m.trailer_len > 0) {
        const char *t = data + len - m.trailer_len;
        size_t nuls = 0;
        for (uint32_t i = 0; i < m.trailer_len; i++)
            nuls += t[i] == '\0';
        if (t[m.trailer_len - 1] != '\0' || nuls % 2 != 0)
            return -1;
        req->trailers = t;
        req->trailers_len = m.trailer_len;
        req->num_trailers = (int)(nuls / 2);
        rest -= m.trailer_len;
        len -= m.trailer_len;
    }
    if (m.flags & HTTP_MSG_BODY_FILE) {
        /* The rest is the body file's path (the owner made it; it removes it later). */
        if (rest == 0 || rest >= sizeof(req->body_path))
            return -1;
        memcpy(req->body_path, data + len - rest, rest);
        req->body_path[rest] = '\0';
    } else if (m.flags & HTTP_MSG_MULTIPART) {
        /* The rest is the parts' entries (upload.c), checked before any is used. */
        if (m.body_len != 0 || swoop__http_parts_check(data + len - rest, rest) < 0)
            return -1;
        req->parts = data + len - rest;
        req->parts_len = rest;
    } else if (rest != m.body_len) {
        return -1;
    }
    char *head = data + sizeof(m) + fields;
    /* Every span lies inside the head, its terminator too (the owner's parser made them). */
    for (uint32_t i = 0; i < m.num_headers; i++) {
        swoop_http_header_t f;
        memcpy(&f, data + sizeof(m) + i * sizeof(f), sizeof(f));
        if ((uint64_t)f.name.off + f.name.len >= m.head_len ||
            (uint64_t)f.value.off + f.value.len >= m.head_len)
            return -1;
        req->names[i] = span_str(head, f.name, "");
        req->values[i] = span_str(head, f.value, "");
    }
    swoop_http_span_t spans[3] = {m.method, m.path, m.query};
    for (int i = 0; i < 3; i++) {
        if ((uint64_t)spans[i].off + spans[i].len >= m.head_len)
            return -1;
    }
    req->num_headers = (int)m.num_headers;
    req->method = span_str(head, m.method, "");
    req->path = span_str(head, m.path, "/");
    req->query = span_str(head, m.query, "");
    req->version_minor = m.version_minor;
    req->body = (m.flags & HTTP_MSG_BODY_FILE) ? NULL : head + m.head_len;
    req->body_len = (size_t)m.body_len;
    req->seq = m.seq;
    req->queued_us = m.queued_us;
    return (int)m.flags;
}

int swoop__http_expect(swoop_server_t *srv, swoop_conn_id_t conn, const swoop_addr_t *peer,
                       char *msg, size_t len)
{
    swoop_http_expect_fn fn = (swoop_http_expect_fn)srv->proto_hook[SWOOP_PROTO_HTTP];
    if (fn == NULL)
        return 0;
    /* The handler's own view of the request, so every accessor works the same (body: ""). */
    swoop_http_request_t req = {.srv = srv, .conn = conn};
    if (msg_parse(&req, msg, len) < 0) {
        swoop__log_limited(SWOOP_LOG_ERROR, 0,
                           "http: conn %llu: bad request message for the "
                           "Expect hook: 500",
                           (unsigned long long)conn);
        return 500;
    }
    if (peer)
        req.peer = *peer;
    int st = fn(srv, &req);
    if (st == 0 || (st >= 400 && st <= 599))
        return st;
    swoop__log_limited(SWOOP_LOG_ERROR, 0,
                       "http: the Expect hook returned %d for %s %s (0 or 400..599 expected): 500",
                       st, req.method, req.path);
    return 500;
}

void swoop__http_message(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, char *data,
                         size_t len)
{
    swoop_http_request_t req = {.srv = srv, .conn = conn};
    swoop_session_t *sess = swoop__session_get(srv, conn);
    if (sess)
        atomic_store(&sess->proto_taker, (int32_t)swoop__getpid()); /* the owner's crash check */
    int flags = msg_parse(&req, data, len);
    if (flags < 0) {
        swoop__log_limited(SWOOP_LOG_WARNING, 0,
                           "http: malformed request message (%zu bytes) for conn %llu: closing",
                           len, (unsigned long long)conn);
        swoop_server_close(srv, conn, 1);
        return;
    }
    swoop_http_response_t res = {.srv = srv,
                                 .conn = conn,
                                 .status = 200,
                                 .version_minor = req.version_minor,
                                 .keep_alive = (flags & HTTP_MSG_KEEP_ALIVE) != 0,
                                 .head_only = (flags & HTTP_MSG_HEAD) != 0,
                                 .seq = req.seq,
                                 .req = &req};
    res.close = !res.keep_alive;
    swoop__buf_init(&res.fields);
    swoop__buf_init(&res.trailers);
    access_prepare(&res);
    if (sess)
        req.peer = sess->peer;
    if (req.queued_us && srv->gs->metrics_on && srv->worker_id >= 0 &&
        srv->worker_id < srv->gs->worker_num) {
        /* The IPC hop: the owner handed the request on, this worker took it now. */
        uint32_t us = swoop__http_us32() - req.queued_us;
        swoop__hist_observe(swoop__hist_hop(srv->gs, srv->worker_id), (uint64_t)us * 1000u);
        res.timed = sess != NULL;
        res.port = sess ? sess->port_index : 0;
    }
    res.queued_us = req.queued_us; /* the latency, the access log's duration */
    if (req.body == NULL && body_map(&req) < 0) {
        swoop_http_status(&res, 500);
        res.close = 1;
        swoop_http_end(&res, "500 Internal Server Error\n", 26);
        swoop__buf_free(&res.fields);
        return;
    }
    swoop_http_handler_t handler = (swoop_http_handler_t)srv->proto_fn[SWOOP_PROTO_HTTP];
    if ((flags & HTTP_MSG_UPGRADE) && upgrade_fn) {
        upgrade_fn(srv, &req, &res);
    } else if (handler) {
        handler(srv, &req, &res);
    } else {
        /* A WebSocket-only port: plain requests are told to upgrade (RFC 9110 15.5.22). */
        swoop_http_status(&res, 426);
        swoop_http_header_set(&res, "Upgrade", "websocket");
        swoop_http_end(&res, "426 Upgrade Required\n", 21);
    }
    if (!res.ended && !res.detached) {
        swoop__log_limited(SWOOP_LOG_ERROR, 0,
                           "http: the handler of %s %s returned without ending the response: %s",
                           req.method, req.path, res.started ? "ended now" : "500 sent");
        if (!res.started) {
            swoop__buf_clear(&res.fields);
            res.status = 500;
            res.close = 1;
        }
        swoop_http_end(&res, "500 Internal Server Error\n", res.started ? 0 : 26);
    }
    swoop__http_zstream_free(res.z); /* a stream whose end failed */
    swoop__buf_free(&res.fields);
    swoop__buf_free(&res.trailers);
    if (req.body_map)
        munmap(req.body_map, req.body_len);
}
