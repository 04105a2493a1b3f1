/*
 * s3cors.h - a bucket's CORS configuration (PutBucketCors) and the rule
 * matching S3 applies to a browser's preflight (OPTIONS) and to the actual
 * request: which rule, if any, allows an origin, a method and a list of
 * request headers. Kept pure (no I/O, no time) so that it is tested on its
 * own; the XML is parsed by s3xml_parse_cors (s3xml.h), which fills this.
 *
 * S3's rules: the first rule (in document order) that matches wins; a
 * rule matches when one AllowedOrigin matches the Origin (at most one '*'
 * wildcard, matching any run of characters, case-sensitive as S3), the
 * method is one of its AllowedMethods (GET PUT POST DELETE HEAD), and
 * every header the preflight names in Access-Control-Request-Headers
 * matches one AllowedHeader (case-insensitive, one '*' wildcard).
 *
 * Bounds: S3CORS_MAX_RULES rules, S3CORS_MAX_ITEMS values per list, each
 * value at most S3CORS_MAX_VALUE bytes; the parser refuses more.
 */
#ifndef TANDEM_OBJECTS_S3CORS_H
#define TANDEM_OBJECTS_S3CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

#define S3CORS_MAX_RULES 100 /* S3's bound */
#define S3CORS_MAX_ITEMS 64  /* values in one list of one rule */
#define S3CORS_MAX_VALUE 512 /* one origin, header or ID */
#define S3CORS_MAX_BODY 65536 /* S3's bound on a CORS configuration */

enum {
	S3CORS_GET = 1,
	S3CORS_PUT = 2,
	S3CORS_POST = 4,
	S3CORS_DELETE = 8,
	S3CORS_HEAD = 16,
};

typedef struct s3cors_list {
	size_t count;
	char *items[S3CORS_MAX_ITEMS]; /* NUL-terminated, owned */
} s3cors_list;

typedef struct s3cors_rule {
	char *id;      /* NULL when absent; owned */
	s3cors_list origins, headers, expose;
	unsigned methods; /* S3CORS_* bits, at least one */
	long max_age;     /* -1 when absent */
} s3cors_rule;

typedef struct s3cors {
	size_t count; /* 1..S3CORS_MAX_RULES */
	s3cors_rule rules[];
} s3cors;

/* An empty configuration (count 0) with room for S3CORS_MAX_RULES rules,
 * or NULL. */
s3cors *s3cors_new(void);
/* Free c and reset *c; no-op on NULL. */
void s3cors_free(s3cors **c);

/* The S3CORS_* bit of an HTTP method name (exact, upper case), 0 if none. */
unsigned s3cors_method(const char *name);

/* Does pattern (at most one '*', any run of bytes) match s? Case-folded
 * (ASCII) when nocase. */
bool s3cors_wildcard(const char *pattern, const char *s, bool nocase);

/* The first rule allowing origin, method (S3CORS_* bit) and every header
 * of request_headers (a comma-separated list, NULL or "" for none; at
 * most 64 names are looked at, more refuse), or NULL. */
const s3cors_rule *s3cors_match(const s3cors *c, const char *origin, unsigned method,
				const char *request_headers);

/* The configuration as S3 returns it (GetBucketCors: CORSConfiguration with
 * S3's namespace, each rule's elements in S3's order), appended to b. 0 or
 * ERR_LIMIT (b's maximum). */
int s3cors_to_xml(const s3cors *c, buf *b);

/* The Access-Control-* header lines ("Name: value\r\n") of an answer
 * allowed by rule r for origin, appended to b: Allow-Origin ("*" when the
 * rule's origin is exactly "*", else the origin, with Allow-Credentials
 * and Vary: Origin), Allow-Methods (the rule's), Expose-Headers and
 * Max-Age when the rule has them, and for a preflight Allow-Headers (the
 * headers requested). 0 or ERR_LIMIT. */
int s3cors_headers(const s3cors_rule *r, const char *origin, bool preflight, const char *request_headers,
		   buf *b);

#endif
