/*
 * The `swoop` tool as a user runs it: `swoop demo --port 0 --pid-file F`
 * prints its process tree and serves the line commands (echo, after, stats,
 * crash: the worker aborts, the manager restarts it and the client keeps its
 * connection); `swoop stats --pid-file F` prints the shared stats as JSON;
 * SIGTERM stops everything and removes the pid file.
 */
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

TEST(cli_demo_and_stats)
{
    char pid_file[512], line[4096];
    snprintf(pid_file, sizeof(pid_file), "%s/demo.pid", swoop_test_tmpdir());
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execl(swoop_bin(), "swoop", "demo", "--port", "0", "--pid-file", pid_file, "--set",
              "worker_num=2", (char *)NULL);
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
             "d=json.load(sys.stdin); assert any(w[\"starts\"]==2 for w in d[\"workers\"])'",
             swoop_bin(), pid_file);
    ASSERT_EQ(system(cmd), 0);
    close(fd);

    struct stat st;
    ASSERT_EQ(stat(pid_file, &st), 0);
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    swoop_test_wait_ok(pid, 10000);
    ASSERT_EQ(stat(pid_file, &st), -1);
    close(out[0]);
}
