/*
 * The test runner (libuv's runner.c in spirit). Each registered test runs in
 * its own forked child, in a process group of its own, with a timeout; on
 * timeout the whole group is killed. Results print as TAP. A test fails when
 * its child exits non-zero, when any of its descendants failed an assertion
 * (counted in a shared page), when a sanitizer reported anything in any of
 * its processes (reports go to files the runner reads), or when it left a
 * process behind (the runner is a subreaper, so orphans come back to it).
 * A binary with no test, or asked for a test it does not have, fails.
 *
 *   test_binary            run every test in the binary
 *   test_binary NAME...    run the named tests
 *   test_binary --list     print the names
 */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 512

struct test_entry {
    const char *name;
    swoop_test_fn fn;
    int timeout_sec;
};

struct shared_state {
    atomic_int failures;
    char tmpdir[256];
};

static struct test_entry tests[MAX_TESTS];
static int test_count;
static struct shared_state *shared;

void swoop_test_register(const char *name, swoop_test_fn fn, int timeout_sec)
{
    if (test_count == MAX_TESTS) {
        fprintf(stderr, "runner: too many tests (raise MAX_TESTS)\n");
        abort();
    }
    tests[test_count++] = (struct test_entry){name, fn, timeout_sec};
}

void swoop_test_fail(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "# FAIL %s:%d (pid %d): %s\n", file, line, (int)getpid(), msg);
    fflush(stderr);
    if (shared)
        atomic_fetch_add(&shared->failures, 1);
    _exit(1);
}

const char *swoop_test_tmpdir(void)
{
    return shared ? shared->tmpdir : "/tmp";
}

static int rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                char sub[1024];
                snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        return rmdir(path);
    }
    return unlink(path);
}

/*
 * Prints and removes the sanitizer reports in `dir`; returns how many are
 * real findings. ASan's "failed to allocate" warning (a test asking for an
 * impossible size on purpose) is not one.
 */
static int collect_reports(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "report", 6) != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            char text[65536];
            size_t n = fread(text, 1, sizeof(text) - 1, f);
            text[n] = '\0';
            fclose(f);
            if (strstr(text, "ERROR:") || strstr(text, "ThreadSanitizer") ||
                strstr(text, "runtime error") || strstr(text, "LeakSanitizer")) {
                fprintf(stderr, "# sanitizer report %s:\n", e->d_name);
                for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
                    fprintf(stderr, "#   %s\n", line);
                found++;
            }
        }
        unlink(path);
    }
    closedir(d);
    return found;
}

/* Children of the runner other than reaped ones, found through /proc. */
static int kill_leftover_children(void)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    int n = 0;
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        char *p = strrchr(buf, ')');
        char state;
        int ppid;
        if (p == NULL || sscanf(p + 2, "%c %d", &state, &ppid) != 2)
            continue;
        if (ppid == self && state != 'Z') {
            fprintf(stderr, "# leftover process %d killed\n", (int)pid);
            kill(pid, SIGKILL);
            n++;
        }
    }
    closedir(d);
    return n;
}

static void reap_all(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

/* Waits for `pid` up to `ms`; returns 1 with *status set, or 0 on timeout. */
static int wait_child(pid_t pid, int ms, int *status)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) {
            if (pidfd >= 0)
                close(pidfd);
            return 1;
        }
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline) {
            if (pidfd >= 0)
                close(pidfd);
            return 0;
        }
        int left = (int)(deadline - now);
        if (pidfd >= 0) {
            struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
            poll(&pfd, 1, left);
        } else {
            swoop_test_sleep_ms(left < 5 ? (unsigned)left : 5);
        }
    }
}

/*
 * LeakSanitizer's exit check costs ~50 ms of CPU per process on this kind of
 * VM (its stop-the-world and memory scan), paid by ~530 test binaries. The
 * harness parent only forks and reports, so it turns the check off for
 * itself; the forked test child (and every process it forks: servers,
 * workers) clears the flag and keeps it. LSan calls this hook at exit.
 */
static volatile int lsan_off_in_harness = 1;
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return lsan_off_in_harness;
}

static int run_one(int index, const struct test_entry *t, const char *report_dir)
{
    char tmpl[] = "/tmp/swoop-t.XXXXXX";
    if (mkdtemp(tmpl) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(shared->tmpdir, sizeof(shared->tmpdir), "%s", tmpl);
    atomic_store(&shared->failures, 0);

    int timeout_ms = t->timeout_sec * 1000 * (int)swoop_test_multiplier();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        lsan_off_in_harness = 0;
        setpgid(0, 0);
        /* The runner ignores SIGPIPE; a test must see the default, as programs do. */
        signal(SIGPIPE, SIG_DFL);
        t->fn();
        /* exit(), not _exit(): LeakSanitizer checks this child at exit. */
        exit(0);
    }
    setpgid(pid, pid);

    const char *why = NULL;
    int status = 0;
    if (!wait_child(pid, timeout_ms, &status)) {
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
        why = "timeout";
    } else if (WIFSIGNALED(status)) {
        why = strsignal(WTERMSIG(status));
    } else if (WEXITSTATUS(status) != 0) {
        why = "exit status";
    }

    /*
     * Give the test's other processes a moment to finish exiting. Whatever of
     * its process group still runs after that is a leftover: decide that
     * before killing, or the kill would hide it. Every descendant is our
     * child (subreaper), so reaping first leaves no zombie to miscount.
     */
    uint64_t grace_end = swoop_test_now_ms() + 2000;
    for (;;) {
        reap_all();
        if (kill(-pid, 0) != 0 || swoop_test_now_ms() >= grace_end)
            break;
        swoop_test_sleep_ms(2);
    }
    reap_all();
    int leftovers = kill(-pid, 0) == 0;
    if (leftovers)
        fprintf(stderr, "# processes of the test's group still running\n");
    kill(-pid, SIGKILL);
    /* Children that left the group (setsid) are found through /proc. */
    leftovers += kill_leftover_children();
    if (leftovers > 0) {
        swoop_test_sleep_ms(10);
        reap_all();
        if (!why)
            why = "left processes behind";
    }
    if (!why && atomic_load(&shared->failures) > 0)
        why = "assertion failed in a child process";
    /* A sanitizer's own exit status says less than its report: name the report. */
    if (collect_reports(report_dir) > 0 && (!why || strcmp(why, "exit status") == 0))
        why = "sanitizer report";

    rm_rf(tmpl);
    if (why) {
        if (WIFEXITED(status) && why[0] == 'e')
            printf("not ok %d - %s # %s %d\n", index, t->name, why, WEXITSTATUS(status));
        else
            printf("not ok %d - %s # %s\n", index, t->name, why);
    } else {
        printf("ok %d - %s\n", index, t->name);
    }
    fflush(stdout);
    return why ? 1 : 0;
}

/*
 * Sanitizer runtimes read their options once, at process start. To send the
 * reports of every descendant (forked or exec'd) to files, the runner sets
 * log_path and re-executes itself once.
 */
static void setup_reports(char **argv)
{
    if (getenv("SWOOP_TEST_REPORT_DIR"))
        return;
    char tmpl[] = "/tmp/swoop-san.XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        return;
    setenv("SWOOP_TEST_REPORT_DIR", tmpl, 1);
    const char *vars[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *old = getenv(vars[i]);
        char val[2048];
        snprintf(val, sizeof(val), "%s%slog_path=%s/report", old ? old : "", old && *old ? ":" : "",
                 tmpl);
        setenv(vars[i], val, 1);
    }
    execv("/proc/self/exe", argv);
    perror("execv /proc/self/exe"); /* fall through: reports go to stderr */
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < test_count; i++)
            printf("%s\n", tests[i].name);
        return test_count > 0 ? 0 : 1;
    }
    setup_reports(argv);
    const char *report_dir = getenv("SWOOP_TEST_REPORT_DIR");
    if (report_dir == NULL)
        report_dir = "/nonexistent";

    if (test_count == 0) {
        fprintf(stderr, "runner: this binary has no test\n");
        return 1;
    }
    shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    /* Orphans of a test come back to us, so none escapes unnoticed. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);

    int selected[MAX_TESTS];
    int n = 0;
    if (argc > 1) {
        for (int a = 1; a < argc; a++) {
            int found = 0;
            for (int i = 0; i < test_count; i++) {
                if (strcmp(argv[a], tests[i].name) == 0) {
                    selected[n++] = i;
                    found = 1;
                }
            }
            if (!found) {
                fprintf(stderr, "runner: no test named '%s'\n", argv[a]);
                return 1;
            }
        }
    } else {
        for (int i = 0; i < test_count; i++)
            selected[n++] = i;
    }

    printf("1..%d\n", n);
    int failed = 0;
    for (int i = 0; i < n; i++)
        failed += run_one(i + 1, &tests[selected[i]], report_dir);
    rmdir(report_dir);
    printf("# %d passed, %d failed\n", n - failed, failed);
    return failed ? 1 : 0;
}
