/*
 * HTTP/1.1 request parser and chunked body decoder (RFC 9110/9112), strict
 * as PROTOCOL-NOTES section 2 asks. Pure: no I/O, no allocation. The head
 * parser is a byte-level state machine over the caller's growing buffer: it
 * records offsets (never pointers), so the buffer may move between calls and
 * the parsed head can travel in an IPC message as offsets into one buffer;
 * each call resumes at the byte where the previous one stopped, so every
 * byte is examined once and the result is the same for any split of the
 * input. Syntax is checked byte by byte; the meaning of the fields
 * (Content-Length, Transfer-Encoding, Host, Connection) is checked in one
 * pass over the header array once the head is complete. Every rejection is
 * a typed error with the status the server answers before it closes.
 *
 * Throughput (bench/http_parser.c: a 366-byte browser request with 7
 * fields, -O2, CPU time on the shared 2-core dev VM): about 2.4 GB/s,
 * 6.6 M requests/s whole and 5.9 M/s fed in 64-byte pieces; 0.27x the
 * speed of a bare memchr line splitter over the same bytes, which finds
 * line ends and colons and validates nothing. Internal to the library (L1).
 */
#ifndef SWOOP_PROTO_HTTP_PARSER_H
#define SWOOP_PROTO_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The head is not complete yet: call again when more bytes arrived. */
#define SWOOP_HTTP_INCOMPLETE (-2)

/*
 * XX(name, value, status, reason). The values are stable (they may be
 * logged or sent between processes); status is what the server answers.
 */
#define SWOOP_HTTP_ERRORS(XX)                                                                      \
    XX(BARE_LF, -10, 400, "bare LF")                                                               \
    XX(BARE_CR, -11, 400, "CR not followed by LF")                                                 \
    XX(METHOD, -12, 400, "bad method token")                                                       \
    XX(REQUEST_LINE, -13, 400, "extra or missing space in the request line")                       \
    XX(TARGET, -14, 400, "bad request-target")                                                     \
    XX(HTTP09, -15, 400, "HTTP/0.9 request line")                                                  \
    XX(VERSION, -16, 400, "malformed HTTP version")                                                \
    XX(HEADER_NAME, -17, 400, "empty or bad field name")                                           \
    XX(HEADER_SPACE, -18, 400, "whitespace before the colon")                                      \
    XX(OBS_FOLD, -19, 400, "obs-fold (line starting with whitespace)")                             \
    XX(HEADER_VALUE, -20, 400, "control character in a field value")                               \
    XX(CL_TE, -21, 400, "both Content-Length and Transfer-Encoding")                               \
    XX(CL_REPEATED, -22, 400, "repeated Content-Length")                                           \
    XX(CL_BAD, -23, 400, "bad Content-Length value")                                               \
    XX(TE_NOT_CHUNKED, -24, 400, "Transfer-Encoding malformed or not ending in chunked")           \
    XX(TE_HTTP10, -25, 400, "Transfer-Encoding on HTTP/1.0")                                       \
    XX(HOST_MISSING, -26, 400, "HTTP/1.1 request without Host")                                    \
    XX(HOST_REPEATED, -27, 400, "two Host fields")                                                 \
    XX(HOST_BAD, -28, 400, "bad Host value")                                                       \
    XX(CHUNK_SIZE, -29, 400, "bad chunk size")                                                     \
    XX(CHUNK_EXT, -30, 400, "bad or too long chunk extension")                                     \
    XX(CHUNK_DATA, -31, 400, "chunk data not followed by CRLF")                                    \
    XX(CHUNK_OVERHEAD, -32, 400, "chunk framing overhead too large")                               \
    XX(TE_UNKNOWN, -33, 501, "unknown transfer coding")                                            \
    XX(CONNECT, -34, 501, "CONNECT (not a proxy)")                                                 \
    XX(ASTERISK, -35, 405, "asterisk-form target without OPTIONS")                                 \
    XX(VERSION_UNSUPPORTED, -36, 505, "HTTP major version not supported")                          \
    XX(HEAD_TOO_LARGE, -37, 431, "request head too large")                                         \
    XX(TOO_MANY_HEADERS, -38, 431, "too many header fields")                                       \
    XX(TRAILER_TOO_LARGE, -39, 431, "trailer section too large")                                   \
    XX(URI_TOO_LONG, -40, 414, "request-target too long")                                          \
    XX(BODY_TOO_LARGE, -41, 413, "body too large")

typedef enum {
#define SWOOP_HTTP_ERR_ENUM(name, value, status, reason) SWOOP_HTTP_E_##name = value,
    SWOOP_HTTP_ERRORS(SWOOP_HTTP_ERR_ENUM)
#undef SWOOP_HTTP_ERR_ENUM
} swoop_http_err_t;

/* A byte range of the buffer given to the parser: buf[off, off + len). */
typedef struct swoop_http_span_s {
    uint32_t off;
    uint32_t len;
} swoop_http_span_t;

typedef struct swoop_http_header_s {
    swoop_http_span_t name;  /* as received (case kept) */
    swoop_http_span_t value; /* without leading and trailing OWS */
} swoop_http_header_t;

typedef enum {
    SWOOP_HTTP_BODY_NONE = 0,    /* no Content-Length, no Transfer-Encoding */
    SWOOP_HTTP_BODY_LENGTH = 1,  /* content_length bytes (possibly 0) */
    SWOOP_HTTP_BODY_CHUNKED = 2, /* decode with swoop__http_chunked_decode */
} swoop_http_body_t;

typedef struct swoop_http_limits_s {
    uint32_t max_head; /* bytes of request line + fields + final CRLF (431) */
    uint32_t max_uri;  /* bytes of the request-target (414) */
    uint64_t max_body; /* Content-Length or decoded chunked size (413) */
} swoop_http_limits_t;

/*
 * One request head. Set up with swoop__http_head_init, then pass to
 * swoop__http_parse_request with the same header array until it returns a
 * length or an error. The public fields are valid once it returned > 0.
 */
typedef struct swoop_http_head_s {
    swoop_http_span_t method;
    swoop_http_span_t target;    /* as received */
    swoop_http_span_t path;      /* origin path without the query; len 0 means "/" */
    swoop_http_span_t query;     /* after '?' (len 0 when absent or empty) */
    swoop_http_span_t authority; /* absolute-form only: host[:port] of the target */
    swoop_http_span_t host;      /* the Host field's value */
    swoop_http_span_t upgrade;   /* the Upgrade field's value (len 0 when absent) */
    int version_minor;           /* 0 or 1; HTTP/1.2+ is processed as 1.1 */
    swoop_http_header_t *headers;
    uint32_t max_headers; /* capacity of headers (431 above) */
    uint32_t num_headers;
    uint32_t head_len;
    swoop_http_body_t body;
    uint64_t content_length;
    unsigned has_query : 1;         /* a '?' was there, even with an empty query */
    unsigned absolute_form : 1;     /* http(s)://authority/path */
    unsigned asterisk_form : 1;     /* OPTIONS * */
    unsigned keep_alive : 1;        /* the connection may carry another request */
    unsigned expect_continue : 1;   /* Expect: 100-continue on HTTP/1.1 */
    unsigned upgrade_requested : 1; /* Connection: upgrade and an Upgrade field */
    unsigned te_coded : 1;          /* codings before chunked: the body stays encoded */
    /* private */
    uint32_t _pos;
    uint8_t _state;
    uint8_t _vbyte;
    int _result;
} swoop_http_head_t;

/* Chunked body decoder state; set up with swoop__http_chunked_init. */
typedef struct swoop_http_chunked_s {
    uint64_t max_body;    /* decoded bytes allowed (413 above) */
    uint32_t max_trailer; /* bytes of trailer section allowed (431 above) */
    /*
     * Set by each call: the trailer section's bytes that call consumed,
     * buf[trailer_off, trailer_off + trailer_len) (raw, checked, the final
     * CRLF included; len 0: none). The decoder never writes over them, so
     * the caller can keep them (swoop__http_trailer_pack once all came).
     */
    size_t trailer_off;
    size_t trailer_len;
    /* private */
    uint64_t _remaining; /* chunk size being read, then data bytes left */
    uint64_t _total;     /* decoded bytes so far */
    uint64_t _overhead;  /* framing bytes so far */
    uint32_t _line;      /* bytes of the current size line or trailer section */
    uint8_t _state;
    int _result;
} swoop_http_chunked_t;

/* Prepares `req` for a new request whose fields go to headers[0, max_headers). */
void swoop__http_head_init(swoop_http_head_t *req, swoop_http_header_t *headers,
                           uint32_t max_headers);

/*
 * Parses the head at the start of buf[0, len). The caller keeps the bytes
 * already given (the buffer may move, offsets stay valid) and calls again
 * with len grown. Returns the head's length (> 0, body and pipelined
 * requests follow it), SWOOP_HTTP_INCOMPLETE, or a SWOOP_HTTP_E_* error.
 * After a length or an error, further calls return the same value.
 */
ssize_t swoop__http_parse_request(swoop_http_head_t *req, const char *buf, size_t len,
                                  const swoop_http_limits_t *lim);

void swoop__http_chunked_init(swoop_http_chunked_t *dec, uint64_t max_body, uint32_t max_trailer);

/*
 * Decodes the next bytes of a chunked body in place. buf[0, len) are new
 * bytes (each byte is given once); the data they carry is moved to
 * buf[0, *out_len). Returns SWOOP_HTTP_INCOMPLETE when all len bytes were
 * used and the body goes on; when the body (with its trailer section,
 * checked and reported in trailer_off/len) ended, the count of bytes of buf it used, so
 * buf[ret, len) is the start of the next request; or a SWOOP_HTTP_E_* error.
 */
ssize_t swoop__http_chunked_decode(swoop_http_chunked_t *dec, char *buf, size_t len,
                                   size_t *out_len);

/*
 * Rewrites a whole trailer section sec[0, len), as the decoder reported it
 * (field lines, then the final CRLF), in place as NUL-terminated name and
 * value pairs, each value without its surrounding blanks. Returns the
 * packed length (0 without fields); *count gets the number of fields.
 */
size_t swoop__http_trailer_pack(char *sec, size_t len, uint32_t *count);

/* The HTTP status for an error code (400 for an unknown one). */
int swoop__http_error_status(int err);

/* A short reason for logs ("bare LF", ...). */
const char *swoop__http_error_reason(int err);

#endif /* SWOOP_PROTO_HTTP_PARSER_H */
