/*
 * test_peers.c - unit tests for src/http/peers.c: which block an address is
 * counted in, the cap, and the hash table against a simple model under many
 * random adds and removes (removal shifts entries back; a bug there loses
 * or duplicates counts).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/peers.h"
#include "test.h"

static http_peer_key key_of(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &in->sin_addr) == 1)
		in->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1)
		in6->sin6_family = AF_INET6;
	http_peer_key k = {0, false};
	CHECK(http_peer_key_of((struct sockaddr *)&ss, &k));
	return k;
}

static bool same_key(const char *a, const char *b)
{
	http_peer_key ka = key_of(a), kb = key_of(b);
	return ka.prefix == kb.prefix && ka.ipv6 == kb.ipv6;
}

static void test_blocks(void)
{
	CHECK(same_key("192.0.2.1", "192.0.2.1"));
	CHECK(!same_key("192.0.2.1", "192.0.2.2"));            /* IPv4: per address */
	CHECK(same_key("2001:db8:1:2::1", "2001:db8:1:2:ffff::9")); /* IPv6: per /64 */
	CHECK(!same_key("2001:db8:1:2::1", "2001:db8:1:3::1"));
	CHECK(same_key("::ffff:192.0.2.1", "192.0.2.1"));      /* v4-mapped is IPv4 */
	CHECK(!same_key("::c000:201", "192.0.2.1"));           /* but not any small v6 */
	char text[64];
	http_peer_key k = key_of("203.0.113.77");
	http_peer_key_text(&k, text, sizeof text);
	CHECK_EQ_STR(text, "203.0.113.0/24");
	k = key_of("2001:db8:1:2::1");
	http_peer_key_text(&k, text, sizeof text);
	CHECK_EQ_STR(text, "2001:db8:1::/48");
	struct sockaddr unix_sa = {.sa_family = AF_UNIX};
	CHECK(!http_peer_key_of(&unix_sa, &k));
}

static void test_cap(void)
{
	http_peers *t = http_peers_new(4);
	http_peer_key a = key_of("192.0.2.1"), b = key_of("192.0.2.2");
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(http_peers_add(t, &a, 3), 0);
	CHECK_EQ_INT(http_peers_add(t, &a, 3), ERR_LIMIT);
	CHECK_EQ_INT(http_peers_count(t, &a), 3);
	CHECK_EQ_INT(http_peers_add(t, &b, 3), 0); /* another address still gets in */
	http_peers_remove(t, &a);
	CHECK_EQ_INT(http_peers_add(t, &a, 3), 0);
	http_peers_remove(t, &b);
	http_peers_remove(t, &b); /* not counted any more: ignored */
	CHECK_EQ_INT(http_peers_count(t, &b), 0);
	/* max_keys distinct blocks at most */
	const char *more[] = {"192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6"};
	for (int i = 0; i < 3; i++) {
		http_peer_key k = key_of(more[i]);
		CHECK_EQ_INT(http_peers_add(t, &k, 3), 0);
	}
	http_peer_key k = key_of(more[3]);
	CHECK_EQ_INT(http_peers_add(t, &k, 3), ERR_LIMIT);
	http_peers_free(&t);
	CHECK(t == NULL);
	http_peers_free(&t);
}

/* Many keys in a small table (long probe runs that wrap around), random
 * adds and removes, every count checked against a plain array. */
static void test_against_model(void)
{
	enum { KEYS = 200, STEPS = 200000 };
	http_peers *t = http_peers_new(KEYS);
	int model[KEYS] = {0};
	srand(7);
	for (int step = 0; step < STEPS; step++) {
		int i = rand() % KEYS;
		/* keys that differ in few bits, and v4 vs v6 with the same prefix */
		http_peer_key k = {(uint64_t)(i / 2) << (i % 3 ? 0 : 40), i % 2 == 1};
		if (rand() % 3 == 0) {
			http_peers_remove(t, &k);
			if (model[i])
				model[i]--;
		} else {
			int rc = http_peers_add(t, &k, 5);
			CHECK_EQ_INT(rc, model[i] < 5 ? 0 : ERR_LIMIT);
			if (rc == 0)
				model[i]++;
		}
		if (step % 1000 == 0)
			for (int j = 0; j < KEYS; j++) {
				http_peer_key kj = {(uint64_t)(j / 2) << (j % 3 ? 0 : 40), j % 2 == 1};
				CHECK_EQ_INT(http_peers_count(t, &kj), model[j]);
			}
	}
	http_peers_free(&t);
}

int main(void)
{
	RUN(test_blocks);
	RUN(test_cap);
	RUN(test_against_model);
	return TEST_SUMMARY();
}
