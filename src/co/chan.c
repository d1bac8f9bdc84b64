/*
 * Channels and wait groups. A waiting coroutine links a node that lives on
 * its own stack into the object's queue; a waker unlinks the node before it
 * resumes the owner, and a timeout or cancel unlinks it through the
 * scheduler's unlink hook. Wake-all operations first move every node to a
 * list on the waker's stack, so a woken coroutine that frees the object (or
 * cancels another waiter) never touches a list that is gone.
 */
#include <swoop/co.h>

#include <swoop/alloc.h>
#include <swoop/error.h>

#include "co/internal.h"

typedef struct chan_wait_s {
    swoop_queue_t q;
    swoop_co_t *co;
    void *item;
} chan_wait_t;

struct swoop_co_chan_s {
    size_t cap;
    size_t head; /* ring index of the oldest item */
    size_t len;
    int closed;
    void **ring;
    swoop_queue_t pushers;
    swoop_queue_t poppers;
};

struct swoop_co_wg_s {
    int64_t count;
    swoop_queue_t waiters;
};

static void node_unlink(swoop_co_t *co)
{
    chan_wait_t *w = co->wait_obj;
    swoop_queue_remove(&w->q);
}

static chan_wait_t *first_waiter(swoop_queue_t *q)
{
    if (swoop_queue_empty(q))
        return NULL;
    swoop_queue_t *x = swoop_queue_head(q);
    swoop_queue_remove(x);
    return swoop_queue_data(x, chan_wait_t, q);
}

/* Links a node for the running coroutine and waits. */
static int wait_on(swoop_queue_t *q, chan_wait_t *w, int64_t timeout_ms)
{
    if (timeout_ms == 0)
        return SWOOP_ETIMEDOUT;
    swoop_co_t *co = swoop__co_current();
    if (co == NULL)
        return SWOOP_ESTATE;
    w->co = co;
    swoop_queue_insert_tail(q, &w->q);
    co->wait_obj = w;
    return swoop__co_wait(timeout_ms, node_unlink);
}

static void wake_all(swoop_queue_t *q, int result)
{
    swoop_queue_t local;
    swoop_queue_init(&local);
    swoop_queue_move(q, &local);
    chan_wait_t *w;
    while ((w = first_waiter(&local)) != NULL)
        swoop__co_wake(w->co, result);
}

int swoop_co_chan_new(swoop_co_chan_t **out, size_t capacity)
{
    if (out == NULL || capacity > ((size_t)1 << 28))
        return SWOOP_EINVAL;
    swoop_co_chan_t *ch = swoop_calloc(1, sizeof(*ch));
    ch->cap = capacity;
    if (capacity)
        ch->ring = swoop_malloc(capacity * sizeof(void *));
    swoop_queue_init(&ch->pushers);
    swoop_queue_init(&ch->poppers);
    *out = ch;
    return 0;
}

int swoop_co_chan_push(swoop_co_chan_t *ch, void *item, int64_t timeout_ms)
{
    if (ch == NULL)
        return SWOOP_EINVAL;
    if (ch->closed)
        return SWOOP_ECLOSED;
    chan_wait_t *popper = first_waiter(&ch->poppers);
    if (popper) {
        /* Poppers only wait on an empty channel, so FIFO order holds. */
        popper->item = item;
        swoop__co_wake(popper->co, 0);
        return 0;
    }
    if (ch->len < ch->cap) {
        ch->ring[(ch->head + ch->len) % ch->cap] = item;
        ch->len++;
        return 0;
    }
    chan_wait_t w = {.item = item};
    return wait_on(&ch->pushers, &w, timeout_ms);
}

int swoop_co_chan_pop(swoop_co_chan_t *ch, void **item, int64_t timeout_ms)
{
    if (ch == NULL || item == NULL)
        return SWOOP_EINVAL;
    if (ch->len) {
        *item = ch->ring[ch->head];
        ch->head = (ch->head + 1) % ch->cap;
        ch->len--;
        /* Room now: the oldest waiting pusher's item joins the tail. */
        chan_wait_t *pusher = first_waiter(&ch->pushers);
        if (pusher) {
            ch->ring[(ch->head + ch->len) % ch->cap] = pusher->item;
            ch->len++;
            swoop__co_wake(pusher->co, 0);
        }
        return 0;
    }
    chan_wait_t *pusher = first_waiter(&ch->pushers);
    if (pusher) {
        /* Capacity 0: take the item straight from the pusher. */
        *item = pusher->item;
        swoop__co_wake(pusher->co, 0);
        return 0;
    }
    if (ch->closed)
        return SWOOP_ECLOSED;
    chan_wait_t w = {.item = NULL};
    int rc = wait_on(&ch->poppers, &w, timeout_ms);
    if (rc == 0)
        *item = w.item;
    return rc;
}

int swoop_co_chan_close(swoop_co_chan_t *ch)
{
    if (ch == NULL)
        return SWOOP_EINVAL;
    if (ch->closed)
        return SWOOP_ECLOSED;
    ch->closed = 1;
    /* Move both lists before waking anyone: a woken coroutine may free ch. */
    swoop_queue_t poppers, pushers;
    swoop_queue_init(&poppers);
    swoop_queue_init(&pushers);
    swoop_queue_move(&ch->poppers, &poppers);
    swoop_queue_move(&ch->pushers, &pushers);
    wake_all(&poppers, SWOOP_ECLOSED);
    wake_all(&pushers, SWOOP_ECLOSED);
    return 0;
}

size_t swoop_co_chan_len(const swoop_co_chan_t *ch)
{
    return ch ? ch->len : 0;
}

int swoop_co_chan_free(swoop_co_chan_t *ch)
{
    if (ch == NULL)
        return 0;
    if (!swoop_queue_empty(&ch->pushers) || !swoop_queue_empty(&ch->poppers))
        return SWOOP_EBUSY;
    swoop_free(ch->ring);
    swoop_free(ch);
    return 0;
}

int swoop_co_wg_new(swoop_co_wg_t **out)
{
    if (out == NULL)
        return SWOOP_EINVAL;
    swoop_co_wg_t *wg = swoop_calloc(1, sizeof(*wg));
    swoop_queue_init(&wg->waiters);
    *out = wg;
    return 0;
}

int swoop_co_wg_add(swoop_co_wg_t *wg, int64_t n)
{
    if (wg == NULL)
        return SWOOP_EINVAL;
    if (wg->count + n < 0)
        return SWOOP_ERANGE;
    wg->count += n;
    if (wg->count == 0)
        wake_all(&wg->waiters, 0);
    return 0;
}

int swoop_co_wg_done(swoop_co_wg_t *wg)
{
    return swoop_co_wg_add(wg, -1);
}

int swoop_co_wg_wait(swoop_co_wg_t *wg, int64_t timeout_ms)
{
    if (wg == NULL)
        return SWOOP_EINVAL;
    if (wg->count == 0)
        return 0;
    chan_wait_t w = {.item = NULL};
    return wait_on(&wg->waiters, &w, timeout_ms);
}

int64_t swoop_co_wg_count(const swoop_co_wg_t *wg)
{
    return wg ? wg->count : 0;
}

int swoop_co_wg_free(swoop_co_wg_t *wg)
{
    if (wg == NULL)
        return 0;
    if (!swoop_queue_empty(&wg->waiters))
        return SWOOP_EBUSY;
    swoop_free(wg);
    return 0;
}
