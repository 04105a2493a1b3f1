/*
 * tokens.h - access tokens: compact JWS (HS256) signed with the deployment's
 * key from the secrets file, so every region verifies every region's tokens.
 *
 *   header  {"alg":"HS256","typ":"JWT","kid":"<key id>"}
 *   payload {"iss":"tandem","sub":"<user id>","sid":"<session id>","iat":s,"exp":s,"lsn":n}
 *
 * A valid signature and exp are necessary, not sufficient: the caller also
 * checks that the session is not revoked (logout, refresh-token reuse).
 * Refresh tokens are opaque random strings stored only as SHA-256 hashes.
 */
#ifndef TANDEM_REGION_TOKENS_H
#define TANDEM_REGION_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "core/secrets.h"

#define TOKEN_ID_MAX 40

typedef struct token_claims {
	char user_id[TOKEN_ID_MAX];
	char session_id[TOKEN_ID_MAX];
	int64_t issued_at;  /* seconds */
	int64_t expires_at; /* seconds */
	uint64_t seq;       /* position of the write that created the session (0: unknown);
			     * a region that has not applied it yet waits for it */
} token_claims;

enum { TOKEN_OK = 0, TOKEN_MALFORMED = 1, TOKEN_BAD_SIGNATURE = 2, TOKEN_EXPIRED = 3 };

/* Sign; *out is malloc'd. 0 or ERR_NOMEM. */
int token_sign(const secrets *s, const token_claims *c, char **out);
/* Verify at time now_s: TOKEN_OK with *c filled, or a TOKEN_* reason. */
int token_verify(const secrets *s, const char *token, size_t len, int64_t now_s, token_claims *c);
/* The same, remembering recently verified tokens (a token is immutable, so
 * its signature check and decoding need not be repeated on every request;
 * expiry is still checked each time). Event-loop thread only. */
int token_verify_cached(const secrets *s, const char *token, size_t len, int64_t now_s,
			token_claims *c);
/* A new refresh token (43 chars of base64url, 256 bits) and its hash. */
void token_new_refresh(char out[44], unsigned char hash[32]);

#endif
