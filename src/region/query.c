/*
 * query.c - the record list query compiler: turns the filter, sort and cursor
 * parameters of a list request into SQL fragments over the records table (a
 * WHERE expression with '?' placeholders and its parameters, an ORDER BY
 * clause, the sort key expressions) and builds the cursor for the next page.
 * Client values only ever reach SQLite as bound parameters; the only client
 * text inlined into SQL is a field path, which the grammar restricts to
 * identifier characters and dots.
 *
 * Design
 *
 * Parsing. A hand-written recursive descent parser with one function per rule
 * of the grammar in query.h (expr -> and -> primary -> comparison) emits SQL
 * as it goes: "||" becomes OR and "&&" AND (SQL gives AND the higher
 * precedence too), a group is parenthesised again, and every comparison
 * becomes one parenthesised SQL expression that is always 0 or 1, never NULL,
 * so that "!=" can be exactly NOT of "=". A field path is one token (no spaces
 * around its dots); resolve_field() maps it to a column (id, created_at,
 * updated_at, version: bare names only) or a path into data ("data.x" or
 * plain "x"), and refuses the record's other top-level names (owner,
 * collection, a bare data) as unknown_field rather than silently reading a
 * data field of that name.
 * Error positions count characters (UTF-8 sequences), not bytes.
 *
 * Typing. SQLite orders values of different types by type class (NULL <
 * numbers < text), so a bare "json_extract(data, p) < ?" with '5' would match
 * every number, and "= 1" would match JSON true (json_extract gives 1). Each
 * comparison therefore first checks json_type(): a string only meets JSON
 * text, a number only JSON integer or real, true/false/null only themselves;
 * a missing field is "null" for "= null" and unequal to everything else.
 *
 * Keyset paging. The order is the terms t1..tn, each a SQL expression and a
 * direction; tn is always id, which is unique, so the order is total (sort
 * keys listed after id cannot change it and are dropped). A cursor carries
 * the values v1..vn of the last row of a page, and the next page is the rows
 * strictly after that row:
 *
 *     C1 = A1 OR (E1 AND C2),  C2 = A2 OR (E2 AND C3),  ...,  Cn = An
 *
 * (the usual "A1 OR (E1 AND A2) OR (E1 AND E2 AND A3) ..." with the common
 * factors taken out, so each value is bound at most twice), where Ai is "ti
 * is after vi" and Ei "ti equals vi" under SQLite's order, in which NULL is
 * the smallest value:
 *
 *                  vi IS NULL          vi NOT NULL
 *     Ai  ASC      ti IS NOT NULL      ti > ?
 *     Ai  DESC     0                   (ti < ? OR ti IS NULL)
 *     Ei           ti IS NULL          ti = ?
 *
 * Values are bound with the type SQLite returned for them, and SQLite's
 * comparison operators use the same type-class order as ORDER BY, so the
 * condition agrees with the order even when a key has values of mixed types
 * (JSON true/false sort as the integers 1/0, objects and arrays as their
 * JSON text). Text compares bytewise (BINARY collation).
 *
 * Cursor format: base64url without padding of the compact JSON array
 *     ["<fingerprint>", v1, ..., vn]        (vn is the id)
 * where the fingerprint is a 64-bit FNV-1a hash, in hex, of the scope (the
 * collection), the compiled filter (SQL and parameters) and the canonical
 * terms (so "+a" and "a" agree, "-a" and "a" do not, nor "x = 1" and "x = 2"):
 * a cursor given with another collection, filter or sort is refused. (The
 * cursor format's version in the hash changed with that, so a cursor made
 * before is refused too: a client starts its list again.) Values are null,
 * integers, reals or strings, plus two tagged forms for what JSON cannot
 * carry: {"inf":1} / {"inf":-1} for infinite reals (json_extract gives Inf
 * for 1e400) and {"b64":"..."} for text that is not valid UTF-8. The cursor
 * is not authenticated: a crafted one only moves the start of the page; the
 * filter and the caller's own conditions still apply.
 */
#include "region/query.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"

enum {
	QUERY_MAX_FILTER = 4096,     /* bytes of the filter parameter */
	QUERY_MAX_COMPARISONS = 64,
	QUERY_MAX_NESTING = 32,      /* parentheses */
	QUERY_MAX_SORT = 4096,       /* bytes of the sort parameter */
	QUERY_MAX_KEYS = 8,          /* entries in the sort parameter */
	QUERY_MAX_PATH = 256,        /* characters of one field path */
	QUERY_MAX_PATH_NAMES = 16,   /* names in one field path */
	QUERY_MAX_CURSOR = LIST_QUERY_MAX_CURSOR, /* characters of the cursor parameter */
	/* The limits above keep the WHERE under 22 KiB (measured: 14 KiB for
	 * the worst filter, 7 KiB for the worst cursor condition); this bound
	 * is a backstop that is never reached. */
	QUERY_MAX_SQL = 64 * 1024,
	QUERY_MAX_TERMS = QUERY_MAX_KEYS + 1, /* + the id tiebreaker */
	QUERY_MAX_PARAMS = QUERY_MAX_COMPARISONS + 2 * QUERY_MAX_TERMS,
	QUERY_MAX_EXPR = QUERY_MAX_PATH + 32, /* "json_extract(data, '$.<path>')" */
	QUERY_MAX_RAW_CURSOR = QUERY_MAX_CURSOR / 4 * 3 + 3,
};

#define LIST_QUERY_MAGIC 0x5175e7a1u

typedef enum value_type {
	VALUE_NULL,
	VALUE_TRUE,
	VALUE_FALSE,
	VALUE_INT,
	VALUE_REAL,
	VALUE_TEXT,
} value_type;

/* A literal from the filter or a key value from a cursor. text is malloc'd,
 * NUL-terminated, owned by whoever holds the value; len excludes the NUL and
 * may count NUL bytes inside (cursor values). */
typedef struct query_value {
	value_type type;
	int64_t i;
	double d;
	char *text;
	size_t len;
} query_value;

typedef struct sort_term {
	char expr[QUERY_MAX_EXPR]; /* SQL expression: a column or json_extract() */
	bool desc;
} sort_term;

struct list_query {
	unsigned magic;
	char *where;  /* malloc'd */
	char *order;  /* malloc'd */
	char *keys;   /* malloc'd */
	sort_term terms[QUERY_MAX_TERMS]; /* the last one is id */
	size_t term_count;
	char fingerprint[17];
	query_value params[QUERY_MAX_PARAMS]; /* INT, REAL or TEXT, owned */
	size_t param_count;
};

typedef enum query_op {
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_CONTAINS,
} query_op;

static const char *const op_text[] = {"=", "!=", "<", "<=", ">", ">=", "~"};
/* The SQL operator of the "=" form; != is NOT of it. */
static const char *const op_sql[] = {"=", "=", "<", "<=", ">", ">=", NULL};

/* SQL being built, with a sticky error checked once at the end of a phase
 * (so a run of appends needs no check after each one). */
typedef struct sql_out {
	buf b;
	int rc;
} sql_out;

typedef struct filter_parser {
	const char *s;
	size_t len;
	size_t off;
	sql_out *sql;
	list_query *q;
	query_error *err;
	int nesting;
	int comparisons;
} filter_parser;

/* ---- characters, UTF-8 and positions ----------------------------------- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || is_digit(c);
}

static bool is_op_char(char c)
{
	return c != '\0' && strchr("=!<>~&|", c) != NULL;
}

/* The characters a number token runs over: a superset of JSON number syntax,
 * so "01" or "3abc" is one token, reported as one invalid number. */
static bool is_number_char(char c)
{
	return is_name_char(c) || c == '.' || c == '+' || c == '-';
}

/* Length of the UTF-8 sequence at s[0..len) and its code point, or 0 if it is
 * not valid UTF-8 (overlong forms, surrogates and values above U+10FFFF are
 * invalid, as for jansson). */
static size_t utf8_sequence(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xC2 && c <= 0xDF) {
		n = 2, c &= 0x1F, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3, c &= 0x0F, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return n;
}

static bool utf8_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_sequence((const unsigned char *)s + i, len - i, &cp);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* 1-based character position of byte offset off (off == len gives len + 1):
 * continuation bytes do not start a character. */
static int char_pos(const char *s, size_t off)
{
	int pos = 1;
	for (size_t i = 0; i < off; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			pos++;
	return pos;
}

/* Fill *err (position from byte offset off of s, or 0 when s is NULL) and
 * return code, so that callers can write "return query_fail(...)". */
__attribute__((format(printf, 6, 7))) /* GCC/clang: checks the format */
static int query_fail(query_error *err, int code, const char *param, const char *s,
                      size_t off, const char *fmt, ...)
{
	va_list ap;
	err->param = param;
	err->code = strcmp(param, "sort") == 0     ? "invalid_sort"
	            : strcmp(param, "cursor") == 0 ? "invalid_cursor"
	                                           : "invalid_filter";
	err->pos = s ? char_pos(s, off) : 0;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return code;
}

/* Describe what starts at s[off] (off < len) for a "found ..." message, in at
 * most n bytes: a quoted token, "a string", or a code point. Cannot fail. */
static void describe(const char *s, size_t len, size_t off, char *out, size_t n)
{
	unsigned char c = (unsigned char)s[off];
	size_t end = off + 1;
	if (c == '\'') {
		snprintf(out, n, "a string");
		return;
	} else if (c >= 0x80) {
		uint32_t cp;
		if (utf8_sequence((const unsigned char *)s + off, len - off, &cp))
			snprintf(out, n, "U+%04" PRIX32, cp);
		else
			snprintf(out, n, "byte 0x%02X", c);
		return;
	} else if (c < 0x20 || c == 0x7F) {
		snprintf(out, n, "control character 0x%02X", c);
		return;
	} else if (is_name_start((char)c)) {
		while (end < len && (is_name_char(s[end]) || s[end] == '.'))
			end++;
	} else if (is_op_char((char)c)) {
		while (end < len && is_op_char(s[end]))
			end++;
	} else if (is_digit((char)c) || c == '-') {
		while (end < len && is_number_char(s[end]))
			end++;
	}
	if (end - off > 24)
		snprintf(out, n, "'%.24s...'", s + off);
	else
		snprintf(out, n, "'%.*s'", (int)(end - off), s + off);
}

/* ---- SQL output and parameters ----------------------------------------- */

static void sql_init(sql_out *o)
{
	buf_init(&o->b, QUERY_MAX_SQL);
	o->rc = 0;
}

__attribute__((format(printf, 2, 3))) /* GCC/clang: checks the format */
static void sql_printf(sql_out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->rc)
		return;
	va_start(ap, fmt);
	o->rc = buf_vprintf(&o->b, fmt, ap);
	va_end(ap);
}

/* Report the sticky error of o, if any, against param. */
static int sql_check(const sql_out *o, const char *param, query_error *err)
{
	if (o->rc == 0)
		return 0;
	if (o->rc == ERR_NOMEM)
		return query_fail(err, ERR_NOMEM, param, NULL, 0, "out of memory");
	/* Defensive: the input limits keep the SQL far below QUERY_MAX_SQL. */
	return query_fail(err, ERR_LIMIT, param, NULL, 0, "query is too complex");
}

/* Append a parameter, taking over v's text. The input limits bound the
 * number of parameters, so running out of slots cannot happen. */
static void add_param(list_query *q, query_value *v)
{
	if (q->param_count >= QUERY_MAX_PARAMS)
		abort(); /* cannot happen: QUERY_MAX_PARAMS follows from the limits */
	q->params[q->param_count++] = *v;
	v->text = NULL;
}

/* Copy src (its text too) into *dst. 0 or ERR_NOMEM (*dst untouched). */
static int value_copy(query_value *dst, const query_value *src)
{
	query_value v = *src;
	if (src->type == VALUE_TEXT) {
		v.text = malloc(src->len + 1);
		if (!v.text)
			return ERR_NOMEM;
		memcpy(v.text, src->text, src->len);
		v.text[src->len] = '\0';
	}
	*dst = v;
	return 0;
}

static void value_clear(query_value *v)
{
	free(v->text);
	v->text = NULL;
}

/* ---- field paths -------------------------------------------------------- */

/* Scan the field path that starts at s[off], a name start character, within
 * s[0..len). Sets *end past it and returns 0, or fills *err and returns
 * ERR_PARSE (a dot not followed by a name) or ERR_LIMIT (too long or deep). */
static int scan_path(const char *param, const char *s, size_t len, size_t off, size_t *end,
                     query_error *err)
{
	size_t i = off;
	int names = 0;
	assert(off < len && is_name_start(s[off]));
	for (;;) {
		i++;
		while (i < len && is_name_char(s[i]))
			i++;
		names++;
		if (i >= len || s[i] != '.')
			break;
		if (i + 1 >= len || !is_name_start(s[i + 1]))
			return query_fail(err, ERR_PARSE, param, s, i + 1, "expected a name after '.'");
		i++;
	}
	if (i - off > QUERY_MAX_PATH)
		return query_fail(err, ERR_LIMIT, param, s, off,
		                  "field path is longer than %d characters", QUERY_MAX_PATH);
	if (names > QUERY_MAX_PATH_NAMES)
		return query_fail(err, ERR_LIMIT, param, s, off, "field path has more than %d names",
		                  QUERY_MAX_PATH_NAMES);
	*end = i;
	return 0;
}

/* What a field path names: a column of the record, or a path into data. */
typedef struct field_ref {
	const char *column; /* "id", "version", ...; NULL for a path into data */
	bool number;        /* the column holds integers (version) */
	const char *path;   /* the path into data ("a.b"), when column is NULL */
	size_t path_len;
} field_ref;

static const struct {
	const char *name;
	bool number;
} record_columns[] = {
	{"id", false}, {"created_at", false}, {"updated_at", false}, {"version", true},
};

/* The record's other top-level fields, which a list cannot use, and why. */
static const struct {
	const char *name;
	const char *why;
} unusable_fields[] = {
	{"owner", "a list holds only your own records"},
	{"collection", "the collection is in the path"},
};

static bool name_is(const char *s, size_t len, const char *name)
{
	return strlen(name) == len && memcmp(s, name, len) == 0;
}

/* Mark the error just filled as unknown_field; returns rc. */
static int unknown_field(query_error *err, int rc)
{
	err->code = "unknown_field";
	return rc;
}

/* Resolve the field path s[off..end) (as scan_path found it). The record's
 * top-level names are its own fields: id, created_at, updated_at and version
 * are columns (bare only), "data.NAME..." is an explicit path into data (how
 * a data field named like a record field is reached), and owner, collection
 * and a bare data cannot be filtered or sorted on; any other first name
 * starts a path into data. On failure fills *err with the code
 * unknown_field and returns ERR_PARSE. */
static int resolve_field(const char *param, const char *s, size_t off, size_t end, field_ref *f,
                         query_error *err)
{
	const char *path = s + off;
	size_t len = end - off;
	const char *dot = memchr(path, '.', len);
	size_t first = dot ? (size_t)(dot - path) : len;
	int shown = len > 48 ? 48 : (int)len;

	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < sizeof unusable_fields / sizeof unusable_fields[0]; i++)
		if (name_is(path, first, unusable_fields[i].name))
			return unknown_field(err, query_fail(err, ERR_PARSE, param, s, off,
			                                     "unknown field '%.*s': %s; for a field of data "
			                                     "write data.%.*s",
			                                     shown, path, unusable_fields[i].why, shown, path));
	if (name_is(path, first, "data")) {
		if (!dot)
			return unknown_field(err, query_fail(err, ERR_PARSE, param, s, off,
			                                     "unknown field 'data': name a field inside it "
			                                     "(data.NAME)"));
		f->path = dot + 1;
		f->path_len = len - first - 1;
		return 0;
	}
	for (size_t i = 0; i < sizeof record_columns / sizeof record_columns[0]; i++) {
		if (!name_is(path, first, record_columns[i].name))
			continue;
		if (dot)
			return unknown_field(err, query_fail(err, ERR_PARSE, param, s, off,
			                                     "unknown field '%.*s': %s has no fields; for a "
			                                     "field of data write data.%.*s",
			                                     shown, path, record_columns[i].name, shown, path));
		f->column = record_columns[i].name;
		f->number = record_columns[i].number;
		return 0;
	}
	f->path = path;
	f->path_len = len;
	return 0;
}

/* ---- filter ------------------------------------------------------------- */

static int parse_expr(filter_parser *p);

static void skip_ws(filter_parser *p)
{
	while (p->off < p->len && is_space(p->s[p->off]))
		p->off++;
}

static int filter_fail_end(filter_parser *p, const char *expected)
{
	return query_fail(p->err, ERR_PARSE, "filter", p->s, p->len,
	                  "unexpected end of filter, expected %s", expected);
}

/* Whether the next token is "&&" (c == '&') or "||" (c == '|'). */
static bool at_connective(filter_parser *p, char c)
{
	skip_ws(p);
	return p->off + 1 < p->len && p->s[p->off] == c && p->s[p->off + 1] == c;
}

/* Report what stands where a complete condition should be followed by "&&",
 * "||", or ")" (in_group) or the end. Always returns ERR_PARSE. */
static int junk_after_condition(filter_parser *p, bool in_group)
{
	char what[64];
	size_t off = p->off;
	char c = p->s[off];
	if (c == '&' || c == '|') {
		size_t end = off;
		while (end < p->len && is_op_char(p->s[end]) && end - off < 16)
			end++;
		return query_fail(p->err, ERR_PARSE, "filter", p->s, off, "unknown operator '%.*s'",
		                  (int)(end - off), p->s + off);
	}
	if (!in_group && c == ')')
		return query_fail(p->err, ERR_PARSE, "filter", p->s, off, "unmatched ')'");
	describe(p->s, p->len, off, what, sizeof what);
	return query_fail(p->err, ERR_PARSE, "filter", p->s, off, "expected '&&', '||' or %s, found %s",
	                  in_group ? "')'" : "the end of the filter", what);
}

/* Lex a 'string' starting at the quote at p->off into v (text malloc'd).
 * On failure fills p->err and returns ERR_PARSE or ERR_NOMEM, v untouched. */
static int lex_string(filter_parser *p, query_value *v)
{
	const char *s = p->s;
	size_t open = p->off, i = open + 1, n = 0;
	char *text = malloc(p->len - open); /* the content is shorter than the rest */
	if (!text)
		return query_fail(p->err, ERR_NOMEM, "filter", NULL, 0, "out of memory");
	for (;;) {
		if (i >= p->len)
			goto unterminated;
		unsigned char c = (unsigned char)s[i];
		if (c == '\'') {
			if (i + 1 < p->len && s[i + 1] == '\'') {
				text[n++] = '\'';
				i += 2;
				continue;
			}
			i++;
			break;
		}
		if (c == '\\') {
			if (i + 1 >= p->len)
				goto unterminated;
			char e = s[i + 1];
			if (e != '\'' && e != '\\') {
				free(text);
				if (e > ' ' && e < 0x7F)
					return query_fail(p->err, ERR_PARSE, "filter", s, i,
					                  "invalid escape '\\%c' in string (only \\' and \\\\)", e);
				return query_fail(p->err, ERR_PARSE, "filter", s, i,
				                  "invalid escape in string (only \\' and \\\\)");
			}
			text[n++] = e;
			i += 2;
			continue;
		}
		uint32_t cp;
		size_t len = utf8_sequence((const unsigned char *)s + i, p->len - i, &cp);
		if (len == 0) {
			free(text);
			return query_fail(p->err, ERR_PARSE, "filter", s, i, "invalid UTF-8 in string");
		}
		memcpy(text + n, s + i, len);
		n += len;
		i += len;
	}
	text[n] = '\0';
	p->off = i;
	v->type = VALUE_TEXT;
	v->text = text;
	v->len = n;
	return 0;
unterminated:
	free(text);
	return query_fail(p->err, ERR_PARSE, "filter", s, open, "unterminated string");
}

/* Whether s[0..n) is a JSON number; *integer when it has no fraction or
 * exponent. */
static bool json_number_syntax(const char *s, size_t n, bool *integer)
{
	size_t i = 0;
	*integer = true;
	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0') {
		i++;
	} else if (i < n && s[i] >= '1' && s[i] <= '9') {
		while (i < n && is_digit(s[i]))
			i++;
	} else {
		return false;
	}
	if (i < n && s[i] == '.') {
		*integer = false;
		if (++i >= n || !is_digit(s[i]))
			return false;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		*integer = false;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || !is_digit(s[i]))
			return false;
		while (i < n && is_digit(s[i]))
			i++;
	}
	return i == n;
}

/* Lex a number at p->off into v: an int64 when it is an integer that fits,
 * else a double (possibly infinite, as SQLite reads 1e400 from JSON too).
 * On failure fills p->err and returns ERR_PARSE. */
static int lex_number(filter_parser *p, query_value *v)
{
	const char *start = p->s + p->off;
	size_t n = 0;
	bool integer;
	char *end;
	while (p->off + n < p->len && is_number_char(start[n]))
		n++;
	if (!json_number_syntax(start, n, &integer)) {
		if (n > 24)
			return query_fail(p->err, ERR_PARSE, "filter", p->s, p->off,
			                  "invalid number '%.24s...'", start);
		return query_fail(p->err, ERR_PARSE, "filter", p->s, p->off, "invalid number '%.*s'",
		                  (int)n, start);
	}
	/* strtoll/strtod stop at the end of the token: it is valid JSON number
	 * syntax, and the character after it cannot continue a number. */
	if (integer) {
		errno = 0;
		long long x = strtoll(start, &end, 10);
		if (errno == 0 && end == start + n) {
			v->type = VALUE_INT;
			v->i = x;
			p->off += n;
			return 0;
		}
	}
	double d = strtod(start, &end);
	if (end != start + n) /* defensive: a locale whose decimal point is not '.' */
		return query_fail(p->err, ERR_PARSE, "filter", p->s, p->off, "invalid number '%.*s'",
		                  n > 24 ? 24 : (int)n, start);
	v->type = VALUE_REAL;
	v->d = d;
	p->off += n;
	return 0;
}

/* Parse the value after operator op_name into *v (text malloc'd for a
 * string) and set *value_off to where it starts. On failure fills p->err,
 * returns the error, v holds nothing. */
static int parse_value(filter_parser *p, const char *op_name, query_value *v, size_t *value_off)
{
	char what[64];
	skip_ws(p);
	if (p->off >= p->len)
		return filter_fail_end(p, "a value");
	const char *s = p->s + p->off;
	*value_off = p->off;
	memset(v, 0, sizeof *v);
	if (*s == '\'')
		return lex_string(p, v);
	if (*s == '-' || is_digit(*s))
		return lex_number(p, v);
	if (is_name_start(*s)) {
		size_t n = 1;
		while (p->off + n < p->len && is_name_char(s[n]))
			n++;
		if (n == 4 && memcmp(s, "true", 4) == 0)
			v->type = VALUE_TRUE;
		else if (n == 5 && memcmp(s, "false", 5) == 0)
			v->type = VALUE_FALSE;
		else if (n == 4 && memcmp(s, "null", 4) == 0)
			v->type = VALUE_NULL;
		else
			return query_fail(p->err, ERR_PARSE, "filter", p->s, p->off,
			                  "unknown value '%.*s' (strings are written in single quotes)",
			                  n > 24 ? 24 : (int)n, s);
		p->off += n;
		return 0;
	}
	describe(p->s, p->len, p->off, what, sizeof what);
	return query_fail(p->err, ERR_PARSE, "filter", p->s, p->off,
	                  "expected a value after '%s', found %s%s", op_name, what,
	                  *s == '"' ? " (strings are written in single quotes)" : "");
}

/* Parse the operator after a field into *op. On failure fills p->err and
 * returns ERR_PARSE. */
static int parse_op(filter_parser *p, query_op *op)
{
	char what[64];
	skip_ws(p);
	if (p->off >= p->len)
		return filter_fail_end(p, "an operator");
	const char *s = p->s + p->off;
	if (!is_op_char(*s)) {
		describe(p->s, p->len, p->off, what, sizeof what);
		return query_fail(p->err, ERR_PARSE, "filter", p->s, p->off,
		                  "expected an operator after the field name, found %s", what);
	}
	size_t n = 1;
	while (p->off + n < p->len && is_op_char(s[n]))
		n++;
	for (size_t i = 0; i < sizeof op_text / sizeof op_text[0]; i++) {
		if (strlen(op_text[i]) == n && memcmp(op_text[i], s, n) == 0) {
			*op = (query_op)i;
			p->off += n;
			return 0;
		}
	}
	if (n == 2 && (memcmp(s, "&&", 2) == 0 || memcmp(s, "||", 2) == 0))
		return query_fail(p->err, ERR_PARSE, "filter", p->s, p->off,
		                  "expected an operator after the field name, found '%.2s'", s);
	return query_fail(p->err, ERR_PARSE, "filter", p->s, p->off, "unknown operator '%.*s'",
	                  n > 16 ? 16 : (int)n, s);
}

/* Emit the SQL of "path op v" and add its parameter, taking over v's text in
 * every case. A value of the wrong type for the field or operator is an
 * error: at the value for a column, at the operator for a data path. On
 * failure fills p->err and returns ERR_PARSE (the SQL may hold a partial
 * comparison; the caller discards it). */
static int emit_comparison(filter_parser *p, const field_ref *field, query_op op,
                           size_t op_off, query_value *v, size_t value_off)
{
	sql_out *o = p->sql;
	const char *column = field->column, *path = field->path;
	size_t path_len = field->path_len;
	bool ordering = op == OP_LT || op == OP_LE || op == OP_GT || op == OP_GE;
	bool number = v->type == VALUE_INT || v->type == VALUE_REAL;
	const char *cmp = op_sql[op];
	int rc = ERR_PARSE;

	if (column && field->number && !number) {
		query_fail(p->err, rc, "filter", p->s, value_off,
		           "%s can only be compared with a number", column);
		goto fail;
	}
	if (column && field->number && op == OP_CONTAINS) {
		query_fail(p->err, rc, "filter", p->s, op_off, "operator ~ needs a string field");
		goto fail;
	}
	if (column && !field->number && v->type != VALUE_TEXT) {
		query_fail(p->err, rc, "filter", p->s, value_off,
		           "%s can only be compared with a string", column);
		goto fail;
	}
	if (!column && ordering && v->type != VALUE_TEXT && !number) {
		query_fail(p->err, rc, "filter", p->s, op_off, "operator %s needs a string or a number",
		           op_text[op]);
		goto fail;
	}
	if (!column && op == OP_CONTAINS && v->type != VALUE_TEXT) {
		query_fail(p->err, rc, "filter", p->s, op_off, "operator ~ needs a string");
		goto fail;
	}

	sql_printf(o, op == OP_NE ? "(NOT (" : "(");
	if (column && op == OP_CONTAINS) {
		sql_printf(o, "instr(%s, ?) > 0", column);
	} else if (column) {
		sql_printf(o, "%s %s ?", column, cmp);
	} else {
		int n = (int)path_len;
		switch (v->type) {
		case VALUE_TEXT:
			sql_printf(o, "json_type(data, '$.%.*s') IS 'text' AND ", n, path);
			if (op == OP_CONTAINS)
				sql_printf(o, "instr(json_extract(data, '$.%.*s'), ?) > 0", n, path);
			else
				sql_printf(o, "json_extract(data, '$.%.*s') %s ?", n, path, cmp);
			break;
		case VALUE_INT:
		case VALUE_REAL:
			sql_printf(o,
			           "coalesce(json_type(data, '$.%.*s'), '') IN ('integer', 'real') AND "
			           "json_extract(data, '$.%.*s') %s ?",
			           n, path, n, path, cmp);
			break;
		case VALUE_TRUE:
			sql_printf(o, "json_type(data, '$.%.*s') IS 'true'", n, path);
			break;
		case VALUE_FALSE:
			sql_printf(o, "json_type(data, '$.%.*s') IS 'false'", n, path);
			break;
		case VALUE_NULL:
			sql_printf(o, "coalesce(json_type(data, '$.%.*s'), 'null') = 'null'", n, path);
			break;
		}
	}
	sql_printf(o, op == OP_NE ? "))" : ")");
	if (v->type == VALUE_TEXT || number)
		add_param(p->q, v);
	return 0;
fail:
	value_clear(v);
	return rc;
}

/* comparison := field op value, with p->off at the field's first character.
 * On failure fills p->err and returns the error. */
static int parse_comparison(filter_parser *p)
{
	/* initialised only for gcc -O2, which cannot see that parse_op() and
	 * parse_value() set them whenever they return 0 */
	size_t field_off = p->off, field_end = 0, op_off, value_off = 0;
	query_op op = OP_EQ;
	query_value v;
	int rc;
	if (++p->comparisons > QUERY_MAX_COMPARISONS)
		return query_fail(p->err, ERR_LIMIT, "filter", p->s, field_off,
		                  "more than %d comparisons", QUERY_MAX_COMPARISONS);
	field_ref field;
	rc = scan_path("filter", p->s, p->len, field_off, &field_end, p->err);
	if (rc)
		return rc;
	rc = resolve_field("filter", p->s, field_off, field_end, &field, p->err);
	if (rc)
		return rc;
	p->off = field_end;
	rc = parse_op(p, &op);
	if (rc)
		return rc;
	op_off = p->off - strlen(op_text[op]);
	rc = parse_value(p, op_text[op], &v, &value_off);
	if (rc)
		return rc;
	return emit_comparison(p, &field, op, op_off, &v, value_off);
}

/* primary := "(" expr ")" | comparison. On failure fills p->err. */
static int parse_primary(filter_parser *p)
{
	char what[64];
	skip_ws(p);
	if (p->off >= p->len)
		return filter_fail_end(p, "a field name or '('");
	char c = p->s[p->off];
	if (c == '(') {
		if (p->nesting >= QUERY_MAX_NESTING)
			return query_fail(p->err, ERR_LIMIT, "filter", p->s, p->off,
			                  "parentheses nested deeper than %d", QUERY_MAX_NESTING);
		p->nesting++;
		p->off++;
		sql_printf(p->sql, "(");
		int rc = parse_expr(p);
		if (rc)
			return rc;
		skip_ws(p);
		if (p->off >= p->len)
			return filter_fail_end(p, "')'");
		if (p->s[p->off] != ')')
			return junk_after_condition(p, true);
		p->off++;
		p->nesting--;
		sql_printf(p->sql, ")");
		return 0;
	}
	if (is_name_start(c))
		return parse_comparison(p);
	describe(p->s, p->len, p->off, what, sizeof what);
	return query_fail(p->err, ERR_PARSE, "filter", p->s, p->off,
	                  "expected a field name or '(', found %s", what);
}

/* and := primary ( "&&" primary )*. On failure fills p->err. */
static int parse_and(filter_parser *p)
{
	int rc = parse_primary(p);
	while (rc == 0 && at_connective(p, '&')) {
		p->off += 2;
		sql_printf(p->sql, " AND ");
		rc = parse_primary(p);
	}
	return rc;
}

/* expr := and ( "||" and )*. On failure fills p->err. */
static int parse_expr(filter_parser *p)
{
	int rc = parse_and(p);
	while (rc == 0 && at_connective(p, '|')) {
		p->off += 2;
		sql_printf(p->sql, " OR ");
		rc = parse_and(p);
	}
	return rc;
}

/* Compile filter (NULL, empty or blank: none) into out and q's parameters.
 * On failure fills *err and returns ERR_PARSE, ERR_LIMIT or ERR_NOMEM; out
 * and q may hold a partial result, which the caller discards. */
static int compile_filter(list_query *q, const char *filter, sql_out *out, query_error *err)
{
	filter_parser p = {.s = filter, .sql = out, .q = q, .err = err};
	int rc;
	if (!filter)
		return 0;
	p.len = strnlen(filter, QUERY_MAX_FILTER + 1);
	if (p.len > QUERY_MAX_FILTER)
		return query_fail(err, ERR_LIMIT, "filter", filter, QUERY_MAX_FILTER,
		                  "filter is longer than %d bytes", QUERY_MAX_FILTER);
	skip_ws(&p);
	if (p.off == p.len)
		return 0;
	rc = parse_expr(&p);
	if (rc)
		return rc;
	skip_ws(&p);
	if (p.off < p.len)
		return junk_after_condition(&p, false);
	return sql_check(out, "filter", err);
}

/* ---- sort --------------------------------------------------------------- */

/* FNV-1a, 64 bits: a fingerprint against mistakes, not against forgery. */
static uint64_t fnv1a_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *s = data;
	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	return fnv1a_bytes(h, s, strlen(s));
}

/* The fingerprint of the list a cursor belongs to: the scope (collection),
 * the compiled filter (its SQL and its parameters, so that spacing and
 * spelling do not matter but values do) and the sort terms. Call after the
 * filter and sort are compiled, before the cursor adds its parameters. */
static void query_fingerprint(list_query *q, const char *scope, const char *filter_sql)
{
	char number[40];
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, "tandem list cursor v2\n");
	h = fnv1a(h, scope ? scope : "");
	h = fnv1a(h, "\nfilter ");
	h = fnv1a(h, filter_sql ? filter_sql : "");
	for (size_t i = 0; i < q->param_count; i++) {
		const query_value *v = &q->params[i];
		if (v->type == VALUE_INT)
			snprintf(number, sizeof number, "\ni%" PRId64 "\n", v->i);
		else if (v->type == VALUE_REAL)
			snprintf(number, sizeof number, "\nr%.17g\n", v->d);
		else
			snprintf(number, sizeof number, "\nt%zu\n", v->len);
		h = fnv1a(h, number);
		if (v->type == VALUE_TEXT)
			h = fnv1a_bytes(h, v->text, v->len);
	}
	for (size_t i = 0; i < q->term_count; i++) {
		h = fnv1a(h, q->terms[i].desc ? "\n-" : "\n+");
		h = fnv1a(h, q->terms[i].expr);
	}
	snprintf(q->fingerprint, sizeof q->fingerprint, "%016" PRIx64, h);
}

/* Parse sort (NULL, empty or blank: by id) into q->terms, ending with id.
 * Entries may have blanks around them. On failure
 * fills *err and returns ERR_PARSE or ERR_LIMIT. */
static int parse_sort(list_query *q, const char *sort, query_error *err)
{
	struct {
		size_t off, len;
	} seen[QUERY_MAX_KEYS];
	size_t len = sort ? strnlen(sort, QUERY_MAX_SORT + 1) : 0;
	size_t entries = 0, i = 0;
	bool id_desc = false, have_id = false;
	char what[64];
	int rc;

	q->term_count = 0;
	if (len > QUERY_MAX_SORT)
		return query_fail(err, ERR_LIMIT, "sort", sort, QUERY_MAX_SORT,
		                  "sort is longer than %d bytes", QUERY_MAX_SORT);
	while (i < len && is_space(sort[i]))
		i++;
	if (i == len) /* blank, like an absent sort (as for the filter) */
		len = 0;
	i = 0;
	while (len > 0) {
		size_t end = i, a, b, path_end;
		while (end < len && sort[end] != ',')
			end++;
		a = i, b = end;
		while (a < b && is_space(sort[a]))
			a++;
		while (b > a && is_space(sort[b - 1]))
			b--;
		if (a == b)
			return query_fail(err, ERR_PARSE, "sort", sort, a, "empty sort key");
		if (entries == QUERY_MAX_KEYS)
			return query_fail(err, ERR_LIMIT, "sort", sort, a, "more than %d sort keys",
			                  QUERY_MAX_KEYS);
		size_t entry = a;
		bool desc = sort[a] == '-';
		if (sort[a] == '-' || sort[a] == '+')
			a++;
		if (a == b)
			return query_fail(err, ERR_PARSE, "sort", sort, a,
			                  "expected a field name after '%c'", sort[entry]);
		if (!is_name_start(sort[a])) {
			describe(sort, b, a, what, sizeof what);
			return query_fail(err, ERR_PARSE, "sort", sort, a,
			                  "expected a field name, found %s", what);
		}
		rc = scan_path("sort", sort, b, a, &path_end, err);
		if (rc)
			return rc;
		if (path_end != b) {
			describe(sort, b, path_end, what, sizeof what);
			return query_fail(err, ERR_PARSE, "sort", sort, path_end,
			                  "unexpected %s in sort key", what);
		}
		for (size_t k = 0; k < entries; k++)
			if (seen[k].len == b - a && memcmp(sort + seen[k].off, sort + a, b - a) == 0)
				return query_fail(err, ERR_PARSE, "sort", sort, entry,
				                  "sort key '%.*s%s' appears twice",
				                  b - a > 64 ? 64 : (int)(b - a), sort + a,
				                  b - a > 64 ? "..." : "");
		seen[entries].off = a;
		seen[entries].len = b - a;
		entries++;

		field_ref field;
		rc = resolve_field("sort", sort, a, b, &field, err);
		if (rc)
			return rc;
		if (have_id) {
			/* after id, which is unique: cannot change the order */
		} else if (field.column && strcmp(field.column, "id") == 0) {
			have_id = true;
			id_desc = desc;
		} else {
			sort_term *t = &q->terms[q->term_count++];
			if (field.column)
				snprintf(t->expr, sizeof t->expr, "%s", field.column);
			else
				snprintf(t->expr, sizeof t->expr, "json_extract(data, '$.%.*s')",
				         (int)field.path_len, field.path);
			t->desc = desc;
		}
		if (end >= len)
			break;
		i = end + 1;
	}
	sort_term *t = &q->terms[q->term_count++];
	snprintf(t->expr, sizeof t->expr, "id");
	t->desc = id_desc;
	return 0;
}

/* ---- cursor ------------------------------------------------------------- */

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Append base64url (no padding) of in[0..len) to out. 0, or ERR_LIMIT /
 * ERR_NOMEM with out possibly holding part of it. */
static int base64url_encode(buf *out, const unsigned char *in, size_t len)
{
	char quad[4];
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t n = len - i >= 3 ? 3 : len - i;
		if (n > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (n > 2)
			v |= in[i + 2];
		for (int k = 0; k < 4; k++)
			quad[k] = b64url_alphabet[(v >> (18 - 6 * k)) & 63];
		int rc = buf_add(out, quad, n + 1);
		if (rc)
			return rc;
	}
	return 0;
}

static int b64url_digit(char c)
{
	const char *p = c ? strchr(b64url_alphabet, c) : NULL;
	return p ? (int)(p - b64url_alphabet) : -1;
}

/* Decode canonical base64url without padding: only the alphabet, no length
 * of 1 mod 4, unused low bits zero, so each byte string has one encoding.
 * Writes at most cap bytes. 0 and *out_len, or -1 (out undefined). */
static int base64url_decode(const char *in, size_t len, unsigned char *out, size_t cap,
                            size_t *out_len)
{
	size_t n = 0;
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		size_t chunk = len - i >= 4 ? 4 : len - i;
		uint32_t v = 0;
		for (size_t k = 0; k < 4; k++) {
			int d = k < chunk ? b64url_digit(in[i + k]) : 0;
			if (d < 0)
				return -1;
			v = (v << 6) | (uint32_t)d;
		}
		size_t bytes = chunk - 1;
		if (bytes < 3 && (v & ((1u << (8 * (3 - bytes))) - 1)) != 0)
			return -1;
		if (n + bytes > cap)
			return -1;
		for (size_t k = 0; k < bytes; k++)
			out[n++] = (unsigned char)(v >> (16 - 8 * k));
	}
	*out_len = n;
	return 0;
}

/* Decode one cursor value (see the format above) into *v (text malloc'd).
 * 0, ERR_PARSE (not a valid value) or ERR_NOMEM; v holds nothing on failure. */
static int cursor_value_decode(json_t *j, query_value *v)
{
	memset(v, 0, sizeof *v);
	if (json_is_null(j)) {
		v->type = VALUE_NULL;
	} else if (json_is_integer(j)) {
		v->type = VALUE_INT;
		v->i = json_integer_value(j);
	} else if (json_is_real(j)) {
		v->type = VALUE_REAL;
		v->d = json_real_value(j);
	} else if (json_is_string(j)) {
		query_value s = {.type = VALUE_TEXT,
		                 .text = (char *)json_string_value(j),
		                 .len = json_string_length(j)};
		return value_copy(v, &s);
	} else if (json_is_object(j) && json_object_size(j) == 1) {
		json_t *inf = json_object_get(j, "inf");
		json_t *b64 = json_object_get(j, "b64");
		if (json_is_integer(inf) && (json_integer_value(inf) == 1 || json_integer_value(inf) == -1)) {
			v->type = VALUE_REAL;
			v->d = json_integer_value(inf) > 0 ? INFINITY : -INFINITY;
		} else if (json_is_string(b64)) {
			size_t len = json_string_length(b64), cap = len / 4 * 3 + 2, n;
			char *text = malloc(cap + 1);
			if (!text)
				return ERR_NOMEM;
			if (base64url_decode(json_string_value(b64), len, (unsigned char *)text, cap, &n)) {
				free(text);
				return ERR_PARSE;
			}
			text[n] = '\0';
			v->type = VALUE_TEXT;
			v->text = text;
			v->len = n;
		} else {
			return ERR_PARSE;
		}
	} else {
		return ERR_PARSE;
	}
	return 0;
}

/* Emit the "strictly after the cursor row" condition (see the design note)
 * for the terms of q and their values vals[0..term_count), and add its
 * parameters. 0 or ERR_NOMEM (out and q may hold a partial result). Errors
 * of out are left sticky for the caller. */
static int emit_cursor_condition(list_query *q, sql_out *out, const query_value *vals)
{
	size_t n = q->term_count;
	query_value copy;
	for (size_t i = 0; i < n; i++) {
		const char *k = q->terms[i].expr;
		bool desc = q->terms[i].desc, null = vals[i].type == VALUE_NULL;
		bool last = i + 1 == n;
		if (!last)
			sql_printf(out, "(");
		if (null)
			sql_printf(out, desc ? "0" : "%s IS NOT NULL", k);
		else if (desc)
			sql_printf(out, "(%s < ? OR %s IS NULL)", k, k);
		else
			sql_printf(out, "%s > ?", k);
		if (!null) {
			if (value_copy(&copy, &vals[i]))
				return ERR_NOMEM;
			add_param(q, &copy);
		}
		if (last)
			break;
		if (null) {
			sql_printf(out, " OR (%s IS NULL AND ", k);
		} else {
			sql_printf(out, " OR (%s = ? AND ", k);
			if (value_copy(&copy, &vals[i]))
				return ERR_NOMEM;
			add_param(q, &copy);
		}
	}
	for (size_t i = 0; i + 1 < n; i++)
		sql_printf(out, "))");
	return 0;
}

/* Decode cursor (NULL or empty: none) against the terms of q and emit its
 * condition into out. On failure fills *err and returns ERR_PARSE (invalid,
 * or made for another sort), ERR_LIMIT (too long) or ERR_NOMEM. */
static int compile_cursor(list_query *q, const char *cursor, sql_out *out, query_error *err)
{
	unsigned char raw[QUERY_MAX_RAW_CURSOR];
	query_value vals[QUERY_MAX_TERMS] = {0};
	json_t *root = NULL;
	json_error_t jerr;
	size_t len, raw_len, decoded = 0;
	int rc;

	if (!cursor || !*cursor)
		return 0;
	len = strnlen(cursor, QUERY_MAX_CURSOR + 1);
	if (len > QUERY_MAX_CURSOR)
		return query_fail(err, ERR_LIMIT, "cursor", NULL, 0,
		                  "cursor is longer than %d characters", QUERY_MAX_CURSOR);
	if (base64url_decode(cursor, len, raw, sizeof raw, &raw_len))
		return query_fail(err, ERR_PARSE, "cursor", NULL, 0, "invalid cursor");
	root = json_loadb((const char *)raw, raw_len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return query_fail(err, ERR_NOMEM, "cursor", NULL, 0, "out of memory");
		return query_fail(err, ERR_PARSE, "cursor", NULL, 0, "invalid cursor");
	}
	json_t *fingerprint = json_array_get(root, 0);
	if (!json_is_array(root) || !json_is_string(fingerprint)) {
		rc = query_fail(err, ERR_PARSE, "cursor", NULL, 0, "invalid cursor");
		goto fail;
	}
	if (json_string_length(fingerprint) != strlen(q->fingerprint) ||
	    strcmp(json_string_value(fingerprint), q->fingerprint) != 0) {
		rc = query_fail(err, ERR_PARSE, "cursor", NULL, 0,
		                "cursor belongs to another list (another collection, filter or sort); "
		                "start again without it");
		goto fail;
	}
	if (json_array_size(root) != q->term_count + 1) {
		rc = query_fail(err, ERR_PARSE, "cursor", NULL, 0, "invalid cursor");
		goto fail;
	}
	for (; decoded < q->term_count; decoded++) {
		rc = cursor_value_decode(json_array_get(root, decoded + 1), &vals[decoded]);
		if (rc == ERR_NOMEM) {
			query_fail(err, rc, "cursor", NULL, 0, "out of memory");
			goto fail;
		} else if (rc) {
			query_fail(err, rc, "cursor", NULL, 0, "invalid cursor");
			goto fail;
		}
	}
	if (vals[q->term_count - 1].type != VALUE_TEXT) { /* the id */
		rc = query_fail(err, ERR_PARSE, "cursor", NULL, 0, "invalid cursor");
		goto fail;
	}
	rc = emit_cursor_condition(q, out, vals);
	if (rc)
		query_fail(err, rc, "cursor", NULL, 0, "out of memory");
	else
		rc = sql_check(out, "cursor", err);
fail:
	for (size_t i = 0; i < decoded; i++)
		value_clear(&vals[i]);
	json_decref(root);
	return rc;
}

/* Encode column col of the row st is on as a cursor value. A new reference,
 * or NULL with *rc set: ERR_NOMEM, or ERR_UNSUPPORTED for a BLOB (never a
 * sort key of the records table). */
static json_t *cursor_value_encode(sqlite3_value *value, int *rc)
{
	json_t *j = NULL;
	*rc = ERR_NOMEM;
	switch (sqlite3_value_type(value)) {
	case SQLITE_NULL:
		j = json_null();
		break;
	case SQLITE_INTEGER:
		j = json_integer(sqlite3_value_int64(value));
		break;
	case SQLITE_FLOAT: {
		double d = sqlite3_value_double(value);
		if (isfinite(d))
			j = json_real(d);
		else if (isinf(d))
			j = json_pack("{s:i}", "inf", d > 0 ? 1 : -1);
		else /* defensive: SQLite stores NaN as NULL */
			*rc = ERR_UNSUPPORTED;
		break;
	}
	case SQLITE_TEXT: {
		const char *s = (const char *)sqlite3_value_text(value);
		size_t n = (size_t)sqlite3_value_bytes(value);
		if (!s && n == 0)
			s = "";
		if (!s)
			break; /* out of memory converting the value */
		if (utf8_valid(s, n)) {
			j = json_stringn(s, n);
		} else {
			buf b;
			buf_init(&b, 2 * (size_t)n + 4);
			if (base64url_encode(&b, (const unsigned char *)s, n) == 0)
				j = json_pack("{s:s}", "b64", b.data ? b.data : "");
			buf_free(&b);
		}
		break;
	}
	default:
		*rc = ERR_UNSUPPORTED;
		break;
	}
	return j;
}

/* ---- public interface --------------------------------------------------- */

/* Join the terms of q into "ORDER BY ..." and the key list (all terms but
 * the final id). Errors stay sticky in order and keys, for sql_check(). */
static void build_order(const list_query *q, sql_out *order, sql_out *keys)
{
	sql_printf(order, "ORDER BY ");
	for (size_t i = 0; i < q->term_count; i++) {
		const sort_term *t = &q->terms[i];
		sql_printf(order, "%s%s %s", i ? ", " : "", t->expr, t->desc ? "DESC" : "ASC");
		if (i + 1 < q->term_count)
			sql_printf(keys, "%s%s", i ? ", " : "", t->expr);
	}
	sql_printf(keys, "%s", ""); /* so that an empty key list is "" not NULL */
}

int list_query_compile(const char *scope, const char *filter, const char *sort,
                       const char *cursor, list_query **out, query_error *err)
{
	query_error unused;
	sql_out where_filter, where_cursor, where, order, keys;
	list_query *q;
	int rc;

	if (!err)
		err = &unused;
	err->param = NULL;
	err->code = NULL;
	err->pos = 0;
	err->message[0] = '\0';
	*out = NULL;
	q = calloc(1, sizeof *q);
	if (!q)
		return query_fail(err, ERR_NOMEM, "filter", NULL, 0, "out of memory");
	q->magic = LIST_QUERY_MAGIC;
	sql_init(&where_filter);
	sql_init(&where_cursor);
	sql_init(&where);
	sql_init(&order);
	sql_init(&keys);

	rc = compile_filter(q, filter, &where_filter, err);
	if (rc)
		goto fail;
	rc = parse_sort(q, sort, err);
	if (rc)
		goto fail;
	query_fingerprint(q, scope, where_filter.b.data);
	rc = compile_cursor(q, cursor, &where_cursor, err);
	if (rc)
		goto fail;

	if (where_filter.b.len && where_cursor.b.len)
		sql_printf(&where, "(%s) AND (%s)", where_filter.b.data, where_cursor.b.data);
	else if (where_filter.b.len)
		sql_printf(&where, "%s", where_filter.b.data);
	else if (where_cursor.b.len)
		sql_printf(&where, "%s", where_cursor.b.data);
	else
		sql_printf(&where, "1");
	build_order(q, &order, &keys);
	rc = sql_check(&where, "filter", err);
	if (!rc)
		rc = sql_check(&order, "sort", err);
	if (!rc)
		rc = sql_check(&keys, "sort", err);
	if (rc)
		goto fail;
	q->where = buf_take(&where.b, NULL);
	q->order = buf_take(&order.b, NULL);
	q->keys = buf_take(&keys.b, NULL);
	*out = q;
	q = NULL;
	rc = 0;
fail:
	buf_free(&where_filter.b);
	buf_free(&where_cursor.b);
	buf_free(&where.b);
	buf_free(&order.b);
	buf_free(&keys.b);
	list_query_free(&q);
	return rc;
}

void list_query_free(list_query **qp)
{
	list_query *q = qp ? *qp : NULL;
	if (!q)
		return;
	assert(q->magic == LIST_QUERY_MAGIC);
	for (size_t i = 0; i < q->param_count; i++)
		value_clear(&q->params[i]);
	free(q->where);
	free(q->order);
	free(q->keys);
	q->magic = 0;
	free(q);
	*qp = NULL;
}

const char *list_query_where(const list_query *q)
{
	assert(q->magic == LIST_QUERY_MAGIC);
	return q->where;
}

const char *list_query_order(const list_query *q)
{
	assert(q->magic == LIST_QUERY_MAGIC);
	return q->order;
}

const char *list_query_keys(const list_query *q)
{
	assert(q->magic == LIST_QUERY_MAGIC);
	return q->keys;
}

size_t list_query_key_count(const list_query *q)
{
	assert(q->magic == LIST_QUERY_MAGIC);
	return q->term_count - 1;
}

/* Bind every parameter in order, text copied (SQLITE_TRANSIENT) so that q may
 * be freed before st. On failure some parameters may be bound; ERR_NOMEM or
 * ERR_DB (e.g. st has fewer parameters). */
int list_query_bind(const list_query *q, sqlite3_stmt *st, int first)
{
	int index = first;
	assert(q->magic == LIST_QUERY_MAGIC);
	for (size_t i = 0; i < q->param_count; i++, index++) {
		const query_value *v = &q->params[i];
		int rc;
		if (v->type == VALUE_INT)
			rc = sqlite3_bind_int64(st, index, v->i);
		else if (v->type == VALUE_REAL)
			rc = sqlite3_bind_double(st, index, v->d);
		else
			rc = sqlite3_bind_text(st, index, v->text, (int)v->len, SQLITE_TRANSIENT);
		if (rc != SQLITE_OK)
			return rc == SQLITE_NOMEM ? ERR_NOMEM : ERR_DB;
	}
	return index;
}

/* Encode the key values vals[0..keys) and the id vals[keys] as a cursor. On
 * failure *cursor is NULL and the result is ERR_INVAL (the id is not text),
 * ERR_UNSUPPORTED (a BLOB key), ERR_LIMIT (the cursor would be longer than
 * compile accepts: a text key of more than about 3000 bytes) or ERR_NOMEM. */
int list_query_cursor_values(const list_query *q, sqlite3_value *const *vals, char **cursor)
{
	size_t keys = list_query_key_count(q);
	json_t *array = NULL, *j;
	char *json = NULL;
	buf b;
	int rc = ERR_NOMEM;

	*cursor = NULL;
	if (sqlite3_value_type(vals[keys]) != SQLITE_TEXT)
		return ERR_INVAL;
	buf_init(&b, QUERY_MAX_CURSOR);
	array = json_array();
	if (!array || json_array_append_new(array, json_string(q->fingerprint)))
		goto fail;
	for (size_t i = 0; i <= keys; i++) {
		j = cursor_value_encode(vals[i], &rc);
		if (!j)
			goto fail;
		if (json_array_append_new(array, j)) {
			rc = ERR_NOMEM;
			goto fail;
		}
	}
	rc = ERR_NOMEM;
	json = json_dumps(array, JSON_COMPACT);
	if (!json)
		goto fail;
	rc = base64url_encode(&b, (const unsigned char *)json, strlen(json));
	if (rc)
		goto fail;
	*cursor = buf_take(&b, NULL);
	rc = 0;
fail:
	free(json);
	json_decref(array);
	buf_free(&b);
	return rc;
}

/* The same for the row st is on; ERR_INVAL also for columns out of range. */
int list_query_cursor(const list_query *q, sqlite3_stmt *st, int first_key_col, int id_col,
                      char **cursor)
{
	size_t keys = list_query_key_count(q);
	int columns = sqlite3_column_count(st);
	sqlite3_value *vals[QUERY_MAX_TERMS] = {0};
	int rc = ERR_NOMEM;

	*cursor = NULL;
	if (id_col < 0 || id_col >= columns || first_key_col < 0 ||
	    (keys && (size_t)first_key_col + keys > (size_t)columns))
		return ERR_INVAL;
	for (size_t i = 0; i <= keys; i++) {
		/* protected copies: the sqlite3_value_*() readers need them */
		vals[i] = sqlite3_value_dup(sqlite3_column_value(st, i < keys ? first_key_col + (int)i : id_col));
		if (!vals[i])
			goto fail;
	}
	rc = list_query_cursor_values(q, vals, cursor);
fail:
	for (size_t i = 0; i <= keys; i++)
		sqlite3_value_free(vals[i]);
	return rc;
}
