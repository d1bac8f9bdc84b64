/*
 * Socket helpers: nonblocking CLOEXEC sockets, listening on every type of
 * include/swoop/socket.h (port 0 picks an ephemeral port, read back with
 * swoop__sock_local_port), accept4 in batches, and socket options. Every
 * failure is logged with the syscall and the address, and returned as -errno.
 * Internal (L2).
 */
#ifndef SWOOP_NET_SOCKET_H
#define SWOOP_NET_SOCKET_H

#include <swoop/socket.h>

/*
 * Resolves `host` (numeric IPv4/IPv6, "localhost", or a path for Unix
 * types) and `port` into `out`. Returns 0 or SWOOP_EINVAL.
 */
int swoop__addr_parse(swoop_sock_type_t type, const char *host, int port, swoop_addr_t *out);

/*
 * Makes a nonblocking CLOEXEC socket bound to host:port (and listening with
 * `backlog` for stream types). `reuse_port` sets SO_REUSEPORT. An existing
 * Unix socket path is unlinked first. Returns the fd or -errno.
 */
int swoop__sock_listen(swoop_sock_type_t type, const char *host, int port, int backlog,
                       int reuse_port);

/* The bound port of a socket (after port 0), or -errno. */
int swoop__sock_local_port(int fd);

/*
 * Accepts up to `max` connections (accept4, nonblocking and CLOEXEC), calling
 * `cb(arg, fd, &addr)` for each. Returns how many were accepted (>= 0), or
 * -errno for a failure that is not EAGAIN (EMFILE, ENFILE...: the caller
 * decides whether to pause). Transient per-connection errors (ECONNABORTED,
 * EPERM...) are skipped.
 */
int swoop__sock_accept_batch(int lfd, int max, void (*cb)(void *arg, int fd, const swoop_addr_t *a),
                             void *arg, int *accepted);

/* Sets TCP_NODELAY. Returns 0 or -errno. */
int swoop__sock_nodelay(int fd, int on);

/* Sets SO_SNDBUF / SO_RCVBUF (0 leaves one alone). Returns 0 or -errno. */
int swoop__sock_bufsize(int fd, int sndbuf, int rcvbuf);

/* Nonblocking connect for tests and tools; returns the fd or -errno. */
int swoop__sock_connect(swoop_sock_type_t type, const char *host, int port);

#endif /* SWOOP_NET_SOCKET_H */
