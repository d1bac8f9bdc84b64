#include <swoop/error.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/procstat.h"

/* The whole (small) file at `path`, NUL-terminated: its length or a negative error. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n;
    do
        n = read(fd, buf, cap - 1);
    while (n < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (n < 0)
        return err == ESRCH ? -ESRCH : SWOOP_EIO;
    if (n == 0)
        return SWOOP_EIO;
    buf[n] = '\0';
    return n;
}

int swoop__procstat_read(pid_t pid, pid_t tid, swoop_procstat_t *out)
{
    char path[64], line[1024];
    if (tid > 0)
        snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
    else
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    ssize_t n = read_small(path, line, sizeof(line));
    if (n < 0)
        return (int)n;
    /* The command name is in parentheses and may hold anything: the fields follow the last ')'. */
    const char *p = strrchr(line, ')');
    char state = '?';
    unsigned long long ut = 0, st = 0, start = 0;
    if (p == NULL || sscanf(p + 1,
                            " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d "
                            "%*d %*d %*d %llu",
                            &state, &ut, &st, &start) != 4)
        return SWOOP_EINVAL;
    long hz = sysconf(_SC_CLK_TCK);
    out->state = state;
    out->cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    out->start_ticks = start;
    return 0;
}

int swoop__proc_rss(pid_t pid, uint64_t *out)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    ssize_t n = read_small(path, line, sizeof(line));
    if (n < 0)
        return (int)n;
    unsigned long long size = 0, res = 0;
    if (sscanf(line, "%llu %llu", &size, &res) != 2)
        return SWOOP_EINVAL;
    long page = sysconf(_SC_PAGESIZE);
    *out = res * (uint64_t)(page > 0 ? page : 4096);
    return 0;
}
