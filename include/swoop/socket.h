/*
 * Socket types and addresses used by the server API: which kind of socket a
 * port listens on, and a peer address that fits any of them (IPv4, IPv6, a
 * Unix path) with a formatter. Plain data, safe to copy between processes.
 */
#ifndef SWOOP_SOCKET_H
#define SWOOP_SOCKET_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/** Kinds of listening sockets (the numbers follow Swoole's SWOOLE_SOCK_*). */
typedef enum {
    SWOOP_SOCK_TCP = 1,         /**< TCP over IPv4 */
    SWOOP_SOCK_UDP = 2,         /**< UDP over IPv4 */
    SWOOP_SOCK_TCP6 = 3,        /**< TCP over IPv6 */
    SWOOP_SOCK_UDP6 = 4,        /**< UDP over IPv6 */
    SWOOP_SOCK_UNIX_STREAM = 5, /**< Unix stream socket; host is the path */
    SWOOP_SOCK_UNIX_DGRAM = 6   /**< Unix datagram socket; host is the path */
} swoop_sock_type_t;

/**
 * Or'ed into a stream type given to swoop_server_listen (SWOOP_SOCK_TCP |
 * SWOOP_SSL, as Swoole's SWOOLE_SSL): the port serves TLS (docs/api/tls.md).
 * Not valid for datagram types.
 */
#define SWOOP_SSL 512

/** A socket address of any family swoop uses. */
typedef struct swoop_addr_s {
    /** The address; `u.sa.sa_family` tells which member is valid. */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
    } u;
    /** Length of the valid part of `u`. */
    socklen_t len;
} swoop_addr_t;

/** Longest string swoop_addr_format writes, including the NUL. */
#define SWOOP_ADDR_STRLEN 128

/**
 * Writes "1.2.3.4:80", "[::1]:80", "unix:/path" (or "unix:" for an
 * unnamed socket) into buf. Returns the length written (truncated to fit
 * `cap`) or SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_addr_format(const swoop_addr_t *addr, char *buf, size_t cap);

/** Returns the port of an IPv4/IPv6 address, or 0 for other families. */
SWOOP_EXTERN int swoop_addr_port(const swoop_addr_t *addr);

/** Returns 1 for a datagram socket type (UDP, UDP6, UNIX_DGRAM), else 0. */
SWOOP_EXTERN int swoop_sock_type_is_dgram(swoop_sock_type_t type);

SWOOP_END_DECLS

#endif /* SWOOP_SOCKET_H */
