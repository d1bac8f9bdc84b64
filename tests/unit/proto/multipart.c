/*
 * multipart/form-data parser (src/proto/multipart.c). Each row is a body
 * and the transcript its events must give ("P[name|filename|type]" for a
 * part, its bytes, "E" at its end, "D" at the final delimiter) or an error.
 * Every row is fed whole, split in two at every byte, and one byte at a
 * time, each piece in a fresh exact-size copy (ASan sees any read past it
 * and any event that points into a piece after the call), and all must
 * give the same transcript. The Content-Type boundary reader has its own
 * table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/multipart.h"
#include "test.h"

#define B "XyZ-b0undary"

typedef struct out_s {
    char text[8192];
    size_t len;
    int rc; /* 0, or the error */
} out_t;

static void out_add(out_t *o, const char *p, size_t n)
{
    ASSERT(o->len + n < sizeof(o->text));
    memcpy(o->text + o->len, p, n);
    o->len += n;
}

/* Feeds one piece (a fresh copy), recording every event, until it is used up. */
static void feed(swoop_mp_t *mp, const char *in, size_t n, out_t *o)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, in, n);
    size_t off = 0;
    int guard = 0;
    while (o->rc == 0 && (off < n || n == 0)) {
        ASSERT_LT(guard++, 100000);
        swoop_mp_event_t ev;
        ssize_t k = swoop__mp_parse(mp, copy + off, n - off, &ev);
        if (k < 0) {
            o->rc = (int)k;
            break;
        }
        ASSERT_ULE((size_t)k, n - off);
        off += (size_t)k;
        if (ev.type == SWOOP_MP_EV_PART) {
            char line[SWOOP_MP_HEAD_MAX * 2];
            int l = snprintf(line, sizeof(line), "P[%s|%s|%s]", swoop__mp_str(mp, mp->name),
                             mp->has_filename ? swoop__mp_str(mp, mp->filename) : "-",
                             mp->has_type ? swoop__mp_str(mp, mp->type) : "-");
            out_add(o, line, (size_t)l);
        } else if (ev.type == SWOOP_MP_EV_DATA) {
            ASSERT_GT(ev.len, 0);
            out_add(o, ev.data, ev.len);
        } else if (ev.type == SWOOP_MP_EV_PART_END) {
            out_add(o, "E", 1);
        } else if (ev.type == SWOOP_MP_EV_DONE) {
            out_add(o, "D", 1);
        } else {
            ASSERT_EQ(off, n); /* NONE: the piece was used up */
            break;
        }
    }
    free(copy);
}

/* Parses `in` in pieces ending at ends[]; a body that ends before "--B--" is TRUNCATED. */
static void run(const char *in, const size_t *ends, size_t nends, out_t *o)
{
    static swoop_mp_t mp;
    memset(o, 0, sizeof(*o));
    swoop__mp_init(&mp, B, strlen(B));
    size_t from = 0;
    for (size_t s = 0; s < nends && o->rc == 0; s++) {
        feed(&mp, in + from, ends[s] - from, o);
        from = ends[s];
    }
    if (o->rc == 0 && !swoop__mp_done(&mp))
        o->rc = SWOOP_MP_E_TRUNCATED;
}

static void same(const out_t *a, const out_t *b, const char *name, size_t cut)
{
    if (a->rc != b->rc)
        FAIL("%s (cut %zu): rc %d vs %d", name, cut, a->rc, b->rc);
    if (a->rc == 0 && (a->len != b->len || memcmp(a->text, b->text, a->len) != 0))
        FAIL("%s (cut %zu): transcripts differ: \"%.*s\" vs \"%.*s\"", name, cut, (int)a->len,
             a->text, (int)b->len, b->text);
}

static void every_way(const char *name, const char *in, size_t n, out_t *whole)
{
    static out_t other;
    size_t all[1] = {n};
    run(in, all, 1, whole);
    for (size_t cut = 0; cut <= n; cut++) {
        size_t two[2] = {cut, n};
        run(in, two, 2, &other);
        same(whole, &other, name, cut);
    }
    size_t *steps = malloc((n + 1) * sizeof(*steps));
    for (size_t k = 0; k <= n; k++)
        steps[k] = k;
    run(in, steps, n + 1, &other);
    free(steps);
    same(whole, &other, name, (size_t)-1);
}

typedef struct row_s {
    const char *name;
    const char *in;
    size_t len;
    int rc;
    const char *want; /* rc 0: the transcript */
} row_t;

#define ROW(name, lit, rc, want)                                                                   \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, rc, want                                                       \
    }
#define D    "--" B
#define CD   "Content-Disposition: form-data; name="
#define FOOT "\r\n" D "--\r\n"

static const row_t rows[] = {
    ROW("one_field", D "\r\n" CD "\"a\"\r\n\r\nvalue" FOOT, 0, "P[a|-|-]valueED"),
    ROW("two_fields_and_file",
        D "\r\n" CD "\"a\"\r\n\r\n1\r\n" D "\r\n" CD "\"f\"; filename=\"x.txt\"\r\n"
          "Content-Type: text/plain\r\n\r\nfile\r\nbody" FOOT,
        0, "P[a|-|-]1EP[f|x.txt|text/plain]file\r\nbodyED"),
    ROW("empty_value", D "\r\n" CD "a\r\n\r\n" FOOT, 0, "P[a|-|-]ED"),
    ROW("no_parts", D "--", 0, "D"),
    ROW("preamble_epilogue",
        "preamble\r\n--" B "x is not it\r\n" D "\r\n" CD "a\r\n\r\nv" FOOT "epilogue\r\n" D "\r\n",
        SWOOP_MP_E_DELIMITER, ""),
    ROW("preamble_and_epilogue", "pre\r\namble\r\n" D "\r\n" CD "a\r\n\r\nv" FOOT "epi\r\nlogue", 0,
        "P[a|-|-]vED"),
    ROW("padding_after_delimiter", D " \t\r\n" CD "a\r\n\r\nv\r\n" D "  \r\n" CD "b\r\n\r\nw" FOOT,
        0, "P[a|-|-]vEP[b|-|-]wED"),
    ROW("near_delimiters_in_data", D "\r\n" CD "a\r\n\r\n\r\r\n\r\n-\r\n--XyZ\r\n--" B "\r" FOOT,
        SWOOP_MP_E_DELIMITER, ""),
    ROW("near_delimiters_are_data",
        D "\r\n" CD "a\r\n\r\n\r\r\n\r\n-\r\n--XyZ\r\n--XyZ-b0undar\r" FOOT, 0,
        "P[a|-|-]\r\r\n\r\n-\r\n--XyZ\r\n--XyZ-b0undar\rED"),
    ROW("quoted_escapes", D "\r\n" CD "\"a\\\"b\"; filename=\"c:\\\\x\\\\y.txt\"\r\n\r\nv" FOOT, 0,
        "P[a\"b|c:\\x\\y.txt|-]vED"),
    ROW("empty_filename", D "\r\n" CD "f; filename=\"\"\r\n\r\n" FOOT, 0, "P[f||-]ED"),
    ROW("filename_star_ignored",
        D "\r\n" CD "f; filename*=UTF-8''%e2%82%ac.txt; filename=\"e.txt\"\r\n\r\nx" FOOT, 0,
        "P[f|e.txt|-]xED"),
    ROW("case_and_other_fields",
        D "\r\nCONTENT-disposition:FORM-DATA;NAME=a\r\nX-Other: 1\r\ncontent-type:  a/b  "
          "\r\n\r\nv" FOOT,
        0, "P[a|-|a/b]vED"),
    ROW("utf8_name", D "\r\n" CD "\"\xc3\xa9t\xc3\xa9\"\r\n\r\nv" FOOT, 0,
        "P[\xc3\xa9t\xc3\xa9|-|-]vED"),
    /* Errors. */
    ROW("no_final_delimiter", D "\r\n" CD "a\r\n\r\nv\r\n", SWOOP_MP_E_TRUNCATED, ""),
    ROW("empty_body", "", SWOOP_MP_E_TRUNCATED, ""),
    ROW("no_delimiter_at_all", "just text", SWOOP_MP_E_TRUNCATED, ""),
    ROW("truncated_head", D "\r\n" CD "a\r\n", SWOOP_MP_E_TRUNCATED, ""),
    ROW("no_headers", D "\r\n\r\nv" FOOT, SWOOP_MP_E_DISPOSITION, ""),
    ROW("no_disposition", D "\r\nContent-Type: a/b\r\n\r\nv" FOOT, SWOOP_MP_E_DISPOSITION, ""),
    ROW("not_form_data", D "\r\nContent-Disposition: attachment; name=a\r\n\r\nv" FOOT,
        SWOOP_MP_E_DISPOSITION, ""),
    ROW("two_dispositions", D "\r\n" CD "a\r\n" CD "b\r\n\r\nv" FOOT, SWOOP_MP_E_DISPOSITION, ""),
    ROW("no_name", D "\r\nContent-Disposition: form-data; filename=x\r\n\r\nv" FOOT,
        SWOOP_MP_E_NO_NAME, ""),
    ROW("empty_name", D "\r\n" CD "\"\"\r\n\r\nv" FOOT, SWOOP_MP_E_NO_NAME, ""),
    ROW("two_names", D "\r\n" CD "a; name=b\r\n\r\nv" FOOT, SWOOP_MP_E_DISPOSITION, ""),
    ROW("unterminated_quote", D "\r\n" CD "\"a\r\n\r\nv" FOOT, SWOOP_MP_E_DISPOSITION, ""),
    ROW("param_without_value", D "\r\n" CD "a; filename\r\n\r\nv" FOOT, SWOOP_MP_E_DISPOSITION, ""),
    ROW("junk_after_param", D "\r\n" CD "a b\r\n\r\nv" FOOT, SWOOP_MP_E_DISPOSITION, ""),
    ROW("bare_lf_in_head", D "\r\n" CD "a\n\r\nv" FOOT, SWOOP_MP_E_HEAD_SYNTAX, ""),
    ROW("bare_cr_in_head", D "\r\n" CD "a\rx\r\n\r\nv" FOOT, SWOOP_MP_E_HEAD_SYNTAX, ""),
    ROW("nul_in_head", D "\r\n" CD "\"a\0\"\r\n\r\nv" FOOT, SWOOP_MP_E_HEAD_SYNTAX, ""),
    ROW("obs_fold", D "\r\n" CD "a\r\n ; filename=x\r\n\r\nv" FOOT, SWOOP_MP_E_HEAD_SYNTAX, ""),
    ROW("space_before_colon", D "\r\nContent-Disposition : form-data; name=a\r\n\r\nv" FOOT,
        SWOOP_MP_E_HEAD_SYNTAX, ""),
    ROW("field_without_colon", D "\r\n" CD "a\r\nX\r\n\r\nv" FOOT, SWOOP_MP_E_HEAD_SYNTAX, ""),
    ROW("empty_content_type", D "\r\n" CD "a\r\nContent-Type:\r\n\r\nv" FOOT,
        SWOOP_MP_E_HEAD_SYNTAX, ""),
    ROW("delimiter_then_junk", D "x\r\n" CD "a\r\n\r\nv" FOOT, SWOOP_MP_E_DELIMITER, ""),
    ROW("delimiter_lf_only", D "\n" CD "a\r\n\r\nv" FOOT, SWOOP_MP_E_DELIMITER, ""),
    ROW("close_one_dash", D "\r\n" CD "a\r\n\r\nv\r\n" D "-x", SWOOP_MP_E_DELIMITER, ""),
    ROW("padding_then_junk", D "  x\r\n" CD "a\r\n\r\nv" FOOT, SWOOP_MP_E_DELIMITER, ""),
};

TEST(multipart_rows_every_split)
{
    static out_t whole;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row_t *r = &rows[i];
        every_way(r->name, r->in, r->len, &whole);
        if (whole.rc != r->rc)
            FAIL("%s: rc %d (%s), want %d", r->name, whole.rc, swoop__mp_error_reason(whole.rc),
                 r->rc);
        if (r->rc == 0 && (whole.len != strlen(r->want) || memcmp(whole.text, r->want, whole.len)))
            FAIL("%s: transcript \"%.*s\", want \"%s\"", r->name, (int)whole.len, whole.text,
                 r->want);
    }
}

/* A header section of exactly SWOOP_MP_HEAD_MAX bytes passes; one byte more does not. */
TEST(multipart_head_limit)
{
    static char in[SWOOP_MP_HEAD_MAX + 256];
    static out_t o;
    for (int extra = 0; extra < 2; extra++) {
        int n = snprintf(in, sizeof(in), D "\r\n" CD "a\r\nX: ");
        size_t head = strlen(CD "a\r\nX: ");
        size_t pad = SWOOP_MP_HEAD_MAX - head - 4 + (size_t)extra;
        memset(in + n, 'x', pad);
        n += (int)pad;
        n += snprintf(in + n, sizeof(in) - (size_t)n, "\r\n\r\nv" FOOT);
        size_t all[1] = {(size_t)n};
        run(in, all, 1, &o);
        ASSERT_EQ(o.rc, extra ? SWOOP_MP_E_HEAD_TOO_LARGE : 0);
    }
}

/* A large part in random bytes (CRs included) with a CRLF-- inside comes out byte for byte. */
TEST(multipart_binary_part)
{
    static char in[70000];
    static char data[65536];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof(data); i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (char)(x >> 16);
        if (i % 1000 == 7)
            data[i] = '\r';
    }
    memcpy(data + 30000, "\r\n--XyZ-b0undar", 15); /* one byte short of the delimiter */
    int n = snprintf(in, sizeof(in), D "\r\n" CD "f; filename=b\r\n\r\n");
    memcpy(in + n, data, sizeof(data));
    n += (int)sizeof(data);
    n += snprintf(in + n, sizeof(in) - (size_t)n, FOOT);
    /* Pieces of 1..97 bytes, varying. */
    static swoop_mp_t mp;
    swoop__mp_init(&mp, B, strlen(B));
    static char got[sizeof(data)];
    size_t got_len = 0, off = 0, piece = 1;
    int parts = 0, done = 0;
    while (off < (size_t)n) {
        size_t m = piece < (size_t)n - off ? piece : (size_t)n - off;
        size_t used = 0;
        while (used < m) {
            swoop_mp_event_t ev;
            ssize_t k = swoop__mp_parse(&mp, in + off + used, m - used, &ev);
            ASSERT_GE(k, 0);
            used += (size_t)k;
            if (ev.type == SWOOP_MP_EV_DATA) {
                ASSERT_ULE(got_len + ev.len, sizeof(got));
                memcpy(got + got_len, ev.data, ev.len);
                got_len += ev.len;
            }
            parts += ev.type == SWOOP_MP_EV_PART;
            done += ev.type == SWOOP_MP_EV_DONE;
            if (ev.type == SWOOP_MP_EV_NONE)
                break;
        }
        off += m;
        piece = piece % 97 + 1;
    }
    ASSERT_EQ(parts, 1);
    ASSERT_EQ(done, 1);
    ASSERT_UEQ(got_len, sizeof(data));
    ASSERT_MEM_EQ(got, data, sizeof(data));
}

/* After an error every call returns it again. */
TEST(multipart_error_sticks)
{
    static swoop_mp_t mp;
    swoop__mp_init(&mp, B, strlen(B));
    swoop_mp_event_t ev;
    const char bad[] = D "x";
    ASSERT_EQ(swoop__mp_parse(&mp, bad, sizeof(bad) - 1, &ev), SWOOP_MP_E_DELIMITER);
    ASSERT_EQ(swoop__mp_parse(&mp, "\r\n", 2, &ev), SWOOP_MP_E_DELIMITER);
    ASSERT_STR_EQ(swoop__mp_error_reason(SWOOP_MP_E_NO_NAME), "part without a name");
}

typedef struct ct_row_s {
    const char *ct;
    int rc;
    const char *boundary;
} ct_row_t;

TEST(multipart_content_type_boundary)
{
    static const ct_row_t ct_rows[] = {
        {"multipart/form-data; boundary=abc", 0, "abc"},
        {"Multipart/Form-Data;boundary=abc", 0, "abc"},
        {"multipart/form-data ; charset=utf-8; BOUNDARY=\"a b:c\"", 0, "a b:c"},
        {"multipart/form-data; boundary=\"----WebKitFormBoundary7MA4YWxkTrZu0gW\"", 0,
         "----WebKitFormBoundary7MA4YWxkTrZu0gW"},
        {"multipart/form-data; boundary=" /* 70 */
         "0123456789012345678901234567890123456789012345678901234567890123456789",
         0, "0123456789012345678901234567890123456789012345678901234567890123456789"},
        {"application/x-www-form-urlencoded", 1, NULL},
        {"multipart/mixed; boundary=abc", 1, NULL},
        {"multipart/form-dataX; boundary=abc", 1, NULL},
        {"text/plain", 1, NULL},
        {"multipart/form-data", SWOOP_MP_E_NO_BOUNDARY, NULL},
        {"multipart/form-data; charset=utf-8", SWOOP_MP_E_NO_BOUNDARY, NULL},
        {"multipart/form-data; boundary=", SWOOP_MP_E_BAD_CONTENT_TYPE, NULL},
        {"multipart/form-data; boundary=\"\"", SWOOP_MP_E_BAD_BOUNDARY, NULL},
        {"multipart/form-data; boundary=\"ab \"", SWOOP_MP_E_BAD_BOUNDARY, NULL},
        {"multipart/form-data; boundary=a!b", SWOOP_MP_E_BAD_BOUNDARY, NULL},
        {"multipart/form-data; boundary=" /* 71 */
         "01234567890123456789012345678901234567890123456789012345678901234567890",
         SWOOP_MP_E_BAD_BOUNDARY, NULL},
        {"multipart/form-data; boundary=a; boundary=b", SWOOP_MP_E_BAD_BOUNDARY, NULL},
        {"multipart/form-data; boundary=\"abc", SWOOP_MP_E_BAD_CONTENT_TYPE, NULL},
        {"multipart/form-data; boundary=abc junk", SWOOP_MP_E_BAD_CONTENT_TYPE, NULL},
        {"multipart/form-data;; boundary=abc", SWOOP_MP_E_BAD_CONTENT_TYPE, NULL},
    };
    for (size_t i = 0; i < sizeof(ct_rows) / sizeof(ct_rows[0]); i++) {
        char b[SWOOP_MP_BOUNDARY_MAX + 1] = "";
        size_t bl = 0;
        int rc = swoop__mp_boundary(ct_rows[i].ct, strlen(ct_rows[i].ct), b, &bl);
        if (rc != ct_rows[i].rc)
            FAIL("\"%s\": rc %d, want %d", ct_rows[i].ct, rc, ct_rows[i].rc);
        if (rc == 0) {
            ASSERT_STR_EQ(b, ct_rows[i].boundary);
            ASSERT_UEQ(bl, strlen(ct_rows[i].boundary));
        }
    }
}
