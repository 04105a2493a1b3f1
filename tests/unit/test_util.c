/* test_util.c - base64url, identifiers, host:port, integers, buf limits. */
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "test.h"

static void test_b64url(void)
{
	const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *want[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		char out[16], back[16];
		util_b64url_encode(in[i], strlen(in[i]), out);
		CHECK_EQ_STR(out, want[i]);
		long n = util_b64url_decode(out, strlen(out), back, sizeof back);
		CHECK_EQ_INT(n, (long)strlen(in[i]));
		back[n] = '\0';
		CHECK_EQ_STR(back, in[i]);
	}
	unsigned char bytes[] = {0xfb, 0xff};
	char out[8];
	util_b64url_encode(bytes, 2, out);
	CHECK_EQ_STR(out, "-_8");
	char buf4[4];
	CHECK_EQ_INT(util_b64url_decode("Zm9v+", 5, buf4, 4), -1);  /* '+' is not base64url */
	CHECK_EQ_INT(util_b64url_decode("Z", 1, buf4, 4), -1);      /* impossible length */
	CHECK_EQ_INT(util_b64url_decode("Zh", 2, buf4, 4), -1);     /* non-canonical bits */
	CHECK_EQ_INT(util_b64url_decode("Zm9vYmFy", 8, buf4, 4), -1); /* too small */
}

static void test_ids_sort_by_time(void)
{
	char a[27], b[27];
	util_new_id(a);
	CHECK_EQ_INT(strlen(a), 26);
	struct timespec ts = {0, 2000000};
	nanosleep(&ts, NULL);
	util_new_id(b);
	CHECK(strcmp(a, b) < 0);
	for (int i = 0; i < 26; i++)
		CHECK(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", a[i]) != NULL);
}

static void test_hostport_and_int(void)
{
	char host[64];
	int port;
	CHECK_EQ_INT(util_split_hostport("127.0.0.1:8443", host, sizeof host, &port), 0);
	CHECK_EQ_STR(host, "127.0.0.1");
	CHECK_EQ_INT(port, 8443);
	CHECK_EQ_INT(util_split_hostport("[::1]:80", host, sizeof host, &port), 0);
	CHECK_EQ_STR(host, "::1");
	CHECK_EQ_INT(util_split_hostport("host", host, sizeof host, &port), ERR_INVAL);
	CHECK_EQ_INT(util_split_hostport("h:0", host, sizeof host, &port), ERR_INVAL);
	CHECK_EQ_INT(util_split_hostport("h:70000", host, sizeof host, &port), ERR_INVAL);
	long long v;
	CHECK_EQ_INT(util_parse_int("42", 1, 100, &v), 0);
	CHECK_EQ_INT(v, 42);
	CHECK_EQ_INT(util_parse_int("4x", 1, 100, &v), ERR_INVAL);
	CHECK_EQ_INT(util_parse_int("101", 1, 100, &v), ERR_INVAL);
	CHECK_EQ_INT(util_parse_int("", 1, 100, &v), ERR_INVAL);
}

static void test_buf_limits(void)
{
	buf b;
	buf_init(&b, 8);
	CHECK_EQ_INT(buf_adds(&b, "12345678"), 0);
	CHECK_EQ_INT(buf_adds(&b, "9"), ERR_LIMIT);
	CHECK_EQ_STR(b.data, "12345678"); /* unaltered */
	buf_reset(&b);
	CHECK_EQ_INT(buf_printf(&b, "%d", 123456789), ERR_LIMIT);
	CHECK_EQ_INT(b.len, 0);
	/* escaped, this is 9 bytes: over the limit, and the buffer is unaltered */
	CHECK_EQ_INT(buf_add_json_escaped(&b, "a\"\n", 3), ERR_LIMIT);
	CHECK_EQ_INT(b.len, 0);
	buf_free(&b);
	buf_init(&b, 64);
	CHECK_EQ_INT(buf_add_json_escaped(&b, "a\"\n", 3), 0);
	CHECK_EQ_STR(b.data, "a\\\"\\u000a");
	buf_free(&b);
	CHECK(b.data == NULL);
	CHECK_EQ_STR(err_str(ERR_LIMIT), "limit exceeded");
	CHECK_EQ_STR(err_str(-999), "unknown error");
}

/* Bug pinned (election.c, the lease timer): a delay of up to lease_ms went
 * into tv_usec alone ({0, (left + 1) * 1000}), which libevent requires
 * below 1000000. The helper normalizes, and clamps a negative delay. */
static void test_timeval_ms(void)
{
	struct timeval tv = util_timeval_ms(3999);
	CHECK_EQ_INT(tv.tv_sec, 3);
	CHECK_EQ_INT(tv.tv_usec, 999000);
	tv = util_timeval_ms(4001);
	CHECK_EQ_INT(tv.tv_sec, 4);
	CHECK_EQ_INT(tv.tv_usec, 1000);
	tv = util_timeval_ms(999);
	CHECK_EQ_INT(tv.tv_sec, 0);
	CHECK_EQ_INT(tv.tv_usec, 999000);
	tv = util_timeval_ms(600000);
	CHECK_EQ_INT(tv.tv_sec, 600);
	CHECK_EQ_INT(tv.tv_usec, 0);
	tv = util_timeval_ms(-5);
	CHECK_EQ_INT(tv.tv_sec, 0);
	CHECK_EQ_INT(tv.tv_usec, 0);
}

/* util_unhex: the inverse of util_hex, bounded, refusing what is not hex;
 * util_query_param: a parameter's raw value, absent or too long refused. */
static void test_unhex_and_query_param(void)
{
	unsigned char out[4];
	char hex[9];
	util_hex("\x01\xab\xff\x00", 4, hex);
	CHECK_EQ_INT(util_unhex(hex, out, sizeof out), 4);
	CHECK(memcmp(out, "\x01\xab\xff\x00", 4) == 0);
	CHECK_EQ_INT(util_unhex("", out, sizeof out), 0);
	CHECK_EQ_INT(util_unhex(NULL, out, sizeof out), -1);
	CHECK_EQ_INT(util_unhex("abc", out, sizeof out), -1);        /* odd */
	CHECK_EQ_INT(util_unhex("zz", out, sizeof out), -1);         /* not hex */
	CHECK_EQ_INT(util_unhex("AB", out, sizeof out), -1);         /* lowercase only */
	CHECK_EQ_INT(util_unhex("0102030405", out, sizeof out), -1); /* over max */
	char v[8];
	CHECK(util_query_param("/x?a=1&bb=22&b=3", "b", v, sizeof v) && strcmp(v, "3") == 0);
	CHECK(util_query_param("/x?a=1&bb=22", "bb", v, sizeof v) && strcmp(v, "22") == 0);
	CHECK(util_query_param("/x?a=&c", "a", v, sizeof v) && strcmp(v, "") == 0);
	CHECK(!util_query_param("/x?a=1", "c", v, sizeof v));
	CHECK(!util_query_param("/x", "a", v, sizeof v));
	CHECK(!util_query_param("/x?a=12345678", "a", v, sizeof v)); /* longer than cap - 1 */
}

static void test_cidr(void)
{
	unsigned char a[16];
	int fam, bits;
	CHECK_EQ_INT(util_parse_cidr("10.1.2.3/16", a, &fam, &bits), 0);
	CHECK_EQ_INT(fam, 4);
	CHECK_EQ_INT(bits, 16);
	CHECK(a[0] == 10 && a[1] == 1 && a[2] == 0 && a[3] == 0); /* host bits cleared */
	CHECK(util_cidr_holds(a, fam, bits, "10.1.255.7"));
	CHECK(!util_cidr_holds(a, fam, bits, "10.2.0.1"));
	CHECK(!util_cidr_holds(a, fam, bits, "::1"));            /* another family */
	CHECK(!util_cidr_holds(a, fam, bits, "not an address"));
	CHECK_EQ_INT(util_parse_cidr("127.0.0.7", a, &fam, &bits), 0); /* an address alone: /32 */
	CHECK_EQ_INT(bits, 32);
	CHECK(util_cidr_holds(a, fam, bits, "127.0.0.7"));
	CHECK(!util_cidr_holds(a, fam, bits, "127.0.0.8"));
	CHECK_EQ_INT(util_parse_cidr("10.0.0.0/12", a, &fam, &bits), 0); /* a length not a multiple of 8 */
	CHECK(util_cidr_holds(a, fam, bits, "10.15.1.1"));
	CHECK(!util_cidr_holds(a, fam, bits, "10.16.0.0"));
	CHECK_EQ_INT(util_parse_cidr("2001:db8::/33", a, &fam, &bits), 0);
	CHECK_EQ_INT(fam, 6);
	CHECK(util_cidr_holds(a, fam, bits, "2001:db8:7fff::1"));
	CHECK(!util_cidr_holds(a, fam, bits, "2001:db8:8000::1"));
	CHECK_EQ_INT(util_parse_cidr("10.0.0.0/33", a, &fam, &bits), ERR_INVAL);
	CHECK_EQ_INT(util_parse_cidr("10.0.0/8", a, &fam, &bits), ERR_INVAL);
	CHECK_EQ_INT(util_parse_cidr("/8", a, &fam, &bits), ERR_INVAL);
	CHECK_EQ_INT(util_parse_cidr("10.0.0.0/", a, &fam, &bits), ERR_INVAL);
	CHECK_EQ_INT(util_parse_cidr("", a, &fam, &bits), ERR_INVAL);
}

int main(void)
{
	RUN(test_cidr);
	RUN(test_timeval_ms);
	RUN(test_unhex_and_query_param);
	RUN(test_b64url);
	RUN(test_ids_sort_by_time);
	RUN(test_hostport_and_int);
	RUN(test_buf_limits);
	return TEST_SUMMARY();
}
