/*
 * Small client-side helpers the HTTP and WebSocket integration tests share:
 * reading a connection until EOF or a deadline, running a shell command for
 * its output, and a process's anonymous resident memory.
 */
#ifndef SWOOP_TEST_CLIENT_UTIL_H
#define SWOOP_TEST_CLIENT_UTIL_H

#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "test.h"

/* Reads until EOF, cap - 1 bytes or the time is up; returns the count, buf NUL-terminated. */
static inline size_t read_all(int fd, char *buf, size_t cap, int ms)
{
    size_t got = 0;
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    while (got + 1 < cap) {
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t k = recv(fd, buf + got, cap - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = '\0';
    return got;
}

/* Runs a shell command; returns its exit status, its stdout NUL-terminated in out. */
static inline int run(const char *cmd, char *out, size_t cap)
{
    FILE *f = popen(cmd, "r");
    ASSERT_NOT_NULL(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Anonymous resident memory of a process in KiB (RssAnon of /proc/PID/status), -1 if gone. */
static inline long rss_anon_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

#endif /* SWOOP_TEST_CLIENT_UTIL_H */
