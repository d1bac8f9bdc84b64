/* Timer semantics: never early, FIFO ties, next-pass rule, clear inside callbacks, ticks. */
#include <swoop/timer.h>

#include <time.h>

#include <swoop/error.h>

#include "base/clock.h"
#include "test.h"

struct after_ctx {
    uint64_t armed_ns;
    uint64_t fired_ns;
    int64_t ms;
    int fired;
};

static void on_after(int64_t id, void *arg)
{
    struct after_ctx *c = arg;
    c->fired_ns = swoop__clock_ns();
    c->fired++;
}

TEST(after_never_fires_early)
{
    enum { N = 40 };
    struct after_ctx c[N];
    memset(c, 0, sizeof(c));
    for (int i = 0; i < N; i++) {
        c[i].ms = 1 + i % 13;
        c[i].armed_ns = swoop__clock_ns();
        ASSERT_GT(swoop_timer_after(c[i].ms, on_after, &c[i]), 0);
    }
    ASSERT_EQ(swoop_loop_run(swoop_loop_default()), 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(c[i].fired, 1);
        ASSERT_UGE(c[i].fired_ns - c[i].armed_ns, (uint64_t)c[i].ms * 1000000u);
    }
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
}

TEST(invalid_arguments)
{
    ASSERT_EQ(swoop_timer_after(0, on_after, NULL), SWOOP_EINVAL);
    ASSERT_EQ(swoop_timer_after(-5, on_after, NULL), SWOOP_EINVAL);
    ASSERT_EQ(swoop_timer_tick(0, on_after, NULL), SWOOP_EINVAL);
    ASSERT_EQ(swoop_timer_tick(10, NULL, NULL), SWOOP_EINVAL);
    ASSERT_EQ(swoop_timer_after(INT64_MAX, on_after, NULL), SWOOP_ERANGE);
    ASSERT_EQ(swoop_timer_clear(12345678), SWOOP_ENOENT);
    ASSERT_EQ(swoop_timer_clear(-1), SWOOP_ENOENT);
    swoop_timer_info_t info;
    ASSERT_EQ(swoop_timer_info(99999999, &info), SWOOP_ENOENT);
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
}

static int order[16];
static int order_len;

static void record(int64_t id, void *arg)
{
    order[order_len++] = (int)(intptr_t)arg;
}

TEST(equal_deadlines_fire_in_insertion_order)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    /* Arm them so close together that most share the same expiry in ms. */
    for (int i = 0; i < 8; i++)
        ASSERT_GT(swoop_loop_timer_after(loop, 5, record, (void *)(intptr_t)i), 0);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(order_len, 8);
    for (int i = 0; i < 8; i++)
        ASSERT_EQ(order[i], i);
    ASSERT_OK(swoop_loop_free(loop));
}

struct nested {
    swoop_loop_t *loop;
    uint64_t round_of_parent;
    uint64_t round_of_child;
    int64_t child;
};

static void nested_child(int64_t id, void *arg)
{
    struct nested *n = arg;
    swoop_timer_stats_t st;
    swoop_loop_timer_stats(n->loop, &st);
    n->round_of_child = st.round;
}

static void nested_parent(int64_t id, void *arg)
{
    struct nested *n = arg;
    swoop_timer_stats_t st;
    swoop_loop_timer_stats(n->loop, &st);
    n->round_of_parent = st.round;
    /* Busy past the child's deadline, so it is already due when the pass goes on. */
    n->child = swoop_loop_timer_after(n->loop, 1, nested_child, n);
    uint64_t until = swoop__clock_ns() + 3000000;
    while (swoop__clock_ns() < until)
        ;
}

TEST(timer_added_in_callback_waits_for_next_pass)
{
    struct nested n = {0};
    ASSERT_OK(swoop_loop_new(&n.loop));
    ASSERT_GT(swoop_loop_timer_after(n.loop, 2, nested_parent, &n), 0);
    ASSERT_EQ(swoop_loop_run(n.loop), 0);
    ASSERT_GT(n.child, 0);
    ASSERT_GT(n.round_of_parent, 0);
    ASSERT_GT(n.round_of_child, n.round_of_parent);
    ASSERT_OK(swoop_loop_free(n.loop));
}

struct tick_ctx {
    swoop_loop_t *loop;
    int runs;
    int stop_at;
    int64_t other;
    int other_runs;
};

static void other_cb(int64_t id, void *arg)
{
    struct tick_ctx *c = arg;
    c->other_runs++;
}

static void self_clearing_tick(int64_t id, void *arg)
{
    struct tick_ctx *c = arg;
    c->runs++;
    swoop_timer_info_t info;
    ASSERT_OK(swoop_loop_timer_info(c->loop, id, &info));
    ASSERT_EQ(info.interval_ms, 2);
    ASSERT_UEQ(info.runs, (uint64_t)c->runs);
    if (c->runs == 1) {
        /* Clear another pending timer from inside a callback. */
        ASSERT_OK(swoop_loop_timer_clear(c->loop, c->other));
        ASSERT_EQ(swoop_loop_timer_clear(c->loop, c->other), SWOOP_ENOENT);
    }
    if (c->runs == c->stop_at) {
        ASSERT_OK(swoop_loop_timer_clear(c->loop, id));
        /* Clearing twice, and arming right after, must not disturb the freed node. */
        ASSERT_EQ(swoop_loop_timer_clear(c->loop, id), SWOOP_ENOENT);
        ASSERT_GT(swoop_loop_timer_after(c->loop, 1, other_cb, c), 0);
    }
}

TEST(tick_clears_itself_and_others)
{
    struct tick_ctx c = {0};
    c.stop_at = 5;
    ASSERT_OK(swoop_loop_new(&c.loop));
    int64_t id = swoop_loop_timer_tick(c.loop, 2, self_clearing_tick, &c);
    ASSERT_GT(id, 0);
    c.other = swoop_loop_timer_after(c.loop, 500, other_cb, &c);
    ASSERT_GT(c.other, id); /* ids increase */
    ASSERT_EQ(swoop_loop_run(c.loop), 0);
    ASSERT_EQ(c.runs, 5);
    ASSERT_EQ(c.other_runs, 1); /* only the timer armed at the end */
    swoop_timer_stats_t st;
    swoop_loop_timer_stats(c.loop, &st);
    ASSERT_UEQ(st.count, 0);
    ASSERT_UEQ(st.fired, 6);
    ASSERT_OK(swoop_loop_free(c.loop));
}

struct late_ctx {
    swoop_loop_t *loop;
    uint64_t start_ns;
    uint64_t fire_ns[8];
    int runs;
};

static void late_tick(int64_t id, void *arg)
{
    struct late_ctx *c = arg;
    c->fire_ns[c->runs++] = swoop__clock_ns();
    if (c->runs == 1) {
        /* Stall for 5 beats: they must be skipped, not replayed in a burst. */
        uint64_t until = swoop__clock_ns() + 52000000;
        while (swoop__clock_ns() < until)
            ;
    }
    if (c->runs == 3)
        swoop_loop_timer_clear(c->loop, id);
}

TEST(late_tick_skips_missed_beats)
{
    struct late_ctx c = {0};
    ASSERT_OK(swoop_loop_new(&c.loop));
    c.start_ns = swoop__clock_ns();
    ASSERT_GT(swoop_loop_timer_tick(c.loop, 10, late_tick, &c), 0);
    ASSERT_EQ(swoop_loop_run(c.loop), 0);
    ASSERT_EQ(c.runs, 3);
    /*
     * The first run stalls until ~62 ms; the second run comes at the next grid
     * beat after that (70 ms), not at once for a beat already missed.
     */
    uint64_t second = c.fire_ns[1] - c.start_ns;
    ASSERT_UGE(second, 70000000u);
    /* The third is on the grid too (80 ms), whatever the second's lateness. */
    uint64_t third = c.fire_ns[2] - c.start_ns;
    ASSERT_UGE(third, 80000000u);
    ASSERT_OK(swoop_loop_free(c.loop));
}

static void count_cb(int64_t id, void *arg)
{
    (*(int *)arg)++;
}

TEST(clear_all_and_info)
{
    int fired = 0;
    int64_t ids[10];
    for (int i = 0; i < 10; i++) {
        ids[i] = i % 2 ? swoop_timer_tick(1000 + i, count_cb, &fired)
                       : swoop_timer_after(1000 + i, count_cb, &fired);
        ASSERT_GT(ids[i], 0);
        if (i > 0)
            ASSERT_GT(ids[i], ids[i - 1]);
    }
    swoop_timer_info_t info;
    ASSERT_OK(swoop_timer_info(ids[3], &info));
    ASSERT_EQ(info.interval_ms, 1003);
    ASSERT_UEQ(info.runs, 0);
    ASSERT_UGE(info.expire_ms, swoop_loop_now(swoop_loop_default()) + 1003);
    ASSERT_OK(swoop_timer_info(ids[4], &info));
    ASSERT_EQ(info.interval_ms, 0);
    swoop_timer_stats_t st;
    swoop_timer_stats(&st);
    ASSERT_UEQ(st.count, 10);
    swoop_timer_clear_all();
    swoop_timer_stats(&st);
    ASSERT_UEQ(st.count, 0);
    ASSERT_EQ(swoop_timer_clear(ids[0]), SWOOP_ENOENT);
    ASSERT_EQ(swoop_loop_run(swoop_loop_default()), 0);
    ASSERT_EQ(fired, 0);
    /* Timers still pending when the loop is freed are dropped (LSan checks the memory). */
    ASSERT_GT(swoop_timer_after(50, count_cb, &fired), 0);
    ASSERT_GT(swoop_timer_tick(50, count_cb, &fired), 0);
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
}

static void clear_all_inside(int64_t id, void *arg)
{
    swoop_loop_t *loop = arg;
    swoop_loop_timer_clear_all(loop);
}

TEST(clear_all_inside_callback)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    int fired = 0;
    ASSERT_GT(swoop_loop_timer_tick(loop, 1, clear_all_inside, loop), 0);
    for (int i = 0; i < 5; i++)
        ASSERT_GT(swoop_loop_timer_after(loop, 100, count_cb, &fired), 0);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(fired, 0);
    ASSERT_OK(swoop_loop_free(loop));
}
