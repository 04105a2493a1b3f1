/*
 * fuzz_http_parser.c - libFuzzer target for src/http/parser.c.
 *
 * The input is parsed as a stream of pipelined requests and, separately, as a
 * stream of responses, each under two sets of limits (generous, and tight ones
 * picked from a hash of the input). Every stream is parsed three ways: in one
 * piece, byte by byte, and in pieces whose sizes come from a generator seeded
 * with the input hash. Every return value is checked against the contract in
 * parser.h, and the three ways must see the same messages and the same errors;
 * a fingerprint of what each run saw is compared.
 */
#undef NDEBUG /* the checks below are the point of this file */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "http/parser.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define METHOD_MAX 32

static uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *b = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

static uint64_t hash_number(uint64_t h, uint64_t n)
{
	return hash_bytes(h, &n, sizeof n);
}

static uint64_t hash_string(uint64_t h, const char *s)
{
	return hash_bytes(h, s, strlen(s) + 1);
}

/* xorshift64: piece sizes for the split runs. */
static size_t next_piece(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return (x & 7) == 0 ? 1 + (size_t)(x >> 8) % 512 : 1 + (size_t)(x >> 8) % 16;
}

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_whitespace(char c)
{
	return c == ' ' || c == '\t';
}

/* What the parser promises about a message it has handed out. */
static void check_message(const http_message *m, http_kind kind, const http_limits *limits)
{
	assert(m->kind == kind);
	assert(m->version_minor == 0 || m->version_minor == 1);
	assert(m->field_count <= limits->max_headers);
	assert(m->field_count == 0 || m->fields != NULL);
	if (kind == HTTP_REQUEST) {
		size_t method_len = strlen(m->method);
		assert(!limits->max_target_bytes || strlen(m->target) <= limits->max_target_bytes);
		assert(method_len >= 1 && method_len <= METHOD_MAX);
		for (size_t i = 0; i < method_len; i++)
			assert(is_tchar((unsigned char)m->method[i]));
		size_t target_len = strlen(m->target);
		assert(target_len >= 1);
		for (size_t i = 0; i < target_len; i++)
			assert(m->target[i] > 0x20 && m->target[i] < 0x7f);
		assert(m->status == 0 && m->reason == NULL);
		assert(!m->until_close);
		if (m->version_minor == 0)
			assert(!m->chunked && !m->expect_continue);
	} else {
		assert(m->status >= 100 && m->status <= 999);
		assert(m->method == NULL && m->target == NULL && m->reason != NULL);
		for (const char *r = m->reason; *r; r++)
			assert(*r != '\r' && *r != '\n');
		assert(!m->expect_continue);
	}
	if (m->chunked)
		assert(m->content_length == -1);
	assert(m->content_length >= -1);
	if (m->until_close)
		assert(!m->keep_alive && !m->chunked);
	/* The lookup finds the first field of a name, whatever its case. */
	if (m->field_count) {
		char name[64];
		size_t name_len = m->fields[0].name_len < sizeof name - 1 ? m->fields[0].name_len : sizeof name - 1;
		for (size_t i = 0; i < name_len; i++) {
			char c = m->fields[0].name[i];
			name[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
		}
		name[name_len] = '\0';
		size_t value_len = 0;
		const char *value = http_message_field(m, name, &value_len);
		if (name_len == m->fields[0].name_len)
			assert(value == m->fields[0].value && value_len == m->fields[0].value_len);
	}
	for (size_t i = 0; i < m->field_count; i++) {
		const http_field *f = &m->fields[i];
		assert(f->name_len >= 1);
		for (size_t j = 0; j < f->name_len; j++)
			assert(is_tchar((unsigned char)f->name[j]));
		if (f->value_len) {
			assert(!is_whitespace(f->value[0]) && !is_whitespace(f->value[f->value_len - 1]));
			for (size_t j = 0; j < f->value_len; j++) {
				unsigned char c = (unsigned char)f->value[j];
				assert(c == '\t' || c >= 0x20);
				assert(c != 0x7f);
			}
		}
	}
}

/* The error contract: a known code with a matching status and a text, and
 * sticky until reset. */
static void check_error(http_parser *p, int rc)
{
	int status = http_parser_error_status(p);
	const char *text = http_parser_error(p);
	assert(text != NULL && text[0] != '\0');
	switch (rc) {
	case ERR_PARSE:
		assert(status == 400);
		break;
	case ERR_LIMIT: /* 414: max_target_bytes (parser.h) */
		assert(status == 400 || status == 413 || status == 414 || status == 431);
		break;
	case ERR_UNSUPPORTED:
		assert(status == 501 || status == 505);
		break;
	case ERR_NOMEM:
		assert(status == 500);
		break;
	default:
		assert(!"unexpected return code");
	}
	size_t used = 7;
	assert(http_parser_feed(p, "GET / HTTP/1.1\r\n", 16, &used) == rc);
	assert(used == 0);
	assert(http_parser_finish(p) == rc);
	assert(http_parser_error_status(p) == status);
}

/*
 * Parse data[0..size) as pipelined messages, in pieces: piece_seed 0 means in
 * one piece, 1 byte by byte, anything else pieces from next_piece(). `choices`
 * decides, per message, whether the caller lowers the body limit or declares a
 * response bodyless after HEAD; it must be the same for runs to agree.
 * Returns a fingerprint of the messages, bodies and errors seen.
 */
static uint64_t run(const char *data, size_t size, http_kind kind, const http_limits *limits,
		    uint64_t piece_seed, uint64_t choices)
{
	http_parser *p = http_parser_new(kind, limits);
	if (!p)
		return 0;
	uint64_t h = FNV_OFFSET;
	uint64_t piece_state = piece_seed;
	size_t off = 0, message_start = 0;
	unsigned messages = 0, heads = 0;
	size_t body_limit = limits->max_body_bytes;
	bool no_body = false;

	for (;;) {
		size_t n = size - off;
		if (piece_seed == 1 && n > 1)
			n = 1;
		else if (piece_seed > 1) {
			size_t piece = next_piece(&piece_state);
			if (n > piece)
				n = piece;
		}
		size_t used = SIZE_MAX;
		int rc = http_parser_feed(p, data + off, n, &used);
		assert(used <= n);
		off += used;

		if (rc == HTTP_PARSE_HEAD) {
			assert(heads == 0);
			heads++;
			assert(http_parser_started(p));
			assert(off - message_start <= limits->max_header_bytes);
			const http_message *m = http_parser_message(p);
			assert(m != NULL);
			check_message(m, kind, limits);
			h = hash_number(h, 'H');
			h = hash_number(h, off);
			h = hash_number(h, (uint64_t)m->content_length);
			h = hash_number(h, (uint64_t)(m->chunked | m->keep_alive << 1 | m->until_close << 2 |
						      m->expect_continue << 3));
			h = hash_number(h, m->field_count);
			if (kind == HTTP_REQUEST) {
				h = hash_string(h, m->method);
				h = hash_string(h, m->target);
			} else {
				h = hash_number(h, (uint64_t)m->status);
				h = hash_string(h, m->reason);
			}
			for (size_t i = 0; i < m->field_count; i++) {
				h = hash_bytes(h, m->fields[i].name, m->fields[i].name_len);
				h = hash_bytes(h, m->fields[i].value, m->fields[i].value_len);
			}
			uint64_t choice = choices >> (messages % 32 * 2);
			body_limit = limits->max_body_bytes;
			no_body = false;
			if (choice & 1) {
				body_limit = 8;
				http_parser_set_body_limit(p, body_limit);
			}
			if ((choice & 2) && kind == HTTP_RESPONSE) {
				no_body = true;
				http_parser_set_no_body(p);
				assert(!m->until_close);
			}
			continue;
		}
		if (rc == HTTP_PARSE_DONE) {
			assert(heads == 1);
			const http_message *m = http_parser_message(p);
			assert(m != NULL);
			size_t body_len = SIZE_MAX;
			const char *body = http_parser_body(p, &body_len);
			assert(body != NULL && body[body_len] == '\0');
			assert(body_len <= body_limit);
			bool bodyless = no_body || (kind == HTTP_RESPONSE &&
						    (m->status < 200 || m->status == 204 || m->status == 304));
			if (bodyless)
				assert(body_len == 0);
			else if (m->content_length >= 0)
				assert(body_len == (uint64_t)m->content_length);
			/* DONE is stable until reset and takes nothing more. */
			size_t again = 7;
			assert(http_parser_feed(p, data + off, size - off, &again) == HTTP_PARSE_DONE);
			assert(again == 0);
			assert(http_parser_finish(p) == HTTP_PARSE_DONE);
			h = hash_number(h, 'D');
			h = hash_number(h, off);
			h = hash_bytes(h, body, body_len);
			assert(off > message_start); /* every message takes bytes, so this ends */
			http_parser_reset(p);
			assert(!http_parser_started(p));
			assert(http_parser_message(p) == NULL);
			heads = 0;
			messages++;
			message_start = off;
			if (off == size)
				break;
			continue;
		}
		if (rc == HTTP_PARSE_MORE) {
			assert(used == n);
			if (off == size)
				break;
			continue;
		}
		check_error(p, rc);
		h = hash_number(h, 'E');
		h = hash_number(h, (uint64_t)rc);
		h = hash_number(h, (uint64_t)http_parser_error_status(p));
		h = hash_string(h, http_parser_error(p));
		goto out;
	}

	/* The peer closes. */
	bool started = http_parser_started(p);
	int rc = http_parser_finish(p);
	h = hash_number(h, 'F');
	h = hash_number(h, (uint64_t)rc);
	if (rc == HTTP_PARSE_DONE) {
		const http_message *m = http_parser_message(p);
		assert(m != NULL);
		size_t body_len = 0;
		const char *body = http_parser_body(p, &body_len);
		assert(body_len <= body_limit);
		h = hash_bytes(h, body, body_len);
	} else if (rc == HTTP_PARSE_MORE) {
		assert(http_parser_message(p) == NULL);
	} else {
		assert(started);
		assert(rc == ERR_PARSE || rc == ERR_LIMIT);
		check_error(p, rc);
		h = hash_string(h, http_parser_error(p));
	}
out:
	http_parser_free(&p);
	assert(p == NULL);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size)
{
	const char *data = size ? (const char *)input : "";
	uint64_t seed = hash_bytes(FNV_OFFSET, data, size);

	static const size_t header_bytes[] = {16, 64, 200, 1024};
	static const size_t header_counts[] = {0, 1, 3, 8};
	static const size_t body_bytes[] = {0, 5, 64, 4096};
	static const size_t target_bytes[] = {0, 1, 8, 100};
	const http_limits generous = {
		.max_header_bytes = 1 << 16,
		.max_headers = 256,
		.max_body_bytes = 1 << 20,
	};
	const http_limits tight = {
		.max_header_bytes = header_bytes[seed >> 10 & 3],
		.max_headers = header_counts[seed >> 12 & 3],
		.max_body_bytes = body_bytes[seed >> 14 & 3],
		.max_target_bytes = target_bytes[seed >> 17 & 3],
	};
	const http_limits *limit_sets[] = {&generous, &tight};
	uint64_t choices = seed >> 16 & 1 ? seed * FNV_PRIME : 0; /* half the time no choices */
	uint64_t piece_seed = seed | 2; /* never 0 or 1 */

	for (int kind = HTTP_REQUEST; kind <= HTTP_RESPONSE; kind++) {
		for (size_t l = 0; l < 2; l++) {
			uint64_t whole = run(data, size, (http_kind)kind, limit_sets[l], 0, choices);
			uint64_t split = run(data, size, (http_kind)kind, limit_sets[l], piece_seed, choices);
			assert(whole == split);
			if (size <= 4096) {
				uint64_t bytes = run(data, size, (http_kind)kind, limit_sets[l], 1, choices);
				assert(whole == bytes);
			}
		}
	}
	return 0;
}
