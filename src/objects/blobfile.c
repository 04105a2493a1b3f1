/*
 * blobfile.c - encode, decode, seal and open the parts of a blob file; see
 * blobfile.h for the format and docs/OBJECTS.md for why it looks so.
 */
#include "objects/blobfile.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/err.h"
#include "core/util.h"

static const unsigned char blobfile_magic[8] = {'T', 'N', 'D', 'M', 'B', 'L', 'O', 'B'};
#define BLOBFILE_VERSION 1
#define BLOBFILE_NONCE 12
/* header[0..24): the fields fixed before the first chunk is sealed */
#define BLOBFILE_HEADER_FIXED 24

/* key slot layout */
#define SLOT_GEN 0
#define SLOT_KEK_ID 8
#define SLOT_NONCE (SLOT_KEK_ID + BLOBFILE_KEK_ID_MAX)
#define SLOT_KEY (SLOT_NONCE + BLOBFILE_NONCE)
#define SLOT_TAG (SLOT_KEY + BLOBFILE_KEY_BYTES)
#define SLOT_END (SLOT_TAG + BLOBFILE_TAG)
_Static_assert(SLOT_END <= BLOBFILE_SLOT_BYTES, "key slot overflows");

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static int all_zero(const unsigned char *p, size_t n)
{
	unsigned char acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

void blobfile_header_encode(const blobfile_header *h, unsigned char out[BLOBFILE_HEADER_BYTES])
{
	memset(out, 0, BLOBFILE_HEADER_BYTES);
	memcpy(out, blobfile_magic, sizeof blobfile_magic);
	out[8] = BLOBFILE_VERSION;
	put_u32(out + 12, h->chunk_size);
	memcpy(out + 16, h->nonce_prefix, 4);
	put_u64(out + 24, h->size);
}

int blobfile_header_decode(const unsigned char in[BLOBFILE_HEADER_BYTES], blobfile_header *out)
{
	if (memcmp(in, blobfile_magic, sizeof blobfile_magic) != 0 || in[8] != BLOBFILE_VERSION ||
	    !all_zero(in + 9, 3) || !all_zero(in + 20, 4) || !all_zero(in + 32, 32))
		return ERR_CORRUPT;
	out->chunk_size = (uint32_t)in[12] << 24 | (uint32_t)in[13] << 16 | (uint32_t)in[14] << 8 | in[15];
	memcpy(out->nonce_prefix, in + 16, 4);
	out->size = get_u64(in + 24);
	/* one chunk size per format version: readers size their buffer by it */
	if (out->chunk_size != BLOBFILE_CHUNK || out->size > BLOBFILE_MAX_SIZE)
		return ERR_CORRUPT;
	return 0;
}

uint64_t blobfile_chunk_count(uint64_t size)
{
	return size == 0 ? 1 : (size + BLOBFILE_CHUNK - 1) / BLOBFILE_CHUNK;
}

uint64_t blobfile_file_size(uint64_t size)
{
	return BLOBFILE_DATA_OFFSET + size + blobfile_chunk_count(size) * BLOBFILE_TAG;
}

/* One AES-256-GCM operation (enc 1: seal, 0: open) with a 12-byte nonce
 * and associated data; on open, tag is checked and out wiped on failure.
 * 0, ERR_CORRUPT (open: bad tag), ERR_TLS. */
static int gcm_run(EVP_CIPHER_CTX *ctx, int enc, const unsigned char *key,
		   const unsigned char nonce[BLOBFILE_NONCE], const unsigned char *aad, size_t aadlen,
		   const unsigned char *in, size_t len, unsigned char *out, unsigned char tag[BLOBFILE_TAG])
{
	int n = 0, rc = ERR_TLS;
	if (len > INT32_MAX || aadlen > INT32_MAX)
		return ERR_INVAL;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc) != 1)
		goto done;
	if (EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto done;
	if (len > 0 && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
		goto done;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, BLOBFILE_TAG, tag) != 1)
		goto done;
	if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1) {
		rc = enc ? ERR_TLS : ERR_CORRUPT;
		goto done;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, BLOBFILE_TAG, tag) != 1)
		goto done;
	rc = 0;
done:
	if (rc != 0 && len > 0)
		OPENSSL_cleanse(out, len);
	return rc;
}

/* header || id || slot[0..SLOT_NONCE): what a key slot authenticates */
#define SLOT_AAD_BYTES (BLOBFILE_HEADER_BYTES + BLOBFILE_ID_BYTES + SLOT_NONCE)
static void slot_aad(const unsigned char *header, const unsigned char *id, const unsigned char *slot,
		     unsigned char aad[SLOT_AAD_BYTES])
{
	memcpy(aad, header, BLOBFILE_HEADER_BYTES);
	memcpy(aad + BLOBFILE_HEADER_BYTES, id, BLOBFILE_ID_BYTES);
	memcpy(aad + BLOBFILE_HEADER_BYTES + BLOBFILE_ID_BYTES, slot, SLOT_NONCE);
}

int blobfile_slot_seal(const unsigned char header[BLOBFILE_HEADER_BYTES],
		       const unsigned char id[BLOBFILE_ID_BYTES], uint64_t generation,
		       const char *kek_id, const unsigned char kek[BLOBFILE_KEY_BYTES],
		       const unsigned char data_key[BLOBFILE_KEY_BYTES],
		       unsigned char out[BLOBFILE_SLOT_BYTES])
{
	size_t idlen = strlen(kek_id);
	memset(out, 0, BLOBFILE_SLOT_BYTES);
	if (idlen == 0 || idlen >= BLOBFILE_KEK_ID_MAX || generation == 0)
		return ERR_INVAL;
	put_u64(out + SLOT_GEN, generation);
	memcpy(out + SLOT_KEK_ID, kek_id, idlen);
	/* a random nonce per wrap: 2^32 wraps under one KEK stay far below
	 * GCM's collision bound for random 96-bit nonces */
	util_random(out + SLOT_NONCE, BLOBFILE_NONCE);
	unsigned char aad[SLOT_AAD_BYTES];
	slot_aad(header, id, out, aad);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return ERR_TLS;
	int rc = gcm_run(ctx, 1, kek, out + SLOT_NONCE, aad, sizeof aad, data_key, BLOBFILE_KEY_BYTES,
			 out + SLOT_KEY, out + SLOT_TAG);
	EVP_CIPHER_CTX_free(ctx);
	if (rc != 0)
		memset(out, 0, BLOBFILE_SLOT_BYTES);
	return rc;
}

int blobfile_slot_peek(const unsigned char slot[BLOBFILE_SLOT_BYTES], uint64_t *generation,
		       char kek_id[BLOBFILE_KEK_ID_MAX])
{
	kek_id[0] = '\0';
	*generation = 0;
	if (all_zero(slot, BLOBFILE_SLOT_BYTES))
		return ERR_NOTFOUND;
	if (!all_zero(slot + SLOT_END, BLOBFILE_SLOT_BYTES - SLOT_END))
		return ERR_CORRUPT;
	uint64_t gen = get_u64(slot + SLOT_GEN);
	const unsigned char *k = slot + SLOT_KEK_ID;
	size_t len = 0;
	while (len < BLOBFILE_KEK_ID_MAX && k[len] != 0)
		len++;
	if (gen == 0 || len == 0 || len == BLOBFILE_KEK_ID_MAX ||
	    !all_zero(k + len, BLOBFILE_KEK_ID_MAX - len))
		return ERR_CORRUPT;
	for (size_t i = 0; i < len; i++)
		if (k[i] <= ' ' || k[i] > '~')
			return ERR_CORRUPT; /* only printable ids: the caller logs it */
	memcpy(kek_id, k, len + 1);
	*generation = gen;
	return 0;
}

int blobfile_slot_open(const unsigned char header[BLOBFILE_HEADER_BYTES],
		       const unsigned char id[BLOBFILE_ID_BYTES],
		       const unsigned char slot[BLOBFILE_SLOT_BYTES],
		       const unsigned char kek[BLOBFILE_KEY_BYTES],
		       unsigned char data_key[BLOBFILE_KEY_BYTES])
{
	unsigned char aad[SLOT_AAD_BYTES], tag[BLOBFILE_TAG];
	slot_aad(header, id, slot, aad);
	memcpy(tag, slot + SLOT_TAG, sizeof tag);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return ERR_TLS;
	int rc = gcm_run(ctx, 0, kek, slot + SLOT_NONCE, aad, sizeof aad, slot + SLOT_KEY,
			 BLOBFILE_KEY_BYTES, data_key, tag);
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* header prefix || id || index || last */
#define CHUNK_AAD_BYTES (BLOBFILE_HEADER_FIXED + BLOBFILE_ID_BYTES + 8 + 1)

struct blobfile_cipher {
	EVP_CIPHER_CTX *ctx;
	unsigned char key[BLOBFILE_KEY_BYTES];
	unsigned char nonce_prefix[4];
	unsigned char aad[CHUNK_AAD_BYTES]; /* index and flag rewritten per chunk */
};

blobfile_cipher *blobfile_cipher_new(const unsigned char data_key[BLOBFILE_KEY_BYTES],
				     const unsigned char header[BLOBFILE_HEADER_BYTES],
				     const unsigned char id[BLOBFILE_ID_BYTES])
{
	blobfile_cipher *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->ctx = EVP_CIPHER_CTX_new();
	if (!c->ctx) {
		free(c);
		return NULL;
	}
	memcpy(c->key, data_key, sizeof c->key);
	memcpy(c->nonce_prefix, header + 16, 4);
	memcpy(c->aad, header, BLOBFILE_HEADER_FIXED);
	memcpy(c->aad + BLOBFILE_HEADER_FIXED, id, BLOBFILE_ID_BYTES);
	return c;
}

void blobfile_cipher_free(blobfile_cipher **c)
{
	if (!c || !*c)
		return;
	EVP_CIPHER_CTX_free((*c)->ctx);
	OPENSSL_cleanse(*c, sizeof **c);
	free(*c);
	*c = NULL;
}

static void chunk_params(blobfile_cipher *c, uint64_t index, int last,
			 unsigned char nonce[BLOBFILE_NONCE])
{
	memcpy(nonce, c->nonce_prefix, 4);
	put_u64(nonce + 4, index);
	put_u64(c->aad + BLOBFILE_HEADER_FIXED + BLOBFILE_ID_BYTES, index);
	c->aad[CHUNK_AAD_BYTES - 1] = last ? 1 : 0;
}

int blobfile_chunk_seal(blobfile_cipher *c, uint64_t index, int last, const unsigned char *in,
			size_t len, unsigned char *out)
{
	if (len > BLOBFILE_CHUNK)
		return ERR_INVAL;
	unsigned char nonce[BLOBFILE_NONCE];
	chunk_params(c, index, last, nonce);
	return gcm_run(c->ctx, 1, c->key, nonce, c->aad, sizeof c->aad, in, len, out, out + len);
}

int blobfile_chunk_open(blobfile_cipher *c, uint64_t index, int last, const unsigned char *in,
			size_t len, unsigned char *out)
{
	if (len < BLOBFILE_TAG || len > BLOBFILE_CHUNK + BLOBFILE_TAG)
		return ERR_CORRUPT;
	unsigned char tag[BLOBFILE_TAG];
	size_t plain = len - BLOBFILE_TAG;
	memcpy(tag, in + plain, BLOBFILE_TAG); /* before out (maybe == in) is written */
	return blobfile_chunk_open_tag(c, index, last, in, plain, tag, out);
}

int blobfile_chunk_open_tag(blobfile_cipher *c, uint64_t index, int last, const unsigned char *in,
			    size_t plain, const unsigned char tag[BLOBFILE_TAG], unsigned char *out)
{
	if (plain > BLOBFILE_CHUNK)
		return ERR_CORRUPT;
	unsigned char nonce[BLOBFILE_NONCE], t[BLOBFILE_TAG];
	memcpy(t, tag, BLOBFILE_TAG);
	chunk_params(c, index, last, nonce);
	return gcm_run(c->ctx, 0, c->key, nonce, c->aad, sizeof c->aad, in, plain, out, t);
}
