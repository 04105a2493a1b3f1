/*
 * fuzz_jsonpos.c - libFuzzer target for the JSON error describer
 * (src/core/jsonpos.c): every malformed request body reaches it, so it must
 * never read outside the body it is given, whatever jansson reported.
 *
 * The input is parsed as a request body is (jansson, duplicates rejected,
 * any value); on failure the message must be "malformed JSON..." (or the
 * out-of-memory text), NUL-terminated within its buffer, with a line and
 * column no larger than the body allows, and free of jansson's own words.
 * The body is copied to exactly its size so AddressSanitizer sees any read
 * past it.
 */
#undef NDEBUG /* the checks below are the point of this file */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/jsonpos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = malloc(size ? size : 1);
	if (!body)
		return 0;
	memcpy(body, data, size);
	json_error_t e;
	json_t *j = json_loadb(body, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	if (j) {
		json_decref(j);
		free(body);
		return 0;
	}
	char out[256];
	memset(out, 'X', sizeof out);
	int rc = jsonpos_describe(body, size, &e, out, sizeof out);
	assert(rc == 0 || rc == ERR_NOMEM);
	assert(memchr(out, '\0', sizeof out) != NULL);
	if (rc == 0) {
		assert(strncmp(out, "malformed JSON", 14) == 0);
		assert(!strstr(out, " near '") && !strstr(out, "' expected") && !strstr(out, "JSON_"));
		int line = 0, column = 0;
		if (sscanf(out, "malformed JSON at line %d, column %d", &line, &column) == 2) {
			size_t lines = 1;
			for (size_t i = 0; i < size; i++)
				lines += body[i] == '\n';
			assert(line >= 1 && (size_t)line <= lines);
			assert(column >= 1 && (size_t)column <= size + 1);
		}
	}
	/* a short output buffer truncates, never overflows */
	char tiny[8];
	jsonpos_describe(body, size, &e, tiny, sizeof tiny);
	assert(memchr(tiny, '\0', sizeof tiny) != NULL);
	free(body);
	return 0;
}
