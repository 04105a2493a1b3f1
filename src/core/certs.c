/*
 * certs.c - the development certificate authority; see certs.h.
 *
 * certs_ensure() works in three steps, under an exclusive flock() on the
 * directory so that two processes (say, both regions starting at once) never
 * write the same files:
 *
 *   1. load DIR/ca.pem + DIR/ca.key; if they are not a valid CA (parse, key
 *      matches, self-signature verifies, CA:TRUE, inside the validity window
 *      with more than 30 days left), create a new CA;
 *   2. for each name, load DIR/NAME.pem + DIR/NAME.key; if the CA was just
 *      created, or the pair is not valid (parse, key matches, signed by the
 *      current CA, issued for NAME, more than 30 days left), issue a new one;
 *   3. fsync the directory if anything was renamed into it.
 *
 * Every file is written whole to FILE.tmp (created O_EXCL, mode 0600 for
 * keys), fsynced and renamed over FILE, so FILE is always either the old or
 * the new content. A pair is written key first, then certificate: a crash in
 * between leaves a key that does not match its certificate, which the next
 * run sees as invalid and re-issues. Likewise, after a crash between a new
 * CA and the re-issue of every leaf, the leaves left behind do not verify
 * against the new CA and are re-issued by the next run.
 *
 * Loading never fails because a file is missing, oversized or does not parse
 * (that only makes it invalid); it fails on an I/O error that rewriting the
 * file would not cure (a directory where a file should be, EIO, ...).
 */
#include "core/certs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/err.h"

#define CERTS_CA_NAME "ca"            /* reserved: DIR/ca.pem is the CA */
#define CERTS_CA_CN "tandem development CA"
#define CERTS_CURVE "P-256"
#define CERTS_CA_DAYS 3650L            /* 10 years */
#define CERTS_LEAF_DAYS 825L           /* the longest TLS clients accept */
#define CERTS_BACKDATE_SECONDS 3600L   /* tolerate clocks an hour behind */
#define CERTS_RENEW_SECONDS (30L * 24 * 3600)
#define CERTS_SERIAL_BITS 128
#define CERTS_NAME_MAX 63
#define CERTS_SANS_MAX 1024 /* the extra names of one certificate, as text */
#define CERTS_FILE_MAX (64 * 1024)     /* our PEM files are < 2 KiB */

/* One X509v3 extension in OpenSSL's config syntax. */
typedef struct certs_ext {
	int nid;
	const char *value;
} certs_ext;

/* Format a one-line message into err (if any). */
/* format() lets gcc and clang check the arguments; both support it. */
static void certs_message(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void certs_message(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Report an OpenSSL failure ("WHAT SUBJECT: reason") and empty the error
 * queue. Returns ERR_TLS. */
static int fail_tls(char *err, size_t errlen, const char *what, const char *subject)
{
	char reason[256];
	unsigned long code = ERR_get_error();
	if (code)
		ERR_error_string_n(code, reason, sizeof(reason));
	else
		snprintf(reason, sizeof(reason), "unknown OpenSSL error");
	ERR_clear_error();
	certs_message(err, errlen, "certs: %s %s: %s", what, subject, reason);
	return ERR_TLS;
}

/* Report a failed system call ("WHAT PATH: strerror(errno)"). Returns ERR_IO. */
static int fail_io(char *err, size_t errlen, const char *what, const char *path)
{
	certs_message(err, errlen, "certs: %s %s: %s", what, path, strerror(errno));
	return ERR_IO;
}

/* out = DIR/NAME + suffix. ERR_INVAL if it does not fit; out unaltered then. */
static int path_join(char *out, size_t outlen, const char *dir, const char *name,
		     const char *suffix, char *err, size_t errlen)
{
	int len = snprintf(NULL, 0, "%s/%s%s", dir, name, suffix);
	if (len < 0 || (size_t)len >= outlen) {
		certs_message(err, errlen, "certs: path too long: %s/%s%s", dir, name, suffix);
		return ERR_INVAL;
	}
	snprintf(out, outlen, "%s/%s%s", dir, name, suffix);
	return 0;
}

/*
 * Check a component name against ^[a-z0-9][a-z0-9.-]{0,62}$ and that it is not
 * the reserved "ca". ERR_INVAL with a message (the name shown with anything
 * unprintable replaced by '?', so the message stays one line) if not.
 */
static int check_name(const char *name, char *err, size_t errlen)
{
	if (!name) {
		certs_message(err, errlen, "certs: component name is NULL");
		return ERR_INVAL;
	}
	size_t len = strlen(name);
	bool ok = len >= 1 && len <= CERTS_NAME_MAX;
	for (size_t i = 0; ok && i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		ok = alnum || (i > 0 && (c == '.' || c == '-'));
	}
	if (ok && strcmp(name, CERTS_CA_NAME) == 0) {
		certs_message(err, errlen, "certs: component name \"%s\" is reserved for the CA",
			      name);
		return ERR_INVAL;
	}
	if (ok)
		return 0;
	char shown[CERTS_NAME_MAX + 2];
	size_t i;
	for (i = 0; i < len && i < sizeof(shown) - 1; i++)
		shown[i] = (name[i] >= 0x20 && name[i] < 0x7f && name[i] != '"') ? name[i] : '?';
	shown[i] = '\0';
	certs_message(err, errlen,
		      "certs: invalid component name \"%s%s\": must match ^[a-z0-9][a-z0-9.-]{0,62}$",
		      shown, len > i ? "..." : "");
	return ERR_INVAL;
}

/*
 * Create dir and any missing parent (like mkdir -p), each with mode 0700.
 * Returns 0 if dir exists as a directory afterwards, else ERR_INVAL (path too
 * long) or ERR_IO with a message. Parents created before a failure remain.
 */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);
	if (len >= sizeof(path)) {
		certs_message(err, errlen, "certs: path too long: %s", dir);
		return ERR_INVAL;
	}
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		if (path[i - 1] == '/')
			continue; /* "//" or a trailing '/' */
		char saved = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			if (saved == '\0')
				return fail_io(err, errlen, "cannot create directory", dir);
			certs_message(err, errlen, "certs: cannot create directory %s (for %s): %s",
				      path, dir, strerror(errno));
			return ERR_IO;
		}
		path[i] = saved;
	}
	struct stat st;
	if (stat(dir, &st) != 0)
		return fail_io(err, errlen, "cannot create directory", dir);
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return fail_io(err, errlen, "cannot create directory", dir);
	}
	return 0;
}

/* Write all of data to fd, retrying short writes and EINTR; -1 with errno. */
static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Replace path with data: write PATH.tmp (a stale one is removed first;
 * created O_EXCL with exactly mode, so a key is never readable by others),
 * fsync, rename over path. On failure returns ERR_IO/ERR_INVAL with a message,
 * path is unaltered and PATH.tmp removed.
 */
static int write_atomic(const char *path, const char *data, size_t len, mode_t mode,
			char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	int fd = -1, rc;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		certs_message(err, errlen, "certs: path too long: %s.tmp", path);
		return ERR_INVAL;
	}
	if (unlink(tmp) != 0 && errno != ENOENT)
		return fail_io(err, errlen, "cannot remove stale", tmp);
	fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return fail_io(err, errlen, "cannot create", tmp);
	/* The umask may have narrowed mode; make it exact. */
	if (fchmod(fd, mode) != 0) {
		rc = fail_io(err, errlen, "cannot chmod", tmp);
		goto fail;
	}
	if (write_all(fd, data, len) != 0) {
		rc = fail_io(err, errlen, "cannot write", tmp);
		goto fail;
	}
	if (fsync(fd) != 0) {
		rc = fail_io(err, errlen, "cannot fsync", tmp);
		goto fail;
	}
	int closed = close(fd);
	fd = -1;
	if (closed != 0) {
		rc = fail_io(err, errlen, "cannot close", tmp);
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		rc = fail_io(err, errlen, "cannot rename into", path);
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

/*
 * Read path (at most CERTS_FILE_MAX bytes) into *out (NUL-terminated; the
 * caller frees it with OPENSSL_clear_free(*out, *len + 1)). A key file with
 * permissions broader than 0600 is narrowed to 0600 first. *out is NULL, and
 * 0 returned, if the file is missing or too large (it is then invalid, to be
 * rewritten). Other failures return ERR_IO or ERR_NOMEM with a message.
 */
static int read_file(const char *path, bool is_key, char **out, size_t *outlen,
		     char *err, size_t errlen)
{
	char *data = NULL;
	size_t len = 0;
	int fd, rc;
	*out = NULL;
	*outlen = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return fail_io(err, errlen, "cannot open", path);
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = fail_io(err, errlen, "cannot stat", path);
		goto fail;
	}
	if (is_key && S_ISREG(st.st_mode) && (st.st_mode & 0777 & ~0600) != 0 &&
	    fchmod(fd, 0600) != 0) {
		rc = fail_io(err, errlen, "cannot chmod 0600", path);
		goto fail;
	}
	data = OPENSSL_malloc(CERTS_FILE_MAX + 1);
	if (!data) {
		certs_message(err, errlen, "certs: out of memory reading %s", path);
		rc = ERR_NOMEM;
		goto fail;
	}
	for (;;) {
		ssize_t r = read(fd, data + len, CERTS_FILE_MAX + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = fail_io(err, errlen, "cannot read", path);
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CERTS_FILE_MAX) { /* not ours: treat as invalid */
			OPENSSL_clear_free(data, CERTS_FILE_MAX + 1);
			close(fd);
			return 0;
		}
	}
	close(fd);
	data[len] = '\0';
	*out = data;
	*outlen = len;
	return 0;
fail:
	OPENSSL_clear_free(data, CERTS_FILE_MAX + 1);
	close(fd);
	return rc;
}

/* Refuse to prompt for a passphrase: an encrypted key is just invalid here. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/*
 * Load DIR/NAME.pem and DIR/NAME.key. *cert and *key are NULL where the file
 * is missing or does not parse (the caller frees what is not). Returns 0, or a
 * negative ERR_* with a message on I/O failure (*cert, *key NULL then).
 */
static int load_pair(const char *dir, const char *name, X509 **cert, EVP_PKEY **key,
		     char *err, size_t errlen)
{
	char cert_path[PATH_MAX], key_path[PATH_MAX];
	char *cert_pem = NULL, *key_pem = NULL;
	size_t cert_len = 0, key_len = 0;
	BIO *bio = NULL;
	int rc;
	*cert = NULL;
	*key = NULL;
	if ((rc = path_join(cert_path, sizeof(cert_path), dir, name, ".pem", err, errlen)) ||
	    (rc = path_join(key_path, sizeof(key_path), dir, name, ".key", err, errlen)))
		return rc;
	if ((rc = read_file(cert_path, false, &cert_pem, &cert_len, err, errlen)) ||
	    (rc = read_file(key_path, true, &key_pem, &key_len, err, errlen)))
		goto fail;
	if (cert_pem && (bio = BIO_new_mem_buf(cert_pem, (int)cert_len))) {
		*cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
		BIO_free(bio);
	}
	if (key_pem && (bio = BIO_new_mem_buf(key_pem, (int)key_len))) {
		*key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
		BIO_free(bio);
	}
	ERR_clear_error(); /* a parse failure only means "invalid" */
	rc = 0;
fail:
	OPENSSL_clear_free(cert_pem, cert_pem ? cert_len + 1 : 0);
	OPENSSL_clear_free(key_pem, key_pem ? key_len + 1 : 0);
	return rc;
}

/* True if now is inside cert's validity and more than 30 days remain. */
static bool in_validity(const X509 *cert)
{
	time_t now = time(NULL);
	time_t renew = now + CERTS_RENEW_SECONDS;
	/* X509_cmp_time: -1 earlier or equal, 1 later, 0 on error. */
	return X509_cmp_time(X509_get0_notBefore(cert), &now) == -1 &&
	       X509_cmp_time(X509_get0_notAfter(cert), &renew) == 1;
}

/* True if cert + key are a usable CA. Cannot fail; leaves no OpenSSL error. */
static bool ca_is_valid(X509 *cert, EVP_PKEY *key)
{
	bool ok = cert && key && X509_check_private_key(cert, key) == 1 &&
		  X509_verify(cert, X509_get0_pubkey(cert)) == 1 &&
		  X509_check_ca(cert) == 1 && in_validity(cert);
	ERR_clear_error();
	return ok;
}

/* True if cert + key are a usable certificate for name, signed by ca. Cannot
 * fail; leaves no OpenSSL error. */
static bool leaf_is_valid(X509 *cert, EVP_PKEY *key, X509 *ca, const char *name, const char *sans)
{
	bool ok = cert && key && X509_check_private_key(cert, key) == 1 &&
		  X509_verify(cert, X509_get0_pubkey(ca)) == 1 && in_validity(cert) &&
		  X509_check_host(cert, name, 0, 0, NULL) == 1;
	/* every extra name it must carry (a deployment that moved a component
	 * to another address gets a certificate naming the new one) */
	char copy[CERTS_SANS_MAX + 1];
	snprintf(copy, sizeof copy, "%s", sans ? sans : "");
	char *save = NULL;
	for (char *e = strtok_r(copy, ",", &save); ok && e; e = strtok_r(NULL, ",", &save))
		ok = strncmp(e, "IP:", 3) == 0 ? X509_check_ip_asc(cert, e + 3, 0) == 1
					       : X509_check_host(cert, e + 4, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
	ERR_clear_error();
	return ok;
}

/* Extra subject names: "DNS:name" or "IP:address" separated by commas, each
 * checked (they go into OpenSSL's extension syntax). 0 or ERR_INVAL. */
static int check_sans(const char *sans, char *err, size_t errlen)
{
	if (!sans || !sans[0])
		return 0;
	char copy[CERTS_SANS_MAX + 1];
	if (strlen(sans) > CERTS_SANS_MAX) {
		certs_message(err, errlen, "certs: extra names longer than %d bytes", CERTS_SANS_MAX);
		return ERR_INVAL;
	}
	snprintf(copy, sizeof copy, "%s", sans);
	char *save = NULL;
	for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		bool ok;
		if (strncmp(e, "IP:", 3) == 0) {
			unsigned char a[16];
			ok = inet_pton(AF_INET, e + 3, a) == 1 || inet_pton(AF_INET6, e + 3, a) == 1;
		} else {
			ok = strncmp(e, "DNS:", 4) == 0 && strlen(e + 4) >= 1 && strlen(e + 4) <= 253;
			const char *host = e + 4;
			if (ok && strncmp(host, "*.", 2) == 0) /* a wildcard, for SNI tests and dev edges */
				host += 2;
			ok = ok && *host;
			for (const char *c = host; ok && *c; c++)
				ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-';
		}
		if (!ok) {
			certs_message(err, errlen, "certs: '%.80s' is not DNS:NAME or IP:ADDRESS", e);
			return ERR_INVAL;
		}
	}
	return 0;
}

/*
 * Build a certificate for key with subject CN=cn, issued by issuer (NULL:
 * self-signed), valid from an hour ago for days, with a random positive
 * 128-bit serial and the given extensions, signed with issuer_key and SHA-256.
 * Returns 0 with *out set, or ERR_TLS with a message (*out NULL).
 */
static int cert_build(X509 **out, EVP_PKEY *key, const char *cn, X509 *issuer,
		      EVP_PKEY *issuer_key, long days, const certs_ext *exts, size_t n_exts,
		      char *err, size_t errlen)
{
	X509 *cert = NULL;
	X509_NAME *subject = NULL;
	BIGNUM *serial = NULL;
	*out = NULL;
	if (!(cert = X509_new()) || !X509_set_version(cert, X509_VERSION_3))
		goto fail;
	/* BN_RAND_TOP_ONE: exactly 128 bits, so never zero or short. */
	if (!(serial = BN_new()) ||
	    !BN_rand(serial, CERTS_SERIAL_BITS, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)))
		goto fail;
	if (!X509_gmtime_adj(X509_getm_notBefore(cert), -CERTS_BACKDATE_SECONDS) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, -CERTS_BACKDATE_SECONDS,
			      NULL))
		goto fail;
	if (!(subject = X509_NAME_new()) ||
	    !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)cn,
					-1, -1, 0) ||
	    !X509_set_subject_name(cert, subject) ||
	    !X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : subject) ||
	    !X509_set_pubkey(cert, key))
		goto fail;
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	for (size_t i = 0; i < n_exts; i++) {
		X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
		if (!ext)
			goto fail;
		int added = X509_add_ext(cert, ext, -1);
		X509_EXTENSION_free(ext);
		if (!added)
			goto fail;
	}
	if (!X509_sign(cert, issuer_key, EVP_sha256()))
		goto fail;
	X509_NAME_free(subject);
	BN_free(serial);
	*out = cert;
	return 0;
fail:
	X509_NAME_free(subject);
	BN_free(serial);
	X509_free(cert);
	return fail_tls(err, errlen, "cannot build the certificate for", cn);
}

/*
 * Write DIR/NAME.key (0600) then DIR/NAME.pem (0644), each atomically.
 * On failure returns a negative ERR_* with a message; each file is either
 * its old or its new content (see the comment at the top).
 */
static int write_pair(const char *dir, const char *name, X509 *cert, EVP_PKEY *key,
		      char *err, size_t errlen)
{
	char cert_path[PATH_MAX], key_path[PATH_MAX];
	BIO *key_bio = NULL, *cert_bio = NULL;
	char *data;
	long len;
	int rc;
	if ((rc = path_join(cert_path, sizeof(cert_path), dir, name, ".pem", err, errlen)) ||
	    (rc = path_join(key_path, sizeof(key_path), dir, name, ".key", err, errlen)))
		return rc;
	/* secmem: the key's PEM is cleansed when the BIO is freed. */
	if (!(key_bio = BIO_new(BIO_s_secmem())) ||
	    !PEM_write_bio_PrivateKey(key_bio, key, NULL, NULL, 0, NULL, NULL)) {
		rc = fail_tls(err, errlen, "cannot encode", key_path);
		goto fail;
	}
	if (!(cert_bio = BIO_new(BIO_s_mem())) || !PEM_write_bio_X509(cert_bio, cert)) {
		rc = fail_tls(err, errlen, "cannot encode", cert_path);
		goto fail;
	}
	len = BIO_get_mem_data(key_bio, &data);
	if ((rc = write_atomic(key_path, data, (size_t)len, 0600, err, errlen)))
		goto fail;
	len = BIO_get_mem_data(cert_bio, &data);
	if ((rc = write_atomic(cert_path, data, (size_t)len, 0644, err, errlen)))
		goto fail;
	rc = 0;
fail:
	BIO_free(key_bio);
	BIO_free(cert_bio);
	return rc;
}

/* Create a new CA and write it. Returns 0 with *cert and *key set (caller frees),
 * or a negative ERR_* with a message (*cert and *key NULL). */
static int ca_create(const char *dir, X509 **cert, EVP_PKEY **key, char *err, size_t errlen)
{
	static const certs_ext exts[] = {
		{ NID_basic_constraints, "critical,CA:TRUE" },
		{ NID_key_usage, "critical,keyCertSign,cRLSign" },
		{ NID_subject_key_identifier, "hash" },
	};
	int rc;
	*cert = NULL;
	if (!(*key = EVP_EC_gen(CERTS_CURVE)))
		return fail_tls(err, errlen, "cannot generate the key for", CERTS_CA_CN);
	if ((rc = cert_build(cert, *key, CERTS_CA_CN, NULL, *key, CERTS_CA_DAYS, exts,
			     sizeof(exts) / sizeof(exts[0]), err, errlen)) ||
	    (rc = write_pair(dir, CERTS_CA_NAME, *cert, *key, err, errlen)))
		goto fail;
	return 0;
fail:
	X509_free(*cert);
	EVP_PKEY_free(*key);
	*cert = NULL;
	*key = NULL;
	return rc;
}

/* Issue and write a new certificate for name, signed by the CA. Returns 0, or
 * a negative ERR_* with a message. */
static int leaf_issue(const char *dir, const char *name, const char *sans, X509 *ca, EVP_PKEY *ca_key,
		      char *err, size_t errlen)
{
	char san[3 * CERTS_NAME_MAX + CERTS_SANS_MAX + 2];
	/* name and sans are checked ([a-z0-9.-], check_sans), so they cannot
	 * inject into the syntax. */
	if (strcmp(name, "localhost") == 0)
		snprintf(san, sizeof(san), "DNS:localhost,IP:127.0.0.1");
	else
		snprintf(san, sizeof(san), "DNS:%s,DNS:localhost,IP:127.0.0.1", name);
	if (sans && sans[0])
		snprintf(san + strlen(san), sizeof(san) - strlen(san), ",%s", sans);
	const certs_ext exts[] = {
		{ NID_basic_constraints, "critical,CA:FALSE" },
		{ NID_key_usage, "critical,digitalSignature" },
		{ NID_ext_key_usage, "serverAuth,clientAuth" },
		{ NID_subject_alt_name, san },
		{ NID_subject_key_identifier, "hash" },
		{ NID_authority_key_identifier, "keyid:always" },
	};
	X509 *cert = NULL;
	EVP_PKEY *key;
	int rc;
	if (!(key = EVP_EC_gen(CERTS_CURVE)))
		return fail_tls(err, errlen, "cannot generate the key for", name);
	if ((rc = cert_build(&cert, key, name, ca, ca_key, CERTS_LEAF_DAYS, exts,
			     sizeof(exts) / sizeof(exts[0]), err, errlen)))
		goto fail;
	rc = write_pair(dir, name, cert, key, err, errlen);
fail:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

int certs_ensure(const char *dir, const char *const *names, size_t n, char *err, size_t errlen)
{
	return certs_ensure_sans(dir, names, NULL, n, err, errlen);
}

int certs_ensure_sans(const char *dir, const char *const *names, const char *const *sans, size_t n, char *err,
		      size_t errlen)
{
	X509 *ca = NULL, *leaf = NULL;
	EVP_PKEY *ca_key = NULL, *leaf_key = NULL;
	int dir_fd = -1, rc;
	bool changed = false;

	if (err && errlen)
		err[0] = '\0';
	if (!dir || !dir[0] || (n > 0 && !names)) {
		certs_message(err, errlen, "certs: no directory or no names given");
		return ERR_INVAL;
	}
	/* Check every name before touching the disk. */
	for (size_t i = 0; i < n; i++)
		if ((rc = check_name(names[i], err, errlen)) || (rc = check_sans(sans ? sans[i] : NULL, err, errlen)))
			return rc;
	if ((rc = make_dirs(dir, err, errlen)))
		return rc;
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return fail_io(err, errlen, "cannot open directory", dir);
	while (flock(dir_fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			rc = fail_io(err, errlen, "cannot lock directory", dir);
			goto fail;
		}
	}

	if ((rc = load_pair(dir, CERTS_CA_NAME, &ca, &ca_key, err, errlen)))
		goto fail;
	bool ca_new = !ca_is_valid(ca, ca_key);
	if (ca_new) {
		X509_free(ca);
		EVP_PKEY_free(ca_key);
		if ((rc = ca_create(dir, &ca, &ca_key, err, errlen)))
			goto fail;
		changed = true;
	}

	for (size_t i = 0; i < n; i++) {
		/* A new CA invalidates every leaf: no need to look at the old one. */
		if (!ca_new) {
			if ((rc = load_pair(dir, names[i], &leaf, &leaf_key, err, errlen)))
				goto fail;
			bool valid = leaf_is_valid(leaf, leaf_key, ca, names[i], sans ? sans[i] : NULL);
			X509_free(leaf);
			EVP_PKEY_free(leaf_key);
			leaf = NULL;
			leaf_key = NULL;
			if (valid)
				continue;
		}
		if ((rc = leaf_issue(dir, names[i], sans ? sans[i] : NULL, ca, ca_key, err, errlen)))
			goto fail;
		changed = true;
	}

	/* Make the renames durable. */
	if (changed && fsync(dir_fd) != 0) {
		rc = fail_io(err, errlen, "cannot fsync directory", dir);
		goto fail;
	}
	rc = 0;
fail:
	X509_free(leaf);
	EVP_PKEY_free(leaf_key);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	if (dir_fd >= 0)
		close(dir_fd); /* releases the lock */
	return rc;
}
