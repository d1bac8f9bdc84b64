/*
 * permessage-deflate (RFC 7692), the pure part: reading a client's
 * Sec-WebSocket-Extensions offers, choosing the first one the server can
 * honour, and writing the response's extension header; plus the packing of
 * the agreed parameters into 32 bits (they travel from the worker that
 * answers the handshake to the connection owner in the reply flags). The
 * zlib streams are the owner's (src/ws/deflate.c). Pure: no I/O, no
 * allocation. Internal to the library (L1).
 *
 * Every parameter of RFC 7692 section 7 is understood:
 * server_no_context_takeover, client_no_context_takeover,
 * server_max_window_bits=8..15 and client_max_window_bits[=8..15]. An
 * offer with an unknown parameter, a parameter twice, or a value that is
 * not allowed (a value where none may be, none where one must be, digits
 * out of range or with a leading zero, also inside a quoted-string) is
 * declined (RFC 7692 section 5): the next offer is tried, and without an acceptable one
 * the handshake succeeds without compression.
 *
 * server_max_window_bits=8 is accepted although zlib refuses a raw
 * deflate stream with a 256-byte window (deflateInit2 with windowBits -8
 * is Z_STREAM_ERROR, and zlib turns 8 into 9 for its own format): the
 * owner compresses with zlib's Z_RLE strategy then, whose matches all lie
 * at distance 1, so the stream never references more than the last byte
 * and fits any window; a 512-byte window with ordinary matching would
 * not.
 */
#ifndef SWOOP_PROTO_WS_DEFLATE_H
#define SWOOP_PROTO_WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

/* Window bits when a side did not limit its window (a 32 KiB window). */
#define SWOOP_WS_DEFLATE_BITS_MAX 15
#define SWOOP_WS_DEFLATE_BITS_MIN 8

/* Room for the longest response value (129 bytes with its NUL). */
#define SWOOP_WS_DEFLATE_RESPONSE_MAX 160

typedef struct swoop_ws_deflate_params_s {
    uint8_t server_no_context; /* server_no_context_takeover: our compressor resets per message */
    uint8_t client_no_context; /* client_no_context_takeover: our inflater resets per message */
    uint8_t server_bits;       /* our compressor's window (8..15) */
    uint8_t client_bits;       /* the client's compressor's window, so our inflater's (8..15) */
} swoop_ws_deflate_params_t;

/*
 * Reads the Sec-WebSocket-Extensions value v[0, len) (several fields may
 * be joined with commas). Returns 1 when an offer of permessage-deflate
 * was accepted: *p holds the agreed parameters and out (cap bytes,
 * SWOOP_WS_DEFLATE_RESPONSE_MAX is enough) the response field's value,
 * NUL-terminated; 0 when none was (out is ""). Other extensions are
 * ignored. With `server_takeover` 0 the server keeps no compression
 * context whatever the offer: the response carries
 * server_no_context_takeover, which a server may add unasked
 * (RFC 7692 section 7.1).
 */
int swoop__ws_deflate_negotiate(const char *v, size_t len, int server_takeover,
                                swoop_ws_deflate_params_t *p, char *out, size_t cap);

/* The parameters in 24 bits (never 0: bit 0 says compression was agreed). */
uint32_t swoop__ws_deflate_pack(const swoop_ws_deflate_params_t *p);

/* The parameters from swoop__ws_deflate_pack: 1, or 0 when `v` says none were agreed. */
int swoop__ws_deflate_unpack(uint32_t v, swoop_ws_deflate_params_t *p);

#endif /* SWOOP_PROTO_WS_DEFLATE_H */
