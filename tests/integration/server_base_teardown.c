/*
 * A BASE worker's end frees its connection engine with the protocols'
 * per-owner state (swoop__reactor_free and each protocol's owner_free),
 * as a PROCESS reactor thread's end does. The observable: the WebSocket
 * layer's shared compressor, made by a compressed push on a connection
 * with server_no_context_takeover and kept by the owner for all its
 * connections, is ended (deflateEnd) when the worker stops. This binary
 * wraps zlib's deflateInit2_ and deflateEnd (the executable's definitions
 * come first; the real ones are found with RTLD_NEXT) and counts them in
 * shared memory across the server's processes: every stream made is ended.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include <swoop/http.h>
#include <swoop/websocket.h>

#include "server_common.h"

typedef struct zcount_s {
    _Atomic int made;  /* deflateInit2_ that succeeded */
    _Atomic int ended; /* deflateEnd */
} zcount_t;

static zcount_t *zc;

int deflateInit2_(z_streamp strm, int level, int method, int windowBits, int memLevel, int strategy,
                  const char *version, int stream_size)
{
    typedef int (*fn_t)(z_streamp, int, int, int, int, int, const char *, int);
    fn_t real = (fn_t)dlsym(RTLD_NEXT, "deflateInit2_");
    ASSERT_NOT_NULL(real);
    int rc = real(strm, level, method, windowBits, memLevel, strategy, version, stream_size);
    if (rc == Z_OK && zc)
        atomic_fetch_add(&zc->made, 1);
    return rc;
}

int deflateEnd(z_streamp strm)
{
    typedef int (*fn_t)(z_streamp);
    fn_t real = (fn_t)dlsym(RTLD_NEXT, "deflateEnd");
    ASSERT_NOT_NULL(real);
    if (zc)
        atomic_fetch_add(&zc->ended, 1);
    return real(strm);
}

static void on_message(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len)
{
    int rc = swoop_ws_push(srv, conn, opcode, data, len);
    ASSERT(rc == 0 || rc == SWOOP_ECLOSED);
}

static void setup(swoop_server_t *srv, void *arg)
{
    (void)arg;
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "open_http_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "open_websocket_protocol", "1"));
    ASSERT_OK(swoop_server_set(srv, "websocket_compression", "1"));
    ASSERT_OK(swoop_server_set(srv, "websocket_compression_min_length", "16"));
    swoop_ws_events_t ev = {.on_message = on_message};
    ASSERT_OK(swoop_ws_on(srv, &ev));
}

static const char handshake[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n";

TEST_TIMEOUT(server_base_teardown_frees_owner_state, 60)
{
    zc = srv_shared(sizeof(*zc));
    srv_handle_t h = srv_start(SWOOP_MODE_BASE, setup, NULL, 1);
    int fd = cli_connect(h.port);
    cli_write(fd, handshake, strlen(handshake));
    char resp[1024];
    size_t n = 0;
    while (n < sizeof(resp) - 1) {
        ASSERT_EQ(cli_read_n(fd, resp + n, 1, 5000), 1u);
        n++;
        if (n >= 4 && memcmp(resp + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    resp[n] = '\0';
    ASSERT_NOT_NULL(strstr(resp, " 101 "));
    ASSERT_NOT_NULL(strstr(resp, "permessage-deflate"));
    /* A masked text frame of 100 'a' (mask 0): the echo goes out compressed (RSV1). */
    uint8_t frame[2 + 4 + 100] = {0x81, 0x80 | 100, 0, 0, 0, 0};
    memset(frame + 6, 'a', 100);
    cli_write(fd, frame, sizeof(frame));
    uint8_t head[2];
    ASSERT_EQ(cli_read_n(fd, head, 2, 5000), 2u);
    ASSERT_EQ(head[0], 0xc1); /* FIN, RSV1 (compressed), text */
    ASSERT_LT(head[1], 100);  /* smaller than the message */
    uint8_t body[128];
    ASSERT_EQ(cli_read_n(fd, body, head[1], 5000), (size_t)head[1]);
    int made = atomic_load(&zc->made);
    ASSERT_GE(made, 1); /* the owner's shared stream */
    close(fd);          /* the connection goes; the owner keeps its shared stream until its end */
    srv_stop(&h, 5000);
    fprintf(stderr, "deflate streams made %d, ended %d\n", atomic_load(&zc->made),
            atomic_load(&zc->ended));
    ASSERT_EQ(atomic_load(&zc->ended), atomic_load(&zc->made));
    munmap(zc, sizeof(*zc));
}
