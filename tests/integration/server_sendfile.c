/*
 * swoop_server_sendfile with real servers, both modes: a 10 MiB file sent
 * with an offset and a length arrives byte-identical through a client with a
 * small receive buffer (so sendfile(2) hits EAGAIN and resumes on
 * writability), between a send queued before it and one queued after it; two
 * requests pipelined in one write come back in order; the owner closes the
 * file afterwards (no server process keeps it open); a directory, a missing
 * file and a range past the end fail at once with a clear error.
 *
 * Protocol, one command per line: "file <offset> <length>" answers
 * "BEFORE\n", the range, "AFTER\n" (or "E<rc>\n"); "bad <path> <offset>"
 * answers "E<rc>\n".
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>

#include "server_common.h"

#define FILE_SIZE (10u << 20)

static char file_path[PATH_MAX];

static void say(swoop_server_t *srv, swoop_conn_id_t conn, const char *line)
{
    int rc = swoop_server_send(srv, conn, line, strlen(line));
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static void on_cmd(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data, size_t len)
{
    char cmd[PATH_MAX + 64];
    ASSERT_LT(len, sizeof(cmd));
    memcpy(cmd, data, len);
    cmd[len] = '\0';
    char out[32];
    long long off, n;
    char path[PATH_MAX];
    if (sscanf(cmd, "file %lld %lld", &off, &n) == 2) {
        say(srv, conn, "BEFORE\n");
        int rc = swoop_server_sendfile(srv, conn, file_path, (off_t)off, (size_t)n);
        if (rc < 0) {
            snprintf(out, sizeof(out), "E%d\n", rc);
            say(srv, conn, out);
        }
        say(srv, conn, "AFTER\n");
    } else if (sscanf(cmd, "bad %4095s %lld", path, &off) == 2) {
        snprintf(out, sizeof(out), "E%d\n", swoop_server_sendfile(srv, conn, path, (off_t)off, 0));
        say(srv, conn, out);
    } else {
        FAIL("unexpected command \"%s\"", cmd);
    }
}

static void setup(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_cmd}));
}

static unsigned char byte_at(size_t i)
{
    uint32_t x = (uint32_t)i * 2654435761u;
    return (unsigned char)(x >> 24);
}

static void make_file(void)
{
    snprintf(file_path, sizeof(file_path), "%s/ten-mib.bin", swoop_test_tmpdir());
    FILE *f = fopen(file_path, "wb");
    ASSERT_NOT_NULL(f);
    unsigned char *buf = malloc(FILE_SIZE);
    for (size_t i = 0; i < FILE_SIZE; i++)
        buf[i] = byte_at(i);
    ASSERT_EQ(fwrite(buf, 1, FILE_SIZE, f), FILE_SIZE);
    ASSERT_EQ(fclose(f), 0);
    free(buf);
}

/* 1 if process `pid` has `path` open. */
static int has_open(pid_t pid, const char *path)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char link[PATH_MAX + 64], target[PATH_MAX];
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            found = strcmp(target, path) == 0;
        }
    }
    closedir(d);
    return found;
}

static int server_has_open(srv_handle_t *h, const char *path)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    int n = has_open(st.master_pid, path);
    for (int i = 0; i < st.worker_num; i++)
        n += st.workers[i].pid > 0 && has_open(st.workers[i].pid, path);
    return n;
}

static void expect_range(int fd, size_t off, size_t n)
{
    char head[8];
    ASSERT_EQ(cli_read_n(fd, head, 7, 5000), 7);
    ASSERT_MEM_EQ(head, "BEFORE\n", 7);
    unsigned char *got = malloc(n + 1);
    ASSERT_EQ(cli_read_n(fd, got, n, 20000), n);
    for (size_t i = 0; i < n; i++) {
        if (got[i] != byte_at(off + i))
            FAIL("byte %zu of the range at %zu differs", i, off);
    }
    free(got);
    ASSERT_EQ(cli_read_n(fd, head, 6, 5000), 6);
    ASSERT_MEM_EQ(head, "AFTER\n", 6);
}

static long ask_rc(int fd, const char *cmd)
{
    cli_write(fd, cmd, strlen(cmd));
    char line[32];
    size_t n = 0;
    while (n < sizeof(line) - 1) {
        ASSERT_EQ(cli_read_n(fd, line + n, 1, 5000), 1);
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
    ASSERT_EQ(line[0], 'E');
    return strtol(line + 1, NULL, 10);
}

static void sendfile_test(swoop_mode_t mode)
{
    make_file();
    srv_handle_t h = srv_start(mode, setup, NULL, 2);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 32 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);

    /* Nearly the whole file, from an odd offset to 1000 bytes before the end. */
    size_t off = 12345, n = FILE_SIZE - 12345 - 1000;
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "file %zu %zu\n", off, n);
    cli_write(fd, cmd, strlen(cmd));
    expect_range(fd, off, n);

    /* Two requests in one write: both ranges in order, each between its markers. */
    snprintf(cmd, sizeof(cmd), "file 7 100000\nfile %u 0\n", FILE_SIZE - 5000);
    cli_write(fd, cmd, strlen(cmd));
    expect_range(fd, 7, 100000);
    expect_range(fd, FILE_SIZE - 5000, 5000);
    WAIT_UNTIL(server_has_open(&h, file_path) == 0, 3000);

    /* Errors: a directory, a missing file, a range past the end. */
    snprintf(cmd, sizeof(cmd), "bad %s 0\n", swoop_test_tmpdir());
    ASSERT_EQ(ask_rc(fd, cmd), -EISDIR);
    snprintf(cmd, sizeof(cmd), "bad %s/missing 0\n", swoop_test_tmpdir());
    ASSERT_EQ(ask_rc(fd, cmd), -ENOENT);
    snprintf(cmd, sizeof(cmd), "bad %s %u\n", file_path, FILE_SIZE + 1);
    ASSERT_EQ(ask_rc(fd, cmd), SWOOP_EINVAL);
    snprintf(cmd, sizeof(cmd), "file %u 2\n", FILE_SIZE - 1);
    cli_write(fd, cmd, strlen(cmd));
    char resp[32];
    ASSERT_EQ(cli_read_n(fd, resp, 7, 5000), 7);
    ASSERT_MEM_EQ(resp, "BEFORE\n", 7);
    char line[32];
    snprintf(line, sizeof(line), "E%d\nAFTER\n", SWOOP_EINVAL);
    ASSERT_EQ(cli_read_n(fd, resp, strlen(line), 5000), strlen(line));
    ASSERT_MEM_EQ(resp, line, strlen(line));
    close(fd);
    srv_stop(&h, 10000);
    unlink(file_path);
}

TEST(server_sendfile_process)
{
    sendfile_test(SWOOP_MODE_PROCESS);
}

TEST(server_sendfile_base)
{
    sendfile_test(SWOOP_MODE_BASE);
}
