/*
 * Response compression (zlib): which responses are compressed, and the
 * deflate work. The decision is nginx's gzip module's and Swoole's
 * http_compression, per port: a listed Content-Type (http_compression_types),
 * a body of at least http_compression_min_length bytes (a streamed body,
 * whose length is not known, always qualifies), a status with a body other
 * than 206, no Content-Encoding chosen by the handler, and a coding the
 * client accepts (proto/http_codings.c). Such a response carries
 * "Vary: Accept-Encoding" whether or not this client got it compressed, so
 * a cache keeps the variants apart; a strong ETag becomes weak (W/) when
 * the bytes are compressed, as nginx does: the compressed bytes are another
 * representation and a level change would give other bytes.
 *
 * gzip is RFC 1952 (zlib windowBits 15 + 16), deflate is the "zlib" format
 * of RFC 1950 that HTTP's "deflate" names (RFC 9110 8.4.1.2), not a raw
 * deflate stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/buf.h"
#include "base/ratelimit.h"
#include "http/internal.h"

struct swoop_http_zstream_s {
    z_stream zs;
    int coding;
    int level;
};

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size != 0 && items > SIZE_MAX / size)
        return Z_NULL;
    return swoop_try_malloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    swoop_free(p);
}

static int z_init(swoop_http_zstream_t *z, int coding, int level)
{
    memset(&z->zs, 0, sizeof(z->zs));
    z->zs.zalloc = z_alloc;
    z->zs.zfree = z_free;
    z->coding = coding;
    z->level = level;
    int bits = coding == SWOOP_HTTP_CODING_GZIP ? 15 + 16 : 15;
    int rc = deflateInit2(&z->zs, level, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) {
        swoop__log_limited(SWOOP_LOG_ERROR, rc == Z_MEM_ERROR ? ENOMEM : 0,
                           "http: deflateInit2(level %d) failed: %d", level, rc);
        return rc == Z_MEM_ERROR ? SWOOP_ENOMEM : SWOOP_EINVAL;
    }
    return 0;
}

int swoop__http_zstream_new(swoop_http_zstream_t **out, int coding, int level)
{
    swoop_http_zstream_t *z = swoop_try_malloc(sizeof(*z));
    if (z == NULL)
        return SWOOP_ENOMEM;
    int rc = z_init(z, coding, level);
    if (rc < 0) {
        swoop_free(z);
        return rc;
    }
    *out = z;
    return 0;
}

void swoop__http_zstream_free(swoop_http_zstream_t *z)
{
    if (z == NULL)
        return;
    deflateEnd(&z->zs);
    swoop_free(z);
}

/*
 * Deflates in[0, len) into out (appended). finish: Z_FINISH (the stream's
 * end); else Z_SYNC_FLUSH, so every byte given so far reaches the client
 * now (a streamed response is not held back by the compressor; it costs 4
 * to 5 bytes per flush).
 */
int swoop__http_zstream_push(swoop_http_zstream_t *z, const void *in, size_t len, int finish,
                             swoop_buf_t *out)
{
    z->zs.next_in = (Bytef *)(uintptr_t)in;
    /* zlib counts in uInt: a larger piece goes in several rounds. */
    size_t left = len;
    int flush = finish ? Z_FINISH : Z_SYNC_FLUSH;
    for (int rounds = 0;; rounds++) {
        uInt take = left > (1u << 30) ? (1u << 30) : (uInt)left;
        z->zs.avail_in = take;
        size_t room = deflateBound(&z->zs, take) + 16;
        if (swoop__buf_reserve(out, room) < 0)
            return SWOOP_ENOMEM;
        z->zs.next_out = (Bytef *)swoop__buf_wdata(out);
        z->zs.avail_out =
            (uInt)(swoop__buf_wlen(out) > (1u << 30) ? (1u << 30) : swoop__buf_wlen(out));
        uInt before = z->zs.avail_out;
        int rc = deflate(&z->zs, left - take == 0 ? flush : Z_NO_FLUSH);
        swoop__buf_commit(out, before - z->zs.avail_out);
        left -= take - z->zs.avail_in;
        if (rc == Z_STREAM_END)
            return 0;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            swoop__log_limited(SWOOP_LOG_ERROR, 0, "http: deflate() failed: %d", rc);
            return SWOOP_EINVAL;
        }
        /* A flush is done when the input is used up and zlib had room to spare. */
        if (left == 0 && z->zs.avail_in == 0 && z->zs.avail_out > 0 && !finish)
            return 0;
        if (rounds > 1000000) {
            swoop__log_limited(SWOOP_LOG_ERROR, 0, "http: deflate() makes no progress");
            return SWOOP_EINVAL;
        }
    }
}

/*
 * Each thread's streams for whole bodies, one per coding, reset between
 * responses: deflateInit2 allocates about 256 KiB that the allocator zeroes
 * and hands back to the kernel (madvise) when it is freed, which costs a
 * reactor thread more than compressing a small file does; deflateReset
 * costs a 64 KiB memset. A thread's streams are freed when it exits (the
 * key's destructor); a process's main thread keeps them until exit.
 */
typedef struct z_cache_s {
    swoop_http_zstream_t *s[3];
} z_cache_t;

static pthread_key_t cache_key;
static int cache_ok;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p)
{
    z_cache_t *c = p;
    for (int i = 0; i < 3; i++)
        swoop__http_zstream_free(c->s[i]);
    swoop_free(c);
}

static void cache_init(void)
{
    cache_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

static z_cache_t *cache_get(void)
{
    pthread_once(&cache_once, cache_init);
    if (!cache_ok)
        return NULL;
    z_cache_t *c = pthread_getspecific(cache_key);
    if (c == NULL && (c = swoop_try_malloc(sizeof(*c))) != NULL) {
        memset(c, 0, sizeof(*c));
        if (pthread_setspecific(cache_key, c) != 0) {
            swoop_free(c);
            c = NULL;
        }
    }
    return c;
}

int swoop__http_deflate_once(int coding, int level, const void *in, size_t len, swoop_buf_t *out)
{
    z_cache_t *c = cache_get();
    swoop_http_zstream_t *z = c ? c->s[coding] : NULL;
    int rc;
    if (z && z->level == level) {
        deflateReset(&z->zs);
    } else {
        if (z) {
            swoop__http_zstream_free(z);
            c->s[coding] = NULL;
        }
        if ((rc = swoop__http_zstream_new(&z, coding, level)) < 0)
            return rc;
        if (c)
            c->s[coding] = z;
    }
    rc = swoop__http_zstream_push(z, in, len, 1, out);
    if (c == NULL)
        swoop__http_zstream_free(z);
    return rc;
}

/* ---- which responses ---- */

/* The media type of a Content-Type value ("text/html; charset=utf-8" → "text/html"). */
static size_t media_type(const char *ct, size_t len, const char **start)
{
    while (len && (*ct == ' ' || *ct == '\t')) {
        ct++;
        len--;
    }
    size_t n = 0;
    while (n < len && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t')
        n++;
    *start = ct;
    return n;
}

int swoop__http_type_listed(const char *types, const char *ct, size_t ct_len)
{
    const char *mt;
    size_t ml = media_type(ct, ct_len, &mt);
    if (ml == 0)
        return 0;
    const char *slash = memchr(mt, '/', ml);
    const char *p = types;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = 0;
        while (p[n] && p[n] != ',' && p[n] != ' ' && p[n] != '\t')
            n++;
        if (n == 1 && p[0] == '*')
            return 1;
        if (n >= 2 && p[n - 1] == '*' && p[n - 2] == '/') {
            /* A subtype "*" ("text" then "/" and "*"): the type and its slash match. */
            if (slash && (size_t)(slash - mt) + 1 == n - 1 && strncasecmp(mt, p, n - 1) == 0)
                return 1;
        } else if (n == ml && n > 0 && strncasecmp(mt, p, n) == 0) {
            return 1;
        }
        p += n;
    }
    return 0;
}

/* The value of field `name` in serialized fields ("Name: value\r\n"), its length in *vlen. */
static const char *field_find(const swoop_buf_t *b, const char *name, size_t *vlen)
{
    const char *p = swoop__buf_rdata(b);
    size_t len = swoop__buf_rlen(b), nl = strlen(name), off = 0;
    while (off < len) {
        const char *eol = memchr(p + off, '\n', len - off);
        size_t line = eol ? (size_t)(eol - (p + off)) + 1 : len - off;
        if (line > nl + 1 && p[off + nl] == ':' && strncasecmp(p + off, name, nl) == 0) {
            const char *v = p + off + nl + 1;
            size_t vl = line - nl - 1;
            while (vl && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl && (v[vl - 1] == '\n' || v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            *vlen = vl;
            return v;
        }
        off += line;
    }
    return NULL;
}

static int field_append(swoop_buf_t *b, const char *name, const char *v1, size_t l1, const char *v2)
{
    size_t nl = strlen(name), l2 = strlen(v2);
    if (swoop__buf_reserve(b, nl + l1 + l2 + 4) < 0)
        return SWOOP_ENOMEM;
    swoop__buf_append(b, name, nl);
    swoop__buf_append(b, ": ", 2);
    swoop__buf_append(b, v1, l1);
    swoop__buf_append(b, v2, l2);
    swoop__buf_append(b, "\r\n", 2);
    return 0;
}

/* Vary gets Accept-Encoding: added, or appended to the handler's own list. */
static int vary_add(swoop_buf_t *fields)
{
    size_t vl;
    const char *v = field_find(fields, "Vary", &vl);
    if (v == NULL)
        return field_append(fields, "Vary", "", 0, "Accept-Encoding");
    for (size_t i = 0; i + 15 <= vl; i++) {
        if (strncasecmp(v + i, "accept-encoding", 15) == 0)
            return 0;
    }
    if (vl == 1 && v[0] == '*')
        return 0; /* varies on everything already */
    char old[512];
    if (vl >= sizeof(old))
        return 0; /* a list that long is left alone */
    memcpy(old, v, vl);
    swoop__http_field_remove(fields, "Vary", 4);
    return field_append(fields, "Vary", old, vl, ", Accept-Encoding");
}

/* A strong ETag becomes weak: W/"x" names the compressed bytes, which are not the same. */
static int etag_weaken(swoop_buf_t *fields)
{
    size_t vl;
    const char *v = field_find(fields, "ETag", &vl);
    if (v == NULL || vl == 0 || v[0] != '"')
        return 0;
    char old[512];
    if (vl >= sizeof(old))
        return 0;
    memcpy(old, v, vl);
    old[vl] = '\0';
    swoop__http_field_remove(fields, "ETag", 4);
    return field_append(fields, "ETag", "W/", 2, old);
}

int swoop__http_compress_decide(const swoop_port_settings_t *ps, int accept, int status,
                                int64_t len, swoop_buf_t *fields)
{
    if (!ps->http_compression || status == 206 || status == 204 || status < 200)
        return 0;
    size_t cl;
    const char *ct = field_find(fields, "Content-Type", &cl);
    size_t el;
    if (ct == NULL || field_find(fields, "Content-Encoding", &el) != NULL ||
        !swoop__http_type_listed(ps->http_compression_types, ct, cl))
        return 0;
    if (len >= 0 && len < ps->http_compression_min_length && status != 304)
        return 0;
    /*
     * The representation depends on Accept-Encoding from here on: a 304
     * carries the Vary its 200 would (RFC 9110 15.4.5), a client that did
     * not accept compression gets it too, so caches keep the variants apart.
     */
    if (vary_add(fields) < 0)
        return SWOOP_ENOMEM;
    if (status == 304 || accept == SWOOP_HTTP_CODING_IDENTITY)
        return 0;
    if (etag_weaken(fields) < 0 ||
        field_append(fields, "Content-Encoding", "", 0, swoop__http_coding_name(accept)) < 0)
        return SWOOP_ENOMEM;
    return accept;
}

int swoop__http_accept_of_head(const swoop_http_head_t *hd, const char *req, int allowed)
{
    swoop_http_codings_t acc;
    swoop__http_codings_init(&acc);
    for (uint32_t i = 0; i < hd->num_headers; i++) {
        const swoop_http_header_t *f = &hd->headers[i];
        if (f->name.len == 15 && strncasecmp(req + f->name.off, "Accept-Encoding", 15) == 0)
            swoop__http_codings_parse(&acc, req + f->value.off, f->value.len);
    }
    return swoop__http_codings_pick(&acc, allowed);
}

/* ---- static files (the connection owner) ---- */

/*
 * The on-the-fly bound: the owner is a reactor thread serving many
 * connections, so one request may cost it at most this many bytes of
 * deflate (about 1-2 ms at level 1); larger files go as they are (or as
 * their precompressed FILE.gz).
 */
#define STATIC_Z_MAX (256u * 1024)

/* Opens the precompressed sibling of the file at fd: "<real path>.gz", regular, not older. */
static int gz_sibling(int fd, const struct stat *st, struct stat *gst)
{
    char link[64], real[PATH_MAX + 4];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, real, PATH_MAX);
    if (n <= 0 || n >= PATH_MAX || (n > 3 && memcmp(real + n - 3, ".gz", 3) == 0))
        return -1;
    memcpy(real + n, ".gz", 4);
    /* The file itself is under the root; its sibling must not lead out of it by a link. */
    int gfd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (gfd < 0)
        return -1;
    if (fstat(gfd, gst) < 0 || !S_ISREG(gst->st_mode) || gst->st_mtim.tv_sec < st->st_mtim.tv_sec ||
        (gst->st_mtim.tv_sec == st->st_mtim.tv_sec && gst->st_mtim.tv_nsec < st->st_mtim.tv_nsec)) {
        close(gfd);
        return -1;
    }
    return gfd;
}

int swoop__http_static_coding(const swoop_port_settings_t *ps, const swoop_http_head_t *hd,
                              const char *req, const char *type, int *fd, struct stat *st,
                              swoop_http_static_z_t *z)
{
    memset(z, 0, sizeof(*z));
    z->etag_prefix = "";
    swoop__buf_init(&z->body);
    if (!ps->http_compression)
        return 0;
    /* A Range names bytes of the identity representation: no compression of a 206. */
    for (uint32_t i = 0; i < hd->num_headers; i++) {
        const swoop_http_header_t *f = &hd->headers[i];
        if (f->name.len == 5 && strncasecmp(req + f->name.off, "Range", 5) == 0)
            return 0;
    }
    struct stat gst;
    int gfd = gz_sibling(*fd, st, &gst);
    if (gfd >= 0) {
        /* nginx's gzip_static: served whatever the type, with its own ETag and length. */
        z->vary = 1;
        if (swoop__http_accept_of_head(hd, req, SWOOP_HTTP_CODING_GZIP) != SWOOP_HTTP_CODING_GZIP) {
            close(gfd);
            return 0;
        }
        close(*fd);
        *fd = gfd;
        *st = gst;
        z->coding = SWOOP_HTTP_CODING_GZIP;
        return 0;
    }
    size_t tl = strlen(type);
    if (!swoop__http_type_listed(ps->http_compression_types, type, tl) ||
        st->st_size < ps->http_compression_min_length || (uint64_t)st->st_size > STATIC_Z_MAX)
        return 0;
    z->vary = 1;
    z->coding =
        swoop__http_accept_of_head(hd, req, SWOOP_HTTP_CODING_GZIP | SWOOP_HTTP_CODING_DEFLATE);
    if (z->coding) {
        z->on_the_fly = 1;
        z->level = ps->http_compression_level;
        z->etag_prefix = "W/";
    }
    return 0;
}

int swoop__http_static_deflate(swoop_http_static_z_t *z, int fd, size_t size)
{
    char *raw = swoop_try_malloc(size ? size : 1);
    if (raw == NULL)
        return SWOOP_ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, raw + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : 0;
            swoop__log_limited(SWOOP_LOG_ERROR, err,
                               "http: reading a static file to compress failed (%zu of %zu bytes)",
                               got, size);
            swoop_free(raw);
            return n < 0 ? -err : SWOOP_EINVAL;
        }
        got += (size_t)n;
    }
    int rc = swoop__http_deflate_once(z->coding, z->level, raw, size, &z->body);
    swoop_free(raw);
    return rc;
}

const char *swoop__http_static_fields(const swoop_http_static_z_t *z)
{
    if (z->coding == SWOOP_HTTP_CODING_GZIP)
        return z->vary ? "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
                       : "Content-Encoding: gzip\r\n";
    if (z->coding == SWOOP_HTTP_CODING_DEFLATE)
        return "Content-Encoding: deflate\r\nVary: Accept-Encoding\r\n";
    return z->vary ? "Vary: Accept-Encoding\r\n" : "";
}
