/*
 * The worker side of the pool: the role main function the manager forks.
 * A worker runs on_worker_start, then its default event loop, which serves
 * its timers and fds, its messages and two signal watchers (SIGTERM: stop;
 * SIGRTMIN: reopen the log). Stopping (SIGTERM, or max_request reached)
 * stops taking messages, lets the current callback finish, runs
 * on_worker_stop and _exits. A worker busy in user code does not see
 * SIGTERM (it is read through signalfd) and is SIGKILLed by the manager
 * after max_wait_time.
 *
 * Messages: in pipe mode the loop watches the worker's end of its
 * socketpair. In msgqueue mode a receiver thread blocks in msgrcv(mtype =
 * id + 1) and posts each message to the loop (swoop_loop_post), so the loop
 * keeps serving timers and fds meanwhile; a message the thread takes after
 * the worker began to stop is put back for the replacement. Before it exits
 * the worker wakes the thread (a wake-up message of its own mtype), joins
 * it, and runs the deliveries still posted (they put their messages back
 * too), so no message the thread took is lost with the process.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <swoop/process.h>
#include <swoop/timer.h>

#include "base/internal.h"
#include "event/internal.h"
#include "proc/internal.h"
#include "proc/procfile.h"

#define MQ_WAKE_TRIES   4
#define MQ_JOIN_WAIT_MS 250

typedef struct mq_msg_s {
    swoop_pool_t *pool;
    size_t len;
    char data[];
} mq_msg_t;

static void worker_stop(swoop_pool_t *pool)
{
    if (pool->stopping)
        return;
    pool->stopping = 1;
    atomic_store(&pool->mq_stop, 1);
    if (swoop_io_is_active(&pool->msg_io))
        swoop_io_stop(&pool->msg_io);
    swoop_loop_stop(pool->loop);
}

static void on_term(swoop_signal_t *sig, int signo)
{
    swoop_pool_t *pool = sig->data;
    swoop_log(SWOOP_LOG_DEBUG, 0, "worker got SIGTERM: stopping");
    worker_stop(pool);
}

static void on_reopen(swoop_signal_t *sig, int signo)
{
    int rc = swoop_log_reopen();
    if (rc < 0)
        swoop_log(SWOOP_LOG_ERROR, rc, "reopening the log file failed");
    else
        swoop_log(SWOOP_LOG_INFO, 0, "log file reopened");
}

static void on_pipe_readable(swoop_io_t *io, unsigned events)
{
    swoop_pool_t *pool = io->data;
    /* Bounded: yield to timers and signals after a batch. */
    for (int i = 0; i < 64 && !pool->stopping; i++) {
        ssize_t n = swoop__channel_recv(swoop_io_fd(io), pool->msg_buf, pool->msg_cap);
        if (n == SWOOP_EAGAIN)
            return;
        if (n == SWOOP_EMSGSIZE)
            continue;
        if (n < 0) {
            swoop_io_stop(io);
            return;
        }
        if (pool->events.on_message)
            pool->events.on_message(pool, pool->worker_id, pool->msg_buf, (size_t)n);
    }
}

/* ---- msgqueue mode ---- */

/* Gives a message back to the queue for the slot's next process; a drop is logged. */
static void mq_requeue(swoop_pool_t *pool, const void *data, size_t len)
{
    int rc = swoop__msgqueue_send(&pool->mq, (long)pool->worker_id + 1, data, len, 1);
    if (rc < 0)
        swoop_log(SWOOP_LOG_WARNING, rc,
                  "worker %d stopping: a %zu-byte message could not be re-queued and is lost",
                  pool->worker_id, len);
}

static void mq_deliver(swoop_loop_t *loop, void *arg)
{
    mq_msg_t *m = arg;
    swoop_pool_t *pool = m->pool;
    if (pool->stopping) {
        /* Not ours to handle any more: give it back to the slot's next process. */
        mq_requeue(pool, m->data, m->len);
    } else if (pool->events.on_message) {
        pool->events.on_message(pool, pool->worker_id, m->data, m->len);
    }
    swoop_free(m);
}

static void *mq_thread_main(void *arg)
{
    swoop_pool_t *pool = arg;
    size_t cap = pool->mq.msgmax + sizeof(long);
    char *buf = swoop_malloc(cap);
    long mtype = (long)pool->worker_id + 1;
    while (!atomic_load(&pool->mq_stop)) {
        const void *payload;
        ssize_t n = swoop__msgqueue_recv(&pool->mq, mtype, buf, cap, &payload, 0);
        if (n == SWOOP_ECANCELED && atomic_load(&pool->mq_stop))
            break; /* our own wake-up (a successor's is just skipped) */
        if (n == SWOOP_EINTR || n == SWOOP_EPROTO || n == SWOOP_ECANCELED)
            continue;
        if (n < 0)
            break; /* queue removed: the pool is going away */
        if (atomic_load(&pool->mq_stop)) {
            mq_requeue(pool, payload, (size_t)n);
            break;
        }
        mq_msg_t *m = swoop_malloc(sizeof(*m) + (size_t)n);
        m->pool = pool;
        m->len = (size_t)n;
        memcpy(m->data, payload, (size_t)n);
        if (swoop_loop_post(pool->loop, mq_deliver, m) < 0) {
            mq_requeue(pool, m->data, m->len);
            swoop_free(m);
        }
    }
    swoop_free(buf);
    return NULL;
}

/* Stopping: ends the receiver thread and gives back every message it took. */
static void mq_finish(swoop_pool_t *pool)
{
    if (!pool->mq_thread_started)
        return;
    atomic_store(&pool->mq_stop, 1);
    int err = ETIMEDOUT;
    /* A successor of our id may take a wake-up first: then send another. */
    for (int tries = 0; tries < MQ_WAKE_TRIES && err == ETIMEDOUT; tries++) {
        /* Full queue: the thread gets a real message instead, puts it back and ends. */
        int rc = swoop__msgqueue_send_wake(&pool->mq, (long)pool->worker_id + 1);
        if (rc < 0 && rc != SWOOP_EAGAIN)
            swoop_log(SWOOP_LOG_WARNING, rc, "worker %d: cannot wake its queue receiver",
                      pool->worker_id);
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_nsec += MQ_JOIN_WAIT_MS * 1000000L;
        deadline.tv_sec += deadline.tv_nsec / 1000000000L;
        deadline.tv_nsec %= 1000000000L;
        err = pthread_timedjoin_np(pool->mq_thread, NULL, &deadline);
    }
    if (err == 0)
        pool->mq_thread_started = 0;
    else
        swoop_log(SWOOP_LOG_WARNING, err,
                  "worker %d: queue receiver not joined; exiting without it", pool->worker_id);
    swoop__loop_run_posts(pool->loop); /* deliveries not run yet: back to the queue */
}

/* ---- max_request ---- */

static int64_t pick_limit(const swoop_pool_settings_t *s)
{
    return swoop__request_limit(s->max_request, s->max_request_grace);
}

int64_t swoop_pool_count_request(swoop_pool_t *pool)
{
    if (pool == NULL || pool->worker_id < 0)
        return SWOOP_ESTATE;
    int64_t n = ++pool->requests;
    swoop_proc_stat_t *st = &pool->shared->workers[pool->worker_id];
    if (atomic_load(&st->pid) == getpid())
        atomic_store(&st->requests, (uint64_t)n);
    if (pool->request_limit > 0 && n >= pool->request_limit && !pool->stopping) {
        swoop_log(SWOOP_LOG_INFO, 0, "worker reached max_request (%lld): asking for a replacement",
                  (long long)pool->request_limit);
        atomic_store(&st->retire_pid, getpid());
        pid_t mpid = (pid_t)atomic_load(&pool->shared->manager_pid);
        if (mpid > 0 && kill(mpid, SIGIO) < 0)
            swoop_log(SWOOP_LOG_ERROR, errno, "kill(%d, SIGIO) of the manager failed", (int)mpid);
        worker_stop(pool);
    }
    return n;
}

/* ---- main ---- */

static int worker_setup(swoop_pool_t *pool, int id)
{
    int rc;
    pool->loop = swoop_loop_default();
    if (pool->loop == NULL)
        return SWOOP_ENOMEM;
    /* Ctrl-C reaches the whole process group: the manager stops us in order. */
    signal(SIGINT, SIG_IGN);
    pool->sig_term.data = pool;
    pool->sig_reopen.data = pool;
    if ((rc = swoop_signal_init(pool->loop, &pool->sig_term, on_term)) < 0 ||
        (rc = swoop_signal_start(&pool->sig_term, SIGTERM)) < 0 ||
        (rc = swoop_signal_init(pool->loop, &pool->sig_reopen, on_reopen)) < 0 ||
        (rc = swoop_signal_start(&pool->sig_reopen, SIGRTMIN)) < 0) {
        swoop_log(SWOOP_LOG_ERROR, rc, "worker %d: cannot watch its signals", id);
        return rc;
    }
    if (pool->settings.ipc_mode == SWOOP_POOL_IPC_PIPE) {
        /* Keep every write end (workers may message each other), only our own read end. */
        for (int i = 0; i < pool->worker_num; i++) {
            if (i != id)
                swoop__channel_close_end(&pool->channels[i], 1);
        }
        pool->msg_cap = SWOOP_POOL_PIPE_MSG_MAX;
        pool->msg_buf = swoop_malloc(pool->msg_cap);
        pool->msg_io.data = pool;
        swoop_io_init(pool->loop, &pool->msg_io, pool->channels[id].fds[1], on_pipe_readable);
        if ((rc = swoop_io_start(&pool->msg_io, SWOOP_READABLE)) < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "worker %d: cannot watch its channel", id);
            return rc;
        }
    } else if (pool->settings.ipc_mode == SWOOP_POOL_IPC_MSGQUEUE) {
        /* Signals are blocked by now (signal watchers), so the thread inherits the block. */
        int err = pthread_create(&pool->mq_thread, NULL, mq_thread_main, pool);
        if (err != 0) {
            swoop_log(SWOOP_LOG_ERROR, err, "worker %d: pthread_create() failed", id);
            return -err;
        }
        pool->mq_thread_started = 1;
    }
    return 0;
}

int swoop__pool_worker_main(void *data, int id)
{
    swoop_pool_t *pool = data;
    pool->worker_id = id;
    pool->is_manager = 0;
    pool->running = 0;
    pool->stopping = 0;
    pool->requests = 0;
    pool->request_limit = pick_limit(&pool->settings);
    /* Published by the child too: the manager may store them only after we already run. */
    atomic_store(&pool->shared->workers[id].pid, getpid());
    atomic_store(&pool->shared->workers[id].request_limit, pool->request_limit);
    if (worker_setup(pool, id) < 0)
        return 1;

    if (pool->events.on_worker_start)
        pool->events.on_worker_start(pool, id);
    if (!pool->stopping)
        swoop_loop_run(pool->loop);
    worker_stop(pool);

    if (pool->events.on_worker_stop)
        pool->events.on_worker_stop(pool, id);
    mq_finish(pool);
    /*
     * _exit right away: the msgqueue thread may sit in msgrcv, and nothing of
     * the manager's state may be torn down from here (atexit handlers and
     * destructors belong to the manager's process image).
     */
    return 0;
}
