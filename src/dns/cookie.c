/*
 * cookie.c - RFC 9018 server cookies (cookie.h). SipHash-2-4 comes from
 * OpenSSL 3's EVP_MAC "SIPHASH" (8-byte output, the default 2-4 rounds).
 */
#include <netinet/in.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include "core/err.h"
#include "dns/cookie.h"

int dns_cookie_key_derive(const uint8_t *material, size_t n, dns_cookie_key *out)
{
	static const char label[] = "tandem dns server cookie v1";
	unsigned char mac[32];
	unsigned int len = sizeof mac;
	if (!HMAC(EVP_sha256(), material, (int)n, (const unsigned char *)label, sizeof label - 1, mac, &len))
		return ERR_TLS;
	memcpy(out->k, mac, sizeof out->k);
	OPENSSL_cleanse(mac, sizeof mac);
	return 0;
}

static int siphash(const dns_cookie_key *k, const uint8_t *in, size_t n, uint8_t out[8])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	size_t size = 8, outlen = 0;
	OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_construct_end()};
	int ok = ctx && EVP_MAC_init(ctx, k->k, sizeof k->k, params) == 1 && EVP_MAC_update(ctx, in, n) == 1 &&
		 EVP_MAC_final(ctx, out, &outlen, 8) == 1 && outlen == 8;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ok ? 0 : ERR_TLS;
}

/* SipHash(client cookie | version | reserved | timestamp | client IP). */
static int cookie_hash(const dns_cookie_key *k, const uint8_t cc[8], const uint8_t head[8],
		       const struct sockaddr *from, uint8_t out[8])
{
	uint8_t in[8 + 8 + 16];
	memcpy(in, cc, 8);
	memcpy(in + 8, head, 8);
	size_t n = 16;
	if (from->sa_family == AF_INET) {
		memcpy(in + n, &((const struct sockaddr_in *)from)->sin_addr, 4);
		n += 4;
	} else if (from->sa_family == AF_INET6) {
		memcpy(in + n, ((const struct sockaddr_in6 *)from)->sin6_addr.s6_addr, 16);
		n += 16;
	} else {
		return ERR_INVAL;
	}
	return siphash(k, in, n, out);
}

int dns_cookie_make(const dns_cookie_key *k, const uint8_t cc[8], const struct sockaddr *from, uint32_t now,
		    uint8_t out[DNS_SERVER_COOKIE_BYTES])
{
	uint8_t head[8] = {1, 0, 0, 0, (uint8_t)(now >> 24), (uint8_t)(now >> 16), (uint8_t)(now >> 8), (uint8_t)now};
	memcpy(out, head, 8);
	return cookie_hash(k, cc, head, from, out + 8);
}

bool dns_cookie_valid(const dns_cookie_key *k, const uint8_t cc[8], const uint8_t *sc, size_t len,
		      const struct sockaddr *from, uint32_t now)
{
	if (len != DNS_SERVER_COOKIE_BYTES || sc[0] != 1)
		return false;
	uint32_t t = (uint32_t)sc[4] << 24 | (uint32_t)sc[5] << 16 | (uint32_t)sc[6] << 8 | sc[7];
	/* serial-number arithmetic (RFC 1982) around now */
	int32_t age = (int32_t)(now - t);
	if (age > 3600 || age < -300)
		return false;
	uint8_t h[8];
	if (cookie_hash(k, cc, sc, from, h) != 0)
		return false;
	return CRYPTO_memcmp(h, sc + 8, 8) == 0;
}
