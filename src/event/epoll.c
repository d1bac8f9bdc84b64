/*
 * The epoll backend. Level-triggered, one epoll_event per fd carrying the fd
 * itself: the loop looks the watcher up in its fd table, so an event for a
 * watcher stopped earlier in the same batch finds nothing, and invalidate()
 * blanks the batch's later entries for an fd that was stopped (it may be
 * closed and reused by a new watcher before we get there; libuv does the
 * same in uv__platform_invalidate_fd).
 *
 * The wait uses epoll_pwait2 with a nanosecond timeout, so a timer is not
 * rounded to the millisecond: epoll_wait's millisecond timeout either wakes
 * early (and spins) or late (and loses beats of a 1 ms tick). Kernels older
 * than 5.11 fall back to epoll_wait with the timeout rounded up.
 */
#include <errno.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "event/internal.h"

#define EPOLL_BATCH_MIN 64
#define EPOLL_BATCH_MAX 4096

typedef struct epoll_data_s {
    int epfd;
    struct epoll_event *events;
    int cap;
    int batch_len; /* events in the batch being dispatched, 0 outside dispatch */
    int batch_pos;
} epoll_state_t;

static atomic_int pwait2_missing;

static int epoll_init(swoop_loop_t *loop)
{
    epoll_state_t *st = swoop_calloc(1, sizeof(*st));
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "epoll_create1() failed");
        swoop_free(st);
        return -err;
    }
    st->cap = EPOLL_BATCH_MIN;
    st->events = swoop_malloc(sizeof(*st->events) * (size_t)st->cap);
    loop->backend_data = st;
    return 0;
}

static void epoll_free(swoop_loop_t *loop)
{
    epoll_state_t *st = loop->backend_data;
    if (st == NULL)
        return;
    close(st->epfd);
    swoop_free(st->events);
    swoop_free(st);
    loop->backend_data = NULL;
}

static int epoll_set(swoop_loop_t *loop, int fd, unsigned old, unsigned events)
{
    epoll_state_t *st = loop->backend_data;
    struct epoll_event ev = {0};
    ev.data.fd = fd;
    if (events & SWOOP_READABLE)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (events & SWOOP_WRITABLE)
        ev.events |= EPOLLOUT;
    int op = old == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(st->epfd, op, fd, &ev) == 0)
        return 0;
    int err = errno;
    if (op == EPOLL_CTL_ADD && err == EEXIST) {
        /* The open file is still registered under this number (a dup'd fd). */
        if (epoll_ctl(st->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
            return 0;
        err = errno;
    }
    if (op == EPOLL_CTL_DEL && (err == ENOENT || err == EBADF))
        return 0; /* already gone with its file */
    if (err != EPERM)
        swoop_log(SWOOP_LOG_WARNING, err, "epoll_ctl(op=%d, fd=%d) failed", op, fd);
    return -err;
}

static int epoll_wait_ns(epoll_state_t *st, int64_t timeout_ns)
{
    if (!atomic_load_explicit(&pwait2_missing, memory_order_relaxed)) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        int n = epoll_pwait2(st->epfd, st->events, st->cap, tsp, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store(&pwait2_missing, 1);
    }
    int ms = -1;
    if (timeout_ns >= 0) {
        int64_t up = (timeout_ns + 999999) / 1000000; /* round up: never early */
        ms = up > 2147483647 ? 2147483647 : (int)up;
    }
    return epoll_wait(st->epfd, st->events, st->cap, ms);
}

static int epoll_poll(swoop_loop_t *loop, int64_t timeout_ns)
{
    epoll_state_t *st = loop->backend_data;
    int n = epoll_wait_ns(st, timeout_ns);
    if (n < 0) {
        int err = errno;
        if (err == EINTR)
            return 0;
        swoop_log(SWOOP_LOG_ERROR, err, "epoll_wait() failed");
        return -err;
    }
    st->batch_len = n;
    for (int i = 0; i < n; i++) {
        st->batch_pos = i;
        int fd = st->events[i].data.fd;
        if (fd < 0)
            continue;
        uint32_t e = st->events[i].events;
        unsigned events = 0;
        if (e & EPOLLIN)
            events |= SWOOP_READABLE;
        if (e & EPOLLOUT)
            events |= SWOOP_WRITABLE;
        if (e & (EPOLLHUP | EPOLLRDHUP))
            events |= SWOOP_HANGUP;
        if (e & EPOLLERR)
            events |= SWOOP_IOERROR;
        swoop__loop_dispatch_io(loop, fd, events);
        st = loop->backend_data;
    }
    st->batch_len = 0;
    /* A full batch means more may be waiting: take more next time. */
    if (n == st->cap && st->cap < EPOLL_BATCH_MAX) {
        st->cap *= 2;
        st->events = swoop_realloc(st->events, sizeof(*st->events) * (size_t)st->cap);
    }
    return n;
}

static void epoll_invalidate(swoop_loop_t *loop, int fd)
{
    epoll_state_t *st = loop->backend_data;
    for (int i = st->batch_pos + 1; i < st->batch_len; i++) {
        if (st->events[i].data.fd == fd)
            st->events[i].data.fd = -1;
    }
}

const swoop_backend_t swoop__backend_epoll = {
    .name = "epoll",
    .init = epoll_init,
    .free = epoll_free,
    .set = epoll_set,
    .poll = epoll_poll,
    .invalidate = epoll_invalidate,
};
