/*
 * The threaded paths, run under TSan too: threads hammering one table row,
 * one atomic, and counters guarded by each lock kind.
 * TEST_LABELS: tsan
 */
#include <swoop/table.h>

#include <pthread.h>
#include <stdio.h>

#include <swoop/atomic.h>
#include <swoop/lock.h>

#include "test.h"

enum { THREADS = 4, ROUNDS = 20000 };

struct shared {
    swoop_table_t *t;
    swoop_atomic_t *a;
    swoop_mutex_t *m;
    swoop_rwlock_t *rw;
    swoop_spinlock_t *s;
    int64_t by_mutex, by_rwlock, by_spin;
};

static void *hammer(void *arg)
{
    struct shared *sh = arg;
    char buf[32];
    size_t len;
    for (int i = 0; i < ROUNDS; i++) {
        ASSERT_OK(swoop_table_incr(sh->t, "hot", "n", 1, NULL));
        swoop_table_field_t f[] = {{.column = "n2", .i = i}, {.column = "s", .s = "abc", .len = 3}};
        ASSERT_OK(swoop_table_set_row(sh->t, "other", f, 2));
        ASSERT_OK(swoop_table_get_string(sh->t, "other", "s", buf, sizeof(buf), &len));
        swoop_atomic_add(sh->a, 1);
        ASSERT_OK(swoop_mutex_lock(sh->m));
        sh->by_mutex++;
        ASSERT_OK(swoop_mutex_unlock(sh->m));
        ASSERT_OK(swoop_rwlock_wrlock(sh->rw));
        sh->by_rwlock++;
        ASSERT_OK(swoop_rwlock_unlock(sh->rw));
        ASSERT_OK(swoop_rwlock_rdlock(sh->rw));
        ASSERT_GE(sh->by_rwlock, 1);
        ASSERT_OK(swoop_rwlock_unlock(sh->rw));
        ASSERT_OK(swoop_spinlock_lock(sh->s));
        sh->by_spin++;
        ASSERT_OK(swoop_spinlock_unlock(sh->s));
        if (i % 1000 == 0) {
            char k[16];
            snprintf(k, sizeof(k), "tmp%d", i);
            ASSERT_OK(swoop_table_set_int(sh->t, k, "n", i));
            swoop_table_del(sh->t, k); /* another thread may have deleted it */
        }
    }
    return NULL;
}

static int count_rows(swoop_table_t *t, const char *key, const void *row, void *arg)
{
    ++*(int *)arg;
    return 0;
}

TEST_TIMEOUT(threads_hammer_table_atomic_locks, 180)
{
    struct shared sh = {0};
    ASSERT_OK(swoop_table_new(&sh.t, 256, 0.2));
    ASSERT_OK(swoop_table_column(sh.t, "n", SWOOP_TABLE_INT, 0));
    ASSERT_OK(swoop_table_column(sh.t, "n2", SWOOP_TABLE_INT, 0));
    ASSERT_OK(swoop_table_column(sh.t, "s", SWOOP_TABLE_STRING, 8));
    ASSERT_OK(swoop_table_create(sh.t));
    ASSERT_OK(swoop_atomic_new(&sh.a, 0));
    ASSERT_OK(swoop_mutex_new(&sh.m));
    ASSERT_OK(swoop_rwlock_new(&sh.rw));
    ASSERT_OK(swoop_spinlock_new(&sh.s));
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, hammer, &sh), 0);
    int rows = 0;
    for (int pass = 0; pass < 20; pass++)
        ASSERT_OK(swoop_table_foreach(sh.t, count_rows, &rows));
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    int64_t v;
    ASSERT_OK(swoop_table_get_int(sh.t, "hot", "n", &v));
    ASSERT_EQ(v, THREADS * ROUNDS);
    ASSERT_EQ(swoop_atomic_get(sh.a), THREADS * ROUNDS);
    ASSERT_EQ(sh.by_mutex, THREADS * ROUNDS);
    ASSERT_EQ(sh.by_rwlock, THREADS * ROUNDS);
    ASSERT_EQ(sh.by_spin, THREADS * ROUNDS);
    ASSERT_UEQ(swoop_table_count(sh.t), 2);
    swoop_table_free(sh.t);
    swoop_atomic_free(sh.a);
    swoop_mutex_free(sh.m);
    swoop_rwlock_free(sh.rw);
    swoop_spinlock_free(sh.s);
}

static void *waiter(void *arg)
{
    ASSERT_EQ(swoop_atomic_wait(arg, 30000), 0);
    return NULL;
}

TEST(threads_atomic_wait_wakeup)
{
    swoop_atomic_t *a;
    ASSERT_OK(swoop_atomic_new(&a, 0));
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, waiter, a), 0);
    /* Each wakeup is consumed by one waiter; keep waking until all three returned. */
    int joined[3] = {0, 0, 0}, done = 0;
    uint64_t deadline = swoop_test_now_ms() + 20000;
    while (done < 3 && swoop_test_now_ms() < deadline) {
        swoop_atomic_wakeup(a, 1);
        swoop_test_sleep_ms(1);
        for (int i = 0; i < 3; i++) {
            if (!joined[i] && pthread_tryjoin_np(th[i], NULL) == 0) {
                joined[i] = 1;
                done++;
            }
        }
    }
    ASSERT_EQ(done, 3);
    swoop_atomic_free(a);
}
