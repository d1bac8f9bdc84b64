/*
 * TLS with OpenSSL 3 (net/tls.h). One SSL_CTX per port (and one per SNI
 * host name), built in the master before any fork, so every process, and
 * every worker forked later, holds the same session ticket keys: a client
 * resumes its session whichever process serves it next.
 */
#include "net/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <swoop/alloc.h>
#include <swoop/error.h>
#include <swoop/log.h>

/*
 * The cipher list of TLS 1.2 (TLS 1.3 has its own, OpenSSL's default):
 * forward secrecy and AEAD only, as Mozilla's "intermediate" profile.
 */
#define DEFAULT_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_PROTOCOLS "TLSv1.2 TLSv1.3"
#define SNI_MAX           64

typedef struct sni_entry_s {
    char host[256];
    SSL_CTX *ctx;
} sni_entry_t;

struct swoop_tls_ctx_s {
    atomic_int refs;   /* the maker's and one per connection made from it */
    char retired[160]; /* replaced by a reload: "port N (host:port)", for the log at its end */
    SSL_CTX *ctx;
    int handshake_timeout;
    unsigned char alpn[256]; /* the server's ALPN list, wire format (length-prefixed) */
    size_t alpn_len;
    sni_entry_t *sni;
    size_t nsni;
    unsigned char *ocsp; /* ssl_stapling_file's response (DER), stapled for clients that ask */
    size_t ocsp_len;
};

struct swoop_tls_s {
    SSL *ssl;
    swoop_tls_ctx_t *from; /* referenced: its callbacks (ALPN, SNI) serve this handshake */
    int failed;            /* a fatal error: no close_notify, no more I/O */
    char reason[160];
};

/* ---- settings ---- */

void swoop__tls_conf_inherit(swoop_tls_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->verify_peer = -1;
    c->verify_depth = -1;
    c->handshake_timeout = -1;
    c->session_tickets = -1;
    c->session_cache = -1;
}

void swoop__tls_conf_defaults(swoop_tls_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->ciphers, DEFAULT_CIPHERS);
    strcpy(c->protocols, DEFAULT_PROTOCOLS);
    c->verify_peer = 0;
    c->verify_depth = 9;
    c->handshake_timeout = 10;
    c->session_tickets = 1;
    c->session_cache = 20480;
}

#define INHERIT_STR(f)                                                                             \
    do {                                                                                           \
        if (c->f[0] == '\0')                                                                       \
            memcpy(c->f, d->f, sizeof(c->f));                                                      \
    } while (0)
#define INHERIT_INT(f)                                                                             \
    do {                                                                                           \
        if (c->f < 0)                                                                              \
            c->f = d->f;                                                                           \
    } while (0)

void swoop__tls_conf_resolve(swoop_tls_conf_t *c, const swoop_tls_conf_t *d)
{
    /* A port's own certificate comes with its own key: never half of each. */
    if (c->cert_file[0] == '\0' && c->key_file[0] == '\0') {
        memcpy(c->cert_file, d->cert_file, sizeof(c->cert_file));
        memcpy(c->key_file, d->key_file, sizeof(c->key_file));
        if (c->passphrase[0] == '\0')
            memcpy(c->passphrase, d->passphrase, sizeof(c->passphrase));
    }
    INHERIT_STR(ciphers);
    INHERIT_STR(ciphersuites);
    INHERIT_STR(protocols);
    INHERIT_STR(alpn);
    INHERIT_STR(client_cert_file);
    INHERIT_STR(sni_certs);
    INHERIT_STR(stapling_file);
    INHERIT_INT(verify_peer);
    INHERIT_INT(verify_depth);
    INHERIT_INT(handshake_timeout);
    INHERIT_INT(session_tickets);
    INHERIT_INT(session_cache);
}

/* "TLSv1.2 TLSv1.3" (blanks, commas or '|' between): the lowest and highest version named. */
static int parse_protocols(const char *v, int *lo, int *hi)
{
    static const struct {
        const char *name;
        int version;
    } names[] = {{"TLSv1", TLS1_VERSION},
                 {"TLSv1.0", TLS1_VERSION},
                 {"TLSv1.1", TLS1_1_VERSION},
                 {"TLSv1.2", TLS1_2_VERSION},
                 {"TLSv1.3", TLS1_3_VERSION}};
    *lo = 0;
    *hi = 0;
    const char *p = v;
    while (*p) {
        size_t n = strcspn(p, " ,|\t");
        if (n == 0) {
            p++;
            continue;
        }
        int found = 0;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (strlen(names[i].name) == n && strncasecmp(p, names[i].name, n) == 0) {
                int ver = names[i].version;
                *lo = *lo == 0 || ver < *lo ? ver : *lo;
                *hi = ver > *hi ? ver : *hi;
                found = 1;
            }
        }
        if (!found)
            return SWOOP_EINVAL;
        p += n;
    }
    return *lo ? 0 : SWOOP_EINVAL;
}

/* "http/1.1,h2" into the wire format (each name behind its length byte). */
static int parse_alpn(const char *v, unsigned char *out, size_t cap, size_t *len)
{
    size_t k = 0;
    const char *p = v;
    while (*p) {
        size_t n = strcspn(p, ", ");
        if (n == 0) {
            p++;
            continue;
        }
        if (n > 255 || k + 1 + n > cap)
            return SWOOP_EINVAL;
        out[k++] = (unsigned char)n;
        memcpy(out + k, p, n);
        k += n;
        p += n;
    }
    *len = k;
    return 0;
}

static int parse_num(const char *v, long min, long max, int *out)
{
    if (v == NULL || *v == '\0')
        return SWOOP_EINVAL;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < min || n > max)
        return SWOOP_EINVAL;
    *out = (int)n;
    return 0;
}

static int parse_flag(const char *v, int *out)
{
    if (v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "on") == 0 ||
              strcasecmp(v, "yes") == 0)) {
        *out = 1;
        return 0;
    }
    if (v && (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "off") == 0 ||
              strcasecmp(v, "no") == 0)) {
        *out = 0;
        return 0;
    }
    return SWOOP_EINVAL;
}

/*
 * One entry of ssl_sni_certs: "host=cert:key". Fills the three parts (NUL-
 * terminated in the caller's buffers). Returns 0 or SWOOP_EINVAL.
 */
static int sni_entry_parse(const char *p, size_t n, char *host, char *cert, char *key)
{
    const char *eq = memchr(p, '=', n);
    const char *colon = eq ? memchr(eq, ':', n - (size_t)(eq - p)) : NULL;
    if (eq == NULL || colon == NULL || eq == p || colon == eq + 1 || colon + 1 >= p + n)
        return SWOOP_EINVAL;
    size_t hl = (size_t)(eq - p), cl = (size_t)(colon - eq - 1), kl = n - (size_t)(colon + 1 - p);
    if (hl >= 256 || cl >= SWOOP_TLS_PATH_MAX || kl >= SWOOP_TLS_PATH_MAX)
        return SWOOP_EINVAL;
    memcpy(host, p, hl);
    host[hl] = '\0';
    memcpy(cert, eq + 1, cl);
    cert[cl] = '\0';
    memcpy(key, colon + 1, kl);
    key[kl] = '\0';
    return 0;
}

/* Walks the ssl_sni_certs list: fn per entry; stops at the first negative return. */
static int sni_each(const char *list,
                    int (*fn)(void *arg, const char *host, const char *cert, const char *key),
                    void *arg)
{
    static _Thread_local char host[256], cert[SWOOP_TLS_PATH_MAX], key[SWOOP_TLS_PATH_MAX];
    int count = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n > 0) {
            if (sni_entry_parse(p, n, host, cert, key) < 0 || ++count > SNI_MAX)
                return SWOOP_EINVAL;
            int rc = fn ? fn(arg, host, cert, key) : 0;
            if (rc < 0)
                return rc;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return count;
}

static int set_str(char *field, size_t cap, const char *v)
{
    if (v == NULL || strlen(v) >= cap)
        return SWOOP_EINVAL;
    strcpy(field, v);
    return 0;
}

static int conf_apply(swoop_tls_conf_t *c, const char *key, const char *v)
{
    int lo, hi;
    unsigned char wire[256];
    size_t wl;
    if (strcmp(key, "ssl_cert_file") == 0)
        return set_str(c->cert_file, sizeof(c->cert_file), v);
    if (strcmp(key, "ssl_key_file") == 0)
        return set_str(c->key_file, sizeof(c->key_file), v);
    if (strcmp(key, "ssl_passphrase") == 0)
        return set_str(c->passphrase, sizeof(c->passphrase), v);
    if (strcmp(key, "ssl_ciphers") == 0)
        return set_str(c->ciphers, sizeof(c->ciphers), v);
    if (strcmp(key, "ssl_ciphersuites") == 0)
        return set_str(c->ciphersuites, sizeof(c->ciphersuites), v);
    if (strcmp(key, "ssl_protocols") == 0)
        return v == NULL || parse_protocols(v, &lo, &hi) < 0
                   ? SWOOP_EINVAL
                   : set_str(c->protocols, sizeof(c->protocols), v);
    if (strcmp(key, "ssl_alpn") == 0)
        return v == NULL || parse_alpn(v, wire, sizeof(wire), &wl) < 0
                   ? SWOOP_EINVAL
                   : set_str(c->alpn, sizeof(c->alpn), v);
    if (strcmp(key, "ssl_stapling_file") == 0)
        return set_str(c->stapling_file, sizeof(c->stapling_file), v);
    if (strcmp(key, "ssl_client_cert_file") == 0)
        return set_str(c->client_cert_file, sizeof(c->client_cert_file), v);
    if (strcmp(key, "ssl_sni_certs") == 0)
        return v == NULL || sni_each(v, NULL, NULL) < 0
                   ? SWOOP_EINVAL
                   : set_str(c->sni_certs, sizeof(c->sni_certs), v);
    if (strcmp(key, "ssl_verify_peer") == 0)
        return parse_flag(v, &c->verify_peer);
    if (strcmp(key, "ssl_verify_depth") == 0)
        return parse_num(v, 0, 100, &c->verify_depth);
    if (strcmp(key, "ssl_handshake_timeout") == 0)
        return parse_num(v, 0, 3600, &c->handshake_timeout);
    if (strcmp(key, "ssl_session_tickets") == 0)
        return parse_flag(v, &c->session_tickets);
    if (strcmp(key, "ssl_session_cache") == 0)
        return parse_num(v, 0, 1 << 24, &c->session_cache);
    return 1; /* not ours */
}

int swoop__tls_conf_set(swoop_tls_conf_t *c, const char *key, const char *value)
{
    if (strncmp(key, "ssl_", 4) != 0)
        return 0;
    int rc = conf_apply(c, key, value);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "bad value \"%s\" for setting \"%s\"",
                  value ? value : "(null)", key);
        return rc;
    }
    return 1;
}

/* ---- errors ---- */

/* The first error of the thread's OpenSSL queue as "library: reason"; the queue is emptied. */
static void err_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, cap, "no reason given by OpenSSL");
        return;
    }
    const char *lib = ERR_lib_error_string(e);
    const char *why = ERR_reason_error_string(e);
    if (ERR_GET_LIB(e) == ERR_LIB_SYS)
        why = strerror(ERR_GET_REASON(e));
    snprintf(buf, cap, "%s%s%s", lib ? lib : "", lib ? ": " : "", why ? why : "unknown error");
    ERR_clear_error();
}

/* ---- contexts ---- */

static int passwd_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pass = u;
    size_t n = pass ? strlen(pass) : 0;
    if (n == 0 || n >= (size_t)size)
        return 0; /* no passphrase: an encrypted key fails to load instead of asking a tty */
    memcpy(buf, pass, n);
    return (int)n;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    swoop_tls_ctx_t *t = arg;
    unsigned char *sel = NULL;
    unsigned char sel_len = 0;
    if (t->alpn_len == 0)
        return SSL_TLSEXT_ERR_NOACK; /* the port offers none: the client's list is ignored */
    /*
     * The server's order wins. No protocol in common: RFC 7301 section 3.2
     * says the server SHALL answer with a fatal no_application_protocol
     * alert (nginx does); going on would leave a client that offered only
     * "h2" talking HTTP/2 to an HTTP/1.1 port.
     */
    if (SSL_select_next_proto(&sel, &sel_len, t->alpn, (unsigned int)t->alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    *outlen = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    swoop_tls_ctx_t *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < t->nsni; i++) {
        if (strcasecmp(t->sni[i].host, name) == 0) {
            SSL_set_SSL_CTX(ssl, t->sni[i].ctx);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK; /* the default certificate */
}

/* Logs the failure of one step naming the setting and file, with OpenSSL's reason. */
static int ctx_fail(const char *where, const char *setting, const char *file, const char *what)
{
    char why[256];
    err_reason(why, sizeof(why));
    if (file)
        swoop_log(SWOOP_LOG_ERROR, SWOOP_ETLS, "%s%s \"%s\": %s: %s", where, setting, file, what,
                  why);
    else
        swoop_log(SWOOP_LOG_ERROR, SWOOP_ETLS, "%s%s: %s: %s", where, setting, what, why);
    return SWOOP_ETLS;
}

/* A warning at start for a certificate past its notAfter: clients will refuse it. */
static void warn_expired(SSL_CTX *ctx, const char *where, const char *file)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (x && X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "%sssl_cert_file \"%s\": the certificate has expired: clients will refuse it",
                  where, file);
}

/* The certificate and key of one context (the port's, or an SNI host's). */
static int ctx_load_cert(SSL_CTX *ctx, const swoop_tls_conf_t *c, const char *cert, const char *key,
                         const char *where)
{
    SSL_CTX_set_default_passwd_cb(ctx, passwd_cb);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)c->passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return ctx_fail(where, "ssl_cert_file", cert, "cannot load the certificate chain");
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            return ctx_fail(where, "ssl_key_file", key, "does not match ssl_cert_file");
        return ctx_fail(where, "ssl_key_file", key,
                        c->passphrase[0] ? "cannot load the private key (wrong ssl_passphrase?)"
                                         : "cannot load the private key (encrypted without "
                                           "ssl_passphrase?)");
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        return ctx_fail(where, "ssl_key_file", key, "does not match ssl_cert_file");
    /* Nothing else may be read from the passphrase after start. */
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    warn_expired(ctx, where, cert);
    return 0;
}

/* Everything but the certificate: protocols, ciphers, verification, sessions, callbacks. */
static int ctx_configure(SSL_CTX *ctx, swoop_tls_ctx_t *t, const swoop_tls_conf_t *c,
                         const char *where)
{
    int lo, hi;
    if (parse_protocols(c->protocols, &lo, &hi) < 0) {
        swoop_log(SWOOP_LOG_ERROR, 0, "%sssl_protocols \"%s\": no TLS version named", where,
                  c->protocols);
        return SWOOP_EINVAL;
    }
    if (SSL_CTX_set_min_proto_version(ctx, lo) != 1 || SSL_CTX_set_max_proto_version(ctx, hi) != 1)
        return ctx_fail(where, "ssl_protocols", c->protocols, "refused");
    /* A TLS 1.3-only port needs no TLS 1.2 list; a bad one still fails the start. */
    if (c->ciphers[0] && SSL_CTX_set_cipher_list(ctx, c->ciphers) != 1)
        return ctx_fail(where, "ssl_ciphers", c->ciphers, "no usable cipher");
    /* TLS 1.3's suites are a separate list in OpenSSL; "" keeps its default (all three AEADs). */
    if (c->ciphersuites[0] && SSL_CTX_set_ciphersuites(ctx, c->ciphersuites) != 1)
        return ctx_fail(where, "ssl_ciphersuites", c->ciphersuites, "no usable TLS 1.3 suite");
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                                 (c->session_tickets ? 0 : SSL_OP_NO_TICKET));
    /*
     * Partial writes: a write takes what the socket takes. Moving buffer: a
     * write retried after WANT_WRITE comes from the connection's output
     * buffer, which may have moved (realloc) meanwhile.
     */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char sid_ctx[] = "swoop";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (c->session_cache > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, c->session_cache);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if (c->client_cert_file[0]) {
        if (SSL_CTX_load_verify_locations(ctx, c->client_cert_file, NULL) != 1)
            return ctx_fail(where, "ssl_client_cert_file", c->client_cert_file,
                            "cannot load the client CA certificates");
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->client_cert_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
    }
    if (c->verify_peer) {
        if (c->client_cert_file[0] == '\0') {
            swoop_log(SWOOP_LOG_ERROR, 0,
                      "%sssl_verify_peer is set without ssl_client_cert_file (the CAs clients' "
                      "certificates must come from)",
                      where);
            return SWOOP_EINVAL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_verify_depth(ctx, c->verify_depth);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, t);
    return 0;
}

static SSL_CTX *ctx_make(const char *where)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        ctx_fail(where, "TLS", NULL, "SSL_CTX_new failed");
    return ctx;
}

typedef struct sni_build_s {
    swoop_tls_ctx_t *t;
    const swoop_tls_conf_t *conf;
    const char *where;
} sni_build_t;

static int sni_add(void *arg, const char *host, const char *cert, const char *key)
{
    sni_build_t *b = arg;
    char where[512];
    snprintf(where, sizeof(where), "%sssl_sni_certs (%s): ", b->where, host);
    SSL_CTX *ctx = ctx_make(where);
    if (ctx == NULL)
        return SWOOP_ETLS;
    int rc = ctx_configure(ctx, b->t, b->conf, where);
    if (rc == 0)
        rc = ctx_load_cert(ctx, b->conf, cert, key, where);
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    sni_entry_t *e = &b->t->sni[b->t->nsni++];
    snprintf(e->host, sizeof(e->host), "%s", host);
    e->ctx = ctx;
    return 0;
}

/* A client asked for the certificate's status: staple the response of ssl_stapling_file. */
static int status_cb(SSL *ssl, void *arg)
{
    swoop_tls_ctx_t *t = arg;
    if (t->ocsp_len == 0)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_malloc(t->ocsp_len); /* OpenSSL frees it with the SSL */
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, t->ocsp, t->ocsp_len);
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)t->ocsp_len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

/*
 * ssl_stapling_file (nginx's name): an OCSP response for the port's
 * certificate, fetched by the operator's tooling (`openssl ocsp ...
 * -respout`) and read again at every certificate reload. It must parse
 * and say "successful"; past its nextUpdate it is still stapled (clients
 * decide) but a warning says so, as for an expired certificate.
 */
static int load_stapling(swoop_tls_ctx_t *t, const char *file, const char *where)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "%sssl_stapling_file \"%s\": cannot open it", where, file);
        return SWOOP_EINVAL;
    }
    unsigned char *buf = swoop_malloc(65536);
    size_t n = fread(buf, 1, 65536, f);
    int too_big = n == 65536 && fgetc(f) != EOF;
    fclose(f);
    const unsigned char *p = buf;
    OCSP_RESPONSE *resp = n > 0 && !too_big ? d2i_OCSP_RESPONSE(NULL, &p, (long)n) : NULL;
    if (resp == NULL || OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        OCSP_RESPONSE_free(resp);
        swoop_free(buf);
        return ctx_fail(where, "ssl_stapling_file", file,
                        too_big ? "larger than 64 KiB"
                                : "not a successful OCSP response (DER, as openssl ocsp -respout "
                                  "writes it)");
    }
    OCSP_BASICRESP *basic = OCSP_response_get1_basic(resp);
    OCSP_SINGLERESP *single = basic ? OCSP_resp_get0(basic, 0) : NULL;
    ASN1_GENERALIZEDTIME *next = NULL;
    if (single)
        OCSP_single_get0_status(single, NULL, NULL, NULL, &next);
    if (next && X509_cmp_current_time(next) < 0)
        swoop_log(SWOOP_LOG_WARNING, 0,
                  "%sssl_stapling_file \"%s\": the response is past its nextUpdate: clients may "
                  "refuse it",
                  where, file);
    OCSP_BASICRESP_free(basic);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    t->ocsp = swoop_realloc(buf, n);
    t->ocsp_len = n;
    SSL_CTX_set_tlsext_status_cb(t->ctx, status_cb);
    SSL_CTX_set_tlsext_status_arg(t->ctx, t);
    return 0;
}

int swoop__tls_ctx_new(swoop_tls_ctx_t **out, const swoop_tls_conf_t *c, const char *where)
{
    *out = NULL;
    if (c->cert_file[0] == '\0' || c->key_file[0] == '\0') {
        swoop_log(SWOOP_LOG_ERROR, 0, "%sSWOOP_SSL needs ssl_cert_file and ssl_key_file (%s)",
                  where, c->cert_file[0] ? "ssl_key_file is not set" : "ssl_cert_file is not set");
        return SWOOP_EINVAL;
    }
    ERR_clear_error();
    swoop_tls_ctx_t *t = swoop_calloc(1, sizeof(*t));
    atomic_init(&t->refs, 1);
    t->handshake_timeout = c->handshake_timeout > 0 ? c->handshake_timeout : 0;
    int rc = parse_alpn(c->alpn, t->alpn, sizeof(t->alpn), &t->alpn_len);
    if (rc < 0) {
        swoop_log(SWOOP_LOG_ERROR, 0, "%sssl_alpn \"%s\" is not a list of names", where, c->alpn);
        swoop__tls_ctx_release(t);
        return rc;
    }
    t->ctx = ctx_make(where);
    if (t->ctx == NULL) {
        swoop__tls_ctx_release(t);
        return SWOOP_ETLS;
    }
    rc = ctx_configure(t->ctx, t, c, where);
    if (rc == 0)
        rc = ctx_load_cert(t->ctx, c, c->cert_file, c->key_file, where);
    if (rc == 0 && c->stapling_file[0])
        rc = load_stapling(t, c->stapling_file, where);
    if (rc == 0 && c->sni_certs[0]) {
        t->sni = swoop_calloc(SNI_MAX, sizeof(*t->sni));
        sni_build_t b = {t, c, where};
        rc = sni_each(c->sni_certs, sni_add, &b);
        if (rc == SWOOP_EINVAL)
            swoop_log(SWOOP_LOG_ERROR, 0,
                      "%sssl_sni_certs: not a list of host=cert:key (at most %d)", where, SNI_MAX);
        if (rc >= 0) {
            SSL_CTX_set_tlsext_servername_callback(t->ctx, sni_cb);
            SSL_CTX_set_tlsext_servername_arg(t->ctx, t);
            rc = 0;
        }
    }
    if (rc < 0) {
        swoop__tls_ctx_release(t);
        return rc;
    }
    *out = t;
    return 0;
}

void swoop__tls_ctx_retire(swoop_tls_ctx_t *t, const char *label)
{
    if (t == NULL)
        return;
    snprintf(t->retired, sizeof(t->retired), "%s", label);
    swoop__tls_ctx_release(t);
}

void swoop__tls_ctx_release(swoop_tls_ctx_t *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (t->retired[0])
        swoop_log(SWOOP_LOG_NOTICE, 0,
                  "certificate reload: %s: the replaced certificate's last connection ended, "
                  "its context is freed",
                  t->retired);
    for (size_t i = 0; i < t->nsni; i++)
        SSL_CTX_free(t->sni[i].ctx);
    swoop_free(t->sni);
    swoop_free(t->ocsp);
    SSL_CTX_free(t->ctx);
    swoop_free(t);
}

int swoop__tls_ctx_keep_tickets(swoop_tls_ctx_t *t, const swoop_tls_ctx_t *old)
{
    unsigned char keys[80]; /* name, HMAC and AES keys, as OpenSSL 3 lays them out */
    if (SSL_CTX_get_tlsext_ticket_keys(old->ctx, keys, sizeof(keys)) != 1 ||
        SSL_CTX_set_tlsext_ticket_keys(t->ctx, keys, sizeof(keys)) != 1) {
        ERR_clear_error();
        return SWOOP_ETLS;
    }
    return 0;
}

int swoop__tls_handshake_timeout(const swoop_tls_t *t)
{
    return t && t->from ? t->from->handshake_timeout : 0;
}

/* ---- connections ---- */

swoop_tls_t *swoop__tls_new(swoop_tls_ctx_t *ctx, int fd)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        char why[160];
        err_reason(why, sizeof(why));
        swoop_log(SWOOP_LOG_ERROR, SWOOP_ENOMEM, "TLS state for fd %d: %s", fd, why);
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    swoop_tls_t *t = swoop_calloc(1, sizeof(*t));
    t->ssl = ssl;
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    t->from = ctx;
    return t;
}

void swoop__tls_free(swoop_tls_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    swoop__tls_ctx_release(t->from);
    swoop_free(t);
}

/* Maps a failed OpenSSL call's result: SWOOP_EAGAIN with *want, 0 (clean end), or an error. */
static int io_result(swoop_tls_t *t, int ret, int *want)
{
    int saved = errno;
    int e = SSL_get_error(t->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = SWOOP_TLS_WANT_READ;
        return SWOOP_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = SWOOP_TLS_WANT_WRITE;
        return SWOOP_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        t->failed = 1;
        if (ERR_peek_error() != 0) {
            err_reason(t->reason, sizeof(t->reason));
            return SWOOP_ETLS;
        }
        return saved != 0 ? -saved : 0; /* 0: an EOF (OpenSSL reports it so here) */
    default:
        t->failed = 1;
        err_reason(t->reason, sizeof(t->reason));
        return SWOOP_ETLS;
    }
}

int swoop__tls_handshake(swoop_tls_t *t)
{
    if (t->failed)
        return SWOOP_ETLS;
    ERR_clear_error();
    errno = 0;
    int ret = SSL_do_handshake(t->ssl);
    if (ret == 1)
        return 0;
    int want = 0;
    int rc = io_result(t, ret, &want);
    if (rc == SWOOP_EAGAIN)
        return want;
    if (rc == 0) {
        t->failed = 1;
        return SWOOP_EOF;
    }
    return rc;
}

ssize_t swoop__tls_read(swoop_tls_t *t, void *buf, size_t len, int *want)
{
    if (t->failed)
        return SWOOP_ETLS;
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    int ret = SSL_read_ex(t->ssl, buf, len, &n);
    if (ret == 1)
        return (ssize_t)n;
    return io_result(t, ret, want);
}

ssize_t swoop__tls_write(swoop_tls_t *t, const void *buf, size_t len, int *want)
{
    if (t->failed)
        return SWOOP_ETLS;
    ERR_clear_error();
    errno = 0;
    size_t n = 0;
    int ret = SSL_write_ex(t->ssl, buf, len, &n);
    if (ret == 1)
        return (ssize_t)n;
    int rc = io_result(t, ret, want);
    return rc == 0 ? -EPIPE : rc;
}

int swoop__tls_pending(const swoop_tls_t *t)
{
    return t && !t->failed && SSL_has_pending(t->ssl);
}

void swoop__tls_close_notify(swoop_tls_t *t)
{
    if (t == NULL || t->failed || !SSL_is_init_finished(t->ssl))
        return;
    ERR_clear_error();
    /* One try: a socket that takes nothing more gets the FIN alone. */
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    t->failed = 1; /* no I/O after it */
}

const char *swoop__tls_reason(const swoop_tls_t *t)
{
    return t ? t->reason : "";
}

size_t swoop__tls_alpn(const swoop_tls_t *t, char *buf, size_t cap)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (cap == 0)
        return 0;
    size_t k = n < cap - 1 ? n : cap - 1;
    if (p)
        memcpy(buf, p, k);
    buf[p ? k : 0] = '\0';
    return p ? k : 0;
}

const char *swoop__tls_version(const swoop_tls_t *t)
{
    return SSL_get_version(t->ssl);
}

size_t swoop__tls_peer_subject(const swoop_tls_t *t, char *buf, size_t cap)
{
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (x == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK)
        return 0;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return 0;
    X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    int n = BIO_read(bio, buf, (int)(cap - 1 < INT_MAX ? cap - 1 : INT_MAX));
    BIO_free(bio);
    ERR_clear_error();
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

int swoop__tls_resumed(const swoop_tls_t *t)
{
    return SSL_session_reused(t->ssl);
}
