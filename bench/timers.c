/*
 * Timer benchmark: swoop against libuv in the same run (this machine is
 * shared and noisy, so only ratios measured side by side mean anything).
 *
 *   1,000,000 timers: add all, fire all, add then clear all. ns per timer,
 *   CPU time of the phase (the fire phase sleeps between expiries; CPU time
 *   leaves the sleeping out). Timeouts are spread over 1..50 ms in a
 *   scrambled order, so the heap does real work. Best of 3 rounds.
 *   Lateness: 1,000 timers spread over 1..50 ms; fire time minus due time.
 *   tick(1) for 2 s: how many times it runs (ideal 2,000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include <swoop/loop.h>
#include <swoop/timer.h>

#define N_TIMERS 1000000
#define ROUNDS   3

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t timeout_of(int i)
{
    /* A fixed scramble of 1..50 ms. */
    return 1 + (int64_t)(((uint64_t)i * 2654435761u) % 50);
}

struct phase {
    double add, fire, clear;
};

/* ---- swoop ---- */

static long swoop_fired;

static void swoop_cb(int64_t id, void *arg)
{
    swoop_fired++;
}

static struct phase bench_swoop(void)
{
    swoop_loop_t *loop;
    if (swoop_loop_new(&loop) < 0)
        abort();
    int64_t *ids = malloc(sizeof(*ids) * N_TIMERS);
    struct phase p;

    uint64_t t0 = cpu_ns();
    for (int i = 0; i < N_TIMERS; i++)
        ids[i] = swoop_loop_timer_after(loop, timeout_of(i), swoop_cb, NULL);
    uint64_t t1 = cpu_ns();
    swoop_fired = 0;
    swoop_loop_run(loop);
    uint64_t t2 = cpu_ns();
    if (swoop_fired != N_TIMERS)
        abort();

    for (int i = 0; i < N_TIMERS; i++)
        ids[i] = swoop_loop_timer_after(loop, timeout_of(i), swoop_cb, NULL);
    uint64_t t3 = cpu_ns();
    for (int i = 0; i < N_TIMERS; i++)
        swoop_loop_timer_clear(loop, ids[i]);
    uint64_t t4 = cpu_ns();

    p.add = (double)(t1 - t0) / N_TIMERS;
    p.fire = (double)(t2 - t1) / N_TIMERS;
    p.clear = (double)(t4 - t3) / N_TIMERS;
    free(ids);
    swoop_loop_free(loop);
    return p;
}

/* ---- libuv ---- */

static long uv_fired;

static void uv_cb(uv_timer_t *t)
{
    uv_fired++;
}

static struct phase bench_uv(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t *timers = malloc(sizeof(*timers) * N_TIMERS);
    struct phase p;

    uint64_t t0 = cpu_ns();
    for (int i = 0; i < N_TIMERS; i++) {
        uv_timer_init(&loop, &timers[i]);
        uv_timer_start(&timers[i], uv_cb, (uint64_t)timeout_of(i), 0);
    }
    uint64_t t1 = cpu_ns();
    uv_fired = 0;
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t t2 = cpu_ns();
    if (uv_fired != N_TIMERS)
        abort();

    for (int i = 0; i < N_TIMERS; i++)
        uv_timer_start(&timers[i], uv_cb, (uint64_t)timeout_of(i), 0);
    uint64_t t3 = cpu_ns();
    for (int i = 0; i < N_TIMERS; i++)
        uv_timer_stop(&timers[i]);
    uint64_t t4 = cpu_ns();

    p.add = (double)(t1 - t0) / N_TIMERS;
    p.fire = (double)(t2 - t1) / N_TIMERS;
    p.clear = (double)(t4 - t3) / N_TIMERS;
    for (int i = 0; i < N_TIMERS; i++)
        uv_close((uv_handle_t *)&timers[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(timers);
    return p;
}

static void keep_best(struct phase *best, struct phase p, int first)
{
    if (first || p.add < best->add)
        best->add = p.add;
    if (first || p.fire < best->fire)
        best->fire = p.fire;
    if (first || p.clear < best->clear)
        best->clear = p.clear;
}

/* ---- lateness ---- */

#define N_LATE 1000

struct late {
    uint64_t due_ns;
    int64_t late_ns;
};

static struct late late_s[N_LATE], late_u[N_LATE];
static uv_timer_t late_uv[N_LATE];

static void swoop_late_cb(int64_t id, void *arg)
{
    struct late *l = arg;
    l->late_ns = (int64_t)(mono_ns() - l->due_ns);
}

static void uv_late_cb(uv_timer_t *t)
{
    struct late *l = t->data;
    l->late_ns = (int64_t)(mono_ns() - l->due_ns);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void percentiles(struct late *l, double *p50, double *p99, double *max)
{
    int64_t v[N_LATE];
    for (int i = 0; i < N_LATE; i++)
        v[i] = l[i].late_ns;
    qsort(v, N_LATE, sizeof(v[0]), cmp_i64);
    *p50 = (double)v[N_LATE / 2] / 1000.0;
    *p99 = (double)v[N_LATE * 99 / 100] / 1000.0;
    *max = (double)v[N_LATE - 1] / 1000.0;
}

static void bench_lateness(void)
{
    swoop_loop_t *loop;
    swoop_loop_new(&loop);
    for (int i = 0; i < N_LATE; i++) {
        int64_t ms = 1 + i % 50;
        late_s[i].due_ns = mono_ns() + (uint64_t)ms * 1000000u;
        swoop_loop_timer_after(loop, ms, swoop_late_cb, &late_s[i]);
    }
    swoop_loop_run(loop);
    swoop_loop_free(loop);

    uv_loop_t uv;
    uv_loop_init(&uv);
    for (int i = 0; i < N_LATE; i++) {
        int64_t ms = 1 + i % 50;
        uv_update_time(&uv);
        late_u[i].due_ns = mono_ns() + (uint64_t)ms * 1000000u;
        uv_timer_init(&uv, &late_uv[i]);
        late_uv[i].data = &late_u[i];
        uv_timer_start(&late_uv[i], uv_late_cb, (uint64_t)ms, 0);
    }
    uv_run(&uv, UV_RUN_DEFAULT);
    for (int i = 0; i < N_LATE; i++)
        uv_close((uv_handle_t *)&late_uv[i], NULL);
    uv_run(&uv, UV_RUN_DEFAULT);
    uv_loop_close(&uv);

    double s50, s99, smax, u50, u99, umax;
    percentiles(late_s, &s50, &s99, &smax);
    percentiles(late_u, &u50, &u99, &umax);
    printf("\nlateness of %d timers over 1..50 ms (us; negative would be early)\n", N_LATE);
    printf("%-8s %10s %10s %10s\n", "", "p50", "p99", "max");
    printf("%-8s %10.1f %10.1f %10.1f\n", "swoop", s50, s99, smax);
    printf("%-8s %10.1f %10.1f %10.1f\n", "libuv", u50, u99, umax);
}

/* ---- tick(1) for 2 s ---- */

static long ticks_s, ticks_u;
static uint64_t tick_end;

static void swoop_tick_cb(int64_t id, void *arg)
{
    ticks_s++;
    if (mono_ns() >= tick_end)
        swoop_loop_timer_clear(arg, id);
}

static void uv_tick_cb(uv_timer_t *t)
{
    ticks_u++;
    if (mono_ns() >= tick_end)
        uv_timer_stop(t);
}

static void bench_tick(void)
{
    swoop_loop_t *loop;
    swoop_loop_new(&loop);
    tick_end = mono_ns() + 2000000000u;
    swoop_loop_timer_tick(loop, 1, swoop_tick_cb, loop);
    swoop_loop_run(loop);
    swoop_loop_free(loop);

    uv_loop_t uv;
    uv_timer_t t;
    uv_loop_init(&uv);
    uv_timer_init(&uv, &t);
    tick_end = mono_ns() + 2000000000u;
    uv_timer_start(&t, uv_tick_cb, 1, 1);
    uv_run(&uv, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&uv, UV_RUN_DEFAULT);
    uv_loop_close(&uv);

    printf("\ntick(1) runs in 2 s (ideal 2000)\n");
    printf("%-8s %10ld\n%-8s %10ld\n", "swoop", ticks_s, "libuv", ticks_u);
}

int main(void)
{
    struct phase s = {0}, u = {0};
    for (int r = 0; r < ROUNDS; r++) {
        /* Alternate so drift in machine load hits both sides alike. */
        keep_best(&u, bench_uv(), r == 0);
        keep_best(&s, bench_swoop(), r == 0);
    }
    printf("%d timers, ns per timer (CPU time, best of %d; ratio < 1 means swoop is faster)\n",
           N_TIMERS, ROUNDS);
    printf("%-22s %10s %10s %8s\n", "phase", "swoop", "libuv", "ratio");
    printf("%-22s %10.1f %10.1f %8.2f\n", "add", s.add, u.add, s.add / u.add);
    printf("%-22s %10.1f %10.1f %8.2f\n", "fire", s.fire, u.fire, s.fire / u.fire);
    printf("%-22s %10.1f %10.1f %8.2f\n", "clear (after add)", s.clear, u.clear, s.clear / u.clear);
    bench_lateness();
    bench_tick();
    return 0;
}
