/*
 * The shared hash table. One segment holds, in order: a header (sizes, the
 * pool lock, the free list and the counters), the buckets (a lock, the
 * chain head and an update counter, one cache line each) and the row pool.
 * Rows are linked by index, never by pointer, so the segment means the same
 * thing at any address.
 *
 * Capacity. Every row, whether it heads its bucket's chain or hangs behind
 * another, comes from the same pool of rows + ceil(rows * ratio) rows.
 * Collisions therefore cost chain length, never capacity: `rows` keys always
 * fit, even if they all share one bucket (tests/unit/shm/table.c proves it).
 *
 * Locking. A bucket's lock (an owner-tid spinlock, see bucket_lock) guards
 * the chain walk and every value of the rows in it; there are at least as
 * many buckets as rows, so it is in effect a row lock (Swoole keeps its row
 * lock in the bucket's head row the same way). Structural changes (taking a
 * row from the pool and linking it, unlinking and returning it) also hold
 * the pool mutex (robust pthread), always taken after a bucket lock. Hence
 * under the pool mutex alone the chains, the free list and the counters are
 * stable.
 *
 * Crash recovery (both locks survive their owner's death, see lock.c). Each
 * structural step commits with one aligned store: a new row is fully written
 * before `head` points at it, and unlinking is one store to `head` or
 * `prev->next`. So the chains are always walkable and always the truth. A
 * survivor that gets the pool mutex with SWOOP_EOWNERDEAD rebuilds everything
 * derived from the chains (free list, per-bucket lengths, used and conflict
 * counts) in one O(buckets + capacity) pass; a row a dead process took from
 * the pool but never linked goes back to the pool. Values: single INT/FLOAT
 * writes and incr are one aligned 8-byte store. Multi-byte writes (strings,
 * set_row) go to the row's spare copy of its values, which is then made
 * current by one byte store (`cur`). A survivor that takes over a dead
 * owner's bucket lock therefore has nothing to repair: every row holds its
 * last complete write, never a half-written one.
 */
#include <swoop/table.h>

#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <swoop/lock.h>
#include <swoop/shm.h>

#include "base/clock.h"
#include "base/internal.h"
#include "base/ratelimit.h"
#include "shm/internal.h"

#define NIL             UINT32_MAX
#define TABLE_MAGIC     0x73776f6f70746231ull /* "swooptb1" */
#define KEY_MAX_DEFAULT 63
#define KEY_MAX_LIMIT   1024
#define COLUMN_NAME_MAX 63
#define COLUMN_MAX      256
#define STRING_MAX      (1u << 20)
#define RATIO_MAX       10.0
#define ROWS_MAX        (1u << 30)

typedef struct {
    char name[COLUMN_NAME_MAX + 1];
    swoop_table_type_t type;
    size_t size;   /* STRING: max length */
    size_t offset; /* within a value copy */
} column_t;

/* The segment header. Fields below the lock are guarded by it. */
typedef struct {
    uint64_t magic;
    uint32_t rows, capacity, nbuckets, row_size;
    uint32_t data_size, key_max;
    swoop_mutex_t pool_lock;
    uint32_t free_head;
    uint32_t used; /* also read without the lock (count) */
    uint32_t conflict_used;
    uint32_t conflict_max;
    uint64_t insert_count, delete_count, full_count;
    uint64_t recovered_count; /* atomic */
    uint64_t seed;            /* hash seed, random per table */
} table_hdr_t;

/*
 * Two buckets per cache line: the bucket array of a table stays half as big
 * (and more of it in cache, which is what a lookup pays for: measured +4 %
 * on get), while two processes contending for the two buckets of one line is
 * rare with random keys.
 */
typedef struct {
    swoop_spinlock_t lock; /* owner tid; see bucket_lock */
    uint32_t head;         /* first row index or NIL */
    uint32_t len;          /* chain length; guarded by the pool lock */
    uint64_t updates;      /* writes to existing rows; under the bucket lock */
    char pad[32 - sizeof(swoop_spinlock_t) - 16];
} bucket_t;

_Static_assert(sizeof(bucket_t) == 32, "two buckets per cache line");

/* A row: this header, two copies of the values, then the key (key_max + 1 bytes, rounded to 8). */
typedef struct {
    uint32_t next;      /* next row in the bucket chain */
    uint32_t next_free; /* next row in the free list */
    uint64_t hash;
    uint16_t keylen;
    uint8_t cur;    /* which value copy is current */
    uint8_t in_use; /* on a chain; guarded by the pool lock */
    uint32_t pad;
} row_t;

_Static_assert(sizeof(row_t) == 24, "row header layout is fixed");

struct swoop_table_s {
    size_t rows;
    double ratio;
    size_t key_max;
    int shm_key;
    column_t *cols;
    size_t ncols;
    size_t data_size;
    /* Set by create. */
    swoop_shm_t *shm;
    table_hdr_t *hdr;
    bucket_t *buckets;
    char *pool;
    size_t row_size;
    size_t key_space;
    uint64_t mask;
    uint64_t seed; /* copy of hdr->seed */
};

typedef struct {
    size_t capacity, nbuckets, row_size, key_space, hdr_size, total;
} layout_t;

static size_t round8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t column_bytes(swoop_table_type_t type, size_t size)
{
    return type == SWOOP_TABLE_STRING ? round8(4 + size) : 8;
}

/* Computes the segment layout; 0 on success, SWOOP_EINVAL if too large. */
static int layout_compute(size_t rows, double ratio, size_t key_max, size_t data_size, layout_t *l)
{
    if (rows == 0 || rows > ROWS_MAX || !(ratio >= 0 && ratio <= RATIO_MAX) || key_max == 0 ||
        key_max > KEY_MAX_LIMIT)
        return SWOOP_EINVAL;
    /* ceil() by hand: the library does not link libm. */
    double extra = (double)rows * ratio;
    size_t headroom = (size_t)extra;
    if ((double)headroom < extra)
        headroom++;
    l->capacity = rows + headroom;
    if (l->capacity >= NIL)
        return SWOOP_EINVAL;
    l->nbuckets = 1;
    while (l->nbuckets < rows)
        l->nbuckets <<= 1;
    l->key_space = round8(key_max + 1);
    l->row_size = sizeof(row_t) + l->key_space + 2 * data_size;
    l->hdr_size = (sizeof(table_hdr_t) + 63) & ~(size_t)63;
    l->total = l->hdr_size + l->nbuckets * sizeof(bucket_t) + l->capacity * l->row_size;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    l->total = (l->total + page - 1) / page * page;
    return 0;
}

/* ---- hashing ---- */

/* 64x64 -> 128-bit multiply, folded: the core step of the hash. */
static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/*
 * Our own small hash: eight bytes at a time, each word xored into the state
 * and mixed by a folded 128-bit multiply with an odd constant; a random
 * per-table seed and the length start the state (keys often come from
 * peers: without the seed, colliding keys could be computed offline and
 * turn lookups into long chain walks), and a final multiply spreads the last
 * word into every bit, since the bucket index takes the low bits. Not a
 * cryptographic hash.
 */
uint64_t swoop__table_hash(uint64_t seed, const char *key, size_t len)
{
    const uint64_t k1 = 0x9fb21c651e98df25ull, k2 = 0xd6e8feb86659fd93ull;
    uint64_t h = fold_mul(seed ^ k1, k2) ^ ((uint64_t)len * k2);
    const unsigned char *p = (const unsigned char *)key;
    size_t n = len;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = fold_mul(h ^ w, k2);
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = fold_mul(h ^ w ^ ((uint64_t)n << 59), k1);
    return fold_mul(h, k2);
}

/* ---- small helpers ---- */

static inline row_t *row_at(const swoop_table_t *t, uint32_t idx)
{
    return (row_t *)(t->pool + (size_t)idx * t->row_size);
}

/* Values come right after the header, so a short key, the header and an INT share a line. */
static inline char *row_key(const swoop_table_t *t, row_t *row)
{
    return (char *)(row + 1) + 2 * t->data_size;
}

static inline char *row_values(const swoop_table_t *t, row_t *row, unsigned copy)
{
    return (char *)(row + 1) + copy * t->data_size;
}

static inline char *row_cur(const swoop_table_t *t, row_t *row)
{
    return row_values(t, row, row->cur);
}

static const column_t *column_find(const swoop_table_t *t, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < t->ncols; i++) {
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    }
    return NULL;
}

/* Checks state and key; stores the key length. */
static int key_check(const swoop_table_t *t, const char *key, size_t *len, const char *call)
{
    if (t == NULL || t->hdr == NULL) {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: table not created", call);
        return t == NULL ? SWOOP_EINVAL : SWOOP_ESTATE;
    }
    if (key == NULL || key[0] == '\0') {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: empty key", call);
        return SWOOP_EINVAL;
    }
    size_t n = strnlen(key, t->key_max + 1);
    if (n > t->key_max) {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: key longer than the table's limit of %zu bytes", call,
                  t->key_max);
        return SWOOP_ENAMETOOLONG;
    }
    *len = n;
    return 0;
}

static int column_check(const swoop_table_t *t, const char *name, swoop_table_type_t type,
                        const column_t **out, const char *call)
{
    const column_t *c = column_find(t, name);
    if (c == NULL) {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: no column '%s'", call, name ? name : "(null)");
        return SWOOP_ENOENT;
    }
    if (type != 0 && c->type != type) {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: column '%s' has another type", call, name);
        return SWOOP_EINVAL;
    }
    *out = c;
    return 0;
}

/* ---- locks and recovery ---- */

/*
 * Bucket locks are owner-tid spinlocks (lock.c), not pthread mutexes: an
 * uncontended lock is one compare-and-swap and the unlock one release
 * store, about half the cost of a robust mutex, which matters on a path as
 * short as a get. Recovery is still by death, not by time: a waiter that
 * keeps finding the lock taken checks /proc for the owner and takes over
 * only when it is gone.
 */
static int bucket_lock(swoop_table_t *t, bucket_t *b)
{
    uint64_t zero = 0;
    if (swoop_likely(__atomic_compare_exchange_n(&b->lock._word, &zero, swoop__self_lockword(), 0,
                                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)))
        return 0;
    int r = swoop_spinlock_lock(&b->lock);
    if (r == SWOOP_EOWNERDEAD) {
        /* Rows are consistent by construction (see the top of this file). */
        __atomic_add_fetch(&t->hdr->recovered_count, 1, __ATOMIC_RELAXED);
        return 0;
    }
    return r;
}

static void bucket_unlock(bucket_t *b)
{
    __atomic_store_n(&b->lock._word, 0, __ATOMIC_RELEASE);
}

/*
 * Rebuilds everything derived from the chains after a process died holding
 * the pool lock. The caller holds the pool lock, so no chain can change.
 */
static void pool_rebuild(swoop_table_t *t)
{
    table_hdr_t *h = t->hdr;
    for (uint32_t i = 0; i < h->capacity; i++)
        row_at(t, i)->in_use = 0;
    uint32_t used = 0, conflicts = 0;
    for (size_t bi = 0; bi < h->nbuckets; bi++) {
        bucket_t *b = &t->buckets[bi];
        uint32_t n = 0, prev = NIL;
        for (uint32_t idx = b->head; idx != NIL; idx = row_at(t, idx)->next) {
            /* A loop or a row on two chains can only come from a bug: cut it off. */
            SWOOP_ASSERT(idx < h->capacity);
            row_t *row = row_at(t, idx);
            if (row->in_use) {
                swoop_log(SWOOP_LOG_ERROR, 0, "table %p: bucket %zu chain corrupt, cut", (void *)t,
                          bi);
                if (prev == NIL)
                    b->head = NIL;
                else
                    row_at(t, prev)->next = NIL;
                break;
            }
            row->in_use = 1;
            n++;
            prev = idx;
        }
        b->len = n;
        used += n;
        conflicts += n > 0 ? n - 1 : 0;
        if (n > h->conflict_max)
            h->conflict_max = n;
    }
    h->free_head = NIL;
    for (uint32_t i = h->capacity; i-- > 0;) {
        row_t *row = row_at(t, i);
        if (!row->in_use) {
            row->next_free = h->free_head;
            h->free_head = i;
        }
    }
    __atomic_store_n(&h->used, used, __ATOMIC_RELAXED);
    h->conflict_used = conflicts;
    swoop_log(SWOOP_LOG_WARNING, 0, "table %p: pool rebuilt after a dead owner, %u rows used",
              (void *)t, used);
}

static int pool_lock(swoop_table_t *t)
{
    int r = swoop_mutex_lock(&t->hdr->pool_lock);
    if (r == SWOOP_EOWNERDEAD) {
        __atomic_add_fetch(&t->hdr->recovered_count, 1, __ATOMIC_RELAXED);
        pool_rebuild(t);
        return 0;
    }
    return r;
}

static void pool_unlock(swoop_table_t *t)
{
    swoop_mutex_unlock(&t->hdr->pool_lock);
}

/* ---- chain operations (bucket lock held) ---- */

/* Key comparison inlined 8 bytes at a time: keys are short, a libc call costs more. */
static inline int key_equal(const char *a, const char *b, size_t len)
{
    for (; len >= 8; a += 8, b += 8, len -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return 0;
    }
    for (; len > 0; a++, b++, len--) {
        if (*a != *b)
            return 0;
    }
    return 1;
}

static row_t *chain_find(swoop_table_t *t, bucket_t *b, uint64_t hash, const char *key, size_t len,
                         uint32_t *prev_out)
{
    uint32_t prev = NIL;
    for (uint32_t idx = b->head; idx != NIL;) {
        row_t *row = row_at(t, idx);
        if (row->hash == hash && row->keylen == len && key_equal(row_key(t, row), key, len)) {
            if (prev_out != NULL)
                *prev_out = prev;
            return row;
        }
        prev = idx;
        idx = row->next;
    }
    return NULL;
}

/* Takes a row from the pool and links it at the head of `b`, values zero. */
static int row_insert(swoop_table_t *t, bucket_t *b, uint64_t hash, const char *key, size_t len,
                      row_t **out)
{
    int r = pool_lock(t);
    if (r < 0)
        return r;
    table_hdr_t *h = t->hdr;
    uint32_t idx = h->free_head;
    if (idx == NIL) {
        h->full_count++;
        pool_unlock(t);
        swoop__log_limited(SWOOP_LOG_WARNING, 0, "table %p full: all %u rows used (%u asked for)",
                           (void *)t, h->capacity, h->rows);
        return SWOOP_ENOSPC;
    }
    row_t *row = row_at(t, idx);
    h->free_head = row->next_free;
    row->next_free = NIL;
    row->hash = hash;
    row->keylen = (uint16_t)len;
    memcpy(row_key(t, row), key, len);
    row_key(t, row)[len] = '\0';
    memset(row_values(t, row, 0), 0, 2 * t->data_size);
    row->cur = 0;
    row->next = b->head;
    row->in_use = 1;
    /*
     * The commit: the row is now on the chain. A release store, so neither the
     * compiler nor the CPU moves it before the row's fields and `next` (a
     * process killed between them must leave a walkable chain).
     */
    __atomic_store_n(&b->head, idx, __ATOMIC_RELEASE);
    b->len++;
    if (b->len > 1)
        h->conflict_used++;
    if (b->len > h->conflict_max)
        h->conflict_max = b->len;
    __atomic_store_n(&h->used, h->used + 1, __ATOMIC_RELAXED);
    h->insert_count++;
    pool_unlock(t);
    *out = row;
    return 0;
}

/* Unlinks `row` (whose predecessor is `prev`) and returns it to the pool. */
static int row_remove(swoop_table_t *t, bucket_t *b, row_t *row, uint32_t prev)
{
    int r = pool_lock(t);
    if (r < 0)
        return r;
    table_hdr_t *h = t->hdr;
    uint32_t idx = (uint32_t)(((char *)row - t->pool) / t->row_size);
    /* The commit, as a single release store (see row_insert). */
    if (prev == NIL)
        __atomic_store_n(&b->head, row->next, __ATOMIC_RELEASE);
    else
        __atomic_store_n(&row_at(t, prev)->next, row->next, __ATOMIC_RELEASE);
    b->len--;
    if (b->len > 0)
        h->conflict_used--;
    row->in_use = 0;
    row->next_free = h->free_head;
    h->free_head = idx;
    __atomic_store_n(&h->used, h->used - 1, __ATOMIC_RELAXED);
    h->delete_count++;
    pool_unlock(t);
    return 0;
}

/*
 * Locks the bucket of `key` and finds its row; with `create`, inserts it.
 * On success (0) the bucket is locked and *row_out set (NULL if absent and
 * not created); on failure nothing is held.
 */
static int row_acquire(swoop_table_t *t, const char *key, size_t len, int create, bucket_t **b_out,
                       row_t **row_out, uint32_t *prev_out)
{
    uint64_t hash = swoop__table_hash(t->seed, key, len);
    bucket_t *b = &t->buckets[hash & t->mask];
    int r = bucket_lock(t, b);
    if (r < 0)
        return r;
    row_t *row = chain_find(t, b, hash, key, len, prev_out);
    if (row == NULL && create) {
        r = row_insert(t, b, hash, key, len, &row);
        if (r < 0) {
            bucket_unlock(b);
            return r;
        }
    } else if (row != NULL && create) {
        __atomic_store_n(&b->updates, b->updates + 1, __ATOMIC_RELAXED);
    }
    *b_out = b;
    *row_out = row;
    return 0;
}

/* ---- lifecycle ---- */

int swoop_table_new(swoop_table_t **out, size_t rows, double conflict_ratio)
{
    layout_t l;
    if (out == NULL || layout_compute(rows, conflict_ratio, KEY_MAX_DEFAULT, 8, &l) < 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_table_new: invalid rows %zu or conflict ratio %g",
                  rows, conflict_ratio);
        return SWOOP_EINVAL;
    }
    swoop_table_t *t = swoop_calloc(1, sizeof(*t));
    t->rows = rows;
    t->ratio = conflict_ratio;
    t->key_max = KEY_MAX_DEFAULT;
    *out = t;
    return 0;
}

int swoop_table_column(swoop_table_t *t, const char *name, swoop_table_type_t type, size_t size)
{
    if (t == NULL || name == NULL || name[0] == '\0' || strlen(name) > COLUMN_NAME_MAX ||
        (type != SWOOP_TABLE_INT && type != SWOOP_TABLE_FLOAT && type != SWOOP_TABLE_STRING) ||
        (type == SWOOP_TABLE_STRING && (size == 0 || size > STRING_MAX))) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_table_column: invalid column '%s'",
                  name ? name : "(null)");
        return SWOOP_EINVAL;
    }
    if (t->hdr != NULL) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_table_column('%s'): table already created", name);
        return SWOOP_ESTATE;
    }
    if (column_find(t, name) != NULL || t->ncols >= COLUMN_MAX) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_table_column: duplicate column '%s' or too many",
                  name);
        return SWOOP_EINVAL;
    }
    t->cols = swoop_realloc(t->cols, (t->ncols + 1) * sizeof(column_t));
    column_t *c = &t->cols[t->ncols++];
    memset(c, 0, sizeof(*c));
    strcpy(c->name, name);
    c->type = type;
    c->size = type == SWOOP_TABLE_STRING ? size : 8;
    c->offset = t->data_size;
    t->data_size += column_bytes(type, size);
    return 0;
}

int swoop_table_set_key_max(swoop_table_t *t, size_t key_max)
{
    if (t == NULL || key_max == 0 || key_max > KEY_MAX_LIMIT) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_table_set_key_max: %zu not in 1..%d", key_max,
                  KEY_MAX_LIMIT);
        return SWOOP_EINVAL;
    }
    if (t->hdr != NULL)
        return SWOOP_ESTATE;
    t->key_max = key_max;
    return 0;
}

int swoop_table_set_shm_key(swoop_table_t *t, int key)
{
    if (t == NULL)
        return SWOOP_EINVAL;
    if (t->hdr != NULL)
        return SWOOP_ESTATE;
    t->shm_key = key;
    return 0;
}

int swoop_table_create(swoop_table_t *t)
{
    if (t == NULL)
        return SWOOP_EINVAL;
    if (t->hdr != NULL || t->ncols == 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_table_create: %s",
                  t->hdr ? "already created" : "no columns");
        return SWOOP_ESTATE;
    }
    layout_t l;
    int r = layout_compute(t->rows, t->ratio, t->key_max, t->data_size, &l);
    if (r < 0)
        return r;
    r = swoop_shm_new(&t->shm, l.total, t->shm_key);
    if (r < 0) {
        swoop_log(SWOOP_LOG_ERROR, r, "swoop_table_create: no shared memory for %zu bytes",
                  l.total);
        return r;
    }
    char *base = swoop_shm_ptr(t->shm);
    table_hdr_t *h = (table_hdr_t *)base;
    t->buckets = (bucket_t *)(base + l.hdr_size);
    t->pool = base + l.hdr_size + l.nbuckets * sizeof(bucket_t);
    t->row_size = l.row_size;
    t->key_space = l.key_space;
    t->mask = l.nbuckets - 1;
    h->magic = TABLE_MAGIC;
    h->rows = (uint32_t)t->rows;
    h->capacity = (uint32_t)l.capacity;
    h->nbuckets = (uint32_t)l.nbuckets;
    h->row_size = (uint32_t)l.row_size;
    h->data_size = (uint32_t)t->data_size;
    h->key_max = (uint32_t)t->key_max;
    if (getrandom(&h->seed, sizeof(h->seed), GRND_NONBLOCK) != (ssize_t)sizeof(h->seed))
        h->seed = swoop__clock_ns() ^ ((uint64_t)getpid() << 32); /* no entropy yet: still varies */
    t->seed = h->seed;
    r = swoop_mutex_init(&h->pool_lock);
    for (size_t i = 0; r == 0 && i < l.nbuckets; i++) {
        t->buckets[i].head = NIL;
        swoop_spinlock_init(&t->buckets[i].lock);
    }
    if (r < 0) {
        swoop_shm_free(t->shm);
        t->shm = NULL;
        return r;
    }
    /* The free list in index order, so a fresh table fills from the front. */
    for (uint32_t i = 0; i < l.capacity; i++) {
        row_t *row = row_at(t, i);
        row->next = NIL;
        row->next_free = i + 1 < l.capacity ? i + 1 : NIL;
    }
    h->free_head = 0;
    t->hdr = h;
    return 0;
}

void swoop_table_free(swoop_table_t *t)
{
    if (t == NULL)
        return;
    swoop_shm_free(t->shm);
    swoop_free(t->cols);
    swoop_free(t);
}

size_t swoop_table_memory_size_ex(size_t rows, double conflict_ratio, size_t key_max,
                                  const swoop_table_column_def_t *columns, size_t ncolumns)
{
    size_t data = 0;
    for (size_t i = 0; i < ncolumns; i++) {
        swoop_table_type_t type = columns[i].type;
        if (type != SWOOP_TABLE_INT && type != SWOOP_TABLE_FLOAT && type != SWOOP_TABLE_STRING)
            return 0;
        if (type == SWOOP_TABLE_STRING && (columns[i].size == 0 || columns[i].size > STRING_MAX))
            return 0;
        data += column_bytes(type, columns[i].size);
    }
    layout_t l;
    if (ncolumns == 0 || layout_compute(rows, conflict_ratio, key_max, data, &l) < 0)
        return 0;
    return l.total;
}

size_t swoop_table_memory_size(size_t rows, double conflict_ratio,
                               const swoop_table_column_def_t *columns, size_t ncolumns)
{
    return swoop_table_memory_size_ex(rows, conflict_ratio, KEY_MAX_DEFAULT, columns, ncolumns);
}

/* ---- single-column access ---- */

static int set_scalar(swoop_table_t *t, const char *key, const char *column,
                      swoop_table_type_t type, const void *v8, const char *call)
{
    size_t len;
    const column_t *c;
    int r = key_check(t, key, &len, call);
    if (r == 0)
        r = column_check(t, column, type, &c, call);
    if (r < 0)
        return r;
    bucket_t *b;
    row_t *row;
    r = row_acquire(t, key, len, 1, &b, &row, NULL);
    if (r < 0)
        return r;
    /* One aligned 8-byte store into the current copy: never torn. */
    memcpy(row_cur(t, row) + c->offset, v8, 8);
    bucket_unlock(b);
    return 0;
}

int swoop_table_set_int(swoop_table_t *t, const char *key, const char *column, int64_t v)
{
    return set_scalar(t, key, column, SWOOP_TABLE_INT, &v, "swoop_table_set_int");
}

int swoop_table_set_float(swoop_table_t *t, const char *key, const char *column, double v)
{
    return set_scalar(t, key, column, SWOOP_TABLE_FLOAT, &v, "swoop_table_set_float");
}

int swoop_table_set_string(swoop_table_t *t, const char *key, const char *column, const void *data,
                           size_t len)
{
    swoop_table_field_t f = {.column = column, .s = data, .len = len};
    if (t != NULL && t->hdr != NULL) {
        const column_t *c;
        int r = column_check(t, column, SWOOP_TABLE_STRING, &c, "swoop_table_set_string");
        if (r < 0)
            return r;
    }
    return swoop_table_set_row(t, key, &f, 1);
}

static int get_scalar(swoop_table_t *t, const char *key, const char *column,
                      swoop_table_type_t type, void *out8, const char *call)
{
    size_t len;
    const column_t *c;
    int r = key_check(t, key, &len, call);
    if (r == 0)
        r = column_check(t, column, type, &c, call);
    if (r < 0)
        return r;
    if (out8 == NULL)
        return SWOOP_EINVAL;
    bucket_t *b;
    row_t *row;
    r = row_acquire(t, key, len, 0, &b, &row, NULL);
    if (r < 0)
        return r;
    if (row == NULL) {
        bucket_unlock(b);
        return SWOOP_ENOENT;
    }
    memcpy(out8, row_cur(t, row) + c->offset, 8);
    bucket_unlock(b);
    return 0;
}

int swoop_table_get_int(swoop_table_t *t, const char *key, const char *column, int64_t *out)
{
    return get_scalar(t, key, column, SWOOP_TABLE_INT, out, "swoop_table_get_int");
}

int swoop_table_get_float(swoop_table_t *t, const char *key, const char *column, double *out)
{
    return get_scalar(t, key, column, SWOOP_TABLE_FLOAT, out, "swoop_table_get_float");
}

int swoop_table_get_string(swoop_table_t *t, const char *key, const char *column, void *buf,
                           size_t cap, size_t *len_out)
{
    size_t len;
    const column_t *c;
    int r = key_check(t, key, &len, "swoop_table_get_string");
    if (r == 0)
        r = column_check(t, column, SWOOP_TABLE_STRING, &c, "swoop_table_get_string");
    if (r < 0)
        return r;
    bucket_t *b;
    row_t *row;
    r = row_acquire(t, key, len, 0, &b, &row, NULL);
    if (r < 0)
        return r;
    if (row == NULL) {
        bucket_unlock(b);
        return SWOOP_ENOENT;
    }
    const char *v = row_cur(t, row) + c->offset;
    uint32_t n;
    memcpy(&n, v, 4);
    if (len_out != NULL)
        *len_out = n;
    if (n > cap || (n > 0 && buf == NULL)) {
        bucket_unlock(b);
        return SWOOP_E2BIG;
    }
    if (n > 0)
        memcpy(buf, v + 4, n);
    bucket_unlock(b);
    return 0;
}

/* ---- whole rows ---- */

size_t swoop_table_row_size(const swoop_table_t *t)
{
    return t->data_size;
}

int swoop_table_set_row(swoop_table_t *t, const char *key, const swoop_table_field_t *fields,
                        size_t n)
{
    size_t len;
    int r = key_check(t, key, &len, "swoop_table_set_row");
    if (r < 0)
        return r;
    if (fields == NULL && n > 0)
        return SWOOP_EINVAL;
    /* Check every field first: the write is all or nothing. */
    for (size_t i = 0; i < n; i++) {
        const column_t *c;
        r = column_check(t, fields[i].column, 0, &c, "swoop_table_set_row");
        if (r < 0)
            return r;
        if (c->type == SWOOP_TABLE_STRING &&
            (fields[i].len > c->size || (fields[i].len > 0 && fields[i].s == NULL))) {
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "swoop_table_set_row: %zu bytes for column '%s' of %zu bytes refused",
                      fields[i].len, c->name, c->size);
            return SWOOP_E2BIG;
        }
    }
    bucket_t *b;
    row_t *row;
    r = row_acquire(t, key, len, 1, &b, &row, NULL);
    if (r < 0)
        return r;
    /* Write the spare copy, then flip `cur` with one store (the commit). */
    unsigned spare = row->cur ^ 1u;
    char *dst = row_values(t, row, spare);
    memcpy(dst, row_cur(t, row), t->data_size);
    for (size_t i = 0; i < n; i++) {
        const column_t *c = column_find(t, fields[i].column);
        char *v = dst + c->offset;
        if (c->type == SWOOP_TABLE_INT) {
            memcpy(v, &fields[i].i, 8);
        } else if (c->type == SWOOP_TABLE_FLOAT) {
            memcpy(v, &fields[i].f, 8);
        } else {
            uint32_t sl = (uint32_t)fields[i].len;
            memcpy(v, &sl, 4);
            if (sl > 0)
                memcpy(v + 4, fields[i].s, sl);
        }
    }
    __atomic_store_n(&row->cur, (uint8_t)spare, __ATOMIC_RELEASE);
    bucket_unlock(b);
    return 0;
}

int swoop_table_get_row(swoop_table_t *t, const char *key, void *out, size_t cap)
{
    size_t len;
    int r = key_check(t, key, &len, "swoop_table_get_row");
    if (r < 0)
        return r;
    if (out == NULL || cap < t->data_size) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_table_get_row: buffer of %zu bytes, need %zu", cap,
                  t->data_size);
        return SWOOP_EINVAL;
    }
    bucket_t *b;
    row_t *row;
    r = row_acquire(t, key, len, 0, &b, &row, NULL);
    if (r < 0)
        return r;
    if (row == NULL) {
        bucket_unlock(b);
        return SWOOP_ENOENT;
    }
    memcpy(out, row_cur(t, row), t->data_size);
    bucket_unlock(b);
    return 0;
}

int swoop_table_row_get_int(const swoop_table_t *t, const void *row, const char *column,
                            int64_t *out)
{
    const column_t *c;
    int r = column_check(t, column, SWOOP_TABLE_INT, &c, "swoop_table_row_get_int");
    if (r < 0)
        return r;
    memcpy(out, (const char *)row + c->offset, 8);
    return 0;
}

int swoop_table_row_get_float(const swoop_table_t *t, const void *row, const char *column,
                              double *out)
{
    const column_t *c;
    int r = column_check(t, column, SWOOP_TABLE_FLOAT, &c, "swoop_table_row_get_float");
    if (r < 0)
        return r;
    memcpy(out, (const char *)row + c->offset, 8);
    return 0;
}

int swoop_table_row_get_string(const swoop_table_t *t, const void *row, const char *column,
                               const void **data, size_t *len)
{
    const column_t *c;
    int r = column_check(t, column, SWOOP_TABLE_STRING, &c, "swoop_table_row_get_string");
    if (r < 0)
        return r;
    uint32_t n;
    memcpy(&n, (const char *)row + c->offset, 4);
    *data = (const char *)row + c->offset + 4;
    *len = n;
    return 0;
}

/* ---- incr, del, exists, count ---- */

int swoop_table_incr(swoop_table_t *t, const char *key, const char *column, int64_t by,
                     int64_t *result)
{
    size_t len;
    const column_t *c;
    int r = key_check(t, key, &len, "swoop_table_incr");
    if (r == 0)
        r = column_check(t, column, SWOOP_TABLE_INT, &c, "swoop_table_incr");
    if (r < 0)
        return r;
    bucket_t *b;
    row_t *row;
    r = row_acquire(t, key, len, 1, &b, &row, NULL);
    if (r < 0)
        return r;
    char *v = row_cur(t, row) + c->offset;
    uint64_t x;
    memcpy(&x, v, 8);
    x += (uint64_t)by; /* wraps instead of overflowing (undefined for int64_t) */
    memcpy(v, &x, 8);
    bucket_unlock(b);
    if (result != NULL)
        *result = (int64_t)x;
    return 0;
}

int swoop_table_decr(swoop_table_t *t, const char *key, const char *column, int64_t by,
                     int64_t *result)
{
    return swoop_table_incr(t, key, column, (int64_t)(0 - (uint64_t)by), result);
}

int swoop_table_del(swoop_table_t *t, const char *key)
{
    size_t len;
    int r = key_check(t, key, &len, "swoop_table_del");
    if (r < 0)
        return r;
    bucket_t *b;
    row_t *row;
    uint32_t prev = NIL;
    r = row_acquire(t, key, len, 0, &b, &row, &prev);
    if (r < 0)
        return r;
    if (row == NULL) {
        bucket_unlock(b);
        return SWOOP_ENOENT;
    }
    r = row_remove(t, b, row, prev);
    bucket_unlock(b);
    return r;
}

int swoop_table_exists(swoop_table_t *t, const char *key)
{
    size_t len;
    int r = key_check(t, key, &len, "swoop_table_exists");
    if (r < 0)
        return r;
    bucket_t *b;
    row_t *row;
    r = row_acquire(t, key, len, 0, &b, &row, NULL);
    if (r < 0)
        return r;
    bucket_unlock(b);
    return row != NULL;
}

size_t swoop_table_count(const swoop_table_t *t)
{
    if (t == NULL || t->hdr == NULL)
        return 0;
    return __atomic_load_n(&t->hdr->used, __ATOMIC_RELAXED);
}

/* ---- iteration and stats ---- */

int swoop_table_foreach(swoop_table_t *t, swoop_table_foreach_cb cb, void *arg)
{
    if (t == NULL || cb == NULL)
        return SWOOP_EINVAL;
    if (t->hdr == NULL)
        return SWOOP_ESTATE;
    /*
     * One bucket at a time: copy its rows (key and current values) under the
     * bucket lock, release it, then call back, so the callback may use the
     * table freely and every row it sees is a complete write.
     */
    size_t slot = t->key_space + t->data_size, cap = 4;
    char *snap = swoop_malloc(cap * slot);
    int result = 0;
    for (size_t bi = 0; bi <= t->mask && result == 0; bi++) {
        bucket_t *b = &t->buckets[bi];
        int r = bucket_lock(t, b);
        if (r < 0) {
            result = r;
            break;
        }
        size_t n = 0;
        for (uint32_t idx = b->head; idx != NIL; idx = row_at(t, idx)->next) {
            if (n == cap) {
                cap *= 2;
                snap = swoop_realloc(snap, cap * slot);
            }
            row_t *row = row_at(t, idx);
            memcpy(snap + n * slot, row_key(t, row), row->keylen + 1u);
            memcpy(snap + n * slot + t->key_space, row_cur(t, row), t->data_size);
            n++;
        }
        bucket_unlock(b);
        for (size_t i = 0; i < n && result == 0; i++) {
            result = cb(t, snap + i * slot, snap + i * slot + t->key_space, arg);
        }
    }
    swoop_free(snap);
    return result;
}

int swoop_table_stats(const swoop_table_t *ct, swoop_table_stats_t *st)
{
    if (ct == NULL || st == NULL)
        return SWOOP_EINVAL;
    if (ct->hdr == NULL)
        return SWOOP_ESTATE;
    swoop_table_t *t = (swoop_table_t *)ct; /* locking is not a logical change */
    memset(st, 0, sizeof(*st));
    uint64_t updates = 0;
    for (size_t i = 0; i <= t->mask; i++)
        updates += __atomic_load_n(&t->buckets[i].updates, __ATOMIC_RELAXED);
    int r = pool_lock(t);
    if (r < 0)
        return r;
    table_hdr_t *h = t->hdr;
    st->rows = h->rows;
    st->capacity = h->capacity;
    st->used = h->used;
    st->free = h->capacity - h->used;
    st->buckets = h->nbuckets;
    st->conflict_used = h->conflict_used;
    st->conflict_max_level = h->conflict_max;
    st->insert_count = h->insert_count;
    st->delete_count = h->delete_count;
    st->full_count = h->full_count;
    st->update_count = updates;
    pool_unlock(t);
    st->recovered_count = __atomic_load_n(&h->recovered_count, __ATOMIC_RELAXED);
    st->memory_size = swoop_shm_size(t->shm);
    return 0;
}

/* ---- test hooks ---- */

size_t swoop__table_bucket_of(const swoop_table_t *t, const char *key)
{
    return swoop__table_hash(t->seed, key, strlen(key)) & t->mask;
}

int swoop__table_lock_key(swoop_table_t *t, const char *key, int half_write, int64_t v)
{
    bucket_t *b;
    row_t *row;
    int r = row_acquire(t, key, strlen(key), 1, &b, &row, NULL);
    if (r < 0 || !half_write)
        return r;
    char *dst = row_values(t, row, row->cur ^ 1u);
    memcpy(dst, row_cur(t, row), t->data_size);
    for (size_t i = 0; i < t->ncols; i++) {
        if (t->cols[i].type == SWOOP_TABLE_INT)
            memcpy(dst + t->cols[i].offset, &v, 8);
    }
    return 0; /* no commit, and the lock stays held */
}

int swoop__table_lock_pool(swoop_table_t *t)
{
    return pool_lock(t);
}

int swoop__table_validate(swoop_table_t *t)
{
    int r = pool_lock(t);
    if (r < 0)
        return r;
    table_hdr_t *h = t->hdr;
    uint32_t used = 0, nfree = 0, conflicts = 0;
    int bad = 0;
    for (size_t bi = 0; bi <= t->mask && !bad; bi++) {
        uint32_t n = 0;
        for (uint32_t idx = t->buckets[bi].head; idx != NIL; idx = row_at(t, idx)->next) {
            row_t *row = row_at(t, idx);
            if (idx >= h->capacity || !row->in_use || (row->hash & t->mask) != bi ||
                n > h->capacity) {
                bad = 1;
                break;
            }
            n++;
        }
        if (n != t->buckets[bi].len)
            bad = 1;
        used += n;
        conflicts += n > 0 ? n - 1 : 0;
    }
    for (uint32_t idx = h->free_head; idx != NIL && !bad; idx = row_at(t, idx)->next_free) {
        if (idx >= h->capacity || row_at(t, idx)->in_use || ++nfree > h->capacity)
            bad = 1;
    }
    if (used != h->used || conflicts != h->conflict_used || used + nfree != h->capacity)
        bad = 1;
    pool_unlock(t);
    return bad ? SWOOP_EPROTO : 0;
}
