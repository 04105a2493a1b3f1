/*
 * s3keys.c - the S3 access keys of the secrets file ([s3]); see s3keys.h.
 *
 * The file is small (a few keys per tenant), so a lookup is a linear scan
 * and a change re-reads it whole. The writers (create, revoke) rewrite the
 * file through a temporary file and rename, so a region reading it at the
 * same moment sees the old or the new file, never half of one.
 */
#include "objects/s3keys.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

typedef struct s3key {
	char id[S3KEYS_ID_LEN + 12]; /* ids we generate are 20; allow a little more from hand edits */
	char secret[S3KEYS_SECRET_LEN + 24];
	char tenant[S3KEYS_NAME_MAX + 1];
	int has_secret;
} s3key;

struct s3keys {
	char path[512];
	s3key *keys;
	size_t count;
	/* what the file looked like when read */
	struct timespec mtime;
	off_t size;
	ino_t ino;
	int64_t checked_ms;
	int warned;
};

typedef struct s3keys_reader {
	FILE *file;
	int line;
	const char *path;
	s3key *keys;
	size_t count;
	char *err;
	size_t errcap;
	int failed;
} s3keys_reader;

static char *reader_line(char *str, int num, void *stream)
{
	s3keys_reader *r = stream;
	char *s = fgets(str, num, r->file);
	if (s)
		r->line++;
	return s;
}

static void reader_fail(s3keys_reader *r, const char *msg, const char *name)
{
	if (!r->failed)
		snprintf(r->err, r->errcap, "%s:%d: [s3] %s %s", r->path, r->line, msg, name);
	r->failed = 1;
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > S3KEYS_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

static int valid_id(const char *s)
{
	size_t n = strlen(s);
	if (n < 16 || n >= sizeof(((s3key *)0)->id))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isupper((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static s3key *reader_key(s3keys_reader *r, const char *id)
{
	for (size_t i = 0; i < r->count; i++)
		if (strcmp(r->keys[i].id, id) == 0)
			return &r->keys[i];
	if (r->count == S3KEYS_MAX) {
		reader_fail(r, "too many keys at", id);
		return NULL;
	}
	s3key *k = &r->keys[r->count++];
	memset(k, 0, sizeof *k);
	snprintf(k->id, sizeof k->id, "%s", id);
	return k;
}

static int reader_handler(void *user, const char *section, const char *name, const char *value)
{
	s3keys_reader *r = user;
	if (strcmp(section, "s3") != 0 || !name)
		return 1; /* the rest of the file is secrets_load's */
	int is_key = strncmp(name, "key.", 4) == 0, is_name = strncmp(name, "name.", 5) == 0;
	if (!is_key && !is_name) {
		reader_fail(r, "unknown key", name);
		return 1;
	}
	const char *id = name + (is_key ? 4 : 5);
	if (!valid_id(id)) {
		reader_fail(r, "bad access key id (16 to 31 uppercase letters and digits) in", name);
		return 1;
	}
	s3key *k = reader_key(r, id);
	if (!k)
		return 1;
	if (is_key) {
		size_t n = strlen(value);
		if (k->has_secret)
			reader_fail(r, "duplicate", name);
		else if (n < 16 || n >= sizeof k->secret)
			reader_fail(r, "secret must be 16 to 63 characters:", name);
		else {
			memcpy(k->secret, value, n + 1);
			k->has_secret = 1;
		}
	} else if (!valid_name(value)) {
		reader_fail(r, "tenant name must be [A-Za-z0-9._-]{1,63}:", name);
	} else {
		snprintf(k->tenant, sizeof k->tenant, "%s", value);
	}
	return 1;
}

/* Parse path into a fresh array; 0 or an error with err set. */
static int read_keys(const char *path, s3key **keys, size_t *count, struct stat *st, char *err,
		     size_t errcap)
{
	*keys = NULL;
	*count = 0;
	s3keys_reader r = {.path = path, .err = err, .errcap = errcap};
	r.file = fopen(path, "r");
	if (!r.file) {
		snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
		return ERR_IO;
	}
	if (fstat(fileno(r.file), st) != 0 || (st->st_mode & 077)) {
		fclose(r.file);
		snprintf(err, errcap, "%s:1: secrets file may be read by others; chmod 600 it", path);
		return ERR_CONFIG;
	}
	r.keys = calloc(S3KEYS_MAX, sizeof *r.keys);
	if (!r.keys) {
		fclose(r.file);
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	int rc = ini_parse_stream(reader_line, &r, reader_handler, &r);
	fclose(r.file);
	if (rc != 0 && !r.failed) {
		r.line = rc > 0 ? rc : 0;
		reader_fail(&r, "syntax error", "");
	}
	for (size_t i = 0; i < r.count && !r.failed; i++) {
		if (!r.keys[i].has_secret) {
			r.line = 1;
			reader_fail(&r, "a name without a key:", r.keys[i].id);
		} else if (!r.keys[i].tenant[0])
			snprintf(r.keys[i].tenant, sizeof r.keys[i].tenant, "%s", r.keys[i].id);
	}
	if (r.failed) {
		OPENSSL_cleanse(r.keys, S3KEYS_MAX * sizeof *r.keys);
		free(r.keys);
		return ERR_CONFIG;
	}
	*keys = r.keys;
	*count = r.count;
	return 0;
}

static void drop_keys(s3key **keys)
{
	if (*keys) {
		OPENSSL_cleanse(*keys, S3KEYS_MAX * sizeof **keys);
		free(*keys);
	}
	*keys = NULL;
}

int s3keys_load(const char *path, s3keys **out, char *err, size_t errcap)
{
	*out = NULL;
	s3keys *k = calloc(1, sizeof *k);
	if (!k) {
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	if (snprintf(k->path, sizeof k->path, "%s", path) >= (int)sizeof k->path) {
		free(k);
		snprintf(err, errcap, "%s: path too long", path);
		return ERR_CONFIG;
	}
	struct stat st;
	int rc = read_keys(path, &k->keys, &k->count, &st, err, errcap);
	if (rc != 0) {
		free(k);
		return rc;
	}
	k->mtime = st.st_mtim;
	k->size = st.st_size;
	k->ino = st.st_ino;
	*out = k;
	return 0;
}

void s3keys_free(s3keys **k)
{
	if (!*k)
		return;
	drop_keys(&(*k)->keys);
	free(*k);
	*k = NULL;
}

void s3keys_refresh(s3keys *k, int64_t now_ms)
{
	if (now_ms - k->checked_ms < 1000 && now_ms >= k->checked_ms)
		return;
	k->checked_ms = now_ms;
	struct stat st;
	if (stat(k->path, &st) != 0)
		return; /* a writer between unlink and rename cannot happen (rename); keep the keys */
	if (st.st_ino == k->ino && st.st_size == k->size && st.st_mtim.tv_sec == k->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == k->mtime.tv_nsec)
		return;
	char err[512];
	s3key *keys;
	size_t count;
	int rc = read_keys(k->path, &keys, &count, &st, err, sizeof err);
	if (rc != 0) {
		if (!k->warned)
			log_warn("s3 keys: the secrets file changed but does not load, keeping the old keys: %s",
				 err);
		k->warned = 1;
		return;
	}
	drop_keys(&k->keys);
	k->keys = keys;
	k->count = count;
	k->mtime = st.st_mtim;
	k->size = st.st_size;
	k->ino = st.st_ino;
	k->warned = 0;
	log_info("s3 keys: reloaded, %zu key(s)", count);
}

int s3keys_lookup(const s3keys *k, const char *id, char *secret, size_t cap, char *tenant)
{
	for (size_t i = 0; i < k->count; i++) {
		if (strcmp(k->keys[i].id, id) != 0)
			continue;
		snprintf(secret, cap, "%s", k->keys[i].secret);
		if (tenant)
			snprintf(tenant, S3KEYS_NAME_MAX + 1, "%s", k->keys[i].tenant);
		return 0;
	}
	return ERR_NOTFOUND;
}

size_t s3keys_count(const s3keys *k)
{
	return k->count;
}

/* --- the command line --- */

/* Write text to path via path.tmp, fsync, rename (mode 0600). */
static int replace_file(const char *path, const char *text, size_t len, char *err, size_t errcap)
{
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%.500s.tmp", path);
	unlink(tmp);
	if (util_write_file(tmp, text, len, 0600) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errcap, "%s: cannot write: %s", path, strerror(errno));
		unlink(tmp);
		return ERR_IO;
	}
	return 0;
}

int s3keys_create(const char *path, const char *name, char id[S3KEYS_ID_LEN + 1],
		  char secret[S3KEYS_SECRET_LEN + 1], char *err, size_t errcap)
{
	if (!valid_name(name)) {
		snprintf(err, errcap, "a key name must be 1 to 63 of [A-Za-z0-9._-], not '%s'", name);
		return ERR_INVAL;
	}
	s3key *keys;
	size_t count;
	struct stat st;
	int rc = read_keys(path, &keys, &count, &st, err, errcap); /* refuse to append to a bad file */
	if (rc != 0)
		return rc;
	drop_keys(&keys);
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char rnd[S3KEYS_ID_LEN];
	util_random(rnd, sizeof rnd);
	id[0] = 'T';
	id[1] = 'K';
	for (int i = 2; i < S3KEYS_ID_LEN; i++)
		id[i] = alnum[rnd[i] % 36]; /* 256 % 36 = 4: a negligible bias for an identifier */
	id[S3KEYS_ID_LEN] = '\0';
	unsigned char sec[30];
	util_random(sec, sizeof sec);
	char enc[48];
	util_b64url_encode(sec, sizeof sec, enc);
	OPENSSL_cleanse(sec, sizeof sec);
	memcpy(secret, enc, S3KEYS_SECRET_LEN); /* 30 bytes encode to exactly 40 characters */
	secret[S3KEYS_SECRET_LEN] = '\0';
	OPENSSL_cleanse(enc, sizeof enc);
	size_t len;
	char *text = util_read_file(path, 1 << 20, &len);
	if (!text) {
		snprintf(err, errcap, "%s: cannot read: %s", path, strerror(errno));
		return ERR_IO;
	}
	buf b;
	buf_init(&b, (1 << 20) + 4096);
	buf_add(&b, text, len);
	if (len && text[len - 1] != '\n')
		buf_addc(&b, '\n');
	rc = buf_printf(&b, "\n[s3]\nkey.%s = %s\nname.%s = %s\n", id, secret, id, name);
	OPENSSL_cleanse(text, len);
	free(text);
	if (rc == 0)
		rc = replace_file(path, b.data, b.len, err, errcap);
	else
		snprintf(err, errcap, "%s: too large", path);
	OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	return rc;
}

int s3keys_revoke(const char *path, const char *id, char *err, size_t errcap)
{
	size_t len;
	char *text = util_read_file(path, 1 << 20, &len);
	if (!text) {
		snprintf(err, errcap, "%s: cannot read: %s", path, strerror(errno));
		return ERR_IO;
	}
	buf b;
	buf_init(&b, (1 << 20) + 16);
	int in_s3 = 0, removed = 0;
	size_t idlen = strlen(id);
	for (size_t pos = 0; pos < len;) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) + 1 : len - pos;
		pos += n;
		const char *p = line;
		while (p < line + n && (*p == ' ' || *p == '\t'))
			p++;
		if (*p == '[')
			in_s3 = strncmp(p, "[s3]", 4) == 0;
		else if (in_s3) {
			const char *q = strncmp(p, "key.", 4) == 0 ? p + 4 : strncmp(p, "name.", 5) == 0 ? p + 5 : NULL;
			if (q && (size_t)(line + n - q) > idlen && strncmp(q, id, idlen) == 0 &&
			    (q[idlen] == ' ' || q[idlen] == '=' || q[idlen] == '\t')) {
				removed++;
				continue;
			}
		}
		buf_add(&b, line, n);
	}
	OPENSSL_cleanse(text, len);
	free(text);
	int rc = ERR_NOTFOUND;
	if (removed)
		rc = replace_file(path, b.data ? b.data : "", b.len, err, errcap);
	else
		snprintf(err, errcap, "no access key %s in %s", id, path);
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	return rc;
}

int s3keys_list(const char *path, void (*fn)(void *arg, const char *id, const char *tenant), void *arg,
		char *err, size_t errcap)
{
	s3key *keys;
	size_t count;
	struct stat st;
	int rc = read_keys(path, &keys, &count, &st, err, errcap);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < count; i++)
		fn(arg, keys[i].id, keys[i].tenant);
	drop_keys(&keys);
	return 0;
}

int s3keys_find_tenant(const char *path, const char *tenant, char id[S3KEYS_ID_LEN + 12],
		       char secret[S3KEYS_SECRET_LEN + 24], char *err, size_t errcap)
{
	s3key *keys;
	size_t count;
	struct stat st;
	int rc = read_keys(path, &keys, &count, &st, err, errcap);
	if (rc != 0)
		return rc;
	rc = ERR_NOTFOUND;
	for (size_t i = 0; i < count && rc != 0; i++)
		if (strcmp(keys[i].tenant, tenant) == 0) {
			memcpy(id, keys[i].id, sizeof keys[i].id);
			memcpy(secret, keys[i].secret, sizeof keys[i].secret);
			rc = 0;
		}
	drop_keys(&keys);
	return rc;
}
