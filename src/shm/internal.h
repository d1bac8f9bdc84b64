/*
 * Internal helpers of the shared-memory layer: small anonymous shared
 * mappings for lone atomics and locks, and the table's test hooks.
 */
#ifndef SWOOP_SHM_INTERNAL_H
#define SWOOP_SHM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <swoop/table.h>

/* Maps `size` zeroed bytes MAP_SHARED|MAP_ANONYMOUS; NULL (logged) on failure. */
void *swoop__shm_map(size_t size, const char *what);
/* Unmaps a mapping made by swoop__shm_map. */
void swoop__shm_unmap(void *p, size_t size);

/* This thread's kernel id, cached (reset in a forked child). */
uint32_t swoop__self_tid(void);
/*
 * The calling thread's spinlock word: its tid in the low 32 bits and a
 * nonzero tag of its start time in the high 32 (cached like the tid).
 */
uint64_t swoop__self_lockword(void);
/* The start-time tag of thread `tid` from /proc/TID/stat, or 0 if unreadable. */
uint32_t swoop__tid_start(int tid);

/* Returns nonzero if thread/process `tid` exists and is not a zombie (/proc). */
int swoop__tid_alive(int tid);

/* The key hash the table uses (exposed so tests can pick colliding keys). */
uint64_t swoop__table_hash(uint64_t seed, const char *key, size_t len);
/* The bucket `key` falls into. */
size_t swoop__table_bucket_of(const swoop_table_t *t, const char *key);
/*
 * Test hooks: take the bucket lock of `key` (or the pool lock) and return
 * without releasing it, so a test can die holding it. `half_write` also
 * starts a set of every INT column to `v` in the row's spare value copy
 * without committing it, like a writer killed mid-write.
 */
int swoop__table_lock_key(swoop_table_t *t, const char *key, int half_write, int64_t v);
int swoop__table_lock_pool(swoop_table_t *t);
/* Checks the table's structure (chains, free list, counts); 0 if sound. */
int swoop__table_validate(swoop_table_t *t);

#endif /* SWOOP_SHM_INTERNAL_H */
