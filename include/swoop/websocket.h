/*
 * WebSocket (RFC 6455) on HTTP ports. A port with open_websocket_protocol 1
 * (swoop_port_set, or swoop_server_set for every port) upgrades a valid
 * WebSocket handshake request into a WebSocket connection; its other
 * requests stay HTTP (swoop_http_on_request). The connection owner (PROCESS:
 * the reactor thread; BASE: the worker) checks the handshake, unmasks and
 * validates every frame (UTF-8 of text messages included), reassembles
 * fragmented messages, answers pings and runs the close handshake itself;
 * workers get whole messages. Pushes, closes and broadcasts work from every
 * event worker and task worker.
 */
#ifndef SWOOP_WEBSOCKET_H
#define SWOOP_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

#include <swoop/http.h>
#include <swoop/server.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Opcodes (RFC 6455 5.2). */
#define SWOOP_WS_TEXT   1
#define SWOOP_WS_BINARY 2
#define SWOOP_WS_CLOSE  8
#define SWOOP_WS_PING   9
#define SWOOP_WS_PONG   10

/** Close codes (RFC 6455 7.4.1). */
#define SWOOP_WS_NORMAL         1000
#define SWOOP_WS_GOING_AWAY     1001
#define SWOOP_WS_PROTOCOL_ERROR 1002
#define SWOOP_WS_NO_STATUS      1005 /**< on_close: the close frame had no code */
#define SWOOP_WS_ABNORMAL       1006 /**< on_close: the connection ended without a close frame */
#define SWOOP_WS_INVALID_DATA   1007
#define SWOOP_WS_POLICY         1008
#define SWOOP_WS_TOO_BIG        1009
#define SWOOP_WS_INTERNAL_ERROR 1011

/** Callbacks of WebSocket connections; each may be NULL. They run in event workers. */
typedef struct swoop_ws_events_s {
    /**
     * The handshake request, before the upgrade: return 0 to accept, or an
     * HTTP status (400..599) to refuse it (answered with that status and a
     * close). swoop_http_header etc. read the request.
     */
    int (*on_handshake)(swoop_server_t *srv, swoop_conn_id_t conn, swoop_http_request_t *req);
    /**
     * The connection is a WebSocket now (the 101 response is on its way),
     * in the worker that took the handshake; pushes to it may start here.
     */
    void (*on_open)(swoop_server_t *srv, swoop_conn_id_t conn, swoop_http_request_t *req);
    /**
     * A whole message: SWOOP_WS_TEXT (valid UTF-8) or SWOOP_WS_BINARY; also
     * ping, pong and close frames when open_websocket_ping_frame /
     * _pong_frame / _close_frame are set (a close frame's data is its
     * payload: the code in two bytes, then the reason).
     */
    void (*on_message)(swoop_server_t *srv, swoop_conn_id_t conn, int opcode, const void *data,
                       size_t len);
    /**
     * The connection closed, with the code of the close frame received
     * (SWOOP_WS_NO_STATUS without one) or sent (after a protocol error, a
     * too large message, swoop_ws_close; SWOOP_WS_INTERNAL_ERROR after a
     * websocket_ping_interval timeout; SWOOP_WS_GOING_AWAY when a BASE
     * worker shuts down or is replaced), or SWOOP_WS_ABNORMAL when it
     * ended without a close frame. Runs before the server's on_close.
     */
    void (*on_close)(swoop_server_t *srv, swoop_conn_id_t conn, int code);
} swoop_ws_events_t;

/**
 * Sets the WebSocket callbacks (before swoop_server_start; copied). A port
 * with open_websocket_protocol needs them. Returns 0, SWOOP_EINVAL or
 * SWOOP_ESTATE (after the start).
 */
SWOOP_EXTERN int swoop_ws_on(swoop_server_t *srv, const swoop_ws_events_t *events);

/**
 * Sends one message (SWOOP_WS_TEXT, SWOOP_WS_BINARY) or control frame
 * (SWOOP_WS_PING, SWOOP_WS_PONG: at most 125 bytes) to a WebSocket
 * connection, from any event worker or task worker. Text must be valid
 * UTF-8. Messages from one process to one connection arrive in order.
 * Returns 0, SWOOP_ECLOSED (gone, or not a WebSocket), SWOOP_EINVAL (bad
 * opcode, size, or text that is not UTF-8) or an IPC error.
 */
SWOOP_EXTERN int swoop_ws_push(swoop_server_t *srv, swoop_conn_id_t conn, int opcode,
                               const void *data, size_t len);

/**
 * Starts the close handshake: a close frame with `code` (one an endpoint
 * may send: 1000..1003, 1007..1014, 3000..4999) and an optional UTF-8
 * `reason` (at most 123 bytes); the connection closes when the client
 * answers, or after 5 s. Returns 0, SWOOP_ECLOSED (gone, or not a
 * WebSocket) or SWOOP_EINVAL (another code, such as 1005 or 1006, which
 * only report; a longer reason, or one that is not UTF-8).
 */
SWOOP_EXTERN int swoop_ws_close(swoop_server_t *srv, swoop_conn_id_t conn, int code,
                                const char *reason);

/**
 * Sends one message to many connections: `conns[0, n)`, or every open
 * WebSocket connection of the server when `conns` is NULL. The payload
 * travels once to each connection owner (reactor thread or BASE worker),
 * which frames it once and writes it to each of its connections. Ids that
 * are gone or not WebSockets are skipped. Returns the number of
 * connections it was sent towards (`conns` NULL: 0), or SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_ws_broadcast(swoop_server_t *srv, const swoop_conn_id_t *conns, size_t n,
                                    int opcode, const void *data, size_t len);

/** 1 if `conn` is an open WebSocket connection, else 0. */
SWOOP_EXTERN int swoop_ws_is_websocket(swoop_server_t *srv, swoop_conn_id_t conn);

#ifdef __cplusplus
}
#endif

#endif /* SWOOP_WEBSOCKET_H */
