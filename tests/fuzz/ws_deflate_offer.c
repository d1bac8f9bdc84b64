/*
 * libFuzzer target for the permessage-deflate negotiation
 * (src/proto/ws_deflate_offer.c): any Sec-WebSocket-Extensions value.
 * Checks: the parser reads nothing past the value (the input is an exact
 * heap copy), an accepted offer gives parameters in range and a response
 * that fits and is accepted again by the parser as a single offer with the
 * same parameters (what we answer is something we would take), and the
 * packing round-trips.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ws_deflate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size ? size : 1);
    memcpy(v, data, size);
    swoop_ws_deflate_params_t p, q;
    char out[SWOOP_WS_DEFLATE_RESPONSE_MAX];
    int takeover = size > 0 && (data[0] & 1);
    int ok = swoop__ws_deflate_negotiate(v, size, takeover, &p, out, sizeof(out));
    free(v);
    if (!ok) {
        if (out[0] != '\0')
            abort();
        return 0;
    }
    if (p.server_bits < 8 || p.server_bits > 15 || p.client_bits < 8 || p.client_bits > 15)
        abort();
    size_t n = strlen(out);
    if (n >= sizeof(out) || strncmp(out, "permessage-deflate", 18) != 0)
        abort();
    char again[SWOOP_WS_DEFLATE_RESPONSE_MAX];
    if (!takeover && !p.server_no_context)
        abort();
    if (swoop__ws_deflate_negotiate(out, n, 1, &q, again, sizeof(again)) != 1 ||
        memcmp(&p, &q, sizeof(p)) != 0 || strcmp(out, again) != 0)
        abort();
    if (swoop__ws_deflate_unpack(swoop__ws_deflate_pack(&p), &q) != 1 ||
        memcmp(&p, &q, sizeof(p)) != 0)
        abort();
    return 0;
}
