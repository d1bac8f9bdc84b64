/*
 * The owner's permessage-deflate streams (src/ws/deflate.c) without a
 * server: what comes out inflates with a client's own zlib inflater at the
 * agreed window (8 bits through Z_RLE included), across messages with
 * context takeover; the decompression limit stops a zip bomb with an
 * allocation bounded by the limit; data that is not DEFLATE is 1007; what
 * state an idle connection keeps for each no_context_takeover; and a
 * shared (broadcast) message between two pushes leaves the client's
 * inflater and the connection's compressor in step.
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "proto/ws_deflate.h"
#include "test.h"
#include "ws/internal.h"

static ws_deflate_t *conn_with(int snc, int cnc, int sbits, int cbits)
{
    swoop_ws_deflate_params_t p = {(uint8_t)snc, (uint8_t)cnc, (uint8_t)sbits, (uint8_t)cbits};
    ws_deflate_t *z = swoop__ws_deflate_new(swoop__ws_deflate_pack(&p));
    ASSERT_NOT_NULL(z);
    return z;
}

/* A client's compressor: raw DEFLATE, sync flush, tail removed (RFC 7692 7.2.1). */
static size_t client_compress(z_stream *s, const void *in, size_t n, uint8_t *out, size_t cap)
{
    s->next_in = (Bytef *)(uintptr_t)in;
    s->avail_in = (uInt)n;
    s->next_out = out;
    s->avail_out = (uInt)cap;
    ASSERT_EQ(deflate(s, Z_SYNC_FLUSH), Z_OK);
    ASSERT_EQ(s->avail_in, 0u);
    size_t k = cap - s->avail_out;
    ASSERT_GE(k, 4u);
    ASSERT_MEM_EQ(out + k - 4, "\x00\x00\xff\xff", 4);
    return k - 4;
}

/* A client's inflater on what the server sent; the message's bytes in out. */
static size_t client_inflate(z_stream *s, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    uint8_t buf[1 << 16];
    ASSERT_LT(n + 4, sizeof(buf));
    memcpy(buf, in, n);
    memcpy(buf + n, "\x00\x00\xff\xff", 4);
    s->next_in = buf;
    s->avail_in = (uInt)(n + 4);
    s->next_out = out;
    s->avail_out = (uInt)cap;
    int rc = inflate(s, Z_SYNC_FLUSH);
    ASSERT(rc == Z_OK || rc == Z_BUF_ERROR);
    ASSERT_EQ(s->avail_in, 0u);
    return cap - s->avail_out;
}

static void text(char *p, size_t n, int seed)
{
    static const char *w[] = {"alpha ", "beta ", "gamma ", "delta ", "epsilon "};
    size_t at = 0;
    for (int i = seed; at < n; i++) {
        size_t l = strlen(w[i % 5]);
        memcpy(p + at, w[i % 5], at + l <= n ? l : n - at);
        at += l;
    }
}

/* Every window size, both takeover modes: pushes, then a shared message, then pushes again. */
TEST(ws_deflate_streams_inflate_at_the_agreed_window)
{
    swoop_reactor_t r;
    memset(&r, 0, sizeof(r));
    static char msg[3][5000];
    for (int i = 0; i < 3; i++)
        text(msg[i], sizeof(msg[i]), i);
    for (int bits = 8; bits <= 15; bits++) {
        for (int snc = 0; snc <= 1; snc++) {
            ws_deflate_t *z = conn_with(snc, 0, bits, 15);
            ASSERT_EQ(swoop__ws_deflate_bits(z), bits);
            z_stream cli;
            memset(&cli, 0, sizeof(cli));
            ASSERT_EQ(inflateInit2(&cli, -bits), Z_OK);
            static uint8_t got[8000];
            const uint8_t *p;
            size_t n;
            for (int round = 0; round < 6; round++) {
                const char *m = msg[round % 3];
                if (round == 3) {
                    /* A broadcast's shared frame, then the connection is told. */
                    ASSERT_EQ(swoop__ws_deflate_shared(&r, bits, m, sizeof(msg[0]), &p, &n), 1);
                    swoop__ws_deflate_unsync(z);
                } else {
                    ASSERT_EQ(swoop__ws_deflate_msg(&r, z, m, sizeof(msg[0]), &p, &n), 1);
                }
                /* It did compress (Huffman codes alone at 8 bits: Z_RLE finds no runs here). */
                ASSERT_LT(n, bits == 8 ? sizeof(msg[0]) * 3 / 4 : sizeof(msg[0]) / 4);
                size_t k = client_inflate(&cli, p, n, got, sizeof(got));
                ASSERT_EQ(k, sizeof(msg[0]));
                ASSERT_MEM_EQ(got, m, k);
                swoop__ws_deflate_scratch_done(&r);
            }
            /* Its own compressor only with server context takeover. */
            ASSERT_EQ(swoop__ws_deflate_context(z) & 2, snc ? 0 : 2);
            inflateEnd(&cli);
            swoop__ws_deflate_free(z);
        }
    }
    swoop__ws_deflate_owner_free(&r);
    ASSERT_NULL(r.proto_owner[SWOOP_PROTO_WS]);
}

/* Incompressible data is not worth RSV1: the caller sends it as it is. */
TEST(ws_deflate_incompressible_goes_plain)
{
    swoop_reactor_t r;
    memset(&r, 0, sizeof(r));
    ws_deflate_t *z = conn_with(0, 0, 15, 15);
    uint8_t noise[3000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(noise); i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (uint8_t)(x >> 23);
    }
    const uint8_t *p;
    size_t n;
    ASSERT_EQ(swoop__ws_deflate_msg(&r, z, noise, sizeof(noise), &p, &n), 0);
    /* The stream saw it, the client will not: reset before the next message, which decodes. */
    z_stream cli;
    memset(&cli, 0, sizeof(cli));
    ASSERT_EQ(inflateInit2(&cli, -15), Z_OK);
    char m[2000];
    text(m, sizeof(m), 1);
    ASSERT_EQ(swoop__ws_deflate_msg(&r, z, m, sizeof(m), &p, &n), 1);
    uint8_t got[4000];
    ASSERT_EQ(client_inflate(&cli, p, n, got, sizeof(got)), sizeof(m));
    ASSERT_MEM_EQ(got, m, sizeof(m));
    inflateEnd(&cli);
    swoop__ws_deflate_free(z);
    swoop__ws_deflate_owner_free(&r);
}

/* Client messages: whole, in pieces, with and without context takeover; what stays after. */
TEST(ws_deflate_inflate_messages_and_idle_state)
{
    for (int cnc = 0; cnc <= 1; cnc++) {
        ws_deflate_t *z = conn_with(0, cnc, 15, 15);
        z_stream cli;
        memset(&cli, 0, sizeof(cli));
        ASSERT_EQ(deflateInit2(&cli, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
        ASSERT_EQ(swoop__ws_deflate_context(z), 0); /* nothing before the first message */
        char m[4000];
        text(m, sizeof(m), 2);
        for (int round = 0; round < 3; round++) {
            if (cnc)
                ASSERT_EQ(deflateReset(&cli), Z_OK);
            uint8_t wire[8000];
            size_t n = client_compress(&cli, m, sizeof(m), wire, sizeof(wire));
            swoop_buf_t msg;
            swoop__buf_init(&msg);
            const char *why = NULL;
            /* In pieces of 7 bytes, the last with fin. */
            for (size_t at = 0; at < n; at += 7) {
                size_t k = n - at < 7 ? n - at : 7;
                ASSERT_EQ(swoop__ws_inflate(z, &msg, 1 << 20, wire + at, k, at + k == n, &why), 0);
            }
            ASSERT_EQ(swoop__buf_rlen(&msg), sizeof(m));
            ASSERT_MEM_EQ(swoop__buf_rdata(&msg), m, sizeof(m));
            swoop__buf_free(&msg);
            /* client_no_context_takeover: an idle connection holds no inflater. */
            ASSERT_EQ(swoop__ws_deflate_context(z) & 1, cnc ? 0 : 1);
        }
        deflateEnd(&cli);
        swoop__ws_deflate_free(z);
    }
}

/* A zip bomb: 3 MiB of zeros in a few KiB, a 1 MiB limit: 1009, the buffer bounded by it. */
TEST(ws_deflate_zip_bomb_stops_at_the_limit)
{
    ws_deflate_t *z = conn_with(0, 0, 15, 15);
    z_stream cli;
    memset(&cli, 0, sizeof(cli));
    ASSERT_EQ(deflateInit2(&cli, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    size_t big = 3u << 20;
    uint8_t *zeros = calloc(1, big);
    static uint8_t wire[65536];
    size_t n = client_compress(&cli, zeros, big, wire, sizeof(wire));
    ASSERT_LT(n, 8192u);
    swoop_buf_t msg;
    swoop__buf_init(&msg);
    const char *why = NULL;
    size_t limit = 1u << 20;
    ASSERT_EQ(swoop__ws_inflate(z, &msg, limit, wire, n, 1, &why), SWOOP_WS_TOO_BIG);
    ASSERT_NOT_NULL(why);
    ASSERT_LE(msg.cap, 2 * limit + 65536); /* never grown towards the 3 MiB */
    /* At a limit it fits, the same message inflates whole. */
    swoop__buf_free(&msg);
    swoop__ws_deflate_free(z);
    z = conn_with(0, 0, 15, 15);
    swoop__buf_init(&msg);
    ASSERT_EQ(swoop__ws_inflate(z, &msg, big, wire, n, 1, &why), 0);
    ASSERT_EQ(swoop__buf_rlen(&msg), big);
    ASSERT_MEM_EQ(swoop__buf_rdata(&msg), zeros, big);
    swoop__buf_free(&msg);
    free(zeros);
    deflateEnd(&cli);
    swoop__ws_deflate_free(z);
}

TEST(ws_deflate_invalid_data_is_1007)
{
    ws_deflate_t *z = conn_with(0, 0, 15, 15);
    swoop_buf_t msg;
    swoop__buf_init(&msg);
    const char *why = NULL;
    /* BTYPE 11 is reserved in DEFLATE. */
    ASSERT_EQ(swoop__ws_inflate(z, &msg, 1 << 20, (const uint8_t *)"\xff\xff\xff", 3, 1, &why),
              SWOOP_WS_INVALID_DATA);
    ASSERT_NOT_NULL(why);
    ASSERT_EQ(swoop__ws_deflate_context(z) & 1, 0); /* a failed inflater is not kept */
    swoop__buf_free(&msg);
    swoop__ws_deflate_free(z);
}
