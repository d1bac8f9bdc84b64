/*
 * Datagram channels between related processes: one socketpair(AF_UNIX,
 * SOCK_DGRAM) made before fork, so every message keeps its boundaries and
 * several writers never interleave. Both ends are nonblocking and CLOEXEC.
 * EAGAIN is a normal result (SWOOP_EAGAIN), not an error. Internal to the
 * library (L3); the pool and the server use it.
 */
#ifndef SWOOP_IPC_CHANNEL_H
#define SWOOP_IPC_CHANNEL_H

#include <stddef.h>
#include <sys/types.h>

/* fds[0] is the writer's end, fds[1] the reader's. */
typedef struct swoop_channel_s {
    int fds[2];
} swoop_channel_t;

/* Makes the pair; `bufsize` > 0 raises SO_SNDBUF/SO_RCVBUF. Returns 0 or -errno. */
int swoop__channel_open(swoop_channel_t *ch, int bufsize);

/* Closes both ends (each one only if open); safe to call twice. */
void swoop__channel_close(swoop_channel_t *ch);

/* Closes one end (0 or 1), e.g. the end a process does not use after fork. */
void swoop__channel_close_end(swoop_channel_t *ch, int end);

/*
 * Sends one datagram on `fd`. Returns 0, SWOOP_EAGAIN when the peer's buffer
 * is full, SWOOP_EMSGSIZE when it can never fit, or another -errno (logged).
 */
int swoop__channel_send(int fd, const void *data, size_t len);

/*
 * Receives one datagram from `fd` into buf. Returns its length, SWOOP_EAGAIN
 * when none is waiting, SWOOP_EMSGSIZE for a datagram longer than `cap`
 * (it is consumed and dropped, with a warning), or another -errno (logged).
 */
ssize_t swoop__channel_recv(int fd, void *buf, size_t cap);

#endif /* SWOOP_IPC_CHANNEL_H */
