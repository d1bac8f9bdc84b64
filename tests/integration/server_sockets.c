/*
 * Socket types with real servers: a 64 KiB UDP datagram (the largest UDP
 * payload, 65,507 bytes) through on_packet and sendto over IPv4 and IPv6;
 * TCP over IPv6; Unix stream and Unix datagram echo; several ports each
 * with its own protocol (one splits lines while the others stream). The
 * Unix socket files are gone after a clean stop.
 */
#include <sys/stat.h>
#include <sys/un.h>

#include "server_common.h"

struct ports {
    int udp, udp6, tcp6, line;
    char ustream[100], udgram[100];
};

static void on_packet_echo(swoop_server_t *srv, const void *data, size_t len,
                           const swoop_addr_t *from)
{
    ASSERT_OK(swoop_server_sendto(srv, from, data, len));
}

static void setup_sockets(swoop_server_t *srv, void *arg)
{
    struct ports *pp = arg;
    swoop_port_t *p;
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_UDP, &p));
    pp->udp = swoop_port_number(p);
    ASSERT_OK(swoop_server_listen(srv, "::1", 0, SWOOP_SOCK_UDP6, &p));
    pp->udp6 = swoop_port_number(p);
    ASSERT_OK(swoop_server_listen(srv, "::1", 0, SWOOP_SOCK_TCP6, &p));
    pp->tcp6 = swoop_port_number(p);
    ASSERT_OK(swoop_server_listen(srv, pp->ustream, 0, SWOOP_SOCK_UNIX_STREAM, NULL));
    ASSERT_OK(swoop_server_listen(srv, pp->udgram, 0, SWOOP_SOCK_UNIX_DGRAM, NULL));
    ASSERT_OK(swoop_server_listen(srv, "127.0.0.1", 0, SWOOP_SOCK_TCP, &p));
    pp->line = swoop_port_number(p);
    ASSERT_OK(swoop_port_set(p, "open_eof_split", "1"));
    ASSERT_OK(swoop_port_set(p, "package_eof", "\\n"));
    ASSERT_EQ(swoop_port_set(p, "no_such_key", "1"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_port_set(p, "package_length_type", "x"), SWOOP_EINVAL);
    ASSERT_EQ(swoop_server_set(srv, "worker_num", "many"), SWOOP_EINVAL);
    ASSERT_OK(swoop_server_on(
        srv, &(swoop_server_events_t){.on_receive = srv_echo, .on_packet = on_packet_echo}));
}

static void udp_roundtrip(int family, int port, size_t len)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    swoop_addr_t a;
    memset(&a, 0, sizeof(a));
    if (family == AF_INET) {
        a.u.in.sin_family = AF_INET;
        a.u.in.sin_port = htons((uint16_t)port);
        a.u.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.len = sizeof(a.u.in);
    } else {
        a.u.in6.sin6_family = AF_INET6;
        a.u.in6.sin6_port = htons((uint16_t)port);
        a.u.in6.sin6_addr = in6addr_loopback;
        a.len = sizeof(a.u.in6);
    }
    ASSERT_EQ(connect(fd, &a.u.sa, a.len), 0);
    char *out = malloc(len), *back = malloc(len + 16);
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(i * 17 + 3);
    ASSERT_EQ(send(fd, out, len, 0), (ssize_t)len);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    ASSERT_EQ(poll(&pf, 1, 5000 * (int)swoop_test_multiplier()), 1);
    ASSERT_EQ(recv(fd, back, len + 16, 0), (ssize_t)len);
    ASSERT_MEM_EQ(back, out, len);
    free(out);
    free(back);
    close(fd);
}

static void stream_roundtrip(int fd, const char *msg)
{
    size_t n = strlen(msg);
    char buf[256];
    cli_write(fd, msg, n);
    ASSERT_EQ(cli_read_n(fd, buf, n, 3000), n);
    ASSERT_MEM_EQ(buf, msg, n);
    close(fd);
}

static void sockets(swoop_mode_t mode)
{
    struct ports *pp = srv_shared(sizeof(*pp));
    snprintf(pp->ustream, sizeof(pp->ustream), "%s/s.sock", swoop_test_tmpdir());
    snprintf(pp->udgram, sizeof(pp->udgram), "%s/d.sock", swoop_test_tmpdir());
    srv_handle_t h = srv_start(mode, setup_sockets, pp, 2);
    ASSERT_GT(pp->udp, 0);

    udp_roundtrip(AF_INET, pp->udp, 65507);
    udp_roundtrip(AF_INET, pp->udp, 1);
    udp_roundtrip(AF_INET6, pp->udp6, 65487);

    /* TCP over IPv6. */
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)pp->tcp6)};
    a6.sin6_addr = in6addr_loopback;
    ASSERT_EQ(connect(fd, (struct sockaddr *)&a6, sizeof(a6)), 0);
    stream_roundtrip(fd, "over ipv6");

    /* Unix stream. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", pp->ustream);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    stream_roundtrip(fd, "over a unix stream socket");

    /* Unix datagram: the client binds a path so the reply can come back. */
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un me = {.sun_family = AF_UNIX};
    snprintf(me.sun_path, sizeof(me.sun_path), "%s/client.sock", swoop_test_tmpdir());
    ASSERT_EQ(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", pp->udgram);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    ASSERT_EQ(send(fd, "unix datagram", 13, 0), 13);
    char buf[64];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    ASSERT_EQ(poll(&pf, 1, 3000), 1);
    ASSERT_EQ(recv(fd, buf, sizeof(buf), 0), 13);
    ASSERT_MEM_EQ(buf, "unix datagram", 13);
    close(fd);
    unlink(me.sun_path);

    /* The line port splits: two lines in one write come back as two packets. */
    fd = cli_connect(pp->line);
    stream_roundtrip(fd, "one\ntwo\n");
    /* 3 UDP, 1 TCP6, 1 Unix stream, 1 Unix dgram, 2 lines; counted after each callback. */
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.request_count >= 8), 2000);

    srv_stop(&h, 10000);
    struct stat sb;
    ASSERT_EQ(stat(pp->ustream, &sb), -1);
    ASSERT_EQ(stat(pp->udgram, &sb), -1);
}

TEST(server_sockets_process)
{
    sockets(SWOOP_MODE_PROCESS);
}

TEST(server_sockets_base)
{
    sockets(SWOOP_MODE_BASE);
}
