/* tokens.c - HS256 access tokens and opaque refresh tokens; see tokens.h. */
#include "region/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"

#define TOKEN_MAX 1024

int token_sign(const secrets *s, const token_claims *c, char **out)
{
	const secrets_key *k = &s->keys[s->signing];
	char header[128], payload[320];
	int hl = snprintf(header, sizeof header, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->id);
	int pl = snprintf(payload, sizeof payload,
			  "{\"iss\":\"tandem\",\"sub\":\"%s\",\"sid\":\"%s\",\"iat\":%lld,\"exp\":%lld,"
			  "\"lsn\":%llu}",
			  c->user_id, c->session_id, (long long)c->issued_at, (long long)c->expires_at,
			  (unsigned long long)c->seq);
	if (hl >= (int)sizeof header || pl >= (int)sizeof payload)
		return ERR_INVAL;
	char *t = malloc(TOKEN_MAX);
	if (!t)
		return ERR_NOMEM;
	size_t n = util_b64url_encode(header, (size_t)hl, t);
	t[n++] = '.';
	n += util_b64url_encode(payload, (size_t)pl, t + n);
	unsigned char mac[32];
	util_hmac_sha256(k->key, k->len, t, n, mac);
	t[n++] = '.';
	util_b64url_encode(mac, sizeof mac, t + n);
	*out = t;
	return 0;
}

static int copy_id(json_t *obj, const char *name, char *out)
{
	const char *v = json_string_value(json_object_get(obj, name));
	if (!v || strlen(v) == 0 || strlen(v) >= TOKEN_ID_MAX)
		return -1;
	strcpy(out, v);
	return 0;
}

int token_verify(const secrets *s, const char *token, size_t len, int64_t now_s, token_claims *c)
{
	if (len == 0 || len >= TOKEN_MAX)
		return TOKEN_MALFORMED;
	const char *dot1 = memchr(token, '.', len);
	if (!dot1)
		return TOKEN_MALFORMED;
	const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (!dot2)
		return TOKEN_MALFORMED;
	char header[256], payload[512];
	unsigned char sig[64];
	long hl = util_b64url_decode(token, (size_t)(dot1 - token), header, sizeof header - 1);
	long pl = util_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof payload - 1);
	long sl = util_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof sig);
	if (hl <= 0 || pl <= 0 || sl != 32)
		return TOKEN_MALFORMED;
	header[hl] = payload[pl] = '\0';
	json_t *h = json_loadb(header, (size_t)hl, JSON_REJECT_DUPLICATES, NULL);
	const char *alg = json_string_value(json_object_get(h, "alg"));
	const char *kid = json_string_value(json_object_get(h, "kid"));
	const secrets_key *k = kid ? secrets_find(s, kid) : NULL;
	int bad_header = !alg || strcmp(alg, "HS256") != 0 || !k;
	unsigned char mac[32];
	if (!bad_header)
		util_hmac_sha256(k->key, k->len, token, (size_t)(dot2 - token), mac);
	json_decref(h);
	if (bad_header)
		return TOKEN_MALFORMED;
	if (!util_equal_ct(mac, sig, 32))
		return TOKEN_BAD_SIGNATURE;
	json_t *p = json_loadb(payload, (size_t)pl, JSON_REJECT_DUPLICATES, NULL);
	int rc = TOKEN_OK;
	json_t *exp = json_object_get(p, "exp"), *iat = json_object_get(p, "iat");
	if (!json_is_integer(exp) || !json_is_integer(iat) || copy_id(p, "sub", c->user_id) ||
	    copy_id(p, "sid", c->session_id)) {
		rc = TOKEN_MALFORMED;
	} else {
		c->expires_at = json_integer_value(exp);
		c->issued_at = json_integer_value(iat);
		json_int_t lsn = json_integer_value(json_object_get(p, "lsn"));
		c->seq = lsn > 0 ? (uint64_t)lsn : 0;
		if (now_s >= c->expires_at)
			rc = TOKEN_EXPIRED;
	}
	json_decref(p);
	return rc;
}

void token_new_refresh(char out[44], unsigned char hash[32])
{
	unsigned char raw[32];
	util_random(raw, sizeof raw);
	util_b64url_encode(raw, sizeof raw, out);
	util_sha256(out, 43, hash);
}

#define TOKEN_CACHE_SLOTS 512

typedef struct token_cache_slot {
	char token[TOKEN_MAX];
	size_t len;
	token_claims claims;
} token_cache_slot;

static token_cache_slot *token_cache;

int token_verify_cached(const secrets *s, const char *token, size_t len, int64_t now_s,
			token_claims *c)
{
	if (len == 0 || len >= TOKEN_MAX)
		return TOKEN_MALFORMED;
	if (!token_cache)
		token_cache = calloc(TOKEN_CACHE_SLOTS, sizeof *token_cache); /* lives as long as the process */
	/* FNV-1a of the signature end selects the slot */
	uint32_t h = 2166136261u;
	size_t from = len > 24 ? len - 24 : 0;
	for (size_t i = from; i < len; i++)
		h = (h ^ (unsigned char)token[i]) * 16777619u;
	token_cache_slot *slot = token_cache ? &token_cache[h % TOKEN_CACHE_SLOTS] : NULL;
	if (slot && slot->len == len && memcmp(slot->token, token, len) == 0) {
		*c = slot->claims;
		return now_s >= c->expires_at ? TOKEN_EXPIRED : TOKEN_OK;
	}
	int rc = token_verify(s, token, len, now_s, c);
	if (rc == TOKEN_OK && slot) {
		memcpy(slot->token, token, len);
		slot->len = len;
		slot->claims = *c;
	}
	return rc;
}
