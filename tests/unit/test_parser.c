/*
 * test_parser.c - unit tests for src/http/parser.c.
 *
 * The .c is included (as h2o's t/00unit does) so the tests can check the byte
 * class table and the memory the parser keeps, which the API does not show.
 * Most helpers parse a message several ways (all at once, byte by byte, in
 * pieces of 2, 3 and 7 bytes) and require the same outcome from each.
 */
#include "test.h"

#include <stdbool.h>
#include <stdlib.h>

/* Allocation fault injection (after SQLite's tests): the allocations made by
 * parser.c go through these, and the one at which the countdown reaches zero
 * fails. A negative countdown never fails. */
static long alloc_countdown = -1;

static bool alloc_should_fail(void)
{
	if (alloc_countdown < 0)
		return false;
	return alloc_countdown-- == 0;
}

static void *test_malloc(size_t size)
{
	return alloc_should_fail() ? NULL : malloc(size);
}

static void *test_calloc(size_t count, size_t size)
{
	return alloc_should_fail() ? NULL : calloc(count, size);
}

static void *test_realloc(void *old, size_t size)
{
	return alloc_should_fail() ? NULL : realloc(old, size);
}

#define malloc(size) test_malloc(size)
#define calloc(count, size) test_calloc(count, size)
#define realloc(old, size) test_realloc(old, size)
#include "http/parser.c"
#undef malloc
#undef calloc
#undef realloc

static const http_limits limits_default = {
	.max_header_bytes = 8192,
	.max_headers = 64,
	.max_body_bytes = 1 << 20,
};

/* ------------------------------------------------------------- helpers */

typedef struct outcome {
	int rc;               /* last return: DONE, MORE or an error */
	int heads;            /* how often HTTP_PARSE_HEAD was returned */
	size_t consumed;      /* bytes consumed in total */
	size_t head_consumed; /* bytes consumed when HTTP_PARSE_HEAD came */
} outcome;

/* Feed s[0..len) in pieces of `piece` bytes (0: everything at once) until the
 * message is done, fails, or the input runs out. */
static outcome run_pieces(http_parser *p, const char *s, size_t len, size_t piece)
{
	outcome o = {0};
	for (;;) {
		size_t n = len - o.consumed;
		if (piece && n > piece)
			n = piece;
		size_t used = 12345;
		o.rc = http_parser_feed(p, s + o.consumed, n, &used);
		CHECK(used <= n);
		o.consumed += used;
		if (o.rc == HTTP_PARSE_HEAD) {
			o.heads++;
			o.head_consumed = o.consumed;
			continue;
		}
		if (o.rc != HTTP_PARSE_MORE)
			break;
		CHECK_EQ_INT(used, n); /* MORE means everything was taken */
		if (o.consumed == len)
			break;
	}
	return o;
}

/* Everything observable about a parse, as text, so runs can be compared. */
static char *describe(const http_parser *p, outcome o)
{
	buf b;
	buf_init(&b, 1 << 22);
	buf_printf(&b, "rc=%d heads=%d head_consumed=%zu", o.rc, o.heads, o.head_consumed);
	if (o.rc >= 0)
		buf_printf(&b, " consumed=%zu", o.consumed);
	else
		buf_printf(&b, " status=%d error=%s", http_parser_error_status(p), http_parser_error(p));
	const http_message *m = http_parser_message(p);
	if (m) {
		if (m->kind == HTTP_REQUEST)
			buf_printf(&b, " method=%s target=%s", m->method, m->target);
		else
			buf_printf(&b, " status=%d reason=%s", m->status, m->reason);
		buf_printf(&b, " minor=%d cl=%lld chunked=%d ka=%d expect=%d close=%d fields=%zu",
			   m->version_minor, (long long)m->content_length, m->chunked, m->keep_alive,
			   m->expect_continue, m->until_close, m->field_count);
		for (size_t i = 0; i < m->field_count; i++)
			buf_printf(&b, " [%.*s: %.*s]", (int)m->fields[i].name_len, m->fields[i].name,
				   (int)m->fields[i].value_len, m->fields[i].value);
	}
	/* After an error the body holds whatever the pieces delivered first. */
	if (o.rc >= 0) {
		size_t body_len;
		const char *body = http_parser_body(p, &body_len);
		buf_printf(&b, " body=%zu:", body_len);
		buf_add(&b, body, body_len);
	}
	return buf_take(&b, NULL);
}

/*
 * Parse s[0..len) all at once and in pieces of 1, 2, 3 and 7 bytes; true when
 * every run gives the same result. The one-shot outcome goes to *out and its
 * description to *text (caller frees) when those are not NULL.
 */
static bool same_every_way(http_kind kind, const http_limits *limits, const char *s, size_t len,
			   outcome *out, char **text)
{
	static const size_t pieces[] = {0, 1, 2, 3, 7};
	char *first = NULL;
	bool same = true;
	for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
		http_parser *p = http_parser_new(kind, limits);
		outcome o = run_pieces(p, s, len, pieces[i]);
		char *d = describe(p, o);
		if (i == 0) {
			first = d;
			if (out)
				*out = o;
		} else {
			if (strcmp(first, d) != 0) {
				fprintf(stderr, "piece size %zu differs:\n  one-shot: %s\n  pieces:   %s\n",
					pieces[i], first, d);
				same = false;
			}
			free(d);
		}
		http_parser_free(&p);
	}
	if (text)
		*text = first;
	else
		free(first);
	return same;
}

/* Parse fully (every way); true when it fails with err, status and text. */
static bool fails_with_len(http_kind kind, const http_limits *limits, const char *s, size_t len,
			   int err, int status, const char *text)
{
	outcome o;
	http_parser *p = http_parser_new(kind, limits);
	bool ok = same_every_way(kind, limits, s, len, NULL, NULL);
	o = run_pieces(p, s, len, 0);
	if (o.rc != err || http_parser_error_status(p) != status || strcmp(http_parser_error(p), text) != 0) {
		fprintf(stderr, "expected %d/%d/\"%s\", got %d/%d/\"%s\" for: %.*s\n", err, status, text, o.rc,
			http_parser_error_status(p), http_parser_error(p), (int)len, s);
		ok = false;
	}
	/* Sticky: the next feed gives the same error and takes nothing. */
	size_t used = 99;
	if (http_parser_feed(p, "x", 1, &used) != err || used != 0)
		ok = false;
	http_parser_free(&p);
	return ok;
}

static bool fails_with(http_kind kind, const char *s, int err, int status, const char *text)
{
	return fails_with_len(kind, &limits_default, s, strlen(s), err, status, text);
}

#define REQUEST_FAILS(s, err, status, text) CHECK(fails_with(HTTP_REQUEST, (s), (err), (status), (text)))
#define RESPONSE_FAILS(s, err, status, text) CHECK(fails_with(HTTP_RESPONSE, (s), (err), (status), (text)))
#define REQUEST_400(s, text) REQUEST_FAILS((s), ERR_PARSE, 400, (text))

/* A parser that parsed the whole of s into one complete message (checked every
 * way). The caller frees it. */
static http_parser *parse_message(http_kind kind, const http_limits *limits, const char *s)
{
	size_t len = strlen(s);
	outcome o;
	CHECK(same_every_way(kind, limits, s, len, NULL, NULL));
	http_parser *p = http_parser_new(kind, limits);
	o = run_pieces(p, s, len, 0);
	if (o.rc != HTTP_PARSE_DONE)
		fprintf(stderr, "not DONE (%d, %s) for: %s\n", o.rc, http_parser_error(p), s);
	CHECK_EQ_INT(o.rc, HTTP_PARSE_DONE);
	CHECK_EQ_INT(o.heads, 1);
	CHECK_EQ_INT(o.consumed, len);
	return p;
}

static http_parser *parse_request(const char *s)
{
	return parse_message(HTTP_REQUEST, &limits_default, s);
}

static http_parser *parse_response(const char *s)
{
	return parse_message(HTTP_RESPONSE, &limits_default, s);
}

static bool field_is(const http_field *f, const char *name, const char *value)
{
	return f->name_len == strlen(name) && memcmp(f->name, name, f->name_len) == 0 &&
	       f->value_len == strlen(value) && memcmp(f->value, value, f->value_len) == 0;
}

/* --------------------------------------------------------------- tests */

/* The literal byte class table against the RFC 9110 grammar. */
static void test_char_classes(void)
{
	const char *tchar_specials = "!#$%&'*+-.^_`|~";
	for (int c = 0; c < 256; c++) {
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		bool digit = c >= '0' && c <= '9';
		bool vchar = c >= 0x21 && c <= 0x7e;
		bool tchar = alpha || digit || (c != 0 && strchr(tchar_specials, c) != NULL);
		bool field = c == '\t' || c == ' ' || vchar || c >= 0x80;
		bool qdtext = c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
			      (c >= 0x5d && c <= 0x7e) || c >= 0x80;
		bool hex = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
		CHECK_EQ_INT(is_class((char)c, CHAR_TOKEN), tchar);
		CHECK_EQ_INT(is_class((char)c, CHAR_FIELD), field);
		CHECK_EQ_INT(is_class((char)c, CHAR_TARGET), vchar);
		CHECK_EQ_INT(is_class((char)c, CHAR_QDTEXT), qdtext);
		CHECK_EQ_INT(is_class((char)c, CHAR_HEX), hex);
		if (hex)
			CHECK_EQ_INT(hex_value((unsigned char)c), strtol((char[]){(char)c, 0}, NULL, 16));
	}
}

static void test_simple_get(void)
{
	const char *s = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1\r\n\r\n";
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);
	CHECK(!http_parser_started(p));
	CHECK(http_parser_message(p) == NULL);
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, s, strlen(s), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(used, strlen(s));
	const http_message *m = http_parser_message(p);
	CHECK(m != NULL);
	CHECK_EQ_INT(m->kind, HTTP_REQUEST);
	CHECK_EQ_STR(m->method, "GET");
	CHECK_EQ_STR(m->target, "/index.html?q=1");
	CHECK_EQ_INT(m->version_minor, 1);
	CHECK_EQ_INT(m->status, 0);
	CHECK(m->reason == NULL);
	CHECK_EQ_INT(m->field_count, 2);
	CHECK(field_is(&m->fields[0], "Host", "example.com"));
	CHECK(field_is(&m->fields[1], "User-Agent", "test/1"));
	CHECK_EQ_INT(m->content_length, -1);
	CHECK(!m->chunked);
	CHECK(m->keep_alive);
	CHECK(!m->expect_continue);
	CHECK(!m->until_close);
	/* No body: DONE on the next feed, even with no bytes. */
	CHECK_EQ_INT(http_parser_feed(p, NULL, 0, &used), HTTP_PARSE_DONE);
	CHECK_EQ_INT(used, 0);
	size_t body_len = 99;
	CHECK_EQ_STR(http_parser_body(p, &body_len), "");
	CHECK_EQ_INT(body_len, 0);
	/* After DONE nothing more is consumed. */
	CHECK_EQ_INT(http_parser_feed(p, "GET", 3, &used), HTTP_PARSE_DONE);
	CHECK_EQ_INT(used, 0);
	CHECK_EQ_INT(http_parser_error_status(p), 0);
	http_parser_free(&p);
	CHECK(p == NULL);
	http_parser_free(&p); /* no-op on NULL */
}

static void test_post_content_length(void)
{
	const char *head = "POST /items HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
	char s[256];
	snprintf(s, sizeof s, "%shelloGET / HTTP/1.1\r\n", head);
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, s, strlen(s), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(used, strlen(head)); /* head only */
	CHECK_EQ_INT(http_parser_message(p)->content_length, 5);
	size_t off = used;
	CHECK_EQ_INT(http_parser_feed(p, s + off, 2, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(used, 2);
	off += used;
	CHECK_EQ_INT(http_parser_feed(p, s + off, strlen(s) - off, &used), HTTP_PARSE_DONE);
	CHECK_EQ_INT(used, 3); /* never past the end of the message */
	size_t body_len = 0;
	CHECK_EQ_STR(http_parser_body(p, &body_len), "hello");
	CHECK_EQ_INT(body_len, 5);
	http_parser_free(&p);

	/* Content-Length: 0 is DONE right after HEAD. */
	p = parse_request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_INT(http_parser_message(p)->content_length, 0);
	http_parser_free(&p);
}

/* http_parser_take_body: the body moves out (no copy), the parser's reads
 * as empty, and the next message on the same parser has its own body. */
static void test_take_body(void)
{
	const char *s = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
			"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);
	size_t off = 0, used = 0, len = 99;
	int rc;
	while ((rc = http_parser_feed(p, s + off, strlen(s) - off, &used)) == HTTP_PARSE_HEAD)
		off += used;
	CHECK_EQ_INT(rc, HTTP_PARSE_DONE);
	off += used;
	char *body = http_parser_take_body(p, &len);
	CHECK(body != NULL);
	CHECK_EQ_INT(len, 5);
	CHECK(memcmp(body, "hello", 5) == 0 && body[5] == '\0');
	CHECK_EQ_STR(http_parser_body(p, &len), "");
	CHECK_EQ_INT(len, 0);
	CHECK(http_parser_take_body(p, &len) == NULL); /* nothing left */
	CHECK_EQ_INT(len, 0);
	http_parser_reset(p);
	while ((rc = http_parser_feed(p, s + off, strlen(s) - off, &used)) == HTTP_PARSE_HEAD)
		off += used;
	CHECK_EQ_INT(rc, HTTP_PARSE_DONE);
	CHECK_EQ_STR(http_parser_body(p, &len), "abc");
	CHECK_EQ_STR(body, "hello"); /* ours, untouched by the next message */
	free(body);
	http_parser_free(&p);
}

/* Byte-at-a-time and other piece sizes agree with one-shot feeding, for
 * valid messages and for errors alike. */
static void test_pieces_match_one_shot(void)
{
	static const char *const requests[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
		("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "3;a=b;c=\"d\\\"e\"\r\nabc\r\n00A\r\n0123456789\r\n0\r\nT: v\r\n\r\n"),
		"OPTIONS * HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX:  padded \t\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n Folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdeX",
		"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;x=\"\x01\"\r\n",
	};
	static const char *const responses[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil the close",
		"HTTP/1.1 200\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++)
		CHECK(same_every_way(HTTP_REQUEST, &limits_default, requests[i], strlen(requests[i]), NULL, NULL));
	for (size_t i = 0; i < sizeof responses / sizeof responses[0]; i++)
		CHECK(same_every_way(HTTP_RESPONSE, &limits_default, responses[i], strlen(responses[i]), NULL, NULL));

	/* And the description really holds the parsed values. */
	char *text = NULL;
	outcome o;
	CHECK(same_every_way(HTTP_REQUEST, &limits_default, requests[3], strlen(requests[3]), &o, &text));
	CHECK_EQ_INT(o.rc, HTTP_PARSE_DONE);
	CHECK(strstr(text, "body=13:abc0123456789") != NULL);
	CHECK(strstr(text, "chunked=1") != NULL);
	free(text);
}

static void test_pipelined(void)
{
	const char *first = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
	const char *second_head = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
	const char *third_head = "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
	const char *third_body = "2\r\nxy\r\n0\r\n\r\n";
	char s[512];
	snprintf(s, sizeof s, "%s%sabc%s%sGET /d HTTP/1.1\r\nHo", first, second_head, third_head, third_body);
	size_t len = strlen(s), off = 0, used = 0, body_len = 0;
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);

	CHECK_EQ_INT(http_parser_feed(p, s, len, &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(used, strlen(first));
	CHECK_EQ_STR(http_parser_message(p)->target, "/a");
	off += used;
	CHECK_EQ_INT(http_parser_feed(p, s + off, len - off, &used), HTTP_PARSE_DONE);
	CHECK_EQ_INT(used, 0);
	http_parser_reset(p);
	CHECK(!http_parser_started(p));
	CHECK(http_parser_message(p) == NULL);

	CHECK_EQ_INT(http_parser_feed(p, s + off, len - off, &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(used, strlen(second_head));
	CHECK_EQ_STR(http_parser_message(p)->method, "POST");
	off += used;
	CHECK_EQ_INT(http_parser_feed(p, s + off, len - off, &used), HTTP_PARSE_DONE);
	CHECK_EQ_INT(used, 3);
	CHECK_EQ_STR(http_parser_body(p, &body_len), "abc");
	off += used;
	http_parser_reset(p);

	CHECK_EQ_INT(http_parser_feed(p, s + off, len - off, &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(used, strlen(third_head));
	CHECK_EQ_STR(http_parser_message(p)->target, "/c");
	off += used;
	CHECK_EQ_INT(http_parser_feed(p, s + off, len - off, &used), HTTP_PARSE_DONE);
	CHECK_EQ_INT(used, strlen(third_body));
	CHECK_EQ_STR(http_parser_body(p, &body_len), "xy");
	CHECK_EQ_INT(body_len, 2);
	off += used;
	http_parser_reset(p);
	CHECK_EQ_INT(http_parser_body(p, &body_len)[0], '\0');
	CHECK_EQ_INT(body_len, 0);

	/* The fourth request is cut short. */
	CHECK_EQ_INT(http_parser_feed(p, s + off, len - off, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(used, len - off);
	CHECK(http_parser_started(p));
	CHECK_EQ_INT(http_parser_finish(p), ERR_PARSE);
	CHECK_EQ_STR(http_parser_error(p), "incomplete message");
	http_parser_free(&p);
}

static void test_chunked_extensions_and_trailers(void)
{
	const char *head = "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
	const char *body = "5;name=value;flag\r\nhello\r\n"
			   "6 ; q = \"a \\\"quoted\\\" \tvalue\" ;last\r\n world\r\n"
			   "000A\r\n0123456789\r\n"
			   "0;end\r\nChecksum: abc\r\nX-Trailer:\t1 \r\n\r\n";
	char s[512];
	snprintf(s, sizeof s, "%s%sNEXT", head, body);
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);
	size_t used = 0, body_len = 0;
	CHECK_EQ_INT(http_parser_feed(p, s, strlen(s), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(used, strlen(head));
	const http_message *m = http_parser_message(p);
	CHECK(m->chunked);
	CHECK_EQ_INT(m->content_length, -1);
	CHECK(m->keep_alive);
	size_t off = used;
	CHECK_EQ_INT(http_parser_feed(p, s + off, strlen(s) - off, &used), HTTP_PARSE_DONE);
	CHECK_EQ_INT(used, strlen(body)); /* "NEXT" is not taken */
	CHECK_EQ_STR(http_parser_body(p, &body_len), "hello world0123456789");
	CHECK_EQ_INT(body_len, 21);
	CHECK_EQ_INT(m->field_count, 2); /* trailers are discarded */
	CHECK(http_message_field(m, "Checksum", NULL) == NULL);
	http_parser_free(&p);

	/* Every split gives the same. */
	CHECK(same_every_way(HTTP_REQUEST, &limits_default, s, strlen(s), NULL, NULL));

	/* Whitespace (BWS) around every part of an extension. */
	p = parse_request("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "2 \t ;\t a  ;b = \"x\";c \t; d\t=\te;f=g\r\nab\r\n1;g=\"\"\r\nc\r\n0\r\n\r\n");
	CHECK_EQ_STR(http_parser_body(p, &body_len), "abc");
	http_parser_free(&p);

	/* A 16-digit size (leading zeros) is fine; chunked is case-insensitive. */
	p = parse_request("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
			  "0000000000000003\r\nabc\r\n0\r\n\r\n");
	CHECK_EQ_STR(http_parser_body(p, &body_len), "abc");
	http_parser_free(&p);
}

static void test_chunk_errors(void)
{
#define CHUNKED_HEAD "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
	REQUEST_400(CHUNKED_HEAD "zz\r\n", "invalid chunk size");
	REQUEST_400(CHUNKED_HEAD "\r\n", "invalid chunk size");
	REQUEST_400(CHUNKED_HEAD "-1\r\n", "invalid chunk size");
	REQUEST_400(CHUNKED_HEAD "0x5\r\n", "invalid chunk size");
	REQUEST_400(CHUNKED_HEAD "00000000000000001\r\n", "invalid chunk size"); /* 17 digits */
	REQUEST_400(CHUNKED_HEAD "5;\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;=x\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a=\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5 \r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a \r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a=\"x\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a=\"x\"y\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a=b c\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5\nhello", "bare LF");
	REQUEST_400(CHUNKED_HEAD "5\rhello", "bare CR");
	REQUEST_400(CHUNKED_HEAD "5\r\nhelloX", "missing CRLF after chunk data");
	REQUEST_400(CHUNKED_HEAD "5\r\nhello\n", "bare LF");
	REQUEST_400(CHUNKED_HEAD "5\r\nhello\rX", "bare CR");
	REQUEST_400(CHUNKED_HEAD "0\r\n\n", "bare LF");
	REQUEST_400(CHUNKED_HEAD "0\r\n\rX", "bare CR");
	REQUEST_400(CHUNKED_HEAD "0\r\n Folded: x\r\n\r\n", "obsolete line folding");
	REQUEST_400(CHUNKED_HEAD "0\r\nName : x\r\n\r\n", "whitespace before colon");
	REQUEST_400(CHUNKED_HEAD "0\r\nNa(me: x\r\n\r\n", "invalid field name");
	REQUEST_400(CHUNKED_HEAD "0\r\n: x\r\n\r\n", "invalid field name");
	REQUEST_400(CHUNKED_HEAD "0\r\nName\r\n\r\n", "invalid field name");
	REQUEST_400(CHUNKED_HEAD "0\r\nName: a\x01z\r\n\r\n", "invalid field value");
	REQUEST_400(CHUNKED_HEAD "0\r\nName: a\n\r\n", "bare LF");
	REQUEST_400(CHUNKED_HEAD "0\r\nName: a\rb\r\n", "bare CR");
	REQUEST_400(CHUNKED_HEAD "0\r\nName\n", "bare LF");
	REQUEST_400(CHUNKED_HEAD "5;a b\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5 x\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a=\"\\\x01\"\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a=\"x\"\x01\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a=@\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a@\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a=b@\r\n", "invalid chunk extension");
	REQUEST_400(CHUNKED_HEAD "5;a=\"\x7f\"\r\n", "invalid chunk extension");

	/* A chunk line over 4 KiB. */
	char s[8192];
	int n = snprintf(s, sizeof s, "%s5;x=", CHUNKED_HEAD);
	memset(s + n, 'a', 5000);
	strcpy(s + n + 5000, "\r\nhello\r\n");
	REQUEST_FAILS(s, ERR_LIMIT, 400, "chunk line too long");
#undef CHUNKED_HEAD
}

static void test_request_line_errors(void)
{
	REQUEST_400("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", "invalid method");
	REQUEST_400(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", "invalid method");
	REQUEST_400("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("GET\r\n\r\n", "invalid method");
	REQUEST_400("GET /\r\n\r\n", "invalid request target");
	REQUEST_400("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", "invalid HTTP version");
	REQUEST_400("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", "invalid HTTP version");
	CHECK(fails_with_len(HTTP_REQUEST, &limits_default, "GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n", 27, ERR_PARSE,
			     400, "invalid request target"));

	/* Method length: 32 is the most. */
	char s[256];
	snprintf(s, sizeof s, "%.32s / HTTP/1.1\r\nHost: h\r\n\r\n", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ");
	http_parser *p = parse_request(s);
	CHECK_EQ_INT(strlen(http_parser_message(p)->method), 32);
	http_parser_free(&p);
	snprintf(s, sizeof s, "%.33s / HTTP/1.1\r\nHost: h\r\n\r\n", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ");
	REQUEST_400(s, "method too long");

	/* Unusual but valid tokens as methods. */
	p = parse_request("M-SEARCH!~ / HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->method, "M-SEARCH!~");
	http_parser_free(&p);
}

static void test_request_target_forms(void)
{
	http_parser *p = parse_request("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->target, "*");
	http_parser_free(&p);
	REQUEST_400("GET * HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");

	p = parse_request("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->method, "CONNECT");
	CHECK_EQ_STR(http_parser_message(p)->target, "example.com:443");
	http_parser_free(&p);
	p = parse_request("CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->target, "[::1]:8443");
	http_parser_free(&p);
	REQUEST_400("CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("CONNECT example.com: HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("CONNECT :443 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("CONNECT user@host:443 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("CONNECT http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("CONNECT h:44x3 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("CONNECT [::1:443 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("GET example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");

	p = parse_request("GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->target, "http://example.com/a?b");
	http_parser_free(&p);
	p = parse_request("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->target, "HTTPS://example.com");
	http_parser_free(&p);
	REQUEST_400("GET ftp://example.com/ HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("GET http:/// HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("GET http:// HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
	REQUEST_400("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", "invalid request target");
}

static void test_versions(void)
{
	http_parser *p = parse_request("GET / HTTP/1.0\r\n\r\n");
	CHECK_EQ_INT(http_parser_message(p)->version_minor, 0);
	http_parser_free(&p);
	REQUEST_FAILS("GET / HTTP/2.0\r\nHost: h\r\n\r\n", ERR_UNSUPPORTED, 505, "unsupported HTTP version");
	REQUEST_FAILS("GET / HTTP/1.2\r\nHost: h\r\n\r\n", ERR_UNSUPPORTED, 505, "unsupported HTTP version");
	REQUEST_FAILS("GET / HTTP/0.9\r\nHost: h\r\n\r\n", ERR_UNSUPPORTED, 505, "unsupported HTTP version");
	REQUEST_FAILS("GET / HTTP/3.1\r\nHost: h\r\n\r\n", ERR_UNSUPPORTED, 505, "unsupported HTTP version");
	REQUEST_400("GET / http/1.1\r\nHost: h\r\n\r\n", "invalid HTTP version");
	REQUEST_400("GET / HTTP/11\r\nHost: h\r\n\r\n", "invalid HTTP version");
	REQUEST_400("GET / HTTP/1.10\r\nHost: h\r\n\r\n", "invalid HTTP version");
	REQUEST_400("GET / HTTP/1\r\nHost: h\r\n\r\n", "invalid HTTP version");
	REQUEST_400("GET / HTTP/a.b\r\nHost: h\r\n\r\n", "invalid HTTP version");
	RESPONSE_FAILS("HTTP/2.0 200 OK\r\n\r\n", ERR_UNSUPPORTED, 505, "unsupported HTTP version");
	RESPONSE_FAILS("HTTP/1.x 200 OK\r\n\r\n", ERR_PARSE, 400, "invalid HTTP version");
	RESPONSE_FAILS("ICY 200 OK\r\n\r\n", ERR_PARSE, 400, "invalid HTTP version");
}

static void test_bare_lf_and_cr(void)
{
	REQUEST_400("GET / HTTP/1.1\nHost: h\r\n\r\n", "bare LF");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\n\r\n", "bare LF");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\n\n", "bare LF");
	REQUEST_400("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "bare LF");
	REQUEST_400("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", "bare CR");
	REQUEST_400("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", "bare CR");
	REQUEST_400("GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", "bare CR");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\n\rX\r\n", "bare CR");
	RESPONSE_FAILS("HTTP/1.1 200 OK\n\r\n", ERR_PARSE, 400, "bare LF");
	RESPONSE_FAILS("HTTP/1.1 200 O\rK\r\n\r\n", ERR_PARSE, 400, "bare CR");
}

static void test_leading_empty_lines(void)
{
	const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
	http_parser *p = parse_request(s);
	CHECK_EQ_STR(http_parser_message(p)->target, "/");
	http_parser_free(&p);
	p = parse_request("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
	http_parser_free(&p);
	REQUEST_400("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "too many empty lines");
	RESPONSE_FAILS("\r\nHTTP/1.1 200 OK\r\n\r\n", ERR_PARSE, 400, "invalid status line");

	/* They count as started, but closing after them is clean. */
	p = http_parser_new(HTTP_REQUEST, &limits_default);
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, "\r\n", 2, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(used, 2);
	CHECK(http_parser_started(p));
	CHECK_EQ_INT(http_parser_finish(p), HTTP_PARSE_MORE);
	http_parser_reset(p);
	CHECK_EQ_INT(http_parser_feed(p, "\r", 1, &used), HTTP_PARSE_MORE);
	CHECK(http_parser_started(p));
	CHECK_EQ_INT(http_parser_finish(p), ERR_PARSE);
	http_parser_free(&p);

	/* They count against the header byte limit: this head is 29 bytes. */
	http_limits limits = limits_default;
	limits.max_header_bytes = 29;
	const char *one_empty_line = "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
	CHECK_EQ_INT(strlen(one_empty_line), 29);
	p = parse_message(HTTP_REQUEST, &limits, one_empty_line);
	http_parser_free(&p);
	CHECK(fails_with_len(HTTP_REQUEST, &limits, "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 31, ERR_LIMIT,
			     431, "header section too large"));
}

static void test_field_lines(void)
{
	http_parser *p = parse_request("GET / HTTP/1.1\r\nHost: h\r\nX-Pad:  \t a  b \t \r\nX-Empty:\r\n"
				       "X-Blank: \t \r\nX-Tab:\tv\tw\r\nX-Obs: \x80\xff caf\xc3\xa9\r\n\r\n");
	const http_message *m = http_parser_message(p);
	CHECK_EQ_INT(m->field_count, 6);
	CHECK(field_is(&m->fields[1], "X-Pad", "a  b"));
	CHECK(field_is(&m->fields[2], "X-Empty", ""));
	CHECK(field_is(&m->fields[3], "X-Blank", ""));
	CHECK(field_is(&m->fields[4], "X-Tab", "v\tw"));
	CHECK(field_is(&m->fields[5], "X-Obs", "\x80\xff caf\xc3\xa9"));
	http_parser_free(&p);

	REQUEST_400("GET / HTTP/1.1\r\nHost : h\r\n\r\n", "whitespace before colon");
	REQUEST_400("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", "whitespace before colon");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", "obsolete line folding");
	REQUEST_400("GET / HTTP/1.1\r\n Host: h\r\n\r\n", "obsolete line folding");
	REQUEST_400("GET / HTTP/1.1\r\n\tHost: h\r\n\r\n", "obsolete line folding");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", "invalid field name");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", "invalid field name");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\n: empty name\r\n\r\n", "invalid field name");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\n\xc3\xa9: v\r\n\r\n", "invalid field name");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", "invalid field value");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fz\r\n\r\n", "invalid field value");
	REQUEST_400("GET / HTTP/1.1\r\nHost: h\r\nX: a\x1bz\r\n\r\n", "invalid field value");
	CHECK(fails_with_len(HTTP_REQUEST, &limits_default, "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 35,
			     ERR_PARSE, 400, "invalid field value"));
}

/* The head buffer grows while fields are stored; the fields stay right. */
static void test_head_buffer_growth(void)
{
	http_limits limits = limits_default;
	limits.max_header_bytes = 1 << 16;
	char s[1 << 15];
	size_t n = (size_t)snprintf(s, sizeof s, "GET /grow HTTP/1.1\r\nHost: h\r\nX-Big: ");
	memset(s + n, 'v', 5000);
	n += 5000;
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(s + n, sizeof s - n, "\r\nX-%d: value-%d", i, i);
	strcpy(s + n, "\r\n\r\n");
	http_parser *p = parse_message(HTTP_REQUEST, &limits, s);
	const http_message *m = http_parser_message(p);
	CHECK_EQ_STR(m->method, "GET");
	CHECK_EQ_STR(m->target, "/grow");
	CHECK_EQ_INT(m->field_count, 42);
	CHECK(field_is(&m->fields[0], "Host", "h"));
	CHECK_EQ_INT(m->fields[1].value_len, 5000);
	CHECK(m->fields[1].value[0] == 'v' && m->fields[1].value[4999] == 'v');
	CHECK(field_is(&m->fields[41], "X-39", "value-39"));
	size_t value_len = 0;
	CHECK_EQ_INT(memcmp(http_message_field(m, "x-20", &value_len), "value-20", 8), 0);
	CHECK_EQ_INT(value_len, 8);
	CHECK(p->head_cap >= 5000);
	CHECK(p->fields_cap >= 42);

	/* Reset gives the grown memory back. */
	http_parser_reset(p);
	CHECK(p->head_cap <= HEAD_INITIAL_BYTES);
	CHECK(p->fields_cap <= FIELDS_INITIAL);
	http_parser_free(&p);
}

/* A new or reset parser holds little memory. */
static void test_idle_memory(void)
{
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);
	CHECK(p->head == NULL);
	CHECK(p->fields == NULL);
	CHECK(p->body.data == NULL);
	const char *s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
	outcome o = run_pieces(p, s, strlen(s), 0);
	CHECK_EQ_INT(o.rc, HTTP_PARSE_DONE);
	http_parser_reset(p);
	CHECK_EQ_INT(p->head_cap, HEAD_INITIAL_BYTES);
	CHECK_EQ_INT(p->fields_cap, FIELDS_INITIAL);
	CHECK(p->body.cap <= BODY_KEEP_BYTES);

	/* A large body is released on reset. */
	char big[9000];
	int n = snprintf(big, sizeof big, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 8000\r\n\r\n");
	memset(big + n, 'b', 8000);
	o = run_pieces(p, big, (size_t)n + 8000, 0);
	CHECK_EQ_INT(o.rc, HTTP_PARSE_DONE);
	CHECK(p->body.cap > 8000);
	http_parser_reset(p);
	CHECK_EQ_INT(p->body.cap, 0);
	http_parser_free(&p);
}

static void test_header_limits(void)
{
	/* max_header_bytes counts every byte of the head, final CRLF included. */
	const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX: 12345\r\n\r\n";
	http_limits limits = limits_default;
	limits.max_header_bytes = strlen(s);
	http_parser *p = parse_message(HTTP_REQUEST, &limits, s);
	CHECK_EQ_INT(http_parser_message(p)->field_count, 2);
	http_parser_free(&p);
	limits.max_header_bytes = strlen(s) - 1;
	CHECK(fails_with_len(HTTP_REQUEST, &limits, s, strlen(s), ERR_LIMIT, 431, "header section too large"));

	/* The overflow is seen as the bytes arrive, before any line ends. */
	limits.max_header_bytes = 100;
	char line[200];
	memset(line, 'a', sizeof line);
	memcpy(line, "GET /", 5);
	p = http_parser_new(HTTP_REQUEST, &limits);
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, line, 100, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(used, 100);
	CHECK_EQ_INT(http_parser_feed(p, line, 1, &used), ERR_LIMIT);
	CHECK_EQ_INT(http_parser_error_status(p), 431);
	CHECK_EQ_STR(http_parser_error(p), "header section too large");
	http_parser_reset(p);
	CHECK_EQ_INT(http_parser_feed(p, line, sizeof line, &used), ERR_LIMIT);
	CHECK_EQ_INT(http_parser_error_status(p), 431);
	http_parser_free(&p);

	/* max_headers: exactly fits, one over, and seen on the first byte of the
	 * extra field line. */
	limits = limits_default;
	limits.max_headers = 3;
	p = parse_message(HTTP_REQUEST, &limits, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n");
	CHECK_EQ_INT(http_parser_message(p)->field_count, 3);
	http_parser_free(&p);
	const char *four = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	CHECK(fails_with_len(HTTP_REQUEST, &limits, four, strlen(four), ERR_LIMIT, 431, "too many header fields"));
	p = http_parser_new(HTTP_REQUEST, &limits);
	const char *partial = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC";
	CHECK_EQ_INT(http_parser_feed(p, partial, strlen(partial), &used), ERR_LIMIT);
	CHECK_EQ_STR(http_parser_error(p), "too many header fields");
	http_parser_free(&p);

	/* A line starting with a bare CR past the field limit: the count is
	 * checked first whichever way the line arrives. */
	limits = limits_default;
	limits.max_headers = 1;
	CHECK(fails_with_len(HTTP_REQUEST, &limits, "GET / HTTP/1.1\r\nHost: h\r\n\rX\r\n\r\n", 32, ERR_LIMIT,
			     431, "too many header fields"));
	limits.max_headers = 2;
	CHECK(fails_with_len(HTTP_REQUEST, &limits, "GET / HTTP/1.1\r\nHost: h\r\n\rX\r\n\r\n", 32, ERR_PARSE,
			     400, "bare CR"));

	/* Trailers count against both limits. */
	const char *chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "1\r\na\r\n0\r\nT: 1\r\n\r\n";
	size_t head_len = strlen(chunked) - strlen("1\r\na\r\n0\r\nT: 1\r\n\r\n");
	limits = limits_default;
	limits.max_header_bytes = head_len + strlen("T: 1\r\n\r\n");
	p = parse_message(HTTP_REQUEST, &limits, chunked);
	http_parser_free(&p);
	limits.max_header_bytes--;
	CHECK(fails_with_len(HTTP_REQUEST, &limits, chunked, strlen(chunked), ERR_LIMIT, 431,
			     "header section too large"));
	limits = limits_default;
	limits.max_headers = 2;
	CHECK(fails_with_len(HTTP_REQUEST, &limits, chunked, strlen(chunked), ERR_LIMIT, 431,
			     "too many header fields"));
	const char *two_trailers = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				   "0\r\nT: 1\r\nU: 2\r\n\r\n";
	limits.max_headers = 4;
	p = parse_message(HTTP_REQUEST, &limits, two_trailers);
	http_parser_free(&p);
	limits.max_headers = 3;
	CHECK(fails_with_len(HTTP_REQUEST, &limits, two_trailers, strlen(two_trailers), ERR_LIMIT, 431,
			     "too many header fields"));
}

/* max_target_bytes: 414 as the target's bytes arrive, whichever limit the
 * line passes first decides, the same however the input is split. */
static void test_target_limit(void)
{
	http_limits limits = limits_default;
	limits.max_target_bytes = 10;
	http_parser *p = parse_message(HTTP_REQUEST, &limits, "GET /123456789 HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->target, "/123456789");
	http_parser_free(&p);
	const char *over = "GET /1234567890 HTTP/1.1\r\nHost: h\r\n\r\n";
	CHECK(fails_with_len(HTTP_REQUEST, &limits, over, strlen(over), ERR_LIMIT, 414, "request target too long"));
	/* seen before the line ends: the 11th target byte fails */
	p = http_parser_new(HTTP_REQUEST, &limits);
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, "GET /123456789", 14, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(http_parser_feed(p, "0", 1, &used), ERR_LIMIT);
	CHECK_EQ_INT(http_parser_error_status(p), 414);
	/* reset: the next request line is counted afresh */
	http_parser_reset(p);
	CHECK_EQ_INT(http_parser_feed(p, "GET /12 HTTP/1.1\r\nHost: h\r\n\r\n", 31, &used), HTTP_PARSE_HEAD);
	http_parser_free(&p);
	/* leading empty lines do not count, nor do field lines */
	p = parse_message(HTTP_REQUEST, &limits, "\r\nGET /123456789 HTTP/1.1\r\nHost: 1234567890123\r\n\r\n");
	http_parser_free(&p);
	/* a long method is not the target */
	p = parse_message(HTTP_REQUEST, &limits, "PROPFIND-LONG-METHOD / HTTP/1.1\r\nHost: h\r\n\r\n");
	http_parser_free(&p);
	/* the first limit passed wins: 414 when the target passes before the
	 * head byte limit, 431 when the head is full first */
	char line[200];
	memset(line, 'a', sizeof line);
	memcpy(line, "GET /", 5);
	limits.max_header_bytes = 100;
	limits.max_target_bytes = 50;
	CHECK(fails_with_len(HTTP_REQUEST, &limits, line, sizeof line, ERR_LIMIT, 414, "request target too long"));
	limits.max_target_bytes = 96; /* the 96th target byte is head byte 100 */
	CHECK(fails_with_len(HTTP_REQUEST, &limits, line, sizeof line, ERR_LIMIT, 431, "header section too large"));
	limits.max_target_bytes = 95;
	CHECK(fails_with_len(HTTP_REQUEST, &limits, line, sizeof line, ERR_LIMIT, 414, "request target too long"));
	/* 0: no limit (responses never have one) */
	limits = limits_default;
	p = parse_message(HTTP_REQUEST, &limits, "GET /123456789012345678901234567890 HTTP/1.1\r\nHost: h\r\n\r\n");
	http_parser_free(&p);
	limits.max_target_bytes = 1;
	p = parse_message(HTTP_RESPONSE, &limits, "HTTP/1.1 200 A long reason phrase\r\nContent-Length: 0\r\n\r\n");
	http_parser_free(&p);
}

static void test_content_length(void)
{
	http_parser *p = parse_request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc");
	CHECK_EQ_INT(http_parser_message(p)->content_length, 3);
	http_parser_free(&p);
	p = parse_request("POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 3 , 3,3\r\n\r\nabc");
	CHECK_EQ_INT(http_parser_message(p)->content_length, 3);
	http_parser_free(&p);
	p = parse_request("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0003\r\n\r\nabc");
	CHECK_EQ_INT(http_parser_message(p)->content_length, 3);
	http_parser_free(&p);

	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		    "conflicting content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n", "conflicting content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", "invalid content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", "invalid content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3a\r\n\r\n", "invalid content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", "invalid content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", "invalid content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3,\r\n\r\n", "invalid content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3 4\r\n\r\n", "invalid content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n",
		    "invalid content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
		    "invalid content-length");

	/* The largest value parses; the body limit then refuses it. */
	p = http_parser_new(HTTP_REQUEST, &limits_default);
	const char *s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n";
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, s, strlen(s), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(http_parser_message(p)->content_length, INT64_MAX);
	CHECK_EQ_INT(http_parser_feed(p, NULL, 0, &used), ERR_LIMIT);
	CHECK_EQ_INT(http_parser_error_status(p), 413);
	http_parser_free(&p);
}

static void test_transfer_encoding(void)
{
	http_parser *p = parse_request("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n");
	CHECK(http_parser_message(p)->chunked);
	http_parser_free(&p);

	REQUEST_FAILS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ERR_UNSUPPORTED, 501,
		      "unsupported transfer coding");
	REQUEST_FAILS("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
		      ERR_UNSUPPORTED, 501, "unsupported transfer coding");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "chunked not last");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", "chunked not last");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
		    "invalid transfer-encoding");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", "invalid transfer-encoding");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chun ked\r\n\r\n", "invalid transfer-encoding");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", "invalid transfer-encoding");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		    "transfer-encoding with content-length");
	REQUEST_400("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		    "transfer-encoding with content-length");
	REQUEST_400("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "transfer-encoding in HTTP/1.0");

	/* Responses: chunked last is chunked; otherwise read until close; TE
	 * wins over Content-Length but the connection is not reused. */
	p = parse_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
	CHECK(http_parser_message(p)->chunked);
	CHECK(http_parser_message(p)->keep_alive);
	CHECK(!http_parser_message(p)->until_close);
	http_parser_free(&p);

	p = http_parser_new(HTTP_RESPONSE, &limits_default);
	const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip;level=1\r\n\r\nraw bytes";
	outcome o = run_pieces(p, s, strlen(s), 0);
	CHECK_EQ_INT(o.rc, HTTP_PARSE_MORE);
	const http_message *m = http_parser_message(p);
	CHECK(!m->chunked);
	CHECK(m->until_close);
	CHECK(!m->keep_alive);
	CHECK_EQ_INT(http_parser_finish(p), HTTP_PARSE_DONE);
	size_t body_len = 0;
	CHECK_EQ_STR(http_parser_body(p, &body_len), "raw bytes");
	http_parser_free(&p);

	p = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
			   "2\r\nok\r\n0\r\n\r\n");
	m = http_parser_message(p);
	CHECK(m->chunked);
	CHECK_EQ_INT(m->content_length, -1);
	CHECK(!m->keep_alive);
	CHECK_EQ_STR(http_parser_body(p, &body_len), "ok");
	http_parser_free(&p);
}

static void test_host(void)
{
	REQUEST_400("GET / HTTP/1.1\r\n\r\n", "missing host");
	REQUEST_400("GET / HTTP/1.1\r\nX-Host: h\r\n\r\n", "missing host");
	REQUEST_400("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "multiple host fields");
	REQUEST_400("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", "multiple host fields");
	http_parser *p = parse_request("GET / HTTP/1.1\r\nHOST: h\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->method, "GET");
	http_parser_free(&p);
	p = parse_request("GET / HTTP/1.1\r\nHost:\r\n\r\n"); /* empty Host is allowed */
	CHECK_EQ_INT(http_parser_message(p)->fields[0].value_len, 0);
	http_parser_free(&p);
	p = parse_request("GET / HTTP/1.0\r\n\r\n");
	CHECK_EQ_INT(http_parser_message(p)->field_count, 0);
	http_parser_free(&p);
}

static void test_keep_alive(void)
{
	static const struct {
		const char *message;
		bool keep_alive;
	} cases[] = {
		{"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: close\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", true},
		{"GET / HTTP/1.0\r\n\r\n", false},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
		{"GET / HTTP/1.0\r\nConnection: Upgrade, Keep-Alive\r\n\r\n", true},
		{"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		http_parser *p = parse_request(cases[i].message);
		CHECK_EQ_INT(http_parser_message(p)->keep_alive, cases[i].keep_alive);
		http_parser_free(&p);
	}
	http_parser *p = parse_response("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok");
	CHECK(http_parser_message(p)->keep_alive);
	http_parser_free(&p);
	p = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
	CHECK(!http_parser_message(p)->keep_alive);
	http_parser_free(&p);
}

static void test_expect_continue(void)
{
	const char *s = "PUT /o HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n";
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);
	size_t used = 0, body_len = 0;
	CHECK_EQ_INT(http_parser_feed(p, s, strlen(s), &used), HTTP_PARSE_HEAD);
	CHECK(http_parser_message(p)->expect_continue);
	/* The server answers 100 and the body follows later. */
	CHECK_EQ_INT(http_parser_feed(p, NULL, 0, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(http_parser_feed(p, "data", 4, &used), HTTP_PARSE_DONE);
	CHECK_EQ_STR(http_parser_body(p, &body_len), "data");
	http_parser_free(&p);

	p = parse_request("GET / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n\r\n");
	CHECK(!http_parser_message(p)->expect_continue);
	http_parser_free(&p);
	p = parse_request("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"); /* ignored in 1.0 */
	CHECK(!http_parser_message(p)->expect_continue);
	http_parser_free(&p);
}

static void test_body_limits(void)
{
	http_limits limits = limits_default;
	limits.max_body_bytes = 10;
	const char *head = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits);
	size_t used = 0, body_len = 0;
	CHECK_EQ_INT(http_parser_feed(p, head, strlen(head), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(http_parser_feed(p, NULL, 0, &used), ERR_LIMIT); /* no body byte needed */
	CHECK_EQ_INT(http_parser_error_status(p), 413);
	CHECK_EQ_STR(http_parser_error(p), "content too large");
	CHECK(http_parser_message(p) != NULL); /* the head stays readable */

	/* The caller may raise the limit after HEAD. */
	http_parser_reset(p);
	CHECK_EQ_INT(http_parser_feed(p, head, strlen(head), &used), HTTP_PARSE_HEAD);
	http_parser_set_body_limit(p, 11);
	CHECK_EQ_INT(http_parser_feed(p, "hello world", 11, &used), HTTP_PARSE_DONE);
	CHECK_EQ_STR(http_parser_body(p, &body_len), "hello world");
	/* ...and reset goes back to the configured limit. */
	http_parser_reset(p);
	CHECK_EQ_INT(http_parser_feed(p, head, strlen(head), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(http_parser_feed(p, "hello world", 11, &used), ERR_LIMIT);
	http_parser_free(&p);

	p = parse_message(HTTP_REQUEST, &limits, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789");
	CHECK_EQ_STR(http_parser_body(p, &body_len), "0123456789");
	http_parser_free(&p);

	/* Chunked: refused as soon as a chunk size would pass the limit. */
	p = http_parser_new(HTTP_REQUEST, &limits);
	const char *chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
	CHECK_EQ_INT(http_parser_feed(p, chunked, strlen(chunked), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(http_parser_feed(p, "6\r\nhello \r\n", 11, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(http_parser_feed(p, "5", 1, &used), ERR_LIMIT);
	CHECK_EQ_INT(http_parser_error_status(p), 413);
	http_parser_free(&p);
	p = parse_message(HTTP_REQUEST, &limits,
			  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n4\r\nworl\r\n0\r\n\r\n");
	CHECK_EQ_STR(http_parser_body(p, &body_len), "hello worl");
	http_parser_free(&p);

	/* Lowered in the middle of a chunk. */
	p = http_parser_new(HTTP_REQUEST, &limits);
	CHECK_EQ_INT(http_parser_feed(p, chunked, strlen(chunked), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(http_parser_feed(p, "5\r\nhe", 5, &used), HTTP_PARSE_MORE);
	http_parser_set_body_limit(p, 3);
	CHECK_EQ_INT(http_parser_feed(p, "llo\r\n", 5, &used), ERR_LIMIT);
	CHECK_EQ_INT(http_parser_error_status(p), 413);
	http_parser_free(&p);

	/* finish() right after HEAD still applies the limit. */
	p = http_parser_new(HTTP_REQUEST, &limits);
	CHECK_EQ_INT(http_parser_feed(p, head, strlen(head), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(http_parser_finish(p), ERR_LIMIT);
	CHECK_EQ_INT(http_parser_error_status(p), 413);
	http_parser_free(&p);

	/* Until close. */
	CHECK(fails_with_len(HTTP_RESPONSE, &limits, "HTTP/1.1 200 OK\r\n\r\n0123456789a", 30, ERR_LIMIT, 413,
			     "content too large"));
}

static void test_responses(void)
{
	http_parser *p = parse_response("HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
	const http_message *m = http_parser_message(p);
	size_t body_len = 0;
	CHECK_EQ_INT(m->kind, HTTP_RESPONSE);
	CHECK_EQ_INT(m->status, 404);
	CHECK_EQ_STR(m->reason, "Not Found");
	CHECK(m->method == NULL && m->target == NULL);
	CHECK(m->keep_alive);
	CHECK(!m->until_close);
	CHECK_EQ_STR(http_parser_body(p, &body_len), "nope");
	http_parser_free(&p);

	p = parse_response("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"); /* lenient: no SP */
	CHECK_EQ_STR(http_parser_message(p)->reason, "");
	CHECK_EQ_INT(http_parser_message(p)->status, 200);
	http_parser_free(&p);
	p = parse_response("HTTP/1.1 999 \r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->reason, "");
	CHECK_EQ_INT(http_parser_message(p)->status, 999);
	http_parser_free(&p);
	p = parse_response("HTTP/1.0 500 Very \tbad \x80\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_STR(http_parser_message(p)->reason, "Very \tbad \x80");
	CHECK_EQ_INT(http_parser_message(p)->version_minor, 0);
	http_parser_free(&p);

	RESPONSE_FAILS("HTTP/1.1 20 OK\r\n\r\n", ERR_PARSE, 400, "invalid status code");
	RESPONSE_FAILS("HTTP/1.1 2000 OK\r\n\r\n", ERR_PARSE, 400, "invalid status code");
	RESPONSE_FAILS("HTTP/1.1 abc OK\r\n\r\n", ERR_PARSE, 400, "invalid status code");
	RESPONSE_FAILS("HTTP/1.1 099 OK\r\n\r\n", ERR_PARSE, 400, "invalid status code");
	RESPONSE_FAILS("HTTP/1.1  200 OK\r\n\r\n", ERR_PARSE, 400, "invalid status code");
	RESPONSE_FAILS("HTTP/1.1\r\n\r\n", ERR_PARSE, 400, "invalid status code");
	RESPONSE_FAILS("HTTP/1.1 200 O\x01K\r\n\r\n", ERR_PARSE, 400, "invalid reason phrase");
	RESPONSE_FAILS("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", ERR_PARSE, 400, "whitespace before colon");

	/* Delimited by close: finish() ends it. */
	p = http_parser_new(HTTP_RESPONSE, &limits_default);
	const char *s = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nsome ";
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, s, strlen(s), &used), HTTP_PARSE_HEAD);
	m = http_parser_message(p);
	CHECK(m->until_close);
	CHECK(!m->keep_alive);
	CHECK_EQ_INT(m->content_length, -1);
	CHECK_EQ_INT(http_parser_feed(p, s + used, strlen(s) - used, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(used, 5);
	CHECK_EQ_INT(http_parser_feed(p, "data", 4, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(http_parser_finish(p), HTTP_PARSE_DONE);
	CHECK_EQ_STR(http_parser_body(p, &body_len), "some data");
	CHECK_EQ_INT(http_parser_feed(p, "more", 4, &used), HTTP_PARSE_DONE);
	CHECK_EQ_INT(used, 0);
	http_parser_free(&p);

	/* An empty body delimited by close, closed right after the head. */
	p = http_parser_new(HTTP_RESPONSE, &limits_default);
	s = "HTTP/1.1 200 OK\r\n\r\n";
	CHECK_EQ_INT(http_parser_feed(p, s, strlen(s), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(http_parser_finish(p), HTTP_PARSE_DONE);
	CHECK_EQ_STR(http_parser_body(p, &body_len), "");
	http_parser_free(&p);
}

static void test_bodyless_responses(void)
{
	static const char *const cases[] = {
		"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char s[256];
		snprintf(s, sizeof s, "%sNEXT", cases[i]);
		http_parser *p = http_parser_new(HTTP_RESPONSE, &limits_default);
		outcome o = run_pieces(p, s, strlen(s), 0);
		CHECK_EQ_INT(o.rc, HTTP_PARSE_DONE);
		CHECK_EQ_INT(o.consumed, strlen(cases[i]));
		CHECK(!http_parser_message(p)->until_close);
		CHECK(http_parser_message(p)->keep_alive);
		http_parser_free(&p);
	}

	/* 100 Continue then the final response, in one buffer. */
	const char *interim = "HTTP/1.1 100 Continue\r\n\r\n";
	const char *final = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nid";
	char s[256];
	snprintf(s, sizeof s, "%s%s", interim, final);
	http_parser *p = http_parser_new(HTTP_RESPONSE, &limits_default);
	outcome o = run_pieces(p, s, strlen(s), 0);
	CHECK_EQ_INT(o.rc, HTTP_PARSE_DONE);
	CHECK_EQ_INT(o.consumed, strlen(interim));
	CHECK_EQ_INT(http_parser_message(p)->status, 100);
	CHECK_EQ_STR(http_parser_message(p)->reason, "Continue");
	http_parser_reset(p);
	o = run_pieces(p, s + strlen(interim), strlen(final), 0);
	CHECK_EQ_INT(o.rc, HTTP_PARSE_DONE);
	CHECK_EQ_INT(o.consumed, strlen(final));
	CHECK_EQ_INT(http_parser_message(p)->status, 201);
	size_t body_len = 0;
	CHECK_EQ_STR(http_parser_body(p, &body_len), "id");
	http_parser_free(&p);

	/* The answer to a HEAD request: no body whatever the fields say. */
	p = http_parser_new(HTTP_RESPONSE, &limits_default);
	const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, head, strlen(head), &used), HTTP_PARSE_HEAD);
	http_parser_set_no_body(p);
	CHECK_EQ_INT(http_parser_feed(p, "NEXT", 4, &used), HTTP_PARSE_DONE);
	CHECK_EQ_INT(used, 0);
	CHECK_EQ_INT(http_parser_message(p)->content_length, 100);
	CHECK(http_parser_message(p)->keep_alive);
	http_parser_reset(p);
	/* ... also when it would otherwise be read until close. */
	head = "HTTP/1.1 200 OK\r\n\r\n";
	CHECK_EQ_INT(http_parser_feed(p, head, strlen(head), &used), HTTP_PARSE_HEAD);
	CHECK(http_parser_message(p)->until_close);
	http_parser_set_no_body(p);
	CHECK(!http_parser_message(p)->until_close);
	CHECK(http_parser_message(p)->keep_alive);
	CHECK_EQ_INT(http_parser_feed(p, NULL, 0, &used), HTTP_PARSE_DONE);
	http_parser_free(&p);
}

static void test_finish(void)
{
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);
	CHECK_EQ_INT(http_parser_finish(p), HTTP_PARSE_MORE); /* nothing started */
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, "GET / HT", 8, &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(http_parser_finish(p), ERR_PARSE); /* mid-head */
	CHECK_EQ_INT(http_parser_error_status(p), 400);
	CHECK_EQ_STR(http_parser_error(p), "incomplete message");
	CHECK_EQ_INT(http_parser_feed(p, "TP/1.1\r\n", 8, &used), ERR_PARSE); /* sticky */
	CHECK_EQ_INT(used, 0);
	CHECK_EQ_INT(http_parser_finish(p), ERR_PARSE);

	http_parser_reset(p);
	CHECK_EQ_INT(http_parser_error_status(p), 0);
	CHECK_EQ_STR(http_parser_error(p), "");
	const char *s = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel";
	outcome o = run_pieces(p, s, strlen(s), 0);
	CHECK_EQ_INT(o.rc, HTTP_PARSE_MORE);
	CHECK_EQ_INT(http_parser_finish(p), ERR_PARSE); /* mid-body */

	http_parser_reset(p);
	s = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
	o = run_pieces(p, s, strlen(s), 0);
	CHECK_EQ_INT(o.rc, HTTP_PARSE_MORE);
	CHECK_EQ_INT(http_parser_finish(p), ERR_PARSE); /* mid-chunked */

	http_parser_reset(p);
	s = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	CHECK_EQ_INT(http_parser_feed(p, s, strlen(s), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(http_parser_finish(p), HTTP_PARSE_DONE); /* head complete, no body */
	CHECK_EQ_INT(http_parser_finish(p), HTTP_PARSE_DONE);
	http_parser_reset(p);
	CHECK_EQ_INT(http_parser_finish(p), HTTP_PARSE_MORE); /* between messages */
	http_parser_free(&p);
}

static void test_message_field_lookup(void)
{
	http_parser *p = parse_request("GET / HTTP/1.1\r\nHost: h\r\nX-Dup: first\r\nx-dup: second\r\n"
				       "Accept:  text/plain \r\n\r\n");
	const http_message *m = http_parser_message(p);
	size_t len = 0;
	const char *v = http_message_field(m, "X-DUP", &len);
	CHECK(v != NULL && len == 5 && memcmp(v, "first", 5) == 0);
	v = http_message_field(m, "accept", &len);
	CHECK(v != NULL && len == 10 && memcmp(v, "text/plain", 10) == 0);
	len = 7;
	CHECK(http_message_field(m, "Missing", &len) == NULL);
	CHECK_EQ_INT(len, 0);
	CHECK(http_message_field(m, "X-Du", NULL) == NULL);
	CHECK(http_message_field(m, "Host", NULL) != NULL);
	http_parser_free(&p);
}

/* A failed parse, then a good one on the same parser after reset. */
static void test_error_then_reset(void)
{
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);
	const char *bad = "GET / HTTP/1.1\r\nHost : h\r\n\r\n";
	size_t used = 0;
	CHECK_EQ_INT(http_parser_feed(p, bad, strlen(bad), &used), ERR_PARSE);
	CHECK(http_parser_message(p) == NULL);
	CHECK_EQ_INT(http_parser_finish(p), ERR_PARSE);
	http_parser_reset(p);
	const char *good = "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n";
	CHECK_EQ_INT(http_parser_feed(p, good, strlen(good), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_STR(http_parser_message(p)->target, "/ok");
	http_parser_free(&p);
}

/* Every allocation the parser makes may fail: the result is either the
 * parsed message or ERR_NOMEM with status 500, never a crash or a leak. */
static void test_allocation_failures(void)
{
	http_limits limits = limits_default;
	limits.max_header_bytes = 1 << 16;
	char s[16384];
	size_t n = (size_t)snprintf(s, sizeof s, "POST /alloc HTTP/1.1\r\nHost: h\r\nX-Big: ");
	memset(s + n, 'v', 3000);
	n += 3000;
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(s + n, sizeof s - n, "\r\nX-%d: %d", i, i);
	n += (size_t)snprintf(s + n, sizeof s - n, "\r\nContent-Length: 4\r\n\r\nbody");
	int failures = 0;
	bool succeeded = false;
	for (long countdown = 0; countdown < 50 && !succeeded; countdown++) {
		alloc_countdown = countdown;
		http_parser *p = http_parser_new(HTTP_REQUEST, &limits);
		if (!p) {
			failures++;
			continue;
		}
		outcome o = run_pieces(p, s, n, countdown % 2 ? 0 : 100);
		if (o.rc == HTTP_PARSE_DONE) {
			succeeded = true;
			CHECK_EQ_INT(http_parser_message(p)->field_count, 43);
			CHECK_EQ_INT(http_parser_message(p)->content_length, 4);
		} else {
			failures++;
			CHECK_EQ_INT(o.rc, ERR_NOMEM);
			CHECK_EQ_INT(http_parser_error_status(p), 500);
			CHECK_EQ_STR(http_parser_error(p), "out of memory");
		}
		http_parser_free(&p);
	}
	alloc_countdown = -1;
	CHECK(succeeded);
	CHECK(failures >= 4); /* the parser, the head twice or more, the fields */
}

/* A body handed to a sink (streamed) is not collected; a limit set after
 * the sink counts what went by: an announced length over it is 413 at the
 * body's start, a chunked body at the chunk that passes it; without a
 * limit set afterwards there is none (the replication stream's case). */
static size_t sunk;
static void count_sink(void *arg, const char *data, size_t len)
{
	sunk += len;
}

static void test_sink_limit(void)
{
	size_t used = 0;
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits_default);
	const char *chunked = "PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
	CHECK_EQ_INT(http_parser_feed(p, chunked, strlen(chunked), &used), HTTP_PARSE_HEAD);
	http_parser_set_body_sink(p, count_sink, NULL);
	http_parser_set_body_limit(p, 10);
	sunk = 0;
	const char *c1 = "6\r\nabcdef\r\n";
	CHECK_EQ_INT(http_parser_feed(p, c1, strlen(c1), &used), HTTP_PARSE_MORE);
	CHECK_EQ_INT(sunk, 6);
	size_t blen = 99;
	http_parser_body(p, &blen);
	CHECK_EQ_INT(blen, 0); /* not collected */
	const char *c2 = "5\r\nghijk\r\n";
	CHECK(http_parser_feed(p, c2, strlen(c2), &used) == ERR_LIMIT);
	CHECK_EQ_INT(http_parser_error_status(p), 413);
	CHECK_EQ_INT(sunk, 6);
	http_parser_reset(p);
	const char *cl = "PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
	CHECK_EQ_INT(http_parser_feed(p, cl, strlen(cl), &used), HTTP_PARSE_HEAD);
	http_parser_set_body_sink(p, count_sink, NULL);
	http_parser_set_body_limit(p, 10);
	CHECK(http_parser_feed(p, "", 0, &used) == ERR_LIMIT); /* announced: at once */
	http_parser_reset(p);
	/* no limit after the sink: unbounded, as before */
	const char *big = "PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n";
	CHECK_EQ_INT(http_parser_feed(p, big, strlen(big), &used), HTTP_PARSE_HEAD);
	http_parser_set_body_sink(p, count_sink, NULL);
	sunk = 0;
	static char block[100000];
	int rc = HTTP_PARSE_MORE;
	for (int i = 0; i < 20; i++)
		rc = http_parser_feed(p, block, sizeof block, &used);
	CHECK_EQ_INT(rc, HTTP_PARSE_DONE);
	CHECK_EQ_INT(sunk, 2000000);
	/* the next message is collected again, under the default limit */
	http_parser_reset(p);
	const char *small = "PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
	CHECK_EQ_INT(http_parser_feed(p, small, strlen(small), &used), HTTP_PARSE_HEAD);
	CHECK_EQ_INT(http_parser_feed(p, small + used, strlen(small) - used, &used), HTTP_PARSE_DONE);
	CHECK_EQ_STR(http_parser_body(p, &blen), "abc");
	http_parser_free(&p);
}

int main(void)
{
	RUN(test_char_classes);
	RUN(test_simple_get);
	RUN(test_post_content_length);
	RUN(test_take_body);
	RUN(test_sink_limit);
	RUN(test_pieces_match_one_shot);
	RUN(test_pipelined);
	RUN(test_chunked_extensions_and_trailers);
	RUN(test_chunk_errors);
	RUN(test_request_line_errors);
	RUN(test_request_target_forms);
	RUN(test_versions);
	RUN(test_bare_lf_and_cr);
	RUN(test_leading_empty_lines);
	RUN(test_field_lines);
	RUN(test_head_buffer_growth);
	RUN(test_idle_memory);
	RUN(test_header_limits);
	RUN(test_target_limit);
	RUN(test_content_length);
	RUN(test_transfer_encoding);
	RUN(test_host);
	RUN(test_keep_alive);
	RUN(test_expect_continue);
	RUN(test_body_limits);
	RUN(test_responses);
	RUN(test_bodyless_responses);
	RUN(test_finish);
	RUN(test_message_field_lookup);
	RUN(test_error_then_reset);
	RUN(test_allocation_failures);
	return TEST_SUMMARY();
}
