/*
 * TLS over a nonblocking stream socket, with OpenSSL 3 (DESIGN.md section
 * 8): a context built from a port's TLS settings at start (certificate,
 * key, protocols, ciphers, ALPN, SNI certificates, client verification,
 * session resumption), and per connection a nonblocking handshake step and
 * read/write wrappers that speak in swoop's error codes. The connection
 * owner (src/server/conn.c) drives them; everything above it stays
 * plaintext. Internal (L2).
 *
 * Error reporting: every function that fails because of OpenSSL drains the
 * calling thread's OpenSSL error queue into the reason it returns or logs,
 * so a later call never sees a stale error.
 */
#ifndef SWOOP_NET_TLS_H
#define SWOOP_NET_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* Longest path in a TLS setting, including the NUL. */
#define SWOOP_TLS_PATH_MAX 1024

/*
 * The TLS settings of a port, or the server's defaults. Kept out of the
 * public settings structs (their ABI holds): set by name with
 * swoop_server_set / swoop_port_set. A port's "" string or -1 number takes
 * the server's value at start.
 */
typedef struct swoop_tls_conf_s {
    char cert_file[SWOOP_TLS_PATH_MAX];        /* ssl_cert_file: PEM chain, leaf first */
    char key_file[SWOOP_TLS_PATH_MAX];         /* ssl_key_file: PEM private key */
    char passphrase[256];                      /* ssl_passphrase: of an encrypted key */
    char ciphers[1024];                        /* ssl_ciphers: TLS 1.2 cipher list */
    char ciphersuites[256];                    /* ssl_ciphersuites: TLS 1.3 suites, "" OpenSSL's */
    char protocols[128];                       /* ssl_protocols: "TLSv1.2 TLSv1.3" */
    char alpn[256];                            /* ssl_alpn: "http/1.1,h2" by preference */
    char client_cert_file[SWOOP_TLS_PATH_MAX]; /* ssl_client_cert_file: CAs for clients */
    char sni_certs[4096];                      /* ssl_sni_certs: "host=cert:key,..." */
    char stapling_file[SWOOP_TLS_PATH_MAX];    /* ssl_stapling_file: a DER OCSP response */
    int verify_peer;                           /* ssl_verify_peer: require a client cert */
    int verify_depth;                          /* ssl_verify_depth */
    int handshake_timeout;                     /* ssl_handshake_timeout: seconds */
    int session_tickets;                       /* ssl_session_tickets: 0/1 */
    int session_cache;                         /* ssl_session_cache: sessions kept, 0 off */
} swoop_tls_conf_t;

/* Fills `c` with inherit values ("" and -1). */
void swoop__tls_conf_inherit(swoop_tls_conf_t *c);

/* Fills `c` with the server-wide defaults (docs/api/tls.md). */
void swoop__tls_conf_defaults(swoop_tls_conf_t *c);

/* `c` with every inherit value taken from `d` (the server's). */
void swoop__tls_conf_resolve(swoop_tls_conf_t *c, const swoop_tls_conf_t *d);

/*
 * Sets one TLS setting by name (the names above). Returns 1 when `key` is
 * a TLS setting and was set, 0 when it is not one, SWOOP_EINVAL for a bad
 * value (logged, naming the key).
 */
int swoop__tls_conf_set(swoop_tls_conf_t *c, const char *key, const char *value);

/* A context: what every connection of a port shares (opaque). */
typedef struct swoop_tls_ctx_s swoop_tls_ctx_t;

/*
 * Builds a context from resolved settings. On a failure logs one line
 * beginning with `where` that names the setting, the file and OpenSSL's
 * reason, and returns SWOOP_EINVAL (a bad value) or SWOOP_ETLS.
 */
int swoop__tls_ctx_new(swoop_tls_ctx_t **out, const swoop_tls_conf_t *conf, const char *where);

/*
 * Drops a reference (NULL is ignored); the last one frees the context. The
 * maker holds one; every connection made from it holds one until
 * swoop__tls_free, so a context a certificate reload replaced lives exactly
 * as long as the connections still using it. Thread-safe.
 */
void swoop__tls_ctx_release(swoop_tls_ctx_t *ctx);

/*
 * swoop__tls_ctx_release for a context a reload replaced: when its last
 * connection ends, one NOTICE line says so, naming `label` (the port).
 */
void swoop__tls_ctx_retire(swoop_tls_ctx_t *ctx, const char *label);

/*
 * A context replacing `old` (a certificate reload) takes its session ticket
 * keys, so the tickets issued before still resume. 0 or SWOOP_ETLS.
 */
int swoop__tls_ctx_keep_tickets(swoop_tls_ctx_t *ctx, const swoop_tls_ctx_t *old);

/* One connection's TLS state (opaque). */
typedef struct swoop_tls_s swoop_tls_t;

/* The handshake timeout of the settings of the context `t` was made from, seconds (0: none). */
int swoop__tls_handshake_timeout(const swoop_tls_t *t);

/*
 * A server-side TLS state on `fd`, or NULL without memory (logged). It takes
 * a reference to `ctx`: the caller must hold one (or a lock that keeps the
 * one it read alive) across the call.
 */
swoop_tls_t *swoop__tls_new(swoop_tls_ctx_t *ctx, int fd);

/* Frees it (the fd is the caller's). NULL is ignored. */
void swoop__tls_free(swoop_tls_t *t);

/* What a nonblocking step waits for (positive, beside 0 and the negative errors). */
#define SWOOP_TLS_WANT_READ  1
#define SWOOP_TLS_WANT_WRITE 2

/*
 * One step of the handshake: 0 done, SWOOP_TLS_WANT_READ / _WRITE, or a
 * negative error (the peer closed: SWOOP_EOF; a protocol failure:
 * SWOOP_ETLS, its reason in swoop__tls_reason; -errno of the socket).
 */
int swoop__tls_handshake(swoop_tls_t *t);

/*
 * Reads plaintext: > 0 bytes, 0 at the peer's end (close_notify or a bare
 * EOF), SWOOP_EAGAIN when the socket has nothing (*want tells for what),
 * or a negative error as above.
 */
ssize_t swoop__tls_read(swoop_tls_t *t, void *buf, size_t len, int *want);

/*
 * Writes plaintext (partial writes allowed): > 0 bytes taken, SWOOP_EAGAIN
 * (*want tells for what; the next call must offer at least the same bytes
 * again, at any address), or a negative error.
 */
ssize_t swoop__tls_write(swoop_tls_t *t, const void *buf, size_t len, int *want);

/* Whether decrypted bytes wait inside OpenSSL (epoll cannot see them). */
int swoop__tls_pending(const swoop_tls_t *t);

/* Sends close_notify if it can without blocking (a best effort before the FIN). */
void swoop__tls_close_notify(swoop_tls_t *t);

/* The reason of the last SWOOP_ETLS on this state ("" if none). */
const char *swoop__tls_reason(const swoop_tls_t *t);

/* The negotiated ALPN protocol into buf (cap bytes): its length, 0 when none. */
size_t swoop__tls_alpn(const swoop_tls_t *t, char *buf, size_t cap);

/* The negotiated protocol version ("TLSv1.3"). */
const char *swoop__tls_version(const swoop_tls_t *t);

/*
 * The verified client certificate's subject (RFC 2253) into buf (cap
 * bytes, NUL-terminated): its length, 0 when the client sent none.
 */
size_t swoop__tls_peer_subject(const swoop_tls_t *t, char *buf, size_t cap);

/* Whether the handshake resumed a session. */
int swoop__tls_resumed(const swoop_tls_t *t);

#endif /* SWOOP_NET_TLS_H */
