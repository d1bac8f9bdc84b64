/*
 * The static file handler (issue 11) over the wire, both modes: multi-range
 * responses parsed part by part and compared byte for byte with the file,
 * the guards against abusive ranges, If-Range; no way out of the root
 * (.., %2e%2e, %2f, %00, backslashes, symlinks with and without
 * static_follow_symlinks); empty files; http_index_files in order;
 * http_autoindex listings with hostile names; the 301 of a directory
 * without its slash; static_handler_locations; MIME types from
 * /etc/mime.types; HEAD; and python3's http.client as an independent
 * client (its email parser reads the multipart body). The handler answers
 * "handler 404" and counts its calls, so every answer is known to come
 * from the connection owner or from the handler.
 */
/* TEST_LABELS: tsan */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <swoop/http.h>

#include "server_common.h"

typedef struct shared_s {
    _Atomic int calls; /* handler calls */
} shared_t;

static shared_t *sh;

/* The settings of the server a test starts (set before srv_start; the fork copies them). */
static struct {
    char root[512];
    const char *follow, *locations, *autoindex, *index;
} cfg;

static void handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    atomic_fetch_add(&sh->calls, 1);
    swoop_http_status(res, 404);
    swoop_http_end(res, "handler 404\n", 12);
}

static void setup(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "enable_static_handler", "1"));
    ASSERT_OK(swoop_server_set(srv, "document_root", cfg.root));
    if (cfg.follow)
        ASSERT_OK(swoop_server_set(srv, "static_follow_symlinks", cfg.follow));
    if (cfg.locations)
        ASSERT_OK(swoop_server_set(srv, "static_handler_locations", cfg.locations));
    if (cfg.autoindex)
        ASSERT_OK(swoop_server_set(srv, "http_autoindex", cfg.autoindex));
    if (cfg.index)
        ASSERT_OK(swoop_server_set(srv, "http_index_files", cfg.index));
    ASSERT_OK(swoop_http_on_request(srv, handler));
}

static srv_handle_t start(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    return srv_start(mode, setup, NULL, 2);
}

static void stop(srv_handle_t *h)
{
    srv_stop(h, 5000);
    munmap(sh, sizeof(*sh));
    memset(&cfg, 0, sizeof(cfg));
}

/* A path under the test's tmpdir. */
static const char *tmp(const char *name)
{
    static char buf[4][1024];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, sizeof(buf[0]), "%s/%s", swoop_test_tmpdir(), name);
    return p;
}

static void put_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void make_root(void)
{
    snprintf(cfg.root, sizeof(cfg.root), "%s", tmp("www"));
    ASSERT_EQ(mkdir(cfg.root, 0755), 0);
}

/* A response read to the close: the head (NUL-terminated in place), the body and its length. */
typedef struct resp_s {
    char buf[65536];
    size_t len;
    int status;
    const char *body;
    size_t body_len;
} resp_t;

/* Sends one request (Connection: close) and reads the response to its end. */
static void request(int port, const char *target, const char *fields, resp_t *r)
{
    char q[2048];
    int n = snprintf(q, sizeof(q), "%s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", target,
                     fields ? fields : "");
    int fd = cli_connect(port);
    cli_write(fd, q, (size_t)n);
    r->len = 0;
    uint64_t deadline = swoop_test_now_ms() + 5000 * swoop_test_multiplier();
    while (r->len + 1 < sizeof(r->buf) && swoop_test_now_ms() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t k = recv(fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len, 0);
        if (k <= 0)
            break;
        r->len += (size_t)k;
    }
    close(fd);
    r->buf[r->len] = '\0';
    char *end = strstr(r->buf, "\r\n\r\n");
    if (end == NULL || sscanf(r->buf, "HTTP/1.1 %d", &r->status) != 1)
        FAIL("%s: no response head: \"%.80s\"", target, r->buf);
    end[2] = '\0'; /* the head keeps its last CRLF */
    r->body = end + 4;
    r->body_len = r->len - (size_t)(r->body - r->buf);
}

static void get(int port, const char *path, const char *fields, resp_t *r)
{
    char t[1100];
    snprintf(t, sizeof(t), "GET %s", path);
    request(port, t, fields, r);
}

/* The value of field `name` in the head (up to its CR, copied to out), or NULL. */
static const char *hdr(const resp_t *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->buf, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            size_t vl = strcspn(v, "\r");
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
    }
    return NULL;
}

static void expect_header(const resp_t *r, const char *name, const char *want)
{
    char v[512];
    if (hdr(r, name, v, sizeof(v)) == NULL)
        FAIL("no %s in \"%s\"", name, r->buf);
    if (strcmp(v, want) != 0)
        FAIL("%s: \"%s\", expected \"%s\"", name, v, want);
}

/* ---- multi-range ---- */

static unsigned char file100[100];

/*
 * Checks a multipart/byteranges body against file100: the parts, in order,
 * are want[0..n) (from, to inclusive), each with its Content-Type and
 * Content-Range; the body ends with the closing delimiter.
 */
static void check_multipart(const resp_t *r, const int (*want)[2], int n)
{
    char ct[256], len[32];
    ASSERT_NOT_NULL(hdr(r, "Content-Type", ct, sizeof(ct)));
    const char *b = strstr(ct, "multipart/byteranges; boundary=");
    if (b == NULL)
        FAIL("not multipart: %s", ct);
    const char *bnd = b + strlen("multipart/byteranges; boundary=");
    ASSERT_NOT_NULL(hdr(r, "Content-Length", len, sizeof(len)));
    ASSERT_EQ((size_t)atol(len), r->body_len);
    const char *p = r->body, *end = r->body + r->body_len;
    for (int i = 0; i < n; i++) {
        char delim[128];
        int dl = snprintf(delim, sizeof(delim), "%s--%s\r\n", i ? "\r\n" : "", bnd);
        ASSERT((size_t)(end - p) > (size_t)dl);
        ASSERT_MEM_EQ(p, delim, (size_t)dl);
        p += dl;
        const char *he = strstr(p, "\r\n\r\n");
        ASSERT_NOT_NULL(he);
        char part[512], range[128];
        ASSERT((size_t)(he - p) < sizeof(part));
        memcpy(part, p, (size_t)(he - p));
        part[he - p] = '\0';
        if (strstr(part, "Content-Type: application/octet-stream\r\n") == NULL)
            FAIL("part %d: %s", i, part);
        snprintf(range, sizeof(range), "Content-Range: bytes %d-%d/100", want[i][0], want[i][1]);
        if (strstr(part, range) == NULL)
            FAIL("part %d: \"%s\", expected %s", i, part, range);
        p = he + 4;
        size_t k = (size_t)(want[i][1] - want[i][0] + 1);
        ASSERT((size_t)(end - p) >= k);
        ASSERT_MEM_EQ(p, file100 + want[i][0], k);
        p += k;
    }
    char close_delim[128];
    int cl = snprintf(close_delim, sizeof(close_delim), "\r\n--%s--\r\n", bnd);
    ASSERT_EQ((size_t)(end - p), (size_t)cl);
    ASSERT_MEM_EQ(p, close_delim, (size_t)cl);
}

static void multirange(swoop_mode_t mode)
{
    make_root();
    /* Binary content, with what a careless parser would take for a delimiter inside. */
    for (int i = 0; i < 100; i++)
        file100[i] = (unsigned char)(i * 37 + 11);
    memcpy(file100 + 22, "\r\n--x", 5);
    char path[1100];
    snprintf(path, sizeof(path), "%s/data.bin", cfg.root);
    put_file(path, file100, sizeof(file100));
    srv_handle_t h = start(mode);
    resp_t *r = malloc(sizeof(*r));
    ASSERT_NOT_NULL(r);

    get(h.port, "/data.bin", "Range: bytes=0-9,20-29,-5\r\n", r);
    ASSERT_EQ(r->status, 206);
    static const int three[][2] = {{0, 9}, {20, 29}, {95, 99}};
    check_multipart(r, three, 3);
    char etag[128];
    ASSERT_NOT_NULL(hdr(r, "ETag", etag, sizeof(etag)));

    /* The order asked is kept; blanks and empty elements are allowed; past-the-end ones drop. */
    get(h.port, "/data.bin", "Range: bytes= 50-50 , ,3-4,500-600\r\n", r);
    ASSERT_EQ(r->status, 206);
    static const int two[][2] = {{50, 50}, {3, 4}};
    check_multipart(r, two, 2);

    /* One satisfiable range of several: a plain 206. */
    get(h.port, "/data.bin", "Range: bytes=90-,200-300\r\n", r);
    ASSERT_EQ(r->status, 206);
    expect_header(r, "Content-Range", "bytes 90-99/100");
    ASSERT_EQ(r->body_len, 10u);
    ASSERT_MEM_EQ(r->body, file100 + 90, 10);

    /* None satisfiable: 416 with the size. */
    get(h.port, "/data.bin", "Range: bytes=100-,200-300\r\n", r);
    ASSERT_EQ(r->status, 416);
    expect_header(r, "Content-Range", "bytes */100");

    /* Overlapping ranges and more than 16: the whole file. */
    /* Seventeen single bytes, in one literal (clang: no concatenation inside the array). */
#define SEVENTEEN                                                                                  \
    "Range: bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,"            \
    "26-26,28-28,30-30,32-32\r\n"
    static const char *whole[] = {
        "Range: bytes=0-50,40-60\r\n",
        SEVENTEEN,
        "Range: bytes=-10,95-\r\n",
    };
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
        get(h.port, "/data.bin", whole[i], r);
        if (r->status != 200 || r->body_len != 100 || memcmp(r->body, file100, 100) != 0)
            FAIL("%s: %d, %zu bytes", whole[i], r->status, r->body_len);
    }
    /* Sixteen are still served. */
    get(h.port, "/data.bin",
        "Range: bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,"
        "26-26,28-28,30-30\r\n",
        r);
    ASSERT_EQ(r->status, 206);
    int sixteen[16][2];
    for (int i = 0; i < 16; i++)
        sixteen[i][0] = sixteen[i][1] = 2 * i;
    check_multipart(r, (const int(*)[2])sixteen, 16);

    /* If-Range: a stale ETag gets the whole file, the current one the parts. */
    get(h.port, "/data.bin", "Range: bytes=0-9,20-29\r\nIf-Range: \"stale\"\r\n", r);
    ASSERT_EQ(r->status, 200);
    ASSERT_EQ(r->body_len, 100u);
    char f[256];
    snprintf(f, sizeof(f), "Range: bytes=0-9,20-29\r\nIf-Range: %s\r\n", etag);
    get(h.port, "/data.bin", f, r);
    ASSERT_EQ(r->status, 206);
    check_multipart(r, three, 2);

    /* HEAD: the same head and length, no body. */
    request(h.port, "HEAD /data.bin", "Range: bytes=0-9,20-29,-5\r\n", r);
    ASSERT_EQ(r->status, 206);
    char len[32];
    ASSERT_NOT_NULL(hdr(r, "Content-Length", len, sizeof(len)));
    ASSERT_GT(atol(len), 115);
    ASSERT_EQ(r->body_len, 0u);

    ASSERT_EQ(atomic_load(&sh->calls), 0); /* all from the owner */
    free(r);
    stop(&h);
}

TEST_TIMEOUT(http_static_multirange_process, 60)
{
    multirange(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_static_multirange_base, 60)
{
    multirange(SWOOP_MODE_BASE);
}

/* ---- no way out ---- */

/* Files inside and outside the root, and links both ways. */
static void make_tree(void)
{
    make_root();
    put_file(tmp("secret.txt"), "SECRET\n", 7);
    put_file(tmp("www/a.txt"), "alpha\n", 6);
    put_file(tmp("www/empty.txt"), "", 0);
    ASSERT_EQ(mkdir(tmp("www/sub"), 0755), 0);
    ASSERT_EQ(symlink("../secret.txt", tmp("www/out")), 0);
    ASSERT_EQ(symlink(swoop_test_tmpdir(), tmp("www/outdir")), 0);
    ASSERT_EQ(symlink("a.txt", tmp("www/in")), 0);
    ASSERT_EQ(symlink("..", tmp("www/sub/up")), 0); /* inside: back to the root */
}

static const char *escapes[] = {
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/sub/..%2f..%2fsecret.txt",
    "/%2E%2E%2Fsecret.txt",
    "/a.txt%00",
    "/..\\secret.txt",
    "/%2e%2e%5csecret.txt",
    "/sub/../../secret.txt",
    "/outdir/../secret.txt", /* ".." is taken out by text, never after the link */
};

/* Every escape goes to the handler, and no answer holds the secret. */
static void no_escape(int port, resp_t *r)
{
    int before = atomic_load(&sh->calls);
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        get(port, escapes[i], NULL, r);
        if (r->status != 404 || memmem(r->body, r->body_len, "SECRET", 6) ||
            strcmp(r->body, "handler 404\n") != 0)
            FAIL("%s: %d \"%s\"", escapes[i], r->status, r->body);
    }
    ASSERT_EQ(atomic_load(&sh->calls) - before, (int)(sizeof(escapes) / sizeof(escapes[0])));
}

static void traversal(swoop_mode_t mode)
{
    make_tree();
    srv_handle_t h = start(mode);
    resp_t *r = malloc(sizeof(*r));
    ASSERT_NOT_NULL(r);
    no_escape(h.port, r);
    /* Links that lead outside are refused (to the handler) without static_follow_symlinks. */
    static const char *outside[] = {"/out", "/outdir/secret.txt", "/sub/up/out"};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        get(h.port, outside[i], NULL, r);
        if (r->status != 404 || strcmp(r->body, "handler 404\n") != 0)
            FAIL("%s: %d \"%s\"", outside[i], r->status, r->body);
    }
    /* Links inside are served. */
    get(h.port, "/in", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_STR_EQ(r->body, "alpha\n");
    get(h.port, "/sub/up/a.txt", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_STR_EQ(r->body, "alpha\n");
    /* An empty file: 200 with Content-Length 0; any range of it is unsatisfiable. */
    get(h.port, "/empty.txt", NULL, r);
    ASSERT_EQ(r->status, 200);
    expect_header(r, "Content-Length", "0");
    ASSERT_EQ(r->body_len, 0u);
    get(h.port, "/empty.txt", "Range: bytes=0-\r\n", r);
    ASSERT_EQ(r->status, 416);
    expect_header(r, "Content-Range", "bytes */0");
    request(h.port, "HEAD /empty.txt", NULL, r);
    ASSERT_EQ(r->status, 200);
    expect_header(r, "Content-Length", "0");
    stop(&h);

    /* static_follow_symlinks 1: links go where they lead; ".." still never climbs out. */
    snprintf(cfg.root, sizeof(cfg.root), "%s", tmp("www"));
    cfg.follow = "1";
    h = start(mode);
    get(h.port, "/out", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_STR_EQ(r->body, "SECRET\n");
    get(h.port, "/outdir/secret.txt", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_STR_EQ(r->body, "SECRET\n");
    no_escape(h.port, r);
    free(r);
    stop(&h);
}

TEST_TIMEOUT(http_static_traversal_process, 60)
{
    traversal(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_static_traversal_base, 60)
{
    traversal(SWOOP_MODE_BASE);
}

/* ---- index files, listings, redirects ---- */

/* Offset of `needle` in the body, failing when absent. */
static size_t at(const resp_t *r, const char *needle)
{
    const char *p = strstr(r->body, needle);
    if (p == NULL)
        FAIL("\"%s\" not in the listing:\n%s", needle, r->body);
    return (size_t)(p - r->body);
}

static void directories(swoop_mode_t mode)
{
    make_root();
    ASSERT_EQ(mkdir(tmp("www/both"), 0755), 0);
    ASSERT_EQ(mkdir(tmp("www/one"), 0755), 0);
    ASSERT_EQ(mkdir(tmp("www/none"), 0755), 0);
    ASSERT_EQ(mkdir(tmp("www/none/zdir"), 0755), 0);
    put_file(tmp("www/both/index.html"), "html\n", 5);
    put_file(tmp("www/both/index.htm"), "htm\n", 4);
    put_file(tmp("www/one/index.html"), "one\n", 4);
    put_file(tmp("www/none/<script>x.txt"), "s\n", 2);
    put_file(tmp("www/none/100% sure.txt"), "sure\n", 5);
    put_file(tmp("www/none/a b.txt"), "ab\n", 3);
    put_file(tmp("www/none/.hidden"), "h\n", 2);
    cfg.index = "index.htm, index.html";
    cfg.autoindex = "1";
    srv_handle_t h = start(mode);
    resp_t *r = malloc(sizeof(*r));
    ASSERT_NOT_NULL(r);
    /* The first index file that exists wins, in the order given. */
    get(h.port, "/both/", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_STR_EQ(r->body, "htm\n");
    get(h.port, "/one/", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_STR_EQ(r->body, "one\n");
    expect_header(r, "Content-Type", "text/html");
    /* A directory without its slash: 301 to it, the query kept. */
    get(h.port, "/one", NULL, r);
    ASSERT_EQ(r->status, 301);
    expect_header(r, "Location", "/one/");
    get(h.port, "/none?x=1&y", NULL, r);
    ASSERT_EQ(r->status, 301);
    expect_header(r, "Location", "/none/?x=1&y");
    /* The listing: names escaped in text and encoded in links, directories first, no dotfiles. */
    get(h.port, "/none/", NULL, r);
    ASSERT_EQ(r->status, 200);
    expect_header(r, "Content-Type", "text/html; charset=utf-8");
    char len[32];
    ASSERT_NOT_NULL(hdr(r, "Content-Length", len, sizeof(len)));
    ASSERT_EQ((size_t)atol(len), r->body_len);
    ASSERT_EQ(strlen(r->body), r->body_len); /* text, no NUL inside */
    ASSERT_NULL(strstr(r->body, "<script>"));
    ASSERT_NULL(strstr(r->body, "hidden"));
    size_t up = at(r, "<a href=\"../\">../</a>");
    size_t zdir = at(r, "<a href=\"zdir/\">zdir/</a>");
    size_t sure = at(r, "<a href=\"100%25%20sure.txt\">100% sure.txt</a>");
    size_t script = at(r, "<a href=\"%3Cscript%3Ex.txt\">&lt;script&gt;x.txt</a>");
    size_t ab = at(r, "<a href=\"a%20b.txt\">a b.txt</a>");
    ASSERT(up < zdir && zdir < sure && sure < script && script < ab);
    at(r, "<title>Index of /none/</title>");
    /* Its links work. */
    get(h.port, "/none/100%25%20sure.txt", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_STR_EQ(r->body, "sure\n");
    get(h.port, "/none/%3Cscript%3Ex.txt", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_STR_EQ(r->body, "s\n");
    /* The root lists itself, without a parent link; HEAD has the length and no body. */
    get(h.port, "/", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_NULL(strstr(r->body, "href=\"../\""));
    at(r, "<a href=\"both/\">both/</a>");
    request(h.port, "HEAD /none/", NULL, r);
    ASSERT_EQ(r->status, 200);
    ASSERT_EQ(r->body_len, 0u);
    ASSERT_NOT_NULL(hdr(r, "Content-Length", len, sizeof(len)));
    ASSERT_GT(atol(len), 200);
    ASSERT_EQ(atomic_load(&sh->calls), 0);
    stop(&h);

    /* Without http_autoindex a directory without index goes to the handler, with no redirect. */
    snprintf(cfg.root, sizeof(cfg.root), "%s", tmp("www"));
    h = start(mode);
    get(h.port, "/none/", NULL, r);
    ASSERT_STR_EQ(r->body, "handler 404\n");
    get(h.port, "/none", NULL, r);
    ASSERT_STR_EQ(r->body, "handler 404\n");
    get(h.port, "/one/", NULL, r); /* the default index.html */
    ASSERT_STR_EQ(r->body, "one\n");
    ASSERT_EQ(atomic_load(&sh->calls), 2);
    free(r);
    stop(&h);
}

TEST_TIMEOUT(http_static_directories_process, 60)
{
    directories(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_static_directories_base, 60)
{
    directories(SWOOP_MODE_BASE);
}

/* ---- static_handler_locations and MIME types ---- */

static void locations(swoop_mode_t mode)
{
    make_root();
    ASSERT_EQ(mkdir(tmp("www/static"), 0755), 0);
    ASSERT_EQ(mkdir(tmp("www/assets"), 0755), 0);
    ASSERT_EQ(mkdir(tmp("www/staticx"), 0755), 0);
    put_file(tmp("www/a.txt"), "alpha\n", 6);
    put_file(tmp("www/static/s.css"), "b{}\n", 4);
    put_file(tmp("www/static/m.wasm"), "\0asm", 4);
    put_file(tmp("www/assets/d.json"), "{}\n", 3);
    put_file(tmp("www/staticx/s.css"), "x{}\n", 4);
    cfg.locations = "/static, /assets/";
    srv_handle_t h = start(mode);
    resp_t *r = malloc(sizeof(*r));
    ASSERT_NOT_NULL(r);
    static const struct {
        const char *path, *type, *body;
    } served[] = {{"/static/s.css", "text/css", "b{}\n"},
                  {"/assets/d.json", "application/json", "{}\n"},
                  {"/static/m.wasm", "application/wasm", NULL}};
    for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
        get(h.port, served[i].path, NULL, r);
        ASSERT_EQ(r->status, 200);
        expect_header(r, "Content-Type", served[i].type);
        if (served[i].body)
            ASSERT_STR_EQ(r->body, served[i].body);
    }
    ASSERT_EQ(atomic_load(&sh->calls), 0);
    /* A missing file under a location: 404 from the owner, no handler. */
    get(h.port, "/static/missing.css", NULL, r);
    ASSERT_EQ(r->status, 404);
    ASSERT_STR_EQ(r->body, "404 Not Found\n");
    ASSERT_EQ(atomic_load(&sh->calls), 0);
    /* Outside the locations (a file that exists, a look-alike prefix, a ".." out of one). */
    static const char *others[] = {"/a.txt", "/staticx/s.css", "/static/../a.txt"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        get(h.port, others[i], NULL, r);
        if (strcmp(r->body, "handler 404\n") != 0)
            FAIL("%s: %d \"%s\"", others[i], r->status, r->body);
    }
    ASSERT_EQ(atomic_load(&sh->calls), 3);
    free(r);
    stop(&h);
}

TEST_TIMEOUT(http_static_locations_process, 60)
{
    locations(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_static_locations_base, 60)
{
    locations(SWOOP_MODE_BASE);
}

/* ---- python3 http.client ---- */

static const char py_client[] =
    "import http.client, email, sys\n"
    "port = int(sys.argv[1]); data = open(sys.argv[2], 'rb').read()\n"
    "c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)\n"
    "for _ in range(3):\n" /* keep-alive: one connection */
    "    c.request('GET', '/data.bin'); r = c.getresponse()\n"
    "    assert r.status == 200 and r.read() == data\n"
    "c.request('GET', '/data.bin', headers={'Range': 'bytes=0-9,20-29,-5'}); r = c.getresponse()\n"
    "assert r.status == 206, r.status\n"
    "ct = r.getheader('Content-Type'); body = r.read()\n"
    "m = email.message_from_bytes(b'Content-Type: ' + ct.encode() + b'\\r\\n\\r\\n' + body)\n"
    "parts = [(p['Content-Range'], p.get_payload(decode=True)) for p in m.get_payload()]\n"
    "want = [('bytes 0-9/100', data[0:10]), ('bytes 20-29/100', data[20:30]),\n"
    "        ('bytes 95-99/100', data[95:])]\n"
    "assert parts == want, parts\n"
    "c.request('HEAD', '/data.bin'); r = c.getresponse(); r.read()\n"
    "assert r.status == 200 and r.getheader('Content-Length') == '100'\n"
    "c.request('GET', '/d'); r = c.getresponse(); r.read()\n"
    "assert r.status == 301 and r.getheader('Location') == '/d/'\n"
    "c.request('GET', '/d/'); r = c.getresponse(); page = r.read().decode()\n"
    "assert r.status == 200 and 'href=\"x%20y.txt\"' in page, page\n"
    "print('ok')\n";

static void python_client(swoop_mode_t mode)
{
    make_root();
    unsigned char data[100];
    for (int i = 0; i < 100; i++)
        data[i] = (unsigned char)('a' + i % 26);
    put_file(tmp("www/data.bin"), data, sizeof(data));
    ASSERT_EQ(mkdir(tmp("www/d"), 0755), 0);
    put_file(tmp("www/d/x y.txt"), "xy\n", 3);
    put_file(tmp("client.py"), py_client, sizeof(py_client) - 1);
    cfg.autoindex = "1";
    srv_handle_t h = start(mode);
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof(cmd), "python3 %s %d %s 2>&1", tmp("client.py"), h.port,
             tmp("www/data.bin"));
    FILE *f = popen(cmd, "r");
    ASSERT_NOT_NULL(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || strcmp(out, "ok\n") != 0)
        FAIL("python3 http.client: %s", out);
    ASSERT_EQ(atomic_load(&sh->calls), 0);
    stop(&h);
}

TEST_TIMEOUT(http_static_python_client_process, 60)
{
    python_client(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_static_python_client_base, 60)
{
    python_client(SWOOP_MODE_BASE);
}
