/*
 * A single-producer single-consumer ring of datagrams in shared memory,
 * the PROCESS-mode transport between one reactor thread and one worker
 * (one ring per direction). It carries the same datagrams as a SOCK_DGRAM
 * channel (32-byte IPC header + at most SWOOP_IPC_MAX bytes), so chunking
 * and reassembly (msg.h) are unchanged; what it saves is the kernel: no
 * skb per message, no send/recv syscalls. The memory is mapped before fork.
 *
 * Records are [u32 len][u32 0][len bytes] padded to 8; a record that would
 * cross the end is preceded by a wrap marker. `tail` (written only by the
 * writer, release) and `head` (written only by the reader, release) are
 * byte positions that only grow, on their own cache lines.
 *
 * Wake-ups (swoop_ring_waker_t, one per reading thread or process): a
 * reader about to block sets `sleeping`, issues a full fence and looks at
 * its rings once more; a writer that published a record issues a full fence
 * and, if the reader sleeps, clears the flag and writes the reader's
 * eventfd. One of the two fences always sees the other side's store, so a
 * record is never left behind a sleeping reader, and a busy reader costs
 * its writers no syscall at all. A writer whose record does not fit sets
 * `writer_waiting` the same way; the reader signals it after making room.
 * Internal (L3).
 */
#ifndef SWOOP_IPC_RING_H
#define SWOOP_IPC_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ipc/msg.h"

/* Smallest capacity: one largest datagram and its record header must fit. */
#define SWOOP_RING_MIN_CAP (2u * SWOOP_IPC_MAX)

typedef struct swoop_ring_s {
    _Alignas(64) _Atomic uint64_t tail;
    _Atomic uint32_t writer_waiting;
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) uint64_t cap; /* bytes of data[], a power of two; set before fork */
    uint64_t dropped;          /* reader: records refused as corrupt */
    _Alignas(64) char data[];
} swoop_ring_t;

/* One per reader: whether it is (about to be) blocked in its poll. */
typedef struct swoop_ring_waker_s {
    _Alignas(64) _Atomic uint32_t sleeping;
    char pad_[60];
} swoop_ring_waker_t;

static_assert(sizeof(swoop_ring_waker_t) == 64, "one cache line per waker");

/* Bytes one ring of capacity `cap` (a power of two >= SWOOP_RING_MIN_CAP) takes. */
static inline size_t swoop__ring_size(size_t cap)
{
    return sizeof(swoop_ring_t) + cap;
}

void swoop__ring_init(swoop_ring_t *ring, size_t cap);

/*
 * Writer: appends one datagram gathered from iov[0..cnt) (at most
 * SWOOP_IPC_MAX bytes) and publishes it. Returns 0, or SWOOP_EAGAIN when it
 * does not fit now (nothing was written).
 */
int swoop__ring_push(swoop_ring_t *ring, const struct iovec *iov, int cnt);

/*
 * Writer, after SWOOP_EAGAIN: asks the reader for a signal once it made
 * room. Returns 1 when room for `len` bytes appeared meanwhile (push again).
 */
int swoop__ring_wait_room(swoop_ring_t *ring, size_t len);

/* Writer, after publishing: whether the reader must be woken (clears its flag). */
int swoop__ring_must_wake(swoop_ring_waker_t *w);

/*
 * Reader: copies up to `max` datagrams into rb (as swoop__ipc_recv does)
 * and frees their room. Returns how many, or SWOOP_EAGAIN when the ring is
 * empty. `*wake_writer` is set when the writer waits for room (signal it).
 * A corrupt record (a length that cannot be) empties the ring, with a
 * warning.
 */
int swoop__ring_recv(swoop_ring_t *ring, swoop_ipc_rbuf_t *rb, int max, int *wake_writer);

/* Reader: whether records wait (acquire). */
static inline int swoop__ring_readable(swoop_ring_t *ring)
{
    return atomic_load_explicit(&ring->tail, memory_order_acquire) !=
           atomic_load_explicit(&ring->head, memory_order_relaxed);
}

/*
 * Reader, before blocking: marks it asleep and returns 1 if one of `rings`
 * (an array of n pointers) has records, in
 * which case the flag is cleared again and the reader must not block.
 */
int swoop__ring_prepare_sleep(swoop_ring_waker_t *w, swoop_ring_t *const *rings, int n);

/* Reader, after its poll returned. */
static inline void swoop__ring_awake(swoop_ring_waker_t *w)
{
    atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
}

/* Writes 1 to an eventfd (a wake-up); errors other than EAGAIN are logged. */
void swoop__ring_signal(int efd);

/* Reads an eventfd to clear it. */
void swoop__ring_clear(int efd);

#endif /* SWOOP_IPC_RING_H */
