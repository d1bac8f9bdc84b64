/*
 * Incremental UTF-8 validation (RFC 3629): a WebSocket text message must be
 * valid UTF-8 and arrives in pieces split anywhere, even inside a
 * character, so the state between two calls is the number of continuation
 * bytes still owed and the range the next one must fall in. That range is
 * what rejects overlong forms (E0 80..9F, F0 80..8F), UTF-16 surrogates
 * (ED A0..BF) and code points above U+10FFFF (F4 90.., F5..FF); C0 and C1
 * can only start overlong forms and are refused as lead bytes.
 * Noncharacters (U+FFFE, U+FDD0...) are valid. Pure, no allocation; ASCII
 * runs are checked eight bytes at a time. Internal to the library (L1).
 */
#ifndef SWOOP_PROTO_UTF8_H
#define SWOOP_PROTO_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef struct swoop_utf8_s {
    uint8_t need; /* continuation bytes still owed by the current character */
    uint8_t lo;   /* the next byte's range while need > 0 */
    uint8_t hi;
} swoop_utf8_t;

static inline void swoop__utf8_init(swoop_utf8_t *s)
{
    s->need = 0;
    s->lo = 0x80;
    s->hi = 0xbf;
}

/*
 * Checks p[0, n) as the continuation of what s has seen: 0 while the text
 * is valid so far, -1 at the first byte that cannot be UTF-8 (s is then
 * undefined).
 */
int swoop__utf8_feed(swoop_utf8_t *s, const uint8_t *p, size_t n);

/* 1 when the text seen so far ends on a character boundary (a message may end here). */
static inline int swoop__utf8_complete(const swoop_utf8_t *s)
{
    return s->need == 0;
}

/* The whole buffer as one text: 1 if valid UTF-8, else 0. */
int swoop__utf8_valid(const void *p, size_t n);

#endif /* SWOOP_PROTO_UTF8_H */
