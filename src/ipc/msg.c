/*
 * IPC messages: header, chunking, reassembly, and the nonblocking writer
 * with its user-space queue (see msg.h). Chunks follow swoole's MessageBus:
 * every chunk repeats the full header with the total length, so the reader
 * can size the assembly buffer from the first one; it uses
 * swoop_try_malloc, since the size comes from another process.
 */
#include "ipc/msg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "base/internal.h"
#include "base/ratelimit.h"
#include "ipc/ring.h"

#define FLUSH_BATCH 64

typedef struct ipc_dgram_s {
    swoop_queue_t q;
    size_t len;
    char data[];
} ipc_dgram_t;

typedef struct ipc_asm_s {
    swoop_ipc_head_t head;
    size_t got;
    unsigned idle; /* sweeps since the last chunk */
    char data[];
} ipc_asm_t;

static _Atomic uint64_t local_seq;
static _Atomic uint64_t *msg_seq = &local_seq;

void swoop__ipc_set_msg_seq(_Atomic uint64_t *seq)
{
    msg_seq = seq ? seq : &local_seq;
}

/* ---- writer ---- */

void swoop__ipc_out_init(swoop_ipc_out_t *out, int fd)
{
    memset(out, 0, sizeof(*out));
    out->fd = fd;
    swoop_queue_init(&out->queue);
}

void swoop__ipc_out_use_ring(swoop_ipc_out_t *out, swoop_ring_t *ring, swoop_ring_waker_t *waker,
                             int wake_fd)
{
    out->ring = ring;
    out->waker = waker;
    out->wake_fd = wake_fd;
}

static void ring_wake(swoop_ipc_out_t *out)
{
    out->unsignaled = 0;
    if (swoop__ring_must_wake(out->waker)) {
        out->syscalls++;
        swoop__ring_signal(out->wake_fd);
    }
}

void swoop__ipc_out_free(swoop_ipc_out_t *out)
{
    while (!swoop_queue_empty(&out->queue)) {
        swoop_queue_t *q = swoop_queue_head(&out->queue);
        swoop_queue_remove(q);
        swoop_free(swoop_queue_data(q, ipc_dgram_t, q));
    }
    out->queued_bytes = 0;
    out->queued_count = 0;
}

void swoop__ipc_out_foreach(const swoop_ipc_out_t *out,
                            void (*fn)(const void *dgram, size_t len, void *arg), void *arg)
{
    for (swoop_queue_t *q = swoop_queue_head(&out->queue); q != &out->queue; q = q->next) {
        const ipc_dgram_t *d = swoop_queue_data(q, ipc_dgram_t, q);
        fn(d->data, d->len, arg);
    }
}

/* iovecs for payload bytes [off, off + n) of the two pieces; returns how many. */
static int slice(struct iovec *iov, const char *d1, size_t l1, const char *d2, size_t l2,
                 size_t off, size_t n)
{
    int k = 0;
    if (off < l1) {
        size_t take = l1 - off < n ? l1 - off : n;
        iov[k].iov_base = (void *)(d1 + off);
        iov[k].iov_len = take;
        k++;
        n -= take;
        off = 0;
    } else {
        off -= l1;
    }
    if (n > 0) {
        iov[k].iov_base = (void *)(d2 + off);
        iov[k].iov_len = n;
        k++;
    }
    return k;
}

static int enqueue(swoop_ipc_out_t *out, const struct iovec *iov, int cnt)
{
    size_t total = 0;
    for (int i = 0; i < cnt; i++)
        total += iov[i].iov_len;
    ipc_dgram_t *d = swoop_try_malloc(sizeof(*d) + total);
    if (d == NULL) {
        swoop__log_limited(SWOOP_LOG_ERROR, SWOOP_ENOMEM,
                           "ipc: cannot queue a %zu-byte datagram for fd %d", total, out->fd);
        return SWOOP_ENOMEM;
    }
    d->len = total;
    size_t off = 0;
    for (int i = 0; i < cnt; i++) {
        memcpy(d->data + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    swoop_queue_insert_tail(&out->queue, &d->q);
    out->queued_bytes += total;
    out->queued_count++;
    return 0;
}

/* Sends one datagram now, or queues it. Returns 0 sent, 1 queued, or an error. */
static int put(swoop_ipc_out_t *out, struct iovec *iov, int cnt)
{
    if (out->ring) {
        if (out->queued_count == 0 && swoop__ring_push(out->ring, iov, cnt) == 0) {
            out->sent_msgs++;
            out->unsignaled = 1;
            if (!out->corked)
                ring_wake(out);
            return 0;
        }
    } else if (!out->corked && out->queued_count == 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        for (;;) {
            ssize_t n = sendmsg(out->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n >= 0) {
                out->sent_msgs++;
                out->syscalls++;
                return 0;
            }
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
                break;
            swoop__log_limited(SWOOP_LOG_ERROR, err, "ipc: sendmsg() on fd %d failed", out->fd);
            return -err;
        }
    }
    int rc = enqueue(out, iov, cnt);
    return rc < 0 ? rc : 1;
}

int swoop__ipc_send2(swoop_ipc_out_t *out, const swoop_ipc_head_t *head, const void *d1, size_t l1,
                     const void *d2, size_t l2)
{
    size_t total = l1 + l2;
    if (total > UINT32_MAX) {
        swoop_log(SWOOP_LOG_ERROR, 0, "ipc: a %zu-byte message is too large", total);
        return SWOOP_EMSGSIZE;
    }
    swoop_ipc_head_t h = *head;
    h.len = (uint32_t)total;
    struct iovec iov[3];
    iov[0].iov_base = &h;
    iov[0].iov_len = sizeof(h);
    if (total <= SWOOP_IPC_PAYLOAD_MAX) {
        h.flags &= (uint8_t) ~(SWOOP_IPC_CHUNK | SWOOP_IPC_BEGIN | SWOOP_IPC_END);
        h.msg_id = 0;
        int k = slice(iov + 1, d1, l1, d2, l2, 0, total);
        return put(out, iov, 1 + k);
    }
    h.msg_id = atomic_fetch_add(msg_seq, 1) + 1;
    int queued = 0;
    for (size_t off = 0; off < total; off += SWOOP_IPC_PAYLOAD_MAX) {
        size_t n = total - off < SWOOP_IPC_PAYLOAD_MAX ? total - off : SWOOP_IPC_PAYLOAD_MAX;
        h.flags =
            (uint8_t)((head->flags & SWOOP_IPC_TMPFILE) | SWOOP_IPC_CHUNK |
                      (off == 0 ? SWOOP_IPC_BEGIN : 0) | (off + n == total ? SWOOP_IPC_END : 0));
        int k = slice(iov + 1, d1, l1, d2, l2, off, n);
        int rc = put(out, iov, 1 + k);
        if (rc < 0)
            return rc;
        queued |= rc;
    }
    return queued;
}

int swoop__ipc_send(swoop_ipc_out_t *out, const swoop_ipc_head_t *head, const void *data,
                    size_t len)
{
    return swoop__ipc_send2(out, head, data, len, NULL, 0);
}

static int ring_flush(swoop_ipc_out_t *out)
{
    while (out->queued_count > 0) {
        swoop_queue_t *q = swoop_queue_head(&out->queue);
        ipc_dgram_t *d = swoop_queue_data(q, ipc_dgram_t, q);
        struct iovec iov = {.iov_base = d->data, .iov_len = d->len};
        if (swoop__ring_push(out->ring, &iov, 1) < 0) {
            if (swoop__ring_wait_room(out->ring, d->len))
                continue;
            break;
        }
        out->sent_msgs++;
        out->unsignaled = 1;
        swoop_queue_remove(q);
        out->queued_bytes -= d->len;
        out->queued_count--;
        swoop_free(d);
    }
    if (out->unsignaled)
        ring_wake(out);
    return out->queued_count > 0;
}

int swoop__ipc_flush(swoop_ipc_out_t *out)
{
    out->corked = 0;
    if (out->ring)
        return ring_flush(out);
    struct mmsghdr mm[FLUSH_BATCH];
    struct iovec iov[FLUSH_BATCH];
    while (out->queued_count > 0) {
        int cnt = 0;
        for (swoop_queue_t *q = swoop_queue_head(&out->queue);
             q != &out->queue && cnt < FLUSH_BATCH; q = q->next) {
            ipc_dgram_t *d = swoop_queue_data(q, ipc_dgram_t, q);
            iov[cnt].iov_base = d->data;
            iov[cnt].iov_len = d->len;
            memset(&mm[cnt], 0, sizeof(mm[cnt]));
            mm[cnt].msg_hdr.msg_iov = &iov[cnt];
            mm[cnt].msg_hdr.msg_iovlen = 1;
            cnt++;
        }
        int n = sendmmsg(out->fd, mm, (unsigned)cnt, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
                return 1;
            swoop__log_limited(SWOOP_LOG_ERROR, err,
                               "ipc: sendmmsg() on fd %d failed: dropping %zu queued datagrams",
                               out->fd, out->queued_count);
            swoop__ipc_out_free(out);
            return -err;
        }
        out->syscalls++;
        out->sent_msgs += (uint64_t)n;
        for (int i = 0; i < n; i++) {
            swoop_queue_t *q = swoop_queue_head(&out->queue);
            ipc_dgram_t *d = swoop_queue_data(q, ipc_dgram_t, q);
            swoop_queue_remove(q);
            out->queued_bytes -= d->len;
            out->queued_count--;
            swoop_free(d);
        }
        if (n < cnt)
            return 1;
    }
    return 0;
}

/* ---- reader ---- */

void swoop__ipc_in_init(swoop_ipc_in_t *in, size_t max_msg)
{
    memset(in, 0, sizeof(*in));
    swoop__idmap_init(&in->pending);
    in->max_msg = max_msg;
}

void swoop__ipc_in_free(swoop_ipc_in_t *in)
{
    if (in->pending.slots) {
        for (size_t i = 0; i <= in->pending.mask; i++) {
            if (in->pending.slots[i].key != 0)
                swoop_free(in->pending.slots[i].value);
        }
    }
    swoop__idmap_free(&in->pending);
}

static int drop(swoop_ipc_in_t *in, const swoop_ipc_head_t *h, const char *why)
{
    in->dropped++;
    swoop_log(SWOOP_LOG_WARNING, 0,
              "ipc: abnormal pipeline data: %s (type %u, msg id %llu, conn %llu, len %u): chunk "
              "dropped",
              why, h->type, (unsigned long long)h->msg_id, (unsigned long long)h->conn_id, h->len);
    return 0;
}

int swoop__ipc_feed(swoop_ipc_in_t *in, char *dgram, size_t n, swoop_ipc_msg_t *msg)
{
    swoop_ipc_head_t h;
    if (n < sizeof(h)) {
        in->dropped++;
        swoop_log(SWOOP_LOG_WARNING, 0, "ipc: a %zu-byte datagram is shorter than the header", n);
        return 0;
    }
    memcpy(&h, dgram, sizeof(h));
    char *payload = dgram + sizeof(h);
    size_t plen = n - sizeof(h);
    if (!(h.flags & SWOOP_IPC_CHUNK)) {
        if (plen != h.len)
            return drop(in, &h, "length does not match the datagram");
        msg->head = h;
        msg->data = payload;
        msg->len = plen;
        msg->owned = NULL;
        return 1;
    }
    if (h.msg_id == 0 || (int64_t)h.msg_id <= 0)
        return drop(in, &h, "chunk without a message id");
    ipc_asm_t *a = swoop__idmap_get(&in->pending, (int64_t)h.msg_id);
    if (h.flags & SWOOP_IPC_BEGIN) {
        if (a != NULL) {
            swoop__idmap_del(&in->pending, (int64_t)h.msg_id);
            swoop_free(a);
            drop(in, &h, "a message id began twice; the older part");
        }
        if (in->max_msg && h.len > in->max_msg)
            return drop(in, &h, "message larger than the reader accepts");
        a = swoop_try_malloc(sizeof(*a) + h.len);
        if (a == NULL)
            return drop(in, &h, "out of memory for the assembly");
        a->head = h;
        a->got = 0;
        a->idle = 0;
        swoop__idmap_put(&in->pending, (int64_t)h.msg_id, a);
    } else if (a == NULL) {
        return drop(in, &h, "chunk of an unknown message id");
    }
    if (a->head.len != h.len || a->got + plen > h.len) {
        swoop__idmap_del(&in->pending, (int64_t)h.msg_id);
        swoop_free(a);
        return drop(in, &h, "chunk inconsistent with its message");
    }
    memcpy(a->data + a->got, payload, plen);
    a->got += plen;
    a->idle = 0;
    if (!(h.flags & SWOOP_IPC_END))
        return 0;
    swoop__idmap_del(&in->pending, (int64_t)h.msg_id);
    if (a->got != a->head.len) {
        swoop_free(a);
        return drop(in, &h, "message ended short");
    }
    msg->head = a->head;
    msg->head.flags = (uint8_t)(h.flags & SWOOP_IPC_TMPFILE);
    msg->data = a->data;
    msg->len = a->got;
    msg->owned = a;
    return 1;
}

size_t swoop__ipc_in_sweep(swoop_ipc_in_t *in)
{
    size_t n = swoop__idmap_len(&in->pending);
    if (n == 0)
        return 0;
    /* Collect first: deleting shifts the map's entries. */
    int64_t *dead = swoop_malloc(n * sizeof(*dead));
    size_t ndead = 0;
    for (size_t i = 0; i <= in->pending.mask; i++) {
        if (in->pending.slots[i].key == 0)
            continue;
        ipc_asm_t *a = in->pending.slots[i].value;
        a->idle++;
        int gone = a->idle >= SWOOP_IPC_SWEEPS_MAX;
        if (!gone && a->idle >= SWOOP_IPC_SWEEPS_DEAD)
            gone = in->gone_cb == NULL || in->gone_cb(in->gone_arg, &a->head);
        if (gone && ndead < n)
            dead[ndead++] = in->pending.slots[i].key;
    }
    for (size_t i = 0; i < ndead; i++) {
        ipc_asm_t *a = swoop__idmap_del(&in->pending, dead[i]);
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "ipc: partial message dropped: %zu of %u bytes arrived, none for %u sweeps "
                  "(type %u, msg id %llu, worker %d, conn %llu; the writer died?)",
                  a->got, a->head.len, a->idle, a->head.type, (unsigned long long)a->head.msg_id,
                  a->head.worker_id, (unsigned long long)a->head.conn_id);
        swoop_free(a);
        in->expired++;
    }
    swoop_free(dead);
    return ndead;
}

void swoop__ipc_msg_done(swoop_ipc_msg_t *msg)
{
    swoop_free(msg->owned);
    msg->owned = NULL;
    msg->data = NULL;
}

void swoop__ipc_feed_batch(swoop_ipc_in_t *in, swoop_ipc_rbuf_t *rb, int n, swoop_ipc_msg_cb cb,
                           void *arg)
{
    for (int i = 0; i < n; i++) {
        swoop_ipc_msg_t m;
        if (swoop__ipc_feed(in, swoop__ipc_rbuf_at(rb, i), rb->lens[i], &m) == 1) {
            cb(arg, &m);
            swoop__ipc_msg_done(&m);
        }
    }
}

void swoop__ipc_rbuf_init(swoop_ipc_rbuf_t *rb)
{
    rb->bufs = swoop_malloc((size_t)SWOOP_IPC_RECV_BATCH * SWOOP_IPC_MAX);
}

void swoop__ipc_rbuf_free(swoop_ipc_rbuf_t *rb)
{
    swoop_free(rb->bufs);
    rb->bufs = NULL;
}

int swoop__ipc_recv(int fd, swoop_ipc_rbuf_t *rb, int max)
{
    struct mmsghdr mm[SWOOP_IPC_RECV_BATCH];
    struct iovec iov[SWOOP_IPC_RECV_BATCH];
    if (max > SWOOP_IPC_RECV_BATCH)
        max = SWOOP_IPC_RECV_BATCH;
    for (int i = 0; i < max; i++) {
        iov[i].iov_base = swoop__ipc_rbuf_at(rb, i);
        iov[i].iov_len = SWOOP_IPC_MAX;
        memset(&mm[i], 0, sizeof(mm[i]));
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    for (;;) {
        int n = recvmmsg(fd, mm, (unsigned)max, MSG_DONTWAIT, NULL);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return SWOOP_EAGAIN;
            swoop_log(SWOOP_LOG_ERROR, err, "ipc: recvmmsg() on fd %d failed", fd);
            return -err;
        }
        for (int i = 0; i < n; i++) {
            rb->lens[i] = mm[i].msg_len;
            if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
                rb->lens[i] = 0; /* longer than SWOOP_IPC_MAX: never ours, dropped by feed */
        }
        return n;
    }
}
