/* A coroutine that overflows its stack hits the guard page: the SIGSEGV handler (on the
 * alternate stack) names the coroutine and its stack size with one write, then the process
 * dies of SIGSEGV. Runs in a forked child whose stderr (the log fd) is a pipe. */
#include <swoop/co.h>

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/error.h>

#include "test.h"

static int __attribute__((noinline)) runaway(int depth, volatile char *prev)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = prev ? prev[0] : 0;
    if (depth == -1) /* never: keeps the compiler from calling it infinite */
        return 0;
    return runaway(depth + 1, frame) + frame[1];
}

static void overflow_body(void *arg)
{
    runaway(0, NULL);
}

static void quiet_body(void *arg)
{
}

static void check_overflow(size_t stack_size, const char *want)
{
    int p[2];
    ASSERT_OK(pipe(p));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        swoop_co_options_t o = {.stack_size = stack_size};
        swoop_co_set_options(&o);
        swoop_co_go(quiet_body, NULL); /* coroutine 1 ends normally; 2 overflows */
        swoop_co_run(overflow_body, NULL);
        _exit(0); /* not reached */
    }
    close(p[1]);
    char out[8192];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p[0], out + len, sizeof(out) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(out) - 1)
            break;
    }
    out[len] = 0;
    close(p[0]);
    int st = swoop_test_wait_pid(pid, 30000);
    ASSERT(st != -1);
    ASSERT(WIFSIGNALED(st));
    ASSERT_EQ(WTERMSIG(st), SIGSEGV);
    if (strstr(out, want) == NULL)
        FAIL("child output lacks \"%s\": %s", want, out);
}

TEST(overflow_is_named_then_sigsegv)
{
    check_overflow(0, "coroutine 2 overflowed its 262144-byte stack");
}

TEST(overflow_of_a_small_stack)
{
    check_overflow(64 * 1024, "coroutine 2 overflowed its 65536-byte stack");
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

TEST(a_plain_segfault_is_not_called_an_overflow)
{
#ifdef UNDER_ASAN
    /* The fault goes on to ASan's handler, which reports it: nothing to see here. */
    printf("# skipped under ASan (its SEGV report is the chained handler's answer)\n");
    return;
#endif
    int p[2];
    ASSERT_OK(pipe(p));
    fflush(stdout);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        swoop_co_go(quiet_body, NULL); /* installs the handler */
        raise(SIGSEGV);
        _exit(0);
    }
    close(p[1]);
    char out[4096];
    ssize_t n = read(p[0], out, sizeof(out) - 1);
    out[n > 0 ? n : 0] = 0;
    close(p[0]);
    int st = swoop_test_wait_pid(pid, 30000);
    ASSERT(WIFSIGNALED(st));
    ASSERT_EQ(WTERMSIG(st), SIGSEGV);
    ASSERT_NULL(strstr(out, "overflowed"));
}
