/* Coroutine I/O against real sockets on 127.0.0.1 port 0: an echo server and clients as
 * coroutines of one thread, connect errors and timeouts, name resolution off the loop, a
 * write much larger than the socket buffer, wait_fd. */
/* TEST_LABELS: tsan */
#include <swoop/co.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <swoop/error.h>

#include "listen_any.h"
#include "test.h"

static void echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = swoop_co_read(fd, buf, sizeof(buf), 5000);
        if (n <= 0)
            break;
        ASSERT_EQ(swoop_co_write(fd, buf, (size_t)n, 5000), n);
    }
    close(fd);
}

struct server {
    int lfd;
    int conns;
    int want;
};

static void echo_server(void *arg)
{
    struct server *sv = arg;
    while (sv->conns < sv->want) {
        int rc = swoop_co_wait_fd(sv->lfd, SWOOP_READABLE, 5000);
        ASSERT_GT(rc, 0);
        for (;;) {
            int c = accept4(sv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0)
                break;
            sv->conns++;
            ASSERT_GT(swoop_co_go(echo_conn, (void *)(intptr_t)c), 0);
        }
    }
}

static int server_port;
static int clients_ok;

static void client(void *arg)
{
    const char *host = arg;
    int fd = swoop_co_connect(host, server_port, 3000);
    ASSERT_GE(fd, 0);
    char msg[64], back[64];
    for (int i = 0; i < 20; i++) {
        int n = snprintf(msg, sizeof(msg), "hello %d from %" PRId64, i, swoop_co_id());
        ASSERT_EQ(swoop_co_write(fd, msg, (size_t)n, 3000), n);
        int got = 0;
        while (got < n) {
            ssize_t r = swoop_co_read(fd, back + got, sizeof(back) - (size_t)got, 3000);
            ASSERT_GT(r, 0);
            got += (int)r;
        }
        ASSERT_MEM_EQ(back, msg, (size_t)n);
    }
    close(fd);
    clients_ok++;
}

static void echo_main(void *arg)
{
    struct server *sv = arg;
    ASSERT_GT(swoop_co_go(echo_server, sv), 0);
    for (int i = 0; i < 9; i++)
        ASSERT_GT(swoop_co_go(client, "127.0.0.1"), 0);
    /* By name: resolved on a thread, the loop serves the others meanwhile. */
    ASSERT_GT(swoop_co_go(client, "localhost"), 0);
}

TEST(echo_over_tcp_between_coroutines)
{
    int fds = swoop_test_fd_count();
    struct server sv = {.want = 10};
    sv.lfd = listen_any(&server_port);
    ASSERT_OK(swoop_co_run(echo_main, &sv));
    ASSERT_EQ(clients_ok, 10);
    ASSERT_EQ(sv.conns, 10);
    close(sv.lfd);
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
    ASSERT_EQ(swoop_test_fd_count(), fds); /* every socket closed */
}

static void connect_errors(void *arg)
{
    int port;
    int lfd = listen_any(&port);
    close(lfd); /* nobody listens there now */
    ASSERT_EQ(swoop_co_connect("127.0.0.1", port, 2000), SWOOP_ECONNREFUSED);
    ASSERT_EQ(swoop_co_connect("127.0.0.1", 0, 2000), SWOOP_EINVAL);
    ASSERT_EQ(swoop_co_connect(NULL, 80, 2000), SWOOP_EINVAL);
    ASSERT_EQ(swoop_co_connect("no-such-host.invalid", 80, 3000), SWOOP_ENOENT);

    /* A read that times out, then cancel of a read in progress. */
    int sp[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
    char c;
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(swoop_co_read(sp[0], &c, 1, 30), SWOOP_ETIMEDOUT);
    ASSERT_UGE(swoop_test_now_ms() - t0, 30);
    ASSERT_EQ(swoop_co_read(sp[0], &c, 1, 0), SWOOP_ETIMEDOUT);
    ASSERT_EQ(swoop_co_wait_fd(sp[0], SWOOP_READABLE, 0), SWOOP_ETIMEDOUT);
    ASSERT_EQ(swoop_co_wait_fd(sp[0], SWOOP_WRITABLE, 0), (int)SWOOP_WRITABLE);
    ASSERT_EQ(write(sp[1], "x", 1), 1);
    ASSERT_EQ(swoop_co_read(sp[0], &c, 1, 30), 1);
    ASSERT_EQ(c, 'x');
    close(sp[1]);
    ASSERT_EQ(swoop_co_read(sp[0], &c, 1, 30), 0); /* end of file */
    close(sp[0]);
    *(int *)arg = 1;
}

TEST(connect_and_read_errors)
{
    int done = 0;
    ASSERT_EQ(swoop_co_connect("127.0.0.1", 80, 10), SWOOP_ESTATE);
    ASSERT_OK(swoop_co_run(connect_errors, &done));
    ASSERT_EQ(done, 1);
}

enum { BIG = 4 * 1024 * 1024 };
static int big_fds[2];

static void big_reader(void *arg)
{
    unsigned char *buf = malloc(65536);
    size_t got = 0;
    uint32_t sum = 0;
    for (;;) {
        ssize_t n = swoop_co_read(big_fds[1], buf, 65536, 5000);
        ASSERT_GE(n, 0);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            sum = sum * 31 + buf[i];
        got += (size_t)n;
    }
    free(buf);
    ASSERT_UEQ(got, BIG);
    *(uint32_t *)arg = sum;
}

static void big_writer(void *arg)
{
    unsigned char *data = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 12));
    uint32_t sum = 0;
    for (size_t i = 0; i < BIG; i++)
        sum = sum * 31 + data[i];
    /* The kernel takes a few hundred KiB at a time: the write parks again and again. */
    ASSERT_EQ(swoop_co_write(big_fds[0], data, BIG, 10000), BIG);
    shutdown(big_fds[0], SHUT_WR);
    free(data);
    *(uint32_t *)arg = sum;
}

static void big_main(void *arg)
{
    uint32_t *sums = arg;
    ASSERT_GT(swoop_co_go(big_reader, &sums[1]), 0);
    ASSERT_GT(swoop_co_go(big_writer, &sums[0]), 0);
}

TEST(large_write_waits_for_room)
{
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, big_fds));
    uint32_t sums[2] = {1, 2};
    ASSERT_OK(swoop_co_run(big_main, sums));
    ASSERT_UEQ(sums[0], sums[1]);
    close(big_fds[0]);
    close(big_fds[1]);
}

static int64_t reader_id;
static int reader_rc;

static void blocked_reader(void *arg)
{
    char c;
    reader_rc = (int)swoop_co_read((int)(intptr_t)arg, &c, 1, -1);
}

static void canceller(void *arg)
{
    ASSERT_OK(swoop_co_sleep(10));
    ASSERT_OK(swoop_co_cancel(reader_id));
    ASSERT_EQ(reader_rc, SWOOP_ECANCELED);
}

TEST(cancel_a_read)
{
    int sp[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
    reader_rc = 1;
    reader_id = swoop_co_go(blocked_reader, (void *)(intptr_t)sp[0]);
    ASSERT_GT(reader_id, 0);
    ASSERT_OK(swoop_co_run(canceller, NULL));
    ASSERT_EQ(reader_rc, SWOOP_ECANCELED);
    close(sp[0]);
    close(sp[1]);
}

/*
 * A wait that ended with its event leaves the fd registered in the loop's
 * epoll set, disarmed (EPOLLONESHOT), so the next wait on it re-arms it with
 * one epoll_ctl instead of an add and a delete per wait. Read from
 * /proc/self/fdinfo of the epoll fd: -1 when the fd is not registered, else
 * its event mask.
 */
static long epoll_mask(int fd)
{
    int epfd = -1;
    for (int i = 0; i < 1024 && epfd < 0; i++) {
        char path[64], link[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        if (n > 0) {
            link[n] = 0;
            if (strcmp(link, "anon_inode:[eventpoll]") == 0)
                epfd = i;
        }
    }
    ASSERT_GE(epfd, 0);
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    long mask = -1;
    while (fgets(line, sizeof(line), f)) {
        int tfd;
        unsigned long ev;
        if (sscanf(line, "tfd: %d events: %lx", &tfd, &ev) == 2 && tfd == fd)
            mask = (long)ev;
    }
    fclose(f);
    return mask;
}

#define ONESHOT_BIT 0x40000000L /* EPOLLONESHOT */

static int rearm_fds[2];

static void rearm_writer(void *arg)
{
    ASSERT_OK(swoop_co_sleep(2));
    ASSERT_EQ(write(*(int *)arg, "x", 1), 1);
}

/* Waits for one byte on rearm_fds[0] written by another coroutine, and reads it. */
static void wait_one_byte(void)
{
    ASSERT_GT(swoop_co_go(rearm_writer, &rearm_fds[1]), 0);
    char c;
    ASSERT_EQ(swoop_co_read(rearm_fds[0], &c, 1, 3000), 1);
}

static void rearm_main(void *arg)
{
    (void)arg;
    int fd = rearm_fds[0];
    ASSERT_EQ(epoll_mask(fd), -1);
    for (int round = 0; round < 3; round++) {
        wait_one_byte();
        ASSERT_EQ(epoll_mask(fd), ONESHOT_BIT); /* kept, disarmed by its event */
    }
    /* A wait that times out removes the registration. */
    ASSERT_EQ(swoop_co_wait_fd(fd, SWOOP_READABLE, 5), SWOOP_ETIMEDOUT);
    ASSERT_EQ(epoll_mask(fd), -1);
    wait_one_byte();
    ASSERT_EQ(epoll_mask(fd), ONESHOT_BIT);
    /* Closing the fd drops the kernel's registration; a new socket under the same number
     * (the loop still believes in the old registration) is waited on correctly. */
    close(rearm_fds[0]);
    close(rearm_fds[1]);
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rearm_fds));
    ASSERT_EQ(rearm_fds[0], fd);
    ASSERT_EQ(epoll_mask(fd), -1);
    wait_one_byte();
    ASSERT_EQ(epoll_mask(fd), ONESHOT_BIT);
    /* wait_fd keeps level-triggered meaning: a byte left unread is found again. */
    ASSERT_EQ(write(rearm_fds[1], "yz", 2), 2);
    char c;
    ASSERT_EQ(swoop_co_read(fd, &c, 1, 1000), 1);
    ASSERT_GT(swoop_co_wait_fd(fd, SWOOP_READABLE, 1000), 0);
    ASSERT_EQ(swoop_co_read(fd, &c, 1, 1000), 1);
    ASSERT_EQ(c, 'z');
}

TEST(a_finished_wait_keeps_its_registration_disarmed)
{
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rearm_fds));
    ASSERT_OK(swoop_co_run(rearm_main, NULL));
    close(rearm_fds[0]);
    close(rearm_fds[1]);
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
}
