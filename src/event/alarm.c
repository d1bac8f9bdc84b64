/*
 * The alarm driver for processes that block instead of running a loop (the
 * manager in waitpid(), task workers in msgrcv()). ITIMER_REAL is kept armed
 * for the earliest timer of the owning loop; SIGALRM's handler only sets a
 * flag, and since it is installed without SA_RESTART the blocking call returns
 * EINTR, after which the process calls swoop_loop_alarm_dispatch and the
 * callbacks run in normal context.
 *
 * A signal that lands between the process's last check and its entry into
 * the blocking call would leave it asleep past the timer. The itimer therefore
 * repeats (it_interval, at most ALARM_RETRY_MS) until dispatch re-arms it, so
 * such a timer runs late by at most that much instead of never.
 */
#include <swoop/timer.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>

#include "base/clock.h"
#include "event/internal.h"

#define ALARM_RETRY_MS 50

static volatile sig_atomic_t alarm_fired;
static void (*volatile alarm_hook)(void);
static swoop_loop_t *_Atomic alarm_owner;
static struct sigaction alarm_saved_action;
static int alarm_was_blocked;

static void on_sigalrm(int signo)
{
    (void)signo;
    alarm_fired = 1;
    void (*hook)(void) = alarm_hook;
    if (hook)
        hook();
}

void swoop__alarm_set_hook(void (*hook)(void))
{
    alarm_hook = hook;
}

int swoop__alarm_fired(void)
{
    return alarm_fired;
}

static int set_itimer(uint64_t delay_ns, uint64_t repeat_ns)
{
    struct itimerval it;
    memset(&it, 0, sizeof(it));
    if (delay_ns > 0) {
        uint64_t us = (delay_ns + 999) / 1000; /* round up: never early */
        it.it_value.tv_sec = (time_t)(us / 1000000);
        it.it_value.tv_usec = (suseconds_t)(us % 1000000);
        uint64_t rus = (repeat_ns + 999) / 1000;
        it.it_interval.tv_sec = (time_t)(rus / 1000000);
        it.it_interval.tv_usec = (suseconds_t)(rus % 1000000);
    }
    if (setitimer(ITIMER_REAL, &it, NULL) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "setitimer(ITIMER_REAL) failed");
        return -err;
    }
    return 0;
}

void swoop__alarm_rearm(swoop_loop_t *loop)
{
    if (atomic_load(&alarm_owner) != loop)
        return;
    const swoop_heap_entry_t *top = swoop__heap_top(&loop->timer_heap);
    if (top == NULL) {
        set_itimer(0, 0);
        return;
    }
    uint64_t now = swoop__clock_ns();
    uint64_t delay = top->key > now ? top->key - now : 1000; /* due: signal at once */
    uint64_t retry = ALARM_RETRY_MS * SWOOP_NS_PER_MS;
    set_itimer(delay, delay < retry ? (delay < SWOOP_NS_PER_MS ? SWOOP_NS_PER_MS : delay) : retry);
}

int swoop_loop_alarm_start(swoop_loop_t *loop)
{
    if (loop == NULL)
        return SWOOP_EINVAL;
    if (swoop__loop_detached(loop)) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "swoop_loop_alarm_start: loop made before fork() elsewhere");
        return SWOOP_ESTATE;
    }
    swoop_loop_t *expected = NULL;
    if (!atomic_compare_exchange_strong(&alarm_owner, &expected, loop)) {
        if (expected == loop)
            return 0;
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_loop_alarm_start: another loop owns ITIMER_REAL");
        return SWOOP_EBUSY;
    }
    if (sigismember(&loop->signal_mask, SIGALRM)) {
        atomic_store(&alarm_owner, NULL);
        swoop_log(SWOOP_LOG_WARNING, 0, "SIGALRM has a signal watcher; the alarm driver needs it");
        return SWOOP_EBUSY;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigalrm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls must return EINTR */
    if (sigaction(SIGALRM, &sa, &alarm_saved_action) < 0) {
        int err = errno;
        atomic_store(&alarm_owner, NULL);
        swoop_log(SWOOP_LOG_ERROR, err, "sigaction(SIGALRM) failed");
        return -err;
    }
    sigset_t one, old;
    sigemptyset(&one);
    sigaddset(&one, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &one, &old);
    alarm_was_blocked = sigismember(&old, SIGALRM);
    alarm_fired = 0;
    loop->alarm_mode = 1;
    swoop__alarm_rearm(loop);
    return 0;
}

int swoop_loop_alarm_stop(swoop_loop_t *loop)
{
    if (loop == NULL)
        return SWOOP_EINVAL;
    if (atomic_load(&alarm_owner) != loop)
        return 0;
    set_itimer(0, 0);
    /*
     * A SIGALRM already pending (the timer expired while the signal was
     * blocked, as a manager keeps it outside sigsuspend) would meet the
     * restored action once unblocked, by default the one that terminates:
     * ignoring a pending signal discards it (POSIX), then the caller's
     * action comes back.
     */
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGALRM, &ign, NULL);
    sigaction(SIGALRM, &alarm_saved_action, NULL);
    if (alarm_was_blocked) {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, SIGALRM);
        pthread_sigmask(SIG_BLOCK, &one, NULL);
    }
    loop->alarm_mode = 0;
    alarm_fired = 0;
    atomic_store(&alarm_owner, NULL);
    return 0;
}

void swoop__alarm_release(swoop_loop_t *loop)
{
    swoop_loop_alarm_stop(loop);
}

int swoop_loop_alarm_dispatch(swoop_loop_t *loop)
{
    if (loop == NULL)
        return SWOOP_EINVAL;
    if (atomic_load(&alarm_owner) != loop)
        return SWOOP_ESTATE;
    alarm_fired = 0;
    loop->now_ns = swoop__clock_ns();
    int ran = swoop__timers_run(loop);
    if (ran == 0)
        swoop__alarm_rearm(loop); /* woken early or by another signal: re-arm the rest */
    return ran;
}

int swoop_timer_alarm_start(void)
{
    swoop_loop_t *loop;
    int rc = swoop__loop_default_get(&loop);
    return rc < 0 ? rc : swoop_loop_alarm_start(loop);
}

int swoop_timer_alarm_stop(void)
{
    swoop_loop_t *loop;
    int rc = swoop__loop_default_get(&loop);
    return rc < 0 ? rc : swoop_loop_alarm_stop(loop);
}

int swoop_timer_alarm_dispatch(void)
{
    swoop_loop_t *loop;
    int rc = swoop__loop_default_get(&loop);
    return rc < 0 ? rc : swoop_loop_alarm_dispatch(loop);
}

void swoop__alarm_atfork_child(void)
{
    /* Interval timers are not inherited by a child: whatever loop owned the alarm no longer does.
     */
    swoop_loop_t *owner = atomic_load(&alarm_owner);
    if (owner == NULL)
        return;
    sigaction(SIGALRM, &alarm_saved_action, NULL);
    owner->alarm_mode = 0;
    alarm_fired = 0;
    atomic_store(&alarm_owner, NULL);
}
