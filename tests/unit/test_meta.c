/* test_meta.c - the object store's metadata (src/objects/meta.c) on a real
 * SQLite file: buckets (create twice, delete non-empty), object rows
 * (conditional puts inside the transaction, replaced and deleted blobs
 * reported for deletion after the commit), byte-order listing steps, and
 * the orphan sweep's question "does a row name this blob?". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "objects/meta.h"
#include "store/db.h"
#include "test.h"

static char dir[] = "/tmp/test_meta_XXXXXX";

static db_conn *open_db(void)
{
	char path[256], err[256];
	snprintf(path, sizeof path, "%s/objects.db", dir);
	db_conn *db = db_open(path, false, err, sizeof err);
	CHECK(db != NULL);
	if (db)
		CHECK_EQ_INT(meta_init(db), 0);
	return db;
}

static meta_object make(const char *bucket, const char *key, const char *blob, const char *etag)
{
	meta_object o;
	memset(&o, 0, sizeof o);
	snprintf(o.bucket, sizeof o.bucket, "%s", bucket);
	o.key_len = strlen(key);
	memcpy(o.key, key, o.key_len);
	snprintf(o.blob, sizeof o.blob, "%s", blob);
	snprintf(o.etag, sizeof o.etag, "%s", etag);
	snprintf(o.content_type, sizeof o.content_type, "text/plain");
	snprintf(o.hlc, sizeof o.hlc, "00000000000a-00000001");
	snprintf(o.origin, sizeof o.origin, "eu");
	snprintf(o.owner, sizeof o.owner, "alice");
	o.size = 3;
	return o;
}

static void test_buckets(void)
{
	db_conn *db = open_db();
	if (!db)
		return;
	meta_bucket b = {.name = "photos", .owner = "alice", .region = "eu", .created_ms = 1000}, ex;
	CHECK_EQ_INT(meta_bucket_create(db, &b, &ex), 0);
	CHECK_EQ_INT(meta_bucket_create(db, &b, &ex), ERR_EXISTS);
	CHECK_EQ_STR(ex.owner, "alice");
	meta_bucket got;
	CHECK_EQ_INT(meta_bucket_get(db, "photos", &got), 0);
	CHECK_EQ_STR(got.region, "eu");
	CHECK_EQ_INT(got.created_ms, 1000);
	CHECK_EQ_INT(meta_bucket_get(db, "nope", &got), ERR_NOTFOUND);
	meta_object o = make("photos", "a.jpg", "0123456789abcdef0123456789abcdef", "e1");
	char old[BLOBSTORE_ID_LEN + 1];
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_NONE, NULL, old), 0);
	CHECK_EQ_INT(meta_bucket_delete(db, "photos"), ERR_CONFLICT);
	CHECK_EQ_INT(meta_object_delete(db, "photos", "a.jpg", 5, old), 0);
	CHECK_EQ_STR(old, "0123456789abcdef0123456789abcdef");
	CHECK_EQ_INT(meta_bucket_delete(db, "photos"), 0);
	CHECK_EQ_INT(meta_bucket_delete(db, "photos"), ERR_NOTFOUND);
	db_close(&db);
}

static void test_objects_and_conditions(void)
{
	db_conn *db = open_db();
	if (!db)
		return;
	meta_bucket b = {.name = "docs", .owner = "alice", .region = ""}, ex;
	CHECK_EQ_INT(meta_bucket_create(db, &b, &ex), 0);
	char old[BLOBSTORE_ID_LEN + 1];
	meta_object o = make("nobucket", "k", "11111111111111111111111111111111", "e1");
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_NONE, NULL, old), ERR_NOTFOUND);
	o = make("docs", "k", "11111111111111111111111111111111", "e1");
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_ETAG, "e1", old), ERR_NOTFOUND); /* If-Match, absent */
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_ABSENT, NULL, old), 0);
	CHECK_EQ_STR(old, "");
	meta_object o2 = make("docs", "k", "22222222222222222222222222222222", "e2");
	CHECK_EQ_INT(meta_object_put(db, &o2, META_COND_ABSENT, NULL, old), ERR_CONFLICT);
	CHECK_EQ_INT(meta_object_put(db, &o2, META_COND_ETAG, "other", old), ERR_CONFLICT);
	CHECK_EQ_STR(old, "");
	CHECK_EQ_INT(meta_object_put(db, &o2, META_COND_ETAG, "e1", old), 0);
	CHECK_EQ_STR(old, "11111111111111111111111111111111"); /* the caller deletes it after the commit */
	meta_object got;
	CHECK_EQ_INT(meta_object_get(db, "docs", "k", 1, &got), 0);
	CHECK_EQ_STR(got.blob, "22222222222222222222222222222222");
	CHECK_EQ_STR(got.hlc, "00000000000a-00000001");
	CHECK_EQ_STR(got.origin, "eu");
	CHECK_EQ_INT(meta_blob_known(db, "22222222222222222222222222222222"), 1);
	CHECK_EQ_INT(meta_blob_known(db, "11111111111111111111111111111111"), 0);
	CHECK_EQ_INT(meta_object_delete(db, "docs", "k", 1, old), 0);
	CHECK_EQ_INT(meta_object_delete(db, "docs", "k", 1, old), ERR_NOTFOUND);
	CHECK_EQ_STR(old, "");
	db_close(&db);
}

static void test_listing_order(void)
{
	db_conn *db = open_db();
	if (!db)
		return;
	meta_bucket b = {.name = "list", .owner = "alice"}, ex;
	CHECK_EQ_INT(meta_bucket_create(db, &b, &ex), 0);
	/* byte order (UTF-8), as S3 lists: "B" < "a" < "a/" < "ab" < "é" */
	const char *keys[] = {"ab", "\xc3\xa9", "a", "B", "a/"};
	char old[BLOBSTORE_ID_LEN + 1];
	for (size_t i = 0; i < 5; i++) {
		meta_object o = make("list", keys[i], "33333333333333333333333333333333", "e");
		CHECK_EQ_INT(meta_object_put(db, &o, META_COND_NONE, NULL, old), 0);
	}
	const char *want[] = {"B", "a", "a/", "ab", "\xc3\xa9"};
	meta_object o;
	const char *after = "";
	size_t after_len = 0;
	bool inclusive = true;
	char cur[META_KEY_MAX + 1];
	for (size_t i = 0; i < 5; i++) {
		CHECK_EQ_INT(meta_object_next(db, "list", after, after_len, inclusive, &o), 0);
		CHECK_EQ_STR(o.key, want[i]);
		memcpy(cur, o.key, o.key_len + 1);
		after = cur;
		after_len = o.key_len;
		inclusive = false;
	}
	CHECK_EQ_INT(meta_object_next(db, "list", after, after_len, false, &o), ERR_NOTFOUND);
	CHECK_EQ_INT(meta_object_next(db, "list", "a", 1, true, &o), 0);
	CHECK_EQ_STR(o.key, "a");
	CHECK_EQ_INT(meta_object_next(db, "list", "a0", 2, true, &o), 0); /* the seek past "a/" */
	CHECK_EQ_STR(o.key, "ab");
	db_close(&db);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_buckets);
	RUN(test_objects_and_conditions);
	RUN(test_listing_order);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return TEST_SUMMARY();
}
