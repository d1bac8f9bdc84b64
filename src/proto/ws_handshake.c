/* The WebSocket opening handshake's pure parts: see ws_handshake.h. */
#include "proto/ws_handshake.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

static int b64_char(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/';
}

int swoop__ws_key_valid(const char *key, size_t len)
{
    /* 16 bytes: 21 full characters, a 22nd that carries only 2 bits, then "==". */
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (int i = 0; i < 22; i++) {
        if (!b64_char((unsigned char)key[i]))
            return 0;
    }
    return strchr("AQgw", key[21]) != NULL; /* the low 4 bits of the last one are zero */
}

void swoop__ws_accept(const char *key, size_t len, char out[SWOOP_WS_ACCEPT_LEN + 1])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* RFC 6455 1.3 */
    unsigned char in[64 + sizeof(guid)], md[EVP_MAX_MD_SIZE];
    if (len > 64)
        len = 64;
    memcpy(in, key, len);
    memcpy(in + len, guid, sizeof(guid) - 1);
    unsigned int mdlen = 0;
    EVP_Digest(in, len + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen); /* 20 bytes: 28 characters + NUL */
}

int swoop__ws_token_has(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token), i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0)
            return 1;
    }
    return 0;
}
