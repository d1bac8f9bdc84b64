/*
 * Segments, atomics and locks across real processes: anonymous and SysV
 * segments and their cleanup, a read-only attach from another process,
 * exact atomic counts, futex wait/wakeup, and locks whose owner is killed.
 */
#include <swoop/shm.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/atomic.h>
#include <swoop/error.h>
#include <swoop/lock.h>
#include <swoop/log.h>

#include "shm/internal.h"
#include "test.h"

static int test_key(int n)
{
    return 0x53000000 | ((getpid() & 0xffff) << 8) | n;
}

/* Nonzero if /proc/sysvipc/shm lists `key` (what `ipcs -m` reads). */
static int sysv_listed(int key)
{
    FILE *f = fopen("/proc/sysvipc/shm", "r");
    ASSERT_NOT_NULL(f);
    char line[512];
    int found = 0;
    ASSERT_NOT_NULL(fgets(line, sizeof(line), f)); /* header */
    while (fgets(line, sizeof(line), f) != NULL) {
        long k;
        if (sscanf(line, "%ld", &k) == 1 && (int)k == key)
            found = 1;
    }
    fclose(f);
    return found;
}

/* Nonzero if `p` is inside a mapping of this process. */
static int mapped(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ASSERT_NOT_NULL(f);
    char line[512];
    int found = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (unsigned long)p >= lo &&
            (unsigned long)p < hi)
            found = 1;
    }
    fclose(f);
    return found;
}

static void child_writes(void *arg, int fd)
{
    swoop_shm_t *shm = arg;
    strcpy(swoop_shm_ptr(shm), "from child");
}

TEST(shm_anonymous_shared_and_unmapped)
{
    swoop_shm_t *shm;
    ASSERT_OK(swoop_shm_new(&shm, 100, 0));
    ASSERT_UGE(swoop_shm_size(shm), 100);
    ASSERT_EQ(swoop_shm_id(shm), -1);
    void *p = swoop_shm_ptr(shm);
    ASSERT(mapped(p));
    swoop_test_wait_ok(swoop_test_fork(child_writes, shm, NULL), 10000);
    ASSERT_EQ(strcmp(p, "from child"), 0);
    swoop_shm_free(shm);
    ASSERT(!mapped(p));
}

static void attach_reader(void *arg, int fd)
{
    int key = *(int *)arg;
    swoop_shm_t *ro;
    ASSERT_OK(swoop_shm_attach(&ro, key, 1));
    ASSERT_EQ(strcmp(swoop_shm_ptr(ro), "hello sysv"), 0);
    swoop_shm_free(ro); /* detaches only: not the owner */
}

TEST(shm_sysv_listed_attached_and_removed)
{
    swoop_log_set_level(SWOOP_LOG_NONE);
    int key = test_key(1);
    swoop_shm_t *shm;
    ASSERT_OK(swoop_shm_new(&shm, 8192, key));
    ASSERT(sysv_listed(key));
    swoop_shm_t *dup;
    ASSERT_EQ(swoop_shm_new(&dup, 8192, key), SWOOP_EEXIST);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "ipcs -m | grep -qi 0x%08x", (unsigned)key);
    ASSERT_EQ(system(cmd), 0);
    strcpy(swoop_shm_ptr(shm), "hello sysv");
    swoop_test_wait_ok(swoop_test_fork(attach_reader, &key, NULL), 10000);
    ASSERT(sysv_listed(key)); /* the reader's free did not remove it */
    void *p = swoop_shm_ptr(shm);
    swoop_shm_free(shm);
    ASSERT(!sysv_listed(key));
    ASSERT(!mapped(p));
    ASSERT_NE(system(cmd), 0);
    swoop_shm_t *none;
    ASSERT_EQ(swoop_shm_attach(&none, key, 1), SWOOP_ENOENT);
}

static void create_and_exit(void *arg, int fd)
{
    swoop_shm_t *shm;
    ASSERT_OK(swoop_shm_new(&shm, 4096, *(int *)arg));
    ASSERT_EQ(write(fd, "made\n", 5), 5);
    /* exit() without swoop_shm_free: the atexit sweep removes it. */
}

TEST(shm_sysv_removed_at_clean_exit)
{
    int key = test_key(2);
    int fd;
    pid_t pid = swoop_test_fork(create_and_exit, &key, &fd);
    char line[16];
    ASSERT_GT(swoop_test_read_line(fd, line, sizeof(line), 10000), 0);
    close(fd);
    swoop_test_wait_ok(pid, 10000);
    ASSERT(!sysv_listed(key));
}

static void atomic_adder(void *arg, int fd)
{
    for (int i = 0; i < 100000; i++)
        swoop_atomic_add(arg, 1);
}

TEST(atomic_4_procs_exact)
{
    swoop_atomic_t *a;
    ASSERT_OK(swoop_atomic_new(&a, 0));
    pid_t pids[4];
    for (int i = 0; i < 4; i++)
        pids[i] = swoop_test_fork(atomic_adder, a, NULL);
    for (int i = 0; i < 4; i++)
        swoop_test_wait_ok(pids[i], 60000);
    ASSERT_EQ(swoop_atomic_get(a), 400000);
    ASSERT_EQ(swoop_atomic_sub(a, 1), 399999);
    ASSERT_EQ(swoop_atomic_cmpset(a, 1, 2), 0);
    ASSERT_EQ(swoop_atomic_cmpset(a, 399999, 2), 1);
    swoop_atomic_set(a, -7);
    ASSERT_EQ(swoop_atomic_get(a), -7);
    swoop_atomic_free(a);
}

static void waiter(void *arg, int fd)
{
    ASSERT_EQ(write(fd, "waiting\n", 8), 8);
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(swoop_atomic_wait(arg, 20000), 0);
    /*
     * Woken by the other process, not by the timeout: the parent wakes every
     * 5 ms, so a working cross-process futex wake returns far sooner.
     */
    ASSERT_ULE(swoop_test_now_ms() - t0, 2000u * swoop_test_multiplier());
}

TEST(atomic_wait_wakeup_across_processes)
{
    swoop_atomic_t *a;
    ASSERT_OK(swoop_atomic_new(&a, 0));
    /* Nobody wakes: times out. */
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_EQ(swoop_atomic_wait(a, 50), SWOOP_ETIMEDOUT);
    ASSERT_UGE(swoop_test_now_ms() - t0, 50);
    /* A pending wakeup is consumed at once. */
    ASSERT_EQ(swoop_atomic_wakeup(a, 1), 0);
    ASSERT_EQ(swoop_atomic_get(a), 1);
    ASSERT_EQ(swoop_atomic_wait(a, 0), 0);
    ASSERT_EQ(swoop_atomic_get(a), 0);
    /* A sleeping process is woken. */
    int fd;
    pid_t pid = swoop_test_fork(waiter, a, &fd);
    char line[16];
    ASSERT_GT(swoop_test_read_line(fd, line, sizeof(line), 10000), 0);
    close(fd);
    /* Wake repeatedly until the child has consumed a wakeup and exited. */
    uint64_t deadline = swoop_test_now_ms() + 10000;
    while (swoop_test_pid_alive(pid) && swoop_test_now_ms() < deadline) {
        swoop_atomic_wakeup(a, 1);
        swoop_test_sleep_ms(5);
    }
    swoop_test_wait_ok(pid, 10000);
    swoop_atomic_free(a);
}

struct lockers {
    swoop_mutex_t *m;
    swoop_spinlock_t *s;
    swoop_rwlock_t *rw;
};

static void hold_and_hang(void *arg, int fd)
{
    struct lockers *l = arg;
    ASSERT_OK(swoop_mutex_lock(l->m));
    ASSERT_OK(swoop_spinlock_lock(l->s));
    ASSERT_OK(swoop_rwlock_rdlock(l->rw));
    ASSERT_EQ(write(fd, "held\n", 5), 5);
    for (;;)
        pause();
}

TEST(locks_owner_killed_and_timeouts)
{
    swoop_log_set_level(SWOOP_LOG_NONE);
    struct lockers l;
    ASSERT_OK(swoop_mutex_new(&l.m));
    ASSERT_OK(swoop_spinlock_new(&l.s));
    ASSERT_OK(swoop_rwlock_new(&l.rw));
    int fd;
    pid_t pid = swoop_test_fork(hold_and_hang, &l, &fd);
    char line[16];
    ASSERT_GT(swoop_test_read_line(fd, line, sizeof(line), 10000), 0);
    close(fd);
    /* Held by a live process: try and timed locks fail cleanly. */
    ASSERT_EQ(swoop_mutex_trylock(l.m), SWOOP_EBUSY);
    ASSERT_EQ(swoop_mutex_timedlock(l.m, 30), SWOOP_ETIMEDOUT);
    ASSERT_EQ(swoop_spinlock_trylock(l.s), SWOOP_EBUSY);
    ASSERT_EQ(swoop_spinlock_timedlock(l.s, 30), SWOOP_ETIMEDOUT);
    ASSERT_EQ(swoop_rwlock_trywrlock(l.rw), SWOOP_EBUSY);
    ASSERT_EQ(swoop_rwlock_timedwrlock(l.rw, 30), SWOOP_ETIMEDOUT);
    ASSERT_OK(swoop_rwlock_tryrdlock(l.rw)); /* readers share */
    ASSERT_OK(swoop_rwlock_unlock(l.rw));
    /* Killed while holding them: mutex and spinlock are recovered. */
    ASSERT_OK(kill(pid, SIGKILL));
    ASSERT_GE(swoop_test_wait_pid(pid, 10000), 0);
    ASSERT_EQ(swoop_mutex_lock(l.m), SWOOP_EOWNERDEAD);
    ASSERT_OK(swoop_mutex_unlock(l.m));
    ASSERT_OK(swoop_mutex_lock(l.m)); /* consistent again */
    ASSERT_OK(swoop_mutex_unlock(l.m));
    ASSERT_EQ(swoop_spinlock_lock(l.s), SWOOP_EOWNERDEAD);
    ASSERT_OK(swoop_spinlock_unlock(l.s));
    ASSERT_EQ(swoop_spinlock_unlock(l.s), SWOOP_EPERM);
    ASSERT_OK(swoop_spinlock_timedlock(l.s, 10));
    ASSERT_EQ(swoop_spinlock_force_unlock(l.s, 12345678), 0);
    ASSERT_EQ(swoop_spinlock_force_unlock(l.s, gettid()), 1);
    swoop_mutex_free(l.m);
    swoop_spinlock_free(l.s);
    swoop_rwlock_free(l.rw);
}

static void sleeper(void *arg, int fd)
{
    ASSERT_EQ(write(fd, "up\n", 3), 3);
    for (;;)
        pause();
}

/*
 * Regression (review): a spinlock whose holder died while the kernel gave
 * its thread id to a new, live process is still recovered, because the lock
 * word carries the holder's start time; a live holder is never robbed.
 */
TEST(spinlock_recovered_when_owner_tid_is_reused)
{
    swoop_spinlock_t *s;
    ASSERT_OK(swoop_spinlock_new(&s));
    int fd;
    pid_t live = swoop_test_fork(sleeper, NULL, &fd);
    char line[8];
    ASSERT_GT(swoop_test_read_line(fd, line, sizeof(line), 5000), 0);
    close(fd);
    uint32_t real_tag = swoop__tid_start((int)live);
    ASSERT_NE(real_tag, 0);

    /* Held by the live process as it really is: no takeover. */
    __atomic_store_n(&s->_word, (uint64_t)real_tag << 32 | (uint32_t)live, __ATOMIC_RELEASE);
    ASSERT_EQ(swoop_spinlock_timedlock(s, 200), SWOOP_ETIMEDOUT);

    /* Held by an earlier process that had the same id: recovered. */
    __atomic_store_n(&s->_word, (uint64_t)(real_tag + 12345) << 32 | (uint32_t)live,
                     __ATOMIC_RELEASE);
    ASSERT_EQ(swoop_spinlock_timedlock(s, 5000), SWOOP_EOWNERDEAD);
    ASSERT_OK(swoop_spinlock_unlock(s));
    ASSERT_OK(swoop_spinlock_trylock(s));
    ASSERT_OK(swoop_spinlock_unlock(s));

    kill(live, SIGKILL);
    swoop_test_wait_pid(live, 5000);
    swoop_spinlock_free(s);
}
