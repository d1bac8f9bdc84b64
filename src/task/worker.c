/*
 * The task worker (DESIGN.md section 2, SWOOLE-NOTES.md section 2): a
 * blocking process, manager slot worker_num + t (SWOOP_SLOT_TASK, so
 * SIGUSR2 reloads it). It waits for a TASK message (queue.c), runs
 * on_task, and swoop_server_task_finish sends the result to the posting
 * worker: on its message channel (on_finish), or on its taskwait channel.
 *
 * SIGTERM, SIGRTMIN and SIGALRM stay blocked except while the worker waits
 * for a message, so a task is never cut by them and a user's blocking call
 * in on_task never sees EINTR. Timers (swoop_timer_*) run through the alarm
 * driver, between tasks.
 *
 * When a task worker dies in on_task, the manager (task_worker_reaped)
 * either tells the posting worker (on_task_error, or taskwait returns
 * SWOOP_ECANCELED at once), or with task_redeliver sends the task again to
 * another task worker: the dying worker kept a copy of the message in
 * shared memory, and the payload it pointed to (a spill block, a file)
 * stayed in place until on_task returned.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <swoop/timer.h>

#include "base/clock.h"
#include "base/ratelimit.h"
#include "event/internal.h"
#include "task/internal.h"

#define FINISH_TIMEOUT_MS   30000
#define WAIT_RESULT_MS      1000 /* a taskwait result the waiter does not take is dropped */
#define ERROR_WAIT_MS       200  /* a report waits this long for room in its channel */
#define TASK_ATTEMPTS_LIMIT 256  /* the attempt travels in 8 bits */

static volatile sig_atomic_t task_stop, task_reopen;

static task_run_t *run_claim(swoop_task_t *tk, int t);

int swoop_server_is_task_worker(const swoop_server_t *srv)
{
    return srv && srv->task && srv->task->in_task_worker;
}

const char *swoop_server_task_path(const swoop_server_t *srv)
{
    if (srv == NULL || srv->task == NULL || !srv->task->in_task_worker || srv->task->cur_task == 0)
        return NULL;
    return srv->task->cur_path;
}

int swoop_server_task_attempt(const swoop_server_t *srv)
{
    if (srv == NULL || srv->task == NULL || !srv->task->in_task_worker || srv->task->cur_task == 0)
        return 0;
    return srv->task->cur_attempt;
}

/* Sends one datagram, waiting (bounded) while the peer's buffer is full. */
static int send_blocking(int fd, const swoop_ipc_head_t *h, const void *p1, size_t l1,
                         const void *p2, size_t l2, int timeout_ms)
{
    char buf[TASK_MSG_MAX];
    size_t n = sizeof(*h) + l1 + l2;
    if (n > sizeof(buf))
        return SWOOP_EMSGSIZE;
    swoop_ipc_head_t hh = *h;
    hh.len = (uint32_t)(l1 + l2);
    memcpy(buf, &hh, sizeof(hh));
    if (l1)
        memcpy(buf + sizeof(hh), p1, l1);
    if (l2)
        memcpy(buf + sizeof(hh) + l1, p2, l2);
    uint64_t deadline = swoop__now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int rc = swoop__channel_send(fd, buf, n);
        if (rc != SWOOP_EAGAIN)
            return rc;
        uint64_t now = swoop__now_ms();
        if (now >= deadline)
            return SWOOP_ETIMEDOUT;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        poll(&pf, 1, (int)(deadline - now));
    }
}

/*
 * Tells worker `src` that `task` has no result (`code`): on_task_error, or
 * its taskwait on channel `reply`.
 */
static void send_error(swoop_server_t *srv, int src, int wait, int reply, int from, int64_t task,
                       int32_t code)
{
    swoop_task_t *tk = srv->task;
    if (src < 0 || src >= srv->worker_num || (wait && (reply < 0 || reply >= tk->nwaits)))
        return;
    swoop_ipc_head_t h = {.type = SWOOP_IPC_FINISH,
                          .worker_id = (int16_t)from,
                          .aux = TASK_AUX_ERROR,
                          .conn_id = (uint64_t)task};
    int fd = wait ? tk->waits[reply].fds[0] : srv->msgs[src].fds[0];
    /* Counted first: whoever sees the report may read the stats right away. */
    atomic_fetch_add_explicit(&srv->gs->task.failed, 1, memory_order_relaxed);
    int rc = send_blocking(fd, &h, &code, sizeof(code), NULL, 0, ERROR_WAIT_MS);
    if (rc < 0)
        swoop_log(SWOOP_LOG_ERROR, rc, "cannot tell worker %d that task %lld failed", src,
                  (long long)task);
}

int swoop_server_task_finish(swoop_server_t *srv, const void *data, size_t len)
{
    if (srv == NULL || (data == NULL && len))
        return SWOOP_EINVAL;
    swoop_task_t *tk = srv->task;
    if (tk == NULL || !tk->in_task_worker || tk->cur_task == 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_server_task_finish: only inside on_task");
        return SWOOP_ESTATE;
    }
    if (tk->finished) {
        swoop_log(SWOOP_LOG_WARNING, 0, "task %lld: a second result refused",
                  (long long)tk->cur_task);
        return SWOOP_ESTATE;
    }
    if (tk->cur_src == -1) {
        swoop_log(SWOOP_LOG_NOTICE, 0,
                  "task %lld came from an earlier server run: its result has no receiver",
                  (long long)tk->cur_task);
        tk->finished = 1;
        return 0;
    }
    if (tk->cur_src < 0 || tk->cur_src >= srv->worker_num) {
        swoop_log(SWOOP_LOG_WARNING, 0, "task %lld: source worker %d unknown",
                  (long long)tk->cur_task, tk->cur_src);
        return SWOOP_EINVAL;
    }
    if (tk->big > 0 && len > (uint64_t)tk->big)
        swoop__log_limited(
            SWOOP_LOG_WARNING, 0,
            "task %lld: a %zu-byte result is above package_max_length (%lld): sent anyway",
            (long long)tk->cur_task, len, (long long)tk->big);
    swoop_ipc_head_t h = {.type = SWOOP_IPC_FINISH,
                          .worker_id = (int16_t)srv->worker_id,
                          .conn_id = (uint64_t)tk->cur_task};
    task_out_t o;
    int rc = task_payload_pack(tk, &h, data, len, &o);
    if (rc < 0)
        return rc;
    if (tk->cur_wait)
        rc = send_blocking(tk->waits[tk->cur_reply].fds[0], &h, o.p1, o.l1, o.p2, o.l2,
                           WAIT_RESULT_MS);
    else
        rc = send_blocking(srv->msgs[tk->cur_src].fds[0], &h, o.p1, o.l1, o.p2, o.l2,
                           FINISH_TIMEOUT_MS);
    if (rc < 0) {
        task_payload_discard(tk, &h, &o);
        swoop__log_limited(SWOOP_LOG_ERROR, rc,
                           "sending the result of task %lld to worker %d failed",
                           (long long)tk->cur_task, tk->cur_src);
        return rc;
    }
    tk->finished = 1;
    if (tk->run)
        tk->run->finished = 1; /* a death from now on neither re-sends nor reports it */
    return 0;
}

/* Runs one TASK message; returns 1 if on_task ran, else 0 (dropped, logged). */
static int run_task_body(swoop_server_t *srv, char *msg, size_t n)
{
    swoop_task_t *tk = srv->task;
    swoop_ipc_head_t h;
    if (n < sizeof(h)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "short message (%zu bytes) for a task worker dropped", n);
        return 0;
    }
    memcpy(&h, msg, sizeof(h));
    if (h.type != SWOOP_IPC_TASK || (h.flags & SWOOP_IPC_CHUNK) || h.len != n - sizeof(h) ||
        h.conn_id == 0 || h.conn_id > INT64_MAX || n > TASK_MSG_MAX) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "malformed message (type %u, flags 0x%x, %zu bytes) for a task worker dropped",
                  h.type, h.flags, n);
        return 0;
    }
    int ours = task_tag_ours(&h, tk->run_id);
    /* A task of an earlier run was never posted in this one: count it now (posted >= taken). */
    if (!ours)
        atomic_fetch_add(&srv->gs->task.posted, 1);
    atomic_fetch_add(&srv->gs->task.taken, 1);
    /* Metrics: the wait (posted -> taken), later the run time, in this task worker's blocks. */
    int timed = srv->gs->metrics_on && ours && tk->slot >= 0 && tk->slot < srv->gs->metric_tasks;
    uint64_t t0_us = timed ? swoop__mono_us() : 0;
    if (timed) {
        int64_t wait = swoop__task_stamp_wait(srv->gs, h.conn_id, t0_us);
        if (wait >= 0)
            swoop__hist_observe(swoop__hist_task(srv->gs, tk->slot, 0), (uint64_t)wait);
    }
    task_pending_release(tk, &h, msg + sizeof(h), h.len); /* task_max_pending_bytes */
    task_slot_t *slot = task_slot(tk, tk->slot);
    if (tk->mode == 2)
        atomic_fetch_sub_explicit(&slot->queued, 1, memory_order_relaxed);
    int src = h.worker_id, wait = (h.aux & TASK_AUX_WAIT) != 0;
    int reply = task_reply(&h);
    if (wait && reply >= tk->nwaits) {
        swoop_log(SWOOP_LOG_WARNING, 0, "task %llu names taskwait channel %d (of %d): no receiver",
                  (unsigned long long)h.conn_id, reply, tk->nwaits);
        src = -1;
    }
    if (!ours) {
        /* Kept by a queue with a fixed key from an earlier run: nobody here waits for it. */
        swoop_log(SWOOP_LOG_NOTICE, 0,
                  "task %llu was posted by an earlier server run: it runs, its result is dropped",
                  (unsigned long long)h.conn_id);
        src = -1;
    }
    task_run_t *run = tk->run;
    if (run) {
        /* Before anything can fail: the manager reports or re-sends this copy if we die. */
        memcpy(run->msg, msg, n);
        run->len = (uint32_t)n;
        run->src = src;
        run->wait = wait;
        run->reply = reply;
        run->in_task = 0;
        run->finished = 0;
        atomic_store_explicit(&run->task, (int64_t)h.conn_id, memory_order_release);
    }
    task_in_t in;
    int rc = task_payload_take(tk, &h, msg + sizeof(h), h.len, tk->redeliver > 0, &in);
    if (rc < 0) {
        if (run)
            atomic_store(&run->task, 0);
        swoop_log(SWOOP_LOG_ERROR, rc, "task %llu from worker %d cannot be read: it fails",
                  (unsigned long long)h.conn_id, src);
        if (src >= 0)
            send_error(srv, src, wait, reply, srv->worker_id, (int64_t)h.conn_id, rc);
        return 0;
    }
    if (srv->events.on_task == NULL)
        return 0; /* checked at start; keeps analyzers quiet */
    tk->cur_path = in.path[0] ? in.path : in.spilled ? swoop__spill_path(tk->spill) : NULL;
    tk->cur_task = (int64_t)h.conn_id;
    tk->cur_src = src;
    tk->cur_wait = wait;
    tk->cur_reply = reply;
    tk->cur_attempt = (int)((h.aux & TASK_AUX_ATTEMPT_MASK) >> TASK_AUX_ATTEMPT_SHIFT) + 1;
    tk->finished = 0;
    atomic_fetch_add(&slot->busy, 1);
    atomic_fetch_add_explicit(&srv->gs->task.busy, 1, memory_order_relaxed);
    if (run)
        run->in_task = 1;
    uint64_t t1_ns = timed ? swoop__clock_ns() : 0;
    srv->events.on_task(srv, (int64_t)h.conn_id, src, in.data, in.len);
    if (timed)
        swoop__hist_observe(swoop__hist_task(srv->gs, tk->slot, 1), swoop__clock_ns() - t1_ns);
    if (run) {
        run->in_task = 0;
        atomic_store(&run->task, 0);
    }
    atomic_fetch_sub_explicit(&srv->gs->task.busy, 1, memory_order_relaxed);
    atomic_fetch_sub(&slot->busy, 1);
    atomic_fetch_add(&slot->done, 1);
    atomic_fetch_add_explicit(&srv->gs->task.done, 1, memory_order_relaxed);
    tk->cur_task = 0;
    tk->cur_src = -1;
    tk->cur_path = NULL;
    task_payload_done(tk, &in);
    atomic_fetch_add_explicit(&srv->proc_stats[srv->worker_id].requests, 1, memory_order_relaxed);
    return 1;
}

/*
 * Runs one TASK message inside the `active` count (raised before `taken`,
 * dropped after the result went out): a worker waiting for quiet at
 * shutdown (swoop__task_quiet) never sees a task between two counters.
 */
static int run_task(swoop_server_t *srv, char *msg, size_t n)
{
    /*
     * The mark lives in this process's record, which the manager clears when
     * it reaps us: a death at any point leaves nothing raised. Without a
     * record (none was free, logged) the shared counter stands in.
     */
    task_run_t *run = srv->task->run;
    if (run)
        atomic_store(&run->active, 1);
    else
        atomic_fetch_add(&srv->gs->task.active, 1);
    int ran = run_task_body(srv, msg, n);
    if (run)
        atomic_store(&run->active, 0);
    else
        atomic_fetch_sub(&srv->gs->task.active, 1);
    return ran;
}

/* task_max_request reached: the manager starts the successor at once, this process exits. */
static void retire(swoop_server_t *srv, int id)
{
    swoop_log(SWOOP_LOG_INFO, 0, "task worker reached task_max_request (%lld): replacing it",
              (long long)srv->settings.task_max_request);
    atomic_store(&srv->proc_stats[id].retire_pid, getpid());
    pid_t mpid = (pid_t)atomic_load(&srv->gs->manager_pid);
    if (mpid > 0 && kill(mpid, SIGIO) < 0)
        swoop_log(SWOOP_LOG_ERROR, errno, "kill(%d, SIGIO) of the manager failed", (int)mpid);
}

static void on_task_signal(int signo)
{
    if (signo == SIGTERM)
        task_stop = 1;
    else
        task_reopen = 1;
    task_queue_interrupt(); /* leaves a msgrcv under way */
}

/* Keeps only what a task worker uses: the message channels' write ends, its own queue. */
static void close_unused(swoop_server_t *srv, int t)
{
    swoop_task_t *tk = srv->task;
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (!p->dgram && p->fd >= 0) {
            close(p->fd);
            p->fd = -1;
        }
    }
    for (int w = 0; w < srv->worker_num; w++)
        swoop__channel_close_end(&srv->msgs[w], 1);
    for (int i = 0; i < tk->nwaits; i++)
        swoop__channel_close_end(&tk->waits[i], 1);
    for (int i = 0; srv->pairs && i < srv->worker_num * srv->reactor_num; i++)
        swoop__channel_close(&srv->pairs[i]);
    task_queue_child(srv, t);
}

int swoop__task_worker_main(swoop_server_t *srv, int id)
{
    swoop_task_t *tk = srv->task;
    int t = id - srv->worker_num;
    srv->worker_id = id;
    srv->running = 0;
    srv->pid_file_written = 0;
    tk->in_task_worker = 1;
    tk->slot = t;
    tk->run = run_claim(tk, t);
    tk->cur_src = -1;
    swoop_log_set_role(SWOOP_ROLE_TASKER, id);
    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the group: the manager stops us in order */
    atomic_store(&srv->proc_stats[id].pid, getpid());
    atomic_fetch_add(&srv->gs->task.starts, 1);
    if (t >= 0 && t < srv->gs->metric_tasks)
        atomic_store(swoop__task_pid(srv->gs, t), (int32_t)getpid());
    atomic_store(&srv->proc_stats[id].requests, 0);
    close_unused(srv, t);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_task_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGRTMIN, &sa, NULL);
    task_stop = 0;
    task_reopen = 0;
    /* Timers: the alarm driver; its SIGALRM also leaves a msgrcv under way. */
    int rc = swoop_timer_alarm_start();
    if (rc < 0)
        swoop_log(SWOOP_LOG_ERROR, rc, "task worker %d: no timers (alarm driver)", id);
    swoop__alarm_set_hook(task_queue_interrupt);
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGRTMIN);
    sigaddset(&block, SIGALRM);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGRTMIN);
    sigdelset(&waitmask, SIGALRM);

    if (srv->events.on_worker_start)
        srv->events.on_worker_start(srv, id);
    char *buf = swoop_malloc(SWOOP_IPC_MAX);
    int64_t limit = srv->settings.task_max_request, ran = 0;
    atomic_store(&srv->proc_stats[id].request_limit, limit);
    rc = 0;
    while (!task_stop) {
        if (swoop__alarm_fired())
            swoop_timer_alarm_dispatch();
        if (task_reopen) {
            task_reopen = 0;
            swoop__server_reopen_logs(srv);
        }
        sigset_t pend;
        if (sigpending(&pend) == 0 && sigismember(&pend, SIGTERM))
            break;
        ssize_t n = task_queue_recv(srv, t, buf, SWOOP_IPC_MAX, &waitmask);
        if (n >= 0) {
            ran += run_task(srv, buf, (size_t)n);
            if (limit > 0 && ran >= limit) {
                retire(srv, id);
                break;
            }
            continue;
        }
        if (n == SWOOP_EINTR || n == SWOOP_EMSGSIZE || n == SWOOP_EPROTO)
            continue;
        swoop_log(SWOOP_LOG_ERROR, (int)n, "task worker %d: reading its queue failed", id);
        rc = 1;
        break;
    }
    swoop_free(buf);
    if (srv->events.on_worker_stop)
        srv->events.on_worker_stop(srv, id);
    swoop__alarm_set_hook(NULL);
    /* _exit follows in spawn. */
    return rc;
}

/* ---- manager: a task worker died ---- */

/* Claims a free record for this process; NULL (logged) when none is free. */
static task_run_t *run_claim(swoop_task_t *tk, int t)
{
    int32_t self = (int32_t)getpid();
    for (int i = 0; i < tk->nruns; i++) {
        task_run_t *r = task_run(tk, i);
        int32_t none = 0;
        if (atomic_compare_exchange_strong(&r->pid, &none, self)) {
            r->slot = t;
            atomic_store(&r->active, 0);
            atomic_store(&r->task, 0);
            return r;
        }
    }
    swoop_log(SWOOP_LOG_WARNING, 0,
              "no free task record (%d in use): a task this process dies in is not reported",
              tk->nruns);
    return NULL;
}

/* Task worker `id`, process `pid`, died in the task whose message `run` holds: send it again. */
static int redeliver(swoop_server_t *srv, int id, pid_t pid, task_run_t *run)
{
    swoop_task_t *tk = srv->task;
    swoop_ipc_head_t h;
    memcpy(&h, run->msg, sizeof(h));
    int attempt = (int)((h.aux & TASK_AUX_ATTEMPT_MASK) >> TASK_AUX_ATTEMPT_SHIFT) + 1;
    if (attempt > tk->redeliver || attempt + 1 > TASK_ATTEMPTS_LIMIT) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "task %lld killed its task worker %d time(s): task_redeliver %d spent",
                  (long long)h.conn_id, attempt, tk->redeliver);
        return SWOOP_ECANCELED;
    }
    if (h.flags & SWOOP_IPC_SPILL) {
        swoop_spill_ref_t ref;
        memcpy(&ref, run->msg + sizeof(h), sizeof(ref));
        /* Queued again for the next reader (or still queued: it died before claiming). */
        int rc = swoop__spill_unclaim(tk->spill, &ref, pid);
        if (rc < 0)
            return rc;
    }
    /* Its bytes were given back when it was first taken: not counted again. */
    h.aux = (h.aux & ~(TASK_AUX_ATTEMPT_MASK | TASK_AUX_COUNTED)) |
            ((uint32_t)attempt << TASK_AUX_ATTEMPT_SHIFT);
    memcpy(run->msg, &h, sizeof(h));
    /* Another task worker (mode 3: whichever is free); with one, its successor. */
    int t = id - srv->worker_num;
    int to = tk->num > 1 ? (t + 1) % tk->num : t;
    /* Counted before the send: the task may be taken, and its result seen, at once. */
    atomic_fetch_add_explicit(&srv->gs->task.posted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->gs->task.redelivered, 1, memory_order_relaxed);
    if (tk->mode == 2)
        atomic_fetch_add_explicit(&task_slot(tk, to)->queued, 1, memory_order_relaxed);
    int rc = task_queue_resend(srv, to, run->msg, run->len);
    if (rc < 0) {
        atomic_fetch_sub_explicit(&srv->gs->task.posted, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&srv->gs->task.redelivered, 1, memory_order_relaxed);
        if (tk->mode == 2)
            atomic_fetch_sub_explicit(&task_slot(tk, to)->queued, 1, memory_order_relaxed);
        return rc;
    }
    if (tk->mode == 3)
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "task worker %d died in task %lld: queued again (attempt %d)", id,
                  (long long)h.conn_id, attempt + 1);
    else
        swoop_log(
            SWOOP_LOG_WARNING, 0,
            "task worker %d died in task %lld: delivered again (attempt %d) to task worker %d", id,
            (long long)h.conn_id, attempt + 1, srv->worker_num + to);
    return 0;
}

/* Frees the payload of a message the dead `pid` held that goes nowhere now. */
static void run_drop(swoop_task_t *tk, pid_t pid, task_run_t *run)
{
    swoop_ipc_head_t h;
    memcpy(&h, run->msg, sizeof(h));
    if (h.flags & SWOOP_IPC_SPILL) {
        swoop_spill_ref_t ref;
        memcpy(&ref, run->msg + sizeof(h), sizeof(ref));
        swoop__spill_unclaim(tk->spill, &ref, pid); /* queued again, so the drop can claim it */
    }
    task_payload_drop(tk, run->msg, run->len);
}

/* What process `pid` of task worker `id` was doing when it died: re-sent, reported or freed. */
static void run_settle(swoop_server_t *srv, int id, pid_t pid, task_run_t *run)
{
    swoop_task_t *tk = srv->task;
    int64_t task = atomic_load_explicit(&run->task, memory_order_acquire);
    if (run->in_task) {
        atomic_fetch_sub(&task_slot(tk, run->slot)->busy, 1);
        atomic_fetch_sub_explicit(&srv->gs->task.busy, 1, memory_order_relaxed);
    }
    if (task == 0 || run->len < sizeof(swoop_ipc_head_t) || run->len > TASK_MSG_MAX)
        return;
    if (run->finished) {
        run_drop(tk, pid, run); /* its result went out: only the payload is left */
        return;
    }
    int rc = tk->redeliver && run->src >= 0 ? redeliver(srv, id, pid, run) : SWOOP_ECANCELED;
    if (rc >= 0)
        return;
    if (rc != SWOOP_ECANCELED)
        swoop_log(SWOOP_LOG_ERROR, rc, "delivering task %lld again failed", (long long)task);
    run_drop(tk, pid, run);
    if (run->src < 0)
        return;
    swoop_log(SWOOP_LOG_WARNING, 0, "task worker %d died in task %lld: %s worker %d", id,
              (long long)task, run->wait ? "taskwait fails in" : "on_task_error in", run->src);
    send_error(srv, run->src, run->wait, run->reply, id, task, SWOOP_ECANCELED);
}

void swoop__task_reaped(swoop_server_t *srv, int id, pid_t pid)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL || pid <= 0)
        return;
    if (id >= 0 && id < srv->worker_num) {
        task_pending_reset(tk, id); /* what it counted and never sent is not pending any more */
        /* Its poster slot: the worker id, or in BASE mode the range the pid held. */
        int slot = srv->mode == SWOOP_MODE_BASE && tk->nwaits == srv->nranges ? -1 : id;
        for (int i = 0; slot < 0 && srv->ranges && i < srv->nranges; i++) {
            if (atomic_load(&srv->ranges[i].pid) == (int32_t)pid)
                slot = i;
        }
        swoop__task_poster_reaped(srv, slot);
    }
    if (id >= srv->worker_num && id < srv->worker_num + tk->num) {
        for (int i = 0; i < tk->nruns; i++) {
            task_run_t *run = task_run(tk, i);
            if (atomic_load(&run->pid) != (int32_t)pid)
                continue;
            run_settle(srv, id, pid, run); /* re-sent or reported before `active` drops */
            atomic_store(&run->active, 0);
            atomic_store(&run->task, 0);
            atomic_store(&run->pid, 0);
            break;
        }
    }
    /* Spill blocks it was writing or reading (a re-sent one is queued again). */
    if (tk->spill)
        swoop__spill_reap(tk->spill, pid);
}
