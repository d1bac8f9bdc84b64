/*
 * HTTP/1.1 request head parser and chunked body decoder (see
 * http_parser.h). The head parser is a state machine that resumes at the
 * byte where the previous call stopped: inner loops run over a class table
 * until a byte that changes state, so the common bytes cost one load and a
 * test each. Bare LF, bare CR and every other syntax error are caught at the
 * byte that makes them, which is what makes the result independent of how
 * the input was split. Once the final CRLF is seen, head_check() reads the
 * header array once to decide the body framing and the connection's fate,
 * kept apart from the syntax so that both stay readable (h2o's split
 * between picohttpparser and fixup_request). Nothing here allocates.
 */
#include "proto/http_parser.h"

#include <string.h>

/* Byte classes (one table, a bit per class). */
enum {
    C_TOKEN = 0x01,  /* tchar (RFC 9110 5.6.2) */
    C_METHOD = 0x02, /* tchar without lower-case letters */
    C_TARGET = 0x04, /* visible ASCII: 0x21-0x7e */
    C_VALUE = 0x08,  /* field-value byte: HTAB, SP, VCHAR, obs-text */
    C_HOST = 0x10,   /* uri-host / port / IP-literal bytes */
    C_HEX = 0x20
};

static const uint8_t cls[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x08, 0x1f, 0x0c, 0x0f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1c, 0x1c, 0x1f, 0x1f, 0x1c, 0x1f, 0x1f, 0x0c,
    0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x1c, 0x1c, 0x0c, 0x1c, 0x0c, 0x0c,
    0x0c, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f,
    0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1c, 0x0c, 0x1c, 0x0f, 0x1f,
    0x0f, 0x3d, 0x3d, 0x3d, 0x3d, 0x3d, 0x3d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d,
    0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x1d, 0x0c, 0x0f, 0x0c, 0x1f, 0x00,
    0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08,
    0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08,
    0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08,
    0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08,
    0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08,
    0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08,
    0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08,
    0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08,
};

/* Head parser states; the value of _state between calls. */
enum {
    ST_START,    /* before the method; empty lines (CRLF) are skipped */
    ST_START_LF, /* the CR of such an empty line was seen */
    ST_METHOD,   /* in the method */
    ST_TARGET0,  /* first byte of the request-target */
    ST_TARGET,   /* in the request-target */
    ST_VERSION,  /* in "HTTP/x.y"; _vbyte counts the bytes seen */
    ST_RL_LF,    /* the CR ending the request line was seen */
    ST_LINE,     /* at the start of a field line or of the final CRLF */
    ST_NAME,     /* in a field name */
    ST_OWS,      /* after the colon, skipping OWS */
    ST_VALUE,    /* in a field value */
    ST_VALUE_LF, /* the CR ending a field line was seen */
    ST_END_LF,   /* the CR of the final empty line was seen */
    ST_FINISHED  /* _result holds the head length or the error */
};

/* Chunked decoder states. */
enum {
    CS_SIZE0,   /* first hex digit of a chunk size */
    CS_SIZE,    /* more hex digits */
    CS_SIZE_WS, /* BWS after the size: only ';' may follow */
    CS_EXT,     /* chunk extensions, skipped up to the CR */
    CS_SIZE_LF, /* the CR ending the size line was seen */
    CS_DATA,    /* _remaining data bytes to go */
    CS_DATA_CR, /* CRLF after the data */
    CS_DATA_LF,
    CS_T_LINE, /* start of a trailer line or of the final CRLF */
    CS_T_NAME,
    CS_T_VALUE,
    CS_T_VALUE_LF,
    CS_T_END_LF,
    CS_FINISHED
};

/* A size line (hex digits and extensions) longer than this is refused. */
#define SWOOP_HTTP_CHUNK_LINE_MAX 4096
/* Framing bytes allowed beyond the data bytes (tiny chunks burn CPU). */
#define SWOOP_HTTP_CHUNK_OVERHEAD_FREE 65536

static int request_line_check(swoop_http_head_t *req, const unsigned char *p);
static int target_split(swoop_http_head_t *req, const unsigned char *p);
static int head_check(swoop_http_head_t *req, const unsigned char *p,
                      const swoop_http_limits_t *lim);

void swoop__http_head_init(swoop_http_head_t *req, swoop_http_header_t *headers,
                           uint32_t max_headers)
{
    memset(req, 0, sizeof(*req));
    req->headers = headers;
    req->max_headers = max_headers;
    req->_state = ST_START;
}

/* Lower-cases an ASCII letter and leaves every other byte alone. */
static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)(c - 'A') < 26 ? (unsigned char)(c | 0x20) : c;
}

/* Case-insensitive equality of p[0, n) with the lower-case literal s. */
static int ieq(const unsigned char *p, size_t n, const char *s, size_t sn)
{
    if (n != sn)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (lower(p[i]) != (unsigned char)s[i])
            return 0;
    }
    return 1;
}

#define IEQ(p, n, lit) ieq((p), (n), lit, sizeof(lit) - 1)

/*
 * The first i in [i, end) whose byte is not in class `mask`. Unrolled by
 * four: this loop is where the parser spends most of its time.
 */
static inline size_t skip(const unsigned char *p, size_t i, size_t end, uint8_t mask)
{
    while (end - i >= 4) {
        if (!(cls[p[i]] & mask))
            return i;
        if (!(cls[p[i + 1]] & mask))
            return i + 1;
        if (!(cls[p[i + 2]] & mask))
            return i + 2;
        if (!(cls[p[i + 3]] & mask))
            return i + 3;
        i += 4;
    }
    while (i < end && (cls[p[i]] & mask))
        i++;
    return i;
}

ssize_t swoop__http_parse_request(swoop_http_head_t *req, const char *buf, size_t len,
                                  const swoop_http_limits_t *lim)
{
    const unsigned char *p = (const unsigned char *)buf;
    /*
     * Bytes past max_head are never looked at: reaching `end` with more
     * bytes in the buffer is the 431, whatever those bytes are.
     */
    size_t end = len < lim->max_head ? len : lim->max_head;
    size_t i = req->_pos;
    int st = req->_state;
    int err;
    unsigned char c;
    swoop_http_header_t *h;

#define NEED()                                                                                     \
    do {                                                                                           \
        if (i >= end)                                                                              \
            goto more;                                                                             \
    } while (0)
#define FAIL(e)                                                                                    \
    do {                                                                                           \
        err = SWOOP_HTTP_E_##e;                                                                    \
        goto fail;                                                                                 \
    } while (0)

    for (;;) {
        switch (st) {
        case ST_START:
            NEED();
            c = p[i];
            if (cls[c] & C_METHOD) {
                req->method.off = (uint32_t)i++;
                st = ST_METHOD;
                break;
            }
            /* RFC 9112 2.2: ignore an empty line before the request line. */
            if (c == '\r') {
                i++;
                st = ST_START_LF;
                break;
            }
            if (c == '\n')
                FAIL(BARE_LF);
            if (c == ' ' || c == '\t')
                FAIL(REQUEST_LINE);
            FAIL(METHOD);
        case ST_START_LF:
            NEED();
            if (p[i] != '\n')
                FAIL(BARE_CR);
            i++;
            st = ST_START;
            break;
        case ST_METHOD:
            i = skip(p, i, end, C_METHOD);
            NEED();
            c = p[i];
            if (c != ' ') {
                if (c == '\n')
                    FAIL(BARE_LF);
                if (c == '\r' || c == '\t')
                    FAIL(REQUEST_LINE);
                FAIL(METHOD); /* lower case or not a token */
            }
            req->method.len = (uint32_t)(i++ - req->method.off);
            st = ST_TARGET0;
            break;
        case ST_TARGET0:
            NEED();
            c = p[i];
            if (!(cls[c] & C_TARGET)) {
                if (c == '\n')
                    FAIL(BARE_LF);
                if (c == ' ' || c == '\r' || c == '\t')
                    FAIL(REQUEST_LINE);
                FAIL(TARGET);
            }
            req->target.off = (uint32_t)i++;
            st = ST_TARGET;
            break;
        case ST_TARGET: {
            size_t stop = (size_t)req->target.off + lim->max_uri;
            if (stop > end)
                stop = end;
            i = skip(p, i, stop, C_TARGET);
            NEED();
            c = p[i];
            if (c != ' ') {
                if (cls[c] & C_TARGET)
                    FAIL(URI_TOO_LONG); /* byte max_uri + 1 of the target */
                if (c == '\n')
                    FAIL(BARE_LF);
                if (c == '\r')
                    FAIL(HTTP09);
                FAIL(TARGET);
            }
            req->target.len = (uint32_t)(i++ - req->target.off);
            req->_vbyte = 0;
            st = ST_VERSION;
            break;
        }
        case ST_VERSION:
            /* "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 2.3). */
            while (req->_vbyte < 8) {
                NEED();
                c = p[i];
                int k = req->_vbyte, ok;
                if (k < 5)
                    ok = c == (unsigned char)"HTTP/"[k];
                else if (k == 6)
                    ok = c == '.';
                else
                    ok = c >= '0' && c <= '9';
                if (!ok) {
                    if (c == '\n')
                        FAIL(BARE_LF);
                    if (k == 0 && (c == ' ' || c == '\t'))
                        FAIL(REQUEST_LINE);
                    FAIL(VERSION);
                }
                i++;
                req->_vbyte++;
            }
            NEED();
            c = p[i];
            if (c != '\r') {
                if (c == '\n')
                    FAIL(BARE_LF);
                if (c == ' ' || c == '\t')
                    FAIL(REQUEST_LINE);
                FAIL(VERSION);
            }
            i++;
            st = ST_RL_LF;
            break;
        case ST_RL_LF:
            NEED();
            if (p[i] != '\n')
                FAIL(BARE_CR);
            i++;
            err = request_line_check(req, p);
            if (err != 0)
                goto fail;
            st = ST_LINE;
            break;
        case ST_LINE:
            NEED();
            c = p[i];
            if (cls[c] & C_TOKEN) {
                if (req->num_headers == req->max_headers)
                    FAIL(TOO_MANY_HEADERS);
                req->headers[req->num_headers].name.off = (uint32_t)i++;
                st = ST_NAME;
                break;
            }
            if (c == '\r') {
                i++;
                st = ST_END_LF;
                break;
            }
            if (c == ' ' || c == '\t')
                FAIL(OBS_FOLD); /* also whitespace right after the request line */
            if (c == '\n')
                FAIL(BARE_LF);
            FAIL(HEADER_NAME);
        case ST_NAME:
            h = &req->headers[req->num_headers];
            i = skip(p, i, end, C_TOKEN);
            NEED();
            c = p[i];
            if (c != ':') {
                if (c == ' ' || c == '\t')
                    FAIL(HEADER_SPACE);
                if (c == '\n')
                    FAIL(BARE_LF);
                FAIL(HEADER_NAME);
            }
            h->name.len = (uint32_t)(i++ - h->name.off);
            st = ST_OWS;
            break;
        case ST_OWS:
            while (i < end && (p[i] == ' ' || p[i] == '\t'))
                i++;
            NEED();
            req->headers[req->num_headers].value.off = (uint32_t)i;
            st = ST_VALUE;
            break;
        case ST_VALUE: {
            h = &req->headers[req->num_headers];
            i = skip(p, i, end, C_VALUE);
            NEED();
            c = p[i];
            if (c != '\r') {
                if (c == '\n')
                    FAIL(BARE_LF);
                FAIL(HEADER_VALUE); /* NUL or another CTL */
            }
            /* Trailing OWS is dropped here, where the value's end is known. */
            size_t e = i;
            while (e > h->value.off && (p[e - 1] == ' ' || p[e - 1] == '\t'))
                e--;
            h->value.len = (uint32_t)(e - h->value.off);
            req->num_headers++;
            i++;
            st = ST_VALUE_LF;
            break;
        }
        case ST_VALUE_LF:
            NEED();
            if (p[i] != '\n')
                FAIL(BARE_CR);
            i++;
            st = ST_LINE;
            break;
        case ST_END_LF:
            NEED();
            if (p[i] != '\n')
                FAIL(BARE_CR);
            i++;
            req->head_len = (uint32_t)i;
            err = head_check(req, p, lim);
            if (err != 0)
                goto fail;
            req->_pos = (uint32_t)i;
            req->_state = ST_FINISHED;
            req->_result = (int)i;
            return (ssize_t)i;
        default:
            return req->_result;
        }
    }

more:
    req->_pos = (uint32_t)i;
    req->_state = (uint8_t)st;
    if (len > end)
        FAIL(HEAD_TOO_LARGE);
    return SWOOP_HTTP_INCOMPLETE;

fail:
    req->_state = ST_FINISHED;
    req->_result = err;
    return err;
#undef NEED
#undef FAIL
}

/* The request line is complete and well-formed: judge the version, method and target. */
static int request_line_check(swoop_http_head_t *req, const unsigned char *p)
{
    const unsigned char *v = p + req->target.off + req->target.len + 1; /* "HTTP/x.y" */
    /*
     * RFC 9110 6.2: a higher minor version of a major we implement is
     * processed as the highest we know (1.1); any other major gets 505.
     */
    if (v[5] != '1')
        return SWOOP_HTTP_E_VERSION_UNSUPPORTED;
    req->version_minor = v[7] == '0' ? 0 : 1;
    if (IEQ(p + req->method.off, req->method.len, "connect"))
        return SWOOP_HTTP_E_CONNECT; /* methods are upper case here, so this is CONNECT */
    return target_split(req, p);
}

/* Length of a case-insensitive "http://" or "https://" prefix, else 0. */
static size_t scheme_len(const unsigned char *t, size_t n)
{
    if (n >= 7 && IEQ(t, 7, "http://"))
        return 7;
    if (n >= 8 && IEQ(t, 8, "https://"))
        return 8;
    return 0;
}

/* Sorts the target into its form and fills path, query and authority. */
static int target_split(swoop_http_head_t *req, const unsigned char *p)
{
    const unsigned char *t = p + req->target.off;
    size_t n = req->target.len, a = 0;
    if (t[0] == '*' && n == 1) {
        if (!IEQ(p + req->method.off, req->method.len, "options"))
            return SWOOP_HTTP_E_ASTERISK;
        req->asterisk_form = 1;
        req->path = req->target;
        return 0;
    }
    if (t[0] != '/') {
        /* absolute-form: a server must accept it (RFC 9112 3.2.2). */
        size_t s = scheme_len(t, n);
        if (s == 0)
            return SWOOP_HTTP_E_TARGET; /* authority-form without CONNECT, or junk */
        a = s;
        while (a < n && t[a] != '/' && t[a] != '?') {
            /* No userinfo ('@'), as RFC 9110 4.2.4 asks. */
            if (!(cls[t[a]] & C_HOST))
                return SWOOP_HTTP_E_TARGET;
            a++;
        }
        if (a == s)
            return SWOOP_HTTP_E_TARGET;
        req->authority.off = req->target.off + (uint32_t)s;
        req->authority.len = (uint32_t)(a - s);
        req->absolute_form = 1;
    }
    const unsigned char *q = memchr(t + a, '?', n - a);
    size_t qe = q ? (size_t)(q - t) : n;
    req->path.off = req->target.off + (uint32_t)a;
    req->path.len = (uint32_t)(qe - a);
    if (q != NULL) {
        req->has_query = 1;
        req->query.off = req->target.off + (uint32_t)qe + 1;
        req->query.len = (uint32_t)(n - qe - 1);
    }
    return 0;
}

/*
 * The next element of the comma-separated list v[*k, n), without its OWS,
 * as [*s, *e). Empty elements are returned too (s == e); RFC 9110 5.6.1
 * asks recipients to skip them. Returns 0 at the end of the list.
 */
static int list_next(const unsigned char *v, size_t n, size_t *k, size_t *s, size_t *e)
{
    size_t i = *k;
    if (i > n)
        return 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    size_t b = i;
    while (i < n && v[i] != ',')
        i++;
    size_t f = i;
    while (f > b && (v[f - 1] == ' ' || v[f - 1] == '\t'))
        f--;
    *s = b;
    *e = f;
    *k = i + 1; /* past the comma, or n + 1 to end the list */
    return 1;
}

/* What the Transfer-Encoding fields said, accumulated over all of them in order. */
typedef struct te_state_s {
    int count;        /* codings seen */
    int last_chunked; /* the last coding so far is chunked */
    int bad;          /* chunked not last, chunked with parameters, or a syntax error */
    int unknown;      /* a coding we do not know */
    int coded;        /* a known coding other than chunked */
} te_state_t;

static void te_parse(te_state_t *te, const unsigned char *v, size_t n)
{
    size_t k = 0, s, e;
    while (list_next(v, n, &k, &s, &e)) {
        if (s == e)
            continue;
        size_t t = s;
        while (t < e && (cls[v[t]] & C_TOKEN))
            t++;
        size_t r = t; /* the rest must be empty or "OWS ; parameters" */
        while (r < e && (v[r] == ' ' || v[r] == '\t'))
            r++;
        if (t == s || (r < e && v[r] != ';')) {
            te->bad = 1;
            continue;
        }
        /* chunked applied twice, or not last, cannot frame the body (RFC 9112 6.1). */
        if (te->last_chunked)
            te->bad = 1;
        te->count++;
        te->last_chunked = IEQ(v + s, t - s, "chunked");
        if (te->last_chunked) {
            if (r < e)
                te->bad = 1; /* chunked takes no parameters */
        } else if (IEQ(v + s, t - s, "gzip") || IEQ(v + s, t - s, "x-gzip") ||
                   IEQ(v + s, t - s, "deflate") || IEQ(v + s, t - s, "compress") ||
                   IEQ(v + s, t - s, "x-compress")) {
            te->coded = 1;
        } else {
            te->unknown = 1;
        }
    }
}

/* Content-Length: 1*DIGIT, nothing else (no sign, list, hex, space; RFC 9110 8.6). */
static int cl_parse(const unsigned char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0)
        return SWOOP_HTTP_E_CL_BAD;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)v[i] - '0';
        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return SWOOP_HTTP_E_CL_BAD;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* Connection tokens: close, keep-alive, upgrade (others are ignored). */
static void connection_parse(const unsigned char *v, size_t n, int *flags)
{
    size_t k = 0, s, e;
    while (list_next(v, n, &k, &s, &e)) {
        if (IEQ(v + s, e - s, "close"))
            *flags |= 1;
        else if (IEQ(v + s, e - s, "keep-alive"))
            *flags |= 2;
        else if (IEQ(v + s, e - s, "upgrade"))
            *flags |= 4;
    }
}

/*
 * The head is syntactically complete: decide the body framing (RFC 9112
 * 6.1-6.3), check Host (RFC 9112 3.2) and read the connection options.
 */
static int head_check(swoop_http_head_t *req, const unsigned char *p,
                      const swoop_http_limits_t *lim)
{
    te_state_t te = {0};
    int cl_seen = 0, te_seen = 0, host_seen = 0, upgrade_seen = 0, conn = 0, expect = 0, rc;
    uint64_t cl = 0;

    for (uint32_t i = 0; i < req->num_headers; i++) {
        const swoop_http_header_t *h = &req->headers[i];
        const unsigned char *name = p + h->name.off, *v = p + h->value.off;
        size_t vn = h->value.len;
        /* The length picks the one candidate, so most fields cost one switch. */
        switch (h->name.len) {
        case 4:
            if (IEQ(name, 4, "host")) {
                if (host_seen)
                    return SWOOP_HTTP_E_HOST_REPEATED;
                host_seen = 1;
                req->host = h->value;
            }
            break;
        case 6:
            if (IEQ(name, 6, "expect") && IEQ(v, vn, "100-continue"))
                expect = 1;
            break;
        case 7:
            if (IEQ(name, 7, "upgrade") && !upgrade_seen) {
                upgrade_seen = 1;
                req->upgrade = h->value;
            }
            break;
        case 10:
            if (IEQ(name, 10, "connection"))
                connection_parse(v, vn, &conn);
            break;
        case 14:
            if (IEQ(name, 14, "content-length")) {
                /* Even an equal repeat is refused: RFC 9112 6.3 allows it, we do not. */
                if (cl_seen)
                    return SWOOP_HTTP_E_CL_REPEATED;
                cl_seen = 1;
                if ((rc = cl_parse(v, vn, &cl)) != 0)
                    return rc;
            }
            break;
        case 17:
            if (IEQ(name, 17, "transfer-encoding")) {
                te_seen = 1;
                te_parse(&te, v, vn);
            }
            break;
        default:
            break;
        }
    }

    /* Both framings: the classic smuggling vector, refused whatever the order. */
    if (cl_seen && te_seen)
        return SWOOP_HTTP_E_CL_TE;
    if (te_seen) {
        if (req->version_minor == 0)
            return SWOOP_HTTP_E_TE_HTTP10;
        /* "Not ending in chunked" is a MUST (400) and wins over the SHOULD (501). */
        if (te.bad || te.count == 0 || !te.last_chunked)
            return SWOOP_HTTP_E_TE_NOT_CHUNKED;
        if (te.unknown)
            return SWOOP_HTTP_E_TE_UNKNOWN;
        req->body = SWOOP_HTTP_BODY_CHUNKED;
        req->te_coded = (unsigned)te.coded;
    } else if (cl_seen) {
        if (cl > lim->max_body)
            return SWOOP_HTTP_E_BODY_TOO_LARGE;
        req->body = SWOOP_HTTP_BODY_LENGTH;
        req->content_length = cl;
    }

    if (!host_seen && req->version_minor == 1)
        return SWOOP_HTTP_E_HOST_MISSING;
    for (uint32_t k = 0; k < req->host.len; k++) {
        if (!(cls[p[req->host.off + k]] & C_HOST))
            return SWOOP_HTTP_E_HOST_BAD;
    }

    if (req->version_minor == 1) {
        req->keep_alive = !(conn & 1);
        /* RFC 9110 10.1.1 and 7.8: both are ignored in an HTTP/1.0 request. */
        req->expect_continue = (unsigned)expect;
        req->upgrade_requested = (conn & 4) && upgrade_seen;
    } else {
        req->keep_alive = (conn & 2) && !(conn & 1);
    }
    return 0;
}

void swoop__http_chunked_init(swoop_http_chunked_t *dec, uint64_t max_body, uint32_t max_trailer)
{
    memset(dec, 0, sizeof(*dec));
    dec->max_body = max_body;
    dec->max_trailer = max_trailer;
    dec->_state = CS_SIZE0;
}

static inline int hexval(unsigned char c)
{
    if (!(cls[c] & C_HEX))
        return -1;
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

ssize_t swoop__http_chunked_decode(swoop_http_chunked_t *dec, char *buf, size_t len,
                                   size_t *out_len)
{
    unsigned char *p = (unsigned char *)buf;
    size_t i = 0, o = 0;
    int st = dec->_state, err, d;
    unsigned char c;

    *out_len = 0;
    dec->trailer_off = dec->trailer_len = 0;
    if (st == CS_FINISHED)
        return dec->_result;

#define FAIL(e)                                                                                    \
    do {                                                                                           \
        err = SWOOP_HTTP_E_##e;                                                                    \
        goto fail;                                                                                 \
    } while (0)

    while (i < len) {
        if (st == CS_DATA) {
            /* The only bulk state: move the data down over the framing already read. */
            size_t n = len - i;
            if (n > dec->_remaining)
                n = (size_t)dec->_remaining;
            if (o != i)
                memmove(p + o, p + i, n);
            o += n;
            i += n;
            dec->_remaining -= n;
            dec->_total += n;
            if (dec->_remaining == 0)
                st = CS_DATA_CR;
            continue;
        }
        c = p[i++];
        if (st >= CS_T_LINE) {
            if (++dec->_line > dec->max_trailer)
                FAIL(TRAILER_TOO_LARGE);
            /* The section's bytes of this call are contiguous: from the first to the last. */
            if (dec->trailer_len++ == 0)
                dec->trailer_off = i - 1;
        }
        switch (st) {
        case CS_SIZE0:
            if ((d = hexval(c)) < 0) {
                if (c == '\n')
                    FAIL(BARE_LF);
                FAIL(CHUNK_SIZE); /* empty, sign, space, "x" */
            }
            dec->_remaining = (uint64_t)d;
            dec->_line = 1;
            st = CS_SIZE;
            break;
        case CS_SIZE:
            if (++dec->_line > SWOOP_HTTP_CHUNK_LINE_MAX)
                FAIL(CHUNK_SIZE);
            if ((d = hexval(c)) >= 0) {
                if (dec->_remaining > (UINT64_MAX >> 4))
                    FAIL(CHUNK_SIZE); /* overflow */
                dec->_remaining = dec->_remaining << 4 | (uint64_t)d;
                break;
            }
            /* The size is known: refuse before any of its data arrives. */
            if (dec->_remaining > dec->max_body - dec->_total)
                FAIL(BODY_TOO_LARGE);
            if (c == '\r')
                st = CS_SIZE_LF;
            else if (c == ';')
                st = CS_EXT;
            else if (c == ' ' || c == '\t')
                st = CS_SIZE_WS;
            else if (c == '\n')
                FAIL(BARE_LF);
            else
                FAIL(CHUNK_SIZE); /* "0x", garbage */
            break;
        case CS_SIZE_WS:
            /* BWS is allowed before ';' (RFC 9112 7.1.1), trailing spaces are not. */
            if (++dec->_line > SWOOP_HTTP_CHUNK_LINE_MAX)
                FAIL(CHUNK_SIZE);
            if (c == ';')
                st = CS_EXT;
            else if (c == '\n')
                FAIL(BARE_LF);
            else if (c != ' ' && c != '\t')
                FAIL(CHUNK_SIZE);
            break;
        case CS_EXT:
            /* Skipped, but bounded and free of CTLs, bare CR and bare LF. */
            if (++dec->_line > SWOOP_HTTP_CHUNK_LINE_MAX)
                FAIL(CHUNK_EXT);
            if (c == '\r')
                st = CS_SIZE_LF;
            else if (c == '\n')
                FAIL(BARE_LF);
            else if (!(cls[c] & C_VALUE))
                FAIL(CHUNK_EXT);
            break;
        case CS_SIZE_LF:
            if (c != '\n')
                FAIL(BARE_CR);
            /* Size line, its CRLF and the CRLF after the data. */
            dec->_overhead += (uint64_t)dec->_line + 4;
            if (dec->_overhead > SWOOP_HTTP_CHUNK_OVERHEAD_FREE && dec->_overhead > dec->_total)
                FAIL(CHUNK_OVERHEAD);
            if (dec->_remaining == 0) {
                dec->_line = 0;
                st = CS_T_LINE;
            } else {
                st = CS_DATA;
            }
            break;
        case CS_DATA_CR:
            if (c != '\r')
                FAIL(CHUNK_DATA);
            st = CS_DATA_LF;
            break;
        case CS_DATA_LF:
            if (c != '\n')
                FAIL(CHUNK_DATA);
            st = CS_SIZE0;
            break;
        /* Trailer fields: the head's field rules; the caller keeps them (trailer_off/len). */
        case CS_T_LINE:
            if (cls[c] & C_TOKEN)
                st = CS_T_NAME;
            else if (c == '\r')
                st = CS_T_END_LF;
            else if (c == ' ' || c == '\t')
                FAIL(OBS_FOLD);
            else if (c == '\n')
                FAIL(BARE_LF);
            else
                FAIL(HEADER_NAME);
            break;
        case CS_T_NAME:
            if (c == ':')
                st = CS_T_VALUE;
            else if (c == ' ' || c == '\t')
                FAIL(HEADER_SPACE);
            else if (c == '\n')
                FAIL(BARE_LF);
            else if (!(cls[c] & C_TOKEN))
                FAIL(HEADER_NAME);
            break;
        case CS_T_VALUE:
            if (c == '\r')
                st = CS_T_VALUE_LF;
            else if (c == '\n')
                FAIL(BARE_LF);
            else if (!(cls[c] & C_VALUE))
                FAIL(HEADER_VALUE);
            break;
        case CS_T_VALUE_LF:
            if (c != '\n')
                FAIL(BARE_CR);
            st = CS_T_LINE;
            break;
        case CS_T_END_LF:
            if (c != '\n')
                FAIL(BARE_CR);
            dec->_state = CS_FINISHED;
            dec->_result = 0; /* a later call gets "ended, 0 bytes used" */
            *out_len = o;
            return (ssize_t)i;
        default:
            return dec->_result;
        }
    }
    dec->_state = (uint8_t)st;
    *out_len = o;
    return SWOOP_HTTP_INCOMPLETE;

fail:
    dec->_state = CS_FINISHED;
    dec->_result = err;
    *out_len = o;
    return err;
#undef FAIL
}

size_t swoop__http_trailer_pack(char *sec, size_t len, uint32_t *count)
{
    size_t i = 0, o = 0;
    uint32_t n = 0;
    /* Each line was checked by the decoder: name ':' OWS value OWS CRLF; the empty one ends it. */
    while (i < len && sec[i] != '\r') {
        char *colon = memchr(sec + i, ':', len - i);
        char *cr = colon ? memchr(colon, '\r', len - (size_t)(colon - sec)) : NULL;
        if (cr == NULL)
            break; /* not a checked section: what came before stays */
        size_t nl = (size_t)(colon - (sec + i));
        memmove(sec + o, sec + i, nl);
        o += nl;
        sec[o++] = '\0';
        const char *v = colon + 1, *e = cr;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        memmove(sec + o, v, (size_t)(e - v));
        o += (size_t)(e - v);
        sec[o++] = '\0';
        n++;
        i = (size_t)(cr - sec) + 2;
    }
    *count = n;
    return o;
}

int swoop__http_error_status(int err)
{
    switch (err) {
#define SWOOP_HTTP_ERR_STATUS(name, value, status, reason)                                         \
    case value:                                                                                    \
        return status;
        SWOOP_HTTP_ERRORS(SWOOP_HTTP_ERR_STATUS)
#undef SWOOP_HTTP_ERR_STATUS
    default:
        return 400;
    }
}

const char *swoop__http_error_reason(int err)
{
    switch (err) {
#define SWOOP_HTTP_ERR_REASON(name, value, status, reason)                                         \
    case value:                                                                                    \
        return reason;
        SWOOP_HTTP_ERRORS(SWOOP_HTTP_ERR_REASON)
#undef SWOOP_HTTP_ERR_REASON
    case SWOOP_HTTP_INCOMPLETE:
        return "incomplete";
    default:
        return "unknown HTTP parse error";
    }
}
