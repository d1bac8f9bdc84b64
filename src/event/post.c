/*
 * Cross-thread posts and wake-ups. Posted callbacks queue under a mutex; the
 * first post into an empty queue writes the loop's eventfd, later ones ride
 * on that same wake-up, so a burst of posts costs one write and one read.
 * swoop_loop_stop uses the same eventfd to interrupt a sleeping poll.
 */
#include <swoop/loop.h>

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "event/internal.h"

static void wake_cb(swoop_io_t *io, unsigned events);

int swoop__post_init(swoop_loop_t *loop)
{
    pthread_mutex_init(&loop->post_lock, NULL);
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "eventfd() failed for the loop wake-up");
        pthread_mutex_destroy(&loop->post_lock);
        return -err;
    }
    swoop_io_init(loop, &loop->wake_io, loop->wake_fd, wake_cb);
    loop->wake_io._flags |= SWOOP_IO_INTERNAL;
    int rc = swoop_io_start(&loop->wake_io, SWOOP_READABLE);
    if (rc < 0) {
        close(loop->wake_fd);
        pthread_mutex_destroy(&loop->post_lock);
        return rc;
    }
    return 0;
}

void swoop__post_free(swoop_loop_t *loop)
{
    if (loop->wake_fd >= 0) {
        swoop_io_stop(&loop->wake_io);
        close(loop->wake_fd);
        loop->wake_fd = -1;
    }
    swoop_post_t *p = loop->post_head;
    while (p) {
        swoop_post_t *next = p->next;
        swoop_free(p);
        p = next;
    }
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_destroy(&loop->post_lock);
}

void swoop__loop_wake(swoop_loop_t *loop)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the loop will wake anyway. */
    ssize_t n = write(loop->wake_fd, &one, sizeof(one));
    (void)n;
}

int swoop_loop_post(swoop_loop_t *loop, swoop_post_cb cb, void *arg)
{
    if (loop == NULL || cb == NULL)
        return SWOOP_EINVAL;
    if (swoop__loop_detached(loop)) {
        /* Its eventfd is the parent's: a write would wake the parent's loop. */
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_loop_post: loop made before fork() elsewhere");
        return SWOOP_ESTATE;
    }
    swoop_post_t *p = swoop_try_malloc(sizeof(*p));
    if (p == NULL) {
        swoop_log(SWOOP_LOG_ERROR, ENOMEM, "swoop_loop_post: cannot queue a callback");
        return SWOOP_ENOMEM;
    }
    p->cb = cb;
    p->arg = arg;
    p->next = NULL;
    pthread_mutex_lock(&loop->post_lock);
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    atomic_fetch_add_explicit(&loop->post_pending, 1, memory_order_release);
    int need_wake = !loop->post_signaled;
    loop->post_signaled = 1;
    if (need_wake)
        swoop__loop_wake(loop);
    pthread_mutex_unlock(&loop->post_lock);
    return 0;
}

static void wake_cb(swoop_io_t *io, unsigned events)
{
    swoop_loop_t *loop = swoop_container_of(io, swoop_loop_t, wake_io);
    uint64_t count;
    ssize_t n = read(loop->wake_fd, &count, sizeof(count));
    (void)n;
    swoop__loop_run_posts(loop);
}

void swoop__loop_run_posts(swoop_loop_t *loop)
{
    pthread_mutex_lock(&loop->post_lock);
    swoop_post_t *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    loop->post_signaled = 0;
    pthread_mutex_unlock(&loop->post_lock);

    /* Run outside the lock: a callback may post again. */
    while (p) {
        swoop_post_t *next = p->next;
        swoop_post_cb cb = p->cb;
        void *arg = p->arg;
        swoop_free(p);
        atomic_fetch_sub_explicit(&loop->post_pending, 1, memory_order_release);
        cb(loop, arg);
        p = next;
    }
}
