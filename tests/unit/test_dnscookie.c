/*
 * test_dnscookie.c - unit tests for src/dns/cookie.c (RFC 9018 server
 * cookies): a cookie made for a client cookie and address is valid for
 * them for an hour (and up to 5 minutes of clock skew ahead), and for
 * nothing else: another address, another client cookie, another secret,
 * a changed byte, a wrong version or length.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "dns/cookie.h"
#include "test.h"

static void test_valid_only_for_its_client(void)
{
	dns_cookie_key k, other;
	const uint8_t material[32] = {1, 2, 3};
	const uint8_t material2[32] = {1, 2, 4};
	CHECK_EQ_INT(dns_cookie_key_derive(material, sizeof material, &k), 0);
	CHECK_EQ_INT(dns_cookie_key_derive(material2, sizeof material2, &other), 0);
	dns_cookie_key again;
	CHECK_EQ_INT(dns_cookie_key_derive(material, sizeof material, &again), 0);
	CHECK(memcmp(k.k, again.k, sizeof k.k) == 0); /* every instance derives the same */
	struct sockaddr_in a = {.sin_family = AF_INET}, b = {.sin_family = AF_INET};
	inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
	inet_pton(AF_INET, "192.0.2.2", &b.sin_addr);
	const uint8_t cc[8] = {9, 8, 7, 6, 5, 4, 3, 2}, cc2[8] = {9, 8, 7, 6, 5, 4, 3, 3};
	uint8_t sc[16];
	uint32_t now = 1800000000u;
	CHECK_EQ_INT(dns_cookie_make(&k, cc, (struct sockaddr *)&a, now, sc), 0);
	CHECK_EQ_INT(sc[0], 1); /* version 1 */
	CHECK(sc[1] == 0 && sc[2] == 0 && sc[3] == 0);
	CHECK_EQ_INT((uint32_t)sc[4] << 24 | (uint32_t)sc[5] << 16 | (uint32_t)sc[6] << 8 | sc[7], now);
	CHECK(dns_cookie_valid(&k, cc, sc, 16, (struct sockaddr *)&a, now));
	CHECK(dns_cookie_valid(&k, cc, sc, 16, (struct sockaddr *)&a, now + 3600));
	CHECK(!dns_cookie_valid(&k, cc, sc, 16, (struct sockaddr *)&a, now + 3601)); /* an hour old */
	CHECK(dns_cookie_valid(&k, cc, sc, 16, (struct sockaddr *)&a, now - 300));
	CHECK(!dns_cookie_valid(&k, cc, sc, 16, (struct sockaddr *)&a, now - 301)); /* too far ahead */
	CHECK(!dns_cookie_valid(&k, cc, sc, 16, (struct sockaddr *)&b, now));      /* another address */
	CHECK(!dns_cookie_valid(&k, cc2, sc, 16, (struct sockaddr *)&a, now));     /* another client cookie */
	CHECK(!dns_cookie_valid(&other, cc, sc, 16, (struct sockaddr *)&a, now));  /* another secret */
	CHECK(!dns_cookie_valid(&k, cc, sc, 8, (struct sockaddr *)&a, now));       /* a short one */
	for (int i = 0; i < 16; i++) {
		uint8_t t[16];
		memcpy(t, sc, 16);
		t[i] ^= 0x40;
		CHECK(!dns_cookie_valid(&k, cc, t, 16, (struct sockaddr *)&a, now));
	}
	struct sockaddr_in6 x = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "2001:db8::1", &x.sin6_addr);
	CHECK_EQ_INT(dns_cookie_make(&k, cc, (struct sockaddr *)&x, now, sc), 0);
	CHECK(dns_cookie_valid(&k, cc, sc, 16, (struct sockaddr *)&x, now));
	CHECK(!dns_cookie_valid(&k, cc, sc, 16, (struct sockaddr *)&a, now));
}

int main(void)
{
	RUN(test_valid_only_for_its_client);
	return TEST_SUMMARY();
}
