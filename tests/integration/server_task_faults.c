/*
 * Regression tests for the task fixes made after the review (PROCESS
 * servers, port 0, one task worker): two processes of one task worker id
 * during an async reload each report the task they die in (per-process
 * task records); a task worker that crashes after swoop_server_task_finish
 * neither re-runs nor reports its task (the record's finished flag); a
 * late taskwait result is dropped by the worker's loop, its file removed
 * and its spill block freed at once (the taskwait channel's io watcher);
 * an event worker that exits with tasks it could not send removes their
 * files (swoop__task_abandon); the start sweeps the files of servers that
 * died; and the manager removes the private queue when the master was
 * SIGKILLed. The test drives each server with one-byte commands and reads
 * what happened from shared memory or the server's log; every wait is
 * bounded. After each stop task_tmpdir holds no swoop-task file and no
 * private queue is left.
 */
/* TEST_LABELS: tsan */
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/wait.h>

#include <swoop/alloc.h>

#include "task_common.h"

typedef struct fshare_s {
    _Atomic int task_pid;   /* the task worker's current process */
    _Atomic int worker_pid; /* the event worker's current process */
    _Atomic int release;    /* lets a blocking task return */
    _Atomic int blocked_pid;
    _Atomic int runs, finished, markers, errors, bad, sent, posted;
    _Atomic int64_t id_a, id_c;
    _Atomic int err_a, err_c, err_other, code_a, code_c;
    _Atomic int die_pid; /* the process that ran the task that kills itself */
    _Atomic int waited, wait_rc;
    _Atomic int spilled, filed;
    char log[600];
} fshare_t;

static fshare_t *sh;

/* Reads a counter (a function, so that a failed assertion prints its name). */
static int ld(_Atomic int *p)
{
    return atomic_load(p);
}

/* The server the next srv_start makes (set before the fork). */
static struct {
    int ipc, redeliver, log;
    int64_t spill;
    swoop_server_events_t ev;
} cfg;

static void setup(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &cfg.ev));
    swoop_server_settings_t *s = swoop_server_settings(srv);
    s->task_worker_num = 1;
    s->task_ipc_mode = cfg.ipc;
    s->task_redeliver = cfg.redeliver;
    s->task_spill_size = cfg.spill;
    ASSERT_OK(swoop_server_set(srv, "task_tmpdir", tenv.tmpdir));
    if (cfg.log)
        ASSERT_OK(swoop_server_set(srv, "log_file", sh->log));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "1"));
    s->worker_num = 1; /* every result and report reaches one process */
}

/* Fresh shared state and tmpdir, defaults for cfg; the caller sets cfg.ev and the rest. */
static void begin(int ipc)
{
    sh = srv_shared(sizeof(*sh));
    task_env_begin();
    memset(&cfg, 0, sizeof(cfg));
    cfg.ipc = ipc;
    cfg.spill = 16 << 20;
    snprintf(sh->log, sizeof(sh->log), "%s/server.log", swoop_test_tmpdir());
}

static srv_handle_t start(void)
{
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup, NULL, 1);
    WAIT_UNTIL(ld(&sh->task_pid) > 0, 5000);
    return h;
}

static void finish(srv_handle_t *h, int fd)
{
    ASSERT_EQ(task_env_queues(h), cfg.ipc == 1 ? 0 : 1);
    close(fd);
    srv_stop(h, 10000);
    task_env_end();
}

static void send_cmd(int fd, const char *cmd)
{
    cli_write(fd, cmd, strlen(cmd));
}

static swoop_server_stats_t stats_of(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    return st;
}

static int log_count(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

static void on_worker_start(swoop_server_t *srv, int id)
{
    atomic_store(swoop_server_is_task_worker(srv) ? &sh->task_pid : &sh->worker_pid, getpid());
}

static void block_until_released(void)
{
    atomic_store(&sh->blocked_pid, getpid());
    while (!ld(&sh->release))
        swoop_test_sleep_ms(1);
}

static void count_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    atomic_fetch_add(&sh->finished, 1);
}

static void count_error(swoop_server_t *srv, int64_t task_id, int error)
{
    atomic_fetch_add(&sh->errors, 1);
}

/*
 * Two processes of one task worker id (reload_async): task A blocks in
 * process A (SIGTERM stays blocked in on_task); SIGUSR2 starts successor B
 * beside it; task C kills B. on_task_error(C) comes at once, and
 * on_task_error(A) when the manager SIGKILLs A after max_wait_time (1 s):
 * each exactly once. With one record per id, B's record replaced A's and
 * one of the two reports was lost.
 */
static void reload_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                           size_t len)
{
    if (len == 5 && memcmp(data, "block", 5) == 0) {
        atomic_store(&sh->blocked_pid, getpid());
        for (;;)
            pause(); /* only SIGKILL ends it */
    }
    atomic_store(&sh->die_pid, getpid());
    raise(SIGKILL);
}

static void reload_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                              const void *data, size_t len)
{
    int a = ((const char *)data)[0] == 'a';
    int64_t id = swoop_server_task(srv, a ? "block" : "die", a ? 5 : 3, 0);
    ASSERT_GT(id, 0);
    atomic_store(a ? &sh->id_a : &sh->id_c, id);
}

static void reload_on_error(swoop_server_t *srv, int64_t task_id, int error)
{
    if (task_id == atomic_load(&sh->id_a)) {
        atomic_store(&sh->code_a, error);
        atomic_fetch_add(&sh->err_a, 1);
    } else if (task_id == atomic_load(&sh->id_c)) {
        atomic_store(&sh->code_c, error);
        atomic_fetch_add(&sh->err_c, 1);
    } else {
        atomic_fetch_add(&sh->err_other, 1);
    }
}

static void reload_run(int ipc)
{
    begin(ipc);
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = reload_on_receive,
                                     .on_task = reload_on_task,
                                     .on_task_error = reload_on_error};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    send_cmd(fd, "a");
    WAIT_UNTIL(ld(&sh->blocked_pid) > 0, 5000);
    int a = ld(&sh->blocked_pid);
    ASSERT_EQ(a, ld(&sh->task_pid));
    ASSERT_EQ(kill(stats_of(&h).manager_pid, SIGUSR2), 0);
    WAIT_UNTIL(ld(&sh->task_pid) != a, 5000); /* B runs */
    int b = ld(&sh->task_pid);
    ASSERT(swoop_test_pid_alive(a)); /* A still runs A's task: killed only after 1 s */
    send_cmd(fd, "c");
    WAIT_UNTIL(ld(&sh->err_c) == 1, 5000);
    ASSERT_EQ(ld(&sh->die_pid), b);
    ASSERT_EQ(ld(&sh->code_c), SWOOP_ECANCELED);
    WAIT_UNTIL(ld(&sh->err_a) == 1, 5000);
    ASSERT(!swoop_test_pid_alive(a));
    ASSERT_EQ(ld(&sh->code_a), SWOOP_ECANCELED);
    WAIT_UNTIL(ld(&sh->task_pid) != b, 5000); /* B's successor, for a clean stop */
    ASSERT_EQ(stats_of(&h).task_failed, 2);
    finish(&h, fd);
    /* Every process that could report is gone: each report came exactly once. */
    ASSERT_EQ(ld(&sh->err_a), 1);
    ASSERT_EQ(ld(&sh->err_c), 1);
    ASSERT_EQ(ld(&sh->err_other), 0);
}

TEST_TIMEOUT(task_reload_two_processes_mq1, 60)
{
    reload_run(1);
}

TEST_TIMEOUT(task_reload_two_processes_mq2, 60)
{
    reload_run(2);
}

/*
 * A crash after the result went out (task_redeliver 1): on_task calls
 * swoop_server_task_finish, then SIGKILLs its process. The result arrives
 * once and the task is neither run again nor reported: the manager sees
 * the record's finished flag. A marker task, posted once the task worker
 * was replaced, reaches the same (FIFO) channel after any re-sent copy, so
 * its result bounds the wait for a second run.
 */
static void crash_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
    if (len == 1 && ((const char *)data)[0] == 'm') {
        ASSERT_OK(swoop_server_task_finish(srv, "m", 1));
        return;
    }
    atomic_fetch_add(&sh->runs, 1);
    size_t n = ((const char *)data)[0] == 's' ? 100 : 20 << 10;
    uint8_t *buf = malloc(n);
    fill(buf, n, 7);
    int rc = swoop_server_task_finish(srv, buf, n);
    free(buf);
    atomic_store(&sh->sent, rc == 0 ? 1 : rc);
    raise(SIGKILL);
}

static void crash_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                             const void *data, size_t len)
{
    ASSERT_GT(swoop_server_task(srv, data, 1, -1), 0);
}

static void crash_on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    if (len == 1) {
        atomic_fetch_add(&sh->markers, 1);
        return;
    }
    if ((len != 100 && len != (20 << 10)) || !check(data, len, 7))
        atomic_fetch_add(&sh->bad, 1);
    atomic_fetch_add(&sh->finished, 1);
}

static void crash_run(const char *cmd)
{
    begin(1);
    cfg.redeliver = 1;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = crash_on_receive,
                                     .on_task = crash_on_task,
                                     .on_finish = crash_on_finish,
                                     .on_task_error = count_error};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    int victim = ld(&sh->task_pid);
    send_cmd(fd, cmd);
    WAIT_UNTIL(ld(&sh->finished) == 1, 5000);
    /* The manager settled the dead process's record before it started the next one. */
    WAIT_UNTIL(ld(&sh->task_pid) != victim, 5000);
    ASSERT_EQ(ld(&sh->sent), 1); /* stored before it died, maybe after on_finish ran */
    send_cmd(fd, "m");
    WAIT_UNTIL(ld(&sh->markers) == 1, 5000);
    ASSERT_EQ(ld(&sh->runs), 1);
    ASSERT_EQ(ld(&sh->finished), 1);
    ASSERT_EQ(ld(&sh->bad), 0);
    ASSERT_EQ(ld(&sh->errors), 0);
    swoop_server_stats_t st = stats_of(&h);
    ASSERT_EQ(st.task_redelivered, 0);
    ASSERT_EQ(st.task_failed, 0);
    finish(&h, fd);
}

TEST_TIMEOUT(task_crash_after_finish_inline, 60)
{
    crash_run("s");
}

TEST_TIMEOUT(task_crash_after_finish_spill, 60)
{
    crash_run("S");
}

/*
 * A late taskwait result is dropped by the worker's loop: taskwait (100 ms)
 * on a task that sleeps 300 ms times out; its result (100 KiB: a file of
 * its own) arrives while no taskwait runs, and its file goes at once, not
 * at the next taskwait. With a spill file of one block and a 20 KiB
 * result, the block comes back: the next 20 KiB task rides in it again.
 */
static void late_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                         size_t len)
{
    if (len == 4 && memcmp(data, "slow", 4) == 0) {
        swoop_test_sleep_ms(300);
        size_t n = cfg.spill == 65536 ? 20 << 10 : 100 << 10;
        uint8_t *buf = malloc(n);
        fill(buf, n, 9);
        int rc = swoop_server_task_finish(srv, buf, n);
        free(buf);
        atomic_store(&sh->sent, rc == 0 ? 1 : rc);
        return;
    }
    const char *path = swoop_server_task_path(srv);
    atomic_fetch_add(path && strstr(path, ".spill.") ? &sh->spilled : &sh->filed, 1);
    if (!check(data, len, 3))
        atomic_fetch_add(&sh->bad, 1);
    ASSERT_OK(swoop_server_task_finish(srv, "ok", 2));
}

static void late_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                            const void *data, size_t len)
{
    if (((const char *)data)[0] == 'w') {
        void *r = NULL;
        size_t rl = 0;
        atomic_store(&sh->wait_rc, swoop_server_taskwait(srv, "slow", 4, 100, -1, &r, &rl));
        atomic_store(&sh->waited, 1);
        swoop_free(r);
        return;
    }
    static uint8_t buf[20 << 10];
    fill(buf, sizeof(buf), 3);
    ASSERT_GT(swoop_server_task(srv, buf, sizeof(buf), -1), 0);
}

static void late_run(int64_t spill)
{
    begin(1);
    cfg.spill = spill;
    cfg.log = 1;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = late_on_receive,
                                     .on_task = late_on_task,
                                     .on_finish = count_finish};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    send_cmd(fd, "w");
    WAIT_UNTIL(ld(&sh->waited), 5000);
    ASSERT_EQ(ld(&sh->wait_rc), SWOOP_ETIMEDOUT);
    WAIT_UNTIL(ld(&sh->sent) != 0, 5000);
    ASSERT_EQ(ld(&sh->sent), 1);
    /* No other taskwait runs: only the loop can take the late result. */
    WAIT_UNTIL(log_count(sh->log, "its late result is dropped") == 1, 3000);
    WAIT_UNTIL(task_files(tenv.tmpdir) == 0, 3000);
    if (spill == 65536) {
        send_cmd(fd, "n");
        WAIT_UNTIL(ld(&sh->finished) == 1, 5000);
        ASSERT_EQ(ld(&sh->spilled), 1); /* the only block is free again */
        ASSERT_EQ(ld(&sh->filed), 0);
        ASSERT_EQ(ld(&sh->bad), 0);
    }
    ASSERT_EQ(ld(&sh->finished), spill == 65536 ? 1 : 0);
    finish(&h, fd);
}

TEST_TIMEOUT(task_wait_late_file, 60)
{
    late_run(16 << 20);
}

TEST_TIMEOUT(task_wait_late_spill, 60)
{
    late_run(65536);
}

/*
 * Unsent tasks at a worker's exit (mode 2, a 16 KiB queue): the only task
 * worker blocks, 300 tasks of 70 KiB (a file each) are posted: the queue
 * takes some, the rest wait in the event worker. SIGTERM to that worker:
 * it exits with them unsent, and removes their files; what is left on
 * disk is exactly what the queue holds. Once released, the task worker
 * runs every queued task.
 */
#define UNSENT_TASKS 300
#define UNSENT_LEN   (70 << 10)
#define QUEUE_SMALL  16384

static void unsent_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                           size_t len)
{
    if (len == 5) {
        block_until_released();
        return;
    }
    if (len != UNSENT_LEN || !check(data, len, 11))
        atomic_fetch_add(&sh->bad, 1);
    atomic_fetch_add(&sh->runs, 1);
}

static void unsent_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                              const void *data, size_t len)
{
    if (((const char *)data)[0] == 'b') {
        ASSERT_GT(swoop_server_task(srv, "block", 5, 0), 0);
        return;
    }
    uint8_t *buf = malloc(UNSENT_LEN);
    fill(buf, UNSENT_LEN, 11);
    for (int i = 0; i < UNSENT_TASKS; i++)
        ASSERT_GT(swoop_server_task(srv, buf, UNSENT_LEN, 0), 0);
    free(buf);
    atomic_store(&sh->posted, 1);
}

TEST_TIMEOUT(task_unsent_at_exit_mq2, 60)
{
    begin(2);
    cfg.log = 1;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = unsent_on_receive,
                                     .on_task = unsent_on_task};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    send_cmd(fd, "b");
    WAIT_UNTIL(ld(&sh->blocked_pid) > 0, 5000);
    ASSERT_EQ(task_env_queues(&h), 1);
    /* The queue must be small for tasks to wait in the worker (root may have enlarged it). */
    struct msqid_ds ds;
    ASSERT_EQ(msgctl(tenv.ours[0], IPC_STAT, &ds), 0);
    if (ds.msg_qbytes > QUEUE_SMALL) {
        ds.msg_qbytes = QUEUE_SMALL;
        ASSERT_EQ(msgctl(tenv.ours[0], IPC_SET, &ds), 0);
    }
    int worker = ld(&sh->worker_pid);
    send_cmd(fd, "x");
    WAIT_UNTIL(ld(&sh->posted), 10000);
    ASSERT_EQ(task_files(tenv.tmpdir), UNSENT_TASKS);
    int64_t queued = stats_of(&h).task_queue_num;
    ASSERT_GT(queued, 0);
    ASSERT_LT(queued, UNSENT_TASKS);
    ASSERT_EQ(kill(worker, SIGTERM), 0);
    WAIT_UNTIL(!swoop_test_pid_alive(worker), 5000); /* it tries to send for about 1 s */
    queued = stats_of(&h).task_queue_num;
    ASSERT_EQ(task_files(tenv.tmpdir), queued);
    char what[128];
    snprintf(what, sizeof(what), "exits with %d task(s)", UNSENT_TASKS - (int)queued);
    ASSERT_EQ(log_count(sh->log, what), 1);
    printf("# %d tasks: %lld in the queue, %d lost at the worker's exit\n", UNSENT_TASKS,
           (long long)queued, UNSENT_TASKS - (int)queued);
    atomic_store(&sh->release, 1);
    WAIT_UNTIL(ld(&sh->runs) == queued, 10000);
    WAIT_UNTIL(stats_of(&h).task_queue_num == 0, 5000);
    ASSERT_EQ(ld(&sh->bad), 0);
    ASSERT_EQ(task_files(tenv.tmpdir), 0);
    WAIT_UNTIL(ld(&sh->worker_pid) != worker, 5000); /* restarted, for a clean stop */
    srv_wait_ready(h.pid, 1);
    finish(&h, fd);
}

/*
 * Files of servers that died are swept at start: swoop-task.<pid of a
 * reaped child>.* goes, swoop-task.<a live pid that is not the server>.*
 * stays (the test removes it).
 */
static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("x", f);
    fclose(f);
}

static void sweep_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
}

TEST_TIMEOUT(task_sweep_dead_at_start, 60)
{
    begin(1);
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start, .on_task = sweep_on_task};
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0)
        _exit(0);
    int status;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    char dead[640], live[640];
    snprintf(dead, sizeof(dead), "%s/swoop-task.%d.abcdef", tenv.tmpdir, (int)child);
    snprintf(live, sizeof(live), "%s/swoop-task.%d.keepme", tenv.tmpdir, (int)getpid());
    touch(dead);
    touch(live);
    srv_handle_t h = start();
    /* pid_max is 32,768 here: under a parallel suite the dead pid can come back. */
    int reused = swoop_test_pid_alive(child);
    int dead_left = access(dead, F_OK) == 0;
    int live_left = access(live, F_OK) == 0;
    srv_stop(&h, 10000);
    ASSERT(access(live, F_OK) == 0); /* not the server's: its own sweep keeps it too */
    ASSERT_EQ(unlink(live), 0);
    if (dead_left)
        unlink(dead);
    task_env_end();
    if (reused)
        printf("# pid %d was reused before the server started: the dead case is not checked\n",
               (int)child);
    else
        ASSERT_EQ(dead_left, 0);
    ASSERT_EQ(live_left, 1);
}

/*
 * The master is SIGKILLed (mode 2, private queue): the manager (parent
 * death signal) stops the workers and, seeing its master gone, removes the
 * queue. The test is the master's parent and reaps it.
 */
static void killed_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                           size_t len)
{
    ASSERT_OK(swoop_server_task_finish(srv, data, len));
}

static void killed_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                              const void *data, size_t len)
{
    ASSERT_GT(swoop_server_task(srv, "t", 1, -1), 0);
}

TEST_TIMEOUT(task_master_killed_mq2, 60)
{
    begin(2);
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = killed_on_receive,
                                     .on_task = killed_on_task,
                                     .on_finish = count_finish};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    send_cmd(fd, "x");
    WAIT_UNTIL(ld(&sh->finished) == 1, 5000);
    ASSERT_EQ(task_env_queues(&h), 1);
    int qid = tenv.ours[0];
    swoop_server_stats_t st = stats_of(&h);
    ASSERT_EQ(kill(h.pid, SIGKILL), 0);
    int status = swoop_test_wait_pid(h.pid, 5000);
    ASSERT(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    WAIT_UNTIL(!swoop_test_pid_alive(st.manager_pid), 5000);
    for (int i = 0; i < st.worker_num; i++) {
        if (st.workers[i].pid > 0)
            WAIT_UNTIL(!swoop_test_pid_alive(st.workers[i].pid), 5000);
    }
    WAIT_UNTIL(!swoop_test_pid_alive(ld(&sh->task_pid)), 5000);
    /* The manager removed it before it exited; still bounded, and never left behind. */
    uint64_t deadline = swoop_test_now_ms() + 2000ull * swoop_test_multiplier();
    while (mq_exists(qid) && swoop_test_now_ms() < deadline)
        swoop_test_sleep_ms(1);
    if (mq_exists(qid)) {
        msgctl(qid, IPC_RMID, NULL);
        FAIL("the private queue %d outlived the server whose master was SIGKILLed", qid);
    }
    close(fd);
    ASSERT_EQ(swoop_test_fd_count(), h.fd0);
    task_env_end();
}
