/* Incremental UTF-8 validation: see utf8.h. */
#include "proto/utf8.h"

#include <string.h>

/* A lead byte's continuation count and the range of its first continuation byte. */
static int lead(swoop_utf8_t *s, uint8_t b)
{
    if (b >= 0xc2 && b <= 0xdf) {
        s->need = 1;
        s->lo = 0x80;
        s->hi = 0xbf;
    } else if (b >= 0xe0 && b <= 0xef) {
        s->need = 2;
        s->lo = b == 0xe0 ? 0xa0 : 0x80; /* E0 80..9F would be overlong */
        s->hi = b == 0xed ? 0x9f : 0xbf; /* ED A0..BF would be a surrogate */
    } else if (b >= 0xf0 && b <= 0xf4) {
        s->need = 3;
        s->lo = b == 0xf0 ? 0x90 : 0x80; /* F0 80..8F would be overlong */
        s->hi = b == 0xf4 ? 0x8f : 0xbf; /* F4 90.. would pass U+10FFFF */
    } else {
        return -1; /* 80..C1 (a stray continuation, or overlong), F5..FF */
    }
    return 0;
}

int swoop__utf8_feed(swoop_utf8_t *s, const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s->need == 0) {
            /* ASCII runs, eight bytes at a time. */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            while (i < n && p[i] < 0x80)
                i++;
            if (i == n)
                break;
            if (lead(s, p[i++]) < 0)
                return -1;
            continue;
        }
        uint8_t b = p[i++];
        if (b < s->lo || b > s->hi)
            return -1;
        s->need--;
        s->lo = 0x80;
        s->hi = 0xbf;
    }
    return 0;
}

int swoop__utf8_valid(const void *p, size_t n)
{
    swoop_utf8_t s;
    swoop__utf8_init(&s);
    return swoop__utf8_feed(&s, p, n) == 0 && swoop__utf8_complete(&s);
}
