/*
 * Growable byte buffer with a read cursor: bytes are appended at the end and
 * consumed from the front; the unread part is [data + off, data + len).
 * Growth uses swoop_try_realloc, since buffer sizes usually follow what a peer
 * sends: running out of memory is an error for that one user, not a crash.
 */
#ifndef SWOOP_BASE_BUF_H
#define SWOOP_BASE_BUF_H

#include <stddef.h>

typedef struct swoop_buf_s {
    char *data;
    size_t off; /* first unread byte */
    size_t len; /* end of written bytes */
    size_t cap;
} swoop_buf_t;

void swoop__buf_init(swoop_buf_t *b);
void swoop__buf_free(swoop_buf_t *b);
/* Makes room for `extra` more bytes at the end. Returns 0 or SWOOP_ENOMEM. */
int swoop__buf_reserve(swoop_buf_t *b, size_t extra);
/* Appends `n` bytes. Returns 0 or SWOOP_ENOMEM (the buffer is unchanged then). */
int swoop__buf_append(swoop_buf_t *b, const void *p, size_t n);
/* Marks `n` unread bytes as read; the buffer resets when it becomes empty. */
void swoop__buf_consume(swoop_buf_t *b, size_t n);
/* Forgets all content, keeps the memory. */
void swoop__buf_clear(swoop_buf_t *b);
/*
 * Gives memory back once the buffer is much larger than what it holds: when
 * its capacity is above `keep` and at least four times `want` (raised to the
 * unread length), the unread bytes move to a block of about `want` bytes, or
 * the block is freed when nothing is unread and `want` is 0. The factor of
 * four keeps a buffer that is still filling from being shrunk and grown again
 * on every read. Without memory for the smaller block the buffer stays as it is.
 */
void swoop__buf_shrink(swoop_buf_t *b, size_t want, size_t keep);

static inline const char *swoop__buf_rdata(const swoop_buf_t *b)
{
    return b->data + b->off;
}

static inline size_t swoop__buf_rlen(const swoop_buf_t *b)
{
    return b->len - b->off;
}

/* Where the next bytes go after swoop__buf_reserve; commit them with swoop__buf_commit. */
static inline char *swoop__buf_wdata(swoop_buf_t *b)
{
    return b->data + b->len;
}

static inline size_t swoop__buf_wlen(const swoop_buf_t *b)
{
    return b->cap - b->len;
}

static inline void swoop__buf_commit(swoop_buf_t *b, size_t n)
{
    b->len += n;
}

#endif /* SWOOP_BASE_BUF_H */
