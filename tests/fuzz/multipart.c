/*
 * libFuzzer target for the multipart/form-data parser (src/proto/multipart.c)
 * and the Content-Type boundary reader. The first byte chooses two cut
 * points; the rest is a body with the boundary "XyZ". Checks: the body
 * gives the same events, part fields and bytes (hashed) whole, cut in
 * three pieces, and one byte at a time (up to 4 KiB); every event points
 * inside the piece it was given or the parser; consumed counts stay within
 * the piece; the input read as a Content-Type value never overflows the
 * boundary buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/log.h>

#include "proto/multipart.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    swoop_log_set_level(SWOOP_LOG_NONE);
    return 0;
}

typedef struct sum_s {
    int rc;
    int done;
    uint64_t hash; /* of the event sequence, part fields and data bytes */
    uint64_t bytes;
} sum_t;

static void mix(sum_t *s, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        s->hash = (s->hash ^ c[i]) * 1099511628211ull;
}

static void feed(swoop_mp_t *mp, const char *in, size_t n, sum_t *s)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, in, n);
    size_t off = 0;
    while (s->rc == 0 && off < n) {
        swoop_mp_event_t ev;
        ssize_t k = swoop__mp_parse(mp, copy + off, n - off, &ev);
        if (k < 0) {
            s->rc = (int)k;
            break;
        }
        if ((size_t)k > n - off)
            abort();
        if (ev.type == SWOOP_MP_EV_DATA) {
            int in_piece = ev.data >= copy && ev.data + ev.len <= copy + n;
            int in_parser =
                ev.data >= mp->delim && ev.data + ev.len <= mp->delim + sizeof(mp->delim);
            if (ev.len == 0 || (!in_piece && !in_parser))
                abort();
            /* Data is hashed byte by byte: how it was split into events does not matter. */
            mix(s, ev.data, ev.len);
            s->bytes += ev.len;
        } else if (ev.type != SWOOP_MP_EV_NONE) {
            unsigned char t = (unsigned char)(0xf0 | ev.type);
            mix(s, &t, 1);
            if (ev.type == SWOOP_MP_EV_PART) {
                const char *name = swoop__mp_str(mp, mp->name);
                if (strlen(name) != mp->name.len || mp->name.len == 0)
                    abort();
                mix(s, name, mp->name.len + 1);
                mix(s, swoop__mp_str(mp, mp->filename), mp->filename.len + 1);
                mix(s, swoop__mp_str(mp, mp->type), mp->type.len + 1);
            }
        }
        off += (size_t)k;
        if (ev.type == SWOOP_MP_EV_NONE && off != n)
            abort();
    }
    free(copy);
}

static void run(const char *in, const size_t *ends, size_t nends, sum_t *s)
{
    static swoop_mp_t mp;
    memset(s, 0, sizeof(*s));
    s->hash = 14695981039346656037ull;
    swoop__mp_init(&mp, "XyZ", 3);
    size_t from = 0;
    for (size_t i = 0; i < nends && s->rc == 0; i++) {
        feed(&mp, in + from, ends[i] - from, s);
        from = ends[i];
    }
    s->done = swoop__mp_done(&mp);
}

static void same(const sum_t *a, const sum_t *b)
{
    if (a->rc != b->rc)
        abort();
    if (a->rc == 0 && (a->done != b->done || a->hash != b->hash || a->bytes != b->bytes))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    sum_t whole, other;
    size_t all[1] = {n};
    run(in, all, 1, &whole);
    size_t a = n ? (size_t)data[0] * 7 % (n + 1) : 0, b = n ? (size_t)data[0] * 13 % (n + 1) : 0;
    size_t three[3] = {a < b ? a : b, a < b ? b : a, n};
    run(in, three, 3, &other);
    same(&whole, &other);
    if (n <= 4096) {
        size_t *steps = malloc((n + 1) * sizeof(*steps));
        for (size_t k = 0; k <= n; k++)
            steps[k] = k;
        run(in, steps, n + 1, &other);
        free(steps);
        same(&whole, &other);
    }
    char boundary[SWOOP_MP_BOUNDARY_MAX + 1];
    size_t bl = 0;
    if (swoop__mp_boundary(in, n, boundary, &bl) == 0 &&
        (bl == 0 || bl > SWOOP_MP_BOUNDARY_MAX || strlen(boundary) != bl))
        abort();
    return 0;
}
