/*
 * The per-thread default loop. It is made on first use, freed when its
 * thread exits, and never inherited across fork(): in the child, the copy of
 * the parent's default loop is discarded without running anything and
 * without touching the epoll set and signalfd it shares with the parent;
 * the signals it blocked are unblocked again, so a forked worker starts with
 * the signal mask the program had before the loop existed.
 */
#include <swoop/loop.h>

#include <pthread.h>

#include "event/internal.h"

static _Thread_local swoop_loop_t *default_loop;
static pthread_key_t default_key;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static int default_key_made;

static void thread_exit_free(void *ptr)
{
    swoop_loop_t *loop = ptr;
    if (loop && loop == default_loop) {
        default_loop = NULL;
        swoop__loop_destroy(loop, 0);
    }
}

void swoop__loop_atfork_child(void)
{
    swoop__alarm_atfork_child();
    swoop_loop_t *loop = default_loop;
    if (loop) {
        default_loop = NULL;
        if (default_key_made)
            pthread_setspecific(default_key, NULL);
        swoop__loop_destroy(loop, 1);
    }
}

static void default_init_once(void)
{
    default_key_made = 1;
    pthread_key_create(&default_key, thread_exit_free);
}

int swoop__loop_default_get(swoop_loop_t **out)
{
    if (default_loop) {
        *out = default_loop;
        return 0;
    }
    pthread_once(&default_once, default_init_once);
    swoop_loop_t *loop;
    int rc = swoop_loop_new(&loop);
    if (rc < 0) {
        swoop_log(SWOOP_LOG_ERROR, rc, "cannot create the default loop");
        return rc;
    }
    default_loop = loop;
    pthread_setspecific(default_key, loop);
    *out = loop;
    return 0;
}

swoop_loop_t *swoop_loop_default(void)
{
    swoop_loop_t *loop;
    return swoop__loop_default_get(&loop) == 0 ? loop : NULL;
}

void swoop__loop_forget_default(swoop_loop_t *loop)
{
    if (loop == default_loop) {
        default_loop = NULL;
        pthread_setspecific(default_key, NULL);
    }
}
