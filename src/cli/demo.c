/*
 * `swoop demo`: the project's main job until the server lands. It shows the
 * pieces built so far working together and prints what each does:
 *   - a 1 ms tick, with how many beats ran each second and how late they were;
 *   - one-shot timers, and a tick that clears itself;
 *   - a thread posting callbacks into the loop (swoop_loop_post);
 *   - two forked processes counting into a shared table and a shared atomic;
 *   - SIGINT / SIGTERM / SIGCHLD handled as loop events.
 * Options: --duration SEC (default: until Ctrl-C), --children N (default 2).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swoop/swoop.h>

#include "cli/cli.h"

#define CHILD_INCREMENTS 100000
#define MAX_CHILDREN     8

struct demo {
    swoop_loop_t *loop;
    uint64_t start_ns;
    /* 1 ms tick: beats and lateness over the current second */
    uint64_t tick_armed_ns;
    long beats;
    int64_t worst_late_ns;
    int64_t sum_late_ns;
    int seconds;
    int duration;
    /* shared memory */
    swoop_table_t *table;
    swoop_atomic_t *atomic;
    int children;
    int children_left;
    pid_t pids[MAX_CHILDREN];
    /* the posting thread */
    pthread_t thread;
    atomic_int thread_stop;
    int posts;
    swoop_signal_t sigint, sigterm, sigchld;
    int64_t tick_id, status_id;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double elapsed_ms(const struct demo *d)
{
    return (double)(now_ns() - d->start_ns) / 1e6;
}

static void on_fast_tick(int64_t id, void *arg)
{
    struct demo *d = arg;
    uint64_t now = now_ns();
    /*
     * The tick is grid-aligned and never early: the beat being served is the
     * last grid point at or before now (armed time read just before arming,
     * so this overstates lateness by a few microseconds, never understates).
     */
    uint64_t since = now - d->tick_armed_ns;
    int64_t late = (int64_t)(since % 1000000);
    d->beats++;
    d->sum_late_ns += late;
    if (late > d->worst_late_ns)
        d->worst_late_ns = late;
}

static void stop_demo(struct demo *d, const char *why)
{
    printf("[%9.1f ms] %s: stopping\n", elapsed_ms(d), why);
    swoop_timer_clear_all();
    atomic_store(&d->thread_stop, 1);
    swoop_signal_stop(&d->sigint);
    swoop_signal_stop(&d->sigterm);
    if (d->children_left == 0)
        swoop_signal_stop(&d->sigchld);
}

static void on_status(int64_t id, void *arg)
{
    struct demo *d = arg;
    d->seconds++;
    printf("[%9.1f ms] tick(1): %ld beats in the last second, lateness avg %.1f us, max %.1f us;"
           " %d posts from the thread\n",
           elapsed_ms(d), d->beats, d->beats ? (double)d->sum_late_ns / (double)d->beats / 1e3 : 0,
           (double)d->worst_late_ns / 1e3, d->posts);
    fflush(stdout);
    d->beats = 0;
    d->sum_late_ns = 0;
    d->worst_late_ns = 0;
    if (d->duration > 0 && d->seconds >= d->duration)
        stop_demo(d, "duration reached");
}

struct once {
    struct demo *demo;
    int64_t ms;
    uint64_t armed_ns;
};

static void on_after(int64_t id, void *arg)
{
    struct once *o = arg;
    double took = (double)(now_ns() - o->armed_ns) / 1e6;
    printf("[%9.1f ms] after(%lld) fired %.3f ms after it was armed (id %lld)\n",
           elapsed_ms(o->demo), (long long)o->ms, took, (long long)id);
}

static void on_short_tick(int64_t id, void *arg)
{
    struct demo *d = arg;
    swoop_timer_info_t info;
    if (swoop_timer_info(id, &info) == 0) {
        printf("[%9.1f ms] tick(300) run %llu%s\n", elapsed_ms(d), (unsigned long long)info.runs,
               info.runs == 3 ? ": clears itself" : "");
        if (info.runs == 3)
            swoop_timer_clear(id);
    }
}

static void on_post(swoop_loop_t *loop, void *arg)
{
    struct demo *d = arg;
    d->posts++;
}

static void *poster(void *arg)
{
    struct demo *d = arg;
    while (!atomic_load(&d->thread_stop)) {
        swoop_loop_post(d->loop, on_post, d);
        struct timespec ts = {0, 250 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void on_stop_signal(swoop_signal_t *sig, int signo)
{
    stop_demo(sig->data, signo == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_sigchld(swoop_signal_t *sig, int signo)
{
    struct demo *d = sig->data;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        d->children_left--;
        printf("[%9.1f ms] child %d exited with status %d\n", elapsed_ms(d), (int)pid,
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    if (d->children_left == 0) {
        int64_t total = 0;
        swoop_table_get_int(d->table, "hits", "count", &total);
        printf("[%9.1f ms] all %d children done: table row 'hits' = %lld, atomic = %lld"
               " (expected %d each)\n",
               elapsed_ms(d), d->children, (long long)total, (long long)swoop_atomic_get(d->atomic),
               d->children * CHILD_INCREMENTS);
        if (atomic_load(&d->thread_stop))
            swoop_signal_stop(&d->sigchld);
    }
}

static void child_count(struct demo *d)
{
    for (int i = 0; i < CHILD_INCREMENTS; i++) {
        swoop_table_incr(d->table, "hits", "count", 1, NULL);
        swoop_atomic_add(d->atomic, 1);
    }
    _exit(0);
}

int swoop_cli_demo(int argc, char **argv)
{
    struct demo d;
    memset(&d, 0, sizeof(d));
    d.children = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
            d.duration = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--children") == 0 && i + 1 < argc) {
            d.children = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: swoop demo [--duration SEC] [--children N]\n");
            return 2;
        }
    }
    if (d.children < 0 || d.children > MAX_CHILDREN || d.duration < 0) {
        fprintf(stderr, "swoop demo: --children must be 0..%d, --duration >= 0\n", MAX_CHILDREN);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("swoop %s demo (pid %d): event loop, timers, cross-thread posts, shared memory.\n"
           "Stop it with Ctrl-C%s.\n",
           swoop_version(), (int)getpid(), d.duration ? " or wait for --duration" : "");

    /* Shared memory is made before fork; children inherit the mapping. */
    int rc = swoop_table_new(&d.table, 16, 0.2);
    if (rc == 0)
        rc = swoop_table_column(d.table, "count", SWOOP_TABLE_INT, 8);
    if (rc == 0)
        rc = swoop_table_create(d.table);
    if (rc == 0)
        rc = swoop_atomic_new(&d.atomic, 0);
    if (rc < 0) {
        fprintf(stderr, "swoop demo: shared memory: %s\n", swoop_strerror(rc));
        return 1;
    }

    d.loop = swoop_loop_default();
    if (d.loop == NULL)
        return 1;
    d.start_ns = now_ns();
    swoop_signal_init(d.loop, &d.sigint, on_stop_signal);
    swoop_signal_init(d.loop, &d.sigterm, on_stop_signal);
    swoop_signal_init(d.loop, &d.sigchld, on_sigchld);
    d.sigint.data = d.sigterm.data = d.sigchld.data = &d;
    swoop_signal_start(&d.sigint, SIGINT);
    swoop_signal_start(&d.sigterm, SIGTERM);
    swoop_signal_start(&d.sigchld, SIGCHLD);

    /* Fork while single-threaded; the child does not inherit the loop. */
    for (int i = 0; i < d.children; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            break;
        }
        if (pid == 0)
            child_count(&d);
        d.pids[i] = pid;
        d.children_left++;
        printf("[%9.1f ms] forked child %d: %d increments of a shared table row and atomic\n",
               elapsed_ms(&d), (int)pid, CHILD_INCREMENTS);
    }

    d.tick_armed_ns = now_ns();
    d.tick_id = swoop_timer_tick(1, on_fast_tick, &d);
    d.status_id = swoop_timer_tick(1000, on_status, &d);
    static struct once onces[3];
    int64_t delays[3] = {50, 500, 2500};
    for (int i = 0; i < 3; i++) {
        onces[i] = (struct once){&d, delays[i], now_ns()};
        swoop_timer_after(delays[i], on_after, &onces[i]);
    }
    swoop_timer_tick(300, on_short_tick, &d);
    if (pthread_create(&d.thread, NULL, poster, &d) != 0) {
        fprintf(stderr, "swoop demo: pthread_create failed\n");
        return 1;
    }

    swoop_loop_run(d.loop);
    atomic_store(&d.thread_stop, 1);
    pthread_join(d.thread, NULL);
    /* Posts the thread made after the loop stopped still run here. */
    swoop_loop_run(d.loop);
    int64_t total = 0;
    swoop_table_get_int(d.table, "hits", "count", &total);
    printf("done: %d posts received, table 'hits' = %lld\n", d.posts, (long long)total);
    swoop_loop_free(d.loop);
    swoop_table_free(d.table);
    swoop_atomic_free(d.atomic);
    return 0;
}
