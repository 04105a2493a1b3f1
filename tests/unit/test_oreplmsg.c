/*
 * test_oreplmsg.c - the object replication messages (src/objects/oreplmsg.c):
 * the version framing, versions with their inline segment, tombstone and
 * decide parts, tombstones, buckets, segment queries; each malformed field
 * refused with a reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "objects/oreplmsg.h"
#include "test.h"

#define HLC1 "018c1f2a3b4c-00000000"
#define HLC0 "018c1f2a3b4b-00000000"
#define XFER "0123456789abcdef0123456789abcdef"

static const char *version_json(const char *extra)
{
	static char out[2048];
	snprintf(out, sizeof out,
		 "{\"bucket\":\"b\",\"key\":\"6b2f31\",\"version_id\":\"null\",\"hlc\":\"" HLC1 "\","
		 "\"origin\":\"eu\",\"owner\":\"t\",\"size\":3,\"etag\":\"e\",\"content_type\":\"text/plain\","
		 "\"headers\":\"\",\"mtime_ms\":5,\"sha256\":\"\",\"crc32\":7,\"crc32c\":8,\"acl\":1,"
		 "\"delete_marker\":false,\"manifest\":\"\",\"parts\":0,\"xfer\":\"" XFER "\"%s}",
		 extra);
	return out;
}

static int parse(const char *json, bool remove, size_t data_len, oreplmsg_version *m, const char **why)
{
	*why = NULL;
	return oreplmsg_parse_version(json, strlen(json), remove, data_len, m, why);
}

static void test_split(void)
{
	oreplmsg_frame f;
	const char *why = NULL;
	const char *plain = "{\"a\":1}";
	CHECK_EQ_INT(oreplmsg_split(plain, strlen(plain), &f, &why), 0);
	CHECK(f.json == plain && f.json_len == strlen(plain) && f.data == NULL && f.data_len == 0);
	char framed[32] = {0, 0, 0, 7};
	memcpy(framed + 4, "{\"a\":1}xyz", 10);
	CHECK_EQ_INT(oreplmsg_split(framed, 14, &f, &why), 0);
	CHECK(f.json == framed + 4 && f.json_len == 7 && f.data == framed + 11 && f.data_len == 3);
	framed[3] = 11; /* JSON longer than the body */
	CHECK_EQ_INT(oreplmsg_split(framed, 14, &f, &why), ERR_PARSE);
	CHECK(why && strstr(why, "longer"));
	framed[3] = 10; /* exactly the body: no data */
	CHECK_EQ_INT(oreplmsg_split(framed, 14, &f, &why), 0);
	CHECK_EQ_INT(f.data_len, 0);
	CHECK_EQ_INT(oreplmsg_split(NULL, 0, &f, &why), 0);
	CHECK_EQ_INT(f.json_len, 0);
}

static void test_version(void)
{
	oreplmsg_version m;
	const char *why;
	CHECK_EQ_INT(parse(version_json(""), false, 0, &m, &why), 0);
	CHECK_EQ_STR(m.ob.bucket, "b");
	CHECK_EQ_INT(m.ob.key_len, 3);
	CHECK(memcmp(m.ob.key, "k/1", 3) == 0);
	CHECK_EQ_STR(m.ob.hlc, HLC1);
	CHECK_EQ_STR(m.ob.origin, "eu");
	CHECK_EQ_INT(m.ob.size, 3);
	CHECK_EQ_INT(m.ob.crc32, 7);
	CHECK_EQ_INT(m.ob.acl, META_ACL_PUBLIC_READ);
	CHECK_EQ_STR(m.xfer, XFER);
	CHECK(!m.has_seg && !m.has_tomb && !m.has_decide);

	/* the final segment inline, and a tombstone to apply first */
	CHECK_EQ_INT(parse(version_json(",\"seg\":{\"part\":0,\"off\":1,\"size\":3},\"tomb\":{\"hlc\":\"" HLC0
					"\",\"origin\":\"us\"}"),
			   false, 2, &m, &why),
		     0);
	CHECK(m.has_seg && m.seg_part == 0 && m.seg_off == 1 && m.seg_size == 3);
	CHECK(m.has_tomb);
	CHECK_EQ_STR(m.tomb_hlc, HLC0);
	CHECK_EQ_STR(m.tomb_origin, "us");
	/* the inline data must end its part */
	CHECK_EQ_INT(parse(version_json(",\"seg\":{\"part\":0,\"off\":0,\"size\":3}"), false, 2, &m, &why), ERR_PARSE);
	/* data without seg */
	CHECK_EQ_INT(parse(version_json(""), false, 1, &m, &why), ERR_PARSE);
	CHECK(why && strstr(why, "seg"));
	/* a tombstone part needs a valid HLC and may not come with decide */
	CHECK_EQ_INT(parse(version_json(",\"tomb\":{\"hlc\":\"nope\",\"origin\":\"us\"}"), false, 0, &m, &why), ERR_PARSE);
	CHECK_EQ_INT(parse(version_json(",\"tomb\":{\"hlc\":\"" HLC0 "\",\"origin\":\"us\"},\"decide\":{\"cond\":"
					"\"absent\",\"etag\":\"\"}"),
			   false, 0, &m, &why),
		     ERR_PARSE);
	/* decide */
	CHECK_EQ_INT(parse(version_json(",\"decide\":{\"cond\":\"etag\",\"etag\":\"x\"}"), false, 0, &m, &why), 0);
	CHECK(m.has_decide && m.cond == META_COND_ETAG);
	CHECK_EQ_STR(m.cond_etag, "x");
	CHECK_EQ_INT(parse(version_json(",\"decide\":{\"cond\":\"maybe\",\"etag\":\"x\"}"), false, 0, &m, &why),
		     ERR_PARSE);
	/* malformed fields */
	const char *bad[] = {
		"{\"bucket\":\"\",\"key\":\"6b\",\"version_id\":\"null\",\"hlc\":\"" HLC1 "\",\"origin\":\"eu\"}",
		"{\"bucket\":\"b\",\"key\":\"6\",\"version_id\":\"null\",\"hlc\":\"" HLC1 "\",\"origin\":\"eu\"}",
		"{\"bucket\":\"b\",\"key\":\"\",\"version_id\":\"null\",\"hlc\":\"" HLC1 "\",\"origin\":\"eu\"}",
		"{\"bucket\":\"b\",\"key\":\"6b\",\"version_id\":\"v1\",\"hlc\":\"" HLC1 "\",\"origin\":\"eu\"}",
		"{\"bucket\":\"b\",\"key\":\"6b\",\"version_id\":\"null\",\"hlc\":\"1\",\"origin\":\"eu\"}",
		"{\"bucket\":\"b\",\"key\":\"6b\",\"version_id\":\"null\",\"hlc\":\"" HLC1 "\"}",
		"[1]",
		"{\"bucket\":\"b\",\"bucket\":\"c\"}",
		"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ_INT(parse(bad[i], true, 0, &m, &why), ERR_PARSE);
		CHECK(why != NULL);
	}
	/* a version without its object fields */
	CHECK_EQ_INT(parse("{\"bucket\":\"b\",\"key\":\"6b\",\"version_id\":\"null\",\"hlc\":\"" HLC1
			   "\",\"origin\":\"eu\"}",
			   false, 0, &m, &why),
		     ERR_PARSE);
	/* a key longer than META_KEY_MAX */
	size_t big = 2 * (META_KEY_MAX + 1) + 256;
	char *j = malloc(big);
	int n = snprintf(j, big, "{\"bucket\":\"b\",\"version_id\":\"null\",\"hlc\":\"" HLC1 "\",\"origin\":\"eu\",\"key\":\"");
	for (size_t k = 0; k < META_KEY_MAX + 1; k++)
		n += snprintf(j + n, big - (size_t)n, "61");
	snprintf(j + n, big - (size_t)n, "\"}");
	CHECK_EQ_INT(parse(j, true, 0, &m, &why), ERR_PARSE);
	free(j);
}

static void test_remove(void)
{
	oreplmsg_version m;
	const char *why;
	const char *t = "{\"bucket\":\"b\",\"key\":\"6b\",\"version_id\":\"0123456789abcdef0123456789abcdef\",\"hlc\":\"" HLC1
			"\",\"origin\":\"us\"}";
	CHECK_EQ_INT(parse(t, true, 0, &m, &why), 0);
	CHECK_EQ_STR(m.ob.version_id, "0123456789abcdef0123456789abcdef");
	CHECK_EQ_STR(m.ob.origin, "us");
	CHECK_EQ_INT(parse(t, true, 5, &m, &why), ERR_PARSE); /* no data with a tombstone */
}

static void test_delete_marker(void)
{
	oreplmsg_version m;
	const char *why;
	char j[2048];
	snprintf(j, sizeof j, "%s", version_json(""));
	char *p = strstr(j, "\"delete_marker\":false");
	memcpy(p, "\"delete_marker\":true ", 21);
	CHECK_EQ_INT(parse(j, false, 0, &m, &why), 0);
	CHECK(m.ob.delete_marker);
	p = strstr(j, "\"parts\":0");
	p[8] = '2';
	CHECK_EQ_INT(parse(j, false, 0, &m, &why), ERR_PARSE); /* no parts */
}

static void test_bucket(void)
{
	meta_bucket b;
	char *cors = (char *)1;
	bool removed = true;
	const char *why = NULL;
	const char *ok = "{\"name\":\"b\",\"owner\":\"t\",\"region\":\"\",\"created_ms\":9,\"versioning\":1,\"acl\":1,"
			 "\"cors\":\"<CORSConfiguration/>\"}";
	CHECK_EQ_INT(oreplmsg_parse_bucket(ok, strlen(ok), &b, &cors, &removed, &why), 0);
	CHECK_EQ_STR(b.name, "b");
	CHECK(!removed && b.versioning == META_VERSIONING_ENABLED && b.acl == META_ACL_PUBLIC_READ);
	CHECK(cors && strcmp(cors, "<CORSConfiguration/>") == 0);
	CHECK_EQ_STR(b.acl_stamp, ""); /* a sender without stamps: the oldest */
	free(cors);
	const char *stamped = "{\"name\":\"b\",\"owner\":\"t\",\"region\":\"\",\"versioning\":2,\"acl\":0,"
			      "\"acl_stamp\":\"0000000000ff-00000002:us\",\"cors_stamp\":\"\"}";
	CHECK_EQ_INT(oreplmsg_parse_bucket(stamped, strlen(stamped), &b, &cors, &removed, &why), 0);
	CHECK_EQ_STR(b.acl_stamp, "0000000000ff-00000002:us");
	CHECK_EQ_STR(b.versioning_stamp, "");
	CHECK(cors == NULL && b.versioning == META_VERSIONING_SUSPENDED);
	const char *gone = "{\"name\":\"b\",\"removed\":true}";
	CHECK_EQ_INT(oreplmsg_parse_bucket(gone, strlen(gone), &b, &cors, &removed, &why), 0);
	CHECK(removed && cors == NULL);
	const char *bad[] = {"{\"name\":\"\"}", "{\"name\":\"b\"}", "{\"name\":\"b\",\"owner\":\"t\",\"region\":\"\","
								    "\"cors\":5}",
			     "{\"name\":\"b\",\"owner\":\"t\",\"region\":\"\",\"acl_stamp\":\"tomorrow\"}",
			     "{\"name\":\"b\",\"owner\":\"t\",\"region\":\"\",\"cors_stamp\":7}",
			     "{\"name\":\"b\",\"owner\":\"t\",\"region\":\"\",\"versioning_stamp\":\"0000000000ff-00000002:u\\u0000s\"}",
			     "nope"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cors = (char *)1;
		CHECK_EQ_INT(oreplmsg_parse_bucket(bad[i], strlen(bad[i]), &b, &cors, &removed, &why), ERR_PARSE);
		CHECK(cors == NULL && why != NULL);
	}
}

static void test_segment(void)
{
	char x[33];
	long long part, off, size;
	const char *why = NULL;
	CHECK_EQ_INT(oreplmsg_parse_segment("/internal/v1/objects/segment?xfer=" XFER "&part=2&off=10&size=20", x, &part,
					    &off, &size, &why),
		     0);
	CHECK_EQ_STR(x, XFER);
	CHECK(part == 2 && off == 10 && size == 20);
	const char *bad[] = {
		"/s?xfer=" XFER "&part=10000&off=0&size=1",
		"/s?xfer=0123&part=0&off=0&size=1",
		"/s?xfer=" XFER "&part=0&off=-1&size=1",
		"/s?xfer=" XFER "&part=0&off=0",
		"/s?xfer=0123456789ABCDEF0123456789ABCDEF&part=0&off=0&size=1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_EQ_INT(oreplmsg_parse_segment(bad[i], x, &part, &off, &size, &why), ERR_PARSE);
}

int main(void)
{
	RUN(test_split);
	RUN(test_version);
	RUN(test_remove);
	RUN(test_delete_marker);
	RUN(test_bucket);
	RUN(test_segment);
	return TEST_SUMMARY();
}
