/*
 * test_forwarded.c - unit tests for src/http/forwarded.c: which for= of a
 * Forwarded value is the client's, which forms are an address, and that
 * everything else leaves the caller's address alone.
 */
#include <string.h>

#include "http/forwarded.h"
#include "test.h"

/* The address found in v, or "-" for none (out keeps its "-"). */
static const char *addr(const char *v)
{
	static char out[64];
	strcpy(out, "-");
	bool found = http_forwarded_for(v, strlen(v), out, sizeof out);
	CHECK_EQ_INT(found, strcmp(out, "-") != 0);
	return out;
}

static void test_forms(void)
{
	CHECK_EQ_STR(addr("for=192.0.2.60"), "192.0.2.60");
	CHECK_EQ_STR(addr("for=192.0.2.60;proto=https;by=203.0.113.43"), "192.0.2.60");
	CHECK_EQ_STR(addr("For=\"192.0.2.60:4711\""), "192.0.2.60"); /* the port dropped, quoted as it must be */
	CHECK_EQ_STR(addr("for=\"[2001:db8:cafe::17]\""), "2001:db8:cafe::17");
	CHECK_EQ_STR(addr("for=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17");
	/* the last one: the nearest proxy's */
	CHECK_EQ_STR(addr("for=198.51.100.17, for=192.0.2.60"), "192.0.2.60");
	CHECK_EQ_STR(addr("for=198.51.100.17;proto=http,for=192.0.2.60;proto=https"), "192.0.2.60");
	CHECK_EQ_STR(addr("proto=https; for=10.1.2.3"), "10.1.2.3");
}

static void test_not_an_address(void)
{
	static const char *const none[] = {
		"",
		"proto=https",
		"for=unknown",
		"for=_hidden",
		"for=\"_gazonk\"",
		"for=2001:db8::1",           /* IPv6 without its brackets */
		"for=\"[2001:db8::1\"",      /* no closing bracket */
		"for=\"[192.0.2.1]\"",       /* brackets are for IPv6 */
		"for=",
		"for=\"",
		"before=1.2.3.4",            /* not a for= pair */
		"xfor=1.2.3.4",
		"for=1.2.3.4.5",
		"for=999.0.0.1",
		"for=\"[aaaa:bbbb:cccc:dddd:eeee:ffff:1111:2222:3333:4444:5555:6666:7777:8888]\"", /* too long */
	};
	for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
		const char *got = addr(none[i]);
		if (strcmp(got, "-") != 0)
			fprintf(stderr, "  %s -> %s\n", none[i], got);
		CHECK_EQ_STR(got, "-");
	}
	/* the last for= decides: an address then unknown gives nothing */
	CHECK_EQ_STR(addr("for=192.0.2.60, for=unknown"), "-");
}

static void test_bounds(void)
{
	/* the value is not NUL-terminated: nothing past len is read */
	const char v[] = "for=192.0.2.61";
	char out[64] = "-";
	CHECK(http_forwarded_for(v, strlen(v) - 1, out, sizeof out));
	CHECK_EQ_STR(out, "192.0.2.6");
	/* too small an output: nothing, out unchanged */
	char small[8] = "-";
	CHECK(!http_forwarded_for(v, strlen(v), small, sizeof small));
	CHECK_EQ_STR(small, "-");
}

int main(void)
{
	RUN(test_forms);
	RUN(test_not_an_address);
	RUN(test_bounds);
	return TEST_SUMMARY();
}
