/*
 * libFuzzer target for stream framing (src/proto/framing.c). The first bytes
 * choose the settings (mode, EOF marker, length type and offsets, limit);
 * the rest is a stream cut into packets the way a connection would. Checks:
 * a packet never exceeds what is buffered or the limit, EOF-split packets
 * end with the marker, length packets match their header, and the resume
 * point makes byte-by-byte arrival give the same cuts as all at once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/log.h>

#include "proto/framing.h"

static const char types[] = "cCsSnvlLNVqQ";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    swoop_log_set_level(SWOOP_LOG_NONE);
    return 0;
}

/* Cuts `buf` into packets, feeding it `step` bytes at a time; returns the cut count. */
static size_t cut(const swoop_framing_t *f, const char *buf, size_t len, size_t step, size_t *ends,
                  size_t max_ends)
{
    size_t start = 0, avail = 0, scan = 0, n = 0;
    while (start < len && n < max_ends) {
        avail = avail + step > len ? len : avail + step;
        for (;;) {
            size_t need = 0;
            ssize_t r = swoop__frame_length(f, buf + start, avail - start, &scan, &need);
            if (r < 0)
                return n; /* the connection would be closed */
            if (r == 0)
                break;
            if ((size_t)r > avail - start)
                abort();
            if (f->max_length && (size_t)r > f->max_length)
                abort();
            if (f->mode == SWOOP_FRAME_EOF_SPLIT &&
                memcmp(buf + start + r - f->eof_len, f->eof, f->eof_len) != 0)
                abort();
            start += (size_t)r;
            scan = 0;
            ends[n++] = start;
            if (n == max_ends || start >= avail)
                break;
        }
        if (avail == len && start < len) {
            size_t need = 0;
            if (swoop__frame_length(f, buf + start, len - start, &scan, &need) <= 0)
                break;
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    swoop_framing_t f;
    memset(&f, 0, sizeof(f));
    f.mode = (swoop_frame_mode_t)(1 + data[0] % 3);
    f.eof_len = 1 + data[1] % 4;
    memcpy(f.eof, data + 2, f.eof_len);
    f.length_type = types[data[6] % (sizeof(types) - 1)];
    f.length_offset = data[7] % 8;
    f.body_offset = f.length_offset + swoop__frame_type_size(f.length_type) + data[1] % 4;
    f.max_length = 64 + (size_t)data[0] * 64;
    if (swoop__framing_check(&f) < 0)
        return 0;
    const char *stream = (const char *)data + 8;
    size_t len = size - 8;
    enum { MAX_CUTS = 4096 };
    static size_t whole[MAX_CUTS], bytewise[MAX_CUTS];
    size_t a = cut(&f, stream, len, len ? len : 1, whole, MAX_CUTS);
    size_t b = cut(&f, stream, len, 1, bytewise, MAX_CUTS);
    /* EOF_CHECK delivers "everything so far" and so depends on arrival; the others must not. */
    if (f.mode != SWOOP_FRAME_EOF_CHECK) {
        if (a != b)
            abort();
        for (size_t i = 0; i < a; i++) {
            if (whole[i] != bytewise[i])
                abort();
        }
    }
    return 0;
}
