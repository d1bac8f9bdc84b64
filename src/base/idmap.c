/*
 * The id map of idmap.h. The load factor stays at or below one half, so
 * probes are short; the table shrinks again after a burst drains.
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

static void resize(swoop_idmap_t *m, size_t cap)
{
    swoop_idmap_entry_t *old = m->slots;
    size_t old_cap = old ? m->mask + 1 : 0;
    m->slots = swoop_calloc(cap, sizeof(*m->slots));
    m->mask = cap - 1;
    m->shift = (unsigned)__builtin_ctzll((unsigned long long)cap);
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key == 0)
            continue;
        size_t s = slot_of(m, old[i].key);
        while (m->slots[s].key != 0)
            s = (s + 1) & m->mask;
        m->slots[s] = old[i];
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
    size_t s = slot_of(m, key);
    while (m->slots[s].key != 0) {
        assert(m->slots[s].key != key);
        s = (s + 1) & m->mask;
    }
    m->slots[s].key = key;
    m->slots[s].value = value;
    m->len++;
}

void *swoop__idmap_get(const swoop_idmap_t *m, int64_t key)
{
    if (m->slots == NULL || key <= 0)
        return NULL;
    size_t s = slot_of(m, key);
    for (;;) {
        int64_t k = m->slots[s].key;
        if (k == key)
            return m->slots[s].value;
        if (k == 0)
            return NULL;
        s = (s + 1) & m->mask;
    }
}

void *swoop__idmap_del(swoop_idmap_t *m, int64_t key)
{
    if (m->slots == NULL || key <= 0)
        return NULL;
    size_t s = slot_of(m, key);
    for (;;) {
        int64_t k = m->slots[s].key;
        if (k == 0)
            return NULL;
        if (k == key)
            break;
        s = (s + 1) & m->mask;
    }
    void *value = m->slots[s].value;
    /*
     * Backward shift: pull later entries of the probe run into the hole when
     * their home slot does not lie (cyclically) between the hole and them.
     */
    size_t hole = s;
    size_t i = s;
    for (;;) {
        i = (i + 1) & m->mask;
        if (m->slots[i].key == 0)
            break;
        size_t home = slot_of(m, m->slots[i].key);
        if (((i - home) & m->mask) >= ((i - hole) & m->mask)) {
            m->slots[hole] = m->slots[i];
            hole = i;
        }
    }
    m->slots[hole].key = 0;
    m->slots[hole].value = NULL;
    m->len--;
    size_t cap = m->mask + 1;
    if (cap > IDMAP_MIN_CAP && m->len * 8 < cap)
        resize(m, cap / 2);
    return value;
}
