/*
 * The process pool's private definitions, shared by pool.c (public API and
 * settings) and worker.c (the worker side).
 */
#ifndef SWOOP_PROC_INTERNAL_H
#define SWOOP_PROC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <swoop/loop.h>
#include <swoop/process.h>

#include "ipc/channel.h"
#include "ipc/msgqueue.h"
#include "proc/manager.h"

/* The region shared by every pool process, mapped in swoop_pool_new. */
typedef struct swoop_pool_shared_s {
    _Atomic int32_t manager_pid;
    swoop_proc_stat_t workers[];
} swoop_pool_shared_t;

struct swoop_pool_s {
    int worker_num;
    swoop_pool_settings_t settings;
    swoop_pool_events_t events;
    void *data;
    swoop_pool_shared_t *shared;
    size_t shared_size;
    int running;    /* swoop_pool_start is on the stack of this process */
    int is_manager; /* this process is the manager */
    int worker_id;  /* this process's worker id, -1 outside workers */
    int pid_file_written;

    swoop_channel_t *channels; /* pipe mode: worker_num pairs, [0] write, [1] read */
    swoop_msgqueue_t mq;       /* msgqueue mode */
    swoop_manager_t mgr;

    /* Worker side (worker.c). */
    swoop_loop_t *loop;
    swoop_io_t msg_io;
    swoop_signal_t sig_term;
    swoop_signal_t sig_reopen;
    int stopping;
    int64_t requests;
    int64_t request_limit;
    char *msg_buf;
    size_t msg_cap;
    pthread_t mq_thread;
    int mq_thread_started;
    atomic_int mq_stop;
};

/* The role main function of pool workers (worker.c). */
int swoop__pool_worker_main(void *data, int worker_id);

#endif /* SWOOP_PROC_INTERNAL_H */
