/*
 * fuzz_forwarded.c - libFuzzer target for src/http/forwarded.c, the parser
 * of the Forwarded field a region reads from its trusted proxies. Must
 * never read past the input (it is copied into an exact-size allocation,
 * so ASan sees any overread), and what it returns must be an address
 * inet_pton accepts, written within the output's size and unchanged
 * output otherwise.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/forwarded.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v = malloc(size ? size : 1);
	if (!v)
		return 0;
	memcpy(v, data, size);
	char out[64];
	memset(out, 'x', sizeof out);
	/* an output size from the input's first byte, so short ones are tried */
	size_t cap = size ? 1 + data[0] % sizeof out : sizeof out;
	if (http_forwarded_for(v, size, out, cap)) {
		size_t n = strnlen(out, sizeof out);
		assert(n < cap);
		unsigned char a[16];
		assert(inet_pton(AF_INET, out, a) == 1 || inet_pton(AF_INET6, out, a) == 1);
	} else {
		for (size_t i = 0; i < sizeof out; i++)
			assert(out[i] == 'x');
	}
	free(v);
	return 0;
}
