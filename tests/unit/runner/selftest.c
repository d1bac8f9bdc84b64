/*
 * The harness itself: each kind of failure a test can have is caught. Runs
 * the deliberately failing tests of tests/fixtures and reads their TAP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* Runs fixture `bin` with `name`; returns its exit status and fills `out`. */
static int run_fixture(const char *bin, const char *name, char *out, size_t cap)
{
    const char *dir = getenv("SWOOP_BUILD_DIR");
    ASSERT_NOT_NULL(dir);
    char cmd[2048];
    /* The fixtures' timeouts are the failures under test: no sanitizer slack. */
    snprintf(cmd, sizeof(cmd), "SWOOP_TEST_TIMEOUT_MULTIPLIER=1 %s/tests/%s %s 2>&1", dir, bin,
             name ? name : "");
    FILE *p = popen(cmd, "r");
    ASSERT_NOT_NULL(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect(const char *name, const char *reason)
{
    char out[16384];
    int rc = run_fixture("runner_fixtures", name, out, sizeof(out));
    char want[256];
    snprintf(want, sizeof(want), "not ok 1 - %s # %s", name, reason);
    if (strstr(out, want) == NULL)
        FAIL("fixture %s: expected \"%s\" in:\n%s", name, want, out);
    ASSERT_EQ(rc, 1);
}

TEST(runner_passes_a_passing_test)
{
    char out[4096];
    ASSERT_EQ(run_fixture("runner_fixtures", "passes", out, sizeof(out)), 0);
    ASSERT_NOT_NULL(strstr(out, "ok 1 - passes"));
    ASSERT_NOT_NULL(strstr(out, "# 1 passed, 0 failed"));
}

TEST(runner_catches_every_failure_kind)
{
    expect("fails_in_parent", "exit status 1");
    expect("fails_in_grandchild_only", "assertion failed in a child process");
    expect("leaves_a_process_behind", "left processes behind");
    expect("leaves_a_daemon_behind", "left processes behind");
    expect("hangs", "timeout");
#if TEST_UNDER_ASAN
    expect("crashes", "sanitizer report"); /* ASan turns the SEGV into a report */
#else
    expect("crashes", "Segmentation fault");
#endif
}

TEST(runner_catches_leaks_under_lsan)
{
#if TEST_UNDER_ASAN
    expect("leaks_memory", "sanitizer report");
#else
    char out[4096];
    ASSERT_EQ(run_fixture("runner_fixtures", "leaks_memory", out, sizeof(out)), 0);
#endif
}

TEST(runner_fails_empty_binary_and_unknown_names)
{
    char out[4096];
    ASSERT_EQ(run_fixture("runner_empty", NULL, out, sizeof(out)), 1);
    ASSERT_NOT_NULL(strstr(out, "no test"));
    ASSERT_EQ(run_fixture("runner_fixtures", "no_such_test", out, sizeof(out)), 1);
    ASSERT_NOT_NULL(strstr(out, "no test named"));
}
