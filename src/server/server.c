/*
 * The server's public API (include/swoop/server.h): creation, ports,
 * callbacks, the shared memory every server process sees (stats in a memfd
 * the CLI can map from outside, the session table, the manager's slot
 * stats), the channels made before fork, and start, which hands over to
 * the master (PROCESS, master.c) or runs the manager in the calling process
 * (BASE, worker.c). Settings by name are in settings.c, the session table's
 * operations in session.c, stats in stats.c.
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
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/ratelimit.h"
#include "net/socket.h"
#include "server/internal.h"

#define PIPE_BUFSIZE (8 * 1024 * 1024)

uint64_t swoop__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void port_settings_inherit(swoop_port_settings_t *p)
{
    p->open_eof_check = -1;
    p->open_eof_split = -1;
    p->package_eof[0] = '\0';
    p->open_length_check = -1;
    p->package_length_type = 0;
    p->package_length_offset = -1;
    p->package_body_offset = -1;
    p->package_max_length = -1;
    p->heartbeat_idle_time = -1;
    p->open_tcp_nodelay = -1;
    p->backlog = -1;
    p->open_http_protocol = -1;
    p->http_max_header_size = -1;
    p->http_keepalive_timeout = -1;
    p->http_header_timeout = -1;
    p->http_body_timeout = -1;
    p->http_max_requests_per_conn = -1;
    p->enable_static_handler = -1;
    p->document_root[0] = '\0';
    p->http_index_files[0] = '\0';
    p->http_autoindex = -1;
    p->static_handler_locations[0] = '\0';
    p->static_follow_symlinks = -1;
    p->http_access_log[0] = '\0';
    p->http_access_log_format = -1;
    p->http_body_memory_max = -1;
    p->upload_tmp_dir[0] = '\0';
    p->upload_max_filesize = -1;
    p->http_compression = -1;
    p->http_compression_level = -1;
    p->http_compression_min_length = -1;
    p->http_compression_types[0] = '\0';
    p->open_websocket_protocol = -1;
    p->websocket_max_message_size = -1;
    p->websocket_ping_interval = -1;
    p->open_websocket_close_frame = -1;
    p->open_websocket_ping_frame = -1;
    p->open_websocket_pong_frame = -1;
    p->websocket_subprotocol[0] = '\0';
    p->websocket_output_high_water = -1;
    p->websocket_output_policy = -1;
    p->websocket_compression = -1;
    p->websocket_compression_min_length = -1;
    p->websocket_compression_context_takeover = -1;
    p->http_server_name[0] = '\0';
}

int swoop_server_new(swoop_server_t **out, swoop_mode_t mode)
{
    if (out == NULL || (mode != SWOOP_MODE_BASE && mode != SWOOP_MODE_PROCESS)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_server_new: bad mode %d", (int)mode);
        return SWOOP_EINVAL;
    }
    swoop_server_t *srv = swoop_calloc(1, sizeof(*srv));
    srv->mode = mode;
    srv->worker_id = -1;
    srv->gs_fd = -1;
    srv->admin_fd = -1;
    srv->range = -1;
    srv->cur_port = -1;
    swoop__tls_conf_defaults(&srv->tls);
    swoop_server_settings_t *s = &srv->settings;
    int cpus = cpu_count();
    s->reactor_num = cpus < 8 ? cpus : 8;
    s->worker_num = cpus;
    s->max_request_grace = -1;
    s->dispatch_mode = 2;
    struct rlimit rl;
    int64_t lim = 100000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (int64_t)rl.rlim_cur < lim)
        lim = (int64_t)rl.rlim_cur;
    s->max_conn = (int)lim;
    s->buffer_output_size = 8 * 1024 * 1024;
    s->socket_buffer_size = 8 * 1024 * 1024;
    s->reload_async = 1;
    s->max_wait_time = 3;
    s->log_level = -1;
    s->ipc_batch = 1;
    s->ipc_ring = 1;
    s->enable_io_uring = 1;
    s->enable_metrics = 1;
    s->coroutine_stack_size = 256 * 1024;
    s->pipe_buffer_size = 32 * 1024 * 1024;
    s->lingering_time = 2000;
    s->lingering_timeout = 500;
    s->task_ipc_mode = 1;
    s->task_spill_size = 16 * 1024 * 1024;
    /*
     * Pending task payloads live in task_tmpdir (RAM on /dev/shm), a queue or
     * the posting worker's memory: a burst must not take the machine's RAM.
     */
    int64_t ram = (int64_t)sysconf(_SC_PHYS_PAGES) * (int64_t)sysconf(_SC_PAGESIZE);
    s->task_max_pending_bytes = ram > 0 && ram / 4 < (1ll << 30) ? ram / 4 : 1ll << 30;
    /*
     * Task payloads above 8 KiB go through a temporary file: on tmpfs that is
     * memory traffic, on a disk filesystem it is inode and journal work (about
     * 8x fewer 16 KiB tasks per second measured on ext4). /dev/shm when usable.
     */
    strcpy(s->task_tmpdir, access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp");
    swoop_port_settings_t *p = &s->protocol;
    p->open_eof_check = 0;
    p->open_eof_split = 0;
    strcpy(p->package_eof, "\r\n\r\n");
    p->open_length_check = 0;
    p->package_length_type = 'N';
    p->package_length_offset = 0;
    p->package_body_offset = 4;
    p->package_max_length = 2 * 1024 * 1024;
    p->heartbeat_idle_time = 0;
    p->open_tcp_nodelay = 1;
    p->backlog = 512;
    p->open_http_protocol = 0;
    p->http_max_header_size = 16384;
    p->http_keepalive_timeout = 60;
    p->http_header_timeout = 30;
    p->http_body_timeout = 60;
    p->http_max_requests_per_conn = 0;
    p->enable_static_handler = 0;
    strcpy(p->http_index_files, "index.html");
    p->http_autoindex = 0;
    p->static_follow_symlinks = 0;
    p->http_body_memory_max = 1024 * 1024;
    strcpy(p->upload_tmp_dir, "/tmp");
    p->upload_max_filesize = 2 * 1024 * 1024; /* PHP's default */
    /* Swoole's defaults (http_compression on, level 1, 20 bytes); nginx's level and length. */
    p->http_compression = 1;
    p->http_compression_level = 1;
    p->http_compression_min_length = 20;
    p->open_websocket_protocol = 0;
    p->websocket_max_message_size = 2 * 1024 * 1024;
    p->websocket_ping_interval = 0;
    p->open_websocket_close_frame = 0;
    p->open_websocket_ping_frame = 0;
    p->open_websocket_pong_frame = 0;
    p->websocket_output_high_water = 4 * 1024 * 1024;
    p->http_access_log_format = SWOOP_ACCESS_LOG_COMBINED;
    p->websocket_output_policy = 0;
    /* Swoole's default (off); below 64 bytes deflate rarely pays for its block overhead. */
    p->websocket_compression = 0;
    p->websocket_compression_min_length = 64;
    p->websocket_compression_context_takeover = 1;
    strcpy(p->http_compression_types,
           "text/html,text/plain,text/css,text/javascript,text/xml,application/javascript,"
           "application/json,application/xml,image/svg+xml");
    strcpy(p->http_server_name, "swoop");
    *out = srv;
    return 0;
}

int swoop_server_free(swoop_server_t *srv)
{
    if (srv == NULL)
        return 0;
    if (srv->running)
        return SWOOP_EBUSY;
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (p->fd >= 0)
            close(p->fd);
        if (p->type == SWOOP_SOCK_UNIX_STREAM || p->type == SWOOP_SOCK_UNIX_DGRAM) {
            /* Only the process that made the socket file removes it. */
            if (srv->worker_id < 0)
                unlink(p->host);
        }
        swoop__tls_ctx_release(p->tls_ctx);
        pthread_mutex_destroy(&p->tls_lock);
        swoop_free(p);
    }
    swoop_free(srv->ports);
    for (int k = 0; k < SWOOP_PROTO_MAX; k++)
        swoop_free(srv->proto_data[k]);
    swoop_free(srv);
    return 0;
}

int swoop_server_listen(swoop_server_t *srv, const char *host, int port, swoop_sock_type_t type,
                        swoop_port_t **out)
{
    if (srv == NULL || host == NULL)
        return SWOOP_EINVAL;
    if (srv->started)
        return SWOOP_ESTATE;
    if (strlen(host) >= sizeof(((swoop_port_t *)0)->host)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_server_listen: host \"%s\" too long", host);
        return SWOOP_EINVAL;
    }
    int ssl = ((int)type & SWOOP_SSL) != 0;
    type = (swoop_sock_type_t)((int)type & ~SWOOP_SSL);
    if (ssl && type != SWOOP_SOCK_TCP && type != SWOOP_SOCK_TCP6 &&
        type != SWOOP_SOCK_UNIX_STREAM) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "swoop_server_listen: SWOOP_SSL is for stream ports (TCP, TCP6, Unix stream), "
                  "not type %d",
                  (int)type);
        return SWOOP_EINVAL;
    }
    /* SO_REUSEPORT from the start, so BASE workers can join the same port later. */
    int fd = swoop__sock_listen(type, host, port, srv->settings.protocol.backlog,
                                srv->settings.enable_reuse_port);
    if (fd < 0)
        return fd;
    swoop_port_t *p = swoop_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->tls_lock, NULL);
    p->srv = srv;
    p->index = srv->nports;
    p->type = type;
    p->fd = fd;
    p->access_fd = -1;
    p->dgram = swoop_sock_type_is_dgram(type);
    p->ssl = ssl;
    swoop__tls_conf_inherit(&p->tls);
    p->listen_backlog = srv->settings.protocol.backlog;
    snprintf(p->host, sizeof(p->host), "%s", host);
    if (type == SWOOP_SOCK_UNIX_STREAM || type == SWOOP_SOCK_UNIX_DGRAM) {
        p->port = 0;
    } else {
        int bound = swoop__sock_local_port(fd);
        p->port = bound > 0 ? bound : port;
    }
    port_settings_inherit(&p->settings);
    srv->ports = swoop_realloc(srv->ports, sizeof(*srv->ports) * (size_t)(srv->nports + 1));
    srv->ports[srv->nports++] = p;
    swoop_log(SWOOP_LOG_INFO, 0, "listening on %s:%d (type %d%s, fd %d)", host, p->port, (int)type,
              ssl ? ", TLS" : "", fd);
    if (out)
        *out = p;
    return 0;
}

int swoop_port_number(const swoop_port_t *port)
{
    return port ? port->port : 0;
}

int swoop_port_fd(const swoop_port_t *port)
{
    return port ? port->fd : -1;
}

swoop_port_settings_t *swoop_port_settings(swoop_port_t *port)
{
    return port ? &port->settings : NULL;
}

swoop_server_settings_t *swoop_server_settings(swoop_server_t *srv)
{
    return srv ? &srv->settings : NULL;
}

int swoop_server_on(swoop_server_t *srv, const swoop_server_events_t *events)
{
    if (srv == NULL || events == NULL)
        return SWOOP_EINVAL;
    if (srv->started)
        return SWOOP_ESTATE;
    srv->events = *events;
    return 0;
}

void swoop_server_set_data(swoop_server_t *srv, void *data)
{
    if (srv)
        srv->data = data;
}

void *swoop_server_data(const swoop_server_t *srv)
{
    return srv ? srv->data : NULL;
}

int swoop_server_worker_id(const swoop_server_t *srv)
{
    return srv ? srv->worker_id : -1;
}

pid_t swoop_server_master_pid(const swoop_server_t *srv)
{
    return srv && srv->gs ? (pid_t)atomic_load(&srv->gs->master_pid) : 0;
}

pid_t swoop_server_manager_pid(const swoop_server_t *srv)
{
    return srv && srv->gs ? (pid_t)atomic_load(&srv->gs->manager_pid) : 0;
}

/* ---- start ---- */

int swoop__server_set_proto(swoop_server_t *srv, int kind, const swoop_proto_t *proto,
                            void (*fn)(void))
{
    if (srv == NULL || kind < 0 || kind >= SWOOP_PROTO_MAX)
        return SWOOP_EINVAL;
    if (srv->started)
        return SWOOP_ESTATE;
    srv->protos[kind] = proto;
    srv->proto_fn[kind] = fn;
    return 0;
}

/* HTTP ports' access logs, opened once in the process that starts (closed at its end). */
static int open_access_logs(swoop_server_t *srv)
{
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (p->proto == NULL || p->eff.http_access_log[0] == '\0' || p->access_fd >= 0)
            continue;
        p->access_fd =
            open(p->eff.http_access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (p->access_fd < 0) {
            int err = errno;
            swoop_log(SWOOP_LOG_ERROR, err, "port %d (%s:%d): cannot open http_access_log \"%s\"",
                      i, p->host, p->port, p->eff.http_access_log);
            return -err;
        }
    }
    return 0;
}

/*
 * SIGRTMIN (logrotate's postrotate): the log file and the access logs are
 * opened again under their names. Each access log's new file takes the old
 * descriptor's number with dup3(), which swaps it atomically, so a reactor
 * thread writing a line meanwhile writes it whole to one file or the other.
 * Every process does this for itself (the manager passes the signal on).
 */
void swoop__server_reopen_logs(swoop_server_t *srv)
{
    int rc = swoop_log_reopen();
    if (rc < 0)
        swoop_log(SWOOP_LOG_ERROR, rc, "reopening the log file failed");
    for (int i = 0; srv && i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        if (p->access_fd < 0)
            continue;
        int fd = open(p->eff.http_access_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            swoop__log_limited(SWOOP_LOG_ERROR, errno,
                               "port %d: reopening http_access_log \"%s\" failed (the old "
                               "file goes on)",
                               i, p->eff.http_access_log);
            continue;
        }
        if (dup3(fd, p->access_fd, O_CLOEXEC) < 0)
            swoop__log_limited(SWOOP_LOG_ERROR, errno,
                               "port %d: dup3() of the reopened http_access_log failed (the old "
                               "file goes on)",
                               i);
        close(fd);
    }
}

/*
 * A SWOOP_SSL port's TLS context, from its settings over the server's (an
 * HTTP port offers ALPN "http/1.1" unless ssl_alpn says otherwise). Built
 * here, in the master before any fork: a bad file fails the start, and
 * every process shares the context's session ticket keys.
 */
static int port_tls_open(swoop_server_t *srv, swoop_port_t *p)
{
    swoop_tls_conf_t *c = &p->tls;
    swoop__tls_conf_resolve(c, &srv->tls);
    if (c->alpn[0] == '\0' && p->proto != NULL)
        strcpy(c->alpn, "http/1.1");
    char where[200];
    snprintf(where, sizeof(where), "swoop_server_start: port %d (%s:%d): ", p->index, p->host,
             p->port);
    swoop__tls_ctx_release(p->tls_ctx);
    p->tls_ctx = NULL;
    return swoop__tls_ctx_new(&p->tls_ctx, c, where);
}

int swoop_server_reload_certs(swoop_server_t *srv)
{
    if (srv == NULL)
        return SWOOP_EINVAL;
    if (!srv->running || srv->worker_id >= 0)
        return SWOOP_ESTATE;
    int rc = 0, done = 0;
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        swoop_tls_ctx_t *old = p->tls_ctx; /* only this thread writes it */
        if (!p->ssl || old == NULL)
            continue;
        char where[200];
        snprintf(where, sizeof(where), "certificate reload: port %d (%s:%d): ", p->index, p->host,
                 p->port);
        swoop_tls_ctx_t *fresh = NULL;
        int r = swoop__tls_ctx_new(&fresh, &p->tls, where);
        if (r == 0 && swoop__tls_ctx_keep_tickets(fresh, old) < 0)
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "%scould not carry the session ticket keys over: earlier tickets need a "
                      "full handshake",
                      where);
        if (r < 0) {
            swoop_log(SWOOP_LOG_WARNING, 0, "%skeeping the certificate in use", where);
            rc = r;
            continue;
        }
        pthread_mutex_lock(&p->tls_lock);
        p->tls_ctx = fresh;
        pthread_mutex_unlock(&p->tls_lock);
        /* The port's reference goes; the connections made from it keep theirs. */
        char label[160];
        snprintf(label, sizeof(label), "port %d (%.100s:%d)", p->index, p->host, p->port);
        swoop__tls_ctx_retire(old, label);
        done++;
    }
    if (done > 0)
        swoop_log(SWOOP_LOG_NOTICE, 0, "certificate reload: %d TLS port%s reloaded", done,
                  done == 1 ? "" : "s");
    return rc;
}

static int resolve_ports(swoop_server_t *srv)
{
    const swoop_port_settings_t *d = &srv->settings.protocol;
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        swoop_port_settings_t e = p->settings;
        if (e.open_eof_check < 0)
            e.open_eof_check = d->open_eof_check;
        if (e.open_eof_split < 0)
            e.open_eof_split = d->open_eof_split;
        if (e.package_eof[0] == '\0')
            memcpy(e.package_eof, d->package_eof, sizeof(e.package_eof));
        if (e.open_length_check < 0)
            e.open_length_check = d->open_length_check;
        if (e.package_length_type == 0)
            e.package_length_type = d->package_length_type;
        if (e.package_length_offset < 0)
            e.package_length_offset = d->package_length_offset;
        if (e.package_body_offset < 0)
            e.package_body_offset = d->package_body_offset;
        if (e.package_max_length < 0)
            e.package_max_length = d->package_max_length;
        if (e.heartbeat_idle_time < 0)
            e.heartbeat_idle_time = d->heartbeat_idle_time;
        if (e.open_tcp_nodelay < 0)
            e.open_tcp_nodelay = d->open_tcp_nodelay;
        if (e.backlog < 0)
            e.backlog = d->backlog;
        if (e.package_length_offset < 0 || e.package_body_offset < 0) {
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "port %d: package_length_offset and package_body_offset must be >= 0",
                      p->port);
            return SWOOP_EINVAL;
        }
        if (e.open_http_protocol < 0)
            e.open_http_protocol = d->open_http_protocol;
        if (e.http_max_header_size < 0)
            e.http_max_header_size = d->http_max_header_size;
        if (e.http_keepalive_timeout < 0)
            e.http_keepalive_timeout = d->http_keepalive_timeout;
        if (e.http_header_timeout < 0)
            e.http_header_timeout = d->http_header_timeout;
        if (e.http_body_timeout < 0)
            e.http_body_timeout = d->http_body_timeout;
        if (e.http_max_requests_per_conn < 0)
            e.http_max_requests_per_conn = d->http_max_requests_per_conn;
        if (e.enable_static_handler < 0)
            e.enable_static_handler = d->enable_static_handler;
        if (e.document_root[0] == '\0')
            memcpy(e.document_root, d->document_root, sizeof(e.document_root));
        if (e.http_index_files[0] == '\0')
            memcpy(e.http_index_files, d->http_index_files, sizeof(e.http_index_files));
        if (e.http_autoindex < 0)
            e.http_autoindex = d->http_autoindex;
        if (e.static_handler_locations[0] == '\0')
            memcpy(e.static_handler_locations, d->static_handler_locations,
                   sizeof(e.static_handler_locations));
        if (e.static_follow_symlinks < 0)
            e.static_follow_symlinks = d->static_follow_symlinks;
        if (e.http_access_log[0] == '\0')
            memcpy(e.http_access_log, d->http_access_log, sizeof(e.http_access_log));
        if (e.http_access_log_format < 0)
            e.http_access_log_format = d->http_access_log_format;
        if (e.http_body_memory_max < 0)
            e.http_body_memory_max = d->http_body_memory_max;
        if (e.upload_tmp_dir[0] == '\0')
            memcpy(e.upload_tmp_dir, d->upload_tmp_dir, sizeof(e.upload_tmp_dir));
        if (e.upload_max_filesize < 0)
            e.upload_max_filesize = d->upload_max_filesize;
        if (e.http_compression < 0)
            e.http_compression = d->http_compression;
        if (e.http_compression_level < 0)
            e.http_compression_level = d->http_compression_level;
        if (e.http_compression_min_length < 0)
            e.http_compression_min_length = d->http_compression_min_length;
        if (e.http_compression_types[0] == '\0')
            memcpy(e.http_compression_types, d->http_compression_types,
                   sizeof(e.http_compression_types));
        if (e.open_websocket_protocol < 0)
            e.open_websocket_protocol = d->open_websocket_protocol;
        if (e.websocket_max_message_size < 0)
            e.websocket_max_message_size = d->websocket_max_message_size;
        if (e.websocket_ping_interval < 0)
            e.websocket_ping_interval = d->websocket_ping_interval;
        if (e.open_websocket_close_frame < 0)
            e.open_websocket_close_frame = d->open_websocket_close_frame;
        if (e.open_websocket_ping_frame < 0)
            e.open_websocket_ping_frame = d->open_websocket_ping_frame;
        if (e.open_websocket_pong_frame < 0)
            e.open_websocket_pong_frame = d->open_websocket_pong_frame;
        if (e.websocket_subprotocol[0] == '\0')
            memcpy(e.websocket_subprotocol, d->websocket_subprotocol,
                   sizeof(e.websocket_subprotocol));
        if (e.websocket_output_high_water < 0)
            e.websocket_output_high_water = d->websocket_output_high_water;
        if (e.websocket_output_policy < 0)
            e.websocket_output_policy = d->websocket_output_policy;
        if (e.websocket_compression < 0)
            e.websocket_compression = d->websocket_compression;
        if (e.websocket_compression_min_length < 0)
            e.websocket_compression_min_length = d->websocket_compression_min_length;
        if (e.websocket_compression_context_takeover < 0)
            e.websocket_compression_context_takeover = d->websocket_compression_context_takeover;
        if (e.http_server_name[0] == '\0')
            memcpy(e.http_server_name, d->http_server_name, sizeof(e.http_server_name));
        p->eff = e;
        p->proto = NULL;
        if ((e.open_http_protocol || e.open_websocket_protocol) && !p->dgram) {
            /* WebSocket connections begin as HTTP requests: the port speaks HTTP first. */
            if (e.open_websocket_protocol && srv->protos[SWOOP_PROTO_WS] == NULL) {
                swoop_log(SWOOP_LOG_ERROR, 0,
                          "port %d (%s:%d): open_websocket_protocol is set but no WebSocket "
                          "events are: call swoop_ws_on first",
                          i, p->host, p->port);
                return SWOOP_EINVAL;
            }
            p->proto = srv->protos[SWOOP_PROTO_HTTP];
            if (p->proto == NULL ||
                (e.open_http_protocol && srv->proto_fn[SWOOP_PROTO_HTTP] == NULL &&
                 !e.open_websocket_protocol)) {
                swoop_log(SWOOP_LOG_ERROR, 0,
                          "port %d (%s:%d): open_http_protocol is set but no handler is: call "
                          "swoop_http_on_request first",
                          i, p->host, p->port);
                return SWOOP_EINVAL;
            }
        }
        p->static_root[0] = '\0';
        if (p->proto && e.enable_static_handler && e.document_root[0]) {
            char real[PATH_MAX];
            struct stat st;
            if (realpath(e.document_root, real) == NULL || stat(real, &st) < 0 ||
                !S_ISDIR(st.st_mode) || strlen(real) >= sizeof(p->static_root)) {
                int err = errno;
                swoop_log(SWOOP_LOG_ERROR, err,
                          "port %d (%s:%d): document_root \"%s\" is not a "
                          "directory",
                          i, p->host, p->port, e.document_root);
                return SWOOP_EINVAL;
            }
            strcpy(p->static_root, real);
        }
        swoop_framing_t *f = &p->framing;
        memset(f, 0, sizeof(*f));
        f->max_length = e.package_max_length > 0 ? (size_t)e.package_max_length : 1;
        if (e.open_length_check) {
            f->mode = SWOOP_FRAME_LENGTH;
            f->length_type = e.package_length_type;
            f->length_offset = (size_t)e.package_length_offset;
            f->body_offset = (size_t)e.package_body_offset;
        } else if (e.open_eof_split || e.open_eof_check) {
            f->mode = e.open_eof_split ? SWOOP_FRAME_EOF_SPLIT : SWOOP_FRAME_EOF_CHECK;
            f->eof_len = strlen(e.package_eof);
            memcpy(f->eof, e.package_eof, f->eof_len);
        }
        int rc = swoop__framing_check(f);
        if (rc < 0) {
            swoop_log(SWOOP_LOG_ERROR, rc, "port %d (%s:%d): bad protocol settings", i, p->host,
                      p->port);
            return rc;
        }
        /* enable_reuse_port set after swoop_server_listen: BASE workers bind beside it. */
        if (srv->settings.enable_reuse_port) {
            int one = 1;
            setsockopt(p->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        }
        if (p->ssl && (rc = port_tls_open(srv, p)) < 0)
            return rc;
        /* listen() again applies a backlog set after swoop_server_listen. */
        if (!p->dgram && e.backlog != p->listen_backlog && listen(p->fd, e.backlog) == 0)
            p->listen_backlog = e.backlog;
    }
    return 0;
}

static int map_shared(swoop_server_t *srv)
{
    int mports = srv->nports < SWOOP_METRICS_PORTS_MAX ? srv->nports : SWOOP_METRICS_PORTS_MAX;
    size_t gs_size = swoop__shared_size_of(srv->worker_num,
                                           srv->mode == SWOOP_MODE_PROCESS ? srv->reactor_num : 0,
                                           mports, srv->settings.task_worker_num);
    int fd = memfd_create(SWOOP_STATS_MEMFD, MFD_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "memfd_create() for the server stats failed");
        return -err;
    }
    if (ftruncate(fd, (off_t)gs_size) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "ftruncate() of the stats memfd failed");
        close(fd);
        return -err;
    }
    void *gs = mmap(NULL, gs_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (gs == MAP_FAILED) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "mmap() of the %zu-byte stats region failed", gs_size);
        close(fd);
        return -err;
    }
    srv->gs = gs;
    srv->gs_size = gs_size;
    srv->gs_fd = fd;
    srv->gs->magic = SWOOP_STATS_MAGIC;
    srv->gs->version = SWOOP_STATS_VERSION;
    srv->gs->task.queue_id = -1;
    srv->gs->mode = srv->mode;
    srv->gs->worker_num = srv->worker_num;
    srv->gs->reactor_num = srv->mode == SWOOP_MODE_PROCESS ? srv->reactor_num : 0;
    srv->gs->metric_ports = mports;
    srv->gs->metric_tasks = srv->settings.task_worker_num;
    srv->gs->metrics_on = srv->settings.enable_metrics;
    for (int i = 0; i < mports; i++) {
        swoop_port_t *p = srv->ports[i];
        srv->gs->port_num[i] = (uint16_t)(p->port > 0 ? p->port : 0);
        if (p->proto && p->proto == srv->protos[SWOOP_PROTO_HTTP])
            srv->gs->port_http |= (uint16_t)(1u << i);
    }
    atomic_store(&srv->gs->start_time, (uint64_t)time(NULL));
    swoop__ipc_set_msg_seq(&srv->gs->msg_seq);

    /* Sessions: one record per possible fd, per owner (BASE: per range, 2 per worker). */
    struct rlimit rl;
    uint64_t lim = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        lim = rl.rlim_cur;
    uint64_t owners = srv->mode == SWOOP_MODE_BASE ? 2 * (uint64_t)srv->worker_num : 1;
    if (lim > (1u << 20))
        lim = 1u << 20;
    if (lim * owners > SWOOP_SLOT_MASK)
        lim = SWOOP_SLOT_MASK / owners;
    srv->fd_limit = (uint32_t)lim;
    srv->sessions_size = (size_t)(lim * owners) * sizeof(swoop_session_t);
    void *ss =
        mmap(NULL, srv->sessions_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ss == MAP_FAILED) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "mmap() of the %zu-byte session table failed",
                  srv->sessions_size);
        return -err;
    }
    srv->sessions = ss;
    int subjects = 0;
    for (int i = 0; i < srv->nports; i++)
        subjects |= srv->ports[i]->ssl && srv->ports[i]->tls.client_cert_file[0];
    if (subjects) {
        /* Anonymous shared memory: a page is only backed once a slot on it was written. */
        srv->tls_subjects_size = (size_t)(lim * owners) * SWOOP_TLS_SUBJECT_MAX;
        void *ts = mmap(NULL, srv->tls_subjects_size, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (ts == MAP_FAILED) {
            int err = errno;
            swoop_log(SWOOP_LOG_ERROR, err, "mmap() of the %zu-byte TLS subject table failed",
                      srv->tls_subjects_size);
            srv->tls_subjects_size = 0;
            return -err;
        }
        srv->tls_subjects = ts;
    }
    /* Event workers, then task workers (the manager's slots). */
    srv->proc_stats_size =
        (size_t)(srv->worker_num + srv->settings.task_worker_num) * sizeof(swoop_proc_stat_t);
    void *ps =
        mmap(NULL, srv->proc_stats_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ps == MAP_FAILED) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "mmap() of the worker slot stats failed");
        return -err;
    }
    srv->proc_stats = ps;
    if (srv->mode == SWOOP_MODE_BASE) {
        srv->nranges = (int)owners;
        srv->ranges_size = (size_t)owners * sizeof(swoop_srv_range_t);
        void *rs =
            mmap(NULL, srv->ranges_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (rs == MAP_FAILED) {
            int err = errno;
            swoop_log(SWOOP_LOG_ERROR, err, "mmap() of the session range table failed");
            return -err;
        }
        srv->ranges = rs;
    }
    return 0;
}

static void unmap_shared(swoop_server_t *srv)
{
    swoop__ipc_set_msg_seq(NULL);
    if (srv->gs)
        munmap(srv->gs, srv->gs_size);
    if (srv->gs_fd >= 0)
        close(srv->gs_fd);
    if (srv->sessions)
        munmap(srv->sessions, srv->sessions_size);
    if (srv->proc_stats)
        munmap(srv->proc_stats, srv->proc_stats_size);
    if (srv->tls_subjects)
        munmap(srv->tls_subjects, srv->tls_subjects_size);
    srv->tls_subjects = NULL;
    if (srv->ranges)
        munmap(srv->ranges, srv->ranges_size);
    srv->ranges = NULL;
    srv->nranges = 0;
    srv->range = -1;
    srv->gs = NULL;
    srv->gs_fd = -1;
    srv->sessions = NULL;
    srv->proc_stats = NULL;
}

static void close_rings(swoop_server_t *srv)
{
    if (srv->wake_fds) {
        for (int i = 0; i < srv->worker_num + srv->reactor_num; i++) {
            if (srv->wake_fds[i] >= 0)
                close(srv->wake_fds[i]);
        }
        swoop_free(srv->wake_fds);
        srv->wake_fds = NULL;
    }
    if (srv->rings)
        munmap(srv->rings, srv->rings_size);
    srv->rings = NULL;
    srv->wakers = NULL;
}

/* PROCESS with ipc_ring: the rings, the wakers and one eventfd per reader, before fork. */
static int open_rings(swoop_server_t *srv)
{
    int n = srv->worker_num + srv->reactor_num;
    size_t pairs = (size_t)srv->worker_num * (size_t)srv->reactor_num;
    srv->ring_stride = swoop__ring_size(SWOOP_RING_CAP);
    size_t wsize = (size_t)n * sizeof(swoop_ring_waker_t);
    srv->rings_size = wsize + 2 * pairs * srv->ring_stride;
    void *p =
        mmap(NULL, srv->rings_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "mmap() of the %zu-byte IPC rings failed", srv->rings_size);
        return -err;
    }
    srv->wakers = p;
    srv->rings = (char *)p + wsize;
    for (size_t i = 0; i < 2 * pairs; i++)
        swoop__ring_init((swoop_ring_t *)(srv->rings + i * srv->ring_stride), SWOOP_RING_CAP);
    srv->wake_fds = swoop_malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++)
        srv->wake_fds[i] = -1;
    for (int i = 0; i < n; i++) {
        srv->wake_fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (srv->wake_fds[i] < 0) {
            int err = errno;
            swoop_log(SWOOP_LOG_ERROR, err, "eventfd() for the IPC rings failed");
            close_rings(srv);
            return -err;
        }
    }
    return 0;
}

static void close_channels(swoop_server_t *srv)
{
    close_rings(srv);
    if (srv->pairs) {
        for (int i = 0; i < srv->worker_num * srv->reactor_num; i++)
            swoop__channel_close(&srv->pairs[i]);
        swoop_free(srv->pairs);
        srv->pairs = NULL;
    }
    if (srv->msgs) {
        for (int i = 0; i < srv->worker_num; i++)
            swoop__channel_close(&srv->msgs[i]);
        swoop_free(srv->msgs);
        srv->msgs = NULL;
    }
}

static int open_channels(swoop_server_t *srv)
{
    int rc = 0;
    srv->msgs = swoop_calloc((size_t)srv->worker_num, sizeof(*srv->msgs));
    for (int i = 0; i < srv->worker_num; i++)
        srv->msgs[i].fds[0] = srv->msgs[i].fds[1] = -1;
    for (int i = 0; i < srv->worker_num && rc == 0; i++)
        rc = swoop__channel_open(&srv->msgs[i], 1024 * 1024);
    if (rc == 0 && srv->mode == SWOOP_MODE_PROCESS) {
        int n = srv->worker_num * srv->reactor_num;
        srv->pairs = swoop_calloc((size_t)n, sizeof(*srv->pairs));
        for (int i = 0; i < n; i++)
            srv->pairs[i].fds[0] = srv->pairs[i].fds[1] = -1;
        for (int i = 0; i < n && rc == 0; i++)
            rc = swoop__channel_open(&srv->pairs[i], PIPE_BUFSIZE);
        if (rc == 0 && srv->settings.ipc_ring)
            rc = open_rings(srv);
    }
    if (rc < 0)
        close_channels(srv);
    return rc;
}

/*
 * The pid file is written by the master after the fork (and the daemonize
 * double fork): a path it cannot write would end the server there, after
 * the calling process already exited 0. Checked here instead, while the
 * caller can still be told; a file made only for the check is removed.
 */
static int pid_file_check(const swoop_server_t *srv)
{
    const char *path = srv->settings.pid_file;
    if (path[0] == '\0')
        return 0;
    int made = 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) {
        made = 0;
        fd = open(path, O_WRONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "swoop_server_start: cannot write pid_file \"%s\"", path);
        return -err;
    }
    close(fd);
    if (made)
        unlink(path);
    return 0;
}

static int server_daemonize(swoop_server_t *srv)
{
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "daemonize: fork() failed");
        return -err;
    }
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        _exit(1);
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const char *outpath = srv->settings.log_file[0] ? srv->settings.log_file : "/dev/null";
    int out = open(outpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (in < 0 || out < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "daemonize: open(%s) failed", outpath);
        if (in >= 0)
            close(in);
        if (out >= 0)
            close(out);
        return -err;
    }
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    close(in);
    close(out);
    return 0;
}

int swoop_server_start(swoop_server_t *srv)
{
    if (srv == NULL)
        return SWOOP_EINVAL;
    if (srv->started) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_server_start: already started");
        return SWOOP_ESTATE;
    }
    swoop_server_settings_t *s = &srv->settings;
    if (srv->nports == 0) {
        swoop_log(SWOOP_LOG_ERROR, 0, "swoop_server_start: no listening port");
        return SWOOP_EINVAL;
    }
    int rc = swoop__server_settings_check(srv);
    if (rc < 0)
        return rc;
    if ((rc = swoop__task_check(srv)) < 0) /* task/task.c */
        return rc;
    srv->worker_num = s->worker_num;
    int rn = s->reactor_num > 0 ? s->reactor_num : cpu_count();
    if (rn > s->worker_num)
        rn = s->worker_num;
    if (rn > SERVER_REACTOR_MAX)
        rn = SERVER_REACTOR_MAX;
    srv->reactor_num = rn;
    rc = resolve_ports(srv);
    if (rc < 0)
        return rc;
    /*
     * No check interval given: derive it from the shortest idle time of any
     * port (a port may set its own heartbeat_idle_time), as Swoole does.
     */
    if (s->heartbeat_check_interval == 0) {
        int64_t shortest = 0;
        for (int i = 0; i < srv->nports; i++) {
            int64_t idle = srv->ports[i]->eff.heartbeat_idle_time;
            if (idle > 0 && (shortest == 0 || idle < shortest))
                shortest = idle;
        }
        if (shortest > 0)
            s->heartbeat_check_interval = shortest / 2 > 0 ? shortest / 2 : 1;
    }
    if (s->log_level >= 0)
        swoop_log_set_level(s->log_level);
    if (s->log_file[0] && (rc = swoop_log_open(s->log_file)) < 0) {
        swoop_log(SWOOP_LOG_ERROR, rc, "cannot open log_file \"%s\"", s->log_file);
        return rc;
    }
    if ((rc = pid_file_check(srv)) < 0)
        return rc;
    if (s->daemonize && (rc = server_daemonize(srv)) < 0)
        return rc;
    srv->started = 1;
    srv->running = 1;
    if ((rc = open_access_logs(srv)) < 0 || (rc = map_shared(srv)) < 0)
        goto out;
    if ((rc = open_channels(srv)) < 0)
        goto out;
    if ((rc = swoop__task_open(srv)) < 0) /* task/task.c */
        goto out;
    if (srv->mode == SWOOP_MODE_PROCESS)
        rc = swoop__master_run(srv);
    else
        rc = swoop__base_run(srv);
out:
    for (int i = 0; i < srv->nports; i++) {
        if (srv->ports[i]->access_fd >= 0)
            close(srv->ports[i]->access_fd);
        srv->ports[i]->access_fd = -1;
    }
    swoop__task_close(srv);
    close_channels(srv);
    unmap_shared(srv);
    srv->running = 0;
    return rc;
}
