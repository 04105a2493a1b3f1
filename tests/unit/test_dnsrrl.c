/*
 * test_dnsrrl.c - unit tests for src/dns/rrl.c on an injected clock: a
 * prefix gets `rate` answers per second after a burst of one second's
 * worth, the excess is dropped with every slip-th one slipped (TC), the
 * bucket refills with time, prefixes are /24 and /56 (neighbours share,
 * others do not), and rate 0 limits nothing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "dns/rrl.h"
#include "test.h"

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	a->sin_family = AF_INET;
	CHECK_EQ_INT(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
	a->sin6_family = AF_INET6;
	CHECK_EQ_INT(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	return ss;
}

static void count(dns_rrl *r, const struct sockaddr_storage *a, int n, int64_t now, int out[3])
{
	out[0] = out[1] = out[2] = 0;
	for (int i = 0; i < n; i++)
		out[dns_rrl_check(r, (const struct sockaddr *)a, now)]++;
}

static void test_rate_burst_slip_and_refill(void)
{
	dns_rrl *r = dns_rrl_new(1024, 10, 2);
	CHECK(r != NULL);
	struct sockaddr_storage a = v4("192.0.2.7");
	int c[3];
	count(r, &a, 30, 1000, c); /* 30 at one instant: the burst of 10 */
	CHECK_EQ_INT(c[DNS_RRL_SEND], 10);
	CHECK_EQ_INT(c[DNS_RRL_SLIP], 10); /* every 2nd of the 20 limited */
	CHECK_EQ_INT(c[DNS_RRL_DROP], 10);
	CHECK_EQ_INT(dns_rrl_limited(r), 20);
	count(r, &a, 5, 1300, c); /* 300 ms later: 3 tokens */
	CHECK_EQ_INT(c[DNS_RRL_SEND], 3);
	count(r, &a, 20, 60000, c); /* a minute later: full again, not more */
	CHECK_EQ_INT(c[DNS_RRL_SEND], 10);
	/* steady 10/s is never limited */
	dns_rrl *s = dns_rrl_new(64, 10, 2);
	struct sockaddr_storage b = v4("198.51.100.1");
	int sent = 0;
	for (int i = 0; i < 1000; i++)
		sent += dns_rrl_check(s, (const struct sockaddr *)&b, 5000 + i * 100) == DNS_RRL_SEND;
	CHECK_EQ_INT(sent, 1000);
	dns_rrl_free(&s);
	dns_rrl_free(&r);
	CHECK(r == NULL);
}

static void test_prefixes(void)
{
	dns_rrl *r = dns_rrl_new(1 << 16, 5, 0);
	struct sockaddr_storage a = v4("203.0.113.1"), same = v4("203.0.113.200"), other = v4("203.0.114.1");
	int c[3];
	count(r, &a, 5, 0, c);
	CHECK_EQ_INT(c[DNS_RRL_SEND], 5);
	count(r, &same, 3, 0, c); /* the same /24: its bucket is empty */
	CHECK_EQ_INT(c[DNS_RRL_SEND], 0);
	CHECK_EQ_INT(c[DNS_RRL_DROP], 3); /* slip 0: all dropped */
	count(r, &other, 5, 0, c); /* another /24: its own bucket (a collision could only limit more) */
	CHECK_EQ_INT(c[DNS_RRL_SEND], 5);
	struct sockaddr_storage x = v6("2001:db8:0:100::1"), xs = v6("2001:db8:0:1ff::2"), xo = v6("2001:db8:0:200::1");
	count(r, &x, 5, 0, c);
	CHECK_EQ_INT(c[DNS_RRL_SEND], 5);
	count(r, &xs, 1, 0, c); /* the same /56 */
	CHECK_EQ_INT(c[DNS_RRL_DROP], 1);
	count(r, &xo, 1, 0, c); /* another /56 */
	CHECK_EQ_INT(c[DNS_RRL_SEND], 1);
	dns_rrl_free(&r);
	/* rate 0: no limit */
	dns_rrl *off = dns_rrl_new(64, 0, 2);
	count(off, &a, 10000, 0, c);
	CHECK_EQ_INT(c[DNS_RRL_SEND], 10000);
	dns_rrl_free(&off);
}

int main(void)
{
	RUN(test_rate_burst_slip_and_refill);
	RUN(test_prefixes);
	return TEST_SUMMARY();
}
