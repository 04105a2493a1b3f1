/*
 * sni.h - the edge's certificates, chosen by the name the client asks for
 * (TLS SNI, RFC 6066) during the handshake.
 *
 * Contract: an edge_sni owns every SSL_CTX it holds (the default one given
 * to edge_sni_new and one per edge_sni_add) and frees them in
 * edge_sni_free. The default context is the one the listener is built with
 * (http_server_config.ssl_ctx); its servername callback switches the
 * connection to the context picked by edge_sni_pick:
 *
 *   1. a name equal to the requested one (case-insensitive);
 *   2. else a wildcard "*.example.com" whose suffix equals the requested
 *      name minus its first label ("a.example.com" matches, "example.com"
 *      and "b.a.example.com" do not: one label deep, RFC 6125 6.4.3);
 *   3. else the default (no SNI, an IP address, an unknown name).
 *
 * Names are kept lowercase; at most EDGE_SNI_MAX of them. Contexts are
 * read-only once the listener runs (the loop thread only).
 */
#ifndef TANDEM_EDGE_SNI_H
#define TANDEM_EDGE_SNI_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#define EDGE_SNI_MAX 16
#define EDGE_SNI_NAME_MAX 253

typedef struct edge_sni edge_sni;

/* Takes default_ctx (freed with the edge_sni, even when this fails) and
 * sets its servername callback. NULL on allocation failure. */
edge_sni *edge_sni_new(SSL_CTX *default_ctx);
/* Free every context; no-op on NULL; resets *s. */
void edge_sni_free(edge_sni **s);
/* Is name an acceptable certificate name: a host name of letters, digits,
 * '-' and '.', or "*." and such a name (at least two labels after it). */
bool edge_sni_name_valid(const char *name);
/* Serve ctx (taken: freed with the edge_sni, even on failure) to clients
 * asking for name. 0, ERR_INVAL for a bad name, ERR_EXISTS for a name
 * already added, ERR_LIMIT past EDGE_SNI_MAX. */
int edge_sni_add(edge_sni *s, const char *name, SSL_CTX *ctx);
/* The context for a requested server name (NULL: none sent). Never NULL. */
SSL_CTX *edge_sni_pick(const edge_sni *s, const char *servername);
SSL_CTX *edge_sni_default(const edge_sni *s);
/* Apply fn to every context (the default included): ALPN set-up, say. */
void edge_sni_each(edge_sni *s, void (*fn)(SSL_CTX *ctx));

#endif
