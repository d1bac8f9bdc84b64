/* A nonblocking TCP listener on 127.0.0.1 port 0 for the coroutine tests; sets *port. */
#ifndef SWOOP_TEST_CO_LISTEN_ANY_H
#define SWOOP_TEST_CO_LISTEN_ANY_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "test.h"

static inline int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(listen(fd, 128));
    socklen_t l = sizeof(a);
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &l));
    *port = ntohs(a.sin_port);
    return fd;
}

#endif
