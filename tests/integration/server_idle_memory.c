/* TEST_LABELS: heavy */
/*
 * Issue 10, item 6: an idle connection does not keep the largest packet it
 * sent or the largest reply it got. CONNS connections each send one
 * 1 MiB EOF-framed line, read its echo (most of which waits in the
 * server's output buffer: the socket's kernel buffer is kept small) and
 * stay open; the resident memory of the process owning
 * the connections (the master in PROCESS mode, the worker in BASE mode)
 * must grow by at most 16 KiB per idle connection. Before the fix each one
 * kept about 2 MiB of input buffer and 1 MiB of output buffer.
 *
 * The connections go one after the other, so the server holds at most one
 * big packet at a time and a freed block is reused by the next one: what
 * stays is what the idle connections keep. ASan's quarantine would keep
 * every freed block resident for a while, hiding what the server frees, so
 * this binary turns it off (the rest of ASan and UBSan stays on).
 */
#include <stdio.h>

#include "server_common.h"

#define CONNS       64
#define LINE        (1024 * 1024)
#define PER_CONN_KB 16
/* Allocator slack: caches and a freed packet-sized block kept for reuse. */
#define SLACK_KB 1024

#if defined(__SANITIZE_ADDRESS__)
#define IDLE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IDLE_ASAN 1
#endif
#endif

#ifdef IDLE_ASAN
/*
 * Sanitizer options are read once, at process start, and the environment
 * ctest sets wins over __asan_default_options: so, as the runner does for
 * log_path, this binary re-executes itself once before main with the
 * quarantine off and without detect_stack_use_after_return, whose fake
 * stacks get touched page by page as calls go by and would add megabytes of
 * RSS unrelated to connections. glibc passes argv to constructors.
 */
__attribute__((constructor)) static void idle_asan_options(int argc, char **argv)
{
    if (getenv("SWOOP_IDLE_MEMORY_REEXEC"))
        return;
    setenv("SWOOP_IDLE_MEMORY_REEXEC", "1", 1);
    const char *old = getenv("ASAN_OPTIONS");
    char val[4096];
    snprintf(val, sizeof(val), "%s%squarantine_size_mb=0:detect_stack_use_after_return=0",
             old ? old : "", old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", val, 1);
    execv("/proc/self/exe", argv);
    perror("execv /proc/self/exe"); /* the measurement may then fail, loudly */
}
#endif

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    long kb = -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    ASSERT_GT(kb, 0);
    return kb;
}

/* The process that owns the connections: the master's reactor threads, or the one BASE worker. */
static pid_t owner_pid(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    return st.mode == SWOOP_MODE_BASE ? st.workers[0].pid : st.master_pid;
}

/* The port the test uses: its small kernel send buffer makes replies queue in the server. */
static _Atomic int *small_port;

static void setup_idle(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "open_eof_check", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_set(srv, "package_max_length", "2M"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
    /*
     * Accepted sockets inherit SO_SNDBUF from the listener, and an explicit
     * size turns autotuning off: the kernel then takes about 64 KiB of a
     * reply at once (instead of ~4 MiB) and the rest waits in the server's
     * output buffer until the client reads.
     */
    swoop_port_t *p;
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &p));
    int sndbuf = 128 * 1024;
    ASSERT_EQ(setsockopt(swoop_port_fd(p), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    atomic_store(small_port, swoop_port_number(p));
}

/* Sends one LINE-byte line on a new connection and reads its echo; returns the open fd. */
static int big_round_trip(int port, char *line, char *back)
{
    int fd = cli_connect(port);
    cli_write(fd, line, LINE);
    ASSERT_EQ(cli_read_n(fd, back, LINE, 10000), LINE);
    ASSERT_MEM_EQ(back, line, LINE);
    return fd;
}

static void idle_memory(swoop_mode_t mode)
{
    const char *name = mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS";
    small_port = srv_shared(sizeof(*small_port));
    srv_handle_t h = srv_start(mode, setup_idle, NULL, 1);
    int port = atomic_load(small_port);
    ASSERT_GT(port, 0);
    pid_t owner = owner_pid(&h);
    char *line = malloc(LINE), *back = malloc(LINE);
    ASSERT_NOT_NULL(line);
    ASSERT_NOT_NULL(back);
    for (size_t i = 0; i < LINE - 1; i++)
        line[i] = (char)('a' + i % 26);
    line[LINE - 1] = '\n';
    /* Warm-up: the reactors' read buffers, IPC buffers and allocator caches exist before. */
    for (int i = 0; i < 4; i++)
        close(big_round_trip(port, line, back));
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.connection_num == 0), 5000);
    long before = rss_kb(owner);
    int *fds = calloc(CONNS, sizeof(int));
    ASSERT_NOT_NULL(fds);
    for (int i = 0; i < CONNS; i++)
        fds[i] = big_round_trip(port, line, back);
    srv_stats(&h, &st);
    ASSERT_EQ(st.connection_num, CONNS);
    long after = rss_kb(owner);
    long growth = after - before;
    printf("# %s: %d idle connections after a 1 MiB packet and a 1 MiB reply each: owner RSS "
           "%ld -> %ld kB, %+ld kB (%.1f kB per connection; limit %d)\n",
           name, CONNS, before, after, growth, (double)growth / CONNS, PER_CONN_KB);
    ASSERT_LE(growth, (long)CONNS * PER_CONN_KB + SLACK_KB);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    free(fds);
    free(line);
    free(back);
    srv_stop(&h, 10000);
}

TEST_TIMEOUT(server_idle_conn_memory_process, 120)
{
    idle_memory(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(server_idle_conn_memory_base, 120)
{
    idle_memory(SWOOP_MODE_BASE);
}
