/*
 * 100,000 random add / clear / advance operations checked against a model:
 * every timer fires exactly once unless cleared (ticks until cleared), never
 * before its expiry, never after being cleared, passes run due timers in
 * (expiry, arming order), and the heap stays valid throughout. Time is
 * simulated by moving the loop's cached clock forward and running the timer
 * pass directly, so the test does not wait.
 */
#include <swoop/timer.h>

#include <stdlib.h>

#include <swoop/error.h>

#include "base/clock.h"
#include "event/internal.h"
#include "test.h"

#define OPS        100000
#define MAX_TIMERS 20000

enum { DEAD = 0, LIVE, CLEARED, DONE };

struct model {
    swoop_loop_t *loop;
    int64_t ids[MAX_TIMERS];
    int state[MAX_TIMERS];
    int is_tick[MAX_TIMERS];
    uint64_t fires[MAX_TIMERS];
    uint64_t armed_round[MAX_TIMERS];
    int n;
    uint64_t last_key, last_seq; /* order within one pass */
    uint64_t pass;
    uint64_t pass_of_last;
    int live_ids[MAX_TIMERS];
    int live;
};

static struct model m;

static void add_timer(void);

static void on_fire(int64_t id, void *arg)
{
    int i = (int)(intptr_t)arg;
    ASSERT_EQ(m.ids[i], id);
    ASSERT_EQ(m.state[i], LIVE);
    swoop_timer_node_t *node = swoop__idmap_get(&m.loop->timer_ids, id);
    ASSERT_NOT_NULL(node);
    ASSERT_ULE(node->expire_ns, m.loop->now_ns);    /* never early */
    ASSERT(m.armed_round[i] < m.loop->timer_round); /* armed in an earlier pass */
    if (m.pass_of_last == m.loop->timer_round) {
        /* Within a pass, (expiry, seq) never goes backwards. */
        ASSERT_UGE(node->expire_ns, m.last_key);
    }
    m.pass_of_last = m.loop->timer_round;
    m.last_key = node->expire_ns;
    m.fires[i]++;
    if (!m.is_tick[i])
        m.state[i] = DONE;
    int r = rand() % 8;
    if (r == 0 && m.n < MAX_TIMERS) {
        add_timer(); /* re-entrant add */
    } else if (r == 1) {
        /* Clear a random live timer, possibly this one. */
        int j = m.live > 0 ? m.live_ids[rand() % m.live] : i;
        if (m.state[j] == LIVE) {
            ASSERT_OK(swoop_loop_timer_clear(m.loop, m.ids[j]));
            m.state[j] = CLEARED;
        }
    }
}

static void add_timer(void)
{
    int i = m.n++;
    int64_t ms = 1 + rand() % 200;
    m.is_tick[i] = rand() % 10 == 0;
    m.ids[i] = m.is_tick[i] ? swoop_loop_timer_tick(m.loop, ms, on_fire, (void *)(intptr_t)i)
                            : swoop_loop_timer_after(m.loop, ms, on_fire, (void *)(intptr_t)i);
    ASSERT_GT(m.ids[i], 0);
    if (i > 0)
        ASSERT_GT(m.ids[i], m.ids[i - 1]);
    m.armed_round[i] = m.loop->timer_round;
    m.state[i] = LIVE;
    m.live_ids[m.live++] = i;
}

static void compact_live(void)
{
    int k = 0;
    for (int j = 0; j < m.live; j++) {
        if (m.state[m.live_ids[j]] == LIVE)
            m.live_ids[k++] = m.live_ids[j];
    }
    m.live = k;
}

TEST(random_operations_match_model)
{
    srand(20261126);
    ASSERT_OK(swoop_loop_new(&m.loop));
    uint64_t sim = swoop__clock_ns();
    for (int op = 0; op < OPS; op++) {
        int r = rand() % 10;
        if (r < 5 && m.n < MAX_TIMERS) {
            add_timer();
        } else if (r < 7 && m.live > 0) {
            int j = m.live_ids[rand() % m.live];
            if (m.state[j] == LIVE) {
                ASSERT_OK(swoop_loop_timer_clear(m.loop, m.ids[j]));
                m.state[j] = CLEARED;
            } else {
                ASSERT_EQ(swoop_loop_timer_clear(m.loop, m.ids[j]), SWOOP_ENOENT);
            }
        } else {
            /* Advance simulated time; never behind the real clock (expiry uses it). */
            uint64_t real = swoop__clock_ns();
            sim = (sim > real ? sim : real) + (uint64_t)(rand() % 20) * SWOOP_NS_PER_MS;
            m.loop->now_ns = sim;
            swoop__timers_run(m.loop);
        }
        if (op % 997 == 0) {
            ASSERT_EQ(swoop__heap_validate(&m.loop->timer_heap), 0);
            compact_live();
        }
        if (m.n >= MAX_TIMERS - 10)
            break;
    }
    compact_live();
    /* Everything still live is in the heap and the map, and nothing else is. */
    swoop_timer_stats_t st;
    swoop_loop_timer_stats(m.loop, &st);
    ASSERT_UEQ(st.count, (uint64_t)m.live);
    ASSERT_UEQ(swoop__heap_len(&m.loop->timer_heap), (uint64_t)m.live);
    /* Run far into the future: every one-shot still live fires exactly once. */
    m.loop->now_ns = swoop__clock_ns() + 1000 * SWOOP_NS_PER_MS;
    int passes = 0;
    while (swoop__timers_run(m.loop) > 0)
        ASSERT_LT(++passes, 10000);
    uint64_t total_fires = 0;
    for (int i = 0; i < m.n; i++) {
        if (!m.is_tick[i] && m.state[i] != CLEARED)
            ASSERT_UEQ(m.fires[i], 1);
        if (!m.is_tick[i] && m.state[i] == CLEARED)
            ASSERT_ULE(m.fires[i], 1);
        total_fires += m.fires[i];
    }
    swoop_loop_timer_stats(m.loop, &st);
    ASSERT_UEQ(st.fired, total_fires);
    ASSERT_GT(m.n, 10000);
    swoop_loop_timer_clear_all(m.loop);
    ASSERT_OK(swoop_loop_free(m.loop));
}
