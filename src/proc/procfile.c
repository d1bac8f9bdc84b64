/*
 * The helpers of procfile.h.
 */
#include "proc/procfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "base/internal.h"

int swoop__pid_file_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "open(\"%s\") of the pid file failed", path);
        return -err;
    }
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    ssize_t n = write(fd, buf, (size_t)len);
    int err = errno;
    close(fd);
    if (n != len) {
        swoop_log(SWOOP_LOG_ERROR, n < 0 ? err : 0, "write() of the pid file \"%s\" failed", path);
        unlink(path);
        return n < 0 ? -err : SWOOP_EIO;
    }
    return 0;
}

int64_t swoop__request_limit(int64_t max_request, int64_t grace)
{
    if (max_request <= 0)
        return 0;
    if (grace < 0)
        grace = max_request > 10 ? max_request / 2 : 0;
    if (grace == 0)
        return max_request;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec;
    /* splitmix64: spreads close pids and times over the whole range. */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    return max_request + (int64_t)(x % (uint64_t)(grace + 1));
}
