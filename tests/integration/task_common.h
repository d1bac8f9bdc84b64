/*
 * Helpers shared by the task tests (server_task.c, server_task_ipc.c): a
 * fresh task_tmpdir per test and the swoop-task files in it, byte patterns
 * to check payloads, and the SysV message queues a server makes
 * (task_ipc_mode 2, 3): found in /proc/sysvipc/msg as a queue that did not
 * exist before the test and that one of the server's processes sent to
 * (lspid), then checked to be gone after the stop. Other programs may make
 * and remove queues meanwhile: only ours are counted.
 */
#ifndef SWOOP_TEST_TASK_COMMON_H
#define SWOOP_TEST_TASK_COMMON_H

#include <dirent.h>
#include <sys/stat.h>

#include "server_common.h"

#define MQ_MAX 512

typedef struct mq_info_s {
    int key, id, lspid, lrpid;
    long qnum;
} mq_info_t;

/* Every queue in the system; returns how many. */
static inline int mq_list(mq_info_t *out, int cap)
{
    FILE *f = fopen("/proc/sysvipc/msg", "r");
    ASSERT_NOT_NULL(f);
    char line[512];
    int n = 0;
    if (fgets(line, sizeof(line), f) == NULL) { /* the column names */
        fclose(f);
        return 0;
    }
    while (n < cap && fgets(line, sizeof(line), f)) {
        mq_info_t q;
        unsigned long cbytes;
        int perms;
        if (sscanf(line, " %d %d %o %lu %ld %d %d", &q.key, &q.id, &perms, &cbytes, &q.qnum,
                   &q.lspid, &q.lrpid) == 7)
            out[n++] = q;
    }
    fclose(f);
    return n;
}

static inline int mq_exists(int id)
{
    static mq_info_t all[MQ_MAX];
    int n = mq_list(all, MQ_MAX);
    for (int i = 0; i < n; i++) {
        if (all[i].id == id)
            return 1;
    }
    return 0;
}

/* The queue with this key, or -1. */
static inline int mq_by_key(int key)
{
    static mq_info_t all[MQ_MAX];
    int n = mq_list(all, MQ_MAX);
    for (int i = 0; i < n; i++) {
        if (all[i].key == key)
            return all[i].id;
    }
    return -1;
}

/* What a task test saw: its tmpdir, the queues before the start, the server's queues. */
static struct task_env_s {
    char tmpdir[512];
    mq_info_t before[MQ_MAX];
    int nbefore;
    int ours[8];
    int nours;
} tenv;

/* A new task_tmpdir (returned) and the queues that exist before the server starts. */
static inline const char *task_env_begin(void)
{
    snprintf(tenv.tmpdir, sizeof(tenv.tmpdir), "%s/tasks", swoop_test_tmpdir());
    ASSERT_EQ(mkdir(tenv.tmpdir, 0700), 0);
    tenv.nbefore = mq_list(tenv.before, MQ_MAX);
    tenv.nours = 0;
    return tenv.tmpdir;
}

/*
 * While the server runs, after it posted a task: the number of new queues
 * a process of it sent to (its master, manager or event workers); they are
 * remembered for task_env_end.
 */
static inline int task_env_queues(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    int pids[2 + SWOOP_STATS_WORKERS_MAX], np = 0;
    pids[np++] = h->pid;
    pids[np++] = st.manager_pid;
    for (int i = 0; i < st.worker_num && i < SWOOP_STATS_WORKERS_MAX; i++)
        pids[np++] = st.workers[i].pid;
    static mq_info_t all[MQ_MAX];
    int n = mq_list(all, MQ_MAX);
    for (int i = 0; i < n; i++) {
        int old = 0, mine = 0;
        for (int k = 0; k < tenv.nbefore; k++)
            old |= tenv.before[k].id == all[i].id;
        for (int k = 0; k < np; k++)
            mine |= pids[k] > 0 && all[i].lspid == pids[k];
        for (int k = 0; k < tenv.nours; k++)
            mine &= tenv.ours[k] != all[i].id;
        if (!old && mine && tenv.nours < 8)
            tenv.ours[tenv.nours++] = all[i].id;
    }
    return tenv.nours;
}

static inline int task_files(const char *dir)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "swoop-task.", 11) == 0;
    closedir(d);
    return n;
}

/* After the stop: no swoop-task file in task_tmpdir, none of the server's queues left. */
static inline void task_env_end(void)
{
    ASSERT_EQ(task_files(tenv.tmpdir), 0);
    for (int k = 0; k < tenv.nours; k++) {
        if (mq_exists(tenv.ours[k]))
            FAIL("the server's message queue %d is left after the stop", tenv.ours[k]);
    }
}

/* ---- payload patterns ---- */

static inline uint8_t pattern(size_t i, size_t len, int salt)
{
    return (uint8_t)(i * 131u + len * 7u + (size_t)salt * 29u + (i >> 8));
}

static inline void fill(uint8_t *p, size_t len, int salt)
{
    for (size_t i = 0; i < len; i++)
        p[i] = pattern(i, len, salt);
}

static inline int check(const uint8_t *p, size_t len, int salt)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pattern(i, len, salt))
            return 0;
    }
    return 1;
}

#endif /* SWOOP_TEST_TASK_COMMON_H */
