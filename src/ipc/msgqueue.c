/*
 * SysV message queue helpers (see msgqueue.h). The wire format inside one
 * message is: long mtype (the kernel's), uint32 magic, uint32 payload
 * length, payload. msgrcv uses MSG_NOERROR so that an oversized foreign
 * message is consumed (truncated) instead of blocking the queue with E2BIG
 * forever; the length field then exposes the truncation.
 */
#include "ipc/msgqueue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>

#include "base/internal.h"

#define MSGQ_MAGIC       0x53574d51u /* "SWMQ" */
#define MSGQ_WAKE_MAGIC  0x53574b57u /* "SWKW": no payload, ends a receiver's wait */
#define MSGQ_DEFAULT_MAX 8192

struct msgq_buf {
    long mtype;
    uint32_t magic;
    uint32_t len;
    char data[];
};

_Static_assert(sizeof(struct msgq_buf) == sizeof(long) + SWOOP_MSGQ_HEADER,
               "message header must be 8 bytes after mtype");

static size_t read_msgmax(void)
{
    FILE *f = fopen("/proc/sys/kernel/msgmax", "re");
    long v = 0;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v > SWOOP_MSGQ_HEADER ? (size_t)v : MSGQ_DEFAULT_MAX;
}

int swoop__msgqueue_open(swoop_msgqueue_t *q, int key)
{
    q->id = msgget(key == 0 ? IPC_PRIVATE : (key_t)key, IPC_CREAT | 0600);
    if (q->id < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "msgget(key=0x%x) failed", (unsigned)key);
        q->id = -1;
        return -err;
    }
    q->owned = key == 0;
    q->msgmax = read_msgmax();
    return 0;
}

void swoop__msgqueue_remove(swoop_msgqueue_t *q)
{
    if (q->id >= 0 && q->owned && msgctl(q->id, IPC_RMID, NULL) < 0) {
        int err = errno;
        if (err != EINVAL && err != EIDRM)
            swoop_log(SWOOP_LOG_ERROR, err, "msgctl(%d, IPC_RMID) failed", q->id);
    }
    q->id = -1;
}

size_t swoop__msgqueue_payload_max(const swoop_msgqueue_t *q)
{
    return q->msgmax - SWOOP_MSGQ_HEADER;
}

int swoop__msgqueue_send(swoop_msgqueue_t *q, long mtype, const void *data, size_t len, int nowait)
{
    if (q->id < 0 || mtype <= 0)
        return SWOOP_EINVAL;
    if (len > swoop__msgqueue_payload_max(q)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "queue %d: message of %zu bytes above the limit of %zu",
                  q->id, len, swoop__msgqueue_payload_max(q));
        return SWOOP_EMSGSIZE;
    }
    struct msgq_buf *m = swoop_try_malloc(sizeof(*m) + len);
    if (m == NULL) {
        swoop_log(SWOOP_LOG_ERROR, ENOMEM, "queue %d: no memory for a %zu-byte message", q->id,
                  len);
        return SWOOP_ENOMEM;
    }
    m->mtype = mtype;
    m->magic = MSGQ_MAGIC;
    m->len = (uint32_t)len;
    if (len)
        memcpy(m->data, data, len);
    int rc = 0;
    while (msgsnd(q->id, m, SWOOP_MSGQ_HEADER + len, nowait ? IPC_NOWAIT : 0) < 0) {
        int err = errno;
        if (err == EINTR && !nowait)
            continue;
        if (err == EAGAIN) {
            rc = SWOOP_EAGAIN;
            break;
        }
        swoop_log(SWOOP_LOG_ERROR, err, "msgsnd(queue %d, mtype %ld, %zu bytes) failed", q->id,
                  mtype, len);
        rc = -err;
        break;
    }
    swoop_free(m);
    return rc;
}

ssize_t swoop__msgqueue_recv(swoop_msgqueue_t *q, long mtype, void *buf, size_t cap,
                             const void **payload, int nowait)
{
    if (q->id < 0 || cap < sizeof(long) + SWOOP_MSGQ_HEADER)
        return SWOOP_EINVAL;
    struct msgq_buf *m = buf;
    size_t room = cap - sizeof(long);
    ssize_t n = msgrcv(q->id, m, room, mtype, MSG_NOERROR | (nowait ? IPC_NOWAIT : 0));
    if (n < 0) {
        int err = errno;
        if (err == ENOMSG || err == EAGAIN)
            return SWOOP_EAGAIN;
        if (err == EINTR)
            return SWOOP_EINTR;
        if (err != EIDRM && err != EINVAL)
            swoop_log(SWOOP_LOG_ERROR, err, "msgrcv(queue %d, mtype %ld) failed", q->id, mtype);
        return -err;
    }
    if ((size_t)n == SWOOP_MSGQ_HEADER && m->magic == MSGQ_WAKE_MAGIC && m->len == 0)
        return SWOOP_ECANCELED;
    if ((size_t)n < SWOOP_MSGQ_HEADER || m->magic != MSGQ_MAGIC ||
        (size_t)m->len != (size_t)n - SWOOP_MSGQ_HEADER) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "dropped a malformed or truncated message (%zd bytes, mtype %ld) from queue %d",
                  n, m->mtype, q->id);
        return SWOOP_EPROTO;
    }
    *payload = m->data;
    return (ssize_t)m->len;
}

int swoop__msgqueue_send_wake(swoop_msgqueue_t *q, long mtype)
{
    if (q->id < 0 || mtype <= 0)
        return SWOOP_EINVAL;
    struct msgq_buf m = {.mtype = mtype, .magic = MSGQ_WAKE_MAGIC, .len = 0};
    while (msgsnd(q->id, &m, SWOOP_MSGQ_HEADER, IPC_NOWAIT) < 0) {
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN)
            return SWOOP_EAGAIN;
        swoop_log(SWOOP_LOG_ERROR, err, "msgsnd(queue %d, mtype %ld) of a wake-up failed", q->id,
                  mtype);
        return -err;
    }
    return 0;
}
