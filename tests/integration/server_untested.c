/*
 * Three server paths no other test drives: max_request recycling with
 * clients connected (BASE: the retiring process replies to its last request,
 * then closes its connections with a FIN and exits, and its successor takes
 * the worker id; a request that reached it unread is lost and its client
 * reset; PROCESS: the connections belong to the reactor threads and survive
 * every replacement), reopening log_file after a rename on SIGRTMIN
 * (every process of the tree, task workers included, writes to the new
 * file), and daemonize with pid_file (the starting process exits inside
 * swoop_server_start, the daemon runs in a session of its own, serves, and
 * on SIGTERM leaves no process and no pid file behind).
 */
/* TEST_LABELS: tsan */
#include <sys/stat.h>

#include <swoop/log.h>

#include "server_common.h"

/* Start time (field 22 of /proc/PID/stat) of a running pid, 0 if there is none. */
static unsigned long long proc_start_time(pid_t pid)
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
    unsigned long long start = 0;
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
                            "%*d %*d %*d %llu",
                            &start) != 1)
        return 0;
    return start;
}

/* Reaped: no process of that pid with that start time (a zombie still has its entry). */
static int proc_reaped(pid_t pid, unsigned long long start)
{
    return proc_start_time(pid) != start;
}

/* Field 4 (ppid) of /proc/PID/stat, -1 if the pid does not exist. */
static pid_t proc_ppid(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    int ppid = -1;
    if (p == NULL || sscanf(p + 2, "%*c %d", &ppid) != 1)
        return -1;
    return (pid_t)ppid;
}

/* ---- 1. max_request ---- */

enum { MR_LIMIT = 20, MR_TOTAL = 100, MR_PIDS = 64 };

struct mr_state {
    _Atomic int last_worker; /* the worker that ran the latest on_connect */
    _Atomic int connects;
    _Atomic long served[2];       /* on_receive per worker id, over all its processes */
    _Atomic int closes_at_retire; /* on_close run by a process that had reached the limit */
    _Atomic int npids;
    _Atomic int pids[MR_PIDS]; /* every event worker process started */
    _Atomic int holding;       /* a "hold" request is inside on_receive */
    _Atomic int release;       /* ...and may return */
};
static struct mr_state *mr;
static int mr_requests; /* of this worker process (each forks with 0) */

static void mr_on_worker_start(swoop_server_t *srv, int id)
{
    int i = atomic_fetch_add(&mr->npids, 1);
    ASSERT_LT(i, MR_PIDS);
    atomic_store(&mr->pids[i], (int)getpid());
}

static void mr_on_connect(swoop_server_t *srv, swoop_conn_id_t conn, int rid)
{
    atomic_store(&mr->last_worker, swoop_server_worker_id(srv));
    atomic_fetch_add(&mr->connects, 1);
}

static void mr_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                          size_t len)
{
    mr_requests++;
    atomic_fetch_add(&mr->served[swoop_server_worker_id(srv)], 1);
    if (len >= 4 && memcmp(data, "hold", 4) == 0) {
        atomic_store(&mr->holding, 1);
        uint64_t deadline = swoop_test_now_ms() + 5000 * swoop_test_multiplier();
        while (!atomic_load(&mr->release) && swoop_test_now_ms() < deadline)
            swoop_test_sleep_ms(1);
    }
    srv_echo(srv, conn, rid, data, len);
}

static void mr_on_close(swoop_server_t *srv, swoop_conn_id_t conn, int rid)
{
    if (mr_requests >= MR_LIMIT)
        atomic_fetch_add(&mr->closes_at_retire, 1);
}

static void setup_max_request(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "max_request", "20"));
    ASSERT_OK(swoop_server_set(srv, "max_request_grace", "0"));
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_worker_start = mr_on_worker_start,
                                                            .on_connect = mr_on_connect,
                                                            .on_receive = mr_on_receive,
                                                            .on_close = mr_on_close}));
}

/* One request/echo round trip of request `k`; fails unless the reply is intact. */
static void mr_round_trip(int fd, int k)
{
    char req[32], rep[32];
    int n = snprintf(req, sizeof(req), "request-%03d\n", k);
    cli_write(fd, req, (size_t)n);
    ASSERT_UEQ(cli_read_n(fd, rep, (size_t)n, 3000), (size_t)n);
    ASSERT_MEM_EQ(rep, req, (size_t)n);
}

/* EOF with nothing before it: a FIN after the last reply, not a reset. */
static void assert_clean_eof(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    ASSERT_EQ(poll(&pf, 1, 3000 * (int)swoop_test_multiplier()), 1);
    char c;
    ssize_t k = recv(fd, &c, 1, 0);
    if (k < 0)
        FAIL("expected a clean EOF, got recv error %d (%s)", errno, strerror(errno));
    ASSERT_EQ(k, 0);
}

/*
 * BASE: both workers accept on the shared socket, so a connection lands on
 * whichever wins; connect until the one we want ran on_connect for it (the
 * others are closed without a request: they count no request).
 */
static int mr_connect_to(srv_handle_t *h, int want, int *attempts)
{
    for (int tries = 0; tries < 2000; tries++) {
        int c0 = atomic_load(&mr->connects);
        int fd = cli_connect(h->port);
        WAIT_UNTIL(atomic_load(&mr->connects) > c0, 3000);
        ++*attempts;
        if (atomic_load(&mr->last_worker) == want)
            return fd;
        close(fd);
    }
    FAIL("no connection landed on worker %d in 2000 attempts", want);
}

TEST(server_base_max_request_replaces_worker)
{
    mr = srv_shared(sizeof(*mr));
    atomic_store(&mr->last_worker, -1);
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_max_request, NULL, 2);
    int attempts = 0;
    int fd[2] = {mr_connect_to(&h, 0, &attempts), mr_connect_to(&h, 1, &attempts)};
    /* An idle connection on worker 0's first process: closed at its retirement too. */
    int idle = mr_connect_to(&h, 0, &attempts);
    int idle_open = 1;
    long sent[2] = {0, 0};
    uint64_t t0 = swoop_test_now_ms();
    for (int k = 0; k < MR_TOTAL; k++) {
        int w = k % 2;
        swoop_server_stats_t st;
        srv_stats(&h, &st);
        pid_t old = st.workers[w].pid;
        unsigned long long old_start = proc_start_time(old);
        ASSERT(old_start != 0);
        mr_round_trip(fd[w], k);
        sent[w]++;
        /* Each process counts its own requests; grace 0: exactly 20 each. */
        ASSERT_EQ(atomic_load(&mr->served[w]), sent[w]);
        if (sent[w] % MR_LIMIT != 0)
            continue;
        /*
         * The 20th request of this process: it replied, then closes its
         * connections (on_close runs) and exits; the manager starts the
         * successor under the same id.
         */
        assert_clean_eof(fd[w]);
        close(fd[w]);
        if (w == 0 && idle_open) {
            assert_clean_eof(idle);
            close(idle);
            idle_open = 0;
        }
        uint64_t starts = 1 + (uint64_t)sent[w] / MR_LIMIT;
        WAIT_UNTIL((srv_stats(&h, &st), st.workers[w].starts == starts &&
                                            st.workers[w].pid != old && st.workers[w].pid > 0 &&
                                            swoop_test_pid_alive(st.workers[w].pid)),
                   3000);
        WAIT_UNTIL(proc_reaped(old, old_start), 3000);
        if (k + 2 < MR_TOTAL)
            fd[w] = mr_connect_to(&h, w, &attempts);
        else
            fd[w] = -1;
    }
    uint64_t ms = swoop_test_now_ms() - t0;
    /* 50 requests per id: retired at 20 and 40, the third process has served 10. */
    swoop_server_stats_t st;
    for (int w = 0; w < 2; w++) {
        ASSERT_EQ(atomic_load(&mr->served[w]), MR_TOTAL / 2);
        /* The worker counts a request after on_receive returned: its reply can come first. */
        WAIT_UNTIL((srv_stats(&h, &st), st.workers[w].requests == (MR_TOTAL / 2) % MR_LIMIT), 3000);
        ASSERT_UEQ(st.workers[w].starts, 1 + (MR_TOTAL / 2) / MR_LIMIT);
        if (fd[w] >= 0)
            close(fd[w]);
    }
    /* Two retirements per id, each closed the connection that made it retire (and the idle one). */
    WAIT_UNTIL(atomic_load(&mr->closes_at_retire) == 4 + 1, 3000);
    WAIT_UNTIL(atomic_load(&mr->npids) == 6, 3000);
    printf("# BASE max_request 20: 100 round trips in %llu ms, 4 replacements, %d connects to "
           "place 7 connections\n",
           (unsigned long long)ms, attempts);
    srv_stop(&h, 5000);
    for (int i = 0; i < atomic_load(&mr->npids); i++)
        ASSERT(!swoop_test_pid_alive(atomic_load(&mr->pids[i])));
    munmap(mr, sizeof(*mr));
}

static void setup_max_request_one(swoop_server_t *srv, void *arg)
{
    setup_max_request(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
}

/*
 * BASE: a request that reached the retiring process's socket while its 20th
 * request ran is still served: retiring, the process stops accepting, reads
 * each connection one last time, runs what it read and closes each
 * connection once its output is out (clean EOF), as at shutdown. New
 * connections go to the successor.
 */
TEST(server_base_max_request_serves_unread_request)
{
    mr = srv_shared(sizeof(*mr));
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_max_request_one, NULL, 1);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    pid_t old = st.workers[0].pid;
    int a = cli_connect(h.port), b = cli_connect(h.port);
    WAIT_UNTIL(atomic_load(&mr->connects) == 2, 3000);
    for (int k = 0; k < MR_LIMIT - 1; k++)
        mr_round_trip(a, k);
    /* The 20th request waits inside on_receive until B's request is in the server's socket. */
    cli_write(a, "hold\n", 5);
    WAIT_UNTIL(atomic_load(&mr->holding), 3000);
    cli_write(b, "late\n", 5);
    WAIT_UNTIL(srv_rx_queue(b, h.port) == 5, 3000);
    atomic_store(&mr->release, 1);
    char buf[8];
    ASSERT_UEQ(cli_read_n(a, buf, 5, 3000), 5);
    ASSERT_MEM_EQ(buf, "hold\n", 5);
    assert_clean_eof(a);
    /* B: its request, already in the kernel, is answered by the retiring process. */
    ASSERT_UEQ(cli_read_n(b, buf, 5, 3000), 5);
    ASSERT_MEM_EQ(buf, "late\n", 5);
    assert_clean_eof(b);
    ASSERT_EQ(atomic_load(&mr->served[0]), MR_LIMIT + 1);
    WAIT_UNTIL(atomic_load(&mr->closes_at_retire) == 2, 3000); /* on_close ran for both */
    close(a);
    close(b);
    /* The successor serves. */
    WAIT_UNTIL((srv_stats(&h, &st), st.workers[0].starts == 2 && st.workers[0].pid != old &&
                                        swoop_test_pid_alive(st.workers[0].pid)),
               3000);
    int c = cli_connect(h.port);
    mr_round_trip(c, 0);
    close(c);
    srv_stop(&h, 5000);
    munmap(mr, sizeof(*mr));
}

/* PROCESS: the reactor threads own the connections; a replacement reads the same channel. */
TEST(server_process_max_request_keeps_connections)
{
    enum { NC = 4 };
    mr = srv_shared(sizeof(*mr));
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup_max_request, NULL, 2);
    int fd[NC];
    for (int i = 0; i < NC; i++)
        fd[i] = cli_connect(h.port);
    WAIT_UNTIL(atomic_load(&mr->connects) == NC, 3000);
    uint64_t t0 = swoop_test_now_ms();
    for (int k = 0; k < MR_TOTAL; k++)
        mr_round_trip(fd[k % NC], k); /* never an EOF: every connection survives */
    uint64_t ms = swoop_test_now_ms() - t0;
    long s0 = atomic_load(&mr->served[0]), s1 = atomic_load(&mr->served[1]);
    ASSERT_EQ(s0 + s1, MR_TOTAL);
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.workers[0].starts == 1 + (uint64_t)s0 / MR_LIMIT &&
                                        st.workers[1].starts == 1 + (uint64_t)s1 / MR_LIMIT &&
                                        swoop_test_pid_alive(st.workers[0].pid) &&
                                        swoop_test_pid_alive(st.workers[1].pid) &&
                                        /* counted after on_receive: the reply can come first */
                                        st.workers[0].requests == (uint64_t)s0 % MR_LIMIT &&
                                        st.workers[1].requests == (uint64_t)s1 % MR_LIMIT),
               3000);
    /* Dispatch mode 2 (fd modulo): two connections per worker, 50 requests each. */
    ASSERT_EQ(s0, MR_TOTAL / 2);
    ASSERT_EQ(s1, MR_TOTAL / 2);
    WAIT_UNTIL(atomic_load(&mr->npids) == 6, 3000);
    int npids = atomic_load(&mr->npids);
    /* Every retired process exited and was reaped. */
    for (int i = 0; i < npids; i++) {
        pid_t p = atomic_load(&mr->pids[i]);
        if (p != st.workers[0].pid && p != st.workers[1].pid)
            WAIT_UNTIL(!swoop_test_pid_alive(p), 3000);
    }
    /* The connections are still open and served. */
    for (int i = 0; i < NC; i++)
        mr_round_trip(fd[i], 1000 + i);
    ASSERT_EQ(atomic_load(&mr->closes_at_retire), 0);
    printf("# PROCESS max_request 20: 100 round trips in %llu ms over %d connections, 4 "
           "replacements, no connection lost\n",
           (unsigned long long)ms, NC);
    for (int i = 0; i < NC; i++)
        close(fd[i]);
    srv_stop(&h, 5000);
    for (int i = 0; i < npids; i++)
        ASSERT(!swoop_test_pid_alive(atomic_load(&mr->pids[i])));
    munmap(mr, sizeof(*mr));
}

/*
 * BASE: 30 requests pipelined in one write to a worker with max_request 20:
 * the retiring process still answers all 30 (its last read brought them),
 * asks for its replacement once (not once per request past the limit, which
 * would overwrite the successor's retirement mark), and the successor
 * retires in turn after its own 20.
 */
static char mr_log[512];
static char *slurp(const char *path);

static void setup_max_request_logged(swoop_server_t *srv, void *arg)
{
    setup_max_request_one(srv, arg);
    ASSERT_OK(swoop_server_set(srv, "log_file", mr_log));
}

static int count_in_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, text) != NULL;
    fclose(f);
    return n;
}

TEST(server_base_max_request_pipelined_retires_once)
{
    mr = srv_shared(sizeof(*mr));
    snprintf(mr_log, sizeof(mr_log), "%s/mr.log", swoop_test_tmpdir());
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup_max_request_logged, NULL, 1);
    int a = cli_connect(h.port);
    char all[30 * 16], want[30 * 16];
    size_t len = 0;
    for (int k = 0; k < 30; k++)
        len += (size_t)snprintf(all + len, sizeof(all) - len, "request-%03d\n", k);
    memcpy(want, all, len);
    cli_write(a, all, len);
    char got[sizeof(all)];
    ASSERT_UEQ(cli_read_n(a, got, len, 5000), len);
    ASSERT_MEM_EQ(got, want, len);
    assert_clean_eof(a);
    close(a);
    swoop_server_stats_t st;
    WAIT_UNTIL(
        (srv_stats(&h, &st), st.workers[0].starts == 2 && swoop_test_pid_alive(st.workers[0].pid)),
        3000);
    /* The successor: 20 more, one at a time, then its own retirement. */
    int b = cli_connect(h.port);
    for (int k = 0; k < MR_LIMIT; k++)
        mr_round_trip(b, k);
    assert_clean_eof(b);
    close(b);
    WAIT_UNTIL(
        (srv_stats(&h, &st), st.workers[0].starts == 3 && swoop_test_pid_alive(st.workers[0].pid)),
        3000);
    srv_stop(&h, 5000);
    if (count_in_file(mr_log, "asking for a replacement") != 2) {
        char *log = slurp(mr_log);
        fprintf(stderr, "%s", log);
        free(log);
    }
    ASSERT_EQ(count_in_file(mr_log, "asking for a replacement"), 2);
    munmap(mr, sizeof(*mr));
}

/* ---- 2. log_file reopen on SIGRTMIN ---- */

struct lr_arg {
    char path[512];
};

/* "log X\n": a worker line with X; "task X\n": a task whose on_task logs X. Echoes either. */
static void lr_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                          size_t len)
{
    const char *d = data;
    int n = (int)len - 1; /* without the newline */
    if (len > 5 && memcmp(d, "log ", 4) == 0)
        swoop_log(SWOOP_LOG_WARNING, 0, "untested-worker %.*s", n - 4, d + 4);
    else if (len > 6 && memcmp(d, "task ", 5) == 0)
        ASSERT_GT(swoop_server_task(srv, d + 5, (size_t)n - 5, -1), 0);
    srv_echo(srv, conn, rid, data, len);
}

static void lr_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data, size_t len)
{
    swoop_log(SWOOP_LOG_WARNING, 0, "untested-task %.*s", (int)len, (const char *)data);
}

static void setup_log_reopen(swoop_server_t *srv, void *arg)
{
    struct lr_arg *a = arg;
    ASSERT_OK(swoop_server_set(srv, "log_file", a->path));
    ASSERT_OK(swoop_server_set(srv, "log_level", "info"));
    ASSERT_OK(swoop_server_set(srv, "task_worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_on(
        srv, &(swoop_server_events_t){.on_receive = lr_on_receive, .on_task = lr_on_task}));
}

/* The whole file as a string (empty if it does not exist); free it. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    size_t k;
    while ((k = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2) {
            cap *= 2;
            s = realloc(s, cap);
        }
    }
    fclose(f);
    s[n] = '\0';
    return s;
}

/* A line of `path` written by role `role` (SWOOP_ROLE_*) that contains `text` (NULL: any). */
static int log_has(const char *path, char role, pid_t pid, const char *text)
{
    char *s = slurp(path);
    char tag[32];
    if (pid > 0)
        snprintf(tag, sizeof(tag), " %c%d.", role, (int)pid);
    else
        snprintf(tag, sizeof(tag), " %c", role);
    int found = 0;
    for (char *line = s; line && *line && !found;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *close_br = strchr(line, ']');
        char *t = strstr(line, tag);
        if (t && close_br && t < close_br && (text == NULL || strstr(line, text)))
            found = 1;
        line = nl ? nl + 1 : NULL;
    }
    free(s);
    return found;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Sends "<verb> <text>\n" and waits for its echo. */
static void lr_cmd(int fd, const char *verb, const char *text)
{
    char req[128], rep[128];
    int n = snprintf(req, sizeof(req), "%s %s\n", verb, text);
    cli_write(fd, req, (size_t)n);
    ASSERT_UEQ(cli_read_n(fd, rep, (size_t)n, 3000), (size_t)n);
    ASSERT_MEM_EQ(rep, req, (size_t)n);
}

static void log_reopen(swoop_mode_t mode)
{
    static struct lr_arg a;
    char b_path[512];
    snprintf(a.path, sizeof(a.path), "%s/a.log", swoop_test_tmpdir());
    snprintf(b_path, sizeof(b_path), "%s/b.log", swoop_test_tmpdir());
    srv_handle_t h = srv_start(mode, setup_log_reopen, &a, 2);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    pid_t manager = st.manager_pid;
    int fd = cli_connect(h.port);

    /* Before the rename: a worker line and a task worker line. */
    lr_cmd(fd, "log", "before");
    lr_cmd(fd, "task", "before");
    WAIT_UNTIL(log_has(a.path, SWOOP_ROLE_WORKER, 0, "untested-worker before") &&
                   log_has(a.path, SWOOP_ROLE_TASKER, 0, "untested-task before"),
               3000);

    /* logrotate: rename, then SIGRTMIN to the process the user signals. */
    ASSERT_EQ(rename(a.path, b_path), 0);
    ASSERT_EQ(kill(h.pid, SIGRTMIN), 0);
    WAIT_UNTIL(file_exists(a.path), 3000);

    /*
     * Each process reopens when it handles the forwarded signal: ask for
     * worker and task lines until both land in the new file.
     */
    uint64_t deadline = swoop_test_now_ms() + 3000 * swoop_test_multiplier();
    int round = 0, worker_ok = 0, task_ok = 0;
    while (!(worker_ok && task_ok)) {
        if (swoop_test_now_ms() > deadline)
            FAIL("no worker (%d) or task worker (%d) line in the new log after %d rounds",
                 worker_ok, task_ok, round);
        char text[32];
        snprintf(text, sizeof(text), "after-%d", round++);
        lr_cmd(fd, "log", text);
        lr_cmd(fd, "task", text);
        swoop_test_sleep_ms(5);
        worker_ok = log_has(a.path, SWOOP_ROLE_WORKER, 0, "untested-worker after-");
        task_ok = log_has(a.path, SWOOP_ROLE_TASKER, 0, "untested-task after-");
    }
    close(fd);
    srv_stop(&h, 5000);

    /* The shutdown lines of the master (PROCESS) and of the manager went to the new file. */
    if (mode == SWOOP_MODE_PROCESS)
        ASSERT(log_has(a.path, SWOOP_ROLE_MASTER, h.pid, "server stopped"));
    ASSERT(log_has(a.path, SWOOP_ROLE_MANAGER, manager, "manager stopped"));
    /* The old file kept what was written before the rename, the new one has none of it. */
    ASSERT(log_has(b_path, SWOOP_ROLE_WORKER, 0, "untested-worker before"));
    ASSERT(log_has(b_path, SWOOP_ROLE_TASKER, 0, "untested-task before"));
    ASSERT(!log_has(a.path, SWOOP_ROLE_WORKER, 0, "untested-worker before"));
    ASSERT(!log_has(a.path, SWOOP_ROLE_TASKER, 0, "untested-task before"));
    ASSERT(!log_has(b_path, SWOOP_ROLE_MANAGER, 0, "manager stopped"));
    swoop_test_assert_log_clean(a.path);
    swoop_test_assert_log_clean(b_path);
    printf("# %s: the new log had worker and task worker lines after %d round(s)\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", round);
}

TEST(server_log_reopen_process)
{
    log_reopen(SWOOP_MODE_PROCESS);
}

TEST(server_log_reopen_base)
{
    log_reopen(SWOOP_MODE_BASE);
}

/* ---- 3. daemonize + pid_file ---- */

struct dm_state {
    _Atomic int returned_pid; /* the process in which swoop_server_start returned */
    _Atomic int rc;
    char pid_file[512];
    char log_file[512];
};
static struct dm_state *dm;

static void dm_child(void *arg, int ready_fd)
{
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_PROCESS));
    swoop_port_t *port;
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &port));
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "reactor_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "2"));
    ASSERT_OK(swoop_server_set(srv, "daemonize", "1"));
    ASSERT_OK(swoop_server_set(srv, "pid_file", dm->pid_file));
    ASSERT_OK(swoop_server_set(srv, "log_file", dm->log_file));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
    char line[64];
    int n = snprintf(line, sizeof(line), "port %d\n", swoop_port_number(port));
    ASSERT_EQ(write(ready_fd, line, (size_t)n), n);
    close(ready_fd);
    int rc = swoop_server_start(srv);
    /* Only the daemon gets here, at its shutdown. */
    atomic_store(&dm->rc, rc);
    atomic_store(&dm->returned_pid, (int)getpid());
    ASSERT_OK(swoop_server_free(srv));
}

static pid_t read_pid_file(const char *path)
{
    char *s = slurp(path);
    int pid = 0;
    if (sscanf(s, "%d", &pid) != 1)
        pid = 0;
    free(s);
    return (pid_t)pid;
}

static void assert_fd_target(pid_t pid, int fd, const char *want)
{
    char path[64], target[512];
    snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    ASSERT_GT(n, 0);
    target[n] = '\0';
    ASSERT_STR_EQ(target, want);
}

TEST(server_daemonize_pid_file)
{
    dm = srv_shared(sizeof(*dm));
    snprintf(dm->pid_file, sizeof(dm->pid_file), "%s/d.pid", swoop_test_tmpdir());
    snprintf(dm->log_file, sizeof(dm->log_file), "%s/d.log", swoop_test_tmpdir());
    int fd0 = swoop_test_fd_count();
    int rfd;
    pid_t starter = swoop_test_fork(dm_child, NULL, &rfd);
    char line[64];
    int port = 0;
    ASSERT_GT(swoop_test_read_line(rfd, line, sizeof(line), 5000), 0);
    close(rfd);
    ASSERT_EQ(sscanf(line, "port %d", &port), 1);

    /* The starting process exits (status 0) inside swoop_server_start: it never returns there. */
    swoop_test_wait_ok(starter, 5000);

    pid_t d = 0;
    WAIT_UNTIL((d = read_pid_file(dm->pid_file)) > 0 && swoop_test_pid_alive(d), 5000);
    ASSERT_NE(d, starter);
    /*
     * Re-parented, not to the test nor the starter: to the runner, our parent,
     * which is a child subreaper (it reaps the daemon once it exits). The pid
     * file may appear before the intermediate child finished its _exit.
     */
    pid_t ppid = 0;
    WAIT_UNTIL((ppid = proc_ppid(d)) == getppid(), 3000);
    ASSERT_NE(ppid, getpid());
    ASSERT_NE(ppid, starter);
    /* setsid in the first child, then a second fork: a new session it does not lead. */
    pid_t sid = getsid(d);
    ASSERT_GT(sid, 0);
    ASSERT_NE(sid, getsid(0));
    ASSERT_NE(sid, d);
    /* stdin from /dev/null, stdout and stderr to log_file. */
    assert_fd_target(d, 0, "/dev/null");
    assert_fd_target(d, 1, dm->log_file);
    assert_fd_target(d, 2, dm->log_file);

    srv_wait_ready(d, 1);
    swoop_server_stats_t st;
    ASSERT_OK(swoop_server_stats_by_pid(d, &st));
    int c = cli_connect(port);
    char buf[8];
    cli_write(c, "daemon\n", 7);
    ASSERT_UEQ(cli_read_n(c, buf, 7, 3000), 7);
    ASSERT_MEM_EQ(buf, "daemon\n", 7);
    close(c);

    ASSERT_EQ(kill(d, SIGTERM), 0);
    WAIT_UNTIL(!swoop_test_pid_alive(d), 5000);
    WAIT_UNTIL(!swoop_test_pid_alive(st.manager_pid), 3000);
    WAIT_UNTIL(!swoop_test_pid_alive(st.workers[0].pid), 3000);
    WAIT_UNTIL(!file_exists(dm->pid_file), 3000);
    /* swoop_server_start returned 0 in the daemon, and only there. */
    ASSERT_EQ(atomic_load(&dm->returned_pid), d);
    ASSERT_EQ(atomic_load(&dm->rc), 0);
    ASSERT(log_has(dm->log_file, SWOOP_ROLE_MASTER, d, "server stopped"));
    swoop_test_assert_log_clean(dm->log_file);
    ASSERT_EQ(swoop_test_fd_count(), fd0);
    printf("# daemon %d (parent %d, session %d; test %d, session %d) served and stopped\n", (int)d,
           (int)ppid, (int)sid, (int)getpid(), (int)getsid(0));
    munmap(dm, sizeof(*dm));
}
