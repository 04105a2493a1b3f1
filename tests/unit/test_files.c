/* test_files.c - the pure parts of the files store (src/objects/files.c):
 * ids derived from Idempotency-Keys (stable, per owner, per key, and no
 * (owner, key) pair spelling another's), request hashes (every part
 * counts), id validation, and the internal S3 key pair (stable per region,
 * distinct between regions, of the documented shape). */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/secrets.h"
#include "objects/files.h"
#include "test.h"

static const unsigned char secret[32] = {1, 2, 3};

static void test_idempotent_id(void)
{
	char a[FILES_ID_LEN + 1], b[FILES_ID_LEN + 1];
	files_idempotent_id(secret, "01JUSER", "key-1", a);
	files_idempotent_id(secret, "01JUSER", "key-1", b);
	CHECK_EQ_STR(a, b);
	CHECK(files_valid_id(a, strlen(a)));
	files_idempotent_id(secret, "01JUSER", "key-2", b);
	CHECK(strcmp(a, b) != 0);
	files_idempotent_id(secret, "01JOTHER", "key-1", b);
	CHECK(strcmp(a, b) != 0);
	/* the separator: ("ab", "c") and ("a", "bc") differ */
	files_idempotent_id(secret, "ab", "c", a);
	files_idempotent_id(secret, "a", "bc", b);
	CHECK(strcmp(a, b) != 0);
	/* another secret, another id */
	unsigned char other[32] = {9};
	files_idempotent_id(other, "ab", "c", b);
	CHECK(strcmp(a, b) != 0);
}

static void test_request_hash(void)
{
	unsigned char sha[32] = {7}, h1[32], h2[32];
	files_request_hash("image/png", "a.png", sha, h1);
	files_request_hash("image/png", "a.png", sha, h2);
	CHECK(memcmp(h1, h2, 32) == 0);
	files_request_hash("image/jpeg", "a.png", sha, h2);
	CHECK(memcmp(h1, h2, 32) != 0);
	files_request_hash("image/png", "b.png", sha, h2);
	CHECK(memcmp(h1, h2, 32) != 0);
	sha[31] = 1;
	files_request_hash("image/png", "a.png", sha, h2);
	CHECK(memcmp(h1, h2, 32) != 0);
	/* type and name cannot trade bytes */
	unsigned char s0[32] = {0};
	files_request_hash("ab", "c", s0, h1);
	files_request_hash("a", "bc", s0, h2);
	CHECK(memcmp(h1, h2, 32) != 0);
}

static void test_valid_id(void)
{
	char id[FILES_ID_LEN + 1];
	files_new_id(id);
	CHECK(files_valid_id(id, strlen(id)));
	char other[FILES_ID_LEN + 1];
	files_new_id(other);
	CHECK(strcmp(id, other) != 0);
	CHECK(!files_valid_id(id, FILES_ID_LEN - 1));
	CHECK(!files_valid_id("0123456789ABCDEF0123456789abcdef", 32)); /* uppercase */
	CHECK(!files_valid_id("0123456789abcdef0123456789abcdeg", 32));
	CHECK(!files_valid_id("../../../../../../../../../etc/x", 32));
	CHECK(!files_valid_id("uploads", 7));
}

static void test_s3_key(void)
{
	secrets s;
	memset(&s, 0, sizeof s);
	memset(s.response_key, 0x42, sizeof s.response_key);
	char id1[FILES_KEY_ID_LEN + 1], sec1[FILES_SECRET_LEN + 1], id2[FILES_KEY_ID_LEN + 1],
		sec2[FILES_SECRET_LEN + 1];
	files_s3_key(&s, "eu", id1, sec1);
	files_s3_key(&s, "eu", id2, sec2);
	CHECK_EQ_STR(id1, id2);
	CHECK_EQ_STR(sec1, sec2);
	CHECK_EQ_INT(strlen(id1), FILES_KEY_ID_LEN);
	CHECK_EQ_INT(strlen(sec1), FILES_SECRET_LEN);
	CHECK(strncmp(id1, "TF", 2) == 0);
	files_s3_key(&s, "us", id2, sec2);
	CHECK(strcmp(id1, id2) != 0);
	CHECK(strcmp(sec1, sec2) != 0);
	/* the secret is not the id's continuation */
	CHECK(strstr(sec1, id1 + 2) == NULL);
}

int main(void)
{
	RUN(test_idempotent_id);
	RUN(test_request_hash);
	RUN(test_valid_id);
	RUN(test_s3_key);
	return TEST_SUMMARY();
}
