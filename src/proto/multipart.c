/*
 * multipart/form-data parser (see multipart.h). The body is scanned for the
 * delimiter "\r\n--boundary" with memchr on CR: a boundary contains no CR
 * (RFC 2046 bchars), so a CR can only start a delimiter at the delimiter's
 * first byte, and a partial match that fails is plain data. A partial match
 * at a piece's end is held back (its bytes are the delimiter's own prefix,
 * so nothing is copied) and resolved by the next piece. The body is treated
 * as if it began with CRLF, so the first dash-boundary needs no special
 * case. A part's header section is copied into the parser (bounded by
 * SWOOP_MP_HEAD_MAX), checked byte by byte (no bare CR or LF, no control
 * bytes, no obs-fold) and parsed once complete; the values the caller needs
 * (name, filename, Content-Type) are decoded in place and NUL-terminated.
 */
#include "proto/multipart.h"

#include <string.h>
#include <strings.h>

enum {
    ST_PREAMBLE = 0,
    ST_AFTER_DELIM, /* "--boundary" seen: "--", padding, or CRLF follows */
    ST_FINAL_DASH,  /* "-" of "--" seen */
    ST_PADDING,     /* transport padding (SP, HTAB) before the CRLF */
    ST_DELIM_LF,    /* the CR of the delimiter line's CRLF seen */
    ST_HEAD,
    ST_BODY,
    ST_EPILOGUE,
    ST_ERROR
};

/* The error is kept in the state's high bits so a later call returns it again. */
#define ST_ERROR_SHIFT 8

static ssize_t fail(swoop_mp_t *mp, int err)
{
    mp->state = ST_ERROR | ((-err) << ST_ERROR_SHIFT);
    return err;
}

const char *swoop__mp_error_reason(int err)
{
#define SWOOP_MP_ERROR_CASE(name, value, reason)                                                   \
    case value:                                                                                    \
        return reason;
    switch (err) {
        SWOOP_MP_ERRORS(SWOOP_MP_ERROR_CASE)
    }
#undef SWOOP_MP_ERROR_CASE
    return "";
}

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 2046 bcharsnospace. */
static int is_bchar_nospace(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("'()+_,-./:=?", c) != NULL);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* quoted-string text and quoted-pair bytes (RFC 9110 section 5.6.4). */
static int is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

static int is_qpair(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/*
 * Reads one parameter value at s[*i, end): a token, or a quoted-string
 * decoded into s from *i on (decoding only shrinks). Sets *voff, *vlen and
 * moves *i past it; 0, or -1 when malformed.
 */
static int param_value(char *s, size_t *i, size_t end, size_t *voff, size_t *vlen)
{
    size_t p = *i;
    if (p < end && s[p] == '"') {
        size_t o = p; /* decoded bytes go from the opening quote's place on */
        p++;
        for (;;) {
            if (p >= end)
                return -1; /* no closing quote */
            unsigned char c = (unsigned char)s[p];
            if (c == '"')
                break;
            if (c == '\\') {
                if (p + 1 >= end || !is_qpair((unsigned char)s[p + 1]))
                    return -1;
                c = (unsigned char)s[p + 1];
                p += 2;
            } else if (is_qdtext(c)) {
                p++;
            } else {
                return -1;
            }
            s[o++] = (char)c;
        }
        *voff = *i;
        *vlen = o - *i;
        *i = p + 1;
        return 0;
    }
    size_t start = p;
    while (p < end && is_tchar((unsigned char)s[p]))
        p++;
    if (p == start)
        return -1;
    *voff = start;
    *vlen = p - start;
    *i = p;
    return 0;
}

/* Skips OWS; then, unless at the end, expects ";" and OWS. 1: a parameter follows; 0: end; -1. */
static int next_param(const char *s, size_t *i, size_t end)
{
    while (*i < end && is_ows(s[*i]))
        (*i)++;
    if (*i == end)
        return 0;
    if (s[*i] != ';')
        return -1;
    (*i)++;
    while (*i < end && is_ows(s[*i]))
        (*i)++;
    return 1;
}

/* Reads "name" [OWS] "=" [OWS]; sets *noff, *nlen. 0 or -1. */
static int param_name(const char *s, size_t *i, size_t end, size_t *noff, size_t *nlen)
{
    size_t p = *i;
    while (p < end && is_tchar((unsigned char)s[p]))
        p++;
    if (p == *i)
        return -1;
    *noff = *i;
    *nlen = p - *i;
    while (p < end && is_ows(s[p]))
        p++;
    if (p >= end || s[p] != '=')
        return -1;
    p++;
    while (p < end && is_ows(s[p]))
        p++;
    *i = p;
    return 0;
}

int swoop__mp_boundary(const char *ct, size_t len, char *out, size_t *out_len)
{
    static const char mt[] = "multipart/form-data";
    size_t ml = sizeof(mt) - 1;
    size_t i = 0;
    while (i < len && is_ows(ct[i]))
        i++;
    if (len - i < ml || strncasecmp(ct + i, mt, ml) != 0)
        return 1;
    i += ml;
    if (i < len && !is_ows(ct[i]) && ct[i] != ';')
        return 1; /* "multipart/form-datax": another type */
    /* The parameters are decoded in a copy (quoted-strings shrink in place). */
    char s[1024];
    if (len - i > sizeof(s))
        return SWOOP_MP_E_BAD_CONTENT_TYPE;
    size_t end = len - i;
    memcpy(s, ct + i, end);
    size_t p = 0;
    int found = 0;
    for (;;) {
        int more = next_param(s, &p, end);
        if (more < 0)
            return SWOOP_MP_E_BAD_CONTENT_TYPE;
        if (more == 0)
            break;
        size_t noff, nlen, voff, vlen;
        if (param_name(s, &p, end, &noff, &nlen) < 0 || param_value(s, &p, end, &voff, &vlen) < 0)
            return SWOOP_MP_E_BAD_CONTENT_TYPE;
        if (nlen != 8 || strncasecmp(s + noff, "boundary", 8) != 0)
            continue;
        if (found)
            return SWOOP_MP_E_BAD_BOUNDARY; /* two boundaries: which one would a proxy use? */
        found = 1;
        if (vlen < 1 || vlen > SWOOP_MP_BOUNDARY_MAX || s[voff + vlen - 1] == ' ')
            return SWOOP_MP_E_BAD_BOUNDARY;
        for (size_t k = 0; k < vlen; k++) {
            if (s[voff + k] != ' ' && !is_bchar_nospace((unsigned char)s[voff + k]))
                return SWOOP_MP_E_BAD_BOUNDARY;
        }
        memcpy(out, s + voff, vlen);
        out[vlen] = '\0';
        *out_len = vlen;
    }
    return found ? 0 : SWOOP_MP_E_NO_BOUNDARY;
}

void swoop__mp_init(swoop_mp_t *mp, const char *b, size_t b_len)
{
    memset(mp, 0, offsetof(swoop_mp_t, delim));
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, b, b_len);
    mp->delim_len = 4 + b_len;
    mp->state = ST_PREAMBLE;
    mp->match = 2; /* as if the body began with CRLF: "--boundary" may open it */
}

int swoop__mp_done(const swoop_mp_t *mp)
{
    return mp->state == ST_EPILOGUE;
}

/* Content-Disposition: form-data; name="..."; filename="..." (RFC 7578 section 4.2). */
static int disposition(swoop_mp_t *mp, size_t v, size_t end)
{
    char *s = mp->head;
    size_t p = v;
    while (p < end && is_tchar((unsigned char)s[p]))
        p++;
    if (p - v != 9 || strncasecmp(s + v, "form-data", 9) != 0)
        return SWOOP_MP_E_DISPOSITION;
    int has_name = 0;
    for (;;) {
        int more = next_param(s, &p, end);
        if (more < 0)
            return SWOOP_MP_E_DISPOSITION;
        if (more == 0)
            break;
        size_t noff, nlen, voff, vlen;
        if (param_name(s, &p, end, &noff, &nlen) < 0)
            return SWOOP_MP_E_DISPOSITION;
        /* filename*= (RFC 5987): RFC 7578 says senders must not use it; skipped as a token run. */
        if (nlen == 9 && strncasecmp(s + noff, "filename*", 9) == 0) {
            while (p < end && !is_ows(s[p]) && s[p] != ';')
                p++;
            continue;
        }
        if (param_value(s, &p, end, &voff, &vlen) < 0)
            return SWOOP_MP_E_DISPOSITION;
        swoop_mp_span_t sp = {(uint32_t)voff, (uint32_t)vlen};
        if (nlen == 4 && strncasecmp(s + noff, "name", 4) == 0) {
            if (has_name)
                return SWOOP_MP_E_DISPOSITION;
            has_name = 1;
            mp->name = sp;
        } else if (nlen == 8 && strncasecmp(s + noff, "filename", 8) == 0) {
            if (mp->has_filename)
                return SWOOP_MP_E_DISPOSITION;
            mp->has_filename = 1;
            mp->filename = sp;
        }
    }
    if (!has_name || mp->name.len == 0)
        return SWOOP_MP_E_NO_NAME;
    return 0;
}

/* The complete header section in mp->head[0, head_len): its fields, then the PART event. */
static int head_parse(swoop_mp_t *mp)
{
    char *s = mp->head;
    size_t end = mp->head_len - 2; /* the final empty line */
    int has_disp = 0;
    mp->has_filename = 0;
    mp->has_type = 0;
    size_t nul = mp->head_len; /* an empty span points at a NUL past the section */
    mp->name = mp->filename = mp->type = (swoop_mp_span_t){(uint32_t)nul, 0};
    size_t line = 0;
    while (line < end) {
        size_t e = line;
        while (s[e] != '\r')
            e++; /* every line ends in CRLF: checked as the bytes came */
        if (is_ows(s[line]))
            return SWOOP_MP_E_HEAD_SYNTAX; /* obs-fold */
        size_t c = line;
        while (c < e && is_tchar((unsigned char)s[c]))
            c++;
        if (c == line || c == e || s[c] != ':')
            return SWOOP_MP_E_HEAD_SYNTAX;
        size_t v = c + 1, ve = e;
        while (v < ve && is_ows(s[v]))
            v++;
        while (ve > v && is_ows(s[ve - 1]))
            ve--;
        size_t nl = c - line;
        if (nl == 19 && strncasecmp(s + line, "content-disposition", 19) == 0) {
            if (has_disp)
                return SWOOP_MP_E_DISPOSITION;
            has_disp = 1;
            int rc = disposition(mp, v, ve);
            if (rc < 0)
                return rc;
        } else if (nl == 12 && strncasecmp(s + line, "content-type", 12) == 0) {
            if (mp->has_type || ve == v)
                return SWOOP_MP_E_HEAD_SYNTAX;
            mp->has_type = 1;
            mp->type = (swoop_mp_span_t){(uint32_t)v, (uint32_t)(ve - v)};
        }
        line = e + 2;
    }
    if (!has_disp)
        return SWOOP_MP_E_DISPOSITION;
    /* Terminated only now: a token's terminator is the next byte the parse read. */
    s[nul] = '\0';
    s[mp->name.off + mp->name.len] = '\0';
    s[mp->filename.off + mp->filename.len] = '\0';
    s[mp->type.off + mp->type.len] = '\0';
    return 0;
}

/*
 * One byte of a header section. Returns 1 when the section is complete,
 * 0 for more, or an error.
 */
static int head_byte(swoop_mp_t *mp, unsigned char c)
{
    size_t n = mp->head_len;
    if (n > 0 && mp->head[n - 1] == '\r' && c != '\n')
        return SWOOP_MP_E_HEAD_SYNTAX; /* bare CR */
    if (c == '\n' && (n == 0 || mp->head[n - 1] != '\r'))
        return SWOOP_MP_E_HEAD_SYNTAX; /* bare LF */
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
        return SWOOP_MP_E_HEAD_SYNTAX;
    if (n >= SWOOP_MP_HEAD_MAX)
        return SWOOP_MP_E_HEAD_TOO_LARGE;
    mp->head[mp->head_len++] = (char)c;
    if (c != '\n')
        return 0;
    if (mp->head_len == 2)
        return SWOOP_MP_E_DISPOSITION; /* no header fields at all */
    return mp->head_len >= 4 && memcmp(mp->head + mp->head_len - 4, "\r\n\r\n", 4) == 0;
}

/*
 * PREAMBLE or BODY: looks for the delimiter in buf[0, len). Returns the
 * bytes consumed; *found is set when they end with a whole delimiter, and
 * ev gets the data (BODY) that precedes it.
 */
static size_t scan(swoop_mp_t *mp, const char *buf, size_t len, swoop_mp_event_t *ev, int *found)
{
    *found = 0;
    if (mp->match > 0) {
        size_t i = 0;
        while (mp->match < mp->delim_len && i < len && buf[i] == mp->delim[mp->match]) {
            mp->match++;
            i++;
        }
        if (mp->match == mp->delim_len) {
            mp->match = 0;
            *found = 1;
            return i;
        }
        if (i == len)
            return i; /* still a prefix: held */
        /* Not a delimiter: the held bytes were data; buf[i] is looked at afresh. */
        ev->type = SWOOP_MP_EV_DATA;
        ev->data = mp->delim;
        ev->len = mp->match;
        mp->match = 0;
        return i;
    }
    size_t from = 0;
    for (;;) {
        const char *cr = memchr(buf + from, '\r', len - from);
        if (cr == NULL) {
            ev->type = SWOOP_MP_EV_DATA;
            ev->data = buf;
            ev->len = len;
            return len;
        }
        size_t j = (size_t)(cr - buf), k = 0;
        while (k < mp->delim_len && j + k < len && buf[j + k] == mp->delim[k])
            k++;
        if (k == mp->delim_len || j + k == len) {
            if (j > 0) {
                ev->type = SWOOP_MP_EV_DATA;
                ev->data = buf;
                ev->len = j;
            }
            if (k == mp->delim_len) {
                if (j > 0)
                    return j; /* the delimiter is found again by the next call */
                *found = 1;
                return k;
            }
            mp->match = k; /* a prefix at the end: held until the next piece decides */
            return len;
        }
        from = j + 1;
    }
}

ssize_t swoop__mp_parse(swoop_mp_t *mp, const char *buf, size_t len, swoop_mp_event_t *ev)
{
    ev->type = SWOOP_MP_EV_NONE;
    ev->data = NULL;
    ev->len = 0;
    if ((mp->state & 0xff) == ST_ERROR)
        return -(mp->state >> ST_ERROR_SHIFT);
    size_t off = 0;
    while (off < len) {
        const char *p = buf + off;
        size_t n = len - off;
        switch (mp->state) {
        case ST_PREAMBLE:
        case ST_BODY: {
            int found;
            off += scan(mp, p, n, ev, &found);
            if (mp->state == ST_PREAMBLE)
                ev->type = SWOOP_MP_EV_NONE; /* the preamble is dropped */
            if (found) {
                if (mp->state == ST_BODY)
                    ev->type = SWOOP_MP_EV_PART_END;
                mp->state = ST_AFTER_DELIM;
            }
            if (ev->type != SWOOP_MP_EV_NONE)
                return (ssize_t)off;
            break;
        }
        case ST_AFTER_DELIM:
            off++;
            if (*p == '-')
                mp->state = ST_FINAL_DASH;
            else if (is_ows(*p))
                mp->state = ST_PADDING;
            else if (*p == '\r')
                mp->state = ST_DELIM_LF;
            else
                return fail(mp, SWOOP_MP_E_DELIMITER);
            break;
        case ST_FINAL_DASH:
            off++;
            if (*p != '-')
                return fail(mp, SWOOP_MP_E_DELIMITER);
            mp->state = ST_EPILOGUE;
            ev->type = SWOOP_MP_EV_DONE;
            return (ssize_t)off;
        case ST_PADDING:
            off++;
            if (*p == '\r')
                mp->state = ST_DELIM_LF;
            else if (!is_ows(*p))
                return fail(mp, SWOOP_MP_E_DELIMITER);
            break;
        case ST_DELIM_LF:
            off++;
            if (*p != '\n')
                return fail(mp, SWOOP_MP_E_DELIMITER);
            mp->state = ST_HEAD;
            mp->head_len = 0;
            break;
        case ST_HEAD: {
            size_t i = 0;
            int rc = 0;
            while (i < n && rc == 0)
                rc = head_byte(mp, (unsigned char)p[i++]);
            off += i;
            if (rc < 0)
                return fail(mp, rc);
            if (rc == 0)
                break;
            rc = head_parse(mp);
            if (rc < 0)
                return fail(mp, rc);
            mp->state = ST_BODY;
            mp->match = 0;
            ev->type = SWOOP_MP_EV_PART;
            return (ssize_t)off;
        }
        default: /* ST_EPILOGUE: ignored (RFC 2046) */
            off = len;
            break;
        }
    }
    return (ssize_t)off;
}
