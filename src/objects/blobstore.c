/*
 * blobstore.c - blobs on local disk, encrypted at rest; see blobstore.h for
 * the contract and blobfile.h for the file format.
 *
 * Layout under the root directory:
 *
 *   root/tmp/<id>.tmp     a blob being written (removed by recover)
 *   root/data/<ab>/<id>   committed blobs; <ab> = the id's first two hex
 *                         chars, 256 directories made when the store opens
 *
 * Why fan out: one directory holding every blob would make each lookup,
 * rename and unlink contend on one directory lock (every PUT and DELETE of
 * the region takes it) and each directory fsync touch one ever-growing
 * directory; random ids spread blobs evenly over 256 directories, so ten
 * million blobs are ~40,000 entries each, which ext4/xfs hashed directories
 * handle well. The directories exist from the start so that a commit never
 * creates one: otherwise a concurrent commit could rename into a directory
 * whose own entry is not yet durable.
 *
 * A put:            a get:                 a rewrap:
 *   open tmp/X.tmp    open data/ab/X          open data/ab/X rw, flock EX
 *   write chunks      flock SH, read head,    read head, unwrap (old KEK)
 *   write head          unlock                write other slot (gen+1, new
 *   fsync             unwrap the data key       KEK), fsync
 *   rename -> data/   check the file size     zero the old slot, fsync
 *   fsync data/ab     read + verify chunks
 *
 * kill -9 before the rename leaves only tmp/X.tmp (recover removes it);
 * after it, a complete, fsync'd blob. A rewrap stopped anywhere leaves the
 * old slot or the new one valid: each slot is written whole and carries
 * its own tag, and the reader takes the newest slot that authenticates.
 */
#include "objects/blobstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "objects/blobfile.h"

#define BLOBSTORE_MAGIC 0x424c4f42u /* "BLOB" */
#define FANOUT 256
#define HEAD_BYTES BLOBFILE_DATA_OFFSET
#define SEALED_CHUNK (BLOBFILE_CHUNK + BLOBFILE_TAG)
#define BATCH_CHUNKS 8 /* whole chunks read by one preadv (512 KiB) */
/* the longest suffix appended to root: "/data/ab/" + id, "/tmp/" + id + ".tmp" */
#define ROOT_MAX (PATH_MAX - 64)

struct blobstore {
	unsigned magic;
	char root[ROOT_MAX];
	secrets_key keks[SECRETS_MAX_KEYS];
	int kek_count;
	int kek_current;
	blobstore_fault_fn fault;
	void *fault_arg;
};

struct blobstore_writer {
	blobstore *store;
	unsigned char id[BLOBFILE_ID_BYTES];
	char hex[BLOBSTORE_ID_LEN + 1];
	char tmp_path[PATH_MAX];
	int fd;
	unsigned char head[HEAD_BYTES]; /* header, slot 0, slot 1 */
	unsigned char data_key[BLOBFILE_KEY_BYTES];
	blobfile_cipher *cipher;
	blobhash *hash;
	unsigned char *chunk; /* SEALED_CHUNK bytes: plaintext, sealed in place */
	size_t chunk_len;     /* plaintext bytes waiting in chunk */
	uint64_t chunk_index; /* of the chunk being filled */
	uint64_t size;
	int err; /* sticky: the first failure */
};

struct blobstore_reader {
	blobstore *store;
	char hex[BLOBSTORE_ID_LEN + 1];
	int fd;
	blobfile_header hdr;
	blobfile_cipher *cipher;
	unsigned char *chunk; /* SEALED_CHUNK bytes: read, opened in place */
	size_t chunk_used;    /* the most bytes of `chunk` ever written: what close wipes */
	uint64_t loaded;      /* index of the chunk in `chunk`, UINT64_MAX: none */
	size_t loaded_len;    /* its plaintext bytes */
	uint64_t pos, end;
	int err; /* sticky */
	bool no_nowait; /* the file system refuses RWF_NOWAIT: get_read_cached always ERR_AGAIN */
};

/* --- file system operations, each behind the fault hook --------------- */

static int fault(blobstore *s, blobstore_op op)
{
	if (!s->fault)
		return 0;
	int e = s->fault(s->fault_arg, op);
	if (e != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

static int fs_open(blobstore *s, const char *path, int flags, mode_t mode)
{
	if (fault(s, BLOBSTORE_OP_OPEN) != 0)
		return -1;
	int fd;
	do
		fd = open(path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	return fd;
}

static int fs_pwrite(blobstore *s, int fd, const void *data, size_t len, uint64_t off)
{
	const unsigned char *p = data;
	while (len > 0) {
		if (fault(s, BLOBSTORE_OP_WRITE) != 0)
			return -1;
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read up to len bytes at off; *got < len only at the end of the file. */
static int fs_pread(blobstore *s, int fd, void *data, size_t len, uint64_t off, size_t *got)
{
	unsigned char *p = data;
	*got = 0;
	while (*got < len) {
		if (fault(s, BLOBSTORE_OP_READ) != 0)
			return -1;
		ssize_t n = pread(fd, p + *got, len - *got, (off_t)(off + *got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

static int fs_fsync(blobstore *s, int fd)
{
	if (fault(s, BLOBSTORE_OP_FSYNC) != 0)
		return -1;
	return fsync(fd);
}

static int fs_fsync_dir(blobstore *s, const char *path)
{
	if (fault(s, BLOBSTORE_OP_FSYNC_DIR) != 0)
		return -1;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static int fs_rename(blobstore *s, const char *from, const char *to)
{
	if (fault(s, BLOBSTORE_OP_RENAME) != 0)
		return -1;
	/* never replace a blob: ids are random, a clash means a broken RNG */
	int rc = renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
	if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) /* no RENAME_NOREPLACE here */
		rc = rename(from, to);
	return rc;
}

static int fs_unlink(blobstore *s, const char *path)
{
	if (fault(s, BLOBSTORE_OP_UNLINK) != 0)
		return -1;
	return unlink(path);
}

static int fs_unlinkat(blobstore *s, int dirfd, const char *name)
{
	if (fault(s, BLOBSTORE_OP_UNLINK) != 0)
		return -1;
	return unlinkat(dirfd, name, 0);
}

static int fs_lock(blobstore *s, int fd, int how)
{
	if (fault(s, BLOBSTORE_OP_LOCK) != 0)
		return -1;
	int rc;
	do
		rc = flock(fd, how);
	while (rc != 0 && errno == EINTR);
	return rc;
}

/* --- names ------------------------------------------------------------ */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 32 lowercase hex chars exactly; 0 or ERR_INVAL. */
static int id_parse(const char *hex, unsigned char out[BLOBFILE_ID_BYTES])
{
	if (!hex)
		return ERR_INVAL;
	for (unsigned i = 0; i < BLOBFILE_ID_BYTES; i++) {
		if (!hex[2 * i] || !hex[2 * i + 1])
			return ERR_INVAL;
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return ERR_INVAL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return hex[BLOBSTORE_ID_LEN] == '\0' ? 0 : ERR_INVAL;
}

static void blob_dir(const blobstore *s, const char *hex, char out[PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/data/%.2s", s->root, hex);
}

static void blob_path(const blobstore *s, const char *hex, char out[PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/data/%.2s/%s", s->root, hex, hex);
}

/* --- store ------------------------------------------------------------ */

/* mkdir that tolerates an existing directory; *made set when it created. */
static int make_dir(const char *path, int *made)
{
	if (mkdir(path, 0700) == 0) {
		*made = 1;
		return 0;
	}
	return errno == EEXIST ? 0 : -1;
}

int blobstore_new(const char *root, const secrets *sec, blobstore **out, char *err, size_t errcap)
{
	*out = NULL;
	if (sec->kek_current < 0 || sec->kek_count == 0) {
		snprintf(err, errcap,
			 "the secrets file has no [objects] kek_id and kek.ID: the object store "
			 "needs a key-encryption key (docs/OBJECTS.md)");
		return ERR_CONFIG;
	}
	if (strlen(root) == 0 || strlen(root) >= ROOT_MAX) {
		snprintf(err, errcap, "object store directory name is empty or too long");
		return ERR_CONFIG;
	}
	blobstore *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	s->magic = BLOBSTORE_MAGIC;
	snprintf(s->root, sizeof s->root, "%s", root);
	memcpy(s->keks, sec->keks, sizeof s->keks);
	s->kek_count = sec->kek_count;
	s->kek_current = sec->kek_current;

	char path[PATH_MAX];
	int made_top = 0, made_fan = 0;
	if (util_mkdirs(root, 0700) != 0)
		goto fail_io;
	snprintf(path, sizeof path, "%s/tmp", root);
	if (make_dir(path, &made_top) != 0)
		goto fail_io;
	snprintf(path, sizeof path, "%s/data", root);
	if (make_dir(path, &made_top) != 0)
		goto fail_io;
	for (int i = 0; i < FANOUT; i++) {
		snprintf(path, sizeof path, "%s/data/%02x", root, i);
		if (make_dir(path, &made_fan) != 0)
			goto fail_io;
	}
	/* the new directories' entries must be durable before any blob is
	 * renamed into them */
	snprintf(path, sizeof path, "%s/data", root);
	if (made_fan && fs_fsync_dir(s, path) != 0)
		goto fail_io;
	if (made_top && fs_fsync_dir(s, root) != 0)
		goto fail_io;
	*out = s;
	return 0;
fail_io:
	snprintf(err, errcap, "%s: cannot create the object store directories: %s", path,
		 strerror(errno));
	blobstore_free(&s);
	return ERR_IO;
}

void blobstore_free(blobstore **s)
{
	if (!s || !*s)
		return;
	if ((*s)->magic != BLOBSTORE_MAGIC)
		abort(); /* cannot happen: a freed or foreign pointer */
	OPENSSL_cleanse(*s, sizeof **s);
	free(*s);
	*s = NULL;
}

void blobstore_set_fault(blobstore *s, blobstore_fault_fn fn, void *arg)
{
	s->fault = fn;
	s->fault_arg = arg;
}

int blobstore_recover(blobstore *s, int *removed)
{
	char dir[PATH_MAX];
	int count = 0, rc = 0;
	if (removed)
		*removed = 0;
	snprintf(dir, sizeof dir, "%s/tmp", s->root);
	DIR *d = opendir(dir);
	if (!d) {
		log_error("blobstore: cannot open %s: %s", dir, strerror(errno));
		return ERR_IO;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fs_unlinkat(s, dirfd(d), e->d_name) != 0) {
			log_error("blobstore: cannot remove the temp file %s/%s: %s", dir, e->d_name,
				  strerror(errno));
			rc = ERR_IO;
			continue;
		}
		count++;
	}
	closedir(d);
	if (count > 0 && fs_fsync_dir(s, dir) != 0) {
		log_error("blobstore: cannot fsync %s: %s", dir, strerror(errno));
		rc = ERR_IO;
	}
	if (count > 0)
		log_info("blobstore: removed %d unfinished blob(s) left by a crash", count);
	if (removed)
		*removed = count;
	return rc;
}

/* --- put -------------------------------------------------------------- */

static void writer_free(blobstore_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	blobfile_cipher_free(&w->cipher);
	blobhash_free(&w->hash);
	if (w->chunk) {
		OPENSSL_cleanse(w->chunk, SEALED_CHUNK);
		free(w->chunk);
	}
	OPENSSL_cleanse(w, sizeof *w);
	free(w);
}

/* Remove the temp file (best effort: recover removes what is left). */
static void writer_unlink_tmp(blobstore_writer *w)
{
	if (w->tmp_path[0] && fs_unlink(w->store, w->tmp_path) != 0 && errno != ENOENT)
		log_warn("blobstore: cannot remove the temp file of blob %s: %s", w->hex,
			 strerror(errno));
	w->tmp_path[0] = '\0';
}

static int writer_fail(blobstore_writer *w, int rc, const char *what)
{
	if (rc == ERR_IO)
		log_error("blobstore: blob %s: %s: %s", w->hex, what, strerror(errno));
	else
		log_error("blobstore: blob %s: %s: %s", w->hex, what, err_str(rc));
	if (!w->err)
		w->err = rc;
	return rc;
}

int blobstore_put_begin(blobstore *s, blobstore_writer **out)
{
	return blobstore_put_begin_sums(s, BLOBHASH_ALL, out);
}

int blobstore_put_begin_sums(blobstore *s, unsigned sums, blobstore_writer **out)
{
	*out = NULL;
	blobstore_writer *w = calloc(1, sizeof *w);
	if (!w)
		return ERR_NOMEM;
	w->store = s;
	w->fd = -1;
	util_random(w->id, sizeof w->id);
	util_hex(w->id, sizeof w->id, w->hex);
	blobfile_header h = {.chunk_size = BLOBFILE_CHUNK, .size = 0};
	util_random(h.nonce_prefix, sizeof h.nonce_prefix);
	blobfile_header_encode(&h, w->head);
	util_random(w->data_key, sizeof w->data_key);
	w->cipher = blobfile_cipher_new(w->data_key, w->head, w->id);
	w->hash = blobhash_new_for(sums);
	w->chunk = malloc(SEALED_CHUNK);
	if (!w->cipher || !w->hash || !w->chunk) {
		writer_free(w);
		return ERR_NOMEM;
	}
	snprintf(w->tmp_path, sizeof w->tmp_path, "%s/tmp/%s.tmp", s->root, w->hex);
	w->fd = fs_open(s, w->tmp_path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (w->fd < 0) {
		w->tmp_path[0] = '\0'; /* not ours to remove */
		writer_fail(w, ERR_IO, "cannot create its temp file");
		writer_free(w);
		return ERR_IO;
	}
	*out = w;
	return 0;
}

const char *blobstore_writer_id(const blobstore_writer *w)
{
	return w->hex;
}

/* Seal the buffered plaintext as the next chunk and write it. */
static int writer_flush(blobstore_writer *w, int last)
{
	int rc = blobfile_chunk_seal(w->cipher, w->chunk_index, last, w->chunk, w->chunk_len,
				     w->chunk);
	if (rc != 0)
		return writer_fail(w, rc, "cannot seal a chunk");
	uint64_t off = BLOBFILE_DATA_OFFSET + w->chunk_index * SEALED_CHUNK;
	if (fs_pwrite(w->store, w->fd, w->chunk, w->chunk_len + BLOBFILE_TAG, off) != 0)
		return writer_fail(w, ERR_IO, "cannot write");
	w->chunk_index++;
	w->chunk_len = 0;
	return 0;
}

int blobstore_put_write(blobstore_writer *w, const void *data, size_t len)
{
	if (w->err)
		return w->err;
	if (len > BLOBFILE_MAX_SIZE - w->size)
		return writer_fail(w, ERR_LIMIT, "too large");
	int rc = blobhash_update(w->hash, data, len);
	if (rc != 0)
		return writer_fail(w, rc, "cannot checksum");
	const unsigned char *p = data;
	w->size += len;
	while (len > 0) {
		/* a full chunk is sealed only once more data arrives: until then
		 * it may be the last one, whose flag goes into its tag */
		if (w->chunk_len == BLOBFILE_CHUNK && (rc = writer_flush(w, 0)) != 0)
			return rc;
		size_t n = BLOBFILE_CHUNK - w->chunk_len;
		if (n > len)
			n = len;
		memcpy(w->chunk + w->chunk_len, p, n);
		w->chunk_len += n;
		p += n;
		len -= n;
	}
	return 0;
}

int blobstore_put_commit(blobstore_writer **wp, blob_sums *sums)
{
	blobstore_writer *w = *wp;
	*wp = NULL;
	blobstore *s = w->store;
	char dir[PATH_MAX], path[PATH_MAX];
	int rc = w->err;
	if (rc != 0)
		goto fail;
	if ((rc = writer_flush(w, 1)) != 0)
		goto fail;
	blobfile_header h;
	if (blobfile_header_decode(w->head, &h) != 0)
		abort(); /* cannot happen: encoded by put_begin */
	h.size = w->size;
	blobfile_header_encode(&h, w->head);
	const secrets_key *kek = &s->keks[s->kek_current];
	rc = blobfile_slot_seal(w->head, w->id, 1, kek->id, kek->key, w->data_key,
				w->head + BLOBFILE_SLOT_OFFSET(0));
	if (rc != 0) {
		writer_fail(w, rc, "cannot wrap its key");
		goto fail;
	}
	blob_sums local;
	if ((rc = blobhash_final(w->hash, sums ? sums : &local)) != 0) {
		writer_fail(w, rc, "cannot checksum");
		goto fail;
	}
	if (fs_pwrite(s, w->fd, w->head, sizeof w->head, 0) != 0) {
		rc = writer_fail(w, ERR_IO, "cannot write its header");
		goto fail;
	}
	if (fs_fsync(s, w->fd) != 0) {
		rc = writer_fail(w, ERR_IO, "cannot fsync");
		goto fail;
	}
	int fd = w->fd;
	w->fd = -1;
	if (close(fd) != 0) {
		rc = writer_fail(w, ERR_IO, "cannot close");
		goto fail;
	}
	blob_path(s, w->hex, path);
	if (fs_rename(s, w->tmp_path, path) != 0) {
		rc = writer_fail(w, ERR_IO, "cannot rename into place");
		goto fail;
	}
	w->tmp_path[0] = '\0';
	blob_dir(s, w->hex, dir);
	if (fs_fsync_dir(s, dir) != 0) {
		/* visible but maybe not durable: take it back, so that a blob
		 * exists only when commit said so */
		rc = writer_fail(w, ERR_IO, "cannot fsync its directory");
		if (fs_unlink(s, path) != 0)
			log_error("blobstore: cannot remove blob %s after a failed commit (the "
				  "orphan sweep will): %s", w->hex, strerror(errno));
		goto fail;
	}
	writer_free(w);
	return 0;
fail:
	if (sums)
		memset(sums, 0, sizeof *sums);
	writer_unlink_tmp(w);
	writer_free(w);
	return rc;
}

void blobstore_put_abort(blobstore_writer **wp)
{
	if (!wp || !*wp)
		return;
	blobstore_writer *w = *wp;
	*wp = NULL;
	writer_unlink_tmp(w);
	writer_free(w);
}

/* --- the head: header and key slots ------------------------------------ */

typedef struct head_state {
	blobfile_header hdr;
	int slot;           /* the slot whose key is used */
	uint64_t generation;
	int kek;            /* index into store->keks */
	int other_used;     /* the other slot is not empty */
	int newer_unknown;  /* a newer slot names a KEK this store lacks */
} head_state;

static int blob_corrupt(const char *hex, const char *what)
{
	log_error("blobstore: blob %s is corrupt: %s", hex, what);
	return ERR_CORRUPT;
}

static int find_kek(const blobstore *s, const char *id)
{
	for (int i = 0; i < s->kek_count; i++)
		if (strcmp(s->keks[i].id, id) == 0)
			return i;
	return -1;
}

/* Check the header and unwrap the data key from the newest slot that
 * authenticates. 0, ERR_CORRUPT, ERR_CONFIG (only KEKs we lack), ERR_TLS;
 * logged. key is wiped on failure. */
static int head_unwrap(blobstore *s, const char *hex, const unsigned char id[BLOBFILE_ID_BYTES],
		       const unsigned char head[HEAD_BYTES], head_state *st,
		       unsigned char key[BLOBFILE_KEY_BYTES])
{
	memset(st, 0, sizeof *st);
	st->slot = -1;
	if (blobfile_header_decode(head, &st->hdr) != 0)
		return blob_corrupt(hex, "bad header");
	uint64_t gen[BLOBFILE_SLOTS];
	char kek_id[BLOBFILE_SLOTS][BLOBFILE_KEK_ID_MAX];
	int state[BLOBFILE_SLOTS];
	for (int i = 0; i < BLOBFILE_SLOTS; i++)
		state[i] = blobfile_slot_peek(head + BLOBFILE_SLOT_OFFSET(i), &gen[i], kek_id[i]);
	int order[BLOBFILE_SLOTS] = {0, 1};
	if (state[1] == 0 && (state[0] != 0 || gen[1] > gen[0])) {
		order[0] = 1;
		order[1] = 0;
	}
	const char *missing = NULL;
	for (int k = 0; k < BLOBFILE_SLOTS; k++) {
		int i = order[k];
		if (state[i] != 0)
			continue;
		int kek = find_kek(s, kek_id[i]);
		if (kek < 0) {
			if (!missing)
				missing = kek_id[i];
			continue;
		}
		int rc = blobfile_slot_open(head, id, head + BLOBFILE_SLOT_OFFSET(i), s->keks[kek].key,
					    key);
		if (rc == ERR_CORRUPT)
			continue;
		if (rc != 0) {
			log_error("blobstore: blob %s: cannot unwrap its key: %s", hex, err_str(rc));
			return rc;
		}
		st->slot = i;
		st->generation = gen[i];
		st->kek = kek;
		st->other_used = state[1 - i] != ERR_NOTFOUND;
		st->newer_unknown = missing != NULL;
		return 0;
	}
	OPENSSL_cleanse(key, BLOBFILE_KEY_BYTES);
	if (missing) {
		log_error("blobstore: blob %s: its key is wrapped under KEK '%s', which the secrets "
			  "file's [objects] section lacks", hex, missing);
		return ERR_CONFIG;
	}
	return blob_corrupt(hex, "no key slot authenticates");
}

/* Read the head of an open blob under a shared or exclusive lock (so that
 * a rewrap is never seen half-way). 0, ERR_IO (logged), ERR_CORRUPT (a
 * file shorter than its head). */
static int head_read(blobstore *s, int fd, const char *hex, int lock,
		     unsigned char head[HEAD_BYTES])
{
	size_t got = 0;
	if (fs_lock(s, fd, lock) != 0) {
		log_error("blobstore: blob %s: cannot lock: %s", hex, strerror(errno));
		return ERR_IO;
	}
	int rc = fs_pread(s, fd, head, HEAD_BYTES, 0, &got);
	int saved = errno;
	if (lock == LOCK_SH)
		flock(fd, LOCK_UN); /* cannot fail on a lock we hold; close drops it anyway */
	if (rc != 0) {
		log_error("blobstore: blob %s: cannot read: %s", hex, strerror(saved));
		return ERR_IO;
	}
	if (got < HEAD_BYTES)
		return blob_corrupt(hex, "shorter than its header");
	return 0;
}

/* Open data/ab/<id>: fd, or a negative ERR_* (ERR_NOTFOUND unlogged). */
static int blob_open_fd(blobstore *s, const char *hex, int flags)
{
	char path[PATH_MAX];
	blob_path(s, hex, path);
	int fd = fs_open(s, path, flags, 0);
	if (fd >= 0)
		return fd;
	if (errno == ENOENT)
		return ERR_NOTFOUND;
	log_error("blobstore: blob %s: cannot open: %s", hex, strerror(errno));
	return ERR_IO;
}

/* --- get -------------------------------------------------------------- */

static int reader_fail(blobstore_reader *r, int rc)
{
	if (!r->err)
		r->err = rc;
	return r->err;
}

/* The plaintext bytes of chunk idx. */
static size_t chunk_plain(const blobstore_reader *r, uint64_t idx)
{
	uint64_t count = blobfile_chunk_count(r->hdr.size);
	return idx == count - 1 ? (size_t)(r->hdr.size - idx * BLOBFILE_CHUNK) : BLOBFILE_CHUNK;
}

/* Cached-only read of r (blobstore_get_read_cached): preadv2 with
 * RWF_NOWAIT, which never waits for the disk. The whole range in the page
 * cache: 0; else ERR_AGAIN (a short read counts as not cached: what came
 * is dropped); -1 with errno on other failures. A file system without
 * RWF_NOWAIT for buffered reads (tmpfs: EOPNOTSUPP) is not asked again for
 * this reader. */
static int reader_pread_cached(blobstore_reader *r, const struct iovec *iov, int cnt, size_t total,
			       uint64_t off)
{
	if (r->no_nowait)
		return ERR_AGAIN;
	ssize_t got;
	do {
		got = fault(r->store, BLOBSTORE_OP_READ) != 0 ? -1
							       : preadv2(r->fd, iov, cnt, (off_t)off, RWF_NOWAIT);
	} while (got < 0 && errno == EINTR);
	if (got < 0 && errno == EOPNOTSUPP)
		r->no_nowait = true;
	if (got < 0)
		return errno == EAGAIN || errno == EOPNOTSUPP ? ERR_AGAIN : -1;
	return (size_t)got < total ? ERR_AGAIN : 0;
}

/* Read and open chunk idx into r->chunk; cached: only from the page cache
 * (ERR_AGAIN, nothing else changed, when it is not all there). */
static int reader_load(blobstore_reader *r, uint64_t idx, bool cached)
{
	uint64_t count = blobfile_chunk_count(r->hdr.size);
	int last = idx == count - 1;
	size_t plain = last ? (size_t)(r->hdr.size - idx * BLOBFILE_CHUNK) : BLOBFILE_CHUNK;
	size_t got = 0;
	unsigned char *buf = r->chunk;
	r->loaded = UINT64_MAX;
	if (plain + BLOBFILE_TAG > r->chunk_used)
		r->chunk_used = plain + BLOBFILE_TAG;
	if (cached) {
		struct iovec iov = {.iov_base = buf, .iov_len = plain + BLOBFILE_TAG};
		int rc = reader_pread_cached(r, &iov, 1, iov.iov_len, BLOBFILE_DATA_OFFSET + idx * SEALED_CHUNK);
		if (rc == ERR_AGAIN)
			return rc;
		got = rc == 0 ? iov.iov_len : 0;
		if (rc != 0) {
			log_error("blobstore: blob %s: cannot read: %s", r->hex, strerror(errno));
			return reader_fail(r, ERR_IO);
		}
	} else if (fs_pread(r->store, r->fd, buf, plain + BLOBFILE_TAG,
			    BLOBFILE_DATA_OFFSET + idx * SEALED_CHUNK, &got) != 0) {
		log_error("blobstore: blob %s: cannot read: %s", r->hex, strerror(errno));
		return reader_fail(r, ERR_IO);
	}
	if (got < plain + BLOBFILE_TAG)
		return reader_fail(r, blob_corrupt(r->hex, "truncated"));
	int rc = blobfile_chunk_open(r->cipher, idx, last, buf, plain + BLOBFILE_TAG, buf);
	if (rc == ERR_CORRUPT) {
		char what[64];
		snprintf(what, sizeof what, "chunk %llu fails authentication", (unsigned long long)idx);
		return reader_fail(r, blob_corrupt(r->hex, what));
	}
	if (rc != 0) {
		log_error("blobstore: blob %s: cannot decrypt: %s", r->hex, err_str(rc));
		return reader_fail(r, rc);
	}
	r->loaded = idx;
	r->loaded_len = plain;
	return 0;
}

/* Read whole chunks idx .. idx + k - 1 with one preadv, their ciphertext
 * straight into buf (contiguous), their tags apart, and open each in
 * place: one system call and no copy for up to BATCH_CHUNKS chunks. 0 with
 * *n the plaintext bytes of the chunks that verified; the first that does
 * not makes the reader's error sticky (ERR_CORRUPT, logged) and ends the
 * batch there: its plaintext is wiped, the chunks after it are left
 * undecrypted. The error is returned when no chunk came out. */
static int reader_batch(blobstore_reader *r, uint64_t idx, unsigned k, unsigned char *buf, size_t *n,
			bool cached)
{
	struct iovec iov[2 * BATCH_CHUNKS];
	unsigned char tags[BATCH_CHUNKS][BLOBFILE_TAG];
	size_t total = 0, plain[BATCH_CHUNKS], off = 0;
	uint64_t count = blobfile_chunk_count(r->hdr.size);
	*n = 0;
	for (unsigned i = 0; i < k; i++) {
		plain[i] = chunk_plain(r, idx + i);
		iov[2 * i] = (struct iovec){.iov_base = buf + off, .iov_len = plain[i]};
		iov[2 * i + 1] = (struct iovec){.iov_base = tags[i], .iov_len = BLOBFILE_TAG};
		off += plain[i];
		total += plain[i] + BLOBFILE_TAG;
	}
	ssize_t got;
	if (cached) {
		int rc = reader_pread_cached(r, iov, (int)(2 * k), total,
					     BLOBFILE_DATA_OFFSET + idx * SEALED_CHUNK);
		if (rc == ERR_AGAIN)
			return rc; /* nothing decrypted, the reader unchanged */
		got = rc == 0 ? (ssize_t)total : -1;
	} else {
		do {
			got = fault(r->store, BLOBSTORE_OP_READ) != 0
				      ? -1
				      : preadv(r->fd, iov, (int)(2 * k),
					       (off_t)(BLOBFILE_DATA_OFFSET + idx * SEALED_CHUNK));
		} while (got < 0 && errno == EINTR);
	}
	if (got < 0) {
		log_error("blobstore: blob %s: cannot read: %s", r->hex, strerror(errno));
		return reader_fail(r, ERR_IO);
	}
	if ((size_t)got < total) /* the size was checked at open: cut meanwhile */
		return reader_fail(r, blob_corrupt(r->hex, "truncated"));
	off = 0;
	for (unsigned i = 0; i < k; i++) {
		int last = idx + i == count - 1;
		int rc = blobfile_chunk_open_tag(r->cipher, idx + i, last, buf + off, plain[i], tags[i], buf + off);
		if (rc != 0) {
			if (rc == ERR_CORRUPT) {
				char what[64];
				snprintf(what, sizeof what, "chunk %llu fails authentication",
					 (unsigned long long)(idx + i));
				rc = blob_corrupt(r->hex, what);
			} else {
				log_error("blobstore: blob %s: cannot decrypt: %s", r->hex, err_str(rc));
			}
			reader_fail(r, rc);
			break;
		}
		off += plain[i];
	}
	*n = off;
	r->pos += off;
	return off ? 0 : r->err;
}

int blobstore_get_open(blobstore *s, const char *id, blobstore_reader **out)
{
	*out = NULL;
	unsigned char bin[BLOBFILE_ID_BYTES], head[HEAD_BYTES], key[BLOBFILE_KEY_BYTES];
	if (id_parse(id, bin) != 0)
		return ERR_INVAL;
	blobstore_reader *r = calloc(1, sizeof *r);
	if (!r)
		return ERR_NOMEM;
	r->store = s;
	r->loaded = UINT64_MAX;
	memcpy(r->hex, id, BLOBSTORE_ID_LEN + 1);
	r->fd = blob_open_fd(s, id, O_RDONLY);
	int rc = r->fd < 0 ? r->fd : 0;
	if (rc != 0)
		goto fail;
	if ((rc = head_read(s, r->fd, id, LOCK_SH, head)) != 0)
		goto fail;
	head_state st;
	if ((rc = head_unwrap(s, id, bin, head, &st, key)) != 0)
		goto fail;
	r->hdr = st.hdr;
	struct stat sb;
	if (fstat(r->fd, &sb) != 0) {
		log_error("blobstore: blob %s: cannot stat: %s", id, strerror(errno));
		rc = ERR_IO;
		goto fail;
	}
	/* the authenticated size fixes the file's: a truncated or extended
	 * file is refused before any chunk is read */
	if ((uint64_t)sb.st_size != blobfile_file_size(r->hdr.size)) {
		rc = blob_corrupt(id, (uint64_t)sb.st_size < blobfile_file_size(r->hdr.size)
					      ? "truncated" : "extended");
		goto fail;
	}
	r->cipher = blobfile_cipher_new(key, head, bin);
	r->chunk = malloc(SEALED_CHUNK);
	if (!r->cipher || !r->chunk) {
		rc = ERR_NOMEM;
		goto fail;
	}
	r->pos = 0;
	r->end = r->hdr.size;
	/* the empty blob's only chunk is checked here: no read would */
	if (r->hdr.size == 0 && (rc = reader_load(r, 0, false)) != 0)
		goto fail;
	OPENSSL_cleanse(key, sizeof key);
	*out = r;
	return 0;
fail:
	OPENSSL_cleanse(key, sizeof key);
	blobstore_get_close(&r);
	return rc;
}

uint64_t blobstore_reader_size(const blobstore_reader *r)
{
	return r->hdr.size;
}

int blobstore_get_range(blobstore_reader *r, uint64_t offset, uint64_t length)
{
	if (offset > r->hdr.size || length > r->hdr.size - offset)
		return ERR_INVAL;
	r->pos = offset;
	r->end = offset + length;
	return 0;
}

static int reader_read(blobstore_reader *r, void *buf, size_t cap, size_t *n, bool cached)
{
	*n = 0;
	if (r->err)
		return r->err;
	if (r->pos >= r->end || cap == 0)
		return 0;
	uint64_t idx = r->pos / BLOBFILE_CHUNK;
	if (r->loaded != idx && r->pos == idx * BLOBFILE_CHUNK) {
		/* whole chunks wanted: straight into buf, several at once */
		unsigned k = 0;
		size_t take = 0;
		while (k < BATCH_CHUNKS && r->pos + take < r->end) {
			size_t p = chunk_plain(r, idx + k);
			if (take + p > cap || r->pos + take + p > r->end)
				break;
			take += p;
			k++;
		}
		if (k > 0)
			return reader_batch(r, idx, k, buf, n, cached);
	}
	if (r->loaded != idx) {
		int rc = reader_load(r, idx, cached);
		if (rc != 0)
			return rc;
	}
	uint64_t in_chunk = r->pos - idx * BLOBFILE_CHUNK;
	uint64_t take = r->loaded_len - in_chunk;
	if (take > r->end - r->pos)
		take = r->end - r->pos;
	if (take > cap)
		take = cap;
	memcpy(buf, r->chunk + in_chunk, (size_t)take);
	r->pos += take;
	*n = (size_t)take;
	return 0;
}

int blobstore_get_read(blobstore_reader *r, void *buf, size_t cap, size_t *n)
{
	return reader_read(r, buf, cap, n, false);
}

int blobstore_get_read_cached(blobstore_reader *r, void *buf, size_t cap, size_t *n)
{
	return reader_read(r, buf, cap, n, true);
}

void blobstore_get_close(blobstore_reader **rp)
{
	if (!rp || !*rp)
		return;
	blobstore_reader *r = *rp;
	*rp = NULL;
	if (r->fd >= 0)
		close(r->fd);
	blobfile_cipher_free(&r->cipher);
	if (r->chunk) {
		/* only the bytes ever written: wiping all 64 KiB after a 4 KiB
		 * GET faulted in 15 untouched pages each time */
		OPENSSL_cleanse(r->chunk, r->chunk_used);
		free(r->chunk);
	}
	free(r);
}

/* --- delete, rewrap ---------------------------------------------------- */

int blobstore_delete(blobstore *s, const char *id)
{
	unsigned char bin[BLOBFILE_ID_BYTES];
	char dir[PATH_MAX], path[PATH_MAX];
	if (id_parse(id, bin) != 0)
		return ERR_INVAL;
	blob_path(s, id, path);
	if (fs_unlink(s, path) != 0) {
		if (errno == ENOENT)
			return ERR_NOTFOUND;
		log_error("blobstore: blob %s: cannot delete: %s", id, strerror(errno));
		return ERR_IO;
	}
	blob_dir(s, id, dir);
	if (fs_fsync_dir(s, dir) != 0) {
		log_error("blobstore: blob %s: deleted, but cannot fsync its directory: %s", id,
			  strerror(errno));
		return ERR_IO;
	}
	return 0;
}

int blobstore_rewrap(blobstore *s, const char *id, int *rewrapped)
{
	unsigned char bin[BLOBFILE_ID_BYTES], head[HEAD_BYTES], key[BLOBFILE_KEY_BYTES];
	unsigned char slot[BLOBFILE_SLOT_BYTES];
	if (rewrapped)
		*rewrapped = 0;
	if (id_parse(id, bin) != 0)
		return ERR_INVAL;
	int fd = blob_open_fd(s, id, O_RDWR);
	if (fd < 0)
		return fd;
	head_state st;
	int rc = head_read(s, fd, id, LOCK_EX, head); /* held until close */
	if (rc != 0)
		goto done;
	if ((rc = head_unwrap(s, id, bin, head, &st, key)) != 0)
		goto done;
	if (st.newer_unknown) {
		/* a newer wrapping under a KEK this process does not know: its
		 * secrets file is older than the one that rewrapped; refuse
		 * rather than overwrite that slot */
		log_error("blobstore: blob %s: a newer key slot names a KEK missing from the "
			  "secrets file; not re-wrapping", id);
		rc = ERR_CONFIG;
		goto done;
	}
	int old = st.slot;
	if (st.kek != s->kek_current) {
		const secrets_key *kek = &s->keks[s->kek_current];
		rc = blobfile_slot_seal(head, bin, st.generation + 1, kek->id, kek->key, key, slot);
		if (rc != 0) {
			log_error("blobstore: blob %s: cannot wrap its key: %s", id, err_str(rc));
			goto done;
		}
		/* 1. the new wrapping, durable, next to the old one */
		if (fs_pwrite(s, fd, slot, sizeof slot, BLOBFILE_SLOT_OFFSET(1 - old)) != 0 ||
		    fs_fsync(s, fd) != 0) {
			log_error("blobstore: blob %s: cannot write its new key slot: %s", id,
				  strerror(errno));
			rc = ERR_IO;
			goto done;
		}
		if (rewrapped)
			*rewrapped = 1;
	} else if (st.other_used) {
		old = 1 - st.slot; /* an earlier rewrap stopped before step 2 */
	} else {
		rc = 0; /* under the current KEK alone already */
		goto done;
	}
	/* 2. the old wrapping gone, so that a retired KEK unwraps nothing */
	memset(slot, 0, sizeof slot);
	if (fs_pwrite(s, fd, slot, sizeof slot, BLOBFILE_SLOT_OFFSET(old)) != 0 ||
	    fs_fsync(s, fd) != 0) {
		log_error("blobstore: blob %s: cannot clear its old key slot: %s", id,
			  strerror(errno));
		rc = ERR_IO;
		goto done;
	}
	rc = 0;
done:
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(slot, sizeof slot);
	close(fd);
	return rc;
}

/* --- list, sweep -------------------------------------------------------- */

static int is_blob_name(const char *name, const char *dir)
{
	unsigned char bin[BLOBFILE_ID_BYTES];
	return id_parse(name, bin) == 0 && name[0] == dir[0] && name[1] == dir[1];
}

int blobstore_list(blobstore *s, blobstore_list_fn fn, void *arg)
{
	char dir[PATH_MAX];
	for (int i = 0; i < FANOUT; i++) {
		char sub[3];
		snprintf(sub, sizeof sub, "%02x", i);
		snprintf(dir, sizeof dir, "%s/data/%s", s->root, sub);
		DIR *d = opendir(dir);
		if (!d) {
			log_error("blobstore: cannot list %s: %s", dir, strerror(errno));
			return ERR_IO;
		}
		struct dirent *e;
		int rc = 0;
		while (rc == 0 && (e = readdir(d)) != NULL) {
			if (!is_blob_name(e->d_name, sub))
				continue;
			struct stat sb;
			if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
			    !S_ISREG(sb.st_mode))
				continue; /* deleted meanwhile, or not a blob */
			blobstore_entry ent;
			memcpy(ent.id, e->d_name, sizeof ent.id);
			ent.file_bytes = (uint64_t)sb.st_size;
			ent.mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
			rc = fn(arg, &ent);
		}
		closedir(d);
		if (rc > 0)
			return 0;
		if (rc < 0)
			return rc;
	}
	return 0;
}

typedef struct sweep_ctx {
	blobstore *store;
	int64_t cutoff_ms;
	blobstore_known_fn known;
	void *arg;
	int removed;
} sweep_ctx;

static int sweep_one(void *arg, const blobstore_entry *e)
{
	sweep_ctx *c = arg;
	if (e->mtime_ms >= c->cutoff_ms)
		return 0; /* maybe committed just now, its metadata on the way */
	int known = c->known(c->arg, e->id);
	if (known < 0)
		return known;
	if (known > 0)
		return 0;
	int rc = blobstore_delete(c->store, e->id);
	if (rc == ERR_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	c->removed++;
	return 0;
}

int blobstore_sweep(blobstore *s, int64_t cutoff_ms, blobstore_known_fn known, void *arg,
		    int *removed)
{
	sweep_ctx c = {.store = s, .cutoff_ms = cutoff_ms, .known = known, .arg = arg};
	int rc = blobstore_list(s, sweep_one, &c);
	if (c.removed > 0)
		log_info("blobstore: the orphan sweep removed %d blob(s)", c.removed);
	if (removed)
		*removed = c.removed;
	return rc;
}
