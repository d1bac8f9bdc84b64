/*
 * Stream framing: given the bytes a connection has buffered, the length of
 * the first whole packet (see framing.h). The EOF search resumes where the
 * previous call stopped; the length decoder reads only the fixed header and
 * rejects a declared size above max_length before the body is read, so a
 * peer cannot make us reserve memory by announcing a huge packet.
 */
#include "proto/framing.h"

#include <string.h>

#include "base/internal.h"

size_t swoop__frame_type_size(char type)
{
    switch (type) {
    case 'c':
    case 'C':
        return 1;
    case 's':
    case 'S':
    case 'n':
    case 'v':
        return 2;
    case 'l':
    case 'L':
    case 'N':
    case 'V':
        return 4;
    case 'q':
    case 'Q':
        return 8;
    default:
        return 0;
    }
}

int swoop__framing_check(swoop_framing_t *f)
{
    if (f->max_length == 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "framing: package_max_length must be > 0");
        return SWOOP_EINVAL;
    }
    switch (f->mode) {
    case SWOOP_FRAME_NONE:
        return 0;
    case SWOOP_FRAME_EOF_CHECK:
    case SWOOP_FRAME_EOF_SPLIT:
        if (f->eof_len < 1 || f->eof_len > SWOOP_FRAME_EOF_MAX) {
            swoop_log(SWOOP_LOG_WARNING, 0, "framing: package_eof must be 1..%d bytes",
                      SWOOP_FRAME_EOF_MAX);
            return SWOOP_EINVAL;
        }
        return 0;
    case SWOOP_FRAME_LENGTH:
        f->length_size = swoop__frame_type_size(f->length_type);
        if (f->length_size == 0) {
            swoop_log(SWOOP_LOG_WARNING, 0, "framing: unknown package_length_type '%c'",
                      f->length_type ? f->length_type : '?');
            return SWOOP_EINVAL;
        }
        if (f->length_offset + f->length_size > f->body_offset) {
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "framing: package_length_offset (%zu) + length size (%zu) exceeds "
                      "package_body_offset (%zu)",
                      f->length_offset, f->length_size, f->body_offset);
            return SWOOP_EINVAL;
        }
        return 0;
    }
    swoop_log(SWOOP_LOG_WARNING, 0, "framing: unknown mode %d", (int)f->mode);
    return SWOOP_EINVAL;
}

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

int swoop__frame_decode_length(char type, const unsigned char *p, uint64_t *out)
{
    /* s S l L q Q are in machine order, as PHP's pack() writes them. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST(p, n) le((p), (n))
#else
#define HOST(p, n) be((p), (n))
#endif
    int64_t sv;
    switch (type) {
    case 'c':
        sv = (int8_t)p[0];
        break;
    case 'C':
        *out = p[0];
        return 0;
    case 's':
        sv = (int16_t)HOST(p, 2);
        break;
    case 'S':
        *out = HOST(p, 2);
        return 0;
    case 'n':
        *out = be(p, 2);
        return 0;
    case 'v':
        *out = le(p, 2);
        return 0;
    case 'l':
        sv = (int32_t)HOST(p, 4);
        break;
    case 'L':
        *out = HOST(p, 4);
        return 0;
    case 'N':
        *out = be(p, 4);
        return 0;
    case 'V':
        *out = le(p, 4);
        return 0;
    case 'q':
        sv = (int64_t)HOST(p, 8);
        break;
    case 'Q':
        *out = HOST(p, 8);
        return 0;
    default:
        return SWOOP_EINVAL;
    }
#undef HOST
    if (sv < 0)
        return SWOOP_EPROTO;
    *out = (uint64_t)sv;
    return 0;
}

static ssize_t frame_eof_split(const swoop_framing_t *f, const char *buf, size_t len, size_t *scan)
{
    size_t from = *scan;
    /* The marker may straddle the previous end: back up by eof_len - 1. */
    from = from >= f->eof_len - 1 ? from - (f->eof_len - 1) : 0;
    if (len >= f->eof_len) {
        const char *hit = memmem(buf + from, len - from, f->eof, f->eof_len);
        if (hit != NULL) {
            size_t plen = (size_t)(hit - buf) + f->eof_len;
            if (plen > f->max_length)
                return SWOOP_ETOOBIG;
            return (ssize_t)plen;
        }
    }
    *scan = len;
    if (len >= f->max_length)
        return SWOOP_ETOOBIG;
    return 0;
}

ssize_t swoop__frame_length(const swoop_framing_t *f, const char *buf, size_t len, size_t *scan,
                            size_t *need)
{
    size_t dummy = 0;
    if (scan == NULL)
        scan = &dummy;
    if (need)
        *need = 0;
    if (len == 0)
        return 0;
    switch (f->mode) {
    case SWOOP_FRAME_NONE:
        return (ssize_t)len;
    case SWOOP_FRAME_EOF_CHECK:
        if (len >= f->eof_len && memcmp(buf + len - f->eof_len, f->eof, f->eof_len) == 0)
            return len > f->max_length ? SWOOP_ETOOBIG : (ssize_t)len;
        if (len >= f->max_length)
            return SWOOP_ETOOBIG;
        return 0;
    case SWOOP_FRAME_EOF_SPLIT:
        return frame_eof_split(f, buf, len, scan);
    case SWOOP_FRAME_LENGTH: {
        if (len < f->length_offset + f->length_size)
            return 0;
        uint64_t v;
        int rc = swoop__frame_decode_length(f->length_type,
                                            (const unsigned char *)buf + f->length_offset, &v);
        if (rc < 0)
            return SWOOP_EPROTO;
        if (v > f->max_length || f->body_offset + v > f->max_length)
            return SWOOP_ETOOBIG;
        size_t total = f->body_offset + (size_t)v;
        if (len >= total)
            return (ssize_t)total;
        if (need)
            *need = total;
        return 0;
    }
    }
    return SWOOP_EINVAL;
}
