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
	unsigned char k1[32], rk[32];
	char e1[64], e2[64], text[512];
	util_random(k1, sizeof k1);
	util_random(rk, sizeof rk);
	util_b64url_encode(k1, sizeof k1, e1);
	util_b64url_encode(rk, sizeof rk, e2);
	int n = snprintf(text, sizeof text,
			 "; tandem secrets: keep private (mode 0600), identical in every region.\n"
			 "[tokens]\nsigning_key_id = k1\nkey.k1 = %s\n\n[crypto]\nresponse_key = %s\n",
			 e1, e2);
	int rc = util_write_file(path, text, (size_t)n, 0600);
	OPENSSL_cleanse(text, sizeof text);
	OPENSSL_cleanse(k1, sizeof k1);
	OPENSSL_cleanse(rk, sizeof rk);
	return rc;
}

const secrets_key *secrets_find(const secrets *s, const char *id)
{
	for (int i = 0; i < s->key_count; i++)
		if (strcmp(s->keys[i].id, id) == 0)
			return &s->keys[i];
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
