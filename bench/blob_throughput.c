/*
 * blob_throughput.c - raw throughput of the blob store (src/objects/) on
 * one core: AES-256-GCM chunk sealing and opening alone, the checksums
 * alone (MD5, SHA-256, CRC32, CRC32C), and whole puts (checksums, sealing,
 * write, fsync, rename, directory fsync) and gets (read, verify, decrypt)
 * through a store in DIR. Not part of `make bench` (no --tandem: it links
 * the library, not the binary). Build and run after `make`:
 *
 *   cc -O2 -Isrc -D_GNU_SOURCE -o build/blob_throughput bench/blob_throughput.c \
 *      build/libtandem.a $(pkg-config --libs openssl sqlite3 libevent jansson libargon2 inih) -lpthread
 *   build/blob_throughput [--dir DIR] [--mib TOTAL] [--blob-kib SIZE] [--quick]
 *
 * Figures are MB/s of plaintext (10^6 bytes per second).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/secrets.h"
#include "core/util.h"
#include "objects/blobfile.h"
#include "objects/blobhash.h"
#include "objects/blobstore.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *what, double bytes, double secs)
{
	printf("%-34s %9.1f MB/s\n", what, bytes / secs / 1e6);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	long total_mib = 256, blob_kib = 1024;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
			total_mib = atol(argv[++i]);
		else if (strcmp(argv[i], "--blob-kib") == 0 && i + 1 < argc)
			blob_kib = atol(argv[++i]);
		else if (strcmp(argv[i], "--quick") == 0)
			total_mib = 16;
		else {
			fprintf(stderr, "usage: %s [--dir DIR] [--mib N] [--blob-kib N] [--quick]\n", argv[0]);
			return 2;
		}
	}
	if (total_mib <= 0 || blob_kib <= 0)
		return 2;
	log_setup("bench", LOG_WARN);
	size_t total = (size_t)total_mib << 20, blob = (size_t)blob_kib << 10;
	unsigned char *buf = malloc(blob > BLOBFILE_CHUNK + BLOBFILE_TAG ? blob : BLOBFILE_CHUNK + BLOBFILE_TAG);
	unsigned char *chunk = malloc(BLOBFILE_CHUNK + BLOBFILE_TAG);
	util_random(buf, blob);

	/* sealing and opening alone */
	unsigned char key[32], id[16], head[BLOBFILE_HEADER_BYTES];
	util_random(key, sizeof key);
	util_random(id, sizeof id);
	blobfile_header h = {.chunk_size = BLOBFILE_CHUNK, .size = 0};
	blobfile_header_encode(&h, head);
	blobfile_cipher *c = blobfile_cipher_new(key, head, id);
	uint64_t n = total / BLOBFILE_CHUNK;
	double t = now_s();
	for (uint64_t i = 0; i < n; i++)
		blobfile_chunk_seal(c, i, 0, buf, BLOBFILE_CHUNK, chunk);
	report("seal (AES-256-GCM, 64 KiB chunks)", (double)n * BLOBFILE_CHUNK, now_s() - t);
	blobfile_chunk_seal(c, 0, 0, buf, BLOBFILE_CHUNK, chunk);
	unsigned char *sealed = malloc(BLOBFILE_CHUNK + BLOBFILE_TAG);
	t = now_s();
	for (uint64_t i = 0; i < n; i++) {
		memcpy(sealed, chunk, BLOBFILE_CHUNK + BLOBFILE_TAG);
		if (blobfile_chunk_open(c, 0, 0, sealed, BLOBFILE_CHUNK + BLOBFILE_TAG, sealed) != 0)
			abort();
	}
	report("open (verify + decrypt)", (double)n * BLOBFILE_CHUNK, now_s() - t);
	blobfile_cipher_free(&c);

	/* checksums alone */
	blobhash *bh = blobhash_new();
	t = now_s();
	for (uint64_t i = 0; i < n; i++)
		blobhash_update(bh, buf, BLOBFILE_CHUNK);
	report("checksums (MD5+SHA256+CRC32+CRC32C)", (double)n * BLOBFILE_CHUNK, now_s() - t);
	blobhash_free(&bh);
	uint32_t crc = 0;
	t = now_s();
	for (uint64_t i = 0; i < n; i++)
		crc = blobhash_crc32c(crc, buf, BLOBFILE_CHUNK);
	report("  of which CRC32C alone", (double)n * BLOBFILE_CHUNK, now_s() - t);

	/* whole puts and gets */
	char root[256];
	snprintf(root, sizeof root, "%s/blobbench-XXXXXX", dir ? dir : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	secrets s;
	memset(&s, 0, sizeof s);
	snprintf(s.keks[0].id, sizeof s.keks[0].id, "k1");
	util_random(s.keks[0].key, 32);
	s.kek_count = 1;
	blobstore *bs;
	char err[256];
	if (blobstore_new(root, &s, &bs, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	size_t count = total / blob ? total / blob : 1;
	char (*ids)[33] = calloc(count, 33);
	t = now_s();
	for (size_t i = 0; i < count; i++) {
		blobstore_writer *w;
		if (blobstore_put_begin(bs, &w) != 0)
			abort();
		snprintf(ids[i], 33, "%s", blobstore_writer_id(w));
		for (size_t off = 0; off < blob; off += 16384)
			blobstore_put_write(w, buf + off, blob - off < 16384 ? blob - off : 16384);
		if (blobstore_put_commit(&w, NULL) != 0)
			abort();
	}
	double put_s = now_s() - t;
	char what[80];
	snprintf(what, sizeof what, "put %ld KiB blobs (fsync'd)", blob_kib);
	report(what, (double)count * (double)blob, put_s);
	printf("%-34s %9.2f ms\n", "  per put", put_s * 1000 / (double)count);
	t = now_s();
	for (size_t i = 0; i < count; i++) {
		blobstore_reader *r;
		if (blobstore_get_open(bs, ids[i], &r) != 0)
			abort();
		size_t got;
		do
			if (blobstore_get_read(r, buf, 16384, &got) != 0)
				abort();
		while (got > 0);
		blobstore_get_close(&r);
	}
	snprintf(what, sizeof what, "get %ld KiB blobs (page cache)", blob_kib);
	report(what, (double)count * (double)blob, now_s() - t);
	for (size_t i = 0; i < count; i++)
		blobstore_delete(bs, ids[i]);
	blobstore_free(&bs);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", root);
	free(ids);
	free(buf);
	free(chunk);
	free(sealed);
	return 0;
}
