/*
 * The id map of idmap.h: Robin Hood linear probing. The load factor stays
 * at or below one half, so probes are short; the table shrinks again after
 * a burst drains.
 */
#include "base/idmap.h"

#include <string.h>

#include "base/internal.h"

#define IDMAP_MIN_CAP 64

static inline size_t slot_of(const swoop_idmap_t *m, int64_t key)
{
    uint64_t k = (uint64_t)key;
    return (size_t)(k ^ (k >> m->shift)) & m->mask;
}

static inline size_t distance(const swoop_idmap_t *m, size_t slot, int64_t key)
{
    return (slot - slot_of(m, key)) & m->mask;
}

/*
 * Robin Hood: an entry further from its home slot takes the place of one
 * closer to its own, which keeps runs ordered by distance. That lets lookups
 * and deletions stop early (see swoop__idmap_del).
 */
static void rh_insert(swoop_idmap_t *m, swoop_idmap_entry_t cur)
{
    size_t s = slot_of(m, cur.key);
    size_t dist = 0;
    for (;;) {
        swoop_idmap_entry_t *e = &m->slots[s];
        if (e->key == 0) {
            *e = cur;
            return;
        }
        assert(e->key != cur.key);
        size_t their = distance(m, s, e->key);
        if (their < dist) {
            swoop_idmap_entry_t tmp = *e;
            *e = cur;
            cur = tmp;
            dist = their;
        }
        s = (s + 1) & m->mask;
        dist++;
    }
}

static void resize(swoop_idmap_t *m, size_t cap)
{
    swoop_idmap_entry_t *old = m->slots;
    size_t old_cap = old ? m->mask + 1 : 0;
    m->slots = swoop_calloc(cap, sizeof(*m->slots));
    m->mask = cap - 1;
    m->shift = (unsigned)__builtin_ctzll((unsigned long long)cap);
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key != 0)
            rh_insert(m, old[i]);
    }
    swoop_free(old);
}

void swoop__idmap_init(swoop_idmap_t *m)
{
    memset(m, 0, sizeof(*m));
}

void swoop__idmap_free(swoop_idmap_t *m)
{
    swoop_free(m->slots);
    memset(m, 0, sizeof(*m));
}

void swoop__idmap_put(swoop_idmap_t *m, int64_t key, void *value)
{
    assert(key > 0);
    if (m->slots == NULL)
        resize(m, IDMAP_MIN_CAP);
    else if ((m->len + 1) * 2 > m->mask + 1)
        resize(m, (m->mask + 1) * 2);
    rh_insert(m, (swoop_idmap_entry_t){key, value});
    m->len++;
}

static size_t find_slot(const swoop_idmap_t *m, int64_t key)
{
    if (m->slots == NULL || key <= 0)
        return SIZE_MAX;
    size_t s = slot_of(m, key);
    for (size_t dist = 0;; dist++) {
        const swoop_idmap_entry_t *e = &m->slots[s];
        if (e->key == key)
            return s;
        /* An empty slot, or an entry nearer its home than we are to ours: absent. */
        if (e->key == 0 || distance(m, s, e->key) < dist)
            return SIZE_MAX;
        s = (s + 1) & m->mask;
    }
}

void *swoop__idmap_get(const swoop_idmap_t *m, int64_t key)
{
    size_t s = find_slot(m, key);
    return s == SIZE_MAX ? NULL : m->slots[s].value;
}

void *swoop__idmap_del(swoop_idmap_t *m, int64_t key)
{
    size_t s = find_slot(m, key);
    if (s == SIZE_MAX)
        return NULL;
    void *value = m->slots[s].value;
    /*
     * Backward shift: pull the following entries one slot back until an
     * empty slot or an entry already at its home. With sequential ids most
     * entries sit at home, so this usually stops at once.
     */
    for (;;) {
        size_t next = (s + 1) & m->mask;
        swoop_idmap_entry_t *e = &m->slots[next];
        if (e->key == 0 || distance(m, next, e->key) == 0)
            break;
        m->slots[s] = *e;
        s = next;
    }
    m->slots[s].key = 0;
    m->slots[s].value = NULL;
    m->len--;
    size_t cap = m->mask + 1;
    if (cap > IDMAP_MIN_CAP && m->len * 8 < cap)
        resize(m, cap / 2);
    return value;
}
