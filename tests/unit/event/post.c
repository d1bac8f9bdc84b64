/* Cross-thread posts and stop; runs under TSan too. TEST_LABELS: tsan */
#include <swoop/loop.h>

#include <pthread.h>
#include <stdatomic.h>

#include <swoop/error.h>
#include <swoop/timer.h>

#include "test.h"

#define THREADS          4
#define POSTS_PER_THREAD 5000

struct stress {
    swoop_loop_t *loop;
    int received[THREADS];
    int last_seq[THREADS];
    int order_errors;
    int total;
    atomic_int go;
};

struct post_arg {
    struct stress *s;
    int thread;
    int seq;
};

static struct post_arg args[THREADS][POSTS_PER_THREAD];

static void on_post(swoop_loop_t *loop, void *arg)
{
    struct post_arg *a = arg;
    struct stress *s = a->s;
    /* Posts from one thread arrive in the order they were made. */
    if (a->seq != s->last_seq[a->thread] + 1)
        s->order_errors++;
    s->last_seq[a->thread] = a->seq;
    s->received[a->thread]++;
    if (++s->total == THREADS * POSTS_PER_THREAD)
        swoop_loop_stop(loop);
}

static void *poster(void *p)
{
    struct post_arg *first = p;
    struct stress *s = first->s;
    while (!atomic_load(&s->go))
        ;
    for (int i = 0; i < POSTS_PER_THREAD; i++) {
        int rc = swoop_loop_post(s->loop, on_post, &first[i]);
        if (rc != 0)
            return (void *)1;
    }
    return NULL;
}

static void keepalive(int64_t id, void *arg)
{
}

TEST(post_stress_from_threads)
{
    struct stress s;
    memset(&s, 0, sizeof(s));
    for (int t = 0; t < THREADS; t++)
        s.last_seq[t] = -1;
    ASSERT_OK(swoop_loop_new(&s.loop));
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < POSTS_PER_THREAD; i++)
            args[t][i] = (struct post_arg){&s, t, i};
        ASSERT_EQ(pthread_create(&th[t], NULL, poster, args[t]), 0);
    }
    /* A long tick keeps the loop waiting for posts; the last post stops it. */
    int64_t id = swoop_loop_timer_tick(s.loop, 60000, keepalive, NULL);
    ASSERT_GT(id, 0);
    atomic_store(&s.go, 1);
    ASSERT_EQ(swoop_loop_run(s.loop), 1);
    for (int t = 0; t < THREADS; t++) {
        void *ret;
        ASSERT_EQ(pthread_join(th[t], &ret), 0);
        ASSERT_NULL(ret);
        ASSERT_EQ(s.received[t], POSTS_PER_THREAD);
    }
    ASSERT_EQ(s.order_errors, 0);
    ASSERT_OK(swoop_loop_timer_clear(s.loop, id));
    ASSERT_OK(swoop_loop_free(s.loop));
}

static void *stopper(void *p)
{
    swoop_loop_t *loop = p;
    swoop_test_sleep_ms(20);
    swoop_loop_stop(loop);
    return NULL;
}

TEST(stop_from_another_thread_wakes_the_loop)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    int64_t id = swoop_loop_timer_after(loop, 60000, keepalive, NULL);
    ASSERT_GT(id, 0);
    pthread_t th;
    uint64_t start = swoop_test_now_ms();
    ASSERT_EQ(pthread_create(&th, NULL, stopper, loop), 0);
    ASSERT_EQ(swoop_loop_run(loop), 1);
    ASSERT_LT(swoop_test_now_ms() - start, 10000);
    pthread_join(th, NULL);
    ASSERT_OK(swoop_loop_timer_clear(loop, id));
    ASSERT_OK(swoop_loop_free(loop));
}

static void count_post(swoop_loop_t *loop, void *arg)
{
    int *n = arg;
    if (++*n < 100)
        ASSERT_OK(swoop_loop_post(loop, count_post, arg)); /* re-post from the callback */
}

static void *thread_timers(void *p)
{
    /* Each thread has its own default loop. */
    int *fired = p;
    swoop_loop_t *mine = swoop_loop_default();
    if (mine == NULL)
        return (void *)1;
    int64_t id = swoop_timer_after(1, (swoop_timer_cb)(void (*)(void))keepalive, NULL);
    if (id <= 0)
        return (void *)1;
    swoop_timer_stats_t st;
    swoop_timer_stats(&st);
    *fired = (int)st.count;
    swoop_loop_run(mine);
    return mine;
}

TEST(posts_from_loop_thread_and_per_thread_default_loops)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    int n = 0;
    ASSERT_OK(swoop_loop_post(loop, count_post, &n));
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(n, 100);
    ASSERT_EQ(swoop_loop_post(loop, NULL, NULL), SWOOP_EINVAL);
    ASSERT_OK(swoop_loop_free(loop));

    int count = 0;
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, thread_timers, &count), 0);
    void *other;
    pthread_join(th, &other);
    ASSERT_NOT_NULL(other);
    ASSERT(other != (void *)1);
    ASSERT(other != swoop_loop_default());
    ASSERT_EQ(count, 1);
    swoop_timer_stats_t st;
    swoop_timer_stats(&st);
    ASSERT_EQ(st.count, 0);
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
}
