/*
 * meta.h - the object store's metadata: buckets and the current version of
 * each object, in SQLite, in its own database file DATA_DIR/objects.db (not
 * tandem.db: the records' replication capture must never see these tables).
 *
 * Each object row is one **version** of a key: it names its blob
 * (blobstore.h) and carries what an S3 answer needs (size, ETag, content
 * type, stored headers, checksums) plus, for replication, its hybrid
 * logical clock and its origin region. A row may be a delete marker (no
 * blob). Of a key's versions exactly one is the latest: the newest by
 * meta_version_newer (HLC, then region name), kept in the row's `latest`
 * flag by every write. A bucket never versioned keeps only the version
 * "null" per key; Enabled adds a version per write (random 32-hex ids);
 * Suspended writes "null" again, replacing the previous null version (S3's
 * rules, docs/OBJECTS.md "Versions").
 *
 * Multipart uploads (docs/OBJECTS.md "Multipart"): an upload in progress is
 * a row of s3_uploads, each part a row of s3_upload_parts naming its own
 * blob. Complete does not copy data: the object row names a manifest (the
 * upload's id) whose rows in s3_object_parts list the part blobs in order,
 * and the upload's rows go, all in one transaction. Every function that
 * drops rows naming blobs (overwrite, delete, a part replaced, abort,
 * complete's unlisted parts, expiry) reports those blobs in a meta_blobs
 * list for the caller to delete after the commit, and meta_blob_known
 * answers for all three tables, so the orphan sweep never takes the blob
 * of an upload in progress or of a manifest.
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
#define META_UPLOAD_ID_LEN 32 /* 12 hex of ms (creation order) and 20 random hex */
#define META_HEADERS_MAX 8192 /* stored header lines (x-amz-meta-*, Content-Disposition, ...) */
#define META_VERSION_ID_LEN 32 /* a version id other than "null": 32 lowercase hex */
#define META_CORS_MAX 65536    /* a bucket's stored CORS configuration (XML) */

typedef enum meta_versioning {
	META_VERSIONING_OFF = 0,  /* never enabled: "null" versions only, DELETE removes */
	META_VERSIONING_ENABLED,
	META_VERSIONING_SUSPENDED,
} meta_versioning;

typedef enum meta_acl {
	META_ACL_PRIVATE = 0,
	META_ACL_PUBLIC_READ,     /* anonymous GET/HEAD (object), and List (bucket) */
} meta_acl;

/* A version's replication status (x-amz-replication-status): PENDING until
 * the other region has it, COMPLETED then, FAILED when the other region
 * refused it for good; REPLICA on the copy. NONE: no peer, or written
 * before replication existed. */
typedef enum meta_repl {
	META_REPL_NONE = 0,
	META_REPL_PENDING,
	META_REPL_COMPLETED,
	META_REPL_FAILED,
	META_REPL_REPLICA,
} meta_repl;

/* A stamp: an HLC's text, ':', the region that made the change (at most
 * 31 bytes). Byte order is (HLC, region) order: strcmp compares stamps. */
#define META_STAMP_LEN (HLC_STR_LEN + 1 + 31)

typedef struct meta_bucket {
	char name[META_BUCKET_MAX + 1];
	char owner[64];  /* tenant */
	char region[32]; /* LocationConstraint as created ("" for us-east-1 style) */
	int64_t created_ms;
	meta_versioning versioning;
	meta_acl acl;
	bool has_cors;   /* a CORS configuration is stored (meta_bucket_cors) */
	/* The stamp of each part of the configuration's last change
	 * (meta_stamp_make: "HLC:origin"; "" before schema 4, for a part never
	 * set, and for the files API's bucket, which each region makes): in
	 * both regions the newer stamp of each part wins (meta_replica_bucket),
	 * so changes made at once in the two regions converge, and a change of
	 * one part never undoes a concurrent change of another. */
	char versioning_stamp[META_STAMP_LEN + 1];
	char acl_stamp[META_STAMP_LEN + 1];
	char cors_stamp[META_STAMP_LEN + 1];
} meta_bucket;

typedef struct meta_object {
	char bucket[META_BUCKET_MAX + 1];
	char key[META_KEY_MAX + 1];
	size_t key_len;
	char blob[BLOBSTORE_ID_LEN + 1];
	uint64_t size;
	char etag[40];           /* MD5 hex, or multipart "md5-of-md5s-N"; without quotes */
	char content_type[256];
	char headers[META_HEADERS_MAX]; /* "Name: value\r\n" lines, validated when stored */
	int64_t mtime_ms;
	char sha256[65];
	uint32_t crc32, crc32c;
	char hlc[HLC_STR_LEN + 1];
	char origin[32];         /* the region that took the write */
	char owner[64];          /* the tenant that wrote it */
	char manifest[META_UPLOAD_ID_LEN + 1]; /* multipart: its manifest id ("" and blob set otherwise) */
	uint32_t parts;          /* multipart: how many parts (0: a single blob) */
	char version_id[META_VERSION_ID_LEN + 1]; /* "null" or 32 hex; set by meta_object_put */
	bool latest;             /* the key's current version (read only: kept by the writes) */
	bool delete_marker;      /* a delete marker: no blob, no data */
	meta_acl acl;
	meta_repl repl;          /* set by the writes (read only) */
	int64_t journal_seq;     /* out: the outbox position of a local write (0: not journalled) */
} meta_object;

/* The rule that orders a key's versions, here and in replication: true when
 * version a (its HLC text, hlc.h, and origin region) is newer than b:
 * the greater HLC, and on equal HLCs the greater region name (byte order).
 * Equal pairs are not newer. Pure; the SQL orderings in meta.c (hlc DESC,
 * origin DESC under BINARY collation) are the same order. */
bool meta_version_newer(const char *hlc_a, const char *origin_a, const char *hlc_b, const char *origin_b);

/* Is s a version id a client may name: "null" or 32 lowercase hex? */
bool meta_version_id_valid(const char *s);

/* Blob ids a write dropped from the metadata: the caller deletes them once
 * the transaction has committed (row first, blob second). Zeroed is empty. */
typedef struct meta_blobs {
	size_t count, cap;
	char (*ids)[BLOBSTORE_ID_LEN + 1];
} meta_blobs;
/* Append id ("" is ignored). 0 or ERR_NOMEM (list unaltered). */
int meta_blobs_add(meta_blobs *l, const char *id);
/* Free the list and zero it; no-op on an empty one. */
void meta_blobs_free(meta_blobs *l);

/* Create the tables in the database of conn (a writable connection; a
 * no-op when they exist) and migrate an older objects.db (the multipart
 * columns of s3_objects, PRAGMA user_version 1; versions, ACLs and CORS,
 * user_version 2: existing rows become the "null" version, latest). 0 or
 * ERR_DB (the database unaltered: each migration is one transaction). */
int meta_init(db_conn *db);

int meta_bucket_get(db_conn *db, const char *name, meta_bucket *out);
/* fn per bucket of owner, by name; fn returns 0 to go on. */
int meta_bucket_list(db_conn *db, const char *owner, void (*fn)(void *arg, const meta_bucket *b),
		     void *arg);
/* The stamp of a change made at ts by region origin. */
void meta_stamp_make(char out[META_STAMP_LEN + 1], hlc_ts ts, const char *origin);
/* s is "" or a well-formed stamp; its HLC into *ts (0 when ""). */
bool meta_stamp_valid(const char *s, hlc_ts *ts);

/* 0, or ERR_EXISTS with *out filled with the existing bucket. b's stamps
 * are stored as given. */
int meta_bucket_create(db_conn *db, const meta_bucket *b, meta_bucket *existing);
/* 0, ERR_NOTFOUND, ERR_CONFLICT (objects, versions or delete markers, or
 * multipart uploads in progress). */
int meta_bucket_delete(db_conn *db, const char *name);
/* Set the bucket's versioning (ENABLED or SUSPENDED; never back to OFF, as
 * S3), with the change's stamp. 0 or ERR_NOTFOUND. */
int meta_bucket_set_versioning(db_conn *db, const char *name, meta_versioning v, const char *stamp);
/* Set the bucket's canned ACL, stamped. 0 or ERR_NOTFOUND. */
int meta_bucket_set_acl(db_conn *db, const char *name, meta_acl acl, const char *stamp);
/* Store (xml non-NULL, at most META_CORS_MAX bytes, already validated by
 * the caller) or remove (NULL) the bucket's CORS configuration, stamped. 0
 * or ERR_NOTFOUND (no bucket). */
int meta_bucket_set_cors(db_conn *db, const char *name, const char *xml, size_t len, const char *stamp);
/* The bucket's CORS configuration into out (NUL-terminated, cap bytes).
 * 0, ERR_NOTFOUND (no bucket, or no configuration), ERR_LIMIT (cap). */
int meta_bucket_cors(db_conn *db, const char *name, char *out, size_t cap);

/* The key's current version when it is an object (not a delete marker).
 * 0 or ERR_NOTFOUND. */
int meta_object_get(db_conn *db, const char *bucket, const char *key, size_t key_len, meta_object *out);
/* The key's latest version, a delete marker too. 0 or ERR_NOTFOUND. */
int meta_object_latest(db_conn *db, const char *bucket, const char *key, size_t key_len, meta_object *out);
/* One version by id ("null" or 32 hex). 0 or ERR_NOTFOUND. */
int meta_object_version(db_conn *db, const char *bucket, const char *key, size_t key_len,
			const char *version_id, meta_object *out);
/* The first object (current, not a delete marker) of bucket with a key >
 * after (>= when inclusive; after_len 0 and inclusive: the first one), in
 * byte order. 0 or ERR_NOTFOUND at the end. */
int meta_object_next(db_conn *db, const char *bucket, const char *after, size_t after_len,
		     bool inclusive, meta_object *out);
/* ListObjectVersions' order: keys ascending, each key's versions newest
 * first (delete markers too). version_id NULL: the first version of the
 * first key > key (>= when inclusive); else the version after that one of
 * key, then the next keys (a version_id the key does not have: the next
 * key's). 0 or ERR_NOTFOUND at the end. */
int meta_version_next(db_conn *db, const char *bucket, const char *key, size_t key_len, bool inclusive,
		      const char *version_id, meta_object *out);

typedef enum meta_cond {
	META_COND_NONE = 0,
	META_COND_ABSENT,    /* If-None-Match: * */
	META_COND_ETAG,      /* If-Match: etag */
} meta_cond;

/* Write o as a new version of its key, by the bucket's versioning: OFF and
 * SUSPENDED replace the "null" version (latest or not), ENABLED adds one
 * with a fresh id; o->version_id gets the id. o becomes the latest unless
 * the latest is newer (meta_version_newer: a local write, whose HLC is new,
 * always wins). cond is checked against the current object (a delete
 * marker counts as absent) inside the transaction: ERR_CONFLICT when it
 * does not hold (412), ERR_NOTFOUND when the bucket is gone, or
 * (META_COND_ETAG) the object is. old gets the replaced blob(s): its blob,
 * or every part of its manifest (whose rows go too). On failure old is
 * unaltered (rows too: the caller's transaction rolls back). */
int meta_object_put(db_conn *db, meta_object *o, meta_cond cond, const char *etag, meta_blobs *old);
/* Delete the "null" version of by's key (by: bucket, key, and the delete's
 * hlc and origin) for good (and its manifest); old gets its blob(s); the
 * next newest version becomes the latest. With journalling on, a tombstone
 * (the version, by's HLC) is kept and the delete journalled, by->journal_seq
 * its position. 0 or ERR_NOTFOUND (nothing here: with journalling on the
 * tombstone and the journal row are written all the same, since the other
 * region may hold the version; they stay if the caller's transaction
 * commits). In a bucket never versioned this is "delete the object". */
int meta_object_delete(db_conn *db, meta_object *by, meta_blobs *old);
/* Delete one version (an object or a delete marker) for good, as above.
 * *was_marker: it was a delete marker. 0 or ERR_NOTFOUND. */
int meta_object_delete_version(db_conn *db, meta_object *by, const char *version_id, bool *was_marker,
			       meta_blobs *old);
/*
 * DeleteObject without a version id, by the bucket's versioning: OFF
 * deletes the null version (as meta_object_delete; *marker false, 0 even
 * when there was none); ENABLED adds a delete marker with a fresh id;
 * SUSPENDED replaces the null version with a delete marker "null". The
 * marker is m (the caller fills bucket, key, hlc, origin, owner, mtime;
 * version_id is set here, m->delete_marker true). *marker: one was
 * written. 0, ERR_NOTFOUND (no bucket), ERR_DB, ERR_NOMEM.
 */
int meta_object_remove(db_conn *db, meta_object *m, bool *marker, meta_blobs *old);
/* Set the canned ACL of the key's current object (or of one version).
 * 0 or ERR_NOTFOUND. */
int meta_object_set_acl(db_conn *db, const char *bucket, const char *key, size_t key_len,
			const char *version_id, meta_acl acl);

/* The parts of manifest that overlap [offset, offset + length) of the
 * object, in order: fn(arg, blob, pos, size) for each (pos: where the part
 * starts in the object); fn returns 0 to go on, else that code stops the
 * walk and is returned. 0, ERR_DB. */
int meta_manifest_parts(db_conn *db, const char *manifest, uint64_t offset, uint64_t length,
			int (*fn)(void *arg, const char *blob, uint64_t pos, uint64_t size), void *arg);

/* 1 when a row (object, manifest part, upload part) names this blob, 0
 * not, ERR_DB. */
int meta_blob_known(db_conn *db, const char *blob);

/* --- multipart uploads --- */

typedef struct meta_upload {
	char upload_id[META_UPLOAD_ID_LEN + 1];
	char bucket[META_BUCKET_MAX + 1];
	char key[META_KEY_MAX + 1];
	size_t key_len;
	char content_type[256];
	char headers[META_HEADERS_MAX]; /* stored with the object at Complete */
	char owner[64];
	int64_t created_ms;
} meta_upload;

typedef struct meta_part {
	int number; /* 1..10000 */
	char blob[BLOBSTORE_ID_LEN + 1];
	uint64_t size;
	char etag[33]; /* MD5 hex */
	int64_t mtime_ms;
} meta_part;

/* Record a new upload. 0, ERR_NOTFOUND (the bucket is gone), ERR_LIMIT
 * (max_uploads uploads in progress in this database), ERR_EXISTS (the id
 * is taken: cannot happen with random ids). */
int meta_upload_create(db_conn *db, const meta_upload *u, int max_uploads);
/* 0 or ERR_NOTFOUND. */
int meta_upload_get(db_conn *db, const char *upload_id, meta_upload *out);
/* The first upload of bucket after (key, upload_id) in (key, upload id)
 * order; upload_id "" starts at key itself (its uploads included). 0 or
 * ERR_NOTFOUND at the end. */
int meta_upload_next(db_conn *db, const char *bucket, const char *key, size_t key_len,
		     const char *upload_id, meta_upload *out);
/* How many uploads are in progress. >= 0 or ERR_DB. */
int meta_upload_count(db_conn *db);
/* Record part p of upload_id, replacing a part of the same number (its
 * blob into old). 0, ERR_NOTFOUND (no such upload: completed, aborted,
 * expired; the caller deletes p's blob). */
int meta_part_put(db_conn *db, const char *upload_id, const meta_part *p, meta_blobs *old);
/* The first part of upload_id numbered above after. 0 or ERR_NOTFOUND. */
int meta_part_next(db_conn *db, const char *upload_id, int after, meta_part *out);
/* Drop the upload and its parts (blobs into old). 0 or ERR_NOTFOUND. */
int meta_upload_abort(db_conn *db, const char *upload_id, meta_blobs *old);
/* Abort up to limit uploads created before cutoff_ms, oldest first (blobs
 * into old); *aborted counts them. 0 or ERR_DB / ERR_NOMEM (the caller's
 * transaction rolls back). */
int meta_upload_expire(db_conn *db, int64_t cutoff_ms, int limit, meta_blobs *old, int *aborted);

/* One part as a CompleteMultipartUpload names it. */
typedef struct meta_complete_part {
	int number;
	char etag[80]; /* as sent, quotes removed */
} meta_complete_part;

/*
 * Complete upload_id into the object o. The caller fills o's bucket, key,
 * mtime, hlc and origin; the rest (content type, headers, owner from the
 * upload; size, ETag, manifest, parts here) is filled in. parts (n, strictly
 * ascending: the caller checks InvalidPartOrder) must each name an uploaded
 * part with its ETag; every part but the last at least min_part bytes, the
 * sum at most max_size. In one transaction: the object row replaces any
 * current one (its blobs into old), the manifest rows are written, and the
 * upload's rows go (unlisted parts' blobs into old).
 * 0; ERR_NOTFOUND (no such upload for o's bucket and key, or the bucket is
 * gone); ERR_INVAL (*bad_part: a part unknown or its ETag differs);
 * ERR_CONFLICT (*bad_part under min_part, not the last: EntityTooSmall);
 * ERR_LIMIT (over max_size: EntityTooLarge); ERR_DB, ERR_NOMEM.
 */
int meta_upload_complete(db_conn *db, const char *upload_id, const meta_complete_part *parts, size_t n,
			 uint64_t min_part, uint64_t max_size, meta_object *o, int *bad_part, meta_blobs *old);

/* --- replication (docs/OBJECTS.md "Replication") ---
 *
 * Every local write above is journalled in its own transaction: a row of
 * the outbox names what changed (a version of a key; a bucket's
 * configuration: key and version ""); the shipper (orepl.h) sends its
 * current state to the other region and drops the row once acknowledged.
 * A version removed for good leaves a tombstone with the remove's HLC, so
 * that a late copy of it never comes back. Writes applied from the other
 * region (meta_replica_*) are not journalled: no loops.
 */

/* Journal local writes from now on (a region with a peer) or not. Set once
 * before the first write; process-wide. */
void meta_set_journal(bool on);

typedef struct meta_outbox_entry {
	int64_t seq;
	char bucket[META_BUCKET_MAX + 1];
	char key[META_KEY_MAX + 1];
	size_t key_len;           /* 0: the bucket's configuration */
	char version_id[META_VERSION_ID_LEN + 1];
	uint64_t size;
	int64_t created_ms;
	bool repair;              /* queued by anti-entropy: sent even when it is a replica here */
} meta_outbox_entry;

/* The first outbox row after seq `after`. 0 or ERR_NOTFOUND. */
int meta_outbox_next(db_conn *db, int64_t after, meta_outbox_entry *out);
/* Row e was shipped (status COMPLETED) or refused for good (FAILED): the
 * row goes, and the version's status is set when no other row of it waits.
 * 0 or ERR_DB. */
int meta_outbox_done(db_conn *db, const meta_outbox_entry *e, meta_repl status);
/* 1 when outbox row seq still waits, 0 when it is gone, ERR_DB. */
int meta_outbox_has(db_conn *db, int64_t seq);
/* How many rows wait, their bytes, and the oldest one's time (0 if none). */
int meta_outbox_stats(db_conn *db, int64_t *count, int64_t *bytes, int64_t *oldest_ms);
/* The tombstone of a version. 0 or ERR_NOTFOUND. */
int meta_tombstone_get(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id,
		       char ts[HLC_STR_LEN + 1], char origin[32]);
/* Drop up to limit tombstones older than cutoff_ms; *dropped counts them. */
int meta_tombstone_expire(db_conn *db, int64_t cutoff_ms, int limit, int *dropped);

/* One blob of a replica: a single-blob object has one, a multipart object
 * one per part, in order. */
typedef struct meta_replica_blob {
	char blob[BLOBSTORE_ID_LEN + 1];
	uint64_t size;
} meta_replica_blob;

/*
 * Apply a version received from the other region: o as it is there
 * (version id, HLC, origin, data fields; delete_marker for a marker, with
 * n 0), its blob(s) already in this store. Applied unless a tombstone of
 * that version or a stored version with that id is as new or newer
 * (equal: the same version again, its ACL is refreshed); the newest
 * version (meta_version_newer) becomes the latest. A bucket unknown here is
 * created (owner: o's), so that no acknowledged write is dropped. *applied
 * false: o's blobs are not used (the caller deletes them). Not journalled.
 * 0, ERR_INVAL (n does not fit o), ERR_DB, ERR_NOMEM.
 */
int meta_replica_put(db_conn *db, meta_object *o, const meta_replica_blob *blobs, size_t n, bool *applied,
		     meta_blobs *old);
/* A conditional write of the other region that this region, the records'
 * primary, decides (X-Tandem-Consistency: global): cond checked against the
 * current object here (as meta_object_put), then o applied as by
 * meta_replica_put, in one transaction. 0 (applied), ERR_CONFLICT (the
 * condition fails), ERR_NOTFOUND (If-Match and no object), ERR_AGAIN (o is
 * not newer than the key's latest version, whose HLC goes to latest_hlc:
 * the writer merges it and asks again with a newer one). */
int meta_replica_decide(db_conn *db, meta_object *o, const meta_replica_blob *blobs, size_t n, meta_cond cond,
			const char *etag, char latest_hlc[HLC_STR_LEN + 1], meta_blobs *old);
/* Apply a remove of a version received from the other region: tombstone
 * kept; the version dropped unless the stored one is newer (a PUT of the
 * "null" version after the delete). 0, ERR_DB, ERR_NOMEM. */
int meta_replica_remove(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id,
			const char *ts, const char *origin, bool *applied, meta_blobs *old);
/* Apply a bucket's configuration (created if absent; else each of
 * versioning, ACL and CORS (cors NULL: none) taken only when its stamp in b
 * is newer than the one here: *applied false when none is), or its delete
 * (removed: only when it is empty here, else kept and *applied false). Not
 * journalled. */
int meta_replica_bucket(db_conn *db, const meta_bucket *b, const char *cors, bool removed, bool *applied);

/* --- anti-entropy (orepl.h): the two regions compare digests of key
 * ranges and send each other what the other lacks --- */

typedef struct meta_range_entry {
	bool tombstone;
	char key[META_KEY_MAX + 1];
	size_t key_len;
	char version_id[META_VERSION_ID_LEN + 1];
	char hlc[HLC_STR_LEN + 1];
	char origin[32];
	char etag[40];
	bool delete_marker;
	uint64_t size;
	int acl;
} meta_range_entry;

/* fn for each version, then each tombstone, of bucket with a key in
 * [from, to) (to_end: no upper bound), in (key, version id) byte order; at
 * most max_rows (then ERR_LIMIT). fn returns 0 to go on. */
int meta_range_entries(db_conn *db, const char *bucket, const char *from, size_t from_len, const char *to,
		       size_t to_len, bool to_end, long max_rows, int (*fn)(void *arg, const meta_range_entry *e),
		       void *arg);

typedef struct meta_digest {
	int64_t rows;              /* versions and tombstones in the range (up to max_rows) */
	unsigned char sha256[32];  /* of those rows, in order */
	bool truncated;            /* more than max_rows: rows and hash cover only the first ones */
	char split[META_KEY_MAX + 1]; /* a key near the middle, to divide the range */
	size_t split_len;
} meta_digest;
/* The digest of a range (as meta_range_entries). Equal digests in both
 * regions: the same rows. 0, ERR_DB, ERR_NOMEM, ERR_TLS. */
int meta_digest_range(db_conn *db, const char *bucket, const char *from, size_t from_len, const char *to,
		      size_t to_len, bool to_end, long max_rows, meta_digest *out);
/* The first bucket named after `after` ("" for the first). 0 or ERR_NOTFOUND. */
int meta_bucket_next(db_conn *db, const char *after, meta_bucket *out);
/* Queue a version (or a bucket: key "", version "") to be sent again:
 * anti-entropy found the other region without it. 0 or ERR_DB. */
int meta_outbox_repair(db_conn *db, const char *bucket, const char *key, size_t key_len, const char *version_id);

#endif
