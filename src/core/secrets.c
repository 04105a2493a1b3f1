/* secrets.c - load and create the deployment's secrets file; see secrets.h. */
#include "core/secrets.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

#include "core/err.h"
#include "core/util.h"

typedef struct secrets_reader {
	FILE *file;
	int line;
	secrets *s;
	const char *path;
	char signing_id[32];
	int signing_line;
	int have_response_key;
	char kek_id[32];
	int kek_id_line;
	int have_objects;
	char *err;
	size_t errcap;
	int failed;
} secrets_reader;

static char *secrets_read_line(char *str, int num, void *stream)
{
	secrets_reader *r = stream;
	char *s = fgets(str, num, r->file);
	if (s)
		r->line++;
	return s;
}

static void secrets_fail(secrets_reader *r, const char *msg, const char *name)
{
	if (!r->failed) /* key material is never echoed: only the key name */
		snprintf(r->err, r->errcap, "%s:%d: %s%s%s", r->path, r->line, msg,
			 name ? " " : "", name ? name : "");
	r->failed = 1;
}

static int secrets_handler(void *user, const char *section, const char *name, const char *value)
{
	secrets_reader *r = user;
	secrets *s = r->s;
	if (strcmp(section, "tokens") == 0 && strcmp(name, "signing_key_id") == 0) {
		snprintf(r->signing_id, sizeof r->signing_id, "%s", value);
		r->signing_line = r->line;
	} else if (strcmp(section, "tokens") == 0 && strncmp(name, "key.", 4) == 0) {
		if (s->key_count == SECRETS_MAX_KEYS) {
			secrets_fail(r, "too many keys", NULL);
			return 1;
		}
		secrets_key *k = &s->keys[s->key_count];
		if (strlen(name + 4) == 0 || strlen(name + 4) >= sizeof k->id) {
			secrets_fail(r, "bad key id in", name);
			return 1;
		}
		long n = util_b64url_decode(value, strlen(value), k->key, sizeof k->key);
		if (n < 32) {
			secrets_fail(r, "key must be base64url of 32 to 64 bytes:", name);
			return 1;
		}
		snprintf(k->id, sizeof k->id, "%s", name + 4);
		k->len = (size_t)n;
		s->key_count++;
	} else if (strcmp(section, "crypto") == 0 && strcmp(name, "response_key") == 0) {
		long n = util_b64url_decode(value, strlen(value), s->response_key,
					    sizeof s->response_key);
		if (n != 32) {
			secrets_fail(r, "response_key must be base64url of 32 bytes", NULL);
			return 1;
		}
		r->have_response_key = 1;
	} else if (strcmp(section, "objects") == 0 && strcmp(name, "kek_id") == 0) {
		r->have_objects = 1;
		snprintf(r->kek_id, sizeof r->kek_id, "%s", value);
		r->kek_id_line = r->line;
	} else if (strcmp(section, "objects") == 0 && strncmp(name, "kek.", 4) == 0) {
		r->have_objects = 1;
		if (s->kek_count == SECRETS_MAX_KEYS) {
			secrets_fail(r, "too many keys", NULL);
			return 1;
		}
		secrets_key *k = &s->keks[s->kek_count];
		if (strlen(name + 4) == 0 || strlen(name + 4) >= sizeof k->id) {
			secrets_fail(r, "bad key id in", name);
			return 1;
		}
		if (secrets_find_kek(s, name + 4)) {
			secrets_fail(r, "duplicate key", name);
			return 1;
		}
		/* exactly an AES-256 key: the blob store wraps with it as is */
		long n = util_b64url_decode(value, strlen(value), k->key, sizeof k->key);
		if (n != 32) {
			OPENSSL_cleanse(k->key, sizeof k->key);
			secrets_fail(r, "key must be base64url of 32 bytes:", name);
			return 1;
		}
		snprintf(k->id, sizeof k->id, "%s", name + 4);
		k->len = (size_t)n;
		s->kek_count++;
	} else if (strcmp(section, "dnssec") == 0) {
		/* the zones' DNSSEC keys: read by dns/dnssec.c, checked there */
	} else if (strcmp(section, "tsig") == 0) {
		/* the zone transfers' TSIG keys: read by dns/xfr.c, checked there */
	} else if (strcmp(section, "s3") == 0) {
		/* the S3 access keys: read (and re-read while running) by
		 * objects/s3keys.c, checked there */
	} else {
		secrets_fail(r, "unknown key", name);
	}
	return 1;
}

int secrets_load(const char *path, secrets *s, char *err, size_t errcap)
{
	memset(s, 0, sizeof *s);
	secrets_reader r = {.s = s, .path = path, .err = err, .errcap = errcap};
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
		return ERR_IO;
	}
	if (st.st_mode & 077) {
		snprintf(err, errcap, "%s:1: secrets file may be read by others (mode %03o); chmod 600 it",
			 path, (unsigned)(st.st_mode & 0777));
		return ERR_CONFIG;
	}
	r.file = fopen(path, "r");
	if (!r.file) {
		snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
		return ERR_IO;
	}
	int rc = ini_parse_stream(secrets_read_line, &r, secrets_handler, &r);
	fclose(r.file);
	if (rc > 0 && !r.failed) {
		r.line = rc;
		secrets_fail(&r, "syntax error", NULL);
	}
	if (!r.failed) {
		s->signing = -1;
		for (int i = 0; i < s->key_count; i++)
			if (strcmp(s->keys[i].id, r.signing_id) == 0)
				s->signing = i;
		r.line = r.signing_line ? r.signing_line : 1;
		if (s->signing < 0)
			secrets_fail(&r, "signing_key_id does not name a key.ID in [tokens]", NULL);
		else if (!r.have_response_key)
			secrets_fail(&r, "missing response_key in [crypto]", NULL);
	}
	s->kek_current = -1;
	if (!r.failed && r.have_objects) {
		for (int i = 0; i < s->kek_count; i++)
			if (strcmp(s->keks[i].id, r.kek_id) == 0)
				s->kek_current = i;
		r.line = r.kek_id_line ? r.kek_id_line : 1;
		if (s->kek_current < 0)
			secrets_fail(&r, "kek_id does not name a kek.ID in [objects]", NULL);
	}
	if (r.failed) {
		secrets_clear(s);
		return ERR_CONFIG;
	}
	return 0;
}

int secrets_create(const char *path)
{
	if (access(path, F_OK) == 0)
		return 0;
	unsigned char k1[32], rk[32], kek[32];
	char e1[64], e2[64], e3[64], text[640];
	util_random(k1, sizeof k1);
	util_random(rk, sizeof rk);
	util_random(kek, sizeof kek);
	util_b64url_encode(k1, sizeof k1, e1);
	util_b64url_encode(rk, sizeof rk, e2);
	util_b64url_encode(kek, sizeof kek, e3);
	int n = snprintf(text, sizeof text,
			 "; tandem secrets: keep private (mode 0600), identical in every region.\n"
			 "[tokens]\nsigning_key_id = k1\nkey.k1 = %s\n\n[crypto]\nresponse_key = %s\n\n"
			 "; the object store's key-encryption keys: add kek.k2 and point kek_id\n"
			 "; at it to rotate; keep the old one until every blob is re-wrapped\n"
			 "[objects]\nkek_id = k1\nkek.k1 = %s\n",
			 e1, e2, e3);
	if (n < 0 || (size_t)n >= sizeof text)
		abort(); /* cannot happen: fixed text and three 43-char keys */
	int rc = util_write_file(path, text, (size_t)n, 0600);
	OPENSSL_cleanse(text, sizeof text);
	OPENSSL_cleanse(k1, sizeof k1);
	OPENSSL_cleanse(rk, sizeof rk);
	OPENSSL_cleanse(kek, sizeof kek);
	OPENSSL_cleanse(e1, sizeof e1);
	OPENSSL_cleanse(e2, sizeof e2);
	OPENSSL_cleanse(e3, sizeof e3);
	return rc;
}

const secrets_key *secrets_find(const secrets *s, const char *id)
{
	for (int i = 0; i < s->key_count; i++)
		if (strcmp(s->keys[i].id, id) == 0)
			return &s->keys[i];
	return NULL;
}

const secrets_key *secrets_find_kek(const secrets *s, const char *id)
{
	for (int i = 0; i < s->kek_count; i++)
		if (strcmp(s->keks[i].id, id) == 0)
			return &s->keks[i];
	return NULL;
}

void secrets_derive(const secrets *s, const char *label, unsigned char out[32])
{
	unsigned char info[128];
	size_t n = strlen(label);
	if (n + 1 > sizeof info)
		abort(); /* cannot happen: labels are short constants */
	memcpy(info, label, n);
	info[n] = 0x01; /* HKDF-Expand's block counter: one block of output */
	util_hmac_sha256(s->response_key, sizeof s->response_key, info, n + 1, out);
	OPENSSL_cleanse(info, sizeof info);
}

void secrets_clear(secrets *s)
{
	OPENSSL_cleanse(s, sizeof *s);
}
