/*
 * The byte buffer of buf.h. Consumed space at the front is reclaimed by
 * moving the unread bytes down when that avoids growing.
 */
#include "base/buf.h"

#include <string.h>

#include "base/internal.h"

void swoop__buf_init(swoop_buf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void swoop__buf_free(swoop_buf_t *b)
{
    swoop_free(b->data);
    memset(b, 0, sizeof(*b));
}

int swoop__buf_reserve(swoop_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t unread = b->len - b->off;
    if (extra > SIZE_MAX / 2 - unread)
        return SWOOP_ENOMEM;
    if (b->off > 0 && b->cap - unread >= extra) {
        memmove(b->data, b->data + b->off, unread);
        b->off = 0;
        b->len = unread;
        return 0;
    }
    size_t need = unread + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p;
    if (b->off > 0) {
        /* Copy only the unread part into a fresh block. */
        p = swoop_try_malloc(cap);
        if (p == NULL)
            return SWOOP_ENOMEM;
        memcpy(p, b->data + b->off, unread);
        swoop_free(b->data);
    } else {
        p = swoop_try_realloc(b->data, cap);
        if (p == NULL)
            return SWOOP_ENOMEM;
    }
    b->data = p;
    b->off = 0;
    b->len = unread;
    b->cap = cap;
    return 0;
}

int swoop__buf_append(swoop_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = swoop__buf_reserve(b, n);
    if (rc < 0)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void swoop__buf_consume(swoop_buf_t *b, size_t n)
{
    assert(n <= b->len - b->off);
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

void swoop__buf_clear(swoop_buf_t *b)
{
    b->off = b->len = 0;
}

void swoop__buf_shrink(swoop_buf_t *b, size_t want, size_t keep)
{
    size_t unread = b->len - b->off;
    if (want < unread)
        want = unread;
    if (b->cap <= keep || want > b->cap / 4)
        return;
    if (want == 0) {
        swoop__buf_free(b);
        return;
    }
    size_t cap = 256;
    while (cap < want)
        cap *= 2;
    char *p = swoop_try_malloc(cap);
    if (p == NULL)
        return; /* keeping the larger block costs memory, not correctness */
    memcpy(p, b->data + b->off, unread);
    swoop_free(b->data);
    b->data = p;
    b->off = 0;
    b->len = unread;
    b->cap = cap;
}
