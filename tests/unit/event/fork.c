/*
 * fork(): the child does not inherit the parent's default loop, timers,
 * watchers or blocked signals, and discarding them leaves the parent's loop
 * untouched.
 */
#include <swoop/timer.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <swoop/error.h>

#include "test.h"

static int parent_fired;

static void parent_timer(int64_t id, void *arg)
{
    parent_fired++;
}

static void on_usr1(swoop_signal_t *sig, int signo)
{
    swoop_signal_stop(sig);
}

static void child_checks(void *arg, int ready_fd)
{
    /* A fresh default loop: no timers, nothing to run. */
    swoop_timer_stats_t st;
    swoop_timer_stats(&st);
    ASSERT_UEQ(st.count, 0);
    ASSERT_EQ(swoop_loop_run(swoop_loop_default()), 0);
    /* SIGUSR1, blocked by the parent's signal watcher, is unblocked here. */
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    ASSERT_EQ(sigismember(&cur, SIGUSR1), 0);
    /* The child's own timers work. */
    ASSERT_GT(swoop_timer_after(2, parent_timer, NULL), 0);
    ASSERT_EQ(swoop_loop_run(swoop_loop_default()), 0);
    ASSERT_EQ(parent_fired, 1); /* the child's timer, not the inherited one */
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
}

TEST(timers_and_watchers_are_not_inherited)
{
    swoop_loop_t *loop = swoop_loop_default();
    ASSERT_NOT_NULL(loop);
    ASSERT_GT(swoop_timer_after(30, parent_timer, NULL), 0);
    ASSERT_GT(swoop_timer_tick(1000, parent_timer, NULL), 0);
    swoop_signal_t sig;
    ASSERT_OK(swoop_signal_init(loop, &sig, on_usr1));
    ASSERT_OK(swoop_signal_start(&sig, SIGUSR1));
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);

    pid_t child = swoop_test_fork(child_checks, NULL, NULL);
    swoop_test_wait_ok(child, 5000);

    /* The parent's loop still works: its epoll set and signalfd are intact. */
    ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
    swoop_timer_clear_all();
    ASSERT_GT(swoop_timer_after(5, parent_timer, NULL), 0);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(parent_fired, 1);
    close(fds[0]);
    close(fds[1]);
    ASSERT_OK(swoop_loop_free(loop));
}

struct own_loop {
    swoop_loop_t *loop;
    swoop_signal_t sig;
    int signals;
    int posts;
};

static void own_on_usr2(swoop_signal_t *sig, int signo)
{
    struct own_loop *o = sig->data;
    o->signals++;
    swoop_signal_stop(sig);
}

static void own_on_post(swoop_loop_t *loop, void *arg)
{
    struct own_loop *o = arg;
    o->posts++;
}

static void child_tidies_inherited_loop(void *arg, int ready_fd)
{
    struct own_loop *o = arg;
    /*
     * A non-default loop inherited from the parent: using it is refused, and
     * tidying it up must not disturb the parent's epoll set or signalfd.
     */
    ASSERT_EQ(swoop_loop_run(o->loop), SWOOP_ESTATE);
    ASSERT_EQ(swoop_loop_post(o->loop, own_on_post, o), SWOOP_ESTATE);
    ASSERT_OK(swoop_signal_stop(&o->sig));
    ASSERT_OK(swoop_loop_free(o->loop));
}

TEST(child_freeing_an_inherited_loop_leaves_the_parent_intact)
{
    struct own_loop o = {0};
    ASSERT_OK(swoop_loop_new(&o.loop));
    o.sig.data = &o;
    ASSERT_OK(swoop_signal_init(o.loop, &o.sig, own_on_usr2));
    ASSERT_OK(swoop_signal_start(&o.sig, SIGUSR2));
    pid_t child = swoop_test_fork(child_tidies_inherited_loop, &o, NULL);
    swoop_test_wait_ok(child, 5000);
    /* The parent's signalfd still has SIGUSR2 and its eventfd still wakes it. */
    ASSERT_OK(swoop_loop_post(o.loop, own_on_post, &o));
    ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
    ASSERT_GT(swoop_loop_timer_after(o.loop, 2000, parent_timer, NULL), 0);
    while (o.signals == 0 || o.posts == 0)
        ASSERT_EQ(swoop_loop_run_once(o.loop), 1);
    swoop_loop_timer_clear_all(o.loop);
    ASSERT_OK(swoop_loop_free(o.loop));
}
