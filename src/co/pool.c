/*
 * A pool of connections to one backend for the coroutines of one thread:
 * what a handler that calls a database or a cache on every request keeps,
 * so that a request costs a write and a read on a warm connection, not a
 * TCP handshake, a close and the backend's accept on top.
 *
 * Idle connections form a ring: get and put work at its tail (the most
 * recently used connection goes out first, so a small hot set stays warm
 * and the rest ages), and the ones at its head that have been idle past
 * idle_timeout_ms are closed when get or put passes by. There is no timer:
 * one would keep swoop_co_run's loop alive for as long as a connection
 * idles.
 *
 * A connection idle for at least check_after_ms is probed before it goes
 * out (recv with MSG_PEEK | MSG_DONTWAIT: EAGAIN means open and quiet; an
 * EOF, an error or unread bytes mean it cannot be reused). A fresher one
 * goes out unprobed, which saves a syscall per get on a busy pool (HikariCP
 * does the same with its half-second bypass window); a backend that closed
 * it in that window shows up as the caller's first read or write failing.
 *
 * At max_open connections, get waits in a queue; put hands a reusable
 * connection straight to the oldest waiter, or, for a closed one, wakes it
 * to connect in the freed slot.
 */
#include <swoop/co.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <swoop/alloc.h>
#include <swoop/error.h>
#include <swoop/log.h>

#include "base/clock.h"
#include "co/internal.h"

#define POOL_HOST_MAX 253

typedef struct idle_conn_s {
    int fd;
    uint64_t since_ms; /* when it was put back */
} idle_conn_t;

typedef struct pool_wait_s {
    swoop_queue_t q;
    swoop_co_t *co;
    int fd; /* handed over by put, or -1: a slot is free, connect */
} pool_wait_t;

struct swoop_co_pool_s {
    swoop_co_pool_options_t opt;
    int port;
    idle_conn_t *ring; /* max_idle entries */
    size_t head, len;
    size_t open; /* idle + out (+ connects under way) */
    swoop_queue_t waiters;
    size_t nwaiting;
    uint64_t connects, reuses, probes_failed;
    char host[POOL_HOST_MAX + 1];
};

int swoop_co_pool_new(swoop_co_pool_t **out, const char *host, int port,
                      const swoop_co_pool_options_t *opt)
{
    if (out == NULL || host == NULL || port <= 0 || port > 65535)
        return SWOOP_EINVAL;
    size_t hlen = strlen(host);
    if (hlen == 0 || hlen > POOL_HOST_MAX)
        return SWOOP_EINVAL;
    swoop_co_pool_options_t o = {0};
    if (opt != NULL)
        o = *opt;
    if (o.max_idle == 0)
        o.max_idle = SWOOP_CO_POOL_MAX_IDLE;
    if (o.max_open != 0 && o.max_idle > o.max_open)
        o.max_idle = o.max_open;
    if (o.idle_timeout_ms == 0)
        o.idle_timeout_ms = SWOOP_CO_POOL_IDLE_TIMEOUT_MS;
    if (o.check_after_ms < 0)
        o.check_after_ms = 0;
    if (o.max_idle > ((size_t)1 << 24))
        return SWOOP_EINVAL;
    swoop_co_pool_t *p = swoop_calloc(1, sizeof(*p));
    p->opt = o;
    p->port = port;
    memcpy(p->host, host, hlen + 1);
    p->ring = swoop_malloc(sizeof(*p->ring) * o.max_idle);
    swoop_queue_init(&p->waiters);
    *out = p;
    return 0;
}

static idle_conn_t *ring_at(swoop_co_pool_t *p, size_t i)
{
    return &p->ring[(p->head + i) % p->opt.max_idle];
}

static void close_conn(swoop_co_pool_t *p, int fd)
{
    close(fd);
    p->open--;
}

/* Closes the idle connections at the head that have been idle too long. */
static void reap(swoop_co_pool_t *p, uint64_t now)
{
    if (p->opt.idle_timeout_ms < 0)
        return;
    while (p->len > 0) {
        idle_conn_t *ic = ring_at(p, 0);
        if (now - ic->since_ms < (uint64_t)p->opt.idle_timeout_ms)
            return;
        close_conn(p, ic->fd);
        p->head = (p->head + 1) % p->opt.max_idle;
        p->len--;
    }
}

/* Whether an idle connection can go out: open, and nothing unread on it. */
static int still_open(int fd)
{
    char c;
    ssize_t n;
    do
        n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void pool_unlink(swoop_co_t *co)
{
    pool_wait_t *w = co->wait_obj;
    swoop_queue_remove(&w->q);
}

/* A new connection in a slot already counted in p->open. */
static int connect_in_slot(swoop_co_pool_t *p, int64_t timeout_ms)
{
    int fd = swoop_co_connect(p->host, p->port, timeout_ms);
    if (fd < 0) {
        p->open--;
        /* The slot is free again: let a waiter try (it may reach the backend later). */
        if (!swoop_queue_empty(&p->waiters)) {
            swoop_queue_t *x = swoop_queue_head(&p->waiters);
            swoop_queue_remove(x);
            pool_wait_t *w = swoop_queue_data(x, pool_wait_t, q);
            p->nwaiting--;
            w->fd = -1;
            p->open++;
            swoop__co_wake(w->co, 0);
        }
        return fd;
    }
    p->connects++;
    return fd;
}

int swoop_co_pool_get(swoop_co_pool_t *p, int64_t timeout_ms)
{
    if (p == NULL)
        return SWOOP_EINVAL;
    if (swoop__co_current() == NULL)
        return SWOOP_ESTATE;
    uint64_t now = swoop__clock_ms();
    reap(p, now);
    while (p->len > 0) {
        idle_conn_t *ic = ring_at(p, p->len - 1);
        p->len--;
        int fd = ic->fd;
        if (now - ic->since_ms >= (uint64_t)p->opt.check_after_ms && !still_open(fd)) {
            p->probes_failed++;
            close_conn(p, fd);
            continue;
        }
        p->reuses++;
        return fd;
    }
    if (p->opt.max_open == 0 || p->open < p->opt.max_open) {
        p->open++;
        return connect_in_slot(p, timeout_ms);
    }
    if (timeout_ms == 0)
        return SWOOP_ETIMEDOUT;
    pool_wait_t w = {.co = swoop__co_current(), .fd = -1};
    swoop_queue_insert_tail(&p->waiters, &w.q);
    p->nwaiting++;
    w.co->wait_obj = &w;
    int rc = swoop__co_wait(timeout_ms, pool_unlink);
    if (rc < 0) {
        p->nwaiting--; /* unlinked by the timeout or cancel */
        return rc;
    }
    if (w.fd >= 0) {
        p->reuses++;
        return w.fd;
    }
    /* Woken for a free slot (put closed one): it was counted for us. */
    return connect_in_slot(p, timeout_ms);
}

int swoop_co_pool_put(swoop_co_pool_t *p, int fd, int reusable)
{
    if (p == NULL || fd < 0)
        return SWOOP_EINVAL;
    if (p->open == 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_co_pool_put: fd %d is not out of this pool", fd);
        return SWOOP_EINVAL;
    }
    if (!swoop_queue_empty(&p->waiters)) {
        swoop_queue_t *x = swoop_queue_head(&p->waiters);
        swoop_queue_remove(x);
        pool_wait_t *w = swoop_queue_data(x, pool_wait_t, q);
        p->nwaiting--;
        if (reusable) {
            w->fd = fd;
        } else {
            close(fd); /* the slot passes to the waiter, which connects */
            w->fd = -1;
        }
        swoop__co_wake(w->co, 0);
        return 0;
    }
    uint64_t now = swoop__clock_ms();
    reap(p, now);
    if (!reusable) {
        close_conn(p, fd);
        return 0;
    }
    if (p->len == p->opt.max_idle) {
        /* Full: the connection idle the longest makes room. */
        close_conn(p, ring_at(p, 0)->fd);
        p->head = (p->head + 1) % p->opt.max_idle;
        p->len--;
    }
    idle_conn_t *ic = ring_at(p, p->len);
    ic->fd = fd;
    ic->since_ms = now;
    p->len++;
    return 0;
}

void swoop_co_pool_stats(const swoop_co_pool_t *p, swoop_co_pool_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (p == NULL)
        return;
    out->open = p->open;
    out->idle = p->len;
    out->waiting = p->nwaiting;
    out->connects = p->connects;
    out->reuses = p->reuses;
    out->probes_failed = p->probes_failed;
}

int swoop_co_pool_free(swoop_co_pool_t *p)
{
    if (p == NULL)
        return 0;
    if (p->open > p->len || p->nwaiting > 0)
        return SWOOP_EBUSY;
    while (p->len > 0) {
        close(ring_at(p, 0)->fd);
        p->head = (p->head + 1) % p->opt.max_idle;
        p->len--;
    }
    swoop_free(p->ring);
    swoop_free(p);
    return 0;
}
