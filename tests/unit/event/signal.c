/* Signals delivered as loop events through signalfd. */
#include <swoop/loop.h>

#include <signal.h>
#include <unistd.h>

#include <swoop/error.h>

#include "test.h"

struct sig_ctx {
    int count;
    int last;
    swoop_signal_t *other;
};

static void on_signal(swoop_signal_t *sig, int signo)
{
    struct sig_ctx *c = sig->data;
    c->count++;
    c->last = signo;
    swoop_signal_stop(sig);
}

static int is_blocked(int signo)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    return sigismember(&cur, signo);
}

TEST(signal_delivered_in_loop_context)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    struct sig_ctx c1 = {0}, c2 = {0};
    swoop_signal_t s1, s2;
    s1.data = &c1;
    s2.data = &c2;
    ASSERT_OK(swoop_signal_init(loop, &s1, on_signal));
    ASSERT_OK(swoop_signal_init(loop, &s2, on_signal));
    ASSERT_EQ(is_blocked(SIGUSR1), 0);
    ASSERT_OK(swoop_signal_start(&s1, SIGUSR1));
    ASSERT_OK(swoop_signal_start(&s2, SIGUSR1));
    ASSERT_EQ(is_blocked(SIGUSR1), 1);
    /* Blocked, so raising it does not kill us; it waits in the signalfd. */
    ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(c1.count, 1);
    ASSERT_EQ(c2.count, 1);
    ASSERT_EQ(c1.last, SIGUSR1);
    /* Both watchers stopped themselves: the old block state is back. */
    ASSERT_EQ(is_blocked(SIGUSR1), 0);
    ASSERT_OK(swoop_loop_free(loop));
}

TEST(signal_invalid_numbers)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    swoop_signal_t s;
    ASSERT_OK(swoop_signal_init(loop, &s, on_signal));
    ASSERT_EQ(swoop_signal_start(&s, SIGKILL), SWOOP_EINVAL);
    ASSERT_EQ(swoop_signal_start(&s, SIGSTOP), SWOOP_EINVAL);
    ASSERT_EQ(swoop_signal_start(&s, 0), SWOOP_EINVAL);
    ASSERT_EQ(swoop_signal_start(&s, 100000), SWOOP_EINVAL);
    ASSERT_OK(swoop_signal_stop(&s));
    ASSERT_OK(swoop_loop_free(loop));
}

static void stop_other(swoop_signal_t *sig, int signo)
{
    struct sig_ctx *c = sig->data;
    c->count++;
    /* Stopping the next watcher of the same signal from inside the dispatch. */
    swoop_signal_stop(c->other);
    swoop_signal_stop(sig);
}

TEST(signal_watcher_stops_another_during_dispatch)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    struct sig_ctx ca = {0}, cb = {0};
    swoop_signal_t a, b;
    a.data = &ca;
    b.data = &cb;
    ASSERT_OK(swoop_signal_init(loop, &a, stop_other));
    ASSERT_OK(swoop_signal_init(loop, &b, stop_other));
    ca.other = &b;
    cb.other = &a;
    ASSERT_OK(swoop_signal_start(&a, SIGUSR2));
    ASSERT_OK(swoop_signal_start(&b, SIGUSR2));
    ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    /* Exactly one of them ran: it stopped the other before its turn. */
    ASSERT_EQ(ca.count + cb.count, 1);
    ASSERT_EQ(is_blocked(SIGUSR2), 0);
    ASSERT_OK(swoop_loop_free(loop));
}

TEST(signal_preblocked_stays_blocked)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &one, NULL);
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    struct sig_ctx c = {0};
    swoop_signal_t s;
    s.data = &c;
    ASSERT_OK(swoop_signal_init(loop, &s, on_signal));
    ASSERT_OK(swoop_signal_start(&s, SIGHUP));
    ASSERT_EQ(kill(getpid(), SIGHUP), 0);
    ASSERT_EQ(swoop_loop_run(loop), 0);
    ASSERT_EQ(c.count, 1);
    ASSERT_EQ(is_blocked(SIGHUP), 1);
    ASSERT_OK(swoop_loop_free(loop));
}
