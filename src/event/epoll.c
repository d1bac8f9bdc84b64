/*
 * The epoll backend. Level-triggered, one epoll_event per fd carrying the fd
 * itself: the loop looks the watcher up in its fd table, so an event for a
 * watcher stopped earlier in the same batch finds nothing, and invalidate()
 * blanks the batch's later entries for an fd that was stopped (it may be
 * closed and reused by a new watcher before we get there; libuv does the
 * same in uv__platform_invalidate_fd).
 *
 * One-shot arms (swoop__io_arm_once: the coroutines' fd waits) register
 * with EPOLLONESHOT and stay registered, disarmed, after their event; the
 * next arm of the same fd re-arms them with one EPOLL_CTL_MOD. `kept`
 * remembers which fd numbers have such a registration. It can be stale (the
 * fd was closed, which removes the registration, and the number reused):
 * the MOD then fails with ENOENT and an ADD follows, so a wrong guess
 * costs a syscall, never an event.
 *
 * Timers wake the loop through a timerfd armed at the earliest timer's
 * absolute deadline, with nanosecond precision (a millisecond epoll timeout
 * either wakes early and spins, or late and loses beats of a 1 ms tick). It
 * is re-armed only when that deadline changes, so the common wait is
 * epoll_wait(-1): a server whose only timer is a 1 s housekeeping tick pays
 * no timer setup per wake-up, where a finite epoll timeout arms a kernel
 * timer on every sleep.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "event/internal.h"

#define EPOLL_BATCH_MIN 64
#define EPOLL_BATCH_MAX 4096

typedef struct epoll_data_s {
    int epfd;
    int tfd;            /* the timer wake-up */
    uint64_t tfd_armed; /* deadline the timerfd is armed for, 0 if disarmed */
    struct epoll_event *events;
    int cap;
    int batch_len; /* events in the batch being dispatched, 0 outside dispatch */
    int batch_pos;
    unsigned char *kept; /* [fd]: a disarmed one-shot registration is (probably) there */
    int nkept;
} epoll_state_t;

static int epoll_init(swoop_loop_t *loop)
{
    epoll_state_t *st = swoop_calloc(1, sizeof(*st));
    st->tfd = -1;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "epoll_create1() failed");
        swoop_free(st);
        return -err;
    }
    st->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = st->tfd};
    if (st->tfd < 0 || epoll_ctl(st->epfd, EPOLL_CTL_ADD, st->tfd, &ev) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "timerfd for the loop's timers failed");
        if (st->tfd >= 0)
            close(st->tfd);
        close(st->epfd);
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
    close(st->tfd);
    close(st->epfd);
    swoop_free(st->events);
    swoop_free(st->kept);
    swoop_free(st);
    loop->backend_data = NULL;
}

static void set_kept(epoll_state_t *st, int fd, int kept)
{
    if (fd >= st->nkept) {
        if (!kept)
            return;
        int n = st->nkept ? st->nkept : 64;
        while (n <= fd)
            n *= 2;
        st->kept = swoop_realloc(st->kept, (size_t)n);
        memset(st->kept + st->nkept, 0, (size_t)(n - st->nkept));
        st->nkept = n;
    }
    st->kept[fd] = (unsigned char)kept;
}

static int epoll_set(swoop_loop_t *loop, int fd, unsigned old, unsigned events)
{
    epoll_state_t *st = loop->backend_data;
    set_kept(st, fd, 0); /* whatever was there, this call replaces or removes it */
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

static int epoll_arm(swoop_loop_t *loop, int fd, unsigned events)
{
    epoll_state_t *st = loop->backend_data;
    struct epoll_event ev = {0};
    ev.data.fd = fd;
    ev.events = EPOLLONESHOT;
    if (events & SWOOP_READABLE)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (events & SWOOP_WRITABLE)
        ev.events |= EPOLLOUT;
    int op = fd < st->nkept && st->kept[fd] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int rc = epoll_ctl(st->epfd, op, fd, &ev);
    if (rc < 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
        rc = epoll_ctl(st->epfd, EPOLL_CTL_ADD, fd, &ev); /* closed since: a new file */
    else if (rc < 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
        rc = epoll_ctl(st->epfd, EPOLL_CTL_MOD, fd, &ev); /* registered by a dup'd fd */
    if (rc == 0) {
        set_kept(st, fd, 1);
        return 0;
    }
    int err = errno;
    set_kept(st, fd, 0);
    if (err != EPERM)
        swoop_log(SWOOP_LOG_WARNING, err, "epoll_ctl(arm one-shot, fd=%d) failed", fd);
    return -err;
}

/* Points the timerfd at `deadline` (absolute, 0 = disarm) unless it already is. */
static int arm_timer(epoll_state_t *st, uint64_t deadline)
{
    if (deadline == st->tfd_armed)
        return 0;
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(deadline / SWOOP_NS_PER_SEC);
    its.it_value.tv_nsec = (long)(deadline % SWOOP_NS_PER_SEC);
    if (timerfd_settime(st->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "timerfd_settime() failed");
        return -err;
    }
    st->tfd_armed = deadline;
    return 0;
}

static int epoll_poll(swoop_loop_t *loop, int block, uint64_t deadline_ns)
{
    epoll_state_t *st = loop->backend_data;
    int timeout_ms = 0;
    if (block) {
        timeout_ms = -1;
        if (deadline_ns != 0 && deadline_ns <= swoop__clock_ns()) {
            timeout_ms = 0; /* already due */
        } else {
            /* A timerfd armed for a deadline that is gone would only cause a spurious wake-up. */
            int rc = arm_timer(st, deadline_ns);
            if (rc < 0)
                return rc;
        }
    }
    int n = epoll_wait(st->epfd, st->events, st->cap, timeout_ms);
    if (n < 0) {
        int err = errno;
        if (err == EINTR)
            return 0;
        swoop_log(SWOOP_LOG_ERROR, err, "epoll_wait() failed");
        return -err;
    }
    /*
     * The callbacks below see the time they run at, not the time before the
     * wait (which may be a second or more ago): a connection's last-read
     * stamp must not make a client that just spoke look idle.
     */
    if (n > 0)
        loop->now_ns = swoop__clock_ns();
    st->batch_len = n;
    for (int i = 0; i < n; i++) {
        st->batch_pos = i;
        int fd = st->events[i].data.fd;
        if (fd < 0)
            continue;
        if (fd == st->tfd) {
            /* Expired: it is disarmed now; the loop runs the timers after the poll. */
            uint64_t expirations;
            ssize_t r = read(st->tfd, &expirations, sizeof(expirations));
            (void)r;
            st->tfd_armed = 0;
            continue;
        }
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
    .arm = epoll_arm,
    .poll = epoll_poll,
    .invalidate = epoll_invalidate,
};
