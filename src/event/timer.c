/*
 * Timers: a min-heap keyed by absolute expiry (nanoseconds on
 * CLOCK_MONOTONIC) with insertion order as the tie-break, plus a map from
 * public id to node. Expiry is computed from a fresh clock reading when a
 * timer is armed, never from the loop's cached time, so a timer armed by a
 * callback that ran for a while is still not early; and since the due check
 * uses the time read at the start of the pass, a timer armed during the pass
 * cannot run in it. A tick is re-armed on its own grid (expiry + interval,
 * skipping beats that already passed), so it neither drifts nor bursts.
 *
 * A callback may clear any timer, its own included: the running node is
 * only marked and is freed after its callback returns, so it can never be
 * recycled for a timer armed inside that same callback.
 */
#include <swoop/timer.h>

#include <stdatomic.h>

#include "base/clock.h"
#include "event/internal.h"

#define TIMER_FREE_MAX 4096

/* Ids are unique across the process, not just per loop. */
static atomic_int_fast64_t next_timer_id = 1;

static swoop_timer_node_t *node_alloc(swoop_loop_t *loop)
{
    swoop_timer_node_t *node = loop->timer_free;
    if (node) {
        loop->timer_free = node->next_free;
        loop->timer_free_count--;
        return node;
    }
    return swoop_malloc(sizeof(*node));
}

static void node_release(swoop_loop_t *loop, swoop_timer_node_t *node)
{
    if (loop->timer_free_count < TIMER_FREE_MAX) {
        node->next_free = loop->timer_free;
        loop->timer_free = node;
        loop->timer_free_count++;
    } else {
        swoop_free(node);
    }
}

static void maybe_rearm(swoop_loop_t *loop)
{
    if (loop->alarm_mode)
        swoop__alarm_rearm(loop);
}

void swoop__timers_init(swoop_loop_t *loop)
{
    swoop__heap_init(&loop->timer_heap);
    swoop__idmap_init(&loop->timer_ids);
}

void swoop__timers_free(swoop_loop_t *loop)
{
    swoop_heap_t *h = &loop->timer_heap;
    for (size_t i = 0; i < h->len; i++)
        swoop_free(h->items[i].node);
    h->len = 0;
    swoop__heap_free(h);
    swoop__idmap_free(&loop->timer_ids);
    while (loop->timer_free) {
        swoop_timer_node_t *next = loop->timer_free->next_free;
        swoop_free(loop->timer_free);
        loop->timer_free = next;
    }
    loop->timer_free_count = 0;
}

static int64_t timer_add(swoop_loop_t *loop, int64_t ms, int repeat, int user, swoop_timer_cb cb,
                         void *arg)
{
    if (loop == NULL || cb == NULL || ms < 1) {
        swoop_log(SWOOP_LOG_WARNING, 0, "timer: interval %lld ms is not >= 1, or no callback",
                  (long long)ms);
        return SWOOP_EINVAL;
    }
    /* Far beyond any real use; keeps expiry arithmetic from overflowing. */
    if ((uint64_t)ms > UINT64_MAX / SWOOP_NS_PER_MS / 4) {
        swoop_log(SWOOP_LOG_WARNING, 0, "timer: interval %lld ms is out of range", (long long)ms);
        return SWOOP_ERANGE;
    }
    swoop_timer_node_t *node = node_alloc(loop);
    uint64_t interval = (uint64_t)ms * SWOOP_NS_PER_MS;
    node->heap.index = SWOOP_HEAP_NOT_IN;
    node->id = atomic_fetch_add_explicit(&next_timer_id, 1, memory_order_relaxed);
    node->expire_ns = swoop__clock_ns() + interval;
    node->interval_ns = repeat ? interval : 0;
    node->runs = 0;
    node->cb = cb;
    node->arg = arg;
    node->user = user;
    swoop__heap_push(&loop->timer_heap, &node->heap, node->expire_ns, loop->timer_seq++);
    swoop__idmap_put(&loop->timer_ids, node->id, node);
    if (node->heap.index == 0)
        maybe_rearm(loop);
    return node->id;
}

int64_t swoop_loop_timer_after(swoop_loop_t *loop, int64_t ms, swoop_timer_cb cb, void *arg)
{
    return timer_add(loop, ms, 0, 1, cb, arg);
}

int64_t swoop_loop_timer_tick(swoop_loop_t *loop, int64_t ms, swoop_timer_cb cb, void *arg)
{
    return timer_add(loop, ms, 1, 1, cb, arg);
}

int64_t swoop__loop_timer_after_lib(swoop_loop_t *loop, int64_t ms, swoop_timer_cb cb, void *arg)
{
    return timer_add(loop, ms, 0, 0, cb, arg);
}

int64_t swoop__loop_timer_tick_lib(swoop_loop_t *loop, int64_t ms, swoop_timer_cb cb, void *arg)
{
    return timer_add(loop, ms, 1, 0, cb, arg);
}

void swoop__loop_set_timer_runner(swoop_loop_t *loop, swoop_timer_runner_fn fn)
{
    loop->timer_runner = fn;
}

int swoop_loop_timer_clear(swoop_loop_t *loop, int64_t id)
{
    if (loop == NULL)
        return SWOOP_EINVAL;
    swoop_timer_node_t *node = swoop__idmap_del(&loop->timer_ids, id);
    if (node == NULL)
        return SWOOP_ENOENT;
    if (node == loop->timer_firing) {
        /* Freed by the pass once the callback returns. */
        loop->timer_firing_cleared = 1;
        return 0;
    }
    int was_head = node->heap.index == 0;
    swoop__heap_remove(&loop->timer_heap, &node->heap);
    node_release(loop, node);
    if (was_head)
        maybe_rearm(loop);
    return 0;
}

void swoop_loop_timer_clear_all(swoop_loop_t *loop)
{
    if (loop == NULL)
        return;
    swoop_heap_t *h = &loop->timer_heap;
    for (size_t i = 0; i < h->len; i++) {
        swoop_timer_node_t *node = (swoop_timer_node_t *)h->items[i].node;
        node->heap.index = SWOOP_HEAP_NOT_IN;
        node_release(loop, node);
    }
    h->len = 0;
    swoop__idmap_free(&loop->timer_ids);
    swoop__idmap_init(&loop->timer_ids);
    if (loop->timer_firing)
        loop->timer_firing_cleared = 1;
    maybe_rearm(loop);
}

int swoop_loop_timer_info(swoop_loop_t *loop, int64_t id, swoop_timer_info_t *out)
{
    if (loop == NULL || out == NULL)
        return SWOOP_EINVAL;
    swoop_timer_node_t *node = swoop__idmap_get(&loop->timer_ids, id);
    if (node == NULL)
        return SWOOP_ENOENT;
    out->interval_ms = (int64_t)(node->interval_ns / SWOOP_NS_PER_MS);
    out->runs = node->runs;
    out->expire_ms = (node->expire_ns + SWOOP_NS_PER_MS - 1) / SWOOP_NS_PER_MS;
    return 0;
}

void swoop_loop_timer_stats(swoop_loop_t *loop, swoop_timer_stats_t *out)
{
    out->count = swoop__idmap_len(&loop->timer_ids);
    out->round = loop->timer_round;
    out->fired = loop->timer_fired;
}

int swoop__timers_run(swoop_loop_t *loop)
{
    swoop_heap_t *h = &loop->timer_heap;
    const swoop_heap_entry_t *top = swoop__heap_top(h);
    if (top == NULL || top->key > loop->now_ns)
        return 0;
    uint64_t now = loop->now_ns;
    /*
     * Timers armed (or ticks re-armed) during this pass get a seq at or above
     * this mark; they wait for the next pass even if the clock says they are due.
     */
    uint64_t seq_mark = loop->timer_seq;
    int ran = 0;
    loop->timer_round++;
    while ((top = swoop__heap_top(h)) != NULL && top->key <= now && top->seq < seq_mark) {
        swoop_timer_node_t *node = (swoop_timer_node_t *)top->node;
        swoop__heap_remove(h, &node->heap);
        node->runs++;
        loop->timer_firing = node;
        loop->timer_firing_cleared = 0;
        if (node->user && loop->timer_runner)
            loop->timer_runner(node->cb, node->id, node->arg);
        else
            node->cb(node->id, node->arg);
        loop->timer_firing = NULL;
        ran++;
        if (loop->timer_firing_cleared) {
            node_release(loop, node);
        } else if (node->interval_ns) {
            /*
             * Next beat on the grid after the current time (read afresh: the
             * callback itself may have run past several beats). Late beats are
             * skipped, not replayed.
             */
            uint64_t fresh = swoop__clock_ns();
            if (fresh < now)
                fresh = now; /* only when a test moved the cached clock ahead */
            uint64_t missed = (fresh - node->expire_ns) / node->interval_ns;
            node->expire_ns += (missed + 1) * node->interval_ns;
            swoop__heap_push(h, &node->heap, node->expire_ns, loop->timer_seq++);
        } else {
            swoop__idmap_del(&loop->timer_ids, node->id);
            node_release(loop, node);
        }
    }
    loop->timer_fired += (uint64_t)ran;
    maybe_rearm(loop);
    return ran;
}

uint64_t swoop__timers_deadline_ns(const swoop_loop_t *loop)
{
    const swoop_heap_entry_t *top = swoop__heap_top(&loop->timer_heap);
    return top ? top->key : 0;
}

/* ---- the calling thread's default loop ---- */

int64_t swoop_timer_after(int64_t ms, swoop_timer_cb cb, void *arg)
{
    swoop_loop_t *loop;
    int rc = swoop__loop_default_get(&loop);
    return rc < 0 ? rc : swoop_loop_timer_after(loop, ms, cb, arg);
}

int64_t swoop_timer_tick(int64_t ms, swoop_timer_cb cb, void *arg)
{
    swoop_loop_t *loop;
    int rc = swoop__loop_default_get(&loop);
    return rc < 0 ? rc : swoop_loop_timer_tick(loop, ms, cb, arg);
}

int64_t swoop__timer_after_lib(int64_t ms, swoop_timer_cb cb, void *arg)
{
    swoop_loop_t *loop;
    int rc = swoop__loop_default_get(&loop);
    return rc < 0 ? rc : swoop__loop_timer_after_lib(loop, ms, cb, arg);
}

int64_t swoop__timer_tick_lib(int64_t ms, swoop_timer_cb cb, void *arg)
{
    swoop_loop_t *loop;
    int rc = swoop__loop_default_get(&loop);
    return rc < 0 ? rc : swoop__loop_timer_tick_lib(loop, ms, cb, arg);
}

int swoop_timer_clear(int64_t id)
{
    swoop_loop_t *loop;
    int rc = swoop__loop_default_get(&loop);
    return rc < 0 ? rc : swoop_loop_timer_clear(loop, id);
}

void swoop_timer_clear_all(void)
{
    swoop_loop_t *loop;
    if (swoop__loop_default_get(&loop) == 0)
        swoop_loop_timer_clear_all(loop);
}

int swoop_timer_info(int64_t id, swoop_timer_info_t *out)
{
    swoop_loop_t *loop;
    int rc = swoop__loop_default_get(&loop);
    return rc < 0 ? rc : swoop_loop_timer_info(loop, id, out);
}

void swoop_timer_stats(swoop_timer_stats_t *out)
{
    swoop_loop_t *loop;
    if (swoop__loop_default_get(&loop) == 0) {
        swoop_loop_timer_stats(loop, out);
    } else {
        out->count = out->round = out->fired = 0;
    }
}
