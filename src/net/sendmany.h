/*
 * One buffer to many sockets (a WebSocket broadcast): every send of a batch
 * goes to the kernel in one io_uring submission instead of one send(2)
 * each, which on loopback halves the CPU the sending owner spends per
 * connection (the system call's entry and exit are most of a small send).
 * Where io_uring is missing or refused (an old kernel, a seccomp filter,
 * io_uring_disabled) the same call falls back to a send(2) loop.
 * Internal (L2); one instance per thread.
 */
#ifndef SWOOP_NET_SENDMANY_H
#define SWOOP_NET_SENDMANY_H

#include <stddef.h>
#include <sys/types.h>

typedef struct swoop_sendmany_s swoop_sendmany_t;

/*
 * Opens a batch sender with room for `entries` sends per submission. Returns
 * 0 with *out set, or a negative code (-errno of io_uring_setup, logged at
 * NOTICE) with *out NULL: the caller uses the fallback (swoop__sendmany with
 * NULL).
 */
int swoop__sendmany_open(swoop_sendmany_t **out, unsigned entries);

/* Closes it (NULL is fine). */
void swoop__sendmany_close(swoop_sendmany_t *m);

/*
 * Writes data[0, len) to each fds[i], nonblocking and without SIGPIPE, and
 * stores in res[i] the bytes written (maybe fewer than len) or -errno
 * (-EAGAIN: nothing was written). Each socket gets its bytes before this
 * returns; no send is left in flight. With m NULL, one send(2) each.
 * Returns how many went through io_uring.
 */
size_t swoop__sendmany(swoop_sendmany_t *m, const int *fds, size_t n, const void *data, size_t len,
                       ssize_t *res);

#endif /* SWOOP_NET_SENDMANY_H */
