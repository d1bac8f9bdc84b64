/*
 * The task-spill arena: payloads too large for one IPC datagram travel
 * through ONE temporary file of fixed-size blocks, created before fork,
 * mapped MAP_SHARED in every process and unlinked at once. A writer copies
 * its payload into a free block and sends only a 16-byte reference (block,
 * generation, length); the reader uses the bytes in place and frees the
 * block. That replaces a file per message (create, write, open, read,
 * unlink) with two compare-exchanges and one copy.
 *
 * Each block has one atomic state word: FREE, WRITING, QUEUED or READING,
 * a generation bumped at every allocation (so a stale or replayed reference
 * is refused) and the pid of the process holding it (WRITING or READING;
 * 0 otherwise). Any process may be SIGKILLed at any time: the supervisor
 * calls swoop__spill_reap(pid) after waitpid() to free what the dead
 * process held, or swoop__spill_unclaim() first to give a block it was
 * reading back to the queue. Any process, any thread may call every
 * function; none blocks. Internal (L3).
 */
#ifndef SWOOP_IPC_SPILL_H
#define SWOOP_IPC_SPILL_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The arena: header, state words and blocks, all in the shared mapping. */
typedef struct swoop_spill_s swoop_spill_t;

/* A reference to one block, carried by value inside IPC messages. */
typedef struct swoop_spill_ref_s {
    uint32_t block; /* index, < nblocks */
    uint32_t gen;   /* generation the allocation got (30 bits) */
    uint64_t len;   /* payload bytes, <= block size */
} swoop_spill_ref_t;

static_assert(sizeof(swoop_spill_ref_t) == 16, "a spill reference is 16 bytes on the wire");

/* A snapshot of the arena's counters (racy by nature, exact when quiet). */
typedef struct swoop_spill_stats_s {
    uint32_t blocks; /* blocks in the arena */
    uint32_t used;   /* blocks not FREE right now */
    uint64_t allocs; /* successful allocations since open */
    uint64_t full;   /* allocations refused because no block was free */
} swoop_spill_stats_t;

/*
 * Creates the arena in a new file "<dir>/<name_prefix>XXXXXX" (mkostemp,
 * O_CLOEXEC): the whole size is reserved with posix_fallocate, so a full
 * tmpfs fails here with SWOOP_ENOSPC rather than with SIGBUS on a later
 * page fault; then the file is mapped MAP_SHARED, unlinked and its fd
 * closed, so nothing is left behind however the processes end. Call it
 * before fork. `block_size` is a nonzero multiple of the page size,
 * `nblocks` at least 1. Returns 0 and sets *out, or a negative error
 * (logged): SWOOP_EINVAL, SWOOP_ENAMETOOLONG, or the failing call's -errno.
 */
int swoop__spill_open(swoop_spill_t **out, const char *dir, const char *name_prefix,
                      size_t block_size, uint32_t nblocks);

/* Unmaps the arena in this process (the others keep theirs). NULL is a no-op. */
void swoop__spill_close(swoop_spill_t *sp);

/* The size of one block: the largest payload the arena takes. */
size_t swoop__spill_block_size(const swoop_spill_t *sp);

/* The file's name, already unlinked: for log messages only. */
const char *swoop__spill_path(const swoop_spill_t *sp);

/*
 * Takes a free block for `len` bytes and marks it WRITING by getpid().
 * Sets *ref (block, new generation, len) and *ptr (the block's bytes).
 * Returns 0, SWOOP_ENOSPC when no block is free (counted in stats.full, not
 * logged: the caller falls back to another path), or SWOOP_E2BIG when `len`
 * exceeds the block size (logged). Lock-free.
 */
int swoop__spill_alloc(swoop_spill_t *sp, size_t len, swoop_spill_ref_t *ref, void **ptr);

/*
 * WRITING -> QUEUED: the payload is complete and `ref` is about to be sent.
 * A release: a claimer sees every byte written before. From now on the
 * writer's death no longer frees the block. Returns 0, or SWOOP_ESTATE
 * (logged) when the block is not WRITING by this process in that generation.
 */
int swoop__spill_publish(swoop_spill_t *sp, const swoop_spill_ref_t *ref);

/*
 * Reader: QUEUED in ref->gen -> READING by getpid(). Returns the block's
 * bytes (ref->len of them are the payload; valid until swoop__spill_free),
 * or NULL, with a warning, for a reference that is out of range, longer
 * than a block, of a stale generation or to a block that is not QUEUED
 * (e.g. claimed twice). References come from messages and are never trusted.
 */
const void *swoop__spill_claim(swoop_spill_t *sp, const swoop_spill_ref_t *ref);

/*
 * Returns to FREE a block this process allocated (WRITING, not published)
 * or claimed (READING). Returns 0, or SWOOP_ESTATE (logged, nothing done)
 * when the block is in neither state for this process and generation.
 */
int swoop__spill_free(swoop_spill_t *sp, const swoop_spill_ref_t *ref);

/*
 * READING by `reader` -> QUEUED again, for a supervisor that re-sends the
 * message of a reader that died. Returns 0 (also when the block is QUEUED
 * in ref->gen already: the reader died before it claimed it), or
 * SWOOP_ESTATE (logged) when the block is in any other state.
 */
int swoop__spill_unclaim(swoop_spill_t *sp, const swoop_spill_ref_t *ref, pid_t reader);

/*
 * Process `pid` is dead (reaped, so its pid cannot have been reused yet):
 * frees every block it was WRITING or READING; QUEUED blocks stay, their
 * messages are still in flight. Returns how many were freed. O(nblocks).
 */
int swoop__spill_reap(swoop_spill_t *sp, pid_t pid);

/* Fills *st with the counters and the number of blocks in use right now. */
void swoop__spill_stats(const swoop_spill_t *sp, swoop_spill_stats_t *st);

#endif /* SWOOP_IPC_SPILL_H */
