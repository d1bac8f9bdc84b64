/* TEST_LABELS: heavy */
/*
 * Forms and uploads (multipart/form-data) against real clients, both
 * modes: curl -F with 40 files and text fields, a python3 http.client
 * upload, swoop_http_file_move, upload_max_filesize (413), malformed
 * bodies (400 each, other connections unaffected), an unusable
 * upload_tmp_dir (500), and a 1 GiB upload streamed from a raw socket
 * while the anonymous memory of every server process is measured. Every
 * test ends with its upload_tmp_dir empty.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <swoop/http.h>

#include "client_util.h"
#include "server_common.h"

static char upload_dir[512];                /* the server's upload_tmp_dir, one per test */
static char work_dir[512];                  /* the test's own files */
static const char *server_tmp = upload_dir; /* what the server is told */
static const char *max_filesize = "2M";
static const char *package_max = "8M";

/* FNV-1a 64 over a file's bytes. */
static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

#define FNV0 14695981039346656037ull

static uint64_t file_hash(const char *path, uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    ASSERT_NOT_NULL(f);
    static unsigned char buf[1 << 16];
    uint64_t h = FNV0;
    size_t k;
    *size = 0;
    while ((k = fread(buf, 1, sizeof(buf), f)) > 0) {
        h = fnv(h, buf, k);
        *size += k;
    }
    fclose(f);
    return h;
}

/*
 * "/up": one line per file part (field, filename, type, size, hash of the
 * file as the handler reads it), then the text fields t0..t9 it finds.
 * "/move?i": moves file 0 to work_dir/moved.
 */
static void handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    static char out[1 << 16];
    size_t o = 0;
    if (strcmp(swoop_http_path(req), "/crash") == 0) {
        ASSERT_EQ(swoop_http_file_count(req), 1);
        raise(SIGKILL); /* the worker dies holding the request and its file */
    }
    size_t blen;
    swoop_http_body(req, &blen);
    o += (size_t)snprintf(out + o, sizeof(out) - o, "body %zu files %d\n", blen,
                          swoop_http_file_count(req));
    for (int i = 0; i < swoop_http_file_count(req); i++) {
        swoop_http_file_t f;
        ASSERT_OK(swoop_http_file_at(req, i, &f));
        struct stat st;
        ASSERT_EQ(stat(f.path, &st), 0);
        ASSERT_EQ(st.st_mode & 0777, 0600);
        ASSERT_NOT_NULL(strstr(f.path, upload_dir));
        uint64_t size;
        uint64_t h = file_hash(f.path, &size);
        ASSERT_UEQ(size, f.size);
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s %s %s %llu %016llx\n", f.field,
                              f.filename, f.content_type, (unsigned long long)f.size,
                              (unsigned long long)h);
    }
    swoop_http_file_t none;
    ASSERT_EQ(swoop_http_file_at(req, swoop_http_file_count(req), &none), SWOOP_EINVAL);
    for (int i = 0; i < 10; i++) {
        char name[16], val[256];
        snprintf(name, sizeof(name), "t%d", i);
        int n = swoop_http_form_get(req, name, val, sizeof(val));
        if (n >= 0)
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s=%s\n", name, val);
    }
    if (strcmp(swoop_http_path(req), "/move") == 0) {
        char dest[600];
        snprintf(dest, sizeof(dest), "%s/moved", work_dir);
        int rc = swoop_http_file_move(req, 0, dest);
        int again = swoop_http_file_move(req, 0, dest);
        o += (size_t)snprintf(out + o, sizeof(out) - o, "move %d again %d\n", rc, again);
    }
    swoop_http_end(res, out, o);
}

static void setup(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "upload_tmp_dir", server_tmp));
    ASSERT_OK(swoop_server_set(srv, "upload_max_filesize", max_filesize));
    ASSERT_OK(swoop_server_set(srv, "package_max_length", package_max));
    ASSERT_OK(swoop_http_on_request(srv, handler));
}

/* The test's directories: upload_dir for the server, work_dir for the test's files. */
static void dirs(void)
{
    snprintf(upload_dir, sizeof(upload_dir), "%s/up", swoop_test_tmpdir());
    snprintf(work_dir, sizeof(work_dir), "%s/work", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(upload_dir, 0700), 0);
    ASSERT_EQ(mkdir(work_dir, 0700), 0);
}

static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Writes a test file of `size` pseudo-random bytes with CRLF-- runs sprinkled in. */
static uint64_t make_file(const char *path, size_t size, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    uint64_t h = FNV0;
    unsigned x = seed * 2654435761u + 1;
    for (size_t i = 0; i < size; i++) {
        x = x * 1103515245u + 12345u;
        unsigned char c = (unsigned char)(x >> 16);
        if (i % 997 < 4)
            c = (unsigned char)"\r\n--"[i % 997];
        fputc(c, f);
        h = fnv(h, &c, 1);
    }
    fclose(f);
    return h;
}

static srv_handle_t start(swoop_mode_t mode)
{
    return srv_start(mode, setup, NULL, 2);
}

/* Stops the server and checks nothing is left in upload_tmp_dir. */
static void stop(srv_handle_t *h)
{
    WAIT_UNTIL(dir_entries(upload_dir) == 0, 2000);
    srv_stop(h, 5000);
    ASSERT_EQ(dir_entries(upload_dir), 0);
}

/* 40 files (0 B .. ~160 KiB) and 5 text fields in one curl -F upload; the handler's view matches.
 */
static void many_files(swoop_mode_t mode)
{
    dirs();
    srv_handle_t h = start(mode);
    static char cmd[16384], want[16384], out[65536];
    int c = snprintf(cmd, sizeof(cmd), "cd %s && curl -sS", work_dir);
    int w = snprintf(want, sizeof(want), "body 0 files 40\n");
    for (int i = 0; i < 40; i++) {
        char name[64], path[700];
        snprintf(name, sizeof(name), "file%02d.bin", i);
        snprintf(path, sizeof(path), "%s/%s", work_dir, name);
        size_t size = i == 0 ? 0 : (size_t)(i * i * 97 + i * 13) % 163840;
        uint64_t hh = make_file(path, size, (unsigned)i);
        c += snprintf(cmd + c, sizeof(cmd) - (size_t)c, " -F 'f%d=@%s;type=application/x-t%d'", i,
                      name, i);
        w += snprintf(want + w, sizeof(want) - (size_t)w, "f%d %s application/x-t%d %zu %016llx\n",
                      i, name, i, size, (unsigned long long)hh);
    }
    for (int i = 0; i < 5; i++) {
        c += snprintf(cmd + c, sizeof(cmd) - (size_t)c, " -F 't%d=value %d'", i, i);
        w += snprintf(want + w, sizeof(want) - (size_t)w, "t%d=value %d\n", i, i);
    }
    snprintf(cmd + c, sizeof(cmd) - (size_t)c, " http://127.0.0.1:%d/up", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, want);
    /* The same again, chunked: the parser sees the decoded body. */
    char *url = strstr(cmd, " http://");
    memmove(url + 35, url, strlen(url) + 1);
    memcpy(url, " -H 'Transfer-Encoding: chunked'   ", 35);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, want);
    stop(&h);
}

TEST_TIMEOUT(http_upload_many_files_process, 120)
{
    many_files(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_upload_many_files_base, 120)
{
    many_files(SWOOP_MODE_BASE);
}

/* python3's http.client with a body it builds itself (quoted boundary, a field with CRLF). */
TEST_TIMEOUT(http_upload_python_client, 60)
{
    dirs();
    srv_handle_t h = start(SWOOP_MODE_PROCESS);
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof(cmd),
             "python3 - <<'EOF'\n"
             "import http.client\n"
             "b = 'py-b0und:ary'\n"
             "parts = [('t1', None, b'line1\\r\\nline2'), ('doc', 'r\\u00e9sum\\u00e9.txt', "
             "bytes(range(256)) * 40)]\n"
             "body = b'preamble\\r\\n'\n"
             "for name, fn, data in parts:\n"
             "    body += b'--' + b.encode() + b'\\r\\n'\n"
             "    d = 'Content-Disposition: form-data; name=\"%%s\"' %% name\n"
             "    if fn: d += '; filename=\"%%s\"\\r\\nContent-Type: text/x-py' %% fn\n"
             "    body += d.encode() + b'\\r\\n\\r\\n' + data + b'\\r\\n'\n"
             "body += b'--' + b.encode() + b'--\\r\\n'\n"
             "c = http.client.HTTPConnection('127.0.0.1', %d, timeout=30)\n"
             "c.request('POST', '/up', body, {'Content-Type': 'multipart/form-data; "
             "boundary=\"%%s\"' %% b})\n"
             "r = c.getresponse()\n"
             "print(r.status)\n"
             "print(r.read().decode(), end='')\n"
             "EOF",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    unsigned char data[256 * 40];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)i;
    char want[512];
    snprintf(want, sizeof(want),
             "200\nbody 0 files 1\ndoc r\xc3\xa9sum\xc3\xa9.txt text/x-py 10240 %016llx\n"
             "t1=line1\r\nline2\n",
             (unsigned long long)fnv(FNV0, data, sizeof(data)));
    ASSERT_STR_EQ(out, want);
    stop(&h);
}

/* swoop_http_file_move: the file is at its new place, whole, and not removed afterwards. */
TEST_TIMEOUT(http_upload_file_move, 60)
{
    dirs();
    srv_handle_t h = start(SWOOP_MODE_BASE);
    char path[700], cmd[2048], out[4096];
    snprintf(path, sizeof(path), "%s/src.bin", work_dir);
    uint64_t hh = make_file(path, 100000, 7);
    snprintf(cmd, sizeof(cmd), "curl -sS -F 'f=@%s;filename=a.bin' http://127.0.0.1:%d/move", path,
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "move 0 again -2\n"));
    snprintf(path, sizeof(path), "%s/moved", work_dir);
    WAIT_UNTIL(dir_entries(upload_dir) == 0, 2000);
    uint64_t size;
    ASSERT_UEQ(file_hash(path, &size), hh);
    ASSERT_UEQ(size, 100000);
    stop(&h);
}

/*
 * Reads one response (head, then Content-Length bytes, or until the close)
 * within `ms`; returns its status, 0 when none came. resp NUL-terminated.
 */
static int read_response(int fd, char *resp, size_t cap, int ms)
{
    size_t got = 0;
    resp[0] = '\0';
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    while (got + 1 < cap && swoop_test_now_ms() < deadline) {
        const char *end = strstr(resp, "\r\n\r\n");
        const char *cl = strstr(resp, "Content-Length: ");
        if (end && cl && cl < end && got >= (size_t)(end + 4 - resp) + (size_t)atol(cl + 16))
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t k = recv(fd, resp + got, cap - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
        resp[got] = '\0';
    }
    int status = 0;
    sscanf(resp, "HTTP/1.1 %d", &status);
    return status;
}

/* Sends `req` on a fresh connection; returns the response's status (0: none). */
static int raw_status(int port, const char *req, size_t len, char *resp, size_t cap)
{
    int fd = cli_connect(port);
    cli_write(fd, req, len);
    int st = read_response(fd, resp, cap, 5000);
    close(fd);
    return st;
}

/* Builds a POST /up with the given Content-Type and body (Content-Length). */
static size_t post_to(char *buf, size_t cap, const char *path, const char *ct, const char *body)
{
    int n = snprintf(buf, cap,
                     "POST %s HTTP/1.1\r\nHost: a\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "\r\n%s",
                     path, ct, strlen(body), body);
    ASSERT_LT(n, (int)cap);
    return (size_t)n;
}

static size_t post(char *buf, size_t cap, const char *ct, const char *body)
{
    return post_to(buf, cap, "/up", ct, body);
}

#define MP  "multipart/form-data; boundary=BB"
#define CDA "--BB\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n"
#define CDF "--BB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n"

static void bad_bodies(swoop_mode_t mode)
{
    dirs();
    srv_handle_t h = start(mode);
    /* A keep-alive connection opened first is served before and after. */
    int ka = cli_connect(h.port);
    static const char get[] = "GET /up HTTP/1.1\r\nHost: a\r\n\r\n";
    static const struct {
        const char *ct, *body;
    } cases[] = {
        {"multipart/form-data", CDA "v\r\n--BB--\r\n"},
        {"multipart/form-data; boundary=", CDA "v\r\n--BB--\r\n"},
        {"multipart/form-data; boundary=a!b", CDA "v\r\n--BB--\r\n"},
        {MP, CDA "v\r\n--BB"},         /* no final delimiter */
        {MP, CDF "partial file data"}, /* truncated inside a file */
        {MP, "--BB\r\nContent-Disposition: form-data\r\n\r\nv\r\n--BB--\r\n"}, /* no name */
        {MP, "--BB\r\nContent-Type: a/b\r\n\r\nv\r\n--BB--\r\n"},              /* no disposition */
        {MP, "--BB\r\nContent-Disposition: form-data; name=a\n\r\nv\r\n--BB--\r\n"}, /* bare LF */
        {MP, CDF "data\r\n--BBx\r\n"}, /* junk after a delimiter */
        {MP, ""},                      /* empty body */
    };
    char req[1024], resp[2048];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = post(req, sizeof(req), cases[i].ct, cases[i].body);
        int st = raw_status(h.port, req, n, resp, sizeof(resp));
        if (st != 400)
            FAIL("case %zu (%s): status %d: %s", i, cases[i].body, st, resp);
        ASSERT_NOT_NULL(strstr(resp, "Connection: close\r\n"));
        cli_write(ka, get, sizeof(get) - 1);
        char line[4096];
        ssize_t k = recv(ka, line, sizeof(line) - 1, 0);
        ASSERT_GT(k, 0);
        line[k] = '\0';
        ASSERT_NOT_NULL(strstr(line, "HTTP/1.1 200 OK\r\n"));
    }
    /* Headers of a multipart request that never ends its body: the files are still removed. */
    int fd = cli_connect(h.port);
    static const char head[] = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Type: " MP
                               "\r\nContent-Length: 100000\r\n\r\n" CDF "some bytes";
    cli_write(fd, head, sizeof(head) - 1);
    WAIT_UNTIL(dir_entries(upload_dir) == 1, 2000);
    close(fd); /* the connection dies mid-upload */
    WAIT_UNTIL(dir_entries(upload_dir) == 0, 2000);
    close(ka);
    stop(&h);
}

TEST_TIMEOUT(http_upload_bad_bodies_process, 60)
{
    bad_bodies(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_upload_bad_bodies_base, 60)
{
    bad_bodies(SWOOP_MODE_BASE);
}

/* upload_max_filesize: a larger file is answered 413 and nothing is left. */
TEST_TIMEOUT(http_upload_max_filesize, 60)
{
    dirs();
    max_filesize = "64K";
    srv_handle_t h = start(SWOOP_MODE_PROCESS);
    static char req[200000], resp[2048];
    for (int over = 0; over < 2; over++) {
        size_t size = 65536 + (size_t)over;
        int n = snprintf(req, sizeof(req),
                         "POST /up HTTP/1.1\r\nHost: a\r\nContent-Type: " MP
                         "\r\nContent-Length: %zu\r\n\r\n" CDF,
                         sizeof(CDF) - 1 + size + 8);
        memset(req + n, 'z', size);
        memcpy(req + n + size, "\r\n--BB--", 8);
        int st = raw_status(h.port, req, (size_t)n + size + 8, resp, sizeof(resp));
        ASSERT_EQ(st, over ? 413 : 200);
        if (!over)
            ASSERT_NOT_NULL(strstr(resp, "f x text/plain 65536 "));
    }
    max_filesize = "2M";
    stop(&h);
}

/* An upload_tmp_dir that cannot take files: 500, and the server goes on. */
TEST_TIMEOUT(http_upload_tmp_dir_unusable, 60)
{
    dirs();
    static char missing[600];
    snprintf(missing, sizeof(missing), "%s/missing", upload_dir);
    server_tmp = missing;
    srv_handle_t h = start(SWOOP_MODE_PROCESS);
    char req[1024], resp[2048];
    for (int i = 0; i < 3; i++) {
        size_t n = post(req, sizeof(req), MP, CDF "data\r\n--BB--\r\n");
        ASSERT_EQ(raw_status(h.port, req, n, resp, sizeof(resp)), 500);
    }
    /* Text fields need no file. */
    size_t n = post(req, sizeof(req), MP, CDA "v\r\n--BB--\r\n");
    ASSERT_EQ(raw_status(h.port, req, n, resp, sizeof(resp)), 200);
    srv_stop(&h, 5000);
    server_tmp = upload_dir;
    ASSERT_EQ(dir_entries(upload_dir), 0);
}

/* Every process of the server: master, manager, workers. */
static int server_pids(srv_handle_t *h, pid_t *pids)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    int n = 0;
    pids[n++] = h->pid;
    pids[n++] = st.manager_pid;
    for (int i = 0; i < st.worker_num; i++)
        pids[n++] = st.workers[i].pid;
    return n;
}

/*
 * 1 GiB in one file part, from a raw socket, in PROCESS mode: generated as
 * it is sent (no 1 GiB buffer anywhere), hashed by the handler from the
 * file; the anonymous memory of every server process grows by a few MiB at
 * most.
 */
TEST_TIMEOUT(http_upload_1gib_streamed_process, 180)
{
    dirs();
    max_filesize = "2G";
    package_max = "2G";
    srv_handle_t h = start(SWOOP_MODE_PROCESS);
    pid_t pids[16];
    int np = server_pids(&h, pids);
    long before[16];
    for (int i = 0; i < np; i++)
        ASSERT_GE(before[i] = rss_anon_kb(pids[i]), 0);
    const uint64_t size = 1ull << 30;
    static const char tail[] = "\r\n--BB--\r\n";
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "POST /up HTTP/1.1\r\nHost: a\r\nContent-Type: " MP
                     "\r\nContent-Length: %llu\r\n\r\n" CDF,
                     (unsigned long long)(sizeof(CDF) - 1 + size + sizeof(tail) - 1));
    uint64_t t0 = swoop_test_now_ms();
    int fd = cli_connect(h.port);
    cli_write(fd, head, (size_t)n);
    static unsigned char block[1 << 16];
    uint64_t hh = FNV0, x = 88172645463325252ull;
    for (uint64_t sent = 0; sent < size; sent += sizeof(block)) {
        for (size_t i = 0; i < sizeof(block); i += 8) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            memcpy(block + i, &x, 8);
        }
        memcpy(block + (sent >> 16) % 60000, "\r\n--Bz", 6); /* a near-delimiter per block */
        hh = fnv(hh, block, sizeof(block));
        cli_write(fd, block, sizeof(block));
        if (swoop_test_now_ms() - t0 > 150000)
            FAIL("1 GiB not sent within 150 s");
    }
    cli_write(fd, tail, sizeof(tail) - 1);
    uint64_t t_sent = swoop_test_now_ms();
    static char resp[4096];
    ASSERT_EQ(read_response(fd, resp, sizeof(resp), 160000 / (int)swoop_test_multiplier()), 200);
    close(fd);
    uint64_t t_done = swoop_test_now_ms();
    char want[256];
    snprintf(want, sizeof(want), "body 0 files 1\nf x text/plain %llu %016llx\n",
             (unsigned long long)size, (unsigned long long)hh);
    ASSERT_NOT_NULL(strstr(resp, "HTTP/1.1 200 OK\r\n"));
    ASSERT_NOT_NULL(strstr(resp, want));
    long worst = 0;
    for (int i = 0; i < np; i++) {
        long after = rss_anon_kb(pids[i]);
        ASSERT_GE(after, 0);
        printf("# 1 GiB upload: pid %d anonymous memory %ld -> %ld kB (%+ld)\n", (int)pids[i],
               before[i], after, after - before[i]);
        if (after - before[i] > worst)
            worst = after - before[i];
    }
    printf("# 1 GiB upload: sent in %llu ms, answered %llu ms later; worst growth %ld kB\n",
           (unsigned long long)(t_sent - t0), (unsigned long long)(t_done - t_sent), worst);
    ASSERT_LE(worst, 8 * 1024);
    max_filesize = "2M";
    package_max = "8M";
    stop(&h);
}

/*
 * A worker killed while it holds an upload: PROCESS, the owner answers 503
 * and removes the file; BASE, the worker owned the connection too and the
 * manager removes what it left, by its pid, once reaped.
 */
static void worker_crash(swoop_mode_t mode)
{
    dirs();
    srv_handle_t h = start(mode);
    char req[1024], resp[2048];
    size_t n = post_to(req, sizeof(req), "/crash", MP, CDF "data\r\n--BB--\r\n");
    int st = raw_status(h.port, req, n, resp, sizeof(resp));
    ASSERT_EQ(st, mode == SWOOP_MODE_PROCESS ? 503 : 0);
    WAIT_UNTIL(dir_entries(upload_dir) == 0, 3000);
    /* The respawned worker serves uploads. */
    n = post(req, sizeof(req), MP, CDF "data\r\n--BB--\r\n");
    WAIT_UNTIL(raw_status(h.port, req, n, resp, sizeof(resp)) == 200, 5000);
    stop(&h);
}

TEST_TIMEOUT(http_upload_worker_crash_process, 60)
{
    worker_crash(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_upload_worker_crash_base, 60)
{
    worker_crash(SWOOP_MODE_BASE);
}
