/*
 * Text rendered into a caller's buffer with printf formats (the metrics
 * page, the dashboard's JSON): past the buffer's end it only counts, so
 * `n` ends as the size the whole text needs and the caller can retry with
 * a buffer that big.
 */
#ifndef SWOOP_BASE_TEXTOUT_H
#define SWOOP_BASE_TEXTOUT_H

#include <stddef.h>

typedef struct swoop_textout_s {
    char *buf;
    size_t cap;
    size_t n; /* bytes the whole text needs so far */
} swoop_textout_t;

void swoop__textout_put(swoop_textout_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* SWOOP_BASE_TEXTOUT_H */
