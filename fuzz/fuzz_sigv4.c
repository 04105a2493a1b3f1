/*
 * fuzz_sigv4.c - libFuzzer target for src/objects/sigv4.c: the S3 server
 * hands every request's target and Authorization header to sigv4_verify, so
 * the header and query parsing must hold on any bytes.
 *
 * The input is split at NUL bytes into: a request-target, an Authorization
 * value, field lines ("name:value" separated by '\n'), and three strings for
 * the round trip below. Checks:
 *   1. sigv4_verify on the message built from the first three parts returns
 *      0, ERR_AUTH, ERR_NOTFOUND or ERR_NOMEM; on failure the error has a
 *      code, a status among 400/403/411/500 and a message that never holds
 *      the secret (unless the client sent it itself: messages echo input); the signing key is wiped from a failed result.
 *   2. Round trip: sigv4_presign of a path and one query parameter (the last
 *      three parts; parameter names starting "X-Amz-" are left out, they are
 *      the presign's own) gives a target that sigv4_verify accepts, with the
 *      same access key. A path or value the signer can encode but the
 *      verifier reads differently shows here.
 */
#undef NDEBUG /* the checks below are the point of this file */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "http/parser.h"
#include "objects/sigv4.h"

#define AKID "AKIDFUZZ"
#define SECRET "fuzz-secret-0123456789"
#define NOW 1369353600 /* 20130524T000000Z */

static int lookup(void *arg, const char *akid, char secret[SIGV4_SECRET_MAX + 1])
{
	(void)arg;
	if (strcmp(akid, AKID) != 0)
		return ERR_NOTFOUND;
	strcpy(secret, SECRET);
	return 0;
}

static int64_t fixed_clock(void *arg)
{
	(void)arg;
	return NOW;
}

static sigv4_verifier *verifier;

/* The next NUL-separated part of data[*off..len), copied and NUL-terminated. */
static char *next_part(const uint8_t *data, size_t len, size_t *off)
{
	size_t start = *off, end = start;
	while (end < len && data[end] != 0)
		end++;
	char *s = malloc(end - start + 1);
	assert(s);
	memcpy(s, data + start, end - start);
	s[end - start] = '\0';
	*off = end < len ? end + 1 : end;
	return s;
}

static void check_result(int rc, const sigv4_result *r, bool secret_in_input)
{
	static const unsigned char zero[32];
	assert(rc == 0 || rc == ERR_AUTH || rc == ERR_NOTFOUND || rc == ERR_NOMEM);
	if (rc == 0) {
		assert(r->access_key_id[0]);
		return;
	}
	assert(r->error.code && r->error.code[0]);
	assert(r->error.status == 400 || r->error.status == 403 || r->error.status == 411 ||
	       r->error.status == 500);
	assert(memchr(r->error.message, '\0', sizeof r->error.message));
	/* messages echo what the client sent (a bad scope...), never what it did not */
	assert(secret_in_input || !strstr(r->error.message, SECRET));
	assert(memcmp(r->chain.key, zero, 32) == 0);
}

static void verify_parts(const char *target, const char *auth, char *lines)
{
	char *lines_copy = strdup(lines);
	assert(lines_copy);
	http_field fields[64];
	size_t n = 0;
	fields[n++] = (http_field){"Host", 4, "example.com", 11};
	if (auth[0])
		fields[n++] = (http_field){"Authorization", 13, auth, strlen(auth)};
	for (char *line = lines; line && *line && n < 64;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *colon = strchr(line, ':');
		if (colon && colon > line)
			fields[n++] = (http_field){line, (size_t)(colon - line), colon + 1,
						   strlen(colon + 1)};
		line = nl ? nl + 1 : NULL;
	}
	http_message m = {
		.kind = HTTP_REQUEST,
		.method = "GET",
		.target = target,
		.version_minor = 1,
		.fields = fields,
		.field_count = n,
		.content_length = -1,
	};
	sigv4_result r;
	int rc = sigv4_verify(verifier, &m, &r);
	bool secret_in_input = strstr(target, SECRET) || strstr(auth, SECRET) || strstr(lines_copy, SECRET);
	free(lines_copy);
	check_result(rc, &r, secret_in_input);
	sigv4_result_clear(&r);
}

static void round_trip(const char *path_part, const char *name, const char *value)
{
	char path[512];
	snprintf(path, sizeof path, "/%s", path_part);
	sigv4_param q = {name, value};
	bool with_param = name[0] && strncmp(name, "X-Amz-", 6) != 0;
	sigv4_param host = {"host", "example.com"};
	sigv4_sign_params p = {
		.method = "GET",
		.path = path,
		.query = &q,
		.query_count = with_param ? 1 : 0,
		.headers = &host,
		.header_count = 1,
		.access_key_id = AKID,
		.secret_access_key = SECRET,
		.region = "us-east-1",
		.now_s = NOW,
		.expires_s = 3600,
	};
	buf url;
	buf_init(&url, 1 << 16);
	int rc = sigv4_presign(&p, &url);
	assert(rc == 0 || rc == ERR_LIMIT || rc == ERR_NOMEM);
	if (rc == 0) {
		http_field f = {"Host", 4, "example.com", 11};
		http_message m = {
			.kind = HTTP_REQUEST,
			.method = "GET",
			.target = url.data,
			.version_minor = 1,
			.fields = &f,
			.field_count = 1,
			.content_length = -1,
		};
		sigv4_result r;
		rc = sigv4_verify(verifier, &m, &r);
		if (rc != 0 && rc != ERR_NOMEM) {
			fprintf(stderr, "round trip failed: %s %s\n%s\n", r.error.code,
				r.error.message, url.data);
			abort();
		}
		if (rc == 0)
			assert(strcmp(r.access_key_id, AKID) == 0 && r.presigned);
		sigv4_result_clear(&r);
	}
	buf_free(&url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (!verifier) {
		sigv4_config cfg = {.region = "us-east-1", .lookup = lookup, .clock = fixed_clock};
		verifier = sigv4_verifier_new(&cfg);
		assert(verifier);
	}
	size_t off = 0;
	char *target = next_part(data, len, &off);
	char *auth = next_part(data, len, &off);
	char *lines = next_part(data, len, &off);
	char *path = next_part(data, len, &off);
	char *name = next_part(data, len, &off);
	char *value = next_part(data, len, &off);
	verify_parts(target, auth, lines);
	round_trip(path, name, value);
	free(target);
	free(auth);
	free(lines);
	free(path);
	free(name);
	free(value);
	return 0;
}
