/*
 * frame.h - the replication stream's wire format.
 *
 * The primary streams frames to the secondary inside one long HTTP response
 * (chunked); frame boundaries are independent of chunk boundaries. Every
 * integer is big-endian:
 *
 *   0   2  magic "TR"
 *   2   1  version (1)
 *   3   1  type: 1 changeset, 2 schema (DDL), 3 heartbeat
 *   4   8  epoch      the primary's term when the entry was written
 *   12  8  seq        position: strictly increasing across epochs (heartbeat:
 *                     the primary's last committed position)
 *   20  8  time_ms    commit time (heartbeat: the primary's clock)
 *   28  4  length     of the payload, at most FRAME_MAX_PAYLOAD
 *   32  .. payload    changeset: a SQLite changeset; schema: 4-byte schema
 *                     version then the migration's SQL; heartbeat: empty
 *
 * The decoder is a bounds-checked cursor over untrusted bytes (fuzzed by
 * fuzz/fuzz_frame.c): it never reads past what it was given, and refuses
 * unknown versions, types and oversized payloads.
 */
#ifndef TANDEM_REPLICATION_FRAME_H
#define TANDEM_REPLICATION_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define FRAME_HEADER_BYTES 32
#define FRAME_MAX_PAYLOAD (256u * 1024 * 1024)

enum { FRAME_CHANGESET = 1, FRAME_SCHEMA = 2, FRAME_HEARTBEAT = 3 };

typedef struct frame {
	int type;
	uint64_t epoch;
	uint64_t seq;
	int64_t time_ms;
	const unsigned char *payload; /* points into the decoded input */
	uint32_t length;
} frame;

/* Append one frame to out; 0, or ERR_INVAL for a frame the decoder would
 * refuse (unknown type, payload over FRAME_MAX_PAYLOAD, a heartbeat with a
 * payload, a schema frame under 5 bytes), ERR_LIMIT past out's maximum,
 * ERR_NOMEM; out is unaltered on failure. */
int frame_encode(buf *out, int type, uint64_t epoch, uint64_t seq, int64_t time_ms,
		 const void *payload, uint32_t length);
/*
 * Decode the first frame of data[0..len). Returns 1 with *f filled and
 * *used set to the frame's size, 0 when more bytes are needed, or ERR_PARSE
 * (bad magic, version, type) / ERR_LIMIT (payload too large).
 */
int frame_decode(const unsigned char *data, size_t len, frame *f, size_t *used);

#endif
