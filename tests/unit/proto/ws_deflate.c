/*
 * permessage-deflate negotiation (src/proto/ws_deflate_offer.c): a table of
 * Sec-WebSocket-Extensions values a client may send (RFC 7692 sections 5,
 * 7.1 and the offers of Autobahn's category 13), whether an offer is
 * accepted, the parameters agreed and the exact response field value;
 * declined offers (unknown, duplicate or invalid parameters) fall through
 * to the next one. Also the 24-bit packing the owner receives.
 */
#include <string.h>

#include "proto/ws_deflate.h"
#include "test.h"

typedef struct row_s {
    const char *offer;
    const char *response; /* NULL: no offer accepted */
    int snc, cnc, sbits, cbits;
} row_t;

#define PMD "permessage-deflate"

static const row_t rows[] = {
    /* Accepted, with the response the RFC asks for. */
    {PMD, PMD, 0, 0, 15, 15},
    {"PerMessage-Deflate", PMD, 0, 0, 15, 15},
    {PMD "; client_max_window_bits", PMD, 0, 0, 15, 15},
    {PMD "; client_max_window_bits=10", PMD "; client_max_window_bits=10", 0, 0, 15, 10},
    {PMD "; client_max_window_bits=\"12\"", PMD "; client_max_window_bits=12", 0, 0, 15, 12},
    {PMD "; server_max_window_bits=9", PMD "; server_max_window_bits=9", 0, 0, 9, 15},
    {PMD "; server_max_window_bits=8", PMD "; server_max_window_bits=8", 0, 0, 8, 15},
    {PMD "; server_max_window_bits=15", PMD "; server_max_window_bits=15", 0, 0, 15, 15},
    {PMD "; server_no_context_takeover", PMD "; server_no_context_takeover", 1, 0, 15, 15},
    {PMD "; client_no_context_takeover", PMD "; client_no_context_takeover", 0, 1, 15, 15},
    {PMD ";server_no_context_takeover;client_no_context_takeover;server_max_window_bits=11;"
         "client_max_window_bits=13",
     PMD "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; "
         "client_max_window_bits=13",
     1, 1, 11, 13},
    {"  " PMD " ;\tclient_max_window_bits = 9 ", PMD "; client_max_window_bits=9", 0, 0, 15, 9},
    /* Other extensions around it, and empty list elements. */
    {"x-webkit-deflate-frame, " PMD, PMD, 0, 0, 15, 15},
    {"foo; bar=\"a,b\", " PMD "; server_no_context_takeover", PMD "; server_no_context_takeover", 1,
     0, 15, 15},
    {", ,," PMD ",", PMD, 0, 0, 15, 15},
    /* The first acceptable offer wins; declined ones are skipped. */
    {PMD "; server_max_window_bits=10, " PMD, PMD "; server_max_window_bits=10", 0, 0, 10, 15},
    {PMD "; foo, " PMD "; client_no_context_takeover", PMD "; client_no_context_takeover", 0, 1, 15,
     15},
    {PMD "; server_max_window_bits=16, " PMD "; server_max_window_bits=12",
     PMD "; server_max_window_bits=12", 0, 0, 12, 15},
    {PMD "; client_no_context_takeover; client_no_context_takeover, " PMD, PMD, 0, 0, 15, 15},
    /* Declined: nothing acceptable. */
    {"", NULL, 0, 0, 0, 0},
    {"x-webkit-deflate-frame", NULL, 0, 0, 0, 0},
    {"permessage-deflatex", NULL, 0, 0, 0, 0},
    {PMD "; unknown_param", NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits", NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=7", NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=16", NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=010", NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=1a", NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=\"\"", NULL, 0, 0, 0, 0},
    {PMD "; client_max_window_bits=0", NULL, 0, 0, 0, 0},
    {PMD "; client_max_window_bits=", NULL, 0, 0, 0, 0},
    {PMD "; client_max_window_bits=\"10", NULL, 0, 0, 0, 0},
    {PMD "; server_no_context_takeover=1", NULL, 0, 0, 0, 0},
    {PMD "; client_no_context_takeover=\"\"", NULL, 0, 0, 0, 0},
    {PMD "; server_max_window_bits=10; server_max_window_bits=10", NULL, 0, 0, 0, 0},
    {PMD "; client_max_window_bits; client_max_window_bits=9", NULL, 0, 0, 0, 0},
    {PMD " garbage", NULL, 0, 0, 0, 0},
    {PMD ";", NULL, 0, 0, 0, 0},
    {PMD "; =10", NULL, 0, 0, 0, 0},
};

TEST(ws_deflate_offer_table)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row_t *r = &rows[i];
        swoop_ws_deflate_params_t p;
        char out[SWOOP_WS_DEFLATE_RESPONSE_MAX];
        int ok = swoop__ws_deflate_negotiate(r->offer, strlen(r->offer), 1, &p, out, sizeof(out));
        if (ok != (r->response != NULL))
            FAIL("\"%s\": accepted %d", r->offer, ok);
        if (!ok) {
            ASSERT_STR_EQ(out, "");
            continue;
        }
        if (strcmp(out, r->response) != 0)
            FAIL("\"%s\": response \"%s\", want \"%s\"", r->offer, out, r->response);
        if (p.server_no_context != r->snc || p.client_no_context != r->cnc ||
            p.server_bits != r->sbits || p.client_bits != r->cbits)
            FAIL("\"%s\": params %d %d %d %d", r->offer, p.server_no_context, p.client_no_context,
                 p.server_bits, p.client_bits);
        /* Packed for the owner and back. */
        uint32_t v = swoop__ws_deflate_pack(&p);
        ASSERT(v != 0 && v < (1u << 24));
        swoop_ws_deflate_params_t q;
        ASSERT_EQ(swoop__ws_deflate_unpack(v, &q), 1);
        ASSERT_MEM_EQ(&p, &q, sizeof(p));
    }
    swoop_ws_deflate_params_t q;
    ASSERT_EQ(swoop__ws_deflate_unpack(0, &q), 0);
}

/* A response that would not fit is no response (and no compression). */
TEST(ws_deflate_offer_small_buffer)
{
    const char *o = PMD "; server_no_context_takeover; server_max_window_bits=10";
    swoop_ws_deflate_params_t p;
    char out[20];
    ASSERT_EQ(swoop__ws_deflate_negotiate(o, strlen(o), 1, &p, out, sizeof(out)), 0);
    ASSERT_STR_EQ(out, "");
}

/* The value is read within its length: nothing past len counts. */
TEST(ws_deflate_offer_bounded_by_len)
{
    const char *o = PMD "; server_max_window_bits=1";
    swoop_ws_deflate_params_t p;
    char out[SWOOP_WS_DEFLATE_RESPONSE_MAX];
    ASSERT_EQ(swoop__ws_deflate_negotiate(o, strlen(o), 1, &p, out, sizeof(out)), 0);
    ASSERT_EQ(swoop__ws_deflate_negotiate(o, 18, 1, &p, out, sizeof(out)), 1);
    ASSERT_STR_EQ(out, PMD);
}

/* websocket_compression_context_takeover 0: every accepted offer gets server_no_context_takeover.
 */
TEST(ws_deflate_offer_server_without_context)
{
    static const struct {
        const char *offer, *response;
    } t[] = {
        {PMD, PMD "; server_no_context_takeover"},
        {PMD "; client_max_window_bits", PMD "; server_no_context_takeover"},
        {PMD "; server_no_context_takeover; server_max_window_bits=10",
         PMD "; server_no_context_takeover; server_max_window_bits=10"},
        {PMD "; client_no_context_takeover; client_max_window_bits=9",
         PMD "; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        swoop_ws_deflate_params_t p;
        char out[SWOOP_WS_DEFLATE_RESPONSE_MAX];
        ASSERT_EQ(
            swoop__ws_deflate_negotiate(t[i].offer, strlen(t[i].offer), 0, &p, out, sizeof(out)),
            1);
        ASSERT_STR_EQ(out, t[i].response);
        ASSERT_EQ(p.server_no_context, 1);
    }
    swoop_ws_deflate_params_t p;
    char out[SWOOP_WS_DEFLATE_RESPONSE_MAX];
    ASSERT_EQ(swoop__ws_deflate_negotiate("x-foo", 5, 0, &p, out, sizeof(out)), 0);
}
