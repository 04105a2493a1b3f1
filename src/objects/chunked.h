/*
 * chunked.h - an incremental decoder for S3's "aws-chunked" request bodies
 * (Content-Encoding: aws-chunked, x-amz-content-sha256: STREAMING-*), which
 * newer SDKs send by default.
 *
 *   signed      (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]):
 *       hex-size;chunk-signature=SIG \r\n  data  \r\n   ...
 *       0;chunk-signature=SIG \r\n  [trailer lines]  \r\n
 *   unsigned    (STREAMING-UNSIGNED-PAYLOAD-TRAILER):
 *       hex-size \r\n  data  \r\n   ...   0 \r\n  [trailer lines]  \r\n
 *   trailer lines: "x-amz-checksum-crc32c:sOO8/Q==\r\n", and in the signed
 *       variant last "x-amz-trailer-signature:SIG\r\n"
 *
 * Each chunk's signature chains from the previous one (the first from the
 * request's, sigv4_result.chain.seed): "AWS4-HMAC-SHA256-PAYLOAD" string to
 * sign over the previous signature and the chunk's SHA-256; the trailer's
 * likewise ("AWS4-HMAC-SHA256-TRAILER", over the SHA-256 of its lines as
 * "name:value\n"). The checksum the trailer names (x-amz-trailer: crc32,
 * crc32c, crc64nvme, sha1, sha256) is computed over the decoded data and
 * compared. The decoded total must equal x-amz-decoded-content-length. As
 * in S3, every signed data chunk but the last holds at least 8 KiB.
 *
 * Bytes may be fed in any split (one at a time works). Memory is bounded: a
 * size line (max_line) and the trailer (max_trailer) are buffered; chunk data
 * never is - it goes to the sink as it arrives.
 *
 * CONTRACT for the caller: data handed to the sink is NOT yet authenticated.
 * A chunk's signature is checked at the chunk's end, the checksum and the
 * trailer signature at the body's end. So the caller writes the data to a
 * temporary place (a temporary blob) and commits it only after
 * awschunked_feed() returned AWSCHUNKED_DONE; on any error it discards
 * everything the sink received.
 *
 * States (an error is sticky):
 *
 *   LINE --size>0--> DATA --n bytes--> DATA_CR --> DATA_LF --(chunk sig ok)--> LINE
 *     |
 *     +--size 0 (its sig ok, total == decoded length)--> TRAILER --empty line,
 *                                                   (trailer sig, checksum ok)--> DONE
 */
#ifndef TANDEM_OBJECTS_CHUNKED_H
#define TANDEM_OBJECTS_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "objects/sigv4.h"

#define AWSCHUNKED_LINE_MAX 256     /* default bound of a size line, CRLF included */
#define AWSCHUNKED_TRAILER_MAX 4096 /* default bound of the trailer section */
#define AWSCHUNKED_MIN_CHUNK 8192   /* signed chunks but the last: at least this
				     * (AWS's rule; InvalidChunkSizeError) */

enum {
	AWSCHUNKED_MORE = 0, /* everything consumed; feed more */
	AWSCHUNKED_DONE = 1, /* the body is complete and verified */
};

/* Receives decoded (unverified) data; return 0, or a negative ERR_* code to
 * stop decoding (the decoder then fails with it, InternalError). */
typedef int (*awschunked_sink)(void *arg, const char *data, size_t len);

typedef struct awschunked_config {
	sigv4_payload mode;        /* one of the three SIGV4_PAYLOAD_STREAMING* modes */
	const sigv4_chain *chain;  /* signed modes: sigv4_result.chain (copied) */
	int64_t decoded_length;    /* x-amz-decoded-content-length (>= 0) */
	const char *trailer;       /* the x-amz-trailer header value, NULL or "": none */
	size_t max_line;           /* 0: AWSCHUNKED_LINE_MAX; at least 96 */
	size_t max_trailer;        /* 0: AWSCHUNKED_TRAILER_MAX */
	awschunked_sink sink;
	void *sink_arg;
} awschunked_config;

typedef struct awschunked awschunked;

/* A decoder. NULL on failure with err set: InvalidRequest for a mode that is
 * not a streaming one, a signed mode without chain, a negative decoded
 * length, an x-amz-trailer this decoder cannot check; InternalError when out
 * of memory. */
awschunked *awschunked_new(const awschunked_config *cfg, sigv4_error *err);
/* Free (wipes the signing key); no-op on NULL; resets *d. */
void awschunked_free(awschunked **d);

/*
 * Feed len bytes; *consumed gets how many were used (never past the end of
 * the body: what follows belongs to the next request). Returns
 * AWSCHUNKED_MORE, AWSCHUNKED_DONE, ERR_AUTH (the body is refused:
 * awschunked_error() says what to answer) or the sink's error. Errors are
 * sticky.
 */
int awschunked_feed(awschunked *d, const char *data, size_t len, size_t *consumed);

/* The request body ended (Content-Length reached, or the connection closed):
 * AWSCHUNKED_DONE when the decoder was done, else ERR_AUTH (IncompleteBody). */
int awschunked_finish(awschunked *d);

/* The error after a failure (code NULL before any). */
const sigv4_error *awschunked_error(const awschunked *d);

/* Decoded bytes handed to the sink so far. */
uint64_t awschunked_total(const awschunked *d);

/* After AWSCHUNKED_DONE with a trailing checksum: its header name
 * ("x-amz-checksum-crc32c") and the verified base64 value; NULL otherwise. */
const char *awschunked_checksum(const awschunked *d, const char **name);

/* CRC-64/NVME (S3's x-amz-checksum-crc64nvme) of data, continuing crc (0
 * to start): the value S3 shows, big-endian, before base64. Thread-safe. */
uint64_t awschunked_crc64nvme(uint64_t crc, const void *data, size_t len);

#endif
