/*
 * The WebSocket opening handshake's pure parts (RFC 6455 4.2): checking a
 * client's Sec-WebSocket-Key, computing Sec-WebSocket-Accept (SHA-1 and
 * base64 from OpenSSL's libcrypto), and finding a token in a
 * comma-separated field value (Connection, Upgrade, Sec-WebSocket-Protocol).
 * Internal to the library (L1).
 */
#ifndef SWOOP_PROTO_WS_HANDSHAKE_H
#define SWOOP_PROTO_WS_HANDSHAKE_H

#include <stddef.h>

/* Sec-WebSocket-Accept is 28 base64 characters. */
#define SWOOP_WS_ACCEPT_LEN 28

/* 1 if key[0, len) is base64 of exactly 16 bytes (24 characters, "==" at the end). */
int swoop__ws_key_valid(const char *key, size_t len);

/* Writes Sec-WebSocket-Accept for the key (28 characters and a NUL) into out. */
void swoop__ws_accept(const char *key, size_t len, char out[SWOOP_WS_ACCEPT_LEN + 1]);

/* 1 if the comma-separated list v[0, len) holds `token` (any case, blanks around items). */
int swoop__ws_token_has(const char *v, size_t len, const char *token);

#endif /* SWOOP_PROTO_WS_HANDSHAKE_H */
