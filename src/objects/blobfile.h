/*
 * blobfile.h - the on-disk format of one encrypted blob, as pure functions
 * on buffers (no I/O: blobstore.c reads and writes the files, the fuzz
 * target and the unit tests reach the format through it).
 *
 *   offset  size            field
 *   0       64              header: magic "TNDMBLOB", version 1, 3 zero
 *                           bytes, chunk size (u32 BE, 65536), nonce prefix
 *                           (4 random bytes), 4 zero bytes, plaintext size
 *                           (u64 BE), 32 zero bytes
 *   64      128             key slot 0 } the data key wrapped by a KEK; the
 *   192     128             key slot 1 } valid slot with the higher
 *                                        generation is current
 *   320     n * (c + 16)    chunks: AES-256-GCM ciphertext of c plaintext
 *                           bytes (the last one shorter) and its 16-byte tag
 *
 * Key slot: generation (u64 BE, 0 = empty), KEK id (32 bytes, NUL padded),
 * wrap nonce (12), wrapped data key (32), tag (16), 28 zero bytes. The wrap
 * is AES-256-GCM under the KEK with associated data = header || blob id ||
 * generation || KEK id, so the plaintext size, chunk size and nonce prefix
 * are authenticated by every slot and a file cannot pass for another id.
 *
 * Chunk i: nonce = nonce prefix || i (u64 BE), unique under the blob's own
 * random data key; associated data = header[0..24) (magic .. nonce prefix,
 * fixed before the first chunk is sealed) || blob id || i (u64 BE) || last
 * flag (1 on the final chunk, else 0). A blob of n bytes has
 * max(1, ceil(n / c)) chunks: even the empty blob has one (empty, last)
 * chunk, so truncation to a chunk boundary always fails a tag.
 */
#ifndef TANDEM_OBJECTS_BLOBFILE_H
#define TANDEM_OBJECTS_BLOBFILE_H

#include <stddef.h>
#include <stdint.h>

#define BLOBFILE_CHUNK 65536u
#define BLOBFILE_TAG 16u
#define BLOBFILE_HEADER_BYTES 64u
#define BLOBFILE_SLOT_BYTES 128u
#define BLOBFILE_SLOTS 2
#define BLOBFILE_SLOT_OFFSET(i) (BLOBFILE_HEADER_BYTES + (unsigned)(i) * BLOBFILE_SLOT_BYTES)
#define BLOBFILE_DATA_OFFSET (BLOBFILE_HEADER_BYTES + BLOBFILE_SLOTS * BLOBFILE_SLOT_BYTES)
#define BLOBFILE_ID_BYTES 16u
#define BLOBFILE_KEY_BYTES 32u
#define BLOBFILE_KEK_ID_MAX 32u /* with its NUL, as secrets_key.id */
/* the largest plaintext a blob may hold (1 TiB): far above any object
 * limit, low enough that no offset computation can overflow */
#define BLOBFILE_MAX_SIZE (UINT64_C(1) << 40)

typedef struct blobfile_header {
	uint32_t chunk_size;
	unsigned char nonce_prefix[4];
	uint64_t size; /* plaintext bytes */
} blobfile_header;

/* Serialize; cannot fail. */
void blobfile_header_encode(const blobfile_header *h, unsigned char out[BLOBFILE_HEADER_BYTES]);
/* Parse and check (magic, version, chunk size, zero padding, size bound);
 * 0 or ERR_CORRUPT (out unspecified). */
int blobfile_header_decode(const unsigned char in[BLOBFILE_HEADER_BYTES], blobfile_header *out);
/* Number of chunks and total file size of a blob of `size` plaintext bytes
 * (size <= BLOBFILE_MAX_SIZE). Cannot fail. */
uint64_t blobfile_chunk_count(uint64_t size);
uint64_t blobfile_file_size(uint64_t size);

/* Wrap data_key under kek into a slot. 0 or ERR_TLS (out wiped). kek_id
 * must be shorter than BLOBFILE_KEK_ID_MAX (else ERR_INVAL). */
int blobfile_slot_seal(const unsigned char header[BLOBFILE_HEADER_BYTES],
		       const unsigned char id[BLOBFILE_ID_BYTES], uint64_t generation,
		       const char *kek_id, const unsigned char kek[BLOBFILE_KEY_BYTES],
		       const unsigned char data_key[BLOBFILE_KEY_BYTES],
		       unsigned char out[BLOBFILE_SLOT_BYTES]);
/* The unauthenticated fields of a slot, to find its KEK: 0, ERR_NOTFOUND
 * for an empty slot (all zero), ERR_CORRUPT for a malformed one (a KEK id
 * that is not printable ASCII, non-zero padding). kek_id is only ever
 * printable ASCII, safe to log. */
int blobfile_slot_peek(const unsigned char slot[BLOBFILE_SLOT_BYTES], uint64_t *generation,
		       char kek_id[BLOBFILE_KEK_ID_MAX]);
/* Unwrap: 0, or ERR_CORRUPT when the tag does not verify (data_key wiped),
 * ERR_TLS when OpenSSL fails. */
int blobfile_slot_open(const unsigned char header[BLOBFILE_HEADER_BYTES],
		       const unsigned char id[BLOBFILE_ID_BYTES],
		       const unsigned char slot[BLOBFILE_SLOT_BYTES],
		       const unsigned char kek[BLOBFILE_KEY_BYTES],
		       unsigned char data_key[BLOBFILE_KEY_BYTES]);

/* The chunk cipher of one blob: its data key, id and header prefix. Owned
 * by one thread at a time. */
typedef struct blobfile_cipher blobfile_cipher;
/* NULL on allocation failure. The key is copied (and wiped at free). */
blobfile_cipher *blobfile_cipher_new(const unsigned char data_key[BLOBFILE_KEY_BYTES],
				     const unsigned char header[BLOBFILE_HEADER_BYTES],
				     const unsigned char id[BLOBFILE_ID_BYTES]);
void blobfile_cipher_free(blobfile_cipher **c);
/* Seal len (<= chunk size) plaintext bytes as chunk `index` into out
 * (len + BLOBFILE_TAG bytes; out may equal in). 0 or ERR_TLS. */
int blobfile_chunk_seal(blobfile_cipher *c, uint64_t index, int last, const unsigned char *in,
			size_t len, unsigned char *out);
/* Open a sealed chunk of len bytes (ciphertext and tag) into out (len -
 * BLOBFILE_TAG bytes; out may equal in). 0, or ERR_CORRUPT when the tag
 * fails (out wiped: no unauthenticated byte is left behind), ERR_TLS. */
int blobfile_chunk_open(blobfile_cipher *c, uint64_t index, int last, const unsigned char *in,
			size_t len, unsigned char *out);
/* The same with the tag apart: plain ciphertext bytes at in, its tag at
 * tag (a batch of chunks read with one preadv lands as contiguous
 * plaintext, the tags elsewhere). */
int blobfile_chunk_open_tag(blobfile_cipher *c, uint64_t index, int last, const unsigned char *in,
			    size_t plain, const unsigned char tag[BLOBFILE_TAG], unsigned char *out);

#endif
