/* Channels and wait groups: FIFO order, close wakes every waiter, timeouts, capacity 0
 * rendezvous, cancel of a waiting popper, state errors outside coroutines. */
/* TEST_LABELS: tsan */
#include <swoop/co.h>

#include <swoop/error.h>

#include "test.h"

static swoop_co_chan_t *ch;
static int log_buf[256];
static int log_len;

static void note(int v)
{
    ASSERT_LT(log_len, 256);
    log_buf[log_len++] = v;
}

static void producer(void *arg)
{
    int base = (int)(intptr_t)arg;
    for (int i = 0; i < 10; i++)
        ASSERT_OK(swoop_co_chan_push(ch, (void *)(intptr_t)(base + i), -1));
}

static void consumer(void *arg)
{
    for (int i = 0; i < 20; i++) {
        void *item = NULL;
        ASSERT_OK(swoop_co_chan_pop(ch, &item, 1000));
        note((int)(intptr_t)item);
    }
}

TEST(fifo_order_across_waiting_pushers)
{
    ASSERT_OK(swoop_co_chan_new(&ch, 3));
    /* Both producers fill the buffer and park; the consumer then drains
     * in push order: per producer strictly ascending, and items that
     * entered the ring first leave first. */
    ASSERT_GT(swoop_co_go(producer, (void *)(intptr_t)100), 0);
    ASSERT_GT(swoop_co_go(producer, (void *)(intptr_t)200), 0);
    ASSERT_EQ(swoop_co_chan_len(ch), 3u);
    ASSERT_OK(swoop_co_run(consumer, NULL));
    ASSERT_EQ(log_len, 20);
    /* First the three buffered (100,101,102), then the parked pushers in the order they
     * parked: 200 parked first (the 100 producer parked on 103 after filling). */
    ASSERT_EQ(log_buf[0], 100);
    ASSERT_EQ(log_buf[1], 101);
    ASSERT_EQ(log_buf[2], 102);
    int last100 = 99, last200 = 199;
    for (int i = 0; i < 20; i++) {
        if (log_buf[i] < 200) {
            ASSERT_EQ(log_buf[i], last100 + 1);
            last100 = log_buf[i];
        } else {
            ASSERT_EQ(log_buf[i], last200 + 1);
            last200 = log_buf[i];
        }
    }
    ASSERT_EQ(last100, 109);
    ASSERT_EQ(last200, 209);
    ASSERT_OK(swoop_co_chan_free(ch));
}

static int closed_seen;

static void pop_until_closed(void *arg)
{
    void *item;
    int rc = swoop_co_chan_pop(ch, &item, -1);
    ASSERT_EQ(rc, SWOOP_ECLOSED);
    note((int)(intptr_t)arg);
    closed_seen++;
}

static void push_until_closed(void *arg)
{
    int rc = swoop_co_chan_push(ch, arg, -1);
    ASSERT_EQ(rc, SWOOP_ECLOSED);
    note((int)(intptr_t)arg);
    closed_seen++;
}

TEST(close_wakes_every_waiter_in_order)
{
    ASSERT_OK(swoop_co_chan_new(&ch, 0));
    for (intptr_t i = 1; i <= 5; i++)
        ASSERT_GT(swoop_co_go(pop_until_closed, (void *)i), 0);
    ASSERT_EQ(closed_seen, 0);
    ASSERT_EQ(swoop_co_chan_free(ch), SWOOP_EBUSY);
    ASSERT_OK(swoop_co_chan_close(ch));
    ASSERT_EQ(closed_seen, 5);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(log_buf[i], i + 1);
    ASSERT_EQ(swoop_co_chan_close(ch), SWOOP_ECLOSED);
    ASSERT_EQ(swoop_co_chan_push(ch, NULL, 0), SWOOP_ECLOSED);
    ASSERT_OK(swoop_co_chan_free(ch));

    /* Pushers parked on a full channel too; queued items survive the close. */
    ASSERT_OK(swoop_co_chan_new(&ch, 1));
    ASSERT_OK(swoop_co_chan_push(ch, (void *)(intptr_t)42, 0)); /* room: fine outside */
    for (intptr_t i = 11; i <= 13; i++)
        ASSERT_GT(swoop_co_go(push_until_closed, (void *)i), 0);
    ASSERT_OK(swoop_co_chan_close(ch));
    ASSERT_EQ(closed_seen, 8);
    ASSERT_EQ(log_buf[5], 11);
    ASSERT_EQ(log_buf[7], 13);
    void *item = NULL;
    ASSERT_OK(swoop_co_chan_pop(ch, &item, 0));
    ASSERT_EQ((intptr_t)item, 42);
    ASSERT_EQ(swoop_co_chan_pop(ch, &item, 0), SWOOP_ECLOSED);
    ASSERT_OK(swoop_co_chan_free(ch));
}

static void timed_pop(void *arg)
{
    void *item;
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(swoop_co_chan_pop(ch, &item, 30), SWOOP_ETIMEDOUT);
    uint64_t took = swoop_test_now_ms() - t0;
    ASSERT_UGE(took, 30);
    ASSERT_ULE(took, 30 + 300 * swoop_test_multiplier());
    ASSERT_EQ(swoop_co_chan_pop(ch, &item, 0), SWOOP_ETIMEDOUT);
    /* A timed-out waiter left the queue: a later push buffers instead of vanishing. */
    ASSERT_OK(swoop_co_chan_push(ch, (void *)(intptr_t)7, 0));
    ASSERT_OK(swoop_co_chan_push(ch, (void *)(intptr_t)8, 0));
    ASSERT_EQ(swoop_co_chan_push(ch, (void *)(intptr_t)9, 20), SWOOP_ETIMEDOUT);
    ASSERT_EQ(swoop_co_chan_len(ch), 2u);
    *(int *)arg = 1;
}

TEST(timeouts_leave_the_queue)
{
    int done = 0;
    ASSERT_OK(swoop_co_chan_new(&ch, 2));
    ASSERT_OK(swoop_co_run(timed_pop, &done));
    ASSERT_EQ(done, 1);
    ASSERT_OK(swoop_co_chan_free(ch));
}

static void rv_pusher(void *arg)
{
    note(1);
    ASSERT_OK(swoop_co_chan_push(ch, (void *)(intptr_t)77, -1));
    note(3); /* only after the pop took it */
}

static void rv_popper(void *arg)
{
    ASSERT_OK(swoop_co_sleep(10));
    note(2);
    void *item = NULL;
    ASSERT_OK(swoop_co_chan_pop(ch, &item, -1));
    ASSERT_EQ((intptr_t)item, 77);
    note(4);
}

static void rv_main(void *arg)
{
    ASSERT_GT(swoop_co_go(rv_pusher, NULL), 0);
    ASSERT_EQ(swoop_co_chan_len(ch), 0u); /* nothing buffered with capacity 0 */
    ASSERT_GT(swoop_co_go(rv_popper, NULL), 0);
}

TEST(capacity_zero_is_a_rendezvous)
{
    ASSERT_OK(swoop_co_chan_new(&ch, 0));
    ASSERT_EQ(swoop_co_chan_push(ch, NULL, 0), SWOOP_ETIMEDOUT);
    ASSERT_EQ(swoop_co_chan_push(ch, NULL, -1), SWOOP_ESTATE); /* would wait outside */
    ASSERT_OK(swoop_co_run(rv_main, NULL));
    ASSERT_EQ(log_len, 4);
    /* The pop resumes the parked pusher at once, before the popper goes on. */
    ASSERT_EQ(log_buf[0], 1);
    ASSERT_EQ(log_buf[1], 2);
    ASSERT_EQ(log_buf[2], 3);
    ASSERT_EQ(log_buf[3], 4);
    ASSERT_OK(swoop_co_chan_free(ch));
}

static int64_t victim_id;

static void cancel_popper(void *arg)
{
    void *item;
    ASSERT_EQ(swoop_co_chan_pop(ch, &item, -1), SWOOP_ECANCELED);
    note(-1);
}

static void second_popper(void *arg)
{
    void *item = NULL;
    ASSERT_OK(swoop_co_chan_pop(ch, &item, -1));
    note((int)(intptr_t)item);
}

static void cancel_main(void *arg)
{
    victim_id = swoop_co_go(cancel_popper, NULL);
    ASSERT_GT(swoop_co_go(second_popper, NULL), 0);
    ASSERT_OK(swoop_co_cancel(victim_id));
    /* The cancelled popper left the queue: this item reaches the second one. */
    ASSERT_OK(swoop_co_chan_push(ch, (void *)(intptr_t)5, 0));
}

TEST(cancel_removes_a_waiting_popper)
{
    ASSERT_OK(swoop_co_chan_new(&ch, 0));
    ASSERT_OK(swoop_co_run(cancel_main, NULL));
    ASSERT_EQ(log_len, 2);
    ASSERT_EQ(log_buf[0], -1);
    ASSERT_EQ(log_buf[1], 5);
    ASSERT_OK(swoop_co_chan_free(ch));
}

static swoop_co_wg_t *wg;

static void wg_worker(void *arg)
{
    ASSERT_OK(swoop_co_sleep((int64_t)(intptr_t)arg));
    note((int)(intptr_t)arg);
    ASSERT_OK(swoop_co_wg_done(wg));
}

static void wg_main(void *arg)
{
    /* 50 ms apart: starting them (new stacks, sanitizers) may take tens of ms. */
    for (intptr_t ms = 250; ms >= 50; ms -= 50) {
        ASSERT_OK(swoop_co_wg_add(wg, 1));
        ASSERT_GT(swoop_co_go(wg_worker, (void *)ms), 0);
    }
    ASSERT_EQ(swoop_co_wg_count(wg), 5);
    ASSERT_EQ(swoop_co_wg_wait(wg, 1), SWOOP_ETIMEDOUT);
    ASSERT_OK(swoop_co_wg_wait(wg, 5000));
    ASSERT_EQ(log_len, 5);
    note(0);
}

TEST(wait_group_waits_for_all)
{
    ASSERT_OK(swoop_co_wg_new(&wg));
    ASSERT_OK(swoop_co_wg_wait(wg, -1)); /* count 0: no waiting, fine outside */
    ASSERT_OK(swoop_co_run(wg_main, NULL));
    ASSERT_EQ(log_len, 6);
    ASSERT_EQ(log_buf[0], 50);
    ASSERT_EQ(log_buf[4], 250);
    ASSERT_EQ(log_buf[5], 0);
    ASSERT_EQ(swoop_co_wg_add(wg, -1), SWOOP_ERANGE);
    ASSERT_OK(swoop_co_wg_add(wg, 1));
    ASSERT_EQ(swoop_co_wg_wait(wg, -1), SWOOP_ESTATE);
    ASSERT_OK(swoop_co_wg_free(wg));
}
