/*
 * libFuzzer target for the HTTP/1.1 request parser and the chunked decoder
 * (src/proto/http_parser.c). The first byte chooses the limits and the
 * split points; the rest is what a peer sent. Checks: the head parse gives
 * the same answer and the same fields when the bytes arrive whole, split
 * at three points, or one at a time (for inputs up to 2 KiB); every span
 * lies inside the head; a chunked body after a good head, and the whole
 * input read as a chunked body, decode to the same bytes and the same end
 * whole and split.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/log.h>

#include "proto/http_parser.h"

#define MAXH 32

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    swoop_log_set_level(SWOOP_LOG_NONE);
    return 0;
}

typedef struct parse_s {
    ssize_t rc;
    swoop_http_head_t req;
    swoop_http_header_t hdr[MAXH];
} parse_t;

/* Parses `in` arriving as growing prefixes ending at ends[] (the last is n). */
static void parse(const char *in, const size_t *ends, size_t nends, const swoop_http_limits_t *lim,
                  parse_t *out)
{
    swoop__http_head_init(&out->req, out->hdr, MAXH);
    out->rc = SWOOP_HTTP_INCOMPLETE;
    for (size_t s = 0; s < nends; s++) {
        /* An exact-size copy, so ASan sees any read past what arrived. */
        char *copy = malloc(ends[s] ? ends[s] : 1);
        memcpy(copy, in, ends[s]);
        out->rc = swoop__http_parse_request(&out->req, copy, ends[s], lim);
        free(copy);
        if (out->rc != SWOOP_HTTP_INCOMPLETE)
            return;
    }
}

static void span_in(swoop_http_span_t s, size_t head)
{
    if ((size_t)s.off + s.len > head)
        abort();
}

static void same(const parse_t *a, const parse_t *b)
{
    if (a->rc != b->rc)
        abort();
    if (a->rc < 0)
        return;
    const swoop_http_head_t *x = &a->req, *y = &b->req;
    if (memcmp(&x->method, &y->method, 7 * sizeof(swoop_http_span_t)) != 0 ||
        x->version_minor != y->version_minor || x->num_headers != y->num_headers ||
        x->head_len != y->head_len || x->body != y->body ||
        x->content_length != y->content_length || x->keep_alive != y->keep_alive ||
        x->expect_continue != y->expect_continue || x->upgrade_requested != y->upgrade_requested ||
        x->te_coded != y->te_coded || x->has_query != y->has_query ||
        x->absolute_form != y->absolute_form || x->asterisk_form != y->asterisk_form ||
        memcmp(x->headers, y->headers, x->num_headers * sizeof(swoop_http_header_t)) != 0)
        abort();
}

typedef struct chunk_s {
    ssize_t rc;
    size_t used;
    size_t out_len;
    char *out;
    size_t tr_len; /* the trailer section's bytes the decoder reported */
    char *tr;
} chunk_t;

/* Decodes `in` given in two pieces cut at `cut`; collects the decoded bytes. */
static void chunked(const char *in, size_t n, size_t cut, chunk_t *res)
{
    swoop_http_chunked_t dec;
    swoop__http_chunked_init(&dec, 1 << 16, 512);
    res->rc = SWOOP_HTTP_INCOMPLETE;
    res->used = 0;
    res->out_len = 0;
    res->out = malloc(n ? n : 1);
    res->tr_len = 0;
    res->tr = malloc(n ? n : 1);
    size_t pieces[2] = {cut, n - cut}, from = 0;
    for (int k = 0; k < 2; k++) {
        char *copy = malloc(pieces[k] ? pieces[k] : 1);
        memcpy(copy, in + from, pieces[k]);
        size_t got = 0;
        res->rc = swoop__http_chunked_decode(&dec, copy, pieces[k], &got);
        if (got > pieces[k] || (res->rc >= 0 && got > (size_t)res->rc))
            abort();
        memcpy(res->out + res->out_len, copy, got);
        res->out_len += got;
        /* Trailer bytes lie inside the piece, past the data moved down. */
        if (dec.trailer_len &&
            (dec.trailer_off < got || dec.trailer_off + dec.trailer_len > pieces[k]))
            abort();
        memcpy(res->tr + res->tr_len, copy + dec.trailer_off, dec.trailer_len);
        res->tr_len += dec.trailer_len;
        free(copy);
        if (res->rc >= 0)
            res->used = from + (size_t)res->rc;
        if (res->rc != SWOOP_HTTP_INCOMPLETE)
            return;
        from += pieces[k];
    }
}

static void chunked_check(const char *in, size_t n, size_t seed)
{
    chunk_t a, b;
    chunked(in, n, n, &a);
    chunked(in, n, n ? seed % (n + 1) : 0, &b);
    if (a.rc >= 0 && a.out_len > a.used)
        abort();
    if ((a.rc < 0) != (b.rc < 0))
        abort();
    if (a.rc < 0
            ? a.rc != b.rc
            : (a.used != b.used || a.out_len != b.out_len || memcmp(a.out, b.out, a.out_len) != 0 ||
               a.tr_len != b.tr_len || memcmp(a.tr, b.tr, a.tr_len) != 0))
        abort();
    /* A whole section packs into at most its own bytes, one pair of strings per field. */
    if (a.rc >= 0) {
        uint32_t count;
        size_t pl = swoop__http_trailer_pack(a.tr, a.tr_len, &count);
        size_t nuls = 0;
        for (size_t i = 0; i < pl; i++)
            nuls += a.tr[i] == '\0';
        if (pl > a.tr_len || nuls != 2 * (size_t)count || (pl && a.tr[pl - 1] != '\0'))
            abort();
    }
    free(a.out);
    free(b.out);
    free(a.tr);
    free(b.tr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    swoop_http_limits_t lim = {.max_head = 8192, .max_uri = 2048, .max_body = 1 << 20};
    if (data[0] & 1) {
        lim.max_head = 64 + data[0];
        lim.max_uri = 8 + data[0] / 4;
        lim.max_body = data[0];
    }
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    static parse_t whole, other;

    size_t all[1] = {n};
    parse(in, all, 1, &lim, &whole);
    if (whole.rc > 0) {
        if ((size_t)whole.rc > n || whole.req.head_len != (size_t)whole.rc ||
            whole.req.num_headers > MAXH)
            abort();
        span_in(whole.req.method, (size_t)whole.rc);
        span_in(whole.req.target, (size_t)whole.rc);
        span_in(whole.req.path, (size_t)whole.rc);
        span_in(whole.req.query, (size_t)whole.rc);
        span_in(whole.req.authority, (size_t)whole.rc);
        span_in(whole.req.host, (size_t)whole.rc);
        for (uint32_t i = 0; i < whole.req.num_headers; i++) {
            span_in(whole.hdr[i].name, (size_t)whole.rc);
            span_in(whole.hdr[i].value, (size_t)whole.rc);
        }
    }

    size_t cuts[4] = {n / 3, n / 2, n ? (size_t)data[0] * 7 % (n + 1) : 0, n};
    for (int k = 0; k < 3; k++) {
        size_t two[2] = {cuts[k], n};
        parse(in, two, 2, &lim, &other);
        same(&whole, &other);
    }
    if (n <= 2048) {
        size_t *steps = malloc((n + 1) * sizeof(*steps));
        for (size_t k = 0; k <= n; k++)
            steps[k] = k;
        parse(in, steps, n + 1, &lim, &other);
        free(steps);
        same(&whole, &other);
    }

    /* The body after a chunked head, and the whole input as a body. */
    if (whole.rc > 0 && whole.req.body == SWOOP_HTTP_BODY_CHUNKED)
        chunked_check(in + whole.rc, n - (size_t)whole.rc, data[0]);
    chunked_check(in, n, (size_t)data[0] * 13);
    return 0;
}
