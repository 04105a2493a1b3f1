/*
 * parser.c - strict, incremental HTTP/1.1 message parser (RFC 9112); see
 * parser.h for the interface.
 *
 * Every request the backend serves, and every response it reads from a peer
 * region, goes through this file, so it is both the first line of defence
 * against malformed or hostile input (request smuggling, header floods,
 * oversized bodies) and on the hot path. It therefore rejects anything RFC 9112
 * does not allow, instead of guessing, and it touches each input byte a small,
 * constant number of times: memchr() finds line ends, lookup tables classify
 * bytes, and bodies are copied in runs.
 *
 * Design
 * ------
 *
 *   new/reset
 *      |
 *      v
 *   +------+   feed_head(): copy bytes, parse    +------------+
 *   | HEAD |------------------------------------>| BODY_START |
 *   +------+   each completed line; the empty    +------------+
 *              line ends the head (the feed            |
 *              returns HTTP_PARSE_HEAD)                |
 *                                                      |
 *      next feed (or finish): start_body() checks a known Content-Length
 *      against the body limit and picks the framing
 *        +-------------------+-------------------------+------------+
 *        | Content-Length    | chunked                 | until close| no body
 *        v                   v                         v            |
 *   BODY_LENGTH   +----> CHUNK_SIZE, CHUNK_EXT_*,  BODY_UNTIL_CLOSE |
 *        |        |      CHUNK_LINE_LF                 |            |
 *        |        |        | size > 0      | size 0    | finish()   |
 *        |        |        v               v           |            |
 *        |        |    CHUNK_DATA      TRAILER_*       |            |
 *        |        |        |               |           |            |
 *        |        +--- CHUNK_DATA_CR/LF    |           |            |
 *        v                                 v           v            v
 *        +-------------------------------> DONE <------+------------+
 *
 *   Any state --(bad input, limit, allocation failure)--> ERROR, sticky.
 *   DONE and ERROR are left only through http_parser_reset(). The body states
 *   are driven by feed_body(), chunk lines by chunk_line_byte(), trailers by
 *   trailer_byte().
 *
 * Invariants:
 *  - The head buffer holds exactly the head bytes consumed so far (leading
 *    empty lines included), head_len <= limits.max_header_bytes, and it is
 *    never appended to once the head is complete, so the pointers handed out in
 *    http_message stay valid until reset. While the head is being collected the
 *    buffer may move when it grows; head_reserve() then rebases the field
 *    pointers already stored (start-line parts are kept as offsets instead).
 *  - Lines are parsed only when complete (their LF has arrived); the bytes of
 *    a partial line are kept at [line_start, head_len). Limits are checked as
 *    bytes arrive, not when the line or the head ends.
 *  - The outcome (message, body, error status and text) does not depend on
 *    how the input is split into feeds; the unit tests and the fuzz target
 *    compare one-shot, byte-by-byte and random splits. That is why, for
 *    instance, a field line past max_headers is refused on its first byte,
 *    before the byte limit is looked at.
 *  - Trailer fields and chunk lines are validated byte by byte and not stored;
 *    trailer bytes and fields count against max_header_bytes and max_headers
 *    together with the head's.
 *  - A feed never consumes a byte past the end of the current message.
 *  - The first limit passed decides the error: the request-target limit (414)
 *    is checked byte by byte as the request line arrives (target_phase and
 *    target_len remember where the previous feed stopped), before the head
 *    byte limit (431) is looked at for the same bytes, so a request line that
 *    passes both is 414 exactly when its target passes first.
 *
 * Choices where RFC 9112 leaves room: up to LEADING_EMPTY_LINES_MAX empty
 * lines before a request line are skipped (none before a status line); the
 * only leniency is a status line without the SP before an empty reason; a
 * well-formed version other than 1.0/1.1 is 505, even HTTP/1.2; a chunk-size
 * line (extensions included) may be CHUNK_LINE_MAX bytes; Expect:
 * 100-continue is ignored in HTTP/1.0 (RFC 9110 section 10.1.1); a response
 * framed by Transfer-Encoding reports content_length -1 and, if it also had
 * Content-Length or is HTTP/1.0, keep_alive false (RFC 9112 section 6.3).
 */
#include "http/parser.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

#define HTTP_PARSER_MAGIC 0x48545050u     /* "HTTP" */
#define HEAD_INITIAL_BYTES 1024           /* head buffer size for a typical request */
#define FIELDS_INITIAL 16                 /* field slots for a typical request */
#define BODY_KEEP_BYTES 1024              /* body buffers larger than this are freed on reset */
#define METHOD_MAX 32                     /* longest method token accepted */
#define LEADING_EMPTY_LINES_MAX 4         /* CRLFs ignored before a request line */
#define CHUNK_LINE_MAX 4096               /* chunk-size line with extensions, CRLF included */
#define CHUNK_SIZE_DIGITS_MAX 16          /* hex digits in a chunk size (64 bits) */

enum parse_state {
	STATE_HEAD,             /* collecting the start line and field lines */
	STATE_BODY_START,       /* HEAD returned; the next feed starts the body */
	STATE_BODY_LENGTH,      /* Content-Length body, `remaining` bytes to go */
	STATE_BODY_UNTIL_CLOSE, /* response body delimited by the connection close */
	STATE_CHUNK_SIZE,       /* hex digits of a chunk size */
	STATE_CHUNK_EXT_BWS,    /* whitespace after the size or a value; ';' must follow */
	STATE_CHUNK_EXT_BEFORE_NAME,
	STATE_CHUNK_EXT_NAME,
	STATE_CHUNK_EXT_AFTER_NAME,   /* whitespace after a name: '=' or ';' must follow */
	STATE_CHUNK_EXT_BEFORE_VALUE, /* after '=' */
	STATE_CHUNK_EXT_TOKEN_VALUE,
	STATE_CHUNK_EXT_QUOTED_VALUE,
	STATE_CHUNK_EXT_QUOTED_PAIR,  /* after a backslash inside a quoted value */
	STATE_CHUNK_EXT_AFTER_QUOTE,  /* after the closing quote */
	STATE_CHUNK_LINE_LF,    /* CR of the chunk-size line seen */
	STATE_CHUNK_DATA,       /* chunk data, `remaining` bytes to go */
	STATE_CHUNK_DATA_CR,    /* CRLF after chunk data */
	STATE_CHUNK_DATA_LF,
	STATE_TRAILER_LINE_START,
	STATE_TRAILER_NAME,
	STATE_TRAILER_VALUE,
	STATE_TRAILER_LINE_LF,  /* CR of a trailer field line seen */
	STATE_TRAILER_END_LF,   /* CR of the final empty line seen */
	STATE_DONE,
	STATE_ERROR,
};

/* Where a request line being collected is, for the request-target limit. */
enum target_phase {
	TARGET_BEFORE, /* in the method (no SP yet) */
	TARGET_IN,     /* after the first SP: request-target bytes */
	TARGET_AFTER,  /* after the second SP, or no limit to check */
};

/* How the body of the current message is delimited (RFC 9112 section 6.3). */
enum body_framing {
	FRAMING_NONE,        /* no body: bodyless response, or request without CL/TE */
	FRAMING_LENGTH,      /* Content-Length */
	FRAMING_CHUNKED,     /* Transfer-Encoding with chunked last */
	FRAMING_UNTIL_CLOSE, /* response read until the connection closes */
};

struct http_parser {
	unsigned magic;
	http_kind kind;
	http_limits limits;
	enum parse_state state;

	/* Head: a private copy of the head bytes, grown by doubling. */
	char *head;
	size_t head_len;
	size_t head_cap;
	size_t line_start;        /* offset of the line being collected */
	unsigned empty_lines;     /* empty lines skipped before a request line */
	bool start_line_done;
	bool head_complete;       /* the message below is valid */
	size_t method_offset;     /* start-line parts, as offsets into head */
	size_t target_offset;
	size_t reason_offset;
	enum target_phase target_phase; /* where the request line being collected is */
	size_t target_len;        /* request-target bytes seen so far */

	http_field *fields;       /* pointers into head */
	size_t field_count;
	size_t fields_cap;

	http_message message;
	enum body_framing framing;
	bool transfer_encoding;   /* a Transfer-Encoding field was present */
	bool keep_alive_allowed;  /* what version, Connection and framing faults allow */
	bool no_body;             /* http_parser_set_no_body() was called */

	/* Body. */
	buf body;                 /* decoded body; body.max is the current body limit */
	http_body_sink sink;      /* when set, decoded bytes go here instead of body */
	void *sink_arg;
	uint64_t sunk;            /* bytes given to the sink, counted against body.max */
	uint64_t remaining;       /* Content-Length or chunk-data bytes still to come */
	unsigned chunk_digits;
	size_t chunk_line_bytes;
	size_t trailer_bytes;
	size_t trailer_fields;

	/* Error, sticky until reset. */
	int error;
	int error_status;
	const char *error_text;
};

/* Byte classes (RFC 9110 section 5.6). The table is checked against the
 * grammar by test_char_classes in tests/unit/test_parser.c. */
enum {
	CHAR_TOKEN = 0x01,  /* tchar */
	CHAR_FIELD = 0x02,  /* field-value byte: HT, SP, VCHAR, obs-text */
	CHAR_TARGET = 0x04, /* request-target byte: VCHAR (printable ASCII) */
	CHAR_QDTEXT = 0x08, /* qdtext: HT, SP, VCHAR except '"' and '\\', obs-text */
	CHAR_HEX = 0x10,    /* HEXDIG */
};

static const unsigned char char_class[256] = {
	/* 00 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 10 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 20 */ 0x0a, 0x0f, 0x06, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0e, 0x0f, 0x0f, 0x0e, 0x0f, 0x0f, 0x0e,
	/* 30 */ 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0e, 0x0e, 0x0e, 0x0e, 0x0e, 0x0e,
	/* 40 */ 0x0e, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
	/* 50 */ 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x06, 0x0e, 0x0f, 0x0f,
	/* 60 */ 0x0f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
	/* 70 */ 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0f, 0x0e, 0x0f, 0x00,
	/* 80 */ 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
	/* 90 */ 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
	/* a0 */ 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
	/* b0 */ 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
	/* c0 */ 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
	/* d0 */ 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
	/* e0 */ 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
	/* f0 */ 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a, 0x0a,
};

static inline bool is_class(char c, unsigned char class_bits)
{
	return (char_class[(unsigned char)c] & class_bits) != 0;
}

static inline bool is_whitespace(char c)
{
	return c == ' ' || c == '\t';
}

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline unsigned hex_value(unsigned char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

static inline char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* s[0..len) equals the lowercase literal `lower` ignoring ASCII case. */
static bool equals_lowercase(const char *s, size_t len, const char *lower, size_t lower_len)
{
	if (len != lower_len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (ascii_lower(s[i]) != lower[i])
			return false;
	return true;
}

#define EQUALS_LOWERCASE(s, len, literal) equals_lowercase((s), (len), literal, sizeof(literal) - 1)

/* Record a sticky error and return err. */
static int fail(http_parser *p, int err, int status, const char *text)
{
	p->state = STATE_ERROR;
	p->error = err;
	p->error_status = status;
	p->error_text = text;
	return err;
}

static int fail_parse(http_parser *p, const char *text)
{
	return fail(p, ERR_PARSE, 400, text);
}

/*
 * Next element of a comma-separated list (RFC 9110 section 5.6.1) in
 * s[*pos..len), with surrounding whitespace removed; empty elements are
 * returned with length 0. False when the list is exhausted.
 */
static bool list_next(const char *s, size_t len, size_t *pos, const char **element, size_t *element_len)
{
	size_t i = *pos;
	if (i > len)
		return false;
	while (i < len && is_whitespace(s[i]))
		i++;
	size_t start = i;
	while (i < len && s[i] != ',')
		i++;
	size_t end = i;
	while (end > start && is_whitespace(s[end - 1]))
		end--;
	*element = s + start;
	*element_len = end - start;
	*pos = i + 1; /* past the comma; len + 1 at the end of the list */
	return true;
}

/* ---------------------------------------------------------------- memory */

/*
 * Make room for `need` head bytes. The buffer starts at HEAD_INITIAL_BYTES and
 * doubles, never past limits.max_header_bytes (the caller checked need against
 * it). When the buffer moves, the stored field pointers are rebased. On
 * ERR_NOMEM the buffer and the fields are unaltered.
 */
static int head_reserve(http_parser *p, size_t need)
{
	if (need <= p->head_cap)
		return 0;
	size_t cap = p->head_cap ? p->head_cap : HEAD_INITIAL_BYTES;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > p->limits.max_header_bytes)
		cap = p->limits.max_header_bytes;
	assert(cap >= need);
	char *fresh = malloc(cap);
	if (!fresh)
		return ERR_NOMEM;
	if (p->head_len)
		memcpy(fresh, p->head, p->head_len);
	for (size_t i = 0; i < p->field_count; i++) {
		http_field *f = &p->fields[i];
		f->name = fresh + (f->name - p->head);
		f->value = fresh + (f->value - p->head);
	}
	free(p->head);
	p->head = fresh;
	p->head_cap = cap;
	return 0;
}

/* A free field slot, growing the array by doubling up to limits.max_headers
 * (the caller checked the count). NULL on allocation failure, array unaltered. */
static http_field *field_slot(http_parser *p)
{
	assert(p->field_count < p->limits.max_headers);
	if (p->field_count == p->fields_cap) {
		size_t cap = p->fields_cap ? p->fields_cap * 2 : FIELDS_INITIAL;
		if (cap > p->limits.max_headers)
			cap = p->limits.max_headers;
		http_field *fresh = realloc(p->fields, cap * sizeof *fresh);
		if (!fresh)
			return NULL;
		p->fields = fresh;
		p->fields_cap = cap;
	}
	return &p->fields[p->field_count++];
}

/* Body bytes that may still be added under the current body limit (which the
 * caller may have lowered below what is already stored). */
static size_t body_room(const http_parser *p)
{
	uint64_t held = p->sink ? p->sunk : p->body.len;
	return held < p->body.max ? (size_t)(p->body.max - held) : 0;
}

/* Append decoded body bytes. 413 when the body limit would be passed, 500 on
 * allocation failure; the body is unaltered on failure. */
static int body_append(http_parser *p, const char *data, size_t len)
{
	if (p->sink) { /* streaming: no buffering; the limit counts what went by */
		if (len > body_room(p))
			return fail(p, ERR_LIMIT, 413, "content too large");
		p->sunk += len;
		if (len)
			p->sink(p->sink_arg, data, len);
		return 0;
	}
	if (len > body_room(p))
		return fail(p, ERR_LIMIT, 413, "content too large");
	if (len == 0)
		return 0;
	int rc = buf_add(&p->body, data, len);
	if (rc == ERR_NOMEM)
		return fail(p, ERR_NOMEM, 500, "out of memory");
	if (rc < 0) /* defensive: body_room() already said it fits */
		return fail(p, ERR_LIMIT, 413, "content too large");
	return 0;
}

/* ------------------------------------------------------------ start line */

/*
 * "HTTP/" DIGIT "." DIGIT, exactly. Sets *minor. A malformed version is 400;
 * a well-formed version other than 1.0 and 1.1 is ERR_UNSUPPORTED (505).
 */
static int parse_version(http_parser *p, const char *s, size_t len, int *minor)
{
	if (len != 8 || memcmp(s, "HTTP/", 5) != 0 || !is_digit(s[5]) || s[6] != '.' || !is_digit(s[7]))
		return fail_parse(p, "invalid HTTP version");
	if (s[5] != '1' || s[7] > '1')
		return fail(p, ERR_UNSUPPORTED, 505, "unsupported HTTP version");
	*minor = s[7] - '0';
	return 0;
}

/* authority-form (RFC 9112 section 3.2.3): uri-host ":" port, no userinfo. */
static bool is_authority_form(const char *s, size_t len)
{
	const char *colon = NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '/' || s[i] == '?' || s[i] == '#' || s[i] == '@')
			return false;
		if (s[i] == ':')
			colon = s + i;
	}
	if (!colon || colon == s || colon == s + len - 1)
		return false;
	for (const char *c = colon + 1; c < s + len; c++)
		if (!is_digit(*c))
			return false;
	if (s[0] == '[' && colon[-1] != ']')
		return false;
	return true;
}

/*
 * Check the request-target form against the method (RFC 9112 section 3.2):
 * origin-form for everything but CONNECT, absolute-form (http/https) for
 * everything but CONNECT, authority-form only for CONNECT, "*" only for OPTIONS.
 */
static bool target_fits_method(const char *method, size_t method_len, const char *target, size_t target_len)
{
	bool connect = method_len == 7 && memcmp(method, "CONNECT", 7) == 0;
	if (connect)
		return is_authority_form(target, target_len);
	if (target[0] == '/')
		return true;
	if (target_len == 1 && target[0] == '*')
		return method_len == 7 && memcmp(method, "OPTIONS", 7) == 0;
	size_t scheme = 0;
	if (target_len > 7 && EQUALS_LOWERCASE(target, 7, "http://"))
		scheme = 7;
	else if (target_len > 8 && EQUALS_LOWERCASE(target, 8, "https://"))
		scheme = 8;
	return scheme && target[scheme] != '/';
}

/*
 * request-line = method SP request-target SP HTTP-version, in place in the
 * head buffer (line[0..len), CRLF excluded). On success method and target are
 * NUL-terminated there. On failure the line is unaltered and the error is set.
 */
static int parse_request_line(http_parser *p, char *line, size_t len)
{
	size_t i = 0;
	while (i < len && i <= METHOD_MAX && is_class(line[i], CHAR_TOKEN))
		i++;
	if (i > METHOD_MAX)
		return fail_parse(p, "method too long");
	if (i == 0 || i == len || line[i] != ' ')
		return fail_parse(p, "invalid method");
	size_t method_end = i;

	size_t target_start = ++i;
	while (i < len && is_class(line[i], CHAR_TARGET))
		i++;
	if (i == target_start || i == len || line[i] != ' ')
		return fail_parse(p, "invalid request target");
	size_t target_end = i;
	if (!target_fits_method(line, method_end, line + target_start, target_end - target_start))
		return fail_parse(p, "invalid request target");

	int minor = 0;
	int rc = parse_version(p, line + target_end + 1, len - target_end - 1, &minor);
	if (rc < 0)
		return rc;

	line[method_end] = '\0';
	line[target_end] = '\0';
	p->method_offset = (size_t)(line - p->head);
	p->target_offset = p->method_offset + target_start;
	p->message.version_minor = minor;
	return 0;
}

/*
 * status-line = HTTP-version SP 3DIGIT SP [reason-phrase], in place; the one
 * leniency of this parser: "HTTP/1.1 200" without the SP before an empty
 * reason is accepted. On success the reason is NUL-terminated (over the CR).
 */
static int parse_status_line(http_parser *p, char *line, size_t len)
{
	const char *space = memchr(line, ' ', len);
	size_t version_len = space ? (size_t)(space - line) : len;
	int minor = 0;
	int rc = parse_version(p, line, version_len, &minor);
	if (rc < 0)
		return rc;
	if (len < 12 || line[9] < '1' || line[9] > '9' || !is_digit(line[10]) || !is_digit(line[11]) ||
	    (len > 12 && line[12] != ' '))
		return fail_parse(p, "invalid status code");
	size_t reason_start = len > 12 ? 13 : 12;
	for (size_t i = reason_start; i < len; i++)
		if (!is_class(line[i], CHAR_FIELD))
			return fail_parse(p, "invalid reason phrase");

	line[len] = '\0';
	p->message.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	p->message.version_minor = minor;
	p->reason_offset = (size_t)(line - p->head) + reason_start;
	return 0;
}

/* ------------------------------------------------------------ field lines */

/*
 * field-line = field-name ":" OWS field-value OWS (line[0..len), CRLF
 * excluded). Stores the field with the value trimmed. 431 when the field count
 * passes limits.max_headers (feed_head() usually saw that on the first byte;
 * a line starting with a bare CR gets here); on any failure no field is added.
 */
static int parse_field_line(http_parser *p, const char *line, size_t len)
{
	if (p->field_count >= p->limits.max_headers)
		return fail(p, ERR_LIMIT, 431, "too many header fields");
	if (is_whitespace(line[0]))
		return fail_parse(p, "obsolete line folding");
	size_t i = 0;
	while (i < len && is_class(line[i], CHAR_TOKEN))
		i++;
	if (i == len || i == 0)
		return fail_parse(p, "invalid field name");
	if (line[i] != ':')
		return fail_parse(p, is_whitespace(line[i]) ? "whitespace before colon" : "invalid field name");
	size_t name_len = i++;
	while (i < len && is_whitespace(line[i]))
		i++;
	size_t value_start = i;
	while (i < len && is_class(line[i], CHAR_FIELD))
		i++;
	if (i != len)
		return fail_parse(p, "invalid field value");
	while (i > value_start && is_whitespace(line[i - 1]))
		i--;

	http_field *f = field_slot(p);
	if (!f)
		return fail(p, ERR_NOMEM, 500, "out of memory");
	f->name = line;
	f->name_len = name_len;
	f->value = line + value_start;
	f->value_len = i - value_start;
	return 0;
}

/* ------------------------------------------------------- head semantics */

/* Content-Length: 1*DIGIT, or a list of identical values (RFC 9110 section
 * 8.6). *length is -1 until the first value. 400 on a bad, overflowing or
 * conflicting value. */
static int parse_content_length(http_parser *p, const http_field *f, int64_t *length)
{
	size_t pos = 0;
	const char *element;
	size_t element_len;
	while (list_next(f->value, f->value_len, &pos, &element, &element_len)) {
		if (element_len == 0)
			return fail_parse(p, "invalid content-length");
		int64_t value = 0;
		for (size_t i = 0; i < element_len; i++) {
			if (!is_digit(element[i]))
				return fail_parse(p, "invalid content-length");
			int digit = element[i] - '0';
			if (value > (INT64_MAX - digit) / 10)
				return fail_parse(p, "invalid content-length");
			value = value * 10 + digit;
		}
		if (*length >= 0 && *length != value)
			return fail_parse(p, "conflicting content-length");
		*length = value;
	}
	return 0;
}

/* What the Transfer-Encoding fields of a message say, all fields together. */
typedef struct transfer_codings {
	size_t count;          /* codings listed */
	size_t chunked_count;  /* of which "chunked" */
	bool last_is_chunked;
	bool other;            /* a coding other than chunked */
} transfer_codings;

/* Add one Transfer-Encoding field: a list of transfer-coding = token
 * [OWS ";" parameters]. 400 on a malformed list or "chunked" with parameters. */
static int parse_transfer_encoding(http_parser *p, const http_field *f, transfer_codings *codings)
{
	size_t pos = 0;
	const char *element;
	size_t element_len;
	while (list_next(f->value, f->value_len, &pos, &element, &element_len)) {
		if (element_len == 0)
			continue; /* empty list elements are ignored (RFC 9110 section 5.6.1) */
		size_t name_len = 0;
		while (name_len < element_len && is_class(element[name_len], CHAR_TOKEN))
			name_len++;
		size_t rest = name_len;
		while (rest < element_len && is_whitespace(element[rest]))
			rest++;
		if (name_len == 0 || (rest < element_len && element[rest] != ';'))
			return fail_parse(p, "invalid transfer-encoding");
		bool chunked = EQUALS_LOWERCASE(element, name_len, "chunked");
		if (chunked && rest < element_len)
			return fail_parse(p, "invalid transfer-encoding");
		codings->count++;
		codings->last_is_chunked = chunked;
		if (chunked)
			codings->chunked_count++;
		else
			codings->other = true;
	}
	return 0;
}

/* Set p->framing and the message's until_close and keep_alive from what the
 * fields said, the status and the no-body flag. Cannot fail. */
static void choose_framing(http_parser *p)
{
	http_message *m = &p->message;
	bool bodyless = p->no_body || (m->kind == HTTP_RESPONSE &&
	                               (m->status < 200 || m->status == 204 || m->status == 304));
	if (bodyless)
		p->framing = FRAMING_NONE;
	else if (m->chunked)
		p->framing = FRAMING_CHUNKED;
	else if (p->transfer_encoding)
		p->framing = FRAMING_UNTIL_CLOSE; /* response whose final coding is not chunked */
	else if (m->content_length >= 0)
		p->framing = FRAMING_LENGTH;
	else if (m->kind == HTTP_REQUEST)
		p->framing = FRAMING_NONE;
	else
		p->framing = FRAMING_UNTIL_CLOSE;
	m->until_close = p->framing == FRAMING_UNTIL_CLOSE;
	m->keep_alive = p->keep_alive_allowed && !m->until_close;
}

/*
 * The empty line ended the head: derive content_length, chunked, keep_alive,
 * expect_continue and the framing from the fields, and enforce the
 * cross-field rules (Host, TE with CL, TE in HTTP/1.0). On failure the error is
 * set and the message stays unpublished.
 */
static int finish_head(http_parser *p)
{
	http_message *m = &p->message;
	bool request = p->kind == HTTP_REQUEST;
	size_t hosts = 0;
	bool connection_close = false, connection_keep_alive = false, expect_continue = false;
	transfer_codings codings = {0};
	int64_t content_length = -1;
	int rc;

	for (size_t i = 0; i < p->field_count; i++) {
		const http_field *f = &p->fields[i];
		switch (f->name_len) {
		case 4:
			if (EQUALS_LOWERCASE(f->name, 4, "host"))
				hosts++;
			break;
		case 6:
			if (EQUALS_LOWERCASE(f->name, 6, "expect") &&
			    EQUALS_LOWERCASE(f->value, f->value_len, "100-continue"))
				expect_continue = true;
			break;
		case 10:
			if (EQUALS_LOWERCASE(f->name, 10, "connection")) {
				size_t pos = 0;
				const char *token;
				size_t token_len;
				while (list_next(f->value, f->value_len, &pos, &token, &token_len)) {
					if (EQUALS_LOWERCASE(token, token_len, "close"))
						connection_close = true;
					else if (EQUALS_LOWERCASE(token, token_len, "keep-alive"))
						connection_keep_alive = true;
				}
			}
			break;
		case 14:
			if (EQUALS_LOWERCASE(f->name, 14, "content-length") &&
			    (rc = parse_content_length(p, f, &content_length)) < 0)
				return rc;
			break;
		case 17:
			if (EQUALS_LOWERCASE(f->name, 17, "transfer-encoding")) {
				p->transfer_encoding = true;
				if ((rc = parse_transfer_encoding(p, f, &codings)) < 0)
					return rc;
			}
			break;
		default:
			break;
		}
	}

	bool http10 = m->version_minor == 0;
	if (p->transfer_encoding) {
		if (codings.count == 0 || codings.chunked_count > 1)
			return fail_parse(p, "invalid transfer-encoding");
		if (request) {
			/* RFC 9112 sections 6.1 and 6.3: these are smuggling vectors. */
			if (http10)
				return fail_parse(p, "transfer-encoding in HTTP/1.0");
			if (content_length >= 0)
				return fail_parse(p, "transfer-encoding with content-length");
			if (!codings.last_is_chunked)
				return fail_parse(p, "chunked not last");
			if (codings.other)
				return fail(p, ERR_UNSUPPORTED, 501, "unsupported transfer coding");
		}
		m->chunked = codings.last_is_chunked;
	}
	if (request) {
		if (hosts > 1)
			return fail_parse(p, "multiple host fields");
		if (hosts == 0 && !http10)
			return fail_parse(p, "missing host");
	}

	/* A response with both TE and CL, or with TE in HTTP/1.0, is framed by TE
	 * but suspect: the connection is not reused (RFC 9112 section 6.3). Its
	 * Content-Length is reported as absent since it is not what frames it. */
	bool suspect_framing = p->transfer_encoding && (content_length >= 0 || http10);
	m->content_length = p->transfer_encoding ? -1 : content_length;
	m->expect_continue = request && !http10 && expect_continue;
	p->keep_alive_allowed = !connection_close && !suspect_framing && (!http10 || connection_keep_alive);

	if (request) {
		m->method = p->head + p->method_offset;
		m->target = p->head + p->target_offset;
	} else {
		m->reason = p->head + p->reason_offset;
	}
	m->fields = p->fields;
	m->field_count = p->field_count;
	choose_framing(p);
	p->head_complete = true;
	return HTTP_PARSE_HEAD;
}

/*
 * Parse the complete line at [line_start, head_len) (its LF included).
 * Returns 0 (more lines to come), HTTP_PARSE_HEAD (that was the empty line
 * ending the head) or an error, which is then set.
 */
static int parse_head_line(http_parser *p)
{
	char *line = p->head + p->line_start;
	size_t len = p->head_len - p->line_start;
	if (len < 2 || line[len - 2] != '\r')
		return fail_parse(p, "bare LF");
	len -= 2;
	if (len == 0) {
		if (p->start_line_done)
			return finish_head(p);
		if (p->kind == HTTP_REQUEST && p->empty_lines < LEADING_EMPTY_LINES_MAX) {
			p->empty_lines++; /* RFC 9112 section 2.2 */
			return 0;
		}
		return fail_parse(p, p->kind == HTTP_REQUEST ? "too many empty lines" : "invalid status line");
	}
	int rc;
	if (p->start_line_done) {
		rc = parse_field_line(p, line, len);
	} else {
		rc = p->kind == HTTP_REQUEST ? parse_request_line(p, line, len) : parse_status_line(p, line, len);
		p->start_line_done = rc == 0;
	}
	/* Every byte class used above excludes CR, so a CR inside the line always
	 * fails; name the real cause. Found on the error path only. */
	if (rc == ERR_PARSE && memchr(line, '\r', len))
		p->error_text = "bare CR";
	return rc;
}

/*
 * The request-target limit, as the bytes of a request line arrive: follows
 * data[0..len) (part of one line) through the method and the target. Returns
 * how many of those bytes may be taken before the target passes
 * max_target_bytes (len when all may). Cannot fail.
 */
static size_t target_scan(http_parser *p, const char *data, size_t len)
{
	size_t i = 0;
	while (i < len && p->target_phase != TARGET_AFTER) {
		const char *space = memchr(data + i, ' ', len - i);
		size_t run = space ? (size_t)(space - (data + i)) : len - i;
		if (p->target_phase == TARGET_IN) {
			if (p->target_len + run > p->limits.max_target_bytes)
				return i + (p->limits.max_target_bytes - p->target_len);
			p->target_len += run;
		}
		i += run;
		if (space) {
			p->target_phase = p->target_phase == TARGET_BEFORE ? TARGET_IN : TARGET_AFTER;
			i++;
		}
	}
	return len;
}

/*
 * Copy head bytes line by line and parse each completed line. Stops right
 * after the empty line ending the head (HTTP_PARSE_HEAD) so body bytes are not
 * consumed. 431 as soon as the bytes of the head pass max_header_bytes or a
 * field line beyond max_headers starts.
 */
static int feed_head(http_parser *p, const char *data, size_t len, size_t *consumed)
{
	size_t i = 0;
	int rc = HTTP_PARSE_MORE;
	while (i < len) {
		/* A field line past the field limit fails on its first byte, before
		 * the byte limit is looked at, so the error does not depend on how
		 * the input was split. */
		char first = p->head_len > p->line_start ? p->head[p->line_start] : data[i];
		if (p->start_line_done && p->field_count >= p->limits.max_headers && first != '\r') {
			rc = fail(p, ERR_LIMIT, 431, "too many header fields");
			break;
		}
		size_t budget = p->limits.max_header_bytes - p->head_len;
		size_t available = len - i;
		size_t scan = available < budget ? available : budget;
		const char *newline = scan ? memchr(data + i, '\n', scan) : NULL;
		if (!p->start_line_done && p->target_phase != TARGET_AFTER) {
			/* bytes of the request line, up to where the 431 check stops */
			size_t span = newline ? (size_t)(newline - (data + i)) + 1 : scan;
			if (target_scan(p, data + i, span) < span) {
				rc = fail(p, ERR_LIMIT, 414, "request target too long");
				break;
			}
		}
		if (!newline && available > budget) {
			rc = fail(p, ERR_LIMIT, 431, "header section too large");
			break;
		}
		size_t take = newline ? (size_t)(newline - (data + i)) + 1 : available;
		if (head_reserve(p, p->head_len + take) < 0) {
			rc = fail(p, ERR_NOMEM, 500, "out of memory");
			break;
		}
		memcpy(p->head + p->head_len, data + i, take);
		p->head_len += take;
		i += take;
		if (!newline)
			break;
		rc = parse_head_line(p);
		p->line_start = p->head_len;
		p->target_phase = p->kind == HTTP_REQUEST && p->limits.max_target_bytes ? TARGET_BEFORE
											 : TARGET_AFTER;
		p->target_len = 0;
		if (rc != 0)
			break;
	}
	*consumed = i;
	if (rc == HTTP_PARSE_HEAD)
		p->state = STATE_BODY_START;
	return rc;
}

/* ------------------------------------------------------------------ body */

/* First feed after HEAD: check a known Content-Length against the body limit
 * (which the caller may have changed) and enter the framing's state. 413 when
 * the announced length is too large. */
static int start_body(http_parser *p)
{
	switch (p->framing) {
	case FRAMING_NONE:
		p->state = STATE_DONE;
		return 0;
	case FRAMING_LENGTH:
		if ((uint64_t)p->message.content_length > p->body.max)
			return fail(p, ERR_LIMIT, 413, "content too large");
		p->remaining = (uint64_t)p->message.content_length;
		p->state = p->remaining ? STATE_BODY_LENGTH : STATE_DONE;
		return 0;
	case FRAMING_CHUNKED:
		p->remaining = 0;
		p->chunk_digits = 0;
		p->chunk_line_bytes = 0;
		p->state = STATE_CHUNK_SIZE;
		return 0;
	case FRAMING_UNTIL_CLOSE:
		p->state = STATE_BODY_UNTIL_CLOSE;
		return 0;
	}
	abort(); /* cannot happen: all framings handled above */
}

/*
 * One byte of a chunk-size line: chunk-size [chunk-ext] CRLF with
 * chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 * (RFC 9112 section 7.1.1). 413 as soon as the size would pass the body limit;
 * 400 on bad syntax or a line over CHUNK_LINE_MAX bytes.
 */
static int chunk_line_byte(http_parser *p, char c)
{
	if (++p->chunk_line_bytes > CHUNK_LINE_MAX)
		return fail(p, ERR_LIMIT, 400, "chunk line too long");
	if (c == '\n' && p->state != STATE_CHUNK_LINE_LF)
		return fail_parse(p, "bare LF");
	enum parse_state next;
	switch (p->state) {
	case STATE_CHUNK_SIZE:
		if (is_class(c, CHAR_HEX)) {
			if (++p->chunk_digits > CHUNK_SIZE_DIGITS_MAX)
				return fail_parse(p, "invalid chunk size");
			p->remaining = p->remaining << 4 | hex_value((unsigned char)c);
			if (p->remaining > body_room(p))
				return fail(p, ERR_LIMIT, 413, "content too large");
			return 0;
		}
		if (p->chunk_digits == 0)
			return fail_parse(p, "invalid chunk size");
		if (c == '\r')
			next = STATE_CHUNK_LINE_LF;
		else if (c == ';')
			next = STATE_CHUNK_EXT_BEFORE_NAME;
		else if (is_whitespace(c))
			next = STATE_CHUNK_EXT_BWS;
		else
			return fail_parse(p, "invalid chunk size");
		break;
	case STATE_CHUNK_EXT_BWS:
		if (is_whitespace(c))
			return 0;
		if (c != ';')
			goto bad_extension;
		next = STATE_CHUNK_EXT_BEFORE_NAME;
		break;
	case STATE_CHUNK_EXT_BEFORE_NAME:
		if (is_whitespace(c))
			return 0;
		if (!is_class(c, CHAR_TOKEN))
			goto bad_extension;
		next = STATE_CHUNK_EXT_NAME;
		break;
	case STATE_CHUNK_EXT_NAME:
	case STATE_CHUNK_EXT_TOKEN_VALUE:
		if (is_class(c, CHAR_TOKEN))
			return 0;
		if (c == '\r')
			next = STATE_CHUNK_LINE_LF;
		else if (c == ';')
			next = STATE_CHUNK_EXT_BEFORE_NAME;
		else if (c == '=' && p->state == STATE_CHUNK_EXT_NAME)
			next = STATE_CHUNK_EXT_BEFORE_VALUE;
		else if (is_whitespace(c))
			next = p->state == STATE_CHUNK_EXT_NAME ? STATE_CHUNK_EXT_AFTER_NAME : STATE_CHUNK_EXT_BWS;
		else
			goto bad_extension;
		break;
	case STATE_CHUNK_EXT_AFTER_NAME:
		if (is_whitespace(c))
			return 0;
		if (c == '=')
			next = STATE_CHUNK_EXT_BEFORE_VALUE;
		else if (c == ';')
			next = STATE_CHUNK_EXT_BEFORE_NAME;
		else
			goto bad_extension;
		break;
	case STATE_CHUNK_EXT_BEFORE_VALUE:
		if (is_whitespace(c))
			return 0;
		if (c == '"')
			next = STATE_CHUNK_EXT_QUOTED_VALUE;
		else if (is_class(c, CHAR_TOKEN))
			next = STATE_CHUNK_EXT_TOKEN_VALUE;
		else
			goto bad_extension;
		break;
	case STATE_CHUNK_EXT_QUOTED_VALUE:
		if (is_class(c, CHAR_QDTEXT))
			return 0;
		if (c == '"')
			next = STATE_CHUNK_EXT_AFTER_QUOTE;
		else if (c == '\\')
			next = STATE_CHUNK_EXT_QUOTED_PAIR;
		else
			goto bad_extension;
		break;
	case STATE_CHUNK_EXT_QUOTED_PAIR:
		if (!is_class(c, CHAR_FIELD))
			goto bad_extension;
		next = STATE_CHUNK_EXT_QUOTED_VALUE;
		break;
	case STATE_CHUNK_EXT_AFTER_QUOTE:
		if (c == '\r')
			next = STATE_CHUNK_LINE_LF;
		else if (c == ';')
			next = STATE_CHUNK_EXT_BEFORE_NAME;
		else if (is_whitespace(c))
			next = STATE_CHUNK_EXT_BWS;
		else
			goto bad_extension;
		break;
	case STATE_CHUNK_LINE_LF:
		if (c != '\n')
			return fail_parse(p, "bare CR");
		if (p->remaining == 0) {
			next = STATE_TRAILER_LINE_START; /* last-chunk */
		} else {
			next = STATE_CHUNK_DATA;
		}
		break;
	default:
		abort(); /* cannot happen: called for chunk-line states only */
	}
	p->state = next;
	return 0;

bad_extension:
	return fail_parse(p, "invalid chunk extension");
}

/*
 * One byte of the trailer section: field lines validated like head fields,
 * then the final CRLF. Trailer fields are not stored. 431 when the head plus
 * trailers pass max_header_bytes or the fields pass max_headers.
 */
static int trailer_byte(http_parser *p, char c)
{
	if (++p->trailer_bytes > p->limits.max_header_bytes - p->head_len)
		return fail(p, ERR_LIMIT, 431, "header section too large");
	switch (p->state) {
	case STATE_TRAILER_LINE_START:
		if (c == '\r') {
			p->state = STATE_TRAILER_END_LF;
			return 0;
		}
		if (p->field_count + p->trailer_fields >= p->limits.max_headers)
			return fail(p, ERR_LIMIT, 431, "too many header fields");
		if (is_whitespace(c))
			return fail_parse(p, "obsolete line folding");
		if (c == '\n')
			return fail_parse(p, "bare LF");
		if (!is_class(c, CHAR_TOKEN))
			return fail_parse(p, "invalid field name");
		p->trailer_fields++;
		p->state = STATE_TRAILER_NAME;
		return 0;
	case STATE_TRAILER_NAME:
		if (is_class(c, CHAR_TOKEN))
			return 0;
		if (c == ':') {
			p->state = STATE_TRAILER_VALUE;
			return 0;
		}
		if (c == '\n')
			return fail_parse(p, "bare LF");
		return fail_parse(p, is_whitespace(c) ? "whitespace before colon" : "invalid field name");
	case STATE_TRAILER_VALUE:
		if (is_class(c, CHAR_FIELD))
			return 0;
		if (c == '\r') {
			p->state = STATE_TRAILER_LINE_LF;
			return 0;
		}
		return fail_parse(p, c == '\n' ? "bare LF" : "invalid field value");
	case STATE_TRAILER_LINE_LF:
	case STATE_TRAILER_END_LF:
		if (c != '\n')
			return fail_parse(p, "bare CR");
		p->state = p->state == STATE_TRAILER_LINE_LF ? STATE_TRAILER_LINE_START : STATE_DONE;
		return 0;
	default:
		abort(); /* cannot happen: called for trailer states only */
	}
}

/*
 * Decode body bytes until the message ends or the data runs out. Runs of data
 * are copied at once; chunk lines and trailers go byte by byte (they are
 * short). On failure the error is set and *consumed stops before the
 * offending byte.
 */
static int feed_body(http_parser *p, const char *data, size_t len, size_t *consumed)
{
	size_t i = 0;
	int rc = 0;
	while (p->state != STATE_DONE && i < len) {
		switch (p->state) {
		case STATE_BODY_LENGTH:
		case STATE_CHUNK_DATA: {
			size_t run = len - i;
			if (run > p->remaining)
				run = (size_t)p->remaining;
			if ((rc = body_append(p, data + i, run)) < 0)
				goto out;
			i += run;
			p->remaining -= run;
			if (p->remaining == 0)
				p->state = p->state == STATE_BODY_LENGTH ? STATE_DONE : STATE_CHUNK_DATA_CR;
			break;
		}
		case STATE_BODY_UNTIL_CLOSE:
			if ((rc = body_append(p, data + i, len - i)) < 0)
				goto out;
			i = len;
			break;
		case STATE_CHUNK_DATA_CR:
			if (data[i] != '\r') {
				rc = fail_parse(p, data[i] == '\n' ? "bare LF" : "missing CRLF after chunk data");
				goto out;
			}
			p->state = STATE_CHUNK_DATA_LF;
			i++;
			break;
		case STATE_CHUNK_DATA_LF:
			if (data[i] != '\n') {
				rc = fail_parse(p, "bare CR");
				goto out;
			}
			p->state = STATE_CHUNK_SIZE;
			p->remaining = 0;
			p->chunk_digits = 0;
			p->chunk_line_bytes = 0;
			i++;
			break;
		case STATE_TRAILER_LINE_START:
		case STATE_TRAILER_NAME:
		case STATE_TRAILER_VALUE:
		case STATE_TRAILER_LINE_LF:
		case STATE_TRAILER_END_LF:
			if ((rc = trailer_byte(p, data[i])) < 0)
				goto out;
			i++;
			break;
		default:
			/* The chunk-size line states; a tight loop since most lines are a
			 * few bytes and the state stays in this group. */
			do {
				if ((rc = chunk_line_byte(p, data[i])) < 0)
					goto out;
				i++;
			} while (i < len && p->state >= STATE_CHUNK_SIZE && p->state <= STATE_CHUNK_LINE_LF);
			break;
		}
	}
out:
	*consumed = i;
	if (rc < 0)
		return rc;
	return p->state == STATE_DONE ? HTTP_PARSE_DONE : HTTP_PARSE_MORE;
}

/* ------------------------------------------------------------ public API */

http_parser *http_parser_new(http_kind kind, const http_limits *limits)
{
	http_parser *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->magic = HTTP_PARSER_MAGIC;
	p->kind = kind;
	p->limits = *limits;
	buf_init(&p->body, limits->max_body_bytes);
	http_parser_reset(p);
	return p;
}

void http_parser_free(http_parser **parser)
{
	http_parser *p = *parser;
	if (!p)
		return;
	assert(p->magic == HTTP_PARSER_MAGIC);
	free(p->head);
	free(p->fields);
	buf_free(&p->body);
	p->magic = 0;
	free(p);
	*parser = NULL;
}

/* Forget the message and any error. Buffers that grew past their usual size
 * are released so an idle connection costs little; cannot fail. */
void http_parser_reset(http_parser *p)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	if (p->head_cap > HEAD_INITIAL_BYTES) {
		free(p->head);
		p->head = NULL;
		p->head_cap = 0;
	}
	if (p->fields_cap > FIELDS_INITIAL) {
		free(p->fields);
		p->fields = NULL;
		p->fields_cap = 0;
	}
	if (p->body.cap > BODY_KEEP_BYTES)
		buf_free(&p->body);
	else
		buf_reset(&p->body);
	p->body.max = p->limits.max_body_bytes;
	p->sink = NULL;
	p->sink_arg = NULL;
	p->sunk = 0;

	p->state = STATE_HEAD;
	p->head_len = 0;
	p->line_start = 0;
	p->empty_lines = 0;
	p->start_line_done = false;
	p->head_complete = false;
	p->method_offset = p->target_offset = p->reason_offset = 0;
	p->target_phase = p->kind == HTTP_REQUEST && p->limits.max_target_bytes ? TARGET_BEFORE : TARGET_AFTER;
	p->target_len = 0;
	p->field_count = 0;
	memset(&p->message, 0, sizeof p->message);
	p->message.kind = p->kind;
	p->message.content_length = -1;
	p->framing = FRAMING_NONE;
	p->transfer_encoding = false;
	p->keep_alive_allowed = false;
	p->no_body = false;
	p->remaining = 0;
	p->chunk_digits = 0;
	p->chunk_line_bytes = 0;
	p->trailer_bytes = 0;
	p->trailer_fields = 0;
	p->error = 0;
	p->error_status = 0;
	p->error_text = NULL;
}

int http_parser_feed(http_parser *p, const char *data, size_t len, size_t *consumed)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	assert(data || len == 0);
	*consumed = 0;
	switch (p->state) {
	case STATE_ERROR:
		return p->error;
	case STATE_DONE:
		return HTTP_PARSE_DONE;
	case STATE_HEAD:
		return feed_head(p, data, len, consumed);
	case STATE_BODY_START: {
		int rc = start_body(p);
		if (rc < 0)
			return rc;
		break;
	}
	default:
		break;
	}
	return feed_body(p, data, len, consumed);
}

/* End of input. Only complete empty lines before a request line count as a
 * clean close; any other cut-short message becomes a sticky ERR_PARSE. */
int http_parser_finish(http_parser *p)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	if (p->state == STATE_BODY_START) {
		int rc = start_body(p);
		if (rc < 0)
			return rc;
	}
	switch (p->state) {
	case STATE_ERROR:
		return p->error;
	case STATE_DONE:
		return HTTP_PARSE_DONE;
	case STATE_BODY_UNTIL_CLOSE:
		p->state = STATE_DONE;
		return HTTP_PARSE_DONE;
	case STATE_HEAD:
		if (!p->start_line_done && p->line_start == p->head_len)
			return HTTP_PARSE_MORE;
		return fail_parse(p, "incomplete message");
	default:
		return fail_parse(p, "incomplete message");
	}
}

const http_message *http_parser_message(const http_parser *p)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	return p->head_complete ? &p->message : NULL;
}

const char *http_parser_body(const http_parser *p, size_t *len)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	if (len)
		*len = p->body.len;
	return p->body.data ? p->body.data : "";
}

char *http_parser_take_body(http_parser *p, size_t *len)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	size_t max = p->body.max;
	char *data = buf_take(&p->body, len);
	buf_init(&p->body, max);
	return data;
}

bool http_parser_started(const http_parser *p)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	return p->head_len > 0 || p->head_complete;
}

void http_parser_set_body_limit(http_parser *p, size_t max_body_bytes)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	p->body.max = max_body_bytes;
}

void http_parser_set_body_sink(http_parser *p, http_body_sink sink, void *arg)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	p->sink = sink;
	p->sink_arg = arg;
	p->body.max = SIZE_MAX / 2; /* the sink bounds what it keeps */
}

void http_parser_set_no_body(http_parser *p)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	p->no_body = true;
	if (p->head_complete && p->state == STATE_BODY_START)
		choose_framing(p);
}

int http_parser_error_status(const http_parser *p)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	return p->error_status;
}

const char *http_parser_error(const http_parser *p)
{
	assert(p->magic == HTTP_PARSER_MAGIC);
	return p->error_text ? p->error_text : "";
}

const char *http_message_field(const http_message *m, const char *name, size_t *len)
{
	size_t name_len = strlen(name);
	for (size_t i = 0; i < m->field_count; i++) {
		const http_field *f = &m->fields[i];
		if (f->name_len != name_len)
			continue;
		size_t j = 0;
		while (j < name_len && ascii_lower(f->name[j]) == ascii_lower(name[j]))
			j++;
		if (j == name_len) {
			if (len)
				*len = f->value_len;
			return f->value;
		}
	}
	if (len)
		*len = 0;
	return NULL;
}
