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
 */
#include "objects/meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/log.h"
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
	if (version >= 1)
		return 0;
	rc = db_exec(db, "BEGIN IMMEDIATE");
	if (rc != 0)
		return rc;
	rc = db_exec(db, meta_migration_1);
	if (rc == 0)
		rc = db_exec(db, "PRAGMA user_version = 1");
	if (rc == 0)
		rc = db_exec(db, "COMMIT");
	if (rc != 0)
		db_exec(db, "ROLLBACK");
	return rc;
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
}

int meta_bucket_get(db_conn *db, const char *name, meta_bucket *out)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT name, owner, region, created_ms FROM s3_buckets WHERE name = ?1");
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
	sqlite3_stmt *st = db_stmt(db, "SELECT name, owner, region, created_ms FROM s3_buckets "
				       "WHERE owner = ?1 ORDER BY name");
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
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO s3_buckets(name, owner, region, created_ms) "
				       "VALUES(?1, ?2, ?3, ?4)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, b->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, b->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, b->region, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, b->created_ms);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int meta_bucket_delete(db_conn *db, const char *name)
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

#define OBJECT_COLUMNS                                                                             \
	"bucket, key, blob, size, etag, content_type, headers, mtime_ms, sha256, crc32, crc32c, hlc, " \
	"origin, owner, manifest, parts"

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
}

int meta_object_get(db_conn *db, const char *bucket, const char *key, size_t key_len, meta_object *out)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects WHERE bucket = ?1 AND key = ?2");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		object_row(st, out);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

int meta_object_next(db_conn *db, const char *bucket, const char *after, size_t after_len,
		     bool inclusive, meta_object *out)
{
	sqlite3_stmt *st = inclusive
		? db_stmt(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects WHERE bucket = ?1 AND key >= ?2 "
			      "ORDER BY key LIMIT 1")
		: db_stmt(db, "SELECT " OBJECT_COLUMNS " FROM s3_objects WHERE bucket = ?1 AND key > ?2 "
			      "ORDER BY key LIMIT 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, after ? after : "", (int)after_len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		object_row(st, out);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ERR_NOTFOUND : ERR_DB;
}

/* The blobs the current row of (bucket, key) names into old, and its
 * manifest rows deleted. *exists: whether there is a row (cur filled). */
static int drop_current(db_conn *db, const char *bucket, const char *key, size_t key_len, meta_object *cur,
			bool *exists, meta_blobs *old)
{
	int rc = meta_object_get(db, bucket, key, key_len, cur);
	*exists = rc == 0;
	if (rc == ERR_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (!cur->parts)
		return meta_blobs_add(old, cur->blob);
	sqlite3_stmt *st = db_stmt(db, "DELETE FROM s3_object_parts WHERE manifest = ?1 RETURNING blob");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, cur->manifest, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (meta_blobs_add(old, (const char *)sqlite3_column_text(st, 0)) != 0) {
			sqlite3_reset(st);
			return ERR_NOMEM;
		}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

static int object_write(db_conn *db, const meta_object *o)
{
	sqlite3_stmt *st = db_stmt(db, "INSERT OR REPLACE INTO s3_objects(" OBJECT_COLUMNS ") VALUES("
				       "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)");
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
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int meta_object_put(db_conn *db, const meta_object *o, meta_cond cond, const char *etag, meta_blobs *old)
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
	if (rc == 0)
		rc = drop_current(db, o->bucket, o->key, o->key_len, cur, &exists, old);
	if (rc == 0)
		rc = object_write(db, o);
done:
	if (rc != 0)
		old->count = mark;
	free(cur);
	return rc;
}

int meta_object_delete(db_conn *db, const char *bucket, const char *key, size_t key_len, meta_blobs *old)
{
	meta_object *cur = malloc(sizeof *cur);
	if (!cur)
		return ERR_NOMEM;
	size_t mark = old->count;
	bool exists;
	int rc = drop_current(db, bucket, key, key_len, cur, &exists, old);
	free(cur);
	if (rc == 0 && !exists)
		return ERR_NOTFOUND;
	sqlite3_stmt *st = rc == 0 ? db_stmt(db, "DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2") : NULL;
	if (rc == 0 && !st)
		rc = ERR_DB;
	if (rc == 0) {
		sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ERR_DB;
		sqlite3_reset(st);
	}
	if (rc != 0)
		old->count = mark;
	return rc;
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
