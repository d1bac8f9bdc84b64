/*
 * A fixed-size hash table in shared memory, Swoole's Table for C. Declare it
 * (swoop_table_new), add typed columns (swoop_table_column), optionally set
 * the key length limit, then swoop_table_create allocates it. Create it
 * before fork(): every child shares the same rows. Keys are NUL-terminated
 * strings of 1 to key_max bytes (default 63, at most 1024).
 *
 * Capacity: a table made for `rows` rows always holds `rows` keys, whatever
 * their hashes. All rows, whether first in their bucket or chained behind
 * another, come from one pool of rows + ceil(rows * conflict_ratio) rows, so
 * collisions never eat into the guarantee; conflict_ratio only adds headroom.
 * When the pool is empty an insert fails with SWOOP_ENOSPC and the stats show
 * it (used == capacity, full_count grows). A string longer than its column is
 * refused with SWOOP_E2BIG, never cut.
 *
 * Concurrency: every call is safe from any number of processes and threads.
 * Each bucket has a lock that guards its rows (there are at least as many
 * buckets as rows, so a lock covers about one row): a spinlock holding its
 * owner's thread id; one robust pthread mutex guards the free-row pool for
 * inserts and deletes. A
 * process killed while holding either is recovered by the next locker (see
 * docs/api/table.md); the row then holds its last complete write.
 *
 * Errors: SWOOP_ENOENT (missing key or column), SWOOP_EINVAL (bad argument,
 * wrong column type, empty key), SWOOP_ENAMETOOLONG (key longer than key_max),
 * SWOOP_E2BIG, SWOOP_ENOSPC,
 * SWOOP_ESTATE (a call made before create, or a column added after it).
 */
#ifndef SWOOP_TABLE_H
#define SWOOP_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/** A shared hash table (opaque). */
typedef struct swoop_table_s swoop_table_t;

/** Column types. */
typedef enum {
    SWOOP_TABLE_INT = 1,    /**< int64_t */
    SWOOP_TABLE_FLOAT = 2,  /**< double */
    SWOOP_TABLE_STRING = 3, /**< up to `size` bytes (binary safe) */
} swoop_table_type_t;

/** A column description, for swoop_table_memory_size. */
typedef struct swoop_table_column_def_s {
    const char *name;        /**< column name (unused by memory_size) */
    swoop_table_type_t type; /**< column type */
    size_t size;             /**< for SWOOP_TABLE_STRING: the maximum length */
} swoop_table_column_def_t;

/** One column's new value for swoop_table_set_row. */
typedef struct swoop_table_field_s {
    const char *column; /**< column name */
    int64_t i;          /**< value for an INT column */
    double f;           /**< value for a FLOAT column */
    const void *s;      /**< value for a STRING column ... */
    size_t len;         /**< ... and its length */
} swoop_table_field_t;

/** Table statistics (a consistent-enough snapshot; counters are exact when idle). */
typedef struct swoop_table_stats_s {
    size_t rows;               /**< rows asked for: always insertable */
    size_t capacity;           /**< rows in the pool: rows + conflict headroom */
    size_t used;               /**< rows holding a key (== swoop_table_count) */
    size_t free;               /**< capacity - used */
    size_t buckets;            /**< hash buckets (a power of two >= rows) */
    size_t conflict_used;      /**< used rows chained behind another row of their bucket */
    size_t conflict_max_level; /**< longest bucket chain ever seen */
    uint64_t insert_count;     /**< keys inserted */
    uint64_t update_count;     /**< writes to existing rows (set, incr, decr) */
    uint64_t delete_count;     /**< keys deleted */
    uint64_t full_count;       /**< inserts refused with SWOOP_ENOSPC */
    uint64_t recovered_count;  /**< locks recovered from dead owners */
    size_t memory_size;        /**< bytes of shared memory the table uses */
} swoop_table_stats_t;

/**
 * Called by swoop_table_foreach for each row with a private snapshot `row`
 * (read it with swoop_table_row_get_*). Return 0 to go on, nonzero to stop.
 * The callback may call any table function, including del on `key`.
 */
typedef int (*swoop_table_foreach_cb)(swoop_table_t *t, const char *key, const void *row,
                                      void *arg);

/**
 * Declares a table for `rows` rows (>= 1) with `conflict_ratio` (0 to 10)
 * extra rows of headroom per row. Nothing is allocated in shared memory yet.
 */
SWOOP_EXTERN int swoop_table_new(swoop_table_t **out, size_t rows, double conflict_ratio);

/**
 * Adds a column before create. `size` is the maximum length for a STRING
 * column (1 .. 1 MiB) and ignored otherwise. Names are 1..63 bytes and unique.
 */
SWOOP_EXTERN int swoop_table_column(swoop_table_t *t, const char *name, swoop_table_type_t type,
                                    size_t size);

/** Sets the longest key (1..1024 bytes, default 63), before create. */
SWOOP_EXTERN int swoop_table_set_key_max(swoop_table_t *t, size_t key_max);

/**
 * Uses a SysV segment with this key instead of an anonymous mapping, so
 * `ipcs -m` lists the table and tools can attach; before create.
 */
SWOOP_EXTERN int swoop_table_set_shm_key(swoop_table_t *t, int key);

/** Allocates the shared memory. Call once, before fork(). */
SWOOP_EXTERN int swoop_table_create(swoop_table_t *t);

/**
 * Releases the table. In the creating process the shared memory is freed;
 * in a forked child only the child's mapping goes. NULL is ignored.
 */
SWOOP_EXTERN void swoop_table_free(swoop_table_t *t);

/**
 * Returns the bytes of shared memory a table of `rows` rows, `conflict_ratio`
 * and these columns takes with the default key limit (63), or 0 if the
 * arguments are invalid.
 */
SWOOP_EXTERN size_t swoop_table_memory_size(size_t rows, double conflict_ratio,
                                            const swoop_table_column_def_t *columns,
                                            size_t ncolumns);

/** Like swoop_table_memory_size with an explicit key limit. */
SWOOP_EXTERN size_t swoop_table_memory_size_ex(size_t rows, double conflict_ratio, size_t key_max,
                                               const swoop_table_column_def_t *columns,
                                               size_t ncolumns);

/** Sets an INT column, inserting the row (other columns zero) if the key is new. */
SWOOP_EXTERN int swoop_table_set_int(swoop_table_t *t, const char *key, const char *column,
                                     int64_t v);
/** Sets a FLOAT column, inserting the row if the key is new. */
SWOOP_EXTERN int swoop_table_set_float(swoop_table_t *t, const char *key, const char *column,
                                       double v);
/**
 * Sets a STRING column to `len` bytes of `data`, inserting the row if the key
 * is new. SWOOP_E2BIG if `len` exceeds the column size (nothing is written).
 */
SWOOP_EXTERN int swoop_table_set_string(swoop_table_t *t, const char *key, const char *column,
                                        const void *data, size_t len);

/**
 * Sets `n` columns of one row at once: readers see all of them change
 * together or none. Inserts the row if the key is new. Checks every field
 * before writing any.
 */
SWOOP_EXTERN int swoop_table_set_row(swoop_table_t *t, const char *key,
                                     const swoop_table_field_t *fields, size_t n);

/** Reads an INT column into `*out`. */
SWOOP_EXTERN int swoop_table_get_int(swoop_table_t *t, const char *key, const char *column,
                                     int64_t *out);
/** Reads a FLOAT column into `*out`. */
SWOOP_EXTERN int swoop_table_get_float(swoop_table_t *t, const char *key, const char *column,
                                       double *out);
/**
 * Copies a STRING column into `buf` (`cap` bytes) and stores its length in
 * `*len` (may be NULL). SWOOP_E2BIG if it does not fit (`*len` still tells
 * the size needed). No NUL is added.
 */
SWOOP_EXTERN int swoop_table_get_string(swoop_table_t *t, const char *key, const char *column,
                                        void *buf, size_t cap, size_t *len);

/** Returns the size of a row snapshot buffer for swoop_table_get_row. */
SWOOP_EXTERN size_t swoop_table_row_size(const swoop_table_t *t);

/**
 * Copies the whole row of `key` atomically into `row` (`cap` >=
 * swoop_table_row_size bytes); read it with swoop_table_row_get_*.
 */
SWOOP_EXTERN int swoop_table_get_row(swoop_table_t *t, const char *key, void *row, size_t cap);

/** Reads an INT column from a row snapshot. */
SWOOP_EXTERN int swoop_table_row_get_int(const swoop_table_t *t, const void *row,
                                         const char *column, int64_t *out);
/** Reads a FLOAT column from a row snapshot. */
SWOOP_EXTERN int swoop_table_row_get_float(const swoop_table_t *t, const void *row,
                                           const char *column, double *out);
/** Points `*data` at a STRING column inside a row snapshot and sets `*len`. */
SWOOP_EXTERN int swoop_table_row_get_string(const swoop_table_t *t, const void *row,
                                            const char *column, const void **data, size_t *len);

/**
 * Adds `by` to an INT column atomically (inserting the row at 0 if the key is
 * new); stores the new value in `*result` if not NULL. INT columns only
 * (SWOOP_EINVAL otherwise); the value wraps on overflow.
 */
SWOOP_EXTERN int swoop_table_incr(swoop_table_t *t, const char *key, const char *column, int64_t by,
                                  int64_t *result);
/** Subtracts `by`, as swoop_table_incr. */
SWOOP_EXTERN int swoop_table_decr(swoop_table_t *t, const char *key, const char *column, int64_t by,
                                  int64_t *result);

/** Deletes a key; SWOOP_ENOENT if it is missing. */
SWOOP_EXTERN int swoop_table_del(swoop_table_t *t, const char *key);
/** Returns 1 if `key` is present, 0 if not, or a negative code for a bad key. */
SWOOP_EXTERN int swoop_table_exists(swoop_table_t *t, const char *key);
/** Returns the number of keys. */
SWOOP_EXTERN size_t swoop_table_count(const swoop_table_t *t);

/**
 * Calls `cb` for every row, each copied under its lock so it is never torn.
 * Rows inserted or deleted during the walk may or may not be seen. Returns 0,
 * the callback's nonzero value if it stopped the walk, or a negative code.
 */
SWOOP_EXTERN int swoop_table_foreach(swoop_table_t *t, swoop_table_foreach_cb cb, void *arg);

/** Fills `*st` with the table's statistics. */
SWOOP_EXTERN int swoop_table_stats(const swoop_table_t *t, swoop_table_stats_t *st);

SWOOP_END_DECLS

#endif /* SWOOP_TABLE_H */
