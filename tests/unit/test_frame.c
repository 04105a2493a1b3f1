/*
 * test_frame.c - unit tests for src/replication/frame.c, the replication
 * stream's wire format: every frame type round-trips, a partial frame asks
 * for more bytes until it is complete, a bad stream fails at the first byte
 * that shows it is bad, and a failed encode leaves the buffer unaltered.
 *
 * frame.c and buf.c are included (as h2o's t/00unit does) with realloc
 * redirected, so an allocation failure in the middle of an encode can be
 * injected; the library's copies of both are then not linked in.
 */
#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* Allocation fault injection: the allocation at which the countdown reaches
 * zero fails; a negative countdown never fails. */
static long alloc_countdown = -1;

static void *test_realloc(void *old, size_t size)
{
	if (alloc_countdown >= 0 && alloc_countdown-- == 0)
		return NULL;
	return realloc(old, size);
}

#define realloc test_realloc
#include "core/buf.c"
#include "replication/frame.c"
#undef realloc

#include "core/err.h"

/* A frame's bytes (header then payload) in a fresh buffer; the caller frees. */
static buf encode_one(int type, uint64_t epoch, uint64_t seq, int64_t time_ms, const void *payload,
		      uint32_t length)
{
	buf b;
	buf_init(&b, 1 << 20);
	CHECK_EQ_INT(frame_encode(&b, type, epoch, seq, time_ms, payload, length), 0);
	CHECK_EQ_INT(b.len, FRAME_HEADER_BYTES + length);
	return b;
}

/* A header written by hand, for frames frame_encode would not produce. */
static void make_header(unsigned char h[FRAME_HEADER_BYTES], int type, uint32_t length)
{
	memset(h, 0, FRAME_HEADER_BYTES);
	h[0] = 'T';
	h[1] = 'R';
	h[2] = 1;
	h[3] = (unsigned char)type;
	h[28] = (unsigned char)(length >> 24);
	h[29] = (unsigned char)(length >> 16);
	h[30] = (unsigned char)(length >> 8);
	h[31] = (unsigned char)length;
}

static void check_round_trip(int type, const void *payload, uint32_t length)
{
	const uint64_t epoch = 0x0102030405060708ull, seq = 0xfedcba9876543210ull;
	const int64_t when = -1234567890123;
	buf b = encode_one(type, epoch, seq, when, payload, length);
	const unsigned char *d = (const unsigned char *)b.data;
	frame f;
	size_t used = 99;
	CHECK_EQ_INT(frame_decode(d, b.len, &f, &used), 1);
	CHECK_EQ_INT(used, b.len);
	CHECK_EQ_INT(f.type, type);
	CHECK(f.epoch == epoch);
	CHECK(f.seq == seq);
	CHECK(f.time_ms == when);
	CHECK_EQ_INT(f.length, length);
	CHECK(f.payload == d + FRAME_HEADER_BYTES); /* points into the input */
	CHECK(length == 0 || memcmp(f.payload, payload, length) == 0);
	buf_free(&b);
}

static void test_round_trip_each_type(void)
{
	static const unsigned char changeset[] = {'T', 1, 0, 't', 0, 0x12, 0, 1, 2, 3, 0xff, 0};
	static const unsigned char schema[] = "\0\0\0\7CREATE TABLE x (a INTEGER PRIMARY KEY)";
	check_round_trip(FRAME_CHANGESET, changeset, sizeof changeset);
	check_round_trip(FRAME_CHANGESET, NULL, 0); /* allowed by the format */
	check_round_trip(FRAME_SCHEMA, schema, sizeof schema - 1);
	check_round_trip(FRAME_SCHEMA, schema, 5);  /* the smallest schema frame */
	check_round_trip(FRAME_HEARTBEAT, NULL, 0);
}

static void test_header_layout(void)
{
	static const unsigned char expect[FRAME_HEADER_BYTES] = {
		'T', 'R', 1, FRAME_CHANGESET,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* epoch */
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, /* seq */
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* time_ms = -2 */
		0, 0, 0, 3,                                     /* length */
	};
	buf b = encode_one(FRAME_CHANGESET, 0x0102030405060708ull, 0x1112131415161718ull, -2, "abc", 3);
	CHECK(memcmp(b.data, expect, sizeof expect) == 0);
	CHECK(memcmp(b.data + FRAME_HEADER_BYTES, "abc", 3) == 0);
	CHECK(b.data[b.len] == '\0');
	buf_free(&b);
}

/* Every proper prefix of a valid frame asks for more; the whole frame, and
 * the frame followed by anything, decode to the frame alone. */
static void test_prefixes_need_more(void)
{
	static const char text[] = "\0\0\0\1CREATE TABLE y (b TEXT PRIMARY KEY)";
	const int types[] = {FRAME_CHANGESET, FRAME_SCHEMA, FRAME_HEARTBEAT};
	for (int t = 0; t < 3; t++) {
		uint32_t length = types[t] == FRAME_HEARTBEAT ? 0 : (uint32_t)sizeof text - 1;
		buf b = encode_one(types[t], 3, 4, 5, text, length);
		CHECK_EQ_INT(buf_add(&b, "TRjunk", 6), 0); /* whatever follows */
		size_t total = FRAME_HEADER_BYTES + length;
		const unsigned char *d = (const unsigned char *)b.data;
		frame f;
		size_t used;
		for (size_t n = 0; n < total; n++) {
			used = 99;
			int rc = frame_decode(d, n, &f, &used);
			if (rc != 0 || used != 0)
				fprintf(stderr, "type %d prefix %zu: rc %d used %zu\n", types[t], n, rc, used);
			CHECK_EQ_INT(rc, 0);
			CHECK_EQ_INT(used, 0);
		}
		for (size_t n = total; n <= b.len; n++) {
			CHECK_EQ_INT(frame_decode(d, n, &f, &used), 1);
			CHECK_EQ_INT(used, total);
			CHECK_EQ_INT(f.type, types[t]);
			CHECK_EQ_INT(f.length, length);
		}
		buf_free(&b);
	}
	frame f;
	size_t used = 99;
	CHECK_EQ_INT(frame_decode(NULL, 0, &f, &used), 0); /* nothing yet */
	CHECK_EQ_INT(used, 0);
}

static void test_two_frames_back_to_back(void)
{
	buf b;
	buf_init(&b, 4096);
	CHECK_EQ_INT(frame_encode(&b, FRAME_CHANGESET, 2, 41, 1000, "first", 5), 0);
	CHECK_EQ_INT(frame_encode(&b, FRAME_HEARTBEAT, 2, 41, 1001, NULL, 0), 0);
	CHECK_EQ_INT(frame_encode(&b, FRAME_CHANGESET, 2, 42, 1002, "second!", 7), 0);
	CHECK_EQ_INT(b.len, 3 * FRAME_HEADER_BYTES + 12);
	const unsigned char *d = (const unsigned char *)b.data;
	size_t off = 0, used;
	frame f;
	CHECK_EQ_INT(frame_decode(d + off, b.len - off, &f, &used), 1);
	CHECK(f.type == FRAME_CHANGESET && f.seq == 41 && f.length == 5);
	CHECK(memcmp(f.payload, "first", 5) == 0);
	off += used;
	CHECK_EQ_INT(frame_decode(d + off, b.len - off, &f, &used), 1);
	CHECK(f.type == FRAME_HEARTBEAT && f.seq == 41 && f.time_ms == 1001 && f.length == 0);
	CHECK_EQ_INT(used, FRAME_HEADER_BYTES);
	off += used;
	/* the third frame, one byte short, then complete */
	CHECK_EQ_INT(frame_decode(d + off, b.len - off - 1, &f, &used), 0);
	CHECK_EQ_INT(frame_decode(d + off, b.len - off, &f, &used), 1);
	CHECK(f.type == FRAME_CHANGESET && f.seq == 42 && f.time_ms == 1002 && f.length == 7);
	CHECK(memcmp(f.payload, "second!", 7) == 0);
	off += used;
	CHECK_EQ_INT(off, b.len);
	CHECK_EQ_INT(frame_decode(d + off, b.len - off, &f, &used), 0);
	buf_free(&b);
}

/* Corrupting byte `at` of a valid frame makes every prefix that holds it
 * fail with ERR_PARSE, and every shorter prefix ask for more. */
static void check_bad_byte(size_t at, unsigned char value)
{
	buf b = encode_one(FRAME_CHANGESET, 1, 1, 1, "payload", 7);
	unsigned char *d = (unsigned char *)b.data;
	d[at] = value;
	frame f;
	size_t used;
	for (size_t n = 0; n <= b.len; n++) {
		used = 99;
		int rc = frame_decode(d, n, &f, &used);
		CHECK_EQ_INT(rc, n > at ? ERR_PARSE : 0);
		CHECK_EQ_INT(used, 0);
	}
	buf_free(&b);
}

static void test_bad_magic_version_type(void)
{
	frame f;
	size_t used;
	CHECK_EQ_INT(frame_decode((const unsigned char *)"X", 1, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(frame_decode((const unsigned char *)"TX", 2, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(frame_decode((const unsigned char *)"tr", 2, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(frame_decode((const unsigned char *)"TR\2", 3, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(frame_decode((const unsigned char *)"TR\0", 3, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(frame_decode((const unsigned char *)"TR\1\0", 4, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(frame_decode((const unsigned char *)"TR\1\4", 4, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(frame_decode((const unsigned char *)"TR\1\377", 4, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(frame_decode((const unsigned char *)"TR\1\3", 4, &f, &used), 0);
	check_bad_byte(0, 'X');
	check_bad_byte(1, 'r');
	check_bad_byte(2, 0);
	check_bad_byte(2, 2);
	check_bad_byte(3, 0);
	check_bad_byte(3, 4);
}

static void test_heartbeat_with_payload(void)
{
	unsigned char d[FRAME_HEADER_BYTES + 1];
	make_header(d, FRAME_HEARTBEAT, 1);
	d[FRAME_HEADER_BYTES] = 'x';
	frame f;
	size_t used;
	CHECK_EQ_INT(frame_decode(d, FRAME_HEADER_BYTES - 1, &f, &used), 0);
	/* refused once the length is known, without waiting for the payload */
	CHECK_EQ_INT(frame_decode(d, FRAME_HEADER_BYTES, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(frame_decode(d, sizeof d, &f, &used), ERR_PARSE);
	CHECK_EQ_INT(used, 0);
}

static void test_short_schema_frame(void)
{
	unsigned char d[FRAME_HEADER_BYTES + 5] = {0};
	frame f;
	size_t used;
	for (uint32_t length = 0; length < 5; length++) {
		make_header(d, FRAME_SCHEMA, length);
		CHECK_EQ_INT(frame_decode(d, FRAME_HEADER_BYTES - 1, &f, &used), 0);
		CHECK_EQ_INT(frame_decode(d, FRAME_HEADER_BYTES, &f, &used), ERR_PARSE);
		CHECK_EQ_INT(frame_decode(d, FRAME_HEADER_BYTES + length, &f, &used), ERR_PARSE);
	}
	make_header(d, FRAME_SCHEMA, 5); /* version and a one-byte SQL */
	CHECK_EQ_INT(frame_decode(d, FRAME_HEADER_BYTES + 4, &f, &used), 0);
	CHECK_EQ_INT(frame_decode(d, sizeof d, &f, &used), 1);
	CHECK_EQ_INT(used, sizeof d);
}

static void test_oversized_payload(void)
{
	unsigned char h[FRAME_HEADER_BYTES];
	frame f;
	size_t used;
	const int types[] = {FRAME_CHANGESET, FRAME_SCHEMA, FRAME_HEARTBEAT};
	for (int t = 0; t < 3; t++) {
		make_header(h, types[t], FRAME_MAX_PAYLOAD + 1);
		CHECK_EQ_INT(frame_decode(h, FRAME_HEADER_BYTES - 1, &f, &used), 0);
		CHECK_EQ_INT(frame_decode(h, FRAME_HEADER_BYTES, &f, &used), ERR_LIMIT);
		make_header(h, types[t], UINT32_MAX);
		CHECK_EQ_INT(frame_decode(h, FRAME_HEADER_BYTES, &f, &used), ERR_LIMIT);
		CHECK_EQ_INT(used, 0);
	}
	/* the largest allowed payload is merely incomplete */
	make_header(h, FRAME_CHANGESET, FRAME_MAX_PAYLOAD);
	CHECK_EQ_INT(frame_decode(h, FRAME_HEADER_BYTES, &f, &used), 0);
}

/* b holds exactly "prefix" (content, length, terminating NUL). */
static bool buf_holds(const buf *b, const char *prefix)
{
	size_t n = strlen(prefix);
	return b->len == n && b->data && memcmp(b->data, prefix, n) == 0 && b->data[n] == '\0';
}

static void test_encode_invalid_type(void)
{
	buf b;
	buf_init(&b, 4096);
	CHECK_EQ_INT(buf_adds(&b, "before"), 0);
	const int bad[] = {0, 4, -1, 255, 256 + FRAME_CHANGESET};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ_INT(frame_encode(&b, bad[i], 1, 1, 1, "x", 1), ERR_INVAL);
		CHECK(buf_holds(&b, "before"));
	}
	/* a payload over the format's maximum is refused before any copy */
	int rc = frame_encode(&b, FRAME_CHANGESET, 1, 1, 1, "x", FRAME_MAX_PAYLOAD + 1);
	CHECK(rc == ERR_INVAL || rc == ERR_LIMIT);
	CHECK(buf_holds(&b, "before"));
	buf_free(&b);
}

static void test_encode_past_buf_max(void)
{
	static const char payload[] = "0123456789";
	const size_t whole = 6 + FRAME_HEADER_BYTES + 10; /* "before" + the frame */
	buf b;
	/* no room for the header, for the header and part of the payload, for
	 * all but the last byte */
	const size_t maxes[] = {6, 6 + 5, 6 + FRAME_HEADER_BYTES, 6 + FRAME_HEADER_BYTES + 1, whole - 1};
	for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
		buf_init(&b, maxes[i]);
		CHECK_EQ_INT(buf_adds(&b, "before"), 0);
		CHECK_EQ_INT(frame_encode(&b, FRAME_CHANGESET, 1, 2, 3, payload, 10), ERR_LIMIT);
		CHECK(buf_holds(&b, "before"));
		CHECK(b.len <= b.max);
		buf_free(&b);
	}
	/* exactly enough */
	buf_init(&b, whole);
	CHECK_EQ_INT(buf_adds(&b, "before"), 0);
	CHECK_EQ_INT(frame_encode(&b, FRAME_CHANGESET, 1, 2, 3, payload, 10), 0);
	CHECK_EQ_INT(b.len, whole);
	buf_free(&b);
	/* an empty buffer too small for a heartbeat stays empty */
	buf_init(&b, FRAME_HEADER_BYTES - 1);
	CHECK_EQ_INT(frame_encode(&b, FRAME_HEARTBEAT, 1, 2, 3, NULL, 0), ERR_LIMIT);
	CHECK_EQ_INT(b.len, 0);
	buf_free(&b);
}

/* Out of memory at each allocation of an encode: ERR_NOMEM, buffer
 * unaltered, until enough allocations succeed. */
static void test_encode_out_of_memory(void)
{
	/* 40 bytes already there (a 64-byte allocation): the header needs one
	 * reallocation (to 128), the payload another (to 512) */
	static const char before[] = "0123456789012345678901234567890123456789";
	char payload[300];
	memset(payload, 'p', sizeof payload);
	int successes = 0;
	for (long fail_at = 0; fail_at < 10; fail_at++) {
		buf b;
		buf_init(&b, 1 << 16);
		CHECK_EQ_INT(buf_adds(&b, before), 0);
		alloc_countdown = fail_at;
		int rc = frame_encode(&b, FRAME_CHANGESET, 1, 2, 3, payload, sizeof payload);
		alloc_countdown = -1;
		if (rc == 0) {
			successes++;
			CHECK_EQ_INT(b.len, 40 + FRAME_HEADER_BYTES + sizeof payload);
		} else {
			CHECK_EQ_INT(rc, ERR_NOMEM);
			CHECK(buf_holds(&b, before));
		}
		buf_free(&b);
	}
	/* failing the first (header) or the second (payload) fails the encode */
	CHECK_EQ_INT(successes, 8);
}

int main(void)
{
	RUN(test_round_trip_each_type);
	RUN(test_header_layout);
	RUN(test_prefixes_need_more);
	RUN(test_two_frames_back_to_back);
	RUN(test_bad_magic_version_type);
	RUN(test_heartbeat_with_payload);
	RUN(test_short_schema_frame);
	RUN(test_oversized_payload);
	RUN(test_encode_invalid_type);
	RUN(test_encode_past_buf_max);
	RUN(test_encode_out_of_memory);
	return TEST_SUMMARY();
}
