/*
 * Socket helpers (see socket.h), in the style of redis anet.c but with
 * errno-style returns instead of error strings.
 */
#include "net/socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/internal.h"

int swoop_sock_type_is_dgram(swoop_sock_type_t type)
{
    return type == SWOOP_SOCK_UDP || type == SWOOP_SOCK_UDP6 || type == SWOOP_SOCK_UNIX_DGRAM;
}

static int sock_family(swoop_sock_type_t type)
{
    switch (type) {
    case SWOOP_SOCK_TCP:
    case SWOOP_SOCK_UDP:
        return AF_INET;
    case SWOOP_SOCK_TCP6:
    case SWOOP_SOCK_UDP6:
        return AF_INET6;
    case SWOOP_SOCK_UNIX_STREAM:
    case SWOOP_SOCK_UNIX_DGRAM:
        return AF_UNIX;
    }
    return -1;
}

int swoop_addr_format(const swoop_addr_t *a, char *buf, size_t cap)
{
    if (a == NULL || buf == NULL || cap == 0)
        return SWOOP_EINVAL;
    char ip[INET6_ADDRSTRLEN];
    int n;
    switch (a->u.sa.sa_family) {
    case AF_INET:
        inet_ntop(AF_INET, &a->u.in.sin_addr, ip, sizeof(ip));
        n = snprintf(buf, cap, "%s:%d", ip, ntohs(a->u.in.sin_port));
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, ip, sizeof(ip));
        n = snprintf(buf, cap, "[%s]:%d", ip, ntohs(a->u.in6.sin6_port));
        break;
    case AF_UNIX: {
        size_t plen = a->len > offsetof(struct sockaddr_un, sun_path)
                          ? a->len - offsetof(struct sockaddr_un, sun_path)
                          : 0;
        if (plen > sizeof(a->u.un.sun_path))
            plen = sizeof(a->u.un.sun_path);
        n = snprintf(buf, cap, "unix:%.*s", (int)strnlen(a->u.un.sun_path, plen), a->u.un.sun_path);
        break;
    }
    default:
        n = snprintf(buf, cap, "(family %d)", a->u.sa.sa_family);
        break;
    }
    if (n < 0)
        return SWOOP_EINVAL;
    return (size_t)n >= cap ? (int)cap - 1 : n;
}

int swoop_addr_port(const swoop_addr_t *a)
{
    if (a == NULL)
        return 0;
    if (a->u.sa.sa_family == AF_INET)
        return ntohs(a->u.in.sin_port);
    if (a->u.sa.sa_family == AF_INET6)
        return ntohs(a->u.in6.sin6_port);
    return 0;
}

int swoop__addr_parse(swoop_sock_type_t type, const char *host, int port, swoop_addr_t *out)
{
    memset(out, 0, sizeof(*out));
    int family = sock_family(type);
    if (host == NULL || family < 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "bad socket type %d or NULL host", (int)type);
        return SWOOP_EINVAL;
    }
    if (family == AF_UNIX) {
        size_t len = strlen(host);
        if (len == 0 || len >= sizeof(out->u.un.sun_path)) {
            swoop_log(SWOOP_LOG_WARNING, 0, "unix socket path \"%s\" empty or longer than %zu",
                      host, sizeof(out->u.un.sun_path) - 1);
            return SWOOP_EINVAL;
        }
        out->u.un.sun_family = AF_UNIX;
        memcpy(out->u.un.sun_path, host, len + 1);
        out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        return 0;
    }
    if (port < 0 || port > 65535) {
        swoop_log(SWOOP_LOG_WARNING, 0, "port %d out of range", port);
        return SWOOP_EINVAL;
    }
    if (strcmp(host, "localhost") == 0)
        host = family == AF_INET ? "127.0.0.1" : "::1";
    if (family == AF_INET) {
        out->u.in.sin_family = AF_INET;
        out->u.in.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &out->u.in.sin_addr) != 1) {
            swoop_log(SWOOP_LOG_WARNING, 0, "\"%s\" is not a numeric IPv4 address", host);
            return SWOOP_EINVAL;
        }
        out->len = sizeof(out->u.in);
    } else {
        out->u.in6.sin6_family = AF_INET6;
        out->u.in6.sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &out->u.in6.sin6_addr) != 1) {
            swoop_log(SWOOP_LOG_WARNING, 0, "\"%s\" is not a numeric IPv6 address", host);
            return SWOOP_EINVAL;
        }
        out->len = sizeof(out->u.in6);
    }
    return 0;
}

int swoop__sock_listen(swoop_sock_type_t type, const char *host, int port, int backlog,
                       int reuse_port)
{
    swoop_addr_t addr;
    int rc = swoop__addr_parse(type, host, port, &addr);
    if (rc < 0)
        return rc;
    int dgram = swoop_sock_type_is_dgram(type);
    int fd = socket(addr.u.sa.sa_family,
                    (dgram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "socket() for %s:%d failed", host, port);
        return -err;
    }
    int one = 1;
    if (addr.u.sa.sa_family != AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (addr.u.sa.sa_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    } else {
        struct stat st;
        if (stat(host, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(host);
    }
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "setsockopt(SO_REUSEPORT) on fd %d failed", fd);
        close(fd);
        return -err;
    }
    if (bind(fd, &addr.u.sa, addr.len) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "bind() to %s:%d failed", host, port);
        close(fd);
        return -err;
    }
    if (!dgram && listen(fd, backlog > 0 ? backlog : 512) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "listen() on %s:%d failed", host, port);
        close(fd);
        return -err;
    }
    return fd;
}

int swoop__sock_local_port(int fd)
{
    swoop_addr_t a;
    a.len = sizeof(a.u);
    if (getsockname(fd, &a.u.sa, &a.len) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "getsockname() on fd %d failed", fd);
        return -err;
    }
    return swoop_addr_port(&a);
}

int swoop__sock_accept_batch(int lfd, int max, void (*cb)(void *arg, int fd, const swoop_addr_t *a),
                             void *arg, int *accepted)
{
    int n = 0;
    *accepted = 0;
    while (n < max) {
        swoop_addr_t a;
        a.len = sizeof(a.u);
        int fd = accept4(lfd, &a.u.sa, &a.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                break;
            if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM)
                continue;
            *accepted = n;
            return -err;
        }
        n++;
        cb(arg, fd, &a);
    }
    *accepted = n;
    return n;
}

int swoop__sock_nodelay(int fd, int on)
{
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0)
        return -errno;
    return 0;
}

int swoop__sock_bufsize(int fd, int sndbuf, int rcvbuf)
{
    if (sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
        return -errno;
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
        return -errno;
    return 0;
}

int swoop__sock_connect(swoop_sock_type_t type, const char *host, int port)
{
    swoop_addr_t addr;
    int rc = swoop__addr_parse(type, host, port, &addr);
    if (rc < 0)
        return rc;
    int fd = socket(addr.u.sa.sa_family,
                    (swoop_sock_type_is_dgram(type) ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, &addr.u.sa, addr.len) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}
