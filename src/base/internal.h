/*
 * Helpers shared by every layer of the library: assertions that stay on in
 * release builds, container_of, branch hints and the EINTR-safe close.
 * Internal: never included by a public header.
 */
#ifndef SWOOP_BASE_INTERNAL_H
#define SWOOP_BASE_INTERNAL_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <swoop/alloc.h>
#include <swoop/error.h>
#include <swoop/log.h>

#define swoop_likely(x)   __builtin_expect(!!(x), 1)
#define swoop_unlikely(x) __builtin_expect(!!(x), 0)

#define SWOOP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define swoop_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/*
 * An invariant whose violation would corrupt shared state: checked in every
 * build, logs file:line and a backtrace, then aborts.
 */
#define SWOOP_ASSERT(cond)                                                                         \
    do {                                                                                           \
        if (swoop_unlikely(!(cond)))                                                               \
            swoop__assert_fail(#cond, __FILE__, __LINE__, __func__);                               \
    } while (0)

_Noreturn void swoop__assert_fail(const char *expr, const char *file, int line, const char *func);

/*
 * getpid() without a system call: cached, and refreshed in a child of
 * fork() (not of a raw clone() or vfork(), which must exec first).
 */
pid_t swoop__getpid(void);

/*
 * Sleeps while the shared 32-bit `word` holds `expected`, at most
 * `timeout_ms`; a wake-up, a changed word, a signal or the timeout return
 * 0 (callers re-check their condition), a bad address its -errno.
 */
int swoop__futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms);
/* Wakes every process waiting on `word`. */
void swoop__futex_wake_all(_Atomic uint32_t *word);

/* The role symbol and worker id set by swoop_log_set_role, for other modules. */
char swoop__log_role(void);
int swoop__log_worker_id(void);

#endif /* SWOOP_BASE_INTERNAL_H */
