/*
 * files.c - the files API's access to the object store (files.h): files are
 * objects of FILES_BUCKET under OWNER/FILEID. Blob I/O runs on a small
 * worker pool of its own whose completions come back to the API loop; rows
 * are written by the object store's writer (the one writer of objects.db)
 * with completions queued to the API loop; lookups and lists read
 * objects.db on the API loop through a read-only connection (one indexed
 * lookup, or one bounded page).
 *
 * Invariants, as in s3.c: a row names only a committed blob (blob first,
 * row second); a blob goes only after the row that named it (row first,
 * blob second); a crash in between leaves an orphan blob that the object
 * store's start-up sweep removes. An idempotent retry writes its blob,
 * finds the row of the first attempt in the same transaction that would
 * insert its own, and drops its blob: nothing new stays.
 */
#include "objects/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workers.h"
#include "objects/blobstore.h"
#include "objects/hlc.h"
#include "objects/meta.h"
#include "store/committer.h"

#define FILES_MAGIC 0x66696c65u
#define FILES_THREADS 2
#define FILES_QUEUE 1024
#define FILES_WRITE_STEP (1024 * 1024)

#define HDR_OWNER "x-amz-meta-tandem-owner"
#define HDR_NAME "x-amz-meta-tandem-name"
#define HDR_REQUEST "x-amz-meta-tandem-request"

struct files {
	unsigned magic;
	const config *cfg;
	char region[32];
	blobstore *blobs;   /* the object store's */
	committer *writer;  /* the object store's */
	hlc *clock;         /* the object store's */
	db_conn *reader;    /* objects.db, read-only, API loop only */
	workers *pool;      /* blob I/O; NULL once stopped */
	loop_queue *done_q; /* the writer's completions, to the API loop */
	files_reader *readers; /* open readers (closed at stop) */
};

struct files_reader {
	files *f;
	files_reader *prev, *next;
	blobstore_reader *br;  /* NULL once closed by files_stop */
	char blob[BLOBSTORE_ID_LEN + 1];
	uint64_t offset, length;
	int rc;
	size_t n;
	files_open_fn open_done;
	files_read_fn read_done;
	void *arg;
	char piece[FILES_PIECE];
};

/* ------------------------------------------------------------ ids, hashes */

void files_idempotent_id(const unsigned char secret[32], const char *owner, const char *key,
			 char out[FILES_ID_LEN + 1])
{
	/* owner NUL key: no (owner, key) pair can spell another's input */
	size_t olen = strlen(owner), klen = strlen(key);
	unsigned char msg[FILES_OWNER_MAX + 1 + 256], mac[32];
	if (olen > FILES_OWNER_MAX)
		olen = FILES_OWNER_MAX;
	if (klen > 255)
		klen = 255;
	memcpy(msg, owner, olen);
	msg[olen] = '\0';
	memcpy(msg + olen + 1, key, klen);
	util_hmac_sha256(secret, 32, msg, olen + 1 + klen, mac);
	char hex[65];
	util_hex(mac, 16, hex);
	memcpy(out, hex, FILES_ID_LEN);
	out[FILES_ID_LEN] = '\0';
}

void files_request_hash(const char *content_type, const char *name, const unsigned char sha256[32],
			unsigned char out[32])
{
	unsigned char msg[FILES_TYPE_MAX + FILES_NAME_MAX + 2 + 32];
	size_t tl = strnlen(content_type, FILES_TYPE_MAX - 1), nl = strnlen(name, FILES_NAME_MAX - 1), n = 0;
	memcpy(msg, content_type, tl);
	n += tl;
	msg[n++] = '\0';
	memcpy(msg + n, name, nl);
	n += nl;
	msg[n++] = '\0';
	memcpy(msg + n, sha256, 32);
	n += 32;
	util_sha256(msg, n, out);
}

void files_new_id(char out[FILES_ID_LEN + 1])
{
	unsigned char r[FILES_ID_LEN / 2];
	util_random(r, sizeof r);
	util_hex(r, sizeof r, out);
}

bool files_valid_id(const char *s, size_t len)
{
	if (len != FILES_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

void files_s3_key(const secrets *sec, const char *region, char id[FILES_KEY_ID_LEN + 1],
		  char secret[FILES_SECRET_LEN + 1])
{
	unsigned char root[32], mac[32];
	secrets_derive(sec, "tandem files s3 key v1", root);
	util_hmac_sha256(root, sizeof root, region, strlen(region), mac);
	/* "TF" + 18 of [A-Z2-7] from the first bytes: an id, not a secret */
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	id[0] = 'T';
	id[1] = 'F';
	for (int i = 0; i < FILES_KEY_ID_LEN - 2; i++)
		id[2 + i] = alphabet[mac[i] & 31];
	id[FILES_KEY_ID_LEN] = '\0';
	/* the secret from a second, independent derivation */
	unsigned char s[32];
	util_hmac_sha256(root, sizeof root, mac, sizeof mac, s);
	util_b64url_encode(s, sizeof s, secret);
	OPENSSL_cleanse(root, sizeof root);
	OPENSSL_cleanse(s, sizeof s);
}

int files_init_bucket(db_conn *db, const char *region)
{
	meta_bucket b = {0}, existing;
	snprintf(b.name, sizeof b.name, "%s", FILES_BUCKET);
	snprintf(b.owner, sizeof b.owner, "%s", FILES_TENANT);
	snprintf(b.region, sizeof b.region, "%s", region);
	b.created_ms = util_now_ms();
	int rc = meta_bucket_create(db, &b, &existing);
	if (rc == ERR_EXISTS && strcmp(existing.owner, FILES_TENANT) != 0) {
		/* cannot happen: the bucket is made before the first S3 request */
		log_error("s3: bucket %s belongs to tenant %s, not the files API", FILES_BUCKET, existing.owner);
		return ERR_CONFLICT;
	}
	return rc == ERR_EXISTS ? 0 : rc;
}

/* ------------------------------------------------------ stored metadata */

/* Percent-encode a file name for a header line (bytes outside a safe set). */
static void name_encode(const char *name, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p && o + 4 < cap; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("._-~()", *p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void name_decode(const char *s, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < cap; i++) {
		int h, l;
		if (s[i] == '%' && i + 2 < len && (h = hexval(s[i + 1])) >= 0 && (l = hexval(s[i + 2])) >= 0 &&
		    (h || l)) {
			out[o++] = (char)(h * 16 + l);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
}

/* The value of a stored header line (name case-insensitive); NULL if none. */
static const char *stored_header(const char *headers, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (const char *p = headers; *p;) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			break;
		if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (v < eol && *v == ' ')
				v++;
			*len = (size_t)(eol - v);
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

/* info from a row of FILES_BUCKET (key OWNER/ID). */
static void info_from_row(const meta_object *ob, files_info *out)
{
	memset(out, 0, sizeof *out);
	const char *slash = memchr(ob->key, '/', ob->key_len);
	snprintf(out->id, sizeof out->id, "%.*s", slash ? (int)(ob->key_len - (size_t)(slash + 1 - ob->key)) : 0,
		 slash ? slash + 1 : "");
	out->size = ob->size;
	snprintf(out->sha256, sizeof out->sha256, "%s", ob->sha256);
	snprintf(out->content_type, sizeof out->content_type, "%s", ob->content_type);
	out->created_ms = ob->mtime_ms;
	size_t len;
	const char *v = stored_header(ob->headers, HDR_NAME, &len);
	if (v)
		name_decode(v, len, out->name, sizeof out->name);
	v = stored_header(ob->headers, HDR_REQUEST, &len);
	if (v && len == 64) {
		out->has_request_hash = true;
		for (size_t i = 0; i < 32; i++) {
			int h = hexval(v[2 * i]), l = hexval(v[2 * i + 1]);
			if (h < 0 || l < 0) {
				out->has_request_hash = false;
				break;
			}
			out->request_hash[i] = (unsigned char)(h * 16 + l);
		}
	}
}

static size_t file_key(const char *owner, const char *id, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", owner, id);
	return n < 0 ? 0 : (size_t)n;
}

/* ------------------------------------------------------------ lifecycle */

int files_new(objects *o, struct event_base *base, const config *cfg, const char *region, files **out,
	      char *err, size_t errcap)
{
	*out = NULL;
	files *f = calloc(1, sizeof *f);
	if (!f) {
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	f->magic = FILES_MAGIC;
	f->cfg = cfg;
	snprintf(f->region, sizeof f->region, "%s", region);
	f->blobs = objects_blobs(o);
	f->writer = objects_writer(o);
	f->clock = objects_clock(o);
	f->reader = db_open(objects_db_path(o), true, err, errcap);
	if (!f->reader) {
		free(f);
		return ERR_DB;
	}
	f->pool = workers_new(base, FILES_THREADS, FILES_QUEUE);
	f->done_q = loop_queue_new(base);
	if (!f->pool || !f->done_q) {
		snprintf(err, errcap, "out of memory");
		files_stop(f);
		files_free(&f);
		return ERR_NOMEM;
	}
	*out = f;
	return 0;
}

void files_stop(files *f)
{
	if (!f)
		return;
	workers_free(&f->pool);
	/* the blob store goes with the object store: close what still reads
	 * it (a GET cut by the shutdown timeout); the handles stay for their
	 * owners, whose next read fails */
	for (files_reader *r = f->readers; r; r = r->next)
		blobstore_get_close(&r->br);
}

void files_free(files **fp)
{
	files *f = *fp;
	if (!f)
		return;
	files_stop(f);
	loop_queue_free(&f->done_q); /* runs the writer's last completions */
	for (files_reader *r = f->readers; r; r = r->next)
		r->f = NULL;
	db_close(&f->reader);
	f->magic = 0;
	free(f);
	*fp = NULL;
}

/* ------------------------------------------------------- blob deletion */

typedef struct delete_blob_job {
	files *f;
	char blob[BLOBSTORE_ID_LEN + 1];
	int rc;
} delete_blob_job;

static void delete_blob_work(void *arg)
{
	delete_blob_job *j = arg;
	j->rc = blobstore_delete(j->f->blobs, j->blob);
}

static void delete_blob_done(void *arg)
{
	delete_blob_job *j = arg;
	if (j->rc != 0 && j->rc != ERR_NOTFOUND)
		log_warn("files: blob %s not deleted (%s); the start-up sweep removes it", j->blob, err_str(j->rc));
	free(j);
}

/* After the row is gone: remove the blob in the pool. A failure leaves an
 * orphan for the start-up sweep (logged). */
static void delete_blob_async(files *f, const char *blob)
{
	if (!blob[0])
		return;
	delete_blob_job *j = calloc(1, sizeof *j);
	if (j) {
		j->f = f;
		snprintf(j->blob, sizeof j->blob, "%s", blob);
	}
	if (!j || !f->pool || workers_submit(f->pool, WORKERS_BULK, delete_blob_work, delete_blob_done, j) != 0) {
		log_warn("files: blob %s left for the start-up sweep (busy or stopping)", blob);
		free(j);
	}
}

/* ------------------------------------------------------------------ put */

typedef struct put_job {
	files *f;
	char owner[FILES_OWNER_MAX + 1];
	char id[FILES_ID_LEN + 1];
	bool idempotent;
	const char *data;
	size_t len;
	char content_type[FILES_TYPE_MAX];
	char name[FILES_NAME_MAX];
	files_put_fn done;
	void *arg;
	/* the blob (pool) */
	int rc;
	char blob[BLOBSTORE_ID_LEN + 1];
	blob_sums sums;
	/* the row (writer) */
	meta_object row, existing;
	unsigned char request_hash[32];
	bool replayed;
	meta_blobs old;
} put_job;

static void put_work(void *arg)
{
	put_job *j = arg;
	blobstore_writer *w = NULL;
	/* MD5: the object's ETag; SHA-256: the file's id-level checksum (its
	 * answer, the Idempotency-Key hash) and replication's check */
	j->rc = blobstore_put_begin_sums(j->f->blobs, BLOBHASH_MD5 | BLOBHASH_SHA256, &w);
	if (j->rc != 0)
		return;
	snprintf(j->blob, sizeof j->blob, "%s", blobstore_writer_id(w));
	for (size_t off = 0; off < j->len && j->rc == 0; off += FILES_WRITE_STEP) {
		size_t n = j->len - off < FILES_WRITE_STEP ? j->len - off : FILES_WRITE_STEP;
		j->rc = blobstore_put_write(w, j->data + off, n);
	}
	if (j->rc != 0) {
		blobstore_put_abort(&w);
		j->blob[0] = '\0';
		return;
	}
	j->rc = blobstore_put_commit(&w, &j->sums);
	if (j->rc != 0)
		j->blob[0] = '\0';
}

static int put_exec(db_conn *db, void *arg)
{
	put_job *j = arg;
	int rc = meta_object_get(db, FILES_BUCKET, j->row.key, j->row.key_len, &j->existing);
	if (rc == 0) {
		if (!j->idempotent)
			return ERR_EXISTS;
		files_info cur;
		info_from_row(&j->existing, &cur);
		if (!cur.has_request_hash || !util_equal_ct(cur.request_hash, j->request_hash, 32))
			return ERR_CONFLICT;
		j->replayed = true;
		return 0;
	}
	if (rc != ERR_NOTFOUND)
		return rc;
	return meta_object_put(db, &j->row, META_COND_ABSENT, NULL, &j->old);
}

static void put_finish(put_job *j, int rc)
{
	files_info info;
	memset(&info, 0, sizeof info);
	if (rc == 0)
		info_from_row(j->replayed ? &j->existing : &j->row, &info);
	j->done(j->arg, rc, rc == 0 ? &info : NULL, j->replayed);
	meta_blobs_free(&j->old);
	free(j);
}

static void put_committed(void *arg, int rc, uint64_t seq)
{
	put_job *j = arg;
	if (rc != 0 || j->replayed)
		delete_blob_async(j->f, j->blob); /* no row names it */
	for (size_t i = 0; i < j->old.count; i++)
		delete_blob_async(j->f, j->old.ids[i]);
	if (rc == ERR_CONFLICT && !j->idempotent)
		rc = ERR_EXISTS;
	put_finish(j, rc);
}

static void put_blob_done(void *arg)
{
	put_job *j = arg;
	files *f = j->f;
	if (j->rc != 0) {
		put_finish(j, j->rc);
		return;
	}
	meta_object *o = &j->row;
	snprintf(o->bucket, sizeof o->bucket, "%s", FILES_BUCKET);
	o->key_len = file_key(j->owner, j->id, o->key, sizeof o->key);
	snprintf(o->blob, sizeof o->blob, "%s", j->blob);
	o->size = j->sums.size;
	util_hex(j->sums.md5, 16, o->etag);
	snprintf(o->content_type, sizeof o->content_type, "%s", j->content_type);
	util_hex(j->sums.sha256, 32, o->sha256);
	o->crc32 = j->sums.crc32;
	o->crc32c = j->sums.crc32c;
	o->mtime_ms = util_now_ms();
	hlc_encode(hlc_now(f->clock), o->hlc);
	snprintf(o->origin, sizeof o->origin, "%s", f->region);
	snprintf(o->owner, sizeof o->owner, "%s", FILES_TENANT);
	files_request_hash(j->content_type, j->name, j->sums.sha256, j->request_hash);
	char name[3 * FILES_NAME_MAX + 1], hash[65] = "";
	name_encode(j->name, name, sizeof name);
	if (j->idempotent) /* without a key there is nothing to compare a retry with */
		util_hex(j->request_hash, 32, hash);
	snprintf(o->headers, sizeof o->headers, HDR_OWNER ": %s\r\n%s%s%s%s%s%s", j->owner,
		 name[0] ? HDR_NAME ": " : "", name, name[0] ? "\r\n" : "", hash[0] ? HDR_REQUEST ": " : "", hash,
		 hash[0] ? "\r\n" : "");
	if (committer_submit_to(f->writer, f->done_q, put_exec, put_committed, j) != 0) {
		delete_blob_async(f, j->blob);
		put_finish(j, ERR_AGAIN);
	}
}

int files_put(files *f, const char *owner, const char *id, bool idempotent, const char *data, size_t len,
	      const char *content_type, const char *name, files_put_fn done, void *arg)
{
	if (!f->pool)
		return ERR_AGAIN;
	if (strlen(owner) > FILES_OWNER_MAX || !files_valid_id(id, strlen(id)))
		return ERR_INVAL;
	put_job *j = calloc(1, sizeof *j);
	if (!j)
		return ERR_NOMEM;
	j->f = f;
	snprintf(j->owner, sizeof j->owner, "%s", owner);
	snprintf(j->id, sizeof j->id, "%s", id);
	j->idempotent = idempotent;
	j->data = data;
	j->len = len;
	snprintf(j->content_type, sizeof j->content_type, "%s", content_type);
	snprintf(j->name, sizeof j->name, "%s", name ? name : "");
	j->done = done;
	j->arg = arg;
	int rc = workers_submit(f->pool, WORKERS_BULK, put_work, put_blob_done, j);
	if (rc != 0)
		free(j);
	return rc;
}

/* ---------------------------------------------------------- stat, list */

int files_stat(files *f, const char *owner, const char *id, files_info *out)
{
	char key[FILES_OWNER_MAX + FILES_ID_LEN + 2];
	size_t klen = file_key(owner, id, key, sizeof key);
	meta_object *ob = malloc(sizeof *ob); /* ~10 KiB: not on the loop's stack */
	if (!ob)
		return ERR_NOMEM;
	int rc = meta_object_get(f->reader, FILES_BUCKET, key, klen, ob);
	if (rc == 0 && ob->parts > 0)
		rc = ERR_UNSUPPORTED; /* a multipart object: not a file the API wrote */
	if (rc == 0)
		info_from_row(ob, out);
	free(ob);
	return rc;
}

int files_list(files *f, const char *owner, int64_t before_ms, const char *before_id, int limit,
	       void (*fn)(void *arg, const files_info *info), void *arg, bool *more)
{
	/* the owner's key range [OWNER/, OWNER0) ('0' follows '/'), newest
	 * first; a page reads limit + 1 rows of the range after sorting it:
	 * docs/OBJECTS.md "Files API" says what that costs */
	static const char sql[] =
		"SELECT key, size, sha256, content_type, mtime_ms, headers FROM s3_objects"
		" WHERE bucket = ?1 AND key > ?2 AND key < ?3 AND parts = 0"
		" AND (?4 IS NULL OR mtime_ms < ?4 OR (mtime_ms = ?4 AND key < ?5))"
		" ORDER BY mtime_ms DESC, key DESC LIMIT ?6";
	*more = false;
	char lo[FILES_OWNER_MAX + 2], hi[FILES_OWNER_MAX + 2], cursor[FILES_OWNER_MAX + FILES_ID_LEN + 2];
	snprintf(lo, sizeof lo, "%s/", owner);
	snprintf(hi, sizeof hi, "%s0", owner);
	sqlite3_stmt *st = db_stmt(f->reader, sql);
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, FILES_BUCKET, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, lo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, hi, -1, SQLITE_STATIC);
	if (before_id) {
		file_key(owner, before_id, cursor, sizeof cursor);
		sqlite3_bind_int64(st, 4, before_ms);
		sqlite3_bind_text(st, 5, cursor, -1, SQLITE_STATIC);
	} else {
		sqlite3_bind_null(st, 4);
		sqlite3_bind_null(st, 5);
	}
	sqlite3_bind_int(st, 6, limit + 1);
	meta_object *ob = malloc(sizeof *ob);
	int rc = ob ? 0 : ERR_NOMEM, n = 0, step;
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n++ == limit) {
			*more = true;
			break;
		}
		memset(ob, 0, sizeof *ob);
		const char *k = (const char *)sqlite3_column_text(st, 0);
		snprintf(ob->key, sizeof ob->key, "%s", k ? k : "");
		ob->key_len = strlen(ob->key);
		ob->size = (uint64_t)sqlite3_column_int64(st, 1);
		const char *v = (const char *)sqlite3_column_text(st, 2);
		snprintf(ob->sha256, sizeof ob->sha256, "%s", v ? v : "");
		v = (const char *)sqlite3_column_text(st, 3);
		snprintf(ob->content_type, sizeof ob->content_type, "%s", v ? v : "");
		ob->mtime_ms = sqlite3_column_int64(st, 4);
		v = (const char *)sqlite3_column_text(st, 5);
		snprintf(ob->headers, sizeof ob->headers, "%s", v ? v : "");
		files_info info;
		info_from_row(ob, &info);
		fn(arg, &info);
	}
	if (rc == 0 && !*more && step != SQLITE_DONE) {
		log_error("files: list of a user's files failed: %s", sqlite3_errmsg(db_handle(f->reader)));
		rc = ERR_DB;
	}
	sqlite3_reset(st);
	free(ob);
	return rc;
}

/* --------------------------------------------------------------- delete */

typedef struct del_job {
	files *f;
	meta_object by; /* the key, and the delete's HLC and origin (its tombstone) */
	meta_blobs old;
	files_delete_fn done;
	void *arg;
} del_job;

static int del_exec(db_conn *db, void *arg)
{
	del_job *j = arg;
	return meta_object_delete(db, &j->by, &j->old);
}

static void del_committed(void *arg, int rc, uint64_t seq)
{
	del_job *j = arg;
	if (rc == 0)
		for (size_t i = 0; i < j->old.count; i++)
			delete_blob_async(j->f, j->old.ids[i]);
	j->done(j->arg, rc);
	meta_blobs_free(&j->old);
	free(j);
}

int files_delete(files *f, const char *owner, const char *id, files_delete_fn done, void *arg)
{
	del_job *j = calloc(1, sizeof *j);
	if (!j)
		return ERR_NOMEM;
	j->f = f;
	snprintf(j->by.bucket, sizeof j->by.bucket, "%s", FILES_BUCKET);
	j->by.key_len = file_key(owner, id, j->by.key, sizeof j->by.key);
	hlc_encode(hlc_now(f->clock), j->by.hlc);
	snprintf(j->by.origin, sizeof j->by.origin, "%s", f->region);
	j->done = done;
	j->arg = arg;
	int rc = committer_submit_to(f->writer, f->done_q, del_exec, del_committed, j);
	if (rc != 0)
		free(j);
	return rc;
}

/* ----------------------------------------------------------------- read */

static void reader_unlink(files_reader *r)
{
	if (!r->f)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		r->f->readers = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void open_work(void *arg)
{
	files_reader *r = arg;
	r->rc = blobstore_get_open(r->f->blobs, r->blob, &r->br);
	if (r->rc == 0)
		r->rc = blobstore_get_range(r->br, r->offset, r->length);
}

static void open_done(void *arg)
{
	files_reader *r = arg;
	if (r->rc != 0) {
		files_open_fn done = r->open_done;
		void *a = r->arg;
		int rc = r->rc;
		files_reader_close(&r);
		done(a, rc, NULL);
		return;
	}
	r->open_done(r->arg, 0, r);
}

int files_open(files *f, const char *owner, const char *id, uint64_t offset, uint64_t length,
	       files_open_fn done, void *arg)
{
	if (!f->pool)
		return ERR_AGAIN;
	char key[FILES_OWNER_MAX + FILES_ID_LEN + 2];
	size_t klen = file_key(owner, id, key, sizeof key);
	meta_object *ob = malloc(sizeof *ob);
	if (!ob)
		return ERR_NOMEM;
	int rc = meta_object_get(f->reader, FILES_BUCKET, key, klen, ob);
	files_reader *r = rc == 0 ? calloc(1, sizeof *r) : NULL;
	if (rc == 0 && !r)
		rc = ERR_NOMEM;
	if (rc != 0) {
		free(ob);
		return rc;
	}
	r->f = f;
	snprintf(r->blob, sizeof r->blob, "%s", ob->blob);
	free(ob);
	r->offset = offset;
	r->length = length;
	r->open_done = done;
	r->arg = arg;
	r->next = f->readers;
	if (f->readers)
		f->readers->prev = r;
	f->readers = r;
	rc = workers_submit(f->pool, WORKERS_URGENT, open_work, open_done, r);
	if (rc != 0)
		files_reader_close(&r);
	return rc;
}

static void read_work(void *arg)
{
	files_reader *r = arg;
	r->n = 0;
	if (!r->br) {
		r->rc = ERR_AGAIN;
		return;
	}
	while (r->n < sizeof r->piece) {
		size_t got = 0;
		r->rc = blobstore_get_read(r->br, r->piece + r->n, sizeof r->piece - r->n, &got);
		if (r->rc != 0 || got == 0)
			break;
		r->n += got;
	}
}

static void read_done(void *arg)
{
	files_reader *r = arg;
	r->read_done(r->arg, r->rc, r->piece, r->rc == 0 ? r->n : 0);
}

int files_read(files_reader *r, files_read_fn done, void *arg)
{
	if (!r->f || !r->f->pool || !r->br)
		return ERR_AGAIN;
	r->read_done = done;
	r->arg = arg;
	return workers_submit(r->f->pool, WORKERS_URGENT, read_work, read_done, r);
}

void files_reader_close(files_reader **rp)
{
	files_reader *r = *rp;
	if (!r)
		return;
	reader_unlink(r);
	blobstore_get_close(&r->br);
	free(r);
	*rp = NULL;
}
