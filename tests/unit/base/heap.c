/* The array min-heap: order, FIFO ties, removal anywhere, validation. */
#include "base/heap.h"

#include <stdlib.h>

#include "test.h"

struct item {
    swoop_heap_node_t node;
    uint64_t key;
    int live;
};

TEST(heap_random_against_model)
{
    enum { N = 5000 };
    static struct item items[N];
    swoop_heap_t h;
    swoop__heap_init(&h);
    srand(1234);
    uint64_t seq = 0;
    for (int i = 0; i < N; i++) {
        items[i].node.index = SWOOP_HEAP_NOT_IN;
        items[i].key = (uint64_t)(rand() % 100);
        swoop__heap_push(&h, &items[i].node, items[i].key, seq++);
        items[i].live = 1;
    }
    ASSERT_EQ(swoop__heap_validate(&h), 0);
    /* Remove a random third from the middle. */
    for (int i = 0; i < N; i += 3) {
        swoop__heap_remove(&h, &items[i].node);
        items[i].live = 0;
        ASSERT_UEQ(items[i].node.index, SWOOP_HEAP_NOT_IN);
    }
    ASSERT_EQ(swoop__heap_validate(&h), 0);
    /* Pop everything: keys never decrease; equal keys come out in insertion order. */
    uint64_t last_key = 0, last_seq = 0;
    size_t popped = 0;
    while (swoop__heap_len(&h) > 0) {
        const swoop_heap_entry_t *top = swoop__heap_top(&h);
        ASSERT_UGE(top->key, last_key);
        if (top->key == last_key && popped > 0)
            ASSERT_UGE(top->seq, last_seq);
        last_key = top->key;
        last_seq = top->seq;
        struct item *it = (struct item *)top->node;
        ASSERT_EQ(it->live, 1);
        it->live = 0;
        swoop__heap_remove(&h, top->node);
        popped++;
    }
    ASSERT_UEQ(popped, N - (N + 2) / 3);
    ASSERT_NULL(swoop__heap_top(&h));
    swoop__heap_free(&h);
}

TEST(heap_validate_detects_corruption)
{
    struct item a = {.node.index = SWOOP_HEAP_NOT_IN}, b = {.node.index = SWOOP_HEAP_NOT_IN};
    swoop_heap_t h;
    swoop__heap_init(&h);
    swoop__heap_push(&h, &a.node, 5, 0);
    swoop__heap_push(&h, &b.node, 7, 1);
    ASSERT_EQ(swoop__heap_validate(&h), 0);
    h.items[1].key = 1; /* break the heap property behind its back */
    ASSERT_EQ(swoop__heap_validate(&h), -1);
    h.items[1].key = 7;
    b.node.index = 0;
    ASSERT_EQ(swoop__heap_validate(&h), -1);
    b.node.index = 1;
    swoop__heap_free(&h);
    ASSERT_UEQ(a.node.index, SWOOP_HEAP_NOT_IN);
}
