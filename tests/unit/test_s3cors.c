/* test_s3cors.c - a bucket's CORS rules (src/objects/s3cors.c) and their
 * XML (s3xml_parse_cors): the one-'*' wildcard on origins (case-sensitive)
 * and headers (case-insensitive), first matching rule wins, a preflight
 * naming a header no AllowedHeader covers is refused, the header lines of
 * an allowed answer, and the parser's refusals (no origin, unknown method,
 * two wildcards, too many rules). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "objects/s3cors.h"
#include "objects/s3xml.h"
#include "test.h"

static void test_wildcard(void)
{
	CHECK(s3cors_wildcard("*", "https://anything", false));
	CHECK(s3cors_wildcard("https://*.example.com", "https://app.example.com", false));
	CHECK(!s3cors_wildcard("https://*.example.com", "https://example.com", false));
	CHECK(!s3cors_wildcard("https://*.example.com", "http://app.example.com", false));
	CHECK(!s3cors_wildcard("https://*.example.com", "https://APP.EXAMPLE.COM", false));
	CHECK(s3cors_wildcard("x-amz-*", "X-Amz-Date", true));
	CHECK(s3cors_wildcard("https://a.example", "https://a.example", false));
	CHECK(!s3cors_wildcard("https://a.example", "https://a.example.evil", false));
	/* prefix and suffix must not overlap */
	CHECK(!s3cors_wildcard("ab*ba", "aba", false));
	CHECK(s3cors_wildcard("ab*ba", "abba", false));
	CHECK_EQ_INT(s3cors_method("PUT"), S3CORS_PUT);
	CHECK_EQ_INT(s3cors_method("put"), 0);
	CHECK_EQ_INT(s3cors_method("OPTIONS"), 0);
}

static const char config[] =
	"<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<CORSRule><ID>uploads</ID><AllowedOrigin>https://*.example.com</AllowedOrigin>"
	"<AllowedMethod>PUT</AllowedMethod><AllowedMethod>GET</AllowedMethod>"
	"<AllowedHeader>content-type</AllowedHeader><AllowedHeader>x-amz-*</AllowedHeader>"
	"<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>300</MaxAgeSeconds></CORSRule>"
	"<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>"
	"</CORSConfiguration>";

static void test_match(void)
{
	s3cors *c = NULL;
	char err[160] = "";
	CHECK_EQ_INT(s3xml_parse_cors(config, sizeof config - 1, &c, err, sizeof err), 0);
	if (!c)
		return;
	CHECK_EQ_INT(c->count, 2);
	CHECK_EQ_STR(c->rules[0].id, "uploads");
	CHECK_EQ_INT(c->rules[0].max_age, 300);
	CHECK_EQ_INT(c->rules[1].max_age, -1);
	const s3cors_rule *r = s3cors_match(c, "https://app.example.com", S3CORS_PUT, "Content-Type, X-Amz-Date");
	CHECK(r == &c->rules[0]);
	/* a header no rule allows: refused (the second rule allows none) */
	CHECK(s3cors_match(c, "https://app.example.com", S3CORS_PUT, "content-type, authorization") == NULL);
	/* DELETE is in no rule */
	CHECK(s3cors_match(c, "https://app.example.com", S3CORS_DELETE, NULL) == NULL);
	/* GET from anywhere: the second rule; from example.com the first (first wins) */
	CHECK(s3cors_match(c, "https://other.test", S3CORS_GET, NULL) == &c->rules[1]);
	CHECK(s3cors_match(c, "https://app.example.com", S3CORS_GET, "") == &c->rules[0]);
	CHECK(s3cors_match(c, "https://other.test", S3CORS_PUT, NULL) == NULL);
	CHECK(s3cors_match(NULL, "https://other.test", S3CORS_GET, NULL) == NULL);
	buf b;
	buf_init(&b, 4096);
	CHECK_EQ_INT(s3cors_headers(r, "https://app.example.com", true, "Content-Type", &b), 0);
	buf_addc(&b, '\0');
	CHECK(strstr(b.data, "Access-Control-Allow-Origin: https://app.example.com\r\n") != NULL);
	CHECK(strstr(b.data, "Access-Control-Allow-Methods: GET, PUT\r\n") != NULL);
	CHECK(strstr(b.data, "Access-Control-Allow-Headers: Content-Type\r\n") != NULL);
	CHECK(strstr(b.data, "Access-Control-Expose-Headers: ETag\r\n") != NULL);
	CHECK(strstr(b.data, "Access-Control-Max-Age: 300\r\n") != NULL);
	CHECK(strstr(b.data, "Vary: Origin") != NULL);
	buf_reset(&b);
	CHECK_EQ_INT(s3cors_headers(&c->rules[1], "https://other.test", false, NULL, &b), 0);
	buf_addc(&b, '\0');
	CHECK(strstr(b.data, "Access-Control-Allow-Origin: *\r\n") != NULL);
	CHECK(strstr(b.data, "Credentials") == NULL);
	/* the XML S3 returns parses back to the same rules */
	buf_reset(&b);
	CHECK_EQ_INT(s3cors_to_xml(c, &b), 0);
	s3cors *again = NULL;
	CHECK_EQ_INT(s3xml_parse_cors(b.data, b.len, &again, err, sizeof err), 0);
	if (again) {
		CHECK_EQ_INT(again->count, 2);
		CHECK_EQ_INT(again->rules[0].methods, S3CORS_GET | S3CORS_PUT);
		CHECK_EQ_STR(again->rules[0].headers.items[1], "x-amz-*");
	}
	s3cors_free(&again);
	buf_free(&b);
	s3cors_free(&c);
	CHECK(c == NULL);
}

static int parse(const char *xml, char *err, size_t cap)
{
	s3cors *c = NULL;
	int rc = s3xml_parse_cors(xml, strlen(xml), &c, err, cap);
	CHECK(rc == 0 ? c != NULL : c == NULL);
	s3cors_free(&c);
	return rc;
}

static void test_refusals(void)
{
	char err[160];
	CHECK_EQ_INT(parse("<CORSConfiguration/>", err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(parse("<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule>"
			   "</CORSConfiguration>", err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(parse("<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule>"
			   "</CORSConfiguration>", err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(parse("<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
			   "<AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>", err, sizeof err),
		     ERR_INVAL);
	CHECK(strstr(err, "PATCH") != NULL);
	CHECK_EQ_INT(parse("<CORSConfiguration><CORSRule><AllowedOrigin>https://*.*.com</AllowedOrigin>"
			   "<AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>", err, sizeof err),
		     ERR_INVAL);
	CHECK_EQ_INT(parse("<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
			   "<AllowedMethod>GET</AllowedMethod><Bogus/></CORSRule></CORSConfiguration>", err, sizeof err),
		     ERR_PARSE);
	CHECK_EQ_INT(parse("<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
			   "<AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>-1</MaxAgeSeconds></CORSRule>"
			   "</CORSConfiguration>", err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(parse("<Other/>", err, sizeof err), ERR_PARSE);
	/* 101 rules: one too many */
	buf b;
	buf_init(&b, 1 << 20);
	buf_adds(&b, "<CORSConfiguration>");
	for (int i = 0; i < 101; i++)
		buf_adds(&b, "<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>");
	buf_adds(&b, "</CORSConfiguration>");
	buf_addc(&b, '\0');
	CHECK_EQ_INT(parse(b.data, err, sizeof err), ERR_LIMIT);
	buf_free(&b);
}

int main(void)
{
	RUN(test_wildcard);
	RUN(test_match);
	RUN(test_refusals);
	return TEST_SUMMARY();
}
