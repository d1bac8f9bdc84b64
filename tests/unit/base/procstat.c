/*
 * swoop__procstat_read / swoop__proc_rss against real processes: this one
 * (running, CPU spent, a start time), one of its threads, a zombie child
 * (state Z, what the liveness checks count as gone) and a reaped one (gone).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/error.h>

#include "base/procstat.h"
#include "test.h"

static volatile unsigned sink;

TEST(procstat_reads_this_process)
{
    /* Spend 60 ms of CPU (the kernel counts it in 10 ms ticks). */
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    do {
        for (int i = 0; i < 100000; i++)
            sink += (unsigned)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 60);
    swoop_procstat_t ps;
    ASSERT_OK(swoop__procstat_read(getpid(), 0, &ps));
    ASSERT_EQ(ps.state, 'R'); /* reading its own stat, it runs */
    ASSERT(ps.cpu_s >= 0.03);
    ASSERT_GT(ps.start_ticks, 0);
    uint64_t rss = 0;
    ASSERT_OK(swoop__proc_rss(getpid(), &rss));
    ASSERT_GT(rss, 64 * 1024);
    /* The main thread through /proc/PID/task/TID. */
    swoop_procstat_t th;
    ASSERT_OK(swoop__procstat_read(getpid(), getpid(), &th));
    ASSERT_EQ(th.start_ticks, ps.start_ticks);
}

static _Atomic pid_t sleeper_tid;

static void *sleeper(void *arg)
{
    (void)arg;
    sleeper_tid = (pid_t)syscall(SYS_gettid);
    for (;;)
        pause(); /* until cancelled */
    return NULL;
}

TEST(procstat_reads_a_thread)
{
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, sleeper, NULL), 0);
    WAIT_UNTIL(sleeper_tid != 0, 2000);
    /* Its own entry under the process: asleep, though the process runs. */
    swoop_procstat_t ps;
    WAIT_UNTIL(swoop__procstat_read(getpid(), sleeper_tid, &ps) == 0 && ps.state == 'S', 2000);
    ASSERT_OK(pthread_cancel(t));
    ASSERT_OK(pthread_join(t, NULL));
}

TEST(procstat_sees_zombies_and_gone_processes)
{
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0)
        _exit(0);
    swoop_procstat_t ps;
    /* Exited, not reaped: a zombie until waitpid. */
    WAIT_UNTIL(swoop__procstat_read(child, 0, &ps) == 0 && ps.state == 'Z', 2000);
    ASSERT_EQ(waitpid(child, NULL, 0), child);
    int rc = swoop__procstat_read(child, 0, &ps);
    ASSERT(rc == -ENOENT || rc == -ESRCH);
    uint64_t rss;
    rc = swoop__proc_rss(child, &rss);
    ASSERT(rc == -ENOENT || rc == -ESRCH);
}
