/*
 * chunked.c - the aws-chunked body decoder (format, states and the caller's
 * contract in chunked.h).
 *
 * Invariants: total never exceeds decoded_length (a size line announcing
 * more is refused before any of its data is handed out); the line buffer
 * never holds more than max_line bytes nor the trailer buffer more than
 * max_trailer; `previous` is always the last verified signature of the
 * chain; once state is ST_ERROR or ST_DONE no byte is consumed.
 */
#include "objects/chunked.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/util.h"

typedef enum chunk_state {
	ST_LINE = 0, /* collecting a size line */
	ST_DATA,     /* chunk data, `remaining` bytes to go */
	ST_DATA_CR,  /* the CRLF after the data */
	ST_DATA_LF,
	ST_TRAILER,  /* collecting trailer lines up to an empty one */
	ST_DONE,
	ST_ERROR,
} chunk_state;

typedef enum checksum_kind {
	CK_NONE = 0,
	CK_CRC32,
	CK_CRC32C,
	CK_CRC64NVME,
	CK_SHA1,
	CK_SHA256,
} checksum_kind;

static const struct {
	const char *header;
	checksum_kind kind;
	const char *label; /* for messages */
} checksums[] = {
	{"x-amz-checksum-crc32", CK_CRC32, "CRC32"},
	{"x-amz-checksum-crc32c", CK_CRC32C, "CRC32C"},
	{"x-amz-checksum-crc64nvme", CK_CRC64NVME, "CRC64NVME"},
	{"x-amz-checksum-sha1", CK_SHA1, "SHA1"},
	{"x-amz-checksum-sha256", CK_SHA256, "SHA256"},
};

#define DECODER_MAGIC 0x41574343u /* "AWCC" */
#define TRAILER_SIGNATURE "x-amz-trailer-signature"

struct awschunked {
	unsigned magic;
	chunk_state state;
	bool signed_chunks; /* chunk-signature on every size line */
	bool trailers;      /* a -TRAILER mode: trailer lines may come */
	sigv4_chain chain;
	char previous[SIGV4_SIGNATURE_HEX + 1]; /* the chain's last verified link */
	char announced[SIGV4_SIGNATURE_HEX + 1]; /* the current chunk's signature */
	EVP_MD_CTX *chunk_hash;                  /* SHA-256 of the current chunk */
	int64_t decoded_length;
	bool small_seen;     /* a signed data chunk under AWSCHUNKED_MIN_CHUNK came */
	uint64_t total;
	uint64_t remaining;  /* ST_DATA */
	/* the declared trailing checksum */
	int checksum;        /* index into checksums[], -1: none */
	uint32_t crc32;
	uint64_t crc64;
	EVP_MD_CTX *checksum_hash; /* sha1 / sha256 */
	bool checksum_seen;
	char checksum_value[96];   /* base64, verified */
	/* buffers */
	char *line;
	size_t line_len, line_max;
	char *trailer;             /* the canonical trailer lines, "name:value\n" */
	size_t trailer_len, trailer_bytes, trailer_max; /* bytes: on the wire */
	char trailer_signature[SIGV4_SIGNATURE_HEX + 1];
	awschunked_sink sink;
	void *sink_arg;
	sigv4_error error;
};

/* ------------------------------------------------------------- errors */

static int fail(awschunked *d, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Enter the sticky error state with this answer. Returns ERR_AUTH. */
static int fail(awschunked *d, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	d->error.status = status;
	d->error.code = code;
	va_start(ap, fmt);
	vsnprintf(d->error.message, sizeof d->error.message, fmt, ap);
	va_end(ap);
	d->state = ST_ERROR;
	return ERR_AUTH;
}

static int malformed(awschunked *d, const char *what)
{
	return fail(d, 400, "InvalidRequest", "Malformed aws-chunked body: %s", what);
}

static int bad_signature(awschunked *d)
{
	return fail(d, 403, "SignatureDoesNotMatch",
		    "The request signature we calculated does not match the signature you provided. "
		    "Check your key and signing method.");
}

/* ------------------------------------------------------------- checksums */

/* Reflected CRC tables, built once (the polynomials of CRC-32/ISO-HDLC,
 * CRC-32C/Castagnoli and CRC-64/NVME). The 32-bit ones are sliced by 8
 * (eight bytes per step, about 3x a byte-wise loop: SDKs send a CRC32 with
 * every upload by default). */
static uint32_t crc32_table[8][256], crc32c_table[8][256];
static uint64_t crc64_table[256];

static void build_tables(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t a = i, b = i;
		uint64_t c = i;
		for (int k = 0; k < 8; k++) {
			a = (a >> 1) ^ ((a & 1) ? 0xEDB88320u : 0);
			b = (b >> 1) ^ ((b & 1) ? 0x82F63B78u : 0);
			c = (c >> 1) ^ ((c & 1) ? 0x9A6C9329AC4BC9B5ull : 0);
		}
		crc32_table[0][i] = a;
		crc32c_table[0][i] = b;
		crc64_table[i] = c;
	}
	for (int k = 1; k < 8; k++) {
		for (int i = 0; i < 256; i++) {
			uint32_t a = crc32_table[k - 1][i], b = crc32c_table[k - 1][i];
			crc32_table[k][i] = (a >> 8) ^ crc32_table[0][a & 0xff];
			crc32c_table[k][i] = (b >> 8) ^ crc32c_table[0][b & 0xff];
		}
	}
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

uint64_t awschunked_crc64nvme(uint64_t crc, const void *data, size_t len)
{
	pthread_once(&tables_once, build_tables);
	const unsigned char *s = data;
	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = crc64_table[(crc ^ s[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* A reflected 32-bit CRC over s[0..n) with table t, eight bytes at a time. */
static uint32_t crc32_sliced(uint32_t crc, const uint32_t t[8][256], const unsigned char *s,
			     size_t n)
{
	while (n >= 8) {
		uint32_t lo = crc ^ ((uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 |
				     (uint32_t)s[3] << 24);
		uint32_t hi = (uint32_t)s[4] | (uint32_t)s[5] << 8 | (uint32_t)s[6] << 16 |
			      (uint32_t)s[7] << 24;
		crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
		      t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		      t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
		s += 8;
		n -= 8;
	}
	while (n--)
		crc = t[0][(crc ^ *s++) & 0xff] ^ (crc >> 8);
	return crc;
}

static void checksum_update(awschunked *d, const char *p, size_t n)
{
	if (d->checksum < 0)
		return;
	const unsigned char *s = (const unsigned char *)p;
	switch (checksums[d->checksum].kind) {
	case CK_CRC32:
		d->crc32 = crc32_sliced(d->crc32, crc32_table, s, n);
		break;
	case CK_CRC32C:
		d->crc32 = crc32_sliced(d->crc32, crc32c_table, s, n);
		break;
	case CK_CRC64NVME:
		for (size_t i = 0; i < n; i++)
			d->crc64 = crc64_table[(d->crc64 ^ s[i]) & 0xff] ^ (d->crc64 >> 8);
		break;
	case CK_SHA1:
	case CK_SHA256:
		if (EVP_DigestUpdate(d->checksum_hash, p, n) != 1)
			abort(); /* cannot happen: in-memory digest */
		break;
	case CK_NONE:
		break;
	}
}

/* The base64 of the final checksum (big-endian bytes, as S3 shows it). */
static void checksum_final(awschunked *d, char *out, size_t cap)
{
	unsigned char raw[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	switch (checksums[d->checksum].kind) {
	case CK_CRC32:
	case CK_CRC32C: {
		uint32_t v = ~d->crc32;
		for (int i = 0; i < 4; i++)
			raw[i] = (unsigned char)(v >> (24 - 8 * i));
		n = 4;
		break;
	}
	case CK_CRC64NVME: {
		uint64_t v = ~d->crc64;
		for (int i = 0; i < 8; i++)
			raw[i] = (unsigned char)(v >> (56 - 8 * i));
		n = 8;
		break;
	}
	case CK_SHA1:
	case CK_SHA256:
		if (EVP_DigestFinal_ex(d->checksum_hash, raw, &n) != 1)
			abort(); /* cannot happen */
		break;
	case CK_NONE:
		break;
	}
	if (cap < 4 * ((n + 2) / 3) + 1)
		abort(); /* cannot happen: out holds a SHA-256's base64 */
	EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}

/* ------------------------------------------------------------- life cycle */

awschunked *awschunked_new(const awschunked_config *cfg, sigv4_error *err)
{
	memset(err, 0, sizeof *err);
	bool is_signed = cfg->mode == SIGV4_PAYLOAD_STREAMING ||
			 cfg->mode == SIGV4_PAYLOAD_STREAMING_TRAILER;
	if (!(is_signed || cfg->mode == SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER) ||
	    (is_signed && !cfg->chain) || cfg->decoded_length < 0 || !cfg->sink) {
		err->status = 400;
		err->code = "InvalidRequest";
		snprintf(err->message, sizeof err->message,
			 "An aws-chunked body needs a STREAMING-* x-amz-content-sha256 and an "
			 "x-amz-decoded-content-length");
		return NULL;
	}
	int checksum = -1;
	if (cfg->trailer && cfg->trailer[0]) {
		for (size_t i = 0; i < sizeof checksums / sizeof checksums[0]; i++)
			if (strcasecmp(cfg->trailer, checksums[i].header) == 0)
				checksum = (int)i;
		/* only the -TRAILER modes carry trailers */
		if (checksum < 0 || cfg->mode == SIGV4_PAYLOAD_STREAMING) {
			err->status = 400;
			err->code = "InvalidRequest";
			snprintf(err->message, sizeof err->message,
				 "The value specified in the x-amz-trailer header is not supported");
			return NULL;
		}
	}
	pthread_once(&tables_once, build_tables);
	awschunked *d = calloc(1, sizeof *d);
	if (!d)
		goto nomem;
	d->magic = DECODER_MAGIC;
	d->signed_chunks = is_signed;
	d->trailers = cfg->mode != SIGV4_PAYLOAD_STREAMING;
	if (is_signed) {
		d->chain = *cfg->chain;
		memcpy(d->previous, cfg->chain->seed, sizeof d->previous);
	}
	d->decoded_length = cfg->decoded_length;
	d->checksum = checksum;
	d->crc32 = 0xFFFFFFFFu;
	d->crc64 = ~0ull;
	d->line_max = cfg->max_line ? cfg->max_line : AWSCHUNKED_LINE_MAX;
	if (d->line_max < 96)
		d->line_max = 96; /* room for "hex;chunk-signature=<64>\r\n" */
	d->trailer_max = cfg->max_trailer ? cfg->max_trailer : AWSCHUNKED_TRAILER_MAX;
	d->sink = cfg->sink;
	d->sink_arg = cfg->sink_arg;
	d->line = malloc(d->line_max);
	d->trailer = malloc(d->trailer_max + 1);
	d->chunk_hash = EVP_MD_CTX_new();
	if (!d->line || !d->trailer || !d->chunk_hash)
		goto nomem;
	if (checksum >= 0 &&
	    (checksums[checksum].kind == CK_SHA1 || checksums[checksum].kind == CK_SHA256)) {
		d->checksum_hash = EVP_MD_CTX_new();
		if (!d->checksum_hash ||
		    EVP_DigestInit_ex(d->checksum_hash,
				      checksums[checksum].kind == CK_SHA1 ? EVP_sha1() : EVP_sha256(),
				      NULL) != 1)
			goto nomem;
	}
	if (EVP_DigestInit_ex(d->chunk_hash, EVP_sha256(), NULL) != 1)
		goto nomem;
	return d;
nomem:
	awschunked_free(&d);
	err->status = 500;
	err->code = "InternalError";
	snprintf(err->message, sizeof err->message,
		 "We encountered an internal error. Please try again.");
	return NULL;
}

void awschunked_free(awschunked **pd)
{
	if (!pd || !*pd)
		return;
	awschunked *d = *pd;
	if (d->magic != DECODER_MAGIC)
		abort(); /* a freed or foreign pointer */
	EVP_MD_CTX_free(d->chunk_hash);
	EVP_MD_CTX_free(d->checksum_hash);
	free(d->line);
	free(d->trailer);
	OPENSSL_cleanse(d, sizeof *d);
	free(d);
	*pd = NULL;
}

const sigv4_error *awschunked_error(const awschunked *d)
{
	return &d->error;
}

uint64_t awschunked_total(const awschunked *d)
{
	return d->total;
}

const char *awschunked_checksum(const awschunked *d, const char **name)
{
	if (d->state != ST_DONE || d->checksum < 0) {
		if (name)
			*name = NULL;
		return NULL;
	}
	if (name)
		*name = checksums[d->checksum].header;
	return d->checksum_value;
}

/* ------------------------------------------------------------- decoding */

/* Verify the chunk just ended (its data went through chunk_hash) against
 * the announced signature; the chain moves on. 0 or ERR_AUTH. */
static int verify_chunk(awschunked *d)
{
	if (!d->signed_chunks)
		return 0; /* unsigned chunks are not hashed at all */
	unsigned char h[32];
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(d->chunk_hash, h, &n) != 1 ||
	    EVP_DigestInit_ex(d->chunk_hash, EVP_sha256(), NULL) != 1)
		abort(); /* cannot happen: in-memory digest */
	char want[SIGV4_SIGNATURE_HEX + 1];
	sigv4_chunk_signature(&d->chain, d->previous, h, want);
	if (CRYPTO_memcmp(want, d->announced, SIGV4_SIGNATURE_HEX) != 0)
		return bad_signature(d);
	memcpy(d->previous, want, sizeof d->previous);
	return 0;
}

static bool is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* A complete size line (without its CRLF) in d->line. */
static int size_line(awschunked *d)
{
	const char *s = d->line;
	size_t n = d->line_len, i = 0;
	uint64_t size = 0;
	while (i < n && s[i] != ';') {
		int v;
		char c = s[i];
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v = c - 'A' + 10;
		else
			return malformed(d, "a chunk size is not hexadecimal");
		if (size >> 59)
			return malformed(d, "a chunk size is too large");
		size = size << 4 | (uint64_t)v;
		i++;
	}
	if (i == 0)
		return malformed(d, "a chunk size is missing");
	static const char ext[] = ";chunk-signature=";
	size_t ext_len = sizeof ext - 1;
	if (d->signed_chunks) {
		if (n - i != ext_len + SIGV4_SIGNATURE_HEX || memcmp(s + i, ext, ext_len) != 0 ||
		    !is_lower_hex(s + i + ext_len, SIGV4_SIGNATURE_HEX))
			return malformed(d, "a chunk lacks its chunk-signature");
		memcpy(d->announced, s + i + ext_len, SIGV4_SIGNATURE_HEX);
		d->announced[SIGV4_SIGNATURE_HEX] = '\0';
	} else if (i != n) {
		return malformed(d, "an unsigned chunk carries an extension");
	}
	/* AWS's rule, kept because each signed chunk costs two hashes and an
	 * HMAC: tiny chunks would multiply the work per byte received */
	if (d->signed_chunks && size > 0 && d->small_seen)
		return fail(d, 403, "InvalidChunkSizeError",
			    "Only the last chunk is allowed to have a size less than %d bytes",
			    AWSCHUNKED_MIN_CHUNK);
	if (size > 0 && size < AWSCHUNKED_MIN_CHUNK)
		d->small_seen = true;
	uint64_t left = (uint64_t)d->decoded_length - d->total;
	if (size > left)
		return fail(d, 400, "InvalidRequest",
			    "The aws-chunked body is longer than x-amz-decoded-content-length (%lld)",
			    (long long)d->decoded_length);
	if (size > 0) {
		d->remaining = size;
		d->state = ST_DATA;
		return 0;
	}
	/* the final chunk: its (empty) data is signed too */
	if (d->total != (uint64_t)d->decoded_length)
		return fail(d, 400, "IncompleteBody",
			    "The aws-chunked body ended after %llu bytes; x-amz-decoded-content-length "
			    "is %lld",
			    (unsigned long long)d->total, (long long)d->decoded_length);
	int rc = verify_chunk(d);
	if (rc)
		return rc;
	d->state = ST_TRAILER;
	return 0;
}

/* The trailer section ended (empty line): the checksum and the trailer's
 * signature. 0 or ERR_AUTH. */
static int end_trailer(awschunked *d)
{
	if (d->checksum >= 0) {
		if (!d->checksum_seen)
			return fail(d, 400, "MalformedTrailerError",
				    "The request contained trailing data that was not well-formed or "
				    "did not conform to our published schema (%s is missing).",
				    checksums[d->checksum].header);
	}
	if (d->signed_chunks && d->trailers) {
		if (!d->trailer_signature[0])
			return fail(d, 400, "MalformedTrailerError",
				    "The request contained trailing data that was not well-formed or "
				    "did not conform to our published schema (x-amz-trailer-signature "
				    "is missing).");
		unsigned char h[32];
		char want[SIGV4_SIGNATURE_HEX + 1];
		util_sha256(d->trailer, d->trailer_len, h);
		sigv4_trailer_signature(&d->chain, d->previous, h, want);
		if (CRYPTO_memcmp(want, d->trailer_signature, SIGV4_SIGNATURE_HEX) != 0)
			return bad_signature(d);
		memcpy(d->previous, want, sizeof d->previous);
	}
	/* the checksum last: a forged trailer is a signature failure, not a digest one */
	if (d->checksum >= 0) {
		char got[96];
		checksum_final(d, got, sizeof got);
		if (strcmp(got, d->checksum_value) != 0)
			return fail(d, 400, "BadDigest",
				    "The %s you specified did not match the calculated checksum.",
				    checksums[d->checksum].label);
	}
	d->state = ST_DONE;
	return AWSCHUNKED_DONE;
}

/* One trailer line (without CRLF) in d->line: "name:value". */
static int trailer_line(awschunked *d)
{
	const char *s = d->line;
	size_t n = d->line_len;
	if (n == 0)
		return end_trailer(d);
	if (!d->trailers)
		return malformed(d, "trailing headers without a -TRAILER x-amz-content-sha256");
	const char *colon = memchr(s, ':', n);
	if (!colon || colon == s)
		return fail(d, 400, "MalformedTrailerError",
			    "The request contained trailing data that was not well-formed or did not "
			    "conform to our published schema.");
	size_t name_len = (size_t)(colon - s);
	const char *v = colon + 1;
	size_t vlen = n - name_len - 1;
	while (vlen && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (d->trailer_signature[0])
		return fail(d, 400, "MalformedTrailerError",
			    "The request contained trailing data that was not well-formed or did not "
			    "conform to our published schema (data after x-amz-trailer-signature).");
	if (name_len == strlen(TRAILER_SIGNATURE) && strncasecmp(s, TRAILER_SIGNATURE, name_len) == 0) {
		if (!d->signed_chunks || vlen != SIGV4_SIGNATURE_HEX || !is_lower_hex(v, vlen))
			return fail(d, 400, "MalformedTrailerError",
				    "The request contained trailing data that was not well-formed or "
				    "did not conform to our published schema (x-amz-trailer-signature).");
		memcpy(d->trailer_signature, v, SIGV4_SIGNATURE_HEX);
		d->trailer_signature[SIGV4_SIGNATURE_HEX] = '\0';
		return 0;
	}
	/* only the declared checksum, once */
	if (d->checksum < 0 || d->checksum_seen || name_len != strlen(checksums[d->checksum].header) ||
	    strncasecmp(s, checksums[d->checksum].header, name_len) != 0 ||
	    vlen >= sizeof d->checksum_value)
		return fail(d, 400, "MalformedTrailerError",
			    "The request contained trailing data that was not well-formed or did not "
			    "conform to our published schema (an undeclared or repeated trailer).");
	d->checksum_seen = true;
	memcpy(d->checksum_value, v, vlen);
	d->checksum_value[vlen] = '\0';
	/* the canonical form the trailer signature covers: "name:value\n",
	 * the name lower-case (bounded: the wire bytes are, and this is shorter) */
	if (d->trailer_len + name_len + vlen + 2 > d->trailer_max)
		return fail(d, 400, "MalformedTrailerError", "The trailing headers are too large.");
	for (size_t i = 0; i < name_len; i++) {
		char c = s[i];
		d->trailer[d->trailer_len++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
	}
	d->trailer[d->trailer_len++] = ':';
	memcpy(d->trailer + d->trailer_len, v, vlen);
	d->trailer_len += vlen;
	d->trailer[d->trailer_len++] = '\n';
	return 0;
}

/* Collect a CRLF-terminated line; true once d->line holds a whole one
 * (without the CRLF). Sets the error state (and returns false) on a bare LF,
 * a CR not before LF, or a line longer than max_line. */
static bool collect_line(awschunked *d, char c)
{
	if (d->line_len > 0 && d->line[d->line_len - 1] == '\r') {
		if (c != '\n') {
			malformed(d, "a CR not followed by LF");
			return false;
		}
		d->line_len--;
		return true;
	}
	if (c == '\n') {
		malformed(d, "a line ends without CR");
		return false;
	}
	/* +1: the LF still to come */
	if (d->line_len + 2 > d->line_max) {
		if (d->state == ST_TRAILER)
			fail(d, 400, "MalformedTrailerError",
			     "A trailing header line is longer than %zu bytes", d->line_max);
		else
			fail(d, 400, "InvalidRequest",
			     "Malformed aws-chunked body: a size line is longer than %zu bytes",
			     d->line_max);
		return false;
	}
	d->line[d->line_len++] = c;
	return false;
}

int awschunked_feed(awschunked *d, const char *data, size_t len, size_t *consumed)
{
	if (d->magic != DECODER_MAGIC)
		abort(); /* a freed or foreign decoder */
	size_t i = 0;
	int rc = 0;
	while (i < len && d->state != ST_DONE && d->state != ST_ERROR) {
		switch (d->state) {
		case ST_DATA: {
			size_t n = len - i;
			if (n > d->remaining)
				n = (size_t)d->remaining;
			if (d->signed_chunks && EVP_DigestUpdate(d->chunk_hash, data + i, n) != 1)
				abort(); /* cannot happen: in-memory digest */
			checksum_update(d, data + i, n);
			d->total += n;
			d->remaining -= n;
			i += n;
			rc = d->sink(d->sink_arg, data + i - n, n);
			if (rc) {
				fail(d, 500, "InternalError",
				     "We encountered an internal error. Please try again.");
				goto out;
			}
			if (d->remaining == 0)
				d->state = ST_DATA_CR;
			break;
		}
		case ST_DATA_CR:
			if (data[i++] != '\r') {
				rc = malformed(d, "chunk data is not followed by CRLF");
				goto out;
			}
			d->state = ST_DATA_LF;
			break;
		case ST_DATA_LF:
			if (data[i++] != '\n') {
				rc = malformed(d, "chunk data is not followed by CRLF");
				goto out;
			}
			if ((rc = verify_chunk(d)))
				goto out;
			d->state = ST_LINE;
			break;
		case ST_LINE:
		case ST_TRAILER: {
			bool trailer = d->state == ST_TRAILER;
			char c = data[i++];
			if (trailer && ++d->trailer_bytes > d->trailer_max) {
				rc = fail(d, 400, "MalformedTrailerError",
					  "The trailing headers are longer than %zu bytes", d->trailer_max);
				goto out;
			}
			if (!collect_line(d, c)) {
				if (d->state == ST_ERROR) {
					rc = ERR_AUTH;
					goto out;
				}
				break;
			}
			rc = trailer ? trailer_line(d) : size_line(d);
			d->line_len = 0;
			if (rc < 0)
				goto out;
			break;
		}
		case ST_DONE:
		case ST_ERROR:
			break;
		}
	}
	rc = d->state == ST_DONE ? AWSCHUNKED_DONE : d->state == ST_ERROR ? ERR_AUTH : 0;
out:
	*consumed = i;
	if (d->state == ST_ERROR && rc >= 0)
		rc = ERR_AUTH;
	return rc;
}

int awschunked_finish(awschunked *d)
{
	if (d->state == ST_DONE)
		return AWSCHUNKED_DONE;
	if (d->state == ST_ERROR)
		return ERR_AUTH;
	return fail(d, 400, "IncompleteBody",
		    "The aws-chunked body ended before its final chunk (%llu of %lld bytes)",
		    (unsigned long long)d->total, (long long)d->decoded_length);
}
