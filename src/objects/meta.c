/*
 * meta.c - buckets and object rows in objects.db; see meta.h.
 *
 * Keys are TEXT compared with SQLite's BINARY collation (memcmp), which is
 * S3's listing order (UTF-8 bytes). The primary key (bucket, key) of a
 * WITHOUT ROWID table makes every lookup and every listing step one B-tree
 * seek; the blob index serves the orphan sweep.
 */
#include "objects/meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

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
	"CREATE INDEX IF NOT EXISTS s3_objects_blob ON s3_objects(blob);";

int meta_init(db_conn *db)
{
	return db_exec(db, meta_schema);
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
	sqlite3_stmt *st = db_stmt(db, "SELECT 1 FROM s3_objects WHERE bucket = ?1 LIMIT 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return ERR_CONFLICT;
	if (rc != SQLITE_DONE)
		return ERR_DB;
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
	"origin, owner"

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

int meta_object_put(db_conn *db, const meta_object *o, meta_cond cond, const char *etag,
		    char old_blob[BLOBSTORE_ID_LEN + 1])
{
	old_blob[0] = '\0';
	meta_bucket b;
	int rc = meta_bucket_get(db, o->bucket, &b);
	if (rc != 0)
		return rc;
	meta_object *cur = malloc(sizeof *cur);
	if (!cur)
		return ERR_NOMEM;
	rc = meta_object_get(db, o->bucket, o->key, o->key_len, cur);
	if (rc != 0 && rc != ERR_NOTFOUND)
		goto done;
	bool exists = rc == 0;
	rc = 0;
	if (cond == META_COND_ABSENT && exists)
		rc = ERR_CONFLICT;
	else if (cond == META_COND_ETAG && !exists)
		rc = ERR_NOTFOUND;
	else if (cond == META_COND_ETAG && strcmp(etag, "*") != 0 && strcmp(cur->etag, etag) != 0)
		rc = ERR_CONFLICT;
	if (rc != 0)
		goto done;
	if (exists)
		snprintf(old_blob, BLOBSTORE_ID_LEN + 1, "%s", cur->blob);
	sqlite3_stmt *st = db_stmt(db, "INSERT OR REPLACE INTO s3_objects(" OBJECT_COLUMNS ") VALUES("
				       "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)");
	if (!st) {
		rc = ERR_DB;
		goto done;
	}
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
	int src = sqlite3_step(st);
	sqlite3_reset(st);
	rc = src == SQLITE_DONE ? 0 : ERR_DB;
	if (rc != 0)
		old_blob[0] = '\0';
done:
	free(cur);
	return rc;
}

int meta_object_delete(db_conn *db, const char *bucket, const char *key, size_t key_len,
		       char old_blob[BLOBSTORE_ID_LEN + 1])
{
	old_blob[0] = '\0';
	sqlite3_stmt *st = db_stmt(db, "DELETE FROM s3_objects WHERE bucket = ?1 AND key = ?2 RETURNING blob");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, (int)key_len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		copy_col(st, 0, old_blob, BLOBSTORE_ID_LEN + 1);
	int found = rc == SQLITE_ROW;
	while (rc == SQLITE_ROW)
		rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	return found ? 0 : ERR_NOTFOUND;
}

int meta_blob_known(db_conn *db, const char *blob)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT 1 FROM s3_objects WHERE blob = ?1 LIMIT 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, blob, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : ERR_DB;
}
