/*
 * SOCK_DGRAM socketpairs as message channels (see channel.h). The kernel
 * keeps datagram boundaries, so a reader gets exactly one message per recv,
 * and MSG_TRUNC tells it when a datagram did not fit its buffer.
 */
#include "ipc/channel.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/internal.h"

int swoop__channel_open(swoop_channel_t *ch, int bufsize)
{
    ch->fds[0] = ch->fds[1] = -1;
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, ch->fds) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "socketpair(AF_UNIX, SOCK_DGRAM) failed");
        ch->fds[0] = ch->fds[1] = -1;
        return -err;
    }
    if (bufsize > 0) {
        for (int i = 0; i < 2; i++) {
            /* Best effort: the kernel caps it at wmem_max/rmem_max. */
            setsockopt(ch->fds[i], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize));
            setsockopt(ch->fds[i], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize));
        }
    }
    return 0;
}

void swoop__channel_close_end(swoop_channel_t *ch, int end)
{
    if (ch->fds[end] >= 0) {
        close(ch->fds[end]);
        ch->fds[end] = -1;
    }
}

void swoop__channel_close(swoop_channel_t *ch)
{
    swoop__channel_close_end(ch, 0);
    swoop__channel_close_end(ch, 1);
}

int swoop__channel_send(int fd, const void *data, size_t len)
{
    for (;;) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return 0;
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
            return SWOOP_EAGAIN;
        if (err == EMSGSIZE) {
            swoop_log(SWOOP_LOG_WARNING, err, "send() of a %zu-byte datagram on fd %d failed", len,
                      fd);
            return SWOOP_EMSGSIZE;
        }
        swoop_log(SWOOP_LOG_ERROR, err, "send() on channel fd %d failed", fd);
        return -err;
    }
}

ssize_t swoop__channel_recv(int fd, void *buf, size_t cap)
{
    for (;;) {
        ssize_t n = recv(fd, buf, cap, MSG_TRUNC | MSG_DONTWAIT);
        if (n >= 0) {
            if ((size_t)n > cap) {
                swoop_log(SWOOP_LOG_WARNING, 0,
                          "dropped a %zd-byte datagram on fd %d: larger than %zu bytes", n, fd,
                          cap);
                return SWOOP_EMSGSIZE;
            }
            return n;
        }
        int err = errno;
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK)
            return SWOOP_EAGAIN;
        swoop_log(SWOOP_LOG_ERROR, err, "recv() on channel fd %d failed", fd);
        return -err;
    }
}
