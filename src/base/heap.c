/*
 * The array min-heap of heap.h. Sifting moves a hole instead of swapping, so
 * each level costs one entry copy and one index store.
 */
#include "base/heap.h"

#include <string.h>

#include "base/internal.h"

static inline int entry_less(const swoop_heap_entry_t *a, const swoop_heap_entry_t *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void sift_up(swoop_heap_t *h, size_t i, swoop_heap_entry_t e)
{
    swoop_heap_entry_t *items = h->items;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!entry_less(&e, &items[parent]))
            break;
        items[i] = items[parent];
        items[i].node->index = i;
        i = parent;
    }
    items[i] = e;
    e.node->index = i;
}

static void sift_down(swoop_heap_t *h, size_t i, swoop_heap_entry_t e)
{
    swoop_heap_entry_t *items = h->items;
    size_t len = h->len;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= len)
            break;
        if (child + 1 < len && entry_less(&items[child + 1], &items[child]))
            child++;
        if (!entry_less(&items[child], &e))
            break;
        items[i] = items[child];
        items[i].node->index = i;
        i = child;
    }
    items[i] = e;
    e.node->index = i;
}

void swoop__heap_init(swoop_heap_t *h)
{
    memset(h, 0, sizeof(*h));
}

void swoop__heap_free(swoop_heap_t *h)
{
    for (size_t i = 0; i < h->len; i++)
        h->items[i].node->index = SWOOP_HEAP_NOT_IN;
    swoop_free(h->items);
    memset(h, 0, sizeof(*h));
}

void swoop__heap_push(swoop_heap_t *h, swoop_heap_node_t *node, uint64_t key, uint64_t seq)
{
    assert(node->index == SWOOP_HEAP_NOT_IN);
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        h->items = swoop_realloc(h->items, cap * sizeof(*h->items));
        h->cap = cap;
    }
    swoop_heap_entry_t e = {key, seq, node};
    sift_up(h, h->len++, e);
}

void swoop__heap_remove(swoop_heap_t *h, swoop_heap_node_t *node)
{
    size_t i = node->index;
    assert(i < h->len && h->items[i].node == node);
    node->index = SWOOP_HEAP_NOT_IN;
    swoop_heap_entry_t last = h->items[--h->len];
    if (i == h->len)
        return;
    /* The last entry fills the hole; it may need to go either way. */
    if (i > 0 && entry_less(&last, &h->items[(i - 1) / 2]))
        sift_up(h, i, last);
    else
        sift_down(h, i, last);
}

int swoop__heap_validate(const swoop_heap_t *h)
{
    for (size_t i = 0; i < h->len; i++) {
        if (h->items[i].node->index != i)
            return -1;
        if (i > 0 && entry_less(&h->items[i], &h->items[(i - 1) / 2]))
            return -1;
    }
    return 0;
}
