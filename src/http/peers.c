/*
 * peers.c - open connections per client address block; see peers.h.
 *
 * An open-addressing hash table with linear probing, sized once to a power
 * of two at least twice max_keys, so it is at most half full and a probe
 * ends quickly. Removal shifts the following entries back (no tombstones),
 * so a long-running server does not degrade. The hash is keyed with a
 * random seed drawn at creation: an attacker choosing IPv6 /64s cannot
 * predict which ones collide.
 *
 * Invariants: an entry is in use iff count > 0; every key in use is found by
 * probing from its home slot without crossing an unused slot; used <= max_keys.
 */
#include "http/peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/err.h"

typedef struct peer_entry {
	uint64_t prefix;
	bool ipv6;
	int count; /* 0: slot unused */
} peer_entry;

struct http_peers {
	peer_entry *slots;
	size_t mask;     /* capacity - 1 */
	size_t used;
	size_t max_keys;
	uint64_t seed;
};

bool http_peer_key_of(const struct sockaddr *sa, http_peer_key *key)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		key->prefix = ntohl(in->sin_addr.s_addr);
		key->ipv6 = false;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *b = in6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			key->prefix = (uint64_t)b[12] << 24 | (uint64_t)b[13] << 16 | (uint64_t)b[14] << 8 | b[15];
			key->ipv6 = false;
			return true;
		}
		uint64_t p = 0;
		for (int i = 0; i < 8; i++)
			p = p << 8 | b[i];
		key->prefix = p;
		key->ipv6 = true;
		return true;
	}
	return false;
}

void http_peer_key_text(const http_peer_key *key, char *out, size_t cap)
{
	if (!key->ipv6) {
		uint32_t a = (uint32_t)key->prefix;
		snprintf(out, cap, "%u.%u.%u.0/24", a >> 24, a >> 16 & 255, a >> 8 & 255);
		return;
	}
	uint64_t p = key->prefix;
	snprintf(out, cap, "%x:%x:%x::/48", (unsigned)(p >> 48), (unsigned)(p >> 32 & 0xffff),
		 (unsigned)(p >> 16 & 0xffff));
}

/* splitmix64's finaliser over the seeded key: cheap, and every input bit
 * reaches every output bit. */
static size_t peers_hash(const http_peers *t, const http_peer_key *key)
{
	uint64_t x = key->prefix ^ t->seed ^ (key->ipv6 ? 0x9e3779b97f4a7c15ull : 0);
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (size_t)x & t->mask;
}

http_peers *http_peers_new(size_t max_keys)
{
	http_peers *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	size_t cap = 16;
	while (cap < 2 * max_keys)
		cap *= 2;
	t->slots = calloc(cap, sizeof *t->slots);
	if (!t->slots) {
		free(t);
		return NULL;
	}
	t->mask = cap - 1;
	t->max_keys = max_keys;
	if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != (ssize_t)sizeof t->seed)
		t->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uintptr_t)t;
	return t;
}

void http_peers_free(http_peers **pt)
{
	http_peers *t = *pt;
	if (!t)
		return;
	free(t->slots);
	free(t);
	*pt = NULL;
}

/* The slot holding key, or the unused slot where it would go. */
static peer_entry *peers_find(const http_peers *t, const http_peer_key *key)
{
	size_t i = peers_hash(t, key);
	for (;;) {
		peer_entry *e = &t->slots[i];
		if (e->count == 0 || (e->prefix == key->prefix && e->ipv6 == key->ipv6))
			return e;
		i = (i + 1) & t->mask;
	}
}

int http_peers_add(http_peers *t, const http_peer_key *key, int cap)
{
	peer_entry *e = peers_find(t, key);
	if (e->count == 0) {
		if (t->used >= t->max_keys || cap < 1)
			return ERR_LIMIT;
		e->prefix = key->prefix;
		e->ipv6 = key->ipv6;
		t->used++;
	} else if (e->count >= cap) {
		return ERR_LIMIT;
	}
	e->count++;
	return 0;
}

void http_peers_remove(http_peers *t, const http_peer_key *key)
{
	peer_entry *e = peers_find(t, key);
	if (e->count == 0 || --e->count > 0)
		return;
	t->used--;
	/* backward shift: move up every following entry that may sit in the
	 * freed slot (its home is not cyclically within (hole, it]) */
	size_t hole = (size_t)(e - t->slots);
	size_t i = hole;
	for (;;) {
		i = (i + 1) & t->mask;
		peer_entry *next = &t->slots[i];
		if (next->count == 0)
			break;
		http_peer_key k = {next->prefix, next->ipv6};
		size_t home = peers_hash(t, &k);
		bool stays = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
		if (stays)
			continue;
		t->slots[hole] = *next;
		hole = i;
	}
	t->slots[hole].count = 0;
}

int http_peers_count(const http_peers *t, const http_peer_key *key)
{
	return peers_find(t, key)->count;
}
