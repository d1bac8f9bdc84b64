/*
 * The WebSocket frame decoder and the UTF-8 validator (src/proto/ws_frame.c,
 * utf8.c). Each row is a client's byte stream (frames built masked, or raw
 * bytes for malformed headers) and the events it must give, summarised as a
 * string; the Autobahn categories of PROTOCOL-NOTES section 3 (1 sizes,
 * 2 ping/pong, 3 RSV, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close, 9
 * limits) are rows. Every row is decoded whole, split in two at every byte
 * boundary (each piece a fresh exact-size copy), and one byte at a time:
 * all must give the same summary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/utf8.h"
#include "proto/ws_frame.h"
#include "test.h"

typedef struct frame_s {
    int fin, rsv, op;
    const char *payload; /* NULL: `size` bytes of 'a'..'z' */
    size_t size;         /* with payload: its length (0: strlen) */
    int unmasked;
    int len_form; /* 0: shortest; 2: a 16-bit length; 8: a 64-bit length */
} frame_t;

typedef struct row_s {
    const char *name;
    frame_t f[6];
    int nf;
    uint64_t max;
    int rsv1_ok;
    const char *want;
} row_t;

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends one frame to out; returns the new length. */
static size_t build(uint8_t *out, size_t at, const frame_t *f)
{
    size_t plen = f->payload ? (f->size ? f->size : strlen(f->payload)) : f->size;
    uint8_t *h = out + at;
    h[0] = (uint8_t)((f->fin ? 0x80 : 0) | (f->rsv << 4) | f->op);
    uint8_t m = f->unmasked ? 0 : 0x80;
    size_t n = 2;
    int form = f->len_form ? f->len_form : plen < 126 ? 0 : plen < 65536 ? 2 : 8;
    if (form == 0) {
        h[1] = (uint8_t)(m | plen);
    } else if (form == 2) {
        h[1] = m | 126;
        h[2] = (uint8_t)(plen >> 8);
        h[3] = (uint8_t)plen;
        n = 4;
    } else {
        h[1] = m | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)plen >> (56 - 8 * i));
        n = 10;
    }
    if (!f->unmasked) {
        memcpy(h + n, mask_key, 4);
        n += 4;
    }
    uint8_t *p = h + n;
    for (size_t i = 0; i < plen; i++)
        p[i] = f->payload ? (uint8_t)f->payload[i] : (uint8_t)('a' + i % 26);
    if (!f->unmasked)
        swoop__ws_mask(p, plen, mask_key, 0);
    return at + n + plen;
}

typedef struct sum_s {
    char text[512];
    size_t tl;
    char msg[70000 * 2]; /* the data message being gathered */
    size_t ml;
    int failed;
} sum_t;

/* Appends "|tag:data" to the summary (data longer than 40 bytes as "#length"). */
static void put(sum_t *s, const char *tag, const char *data, size_t len)
{
    char tmp[128];
    if (data == NULL)
        snprintf(tmp, sizeof(tmp), "%s", tag);
    else if (len <= 40)
        snprintf(tmp, sizeof(tmp), "%s:%.*s", tag, (int)len, data);
    else
        snprintf(tmp, sizeof(tmp), "%s:#%zu", tag, len);
    s->tl +=
        (size_t)snprintf(s->text + s->tl, sizeof(s->text) - s->tl, "%s%s", s->tl ? "|" : "", tmp);
}

/* Feeds `len` bytes (a fresh copy) to d, summarising every event; 1 once an error came. */
static int feed(swoop_ws_decoder_t *d, const uint8_t *in, size_t len, sum_t *s)
{
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    size_t off = 0;
    int guard = 0;
    while (!s->failed && guard++ < 100000) {
        swoop_ws_event_t ev;
        size_t n = swoop__ws_decode(d, copy + off, len - off, &ev);
        off += n;
        char tag[16];
        if (ev.type == SWOOP_WS_EV_ERROR) {
            snprintf(tag, sizeof(tag), "E%d", ev.code);
            put(s, tag, NULL, 0);
            s->failed = 1;
        } else if (ev.type == SWOOP_WS_EV_CONTROL) {
            if (ev.opcode == SWOOP_WS_OP_CLOSE) {
                snprintf(tag, sizeof(tag), "C%d", ev.code);
                put(s, tag, ev.len > 2 ? (const char *)ev.data + 2 : "",
                    ev.len > 2 ? ev.len - 2 : 0);
            } else {
                put(s, ev.opcode == SWOOP_WS_OP_PING ? "P" : "O", (const char *)ev.data, ev.len);
            }
        } else if (ev.type == SWOOP_WS_EV_DATA) {
            if (ev.first)
                s->ml = 0;
            ASSERT(s->ml + ev.len <= sizeof(s->msg));
            memcpy(s->msg + s->ml, ev.data, ev.len);
            s->ml += ev.len;
            if (ev.fin) {
                snprintf(tag, sizeof(tag), "%s%c", ev.compressed ? "z" : "",
                         ev.opcode == SWOOP_WS_OP_TEXT ? 'T' : 'B');
                put(s, tag, s->msg, s->ml);
            }
        } else if (off == len) {
            break;
        }
        ASSERT(off <= len);
        if (ev.type == SWOOP_WS_EV_NONE && off < len)
            FAIL("the decoder took %zu of %zu bytes without an event", off, len);
    }
    free(copy);
    return s->failed;
}

static void decode_in_pieces(const row_t *r, const uint8_t *in, size_t len, const size_t *cuts,
                             size_t ncuts, sum_t *s)
{
    swoop_ws_decoder_t d;
    swoop__ws_decoder_init(&d, r->max, 1, r->rsv1_ok);
    memset(s, 0, sizeof(*s));
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if (feed(&d, in + at, end - at, s))
            return;
        at = end;
    }
}

static uint8_t stream[300000];

static void check_row(const row_t *r)
{
    size_t len = 0;
    for (int i = 0; i < r->nf; i++)
        len = build(stream, len, &r->f[i]);
    static sum_t whole, part;
    decode_in_pieces(r, stream, len, NULL, 0, &whole);
    if (strcmp(whole.text, r->want) != 0)
        FAIL("%s: got \"%s\", want \"%s\"", r->name, whole.text, r->want);
    /* Split in two everywhere (long streams: the first and last 300 cuts). */
    for (size_t cut = 1; cut < len; cut++) {
        if (len > 700 && cut > 300 && cut < len - 300)
            continue;
        decode_in_pieces(r, stream, len, &cut, 1, &part);
        if (strcmp(part.text, r->want) != 0)
            FAIL("%s (cut at %zu): got \"%s\", want \"%s\"", r->name, cut, part.text, r->want);
    }
    if (len <= 4096) {
        size_t cuts[4096];
        for (size_t i = 0; i + 1 < len; i++)
            cuts[i] = i + 1;
        decode_in_pieces(r, stream, len, cuts, len ? len - 1 : 0, &part);
        if (strcmp(part.text, r->want) != 0)
            FAIL("%s (byte by byte): got \"%s\", want \"%s\"", r->name, part.text, r->want);
    }
}

/* Rows leave the trailing frame fields out: zero is their default. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define F(...)                                                                                     \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }
#define TXT(s)   F(1, 0, 1, s)
#define CLOSE(s) F(1, 0, 8, s, sizeof(s) - 1)

static const row_t rows[] = {
    /* 1: echo sizes, text and binary. */
    {"text", {TXT("hello")}, 1, 0, 0, "T:hello"},
    {"empty text", {F(1, 0, 1, "")}, 1, 0, 0, "T:"},
    {"empty binary", {F(1, 0, 2, "")}, 1, 0, 0, "B:"},
    {"125", {F(1, 0, 2, NULL, 125)}, 1, 0, 0, "B:#125"},
    {"126", {F(1, 0, 2, NULL, 126)}, 1, 0, 0, "B:#126"},
    {"127", {F(1, 0, 1, NULL, 127)}, 1, 0, 0, "T:#127"},
    {"128", {F(1, 0, 1, NULL, 128)}, 1, 0, 0, "T:#128"},
    {"65535", {F(1, 0, 2, NULL, 65535)}, 1, 0, 0, "B:#65535"},
    {"65536", {F(1, 0, 2, NULL, 65536)}, 1, 0, 0, "B:#65536"},
    {"two messages", {TXT("a"), F(1, 0, 2, "b")}, 2, 0, 0, "T:a|B:b"},
    /* 2: ping and pong. */
    {"ping", {F(1, 0, 9, "hi")}, 1, 0, 0, "P:hi"},
    {"empty ping", {F(1, 0, 9, "")}, 1, 0, 0, "P:"},
    {"ping 125", {F(1, 0, 9, NULL, 125)}, 1, 0, 0, "P:#125"},
    {"ping 126", {F(1, 0, 9, NULL, 126)}, 1, 0, 0, "E1002"},
    {"pong", {F(1, 0, 10, "x"), TXT("after")}, 2, 0, 0, "O:x|T:after"},
    {"ping burst", {F(1, 0, 9, "1"), F(1, 0, 9, "2"), F(1, 0, 9, "3")}, 3, 0, 0, "P:1|P:2|P:3"},
    /* 3: RSV bits. */
    {"rsv1 without extension", {F(1, 4, 1, "x")}, 1, 0, 0, "E1002"},
    {"rsv2", {F(1, 2, 1, "x")}, 1, 0, 0, "E1002"},
    {"rsv3", {F(1, 1, 2, "x")}, 1, 0, 0, "E1002"},
    {"rsv1 negotiated", {F(1, 4, 1, "x")}, 1, 0, 1, "zT:x"},
    {"rsv2 with an extension", {F(1, 2, 1, "x")}, 1, 0, 1, "E1002"},
    {"rsv3 with an extension", {F(1, 1, 2, "x")}, 1, 0, 1, "E1002"},
    {"rsv1 on a continuation", {F(0, 4, 1, "x"), F(1, 4, 0, "y")}, 2, 0, 1, "E1002"},
    {"rsv1 on a ping", {F(1, 4, 9, "x")}, 1, 0, 1, "E1002"},
    {"rsv after a good message", {TXT("ok"), F(1, 2, 1, "x")}, 2, 0, 0, "T:ok|E1002"},
    /* permessage-deflate: RSV1 on a message's first frame only, never on control frames. */
    {"rsv1 on the first fragment only", {F(0, 4, 1, "ab"), F(1, 0, 0, "cd")}, 2, 0, 1, "zT:abcd"},
    {"rsv1 on a pong", {F(1, 4, 10, "x")}, 1, 0, 1, "E1002"},
    {"rsv1 on a close", {F(1, 4, 8, "\x03\xe8")}, 1, 0, 1, "E1002"},
    {"rsv1 binary then plain text", {F(1, 4, 2, "zz"), TXT("ok")}, 2, 0, 1, "zB:zz|T:ok"},
    {"compressed text is not checked here", {F(1, 4, 1, "\xff")}, 1, 0, 1, "zT:\xff"},
    {"rsv1 continuation after a plain first", {F(0, 0, 1, "a"), F(1, 4, 0, "b")}, 2, 0, 1, "E1002"},
    /* 4: reserved opcodes. */
    {"opcode 3", {F(1, 0, 3, "")}, 1, 0, 0, "E1002"},
    {"opcode 7", {F(1, 0, 7, "x")}, 1, 0, 0, "E1002"},
    {"opcode 11", {F(1, 0, 11, "")}, 1, 0, 0, "E1002"},
    {"opcode 15", {F(1, 0, 15, "x")}, 1, 0, 0, "E1002"},
    /* 5: fragmentation. */
    {"fragmented text", {F(0, 0, 1, "hel"), F(1, 0, 0, "lo")}, 2, 0, 0, "T:hello"},
    {"three fragments", {F(0, 0, 2, "a"), F(0, 0, 0, "b"), F(1, 0, 0, "c")}, 3, 0, 0, "B:abc"},
    {"empty fragments", {F(0, 0, 1, ""), F(0, 0, 0, ""), F(1, 0, 0, "")}, 3, 0, 0, "T:"},
    {"ping between fragments",
     {F(0, 0, 1, "he"), F(1, 0, 9, "p"), F(1, 0, 0, "y")},
     3,
     0,
     0,
     "P:p|T:hey"},
    {"fragmented ping", {F(0, 0, 9, "a"), F(1, 0, 0, "b")}, 2, 0, 0, "E1002"},
    {"fragmented close", {F(0, 0, 8, "")}, 1, 0, 0, "E1002"},
    {"continuation first", {F(1, 0, 0, "x")}, 1, 0, 0, "E1002"},
    {"continuation after a message", {TXT("a"), F(1, 0, 0, "x")}, 2, 0, 0, "T:a|E1002"},
    {"text inside a message", {F(0, 0, 1, "a"), TXT("b")}, 2, 0, 0, "E1002"},
    {"unmasked", {F(1, 0, 1, "x", 0, 1)}, 1, 0, 0, "E1002"},
    /* 6: UTF-8. */
    {"utf8 kosme",
     {TXT("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")},
     1,
     0,
     0,
     "T:\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"},
    {"utf8 split in a character", {F(0, 0, 1, "\xce"), F(1, 0, 0, "\xba")}, 2, 0, 0, "T:\xce\xba"},
    {"utf8 U+10FFFF", {TXT("\xf4\x8f\xbf\xbf")}, 1, 0, 0, "T:\xf4\x8f\xbf\xbf"},
    {"utf8 noncharacter", {TXT("\xef\xbf\xbf")}, 1, 0, 0, "T:\xef\xbf\xbf"},
    {"utf8 above U+10FFFF", {TXT("\xf4\x90\x80\x80")}, 1, 0, 0, "E1007"},
    {"utf8 surrogate", {TXT("a\xed\xa0\x80")}, 1, 0, 0, "E1007"},
    {"utf8 overlong slash", {TXT("\xc0\xaf")}, 1, 0, 0, "E1007"},
    {"utf8 overlong 3", {TXT("\xe0\x80\xaf")}, 1, 0, 0, "E1007"},
    {"utf8 overlong 4", {TXT("\xf0\x80\x80\xaf")}, 1, 0, 0, "E1007"},
    {"utf8 stray continuation", {TXT("\x80")}, 1, 0, 0, "E1007"},
    {"utf8 f5", {TXT("\xf5\x80\x80\x80")}, 1, 0, 0, "E1007"},
    {"utf8 ends inside a character", {TXT("ok\xe2\x82")}, 1, 0, 0, "E1007"},
    /* Fails in the first fragment: the rest of the message is never needed. */
    {"utf8 fail fast", {F(0, 0, 1, "\xce\xba\xed\xa0\x80")}, 1, 0, 0, "E1007"},
    {"binary is not checked", {F(1, 0, 2, "\xc0\xaf")}, 1, 0, 0, "B:\xc0\xaf"},
    {"compressed text is the caller's", {F(1, 4, 1, "\xc0")}, 1, 0, 1, "zT:\xc0"},
    /* 7: close. */
    {"close empty", {CLOSE("")}, 1, 0, 0, "C1005:"},
    {"close 1000",
     {CLOSE("\x03\xe8"
            "bye")},
     1,
     0,
     0,
     "C1000:bye"},
    {"close 1 byte", {CLOSE("\x03")}, 1, 0, 0, "E1002"},
    {"close 3000", {CLOSE("\x0b\xb8")}, 1, 0, 0, "C3000:"},
    {"close 4999", {CLOSE("\x13\x87")}, 1, 0, 0, "C4999:"},
    {"close 1011", {CLOSE("\x03\xf3")}, 1, 0, 0, "C1011:"},
    {"close 0", {CLOSE("\x00\x00")}, 1, 0, 0, "E1002"},
    {"close 999", {CLOSE("\x03\xe7")}, 1, 0, 0, "E1002"},
    {"close 1004", {CLOSE("\x03\xec")}, 1, 0, 0, "E1002"},
    {"close 1005", {CLOSE("\x03\xed")}, 1, 0, 0, "E1002"},
    {"close 1006", {CLOSE("\x03\xee")}, 1, 0, 0, "E1002"},
    {"close 1015", {CLOSE("\x03\xf7")}, 1, 0, 0, "E1002"},
    {"close 1016", {CLOSE("\x03\xf8")}, 1, 0, 0, "E1002"},
    {"close 1100", {CLOSE("\x04\x4c")}, 1, 0, 0, "E1002"},
    {"close 2000", {CLOSE("\x07\xd0")}, 1, 0, 0, "E1002"},
    {"close 2999", {CLOSE("\x0b\xb7")}, 1, 0, 0, "E1002"},
    {"close 5000", {CLOSE("\x13\x88")}, 1, 0, 0, "E1002"},
    {"close reason not utf8", {CLOSE("\x03\xe8\xce\xba\xed\xa0\x80")}, 1, 0, 0, "E1007"},
    {"close payload 126 bytes", {F(1, 0, 8, NULL, 126)}, 1, 0, 0, "E1002"},
    /* 9: limits, from the header. */
    {"at the limit", {F(1, 0, 2, NULL, 100)}, 1, 100, 0, "B:#100"},
    {"over the limit", {F(1, 0, 2, NULL, 101)}, 1, 100, 0, "E1009"},
    {"fragments over the limit", {F(0, 0, 2, NULL, 60), F(1, 0, 0, NULL, 60)}, 2, 100, 0, "E1009"},
    /* Compressed: the limit is on the inflated size; the wire gets 9/8 of it and 1 KiB. */
    {"plain over the limit with the extension", {F(1, 0, 2, NULL, 101)}, 1, 100, 1, "E1009"},
    {"compressed within 9/8 + 1 KiB", {F(1, 4, 2, NULL, 1136)}, 1, 100, 1, "zB:#1136"},
    {"compressed past 9/8 + 1 KiB", {F(1, 4, 2, NULL, 1137)}, 1, 100, 1, "E1009"},
    {"compressed fragments past it",
     {F(0, 4, 2, NULL, 600), F(1, 0, 0, NULL, 600)},
     2,
     100,
     1,
     "E1009"},
    {"limit is per message",
     {F(1, 0, 2, NULL, 60), F(1, 0, 2, NULL, 60)},
     2,
     100,
     0,
     "B:#60|B:#60"},
    /* Lengths in their shortest form only. */
    {"16-bit length for 5", {F(1, 0, 2, "hello", 0, 0, 2)}, 1, 0, 0, "E1002"},
    {"64-bit length for 200", {F(1, 0, 2, NULL, 200, 0, 8)}, 1, 0, 0, "E1002"},
};

TEST(ws_frame_rows_whole_split_and_byte_by_byte)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        check_row(&rows[i]);
}

TEST(ws_frame_length_with_top_bit_refused)
{
    uint8_t in[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    swoop_ws_decoder_t d;
    swoop__ws_decoder_init(&d, 0, 1, 0);
    swoop_ws_event_t ev;
    swoop__ws_decode(&d, in, sizeof(in), &ev);
    ASSERT_EQ(ev.type, SWOOP_WS_EV_ERROR);
    ASSERT_EQ(ev.code, 1002);
    /* It stays failed. */
    ASSERT_EQ(swoop__ws_decode(&d, in, sizeof(in), &ev), 0u);
    ASSERT_EQ(ev.type, SWOOP_WS_EV_ERROR);
}

/* The header a server writes decodes back to what it said, at every length form. */
TEST(ws_frame_head_round_trip)
{
    const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1u << 24};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t h[SWOOP_WS_HEAD_MAX];
        size_t n = swoop__ws_frame_head(h, 1, 1, SWOOP_WS_OP_BINARY, lens[i], NULL);
        ASSERT_EQ(n, lens[i] < 126 ? 2u : lens[i] < 65536 ? 4u : 10u);
        swoop_ws_decoder_t d;
        swoop__ws_decoder_init(&d, 0, 0, 1);
        swoop_ws_event_t ev;
        ASSERT_EQ(swoop__ws_decode(&d, h, n, &ev), n);
        ASSERT(ev.type == SWOOP_WS_EV_NONE || (lens[i] == 0 && ev.type == SWOOP_WS_EV_DATA));
        ASSERT_EQ(d.flen, lens[i]);
        ASSERT_EQ(d.rsv1, 1);
        n = swoop__ws_frame_head(h, 0, 0, SWOOP_WS_OP_TEXT, lens[i], mask_key);
        ASSERT_EQ(h[1] & 0x80, 0x80);
        ASSERT_MEM_EQ(h + n - 4, mask_key, 4);
    }
}

/* Masking at any offset equals masking byte by byte. */
TEST(ws_frame_mask_at_any_offset)
{
    uint8_t a[67], b[67];
    for (int off = 0; off < 8; off++) {
        for (size_t i = 0; i < sizeof(a); i++)
            a[i] = b[i] = (uint8_t)(i * 7);
        swoop__ws_mask(a, sizeof(a), mask_key, (uint64_t)off);
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] ^= mask_key[(i + (size_t)off) & 3];
        ASSERT_MEM_EQ(a, b, sizeof(a));
    }
}

/* Every code point encodes to valid UTF-8; the surrogates do not. */
TEST(utf8_every_code_point)
{
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        uint8_t s[4];
        size_t n;
        if (cp < 0x80) {
            s[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            s[0] = (uint8_t)(0xc0 | cp >> 6);
            s[1] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            s[0] = (uint8_t)(0xe0 | cp >> 12);
            s[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            s[2] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            s[0] = (uint8_t)(0xf0 | cp >> 18);
            s[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
            s[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            s[3] = (uint8_t)(0x80 | (cp & 0x3f));
            n = 4;
        }
        int want = !(cp >= 0xd800 && cp <= 0xdfff);
        if (swoop__utf8_valid(s, n) != want)
            FAIL("U+%04X: valid %d, want %d", cp, !want, want);
        /* Incomplete: every proper prefix of a multi-byte character is not a whole text. */
        for (size_t k = 1; want && k < n; k++) {
            swoop_utf8_t st;
            swoop__utf8_init(&st);
            ASSERT_EQ(swoop__utf8_feed(&st, s, k), 0);
            ASSERT_EQ(swoop__utf8_complete(&st), 0);
        }
    }
    /* Overlong two-byte forms of every ASCII byte. */
    for (int c = 0; c < 0x80; c++) {
        uint8_t s[2] = {(uint8_t)(0xc0 | c >> 6), (uint8_t)(0x80 | (c & 0x3f))};
        ASSERT_EQ(swoop__utf8_valid(s, 2), 0);
    }
    /* A long ASCII run with one bad byte at every position (the 8-byte fast path). */
    uint8_t run[40];
    for (size_t bad = 0; bad < sizeof(run); bad++) {
        memset(run, 'x', sizeof(run));
        run[bad] = 0xff;
        ASSERT_EQ(swoop__utf8_valid(run, sizeof(run)), 0);
    }
    memset(run, 'x', sizeof(run));
    ASSERT_EQ(swoop__utf8_valid(run, sizeof(run)), 1);
}
