/*
 * blobstore.h - one region's object data on local disk, encrypted at rest:
 * the storage interface under the object store (S3 server, files API,
 * replication), small enough to be replaced later by a distributed store.
 *
 * A blob is an immutable byte string named by a random 128-bit id (32
 * lowercase hex chars). The store knows nothing of buckets, keys or
 * versions: the metadata (SQLite) maps those to blob ids.
 *
 *   put:    blobstore_put_begin -> put_write* -> put_commit | put_abort
 *   get:    blobstore_get_open -> [get_range] -> get_read* -> get_close
 *   other:  blobstore_delete, blobstore_rewrap, blobstore_list,
 *           blobstore_sweep (orphans), blobstore_recover (at start)
 *
 * Guarantees (docs/OBJECTS.md, "Storage and encryption at rest"):
 * - A blob is visible (get, list) only once put_commit has returned 0, and
 *   then it is durable (file and directory fsync'd). A kill -9 at any
 *   instant leaves either no blob or a complete one; leftovers are temp
 *   files that blobstore_recover removes. A blob committed whose id the
 *   caller never recorded (crash between commit and the metadata write) is
 *   an orphan: blobstore_sweep removes it, asking the caller which ids the
 *   metadata knows.
 * - Every byte handed out by get_read belongs to a chunk whose tag verified
 *   (AES-256-GCM, 64 KiB chunks). A damaged, truncated, extended, reordered
 *   or misnamed blob gives ERR_CORRUPT, with one log line naming the blob id.
 * - Memory: a writer or reader holds one 64 KiB chunk (plus its tag),
 *   whatever the blob size.
 *
 * Threads: a blobstore is immutable after blobstore_new (the fault hook is
 * set before use) and may be used from any number of threads at once; each
 * writer or reader handle belongs to one thread at a time. Concurrent
 * get/delete/rewrap of one blob are safe: a reader keeps reading the blob
 * it opened even if it is deleted meanwhile; rewrap and the header read of
 * get_open exclude each other with flock(2).
 *
 * Errors: 0 or a negative ERR_* (core/err.h). I/O failures and corruption
 * are logged here once (with the blob id and errno, never data or keys);
 * callers map the code to their answer without logging it again.
 */
#ifndef TANDEM_OBJECTS_BLOBSTORE_H
#define TANDEM_OBJECTS_BLOBSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/secrets.h"
#include "objects/blobhash.h"

#define BLOBSTORE_ID_LEN 32 /* hex chars, without the NUL */

typedef struct blobstore blobstore;
typedef struct blobstore_writer blobstore_writer;
typedef struct blobstore_reader blobstore_reader;

/* Open (creating root/, root/tmp/ and the 256 fan-out directories under
 * root/data/, mode 0700) the store at root with the KEKs of the secrets
 * [objects] section (copied). 0, or ERR_CONFIG (no [objects] KEK in the
 * secrets, root path too long) / ERR_IO (cannot create the directories)
 * with a message in err; *out is NULL then. */
int blobstore_new(const char *root, const secrets *s, blobstore **out, char *err, size_t errcap);
/* Wipe the KEKs and free; no-op on NULL; resets *s. Every writer and reader
 * must be closed first. */
void blobstore_free(blobstore **s);

/* Remove every temp file left in root/tmp/ by writers that never
 * committed or aborted (a crash); call at start, before any put. 0 or
 * ERR_IO; *removed (may be NULL) counts the files removed. */
int blobstore_recover(blobstore *s, int *removed);

/* Start a new blob: a fresh random id and data key, a temp file. 0 or
 * ERR_IO/ERR_NOMEM/ERR_TLS (nothing left on disk, *out NULL). Its
 * plaintext's checksums are every kind (BLOBHASH_ALL). */
int blobstore_put_begin(blobstore *s, blobstore_writer **out);
/* The same, computing only the checksums in sums (BLOBHASH_*, blobhash.h):
 * the others are zero in put_commit's blob_sums. */
int blobstore_put_begin_sums(blobstore *s, unsigned sums, blobstore_writer **out);
/* The new blob's id (NUL-terminated hex), fixed at begin. */
const char *blobstore_writer_id(const blobstore_writer *w);
/* Append plaintext. 0, or ERR_IO/ERR_TLS, ERR_LIMIT past BLOBFILE_MAX_SIZE
 * (1 TiB; callers enforce their own, smaller limits); after a failure the
 * writer is dead: every later call fails and only put_abort/put_commit
 * (which then fails) remain. */
int blobstore_put_write(blobstore_writer *w, const void *data, size_t len);
/* Seal the last chunk, write the header, fsync, rename into place, fsync
 * the directory: from 0 on the blob is visible and durable, and sums (may
 * be NULL) holds the plaintext's size and checksums. Always consumes the
 * writer (*w reset). On failure (ERR_IO, ERR_TLS, or the writer's earlier
 * error) no blob is visible under the id and the temp file is removed. */
int blobstore_put_commit(blobstore_writer **w, blob_sums *sums);
/* Drop an unfinished blob: temp file removed, nothing visible. No-op on
 * NULL; resets *w. Cannot fail (an unlink error is logged; recover removes
 * the file at the next start). */
void blobstore_put_abort(blobstore_writer **w);

/* Open a blob for reading: the header is read and its key unwrapped (a slot
 * under any KEK of the secrets, the newest generation first). 0, or
 * ERR_INVAL (not an id), ERR_NOTFOUND, ERR_CORRUPT (header, key slots or
 * file size do not check out), ERR_CONFIG (wrapped only under a KEK the
 * secrets file lacks), ERR_IO, ERR_NOMEM; *out NULL then. The range is the
 * whole blob. */
int blobstore_get_open(blobstore *s, const char *id, blobstore_reader **out);
/* Plaintext size of the opened blob (authenticated). */
uint64_t blobstore_reader_size(const blobstore_reader *r);
/* Restrict reading to [offset, offset + length) and move there; only the
 * chunks overlapping it are read and decrypted. 0, or ERR_INVAL when the
 * range does not lie within the blob (reader unchanged). */
int blobstore_get_range(blobstore_reader *r, uint64_t offset, uint64_t length);
/* Copy up to cap bytes of the range into buf; *n = 0 at its end. Every
 * byte given out belongs to a chunk whose tag verified. Whole chunks that
 * fit in cap are read with one preadv (up to 8) and decrypted in buf
 * itself, without a copy; a partial chunk goes through the reader's own
 * chunk buffer. No byte past buf[*n] is written. 0, or ERR_CORRUPT /
 * ERR_IO (nothing of the failing chunk given out, sticky: every later call
 * fails the same way; chunks of a batch before the failing one are given
 * out first, the error comes at the next call). */
int blobstore_get_read(blobstore_reader *r, void *buf, size_t cap, size_t *n);
/* The same, only from the page cache, for an event loop that must not wait
 * for the disk: the chunks are read with preadv2(RWF_NOWAIT); when any of
 * their bytes is not cached, ERR_AGAIN with *n = 0 and the reader
 * unchanged (no sticky error: get_read then reads them from the disk).
 * Otherwise exactly get_read (same checks, same errors, sticky). */
int blobstore_get_read_cached(blobstore_reader *r, void *buf, size_t cap, size_t *n);
/* Close; no-op on NULL; resets *r. */
void blobstore_get_close(blobstore_reader **r);

/* Remove a blob durably (unlink, fsync the directory). 0, ERR_INVAL,
 * ERR_NOTFOUND, ERR_IO (the blob may still be there). */
int blobstore_delete(blobstore *s, const char *id);

/* Re-wrap the blob's data key under the current KEK without touching its
 * data: the new wrapping goes into the other key slot with a higher
 * generation and is fsync'd, then the old slot is zeroed and fsync'd. A
 * kill -9 at any instant leaves the old or the new wrapping valid (or
 * both). *rewrapped (may be NULL) is 1 when a new slot was written, 0 when
 * the blob already was under the current KEK alone. 0, or the errors of
 * get_open, ERR_IO (the blob still opens under the old or the new KEK;
 * call again to finish). Idempotent. */
int blobstore_rewrap(blobstore *s, const char *id, int *rewrapped);

/* One committed blob, as listed. */
typedef struct blobstore_entry {
	char id[BLOBSTORE_ID_LEN + 1];
	uint64_t file_bytes; /* on disk: header, tags and ciphertext */
	int64_t mtime_ms;    /* when it was committed (last rewrap) */
} blobstore_entry;
/* Called per blob: 0 to go on, > 0 to stop (list returns 0), < 0 to stop
 * and make list return that error. */
typedef int (*blobstore_list_fn)(void *arg, const blobstore_entry *e);
/* Every committed blob, in no particular order; names that are not blob
 * ids are skipped. Blobs committed or deleted meanwhile may or may not be
 * listed. 0, ERR_IO, or the callback's error. */
int blobstore_list(blobstore *s, blobstore_list_fn fn, void *arg);

/* Is this blob id known to the metadata? 1 yes, 0 no (an orphan), < 0 an
 * error that stops the sweep. */
typedef int (*blobstore_known_fn)(void *arg, const char *id);
/* The orphan sweep: delete every blob older than cutoff_ms (mtime, ms since
 * the epoch) that known() calls unknown. The cutoff protects blobs being
 * committed now whose metadata is not yet written: pass now minus a grace
 * period longer than any upload (or now, at start, before accepting
 * writes). 0 or the first error (sweep stopped; blobs deleted so far stay
 * deleted); *removed (may be NULL) counts them. */
int blobstore_sweep(blobstore *s, int64_t cutoff_ms, blobstore_known_fn known, void *arg,
		    int *removed);

/*
 * Fault injection (tests): called before every file system operation of
 * the store; a non-zero return is an errno the operation fails with, as if
 * the system call had returned it. The hook may also never return (a test
 * process _exit()ing there is a kill -9 at that instant). Set before the
 * store is shared between threads.
 */
typedef enum blobstore_op {
	BLOBSTORE_OP_OPEN,
	BLOBSTORE_OP_WRITE,
	BLOBSTORE_OP_READ,
	BLOBSTORE_OP_FSYNC,
	BLOBSTORE_OP_RENAME,
	BLOBSTORE_OP_FSYNC_DIR,
	BLOBSTORE_OP_UNLINK,
	BLOBSTORE_OP_LOCK,
} blobstore_op;
typedef int (*blobstore_fault_fn)(void *arg, blobstore_op op);
void blobstore_set_fault(blobstore *s, blobstore_fault_fn fn, void *arg);

#endif
