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

#include "base/buf.h"
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

/* deflate.c: a connection's permessage-deflate state (owner side). */
typedef struct ws_deflate_s ws_deflate_t;

/* The state for the parameters packed in `arg` (c->proto_arg); NULL if none or no memory. */
ws_deflate_t *swoop__ws_deflate_new(uint32_t arg);
void swoop__ws_deflate_free(ws_deflate_t *z);
/* The window bits our compressor may use with this client. */
int swoop__ws_deflate_bits(const ws_deflate_t *z);
/* What zlib state the connection holds now: 1 an inflater, 2 a compressor (for tests, stats). */
int swoop__ws_deflate_context(const ws_deflate_t *z);
/*
 * Inflates a piece in[0, len) of a compressed message onto msg, which may
 * not grow past max_len bytes (the message limit: output stops there);
 * `fin` on its last piece. 0, or the close code with *why: 1007 (not
 * DEFLATE data), 1009 (inflates past the limit), 1011 (no memory).
 */
int swoop__ws_inflate(ws_deflate_t *z, swoop_buf_t *msg, size_t max_len, const uint8_t *in,
                      size_t len, int fin, const char **why);
/*
 * Compresses a message for the connection (its own stream with context
 * takeover, else the owner's shared one). 1 with the payload (RSV1's,
 * valid until the owner compresses again) in *out, 0 when it goes
 * uncompressed (no smaller, or no memory).
 */
int swoop__ws_deflate_msg(swoop_reactor_t *r, ws_deflate_t *z, const void *data, size_t len,
                          const uint8_t **out, size_t *outlen);
/* The same with a fresh stream of `bits` that any client of that window may take (broadcasts). */
int swoop__ws_deflate_shared(swoop_reactor_t *r, int bits, const void *data, size_t len,
                             const uint8_t **out, size_t *outlen);
/*
 * The client's inflater and the connection's compressor no longer share a
 * history: a frame of swoop__ws_deflate_shared went to the client, or a
 * message compressed for it was dropped. The stream resets before its next use.
 */
void swoop__ws_deflate_unsync(ws_deflate_t *z);
/* The owner is done with the compressed payload: a large scratch block is given back. */
void swoop__ws_deflate_scratch_done(swoop_reactor_t *r);
/* The owner's shared compressors (swoop_proto_t.owner_free). */
void swoop__ws_deflate_owner_free(swoop_reactor_t *r);

/* conn.c: the protocol table registered for SWOOP_PROTO_WS. */
extern const swoop_proto_t swoop__ws_proto;

/* worker.c: the worker's side of swoop__ws_proto. */
void swoop__ws_message(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, char *data,
                       size_t len);
void swoop__ws_closed(swoop_server_t *srv, swoop_conn_id_t conn);
void swoop__ws_relay(swoop_server_t *srv, char *data, size_t len);

#endif /* SWOOP_WS_INTERNAL_H */
