/*
 * Task workers (DESIGN.md section 2): the server's private interface to
 * task.c. Task worker t is manager slot worker_num + t, tagged
 * SWOOP_SLOT_TASK; event workers reach it over its own datagram socketpair
 * (task_ipc_mode 1) or a SysV message queue (2, 3), and it sends each
 * result back over the posting worker's message channel (FINISH), where
 * on_finish runs.
 */
#ifndef SWOOP_TASK_TASK_H
#define SWOOP_TASK_TASK_H

#include <sys/types.h>

#include "ipc/msg.h"
#include "proc/manager.h"

struct swoop_server_s;

/* Start: checks the task settings. Returns 0 or SWOOP_EINVAL / SWOOP_ENOTSUP (logged). */
int swoop__task_check(struct swoop_server_s *srv);

/* Start, before any fork: shared state and one channel per task worker. 0 or an error (logged). */
int swoop__task_open(struct swoop_server_s *srv);

/* End of start, in the process that opened: closes, frees, removes leftover temp files. */
void swoop__task_close(struct swoop_server_s *srv);

/* The number of task workers (0 without them). */
int swoop__task_num(const struct swoop_server_s *srv);

/* Manager: tags the task workers' slots (after swoop__manager_init). */
void swoop__task_manager_setup(struct swoop_server_s *srv, swoop_manager_t *mgr);

/*
 * Manager: process `pid` of slot `id` was reaped. A task it was running is
 * delivered again (task_redeliver) or reported to its poster
 * (on_task_error / taskwait); spill blocks it held are freed.
 */
void swoop__task_reaped(struct swoop_server_s *srv, int id, pid_t pid);

/* The role main of slot `id` >= worker_num: the task worker's blocking loop. */
int swoop__task_worker_main(struct swoop_server_s *srv, int id);

/*
 * Event worker at exit: drops the tasks still waiting in this process (their
 * spill blocks and files freed); returns how many.
 */
size_t swoop__task_abandon(struct swoop_server_s *srv);

/* Manager at exit: when the master died without cleaning up, removes its task files and queue. */
void swoop__task_manager_exit(struct swoop_server_s *srv);

/* Event worker at exit: sends queued tasks; 1 while some still wait, else 0. */
int swoop__task_flush(struct swoop_server_s *srv);

/*
 * Whether no task is queued or running anywhere (1 also without task
 * workers): every task posted was taken, and every task taken has sent
 * its result (or its death was settled by the manager).
 */
int swoop__task_quiet(struct swoop_server_s *srv);

/* Event worker, after each post and loop iteration: publishes how many tasks it holds unsent. */
void swoop__task_publish_unsent(struct swoop_server_s *srv);

/*
 * Manager: the event worker process holding poster slot `slot` (its worker
 * id in PROCESS mode, its session range in BASE mode) died: the tasks it
 * had not sent are taken off `posted`.
 */
void swoop__task_poster_reaped(struct swoop_server_s *srv, int slot);

/* Event worker: a FINISH message from its channel: runs on_finish. */
void swoop__task_finish_msg(struct swoop_server_s *srv, const swoop_ipc_msg_t *m);

#endif /* SWOOP_TASK_TASK_H */
