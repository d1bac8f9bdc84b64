/*
 * Logging. One line per message, written with a single write(2) to stderr or
 * to a file opened O_APPEND, so lines from many processes never interleave:
 *
 *   [2026-11-26 14:30:00.123456 *1234.2] WARNING loop_run: epoll_wait() failed (4: Interrupted
 * system call)
 *
 * The bracket holds the local time, the role symbol of the process (see
 * swoop_log_set_role), its pid and its worker id. Nothing logs from a signal
 * handler.
 */
#ifndef SWOOP_LOG_H
#define SWOOP_LOG_H

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/** Log levels, ordered; the names and numbers follow Swoole's. */
typedef enum {
    SWOOP_LOG_DEBUG = 0,
    SWOOP_LOG_TRACE = 1,
    SWOOP_LOG_INFO = 2,
    SWOOP_LOG_NOTICE = 3,
    SWOOP_LOG_WARNING = 4,
    SWOOP_LOG_ERROR = 5,
    SWOOP_LOG_NONE = 6 /**< as a threshold: log nothing */
} swoop_log_level_t;

/** Role symbols for swoop_log_set_role, as Swoole prints them. */
#define SWOOP_ROLE_STANDALONE '-'
#define SWOOP_ROLE_MASTER     '#'
#define SWOOP_ROLE_MANAGER    '$'
#define SWOOP_ROLE_WORKER     '*'
#define SWOOP_ROLE_TASKER     '^'
#define SWOOP_ROLE_USER       '@'
#define SWOOP_ROLE_ADMIN      '%'

/**
 * Logs a message at `level` if that level is enabled; the arguments are not
 * evaluated otherwise. `err` is an errno value captured right after the
 * failing call (or a negative swoop code), printed as "(err: text)"; pass 0
 * for none.
 */
#define swoop_log(level, err, ...)                                                                 \
    do {                                                                                           \
        if (swoop_log_enabled(level))                                                              \
            swoop_log_write((level), (err), __func__, __VA_ARGS__);                                \
    } while (0)

/** Debug logging; compiled away unless SWOOP_DEBUG is defined. */
#ifdef SWOOP_DEBUG
#define swoop_log_debug(...) swoop_log(SWOOP_LOG_DEBUG, 0, __VA_ARGS__)
#else
#define swoop_log_debug(...)                                                                       \
    do {                                                                                           \
    } while (0)
#endif

/** Returns nonzero if messages at `level` are written. Thread-safe. */
SWOOP_EXTERN int swoop_log_enabled(int level);

/** Sets the threshold (default SWOOP_LOG_INFO). Thread-safe. */
SWOOP_EXTERN void swoop_log_set_level(int level);

/** Returns the current threshold. */
SWOOP_EXTERN int swoop_log_get_level(void);

/**
 * Parses a level name ("debug", "trace", "info", "notice", "warning", "error",
 * "none", any case) or its number. Returns the level or SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_log_level_parse(const char *name);

/**
 * Sends the log to the file at `path` (created 0644 if missing, opened
 * O_APPEND), or back to stderr when `path` is NULL. Returns 0 or a negative
 * errno; on failure the previous destination stays.
 */
SWOOP_EXTERN int swoop_log_open(const char *path);

/**
 * Reopens the log file by its path (for logrotate: the old file was moved
 * away, the new one is created). The descriptor number stays the same, so
 * other threads never write to a closed fd. No-op when logging to stderr.
 */
SWOOP_EXTERN int swoop_log_reopen(void);

/**
 * Returns the descriptor log lines go to: 2 until a file is opened; after
 * that the same descriptor number for good (switching back to stderr makes
 * it a duplicate of stderr rather than closing it under a writer).
 */
SWOOP_EXTERN int swoop_log_fd(void);

/**
 * Sets this process's role symbol (SWOOP_ROLE_*) and worker id (-1 for none)
 * printed in every line. Call it right after fork in each child.
 */
SWOOP_EXTERN void swoop_log_set_role(char role, int worker_id);

/**
 * Writes one log line unconditionally (the swoop_log macro checks the level
 * first). `func` names the caller; `err` as in swoop_log.
 */
SWOOP_EXTERN void swoop_log_write(int level, int err, const char *func, const char *fmt, ...)
    SWOOP_PRINTF(4, 5);

SWOOP_END_DECLS

#endif /* SWOOP_LOG_H */
