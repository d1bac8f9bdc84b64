/*
 * The alarm driver in blocking processes: a process sitting in waitpid() and
 * one sitting in msgrcv() still run their timers, on time and outside signal
 * context.
 */
#include <swoop/timer.h>

#include <errno.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <swoop/error.h>

#include "base/clock.h"
#include "test.h"

struct alarm_ctx {
    int child_pipe;
    int ticks;
    int afters;
    uint64_t armed_ns;
    uint64_t after_ns;
    int msqid;
};

static void on_tick(int64_t id, void *arg)
{
    struct alarm_ctx *c = arg;
    c->ticks++;
}

static void release_child(int64_t id, void *arg)
{
    struct alarm_ctx *c = arg;
    c->afters++;
    c->after_ns = swoop__clock_ns();
    /* Tell the child to exit: waitpid() in the parent can then return. */
    ASSERT_EQ(write(c->child_pipe, "q", 1), 1);
}

static void child_waits(void *arg, int ready_fd)
{
    int fd = *(int *)arg;
    char ch;
    ssize_t n = read(fd, &ch, 1);
    (void)n;
}

TEST(alarm_runs_timers_while_blocked_in_waitpid)
{
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    pid_t child = swoop_test_fork(child_waits, &p[0], NULL);
    close(p[0]);
    struct alarm_ctx c = {.child_pipe = p[1]};
    ASSERT_OK(swoop_timer_alarm_start());
    ASSERT_EQ(swoop_timer_alarm_start(), 0); /* idempotent for the owner */
    int64_t tick = swoop_timer_tick(5, on_tick, &c);
    ASSERT_GT(tick, 0);
    c.armed_ns = swoop__clock_ns();
    ASSERT_GT(swoop_timer_after(60, release_child, &c), 0);

    int status = 0, eintr = 0;
    for (;;) {
        pid_t r = waitpid(child, &status, 0);
        if (r == child)
            break;
        ASSERT_EQ(r, -1);
        ASSERT_EQ(errno, EINTR);
        eintr++;
        ASSERT_GE(swoop_timer_alarm_dispatch(), 0);
        ASSERT_LT(eintr, 10000);
    }
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(c.afters, 1);
    ASSERT_UGE(c.after_ns - c.armed_ns, 60000000u); /* never early */
    ASSERT_GE(c.ticks, 5);                          /* ~11 beats in 60 ms */
    ASSERT_GT(eintr, 5);
    ASSERT_OK(swoop_timer_clear(tick));
    ASSERT_OK(swoop_timer_alarm_stop());
    close(p[1]);
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
}

struct qmsg {
    long mtype;
    char text[16];
};

static void send_to_queue(int64_t id, void *arg)
{
    struct alarm_ctx *c = arg;
    c->afters++;
    struct qmsg m = {.mtype = 1};
    memcpy(m.text, "wake", 5);
    ASSERT_EQ(msgsnd(c->msqid, &m, sizeof(m.text), IPC_NOWAIT), 0);
}

TEST(alarm_runs_timers_while_blocked_in_msgrcv)
{
    struct alarm_ctx c = {0};
    c.msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    ASSERT_GE(c.msqid, 0);
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    ASSERT_OK(swoop_loop_alarm_start(loop));
    /* Only one loop may own the process's ITIMER_REAL. */
    swoop_loop_t *other;
    ASSERT_OK(swoop_loop_new(&other));
    ASSERT_EQ(swoop_loop_alarm_start(other), SWOOP_EBUSY);
    ASSERT_EQ(swoop_loop_alarm_dispatch(other), SWOOP_ESTATE);
    ASSERT_OK(swoop_loop_free(other));

    int64_t tick = swoop_loop_timer_tick(loop, 3, on_tick, &c);
    ASSERT_GT(swoop_loop_timer_after(loop, 40, send_to_queue, &c), 0);
    struct qmsg m;
    int interrupted = 0;
    for (;;) {
        ssize_t n = msgrcv(c.msqid, &m, sizeof(m.text), 0, 0);
        if (n >= 0) {
            ASSERT_STR_EQ(m.text, "wake");
            break;
        }
        ASSERT_EQ(errno, EINTR);
        interrupted++;
        ASSERT_GE(swoop_loop_alarm_dispatch(loop), 0);
        ASSERT_LT(interrupted, 10000);
    }
    ASSERT_EQ(c.afters, 1);
    ASSERT_GE(c.ticks, 5);
    ASSERT_OK(swoop_loop_timer_clear(loop, tick));
    ASSERT_OK(swoop_loop_alarm_stop(loop));
    /* SIGALRM is back to its default disposition. */
    struct sigaction sa;
    sigaction(SIGALRM, NULL, &sa);
    ASSERT(sa.sa_handler == SIG_DFL);
    ASSERT_EQ(msgctl(c.msqid, IPC_RMID, NULL), 0);
    ASSERT_OK(swoop_loop_free(loop));
}

TEST(alarm_with_no_timer_stays_quiet)
{
    swoop_loop_t *loop;
    ASSERT_OK(swoop_loop_new(&loop));
    ASSERT_OK(swoop_loop_alarm_start(loop));
    struct itimerval it;
    getitimer(ITIMER_REAL, &it);
    ASSERT_EQ(it.it_value.tv_sec + it.it_value.tv_usec, 0);
    int fired = 0;
    int64_t id = swoop_loop_timer_after(loop, 1000, on_tick, &fired);
    getitimer(ITIMER_REAL, &it);
    ASSERT_GT(it.it_value.tv_sec * 1000000 + it.it_value.tv_usec, 900000);
    /* Clearing the only timer disarms the itimer again. */
    ASSERT_OK(swoop_loop_timer_clear(loop, id));
    getitimer(ITIMER_REAL, &it);
    ASSERT_EQ(it.it_value.tv_sec + it.it_value.tv_usec, 0);
    /* Freeing the owner releases the alarm. */
    ASSERT_OK(swoop_loop_free(loop));
    ASSERT_OK(swoop_loop_new(&loop));
    ASSERT_OK(swoop_loop_alarm_start(loop));
    ASSERT_OK(swoop_loop_free(loop));
}
