/*
 * fuzz_blobfile.c - libFuzzer target for the blob reader
 * (src/objects/blobstore.c, blobfile.c): a blob file on disk may be damaged
 * or replaced by anyone with access to the disk, so the reader must never
 * crash on it and never hand out a byte that did not authenticate.
 *
 * At start one real blob V of known plaintext P (two full chunks and a
 * short one) is written under a fixed KEK. Each input then becomes the
 * file under V's id, read whole and over a range:
 *   mode 0 (first byte even): the rest of the input is the whole file;
 *   mode 1 (odd): V with edits: 6 bytes choosing a range, then 5-byte
 *     records [kind][offset:3][value]: xor a byte, set a byte, truncate,
 *     or append copied bytes.
 * Checks: open gives 0, ERR_CORRUPT or ERR_CONFIG; every byte handed out
 * equals P at its offset (an unauthenticated file gives nothing else: the
 * key is the fuzzer's secret); a file that differs from V anywhere but the
 * unused key slot fails before the read ends; V itself reads back as P.
 */
#undef NDEBUG /* the checks below are the point of this file */
#include <assert.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/secrets.h"
#include "objects/blobfile.h"
#include "objects/blobstore.h"

#define P_LEN (2 * BLOBFILE_CHUNK + 300)
#define FILE_MAX (BLOBFILE_DATA_OFFSET + P_LEN + 3 * BLOBFILE_TAG + 4096)

static blobstore *store;
static char blob_id[BLOBSTORE_ID_LEN + 1];
static char blob_path[512];
static unsigned char plain[P_LEN];
static unsigned char *v_file; /* V as written */
static size_t v_len;
static unsigned char *work;   /* the file under test */
static unsigned char *out;

static char top[64];

/* libFuzzer exits through exit(): leave no store behind */
static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", top);
}

static void init(void)
{
	log_setup("fuzz", (log_level)(LOG_ERROR + 1)); /* corrupt-blob lines by the million */
	snprintf(top, sizeof top, "%s/tandem-fuzzblob-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	assert(mkdtemp(top) != NULL);
	atexit(cleanup);
	secrets s;
	memset(&s, 0, sizeof s);
	snprintf(s.keks[0].id, sizeof s.keks[0].id, "k1");
	for (int i = 0; i < 32; i++)
		s.keks[0].key[i] = (unsigned char)(i * 7 + 1);
	s.keks[0].len = 32;
	s.kek_count = 1;
	s.kek_current = 0;
	char err[256];
	assert(blobstore_new(top, &s, &store, err, sizeof err) == 0);
	for (size_t i = 0; i < P_LEN; i++)
		plain[i] = (unsigned char)(i * 31 + (i >> 8));
	blobstore_writer *w;
	assert(blobstore_put_begin(store, &w) == 0);
	snprintf(blob_id, sizeof blob_id, "%s", blobstore_writer_id(w));
	assert(blobstore_put_write(w, plain, P_LEN) == 0);
	assert(blobstore_put_commit(&w, NULL) == 0);
	snprintf(blob_path, sizeof blob_path, "%s/data/%.2s/%s", top, blob_id, blob_id);
	int fd = open(blob_path, O_RDONLY);
	assert(fd >= 0);
	v_file = malloc(FILE_MAX);
	work = malloc(FILE_MAX);
	out = malloc(P_LEN);
	assert(v_file && work && out);
	ssize_t n = read(fd, v_file, FILE_MAX);
	close(fd);
	assert(n > 0 && (uint64_t)n == blobfile_file_size(P_LEN));
	v_len = (size_t)n;
}

static void write_work(size_t len)
{
	int fd = open(blob_path, O_WRONLY | O_TRUNC);
	assert(fd >= 0);
	assert(write(fd, work, len) == (ssize_t)len);
	close(fd);
}

/* Read [off, off+len) (len UINT64_MAX: to the end); every byte given out
 * must be P's. Returns the first error (0 if none); *got bytes read. */
static int read_check(uint64_t off, uint64_t len, size_t cap, size_t *got)
{
	blobstore_reader *r = NULL;
	*got = 0;
	int rc = blobstore_get_open(store, blob_id, &r);
	assert(rc == 0 || rc == ERR_CORRUPT || rc == ERR_CONFIG);
	if (rc != 0) {
		assert(r == NULL);
		return rc;
	}
	uint64_t size = blobstore_reader_size(r);
	assert(size == P_LEN); /* authenticated: only V's header opens */
	if (off > size)
		off = size;
	if (len == UINT64_MAX || len > size - off)
		len = size - off;
	assert(blobstore_get_range(r, off, len) == 0);
	for (;;) {
		size_t n = 0;
		rc = blobstore_get_read(r, out + *got, cap, &n);
		assert(rc == 0 || rc == ERR_CORRUPT);
		if (rc != 0 || n == 0)
			break;
		assert(n <= cap && *got + n <= len);
		assert(memcmp(out + *got, plain + off + *got, n) == 0);
		*got += n;
	}
	if (rc == 0)
		assert(*got == len);
	blobstore_get_close(&r);
	return rc;
}

static uint32_t get_u24(const uint8_t *p)
{
	return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		init();
		ready = 1;
	}
	if (size == 0)
		return 0;
	size_t len;
	uint64_t range_off = 0, range_len = UINT64_MAX;
	if ((data[0] & 1) == 0) {
		len = size - 1 < FILE_MAX ? size - 1 : FILE_MAX;
		memcpy(work, data + 1, len);
	} else {
		memcpy(work, v_file, v_len);
		len = v_len;
		const uint8_t *p = data + 1;
		size_t left = size - 1;
		if (left >= 6) {
			range_off = get_u24(p) % (P_LEN + 1);
			range_len = get_u24(p + 3);
			p += 6;
			left -= 6;
		}
		for (; left >= 5; p += 5, left -= 5) {
			uint32_t at = get_u24(p + 1);
			switch (p[0] & 3) {
			case 0:
				if (len)
					work[at % len] ^= p[4] ? p[4] : 1;
				break;
			case 1:
				if (len)
					work[at % len] = p[4];
				break;
			case 2:
				len = at % (len + 1);
				break;
			default: /* append p[4] + 1 bytes copied from `at` */
				for (unsigned k = 0; k <= p[4] && len < FILE_MAX && v_len; k++)
					work[len++] = v_file[(at + k) % v_len];
				break;
			}
		}
	}
	write_work(len);
	/* does the file differ from V where it counts (all but key slot 1)? */
	int same = len == v_len && memcmp(work, v_file, BLOBFILE_SLOT_OFFSET(1)) == 0 &&
		   memcmp(work + BLOBFILE_DATA_OFFSET, v_file + BLOBFILE_DATA_OFFSET,
			  v_len - BLOBFILE_DATA_OFFSET) == 0;
	size_t got;
	int rc = read_check(0, UINT64_MAX, 40000, &got);
	if (same)
		assert(rc == 0 && got == P_LEN);
	else
		assert(rc != 0); /* damage anywhere is found by the end of a full read */
	int rc2 = read_check(range_off, range_len, 4096, &got);
	if (same)
		assert(rc2 == 0);
	return 0;
}
