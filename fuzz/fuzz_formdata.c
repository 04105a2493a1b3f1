/*
 * fuzz_formdata.c - libFuzzer target for src/http/formdata.c: the files API
 * parses every multipart/form-data upload through it (its Content-Type, then
 * the body).
 *
 * Input: the first line is the Content-Type value, the rest the body (in a
 * buffer of exactly its length: ASan sees any read past it). Always: the
 * boundary is 0 (1..70 bchars), ERR_NOTFOUND or ERR_INVAL with "" in out;
 * find_file returns one of its documented codes and, on 0, a part inside
 * the body that a delimiter line follows, a non-empty file name and values
 * without control characters; on error *out is zeroed; the same input gives
 * the same answer.
 */
#undef NDEBUG /* the checks below are the point of this file */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/formdata.h"

static void check_value(const char *s)
{
	for (; *s; s++)
		assert((unsigned char)*s >= 0x20 || *s == '\t');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t ctlen = nl ? (size_t)(nl - data) : size;
	const char *ct = (const char *)data;
	char boundary[FORMDATA_BOUNDARY_MAX + 1];
	int rc = formdata_boundary(ct, ctlen, boundary, sizeof boundary);
	assert(rc == 0 || rc == ERR_NOTFOUND || rc == ERR_INVAL);
	if (rc != 0) {
		assert(boundary[0] == '\0');
		/* a boundary of its own, so that bodies are fuzzed anyway */
		memcpy(boundary, "b", 2);
	} else {
		size_t n = strlen(boundary);
		assert(n >= 1 && n <= FORMDATA_BOUNDARY_MAX && boundary[n - 1] != ' ');
	}
	size_t len = nl ? size - ctlen - 1 : 0;
	char *body = malloc(len ? len : 1);
	if (!body)
		return 0;
	if (len)
		memcpy(body, nl + 1, len);
	formdata_file f, g;
	rc = formdata_find_file(body, len, boundary, &f);
	assert(rc == 0 || rc == ERR_PARSE || rc == ERR_LIMIT || rc == ERR_NOTFOUND || rc == ERR_CONFLICT);
	if (rc == 0) {
		assert(f.data >= body && f.data + f.len <= body + len);
		assert(f.filename[0] != '\0');
		check_value(f.filename);
		check_value(f.content_type);
		size_t bl = strlen(boundary);
		const char *after = f.data + f.len;
		assert((size_t)(body + len - after) >= 4 + bl);
		assert(memcmp(after, "\r\n--", 4) == 0 && memcmp(after + 4, boundary, bl) == 0);
	} else {
		assert(f.data == NULL && f.len == 0 && f.filename[0] == '\0');
	}
	assert(formdata_find_file(body, len, boundary, &g) == rc);
	assert(rc != 0 || (g.data == f.data && g.len == f.len));
	free(body);
	return 0;
}
