/*
 * Accept-Encoding negotiation (RFC 9110 12.5.3):
 *   Accept-Encoding = #( codings [ weight ] )
 *   codings = content-coding / "identity" / "*"
 *   weight  = OWS ";" OWS "q=" qvalue
 *   qvalue  = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
 * Names and "q" are case-insensitive, empty list elements are allowed
 * (RFC 9110 5.6.1), and "x-gzip" means gzip (RFC 9110 8.4.1.3). Anything
 * else (a stray byte, a qvalue above 1 or with four decimals, an unknown
 * parameter) makes the whole field malformed: the response is identity.
 */
#include "proto/http_codings.h"

#include <string.h>
#include <strings.h>

void swoop__http_codings_init(swoop_http_codings_t *acc)
{
    acc->gzip = acc->deflate = acc->identity = acc->star = -1;
    acc->bad = 0;
    acc->seen = 0;
}

static int is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Parses a qvalue at v[*i, len) into thousandths; -1 when it is not one. */
static int qvalue(const char *v, size_t len, size_t *i)
{
    size_t p = *i;
    if (p >= len || (v[p] != '0' && v[p] != '1'))
        return -1;
    int one = v[p] == '1';
    int q = one ? 1000 : 0;
    p++;
    if (p < len && v[p] == '.') {
        p++;
        int scale = 100;
        for (int d = 0; d < 3 && p < len && v[p] >= '0' && v[p] <= '9'; d++, p++) {
            if (one && v[p] != '0')
                return -1; /* above 1 */
            q += (v[p] - '0') * scale;
            scale /= 10;
        }
        if (p < len && v[p] >= '0' && v[p] <= '9')
            return -1; /* a fourth decimal */
    }
    *i = p;
    return q;
}

/* Sets *slot to q unless the coding was named before (the first weight stays). */
static void weigh(int *slot, int q)
{
    if (*slot < 0)
        *slot = q;
}

int swoop__http_codings_parse(swoop_http_codings_t *acc, const char *v, size_t len)
{
    acc->seen = 1;
    size_t i = 0;
    for (;;) {
        while (i < len && (is_ows(v[i]) || v[i] == ','))
            i++;
        if (i >= len)
            return 0;
        size_t start = i;
        while (i < len && is_tchar((unsigned char)v[i]))
            i++;
        size_t nl = i - start;
        if (nl == 0)
            goto bad;
        int q = 1000;
        while (i < len && is_ows(v[i]))
            i++;
        if (i < len && v[i] == ';') {
            i++;
            while (i < len && is_ows(v[i]))
                i++;
            if (i + 2 > len || (v[i] != 'q' && v[i] != 'Q') || v[i + 1] != '=')
                goto bad;
            i += 2;
            if ((q = qvalue(v, len, &i)) < 0)
                goto bad;
            while (i < len && is_ows(v[i]))
                i++;
        }
        if (i < len && v[i] != ',')
            goto bad;
        const char *name = v + start;
        if (nl == 4 && strncasecmp(name, "gzip", 4) == 0)
            weigh(&acc->gzip, q);
        else if (nl == 6 && strncasecmp(name, "x-gzip", 6) == 0)
            weigh(&acc->gzip, q);
        else if (nl == 7 && strncasecmp(name, "deflate", 7) == 0)
            weigh(&acc->deflate, q);
        else if (nl == 8 && strncasecmp(name, "identity", 8) == 0)
            weigh(&acc->identity, q);
        else if (nl == 1 && name[0] == '*')
            weigh(&acc->star, q);
        /* Other codings (br, zstd, compress) are valid but not ours: ignored. */
    }
bad:
    acc->bad = 1;
    return -1;
}

/* The weight of a coding the request named, else that of "*", else 0 (not acceptable). */
static int effective(int named, int star)
{
    return named >= 0 ? named : star >= 0 ? star : 0;
}

int swoop__http_codings_pick(const swoop_http_codings_t *acc, int allowed)
{
    if (!acc->seen || acc->bad)
        return SWOOP_HTTP_CODING_IDENTITY;
    int qg = (allowed & SWOOP_HTTP_CODING_GZIP) ? effective(acc->gzip, acc->star) : 0;
    int qd = (allowed & SWOOP_HTTP_CODING_DEFLATE) ? effective(acc->deflate, acc->star) : 0;
    int best = qg >= qd ? SWOOP_HTTP_CODING_GZIP : SWOOP_HTTP_CODING_DEFLATE;
    int qb = qg >= qd ? qg : qd;
    /*
     * identity is acceptable unless refused (RFC 9110 12.5.3): it wins only
     * when the client weighted it (or "*") above the best coding.
     */
    int qi = acc->identity >= 0 ? acc->identity : acc->star >= 0 ? acc->star : -1;
    if (qb == 0 || qi > qb)
        return SWOOP_HTTP_CODING_IDENTITY;
    return best;
}

const char *swoop__http_coding_name(int coding)
{
    return coding == SWOOP_HTTP_CODING_GZIP      ? "gzip"
           : coding == SWOOP_HTTP_CODING_DEFLATE ? "deflate"
                                                 : NULL;
}
