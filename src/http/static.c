/*
 * Static files, served by the connection owner before any handler
 * (enable_static_handler, document_root): GET and HEAD of a regular file
 * under the root (a directory serves its index.html), with Content-Type from
 * /etc/mime.types (Debian media-types; a short built-in table without it),
 * a strong ETag and Last-Modified, 304 for If-None-Match / If-Modified-Since,
 * and the body by sendfile behind the head. The decoded path is resolved
 * with realpath() and must stay under the root's own realpath: "..",
 * "%2e%2e", encoded slashes and symlinks that lead outside all fail that
 * test. A request that is not for such a file goes on to the handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/ratelimit.h"
#include "http/internal.h"

/* ---- MIME types ---- */

typedef struct mime_s {
    char ext[16];
    char type[80];
} mime_t;

static const mime_t builtin_types[] = {
    {"css", "text/css"},
    {"gif", "image/gif"},
    {"htm", "text/html"},
    {"html", "text/html"},
    {"ico", "image/vnd.microsoft.icon"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript"},
    {"json", "application/json"},
    {"md", "text/markdown"},
    {"mjs", "text/javascript"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"svg", "image/svg+xml"},
    {"txt", "text/plain"},
    {"wasm", "application/wasm"},
    {"webp", "image/webp"},
    {"woff2", "font/woff2"},
    {"xml", "application/xml"},
};

static mime_t *mime_table;
static size_t mime_count;
static pthread_once_t mime_once = PTHREAD_ONCE_INIT;

static int mime_cmp(const void *a, const void *b)
{
    return strcasecmp(((const mime_t *)a)->ext, ((const mime_t *)b)->ext);
}

/* Reads /etc/mime.types once ("type ext ext ..." lines); the built-in table otherwise. */
static void mime_load(void)
{
    FILE *f = fopen("/etc/mime.types", "re");
    size_t cap = 0;
    char line[1024];
    while (f && fgets(line, sizeof(line), f)) {
        if (line[0] == '#')
            continue;
        char *save = NULL, *type = strtok_r(line, " \t\r\n", &save);
        if (type == NULL || strlen(type) >= sizeof(mime_table->type))
            continue;
        for (char *ext; (ext = strtok_r(NULL, " \t\r\n", &save)) != NULL;) {
            if (strlen(ext) >= sizeof(mime_table->ext))
                continue;
            if (mime_count == cap) {
                cap = cap ? cap * 2 : 1024;
                mime_table = swoop_realloc(mime_table, cap * sizeof(*mime_table));
            }
            strcpy(mime_table[mime_count].ext, ext);
            strcpy(mime_table[mime_count].type, type);
            mime_count++;
        }
    }
    if (f)
        fclose(f);
    if (mime_count == 0) {
        mime_table = swoop_malloc(sizeof(builtin_types));
        memcpy(mime_table, builtin_types, sizeof(builtin_types));
        mime_count = SWOOP_ARRAY_SIZE(builtin_types);
    }
    qsort(mime_table, mime_count, sizeof(*mime_table), mime_cmp);
}

const char *swoop__http_mime_type(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot == NULL || (slash && dot < slash) || strlen(dot + 1) >= sizeof(mime_table->ext))
        return "application/octet-stream";
    pthread_once(&mime_once, mime_load);
    mime_t key;
    strcpy(key.ext, dot + 1);
    const mime_t *m = bsearch(&key, mime_table, mime_count, sizeof(*m), mime_cmp);
    return m ? m->type : "application/octet-stream";
}

/* ---- the request ---- */

static int hex(int ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* Percent-decodes src[0, len) into out (cap bytes); -1 for a bad escape, a NUL, or no room. */
static int path_decode(const char *src, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)src[i];
        if (ch == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hex((unsigned char)src[i + 1]), lo = hex((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

/* The value of field `name` of the request head at req, or NULL (len in *vlen). */
static const char *field(const swoop_http_head_t *hd, const char *req, const char *name,
                         size_t *vlen)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < hd->num_headers; i++) {
        const swoop_http_header_t *f = &hd->headers[i];
        if (f->name.len == nl && strncasecmp(req + f->name.off, name, nl) == 0) {
            *vlen = f->value.len;
            return req + f->value.off;
        }
    }
    return NULL;
}

/* Resolves the request path to a regular file under root; returns its fd or -1. */
static int open_under_root(const char *root, const char *path, struct stat *st)
{
    char full[PATH_MAX], real[PATH_MAX];
    size_t rl = strlen(root);
    if ((size_t)snprintf(full, sizeof(full), "%s/%s", root, path) >= sizeof(full))
        return -1;
    for (int tries = 0; tries < 2; tries++) {
        if (realpath(full, real) == NULL)
            return -1;
        /* Under the root, at a component boundary: "/srv/www2" is not under "/srv/www". */
        if (strncmp(real, root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0'))
            return -1;
        if (stat(real, st) < 0)
            return -1;
        if (S_ISDIR(st->st_mode)) {
            if ((size_t)snprintf(full, sizeof(full), "%s/index.html", real) >= sizeof(full))
                return -1;
            continue;
        }
        if (!S_ISREG(st->st_mode))
            return -1;
        int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
            if (fd >= 0)
                close(fd);
            return -1;
        }
        return fd;
    }
    return -1;
}

/*
 * Range (RFC 9110 14): one "bytes=a-b", "a-" or "-n" range of a file of
 * `size` bytes. Returns 1 with [*from, *from + *count) to send (206), -1
 * when it cannot be satisfied (416), 0 to send the whole file: no Range, an
 * If-Range that does not match, a syntax we do not serve (several ranges:
 * RFC 9110 lets a server answer 200), an unknown unit.
 */
static int range_of(const swoop_http_head_t *hd, const char *req, const char *etag,
                    const char *modified, uint64_t size, uint64_t *from, uint64_t *count)
{
    size_t vl;
    const char *v = field(hd, req, "Range", &vl);
    if (v == NULL || vl < 7 || strncasecmp(v, "bytes=", 6) != 0 || memchr(v, ',', vl))
        return 0;
    size_t il;
    const char *ifr = field(hd, req, "If-Range", &il);
    if (ifr && !((il == strlen(etag) && memcmp(ifr, etag, il) == 0) ||
                 (il == strlen(modified) && memcmp(ifr, modified, il) == 0)))
        return 0;
    char buf[64];
    if (vl - 6 >= sizeof(buf))
        return 0;
    memcpy(buf, v + 6, vl - 6);
    buf[vl - 6] = '\0';
    char *dash = strchr(buf, '-'), *end;
    if (dash == NULL)
        return 0;
    *dash = '\0';
    const char *a = buf, *b = dash + 1;
    if (*a == '\0') { /* "-n": the last n bytes */
        if (*b < '0' || *b > '9')
            return 0;
        unsigned long long n = strtoull(b, &end, 10);
        if (*end != '\0')
            return 0;
        if (n == 0 || size == 0)
            return -1;
        *count = n < size ? n : size;
        *from = size - *count;
        return 1;
    }
    if (*a < '0' || *a > '9')
        return 0;
    unsigned long long first = strtoull(a, &end, 10), last = size ? size - 1 : 0;
    if (*end != '\0')
        return 0;
    if (*b) {
        if (*b < '0' || *b > '9')
            return 0;
        last = strtoull(b, &end, 10);
        if (*end != '\0' || last < first)
            return 0;
        if (last >= size)
            last = size - 1;
    }
    if (first >= size)
        return -1;
    *from = first;
    *count = last - first + 1;
    return 1;
}

int swoop__http_static(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req,
                       int keep_alive)
{
    const swoop_port_t *p = c->port;
    if (!p->eff.enable_static_handler || p->static_root[0] == '\0' ||
        hd->body == SWOOP_HTTP_BODY_CHUNKED ||
        (hd->body == SWOOP_HTTP_BODY_LENGTH && hd->content_length > 0))
        return 0;
    int head_only = hd->method.len == 4 && memcmp(req + hd->method.off, "HEAD", 4) == 0;
    if (!head_only && !(hd->method.len == 3 && memcmp(req + hd->method.off, "GET", 3) == 0))
        return 0;
    char path[PATH_MAX];
    if (path_decode(req + hd->path.off, hd->path.len, path, sizeof(path)) < 0)
        return 0;
    struct stat st;
    int fd = open_under_root(p->static_root, path, &st);
    if (fd < 0)
        return 0;
    /* Compression (compress.c): FILE.gz in its place, or the file compressed on the fly. */
    swoop_http_static_z_t z;
    swoop__http_static_coding(&p->eff, hd, req, swoop__http_mime_type(path), &fd, &st, &z);
    char etag[64], modified[40], head[1024];
    snprintf(etag, sizeof(etag), "%s\"%llx-%llx\"", z.etag_prefix, (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    struct tm tm;
    gmtime_r(&st.st_mtim.tv_sec, &tm);
    strftime(modified, sizeof(modified), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    /* RFC 9110 13.2.2: If-None-Match first; If-Modified-Since only without it. */
    int not_modified = 0;
    size_t vl;
    const char *inm = field(hd, req, "If-None-Match", &vl);
    if (inm) {
        size_t el = strlen(etag);
        not_modified = (vl == 1 && inm[0] == '*');
        for (const char *q = inm; !not_modified && q + el <= inm + vl; q++)
            not_modified = memcmp(q, etag, el) == 0;
    } else {
        const char *ims = field(hd, req, "If-Modified-Since", &vl);
        char buf[64];
        struct tm t;
        memset(&t, 0, sizeof(t));
        if (ims && vl < sizeof(buf)) {
            memcpy(buf, ims, vl);
            buf[vl] = '\0';
            const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &t);
            not_modified = end && *end == '\0' && timegm(&t) >= st.st_mtim.tv_sec;
        }
    }
    uint64_t from = 0, count = (uint64_t)st.st_size;
    int range = not_modified || z.coding
                    ? 0
                    : range_of(hd, req, etag, modified, (uint64_t)st.st_size, &from, &count);
    if (!not_modified && z.on_the_fly) {
        if (swoop__http_static_deflate(&z, fd, (size_t)st.st_size) < 0) {
            close(fd);
            swoop__buf_free(&z.body);
            return 0; /* not answered here: the handler gets the request */
        }
        count = swoop__buf_rlen(&z.body);
    }
    int status = not_modified ? 304 : range > 0 ? 206 : range < 0 ? 416 : 200;
    const char *conn = keep_alive ? (hd->version_minor == 0 ? "Connection: keep-alive\r\n" : "")
                                  : "Connection: close\r\n";
    int n;
    if (not_modified)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 304 Not Modified\r\nServer: swoop\r\nDate: %s\r\nETag: %s\r\n"
                     "Last-Modified: %s\r\n%s%s\r\n",
                     swoop__http_date(), etag, modified, z.vary ? "Vary: Accept-Encoding\r\n" : "",
                     conn);
    else if (range < 0)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 416 Range Not Satisfiable\r\nServer: swoop\r\nDate: %s\r\n"
                     "Content-Range: bytes */%lld\r\nContent-Length: 0\r\n%s\r\n",
                     swoop__http_date(), (long long)st.st_size, conn);
    else if (range > 0)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 206 Partial Content\r\nServer: swoop\r\nDate: %s\r\n"
                     "Content-Type: %s\r\nContent-Range: bytes %llu-%llu/%lld\r\n"
                     "Content-Length: %llu\r\nETag: %s\r\nLast-Modified: %s\r\n%s\r\n",
                     swoop__http_date(), swoop__http_mime_type(path), (unsigned long long)from,
                     (unsigned long long)(from + count - 1), (long long)st.st_size,
                     (unsigned long long)count, etag, modified, conn);
    else
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nServer: swoop\r\nDate: %s\r\nContent-Type: %s\r\n"
                     "%sContent-Length: %llu\r\nAccept-Ranges: bytes\r\nETag: %s\r\n"
                     "Last-Modified: %s\r\n%s\r\n",
                     swoop__http_date(), swoop__http_mime_type(path), swoop__http_static_fields(&z),
                     (unsigned long long)count, etag, modified, conn);
    if (range < 0)
        count = 0;
    swoop__http_count(c->reactor->cnt, status, 0);
    if (p->access_fd >= 0) {
        int body = !not_modified && !head_only && range >= 0;
        swoop_http_access_t a = {.method = req + hd->method.off,
                                 .method_len = hd->method.len,
                                 .target = req + hd->target.off,
                                 .target_len = hd->target.len,
                                 .version_minor = hd->version_minor,
                                 .status = status,
                                 .bytes = (uint64_t)n + (body ? count : 0)};
        a.referer = field(hd, req, "Referer", &a.referer_len);
        a.user_agent = field(hd, req, "User-Agent", &a.user_agent_len);
        swoop__http_access(p->access_fd, c->sess ? &c->sess->peer : NULL, &a);
    }
    int rc = swoop__conn_send(c, head, (size_t)n, 0);
    if (z.on_the_fly) {
        if (rc == 0 && !not_modified && !head_only)
            rc = swoop__conn_send(c, swoop__buf_rdata(&z.body), count, 0);
        swoop__buf_free(&z.body);
        close(fd);
        return rc < 0 ? -1 : 1;
    }
    if (rc == 0 && !not_modified && !head_only && count > 0)
        return swoop__conn_sendfile(c, fd, (off_t)from, (size_t)count) < 0 ? -1 : 1; /* takes fd */
    close(fd);
    return rc < 0 ? -1 : 1;
}
