/*
 * test_dnsroute.c - unit tests for src/dns/route.c: route lines and their
 * refusals, the choice of each policy under every health view (withdrawal
 * of an unhealthy region, fail open, the primary followed, weights), and
 * the latency map's preference and ECS scope (the longest prefix wins; the
 * scope never covers a prefix answered otherwise).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "dns/route.h"
#include "test.h"

static dns_route parse_ok(const char *text, dns_regions *t)
{
	dns_route r;
	char err[200] = "";
	int rc = dns_route_parse(text, t, 1, &r, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "parse '%s': %s\n", text, err);
	CHECK_EQ_INT(rc, 0);
	return r;
}

static void test_parse(void)
{
	dns_regions t = {.n = 0};
	dns_route r = parse_ok("latency eu=127.0.0.2,::2 us=127.0.0.3 ttl=30", &t);
	CHECK_EQ_INT(r.policy, DNS_POLICY_LATENCY);
	CHECK_EQ_INT(r.ttl, 30);
	CHECK_EQ_INT(r.n, 2);
	CHECK_EQ_INT(t.n, 2);
	CHECK_EQ_STR(t.name[r.r[0].region], "eu");
	CHECK_EQ_INT(r.r[0].n4, 1);
	CHECK_EQ_INT(r.r[0].n6, 1);
	CHECK_EQ_INT(r.r[0].a4[0][3], 2);
	CHECK_EQ_INT(r.r[1].n6, 0);
	r = parse_ok("weighted us=10.0.0.1 eu=10.0.0.2 weights=eu:3,us:0", &t);
	CHECK_EQ_INT(r.ttl, DNS_ROUTE_TTL_DEFAULT);
	CHECK_EQ_INT(r.r[0].region, 1); /* us: named second above */
	CHECK_EQ_INT(r.r[0].weight, 0);
	CHECK_EQ_INT(r.r[1].weight, 3);
	CHECK_EQ_INT(t.n, 2);
	const char *bad[] = {
		"",                                   /* no policy */
		"nearest eu=1.2.3.4",                 /* unknown policy */
		"latency",                            /* no region */
		"failover eu=1.2.3.4",                /* failover needs two */
		"latency eu=1.2.3",                   /* not an address */
		"latency eu=",                        /* no address */
		"latency eu=1.2.3.4 eu=1.2.3.5",      /* twice */
		"latency EU=1.2.3.4",                 /* not a region name */
		"latency eu=1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5", /* too many */
		"latency eu=1.2.3.4 ttl=x",
		"latency eu=1.2.3.4 weights=eu:2",    /* weights on a latency route */
		"weighted eu=1.2.3.4 weights=us:2",   /* a region not in the set */
		"weighted eu=1.2.3.4 weights=eu:256",
		"latency eu=1.2.3.4 junk",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[200] = "";
		dns_regions t2 = {.n = 0};
		int rc = dns_route_parse(bad[i], &t2, 1, &r, err, sizeof err);
		if (rc == 0)
			fprintf(stderr, "accepted: '%s'\n", bad[i]);
		CHECK_EQ_INT(rc, ERR_PARSE);
		CHECK(err[0] != '\0');
	}
}

static void test_regions_table(void)
{
	dns_regions t = {.n = 0};
	char name[16];
	for (int i = 0; i < DNS_REGIONS_MAX; i++) {
		snprintf(name, sizeof name, "r%d", i);
		CHECK_EQ_INT(dns_regions_index(&t, name, 10 + i), i);
	}
	CHECK_EQ_INT(dns_regions_index(&t, "r3", 99), 3);
	CHECK_EQ_INT(t.line[3], 13);
	CHECK_EQ_INT(dns_regions_index(&t, "one-more", 1), -1); /* full */
	CHECK_EQ_INT(dns_regions_index(&t, "9x", 1), -1);
}

#define VIEW(healthy, primary) ((dns_health_view)((healthy) | ((primary) << 8)))

static void test_choose_latency(void)
{
	dns_regions t = {.n = 0};
	dns_route r = parse_ok("latency eu=127.0.0.2 us=127.0.0.3", &t); /* eu 0, us 1 */
	dns_prefs us_first = {.region = {1, 0}, .n = 2};
	bool fo;
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(3, 0), NULL, 0, &fo), 1); /* no preference: eu */
	CHECK(!fo);
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(3, 0), &us_first, 0, &fo), 2);
	/* us unhealthy: withdrawn at once, eu answers */
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(1, 0), &us_first, 0, &fo), 1);
	CHECK(!fo);
	/* both down: fail open, both answer */
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(0, 0), &us_first, 0, &fo), 3);
	CHECK(fo);
	/* a preference naming only a region outside the set: the set's order */
	dns_prefs other = {.region = {5}, .n = 1};
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(3, 0), &other, 0, &fo), 1);
	/* health bits of regions outside the set do not count */
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(0xfc, 0), &us_first, 0, &fo), 3);
	CHECK(fo);
}

static void test_choose_failover(void)
{
	dns_regions t = {.n = 0};
	dns_route r = parse_ok("failover eu=127.0.0.2 us=127.0.0.3", &t);
	bool fo;
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(3, 0), NULL, 0, &fo), 1);   /* roles unknown: the first */
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(3, 2), NULL, 0, &fo), 2);   /* us became primary */
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(3, 1), NULL, 0, &fo), 1);
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(2, 1), NULL, 0, &fo), 2);   /* the primary is down */
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(0, 0), NULL, 0, &fo), 3);
	CHECK(fo);
}

static void test_choose_weighted(void)
{
	dns_regions t = {.n = 0};
	dns_route r = parse_ok("weighted eu=1.1.1.1 us=2.2.2.2 ap=3.3.3.3 weights=eu:3,us:1,ap:0", &t);
	int count[3] = {0};
	bool fo;
	for (uint32_t x = 0; x < 4000; x++) {
		uint32_t m = dns_route_choose(&r, VIEW(7, 0), NULL, x, &fo);
		CHECK(m == 1 || m == 2 || m == 4);
		count[m == 1 ? 0 : m == 2 ? 1 : 2]++;
	}
	CHECK_EQ_INT(count[0], 3000);
	CHECK_EQ_INT(count[1], 1000);
	CHECK_EQ_INT(count[2], 0); /* weight 0: not while others are healthy */
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(6, 0), NULL, 12345, &fo), 2); /* eu down: us */
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(4, 0), NULL, 7, &fo), 4);     /* only ap (weight 0) */
	CHECK(!fo);
	CHECK_EQ_INT(dns_route_choose(&r, VIEW(0, 0), NULL, 7, &fo), 7);
	CHECK(fo);
}

static void lookup4(const dns_latency_map *m, const char *a, dns_prefs *p)
{
	uint8_t addr[16] = {0};
	CHECK_EQ_INT(inet_pton(AF_INET, a, addr), 1);
	dns_latency_lookup(m, 4, addr, p);
}

static void test_latency_map(void)
{
	dns_regions t = {.n = 0};
	dns_latency_map *m = dns_latency_map_new();
	char err[200] = "";
	CHECK_EQ_INT(dns_latency_map_add(m, "10.1.0.0/16 eu us, 10.1.5.0/24 us eu, 127.0.0.2/32 eu us", &t, 3, err,
					 sizeof err), 0);
	CHECK_EQ_INT(dns_latency_map_add(m, "10.2.0.0/16 us eu, default eu us,", &t, 4, err, sizeof err), 0);
	CHECK_EQ_INT(dns_latency_map_add(m, "2001:db8::/32 us", &t, 5, err, sizeof err), 0);
	int eu = 0, us = 1;
	CHECK_EQ_STR(t.name[eu], "eu");
	dns_prefs p;
	lookup4(m, "10.1.7.9", &p);
	CHECK_EQ_INT(p.n, 2);
	CHECK_EQ_INT(p.region[0], eu);
	/* /16 matched, but 10.1.5.0/24 inside it answers otherwise: the scope
	 * must leave it out (10.1.7.9 and 10.1.5.0 share 22 bits: /23) */
	CHECK_EQ_INT(p.scope, 23);
	lookup4(m, "10.1.5.200", &p);
	CHECK_EQ_INT(p.region[0], us);
	CHECK_EQ_INT(p.scope, 24);
	lookup4(m, "10.2.0.1", &p);
	CHECK_EQ_INT(p.region[0], us);
	CHECK_EQ_INT(p.scope, 16);
	lookup4(m, "127.0.0.2", &p);
	CHECK_EQ_INT(p.region[0], eu);
	CHECK_EQ_INT(p.scope, 32);
	/* no prefix: default, scoped so as not to cover 10.0.0.0/8's entries */
	lookup4(m, "192.0.2.1", &p);
	CHECK_EQ_INT(p.n, 2);
	CHECK_EQ_INT(p.region[0], eu);
	CHECK_EQ_INT(p.scope, 1);
	lookup4(m, "10.3.0.1", &p);
	CHECK_EQ_INT(p.scope, 16); /* 10.2/16 shares 15 bits with 10.3 */
	uint8_t a6[16];
	CHECK_EQ_INT(inet_pton(AF_INET6, "2001:db8:1::5", a6), 1);
	dns_latency_lookup(m, 6, a6, &p);
	CHECK_EQ_INT(p.n, 1);
	CHECK_EQ_INT(p.region[0], us);
	CHECK_EQ_INT(p.scope, 32);
	/* a prefix written with host bits is kept as its network */
	CHECK_EQ_INT(dns_latency_map_add(m, "172.16.9.9/12 us", &t, 6, err, sizeof err), 0);
	lookup4(m, "172.31.0.1", &p);
	CHECK_EQ_INT(p.region[0], us);
	CHECK_EQ_INT(p.scope, 12);
	CHECK(!dns_latency_map_wants_geo(m));
	/* refusals */
	const char *bad[] = {"10.0.0.0 eu", "10.0.0.0/33 eu", "10.9.0.0/16", "10.9.0.0/16 EU", "country:DEU eu",
			     "10.1.0.0/16 us", "default eu eu", "planet:XX eu"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK(dns_latency_map_add(m, bad[i], &t, 7, err, sizeof err) != 0);
		CHECK(err[0] != '\0');
	}
	CHECK_EQ_INT(dns_latency_map_add(m, "country:de eu us, continent:NA us eu", &t, 8, err, sizeof err), 0);
	CHECK(dns_latency_map_wants_geo(m));
	CHECK(dns_latency_map_open_geo(m, "/nonexistent.mmdb", err, sizeof err) == ERR_IO);
	/* NULL map: no preference, scope 0 */
	dns_latency_lookup(NULL, 4, a6, &p);
	CHECK_EQ_INT(p.n, 0);
	CHECK_EQ_INT(p.scope, 0);
	dns_latency_map_free(&m);
	CHECK(m == NULL);
	dns_latency_map_free(&m);
}

int main(void)
{
	RUN(test_parse);
	RUN(test_regions_table);
	RUN(test_choose_latency);
	RUN(test_choose_failover);
	RUN(test_choose_weighted);
	RUN(test_latency_map);
	return TEST_SUMMARY();
}
