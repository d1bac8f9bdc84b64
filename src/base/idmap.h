/*
 * Map from int64 ids (> 0) to pointers: open addressing with Robin Hood
 * linear probing and backward-shift deletion, so there are no tombstones. Ids handed out by
 * a counter are mostly sequential; the slot is the id with its high bits
 * folded in, so runs of new ids fill neighbouring slots (cache friendly),
 * while ids that differ by a multiple of the table size still spread out.
 */
#ifndef SWOOP_BASE_IDMAP_H
#define SWOOP_BASE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct swoop_idmap_entry_s {
    int64_t key; /* 0 = empty */
    void *value;
} swoop_idmap_entry_t;

typedef struct swoop_idmap_s {
    swoop_idmap_entry_t *slots;
    size_t mask; /* capacity - 1; capacity is a power of two */
    unsigned shift;
    size_t len;
} swoop_idmap_t;

void swoop__idmap_init(swoop_idmap_t *m);
void swoop__idmap_free(swoop_idmap_t *m);
/* Inserts a new key (> 0, not present). Never fails (aborts on OOM). */
void swoop__idmap_put(swoop_idmap_t *m, int64_t key, void *value);
/* Returns the value or NULL. */
void *swoop__idmap_get(const swoop_idmap_t *m, int64_t key);
/* Removes the key and returns its value, or NULL if absent. */
void *swoop__idmap_del(swoop_idmap_t *m, int64_t key);

static inline size_t swoop__idmap_len(const swoop_idmap_t *m)
{
    return m->len;
}

#endif /* SWOOP_BASE_IDMAP_H */
