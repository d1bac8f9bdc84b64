/*
 * How a TASK message reaches a task worker (DESIGN.md section 2,
 * task_ipc_mode):
 *   1  a datagram socketpair per task worker, made before fork and written
 *      by every event worker; a full socket queues in the writer (ipc/msg.c)
 *      and is flushed when it turns writable.
 *   2  one SysV message queue, each message addressed to a task worker
 *      (mtype = task worker + 1);
 *   3  the same queue, mtype 1, taken by whichever task worker asks first.
 * In the queue a message is the 32-byte header (msg_id TASK_MAGIC) and the
 * payload: anything else there (another program's message, a truncated one)
 * is logged and skipped. An event worker never blocks in msgsnd: what the
 * queue does not take waits in the worker, in order, and a 1 ms timer
 * retries (a queue cannot be polled). message_queue_key 0 makes a private
 * queue, removed at shutdown; a fixed key keeps the queue, and the tasks in
 * it, across restarts (`ipcs -q`).
 *
 * A task worker blocks in msgrcv with its signals open only there. A
 * signal that lands after the last check but before msgrcv sleeps would be
 * lost in a plain loop; here the handlers call task_queue_interrupt, which
 * jumps out of the wait (siglongjmp) while one is under way, keeping a
 * message msgrcv had already copied.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/msg.h>

#include <swoop/timer.h>

#include "event/internal.h"
#include "task/internal.h"

#define TASK_CHANNEL_BUF (1024 * 1024)
#define QUEUE_BYTES      (4 * 1024 * 1024) /* msg_qbytes asked for a queue we use */
#define RETRY_MS         1

typedef struct mq_buf_s {
    long mtype;
    char text[SWOOP_IPC_MAX];
} mq_buf_t;

static_assert(offsetof(mq_buf_t, text) == sizeof(long), "msgsnd's layout");
static_assert(offsetof(task_pending_t, msg) == offsetof(task_pending_t, mtype) + sizeof(long),
              "a pending message keeps its mtype right before its text");

static mq_buf_t recv_buf;
static sigjmp_buf recv_jmp;
static volatile sig_atomic_t recv_waiting;

static int queued_mode(const swoop_task_t *tk)
{
    return tk->mode == 2 || tk->mode == 3;
}

static long mtype_of(const swoop_task_t *tk, int t)
{
    return tk->mode == 2 ? (long)t + 1 : 1;
}

/* ---- start and stop ---- */

static int queue_open(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    int rc = swoop__msgqueue_open(&tk->mq, srv->settings.message_queue_key);
    if (rc < 0)
        return rc;
    /* The default msgmnb (16 KiB) holds two full messages; ask for more (root may exceed it). */
    struct msqid_ds ds;
    if (msgctl(tk->mq.id, IPC_STAT, &ds) == 0 && ds.msg_qbytes < QUEUE_BYTES) {
        ds.msg_qbytes = QUEUE_BYTES;
        if (msgctl(tk->mq.id, IPC_SET, &ds) < 0)
            swoop_log(SWOOP_LOG_INFO, errno,
                      "task queue %d keeps its default size (kernel.msgmnb): tasks queue in "
                      "the posting workers while it is full",
                      tk->mq.id);
    }
    if (tk->mq.msgmax < sizeof(swoop_ipc_head_t) + 1024) {
        swoop_log(SWOOP_LOG_ERROR, 0, "kernel.msgmax %zu is too small for the task queue",
                  tk->mq.msgmax);
        swoop__msgqueue_remove(&tk->mq);
        return SWOOP_EINVAL;
    }
    if (tk->mq.msgmax - sizeof(swoop_ipc_head_t) < tk->inline_max)
        tk->inline_max = tk->mq.msgmax - sizeof(swoop_ipc_head_t);
    /* Found by the next start if this server is killed before it removes the queue. */
    if (tk->mq.owned)
        task_queue_mark(srv, tk->mq.id);
    return 0;
}

int task_queue_open(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    tk->mq.id = -1;
    swoop_queue_init(&tk->pending);
    if (queued_mode(tk))
        return queue_open(srv);
    tk->chans = swoop_calloc((size_t)tk->num, sizeof(*tk->chans));
    for (int t = 0; t < tk->num; t++)
        tk->chans[t].fds[0] = tk->chans[t].fds[1] = -1;
    for (int t = 0; t < tk->num; t++) {
        int rc = swoop__channel_open(&tk->chans[t], TASK_CHANNEL_BUF);
        if (rc < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "socketpair() of task worker %d failed", t);
            return rc;
        }
    }
    return 0;
}

void task_queue_close(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk->chans) {
        for (int t = 0; t < tk->num; t++)
            swoop__channel_close(&tk->chans[t]);
        swoop_free(tk->chans);
        tk->chans = NULL;
    }
    if (tk->retry_timer > 0)
        swoop_timer_clear(tk->retry_timer);
    tk->retry_timer = 0;
    if (tk->npending)
        swoop_log(SWOOP_LOG_WARNING, 0, "%zu task(s) never reached the queue: dropped",
                  tk->npending);
    if (tk->pending.next) /* the queue was opened */
        task_queue_drop_unsent(srv);
    swoop_free(tk->outs);
    tk->outs = NULL;
    swoop_free(tk->out_io);
    tk->out_io = NULL;
    if (tk->mq.id >= 0 && tk->owner == getpid())
        swoop__msgqueue_remove(&tk->mq); /* only a private one */
    tk->mq.id = -1;
}

void task_queue_child(swoop_server_t *srv, int t)
{
    swoop_task_t *tk = srv->task;
    for (int i = 0; tk->chans && i < tk->num; i++) {
        swoop__channel_close_end(&tk->chans[i], 0);
        if (i != t)
            swoop__channel_close_end(&tk->chans[i], 1);
    }
}

/* ---- event worker: posting ---- */

static void out_writable(swoop_io_t *io, unsigned events)
{
    swoop_server_t *srv = io->data;
    swoop_task_t *tk = srv->task;
    int t = (int)(io - tk->out_io);
    if (swoop__ipc_flush(&tk->outs[t]) != 1)
        swoop_io_stop(io);
}

static int outs_init(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    swoop_loop_t *loop = swoop_loop_default();
    if (loop == NULL)
        return SWOOP_ENOMEM;
    tk->outs = swoop_calloc((size_t)tk->num, sizeof(*tk->outs));
    tk->out_io = swoop_calloc((size_t)tk->num, sizeof(*tk->out_io));
    for (int t = 0; t < tk->num; t++) {
        swoop__ipc_out_init(&tk->outs[t], tk->chans[t].fds[0]);
        tk->out_io[t].data = srv;
        swoop_io_init(loop, &tk->out_io[t], tk->chans[t].fds[0], out_writable);
    }
    return 0;
}

int task_queue_idle(swoop_server_t *srv, int t)
{
    swoop_task_t *tk = srv->task;
    task_slot_t *s = task_slot(tk, t);
    if (atomic_load_explicit(&s->busy, memory_order_relaxed))
        return 0;
    if (tk->mode == 2)
        return atomic_load_explicit(&s->queued, memory_order_relaxed) <= 0;
    /*
     * Every event worker writes through the same socket (one open file), so
     * SIOCOUTQ counts what all of them queued, exactly.
     */
    if (tk->outs && swoop__ipc_pending(&tk->outs[t]))
        return 0;
    int queued = 0;
    return ioctl(tk->chans[t].fds[0], SIOCOUTQ, &queued) == 0 && queued == 0;
}

/* Sends one message to the queue without waiting: 0, SWOOP_EAGAIN, or an error (logged). */
static int mq_send(swoop_task_t *tk, long mtype, const void *text, size_t len)
{
    /* msgsnd wants the mtype right before the text: every caller leaves a long there. */
    char *m = (char *)text - sizeof(long);
    memcpy(m, &mtype, sizeof(mtype));
    for (;;) {
        if (msgsnd(tk->mq.id, m, len, IPC_NOWAIT) == 0)
            return 0;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN)
            return SWOOP_EAGAIN;
        swoop_log(SWOOP_LOG_ERROR, err, "msgsnd(task queue %d, %zu bytes) failed", tk->mq.id, len);
        return -err;
    }
}

/* Sends one waiting message: 0, SWOOP_EAGAIN, or an error (logged). */
static int pending_send(swoop_task_t *tk, task_pending_t *p)
{
    if (queued_mode(tk))
        return mq_send(tk, p->mtype, p->msg, p->len);
    return swoop__channel_send(tk->chans[p->t].fds[0], p->msg, p->len);
}

static void retry_tick(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    if (task_queue_flush(srv) == 0) {
        swoop_timer_clear(id);
        srv->task->retry_timer = 0;
    }
}

int task_queue_flush(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL)
        return 0;
    int left = 0;
    for (int t = 0; tk->outs && t < tk->num; t++)
        left |= swoop__ipc_pending(&tk->outs[t]) && swoop__ipc_flush(&tk->outs[t]) == 1;
    while (!swoop_queue_empty(&tk->pending)) {
        task_pending_t *p = swoop_queue_data(swoop_queue_head(&tk->pending), task_pending_t, node);
        int rc = pending_send(tk, p);
        if (rc == SWOOP_EAGAIN)
            return 1;
        swoop_queue_remove(&p->node);
        tk->npending--;
        if (rc < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "a task for task worker %d is lost", p->t);
            task_payload_drop(tk, p->msg, p->len);
        }
        swoop_free(p);
    }
    return left;
}

int task_queue_pollfds(swoop_server_t *srv, struct pollfd *pf, int cap)
{
    swoop_task_t *tk = srv->task;
    int n = 0;
    for (int t = 0; tk->outs && t < tk->num && n < cap; t++)
        if (swoop__ipc_pending(&tk->outs[t]))
            pf[n++] = (struct pollfd){.fd = tk->outs[t].fd, .events = POLLOUT};
    return n;
}

/*
 * Sends `p` (filled but for the list fields) unless older ones wait, else
 * queues it behind them with the retry timer running. Takes `p` in every
 * case: 0 sent, 1 queued, or an error (logged; p freed, its payload kept).
 */
static int pending_post(swoop_server_t *srv, task_pending_t *p)
{
    swoop_task_t *tk = srv->task;
    if (tk->npending == 0) {
        int rc = pending_send(tk, p);
        if (rc != SWOOP_EAGAIN) {
            swoop_free(p);
            return rc;
        }
    }
    if (tk->retry_timer <= 0) {
        int64_t id = swoop__timer_tick_lib(RETRY_MS, retry_tick, srv);
        if (id < 0) {
            swoop_log(SWOOP_LOG_ERROR, (int)id, "task queue retry timer failed");
            swoop_free(p);
            return (int)id;
        }
        tk->retry_timer = id;
    }
    /* Keep the order: behind what already waits. */
    swoop_queue_insert_tail(&tk->pending, &p->node);
    tk->npending++;
    return 1;
}

static task_pending_t *pending_new(swoop_task_t *tk, int t, size_t len)
{
    task_pending_t *p = swoop_malloc(sizeof(*p) + len);
    p->t = t;
    p->len = len;
    p->mtype = mtype_of(tk, t); /* right before msg: mq_send writes it there again */
    return p;
}

int task_queue_post(swoop_server_t *srv, int t, const swoop_ipc_head_t *h, const task_out_t *o)
{
    swoop_task_t *tk = srv->task;
    int rc;
    if (!queued_mode(tk)) {
        if (tk->outs == NULL && (rc = outs_init(srv)) < 0)
            return rc;
        rc = swoop__ipc_send2(&tk->outs[t], h, o->p1, o->l1, o->p2, o->l2);
        if (rc == 1 && !(tk->out_io[t]._events & SWOOP_WRITABLE))
            swoop_io_start(&tk->out_io[t], SWOOP_WRITABLE);
        return rc;
    }
    size_t len = sizeof(*h) + o->l1 + o->l2;
    task_pending_t *p = pending_new(tk, t, len);
    swoop_ipc_head_t hh = *h;
    hh.len = (uint32_t)(o->l1 + o->l2);
    memcpy(p->msg, &hh, sizeof(hh));
    if (o->l1)
        memcpy(p->msg + sizeof(hh), o->p1, o->l1);
    if (o->l2)
        memcpy(p->msg + sizeof(hh) + o->l1, o->p2, o->l2);
    return pending_post(srv, p);
}

int task_queue_resend(swoop_server_t *srv, int t, const void *msg, size_t len)
{
    swoop_task_t *tk = srv->task;
    if (len > TASK_MSG_MAX)
        return SWOOP_EMSGSIZE;
    task_pending_t *p = pending_new(tk, t, len);
    memcpy(p->msg, msg, len);
    return pending_post(srv, p);
}

int64_t task_queue_unsent(swoop_task_t *tk)
{
    int64_t n = (int64_t)tk->npending;
    for (int t = 0; tk->outs && t < tk->num; t++)
        n += (int64_t)tk->outs[t].queued_count;
    return n;
}

static void drop_dgram(const void *dgram, size_t len, void *arg)
{
    task_payload_drop(arg, dgram, len);
}

void task_queue_drop_unsent(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL)
        return;
    for (int t = 0; tk->outs && t < tk->num; t++) {
        swoop__ipc_out_foreach(&tk->outs[t], drop_dgram, tk);
        swoop__ipc_out_free(&tk->outs[t]);
    }
    while (!swoop_queue_empty(&tk->pending)) {
        task_pending_t *p = swoop_queue_data(swoop_queue_head(&tk->pending), task_pending_t, node);
        swoop_queue_remove(&p->node);
        task_payload_drop(tk, p->msg, p->len);
        swoop_free(p);
    }
    tk->npending = 0;
}

/* ---- task worker: receiving ---- */

void task_queue_interrupt(void)
{
    if (recv_waiting) {
        recv_waiting = 0;
        siglongjmp(recv_jmp, 1);
    }
}

static ssize_t mq_recv(swoop_task_t *tk, int t, char *buf, size_t cap, const sigset_t *waitmask)
{
    size_t room = cap < sizeof(recv_buf.text) ? cap : sizeof(recv_buf.text);
    ssize_t n = -1;
    int err = 0;
    recv_buf.mtype = 0;
    memset(recv_buf.text, 0, sizeof(swoop_ipc_head_t));
    if (sigsetjmp(recv_jmp, 1) == 0) {
        sigset_t held;
        recv_waiting = 1;
        sigprocmask(SIG_SETMASK, waitmask, &held);
        n = msgrcv(tk->mq.id, &recv_buf, room, tk->mode == 2 ? (long)t + 1 : 0, MSG_NOERROR);
        err = errno;
        recv_waiting = 0;
        sigprocmask(SIG_SETMASK, &held, NULL);
    } else {
        /* A handler jumped here (the mask is restored). msgrcv may have copied a message first. */
        if (recv_buf.mtype == 0)
            return SWOOP_EINTR;
        swoop_ipc_head_t h;
        memcpy(&h, recv_buf.text, sizeof(h));
        n = (ssize_t)(sizeof(h) + (h.len < room - sizeof(h) ? h.len : room - sizeof(h)));
    }
    if (n < 0) {
        if (err == EINTR)
            return SWOOP_EINTR;
        swoop_log(SWOOP_LOG_ERROR, err, "msgrcv(task queue %d) failed", tk->mq.id);
        return -err;
    }
    swoop_ipc_head_t h;
    memcpy(&h, recv_buf.text, sizeof(h) <= (size_t)n ? sizeof(h) : (size_t)n);
    if ((size_t)n < sizeof(h) || h.msg_id != TASK_MAGIC || h.len != (size_t)n - sizeof(h)) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "task queue %d: a foreign, malformed or truncated message (%zd bytes, mtype "
                  "%ld) skipped",
                  tk->mq.id, n, recv_buf.mtype);
        return SWOOP_EPROTO;
    }
    memcpy(buf, recv_buf.text, (size_t)n);
    return n;
}

ssize_t task_queue_recv(swoop_server_t *srv, int t, char *buf, size_t cap, const sigset_t *waitmask)
{
    swoop_task_t *tk = srv->task;
    if (queued_mode(tk))
        return mq_recv(tk, t, buf, cap, waitmask);
    int fd = tk->chans[t].fds[1];
    for (;;) {
        ssize_t n = swoop__channel_recv(fd, buf, cap);
        if (n != SWOOP_EAGAIN)
            return n;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (ppoll(&pf, 1, NULL, waitmask) < 0) {
            int err = errno;
            if (err == EINTR)
                return SWOOP_EINTR;
            swoop_log(SWOOP_LOG_ERROR, err, "task worker %d: ppoll() failed", t);
            return -err;
        }
    }
}
