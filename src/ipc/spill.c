/*
 * The task-spill arena (see spill.h). Every transition is one
 * compare-exchange on the block's state word, so a process killed between
 * two calls leaves each block in a well-defined state that names its
 * holder. Ordering: publish and free are releases and claim and alloc are
 * acquires, so the payload written before publish is visible to the
 * claimer, and the claimer's reads finish before the next writer of the
 * block starts. Nothing here trusts a reference: it comes from a message.
 */
#include "ipc/spill.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/internal.h"

#define SPILL_MAGIC 0x4c4c495053504f4full /* "OOPSPILL" */

/* State word: state (2 bits) | generation (30 bits) | holder pid (32 bits). */
enum { FREE = 0, WRITING = 1, QUEUED = 2, READING = 3 };
#define GEN_MASK 0x3fffffffu

static const char *const state_names[] = {"FREE", "WRITING", "QUEUED", "READING"};

struct swoop_spill_s {
    uint64_t magic;
    uint64_t block_size;
    uint64_t data_off; /* page-aligned offset of block 0 in the mapping */
    uint64_t map_size;
    uint32_t nblocks;
    _Alignas(64) _Atomic uint32_t hint; /* where the next alloc starts scanning */
    _Alignas(64) _Atomic uint64_t allocs;
    _Atomic uint64_t full;
    char path[PATH_MAX];
    _Alignas(64) _Atomic uint64_t state[];
};

static inline uint64_t word(unsigned st, uint32_t gen, pid_t pid)
{
    return ((uint64_t)st << 62) | ((uint64_t)(gen & GEN_MASK) << 32) | (uint32_t)pid;
}

static inline unsigned st_of(uint64_t w)
{
    return (unsigned)(w >> 62);
}

static inline uint32_t gen_of(uint64_t w)
{
    return (uint32_t)(w >> 32) & GEN_MASK;
}

static inline pid_t pid_of(uint64_t w)
{
    return (pid_t)(uint32_t)w;
}

static inline char *block_at(const swoop_spill_t *sp, uint32_t b)
{
    return (char *)sp + sp->data_off + (uint64_t)b * sp->block_size;
}

int swoop__spill_open(swoop_spill_t **out, const char *dir, const char *name_prefix,
                      size_t block_size, uint32_t nblocks)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (block_size == 0 || block_size % page != 0 || nblocks == 0) {
        swoop_log(SWOOP_LOG_ERROR, 0,
                  "spill arena: block size %zu (a multiple of %zu wanted) or %u blocks invalid",
                  block_size, page, nblocks);
        return SWOOP_EINVAL;
    }
    uint64_t head = sizeof(swoop_spill_t) + (uint64_t)nblocks * sizeof(_Atomic uint64_t);
    uint64_t data_off = (head + page - 1) / page * page;
    if ((uint64_t)block_size > ((uint64_t)SIZE_MAX / 2 - data_off) / nblocks) {
        swoop_log(SWOOP_LOG_ERROR, 0, "spill arena: %u blocks of %zu bytes is too large", nblocks,
                  block_size);
        return SWOOP_EINVAL;
    }
    size_t size = (size_t)(data_off + (uint64_t)block_size * nblocks);

    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%sXXXXXX", dir, name_prefix);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        swoop_log(SWOOP_LOG_ERROR, 0, "spill arena: path \"%s/%s\" too long", dir, name_prefix);
        return SWOOP_ENAMETOOLONG;
    }
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "spill arena: mkostemp(\"%s\") failed", path);
        return -err;
    }
    /* Reserve every page now: on tmpfs a page that cannot be had later is a SIGBUS. */
    int err;
    while ((err = posix_fallocate(fd, 0, (off_t)size)) == EINTR) {
    }
    if (err != 0) {
        swoop_log(SWOOP_LOG_ERROR, err, "spill arena: posix_fallocate(\"%s\", %zu bytes) failed",
                  path, size);
        unlink(path);
        close(fd);
        return -err;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "spill arena: mmap(\"%s\", %zu bytes) failed", path, size);
        unlink(path);
        close(fd);
        return -err;
    }
    /* The mapping keeps the memory alive; the name and the fd are no longer needed. */
    if (unlink(path) < 0) {
        err = errno;
        swoop_log(SWOOP_LOG_WARNING, err, "spill arena: unlink(\"%s\") failed", path);
    }
    close(fd);

    swoop_spill_t *sp = p; /* fallocate zero-filled it: every block FREE, generation 0 */
    sp->magic = SPILL_MAGIC;
    sp->block_size = block_size;
    sp->data_off = data_off;
    sp->map_size = size;
    sp->nblocks = nblocks;
    memcpy(sp->path, path, (size_t)n + 1);
    *out = sp;
    return 0;
}

void swoop__spill_close(swoop_spill_t *sp)
{
    if (sp == NULL)
        return;
    SWOOP_ASSERT(sp->magic == SPILL_MAGIC);
    munmap(sp, sp->map_size);
}

size_t swoop__spill_block_size(const swoop_spill_t *sp)
{
    return sp->block_size;
}

const char *swoop__spill_path(const swoop_spill_t *sp)
{
    return sp->path;
}

int swoop__spill_alloc(swoop_spill_t *sp, size_t len, swoop_spill_ref_t *ref, void **ptr)
{
    if (len > sp->block_size) {
        swoop_log(SWOOP_LOG_WARNING, 0, "spill arena: %zu bytes do not fit a %llu-byte block", len,
                  (unsigned long long)sp->block_size);
        return SWOOP_E2BIG;
    }
    /* A rotating start spreads concurrent allocators over different blocks. */
    uint32_t n = sp->nblocks;
    uint32_t start = atomic_fetch_add_explicit(&sp->hint, 1, memory_order_relaxed) % n;
    pid_t self = swoop__getpid();
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = (start + i) % n;
        uint64_t w = atomic_load_explicit(&sp->state[b], memory_order_relaxed);
        while (st_of(w) == FREE) {
            uint32_t gen = (gen_of(w) + 1) & GEN_MASK;
            /* Acquire: the last reader's accesses to the bytes happen before ours. */
            if (atomic_compare_exchange_weak_explicit(&sp->state[b], &w, word(WRITING, gen, self),
                                                      memory_order_acquire, memory_order_relaxed)) {
                atomic_fetch_add_explicit(&sp->allocs, 1, memory_order_relaxed);
                *ref = (swoop_spill_ref_t){.block = b, .gen = gen, .len = len};
                *ptr = block_at(sp, b);
                return 0;
            }
        }
    }
    atomic_fetch_add_explicit(&sp->full, 1, memory_order_relaxed);
    return SWOOP_ENOSPC;
}

/*
 * Moves ref's block from `from` (held by `pid`) to `to` (held by `to_pid`).
 * Returns 0, or SWOOP_ESTATE with the word found in *seen.
 */
static int transition(swoop_spill_t *sp, const swoop_spill_ref_t *ref, unsigned from, pid_t pid,
                      unsigned to, pid_t to_pid, memory_order order, uint64_t *seen)
{
    *seen = 0;
    if (ref->block >= sp->nblocks || ref->gen > GEN_MASK || ref->len > sp->block_size)
        return SWOOP_ESTATE;
    uint64_t want = word(from, ref->gen, pid);
    if (atomic_compare_exchange_strong_explicit(
            &sp->state[ref->block], &want, word(to, ref->gen, to_pid), order, memory_order_relaxed))
        return 0;
    *seen = want;
    return SWOOP_ESTATE;
}

static void log_refused(const swoop_spill_t *sp, const char *what, const swoop_spill_ref_t *ref,
                        uint64_t seen)
{
    if (ref->block >= sp->nblocks || ref->gen > GEN_MASK || ref->len > sp->block_size) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "spill arena: %s of block %u gen %u (%llu bytes) refused: out of range "
                  "(%u blocks of %llu bytes)",
                  what, ref->block, ref->gen, (unsigned long long)ref->len, sp->nblocks,
                  (unsigned long long)sp->block_size);
        return;
    }
    swoop_log(SWOOP_LOG_WARNING, 0,
              "spill arena: %s of block %u gen %u (%llu bytes) refused: block is %s gen %u "
              "held by pid %d",
              what, ref->block, ref->gen, (unsigned long long)ref->len, state_names[st_of(seen)],
              gen_of(seen), (int)pid_of(seen));
}

int swoop__spill_publish(swoop_spill_t *sp, const swoop_spill_ref_t *ref)
{
    uint64_t seen;
    int rc = transition(sp, ref, WRITING, swoop__getpid(), QUEUED, 0, memory_order_release, &seen);
    if (rc < 0)
        log_refused(sp, "publish", ref, seen);
    return rc;
}

const void *swoop__spill_claim(swoop_spill_t *sp, const swoop_spill_ref_t *ref)
{
    uint64_t seen;
    if (transition(sp, ref, QUEUED, 0, READING, swoop__getpid(), memory_order_acquire, &seen) < 0) {
        log_refused(sp, "claim", ref, seen);
        return NULL;
    }
    return block_at(sp, ref->block);
}

int swoop__spill_free(swoop_spill_t *sp, const swoop_spill_ref_t *ref)
{
    pid_t self = swoop__getpid();
    uint64_t seen;
    /* Release: our reads or writes of the bytes finish before the next owner's. */
    if (transition(sp, ref, READING, self, FREE, 0, memory_order_release, &seen) == 0 ||
        transition(sp, ref, WRITING, self, FREE, 0, memory_order_release, &seen) == 0)
        return 0;
    log_refused(sp, "free", ref, seen);
    return SWOOP_ESTATE;
}

int swoop__spill_unclaim(swoop_spill_t *sp, const swoop_spill_ref_t *ref, pid_t reader)
{
    uint64_t seen;
    int rc = transition(sp, ref, READING, reader, QUEUED, 0, memory_order_acq_rel, &seen);
    /* The reader died before it claimed the block: it is queued already. */
    if (rc < 0 && seen == word(QUEUED, ref->gen, 0))
        return 0;
    if (rc < 0)
        log_refused(sp, "unclaim", ref, seen);
    return rc;
}

int swoop__spill_reap(swoop_spill_t *sp, pid_t pid)
{
    if (pid <= 0)
        return 0;
    int freed = 0;
    for (uint32_t b = 0; b < sp->nblocks; b++) {
        uint64_t w = atomic_load_explicit(&sp->state[b], memory_order_relaxed);
        /* A dead holder moves nothing any more, so one CAS settles the block. */
        if ((st_of(w) == WRITING || st_of(w) == READING) && pid_of(w) == pid &&
            atomic_compare_exchange_strong_explicit(&sp->state[b], &w, word(FREE, gen_of(w), 0),
                                                    memory_order_acq_rel, memory_order_relaxed))
            freed++;
    }
    if (freed > 0)
        swoop_log(SWOOP_LOG_NOTICE, 0, "spill arena: freed %d block(s) held by dead pid %d", freed,
                  (int)pid);
    return freed;
}

void swoop__spill_stats(const swoop_spill_t *sp, swoop_spill_stats_t *st)
{
    /* The counters are only ever read here; the casts drop const for C11 atomics. */
    swoop_spill_t *m = (swoop_spill_t *)sp;
    st->blocks = sp->nblocks;
    st->used = 0;
    for (uint32_t b = 0; b < sp->nblocks; b++) {
        if (st_of(atomic_load_explicit(&m->state[b], memory_order_relaxed)) != FREE)
            st->used++;
    }
    st->allocs = atomic_load_explicit(&m->allocs, memory_order_relaxed);
    st->full = atomic_load_explicit(&m->full, memory_order_relaxed);
}
