/*
 * IPC messages (DESIGN.md section 2): every datagram on a server channel
 * starts with a fixed 32-byte header. A message whose payload does not fit
 * one datagram of SWOOP_IPC_MAX bytes travels as chunks sharing one msg id
 * (CHUNK|BEGIN ... CHUNK ... CHUNK|END, each with the total length in `len`)
 * and is reassembled by the reader; a chunk of an id the reader does not
 * know is dropped with a warning. A writer never blocks: what the socket
 * does not take (EAGAIN) waits in a user-space queue, in order, and is
 * flushed when the socket turns writable. Datagrams written while the
 * writer is corked are queued too and go out together with sendmmsg.
 * Internal (L3).
 */
#ifndef SWOOP_IPC_MSG_H
#define SWOOP_IPC_MSG_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/idmap.h"
#include "base/queue.h"

/* Largest datagram, header included. */
#define SWOOP_IPC_MAX 65536

/* Message types. */
enum {
    SWOOP_IPC_CONNECT = 1,      /* reactor -> worker: a new connection */
    SWOOP_IPC_DATA = 2,         /* reactor -> worker: one packet */
    SWOOP_IPC_CLOSE = 3,        /* reactor -> worker: closed (on_close); worker -> reactor: done */
    SWOOP_IPC_SEND = 4,         /* worker -> reactor: bytes for a connection */
    SWOOP_IPC_CLOSE_REQ = 5,    /* worker -> reactor: close this connection (aux 1 = reset) */
    SWOOP_IPC_PAUSE = 6,        /* worker -> reactor: stop reading */
    SWOOP_IPC_RESUME = 7,       /* worker -> reactor: read again */
    SWOOP_IPC_DGRAM = 8,        /* reactor -> worker: a datagram (payload: address + data) */
    SWOOP_IPC_PIPE_MESSAGE = 9, /* worker -> worker: swoop_server_send_message */
    SWOOP_IPC_TASK = 10,
    SWOOP_IPC_FINISH = 11,
    SWOOP_IPC_SHUTDOWN = 12,
    SWOOP_IPC_SENDFILE = 13,  /* worker -> reactor: a file range (payload: offset, length, path) */
    SWOOP_IPC_RELAY = 14,     /* any worker -> event worker: a protocol's own message (aux: kind) */
    SWOOP_IPC_PROTO_OUT = 15, /* worker -> connection owner: a protocol's message (aux: kind) */
    SWOOP_IPC_TYPE_MAX = 16
};

/* Flags. */
#define SWOOP_IPC_CHUNK   0x01u
#define SWOOP_IPC_BEGIN   0x02u
#define SWOOP_IPC_END     0x04u
#define SWOOP_IPC_TMPFILE 0x08u
#define SWOOP_IPC_SPILL                                                                            \
    0x10u /* task payload in a block of the spill file (server/task_payload.c) */

typedef struct swoop_ipc_head_s {
    uint32_t len;       /* payload length of the whole message */
    uint8_t type;       /* SWOOP_IPC_* */
    uint8_t flags;      /* SWOOP_IPC_CHUNK | BEGIN | END | TMPFILE */
    int16_t reactor_id; /* reactor thread that owns the connection */
    int16_t worker_id;  /* sending or target worker */
    uint16_t port_id;   /* listening port index */
    uint32_t aux;       /* per-type argument */
    uint64_t conn_id;   /* connection (or task) id */
    uint64_t msg_id;    /* chunk reassembly key; 0 for a single datagram */
} swoop_ipc_head_t;

static_assert(sizeof(swoop_ipc_head_t) == 32, "the IPC header is 32 bytes on the wire");

#define SWOOP_IPC_PAYLOAD_MAX (SWOOP_IPC_MAX - sizeof(swoop_ipc_head_t))

/*
 * Where msg ids come from: a counter in memory shared by every process of a
 * server, so ids from different writers never meet at one reader. NULL (the
 * default) uses a process-local counter.
 */
void swoop__ipc_set_msg_seq(_Atomic uint64_t *seq);

/* ---- writer ---- */

struct swoop_ring_s;
struct swoop_ring_waker_s;

typedef struct swoop_ipc_out_s {
    int fd;
    struct swoop_ring_s *ring;        /* set: datagrams go to this ring (ring.h), not to fd */
    struct swoop_ring_waker_s *waker; /* the ring reader's sleep flag */
    int wake_fd;                      /* the ring reader's eventfd */
    int unsignaled;                   /* records published since the last wake-up check */
    swoop_queue_t queue;              /* swoop_ipc_dgram_t, oldest first */
    size_t queued_bytes;
    size_t queued_count;
    int corked;
    uint64_t sent_msgs; /* datagrams the kernel took */
    uint64_t syscalls;  /* send/sendmmsg calls that moved data */
} swoop_ipc_out_t;

void swoop__ipc_out_init(swoop_ipc_out_t *out, int fd);

/*
 * Makes `out` write into a shared-memory ring instead of its fd: a record
 * is published at once (or queued while the ring is full); the reader is
 * woken through `wake_fd` only when it sleeps, on the send itself when not
 * corked, else by swoop__ipc_flush.
 */
void swoop__ipc_out_use_ring(swoop_ipc_out_t *out, struct swoop_ring_s *ring,
                             struct swoop_ring_waker_s *waker, int wake_fd);
/* Drops whatever is queued. */
void swoop__ipc_out_free(swoop_ipc_out_t *out);

/* Calls fn on every datagram still queued (header included), oldest first. */
void swoop__ipc_out_foreach(const swoop_ipc_out_t *out,
                            void (*fn)(const void *dgram, size_t len, void *arg), void *arg);

/*
 * Writes one message (chunked if needed). Returns 0 when everything went to
 * the kernel, 1 when some of it waits in the queue (call swoop__ipc_flush
 * once the fd is writable), or a negative error (SWOOP_ENOMEM, a dead
 * peer's SWOOP_ECONNREFUSED...; logged) after which nothing was queued.
 */
int swoop__ipc_send(swoop_ipc_out_t *out, const swoop_ipc_head_t *head, const void *data,
                    size_t len);

/* As swoop__ipc_send with the payload gathered from two pieces. */
int swoop__ipc_send2(swoop_ipc_out_t *out, const swoop_ipc_head_t *head, const void *d1, size_t l1,
                     const void *d2, size_t l2);

/* While corked, sends only queue; swoop__ipc_flush sends them in batches. */
static inline void swoop__ipc_cork(swoop_ipc_out_t *out)
{
    out->corked = 1;
}

/*
 * Uncorks and sends the queue with sendmmsg, in order, until it is empty
 * (returns 0) or the socket is full (returns 1). A hard error drops the
 * queue and returns it. With a ring: moves the queue into the ring, wakes
 * the reader if it sleeps, and returns 1 while the ring is full (the reader
 * signals the writer's own eventfd once it made room).
 */
int swoop__ipc_flush(swoop_ipc_out_t *out);

/* Whether swoop__ipc_flush has work: queued datagrams, or ring records not yet signaled. */
static inline int swoop__ipc_pending(const swoop_ipc_out_t *out)
{
    return out->queued_count > 0 || out->unsignaled;
}

/* ---- reader ---- */

/*
 * Nonzero if the writer of the message `head` describes is gone (it died:
 * the rest of the message will never come). Asked by swoop__ipc_in_sweep
 * about partial messages that have been idle for a while.
 */
typedef int (*swoop_ipc_gone_cb)(void *arg, const swoop_ipc_head_t *head);

typedef struct swoop_ipc_in_s {
    swoop_idmap_t pending; /* msg id -> assembly */
    size_t max_msg;        /* larger totals are refused */
    uint64_t dropped;      /* chunks dropped (unknown id, inconsistent) */
    uint64_t expired;      /* partial messages dropped by swoop__ipc_in_sweep */
    swoop_ipc_gone_cb gone_cb;
    void *gone_arg;
} swoop_ipc_in_t;

/* A whole message, valid until swoop__ipc_msg_done. */
typedef struct swoop_ipc_msg_s {
    swoop_ipc_head_t head;
    char *data;
    size_t len;
    void *owned; /* an assembly buffer to free, or NULL (data points into the datagram) */
} swoop_ipc_msg_t;

void swoop__ipc_in_init(swoop_ipc_in_t *in, size_t max_msg);
void swoop__ipc_in_free(swoop_ipc_in_t *in);

/*
 * Feeds one received datagram. Returns 1 and fills *msg when a message is
 * complete (for a single datagram, msg->data points into `dgram`), 0 when
 * the datagram was a chunk of an unfinished message or was dropped (a
 * warning says why).
 */
int swoop__ipc_feed(swoop_ipc_in_t *in, char *dgram, size_t n, swoop_ipc_msg_t *msg);

/* Partial messages idle this many sweeps are dropped if their writer is gone. */
#define SWOOP_IPC_SWEEPS_DEAD 3
/* ... and after this many sweeps in any case (a writer stuck that long is lost). */
#define SWOOP_IPC_SWEEPS_MAX 60

/*
 * Ages the partial messages (call it every second or so): one that received
 * no chunk for SWOOP_IPC_SWEEPS_DEAD calls while gone_cb says its writer
 * is gone (it died mid-message; without a gone_cb, always), or for
 * SWOOP_IPC_SWEEPS_MAX calls, is dropped with a warning; its later chunks,
 * if any, are dropped as unknown ids. Sweeps count only while the reader's
 * loop runs, so a reader stuck in a callback does not age what waits for it.
 * Returns how many were dropped.
 */
size_t swoop__ipc_in_sweep(swoop_ipc_in_t *in);

/* Number of partial messages held. */
static inline size_t swoop__ipc_in_partial(const swoop_ipc_in_t *in)
{
    return swoop__idmap_len(&in->pending);
}

/* Releases what swoop__ipc_feed handed out. */
void swoop__ipc_msg_done(swoop_ipc_msg_t *msg);

/* Handles one whole message; `msg` is valid for the call only. */
typedef void (*swoop_ipc_msg_cb)(void *arg, swoop_ipc_msg_t *msg);

/*
 * Feeds the first `n` datagrams of `rb` (as received by swoop__ipc_recv or
 * swoop__ring_recv) to the reader and calls `cb` for every message that
 * completes, releasing each after its call.
 */
struct swoop_ipc_rbuf_s;
void swoop__ipc_feed_batch(swoop_ipc_in_t *in, struct swoop_ipc_rbuf_s *rb, int n,
                           swoop_ipc_msg_cb cb, void *arg);

/* Batched receive: up to SWOOP_IPC_RECV_BATCH datagrams per recvmmsg call. */
#define SWOOP_IPC_RECV_BATCH 16

typedef struct swoop_ipc_rbuf_s {
    char *bufs; /* SWOOP_IPC_RECV_BATCH * SWOOP_IPC_MAX bytes */
    size_t lens[SWOOP_IPC_RECV_BATCH];
} swoop_ipc_rbuf_t;

void swoop__ipc_rbuf_init(swoop_ipc_rbuf_t *rb);
void swoop__ipc_rbuf_free(swoop_ipc_rbuf_t *rb);

static inline char *swoop__ipc_rbuf_at(swoop_ipc_rbuf_t *rb, int i)
{
    return rb->bufs + (size_t)i * SWOOP_IPC_MAX;
}

/*
 * Receives up to `max` (<= SWOOP_IPC_RECV_BATCH) datagrams from `fd`.
 * Returns how many (lens[] filled), SWOOP_EAGAIN when none waits, or
 * another negative error (logged).
 */
int swoop__ipc_recv(int fd, swoop_ipc_rbuf_t *rb, int max);

#endif /* SWOOP_IPC_MSG_H */
