/* test_s3xml.c - the S3 XML module (src/objects/s3xml.c): escaping of
 * answers, and the request body parsers (DeleteObjects,
 * CreateBucketConfiguration, CompleteMultipartUpload) with their limits:
 * depth, size, text length, object and part counts, and DOCTYPE / entity
 * declarations refused (no "billion laughs", no external entities). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "objects/s3xml.h"
#include "test.h"

static void test_escape(void)
{
	buf b;
	buf_init(&b, 1024);
	CHECK_EQ_INT(s3xml_escape(&b, "a&b<c>d\"e'f\tg\x01h", 15), 0);
	CHECK_EQ_STR(b.data, "a&amp;b&lt;c&gt;d&quot;e&apos;f&#x9;g&#x1;h");
	buf_reset(&b);
	CHECK_EQ_INT(s3xml_elem(&b, "Key", "ü/ok"), 0);
	CHECK_EQ_STR(b.data, "<Key>ü/ok</Key>");
	buf_free(&b);
	/* the buffer's bound is honoured */
	buf_init(&b, 8);
	CHECK_EQ_INT(s3xml_escape(&b, "&&&&&", 5), ERR_LIMIT);
	CHECK(b.len <= 8);
	buf_free(&b);
}

static void test_delete(void)
{
	const char *xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			  "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>"
			  "<Object><Key>a &amp; b</Key></Object>"
			  "<Object><Key>c/d.txt</Key><VersionId>null</VersionId></Object></Delete>";
	s3xml_delete *d = NULL;
	char err[160];
	CHECK_EQ_INT(s3xml_parse_delete(xml, strlen(xml), &d, err, sizeof err), 0);
	if (!d)
		return;
	CHECK(d->quiet);
	CHECK_EQ_INT(d->count, 2);
	CHECK_EQ_STR(d->entries[0].key, "a & b");
	CHECK_EQ_INT(d->entries[0].key_len, 5);
	CHECK(d->entries[0].version_id == NULL);
	CHECK_EQ_STR(d->entries[1].key, "c/d.txt");
	CHECK_EQ_STR(d->entries[1].version_id, "null");
	s3xml_delete_free(&d);
	CHECK(d == NULL);
	/* not quiet by default */
	const char *x2 = "<Delete><Object><Key>k</Key></Object></Delete>";
	CHECK_EQ_INT(s3xml_parse_delete(x2, strlen(x2), &d, err, sizeof err), 0);
	CHECK(d && !d->quiet);
	s3xml_delete_free(&d);
}

static void test_delete_malformed(void)
{
	static const char *const bad[] = {
		"",                                              /* empty */
		"<Delete></Delete>",                             /* no object */
		"<Delete><Object></Object></Delete>",            /* object without a key */
		"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>", /* two keys */
		"<Other><Object><Key>a</Key></Object></Other>",  /* wrong root */
		"<Delete><Object><Key>a</Key></Object>",         /* unclosed */
		"<Delete><Object><Key>a</Key></Object></Delete><x/>", /* junk after the root */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		s3xml_delete *d = NULL;
		char err[160] = "";
		int rc = s3xml_parse_delete(bad[i], strlen(bad[i]), &d, err, sizeof err);
		CHECK(rc == ERR_PARSE || rc == ERR_LIMIT);
		CHECK(d == NULL);
		CHECK(err[0] != '\0');
	}
}

static void test_entities_refused(void)
{
	/* billion laughs: refused at the DOCTYPE, nothing expanded */
	const char *laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
			     "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
			     "<Delete><Object><Key>&lol2;</Key></Object></Delete>";
	s3xml_delete *d = NULL;
	char err[160];
	CHECK_EQ_INT(s3xml_parse_delete(laughs, strlen(laughs), &d, err, sizeof err), ERR_PARSE);
	CHECK(d == NULL);
	/* an external entity (XXE) likewise */
	const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
			  "<Delete><Object><Key>&x;</Key></Object></Delete>";
	CHECK_EQ_INT(s3xml_parse_delete(xxe, strlen(xxe), &d, err, sizeof err), ERR_PARSE);
	/* an undeclared entity is not well-formed */
	const char *undeclared = "<Delete><Object><Key>&x;</Key></Object></Delete>";
	CHECK_EQ_INT(s3xml_parse_delete(undeclared, strlen(undeclared), &d, err, sizeof err), ERR_PARSE);
	/* character references are plain text */
	const char *refs = "<Delete><Object><Key>&#x41;&#66;</Key></Object></Delete>";
	CHECK_EQ_INT(s3xml_parse_delete(refs, strlen(refs), &d, err, sizeof err), 0);
	CHECK(d && strcmp(d->entries[0].key, "AB") == 0);
	s3xml_delete_free(&d);
}

static void test_limits(void)
{
	char err[160];
	s3xml_delete *d = NULL;
	/* depth */
	buf b;
	buf_init(&b, 1 << 20);
	buf_adds(&b, "<Delete>");
	for (int i = 0; i < S3XML_MAX_DEPTH + 2; i++)
		buf_adds(&b, "<a>");
	for (int i = 0; i < S3XML_MAX_DEPTH + 2; i++)
		buf_adds(&b, "</a>");
	buf_adds(&b, "</Delete>");
	CHECK_EQ_INT(s3xml_parse_delete(b.data, b.len, &d, err, sizeof err), ERR_LIMIT);
	/* a value longer than S3XML_MAX_TEXT */
	buf_reset(&b);
	buf_adds(&b, "<Delete><Object><Key>");
	for (int i = 0; i <= S3XML_MAX_TEXT; i++)
		buf_addc(&b, 'k');
	buf_adds(&b, "</Key></Object></Delete>");
	CHECK_EQ_INT(s3xml_parse_delete(b.data, b.len, &d, err, sizeof err), ERR_LIMIT);
	/* 1000 objects pass, 1001 do not */
	buf_reset(&b);
	buf_adds(&b, "<Delete>");
	for (int i = 0; i < S3XML_MAX_OBJECTS; i++)
		buf_printf(&b, "<Object><Key>k%d</Key></Object>", i);
	size_t at_max = b.len;
	buf_adds(&b, "</Delete>");
	CHECK_EQ_INT(s3xml_parse_delete(b.data, b.len, &d, err, sizeof err), 0);
	CHECK(d && d->count == S3XML_MAX_OBJECTS);
	s3xml_delete_free(&d);
	b.len = at_max;
	buf_adds(&b, "<Object><Key>one more</Key></Object></Delete>");
	CHECK_EQ_INT(s3xml_parse_delete(b.data, b.len, &d, err, sizeof err), ERR_LIMIT);
	CHECK(d == NULL);
	buf_free(&b);
	/* the whole body */
	char *huge = calloc(1, S3XML_MAX_BODY + 2);
	if (huge) {
		memset(huge, ' ', S3XML_MAX_BODY + 1);
		CHECK_EQ_INT(s3xml_parse_delete(huge, S3XML_MAX_BODY + 1, &d, err, sizeof err), ERR_LIMIT);
		free(huge);
	}
}

static void test_create_bucket(void)
{
	char loc[64], err[160];
	CHECK_EQ_INT(s3xml_parse_create_bucket("", 0, loc, sizeof loc, err, sizeof err), 0);
	CHECK_EQ_STR(loc, "");
	CHECK_EQ_INT(s3xml_parse_create_bucket(" \r\n", 3, loc, sizeof loc, err, sizeof err), 0);
	const char *x = "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			"<LocationConstraint>eu</LocationConstraint></CreateBucketConfiguration>";
	CHECK_EQ_INT(s3xml_parse_create_bucket(x, strlen(x), loc, sizeof loc, err, sizeof err), 0);
	CHECK_EQ_STR(loc, "eu");
	const char *bad = "<CreateBucketConfiguration><LocationConstraint>eu";
	CHECK_EQ_INT(s3xml_parse_create_bucket(bad, strlen(bad), loc, sizeof loc, err, sizeof err), ERR_PARSE);
	CHECK_EQ_STR(loc, "");
	char small[4];
	CHECK_EQ_INT(s3xml_parse_create_bucket(x, strlen(x), small, sizeof small, err, sizeof err), 0);
	const char *longer = "<CreateBucketConfiguration><LocationConstraint>eu-central-1"
			     "</LocationConstraint></CreateBucketConfiguration>";
	CHECK_EQ_INT(s3xml_parse_create_bucket(longer, strlen(longer), small, sizeof small, err, sizeof err),
		     ERR_LIMIT);
}

static void test_complete(void)
{
	const char *x = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"aa\"</ETag></Part>"
			"<Part><ETag>bb</ETag><PartNumber>3</PartNumber></Part></CompleteMultipartUpload>";
	s3xml_complete *c = NULL;
	char err[160];
	CHECK_EQ_INT(s3xml_parse_complete(x, strlen(x), &c, err, sizeof err), 0);
	if (c) {
		CHECK_EQ_INT(c->count, 2);
		CHECK_EQ_INT(c->parts[0].number, 1);
		CHECK_EQ_STR(c->parts[0].etag, "aa");
		CHECK_EQ_INT(c->parts[1].number, 3);
		CHECK_EQ_STR(c->parts[1].etag, "bb");
	}
	s3xml_complete_free(&c);
	static const char *const bad[] = {
		"<CompleteMultipartUpload></CompleteMultipartUpload>",
		"<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
		"<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
		"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
		"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ_INT(s3xml_parse_complete(bad[i], strlen(bad[i]), &c, err, sizeof err), ERR_PARSE);
		CHECK(c == NULL);
	}
}

/* PutBucketVersioning's body: Enabled / Suspended, MfaDelete read for
 * the caller to refuse, anything else malformed. */
static void test_versioning(void)
{
	s3xml_versioning_status st;
	s3xml_mfa_delete mfa;
	char err[160];
	const char *en = "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
			 "<Status>Enabled</Status></VersioningConfiguration>";
	CHECK_EQ_INT(s3xml_parse_versioning(en, strlen(en), &st, &mfa, err, sizeof err), 0);
	CHECK_EQ_INT(st, S3XML_VERSIONING_ENABLED);
	CHECK_EQ_INT(mfa, S3XML_MFA_ABSENT);
	const char *su = "<VersioningConfiguration><Status>Suspended</Status><MfaDelete>Enabled</MfaDelete>"
			 "</VersioningConfiguration>";
	CHECK_EQ_INT(s3xml_parse_versioning(su, strlen(su), &st, &mfa, err, sizeof err), 0);
	CHECK_EQ_INT(st, S3XML_VERSIONING_SUSPENDED);
	CHECK_EQ_INT(mfa, S3XML_MFA_ENABLED);
	const char *none = "<VersioningConfiguration/>";
	CHECK_EQ_INT(s3xml_parse_versioning(none, strlen(none), &st, &mfa, err, sizeof err), 0);
	CHECK_EQ_INT(st, S3XML_VERSIONING_NONE);
	const char *bad[] = {"<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>",
			     "<VersioningConfiguration><Status>Enabled</Status><Status>Suspended</Status>"
			     "</VersioningConfiguration>",
			     "<VersioningConfiguration><MfaDelete>Maybe</MfaDelete></VersioningConfiguration>",
			     "<Versioning><Status>Enabled</Status></Versioning>", ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ_INT(s3xml_parse_versioning(bad[i], strlen(bad[i]), &st, &mfa, err, sizeof err), ERR_PARSE);
		CHECK_EQ_INT(st, S3XML_VERSIONING_NONE);
	}
}

int main(void)
{
	RUN(test_escape);
	RUN(test_delete);
	RUN(test_delete_malformed);
	RUN(test_entities_refused);
	RUN(test_limits);
	RUN(test_create_bucket);
	RUN(test_complete);
	RUN(test_versioning);
	return TEST_SUMMARY();
}
