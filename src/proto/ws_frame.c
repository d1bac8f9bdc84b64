/* RFC 6455 frames: see ws_frame.h. */
#include "proto/ws_frame.h"

#include <string.h>

enum { PHASE_HEAD = 0, PHASE_PAYLOAD, PHASE_FAILED };

void swoop__ws_decoder_init(swoop_ws_decoder_t *d, uint64_t max_message, int need_mask,
                            int allow_rsv1)
{
    memset(d, 0, sizeof(*d));
    d->max_message = max_message;
    d->need_mask = need_mask != 0;
    d->allow_rsv1 = allow_rsv1 != 0;
    swoop__utf8_init(&d->utf8);
}

int swoop__ws_close_code_valid(int code)
{
    /* 1004-1006 and 1015 are reserved for endpoints' own use, never sent (RFC 6455 7.4.1). */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int swoop__ws_close_check(const uint8_t *p, size_t n, int *code, const char **why)
{
    if (n == 0) {
        *code = SWOOP_WS_CODE_NO_STATUS;
        return 0;
    }
    if (n == 1) {
        *why = "close frame with a 1-byte payload";
        return SWOOP_WS_CODE_PROTOCOL;
    }
    *code = p[0] << 8 | p[1];
    if (!swoop__ws_close_code_valid(*code)) {
        *why = "close frame with a code that may not be sent";
        return SWOOP_WS_CODE_PROTOCOL;
    }
    if (!swoop__utf8_valid(p + 2, n - 2)) {
        *why = "close reason is not UTF-8";
        return SWOOP_WS_CODE_INVALID;
    }
    return 0;
}

static size_t fail(swoop_ws_decoder_t *d, swoop_ws_event_t *ev, int code, const char *reason,
                   size_t taken)
{
    d->phase = PHASE_FAILED;
    d->err_code = code;
    d->err_reason = reason;
    ev->type = SWOOP_WS_EV_ERROR;
    ev->code = code;
    ev->reason = reason;
    return taken;
}

/* Header bytes needed once the first two are known. */
static size_t head_size(const uint8_t *h)
{
    size_t n = 2;
    uint8_t l7 = h[1] & 0x7f;
    n += l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
    return n + ((h[1] & 0x80) ? 4 : 0);
}

/* The first two bytes: the rules that need no length (fail fast). 0, or fail()'s. */
static int head_rules(swoop_ws_decoder_t *d, const char **why)
{
    uint8_t b0 = d->hbuf[0], b1 = d->hbuf[1];
    int op = b0 & 0x0f, rsv = (b0 >> 4) & 7, fin = b0 >> 7;
    if (rsv & 3) {
        *why = "RSV2 or RSV3 set";
        return -1;
    }
    if ((op >= 3 && op <= 7) || op >= 11) {
        *why = "reserved opcode";
        return -1;
    }
    if (op >= SWOOP_WS_OP_CLOSE) {
        if (!fin) {
            *why = "fragmented control frame";
            return -1;
        }
        if ((b1 & 0x7f) > SWOOP_WS_CONTROL_MAX) {
            *why = "control frame payload over 125 bytes";
            return -1;
        }
        if (rsv) {
            *why = "RSV1 on a control frame";
            return -1;
        }
    } else {
        if (op == SWOOP_WS_OP_CONT && d->msg_op == 0) {
            *why = "continuation frame without a message";
            return -1;
        }
        if (op != SWOOP_WS_OP_CONT && d->msg_op != 0) {
            *why = "new data frame inside a fragmented message";
            return -1;
        }
        if ((rsv & 4) && (!d->allow_rsv1 || op == SWOOP_WS_OP_CONT)) {
            *why = d->allow_rsv1 ? "RSV1 on a continuation frame" : "RSV1 without an extension";
            return -1;
        }
    }
    if (d->need_mask && !(b1 & 0x80)) {
        *why = "unmasked frame from a client";
        return -1;
    }
    return 0;
}

/* The whole header is in hbuf: length, mask, message bookkeeping. */
static int head_done(swoop_ws_decoder_t *d, int *code, const char **why)
{
    const uint8_t *h = d->hbuf;
    uint8_t l7 = h[1] & 0x7f;
    size_t at = 2;
    uint64_t len = l7;
    *code = SWOOP_WS_CODE_PROTOCOL;
    if (l7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
        if (len < 126) {
            *why = "length not in its shortest form";
            return -1;
        }
    } else if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        at = 10;
        if (len >> 63) {
            *why = "64-bit length with its top bit set";
            return -1;
        }
        if (len < 65536) {
            *why = "length not in its shortest form";
            return -1;
        }
    }
    d->fin = h[0] >> 7;
    d->rsv1 = (h[0] >> 6) & 1;
    d->opcode = h[0] & 0x0f;
    d->masked = h[1] >> 7;
    if (d->masked)
        memcpy(d->mask, h + at, 4);
    d->flen = len;
    d->fdone = 0;
    if (d->opcode >= SWOOP_WS_OP_CLOSE) {
        d->ctl_len = 0;
        return 0;
    }
    if (d->opcode != SWOOP_WS_OP_CONT) {
        d->msg_op = d->opcode;
        d->msg_deflate = d->rsv1;
        d->msg_started = 0;
        d->msg_len = 0;
        swoop__utf8_init(&d->utf8);
    }
    /*
     * Decided from the header: a too large message is refused before its
     * bytes are read. A compressed message's limit is on what it inflates
     * to (the caller's); its wire bytes get the room of the worst honest
     * encoding, literals of 9 bits (9/8 of the size) and block headers, so
     * a message near the limit that does not compress still passes.
     */
    uint64_t max = d->max_message;
    if (max && d->msg_deflate)
        max = max > UINT64_MAX / 2 ? UINT64_MAX : max + max / 8 + 1024;
    if (max && (len > max || d->msg_len + len > max)) {
        *code = SWOOP_WS_CODE_TOO_BIG;
        *why = "message larger than the limit";
        return -1;
    }
    d->msg_len += len;
    return 0;
}

size_t swoop__ws_decode(swoop_ws_decoder_t *d, uint8_t *data, size_t len, swoop_ws_event_t *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (d->phase == PHASE_FAILED)
        return fail(d, ev, d->err_code, d->err_reason, 0);
    size_t off = 0;
    for (;;) {
        if (d->phase == PHASE_HEAD) {
            if (off == len)
                return off;
            const char *why = NULL;
            if (d->hlen < 2) {
                d->hbuf[d->hlen++] = data[off++];
                if (d->hlen < 2)
                    continue;
                if (head_rules(d, &why) < 0)
                    return fail(d, ev, SWOOP_WS_CODE_PROTOCOL, why, off);
            }
            size_t want = head_size(d->hbuf);
            size_t take = want - d->hlen;
            if (take > len - off)
                take = len - off;
            memcpy(d->hbuf + d->hlen, data + off, take);
            d->hlen = (uint8_t)(d->hlen + take);
            off += take;
            if (d->hlen < want)
                return off;
            int code;
            if (head_done(d, &code, &why) < 0)
                return fail(d, ev, code, why, off);
            d->hlen = 0;
            d->phase = PHASE_PAYLOAD;
        }
        uint64_t left = d->flen - d->fdone;
        size_t avail = len - off < left ? len - off : (size_t)left;
        uint8_t *p = data + off;
        if (d->opcode >= SWOOP_WS_OP_CLOSE) {
            memcpy(d->ctl + d->ctl_len, p, avail);
            if (d->masked)
                swoop__ws_mask(d->ctl + d->ctl_len, avail, d->mask, d->fdone);
            d->ctl_len = (uint8_t)(d->ctl_len + avail);
            d->fdone += avail;
            off += avail;
            if (d->fdone < d->flen)
                return off;
            d->phase = PHASE_HEAD;
            ev->opcode = d->opcode;
            ev->data = d->ctl;
            ev->len = d->ctl_len;
            if (d->opcode == SWOOP_WS_OP_CLOSE) {
                const char *why = NULL;
                int bad = swoop__ws_close_check(d->ctl, d->ctl_len, &ev->code, &why);
                if (bad)
                    return fail(d, ev, bad, why, off);
            }
            ev->type = SWOOP_WS_EV_CONTROL;
            return off;
        }
        if (d->masked)
            swoop__ws_mask(p, avail, d->mask, d->fdone);
        if (d->msg_op == SWOOP_WS_OP_TEXT && !d->msg_deflate &&
            swoop__utf8_feed(&d->utf8, p, avail) < 0)
            return fail(d, ev, SWOOP_WS_CODE_INVALID, "text message is not UTF-8", off + avail);
        d->fdone += avail;
        off += avail;
        int frame_end = d->fdone == d->flen;
        int msg_end = frame_end && d->fin;
        if (frame_end)
            d->phase = PHASE_HEAD;
        if (msg_end && d->msg_op == SWOOP_WS_OP_TEXT && !d->msg_deflate &&
            !swoop__utf8_complete(&d->utf8))
            return fail(d, ev, SWOOP_WS_CODE_INVALID, "text message ends inside a character", off);
        if (avail == 0 && !msg_end) {
            if (frame_end)
                continue; /* an empty fragment: nothing to report */
            return off;
        }
        ev->type = SWOOP_WS_EV_DATA;
        ev->opcode = d->msg_op;
        ev->first = !d->msg_started;
        ev->fin = msg_end;
        ev->compressed = d->msg_deflate;
        ev->data = p;
        ev->len = avail;
        d->msg_started = 1;
        if (msg_end)
            d->msg_op = 0;
        return off;
    }
}

size_t swoop__ws_frame_head(uint8_t *out, int fin, int rsv1, int opcode, uint64_t len,
                            const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0f));
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] = (uint8_t)(m | len);
    } else if (len < 65536) {
        out[1] = m | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void swoop__ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    /* The mask as it lines up with p[0], repeated over a word: eight bytes per XOR. */
    uint8_t m[8];
    for (int i = 0; i < 8; i++)
        m[i] = mask[(offset + (uint64_t)i) & 3];
    uint64_t w;
    memcpy(&w, m, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= w;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] ^= m[i & 7];
}
