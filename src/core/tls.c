/* tls.c - OpenSSL context setup shared by every component; see tls.h. */
#include "core/tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

static const unsigned char alpn_http11[] = "\x08http/1.1";
/* h2 first: the server's order decides (SSL_select_next_proto) */
static const unsigned char alpn_h2_http11[] = "\x02h2\x08http/1.1";

const char *tls_last_error(char *out, size_t cap)
{
	unsigned long e = ERR_get_error();
	if (e == 0)
		snprintf(out, cap, "unknown TLS error");
	else
		ERR_error_string_n(e, out, cap);
	ERR_clear_error();
	return out;
}

/* ALPN: we speak HTTP/1.1 only; a client offering only other protocols is
 * answered without ALPN (it may still speak HTTP/1.1). */
static int tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			   const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;
	if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof alpn_http11 - 1, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED) {
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* ALPN for a server that also speaks HTTP/2 (tls_server_offer_h2). */
static int tls_alpn_select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			      const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;
	if (SSL_select_next_proto(&sel, outlen, alpn_h2_http11, sizeof alpn_h2_http11 - 1, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED) {
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

void tls_server_offer_h2(SSL_CTX *ctx)
{
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select_h2, NULL);
}

/* SNI: one certificate per process by default; the callback is where a name ->
 * certificate map goes (the edge will serve several names). Unknown names are
 * served the default certificate, as most servers do. */
static int tls_servername(SSL *ssl, int *alert, void *arg)
{
	return SSL_TLSEXT_ERR_OK;
}

static int tls_common(SSL_CTX *ctx)
{
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		return -1;
	/* TLS 1.2: forward-secret AEAD suites only. TLS 1.3 defaults are fine. */
	if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20"))
		return -1;
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE);
	return 0;
}

SSL_CTX *tls_server_new(const char *cert, const char *key, const char *client_ca, char *err,
			size_t errcap)
{
	char reason[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || tls_common(ctx) != 0) {
		snprintf(err, errcap, "cannot create TLS context: %s",
			 tls_last_error(reason, sizeof reason));
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errcap, "%s: cannot load certificate: %s", cert,
			 tls_last_error(reason, sizeof reason));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errcap, "%s: cannot load private key: %s", key,
			 tls_last_error(reason, sizeof reason));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errcap, "%s does not match %s", key, cert);
		goto fail;
	}
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select, NULL);
	SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (client_ca) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
		if (!names || SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
			snprintf(err, errcap, "%s: cannot load CA: %s", client_ca,
				 tls_last_error(reason, sizeof reason));
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		static const unsigned char sid[] = "tandem-mtls";
		SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_new(const char *ca_file, const char *cert, const char *key, char *err,
			size_t errcap)
{
	char reason[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || tls_common(ctx) != 0) {
		snprintf(err, errcap, "cannot create TLS context: %s",
			 tls_last_error(reason, sizeof reason));
		goto fail;
	}
	int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
			 : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		snprintf(err, errcap, "%s: cannot load CA: %s", ca_file ? ca_file : "(system)",
			 tls_last_error(reason, sizeof reason));
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof alpn_http11 - 1) != 0) {
		snprintf(err, errcap, "cannot set ALPN");
		goto fail;
	}
	if (cert && key) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
			snprintf(err, errcap, "%s: cannot load client certificate: %s", cert,
				 tls_last_error(reason, sizeof reason));
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
