/*
 * Request parameters for handlers: the query string and an urlencoded body
 * ("a=1&b=x%20y", '+' for a space) and the Cookie field ("a=1; b=2"),
 * looked up by name and decoded into the caller's buffer, so nothing is
 * allocated and a hostile request cannot make the worker allocate either.
 * And their other half: Set-Cookie fields with their attributes, and
 * redirects.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/internal.h"

static int hexval(int ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/*
 * Decodes s[0, len) (percent escapes, and '+' as a space when `plus`) into
 * out (cap bytes, NUL-terminated). Returns the decoded length, SWOOP_ENOSPC
 * when out is too small, SWOOP_EINVAL for a bad escape.
 */
static int url_decode(const char *s, size_t len, int plus, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= len || hexval((unsigned char)s[i + 1]) < 0 ||
                hexval((unsigned char)s[i + 2]) < 0)
                return SWOOP_EINVAL;
            ch = hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]);
            i += 2;
        } else if (ch == '+' && plus) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return SWOOP_ENOSPC;
        out[o++] = (char)ch;
    }
    if (cap == 0)
        return SWOOP_ENOSPC;
    out[o] = '\0';
    return (int)o;
}

/* Finds `name` among sep-separated name=value pairs of s[0, len); decodes its value. */
static int pairs_get(const char *s, size_t len, char sep, int plus, const char *name, char *out,
                     size_t cap)
{
    if (name == NULL || out == NULL)
        return SWOOP_EINVAL;
    size_t nl = strlen(name);
    char key[256];
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != sep)
            end++;
        size_t a = i;
        while (a < end && sep == ';' && s[a] == ' ')
            a++; /* "a=1; b=2" */
        const char *eq = memchr(s + a, '=', end - a);
        size_t klen = eq ? (size_t)(eq - (s + a)) : end - a;
        int kl = url_decode(s + a, klen, plus, key, sizeof(key));
        if (kl >= 0 && (size_t)kl == nl && memcmp(key, name, nl) == 0) {
            if (eq == NULL)
                return url_decode("", 0, plus, out, cap);
            return url_decode(eq + 1, (size_t)(s + end - (eq + 1)), plus, out, cap);
        }
        i = end + 1;
    }
    return SWOOP_ENOENT;
}

int swoop_http_query_get(const swoop_http_request_t *req, const char *name, char *out, size_t cap)
{
    if (req == NULL)
        return SWOOP_EINVAL;
    const char *q = swoop_http_query(req);
    return pairs_get(q, strlen(q), '&', 1, name, out, cap);
}

int swoop_http_form_get(const swoop_http_request_t *req, const char *name, char *out, size_t cap)
{
    if (req == NULL)
        return SWOOP_EINVAL;
    size_t plen;
    if (swoop__http_parts(req, &plen) != NULL)
        return swoop__http_multipart_field(req, name, out, cap);
    const char *ct = swoop_http_header(req, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)
        return SWOOP_ENOENT;
    size_t len;
    const char *body = swoop_http_body(req, &len);
    return pairs_get(body, len, '&', 1, name, out, cap);
}

int swoop_http_cookie_get(const swoop_http_request_t *req, const char *name, char *out, size_t cap)
{
    if (req == NULL)
        return SWOOP_EINVAL;
    /* Every Cookie field (HTTP/1.1 clients send one; a few send several). */
    int rc = SWOOP_ENOENT;
    for (int i = 0; i < swoop_http_header_count(req) && rc == SWOOP_ENOENT; i++) {
        const char *n, *v;
        swoop_http_header_at(req, i, &n, &v);
        if (strcasecmp(n, "Cookie") == 0)
            rc = pairs_get(v, strlen(v), ';', 0, name, out, cap);
    }
    return rc;
}

/* RFC 6265 cookie-octet: visible ASCII less '"', ',', ';' and '\\'. */
static int cookie_octets(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == ',' || *p == ';' || *p == '\\')
            return 0;
    }
    return 1;
}

/* An attribute value must not end the field or start another attribute. */
static int attr_ok(const char *v)
{
    return v == NULL || (strpbrk(v, ";\r\n") == NULL);
}

int swoop_http_cookie_set(swoop_http_response_t *res, const char *name, const char *value,
                          const swoop_http_cookie_t *attrs)
{
    if (res == NULL || name == NULL || value == NULL || name[0] == '\0')
        return SWOOP_EINVAL;
    if (!cookie_octets(value) || (attrs && (!attr_ok(attrs->path) || !attr_ok(attrs->domain) ||
                                            !attr_ok(attrs->same_site)))) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "swoop_http_cookie_set: cookie \"%s\": a value or attribute with a byte a "
                  "cookie cannot carry (encode it first)",
                  name);
        return SWOOP_EINVAL;
    }
    char line[4096];
    int n = snprintf(line, sizeof(line), "%s=%s", name, value);
    if (attrs) {
        if (attrs->max_age != 0)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "; Max-Age=%lld",
                          (long long)(attrs->max_age < 0 ? 0 : attrs->max_age));
        if (attrs->path)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "; Path=%s", attrs->path);
        if (attrs->domain)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "; Domain=%s", attrs->domain);
        if (attrs->same_site)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "; SameSite=%s", attrs->same_site);
        if (attrs->secure)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "; Secure");
        if (attrs->http_only)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "; HttpOnly");
    }
    if (n < 0 || (size_t)n >= sizeof(line))
        return SWOOP_EINVAL;
    return swoop__http_field_add(res, "Set-Cookie", line);
}

int swoop_http_redirect(swoop_http_response_t *res, int status, const char *location)
{
    if (res == NULL || location == NULL ||
        !(status == 301 || status == 302 || status == 303 || status == 307 || status == 308))
        return SWOOP_EINVAL;
    int rc = swoop_http_status(res, status);
    if (rc == 0)
        rc = swoop_http_header_set(res, "Location", location);
    if (rc == 0)
        rc = swoop_http_end(res, NULL, 0);
    return rc;
}
