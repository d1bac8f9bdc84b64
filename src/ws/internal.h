/*
 * The WebSocket layer's private definitions (L7, above src/http/):
 *   conn.c     the owner's side: a swoop_proto_t the HTTP layer switches a
 *              connection to after the 101 response; decodes frames
 *              (proto/ws_frame.c), reassembles messages, answers pings,
 *              runs the close handshake, frames what workers send
 *   worker.c   the worker's side: the upgrade (on_handshake, the 101,
 *              on_open), on_message / on_close, and swoop_ws_push / _close
 *              / _broadcast from any event or task worker
 */
#ifndef SWOOP_WS_INTERNAL_H
#define SWOOP_WS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <swoop/websocket.h>

#include "http/internal.h"
#include "server/internal.h"

#define WS_MSG_MAGIC 0x4d535357u /* "WSSM" */
#define WS_OUT_MAGIC 0x4f535357u /* "WSSO" */

/* Owner to worker (a DATA message of a WebSocket connection): this header, then the payload. */
typedef struct ws_msg_s {
    uint32_t magic;
    uint8_t opcode;
    uint8_t pad[3];
} ws_msg_t;

static_assert(sizeof(ws_msg_t) == 8, "part of the IPC format");

/* Worker to owner (swoop__server_proto_out), or task worker to event worker (relay). */
enum { WS_OUT_PUSH = 1, WS_OUT_CLOSE = 2, WS_OUT_BROADCAST = 3 };

typedef struct ws_out_s {
    uint32_t magic;
    uint8_t op;      /* WS_OUT_* */
    uint8_t opcode;  /* PUSH, BROADCAST: the frame's */
    uint16_t code;   /* CLOSE: the code */
    uint32_t nconns; /* BROADCAST: the ids that follow (0: every WebSocket of the owner) */
    uint32_t pad;
    uint64_t conn; /* relay: the connection (PUSH, CLOSE) */
} ws_out_t;

static_assert(sizeof(ws_out_t) == 24, "part of the IPC format");

/*
 * swoop_session_t.proto_flags of a WebSocket connection, set by the owner:
 * the close code on_close reports (WS_SESS_CODE set once it is known).
 */
#define WS_SESS_CODE      0x10000u
#define WS_SESS_CODE_MASK 0xffffu

/* How long the owner waits for the client's close frame after sending its own. */
#define WS_CLOSE_TIMEOUT_MS 5000

/* conn.c: the protocol table registered for SWOOP_PROTO_WS. */
extern const swoop_proto_t swoop__ws_proto;

/* worker.c: the worker's side of swoop__ws_proto. */
void swoop__ws_message(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, char *data,
                       size_t len);
void swoop__ws_closed(swoop_server_t *srv, swoop_conn_id_t conn);
void swoop__ws_relay(swoop_server_t *srv, char *data, size_t len);

#endif /* SWOOP_WS_INTERNAL_H */
