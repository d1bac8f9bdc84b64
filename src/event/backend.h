/*
 * The seam between the loop and the kernel's readiness API (redis ae_*.c,
 * libhv iowatcher.h). A backend keeps its own state in loop->backend_data and
 * reports ready fds through swoop__loop_dispatch_io. Linux has epoll.c; a
 * second backend (poll) would slot in here.
 */
#ifndef SWOOP_EVENT_BACKEND_H
#define SWOOP_EVENT_BACKEND_H

#include <stdint.h>

#include <swoop/loop.h>

typedef struct swoop_backend_s {
    const char *name;
    int (*init)(swoop_loop_t *loop);
    void (*free)(swoop_loop_t *loop);
    /* Changes the kernel interest of `fd` from `old` to `events` (0 = remove). */
    int (*set)(swoop_loop_t *loop, int fd, unsigned old, unsigned events);
    /*
     * Arms a one-shot interest in `events` (none registered as far as the
     * loop knows): disarmed by the kernel at its first event, kept
     * registered for the next arm. NULL: the loop uses set().
     */
    int (*arm)(swoop_loop_t *loop, int fd, unsigned events);
    /*
     * Waits for events, dispatching each ready fd. With `block` 0 it only
     * collects what is ready; otherwise it sleeps until an event or until
     * CLOCK_MONOTONIC reaches `deadline_ns` (0 = no deadline).
     */
    int (*poll)(swoop_loop_t *loop, int block, uint64_t deadline_ns);
    /* Drops events for `fd` still queued in the batch being dispatched. */
    void (*invalidate)(swoop_loop_t *loop, int fd);
} swoop_backend_t;

extern const swoop_backend_t swoop__backend_epoll;

/* Called by a backend for each ready fd; `events` uses SWOOP_READABLE etc. */
void swoop__loop_dispatch_io(swoop_loop_t *loop, int fd, unsigned events);

#endif /* SWOOP_EVENT_BACKEND_H */
