/*
 * Task workers: every line a client sends is reversed in a task worker (a
 * stand-in for blocking work an event worker must not do), and the event
 * worker that posted the task replies from on_finish. A line "die" kills
 * the task worker that runs it: with task_redeliver 1 the task runs again
 * in another task worker (attempt 2), which answers it.
 *   task_demo [process|base] [port] [task_ipc_mode 1|2|3]
 * Stop it with Ctrl-C or SIGTERM to the pid it prints.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <swoop/swoop.h>

/* A task: the connection to answer, then the line. */
typedef struct job_s {
    swoop_conn_id_t conn;
    char line[256];
} job_t;

static void on_receive(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len)
{
    job_t job = {.conn = conn};
    while (len > 0 &&
           (((const char *)data)[len - 1] == '\n' || ((const char *)data)[len - 1] == '\r'))
        len--;
    if (len > 200)
        len = 200; /* room for the reply's suffix */
    memcpy(job.line, data, len);
    int64_t id = swoop_server_task(srv, &job, sizeof(job), -1);
    if (id < 0) {
        char err[128];
        int n = snprintf(err, sizeof(err), "error: %s\n", swoop_strerror((int)id));
        swoop_server_send(srv, conn, err, (size_t)n);
    }
}

/* Runs in a task worker: blocking is fine here. */
static void on_task(swoop_server_t *srv, int64_t task_id, int src_worker_id, const void *data,
                    size_t len)
{
    job_t job;
    if (len != sizeof(job))
        return;
    memcpy(&job, data, sizeof(job));
    if (strcmp(job.line, "die") == 0 && swoop_server_task_attempt(srv) == 1)
        raise(SIGKILL); /* the manager restarts us and delivers the task again */
    job_t out = {.conn = job.conn};
    size_t n = strlen(job.line);
    for (size_t i = 0; i < n; i++)
        out.line[i] = job.line[n - 1 - i];
    snprintf(out.line + n, sizeof(out.line) - n, " (task worker %d, attempt %d)\n",
             swoop_server_worker_id(srv), swoop_server_task_attempt(srv));
    swoop_server_task_finish(srv, &out, sizeof(out));
}

/* Runs in the event worker that posted the task. */
static void on_finish(swoop_server_t *srv, int64_t task_id, const void *data, size_t len)
{
    job_t job;
    if (len != sizeof(job))
        return;
    memcpy(&job, data, sizeof(job));
    swoop_server_send(srv, job.conn, job.line, strlen(job.line));
}

static void on_task_error(swoop_server_t *srv, int64_t task_id, int error)
{
    fprintf(stderr, "task_demo: task %lld failed: %s\n", (long long)task_id, swoop_strerror(error));
}

static void on_start(swoop_server_t *srv)
{
    printf("task_demo: master pid %d\n", (int)getpid());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    swoop_mode_t mode =
        argc > 1 && strcmp(argv[1], "base") == 0 ? SWOOP_MODE_BASE : SWOOP_MODE_PROCESS;
    int port = argc > 2 ? atoi(argv[2]) : 9501;
    swoop_server_t *srv;
    swoop_port_t *p;
    if (swoop_server_new(&srv, mode) < 0 ||
        swoop_server_listen(srv, "127.0.0.1", port, SWOOP_SOCK_TCP, &p) < 0)
        return 1;
    swoop_server_set(srv, "worker_num", "2");
    swoop_server_set(srv, "task_worker_num", "2");
    swoop_server_set(srv, "task_redeliver", "1");
    if (argc > 3 && swoop_server_set(srv, "task_ipc_mode", argv[3]) < 0)
        return 1;
    swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_receive,
                                                  .on_task = on_task,
                                                  .on_finish = on_finish,
                                                  .on_task_error = on_task_error,
                                                  .on_start = on_start});
    printf("task_demo: %s mode on 127.0.0.1:%d, task_ipc_mode %d\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", swoop_port_number(p),
           swoop_server_settings(srv)->task_ipc_mode);
    fflush(stdout);
    int rc = swoop_server_start(srv);
    swoop_server_free(srv);
    return rc == 0 ? 0 : 1;
}
