/*
 * Task workers (DESIGN.md section 2, SWOOLE-NOTES.md section 2).
 *
 * Task worker t is manager slot worker_num + t (SWOOP_SLOT_TASK, so SIGUSR2
 * reloads it). It is a blocking process: it reads its socketpair (made
 * before fork, written by every event worker) in ppoll(), runs on_task for
 * each TASK message, and swoop_server_task_finish sends the result back as
 * a FINISH message on the posting worker's message channel, where
 * on_finish runs (worker.c hands it to swoop__task_finish_msg).
 *
 * Task ids come from a counter in shared memory, so they are unique in the
 * server. An event worker picks a task worker with no task queued or
 * running (a shared busy flag, and SIOCOUTQ of its socket), else round
 * robin.
 *
 * Payloads up to SWOOP_TASK_INLINE_MAX bytes travel inside the datagram; a
 * larger one is written to mkstemp("<task_tmpdir>/swoop-task.<master
 * pid>.XXXXXX") and the message (flag TMPFILE) carries its length and path.
 * The reader checks the path has that prefix (anything else is refused,
 * never opened), reads and unlinks it. At shutdown the process that
 * started the server removes any file of that prefix left behind (a task
 * queued to a worker that never read it, a reader killed mid-way).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "event/internal.h"
#include "server/internal.h"

#define TASK_CHANNEL_BUF  (1024 * 1024)
#define TASK_PREFIX       "swoop-task."
#define FINISH_TIMEOUT_MS 30000
#define WAIT_RESULT_MS    1000 /* a taskwait result the waiter does not take is dropped */
#define TASK_AUX_WAIT     1u   /* TASK aux: the poster blocks in taskwait */
#define TASK_AUX_ERROR    2u   /* FINISH aux: the task failed (its task worker died) */

/* Per task worker, in shared memory: one cache line each. */
typedef struct task_slot_s {
    _Alignas(64) _Atomic int32_t busy; /* in on_task (reset when a process starts) */
    _Atomic int32_t cur_src;           /* the running task's poster */
    _Atomic uint64_t done;             /* tasks run by this slot (all its processes) */
    _Atomic int64_t cur_task;          /* the task in on_task, 0 if none (for on_task_error) */
    _Atomic int32_t cur_wait;          /* its poster waits in taskwait */
    _Atomic int32_t cur_pid;           /* the process running it */
    char pad_[32];
} task_slot_t;

static_assert(sizeof(task_slot_t) == 64, "one cache line per task worker");

typedef struct task_shared_s {
    _Atomic uint64_t task_seq;
    _Atomic uint32_t rr;
    char pad_[52];
    task_slot_t slots[];
} task_shared_t;

/* The payload of a TMPFILE message: the length, then the path (with its NUL). */
typedef struct task_tmpfile_s {
    uint64_t length;
} task_tmpfile_t;

typedef struct swoop_task_s {
    int num;
    pid_t owner; /* the process that opened it (master; BASE: manager) */
    char prefix[SWOOP_SERVER_PATH_MAX + 64]; /* "<tmpdir>/swoop-task.<owner>." */
    task_shared_t *sh;
    size_t sh_size;
    swoop_channel_t *chans; /* [t]: event workers -> task worker t */
    swoop_channel_t *waits; /* [w]: task workers -> event worker w's taskwait */
    char *wbuf;             /* taskwait's receive buffer */
    /* Event worker side (made at the first post). */
    swoop_ipc_out_t *outs;
    swoop_io_t *out_io;
    /* Task worker side. */
    int in_task_worker;
    int slot;
    int64_t cur_task; /* the task whose on_task runs, 0 outside */
    int cur_src;
    int cur_wait; /* the current task's poster waits in taskwait */
    int finished;
    char cur_path[SWOOP_SERVER_PATH_MAX + 72]; /* the current task's temp file, "" if inline */
} swoop_task_t;

static volatile sig_atomic_t task_stop, task_reopen;

int swoop__task_num(const swoop_server_t *srv)
{
    return srv && srv->task ? srv->task->num : 0;
}

int swoop_server_is_task_worker(const swoop_server_t *srv)
{
    return srv && srv->task && srv->task->in_task_worker;
}

const char *swoop_server_task_path(const swoop_server_t *srv)
{
    if (srv == NULL || srv->task == NULL || !srv->task->in_task_worker ||
        srv->task->cur_task == 0 || srv->task->cur_path[0] == '\0')
        return NULL;
    return srv->task->cur_path;
}

int swoop__task_check(swoop_server_t *srv)
{
    const swoop_server_settings_t *s = &srv->settings;
    if (s->task_worker_num < 0 || s->task_worker_num > 1024 ||
        (s->task_worker_num > 0 && s->worker_num + s->task_worker_num > INT16_MAX)) {
        swoop_log(SWOOP_LOG_ERROR, 0, "task_worker_num %d out of range", s->task_worker_num);
        return SWOOP_EINVAL;
    }
    if (s->task_worker_num == 0)
        return 0;
    if (s->task_ipc_mode != 1) {
        swoop_log(SWOOP_LOG_ERROR, 0, "task_ipc_mode %d is not supported yet (only 1)",
                  s->task_ipc_mode);
        return SWOOP_ENOTSUP;
    }
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

/* Removes the temp files of this server left in task_tmpdir; returns how many. */
static int sweep_tmpfiles(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    const char *dir = srv->settings.task_tmpdir;
    const char *name_prefix = tk->prefix + strlen(dir) + 1;
    size_t plen = strlen(name_prefix);
    DIR *d = opendir(dir);
    if (d == NULL) {
        swoop_log(SWOOP_LOG_WARNING, errno, "opendir(\"%s\") for the task file sweep failed", dir);
        return 0;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, name_prefix, plen) != 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            n++;
        else if (errno != ENOENT)
            swoop_log(SWOOP_LOG_WARNING, errno, "unlink of the task file %s/%s failed", dir,
                      e->d_name);
    }
    closedir(d);
    if (n)
        swoop_log(SWOOP_LOG_NOTICE, 0, "removed %d task file(s) left in %s", n, dir);
    return n;
}

static void task_free(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL)
        return;
    if (tk->chans) {
        for (int t = 0; t < tk->num; t++)
            swoop__channel_close(&tk->chans[t]);
        swoop_free(tk->chans);
    }
    if (tk->waits) {
        for (int w = 0; w < srv->worker_num; w++)
            swoop__channel_close(&tk->waits[w]);
        swoop_free(tk->waits);
    }
    swoop_free(tk->wbuf);
    if (tk->outs) {
        for (int t = 0; t < tk->num; t++)
            swoop__ipc_out_free(&tk->outs[t]);
        swoop_free(tk->outs);
    }
    swoop_free(tk->out_io);
    if (tk->sh)
        munmap(tk->sh, tk->sh_size);
    swoop_free(tk);
    srv->task = NULL;
}

int swoop__task_open(swoop_server_t *srv)
{
    int num = srv->settings.task_worker_num;
    if (num <= 0)
        return 0;
    swoop_task_t *tk = swoop_calloc(1, sizeof(*tk));
    srv->task = tk;
    tk->num = num;
    tk->owner = getpid();
    tk->cur_src = -1;
    snprintf(tk->prefix, sizeof(tk->prefix), "%s/" TASK_PREFIX "%d.", srv->settings.task_tmpdir,
             (int)tk->owner);
    tk->sh_size = sizeof(task_shared_t) + (size_t)num * sizeof(task_slot_t);
    void *p = mmap(NULL, tk->sh_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "mmap() of the %zu-byte task state failed", tk->sh_size);
        tk->sh = NULL;
        task_free(srv);
        return -err;
    }
    tk->sh = p;
    tk->chans = swoop_calloc((size_t)num, sizeof(*tk->chans));
    for (int t = 0; t < num; t++)
        tk->chans[t].fds[0] = tk->chans[t].fds[1] = -1;
    for (int t = 0; t < num; t++) {
        int rc = swoop__channel_open(&tk->chans[t], TASK_CHANNEL_BUF);
        if (rc < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "socketpair() of task worker %d failed", t);
            task_free(srv);
            return rc;
        }
    }
    tk->waits = swoop_calloc((size_t)srv->worker_num, sizeof(*tk->waits));
    for (int w = 0; w < srv->worker_num; w++)
        tk->waits[w].fds[0] = tk->waits[w].fds[1] = -1;
    for (int w = 0; w < srv->worker_num; w++) {
        int rc = swoop__channel_open(&tk->waits[w], TASK_CHANNEL_BUF);
        if (rc < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "socketpair() of worker %d's taskwait failed", w);
            task_free(srv);
            return rc;
        }
    }
    return 0;
}

void swoop__task_close(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL)
        return;
    if (tk->owner == getpid())
        sweep_tmpfiles(srv);
    task_free(srv);
}

void swoop__task_manager_setup(swoop_server_t *srv, swoop_manager_t *mgr)
{
    for (int t = 0; t < swoop__task_num(srv); t++)
        swoop__manager_set_flags(mgr, srv->worker_num + t, SWOOP_SLOT_TASK);
}

/* ---- payloads: inline or through a temp file ---- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Writes `data` to a new temp file; fills `path`. Returns 0 or -errno (logged). */
static int tmpfile_write(swoop_task_t *tk, const void *data, size_t len, char *path, size_t cap)
{
    int n = snprintf(path, cap, "%sXXXXXX", tk->prefix);
    if (n < 0 || (size_t)n >= cap) {
        swoop_log(SWOOP_LOG_ERROR, 0, "task temp file path too long (%s)", tk->prefix);
        return SWOOP_ENAMETOOLONG;
    }
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "mkstemp(\"%s\") for a %zu-byte task payload failed", path,
                  len);
        return -err;
    }
    int rc = write_all(fd, data, len);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        swoop_log(SWOOP_LOG_ERROR, rc, "writing %zu bytes to the task file %s failed", len, path);
        unlink(path);
    }
    return rc;
}

/*
 * Reads and unlinks the temp file a TMPFILE message names. Returns 0 and
 * sets *out (malloc'd; NULL for 0 bytes) and *len, or a negative error
 * (logged; a path outside our prefix is never touched).
 */
static int tmpfile_take(swoop_task_t *tk, const char *payload, size_t plen, char **out, size_t *len)
{
    task_tmpfile_t tf;
    if (plen < sizeof(tf) + 2 || payload[plen - 1] != '\0') {
        swoop_log(SWOOP_LOG_WARNING, 0, "malformed TMPFILE message (%zu bytes) dropped", plen);
        return SWOOP_EPROTO;
    }
    memcpy(&tf, payload, sizeof(tf));
    const char *path = payload + sizeof(tf);
    size_t pre = strlen(tk->prefix);
    if (strncmp(path, tk->prefix, pre) != 0 || strchr(path + pre, '/') != NULL) {
        swoop_log(SWOOP_LOG_WARNING, 0, "TMPFILE message names a foreign path \"%s\": dropped",
                  path);
        return SWOOP_EPROTO;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "open(\"%s\") of a task file failed", path);
        return -err;
    }
    unlink(path);
    struct stat st;
    int rc = 0;
    char *buf = NULL;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        swoop_log(SWOOP_LOG_ERROR, rc, "fstat() of the task file %s failed", path);
    } else if ((uint64_t)st.st_size != tf.length) {
        rc = SWOOP_EPROTO;
        swoop_log(SWOOP_LOG_ERROR, 0, "task file %s holds %lld bytes, the message says %llu", path,
                  (long long)st.st_size, (unsigned long long)tf.length);
    } else if (tf.length > 0) {
        buf = swoop_malloc((size_t)tf.length);
        size_t got = 0;
        while (got < tf.length) {
            ssize_t k = read(fd, buf + got, (size_t)tf.length - got);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                rc = k < 0 ? -errno : SWOOP_EIO;
                swoop_log(SWOOP_LOG_ERROR, rc, "read() of the task file %s failed", path);
                break;
            }
            got += (size_t)k;
        }
    }
    close(fd);
    if (rc < 0) {
        swoop_free(buf);
        return rc;
    }
    *out = buf;
    *len = (size_t)tf.length;
    return 0;
}

/*
 * Builds the message for `data`: inline, or a temp file. On return with 0,
 * the payload pieces are (p1, l1) and (p2, l2) (the path lives in `path`);
 * h->flags carries TMPFILE for a file.
 */
static int pack(swoop_task_t *tk, swoop_ipc_head_t *h, const void *data, size_t len,
                task_tmpfile_t *tf, char *path, size_t cap, const void **p1, size_t *l1,
                const void **p2, size_t *l2)
{
    if (len <= SWOOP_TASK_INLINE_MAX) {
        *p1 = data;
        *l1 = len;
        *p2 = NULL;
        *l2 = 0;
        return 0;
    }
    int rc = tmpfile_write(tk, data, len, path, cap);
    if (rc < 0)
        return rc;
    tf->length = len;
    h->flags |= SWOOP_IPC_TMPFILE;
    *p1 = tf;
    *l1 = sizeof(*tf);
    *p2 = path;
    *l2 = strlen(path) + 1;
    return 0;
}

/* Reads the payload of a received message; *owned is set when it must be freed. */
static int unpack(swoop_task_t *tk, const swoop_ipc_head_t *h, char *payload, size_t plen,
                  char **data, size_t *len, char **owned)
{
    *owned = NULL;
    if (!(h->flags & SWOOP_IPC_TMPFILE)) {
        *data = payload;
        *len = plen;
        return 0;
    }
    int rc = tmpfile_take(tk, payload, plen, data, len);
    if (rc == 0)
        *owned = *data;
    return rc;
}

/* ---- event worker side ---- */

static void task_out_cb(swoop_io_t *io, unsigned events)
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
        swoop_io_init(loop, &tk->out_io[t], tk->chans[t].fds[0], task_out_cb);
    }
    return 0;
}

/*
 * Idle: not in on_task, and nothing waiting for it, neither in our queue
 * nor in its socket. Every event worker writes through the same socket
 * (one open file), so SIOCOUTQ counts what all of them queued; a task
 * worker killed mid-task does not stay "busy", since its successor resets
 * the flag.
 */
static int task_idle(swoop_task_t *tk, int t)
{
    if (atomic_load_explicit(&tk->sh->slots[t].busy, memory_order_relaxed) ||
        swoop__ipc_pending(&tk->outs[t]))
        return 0;
    int queued = 0;
    return ioctl(tk->chans[t].fds[0], SIOCOUTQ, &queued) == 0 && queued == 0;
}

static int pick_task_worker(swoop_task_t *tk)
{
    unsigned start = atomic_fetch_add_explicit(&tk->sh->rr, 1, memory_order_relaxed);
    for (int i = 0; i < tk->num; i++) {
        int t = (int)((start + (unsigned)i) % (unsigned)tk->num);
        if (task_idle(tk, t))
            return t;
    }
    return (int)(start % (unsigned)tk->num);
}

/* Posts one task; `aux` TASK_AUX_WAIT for taskwait. Sets *tout to the task worker. */
static int64_t post_task(swoop_server_t *srv, const char *fn, const void *data, size_t len, int dst,
                         uint32_t aux, int *tout)
{
    if (srv == NULL || (data == NULL && len))
        return SWOOP_EINVAL;
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
    int rc;
    if (tk->outs == NULL && (rc = outs_init(srv)) < 0)
        return rc;
    int t = dst >= 0 ? dst : pick_task_worker(tk);
    int64_t id = (int64_t)atomic_fetch_add(&tk->sh->task_seq, 1) + 1;
    swoop_ipc_head_t h = {.type = SWOOP_IPC_TASK,
                          .worker_id = (int16_t)srv->worker_id,
                          .aux = aux,
                          .conn_id = (uint64_t)id};
    task_tmpfile_t tf;
    char path[sizeof(tk->prefix) + 8];
    const void *p1, *p2;
    size_t l1, l2;
    if ((rc = pack(tk, &h, data, len, &tf, path, sizeof(path), &p1, &l1, &p2, &l2)) < 0)
        return rc;
    rc = swoop__ipc_send2(&tk->outs[t], &h, p1, l1, p2, l2);
    if (rc < 0) {
        if (h.flags & SWOOP_IPC_TMPFILE)
            unlink(path);
        swoop_log(SWOOP_LOG_ERROR, rc, "posting task %lld to task worker %d failed", (long long)id,
                  t);
        return rc;
    }
    if (rc == 1 && !(tk->out_io[t]._events & SWOOP_WRITABLE))
        swoop_io_start(&tk->out_io[t], SWOOP_WRITABLE);
    *tout = t;
    return id;
}

int64_t swoop_server_task(swoop_server_t *srv, const void *data, size_t len, int dst)
{
    int t;
    return post_task(srv, "swoop_server_task", data, len, dst, 0, &t);
}

int swoop_server_taskwait(swoop_server_t *srv, const void *data, size_t len, int timeout_ms,
                          int dst, void **result, size_t *result_len)
{
    if (result == NULL || result_len == NULL || timeout_ms <= 0)
        return SWOOP_EINVAL;
    *result = NULL;
    *result_len = 0;
    int t;
    int64_t id = post_task(srv, "swoop_server_taskwait", data, len, dst, TASK_AUX_WAIT, &t);
    if (id < 0)
        return (int)id;
    swoop_task_t *tk = srv->task;
    if (tk->wbuf == NULL)
        tk->wbuf = swoop_malloc(SWOOP_IPC_MAX);
    int wfd = tk->waits[srv->worker_id].fds[1];
    swoop_ipc_out_t *out = &tk->outs[t];
    uint64_t deadline = swoop__now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        /* The task may still sit in our queue: it must leave while we wait. */
        int pending = swoop__ipc_pending(out) && swoop__ipc_flush(out) == 1;
        ssize_t n = swoop__channel_recv(wfd, tk->wbuf, SWOOP_IPC_MAX);
        if (n >= (ssize_t)sizeof(swoop_ipc_head_t)) {
            swoop_ipc_head_t h;
            memcpy(&h, tk->wbuf, sizeof(h));
            if (h.type != SWOOP_IPC_FINISH || (h.flags & SWOOP_IPC_CHUNK) ||
                h.len != (size_t)n - sizeof(h)) {
                swoop_log(SWOOP_LOG_WARNING, 0, "malformed taskwait result (%zd bytes) dropped", n);
                continue;
            }
            char *d, *owned;
            size_t dlen;
            int rc = unpack(tk, &h, tk->wbuf + sizeof(h), h.len, &d, &dlen, &owned);
            if (h.conn_id != (uint64_t)id) {
                /* The result of an earlier taskwait that timed out: never handed out. */
                swoop_log(SWOOP_LOG_INFO, 0, "task %llu has expired: its late result is dropped",
                          (unsigned long long)h.conn_id);
                swoop_free(owned);
                continue;
            }
            if (rc < 0)
                return rc;
            if (owned) {
                *result = owned;
            } else {
                *result = swoop_malloc(dlen ? dlen : 1);
                memcpy(*result, d, dlen);
            }
            *result_len = dlen;
            return 0;
        }
        if (n >= 0) {
            swoop_log(SWOOP_LOG_WARNING, 0, "short taskwait result (%zd bytes) dropped", n);
            continue;
        }
        if (n != SWOOP_EAGAIN && n != SWOOP_EMSGSIZE) {
            swoop_log(SWOOP_LOG_ERROR, (int)n, "taskwait: reading the result channel failed");
            return (int)n;
        }
        uint64_t now = swoop__now_ms();
        if (now >= deadline) {
            swoop_log(SWOOP_LOG_WARNING, 0, "taskwait: task %lld timed out after %d ms",
                      (long long)id, timeout_ms);
            return SWOOP_ETIMEDOUT;
        }
        struct pollfd pf[2] = {{.fd = wfd, .events = POLLIN}, {.fd = out->fd, .events = POLLOUT}};
        poll(pf, pending ? 2 : 1, (int)(deadline - now));
    }
}

/* Checks what post_task would refuse before anything is posted. */
static int multi_check(swoop_server_t *srv, int n, const void *const *data, const size_t *lens,
                       const int *dst, int timeout_ms, void **results, size_t *result_lens)
{
    if (srv == NULL || n < 1 || n > SWOOP_TASKWAIT_MULTI_MAX || data == NULL || lens == NULL ||
        timeout_ms <= 0 || results == NULL || result_lens == NULL)
        return SWOOP_EINVAL;
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

/* Sends what our queues hold; fills pf[1..] with the task sockets still to drain. */
static int multi_flush(swoop_task_t *tk, struct pollfd *pf)
{
    int np = 0;
    for (int t = 0; tk->outs && t < tk->num; t++) {
        if (swoop__ipc_pending(&tk->outs[t]) && swoop__ipc_flush(&tk->outs[t]) == 1)
            pf[np++] = (struct pollfd){.fd = tk->outs[t].fd, .events = POLLOUT};
    }
    return np;
}

int swoop_server_taskwait_multi(swoop_server_t *srv, int n, const void *const *data,
                                const size_t *lens, const int *dst, int timeout_ms, void **results,
                                size_t *result_lens)
{
    int rc = multi_check(srv, n, data, lens, dst, timeout_ms, results, result_lens);
    if (rc < 0)
        return rc;
    swoop_task_t *tk = srv->task;
    int64_t *ids = swoop_malloc((size_t)n * sizeof(*ids));
    for (int i = 0; i < n; i++) {
        int t;
        results[i] = NULL;
        result_lens[i] = 0;
        ids[i] = post_task(srv, "swoop_server_taskwait_multi", data[i], lens[i], dst ? dst[i] : -1,
                           TASK_AUX_WAIT, &t);
        if (ids[i] < 0)
            ids[i] = 0; /* logged by post_task: this entry stays missing */
    }
    if (tk->wbuf == NULL)
        tk->wbuf = swoop_malloc(SWOOP_IPC_MAX);
    struct pollfd *pf = swoop_malloc((size_t)(tk->num + 1) * sizeof(*pf));
    int wfd = tk->waits[srv->worker_id].fds[1];
    int want = 0, got = 0;
    for (int i = 0; i < n; i++)
        want += ids[i] != 0;
    uint64_t deadline = swoop__now_ms() + (uint64_t)timeout_ms;
    while (got < want) {
        /* Our tasks may still sit in the queues: they must leave while we wait. */
        int np = multi_flush(tk, pf + 1);
        ssize_t k = swoop__channel_recv(wfd, tk->wbuf, SWOOP_IPC_MAX);
        if (k >= (ssize_t)sizeof(swoop_ipc_head_t)) {
            swoop_ipc_head_t h;
            memcpy(&h, tk->wbuf, sizeof(h));
            if (h.type != SWOOP_IPC_FINISH || (h.flags & SWOOP_IPC_CHUNK) ||
                h.len != (size_t)k - sizeof(h)) {
                swoop_log(SWOOP_LOG_WARNING, 0, "malformed taskwait result (%zd bytes) dropped", k);
                continue;
            }
            char *d, *owned;
            size_t dlen;
            int urc = unpack(tk, &h, tk->wbuf + sizeof(h), h.len, &d, &dlen, &owned);
            int i = 0;
            while (i < n && (ids[i] == 0 || (uint64_t)ids[i] != h.conn_id || results[i]))
                i++;
            if (i == n) {
                /* A result of an earlier call that timed out: never handed out. */
                swoop_log(SWOOP_LOG_INFO, 0, "task %llu has expired: its late result is dropped",
                          (unsigned long long)h.conn_id);
                swoop_free(owned);
                continue;
            }
            got++; /* answered, even if its payload is lost */
            if (urc < 0) {
                swoop_log(SWOOP_LOG_ERROR, urc, "taskwait_multi: the result of task %lld is lost",
                          (long long)ids[i]);
                continue;
            }
            if (owned == NULL) {
                owned = swoop_malloc(dlen ? dlen : 1);
                memcpy(owned, d, dlen);
            }
            results[i] = owned;
            result_lens[i] = dlen;
            continue;
        }
        if (k >= 0) {
            swoop_log(SWOOP_LOG_WARNING, 0, "short taskwait result (%zd bytes) dropped", k);
            continue;
        }
        if (k != SWOOP_EAGAIN && k != SWOOP_EMSGSIZE) {
            swoop_log(SWOOP_LOG_ERROR, (int)k, "taskwait_multi: reading the result channel failed");
            break;
        }
        uint64_t now = swoop__now_ms();
        if (now >= deadline) {
            swoop_log(SWOOP_LOG_WARNING, 0, "taskwait_multi: %d of %d tasks timed out after %d ms",
                      want - got, n, timeout_ms);
            break;
        }
        pf[0] = (struct pollfd){.fd = wfd, .events = POLLIN};
        poll(pf, (nfds_t)np + 1, (int)(deadline - now));
    }
    swoop_free(pf);
    swoop_free(ids);
    int done = 0;
    for (int i = 0; i < n; i++)
        done += results[i] != NULL;
    return done;
}

int swoop__task_flush(swoop_server_t *srv)
{
    swoop_task_t *tk = srv->task;
    int left = 0;
    for (int t = 0; tk && tk->outs && t < tk->num; t++)
        left |= swoop__ipc_pending(&tk->outs[t]) && swoop__ipc_flush(&tk->outs[t]) == 1;
    return left;
}

void swoop__task_finish_msg(swoop_server_t *srv, const swoop_ipc_msg_t *m)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL) {
        swoop_log(SWOOP_LOG_WARNING, 0, "FINISH message without task workers dropped");
        return;
    }
    if (m->head.aux & TASK_AUX_ERROR) {
        if (srv->events.on_task_error)
            srv->events.on_task_error(srv, (int64_t)m->head.conn_id, SWOOP_ECANCELED);
        return;
    }
    char *data, *owned;
    size_t len;
    if (unpack(tk, &m->head, m->data, m->len, &data, &len, &owned) < 0) {
        swoop_log(SWOOP_LOG_ERROR, 0, "the result of task %llu is lost",
                  (unsigned long long)m->head.conn_id);
        return;
    }
    if (srv->events.on_finish)
        srv->events.on_finish(srv, (int64_t)m->head.conn_id, data, len);
    swoop_free(owned);
}

void swoop__task_worker_died(swoop_server_t *srv, int id, pid_t pid)
{
    swoop_task_t *tk = srv->task;
    if (tk == NULL || id < srv->worker_num || id >= srv->worker_num + tk->num)
        return;
    task_slot_t *slot = &tk->sh->slots[id - srv->worker_num];
    /* A process that left its slot (reload) may die after its successor took a task. */
    if (atomic_load(&slot->cur_pid) != pid)
        return;
    atomic_store(&slot->busy, 0);
    int64_t task = atomic_exchange(&slot->cur_task, 0);
    if (task == 0)
        return;
    int src = atomic_load(&slot->cur_src);
    if (atomic_load(&slot->cur_wait) || src < 0 || src >= srv->worker_num) {
        swoop_log(SWOOP_LOG_WARNING, 0, "task worker %d died in task %lld (taskwait: it times out)",
                  id, (long long)task);
        return;
    }
    swoop_log(SWOOP_LOG_WARNING, 0, "task worker %d died in task %lld: on_task_error in worker %d",
              id, (long long)task, src);
    swoop_ipc_head_t h = {.type = SWOOP_IPC_FINISH,
                          .worker_id = (int16_t)id,
                          .aux = TASK_AUX_ERROR,
                          .conn_id = (uint64_t)task};
    int rc = swoop__channel_send(srv->msgs[src].fds[0], &h, sizeof(h));
    if (rc < 0)
        swoop_log(SWOOP_LOG_ERROR, rc, "cannot tell worker %d that task %lld failed", src,
                  (long long)task);
}

/* ---- task worker side ---- */

static void on_task_signal(int signo)
{
    if (signo == SIGTERM)
        task_stop = 1;
    else
        task_reopen = 1;
}

/* Sends one datagram, waiting (bounded) while the peer's buffer is full. */
static int send_blocking(int fd, const swoop_ipc_head_t *h, const void *p1, size_t l1,
                         const void *p2, size_t l2, int timeout_ms)
{
    char buf[sizeof(*h) + SWOOP_TASK_INLINE_MAX + sizeof(task_tmpfile_t) + 8];
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
    if (tk->cur_src < 0 || tk->cur_src >= srv->worker_num) {
        swoop_log(SWOOP_LOG_WARNING, 0, "task %lld: source worker %d unknown",
                  (long long)tk->cur_task, tk->cur_src);
        return SWOOP_EINVAL;
    }
    swoop_ipc_head_t h = {.type = SWOOP_IPC_FINISH,
                          .worker_id = (int16_t)srv->worker_id,
                          .conn_id = (uint64_t)tk->cur_task};
    task_tmpfile_t tf;
    char path[sizeof(tk->prefix) + 8];
    const void *p1, *p2;
    size_t l1, l2;
    int rc = pack(tk, &h, data, len, &tf, path, sizeof(path), &p1, &l1, &p2, &l2);
    if (rc < 0)
        return rc;
    if (tk->cur_wait)
        rc = send_blocking(tk->waits[tk->cur_src].fds[0], &h, p1, l1, p2, l2, WAIT_RESULT_MS);
    else
        rc = send_blocking(srv->msgs[tk->cur_src].fds[0], &h, p1, l1, p2, l2, FINISH_TIMEOUT_MS);
    if (rc < 0) {
        if (h.flags & SWOOP_IPC_TMPFILE)
            unlink(path);
        swoop_log(SWOOP_LOG_ERROR, rc, "sending the result of task %lld to worker %d failed",
                  (long long)tk->cur_task, tk->cur_src);
        return rc;
    }
    tk->finished = 1;
    return 0;
}

/* Runs one TASK datagram; returns 1 if on_task ran, else 0 (dropped, logged). */
static int run_task(swoop_server_t *srv, char *dgram, size_t n)
{
    swoop_task_t *tk = srv->task;
    swoop_ipc_head_t h;
    if (n < sizeof(h)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "short datagram (%zu bytes) on the task channel dropped",
                  n);
        return 0;
    }
    memcpy(&h, dgram, sizeof(h));
    if (h.type != SWOOP_IPC_TASK || (h.flags & SWOOP_IPC_CHUNK) || h.len != n - sizeof(h) ||
        h.conn_id == 0) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "malformed message (type %u, flags 0x%x, %zu bytes) on the task channel dropped",
                  h.type, h.flags, n);
        return 0;
    }
    task_slot_t *slot = &tk->sh->slots[tk->slot];
    char *data, *owned;
    size_t len;
    if (unpack(tk, &h, dgram + sizeof(h), h.len, &data, &len, &owned) < 0) {
        swoop_log(SWOOP_LOG_ERROR, 0, "task %llu from worker %d is lost",
                  (unsigned long long)h.conn_id, h.worker_id);
        return 0;
    }
    /* tmpfile_take checked the path: it is NUL-terminated and under our prefix. */
    tk->cur_path[0] = '\0';
    if (h.flags & SWOOP_IPC_TMPFILE)
        snprintf(tk->cur_path, sizeof(tk->cur_path), "%s",
                 dgram + sizeof(h) + sizeof(task_tmpfile_t));
    tk->cur_task = (int64_t)h.conn_id;
    tk->cur_src = h.worker_id;
    tk->cur_wait = (h.aux & TASK_AUX_WAIT) != 0;
    tk->finished = 0;
    atomic_store(&slot->busy, 1);
    atomic_store(&slot->cur_src, h.worker_id);
    atomic_store(&slot->cur_wait, tk->cur_wait);
    atomic_store(&slot->cur_pid, getpid());
    atomic_store(&slot->cur_task, (int64_t)h.conn_id);
    srv->events.on_task(srv, (int64_t)h.conn_id, h.worker_id, data, len);
    atomic_store(&slot->cur_task, 0);
    atomic_store(&slot->busy, 0);
    atomic_fetch_add(&slot->done, 1);
    tk->cur_task = 0;
    tk->cur_src = -1;
    swoop_free(owned);
    atomic_fetch_add_explicit(&srv->proc_stats[srv->worker_id].requests, 1, memory_order_relaxed);
    return 1;
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

int swoop__task_worker_main(swoop_server_t *srv, int id)
{
    swoop_task_t *tk = srv->task;
    int t = id - srv->worker_num;
    srv->worker_id = id;
    srv->running = 0;
    srv->pid_file_written = 0;
    tk->in_task_worker = 1;
    tk->slot = t;
    atomic_store(&tk->sh->slots[t].busy, 0); /* a predecessor may have died in on_task */
    tk->cur_src = -1;
    swoop_log_set_role(SWOOP_ROLE_TASKER, id);
    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the group: the manager stops us in order */
    atomic_store(&srv->proc_stats[id].pid, getpid());
    atomic_store(&srv->proc_stats[id].requests, 0);

    /* Only what a task worker uses: its channel's read end, the message channels' write ends. */
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (!p->dgram && p->fd >= 0) {
            close(p->fd);
            p->fd = -1;
        }
    }
    for (int w = 0; w < srv->worker_num; w++) {
        swoop__channel_close_end(&srv->msgs[w], 1);
        swoop__channel_close_end(&tk->waits[w], 1);
    }
    for (int i = 0; srv->pairs && i < srv->worker_num * srv->reactor_num; i++)
        swoop__channel_close(&srv->pairs[i]);
    for (int i = 0; i < tk->num; i++) {
        swoop__channel_close_end(&tk->chans[i], 0);
        if (i != t)
            swoop__channel_close_end(&tk->chans[i], 1);
    }
    int fd = tk->chans[t].fds[1];

    /* SIGTERM and SIGRTMIN stay blocked (spawn) except inside ppoll: a task is never cut. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_task_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGRTMIN, &sa, NULL);
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGRTMIN);
    task_stop = 0;
    task_reopen = 0;

    if (srv->events.on_worker_start)
        srv->events.on_worker_start(srv, id);
    char *buf = swoop_malloc(SWOOP_IPC_MAX);
    int64_t limit = srv->settings.task_max_request, ran = 0;
    atomic_store(&srv->proc_stats[id].request_limit, limit);
    int rc = 0;
    while (!task_stop) {
        sigset_t pend;
        if (sigpending(&pend) == 0 && sigismember(&pend, SIGTERM))
            break;
        ssize_t n = swoop__channel_recv(fd, buf, SWOOP_IPC_MAX);
        if (n >= 0) {
            ran += run_task(srv, buf, (size_t)n);
            if (limit > 0 && ran >= limit) {
                retire(srv, id);
                break;
            }
            continue;
        }
        if (n == SWOOP_EMSGSIZE)
            continue;
        if (n != SWOOP_EAGAIN) {
            swoop_log(SWOOP_LOG_ERROR, (int)n, "task worker %d: reading its channel failed", id);
            rc = 1;
            break;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (ppoll(&pf, 1, NULL, &waitmask) < 0 && errno != EINTR) {
            swoop_log(SWOOP_LOG_ERROR, errno, "task worker %d: ppoll() failed", id);
            rc = 1;
            break;
        }
        if (task_reopen) {
            task_reopen = 0;
            int err = swoop_log_reopen();
            if (err < 0)
                swoop_log(SWOOP_LOG_ERROR, err, "reopening the log file failed");
        }
    }
    swoop_free(buf);
    if (srv->events.on_worker_stop)
        srv->events.on_worker_stop(srv, id);
    /* _exit follows in spawn. */
    return rc;
}
