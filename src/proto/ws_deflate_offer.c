/* permessage-deflate negotiation (RFC 7692 section 5 and 7.1): see ws_deflate.h. */
#include "proto/ws_deflate.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2 tchar. */
static int tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

typedef struct cursor_s {
    const char *v;
    size_t len, at;
} cursor_t;

static void ows(cursor_t *c)
{
    while (c->at < c->len && (c->v[c->at] == ' ' || c->v[c->at] == '\t'))
        c->at++;
}

/* A token at the cursor: its start and length (0: none there). */
static size_t token(cursor_t *c, const char **start)
{
    *start = c->v + c->at;
    size_t n = 0;
    while (c->at < c->len && tchar((unsigned char)c->v[c->at])) {
        c->at++;
        n++;
    }
    return n;
}

/*
 * A quoted-string at the cursor (on its opening quote), unescaped into
 * buf (cap bytes). Its length, or -1 when it is unterminated or longer
 * than buf: the caller declines the offer either way.
 */
static int quoted(cursor_t *c, char *buf, size_t cap)
{
    size_t n = 0;
    int fits = 1;
    c->at++; /* the opening quote */
    while (c->at < c->len) {
        char ch = c->v[c->at++];
        if (ch == '"')
            return fits ? (int)n : -1;
        if (ch == '\\') {
            if (c->at == c->len)
                break;
            ch = c->v[c->at++];
        }
        if (n < cap)
            buf[n++] = ch;
        else
            fits = 0;
    }
    return -1;
}

/* Skips to the end of the current list element (the next comma outside a quoted-string). */
static void skip_element(cursor_t *c)
{
    int q = 0;
    while (c->at < c->len) {
        char ch = c->v[c->at];
        if (!q && ch == ',')
            return;
        if (q && ch == '\\' && c->at + 1 < c->len)
            c->at++;
        else if (ch == '"')
            q = !q;
        c->at++;
    }
}

/* Window bits: "8".."15", digits only, no leading zero (RFC 7692 7.1.2.1). -1 if not. */
static int window_bits(const char *s, size_t n)
{
    if (n == 1 && (s[0] == '8' || s[0] == '9'))
        return s[0] - '0';
    if (n == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '5')
        return 10 + (s[1] - '0');
    return -1;
}

enum {
    P_SERVER_NO_CONTEXT = 1,
    P_CLIENT_NO_CONTEXT = 2,
    P_SERVER_BITS = 4,
    P_CLIENT_BITS = 8,
};

/*
 * One list element from the cursor to its end (the cursor ends there).
 * 1 when it is a permessage-deflate offer we accept (*p and *seen filled),
 * 0 when it is another extension or one we decline.
 */
static int offer(cursor_t *c, swoop_ws_deflate_params_t *p, unsigned *seen, int *client_bits_v)
{
    const char *name;
    size_t nl = token(c, &name);
    int ours = nl == 18 && strncasecmp(name, "permessage-deflate", 18) == 0;
    memset(p, 0, sizeof(*p));
    p->server_bits = SWOOP_WS_DEFLATE_BITS_MAX;
    p->client_bits = SWOOP_WS_DEFLATE_BITS_MAX;
    *seen = 0;
    *client_bits_v = 0;
    ows(c);
    if (!ours) {
        skip_element(c);
        return 0;
    }
    while (c->at < c->len && c->v[c->at] != ',') {
        if (c->v[c->at] != ';')
            goto decline; /* not a parameter where one must be */
        c->at++;
        ows(c);
        const char *pn;
        size_t pl = token(c, &pn);
        if (pl == 0)
            goto decline;
        ows(c);
        char val[16];
        int vl = -1; /* no value */
        if (c->at < c->len && c->v[c->at] == '=') {
            c->at++;
            ows(c);
            if (c->at < c->len && c->v[c->at] == '"') {
                vl = quoted(c, val, sizeof(val));
                if (vl < 0)
                    goto decline;
            } else {
                const char *vs;
                size_t n = token(c, &vs);
                if (n == 0 || n > sizeof(val))
                    goto decline;
                memcpy(val, vs, n);
                vl = (int)n;
            }
            ows(c);
        }
        unsigned bit;
        if (pl == 26 && strncasecmp(pn, "server_no_context_takeover", pl) == 0)
            bit = P_SERVER_NO_CONTEXT;
        else if (pl == 26 && strncasecmp(pn, "client_no_context_takeover", pl) == 0)
            bit = P_CLIENT_NO_CONTEXT;
        else if (pl == 22 && strncasecmp(pn, "server_max_window_bits", pl) == 0)
            bit = P_SERVER_BITS;
        else if (pl == 22 && strncasecmp(pn, "client_max_window_bits", pl) == 0)
            bit = P_CLIENT_BITS;
        else
            goto decline; /* unknown parameter (RFC 7692 section 5) */
        if (*seen & bit)
            goto decline; /* the same parameter twice */
        *seen |= bit;
        int bits = vl > 0 ? window_bits(val, (size_t)vl) : -1;
        switch (bit) {
        case P_SERVER_NO_CONTEXT:
        case P_CLIENT_NO_CONTEXT:
            if (vl >= 0)
                goto decline; /* these take no value */
            if (bit == P_SERVER_NO_CONTEXT)
                p->server_no_context = 1;
            else
                p->client_no_context = 1;
            break;
        case P_SERVER_BITS:
            if (bits < 0)
                goto decline; /* a value is required (7.1.2.1) */
            p->server_bits = (uint8_t)bits;
            break;
        case P_CLIENT_BITS:
            if (vl >= 0 && bits < 0)
                goto decline; /* no value is allowed, a bad one is not (7.1.2.2) */
            if (bits > 0) {
                p->client_bits = (uint8_t)bits;
                *client_bits_v = 1;
            }
            break;
        }
    }
    return 1;
decline:
    skip_element(c);
    return 0;
}

int swoop__ws_deflate_negotiate(const char *v, size_t len, int server_takeover,
                                swoop_ws_deflate_params_t *p, char *out, size_t cap)
{
    cursor_t c = {v, len, 0};
    if (cap)
        out[0] = '\0';
    while (c.at < c.len) {
        ows(&c);
        if (c.at < c.len && c.v[c.at] == ',') {
            c.at++; /* an empty list element (RFC 9110 5.6.1) */
            continue;
        }
        if (c.at == c.len)
            break;
        unsigned seen;
        int client_bits_v;
        if (!offer(&c, p, &seen, &client_bits_v))
            continue;
        if (!server_takeover)
            p->server_no_context = 1;
        /*
         * The response (7.1): server_no_context_takeover and
         * server_max_window_bits must be echoed when offered; an offered
         * client_no_context_takeover is acknowledged, so the client keeps
         * its promise and our inflater may reset; client_max_window_bits
         * with a value is echoed, and sizes our inflater's window (a client
         * that offered it without a value may use any window: none is sent
         * back, and ours stays at 15).
         */
        char bits_s[32] = "", cbits_s[32] = "";
        if (seen & P_SERVER_BITS)
            snprintf(bits_s, sizeof(bits_s), "; server_max_window_bits=%d", p->server_bits);
        if (client_bits_v)
            snprintf(cbits_s, sizeof(cbits_s), "; client_max_window_bits=%d", p->client_bits);
        int n =
            snprintf(out, cap, "permessage-deflate%s%s%s%s",
                     p->server_no_context ? "; server_no_context_takeover" : "",
                     p->client_no_context ? "; client_no_context_takeover" : "", bits_s, cbits_s);
        if (n < 0 || (size_t)n >= cap) {
            if (cap)
                out[0] = '\0';
            return 0;
        }
        return 1;
    }
    return 0;
}

uint32_t swoop__ws_deflate_pack(const swoop_ws_deflate_params_t *p)
{
    return 1u | (p->server_no_context ? 2u : 0u) | (p->client_no_context ? 4u : 0u) |
           (uint32_t)(p->server_bits & 15) << 4 | (uint32_t)(p->client_bits & 15) << 8;
}

int swoop__ws_deflate_unpack(uint32_t v, swoop_ws_deflate_params_t *p)
{
    memset(p, 0, sizeof(*p));
    if (!(v & 1))
        return 0;
    p->server_no_context = (v & 2) != 0;
    p->client_no_context = (v & 4) != 0;
    p->server_bits = (uint8_t)((v >> 4) & 15);
    p->client_bits = (uint8_t)((v >> 8) & 15);
    if (p->server_bits < SWOOP_WS_DEFLATE_BITS_MIN)
        p->server_bits = SWOOP_WS_DEFLATE_BITS_MAX;
    if (p->client_bits < SWOOP_WS_DEFLATE_BITS_MIN)
        p->client_bits = SWOOP_WS_DEFLATE_BITS_MAX;
    return 1;
}
