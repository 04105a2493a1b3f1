/* test_tokens.c - access tokens: round trip, expiry, forgery, key rotation,
 * malformed input; refresh tokens are random and hashed. */
#include <string.h>

#include "core/secrets.h"
#include "region/tokens.h"
#include "test.h"

static secrets two_keys(void)
{
	secrets s;
	memset(&s, 0, sizeof s);
	s.key_count = 2;
	strcpy(s.keys[0].id, "old");
	memset(s.keys[0].key, 0x11, 32);
	s.keys[0].len = 32;
	strcpy(s.keys[1].id, "new");
	memset(s.keys[1].key, 0x22, 32);
	s.keys[1].len = 32;
	s.signing = 1;
	return s;
}

static void test_round_trip_and_expiry(void)
{
	secrets s = two_keys();
	token_claims c = {.issued_at = 1000, .expires_at = 1900};
	strcpy(c.user_id, "U1");
	strcpy(c.session_id, "S1");
	char *t = NULL;
	CHECK_EQ_INT(token_sign(&s, &c, &t), 0);
	token_claims out;
	CHECK_EQ_INT(token_verify(&s, t, strlen(t), 1899, &out), TOKEN_OK);
	CHECK_EQ_STR(out.user_id, "U1");
	CHECK_EQ_STR(out.session_id, "S1");
	CHECK_EQ_INT(out.expires_at, 1900);
	CHECK_EQ_INT(token_verify(&s, t, strlen(t), 1900, &out), TOKEN_EXPIRED);
	free(t);
}

static void test_forgery_and_rotation(void)
{
	secrets s = two_keys();
	token_claims c = {.issued_at = 1, .expires_at = 100};
	strcpy(c.user_id, "U1");
	strcpy(c.session_id, "S1");
	char *t = NULL;
	token_sign(&s, &c, &t);
	/* flip one signature character */
	size_t n = strlen(t);
	t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
	CHECK_EQ_INT(token_verify(&s, t, n, 50, &(token_claims){0}), TOKEN_BAD_SIGNATURE);
	free(t);
	/* a token signed with the old key still verifies while the key is listed */
	s.signing = 0;
	token_sign(&s, &c, &t);
	s.signing = 1;
	CHECK_EQ_INT(token_verify(&s, t, strlen(t), 50, &(token_claims){0}), TOKEN_OK);
	/* and not once it is removed */
	s.key_count = 1;
	memcpy(&s.keys[0], &s.keys[1], sizeof s.keys[0]);
	s.signing = 0;
	CHECK_EQ_INT(token_verify(&s, t, strlen(t), 50, &(token_claims){0}), TOKEN_MALFORMED);
	free(t);
}

static void test_malformed(void)
{
	secrets s = two_keys();
	const char *bad[] = {"", "abc", "a.b", "a.b.c", "..", "eyJhbGciOiJub25lIn0.e30.",
			     "eyJhbGciOiJIUzI1NiIsImtpZCI6Im5ldyJ9.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = token_verify(&s, bad[i], strlen(bad[i]), 1, &(token_claims){0});
		CHECK(rc == TOKEN_MALFORMED || rc == TOKEN_BAD_SIGNATURE);
	}
}

static void test_refresh_tokens(void)
{
	char a[44], b[44];
	unsigned char ha[32], hb[32];
	token_new_refresh(a, ha);
	token_new_refresh(b, hb);
	CHECK_EQ_INT(strlen(a), 43);
	CHECK(strcmp(a, b) != 0);
	CHECK(memcmp(ha, hb, 32) != 0);
}

int main(void)
{
	RUN(test_round_trip_and_expiry);
	RUN(test_forgery_and_rotation);
	RUN(test_malformed);
	RUN(test_refresh_tokens);
	return TEST_SUMMARY();
}
