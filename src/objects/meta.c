/*
 * meta.c - buckets and object rows in objects.db; see meta.h.
 *
 * Keys are TEXT compared with SQLite's BINARY collation (memcmp), which is
 * S3's listing order (UTF-8 bytes). The primary key (bucket, key) of a
 * WITHOUT ROWID table makes every lookup and every listing step one B-tree
 * seek; the blob index serves the orphan sweep.
 *
 * Multipart (meta.h): s3_uploads (one row per upload in progress, indexed
 * by (bucket, key, upload_id) for ListMultipartUploads and by created_ms
 * for the expiry sweep), s3_upload_parts (PRIMARY KEY (upload_id, part)),
 * s3_object_parts (a completed object's manifest, PRIMARY KEY (manifest,
 * idx)); both part tables have a blob index for meta_blob_known. Upload
 * ids start with the creation time in hex, so id order is creation order,
 * the order S3 lists the uploads of one key in.
 *
 * Versions (user_version 2): s3_objects' primary key is (bucket, key,
 * version_id); `latest` marks the key's current version (one per key,
 * kept by every write), `deleted` a delete marker. Two partial indexes
 * serve the hot paths: s3_objects_latest (bucket, key) WHERE latest = 1
 * (GET, a key's current version in one seek, however many versions it
 * has) and s3_objects_current (bucket, key) WHERE latest = 1 AND deleted
 * = 0 (ListObjects: keys whose current version is a delete marker are not
 * in it, so a bucket emptied by `aws s3 rm --recursive` lists in one
 * seek; named with INDEXED BY, as without statistics the planner would
 * walk all the key's versions on the primary key); s3_objects_versions (bucket, key, hlc, origin) lists a key's
 * versions newest first (ListObjectVersions, promoting the next latest).
 */
#include "objects/meta.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "objects/manifest.h"

static const char meta_schema[] =
	"CREATE TABLE IF NOT EXISTS s3_buckets("
	" name TEXT PRIMARY KEY, owner TEXT NOT NULL, region TEXT NOT NULL, created_ms INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS s3_objects("
	" bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL DEFAULT 'null',"
	" blob TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, content_type TEXT NOT NULL,"
	" headers TEXT NOT NULL, mtime_ms INTEGER NOT NULL, sha256 TEXT NOT NULL,"
	" crc32 INTEGER NOT NULL, crc32c INTEGER NOT NULL, hlc TEXT NOT NULL, origin TEXT NOT NULL,"
	" owner TEXT NOT NULL,"
	" PRIMARY KEY(bucket, key)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS s3_objects_blob ON s3_objects(blob);"
	"CREATE TABLE IF NOT EXISTS s3_uploads("
	" upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, content_type TEXT NOT NULL,"
	" headers TEXT NOT NULL, owner TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS s3_uploads_key ON s3_uploads(bucket, key, upload_id);"
	"CREATE INDEX IF NOT EXISTS s3_uploads_created ON s3_uploads(created_ms);"
	"CREATE TABLE IF NOT EXISTS s3_upload_parts("
	" upload_id TEXT NOT NULL, part INTEGER NOT NULL, blob TEXT NOT NULL, size INTEGER NOT NULL,"
	" etag TEXT NOT NULL, mtime_ms INTEGER NOT NULL, PRIMARY KEY(upload_id, part)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS s3_upload_parts_blob ON s3_upload_parts(blob);"
	"CREATE TABLE IF NOT EXISTS s3_object_parts("
	" manifest TEXT NOT NULL, idx INTEGER NOT NULL, blob TEXT NOT NULL, pos INTEGER NOT NULL,"
	" size INTEGER NOT NULL, PRIMARY KEY(manifest, idx)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS s3_object_parts_blob ON s3_object_parts(blob);";

/* Version 1 (multipart): s3_objects gains its manifest columns. An
 * objects.db of the single-PUT slice (user_version 0, no such columns) is
 * migrated in place; its rows are single-blob objects (manifest '', 0
 * parts), which is what the defaults say. */
static const char meta_migration_1[] =
	"ALTER TABLE s3_objects ADD COLUMN manifest TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE s3_objects ADD COLUMN parts INTEGER NOT NULL DEFAULT 0;";

/* Version 2 (versions, ACLs, CORS): s3_objects is rebuilt with the
 * version id in its primary key (SQLite cannot change a primary key in
 * place); every existing row becomes the "null" version, latest, private.
 * Buckets gain their versioning state (never versioned), canned ACL
 * (private) and CORS configuration (none). */
static const char meta_migration_2[] =
	"CREATE TABLE s3_objects_v2("
	" bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL,"
	" blob TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, content_type TEXT NOT NULL,"
	" headers TEXT NOT NULL, mtime_ms INTEGER NOT NULL, sha256 TEXT NOT NULL,"
	" crc32 INTEGER NOT NULL, crc32c INTEGER NOT NULL, hlc TEXT NOT NULL, origin TEXT NOT NULL,"
	" owner TEXT NOT NULL, manifest TEXT NOT NULL DEFAULT '', parts INTEGER NOT NULL DEFAULT 0,"
	" latest INTEGER NOT NULL DEFAULT 1, deleted INTEGER NOT NULL DEFAULT 0, acl INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(bucket, key, version_id)) WITHOUT ROWID;"
	"INSERT INTO s3_objects_v2(bucket, key, version_id, blob, size, etag, content_type, headers, mtime_ms,"
	" sha256, crc32, crc32c, hlc, origin, owner, manifest, parts)"
	" SELECT bucket, key, 'null', blob, size, etag, content_type, headers, mtime_ms, sha256, crc32, crc32c,"
	" hlc, origin, owner, manifest, parts FROM s3_objects;"
	"DROP TABLE s3_objects;"
	"ALTER TABLE s3_objects_v2 RENAME TO s3_objects;"
	"CREATE INDEX s3_objects_blob ON s3_objects(blob);"
	"CREATE INDEX s3_objects_latest ON s3_objects(bucket, key) WHERE latest = 1;"
	"CREATE INDEX s3_objects_current ON s3_objects(bucket, key) WHERE latest = 1 AND deleted = 0;"
	"CREATE INDEX s3_objects_versions ON s3_objects(bucket, key, hlc, origin);"
	"ALTER TABLE s3_buckets ADD COLUMN versioning INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE s3_buckets ADD COLUMN acl INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE s3_buckets ADD COLUMN cors TEXT;";

/* Version 3 (two-way replication, docs/OBJECTS.md "Replication"): the
 * outbox journals every local write in its own transaction (a row names
 * what changed: a version of a key, or a bucket's configuration when key
 * and version are ''), tombstones remember versions removed for good (so
 * that a late copy of one never brings it back), and each version carries
 * its replication status (0: none, the rows of before; META_REPL_*). */
static const char meta_migration_3[] =
	"CREATE TABLE s3_outbox("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT, bucket TEXT NOT NULL, key TEXT NOT NULL,"
	" version_id TEXT NOT NULL, size INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
	" repair INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX s3_outbox_version ON s3_outbox(bucket, key, version_id);"
	"CREATE TABLE s3_tombstones("
	" bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL, hlc TEXT NOT NULL,"
	" origin TEXT NOT NULL, created_ms INTEGER NOT NULL,"
	" PRIMARY KEY(bucket, key, version_id)) WITHOUT ROWID;"
	"CREATE INDEX s3_tombstones_created ON s3_tombstones(created_ms);"
	"ALTER TABLE s3_objects ADD COLUMN repl INTEGER NOT NULL DEFAULT 0;";

/* Version 4: each part of a bucket's configuration carries the stamp of
 * its last change (meta_bucket), so that changes made at once in both
 * regions converge (meta_replica_bucket); older rows have none ('' is
 * older than any). */
static const char meta_migration_4[] =
	"ALTER TABLE s3_buckets ADD COLUMN versioning_stamp TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE s3_buckets ADD COLUMN acl_stamp TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE s3_buckets ADD COLUMN cors_stamp TEXT NOT NULL DEFAULT '';";

/* Journal local writes (meta_set_journal): off in a region without a peer,
 * so that its outbox does not grow for no one. */
static _Atomic bool journal_on;

void meta_set_journal(bool on)
{
	journal_on = on;
}

static int journal(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id,
		   uint64_t size, int64_t *seq);

static int migrate(db_conn *db, const char *sql, int to)
{
	int rc = db_exec(db, "BEGIN IMMEDIATE");
	if (rc != 0)
		return rc;
	rc = db_exec(db, sql);
	char pragma[48];
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", to);
	if (rc == 0)
		rc = db_exec(db, pragma);
	if (rc == 0)
		rc = db_exec(db, "COMMIT");
	if (rc != 0)
		db_exec(db, "ROLLBACK");
	return rc;
}

int meta_init(db_conn *db)
{
	int rc = db_exec(db, meta_schema);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db_handle(db), "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return ERR_DB;
	int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (version < 0)
		return ERR_DB;
	/* a new file takes the same path: the old schema above, then each
	 * migration (cheap on empty tables), so there is one schema history */
	if (version < 1 && (rc = migrate(db, meta_migration_1, 1)) != 0)
		return rc;
	if (version < 2 && (rc = migrate(db, meta_migration_2, 2)) != 0)
		return rc;
	if (version < 3 && (rc = migrate(db, meta_migration_3, 3)) != 0)
		return rc;
	if (version < 4 && (rc = migrate(db, meta_migration_4, 4)) != 0)
		return rc;
	return 0;
}

bool meta_version_newer(const char *hlc_a, const char *origin_a, const char *hlc_b, const char *origin_b)
{
	/* strcmp compares as unsigned char: SQLite's BINARY order, and the
	 * HLC text is fixed-width hex, so byte order is time order */
	int c = strcmp(hlc_a, hlc_b);
	if (c != 0)
		return c > 0;
	return strcmp(origin_a, origin_b) > 0;
}

bool meta_version_id_valid(const char *s)
{
	if (strcmp(s, "null") == 0)
		return true;
	size_t n = strlen(s);
	if (n != META_VERSION_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void new_version_id(char out[META_VERSION_ID_LEN + 1])
{
	unsigned char r[META_VERSION_ID_LEN / 2];
	util_random(r, sizeof r);
	util_hex(r, sizeof r, out);
	out[META_VERSION_ID_LEN] = '\0';
}

int meta_blobs_add(meta_blobs *l, const char *id)
{
	if (!id || !id[0])
		return 0;
	if (l->count == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		void *p = realloc(l->ids, cap * sizeof *l->ids);
		if (!p)
			return ERR_NOMEM;
		l->ids = p;
		l->cap = cap;
	}
	snprintf(l->ids[l->count++], BLOBSTORE_ID_LEN + 1, "%s", id);
	return 0;
}

void meta_blobs_free(meta_blobs *l)
{
	free(l->ids);
	*l = (meta_blobs){0};
}

static void copy_col(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);
	if (!t || n < 0)
		n = 0;
	if ((size_t)n >= cap)
		n = (int)cap - 1; /* cannot happen: stored values were bounded when written */
	memcpy(out, t ? (const char *)t : "", (size_t)n);
	out[n] = '\0';
}

static void bucket_row(sqlite3_stmt *st, meta_bucket *b)
{
	copy_col(st, 0, b->name, sizeof b->name);
	copy_col(st, 1, b->owner, sizeof b->owner);
	copy_col(st, 2, b->region, sizeof b->region);
	b->created_ms = sqlite3_column_int64(st, 3);
	int v = sqlite3_column_int(st, 4);
	b->versioning = v == META_VERSIONING_ENABLED ? META_VERSIONING_ENABLED
			: v == META_VERSIONING_SUSPENDED ? META_VERSIONING_SUSPENDED : META_VERSIONING_OFF;
	b->acl = sqlite3_column_int(st, 5) == META_ACL_PUBLIC_READ ? META_ACL_PUBLIC_READ : META_ACL_PRIVATE;
	b->has_cors = sqlite3_column_int(st, 6) != 0;
	copy_col(st, 7, b->versioning_stamp, sizeof b->versioning_stamp);
	copy_col(st, 8, b->acl_stamp, sizeof b->acl_stamp);
	copy_col(st, 9, b->cors_stamp, sizeof b->cors_stamp);
}

#define BUCKET_COLUMNS                                                                                             \
	"name, owner, region, created_ms, versioning, acl, cors IS NOT NULL, versioning_stamp, acl_stamp, cors_stamp"

void meta_stamp_make(char out[META_STAMP_LEN + 1], hlc_ts ts, const char *origin)
{
	hlc_encode(ts, out);
	snprintf(out + HLC_STR_LEN, META_STAMP_LEN + 1 - HLC_STR_LEN, ":%s", origin);
}

bool meta_stamp_valid(const char *s, hlc_ts *ts)
{
	*ts = (hlc_ts){0};
	if (!s[0])
		return true;
	size_t n = strlen(s);
	return n > HLC_STR_LEN + 1 && n <= META_STAMP_LEN && s[HLC_STR_LEN] == ':' &&
	       hlc_decode(s, HLC_STR_LEN, ts) == 0;
}


int meta_bucket_get(db_conn *db, const char *name, meta_bucket *out)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT " BUCKET_COLUMNS " FROM s3_buckets WHERE name = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		bucket_row(st, out);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

int meta_bucket_list(db_conn *db, const char *owner, void (*fn)(void *arg, const meta_bucket *b), void *arg)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT " BUCKET_COLUMNS " FROM s3_buckets WHERE owner = ?1 ORDER BY name");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		meta_bucket b;
		bucket_row(st, &b);
		fn(arg, &b);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int meta_bucket_create(db_conn *db, const meta_bucket *b, meta_bucket *existing)
{
	int rc = meta_bucket_get(db, b->name, existing);
	if (rc == 0)
		return ERR_EXISTS;
	if (rc != ERR_NOTFOUND)
		return rc;
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_buckets(name, owner, region, created_ms, acl, versioning_stamp, "
				       "acl_stamp, cors_stamp) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, b->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b->region, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, b->created_ms);
	sqlite3_bind_int(st, 5, (int)b->acl);
	sqlite3_bind_text(st, 6, b->versioning_stamp, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, b->acl_stamp, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, b->cors_stamp, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? journal(db, b->name, "", 0, "", 0, NULL) : ERR_DB;
}

static int bucket_delete(db_conn *db, const char *name)
{
	/* uploads in progress keep it too: their parts are state a client
	 * still has to complete or abort (S3 lists them; we refuse rather than
	 * leave rows without their bucket) */
	static const char *const in_use[] = {"SELECT 1 FROM s3_objects WHERE bucket = ?1 LIMIT 1",
					     "SELECT 1 FROM s3_uploads WHERE bucket = ?1 LIMIT 1"};
	sqlite3_stmt *st;
	int rc;
	for (size_t i = 0; i < sizeof in_use / sizeof in_use[0]; i++) {
		st = db_stmt(db, in_use[i]);
		if (!st)
			return ERR_DB;
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc == SQLITE_ROW)
			return ERR_CONFLICT;
		if (rc != SQLITE_DONE)
			return ERR_DB;
	}
	st = db_stmt(db, "DELETE FROM s3_buckets WHERE name = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	return sqlite3_changes(db_handle(db)) ? 0 : ERR_NOTFOUND;
}

int meta_bucket_delete(db_conn *db, const char *name)
{
	int rc = bucket_delete(db, name);
	return rc == 0 ? journal(db, name, "", 0, "", 0, NULL) : rc;
}

/* One UPDATE of a bucket's column (?2) and its stamp (?3); 0 or
 * ERR_NOTFOUND. text NULL: the integer v (or SQL NULL when clear). */
static int bucket_update(db_conn *db, const char *sql, const char *name, const char *text, size_t len, int v,
			 bool clear, const char *stamp)
{
	sqlite3_stmt *st = db_stmt(db, sql);
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, stamp, -1, SQLITE_STATIC);
	if (text)
		sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC);
	else if (clear)
		sqlite3_bind_null(st, 2);
	else
		sqlite3_bind_int(st, 2, v);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	if (!sqlite3_changes(db_handle(db)))
		return ERR_NOTFOUND;
	return journal(db, name, "", 0, "", 0, NULL);
}

int meta_bucket_set_versioning(db_conn *db, const char *name, meta_versioning v, const char *stamp)
{
	return bucket_update(db, "UPDATE s3_buckets SET versioning = ?2, versioning_stamp = ?3 WHERE name = ?1", name,
			     NULL, 0, (int)v, false, stamp);
}

int meta_bucket_set_acl(db_conn *db, const char *name, meta_acl acl, const char *stamp)
{
	return bucket_update(db, "UPDATE s3_buckets SET acl = ?2, acl_stamp = ?3 WHERE name = ?1", name, NULL, 0,
			     (int)acl, false, stamp);
}

int meta_bucket_set_cors(db_conn *db, const char *name, const char *xml, size_t len, const char *stamp)
{
	if (xml && len > META_CORS_MAX)
		return ERR_LIMIT;
	return bucket_update(db, "UPDATE s3_buckets SET cors = ?2, cors_stamp = ?3 WHERE name = ?1", name, xml, len, 0,
			     !xml, stamp);
}

int meta_bucket_cors(db_conn *db, const char *name, char *out, size_t cap)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT cors FROM s3_buckets WHERE name = ?1 AND cors IS NOT NULL");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int n = sqlite3_column_bytes(st, 0);
		const unsigned char *t = sqlite3_column_text(st, 0);
		if (n < 0 || (size_t)n >= cap || !t) {
			sqlite3_reset(st);
			return ERR_LIMIT;
		}
		memcpy(out, t, (size_t)n);
		out[n] = '\0';
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

#define OBJECT_COLUMNS                                                                             \
	"bucket, key, blob, size, etag, content_type, headers, mtime_ms, sha256, crc32, crc32c, hlc, " \
	"origin, owner, manifest, parts, version_id, latest, deleted, acl, repl"

static void object_row(sqlite3_stmt *st, meta_object *o)
{
	copy_col(st, 0, o->bucket, sizeof o->bucket);
	copy_col(st, 1, o->key, sizeof o->key);
	o->key_len = (size_t)sqlite3_column_bytes(st, 1);
	if (o->key_len > META_KEY_MAX)
		o->key_len = META_KEY_MAX;
	copy_col(st, 2, o->blob, sizeof o->blob);
	o->size = (uint64_t)sqlite3_column_int64(st, 3);
	copy_col(st, 4, o->etag, sizeof o->etag);
	copy_col(st, 5, o->content_type, sizeof o->content_type);
	copy_col(st, 6, o->headers, sizeof o->headers);
	o->mtime_ms = sqlite3_column_int64(st, 7);
	copy_col(st, 8, o->sha256, sizeof o->sha256);
	o->crc32 = (uint32_t)sqlite3_column_int64(st, 9);
	o->crc32c = (uint32_t)sqlite3_column_int64(st, 10);
	copy_col(st, 11, o->hlc, sizeof o->hlc);
	copy_col(st, 12, o->origin, sizeof o->origin);
	copy_col(st, 13, o->owner, sizeof o->owner);
	copy_col(st, 14, o->manifest, sizeof o->manifest);
	o->parts = (uint32_t)sqlite3_column_int64(st, 15);
	copy_col(st, 16, o->version_id, sizeof o->version_id);
	o->latest = sqlite3_column_int(st, 17) != 0;
	o->delete_marker = sqlite3_column_int(st, 18) != 0;
	o->acl = sqlite3_column_int(st, 19) == META_ACL_PUBLIC_READ ? META_ACL_PUBLIC_READ : META_ACL_PRIVATE;
	int r = sqlite3_column_int(st, 20);
	o->repl = r >= META_REPL_NONE && r <= META_REPL_REPLICA ? (meta_repl)r : META_REPL_NONE;
}

/* One row of the statement st (bound by the caller) into out. */
static int object_one(sqlite3_stmt *st, meta_object *out)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		object_row(st, out);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

static int object_by_key(db_conn *db, const char *sql, const char *bucket, const char *key, size_t key_len,
			 const char *version_id, meta_object *out)
{
	sqlite3_stmt *st = db_stmt(db, sql);
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	if (version_id)
		sqlite3_bind_text(st, 3, version_id, -1, SQLITE_STATIC);
	return object_one(st, out);
}

int meta_object_get(db_conn *db, const char *bucket, const char *key, size_t key_len, meta_object *out)
{
	return object_by_key(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects INDEXED BY s3_objects_current "
				 "WHERE bucket = ?1 AND key = ?2 AND latest = 1 AND deleted = 0", bucket, key, key_len, NULL, out);
}

int meta_object_latest(db_conn *db, const char *bucket, const char *key, size_t key_len, meta_object *out)
{
	return object_by_key(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects INDEXED BY s3_objects_latest "
				 "WHERE bucket = ?1 AND key = ?2 AND latest = 1", bucket, key, key_len, NULL, out);
}

int meta_object_version(db_conn *db, const char *bucket, const char *key, size_t key_len,
			const char *version_id, meta_object *out)
{
	return object_by_key(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects WHERE bucket = ?1 AND key = ?2 "
				 "AND version_id = ?3", bucket, key, key_len, version_id, out);
}

int meta_object_next(db_conn *db, const char *bucket, const char *after, size_t after_len,
		     bool inclusive, meta_object *out)
{
	sqlite3_stmt *st = inclusive
		? db_stmt(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects WHERE bucket = ?1 AND key >= ?2 "
			      "AND latest = 1 AND deleted = 0 ORDER BY key LIMIT 1")
		: db_stmt(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects WHERE bucket = ?1 AND key > ?2 "
			      "AND latest = 1 AND deleted = 0 ORDER BY key LIMIT 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, after ? after : "", (int)after_len, SQLITE_STATIC);
	return object_one(st, out);
}

/* The newest version of the key (meta_version_newer's order). */
static int newest_version(db_conn *db, const char *bucket, const char *key, size_t key_len, meta_object *out)
{
	return object_by_key(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects WHERE bucket = ?1 AND key = ?2 "
				 "ORDER BY hlc DESC, origin DESC LIMIT 1", bucket, key, key_len, NULL, out);
}

int meta_version_next(db_conn *db, const char *bucket, const char *key, size_t key_len, bool inclusive,
		      const char *version_id, meta_object *out)
{
	int rc;
	if (version_id) {
		/* the versions of this key older than the marker's */
		rc = meta_object_version(db, bucket, key, key_len, version_id, out);
		if (rc != 0 && rc != ERR_NOTFOUND)
			return rc;
		if (rc == 0) {
			sqlite3_stmt *st = db_stmt(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects WHERE bucket = ?1 "
						       "AND key = ?2 AND (hlc, origin) < (?3, ?4) "
						       "ORDER BY hlc DESC, origin DESC LIMIT 1");
			if (!st)
				return ERR_DB;
			char at_hlc[HLC_STR_LEN + 1], at_origin[32];
			snprintf(at_hlc, sizeof at_hlc, "%s", out->hlc);
			snprintf(at_origin, sizeof at_origin, "%s", out->origin);
			sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, at_hlc, -1, SQLITE_TRANSIENT);
			sqlite3_bind_text(st, 4, at_origin, -1, SQLITE_TRANSIENT);
			rc = object_one(st, out);
			if (rc != ERR_NOTFOUND)
				return rc;
		}
		inclusive = false;
	}
	/* the next key (primary key order), then its newest version: two
	 * seeks, where one ORDER BY key, hlc DESC would sort the bucket */
	sqlite3_stmt *st = inclusive
		? db_stmt(db, "SELECT key FROM s3_objects WHERE bucket = ?1 AND key >= ?2 ORDER BY key LIMIT 1")
		: db_stmt(db, "SELECT key FROM s3_objects WHERE bucket = ?1 AND key > ?2 ORDER BY key LIMIT 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key ? key : "", (int)key_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	char *next = NULL;
	int next_len = 0;
	if (rc == SQLITE_ROW) {
		next_len = sqlite3_column_bytes(st, 0);
		next = malloc((size_t)next_len + 1);
		if (next)
			memcpy(next, sqlite3_column_text(st, 0), (size_t)next_len);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return ERR_NOTFOUND;
	if (rc != SQLITE_ROW)
		return ERR_DB;
	if (!next)
		return ERR_NOMEM;
	rc = newest_version(db, bucket, next, (size_t)next_len, out);
	free(next);
	return rc == ERR_NOTFOUND ? ERR_DB : rc; /* cannot happen: the key was just read */
}

/* Delete the version row r for good: its blob(s) into old, its manifest
 * rows deleted. */
static int drop_version(db_conn *db, const meta_object *r, meta_blobs *old)
{
	int rc;
	sqlite3_stmt *st;
	if (r->parts) {
		st = db_stmt(db, "DELETE FROM s3_object_parts WHERE manifest = ?1 RETURNING blob");
		if (!st)
			return ERR_DB;
		sqlite3_bind_text(st, 1, r->manifest, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			if (meta_blobs_add(old, (const char *)sqlite3_column_text(st, 0)) != 0) {
				sqlite3_reset(st);
				return ERR_NOMEM;
			}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return ERR_DB;
	} else if (meta_blobs_add(old, r->blob) != 0) {
		return ERR_NOMEM;
	}
	st = db_stmt(db, "DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, r->bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->key, (int)r->key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->version_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

/* Set the latest flag of the key's versions: on version_id alone (NULL:
 * on none). */
static int set_latest(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id)
{
	sqlite3_stmt *st = db_stmt(db, "UPDATE s3_objects INDEXED BY s3_objects_latest SET latest = 0 "
				       "WHERE bucket = ?1 AND key = ?2 AND latest = 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	if (!version_id)
		return 0;
	st = db_stmt(db, "UPDATE s3_objects SET latest = 1 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, version_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

/* After the latest version went: the newest remaining one becomes it. */
static int promote_newest(db_conn *db, const char *bucket, const char *key, size_t key_len)
{
	meta_object *n = malloc(sizeof *n);
	if (!n)
		return ERR_NOMEM;
	int rc = newest_version(db, bucket, key, key_len, n);
	if (rc == 0)
		rc = set_latest(db, bucket, key, key_len, n->version_id);
	else if (rc == ERR_NOTFOUND)
		rc = 0; /* no version left */
	free(n);
	return rc;
}

/* --- the outbox and tombstones (replication) --- */

/* Journal a local write of (bucket, key, version_id) in the caller's
 * transaction (key and version "" name the bucket's configuration).
 * *seq (may be NULL) gets the outbox position, 0 when journalling is off. */
static int journal(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id,
		   uint64_t size, int64_t *seq)
{
	if (seq)
		*seq = 0;
	if (!journal_on)
		return 0;
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_outbox(bucket, key, version_id, size, created_ms) "
				       "VALUES(?1, ?2, ?3, ?4, ?5)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, version_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)size);
	sqlite3_bind_int64(st, 5, util_now_ms());
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	if (seq)
		*seq = sqlite3_last_insert_rowid(db_handle(db));
	return 0;
}

/* Remember that version_id of the key was removed for good at (hlc,
 * origin), keeping the newer of two tombstones of the same version. */
static int tombstone(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id,
		     const char *ts, const char *origin)
{
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_tombstones(bucket, key, version_id, hlc, origin, created_ms) "
				       "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(bucket, key, version_id) DO UPDATE "
				       "SET hlc = excluded.hlc, origin = excluded.origin, created_ms = excluded.created_ms "
				       "WHERE excluded.hlc > hlc OR (excluded.hlc = hlc AND excluded.origin > origin)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, version_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ts, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, util_now_ms());
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int meta_tombstone_get(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id,
		       char ts[HLC_STR_LEN + 1], char origin[32])
{
	sqlite3_stmt *st = db_stmt(db, "SELECT hlc, origin FROM s3_tombstones WHERE bucket = ?1 AND key = ?2 "
				       "AND version_id = ?3");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, version_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_col(st, 0, ts, HLC_STR_LEN + 1);
		copy_col(st, 1, origin, 32);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

static int object_write(db_conn *db, const meta_object *o)
{
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_objects(" OBJECT_COLUMNS ") VALUES("
				       "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
				       "?17, ?18, ?19, ?20, ?21)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, o->bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, o->key, (int)o->key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, o->blob, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)o->size);
	sqlite3_bind_text(st, 5, o->etag, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, o->content_type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, o->headers, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, o->mtime_ms);
	sqlite3_bind_text(st, 9, o->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, o->crc32);
	sqlite3_bind_int64(st, 11, o->crc32c);
	sqlite3_bind_text(st, 12, o->hlc, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 13, o->origin, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 14, o->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 15, o->manifest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 16, o->parts);
	sqlite3_bind_text(st, 17, o->version_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 18, o->latest);
	sqlite3_bind_int(st, 19, o->delete_marker);
	sqlite3_bind_int(st, 20, (int)o->acl);
	sqlite3_bind_int(st, 21, (int)o->repl);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_CONSTRAINT)
		return ERR_EXISTS; /* cannot happen: null replaced first, other ids random */
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

/*
 * Write o (an object or a delete marker) as a version of its key in a
 * bucket with versioning v: the id ("null" unless ENABLED; ENABLED keeps
 * an id the caller set, as a replica will), the null version it replaces
 * dropped (its blobs into old), and the latest flag moved to o unless the
 * current latest is newer. cur: scratch.
 */
static int version_write(db_conn *db, meta_versioning v, meta_object *o, meta_object *cur, meta_blobs *old)
{
	int rc;
	if (v != META_VERSIONING_ENABLED)
		snprintf(o->version_id, sizeof o->version_id, "null");
	else if (!meta_version_id_valid(o->version_id) || strcmp(o->version_id, "null") == 0)
		new_version_id(o->version_id);
	if (strcmp(o->version_id, "null") == 0) {
		rc = meta_object_version(db, o->bucket, o->key, o->key_len, "null", cur);
		if (rc == 0)
			rc = drop_version(db, cur, old);
		else if (rc == ERR_NOTFOUND)
			rc = 0;
		if (rc != 0)
			return rc;
	}
	rc = meta_object_latest(db, o->bucket, o->key, o->key_len, cur);
	if (rc != 0 && rc != ERR_NOTFOUND)
		return rc;
	bool have_latest = rc == 0;
	/* a local write's HLC is newer than any version here; a late replica
	 * may not be (ties: the write at hand wins, it is the same writer) */
	o->latest = !have_latest || !meta_version_newer(cur->hlc, cur->origin, o->hlc, o->origin);
	if (o->latest && have_latest && (rc = set_latest(db, o->bucket, o->key, o->key_len, NULL)) != 0)
		return rc;
	rc = object_write(db, o);
	if (rc == 0 && !have_latest && !o->latest) /* cannot happen: the first version is the latest */
		rc = ERR_DB;
	return rc;
}

int meta_object_put(db_conn *db, meta_object *o, meta_cond cond, const char *etag, meta_blobs *old)
{
	meta_bucket b;
	int rc = meta_bucket_get(db, o->bucket, &b);
	if (rc != 0)
		return rc;
	meta_object *cur = malloc(sizeof *cur);
	if (!cur)
		return ERR_NOMEM;
	size_t mark = old->count;
	bool exists = false;
	rc = meta_object_get(db, o->bucket, o->key, o->key_len, cur);
	if (rc != 0 && rc != ERR_NOTFOUND)
		goto done;
	exists = rc == 0;
	rc = 0;
	if (cond == META_COND_ABSENT && exists)
		rc = ERR_CONFLICT;
	else if (cond == META_COND_ETAG && !exists)
		rc = ERR_NOTFOUND;
	else if (cond == META_COND_ETAG && strcmp(etag, "*") != 0 && strcmp(cur->etag, etag) != 0)
		rc = ERR_CONFLICT;
	if (rc == 0) {
		o->delete_marker = false;
		o->repl = journal_on ? META_REPL_PENDING : META_REPL_NONE;
		rc = version_write(db, b.versioning, o, cur, old);
	}
	if (rc == 0)
		rc = journal(db, o->bucket, o->key, o->key_len, o->version_id, o->size, &o->journal_seq);
done:
	if (rc != 0)
		old->count = mark;
	free(cur);
	return rc;
}

int meta_object_delete_version(db_conn *db, meta_object *by, const char *version_id, bool *was_marker,
			       meta_blobs *old)
{
	*was_marker = false;
	by->journal_seq = 0;
	meta_object *cur = malloc(sizeof *cur);
	if (!cur)
		return ERR_NOMEM;
	size_t mark = old->count;
	int rc = meta_object_version(db, by->bucket, by->key, by->key_len, version_id, cur);
	bool found = rc == 0;
	if (rc == 0) {
		*was_marker = cur->delete_marker;
		rc = drop_version(db, cur, old);
	} else if (rc == ERR_NOTFOUND && journal_on) {
		rc = 0; /* journalled all the same: the other region may have it */
	}
	if (rc == 0 && found && cur->latest)
		rc = promote_newest(db, by->bucket, by->key, by->key_len);
	if (rc == 0 && journal_on)
		rc = tombstone(db, by->bucket, by->key, by->key_len, version_id, by->hlc, by->origin);
	if (rc == 0)
		rc = journal(db, by->bucket, by->key, by->key_len, version_id, 0, &by->journal_seq);
	if (rc == 0 && !found)
		rc = ERR_NOTFOUND;
	if (rc != 0 && rc != ERR_NOTFOUND)
		old->count = mark;
	free(cur);
	return rc;
}

int meta_object_delete(db_conn *db, meta_object *by, meta_blobs *old)
{
	bool marker;
	return meta_object_delete_version(db, by, "null", &marker, old);
}

int meta_object_remove(db_conn *db, meta_object *m, bool *marker, meta_blobs *old)
{
	*marker = false;
	m->journal_seq = 0;
	meta_bucket b;
	int rc = meta_bucket_get(db, m->bucket, &b);
	if (rc != 0)
		return rc;
	if (b.versioning == META_VERSIONING_OFF) {
		rc = meta_object_delete(db, m, old);
		return rc == ERR_NOTFOUND ? 0 : rc;
	}
	meta_object *cur = malloc(sizeof *cur);
	if (!cur)
		return ERR_NOMEM;
	size_t mark = old->count;
	/* S3 adds a marker whether or not the key has an object now */
	m->delete_marker = true;
	m->blob[0] = m->manifest[0] = m->etag[0] = m->sha256[0] = '\0';
	m->size = 0;
	m->parts = 0;
	m->crc32 = m->crc32c = 0;
	m->repl = journal_on ? META_REPL_PENDING : META_REPL_NONE;
	rc = version_write(db, b.versioning, m, cur, old);
	if (rc == 0)
		rc = journal(db, m->bucket, m->key, m->key_len, m->version_id, 0, &m->journal_seq);
	if (rc != 0)
		old->count = mark;
	else
		*marker = true;
	free(cur);
	return rc;
}

int meta_object_set_acl(db_conn *db, const char *bucket, const char *key, size_t key_len,
			const char *version_id, meta_acl acl)
{
	sqlite3_stmt *st = version_id
		? db_stmt(db, "UPDATE s3_objects SET acl = ?4 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3 "
			      "AND deleted = 0 RETURNING version_id")
		: db_stmt(db, "UPDATE s3_objects SET acl = ?4 WHERE bucket = ?1 AND key = ?2 AND latest = 1 "
			      "AND deleted = 0 RETURNING version_id");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	if (version_id)
		sqlite3_bind_text(st, 3, version_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)acl);
	char vid[META_VERSION_ID_LEN + 1] = "";
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_col(st, 0, vid, sizeof vid);
		rc = sqlite3_step(st);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	if (!vid[0])
		return ERR_NOTFOUND;
	/* the version is shipped again, with its new ACL */
	return journal(db, bucket, key, key_len, vid, 0, NULL);
}

int meta_manifest_parts(db_conn *db, const char *manifest, uint64_t offset, uint64_t length,
			int (*fn)(void *arg, const char *blob, uint64_t pos, uint64_t size), void *arg)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT blob, pos, size FROM s3_object_parts WHERE manifest = ?1 "
				       "AND pos < ?3 AND pos + size > ?2 ORDER BY idx");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, manifest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)offset);
	sqlite3_bind_int64(st, 3, (int64_t)(offset + length));
	int rc, frc = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		frc = fn(arg, (const char *)sqlite3_column_text(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
			 (uint64_t)sqlite3_column_int64(st, 2));
		if (frc != 0)
			break;
	}
	sqlite3_reset(st);
	if (frc != 0)
		return frc;
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int meta_blob_known(db_conn *db, const char *blob)
{
	static const char *const tables[] = {
		"SELECT 1 FROM s3_objects WHERE blob = ?1 LIMIT 1",
		"SELECT 1 FROM s3_object_parts WHERE blob = ?1 LIMIT 1",
		"SELECT 1 FROM s3_upload_parts WHERE blob = ?1 LIMIT 1",
	};
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		sqlite3_stmt *st = db_stmt(db, tables[i]);
		if (!st)
			return ERR_DB;
		sqlite3_bind_text(st, 1, blob, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc == SQLITE_ROW)
			return 1;
		if (rc != SQLITE_DONE)
			return ERR_DB;
	}
	return 0;
}

/* ------------------------------------------------------------ multipart */

#define UPLOAD_COLUMNS "upload_id, bucket, key, content_type, headers, owner, created_ms"

static void upload_row(sqlite3_stmt *st, meta_upload *u)
{
	copy_col(st, 0, u->upload_id, sizeof u->upload_id);
	copy_col(st, 1, u->bucket, sizeof u->bucket);
	copy_col(st, 2, u->key, sizeof u->key);
	u->key_len = (size_t)sqlite3_column_bytes(st, 2);
	if (u->key_len > META_KEY_MAX)
		u->key_len = META_KEY_MAX;
	copy_col(st, 3, u->content_type, sizeof u->content_type);
	copy_col(st, 4, u->headers, sizeof u->headers);
	copy_col(st, 5, u->owner, sizeof u->owner);
	u->created_ms = sqlite3_column_int64(st, 6);
}

int meta_upload_count(db_conn *db)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT count(*) FROM s3_uploads");
	if (!st)
		return ERR_DB;
	int rc = sqlite3_step(st);
	int n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : ERR_DB;
	sqlite3_reset(st);
	return n;
}

int meta_upload_create(db_conn *db, const meta_upload *u, int max_uploads)
{
	meta_bucket b;
	int rc = meta_bucket_get(db, u->bucket, &b);
	if (rc != 0)
		return rc;
	int n = meta_upload_count(db);
	if (n < 0)
		return n;
	if (n >= max_uploads)
		return ERR_LIMIT;
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_uploads(" UPLOAD_COLUMNS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, u->upload_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, u->bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, u->key, (int)u->key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, u->content_type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, u->headers, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, u->owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, u->created_ms);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_CONSTRAINT)
		return ERR_EXISTS;
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int meta_upload_get(db_conn *db, const char *upload_id, meta_upload *out)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT " UPLOAD_COLUMNS " FROM s3_uploads WHERE upload_id = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, upload_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		upload_row(st, out);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

int meta_upload_next(db_conn *db, const char *bucket, const char *key, size_t key_len,
		     const char *upload_id, meta_upload *out)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT " UPLOAD_COLUMNS " FROM s3_uploads WHERE bucket = ?1 "
				       "AND (key, upload_id) > (?2, ?3) ORDER BY key, upload_id LIMIT 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key ? key : "", (int)key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, upload_id ? upload_id : "", -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		upload_row(st, out);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

static void part_row(sqlite3_stmt *st, meta_part *p)
{
	p->number = sqlite3_column_int(st, 0);
	copy_col(st, 1, p->blob, sizeof p->blob);
	p->size = (uint64_t)sqlite3_column_int64(st, 2);
	copy_col(st, 3, p->etag, sizeof p->etag);
	p->mtime_ms = sqlite3_column_int64(st, 4);
}

static int part_get(db_conn *db, const char *upload_id, int number, meta_part *out)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT part, blob, size, etag, mtime_ms FROM s3_upload_parts "
				       "WHERE upload_id = ?1 AND part = ?2");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, upload_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, number);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		part_row(st, out);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

int meta_part_put(db_conn *db, const char *upload_id, const meta_part *p, meta_blobs *old)
{
	meta_upload *u = malloc(sizeof *u);
	if (!u)
		return ERR_NOMEM;
	int rc = meta_upload_get(db, upload_id, u);
	free(u);
	if (rc != 0)
		return rc;
	meta_part cur;
	rc = part_get(db, upload_id, p->number, &cur);
	if (rc != 0 && rc != ERR_NOTFOUND)
		return rc;
	bool replaced = rc == 0;
	sqlite3_stmt *st = db_stmt(db, "INSERT OR REPLACE INTO s3_upload_parts(upload_id, part, blob, size, etag, "
				       "mtime_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, upload_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, p->number);
	sqlite3_bind_text(st, 3, p->blob, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)p->size);
	sqlite3_bind_text(st, 5, p->etag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, p->mtime_ms);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	/* re-uploading a part (a retry) with the blob already recorded: nothing to drop */
	if (replaced && strcmp(cur.blob, p->blob) != 0)
		return meta_blobs_add(old, cur.blob);
	return 0;
}

int meta_part_next(db_conn *db, const char *upload_id, int after, meta_part *out)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT part, blob, size, etag, mtime_ms FROM s3_upload_parts "
				       "WHERE upload_id = ?1 AND part > ?2 ORDER BY part LIMIT 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, upload_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, after);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		part_row(st, out);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

/* Delete the upload's rows; the blobs of its parts into old. */
static int upload_drop(db_conn *db, const char *upload_id, meta_blobs *old)
{
	sqlite3_stmt *st = db_stmt(db, "DELETE FROM s3_upload_parts WHERE upload_id = ?1 RETURNING blob");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, upload_id, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (meta_blobs_add(old, (const char *)sqlite3_column_text(st, 0)) != 0) {
			sqlite3_reset(st);
			return ERR_NOMEM;
		}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	st = db_stmt(db, "DELETE FROM s3_uploads WHERE upload_id = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, upload_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	return sqlite3_changes(db_handle(db)) ? 0 : ERR_NOTFOUND;
}

int meta_upload_abort(db_conn *db, const char *upload_id, meta_blobs *old)
{
	size_t mark = old->count;
	int rc = upload_drop(db, upload_id, old);
	if (rc != 0)
		old->count = mark;
	return rc;
}

int meta_upload_expire(db_conn *db, int64_t cutoff_ms, int limit, meta_blobs *old, int *aborted)
{
	*aborted = 0;
	size_t mark = old->count;
	char (*ids)[META_UPLOAD_ID_LEN + 1] = calloc((size_t)(limit > 0 ? limit : 1), sizeof *ids);
	if (!ids)
		return ERR_NOMEM;
	int n = 0, rc;
	sqlite3_stmt *st = db_stmt(db, "SELECT upload_id FROM s3_uploads WHERE created_ms < ?1 "
				       "ORDER BY created_ms LIMIT ?2");
	if (!st) {
		rc = ERR_DB;
		goto done;
	}
	sqlite3_bind_int64(st, 1, cutoff_ms);
	sqlite3_bind_int(st, 2, limit);
	while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
		copy_col(st, 0, ids[n++], sizeof ids[0]);
	sqlite3_reset(st);
	rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		rc = upload_drop(db, ids[i], old);
		if (rc == ERR_NOTFOUND)
			rc = 0; /* cannot happen: read in this transaction */
		else if (rc == 0)
			(*aborted)++;
	}
done:
	free(ids);
	if (rc != 0) {
		old->count = mark;
		*aborted = 0;
	}
	return rc;
}

int meta_upload_complete(db_conn *db, const char *upload_id, const meta_complete_part *parts, size_t n,
			 uint64_t min_part, uint64_t max_size, meta_object *o, int *bad_part, meta_blobs *old)
{
	*bad_part = 0;
	size_t mark = old->count;
	meta_upload *u = malloc(sizeof *u);
	meta_part *rows = calloc(n ? n : 1, sizeof *rows);
	uint64_t *sizes = calloc(n ? n : 1, sizeof *sizes);
	unsigned char *md5s = calloc(n ? n : 1, 16);
	int rc = ERR_NOMEM;
	if (!u || !rows || !sizes || !md5s)
		goto done;
	rc = meta_upload_get(db, upload_id, u);
	if (rc != 0)
		goto done;
	if (strcmp(u->bucket, o->bucket) != 0 || u->key_len != o->key_len || memcmp(u->key, o->key, o->key_len) != 0) {
		rc = ERR_NOTFOUND; /* another key's upload id: S3 says NoSuchUpload */
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		rc = part_get(db, upload_id, parts[i].number, &rows[i]);
		if (rc == ERR_NOTFOUND || (rc == 0 && strcasecmp(rows[i].etag, parts[i].etag) != 0) ||
		    (rc == 0 && manifest_md5_from_hex(rows[i].etag, md5s + 16 * i) != 0)) {
			*bad_part = parts[i].number;
			rc = ERR_INVAL;
		}
		if (rc != 0)
			goto done;
		sizes[i] = rows[i].size;
	}
	size_t bad;
	uint64_t total;
	manifest_size_check sc = manifest_check_sizes(sizes, n, min_part, max_size, &bad, &total);
	if (sc == MANIFEST_PART_TOO_SMALL) {
		*bad_part = parts[bad].number;
		rc = ERR_CONFLICT;
		goto done;
	}
	if (sc == MANIFEST_TOO_LARGE) {
		rc = ERR_LIMIT;
		goto done;
	}
	if (manifest_etag(md5s, n, o->etag) != 0) {
		rc = ERR_INVAL;
		goto done;
	}
	o->blob[0] = '\0';
	o->size = total;
	snprintf(o->manifest, sizeof o->manifest, "%s", upload_id);
	o->parts = (uint32_t)n;
	snprintf(o->content_type, sizeof o->content_type, "%s", u->content_type);
	memcpy(o->headers, u->headers, sizeof o->headers);
	snprintf(o->owner, sizeof o->owner, "%s", u->owner);
	o->sha256[0] = '\0'; /* not known without reading the parts: S3 has none either */
	o->crc32 = o->crc32c = 0;
	rc = meta_object_put(db, o, META_COND_NONE, NULL, old);
	if (rc != 0)
		goto done;
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_object_parts(manifest, idx, blob, pos, size) "
				       "VALUES(?1, ?2, ?3, ?4, ?5)");
	uint64_t pos = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!st) {
			rc = ERR_DB;
			break;
		}
		sqlite3_bind_text(st, 1, upload_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)i);
		sqlite3_bind_text(st, 3, rows[i].blob, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (int64_t)pos);
		sqlite3_bind_int64(st, 5, (int64_t)rows[i].size);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ERR_DB;
		sqlite3_reset(st);
		pos += rows[i].size;
	}
	if (rc != 0)
		goto done;
	/* the listed parts now belong to the manifest; the upload's other
	 * parts are dropped (S3 discards them) with its rows */
	st = db_stmt(db, "DELETE FROM s3_upload_parts WHERE upload_id = ?1 AND part = ?2");
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!st) {
			rc = ERR_DB;
			break;
		}
		sqlite3_bind_text(st, 1, upload_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, parts[i].number);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ERR_DB;
		sqlite3_reset(st);
	}
	if (rc == 0)
		rc = upload_drop(db, upload_id, old);
done:
	if (rc != 0)
		old->count = mark;
	free(u);
	free(rows);
	free(sizes);
	free(md5s);
	return rc;
}

/* --------------------------------------------------------- replication */

int meta_outbox_next(db_conn *db, int64_t after, meta_outbox_entry *out)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT seq, bucket, key, version_id, size, created_ms, repair FROM s3_outbox "
				       "WHERE seq > ?1 ORDER BY seq LIMIT 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, after);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->seq = sqlite3_column_int64(st, 0);
		copy_col(st, 1, out->bucket, sizeof out->bucket);
		copy_col(st, 2, out->key, sizeof out->key);
		out->key_len = (size_t)sqlite3_column_bytes(st, 2) > META_KEY_MAX ? META_KEY_MAX
			     : (size_t)sqlite3_column_bytes(st, 2);
		copy_col(st, 3, out->version_id, sizeof out->version_id);
		out->size = (uint64_t)sqlite3_column_int64(st, 4);
		out->created_ms = sqlite3_column_int64(st, 5);
		out->repair = sqlite3_column_int(st, 6) != 0;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

int meta_outbox_done(db_conn *db, const meta_outbox_entry *e, meta_repl status)
{
	sqlite3_stmt *st = db_stmt(db, "DELETE FROM s3_outbox WHERE seq = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, e->seq);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	if (!e->key_len)
		return 0;
	/* the version's status, unless a later row of it still waits (its ACL
	 * changed meanwhile, say): then it stays PENDING */
	st = db_stmt(db, "UPDATE s3_objects SET repl = ?4 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3 "
			 "AND repl != 4 AND NOT EXISTS (SELECT 1 FROM s3_outbox WHERE bucket = ?1 AND key = ?2 "
			 "AND version_id = ?3)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, e->bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->key, (int)e->key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->version_id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)status);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int meta_outbox_stats(db_conn *db, int64_t *count, int64_t *bytes, int64_t *oldest_ms)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT count(*), total(size), min(created_ms) FROM s3_outbox");
	if (!st)
		return ERR_DB;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*count = sqlite3_column_int64(st, 0);
		*bytes = (int64_t)sqlite3_column_double(st, 1);
		*oldest_ms = sqlite3_column_type(st, 2) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : ERR_DB;
}

int meta_tombstone_expire(db_conn *db, int64_t cutoff_ms, int limit, int *dropped)
{
	*dropped = 0;
	sqlite3_stmt *st = db_stmt(db, "DELETE FROM s3_tombstones WHERE (bucket, key, version_id) IN (SELECT bucket, key, version_id "
			 "FROM s3_tombstones INDEXED BY s3_tombstones_created WHERE created_ms < ?1 LIMIT ?2)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, cutoff_ms);
	sqlite3_bind_int(st, 2, limit);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	*dropped = sqlite3_changes(db_handle(db));
	return 0;
}

int meta_replica_put(db_conn *db, meta_object *o, const meta_replica_blob *blobs, size_t n, bool *applied,
		     meta_blobs *old)
{
	*applied = false;
	if (o->delete_marker ? n != 0 : (n == 0 || (o->parts ? n != o->parts : n != 1)))
		return ERR_INVAL;
	size_t mark = old->count;
	meta_object *cur = malloc(sizeof *cur);
	if (!cur)
		return ERR_NOMEM;
	char th[HLC_STR_LEN + 1], to[32];
	meta_bucket b;
	int rc = meta_bucket_get(db, o->bucket, &b);
	if (rc == ERR_NOTFOUND) {
		/* the bucket's own entry is on its way (entries may overtake
		 * each other), or it was deleted here while the other region
		 * wrote into it: either way the write is kept */
		meta_bucket nb = {0};
		snprintf(nb.name, sizeof nb.name, "%s", o->bucket);
		snprintf(nb.owner, sizeof nb.owner, "%s", o->owner);
		nb.created_ms = util_now_ms();
		sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_buckets(name, owner, region, created_ms) "
					       "VALUES(?1, ?2, '', ?3)");
		rc = st ? 0 : ERR_DB;
		if (st) {
			sqlite3_bind_text(st, 1, nb.name, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, nb.owner, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, nb.created_ms);
			rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ERR_DB;
			sqlite3_reset(st);
		}
	}
	if (rc != 0)
		goto done;
	rc = meta_tombstone_get(db, o->bucket, o->key, o->key_len, o->version_id, th, to);
	if (rc == 0 && !meta_version_newer(o->hlc, o->origin, th, to))
		goto done; /* removed after it was written: it stays removed */
	if (rc != 0 && rc != ERR_NOTFOUND)
		goto done;
	rc = meta_object_version(db, o->bucket, o->key, o->key_len, o->version_id, cur);
	if (rc == 0) {
		if (meta_version_newer(cur->hlc, cur->origin, o->hlc, o->origin)) {
			rc = 0; /* a newer "null" version is here */
			goto done;
		}
		if (strcmp(cur->hlc, o->hlc) == 0 && strcmp(cur->origin, o->origin) == 0) {
			/* the same version again (a retry, or its ACL changed) */
			sqlite3_stmt *st = db_stmt(db, "UPDATE s3_objects SET acl = ?4 WHERE bucket = ?1 AND key = ?2 "
						       "AND version_id = ?3");
			rc = st ? 0 : ERR_DB;
			if (st) {
				sqlite3_bind_text(st, 1, o->bucket, -1, SQLITE_STATIC);
				sqlite3_bind_text(st, 2, o->key, (int)o->key_len, SQLITE_STATIC);
				sqlite3_bind_text(st, 3, o->version_id, -1, SQLITE_STATIC);
				sqlite3_bind_int(st, 4, (int)o->acl);
				rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ERR_DB;
				sqlite3_reset(st);
			}
			goto done;
		}
		/* an older "null" version: replaced */
		bool was_latest = cur->latest;
		rc = drop_version(db, cur, old);
		if (rc == 0 && was_latest)
			rc = promote_newest(db, o->bucket, o->key, o->key_len);
	} else if (rc == ERR_NOTFOUND) {
		rc = 0;
	}
	if (rc != 0)
		goto done;
	rc = meta_object_latest(db, o->bucket, o->key, o->key_len, cur);
	if (rc != 0 && rc != ERR_NOTFOUND)
		goto done;
	bool have_latest = rc == 0;
	o->latest = !have_latest || meta_version_newer(o->hlc, o->origin, cur->hlc, cur->origin);
	rc = 0;
	if (o->latest && have_latest)
		rc = set_latest(db, o->bucket, o->key, o->key_len, NULL);
	o->repl = META_REPL_REPLICA;
	if (o->delete_marker) {
		o->blob[0] = o->manifest[0] = '\0';
		o->parts = 0;
	} else if (o->parts) {
		o->blob[0] = '\0';
	} else {
		snprintf(o->blob, sizeof o->blob, "%s", blobs[0].blob);
		o->manifest[0] = '\0';
	}
	if (rc == 0)
		rc = object_write(db, o);
	if (rc == 0 && o->parts) {
		sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_object_parts(manifest, idx, blob, pos, size) "
					       "VALUES(?1, ?2, ?3, ?4, ?5)");
		uint64_t pos = 0;
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (!st) {
				rc = ERR_DB;
				break;
			}
			sqlite3_bind_text(st, 1, o->manifest, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (int64_t)i);
			sqlite3_bind_text(st, 3, blobs[i].blob, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, (int64_t)pos);
			sqlite3_bind_int64(st, 5, (int64_t)blobs[i].size);
			rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ERR_DB;
			sqlite3_reset(st);
			pos += blobs[i].size;
		}
		if (rc == 0 && pos != o->size)
			rc = ERR_INVAL;
	}
	if (rc == 0)
		*applied = true;
done:
	if (rc != 0) {
		old->count = mark;
		*applied = false;
	}
	free(cur);
	return rc;
}

int meta_replica_remove(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id,
			const char *ts, const char *origin, bool *applied, meta_blobs *old)
{
	*applied = false;
	size_t mark = old->count;
	meta_object *cur = malloc(sizeof *cur);
	if (!cur)
		return ERR_NOMEM;
	int rc = tombstone(db, bucket, key, key_len, version_id, ts, origin);
	if (rc == 0)
		rc = meta_object_version(db, bucket, key, key_len, version_id, cur);
	if (rc == 0 && !meta_version_newer(cur->hlc, cur->origin, ts, origin)) {
		bool was_latest = cur->latest;
		rc = drop_version(db, cur, old);
		if (rc == 0 && was_latest)
			rc = promote_newest(db, bucket, key, key_len);
		if (rc == 0)
			*applied = true;
	} else if (rc == ERR_NOTFOUND) {
		rc = 0; /* not here (yet): the tombstone keeps it out */
	}
	if (rc != 0) {
		old->count = mark;
		*applied = false;
	}
	free(cur);
	return rc;
}

int meta_replica_bucket(db_conn *db, const meta_bucket *b, const char *cors, bool removed, bool *applied)
{
	*applied = false;
	if (removed) {
		int rc = bucket_delete(db, b->name);
		if (rc == 0)
			*applied = true;
		return rc == ERR_NOTFOUND || rc == ERR_CONFLICT ? 0 : rc;
	}
	if (cors && strlen(cors) > META_CORS_MAX)
		return ERR_LIMIT;
	meta_bucket here;
	int rc = meta_bucket_get(db, b->name, &here);
	if (rc != 0 && rc != ERR_NOTFOUND)
		return rc;
	if (rc == 0 && strcmp(b->versioning_stamp, here.versioning_stamp) <= 0 &&
	    strcmp(b->acl_stamp, here.acl_stamp) <= 0 && strcmp(b->cors_stamp, here.cors_stamp) <= 0)
		return 0; /* nothing newer than ours: ours goes the other way */
	/* each part taken only when its stamp is newer (TEXT compares as
	 * BINARY: strcmp's order) */
	sqlite3_stmt *st = db_stmt(
		db, "INSERT INTO s3_buckets(name, owner, region, created_ms, versioning, acl, cors, versioning_stamp, "
		    "acl_stamp, cors_stamp) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT(name) DO UPDATE SET "
		    "versioning = CASE WHEN excluded.versioning_stamp > versioning_stamp THEN excluded.versioning "
		    "ELSE versioning END, "
		    "versioning_stamp = max(excluded.versioning_stamp, versioning_stamp), "
		    "acl = CASE WHEN excluded.acl_stamp > acl_stamp THEN excluded.acl ELSE acl END, "
		    "acl_stamp = max(excluded.acl_stamp, acl_stamp), "
		    "cors = CASE WHEN excluded.cors_stamp > cors_stamp THEN excluded.cors ELSE cors END, "
		    "cors_stamp = max(excluded.cors_stamp, cors_stamp)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, b->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b->region, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, b->created_ms);
	sqlite3_bind_int(st, 5, (int)b->versioning);
	sqlite3_bind_int(st, 6, (int)b->acl);
	if (cors)
		sqlite3_bind_text(st, 7, cors, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_text(st, 8, b->versioning_stamp, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, b->acl_stamp, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, b->cors_stamp, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	*applied = true;
	return 0;
}

int meta_outbox_has(db_conn *db, int64_t seq)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT 1 FROM s3_outbox WHERE seq = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, seq);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : ERR_DB;
}

/* --------------------------------------------------------- anti-entropy */

/* The rows of bucket in [from, to) (to_end: no upper bound), versions then
 * tombstones, each in (key, version id) byte order: the same order in both
 * regions. */
static sqlite3_stmt *range_stmt(db_conn *db, bool tombstones, const char *bucket, const char *from,
				size_t from_len, const char *to, size_t to_len, bool to_end, long limit)
{
	sqlite3_stmt *st;
	if (tombstones)
		st = to_end ? db_stmt(db, "SELECT key, version_id, hlc, origin FROM s3_tombstones WHERE bucket = ?1 "
					  "AND key >= ?2 ORDER BY key, version_id LIMIT ?4")
			    : db_stmt(db, "SELECT key, version_id, hlc, origin FROM s3_tombstones WHERE bucket = ?1 "
					  "AND key >= ?2 AND key < ?3 ORDER BY key, version_id LIMIT ?4");
	else
		st = to_end ? db_stmt(db, "SELECT key, version_id, hlc, origin, etag, deleted, size, acl FROM s3_objects "
					  "WHERE bucket = ?1 AND key >= ?2 ORDER BY key, version_id LIMIT ?4")
			    : db_stmt(db, "SELECT key, version_id, hlc, origin, etag, deleted, size, acl FROM s3_objects "
					  "WHERE bucket = ?1 AND key >= ?2 AND key < ?3 ORDER BY key, version_id LIMIT ?4");
	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, from ? from : "", (int)from_len, SQLITE_STATIC);
	if (!to_end)
		sqlite3_bind_text(st, 3, to, (int)to_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, limit);
	return st;
}

static void range_entry(sqlite3_stmt *st, bool tomb, meta_range_entry *e)
{
	memset(e, 0, sizeof *e);
	e->tombstone = tomb;
	copy_col(st, 0, e->key, sizeof e->key);
	e->key_len = (size_t)sqlite3_column_bytes(st, 0) > META_KEY_MAX ? META_KEY_MAX
		     : (size_t)sqlite3_column_bytes(st, 0);
	copy_col(st, 1, e->version_id, sizeof e->version_id);
	copy_col(st, 2, e->hlc, sizeof e->hlc);
	copy_col(st, 3, e->origin, sizeof e->origin);
	if (!tomb) {
		copy_col(st, 4, e->etag, sizeof e->etag);
		e->delete_marker = sqlite3_column_int(st, 5) != 0;
		e->size = (uint64_t)sqlite3_column_int64(st, 6);
		e->acl = sqlite3_column_int(st, 7);
	}
}

int meta_range_entries(db_conn *db, const char *bucket, const char *from, size_t from_len, const char *to,
		       size_t to_len, bool to_end, long max_rows, int (*fn)(void *arg, const meta_range_entry *e),
		       void *arg)
{
	meta_range_entry *e = malloc(sizeof *e);
	if (!e)
		return ERR_NOMEM;
	long left = max_rows;
	int rc = 0;
	for (int pass = 0; pass < 2 && rc == 0 && left > 0; pass++) {
		sqlite3_stmt *st = range_stmt(db, pass == 1, bucket, from, from_len, to, to_len, to_end, left);
		if (!st) {
			rc = ERR_DB;
			break;
		}
		int s;
		while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
			range_entry(st, pass == 1, e);
			left--;
			rc = fn(arg, e);
		}
		if (rc == 0 && s != SQLITE_DONE)
			rc = ERR_DB;
		sqlite3_reset(st);
	}
	free(e);
	if (rc == 0 && left <= 0)
		return ERR_LIMIT;
	return rc;
}

typedef struct digest_ctx {
	EVP_MD_CTX *md;
	meta_digest *out;
	long half;
} digest_ctx;

static int digest_one(void *arg, const meta_range_entry *e)
{
	digest_ctx *c = arg;
	char line[256];
	int n = snprintf(line, sizeof line, "%c %zu %s %s %s %s %d %llu %d\n", e->tombstone ? 't' : 'v', e->key_len,
			 e->version_id, e->hlc, e->origin, e->etag, e->delete_marker, (unsigned long long)e->size, e->acl);
	if (EVP_DigestUpdate(c->md, e->key, e->key_len) != 1 || EVP_DigestUpdate(c->md, line, (size_t)n) != 1)
		return ERR_TLS;
	if (c->out->rows++ == c->half) {
		memcpy(c->out->split, e->key, e->key_len);
		c->out->split[e->key_len] = '\0';
		c->out->split_len = e->key_len;
	}
	return 0;
}

int meta_digest_range(db_conn *db, const char *bucket, const char *from, size_t from_len, const char *to,
		      size_t to_len, bool to_end, long max_rows, meta_digest *out)
{
	memset(out, 0, sizeof *out);
	digest_ctx c = {.md = EVP_MD_CTX_new(), .out = out, .half = max_rows / 2};
	if (!c.md || EVP_DigestInit_ex(c.md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c.md);
		return ERR_TLS;
	}
	int rc = meta_range_entries(db, bucket, from, from_len, to, to_len, to_end, max_rows, digest_one, &c);
	if (rc == ERR_LIMIT) {
		out->truncated = true;
		rc = 0;
	} else if (rc == 0 && out->rows > 1) {
		/* the split of a complete range: its middle row's key */
		c.half = out->rows / 2;
		out->rows = 0;
		EVP_DigestInit_ex(c.md, EVP_sha256(), NULL);
		rc = meta_range_entries(db, bucket, from, from_len, to, to_len, to_end, max_rows, digest_one, &c);
	}
	unsigned int n = 0;
	if (rc == 0 && EVP_DigestFinal_ex(c.md, out->sha256, &n) != 1)
		rc = ERR_TLS;
	EVP_MD_CTX_free(c.md);
	return rc;
}

int meta_bucket_next(db_conn *db, const char *after, meta_bucket *out)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT " BUCKET_COLUMNS " FROM s3_buckets WHERE name > ?1 ORDER BY name LIMIT 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, after ? after : "", -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		bucket_row(st, out);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

int meta_outbox_repair(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id)
{
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_outbox(bucket, key, version_id, size, created_ms, repair) "
				       "VALUES(?1, ?2, ?3, 0, ?4, 1)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, version_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, util_now_ms());
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int meta_replica_decide(db_conn *db, meta_object *o, const meta_replica_blob *blobs, size_t n, meta_cond cond,
			const char *etag, char latest_hlc[HLC_STR_LEN + 1], meta_blobs *old)
{
	latest_hlc[0] = '\0';
	meta_object *cur = malloc(sizeof *cur);
	if (!cur)
		return ERR_NOMEM;
	int rc = meta_object_get(db, o->bucket, o->key, o->key_len, cur);
	bool exists = rc == 0;
	if (rc != 0 && rc != ERR_NOTFOUND)
		goto done;
	rc = 0;
	if (cond == META_COND_ABSENT && exists)
		rc = ERR_CONFLICT;
	else if (cond == META_COND_ETAG && !exists)
		rc = ERR_NOTFOUND;
	else if (cond == META_COND_ETAG && strcmp(etag, "*") != 0 && strcmp(cur->etag, etag) != 0)
		rc = ERR_CONFLICT;
	if (rc != 0)
		goto done;
	/* the decided write must become current here: newer than the latest
	 * (a marker too), else the writer takes a newer HLC and asks again */
	rc = meta_object_latest(db, o->bucket, o->key, o->key_len, cur);
	if (rc == 0 && !meta_version_newer(o->hlc, o->origin, cur->hlc, cur->origin)) {
		snprintf(latest_hlc, HLC_STR_LEN + 1, "%s", cur->hlc);
		rc = ERR_AGAIN;
		goto done;
	}
	if (rc != 0 && rc != ERR_NOTFOUND)
		goto done;
	bool applied;
	rc = meta_replica_put(db, o, blobs, n, &applied, old);
	if (rc == 0 && !applied)
		rc = ERR_AGAIN; /* a tombstone as new: the same answer */
done:
	free(cur);
	return rc;
}
