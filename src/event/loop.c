/*
 * The loop itself: creation and teardown, the iteration order, and fd
 * watchers. The fd table gives O(1) lookup from a ready fd to its watcher;
 * a watcher stopped during dispatch is removed from the table at once and
 * its later events in the batch are blanked by the backend, so no callback
 * ever sees a stale event.
 */
#include <swoop/loop.h>

#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "event/internal.h"

static int loop_alive(const swoop_loop_t *loop);
static int loop_iterate(swoop_loop_t *loop, int block);

_Atomic unsigned swoop__fork_generation;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void atfork_child(void)
{
    atomic_fetch_add(&swoop__fork_generation, 1);
    swoop__loop_atfork_child();
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

static int refuse_detached(const swoop_loop_t *loop, const char *what)
{
    swoop_log(SWOOP_LOG_WARNING, 0,
              "%s: loop %p was created before fork() in another process; make a new one", what,
              (const void *)loop);
    return SWOOP_ESTATE;
}

int swoop_loop_new(swoop_loop_t **out)
{
    if (out == NULL)
        return SWOOP_EINVAL;
    pthread_once(&fork_once, register_atfork);
    swoop_loop_t *loop = swoop_calloc(1, sizeof(*loop));
    loop->fork_gen = atomic_load(&swoop__fork_generation);
    loop->backend = &swoop__backend_epoll;
    loop->wake_fd = -1;
    loop->signal_fd = -1;
    loop->now_ns = swoop__clock_ns();
    sigemptyset(&loop->signal_mask);
    sigemptyset(&loop->signal_preblock);
    swoop__timers_init(loop);

    int rc = loop->backend->init(loop);
    if (rc < 0) {
        swoop__timers_free(loop);
        swoop_free(loop);
        return rc;
    }
    rc = swoop__post_init(loop);
    if (rc < 0) {
        loop->backend->free(loop);
        swoop__timers_free(loop);
        swoop_free(loop->watchers);
        swoop_free(loop);
        return rc;
    }
    *out = loop;
    return 0;
}

void swoop__loop_destroy(swoop_loop_t *loop, int in_child)
{
    loop->detached = in_child || swoop__loop_detached(loop);
    swoop__alarm_release(loop);
    swoop__signals_free(loop);
    swoop__post_free(loop);
    swoop__timers_free(loop);
    loop->backend->free(loop);
    swoop_free(loop->watchers);
    swoop_free(loop);
}

int swoop_loop_free(swoop_loop_t *loop)
{
    if (loop == NULL)
        return SWOOP_EINVAL;
    if (loop->active_io > 0 || loop->active_signals > 0) {
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "loop still has %u fd and %u signal watchers started; stop them first",
                  loop->active_io, loop->active_signals);
        return SWOOP_EBUSY;
    }
    swoop__loop_forget_default(loop);
    swoop__loop_destroy(loop, 0);
    return 0;
}

static int loop_alive(const swoop_loop_t *loop)
{
    return loop->active_io > 0 || loop->active_signals > 0 ||
           swoop__heap_len(&loop->timer_heap) > 0 ||
           atomic_load_explicit(&loop->post_pending, memory_order_acquire) > 0;
}

/*
 * One pass: timers, I/O wait bounded by the next timer, dispatch, timers
 * again. A pass whose first timers ran does not sleep in the wait: what they
 * did may wait for the end of the pass (a server worker sends what its
 * callbacks queued then), and sleeping first held a timer's reply, or a
 * coroutine's woken by a timer, until some unrelated event came.
 */
static int loop_iterate(swoop_loop_t *loop, int block)
{
    loop->now_ns = swoop__clock_ns();
    int ran = swoop__timers_run(loop);
    if (!loop_alive(loop))
        return 0;

    if (!block || ran > 0 || atomic_load_explicit(&loop->stop_flag, memory_order_acquire) ||
        atomic_load_explicit(&loop->post_pending, memory_order_acquire) > 0)
        block = 0;
    int rc = loop->backend->poll(loop, block, swoop__timers_deadline_ns(loop));
    if (rc < 0)
        return rc;

    loop->now_ns = swoop__clock_ns();
    swoop__timers_run(loop);
    return loop_alive(loop);
}

int swoop_loop_run(swoop_loop_t *loop)
{
    if (swoop__loop_detached(loop))
        return refuse_detached(loop, "swoop_loop_run");
    int rc = 1;
    while (!atomic_load_explicit(&loop->stop_flag, memory_order_acquire)) {
        rc = loop_iterate(loop, 1);
        if (rc <= 0)
            break;
    }
    atomic_store(&loop->stop_flag, 0);
    if (rc < 0)
        return rc;
    return loop_alive(loop);
}

int swoop_loop_run_once(swoop_loop_t *loop)
{
    if (swoop__loop_detached(loop))
        return refuse_detached(loop, "swoop_loop_run_once");
    int rc = loop_iterate(loop, 1);
    atomic_store(&loop->stop_flag, 0);
    return rc;
}

int swoop__loop_run_nowait(swoop_loop_t *loop)
{
    if (swoop__loop_detached(loop))
        return refuse_detached(loop, "swoop_loop_run_once");
    int rc = loop_iterate(loop, 0);
    atomic_store(&loop->stop_flag, 0);
    return rc;
}

void swoop_loop_stop(swoop_loop_t *loop)
{
    atomic_store(&loop->stop_flag, 1);
    if (!swoop__loop_detached(loop))
        swoop__loop_wake(loop);
}

uint64_t swoop_loop_now(const swoop_loop_t *loop)
{
    return loop->now_ns / SWOOP_NS_PER_MS;
}

void swoop_loop_update_time(swoop_loop_t *loop)
{
    loop->now_ns = swoop__clock_ns();
}

const char *swoop_loop_backend(const swoop_loop_t *loop)
{
    return loop->backend->name;
}

/* ---- fd watchers ---- */

int swoop_io_init(swoop_loop_t *loop, swoop_io_t *io, int fd, swoop_io_cb cb)
{
    if (loop == NULL || io == NULL || fd < 0 || cb == NULL)
        return SWOOP_EINVAL;
    void *data = io->data;
    memset(io, 0, sizeof(*io));
    io->data = data;
    io->_loop = loop;
    io->_fd = fd;
    io->_cb = cb;
    return 0;
}

static void grow_watchers(swoop_loop_t *loop, int fd)
{
    int n = loop->nwatchers ? loop->nwatchers : 64;
    while (n <= fd)
        n *= 2;
    loop->watchers = swoop_realloc(loop->watchers, sizeof(*loop->watchers) * (size_t)n);
    memset(loop->watchers + loop->nwatchers, 0,
           sizeof(*loop->watchers) * (size_t)(n - loop->nwatchers));
    loop->nwatchers = n;
}

static int io_begin(swoop_io_t *io, unsigned events, int once)
{
    if (io == NULL || io->_loop == NULL)
        return SWOOP_EINVAL;
    events &= SWOOP_READABLE | SWOOP_WRITABLE;
    if (events == 0)
        return swoop_io_stop(io);
    swoop_loop_t *loop = io->_loop;
    int fd = io->_fd;
    if (swoop__loop_detached(loop))
        return refuse_detached(loop, once ? "swoop__io_arm_once" : "swoop_io_start");
    if (fd >= loop->nwatchers)
        grow_watchers(loop, fd);
    if (loop->watchers[fd] != NULL && loop->watchers[fd] != io) {
        swoop_log(SWOOP_LOG_WARNING, 0, "%s: fd %d already has a watcher",
                  once ? "swoop__io_arm_once" : "swoop_io_start", fd);
        return SWOOP_EEXIST;
    }
    if (once && loop->backend->arm != NULL && io->_registered == 0) {
        int rc = loop->backend->arm(loop, fd, events);
        if (rc < 0)
            return rc;
        io->_registered = events;
        io->_flags |= SWOOP_IO_ONESHOT;
    } else if (io->_registered != events || (io->_flags & SWOOP_IO_ONESHOT)) {
        /* A one-shot registration becomes a level-triggered one (set() replaces it). */
        int rc = loop->backend->set(loop, fd, io->_registered, events);
        if (rc < 0)
            return rc;
        io->_registered = events;
        io->_flags &= ~SWOOP_IO_ONESHOT;
    }
    if (loop->watchers[fd] == NULL) {
        loop->watchers[fd] = io;
        if (!(io->_flags & SWOOP_IO_INTERNAL))
            loop->active_io++;
    }
    io->_events = events;
    return 0;
}

int swoop_io_start(swoop_io_t *io, unsigned events)
{
    return io_begin(io, events, 0);
}

int swoop__io_arm_once(swoop_io_t *io, unsigned events)
{
    return io_begin(io, events, 1);
}

int swoop_io_stop(swoop_io_t *io)
{
    if (io == NULL || io->_loop == NULL)
        return SWOOP_EINVAL;
    swoop_loop_t *loop = io->_loop;
    int fd = io->_fd;
    if (fd >= loop->nwatchers || loop->watchers[fd] != io)
        return 0;
    if (!swoop__loop_detached(loop)) {
        if (io->_registered)
            loop->backend->set(loop, fd, io->_registered, 0);
        loop->backend->invalidate(loop, fd);
    }
    loop->watchers[fd] = NULL;
    io->_registered = 0;
    io->_events = 0;
    io->_flags &= ~SWOOP_IO_ONESHOT;
    if (!(io->_flags & SWOOP_IO_INTERNAL))
        loop->active_io--;
    return 0;
}

int swoop_io_fd(const swoop_io_t *io)
{
    return io->_fd;
}

int swoop_io_is_active(const swoop_io_t *io)
{
    const swoop_loop_t *loop = io->_loop;
    return loop && io->_fd < loop->nwatchers && loop->watchers[io->_fd] == io;
}

void swoop__loop_dispatch_io(swoop_loop_t *loop, int fd, unsigned events)
{
    if (fd >= loop->nwatchers)
        return;
    swoop_io_t *io = loop->watchers[fd];
    if (io == NULL)
        return;
    unsigned deliver = events & io->_events;
    if (events & (SWOOP_HANGUP | SWOOP_IOERROR)) {
        /* Let the next read or write see the error or EOF. */
        deliver |= io->_events & (SWOOP_READABLE | SWOOP_WRITABLE);
    }
    if (io->_flags & SWOOP_IO_ONESHOT) {
        io->_registered = 0; /* the kernel disarmed it with this event */
        if (deliver == 0)
            deliver = io->_events; /* nothing asked for: let the waiter retry, never strand it */
    }
    if (deliver == 0)
        return;
    deliver |= events & (SWOOP_HANGUP | SWOOP_IOERROR);
    io->_cb(io, deliver);
}
