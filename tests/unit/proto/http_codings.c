/*
 * Accept-Encoding negotiation (RFC 9110 12.5.3), table-driven: q-values,
 * "*", identity, case, blanks, several fields, malformed values; then the
 * pick among the codings a caller allows.
 */
#include <string.h>

#include "proto/http_codings.h"
#include "test.h"

#define ID   SWOOP_HTTP_CODING_IDENTITY
#define GZ   SWOOP_HTTP_CODING_GZIP
#define DF   SWOOP_HTTP_CODING_DEFLATE
#define BOTH (GZ | DF)

typedef struct {
    const char *v1, *v2; /* field values; v1 NULL: no field at all */
    int allowed;
    int want;
} row_t;

static const row_t rows[] = {
    /* No field, an empty one: identity. */
    {NULL, NULL, BOTH, ID},
    {"", NULL, BOTH, ID},
    {" , ,", NULL, BOTH, ID},
    /* Plain lists; gzip first on a tie, in any order. */
    {"gzip", NULL, BOTH, GZ},
    {"deflate", NULL, BOTH, DF},
    {"deflate, gzip", NULL, BOTH, GZ},
    {"gzip, deflate, br", NULL, BOTH, GZ},
    {"br", NULL, BOTH, ID},
    {"br, zstd;q=0.9", NULL, BOTH, ID},
    /* Case and blanks. */
    {"GZip", NULL, BOTH, GZ},
    {"  gzip  ;  Q=1 ,", NULL, BOTH, GZ},
    {"\tdeflate\t", NULL, BOTH, DF},
    {"x-gzip", NULL, BOTH, GZ},
    /* Weights. */
    {"gzip;q=0.5, deflate", NULL, BOTH, DF},
    {"gzip;q=0.8, deflate;q=0.801", NULL, BOTH, DF},
    {"gzip;q=0.8, deflate;q=0.8", NULL, BOTH, GZ},
    {"gzip;q=1.000", NULL, BOTH, GZ},
    {"gzip;q=1.", NULL, BOTH, GZ},
    {"gzip;q=0.001", NULL, BOTH, GZ},
    /* q=0 refuses. */
    {"gzip;q=0", NULL, BOTH, ID},
    {"gzip;q=0.000", NULL, BOTH, ID},
    {"gzip;q=0, deflate", NULL, BOTH, DF},
    {"gzip;q=0, deflate;q=0", NULL, BOTH, ID},
    /* "*": any coding not named. */
    {"*", NULL, BOTH, GZ},
    {"*;q=0, identity", NULL, BOTH, ID},
    {"*;q=0, deflate", NULL, BOTH, DF},
    {"gzip;q=0, *", NULL, BOTH, DF},
    {"*;q=0.5, gzip;q=0", NULL, BOTH, DF},
    /* identity weighted above the codings wins; equal or lower does not. */
    {"gzip;q=0.5, identity", NULL, BOTH, ID},
    {"gzip;q=0.5, identity;q=0.5", NULL, BOTH, GZ},
    {"gzip, identity;q=0", NULL, BOTH, GZ},
    {"gzip;q=0.5, *", NULL, BOTH, DF}, /* "*" gives deflate 1 */
    {"gzip;q=0.5, *", NULL, GZ, ID},   /* and identity 1, above gzip's 0.5 */
    /* The first weight of a coding named twice stays. */
    {"gzip;q=0, gzip", NULL, BOTH, ID},
    {"gzip, gzip;q=0", NULL, BOTH, GZ},
    /* Several fields combine. */
    {"gzip;q=0", "deflate", BOTH, DF},
    {"br", "gzip", BOTH, GZ},
    {"gzip", "gzip;q=0", BOTH, GZ},
    /* Malformed: identity, whatever else was said (in any field). */
    {"gzip;q=2", NULL, BOTH, ID},
    {"gzip;q=1.5", NULL, BOTH, ID},
    {"gzip;q=1.001", NULL, BOTH, ID},
    {"gzip;q=0.1234", NULL, BOTH, ID},
    {"gzip;q=.5", NULL, BOTH, ID},
    {"gzip;q=", NULL, BOTH, ID},
    {"gzip;q", NULL, BOTH, ID},
    {"gzip;level=1", NULL, BOTH, ID},
    {"gzip;q=0.5;q=1", NULL, BOTH, ID},
    {"gzip deflate", NULL, BOTH, ID},
    {"gzip/1", NULL, BOTH, ID},
    {";q=1", NULL, BOTH, ID},
    {"gzip;q=1x", NULL, BOTH, ID},
    {"gzip", "de\"flate", BOTH, ID},
    /* What the caller allows. */
    {"deflate, gzip", NULL, GZ, GZ},
    {"deflate", NULL, GZ, ID},
    {"gzip;q=0.5, deflate", NULL, GZ, GZ},
    {"*", NULL, DF, DF},
    {"gzip", NULL, 0, ID},
};

TEST(http_codings_table)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row_t *r = &rows[i];
        swoop_http_codings_t acc;
        swoop__http_codings_init(&acc);
        if (r->v1)
            swoop__http_codings_parse(&acc, r->v1, strlen(r->v1));
        if (r->v2)
            swoop__http_codings_parse(&acc, r->v2, strlen(r->v2));
        int got = swoop__http_codings_pick(&acc, r->allowed);
        if (got != r->want)
            FAIL("row %zu: \"%s\"%s%s%s allowed %d: got %d, want %d", i, r->v1 ? r->v1 : "(none)",
                 r->v2 ? " + \"" : "", r->v2 ? r->v2 : "", r->v2 ? "\"" : "", r->allowed, got,
                 r->want);
    }
}

TEST(http_codings_parse_result_and_bounds)
{
    swoop_http_codings_t acc;
    swoop__http_codings_init(&acc);
    ASSERT_EQ(swoop__http_codings_parse(&acc, "gzip;q=0.25, deflate;q=0.5", 26), 0);
    ASSERT_EQ(acc.gzip, 250);
    ASSERT_EQ(acc.deflate, 500);
    ASSERT_EQ(acc.identity, -1);
    ASSERT_EQ(acc.star, -1);
    /* The value is bounded by len, not by a NUL: "gzip" cut to "gz" is an unknown coding. */
    swoop__http_codings_init(&acc);
    ASSERT_EQ(swoop__http_codings_parse(&acc, "gzip", 2), 0);
    ASSERT_EQ(acc.gzip, -1);
    ASSERT_EQ(swoop__http_codings_pick(&acc, BOTH), ID);
    /* A qvalue cut by len is still read within it: "q=0.5" seen as "q=0." */
    swoop__http_codings_init(&acc);
    ASSERT_EQ(swoop__http_codings_parse(&acc, "gzip;q=0.5", 9), 0);
    ASSERT_EQ(acc.gzip, 0);
    swoop__http_codings_init(&acc);
    ASSERT_EQ(swoop__http_codings_parse(&acc, "gzip;q=0.5x", 11), -1);
    ASSERT_EQ(acc.bad, 1);
    ASSERT_STR_EQ(swoop__http_coding_name(GZ), "gzip");
    ASSERT_STR_EQ(swoop__http_coding_name(DF), "deflate");
    ASSERT_NULL(swoop__http_coding_name(ID));
}
