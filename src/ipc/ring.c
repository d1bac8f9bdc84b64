/*
 * The shared-memory SPSC datagram ring (see ring.h). The writer checks the
 * room against the head it loads with acquire, so the reader's copies out
 * of that room happened before it is overwritten; the reader loads the tail
 * with acquire, so the record bytes are visible before it reads them. The
 * reader never trusts a length: one that cannot be empties the ring.
 */
#include "ipc/ring.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base/internal.h"

#define REC_HEAD 8u
#define WRAP     0xffffffffu

static inline uint64_t rec_size(size_t len)
{
    return REC_HEAD + (((uint64_t)len + 7u) & ~(uint64_t)7u);
}

void swoop__ring_init(swoop_ring_t *ring, size_t cap)
{
    assert(cap >= SWOOP_RING_MIN_CAP && (cap & (cap - 1)) == 0);
    atomic_init(&ring->tail, 0);
    atomic_init(&ring->head, 0);
    atomic_init(&ring->writer_waiting, 0);
    ring->cap = cap;
    ring->dropped = 0;
}

/* Bytes a record of `len` needs at `tail` (with the wrap marker, if any). */
static inline uint64_t need_at(const swoop_ring_t *ring, uint64_t tail, size_t len)
{
    uint64_t off = tail & (ring->cap - 1);
    uint64_t rs = rec_size(len);
    return off + rs > ring->cap ? (ring->cap - off) + rs : rs;
}

int swoop__ring_push(swoop_ring_t *ring, const struct iovec *iov, int cnt)
{
    size_t len = 0;
    for (int i = 0; i < cnt; i++)
        len += iov[i].iov_len;
    assert(len <= SWOOP_IPC_MAX);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    uint64_t need = need_at(ring, tail, len);
    if (ring->cap - (tail - head) < need)
        return SWOOP_EAGAIN;
    uint64_t off = tail & (ring->cap - 1);
    if (off + rec_size(len) > ring->cap) {
        uint32_t wrap = WRAP;
        memcpy(ring->data + off, &wrap, sizeof(wrap));
        tail += ring->cap - off;
        off = 0;
    }
    uint32_t hdr[2] = {(uint32_t)len, 0};
    memcpy(ring->data + off, hdr, sizeof(hdr));
    char *p = ring->data + off + REC_HEAD;
    for (int i = 0; i < cnt; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    atomic_store_explicit(&ring->tail, tail + rec_size(len), memory_order_release);
    return 0;
}

int swoop__ring_wait_room(swoop_ring_t *ring, size_t len)
{
    atomic_store_explicit(&ring->writer_waiting, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    return ring->cap - (tail - head) >= need_at(ring, tail, len);
}

int swoop__ring_must_wake(swoop_ring_waker_t *w)
{
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load_explicit(&w->sleeping, memory_order_relaxed) &&
           atomic_exchange_explicit(&w->sleeping, 0, memory_order_relaxed);
}

static int corrupt(swoop_ring_t *ring, uint64_t tail, uint32_t len)
{
    ring->dropped++;
    swoop_log(SWOOP_LOG_WARNING, 0,
              "ipc ring: a record of %u bytes cannot be (%llu bytes queued): ring emptied", len,
              (unsigned long long)(tail - atomic_load_explicit(&ring->head, memory_order_relaxed)));
    atomic_store_explicit(&ring->head, tail, memory_order_release);
    return SWOOP_EAGAIN;
}

int swoop__ring_recv(swoop_ring_t *ring, swoop_ipc_rbuf_t *rb, int max, int *wake_writer)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    if (max > SWOOP_IPC_RECV_BATCH)
        max = SWOOP_IPC_RECV_BATCH;
    int n = 0;
    while (n < max && head != tail) {
        if (tail - head > ring->cap)
            return corrupt(ring, tail, 0);
        uint64_t off = head & (ring->cap - 1);
        uint32_t len;
        memcpy(&len, ring->data + off, sizeof(len));
        if (len == WRAP) {
            head += ring->cap - off;
            continue;
        }
        if (len > SWOOP_IPC_MAX || off + rec_size(len) > ring->cap || rec_size(len) > tail - head)
            return corrupt(ring, tail, len);
        memcpy(swoop__ipc_rbuf_at(rb, n), ring->data + off + REC_HEAD, len);
        rb->lens[n++] = len;
        head += rec_size(len);
    }
    atomic_store_explicit(&ring->head, head, memory_order_release);
    *wake_writer = 0;
    if (n > 0) {
        /* Pairs with the writer's fence in swoop__ring_wait_room. */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&ring->writer_waiting, memory_order_relaxed) &&
            atomic_exchange_explicit(&ring->writer_waiting, 0, memory_order_relaxed))
            *wake_writer = 1;
    }
    return n > 0 ? n : SWOOP_EAGAIN;
}

int swoop__ring_prepare_sleep(swoop_ring_waker_t *w, swoop_ring_t *const *rings, int n)
{
    atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    for (int i = 0; i < n; i++) {
        if (rings[i] && swoop__ring_readable(rings[i])) {
            atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
            return 1;
        }
    }
    return 0;
}

void swoop__ring_signal(int efd)
{
    uint64_t one = 1;
    for (;;) {
        if (write(efd, &one, sizeof(one)) == (ssize_t)sizeof(one))
            return;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err != EAGAIN)
            swoop_log(SWOOP_LOG_ERROR, err, "ipc ring: write() to eventfd %d failed", efd);
        return;
    }
}

void swoop__ring_clear(int efd)
{
    uint64_t v;
    while (read(efd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
}
