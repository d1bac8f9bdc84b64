/*
 * Task transport and recovery through real servers (PROCESS, port 0):
 * redelivery of a task whose task worker was killed (task_ipc_mode 1, 2,
 * 3; inline, spill and file payloads), a redelivery budget that runs out,
 * taskwait canceled at once by a dead task worker (or answered by the
 * redelivered task), timers in task workers (between tasks only), foreign
 * messages in a keyed queue, a keyed queue across a restart, an exhausted
 * spill file, spill blocks of killed task workers coming back, the choice
 * of an idle task worker, and the task stats. The
 * test drives each server with one-byte commands and reads what happened
 * from shared memory; every wait is bounded. After each stop task_tmpdir
 * holds no swoop-task file and no private queue is left.
 */
/* TEST_LABELS: tsan */
#include <sys/ipc.h>
#include <sys/msg.h>
#include <time.h>

#include <swoop/alloc.h>
#include <swoop/timer.h>

#include "ipc/msg.h"
#include "task_common.h"

#define NT 2 /* task workers; ids 2 and 3 */

typedef struct ishare_s {
    _Atomic int task_pids[NT];
    _Atomic int release;     /* lets a blocking task return */
    _Atomic int blocked_pid; /* the task worker in a blocking task */
    _Atomic int runs, bad, finished, errors, err_code, err_worker, post_worker;
    _Atomic int att2_pid, att2_ok, posted;
    _Atomic int by_worker[NT + 2]; /* tasks run per worker id */
    _Atomic int spilled, filed;    /* how payloads came (swoop_server_task_path) */
    _Atomic int ticks[NT], in_task[NT], tick_in_task, ticks_during;
    _Atomic int wait_rc, wait_ms, wait_next;
    char log[600];
} ishare_t;

static ishare_t *sh;

/* The server the next srv_start makes (set before the fork). */
static struct {
    int ipc, num, workers, redeliver, key;
    int64_t spill;
    int log;
    swoop_server_events_t ev;
} cfg;

static void setup(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &cfg.ev));
    swoop_server_settings_t *s = swoop_server_settings(srv);
    s->task_worker_num = cfg.num;
    s->task_ipc_mode = cfg.ipc;
    s->task_redeliver = cfg.redeliver;
    s->message_queue_key = cfg.key;
    s->task_spill_size = cfg.spill;
    ASSERT_OK(swoop_server_set(srv, "task_tmpdir", tenv.tmpdir));
    if (cfg.log)
        ASSERT_OK(swoop_server_set(srv, "log_file", sh->log));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "1"));
    swoop_server_settings(srv)->worker_num = cfg.workers;
}

/* Fresh shared state and tmpdir, defaults for cfg; the caller sets cfg.ev and the rest. */
static void begin(int ipc)
{
    sh = srv_shared(sizeof(*sh));
    task_env_begin();
    memset(&cfg, 0, sizeof(cfg));
    cfg.ipc = ipc;
    cfg.num = NT;
    cfg.workers = 2;
    cfg.spill = 16 << 20;
    snprintf(sh->log, sizeof(sh->log), "%s/server.log", swoop_test_tmpdir());
}

static srv_handle_t start(void)
{
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup, NULL, cfg.workers);
    for (int t = 0; t < cfg.num; t++)
        WAIT_UNTIL(atomic_load(&sh->task_pids[t]) > 0, 5000);
    return h;
}

static void finish(srv_handle_t *h, int fd)
{
    if (cfg.key == 0)
        ASSERT_EQ(task_env_queues(h), cfg.ipc == 1 ? 0 : 1);
    close(fd);
    srv_stop(h, 10000);
    task_env_end();
}

static void send_cmd(int fd, const char *cmd)
{
    cli_write(fd, cmd, strlen(cmd));
}

static int slot_of(int pid)
{
    for (int t = 0; t < NT; t++) {
        if (atomic_load(&sh->task_pids[t]) == pid)
            return t;
    }
    return -1;
}

static void on_worker_start(swoop_server_t *srv, int id)
{
    if (swoop_server_is_task_worker(srv))
        atomic_store(&sh->task_pids[id - cfg.workers], getpid());
}

static void block_until_released(void)
{
    atomic_store(&sh->blocked_pid, getpid());
    while (!atomic_load(&sh->release))
        swoop_test_sleep_ms(1);
}

static void count_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    atomic_fetch_add(&sh->finished, 1);
}

static void count_error(swoop_server_t *srv, int64_t task_id, int error)
{
    atomic_store(&sh->err_code, error);
    atomic_store(&sh->err_worker, swoop_server_worker_id(srv));
    atomic_fetch_add(&sh->errors, 1);
}

/*
 * Redelivery (task_redeliver 1): attempt 1 blocks and is SIGKILLed; the
 * task runs again (attempt 2) in another task worker with its payload
 * intact (100 B inline, 16 KiB in the spill file, 100 KiB in its own file:
 * kept in place for the second reader), and its result reaches on_finish
 * exactly once; task_redelivered counts the three.
 */
static const size_t redo_sizes[] = {100, 16 << 10, 100 << 10};

static void redo_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                         size_t len)
{
    int salt = (int)(len % 251);
    if (!check(data, len, salt))
        atomic_fetch_add(&sh->bad, 1);
    atomic_fetch_add(&sh->runs, 1);
    if (swoop_server_task_attempt(srv) == 1) {
        atomic_store(&sh->blocked_pid, getpid());
        for (;;)
            pause();
    }
    atomic_store(&sh->att2_pid, getpid());
    atomic_fetch_add(&sh->att2_ok, swoop_server_task_attempt(srv) == 2 && check(data, len, salt));
    ASSERT_OK(swoop_server_task_finish(srv, &len, sizeof(len)));
}

static void redo_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                            const void *data, size_t len)
{
    size_t n = redo_sizes[((const char *)data)[0] - '0'];
    uint8_t *buf = malloc(n);
    fill(buf, n, (int)(n % 251));
    ASSERT_GT(swoop_server_task(srv, buf, n, -1), 0);
    free(buf);
}

static void redo_run(int ipc)
{
    begin(ipc);
    cfg.redeliver = 1;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = redo_on_receive,
                                     .on_task = redo_on_task,
                                     .on_finish = count_finish,
                                     .on_task_error = count_error};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    for (int i = 0; i < 3; i++) {
        atomic_store(&sh->blocked_pid, 0);
        char cmd[2] = {(char)('0' + i), 0};
        send_cmd(fd, cmd);
        WAIT_UNTIL(atomic_load(&sh->blocked_pid) > 0, 5000);
        int victim = atomic_load(&sh->blocked_pid), slot = slot_of(victim);
        ASSERT_GE(slot, 0);
        ASSERT_EQ(kill(victim, SIGKILL), 0);
        WAIT_UNTIL(atomic_load(&sh->finished) == i + 1, 5000);
        int again = atomic_load(&sh->att2_pid);
        ASSERT_NE(again, victim);
        if (ipc != 3) /* the next task worker; mode 3: whichever is free */
            ASSERT_EQ(again, atomic_load(&sh->task_pids[1 - slot]));
        WAIT_UNTIL(atomic_load(&sh->task_pids[slot]) != victim, 5000);
    }
    ASSERT_EQ(atomic_load(&sh->runs), 6);
    ASSERT_EQ(atomic_load(&sh->att2_ok), 3);
    ASSERT_EQ(atomic_load(&sh->bad), 0);
    ASSERT_EQ(atomic_load(&sh->errors), 0);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(st.task_redelivered, 3);
    ASSERT_EQ(st.task_failed, 0);
    ASSERT_EQ(atomic_load(&sh->finished), 3); /* once each */
    finish(&h, fd);
}

TEST(task_redeliver_mq1)
{
    redo_run(1);
}

TEST(task_redeliver_mq2)
{
    redo_run(2);
}

TEST(task_redeliver_mq3)
{
    redo_run(3);
}

/*
 * The budget runs out: a task that kills its task worker on every attempt
 * runs exactly twice with task_redeliver 1, then on_task_error
 * (SWOOP_ECANCELED) runs in the worker that posted it.
 */
static void spent_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
    atomic_fetch_add(&sh->runs, 1);
    raise(SIGKILL);
}

static void spent_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                             const void *data, size_t len)
{
    atomic_store(&sh->post_worker, swoop_server_worker_id(srv));
    ASSERT_GT(swoop_server_task(srv, "die", 3, -1), 0);
}

static void spent_run(int ipc)
{
    begin(ipc);
    cfg.redeliver = 1;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = spent_on_receive,
                                     .on_task = spent_on_task,
                                     .on_finish = count_finish,
                                     .on_task_error = count_error};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    atomic_store(&sh->post_worker, -1);
    send_cmd(fd, "x");
    WAIT_UNTIL(atomic_load(&sh->errors) == 1, 5000);
    ASSERT_EQ(atomic_load(&sh->err_code), SWOOP_ECANCELED);
    ASSERT_EQ(atomic_load(&sh->err_worker), atomic_load(&sh->post_worker));
    ASSERT_EQ(atomic_load(&sh->runs), 2);
    ASSERT_EQ(atomic_load(&sh->finished), 0);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(st.task_redelivered, 1);
    ASSERT_EQ(st.task_failed, 1);
    finish(&h, fd);
}

TEST(task_redeliver_spent_mq1)
{
    spent_run(1);
}

TEST(task_redeliver_spent_mq3)
{
    spent_run(3);
}

/*
 * taskwait (5 s timeout) on a task whose task worker is SIGKILLed, without
 * task_redeliver: SWOOP_ECANCELED well before the timeout; the next
 * taskwait gets its own result.
 */
static void tw_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data, size_t len)
{
    if (len == 5 && memcmp(data, "block", 5) == 0 && swoop_server_task_attempt(srv) == 1) {
        atomic_store(&sh->blocked_pid, getpid());
        for (;;)
            pause();
    }
    ASSERT_OK(swoop_server_task_finish(srv, data, len));
}

static void tw_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                          const void *data, size_t len)
{
    void *r = NULL;
    size_t rl = 0;
    uint64_t t0 = swoop_test_now_ms();
    int rc = swoop_server_taskwait(srv, "block", 5, 5000, -1, &r, &rl);
    atomic_store(&sh->wait_ms, (int)(swoop_test_now_ms() - t0));
    atomic_store(&sh->att2_ok, r != NULL && rl == 5 && memcmp(r, "block", 5) == 0);
    swoop_free(r);
    atomic_store(&sh->wait_rc, rc);
    ASSERT_OK(swoop_server_taskwait(srv, "next", 4, 5000, -1, &r, &rl));
    atomic_store(&sh->wait_next, rl == 4 && memcmp(r, "next", 4) == 0);
    swoop_free(r);
    ASSERT_OK(swoop_server_send(srv, conn, "ok\n", 3));
}

static void tw_run(int ipc, int redeliver)
{
    begin(ipc);
    cfg.redeliver = redeliver;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = tw_on_receive,
                                     .on_task = tw_on_task,
                                     .on_finish = count_finish};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    send_cmd(fd, "x");
    WAIT_UNTIL(atomic_load(&sh->blocked_pid) > 0, 5000);
    ASSERT_EQ(kill(atomic_load(&sh->blocked_pid), SIGKILL), 0);
    char line[4] = {0};
    ASSERT_EQ(cli_read_n(fd, line, 3, 5000), 3);
    ASSERT_STR_EQ(line, "ok\n");
    /* With task_redeliver 1 the second attempt answers the same taskwait. */
    ASSERT_EQ(atomic_load(&sh->wait_rc), redeliver ? 0 : SWOOP_ECANCELED);
    ASSERT_EQ(atomic_load(&sh->att2_ok), redeliver);
    ASSERT_LT(atomic_load(&sh->wait_ms), 2000);
    ASSERT_EQ(atomic_load(&sh->wait_next), 1);
    ASSERT_EQ(atomic_load(&sh->finished), 0);
    printf("# task_ipc_mode %d, task_redeliver %d: taskwait returned %d after %d ms (timeout "
           "5000)\n",
           ipc, redeliver, atomic_load(&sh->wait_rc), atomic_load(&sh->wait_ms));
    finish(&h, fd);
}

TEST(task_wait_canceled_mq1)
{
    tw_run(1, 0);
}

TEST(task_wait_canceled_mq2)
{
    tw_run(2, 0);
}

TEST(task_wait_canceled_mq3)
{
    tw_run(3, 0);
}

TEST(task_wait_redelivered_mq1)
{
    tw_run(1, 1);
}

TEST(task_wait_redelivered_mq3)
{
    tw_run(3, 1);
}

/*
 * Spill blocks of killed task workers come back: with a spill file of 2
 * blocks, three 16 KiB tasks whose task workers are SIGKILLed in on_task
 * (no redelivery: on_task_error each) all still ride in the spill file.
 */
static void reap_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                         size_t len)
{
    const char *path = swoop_server_task_path(srv);
    if (path && strstr(path, ".spill."))
        atomic_fetch_add(&sh->spilled, 1);
    if (!check(data, len, 5))
        atomic_fetch_add(&sh->bad, 1);
    atomic_store(&sh->blocked_pid, getpid());
    for (;;)
        pause();
}

static void reap_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                            const void *data, size_t len)
{
    static uint8_t buf[16 << 10];
    fill(buf, sizeof(buf), 5);
    ASSERT_GT(swoop_server_task(srv, buf, sizeof(buf), -1), 0);
}

TEST(task_spill_reaped_mq1)
{
    begin(1);
    cfg.spill = 131072;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = reap_on_receive,
                                     .on_task = reap_on_task,
                                     .on_task_error = count_error};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    for (int i = 0; i < 3; i++) {
        atomic_store(&sh->blocked_pid, 0);
        send_cmd(fd, "x");
        WAIT_UNTIL(atomic_load(&sh->blocked_pid) > 0, 5000);
        int victim = atomic_load(&sh->blocked_pid), slot = slot_of(victim);
        ASSERT_GE(slot, 0);
        ASSERT_EQ(kill(victim, SIGKILL), 0);
        WAIT_UNTIL(atomic_load(&sh->errors) == i + 1, 5000);
        WAIT_UNTIL(atomic_load(&sh->task_pids[slot]) != victim, 5000);
    }
    ASSERT_EQ(atomic_load(&sh->err_code), SWOOP_ECANCELED);
    ASSERT_EQ(atomic_load(&sh->spilled), 3);
    ASSERT_EQ(atomic_load(&sh->bad), 0);
    finish(&h, fd);
}

/*
 * Timers in task workers: a 10 ms tick started in on_worker_start runs
 * while the task worker waits idle (ppoll in mode 1, msgrcv in modes 2, 3),
 * never while on_task runs (a 200 ms busy loop), and again after it.
 */
static void tick(int64_t id, void *arg)
{
    int t = swoop_server_worker_id(arg) - cfg.workers;
    atomic_fetch_add(&sh->ticks[t], 1);
    if (atomic_load(&sh->in_task[t]))
        atomic_fetch_add(&sh->tick_in_task, 1);
}

static void timer_on_worker_start(swoop_server_t *srv, int id)
{
    on_worker_start(srv, id);
    if (swoop_server_is_task_worker(srv))
        ASSERT_GT(swoop_timer_tick(10, tick, srv), 0);
}

static void timer_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
    int t = swoop_server_worker_id(srv) - cfg.workers;
    atomic_store(&sh->in_task[t], 1);
    int before = atomic_load(&sh->ticks[t]);
    uint64_t end = swoop_test_now_ms() + 200;
    while (swoop_test_now_ms() < end)
        ; /* busy: SIGALRM comes, the tick must wait */
    atomic_fetch_add(&sh->ticks_during, atomic_load(&sh->ticks[t]) - before);
    atomic_store(&sh->in_task[t], 0);
    ASSERT_OK(swoop_server_task_finish(srv, "done", 4));
}

static void timer_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                             const void *data, size_t len)
{
    ASSERT_GT(swoop_server_task(srv, "busy", 4, 0), 0);
}

static void timer_run(int ipc)
{
    begin(ipc);
    cfg.ev = (swoop_server_events_t){.on_worker_start = timer_on_worker_start,
                                     .on_receive = timer_on_receive,
                                     .on_task = timer_on_task,
                                     .on_finish = count_finish};
    srv_handle_t h = start();
    WAIT_UNTIL(atomic_load(&sh->ticks[0]) >= 10 && atomic_load(&sh->ticks[1]) >= 10, 3000);
    int fd = cli_connect(h.port);
    send_cmd(fd, "x");
    WAIT_UNTIL(atomic_load(&sh->finished) == 1, 5000);
    int after = atomic_load(&sh->ticks[0]);
    WAIT_UNTIL(atomic_load(&sh->ticks[0]) >= after + 5, 3000);
    ASSERT_EQ(atomic_load(&sh->tick_in_task), 0);
    ASSERT_EQ(atomic_load(&sh->ticks_during), 0);
    finish(&h, fd);
}

TEST(task_timer_mq1)
{
    timer_run(1);
}

TEST(task_timer_mq2)
{
    timer_run(2);
}

TEST(task_timer_mq3)
{
    timer_run(3);
}

/*
 * Garbage in a keyed queue (mode 3): random bytes, a 2-byte message and a
 * task header whose length is wrong, sent with mtype 1 before and while
 * the server runs, are logged and skipped; valid tasks all run and their
 * results arrive. The keyed queue outlives the server (the contract); the
 * test removes it.
 */
#define GARBAGE_TASKS 20

static void garbage_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                            size_t len)
{
    atomic_fetch_add(check(data, len, 3) ? &sh->runs : &sh->bad, 1);
    ASSERT_OK(swoop_server_task_finish(srv, "ok", 2));
}

static void garbage_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                               const void *data, size_t len)
{
    static uint8_t buf[20000];
    for (int i = 0; i < GARBAGE_TASKS; i++) {
        size_t n = i % 4 == 3 ? sizeof(buf) : (size_t)(i * 100);
        fill(buf, n, 3);
        ASSERT_GT(swoop_server_task(srv, buf, n, -1), 0);
    }
}

static void send_garbage(int qid)
{
    struct {
        long mtype;
        char text[256];
    } m = {.mtype = 1};
    for (size_t i = 0; i < sizeof(m.text); i++)
        m.text[i] = (char)rand();
    ASSERT_EQ(msgsnd(qid, &m, 100, IPC_NOWAIT), 0);
    ASSERT_EQ(msgsnd(qid, &m, 2, IPC_NOWAIT), 0);
    swoop_ipc_head_t hd = {.type = SWOOP_IPC_TASK,
                           .len = 1000, /* 10 bytes follow */
                           .conn_id = 1,
                           .msg_id = 0x53575441534b3031ull}; /* the task magic */
    memcpy(m.text, &hd, sizeof(hd));
    ASSERT_EQ(msgsnd(qid, &m, sizeof(hd) + 10, IPC_NOWAIT), 0);
}

static int log_count(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

TEST(task_queue_garbage_mq3)
{
    begin(3);
    cfg.key = 0x5700000 | (getpid() & 0xfffff);
    cfg.log = 1;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = garbage_on_receive,
                                     .on_task = garbage_on_task,
                                     .on_finish = count_finish};
    ASSERT_EQ(mq_by_key(cfg.key), -1);
    int qid = msgget(cfg.key, IPC_CREAT | 0600);
    ASSERT_GE(qid, 0);
    send_garbage(qid);
    srv_handle_t h = start();
    send_garbage(qid);
    int fd = cli_connect(h.port);
    send_cmd(fd, "x");
    WAIT_UNTIL(atomic_load(&sh->finished) == GARBAGE_TASKS, 5000);
    ASSERT_EQ(atomic_load(&sh->runs), GARBAGE_TASKS);
    ASSERT_EQ(atomic_load(&sh->bad), 0);
    WAIT_UNTIL(log_count(sh->log, "foreign, malformed or truncated") == 6, 5000);
    finish(&h, fd);
    swoop_test_assert_log_clean(sh->log);
    ASSERT_EQ(mq_by_key(cfg.key), qid); /* kept */
    struct msqid_ds ds;
    ASSERT_EQ(msgctl(qid, IPC_STAT, &ds), 0);
    ASSERT_EQ(ds.msg_qnum, 0); /* all garbage was taken */
    ASSERT_EQ(msgctl(qid, IPC_RMID, NULL), 0);
}

/*
 * A keyed queue across a restart (mode 3, one task worker): server A's
 * task worker blocks, a second task waits in the queue when A stops. The
 * queue and that task outlive A (the contract), and server B's task worker
 * runs it. Its result must not reach B's worker as the on_finish of a task
 * B never posted: B's task ids start at 1 again, so a stale result could
 * stand for one of B's own tasks.
 */
static int64_t own_ids[4];
static int nown;

static void restart_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                            size_t len)
{
    if (len == 5 && memcmp(data, "block", 5) == 0) {
        atomic_store(&sh->blocked_pid, getpid());
        for (;;)
            pause();
    }
    if (len == 5 && memcmp(data, "stale", 5) == 0)
        atomic_store(&sh->att2_ok, 1);
    atomic_fetch_add(&sh->runs, 1);
    ASSERT_OK(swoop_server_task_finish(srv, "r", 1));
}

static void restart_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                               const void *data, size_t len)
{
    if (((const char *)data)[0] == 'a') {
        ASSERT_GT(swoop_server_task(srv, "block", 5, -1), 0);
        ASSERT_GT(swoop_server_task(srv, "stale", 5, -1), 0);
        return;
    }
    int64_t id = swoop_server_task(srv, "own", 3, -1);
    ASSERT_GT(id, 0);
    own_ids[nown++] = id;
}

static void restart_on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    int mine = 0;
    for (int i = 0; i < nown; i++)
        mine |= own_ids[i] == task_id;
    if (!mine)
        atomic_store(&sh->bad, (int)task_id); /* a result this process never asked for */
    else
        atomic_fetch_add(&sh->finished, 1);
}

static int mq_qnum(int key)
{
    static mq_info_t all[MQ_MAX];
    int n = mq_list(all, MQ_MAX);
    for (int i = 0; i < n; i++) {
        if (all[i].key == key)
            return (int)all[i].qnum;
    }
    return -1;
}

TEST(task_queue_restart_mq3)
{
    begin(3);
    cfg.key = 0x5800000 | (getpid() & 0xfffff);
    cfg.num = 1;
    cfg.workers = 1; /* every result on one channel, in order */
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = restart_on_receive,
                                     .on_task = restart_on_task,
                                     .on_finish = restart_on_finish};
    ASSERT_EQ(mq_by_key(cfg.key), -1);
    srv_handle_t a = start();
    int qid = mq_by_key(cfg.key);
    ASSERT_GE(qid, 0);
    int fd = cli_connect(a.port);
    send_cmd(fd, "a");
    WAIT_UNTIL(atomic_load(&sh->blocked_pid) > 0, 5000);
    WAIT_UNTIL(mq_qnum(cfg.key) == 1, 5000);
    finish(&a, fd); /* the blocked task worker is SIGKILLed after max_wait_time */
    ASSERT_EQ(mq_by_key(cfg.key), qid);
    ASSERT_EQ(mq_qnum(cfg.key), 1);

    memset((void *)sh->task_pids, 0, sizeof(sh->task_pids));
    srv_handle_t b = start();
    WAIT_UNTIL(atomic_load(&sh->att2_ok), 5000); /* the stale task ran in B */
    fd = cli_connect(b.port);
    send_cmd(fd, "b");
    /* B's own result; the stale one, if it came, came first (same channel, in order). */
    WAIT_UNTIL(atomic_load(&sh->finished) == 1, 5000);
    ASSERT_EQ(atomic_load(&sh->runs), 2);
    int stale_finish = atomic_load(&sh->bad);
    finish(&b, fd);
    ASSERT_EQ(msgctl(qid, IPC_RMID, NULL), 0);
    if (stale_finish)
        FAIL("server B's worker got on_finish(%d) for server A's task", stale_finish);
}

/*
 * Spill exhaustion: a spill file of 2 blocks and 64 tasks of 20 KiB queued
 * behind a blocked one: 2 ride in the spill file, 62 in files of their own;
 * all arrive intact, and their 20 KiB results too.
 */
#define SPILL_TASKS 64
#define SPILL_LEN   (20 << 10)

static void spill_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
    if (len == 4) {
        block_until_released();
        ASSERT_OK(swoop_server_task_finish(srv, data, len));
        return;
    }
    int seq = ((const uint8_t *)data)[0];
    const char *path = swoop_server_task_path(srv);
    ASSERT_NOT_NULL(path);
    atomic_fetch_add(strstr(path, ".spill.") ? &sh->spilled : &sh->filed, 1);
    if (len != SPILL_LEN || !check((const uint8_t *)data + 1, len - 1, seq))
        atomic_fetch_add(&sh->bad, 1);
    atomic_fetch_add(&sh->runs, 1);
    ASSERT_OK(swoop_server_task_finish(srv, data, len)); /* the same bytes back */
}

static void spill_on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    if (len != 4 && (len != SPILL_LEN ||
                     !check((const uint8_t *)data + 1, len - 1, ((const uint8_t *)data)[0])))
        atomic_fetch_add(&sh->bad, 1);
    atomic_fetch_add(&sh->finished, 1);
}

static void spill_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                             const void *data, size_t len)
{
    static uint8_t buf[SPILL_LEN];
    ASSERT_GT(swoop_server_task(srv, "slow", 4, 0), 0);
    for (int i = 0; i < SPILL_TASKS; i++) {
        buf[0] = (uint8_t)i;
        fill(buf + 1, sizeof(buf) - 1, i);
        ASSERT_GT(swoop_server_task(srv, buf, sizeof(buf), 0), 0);
    }
    atomic_store(&sh->posted, 1);
}

static void spill_run(int ipc)
{
    begin(ipc);
    cfg.spill = 131072;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = spill_on_receive,
                                     .on_task = spill_on_task,
                                     .on_finish = spill_on_finish};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    send_cmd(fd, "x");
    WAIT_UNTIL(atomic_load(&sh->posted) && atomic_load(&sh->blocked_pid), 5000);
    ASSERT_EQ(task_files(tenv.tmpdir), SPILL_TASKS - 2);
    atomic_store(&sh->release, 1);
    WAIT_UNTIL(atomic_load(&sh->finished) == SPILL_TASKS + 1, 10000);
    ASSERT_EQ(atomic_load(&sh->runs), SPILL_TASKS);
    ASSERT_EQ(atomic_load(&sh->bad), 0);
    ASSERT_EQ(atomic_load(&sh->spilled), 2);
    ASSERT_EQ(atomic_load(&sh->filed), SPILL_TASKS - 2);
    finish(&h, fd);
}

TEST(task_spill_full_mq1)
{
    spill_run(1);
}

TEST(task_spill_full_mq2)
{
    spill_run(2);
}

/*
 * Idle first: task worker 0 blocked (dst 0), then 10 tasks with dst -1, one
 * after another: all run in task worker 1. The next task is posted once the
 * previous one's on_finish ran and task worker 1 sleeps waiting for work:
 * on_finish alone is too early, since a task worker counts as busy until
 * its on_task returns, which may be after its result arrived (then no task
 * worker looks idle and the task goes round robin, possibly to the blocked
 * one).
 */
#define CHAIN 10

static void idle_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                         size_t len)
{
    if (len == 5)
        block_until_released();
    else
        atomic_fetch_add(&sh->by_worker[swoop_server_worker_id(srv)], 1);
    ASSERT_OK(swoop_server_task_finish(srv, data, len));
}

static void idle_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                            const void *data, size_t len)
{
    if (((const char *)data)[0] == 'b')
        ASSERT_GT(swoop_server_task(srv, "block", 5, 0), 0);
    else
        ASSERT_GT(swoop_server_task(srv, "next", 4, -1), 0);
}

/* The state letter of /proc/PID/stat ('S': sleeping, here waiting for a task). */
static char proc_state(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '?';
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

static swoop_server_stats_t stats_of(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    return st;
}

static void idle_run(int ipc)
{
    begin(ipc);
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = idle_on_receive,
                                     .on_task = idle_on_task,
                                     .on_finish = count_finish};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    send_cmd(fd, "b");
    WAIT_UNTIL(atomic_load(&sh->blocked_pid) > 0, 5000);
    ASSERT_EQ(atomic_load(&sh->blocked_pid), atomic_load(&sh->task_pids[0]));
    int t1 = atomic_load(&sh->task_pids[1]);
    for (int k = 0; k < CHAIN; k++) {
        WAIT_UNTIL(atomic_load(&sh->finished) == k, 5000);
        WAIT_UNTIL(stats_of(&h).task_idle_worker_num == NT - 1 && proc_state(t1) == 'S', 5000);
        send_cmd(fd, "n");
    }
    WAIT_UNTIL(atomic_load(&sh->finished) == CHAIN, 5000);
    ASSERT_EQ(atomic_load(&sh->by_worker[2]), 0);
    ASSERT_EQ(atomic_load(&sh->by_worker[3]), CHAIN);
    atomic_store(&sh->release, 1);
    WAIT_UNTIL(atomic_load(&sh->finished) == CHAIN + 1, 5000);
    finish(&h, fd);
}

TEST(task_idle_first_mq1)
{
    idle_run(1);
}

TEST(task_idle_first_mq2)
{
    idle_run(2);
}

/*
 * Stats: one task blocks in task worker 0 and 5 more wait for it: 2 task
 * workers, 1 idle, 5 tasking (posted, not taken); in mode 2 the 5 sit in
 * the queue (task_queue_num), in mode 1 there is no queue (-1). After the
 * release task_count is 6.
 */
static void stats_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
    if (len == 5)
        block_until_released();
    ASSERT_OK(swoop_server_task_finish(srv, data, len));
}

static void stats_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                             const void *data, size_t len)
{
    ASSERT_GT(swoop_server_task(srv, "block", 5, 0), 0);
    for (int i = 0; i < 5; i++)
        ASSERT_GT(swoop_server_task(srv, "more", 4, 0), 0);
}

static void stats_run(int ipc)
{
    begin(ipc);
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = stats_on_receive,
                                     .on_task = stats_on_task,
                                     .on_finish = count_finish};
    srv_handle_t h = start();
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(st.task_worker_num, NT);
    ASSERT_EQ(st.task_idle_worker_num, NT);
    ASSERT_EQ(st.tasking_num, 0);
    int fd = cli_connect(h.port);
    send_cmd(fd, "x");
    WAIT_UNTIL(atomic_load(&sh->blocked_pid) > 0, 5000);
    WAIT_UNTIL((st = stats_of(&h)).tasking_num == 5, 5000);
    ASSERT_EQ(st.task_worker_num, NT);
    ASSERT_EQ(st.task_idle_worker_num, NT - 1);
    if (ipc == 2) {
        WAIT_UNTIL((st = stats_of(&h)).task_queue_num == 5, 5000);
        ASSERT_GT(st.task_queue_bytes, 5 * (int64_t)sizeof(swoop_ipc_head_t));
    } else {
        ASSERT_EQ(st.task_queue_num, -1);
        ASSERT_EQ(st.task_queue_bytes, -1);
    }
    atomic_store(&sh->release, 1);
    WAIT_UNTIL(atomic_load(&sh->finished) == 6, 5000);
    WAIT_UNTIL((st = stats_of(&h)).task_count == 6, 5000);
    ASSERT_EQ(st.tasking_num, 0);
    ASSERT_EQ(st.task_idle_worker_num, NT);
    ASSERT_EQ(st.task_failed, 0);
    ASSERT_EQ(st.task_redelivered, 0);
    if (ipc == 2)
        ASSERT_EQ(st.task_queue_num, 0);
    finish(&h, fd);
}

TEST(task_stats_mq1)
{
    stats_run(1);
}

TEST(task_stats_mq2)
{
    stats_run(2);
}
