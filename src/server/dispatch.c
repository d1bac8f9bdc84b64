/*
 * Which worker gets a connection's packets (dispatch_mode, PROCESS only):
 * 1 round robin, 2 fd modulo (default), 3 the next idle worker, 4 a hash of
 * the peer's IP, 5 the uid bound with swoop_server_bind_uid (fd modulo until
 * one is bound). 2, 4 and 5 are "hash" modes: every packet of a connection
 * goes to one worker, so its on_connect, on_receive and on_close run there
 * in order. In 1 and 3 packets spread out; CONNECT and CLOSE then go to the
 * worker the rule picked at adoption, so on_close may overtake an
 * on_receive still running elsewhere (Swoole disables the events then).
 */
#include <arpa/inet.h>
#include <string.h>

#include "server/internal.h"

static uint32_t hash_bytes(const void *p, size_t n)
{
    /* FNV-1a */
    const unsigned char *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t ip_hash(const swoop_addr_t *a)
{
    if (a->u.sa.sa_family == AF_INET)
        return ntohl(a->u.in.sin_addr.s_addr);
    if (a->u.sa.sa_family == AF_INET6)
        return hash_bytes(&a->u.in6.sin6_addr, sizeof(a->u.in6.sin6_addr));
    return 0;
}

static int idle_worker(swoop_reactor_t *r)
{
    swoop_server_t *srv = r->srv;
    int n = srv->worker_num;
    for (int i = 0; i < n; i++) {
        int w = (int)(r->rr++ % (unsigned)n);
        if (!atomic_load_explicit(&srv->gs->workers[w].busy, memory_order_relaxed))
            return w;
    }
    return (int)(r->rr++ % (unsigned)n);
}

int swoop__dispatch_worker(swoop_reactor_t *r, swoop_conn_t *c)
{
    swoop_server_t *srv = r->srv;
    int n = srv->worker_num;
    switch (srv->settings.dispatch_mode) {
    case 1:
        return (int)(r->rr++ % (unsigned)n);
    case 3:
        return idle_worker(r);
    case 4:
        return c->sess ? (int)(ip_hash(&c->sess->peer) % (uint32_t)n) : c->fd % n;
    case 5: {
        uint64_t uid = c->sess ? atomic_load_explicit(&c->sess->uid, memory_order_relaxed) : 0;
        return uid ? (int)(uid % (uint64_t)n) : c->fd % n;
    }
    default:
        return c->fd % n;
    }
}

/* The worker for CLOSE: the packets' worker in hash modes, else the CONNECT one. */
int swoop__dispatch_close_worker(swoop_reactor_t *r, swoop_conn_t *c)
{
    int mode = r->srv->settings.dispatch_mode;
    if (mode == 1 || mode == 3)
        return c->worker_id;
    return swoop__dispatch_worker(r, c);
}

int swoop__dispatch_dgram_worker(swoop_reactor_t *r, const swoop_addr_t *from)
{
    swoop_server_t *srv = r->srv;
    int n = srv->worker_num;
    switch (srv->settings.dispatch_mode) {
    case 1:
        return (int)(r->rr++ % (unsigned)n);
    case 3:
        return idle_worker(r);
    default:
        /* Same peer, same worker. */
        return (
            int)(hash_bytes(&from->u, from->len < sizeof(from->u) ? from->len : sizeof(from->u)) %
                 (uint32_t)n);
    }
}
