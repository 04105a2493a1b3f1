/*
 * tls.h - OpenSSL 3 contexts for every component: TLS 1.2 minimum, 1.3
 * preferred, ALPN "http/1.1", SNI ready, modern AEAD ciphers only.
 */
#ifndef TANDEM_TLS_H
#define TANDEM_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/*
 * Server context from PEM files. client_ca: when not NULL, peers must present
 * a certificate from that CA (mutual TLS). Returns NULL with a one-line
 * reason in err on failure.
 */
SSL_CTX *tls_server_new(const char *cert, const char *key, const char *client_ca, char *err,
			size_t errcap);
/*
 * Client context verifying servers against ca_file (NULL: system default
 * store). cert/key: optional client certificate. NULL with a reason in err.
 */
SSL_CTX *tls_client_new(const char *ca_file, const char *cert, const char *key, char *err,
			size_t errcap);
/* ALPN on a server context: offer "h2" before "http/1.1" (the server's
 * order wins). The caller then runs HTTP/2 on connections that chose it
 * (http_server_config.http2). Cannot fail. */
void tls_server_offer_h2(SSL_CTX *ctx);
/* The last OpenSSL error as text (thread-local queue), for messages. */
const char *tls_last_error(char *out, size_t cap);

#endif
