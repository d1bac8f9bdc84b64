/*
 * Issue 10, item 8: task_max_pending_bytes. One event worker posts 100,000
 * byte tasks (files of their own) while the only task worker is held in
 * on_task: with a 1 MiB cap exactly 10 are accepted, the 11th fails with
 * SWOOP_EAGAIN and a task above the cap with SWOOP_EMSGSIZE (one log line
 * per second). Once the task worker runs them, every task finishes and the
 * count is back to 0 (10 again are accepted). When the posting worker is
 * SIGKILLed with 10 pending, its successor gets the full cap (its share was
 * given back at the reap), and the dead worker's tasks, taken later,
 * subtract nothing (10 again afterwards). No task file is left.
 * PROCESS and BASE, task_ipc_mode 1 and 2.
 *
 * Item 9: a server whose whole process group is SIGKILLed with tasks
 * pending in task_ipc_mode 2 leaves its private SysV queue and its task
 * files; the next start (same task_tmpdir) removes both.
 */
#include <sys/wait.h>

#include "task_common.h"

#define TASK_SIZE 100000
#define CAP       (1 << 20)
#define FIT       (CAP / TASK_SIZE) /* 10 */

static struct cap_share {
    _Atomic int hold;    /* on_task waits while it is 1 */
    _Atomic int in_task; /* on_task calls begun */
    _Atomic int done;    /* on_task calls that returned */
    _Atomic int finished;
    _Atomic int worker_pid;
    char tmpdir[512];
} * cs;

static int ipc_mode = 1;
static int own_group; /* the server leads a process group of its own */

static void cap_on_task(swoop_server_t *srv, int64_t id, int src, const void *data, size_t len)
{
    atomic_fetch_add(&cs->in_task, 1);
    /* Held by the test, bounded: 20 s at most. */
    for (int i = 0; i < 20000 && atomic_load(&cs->hold); i++)
        usleep(1000);
    swoop_server_task_finish(srv, "r", 1);
    atomic_fetch_add(&cs->done, 1);
}

static void cap_on_finish(swoop_server_t *srv, int64_t id, const void *data, size_t len)
{
    atomic_fetch_add(&cs->finished, 1);
}

static void cap_on_start(swoop_server_t *srv, int id)
{
    if (!swoop_server_is_task_worker(srv))
        atomic_store(&cs->worker_pid, getpid());
}

/* "one": post one task; "fill": post until refused, reply "posted N rc R big B". */
static void cap_on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                           const void *data, size_t len)
{
    static char buf[CAP + 1];
    char out[128];
    int n;
    if (len >= 3 && memcmp(data, "one", 3) == 0) {
        int64_t id = swoop_server_task(srv, buf, TASK_SIZE, -1);
        n = snprintf(out, sizeof(out), "one %d\n", id > 0 ? 0 : (int)id);
    } else {
        int posted = 0;
        int64_t rc = 0;
        while (posted < 1000 && (rc = swoop_server_task(srv, buf, TASK_SIZE, -1)) > 0)
            posted++;
        int64_t big = swoop_server_task(srv, buf, CAP + 1, -1);
        n = snprintf(out, sizeof(out), "posted %d rc %d big %d\n", posted, (int)rc,
                     big > 0 ? 0 : (int)big);
    }
    swoop_server_send(srv, conn, out, (size_t)n);
}

static void cap_setup(swoop_server_t *srv, void *arg)
{
    if (own_group)
        ASSERT_OK(setpgid(0, 0));
    swoop_server_settings_t *s = swoop_server_settings(srv);
    s->worker_num = 1;
    s->reactor_num = 1;
    s->task_worker_num = 1;
    s->task_ipc_mode = ipc_mode;
    s->task_spill_size = 0; /* every task a file of its own: the files are counted */
    ASSERT_OK(swoop_server_set(srv, "task_max_pending_bytes", "1M"));
    ASSERT_OK(swoop_server_set(srv, "task_tmpdir", cs->tmpdir));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_worker_start = cap_on_start,
                                                            .on_receive = cap_on_receive,
                                                            .on_task = cap_on_task,
                                                            .on_finish = cap_on_finish}));
}

static void cmd(int c, const char *line, char *reply, size_t cap)
{
    cli_write(c, line, strlen(line));
    size_t n = 0;
    uint64_t deadline = swoop_test_now_ms() + 10000 * swoop_test_multiplier();
    while (n == 0 || reply[n - 1] != '\n') {
        ASSERT(swoop_test_now_ms() < deadline);
        ASSERT_LT(n, cap - 1);
        ASSERT_UEQ(cli_read_n(c, reply + n, 1, 10000), 1);
        n++;
    }
    reply[n] = '\0';
}

/* The task worker held in one task, then a fill: exactly FIT more accepted. */
static void hold_and_fill(int c, int *expect_in_task)
{
    char r[128];
    atomic_store(&cs->hold, 1);
    cmd(c, "one\n", r, sizeof(r));
    ASSERT_STR_EQ(r, "one 0\n");
    ++*expect_in_task;
    WAIT_UNTIL(atomic_load(&cs->in_task) == *expect_in_task, 5000);
    cmd(c, "fill\n", r, sizeof(r));
    char want[128];
    snprintf(want, sizeof(want), "posted %d rc %d big %d\n", FIT, SWOOP_EAGAIN, SWOOP_EMSGSIZE);
    ASSERT_STR_EQ(r, want);
    /* One file per pending task (the held one's was removed when it was taken). */
    ASSERT_EQ(task_files(cs->tmpdir), FIT);
}

static void run_cap(swoop_mode_t mode, int ipc)
{
    ipc_mode = ipc;
    cs = srv_shared(sizeof(*cs));
    snprintf(cs->tmpdir, sizeof(cs->tmpdir), "%s", task_env_begin());
    srv_handle_t h = srv_start(mode, cap_setup, NULL, 1);
    int c = cli_connect(h.port);
    int in_task = 0, total = 0;

    /* 1. The cap holds, exactly. */
    hold_and_fill(c, &in_task);
    total += 1 + FIT;
    atomic_store(&cs->hold, 0);
    WAIT_UNTIL(atomic_load(&cs->finished) == total, 10000);
    in_task = total;
    ASSERT_EQ(task_files(cs->tmpdir), 0);

    /* 2. Every taken task gave its bytes back: the full cap again. */
    hold_and_fill(c, &in_task);
    total += 1 + FIT;
    atomic_store(&cs->hold, 0);
    WAIT_UNTIL(atomic_load(&cs->finished) == total, 10000);
    in_task = total;

    if (mode == SWOOP_MODE_PROCESS) {
        /* 3. The poster dies with FIT pending: its successor gets the whole cap. */
        hold_and_fill(c, &in_task);
        pid_t old = atomic_load(&cs->worker_pid);
        ASSERT_EQ(kill(old, SIGKILL), 0);
        WAIT_UNTIL(atomic_load(&cs->worker_pid) != old, 5000);
        srv_wait_ready(h.pid, 1);
        char r[128], want[128];
        cmd(c, "fill\n", r, sizeof(r));
        snprintf(want, sizeof(want), "posted %d rc %d big %d\n", FIT, SWOOP_EAGAIN, SWOOP_EMSGSIZE);
        ASSERT_STR_EQ(r, want);
        /* The dead worker's FIT tasks run too (results to the successor's id). */
        atomic_store(&cs->hold, 0);
        WAIT_UNTIL(atomic_load(&cs->done) == total + 1 + 2 * FIT, 10000);
        WAIT_UNTIL(atomic_load(&cs->finished) >= total + FIT, 10000);
        in_task = total + 1 + 2 * FIT;
        total = in_task;
        /* 4. Their takes subtracted nothing from the new count: the full cap once more. */
        hold_and_fill(c, &in_task);
        atomic_store(&cs->hold, 0);
        WAIT_UNTIL(atomic_load(&cs->done) == in_task + FIT, 10000);
    }
    close(c);
    srv_stop(&h, 10000);
    task_env_end();
    munmap(cs, sizeof(*cs));
}

TEST(server_task_max_pending_bytes)
{
    run_cap(SWOOP_MODE_PROCESS, 1);
}

TEST(server_task_max_pending_bytes_mq2)
{
    run_cap(SWOOP_MODE_PROCESS, 2);
}

TEST(server_task_max_pending_bytes_base)
{
    run_cap(SWOOP_MODE_BASE, 1);
}

/* ---- leftovers of a SIGKILLed process group ---- */

/*
 * Files "swoop-task.<pid>.*" and "swoop-msq.<pid>.*" (the mark of its
 * private queue) in dir; *mq gets the id the mark names, if any.
 */
static int files_of(const char *dir, pid_t pid, int *mq)
{
    char pre[64], mark[64];
    int n = snprintf(pre, sizeof(pre), "swoop-task.%d.", (int)pid), count = 0;
    int m = snprintf(mark, sizeof(mark), "swoop-msq.%d.", (int)pid);
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, pre, (size_t)n) == 0)
            count++;
        if (strncmp(e->d_name, mark, (size_t)m) == 0) {
            count++;
            if (mq)
                ASSERT_EQ(sscanf(e->d_name + m, "%d.", mq), 1);
        }
    }
    closedir(d);
    return count;
}

/* Every swoop file in dir: task files and queue marks. */
static int all_files(const char *dir)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "swoop-", 6) == 0;
    closedir(d);
    return n;
}

TEST(server_task_leftovers_of_a_killed_group_are_swept)
{
    ipc_mode = 2;
    own_group = 1;
    cs = srv_shared(sizeof(*cs));
    snprintf(cs->tmpdir, sizeof(cs->tmpdir), "%s", task_env_begin());
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, cap_setup, NULL, 1);
    int c = cli_connect(h.port);
    int in_task = 0;
    hold_and_fill(c, &in_task); /* FIT task files, FIT messages in the queue */
    swoop_server_stats_t st;
    srv_stats(&h, &st);
    ASSERT_EQ(st.task_queue_num, FIT);
    int mq = -1;
    ASSERT_EQ(files_of(cs->tmpdir, h.pid, &mq), FIT + 1); /* and the queue's mark */
    ASSERT_GE(mq, 0);
    ASSERT(mq_exists(mq));

    /* The whole group at once: nobody cleans up. */
    ASSERT_EQ(kill(-h.pid, SIGKILL), 0);
    ASSERT_NE(swoop_test_wait_pid(h.pid, 5000), -1);
    WAIT_UNTIL(!swoop_test_pid_alive(st.manager_pid), 5000);
    WAIT_UNTIL(!swoop_test_pid_alive(st.workers[0].pid), 5000);
    close(c);
    ASSERT(mq_exists(mq));
    ASSERT_EQ(files_of(cs->tmpdir, h.pid, NULL), FIT + 1);

    /* The next start with the same task_tmpdir removes them. */
    own_group = 0;
    atomic_store(&cs->hold, 0);
    srv_handle_t h2 = srv_start(SWOOP_MODE_PROCESS, cap_setup, NULL, 1);
    ASSERT_EQ(files_of(cs->tmpdir, h.pid, NULL), 0);
    if (mq_exists(mq))
        FAIL("the dead server's queue %d is still there", mq);
    /* The new server works, in a queue of its own. */
    c = cli_connect(h2.port);
    char r[128];
    cmd(c, "one\n", r, sizeof(r));
    ASSERT_STR_EQ(r, "one 0\n");
    WAIT_UNTIL(atomic_load(&cs->finished) == 1, 5000);
    close(c);
    srv_stop(&h2, 10000);
    task_env_end();
    ASSERT_EQ(all_files(cs->tmpdir), 0); /* its own mark too */
    munmap(cs, sizeof(*cs));
}
