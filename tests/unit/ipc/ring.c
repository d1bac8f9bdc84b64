/*
 * The shared-memory SPSC datagram ring (src/ipc/ring.c): order and content
 * across many wraps, the sleep/wake handshake, a corrupt record, and an
 * 8 MiB chunked message plus small ones between two processes, where the
 * reader sleeps on its eventfd and the writer waits for room on its own.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/error.h>

#include "ipc/msg.h"
#include "ipc/ring.h"
#include "test.h"

#define CAP SWOOP_RING_MIN_CAP

static swoop_ring_t *ring_map(void)
{
    void *p = mmap(NULL, swoop__ring_size(CAP) + sizeof(swoop_ring_waker_t) * 2,
                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    swoop__ring_init(p, CAP);
    return p;
}

static swoop_ring_waker_t *wakers_of(swoop_ring_t *ring)
{
    return (swoop_ring_waker_t *)((char *)ring + swoop__ring_size(CAP));
}

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (char)((i * 31 + seed) & 0xff);
}

TEST(ring_order_and_content_across_wraps)
{
    swoop_ring_t *ring = ring_map();
    ASSERT_NOT_NULL(ring);
    swoop_ipc_rbuf_t rb;
    swoop__ipc_rbuf_init(&rb);
    char *buf = malloc(SWOOP_IPC_MAX);
    unsigned sent = 0, got = 0;
    /* Sizes from 0 to the largest datagram, so records end everywhere in the ring. */
    for (int round = 0; round < 400; round++) {
        for (int k = 0; k < 5; k++) {
            size_t len = ((size_t)sent * 7919u) % (SWOOP_IPC_MAX + 1);
            fill(buf, len, sent);
            struct iovec iov = {.iov_base = buf, .iov_len = len};
            if (swoop__ring_push(ring, &iov, 1) == SWOOP_EAGAIN)
                break;
            sent++;
        }
        int wake = 0;
        int n = swoop__ring_recv(ring, &rb, 3, &wake);
        if (n == SWOOP_EAGAIN)
            continue;
        ASSERT_GT(n, 0);
        for (int i = 0; i < n; i++, got++) {
            size_t len = ((size_t)got * 7919u) % (SWOOP_IPC_MAX + 1);
            ASSERT_UEQ(rb.lens[i], len);
            fill(buf, len, got);
            ASSERT_MEM_EQ(swoop__ipc_rbuf_at(&rb, i), buf, len);
        }
    }
    int wake = 0, n;
    while ((n = swoop__ring_recv(ring, &rb, SWOOP_IPC_RECV_BATCH, &wake)) > 0)
        got += (unsigned)n;
    ASSERT_EQ(n, SWOOP_EAGAIN);
    ASSERT_UEQ(got, sent);
    ASSERT_GT(sent, 100);
    ASSERT_UGE(atomic_load(&ring->tail), 4 * (uint64_t)CAP); /* wrapped several times */
    free(buf);
    swoop__ipc_rbuf_free(&rb);
    munmap(ring, swoop__ring_size(CAP) + 2 * sizeof(swoop_ring_waker_t));
}

TEST(ring_wakes_only_a_sleeping_reader)
{
    swoop_ring_t *ring = ring_map();
    ASSERT_NOT_NULL(ring);
    swoop_ring_waker_t *w = wakers_of(ring);
    swoop_ring_t *rings[1] = {ring};
    char b[8] = "abcdefg";
    struct iovec iov = {.iov_base = b, .iov_len = sizeof(b)};
    /* Awake reader: no wake-up needed. */
    ASSERT_EQ(swoop__ring_push(ring, &iov, 1), 0);
    ASSERT_EQ(swoop__ring_must_wake(w), 0);
    /* A record waits: the reader must not sleep. */
    ASSERT_EQ(swoop__ring_prepare_sleep(w, rings, 1), 1);
    ASSERT_EQ(atomic_load(&w->sleeping), 0);
    swoop_ipc_rbuf_t rb;
    swoop__ipc_rbuf_init(&rb);
    int wake = 1;
    ASSERT_EQ(swoop__ring_recv(ring, &rb, 16, &wake), 1);
    ASSERT_EQ(wake, 0);
    /* Empty: it sleeps, and the next writer wakes it exactly once. */
    ASSERT_EQ(swoop__ring_prepare_sleep(w, rings, 1), 0);
    ASSERT_EQ(swoop__ring_push(ring, &iov, 1), 0);
    ASSERT_EQ(swoop__ring_must_wake(w), 1);
    ASSERT_EQ(swoop__ring_must_wake(w), 0);
    /* A writer waiting for room is signaled by the next recv that frees some. */
    ASSERT_EQ(swoop__ring_wait_room(ring, 8), 1);
    ASSERT_EQ(swoop__ring_recv(ring, &rb, 16, &wake), 1);
    ASSERT_EQ(wake, 1);
    swoop__ipc_rbuf_free(&rb);
    munmap(ring, swoop__ring_size(CAP) + 2 * sizeof(swoop_ring_waker_t));
}

TEST(ring_corrupt_record_empties_it)
{
    swoop_ring_t *ring = ring_map();
    ASSERT_NOT_NULL(ring);
    char b[16] = {0};
    struct iovec iov = {.iov_base = b, .iov_len = sizeof(b)};
    ASSERT_EQ(swoop__ring_push(ring, &iov, 1), 0);
    ASSERT_EQ(swoop__ring_push(ring, &iov, 1), 0);
    uint32_t bad = SWOOP_IPC_MAX + 1;
    memcpy(ring->data, &bad, sizeof(bad));
    swoop_ipc_rbuf_t rb;
    swoop__ipc_rbuf_init(&rb);
    int wake;
    ASSERT_EQ(swoop__ring_recv(ring, &rb, 16, &wake), SWOOP_EAGAIN);
    ASSERT_UEQ(ring->dropped, 1);
    ASSERT_EQ(swoop__ring_readable(ring), 0);
    ASSERT_EQ(swoop__ring_push(ring, &iov, 1), 0); /* still usable */
    ASSERT_EQ(swoop__ring_recv(ring, &rb, 16, &wake), 1);
    swoop__ipc_rbuf_free(&rb);
    munmap(ring, swoop__ring_size(CAP) + 2 * sizeof(swoop_ring_waker_t));
}

static void wait_fd(int efd)
{
    struct pollfd p = {.fd = efd, .events = POLLIN};
    poll(&p, 1, 1000);
    swoop__ring_clear(efd);
}

TEST(ring_8mib_message_between_processes)
{
    swoop_ring_t *ring = ring_map();
    ASSERT_NOT_NULL(ring);
    swoop_ring_waker_t *wk = wakers_of(ring);
    int reader_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int writer_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_GE(reader_efd, 0);
    ASSERT_GE(writer_efd, 0);
    size_t len = 8u << 20;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        /* Reader: sleeps on its eventfd, expects 100 small, the big one, 100 small. */
        swoop_ipc_rbuf_t rb;
        swoop__ipc_rbuf_init(&rb);
        swoop_ipc_in_t in;
        swoop__ipc_in_init(&in, 0);
        swoop_ring_t *rings[1] = {ring};
        char *want = malloc(len);
        fill(want, len, 5);
        int seen = 0;
        while (seen < 201) {
            if (!swoop__ring_prepare_sleep(wk, rings, 1))
                wait_fd(reader_efd);
            swoop__ring_awake(wk);
            int wake = 0;
            int n = swoop__ring_recv(ring, &rb, SWOOP_IPC_RECV_BATCH, &wake);
            if (wake)
                swoop__ring_signal(writer_efd);
            for (int i = 0; i < n; i++) {
                swoop_ipc_msg_t m;
                if (swoop__ipc_feed(&in, swoop__ipc_rbuf_at(&rb, i), rb.lens[i], &m) != 1)
                    continue;
                if (seen == 100) {
                    if (m.len != len || memcmp(m.data, want, len) != 0)
                        _exit(3);
                } else if (m.len != 4 || m.head.conn_id != (uint64_t)seen) {
                    _exit(4);
                }
                seen++;
                swoop__ipc_msg_done(&m);
            }
        }
        _exit(in.dropped == 0 ? 0 : 5);
    }
    swoop_ipc_out_t out;
    swoop__ipc_out_init(&out, -1);
    swoop__ipc_out_use_ring(&out, ring, wk, reader_efd);
    char *big = malloc(len);
    fill(big, len, 5);
    for (int i = 0; i < 201; i++) {
        swoop_ipc_head_t h = {.type = SWOOP_IPC_DATA, .conn_id = (uint64_t)i};
        int rc =
            i == 100 ? swoop__ipc_send(&out, &h, big, len) : swoop__ipc_send(&out, &h, "ping", 4);
        ASSERT_GE(rc, 0);
        while (swoop__ipc_flush(&out) == 1)
            wait_fd(writer_efd);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    swoop__ipc_out_free(&out);
    free(big);
    close(reader_efd);
    close(writer_efd);
    munmap(ring, swoop__ring_size(CAP) + 2 * sizeof(swoop_ring_waker_t));
}
