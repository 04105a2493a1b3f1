/*
 * test_certs.c - tests for src/core/certs.c: each test gets its own temporary
 * directory, runs certs_ensure() for real, inspects the files with OpenSSL,
 * and finishes with an in-memory mutual-TLS handshake using the certificates.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* st_mtim, nftw */
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/certs.h"
#include "core/err.h"
#include "test.h"

static const char *const NAMES[] = { "eu", "us" };
#define N_NAMES (sizeof(NAMES) / sizeof(NAMES[0]))
#define FILE_COUNT 6
static const char *const FILES[FILE_COUNT] = {
	"ca.pem", "ca.key", "eu.pem", "eu.key", "us.pem", "us.key",
};

/* A temporary root (removed by fixture_done) and the certs dir inside it. */
typedef struct fixture {
	char root[64];
	char dir[128];
} fixture;

/* What identifies one version of a file: its bytes, inode and mtime. */
typedef struct snapshot {
	bool exists;
	char data[8192];
	size_t len;
	ino_t ino;
	struct timespec mtime;
} snapshot;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	chmod(path, 0700);
	return remove(path);
}

/* Fresh root; dir is ROOT/a/b/certs so the parents must be created too. */
static void fixture_init(fixture *f)
{
	snprintf(f->root, sizeof(f->root), "/tmp/tandem-certs-XXXXXX");
	if (!mkdtemp(f->root)) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(f->dir, sizeof(f->dir), "%s/a/b/certs", f->root);
}

static void fixture_done(fixture *f)
{
	nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* fixture_init + certs_ensure(ca, eu, us) that must succeed. */
static void fixture_ensure(fixture *f)
{
	char err[512] = "";
	fixture_init(f);
	int rc = certs_ensure(f->dir, NAMES, N_NAMES, err, sizeof(err));
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_STR(err, "");
}

static void path_of(char *out, size_t outlen, const fixture *f, const char *file)
{
	snprintf(out, outlen, "%s/%s", f->dir, file);
}

static void take_snapshot(snapshot *s, const fixture *f, const char *file)
{
	char path[256];
	struct stat st;
	path_of(path, sizeof(path), f, file);
	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0)
		return;
	s->exists = true;
	s->ino = st.st_ino;
	s->mtime = st.st_mtim;
	FILE *fp = fopen(path, "rb");
	if (fp) {
		s->len = fread(s->data, 1, sizeof(s->data), fp);
		fclose(fp);
	}
}

static bool snapshot_same(const snapshot *a, const snapshot *b)
{
	return a->exists == b->exists && a->len == b->len &&
	       memcmp(a->data, b->data, a->len) == 0 && a->ino == b->ino &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void snapshot_all(snapshot s[FILE_COUNT], const fixture *f)
{
	for (int i = 0; i < FILE_COUNT; i++)
		take_snapshot(&s[i], f, FILES[i]);
}

static int file_mode(const fixture *f, const char *file)
{
	char path[256];
	struct stat st;
	path_of(path, sizeof(path), f, file);
	if (stat(path, &st) != 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

static X509 *load_cert(const fixture *f, const char *file)
{
	char path[256];
	path_of(path, sizeof(path), f, file);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return NULL;
	X509 *cert = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	return cert;
}

static EVP_PKEY *load_key(const fixture *f, const char *file)
{
	char path[256];
	path_of(path, sizeof(path), f, file);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return NULL;
	EVP_PKEY *key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	return key;
}

/* X509_verify_cert of leaf against a store holding only ca, for purpose. */
static int verify_chain(X509 *ca, X509 *leaf, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = -1;
	if (store && ctx && X509_STORE_add_cert(store, ca) &&
	    X509_STORE_CTX_init(ctx, store, leaf, NULL) &&
	    X509_STORE_CTX_set_purpose(ctx, purpose))
		ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

/* True if the certificate's subjectAltName has DNS:dns and IP:127.0.0.1. */
static bool san_has(X509 *cert, const char *dns)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	bool has_dns = false, has_ip = false;
	static const unsigned char loopback[4] = { 127, 0, 0, 1 };
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type == GEN_DNS) {
			const ASN1_IA5STRING *s = gn->d.dNSName;
			if ((size_t)ASN1_STRING_length(s) == strlen(dns) &&
			    memcmp(ASN1_STRING_get0_data(s), dns, strlen(dns)) == 0)
				has_dns = true;
		} else if (gn->type == GEN_IPADD) {
			const ASN1_OCTET_STRING *s = gn->d.iPAddress;
			if (ASN1_STRING_length(s) == 4 &&
			    memcmp(ASN1_STRING_get0_data(s), loopback, 4) == 0)
				has_ip = true;
		}
	}
	GENERAL_NAMES_free(names);
	return has_dns && has_ip;
}

/* True if extension nid is present and marked critical. */
static bool ext_critical(X509 *cert, int nid)
{
	int at = X509_get_ext_by_NID(cert, nid, -1);
	return at >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, at)) == 1;
}

static bool cn_is(X509 *cert, const char *cn)
{
	char buf[128];
	return X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf,
					 sizeof(buf)) > 0 &&
	       strcmp(buf, cn) == 0;
}

/* Days (and remaining seconds) between notBefore and notAfter. */
static void validity_span(X509 *cert, int *days, int *secs)
{
	*days = *secs = -1;
	ASN1_TIME_diff(days, secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert));
}

static bool is_p256(EVP_PKEY *key)
{
	char group[64];
	return key && EVP_PKEY_is_a(key, "EC") &&
	       EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) &&
	       strcmp(group, "prime256v1") == 0;
}

/* True if the leaf in FILE.pem verifies against ca.pem for TLS server and
 * client use. */
static bool leaf_verifies(const fixture *f, const char *pem)
{
	X509 *ca = load_cert(f, "ca.pem"), *leaf = load_cert(f, pem);
	bool ok = ca && leaf && verify_chain(ca, leaf, X509_PURPOSE_SSL_SERVER) == 1 &&
		  verify_chain(ca, leaf, X509_PURPOSE_SSL_CLIENT) == 1;
	X509_free(ca);
	X509_free(leaf);
	return ok;
}

static bool has_tmp_files(const fixture *f)
{
	DIR *d = opendir(f->dir);
	bool found = false;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0)
			found = true;
	}
	if (d)
		closedir(d);
	return found;
}

static void test_creates_files_and_modes(void)
{
	fixture f;
	fixture_ensure(&f);
	for (int i = 0; i < FILE_COUNT; i++) {
		char path[256];
		path_of(path, sizeof(path), &f, FILES[i]);
		if (access(path, R_OK) != 0)
			fprintf(stderr, "missing %s\n", path);
		CHECK(access(path, R_OK) == 0);
	}
	CHECK_EQ_INT(file_mode(&f, "ca.key"), 0600);
	CHECK_EQ_INT(file_mode(&f, "eu.key"), 0600);
	CHECK_EQ_INT(file_mode(&f, "us.key"), 0600);
	CHECK_EQ_INT(file_mode(&f, "eu.pem"), 0644);
	CHECK_EQ_INT(file_mode(&f, "."), 0700);
	CHECK(!has_tmp_files(&f));
	fixture_done(&f);
}

static void test_ca_certificate(void)
{
	fixture f;
	fixture_ensure(&f);
	X509 *ca = load_cert(&f, "ca.pem");
	EVP_PKEY *key = load_key(&f, "ca.key");
	CHECK(ca != NULL);
	CHECK(key != NULL);
	if (ca && key) {
		CHECK(cn_is(ca, "tandem development CA"));
		CHECK(X509_check_private_key(ca, key) == 1);
		CHECK(X509_verify(ca, key) == 1);
		CHECK(is_p256(key));
		CHECK_EQ_INT(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);
		CHECK(X509_check_ca(ca) == 1);
		CHECK(X509_get_extension_flags(ca) & EXFLAG_CA);
		CHECK(ext_critical(ca, NID_basic_constraints));
		CHECK(ext_critical(ca, NID_key_usage));
		CHECK_EQ_INT(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
		CHECK(X509_get0_subject_key_id(ca) != NULL);
		int days, secs;
		validity_span(ca, &days, &secs);
		CHECK_EQ_INT(days, 3650);
		CHECK_EQ_INT(secs, 0);
		/* Backdated an hour. */
		time_t soon = time(NULL) - 3500;
		CHECK(X509_cmp_time(X509_get0_notBefore(ca), &soon) == -1);
		/* Positive serial of 128 bits. */
		BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(ca), NULL);
		CHECK(serial && !BN_is_negative(serial) && BN_num_bits(serial) == 128);
		BN_free(serial);
	}
	X509_free(ca);
	EVP_PKEY_free(key);
	fixture_done(&f);
}

static void test_leaf_certificates(void)
{
	fixture f;
	fixture_ensure(&f);
	X509 *ca = load_cert(&f, "ca.pem");
	for (size_t i = 0; i < N_NAMES; i++) {
		char pem[32], keyfile[32];
		snprintf(pem, sizeof(pem), "%s.pem", NAMES[i]);
		snprintf(keyfile, sizeof(keyfile), "%s.key", NAMES[i]);
		X509 *leaf = load_cert(&f, pem);
		EVP_PKEY *key = load_key(&f, keyfile);
		CHECK(ca && leaf && key);
		if (ca && leaf && key) {
			CHECK_EQ_INT(verify_chain(ca, leaf, X509_PURPOSE_SSL_SERVER), 1);
			CHECK_EQ_INT(verify_chain(ca, leaf, X509_PURPOSE_SSL_CLIENT), 1);
			CHECK(X509_check_private_key(leaf, key) == 1);
			CHECK(is_p256(key));
			CHECK(cn_is(leaf, NAMES[i]));
			CHECK(san_has(leaf, NAMES[i]));
			CHECK(san_has(leaf, "localhost"));
			uint32_t eku = X509_get_extended_key_usage(leaf);
			CHECK(eku & XKU_SSL_SERVER);
			CHECK(eku & XKU_SSL_CLIENT);
			CHECK_EQ_INT(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
			CHECK(!(X509_get_extension_flags(leaf) & EXFLAG_CA));
			CHECK(X509_check_ca(leaf) == 0);
			CHECK(X509_get0_authority_key_id(leaf) != NULL);
			CHECK(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
						    X509_get0_subject_key_id(ca)) == 0);
			CHECK_EQ_INT(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
			int days, secs;
			validity_span(leaf, &days, &secs);
			CHECK_EQ_INT(days, 825);
			CHECK_EQ_INT(secs, 0);
		}
		X509_free(leaf);
		EVP_PKEY_free(key);
	}
	X509_free(ca);
	fixture_done(&f);
}

static void test_second_call_changes_nothing(void)
{
	fixture f;
	snapshot before[FILE_COUNT], after[FILE_COUNT];
	char err[512] = "";
	fixture_ensure(&f);
	snapshot_all(before, &f);
	CHECK_EQ_INT(certs_ensure(f.dir, NAMES, N_NAMES, err, sizeof(err)), 0);
	snapshot_all(after, &f);
	for (int i = 0; i < FILE_COUNT; i++) {
		CHECK(before[i].exists);
		if (!snapshot_same(&before[i], &after[i]))
			fprintf(stderr, "changed: %s\n", FILES[i]);
		CHECK(snapshot_same(&before[i], &after[i]));
	}
	fixture_done(&f);
}

static void test_missing_key_reissues_that_leaf_only(void)
{
	fixture f;
	snapshot before[FILE_COUNT], after[FILE_COUNT];
	char err[512] = "", path[256];
	fixture_ensure(&f);
	snapshot_all(before, &f);
	path_of(path, sizeof(path), &f, "eu.key");
	CHECK(unlink(path) == 0);
	/* A stale temporary (world-readable, junk) must not survive or leak. */
	path_of(path, sizeof(path), &f, "eu.key.tmp");
	FILE *fp = fopen(path, "w");
	CHECK(fp != NULL);
	if (fp) {
		fputs("junk", fp);
		fclose(fp);
	}
	chmod(path, 0644);
	CHECK_EQ_INT(certs_ensure(f.dir, NAMES, N_NAMES, err, sizeof(err)), 0);
	snapshot_all(after, &f);
	for (int i = 0; i < FILE_COUNT; i++) {
		bool is_eu = strncmp(FILES[i], "eu.", 3) == 0;
		CHECK(after[i].exists);
		if (is_eu) {
			CHECK(after[i].len != before[i].len ||
			      memcmp(after[i].data, before[i].data, after[i].len) != 0);
		} else {
			if (!snapshot_same(&before[i], &after[i]))
				fprintf(stderr, "changed: %s\n", FILES[i]);
			CHECK(snapshot_same(&before[i], &after[i]));
		}
	}
	CHECK_EQ_INT(file_mode(&f, "eu.key"), 0600);
	CHECK(leaf_verifies(&f, "eu.pem"));
	CHECK(!has_tmp_files(&f));
	fixture_done(&f);
}

static void test_corrupt_ca_reissues_everything(void)
{
	fixture f;
	snapshot before[FILE_COUNT], after[FILE_COUNT];
	char err[512] = "", path[256];
	fixture_ensure(&f);
	snapshot_all(before, &f);
	path_of(path, sizeof(path), &f, "ca.pem");
	FILE *fp = fopen(path, "w");
	CHECK(fp != NULL);
	if (fp) {
		fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
		      fp);
		fclose(fp);
	}
	CHECK_EQ_INT(certs_ensure(f.dir, NAMES, N_NAMES, err, sizeof(err)), 0);
	snapshot_all(after, &f);
	for (int i = 0; i < FILE_COUNT; i++) {
		CHECK(after[i].exists);
		if (after[i].len == before[i].len &&
		    memcmp(after[i].data, before[i].data, after[i].len) == 0)
			fprintf(stderr, "not re-issued: %s\n", FILES[i]);
		CHECK(after[i].len != before[i].len ||
		      memcmp(after[i].data, before[i].data, after[i].len) != 0);
	}
	CHECK(leaf_verifies(&f, "eu.pem"));
	CHECK(leaf_verifies(&f, "us.pem"));
	fixture_done(&f);
}

static void test_leaf_from_other_ca_is_reissued(void)
{
	fixture f, other;
	char err[512] = "", from[256], to[256];
	fixture_ensure(&f);
	fixture_ensure(&other);
	/* Put another CA's (valid, matching) us pair in place. */
	static const char *const pair[] = { "us.pem", "us.key" };
	for (int i = 0; i < 2; i++) {
		path_of(from, sizeof(from), &other, pair[i]);
		path_of(to, sizeof(to), &f, pair[i]);
		CHECK(rename(from, to) == 0);
	}
	CHECK(!leaf_verifies(&f, "us.pem"));
	CHECK_EQ_INT(certs_ensure(f.dir, NAMES, N_NAMES, err, sizeof(err)), 0);
	CHECK(leaf_verifies(&f, "us.pem"));
	fixture_done(&f);
	fixture_done(&other);
}

static void test_broad_key_mode_is_fixed(void)
{
	fixture f;
	snapshot before, after;
	char err[512] = "", path[256];
	fixture_ensure(&f);
	take_snapshot(&before, &f, "eu.key");
	path_of(path, sizeof(path), &f, "eu.key");
	CHECK(chmod(path, 0644) == 0);
	CHECK_EQ_INT(certs_ensure(f.dir, NAMES, N_NAMES, err, sizeof(err)), 0);
	take_snapshot(&after, &f, "eu.key");
	CHECK_EQ_INT(file_mode(&f, "eu.key"), 0600);
	/* Kept: same bytes and inode. */
	CHECK(before.len == after.len && memcmp(before.data, after.data, before.len) == 0);
	CHECK(before.ino == after.ino);
	fixture_done(&f);
}

static void test_invalid_names(void)
{
	static const char *const bad[] = {
		"", "EU", "-eu", ".eu", "e_u", "eu/..", "e u", "ca", "eu\n",
		"a123456789012345678901234567890123456789012345678901234567890123",
	};
	fixture f;
	fixture_init(&f);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *names[] = { "eu", bad[i] };
		char err[512] = "";
		CHECK_EQ_INT(certs_ensure(f.dir, names, 2, err, sizeof(err)), ERR_INVAL);
		CHECK(strlen(err) > 0);
		CHECK(strchr(err, '\n') == NULL);
		if (strcmp(bad[i], "EU") == 0)
			CHECK(strstr(err, "\"EU\"") != NULL);
	}
	const char *null_name[] = { NULL };
	char err[512] = "";
	CHECK_EQ_INT(certs_ensure(f.dir, null_name, 1, err, sizeof(err)), ERR_INVAL);
	CHECK(strlen(err) > 0);
	/* Names are checked before anything is written. */
	CHECK(access(f.dir, F_OK) != 0);
	fixture_done(&f);
}

/* Extra names (certs_ensure_sans): written into the certificate, kept
 * while present, and a certificate that lacks one is issued again (a
 * deployment moved to per-component addresses gets new certificates);
 * entries that are not DNS:/IP: are refused before anything is written. */
static void test_extra_names(void)
{
	fixture f;
	char err[512] = "";
	fixture_ensure(&f); /* eu and us without extra names */
	snapshot before, after;
	take_snapshot(&before, &f, "eu.pem");
	const char *sans[] = {"DNS:api.tandem.test,IP:127.0.0.2", NULL};
	CHECK_EQ_INT(certs_ensure_sans(f.dir, NAMES, sans, N_NAMES, err, sizeof err), 0);
	take_snapshot(&after, &f, "eu.pem");
	CHECK(before.len != after.len || memcmp(before.data, after.data, before.len) != 0); /* issued again */
	X509 *eu = load_cert(&f, "eu.pem");
	CHECK(eu != NULL);
	CHECK_EQ_INT(X509_check_host(eu, "api.tandem.test", 0, 0, NULL), 1);
	CHECK_EQ_INT(X509_check_ip_asc(eu, "127.0.0.2", 0), 1);
	CHECK_EQ_INT(X509_check_ip_asc(eu, "127.0.0.1", 0), 1);
	CHECK_EQ_INT(X509_check_host(eu, "eu", 0, 0, NULL), 1);
	X509_free(eu);
	X509 *us = load_cert(&f, "us.pem");
	CHECK_EQ_INT(X509_check_host(us, "api.tandem.test", 0, 0, NULL), 0);
	X509_free(us);
	CHECK(leaf_verifies(&f, "eu.pem"));
	/* the same names again: kept as is */
	take_snapshot(&before, &f, "eu.pem");
	CHECK_EQ_INT(certs_ensure_sans(f.dir, NAMES, sans, N_NAMES, err, sizeof err), 0);
	take_snapshot(&after, &f, "eu.pem");
	CHECK(before.ino == after.ino && before.len == after.len && memcmp(before.data, after.data, before.len) == 0);
	static const char *const bad[] = {"api.tandem.test", "DNS:", "DNS:API.x", "DNS:a,b", "IP:1.2.3",
					  "IP:127.0.0.1,DNS:a b", "URI:https://x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *one[] = {bad[i], NULL};
		err[0] = '\0';
		CHECK_EQ_INT(certs_ensure_sans(f.dir, NAMES, one, N_NAMES, err, sizeof err), ERR_INVAL);
		CHECK(err[0] != '\0');
	}
	take_snapshot(&after, &f, "eu.pem");
	CHECK(before.ino == after.ino); /* refused before writing */
	fixture_done(&f);
}

static void test_valid_name_edges(void)
{
	static const char *const good[] = {
		"0", "a-b.c", "localhost",
		"a12345678901234567890123456789012345678901234567890123456789012",
	};
	fixture f;
	char err[512] = "";
	fixture_init(&f);
	CHECK_EQ_INT(certs_ensure(f.dir, good, 4, err, sizeof(err)), 0);
	CHECK_EQ_STR(err, "");
	CHECK(leaf_verifies(&f, "a-b.c.pem"));
	CHECK(leaf_verifies(&f, "localhost.pem"));
	fixture_done(&f);
}

static void test_unwritable_dir_reports_path(void)
{
	fixture f;
	char file[256], dir[300], err[512] = "";
	fixture_init(&f);
	snprintf(file, sizeof(file), "%s/plainfile", f.root);
	FILE *fp = fopen(file, "w");
	CHECK(fp != NULL);
	if (fp)
		fclose(fp);
	snprintf(dir, sizeof(dir), "%s/certs", file);
	CHECK_EQ_INT(certs_ensure(dir, NAMES, N_NAMES, err, sizeof(err)), ERR_IO);
	CHECK(strstr(err, dir) != NULL);
	/* A deeper path: the message names it too. */
	snprintf(dir, sizeof(dir), "%s/x/y", file);
	err[0] = '\0';
	CHECK_EQ_INT(certs_ensure(dir, NAMES, N_NAMES, err, sizeof(err)), ERR_IO);
	CHECK(strstr(err, dir) != NULL);
	/* The directory itself is a regular file. */
	err[0] = '\0';
	CHECK_EQ_INT(certs_ensure(file, NAMES, N_NAMES, err, sizeof(err)), ERR_IO);
	CHECK(strstr(err, file) != NULL);
	fixture_done(&f);
}

static void test_write_failure_leaves_old_files(void)
{
	fixture f;
	snapshot before, after;
	char err[512] = "", path[256];
	fixture_ensure(&f);
	take_snapshot(&before, &f, "us.pem");
	/* us.pem.tmp is a non-empty directory: it cannot be removed, so the
	 * re-issue of us (forced by deleting its key) fails. */
	path_of(path, sizeof(path), &f, "us.key");
	CHECK(unlink(path) == 0);
	path_of(path, sizeof(path), &f, "us.pem.tmp");
	CHECK(mkdir(path, 0700) == 0);
	path_of(path, sizeof(path), &f, "us.pem.tmp/x");
	CHECK(mkdir(path, 0700) == 0);
	CHECK_EQ_INT(certs_ensure(f.dir, NAMES, N_NAMES, err, sizeof(err)), ERR_IO);
	CHECK(strstr(err, "us.pem.tmp") != NULL);
	take_snapshot(&after, &f, "us.pem");
	CHECK(snapshot_same(&before, &after));
	CHECK_EQ_INT(file_mode(&f, "us.key"), 0600);
	CHECK(access(path, F_OK) == 0);
	/* No other temporary left behind. */
	path_of(path, sizeof(path), &f, "us.key.tmp");
	CHECK(access(path, F_OK) != 0);
	/* Once the obstacle is gone, the next call repairs us. */
	path_of(path, sizeof(path), &f, "us.pem.tmp/x");
	rmdir(path);
	path_of(path, sizeof(path), &f, "us.pem.tmp");
	rmdir(path);
	CHECK_EQ_INT(certs_ensure(f.dir, NAMES, N_NAMES, err, sizeof(err)), 0);
	CHECK(leaf_verifies(&f, "us.pem"));
	fixture_done(&f);
}

/* An SSL_CTX with FILE.pem + FILE.key as its identity, trusting ca.pem. */
static SSL_CTX *tls_ctx(const fixture *f, const SSL_METHOD *method, const char *name)
{
	char cert[256], key[256], ca[256], file[32];
	snprintf(file, sizeof(file), "%s.pem", name);
	path_of(cert, sizeof(cert), f, file);
	snprintf(file, sizeof(file), "%s.key", name);
	path_of(key, sizeof(key), f, file);
	path_of(ca, sizeof(ca), f, "ca.pem");
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx || SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1 || SSL_CTX_load_verify_file(ctx, ca) != 1) {
		ERR_print_errors_fp(stderr);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* Drive both handshakes over a BIO pair; true if both completed. */
static bool tls_handshake(SSL *client, SSL *server)
{
	bool client_done = false, server_done = false;
	for (int round = 0; round < 100 && !(client_done && server_done); round++) {
		SSL *sides[2] = { client, server };
		bool *done[2] = { &client_done, &server_done };
		for (int i = 0; i < 2; i++) {
			if (*done[i])
				continue;
			int r = SSL_do_handshake(sides[i]);
			if (r == 1) {
				*done[i] = true;
				continue;
			}
			int e = SSL_get_error(sides[i], r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				return false;
		}
	}
	return client_done && server_done;
}

/* Mutual TLS between a client presenting "client_name" and expecting host
 * "expect_host", and a server presenting "eu" and requiring a client cert.
 * Returns true if the handshake succeeded on both sides, with verification. */
static bool mutual_tls(const fixture *f, const char *client_name, const char *expect_host,
		       bool check_data)
{
	SSL_CTX *server_ctx = tls_ctx(f, TLS_server_method(), "eu");
	SSL_CTX *client_ctx = tls_ctx(f, TLS_client_method(), client_name);
	SSL *server = NULL, *client = NULL;
	BIO *client_bio = NULL, *server_bio = NULL;
	bool ok = false;
	if (!server_ctx || !client_ctx)
		goto done;
	SSL_CTX_set_verify(server_ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
	server = SSL_new(server_ctx);
	client = SSL_new(client_ctx);
	if (!server || !client || !BIO_new_bio_pair(&client_bio, 0, &server_bio, 0))
		goto done;
	SSL_set_bio(client, client_bio, client_bio);
	SSL_set_bio(server, server_bio, server_bio);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	if (SSL_set1_host(client, expect_host) != 1)
		goto done;
	if (!tls_handshake(client, server))
		goto done;
	ok = SSL_get_verify_result(client) == X509_V_OK &&
	     SSL_get_verify_result(server) == X509_V_OK;
	X509 *server_cert = SSL_get0_peer_certificate(client);
	X509 *client_cert = SSL_get0_peer_certificate(server);
	ok = ok && server_cert && cn_is(server_cert, "eu") && client_cert &&
	     cn_is(client_cert, client_name);
	if (ok && check_data) {
		char buf[16] = "";
		ok = SSL_write(client, "ping", 4) == 4 && SSL_read(server, buf, sizeof(buf)) == 4 &&
		     memcmp(buf, "ping", 4) == 0 && SSL_write(server, "pong", 4) == 4 &&
		     SSL_read(client, buf, sizeof(buf)) == 4 && memcmp(buf, "pong", 4) == 0;
	}
done:
	ERR_clear_error();
	SSL_free(client); /* frees client_bio */
	SSL_free(server); /* frees server_bio */
	SSL_CTX_free(client_ctx);
	SSL_CTX_free(server_ctx);
	return ok;
}

static void test_tls_handshake(void)
{
	fixture f;
	fixture_ensure(&f);
	CHECK(mutual_tls(&f, "us", "eu", true));
	fixture_done(&f);
}

static void test_tls_rejects_wrong_host(void)
{
	fixture f;
	fixture_ensure(&f);
	/* The server presents eu; a client expecting us must refuse it. */
	CHECK(!mutual_tls(&f, "us", "us", false));
	fixture_done(&f);
}

int main(void)
{
	RUN(test_creates_files_and_modes);
	RUN(test_ca_certificate);
	RUN(test_leaf_certificates);
	RUN(test_second_call_changes_nothing);
	RUN(test_missing_key_reissues_that_leaf_only);
	RUN(test_corrupt_ca_reissues_everything);
	RUN(test_leaf_from_other_ca_is_reissued);
	RUN(test_broad_key_mode_is_fixed);
	RUN(test_invalid_names);
	RUN(test_valid_name_edges);
	RUN(test_unwritable_dir_reports_path);
	RUN(test_write_failure_leaves_old_files);
	RUN(test_tls_handshake);
	RUN(test_tls_rejects_wrong_host);
	RUN(test_extra_names);
	return TEST_SUMMARY();
}
