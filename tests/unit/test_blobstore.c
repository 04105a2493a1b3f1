/*
 * test_blobstore.c - the encrypted blob store (src/objects/blobstore.c,
 * blobfile.c, blobhash.c) and the [objects] section of the secrets file.
 *
 * Round trips at the chunk edges, byte ranges (and that a range reads only
 * its chunks), every tampering case refused (flipped bytes in data, tag,
 * header, key slot; truncation; extension; swapped chunks; a chunk from
 * another blob; a file under another id), kill -9 at every file system
 * step of a put and of a rewrap (a forked child _exit()s inside the fault
 * hook: the disk is left exactly as a kill would leave it), injected
 * write/fsync/rename failures leaving no blob, KEK rotation, the orphan
 * sweep, and checksums against OpenSSL's one-shot digests.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <malloc.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/secrets.h"
#include "core/util.h"
#include "objects/blobfile.h"
#include "objects/blobhash.h"
#include "objects/blobstore.h"
#include "test.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define CHUNK BLOBFILE_CHUNK

static char top[64];
static int root_seq;

/* A fresh store directory under the test's top directory. */
static void new_root(char out[256])
{
	snprintf(out, 256, "%s/s%d", top, root_seq++);
}

static void make_kek(secrets_key *k, const char *id)
{
	memset(k, 0, sizeof *k);
	snprintf(k->id, sizeof k->id, "%s", id);
	util_random(k->key, 32);
	k->len = 32;
}

static secrets_key kek1, kek2;

/* Secrets holding the given KEKs, the current one first. */
static void secrets_with(secrets *s, const secrets_key *current, const secrets_key *other)
{
	memset(s, 0, sizeof *s);
	s->kek_current = -1;
	if (current) {
		s->keks[s->kek_count++] = *current;
		s->kek_current = 0;
	}
	if (other)
		s->keks[s->kek_count++] = *other;
}

static blobstore *open_store(const char *root, const secrets_key *current, const secrets_key *other)
{
	secrets s;
	secrets_with(&s, current, other);
	blobstore *bs = NULL;
	char err[256];
	int rc = blobstore_new(root, &s, &bs, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "blobstore_new: %s\n", err);
	secrets_clear(&s);
	return bs;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

/* Put data in pieces of `piece` bytes (0: one call). */
static int put(blobstore *bs, const unsigned char *data, size_t len, size_t piece, char id[33],
	       blob_sums *sums)
{
	blobstore_writer *w;
	id[0] = '\0';
	int rc = blobstore_put_begin(bs, &w);
	if (rc != 0)
		return rc;
	snprintf(id, 33, "%s", blobstore_writer_id(w));
	size_t off = 0;
	while (off < len) {
		size_t n = piece && piece < len - off ? piece : len - off;
		rc = blobstore_put_write(w, data + off, n);
		if (rc != 0) {
			blobstore_put_abort(&w);
			return rc;
		}
		off += n;
	}
	return blobstore_put_commit(&w, sums);
}

/* Read a whole range with reads of at most `cap` bytes into out. */
static int get_range(blobstore *bs, const char *id, uint64_t off, uint64_t len, size_t cap,
		     unsigned char *out, size_t *got)
{
	blobstore_reader *r;
	*got = 0;
	int rc = blobstore_get_open(bs, id, &r);
	if (rc != 0)
		return rc;
	if (len == UINT64_MAX)
		len = blobstore_reader_size(r) - off;
	rc = blobstore_get_range(r, off, len);
	while (rc == 0) {
		size_t n;
		rc = blobstore_get_read(r, out + *got, cap, &n);
		if (rc == 0 && n == 0)
			break;
		*got += n;
	}
	blobstore_get_close(&r);
	return rc;
}

static int get_all(blobstore *bs, const char *id, unsigned char *out, size_t *got)
{
	return get_range(bs, id, 0, UINT64_MAX, 100000, out, got);
}

static void blob_file(const char *root, const char *id, char out[512])
{
	snprintf(out, 512, "%s/data/%.2s/%s", root, id, id);
}

static int count_cb(void *arg, const blobstore_entry *e)
{
	(*(int *)arg)++;
	return 0;
}

static int count_blobs(blobstore *bs)
{
	int n = 0;
	CHECK_EQ_INT(blobstore_list(bs, count_cb, &n), 0);
	return n;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int count_tmp(const char *root)
{
	char p[300];
	snprintf(p, sizeof p, "%s/tmp", root);
	return count_dir(p);
}

static void patch_file(const char *path, uint64_t off, unsigned char xor_mask)
{
	int fd = open(path, O_RDWR);
	unsigned char b;
	CHECK(pread(fd, &b, 1, (off_t)off) == 1);
	b ^= xor_mask;
	CHECK(pwrite(fd, &b, 1, (off_t)off) == 1);
	close(fd);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	return (unsigned char *)util_read_file(path, 64 * MIB, len);
}

static void write_file(const char *path, const unsigned char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

/* --- round trips, ranges, checksums ----------------------------------- */

static void test_round_trips(void)
{
	char root[256], id[33];
	new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	CHECK(bs != NULL);
	size_t sizes[] = {0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * MIB + 123};
	size_t pieces[] = {0, 7, 4096, CHUNK, 100000};
	unsigned char *data = malloc(6 * MIB), *back = malloc(6 * MIB);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t len = sizes[i];
		fill(data, len, (unsigned)i + 1);
		size_t piece = pieces[i % (sizeof pieces / sizeof pieces[0])];
		blob_sums sums;
		CHECK_EQ_INT(put(bs, data, len, piece, id, &sums), 0);
		CHECK_EQ_INT(sums.size, len);
		CHECK_EQ_INT(strlen(id), 32);
		size_t got = 0;
		CHECK_EQ_INT(get_all(bs, id, back, &got), 0);
		CHECK_EQ_INT(got, len);
		CHECK(memcmp(data, back, len) == 0);
		/* small reads across chunk edges give the same bytes */
		CHECK_EQ_INT(get_range(bs, id, 0, UINT64_MAX, 333, back, &got), 0);
		CHECK_EQ_INT(got, len);
		CHECK(memcmp(data, back, len) == 0);
		char path[512];
		blob_file(root, id, path);
		struct stat st;
		CHECK_EQ_INT(stat(path, &st), 0);
		CHECK_EQ_INT(st.st_size, blobfile_file_size(len));
		CHECK_EQ_INT(st.st_mode & 0777, 0600);
		/* encrypted: no 32-byte run of the plaintext is in the file */
		if (len >= 64) {
			size_t flen;
			unsigned char *f = read_file(path, &flen);
			CHECK(memmem(f, flen, data + len / 2 - 16, 32) == NULL);
			free(f);
		}
	}
	CHECK_EQ_INT(count_blobs(bs), 7);
	CHECK_EQ_INT(count_tmp(root), 0);
	free(data);
	free(back);
	blobstore_free(&bs);
	CHECK(bs == NULL);
	blobstore_free(&bs); /* no-op */
}

static int count_reads(void *arg, blobstore_op op)
{
	if (op == BLOBSTORE_OP_READ)
		(*(int *)arg)++;
	return 0;
}

/* bitwise reference CRCs (the table code must agree) */
static uint32_t crc_ref(uint32_t poly, const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
	}
	return ~c;
}

static void test_checksums(void)
{
	/* the standard check values of both CRCs */
	CHECK_EQ_INT(blobhash_crc32(0, "123456789", 9), 0xCBF43926u);
	CHECK_EQ_INT(blobhash_crc32c(0, "123456789", 9), 0xE3069283u);
	CHECK_EQ_INT(blobhash_crc32(0, "", 0), 0);

	char root[256], id[33];
	new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	size_t len = 2 * CHUNK + 12345;
	unsigned char *data = malloc(len);
	fill(data, len, 99);
	blob_sums sums;
	CHECK_EQ_INT(put(bs, data, len, 1001, id, &sums), 0);
	unsigned char md5[16], sha[32];
	unsigned int n;
	CHECK(EVP_Digest(data, len, md5, &n, EVP_md5(), NULL) == 1);
	CHECK(EVP_Digest(data, len, sha, &n, EVP_sha256(), NULL) == 1);
	CHECK(memcmp(sums.md5, md5, 16) == 0);
	CHECK(memcmp(sums.sha256, sha, 32) == 0);
	CHECK_EQ_INT(sums.crc32, crc_ref(0xEDB88320u, data, len));
	CHECK_EQ_INT(sums.crc32c, crc_ref(0x82F63B78u, data, len));
	CHECK_EQ_INT(sums.size, len);
	/* the empty blob: MD5 of nothing is d41d8cd9... */
	CHECK_EQ_INT(put(bs, data, 0, 0, id, &sums), 0);
	char hex[33];
	util_hex(sums.md5, 16, hex);
	CHECK_EQ_STR(hex, "d41d8cd98f00b204e9800998ecf8427e");
	CHECK_EQ_INT(sums.crc32, 0);
	free(data);
	blobstore_free(&bs);
}

/* Only the sums asked for are computed: the others are zero and `have`
 * says which; the blob itself is the same. */
static void test_checksums_selected(void)
{
	char root[256];
	new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	size_t len = CHUNK + 777;
	unsigned char *data = malloc(len), *back = malloc(len);
	fill(data, len, 5);
	unsigned char sha[32], zero[32] = {0};
	unsigned int n;
	CHECK(EVP_Digest(data, len, sha, &n, EVP_sha256(), NULL) == 1);
	unsigned kinds[] = {0, BLOBHASH_SHA256, BLOBHASH_MD5 | BLOBHASH_CRC32C, BLOBHASH_CRC32, BLOBHASH_ALL};
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		blobstore_writer *w = NULL;
		blob_sums sums;
		CHECK_EQ_INT(blobstore_put_begin_sums(bs, kinds[k], &w), 0);
		char id[33];
		snprintf(id, sizeof id, "%s", blobstore_writer_id(w));
		CHECK_EQ_INT(blobstore_put_write(w, data, 100), 0);
		CHECK_EQ_INT(blobstore_put_write(w, data + 100, len - 100), 0);
		CHECK_EQ_INT(blobstore_put_commit(&w, &sums), 0);
		CHECK_EQ_INT(sums.have, kinds[k]);
		CHECK_EQ_INT(sums.size, len);
		CHECK(memcmp(sums.sha256, (kinds[k] & BLOBHASH_SHA256) ? sha : zero, 32) == 0);
		CHECK(((kinds[k] & BLOBHASH_MD5) != 0) == (memcmp(sums.md5, zero, 16) != 0));
		CHECK_EQ_INT(sums.crc32, (kinds[k] & BLOBHASH_CRC32) ? crc_ref(0xEDB88320u, data, len) : 0);
		CHECK_EQ_INT(sums.crc32c, (kinds[k] & BLOBHASH_CRC32C) ? crc_ref(0x82F63B78u, data, len) : 0);
		blobstore_reader *r = NULL;
		size_t got = 0, m;
		CHECK_EQ_INT(blobstore_get_open(bs, id, &r), 0);
		while (blobstore_get_read(r, back + got, len - got, &m) == 0 && m)
			got += m;
		CHECK_EQ_INT(got, len);
		CHECK(memcmp(back, data, len) == 0);
		blobstore_get_close(&r);
	}
	free(data);
	free(back);
	blobstore_free(&bs);
}


static void test_ranges(void)
{
	char root[256], id[33];
	new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	size_t len = 3 * CHUNK + 100;
	unsigned char *data = malloc(len), *back = malloc(len);
	fill(data, len, 7);
	CHECK_EQ_INT(put(bs, data, len, 0, id, NULL), 0);
	struct {
		uint64_t off, len;
	} ok[] = {{0, 0},         {0, 1},          {CHUNK - 1, 2},     {CHUNK, CHUNK},
		  {CHUNK - 1, CHUNK + 2}, {len - 1, 1}, {len, 0},         {3 * CHUNK, 100},
		  {10, len - 10}, {2 * CHUNK + 5, CHUNK + 95}};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		size_t got;
		CHECK_EQ_INT(get_range(bs, id, ok[i].off, ok[i].len, 4000, back, &got), 0);
		CHECK_EQ_INT(got, ok[i].len);
		CHECK(memcmp(back, data + ok[i].off, got) == 0);
	}
	blobstore_reader *r;
	CHECK_EQ_INT(blobstore_get_open(bs, id, &r), 0);
	CHECK_EQ_INT(blobstore_reader_size(r), len);
	CHECK_EQ_INT(blobstore_get_range(r, len, 1), ERR_INVAL);
	CHECK_EQ_INT(blobstore_get_range(r, 0, len + 1), ERR_INVAL);
	CHECK_EQ_INT(blobstore_get_range(r, len + 1, 0), ERR_INVAL);
	CHECK_EQ_INT(blobstore_get_range(r, UINT64_MAX, 2), ERR_INVAL);
	CHECK_EQ_INT(blobstore_get_range(r, 1, UINT64_MAX), ERR_INVAL);
	blobstore_get_close(&r);
	CHECK(r == NULL);

	/* a range inside chunk 2 reads the head and that chunk only */
	int reads = 0;
	blobstore_set_fault(bs, count_reads, &reads);
	size_t got;
	CHECK_EQ_INT(get_range(bs, id, 2 * CHUNK + 10, 1000, 100, back, &got), 0);
	CHECK_EQ_INT(got, 1000);
	CHECK_EQ_INT(reads, 2);
	/* one crossing the 1/2 edge: head + two chunks */
	reads = 0;
	CHECK_EQ_INT(get_range(bs, id, 2 * CHUNK - 10, 20, 100, back, &got), 0);
	CHECK(memcmp(back, data + 2 * CHUNK - 10, 20) == 0);
	CHECK_EQ_INT(reads, 3);
	blobstore_set_fault(bs, NULL, NULL);
	free(data);
	free(back);
	blobstore_free(&bs);
}

/* --- tampering ---------------------------------------------------------- */

/* Capture the log (stderr) of one call into buf. */
static int stderr_fd_saved = -1;
static char log_path[300];
static void log_capture_start(void)
{
	snprintf(log_path, sizeof log_path, "%s/log.txt", top);
	fflush(stderr);
	stderr_fd_saved = dup(2);
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
}
static char *log_capture_end(void)
{
	fflush(stderr);
	dup2(stderr_fd_saved, 2);
	close(stderr_fd_saved);
	size_t n;
	return util_read_file(log_path, MIB, &n);
}

/* Open and read the whole blob; return the error and how many bytes were
 * handed out before it. */
static int read_damaged(blobstore *bs, const char *id, size_t *handed)
{
	static unsigned char back[4 * CHUNK];
	return get_range(bs, id, 0, UINT64_MAX, 1000, back, handed);
}

static void test_tampering(void)
{
	char root[256], a[33], b[33], path[512], pathb[512];
	new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	size_t len = 2 * CHUNK + 1000; /* chunks: 64 KiB, 64 KiB, 1000 */
	unsigned char *data = malloc(len);
	fill(data, len, 3);
	CHECK_EQ_INT(put(bs, data, len, 0, a, NULL), 0);
	CHECK_EQ_INT(put(bs, data, len, 0, b, NULL), 0); /* same plaintext, other blob */
	blob_file(root, a, path);
	blob_file(root, b, pathb);
	size_t flen, handed;
	unsigned char *orig = read_file(path, &flen), *origb = read_file(pathb, &flen);
	const uint64_t c0 = BLOBFILE_DATA_OFFSET, c1 = c0 + CHUNK + BLOBFILE_TAG,
		       c2 = c1 + CHUNK + BLOBFILE_TAG;

	/* a flipped byte in chunk 1: chunk 0 is served, nothing of chunk 1 */
	patch_file(path, c1 + 500, 0x01);
	log_capture_start();
	int rc = read_damaged(bs, a, &handed);
	char *log = log_capture_end();
	CHECK_EQ_INT(rc, ERR_CORRUPT);
	CHECK_EQ_INT(handed, CHUNK);
	/* one log line, naming the blob, "corrupt", no data */
	CHECK(log && strstr(log, a) && strstr(log, "corrupt") && strstr(log, "chunk 1"));
	CHECK(log && strchr(log, '\n') == strrchr(log, '\n'));
	free(log);
	/* the error is sticky */
	blobstore_reader *r;
	CHECK_EQ_INT(blobstore_get_open(bs, a, &r), 0);
	CHECK_EQ_INT(blobstore_get_range(r, c1 - c0 + 10, 10), 0);
	unsigned char tmp[16];
	size_t n = 99;
	CHECK_EQ_INT(blobstore_get_read(r, tmp, sizeof tmp, &n), ERR_CORRUPT);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(blobstore_get_read(r, tmp, sizeof tmp, &n), ERR_CORRUPT);
	blobstore_get_close(&r);
	write_file(path, orig, flen);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), 0); /* restored: fine again */

	/* every single-byte flip at these places is refused */
	uint64_t spots[] = {
		0, 8, 12, 16, 24, 31, 40,        /* header: magic, version, chunk size, nonce, size, pad */
		64, 72, 100, 120, 140, 180, 191, /* slot 0: generation, KEK id, nonce, key, tag, pad */
		c0, c0 + CHUNK + 3,              /* chunk 0 data and tag */
		c2, c2 + 999, c2 + 1000 + 15,    /* last chunk: data, last byte, tag */
	};
	for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
		patch_file(path, spots[i], 0x80);
		rc = read_damaged(bs, a, &handed);
		if (rc == 0)
			fprintf(stderr, "flip at %llu not detected\n", (unsigned long long)spots[i]);
		CHECK(rc == ERR_CORRUPT || rc == ERR_CONFIG); /* a KEK id flip names a KEK we lack */
		CHECK(handed <= 2 * CHUNK);
		write_file(path, orig, flen);
	}

	/* the unused slot is not checked: a rewrap killed while writing it
	 * leaves it torn, and the valid slot still authenticates everything */
	patch_file(path, BLOBFILE_SLOT_OFFSET(1) + 50, 0x80);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), 0);
	CHECK_EQ_INT(handed, len);
	write_file(path, orig, flen);

	/* truncated by one byte, to a chunk boundary, extended by a chunk */
	write_file(path, orig, flen - 1);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), ERR_CORRUPT);
	CHECK_EQ_INT(handed, 0);
	write_file(path, orig, c2);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), ERR_CORRUPT);
	unsigned char *longer = malloc(flen + CHUNK + BLOBFILE_TAG);
	memcpy(longer, orig, flen);
	memcpy(longer + flen, orig + c0, CHUNK + BLOBFILE_TAG);
	write_file(path, longer, flen + CHUNK + BLOBFILE_TAG);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), ERR_CORRUPT);
	free(longer);

	/* chunks 0 and 1 swapped */
	unsigned char *sw = malloc(flen);
	memcpy(sw, orig, flen);
	memcpy(sw + c0, orig + c1, CHUNK + BLOBFILE_TAG);
	memcpy(sw + c1, orig + c0, CHUNK + BLOBFILE_TAG);
	write_file(path, sw, flen);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), ERR_CORRUPT);
	CHECK_EQ_INT(handed, 0);
	/* chunk 0 taken from blob b (same plaintext, same position) */
	memcpy(sw, orig, flen);
	memcpy(sw + c0, origb + c0, CHUNK + BLOBFILE_TAG);
	write_file(path, sw, flen);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), ERR_CORRUPT);
	/* b's key slot moved into a: the slot is bound to its blob's id */
	memcpy(sw, orig, flen);
	memcpy(sw + BLOBFILE_SLOT_OFFSET(0), origb + BLOBFILE_SLOT_OFFSET(0), BLOBFILE_SLOT_BYTES);
	write_file(path, sw, flen);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), ERR_CORRUPT);
	/* b's whole file under a's id */
	write_file(path, origb, flen);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), ERR_CORRUPT);
	write_file(path, orig, flen);
	CHECK_EQ_INT(read_damaged(bs, a, &handed), 0);
	free(sw);

	/* the empty blob: its one (empty) chunk is checked at open */
	char e[33], pathe[512];
	CHECK_EQ_INT(put(bs, data, 0, 0, e, NULL), 0);
	blob_file(root, e, pathe);
	patch_file(pathe, BLOBFILE_DATA_OFFSET + 5, 0x10);
	CHECK_EQ_INT(blobstore_get_open(bs, e, &r), ERR_CORRUPT);
	CHECK(r == NULL);
	/* a file shorter than its head */
	write_file(pathe, orig, 100);
	CHECK_EQ_INT(blobstore_get_open(bs, e, &r), ERR_CORRUPT);

	free(orig);
	free(origb);
	free(data);
	blobstore_free(&bs);
}

/* The format's own checks, below the store: a chunk opens only with its
 * index, its last flag, its blob id and its header. */
/* Whole chunks are read in batches (one preadv for up to 8) and decrypted
 * in the caller's buffer: the same bytes as chunk by chunk, in every
 * alignment, no byte written past what is given out; a damaged chunk in a
 * batch: the chunks before it come out, then the error, and none of its
 * plaintext is left in the buffer. */
static void test_read_batches(void)
{
	char root[256], id[33], path[512];
	new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	size_t len = 10 * CHUNK + 4321;
	unsigned char *data = malloc(len), *back = malloc(len + 64);
	fill(data, len, 42);
	CHECK_EQ_INT(put(bs, data, len, 0, id, NULL), 0);
	int reads = 0;
	blobstore_set_fault(bs, count_reads, &reads);
	struct {
		uint64_t off, len;
		size_t cap;
		int reads; /* system calls reading chunks */
	} cases[] = {
		{0, len, len, 2},                  /* 8 chunks, then 2 and the short one */
		{0, len, 3 * CHUNK, 4},            /* 3 per read */
		{0, len, CHUNK, 11},               /* one per read */
		{0, len, CHUNK - 1, 11},           /* through the chunk buffer: one read per chunk */
		{100, len - 100, len, 3},          /* mid-chunk start (buffer), then batches */
		{10 * CHUNK, 4321, 8192, 1},       /* the short last chunk alone */
		{0, 2 * CHUNK - 1, len, 2},        /* a range ending inside chunk 1 */
		{CHUNK, 2 * CHUNK, 2 * CHUNK, 1},  /* two whole chunks in the middle */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		blobstore_reader *r = NULL;
		CHECK_EQ_INT(blobstore_get_open(bs, id, &r), 0);
		CHECK_EQ_INT(blobstore_get_range(r, cases[i].off, cases[i].len), 0);
		size_t got = 0, n;
		int rc;
		memset(back, 0xee, len + 64);
		reads = 0;
		while ((rc = blobstore_get_read(r, back + got, cases[i].cap, &n)) == 0 && n) {
			CHECK(n <= cases[i].cap);
			got += n;
		}
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(got, cases[i].len);
		CHECK(memcmp(back, data + cases[i].off, cases[i].len) == 0);
		CHECK(back[cases[i].len] == 0xee); /* nothing past the range */
		if (reads != cases[i].reads)
			fprintf(stderr, "case %zu: %d reads\n", i, reads);
		CHECK_EQ_INT(reads, cases[i].reads);
		blobstore_get_close(&r);
	}
	blobstore_set_fault(bs, NULL, NULL);
	/* chunk 2 damaged: chunks 0 and 1 come out of the batch, then the
	 * error; chunk 2's place in the buffer holds none of its plaintext */
	blob_file(root, id, path);
	patch_file(path, BLOBFILE_DATA_OFFSET + 2 * (CHUNK + BLOBFILE_TAG) + 10, 0x04);
	blobstore_reader *r = NULL;
	size_t n = 0;
	CHECK_EQ_INT(blobstore_get_open(bs, id, &r), 0);
	log_capture_start();
	CHECK_EQ_INT(blobstore_get_read(r, back, len, &n), 0);
	char *log = log_capture_end();
	CHECK(log && strstr(log, "chunk 2"));
	free(log);
	CHECK_EQ_INT(n, 2 * CHUNK);
	CHECK(memcmp(back, data, 2 * CHUNK) == 0);
	bool leaked = false;
	for (size_t k = 0; k + 64 <= CHUNK; k += 64)
		leaked |= memcmp(back + 2 * CHUNK + k, data + 2 * CHUNK + k, 64) == 0;
	CHECK(!leaked);
	CHECK_EQ_INT(blobstore_get_read(r, back, len, &n), ERR_CORRUPT);
	CHECK_EQ_INT(n, 0);
	blobstore_get_close(&r);
	free(data);
	free(back);
	blobstore_free(&bs);
}

/* blobstore_get_read_cached, the event loop's read: only from the page
 * cache. Not cached (injected EAGAIN, or pages dropped): ERR_AGAIN, nothing
 * given out and the reader unchanged, so get_read goes on from the same
 * place with the same bytes; cached: the same bytes as get_read, in every
 * alignment; a damaged chunk: the chunks before it, then ERR_CORRUPT,
 * sticky for both kinds of read. */
static int again_on_read(void *arg, blobstore_op op)
{
	return op == BLOBSTORE_OP_READ && *(int *)arg ? EAGAIN : 0;
}

static void test_read_cached(void)
{
	char root[256], id[33], path[512], disk[64] = "/var/tmp/tandem-blobcache-XXXXXX";
	/* tmpfs (the other tests' top) has no RWF_NOWAIT: a disk's file
	 * system when there is one */
	bool on_disk = mkdtemp(disk) != NULL;
	if (on_disk)
		snprintf(root, sizeof root, "%s/s", disk);
	else
		new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	size_t len = 10 * CHUNK + 4321;
	unsigned char *data = malloc(len), *back = malloc(len + 64);
	fill(data, len, 77);
	CHECK_EQ_INT(put(bs, data, len, 0, id, NULL), 0);
	blob_file(root, id, path);
	/* does this file system read with RWF_NOWAIT at all (tmpfs: no)? */
	int pfd = open(path, O_RDONLY);
	unsigned char probe[16];
	struct iovec piov = {probe, sizeof probe};
	bool nowait = preadv2(pfd, &piov, 1, 0, RWF_NOWAIT) == (ssize_t)sizeof probe;
	if (!nowait)
		fprintf(stderr, "  (RWF_NOWAIT unsupported under %s: only the injected cases run)\n", root);

	/* every read not cached, then cached on and off: in each alignment the
	 * bytes come out whole and in order */
	struct {
		uint64_t off, len;
		size_t cap;
	} cases[] = {
		{0, len, 2 * CHUNK},      /* batches of whole chunks */
		{100, len - 100, CHUNK},  /* mid-chunk start: the chunk buffer */
		{0, len, CHUNK - 1},      /* through the chunk buffer */
		{10 * CHUNK, 4321, 8192}, /* the short last chunk */
	};
	int fail_reads = 0;
	blobstore_set_fault(bs, again_on_read, &fail_reads);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int mode = 0; mode < 2; mode++) { /* 0: never cached; 1: every other read not cached */
			blobstore_reader *r = NULL;
			fail_reads = 0;
			CHECK_EQ_INT(blobstore_get_open(bs, id, &r), 0);
			CHECK_EQ_INT(blobstore_get_range(r, cases[i].off, cases[i].len), 0);
			memset(back, 0xee, len + 64);
			size_t got = 0, n = 0;
			int rc = 0, step = 0, again = 0;
			for (;;) {
				fail_reads = mode == 0 || step++ % 2 == 0;
				n = 99;
				rc = blobstore_get_read_cached(r, back + got, cases[i].cap, &n);
				if (rc == ERR_AGAIN) {
					again++;
					CHECK_EQ_INT(n, 0);
					fail_reads = 0;
					rc = blobstore_get_read(r, back + got, cases[i].cap, &n);
				}
				if (rc != 0 || n == 0)
					break;
				got += n;
			}
			CHECK_EQ_INT(rc, 0);
			CHECK(again > 0);
			CHECK_EQ_INT(got, cases[i].len);
			CHECK(memcmp(back, data + cases[i].off, cases[i].len) == 0);
			CHECK(back[cases[i].len] == 0xee);
			blobstore_get_close(&r);
		}
	}
	fail_reads = 0;
	blobstore_set_fault(bs, NULL, NULL);

	if (nowait) {
		/* cached (just written): the whole blob on the cached path alone */
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			blobstore_reader *r = NULL;
			CHECK_EQ_INT(blobstore_get_open(bs, id, &r), 0);
			CHECK_EQ_INT(blobstore_get_range(r, cases[i].off, cases[i].len), 0);
			size_t got = 0, n;
			int rc;
			while ((rc = blobstore_get_read_cached(r, back + got, cases[i].cap, &n)) == 0 && n)
				got += n;
			CHECK_EQ_INT(rc, 0);
			CHECK_EQ_INT(got, cases[i].len);
			CHECK(memcmp(back, data + cases[i].off, cases[i].len) == 0);
			blobstore_get_close(&r);
		}
		/* its pages dropped from the cache (the blob is fsync'd, so they
		 * are clean and go): not cached, and the disk read still works */
		blobstore_reader *r = NULL;
		CHECK_EQ_INT(blobstore_get_open(bs, id, &r), 0);
		CHECK_EQ_INT(posix_fadvise(pfd, 0, 0, POSIX_FADV_DONTNEED), 0);
		size_t n = 99;
		CHECK_EQ_INT(blobstore_get_read_cached(r, back, len, &n), ERR_AGAIN);
		CHECK_EQ_INT(n, 0);
		CHECK_EQ_INT(blobstore_get_read(r, back, len, &n), 0);
		CHECK_EQ_INT(n, 8 * CHUNK);
		CHECK(memcmp(back, data, n) == 0);
		blobstore_get_close(&r);
	}
	close(pfd);

	/* chunk 3 damaged, read from the cache (or the disk, where the file
	 * system has no RWF_NOWAIT): chunks 0-2 out, then the error, sticky */
	patch_file(path, BLOBFILE_DATA_OFFSET + 3 * (CHUNK + BLOBFILE_TAG) + 10, 0x04);
	blobstore_reader *r = NULL;
	CHECK_EQ_INT(blobstore_get_open(bs, id, &r), 0);
	size_t got = 0, n = 0;
	int rc;
	log_capture_start();
	for (;;) {
		rc = blobstore_get_read_cached(r, back + got, CHUNK, &n);
		if (rc == ERR_AGAIN)
			rc = blobstore_get_read(r, back + got, CHUNK, &n);
		if (rc != 0 || n == 0)
			break;
		got += n;
	}
	char *log = log_capture_end();
	CHECK_EQ_INT(rc, ERR_CORRUPT);
	CHECK_EQ_INT(got, 3 * CHUNK);
	CHECK(memcmp(back, data, got) == 0);
	CHECK(log && strstr(log, "chunk 3"));
	free(log);
	CHECK_EQ_INT(blobstore_get_read_cached(r, back, CHUNK, &n), ERR_CORRUPT);
	CHECK_EQ_INT(blobstore_get_read(r, back, CHUNK, &n), ERR_CORRUPT);
	blobstore_get_close(&r);
	free(data);
	free(back);
	blobstore_free(&bs);
	if (on_disk) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", disk);
		CHECK_EQ_INT(system(cmd), 0);
	}
}

static void test_blobfile_binding(void)
{
	unsigned char key[32], id[16], id2[16], head[BLOBFILE_HEADER_BYTES];
	unsigned char plain[100], sealed[100 + BLOBFILE_TAG], out[100];
	util_random(key, sizeof key);
	util_random(id, sizeof id);
	memcpy(id2, id, sizeof id2);
	id2[15] ^= 1;
	blobfile_header h = {.chunk_size = BLOBFILE_CHUNK, .nonce_prefix = {1, 2, 3, 4}, .size = 100};
	blobfile_header_encode(&h, head);
	blobfile_header back;
	CHECK_EQ_INT(blobfile_header_decode(head, &back), 0);
	CHECK_EQ_INT(back.size, 100);
	fill(plain, sizeof plain, 5);
	blobfile_cipher *c = blobfile_cipher_new(key, head, id);
	CHECK_EQ_INT(blobfile_chunk_seal(c, 4, 1, plain, sizeof plain, sealed), 0);
	CHECK_EQ_INT(blobfile_chunk_open(c, 4, 1, sealed, sizeof sealed, out), 0);
	CHECK(memcmp(out, plain, sizeof plain) == 0);
	memset(out, 0x55, sizeof out);
	CHECK_EQ_INT(blobfile_chunk_open(c, 4, 0, sealed, sizeof sealed, out), ERR_CORRUPT);
	CHECK_EQ_INT(out[0] | out[50] | out[99], 0); /* nothing unauthenticated left */
	CHECK_EQ_INT(blobfile_chunk_open(c, 3, 1, sealed, sizeof sealed, out), ERR_CORRUPT);
	CHECK_EQ_INT(blobfile_chunk_open(c, 4, 1, sealed, sizeof sealed - 1, out), ERR_CORRUPT);
	CHECK_EQ_INT(blobfile_chunk_open(c, 4, 1, sealed, 10, out), ERR_CORRUPT);
	blobfile_cipher_free(&c);
	c = blobfile_cipher_new(key, head, id2);
	CHECK_EQ_INT(blobfile_chunk_open(c, 4, 1, sealed, sizeof sealed, out), ERR_CORRUPT);
	blobfile_cipher_free(&c);
	unsigned char head2[BLOBFILE_HEADER_BYTES];
	memcpy(head2, head, sizeof head2);
	head2[16] ^= 1; /* another nonce prefix */
	c = blobfile_cipher_new(key, head2, id);
	CHECK_EQ_INT(blobfile_chunk_open(c, 4, 1, sealed, sizeof sealed, out), ERR_CORRUPT);
	blobfile_cipher_free(&c);
	CHECK(c == NULL);

	/* headers: wrong magic, version, chunk size, size past the bound */
	memcpy(head2, head, sizeof head2);
	head2[0] = 'X';
	CHECK_EQ_INT(blobfile_header_decode(head2, &back), ERR_CORRUPT);
	memcpy(head2, head, sizeof head2);
	head2[8] = 2;
	CHECK_EQ_INT(blobfile_header_decode(head2, &back), ERR_CORRUPT);
	h.chunk_size = 4096;
	blobfile_header_encode(&h, head2);
	CHECK_EQ_INT(blobfile_header_decode(head2, &back), ERR_CORRUPT);
	h.chunk_size = BLOBFILE_CHUNK;
	h.size = BLOBFILE_MAX_SIZE + 1;
	blobfile_header_encode(&h, head2);
	CHECK_EQ_INT(blobfile_header_decode(head2, &back), ERR_CORRUPT);

	/* slots: wrap, peek, unwrap; another KEK or generation fails */
	unsigned char kek[32], kek_other[32], slot[BLOBFILE_SLOT_BYTES], dk[32];
	util_random(kek, sizeof kek);
	util_random(kek_other, sizeof kek_other);
	CHECK_EQ_INT(blobfile_slot_seal(head, id, 3, "k1", kek, key, slot), 0);
	uint64_t gen;
	char kid[BLOBFILE_KEK_ID_MAX];
	CHECK_EQ_INT(blobfile_slot_peek(slot, &gen, kid), 0);
	CHECK_EQ_INT(gen, 3);
	CHECK_EQ_STR(kid, "k1");
	CHECK_EQ_INT(blobfile_slot_open(head, id, slot, kek, dk), 0);
	CHECK(memcmp(dk, key, 32) == 0);
	CHECK_EQ_INT(blobfile_slot_open(head, id, slot, kek_other, dk), ERR_CORRUPT);
	CHECK_EQ_INT(blobfile_slot_open(head, id2, slot, kek, dk), ERR_CORRUPT);
	slot[7] = 4; /* generation 3 -> 4: authenticated */
	CHECK_EQ_INT(blobfile_slot_open(head, id, slot, kek, dk), ERR_CORRUPT);
	memset(slot, 0, sizeof slot);
	CHECK_EQ_INT(blobfile_slot_peek(slot, &gen, kid), ERR_NOTFOUND);
	slot[7] = 1;
	slot[8] = '\n'; /* not printable */
	CHECK_EQ_INT(blobfile_slot_peek(slot, &gen, kid), ERR_CORRUPT);
	CHECK_EQ_INT(blobfile_slot_seal(head, id, 0, "k1", kek, key, slot), ERR_INVAL);
	CHECK_EQ_INT(blobfile_slot_seal(head, id, 1, "", kek, key, slot), ERR_INVAL);
}

/* --- crashes and injected faults ---------------------------------------- */

typedef struct crash_plan {
	int countdown; /* ops before the crash/fault */
	int err;       /* 0: _exit (kill -9); else the errno to fail with, once */
	int hit;
} crash_plan;

static int crash_hook(void *arg, blobstore_op op)
{
	crash_plan *p = arg;
	if (p->hit || p->countdown-- > 0)
		return 0;
	p->hit = 1;
	if (p->err == 0)
		_exit(77); /* the process dies here, as under kill -9 */
	return p->err;
}

#define CRASH_LEN (3 * CHUNK + 777)

/* Fork a child that puts CRASH_LEN bytes and dies at op `step`; 1 when
 * the child died at the step, 0 when it ran to the end first. */
static int crash_child_put(const char *root, int step)
{
	pid_t pid = fork();
	if (pid == 0) {
		blobstore *bs = open_store(root, &kek1, NULL);
		crash_plan plan = {.countdown = step};
		blobstore_set_fault(bs, crash_hook, &plan);
		static unsigned char data[CRASH_LEN];
		fill(data, sizeof data, 11);
		char id[33];
		int rc = put(bs, data, sizeof data, 50000, id, NULL);
		_exit(rc == 0 ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status));
	CHECK(WEXITSTATUS(status) == 77 || WEXITSTATUS(status) == 0);
	return WEXITSTATUS(status) == 77;
}

static int first_id_cb(void *arg, const blobstore_entry *e)
{
	memcpy(arg, e->id, sizeof e->id);
	return 1;
}

static void test_kill9_during_put(void)
{
	static unsigned char want[CRASH_LEN], back[CRASH_LEN];
	fill(want, sizeof want, 11);
	int steps = 0, visible_after = -1;
	for (int step = 0; step < 100; step++) {
		char root[256];
		new_root(root);
		blobstore *bs = open_store(root, &kek1, NULL); /* the directories */
		int died = crash_child_put(root, step);
		/* after the crash, the restart: recover, then look */
		int removed = -1;
		CHECK_EQ_INT(blobstore_recover(bs, &removed), 0);
		CHECK_EQ_INT(count_tmp(root), 0);
		int blobs = count_blobs(bs);
		CHECK(blobs <= 1);
		if (blobs == 1) {
			/* visible only once renamed: then complete and intact */
			char id[33];
			CHECK_EQ_INT(blobstore_list(bs, first_id_cb, id), 0);
			size_t got;
			CHECK_EQ_INT(get_all(bs, id, back, &got), 0);
			CHECK_EQ_INT(got, CRASH_LEN);
			CHECK(memcmp(back, want, CRASH_LEN) == 0);
			if (visible_after < 0)
				visible_after = step;
		} else {
			CHECK(died); /* a put that completed left its blob */
			CHECK(visible_after < 0); /* once visible, always visible */
		}
		if (died && blobs == 0)
			CHECK_EQ_INT(removed, step > 0 ? 1 : 0); /* the temp file, once created */
		blobstore_free(&bs);
		steps = step;
		if (!died)
			break;
	}
	/* open, 4 chunk writes, head write, fsync, rename, fsync dir: the blob
	 * appears with the rename */
	CHECK(steps >= 8 && steps < 100);
	CHECK(visible_after > 0 && visible_after < steps + 1);
}

static void test_faults_leave_no_blob(void)
{
	static unsigned char data[2 * CHUNK + 5];
	fill(data, sizeof data, 12);
	int errs[] = {EIO, ENOSPC};
	for (size_t e = 0; e < 2; e++) {
		int step;
		for (step = 0; step < 100; step++) {
			char root[256], id[33];
			new_root(root);
			blobstore *bs = open_store(root, &kek1, NULL);
			crash_plan plan = {.countdown = step, .err = errs[e]};
			blobstore_set_fault(bs, crash_hook, &plan);
			int rc = put(bs, data, sizeof data, 30000, id, NULL);
			blobstore_set_fault(bs, NULL, NULL);
			if (!plan.hit) {
				CHECK_EQ_INT(rc, 0);
				CHECK_EQ_INT(count_blobs(bs), 1);
				blobstore_free(&bs);
				break;
			}
			/* failed: no blob, no temp file, the id unknown */
			CHECK_EQ_INT(rc, ERR_IO);
			CHECK_EQ_INT(count_blobs(bs), 0);
			CHECK_EQ_INT(count_tmp(root), 0);
			blobstore_reader *r;
			if (id[0]) /* the writer had begun: its id leads nowhere */
				CHECK_EQ_INT(blobstore_get_open(bs, id, &r), ERR_NOTFOUND);
			blobstore_free(&bs);
		}
		CHECK(step >= 7 && step < 100);
	}
}

static void test_recover_and_abort(void)
{
	char root[256], p[400];
	new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	/* an abandoned writer of a crashed process and a stray temp file */
	pid_t pid = fork();
	if (pid == 0) {
		blobstore_writer *w;
		unsigned char d[1000] = {1};
		if (blobstore_put_begin(bs, &w) != 0 || blobstore_put_write(w, d, sizeof d) != 0)
			_exit(1);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(p, sizeof p, "%s/tmp/0123.tmp", root);
	write_file(p, (const unsigned char *)"x", 1);
	CHECK_EQ_INT(count_tmp(root), 2);
	int removed = 0;
	CHECK_EQ_INT(blobstore_recover(bs, &removed), 0);
	CHECK_EQ_INT(removed, 2);
	CHECK_EQ_INT(count_tmp(root), 0);
	CHECK_EQ_INT(count_blobs(bs), 0);
	/* abort: nothing left */
	blobstore_writer *w;
	CHECK_EQ_INT(blobstore_put_begin(bs, &w), 0);
	CHECK_EQ_INT(blobstore_put_write(w, "abc", 3), 0);
	CHECK_EQ_INT(count_tmp(root), 1);
	blobstore_put_abort(&w);
	CHECK(w == NULL);
	blobstore_put_abort(&w); /* no-op */
	CHECK_EQ_INT(count_tmp(root), 0);
	CHECK_EQ_INT(count_blobs(bs), 0);
	blobstore_free(&bs);
}

/* --- rotation ------------------------------------------------------------ */

static void test_rewrap(void)
{
	char root[256], id[33], path[512];
	new_root(root);
	blobstore *old = open_store(root, &kek1, NULL);
	size_t len = CHUNK + 10;
	unsigned char *data = malloc(len), *back = malloc(len);
	fill(data, len, 21);
	CHECK_EQ_INT(put(old, data, len, 0, id, NULL), 0);
	blob_file(root, id, path);
	size_t flen, flen2, got;
	unsigned char *before = read_file(path, &flen);

	blobstore *both = open_store(root, &kek2, &kek1); /* k2 current, k1 still unwraps */
	blobstore *only2 = open_store(root, &kek2, NULL);
	CHECK_EQ_INT(get_all(both, id, back, &got), 0);
	blobstore_reader *r;
	CHECK_EQ_INT(blobstore_get_open(only2, id, &r), ERR_CONFIG); /* k1 missing */
	int rewrapped = -1;
	CHECK_EQ_INT(blobstore_rewrap(both, id, &rewrapped), 0);
	CHECK_EQ_INT(rewrapped, 1);
	CHECK_EQ_INT(get_all(only2, id, back, &got), 0);
	CHECK_EQ_INT(got, len);
	CHECK(memcmp(back, data, len) == 0);
	/* the retired KEK unwraps nothing any more */
	CHECK_EQ_INT(blobstore_get_open(old, id, &r), ERR_CONFIG);
	/* the data was not rewritten: only the head changed */
	unsigned char *after = read_file(path, &flen2);
	CHECK_EQ_INT(flen, flen2);
	CHECK(memcmp(before + BLOBFILE_DATA_OFFSET, after + BLOBFILE_DATA_OFFSET,
		     flen - BLOBFILE_DATA_OFFSET) == 0);
	CHECK(memcmp(before, after, BLOBFILE_HEADER_BYTES) == 0);
	CHECK(memcmp(before, after, BLOBFILE_DATA_OFFSET) != 0);
	/* again: nothing to do */
	CHECK_EQ_INT(blobstore_rewrap(both, id, &rewrapped), 0);
	CHECK_EQ_INT(rewrapped, 0);
	/* and back to k1 (the other slot this time) */
	blobstore *back1 = open_store(root, &kek1, &kek2);
	CHECK_EQ_INT(blobstore_rewrap(back1, id, &rewrapped), 0);
	CHECK_EQ_INT(rewrapped, 1);
	CHECK_EQ_INT(get_all(old, id, back, &got), 0);
	CHECK(memcmp(back, data, len) == 0);
	/* a store that lacks the KEK of the newer slot refuses to rewrap */
	CHECK_EQ_INT(blobstore_rewrap(only2, id, &rewrapped), ERR_CONFIG);
	CHECK_EQ_INT(blobstore_rewrap(both, "0123", &rewrapped), ERR_INVAL);
	CHECK_EQ_INT(blobstore_rewrap(both, "00000000000000000000000000000000", &rewrapped),
		     ERR_NOTFOUND);
	free(before);
	free(after);
	free(data);
	free(back);
	blobstore_free(&old);
	blobstore_free(&both);
	blobstore_free(&only2);
	blobstore_free(&back1);
}

static void test_kill9_during_rewrap(void)
{
	char root[256], id[33];
	new_root(root);
	blobstore *s1 = open_store(root, &kek1, NULL);
	blobstore *both = open_store(root, &kek2, &kek1);
	blobstore *only2 = open_store(root, &kek2, NULL);
	size_t len = 1000, got;
	unsigned char data[1000], back[1000];
	fill(data, len, 31);
	int step, saw_both = 0;
	for (step = 0; step < 50; step++) {
		CHECK_EQ_INT(put(s1, data, len, 0, id, NULL), 0);
		pid_t pid = fork();
		if (pid == 0) {
			crash_plan plan = {.countdown = step};
			blobstore_set_fault(both, crash_hook, &plan);
			_exit(blobstore_rewrap(both, id, NULL) == 0 ? 0 : 1);
		}
		int status;
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status));
		int died = WEXITSTATUS(status) == 77;
		CHECK(died || WEXITSTATUS(status) == 0);
		/* old or new wrapping valid: the data reads with both KEKs known */
		CHECK_EQ_INT(get_all(both, id, back, &got), 0);
		CHECK(got == len && memcmp(back, data, len) == 0);
		blobstore_reader *r1 = NULL, *r2 = NULL;
		int with1 = blobstore_get_open(s1, id, &r1), with2 = blobstore_get_open(only2, id, &r2);
		blobstore_get_close(&r1);
		blobstore_get_close(&r2);
		CHECK(with1 == 0 || with2 == 0);
		if (with1 == 0 && with2 == 0)
			saw_both = 1; /* stopped between the two steps */
		/* finishing the rotation always works */
		CHECK_EQ_INT(blobstore_rewrap(both, id, NULL), 0);
		CHECK_EQ_INT(get_all(only2, id, back, &got), 0);
		CHECK_EQ_INT(blobstore_get_open(s1, id, &r1), ERR_CONFIG);
		CHECK_EQ_INT(blobstore_delete(s1, id), 0);
		if (!died)
			break;
	}
	CHECK(step >= 4 && step < 50); /* open, lock, read, write, fsync, write, fsync */
	CHECK(saw_both);

	/* injected failures at each step: still readable, retry completes */
	for (step = 0; step < 50; step++) {
		CHECK_EQ_INT(put(s1, data, len, 0, id, NULL), 0);
		crash_plan plan = {.countdown = step, .err = EIO};
		blobstore_set_fault(both, crash_hook, &plan);
		int rc = blobstore_rewrap(both, id, NULL);
		blobstore_set_fault(both, NULL, NULL);
		CHECK(plan.hit ? rc == ERR_IO : rc == 0);
		CHECK_EQ_INT(get_all(both, id, back, &got), 0);
		CHECK_EQ_INT(blobstore_rewrap(both, id, NULL), 0);
		CHECK_EQ_INT(get_all(only2, id, back, &got), 0);
		CHECK_EQ_INT(blobstore_delete(s1, id), 0);
		if (!plan.hit)
			break;
	}
	CHECK(step >= 4 && step < 50);
	blobstore_free(&s1);
	blobstore_free(&both);
	blobstore_free(&only2);
}

static void test_missing_kek(void)
{
	char root[256], err[256];
	new_root(root);
	secrets s;
	secrets_with(&s, NULL, NULL);
	blobstore *bs = (blobstore *)1;
	err[0] = '\0';
	CHECK_EQ_INT(blobstore_new(root, &s, &bs, err, sizeof err), ERR_CONFIG);
	CHECK(bs == NULL);
	CHECK(strstr(err, "[objects]") != NULL);
	/* a blob under k1 read by a store that knows only k2 */
	char id[33];
	blobstore *s1 = open_store(root, &kek1, NULL), *s2 = open_store(root, &kek2, NULL);
	CHECK_EQ_INT(put(s1, (const unsigned char *)"hello", 5, 0, id, NULL), 0);
	blobstore_reader *r;
	log_capture_start();
	int rc = blobstore_get_open(s2, id, &r);
	char *log = log_capture_end();
	CHECK_EQ_INT(rc, ERR_CONFIG);
	CHECK(log && strstr(log, "'k1'") && strstr(log, id));
	free(log);
	blobstore_free(&s1);
	blobstore_free(&s2);
}

/* --- delete, list, sweep ------------------------------------------------- */

typedef struct known_set {
	char ids[8][33];
	int n;
	int fail;
} known_set;

static int known_cb(void *arg, const char *id)
{
	known_set *k = arg;
	if (k->fail)
		return ERR_DB;
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->ids[i], id) == 0)
			return 1;
	return 0;
}

static void test_delete_list_sweep(void)
{
	char root[256], ids[4][33], p[400];
	new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(put(bs, (const unsigned char *)"data", 4, 0, ids[i], NULL), 0);
	/* names that are not blobs are left alone */
	snprintf(p, sizeof p, "%s/data/00/README", root);
	write_file(p, (const unsigned char *)"x", 1);
	snprintf(p, sizeof p, "%s/data/00/ab000000000000000000000000000000", root);
	write_file(p, (const unsigned char *)"x", 1); /* in the wrong directory */
	CHECK_EQ_INT(count_blobs(bs), 4);

	known_set k = {.n = 2};
	memcpy(k.ids[0], ids[0], 33);
	memcpy(k.ids[1], ids[2], 33);
	int removed = -1;
	/* a cutoff before the commits: young blobs are never swept */
	CHECK_EQ_INT(blobstore_sweep(bs, util_now_ms() - 60000, known_cb, &k, &removed), 0);
	CHECK_EQ_INT(removed, 0);
	k.fail = 1;
	CHECK_EQ_INT(blobstore_sweep(bs, util_now_ms() + 1000, known_cb, &k, &removed), ERR_DB);
	CHECK_EQ_INT(removed, 0);
	k.fail = 0;
	CHECK_EQ_INT(blobstore_sweep(bs, util_now_ms() + 1000, known_cb, &k, &removed), 0);
	CHECK_EQ_INT(removed, 2);
	CHECK_EQ_INT(count_blobs(bs), 2);
	blobstore_reader *r;
	CHECK_EQ_INT(blobstore_get_open(bs, ids[1], &r), ERR_NOTFOUND);
	CHECK_EQ_INT(blobstore_get_open(bs, ids[0], &r), 0);
	blobstore_get_close(&r);
	CHECK(access(p, F_OK) == 0);

	/* delete: durable, then not found; a reader open before keeps reading */
	CHECK_EQ_INT(blobstore_get_open(bs, ids[2], &r), 0);
	CHECK_EQ_INT(blobstore_delete(bs, ids[2]), 0);
	char buf[8];
	size_t n;
	CHECK_EQ_INT(blobstore_get_read(r, buf, sizeof buf, &n), 0);
	CHECK(n == 4 && memcmp(buf, "data", 4) == 0);
	blobstore_get_close(&r);
	CHECK_EQ_INT(blobstore_delete(bs, ids[2]), ERR_NOTFOUND);
	/* ids are 32 lowercase hex, nothing else reaches the file system */
	const char *bad[] = {"", "0123", "../../../../etc/passwd", "ABCDEF00000000000000000000000000",
			     "0000000000000000000000000000000g", "000000000000000000000000000000000"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ_INT(blobstore_delete(bs, bad[i]), ERR_INVAL);
		CHECK_EQ_INT(blobstore_get_open(bs, bad[i], &r), ERR_INVAL);
	}
	CHECK_EQ_INT(blobstore_get_open(bs, NULL, &r), ERR_INVAL);
	/* a callback stops the listing */
	char first[33];
	CHECK_EQ_INT(blobstore_list(bs, first_id_cb, first), 0);
	CHECK(strcmp(first, ids[0]) == 0);
	blobstore_free(&bs);
}

/* --- threads ------------------------------------------------------------ */

static blobstore *shared_store;

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	static __thread unsigned char data[CHUNK + 500], back[CHUNK + 500];
	long bad = 0;
	for (int i = 0; i < 20; i++) {
		char id[33];
		size_t len = (seed * 7919u + (unsigned)i * 104729u) % sizeof data, got;
		fill(data, len, seed * 100 + (unsigned)i);
		if (put(shared_store, data, len, 3000, id, NULL) != 0 ||
		    get_all(shared_store, id, back, &got) != 0 || got != len ||
		    memcmp(data, back, len) != 0 || blobstore_delete(shared_store, id) != 0)
			bad++;
	}
	return (void *)bad;
}

static void test_threads(void)
{
	char root[256];
	new_root(root);
	shared_store = open_store(root, &kek1, NULL);
	pthread_t t[4];
	for (uintptr_t i = 0; i < 4; i++)
		CHECK_EQ_INT(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
	for (int i = 0; i < 4; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		CHECK(bad == NULL);
	}
	CHECK_EQ_INT(count_blobs(shared_store), 0);
	blobstore_free(&shared_store);
}

/* Two threads re-wrap one blob towards different KEKs (two processes with
 * different secrets files, say) while a third reads it: every rewrap and
 * every read succeeds, and the blob still opens at the end. A stress test:
 * the interleavings that the locks exclude are pinned deterministically by
 * test_rewrap_locks below. */
typedef struct rewrap_race {
	blobstore *store;
	const char *id;
	atomic_int stop; /* set by the main thread: atomic, as volatile is no synchronisation (TSan) */
	long done, failures;
} rewrap_race;

static void *race_reader(void *arg)
{
	rewrap_race *rr = arg;
	unsigned char back[5000];
	/* at least 20 reads even when the scheduler runs the rewrappers to
	 * their end first (ASan, a busy machine): the test checks reads */
	while (!atomic_load(&rr->stop) || rr->done < 20) {
		size_t got;
		if (get_all(rr->store, rr->id, back, &got) != 0 || got != 5000)
			rr->failures++;
		rr->done++;
	}
	return NULL;
}

static void *race_rewrapper(void *arg)
{
	rewrap_race *rr = arg;
	for (int i = 0; i < 300; i++) {
		if (blobstore_rewrap(rr->store, rr->id, NULL) != 0)
			rr->failures++;
		rr->done++;
	}
	return NULL;
}

static void test_rewrap_races(void)
{
	char root[256], id[33];
	new_root(root);
	blobstore *to2 = open_store(root, &kek2, &kek1), *to1 = open_store(root, &kek1, &kek2);
	unsigned char data[5000], back[5000];
	fill(data, sizeof data, 41);
	CHECK_EQ_INT(put(to1, data, sizeof data, 0, id, NULL), 0);
	rewrap_race reader = {.store = to2, .id = id}, a = {.store = to1, .id = id},
		    b = {.store = to2, .id = id};
	pthread_t tr, ta, tb;
	CHECK_EQ_INT(pthread_create(&tr, NULL, race_reader, &reader), 0);
	CHECK_EQ_INT(pthread_create(&ta, NULL, race_rewrapper, &a), 0);
	CHECK_EQ_INT(pthread_create(&tb, NULL, race_rewrapper, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	atomic_store(&reader.stop, 1);
	pthread_join(tr, NULL);
	CHECK(reader.done > 0);
	CHECK_EQ_INT(reader.failures, 0);
	CHECK_EQ_INT(a.failures, 0);
	CHECK_EQ_INT(b.failures, 0);
	size_t got;
	CHECK_EQ_INT(get_all(to1, id, back, &got), 0);
	CHECK(got == sizeof data && memcmp(back, data, got) == 0);
	blobstore_free(&to1);
	blobstore_free(&to2);
}

/* While a rewrap writes, the blob is locked exclusively (a second rewrap
 * could otherwise zero the slot the first just wrote, then have its own
 * zeroed: no key left); while a reader reads the head it holds a shared
 * lock, and it lets go before reading chunks (a slow GET does not hold up
 * a rotation). Checked from the fault hook with a non-blocking flock on
 * another open file description at each step. */
typedef struct lock_probe {
	char path[512];
	blobstore_op op; /* probe at these operations */
	int probes, blocked;
	int blocked_at[8];
} lock_probe;

static int probe_hook(void *arg, blobstore_op op)
{
	lock_probe *p = arg;
	if (op != p->op || p->probes >= 8)
		return 0;
	int fd = open(p->path, O_RDONLY);
	int locked = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd); /* drops the probe's lock, if it got one */
	p->blocked_at[p->probes++] = locked;
	p->blocked += locked;
	return 0;
}

static void test_rewrap_locks(void)
{
	char root[256], id[33];
	new_root(root);
	blobstore *to1 = open_store(root, &kek1, &kek2), *to2 = open_store(root, &kek2, &kek1);
	static unsigned char data[2 * CHUNK];
	fill(data, sizeof data, 61);
	CHECK_EQ_INT(put(to1, data, sizeof data, 0, id, NULL), 0);
	lock_probe p = {.op = BLOBSTORE_OP_WRITE};
	blob_file(root, id, p.path);
	blobstore_set_fault(to2, probe_hook, &p);
	int rewrapped = 0;
	CHECK_EQ_INT(blobstore_rewrap(to2, id, &rewrapped), 0);
	CHECK_EQ_INT(rewrapped, 1);
	CHECK_EQ_INT(p.probes, 2); /* the new slot, the old slot zeroed */
	CHECK_EQ_INT(p.blocked, 2);
	blobstore_set_fault(to2, NULL, NULL);
	/* a reader: locked while the head is read, free for the chunks */
	lock_probe q = {.op = BLOBSTORE_OP_READ};
	memcpy(q.path, p.path, sizeof q.path);
	blobstore_set_fault(to2, probe_hook, &q);
	size_t got;
	static unsigned char back[2 * CHUNK];
	CHECK_EQ_INT(get_all(to2, id, back, &got), 0);
	CHECK_EQ_INT(q.probes, 3); /* head, chunk 0, chunk 1 */
	CHECK_EQ_INT(q.blocked_at[0], 1);
	CHECK_EQ_INT(q.blocked_at[1], 0);
	CHECK_EQ_INT(q.blocked_at[2], 0);
	blobstore_set_fault(to2, NULL, NULL);
	blobstore_free(&to1);
	blobstore_free(&to2);
}

/* A writer and a reader hold about one chunk, whatever the blob size:
 * the heap grows by far less than the 16 MiB that go through them. (Not
 * measurable under AddressSanitizer or ThreadSanitizer, whose allocators
 * mallinfo does not see.) */
static void test_memory_bounded(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return;
#else
	char root[256], id[33];
	new_root(root);
	blobstore *bs = open_store(root, &kek1, NULL);
	static unsigned char piece[100000];
	fill(piece, sizeof piece, 51);
	size_t before = mallinfo2().uordblks, peak = 0;
	blobstore_writer *w;
	CHECK_EQ_INT(blobstore_put_begin(bs, &w), 0);
	snprintf(id, sizeof id, "%s", blobstore_writer_id(w));
	for (int i = 0; i < 168; i++) { /* 16 MiB */
		CHECK_EQ_INT(blobstore_put_write(w, piece, sizeof piece), 0);
		size_t now = mallinfo2().uordblks;
		if (now > peak)
			peak = now;
	}
	CHECK_EQ_INT(blobstore_put_commit(&w, NULL), 0);
	blobstore_reader *r;
	CHECK_EQ_INT(blobstore_get_open(bs, id, &r), 0);
	size_t n;
	do {
		CHECK_EQ_INT(blobstore_get_read(r, piece, sizeof piece, &n), 0);
		size_t now = mallinfo2().uordblks;
		if (now > peak)
			peak = now;
	} while (n > 0);
	blobstore_get_close(&r);
	CHECK(peak > before);
	CHECK(peak - before < 256 * KIB);
	blobstore_free(&bs);
#endif
}

/* --- the secrets file's [objects] section ----------------------------- */

static int load_text(const char *text, secrets *s, char *err, size_t errcap)
{
	char path[300];
	snprintf(path, sizeof path, "%s/secrets.ini", top);
	unlink(path);
	CHECK_EQ_INT(util_write_file(path, text, strlen(text), 0600), 0);
	return secrets_load(path, s, err, errcap);
}

static void test_secrets_objects(void)
{
	const char *base = "[tokens]\nsigning_key_id = k1\n"
			   "key.k1 = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
			   "[crypto]\nresponse_key = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
	char text[1024], err[256];
	secrets s;
	/* without [objects]: loads, no KEK */
	CHECK_EQ_INT(load_text(base, &s, err, sizeof err), 0);
	CHECK_EQ_INT(s.kek_current, -1);
	CHECK_EQ_INT(s.kek_count, 0);
	CHECK_EQ_INT(s.key_count, 1);
	/* with two KEKs, k2 current */
	snprintf(text, sizeof text,
		 "%s[objects]\nkek.k1 = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\nkek_id = k2\n"
		 "kek.k2 = AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI\n", base);
	CHECK_EQ_INT(load_text(text, &s, err, sizeof err), 0);
	CHECK_EQ_INT(s.kek_count, 2);
	CHECK_EQ_STR(s.keks[s.kek_current].id, "k2");
	CHECK_EQ_INT(s.keks[s.kek_current].key[31], 2);
	CHECK(secrets_find_kek(&s, "k1") != NULL && secrets_find_kek(&s, "k1")->key[0] == 1);
	CHECK(secrets_find_kek(&s, "k3") == NULL);
	CHECK(secrets_find(&s, "k2") == NULL); /* KEKs are not token keys */
	/* errors, each with FILE:LINE */
	struct {
		const char *objects, *want;
	} bad[] = {
		{"[objects]\nkek_id = k9\nkek.k1 = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\n",
		 "secrets.ini:7: kek_id does not name"},
		{"[objects]\nkek.k1 = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\n",
		 "kek_id does not name"},
		{"[objects]\nkek_id = k1\nkek.k1 = AQEB\n", "secrets.ini:8: key must be base64url of 32"},
		{"[objects]\nkek_id = k1\nkek.k1 = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ\n",
		 "key must be base64url of 32"}, /* 34 bytes: AES-256 only */
		{"[objects]\nkek_id = k1\nkek.k1 = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\n"
		 "kek.k1 = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\n",
		 "secrets.ini:9: duplicate key"},
		{"[objects]\nkek_id = k1\nkek. = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\n",
		 "bad key id"},
		{"[objects]\nkekid = k1\n", "unknown key kekid"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, "%s%s", base, bad[i].objects);
		err[0] = '\0';
		CHECK_EQ_INT(load_text(text, &s, err, sizeof err), ERR_CONFIG);
		if (!strstr(err, bad[i].want))
			fprintf(stderr, "case %zu: %s\n", i, err);
		CHECK(strstr(err, bad[i].want) != NULL);
		CHECK(strstr(err, "AQEB") == NULL); /* key material never echoed */
	}
	/* secrets_create writes a usable [objects] section */
	char path[300];
	snprintf(path, sizeof path, "%s/created.ini", top);
	CHECK_EQ_INT(secrets_create(path), 0);
	CHECK_EQ_INT(secrets_load(path, &s, err, sizeof err), 0);
	CHECK(s.kek_current >= 0);
	CHECK_EQ_STR(s.keks[s.kek_current].id, "k1");
	CHECK_EQ_INT(s.keks[s.kek_current].len, 32);
	char root[256];
	new_root(root);
	blobstore *bs = NULL;
	CHECK_EQ_INT(blobstore_new(root, &s, &bs, err, sizeof err), 0);
	blobstore_free(&bs);
	secrets_clear(&s);
}

int main(void)
{
	/* on tmpfs when there is one: fsync is free there, and the crash tests
	 * need none (a kill -9 leaves the page cache, which every later read
	 * sees); on a disk the 300-odd fsyncs take seconds */
	snprintf(top, sizeof top, "%s/tandem-blobtest-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(top)) {
		perror("mkdtemp");
		return 1;
	}
	make_kek(&kek1, "k1");
	make_kek(&kek2, "k2");
	RUN(test_round_trips);
	RUN(test_checksums);
	RUN(test_checksums_selected);
	RUN(test_ranges);
	RUN(test_read_batches);
	RUN(test_read_cached);
	RUN(test_tampering);
	RUN(test_blobfile_binding);
	RUN(test_kill9_during_put);
	RUN(test_faults_leave_no_blob);
	RUN(test_recover_and_abort);
	RUN(test_rewrap);
	RUN(test_kill9_during_rewrap);
	RUN(test_missing_kek);
	RUN(test_delete_list_sweep);
	RUN(test_threads);
	RUN(test_rewrap_races);
	RUN(test_rewrap_locks);
	RUN(test_memory_bounded);
	RUN(test_secrets_objects);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", top);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", top);
	return TEST_SUMMARY();
}
