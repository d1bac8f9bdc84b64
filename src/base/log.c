/*
 * The log sink. Each line is formatted on the stack and written with one
 * write(2) to an O_APPEND descriptor, so lines from different processes and
 * threads do not interleave. Reopening (logrotate) dup2()s the new file onto
 * the same descriptor number, so a thread that is writing at that moment
 * never writes to a closed or reused fd.
 */
#include <swoop/log.h>

#include <ctype.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/internal.h"
#include "base/ratelimit.h"

#define LOG_LINE_MAX 4096

static atomic_int log_level = SWOOP_LOG_INFO;
static atomic_int log_fd = STDERR_FILENO;
static atomic_int log_role = SWOOP_ROLE_STANDALONE;
static atomic_int log_worker_id = -1;

/* Guards log_path and the open/reopen sequence; never taken on the write path. */
static pthread_mutex_t log_path_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_path;

static const char *const level_names[] = {"DEBUG",   "TRACE", "INFO", "NOTICE",
                                          "WARNING", "ERROR", "NONE"};

int swoop_log_enabled(int level)
{
    return level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void swoop_log_set_level(int level)
{
    if (level < SWOOP_LOG_DEBUG)
        level = SWOOP_LOG_DEBUG;
    if (level > SWOOP_LOG_NONE)
        level = SWOOP_LOG_NONE;
    atomic_store(&log_level, level);
}

int swoop_log_get_level(void)
{
    return atomic_load(&log_level);
}

int swoop_log_level_parse(const char *name)
{
    if (name == NULL || *name == '\0')
        return SWOOP_EINVAL;
    if (isdigit((unsigned char)name[0]) && name[1] == '\0') {
        int level = name[0] - '0';
        return level <= SWOOP_LOG_NONE ? level : SWOOP_EINVAL;
    }
    for (int i = 0; i < (int)SWOOP_ARRAY_SIZE(level_names); i++) {
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    }
    if (strcasecmp(name, "warn") == 0)
        return SWOOP_LOG_WARNING;
    return SWOOP_EINVAL;
}

static int open_log_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    return fd;
}

int swoop_log_open(const char *path)
{
    pthread_mutex_lock(&log_path_lock);
    int old = atomic_load(&log_fd);
    if (path == NULL) {
        /*
         * Other threads may be writing to `old` right now: point it at stderr
         * with dup2 rather than closing it, so they never write to a closed
         * or reused descriptor. The duplicate stays open (one fd).
         */
        if (old != STDERR_FILENO)
            dup3(STDERR_FILENO, old, O_CLOEXEC);
        free(log_path);
        log_path = NULL;
        pthread_mutex_unlock(&log_path_lock);
        return 0;
    }
    int fd = open_log_file(path);
    if (fd < 0) {
        pthread_mutex_unlock(&log_path_lock);
        swoop_log(SWOOP_LOG_ERROR, -fd, "open(\"%s\") failed for the log file", path);
        return fd;
    }
    char *copy = strdup(path);
    if (copy == NULL) {
        close(fd);
        pthread_mutex_unlock(&log_path_lock);
        return SWOOP_ENOMEM;
    }
    if (old != STDERR_FILENO) {
        /* Keep the descriptor number: writers may hold it right now. */
        if (dup3(fd, old, O_CLOEXEC) < 0) {
            int err = errno;
            close(fd);
            free(copy);
            pthread_mutex_unlock(&log_path_lock);
            return -err;
        }
        close(fd);
    } else {
        atomic_store(&log_fd, fd);
    }
    free(log_path);
    log_path = copy;
    pthread_mutex_unlock(&log_path_lock);
    return 0;
}

int swoop_log_reopen(void)
{
    pthread_mutex_lock(&log_path_lock);
    char *path = log_path ? strdup(log_path) : NULL;
    pthread_mutex_unlock(&log_path_lock);
    if (path == NULL)
        return 0;
    int rc = swoop_log_open(path);
    free(path);
    return rc;
}

int swoop_log_fd(void)
{
    return atomic_load(&log_fd);
}

void swoop_log_set_role(char role, int worker_id)
{
    atomic_store(&log_role, role);
    atomic_store(&log_worker_id, worker_id);
}

char swoop__log_role(void)
{
    return (char)atomic_load(&log_role);
}

int swoop__log_worker_id(void)
{
    return atomic_load(&log_worker_id);
}

static void log_vwrite(int level, int err, const char *func, uint64_t suppressed, const char *fmt,
                       va_list ap) SWOOP_PRINTF(5, 0);

static void log_vwrite(int level, int err, const char *func, uint64_t suppressed, const char *fmt,
                       va_list ap)
{
    int saved_errno = errno;
    char line[LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    size_t n = 0;

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    n += strftime(line, sizeof(line), "[%Y-%m-%d %H:%M:%S", &tm);
    if (level < SWOOP_LOG_DEBUG || level > SWOOP_LOG_ERROR)
        level = SWOOP_LOG_ERROR;
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%06ld %c%d.%d] %-7s %s: ", (long)tv.tv_usec,
                          swoop__log_role(), (int)getpid(), swoop__log_worker_id(),
                          level_names[level], func ? func : "?");

    int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (m > 0)
        n += (size_t)m;
    if (n < sizeof(line) && err != 0) {
        const char *text = err > 0 ? strerrordesc_np(err) : swoop_strerror(err);
        m = snprintf(line + n, sizeof(line) - n, " (%d: %s)", err, text ? text : "unknown error");
        if (m > 0)
            n += (size_t)m;
    }
    if (n < sizeof(line) && suppressed > 0) {
        m = snprintf(line + n, sizeof(line) - n, " (%llu more suppressed)",
                     (unsigned long long)suppressed);
        if (m > 0)
            n += (size_t)m;
    }
    if (n >= sizeof(line) - 1) {
        /* Truncated: mark it, keep the newline. */
        n = sizeof(line) - 1;
        memcpy(line + n - 3, "...", 3);
    }
    line[n++] = '\n';
    /* One write per line; a short write to a log is not worth a retry loop. */
    ssize_t w = write(atomic_load(&log_fd), line, n);
    (void)w;
    errno = saved_errno;
}

void swoop_log_write(int level, int err, const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, err, func, 0, fmt, ap);
    va_end(ap);
}

void swoop__log_write_limited(int level, int err, const char *func, uint64_t suppressed,
                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, err, func, suppressed, fmt, ap);
    va_end(ap);
}

int64_t swoop__log_limit(swoop_log_limit_t *l, uint64_t now_ms)
{
    uint64_t next = atomic_load_explicit(&l->next_ms, memory_order_relaxed);
    /* The compare-and-swap elects one writer per interval among racing threads. */
    if (now_ms >= next &&
        atomic_compare_exchange_strong_explicit(&l->next_ms, &next, now_ms + SWOOP_LOG_LIMIT_MS,
                                                memory_order_relaxed, memory_order_relaxed))
        return (int64_t)atomic_exchange_explicit(&l->suppressed, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->suppressed, 1, memory_order_relaxed);
    return -1;
}

void swoop__assert_fail(const char *expr, const char *file, int line, const char *func)
{
    swoop_log_write(SWOOP_LOG_ERROR, 0, func, "assertion failed: %s at %s:%d", expr, file, line);
    void *frames[64];
    int depth = backtrace(frames, (int)SWOOP_ARRAY_SIZE(frames));
    backtrace_symbols_fd(frames, depth, atomic_load(&log_fd));
    abort();
}
