/*
 * HTTP/1.1 request parser and chunked decoder (src/proto/http_parser.c).
 * Every strictness rule of PROTOCOL-NOTES section 2 is a row of a table;
 * every row is parsed whole, split in two at every byte boundary (each call
 * sees a fresh copy of exactly the bytes received, so offsets must not
 * depend on the buffer's address and ASan catches any read past them), and
 * one byte at a time, and all three must agree on the result and on every
 * parsed field. The chunked decoder gets the same treatment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http_parser.h"
#include "test.h"

#define MAXH 16

static const swoop_http_limits_t lim_default = {
    .max_head = 8192, .max_uri = 2048, .max_body = 1 << 20};

typedef struct result_s {
    ssize_t rc;
    swoop_http_head_t req;
    swoop_http_header_t hdr[MAXH];
} result_t;

/* Runs the parser over `in` delivered as growing prefixes of the given lengths. */
static void run(const char *in, size_t n, const size_t *steps, size_t nsteps,
                const swoop_http_limits_t *lim, result_t *out)
{
    memset(out, 0, sizeof(*out));
    swoop__http_head_init(&out->req, out->hdr, MAXH);
    out->rc = SWOOP_HTTP_INCOMPLETE;
    for (size_t s = 0; s < nsteps; s++) {
        size_t have = steps[s];
        /* A fresh, exact-size copy: the caller's buffer moves between reads. */
        char *copy = malloc(have ? have : 1);
        memcpy(copy, in, have);
        out->rc = swoop__http_parse_request(&out->req, copy, have, lim);
        free(copy);
        if (out->rc != SWOOP_HTTP_INCOMPLETE)
            break;
    }
    (void)n;
}

static int span_eq(swoop_http_span_t a, swoop_http_span_t b)
{
    return a.off == b.off && a.len == b.len;
}

/* Every public field, and the header array, must be the same. */
static void assert_same(const result_t *a, const result_t *b, const char *what, size_t cut)
{
    if (a->rc != b->rc)
        FAIL("%s (cut %zu): rc %zd vs %zd", what, cut, a->rc, b->rc);
    if (a->rc < 0)
        return;
    const swoop_http_head_t *x = &a->req, *y = &b->req;
    int same = span_eq(x->method, y->method) && span_eq(x->target, y->target) &&
               span_eq(x->path, y->path) && span_eq(x->query, y->query) &&
               span_eq(x->authority, y->authority) && span_eq(x->host, y->host) &&
               span_eq(x->upgrade, y->upgrade) && x->version_minor == y->version_minor &&
               x->num_headers == y->num_headers && x->head_len == y->head_len &&
               x->body == y->body && x->content_length == y->content_length &&
               x->has_query == y->has_query && x->absolute_form == y->absolute_form &&
               x->asterisk_form == y->asterisk_form && x->keep_alive == y->keep_alive &&
               x->expect_continue == y->expect_continue &&
               x->upgrade_requested == y->upgrade_requested && x->te_coded == y->te_coded;
    for (uint32_t i = 0; same && i < x->num_headers; i++)
        same = span_eq(x->headers[i].name, y->headers[i].name) &&
               span_eq(x->headers[i].value, y->headers[i].value);
    if (!same)
        FAIL("%s (cut %zu): parsed fields differ", what, cut);
}

/*
 * Parses `in` whole, then split at every byte, then byte by byte, checking
 * all agree; leaves the whole-input result in *out and returns its rc.
 */
static ssize_t parse_every_way(const char *in, size_t n, const swoop_http_limits_t *lim,
                               result_t *out)
{
    static result_t other;
    size_t whole[1] = {n};
    run(in, n, whole, 1, lim, out);
    for (size_t cut = 0; cut <= n; cut++) {
        size_t two[2] = {cut, n};
        run(in, n, two, 2, lim, &other);
        assert_same(out, &other, in, cut);
    }
    size_t *steps = malloc((n + 1) * sizeof(*steps));
    for (size_t k = 0; k <= n; k++)
        steps[k] = k;
    run(in, n, steps, n + 1, lim, &other);
    free(steps);
    assert_same(out, &other, in, (size_t)-1);
    /* After the answer, a further call gives the same answer. */
    if (out->rc != SWOOP_HTTP_INCOMPLETE) {
        ssize_t again = swoop__http_parse_request(&out->req, in, n, lim);
        ASSERT_EQ(again, out->rc);
    }
    return out->rc;
}

typedef struct row_s {
    const char *name;
    const char *in;
    size_t len;
    int expect; /* an error, or OK_HEAD: the whole input is one head */
} row_t;

#define OK_HEAD 1
#define ROW(name, lit, expect)                                                                     \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, expect                                                         \
    }
#define RL   "GET / HTTP/1.1\r\nHost: a\r\n"
#define POST "POST / HTTP/1.1\r\nHost: a\r\n"

/* PROTOCOL-NOTES section 2, rule by rule: refused. */
static const row_t bad_rows[] = {
    /* Content-Length and Transfer-Encoding together, either order. */
    ROW("cl_then_te", POST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        SWOOP_HTTP_E_CL_TE),
    ROW("te_then_cl", POST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        SWOOP_HTTP_E_CL_TE),
    ROW("cl_zero_and_te", POST "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        SWOOP_HTTP_E_CL_TE),
    /* Content-Length repeated (even equal), listed, signed, hex, empty, overflowing. */
    ROW("cl_repeated_equal", POST "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
        SWOOP_HTTP_E_CL_REPEATED),
    ROW("cl_repeated_differ", POST "Content-Length: 5\r\ncontent-length: 6\r\n\r\n",
        SWOOP_HTTP_E_CL_REPEATED),
    ROW("cl_listed", POST "Content-Length: 5, 5\r\n\r\n", SWOOP_HTTP_E_CL_BAD),
    ROW("cl_listed_nospace", POST "Content-Length: 5,5\r\n\r\n", SWOOP_HTTP_E_CL_BAD),
    ROW("cl_plus", POST "Content-Length: +5\r\n\r\n", SWOOP_HTTP_E_CL_BAD),
    ROW("cl_minus", POST "Content-Length: -5\r\n\r\n", SWOOP_HTTP_E_CL_BAD),
    ROW("cl_hex", POST "Content-Length: 0x5\r\n\r\n", SWOOP_HTTP_E_CL_BAD),
    ROW("cl_hex_digits", POST "Content-Length: 5a\r\n\r\n", SWOOP_HTTP_E_CL_BAD),
    ROW("cl_empty", POST "Content-Length:\r\n\r\n", SWOOP_HTTP_E_CL_BAD),
    ROW("cl_blank", POST "Content-Length:   \r\n\r\n", SWOOP_HTTP_E_CL_BAD),
    ROW("cl_inner_space", POST "Content-Length: 5 5\r\n\r\n", SWOOP_HTTP_E_CL_BAD),
    ROW("cl_overflow_2_64", POST "Content-Length: 18446744073709551616\r\n\r\n",
        SWOOP_HTTP_E_CL_BAD),
    ROW("cl_overflow_long", POST "Content-Length: 999999999999999999999999\r\n\r\n",
        SWOOP_HTTP_E_CL_BAD),
    /* Whitespace before the colon, spaces in or empty field names. */
    ROW("space_before_colon", RL "Content-Length : 5\r\n\r\n", SWOOP_HTTP_E_HEADER_SPACE),
    ROW("tab_before_colon", RL "X\t: 5\r\n\r\n", SWOOP_HTTP_E_HEADER_SPACE),
    ROW("space_in_name", RL "X Y: 5\r\n\r\n", SWOOP_HTTP_E_HEADER_SPACE),
    ROW("empty_name", RL ": 5\r\n\r\n", SWOOP_HTTP_E_HEADER_NAME),
    ROW("name_not_token", RL "X(y): 5\r\n\r\n", SWOOP_HTTP_E_HEADER_NAME),
    ROW("name_without_colon", RL "X\r\n\r\n", SWOOP_HTTP_E_HEADER_NAME),
    ROW("name_obs_text", RL "X\x80: 5\r\n\r\n", SWOOP_HTTP_E_HEADER_NAME),
    /* obs-fold: a line starting with whitespace. */
    ROW("obs_fold_space", RL "X: a\r\n b\r\n\r\n", SWOOP_HTTP_E_OBS_FOLD),
    ROW("obs_fold_tab", RL "X: a\r\n\tb\r\n\r\n", SWOOP_HTTP_E_OBS_FOLD),
    ROW("ws_after_request_line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", SWOOP_HTTP_E_OBS_FOLD),
    /* Bare LF or bare CR anywhere in the head. */
    ROW("bare_lf_request_line", "GET / HTTP/1.1\nHost: a\r\n\r\n", SWOOP_HTTP_E_BARE_LF),
    ROW("bare_lf_field", RL "X: a\n\r\n", SWOOP_HTTP_E_BARE_LF),
    ROW("bare_lf_end", RL "\n", SWOOP_HTTP_E_BARE_LF),
    ROW("lf_only_head", "GET / HTTP/1.1\n\n", SWOOP_HTTP_E_BARE_LF),
    ROW("bare_lf_in_name", RL "X\n\r\n", SWOOP_HTTP_E_BARE_LF),
    ROW("bare_lf_before_method", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_BARE_LF),
    ROW("bare_lf_after_method", "GET\n", SWOOP_HTTP_E_BARE_LF),
    ROW("bare_lf_in_version", "GET / HTTP\n", SWOOP_HTTP_E_BARE_LF),
    ROW("bare_cr_request_line", "GET / HTTP/1.1\rHost: a\r\n\r\n", SWOOP_HTTP_E_BARE_CR),
    ROW("bare_cr_in_value", RL "X: a\rb\r\n\r\n", SWOOP_HTTP_E_BARE_CR),
    ROW("bare_cr_end", RL "\rX", SWOOP_HTTP_E_BARE_CR),
    ROW("bare_cr_before_method", "\rGET / HTTP/1.1\r\n", SWOOP_HTTP_E_BARE_CR),
    /* NUL and other CTLs (not HTAB) in a value. */
    ROW("nul_in_value", RL "X: a\0b\r\n\r\n", SWOOP_HTTP_E_HEADER_VALUE),
    ROW("ctl_in_value", RL "X: a\x01\r\n\r\n", SWOOP_HTTP_E_HEADER_VALUE),
    ROW("esc_in_value", RL "X: \x1b[1m\r\n\r\n", SWOOP_HTTP_E_HEADER_VALUE),
    ROW("del_in_value", RL "X: a\x7f\r\n\r\n", SWOOP_HTTP_E_HEADER_VALUE),
    /* Transfer-Encoding: last coding not chunked (400), unknown coding (501), on 1.0. */
    ROW("te_gzip_only", POST "Transfer-Encoding: gzip\r\n\r\n", SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_chunked_not_last", POST "Transfer-Encoding: chunked, gzip\r\n\r\n",
        SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_chunked_twice", POST "Transfer-Encoding: chunked, chunked\r\n\r\n",
        SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_fields_chunked_first",
        POST "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_empty", POST "Transfer-Encoding:\r\n\r\n", SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_commas", POST "Transfer-Encoding: , ,\r\n\r\n", SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_unknown_alone", POST "Transfer-Encoding: foo\r\n\r\n", SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_chunked_param", POST "Transfer-Encoding: chunked;x=1\r\n\r\n",
        SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_bad_syntax", POST "Transfer-Encoding: \"chunked\"\r\n\r\n",
        SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_chunked_suffix", POST "Transfer-Encoding: xchunked\r\n\r\n",
        SWOOP_HTTP_E_TE_NOT_CHUNKED),
    ROW("te_unknown", POST "Transfer-Encoding: foo, chunked\r\n\r\n", SWOOP_HTTP_E_TE_UNKNOWN),
    ROW("te_identity", POST "Transfer-Encoding: identity, chunked\r\n\r\n",
        SWOOP_HTTP_E_TE_UNKNOWN),
    ROW("te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        SWOOP_HTTP_E_TE_HTTP10),
    /* Host: missing on 1.1, twice, or not a host. */
    ROW("host_missing", "GET / HTTP/1.1\r\n\r\n", SWOOP_HTTP_E_HOST_MISSING),
    ROW("host_missing_2", "GET / HTTP/1.1\r\nHostname: a\r\n\r\n", SWOOP_HTTP_E_HOST_MISSING),
    ROW("host_twice", RL "Host: a\r\n\r\n", SWOOP_HTTP_E_HOST_REPEATED),
    ROW("host_twice_10", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
        SWOOP_HTTP_E_HOST_REPEATED),
    ROW("host_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", SWOOP_HTTP_E_HOST_BAD),
    ROW("host_userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", SWOOP_HTTP_E_HOST_BAD),
    ROW("host_path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", SWOOP_HTTP_E_HOST_BAD),
    /* Versions: 2.0+ → 505, malformed → 400. */
    ROW("http_2_0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_VERSION_UNSUPPORTED),
    ROW("http_3_0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_VERSION_UNSUPPORTED),
    ROW("http_0_9_spelled", "GET / HTTP/0.9\r\n\r\n", SWOOP_HTTP_E_VERSION_UNSUPPORTED),
    ROW("version_lower", "GET / http/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_VERSION),
    ROW("version_two_digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_VERSION),
    ROW("version_no_dot", "GET / HTTP/11\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_VERSION),
    ROW("version_short", "GET / HTTP/1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_VERSION),
    ROW("version_junk", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_VERSION),
    ROW("version_other", "GET / HTTPS/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_VERSION),
    /* Methods: lower case or not a token. */
    ROW("method_lower", "get / HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_METHOD),
    ROW("method_mixed", "Get / HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_METHOD),
    ROW("method_not_token", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_METHOD),
    ROW("method_slash", "GET/ HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_METHOD),
    ROW("method_nul", "G\0T / HTTP/1.1\r\n\r\n", SWOOP_HTTP_E_METHOD),
    ROW("method_utf8", "G\xc3\x89T / HTTP/1.1\r\n\r\n", SWOOP_HTTP_E_METHOD),
    /* Request line: extra or missing single spaces. */
    ROW("rl_leading_space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_REQUEST_LINE),
    ROW("rl_two_spaces_1", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_REQUEST_LINE),
    ROW("rl_two_spaces_2", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_REQUEST_LINE),
    ROW("rl_trailing_space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", SWOOP_HTTP_E_REQUEST_LINE),
    ROW("rl_tab", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_REQUEST_LINE),
    ROW("rl_method_only", "GET\r\n\r\n", SWOOP_HTTP_E_REQUEST_LINE),
    ROW("rl_empty_target", "GET \r\n\r\n", SWOOP_HTTP_E_REQUEST_LINE),
    ROW("rl_no_space_before_version", "GET /HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_HTTP09),
    /* HTTP/0.9. */
    ROW("http09", "GET /\r\n\r\n", SWOOP_HTTP_E_HTTP09),
    ROW("http09_bare_lf", "GET /\n", SWOOP_HTTP_E_BARE_LF),
    /* Targets: CONNECT (501), '*' without OPTIONS (405), junk (400). */
    ROW("connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        SWOOP_HTTP_E_CONNECT),
    ROW("asterisk_get", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_ASTERISK),
    ROW("authority_form_get", "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        SWOOP_HTTP_E_TARGET),
    ROW("target_ctl", "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_TARGET),
    ROW("target_obs_text", "GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_TARGET),
    ROW("target_nul", "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_TARGET),
    ROW("absolute_userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_TARGET),
    ROW("absolute_no_host", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_TARGET),
    ROW("absolute_ftp", "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_TARGET),
    /* Body above max_body (1 MiB in these rows). */
    ROW("cl_above_max_body", POST "Content-Length: 1048577\r\n\r\n", SWOOP_HTTP_E_BODY_TOO_LARGE),
    ROW("cl_max_u64", POST "Content-Length: 18446744073709551615\r\n\r\n",
        SWOOP_HTTP_E_BODY_TOO_LARGE),
};

/* "Must still accept" (and other valid shapes): the whole input is one head. */
static const row_t good_rows[] = {
    ROW("simple", RL "\r\n", OK_HEAD),
    ROW("te_chunKed", POST "Transfer-Encoding: chunKed\r\n\r\n", OK_HEAD),
    ROW("te_gzip_chunked", POST "Transfer-Encoding: gzip, chunked\r\n\r\n", OK_HEAD),
    ROW("te_two_fields", POST "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        OK_HEAD),
    ROW("te_empty_elements", POST "Transfer-Encoding: ,gzip ,, chunked,\r\n\r\n", OK_HEAD),
    ROW("ows_around_values", RL "X: \t a b \t\r\nY:\tc\t\r\n\r\n", OK_HEAD),
    ROW("cl_leading_zeros", POST "Content-Length: 00005\r\n\r\n", OK_HEAD),
    ROW("cl_zero", POST "Content-Length: 0\r\n\r\n", OK_HEAD),
    ROW("cl_max_body", POST "Content-Length: 1048576\r\n\r\n", OK_HEAD),
    ROW("obs_text_value", RL "X: caf\xc3\xa9 \x80\xff\r\n\r\n", OK_HEAD),
    ROW("empty_value", RL "X:\r\nY: \r\n\r\n", OK_HEAD),
    ROW("http_1_0_no_host", "GET / HTTP/1.0\r\n\r\n", OK_HEAD),
    ROW("http_1_2_as_1_1", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", OK_HEAD),
    ROW("leading_empty_lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", OK_HEAD),
    ROW("options_asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", OK_HEAD),
    ROW("absolute_form", "GET http://ex.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n", OK_HEAD),
    ROW("absolute_form_no_path", "GET HTTPS://ex.com HTTP/1.1\r\nHost: ex.com\r\n\r\n", OK_HEAD),
    ROW("method_extension", "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n", SWOOP_HTTP_E_ASTERISK),
    ROW("method_custom", "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", OK_HEAD),
    ROW("host_ipv6_port", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", OK_HEAD),
    ROW("host_empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", OK_HEAD),
    ROW("expect_continue", POST "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n", OK_HEAD),
    ROW("websocket_upgrade",
        RL "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n",
        OK_HEAD),
    ROW("fifteen_headers",
        RL "a:1\r\nb:2\r\nc:3\r\nd:4\r\ne:5\r\nf:6\r\ng:7\r\nh:8\r\ni:9\r\nj:10\r\nk:11\r\n"
           "l:12\r\nm:13\r\nn:14\r\no:15\r\n\r\n",
        OK_HEAD),
};

static void check_rows(const row_t *rows, size_t n)
{
    static result_t r;
    for (size_t i = 0; i < n; i++) {
        ssize_t rc = parse_every_way(rows[i].in, rows[i].len, &lim_default, &r);
        ssize_t want = rows[i].expect == OK_HEAD ? (ssize_t)rows[i].len : rows[i].expect;
        if (rc != want)
            FAIL("row %s: got %zd (%s), want %zd (%s)", rows[i].name, rc,
                 swoop__http_error_reason((int)rc), want, swoop__http_error_reason((int)want));
    }
}

TEST(http_parser_rejects_every_rule)
{
    check_rows(bad_rows, sizeof(bad_rows) / sizeof(bad_rows[0]));
}

TEST(http_parser_accepts)
{
    check_rows(good_rows, sizeof(good_rows) / sizeof(good_rows[0]));
}

/* buf[span] as a NUL-terminated string (tests only). */
static const char *S(const char *buf, swoop_http_span_t s)
{
    static char out[4][256];
    static int k;
    char *o = out[k++ & 3];
    ASSERT_LT(s.len, sizeof(out[0]));
    memcpy(o, buf + s.off, s.len);
    o[s.len] = 0;
    return o;
}

static const char browser[] =
    "GET /search/index.html?q=swoop&lang=en HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

TEST(http_parser_fields)
{
    static result_t r;
    const char *b = browser;
    ASSERT_EQ(parse_every_way(b, sizeof(browser) - 1, &lim_default, &r),
              (ssize_t)sizeof(browser) - 1);
    ASSERT_STR_EQ(S(b, r.req.method), "GET");
    ASSERT_STR_EQ(S(b, r.req.target), "/search/index.html?q=swoop&lang=en");
    ASSERT_STR_EQ(S(b, r.req.path), "/search/index.html");
    ASSERT_STR_EQ(S(b, r.req.query), "q=swoop&lang=en");
    ASSERT(r.req.has_query);
    ASSERT_STR_EQ(S(b, r.req.host), "www.example.com");
    ASSERT_EQ(r.req.version_minor, 1);
    ASSERT_EQ(r.req.num_headers, 6);
    ASSERT_STR_EQ(S(b, r.req.headers[1].name), "User-Agent");
    ASSERT_STR_EQ(S(b, r.req.headers[5].value), "keep-alive");
    ASSERT_EQ(r.req.body, SWOOP_HTTP_BODY_NONE);
    ASSERT(r.req.keep_alive);
    ASSERT(!r.req.expect_continue);
    ASSERT(!r.req.upgrade_requested);

    /* OWS trimmed on both sides, inner spaces kept, obs-text kept. */
    const char ows[] = RL "X: \t a b \t\r\nY:\t\r\nZ: \xc3\xa9\xff\r\n\r\n";
    ASSERT_GT(parse_every_way(ows, sizeof(ows) - 1, &lim_default, &r), 0);
    ASSERT_STR_EQ(S(ows, r.req.headers[1].value), "a b");
    ASSERT_EQ(r.req.headers[2].value.len, 0);
    ASSERT_STR_EQ(S(ows, r.req.headers[3].value), "\xc3\xa9\xff");

    const char abs[] = "GET http://ex.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n";
    ASSERT_GT(parse_every_way(abs, sizeof(abs) - 1, &lim_default, &r), 0);
    ASSERT(r.req.absolute_form);
    ASSERT_STR_EQ(S(abs, r.req.authority), "ex.com:8080");
    ASSERT_STR_EQ(S(abs, r.req.path), "/p/q");
    ASSERT_STR_EQ(S(abs, r.req.query), "x=1");
    ASSERT_STR_EQ(S(abs, r.req.host), "other");

    const char abs2[] = "GET HTTPS://ex.com?y HTTP/1.1\r\nHost: ex.com\r\n\r\n";
    ASSERT_GT(parse_every_way(abs2, sizeof(abs2) - 1, &lim_default, &r), 0);
    ASSERT_STR_EQ(S(abs2, r.req.authority), "ex.com");
    ASSERT_EQ(r.req.path.len, 0); /* means "/" */
    ASSERT_STR_EQ(S(abs2, r.req.query), "y");

    const char star[] = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_GT(parse_every_way(star, sizeof(star) - 1, &lim_default, &r), 0);
    ASSERT(r.req.asterisk_form);
    ASSERT_STR_EQ(S(star, r.req.path), "*");

    const char noq[] = "GET /a?  HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(parse_every_way(noq, sizeof(noq) - 1, &lim_default, &r), SWOOP_HTTP_E_REQUEST_LINE);
    const char emptyq[] = "GET /a? HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_GT(parse_every_way(emptyq, sizeof(emptyq) - 1, &lim_default, &r), 0);
    ASSERT(r.req.has_query);
    ASSERT_EQ(r.req.query.len, 0);

    const char lead[] = "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_GT(parse_every_way(lead, sizeof(lead) - 1, &lim_default, &r), 0);
    ASSERT_EQ(r.req.method.off, 2);

    const char v12[] = "GET / HTTP/1.2\r\nHost: a\r\n\r\n";
    ASSERT_GT(parse_every_way(v12, sizeof(v12) - 1, &lim_default, &r), 0);
    ASSERT_EQ(r.req.version_minor, 1);
}

TEST(http_parser_body_framing)
{
    static result_t r;
    const char cl[] = POST "Content-Length: 00042\r\n\r\n";
    ASSERT_GT(parse_every_way(cl, sizeof(cl) - 1, &lim_default, &r), 0);
    ASSERT_EQ(r.req.body, SWOOP_HTTP_BODY_LENGTH);
    ASSERT_UEQ(r.req.content_length, 42);

    const char te[] = POST "Transfer-Encoding: chunKed\r\n\r\n";
    ASSERT_GT(parse_every_way(te, sizeof(te) - 1, &lim_default, &r), 0);
    ASSERT_EQ(r.req.body, SWOOP_HTTP_BODY_CHUNKED);
    ASSERT(!r.req.te_coded);

    const char gz[] = POST "Transfer-Encoding: gzip, chunked\r\n\r\n";
    ASSERT_GT(parse_every_way(gz, sizeof(gz) - 1, &lim_default, &r), 0);
    ASSERT_EQ(r.req.body, SWOOP_HTTP_BODY_CHUNKED);
    ASSERT(r.req.te_coded);

    const char none[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_GT(parse_every_way(none, sizeof(none) - 1, &lim_default, &r), 0);
    ASSERT_EQ(r.req.body, SWOOP_HTTP_BODY_NONE);
    ASSERT_UEQ(r.req.content_length, 0);
}

TEST(http_parser_connection_options)
{
    static const struct {
        const char *in;
        int keep_alive, expect, upgrade;
    } rows[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 0, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0, 0, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", 0, 0, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", 0, 0, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: close\r\n\r\n", 0, 0, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", 1, 0, 0},
        {"GET / HTTP/1.0\r\n\r\n", 0, 0, 0},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1, 0, 0},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", 1, 1, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continuex\r\n\r\n", 1, 0, 0},
        {"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0, 0, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1, 0, 1},
        {"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", 1, 0, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", 1, 0, 0},
        {"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", 0, 0, 0},
    };
    static result_t r;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t n = strlen(rows[i].in);
        ASSERT_EQ(parse_every_way(rows[i].in, n, &lim_default, &r), (ssize_t)n);
        if (r.req.keep_alive != (unsigned)rows[i].keep_alive ||
            r.req.expect_continue != (unsigned)rows[i].expect ||
            r.req.upgrade_requested != (unsigned)rows[i].upgrade)
            FAIL("row %zu: keep_alive %u expect %u upgrade %u", i, r.req.keep_alive,
                 r.req.expect_continue, r.req.upgrade_requested);
    }
}

TEST(http_parser_pipelined)
{
    /* Three requests back to back, the second with a body: each head stops at its end. */
    const char in[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                      "GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                      "GARBAGE after close is not read\n";
    size_t n = sizeof(in) - 1, at = 0;
    const char *paths[] = {"/1", "/2", "/3"};
    static result_t r;
    for (int k = 0; k < 3; k++) {
        ssize_t rc = parse_every_way(in + at, n - at, &lim_default, &r);
        ASSERT_GT(rc, 0);
        ASSERT_STR_EQ(S(in + at, r.req.path), paths[k]);
        at += (size_t)rc;
        if (r.req.body == SWOOP_HTTP_BODY_LENGTH)
            at += r.req.content_length;
        ASSERT_EQ(r.req.keep_alive, k < 2);
    }
    ASSERT_STR_EQ(in + at, "GARBAGE after close is not read\n");
}

TEST(http_parser_limits)
{
    static result_t r;
    char big[600];
    swoop_http_limits_t lim = {.max_head = 64, .max_uri = 16, .max_body = 100};

    /* Head exactly at the limit passes; one byte more is 431 whatever the byte. */
    const char fit[] = "GET /0123456789 HTTP/1.1\r\nHost: a\r\nX: 0123456789012\r\n\r\n";
    size_t nfit = sizeof(fit) - 1;
    lim.max_head = (uint32_t)nfit;
    ASSERT_EQ(parse_every_way(fit, nfit, &lim, &r), (ssize_t)nfit);
    lim.max_head = (uint32_t)nfit - 1;
    ASSERT_EQ(parse_every_way(fit, nfit, &lim, &r), SWOOP_HTTP_E_HEAD_TOO_LARGE);
    /* Incomplete up to the limit, then 431 on the next byte. */
    ASSERT_EQ(parse_every_way(fit, nfit - 1, &lim, &r), SWOOP_HTTP_INCOMPLETE);
    /* A syntax error before the limit wins. */
    ASSERT_EQ(parse_every_way("get / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890\r\n",
                              61, &lim, &r),
              SWOOP_HTTP_E_METHOD);
    lim.max_head = 64;

    /* URI: 16 bytes pass, 17 is 414 (even before the head limit). */
    const char u16[] = "GET /234567890123456 HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(parse_every_way(u16, sizeof(u16) - 1, &lim, &r), (ssize_t)sizeof(u16) - 1);
    const char u17[] = "GET /2345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n";
    ASSERT_EQ(parse_every_way(u17, sizeof(u17) - 1, &lim, &r), SWOOP_HTTP_E_URI_TOO_LONG);
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    lim.max_head = 512;
    ASSERT_EQ(parse_every_way(big, sizeof(big), &lim, &r), SWOOP_HTTP_E_URI_TOO_LONG);

    /* A head that never ends: 431, not "incomplete" forever. */
    int k = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n");
    while (k + 64 < (int)sizeof(big))
        k += snprintf(big + k, sizeof(big) - (size_t)k,
                      "X: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n");
    ASSERT_EQ(parse_every_way(big, (size_t)k, &lim, &r), SWOOP_HTTP_E_HEAD_TOO_LARGE);

    /* Header count: MAXH (16) fields pass, 17 is 431. */
    k = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < MAXH; i++)
        k += snprintf(big + k, sizeof(big) - (size_t)k, "X%d: y\r\n", i);
    k += snprintf(big + k, sizeof(big) - (size_t)k, "\r\n");
    ASSERT_EQ(parse_every_way(big, (size_t)k, &lim, &r), k);
    ASSERT_EQ(r.req.num_headers, MAXH);
    k -= 2;
    k += snprintf(big + k, sizeof(big) - (size_t)k, "Y: z\r\n\r\n");
    ASSERT_EQ(parse_every_way(big, (size_t)k, &lim, &r), SWOOP_HTTP_E_TOO_MANY_HEADERS);

    /* Body: Content-Length above max_body is 413 from the head alone. */
    const char b100[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n";
    ASSERT_GT(parse_every_way(b100, sizeof(b100) - 1, &lim, &r), 0);
    const char b101[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n";
    ASSERT_EQ(parse_every_way(b101, sizeof(b101) - 1, &lim, &r), SWOOP_HTTP_E_BODY_TOO_LARGE);
}

TEST(http_parser_incomplete)
{
    /* Every proper prefix of a valid head is "incomplete", never an error. */
    static result_t r;
    size_t n = sizeof(browser) - 1;
    for (size_t k = 0; k < n; k++)
        ASSERT_EQ(parse_every_way(browser, k, &lim_default, &r), SWOOP_HTTP_INCOMPLETE);
}

TEST(http_parser_error_status)
{
    static const struct {
        int err, status;
    } map[] = {
        {SWOOP_HTTP_E_BARE_LF, 400},           {SWOOP_HTTP_E_CL_TE, 400},
        {SWOOP_HTTP_E_TE_UNKNOWN, 501},        {SWOOP_HTTP_E_CONNECT, 501},
        {SWOOP_HTTP_E_ASTERISK, 405},          {SWOOP_HTTP_E_VERSION_UNSUPPORTED, 505},
        {SWOOP_HTTP_E_HEAD_TOO_LARGE, 431},    {SWOOP_HTTP_E_TOO_MANY_HEADERS, 431},
        {SWOOP_HTTP_E_TRAILER_TOO_LARGE, 431}, {SWOOP_HTTP_E_URI_TOO_LONG, 414},
        {SWOOP_HTTP_E_BODY_TOO_LARGE, 413},    {SWOOP_HTTP_E_CHUNK_SIZE, 400},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        ASSERT_EQ(swoop__http_error_status(map[i].err), map[i].status);
    for (int e = SWOOP_HTTP_E_BODY_TOO_LARGE; e <= SWOOP_HTTP_E_BARE_LF; e++) {
        ASSERT(strcmp(swoop__http_error_reason(e), "unknown HTTP parse error") != 0);
        int s = swoop__http_error_status(e);
        ASSERT(s == 400 || s == 405 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505);
    }
    ASSERT_STR_EQ(swoop__http_error_reason(SWOOP_HTTP_E_BARE_LF), "bare LF");
}

/* ---- chunked decoder ---- */

typedef struct chunk_result_s {
    ssize_t rc;
    size_t used; /* bytes of the input the body took (when rc >= 0) */
    char out[4096];
    size_t out_len;
    char trailer[1024]; /* the trailer section's bytes, as reported (trailer_off/len) */
    size_t trailer_len;
} chunk_result_t;

/* Feeds `in` in pieces ending at steps[] (each piece given once, in a fresh buffer). */
static void chunk_run(const char *in, size_t n, const size_t *steps, size_t nsteps,
                      uint64_t max_body, chunk_result_t *res)
{
    swoop_http_chunked_t dec;
    swoop__http_chunked_init(&dec, max_body, 256);
    memset(res, 0, sizeof(*res));
    res->rc = SWOOP_HTTP_INCOMPLETE;
    size_t from = 0;
    for (size_t s = 0; s < nsteps && from <= n; s++) {
        size_t piece = steps[s] - from, got = 0;
        char *copy = malloc(piece ? piece : 1);
        memcpy(copy, in + from, piece);
        res->rc = swoop__http_chunked_decode(&dec, copy, piece, &got);
        ASSERT_ULE(res->out_len + got, sizeof(res->out));
        memcpy(res->out + res->out_len, copy, got);
        res->out_len += got;
        /* The reported trailer bytes are inside the piece and after the data moved down. */
        ASSERT_ULE(dec.trailer_off + dec.trailer_len, piece);
        if (dec.trailer_len) {
            ASSERT_ULE(got, dec.trailer_off);
            ASSERT_ULE(res->trailer_len + dec.trailer_len, sizeof(res->trailer));
            memcpy(res->trailer + res->trailer_len, copy + dec.trailer_off, dec.trailer_len);
            res->trailer_len += dec.trailer_len;
        }
        free(copy);
        if (res->rc >= 0)
            res->used = from + (size_t)res->rc;
        if (res->rc != SWOOP_HTTP_INCOMPLETE)
            break;
        from = steps[s];
    }
    (void)n;
}

static void chunk_same(const chunk_result_t *a, const chunk_result_t *b, const char *what,
                       size_t cut)
{
    if (a->rc < 0 || b->rc < 0) {
        if (a->rc != b->rc)
            FAIL("%s (cut %zu): rc %zd vs %zd", what, cut, a->rc, b->rc);
        return; /* the decoded prefix before an error may differ in length: never used */
    }
    if (a->used != b->used || a->out_len != b->out_len || memcmp(a->out, b->out, a->out_len) != 0)
        FAIL("%s (cut %zu): used %zu/%zu out %zu/%zu", what, cut, a->used, b->used, a->out_len,
             b->out_len);
    if (a->trailer_len != b->trailer_len || memcmp(a->trailer, b->trailer, a->trailer_len) != 0)
        FAIL("%s (cut %zu): trailer %zu/%zu bytes", what, cut, a->trailer_len, b->trailer_len);
}

static ssize_t chunk_every_way(const char *in, size_t n, uint64_t max_body, chunk_result_t *res)
{
    static chunk_result_t other;
    size_t whole[1] = {n};
    chunk_run(in, n, whole, 1, max_body, res);
    for (size_t cut = 0; cut <= n; cut++) {
        size_t two[2] = {cut, n};
        chunk_run(in, n, two, 2, max_body, &other);
        chunk_same(res, &other, in, cut);
    }
    size_t *steps = malloc((n + 1) * sizeof(*steps));
    for (size_t k = 0; k <= n; k++)
        steps[k] = k;
    chunk_run(in, n, steps, n + 1, max_body, &other);
    free(steps);
    chunk_same(res, &other, in, (size_t)-1);
    return res->rc >= 0 ? (ssize_t)res->used : res->rc;
}

typedef struct chunk_row_s {
    const char *name;
    const char *in;
    size_t len;
    ssize_t expect; /* bytes used, or an error */
    const char *data;
} chunk_row_t;

#define CROW(name, lit, expect, data)                                                              \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, expect, data                                                   \
    }

static const chunk_row_t chunk_rows[] = {
    CROW("simple", "5\r\nhello\r\n0\r\n\r\n", 15, "hello"),
    CROW("two_chunks_upper_hex", "A\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n", 26, "0123456789!"),
    CROW("leading_zeros", "0005\r\nhello\r\n000\r\n\r\n", 20, "hello"),
    CROW("extensions", "5;name=value;x\r\nhello\r\n0;last\r\n\r\n", 33, "hello"),
    CROW("ext_bws", "5 ;a=\"q s\"\r\nhello\r\n0\r\n\r\n", 24, "hello"),
    CROW("trailers", "5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\t2 \r\n\r\n", 32, "hello"),
    CROW("trailer_obs_text", "0\r\nX: \xc3\xa9\r\n\r\n", 12, ""),
    CROW("next_request_follows", "1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 11, "a"),
    CROW("empty_body", "0\r\n\r\n", 5, ""),
    CROW("size_empty", "\r\nhello\r\n0\r\n\r\n", SWOOP_HTTP_E_CHUNK_SIZE, NULL),
    CROW("size_0x", "0x5\r\nhello\r\n0\r\n\r\n", SWOOP_HTTP_E_CHUNK_SIZE, NULL),
    CROW("size_sign", "+5\r\nhello\r\n0\r\n\r\n", SWOOP_HTTP_E_CHUNK_SIZE, NULL),
    CROW("size_leading_space", " 5\r\nhello\r\n0\r\n\r\n", SWOOP_HTTP_E_CHUNK_SIZE, NULL),
    CROW("size_trailing_space", "5 \r\nhello\r\n0\r\n\r\n", SWOOP_HTTP_E_CHUNK_SIZE, NULL),
    CROW("size_overflow", "10000000000000000\r\nx\r\n", SWOOP_HTTP_E_CHUNK_SIZE, NULL),
    CROW("size_bad_hex", "5g\r\nhello\r\n", SWOOP_HTTP_E_CHUNK_SIZE, NULL),
    CROW("size_bare_lf", "5\nhello\r\n0\r\n\r\n", SWOOP_HTTP_E_BARE_LF, NULL),
    CROW("size_bare_cr", "5\rhello\r\n0\r\n\r\n", SWOOP_HTTP_E_BARE_CR, NULL),
    CROW("data_no_crlf", "5\r\nhelloX\r\n0\r\n\r\n", SWOOP_HTTP_E_CHUNK_DATA, NULL),
    CROW("data_bare_lf", "5\r\nhello\n0\r\n\r\n", SWOOP_HTTP_E_CHUNK_DATA, NULL),
    CROW("data_bare_cr", "5\r\nhello\r0\r\n\r\n", SWOOP_HTTP_E_CHUNK_DATA, NULL),
    CROW("data_too_long", "3\r\nhello\r\n0\r\n\r\n", SWOOP_HTTP_E_CHUNK_DATA, NULL),
    CROW("ext_ctl", "5;a\x01\r\nhello\r\n0\r\n\r\n", SWOOP_HTTP_E_CHUNK_EXT, NULL),
    CROW("ext_bare_lf", "5;a\nhello\r\n0\r\n\r\n", SWOOP_HTTP_E_BARE_LF, NULL),
    CROW("ext_bare_cr", "5;a\rhello\r\n0\r\n\r\n", SWOOP_HTTP_E_BARE_CR, NULL),
    CROW("last_bare_lf", "0\r\n\n", SWOOP_HTTP_E_BARE_LF, NULL),
    CROW("last_bare_cr", "0\r\n\rX", SWOOP_HTTP_E_BARE_CR, NULL),
    /* Trailers follow the head's field rules. */
    CROW("trailer_obs_fold", "0\r\nX: a\r\n b\r\n\r\n", SWOOP_HTTP_E_OBS_FOLD, NULL),
    CROW("trailer_space_colon", "0\r\nX : a\r\n\r\n", SWOOP_HTTP_E_HEADER_SPACE, NULL),
    CROW("trailer_space_name", "0\r\nX Y: a\r\n\r\n", SWOOP_HTTP_E_HEADER_SPACE, NULL),
    CROW("trailer_empty_name", "0\r\n: a\r\n\r\n", SWOOP_HTTP_E_HEADER_NAME, NULL),
    CROW("trailer_no_colon", "0\r\nX\r\n\r\n", SWOOP_HTTP_E_HEADER_NAME, NULL),
    CROW("trailer_bare_lf", "0\r\nX: a\n\r\n", SWOOP_HTTP_E_BARE_LF, NULL),
    CROW("trailer_bare_cr", "0\r\nX: a\rb\r\n\r\n", SWOOP_HTTP_E_BARE_CR, NULL),
    CROW("trailer_nul", "0\r\nX: a\0\r\n\r\n", SWOOP_HTTP_E_HEADER_VALUE, NULL),
    CROW("trailer_lf_end", "0\r\nX: a\r\n\n", SWOOP_HTTP_E_BARE_LF, NULL),
};

TEST(http_chunked_rows)
{
    static chunk_result_t r;
    for (size_t i = 0; i < sizeof(chunk_rows) / sizeof(chunk_rows[0]); i++) {
        const chunk_row_t *row = &chunk_rows[i];
        ssize_t rc = chunk_every_way(row->in, row->len, 1 << 20, &r);
        if (rc != row->expect)
            FAIL("row %s: got %zd (%s), want %zd", row->name, rc, swoop__http_error_reason((int)rc),
                 row->expect);
        if (row->data != NULL &&
            (r.out_len != strlen(row->data) || memcmp(r.out, row->data, r.out_len) != 0))
            FAIL("row %s: decoded %zu bytes, want \"%s\"", row->name, r.out_len, row->data);
    }
}

/*
 * The trailer section as reported (whole, split at every byte, one byte at
 * a time: chunk_every_way compares them) and its packed fields.
 */
TEST(http_chunked_trailer_fields)
{
    static chunk_result_t r;
    static const struct {
        const char *in, *section;
        size_t packed_len;
        const char *packed;
        uint32_t count;
    } rows[] = {
        {"5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\t2 \r\n\r\n", "X-Sum: 1\r\nY:\t2 \r\n\r\n", 12,
         "X-Sum\0001\0Y\0002\0", 2},
        {"0\r\n\r\n", "\r\n", 0, "", 0},
        {"3\r\nabc\r\n0;ext\r\nEmpty:\r\nSp:   a b  \r\n\r\nGET", "Empty:\r\nSp:   a b  \r\n\r\n",
         14, "Empty\0\0Sp\0a b\0", 2},
        {"0\r\nX: \xc3\xa9\r\n\r\n", "X: \xc3\xa9\r\n\r\n", 5, "X\0\xc3\xa9\0", 1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t n = strlen(rows[i].in);
        ASSERT_GT(chunk_every_way(rows[i].in, n, 1 << 20, &r), 0);
        ASSERT_EQ(r.trailer_len, strlen(rows[i].section));
        ASSERT_MEM_EQ(r.trailer, rows[i].section, r.trailer_len);
        uint32_t count = 99;
        size_t plen = swoop__http_trailer_pack(r.trailer, r.trailer_len, &count);
        ASSERT_EQ(plen, rows[i].packed_len);
        ASSERT_EQ(count, rows[i].count);
        ASSERT_MEM_EQ(r.trailer, rows[i].packed, plen);
    }
    /* An error in the section: what was reported before it is never packed by the server. */
    static const char fold[] = "0\r\nX: a\r\n b\r\n\r\n";
    ASSERT_EQ(chunk_every_way(fold, sizeof(fold) - 1, 1 << 20, &r), SWOOP_HTTP_E_OBS_FOLD);
    /* Not a checked section (no CRLF): nothing packed past the last whole line. */
    char bad[] = "A: 1\r\nB";
    uint32_t count;
    ASSERT_EQ(swoop__http_trailer_pack(bad, sizeof(bad) - 1, &count), (size_t)4);
    ASSERT_EQ(count, 1u);
}

TEST(http_chunked_limits)
{
    static chunk_result_t r;
    /* max_body counts decoded bytes; refused as soon as the size line says so. */
    const char ten[] = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    ASSERT_EQ(chunk_every_way(ten, sizeof(ten) - 1, 10, &r), (ssize_t)sizeof(ten) - 1);
    ASSERT_EQ(chunk_every_way(ten, sizeof(ten) - 1, 9, &r), SWOOP_HTTP_E_BODY_TOO_LARGE);
    ASSERT_EQ(chunk_every_way("fffffff\r\n", 9, 1000, &r), SWOOP_HTTP_E_BODY_TOO_LARGE);

    /* The longest size line is bounded, extensions included. */
    static char line[5000];
    memset(line, '0', sizeof(line));
    ASSERT_EQ(chunk_every_way(line, sizeof(line), 1000, &r), SWOOP_HTTP_E_CHUNK_SIZE);
    line[0] = '1';
    line[1] = ';';
    memset(line + 2, 'e', sizeof(line) - 2);
    ASSERT_EQ(chunk_every_way(line, sizeof(line), 1000, &r), SWOOP_HTTP_E_CHUNK_EXT);

    /* Trailer section above max_trailer (256 here): 431. */
    static char tr[400];
    int k = snprintf(tr, sizeof(tr), "0\r\n");
    while (k < 300)
        k += snprintf(tr + k, sizeof(tr) - (size_t)k, "X: yyyyyyyyy\r\n");
    k += snprintf(tr + k, sizeof(tr) - (size_t)k, "\r\n");
    ASSERT_EQ(chunk_every_way(tr, (size_t)k, 1000, &r), SWOOP_HTTP_E_TRAILER_TOO_LARGE);

    /* Many one-byte chunks: framing overhead far above the data is refused. */
    swoop_http_chunked_t dec;
    swoop__http_chunked_init(&dec, 1 << 30, 256);
    char piece[] = "1;padpadpadpadpad\r\nx\r\n";
    ssize_t rc = SWOOP_HTTP_INCOMPLETE;
    size_t got, total = 0;
    for (int i = 0; i < 100000 && rc == SWOOP_HTTP_INCOMPLETE; i++) {
        char tmp[sizeof(piece)];
        memcpy(tmp, piece, sizeof(piece));
        rc = swoop__http_chunked_decode(&dec, tmp, sizeof(piece) - 1, &got);
        total += got;
    }
    ASSERT_EQ(rc, SWOOP_HTTP_E_CHUNK_OVERHEAD);
    ASSERT_GT(total, 1000);

    /* Large chunks are fine: overhead stays far below the data. */
    swoop__http_chunked_init(&dec, 1 << 30, 256);
    static char blk[8192 + 16];
    int h = snprintf(blk, sizeof(blk), "2000\r\n");
    memset(blk + h, 'z', 8192);
    memcpy(blk + h + 8192, "\r\n", 2);
    size_t blen = (size_t)h + 8192 + 2;
    for (int i = 0; i < 200; i++) {
        static char tmp[sizeof(blk)];
        memcpy(tmp, blk, blen);
        ASSERT_EQ(swoop__http_chunked_decode(&dec, tmp, blen, &got), SWOOP_HTTP_INCOMPLETE);
        ASSERT_EQ(got, 8192);
        ASSERT_EQ(tmp[0], 'z');
    }
    char end[] = "0\r\n\r\n";
    ASSERT_EQ(swoop__http_chunked_decode(&dec, end, 5, &got), 5);
    /* Once ended, the decoder uses no more bytes. */
    ASSERT_EQ(swoop__http_chunked_decode(&dec, end, 5, &got), 0);
    ASSERT_EQ(got, 0);
}

TEST(http_request_then_chunked_body)
{
    /* A head, its chunked body and a pipelined request, as a connection sees them. */
    char in[] = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"
                "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
    static result_t r;
    ssize_t head = parse_every_way(in, sizeof(in) - 1, &lim_default, &r);
    ASSERT_GT(head, 0);
    ASSERT_EQ(r.req.body, SWOOP_HTTP_BODY_CHUNKED);
    static chunk_result_t c;
    ssize_t used = chunk_every_way(in + head, sizeof(in) - 1 - (size_t)head, 1 << 20, &c);
    ASSERT_GT(used, 0);
    ASSERT_EQ(c.out_len, 5);
    ASSERT_MEM_EQ(c.out, "abcde", 5);
    const char *next = in + head + used;
    ASSERT_GT(parse_every_way(next, strlen(next), &lim_default, &r), 0);
    ASSERT_STR_EQ(S(next, r.req.path), "/next");
}
