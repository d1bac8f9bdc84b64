/*
 * How a task's payload (or a result) travels (DESIGN.md section 2, the
 * seed's 8 KiB rule):
 *   - up to tk->inline_max bytes inside the message (SWOOP_TASK_INLINE_MAX,
 *     less in task_ipc_mode 2, 3 when kernel.msgmax is below 8 KiB);
 *   - larger, up to one block (64 KiB) of the spill file: one temporary file
 *     in task_tmpdir, made and unlinked at start, mapped by every process.
 *     The message (flag SPILL) carries the block, its generation, the length
 *     and the server run's random id (a queue with a fixed key can keep a
 *     message beyond the run whose spill file it names); the reader uses
 *     the bytes in place and frees the block. A
 *     file per message costs ~40 us each way (create, write, open, read,
 *     unlink); a block costs a copy.
 *   - otherwise (larger still, spill file full or off) a file of its own,
 *     mkostemp("<task_tmpdir>/swoop-task.<pid>.XXXXXX"): the message (flag
 *     TMPFILE) carries its length and path; the reader checks the path has
 *     our prefix (anything else is refused, never opened), reads and
 *     unlinks it.
 * Nothing is left behind: the spill file has no name once mapped, and the
 * process that started the server removes any leftover file of its prefix
 * at shutdown (a task queued to a worker that never read it, a reader
 * killed mid-way).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/procstat.h"
#include "task/internal.h"

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

/* Writes `data` to a new file; fills `path`. Returns 0 or an error (logged). */
static int file_write(swoop_task_t *tk, const void *data, size_t len, char *path, size_t cap)
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

int task_payload_pack(swoop_task_t *tk, swoop_ipc_head_t *h, const void *data, size_t len,
                      task_out_t *out)
{
    out->p2 = NULL;
    out->l2 = 0;
    /* Not SWOOP_TASK_INLINE_MAX: a smaller msgmax would make msgsnd refuse the message. */
    if (len <= tk->inline_max) {
        out->p1 = data;
        out->l1 = len;
        return 0;
    }
    void *block;
    if (tk->spill && len <= swoop__spill_block_size(tk->spill) &&
        swoop__spill_alloc(tk->spill, len, &out->u.ref, &block) == 0) {
        memcpy(block, data, len);
        /* Published before the message leaves: its reader may claim it at once. */
        if (swoop__spill_publish(tk->spill, &out->u.ref) == 0) {
            h->flags |= SWOOP_IPC_SPILL;
            out->p1 = &out->u.ref;
            out->l1 = sizeof(out->u.ref);
            out->p2 = &tk->run_id;
            out->l2 = sizeof(tk->run_id);
            return 0;
        }
        swoop__spill_free(tk->spill, &out->u.ref); /* logged by publish; a file instead */
    }
    int rc = file_write(tk, data, len, out->path, sizeof(out->path));
    if (rc < 0)
        return rc;
    out->u.tf.length = len;
    h->flags |= SWOOP_IPC_TMPFILE;
    out->p1 = &out->u.tf;
    out->l1 = sizeof(out->u.tf);
    out->p2 = out->path;
    out->l2 = strlen(out->path) + 1;
    return 0;
}

void task_payload_discard(swoop_task_t *tk, const swoop_ipc_head_t *h, task_out_t *out)
{
    if (h->flags & SWOOP_IPC_TMPFILE) {
        unlink(out->path);
    } else if (h->flags & SWOOP_IPC_SPILL) {
        /* Published: take it back as a reader would, then free it. */
        if (swoop__spill_claim(tk->spill, &out->u.ref) != NULL)
            swoop__spill_free(tk->spill, &out->u.ref);
    }
}

/* The path a TMPFILE message names, or NULL (logged) when it is malformed or not ours. */
static const char *file_path(swoop_task_t *tk, const char *payload, size_t plen, task_tmpfile_t *tf)
{
    if (plen < sizeof(*tf) + 2 || plen - sizeof(*tf) > TASK_PATH_MAX || payload[plen - 1] != '\0') {
        swoop_log(SWOOP_LOG_WARNING, 0, "malformed TMPFILE message (%zu bytes) dropped", plen);
        return NULL;
    }
    memcpy(tf, payload, sizeof(*tf));
    const char *path = payload + sizeof(*tf);
    size_t pre = strlen(tk->prefix);
    if (strncmp(path, tk->prefix, pre) != 0 || strchr(path + pre, '/') != NULL) {
        swoop_log(SWOOP_LOG_WARNING, 0, "TMPFILE message names a foreign path \"%s\": dropped",
                  path);
        return NULL;
    }
    return path;
}

/* Reads the file a TMPFILE message names into in->owned. 0 or an error (logged). */
static int file_take(swoop_task_t *tk, const char *payload, size_t plen, task_in_t *in)
{
    task_tmpfile_t tf;
    const char *path = file_path(tk, payload, plen, &tf);
    if (path == NULL)
        return SWOOP_EPROTO;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "open(\"%s\") of a task file failed", path);
        return -err;
    }
    memcpy(in->path, path, strlen(path) + 1);
    if (!in->keep_file)
        unlink(path);
    struct stat st;
    int rc = 0;
    char *buf = NULL;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        swoop_log(SWOOP_LOG_ERROR, rc, "fstat() of the task file %s failed", path);
    } else if ((uint64_t)st.st_size != tf.length || tf.length > SIZE_MAX / 2) {
        rc = SWOOP_EPROTO;
        swoop_log(SWOOP_LOG_ERROR, 0, "task file %s holds %lld bytes, the message says %llu", path,
                  (long long)st.st_size, (unsigned long long)tf.length);
    } else {
        buf = swoop_malloc(tf.length ? (size_t)tf.length : 1);
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
        if (in->keep_file)
            unlink(in->path);
        in->path[0] = '\0';
        return rc;
    }
    in->owned = buf;
    in->data = buf;
    in->len = (size_t)tf.length;
    return 0;
}

int task_payload_take(swoop_task_t *tk, const swoop_ipc_head_t *h, const char *payload, size_t plen,
                      int keep_file, task_in_t *in)
{
    memset(in, 0, offsetof(task_in_t, path));
    in->path[0] = '\0';
    in->keep_file = keep_file;
    if (h->flags & SWOOP_IPC_TMPFILE)
        return file_take(tk, payload, plen, in);
    if (h->flags & SWOOP_IPC_SPILL) {
        uint64_t id;
        if (tk->spill == NULL || plen != sizeof(in->ref) + sizeof(id)) {
            swoop_log(SWOOP_LOG_WARNING, 0, "malformed SPILL message (%zu bytes) dropped", plen);
            return SWOOP_EPROTO;
        }
        memcpy(&in->ref, payload, sizeof(in->ref));
        memcpy(&id, payload + sizeof(in->ref), sizeof(id));
        if (id != tk->run_id) {
            /* A message a queue with a fixed key kept from an earlier run: its block is gone. */
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "SPILL message of another server run (%016llx, ours %016llx): its payload "
                      "is gone",
                      (unsigned long long)id, (unsigned long long)tk->run_id);
            return SWOOP_EPROTO;
        }
        const void *p = swoop__spill_claim(tk->spill, &in->ref); /* checks it, logs a bad one */
        if (p == NULL)
            return SWOOP_EPROTO;
        in->spilled = 1;
        in->data = p;
        in->len = (size_t)in->ref.len;
        return 0;
    }
    in->data = payload;
    in->len = plen;
    return 0;
}

uint64_t task_payload_len(const swoop_ipc_head_t *h, const char *payload, size_t plen)
{
    if (h->flags & SWOOP_IPC_TMPFILE) {
        task_tmpfile_t tf;
        if (plen < sizeof(tf))
            return 0;
        memcpy(&tf, payload, sizeof(tf));
        return tf.length;
    }
    if (h->flags & SWOOP_IPC_SPILL) {
        swoop_spill_ref_t ref;
        if (plen < sizeof(ref))
            return 0;
        memcpy(&ref, payload, sizeof(ref));
        return ref.len;
    }
    return plen;
}

void task_payload_done(swoop_task_t *tk, task_in_t *in)
{
    if (in->spilled) {
        swoop__spill_free(tk->spill, &in->ref);
        in->spilled = 0;
    }
    if (in->keep_file && in->path[0]) {
        unlink(in->path);
        in->path[0] = '\0';
    }
    swoop_free(in->owned);
    in->owned = NULL;
    in->data = NULL;
}

void *task_payload_copy(swoop_task_t *tk, task_in_t *in)
{
    void *copy = in->owned;
    if (copy == NULL) {
        copy = swoop_malloc(in->len ? in->len : 1);
        memcpy(copy, in->data, in->len);
    }
    in->owned = NULL;
    task_payload_done(tk, in);
    return copy;
}

void task_payload_drop(swoop_task_t *tk, const char *msg, size_t len)
{
    swoop_ipc_head_t h;
    if (len < sizeof(h))
        return;
    memcpy(&h, msg, sizeof(h));
    if (!(h.flags & (SWOOP_IPC_TMPFILE | SWOOP_IPC_SPILL)) || h.len != len - sizeof(h))
        return;
    if (h.flags & SWOOP_IPC_TMPFILE) {
        task_tmpfile_t tf;
        const char *path = file_path(tk, msg + sizeof(h), h.len, &tf);
        if (path && unlink(path) < 0 && errno != ENOENT)
            swoop_log(SWOOP_LOG_WARNING, errno, "unlink(\"%s\") of a dropped task file failed",
                      path);
        return;
    }
    task_in_t in;
    /* Claimed as a reader would (checked, still queued), then freed. */
    if (task_payload_take(tk, &h, msg + sizeof(h), h.len, 0, &in) == 0)
        task_payload_done(tk, &in);
}

/*
 * The pid in "swoop-task.<pid>.*", or 0 when the name is not one of ours;
 * *rest points after "<pid>.".
 */
static pid_t name_pid(const char *name, const char **rest)
{
    size_t pre = strlen(TASK_PREFIX);
    if (strncmp(name, TASK_MARK_PREFIX, strlen(TASK_MARK_PREFIX)) == 0)
        pre = strlen(TASK_MARK_PREFIX);
    else if (strncmp(name, TASK_PREFIX, pre) != 0)
        return 0;
    char *end;
    long pid = strtol(name + pre, &end, 10);
    *rest = end + 1;
    return *end == '.' && pid > 0 && pid <= INT32_MAX ? (pid_t)pid : 0;
}

/*
 * 1 when `pid` no longer runs: gone, or a zombie nobody reaped yet (pid 1
 * of a container may never reap it; kill(pid, 0) succeeds on zombies).
 */
static int pid_dead(pid_t pid)
{
    if (pid <= 0)
        return 1;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    swoop_procstat_t ps;
    int rc = swoop__procstat_read(pid, 0, &ps);
    if (rc < 0)
        return rc == -ENOENT;
    return ps.state == 'Z' || ps.state == 'X';
}

int task_queue_mark(swoop_server_t *srv, int id)
{
    swoop_task_t *tk = srv->task;
    struct msqid_ds ds;
    if (msgctl(id, IPC_STAT, &ds) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "msgctl(%d, IPC_STAT) of the task queue failed", id);
        return -err;
    }
    char path[TASK_PATH_MAX];
    snprintf(path, sizeof(path), "%s/" TASK_MARK_PREFIX "%d.%d.%lld", srv->settings.task_tmpdir,
             (int)tk->owner, id, (long long)ds.msg_ctime);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_WARNING, err,
                  "open(\"%s\"): without its mark, task queue %d is left behind if the server "
                  "is killed",
                  path, id);
        return -err;
    }
    close(fd);
    return 0;
}

/*
 * The mark "swoop-msq.<pid>.<id>.<ctime>" of a server that is gone: its private queue
 * is removed when it is provably that queue (same id, key IPC_PRIVATE,
 * created by our uid, the change time the mark recorded) and nobody alive
 * used it last. Returns 1 when a queue was removed.
 */
static int sweep_queue(const char *rest, const char *dir, const char *name)
{
    int id;
    long long ctime;
    char tail;
    if (sscanf(rest, "%d.%lld%c", &id, &ctime, &tail) != 2)
        return 0;
    struct msqid_ds ds;
    if (msgctl(id, IPC_STAT, &ds) < 0)
        return 0; /* already gone */
    if (ds.msg_perm.__key != IPC_PRIVATE || ds.msg_perm.cuid != geteuid() ||
        (long long)ds.msg_ctime != ctime || !pid_dead(ds.msg_lspid) || !pid_dead(ds.msg_lrpid)) {
        swoop_log(SWOOP_LOG_NOTICE, 0,
                  "message queue %d named by %s/%s is not the dead server's (or still used): "
                  "kept",
                  id, dir, name);
        return 0;
    }
    if (msgctl(id, IPC_RMID, NULL) < 0) {
        swoop_log(SWOOP_LOG_WARNING, errno, "msgctl(%d, IPC_RMID) of a dead server's queue failed",
                  id);
        return 0;
    }
    swoop_log(SWOOP_LOG_NOTICE, 0,
              "removed the private task queue %d of a server that died (%lu task(s) in it)", id,
              (unsigned long)ds.msg_qnum);
    return 1;
}

int task_payload_sweep(swoop_server_t *srv, int dead)
{
    swoop_task_t *tk = srv->task;
    const char *dir = srv->settings.task_tmpdir;
    DIR *d = opendir(dir);
    if (d == NULL) {
        swoop_log(SWOOP_LOG_WARNING, errno, "opendir(\"%s\") for the task file sweep failed", dir);
        return 0;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *rest;
        pid_t pid = name_pid(e->d_name, &rest);
        if (pid == 0)
            continue;
        if (dead ? pid == tk->owner || !pid_dead(pid) : pid != tk->owner)
            continue;
        if (dead && strncmp(e->d_name, TASK_MARK_PREFIX, strlen(TASK_MARK_PREFIX)) == 0)
            sweep_queue(rest, dir, e->d_name);
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            n++;
        else if (errno != ENOENT)
            swoop_log(SWOOP_LOG_WARNING, errno, "unlink of the task file %s/%s failed", dir,
                      e->d_name);
    }
    closedir(d);
    if (n)
        swoop_log(SWOOP_LOG_NOTICE, 0, "removed %d task file(s) %s in %s", n,
                  dead ? "of servers that died" : "left", dir);
    return n;
}
