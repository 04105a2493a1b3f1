/*
 * fuzz_awschunked.c - libFuzzer target for src/objects/chunked.c: the S3
 * server feeds every aws-chunked request body through it, in whatever pieces
 * the network delivers.
 *
 * Input: byte 0 picks the mode (signed, signed with trailer, unsigned with
 * trailer) and the declared trailing checksum; bytes 1-2 the decoded length
 * (0..65535); byte 3 seeds the split; the rest is the body. The body is
 * decoded once whole and once in pieces of pseudo-random sizes (1 byte up);
 * both must give the same outcome: return code, error code, bytes consumed,
 * decoded bytes (identical content), checksum. Always: consumed never passes
 * the input, the decoded total never passes the declared length, an error
 * has a code and a status, and what the sink receives is exactly the total.
 */
#undef NDEBUG /* the checks below are the point of this file */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "objects/chunked.h"
#include "objects/sigv4.h"

static int sink(void *arg, const char *data, size_t len)
{
	assert(len > 0);
	return buf_add(arg, data, len);
}

typedef struct outcome {
	int rc;
	size_t consumed;
	const char *code;
	char checksum[128];
	uint64_t total;
	buf out;
} outcome;

static outcome decode(const awschunked_config *base, const uint8_t *body, size_t len,
		      uint32_t seed)
{
	outcome o;
	memset(&o, 0, sizeof o);
	buf_init(&o.out, 1 << 17);
	awschunked_config cfg = *base;
	cfg.sink = sink;
	cfg.sink_arg = &o.out;
	sigv4_error e;
	awschunked *d = awschunked_new(&cfg, &e);
	assert(d);
	uint32_t x = seed | 1;
	while (o.consumed < len) {
		size_t n = len - o.consumed;
		if (seed) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			size_t piece = 1 + x % 64;
			if (n > piece)
				n = piece;
		}
		size_t used = (size_t)-1;
		o.rc = awschunked_feed(d, (const char *)body + o.consumed, n, &used);
		assert(used <= n);
		o.consumed += used;
		if (o.rc != AWSCHUNKED_MORE)
			break;
		assert(used == n);
	}
	if (o.consumed == len && o.rc == AWSCHUNKED_MORE)
		o.rc = awschunked_finish(d);
	assert(o.rc == AWSCHUNKED_DONE || o.rc == ERR_AUTH || o.rc == ERR_LIMIT ||
	       o.rc == ERR_NOMEM || (len == 0 && o.rc == ERR_AUTH));
	o.total = awschunked_total(d);
	assert(o.total <= (uint64_t)base->decoded_length);
	if (o.rc < 0) {
		const sigv4_error *err = awschunked_error(d);
		assert(err->code && err->status >= 400 && err->status <= 500);
		o.code = err->code;
	} else {
		assert(o.total == (uint64_t)base->decoded_length);
		const char *name;
		const char *sum = awschunked_checksum(d, &name);
		if (sum)
			snprintf(o.checksum, sizeof o.checksum, "%s:%s", name, sum);
	}
	if (o.rc != ERR_LIMIT && o.rc != ERR_NOMEM)
		assert(o.out.len == o.total);
	awschunked_free(&d);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len < 4)
		return 0;
	static const char *const trailers[] = {NULL,
					       "x-amz-checksum-crc32",
					       "x-amz-checksum-crc32c",
					       "x-amz-checksum-crc64nvme",
					       "x-amz-checksum-sha1",
					       "x-amz-checksum-sha256"};
	static const sigv4_payload modes[] = {SIGV4_PAYLOAD_STREAMING,
					      SIGV4_PAYLOAD_STREAMING_TRAILER,
					      SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER};
	sigv4_chain chain;
	memset(&chain, 0, sizeof chain);
	sigv4_signing_key("secret", "20130524", "us-east-1", chain.key);
	strcpy(chain.amz_date, "20130524T000000Z");
	strcpy(chain.scope, "20130524/us-east-1/s3/aws4_request");
	memset(chain.seed, 'a', SIGV4_SIGNATURE_HEX);
	awschunked_config cfg = {
		.mode = modes[data[0] % 3],
		.chain = &chain,
		.decoded_length = data[1] << 8 | data[2],
		.trailer = data[0] % 3 ? trailers[(data[0] / 3) % 6] : NULL,
		.max_trailer = 64 + (data[0] & 0x80 ? 0 : 1024),
	};
	outcome whole = decode(&cfg, data + 4, len - 4, 0);
	outcome split = decode(&cfg, data + 4, len - 4, data[3] + 1u);
	assert(whole.rc == split.rc);
	assert(whole.consumed == split.consumed);
	assert(whole.total == split.total);
	assert((whole.code == NULL) == (split.code == NULL));
	assert(!whole.code || strcmp(whole.code, split.code) == 0);
	assert(strcmp(whole.checksum, split.checksum) == 0);
	assert(whole.out.len == split.out.len &&
	       (whole.out.len == 0 || memcmp(whole.out.data, split.out.data, whole.out.len) == 0));
	buf_free(&whole.out);
	buf_free(&split.out);
	return 0;
}
