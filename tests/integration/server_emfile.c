/*
 * Descriptor exhaustion (RELIABILITY.md scenario 11), both modes: the server
 * process runs with RLIMIT_NOFILE 64 and 150 clients connect, more than fit.
 * Accepting hits EMFILE; the server must not spin on its level-triggered
 * listening socket (its CPU time over one second, from /proc/PID/stat, stays
 * low), must log EMFILE at most about once a second, and once the clients
 * are gone a new client must be served within about a second.
 */
#include <stdio.h>
#include <sys/resource.h>

#include "server_common.h"

#define CLIENTS 150

static char log_path[512];

static void setup(swoop_server_t *srv, void *arg)
{
    struct rlimit rl = {.rlim_cur = 64, .rlim_max = 64};
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    ASSERT_OK(swoop_server_set(srv, "log_file", log_path));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
}

/* utime + stime of a process, in clock ticks. */
static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    ASSERT_NOT_NULL(p);
    unsigned long ut, st;
    /* After ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt ut st */
    ASSERT_EQ(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
    return (long)(ut + st);
}

/* The processes that accept: the master (PROCESS) or every worker (BASE). */
static long server_cpu(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    if (st.mode == SWOOP_MODE_PROCESS)
        return cpu_ticks(st.master_pid);
    long t = 0;
    for (int i = 0; i < st.worker_num; i++)
        t += cpu_ticks(st.workers[i].pid);
    return t;
}

static int emfile_lines(void)
{
    FILE *f = fopen(log_path, "r");
    if (f == NULL)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "accept4()") && strstr(line, "pausing accept"))
            n++;
    }
    fclose(f);
    return n;
}

static void emfile(swoop_mode_t mode)
{
    snprintf(log_path, sizeof(log_path), "%s/server.log", swoop_test_tmpdir());
    srv_handle_t h = srv_start(mode, setup, NULL, 2);
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        fds[i] = cli_connect(h.port);
    WAIT_UNTIL(emfile_lines() >= 1, 3000);

    /* One second while the backlog still holds connections it cannot accept. */
    long ticks0 = server_cpu(&h);
    int lines0 = emfile_lines();
    uint64_t t0 = swoop_test_now_ms();
    swoop_test_sleep_ms(1000);
    long ticks = server_cpu(&h) - ticks0;
    int lines = emfile_lines() - lines0;
    uint64_t elapsed = swoop_test_now_ms() - t0;
    long hz = sysconf(_SC_CLK_TCK);
    printf("# %s: under EMFILE for %llu ms: server CPU %ld ticks (%ld%% of a core), %d EMFILE "
           "log lines\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", (unsigned long long)elapsed, ticks,
           ticks * 100 * 1000 / hz / (long)elapsed, lines);
    ASSERT_LE(ticks * 1000 / hz, (long)elapsed / 5); /* < 20 % of one core */
    ASSERT_LE(lines, (int)(elapsed / 1000) + 1);

    /* The clients leave; a new one is served within about a second. */
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    uint64_t tc = swoop_test_now_ms();
    int fd = cli_connect(h.port);
    cli_write(fd, "ping", 4);
    char buf[4];
    ASSERT_EQ(cli_read_n(fd, buf, 4, 1000), 4);
    ASSERT_MEM_EQ(buf, "ping", 4);
    uint64_t served = swoop_test_now_ms() - tc;
    printf("# %s: new client served %llu ms after the others closed\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", (unsigned long long)served);
    ASSERT_LE(served, 1000 * swoop_test_multiplier());
    close(fd);
    srv_stop(&h, 10000);
}

TEST(server_emfile_process)
{
    emfile(SWOOP_MODE_PROCESS);
}

TEST(server_emfile_base)
{
    emfile(SWOOP_MODE_BASE);
}
