/*
 * blobhash.h - the checksums S3 needs of an object's plaintext, computed in
 * one streaming pass while the blob is written: size, and those asked for of
 * MD5 (the ETag of a single-part object), SHA-256, CRC32 (ISO-HDLC, as zlib
 * and x-amz-checksum-crc32) and CRC32C (Castagnoli, x-amz-checksum-crc32c).
 *
 * CRC32 and CRC32C come from a small slice-by-8 table implementation here
 * (no zlib dependency for one function, and zlib has no CRC32C); MD5 and
 * SHA-256 from OpenSSL's EVP. A blobhash is owned by one thread at a time.
 */
#ifndef TANDEM_OBJECTS_BLOBHASH_H
#define TANDEM_OBJECTS_BLOBHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct blobhash blobhash;

/* Which checksums a blobhash computes (size always): each costs a pass over
 * the bytes (per MiB on this project's 2-core VM: MD5 ~1.5 ms, CRC32 and
 * CRC32C ~0.6 ms each, SHA-256 ~0.7 ms with SHA-NI), so callers ask only
 * for what they use (docs/OBJECTS.md, "Integrity"). */
enum {
	BLOBHASH_MD5 = 1 << 0,
	BLOBHASH_SHA256 = 1 << 1,
	BLOBHASH_CRC32 = 1 << 2,
	BLOBHASH_CRC32C = 1 << 3,
	BLOBHASH_ALL = BLOBHASH_MD5 | BLOBHASH_SHA256 | BLOBHASH_CRC32 | BLOBHASH_CRC32C,
};

/* The finished checksums of a blob's plaintext; those not asked for are
 * zero (have says which were computed). */
typedef struct blob_sums {
	unsigned have; /* BLOBHASH_* */
	uint64_t size;
	unsigned char md5[16];
	unsigned char sha256[32];
	uint32_t crc32;
	uint32_t crc32c;
} blob_sums;

/* A new running checksum of every kind (BLOBHASH_ALL); NULL on allocation
 * or OpenSSL failure. */
blobhash *blobhash_new(void);
/* The same, computing only the kinds in what (BLOBHASH_*; 0: size only). */
blobhash *blobhash_new_for(unsigned what);
/* Feed bytes; 0, or ERR_TLS when OpenSSL fails (the hash is then unusable:
 * free it). */
int blobhash_update(blobhash *h, const void *data, size_t len);
/* Finish into out; 0 or ERR_TLS. The hash cannot be updated afterwards. */
int blobhash_final(blobhash *h, blob_sums *out);
/* No-op on NULL; resets *h. */
void blobhash_free(blobhash **h);

/* CRC32 / CRC32C of len bytes continuing from crc (start with 0). Cannot
 * fail; thread-safe. */
uint32_t blobhash_crc32(uint32_t crc, const void *data, size_t len);
uint32_t blobhash_crc32c(uint32_t crc, const void *data, size_t len);

#endif
