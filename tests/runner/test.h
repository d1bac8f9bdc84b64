/*
 * swoop's test harness. Tests register themselves with TEST(name) and run one
 * per forked child (own process group, timeout, TAP output) under
 * tests/runner/runner.c. Assertions print both operands and file:line. An
 * assertion that fails in any process the test forked (a server, a worker)
 * is counted in a shared page the runner reads, so it can never be lost.
 */
#ifndef SWOOP_TEST_H
#define SWOOP_TEST_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

typedef void (*swoop_test_fn)(void);

void swoop_test_register(const char *name, swoop_test_fn fn, int timeout_sec);
_Noreturn void swoop_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A test with the default timeout (60 s, times SWOOP_TEST_TIMEOUT_MULTIPLIER). */
/*
 * TEST_UNDER_TSAN / TEST_UNDER_ASAN: 1 in a build with that sanitizer, with gcc
 * (__SANITIZE_*__) and clang (__has_feature), for bounds that must differ.
 */
#if defined(__SANITIZE_THREAD__)
#define TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_UNDER_TSAN 1
#endif
#endif
#ifndef TEST_UNDER_TSAN
#define TEST_UNDER_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif
#ifndef TEST_UNDER_ASAN
#define TEST_UNDER_ASAN 0
#endif

#define TEST(name) TEST_TIMEOUT(name, 60)

/* A test with its own timeout in seconds. */
#define TEST_TIMEOUT(name, secs)                                                                   \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_register_##name(void)                            \
    {                                                                                              \
        swoop_test_register(#name, test_##name, (secs));                                           \
    }                                                                                              \
    static void test_##name(void)

#define FAIL(...) swoop_test_fail(__FILE__, __LINE__, __VA_ARGS__)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL("assertion failed: %s", #cond);                                                   \
    } while (0)

#define ASSERT_INT_OP(a, op, b)                                                                    \
    do {                                                                                           \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                              \
        if (!(a_ op b_))                                                                           \
            FAIL("%s %s %s: %" PRId64 " vs %" PRId64, #a, #op, #b, a_, b_);                        \
    } while (0)

#define ASSERT_UINT_OP(a, op, b)                                                                   \
    do {                                                                                           \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                           \
        if (!(a_ op b_))                                                                           \
            FAIL("%s %s %s: %" PRIu64 " vs %" PRIu64, #a, #op, #b, a_, b_);                        \
    } while (0)

#define ASSERT_EQ(a, b)  ASSERT_INT_OP(a, ==, b)
#define ASSERT_NE(a, b)  ASSERT_INT_OP(a, !=, b)
#define ASSERT_LT(a, b)  ASSERT_INT_OP(a, <, b)
#define ASSERT_LE(a, b)  ASSERT_INT_OP(a, <=, b)
#define ASSERT_GT(a, b)  ASSERT_INT_OP(a, >, b)
#define ASSERT_GE(a, b)  ASSERT_INT_OP(a, >=, b)
#define ASSERT_UEQ(a, b) ASSERT_UINT_OP(a, ==, b)
#define ASSERT_ULE(a, b) ASSERT_UINT_OP(a, <=, b)
#define ASSERT_UGE(a, b) ASSERT_UINT_OP(a, >=, b)

/* A swoop call that must succeed: prints the error's name when it does not. */
#define ASSERT_OK(expr)                                                                            \
    do {                                                                                           \
        int64_t rc_ = (int64_t)(expr);                                                             \
        if (rc_ < 0)                                                                               \
            FAIL("%s failed: %" PRId64 " (%s)", #expr, rc_, swoop_test_err_name((int)rc_));        \
    } while (0)

#define ASSERT_NULL(p)                                                                             \
    do {                                                                                           \
        if ((p) != NULL)                                                                           \
            FAIL("%s is not NULL", #p);                                                            \
    } while (0)

#define ASSERT_NOT_NULL(p)                                                                         \
    do {                                                                                           \
        if ((p) == NULL)                                                                           \
            FAIL("%s is NULL", #p);                                                                \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                       \
            FAIL("%s == %s: \"%s\" vs \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");    \
    } while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                                     \
    do {                                                                                           \
        if (memcmp((a), (b), (n)) != 0)                                                            \
            FAIL("%s and %s differ within %zu bytes", #a, #b, (size_t)(n));                        \
    } while (0)

/* Polls `cond` every millisecond until it holds or `ms` pass; fails then. */
#define WAIT_UNTIL(cond, ms)                                                                       \
    do {                                                                                           \
        uint64_t deadline_ = swoop_test_now_ms() + (uint64_t)(ms)*swoop_test_multiplier();         \
        while (!(cond)) {                                                                          \
            if (swoop_test_now_ms() > deadline_)                                                   \
                FAIL("timed out after %d ms waiting for %s", (int)(ms), #cond);                    \
            swoop_test_sleep_ms(1);                                                                \
        }                                                                                          \
    } while (0)

/* ---- helpers (tests/runner/helpers.c) ---- */

/* Name of a swoop error code, without linking the test to the library's internals. */
const char *swoop_test_err_name(int code);
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t swoop_test_now_ms(void);
void swoop_test_sleep_ms(unsigned ms);
/* SWOOP_TEST_TIMEOUT_MULTIPLIER (default 1; sanitizer builds may raise it). */
unsigned swoop_test_multiplier(void);
/* A directory private to the running test, removed by the runner afterwards. */
const char *swoop_test_tmpdir(void);

/*
 * Forks a child that runs fn(arg, ready_fd) and then exits 0 (a failed
 * assertion inside it is still seen by the runner). The child writes a line
 * such as "port 41235\n" to ready_fd once it is ready; the parent reads it
 * with swoop_test_read_line. *ready_fd gets the read end.
 */
pid_t swoop_test_fork(void (*fn)(void *arg, int ready_fd), void *arg, int *ready_fd);
/* Reads one line (without the newline) within `timeout_ms`; returns its length or -1. */
int swoop_test_read_line(int fd, char *buf, size_t cap, int timeout_ms);
/* Waits for `pid` to exit within `timeout_ms`; returns its wait status or -1 on timeout. */
int swoop_test_wait_pid(pid_t pid, int timeout_ms);
/* Waits for `pid` and fails the test unless it exited with status 0. */
void swoop_test_wait_ok(pid_t pid, int timeout_ms);
/*
 * Nonzero if `pid` is running: read from /proc/PID/stat, so a zombie counts as
 * dead (pid 1 here does not reap orphans, and kill(pid, 0) succeeds on zombies).
 */
int swoop_test_pid_alive(pid_t pid);
/* Fails the test if the log file holds an ERROR line or a sanitizer report. */
void swoop_test_assert_log_clean(const char *path);
/* Number of open descriptors of this process. */
int swoop_test_fd_count(void);

#endif /* SWOOP_TEST_H */
