/*
 * Stream framing: every length type, EOF check vs split, input split at every
 * byte boundary, and a declared size above package_max_length rejected from
 * the header alone.
 */
#include <stdlib.h>
#include <string.h>

#include <swoop/error.h>

#include "proto/framing.h"
#include "test.h"

static swoop_framing_t length_framing(char type, size_t off, size_t body, size_t max)
{
    swoop_framing_t f = {.mode = SWOOP_FRAME_LENGTH,
                         .length_type = type,
                         .length_offset = off,
                         .body_offset = body,
                         .max_length = max};
    ASSERT_OK(swoop__framing_check(&f));
    return f;
}

TEST(framing_length_types)
{
    const unsigned char n4[] = {0x00, 0x01, 0x02, 0x03};
    uint64_t v;
    ASSERT_OK(swoop__frame_decode_length('N', n4, &v));
    ASSERT_UEQ(v, 0x010203);
    ASSERT_OK(swoop__frame_decode_length('V', n4, &v));
    ASSERT_UEQ(v, 0x03020100);
    ASSERT_OK(swoop__frame_decode_length('n', n4 + 2, &v));
    ASSERT_UEQ(v, 0x0203);
    ASSERT_OK(swoop__frame_decode_length('v', n4 + 2, &v));
    ASSERT_UEQ(v, 0x0302);
    ASSERT_OK(swoop__frame_decode_length('C', n4 + 3, &v));
    ASSERT_UEQ(v, 3);
    const unsigned char neg[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ASSERT_EQ(swoop__frame_decode_length('c', neg, &v), SWOOP_EPROTO);
    ASSERT_EQ(swoop__frame_decode_length('s', neg, &v), SWOOP_EPROTO);
    ASSERT_EQ(swoop__frame_decode_length('l', neg, &v), SWOOP_EPROTO);
    ASSERT_EQ(swoop__frame_decode_length('q', neg, &v), SWOOP_EPROTO);
    ASSERT_OK(swoop__frame_decode_length('S', neg, &v));
    ASSERT_UEQ(v, 0xffff);
    ASSERT_OK(swoop__frame_decode_length('L', neg, &v));
    ASSERT_UEQ(v, 0xffffffffu);
    ASSERT_OK(swoop__frame_decode_length('Q', neg, &v));
    ASSERT_UEQ(v, UINT64_MAX);
    /* Machine order for s/l/q: write with memcpy, read back. */
    int16_t s16 = 300;
    int32_t s32 = 70000;
    int64_t s64 = 5000000000;
    ASSERT_OK(swoop__frame_decode_length('s', (unsigned char *)&s16, &v));
    ASSERT_UEQ(v, 300);
    ASSERT_OK(swoop__frame_decode_length('l', (unsigned char *)&s32, &v));
    ASSERT_UEQ(v, 70000);
    ASSERT_OK(swoop__frame_decode_length('q', (unsigned char *)&s64, &v));
    ASSERT_UEQ(v, 5000000000);
    const char *all = "cCsSnvlLNVqQ";
    for (const char *t = all; *t; t++)
        ASSERT_GT(swoop__frame_type_size(*t), 0);
    ASSERT_EQ(swoop__frame_type_size('x'), 0);
    swoop_framing_t bad = {.mode = SWOOP_FRAME_LENGTH, .length_type = 'x', .max_length = 10};
    ASSERT_EQ(swoop__framing_check(&bad), SWOOP_EINVAL);
    swoop_framing_t bad2 = {
        .mode = SWOOP_FRAME_LENGTH, .length_type = 'N', .body_offset = 2, .max_length = 10};
    ASSERT_EQ(swoop__framing_check(&bad2), SWOOP_EINVAL);
}

/* Builds `count` packets of [2-byte magic][N length][body] with bodies of varying size. */
static size_t build_length_stream(char *out, int count)
{
    size_t len = 0;
    for (int i = 0; i < count; i++) {
        uint32_t body = (uint32_t)(i * 7 % 50);
        out[len++] = 'S';
        out[len++] = 'W';
        out[len++] = (char)(body >> 24);
        out[len++] = (char)(body >> 16);
        out[len++] = (char)(body >> 8);
        out[len++] = (char)body;
        for (uint32_t k = 0; k < body; k++)
            out[len++] = (char)('a' + (i + (int)k) % 26);
    }
    return len;
}

/*
 * Feeds `stream` to the framer as a connection would: bytes arrive in two
 * pieces split at `cut`, packets are consumed as they complete. Returns the
 * number of packets and checks their lengths against the unsplit run.
 */
static int feed(const swoop_framing_t *f, const char *stream, size_t len, size_t cut,
                const size_t *expect, int nexpect)
{
    char *buf = malloc(len + 1);
    size_t have = 0, scan = 0, pos = 0;
    int got = 0;
    size_t pieces[2] = {cut, len - cut};
    for (int p = 0; p < 2; p++) {
        memcpy(buf + have, stream + pos, pieces[p]);
        have += pieces[p];
        pos += pieces[p];
        for (;;) {
            ssize_t n = swoop__frame_length(f, buf, have, &scan, NULL);
            ASSERT_GE(n, 0);
            if (n == 0)
                break;
            ASSERT_LT(got, nexpect);
            ASSERT_EQ((size_t)n, expect[got]);
            got++;
            memmove(buf, buf + n, have - (size_t)n);
            have -= (size_t)n;
            scan = 0;
        }
    }
    ASSERT_EQ(have, 0);
    free(buf);
    return got;
}

TEST(framing_length_split_at_every_byte)
{
    static char stream[4096];
    size_t len = build_length_stream(stream, 40);
    swoop_framing_t f = length_framing('N', 2, 6, 1024);
    size_t expect[40];
    for (int i = 0; i < 40; i++)
        expect[i] = 6 + (size_t)(i * 7 % 50);
    for (size_t cut = 0; cut <= len; cut++)
        ASSERT_EQ(feed(&f, stream, len, cut, expect, 40), 40);
}

TEST(framing_eof_split_at_every_byte)
{
    static char stream[4096];
    size_t len = 0;
    size_t expect[30];
    for (int i = 0; i < 30; i++) {
        size_t body = (size_t)(i * 5 % 23);
        for (size_t k = 0; k < body; k++)
            stream[len++] = (char)('a' + (int)k % 26);
        memcpy(stream + len, "\r\n\r\n", 4);
        len += 4;
        expect[i] = body + 4;
    }
    swoop_framing_t f = {.mode = SWOOP_FRAME_EOF_SPLIT, .eof_len = 4, .max_length = 1024};
    memcpy(f.eof, "\r\n\r\n", 4);
    ASSERT_OK(swoop__framing_check(&f));
    for (size_t cut = 0; cut <= len; cut++)
        ASSERT_EQ(feed(&f, stream, len, cut, expect, 30), 30);
}

TEST(framing_eof_check_vs_split)
{
    swoop_framing_t f = {.mode = SWOOP_FRAME_EOF_CHECK, .eof_len = 1, .max_length = 64};
    f.eof[0] = '\n';
    ASSERT_OK(swoop__framing_check(&f));
    /* Check delivers the whole buffer once it ends with the marker... */
    ASSERT_EQ(swoop__frame_length(&f, "a\nb\n", 4, NULL, NULL), 4);
    ASSERT_EQ(swoop__frame_length(&f, "a\nb", 3, NULL, NULL), 0);
    /* ...split cuts at the first one. */
    f.mode = SWOOP_FRAME_EOF_SPLIT;
    ASSERT_EQ(swoop__frame_length(&f, "a\nb\n", 4, NULL, NULL), 2);
    /* No marker within max_length: too big. */
    char big[100];
    memset(big, 'x', sizeof(big));
    size_t scan = 0;
    ASSERT_EQ(swoop__frame_length(&f, big, sizeof(big), &scan, NULL), SWOOP_ETOOBIG);
    f.mode = SWOOP_FRAME_EOF_CHECK;
    ASSERT_EQ(swoop__frame_length(&f, big, sizeof(big), NULL, NULL), SWOOP_ETOOBIG);
    f.mode = SWOOP_FRAME_NONE;
    ASSERT_EQ(swoop__frame_length(&f, big, 10, NULL, NULL), 10);
    ASSERT_EQ(swoop__frame_length(&f, big, 0, NULL, NULL), 0);
    swoop_framing_t bad = {.mode = SWOOP_FRAME_EOF_SPLIT, .eof_len = 0, .max_length = 64};
    ASSERT_EQ(swoop__framing_check(&bad), SWOOP_EINVAL);
}

TEST(framing_declared_too_big_rejected_from_header)
{
    /* A header declaring 3 MiB with a 2 MiB limit: rejected with only 4 bytes read. */
    swoop_framing_t f = length_framing('N', 0, 4, 2 * 1024 * 1024);
    unsigned char hdr[4] = {0x00, 0x30, 0x00, 0x00};
    size_t need = 1;
    ASSERT_EQ(swoop__frame_length(&f, (char *)hdr, 4, NULL, &need), SWOOP_ETOOBIG);
    /* 1 MiB is fine and reports what it needs. */
    hdr[1] = 0x10;
    ASSERT_EQ(swoop__frame_length(&f, (char *)hdr, 4, NULL, &need), 0);
    ASSERT_UEQ(need, 4 + 0x100000);
    /* Partial header: need unknown. */
    ASSERT_EQ(swoop__frame_length(&f, (char *)hdr, 3, NULL, &need), 0);
    ASSERT_UEQ(need, 0);
    /* 64-bit length near UINT64_MAX must not wrap past the check. */
    swoop_framing_t q = length_framing('Q', 0, 8, 1024);
    unsigned char h8[8];
    memset(h8, 0xff, sizeof(h8));
    ASSERT_EQ(swoop__frame_length(&q, (char *)h8, 8, NULL, NULL), SWOOP_ETOOBIG);
    /* A negative signed length is malformed. */
    swoop_framing_t l = length_framing('l', 0, 4, 1024);
    ASSERT_EQ(swoop__frame_length(&l, (char *)h8, 4, NULL, NULL), SWOOP_EPROTO);
}
