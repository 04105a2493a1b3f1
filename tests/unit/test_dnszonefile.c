/*
 * test_dnszonefile.c - unit tests for src/dns/zonefile.c: RFC 1035 master
 * files read into a zone (TTL units, $ORIGIN, owners carried over,
 * parentheses and comments across lines, quoted strings with ';' and
 * parentheses inside, CRLF lines) and what they refuse, each error with
 * the zone file's own line; the bounds (records, line and entry length).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "dns/zonefile.h"
#include "test.h"

static dns_zone *fresh(void)
{
	dns_name origin;
	dns_name_from_text("tandem.test", &origin);
	return dns_zone_new(&origin);
}

/* The answer's first record's TTL and the answer count for name/type. */
static int answer(dns_zone *z, const char *name, uint16_t type, uint32_t *ttl)
{
	dns_query q;
	memset(&q, 0, sizeof q);
	dns_name_from_text(name, &q.qname);
	q.qtype = type;
	q.qclass = DNS_C_IN;
	uint8_t out[4096];
	dns_zone *zones[] = {z};
	size_t len = dns_answer(zones, 1, &q, out, sizeof out, 1232, NULL, NULL);
	if (len < 12)
		return -1;
	size_t off = 12;
	dns_name n;
	if (dns_name_read(out, len, &off, &n) != 0)
		return -1;
	off += 4;
	int count = out[6] << 8 | out[7];
	if (count && dns_name_read(out, len, &off, &n) == 0 && off + 10 <= len)
		*ttl = (uint32_t)out[off + 4] << 24 | (uint32_t)out[off + 5] << 16 | (uint32_t)out[off + 6] << 8 |
		       out[off + 7];
	return count;
}

static int parse(dns_zone *z, const char *text, char *err, size_t cap)
{
	return dns_zonefile_parse(z, text, strlen(text), "t.zone", 300, err, cap);
}

static void test_forms(void)
{
	const char *text = "; a comment\r\n"
			   "$TTL 1h30m\r\n"
			   "@ IN SOA ns1 hostmaster ( 1 ; serial\n"
			   "   3600 600 ; (a parenthesis in a comment)\n"
			   "   86400 30 )\n"
			   "  NS ns1\n"
			   "ns1 2d A 127.0.0.5\n"
			   "api IN 10 A 127.0.0.2\n"
			   "    AAAA ::1\n"
			   "txt TXT \"a;b (c)\" \"d\\\"e\"\n"
			   "$ORIGIN sub.tandem.test.\n"
			   "h 1w A 127.0.0.7\n"
			   "abs.tandem.test. 5 A 127.0.0.8\n";
	dns_zone *z = fresh();
	char err[1024] = "";
	CHECK_EQ_INT(parse(z, text, err, sizeof err), 0);
	CHECK_EQ_STR(err, "");
	CHECK(dns_zone_ready(z));
	uint32_t ttl = 0;
	CHECK_EQ_INT(answer(z, "tandem.test", DNS_T_NS, &ttl), 1);
	CHECK_EQ_INT(ttl, 5400); /* $TTL 1h30m */
	CHECK_EQ_INT(answer(z, "ns1.tandem.test", DNS_T_A, &ttl), 1);
	CHECK_EQ_INT(ttl, 172800);
	CHECK_EQ_INT(answer(z, "api.tandem.test", DNS_T_AAAA, &ttl), 1); /* the owner carried over */
	CHECK_EQ_INT(answer(z, "txt.tandem.test", DNS_T_TXT, &ttl), 1);
	CHECK_EQ_INT(answer(z, "h.sub.tandem.test", DNS_T_A, &ttl), 1);
	CHECK_EQ_INT(ttl, 604800);
	CHECK_EQ_INT(answer(z, "abs.tandem.test", DNS_T_A, &ttl), 1);
	CHECK_EQ_INT(dns_zone_serial(z), 1);
	dns_zone_free(&z);
}

static void test_errors_name_their_line(void)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{"@ SOA a b 1 2 3 4 5\n\nx A 300.1.1.1\n", "t.zone:3: x.tandem.test. A: "},
		{"@ SOA a b (\n1 2 3 4 5\n", "t.zone:1: '(' is never closed"},
		{"@ SOA a b 1 2 3 4 5 )\n", "t.zone:1: ')' without '('"},
		{"x TXT \"no end\n", "t.zone:1: a quoted string does not end on its line"},
		{"$INCLUDE /etc/passwd\n", "t.zone:1: $INCLUDE is not supported"},
		{"$GENERATE 1-9 x$ A 1.1.1.$\n", "t.zone:1: unknown directive $GENERATE"},
		{"$TTL 1h30\n", "t.zone:1: $TTL needs one TTL"},
		{"$TTL 4294967295\n", "t.zone:1: $TTL needs one TTL"},
		{"$ORIGIN example.com.\n", "t.zone:1: $ORIGIN example.com. is not within the zone"},
		{" A 1.1.1.1\n", "t.zone:1: a record without an owner"},
		{"x CH A 1.1.1.1\n", "t.zone:1: class CH is not supported"},
		{"x 10\n", "t.zone:1: a record needs a type"},
		{"x A 1.1.1.1\0y A 1.1.1.2\n", NULL}, /* (strlen stops at the NUL: one record, fine) */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dns_zone *z = fresh();
		char err[1024] = "";
		int rc = parse(z, cases[i].text, err, sizeof err);
		if (cases[i].want) {
			CHECK_EQ_INT(rc, ERR_CONFIG);
			if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
				fprintf(stderr, "case %zu: %s\n", i, err);
			CHECK(strncmp(err, cases[i].want, strlen(cases[i].want)) == 0);
		} else {
			CHECK_EQ_INT(rc, 0);
		}
		dns_zone_free(&z);
	}
	/* a NUL inside the text (a binary file): refused at its line */
	dns_zone *z = fresh();
	char err[256];
	const char bin[] = "x A 1.1.1.1\ny A \0 1.1.1.2\n";
	CHECK_EQ_INT(dns_zonefile_parse(z, bin, sizeof bin - 1, "t.zone", 300, err, sizeof err), ERR_CONFIG);
	CHECK(strstr(err, "t.zone:2: a NUL byte") != NULL);
	dns_zone_free(&z);
}

static void test_bounds(void)
{
	/* more records than ZONEFILE_MAX_RECORDS: one error, at the first past it */
	size_t cap = (size_t)(ZONEFILE_MAX_RECORDS + 2) * 24;
	char *text = malloc(cap), err[1024];
	size_t n = 0;
	for (int i = 0; i < ZONEFILE_MAX_RECORDS + 1; i++)
		n += (size_t)snprintf(text + n, cap - n, "@ TXT \"%d\"\n", i);
	dns_zone *z = fresh();
	CHECK_EQ_INT(dns_zonefile_parse(z, text, n, "t.zone", 300, err, sizeof err), ERR_CONFIG);
	char want[64];
	snprintf(want, sizeof want, "t.zone:%d: too many records", ZONEFILE_MAX_RECORDS + 1);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	dns_zone_free(&z);
	/* a line over ZONEFILE_MAX_LINE; an entry over ZONEFILE_MAX_ENTRY */
	char *big = malloc(ZONEFILE_MAX_ENTRY * 4);
	n = (size_t)snprintf(big, 64, "x TXT \"");
	memset(big + n, 'a', ZONEFILE_MAX_LINE);
	n += ZONEFILE_MAX_LINE;
	n += (size_t)snprintf(big + n, 64, "\"\n");
	z = fresh();
	CHECK_EQ_INT(dns_zonefile_parse(z, big, n, "t.zone", 300, err, sizeof err), ERR_CONFIG);
	CHECK(strstr(err, "t.zone:1: the line is over") != NULL);
	dns_zone_free(&z);
	n = (size_t)snprintf(big, 64, "x TXT (\n");
	for (int i = 0; i < 10; i++) {
		memset(big + n, ' ', ZONEFILE_MAX_LINE - 1);
		n += ZONEFILE_MAX_LINE - 1;
		big[n++] = '\n';
	}
	n += (size_t)snprintf(big + n, 64, ")\n");
	z = fresh();
	CHECK_EQ_INT(dns_zonefile_parse(z, big, n, "t.zone", 300, err, sizeof err), ERR_CONFIG);
	CHECK(strstr(err, "t.zone:1: the entry is over") != NULL);
	dns_zone_free(&z);
	/* errors stop at ZONEFILE_MAX_ERRORS and stay within err */
	n = 0;
	for (int i = 0; i < 50; i++)
		n += (size_t)snprintf(text + n, cap - n, "x A bad\n");
	z = fresh();
	char small[100];
	CHECK_EQ_INT(dns_zonefile_parse(z, text, n, "t.zone", 300, small, sizeof small), ERR_CONFIG);
	CHECK(strlen(small) < sizeof small);
	dns_zone_free(&z);
	free(big);
	free(text);
}

int main(void)
{
	RUN(test_forms);
	RUN(test_errors_name_their_line);
	RUN(test_bounds);
	return TEST_SUMMARY();
}
