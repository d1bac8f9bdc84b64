/*
 * Helpers for tests that run real processes: forking a server child that
 * reports readiness over a pipe, waiting with deadlines instead of sleeps,
 * liveness through /proc, and the log epilogue of nginx-tests.
 */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swoop/error.h>

const char *swoop_test_err_name(int code)
{
    return swoop_err_name(code);
}

uint64_t swoop_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void swoop_test_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

unsigned swoop_test_multiplier(void)
{
    const char *s = getenv("SWOOP_TEST_TIMEOUT_MULTIPLIER");
    int m = s ? atoi(s) : 1;
    return m > 0 ? (unsigned)m : 1;
}

pid_t swoop_test_fork(void (*fn)(void *arg, int ready_fd), void *arg, int *ready_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        FAIL("pipe2: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        close(p[0]);
        fn(arg, p[1]);
        close(p[1]);
        exit(0);
    }
    close(p[1]);
    if (ready_fd)
        *ready_fd = p[0];
    else
        close(p[0]);
    return pid;
}

int swoop_test_read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)timeout_ms * swoop_test_multiplier();
    while (n + 1 < cap) {
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t got = read(fd, buf + n, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        if (buf[n] == '\n') {
            buf[n] = '\0';
            return (int)n;
        }
        n++;
    }
    buf[n] = '\0';
    return (int)n;
}

int swoop_test_wait_pid(pid_t pid, int timeout_ms)
{
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)timeout_ms * swoop_test_multiplier();
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (swoop_test_now_ms() >= deadline)
            return -1;
        swoop_test_sleep_ms(1);
    }
}

void swoop_test_wait_ok(pid_t pid, int timeout_ms)
{
    int status = swoop_test_wait_pid(pid, timeout_ms);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        FAIL("child %d did not exit within %d ms", (int)pid, timeout_ms);
    }
    if (WIFSIGNALED(status))
        FAIL("child %d killed by signal %d", (int)pid, WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        FAIL("child %d exited with status %d", (int)pid, WEXITSTATUS(status));
}

int swoop_test_pid_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0')
        return 0;
    char state = p[2];
    return state != 'Z' && state != 'X' && state != 'x';
}

void swoop_test_assert_log_clean(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return; /* no log written at all is clean */
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (strstr(line, "] ERROR ") || strstr(line, "Sanitizer") ||
            strstr(line, "runtime error:")) {
            fclose(f);
            FAIL("%s:%d: %s", path, lineno, line);
        }
    }
    fclose(f);
}

int swoop_test_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory stream's own fd */
}
