/*
 * The calling process's pid without a system call each time (glibc stopped
 * caching getpid() in 2.25, and the spill file records a holder pid in
 * every state change): read once, then refreshed in every child fork()
 * makes, by an atfork handler installed with the first call.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "base/internal.h"

static _Atomic pid_t cached_pid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void refresh(void)
{
    atomic_store_explicit(&cached_pid, getpid(), memory_order_relaxed);
}

static void install(void)
{
    pthread_atfork(NULL, NULL, refresh);
}

pid_t swoop__getpid(void)
{
    pid_t pid = atomic_load_explicit(&cached_pid, memory_order_relaxed);
    if (swoop_likely(pid != 0))
        return pid;
    pthread_once(&atfork_once, install); /* before the read: a fork from now on refreshes */
    refresh();
    return atomic_load_explicit(&cached_pid, memory_order_relaxed);
}
