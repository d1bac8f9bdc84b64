/*
 * HTTP/1.1 request parser throughput (src/proto/http_parser.c) on a typical
 * browser request (366 bytes, 7 fields), beside a reference measured in the
 * same run: a plain memchr line splitter over the same bytes that finds each
 * line end and each field's colon and validates nothing (a floor for "look
 * at every line"). Also the parser fed the same request in 64-byte pieces.
 * The two alternate in short slices of CPU time (so preemption on the
 * shared machine does not count and both see the same conditions); the
 * rates are the best slice, the ratio (parser speed / splitter speed) is
 * the median over the slices.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/http_parser.h"

static const char req[] =
    "GET /wiki/Special:Search?search=http+parser&go=Go HTTP/1.1\r\n"
    "Host: en.wikipedia.org\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "\r\n";

static volatile size_t sink;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The reference: line ends and colons by memchr, spans recorded, nothing checked. */
static size_t split_lines(const char *buf, size_t len)
{
    struct {
        const char *p;
        size_t n;
    } spans[64];
    size_t k = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return 0;
        if (nl - p <= 1)
            return (size_t)(nl + 1 - buf) + k; /* the empty line ends the head */
        const char *colon = memchr(p, ':', (size_t)(nl - p));
        if (k < 63) {
            spans[k].p = p;
            spans[k].n = colon ? (size_t)(colon - p) : 0;
            k++;
        }
        p = nl + 1;
    }
    sink = spans[0].n;
    return 0;
}

static size_t parse_whole(const char *buf, size_t len)
{
    swoop_http_header_t h[32];
    swoop_http_head_t r;
    swoop_http_limits_t lim = {.max_head = 8192, .max_uri = 4096, .max_body = 1 << 20};
    swoop__http_head_init(&r, h, 32);
    ssize_t rc = swoop__http_parse_request(&r, buf, len, &lim);
    return (size_t)rc + r.num_headers;
}

static size_t parse_pieces(const char *buf, size_t len)
{
    swoop_http_header_t h[32];
    swoop_http_head_t r;
    swoop_http_limits_t lim = {.max_head = 8192, .max_uri = 4096, .max_body = 1 << 20};
    swoop__http_head_init(&r, h, 32);
    ssize_t rc = SWOOP_HTTP_INCOMPLETE;
    for (size_t have = 64; rc == SWOOP_HTTP_INCOMPLETE; have += 64)
        rc = swoop__http_parse_request(&r, buf, have < len ? have : len, &lim);
    return (size_t)rc + r.num_headers;
}

/* CPU seconds for `iters` calls of fn on the request. */
static double timed(size_t (*fn)(const char *, size_t), int iters)
{
    size_t acc = 0;
    double t0 = now();
    for (int i = 0; i < iters; i++)
        acc += fn(req, sizeof(req) - 1);
    sink = acc;
    return now() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum { ROUNDS = 41, ITERS = 40000 };

/*
 * Alternates short slices of the reference and of fn, so both see the same
 * machine; returns fn's best requests/s and, in *ratio, the median of the
 * per-round speed ratios (fn / reference).
 */
static double measure(size_t (*fn)(const char *, size_t), double *ref_best, double *ratio)
{
    double ratios[ROUNDS], best = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double tr = timed(split_lines, ITERS), tf = timed(fn, ITERS);
        ratios[r] = tr / tf;
        if (ITERS / tf > best)
            best = ITERS / tf;
        if (ITERS / tr > *ref_best)
            *ref_best = ITERS / tr;
    }
    qsort(ratios, ROUNDS, sizeof(ratios[0]), cmp_double);
    *ratio = ratios[ROUNDS / 2];
    return best;
}

int main(void)
{
    size_t len = sizeof(req) - 1;
    if (parse_whole(req, len) != len + 7 || parse_pieces(req, len) != len + 7) {
        fprintf(stderr, "http_parser bench: the request does not parse\n");
        return 1;
    }
    double ref = 0, r_whole, r_pieces;
    double whole = measure(parse_whole, &ref, &r_whole);
    double pieces = measure(parse_pieces, &ref, &r_pieces);
    printf(
        "%zu-byte browser request, %d rounds of %d requests, CPU time; best rate, median ratio\n",
        len, ROUNDS, ITERS);
    printf("%-34s %10s %12s %7s\n", "", "MB/s", "requests/s", "ratio");
    printf("%-34s %10.0f %12.0f %7.2f\n", "memchr line splitter (reference)", ref * len / 1e6, ref,
           1.0);
    printf("%-34s %10.0f %12.0f %7.2f\n", "swoop parser, whole", whole * len / 1e6, whole, r_whole);
    printf("%-34s %10.0f %12.0f %7.2f\n", "swoop parser, 64-byte pieces", pieces * len / 1e6,
           pieces, r_pieces);
    return 0;
}
