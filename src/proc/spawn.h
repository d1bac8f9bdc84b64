/*
 * Forking a role main function (nginx ngx_spawn_process with an
 * ngx_spawn_proc_pt): the layer above supplies the function that a child
 * runs, so the manager never knows whether it forks a pool worker, a server
 * event worker or a task worker.
 */
#ifndef SWOOP_PROC_SPAWN_H
#define SWOOP_PROC_SPAWN_H

#include <sys/types.h>

/*
 * A role main function: runs in the forked child with the `data` given to
 * the manager and the child's worker id; its return value becomes the exit
 * code (SWOOP_EXIT_FATAL = do not restart). It may also _exit itself.
 */
typedef int (*swoop_proc_main_pt)(void *data, int worker_id);

/*
 * Forks a child that runs `main(data, worker_id)` and then _exits with its
 * result. In the child, before `main`: PR_SET_PDEATHSIG(SIGKILL) followed by
 * a check that the parent is still the one that forked it (otherwise the
 * parent died before the prctl and the child _exits at once), every signal
 * the manager handles back to SIG_DFL, SIGPIPE ignored, a signal mask that
 * holds only SIGTERM and SIGRTMIN blocked (so one sent while the child starts
 * waits for `main` to watch it through a signalfd, or to unblock it), and
 * the log role set to `role` / worker_id. Returns the child's pid
 * in the parent, or -errno (logged) when fork fails.
 */
pid_t swoop__spawn(swoop_proc_main_pt main, void *data, int worker_id, char role);

/* The signals the manager catches; spawn resets them in the child. */
extern const int swoop__manager_signals[];
extern const int swoop__manager_signal_count;

#endif /* SWOOP_PROC_SPAWN_H */
