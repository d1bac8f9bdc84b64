/*
 * The session table: one shared record per connection (slot = fd, or the
 * BASE range's base + fd), published with a connection id that is never
 * reused, so any process can look a connection up, check it is still the
 * same one, and charge its output budget.
 */
#include <swoop/server.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/ratelimit.h"
#include "net/socket.h"
#include "server/internal.h"

/* ---- sessions ---- */

swoop_session_t *swoop__session_at(swoop_server_t *srv, uint32_t slot)
{
    size_t n = srv->sessions_size / sizeof(swoop_session_t);
    return slot < n ? &srv->sessions[slot] : NULL;
}

swoop_conn_id_t swoop__session_admit(swoop_server_t *srv, swoop_port_t *p, int fd,
                                     const swoop_addr_t *addr, uint32_t slot_base, int reactor_id)
{
    swoop_srv_shared_t *gs = srv->gs;
    uint64_t now = swoop__now_ms();
    if (atomic_load(&gs->connection_num) >= srv->settings.max_conn) {
        swoop__log_limited(
            SWOOP_LOG_WARNING, 0,
            "max_conn (%d) reached: closing new connections (fd %d) until some close",
            srv->settings.max_conn, fd);
        close(fd);
        return 0;
    }
    if ((uint32_t)fd >= srv->fd_limit) {
        swoop__log_limited(SWOOP_LOG_WARNING, 0,
                           "accepted fd %d is beyond the session table (%u): closed", fd,
                           srv->fd_limit);
        close(fd);
        return 0;
    }
    if (p->eff.open_tcp_nodelay && (p->type == SWOOP_SOCK_TCP || p->type == SWOOP_SOCK_TCP6))
        swoop__sock_nodelay(fd, 1);
    uint32_t slot = slot_base + (uint32_t)fd;
    uint64_t seq = atomic_fetch_add(&gs->conn_seq, 1) + 1;
    swoop_conn_id_t id = (seq << SWOOP_SLOT_BITS) | slot;
    swoop_session_t *s = &srv->sessions[slot];
    /*
     * Pairs with the release that freed the slot (conn_free): what its last
     * owner read of the record (a reactor thread's access log line) happened
     * before these writes. The fd's close and reuse order it in the kernel,
     * where the thread sanitizer cannot see.
     */
    (void)atomic_load_explicit(&s->id, memory_order_acquire);
    atomic_store(&s->closed, 0);
    s->fd = fd;
    s->reactor_id = (int16_t)reactor_id;
    s->port_index = (uint16_t)p->index;
    atomic_store(&s->uid, 0);
    atomic_store(&s->out_queued, 0);
    s->connect_ms = now;
    atomic_store(&s->last_recv_ms, now);
    s->peer = *addr;
    /* Published last: a worker that finds the id finds a complete session. */
    atomic_store_explicit(&s->id, id, memory_order_release);
    atomic_fetch_add(&gs->connection_num, 1);
    atomic_fetch_add(&gs->accept_count, 1);
    return id;
}

swoop_session_t *swoop__session_get(swoop_server_t *srv, swoop_conn_id_t id)
{
    if (srv->sessions == NULL || id == 0)
        return NULL;
    swoop_session_t *s = swoop__session_at(srv, (uint32_t)(id & SWOOP_SLOT_MASK));
    if (s == NULL || atomic_load_explicit(&s->id, memory_order_acquire) != id ||
        atomic_load_explicit(&s->closed, memory_order_relaxed) || id == srv->closing_conn)
        return NULL;
    return s;
}

int swoop_server_conn_peer_subject(swoop_server_t *srv, swoop_conn_id_t conn, char *buf, size_t cap)
{
    if (srv == NULL || buf == NULL || cap == 0)
        return SWOOP_EINVAL;
    buf[0] = '\0';
    swoop_session_t *s = swoop__session_get(srv, conn);
    if (s == NULL)
        return SWOOP_ECLOSED;
    if (srv->tls_subjects == NULL)
        return 0;
    const char *src = srv->tls_subjects + (size_t)(conn & SWOOP_SLOT_MASK) * SWOOP_TLS_SUBJECT_MAX;
    size_t n = strnlen(src, SWOOP_TLS_SUBJECT_MAX - 1);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, src, n);
    buf[n] = '\0';
    /* The slot may have changed hands while it was copied: then it is not this one's. */
    if (atomic_load_explicit(&s->id, memory_order_acquire) != conn) {
        buf[0] = '\0';
        return SWOOP_ECLOSED;
    }
    return (int)n;
}

int swoop_server_exists(swoop_server_t *srv, swoop_conn_id_t conn)
{
    return srv && swoop__session_get(srv, conn) != NULL;
}

int swoop_server_conn_info(swoop_server_t *srv, swoop_conn_id_t conn, swoop_conn_info_t *out)
{
    if (srv == NULL || out == NULL)
        return SWOOP_EINVAL;
    swoop_session_t *s = swoop__session_get(srv, conn);
    if (s == NULL)
        return SWOOP_ECLOSED;
    memset(out, 0, sizeof(*out));
    out->conn_id = conn;
    out->fd = s->fd;
    out->reactor_id = s->reactor_id;
    out->port_index = s->port_index;
    if (s->port_index < srv->nports)
        out->server_port = srv->ports[s->port_index]->port;
    out->peer = s->peer;
    out->connect_time_ms = s->connect_ms;
    out->last_recv_ms = atomic_load(&s->last_recv_ms);
    out->uid = atomic_load(&s->uid);
    /* The record may have been reused meanwhile: check the id again. */
    if (atomic_load(&s->id) != conn)
        return SWOOP_ECLOSED;
    return 0;
}

int swoop__server_writer_gone(void *arg, const swoop_ipc_head_t *h)
{
    swoop_server_t *srv = arg;
    /* DATA and DGRAM come from reactor threads, which live as long as the master. */
    if (h->type == SWOOP_IPC_DATA || h->type == SWOOP_IPC_DGRAM)
        return 0;
    if (srv->gs == NULL || h->worker_id < 0 || h->worker_id >= srv->worker_num)
        return 0;
    /*
     * Msg ids come from one shared counter: an id at or below the counter's
     * value when the slot's current process started was taken by an earlier
     * process of that slot, which is dead.
     */
    uint64_t since = atomic_load(&srv->gs->workers[h->worker_id].start_seq);
    return h->msg_id <= since;
}

int swoop_server_bind_uid(swoop_server_t *srv, swoop_conn_id_t conn, uint64_t uid)
{
    if (srv == NULL || uid == 0)
        return SWOOP_EINVAL;
    swoop_session_t *s = swoop__session_get(srv, conn);
    if (s == NULL)
        return SWOOP_ECLOSED;
    uint64_t zero = 0;
    if (!atomic_compare_exchange_strong(&s->uid, &zero, uid))
        return SWOOP_EEXIST;
    return 0;
}

swoop_port_t *swoop__conn_port(swoop_server_t *srv, swoop_conn_id_t conn)
{
    swoop_session_t *s = swoop__session_get(srv, conn);
    if (s == NULL || s->port_index >= srv->nports)
        return NULL;
    return srv->ports[s->port_index];
}
