/*
 * test_edgesni.c - tests for src/edge/sni.c: the matching rules (exact
 * first, wildcard one label deep, else the default), the bounds of
 * edge_sni_add, and real handshakes in memory (BIO pairs) showing the
 * servername callback serves the picked certificate. The certificates are
 * made at test time by the repo's own CA code (core/certs.h).
 */
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/certs.h"
#include "core/err.h"
#include "core/tls.h"
#include "edge/sni.h"
#include "test.h"

static char root[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void make_certs(void)
{
	snprintf(root, sizeof root, "/tmp/test_edgesni.XXXXXX");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		exit(1);
	}
	static const char *const names[] = {"def", "app", "wild", "wild2"};
	static const char *const sans[] = {NULL, "DNS:app.example.test", "DNS:*.wild.test", "DNS:*.example.test"};
	char err[256];
	if (certs_ensure_sans(root, names, sans, 4, err, sizeof err) != 0) {
		fprintf(stderr, "certs: %s\n", err);
		exit(1);
	}
}

static SSL_CTX *ctx_of(const char *name)
{
	char cert[300], key[300], err[256];
	snprintf(cert, sizeof cert, "%s/%s.pem", root, name);
	snprintf(key, sizeof key, "%s/%s.key", root, name);
	SSL_CTX *ctx = tls_server_new(cert, key, NULL, err, sizeof err);
	if (!ctx) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	return ctx;
}

/* def by default; app.example.test; *.wild.test; *.example.test */
static edge_sni *sni_of_four(SSL_CTX **def, SSL_CTX **app, SSL_CTX **wild, SSL_CTX **wild2)
{
	*def = ctx_of("def");
	*app = ctx_of("app");
	*wild = ctx_of("wild");
	*wild2 = ctx_of("wild2");
	edge_sni *s = edge_sni_new(*def);
	CHECK(s != NULL);
	/* the wildcard over app's domain first: exact names win whatever the order */
	CHECK_EQ_INT(edge_sni_add(s, "*.example.test", *wild2), 0);
	CHECK_EQ_INT(edge_sni_add(s, "App.Example.Test", *app), 0);
	CHECK_EQ_INT(edge_sni_add(s, "*.wild.test", *wild), 0);
	return s;
}

static void test_matching_rules(void)
{
	SSL_CTX *def, *app, *wild, *wild2;
	edge_sni *s = sni_of_four(&def, &app, &wild, &wild2);
	CHECK(edge_sni_default(s) == def);
	CHECK(edge_sni_pick(s, "app.example.test") == app);   /* exact, before *.example.test */
	CHECK(edge_sni_pick(s, "APP.example.TEST") == app);   /* case-insensitive */
	CHECK(edge_sni_pick(s, "other.example.test") == wild2);
	CHECK(edge_sni_pick(s, "a.wild.test") == wild);
	CHECK(edge_sni_pick(s, "b.a.wild.test") == def);      /* one label deep only */
	CHECK(edge_sni_pick(s, "wild.test") == def);          /* the bare domain is not covered */
	CHECK(edge_sni_pick(s, ".wild.test") == def);         /* an empty first label */
	CHECK(edge_sni_pick(s, "unknown.test") == def);
	CHECK(edge_sni_pick(s, NULL) == def);                 /* no SNI */
	CHECK(edge_sni_pick(s, "") == def);
	char longname[400];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK(edge_sni_pick(s, longname) == def);
	edge_sni_free(&s);
	CHECK(s == NULL);
	edge_sni_free(&s); /* no-op on NULL */
}

static void test_names_and_bounds(void)
{
	CHECK(edge_sni_name_valid("app.example.test"));
	CHECK(edge_sni_name_valid("localhost"));
	CHECK(edge_sni_name_valid("*.example.test"));
	CHECK(!edge_sni_name_valid("*.test"));        /* a wildcard needs two labels after it */
	CHECK(!edge_sni_name_valid("*"));
	CHECK(!edge_sni_name_valid("a.*.test"));
	CHECK(!edge_sni_name_valid("bad_name"));
	CHECK(!edge_sni_name_valid("a..b"));
	CHECK(!edge_sni_name_valid(".a.b"));
	CHECK(!edge_sni_name_valid(""));
	char label[80];
	memset(label, 'x', 64);
	strcpy(label + 64, ".test");
	CHECK(!edge_sni_name_valid(label)); /* a label over 63 */

	edge_sni *s = edge_sni_new(ctx_of("def"));
	CHECK_EQ_INT(edge_sni_add(s, "bad name", ctx_of("app")), ERR_INVAL);
	CHECK_EQ_INT(edge_sni_add(s, "h0.test", ctx_of("app")), 0);
	CHECK_EQ_INT(edge_sni_add(s, "H0.TEST", ctx_of("app")), ERR_EXISTS);
	for (int i = 1; i < EDGE_SNI_MAX; i++) {
		char name[32];
		snprintf(name, sizeof name, "h%d.test", i);
		CHECK_EQ_INT(edge_sni_add(s, name, ctx_of("app")), 0);
	}
	CHECK_EQ_INT(edge_sni_add(s, "one-more.test", ctx_of("app")), ERR_LIMIT);
	edge_sni_free(&s); /* every context freed (the sanitizer build checks the leaks) */
}

/* A TLS handshake in memory with servername; the subject CN served. */
static void handshake_cn(SSL_CTX *server_ctx, const char *servername, char *cn, size_t cap)
{
	cn[0] = '\0';
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *client = SSL_new(cctx), *server = SSL_new(server_ctx);
	BIO *cb, *sb;
	BIO_new_bio_pair(&cb, 0, &sb, 0);
	SSL_set_bio(client, cb, cb);
	SSL_set_bio(server, sb, sb);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	if (servername)
		SSL_set_tlsext_host_name(client, servername);
	int crc = 0, src = 0;
	for (int i = 0; i < 20 && (crc != 1 || src != 1); i++) {
		if (crc != 1)
			crc = SSL_do_handshake(client);
		if (src != 1)
			src = SSL_do_handshake(server);
	}
	CHECK_EQ_INT(crc, 1);
	CHECK_EQ_INT(src, 1);
	X509 *peer = SSL_get1_peer_certificate(client);
	CHECK(peer != NULL);
	if (peer) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, (int)cap);
		X509_free(peer);
	}
	SSL_free(client);
	SSL_free(server);
	SSL_CTX_free(cctx);
}

static void test_handshakes_serve_the_picked_certificate(void)
{
	SSL_CTX *def, *app, *wild, *wild2;
	edge_sni *s = sni_of_four(&def, &app, &wild, &wild2);
	edge_sni_each(s, tls_server_offer_h2);
	char cn[64];
	handshake_cn(edge_sni_default(s), "app.example.test", cn, sizeof cn);
	CHECK_EQ_STR(cn, "app");
	handshake_cn(edge_sni_default(s), "x.wild.test", cn, sizeof cn);
	CHECK_EQ_STR(cn, "wild");
	handshake_cn(edge_sni_default(s), "y.example.test", cn, sizeof cn);
	CHECK_EQ_STR(cn, "wild2");
	handshake_cn(edge_sni_default(s), "nobody.test", cn, sizeof cn);
	CHECK_EQ_STR(cn, "def");
	handshake_cn(edge_sni_default(s), NULL, cn, sizeof cn);
	CHECK_EQ_STR(cn, "def");
	edge_sni_free(&s);
}

int main(void)
{
	make_certs();
	RUN(test_matching_rules);
	RUN(test_names_and_bounds);
	RUN(test_handshakes_serve_the_picked_certificate);
	nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return TEST_SUMMARY();
}
