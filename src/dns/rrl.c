/*
 * rrl.c - response rate limiting (rrl.h has the scheme). A bucket holds
 * its prefix's hash (to tell a new prefix from the one it holds), its
 * tokens in thousandths of an answer, when it was last refilled, and the
 * count of limited answers for the slip.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "dns/rrl.h"

typedef struct bucket {
	uint64_t key;        /* hash of the prefix; 0: empty */
	int64_t last_ms;
	int64_t milli_tokens;
	uint32_t limited;
} bucket;

struct dns_rrl {
	bucket *b;
	unsigned mask;
	unsigned rate, slip;
	uint64_t k0, k1;     /* the hash key */
	uint64_t limited;
};

dns_rrl *dns_rrl_new(unsigned size, unsigned rate, unsigned slip)
{
	unsigned n = 64;
	while (n < size && n < (1u << 24))
		n <<= 1;
	dns_rrl *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->b = calloc(n, sizeof *r->b);
	if (!r->b) {
		free(r);
		return NULL;
	}
	r->mask = n - 1;
	r->rate = rate;
	r->slip = slip;
	if (RAND_bytes((unsigned char *)&r->k0, sizeof r->k0) != 1 ||
	    RAND_bytes((unsigned char *)&r->k1, sizeof r->k1) != 1) {
		r->k0 = (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ull; /* still spreads; not secret */
		r->k1 = (uint64_t)(uintptr_t)r->b;
	}
	return r;
}

void dns_rrl_free(dns_rrl **r)
{
	if (!*r)
		return;
	free((*r)->b);
	free(*r);
	*r = NULL;
}

uint64_t dns_rrl_limited(const dns_rrl *r)
{
	return r->limited;
}

/* A keyed 64-bit mix of the prefix bytes (not a MAC: it only has to keep
 * an attacker from choosing colliding prefixes without knowing the key). */
static uint64_t prefix_hash(const dns_rrl *r, const uint8_t *p, size_t n, int family)
{
	uint64_t h = r->k0 ^ (uint64_t)family;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
		h ^= h >> 29;
	}
	h ^= r->k1;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

dns_rrl_verdict dns_rrl_check(dns_rrl *r, const struct sockaddr *from, int64_t now_ms)
{
	if (r->rate == 0)
		return DNS_RRL_SEND;
	uint64_t key;
	if (from->sa_family == AF_INET) {
		const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)from)->sin_addr;
		key = prefix_hash(r, a, 3, AF_INET); /* /24 */
	} else if (from->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)from)->sin6_addr.s6_addr;
		key = prefix_hash(r, a, 7, AF_INET6); /* /56 */
	} else {
		return DNS_RRL_SEND;
	}
	bucket *b = &r->b[key & r->mask];
	int64_t full = (int64_t)r->rate * 1000; /* burst: one second's worth */
	if (b->key != key) {
		/* a new prefix (or a collision): it starts full */
		b->key = key;
		b->last_ms = now_ms;
		b->milli_tokens = full;
		b->limited = 0;
	} else if (now_ms > b->last_ms) {
		int64_t add = (now_ms - b->last_ms) * (int64_t)r->rate; /* rate/s = rate/1000 per ms, in 1/1000 */
		b->milli_tokens = b->milli_tokens + add > full ? full : b->milli_tokens + add;
		b->last_ms = now_ms;
	}
	if (b->milli_tokens >= 1000) {
		b->milli_tokens -= 1000;
		return DNS_RRL_SEND;
	}
	r->limited++;
	b->limited++;
	if (r->slip && b->limited % r->slip == 0)
		return DNS_RRL_SLIP;
	return DNS_RRL_DROP;
}
