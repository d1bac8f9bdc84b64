/*
 * Task workers through real servers, PROCESS and BASE: payloads of 0, 1,
 * 8,151, 8,152, 8,160 (the last inline size), 8,161 (the first through the
 * spill file), 8,180, 64 KiB (its block size), 64 KiB + 1, 1 MiB and 16 MiB
 * (files of their own; swoop_server_task_path tells which way each came)
 * reach on_task intact, and results of the same sizes reach on_finish intact in the worker that
 * posted each task (its ids are kept in that process only); posted to any idle task worker and to
 * each one by id. A task posted inside a task worker fails with SWOOP_ESTATE. After the stop,
 * task_tmpdir holds no swoop-task file and no task worker process is left.
 *
 * Every test runs with task_ipc_mode 1 (socketpairs; the names without a
 * suffix), 2 (_mq2: one SysV queue, tasks addressed) and 3 (_mq3: the task
 * workers compete; where a test needs a destination, mode 3 uses one task
 * worker or finds the task worker by its pid). In modes 2 and 3 the
 * server's private queue is gone after the stop.
 */
/* TEST_LABELS: tsan */
#include <swoop/alloc.h>
#include <swoop/timer.h>

#include "task_common.h"

#define TASK_WORKERS 2
#define MAX_TASKS    64

static const size_t task_sizes[] = {0,    1,     8151,  8152,    8160,    8161,
                                    8180, 65536, 65537, 1 << 20, 16 << 20};
#define NSIZES (sizeof(task_sizes) / sizeof(task_sizes[0]))

typedef struct tshare_s {
    _Atomic int task_pids[TASK_WORKERS];
    _Atomic int task_ok, task_bad, finish_ok, finish_bad, nested_rc, id_clash, task_starts;
    _Atomic int path_bad, slow_done;
    char tmpdir[512];
} tshare_t;

static tshare_t *sh;

/* task_ipc_mode of the server the current test starts (set before the fork). */
static int ipc_mode = 1;

/* What every setup sets: the tmpdir and task_ipc_mode; `num` task workers. */
static void task_settings(swoop_server_t *srv, int num)
{
    swoop_server_settings_t *s = swoop_server_settings(srv);
    s->task_worker_num = num;
    s->task_ipc_mode = ipc_mode;
    ASSERT_OK(swoop_server_set(srv, "task_tmpdir", sh->tmpdir));
}

/* Start of a test: shared state, a fresh task_tmpdir, the queues before the server. */
static void task_begin(int ipc)
{
    ipc_mode = ipc;
    sh = srv_shared(sizeof(*sh));
    snprintf(sh->tmpdir, sizeof(sh->tmpdir), "%s", task_env_begin());
}

/* While the server runs (after a task): its queue exists in modes 2 and 3 only. */
static void task_check_queue(srv_handle_t *h)
{
    ASSERT_EQ(task_env_queues(h), ipc_mode == 1 ? 0 : 1);
}

static const char *mode_name(swoop_mode_t mode)
{
    return mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS";
}

/* Per event worker process: what it posted and for whom. */
static int64_t posted[MAX_TASKS];
static int nposted, nfinished;
static swoop_conn_id_t client;

static int size_known(size_t len)
{
    for (size_t i = 0; i < NSIZES; i++) {
        if (task_sizes[i] == len)
            return 1;
    }
    return 0;
}

static void on_worker_start(swoop_server_t *srv, int id)
{
    int is_task = swoop_server_is_task_worker(srv);
    ASSERT_EQ(is_task, id >= 2);
    ASSERT_EQ(swoop_server_worker_id(srv), id);
    if (is_task)
        atomic_store(&sh->task_pids[id - 2], getpid());
    nposted = nfinished = 0;
}

/*
 * How a payload of `len` bytes must have come: inline up to 8,160 bytes, up
 * to 64 KiB in a block of the spill file, larger in a file of its own.
 */
static int path_ok(const char *path, size_t len)
{
    if (len <= SWOOP_TASK_INLINE_MAX)
        return path == NULL;
    if (path == NULL || strstr(path, "/swoop-task.") == NULL)
        return 0;
    return (strstr(path, ".spill.") != NULL) == (len <= 65536);
}

static void on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data, size_t len)
{
    int ok = swoop_server_is_task_worker(srv) && src >= 0 && src < 2 && task_id > 0 &&
             size_known(len) && check(data, len, 1);
    atomic_fetch_add(ok ? &sh->task_ok : &sh->task_bad, 1);
    if (!path_ok(swoop_server_task_path(srv), len))
        atomic_fetch_add(&sh->path_bad, 1);
    atomic_store(&sh->nested_rc, (int)swoop_server_task(srv, "x", 1, -1));
    /* Connection calls and messages are the event workers' (an error here, not a crash). */
    ASSERT_EQ(swoop_server_send(srv, 1, "x", 1), SWOOP_ESTATE);
    ASSERT_EQ(swoop_server_close(srv, 1, 0), SWOOP_ESTATE);
    ASSERT_EQ(swoop_server_send_message(srv, 0, "x", 1), SWOOP_ESTATE);
    uint8_t *out = len ? malloc(len) : NULL;
    fill(out, len, 2);
    ASSERT_OK(swoop_server_task_finish(srv, out, len));
    /* One result per task. */
    ASSERT_EQ(swoop_server_task_finish(srv, out, len), SWOOP_ESTATE);
    free(out);
}

static void on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    int mine = 0;
    for (int i = 0; i < nposted; i++)
        mine |= posted[i] == task_id;
    int ok = mine && !swoop_server_is_task_worker(srv) && size_known(len) && check(data, len, 2);
    atomic_fetch_add(ok ? &sh->finish_ok : &sh->finish_bad, 1);
    if (++nfinished == nposted && client) {
        char line[32];
        int n = snprintf(line, sizeof(line), "ok=%03d bad=%03d\n", atomic_load(&sh->finish_ok),
                         atomic_load(&sh->finish_bad));
        ASSERT_OK(swoop_server_send(srv, client, line, (size_t)n));
    }
}

static void on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len)
{
    client = conn;
    size_t max = task_sizes[NSIZES - 1];
    uint8_t *buf = malloc(max);
    for (int round = 0; round < 1 + TASK_WORKERS; round++) {
        for (size_t i = 0; i < NSIZES; i++) {
            size_t n = task_sizes[i];
            fill(buf, n, 1);
            int dst = round == 0 ? -1 : round - 1;
            int64_t id = swoop_server_task(srv, buf, n, dst);
            ASSERT_GT(id, 0);
            for (int k = 0; k < nposted; k++)
                if (posted[k] == id)
                    atomic_fetch_add(&sh->id_clash, 1);
            ASSERT_LT(nposted, MAX_TASKS);
            posted[nposted++] = id;
        }
    }
    free(buf);
    /* Bad arguments. */
    ASSERT_EQ(swoop_server_task(srv, "x", 1, TASK_WORKERS), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_task(srv, "x", 1, -2), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_task_finish(srv, "x", 1), SWOOP_ESTATE);
}

static void setup_task(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_worker_start = on_worker_start,
                                                            .on_receive = on_receive,
                                                            .on_task = on_task,
                                                            .on_finish = on_finish}));
    task_settings(srv, 2);
}

static void task_run(swoop_mode_t mode, int ipc)
{
    task_begin(ipc);
    srv_handle_t h = srv_start(mode, setup_task, NULL, 2);
    int fd = cli_connect(h.port);
    uint64_t t0 = swoop_test_now_ms();
    cli_write(fd, "go", 2);
    char line[16] = {0};
    ASSERT_EQ(cli_read_n(fd, line, 15, 20000), 15);
    uint64_t ms = swoop_test_now_ms() - t0;
    int total = (int)NSIZES * (1 + TASK_WORKERS);
    char want[32];
    snprintf(want, sizeof(want), "ok=%03d bad=000\n", total);
    ASSERT_STR_EQ(line, want);
    ASSERT_EQ(atomic_load(&sh->task_ok), total);
    ASSERT_EQ(atomic_load(&sh->task_bad), 0);
    ASSERT_EQ(atomic_load(&sh->nested_rc), SWOOP_ESTATE);
    ASSERT_EQ(atomic_load(&sh->id_clash), 0);
    ASSERT_EQ(atomic_load(&sh->path_bad), 0);
    printf("# %s, task_ipc_mode %d: %d tasks (0 B .. 16 MiB) and their results in %llu ms\n",
           mode_name(mode), ipc, total, (unsigned long long)ms);
    task_check_queue(&h);
    close(fd);
    srv_stop(&h, 10000);
    for (int t = 0; t < TASK_WORKERS; t++) {
        int pid = atomic_load(&sh->task_pids[t]);
        ASSERT_GT(pid, 0);
        WAIT_UNTIL(!swoop_test_pid_alive(pid), 2000);
    }
    task_env_end();
}

TEST(server_task_process)
{
    task_run(SWOOP_MODE_PROCESS, 1);
}

TEST(server_task_base)
{
    task_run(SWOOP_MODE_BASE, 1);
}

TEST(server_task_process_mq2)
{
    task_run(SWOOP_MODE_PROCESS, 2);
}

TEST(server_task_process_mq3)
{
    task_run(SWOOP_MODE_PROCESS, 3);
}

TEST(server_task_base_mq3)
{
    task_run(SWOOP_MODE_BASE, 3);
}

/*
 * Order: one slow task, then 2,048 tasks to the same task worker (every
 * 256th through a temp file): they queue (in the socket, then in the
 * worker's user-space queue) and reach on_task, and their results
 * on_finish, in the order they were posted.
 */
#define ORDER_TASKS 2048

typedef struct order_s {
    int32_t seq;
    char pad[];
} order_t;

static int next_in_task, next_in_finish;

static void order_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
    int32_t seq;
    ASSERT_UGE(len, sizeof(seq));
    memcpy(&seq, data, sizeof(seq));
    if (seq == 0)
        swoop_test_sleep_ms(300); /* the slow task the others queue behind */
    if (seq != next_in_task++)
        atomic_fetch_add(&sh->task_bad, 1);
    else
        atomic_fetch_add(&sh->task_ok, 1);
    ASSERT_OK(swoop_server_task_finish(srv, &seq, sizeof(seq)));
}

static void order_on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    int32_t seq;
    ASSERT_EQ(len, sizeof(seq));
    memcpy(&seq, data, sizeof(seq));
    atomic_fetch_add(seq == next_in_finish++ ? &sh->finish_ok : &sh->finish_bad, 1);
    if (next_in_finish == ORDER_TASKS + 1) {
        char line[32];
        int n = snprintf(line, sizeof(line), "ok=%04d bad=%04d\n", atomic_load(&sh->finish_ok),
                         atomic_load(&sh->finish_bad));
        ASSERT_OK(swoop_server_send(srv, client, line, (size_t)n));
    }
}

static void order_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                             const void *data, size_t len)
{
    client = conn;
    char buf[10000] = {0};
    for (int32_t i = 0; i <= ORDER_TASKS; i++) {
        memcpy(buf, &i, sizeof(i));
        size_t n = i % 256 == 255 ? sizeof(buf) : 64;
        ASSERT_GT(swoop_server_task(srv, buf, n, 0), 0);
    }
}

static void setup_order(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = order_on_receive,
                                                            .on_task = order_on_task,
                                                            .on_finish = order_on_finish}));
    /* Mode 3 ignores the destination: with one task worker the order holds. */
    task_settings(srv, ipc_mode == 3 ? 1 : 2);
}

static void order_run(swoop_mode_t mode, int ipc)
{
    task_begin(ipc);
    srv_handle_t h = srv_start(mode, setup_order, NULL, 2);
    int fd = cli_connect(h.port);
    uint64_t t0 = swoop_test_now_ms();
    cli_write(fd, "go", 2);
    char line[18] = {0};
    ASSERT_EQ(cli_read_n(fd, line, 17, 20000), 17);
    ASSERT_STR_EQ(line, "ok=2049 bad=0000\n");
    ASSERT_EQ(atomic_load(&sh->task_ok), ORDER_TASKS + 1);
    ASSERT_EQ(atomic_load(&sh->task_bad), 0);
    printf("# %s, task_ipc_mode %d: 2,049 tasks to one task worker behind a 300 ms task, in "
           "order, in %llu ms\n",
           mode_name(mode), ipc, (unsigned long long)(swoop_test_now_ms() - t0));
    task_check_queue(&h);
    close(fd);
    srv_stop(&h, 10000);
    task_env_end();
}

TEST(server_task_order_process)
{
    order_run(SWOOP_MODE_PROCESS, 1);
}

TEST(server_task_order_base)
{
    order_run(SWOOP_MODE_BASE, 1);
}

TEST(server_task_order_process_mq2)
{
    order_run(SWOOP_MODE_PROCESS, 2);
}

TEST(server_task_order_process_mq3)
{
    order_run(SWOOP_MODE_PROCESS, 3);
}

/*
 * Leftovers: task worker 0 is stuck in on_task (SIGTERM waits until the
 * task returns, so the manager SIGKILLs it after max_wait_time) while three
 * 100 KB tasks wait for it in temp files: the shutdown removes them.
 */
static void stuck_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
    atomic_fetch_add(&sh->task_ok, 1);
    for (;;)
        pause();
}

static void stuck_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                             const void *data, size_t len)
{
    static char big[100000];
    ASSERT_GT(swoop_server_task(srv, "stuck", 5, 0), 0);
    for (int i = 0; i < 3; i++)
        ASSERT_GT(swoop_server_task(srv, big, sizeof(big), 0), 0);
    ASSERT_OK(swoop_server_send(srv, conn, "posted\n", 7));
}

static void setup_stuck(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(
        srv, &(swoop_server_events_t){.on_receive = stuck_on_receive, .on_task = stuck_on_task}));
    task_settings(srv, 1);
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "1"));
}

static void stuck_run(swoop_mode_t mode, int ipc)
{
    task_begin(ipc);
    srv_handle_t h = srv_start(mode, setup_stuck, NULL, 2);
    int fd = cli_connect(h.port);
    cli_write(fd, "go", 2);
    char line[8] = {0};
    ASSERT_EQ(cli_read_n(fd, line, 7, 10000), 7);
    ASSERT_STR_EQ(line, "posted\n");
    WAIT_UNTIL(atomic_load(&sh->task_ok) == 1, 5000);
    ASSERT_EQ(task_files(sh->tmpdir), 3);
    task_check_queue(&h);
    close(fd);
    srv_stop(&h, 10000);
    task_env_end();
}

TEST(server_task_sweep_process)
{
    stuck_run(SWOOP_MODE_PROCESS, 1);
}

TEST(server_task_sweep_base)
{
    stuck_run(SWOOP_MODE_BASE, 1);
}

TEST(server_task_sweep_process_mq2)
{
    stuck_run(SWOOP_MODE_PROCESS, 2);
}

TEST(server_task_sweep_process_mq3)
{
    stuck_run(SWOOP_MODE_PROCESS, 3);
}

/*
 * Life cycle, one command at a time from a client: a task posted from
 * on_receive, from a timer and from on_pipe_message (in the other worker)
 * gets its result in the worker that posted it (only that process knows
 * the task id -> connection map); a busy task worker killed with SIGKILL
 * gives on_task_error (SWOOP_ECANCELED) in the posting worker, is replaced (on_worker_start again)
 * and the next task to it is answered; SIGUSR2 replaces both task workers and no event worker.
 */
typedef struct waiter_s {
    int64_t id;
    swoop_conn_id_t conn;
} waiter_t;

static waiter_t waiters[16];
static int nwaiters;

static void post_ping(swoop_server_t *srv, swoop_conn_id_t conn, int dst)
{
    int64_t id = swoop_server_task(srv, "ping", 4, dst);
    ASSERT_GT(id, 0);
    ASSERT_LT(nwaiters, 16);
    waiters[nwaiters++] = (waiter_t){id, conn};
}

static void life_on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    ASSERT(len == 4 && memcmp(data, "pong", 4) == 0);
    for (int i = 0; i < nwaiters; i++) {
        if (waiters[i].id == task_id) {
            ASSERT_OK(swoop_server_send(srv, waiters[i].conn, "pong\n", 5));
            waiters[i] = waiters[--nwaiters];
            return;
        }
    }
    FAIL("on_finish of task %lld in worker %d, which did not post it", (long long)task_id,
         swoop_server_worker_id(srv));
}

static void life_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                         size_t len)
{
    if (len == 5 && memcmp(data, "block", 5) == 0) {
        atomic_store(&sh->nested_rc, getpid());
        for (;;)
            pause();
    }
    ASSERT_OK(swoop_server_task_finish(srv, "pong", 4));
}

static void life_on_task_error(swoop_server_t *srv, int64_t task_id, int error)
{
    ASSERT_EQ(error, SWOOP_ECANCELED);
    for (int i = 0; i < nwaiters; i++) {
        if (waiters[i].id == task_id) {
            ASSERT_OK(swoop_server_send(srv, waiters[i].conn, "err\n", 4));
            waiters[i] = waiters[--nwaiters];
            return;
        }
    }
    FAIL("on_task_error of task %lld in worker %d, which did not post it", (long long)task_id,
         swoop_server_worker_id(srv));
}

static swoop_conn_id_t timer_conn;

static void life_timer(int64_t id, void *arg)
{
    post_ping(arg, timer_conn, -1);
}

static void life_on_pipe(swoop_server_t *srv, int src, const void *data, size_t len)
{
    swoop_conn_id_t conn;
    ASSERT_EQ(len, sizeof(conn));
    memcpy(&conn, data, sizeof(conn));
    post_ping(srv, conn, -1);
}

static void life_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                            const void *data, size_t len)
{
    if (len == 4 && memcmp(data, "ping", 4) == 0) {
        post_ping(srv, conn, 0);
    } else if (len == 5 && memcmp(data, "timer", 5) == 0) {
        timer_conn = conn;
        ASSERT_GT(swoop_timer_after(1, life_timer, srv), 0);
    } else if (len == 4 && memcmp(data, "pipe", 4) == 0) {
        ASSERT_OK(
            swoop_server_send_message(srv, 1 - swoop_server_worker_id(srv), &conn, sizeof(conn)));
    } else if (len == 5 && memcmp(data, "block", 5) == 0) {
        int64_t id = swoop_server_task(srv, "block", 5, 0);
        ASSERT_GT(id, 0);
        waiters[nwaiters++] = (waiter_t){id, conn};
        ASSERT_OK(swoop_server_send(srv, conn, "ok\n", 3));
    } else {
        FAIL("unknown command");
    }
}

static void setup_life(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_worker_start = on_worker_start,
                                                            .on_receive = life_on_receive,
                                                            .on_task = life_on_task,
                                                            .on_finish = life_on_finish,
                                                            .on_task_error = life_on_task_error,
                                                            .on_pipe_message = life_on_pipe}));
    task_settings(srv, 2);
}

static void expect(int fd, const char *cmd, const char *reply)
{
    cli_write(fd, cmd, strlen(cmd));
    char got[16] = {0};
    size_t n = strlen(reply);
    ASSERT_EQ(cli_read_n(fd, got, n, 5000), n);
    ASSERT_STR_EQ(got, reply);
}

static void life_run(swoop_mode_t mode, int ipc)
{
    task_begin(ipc);
    srv_handle_t h = srv_start(mode, setup_life, NULL, 2);
    WAIT_UNTIL(atomic_load(&sh->task_pids[0]) > 0 && atomic_load(&sh->task_pids[1]) > 0, 5000);
    int fd = cli_connect(h.port);
    expect(fd, "ping", "pong\n");
    expect(fd, "timer", "pong\n");
    expect(fd, "pipe", "pong\n");

    /*
     * SIGKILL of a busy task worker: replaced, and the next task to it is
     * answered. "block" goes to task worker 0, in mode 3 to whichever takes
     * it: on_task records its pid, which names the slot.
     */
    expect(fd, "block", "ok\n");
    WAIT_UNTIL(atomic_load(&sh->nested_rc) > 0, 5000);
    int old = atomic_load(&sh->nested_rc), slot = -1;
    for (int t = 0; t < TASK_WORKERS; t++)
        slot = atomic_load(&sh->task_pids[t]) == old ? t : slot;
    ASSERT_GE(slot, 0);
    if (ipc != 3)
        ASSERT_EQ(slot, 0);
    ASSERT_EQ(kill(old, SIGKILL), 0);
    char err[5] = {0};
    ASSERT_EQ(cli_read_n(fd, err, 4, 5000), 4);
    ASSERT_STR_EQ(err, "err\n"); /* on_task_error in the posting worker */
    WAIT_UNTIL(atomic_load(&sh->task_pids[slot]) != old, 5000);
    expect(fd, "ping", "pong\n");

    /* SIGUSR2: both task workers replaced, the event workers kept. */
    swoop_server_stats_t before, after;
    srv_stats(&h, &before);
    int t0 = atomic_load(&sh->task_pids[0]), t1 = atomic_load(&sh->task_pids[1]);
    ASSERT_EQ(kill(before.manager_pid, SIGUSR2), 0);
    WAIT_UNTIL(atomic_load(&sh->task_pids[0]) != t0 && atomic_load(&sh->task_pids[1]) != t1, 5000);
    expect(fd, "ping", "pong\n");
    srv_stats(&h, &after);
    for (int w = 0; w < 2; w++)
        ASSERT_EQ(after.workers[w].pid, before.workers[w].pid);
    task_check_queue(&h);
    close(fd);
    srv_stop(&h, 10000);
    for (int t = 0; t < TASK_WORKERS; t++)
        WAIT_UNTIL(!swoop_test_pid_alive(atomic_load(&sh->task_pids[t])), 2000);
    task_env_end();
}

TEST(server_task_life_process)
{
    life_run(SWOOP_MODE_PROCESS, 1);
}

TEST(server_task_life_base)
{
    life_run(SWOOP_MODE_BASE, 1);
}

TEST(server_task_life_process_mq2)
{
    life_run(SWOOP_MODE_PROCESS, 2);
}

TEST(server_task_life_process_mq3)
{
    life_run(SWOOP_MODE_PROCESS, 3);
}

/*
 * task_max_request = 200 with 4,000 tasks over 2 task workers: every task
 * runs once and is answered, no process runs more than 200, and the task
 * workers were replaced 19 or 20 times (21 or 22 starts).
 */
#define MR_TASKS 4000
#define MR_LIMIT 200

static int ran_here, mr_finished;

static void mr_on_worker_start(swoop_server_t *srv, int id)
{
    if (swoop_server_is_task_worker(srv))
        atomic_fetch_add(&sh->task_starts, 1);
}

static void mr_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data, size_t len)
{
    atomic_fetch_add(++ran_here > MR_LIMIT ? &sh->task_bad : &sh->task_ok, 1);
    ASSERT_OK(swoop_server_task_finish(srv, &task_id, sizeof(task_id)));
}

static void mr_on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    int64_t echoed;
    ASSERT_EQ(len, sizeof(echoed));
    memcpy(&echoed, data, sizeof(echoed));
    atomic_fetch_add(echoed == task_id ? &sh->finish_ok : &sh->finish_bad, 1);
    if (++mr_finished == MR_TASKS)
        ASSERT_OK(swoop_server_send(srv, client, "done\n", 5));
}

static void mr_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                          const void *data, size_t len)
{
    client = conn;
    for (int i = 0; i < MR_TASKS; i++)
        ASSERT_GT(swoop_server_task(srv, "0123456789abcdef", 16, -1), 0);
}

static void setup_mr(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_worker_start = mr_on_worker_start,
                                                            .on_receive = mr_on_receive,
                                                            .on_task = mr_on_task,
                                                            .on_finish = mr_on_finish}));
    task_settings(srv, 2);
    ASSERT_OK(swoop_server_set(srv, "task_max_request", "200"));
}

static void mr_run(swoop_mode_t mode, int ipc)
{
    task_begin(ipc);
    srv_handle_t h = srv_start(mode, setup_mr, NULL, 2);
    int fd = cli_connect(h.port);
    uint64_t t0 = swoop_test_now_ms();
    cli_write(fd, "go", 2);
    char line[8] = {0};
    ASSERT_EQ(cli_read_n(fd, line, 5, 20000), 5);
    ASSERT_STR_EQ(line, "done\n");
    ASSERT_EQ(atomic_load(&sh->task_ok), MR_TASKS);
    ASSERT_EQ(atomic_load(&sh->task_bad), 0);
    ASSERT_EQ(atomic_load(&sh->finish_ok), MR_TASKS);
    WAIT_UNTIL(atomic_load(&sh->task_starts) >= 21, 5000);
    printf("# %s, task_ipc_mode %d: %d tasks with task_max_request %d in %llu ms, %d task "
           "worker starts\n",
           mode_name(mode), ipc, MR_TASKS, MR_LIMIT, (unsigned long long)(swoop_test_now_ms() - t0),
           atomic_load(&sh->task_starts));
    task_check_queue(&h);
    close(fd);
    srv_stop(&h, 10000);
    ASSERT_LE(atomic_load(&sh->task_starts), 22);
    task_env_end();
}

TEST(server_task_max_request_process)
{
    mr_run(SWOOP_MODE_PROCESS, 1);
}

TEST(server_task_max_request_base)
{
    mr_run(SWOOP_MODE_BASE, 1);
}

TEST(server_task_max_request_process_mq2)
{
    mr_run(SWOOP_MODE_PROCESS, 2);
}

TEST(server_task_max_request_process_mq3)
{
    mr_run(SWOOP_MODE_PROCESS, 3);
}

/*
 * taskwait: a 100-byte and a 1 MiB task (temp files both ways) come back
 * intact; a task that outlives its 50 ms timeout gives SWOOP_ETIMEDOUT, and
 * the next taskwait to the same task worker gets its own result, never the
 * late 100 KB one (dropped, its temp file removed); on_finish never runs
 * for taskwait tasks; taskwait inside a task worker is SWOOP_ESTATE. In
 * mode 3 the next task runs in the other task worker: the late result
 * waits until a later taskwait ("drain") drops it, which every mode checks.
 */
static void wait_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                         size_t len)
{
    void *r;
    size_t rl;
    atomic_store(&sh->nested_rc, swoop_server_taskwait(srv, "x", 1, 100, -1, &r, &rl));
    if (len == 4 && memcmp(data, "slow", 4) == 0) {
        static char late[100000];
        swoop_test_sleep_ms(300 * swoop_test_multiplier());
        ASSERT_OK(swoop_server_task_finish(srv, late, sizeof(late)));
        atomic_store(&sh->slow_done, 1);
        return;
    }
    uint8_t *out = malloc(len + 1);
    out[0] = 'R';
    memcpy(out + 1, data, len);
    ASSERT_OK(swoop_server_task_finish(srv, out, len + 1));
    free(out);
}

static void wait_on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    atomic_fetch_add(&sh->finish_bad, 1);
}

static void wait_one(swoop_server_t *srv, size_t len, int dst)
{
    uint8_t *in = malloc(len);
    fill(in, len, 1);
    void *r = NULL;
    size_t rl = 0;
    ASSERT_OK(swoop_server_taskwait(srv, in, len, 10000, dst, &r, &rl));
    ASSERT_EQ(rl, len + 1);
    ASSERT_EQ(((uint8_t *)r)[0], 'R');
    ASSERT_MEM_EQ((uint8_t *)r + 1, in, len);
    swoop_free(r);
    free(in);
}

/* "drain": a taskwait after the late result arrived, which drops it. 1 if it was that. */
static int wait_drain(swoop_server_t *srv, swoop_conn_id_t conn, const void *data, size_t len)
{
    if (len != 5 || memcmp(data, "drain", 5) != 0)
        return 0;
    wait_one(srv, 8, -1);
    ASSERT_OK(swoop_server_send(srv, conn, "ok\n", 3));
    return 1;
}

static void wait_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                            const void *data, size_t len)
{
    if (wait_drain(srv, conn, data, len))
        return;
    wait_one(srv, 100, -1);
    wait_one(srv, 1 << 20, -1);
    void *r = NULL;
    size_t rl = 0;
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(swoop_server_taskwait(srv, "slow", 4, 50, 0, &r, &rl), SWOOP_ETIMEDOUT);
    ASSERT_NULL(r);
    ASSERT_UGE(swoop_test_now_ms() - t0, 50);
    wait_one(srv, 8, 0); /* queued behind "slow": its late result arrives first */
    ASSERT_EQ(swoop_server_taskwait(srv, "x", 1, 0, -1, &r, &rl), SWOOP_EINVAL);
    ASSERT_OK(swoop_server_send(srv, conn, "ok\n", 3));
}

static void setup_wait(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = wait_on_receive,
                                                            .on_task = wait_on_task,
                                                            .on_finish = wait_on_finish}));
    task_settings(srv, 2);
}

/* taskwait and taskwait_multi: "go" runs the checks in the worker, "drain" drops the late result.
 */
static void wait_run(swoop_mode_t mode, int ipc, srv_setup_fn setup)
{
    task_begin(ipc);
    srv_handle_t h = srv_start(mode, setup, NULL, 2);
    int fd = cli_connect(h.port);
    expect(fd, "go", "ok\n");
    WAIT_UNTIL(atomic_load(&sh->slow_done), 5000);
    expect(fd, "drain", "ok\n");
    ASSERT_EQ(atomic_load(&sh->nested_rc), SWOOP_ESTATE);
    ASSERT_EQ(atomic_load(&sh->finish_bad), 0);
    ASSERT_EQ(task_files(sh->tmpdir), 0);
    task_check_queue(&h);
    close(fd);
    srv_stop(&h, 10000);
    task_env_end();
}

TEST(server_task_wait_process)
{
    wait_run(SWOOP_MODE_PROCESS, 1, setup_wait);
}

TEST(server_task_wait_base)
{
    wait_run(SWOOP_MODE_BASE, 1, setup_wait);
}

TEST(server_task_wait_process_mq2)
{
    wait_run(SWOOP_MODE_PROCESS, 2, setup_wait);
}

TEST(server_task_wait_process_mq3)
{
    wait_run(SWOOP_MODE_PROCESS, 3, setup_wait);
}

/*
 * taskwait_multi: three tasks, the middle one ("slow", 300 ms, a 100 KB
 * result through a temp file) beyond the 150 ms timeout (both times the sanitizer multiplier): 2 is
 * returned, the two fast results sit in input order and the slow one is NULL/0. The next call (one
 * task queued behind "slow", so its late result arrives first, and a 20,000-byte task through a
 * temp file) gets exactly its own three results in order; no temp file is left. Bad arguments are
 * SWOOP_EINVAL, a call in a task worker SWOOP_ESTATE.
 */
static void multi_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
    const void *d[1] = {"x"};
    size_t l[1] = {1};
    void *r[1];
    size_t rl[1];
    wait_on_task(srv, task_id, src, data, len);
    atomic_store(&sh->nested_rc, swoop_server_taskwait_multi(srv, 1, d, l, NULL, 100, r, rl));
}

static void multi_check_one(void *r, size_t rl, const void *in, size_t len)
{
    ASSERT_NOT_NULL(r);
    ASSERT_EQ(rl, len + 1);
    ASSERT_EQ(((uint8_t *)r)[0], 'R');
    ASSERT_MEM_EQ((uint8_t *)r + 1, in, len);
    swoop_free(r);
}

static void multi_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                             const void *data, size_t len)
{
    if (wait_drain(srv, conn, data, len))
        return;
    const void *d1[3] = {"fast-a", "slow", "fast-c"};
    size_t l1[3] = {6, 4, 6};
    int dst1[3] = {0, 1, 0};
    void *r[3] = {(void *)1, (void *)1, (void *)1};
    size_t rl[3] = {7, 7, 7};
    /* The fast two must be back within the timeout: scaled for sanitizers, as "slow" is. */
    int64_t limit = 150 * (int64_t)swoop_test_multiplier();
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(swoop_server_taskwait_multi(srv, 3, d1, l1, dst1, limit, r, rl), 2);
    ASSERT_UGE(swoop_test_now_ms() - t0, (uint64_t)limit);
    multi_check_one(r[0], rl[0], "fast-a", 6);
    ASSERT_NULL(r[1]);
    ASSERT_EQ(rl[1], 0);
    multi_check_one(r[2], rl[2], "fast-c", 6);

    static uint8_t big[20000];
    fill(big, sizeof(big), 1);
    const void *d2[3] = {"d", big, "e"};
    size_t l2[3] = {1, sizeof(big), 1};
    int dst2[3] = {1, -1, 0}; /* "d" waits behind "slow" */
    ASSERT_EQ(swoop_server_taskwait_multi(srv, 3, d2, l2, dst2, 10000, r, rl), 3);
    multi_check_one(r[0], rl[0], "d", 1);
    multi_check_one(r[1], rl[1], big, sizeof(big));
    multi_check_one(r[2], rl[2], "e", 1);

    ASSERT_EQ(swoop_server_taskwait_multi(srv, 0, d2, l2, NULL, 100, r, rl), SWOOP_EINVAL);
    ASSERT_EQ(
        swoop_server_taskwait_multi(srv, SWOOP_TASKWAIT_MULTI_MAX + 1, d2, l2, NULL, 100, r, rl),
        SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_taskwait_multi(srv, 3, d2, l2, NULL, 0, r, rl), SWOOP_EINVAL);
    int bad_dst[3] = {0, 2, 0};
    ASSERT_EQ(swoop_server_taskwait_multi(srv, 3, d2, l2, bad_dst, 100, r, rl), SWOOP_EINVAL);
    ASSERT_OK(swoop_server_send(srv, conn, "ok\n", 3));
}

static void setup_multi(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = multi_on_receive,
                                                            .on_task = multi_on_task,
                                                            .on_finish = wait_on_finish}));
    task_settings(srv, 2);
}


TEST(server_task_wait_multi_process)
{
    wait_run(SWOOP_MODE_PROCESS, 1, setup_multi);
}

TEST(server_task_wait_multi_base)
{
    wait_run(SWOOP_MODE_BASE, 1, setup_multi);
}

TEST(server_task_wait_multi_process_mq2)
{
    wait_run(SWOOP_MODE_PROCESS, 2, setup_multi);
}

TEST(server_task_wait_multi_process_mq3)
{
    wait_run(SWOOP_MODE_PROCESS, 3, setup_multi);
}
