/*
 * formdata.h - the part of multipart/form-data (RFC 7578) the files API
 * reads: the boundary of a Content-Type, and the one file part of a body
 * already received whole (bounded by the route's body limit).
 *
 * A file part is a part whose Content-Disposition is form-data with a
 * filename parameter; other fields (name="caption") are skipped. The body
 * is never copied: the part's data points into it. Everything is bounded:
 * at most FORMDATA_MAX_PARTS parts, FORMDATA_HEADERS_MAX bytes of headers
 * per part; a preamble before the first delimiter and an epilogue after
 * the last are ignored, as RFC 2046 says.
 *
 * Pure functions, no allocation, any thread; fuzzed by fuzz/fuzz_formdata.c.
 */
#ifndef TANDEM_HTTP_FORMDATA_H
#define TANDEM_HTTP_FORMDATA_H

#include <stddef.h>

#define FORMDATA_BOUNDARY_MAX 70  /* RFC 2046 */
#define FORMDATA_MAX_PARTS 16
#define FORMDATA_HEADERS_MAX 8192 /* one part's header lines */
#define FORMDATA_VALUE_MAX 256    /* filename, content type (longer: ERR_LIMIT) */

typedef struct formdata_file {
	const char *data; /* into the body */
	size_t len;
	char filename[FORMDATA_VALUE_MAX];     /* as sent (quoted-string unescaped); never "" */
	char content_type[FORMDATA_VALUE_MAX]; /* the part's Content-Type, "" when it has none */
} formdata_file;

/*
 * The boundary parameter of a Content-Type value (len bytes, not
 * NUL-terminated) whose media type is multipart/form-data. 0 with out set
 * (NUL-terminated; cap >= FORMDATA_BOUNDARY_MAX + 1); ERR_NOTFOUND when the
 * media type is another one; ERR_INVAL when it is multipart/form-data
 * without a valid boundary (1..70 chars, quoted or not). out is "" on error.
 */
int formdata_boundary(const char *content_type, size_t len, char *out, size_t cap);

/*
 * Find the single file part of body. 0 with *out filled; ERR_PARSE when the
 * body is not well-formed multipart (no delimiter, no closing delimiter, a
 * part without its blank line, a header line without a colon, a part with
 * no form-data Content-Disposition); ERR_LIMIT over FORMDATA_MAX_PARTS parts,
 * FORMDATA_HEADERS_MAX bytes of part headers or FORMDATA_VALUE_MAX of a
 * value; ERR_NOTFOUND when no part is a file; ERR_CONFLICT when two are.
 * *out is zeroed on error.
 */
int formdata_find_file(const char *body, size_t len, const char *boundary, formdata_file *out);

#endif
