/*
 * IPC messages over real SOCK_DGRAM socketpairs: single datagrams, an 8 MiB
 * payload chunked through a small socket buffer (so the user-space queue
 * and the flush on writability are exercised), several writers whose
 * chunks interleave on one reader, and garbage or orphan chunks dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <swoop/error.h>

#include "ipc/channel.h"
#include "ipc/msg.h"
#include "test.h"

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 31 + seed) & 0xff);
}

/* Reads everything available, feeding `in`; returns the number of whole messages seen. */
static int drain(int fd, swoop_ipc_rbuf_t *rb, swoop_ipc_in_t *in, swoop_ipc_msg_t *msgs, int cap)
{
    int got = 0;
    for (;;) {
        int n = swoop__ipc_recv(fd, rb, SWOOP_IPC_RECV_BATCH);
        if (n == SWOOP_EAGAIN)
            return got;
        ASSERT_GT(n, 0);
        for (int i = 0; i < n; i++) {
            swoop_ipc_msg_t m;
            if (swoop__ipc_feed(in, swoop__ipc_rbuf_at(rb, i), rb->lens[i], &m) == 1) {
                ASSERT_LT(got, cap);
                /* Copy out: single datagrams point into the receive buffer. */
                if (m.owned == NULL) {
                    char *copy = malloc(m.len + 1);
                    memcpy(copy, m.data, m.len);
                    m.data = copy;
                    m.owned = NULL;
                    msgs[got] = m;
                    msgs[got].owned = copy; /* freed by the test with free() */
                    msgs[got].head.aux |= 0x80000000u;
                } else {
                    msgs[got] = m;
                }
                got++;
            }
        }
    }
}

static void release(swoop_ipc_msg_t *m)
{
    if (m->head.aux & 0x80000000u)
        free(m->owned);
    else
        swoop__ipc_msg_done(m);
}

TEST(ipc_small_messages_roundtrip)
{
    swoop_channel_t ch;
    ASSERT_OK(swoop__channel_open(&ch, 0));
    swoop_ipc_out_t out;
    swoop__ipc_out_init(&out, ch.fds[0]);
    for (int i = 0; i < 10; i++) {
        swoop_ipc_head_t h = {.type = SWOOP_IPC_DATA, .conn_id = (uint64_t)i + 100, .aux = 7};
        char body[32];
        int n = snprintf(body, sizeof(body), "msg %d", i);
        ASSERT_EQ(swoop__ipc_send(&out, &h, body, (size_t)n), 0);
    }
    /* An empty payload is a message too. */
    swoop_ipc_head_t e = {.type = SWOOP_IPC_CLOSE, .conn_id = 5};
    ASSERT_EQ(swoop__ipc_send(&out, &e, NULL, 0), 0);
    swoop_ipc_rbuf_t rb;
    swoop__ipc_rbuf_init(&rb);
    swoop_ipc_in_t in;
    swoop__ipc_in_init(&in, 0);
    swoop_ipc_msg_t msgs[16];
    ASSERT_EQ(drain(ch.fds[1], &rb, &in, msgs, 16), 11);
    for (int i = 0; i < 10; i++) {
        char body[32];
        int n = snprintf(body, sizeof(body), "msg %d", i);
        ASSERT_EQ(msgs[i].len, n);
        ASSERT_MEM_EQ(msgs[i].data, body, (size_t)n);
        ASSERT_UEQ(msgs[i].head.conn_id, (uint64_t)i + 100);
        ASSERT_EQ(msgs[i].head.type, SWOOP_IPC_DATA);
        release(&msgs[i]);
    }
    ASSERT_EQ(msgs[10].len, 0);
    ASSERT_EQ(msgs[10].head.type, SWOOP_IPC_CLOSE);
    release(&msgs[10]);
    swoop__ipc_in_free(&in);
    swoop__ipc_rbuf_free(&rb);
    swoop__ipc_out_free(&out);
    swoop__channel_close(&ch);
}

TEST(ipc_8mib_payload_through_a_small_socket)
{
    swoop_channel_t ch;
    ASSERT_OK(swoop__channel_open(&ch, 0));
    int small = 64 * 1024;
    setsockopt(ch.fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    size_t len = 8u << 20;
    char *big = malloc(len);
    fill(big, len, 3);
    swoop_ipc_out_t out;
    swoop__ipc_out_init(&out, ch.fds[0]);
    swoop_ipc_head_t h = {.type = SWOOP_IPC_DATA, .conn_id = 42};
    /* Sent in two pieces to cover the gathering path; the socket fills, the rest queues. */
    ASSERT_EQ(swoop__ipc_send2(&out, &h, big, 1000, big + 1000, len - 1000), 1);
    ASSERT(swoop__ipc_pending(&out));
    swoop_ipc_rbuf_t rb;
    swoop__ipc_rbuf_init(&rb);
    swoop_ipc_in_t in;
    swoop__ipc_in_init(&in, 16u << 20);
    swoop_ipc_msg_t msgs[2];
    int got = 0;
    uint64_t deadline = swoop_test_now_ms() + 10000;
    while (got == 0) {
        ASSERT(swoop_test_now_ms() < deadline);
        int rc = swoop__ipc_flush(&out);
        ASSERT_GE(rc, 0);
        got += drain(ch.fds[1], &rb, &in, msgs, 2);
    }
    ASSERT_EQ(got, 1);
    ASSERT(!swoop__ipc_pending(&out));
    ASSERT_EQ(msgs[0].len, len);
    ASSERT_UEQ(msgs[0].head.conn_id, 42);
    ASSERT_MEM_EQ(msgs[0].data, big, len);
    release(&msgs[0]);
    ASSERT_EQ(swoop__idmap_len(&in.pending), 0);
    free(big);
    swoop__ipc_in_free(&in);
    swoop__ipc_rbuf_free(&rb);
    swoop__ipc_out_free(&out);
    swoop__channel_close(&ch);
}

TEST(ipc_interleaved_writers)
{
    swoop_channel_t ch;
    ASSERT_OK(swoop__channel_open(&ch, 4 << 20));
    enum { W = 3 };
    swoop_ipc_out_t outs[W];
    char *payloads[W];
    size_t lens[W] = {300000, 200001, 65536};
    for (int w = 0; w < W; w++) {
        swoop__ipc_out_init(&outs[w], ch.fds[0]);
        swoop__ipc_cork(&outs[w]);
        payloads[w] = malloc(lens[w]);
        fill(payloads[w], lens[w], (unsigned)w + 10);
        swoop_ipc_head_t h = {.type = SWOOP_IPC_SEND, .worker_id = (int16_t)w};
        ASSERT_EQ(swoop__ipc_send(&outs[w], &h, payloads[w], lens[w]), 1);
    }
    /* Interleave: one datagram from each writer in turn, by moving queue heads by hand. */
    int left = 1;
    while (left) {
        left = 0;
        for (int w = 0; w < W; w++) {
            if (outs[w].queued_count == 0)
                continue;
            left = 1;
            swoop_queue_t rest;
            swoop_queue_init(&rest);
            /* Keep only the head in the queue, flush it, then put the rest back. */
            swoop_queue_t *first = swoop_queue_head(&outs[w].queue);
            swoop_queue_remove(first);
            swoop_queue_move(&outs[w].queue, &rest);
            swoop_queue_insert_tail(&outs[w].queue, first);
            size_t cnt = outs[w].queued_count;
            outs[w].queued_count = 1;
            ASSERT_EQ(swoop__ipc_flush(&outs[w]), 0);
            outs[w].queued_count = cnt - 1;
            swoop_queue_move(&rest, &outs[w].queue);
            outs[w].queued_bytes = 0;
        }
    }
    swoop_ipc_rbuf_t rb;
    swoop__ipc_rbuf_init(&rb);
    swoop_ipc_in_t in;
    swoop__ipc_in_init(&in, 0);
    swoop_ipc_msg_t msgs[W];
    ASSERT_EQ(drain(ch.fds[1], &rb, &in, msgs, W), W);
    for (int i = 0; i < W; i++) {
        int w = msgs[i].head.worker_id;
        ASSERT_EQ(msgs[i].len, lens[w]);
        ASSERT_MEM_EQ(msgs[i].data, payloads[w], lens[w]);
        release(&msgs[i]);
        free(payloads[w]);
    }
    ASSERT_EQ(in.dropped, 0);
    swoop__ipc_in_free(&in);
    swoop__ipc_rbuf_free(&rb);
    for (int w = 0; w < W; w++)
        swoop__ipc_out_free(&outs[w]);
    swoop__channel_close(&ch);
}

TEST(ipc_orphan_and_garbage_dropped)
{
    swoop_ipc_in_t in;
    swoop__ipc_in_init(&in, 1 << 20);
    swoop_ipc_msg_t m;
    char buf[128];
    /* Shorter than a header. */
    ASSERT_EQ(swoop__ipc_feed(&in, buf, 5, &m), 0);
    /* A middle chunk of an id nobody began. */
    swoop_ipc_head_t h = {
        .type = SWOOP_IPC_DATA, .flags = SWOOP_IPC_CHUNK, .len = 100000, .msg_id = 77};
    memcpy(buf, &h, sizeof(h));
    ASSERT_EQ(swoop__ipc_feed(&in, buf, sizeof(buf), &m), 0);
    /* A single datagram whose length field lies. */
    h.flags = 0;
    h.len = 1000;
    memcpy(buf, &h, sizeof(h));
    ASSERT_EQ(swoop__ipc_feed(&in, buf, sizeof(buf), &m), 0);
    /* A begin announcing more than the reader accepts: never allocated. */
    h.flags = SWOOP_IPC_CHUNK | SWOOP_IPC_BEGIN;
    h.len = 0x7fffffff;
    memcpy(buf, &h, sizeof(h));
    ASSERT_EQ(swoop__ipc_feed(&in, buf, sizeof(buf), &m), 0);
    ASSERT_EQ(in.dropped, 4);
    ASSERT_EQ(swoop__idmap_len(&in.pending), 0);
    /* A begun message whose writer died: freed with the reader (LSan checks). */
    h.len = 1000;
    memcpy(buf, &h, sizeof(h));
    ASSERT_EQ(swoop__ipc_feed(&in, buf, sizeof(buf), &m), 0);
    ASSERT_EQ(swoop__idmap_len(&in.pending), 1);
    swoop__ipc_in_free(&in);
}

TEST(ipc_dead_reader_is_an_error)
{
    swoop_channel_t ch;
    ASSERT_OK(swoop__channel_open(&ch, 0));
    swoop__channel_close_end(&ch, 1);
    swoop_ipc_out_t out;
    swoop__ipc_out_init(&out, ch.fds[0]);
    swoop_ipc_head_t h = {.type = SWOOP_IPC_DATA};
    ASSERT_LT(swoop__ipc_send(&out, &h, "x", 1), 0);
    ASSERT(!swoop__ipc_pending(&out));
    swoop__ipc_out_free(&out);
    swoop__channel_close(&ch);
}

/* ---- partial messages of writers that died ---- */

static int writer_dead[4];

static int gone(void *arg, const swoop_ipc_head_t *h)
{
    ASSERT(arg == writer_dead);
    return writer_dead[h->worker_id];
}

/* Feeds one chunk of message `id` from writer `w` (1000 bytes in all, 100 per chunk). */
static int chunk(swoop_ipc_in_t *in, uint64_t id, int w, int idx, swoop_ipc_msg_t *m)
{
    char buf[sizeof(swoop_ipc_head_t) + 100];
    swoop_ipc_head_t h = {.type = SWOOP_IPC_SEND,
                          .flags = (uint8_t)(SWOOP_IPC_CHUNK | (idx == 0 ? SWOOP_IPC_BEGIN : 0) |
                                             (idx == 9 ? SWOOP_IPC_END : 0)),
                          .worker_id = (int16_t)w,
                          .len = 1000,
                          .msg_id = id};
    memcpy(buf, &h, sizeof(h));
    memset(buf + sizeof(h), 'a' + idx, 100);
    return swoop__ipc_feed(in, buf, sizeof(buf), m);
}

TEST(ipc_partial_of_dead_writer_swept)
{
    swoop_ipc_in_t in;
    swoop__ipc_in_init(&in, 1 << 20);
    in.gone_cb = gone;
    in.gone_arg = writer_dead;
    swoop_ipc_msg_t m;
    /* Writer 1 sends half of message 5 and dies; writer 2 is alive but slow with message 6. */
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(chunk(&in, 5, 1, i, &m), 0);
        ASSERT_EQ(chunk(&in, 6, 2, i, &m), 0);
    }
    ASSERT_EQ(swoop__ipc_in_partial(&in), 2);
    writer_dead[1] = 1;
    for (int s = 0; s < SWOOP_IPC_SWEEPS_DEAD - 1; s++)
        ASSERT_EQ(swoop__ipc_in_sweep(&in), 0);
    ASSERT_EQ(swoop__ipc_in_sweep(&in), 1);
    ASSERT_EQ(swoop__ipc_in_partial(&in), 1);
    ASSERT_EQ(in.expired, 1);
    /* A late chunk of the dropped message is an unknown id, never trusted. */
    uint64_t dropped = in.dropped;
    ASSERT_EQ(chunk(&in, 5, 1, 5, &m), 0);
    ASSERT_EQ(in.dropped, dropped + 1);
    ASSERT_EQ(swoop__ipc_in_partial(&in), 1);
    /* The live writer's message survives idle sweeps and completes intact. */
    for (int s = 0; s < 5; s++)
        ASSERT_EQ(swoop__ipc_in_sweep(&in), 0);
    for (int i = 5; i < 9; i++)
        ASSERT_EQ(chunk(&in, 6, 2, i, &m), 0);
    ASSERT_EQ(chunk(&in, 6, 2, 9, &m), 1);
    ASSERT_EQ(m.len, 1000);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(m.data[i * 100 + 99], 'a' + i);
    swoop__ipc_msg_done(&m);
    ASSERT_EQ(swoop__ipc_in_partial(&in), 0);
    swoop__ipc_in_free(&in);
}

TEST(ipc_partial_aged_out)
{
    swoop_ipc_in_t in;
    swoop__ipc_in_init(&in, 1 << 20);
    swoop_ipc_msg_t m;
    /* Without gone_cb: idle SWOOP_IPC_SWEEPS_DEAD sweeps are enough; a chunk resets it. */
    ASSERT_EQ(chunk(&in, 9, 0, 0, &m), 0);
    for (int s = 0; s < SWOOP_IPC_SWEEPS_DEAD - 1; s++)
        ASSERT_EQ(swoop__ipc_in_sweep(&in), 0);
    ASSERT_EQ(chunk(&in, 9, 0, 1, &m), 0);
    for (int s = 0; s < SWOOP_IPC_SWEEPS_DEAD - 1; s++)
        ASSERT_EQ(swoop__ipc_in_sweep(&in), 0);
    ASSERT_EQ(swoop__ipc_in_sweep(&in), 1);
    ASSERT_EQ(swoop__ipc_in_partial(&in), 0);
    /* With a writer that stays alive: only the hard limit drops it. */
    in.gone_cb = gone;
    in.gone_arg = writer_dead;
    ASSERT_EQ(chunk(&in, 10, 3, 0, &m), 0);
    for (int s = 0; s < SWOOP_IPC_SWEEPS_MAX - 1; s++)
        ASSERT_EQ(swoop__ipc_in_sweep(&in), 0);
    ASSERT_EQ(swoop__ipc_in_sweep(&in), 1);
    ASSERT_EQ(in.expired, 2);
    swoop__ipc_in_free(&in);
}
