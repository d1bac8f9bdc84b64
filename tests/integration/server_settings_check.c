/*
 * Issue 10, items 9 and 11: settings written through the structs are held
 * to the string setter's ranges at swoop_server_start (which fails with
 * SWOOP_EINVAL and a log line naming the field, per port too); the string
 * setter refuses `\x+1` in package_eof and takes SysV keys >= 0x80000000;
 * daemonize with a pid_file it cannot write fails in the calling process
 * (non-zero, the reason logged) instead of exiting 0 while the daemon dies;
 * log_level and log_file act from the swoop_server_set call on;
 * websocket_subprotocol takes only a comma-separated list of tokens, by
 * name (refused with the reason logged) and through the struct (at start).
 */
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <swoop/log.h>

#include "server_common.h"

/* The whole file as a string (empty if missing); free it. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    size_t cap = 4096, n = 0, k;
    char *s = malloc(cap);
    while ((k = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2) {
            cap *= 2;
            s = realloc(s, cap);
        }
    }
    fclose(f);
    s[n] = '\0';
    return s;
}

static int file_has(const char *path, const char *text)
{
    char *s = slurp(path);
    int found = strstr(s, text) != NULL;
    free(s);
    return found;
}

static int file_count(const char *path, const char *text)
{
    char *s = slurp(path);
    int n = 0;
    for (const char *p = s; (p = strstr(p, text)) != NULL; p += strlen(text))
        n++;
    free(s);
    return n;
}

/* ---- struct values checked at start ---- */

typedef void (*bad_fn)(swoop_server_t *srv, swoop_port_t *port);

typedef struct bad_case_s {
    const char *what; /* the text the log line must hold */
    bad_fn set;
} bad_case_t;

static void bad_backlog(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_server_settings(srv)->protocol.backlog = -7;
}
static void bad_max_length(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_server_settings(srv)->protocol.package_max_length = 0;
}
static void bad_reactor_num(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_server_settings(srv)->reactor_num = 100000;
}
static void bad_dispatch(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_server_settings(srv)->dispatch_mode = 9;
}
static void bad_log_level(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_server_settings(srv)->log_level = 42;
}
static void bad_pipe_buffer(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_server_settings(srv)->pipe_buffer_size = 4096;
}
static void bad_eof(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_server_settings(srv)->protocol.package_eof[0] = '\0';
}
static void bad_port_backlog(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_port_settings(port)->backlog = -7;
}
static void bad_port_length_type(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_port_settings(port)->package_length_type = 'x';
}
static void bad_port_idle(swoop_server_t *srv, swoop_port_t *port)
{
    swoop_port_settings(port)->heartbeat_idle_time = -5;
}
static void bad_port_subprotocol(swoop_server_t *srv, swoop_port_t *port)
{
    strcpy(swoop_port_settings(port)->websocket_subprotocol, "chat v2");
}

static struct bad_state {
    _Atomic int rc;
    _Atomic int returned;
} * bs;

static const bad_case_t *cur_case;

static void bad_child(void *arg, int ready_fd)
{
    const char *log = arg;
    close(ready_fd);
    ASSERT_OK(swoop_log_open(log));
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_PROCESS));
    swoop_port_t *port;
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &port));
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
    cur_case->set(srv, port);
    /* The old code started such a server: the parent kills it after a while. */
    atomic_store(&bs->rc, swoop_server_start(srv));
    atomic_store(&bs->returned, 1);
    ASSERT_OK(swoop_server_free(srv));
}

TEST(server_struct_settings_are_checked_at_start)
{
    static const bad_case_t cases[] = {
        {"setting \"backlog\" is -7: must be 1..65535", bad_backlog},
        {"setting \"package_max_length\" is 0: must be 1..", bad_max_length},
        {"setting \"reactor_num\" is 100000: must be 0..", bad_reactor_num},
        {"setting \"dispatch_mode\" is 9: must be 1..5", bad_dispatch},
        {"setting \"log_level\" is 42", bad_log_level},
        {"setting \"pipe_buffer_size\" is 4096: must be 65536..", bad_pipe_buffer},
        {"setting \"package_eof\" is 0 bytes", bad_eof},
        {"port 0 (127.0.0.1:", bad_port_backlog},
        {"setting \"package_length_type\" is 'x'", bad_port_length_type},
        {"setting \"heartbeat_idle_time\" is -5: must be 0..86400 (-1 inherit)", bad_port_idle},
        {"setting \"websocket_subprotocol\" is not a comma-separated list of tokens",
         bad_port_subprotocol},
    };
    bs = srv_shared(sizeof(*bs));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char log[512];
        snprintf(log, sizeof(log), "%s/bad%zu.log", swoop_test_tmpdir(), i);
        atomic_store(&bs->rc, 0);
        atomic_store(&bs->returned, 0);
        cur_case = &cases[i];
        int rfd;
        pid_t pid = swoop_test_fork(bad_child, log, &rfd);
        close(rfd);
        int status = swoop_test_wait_pid(pid, 3000);
        if (status == -1) {
            kill(pid, SIGTERM);
            swoop_test_wait_pid(pid, 5000);
            FAIL("case %zu (%s): swoop_server_start did not refuse the value", i, cases[i].what);
        }
        ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ASSERT_EQ(atomic_load(&bs->returned), 1);
        ASSERT_EQ(atomic_load(&bs->rc), SWOOP_EINVAL);
        if (!file_has(log, cases[i].what))
            FAIL("case %zu: no log line with \"%s\"", i, cases[i].what);
        if (i == 7 && !file_has(log, "setting \"backlog\" is -7: must be 1..65535 (-1 inherit)"))
            FAIL("the port's bad backlog is not named");
    }
    munmap(bs, sizeof(*bs));
}

/* ---- the string setter: package_eof escapes, SysV keys ---- */

TEST(server_setter_eof_escapes_and_high_ipc_keys)
{
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_PROCESS));
    swoop_server_settings_t *s = swoop_server_settings(srv);
    ASSERT_EQ(swoop_server_set(srv, "package_eof", "\\x+1"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "package_eof", "\\x 1"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "package_eof", "\\x-1"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "package_eof", "\\x1"), SWOOP_EINVAL);
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\x0d\\x0A"));
    ASSERT_STR_EQ(s->protocol.package_eof, "\r\n");
    /* Keys from 0x80000000 up exist (ipcs shows them): key_t keeps them as negative ints. */
    ASSERT_OK(swoop_server_set(srv, "message_queue_key", "0x80000000"));
    ASSERT_EQ(s->message_queue_key, (int)INT32_MIN);
    ASSERT_OK(swoop_server_set(srv, "message_queue_key", "0xfffffffe"));
    ASSERT_EQ(s->message_queue_key, -2);
    ASSERT_OK(swoop_server_set(srv, "message_queue_key", "4294967295"));
    ASSERT_EQ(s->message_queue_key, -1);
    ASSERT_EQ(swoop_server_set(srv, "message_queue_key", "0x100000000"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "message_queue_key", "4294967296"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "message_queue_key", "-1"), SWOOP_EINVAL);
    ASSERT_OK(swoop_server_free(srv));
}

/* ---- websocket_subprotocol: RFC 6455 tokens ---- */

TEST(server_setter_websocket_subprotocol_tokens)
{
    char log[512];
    snprintf(log, sizeof(log), "%s/subprotocol.log", swoop_test_tmpdir());
    ASSERT_OK(swoop_log_open(log));
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_PROCESS));
    swoop_port_t *port;
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &port));
    swoop_port_settings_t *ps = &swoop_server_settings(srv)->protocol;
    /* Taken: tokens, blanks around the commas, "" (none). */
    static const char *const good[] = {"chat",         "chat.v2, chat.v1",    "a,b",
                                       " x-1 ,\ty~2 ", "mqtt!#$%&'*+-.^_`|~", ""};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (swoop_server_set(srv, "websocket_subprotocol", good[i]) != 0)
            FAIL("\"%s\" refused", good[i]);
        ASSERT_STR_EQ(ps->websocket_subprotocol, good[i]);
        ASSERT_OK(swoop_port_set(port, "websocket_subprotocol", good[i]));
    }
    ASSERT_OK(swoop_server_set(srv, "websocket_subprotocol", "kept"));
    /* Refused, by the server and by a port, and the value stays. */
    static const char *const bad[] = {"chat v2",    "a,,b",     "a,",  ",a",
                                      "a;b",        "\"chat\"", "a/b", "chat\r\nX-Injected: 1",
                                      "ch\xc3\xa9", " , "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (swoop_server_set(srv, "websocket_subprotocol", bad[i]) != SWOOP_EINVAL)
            FAIL("\"%s\" taken", bad[i]);
        ASSERT_EQ(swoop_port_set(port, "websocket_subprotocol", bad[i]), SWOOP_EINVAL);
        ASSERT_STR_EQ(ps->websocket_subprotocol, "kept");
    }
    ASSERT_OK(swoop_server_free(srv));
    ASSERT_OK(swoop_log_open(NULL));
    /* One line each, with the reason. */
    ASSERT_EQ(file_count(log, "for setting \"websocket_subprotocol\": not a comma-separated "
                              "list of tokens"),
              (int)(2 * sizeof(bad) / sizeof(bad[0])));
}

/* ---- daemonize with a pid_file it cannot write ---- */

static void dpf_child(void *arg, int ready_fd)
{
    const char *dir = arg;
    close(ready_fd);
    char log[512], pid_file[512];
    snprintf(log, sizeof(log), "%s/d.log", dir);
    snprintf(pid_file, sizeof(pid_file), "%s/no-such-dir/d.pid", dir);
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_PROCESS));
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, NULL));
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "log_file", log));
    ASSERT_OK(swoop_server_set(srv, "daemonize", "1"));
    ASSERT_OK(swoop_server_set(srv, "pid_file", pid_file));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = srv_echo}));
    int rc = swoop_server_start(srv);
    ASSERT_OK(swoop_server_free(srv));
    /* The caller sees the failure: here as the exit status (the old code exited 0 in start). */
    _exit(rc == SWOOP_ENOENT ? 3 : 4);
}

TEST(server_daemonize_unwritable_pid_file_fails_in_the_caller)
{
    int rfd;
    pid_t pid = swoop_test_fork(dpf_child, (void *)swoop_test_tmpdir(), &rfd);
    close(rfd);
    int status = swoop_test_wait_pid(pid, 5000);
    ASSERT_NE(status, -1);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 3);
    char log[512];
    snprintf(log, sizeof(log), "%s/d.log", swoop_test_tmpdir());
    ASSERT(file_has(log, "cannot write pid_file"));
    ASSERT(file_has(log, "no-such-dir/d.pid"));
}

/* ---- log settings act when set ---- */

TEST(server_log_settings_apply_when_set)
{
    char log[512], bad[512];
    snprintf(log, sizeof(log), "%s/early.log", swoop_test_tmpdir());
    snprintf(bad, sizeof(bad), "%s/no-such-dir/x.log", swoop_test_tmpdir());
    swoop_server_t *srv;
    ASSERT_OK(swoop_server_new(&srv, SWOOP_MODE_PROCESS));
    ASSERT_OK(swoop_server_set(srv, "log_level", "info"));
    ASSERT_OK(swoop_server_set(srv, "log_file", log));
    /* Before listen and start: the listen INFO line already goes to log_file. */
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, NULL));
    ASSERT_EQ(file_count(log, "listening on 127.0.0.1:"), 1);
    /* A warning level hides the next one. */
    ASSERT_OK(swoop_server_set(srv, "log_level", "warning"));
    ASSERT_EQ(swoop_log_get_level(), SWOOP_LOG_WARNING);
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, NULL));
    ASSERT_EQ(file_count(log, "listening on 127.0.0.1:"), 1);
    /* A log_file that cannot be opened is refused; the log and the setting stay. */
    ASSERT_EQ(swoop_server_set(srv, "log_file", bad), SWOOP_ENOENT);
    ASSERT_STR_EQ(swoop_server_settings(srv)->log_file, log);
    ASSERT(file_has(log, "cannot open log_file"));
    ASSERT_OK(swoop_server_free(srv));
    swoop_log_open(NULL);
}
