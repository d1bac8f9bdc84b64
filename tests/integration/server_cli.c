/*
 * The `swoop` tool as a user runs it: `swoop demo --port 0 --pid-file F`
 * prints its process tree and serves the line commands (echo, after, stats,
 * crash: the worker aborts, the manager restarts it and the client keeps its
 * connection; task N, wait N and bigtask BYTES through the 2 task workers,
 * with errors for bad arguments); `swoop stats --pid-file F` prints the shared stats as JSON;
 * SIGTERM stops everything and removes the pid file.
 */
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "server_common.h"

static const char *swoop_bin(void)
{
    static char path[1024];
    const char *dir = getenv("SWOOP_BUILD_DIR");
    snprintf(path, sizeof(path), "%s/swoop", dir ? dir : ".");
    return path;
}

/* Reads lines from fd until one contains `needle` (returned in buf) or ms pass. */
static int read_until(int fd, const char *needle, char *buf, size_t cap, int ms)
{
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    while (swoop_test_now_ms() < deadline) {
        int n = swoop_test_read_line(fd, buf, cap, 500);
        if (n >= 0 && strstr(buf, needle))
            return 1;
    }
    return 0;
}

/* The task temp files in dir. */
static int swoop_files(const char *dir)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "swoop-task.", 11) == 0;
    closedir(d);
    return n;
}

TEST(cli_demo_and_stats)
{
    char pid_file[512], line[4096];
    snprintf(pid_file, sizeof(pid_file), "%s/demo.pid", swoop_test_tmpdir());
    char tmpdir[512], tmp_set[600];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tasks", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(tmpdir, 0700), 0);
    snprintf(tmp_set, sizeof(tmp_set), "task_tmpdir=%s", tmpdir);
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execl(swoop_bin(), "swoop", "demo", "--port", "0", "--pid-file", pid_file, "--set",
              "worker_num=2", "--set", tmp_set, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    ASSERT(read_until(out[0], "line-protocol server on", line, sizeof(line), 5000));
    int port = 0;
    char *p = strstr(line, "127.0.0.1:");
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(sscanf(p, "127.0.0.1:%d", &port), 1);
    ASSERT(read_until(out[0], "worker 1 pid", line, sizeof(line), 5000));

    int fd = cli_connect(port);
    ASSERT(read_until(fd, "swoop demo: conn", line, sizeof(line), 3000));
    cli_write(fd, "echo hello\n", 11);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 3000), 0);
    ASSERT_STR_EQ(line, "hello");

    /* Task workers: a CPU-bound task (on_finish replies), taskwait, a big payload. */
    cli_write(fd, "task 100000\n", 12);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 10000), 0);
    int tw = -1;
    ASSERT_EQ(sscanf(line, "task 100000: 9592 primes below 100000 (task worker %d)", &tw), 1);
    ASSERT(tw == 2 || tw == 3);
    cli_write(fd, "wait 10\n", 8);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 10000), 0);
    tw = -1;
    ASSERT_EQ(sscanf(line, "wait 10: 4 primes below 10 (task worker %d)", &tw), 1);
    ASSERT(tw == 2 || tw == 3);
    cli_write(fd, "bigtask 100\n", 12);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 10000), 0);
    ASSERT(strncmp(line, "bigtask 100: checksum ok (task worker ", 38) == 0);
    ASSERT(strstr(line, ", inline)") != NULL);
    cli_write(fd, "bigtask 20000\n", 14); /* 8 KiB .. 64 KiB: a block of the spill file */
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 10000), 0);
    ASSERT(strncmp(line, "bigtask 20000: checksum ok (task worker ", 40) == 0);
    ASSERT(strstr(line, ".spill.") != NULL);
    cli_write(fd, "bigtask 3000000\n", 16);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 10000), 0);
    ASSERT(strncmp(line, "bigtask 3000000: checksum ok (task worker ", 42) == 0);
    char want[600];
    snprintf(want, sizeof(want), ", %s/swoop-task.", tmpdir);
    ASSERT(strstr(line, want) != NULL);
    ASSERT_EQ(swoop_files(tmpdir), 0); /* the reader removed it */
    static const char *const bad[] = {"task\n",    "task -1\n",  "task 10000001\n",
                                      "task 5x\n", "wait abc\n", "bigtask 67108865\n",
                                      "bigtask\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cli_write(fd, bad[i], strlen(bad[i]));
        ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 3000), 0);
        ASSERT(strncmp(line, "error: ", 7) == 0);
    }
    cli_write(fd, "help\n", 5);
    int seen = 0;
    while (seen != 7 && swoop_test_read_line(fd, line, sizeof(line), 3000) >= 0) {
        seen |= strncmp(line, "  task N", 8) == 0 ? 1 : 0;
        seen |= strncmp(line, "  bigtask BYTES", 15) == 0 ? 2 : 0;
        seen |= strncmp(line, "  wait N", 8) == 0 ? 4 : 0;
    }
    ASSERT_EQ(seen, 7);
    /* Drain the rest of the help text. */
    cli_write(fd, "echo sync\n", 10);
    ASSERT(read_until(fd, "sync", line, sizeof(line), 3000));

    uint64_t t0 = swoop_test_now_ms();
    cli_write(fd, "after 200 later\n", 16);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 3000), 0);
    ASSERT_STR_EQ(line, "later");
    ASSERT_GE(swoop_test_now_ms() - t0, 200);
    cli_write(fd, "crash\n", 6);
    ASSERT(read_until(fd, "aborts now", line, sizeof(line), 3000));
    /* The same connection works with the restarted worker. */
    uint64_t deadline = swoop_test_now_ms() + 5000;
    int restarted = 0;
    while (!restarted && swoop_test_now_ms() < deadline) {
        cli_write(fd, "stats\n", 6);
        ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 3000), 0);
        restarted = strstr(line, "\"starts\":2") != NULL;
        if (!restarted)
            swoop_test_sleep_ms(50);
    }
    ASSERT(restarted);
    cli_write(fd, "echo still here\n", 16);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 3000), 0);
    ASSERT_STR_EQ(line, "still here");

    /* swoop stats from outside. */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s stats --pid-file %s", swoop_bin(), pid_file);
    FILE *f = popen(cmd, "r");
    ASSERT_NOT_NULL(f);
    ASSERT_NOT_NULL(fgets(line, sizeof(line), f));
    ASSERT_EQ(pclose(f), 0);
    ASSERT(strstr(line, "\"mode\":\"process\"") != NULL);
    ASSERT(strstr(line, "\"worker_num\":2") != NULL);
    ASSERT(strstr(line, "\"connection_num\":1") != NULL);
    /* The JSON parses (python3's json module is the real parser at hand). */
    snprintf(cmd, sizeof(cmd),
             "%s stats --pid-file %s | /usr/bin/python3 -c 'import json,sys; "
             "d=json.load(sys.stdin); assert any(w[\"starts\"]==2 for w in d[\"workers\"]); "
             "assert d[\"task_worker_num\"]==2 and d[\"task_count\"]>=5 and "
             "d[\"tasking_num\"]==0 and d[\"task_idle_worker_num\"]==2 and "
             "d[\"task_queue_num\"]==-1 and d[\"task_failed\"]==0'",
             swoop_bin(), pid_file);
    ASSERT_EQ(system(cmd), 0);
    close(fd);

    struct stat st;
    ASSERT_EQ(stat(pid_file, &st), 0);
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    swoop_test_wait_ok(pid, 10000);
    ASSERT_EQ(stat(pid_file, &st), -1);
    ASSERT_EQ(swoop_files(tmpdir), 0);
    close(out[0]);
}

/*
 * Issue 10, item 8: one client cannot fill the machine through the demo.
 * Per connection, at most 16 tasks running (a 17th in the same write is
 * refused), 128 MiB of bigtask payloads (a third 64 MiB one is refused) and
 * 64 `after` timers pending (the 65th is refused), each with an error line
 * naming the cap; the timers of a connection that closes are cleared (the
 * worker holds nothing for it afterwards: `limits`).
 */
TEST(cli_demo_caps_per_connection)
{
    char line[4096];
    char tmpdir[512], tmp_set[600];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tasks", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(tmpdir, 0700), 0);
    snprintf(tmp_set, sizeof(tmp_set), "task_tmpdir=%s", tmpdir);
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execl(swoop_bin(), "swoop", "demo", "--port", "0", "--set", "worker_num=1", "--set",
              tmp_set, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    ASSERT(read_until(out[0], "line-protocol server on", line, sizeof(line), 5000));
    int port = 0;
    char *p = strstr(line, "127.0.0.1:");
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(sscanf(p, "127.0.0.1:%d", &port), 1);
    ASSERT(read_until(out[0], "worker 0 pid", line, sizeof(line), 5000));

    int fd = cli_connect(port);
    ASSERT(read_until(fd, "swoop demo: conn", line, sizeof(line), 3000));
    /* 17 tasks in one write: the worker reads them before any result can come back. */
    char many[17 * 16 + 1] = "";
    for (int i = 0; i < 17; i++)
        strcat(many, "task 2000000\n");
    cli_write(fd, many, strlen(many));
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 10000), 0);
    ASSERT_STR_EQ(line,
                  "error: task: this connection has 16 tasks running, the cap per connection");
    for (int i = 0; i < 16; i++) {
        ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 60000), 0);
        ASSERT(strncmp(line, "task 2000000: 148933 primes below 2000000", 41) == 0);
    }
    /* Two 64 MiB payloads fit the 128 MiB; a third does not. */
    const char *big = "bigtask 67108864\nbigtask 67108864\nbigtask 67108864\n";
    cli_write(fd, big, strlen(big));
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 30000), 0);
    ASSERT_STR_EQ(line, "error: bigtask: this connection has 134217728 bytes of tasks running; "
                        "67108864 more would pass the cap per connection (134217728)");
    for (int i = 0; i < 2; i++) {
        ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 60000), 0);
        ASSERT(strncmp(line, "bigtask 67108864: checksum ok", 29) == 0);
    }
    /* Timers: 64 pending, the 65th refused. */
    for (int i = 0; i < 65; i++)
        cli_write(fd, "after 600000 never\n", 19);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 5000), 0);
    ASSERT_STR_EQ(line,
                  "error: after: this connection has 64 timers pending, the cap per connection");
    cli_write(fd, "limits\n", 7);
    ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 5000), 0);
    if (strstr(line, "limits: worker 0 holds 64 timers and 0 tasks of 1 connections ") != line)
        FAIL("limits: %s", line);
    close(fd);
    /* Closed: its timers are cleared, its record freed. */
    fd = cli_connect(port);
    ASSERT(read_until(fd, "swoop demo: conn", line, sizeof(line), 3000));
    uint64_t deadline = swoop_test_now_ms() + 5000;
    int clear = 0;
    while (!clear && swoop_test_now_ms() < deadline) {
        cli_write(fd, "limits\n", 7);
        ASSERT_GE(swoop_test_read_line(fd, line, sizeof(line), 3000), 0);
        clear =
            strstr(line, "limits: worker 0 holds 0 timers and 0 tasks of 0 connections ") == line;
        if (!clear)
            swoop_test_sleep_ms(20);
    }
    if (!clear)
        FAIL("the closed connection's timers stay: %s", line);
    close(fd);
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    swoop_test_wait_ok(pid, 10000);
    ASSERT_EQ(swoop_files(tmpdir), 0);
    close(out[0]);
}

/*
 * `swoop serve DIR`: prints its URL, serves DIR's files, lists its
 * directories (http_autoindex on), 404 for the rest, stops on SIGTERM.
 */
TEST(cli_serve_directory)
{
    char dir[512], path[600], line[4096];
    snprintf(dir, sizeof(dir), "%s/site", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/hello.txt", dir);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("served by swoop\n", f);
    fclose(f);
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execl(swoop_bin(), "swoop", "serve", dir, "--port", "0", "--mode", "base", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    ASSERT(read_until(out[0], "swoop serve:", line, sizeof(line), 5000));
    char *at = strstr(line, "http://127.0.0.1:");
    ASSERT_NOT_NULL(at);
    int port = 0;
    ASSERT_EQ(sscanf(at, "http://127.0.0.1:%d/", &port), 1);
    srv_wait_ready(pid, 2);
    char cmd[256], got[1024];
    snprintf(cmd, sizeof(cmd),
             "curl -sS http://127.0.0.1:%d/hello.txt; curl -sS -o /dev/null -w '%%{http_code}' "
             "http://127.0.0.1:%d/missing",
             port, port);
    FILE *c = popen(cmd, "r");
    ASSERT_NOT_NULL(c);
    size_t n = fread(got, 1, sizeof(got) - 1, c);
    got[n] = '\0';
    ASSERT_EQ(pclose(c), 0);
    ASSERT_STR_EQ(got, "served by swoop\n404");
    snprintf(cmd, sizeof(cmd), "curl -sS http://127.0.0.1:%d/", port);
    c = popen(cmd, "r");
    ASSERT_NOT_NULL(c);
    n = fread(got, 1, sizeof(got) - 1, c);
    got[n] = '\0';
    ASSERT_EQ(pclose(c), 0);
    ASSERT_NOT_NULL(strstr(got, "<a href=\"hello.txt\">hello.txt</a>"));
    ASSERT(read_until(out[0], "\"GET /hello.txt HTTP/1.1\" 200 ", line, sizeof(line), 5000));
    ASSERT(read_until(out[0], "\"GET /missing HTTP/1.1\" 404 ", line, sizeof(line), 5000));
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    swoop_test_wait_ok(pid, 10000);
    close(out[0]);
}
