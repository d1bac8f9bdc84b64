/*
 * Signals as loop events. A watched signal is blocked in the calling thread
 * and read from the loop's signalfd, so its callback runs in loop context
 * like any other event; nothing runs in signal context. When the last
 * watcher of a signal stops, deliveries still pending are discarded and the
 * signal gets back the blocked state it had before.
 */
#include <swoop/loop.h>

#include <errno.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "event/internal.h"

static void signalfd_cb(swoop_io_t *io, unsigned events);

int swoop_signal_init(swoop_loop_t *loop, swoop_signal_t *sig, swoop_signal_cb cb)
{
    if (loop == NULL || sig == NULL || cb == NULL)
        return SWOOP_EINVAL;
    void *data = sig->data;
    memset(sig, 0, sizeof(*sig));
    sig->data = data;
    sig->_loop = loop;
    sig->_cb = cb;
    return 0;
}

static int update_signalfd(swoop_loop_t *loop)
{
    int fd = signalfd(loop->signal_fd, &loop->signal_mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "signalfd() failed");
        return -err;
    }
    if (loop->signal_fd < 0) {
        loop->signal_fd = fd;
        swoop_io_init(loop, &loop->signal_io, fd, signalfd_cb);
        loop->signal_io._flags |= SWOOP_IO_INTERNAL;
        int rc = swoop_io_start(&loop->signal_io, SWOOP_READABLE);
        if (rc < 0) {
            close(fd);
            loop->signal_fd = -1;
            return rc;
        }
    }
    return 0;
}

int swoop_signal_start(swoop_signal_t *sig, int signo)
{
    if (sig == NULL || sig->_loop == NULL || signo <= 0 || signo >= NSIG || signo == SIGKILL ||
        signo == SIGSTOP)
        return SWOOP_EINVAL;
    swoop_loop_t *loop = sig->_loop;
    if (swoop__loop_detached(loop)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_signal_start: loop made before fork() elsewhere");
        return SWOOP_ESTATE;
    }
    if (signo == SIGALRM && loop->alarm_mode) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_signal_start: SIGALRM belongs to the alarm driver");
        return SWOOP_EINVAL;
    }
    if (sig->_active) {
        if (sig->_signo == signo)
            return 0;
        swoop_signal_stop(sig);
    }
    if (loop->signal_watchers[signo] == NULL) {
        sigset_t one, old;
        sigemptyset(&one);
        sigaddset(&one, signo);
        int err = pthread_sigmask(SIG_BLOCK, &one, &old);
        if (err != 0) {
            swoop_log(SWOOP_LOG_ERROR, err, "pthread_sigmask() failed for signal %d", signo);
            return -err;
        }
        if (sigismember(&old, signo))
            sigaddset(&loop->signal_preblock, signo);
        sigaddset(&loop->signal_mask, signo);
        int rc = update_signalfd(loop);
        if (rc < 0) {
            sigdelset(&loop->signal_mask, signo);
            if (!sigismember(&old, signo))
                pthread_sigmask(SIG_UNBLOCK, &one, NULL);
            return rc;
        }
    }
    sig->_signo = signo;
    sig->_next = loop->signal_watchers[signo];
    loop->signal_watchers[signo] = sig;
    sig->_active = 1;
    loop->active_signals++;
    return 0;
}

/* Last watcher of `signo` gone: drop pending deliveries, restore the block state. */
static void release_signal(swoop_loop_t *loop, int signo)
{
    sigdelset(&loop->signal_mask, signo);
    /* A forked child shares the signalfd's mask with its parent: leave it. */
    if (loop->signal_fd >= 0 && !swoop__loop_detached(loop))
        update_signalfd(loop);
    if (!sigismember(&loop->signal_preblock, signo)) {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, signo);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&one, NULL, &zero) == signo)
            ;
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    }
    sigdelset(&loop->signal_preblock, signo);
}

int swoop_signal_stop(swoop_signal_t *sig)
{
    if (sig == NULL || sig->_loop == NULL)
        return SWOOP_EINVAL;
    if (!sig->_active)
        return 0;
    swoop_loop_t *loop = sig->_loop;
    int signo = sig->_signo;
    swoop_signal_t **pp = &loop->signal_watchers[signo];
    while (*pp && *pp != sig)
        pp = &(*pp)->_next;
    SWOOP_ASSERT(*pp == sig);
    *pp = sig->_next;
    /* Keep a dispatch in progress from walking onto this watcher. */
    if (loop->signal_cursor == sig)
        loop->signal_cursor = sig->_next;
    sig->_active = 0;
    sig->_next = NULL;
    loop->active_signals--;
    if (loop->signal_watchers[signo] == NULL)
        release_signal(loop, signo);
    return 0;
}

static void signalfd_cb(swoop_io_t *io, unsigned events)
{
    swoop_loop_t *loop = swoop_container_of(io, swoop_loop_t, signal_io);
    struct signalfd_siginfo info[16];
    for (;;) {
        ssize_t n = read(loop->signal_fd, info, sizeof(info));
        if (n <= 0)
            break;
        size_t count = (size_t)n / sizeof(info[0]);
        for (size_t i = 0; i < count; i++) {
            int signo = (int)info[i].ssi_signo;
            if (signo <= 0 || signo >= NSIG)
                continue;
            swoop_signal_t *w = loop->signal_watchers[signo];
            while (w) {
                loop->signal_cursor = w->_next;
                w->_cb(w, signo);
                w = loop->signal_cursor;
            }
            loop->signal_cursor = NULL;
        }
        if (loop->signal_fd < 0 || count < SWOOP_ARRAY_SIZE(info))
            break;
    }
}

void swoop__signals_free(swoop_loop_t *loop)
{
    for (int signo = 1; signo < NSIG; signo++) {
        swoop_signal_t *w = loop->signal_watchers[signo];
        if (w == NULL)
            continue;
        while (w) {
            swoop_signal_t *next = w->_next;
            w->_active = 0;
            w->_next = NULL;
            w = next;
        }
        loop->signal_watchers[signo] = NULL;
        release_signal(loop, signo);
    }
    loop->active_signals = 0;
    if (loop->signal_fd >= 0) {
        swoop_io_stop(&loop->signal_io);
        close(loop->signal_fd);
        loop->signal_fd = -1;
    }
}
