/*
 * The access log (http_access_log, per port): one line per answered request
 * in the port's http_access_log_format (combined, common or JSON lines),
 * written with one write(2) to a file opened O_APPEND at start, so lines of
 * different processes and threads never interleave. Whoever answers writes
 * the line: the worker after its response, the connection owner for static
 * files and the requests it refused.
 *
 * Every byte a client chose (target, Referer, User-Agent) is escaped, so a
 * request cannot forge a line: in the text formats \", \\, and \xHH for
 * controls and bytes above 0x7e (as nginx does); in JSON the JSON escapes,
 * and \u00HH for controls, DEL and every byte above 0x7f, so a line is
 * always valid JSON (and valid UTF-8) whatever the client sent. A byte
 * above 0x7f reads back as the Latin-1 character of that value: the log
 * keeps what was sent, not what it meant.
 *
 * The line is built in a stack buffer of ACCESS_LINE_MAX bytes; a field
 * that would not fit is cut (the line stays well-formed: closing quotes,
 * braces and the newline are always reserved).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/ratelimit.h"
#include "http/internal.h"

#define ACCESS_LINE_MAX 4096
#define ACCESS_TAIL     400 /* reserved for the fields after a client-chosen one */

typedef struct line_s {
    char buf[ACCESS_LINE_MAX];
    size_t n;
} line_t;

static void add(line_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(line_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->buf + l->n, sizeof(l->buf) - l->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        l->n += (size_t)k < sizeof(l->buf) - l->n ? (size_t)k : sizeof(l->buf) - l->n - 1;
}

/* One byte; the last byte of the buffer stays free for the newline. */
static void putch(line_t *l, char ch)
{
    if (l->n + 1 < sizeof(l->buf))
        l->buf[l->n++] = ch;
}

/* Appends s[0, len) text-escaped, leaving ACCESS_TAIL bytes; "-" for an empty or missing value. */
static void put_text(line_t *l, const char *s, size_t len)
{
    if (s == NULL || len == 0)
        s = "-", len = 1;
    size_t cap = sizeof(l->buf) - ACCESS_TAIL;
    for (size_t i = 0; i < len && l->n + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            putch(l, '\\');
            putch(l, (char)ch);
        } else if (ch < 0x20 || ch > 0x7e) {
            l->n += (size_t)snprintf(l->buf + l->n, 5, "\\x%02x", ch);
        } else {
            putch(l, (char)ch);
        }
    }
}

/* Appends "key":"s" (JSON-escaped) or "key":null for a missing value, then a comma. */
static void put_json(line_t *l, const char *key, const char *s, size_t len)
{
    add(l, "\"%s\":", key);
    if (s == NULL) {
        add(l, "null,");
        return;
    }
    size_t cap = sizeof(l->buf) - ACCESS_TAIL;
    putch(l, '"');
    for (size_t i = 0; i < len && l->n + 7 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *rep = ch == '"'    ? "\\\""
                          : ch == '\\' ? "\\\\"
                          : ch == '\n' ? "\\n"
                          : ch == '\r' ? "\\r"
                          : ch == '\t' ? "\\t"
                                       : NULL;
        if (rep) {
            memcpy(l->buf + l->n, rep, 2);
            l->n += 2;
        } else if (ch < 0x20 || ch >= 0x7f) {
            l->n += (size_t)snprintf(l->buf + l->n, 7, "\\u%04x", ch);
        } else {
            putch(l, (char)ch);
        }
    }
    putch(l, '"');
    putch(l, ',');
}

/* The peer's host without the port (as the common log format has it). */
static void peer_host(const swoop_addr_t *peer, char *host, size_t cap)
{
    snprintf(host, cap, "-");
    if (peer == NULL || peer->len == 0)
        return;
    swoop_addr_format(peer, host, cap);
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

static void format_text(line_t *l, int combined, const char *host, const swoop_http_access_t *a)
{
    char when[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    add(l, "%s - - [%s] \"", host, when);
    if (a->method) {
        put_text(l, a->method, a->method_len);
        putch(l, ' ');
        put_text(l, a->target, a->target_len);
        add(l, " HTTP/1.%d", a->version_minor);
    } else {
        putch(l, '-');
    }
    add(l, "\" %d %llu", a->status, (unsigned long long)a->bytes);
    if (combined) {
        add(l, " \"");
        put_text(l, a->referer, a->referer_len);
        add(l, "\" \"");
        put_text(l, a->user_agent, a->user_agent_len);
        add(l, "\"");
    }
}

static void format_json(line_t *l, const char *host, const swoop_http_access_t *a)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    add(l, "{\"time\":\"%s.%03ldZ\",", when, ts.tv_nsec / 1000000L);
    /* A Unix socket's path is the operator's, not the client's, but may hold anything too. */
    put_json(l, "remote_addr", strcmp(host, "-") ? host : NULL, strlen(host));
    put_json(l, "method", a->method, a->method_len);
    put_json(l, "target", a->method ? a->target : NULL, a->target_len);
    if (a->method)
        add(l, "\"protocol\":\"HTTP/1.%d\",", a->version_minor);
    else
        add(l, "\"protocol\":null,");
    add(l, "\"status\":%d,\"bytes\":%llu,", a->status, (unsigned long long)a->bytes);
    put_json(l, "referer", a->referer, a->referer_len);
    put_json(l, "user_agent", a->user_agent, a->user_agent_len);
    if (a->duration_us >= 0)
        add(l, "\"duration_us\":%lld,", (long long)a->duration_us);
    else
        add(l, "\"duration_us\":null,");
    add(l, "\"pid\":%d}", (int)getpid());
}

void swoop__http_access(int fd, int format, const swoop_addr_t *peer, const swoop_http_access_t *a)
{
    if (fd < 0)
        return;
    line_t l;
    l.n = 0;
    char host[SWOOP_ADDR_STRLEN];
    peer_host(peer, host, sizeof(host));
    if (format == SWOOP_ACCESS_LOG_JSON)
        format_json(&l, host, a);
    else
        format_text(&l, format != SWOOP_ACCESS_LOG_COMMON, host, a);
    if (l.n > sizeof(l.buf) - 1)
        l.n = sizeof(l.buf) - 1;
    l.buf[l.n++] = '\n';
    if (write(fd, l.buf, l.n) < 0)
        swoop__log_limited(SWOOP_LOG_WARNING, errno, "http: writing the access log failed");
}
