/*
 * Accept-Encoding (RFC 9110 12.5.3) as a pure function: the field values of
 * a request are folded into one set of weights, then a content coding is
 * picked among those the server can produce. No I/O, no allocation; the
 * value is borrowed only for the call. Internal to the library (L1).
 */
#ifndef SWOOP_PROTO_HTTP_CODINGS_H
#define SWOOP_PROTO_HTTP_CODINGS_H

#include <stddef.h>

/* The codings swoop produces; bits, so a caller can name the ones it allows. */
#define SWOOP_HTTP_CODING_IDENTITY 0
#define SWOOP_HTTP_CODING_GZIP     1
#define SWOOP_HTTP_CODING_DEFLATE  2

/*
 * The weights (0..1000, thousandths of q) a request gave: -1 where a coding
 * was not named. `bad` is set by a malformed value: the request then gets
 * identity, as nothing it said can be trusted.
 */
typedef struct swoop_http_codings_s {
    int gzip, deflate, identity, star;
    int bad;
    int seen; /* an Accept-Encoding field was given at all */
} swoop_http_codings_t;

/* Resets acc to "no field seen". */
void swoop__http_codings_init(swoop_http_codings_t *acc);

/*
 * Folds one Accept-Encoding field value v[0, len) into acc (several fields
 * combine as one comma-separated list). A coding named twice keeps its
 * first weight. Returns 0, or -1 when the value is malformed (acc->bad set).
 */
int swoop__http_codings_parse(swoop_http_codings_t *acc, const char *v, size_t len);

/*
 * The coding to send among `allowed` (SWOOP_HTTP_CODING_* bits): the one
 * with the highest weight above 0, gzip first on a tie; identity when the
 * request named none of them (an absent field too: most clients that want
 * compression say so), refused them all with q=0, preferred identity by a
 * higher weight, or sent a malformed field.
 */
int swoop__http_codings_pick(const swoop_http_codings_t *acc, int allowed);

/* The coding's name for Content-Encoding ("gzip", "deflate"), NULL for identity. */
const char *swoop__http_coding_name(int coding);

#endif /* SWOOP_PROTO_HTTP_CODINGS_H */
