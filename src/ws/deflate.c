/*
 * permessage-deflate (RFC 7692) in the connection owner, with zlib: each
 * connection's inflater for what its client sends, and the compressors for
 * what the server sends. Negotiation is pure and lives in
 * src/proto/ws_deflate_offer.c; the worker agrees in the 101 and the
 * owner receives the parameters in c->proto_arg.
 *
 * Memory. Nothing is allocated until a connection needs it: the inflater
 * when the first compressed message arrives, a compressor when the first
 * message goes out compressed.
 *   - Inflater: zlib's state (about 7 KiB) plus its window (2^client_bits,
 *     32 KiB at 15). With client_no_context_takeover it is freed at the end
 *     of every message, so an idle connection holds none.
 *   - Compressor with server context takeover (the client allowed it): the
 *     connection's own deflate stream, kept for the connection's life:
 *     about 2^(server_bits + 2) + 128 KiB (256 KiB at 15 bits).
 *   - With server_no_context_takeover every message starts from an empty
 *     history, so connections share their owner's stream (one per window
 *     size, reset per message): nothing per connection.
 *
 * Broadcasts are compressed once per owner with a fresh shared stream
 * (see swoop__ws_deflate_shared): a fresh stream references nothing
 * before the message, so its bytes are valid for every client whatever
 * its own history. A client with context takeover adds the message to
 * its inflater's window, which our connection's compressor did not see:
 * the connection's stream is reset before its next message
 * (swoop__ws_deflate_unsync marks it), so it never references bytes
 * whose position it got wrong. A message sent uncompressed is not seen
 * by the client's inflater at all (RFC 7692: only RSV1 messages are
 * inflated), so it changes nothing.
 */
#include <string.h>

#include <zlib.h>

#include "base/buf.h"
#include "base/ratelimit.h"
#include "proto/ws_deflate.h"
#include "ws/internal.h"

/*
 * zlib level 1 (fastest): the owner compresses on its event loop for many
 * connections; level 1 gets most of the ratio on the text and JSON that
 * WebSocket carries, at a fraction of the default level's time.
 */
#define WS_DEFLATE_LEVEL    1
#define WS_DEFLATE_MEMLEVEL 8
/* Output taken from inflate per call: bounds an allocation step, not the message. */
#define WS_INFLATE_CHUNK (64u * 1024u)

struct ws_deflate_s {
    swoop_ws_deflate_params_t p;
    z_stream *in;  /* the inflater (NULL until a compressed message comes) */
    z_stream *out; /* server context takeover: the connection's compressor */
    int out_stale; /* `out`'s history no longer matches the client's: reset it first */
    int in_ended;  /* the message's DEFLATE data ended (a BFINAL block): the rest is ignored */
};

/* The owner's shared compressors (server_no_context_takeover, broadcasts) and scratch. */
typedef struct ws_owner_s {
    z_stream *shared[SWOOP_WS_DEFLATE_BITS_MAX - SWOOP_WS_DEFLATE_BITS_MIN + 1];
    swoop_buf_t out; /* the last compressed payload */
} ws_owner_t;

static z_stream *deflate_new(int bits)
{
    z_stream *s = swoop_try_malloc(sizeof(*s));
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    /*
     * zlib refuses a raw stream with an 8-bit window (and would use 9
     * instead). For a client that allowed us only 256 bytes, Z_RLE keeps
     * every match at distance 1, inside any window (see ws_deflate.h).
     */
    int wbits = bits < 9 ? 9 : bits;
    int strategy = bits < 9 ? Z_RLE : Z_DEFAULT_STRATEGY;
    if (deflateInit2(s, WS_DEFLATE_LEVEL, Z_DEFLATED, -wbits, WS_DEFLATE_MEMLEVEL, strategy) !=
        Z_OK) {
        swoop_free(s);
        return NULL;
    }
    return s;
}

static void deflate_free(z_stream *s)
{
    if (s) {
        deflateEnd(s);
        swoop_free(s);
    }
}

static void inflate_free(ws_deflate_t *z)
{
    if (z->in) {
        inflateEnd(z->in);
        swoop_free(z->in);
        z->in = NULL;
    }
}

ws_deflate_t *swoop__ws_deflate_new(uint32_t arg)
{
    swoop_ws_deflate_params_t p;
    if (!swoop__ws_deflate_unpack(arg, &p))
        return NULL;
    ws_deflate_t *z = swoop_try_malloc(sizeof(*z));
    if (z == NULL)
        return NULL;
    memset(z, 0, sizeof(*z));
    z->p = p;
    return z;
}

void swoop__ws_deflate_free(ws_deflate_t *z)
{
    if (z == NULL)
        return;
    inflate_free(z);
    deflate_free(z->out);
    swoop_free(z);
}

int swoop__ws_deflate_bits(const ws_deflate_t *z)
{
    return z->p.server_bits;
}

int swoop__ws_deflate_context(const ws_deflate_t *z)
{
    return (z->in ? 1 : 0) | (z->out ? 2 : 0);
}

/* ---- receiving ---- */

/* A stream that ended (BFINAL): the next message is a new stream, with the history kept. */
static int inflate_restart(ws_deflate_t *z)
{
    z_stream *s = z->in;
    if (z->p.client_no_context)
        return inflateReset(s) == Z_OK ? 0 : -1;
    /* Context takeover: the window carries on across the new stream (RFC 7692 section 7.2). */
    Bytef *dict = swoop_try_malloc(32768);
    if (dict == NULL)
        return -1;
    uInt n = 0;
    int rc = inflateGetDictionary(s, dict, &n) == Z_OK && inflateReset(s) == Z_OK &&
                     (n == 0 || inflateSetDictionary(s, dict, n) == Z_OK)
                 ? 0
                 : -1;
    swoop_free(dict);
    return rc;
}

/* Inflates in[0, len) onto msg, whose bytes may not pass max_len. 0 or a close code. */
static int inflate_into(ws_deflate_t *z, swoop_buf_t *msg, size_t max_len, const uint8_t *in,
                        size_t len, const char **why)
{
    z_stream *s = z->in;
    for (;;) {
        if (s->avail_in == 0 && len > 0) {
            /* zlib counts in uInt: a larger piece goes in slices. */
            size_t n = len > (1u << 30) ? (1u << 30) : len;
            s->next_in = (Bytef *)(uintptr_t)in;
            s->avail_in = (uInt)n;
            in += n;
            len -= n;
        }
        size_t have = swoop__buf_rlen(msg);
        /* One byte past the limit is room enough to learn that the message is too big. */
        size_t room = max_len - have < WS_INFLATE_CHUNK ? max_len - have + 1 : WS_INFLATE_CHUNK;
        if (swoop__buf_reserve(msg, room) < 0) {
            *why = "no memory to inflate a message";
            return SWOOP_WS_INTERNAL_ERROR;
        }
        s->next_out = (Bytef *)swoop__buf_wdata(msg);
        s->avail_out = (uInt)room;
        int rc = inflate(s, Z_SYNC_FLUSH);
        swoop__buf_commit(msg, room - s->avail_out);
        if (swoop__buf_rlen(msg) > max_len) {
            /* A small frame may inflate to anything: stopped here, never allocated past. */
            *why = "message inflates past the limit";
            return SWOOP_WS_TOO_BIG;
        }
        if (rc == Z_STREAM_END) {
            /*
             * A sender may end a message with a BFINAL block (RFC 7692
             * section 7.2.3): what follows in the message, the 00 00 ff ff we
             * append included, is not DEFLATE data any more and is ignored.
             */
            if (inflate_restart(z) < 0) {
                *why = "no memory to inflate a message";
                return SWOOP_WS_INTERNAL_ERROR;
            }
            z->in_ended = 1;
            s->avail_in = 0;
            break;
        }
        if (rc == Z_MEM_ERROR) {
            *why = "no memory to inflate a message";
            return SWOOP_WS_INTERNAL_ERROR;
        }
        /*
         * RFC 7692 says only to fail the connection on data that does not
         * inflate; 1007 is RFC 6455's code for a message whose content is
         * not what its type says (a compressed message that is not valid
         * DEFLATE), where 1002 is about the framing, which was valid.
         * node-ws answers 1007 too.
         */
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            *why = "compressed message is not valid DEFLATE data";
            return SWOOP_WS_INVALID_DATA;
        }
        if (rc == Z_BUF_ERROR && s->avail_in > 0 && s->avail_out > 0) {
            *why = "compressed message is not valid DEFLATE data";
            return SWOOP_WS_INVALID_DATA;
        }
        /* Input used up and output not full: zlib has nothing more to give for now. */
        if (s->avail_in == 0 && s->avail_out > 0 && len == 0)
            break;
    }
    return 0;
}

int swoop__ws_inflate(ws_deflate_t *z, swoop_buf_t *msg, size_t max_len, const uint8_t *in,
                      size_t len, int fin, const char **why)
{
    if (z->in == NULL) {
        z->in = swoop_try_malloc(sizeof(*z->in));
        if (z->in == NULL) {
            *why = "no memory for an inflater";
            return SWOOP_WS_INTERNAL_ERROR;
        }
        memset(z->in, 0, sizeof(*z->in));
        /*
         * A larger window than the client's is always safe; 9 at least,
         * since a zlib-based client asked for 8 bits may well use 9.
         */
        int bits = z->p.client_bits < 9 ? 9 : z->p.client_bits;
        if (inflateInit2(z->in, -bits) != Z_OK) {
            swoop_free(z->in);
            z->in = NULL;
            *why = "no memory for an inflater";
            return SWOOP_WS_INTERNAL_ERROR;
        }
    }
    int rc = z->in_ended ? 0 : inflate_into(z, msg, max_len, in, len, why);
    if (rc == 0 && fin && !z->in_ended) {
        /* The sender removed the sync flush's empty block; it goes back (RFC 7692 7.2.2). */
        static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
        rc = inflate_into(z, msg, max_len, tail, sizeof(tail), why);
    }
    z->in->avail_in = 0;
    if (fin)
        z->in_ended = 0;
    if (rc != 0 || (fin && z->p.client_no_context))
        inflate_free(z); /* the next message starts from nothing anyway */
    return rc;
}

/* ---- sending ---- */

static ws_owner_t *owner_of(swoop_reactor_t *r)
{
    ws_owner_t *o = r->proto_owner[SWOOP_PROTO_WS];
    if (o == NULL) {
        o = swoop_try_malloc(sizeof(*o));
        if (o == NULL)
            return NULL;
        memset(o, 0, sizeof(*o));
        swoop__buf_init(&o->out);
        r->proto_owner[SWOOP_PROTO_WS] = o;
    }
    return o;
}

void swoop__ws_deflate_owner_free(swoop_reactor_t *r)
{
    ws_owner_t *o = r->proto_owner[SWOOP_PROTO_WS];
    if (o == NULL)
        return;
    for (size_t i = 0; i < sizeof(o->shared) / sizeof(o->shared[0]); i++)
        deflate_free(o->shared[i]);
    swoop__buf_free(&o->out);
    swoop_free(o);
    r->proto_owner[SWOOP_PROTO_WS] = NULL;
}

/*
 * Compresses data[0, len) with s into out, ending with a sync flush whose
 * empty block's 00 00 ff ff is removed (RFC 7692 7.2.1). 0, or -1.
 */
static int deflate_into(z_stream *s, swoop_buf_t *out, const void *data, size_t len)
{
    swoop__buf_clear(out);
    const uint8_t *in = data;
    size_t left = len;
    for (;;) {
        if (s->avail_in == 0 && left > 0) {
            size_t n = left > (1u << 30) ? (1u << 30) : left;
            s->next_in = (Bytef *)(uintptr_t)in;
            s->avail_in = (uInt)n;
            in += n;
            left -= n;
        }
        size_t room = deflateBound(s, s->avail_in) + 16;
        if (room > (1u << 30))
            room = 1u << 30;
        if (swoop__buf_reserve(out, room) < 0)
            return -1;
        s->next_out = (Bytef *)swoop__buf_wdata(out);
        s->avail_out = (uInt)room;
        int rc = deflate(s, left > 0 ? Z_NO_FLUSH : Z_SYNC_FLUSH);
        swoop__buf_commit(out, room - s->avail_out);
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -1;
        if (left == 0 && s->avail_in == 0 && s->avail_out > 0)
            break;
    }
    size_t n = swoop__buf_rlen(out);
    const uint8_t *p = (const uint8_t *)swoop__buf_rdata(out);
    if (n < 4 || memcmp(p + n - 4, "\x00\x00\xff\xff", 4) != 0)
        return -1; /* not what a sync flush ends with: never sent */
    out->len -= 4;
    return 0;
}

/* The owner's shared stream for `bits`, reset (an empty history). */
static z_stream *shared_stream(ws_owner_t *o, int bits)
{
    z_stream **s = &o->shared[bits - SWOOP_WS_DEFLATE_BITS_MIN];
    if (*s == NULL)
        *s = deflate_new(bits);
    else if (deflateReset(*s) != Z_OK)
        return NULL;
    return *s;
}

int swoop__ws_deflate_shared(swoop_reactor_t *r, int bits, const void *data, size_t len,
                             const uint8_t **out, size_t *outlen)
{
    ws_owner_t *o = owner_of(r);
    z_stream *s = o ? shared_stream(o, bits) : NULL;
    if (s == NULL || deflate_into(s, &o->out, data, len) < 0)
        return 0;
    if (swoop__buf_rlen(&o->out) >= len)
        return 0; /* it would not get smaller: sent as it is */
    *out = (const uint8_t *)swoop__buf_rdata(&o->out);
    *outlen = swoop__buf_rlen(&o->out);
    return 1;
}

int swoop__ws_deflate_msg(swoop_reactor_t *r, ws_deflate_t *z, const void *data, size_t len,
                          const uint8_t **out, size_t *outlen)
{
    if (z->p.server_no_context)
        return swoop__ws_deflate_shared(r, z->p.server_bits, data, len, out, outlen);
    ws_owner_t *o = owner_of(r);
    if (o == NULL)
        return 0;
    if (z->out == NULL) {
        z->out = deflate_new(z->p.server_bits);
        z->out_stale = 0;
        if (z->out == NULL)
            return 0; /* no memory: this message goes uncompressed */
    } else if (z->out_stale) {
        if (deflateReset(z->out) != Z_OK)
            return 0;
        z->out_stale = 0;
    }
    if (deflate_into(z->out, &o->out, data, len) < 0 || swoop__buf_rlen(&o->out) >= len) {
        /*
         * Not sent compressed: the stream saw bytes the client's inflater
         * will not, so its history is wrong from here.
         */
        z->out_stale = 1;
        return 0;
    }
    *out = (const uint8_t *)swoop__buf_rdata(&o->out);
    *outlen = swoop__buf_rlen(&o->out);
    return 1;
}

void swoop__ws_deflate_unsync(ws_deflate_t *z)
{
    if (z->out)
        z->out_stale = 1;
}

void swoop__ws_deflate_scratch_done(swoop_reactor_t *r)
{
    ws_owner_t *o = r->proto_owner[SWOOP_PROTO_WS];
    if (o) {
        swoop__buf_clear(&o->out);
        swoop__buf_shrink(&o->out, 0, 65536); /* a large message's output is not kept */
    }
}
