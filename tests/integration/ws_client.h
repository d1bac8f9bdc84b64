/*
 * A raw WebSocket client for the integration tests: the upgrade with RFC 6455
 * 1.3's example key, small masked frames out, small server frames in. Raw,
 * because tests also send what a library will not (unmasked frames, bad
 * UTF-8). Include after server_common.h.
 */
#ifndef SWOOP_TEST_WS_CLIENT_H
#define SWOOP_TEST_WS_CLIENT_H

#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

static const char handshake[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

static inline size_t read_some(int fd, char *buf, size_t cap, size_t want, int ms)
{
    size_t got = 0;
    uint64_t deadline = swoop_test_now_ms() + (uint64_t)ms * swoop_test_multiplier();
    while (got < want && got < cap) {
        uint64_t now = swoop_test_now_ms();
        if (now >= deadline)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t k = recv(fd, buf + got, cap - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

/* Connects and upgrades; returns the fd with the 101 read. */
static inline int ws_connect(int port)
{
    int fd = cli_connect(port);
    cli_write(fd, handshake, strlen(handshake));
    char buf[1024];
    size_t n = 0;
    while (n < sizeof(buf) - 1) {
        size_t k = read_some(fd, buf + n, 1, 1, 5000);
        ASSERT_EQ(k, 1u);
        n++;
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    buf[n] = '\0';
    ASSERT_NOT_NULL(strstr(buf, "HTTP/1.1 101 Switching Protocols\r\n"));
    /* RFC 6455 1.3's own example key and answer. */
    ASSERT_NOT_NULL(strstr(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    return fd;
}

/* Sends a frame, masked unless `unmasked`. */
static inline void send_frame(int fd, int b0, const void *payload, size_t len, int unmasked)
{
    uint8_t f[256];
    ASSERT_LT(len, 126u);
    f[0] = (uint8_t)b0;
    f[1] = (uint8_t)((unmasked ? 0 : 0x80) | len);
    size_t n = 2;
    uint8_t key[4] = {1, 2, 3, 4};
    if (!unmasked) {
        memcpy(f + n, key, 4);
        n += 4;
    }
    for (size_t i = 0; i < len; i++)
        f[n + i] = ((const uint8_t *)payload)[i] ^ (unmasked ? 0 : key[i & 3]);
    cli_write(fd, f, n + len);
}

/* Reads one server frame (payload < 126 bytes); returns its opcode, payload in p. */
static inline int recv_frame(int fd, uint8_t *p, size_t *len)
{
    uint8_t h[2];
    ASSERT_EQ(read_some(fd, (char *)h, 2, 2, 5000), 2u);
    ASSERT_EQ(h[1] & 0x80, 0); /* a server never masks */
    *len = h[1] & 0x7f;
    ASSERT_LT(*len, 126u);
    ASSERT_EQ(read_some(fd, (char *)p, *len, *len, 5000), *len);
    return h[0] & 0x0f;
}

#endif /* SWOOP_TEST_WS_CLIENT_H */
