/*
 * The batch sender (src/net/sendmany.c) over real stream socketpairs, with
 * io_uring where the kernel allows it and with the send() fallback: every
 * socket gets the bytes, a full socket answers -EAGAIN and takes nothing,
 * a nearly full one takes part, a socket whose peer is gone answers
 * -EPIPE without stopping the others, and batches larger than the ring
 * go out in several submissions.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/sendmany.h"
#include "test.h"

#define N 100

typedef struct pairs_s {
    int ours[N], theirs[N];
} pairs_t;

static void open_pairs(pairs_t *p)
{
    for (int i = 0; i < N; i++) {
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ASSERT_EQ(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
        p->ours[i] = sv[0];
        p->theirs[i] = sv[1];
    }
}

static void close_pairs(pairs_t *p)
{
    for (int i = 0; i < N; i++) {
        close(p->ours[i]);
        if (p->theirs[i] >= 0)
            close(p->theirs[i]);
    }
}

/* Fills fd's socket until it takes nothing more; how many bytes it took. */
static size_t fill_up(int fd)
{
    static char junk[65536];
    size_t total = 0;
    for (;;) {
        ssize_t n = send(fd, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            return total;
        total += (size_t)n;
    }
}

static void every_socket_gets_it(swoop_sendmany_t *m)
{
    pairs_t p;
    open_pairs(&p);
    const char msg[] = "one frame for everyone";
    ssize_t res[N];
    size_t via = swoop__sendmany(m, p.ours, N, msg, sizeof(msg), res);
    ASSERT_EQ(via, m ? (size_t)N : 0u);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(res[i], (ssize_t)sizeof(msg));
        char got[sizeof(msg)];
        ASSERT_EQ(recv(p.theirs[i], got, sizeof(got), MSG_DONTWAIT), (ssize_t)sizeof(msg));
        ASSERT_EQ(memcmp(got, msg, sizeof(msg)), 0);
    }
    close_pairs(&p);
}

/* Socket 3 is full, socket 5's peer is gone: the others are untouched by that. */
static void full_and_dead_sockets(swoop_sendmany_t *m)
{
    pairs_t p;
    open_pairs(&p);
    ASSERT_GT(fill_up(p.ours[3]), 0u);
    close(p.theirs[5]);
    p.theirs[5] = -1;
    const char msg[] = "hello";
    ssize_t res[N];
    swoop__sendmany(m, p.ours, N, msg, sizeof(msg), res);
    for (int i = 0; i < N; i++) {
        if (i == 3)
            ASSERT_EQ(res[i], -EAGAIN);
        else if (i == 5)
            ASSERT_EQ(res[i], -EPIPE);
        else
            ASSERT_EQ(res[i], (ssize_t)sizeof(msg));
    }
    close_pairs(&p);
}

/* A buffer bigger than a socket takes: a partial count, and the bytes are the first ones. */
static void partial_write(swoop_sendmany_t *m)
{
    pairs_t p;
    open_pairs(&p);
    size_t big = 4u << 20;
    char *buf = malloc(big);
    ASSERT_NE(buf, NULL);
    for (size_t i = 0; i < big; i++)
        buf[i] = (char)(i * 13);
    ssize_t res[N];
    swoop__sendmany(m, p.ours, 2, buf, big, res);
    for (int i = 0; i < 2; i++) {
        ASSERT_GT(res[i], 0);
        ASSERT_LT(res[i], (ssize_t)big);
        char got[4096];
        ssize_t n = recv(p.theirs[i], got, sizeof(got), MSG_DONTWAIT);
        ASSERT_GT(n, 0);
        ASSERT_EQ(memcmp(got, buf, (size_t)n), 0);
    }
    free(buf);
    close_pairs(&p);
}

/* More sockets than the ring has entries: several submissions, all counted. */
static void larger_than_the_ring(void)
{
    swoop_sendmany_t *m;
    if (swoop__sendmany_open(&m, 8) < 0) {
        printf("# io_uring refused here: nothing to check\n");
        ASSERT_EQ(m, NULL);
        return;
    }
    pairs_t p;
    open_pairs(&p);
    ssize_t res[N];
    ASSERT_EQ(swoop__sendmany(m, p.ours, N, "x", 1, res), (size_t)N);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(res[i], 1);
    close_pairs(&p);
    swoop__sendmany_close(m);
}

TEST(sendmany_io_uring)
{
    swoop_sendmany_t *m;
    if (swoop__sendmany_open(&m, 64) < 0) {
        printf("# io_uring refused here: the fallback is tested below\n");
        return;
    }
    every_socket_gets_it(m);
    full_and_dead_sockets(m);
    partial_write(m);
    swoop__sendmany_close(m);
}

TEST(sendmany_fallback)
{
    every_socket_gets_it(NULL);
    full_and_dead_sockets(NULL);
    partial_write(NULL);
    swoop__sendmany_close(NULL);
}

TEST(sendmany_several_submissions)
{
    larger_than_the_ring();
}
