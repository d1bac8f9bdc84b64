/*
 * `swoop demo`: the project's main job (docs/demo.md). A line-protocol TCP
 * server that shows the architecture working. At start it prints the
 * process tree (master and its reactor threads, manager, workers with
 * pids); then every line a client sends is a command:
 *   echo TEXT       TEXT comes back
 *   stats           the server's shared-memory stats as JSON
 *   after MS TEXT   TEXT comes back MS milliseconds later, from a timer
 *   crash           the worker aborts; the manager restarts it, the client
 *                   keeps its connection (PROCESS mode) and sees the new pid
 *   help            this list
 * Options: --host H (127.0.0.1), --port P (9501), --mode process|base,
 * --set key=value (any server setting, repeatable), --pid-file F.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <swoop/swoop.h>

#include "cli/cli.h"

static char demo_addr[160];

typedef struct later_s {
    swoop_server_t *srv;
    swoop_conn_id_t conn;
    size_t len;
    char text[];
} later_t;

static void reply(swoop_server_t *srv, swoop_conn_id_t conn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply(swoop_server_t *srv, swoop_conn_id_t conn, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    swoop_server_send(srv, conn, buf, (size_t)n);
}

static void on_later(int64_t id, void *arg)
{
    later_t *l = arg;
    int rc = swoop_server_send(l->srv, l->conn, l->text, l->len);
    if (rc < 0 && rc != SWOOP_ECLOSED)
        swoop_log(SWOOP_LOG_WARNING, rc, "demo: timer reply to conn %llu failed",
                  (unsigned long long)l->conn);
    free(l);
}

static const char *help_text =
    "commands:\n"
    "  echo TEXT       TEXT comes back\n"
    "  stats           the server's stats (JSON, from shared memory)\n"
    "  after MS TEXT   TEXT comes back after MS milliseconds, from a timer in the worker\n"
    "  crash           this worker aborts; the manager restarts it (try stats afterwards)\n"
    "  help            this list\n";

static void on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len)
{
    char line[2048];
    if (len >= sizeof(line))
        len = sizeof(line) - 1;
    memcpy(line, data, len);
    line[len] = '\0';
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    int wid = swoop_server_worker_id(srv);
    if (strncmp(line, "echo ", 5) == 0 || strcmp(line, "echo") == 0) {
        reply(srv, conn, "%s\n", len > 5 ? line + 5 : "");
    } else if (strcmp(line, "stats") == 0) {
        swoop_server_stats_t st;
        char json[8192];
        if (swoop_server_stats(srv, &st) == 0 &&
            swoop_server_stats_json(&st, json, sizeof(json)) > 0)
            reply(srv, conn, "%s\n", json);
        else
            reply(srv, conn, "error: no stats\n");
    } else if (strncmp(line, "after ", 6) == 0) {
        char *end;
        long ms = strtol(line + 6, &end, 10);
        if (end == line + 6 || ms < 1 || ms > 3600000) {
            reply(srv, conn, "usage: after MS TEXT (1 <= MS <= 3600000)\n");
            return;
        }
        while (*end == ' ')
            end++;
        size_t tl = strlen(end);
        later_t *l = malloc(sizeof(*l) + tl + 2);
        l->srv = srv;
        l->conn = conn;
        memcpy(l->text, end, tl);
        l->text[tl] = '\n';
        l->len = tl + 1;
        if (swoop_timer_after(ms, on_later, l) < 0) {
            free(l);
            reply(srv, conn, "error: cannot arm a timer\n");
        }
    } else if (strcmp(line, "crash") == 0) {
        reply(srv, conn, "worker %d (pid %d) aborts now; the manager restarts it\n", wid,
              (int)getpid());
        swoop_log(SWOOP_LOG_WARNING, 0, "demo: crash requested by conn %llu: abort()",
                  (unsigned long long)conn);
        /* Let the reply leave first: sends are flushed after the callback returns. */
        swoop_timer_after(20, (swoop_timer_cb)(void (*)(void))abort, NULL);
    } else if (strcmp(line, "help") == 0 || len == 0) {
        reply(srv, conn, "%s", help_text);
    } else {
        reply(srv, conn, "unknown command \"%s\"; try help\n", line);
    }
}

static void on_connect(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id)
{
    swoop_conn_info_t info;
    char peer[SWOOP_ADDR_STRLEN] = "?";
    if (swoop_server_conn_info(srv, conn, &info) == 0)
        swoop_addr_format(&info.peer, peer, sizeof(peer));
    reply(srv, conn, "swoop demo: conn %llu from %s, reactor %d, worker %d (pid %d); try help\n",
          (unsigned long long)conn, peer, reactor_id, swoop_server_worker_id(srv), (int)getpid());
}

static void print_threads(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char cpath[320], name[64] = "?";
        snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
        FILE *f = fopen(cpath, "r");
        if (f) {
            if (fgets(name, sizeof(name), f))
                name[strcspn(name, "\n")] = '\0';
            fclose(f);
        }
        printf("  |   thread %-7s %s\n", e->d_name, name);
    }
    closedir(d);
}

static void print_tree(int64_t id, void *arg)
{
    swoop_server_t *srv = arg;
    swoop_server_stats_t st;
    if (swoop_server_stats(srv, &st) < 0)
        return;
    for (int i = 0; i < st.worker_num; i++) {
        if (st.workers[i].pid <= 0)
            return; /* not all up yet: the tick comes back */
    }
    swoop_timer_clear(id);
    printf("process tree (%s mode):\n", st.mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS");
    if (st.mode == SWOOP_MODE_PROCESS) {
        printf("  master  pid %d (main thread accepts, %d reactor threads)\n", (int)st.master_pid,
               st.reactor_num);
        print_threads(st.master_pid);
        printf("  +- manager pid %d\n", (int)st.manager_pid);
    } else {
        printf("  manager pid %d (BASE: the starting process)\n", (int)st.manager_pid);
    }
    for (int i = 0; i < st.worker_num; i++)
        printf("     +- worker %d pid %d\n", i, (int)st.workers[i].pid);
    printf("try: telnet %s (or nc), then `help`\n", demo_addr);
    fflush(stdout);
}

static void on_start(swoop_server_t *srv)
{
    /* PROCESS: the master's loop runs the tick; BASE prints from on_manager_start. */
    swoop_server_stats_t st;
    if (swoop_server_stats(srv, &st) == 0 && st.mode == SWOOP_MODE_PROCESS &&
        swoop_timer_tick(20, print_tree, srv) < 0)
        fprintf(stderr, "demo: cannot print the process tree\n");
}

static void on_manager_start(swoop_server_t *srv)
{
    /* BASE mode: the manager is the starting process; its timers run from here on. */
    swoop_server_stats_t st;
    if (swoop_server_stats(srv, &st) == 0 && st.mode == SWOOP_MODE_BASE)
        swoop_timer_tick(20, print_tree, srv);
}

static void on_worker_error(swoop_server_t *srv, int worker_id, pid_t pid, int code, int signo)
{
    printf("manager: worker %d (pid %d) died (exit code %d, signal %d); restarting it\n", worker_id,
           (int)pid, code, signo);
    fflush(stdout);
}

static void usage(void)
{
    fprintf(stderr, "usage: swoop demo [--host H] [--port P] [--mode process|base] "
                    "[--set key=value]... [--pid-file F]\n");
}

int swoop_cli_demo(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 9501;
    swoop_mode_t mode = SWOOP_MODE_PROCESS;
    const char *pid_file = NULL;
    const char *sets[64];
    int nsets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--host") == 0 && v) {
            host = v;
            i++;
        } else if (strcmp(a, "--port") == 0 && v) {
            port = atoi(v);
            i++;
        } else if (strcmp(a, "--mode") == 0 && v) {
            if (strcmp(v, "base") == 0)
                mode = SWOOP_MODE_BASE;
            else if (strcmp(v, "process") == 0)
                mode = SWOOP_MODE_PROCESS;
            else {
                usage();
                return 2;
            }
            i++;
        } else if (strcmp(a, "--set") == 0 && v && nsets < 64) {
            sets[nsets++] = v;
            i++;
        } else if (strcmp(a, "--pid-file") == 0 && v) {
            pid_file = v;
            i++;
        } else {
            usage();
            return 2;
        }
    }
    swoop_server_t *srv;
    if (swoop_server_new(&srv, mode) < 0)
        return 1;
    int rc = 0;
    /* Lines; a reasonable default for a demo on a small machine. */
    swoop_server_set(srv, "open_eof_split", "1");
    swoop_server_set(srv, "package_eof", "\\n");
    swoop_server_set(srv, "package_max_length", "64K");
    swoop_server_set(srv, "worker_num", "2");
    for (int i = 0; i < nsets && rc == 0; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        if (eq == NULL || (size_t)(eq - sets[i]) >= sizeof(key)) {
            fprintf(stderr, "swoop demo: --set wants key=value, got \"%s\"\n", sets[i]);
            rc = 2;
            break;
        }
        memcpy(key, sets[i], (size_t)(eq - sets[i]));
        key[eq - sets[i]] = '\0';
        if (swoop_server_set(srv, key, eq + 1) < 0) {
            fprintf(stderr, "swoop demo: bad setting \"%s\"\n", sets[i]);
            rc = 2;
        }
    }
    if (rc == 0 && pid_file && swoop_server_set(srv, "pid_file", pid_file) < 0)
        rc = 2;
    swoop_sock_type_t type = strchr(host, ':') ? SWOOP_SOCK_TCP6 : SWOOP_SOCK_TCP;
    swoop_port_t *p = NULL;
    if (rc == 0 && swoop_server_listen(srv, host, port, type, &p) < 0) {
        fprintf(stderr, "swoop demo: cannot listen on %s:%d\n", host, port);
        rc = 1;
    }
    if (rc == 0) {
        swoop_server_on(srv, &(swoop_server_events_t){.on_start = on_start,
                                                      .on_manager_start = on_manager_start,
                                                      .on_worker_error = on_worker_error,
                                                      .on_connect = on_connect,
                                                      .on_receive = on_receive});
        snprintf(demo_addr, sizeof(demo_addr), "%s %d", host, swoop_port_number(p));
        printf("swoop demo %s: a line-protocol server on %s:%d (%s mode); Ctrl-C stops it\n",
               swoop_version(), host, swoop_port_number(p),
               mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS");
        fflush(stdout);
        rc = swoop_server_start(srv) == 0 ? 0 : 1;
    }
    swoop_server_free(srv);
    return rc;
}
