/*
 * Binary min-heap over an array, ordered by (key, seq). Each element points to
 * an intrusive node that holds its current array index, so any element can be
 * removed in O(log n) without searching (DESIGN.md section 3). The sort key
 * sits in the array itself, so sifting compares without touching the nodes.
 * Ties on `key` are broken by `seq`; callers give each insertion a fresh,
 * increasing seq to get FIFO order among equal keys.
 */
#ifndef SWOOP_BASE_HEAP_H
#define SWOOP_BASE_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define SWOOP_HEAP_NOT_IN ((size_t)-1)

typedef struct swoop_heap_node_s {
    size_t index; /* position in the array, SWOOP_HEAP_NOT_IN when not queued */
} swoop_heap_node_t;

typedef struct swoop_heap_entry_s {
    uint64_t key;
    uint64_t seq;
    swoop_heap_node_t *node;
} swoop_heap_entry_t;

typedef struct swoop_heap_s {
    swoop_heap_entry_t *items;
    size_t len;
    size_t cap;
} swoop_heap_t;

void swoop__heap_init(swoop_heap_t *h);
void swoop__heap_free(swoop_heap_t *h);
/* Inserts `node`, which must not be in any heap. Never fails (aborts on OOM). */
void swoop__heap_push(swoop_heap_t *h, swoop_heap_node_t *node, uint64_t key, uint64_t seq);
/* Removes `node`, which must be in `h`. */
void swoop__heap_remove(swoop_heap_t *h, swoop_heap_node_t *node);
/* Checks the heap property and every node's index; returns 0 or -1. For tests. */
int swoop__heap_validate(const swoop_heap_t *h);

static inline const swoop_heap_entry_t *swoop__heap_top(const swoop_heap_t *h)
{
    return h->len ? &h->items[0] : NULL;
}

static inline size_t swoop__heap_len(const swoop_heap_t *h)
{
    return h->len;
}

#endif /* SWOOP_BASE_HEAP_H */
