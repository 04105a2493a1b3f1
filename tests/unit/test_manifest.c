/* test_manifest.c - the pure arithmetic of multipart objects
 * (src/objects/manifest.c): the ETag S3 gives a completed upload (checked
 * against a value computed independently with Python's hashlib), the size
 * rules of Complete, and the slice of each part a byte range reads,
 * including ranges that cross part boundaries. */
#include <string.h>

#include "objects/manifest.h"
#include "test.h"

static void test_md5_from_hex(void)
{
	unsigned char d[16];
	CHECK_EQ_INT(manifest_md5_from_hex("0123456789abcdefABCDEF0123456789", d), 0);
	CHECK_EQ_INT(d[0], 0x01);
	CHECK_EQ_INT(d[7], 0xef);
	CHECK_EQ_INT(d[8], 0xab);
	CHECK_EQ_INT(manifest_md5_from_hex("0123456789abcdef0123456789abcde", d), -1);  /* short */
	CHECK_EQ_INT(manifest_md5_from_hex("0123456789abcdef0123456789abcdefa", d), -1); /* long */
	CHECK_EQ_INT(manifest_md5_from_hex("0123456789abcdef0123456789abcdeg", d), -1);
}

static void test_etag(void)
{
	/* md5(b"a" * 16) and md5(b"b") as parts; python3:
	 * hashlib.md5(hashlib.md5(b"a"*16).digest() + hashlib.md5(b"b").digest()).hexdigest() */
	unsigned char md5s[32];
	CHECK_EQ_INT(manifest_md5_from_hex("23ca472302f49b3ea5592b146a312da0", md5s), 0);
	CHECK_EQ_INT(manifest_md5_from_hex("92eb5ffee6ae2fec3ad71c777531578f", md5s + 16), 0);
	char etag[MANIFEST_ETAG_MAX];
	CHECK_EQ_INT(manifest_etag(md5s, 2, etag), 0);
	CHECK_EQ_STR(etag, "864e613ea8677e10993307843fdd555c-2");
	CHECK_EQ_INT(manifest_etag(md5s, 1, etag), 0);
	CHECK(strcmp(etag + 32, "-1") == 0); /* one part still gets the suffix, as in S3 */
	CHECK_EQ_INT(manifest_etag(md5s, 0, etag), -1);
	CHECK_EQ_STR(etag, "");
	CHECK_EQ_INT(manifest_etag(md5s, MANIFEST_MAX_PARTS + 1, etag), -1);
}

static void test_sizes(void)
{
	const uint64_t M = MANIFEST_MIN_PART;
	size_t bad;
	uint64_t total;
	uint64_t ok[3] = {M, M + 1, 1};
	CHECK_EQ_INT(manifest_check_sizes(ok, 3, M, 3 * M, &bad, &total), MANIFEST_SIZES_OK);
	CHECK_EQ_INT(total, 2 * M + 2);
	uint64_t small[3] = {M, M - 1, M};
	CHECK_EQ_INT(manifest_check_sizes(small, 3, M, 10 * M, &bad, &total), MANIFEST_PART_TOO_SMALL);
	CHECK_EQ_INT(bad, 1);
	uint64_t last_small[1] = {0}; /* a single empty part is the last one */
	CHECK_EQ_INT(manifest_check_sizes(last_small, 1, M, M, &bad, &total), MANIFEST_SIZES_OK);
	CHECK_EQ_INT(manifest_check_sizes(ok, 3, M, 2 * M + 1, &bad, &total), MANIFEST_TOO_LARGE);
	uint64_t huge[2] = {UINT64_MAX, UINT64_MAX}; /* a sum that would wrap */
	CHECK_EQ_INT(manifest_check_sizes(huge, 2, M, UINT64_MAX, &bad, &total), MANIFEST_TOO_LARGE);
}

static void test_slice(void)
{
	uint64_t off, len;
	/* parts [0,100) [100,250) [250,251); the range [90, 260) crosses all */
	CHECK(manifest_slice(0, 100, 90, 170, &off, &len));
	CHECK_EQ_INT(off, 90);
	CHECK_EQ_INT(len, 10);
	CHECK(manifest_slice(100, 150, 90, 170, &off, &len));
	CHECK_EQ_INT(off, 0);
	CHECK_EQ_INT(len, 150);
	CHECK(manifest_slice(250, 1, 90, 170, &off, &len));
	CHECK_EQ_INT(off, 0);
	CHECK_EQ_INT(len, 1);
	/* inside one part */
	CHECK(manifest_slice(100, 150, 120, 10, &off, &len));
	CHECK_EQ_INT(off, 20);
	CHECK_EQ_INT(len, 10);
	/* touching but not overlapping: the range ends where the part starts */
	CHECK(!manifest_slice(100, 150, 90, 10, &off, &len));
	CHECK_EQ_INT(len, 0);
	CHECK(!manifest_slice(0, 100, 100, 5, &off, &len));
	CHECK(!manifest_slice(0, 0, 0, 5, &off, &len)); /* an empty part */
	CHECK(!manifest_slice(0, 10, 5, 0, &off, &len)); /* an empty range */
}

int main(void)
{
	RUN(test_md5_from_hex);
	RUN(test_etag);
	RUN(test_sizes);
	RUN(test_slice);
	return TEST_SUMMARY();
}
