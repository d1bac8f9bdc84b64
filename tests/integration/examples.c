/*
 * The examples stay true: each is run as a real program and checked.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static const char *build_dir(void)
{
    const char *d = getenv("SWOOP_BUILD_DIR");
    if (d == NULL)
        FAIL("SWOOP_BUILD_DIR is not set (run through ctest)");
    return d;
}

/* Starts `prog args...` with stdout on a pipe; returns the pid. */
static pid_t spawn(const char *prog, char *const argv[], int *out_fd)
{
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(prog, argv);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

TEST(example_timers_runs_to_completion)
{
    char prog[1024], line[256];
    snprintf(prog, sizeof(prog), "%s/examples/timers", build_dir());
    int fd;
    pid_t pid = spawn(prog, (char *const[]){prog, NULL}, &fd);
    int ticks = 0, after = 0, done = 0;
    while (swoop_test_read_line(fd, line, sizeof(line), 5000) >= 0) {
        ticks += strncmp(line, "tick ", 5) == 0 && strstr(line, " of ") != NULL;
        after += strstr(line, "a quarter second") != NULL;
        done += strncmp(line, "done: 4 callbacks", 17) == 0;
        ASSERT_NULL(strstr(line, "never printed"));
    }
    close(fd);
    swoop_test_wait_ok(pid, 5000);
    ASSERT_EQ(ticks, 3);
    ASSERT_EQ(after, 1);
    ASSERT_EQ(done, 1);
}

TEST(example_co_fanout_gathers_in_arrival_order)
{
    char prog[1024], line[256];
    snprintf(prog, sizeof(prog), "%s/examples/co_fanout", build_dir());
    int fd;
    pid_t pid = spawn(prog, (char *const[]){prog, NULL}, &fd);
    int answers = 0, done = 0;
    long ms = -1;
    const char *order[5] = {"slept 50 ms", "slept 100 ms", "slept 150 ms", "slept 200 ms",
                            "slept 250 ms"};
    while (swoop_test_read_line(fd, line, sizeof(line), 5000) >= 0) {
        if (strncmp(line, "answer ", 7) == 0) {
            ASSERT_LT(answers, 5);
            ASSERT_NOT_NULL(strstr(line, order[answers]));
            answers++;
        }
        if (sscanf(line, "done: 5 answers in %ld ms", &ms) == 1)
            done++;
    }
    close(fd);
    swoop_test_wait_ok(pid, 5000);
    ASSERT_EQ(answers, 5);
    ASSERT_EQ(done, 1);
    /* Concurrent: about the longest delay, far from their 750 ms sum. */
    ASSERT_GE(ms, 250);
    ASSERT_LT(ms, 700);
}

TEST(example_loop_echo_echoes)
{
    char prog[1024], line[256];
    snprintf(prog, sizeof(prog), "%s/examples/loop_echo", build_dir());
    int fd;
    pid_t pid = spawn(prog, (char *const[]){prog, "0", NULL}, &fd);
    ASSERT_GT(swoop_test_read_line(fd, line, sizeof(line), 5000), 0);
    int port = 0;
    ASSERT_EQ(sscanf(line, "listening on 127.0.0.1:%d", &port), 1);
    ASSERT_GT(port, 0);

    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char big[100000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7);
    ASSERT_EQ(send(c, big, sizeof(big), 0), (ssize_t)sizeof(big));
    char back[sizeof(big)];
    size_t got = 0;
    while (got < sizeof(back)) {
        ssize_t n = recv(c, back + got, sizeof(back) - got, 0);
        ASSERT_GT(n, 0);
        got += (size_t)n;
    }
    ASSERT_MEM_EQ(back, big, sizeof(big));
    close(c);

    ASSERT_EQ(kill(pid, SIGTERM), 0);
    ASSERT_GT(swoop_test_read_line(fd, line, sizeof(line), 5000), 0);
    ASSERT_NOT_NULL(strstr(line, "stopping"));
    close(fd);
    swoop_test_wait_ok(pid, 5000);
}

/*
 * Starts a server example (argv[0] under the build's examples/) on port 0:
 * reads the port from its "<name>: <MODE> mode on 127.0.0.1:<port>" line,
 * then waits for its "master pid" line (printed by on_start). Returns the
 * pid; *out_fd is its stdout, *port the port.
 */
static pid_t start_server_example(char *const argv[], int *out_fd, int *port)
{
    char line[256];
    pid_t pid = spawn(argv[0], argv, out_fd);
    const char *name = strrchr(argv[0], '/') + 1;
    *port = 0;
    while (*port == 0) {
        ASSERT_GT(swoop_test_read_line(*out_fd, line, sizeof(line), 5000), 0);
        const char *at = strstr(line, " mode on 127.0.0.1:");
        if (strncmp(line, name, strlen(name)) == 0 && at)
            *port = atoi(at + strlen(" mode on 127.0.0.1:"));
    }
    ASSERT_GT(swoop_test_read_line(*out_fd, line, sizeof(line), 5000), 0);
    ASSERT_NOT_NULL(strstr(line, "master pid"));
    return pid;
}

static int connect_loopback(int port)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(c, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return c;
}

/* Runs examples/tcp_echo in `mode` on port 0, echoes 64 KiB through it, stops it with SIGTERM. */
static void run_tcp_echo(const char *mode)
{
    char prog[1024];
    snprintf(prog, sizeof(prog), "%s/examples/tcp_echo", build_dir());
    int fd, port;
    pid_t pid =
        start_server_example((char *const[]){prog, (char *)mode, "0", "2", NULL}, &fd, &port);
    int c = connect_loopback(port);
    static char big[65536], back[65536];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 13);
    ASSERT_EQ(send(c, big, sizeof(big), 0), (ssize_t)sizeof(big));
    size_t got = 0;
    while (got < sizeof(back)) {
        ssize_t n = recv(c, back + got, sizeof(back) - got, 0);
        ASSERT_GT(n, 0);
        got += (size_t)n;
    }
    ASSERT_MEM_EQ(back, big, sizeof(big));
    close(c);
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    close(fd);
    swoop_test_wait_ok(pid, 10000);
}

/* Runs examples/http_hello in `mode` on port 0: GET /hello and POST /echo over one keep-alive
 * connection. */
static void run_http_hello(const char *mode)
{
    char prog[1024];
    snprintf(prog, sizeof(prog), "%s/examples/http_hello", build_dir());
    int fd, port;
    pid_t pid =
        start_server_example((char *const[]){prog, (char *)mode, "0", "2", NULL}, &fd, &port);
    int c = connect_loopback(port);
    const char *q = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping";
    ASSERT_EQ(send(c, q, strlen(q), 0), (ssize_t)strlen(q));
    char buf[2048] = {0};
    size_t got = 0;
    while (strstr(buf, "ping") == NULL) {
        ssize_t n = recv(c, buf + got, sizeof(buf) - 1 - got, 0);
        ASSERT_GT(n, 0);
        got += (size_t)n;
        buf[got] = '\0';
    }
    ASSERT_NOT_NULL(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    ASSERT_NOT_NULL(strstr(buf, "\r\n\r\nhello\n"));
    ASSERT_NOT_NULL(strstr(buf, "Content-Length: 4\r\n"));
    close(c);
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    close(fd);
    swoop_test_wait_ok(pid, 10000);
}

TEST(example_http_hello_process)
{
    run_http_hello("process");
}

TEST(example_http_hello_base)
{
    run_http_hello("base");
}

TEST(example_tcp_echo_process)
{
    run_tcp_echo("process");
}

TEST(example_tcp_echo_base)
{
    run_tcp_echo("base");
}

/*
 * Runs examples/task_demo in `mode` with `ipc` (task_ipc_mode): a line comes
 * back reversed by a task worker, and "die" (which kills its task worker on
 * the first attempt) is answered by the second attempt (task_redeliver 1).
 */
static void run_task_demo(const char *mode, const char *ipc)
{
    char prog[1024], line[256];
    snprintf(prog, sizeof(prog), "%s/examples/task_demo", build_dir());
    int fd, port;
    pid_t pid = start_server_example((char *const[]){prog, (char *)mode, "0", (char *)ipc, NULL},
                                     &fd, &port);
    int c = connect_loopback(port);
    ASSERT_EQ(send(c, "hello\n", 6, 0), 6);
    ASSERT_GT(swoop_test_read_line(c, line, sizeof(line), 5000), 0);
    int tw = -1, attempt = -1;
    ASSERT_EQ(sscanf(line, "olleh (task worker %d, attempt %d)", &tw, &attempt), 2);
    ASSERT(tw == 2 || tw == 3);
    ASSERT_EQ(attempt, 1);
    ASSERT_EQ(send(c, "die\n", 4, 0), 4);
    ASSERT_GT(swoop_test_read_line(c, line, sizeof(line), 5000), 0);
    ASSERT_EQ(sscanf(line, "eid (task worker %d, attempt %d)", &tw, &attempt), 2);
    ASSERT_EQ(attempt, 2);
    close(c);
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    close(fd);
    swoop_test_wait_ok(pid, 10000);
}

TEST(example_task_demo_process)
{
    run_task_demo("process", "1");
}

TEST(example_task_demo_base_queue)
{
    run_task_demo("base", "3");
}

/* Runs examples/ws_chat in `mode`: the page over HTTP, then two members chatting over WebSocket. */
static void run_ws_chat(const char *mode)
{
    char prog[1024];
    snprintf(prog, sizeof(prog), "%s/examples/ws_chat", build_dir());
    int fd, port;
    pid_t pid = start_server_example((char *const[]){prog, (char *)mode, "0", NULL}, &fd, &port);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "PORT=%d /usr/bin/python3 - <<'EOF'\n"
             "import asyncio, os, urllib.request, websockets\n"
             "base = '127.0.0.1:' + os.environ['PORT']\n"
             "page = urllib.request.urlopen('http://' + base + '/').read().decode()\n"
             "assert \"new WebSocket('ws://' + location.host + '/chat')\" in page\n"
             "async def main():\n"
             "    a = await websockets.connect('ws://' + base + '/chat')\n"
             "    ext = a.response_headers['Sec-WebSocket-Extensions']\n"
             "    assert ext.startswith('permessage-deflate'), ext\n"
             "    assert (await a.recv()).endswith('joined')\n"
             "    b = await websockets.connect('ws://' + base + '/chat')\n"
             "    assert (await a.recv()).endswith('joined')\n"
             "    await a.send('hi there')\n"
             /* Announcements race the new member's own opening: skip them. */
             "    m = await b.recv()\n"
             "    while ': ' not in m:\n"
             "        m = await b.recv()\n"
             "    print(m.split(': ', 1)[1])\n"
             "    await a.close()\n"
             "    print((await b.recv()).endswith('left'))\n"
             "    await b.close()\n"
             "asyncio.run(main())\n"
             "EOF\n",
             port);
    FILE *f = popen(cmd, "r");
    ASSERT_NOT_NULL(f);
    char out[256];
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    ASSERT_EQ(pclose(f), 0);
    ASSERT_STR_EQ(out, "hi there\nTrue\n");
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    close(fd);
    swoop_test_wait_ok(pid, 10000);
}

TEST(example_ws_chat_process)
{
    run_ws_chat("process");
}

TEST(example_ws_chat_base)
{
    run_ws_chat("base");
}

/* Sends one GET (Connection: close) on a new connection; returns the socket to read later. */
static int send_get(int port, const char *target)
{
    int c = connect_loopback(port);
    char q[256];
    int n =
        snprintf(q, sizeof(q), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target);
    ASSERT_EQ(send(c, q, (size_t)n, 0), n);
    return c;
}

/* Reads a response to EOF; returns its body (after the head) in body. */
static void read_body(int c, char *body, size_t cap)
{
    char buf[2048];
    size_t got = 0;
    for (;;) {
        ASSERT_LT(got, sizeof(buf) - 1);
        ssize_t n = recv(c, buf + got, sizeof(buf) - 1 - got, 0);
        ASSERT_GE(n, 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(c);
    ASSERT_NOT_NULL(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    const char *b = strstr(buf, "\r\n\r\n");
    ASSERT_NOT_NULL(b);
    snprintf(body, cap, "%s", b + 4);
}

TEST(example_co_backend_pool_reuses_backend_connections)
{
    char prog[1024];
    snprintf(prog, sizeof(prog), "%s/examples/co_backend_pool", build_dir());
    int fd, port;
    /* One worker, so its pool's counters cover every request. */
    pid_t pid = start_server_example((char *const[]){prog, "0", "1", NULL}, &fd, &port);
    /* Three rounds of 10 requests at once: each handler waits 20 ms on the backend. */
    for (int round = 0; round < 3; round++) {
        int c[10];
        char target[64], body[128], want[32];
        for (int i = 0; i < 10; i++) {
            snprintf(target, sizeof(target), "/square?n=%d", round * 10 + i);
            c[i] = send_get(port, target);
        }
        for (int i = 0; i < 10; i++) {
            read_body(c[i], body, sizeof(body));
            snprintf(want, sizeof(want), "%d\n", (round * 10 + i) * (round * 10 + i));
            ASSERT_STR_EQ(body, want);
        }
    }
    /* At most 10 connections were ever open at once: the other requests reused them. */
    char body[128];
    read_body(send_get(port, "/pool"), body, sizeof(body));
    unsigned long long open_now, idle, connects, reuses;
    ASSERT_EQ(sscanf(body, "open %llu idle %llu connects %llu reuses %llu", &open_now, &idle,
                     &connects, &reuses),
              4);
    ASSERT_EQ(connects + reuses, 30);
    ASSERT_LE(connects, 10);
    ASSERT_GE(reuses, 20);
    ASSERT_EQ(open_now, idle); /* none out between requests */
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    close(fd);
    swoop_test_wait_ok(pid, 10000);
}
