/*
 * The access log (http_access_log, per port): one line per answered request
 * in the combined log format, written with one write(2) to a file opened
 * O_APPEND at start, so lines of different processes and threads never
 * interleave. Whoever answers writes the line: the worker after its
 * response, the connection owner for static files and the requests it
 * refused. Every byte a client chose (target, Referer, User-Agent) is
 * escaped (\", \\, and \xHH for controls and bytes above 0x7e), so a
 * request cannot forge a line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/ratelimit.h"
#include "http/internal.h"

/* Appends s[0, len) escaped to out at *n (cap bytes); "-" for an empty or missing value. */
static void put_escaped(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (s == NULL || len == 0)
        s = "-", len = 1;
    for (size_t i = 0; i < len && *n + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)ch;
        } else if (ch < 0x20 || ch > 0x7e) {
            *n += (size_t)snprintf(out + *n, cap - *n, "\\x%02x", ch);
        } else {
            out[(*n)++] = (char)ch;
        }
    }
}

void swoop__http_access(int fd, const swoop_addr_t *peer, const swoop_http_access_t *a)
{
    if (fd < 0)
        return;
    char line[4096], host[SWOOP_ADDR_STRLEN] = "-", when[40];
    if (peer && peer->len > 0) {
        swoop_addr_format(peer, host, sizeof(host));
        /* The host alone, without the port (as in the common log format). */
        char *colon = strrchr(host, ':');
        if (colon && host[0] != 'u')
            *colon = '\0';
        if (host[0] == '[') {
            memmove(host, host + 1, strlen(host));
            char *rb = strchr(host, ']');
            if (rb)
                *rb = '\0';
        }
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    size_t n = (size_t)snprintf(line, sizeof(line), "%s - - [%s] \"", host, when);
    if (a->method) {
        put_escaped(line, sizeof(line), &n, a->method, a->method_len);
        line[n++] = ' ';
        put_escaped(line, sizeof(line), &n, a->target, a->target_len);
        n += (size_t)snprintf(line + n, sizeof(line) - n, " HTTP/1.%d", a->version_minor);
    } else {
        line[n++] = '-';
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "\" %d %llu \"", a->status,
                          (unsigned long long)a->bytes);
    put_escaped(line, sizeof(line), &n, a->referer, a->referer_len);
    n += (size_t)snprintf(line + n, sizeof(line) - n, "\" \"");
    put_escaped(line, sizeof(line), &n, a->user_agent, a->user_agent_len);
    if (n + 3 > sizeof(line))
        n = sizeof(line) - 3;
    line[n++] = '"';
    line[n++] = '\n';
    if (write(fd, line, n) < 0)
        swoop__log_limited(SWOOP_LOG_WARNING, errno, "http: writing the access log failed");
}
