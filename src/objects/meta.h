/*
 * meta.h - the object store's metadata: buckets and the current version of
 * each object, in SQLite, in its own database file DATA_DIR/objects.db (not
 * tandem.db: the records' replication capture must never see these tables).
 *
 * Each object row names its blob (blobstore.h) and carries what an S3 answer
 * needs (size, ETag, content type, stored headers, checksums) plus, for the
 * replication to come, its hybrid logical clock and its origin region.
 * Version ids: this slice keeps unversioned buckets only ("null").
 *
 * Reads (meta_*_get, meta_object_next, meta_blob_known) run on a read-only
 * connection of the S3 loop: each is one indexed lookup. Writes run in a
 * committer job (committer.h) on the writer connection: each changes one
 * bucket or one object and reports the blob it replaced, which the caller
 * deletes only after the commit (row first, blob second: a crash between
 * leaves an orphan for the sweep, never a row without its blob).
 *
 * Errors: 0 or ERR_NOTFOUND / ERR_EXISTS / ERR_CONFLICT as said, ERR_DB
 * (logged by db.c).
 */
#ifndef TANDEM_OBJECTS_META_H
#define TANDEM_OBJECTS_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objects/blobstore.h"
#include "objects/hlc.h"
#include "store/db.h"

#define META_BUCKET_MAX 63
#define META_KEY_MAX 1024
#define META_HEADERS_MAX 8192 /* stored header lines (x-amz-meta-*, Content-Disposition, ...) */

typedef struct meta_bucket {
	char name[META_BUCKET_MAX + 1];
	char owner[64];  /* tenant */
	char region[32]; /* LocationConstraint as created ("" for us-east-1 style) */
	int64_t created_ms;
} meta_bucket;

typedef struct meta_object {
	char bucket[META_BUCKET_MAX + 1];
	char key[META_KEY_MAX + 1];
	size_t key_len;
	char blob[BLOBSTORE_ID_LEN + 1];
	uint64_t size;
	char etag[33];           /* MD5 hex, without quotes */
	char content_type[256];
	char headers[META_HEADERS_MAX]; /* "Name: value\r\n" lines, validated when stored */
	int64_t mtime_ms;
	char sha256[65];
	uint32_t crc32, crc32c;
	char hlc[HLC_STR_LEN + 1];
	char origin[32];         /* the region that took the write */
	char owner[64];          /* the tenant that wrote it */
} meta_object;

/* Create the tables in the database of conn (a writable connection; a
 * no-op when they exist). 0 or ERR_DB. */
int meta_init(db_conn *db);

int meta_bucket_get(db_conn *db, const char *name, meta_bucket *out);
/* fn per bucket of owner, by name; fn returns 0 to go on. */
int meta_bucket_list(db_conn *db, const char *owner, void (*fn)(void *arg, const meta_bucket *b),
		     void *arg);
/* 0, or ERR_EXISTS with *out filled with the existing bucket. */
int meta_bucket_create(db_conn *db, const meta_bucket *b, meta_bucket *existing);
/* 0, ERR_NOTFOUND, ERR_CONFLICT (not empty). */
int meta_bucket_delete(db_conn *db, const char *name);

int meta_object_get(db_conn *db, const char *bucket, const char *key, size_t key_len, meta_object *out);
/* The first object of bucket with a key > after (>= when inclusive;
 * after_len 0 and inclusive: the first one), in byte order. 0 or
 * ERR_NOTFOUND at the end. */
int meta_object_next(db_conn *db, const char *bucket, const char *after, size_t after_len,
		     bool inclusive, meta_object *out);

typedef enum meta_cond {
	META_COND_NONE = 0,
	META_COND_ABSENT,    /* If-None-Match: * */
	META_COND_ETAG,      /* If-Match: etag */
} meta_cond;

/* Insert or replace o. cond checked against the current row inside the
 * transaction: ERR_CONFLICT when it does not hold (412), ERR_NOTFOUND when
 * the bucket is gone, or (META_COND_ETAG) the object is. old_blob gets the
 * replaced blob ("" when none). */
int meta_object_put(db_conn *db, const meta_object *o, meta_cond cond, const char *etag,
		    char old_blob[BLOBSTORE_ID_LEN + 1]);
/* Delete the row; old_blob gets its blob. 0 or ERR_NOTFOUND (nothing to do). */
int meta_object_delete(db_conn *db, const char *bucket, const char *key, size_t key_len,
		       char old_blob[BLOBSTORE_ID_LEN + 1]);

/* 1 when a row names this blob, 0 not, ERR_DB. */
int meta_blob_known(db_conn *db, const char *blob);

#endif
