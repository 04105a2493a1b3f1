/* test_cors.c - the CORS policy: parsing cors_origins, origin comparison as
 * browsers serialize origins, and the header lines of answers and preflights
 * (never the request's bytes echoed, nothing for a refused origin). */
#include <string.h>

#include "core/err.h"
#include "region/cors.h"
#include "test.h"

static bool allows(const cors_policy *p, const char *origin, const char **allow)
{
	const char *unused;
	return cors_allows(p, origin, strlen(origin), allow ? allow : &unused);
}

static void test_disabled(void)
{
	cors_policy *p = cors_new("");
	CHECK(p != NULL);
	CHECK(!cors_enabled(p));
	CHECK(!allows(p, "https://app.example.com", NULL));
	buf b;
	buf_init(&b, 4096);
	CHECK_EQ_INT(cors_answer_headers(p, "https://app.example.com", 23, &b), 0);
	CHECK_EQ_INT(b.len, 0); /* no CORS at all: not even Vary */
	CHECK_EQ_INT(cors_preflight_headers(p, "https://app.example.com", 23, "GET", &b), ERR_INVAL);
	CHECK_EQ_INT(b.len, 0);
	buf_free(&b);
	cors_free(&p);
	CHECK(p == NULL);
	cors_free(&p); /* no-op on NULL */
}

static void test_list(void)
{
	cors_policy *p = cors_new(" HTTPS://App.Example.com:443,http://localhost:3000  http://[::1]:8080,");
	const char *allow = NULL;
	CHECK(cors_enabled(p));
	CHECK(allows(p, "https://app.example.com", &allow));
	CHECK_EQ_STR(allow, "https://app.example.com");
	CHECK(allows(p, "https://APP.example.com:443", &allow));
	CHECK_EQ_STR(allow, "https://app.example.com"); /* the configured form, not the request's */
	CHECK(allows(p, "http://localhost:3000", NULL));
	CHECK(allows(p, "http://[::1]:8080", NULL));
	CHECK(!allows(p, "http://app.example.com", NULL));       /* another scheme */
	CHECK(!allows(p, "https://app.example.com:8443", NULL)); /* another port */
	CHECK(!allows(p, "https://app.example.com.evil.test", NULL));
	CHECK(!allows(p, "https://evil.test", NULL));
	CHECK(!allows(p, "null", NULL));
	CHECK(!allows(p, "http://localhost:3000\r\nX-Evil: 1", NULL));
	CHECK(!allows(p, "", NULL));
	const char *unused;
	CHECK(!cors_allows(p, NULL, 0, &unused));
	cors_free(&p);
}

static void test_any(void)
{
	cors_policy *p = cors_new("*");
	const char *allow = NULL;
	CHECK(cors_enabled(p));
	CHECK(allows(p, "https://whatever.test:1234", &allow));
	CHECK_EQ_STR(allow, "*");
	CHECK(allows(p, "null", &allow));
	CHECK_EQ_STR(allow, "*");
	cors_free(&p);
}

static void test_header_lines(void)
{
	cors_policy *p = cors_new("https://app.example.com");
	buf b;
	buf_init(&b, 4096);
	/* an allowed origin: Allow-Origin, Expose-Headers, Vary */
	CHECK_EQ_INT(cors_answer_headers(p, "https://app.example.com", 23, &b), 0);
	CHECK(strstr(b.data, "Vary: Origin\r\n") != NULL);
	CHECK(strstr(b.data, "Access-Control-Allow-Origin: https://app.example.com\r\n") != NULL);
	CHECK(strstr(b.data, "Access-Control-Expose-Headers: ETag, Location, X-Tandem-LSN, X-Tandem-Region, "
			     "X-Request-Id, Retry-After, Idempotent-Replayed\r\n") != NULL);
	/* another origin, or none: only Vary */
	buf_reset(&b);
	CHECK_EQ_INT(cors_answer_headers(p, "https://evil.test", 17, &b), 0);
	CHECK_EQ_STR(b.data, "Vary: Origin\r\n");
	buf_reset(&b);
	CHECK_EQ_INT(cors_answer_headers(p, NULL, 0, &b), 0);
	CHECK_EQ_STR(b.data, "Vary: Origin\r\n");
	/* a preflight */
	buf_reset(&b);
	CHECK_EQ_INT(cors_preflight_headers(p, "https://app.example.com", 23, "GET, HEAD, POST", &b), 0);
	CHECK(strstr(b.data, "Access-Control-Allow-Methods: GET, HEAD, POST\r\n") != NULL);
	CHECK(strstr(b.data, "Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key, "
			     "If-Match, If-None-Match, X-Request-Id, X-Tandem-Consistency, X-Tandem-Durability, "
			     "X-Tandem-Min-LSN\r\n") != NULL);
	CHECK(strstr(b.data, "Access-Control-Max-Age: 600\r\n") != NULL);
	buf_reset(&b);
	CHECK_EQ_INT(cors_preflight_headers(p, "https://evil.test", 17, "GET", &b), ERR_INVAL);
	CHECK_EQ_INT(b.len, 0);
	/* a full buffer: the error comes back */
	buf small;
	buf_init(&small, 16);
	CHECK(cors_answer_headers(p, "https://app.example.com", 23, &small) < 0);
	buf_free(&small);
	buf_free(&b);
	cors_free(&p);
}

int main(void)
{
	RUN(test_disabled);
	RUN(test_list);
	RUN(test_any);
	RUN(test_header_lines);
	return TEST_SUMMARY();
}
