/*
 * files.h - the mobile files API's view of the region's object store: put,
 * open/read, delete, look up and list one user's files, from the API
 * thread, without ever doing blob I/O there or waiting on the S3 thread.
 *
 * A file is an object of the internal bucket FILES_BUCKET (created at the
 * object store's start, owned by the tenant FILES_TENANT, which no S3 key
 * of the secrets file can name: tenant names have no ':'), under the key
 * OWNER/FILEID. The owner, the original file name and the idempotency
 * request hash go into the object's stored headers (x-amz-meta-tandem-*),
 * so a file is an ordinary object and replicates with the others (issue
 * 10, section 3) with nothing of its own. Design: docs/OBJECTS.md "Files
 * API".
 *
 *   API thread                files' worker pool      objects' writer thread
 *   files_put  ------------->  blob put + fsync
 *              <-- (loop) ---  sums
 *              row ------------------------------------> committer (objects.db)
 *   done()    <-- loop_queue ---------------------------- committed
 *   files_open ------------->  blob open (header)
 *   files_read ------------->  one piece (<= FILES_PIECE)  (as the socket drains)
 *   files_delete: row (committer), then the blob (pool)
 *   files_stat, files_list: one indexed read of objects.db on the API thread
 *
 * Every callback runs on the API loop, exactly once per accepted call
 * (return 0); a call refused (ERR_AGAIN: the pool or the writer is full or
 * stopping; ERR_NOMEM) never calls back. Memory: a put holds no copy of
 * the body (the caller keeps it alive until done), a reader one piece.
 *
 * Stop order (the region's shutdown): files_stop (the pool: no more blob
 * I/O; completions due run), objects_stop (the writer: its completions are
 * queued to the API loop), files_free (runs them, frees). A blob whose
 * delete could not run any more is an orphan the next start sweeps.
 */
#ifndef TANDEM_OBJECTS_FILES_H
#define TANDEM_OBJECTS_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "core/secrets.h"
#include "objects/objects.h"
#include "store/db.h"

#define FILES_BUCKET "tandem-files"
#define FILES_TENANT "tandem:files"   /* ':' is no s3keys tenant character */
#define FILES_ID_LEN 32               /* lowercase hex */
#define FILES_OWNER_MAX 40
#define FILES_NAME_MAX 256
#define FILES_TYPE_MAX 256
#define FILES_PIECE (64 * 1024)       /* one read of a GET */
#define FILES_KEY_ID_LEN 20           /* the internal S3 access key id */
#define FILES_SECRET_LEN 43           /* its secret: base64url of 32 bytes */

typedef struct files files;
typedef struct files_reader files_reader;

typedef struct files_info {
	char id[FILES_ID_LEN + 1];
	uint64_t size;
	char sha256[65];
	char content_type[FILES_TYPE_MAX];
	char name[FILES_NAME_MAX];        /* "" when none was given */
	int64_t created_ms;
	unsigned char request_hash[32];   /* idempotent uploads; zero otherwise */
	bool has_request_hash;
} files_info;

/* Create the bucket (a no-op when it exists) on the object store's
 * writable connection, before it serves: 0 or ERR_DB. (Called by
 * objects_start.) */
int files_init_bucket(db_conn *db, const char *region);

/* The region's internal S3 key pair, derived from the secrets file
 * (HMAC-SHA256 of the region name): the same in every process of the
 * region, never stored, never logged. Cannot fail. */
void files_s3_key(const secrets *sec, const char *region, char id[FILES_KEY_ID_LEN + 1],
		  char secret[FILES_SECRET_LEN + 1]);

/* A files handle on the API loop base for the store o (which must outlive
 * it: see the stop order). 0, or ERR_NOMEM / ERR_DB with err set. */
int files_new(objects *o, struct event_base *base, const config *cfg, const char *region, files **out,
	      char *err, size_t errcap);
/* Stop the pool (joins its threads; completions due run now). Idempotent. */
void files_stop(files *f);
/* Run what the writer queued, free; no-op on NULL; resets *f. */
void files_free(files **f);

/* The id an Idempotency-Key gives: hex of HMAC(region-independent secret,
 * owner NUL key), the first FILES_ID_LEN chars. Cannot fail. */
void files_idempotent_id(const unsigned char secret[32], const char *owner, const char *key,
			 char out[FILES_ID_LEN + 1]);
/* The request hash of an upload (its content type, name and data's
 * SHA-256): what a retry under the same key must repeat. Cannot fail. */
void files_request_hash(const char *content_type, const char *name, const unsigned char sha256[32],
			unsigned char out[32]);
/* A fresh random id. */
void files_new_id(char out[FILES_ID_LEN + 1]);
/* Is s (len bytes) a file id? */
bool files_valid_id(const char *s, size_t len);

/*
 * Store data (len bytes, kept alive by the caller until done) as owner's
 * file id. idempotent: id came from an Idempotency-Key; an existing file
 * with the same request hash is the answer (*replayed, the new blob
 * dropped: nothing new stored), one with another hash ERR_CONFLICT.
 * done(arg, rc, info, replayed): rc 0; ERR_CONFLICT (idempotency key reused
 * with another request); ERR_EXISTS (a random id taken: cannot happen);
 * ERR_NOTFOUND (the bucket is gone); ERR_IO / ERR_TLS / ERR_DB / ERR_AGAIN
 * (nothing stored).
 */
typedef void (*files_put_fn)(void *arg, int rc, const files_info *info, bool replayed);
int files_put(files *f, const char *owner, const char *id, bool idempotent, const char *data, size_t len,
	      const char *content_type, const char *name, files_put_fn done, void *arg);

/* owner's file id, one indexed read (API thread). 0, ERR_NOTFOUND,
 * ERR_UNSUPPORTED (an object the files API did not write as one blob),
 * ERR_DB. */
int files_stat(files *f, const char *owner, const char *id, files_info *out);

/* Open owner's file id for reading [offset, offset + length) (within its
 * size as files_stat saw it). done(arg, rc, reader): 0 with a reader the
 * caller closes; ERR_NOTFOUND (deleted or replaced meanwhile), ERR_CORRUPT,
 * ERR_IO, ERR_INVAL (the range no longer fits). */
typedef void (*files_open_fn)(void *arg, int rc, files_reader *r);
int files_open(files *f, const char *owner, const char *id, uint64_t offset, uint64_t length,
	       files_open_fn done, void *arg);
/* Read the next piece (at most FILES_PIECE bytes). done(arg, rc, data, n):
 * n 0 at the end of the range; rc ERR_CORRUPT / ERR_IO (sticky). data is
 * valid until the next files_read or close. One read at a time. */
typedef void (*files_read_fn)(void *arg, int rc, const char *data, size_t n);
int files_read(files_reader *r, files_read_fn done, void *arg);
/* Close; no-op on NULL; resets *r. Not while a read is in flight. */
void files_reader_close(files_reader **r);

/* Delete owner's file id. done(arg, rc): 0, ERR_NOTFOUND, ERR_DB/ERR_AGAIN. */
typedef void (*files_delete_fn)(void *arg, int rc);
int files_delete(files *f, const char *owner, const char *id, files_delete_fn done, void *arg);

/* owner's files, newest first (created_ms, then id, descending), after the
 * cursor (before_ms, before_id; before_id NULL: from the newest), at most
 * limit: fn per file. 0 or ERR_DB. *more says whether more follow. */
int files_list(files *f, const char *owner, int64_t before_ms, const char *before_id, int limit,
	       void (*fn)(void *arg, const files_info *info), void *arg, bool *more);

#endif
