/*
 * Locks that work across processes: a robust mutex, a reader-writer lock and
 * a spinlock, each with lock, try-lock and lock-with-timeout. Like
 * swoop_atomic_t they are small public structs that must live in shared
 * memory: swoop_x_new gives one its own shared page (call it before fork),
 * swoop_x_init prepares one inside memory you share yourself.
 *
 * Dead owners. The mutex is a robust pthread mutex: when its owner dies
 * holding it, the next locker gets the lock together with SWOOP_EOWNERDEAD
 * (the lock is already marked consistent again; repair what it guards). The
 * spinlock records its owner's thread id; a locker that keeps finding it
 * taken checks /proc for that owner and, if it is gone (or a zombie), takes
 * the lock over and also returns SWOOP_EOWNERDEAD. No lock is ever broken
 * because a timeout ran out. The rwlock is a process-shared pthread rwlock
 * and is NOT recovered: a process killed while holding it wedges it, so
 * guard crash-prone sections with the mutex.
 *
 * Timeouts are in milliseconds on CLOCK_MONOTONIC; a negative timeout waits
 * forever, 0 is a try-lock.
 */
#ifndef SWOOP_LOCK_H
#define SWOOP_LOCK_H

#include <pthread.h>
#include <stdint.h>

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/** A robust, process-shared mutex. Fields are private. */
typedef struct swoop_mutex_s {
    pthread_mutex_t _m;
} swoop_mutex_t;

/** A process-shared reader-writer lock (not robust). Fields are private. */
typedef struct swoop_rwlock_s {
    pthread_rwlock_t _rw;
} swoop_rwlock_t;

/**
 * A spinlock whose one 64-bit word holds its owner's thread id and a tag of
 * the owner's start time (0 when free), so a dead owner is recognised even
 * after the kernel gave its thread id to a new process. Fields are private.
 */
typedef struct swoop_spinlock_s {
    uint64_t _word;
} swoop_spinlock_t;

/** Initialises a mutex in caller-provided shared memory. Returns 0 or a negative errno. */
SWOOP_EXTERN int swoop_mutex_init(swoop_mutex_t *m);
/** Destroys a mutex set up by swoop_mutex_init (it must be unlocked). */
SWOOP_EXTERN void swoop_mutex_destroy(swoop_mutex_t *m);
/** Allocates and initialises a mutex on a shared page of its own (before fork). */
SWOOP_EXTERN int swoop_mutex_new(swoop_mutex_t **out);
/** Destroys and unmaps a mutex made by swoop_mutex_new. NULL is ignored. */
SWOOP_EXTERN void swoop_mutex_free(swoop_mutex_t *m);
/**
 * Locks. Returns 0, or SWOOP_EOWNERDEAD when the previous owner died holding
 * it (the caller holds the lock in both cases), or a negative errno.
 */
SWOOP_EXTERN int swoop_mutex_lock(swoop_mutex_t *m);
/** Like swoop_mutex_lock, but returns SWOOP_EBUSY at once if the lock is taken. */
SWOOP_EXTERN int swoop_mutex_trylock(swoop_mutex_t *m);
/** Like swoop_mutex_lock, but gives up with SWOOP_ETIMEDOUT after `timeout_ms`. */
SWOOP_EXTERN int swoop_mutex_timedlock(swoop_mutex_t *m, int timeout_ms);
/** Unlocks a mutex the caller holds. */
SWOOP_EXTERN int swoop_mutex_unlock(swoop_mutex_t *m);

/** Initialises a rwlock in caller-provided shared memory (writers are preferred). */
SWOOP_EXTERN int swoop_rwlock_init(swoop_rwlock_t *rw);
/** Destroys a rwlock set up by swoop_rwlock_init. */
SWOOP_EXTERN void swoop_rwlock_destroy(swoop_rwlock_t *rw);
/** Allocates and initialises a rwlock on a shared page of its own (before fork). */
SWOOP_EXTERN int swoop_rwlock_new(swoop_rwlock_t **out);
/** Destroys and unmaps a rwlock made by swoop_rwlock_new. NULL is ignored. */
SWOOP_EXTERN void swoop_rwlock_free(swoop_rwlock_t *rw);
/** Takes the lock shared (several readers at once). */
SWOOP_EXTERN int swoop_rwlock_rdlock(swoop_rwlock_t *rw);
/** Takes the lock shared or returns SWOOP_EBUSY. */
SWOOP_EXTERN int swoop_rwlock_tryrdlock(swoop_rwlock_t *rw);
/** Takes the lock shared or returns SWOOP_ETIMEDOUT after `timeout_ms`. */
SWOOP_EXTERN int swoop_rwlock_timedrdlock(swoop_rwlock_t *rw, int timeout_ms);
/** Takes the lock exclusive. */
SWOOP_EXTERN int swoop_rwlock_wrlock(swoop_rwlock_t *rw);
/** Takes the lock exclusive or returns SWOOP_EBUSY. */
SWOOP_EXTERN int swoop_rwlock_trywrlock(swoop_rwlock_t *rw);
/** Takes the lock exclusive or returns SWOOP_ETIMEDOUT after `timeout_ms`. */
SWOOP_EXTERN int swoop_rwlock_timedwrlock(swoop_rwlock_t *rw, int timeout_ms);
/** Releases a shared or exclusive hold. */
SWOOP_EXTERN int swoop_rwlock_unlock(swoop_rwlock_t *rw);

/** Initialises a spinlock in caller-provided shared memory (zeroed memory is also valid). */
SWOOP_EXTERN void swoop_spinlock_init(swoop_spinlock_t *s);
/** Allocates a spinlock on a shared page of its own (before fork). */
SWOOP_EXTERN int swoop_spinlock_new(swoop_spinlock_t **out);
/** Unmaps a spinlock made by swoop_spinlock_new. NULL is ignored. */
SWOOP_EXTERN void swoop_spinlock_free(swoop_spinlock_t *s);
/**
 * Spins (then yields) until the lock is free. Returns 0, or SWOOP_EOWNERDEAD
 * when it took the lock over from a dead owner.
 */
SWOOP_EXTERN int swoop_spinlock_lock(swoop_spinlock_t *s);
/** Takes the lock if it is free, else SWOOP_EBUSY (never takes over a dead owner). */
SWOOP_EXTERN int swoop_spinlock_trylock(swoop_spinlock_t *s);
/** Like swoop_spinlock_lock, but gives up with SWOOP_ETIMEDOUT after `timeout_ms`. */
SWOOP_EXTERN int swoop_spinlock_timedlock(swoop_spinlock_t *s, int timeout_ms);
/** Releases the lock; SWOOP_EPERM if the caller's thread does not hold it. */
SWOOP_EXTERN int swoop_spinlock_unlock(swoop_spinlock_t *s);
/**
 * Releases the lock if thread/process `tid` holds it (for a supervisor that
 * has just reaped `tid`, as nginx's master does). Returns 1 if it did, else 0.
 */
SWOOP_EXTERN int swoop_spinlock_force_unlock(swoop_spinlock_t *s, int tid);

SWOOP_END_DECLS

#endif /* SWOOP_LOCK_H */
