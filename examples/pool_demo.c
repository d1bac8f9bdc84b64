/*
 * pool_demo: a process pool of 3 workers. The manager sends each worker a
 * message every 500 ms (a manager-side timer); each worker counts messages
 * and its own 1 s timer ticks and prints them with its pid. max_request = 8
 * shows workers being recycled. Try: kill -9 a worker pid (it comes back
 * with the same id), kill -USR1 <manager> (reload), Ctrl-C or kill <manager>
 * (shutdown).
 *
 *   ./pool_demo [ipc_mode]      ipc_mode: pipe (default) or msgqueue
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <swoop/swoop.h>

#define WORKERS 3

static int messages, ticks; /* per worker process */

static void on_worker_tick(int64_t id, void *arg)
{
    swoop_pool_t *pool = arg;
    ticks++;
    printf("worker %d pid %d: %d messages, %d ticks\n", swoop_pool_worker_id(pool), (int)getpid(),
           messages, ticks);
    fflush(stdout);
}

static void on_worker_start(swoop_pool_t *pool, int worker_id)
{
    printf("worker %d started, pid %d\n", worker_id, (int)getpid());
    fflush(stdout);
    swoop_timer_tick(1000, on_worker_tick, pool);
}

static void on_worker_stop(swoop_pool_t *pool, int worker_id)
{
    printf("worker %d pid %d stopping after %d messages\n", worker_id, (int)getpid(), messages);
    fflush(stdout);
}

static void on_message(swoop_pool_t *pool, int worker_id, const void *data, size_t len)
{
    messages++;
    swoop_pool_count_request(pool); /* one request toward max_request */
}

static void on_manager_tick(int64_t id, void *arg)
{
    static unsigned seq;
    swoop_pool_t *pool = arg;
    char msg[64];
    int n = snprintf(msg, sizeof(msg), "message %u", seq++);
    for (int w = 0; w < WORKERS; w++) {
        int rc = swoop_pool_send(pool, w, msg, (size_t)n);
        if (rc < 0)
            fprintf(stderr, "send to worker %d: %s\n", w, swoop_strerror(rc));
    }
}

static void on_start(swoop_pool_t *pool)
{
    printf("manager pid %d: %d workers\n", (int)getpid(), WORKERS);
    fflush(stdout);
    swoop_timer_tick(500, on_manager_tick, pool);
}

static void on_worker_error(swoop_pool_t *pool, int worker_id, pid_t pid, int code, int signo)
{
    printf("worker %d pid %d died (exit code %d, signal %d): restarting\n", worker_id, (int)pid,
           code, signo);
    fflush(stdout);
}

static void on_shutdown(swoop_pool_t *pool)
{
    printf("all workers stopped\n");
}

int main(int argc, char **argv)
{
    swoop_pool_t *pool;
    int rc = swoop_pool_new(&pool, WORKERS);
    if (rc < 0) {
        fprintf(stderr, "swoop_pool_new: %s\n", swoop_strerror(rc));
        return 1;
    }
    const char *mode = argc > 1 ? argv[1] : "pipe";
    if ((rc = swoop_pool_set(pool, "ipc_mode", mode)) < 0 ||
        (rc = swoop_pool_set(pool, "max_request", "8")) < 0 ||
        (rc = swoop_pool_set(pool, "max_wait_time", "2")) < 0) {
        fprintf(stderr, "swoop_pool_set: %s\n", swoop_strerror(rc));
        swoop_pool_free(pool);
        return 1;
    }
    swoop_pool_on(pool, &(swoop_pool_events_t){.on_start = on_start,
                                               .on_worker_start = on_worker_start,
                                               .on_worker_stop = on_worker_stop,
                                               .on_worker_error = on_worker_error,
                                               .on_message = on_message,
                                               .on_shutdown = on_shutdown});
    rc = swoop_pool_start(pool); /* blocks until SIGTERM / Ctrl-C */
    if (rc < 0)
        fprintf(stderr, "swoop_pool_start: %s\n", swoop_strerror(rc));
    swoop_pool_free(pool);
    return rc < 0 ? 1 : 0;
}
