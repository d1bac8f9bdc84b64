/*
 * Stream framing (Swoole's open_eof_check / open_eof_split /
 * open_length_check): pure functions over a byte buffer that say how long
 * the first complete packet is. Nothing here allocates or does I/O, so a
 * declared length is only a number until the caller has the bytes, and the
 * functions can be fuzzed on their own. Internal to the library (L1).
 */
#ifndef SWOOP_PROTO_FRAMING_H
#define SWOOP_PROTO_FRAMING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How a stream is cut into packets. */
typedef enum {
    SWOOP_FRAME_NONE = 0,      /* every read is one packet */
    SWOOP_FRAME_EOF_CHECK = 1, /* deliver the buffer once it ends with the EOF marker */
    SWOOP_FRAME_EOF_SPLIT = 2, /* one packet per EOF marker (the marker included) */
    SWOOP_FRAME_LENGTH = 3     /* a length field in a fixed header */
} swoop_frame_mode_t;

#define SWOOP_FRAME_EOF_MAX 8

typedef struct swoop_framing_s {
    swoop_frame_mode_t mode;
    char eof[SWOOP_FRAME_EOF_MAX];
    size_t eof_len;     /* 1..8 */
    char length_type;   /* c C s S n v l L N V q Q (PHP pack() letters) */
    size_t length_size; /* bytes of the length field, from length_type */
    size_t length_offset;
    size_t body_offset; /* packet = body_offset + value of the length field */
    size_t max_length;  /* package_max_length */
} swoop_framing_t;

/* Byte size of a length type letter, or 0 for an unknown letter. */
size_t swoop__frame_type_size(char type);

/*
 * Fills the derived fields and checks the settings. Returns 0 or
 * SWOOP_EINVAL (the cause is logged).
 */
int swoop__framing_check(swoop_framing_t *f);

/*
 * Decodes the length field of type `type` at `p` (length_size bytes).
 * Returns 0 and sets *out, or SWOOP_EPROTO for a negative signed value.
 */
int swoop__frame_decode_length(char type, const unsigned char *p, uint64_t *out);

/*
 * The length of the first complete packet in buf[0, len): > 0 = a packet of
 * that many bytes is there; 0 = more bytes are needed (then *need, if not
 * NULL, gets the packet's total length when the header already tells it,
 * else 0); SWOOP_ETOOBIG = the packet would exceed max_length (decided from
 * the header alone, before any byte of the body); SWOOP_EPROTO = malformed
 * (a negative length). *scan is the resume point for the EOF search (the
 * caller keeps it per connection, starting at 0, and resets it to 0 after
 * consuming a packet), so a packet that arrives byte by byte is not
 * searched again from its start each time.
 */
ssize_t swoop__frame_length(const swoop_framing_t *f, const char *buf, size_t len, size_t *scan,
                            size_t *need);

#endif /* SWOOP_PROTO_FRAMING_H */
