/* The log sink: level filter, line format, file output and reopen. */
#include <swoop/log.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <swoop/error.h>

#include "test.h"

static int evaluated;

static int side_effect(void)
{
    evaluated++;
    return 1;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

TEST(log_level_filter_skips_arguments)
{
    swoop_log_set_level(SWOOP_LOG_WARNING);
    swoop_log(SWOOP_LOG_INFO, 0, "not written %d", side_effect());
    ASSERT_EQ(evaluated, 0);
    ASSERT_EQ(swoop_log_enabled(SWOOP_LOG_ERROR), 1);
    ASSERT_EQ(swoop_log_enabled(SWOOP_LOG_NOTICE), 0);
    ASSERT_EQ(swoop_log_level_parse("debug"), SWOOP_LOG_DEBUG);
    ASSERT_EQ(swoop_log_level_parse("WARNING"), SWOOP_LOG_WARNING);
    ASSERT_EQ(swoop_log_level_parse("5"), SWOOP_LOG_ERROR);
    ASSERT_EQ(swoop_log_level_parse("loud"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_log_level_parse(""), SWOOP_EINVAL);
}

TEST(log_file_line_format_and_reopen)
{
    char path[512], moved[512];
    snprintf(path, sizeof(path), "%s/test.log", swoop_test_tmpdir());
    snprintf(moved, sizeof(moved), "%s/test.log.1", swoop_test_tmpdir());
    ASSERT_OK(swoop_log_open(path));
    int fd = swoop_log_fd();
    ASSERT_NE(fd, 2);
    swoop_log_set_role(SWOOP_ROLE_WORKER, 3);
    swoop_log_set_level(SWOOP_LOG_INFO);
    swoop_log(SWOOP_LOG_WARNING, 11, "first %s", "line");
    char *text = read_file(path);
    ASSERT_NOT_NULL(text);
    char expect[64];
    snprintf(expect, sizeof(expect), " *%d.3] WARNING ", (int)getpid());
    ASSERT_NOT_NULL(strstr(text, expect));
    ASSERT_NOT_NULL(strstr(text, "first line (11: Resource temporarily unavailable)\n"));

    /* logrotate: move the file away, reopen, keep the same fd number. */
    ASSERT_EQ(rename(path, moved), 0);
    ASSERT_OK(swoop_log_reopen());
    ASSERT_EQ(swoop_log_fd(), fd);
    swoop_log(SWOOP_LOG_ERROR, SWOOP_ETOOBIG, "second");
    text = read_file(path);
    ASSERT_NOT_NULL(text);
    ASSERT_NOT_NULL(strstr(text, "second (-4006: packet larger than package_max_length)"));
    ASSERT_NULL(strstr(text, "first"));
    text = read_file(moved);
    ASSERT_NULL(strstr(text, "second"));

    /* A bad path leaves the current destination in place. */
    ASSERT_EQ(swoop_log_open("/nonexistent-dir/x.log"), SWOOP_ENOENT);
    ASSERT_EQ(swoop_log_fd(), fd);
    ASSERT_OK(swoop_log_open(NULL));
    /* Back on stderr through the same descriptor number (never closed under a writer). */
    ASSERT_EQ(swoop_log_fd(), fd);
    struct stat a, b;
    ASSERT_EQ(fstat(fd, &a), 0);
    ASSERT_EQ(fstat(2, &b), 0);
    ASSERT(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    ASSERT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST(log_long_line_is_truncated_not_overflowed)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/long.log", swoop_test_tmpdir());
    ASSERT_OK(swoop_log_open(path));
    char *big = malloc(10000);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    swoop_log(SWOOP_LOG_ERROR, 0, "%s", big);
    free(big);
    char *text = read_file(path);
    size_t len = strlen(text);
    ASSERT_LE(len, 4096);
    ASSERT_EQ(text[len - 1], '\n');
    ASSERT_NOT_NULL(strstr(text, "...\n"));
    ASSERT_OK(swoop_log_open(NULL));
}
