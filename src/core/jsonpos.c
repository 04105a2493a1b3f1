/*
 * jsonpos.c - JSON parse errors in words (see jsonpos.h).
 *
 * jansson reports how many bytes it had consumed when it stopped: the end of
 * the token it was reading (for a string with a bad byte inside, just past
 * its opening quote). A small lexer of our own walks the text to the token
 * holding the last consumed byte; the message then describes that token and
 * points at its first byte (or at the bad byte inside a string).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/jsonpos.h"

#define JSONPOS_SHOW_MAX 20 /* longest token quoted back in a message */

static bool jsonpos_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Characters of a bare token (number or literal) as jansson lexes them. */
static bool jsonpos_bare(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
	       c == '-' || c == '.';
}

/* Line and column (characters, from 1) of byte offset at. */
static void jsonpos_where(const char *text, size_t at, int *line, int *column)
{
	*line = 1;
	*column = 1;
	for (size_t i = 0; i < at; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*column = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) { /* not a UTF-8 continuation */
			(*column)++;
		}
	}
}

/* Bounds [start, end) of the token holding byte offset at (at < len). */
static void jsonpos_token(const char *text, size_t len, size_t at, size_t *start, size_t *end)
{
	size_t i = 0, tok = 0;
	while (i < len) {
		while (i < len && jsonpos_space(text[i]))
			i++;
		if (i >= len)
			break;
		tok = i;
		char c = text[i];
		if (c == '"') {
			for (i++; i < len && text[i] != '"'; i++)
				if (text[i] == '\\' && i + 1 < len)
					i++;
			if (i < len)
				i++; /* the closing quote */
		} else if (jsonpos_bare(c)) {
			while (i < len && jsonpos_bare(text[i]))
				i++;
		} else {
			i++;
			while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80)
				i++; /* the rest of one UTF-8 character */
		}
		if (at < i)
			break;
	}
	*start = tok;
	*end = i > tok ? i : tok;
}

/* Is [s, s+n) a JSON number (RFC 8259 section 6)? */
static bool jsonpos_number(const char *s, size_t n)
{
	size_t i = 0;
	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0')
		i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9')
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return false;
	if (i < n && s[i] == '.') {
		size_t d = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return false;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t d = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return false;
	}
	return i == n;
}

/* Offset of the first invalid UTF-8 sequence at or after from; len if none. */
static size_t jsonpos_bad_utf8(const char *text, size_t len, size_t from)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = from;
	while (i < len) {
		unsigned char c = s[i];
		size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
		if (n == 0 || (n == 2 && c < 0xC2) || (n == 4 && c > 0xF4) || i + n > len)
			return i;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
		/* overlong 3- and 4-byte forms, surrogates, past U+10FFFF */
		if ((n == 3 && c == 0xE0 && s[i + 1] < 0xA0) || (n == 3 && c == 0xED && s[i + 1] >= 0xA0) ||
		    (n == 4 && c == 0xF0 && s[i + 1] < 0x90) || (n == 4 && c == 0xF4 && s[i + 1] >= 0x90))
			return i;
		i += n;
	}
	return len;
}

/* Inside the string token [start, end): the first unescaped control byte or
 * bad escape; its offset and the problem, or false when there is none. */
static bool jsonpos_string_fault(const char *text, size_t start, size_t end, size_t *at, const char **what)
{
	for (size_t i = start + 1; i < end; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c < 0x20) {
			*at = i;
			*what = "unescaped control character in a string (write it as \\u00XX)";
			return true;
		}
		if (c != '\\')
			continue;
		char n = i + 1 < end ? text[i + 1] : '\0';
		bool ok = n && strchr("\"\\/bfnrtu", n);
		if (ok && n == 'u')
			for (int k = 2; k < 6; k++)
				if (i + (size_t)k >= end || !strchr("0123456789abcdefABCDEF", text[i + (size_t)k]))
					ok = false;
		if (!ok) {
			*at = i;
			*what = "invalid escape in a string";
			return true;
		}
		i++;
	}
	return false;
}

/* The token quoted back, printable ASCII only, shortened. */
static void jsonpos_show(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n && i < JSONPOS_SHOW_MAX && o + 1 < cap; i++)
		out[o++] = s[i] >= ' ' && s[i] < 0x7f ? s[i] : '?';
	out[o] = '\0';
	if (n > JSONPOS_SHOW_MAX && o + 4 < cap)
		strcpy(out + o, "...");
}

int jsonpos_describe(const char *text, size_t len, const json_error_t *e, char *out, size_t cap)
{
	enum json_error_code code = json_error_code(e);
	if (code == json_error_out_of_memory) {
		snprintf(out, cap, "the JSON body could not be parsed: out of memory");
		return ERR_NOMEM;
	}
	size_t blank = 0;
	while (blank < len && jsonpos_space(text[blank]))
		blank++;
	if (blank == len) {
		snprintf(out, cap, "malformed JSON: the body is empty");
		return 0;
	}
	size_t consumed = e->position > 0 ? (size_t)e->position : 0;
	if (consumed > len)
		consumed = len;
	size_t start = 0, end = 0;
	jsonpos_token(text, len, consumed ? consumed - 1 : 0, &start, &end);
	size_t at = start;
	char shown[JSONPOS_SHOW_MAX + 8];
	char what[160];
	const char *fault;
	switch (code) {
	case json_error_premature_end_of_input:
		at = len;
		snprintf(what, sizeof what, "%s",
			 text[start] == '"' && (end - start < 2 || text[end - 1] != '"' || text[end - 2] == '\\')
				 ? "the body ends inside a string"
				 : "the body ends before the JSON value is complete");
		break;
	case json_error_end_of_input_expected:
		snprintf(what, sizeof what, "unexpected text after the JSON value");
		break;
	case json_error_duplicate_key:
		snprintf(what, sizeof what, "duplicate key in an object");
		break;
	case json_error_numeric_overflow:
		jsonpos_show(text + start, end - start, shown, sizeof shown);
		snprintf(what, sizeof what, "number out of range: %s", shown);
		break;
	case json_error_stack_overflow:
		at = consumed ? consumed - 1 : 0;
		snprintf(what, sizeof what, "arrays and objects nested too deeply");
		break;
	case json_error_invalid_utf8:
		at = jsonpos_bad_utf8(text, len, 0);
		if (at == len)
			at = start;
		snprintf(what, sizeof what, "invalid UTF-8 (byte 0x%02x)", (unsigned char)text[at]);
		break;
	case json_error_null_character:
		snprintf(what, sizeof what, "\\u0000 is not allowed in a string");
		break;
	default: /* json_error_invalid_syntax and anything newer */
		if (text[start] == '"') {
			if (jsonpos_string_fault(text, start, end, &at, &fault))
				snprintf(what, sizeof what, "%s", fault);
			else
				snprintf(what, sizeof what, "unexpected string (is a ':' or ',' missing?)");
		} else if (jsonpos_bare(text[start])) {
			size_t n = end - start;
			jsonpos_show(text + start, n, shown, sizeof shown);
			bool literal = (n == 4 && (memcmp(text + start, "true", 4) == 0 ||
						   memcmp(text + start, "null", 4) == 0)) ||
				       (n == 5 && memcmp(text + start, "false", 5) == 0);
			if (literal || jsonpos_number(text + start, n))
				snprintf(what, sizeof what, "unexpected value %s (is a ':' or ',' missing?)", shown);
			else if ((text[start] >= '0' && text[start] <= '9') || text[start] == '-')
				snprintf(what, sizeof what, "invalid number %s", shown);
			else
				snprintf(what, sizeof what,
					 "invalid value %s (strings need double quotes; literals are true, false, null)",
					 shown);
		} else if (strchr("{}[]:,", text[start])) {
			snprintf(what, sizeof what, "unexpected '%c'", text[start]);
		} else if ((unsigned char)text[start] >= ' ' && (unsigned char)text[start] < 0x7f) {
			snprintf(what, sizeof what, "unexpected character '%c'", text[start]);
		} else {
			snprintf(what, sizeof what, "unexpected character (byte 0x%02x)", (unsigned char)text[start]);
		}
		break;
	}
	int line, column;
	jsonpos_where(text, at, &line, &column);
	snprintf(out, cap, "malformed JSON at line %d, column %d: %s", line, column, what);
	return 0;
}
