/*
 * jsonpos.h - say in words where and why a JSON text does not parse, for the
 * people who send it ("malformed JSON at line 1, column 7: unexpected '}'").
 *
 * jansson's own error text names its internals ("'[' or '{' expected near
 * 'x'", "string or '}' expected", "JSON_ALLOW_NUL") and places the error at
 * the end of the token it was reading. Here the error's kind comes from
 * json_error_code() and its place from re-scanning the text: the line and
 * column (in characters, from 1) of the first byte of the offending token.
 */
#ifndef TANDEM_CORE_JSONPOS_H
#define TANDEM_CORE_JSONPOS_H

#include <stddef.h>

#include <jansson.h>

/*
 * Write the message for text[0, len) that jansson refused with *e into out
 * (always NUL-terminated, truncated to cap). Returns 0, or ERR_NOMEM when
 * jansson ran out of memory (not the sender's fault: out then says so).
 * Cannot fail otherwise; text may hold any bytes.
 */
int jsonpos_describe(const char *text, size_t len, const json_error_t *e, char *out, size_t cap);

#endif
