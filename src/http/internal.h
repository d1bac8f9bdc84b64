/*
 * The HTTP layer's private definitions (L6, above src/server/): the parsed
 * request as it travels from the connection owner to the worker, and the
 * two halves that meet there:
 *   conn.c      the owner's side: parses requests (proto/http_parser.c),
 *               answers errors and 100-continue, delivers one request at a
 *               time per connection, holds the reading until its response
 *               ended, then reads the next (keep-alive) or closes
 *   handler.c   the worker's side: the request and response objects, the
 *               user's handler, serialising responses (response heads,
 *               chunked bodies, the cached Date field)
 *   static.c    static files, served by the owner
 *   upload.c    multipart/form-data bodies parsed as they stream in (owner)
 *   files.c     the handler's view of their files and fields (worker)
 *   access.c    the access log's lines
 */
#ifndef SWOOP_HTTP_INTERNAL_H
#define SWOOP_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/stat.h>

#include <swoop/http.h>

#include "base/buf.h"
#include "proto/http_codings.h"
#include "proto/http_parser.h"
#include "server/internal.h"

#define HTTP_MSG_MAGIC   0x50545448u /* "HTTP" */
#define HTTP_MAX_HEADERS 100         /* fields per request (431 above) */

/*
 * One parsed request, owner to worker: this header, then num_headers
 * swoop_http_header_t (spans into the head), then the raw head (head_len
 * bytes), then the body (body_len bytes, decoded when it came chunked),
 * and last (after a body file's path or the parts too) trailer_len bytes
 * of a chunked body's trailer fields, NUL-terminated name and value pairs
 * (swoop__http_trailer_pack).
 */
typedef struct http_msg_s {
    uint32_t magic;
    uint32_t num_headers;
    uint32_t head_len;
    uint32_t flags; /* HTTP_MSG_* */
    uint64_t body_len;
    swoop_http_span_t method;
    swoop_http_span_t path; /* len 0: "/" */
    swoop_http_span_t query;
    int32_t version_minor;
    uint32_t seq; /* the request's number on its connection (low 8 bits name it in detach ids) */
    uint32_t trailer_len; /* the message's last bytes: trailer fields (0: none) */
    uint32_t queued_us; /* metrics or access log: swoop__http_us32() when the owner handed it on */
} http_msg_t;

static_assert(sizeof(http_msg_t) == 64, "the request message header is part of the IPC format");

#define HTTP_MSG_KEEP_ALIVE 0x1u /* the connection may carry another request */
#define HTTP_MSG_HEAD       0x2u /* method HEAD: the response carries no body */
/*
 * The body (body_len bytes) is in a file: the message's last bytes are its
 * path. The owner made it and removes it once the response ended.
 */
#define HTTP_MSG_BODY_FILE 0x4u
/* A valid WebSocket handshake (the owner checked it): the upgrade handler answers it. */
#define HTTP_MSG_UPGRADE 0x10u
/*
 * multipart/form-data, parsed by the owner: body_len is 0 and the message
 * goes on after the head with one http_part_t per part, each followed by
 * name, filename, content type and path, each NUL-terminated, then (a
 * field) its value, size bytes and a NUL. File parts are files in
 * upload_tmp_dir, which the owner removes once the response ended.
 */
#define HTTP_MSG_MULTIPART 0x8u

#define HTTP_PART_FIELD 1u
#define HTTP_PART_FILE  2u
/* File parts one request may carry (413 above): each costs a file and a name. */
#define HTTP_UPLOAD_MAX_FILES 1024

typedef struct http_part_s {
    uint32_t kind; /* HTTP_PART_* */
    uint32_t name_len;
    uint32_t filename_len; /* 0: no filename (a field), or an empty one */
    uint32_t type_len;
    uint32_t path_len; /* a file's path in upload_tmp_dir; 0 for a field */
    uint32_t reserved;
    uint64_t size; /* bytes of the value (a field) or of the file */
} http_part_t;

static_assert(sizeof(http_part_t) == 32, "a part's entry is part of the IPC format");

/* upload.c: one multipart request being parsed by its owner. */
typedef struct http_upload_s http_upload_t;

/*
 * Looks at the request's Content-Type: *out gets a parser when it is
 * multipart/form-data, NULL for another body. Returns 0, or the status to
 * answer (400 for a bad boundary, 500), the cause logged.
 */
int swoop__http_upload_begin(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req,
                             http_upload_t **out);
/*
 * Parses the next (decoded) body bytes: fields are appended to the message
 * msg, files written. Returns 0 or the status to answer (400 malformed, 413
 * upload_max_filesize or package_max_length, 500 upload_tmp_dir), logged.
 */
int swoop__http_upload_feed(swoop_conn_t *c, http_upload_t *up, swoop_buf_t *msg, const char *p,
                            size_t n);
/* The body ended: 0 when it was whole (its final delimiter came), else 400 (logged). */
int swoop__http_upload_end(swoop_conn_t *c, http_upload_t *up);
/* Closes and removes the request's files (those not moved), frees up. NULL is fine. */
void swoop__http_upload_free(http_upload_t *up);

/* handler.c: a multipart request's part entries (*len bytes), or NULL. */
const char *swoop__http_parts(const swoop_http_request_t *req, size_t *len);
/* files.c: 0 when p[0, len) is a well-formed list of part entries, else -1. */
int swoop__http_parts_check(const char *p, size_t len);
/* files.c: the multipart text field `name` into out (see swoop_http_form_get). */
int swoop__http_multipart_field(const swoop_http_request_t *req, const char *name, char *out,
                                size_t cap);

/*
 * swoop_session_t.proto_flags of an HTTP connection: set by the owner when
 * it hands a request on, cleared when the response ended; a detached
 * response is answered from any worker with them (swoop_http_respond).
 */
#define HTTP_SESS_AWAITING   0x1u /* a request waits for its response */
#define HTTP_SESS_KEEP_ALIVE 0x2u
#define HTTP_SESS_HEAD       0x4u
#define HTTP_SESS_CLAIMED    0x8u  /* swoop_http_respond took it: a second call is refused */
#define HTTP_SESS_STARTED    0x10u /* bytes of the response were sent */
/* Bits 24..25: the coding the request accepts (SWOOP_HTTP_CODING_*), for swoop_http_respond. */
#define HTTP_SESS_CODING(f)       (((f) >> 24) & 0x3u)
#define HTTP_SESS_CODING_BITS(cd) (((uint32_t)(cd)&0x3u) << 24)

/* How long a worker waits for a slow client to make room for the rest of a response. */
#define HTTP_SEND_WAIT_MS  10000
#define HTTP_SESS_MINOR(f) (((f) >> 8) & 0xffu)
#define HTTP_SESS_SEQ(f)   (((f) >> 16) & 0xffu)

/*
 * A detached response's id: the connection's session slot (bits 0..23), the
 * request's number on it (8 bits) and the low 32 bits of the connection's
 * own sequence, so an id never answers another connection or a later
 * request of the same one.
 */
static inline uint64_t swoop__http_detach_id(uint64_t conn, uint32_t seq)
{
    return (conn & 0xffffffu) | ((uint64_t)(seq & 0xffu) << 24) |
           (((conn >> 24) & 0xffffffffu) << 32);
}

/* conn.c: the protocol table registered for SWOOP_PROTO_HTTP. */
extern const swoop_proto_t swoop__http_proto;

/*
 * static.c: serves the request whose parsed head is hd (at req) from the
 * port's document_root, when it names a file there: 1 (the response is
 * queued), 0 (not a static request: on to the handler), -1 (c failed).
 */
int swoop__http_static(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req,
                       int keep_alive);
/* static.c: the Content-Type for a file name (/etc/mime.types). */
const char *swoop__http_mime_type(const char *path);

/* One access log line's fields (any may be NULL: "-"). */
typedef struct swoop_http_access_s {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int version_minor;
    int status;
    uint64_t bytes; /* of the response, head included */
    const char *referer;
    size_t referer_len;
    const char *user_agent;
    size_t user_agent_len;
    int64_t duration_us; /* request whole -> response handed on; -1 unknown (JSON only) */
} swoop_http_access_t;

/*
 * access.c: writes one line to fd (the port's access_fd; -1: off) in
 * `format` (SWOOP_ACCESS_LOG_*: the port's http_access_log_format).
 */
void swoop__http_access(int fd, int format, const swoop_addr_t *peer, const swoop_http_access_t *a);

/*
 * The WebSocket layer (above) upgrades handshake requests: it answers
 * with swoop__http_upgrade_end, or refuses with an ordinary response.
 */
typedef void (*swoop_http_upgrade_fn)(swoop_server_t *srv, swoop_http_request_t *req,
                                      swoop_http_response_t *res);
/* handler.c: registers the HTTP protocol (if swoop_http_on_request did not) and the upgrade. */
int swoop__http_enable(swoop_server_t *srv, swoop_http_upgrade_fn upgrade);
/*
 * handler.c: ends res as "101 Switching Protocols" to `protocol` with the
 * extra `fields` (each ending in CRLF); the owner switches the connection
 * when it queues these bytes, handing `arg` (24 bits: what the handshake
 * agreed, e.g. WebSocket extensions) to the new protocol's conn_open as
 * c->proto_arg. 0 or a send error.
 */
int swoop__http_upgrade_end(swoop_http_response_t *res, const char *protocol, const char *fields,
                            uint32_t arg);

/* handler.c: the worker's side of swoop__http_proto. */
void swoop__http_message(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, char *data,
                         size_t len);
/*
 * handler.c: the swoop_http_on_expect hook's verdict on a request message
 * msg[0, len) without a body (the owner's, made writable for it): 0, or the
 * status to answer (400..599). No hook: 0.
 */
int swoop__http_expect(swoop_server_t *srv, swoop_conn_id_t conn, const swoop_addr_t *peer,
                       char *msg, size_t len);
/* handler.c: an event worker ends a response a task worker answered (swoop_http_respond). */
void swoop__http_relay(swoop_server_t *srv, char *data, size_t len);

/* Counts a response of `status` (and a refused request) in the writer's counter block. */
/*
 * CLOCK_MONOTONIC in microseconds, the low 32 bits: the owner stamps a
 * request with it and the worker subtracts (modulo 2^32, so right for any
 * latency under 71 minutes). The clock is one for all processes.
 */
static inline uint32_t swoop__http_us32(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

static inline void swoop__http_count(swoop_srv_counter_t *cnt, int status, int bad)
{
    int cls = status / 100 - 2;
    if (cls >= 0 && cls < 4)
        atomic_fetch_add_explicit(&cnt->http_status[cls], 1, memory_order_relaxed);
    if (bad)
        atomic_fetch_add_explicit(&cnt->http_bad, 1, memory_order_relaxed);
}

/* handler.c: appends a field without replacing one of the same name (Set-Cookie). */
int swoop__http_field_add(swoop_http_response_t *res, const char *name, const char *value);

/* handler.c: the reason phrase of a status ("Not Found"), "" for an unknown one. */
const char *swoop__http_reason(int status);

/* handler.c: removes the field `name` (nl bytes, any case) from serialized fields. */
void swoop__http_field_remove(swoop_buf_t *b, const char *name, size_t nl);

/* ---- compress.c: response compression (zlib) ---- */

/* One deflate stream (gzip or deflate framing), for a streamed response. */
typedef struct swoop_http_zstream_s swoop_http_zstream_t;

/* A new stream at zlib `level`; 0, SWOOP_ENOMEM or SWOOP_EINVAL (logged). */
int swoop__http_zstream_new(swoop_http_zstream_t **out, int coding, int level);
/* Compresses in[0, len) onto out: flushed (Z_SYNC_FLUSH), or the stream's end when `finish`. */
int swoop__http_zstream_push(swoop_http_zstream_t *z, const void *in, size_t len, int finish,
                             swoop_buf_t *out);
void swoop__http_zstream_free(swoop_http_zstream_t *z);
/* A whole body compressed onto out (with the calling thread's cached stream). */
int swoop__http_deflate_once(int coding, int level, const void *in, size_t len, swoop_buf_t *out);
/* 1 when Content-Type ct[0, ct_len) is in the comma-separated `types` (subtype "*" allowed). */
int swoop__http_type_listed(const char *types, const char *ct, size_t ct_len);
/*
 * Decides a response's coding: returns SWOOP_HTTP_CODING_* (identity: 0)
 * after editing `fields` (Vary, Content-Encoding, a weakened ETag), or
 * SWOOP_ENOMEM. len: the body's length, -1 when streamed. accept: what the
 * client takes (swoop__http_codings_pick).
 */
int swoop__http_compress_decide(const swoop_port_settings_t *ps, int accept, int status,
                                int64_t len, swoop_buf_t *fields);
/* The coding a parsed request head (at req) accepts; gzip and deflate allowed as `allowed`. */
int swoop__http_accept_of_head(const swoop_http_head_t *hd, const char *req, int allowed);

/*
 * static.c's compressed representation of a file (compress.c): a
 * precompressed FILE.gz sibling (not older than the file; it replaces fd
 * and st), or the file compressed on the fly (at most 256 KiB, a listed
 * type, at least http_compression_min_length bytes), or none.
 */
typedef struct swoop_http_static_z_s {
    int coding;              /* Content-Encoding of what is sent, 0: identity */
    int vary;                /* the representation depends on Accept-Encoding */
    int on_the_fly;          /* coding: compress the file (swoop__http_static_deflate) */
    int level;               /* ... at this level */
    const char *etag_prefix; /* "W/" on the fly: the bytes are not the file's */
    swoop_buf_t body;        /* the compressed bytes (on the fly); swoop__buf_free it */
} swoop_http_static_z_t;

/* Decides z for the request (hd at req) of the open file *fd of `type`; may swap *fd and *st. */
int swoop__http_static_coding(const swoop_port_settings_t *ps, const swoop_http_head_t *hd,
                              const char *req, const char *type, int *fd, struct stat *st,
                              swoop_http_static_z_t *z);
/* Compresses the file's `size` bytes into z->body; 0 or a negative code (logged). */
int swoop__http_static_deflate(swoop_http_static_z_t *z, int fd, size_t size);
/* The fields z adds to the response head (Content-Encoding, Vary), "" for none. */
const char *swoop__http_static_fields(const swoop_http_static_z_t *z);

/* handler.c: the current Date field value (29 bytes + NUL), cached per second and thread. */
const char *swoop__http_date(void);
/*
 * handler.c: "Server: NAME\r\nDate: ...\r\n" for a response of a port with
 * settings ps (its http_server_name; "" or ps NULL: the Date field alone).
 * The calling thread's buffer, valid until its next call.
 */
const char *swoop__http_server_date(const swoop_port_settings_t *ps);

#endif /* SWOOP_HTTP_INTERNAL_H */
