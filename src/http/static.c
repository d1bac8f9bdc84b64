/*
 * Static files, served by the connection owner before any handler
 * (enable_static_handler, document_root): GET and HEAD of a regular file
 * under the root, with Content-Type from /etc/mime.types (Debian
 * media-types; a short built-in table without it), a strong ETag and
 * Last-Modified, 304 for If-None-Match / If-Modified-Since, Range (one
 * range, or several as multipart/byteranges; If-Range), and the body by
 * sendfile behind the head. The decoded path is normalised by its text (no
 * ".." reaches the file system) and, unless static_follow_symlinks, its
 * realpath() must stay under the root's own. A directory serves its first
 * http_index_files entry, else a listing (http_autoindex); without its
 * trailing slash it is redirected. static_handler_locations limits all of
 * this to some path prefixes. A request that is not for such a file goes
 * on to the handler (inside a location: 404 here).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
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

/*
 * Removes empty and "." segments and applies ".." in place, by the text
 * alone: "/a/./b//../c" becomes "/a/c", so no ".." ever reaches the file
 * system (where, after a symlink, it would climb from the link's target).
 * *slash: the path ended in '/' (a directory asked for as one). Returns -1
 * for a path that does not start with '/' or whose ".." climbs above the root.
 */
static int path_normalise(char *path, int *slash)
{
    size_t len = strlen(path), o = 0, i = 0;
    if (len == 0 || path[0] != '/')
        return -1;
    *slash = path[len - 1] == '/';
    while (i < len) {
        while (i < len && path[i] == '/')
            i++;
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        size_t n = i - start;
        if (n == 0 || (n == 1 && path[start] == '.'))
            continue;
        if (n == 2 && path[start] == '.' && path[start + 1] == '.') {
            if (o == 0)
                return -1;
            while (path[o - 1] != '/')
                o--;
            o--;
            continue;
        }
        /* The output never overtakes the input: each kept segment had a '/' before it. */
        path[o++] = '/';
        memmove(path + o, path + start, n);
        o += n;
    }
    if (o == 0)
        path[o++] = '/';
    path[o] = '\0';
    return 0;
}

/*
 * static_handler_locations: "/static,/assets" (blanks and a trailing '/'
 * ignored) names the path prefixes the static handler takes, at a segment
 * boundary ("/static" takes "/static/a.css", not "/statics").
 */
static int location_match(const char *list, const char *path)
{
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '/'))
            n--;
        if (e > p && (n == 0 || (strncmp(path, p, n) == 0 && (path[n] == '\0' || path[n] == '/'))))
            return 1;
        p = e;
    }
    return 0;
}

/*
 * The normalised request path rel under the root: out gets the path to
 * open, st its stat. Without static_follow_symlinks that is its realpath,
 * which must lie under the root's own: a symlink that leads outside fails
 * here. With it, the path as named (symlinks followed wherever they go;
 * ".." was taken out before). Returns 0, or -1 when there is no such entry.
 */
static int resolve(const swoop_port_t *p, const char *rel, char *out, struct stat *st)
{
    const char *root = p->static_root;
    size_t rl = strlen(root);
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof(full), "%s%s", root, strcmp(rel, "/") == 0 ? "" : rel) >=
        sizeof(full))
        return -1;
    if (p->eff.static_follow_symlinks) {
        if (stat(full, st) < 0)
            return -1;
        strcpy(out, full);
        return 0;
    }
    if (realpath(full, out) == NULL)
        return -1;
    /* Under the root, at a component boundary: "/srv/www2" is not under "/srv/www". */
    if (rl > 1 && (strncmp(out, root, rl) != 0 || (out[rl] != '/' && out[rl] != '\0')))
        return -1;
    return stat(out, st) < 0 ? -1 : 0;
}

/* A directory's first index file (http_index_files) that is a regular file: 1 (out set), or 0. */
static int find_index(const swoop_port_t *p, const char *dir, char *out, char *rel, size_t cap)
{
    const char *list = p->eff.http_index_files;
    size_t dl = strlen(dir);
    for (const char *q = list; *q;) {
        while (*q == ',' || *q == ' ')
            q++;
        const char *e = q;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - q);
        while (n > 0 && q[n - 1] == ' ')
            n--;
        struct stat st;
        if (n > 0 &&
            (size_t)snprintf(rel, cap, "%s%s%.*s", dir, dir[dl - 1] == '/' ? "" : "/", (int)n, q) <
                cap &&
            resolve(p, rel, out, &st) == 0 && S_ISREG(st.st_mode))
            return 1;
        q = e;
    }
    return 0;
}

/* ---- Range ---- */

/* More ranges than this in one request get the whole file (RFC 9110 14.2: a denial-of-service). */
#define RANGES_MAX 16

typedef struct range_s {
    uint64_t from, count;
} range_t;

/* Decimal digits at *p (at least one), saturating at UINT64_MAX; 0, or -1 for no digit. */
static int digits(const char **p, const char *end, uint64_t *out)
{
    if (*p >= end || **p < '0' || **p > '9')
        return -1;
    uint64_t n = 0;
    for (; *p < end && **p >= '0' && **p <= '9'; (*p)++) {
        unsigned d = (unsigned)(**p - '0');
        n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
    }
    *out = n;
    return 0;
}

/*
 * Range (RFC 9110 14): "bytes=" and a list of "a-b", "a-" or "-n" of a file
 * of `size` bytes. Returns the number of satisfiable ranges, each in r[]
 * (206: one as itself, several as multipart/byteranges in the order asked),
 * -1 when none can be satisfied (416), 0 to send the whole file (200):
 * no Range, an If-Range that does not match, a unit or syntax we do not
 * serve, more than RANGES_MAX ranges, or ranges that overlap (RFC 9110
 * 15.3.7: a client asking for the same bytes again and again is answered
 * once; the whole file is never more than it).
 */
static int ranges_of(const swoop_http_head_t *hd, const char *req, const char *etag,
                     const char *modified, uint64_t size, range_t *r)
{
    size_t vl;
    const char *v = field(hd, req, "Range", &vl);
    if (v == NULL || vl < 6 || strncasecmp(v, "bytes=", 6) != 0)
        return 0;
    size_t il;
    const char *ifr = field(hd, req, "If-Range", &il);
    if (ifr && !((il == strlen(etag) && memcmp(ifr, etag, il) == 0) ||
                 (il == strlen(modified) && memcmp(ifr, modified, il) == 0)))
        return 0;
    const char *p = v + 6, *end = v + vl;
    int n = 0, specs = 0;
    for (;;) {
        /* Empty list elements are allowed (RFC 9110 5.6.1): ", ,0-1". */
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end)
            break;
        if (++specs > RANGES_MAX)
            return 0;
        uint64_t a = 0, b = UINT64_MAX;
        int suffix = *p == '-';
        if (suffix) {
            p++;
            if (digits(&p, end, &b) < 0)
                return 0;
        } else {
            if (digits(&p, end, &a) < 0 || p == end || *p != '-')
                return 0;
            p++;
            if (p < end && *p >= '0' && *p <= '9' && (digits(&p, end, &b) < 0 || b < a))
                return 0;
        }
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p != ',')
            return 0;
        /* One that cannot be satisfied is dropped; the others are still served (14.1.1). */
        if (suffix) {
            if (b == 0 || size == 0)
                continue;
            r[n].count = b < size ? b : size;
            r[n].from = size - r[n].count;
        } else {
            if (a >= size)
                continue;
            r[n].from = a;
            r[n].count = (b >= size ? size - 1 : b) - a + 1;
        }
        n++;
    }
    if (specs == 0)
        return 0;
    if (n == 0)
        return -1;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (r[i].from < r[j].from + r[j].count && r[j].from < r[i].from + r[i].count)
                return 0;
    return n;
}

/* ---- responses ---- */

static const char *conn_field(const swoop_http_head_t *hd, int keep_alive)
{
    return keep_alive ? (hd->version_minor == 0 ? "Connection: keep-alive\r\n" : "")
                      : "Connection: close\r\n";
}

/*
 * A static response's start: the owner taking the request
 * (swoop__http_static); its latency and access log duration run to the
 * response queued. Kept per thread (the owners of PROCESS are reactor
 * threads) rather than passed through every answer path; 0 without metrics
 * and access log.
 */
static _Thread_local uint32_t static_start_us;

/*
 * The request latency histogram of a response the owner gives itself: a
 * reactor thread's own block (PROCESS), the worker's (BASE: the worker is
 * the owner). One writer each, as for the worker's responses.
 */
static void observe_owner(swoop_conn_t *c, int status)
{
    swoop_server_t *srv = c->reactor->srv;
    swoop_srv_shared_t *gs = srv->gs;
    int cls = status / 100 - 1, p = c->port->index;
    if (!gs->metrics_on || static_start_us == 0 || cls < 0 || cls >= SWOOP_METRICS_CLASSES ||
        p >= gs->metric_ports)
        return;
    swoop_srv_hist_t *h;
    if (srv->mode == SWOOP_MODE_PROCESS && c->reactor->id >= 0 && c->reactor->id < gs->reactor_num)
        h = swoop__hist_owner(gs, c->reactor->id, p, cls);
    else if (srv->mode == SWOOP_MODE_BASE && srv->worker_id >= 0 && srv->worker_id < gs->worker_num)
        h = swoop__hist_latency(gs, srv->worker_id, p, cls);
    else
        return;
    uint32_t us = swoop__http_us32() - static_start_us;
    swoop__hist_observe(h, (uint64_t)us * 1000u);
}

/* Counts a response of `status` and writes its access log line (`bytes`: head and body). */
static void account(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req, int status,
                    uint64_t bytes)
{
    swoop__http_count(c->reactor->cnt, status, 0);
    observe_owner(c, status);
    if (c->port->access_fd < 0)
        return;
    swoop_http_access_t a = {.method = req + hd->method.off,
                             .method_len = hd->method.len,
                             .target = req + hd->target.off,
                             .target_len = hd->target.len,
                             .version_minor = hd->version_minor,
                             .status = status,
                             .bytes = bytes,
                             .duration_us = -1};
    if (static_start_us)
        a.duration_us = (int64_t)(uint32_t)(swoop__http_us32() - static_start_us);
    a.referer = field(hd, req, "Referer", &a.referer_len);
    a.user_agent = field(hd, req, "User-Agent", &a.user_agent_len);
    swoop__http_access(c->port->access_fd, c->port->eff.http_access_log_format,
                       c->sess ? &c->sess->peer : NULL, &a);
}

/*
 * Queues bytes of a response; `more`: a file follows at once (the head and
 * the file's first bytes leave in one segment). A failure ends c: -1.
 */
static int out(swoop_conn_t *c, const void *data, size_t len, int more)
{
    int rc = more ? swoop__conn_send_more(c, data, len) : swoop__conn_send(c, data, len, 0);
    if (rc < 0) {
        swoop__log_limited(SWOOP_LOG_WARNING, rc, "http: conn %llu: static response not queued",
                           (unsigned long long)c->id);
        swoop__conn_close(c, 1);
        return -1;
    }
    return 0;
}

/* A small response of its own (301, 404): the head, then `body` unless HEAD. */
static int answer(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req, int keep_alive,
                  int head_only, int status, const char *fields, const char *body)
{
    size_t bl = strlen(body), fl = strlen(fields);
    swoop_buf_t b;
    swoop__buf_init(&b);
    if (swoop__buf_reserve(&b, fl + bl + 512) < 0) {
        swoop__conn_close(c, 1);
        return -1;
    }
    int n = snprintf(swoop__buf_wdata(&b), swoop__buf_wlen(&b),
                     "HTTP/1.1 %d %s\r\n%s%sContent-Length: %zu\r\n%s"
                     "\r\n%s",
                     status, swoop__http_reason(status), swoop__http_server_date(&c->port->eff),
                     fields, bl, conn_field(hd, keep_alive), head_only ? "" : body);
    swoop__buf_commit(&b, (size_t)n);
    account(c, hd, req, status, (uint64_t)n);
    int rc = out(c, swoop__buf_rdata(&b), swoop__buf_rlen(&b), 0);
    swoop__buf_free(&b);
    return rc < 0 ? -1 : 1;
}

/* A directory asked for without its '/': 301 to the slash form, query kept (as nginx). */
static int redirect(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req, int keep_alive,
                    int head_only)
{
    size_t cap = hd->path.len + hd->query.len + 64;
    char *f = swoop_try_malloc(cap);
    if (f == NULL) {
        swoop__conn_close(c, 1);
        return -1;
    }
    /* The path as the client wrote it (still encoded): the browser resolves the rest. */
    snprintf(f, cap, "Location: %.*s/%s%.*s\r\n", (int)hd->path.len, req + hd->path.off,
             hd->has_query ? "?" : "", (int)hd->query.len, req + hd->query.off);
    int rc = answer(c, hd, req, keep_alive, head_only, 301, f, "");
    swoop_free(f);
    return rc;
}

static void boundary_make(char *out, size_t cap)
{
    uint64_t x[2] = {0, 0};
    if (getrandom(x, sizeof(x), GRND_NONBLOCK) != (ssize_t)sizeof(x)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
        x[1] = (uint64_t)(uintptr_t)out ^ (uint64_t)getpid();
    }
    snprintf(out, cap, "swoop%016llx%08x", (unsigned long long)x[0], (unsigned)x[1]);
}

/*
 * A multipart/byteranges 206 (RFC 9110 14.6): the length is known before
 * the first byte, each part's small head goes as a buffer between the
 * file's pieces, each piece by sendfile from its own dup of fd (takes fd).
 */
static int serve_multi(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req,
                       int keep_alive, int head_only, int fd, const range_t *r, int n,
                       uint64_t size, const char *type, const char *etag, const char *modified)
{
    char bnd[40], parts[RANGES_MAX][256], tail[64], head[1024];
    boundary_make(bnd, sizeof(bnd));
    size_t plen[RANGES_MAX];
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        int k =
            snprintf(parts[i], sizeof(parts[i]),
                     "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes %llu-%llu/%llu\r\n\r\n",
                     i ? "\r\n" : "", bnd, type, (unsigned long long)r[i].from,
                     (unsigned long long)(r[i].from + r[i].count - 1), (unsigned long long)size);
        plen[i] = (size_t)k;
        total += (uint64_t)k + r[i].count;
    }
    int tl = snprintf(tail, sizeof(tail), "\r\n--%s--\r\n", bnd);
    total += (uint64_t)tl;
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 206 Partial Content\r\n%s"
                      "Content-Type: multipart/byteranges; boundary=%s\r\nContent-Length: %llu\r\n"
                      "ETag: %s\r\nLast-Modified: %s\r\n%s\r\n",
                      swoop__http_server_date(&c->port->eff), bnd, (unsigned long long)total, etag,
                      modified, conn_field(hd, keep_alive));
    account(c, hd, req, 206, (uint64_t)hl + (head_only ? 0 : total));
    if (out(c, head, (size_t)hl, !head_only) < 0 || head_only) {
        close(fd);
        return head_only && c->state == CONN_OPEN ? 1 : -1;
    }
    for (int i = 0; i < n; i++) {
        if (out(c, parts[i], plen[i], 1) < 0) {
            close(fd);
            return -1;
        }
        int part = i + 1 < n ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : fd;
        if (part < 0) {
            swoop__log_limited(SWOOP_LOG_ERROR, errno, "http: conn %llu: dup of a static file's fd",
                               (unsigned long long)c->id);
            close(fd);
            swoop__conn_close(c, 1);
            return -1;
        }
        if (swoop__conn_sendfile(c, part, (off_t)r[i].from, (size_t)r[i].count) < 0) {
            if (part != fd)
                close(fd); /* the part's own fd went with the call */
            return -1;
        }
    }
    return out(c, tail, (size_t)tl, 0) < 0 ? -1 : 1;
}

/*
 * The regular file at fd (stat st) as asked: 304, 416, 206 or 200, its
 * Content-Type from `name`'s extension. Takes fd.
 */
static int serve_file(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req, int keep_alive,
                      int head_only, int fd, const struct stat *file_st, const char *name)
{
    const char *type = swoop__http_mime_type(name);
    /* Compression (compress.c): FILE.gz in its place, or the file compressed on the fly. */
    struct stat st_copy = *file_st;
    const struct stat *st = &st_copy;
    swoop_http_static_z_t z;
    swoop__http_static_coding(&c->port->eff, hd, req, type, &fd, &st_copy, &z);
    char etag[64], modified[40], head[1024];
    snprintf(etag, sizeof(etag), "%s\"%llx-%llx\"", z.etag_prefix, (unsigned long long)st->st_size,
             (unsigned long long)st->st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st->st_mtim.tv_nsec);
    struct tm tm;
    gmtime_r(&st->st_mtim.tv_sec, &tm);
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
            not_modified = end && *end == '\0' && timegm(&t) >= st->st_mtim.tv_sec;
        }
    }
    uint64_t size = (uint64_t)st->st_size, from = 0, count = size;
    range_t r[RANGES_MAX];
    /* A compressed representation is never cut in ranges: FILE.gz goes whole, with its coding. */
    int range = not_modified || z.coding ? 0 : ranges_of(hd, req, etag, modified, size, r);
    if (!not_modified && z.on_the_fly) {
        if (swoop__http_static_deflate(&z, fd, (size_t)size) < 0) {
            close(fd);
            swoop__buf_free(&z.body);
            return 0; /* not answered here: the handler gets the request */
        }
        count = swoop__buf_rlen(&z.body);
    }
    if (range > 1)
        return serve_multi(c, hd, req, keep_alive, head_only, fd, r, range, size, type, etag,
                           modified);
    if (range == 1) {
        from = r[0].from;
        count = r[0].count;
    }
    int status = not_modified ? 304 : range > 0 ? 206 : range < 0 ? 416 : 200;
    const char *conn = conn_field(hd, keep_alive);
    int n;
    if (not_modified)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 304 Not Modified\r\n%sETag: %s\r\n"
                     "Last-Modified: %s\r\n%s%s\r\n",
                     swoop__http_server_date(&c->port->eff), etag, modified,
                     z.vary ? "Vary: Accept-Encoding\r\n" : "", conn);
    else if (range < 0)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 416 Range Not Satisfiable\r\n%s"
                     "Content-Range: bytes */%llu\r\nContent-Length: 0\r\n%s\r\n",
                     swoop__http_server_date(&c->port->eff), (unsigned long long)size, conn);
    else if (range > 0)
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 206 Partial Content\r\n%s"
                     "Content-Type: %s\r\nContent-Range: bytes %llu-%llu/%llu\r\n"
                     "Content-Length: %llu\r\nETag: %s\r\nLast-Modified: %s\r\n%s\r\n",
                     swoop__http_server_date(&c->port->eff), type, (unsigned long long)from,
                     (unsigned long long)(from + count - 1), (unsigned long long)size,
                     (unsigned long long)count, etag, modified, conn);
    else
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\n%sContent-Type: %s\r\n"
                     "%sContent-Length: %llu\r\nAccept-Ranges: bytes\r\nETag: %s\r\n"
                     "Last-Modified: %s\r\n%s\r\n",
                     swoop__http_server_date(&c->port->eff), type, swoop__http_static_fields(&z),
                     (unsigned long long)count, etag, modified, conn);
    int body = !not_modified && !head_only && range >= 0 && count > 0;
    account(c, hd, req, status, (uint64_t)n + (body ? count : 0));
    if (out(c, head, (size_t)n, body) < 0) {
        swoop__buf_free(&z.body);
        close(fd);
        return -1;
    }
    if (z.on_the_fly) {
        int rc = body ? out(c, swoop__buf_rdata(&z.body), (size_t)count, 0) : 0;
        swoop__buf_free(&z.body);
        close(fd);
        return rc < 0 ? -1 : 1;
    }
    if (body)
        return swoop__conn_sendfile(c, fd, (off_t)from, (size_t)count) < 0 ? -1 : 1; /* takes fd */
    close(fd);
    return 1;
}

/* Opens the regular file at `real` (resolve()'s path) and serves it: 1, -1, or 0 (gone). */
static int serve_path(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req, int keep_alive,
                      int head_only, const char *real, const char *name)
{
    /* resolve() gave the realpath unless symlinks are followed: nothing there may be a link. */
    int follow = c->port->eff.static_follow_symlinks;
    int fd = open(real, O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    return serve_file(c, hd, req, keep_alive, head_only, fd, &st, name);
}

/* ---- directory listings (http_autoindex) ---- */

/* Entries one listing shows at most: its memory stays bounded in a huge directory. */
#define AUTOINDEX_MAX 4096

typedef struct entry_s {
    char *name;
    uint64_t size;
    time_t mtime;
    int dir;
} entry_t;

/* Directories first, then by name (bytes), as nginx lists them. */
static int entry_cmp(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->dir != y->dir)
        return y->dir - x->dir;
    return strcmp(x->name, y->name);
}

typedef struct html_s {
    swoop_buf_t b;
    int err;
} html_t;

static void put(html_t *h, const char *s, size_t n)
{
    if (!h->err && swoop__buf_append(&h->b, s, n) < 0)
        h->err = 1;
}

/* A string literal, its length counted by the compiler. */
#define PUT_LIT(h, lit) put((h), (lit), sizeof(lit) - 1)

static void put_html(html_t *h, const char *s)
{
    for (; *s; s++) {
        const char *e = *s == '<'    ? "&lt;"
                        : *s == '>'  ? "&gt;"
                        : *s == '&'  ? "&amp;"
                        : *s == '"'  ? "&quot;"
                        : *s == '\'' ? "&#39;"
                                     : NULL;
        put(h, e ? e : s, e ? strlen(e) : 1);
    }
}

/* A name as one path segment of a link: all but the unreserved characters as %XX. */
static void put_url(html_t *h, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            put(h, s, 1);
        } else {
            char e[4];
            snprintf(e, sizeof(e), "%%%02X", ch);
            put(h, e, 3);
        }
    }
}

/*
 * Reads the directory `real`: what it holds but hidden names (a leading
 * '.', as nginx) and, without static_follow_symlinks, links that lead out
 * of the root. At most AUTOINDEX_MAX entries (*cut set past that).
 */
static size_t read_entries(const swoop_port_t *p, const char *real, entry_t **out, int *cut)
{
    DIR *d = opendir(real);
    *out = NULL;
    *cut = 0;
    if (d == NULL)
        return 0;
    size_t n = 0, cap = 0;
    entry_t *v = NULL;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        if (n == AUTOINDEX_MAX) {
            *cut = 1;
            break;
        }
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            char full[PATH_MAX], target[PATH_MAX];
            if ((size_t)snprintf(full, sizeof(full), "%s/%s", real, e->d_name) >= sizeof(full))
                continue;
            char rel[PATH_MAX];
            size_t rl = strlen(p->static_root);
            /* The link's own path under the root, resolved as a request for it would be. */
            snprintf(rel, sizeof(rel), "%s", rl > 1 ? full + rl : full);
            if (resolve(p, rel, target, &st) < 0)
                continue;
        }
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            v = swoop_realloc(v, cap * sizeof(*v));
        }
        v[n].name = swoop_strdup(e->d_name);
        v[n].size = (uint64_t)st.st_size;
        v[n].mtime = st.st_mtim.tv_sec;
        v[n].dir = S_ISDIR(st.st_mode);
        n++;
    }
    closedir(d);
    qsort(v, n, sizeof(*v), entry_cmp);
    *out = v;
    return n;
}

/* The HTML listing of directory `real`, asked for as `path` (decoded, ends in '/'). */
static int listing(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req, int keep_alive,
                   int head_only, const char *real, const char *path)
{
    entry_t *v;
    int cut;
    size_t n = read_entries(c->port, real, &v, &cut);
    html_t h = {.err = 0};
    swoop__buf_init(&h.b);
    PUT_LIT(&h, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
    put_html(&h, path);
    PUT_LIT(&h, "</title></head>\n<body><h1>Index of ");
    put_html(&h, path);
    PUT_LIT(&h, "</h1><hr>\n<table>\n");
    if (strcmp(path, "/") != 0)
        PUT_LIT(&h, "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    for (size_t i = 0; i < n; i++) {
        char meta[96];
        struct tm tm;
        gmtime_r(&v[i].mtime, &tm);
        char when[32];
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
        PUT_LIT(&h, "<tr><td><a href=\"");
        put_url(&h, v[i].name);
        if (v[i].dir)
            PUT_LIT(&h, "/\">");
        else
            PUT_LIT(&h, "\">");
        put_html(&h, v[i].name);
        int k = snprintf(meta, sizeof(meta), "%s</a></td><td>%s</td><td align=\"right\">",
                         v[i].dir ? "/" : "", when);
        put(&h, meta, (size_t)k);
        k = v[i].dir ? snprintf(meta, sizeof(meta), "-")
                     : snprintf(meta, sizeof(meta), "%llu", (unsigned long long)v[i].size);
        put(&h, meta, (size_t)k);
        PUT_LIT(&h, "</td></tr>\n");
        swoop_free(v[i].name);
    }
    swoop_free(v);
    if (cut)
        PUT_LIT(&h, "</table><p>(listing cut: too many entries)</p>\n");
    else
        PUT_LIT(&h, "</table>\n");
    PUT_LIT(&h, "<hr></body></html>\n");
    if (h.err) {
        swoop__buf_free(&h.b);
        swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM,
                           "http: conn %llu: no memory for a listing", (unsigned long long)c->id);
        swoop__conn_close(c, 1);
        return -1;
    }
    char head[512];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\n%s"
                      "Content-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-cache\r\n%s\r\n",
                      swoop__http_server_date(&c->port->eff), swoop__buf_rlen(&h.b),
                      conn_field(hd, keep_alive));
    account(c, hd, req, 200, (uint64_t)hl + (head_only ? 0 : swoop__buf_rlen(&h.b)));
    int rc = out(c, head, (size_t)hl, 0);
    if (rc == 0 && !head_only)
        rc = out(c, swoop__buf_rdata(&h.b), swoop__buf_rlen(&h.b), 0);
    swoop__buf_free(&h.b);
    return rc < 0 ? -1 : 1;
}

/* ---- the request ---- */

/* Nothing to serve: the handler's, or inside static_handler_locations a 404 here. */
static int missing(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req, int keep_alive,
                   int head_only, int in_location)
{
    if (!in_location)
        return 0;
    return answer(c, hd, req, keep_alive, head_only, 404, "Content-Type: text/plain\r\n",
                  "404 Not Found\n");
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
    static_start_us = p->access_fd >= 0 || c->reactor->srv->gs->metrics_on ? swoop__http_us32() : 0;
    char path[PATH_MAX];
    int slash = 1;
    if (hd->path.len == 0)
        strcpy(path, "/");
    else if (path_decode(req + hd->path.off, hd->path.len, path, sizeof(path)) < 0)
        return 0;
    if (path_normalise(path, &slash) < 0)
        return 0;
    int in_location = 0;
    if (p->eff.static_handler_locations[0]) {
        if (!location_match(p->eff.static_handler_locations, path))
            return 0;
        in_location = 1;
    }
    char real[PATH_MAX];
    struct stat st;
    if (resolve(p, path, real, &st) < 0)
        return missing(c, hd, req, keep_alive, head_only, in_location);
    if (S_ISREG(st.st_mode))
        return serve_path(c, hd, req, keep_alive, head_only, real, path);
    if (!S_ISDIR(st.st_mode))
        return missing(c, hd, req, keep_alive, head_only, in_location);
    /* A directory: its index file, else its listing, each only under its '/' form. */
    char index[PATH_MAX], rel[PATH_MAX];
    int has_index = find_index(p, path, index, rel, sizeof(rel));
    if (!has_index && !p->eff.http_autoindex)
        return missing(c, hd, req, keep_alive, head_only, in_location);
    if (!slash)
        return redirect(c, hd, req, keep_alive, head_only);
    if (has_index)
        return serve_path(c, hd, req, keep_alive, head_only, index, rel);
    if (strcmp(path, "/") != 0)
        strcat(path, "/"); /* PATH_MAX holds it: resolve() took root + path */
    return listing(c, hd, req, keep_alive, head_only, real, path);
}
