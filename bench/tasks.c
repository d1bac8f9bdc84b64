/*
 * Task throughput benchmark: tasks per second through swoop_server_task ->
 * on_task -> swoop_server_task_finish -> on_finish, for 100-byte and
 * 16 KiB payloads (the task worker sends the payload back, so 16 KiB goes
 * through a temporary file both ways: SWOOP_TASK_INLINE_MAX is 8,160
 * bytes), in each task_ipc_mode, and once more in mode 1 without the spill
 * file (task_spill_size 0: a file per payload, as Swoole does). For each
 * row a PROCESS server (1 event worker, 2 task workers) starts in a child;
 * this process connects and sends "run SIZE MS N": the event worker posts
 * N tasks, posts one more from each on_finish until MS have passed, and
 * answers "done COUNT SECONDS" once the last one is back. The two sizes
 * alternate (100 B, 16 KiB, 100 B, ...) so a noisy moment hits both; each
 * figure is the median of its rounds. The figure to read is the ratio
 * 16 KiB / 100 B of each row (goal >= 0.5; Swoole's task_worker with its
 * temp files manages 0.19).
 *
 *   tasks [-d seconds] [-n rounds] [-c outstanding] [-t task_tmpdir]
 *   defaults: 1 s per figure, 3 rounds, 64 outstanding tasks, the server's default task_tmpdir
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swoop/error.h>
#include <swoop/log.h>
#include <swoop/server.h>

#define MAXROUNDS 21

static int seconds = 1, nrounds = 3, outstanding = 64;
static const char *tmpdir; /* NULL: the server's default (/dev/shm when writable) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the server (event worker 0 and the task workers) ---- */

static char *payload;
static size_t payload_len;
static int inflight;
static long done;
static double t_start, t_end;
static swoop_conn_id_t client;

static void post_one(swoop_server_t *srv)
{
    int64_t id = swoop_server_task(srv, payload, payload_len, -1);
    if (id < 0) {
        fprintf(stderr, "tasks: swoop_server_task: %s\n", swoop_strerror((int)id));
        _exit(1);
    }
    inflight++;
}

static void on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                       size_t len)
{
    char line[128];
    if (len >= sizeof(line))
        len = sizeof(line) - 1;
    memcpy(line, data, len);
    line[len] = '\0';
    unsigned long size, ms;
    int n;
    if (sscanf(line, "run %lu %lu %d", &size, &ms, &n) != 3 || size > (1u << 24) || n < 1) {
        swoop_server_send(srv, conn, "bad\n", 4);
        return;
    }
    free(payload);
    payload = malloc(size ? size : 1);
    memset(payload, 't', size);
    payload_len = size;
    client = conn;
    done = 0;
    t_start = now_s();
    t_end = t_start + (double)ms / 1000.0;
    for (int i = 0; i < n; i++)
        post_one(srv);
}

static void on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    if (len != payload_len) {
        fprintf(stderr, "tasks: a %zu-byte result for a %zu-byte task\n", len, payload_len);
        _exit(1);
    }
    inflight--;
    done++;
    double t = now_s();
    if (t < t_end) {
        post_one(srv);
    } else if (inflight == 0) {
        char out[64];
        int k = snprintf(out, sizeof(out), "done %ld %.6f\n", done, t - t_start);
        swoop_server_send(srv, client, out, (size_t)k);
    }
}

static void on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data, size_t len)
{
    swoop_server_task_finish(srv, data, len);
}

static pid_t start_server(int ipc_mode, int spill, int *port_out)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        swoop_log_set_level(SWOOP_LOG_ERROR); /* "no idle task worker" is the normal state here */
        swoop_server_t *srv;
        swoop_port_t *port;
        if (swoop_server_new(&srv, SWOOP_MODE_PROCESS) < 0 ||
            swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &port) < 0)
            _exit(1);
        swoop_server_set(srv, "worker_num", "1");
        swoop_server_set(srv, "reactor_num", "1");
        swoop_server_set(srv, "task_worker_num", "2");
        swoop_server_settings(srv)->task_ipc_mode = ipc_mode;
        if (!spill)
            swoop_server_settings(srv)->task_spill_size = 0;
        if (tmpdir != NULL && swoop_server_set(srv, "task_tmpdir", tmpdir) < 0)
            _exit(1);
        swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_receive,
                                                      .on_task = on_task,
                                                      .on_finish = on_finish});
        int num = swoop_port_number(port);
        if (write(p[1], &num, sizeof(num)) != sizeof(num))
            _exit(1);
        close(p[1]);
        int rc = swoop_server_start(srv);
        swoop_server_free(srv);
        _exit(rc == 0 ? 0 : 1);
    }
    close(p[1]);
    int port = 0;
    if (read(p[0], &port, sizeof(port)) != sizeof(port))
        port = -1;
    close(p[0]);
    for (int tries = 0; port > 0 && tries < 500; tries++) {
        swoop_server_stats_t st;
        if (swoop_server_stats_by_pid(pid, &st) == 0 && st.manager_pid > 0 &&
            st.workers[0].pid > 0) {
            usleep(200000); /* the task workers start beside it */
            *port_out = port;
            return pid;
        }
        usleep(10000);
    }
    fprintf(stderr, "tasks: the server did not start\n");
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return -1;
}

/* ---- the client ---- */

static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t k = recv(fd, buf + n, 1, 0);
        if (k <= 0)
            return -1;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    return (int)n;
}

/* One sample: tasks per second for `size`-byte payloads over `ms`. */
static double run(int fd, size_t size, int ms)
{
    char line[128];
    int k = snprintf(line, sizeof(line), "run %zu %d %d\n", size, ms, outstanding);
    if (send(fd, line, (size_t)k, MSG_NOSIGNAL) != k || read_line(fd, line, sizeof(line)) < 0)
        return -1;
    long count;
    double el;
    if (sscanf(line, "done %ld %lf", &count, &el) != 2 || el <= 0)
        return -1;
    return (double)count / el;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One row: the median tasks/s of 100 B and 16 KiB payloads; 0 when a run failed. */
static int measure(int ipc_mode, int spill, double med[2])
{
    int port = 0;
    pid_t pid = start_server(ipc_mode, spill, &port);
    if (pid < 0)
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    static const size_t sizes[2] = {100, 16384};
    double tps[2][MAXROUNDS];
    for (int i = 0; ok && i < 2; i++)
        ok = run(fd, sizes[i], 200) > 0; /* warm-up */
    for (int k = 0; ok && k < nrounds; k++) {
        for (int i = 0; ok && i < 2; i++) {
            tps[i][k] = run(fd, sizes[i], seconds * 1000);
            ok = tps[i][k] > 0;
        }
    }
    close(fd);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    for (int i = 0; ok && i < 2; i++)
        med[i] = median(tps[i], nrounds);
    return ok;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "d:n:c:t:")) != -1) {
        switch (opt) {
        case 'd':
            seconds = atoi(optarg);
            break;
        case 'n':
            nrounds = atoi(optarg);
            break;
        case 'c':
            outstanding = atoi(optarg);
            break;
        case 't':
            tmpdir = optarg;
            break;
        default:
            fprintf(stderr, "usage: tasks [-d seconds] [-n rounds] [-c outstanding] [-t dir]\n");
            return 2;
        }
    }
    if (seconds < 1 || seconds > 60 || nrounds < 1 || nrounds > MAXROUNDS || outstanding < 1 ||
        outstanding > 4096)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    printf(
        "tasks: PROCESS, 1 worker, 2 task workers, %d outstanding, median of %d round(s) of %d s "
        "per figure, task_tmpdir %s, %ld CPUs\n",
        outstanding, nrounds, seconds, tmpdir ? tmpdir : "(server default)",
        sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-34s %12s %12s %8s\n", "task_ipc_mode", "100 B/s", "16 KiB/s", "ratio");
    fflush(stdout);
    static const struct {
        int mode, spill;
        const char *name;
    } rows[] = {{1, 1, "1 socketpair"},
                {2, 1, "2 message queue, addressed"},
                {3, 1, "3 message queue, competing"},
                {1, 0, "1, no spill file (file per payload)"}};
    int failed = 0;
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        double med[2];
        if (!measure(rows[r].mode, rows[r].spill, med)) {
            fprintf(stderr, "tasks: a run in mode %d failed\n", rows[r].mode);
            failed = 1;
            continue;
        }
        printf("%-34s %12.0f %12.0f %8.2f%s\n", rows[r].name, med[0], med[1], med[1] / med[0],
               rows[r].spill ? "" : "  (reference)");
        fflush(stdout);
    }
    printf("goal: ratio >= 0.5 with the spill file, in every mode (Swoole: 0.19)\n");
    return failed;
}
