/*
 * RELIABILITY.md scenarios 2 and 20, short versions, through real servers
 * (PROCESS, port 0):
 *   - a task storm: 1,000 tasks posted at once to 2 task workers; the task
 *     worker that runs the 300th is SIGKILLed. It is back within 100 ms,
 *     and every task is accounted for: 999 results and 1 on_task_error
 *     (task_redeliver 0), or 1,000 results (task_redeliver 1); in each
 *     task_ipc_mode. The default queue size (kernel.msgmnb) holds far fewer
 *     than 1,000 tasks, so in modes 2 and 3 most wait in the event worker.
 *   - a 64 MiB task and a 64 MiB result, byte for byte, over the socketpair
 *     and over the message queue, each logged once as above
 *     package_max_length and delivered anyway.
 * After each stop task_tmpdir holds no swoop-task file and no queue of the
 * server is left.
 */
#include <signal.h>

#include <swoop/alloc.h>

#include "task_common.h"

#define NT     2 /* task workers; ids 2 and 3 */
#define STORM  1000
#define VICTIM 300
/*
 * The manager replaces a dead task worker at once (SIGCHLD, no polling): well
 * under 100 ms on an idle machine. Sanitizers and a loaded 2-core runner
 * stretch it, so the bound scales with the test multiplier.
 */
#define RESTART_MS (100u * swoop_test_multiplier())

typedef struct sshare_s {
    _Atomic int task_pids[NT];
    _Atomic int runs, finished, errors, bad, victim;
    _Atomic int big_ok;
    char log[512];
} sshare_t;

static sshare_t *sh;

static struct {
    int ipc, redeliver, log;
    swoop_server_events_t ev;
} cfg;

static void setup(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_on(srv, &cfg.ev));
    swoop_server_settings_t *s = swoop_server_settings(srv);
    s->task_worker_num = NT;
    s->task_ipc_mode = cfg.ipc;
    s->task_redeliver = cfg.redeliver;
    ASSERT_OK(swoop_server_set(srv, "task_tmpdir", tenv.tmpdir));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "1"));
    if (cfg.log)
        ASSERT_OK(swoop_server_set(srv, "log_file", sh->log));
}

/* Lines of the server's log that contain `text`. */
static int log_lines(const char *text)
{
    FILE *f = fopen(sh->log, "r");
    ASSERT_NOT_NULL(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, text) != NULL;
    fclose(f);
    return n;
}

static void on_worker_start(swoop_server_t *srv, int id)
{
    if (swoop_server_is_task_worker(srv))
        atomic_store(&sh->task_pids[id - 2], getpid());
}

static srv_handle_t start(void)
{
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup, NULL, 2);
    for (int t = 0; t < NT; t++)
        WAIT_UNTIL(atomic_load(&sh->task_pids[t]) > 0, 5000);
    return h;
}

static void stop(srv_handle_t *h, int fd)
{
    ASSERT_EQ(task_env_queues(h), cfg.ipc == 1 ? 0 : 1);
    close(fd);
    srv_stop(h, 10000);
    task_env_end();
}

/* ---- the storm ---- */

static void storm_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data,
                          size_t len)
{
    if (len != 64 || !check(data, len, 1))
        atomic_fetch_add(&sh->bad, 1);
    if (atomic_fetch_add(&sh->runs, 1) + 1 == VICTIM) {
        atomic_store(&sh->victim, getpid()); /* the test SIGKILLs us here */
        for (;;)
            pause();
    }
    ASSERT_OK(swoop_server_task_finish(srv, data, len));
}

static void storm_on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    if (len != 64 || !check(data, len, 1))
        atomic_fetch_add(&sh->bad, 1);
    atomic_fetch_add(&sh->finished, 1);
}

static void storm_on_task_error(swoop_server_t *srv, int64_t task_id, int error)
{
    ASSERT_EQ(error, SWOOP_ECANCELED);
    atomic_fetch_add(&sh->errors, 1);
}

static void storm_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                             const void *data, size_t len)
{
    uint8_t payload[64];
    fill(payload, sizeof(payload), 1);
    for (int i = 0; i < STORM; i++)
        ASSERT_GT(swoop_server_task(srv, payload, sizeof(payload), -1), 0);
}

static void storm_run(int ipc, int redeliver)
{
    sh = srv_shared(sizeof(*sh));
    task_env_begin();
    memset(&cfg, 0, sizeof(cfg));
    cfg.ipc = ipc;
    cfg.redeliver = redeliver;
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = storm_on_receive,
                                     .on_task = storm_on_task,
                                     .on_finish = storm_on_finish,
                                     .on_task_error = storm_on_task_error};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    cli_write(fd, "go", 2);
    WAIT_UNTIL(atomic_load(&sh->victim) > 0, 10000);
    int victim = atomic_load(&sh->victim);
    int slot = atomic_load(&sh->task_pids[0]) == victim ? 0 : 1;
    ASSERT_EQ(atomic_load(&sh->task_pids[slot]), victim);
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    WAIT_UNTIL(atomic_load(&sh->task_pids[slot]) != victim, 5000);
    uint64_t restart_ms = swoop_test_now_ms() - t0;
    WAIT_UNTIL(atomic_load(&sh->finished) + atomic_load(&sh->errors) >= STORM, 20000);
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    printf("# mode %d, task_redeliver %d: task worker back %llu ms after SIGKILL; %d results, "
           "%d on_task_error, %d on_task calls\n",
           ipc, redeliver, (unsigned long long)restart_ms, atomic_load(&sh->finished),
           atomic_load(&sh->errors), atomic_load(&sh->runs));
    ASSERT_LE(restart_ms, RESTART_MS);
    ASSERT_EQ(atomic_load(&sh->bad), 0);
    if (redeliver) {
        ASSERT_EQ(atomic_load(&sh->finished), STORM);
        ASSERT_EQ(atomic_load(&sh->errors), 0);
        ASSERT_EQ(atomic_load(&sh->runs), STORM + 1); /* the victim's task ran twice */
        ASSERT_EQ(st.task_redelivered, 1);
    } else {
        ASSERT_EQ(atomic_load(&sh->finished), STORM - 1);
        ASSERT_EQ(atomic_load(&sh->errors), 1);
        ASSERT_EQ(atomic_load(&sh->runs), STORM);
        ASSERT_EQ(st.task_failed, 1);
    }
    ASSERT_EQ(st.tasking_num, 0);
    stop(&h, fd);
}

TEST(task_storm_kill_mq1)
{
    storm_run(1, 0);
}

TEST(task_storm_kill_mq2)
{
    storm_run(2, 0);
}

TEST(task_storm_kill_mq3)
{
    storm_run(3, 0);
}

TEST(task_storm_kill_redeliver_mq2)
{
    storm_run(2, 1);
}

TEST(task_storm_kill_redeliver_mq3)
{
    storm_run(3, 1);
}

/* ---- 64 MiB each way ---- */

#define BIG (64u << 20)

static void big_on_task(swoop_server_t *srv, int64_t task_id, int src, const void *data, size_t len)
{
    int ok = len == BIG && check(data, len, 3);
    uint8_t *out = swoop_malloc(BIG);
    fill(out, BIG, ok ? 4 : 5);
    ASSERT_OK(swoop_server_task_finish(srv, out, BIG));
    swoop_free(out);
}

static void big_on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    atomic_store(&sh->big_ok, len == BIG && check(data, len, 4) ? 1 : -1);
}

static void big_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                           const void *data, size_t len)
{
    uint8_t *p = swoop_malloc(BIG);
    fill(p, BIG, 3);
    ASSERT_GT(swoop_server_task(srv, p, BIG, -1), 0);
    swoop_free(p);
}

static void big_run(int ipc)
{
    sh = srv_shared(sizeof(*sh));
    task_env_begin();
    memset(&cfg, 0, sizeof(cfg));
    cfg.ipc = ipc;
    cfg.log = 1;
    snprintf(sh->log, sizeof(sh->log), "%s/server.log", swoop_test_tmpdir());
    cfg.ev = (swoop_server_events_t){.on_worker_start = on_worker_start,
                                     .on_receive = big_on_receive,
                                     .on_task = big_on_task,
                                     .on_finish = big_on_finish};
    srv_handle_t h = start();
    int fd = cli_connect(h.port);
    cli_write(fd, "go", 2);
    WAIT_UNTIL(atomic_load(&sh->big_ok) != 0, 30000);
    ASSERT_EQ(atomic_load(&sh->big_ok), 1);
    stop(&h, fd);
    /* Above package_max_length (2 MiB by default): a warning each way, delivered anyway. */
    ASSERT_EQ(log_lines("67108864-byte task is above package_max_length"), 1);
    ASSERT_EQ(log_lines("67108864-byte result is above package_max_length"), 1);
}

TEST_TIMEOUT(task_payload_64m_mq1, 60)
{
    big_run(1);
}

TEST_TIMEOUT(task_payload_64m_mq2, 60)
{
    big_run(2);
}
