/* test_meta.c - the object store's metadata (src/objects/meta.c) on a real
 * SQLite file: buckets (create twice, delete non-empty), object rows
 * (conditional puts inside the transaction, replaced and deleted blobs
 * reported for deletion after the commit), byte-order listing steps, and
 * the orphan sweep's question "does a row name this blob?"; multipart
 * uploads (parts replaced, Complete's checks and its manifest, abort,
 * expiry, the uploads bound, listing order) and the migration of an
 * objects.db written before multipart; versions (the current-version rule,
 * delete markers, Suspended's null version, listing order), ACLs and CORS. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "objects/meta.h"
#include "store/db.h"
#include "test.h"

/* The key of a delete, with its HLC (a late one: 0xffff... ms) and origin. */
static meta_object *by(const char *bucket, const char *key)
{
	static meta_object m;
	memset(&m, 0, sizeof m);
	snprintf(m.bucket, sizeof m.bucket, "%s", bucket);
	snprintf(m.key, sizeof m.key, "%s", key);
	m.key_len = strlen(key);
	snprintf(m.hlc, sizeof m.hlc, "00000000ffff-00000000");
	snprintf(m.origin, sizeof m.origin, "eu");
	return &m;
}

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

/* The last blob a write reported (""when none), and the list emptied. */
static const char *take(meta_blobs *l)
{
	static char last[BLOBSTORE_ID_LEN + 1];
	snprintf(last, sizeof last, "%s", l->count ? l->ids[l->count - 1] : "");
	meta_blobs_free(l);
	return last;
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
	meta_blobs old = {0};
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_NONE, NULL, &old), 0);
	CHECK_EQ_INT(meta_bucket_delete(db, "photos"), ERR_CONFLICT);
	CHECK_EQ_INT(meta_object_delete(db, by("photos", "a.jpg"), &old), 0);
	CHECK_EQ_STR(take(&old), "0123456789abcdef0123456789abcdef");
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
	meta_blobs old = {0};
	meta_object o = make("nobucket", "k", "11111111111111111111111111111111", "e1");
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_NONE, NULL, &old), ERR_NOTFOUND);
	o = make("docs", "k", "11111111111111111111111111111111", "e1");
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_ETAG, "e1", &old), ERR_NOTFOUND); /* If-Match, absent */
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_ABSENT, NULL, &old), 0);
	CHECK_EQ_STR(take(&old), "");
	meta_object o2 = make("docs", "k", "22222222222222222222222222222222", "e2");
	CHECK_EQ_INT(meta_object_put(db, &o2, META_COND_ABSENT, NULL, &old), ERR_CONFLICT);
	CHECK_EQ_INT(meta_object_put(db, &o2, META_COND_ETAG, "other", &old), ERR_CONFLICT);
	CHECK_EQ_STR(take(&old), "");
	CHECK_EQ_INT(meta_object_put(db, &o2, META_COND_ETAG, "e1", &old), 0);
	CHECK_EQ_STR(take(&old), "11111111111111111111111111111111"); /* the caller deletes it after the commit */
	meta_object got;
	CHECK_EQ_INT(meta_object_get(db, "docs", "k", 1, &got), 0);
	CHECK_EQ_STR(got.blob, "22222222222222222222222222222222");
	CHECK_EQ_STR(got.hlc, "00000000000a-00000001");
	CHECK_EQ_STR(got.origin, "eu");
	CHECK_EQ_INT(meta_blob_known(db, "22222222222222222222222222222222"), 1);
	CHECK_EQ_INT(meta_blob_known(db, "11111111111111111111111111111111"), 0);
	CHECK_EQ_INT(meta_object_delete(db, by("docs", "k"), &old), 0);
	CHECK_EQ_STR(take(&old), "22222222222222222222222222222222");
	CHECK_EQ_INT(meta_object_delete(db, by("docs", "k"), &old), ERR_NOTFOUND);
	CHECK_EQ_STR(take(&old), "");
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
	meta_blobs old = {0};
	for (size_t i = 0; i < 5; i++) {
		meta_object o = make("list", keys[i], "33333333333333333333333333333333", "e");
		CHECK_EQ_INT(meta_object_put(db, &o, META_COND_NONE, NULL, &old), 0);
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


struct pos_ctx {
	uint64_t *pos;
	int *count;
};

static int collect_pos(void *arg, const char *blob, uint64_t pos, uint64_t size)
{
	struct pos_ctx *c = arg;
	if (*c->count < 4)
		c->pos[(*c->count)++] = pos;
	return 0;
}

static const char *hex_md5(char c)
{
	static char h[33];
	memset(h, c, 32);
	h[32] = '\0';
	return h;
}

static meta_upload make_upload(const char *id, const char *bucket, const char *key, int64_t created)
{
	meta_upload u;
	memset(&u, 0, sizeof u);
	snprintf(u.upload_id, sizeof u.upload_id, "%s", id);
	snprintf(u.bucket, sizeof u.bucket, "%s", bucket);
	u.key_len = strlen(key);
	memcpy(u.key, key, u.key_len);
	snprintf(u.content_type, sizeof u.content_type, "video/mp4");
	snprintf(u.headers, sizeof u.headers, "x-amz-meta-a: 1\r\n");
	snprintf(u.owner, sizeof u.owner, "alice");
	u.created_ms = created;
	return u;
}

static meta_part make_part(int number, char blob, uint64_t size, char md5)
{
	meta_part p = {.number = number, .size = size, .mtime_ms = 5};
	memset(p.blob, blob, 32);
	snprintf(p.etag, sizeof p.etag, "%s", hex_md5(md5));
	return p;
}

#define MIB (1024ULL * 1024)
#define UP1 "0000000000010000000000000000000a"
#define UP2 "0000000000020000000000000000000b"

/* Upload, replace a part, the Complete checks in order (unknown part, ETag
 * mismatch, a small part that is not the last, the size bound), then a
 * Complete that writes the manifest and drops the unlisted part; the blobs
 * each step reports for deletion; the sweep's question for every table. */
static void test_multipart_complete(void)
{
	db_conn *db = open_db();
	if (!db)
		return;
	meta_bucket b = {.name = "mp", .owner = "alice"}, ex;
	CHECK_EQ_INT(meta_bucket_create(db, &b, &ex), 0);
	meta_upload u = make_upload(UP1, "mp", "big.bin", 100);
	CHECK_EQ_INT(meta_upload_create(db, &u, 10), 0);
	meta_upload nob = make_upload(UP2, "gone", "k", 100);
	CHECK_EQ_INT(meta_upload_create(db, &nob, 10), ERR_NOTFOUND);
	meta_blobs old = {0};
	meta_part p1 = make_part(1, 'a', 5 * MIB, '1'), p2 = make_part(2, 'b', 6 * MIB, '2');
	meta_part p3 = make_part(3, 'c', 100, '3'), p9 = make_part(9, 'e', 7, '9');
	CHECK_EQ_INT(meta_part_put(db, UP1, &p1, &old), 0);
	CHECK_EQ_INT(meta_part_put(db, UP2, &p1, &old), ERR_NOTFOUND);
	CHECK_EQ_INT(meta_part_put(db, UP1, &p2, &old), 0);
	CHECK_EQ_INT(meta_part_put(db, UP1, &p9, &old), 0);
	CHECK_EQ_INT((int)old.count, 0);
	meta_part p2b = make_part(2, 'd', 6 * MIB, '4'); /* part 2 again: the first blob goes */
	CHECK_EQ_INT(meta_part_put(db, UP1, &p2b, &old), 0);
	CHECK_EQ_STR(take(&old), hex_md5('b'));
	CHECK_EQ_INT(meta_part_put(db, UP1, &p3, &old), 0);
	CHECK_EQ_INT(meta_blob_known(db, hex_md5('d')), 1); /* an upload's part */
	CHECK_EQ_INT(meta_blob_known(db, hex_md5('b')), 0);
	meta_part got;
	CHECK_EQ_INT(meta_part_next(db, UP1, 1, &got), 0);
	CHECK_EQ_INT(got.number, 2);
	CHECK_EQ_INT(meta_part_next(db, UP1, 9, &got), ERR_NOTFOUND);

	meta_complete_part cp[3] = {{1, ""}, {2, ""}, {3, ""}};
	snprintf(cp[0].etag, sizeof cp[0].etag, "%s", hex_md5('1'));
	snprintf(cp[1].etag, sizeof cp[1].etag, "%s", hex_md5('2')); /* the replaced part's ETag */
	snprintf(cp[2].etag, sizeof cp[2].etag, "%s", hex_md5('3'));
	meta_object o = make("mp", "big.bin", "", "");
	int bad = 0;
	CHECK_EQ_INT(meta_upload_complete(db, UP1, cp, 3, 5 * MIB, 1ULL << 40, &o, &bad, &old), ERR_INVAL);
	CHECK_EQ_INT(bad, 2);
	snprintf(cp[1].etag, sizeof cp[1].etag, "%s", hex_md5('4'));
	meta_complete_part missing[2] = {{1, ""}, {4, ""}};
	snprintf(missing[0].etag, sizeof missing[0].etag, "%s", hex_md5('1'));
	snprintf(missing[1].etag, sizeof missing[1].etag, "%s", hex_md5('4'));
	CHECK_EQ_INT(meta_upload_complete(db, UP1, missing, 2, 5 * MIB, 1ULL << 40, &o, &bad, &old), ERR_INVAL);
	CHECK_EQ_INT(bad, 4);
	meta_complete_part small[2] = {cp[2], cp[0]}; /* part 3 (100 bytes) first: not the last */
	small[0].number = 3;
	small[1].number = 1; /* the order is the caller's check; the size rule is ours */
	CHECK_EQ_INT(meta_upload_complete(db, UP1, small, 2, 5 * MIB, 1ULL << 40, &o, &bad, &old), ERR_CONFLICT);
	CHECK_EQ_INT(bad, 3);
	CHECK_EQ_INT(meta_upload_complete(db, UP1, cp, 3, 5 * MIB, 11 * MIB, &o, &bad, &old), ERR_LIMIT);
	meta_object wrong = make("mp", "other-key", "", "");
	CHECK_EQ_INT(meta_upload_complete(db, UP1, cp, 3, 5 * MIB, 1ULL << 40, &wrong, &bad, &old), ERR_NOTFOUND);
	CHECK_EQ_INT((int)old.count, 0);

	/* an object already at the key: its blob goes with the Complete */
	meta_object single = make("mp", "big.bin", hex_md5('f'), "e");
	CHECK_EQ_INT(meta_object_put(db, &single, META_COND_NONE, NULL, &old), 0);
	CHECK_EQ_INT(meta_upload_complete(db, UP1, cp, 3, 5 * MIB, 1ULL << 40, &o, &bad, &old), 0);
	CHECK_EQ_INT((int)old.count, 2); /* the single blob, and part 9 (not listed) */
	CHECK_EQ_STR(old.ids[0], hex_md5('f'));
	CHECK_EQ_STR(old.ids[1], hex_md5('e'));
	meta_blobs_free(&old);
	CHECK_EQ_INT(o.size, 11 * MIB + 100);
	CHECK_EQ_INT(o.parts, 3);
	CHECK(strlen(o.etag) == 34 && strcmp(o.etag + 32, "-3") == 0);
	meta_object row;
	CHECK_EQ_INT(meta_object_get(db, "mp", "big.bin", 7, &row), 0);
	CHECK_EQ_STR(row.manifest, UP1);
	CHECK_EQ_STR(row.etag, o.etag);
	CHECK_EQ_STR(row.content_type, "video/mp4"); /* taken at Create */
	CHECK_EQ_STR(row.headers, "x-amz-meta-a: 1\r\n");
	CHECK_EQ_INT(meta_upload_get(db, UP1, &u), ERR_NOTFOUND);
	CHECK_EQ_INT(meta_upload_complete(db, UP1, cp, 3, 5 * MIB, 1ULL << 40, &o, &bad, &old), ERR_NOTFOUND);
	CHECK_EQ_INT(meta_blob_known(db, hex_md5('a')), 1); /* now a manifest's part */
	CHECK_EQ_INT(meta_blob_known(db, hex_md5('e')), 0);

	/* a range across the boundary of parts 1 and 2 reads those two */
	uint64_t pos[4];
	int count = 0;
	CHECK_EQ_INT(meta_manifest_parts(db, UP1, 5 * MIB - 10, 20, collect_pos, &(struct pos_ctx){pos, &count}), 0);
	CHECK_EQ_INT(count, 2);
	CHECK_EQ_INT(pos[0], 0);
	CHECK_EQ_INT(pos[1], 5 * MIB);

	CHECK_EQ_INT(meta_bucket_delete(db, "mp"), ERR_CONFLICT);
	CHECK_EQ_INT(meta_object_delete(db, by("mp", "big.bin"), &old), 0);
	CHECK_EQ_INT((int)old.count, 3); /* every part of the manifest */
	meta_blobs_free(&old);
	CHECK_EQ_INT(meta_blob_known(db, hex_md5('a')), 0);
	CHECK_EQ_INT(meta_bucket_delete(db, "mp"), 0);
	db_close(&db);
}

/* Abort, expiry (oldest first, a batch bound), the max_uploads bound, and
 * ListMultipartUploads' (key, upload id) order; a bucket with uploads in
 * progress cannot be deleted. */
static void test_multipart_abort_expire_list(void)
{
	db_conn *db = open_db();
	if (!db)
		return;
	meta_bucket b = {.name = "up", .owner = "alice"}, ex;
	CHECK_EQ_INT(meta_bucket_create(db, &b, &ex), 0);
	const char *ids[3] = {"0000000000050000000000000000000c", "0000000000060000000000000000000d",
			      "0000000000070000000000000000000e"};
	const char *keys[3] = {"b", "a", "b"};
	for (int i = 0; i < 3; i++) {
		meta_upload u = make_upload(ids[i], "up", keys[i], 100 + i);
		CHECK_EQ_INT(meta_upload_create(db, &u, 3), 0);
	}
	meta_upload extra = make_upload("0000000000080000000000000000000f", "up", "c", 200);
	CHECK_EQ_INT(meta_upload_create(db, &extra, 3), ERR_LIMIT);
	CHECK_EQ_INT(meta_upload_count(db), 3);
	CHECK_EQ_INT(meta_bucket_delete(db, "up"), ERR_CONFLICT);
	meta_upload u;
	CHECK_EQ_INT(meta_upload_next(db, "up", "", 0, "", &u), 0);
	CHECK_EQ_STR(u.upload_id, ids[1]); /* key "a" */
	CHECK_EQ_INT(meta_upload_next(db, "up", "a", 1, ids[1], &u), 0);
	CHECK_EQ_STR(u.upload_id, ids[0]); /* key "b", the older upload first */
	CHECK_EQ_INT(meta_upload_next(db, "up", "b", 1, ids[0], &u), 0);
	CHECK_EQ_STR(u.upload_id, ids[2]);
	CHECK_EQ_INT(meta_upload_next(db, "up", "b", 1, "g", &u), ERR_NOTFOUND);

	meta_blobs old = {0};
	meta_part p = make_part(1, '7', 10, '1');
	CHECK_EQ_INT(meta_part_put(db, ids[0], &p, &old), 0);
	CHECK_EQ_INT(meta_upload_abort(db, ids[0], &old), 0);
	CHECK_EQ_STR(take(&old), hex_md5('7'));
	CHECK_EQ_INT(meta_upload_abort(db, ids[0], &old), ERR_NOTFOUND);
	p = make_part(1, '8', 10, '1');
	CHECK_EQ_INT(meta_part_put(db, ids[1], &p, &old), 0);
	int aborted = 0;
	CHECK_EQ_INT(meta_upload_expire(db, 102, 10, &old, &aborted), 0); /* created 101: expired */
	CHECK_EQ_INT(aborted, 1);
	CHECK_EQ_STR(take(&old), hex_md5('8'));
	CHECK_EQ_INT(meta_upload_get(db, ids[2], &u), 0); /* created 102: not before the cutoff */
	CHECK_EQ_INT(meta_upload_expire(db, 1000, 0, &old, &aborted), 0);
	CHECK_EQ_INT(aborted, 0);
	CHECK_EQ_INT(meta_upload_expire(db, 1000, 10, &old, &aborted), 0);
	CHECK_EQ_INT(aborted, 1);
	CHECK_EQ_INT(meta_bucket_delete(db, "up"), 0);
	db_close(&db);
}

/* An objects.db written before multipart (s3_objects without the manifest
 * columns, user_version 0) opens, keeps its rows as single-blob objects,
 * and is migrated once. */
static void test_migration_from_single_put(void)
{
	char path[256], err[256];
	snprintf(path, sizeof path, "%s/old.db", dir);
	db_conn *db = db_open(path, false, err, sizeof err);
	CHECK(db != NULL);
	if (!db)
		return;
	CHECK_EQ_INT(db_exec(db, "CREATE TABLE s3_buckets(name TEXT PRIMARY KEY, owner TEXT NOT NULL, "
				 "region TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;"
				 "CREATE TABLE s3_objects(bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT "
				 "NULL DEFAULT 'null', blob TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, "
				 "content_type TEXT NOT NULL, headers TEXT NOT NULL, mtime_ms INTEGER NOT NULL, sha256 "
				 "TEXT NOT NULL, crc32 INTEGER NOT NULL, crc32c INTEGER NOT NULL, hlc TEXT NOT NULL, "
				 "origin TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY(bucket, key)) WITHOUT ROWID;"
				 "INSERT INTO s3_buckets VALUES('old', 'alice', '', 1);"
				 "INSERT INTO s3_objects VALUES('old', 'k', 'null', '99999999999999999999999999999999', "
				 "3, 'e', 't', '', 1, '', 0, 0, '00000000000a-00000001', 'eu', 'alice');"),
		     0);
	CHECK_EQ_INT(meta_init(db), 0);
	CHECK_EQ_INT(meta_init(db), 0); /* once only */
	meta_object o;
	CHECK_EQ_INT(meta_object_get(db, "old", "k", 1, &o), 0);
	CHECK_EQ_INT(o.parts, 0);
	CHECK_EQ_STR(o.manifest, "");
	/* version 2: the row is the "null" version, latest, private */
	CHECK_EQ_STR(o.version_id, "null");
	CHECK(o.latest && !o.delete_marker);
	CHECK_EQ_INT(o.acl, META_ACL_PRIVATE);
	meta_bucket b;
	CHECK_EQ_INT(meta_bucket_get(db, "old", &b), 0);
	CHECK_EQ_INT(b.versioning, META_VERSIONING_OFF);
	CHECK(!b.has_cors);
	CHECK_EQ_INT(meta_blob_known(db, "99999999999999999999999999999999"), 1);
	db_close(&db);
}

/* The current-version rule: newer HLC wins, then the region name. */
static void test_version_rule(void)
{
	CHECK(meta_version_newer("00000000000b-00000000", "eu", "00000000000a-ffffffff", "us"));
	CHECK(!meta_version_newer("00000000000a-ffffffff", "us", "00000000000b-00000000", "eu"));
	CHECK(meta_version_newer("00000000000a-00000001", "us", "00000000000a-00000001", "eu"));
	CHECK(!meta_version_newer("00000000000a-00000001", "eu", "00000000000a-00000001", "us"));
	CHECK(!meta_version_newer("00000000000a-00000001", "eu", "00000000000a-00000001", "eu"));
	CHECK(meta_version_id_valid("null"));
	CHECK(meta_version_id_valid("0123456789abcdef0123456789abcdef"));
	CHECK(!meta_version_id_valid("0123456789ABCDEF0123456789abcdef"));
	CHECK(!meta_version_id_valid("abc"));
	CHECK(!meta_version_id_valid(""));
}

static meta_object versioned(const char *key, const char *blob, const char *when, const char *origin)
{
	meta_object o = make("ver", key, blob, strlen(blob) > 28 ? blob + 28 : ""); /* etag: the blob id's tail */
	snprintf(o.hlc, sizeof o.hlc, "%s", when);
	snprintf(o.origin, sizeof o.origin, "%s", origin);
	return o;
}

/* Versions: Enabled adds, markers hide, deleting a version for good
 * promotes the next newest, Suspended replaces the null version, a late
 * (older) version never becomes current, listing order. */
static void test_versions(void)
{
	db_conn *db = open_db();
	if (!db)
		return;
	meta_bucket b = {.name = "ver", .owner = "alice"}, ex;
	CHECK_EQ_INT(meta_bucket_create(db, &b, &ex), 0);
	meta_blobs old = {0};
	/* never versioned: a null version, replaced */
	meta_object o = versioned("k", "a0000000000000000000000000000001", "000000000001-00000000", "eu");
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_NONE, NULL, &old), 0);
	CHECK_EQ_STR(o.version_id, "null");
	CHECK_EQ_INT(meta_bucket_set_versioning(db, "ver", META_VERSIONING_ENABLED, "000000000001-00000000:eu"), 0);
	CHECK_EQ_INT(meta_bucket_set_versioning(db, "nope", META_VERSIONING_ENABLED, "000000000001-00000000:eu"), ERR_NOTFOUND);
	meta_object v1 = versioned("k", "a0000000000000000000000000000002", "000000000002-00000000", "eu");
	CHECK_EQ_INT(meta_object_put(db, &v1, META_COND_NONE, NULL, &old), 0);
	CHECK_EQ_STR(take(&old), ""); /* the null version stays */
	CHECK(meta_version_id_valid(v1.version_id) && strcmp(v1.version_id, "null") != 0);
	meta_object got;
	CHECK_EQ_INT(meta_object_get(db, "ver", "k", 1, &got), 0);
	CHECK_EQ_STR(got.version_id, v1.version_id);
	CHECK_EQ_INT(meta_object_version(db, "ver", "k", 1, "null", &got), 0);
	CHECK(!got.latest);
	/* a late replica, older than the current: kept, not current */
	meta_object late = versioned("k", "a0000000000000000000000000000003", "000000000001-00000005", "us");
	CHECK_EQ_INT(meta_object_put(db, &late, META_COND_NONE, NULL, &old), 0);
	CHECK(!late.latest);
	CHECK_EQ_INT(meta_object_get(db, "ver", "k", 1, &got), 0);
	CHECK_EQ_STR(got.version_id, v1.version_id);
	/* DELETE: a marker; GET sees nothing, the latest is the marker */
	meta_object m = versioned("k", "", "000000000003-00000000", "eu");
	bool marker = false;
	CHECK_EQ_INT(meta_object_remove(db, &m, &marker, &old), 0);
	CHECK(marker && m.delete_marker);
	CHECK_EQ_STR(take(&old), "");
	CHECK_EQ_INT(meta_object_get(db, "ver", "k", 1, &got), ERR_NOTFOUND);
	CHECK_EQ_INT(meta_object_latest(db, "ver", "k", 1, &got), 0);
	CHECK(got.delete_marker);
	CHECK_EQ_INT(meta_object_next(db, "ver", "", 0, true, &got), ERR_NOTFOUND); /* not listed */
	/* versions, newest first: marker, v1, late (us, 1-5), null (1-0) */
	const char *want[] = {m.version_id, v1.version_id, late.version_id, "null"};
	const char *vid = NULL;
	for (size_t i = 0; i < 4; i++) {
		CHECK_EQ_INT(meta_version_next(db, "ver", "k", 1, i == 0, vid, &got), 0);
		CHECK_EQ_STR(got.version_id, want[i]);
		CHECK(got.latest == (i == 0));
		static char keep[META_VERSION_ID_LEN + 1];
		snprintf(keep, sizeof keep, "%s", got.version_id);
		vid = keep;
	}
	CHECK_EQ_INT(meta_version_next(db, "ver", "k", 1, false, vid, &got), ERR_NOTFOUND);
	/* removing the marker for good brings v1 back */
	CHECK_EQ_INT(meta_object_delete_version(db, by("ver", "k"), m.version_id, &marker, &old), 0);
	CHECK(marker);
	CHECK_EQ_INT(meta_object_get(db, "ver", "k", 1, &got), 0);
	CHECK_EQ_STR(got.version_id, v1.version_id);
	/* removing v1 for good: its blob goes; the newest left is `late` */
	CHECK_EQ_INT(meta_object_delete_version(db, by("ver", "k"), v1.version_id, &marker, &old), 0);
	CHECK_EQ_STR(take(&old), "a0000000000000000000000000000002");
	CHECK_EQ_INT(meta_object_get(db, "ver", "k", 1, &got), 0);
	CHECK_EQ_STR(got.version_id, late.version_id);
	CHECK_EQ_INT(meta_object_delete_version(db, by("ver", "k"), v1.version_id, &marker, &old), ERR_NOTFOUND);
	/* Suspended: writes replace the null version wherever it is */
	CHECK_EQ_INT(meta_bucket_set_versioning(db, "ver", META_VERSIONING_SUSPENDED, "000000000001-00000000:eu"), 0);
	meta_object s1 = versioned("k", "a0000000000000000000000000000004", "000000000004-00000000", "eu");
	CHECK_EQ_INT(meta_object_put(db, &s1, META_COND_NONE, NULL, &old), 0);
	CHECK_EQ_STR(s1.version_id, "null");
	CHECK_EQ_STR(take(&old), "a0000000000000000000000000000001"); /* the first null version */
	meta_object sm = versioned("k", "", "000000000005-00000000", "eu");
	CHECK_EQ_INT(meta_object_remove(db, &sm, &marker, &old), 0);
	CHECK(marker);
	CHECK_EQ_STR(sm.version_id, "null");
	CHECK_EQ_STR(take(&old), "a0000000000000000000000000000004");
	CHECK_EQ_INT(meta_object_get(db, "ver", "k", 1, &got), ERR_NOTFOUND);
	CHECK_EQ_INT(meta_bucket_delete(db, "ver"), ERR_CONFLICT); /* versions left */
	CHECK_EQ_INT(meta_object_delete_version(db, by("ver", "k"), late.version_id, &marker, &old), 0);
	CHECK_EQ_INT(meta_object_delete(db, by("ver", "k"), &old), 0); /* the null marker */
	CHECK_EQ_INT(meta_bucket_delete(db, "ver"), 0);
	meta_blobs_free(&old);
	db_close(&db);
}

/* ACLs and CORS on buckets, ACLs on objects. */
static void test_acl_cors(void)
{
	db_conn *db = open_db();
	if (!db)
		return;
	meta_bucket b = {.name = "pub", .owner = "alice", .acl = META_ACL_PUBLIC_READ}, ex, got;
	CHECK_EQ_INT(meta_bucket_create(db, &b, &ex), 0);
	CHECK_EQ_INT(meta_bucket_get(db, "pub", &got), 0);
	CHECK_EQ_INT(got.acl, META_ACL_PUBLIC_READ);
	CHECK_EQ_INT(meta_bucket_set_acl(db, "pub", META_ACL_PRIVATE, "000000000001-00000000:eu"), 0);
	CHECK_EQ_INT(meta_bucket_get(db, "pub", &got), 0);
	CHECK_EQ_INT(got.acl, META_ACL_PRIVATE);
	char xml[128];
	CHECK_EQ_INT(meta_bucket_cors(db, "pub", xml, sizeof xml), ERR_NOTFOUND);
	CHECK_EQ_INT(meta_bucket_set_cors(db, "pub", "<CORSConfiguration/>", 20, "000000000001-00000000:eu"), 0);
	CHECK_EQ_INT(meta_bucket_cors(db, "pub", xml, sizeof xml), 0);
	CHECK_EQ_STR(xml, "<CORSConfiguration/>");
	CHECK_EQ_INT(meta_bucket_cors(db, "pub", xml, 8), ERR_LIMIT);
	CHECK_EQ_INT(meta_bucket_get(db, "pub", &got), 0);
	CHECK(got.has_cors);
	CHECK_EQ_INT(meta_bucket_set_cors(db, "pub", NULL, 0, "000000000001-00000000:eu"), 0);
	CHECK_EQ_INT(meta_bucket_cors(db, "pub", xml, sizeof xml), ERR_NOTFOUND);
	meta_blobs old = {0};
	meta_object o = make("pub", "k", "b0000000000000000000000000000001", "e");
	o.acl = META_ACL_PUBLIC_READ;
	CHECK_EQ_INT(meta_object_put(db, &o, META_COND_NONE, NULL, &old), 0);
	meta_object r;
	CHECK_EQ_INT(meta_object_get(db, "pub", "k", 1, &r), 0);
	CHECK_EQ_INT(r.acl, META_ACL_PUBLIC_READ);
	CHECK_EQ_INT(meta_object_set_acl(db, "pub", "k", 1, NULL, META_ACL_PRIVATE), 0);
	CHECK_EQ_INT(meta_object_get(db, "pub", "k", 1, &r), 0);
	CHECK_EQ_INT(r.acl, META_ACL_PRIVATE);
	CHECK_EQ_INT(meta_object_set_acl(db, "pub", "nope", 4, NULL, META_ACL_PRIVATE), ERR_NOTFOUND);
	CHECK_EQ_INT(meta_object_delete(db, by("pub", "k"), &old), 0);
	meta_blobs_free(&old);
	db_close(&db);
}

static db_conn *open_named(const char *name)
{
	char path[256], err[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	db_conn *db = db_open(path, false, err, sizeof err);
	CHECK(db != NULL);
	if (db)
		CHECK_EQ_INT(meta_init(db), 0);
	return db;
}

/* A local write as it leaves: the row, and its blob as the peer stored it. */
static int ship(db_conn *from, db_conn *to, const char *bucket, const char *key, const char *vid, const char *blob,
		bool *applied, meta_blobs *old)
{
	meta_object o;
	int rc = meta_object_version(from, bucket, key, strlen(key), vid, &o);
	if (rc != 0)
		return rc;
	meta_replica_blob rb = {.size = o.size};
	snprintf(rb.blob, sizeof rb.blob, "%s", blob);
	return meta_replica_put(to, &o, &rb, o.delete_marker ? 0 : 1, applied, old);
}

/* Two-way replication between two databases (eu, us): every local write
 * is journalled, replicas are not (no loops), the newest version wins in
 * both whatever the order of arrival, a delete is never undone by an
 * older write that arrives late, and the outbox drains with the status. */
static void test_replication(void)
{
	db_conn *eu = open_named("eu.db"), *us = open_named("us.db");
	if (!eu || !us)
		return;
	meta_set_journal(true);
	meta_blobs old = {0};
	meta_outbox_entry e;
	bool applied;
	meta_bucket b = {.name = "rep", .owner = "alice", .created_ms = 5}, ex;
	CHECK_EQ_INT(meta_bucket_create(eu, &b, &ex), 0);
	CHECK_EQ_INT(meta_outbox_next(eu, 0, &e), 0);
	CHECK_EQ_STR(e.bucket, "rep");
	CHECK_EQ_INT((long long)e.key_len, 0); /* the bucket's configuration */
	CHECK_EQ_INT(meta_replica_bucket(us, &b, NULL, false, &applied), 0);
	CHECK(applied);
	CHECK_EQ_INT(meta_outbox_next(us, 0, &e), ERR_NOTFOUND); /* a replica is not journalled */
	/* a PUT at eu: journalled, PENDING; at us a REPLICA, not journalled */
	meta_object o = make("rep", "k", "e0000000000000000000000000000001", "e1");
	snprintf(o.hlc, sizeof o.hlc, "000000000010-00000000");
	CHECK_EQ_INT(meta_object_put(eu, &o, META_COND_NONE, NULL, &old), 0);
	CHECK(o.journal_seq > 0);
	CHECK_EQ_INT(meta_outbox_next(eu, 1, &e), 0);
	CHECK_EQ_INT(e.seq, o.journal_seq);
	CHECK_EQ_STR(e.version_id, "null");
	meta_object got;
	CHECK_EQ_INT(meta_object_get(eu, "rep", "k", 1, &got), 0);
	CHECK_EQ_INT(got.repl, META_REPL_PENDING);
	CHECK_EQ_INT(ship(eu, us, "rep", "k", "null", "u0000000000000000000000000000001", &applied, &old), 0);
	CHECK(applied);
	CHECK_EQ_INT(meta_object_get(us, "rep", "k", 1, &got), 0);
	CHECK_EQ_INT(got.repl, META_REPL_REPLICA);
	CHECK_EQ_STR(got.blob, "u0000000000000000000000000000001");
	CHECK_EQ_STR(got.origin, "eu");
	CHECK_EQ_INT(meta_outbox_next(us, 0, &e), ERR_NOTFOUND);
	/* the same version again (a retry): not applied, nothing changes */
	CHECK_EQ_INT(ship(eu, us, "rep", "k", "null", "u0000000000000000000000000000009", &applied, &old), 0);
	CHECK(!applied);
	CHECK_EQ_INT(meta_outbox_next(eu, 1, &e), 0);
	CHECK_EQ_INT(meta_outbox_done(eu, &e, META_REPL_COMPLETED), 0);
	CHECK_EQ_INT(meta_object_get(eu, "rep", "k", 1, &got), 0);
	CHECK_EQ_INT(got.repl, META_REPL_COMPLETED);
	CHECK_EQ_INT(meta_outbox_next(eu, 0, &e), 0); /* the bucket's row is still there */
	CHECK_EQ_INT(meta_outbox_done(eu, &e, META_REPL_COMPLETED), 0);
	CHECK_EQ_INT(meta_outbox_next(eu, 0, &e), ERR_NOTFOUND);
	old.count = 0;
	/* concurrent PUTs of the key in both regions (a partition): us at 20
	 * wins over eu at 15 in both, whatever the order of arrival */
	meta_object a = make("rep", "k", "e0000000000000000000000000000002", "e2");
	snprintf(a.hlc, sizeof a.hlc, "000000000015-00000000");
	meta_object c = make("rep", "k", "u0000000000000000000000000000002", "u2");
	snprintf(c.hlc, sizeof c.hlc, "000000000020-00000000");
	snprintf(c.origin, sizeof c.origin, "us");
	CHECK_EQ_INT(meta_object_put(eu, &a, META_COND_NONE, NULL, &old), 0);
	CHECK_EQ_INT(meta_object_put(us, &c, META_COND_NONE, NULL, &old), 0);
	old.count = 0;
	CHECK_EQ_INT(ship(us, eu, "rep", "k", "null", "e0000000000000000000000000000003", &applied, &old), 0);
	CHECK(applied);
	CHECK_EQ_STR(old.count == 1 ? old.ids[0] : "", "e0000000000000000000000000000002"); /* the loser's blob */
	old.count = 0;
	/* eu's own version is gone: its outbox row now finds a REPLICA, which
	 * the shipper never sends back */
	CHECK_EQ_INT(meta_object_get(eu, "rep", "k", 1, &got), 0);
	CHECK_EQ_STR(got.etag, "u2");
	CHECK_EQ_INT(got.repl, META_REPL_REPLICA);
	CHECK_EQ_INT(meta_object_get(us, "rep", "k", 1, &got), 0);
	CHECK_EQ_STR(got.etag, "u2");
	/* an older copy that arrives late loses at us too */
	CHECK_EQ_INT(meta_replica_put(us, &a, &(meta_replica_blob){.blob = "u0000000000000000000000000000004", .size = 3},
				      1, &applied, &old),
		     0);
	CHECK(!applied);
	/* a delete at eu (at 30) while us, not knowing, writes at 25: the
	 * delete wins in both, and the late write never brings the key back */
	meta_object *d = by("rep", "k");
	snprintf(d->hlc, sizeof d->hlc, "000000000030-00000000");
	old.count = 0;
	CHECK_EQ_INT(meta_object_delete(eu, d, &old), 0);
	CHECK(d->journal_seq > 0);
	meta_object late = make("rep", "k", "u0000000000000000000000000000005", "u5");
	snprintf(late.hlc, sizeof late.hlc, "000000000025-00000000");
	snprintf(late.origin, sizeof late.origin, "us");
	CHECK_EQ_INT(meta_object_put(us, &late, META_COND_NONE, NULL, &old), 0);
	old.count = 0;
	CHECK_EQ_INT(ship(us, eu, "rep", "k", "null", "e0000000000000000000000000000006", &applied, &old), 0);
	CHECK(!applied); /* the tombstone at eu is newer */
	CHECK_EQ_INT(meta_object_get(eu, "rep", "k", 1, &got), ERR_NOTFOUND);
	CHECK_EQ_INT(meta_replica_remove(us, "rep", "k", 1, "null", d->hlc, "eu", &applied, &old), 0);
	CHECK(applied);
	CHECK_EQ_INT(meta_object_get(us, "rep", "k", 1, &got), ERR_NOTFOUND);
	/* a PUT after the delete (at 40) is not removed by the delete arriving late */
	meta_object after = make("rep", "k2", "u0000000000000000000000000000007", "u7");
	snprintf(after.hlc, sizeof after.hlc, "000000000040-00000000");
	CHECK_EQ_INT(meta_object_put(us, &after, META_COND_NONE, NULL, &old), 0);
	CHECK_EQ_INT(meta_replica_remove(us, "rep", "k2", 2, "null", "000000000035-00000000", "eu", &applied, &old), 0);
	CHECK(!applied);
	CHECK_EQ_INT(meta_object_get(us, "rep", "k2", 2, &got), 0);
	/* a bucket deleted at the other region while it holds objects here: kept */
	CHECK_EQ_INT(meta_replica_bucket(us, &b, NULL, true, &applied), 0);
	CHECK(!applied);
	CHECK_EQ_INT(meta_bucket_get(us, "rep", &ex), 0);
	/* tombstones go after their keeping time, not before */
	char ts[HLC_STR_LEN + 1], org[32];
	int dropped = -1;
	CHECK_EQ_INT(meta_tombstone_get(eu, "rep", "k", 1, "null", ts, org), 0);
	CHECK_EQ_INT(meta_tombstone_expire(eu, 1000, 10, &dropped), 0); /* cutoff long ago */
	CHECK_EQ_INT(dropped, 0);
	CHECK_EQ_INT(meta_tombstone_expire(eu, INT64_MAX, 10, &dropped), 0);
	CHECK(dropped >= 1);
	CHECK_EQ_INT(meta_tombstone_get(eu, "rep", "k", 1, "null", ts, org), ERR_NOTFOUND);
	meta_set_journal(false);
	meta_blobs_free(&old);
	db_close(&eu);
	db_close(&us);
}

/* A bucket's configuration changed in both regions at once: each part
 * (versioning, ACL, CORS) is taken from the other region's message only
 * when its stamp is newer, so both end with the newer change of each part
 * (before stamps, each took the other's whole state and they stayed
 * swapped, or one part's change undid the other's), whatever the order of
 * arrival; a message sent twice or late changes nothing. */
static void test_bucket_config_converges(void)
{
	db_conn *eu = open_named("eu2.db"), *us = open_named("us2.db");
	if (!eu || !us)
		return;
	bool applied;
	meta_bucket b = {.name = "both", .owner = "alice", .created_ms = 5, .acl_stamp = "000000000010-00000000:eu"};
	meta_bucket ex, eu_b, us_b;
	CHECK_EQ_INT(meta_bucket_create(eu, &b, &ex), 0);
	CHECK_EQ_INT(meta_replica_bucket(us, &b, NULL, false, &applied), 0);
	CHECK(applied);
	/* the same part: eu enables versioning at 20, us suspends it at 21 */
	CHECK_EQ_INT(meta_bucket_set_versioning(eu, "both", META_VERSIONING_ENABLED, "000000000020-00000000:eu"), 0);
	CHECK_EQ_INT(meta_bucket_set_versioning(us, "both", META_VERSIONING_SUSPENDED, "000000000021-00000000:us"), 0);
	/* two other parts at once: eu makes it public at 22, us sets CORS at 23 */
	CHECK_EQ_INT(meta_bucket_set_acl(eu, "both", META_ACL_PUBLIC_READ, "000000000022-00000000:eu"), 0);
	CHECK_EQ_INT(meta_bucket_set_cors(us, "both", "<CORSConfiguration/>", 20, "000000000023-00000000:us"), 0);
	CHECK_EQ_INT(meta_bucket_get(eu, "both", &eu_b), 0);
	CHECK_EQ_INT(meta_bucket_get(us, "both", &us_b), 0);
	CHECK_EQ_STR(eu_b.versioning_stamp, "000000000020-00000000:eu");
	/* the messages cross; each side takes what is newer in the other's */
	CHECK_EQ_INT(meta_replica_bucket(us, &eu_b, NULL, false, &applied), 0);
	CHECK(applied); /* the ACL */
	CHECK_EQ_INT(meta_replica_bucket(eu, &us_b, "<CORSConfiguration/>", false, &applied), 0);
	CHECK(applied); /* versioning and CORS */
	CHECK_EQ_INT(meta_bucket_get(eu, "both", &eu_b), 0);
	CHECK_EQ_INT(meta_bucket_get(us, "both", &us_b), 0);
	CHECK_EQ_INT((int)eu_b.versioning, (int)META_VERSIONING_SUSPENDED);
	CHECK_EQ_INT((int)us_b.versioning, (int)META_VERSIONING_SUSPENDED);
	CHECK_EQ_INT((int)eu_b.acl, (int)META_ACL_PUBLIC_READ);
	CHECK_EQ_INT((int)us_b.acl, (int)META_ACL_PUBLIC_READ);
	CHECK(eu_b.has_cors && us_b.has_cors);
	CHECK_EQ_STR(eu_b.versioning_stamp, us_b.versioning_stamp);
	CHECK_EQ_STR(eu_b.acl_stamp, us_b.acl_stamp);
	CHECK_EQ_STR(eu_b.cors_stamp, us_b.cors_stamp);
	/* the same HLC from both: the region name decides (us > eu) */
	CHECK_EQ_INT(meta_bucket_set_acl(eu, "both", META_ACL_PRIVATE, "000000000030-00000000:eu"), 0);
	CHECK_EQ_INT(meta_bucket_set_acl(us, "both", META_ACL_PUBLIC_READ, "000000000030-00000000:us"), 0);
	CHECK_EQ_INT(meta_bucket_get(eu, "both", &eu_b), 0);
	CHECK_EQ_INT(meta_bucket_get(us, "both", &us_b), 0);
	CHECK_EQ_INT(meta_replica_bucket(us, &eu_b, "<CORSConfiguration/>", false, &applied), 0);
	CHECK(!applied);
	CHECK_EQ_INT(meta_replica_bucket(eu, &us_b, "<CORSConfiguration/>", false, &applied), 0);
	CHECK(applied);
	CHECK_EQ_INT(meta_bucket_get(eu, "both", &eu_b), 0);
	CHECK_EQ_INT((int)eu_b.acl, (int)META_ACL_PUBLIC_READ);
	/* an old message arriving late (the creation, ACL private at 10)
	 * changes nothing */
	CHECK_EQ_INT(meta_replica_bucket(eu, &b, NULL, false, &applied), 0);
	CHECK(!applied);
	CHECK_EQ_INT(meta_bucket_get(eu, "both", &eu_b), 0);
	CHECK_EQ_INT((int)eu_b.acl, (int)META_ACL_PUBLIC_READ);
	CHECK(eu_b.has_cors);
	/* stamps: made, checked */
	char st[META_STAMP_LEN + 1];
	hlc_ts ts = {.ms = 0x1234, .logical = 2};
	meta_stamp_make(st, ts, "us");
	CHECK_EQ_STR(st, "000000001234-00000002:us");
	CHECK(meta_stamp_valid(st, &ts) && ts.ms == 0x1234 && ts.logical == 2);
	CHECK(meta_stamp_valid("", &ts) && ts.ms == 0);
	CHECK(!meta_stamp_valid("000000001234-00000002", &ts));
	CHECK(!meta_stamp_valid("000000001234-00000002:", &ts));
	CHECK(!meta_stamp_valid("00000000123x-00000002:us", &ts));
	CHECK(!meta_stamp_valid("000000001234-00000002:us-and-a-region-name-that-is-far-too-long", &ts));
	db_close(&eu);
	db_close(&us);
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
	RUN(test_multipart_complete);
	RUN(test_multipart_abort_expire_list);
	RUN(test_migration_from_single_put);
	RUN(test_version_rule);
	RUN(test_versions);
	RUN(test_acl_cors);
	RUN(test_replication);
	RUN(test_bucket_config_converges);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return TEST_SUMMARY();
}
