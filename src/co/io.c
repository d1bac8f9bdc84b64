/*
 * Waiting on descriptors: wait_fd parks the coroutine on an fd watcher of
 * the default loop (the watcher lives on the coroutine's stack); read,
 * write and connect try the syscall first and wait only on EAGAIN /
 * EINPROGRESS, with one deadline for the whole call.
 *
 * Name resolution runs getaddrinfo on a detached thread per lookup, which
 * hands the answer back with swoop_loop_post. We chose that over glibc's
 * getaddrinfo_a: getaddrinfo_a is a thread pool inside glibc plus a
 * notification thread or signal per completion, and it cannot abandon a
 * lookup in flight either, so a timed-out caller would still have to
 * share ownership of the request with it. With our own thread the request
 * has exactly two owners (the thread until it posts, the loop after) and a
 * timed-out or cancelled coroutine just leaves the answer to be freed.
 */
#include <swoop/co.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <swoop/alloc.h>
#include <swoop/error.h>
#include <swoop/log.h>

#include "base/clock.h"
#include "co/internal.h"
#include "event/internal.h"

typedef struct fd_wait_s {
    swoop_io_t io;
    swoop_co_t *co;
} fd_wait_t;

static void on_fd_ready(swoop_io_t *io, unsigned events)
{
    fd_wait_t *w = io->data;
    swoop_io_stop(io);
    swoop__co_wake(w->co, (int)events);
}

static void fd_unlink(swoop_co_t *co)
{
    fd_wait_t *w = co->wait_obj;
    swoop_io_stop(&w->io);
}

int swoop_co_wait_fd(int fd, unsigned events, int64_t timeout_ms)
{
    events &= SWOOP_READABLE | SWOOP_WRITABLE;
    if (fd < 0 || events == 0)
        return SWOOP_EINVAL;
    swoop_co_t *co = swoop__co_current();
    if (co == NULL)
        return SWOOP_ESTATE;
    if (timeout_ms == 0) {
        /* No waiting: answer from poll(2) right now. */
        struct pollfd p = {.fd = fd, .events = 0};
        if (events & SWOOP_READABLE)
            p.events |= POLLIN;
        if (events & SWOOP_WRITABLE)
            p.events |= POLLOUT;
        int n = poll(&p, 1, 0);
        if (n < 0)
            return -errno;
        unsigned got = 0;
        if (p.revents & (POLLIN | POLLHUP | POLLERR))
            got |= events & SWOOP_READABLE;
        if (p.revents & (POLLOUT | POLLHUP | POLLERR))
            got |= events & SWOOP_WRITABLE;
        if (p.revents & POLLHUP)
            got |= SWOOP_HANGUP;
        if (p.revents & POLLERR)
            got |= SWOOP_IOERROR;
        return got ? (int)got : SWOOP_ETIMEDOUT;
    }
    swoop_loop_t *loop = swoop_loop_default();
    if (loop == NULL)
        return SWOOP_ENOMEM;
    fd_wait_t w;
    memset(&w, 0, sizeof(w));
    w.co = co;
    int rc = swoop_io_init(loop, &w.io, fd, on_fd_ready);
    if (rc < 0)
        return rc;
    w.io.data = &w;
    rc = swoop__io_arm_once(&w.io, events); /* one event ends the wait */
    if (rc < 0)
        return rc;
    co->wait_obj = &w;
    return swoop__co_wait(timeout_ms, fd_unlink);
}

/* Milliseconds left before `deadline` (0 = none left), -1 without a timeout. */
static int64_t time_left(int64_t timeout_ms, uint64_t deadline)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t now = swoop__clock_ms();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

static uint64_t deadline_of(int64_t timeout_ms)
{
    return timeout_ms < 0 ? 0 : swoop__clock_ms() + (uint64_t)timeout_ms;
}

ssize_t swoop_co_read(int fd, void *buf, size_t len, int64_t timeout_ms)
{
    if (fd < 0 || (buf == NULL && len))
        return SWOOP_EINVAL;
    uint64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n < 0 && errno == ENOTSOCK)
            n = read(fd, buf, len);
        if (n >= 0)
            return n;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err != EAGAIN && err != EWOULDBLOCK)
            return -err;
        int64_t left = time_left(timeout_ms, deadline);
        if (left == 0)
            return SWOOP_ETIMEDOUT;
        int rc = swoop_co_wait_fd(fd, SWOOP_READABLE, left);
        if (rc < 0)
            return rc;
    }
}

ssize_t swoop_co_write(int fd, const void *buf, size_t len, int64_t timeout_ms)
{
    if (fd < 0 || (buf == NULL && len))
        return SWOOP_EINVAL;
    uint64_t deadline = deadline_of(timeout_ms);
    size_t done = 0;
    while (done < len) {
        const char *p = (const char *)buf + done;
        ssize_t n = send(fd, p, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, p, len - done);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err != EAGAIN && err != EWOULDBLOCK)
            return -err;
        int64_t left = time_left(timeout_ms, deadline);
        if (left == 0)
            return SWOOP_ETIMEDOUT;
        int rc = swoop_co_wait_fd(fd, SWOOP_WRITABLE, left);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)len;
}

/* One connect attempt to one address, waiting for the handshake. */
static int connect_addr(const struct sockaddr *sa, socklen_t salen, int64_t timeout_ms,
                        uint64_t deadline)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, sa, salen) == 0)
        return fd;
    int err = errno;
    if (err != EINPROGRESS && err != EINTR) {
        close(fd);
        return -err;
    }
    /*
     * Over loopback (and to a listener on this host) the kernel has
     * finished the handshake before connect returns EINPROGRESS: one
     * poll(2) finds that out, where waiting would cost a watcher added and
     * removed (two epoll_ctl) and a pass of the loop. Elsewhere it costs one
     * cheap syscall next to a network round trip.
     */
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    int rc = 0;
    if (poll(&pf, 1, 0) != 1) {
        int64_t left = time_left(timeout_ms, deadline);
        rc = left == 0 ? SWOOP_ETIMEDOUT : swoop_co_wait_fd(fd, SWOOP_WRITABLE, left);
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    int soerr = 0;
    socklen_t l = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) != 0)
        soerr = errno;
    if (soerr) {
        close(fd);
        return -soerr;
    }
    return fd;
}

/* A lookup shared by its thread and the loop (see the file comment). */
typedef struct resolve_s {
    swoop_loop_t *loop;
    swoop_co_t *waiter; /* NULL once the coroutine gave up; loop thread only */
    struct addrinfo *res;
    int gai_rc;
    int gai_errno;
    char port[8];
    char host[];
} resolve_t;

static void on_resolved(swoop_loop_t *loop, void *arg)
{
    resolve_t *r = arg;
    if (r->waiter) {
        swoop__co_wake(r->waiter, 0);
        return;
    }
    if (r->res)
        freeaddrinfo(r->res);
    swoop_free(r);
}

static void *resolve_thread(void *arg)
{
    resolve_t *r = arg;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    r->gai_rc = getaddrinfo(r->host, r->port, &hints, &r->res);
    r->gai_errno = errno;
    if (swoop_loop_post(r->loop, on_resolved, r) != 0) {
        /* The loop can no longer hear us; nobody will come for r. */
        swoop_log(SWOOP_LOG_ERROR, 0, "swoop_co_connect: cannot post the answer for %s", r->host);
    }
    return NULL;
}

static void resolve_unlink(swoop_co_t *co)
{
    resolve_t *r = co->wait_obj;
    r->waiter = NULL;
}

static int gai_to_err(int rc, int saved_errno)
{
    switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_SERVICE:
        return SWOOP_ENOENT;
    case EAI_AGAIN:
        return SWOOP_EAGAIN;
    case EAI_MEMORY:
        return SWOOP_ENOMEM;
    case EAI_SYSTEM:
        return saved_errno ? -saved_errno : SWOOP_EIO;
    default:
        return SWOOP_ENOENT;
    }
}

int swoop_co_connect(const char *host, int port, int64_t timeout_ms)
{
    if (host == NULL || port <= 0 || port > 65535)
        return SWOOP_EINVAL;
    swoop_co_t *co = swoop__co_current();
    if (co == NULL)
        return SWOOP_ESTATE;
    uint64_t deadline = deadline_of(timeout_ms);

    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof(a4));
    memset(&a6, 0, sizeof(a6));
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)port);
        return connect_addr((struct sockaddr *)&a4, sizeof(a4), timeout_ms, deadline);
    }
    if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)port);
        return connect_addr((struct sockaddr *)&a6, sizeof(a6), timeout_ms, deadline);
    }
    if (timeout_ms == 0)
        return SWOOP_ETIMEDOUT;

    size_t hlen = strlen(host);
    if (hlen == 0 || hlen > 253)
        return SWOOP_EINVAL;
    swoop_loop_t *loop = swoop_loop_default();
    if (loop == NULL)
        return SWOOP_ENOMEM;
    resolve_t *r = swoop_calloc(1, sizeof(*r) + hlen + 1);
    memcpy(r->host, host, hlen + 1);
    snprintf(r->port, sizeof(r->port), "%d", port);
    r->loop = loop;
    r->waiter = co;

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    int err = pthread_create(&tid, &attr, resolve_thread, r);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        swoop_log(SWOOP_LOG_ERROR, err, "swoop_co_connect: cannot start a resolver thread");
        swoop_free(r);
        return -err;
    }
    /* The timer also keeps the loop from finding itself idle while the
     * lookup runs (the post only counts once it is made): without a
     * timeout we still arm one, ~24 days. */
    co->wait_obj = r;
    int rc = swoop__co_wait(timeout_ms > 0 ? timeout_ms : INT32_MAX, resolve_unlink);
    if (rc < 0)
        return rc; /* r belongs to on_resolved now */
    int res_err = 0;
    int fd = SWOOP_ENOENT;
    if (r->gai_rc != 0) {
        res_err = gai_to_err(r->gai_rc, r->gai_errno);
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_co_connect: cannot resolve %s: %s", r->host,
                  gai_strerror(r->gai_rc));
        fd = res_err;
    } else {
        for (struct addrinfo *ai = r->res; ai; ai = ai->ai_next) {
            fd = connect_addr(ai->ai_addr, ai->ai_addrlen, timeout_ms, deadline);
            if (fd >= 0 || fd == SWOOP_ETIMEDOUT || fd == SWOOP_ECANCELED)
                break;
        }
    }
    if (r->res)
        freeaddrinfo(r->res);
    swoop_free(r);
    return fd;
}
