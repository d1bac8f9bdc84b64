/*
 * TEST_LABELS: tsan
 * (msgqueue mode runs a receiver thread in each worker)
 *
 * Pool messages: every message sent from the manager (and from one worker to
 * another) arrives whole at the addressed worker, in pipe mode (socketpair
 * per worker) and in msgqueue mode (SysV queue, mtype = id + 1); oversized
 * messages are refused, garbage in the queue is dropped, and the private
 * queue is removed at shutdown.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <unistd.h>

#include <swoop/error.h>
#include <swoop/process.h>

#include "pool_common.h"
#include "proc/internal.h"

#define NMSG 50

struct shared {
    _Atomic int got[4];
    _Atomic int bad[4];
    _Atomic int sibling;
    _Atomic int big_ok;
    _Atomic int oversize_rc;
    _Atomic int max_ok_rc;
    _Atomic int msqid;
    _Atomic int send_errors;
};

static struct shared *sh;

static void on_message(swoop_pool_t *pool, int id, const void *data, size_t len)
{
    char want[32];
    const char *s = data;
    if (len == 5 && memcmp(s, "hello", 5) == 0) {
        atomic_fetch_add(&sh->sibling, 1);
        return;
    }
    if (len > 1000) {
        for (size_t i = 0; i < len; i++) {
            if (s[i] != (char)(i * 7)) {
                atomic_fetch_add(&sh->bad[id], 1);
                return;
            }
        }
        atomic_fetch_add(&sh->big_ok, 1);
        return;
    }
    int seq = atomic_load(&sh->got[id]);
    int n = snprintf(want, sizeof(want), "w%d:%d", id, seq);
    if ((size_t)n != len || memcmp(want, s, len) != 0)
        atomic_fetch_add(&sh->bad[id], 1);
    atomic_fetch_add(&sh->got[id], 1);
}

static void on_worker_start(swoop_pool_t *pool, int id)
{
    if (id == 0)
        ASSERT_OK(swoop_pool_send(pool, 1, "hello", 5)); /* worker to worker */
}

static void on_start(swoop_pool_t *pool)
{
    if (pool->settings.ipc_mode == SWOOP_POOL_IPC_MSGQUEUE) {
        atomic_store(&sh->msqid, pool->mq.id);
        /* Garbage from a stranger, addressed to worker 0: dropped, never fatal. */
        struct {
            long mtype;
            char text[5];
        } junk = {1, "junk"};
        ASSERT_EQ(msgsnd(pool->mq.id, &junk, sizeof(junk.text), 0), 0);
    }
    for (int seq = 0; seq < NMSG; seq++) {
        for (int id = 0; id < 3; id++) {
            char msg[32];
            int n = snprintf(msg, sizeof(msg), "w%d:%d", id, seq);
            if (swoop_pool_send(pool, id, msg, (size_t)n) < 0)
                atomic_fetch_add(&sh->send_errors, 1);
        }
    }
    size_t max = pool->settings.ipc_mode == SWOOP_POOL_IPC_PIPE
                     ? SWOOP_POOL_PIPE_MSG_MAX
                     : swoop__msgqueue_payload_max(&pool->mq);
    char *big = malloc(max + 1);
    for (size_t i = 0; i <= max; i++)
        big[i] = (char)(i * 7);
    atomic_store(&sh->oversize_rc, swoop_pool_send(pool, 2, big, max + 1));
    atomic_store(&sh->max_ok_rc, swoop_pool_send(pool, 2, big, max));
    free(big);
}

static int queue_listed(int msqid)
{
    FILE *f = fopen("/proc/sysvipc/msg", "r");
    ASSERT_NOT_NULL(f);
    char line[512];
    int found = 0;
    ASSERT_NOT_NULL(fgets(line, sizeof(line), f)); /* header */
    while (fgets(line, sizeof(line), f)) {
        int key, id;
        if (sscanf(line, "%d %d", &key, &id) == 2 && id == msqid)
            found = 1;
    }
    fclose(f);
    return found;
}

static void run(const char *mode)
{
    sh = pool_test_shared(sizeof(*sh));
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 3));
    ASSERT_OK(swoop_pool_set(pool, "ipc_mode", mode));
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_start = on_start,
                                                         .on_worker_start = on_worker_start,
                                                         .on_message = on_message}));
    ASSERT_EQ(swoop_pool_send(pool, 0, "x", 1), SWOOP_ESTATE); /* not started */
    pid_t manager = pool_test_start(pool);
    for (int id = 0; id < 3; id++)
        WAIT_UNTIL(atomic_load(&sh->got[id]) == NMSG, 3000);
    WAIT_UNTIL(atomic_load(&sh->sibling) == 1, 2000);
    WAIT_UNTIL(atomic_load(&sh->big_ok) == 1, 2000);
    ASSERT_EQ(atomic_load(&sh->send_errors), 0);
    ASSERT_EQ(atomic_load(&sh->oversize_rc), SWOOP_EMSGSIZE);
    ASSERT_EQ(atomic_load(&sh->max_ok_rc), 0);
    for (int id = 0; id < 3; id++)
        ASSERT_EQ(atomic_load(&sh->bad[id]), 0);
    int msqid = atomic_load(&sh->msqid);
    if (strcmp(mode, "msgqueue") == 0)
        ASSERT(queue_listed(msqid));
    pool_test_stop(manager, 5000);
    if (strcmp(mode, "msgqueue") == 0) {
        ASSERT(!queue_listed(msqid));
        printf("# msgqueue %d listed while running, gone after shutdown\n", msqid);
    }
    swoop_pool_free(pool);
}

TEST(pool_messages_pipe)
{
    run("pipe");
}

TEST(pool_messages_msgqueue)
{
    run("msgqueue");
}

/*
 * msgqueue mode, worker 1 retires after every 25 messages (max_request)
 * while worker 0 floods it with 1,000: its receiver thread keeps taking
 * messages while the worker stops. Each one is handled exactly once: what
 * the thread took, or posted to a loop that stopped, goes back to the queue
 * for the successor instead of dying with the process.
 */
#define FLOOD       1000
#define FLOOD_LIMIT 25

struct flood {
    _Atomic int seen[FLOOD];
    _Atomic int handled, producer, send_failed, starts1;
};

static struct flood *fl;

static void flood_on_message(swoop_pool_t *pool, int id, const void *data, size_t len)
{
    int seq;
    if (id != 1 || len != sizeof(seq)) {
        atomic_fetch_add(&fl->send_failed, 1);
        return;
    }
    memcpy(&seq, data, sizeof(seq));
    if (seq >= 0 && seq < FLOOD)
        atomic_fetch_add(&fl->seen[seq], 1);
    atomic_fetch_add(&fl->handled, 1);
    swoop_pool_count_request(pool);
}

static void flood_on_worker_start(swoop_pool_t *pool, int id)
{
    if (id == 1)
        atomic_fetch_add(&fl->starts1, 1);
    int none = 0;
    if (id != 0 || !atomic_compare_exchange_strong(&fl->producer, &none, 1))
        return;
    for (int seq = 0; seq < FLOOD; seq++) {
        int rc;
        int spins = 0;
        while ((rc = swoop_pool_send(pool, 1, &seq, sizeof(seq))) == SWOOP_EAGAIN &&
               spins < 50000) {
            usleep(100); /* the queue is full: wait for the consumer */
            spins++;
        }
        if (rc < 0)
            atomic_fetch_add(&fl->send_failed, 1);
    }
}

TEST_TIMEOUT(pool_msgqueue_retire_loses_nothing, 60)
{
    fl = pool_test_shared(sizeof(*fl));
    swoop_pool_t *pool;
    ASSERT_OK(swoop_pool_new(&pool, 2));
    ASSERT_OK(swoop_pool_set(pool, "ipc_mode", "msgqueue"));
    ASSERT_OK(swoop_pool_set(pool, "max_request", "25"));
    ASSERT_OK(swoop_pool_set(pool, "max_request_grace", "0"));
    ASSERT_OK(swoop_pool_on(pool, &(swoop_pool_events_t){.on_worker_start = flood_on_worker_start,
                                                         .on_message = flood_on_message}));
    pid_t manager = pool_test_start(pool);
    WAIT_UNTIL(atomic_load(&fl->handled) >= FLOOD, 30000);
    pool_test_stop(manager, 5000);
    ASSERT_EQ(atomic_load(&fl->send_failed), 0);
    int missing = 0, twice = 0;
    for (int seq = 0; seq < FLOOD; seq++) {
        missing += atomic_load(&fl->seen[seq]) == 0;
        twice += atomic_load(&fl->seen[seq]) > 1;
    }
    printf("# %d messages, worker 1 started %d times: %d missing, %d twice\n", FLOOD,
           atomic_load(&fl->starts1), missing, twice);
    ASSERT_EQ(missing, 0);
    ASSERT_EQ(twice, 0);
    ASSERT_EQ(atomic_load(&fl->handled), FLOOD);
    ASSERT_GE(atomic_load(&fl->starts1), FLOOD / FLOOD_LIMIT);
    swoop_pool_free(pool);
}
