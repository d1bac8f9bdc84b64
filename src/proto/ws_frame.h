/*
 * RFC 6455 WebSocket frames: a decoder for the frames a client sends and
 * the header of the frames a server sends. Pure: no I/O, no allocation.
 *
 * The decoder is the whole receive-side rule book, so the connection owner
 * only moves bytes and the fuzzer reaches every rule: header checks (RSV
 * bits without a negotiated extension, reserved opcodes, fragmented or
 * oversized control frames, the client's mask, minimal length encodings),
 * fragmentation (continuation without a message, a new message inside
 * one), the message size limit (checked from the frame header, before the
 * payload is read), UTF-8 of text messages (failing at the first bad byte,
 * also inside a fragment) and the close frame's payload. It is resumable
 * at any byte boundary and returns one event per call: a piece of a data
 * message's payload (unmasked in place in the caller's buffer, so data
 * messages are never copied here), a whole control frame (gathered in the
 * decoder: at most 125 bytes), or an error carrying the close code the
 * server answers with (1002, 1007, 1009). Messages with RSV1 set
 * (permessage-deflate, allowed on a message's first frame only when it was
 * negotiated) reach the caller compressed; their UTF-8 and size limit are
 * for the caller to check once inflated (the decoder bounds their wire
 * bytes at 9/8 of the limit and 1 KiB). Internal to the library (L1).
 */
#ifndef SWOOP_PROTO_WS_FRAME_H
#define SWOOP_PROTO_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto/utf8.h"

/* Opcodes. */
#define SWOOP_WS_OP_CONT   0
#define SWOOP_WS_OP_TEXT   1
#define SWOOP_WS_OP_BINARY 2
#define SWOOP_WS_OP_CLOSE  8
#define SWOOP_WS_OP_PING   9
#define SWOOP_WS_OP_PONG   10

/* Close codes the codec gives (RFC 6455 7.4.1). */
#define SWOOP_WS_CODE_NORMAL    1000
#define SWOOP_WS_CODE_PROTOCOL  1002
#define SWOOP_WS_CODE_NO_STATUS 1005 /* a close frame without a code (never sent) */
#define SWOOP_WS_CODE_INVALID   1007
#define SWOOP_WS_CODE_TOO_BIG   1009

/* The longest frame header: 2 bytes, a 64-bit length, a mask. */
#define SWOOP_WS_HEAD_MAX 14
/* The longest control frame payload. */
#define SWOOP_WS_CONTROL_MAX 125

typedef enum swoop_ws_event_type_e {
    SWOOP_WS_EV_NONE = 0, /* all of the input was taken; nothing to report yet */
    SWOOP_WS_EV_DATA,     /* a piece of a text or binary message */
    SWOOP_WS_EV_CONTROL,  /* a whole ping, pong or close frame */
    SWOOP_WS_EV_ERROR     /* the peer broke a rule: close with `code` */
} swoop_ws_event_type_t;

typedef struct swoop_ws_event_s {
    swoop_ws_event_type_t type;
    int opcode;     /* DATA: the message's (text, binary); CONTROL: ping, pong, close */
    int first;      /* DATA: the message's first piece */
    int fin;        /* DATA: its last piece */
    int compressed; /* DATA: the message has RSV1 (permessage-deflate) */
    uint8_t *data;  /* DATA: in the caller's buffer, unmasked; CONTROL: in the decoder */
    size_t len;
    int code;           /* CONTROL close: its code (1005 if none); ERROR: the code to send */
    const char *reason; /* ERROR: the broken rule, for the log */
} swoop_ws_event_t;

typedef struct swoop_ws_decoder_s {
    /* Settings (swoop__ws_decoder_init). */
    uint64_t max_message; /* payload bytes of one message (1009 above); 0: no limit */
    uint8_t need_mask;    /* every frame must be masked (a server reading a client) */
    uint8_t allow_rsv1;   /* permessage-deflate was negotiated */
    /* State. */
    uint8_t phase;
    uint8_t hlen; /* header bytes gathered */
    uint8_t hbuf[SWOOP_WS_HEAD_MAX];
    uint8_t fin, opcode, rsv1, masked;
    uint8_t mask[4];
    uint64_t flen;  /* the frame's payload length */
    uint64_t fdone; /* of which taken */
    uint8_t msg_op; /* the data message in progress (0: none) */
    uint8_t msg_deflate;
    uint8_t msg_started; /* a piece of it was reported */
    uint64_t msg_len;    /* its payload bytes, counting the current frame whole */
    swoop_utf8_t utf8;
    uint8_t ctl_len;
    uint8_t ctl[SWOOP_WS_CONTROL_MAX];
    int err_code;
    const char *err_reason;
} swoop_ws_decoder_t;

void swoop__ws_decoder_init(swoop_ws_decoder_t *d, uint64_t max_message, int need_mask,
                            int allow_rsv1);

/*
 * Decodes from data[0, len). Returns how many bytes it took and fills *ev;
 * call again with the rest while it took less than len or reported an
 * event. After an ERROR event every call reports it again (takes nothing).
 */
size_t swoop__ws_decode(swoop_ws_decoder_t *d, uint8_t *data, size_t len, swoop_ws_event_t *ev);

/*
 * A close frame's payload: 0 with *code (1005 when empty) when it is
 * valid, else the close code to answer (1002: one byte, or a code that may
 * not be sent; 1007: the reason is not UTF-8), *why saying which.
 */
int swoop__ws_close_check(const uint8_t *p, size_t n, int *code, const char **why);

/* Whether a close code may travel in a close frame (1000-1003, 1007-1014, 3000-4999). */
int swoop__ws_close_code_valid(int code);

/*
 * Writes a frame header to out (SWOOP_WS_HEAD_MAX bytes at most) and
 * returns its length; `mask` NULL for a server's unmasked frame.
 */
size_t swoop__ws_frame_head(uint8_t *out, int fin, int rsv1, int opcode, uint64_t len,
                            const uint8_t *mask);

/* XORs p[0, n) with the mask, p[0] being byte `offset` of the payload (masks and unmasks). */
void swoop__ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

#endif /* SWOOP_PROTO_WS_FRAME_H */
