/*
 * Forks a role main function (see spawn.h). Everything the child needs to
 * undo from its parent happens here, right after fork and before any user
 * code: parent-death signal, signal dispositions and mask, log role.
 */
#include "proc/spawn.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "base/internal.h"

pid_t swoop__spawn(swoop_proc_main_pt main, void *data, int worker_id, char role)
{
    pid_t parent = getpid();
    fflush(NULL); /* or the child would write the parent's buffered output again */
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "fork() of worker %d failed", worker_id);
        return -err;
    }
    if (pid > 0)
        return pid;

    /*
     * The child dies with the manager. If the manager died between fork and
     * prctl, the signal will never come: getppid() then already names
     * another process (the subreaper or init), so leave at once.
     */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "prctl(PR_SET_PDEATHSIG) failed in worker %d", worker_id);
        _exit(1);
    }
    if (getppid() != parent)
        _exit(1);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    for (int i = 0; i < swoop__manager_signal_count; i++)
        sigaction(swoop__manager_signals[i], &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGRTMIN, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    /*
     * SIGTERM and SIGRTMIN stay blocked: the manager may send them at any
     * moment (shutdown, reload, log rotation), also before the role main has
     * set up its signal watchers, and their default action would kill a
     * worker that is merely starting. Blocked, they wait for the role main's
     * signalfd (or for it to unblock them). Everything else is unblocked.
     */
    sigset_t held;
    sigemptyset(&held);
    sigaddset(&held, SIGTERM);
    sigaddset(&held, SIGRTMIN);
    sigprocmask(SIG_SETMASK, &held, NULL);

    swoop_log_set_role(role, worker_id);
    int rc = main(data, worker_id);
    fflush(NULL);
    _exit(rc & 0xff);
}
