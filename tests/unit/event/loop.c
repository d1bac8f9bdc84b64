/* The loop and fd watchers: run/stop semantics, interest changes, stale events. */
#include <swoop/loop.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <swoop/error.h>

#include "test.h"

TEST(loop_run_returns_when_nothing_left)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    ASSERT_STR_EQ(swoop_loop_backend(loop), "epoll");
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(swoop_loop_run_once(loop), 0);
    ASSERT_EQ(swoop_loop_new(NULL), SWOOP_EINVAL);
    ASSERT_EQ(swoop_loop_free(loop), 0);
}

struct pipe_ctx {
    int fds[2];
    swoop_io_t io;
    int reads;
    int writes;
    char last;
};

static void on_readable(swoop_io_t *io, unsigned events)
{
    struct pipe_ctx *c = io->data;
    ASSERT(events & SWOOP_READABLE);
    char ch;
    ASSERT_EQ(read(swoop_io_fd(io), &ch, 1), 1);
    c->last = ch;
    if (++c->reads == 3)
        swoop_io_stop(io);
}

TEST(io_readable_until_stopped)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    struct pipe_ctx c = {0};
    ASSERT_EQ(pipe2(c.fds, O_NONBLOCK | O_CLOEXEC), 0);
    ASSERT_EQ(write(c.fds[1], "abcd", 4), 4);
    c.io.data = &c;
    ASSERT_OK(swoop_io_init(loop, &c.io, c.fds[0], on_readable));
    ASSERT_EQ(swoop_io_is_active(&c.io), 0);
    ASSERT_OK(swoop_io_start(&c.io, SWOOP_READABLE));
    ASSERT_EQ(swoop_io_is_active(&c.io), 1);
    /* Busy while a watcher is started. */
    ASSERT_EQ(swoop_loop_free(loop), SWOOP_EBUSY);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(c.reads, 3);
    ASSERT_EQ(c.last, 'c');
    ASSERT_EQ(swoop_io_is_active(&c.io), 0);
    close(c.fds[0]);
    close(c.fds[1]);
    ASSERT_OK(swoop_loop_free(loop));
}

static void on_writable_then_read(swoop_io_t *io, unsigned events)
{
    struct pipe_ctx *c = io->data;
    if (events & SWOOP_WRITABLE) {
        c->writes++;
        ASSERT_EQ(write(c->fds[1], "x", 1), 1);
        /* Switch the interest from inside the callback. */
        ASSERT_OK(swoop_io_start(io, SWOOP_READABLE));
        return;
    }
    ASSERT(events & SWOOP_READABLE);
    c->reads++;
    swoop_io_stop(io);
}

TEST(io_interest_change_inside_callback)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    struct pipe_ctx c = {0};
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    c.fds[0] = sv[0];
    c.fds[1] = sv[0];
    c.io.data = &c;
    ASSERT_OK(swoop_io_init(loop, &c.io, sv[0], on_writable_then_read));
    ASSERT_OK(swoop_io_start(&c.io, SWOOP_WRITABLE));
    /* The peer echoes nothing; make sv[0] readable by writing from sv[1]. */
    ASSERT_EQ(write(sv[1], "y", 1), 1);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(c.writes, 1);
    ASSERT_EQ(c.reads, 1);
    close(sv[0]);
    close(sv[1]);
    ASSERT_OK(swoop_loop_free(loop));
}

TEST(io_errors)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    swoop_io_t a, b, f;
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    ASSERT_EQ(swoop_io_init(loop, &a, -1, on_readable), SWOOP_EINVAL);
    ASSERT_EQ(swoop_io_init(loop, &a, fds[0], NULL), SWOOP_EINVAL);
    ASSERT_OK(swoop_io_init(loop, &a, fds[0], on_readable));
    ASSERT_OK(swoop_io_init(loop, &b, fds[0], on_readable));
    ASSERT_OK(swoop_io_start(&a, SWOOP_READABLE));
    ASSERT_EQ(swoop_io_start(&b, SWOOP_READABLE), SWOOP_EEXIST);
    ASSERT_OK(swoop_io_start(&a, 0)); /* 0 = stop */
    ASSERT_EQ(swoop_io_is_active(&a), 0);
    ASSERT_OK(swoop_io_stop(&a)); /* stopping twice is fine */

    /* epoll cannot watch a regular file. */
    char path[512];
    snprintf(path, sizeof(path), "%s/file", swoop_test_tmpdir());
    int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_OK(swoop_io_init(loop, &f, fd, on_readable));
    ASSERT_EQ(swoop_io_start(&f, SWOOP_READABLE), SWOOP_EPERM);
    ASSERT_EQ(swoop_io_is_active(&f), 0);
    close(fd);
    close(fds[0]);
    close(fds[1]);
    ASSERT_OK(swoop_loop_free(loop));
}

/*
 * Several fds ready in one batch; the first callback to run stops and closes
 * every other one and opens new pipes that reuse their fd numbers, with new
 * watchers. None of the old events may reach anyone.
 */
struct batch_ctx {
    swoop_loop_t *loop;
    int rfd[4], wfd[4];
    swoop_io_t io[4];
    swoop_io_t fresh[4];
    int fresh_fd[4][2];
    int calls[4];
    int fresh_calls;
    int first;
};

static void on_fresh(swoop_io_t *io, unsigned events)
{
    struct batch_ctx *c = io->data;
    c->fresh_calls++;
}

static void on_batch(swoop_io_t *io, unsigned events)
{
    struct batch_ctx *c = io->data;
    int me = (int)(io - c->io);
    c->calls[me]++;
    if (c->first >= 0)
        return;
    c->first = me;
    for (int i = 0; i < 4; i++) {
        if (i == me)
            continue;
        ASSERT_OK(swoop_io_stop(&c->io[i]));
        close(c->rfd[i]);
        close(c->wfd[i]);
    }
    for (int i = 0; i < 4; i++) {
        if (i == me)
            continue;
        ASSERT_EQ(pipe2(c->fresh_fd[i], O_NONBLOCK | O_CLOEXEC), 0);
        c->fresh[i].data = c;
        ASSERT_OK(swoop_io_init(c->loop, &c->fresh[i], c->fresh_fd[i][0], on_fresh));
        ASSERT_OK(swoop_io_start(&c->fresh[i], SWOOP_READABLE));
    }
    swoop_io_stop(io);
}

TEST(io_no_stale_event_after_stop_in_same_batch)
{
    struct batch_ctx c;
    memset(&c, 0, sizeof(c));
    c.first = -1;
    ASSERT_OK(swoop_loop_new(&c.loop));
    for (int i = 0; i < 4; i++) {
        int p[2];
        ASSERT_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        c.rfd[i] = p[0];
        c.wfd[i] = p[1];
        ASSERT_EQ(write(p[1], "z", 1), 1);
        c.io[i].data = &c;
        ASSERT_OK(swoop_io_init(c.loop, &c.io[i], p[0], on_batch));
        ASSERT_OK(swoop_io_start(&c.io[i], SWOOP_READABLE));
    }
    ASSERT_EQ(swoop_loop_run_once(c.loop), 1);
    ASSERT_GE(c.first, 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(c.calls[i], i == c.first ? 1 : 0);
    /* The fresh pipes got the old numbers and are empty: no call. */
    ASSERT_EQ(c.fresh_calls, 0);
    int reused = 0;
    for (int i = 0; i < 4; i++) {
        if (i == c.first)
            continue;
        for (int j = 0; j < 4; j++)
            reused += c.fresh_fd[i][0] == c.rfd[j];
        swoop_io_stop(&c.fresh[i]);
        close(c.fresh_fd[i][0]);
        close(c.fresh_fd[i][1]);
    }
    ASSERT_GT(reused, 0);
    close(c.rfd[c.first]);
    close(c.wfd[c.first]);
    ASSERT_OK(swoop_loop_free(c.loop));
}

static void on_hangup(swoop_io_t *io, unsigned events)
{
    int *seen = io->data;
    *seen = (int)events;
    swoop_io_stop(io);
}

TEST(io_hangup_is_reported_as_readable)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int seen = 0;
    swoop_io_t io;
    io.data = &seen;
    ASSERT_OK(swoop_io_init(loop, &io, sv[0], on_hangup));
    ASSERT_OK(swoop_io_start(&io, SWOOP_READABLE));
    close(sv[1]);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT((unsigned)seen & SWOOP_READABLE);
    ASSERT((unsigned)seen & SWOOP_HANGUP);
    char ch;
    ASSERT_EQ(read(sv[0], &ch, 1), 0); /* EOF */
    close(sv[0]);
    ASSERT_OK(swoop_loop_free(loop));
}

static void stop_from_cb(swoop_io_t *io, unsigned events)
{
    swoop_loop_t *loop = io->data;
    swoop_loop_stop(loop);
}

TEST(loop_stop_returns_one_with_work_left)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    ASSERT_EQ(write(fds[1], "a", 1), 1);
    swoop_io_t io;
    io.data = loop;
    ASSERT_OK(swoop_io_init(loop, &io, fds[0], stop_from_cb));
    ASSERT_OK(swoop_io_start(&io, SWOOP_READABLE));
    /* Readable forever (never read), yet run returns because of stop. */
    ASSERT_EQ(swoop_loop_run(loop), 1);
    ASSERT_EQ(swoop_loop_run(loop), 1);
    swoop_io_stop(&io);
    close(fds[0]);
    close(fds[1]);
    ASSERT_OK(swoop_loop_free(loop));
}

TEST(default_loop_is_per_thread_and_replaceable)
{
    swoop_loop_t *a = swoop_loop_default();
    ASSERT_NOT_NULL(a);
    ASSERT(a == swoop_loop_default());
    int fds_before = swoop_test_fd_count();
    ASSERT_OK(swoop_loop_free(a));
    /* epoll fd, timerfd and eventfd are gone */
    ASSERT_EQ(swoop_test_fd_count(), fds_before - 3);
    swoop_loop_t *b = swoop_loop_default();
    ASSERT_NOT_NULL(b);
    ASSERT_OK(swoop_loop_free(b));
}

/*
 * An I/O callback sees the loop time of its wake-up, not that of before
 * the wait: a byte written 300 ms into a blocking wait is stamped >= 250 ms
 * after the wait began (a connection's idle clock depends on it).
 */
struct late_ctx {
    swoop_io_t io;
    swoop_loop_t *loop;
    int fds[2];
    uint64_t seen_ms;
};

static void on_late_byte(swoop_io_t *io, unsigned events)
{
    (void)events;
    struct late_ctx *c = io->data;
    char ch;
    ASSERT_EQ(read(c->fds[0], &ch, 1), 1);
    c->seen_ms = swoop_loop_now(c->loop);
    swoop_io_stop(io);
}

static void *write_late(void *arg)
{
    struct late_ctx *c = arg;
    swoop_test_sleep_ms(300);
    ASSERT_EQ(write(c->fds[1], "x", 1), 1);
    return NULL;
}

TEST(io_callback_sees_the_time_of_its_wakeup)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    struct late_ctx c = {.loop = loop};
    ASSERT_EQ(pipe2(c.fds, O_NONBLOCK | O_CLOEXEC), 0);
    c.io.data = &c;
    ASSERT_OK(swoop_io_init(loop, &c.io, c.fds[0], on_late_byte));
    ASSERT_OK(swoop_io_start(&c.io, SWOOP_READABLE));
    swoop_loop_update_time(loop);
    uint64_t before = swoop_loop_now(loop);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, write_late, &c), 0);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_GE(c.seen_ms, before + 250);
    close(c.fds[0]);
    close(c.fds[1]);
    ASSERT_OK(swoop_loop_free(loop));
}
