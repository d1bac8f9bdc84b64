/*
 * The server's public API (include/swoop/server.h): creation, ports,
 * settings (typed and by name), callbacks, the shared memory every server
 * process sees (stats in a memfd the CLI can map from outside, the session
 * table, the manager's slot stats), the channels made before fork, and
 * start, which hands over to the master (PROCESS, master.c) or runs the
 * manager in the calling process (BASE, worker.c).
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

#define SERVER_WORKER_MAX  1024
#define SERVER_REACTOR_MAX 64
#define PIPE_BUFSIZE       (8 * 1024 * 1024)

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
    srv->range = -1;
    srv->cur_port = -1;
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
    s->pipe_buffer_size = 32 * 1024 * 1024;
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
        swoop_free(p);
    }
    swoop_free(srv->ports);
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
    /* SO_REUSEPORT from the start, so BASE workers can join the same port later. */
    int fd = swoop__sock_listen(type, host, port, srv->settings.protocol.backlog,
                                srv->settings.enable_reuse_port);
    if (fd < 0)
        return fd;
    swoop_port_t *p = swoop_calloc(1, sizeof(*p));
    p->srv = srv;
    p->index = srv->nports;
    p->type = type;
    p->fd = fd;
    p->dgram = swoop_sock_type_is_dgram(type);
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
    swoop_log(SWOOP_LOG_INFO, 0, "listening on %s:%d (type %d, fd %d)", host, p->port, (int)type,
              fd);
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

/* ---- settings by name ---- */

int swoop__server_parse_int(const char *v, int64_t min, int64_t max, int64_t *out)
{
    /* strtoll would skip leading blanks: a value is digits, an optional sign first. */
    if (v == NULL || !(*v == '-' || *v == '+' || (*v >= '0' && *v <= '9')))
        return SWOOP_EINVAL;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v)
        return SWOOP_EINVAL;
    /* Size suffixes: 2M, 64K, 1G. The range applies to the scaled value ("1M" >= 65536). */
    long long mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024;
    else if (*end == 'G' || *end == 'g')
        mul = 1024LL * 1024 * 1024;
    if (mul > 1) {
        end++;
        if (n > LLONG_MAX / mul || n < LLONG_MIN / mul)
            return SWOOP_EINVAL;
        n *= mul;
    }
    if (*end != '\0' || n < min || n > max)
        return SWOOP_EINVAL;
    *out = n;
    return 0;
}

static int parse_bool(const char *v, int64_t *out)
{
    if (v && (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0 ||
              strcmp(v, "1") == 0)) {
        *out = 1;
        return 0;
    }
    if (v && (strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 ||
              strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0)) {
        *out = 0;
        return 0;
    }
    return SWOOP_EINVAL;
}

enum { T_INT, T_INT64, T_BOOL, T_PATH, T_LOGLEVEL, T_EOF, T_LENTYPE, T_IPCKEY };

/*
 * One row per setting: the string setter parses into the field with these
 * rules, and swoop_server_start checks the typed fields with the same rows
 * (settings_check), so a value written through the structs is held to the
 * same range as one given by name. T_IPCKEY's range is that of the string
 * (decimal or hex, 0..0xffffffff); the field keeps it as the key_t int.
 */
typedef struct setting_s {
    const char *name;
    int type;
    size_t off;
    int64_t min, max;
} setting_t;

#define SRV(f)  offsetof(swoop_server_settings_t, f)
#define PORT(f) offsetof(swoop_port_settings_t, f)

static const setting_t server_keys[] = {
    {"reactor_num", T_INT, SRV(reactor_num), 0, SERVER_REACTOR_MAX},
    {"worker_num", T_INT, SRV(worker_num), 1, SERVER_WORKER_MAX},
    {"task_worker_num", T_INT, SRV(task_worker_num), 0, SERVER_WORKER_MAX},
    {"task_ipc_mode", T_INT, SRV(task_ipc_mode), 1, 3},
    {"task_tmpdir", T_PATH, SRV(task_tmpdir), 0, 0},
    {"message_queue_key", T_IPCKEY, SRV(message_queue_key), 0, UINT32_MAX},
    {"task_redeliver", T_INT, SRV(task_redeliver), 0, 255},
    {"task_spill_size", T_INT64, SRV(task_spill_size), 0, 1ll << 40},
    {"task_max_pending_bytes", T_INT64, SRV(task_max_pending_bytes), 0, 1ll << 46},
    {"task_max_request", T_INT64, SRV(task_max_request), 0, INT64_MAX},
    {"max_request", T_INT64, SRV(max_request), 0, INT64_MAX},
    {"max_request_grace", T_INT64, SRV(max_request_grace), -1, INT64_MAX},
    {"dispatch_mode", T_INT, SRV(dispatch_mode), 1, 5},
    {"max_conn", T_INT, SRV(max_conn), 1, 1 << 20},
    {"max_connection", T_INT, SRV(max_conn), 1, 1 << 20},
    {"buffer_output_size", T_INT64, SRV(buffer_output_size), 1, INT32_MAX},
    {"socket_buffer_size", T_INT64, SRV(socket_buffer_size), 1, INT64_MAX},
    {"heartbeat_check_interval", T_INT, SRV(heartbeat_check_interval), 0, 86400},
    {"enable_reuse_port", T_BOOL, SRV(enable_reuse_port), 0, 1},
    {"reload_async", T_BOOL, SRV(reload_async), 0, 1},
    {"max_wait_time", T_INT, SRV(max_wait_time), 0, 86400},
    {"pid_file", T_PATH, SRV(pid_file), 0, 0},
    {"log_file", T_PATH, SRV(log_file), 0, 0},
    {"log_level", T_LOGLEVEL, SRV(log_level), 0, 0},
    {"daemonize", T_BOOL, SRV(daemonize), 0, 1},
    {"ipc_batch", T_BOOL, SRV(ipc_batch), 0, 1},
    {"ipc_ring", T_BOOL, SRV(ipc_ring), 0, 1},
    {"pipe_buffer_size", T_INT64, SRV(pipe_buffer_size), 65536, INT64_MAX},
};

static const setting_t port_keys[] = {
    {"open_eof_check", T_BOOL, PORT(open_eof_check), 0, 1},
    {"open_eof_split", T_BOOL, PORT(open_eof_split), 0, 1},
    {"package_eof", T_EOF, PORT(package_eof), 0, 0},
    {"open_length_check", T_BOOL, PORT(open_length_check), 0, 1},
    {"package_length_type", T_LENTYPE, PORT(package_length_type), 0, 0},
    {"package_length_offset", T_INT, PORT(package_length_offset), 0, 1 << 20},
    {"package_body_offset", T_INT, PORT(package_body_offset), 0, 1 << 20},
    {"package_max_length", T_INT64, PORT(package_max_length), 1, UINT32_MAX},
    {"heartbeat_idle_time", T_INT, PORT(heartbeat_idle_time), 0, 86400},
    {"open_tcp_nodelay", T_BOOL, PORT(open_tcp_nodelay), 0, 1},
    {"backlog", T_INT, PORT(backlog), 1, 65535},
};

/* Unescapes \r \n \t \\ \0 and \xHH in package_eof values given as strings. */
static int parse_eof(const char *v, char *out)
{
    size_t n = 0;
    for (const char *p = v; *p; p++) {
        char c = *p;
        if (c == '\\' && p[1]) {
            p++;
            switch (*p) {
            case 'r':
                c = '\r';
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case '\\':
                c = '\\';
                break;
            case 'x': {
                /* Exactly two hex digits: strtol alone would take "+1" or " 1". */
                if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
                    return SWOOP_EINVAL;
                char hex[3] = {p[1], p[2], 0};
                c = (char)strtol(hex, NULL, 16);
                p += 2;
                break;
            }
            default:
                return SWOOP_EINVAL;
            }
        }
        if (n >= 8 || c == '\0')
            return SWOOP_EINVAL;
        out[n++] = c;
    }
    if (n == 0)
        return SWOOP_EINVAL;
    out[n] = '\0';
    return 0;
}

static int apply(const setting_t *k, void *base, const char *value)
{
    char *field = (char *)base + k->off;
    int64_t n = 0;
    int rc;
    switch (k->type) {
    case T_INT:
        if ((rc = swoop__server_parse_int(value, k->min, k->max, &n)) == 0)
            *(int *)field = (int)n;
        return rc;
    case T_IPCKEY:
        /* SysV keys are usually written in hex (ipcs prints them so): 0x70001001 or decimal. */
        if (value != NULL && value[0] == '0' && (value[1] == 'x' || value[1] == 'X')) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(value + 2, &end, 16);
            if (errno != 0 || end == value + 2 || *end != '\0' ||
                !isxdigit((unsigned char)value[2]) || v > (unsigned long long)k->max)
                return SWOOP_EINVAL;
            n = (int64_t)v;
        } else if ((rc = swoop__server_parse_int(value, k->min, k->max, &n)) < 0) {
            return rc;
        }
        /* key_t is an int: keys from 0x80000000 up (ipcs shows them) are the negative ones. */
        *(int *)field = (int)(int32_t)(uint32_t)n;
        return 0;
    case T_INT64:
        if ((rc = swoop__server_parse_int(value, k->min, k->max, &n)) == 0)
            *(int64_t *)field = n;
        return rc;
    case T_BOOL:
        if ((rc = parse_bool(value, &n)) == 0)
            *(int *)field = (int)n;
        return rc;
    case T_PATH:
        if (value == NULL || strlen(value) >= SWOOP_SERVER_PATH_MAX)
            return SWOOP_EINVAL;
        strcpy(field, value);
        return 0;
    case T_LOGLEVEL:
        rc = swoop_log_level_parse(value);
        if (rc < 0)
            return rc;
        *(int *)field = rc;
        return 0;
    case T_EOF: {
        char tmp[9];
        if (value == NULL || (rc = parse_eof(value, tmp)) < 0)
            return SWOOP_EINVAL;
        memcpy(field, tmp, sizeof(tmp));
        return 0;
    }
    case T_LENTYPE:
        if (value == NULL || strlen(value) != 1 || swoop__frame_type_size(value[0]) == 0)
            return SWOOP_EINVAL;
        *field = value[0];
        return 0;
    }
    return SWOOP_EINVAL;
}

static int set_from(const setting_t *keys, size_t nkeys, void *base, const char *key,
                    const char *value, int *found)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (strcmp(keys[i].name, key) == 0) {
            *found = 1;
            int rc = apply(&keys[i], base, value);
            if (rc < 0)
                swoop_log(SWOOP_LOG_WARNING, 0, "bad value \"%s\" for setting \"%s\"",
                          value ? value : "(null)", key);
            return rc;
        }
    }
    return 0;
}

/*
 * Checks one typed field against its row. `inherit`: a port's own settings,
 * where -1, "" and 0 mean "take the server's value". Returns 0, or
 * SWOOP_EINVAL with `why` filled (the accepted values).
 */
static int field_check(const setting_t *k, const void *base, int inherit, char *why, size_t cap)
{
    const char *field = (const char *)base + k->off;
    int64_t n = 0;
    switch (k->type) {
    case T_INT:
    case T_BOOL:
        n = *(const int *)field;
        break;
    case T_INT64:
        n = *(const int64_t *)field;
        break;
    case T_IPCKEY:
        return 0; /* every int is a key_t; 0 is the private queue */
    case T_LOGLEVEL:
        n = *(const int *)field;
        snprintf(why, cap, "%lld: -1 (leave it) or %d..%d", (long long)n, SWOOP_LOG_DEBUG,
                 SWOOP_LOG_NONE);
        return n >= -1 && n <= SWOOP_LOG_NONE ? 0 : SWOOP_EINVAL;
    case T_PATH:
        snprintf(why, cap, "not NUL-terminated within %d bytes", SWOOP_SERVER_PATH_MAX);
        return memchr(field, '\0', SWOOP_SERVER_PATH_MAX) ? 0 : SWOOP_EINVAL;
    case T_EOF: {
        size_t len = strnlen(field, sizeof(((swoop_port_settings_t *)0)->package_eof));
        snprintf(why, cap, "%zu bytes: 1..8%s", len, inherit ? " (\"\" inherit)" : "");
        return len <= 8 && (len >= 1 || inherit) ? 0 : SWOOP_EINVAL;
    }
    case T_LENTYPE:
        snprintf(why, cap, "'%c' (%d): one of c C s S n v l L N V q Q%s",
                 isprint((unsigned char)*field) ? *field : '?', *field,
                 inherit ? " (0 inherit)" : "");
        return (*field == 0 && inherit) || (*field != 0 && swoop__frame_type_size(*field) != 0)
                   ? 0
                   : SWOOP_EINVAL;
    }
    if (inherit && n == -1)
        return 0;
    snprintf(why, cap, "%lld: must be %lld..%lld%s", (long long)n, (long long)k->min,
             (long long)k->max, inherit ? " (-1 inherit)" : "");
    return n >= k->min && n <= k->max ? 0 : SWOOP_EINVAL;
}

/* Every row of `keys` against `base`; logs each bad field, named, with `where`. */
static int settings_check(const setting_t *keys, size_t nkeys, const void *base, int inherit,
                          const char *where)
{
    int rc = 0;
    for (size_t i = 0; i < nkeys; i++) {
        /* An alias (max_connection) shares its field with the row before it. */
        if (i > 0 && keys[i].off == keys[i - 1].off)
            continue;
        char why[128];
        if (field_check(&keys[i], base, inherit, why, sizeof(why)) < 0) {
            swoop_log(SWOOP_LOG_ERROR, 0, "swoop_server_start: %ssetting \"%s\" is %s", where,
                      keys[i].name, why);
            rc = SWOOP_EINVAL;
        }
    }
    return rc;
}

/* Start: the typed settings, the server's and every port's, with the setter's rules. */
static int server_settings_check(swoop_server_t *srv)
{
    int rc = settings_check(server_keys, SWOOP_ARRAY_SIZE(server_keys), &srv->settings, 0, "");
    if (settings_check(port_keys, SWOOP_ARRAY_SIZE(port_keys), &srv->settings.protocol, 0, "") < 0)
        rc = SWOOP_EINVAL;
    for (int i = 0; i < srv->nports; i++) {
        swoop_port_t *p = srv->ports[i];
        char where[320];
        snprintf(where, sizeof(where), "port %d (%s:%d): ", i, p->host, p->port);
        if (settings_check(port_keys, SWOOP_ARRAY_SIZE(port_keys), &p->settings, 1, where) < 0)
            rc = SWOOP_EINVAL;
    }
    return rc;
}

/*
 * The log settings act when they are set, not at start: a log_level or
 * log_file given before swoop_server_listen already governs its lines.
 * (Through the struct they still apply at start.) A log_file that cannot be
 * opened is refused here and the log stays where it was.
 */
static int log_apply(swoop_server_t *srv, const char *key)
{
    const swoop_server_settings_t *s = &srv->settings;
    if (strcmp(key, "log_level") == 0) {
        swoop_log_set_level(s->log_level);
        return 0;
    }
    if (strcmp(key, "log_file") != 0)
        return 0;
    int rc = swoop_log_open(s->log_file[0] ? s->log_file : NULL);
    if (rc < 0)
        swoop_log(SWOOP_LOG_ERROR, rc, "cannot open log_file \"%s\"", s->log_file);
    return rc;
}

int swoop_server_set(swoop_server_t *srv, const char *key, const char *value)
{
    if (srv == NULL || key == NULL)
        return SWOOP_EINVAL;
    if (srv->started)
        return SWOOP_ESTATE;
    char old_log[SWOOP_SERVER_PATH_MAX];
    memcpy(old_log, srv->settings.log_file, sizeof(old_log));
    int found = 0;
    int rc =
        set_from(server_keys, SWOOP_ARRAY_SIZE(server_keys), &srv->settings, key, value, &found);
    if (!found)
        rc = set_from(port_keys, SWOOP_ARRAY_SIZE(port_keys), &srv->settings.protocol, key, value,
                      &found);
    if (!found) {
        swoop_log(SWOOP_LOG_WARNING, 0, "unknown server setting \"%s\"", key);
        return SWOOP_EINVAL;
    }
    if (rc == 0 && (rc = log_apply(srv, key)) < 0) /* the log stays where it was: the setting too */
        memcpy(srv->settings.log_file, old_log, sizeof(old_log));
    return rc;
}

int swoop_port_set(swoop_port_t *port, const char *key, const char *value)
{
    if (port == NULL || key == NULL)
        return SWOOP_EINVAL;
    if (port->srv->started)
        return SWOOP_ESTATE;
    int found = 0;
    int rc = set_from(port_keys, SWOOP_ARRAY_SIZE(port_keys), &port->settings, key, value, &found);
    if (!found) {
        swoop_log(SWOOP_LOG_WARNING, 0, "unknown port setting \"%s\"", key);
        return SWOOP_EINVAL;
    }
    return rc;
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

/* ---- stats ---- */

static void stats_fill(swoop_srv_shared_t *gs, const swoop_proc_stat_t *ps,
                       swoop_server_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->start_time = atomic_load(&gs->start_time);
    out->connection_num = atomic_load(&gs->connection_num);
    out->accept_count = atomic_load(&gs->accept_count);
    out->close_count = atomic_load(&gs->close_count);
    for (int i = 0; i < gs->worker_num + gs->reactor_num; i++) {
        swoop_srv_counter_t *c = swoop__counter(gs, i);
        out->request_count += atomic_load(&c->requests);
        out->bytes_in += atomic_load(&c->bytes_in);
        out->bytes_out += atomic_load(&c->bytes_out);
    }
    out->worker_num = gs->worker_num;
    out->reactor_num = gs->reactor_num;
    out->mode = gs->mode;
    out->master_pid = atomic_load(&gs->master_pid);
    out->manager_pid = atomic_load(&gs->manager_pid);
    const swoop_srv_task_stats_t *t = &gs->task;
    out->task_worker_num = t->worker_num;
    out->task_idle_worker_num = t->worker_num - atomic_load(&t->busy);
    out->tasking_num = (int64_t)(atomic_load(&t->posted) - atomic_load(&t->taken));
    out->task_count = atomic_load(&t->done);
    out->task_redelivered = atomic_load(&t->redelivered);
    out->task_failed = atomic_load(&t->failed);
    out->task_queue_num = out->task_queue_bytes = -1;
    struct msqid_ds ds;
    if (t->queue_id >= 0 && t->worker_num > 0 && msgctl(t->queue_id, IPC_STAT, &ds) == 0) {
        out->task_queue_num = (int64_t)ds.msg_qnum;
        out->task_queue_bytes = (int64_t)ds.__msg_cbytes;
    }
    for (int i = 0; i < gs->worker_num && i < SWOOP_STATS_WORKERS_MAX; i++) {
        const swoop_srv_wstat_t *w = &gs->workers[i];
        out->workers[i].pid = atomic_load(&w->pid);
        out->workers[i].busy = atomic_load(&w->busy);
        out->workers[i].requests = atomic_load(&w->requests);
        out->workers[i].starts = atomic_load(&w->starts);
        (void)ps;
    }
}

int swoop_server_stats(swoop_server_t *srv, swoop_server_stats_t *out)
{
    if (srv == NULL || out == NULL)
        return SWOOP_EINVAL;
    if (srv->gs == NULL)
        return SWOOP_ESTATE;
    stats_fill(srv->gs, srv->proc_stats, out);
    return 0;
}

int swoop_server_stats_by_pid(pid_t pid, swoop_server_stats_t *out)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    int found = SWOOP_ENOENT;
    for (int fd = 0; fd < 4096 && found == SWOOP_ENOENT; fd++) {
        char path[96], target[256];
        snprintf(path, sizeof(path), "%s/%d", dir, fd);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0) {
            if (errno == EACCES)
                return SWOOP_EACCES;
            continue;
        }
        target[n] = '\0';
        if (strstr(target, "/memfd:" SWOOP_STATS_MEMFD) != target)
            continue;
        int mfd = open(path, O_RDONLY | O_CLOEXEC);
        if (mfd < 0)
            return -errno;
        struct stat st;
        if (fstat(mfd, &st) < 0 || (size_t)st.st_size < sizeof(swoop_srv_shared_t)) {
            close(mfd);
            return SWOOP_EPROTO;
        }
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, mfd, 0);
        int err = errno;
        close(mfd);
        if (p == MAP_FAILED)
            return -err;
        swoop_srv_shared_t *gs = p; /* read only: the mapping is PROT_READ */
        if (gs->magic != SWOOP_STATS_MAGIC || gs->version != SWOOP_STATS_VERSION ||
            gs->worker_num < 0 || gs->worker_num > SERVER_WORKER_MAX || gs->reactor_num < 0 ||
            gs->reactor_num > SERVER_REACTOR_MAX ||
            swoop__shared_size(gs->worker_num, gs->reactor_num) > (size_t)st.st_size) {
            munmap(p, (size_t)st.st_size);
            return SWOOP_EPROTO;
        }
        stats_fill(gs, NULL, out);
        munmap(p, (size_t)st.st_size);
        found = 0;
    }
    return found;
}

int swoop_server_stats_json(const swoop_server_stats_t *st, char *buf, size_t cap)
{
    size_t n = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__);                            \
        if (k_ < 0)                                                                                \
            return SWOOP_EINVAL;                                                                   \
        n += (size_t)k_;                                                                           \
    } while (0)
    PUT("{\"mode\":\"%s\",\"master_pid\":%d,\"manager_pid\":%d,\"start_time\":%llu,"
        "\"worker_num\":%d,\"reactor_num\":%d,\"connection_num\":%lld,\"accept_count\":%llu,"
        "\"close_count\":%llu,\"request_count\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,"
        "\"task_worker_num\":%d,\"task_idle_worker_num\":%d,\"tasking_num\":%lld,"
        "\"task_count\":%llu,\"task_redelivered\":%llu,\"task_failed\":%llu,"
        "\"task_queue_num\":%lld,\"task_queue_bytes\":%lld,\"workers\":[",
        st->mode == SWOOP_MODE_BASE ? "base" : "process", (int)st->master_pid, (int)st->manager_pid,
        (unsigned long long)st->start_time, st->worker_num, st->reactor_num,
        (long long)st->connection_num, (unsigned long long)st->accept_count,
        (unsigned long long)st->close_count, (unsigned long long)st->request_count,
        (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out, st->task_worker_num,
        st->task_idle_worker_num, (long long)st->tasking_num, (unsigned long long)st->task_count,
        (unsigned long long)st->task_redelivered, (unsigned long long)st->task_failed,
        (long long)st->task_queue_num, (long long)st->task_queue_bytes);
    for (int i = 0; i < st->worker_num && i < SWOOP_STATS_WORKERS_MAX; i++) {
        const swoop_worker_stats_t *w = &st->workers[i];
        PUT("%s{\"id\":%d,\"pid\":%d,\"state\":\"%s\",\"requests\":%llu,\"starts\":%llu}",
            i ? "," : "", i, (int)w->pid, w->busy ? "busy" : "idle",
            (unsigned long long)w->requests, (unsigned long long)w->starts);
    }
    PUT("]}");
#undef PUT
    if (n >= cap)
        return SWOOP_ENOSPC;
    return (int)n;
}

/* ---- start ---- */

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
        p->eff = e;
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
        /* listen() again applies a backlog set after swoop_server_listen. */
        if (!p->dgram && e.backlog != p->listen_backlog && listen(p->fd, e.backlog) == 0)
            p->listen_backlog = e.backlog;
    }
    return 0;
}

static int map_shared(swoop_server_t *srv)
{
    size_t gs_size =
        swoop__shared_size(srv->worker_num, srv->mode == SWOOP_MODE_PROCESS ? srv->reactor_num : 0);
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
    int rc = server_settings_check(srv);
    if (rc < 0)
        return rc;
    if ((rc = swoop__task_check(srv)) < 0) /* task.c */
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
    if ((rc = map_shared(srv)) < 0)
        goto out;
    if ((rc = open_channels(srv)) < 0)
        goto out;
    if ((rc = swoop__task_open(srv)) < 0) /* task.c */
        goto out;
    if (srv->mode == SWOOP_MODE_PROCESS)
        rc = swoop__master_run(srv);
    else
        rc = swoop__base_run(srv);
out:
    swoop__task_close(srv);
    close_channels(srv);
    unmap_shared(srv);
    srv->running = 0;
    return rc;
}
