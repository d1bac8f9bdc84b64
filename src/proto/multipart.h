/*
 * multipart/form-data (RFC 7578 over RFC 2046) as a streaming, resumable
 * parser. Pure: no I/O and no allocation (the parser is one fixed-size
 * struct the caller owns). The caller feeds the body in pieces of any size;
 * each call consumes a prefix of the piece and reports at most one event: a
 * part began (its headers are parsed and checked), a run of a part's bytes
 * (pointing into the caller's piece, or into the parser's own copy of the
 * delimiter when bytes held back at a piece's end turned out not to start
 * one), a part ended, or the body's final delimiter. A delimiter split
 * across pieces is recognised all the same, so the events, and the bytes of
 * each part, do not depend on how the body was cut. Anything malformed
 * (a missing boundary, a bad part header, no name, a missing final
 * delimiter) is a typed error. Internal to the library (L1).
 */
#ifndef SWOOP_PROTO_MULTIPART_H
#define SWOOP_PROTO_MULTIPART_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* RFC 2046 section 5.1.1: a boundary has 1 to 70 characters. */
#define SWOOP_MP_BOUNDARY_MAX 70
/* Bytes of one part's header section, its final empty line included. */
#define SWOOP_MP_HEAD_MAX 2048

/* XX(name, value, reason); every one is answered 400 by the server. */
#define SWOOP_MP_ERRORS(XX)                                                                        \
    XX(NO_BOUNDARY, -50, "multipart/form-data without a boundary parameter")                       \
    XX(BAD_BOUNDARY, -51, "bad multipart boundary (1..70 characters of RFC 2046 bchars)")          \
    XX(BAD_CONTENT_TYPE, -52, "malformed Content-Type parameters")                                 \
    XX(DELIMITER, -53, "bad multipart delimiter line")                                             \
    XX(HEAD_TOO_LARGE, -54, "part header section too large")                                       \
    XX(HEAD_SYNTAX, -55, "malformed part header line")                                             \
    XX(DISPOSITION, -56, "missing or malformed Content-Disposition: form-data")                    \
    XX(NO_NAME, -57, "part without a name")                                                        \
    XX(TRUNCATED, -58, "multipart body ends before its final delimiter")

#define SWOOP_MP_ERROR_ENUM(name, value, reason) SWOOP_MP_E_##name = (value),
enum { SWOOP_MP_ERRORS(SWOOP_MP_ERROR_ENUM) };
#undef SWOOP_MP_ERROR_ENUM

/* The reason phrase of an error code (for logs); "" for another value. */
const char *swoop__mp_error_reason(int err);

/*
 * Reads a Content-Type field value. Returns 1 when it is not
 * multipart/form-data (any case), 0 when it is and its boundary parameter
 * (token or quoted-string) is valid: copied to out (SWOOP_MP_BOUNDARY_MAX + 1
 * bytes, NUL-terminated), *out_len its length; an error (NO_BOUNDARY,
 * BAD_BOUNDARY, BAD_CONTENT_TYPE) when it is multipart/form-data with a
 * missing, invalid or repeated boundary or malformed parameters.
 */
int swoop__mp_boundary(const char *ct, size_t len, char *out, size_t *out_len);

typedef enum {
    SWOOP_MP_EV_NONE = 0, /* the piece is used up: feed more */
    SWOOP_MP_EV_PART,     /* a part begins: its fields are in the parser (below) */
    SWOOP_MP_EV_DATA,     /* ev->data, ev->len: bytes of the current part */
    SWOOP_MP_EV_PART_END, /* the current part is complete */
    SWOOP_MP_EV_DONE      /* the final delimiter: later bytes are the epilogue (ignored) */
} swoop_mp_event_type_t;

typedef struct swoop_mp_event_s {
    swoop_mp_event_type_t type;
    const char *data;
    size_t len;
} swoop_mp_event_t;

/* A span of the parser's head buffer (decoded in place; NUL-terminated). */
typedef struct swoop_mp_span_s {
    uint32_t off;
    uint32_t len;
} swoop_mp_span_t;

typedef struct swoop_mp_s {
    int state;
    int has_filename;         /* the current part carries filename= (a file) */
    int has_type;             /* ... and a Content-Type field */
    size_t match;             /* bytes of delim matched at the end of the last piece */
    size_t delim_len;         /* "\r\n--" + boundary */
    size_t head_len;          /* bytes of the current part's header section so far */
    swoop_mp_span_t name;     /* Content-Disposition name= */
    swoop_mp_span_t filename; /* filename= ("" when absent) */
    swoop_mp_span_t type;     /* Content-Type value ("" when absent) */
    char delim[4 + SWOOP_MP_BOUNDARY_MAX];
    char head[SWOOP_MP_HEAD_MAX + 1];
} swoop_mp_t;

/* Starts a body delimited by boundary b (b_len bytes, as swoop__mp_boundary gave it). */
void swoop__mp_init(swoop_mp_t *mp, const char *b, size_t b_len);

/*
 * Consumes a prefix of buf[0, len) and reports at most one event in *ev.
 * Returns the bytes consumed (the caller feeds the rest again; with
 * SWOOP_MP_EV_NONE all of it was consumed), or an error. After an error
 * the parser stays in error and returns it again.
 */
ssize_t swoop__mp_parse(swoop_mp_t *mp, const char *buf, size_t len, swoop_mp_event_t *ev);

/* 1 when the final delimiter was seen (the body may end now), else 0. */
int swoop__mp_done(const swoop_mp_t *mp);

/* A span of the current part's head as a string. */
static inline const char *swoop__mp_str(const swoop_mp_t *mp, swoop_mp_span_t s)
{
    return mp->head + s.off;
}

#endif /* SWOOP_PROTO_MULTIPART_H */
