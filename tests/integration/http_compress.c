/*
 * Response compression (issue 11), both modes, against curl: gzip and
 * deflate chosen by Accept-Encoding q-values, Vary, the compressed
 * Content-Length, streamed bodies (chunked for HTTP/1.1, close-delimited for
 * HTTP/1.0), HEAD, detached answers, and what is never compressed (tiny
 * bodies, unlisted types, a handler's own Content-Encoding, 206); the
 * settings and their refusals; static files (a FILE.gz sibling, on the fly,
 * Range). Bodies are decoded here with zlib's inflate, and by curl
 * --compressed.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>

#include <swoop/http.h>
#include <swoop/timer.h>

#include "server_common.h"

static swoop_server_t *the_srv;

/* A JSON-ish body that compresses well: 2000+ bytes. */
static size_t json_body(char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < 60 && n + 40 < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s{\"id\":%d,\"name\":\"item %d\"}", i ? "," : "",
                              i, i);
    n += (size_t)snprintf(out + n, cap - n, "]\n");
    return n;
}

static void respond_later(int64_t timer, void *arg)
{
    char body[4096];
    size_t n = json_body(body, sizeof(body));
    ASSERT_OK(
        swoop_http_respond(the_srv, (uint64_t)(uintptr_t)arg, 200, "application/json", body, n));
}

static void handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    the_srv = srv;
    const char *path = swoop_http_path(req);
    char body[4096];
    size_t n = json_body(body, sizeof(body));
    if (strcmp(path, "/json") == 0) {
        swoop_http_header_set(res, "Content-Type", "application/json; charset=utf-8");
        swoop_http_end(res, body, n);
    } else if (strcmp(path, "/etag") == 0) {
        swoop_http_header_set(res, "Content-Type", "text/html");
        swoop_http_header_set(res, "ETag", "\"v1\"");
        swoop_http_header_set(res, "Vary", "Cookie");
        swoop_http_end(res, body, n);
    } else if (strcmp(path, "/tiny") == 0) {
        swoop_http_header_set(res, "Content-Type", "text/plain");
        swoop_http_end(res, "tiny\n", 5);
    } else if (strcmp(path, "/png") == 0) {
        swoop_http_header_set(res, "Content-Type", "image/png");
        swoop_http_end(res, body, n);
    } else if (strcmp(path, "/untyped") == 0) {
        swoop_http_end(res, body, n);
    } else if (strcmp(path, "/encoded") == 0) {
        /* The handler's own coding: bytes and fields untouched. */
        swoop_http_header_set(res, "Content-Type", "text/plain");
        swoop_http_header_set(res, "Content-Encoding", "br");
        swoop_http_end(res, body, n);
    } else if (strcmp(path, "/partial") == 0) {
        swoop_http_status(res, 206);
        swoop_http_header_set(res, "Content-Type", "text/plain");
        char cr[64];
        snprintf(cr, sizeof(cr), "bytes 0-%zu/%zu", n - 1, n + 100);
        swoop_http_header_set(res, "Content-Range", cr);
        swoop_http_end(res, body, n);
    } else if (strcmp(path, "/nocontent") == 0) {
        swoop_http_status(res, 204);
        swoop_http_header_set(res, "Content-Type", "text/plain");
        swoop_http_end(res, NULL, 0);
    } else if (strcmp(path, "/stream") == 0) {
        swoop_http_header_set(res, "Content-Type", "text/plain");
        for (int i = 0; i < 50; i++) {
            char part[64];
            int k = snprintf(part, sizeof(part), "line %d of a streamed body\n", i);
            ASSERT_OK(swoop_http_write(res, part, (size_t)k));
        }
        ASSERT_OK(swoop_http_end(res, "end\n", 4));
    } else if (strcmp(path, "/later") == 0) {
        uint64_t id = swoop_http_detach(res);
        ASSERT_NE(id, 0u);
        ASSERT_GT(swoop_timer_after(20, respond_later, (void *)(uintptr_t)id), 0);
    } else {
        swoop_http_status(res, 404);
        swoop_http_end(res, "not found\n", 10);
    }
}

static char docroot[600];

static void setup_http(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "enable_static_handler", "1"));
    ASSERT_OK(swoop_server_set(srv, "document_root", docroot));
    const char *const *sets = arg;
    for (int i = 0; sets && sets[i]; i += 2)
        ASSERT_OK(swoop_server_set(srv, sets[i], sets[i + 1]));
    ASSERT_OK(swoop_http_on_request(srv, handler));
}

/* Runs a shell command, returns its exit status. */
static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

typedef struct resp_s {
    char head[8192];
    char body[65536];
    size_t body_len;
} resp_t;

static size_t slurp(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        out[0] = '\0'; /* curl makes no -o file for an empty body */
        return 0;
    }
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    unlink(path);
    return n;
}

/* curl with `args` for `path`: the response's head and raw (not decoded) body. */
static void fetch(int port, const char *args, const char *path, resp_t *r)
{
    char cmd[2048], hp[700], bp[700];
    snprintf(hp, sizeof(hp), "%s/h", swoop_test_tmpdir());
    snprintf(bp, sizeof(bp), "%s/b", swoop_test_tmpdir());
    snprintf(cmd, sizeof(cmd), "curl -sS -D %s -o %s %s http://127.0.0.1:%d%s", hp, bp, args, port,
             path);
    ASSERT_EQ(run(cmd), 0);
    slurp(hp, r->head, sizeof(r->head));
    r->body_len = slurp(bp, r->body, sizeof(r->body));
}

/* The value of field `name` in r's head (copied into out), or NULL. */
static const char *field(const resp_t *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = r->head; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return out;
        }
    }
    return NULL;
}

static long content_length(const resp_t *r)
{
    char v[64];
    return field(r, "Content-Length", v, sizeof(v)) ? atol(v) : -1;
}

/* Inflates a gzip (windowBits 31) or zlib (15) body; returns the length. */
static size_t decode(const void *in, size_t len, int bits, char *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    ASSERT_EQ(inflateInit2(&zs, bits), Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)cap - 1;
    int rc = inflate(&zs, Z_FINISH);
    size_t n = cap - 1 - zs.avail_out;
    int used_all = zs.avail_in == 0;
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || !used_all)
        FAIL("inflate (bits %d) of %zu bytes: %d, input used up: %d", bits, len, rc, used_all);
    out[n] = '\0';
    return n;
}

static void expect_field(const resp_t *r, const char *name, const char *want)
{
    char v[256];
    if (want == NULL) {
        if (field(r, name, v, sizeof(v)))
            FAIL("unexpected %s: %s in\n%s", name, v, r->head);
        return;
    }
    if (field(r, name, v, sizeof(v)) == NULL || strcmp(v, want) != 0)
        FAIL("%s: want \"%s\", head:\n%s", name, want, r->head);
}

static void write_file(const char *name, const char *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", docroot, name);
    FILE *f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* FILE.gz made with zlib's gz* API (a real gzip file), `age` seconds older than now. */
static void write_gz(const char *name, const char *text, int age)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", docroot, name);
    gzFile g = gzopen(path, "wb");
    ASSERT_NOT_NULL(g);
    ASSERT_EQ(gzwrite(g, text, (unsigned)strlen(text)), (int)strlen(text));
    ASSERT_EQ(gzclose(g), Z_OK);
    struct timespec ts[2] = {{.tv_sec = time(NULL) - age}, {.tv_sec = time(NULL) - age}};
    ASSERT_EQ(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void make_docroot(void)
{
    snprintf(docroot, sizeof(docroot), "%s/www", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(docroot, 0755), 0);
    char big[8192];
    size_t n = 0;
    for (int i = 0; n + 64 < sizeof(big); i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "static line %d, compressible text\n", i);
    write_file("big.txt", big, n);
    write_file("small.txt", "small\n", 6);
    write_file("pic.png", big, n);
    /* app.js and its precompressed sibling (a different text: the test sees which was sent). */
    const char *js = "var identity = 'the original file, served as it is';\n";
    write_file("app.js", js, strlen(js));
    write_gz("app.js.gz", "var precompressed = 'from app.js.gz';\n", 0);
    /* A sibling older than its file is stale: ignored. */
    write_file("old.js", js, strlen(js));
    write_gz("old.js.gz", "var stale = 1;\n", 3600);
    struct timespec ts[2] = {{.tv_sec = time(NULL) - 60}, {.tv_sec = time(NULL) - 60}};
    char path[1024];
    snprintf(path, sizeof(path), "%s/app.js", docroot);
    ASSERT_EQ(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void remove_docroot(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", docroot);
    ASSERT_EQ(run(cmd), 0);
}

/* Handler responses: negotiation, Vary, lengths, what is never compressed. */
static void handler_responses(int port)
{
    static resp_t r, id;
    char plain[65536], dec[65536];
    size_t plain_len = json_body(plain, sizeof(plain));

    /* gzip: a real gzip body of its Content-Length, and Vary. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/json", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    expect_field(&r, "Vary", "Accept-Encoding");
    ASSERT_EQ(content_length(&r), (long)r.body_len);
    ASSERT_LT(r.body_len, plain_len / 2);
    ASSERT_EQ(decode(r.body, r.body_len, 31, dec, sizeof(dec)), plain_len);
    ASSERT_MEM_EQ(dec, plain, plain_len);
    /* curl's own decoder agrees. */
    fetch(port, "--compressed", "/json", &r);
    ASSERT_EQ(r.body_len, plain_len);
    ASSERT_MEM_EQ(r.body, plain, plain_len);

    /* deflate is the zlib format (RFC 1950), chosen when preferred. */
    fetch(port, "-H 'Accept-Encoding: gzip;q=0.5, deflate'", "/json", &r);
    expect_field(&r, "Content-Encoding", "deflate");
    ASSERT_EQ(content_length(&r), (long)r.body_len);
    ASSERT_EQ(decode(r.body, r.body_len, 15, dec, sizeof(dec)), plain_len);
    ASSERT_MEM_EQ(dec, plain, plain_len);

    /* q=0 refuses; "*;q=0, identity"; no field; a malformed one: identity, Vary still. */
    static const char *const identity[] = {"-H 'Accept-Encoding: gzip;q=0'",
                                           "-H 'Accept-Encoding: *;q=0, identity'",
                                           "-H 'Accept-Encoding: gzip;q=0, deflate;q=0'",
                                           "",
                                           "-H 'Accept-Encoding: gzip;q=2'",
                                           "-H 'Accept-Encoding: br'"};
    for (size_t i = 0; i < sizeof(identity) / sizeof(identity[0]); i++) {
        fetch(port, identity[i], "/json", &id);
        expect_field(&id, "Content-Encoding", NULL);
        expect_field(&id, "Vary", "Accept-Encoding");
        ASSERT_EQ(content_length(&id), (long)plain_len);
        ASSERT_EQ(id.body_len, plain_len);
        ASSERT_MEM_EQ(id.body, plain, plain_len);
    }
    /* "*" takes gzip, and a second Accept-Encoding field combines with the first. */
    fetch(port, "-H 'Accept-Encoding: *'", "/json", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    fetch(port, "-H 'Accept-Encoding: gzip;q=0' -H 'Accept-Encoding: deflate'", "/json", &r);
    expect_field(&r, "Content-Encoding", "deflate");

    /* A strong ETag turns weak; the handler's Vary gets Accept-Encoding appended. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/etag", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    expect_field(&r, "ETag", "W/\"v1\"");
    expect_field(&r, "Vary", "Cookie, Accept-Encoding");
    fetch(port, "", "/etag", &id);
    expect_field(&id, "ETag", "\"v1\"");
    expect_field(&id, "Vary", "Cookie, Accept-Encoding");

    /* Never compressed: tiny, unlisted type, no type, the handler's own coding, 206, 204. */
    static const char *const never[] = {"/tiny", "/png", "/untyped", "/encoded", "/partial"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        fetch(port, "-H 'Accept-Encoding: gzip, deflate'", never[i], &r);
        char v[64];
        const char *ce = field(&r, "Content-Encoding", v, sizeof(v));
        if (strcmp(never[i], "/encoded") == 0)
            ASSERT(ce && strcmp(ce, "br") == 0);
        else if (ce)
            FAIL("%s: Content-Encoding %s", never[i], ce);
        expect_field(&r, "Vary", NULL);
        ASSERT_EQ(content_length(&r), (long)r.body_len);
        if (strcmp(never[i], "/tiny") != 0) {
            ASSERT_EQ(r.body_len, plain_len);
            ASSERT_MEM_EQ(r.body, plain, plain_len);
        }
    }
    fetch(port, "-H 'Accept-Encoding: gzip'", "/nocontent", &r);
    ASSERT_NOT_NULL(strstr(r.head, " 204 "));
    expect_field(&r, "Content-Encoding", NULL);

    /* HEAD: the fields a GET gets, its compressed Content-Length included, no body. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/json", &r);
    long get_len = content_length(&r);
    fetch(port, "-I -H 'Accept-Encoding: gzip'", "/json", &id);
    expect_field(&id, "Content-Encoding", "gzip");
    expect_field(&id, "Vary", "Accept-Encoding");
    ASSERT_EQ(content_length(&id), get_len);
    ASSERT_EQ(id.body_len, strlen(id.head)); /* curl -I writes the head as its output */

    /* A detached answer (swoop_http_respond) is negotiated from what its request said. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/later", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    ASSERT_EQ(content_length(&r), (long)r.body_len);
    ASSERT_EQ(decode(r.body, r.body_len, 31, dec, sizeof(dec)), plain_len);
    fetch(port, "-H 'Accept-Encoding: gzip;q=0, deflate'", "/later", &r);
    expect_field(&r, "Content-Encoding", "deflate");
    ASSERT_EQ(decode(r.body, r.body_len, 15, dec, sizeof(dec)), plain_len);
    fetch(port, "", "/later", &r);
    expect_field(&r, "Content-Encoding", NULL);
    expect_field(&r, "Vary", "Accept-Encoding");
}

/* Streamed bodies: one deflate stream, chunked (1.1) or until the close (1.0). */
static void streaming(int port)
{
    static resp_t r;
    char want[8192], dec[65536];
    size_t wl = 0;
    for (int i = 0; i < 50; i++)
        wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "line %d of a streamed body\n", i);
    wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "end\n");
    /* curl undoes the chunked framing, not the coding (no --compressed): -o gets gzip bytes. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/stream", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    expect_field(&r, "Transfer-Encoding", "chunked");
    expect_field(&r, "Vary", "Accept-Encoding");
    expect_field(&r, "Content-Length", NULL);
    ASSERT_EQ(decode(r.body, r.body_len, 31, dec, sizeof(dec)), wl);
    ASSERT_MEM_EQ(dec, want, wl);
    fetch(port, "--compressed", "/stream", &r);
    ASSERT_EQ(r.body_len, wl);
    ASSERT_MEM_EQ(r.body, want, wl);
    /* HTTP/1.0: no chunked framing, the body ends with the connection. */
    fetch(port, "-0 -H 'Accept-Encoding: deflate'", "/stream", &r);
    expect_field(&r, "Content-Encoding", "deflate");
    expect_field(&r, "Transfer-Encoding", NULL);
    expect_field(&r, "Connection", "close");
    ASSERT_EQ(decode(r.body, r.body_len, 15, dec, sizeof(dec)), wl);
    ASSERT_MEM_EQ(dec, want, wl);
    /* Without Accept-Encoding: identity, Vary. */
    fetch(port, "", "/stream", &r);
    expect_field(&r, "Content-Encoding", NULL);
    expect_field(&r, "Vary", "Accept-Encoding");
    ASSERT_EQ(r.body_len, wl);
    /* HEAD of a streamed response: its fields, no body. */
    fetch(port, "-I -H 'Accept-Encoding: gzip'", "/stream", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    ASSERT_EQ(r.body_len, strlen(r.head)); /* curl -I writes the head as its output */
}

/* Static files: FILE.gz, on the fly, Range, HEAD, conditional requests. */
static void static_files(int port)
{
    static resp_t r, id;
    char dec[65536], big[65536], path[1024];
    snprintf(path, sizeof(path), "%s/big.txt", docroot);
    FILE *f = fopen(path, "rb");
    ASSERT_NOT_NULL(f);
    size_t bl = fread(big, 1, sizeof(big), f);
    fclose(f);

    /* On the fly: gzip, weak ETag, Vary, the compressed length. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/big.txt", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    expect_field(&r, "Vary", "Accept-Encoding");
    ASSERT_EQ(content_length(&r), (long)r.body_len);
    ASSERT_EQ(decode(r.body, r.body_len, 31, dec, sizeof(dec)), bl);
    ASSERT_MEM_EQ(dec, big, bl);
    char etag[128], etag_id[128];
    ASSERT_NOT_NULL(field(&r, "ETag", etag, sizeof(etag)));
    ASSERT_EQ(strncmp(etag, "W/\"", 3), 0);
    fetch(port, "", "/big.txt", &id);
    expect_field(&id, "Content-Encoding", NULL);
    expect_field(&id, "Vary", "Accept-Encoding");
    ASSERT_EQ(id.body_len, bl);
    ASSERT_NOT_NULL(field(&id, "ETag", etag_id, sizeof(etag_id)));
    ASSERT_STR_EQ(etag + 2, etag_id); /* the same tag, weak */
    fetch(port, "-H 'Accept-Encoding: deflate'", "/big.txt", &r);
    expect_field(&r, "Content-Encoding", "deflate");
    ASSERT_EQ(decode(r.body, r.body_len, 15, dec, sizeof(dec)), bl);
    /* HEAD: the GET's fields and compressed length. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/big.txt", &r);
    fetch(port, "-I -H 'Accept-Encoding: gzip'", "/big.txt", &id);
    expect_field(&id, "Content-Encoding", "gzip");
    ASSERT_EQ(content_length(&id), content_length(&r));
    /* The weak tag revalidates: 304 with Vary. */
    char args[512];
    snprintf(args, sizeof(args), "-H 'Accept-Encoding: gzip' -H 'If-None-Match: %s'", etag);
    fetch(port, args, "/big.txt", &r);
    ASSERT_NOT_NULL(strstr(r.head, " 304 "));
    expect_field(&r, "Vary", "Accept-Encoding");
    /* Range: the identity bytes (206), never compressed. */
    fetch(port, "-H 'Accept-Encoding: gzip' -r 10-19", "/big.txt", &r);
    ASSERT_NOT_NULL(strstr(r.head, " 206 "));
    expect_field(&r, "Content-Encoding", NULL);
    ASSERT_EQ(r.body_len, 10);
    ASSERT_MEM_EQ(r.body, big + 10, 10);
    /* Tiny, and an unlisted type: as they are. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/small.txt", &r);
    expect_field(&r, "Content-Encoding", NULL);
    ASSERT_EQ(r.body_len, 6);
    fetch(port, "-H 'Accept-Encoding: gzip'", "/pic.png", &r);
    expect_field(&r, "Content-Encoding", NULL);
    expect_field(&r, "Vary", NULL);
    ASSERT_EQ(r.body_len, bl);

    /* The precompressed sibling, with its own ETag; identity without gzip. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/app.js", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    expect_field(&r, "Vary", "Accept-Encoding");
    ASSERT_EQ(content_length(&r), (long)r.body_len);
    decode(r.body, r.body_len, 31, dec, sizeof(dec));
    ASSERT_STR_EQ(dec, "var precompressed = 'from app.js.gz';\n");
    ASSERT_NOT_NULL(field(&r, "ETag", etag, sizeof(etag)));
    fetch(port, "-H 'Accept-Encoding: deflate'", "/app.js", &id);
    expect_field(&id, "Content-Encoding", NULL);
    expect_field(&id, "Vary", "Accept-Encoding");
    ASSERT_STR_EQ(id.body, "var identity = 'the original file, served as it is';\n");
    ASSERT_NOT_NULL(field(&id, "ETag", etag_id, sizeof(etag_id)));
    ASSERT(strcmp(etag, etag_id) != 0);
    /* A stale sibling is not used: the file is compressed on the fly instead. */
    fetch(port, "-H 'Accept-Encoding: gzip'", "/old.js", &r);
    if (field(&r, "Content-Encoding", etag, sizeof(etag)))
        ASSERT_EQ(decode(r.body, r.body_len, 31, dec, sizeof(dec)), strlen(id.body));
    else
        ASSERT_STR_EQ(r.body, id.body);
    ASSERT(strstr(r.body, "stale") == NULL);
}

static void compress_all(swoop_mode_t mode)
{
    make_docroot();
    srv_handle_t h = srv_start(mode, setup_http, NULL, 2);
    handler_responses(h.port);
    streaming(h.port);
    static_files(h.port);
    srv_stop(&h, 5000);
    remove_docroot();
}

TEST_TIMEOUT(http_compress_process, 120)
{
    compress_all(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_compress_base, 120)
{
    compress_all(SWOOP_MODE_BASE);
}

/* The settings: off, min_length, types (prefix), level; bad values refused by name. */
TEST_TIMEOUT(http_compress_settings, 120)
{
    make_docroot();
    static const char *const sets[] = {"http_compression_min_length",
                                       "4000",
                                       "http_compression_types",
                                       "text/*, image/png",
                                       "http_compression_level",
                                       "9",
                                       NULL};
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup_http, (void *)sets, 2);
    static resp_t r;
    char dec[65536], plain[65536];
    size_t pl = json_body(plain, sizeof(plain));
    /* 2000-odd bytes are below 4000 now, and application/json is no longer listed. */
    fetch(h.port, "-H 'Accept-Encoding: gzip'", "/json", &r);
    expect_field(&r, "Content-Encoding", NULL);
    fetch(h.port, "-H 'Accept-Encoding: gzip'", "/etag", &r); /* text/html, too short */
    expect_field(&r, "Content-Encoding", NULL);
    expect_field(&r, "Vary", "Cookie");
    fetch(h.port, "-H 'Accept-Encoding: gzip'", "/png", &r); /* listed, too short */
    expect_field(&r, "Content-Encoding", NULL);
    /* A stream has no known length: text/plain is listed by the "text" wildcard. */
    fetch(h.port, "-H 'Accept-Encoding: gzip'", "/stream", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    /* Static: big.txt (8 KiB) and pic.png now qualify, at level 9. */
    fetch(h.port, "-H 'Accept-Encoding: gzip'", "/pic.png", &r);
    expect_field(&r, "Content-Encoding", "gzip");
    ASSERT_GT(decode(r.body, r.body_len, 31, dec, sizeof(dec)), 4000);
    srv_stop(&h, 5000);

    static const char *const off[] = {"http_compression", "off", NULL};
    h = srv_start(SWOOP_MODE_BASE, setup_http, (void *)off, 2);
    fetch(h.port, "-H 'Accept-Encoding: gzip'", "/json", &r);
    expect_field(&r, "Content-Encoding", NULL);
    expect_field(&r, "Vary", NULL);
    ASSERT_EQ(r.body_len, pl);
    fetch(h.port, "-H 'Accept-Encoding: gzip'", "/app.js", &r);
    expect_field(&r, "Content-Encoding", NULL);
    srv_stop(&h, 5000);
    remove_docroot();

    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_BASE));
    static const char *const bad[][2] = {
        {"http_compression", "maybe"},
        {"http_compression_level", "0"},
        {"http_compression_level", "10"},
        {"http_compression_min_length", "-1"},
        {"http_compression_min_length", "x"},
        {"http_compression_types", ""},
        {"http_compression_types", "text"},
        {"http_compression_types", "text/html,,application/json"},
        {"http_compression_types", "text/html; charset=utf-8"},
        {"http_compression_types", "/html"},
        {"http_compression_types", "text/"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (swoop_server_set(srv, bad[i][0], bad[i][1]) != SWOOP_EINVAL)
            FAIL("%s=\"%s\" was accepted", bad[i][0], bad[i][1]);
    }
    static const char *const good[][2] = {
        {"http_compression", "0"},
        {"http_compression_level", "9"},
        {"http_compression_min_length", "1K"},
        {"compression_min_length", "0"},
        {"http_compression_types", "*"},
        {"http_compression_types", " text/* , application/json,image/svg+xml "},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ASSERT_OK(swoop_server_set(srv, good[i][0], good[i][1]));
    ASSERT_OK(swoop_server_free(srv));
}
