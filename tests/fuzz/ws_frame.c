/*
 * libFuzzer target for the WebSocket frame decoder (src/proto/ws_frame.c).
 * The first byte chooses the settings (mask required, RSV1 allowed, a
 * message limit) and the piece size; the rest is a client's byte stream.
 * Checks: the decoder never takes more than it was given, reports an event
 * or takes everything on each call, unmasks in place within the input,
 * and gives the same events (a running digest of types, opcodes, codes
 * and payload bytes) whole and in pieces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/log.h>

#include "proto/ws_frame.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    swoop_log_set_level(SWOOP_LOG_NONE);
    return 0;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ull;
}

/* Decodes buf in pieces of `step` bytes; returns a digest of every event. */
static uint64_t run(const uint8_t *in, size_t len, size_t step, int cfg)
{
    swoop_ws_decoder_t d;
    swoop__ws_decoder_init(&d, (cfg & 4) ? 300 : 0, cfg & 1, (cfg & 2) != 0);
    uint8_t *buf = malloc(len ? len : 1);
    memcpy(buf, in, len);
    uint64_t h = 0xcbf29ce484222325ull, msg = 0;
    size_t at = 0;
    while (at < len) {
        size_t end = at + step < len ? at + step : len;
        while (at < end) {
            swoop_ws_event_t ev;
            size_t n = swoop__ws_decode(&d, buf + at, end - at, &ev);
            if (n > end - at)
                abort();
            at += n;
            if (ev.type == SWOOP_WS_EV_ERROR) {
                free(buf);
                return mix(h, 1000000u + (uint64_t)ev.code);
            }
            if (ev.type == SWOOP_WS_EV_NONE) {
                if (at != end)
                    abort(); /* no event, yet bytes left untaken */
                break;
            }
            if (ev.type == SWOOP_WS_EV_DATA &&
                (ev.data < buf || ev.data + ev.len > buf + len || ev.len > n))
                abort();
            if (ev.type == SWOOP_WS_EV_CONTROL && ev.len > SWOOP_WS_CONTROL_MAX)
                abort();
            /*
             * Pieces differ with the split, and so does how much of a
             * message came before an error: only whole messages count.
             */
            if (ev.type == SWOOP_WS_EV_CONTROL) {
                for (size_t i = 0; i < ev.len; i++)
                    h = mix(h, ev.data[i]);
                h = mix(h, (uint64_t)ev.opcode << 16 | (uint64_t)ev.code);
                continue;
            }
            if (ev.first)
                msg = 0x84222325u;
            for (size_t i = 0; i < ev.len; i++)
                msg = mix(msg, ev.data[i]);
            if (ev.fin)
                h = mix(mix(h, msg), (uint64_t)ev.opcode << 8 | (uint64_t)ev.compressed);
        }
    }
    free(buf);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int cfg = data[0] & 7;
    size_t step = (size_t)(data[0] >> 3) + 1;
    uint64_t whole = run(data + 1, size - 1, size, cfg);
    if (run(data + 1, size - 1, step, cfg) != whole || run(data + 1, size - 1, 1, cfg) != whole)
        abort();
    return 0;
}
