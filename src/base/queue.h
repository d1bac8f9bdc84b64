/*
 * Intrusive circular doubly linked list (the nginx ngx_queue shape). A node
 * embedded in an object links it into a list without allocating; an empty
 * list is a head that points to itself. Unlinked nodes are poisoned in debug
 * builds so a use after removal faults at once.
 */
#ifndef SWOOP_BASE_QUEUE_H
#define SWOOP_BASE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct swoop_queue_s swoop_queue_t;
struct swoop_queue_s {
    swoop_queue_t *prev;
    swoop_queue_t *next;
};

#define swoop_queue_data(q, type, member) ((type *)((char *)(q)-offsetof(type, member)))

static inline void swoop_queue_init(swoop_queue_t *h)
{
    h->prev = h;
    h->next = h;
}

static inline int swoop_queue_empty(const swoop_queue_t *h)
{
    return h->next == h;
}

static inline void swoop_queue_insert_tail(swoop_queue_t *h, swoop_queue_t *x)
{
    x->prev = h->prev;
    x->next = h;
    h->prev->next = x;
    h->prev = x;
}

static inline void swoop_queue_insert_head(swoop_queue_t *h, swoop_queue_t *x)
{
    x->next = h->next;
    x->prev = h;
    h->next->prev = x;
    h->next = x;
}

static inline void swoop_queue_remove(swoop_queue_t *x)
{
    x->next->prev = x->prev;
    x->prev->next = x->next;
#ifndef NDEBUG
    x->prev = (swoop_queue_t *)(uintptr_t)0xdeadbeef;
    x->next = (swoop_queue_t *)(uintptr_t)0xdeadbeef;
#endif
}

static inline swoop_queue_t *swoop_queue_head(const swoop_queue_t *h)
{
    return h->next;
}

/* Moves every node of `from` to the tail of `to`, leaving `from` empty. */
static inline void swoop_queue_move(swoop_queue_t *from, swoop_queue_t *to)
{
    if (swoop_queue_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    swoop_queue_init(from);
}

#endif /* SWOOP_BASE_QUEUE_H */
