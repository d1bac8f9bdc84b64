/*
 * Tasks, the event worker's side (DESIGN.md section 2, SWOOLE-NOTES.md
 * section 2): settings, start and stop, swoop_server_task, taskwait,
 * taskwait_multi, and the FINISH messages that run on_finish or
 * on_task_error in the worker that posted the task. The task worker is in
 * worker.c, the payload rule in payload.c, the transport
 * (task_ipc_mode) in queue.c.
 *
 * Task ids come from a counter in shared memory, so they are unique in the
 * server. Without a destination an event worker picks a task worker with
 * nothing queued or running, else the next one round robin, and says so in
 * the log at most once a second (Swoole's "No idle task worker").
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <swoop/co.h>

#include "base/ratelimit.h"
#include "co/internal.h"
#include "task/internal.h"

#define SPILL_BLOCK         (64 * 1024)
#define MASTER_GONE_WAIT_MS 500

int swoop__task_num(const swoop_server_t *srv)
{
    return srv && srv->task ? srv->task->num : 0;
}

int swoop__task_check(swoop_server_t *srv)
{
    const swoop_server_settings_t *s = &srv->settings;
    /* The ranges of each field were checked at start (server.c); these are the combinations. */
    if (s->task_worker_num > 0 && s->worker_num + s->task_worker_num > INT16_MAX) {
        swoop_log(SWOOP_LOG_ERROR, 0, "task_worker_num %d out of range", s->task_worker_num);
        return SWOOP_EINVAL;
    }
    if (s->task_worker_num == 0)
        return 0;
    if (srv->events.on_task == NULL) {
        swoop_log(SWOOP_LOG_ERROR, 0, "task_worker_num %d needs an on_task callback",
                  s->task_worker_num);
        return SWOOP_EINVAL;
    }
    struct stat st;
    if (s->task_tmpdir[0] != '/' || stat(s->task_tmpdir, &st) < 0 || !S_ISDIR(st.st_mode) ||
        access(s->task_tmpdir, W_OK | X_OK) < 0) {
        swoop_log(SWOOP_LOG_ERROR, errno,
                  "task_tmpdir \"%s\" must be an absolute path of a writable directory",
                  s->task_tmpdir);
        return SWOOP_EINVAL;
    }
    return 0;
}

static void task_free(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL)
        return;
    task_queue_close(srv);
    if (tk->waits) {
        for (int i = 0; i < tk->nwaits; i++)
            swoop__channel_close(&tk->waits[i]);
        swoop_free(tk->waits);
    }
    swoop_free(tk->wbuf);
    if (tk->co_waits_ready)
        swoop__idmap_free(&tk->co_waits);
    swoop__spill_close(tk->spill);
    if (tk->sh)
        munmap(tk->sh, tk->sh_size);
    swoop_free(tk);
    srv->task = NULL;
}

/* The spill file: a failure only costs speed (every large payload then gets its own file). */
static void spill_open(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    int64_t size = srv->settings.task_spill_size;
    if (size < SPILL_BLOCK)
        return;
    char name[64];
    snprintf(name, sizeof(name), TASK_PREFIX "%d.spill.", (int)tk->owner);
    int rc = swoop__spill_open(&tk->spill, srv->settings.task_tmpdir, name, SPILL_BLOCK,
                               (uint32_t)(size / SPILL_BLOCK));
    if (rc < 0) {
        tk->spill = NULL;
        swoop_log(SWOOP_LOG_WARNING, rc,
                  "no spill file in %s: each task above %d bytes gets a file of its own",
                  srv->settings.task_tmpdir, SWOOP_TASK_INLINE_MAX);
    }
}

int swoop__task_open(swoop_server_t *srv)
{
    const swoop_server_settings_t *s = &srv->settings;
    int num = s->task_worker_num;
    if (num <= 0)
        return 0;
    swoop_task_t *tk = swoop_calloc(1, sizeof(*tk));
    srv->task = tk;
    tk->num = num;
    tk->mode = s->task_ipc_mode;
    tk->owner = getpid();
    tk->cur_src = -1;
    tk->redeliver = s->task_redeliver;
    tk->big = s->protocol.package_max_length;
    tk->inline_max = SWOOP_TASK_INLINE_MAX;
    snprintf(tk->prefix, sizeof(tk->prefix), "%s/" TASK_PREFIX "%d.", s->task_tmpdir,
             (int)tk->owner);
    if (getrandom(&tk->run_id, sizeof(tk->run_id), 0) != sizeof(tk->run_id))
        tk->run_id = ((uint64_t)getpid() << 32) ^ swoop__now_ms();
    /* Old and new processes of an id overlap during reloads: room for a few generations. */
    tk->nruns = 4 * num + 8;
    tk->max_pending = s->task_max_pending_bytes;
    tk->nposters = srv->worker_num;
    /* One taskwait channel per process that may wait at once: see task_tag_set. */
    tk->nwaits = srv->mode == SWOOP_MODE_BASE && srv->nranges > 0 ? srv->nranges : srv->worker_num;
    tk->sh_size = sizeof(task_shared_t) + (size_t)num * sizeof(task_slot_t) +
                  (size_t)tk->nruns * sizeof(task_run_t) +
                  (size_t)tk->nposters * sizeof(_Atomic uint64_t) +
                  (size_t)tk->nwaits * sizeof(_Atomic int64_t);
    void *p = mmap(NULL, tk->sh_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "mmap() of the %zu-byte task state failed", tk->sh_size);
        tk->sh = NULL;
        task_free(srv);
        return -err;
    }
    tk->sh = p;
    /*
     * Ids start from the wall clock (ms << 20): unique in this run, and apart
     * from the ids of earlier runs whose tasks a queue with a fixed key kept.
     */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    atomic_store(&tk->sh->task_seq, ((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000)
                                        << 20);
    int rc = task_queue_open(srv);
    if (rc < 0) {
        task_free(srv);
        return rc;
    }
    tk->waits = swoop_calloc((size_t)tk->nwaits, sizeof(*tk->waits));
    for (int i = 0; i < tk->nwaits; i++)
        tk->waits[i].fds[0] = tk->waits[i].fds[1] = -1;
    for (int i = 0; i < tk->nwaits; i++) {
        rc = swoop__channel_open(&tk->waits[i], 1024 * 1024);
        if (rc < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "socketpair() of taskwait channel %d failed", i);
            task_free(srv);
            return rc;
        }
    }
    task_payload_sweep(srv, 1);
    spill_open(srv);
    srv->gs->task.worker_num = num;
    srv->gs->task.queue_id = tk->mq.id;
    return 0;
}

void swoop__task_close(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL)
        return;
    if (tk->owner == getpid())
        task_payload_sweep(srv, 0);
    task_free(srv);
}

void swoop__task_manager_setup(swoop_server_t *srv, swoop_manager_t *mgr)
{
    for (int t = 0; t < swoop__task_num(srv); t++)
        swoop__manager_set_flags(mgr, srv->worker_num + t, SWOOP_SLOT_TASK);
}

/* ---- posting ---- */

/* This event worker's taskwait channel (see TASK_AUX_REPLY_SHIFT). */
static int wait_slot(const swoop_server_t *srv)
{
    if (srv->mode == SWOOP_MODE_BASE && srv->task->nwaits == srv->nranges && srv->range >= 0)
        return srv->range;
    return srv->worker_id;
}

static int pick_task_worker(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    unsigned start = atomic_fetch_add_explicit(&tk->sh->rr, 1, memory_order_relaxed);
    if (tk->mode == 3)
        return 0; /* the task workers compete for the queue */
    for (int i = 0; i < tk->num; i++) {
        int t = (int)((start + (unsigned)i) % (unsigned)tk->num);
        if (task_queue_idle(srv, t))
            return t;
    }
    uint64_t now = swoop__now_ms();
    if (now - tk->warn_ms >= 1000) {
        tk->warn_ms = now;
        swoop_log(SWOOP_LOG_WARNING, 0, "no idle task worker: tasks queue round robin");
    }
    return (int)(start % (unsigned)tk->num);
}

/* ---- task_max_pending_bytes ---- */

/*
 * Counts `len` more pending bytes for this event worker, or refuses the
 * task: SWOOP_EMSGSIZE when it alone is above the cap, SWOOP_EAGAIN when
 * the server's pending bytes would pass it (logged at most once a second
 * per process). Adds TASK_AUX_COUNTED and the epoch to *aux. The sum over
 * the workers is read word by word: posts racing in other workers can pass
 * the cap by at most their own tasks.
 */
static int pending_add(swoop_server_t *srv, const char *fn, size_t len, uint32_t *aux)
{
    swoop_task_t *tk = srv->task;
    if (tk->max_pending <= 0 || srv->worker_id >= tk->nposters)
        return 0;
    uint64_t cap = (uint64_t)tk->max_pending, sum = 0;
    for (int w = 0; w < tk->nposters; w++)
        sum += atomic_load_explicit(task_pending_word(tk, w), memory_order_relaxed) &
               TASK_PENDING_MASK;
    if ((uint64_t)len > cap || sum + len > cap) {
        uint64_t now = swoop__now_ms();
        if (now - tk->cap_warn_ms >= 1000) {
            tk->cap_warn_ms = now;
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "%s: a %zu-byte task is refused: %llu bytes of tasks wait for a task "
                      "worker, task_max_pending_bytes is %llu",
                      fn, len, (unsigned long long)sum, (unsigned long long)cap);
        }
        return (uint64_t)len > cap ? SWOOP_EMSGSIZE : SWOOP_EAGAIN;
    }
    _Atomic uint64_t *word = task_pending_word(tk, srv->worker_id);
    uint64_t v = atomic_load(word);
    while (!atomic_compare_exchange_weak(word, &v, v + len))
        ;
    *aux |= TASK_AUX_COUNTED | (uint32_t)(v >> TASK_PENDING_BITS) << TASK_AUX_EPOCH_SHIFT;
    return 0;
}

/* Subtracts `len` from worker w's count if it is still in `epoch` (never below 0). */
static void pending_sub(swoop_task_t *tk, int w, uint32_t epoch, uint64_t len)
{
    if (w < 0 || w >= tk->nposters || len == 0)
        return;
    _Atomic uint64_t *word = task_pending_word(tk, w);
    uint64_t v = atomic_load(word), nv;
    do {
        if ((uint32_t)(v >> TASK_PENDING_BITS) != epoch)
            return; /* reset since: the count no longer holds these bytes */
        uint64_t bytes = v & TASK_PENDING_MASK;
        nv = (v & ~TASK_PENDING_MASK) | (bytes > len ? bytes - len : 0);
    } while (!atomic_compare_exchange_weak(word, &v, nv));
}

void task_pending_release(swoop_task_t *tk, const swoop_ipc_head_t *h, const char *payload,
                          size_t plen)
{
    if (!(h->aux & TASK_AUX_COUNTED) || !task_tag_ours(h, tk->run_id))
        return;
    pending_sub(tk, h->worker_id, h->aux >> TASK_AUX_EPOCH_SHIFT,
                task_payload_len(h, payload, plen));
}

void task_pending_reset(swoop_task_t *tk, int w)
{
    if (w < 0 || w >= tk->nposters)
        return;
    _Atomic uint64_t *word = task_pending_word(tk, w);
    uint64_t v = atomic_load(word), nv;
    do {
        nv = ((v >> TASK_PENDING_BITS) + 1) << TASK_PENDING_BITS; /* the epoch wraps at 16 bits */
    } while (!atomic_compare_exchange_weak(word, &v, nv));
}

/* Posts one task; `aux` TASK_AUX_WAIT for taskwait. Sets *tout to the task worker. */
static int64_t post_task(swoop_server_t *srv, const char *fn, const void *data, size_t len, int dst,
                         uint32_t aux, int *tout)
{
    if (srv == NULL || (data == NULL && len)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: %s", fn,
                  srv == NULL ? "no server" : "data is NULL with a length");
        return SWOOP_EINVAL;
    }
    swoop_task_t *tk = srv->task;
    if (tk == NULL || srv->worker_id < 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: %s", fn,
                  tk == NULL ? "no task workers (task_worker_num 0)" : "not in an event worker");
        return SWOOP_ESTATE;
    }
    if (tk->in_task_worker) {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: not allowed in a task worker", fn);
        return SWOOP_ESTATE;
    }
    if (dst < -1 || dst >= tk->num) {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: no task worker %d (0..%d)", fn, dst, tk->num - 1);
        return SWOOP_EINVAL;
    }
    if (tk->big > 0 && len > (uint64_t)tk->big)
        swoop__log_limited(
            SWOOP_LOG_WARNING, 0,
            "%s: a %zu-byte task is above package_max_length (%lld): delivered anyway", fn, len,
            (long long)tk->big);
    if (dst >= 0 && tk->mode == 3 && tk->warn_ms == 0) {
        tk->warn_ms = 1; /* once */
        swoop_log(SWOOP_LOG_NOTICE, 0,
                  "%s: task_ipc_mode 3 ignores the destination: task workers compete", fn);
    }
    int rc = pending_add(srv, fn, len, &aux);
    if (rc < 0)
        return rc;
    int t = dst >= 0 && tk->mode != 3 ? dst : pick_task_worker(srv);
    int64_t id = (int64_t)atomic_fetch_add(&tk->sh->task_seq, 1) + 1;
    swoop_ipc_head_t h = {.type = SWOOP_IPC_TASK,
                          .worker_id = (int16_t)srv->worker_id,
                          .aux = aux,
                          .conn_id = (uint64_t)id,
                          .port_id = (uint16_t)wait_slot(srv),
                          .msg_id = TASK_MAGIC};
    task_tag_set(&h, tk->run_id);
    task_out_t o;
    rc = task_payload_pack(tk, &h, data, len, &o);
    if (rc < 0) {
        pending_sub(tk, srv->worker_id, aux >> TASK_AUX_EPOCH_SHIFT,
                    (aux & TASK_AUX_COUNTED) ? len : 0);
        return rc;
    }
    /* Counted before the send: a task worker may take it at once (tasking_num never < 0). */
    atomic_fetch_add_explicit(&srv->gs->task.posted, 1, memory_order_relaxed);
    if (srv->gs->metrics_on)
        swoop__task_stamp_post(srv->gs, (uint64_t)id);
    if (tk->mode == 2)
        atomic_fetch_add_explicit(&task_slot(tk, t)->queued, 1, memory_order_relaxed);
    rc = task_queue_post(srv, t, &h, &o);
    if (rc < 0) {
        atomic_fetch_sub_explicit(&srv->gs->task.posted, 1, memory_order_relaxed);
        if (tk->mode == 2)
            atomic_fetch_sub_explicit(&task_slot(tk, t)->queued, 1, memory_order_relaxed);
        task_payload_discard(tk, &h, &o);
        pending_sub(tk, srv->worker_id, aux >> TASK_AUX_EPOCH_SHIFT,
                    (aux & TASK_AUX_COUNTED) ? len : 0);
        swoop__log_limited(SWOOP_LOG_ERROR, rc, "posting task %lld to task worker %d failed",
                           (long long)id, t);
        return rc;
    }
    *tout = t;
    swoop__task_publish_unsent(srv);
    return id;
}

int64_t swoop_server_task(swoop_server_t *srv, const void *data, size_t len, int dst)
{
    int t;
    return post_task(srv, "swoop_server_task", data, len, dst, 0, &t);
}

/* ---- taskwait ---- */

/*
 * Reads one result from this worker's taskwait channel. Returns 1 with *h
 * and *in set (task_payload_done it), 0 when none waits, or an error.
 */
static int wait_read(swoop_server_t *srv, swoop_ipc_head_t *h, task_in_t *in, int32_t *code)
{
    swoop_task_t *tk = srv->task;
    if (tk->wbuf == NULL)
        tk->wbuf = swoop_malloc(SWOOP_IPC_MAX);
    for (;;) {
        ssize_t n = swoop__channel_recv(tk->waits[wait_slot(srv)].fds[1], tk->wbuf, SWOOP_IPC_MAX);
        if (n == SWOOP_EAGAIN)
            return 0;
        if (n == SWOOP_EMSGSIZE)
            continue;
        if (n < 0) {
            swoop_log(SWOOP_LOG_ERROR, (int)n, "taskwait: reading the result channel failed");
            return (int)n;
        }
        if ((size_t)n < sizeof(*h)) {
            swoop_log(SWOOP_LOG_WARNING, 0, "short taskwait result (%zd bytes) dropped", n);
            continue;
        }
        memcpy(h, tk->wbuf, sizeof(*h));
        if (h->type != SWOOP_IPC_FINISH || (h->flags & SWOOP_IPC_CHUNK) ||
            h->len != (size_t)n - sizeof(*h)) {
            swoop_log(SWOOP_LOG_WARNING, 0, "malformed taskwait result (%zd bytes) dropped", n);
            continue;
        }
        *code = 0;
        if (h->aux & TASK_AUX_ERROR) {
            *code = SWOOP_ECANCELED;
            if (h->len == sizeof(*code))
                memcpy(code, tk->wbuf + sizeof(*h), sizeof(*code));
            if (*code >= 0)
                *code = SWOOP_ECANCELED;
            memset(in, 0, sizeof(*in));
            return 1;
        }
        int rc = task_payload_take(tk, h, tk->wbuf + sizeof(*h), h->len, 0, in);
        *code = rc < 0 ? rc : 0;
        if (rc < 0)
            memset(in, 0, sizeof(*in));
        return 1;
    }
}

/*
 * A taskwait parked in a coroutine (enable_coroutine, or any coroutine):
 * registered by task id; the channel's watcher hands it its result.
 */
typedef struct co_taskwait_s {
    swoop_co_t *co;
    int done;
    int32_t code;
    void *result;
    size_t len;
} co_taskwait_t;

static void co_taskwait_fill(swoop_server_t *srv, co_taskwait_t *w, int32_t code, task_in_t *in)
{
    w->done = 1;
    w->code = code;
    if (code == 0) {
        w->len = in->len;
        w->result = task_payload_copy(srv->task, in);
    }
}

typedef struct co_wake_later_s {
    swoop_server_t *srv;
    int64_t id;
} co_wake_later_t;

/* A blocking taskwait read a parked coroutine's result: it runs from the loop. */
static void co_taskwait_wake_later(swoop_loop_t *loop, void *arg)
{
    co_wake_later_t *l = arg;
    swoop_task_t *tk = l->srv->task;
    co_taskwait_t *w = tk && tk->co_waits_ready ? swoop__idmap_get(&tk->co_waits, l->id) : NULL;
    if (w && w->done) {
        swoop__idmap_del(&tk->co_waits, l->id);
        swoop__co_wake(w->co, 0);
    }
    swoop_free(l);
}

/* Hands a result to the coroutine waiting for it; 0 if none does. */
static int co_taskwait_deliver(swoop_server_t *srv, uint64_t id, int32_t code, task_in_t *in,
                               int from_loop)
{
    swoop_task_t *tk = srv->task;
    if (!tk->co_waits_ready)
        return 0;
    co_taskwait_t *w = swoop__idmap_get(&tk->co_waits, (int64_t)id);
    if (w == NULL || w->done)
        return 0;
    co_taskwait_fill(srv, w, code, in);
    if (from_loop) {
        swoop__idmap_del(&tk->co_waits, (int64_t)id);
        swoop__co_wake(w->co, 0);
    } else {
        co_wake_later_t *l = swoop_malloc(sizeof(*l));
        l->srv = srv;
        l->id = (int64_t)id;
        if (swoop_loop_post(swoop_loop_default(), co_taskwait_wake_later, l) < 0)
            swoop_free(l); /* the coroutine finds w->done at its timeout */
    }
    return 1;
}

/*
 * The worker's loop runs only while no taskwait does: whatever arrives on the
 * taskwait channel then is a late result. It is dropped (its block or file
 * freed) at once instead of waiting for the next taskwait.
 */
static void wait_drain(swoop_io_t *io, unsigned events)
{
    swoop_server_t *srv = io->data;
    swoop_ipc_head_t h;
    task_in_t in;
    int32_t code;
    while (wait_read(srv, &h, &in, &code) == 1) {
        if (co_taskwait_deliver(srv, h.conn_id, code, &in, 1))
            continue;
        swoop__log_limited(SWOOP_LOG_INFO, 0, "task %llu has expired: its late result is dropped",
                           (unsigned long long)h.conn_id);
        if (code == 0)
            task_payload_done(srv->task, &in);
    }
}

static void wait_watch(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    swoop_loop_t *loop = swoop_loop_default();
    if (tk->waits_watched || loop == NULL)
        return;
    tk->wait_io.data = srv;
    if (swoop_io_init(loop, &tk->wait_io, tk->waits[wait_slot(srv)].fds[1], wait_drain) == 0 &&
        swoop_io_start(&tk->wait_io, SWOOP_READABLE) == 0)
        tk->waits_watched = 1;
}

/* Waits for results or for room to send until `deadline`; flushes what this worker queued. */
static void wait_some(swoop_server_t *srv, uint64_t deadline)
{
    swoop_task_t *tk = srv->task;
    struct pollfd pf[65];
    int left = task_queue_flush(srv);
    int np = left ? task_queue_pollfds(srv, pf + 1, 64) : 0;
    uint64_t now = swoop__now_ms();
    if (now >= deadline)
        return;
    int ms = (int)(deadline - now);
    if (left && np == 0 && ms > 1)
        ms = 1; /* a message queue cannot be polled: retry its sends every millisecond */
    pf[0] = (struct pollfd){.fd = tk->waits[wait_slot(srv)].fds[1], .events = POLLIN};
    poll(pf, (nfds_t)np + 1, ms);
}

/*
 * taskwait inside a coroutine: park it until the channel's watcher brings
 * the result (the worker serves everything else meanwhile), waking every
 * millisecond only while this worker still has task bytes queued to send.
 */
static int taskwait_co(swoop_server_t *srv, int64_t id, int timeout_ms, void **result,
                       size_t *result_len)
{
    swoop_task_t *tk = srv->task;
    if (!tk->co_waits_ready) {
        swoop__idmap_init(&tk->co_waits);
        tk->co_waits_ready = 1;
    }
    co_taskwait_t w = {.co = swoop__co_current()};
    swoop__idmap_put(&tk->co_waits, id, &w);
    uint64_t deadline = swoop__now_ms() + (uint64_t)timeout_ms;
    int rc = 0;
    while (!w.done) {
        int left = task_queue_flush(srv);
        uint64_t now = swoop__now_ms();
        if (now >= deadline) {
            rc = SWOOP_ETIMEDOUT;
            break;
        }
        int64_t ms = (int64_t)(deadline - now);
        if (left && ms > 1)
            ms = 1;
        rc = swoop__co_wait(ms, NULL);
        if (rc != 0 && rc != SWOOP_ETIMEDOUT)
            break; /* cancelled */
        rc = 0;
    }
    /* Still registered unless the watcher took it out to wake us. */
    swoop__idmap_del(&tk->co_waits, id);
    if (w.done) {
        if (w.code < 0)
            return w.code;
        *result = w.result;
        *result_len = w.len;
        return 0;
    }
    if (rc == SWOOP_ETIMEDOUT)
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "taskwait: task %lld timed out after %d ms",
                           (long long)id, timeout_ms);
    return rc;
}

int swoop_server_taskwait(swoop_server_t *srv, const void *data, size_t len, int timeout_ms,
                          int dst, void **result, size_t *result_len)
{
    if (result == NULL || result_len == NULL || timeout_ms <= 0) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "swoop_server_taskwait: result pointers and a timeout > 0 (%d) are required",
                  timeout_ms);
        return SWOOP_EINVAL;
    }
    *result = NULL;
    *result_len = 0;
    int t;
    int64_t id = post_task(srv, "swoop_server_taskwait", data, len, dst, TASK_AUX_WAIT, &t);
    if (id < 0)
        return (int)id;
    wait_watch(srv);
    if (swoop__co_current())
        return taskwait_co(srv, id, timeout_ms, result, result_len);
    uint64_t deadline = swoop__now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        swoop_ipc_head_t h;
        task_in_t in;
        int32_t code;
        int rc = wait_read(srv, &h, &in, &code);
        if (rc < 0)
            return rc;
        if (rc == 1 && h.conn_id != (uint64_t)id &&
            co_taskwait_deliver(srv, h.conn_id, code, &in, 0))
            continue;
        if (rc == 1 && h.conn_id != (uint64_t)id) {
            /* The result of an earlier taskwait that timed out: never handed out. */
            swoop__log_limited(SWOOP_LOG_INFO, 0,
                               "task %llu has expired: its late result is dropped",
                               (unsigned long long)h.conn_id);
            if (code == 0)
                task_payload_done(srv->task, &in);
            continue;
        }
        if (rc == 1) {
            if (code < 0)
                return code;
            *result_len = in.len;
            *result = task_payload_copy(srv->task, &in);
            return 0;
        }
        if (swoop__now_ms() >= deadline) {
            swoop__log_limited(SWOOP_LOG_WARNING, 0, "taskwait: task %lld timed out after %d ms",
                               (long long)id, timeout_ms);
            return SWOOP_ETIMEDOUT;
        }
        wait_some(srv, deadline);
    }
}

/*
 * taskwait_multi inside a coroutine: every posted task gets its own entry in
 * the parked-waits map, all naming this coroutine; each result the channel's
 * watcher hands over wakes it, and it parks again until the last is in (or
 * the deadline passes). Returns the number of results, or SWOOP_ECANCELED
 * (results freed) when swoop_co_cancel ended the wait.
 */
static int taskwait_multi_co(swoop_server_t *srv, int n, const int64_t *ids, int want,
                             int timeout_ms, uint64_t deadline, void **results, size_t *result_lens)
{
    swoop_task_t *tk = srv->task;
    if (!tk->co_waits_ready) {
        swoop__idmap_init(&tk->co_waits);
        tk->co_waits_ready = 1;
    }
    co_taskwait_t *ws = swoop_calloc((size_t)n, sizeof(*ws));
    swoop_co_t *co = swoop__co_current();
    for (int i = 0; i < n; i++) {
        ws[i].co = co;
        if (ids[i])
            swoop__idmap_put(&tk->co_waits, ids[i], &ws[i]);
    }
    int rc = 0;
    for (;;) {
        int got = 0;
        for (int i = 0; i < n; i++)
            got += ids[i] && ws[i].done;
        if (got == want)
            break;
        int left = task_queue_flush(srv);
        uint64_t now = swoop__now_ms();
        if (now >= deadline) {
            swoop__log_limited(SWOOP_LOG_WARNING, 0,
                               "taskwait_multi: %d of %d tasks timed out after %d ms", want - got,
                               n, timeout_ms);
            break;
        }
        int64_t ms = (int64_t)(deadline - now);
        if (left && ms > 1)
            ms = 1; /* bytes still queued for a task worker: retry every millisecond */
        rc = swoop__co_wait(ms, NULL);
        if (rc != 0 && rc != SWOOP_ETIMEDOUT)
            break; /* cancelled */
        rc = 0;
    }
    int done = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] == 0)
            continue;
        /* Still registered unless the watcher took it out to wake us. */
        swoop__idmap_del(&tk->co_waits, ids[i]);
        if (!ws[i].done)
            continue;
        if (ws[i].code < 0) {
            swoop__log_limited(SWOOP_LOG_WARNING, ws[i].code,
                               "taskwait_multi: task %lld has no result", (long long)ids[i]);
            continue;
        }
        if (rc < 0) {
            swoop_free(ws[i].result);
            continue;
        }
        results[i] = ws[i].result;
        result_lens[i] = ws[i].len;
        done++;
    }
    swoop_free(ws);
    return rc < 0 ? rc : done;
}

/* Checks what post_task would refuse before anything is posted. */
static int multi_check(swoop_server_t *srv, int n, const void *const *data, const size_t *lens,
                       const int *dst, int timeout_ms, void **results, size_t *result_lens)
{
    if (srv == NULL || n < 1 || n > SWOOP_TASKWAIT_MULTI_MAX || data == NULL || lens == NULL ||
        timeout_ms <= 0 || results == NULL || result_lens == NULL) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "swoop_server_taskwait_multi: n %d (1..%d), arrays and a timeout > 0 (%d) "
                  "are required",
                  n, SWOOP_TASKWAIT_MULTI_MAX, timeout_ms);
        return SWOOP_EINVAL;
    }
    swoop_task_t *tk = srv->task;
    if (tk == NULL || srv->worker_id < 0 || tk->in_task_worker) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_server_taskwait_multi: %s",
                  tk == NULL ? "no task workers (task_worker_num 0)" : "not in an event worker");
        return SWOOP_ESTATE;
    }
    for (int i = 0; i < n; i++) {
        if ((data[i] == NULL && lens[i]) || (dst && (dst[i] < -1 || dst[i] >= tk->num))) {
            swoop_log(SWOOP_LOG_WARNING, 0, "swoop_server_taskwait_multi: bad task %d", i);
            return SWOOP_EINVAL;
        }
    }
    return 0;
}

int swoop_server_taskwait_multi(swoop_server_t *srv, int n, const void *const *data,
                                const size_t *lens, const int *dst, int timeout_ms, void **results,
                                size_t *result_lens)
{
    int rc = multi_check(srv, n, data, lens, dst, timeout_ms, results, result_lens);
    if (rc < 0)
        return rc;
    wait_watch(srv);
    int64_t *ids = swoop_malloc((size_t)n * sizeof(*ids));
    char *answered = swoop_calloc((size_t)n, 1);
    int want = 0, got = 0;
    for (int i = 0; i < n; i++) {
        int t;
        results[i] = NULL;
        result_lens[i] = 0;
        ids[i] = post_task(srv, "swoop_server_taskwait_multi", data[i], lens[i], dst ? dst[i] : -1,
                           TASK_AUX_WAIT, &t);
        if (ids[i] < 0)
            ids[i] = 0; /* logged by post_task: this entry stays missing */
        want += ids[i] != 0;
    }
    uint64_t deadline = swoop__now_ms() + (uint64_t)timeout_ms;
    if (swoop__co_current()) {
        rc = taskwait_multi_co(srv, n, ids, want, timeout_ms, deadline, results, result_lens);
        swoop_free(answered);
        swoop_free(ids);
        return rc;
    }
    while (got < want) {
        swoop_ipc_head_t h;
        task_in_t in;
        int32_t code;
        rc = wait_read(srv, &h, &in, &code);
        if (rc < 0)
            break;
        if (rc == 1) {
            int i = 0;
            while (i < n && (ids[i] == 0 || (uint64_t)ids[i] != h.conn_id || answered[i]))
                i++;
            if (i == n) {
                /* A result of an earlier call that timed out: never handed out. */
                swoop__log_limited(SWOOP_LOG_INFO, 0,
                                   "task %llu has expired: its late result is dropped",
                                   (unsigned long long)h.conn_id);
                if (code == 0)
                    task_payload_done(srv->task, &in);
                continue;
            }
            answered[i] = 1;
            got++; /* answered, even without a result */
            if (code < 0) {
                swoop__log_limited(SWOOP_LOG_WARNING, code,
                                   "taskwait_multi: task %lld has no result", (long long)ids[i]);
                continue;
            }
            result_lens[i] = in.len;
            results[i] = task_payload_copy(srv->task, &in);
            continue;
        }
        if (swoop__now_ms() >= deadline) {
            swoop__log_limited(SWOOP_LOG_WARNING, 0,
                               "taskwait_multi: %d of %d tasks timed out after %d ms", want - got,
                               n, timeout_ms);
            break;
        }
        wait_some(srv, deadline);
    }
    swoop_free(answered);
    swoop_free(ids);
    int done = 0;
    for (int i = 0; i < n; i++)
        done += results[i] != NULL;
    return done;
}

/* ---- results ---- */

size_t swoop__task_abandon(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL)
        return 0;
    size_t n = (size_t)task_queue_unsent(tk);
    task_queue_drop_unsent(srv);
    /* Counted as posted, never sent: a shutdown must not wait for them. */
    if (n)
        atomic_fetch_sub(&srv->gs->task.posted, (uint64_t)n);
    swoop__task_publish_unsent(srv);
    return n;
}

/*
 * The manager's parent death signal fires when the master's main thread
 * exits: after a SIGKILL its reactor threads may still be dying then, and
 * until the last one is gone getppid() still names the master. A master
 * that stops in order sets manager_told right before it signals the
 * manager; without that, wait (bounded) to be handed to another parent.
 */
static int master_gone(swoop_server_t *srv, pid_t owner)
{
    uint64_t deadline = swoop__now_ms() + MASTER_GONE_WAIT_MS;
    while (getppid() == owner) {
        if (atomic_load(&srv->gs->manager_told) || swoop__now_ms() >= deadline)
            return 0;
        usleep(1000);
    }
    return 1;
}

void swoop__task_manager_exit(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL || tk->owner == getpid() || !master_gone(srv, tk->owner))
        return; /* the process that started the server cleans up itself */
    swoop_log(SWOOP_LOG_WARNING, 0,
              "the master (pid %d) is gone: the manager removes its task files and queue",
              (int)tk->owner);
    task_payload_sweep(srv, 0);
    if (tk->mq.id >= 0)
        swoop__msgqueue_remove(&tk->mq); /* only a private one */
}

int swoop__task_quiet(swoop_server_t *srv)
{
    if (srv->task == NULL)
        return 1;
    swoop_task_t *tk = srv->task;
    swoop_srv_task_stats_t *t = &srv->gs->task;
    /* In this order: a task counted in `taken` was marked active before. */
    uint64_t posted = atomic_load(&t->posted);
    uint64_t taken = atomic_load(&t->taken);
    if (taken < posted || atomic_load(&t->active) > 0)
        return 0;
    for (int i = 0; i < tk->nruns; i++) {
        if (atomic_load(&task_run(tk, i)->active))
            return 0;
    }
    return 1;
}

/* This event worker's slot for its taskwait channel and its unsent count. */
static int wait_slot(const swoop_server_t *srv);

void swoop__task_publish_unsent(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL || srv->worker_id < 0 || tk->in_task_worker)
        return;
    int i = wait_slot(srv);
    if (i < 0 || i >= tk->nwaits)
        return;
    int64_t n = task_queue_unsent(tk);
    _Atomic int64_t *w = task_unsent_word(tk, i);
    if (atomic_load_explicit(w, memory_order_relaxed) != n)
        atomic_store_explicit(w, n, memory_order_relaxed);
}

void swoop__task_poster_reaped(swoop_server_t *srv, int slot)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL || slot < 0 || slot >= tk->nwaits)
        return;
    int64_t n = atomic_exchange(task_unsent_word(tk, slot), 0);
    if (n > 0) {
        atomic_fetch_sub(&srv->gs->task.posted, (uint64_t)n);
        swoop_log(SWOOP_LOG_WARNING, 0, "%lld task(s) the dead worker had not sent are lost",
                  (long long)n);
    }
}

int swoop__task_flush(swoop_server_t *srv)
{
    return srv->task ? task_queue_flush(srv) : 0;
}

void swoop__task_finish_msg(swoop_server_t *srv, const swoop_ipc_msg_t *m)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL) {
        swoop_log(SWOOP_LOG_WARNING, 0, "FINISH message without task workers dropped");
        return;
    }
    if (m->head.aux & TASK_AUX_ERROR) {
        int32_t code = SWOOP_ECANCELED;
        if (m->len == sizeof(code))
            memcpy(&code, m->data, sizeof(code));
        if (code >= 0)
            code = SWOOP_ECANCELED;
        if (srv->events.on_task_error)
            srv->events.on_task_error(srv, (int64_t)m->head.conn_id, code);
        return;
    }
    task_in_t in;
    if (task_payload_take(tk, &m->head, m->data, m->len, 0, &in) < 0) {
        swoop_log(SWOOP_LOG_ERROR, 0, "the result of task %llu is lost",
                  (unsigned long long)m->head.conn_id);
        return;
    }
    if (srv->events.on_finish)
        srv->events.on_finish(srv, (int64_t)m->head.conn_id, in.data, in.len);
    task_payload_done(tk, &in);
}
