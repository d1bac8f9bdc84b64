/*
 * Timers: after, tick, clearing from inside a callback, info and stats.
 *
 *   ./timers
 */
#include <stdio.h>

#include <swoop/swoop.h>

static void once(int64_t id, void *arg)
{
    printf("after: %s (timer %lld)\n", (const char *)arg, (long long)id);
}

static void every(int64_t id, void *arg)
{
    swoop_timer_info_t info;
    swoop_timer_info(id, &info);
    printf("tick %llu of %s\n", (unsigned long long)info.runs, (const char *)arg);
    if (info.runs == 3) {
        printf("tick clears itself\n");
        swoop_timer_clear(id);
    }
}

int main(void)
{
    swoop_timer_after(250, once, "a quarter second");
    int64_t never = swoop_timer_after(10000, once, "never printed");
    swoop_timer_tick(100, every, "a 100 ms tick");
    swoop_timer_clear(never);

    swoop_timer_stats_t st;
    swoop_timer_stats(&st);
    printf("%llu timers pending\n", (unsigned long long)st.count);

    swoop_loop_run(swoop_loop_default()); /* returns when no timer is left */
    swoop_timer_stats(&st);
    printf("done: %llu callbacks in %llu passes\n", (unsigned long long)st.fired,
           (unsigned long long)st.round);
    return swoop_loop_free(swoop_loop_default());
}
