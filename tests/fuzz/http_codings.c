/*
 * libFuzzer target for Accept-Encoding negotiation (src/proto/http_codings.c).
 * The input is one field value (split at its first NUL into two fields).
 * Checks: no read outside the value (ASan, the value is copied to a buffer
 * of its exact size), weights stay in -1..1000, the pick is one of the
 * allowed codings or identity, a malformed value always picks identity, and
 * parsing the same value twice into fresh sets gives the same result.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http_codings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_weight(int q)
{
    if (q < -1 || q > 1000)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size ? size : 1);
    memcpy(v, data, size);
    const char *nul = memchr(v, '\0', size);
    size_t l1 = nul ? (size_t)(nul - v) : size;
    for (int allowed = 0; allowed < 4; allowed++) {
        swoop_http_codings_t a, b;
        swoop__http_codings_init(&a);
        swoop__http_codings_init(&b);
        int ra = swoop__http_codings_parse(&a, v, l1);
        int rb = swoop__http_codings_parse(&b, v, l1);
        if (ra != rb || memcmp(&a, &b, sizeof(a)) != 0)
            abort();
        if (nul)
            swoop__http_codings_parse(&a, nul + 1, size - l1 - 1);
        check_weight(a.gzip);
        check_weight(a.deflate);
        check_weight(a.identity);
        check_weight(a.star);
        int pick = swoop__http_codings_pick(&a, allowed);
        if (pick != SWOOP_HTTP_CODING_IDENTITY && (pick & ~allowed) != 0)
            abort();
        if (a.bad && pick != SWOOP_HTTP_CODING_IDENTITY)
            abort();
    }
    free(v);
    return 0;
}
