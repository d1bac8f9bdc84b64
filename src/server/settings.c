/*
 * Settings by name (swoop_server_set, swoop_port_set) and their checks: one
 * table of keys, types and ranges serves the string setter and the check
 * of the typed struct fields at start, so both accept the same values. Log
 * settings act when they are set.
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

enum {
    T_INT,
    T_INT64,
    T_BOOL,
    T_PATH,
    T_LOGLEVEL,
    T_EOF,
    T_LENTYPE,
    T_IPCKEY,
    T_MIMELIST,
    T_WSPOLICY,
    T_ACCESSFMT,
    T_FIELDTEXT,
    T_ADMIN,
    T_TOKENLIST
};

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
    {"enable_io_uring", T_BOOL, SRV(enable_io_uring), 0, 1},
    {"enable_coroutine", T_BOOL, SRV(enable_coroutine), 0, 1},
    {"coroutine_stack_size", T_INT64, SRV(coroutine_stack_size), 16384, 1 << 30},
    {"pipe_buffer_size", T_INT64, SRV(pipe_buffer_size), 65536, INT64_MAX},
    {"lingering_time", T_INT, SRV(lingering_time), 0, 60000},
    {"lingering_timeout", T_INT, SRV(lingering_timeout), 1, 60000},
    {"enable_metrics", T_BOOL, SRV(enable_metrics), 0, 1},
    {"admin_port", T_ADMIN, SRV(admin_port), 0, 0},
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
    {"open_http_protocol", T_BOOL, PORT(open_http_protocol), 0, 1},
    {"http_max_header_size", T_INT, PORT(http_max_header_size), 1024, 1 << 20},
    {"http_keepalive_timeout", T_INT, PORT(http_keepalive_timeout), 0, 86400},
    {"http_header_timeout", T_INT, PORT(http_header_timeout), 1, 86400},
    {"http_body_timeout", T_INT, PORT(http_body_timeout), 1, 86400},
    {"http_max_requests_per_conn", T_INT, PORT(http_max_requests_per_conn), 0, INT32_MAX},
    {"enable_static_handler", T_BOOL, PORT(enable_static_handler), 0, 1},
    {"document_root", T_PATH, PORT(document_root), 0, 0},
    {"http_index_files", T_PATH, PORT(http_index_files), 0, 0},
    {"http_autoindex", T_BOOL, PORT(http_autoindex), 0, 1},
    {"static_handler_locations", T_PATH, PORT(static_handler_locations), 0, 0},
    {"static_follow_symlinks", T_BOOL, PORT(static_follow_symlinks), 0, 1},
    {"http_access_log", T_PATH, PORT(http_access_log), 0, 0},
    {"http_access_log_format", T_ACCESSFMT, PORT(http_access_log_format), 0, 2},
    {"http_body_memory_max", T_INT64, PORT(http_body_memory_max), 0, INT64_MAX},
    {"upload_tmp_dir", T_PATH, PORT(upload_tmp_dir), 0, 0},
    {"upload_max_filesize", T_INT64, PORT(upload_max_filesize), 0, INT64_MAX},
    {"http_compression", T_BOOL, PORT(http_compression), 0, 1},
    {"http_compression_level", T_INT, PORT(http_compression_level), 1, 9},
    {"http_compression_min_length", T_INT64, PORT(http_compression_min_length), 0, INT64_MAX},
    {"compression_min_length", T_INT64, PORT(http_compression_min_length), 0, INT64_MAX},
    {"http_compression_types", T_MIMELIST, PORT(http_compression_types), 0, 0},
    {"open_websocket_protocol", T_BOOL, PORT(open_websocket_protocol), 0, 1},
    {"websocket_max_message_size", T_INT64, PORT(websocket_max_message_size), 1, INT64_MAX},
    {"websocket_ping_interval", T_INT, PORT(websocket_ping_interval), 0, 86400},
    {"open_websocket_close_frame", T_BOOL, PORT(open_websocket_close_frame), 0, 1},
    {"open_websocket_ping_frame", T_BOOL, PORT(open_websocket_ping_frame), 0, 1},
    {"open_websocket_pong_frame", T_BOOL, PORT(open_websocket_pong_frame), 0, 1},
    {"websocket_subprotocol", T_TOKENLIST, PORT(websocket_subprotocol), 0, 0},
    {"websocket_output_high_water", T_INT64, PORT(websocket_output_high_water), 1, INT64_MAX},
    {"websocket_output_policy", T_WSPOLICY, PORT(websocket_output_policy), 0, 1},
    {"websocket_compression", T_BOOL, PORT(websocket_compression), 0, 1},
    {"websocket_compression_min_length", T_INT64, PORT(websocket_compression_min_length), 0,
     INT64_MAX},
    {"websocket_compression_context_takeover", T_BOOL, PORT(websocket_compression_context_takeover),
     0, 1},
    {"http_server_name", T_FIELDTEXT, PORT(http_server_name), 0, 0},
};

/* Bytes of admin_port, its NUL included. */
#define ADMIN_MAX sizeof(((swoop_server_settings_t *)0)->admin_port)

/* Bytes of a T_FIELDTEXT setting, its NUL included (swoop_port_settings_t.http_server_name). */
#define FIELDTEXT_MAX sizeof(((swoop_port_settings_t *)0)->http_server_name)

/*
 * A response field's value the library writes as given (http_server_name):
 * printable ASCII and spaces, no blank at either end, NUL-terminated within
 * FIELDTEXT_MAX bytes: nothing that could end the field or the head.
 */
static int field_text_check(const char *v)
{
    size_t n = strnlen(v, FIELDTEXT_MAX);
    if (n >= FIELDTEXT_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < 0x20 || v[i] > 0x7e)
            return -1;
    }
    return n > 0 && (v[0] == ' ' || v[n - 1] == ' ') ? -1 : 0;
}

/*
 * A list of media types ("text/html, application/json", a subtype or a type "*"):
 * comma-separated type/subtype tokens (RFC 9110 8.3.1) without parameters,
 * a subtype "*" for a whole type, a lone "*" for every type. Blanks around
 * the commas are allowed; an empty item or any other byte is not.
 */
static int mime_list_check(const char *v)
{
    int items = 0;
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        int type = 0, slash = 0, sub = 0;
        for (; *p && *p != ',' && *p != ' ' && *p != '\t'; p++) {
            if (*p == '/' && !slash && type)
                slash = 1;
            else if (isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p))
                slash ? sub++ : type++;
            else
                return SWOOP_EINVAL;
        }
        if (!(type && slash && sub) && !(type == 1 && !slash && p[-1] == '*'))
            return SWOOP_EINVAL;
        items++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            return items > 0 ? 0 : SWOOP_EINVAL;
        if (*p++ != ',')
            return SWOOP_EINVAL;
    }
}

/*
 * websocket_subprotocol: "" (none), or comma-separated names, each a token
 * (RFC 6455 4.1 and 11.5: Sec-WebSocket-Protocol elements are RFC 9110
 * tokens), blanks allowed around the commas, no empty element. Anything
 * else could never match a client's offer (a name with a blank inside) or
 * would split differently from what was meant ("a;b", quotes).
 */
static int token_list_check(const char *v)
{
    const char *p = v;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return 0;
    for (;;) {
        size_t n = 0;
        for (; *p && (isalnum((unsigned char)*p) || strchr("!#$%&'*+-.^_`|~", *p)); p++)
            n++;
        if (n == 0)
            return SWOOP_EINVAL;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            return 0;
        if (*p++ != ',')
            return SWOOP_EINVAL;
        while (*p == ' ' || *p == '\t')
            p++;
    }
}

#define TOKENLIST_WHY                                                                              \
    "not a comma-separated list of tokens (RFC 6455 subprotocol names: letters, digits and "       \
    "!#$%&'*+-.^_`|~)"

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
    case T_ADMIN: {
        char host[64];
        int port;
        if (value == NULL || strlen(value) >= ADMIN_MAX ||
            (value[0] && swoop__admin_parse(value, host, sizeof(host), &port) < 0))
            return SWOOP_EINVAL;
        strcpy(field, value);
        return 0;
    }
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
    case T_WSPOLICY:
        if (value == NULL || (strcmp(value, "close") != 0 && strcmp(value, "drop") != 0))
            return SWOOP_EINVAL;
        *(int *)field = strcmp(value, "drop") == 0;
        return 0;
    case T_ACCESSFMT:
        /* The names, in SWOOP_ACCESS_LOG_* order. */
        for (int i = 0; value != NULL && i < 3; i++) {
            if (strcmp(value, (const char *const[]){"combined", "common", "json"}[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        return SWOOP_EINVAL;
    case T_MIMELIST:
        if (value == NULL || strlen(value) >= SWOOP_SERVER_PATH_MAX || mime_list_check(value) < 0)
            return SWOOP_EINVAL;
        strcpy(field, value);
        return 0;
    case T_FIELDTEXT:
        if (value == NULL || field_text_check(value) < 0)
            return SWOOP_EINVAL;
        strcpy(field, value);
        return 0;
    case T_TOKENLIST:
        if (value == NULL || strlen(value) >= SWOOP_SERVER_PATH_MAX || token_list_check(value) < 0)
            return SWOOP_EINVAL;
        strcpy(field, value);
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
                swoop_log(SWOOP_LOG_WARNING, 0, "bad value \"%s\" for setting \"%s\"%s%s",
                          value ? value : "(null)", key, keys[i].type == T_TOKENLIST ? ": " : "",
                          keys[i].type == T_TOKENLIST ? TOKENLIST_WHY : "");
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
    case T_WSPOLICY:
    case T_ACCESSFMT:
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
    case T_ADMIN: {
        char host[64];
        int port;
        snprintf(why, cap, "\"PORT\" or \"HOST:PORT\" under %zu bytes", ADMIN_MAX);
        if (memchr(field, '\0', ADMIN_MAX) == NULL)
            return SWOOP_EINVAL;
        return ((const char *)field)[0] == '\0' ||
                       swoop__admin_parse(field, host, sizeof(host), &port) == 0
                   ? 0
                   : SWOOP_EINVAL;
    }
    case T_FIELDTEXT:
        snprintf(why, cap, "printable ASCII without blanks at either end, under %zu bytes",
                 FIELDTEXT_MAX);
        return field_text_check(field) == 0 ? 0 : SWOOP_EINVAL;
    case T_TOKENLIST:
        if (memchr(field, '\0', SWOOP_SERVER_PATH_MAX) == NULL) {
            snprintf(why, cap, "not NUL-terminated within %d bytes", SWOOP_SERVER_PATH_MAX);
            return SWOOP_EINVAL;
        }
        snprintf(why, cap, "%s", TOKENLIST_WHY);
        return token_list_check(field) == 0 ? 0 : SWOOP_EINVAL;
    case T_MIMELIST:
        if (memchr(field, '\0', SWOOP_SERVER_PATH_MAX) == NULL) {
            snprintf(why, cap, "not NUL-terminated within %d bytes", SWOOP_SERVER_PATH_MAX);
            return SWOOP_EINVAL;
        }
        snprintf(why, cap, "not a list of media types (\"text/html, text/*\")%s",
                 inherit ? " (\"\" inherit)" : "");
        return (inherit && field[0] == '\0') || mime_list_check(field) == 0 ? 0 : SWOOP_EINVAL;
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
        char why[192];
        if (field_check(&keys[i], base, inherit, why, sizeof(why)) < 0) {
            swoop_log(SWOOP_LOG_ERROR, 0, "swoop_server_start: %ssetting \"%s\" is %s", where,
                      keys[i].name, why);
            rc = SWOOP_EINVAL;
        }
    }
    return rc;
}

/* Start: the typed settings, the server's and every port's, with the setter's rules. */
int swoop__server_settings_check(swoop_server_t *srv)
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
    if (!found && (rc = swoop__tls_conf_set(&srv->tls, key, value)) != 0)
        return rc < 0 ? rc : 0;
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
    if (!found && (rc = swoop__tls_conf_set(&port->tls, key, value)) != 0)
        return rc < 0 ? rc : 0;
    if (!found) {
        swoop_log(SWOOP_LOG_WARNING, 0, "unknown port setting \"%s\"", key);
        return SWOOP_EINVAL;
    }
    return rc;
}
