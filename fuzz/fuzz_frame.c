/*
 * fuzz_frame.c - libFuzzer target for the replication frame decoder
 * (src/replication/frame.c): a secondary decodes whatever bytes arrive on
 * the replication stream, so frame_decode must never read past what it was
 * given and must keep the contract of frame.h on any input.
 *
 * The input is decoded as a stream of frames (advancing by `used`). For
 * each decode: the result is one of 1, 0, ERR_PARSE, ERR_LIMIT; a frame
 * lies inside the input, is FRAME_HEADER_BYTES + length long, has a known
 * type and a payload within limits, and re-encodes with frame_encode to the
 * very bytes it was decoded from. The same bytes cut shorter (every short
 * prefix, the half, the frame's end and one byte before it) must give a
 * consistent answer: "need more" (0) while the frame is incomplete, then
 * the same frame, or the same error once the offending byte is present.
 */
#undef NDEBUG /* the checks below are the point of this file */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "replication/frame.h"

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Decode data[0..n) where data[0..len) gave (rc, *full, used); n <= len.
 * The prefix is decoded from a copy of exactly n bytes, so AddressSanitizer
 * sees any read past what the decoder was given. */
static int check_prefix(const unsigned char *data, size_t n, int rc, const frame *full, size_t used)
{
	unsigned char *copy = malloc(n ? n : 1);
	assert(copy);
	if (n)
		memcpy(copy, data, n);
	frame f;
	size_t u = 12345;
	int r = frame_decode(copy, n, &f, &u);
	if (rc == 1) {
		if (n < used) {
			/* an incomplete frame: never an error, never a frame */
			assert(r == 0 && u == 0);
		} else {
			assert(r == 1 && u == used);
			assert(f.type == full->type && f.epoch == full->epoch && f.seq == full->seq &&
			       f.time_ms == full->time_ms && f.length == full->length &&
			       f.payload == copy + FRAME_HEADER_BYTES);
		}
	} else if (rc == 0) {
		assert(r == 0 && u == 0);
	} else {
		/* an error shows as soon as the offending byte is there; before,
		 * the prefix only asks for more */
		assert((r == 0 || r == rc) && u == 0);
	}
	free(copy);
	return r;
}

/* frame_encode of a decoded frame gives back the bytes it came from, and
 * refuses (buffer unaltered) when one byte short of room. */
static void check_reencode(const unsigned char *data, const frame *f, size_t used)
{
	buf b;
	buf_init(&b, used);
	int rc = frame_encode(&b, f->type, f->epoch, f->seq, f->time_ms, f->payload, f->length);
	assert(rc == 0);
	assert(b.len == used && memcmp(b.data, data, used) == 0);
	buf_free(&b);
	buf_init(&b, used - 1);
	rc = frame_encode(&b, f->type, f->epoch, f->seq, f->time_ms, f->payload, f->length);
	assert(rc == ERR_LIMIT && b.len == 0);
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off <= size) {
		const unsigned char *p = data + off;
		size_t remaining = size - off;
		frame f = {0};
		size_t used = 12345;
		int rc = frame_decode(p, remaining, &f, &used);
		assert(rc == 1 || rc == 0 || rc == ERR_PARSE || rc == ERR_LIMIT);
		if (rc == 1) {
			assert(used <= remaining);
			assert(used == FRAME_HEADER_BYTES + (size_t)f.length);
			assert(f.type >= FRAME_CHANGESET && f.type <= FRAME_HEARTBEAT);
			assert(f.length <= FRAME_MAX_PAYLOAD);
			assert(f.payload == p + FRAME_HEADER_BYTES);
			assert(f.payload >= data && f.payload + f.length <= data + size);
			assert(f.type != FRAME_HEARTBEAT || f.length == 0);
			assert(f.type != FRAME_SCHEMA || f.length >= 5);
			/* the fields are the header's big-endian integers */
			assert(p[0] == 'T' && p[1] == 'R' && p[2] == 1 && p[3] == f.type);
			assert(f.epoch == get_u64(p + 4) && f.seq == get_u64(p + 12) &&
			       f.time_ms == (int64_t)get_u64(p + 20));
			check_reencode(p, &f, used);
		} else {
			assert(used == 0);
		}
		/* the same bytes, cut shorter */
		size_t short_max = remaining < 40 ? remaining : 40;
		int failed = 0; /* an error, once there, stays */
		for (size_t n = 0; n <= short_max; n++) {
			int r = check_prefix(p, n, rc, &f, used);
			assert(!failed || r == rc);
			if (r < 0)
				failed = 1;
		}
		check_prefix(p, remaining / 2, rc, &f, used);
		if (rc == 1) {
			check_prefix(p, used - 1, rc, &f, used);
			check_prefix(p, used, rc, &f, used);
		}
		if (rc != 1)
			break;
		off += used;
	}
	return 0;
}
