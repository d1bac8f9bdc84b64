/*
 * The HTTP API around the request and response (issue 11), both modes:
 * swoop_http_respond from a task worker (pipelined answers stay in order,
 * a body larger than one IPC datagram, a second answer refused),
 * trailers, swoop_http_sendfile, swoop_http_is_writable when the client
 * goes away, swoop_http_remote_addr, the access log reopened on SIGRTMIN in
 * every process, and Python's http.client as a client.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <swoop/http.h>

#include "client_util.h"
#include "server_common.h"

#define BIG_TASK_BODY (100 * 1024)

typedef struct shared_s {
    _Atomic int task_answers;   /* swoop_http_respond from on_task returned 0 */
    _Atomic int task_refused;   /* its second call returned SWOOP_ESTATE */
    _Atomic int stream_writes;  /* /forever: writes before the stream stopped */
    _Atomic int stream_stopped; /* /forever: 1 once is_writable said 0 after the client left */
    _Atomic int bad_trailer;    /* a forbidden trailer name was refused */
} shared_t;

static shared_t *sh;
static char file_path[PATH_MAX];
static char access_path[PATH_MAX];

static void on_task(swoop_server_t *srv, int64_t task, int src, const void *data, size_t len)
{
    (void)task;
    (void)src;
    uint64_t id;
    ASSERT_GE(len, sizeof(id));
    memcpy(&id, data, sizeof(id));
    int big = len > sizeof(id);
    if (big) {
        /* Larger than an IPC datagram: the relay to the event worker goes in chunks. */
        char *body = malloc(BIG_TASK_BODY);
        ASSERT_NOT_NULL(body);
        for (size_t i = 0; i < BIG_TASK_BODY; i++)
            body[i] = (char)('a' + i % 26);
        ASSERT_OK(swoop_http_respond(srv, id, 200, "text/plain", body, BIG_TASK_BODY));
        free(body);
    } else {
        char body[64];
        int n = snprintf(body, sizeof(body), "task worker %d\n", swoop_server_worker_id(srv));
        ASSERT_OK(swoop_http_respond(srv, id, 202, "text/plain", body, (size_t)n));
    }
    atomic_fetch_add(&sh->task_answers, 1);
    /* Never a second answer: refused, or the connection (closed after its last answer) gone. */
    int again = swoop_http_respond(srv, id, 200, NULL, "x", 1);
    if (again == SWOOP_ESTATE || again == SWOOP_ECLOSED)
        atomic_fetch_add(&sh->task_refused, 1);
    ASSERT_EQ(swoop_http_respond(srv, id, 200, "text/plain\r\nX: y", "x", 1), SWOOP_EINVAL);
}

static void handler(swoop_server_t *srv, swoop_http_request_t *req, swoop_http_response_t *res)
{
    const char *path = swoop_http_path(req);
    if (strcmp(path, "/task") == 0 || strcmp(path, "/task-big") == 0) {
        uint64_t id = swoop_http_detach(res);
        ASSERT_NE(id, 0u);
        char msg[16] = {0};
        memcpy(msg, &id, sizeof(id));
        size_t n = strcmp(path, "/task-big") == 0 ? sizeof(msg) : sizeof(id);
        ASSERT_GT(swoop_server_task(srv, msg, n, -1), 0);
        return;
    }
    if (strcmp(path, "/trailers") == 0) {
        ASSERT_OK(swoop_http_header_set(res, "Content-Type", "text/plain"));
        ASSERT_OK(swoop_http_trailer_set(res, "X-Checksum", "abc123"));
        if (swoop_http_trailer_set(res, "Content-Length", "5") == SWOOP_EINVAL &&
            swoop_http_trailer_set(res, "X-Bad", "a\r\nb") == SWOOP_EINVAL)
            atomic_store(&sh->bad_trailer, 1);
        if (strcmp(swoop_http_query(req), "stream") == 0) {
            ASSERT_OK(swoop_http_write(res, "one,", 4));
            ASSERT_OK(swoop_http_trailer_set(res, "X-Count", "2"));
        }
        ASSERT_OK(swoop_http_end(res, "two", 3));
        ASSERT_EQ(swoop_http_trailer_set(res, "X-Late", "1"), SWOOP_ESTATE);
        return;
    }
    if (strcmp(path, "/file") == 0) {
        char off[32] = "0", len[32] = "0";
        swoop_http_query_get(req, "off", off, sizeof(off));
        swoop_http_query_get(req, "len", len, sizeof(len));
        int rc =
            swoop_http_sendfile(res, file_path, strtoull(off, NULL, 10), strtoull(len, NULL, 10));
        if (rc == SWOOP_EINVAL) {
            swoop_http_status(res, 416);
            swoop_http_end(res, "range\n", 6);
        }
        return;
    }
    if (strcmp(path, "/nofile") == 0) {
        int rc = swoop_http_sendfile(res, "/nonexistent/file", 0, 0);
        ASSERT(rc < 0);
        swoop_http_status(res, 404);
        swoop_http_end(res, "none\n", 5);
        return;
    }
    if (strcmp(path, "/forever") == 0) {
        char chunk[16384];
        memset(chunk, 'z', sizeof(chunk));
        int i = 0;
        /* Bounded: about 1 GiB at most; the client leaves long before. */
        for (; i < 65536 && swoop_http_is_writable(res); i++) {
            if (swoop_http_write(res, chunk, sizeof(chunk)) < 0)
                break;
        }
        atomic_store(&sh->stream_writes, i);
        atomic_store(&sh->stream_stopped, !swoop_http_is_writable(res));
        swoop_http_end(res, NULL, 0);
        return;
    }
    if (strcmp(path, "/addr") == 0) {
        swoop_addr_t a;
        ASSERT_OK(swoop_http_remote_addr(req, &a));
        char out[SWOOP_ADDR_STRLEN + 1];
        int n = swoop_addr_format(&a, out, sizeof(out) - 1);
        ASSERT_GT(n, 0);
        out[n++] = '\n';
        swoop_http_end(res, out, (size_t)n);
        return;
    }
    if (strcmp(path, "/echo") == 0) {
        size_t len;
        const void *body = swoop_http_body(req, &len);
        swoop_http_header_set(res, "X-Method", swoop_http_method(req));
        swoop_http_end(res, body, len);
        return;
    }
    if (strcmp(path, "/hello") == 0) {
        swoop_http_end(res, "hello\n", 6);
        return;
    }
    swoop_http_status(res, 404);
    swoop_http_end(res, "not found\n", 10);
}

static void setup(swoop_server_t *srv, void *arg)
{
    (void)arg;
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "task_worker_num", "2"));
    if (access_path[0]) {
        ASSERT_OK(swoop_server_set(srv, "http_access_log", access_path));
        ASSERT_OK(swoop_server_set(srv, "http_access_log_format", "json"));
    }
    ASSERT_OK(swoop_http_on_request(srv, handler));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_task = on_task}));
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
    access_path[0] = '\0';
}

/* Pipelined: two answered by task workers, then one by the handler, in request order. */
static void task_respond(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    int fd = cli_connect(h.port);
    const char *q = "GET /task HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /task-big HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cli_write(fd, q, strlen(q));
    size_t cap = BIG_TASK_BODY + 4096;
    char *buf = malloc(cap);
    ASSERT_NOT_NULL(buf);
    size_t n = read_all(fd, buf, cap, 10000);
    close(fd);
    ASSERT_GT(n, (size_t)BIG_TASK_BODY);
    char *first = strstr(buf, "HTTP/1.1 202 Accepted\r\n");
    char *second = strstr(buf, "HTTP/1.1 200 OK\r\n");
    ASSERT_NOT_NULL(first);
    ASSERT_NOT_NULL(second);
    ASSERT(first < second);
    ASSERT_NOT_NULL(strstr(first, "\r\n\r\ntask worker "));
    char want[64];
    snprintf(want, sizeof(want), "Content-Length: %d\r\n", BIG_TASK_BODY);
    ASSERT_NOT_NULL(strstr(second, want));
    char *body = strstr(second, "\r\n\r\n") + 4;
    for (size_t i = 0; i < BIG_TASK_BODY; i++) {
        if (body[i] != (char)('a' + i % 26))
            FAIL("byte %zu of the task worker's body is %d", i, body[i]);
    }
    ASSERT_NOT_NULL(strstr(body + BIG_TASK_BODY, "HTTP/1.1 200 OK\r\n"));
    ASSERT_NOT_NULL(strstr(body + BIG_TASK_BODY, "\r\n\r\nhello\n"));
    free(buf);
    /* Counted after swoop_http_respond returned: the client can have the answer first. */
    WAIT_UNTIL(atomic_load(&sh->task_refused) == 2, 5000);
    ASSERT_EQ(atomic_load(&sh->task_answers), 2);
    ASSERT_EQ(atomic_load(&sh->task_refused), 2);
    stop(&h);
}

TEST_TIMEOUT(http_api_task_worker_respond_process, 60)
{
    task_respond(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_api_task_worker_respond_base, 60)
{
    task_respond(SWOOP_MODE_BASE);
}

static void trailers(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    int fd = cli_connect(h.port);
    const char *q = "GET /trailers HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /trailers?stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cli_write(fd, q, strlen(q));
    char buf[4096];
    read_all(fd, buf, sizeof(buf), 5000);
    close(fd);
    /* swoop_http_end alone: sent chunked because of the trailer. */
    char *a = strstr(buf, "Transfer-Encoding: chunked\r\n");
    ASSERT_NOT_NULL(a);
    ASSERT_NOT_NULL(strstr(a, "\r\n\r\n3\r\ntwo\r\n0\r\nX-Checksum: abc123\r\n\r\nHTTP/1.1"));
    char *b = strstr(a, "\r\n\r\nHTTP/1.1 200 OK\r\n");
    ASSERT_NOT_NULL(b);
    ASSERT_NOT_NULL(strstr(
        b, "\r\n\r\n4\r\none,\r\n3\r\ntwo\r\n0\r\nX-Checksum: abc123\r\nX-Count: 2\r\n\r\n"));
    ASSERT_EQ(atomic_load(&sh->bad_trailer), 1);
    /* HTTP/1.0: no chunked framing, so no trailers; the body ends with the close. */
    fd = cli_connect(h.port);
    q = "GET /trailers HTTP/1.0\r\n\r\n";
    cli_write(fd, q, strlen(q));
    read_all(fd, buf, sizeof(buf), 5000);
    close(fd);
    ASSERT_NOT_NULL(strstr(buf, "Content-Length: 3\r\n"));
    ASSERT_NULL(strstr(buf, "X-Checksum"));
    ASSERT_NOT_NULL(strstr(buf, "\r\n\r\ntwo"));
    /* curl decodes the chunked body with its trailers, also compressed. */
    char cmd[256], out[1024];
    snprintf(cmd, sizeof(cmd), "curl -sS http://127.0.0.1:%d/trailers?stream", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "one,two");
    snprintf(cmd, sizeof(cmd), "curl -sS --compressed http://127.0.0.1:%d/trailers?stream", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "one,two");
    /* Compressed: the trailer section still follows the last chunk. */
    fd = cli_connect(h.port);
    q = "GET /trailers?stream HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
        "Connection: close\r\n\r\n";
    cli_write(fd, q, strlen(q));
    size_t n = read_all(fd, buf, sizeof(buf), 5000);
    close(fd);
    ASSERT_NOT_NULL(strstr(buf, "Content-Encoding: gzip\r\n"));
    const char *end = "\r\n0\r\nX-Checksum: abc123\r\nX-Count: 2\r\n\r\n";
    ASSERT_GT(n, strlen(end));
    ASSERT_MEM_EQ(buf + n - strlen(end), end, strlen(end)); /* the body is binary: from the end */
    stop(&h);
}

TEST_TIMEOUT(http_api_trailers_process, 60)
{
    trailers(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_api_trailers_base, 60)
{
    trailers(SWOOP_MODE_BASE);
}

static void sendfile_response(swoop_mode_t mode)
{
    snprintf(file_path, sizeof(file_path), "%s/data.json", swoop_test_tmpdir());
    FILE *f = fopen(file_path, "w");
    ASSERT_NOT_NULL(f);
    for (int i = 0; i < 20000; i++)
        fputc('0' + i % 10, f);
    fclose(f);
    srv_handle_t h = start(mode);
    char cmd[3 * PATH_MAX + 256], out[32768];
    snprintf(cmd, sizeof(cmd), "curl -sS -D - http://127.0.0.1:%d/file -o %s/got && cmp %s %s/got",
             h.port, swoop_test_tmpdir(), file_path, swoop_test_tmpdir());
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "HTTP/1.1 200 OK\r\n"));
    ASSERT_NOT_NULL(strstr(out, "Content-Length: 20000\r\n"));
    ASSERT_NOT_NULL(strstr(out, "Content-Type: application/json"));
    /* A part of it, on a keep-alive connection, then HEAD and a range past the end. */
    int fd = cli_connect(h.port);
    const char *q = "GET /file?off=12&len=5 HTTP/1.1\r\nHost: x\r\n\r\n"
                    "HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /file?off=19999&len=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /nofile HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cli_write(fd, q, strlen(q));
    read_all(fd, out, sizeof(out), 5000);
    close(fd);
    char *a = strstr(out, "Content-Length: 5\r\n");
    ASSERT_NOT_NULL(a);
    ASSERT_NOT_NULL(strstr(a, "\r\n\r\n23456HTTP/1.1 200 OK\r\n"));
    char *b = strstr(a, "Content-Length: 20000\r\n");
    ASSERT_NOT_NULL(b);
    ASSERT_NOT_NULL(strstr(b, "\r\n\r\nHTTP/1.1 416 "));
    ASSERT_NOT_NULL(strstr(b, "HTTP/1.1 404 Not Found\r\n"));
    stop(&h);
}

TEST_TIMEOUT(http_api_sendfile_process, 60)
{
    sendfile_response(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_api_sendfile_base, 60)
{
    sendfile_response(SWOOP_MODE_BASE);
}

/* A client that leaves mid-stream: the handler's loop sees is_writable turn 0 and stops. */
static void writable(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    int fd = cli_connect(h.port);
    const char *q = "GET /forever HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_write(fd, q, strlen(q));
    char buf[65536];
    size_t got = 0;
    while (got < 200000) {
        size_t n = read_all(fd, buf, sizeof(buf), 5000);
        ASSERT_GT(n, 0u);
        got += n;
    }
    close(fd);
    WAIT_UNTIL(atomic_load(&sh->stream_writes) > 0, 30000);
    ASSERT_LT(atomic_load(&sh->stream_writes), 65536);
    ASSERT_EQ(atomic_load(&sh->stream_stopped), 1);
    /* The server goes on serving. */
    char cmd[256], out[256];
    snprintf(cmd, sizeof(cmd), "curl -sS http://127.0.0.1:%d/hello", h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "hello\n");
    stop(&h);
}

TEST_TIMEOUT(http_api_is_writable_process, 90)
{
    writable(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_api_is_writable_base, 90)
{
    writable(SWOOP_MODE_BASE);
}

TEST_TIMEOUT(http_api_remote_addr, 60)
{
    srv_handle_t h = start(SWOOP_MODE_PROCESS);
    int fd = cli_connect(h.port);
    struct sockaddr_in me;
    socklen_t ml = sizeof(me);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
    const char *q = "GET /addr HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cli_write(fd, q, strlen(q));
    char buf[2048], want[64];
    read_all(fd, buf, sizeof(buf), 5000);
    close(fd);
    snprintf(want, sizeof(want), "\r\n\r\n127.0.0.1:%d\n", ntohs(me.sin_port));
    ASSERT_NOT_NULL(strstr(buf, want));
    stop(&h);
}

/* How many of pid's descriptors name `path` (readlink of /proc/PID/fd/N). */
static int fds_naming(pid_t pid, const char *path)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char link[PATH_MAX], target[PATH_MAX];
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        count += strcmp(target, path) == 0;
    }
    closedir(d);
    return count;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

static void curl_hello_times(int port, int times)
{
    char cmd[256], out[1024];
    snprintf(cmd, sizeof(cmd),
             "for i in $(seq %d); do curl -sS http://127.0.0.1:%d/hello || exit 1; done", times,
             port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
}

/* logrotate's way: rename the file, SIGRTMIN; every process writes to a new file of the name. */
static void access_reopen(swoop_mode_t mode)
{
    snprintf(access_path, sizeof(access_path), "%s/access.log", swoop_test_tmpdir());
    srv_handle_t h = start(mode);
    curl_hello_times(h.port, 4);
    WAIT_UNTIL(count_lines(access_path) == 4, 5000);
    char rotated[PATH_MAX + 8];
    snprintf(rotated, sizeof(rotated), "%s.1", access_path);
    ASSERT_EQ(rename(access_path, rotated), 0);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(kill(h.pid, SIGRTMIN), 0);
    /* Every server process lets the rotated file go and holds the new one. */
    pid_t pids[2 + SWOOP_STATS_WORKERS_MAX];
    int np = 0;
    pids[np++] = h.pid;
    if (st.manager_pid != h.pid)
        pids[np++] = st.manager_pid;
    for (int i = 0; i < st.worker_num && i < SWOOP_STATS_WORKERS_MAX; i++)
        pids[np++] = st.workers[i].pid;
    for (int i = 0; i < np; i++) {
        WAIT_UNTIL(fds_naming(pids[i], rotated) == 0, 5000);
        ASSERT_EQ(fds_naming(pids[i], access_path), 1);
    }
    curl_hello_times(h.port, 6);
    char fresh[PATH_MAX];
    snprintf(fresh, sizeof(fresh), "%s", access_path);
    stop(&h);
    ASSERT_EQ(count_lines(rotated), 4);
    ASSERT_EQ(count_lines(fresh), 6);
    /* JSON lines on both sides of the rotation: each whole, each a 200 of /hello. */
    char cmd[3 * PATH_MAX], out[256];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import json, sys\n"
             "for f in sys.argv[1:]:\n"
             "    for l in open(f):\n"
             "        r = json.loads(l)\n"
             "        assert (r[\"target\"], r[\"status\"]) == (\"/hello\", 200), r\n"
             "print(\"ok\")' '%s' '%s'",
             rotated, fresh);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "ok\n");
}

TEST_TIMEOUT(http_api_access_log_reopen_process, 60)
{
    access_reopen(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_api_access_log_reopen_base, 60)
{
    access_reopen(SWOOP_MODE_BASE);
}

/* Python's http.client: keep-alive, a body, a chunked body, HEAD, 404. */
static void python_client(swoop_mode_t mode)
{
    srv_handle_t h = start(mode);
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof(cmd),
             "python3 - <<'EOF'\n"
             "import http.client\n"
             "c = http.client.HTTPConnection('127.0.0.1', %d, timeout=10)\n"
             "c.request('GET', '/hello')\n"
             "r = c.getresponse(); print(r.status, r.read().decode().strip(), r.version)\n"
             "c.request('POST', '/echo', body=b'x' * 70000)\n"
             "r = c.getresponse(); print(r.status, len(r.read()), r.getheader('X-Method'))\n"
             "c.request('PUT', '/echo', body=iter([b'ab', b'cd', b'e']), encode_chunked=True)\n"
             "r = c.getresponse(); print(r.status, r.read().decode())\n"
             "c.request('HEAD', '/hello')\n"
             "r = c.getresponse(); print(r.status, r.getheader('Content-Length'), r.read())\n"
             "c.request('GET', '/nope')\n"
             "r = c.getresponse(); print(r.status, r.reason); r.read()\n"
             "c.request('GET', '/trailers?stream')\n"
             "r = c.getresponse(); print(r.status, r.read().decode())\n"
             "c.close()\n"
             "EOF\n",
             h.port);
    ASSERT_EQ(run(cmd, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "200 hello 11\n"
                       "200 70000 POST\n"
                       "200 abcde\n"
                       "200 6 b''\n"
                       "404 Not Found\n"
                       "200 one,two\n");
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(st.http_2xx, 5u);
    ASSERT_EQ(st.http_4xx, 1u);
    stop(&h);
}

TEST_TIMEOUT(http_api_python_client_process, 60)
{
    python_client(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(http_api_python_client_base, 60)
{
    python_client(SWOOP_MODE_BASE);
}
