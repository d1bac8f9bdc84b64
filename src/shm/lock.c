/*
 * Process-shared locks. The mutex is a robust pthread mutex (owner death is
 * reported as EOWNERDEAD by the kernel's robust-futex list, then made
 * consistent here); the rwlock a process-shared pthread rwlock; the spinlock
 * a compare-and-swap on the owner's thread id, which lets a waiter that
 * finds the owner gone from /proc take the lock over. Timed variants use
 * CLOCK_MONOTONIC (pthread_*_clocklock, glibc >= 2.30) so a wall-clock jump
 * does not stretch or cut a timeout.
 */
#include <swoop/lock.h>

#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "base/internal.h"
#include "shm/internal.h"

static struct timespec deadline_after(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* Maps a pthread result; EOWNERDEAD is repaired here and reported. */
static int mutex_result(swoop_mutex_t *m, int r, const char *call)
{
    if (r == 0)
        return 0;
    if (r == EOWNERDEAD) {
        pthread_mutex_consistent(&m->_m);
        swoop_log(SWOOP_LOG_WARNING, r, "%s(mutex %p): owner died, lock recovered", call,
                  (void *)m);
        return SWOOP_EOWNERDEAD;
    }
    if (r == EBUSY)
        return SWOOP_EBUSY;
    if (r == ETIMEDOUT)
        return SWOOP_ETIMEDOUT;
    swoop_log(SWOOP_LOG_ERROR, r, "%s(mutex %p) failed", call, (void *)m);
    return -r;
}

int swoop_mutex_init(swoop_mutex_t *m)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int r = pthread_mutex_init(&m->_m, &attr);
    pthread_mutexattr_destroy(&attr);
    if (r != 0) {
        swoop_log(SWOOP_LOG_ERROR, r, "pthread_mutex_init(%p) failed", (void *)m);
        return -r;
    }
    return 0;
}

void swoop_mutex_destroy(swoop_mutex_t *m)
{
    pthread_mutex_destroy(&m->_m);
}

int swoop_mutex_new(swoop_mutex_t **out)
{
    swoop_mutex_t *m = swoop__shm_map(sizeof(*m), "mutex");
    *out = NULL;
    if (m == NULL)
        return SWOOP_ENOMEM;
    int r = swoop_mutex_init(m);
    if (r < 0) {
        swoop__shm_unmap(m, sizeof(*m));
        return r;
    }
    *out = m;
    return 0;
}

void swoop_mutex_free(swoop_mutex_t *m)
{
    if (m == NULL)
        return;
    swoop_mutex_destroy(m);
    swoop__shm_unmap(m, sizeof(*m));
}

int swoop_mutex_lock(swoop_mutex_t *m)
{
    return mutex_result(m, pthread_mutex_lock(&m->_m), "pthread_mutex_lock");
}

int swoop_mutex_trylock(swoop_mutex_t *m)
{
    return mutex_result(m, pthread_mutex_trylock(&m->_m), "pthread_mutex_trylock");
}

int swoop_mutex_timedlock(swoop_mutex_t *m, int timeout_ms)
{
    if (timeout_ms < 0)
        return swoop_mutex_lock(m);
    if (timeout_ms == 0)
        return swoop_mutex_trylock(m);
    struct timespec ts = deadline_after(timeout_ms);
    return mutex_result(m, pthread_mutex_clocklock(&m->_m, CLOCK_MONOTONIC, &ts),
                        "pthread_mutex_clocklock");
}

int swoop_mutex_unlock(swoop_mutex_t *m)
{
    int r = pthread_mutex_unlock(&m->_m);
    if (r != 0) {
        swoop_log(SWOOP_LOG_ERROR, r, "pthread_mutex_unlock(%p) failed", (void *)m);
        return -r;
    }
    return 0;
}

static int rw_result(swoop_rwlock_t *rw, int r, const char *call)
{
    if (r == 0)
        return 0;
    if (r == EBUSY)
        return SWOOP_EBUSY;
    if (r == ETIMEDOUT)
        return SWOOP_ETIMEDOUT;
    swoop_log(SWOOP_LOG_ERROR, r, "%s(rwlock %p) failed", call, (void *)rw);
    return -r;
}

int swoop_rwlock_init(swoop_rwlock_t *rw)
{
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    /* Writers first, so a stream of readers cannot starve a writer. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int r = pthread_rwlock_init(&rw->_rw, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (r != 0) {
        swoop_log(SWOOP_LOG_ERROR, r, "pthread_rwlock_init(%p) failed", (void *)rw);
        return -r;
    }
    return 0;
}

void swoop_rwlock_destroy(swoop_rwlock_t *rw)
{
    pthread_rwlock_destroy(&rw->_rw);
}

int swoop_rwlock_new(swoop_rwlock_t **out)
{
    swoop_rwlock_t *rw = swoop__shm_map(sizeof(*rw), "rwlock");
    *out = NULL;
    if (rw == NULL)
        return SWOOP_ENOMEM;
    int r = swoop_rwlock_init(rw);
    if (r < 0) {
        swoop__shm_unmap(rw, sizeof(*rw));
        return r;
    }
    *out = rw;
    return 0;
}

void swoop_rwlock_free(swoop_rwlock_t *rw)
{
    if (rw == NULL)
        return;
    swoop_rwlock_destroy(rw);
    swoop__shm_unmap(rw, sizeof(*rw));
}

int swoop_rwlock_rdlock(swoop_rwlock_t *rw)
{
    return rw_result(rw, pthread_rwlock_rdlock(&rw->_rw), "pthread_rwlock_rdlock");
}

int swoop_rwlock_tryrdlock(swoop_rwlock_t *rw)
{
    return rw_result(rw, pthread_rwlock_tryrdlock(&rw->_rw), "pthread_rwlock_tryrdlock");
}

int swoop_rwlock_timedrdlock(swoop_rwlock_t *rw, int timeout_ms)
{
    if (timeout_ms < 0)
        return swoop_rwlock_rdlock(rw);
    if (timeout_ms == 0)
        return swoop_rwlock_tryrdlock(rw);
    struct timespec ts = deadline_after(timeout_ms);
    return rw_result(rw, pthread_rwlock_clockrdlock(&rw->_rw, CLOCK_MONOTONIC, &ts),
                     "pthread_rwlock_clockrdlock");
}

int swoop_rwlock_wrlock(swoop_rwlock_t *rw)
{
    return rw_result(rw, pthread_rwlock_wrlock(&rw->_rw), "pthread_rwlock_wrlock");
}

int swoop_rwlock_trywrlock(swoop_rwlock_t *rw)
{
    return rw_result(rw, pthread_rwlock_trywrlock(&rw->_rw), "pthread_rwlock_trywrlock");
}

int swoop_rwlock_timedwrlock(swoop_rwlock_t *rw, int timeout_ms)
{
    if (timeout_ms < 0)
        return swoop_rwlock_wrlock(rw);
    if (timeout_ms == 0)
        return swoop_rwlock_trywrlock(rw);
    struct timespec ts = deadline_after(timeout_ms);
    return rw_result(rw, pthread_rwlock_clockwrlock(&rw->_rw, CLOCK_MONOTONIC, &ts),
                     "pthread_rwlock_clockwrlock");
}

int swoop_rwlock_unlock(swoop_rwlock_t *rw)
{
    return rw_result(rw, pthread_rwlock_unlock(&rw->_rw), "pthread_rwlock_unlock");
}

void swoop_spinlock_init(swoop_spinlock_t *s)
{
    __atomic_store_n(&s->_word, 0, __ATOMIC_RELEASE);
}

int swoop_spinlock_new(swoop_spinlock_t **out)
{
    swoop_spinlock_t *s = swoop__shm_map(sizeof(*s), "spinlock");
    *out = s;
    return s == NULL ? SWOOP_ENOMEM : 0;
}

void swoop_spinlock_free(swoop_spinlock_t *s)
{
    swoop__shm_unmap(s, sizeof(*s));
}

static __thread uint32_t cached_tid;
static __thread uint64_t cached_word;
static pthread_once_t tid_once = PTHREAD_ONCE_INIT;

/* A forked child is a new thread id: forget the parent's. */
static void tid_atfork_child(void)
{
    cached_tid = 0;
    cached_word = 0;
}

static void tid_register(void)
{
    pthread_atfork(NULL, NULL, tid_atfork_child);
}

uint32_t swoop__self_tid(void)
{
    if (swoop_unlikely(cached_tid == 0)) {
        pthread_once(&tid_once, tid_register);
        cached_tid = (uint32_t)gettid();
    }
    return cached_tid;
}

uint64_t swoop__self_lockword(void)
{
    if (swoop_unlikely(cached_word == 0)) {
        uint32_t tid = swoop__self_tid();
        uint32_t tag = swoop__tid_start((int)tid);
        cached_word = (uint64_t)(tag ? tag : 1) << 32 | tid;
    }
    return cached_word;
}

static inline uint32_t word_tid(uint64_t w)
{
    return (uint32_t)w;
}

static int spin_cas(swoop_spinlock_t *s, uint64_t expected, uint64_t me)
{
    return __atomic_compare_exchange_n(&s->_word, &expected, me, 0, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

/*
 * The holder of word `w` is gone: its thread does not exist (or is a
 * zombie), or a thread with its id exists but started at another time (the
 * id was reused after the holder died). Owner and tag come from one atomic
 * word, so they always belong together.
 */
static int owner_dead(uint64_t w)
{
    int tid = (int)word_tid(w);
    if (!swoop__tid_alive(tid))
        return 1;
    uint32_t now = swoop__tid_start(tid);
    return now != 0 && now != (uint32_t)(w >> 32);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/*
 * Spins, yielding the CPU every 64 rounds. Every 1024 rounds of finding the
 * same lock taken it asks /proc whether the owner still exists: a dead owner
 * is the only reason to take a lock over, however long it was held.
 */
static int spin_acquire(swoop_spinlock_t *s, int timeout_ms)
{
    uint64_t me = swoop__self_lockword();
    if (spin_cas(s, 0, me))
        return 0;
    struct timespec deadline = {0};
    if (timeout_ms >= 0)
        deadline = deadline_after(timeout_ms);
    for (unsigned i = 1;; i++) {
        uint64_t owner = __atomic_load_n(&s->_word, __ATOMIC_RELAXED);
        if (owner == 0 && spin_cas(s, 0, me))
            return 0;
        if (owner == me) {
            swoop_log(SWOOP_LOG_ERROR, 0, "spinlock %p already held by this thread", (void *)s);
            return -EDEADLK;
        }
        if (i % 64 == 0)
            sched_yield();
        else
            cpu_relax();
        if (i % 1024 != 0)
            continue;
        if (owner != 0 && owner_dead(owner) && spin_cas(s, owner, me)) {
            swoop_log(SWOOP_LOG_WARNING, 0, "spinlock %p: owner %u died, lock recovered", (void *)s,
                      word_tid(owner));
            return SWOOP_EOWNERDEAD;
        }
        if (timeout_ms >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > deadline.tv_sec ||
                (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
                return SWOOP_ETIMEDOUT;
        }
    }
}

int swoop_spinlock_lock(swoop_spinlock_t *s)
{
    return spin_acquire(s, -1);
}

int swoop_spinlock_trylock(swoop_spinlock_t *s)
{
    return spin_cas(s, 0, swoop__self_lockword()) ? 0 : SWOOP_EBUSY;
}

int swoop_spinlock_timedlock(swoop_spinlock_t *s, int timeout_ms)
{
    if (timeout_ms == 0)
        return swoop_spinlock_trylock(s);
    return spin_acquire(s, timeout_ms);
}

int swoop_spinlock_unlock(swoop_spinlock_t *s)
{
    uint64_t me = swoop__self_lockword();
    if (!__atomic_compare_exchange_n(&s->_word, &me, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "spinlock %p unlocked by %d, held by %u", (void *)s,
                  (int)swoop__self_tid(), word_tid(me));
        return SWOOP_EPERM;
    }
    return 0;
}

int swoop_spinlock_force_unlock(swoop_spinlock_t *s, int tid)
{
    uint64_t w = __atomic_load_n(&s->_word, __ATOMIC_RELAXED);
    return tid > 0 && word_tid(w) == (uint32_t)tid &&
           __atomic_compare_exchange_n(&s->_word, &w, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}
