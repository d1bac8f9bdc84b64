/*
 * HTTP/1.1 server on top of swoop_server_t. A port speaks HTTP when its
 * setting open_http_protocol is 1 (swoop_port_set, or swoop_server_set for
 * every port). The connection owner (PROCESS: the reactor thread; BASE: the
 * worker) parses each request once, strictly (RFC 9110/9112: malformed
 * requests are answered 400/413/414/431/501/505 and closed without reaching
 * a handler), answers 100-continue, and hands the worker one parsed request;
 * the handler registered with swoop_http_on_request answers it. Requests of
 * one connection reach the handler one at a time, in order: the next one is
 * read once the previous response ended, so responses are never reordered.
 */
#ifndef SWOOP_HTTP_H
#define SWOOP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <swoop/server.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A parsed request; valid until the handler returns. */
typedef struct swoop_http_request_s swoop_http_request_t;
/** The response to one request; valid until the handler returns. */
typedef struct swoop_http_response_s swoop_http_response_t;

/**
 * Runs in a worker for each request of an HTTP port. It must end the
 * response (swoop_http_end) before it returns; one that does not gets a 500
 * (or, when the body was already streaming, its end) and a log line.
 */
typedef void (*swoop_http_handler_t)(swoop_server_t *srv, swoop_http_request_t *req,
                                     swoop_http_response_t *res);

/**
 * Sets the handler of every HTTP port (before swoop_server_start). A port
 * with open_http_protocol and no handler fails the start. Returns 0,
 * SWOOP_EINVAL or SWOOP_ESTATE (after the start).
 */
SWOOP_EXTERN int swoop_http_on_request(swoop_server_t *srv, swoop_http_handler_t handler);

/**
 * Decides a request that carries `Expect: 100-continue` before its body is
 * read. It sees the head only: method, path, query, version and fields
 * (swoop_http_body gives "" and 0; swoop_http_remote_addr and
 * swoop_http_conn work; nothing may be sent). Returns 0 to go on (the
 * client gets 100 Continue and sends the body), or an HTTP status from 400
 * to 599 (417 Expectation Failed, 413, 401...): the request is answered
 * with that status, an empty body and `Connection: close`, and the
 * connection closes without reading the body. Another value is taken as
 * 500 (logged).
 *
 * It runs in the connection's owner, where the head was parsed: in BASE
 * mode the worker that owns the connection, in PROCESS mode a reactor
 * thread of the master process, several of them at once. So it must be
 * thread-safe, must not block (every connection of that thread waits) and
 * may call only the swoop_http_* request accessors; a crash in it takes
 * the master down. Deciding in the owner answers before a single body byte
 * is read, with no round trip to a worker that may be busy.
 */
typedef int (*swoop_http_expect_fn)(swoop_server_t *srv, const swoop_http_request_t *req);

/**
 * Sets the hook of every HTTP port for `Expect: 100-continue` requests
 * (before swoop_server_start); NULL removes it (every such request then gets
 * 100 Continue). Returns 0, SWOOP_EINVAL or SWOOP_ESTATE (after the start).
 */
SWOOP_EXTERN int swoop_http_on_expect(swoop_server_t *srv, swoop_http_expect_fn fn);

/** The method as sent ("GET"). */
SWOOP_EXTERN const char *swoop_http_method(const swoop_http_request_t *req);
/** The path as sent, without "?query" ("/" for an absolute-form target without one). */
SWOOP_EXTERN const char *swoop_http_path(const swoop_http_request_t *req);
/** What follows '?', as sent (not decoded); "" if none. */
SWOOP_EXTERN const char *swoop_http_query(const swoop_http_request_t *req);
/** 0 for HTTP/1.0, 1 for HTTP/1.1. */
SWOOP_EXTERN int swoop_http_version(const swoop_http_request_t *req);
/** The value of the first field called `name` (any case), without surrounding blanks; NULL if
 * absent. */
SWOOP_EXTERN const char *swoop_http_header(const swoop_http_request_t *req, const char *name);
/** The number of header fields. */
SWOOP_EXTERN int swoop_http_header_count(const swoop_http_request_t *req);
/** Field `i` (0 .. count - 1): sets *name and *value; 0, or SWOOP_EINVAL. */
SWOOP_EXTERN int swoop_http_header_at(const swoop_http_request_t *req, int i, const char **name,
                                      const char **value);
/**
 * The number of trailer fields of a chunked request body (sent after its
 * last chunk); 0 for other bodies. The trailer section is limited by
 * http_max_header_size (431 above). Trailer fields are only given here:
 * they never replace or add to the header fields.
 */
SWOOP_EXTERN int swoop_http_trailer_count(const swoop_http_request_t *req);
/** Trailer field `i` (0 .. count - 1, as sent): sets *name and *value; 0, or SWOOP_EINVAL. */
SWOOP_EXTERN int swoop_http_trailer_at(const swoop_http_request_t *req, int i, const char **name,
                                       const char **value);
/** The value of the first trailer field called `name` (any case), without surrounding blanks;
 * NULL if absent. */
SWOOP_EXTERN const char *swoop_http_trailer(const swoop_http_request_t *req, const char *name);
/**
 * The whole body (Content-Length or decoded chunked), *len its size; an
 * empty body gives a non-NULL pointer and 0. Bodies are limited by
 * package_max_length (413 above). A multipart/form-data body is parsed
 * as it arrives and not kept: this gives "" and 0, and its parts are read
 * with swoop_http_form_get and swoop_http_file_at.
 */
SWOOP_EXTERN const void *swoop_http_body(const swoop_http_request_t *req, size_t *len);
/**
 * Decodes the query parameter `name` ("a=1&b=x%20y", '+' for a space) into
 * out (cap bytes, NUL-terminated). Returns its length, SWOOP_ENOENT when
 * absent, SWOOP_ENOSPC when out is too small, SWOOP_EINVAL for a bad escape.
 */
SWOOP_EXTERN int swoop_http_query_get(const swoop_http_request_t *req, const char *name, char *out,
                                      size_t cap);
/**
 * The same for an application/x-www-form-urlencoded body, or the first text
 * field (a part without filename=) called `name` of a multipart/form-data
 * body, copied as sent (it may hold any byte, NUL too: use the returned
 * length). SWOOP_ENOENT for other bodies.
 */
SWOOP_EXTERN int swoop_http_form_get(const swoop_http_request_t *req, const char *name, char *out,
                                     size_t cap);

/** One uploaded file of a multipart/form-data request; strings valid until the handler returns. */
typedef struct swoop_http_file_s {
    const char *field;    /**< the form field's name */
    const char *filename; /**< the client's name for it, "" if empty: never trust it as a path */
    const char *content_type; /**< the part's Content-Type, "text/plain" when none was sent */
    const char *path;         /**< the file in upload_tmp_dir (mode 0600) */
    uint64_t size;            /**< its size in bytes */
} swoop_http_file_t;

/** The number of file parts (parts with filename=) of the request; 0 for other bodies. */
SWOOP_EXTERN int swoop_http_file_count(const swoop_http_request_t *req);
/** File part `i` (0 .. count - 1, in the body's order) into *out; 0, or SWOOP_EINVAL. */
SWOOP_EXTERN int swoop_http_file_at(const swoop_http_request_t *req, int i, swoop_http_file_t *out);
/**
 * Moves file part `i` to `dest` (a file name; an existing file is
 * replaced) with rename(2), or a copy and a removal when dest is on
 * another file system. A file not moved is removed once the response
 * ended (or the connection closed). Returns 0, SWOOP_EINVAL, or the
 * failing call's error (SWOOP_ENOENT when it was already moved); a copy
 * that fails leaves no partial dest.
 */
SWOOP_EXTERN int swoop_http_file_move(const swoop_http_request_t *req, int i, const char *dest);
/** The same for a cookie of the Cookie field ("a=1; b=2"; %XX decoded, + kept). */
SWOOP_EXTERN int swoop_http_cookie_get(const swoop_http_request_t *req, const char *name, char *out,
                                       size_t cap);
/** The client's address (taken when the request arrived): 0, or SWOOP_EINVAL. */
SWOOP_EXTERN int swoop_http_remote_addr(const swoop_http_request_t *req, swoop_addr_t *out);
/** The connection the request came on (for swoop_server_conn_info, ...). */
SWOOP_EXTERN swoop_conn_id_t swoop_http_conn(const swoop_http_request_t *req);

/** Sets the status (200..999) before anything was sent; 0, SWOOP_EINVAL or SWOOP_ESTATE. */
SWOOP_EXTERN int swoop_http_status(swoop_http_response_t *res, int code);
/**
 * Adds a field before anything was sent. Names are tokens; CR, LF and NUL
 * are refused in both (no response splitting). Content-Length,
 * Transfer-Encoding and Date are set by the library and refused here;
 * "Connection: close" closes the connection after the response.
 * Returns 0, SWOOP_EINVAL or SWOOP_ESTATE.
 */
SWOOP_EXTERN int swoop_http_header_set(swoop_http_response_t *res, const char *name,
                                       const char *value);
/** Attributes of a response cookie; zero (or NULL) leaves one out. */
typedef struct swoop_http_cookie_s {
    int64_t max_age;       /**< seconds (Max-Age); 0: a session cookie; < 0: expire it now */
    const char *path;      /**< Path */
    const char *domain;    /**< Domain */
    const char *same_site; /**< "Strict", "Lax" or "None" */
    int secure;            /**< Secure */
    int http_only;         /**< HttpOnly */
} swoop_http_cookie_t;

/**
 * Adds a Set-Cookie field (before anything was sent). The name must be a
 * token; the value is sent as given and must be cookie-octets (no space,
 * quote, comma, semicolon, backslash or control byte: encode it first).
 * `attrs` may be NULL. Returns 0, SWOOP_EINVAL or SWOOP_ESTATE.
 */
SWOOP_EXTERN int swoop_http_cookie_set(swoop_http_response_t *res, const char *name,
                                       const char *value, const swoop_http_cookie_t *attrs);

/** Ends the response as a redirect (301, 302, 303, 307 or 308) to `location`. */
SWOOP_EXTERN int swoop_http_redirect(swoop_http_response_t *res, int status, const char *location);

/**
 * Streams part of the body: the first call sends the head (chunked
 * encoding to HTTP/1.1 clients; to HTTP/1.0 clients the body ends with the
 * connection). A compressed response (http_compression, docs/api/http.md)
 * deflates each piece and flushes it, so nothing is held back. Returns 0,
 * or a swoop_server_send error (SWOOP_ECLOSED ...).
 */
SWOOP_EXTERN int swoop_http_write(swoop_http_response_t *res, const void *data, size_t len);
/**
 * Ends the response with `data` as (the rest of) its body; a response not
 * streamed gets a Content-Length. HEAD requests and 204/304 responses carry
 * no body. A body of a type listed in http_compression_types is compressed
 * when the client accepts gzip or deflate (unless the handler set its own
 * Content-Encoding). Returns 0, SWOOP_ESTATE when it already ended, or a
 * send error.
 */
SWOOP_EXTERN int swoop_http_end(swoop_http_response_t *res, const void *data, size_t len);

/**
 * Adds a trailer field, sent after the body of a chunked response (HTTP/1.1
 * clients; any time before the end). A response with trailers streams: one
 * ended with swoop_http_end alone is sent chunked too. To HTTP/1.0
 * clients, HEAD requests and bodiless statuses they are not sent. Fields
 * that frame, route or describe the body (Content-Length, Transfer-Encoding,
 * Host, Content-Type, Content-Encoding, Content-Range, Connection, Trailer,
 * Date, Set-Cookie, Cache-Control, Authorization) are refused, as are CR and LF.
 * Returns 0, SWOOP_EINVAL or SWOOP_ESTATE (the response ended).
 */
SWOOP_EXTERN int swoop_http_trailer_set(swoop_http_response_t *res, const char *name,
                                        const char *value);

/**
 * Ends the response with bytes [offset, offset + length) of the file at
 * `path` (length 0: to its end) as the body, sent with sendfile(2) by the
 * connection's owner. Content-Type comes from the file name
 * (/etc/mime.types) unless set. Before anything was sent. Returns 0,
 * SWOOP_EINVAL (the range is past the file's end), SWOOP_ESTATE, a negative
 * errno for a file that cannot be opened or is not regular, or a send error
 * (after the head went out the connection is then reset).
 */
SWOOP_EXTERN int swoop_http_sendfile(swoop_http_response_t *res, const char *path, uint64_t offset,
                                     uint64_t length);

/**
 * 1 while the response can still be written: it has not ended nor been
 * detached, and its connection is open (a client that went away makes it
 * 0, so a long stream can stop early); else 0.
 */
SWOOP_EXTERN int swoop_http_is_writable(const swoop_http_response_t *res);

/**
 * Answer later: the handler may return without ending; the response is
 * then given by swoop_http_respond with the id returned here (0 on error:
 * already ended or detached). The connection reads nothing else meanwhile,
 * so later requests wait behind it (pipelining stays in order).
 */
SWOOP_EXTERN uint64_t swoop_http_detach(swoop_http_response_t *res);

/**
 * Ends the detached response `id` from any event worker (timer, message,
 * on_finish) or task worker (on_task), with `status`, an optional
 * Content-Type (under 256 bytes) and the body. A task worker's answer
 * travels to an event worker, which sends it (in BASE mode the one that
 * owns the connection). Returns 0, SWOOP_ECLOSED when the connection is
 * gone, SWOOP_ESTATE when that request was already answered (or outside a
 * worker), SWOOP_EINVAL for a bad status or Content-Type.
 */
SWOOP_EXTERN int swoop_http_respond(swoop_server_t *srv, uint64_t id, int status,
                                    const char *content_type, const void *body, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SWOOP_HTTP_H */
