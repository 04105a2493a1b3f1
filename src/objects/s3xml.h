/*
 * s3xml.h - the XML of the S3 API: answers built with escaping, and request
 * bodies (DeleteObjects, CreateBucketConfiguration, CompleteMultipartUpload)
 * parsed with libexpat under hard limits.
 *
 * Parsing refuses, as MalformedXML: a body over its size bound, nesting
 * deeper than S3XML_MAX_DEPTH, an element's text over its bound, a DOCTYPE
 * (and with it every entity declaration: no entity expansion, no external
 * entity, so "billion laughs" and XXE cannot start), a root element other
 * than the one expected, and anything that is not well-formed XML.
 * Namespaces are not interpreted: S3's xmlns attribute is accepted and
 * ignored, as S3 does.
 */
#ifndef TANDEM_OBJECTS_S3XML_H
#define TANDEM_OBJECTS_S3XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define S3XML_MAX_DEPTH 8
#define S3XML_MAX_TEXT 4096           /* one element's character data */
#define S3XML_MAX_BODY (2 * 1024 * 1024) /* DeleteObjects of 1000 keys of 1 KiB fits */
#define S3XML_MAX_OBJECTS 1000        /* DeleteObjects (S3's bound) */
#define S3XML_MAX_PARTS 10000         /* CompleteMultipartUpload (S3's bound) */

/* --- writing --- */

/* Append s (len bytes) escaped for XML text or attribute values: & < > " '
 * as entities; tab, LF, CR and other control characters as numeric
 * references. 0 or ERR_LIMIT (the buffer's maximum; b holds a prefix). */
int s3xml_escape(buf *b, const char *s, size_t len);
/* Append <tag>escaped text</tag>. 0 or ERR_LIMIT. */
int s3xml_elem(buf *b, const char *tag, const char *text);
int s3xml_elem_n(buf *b, const char *tag, const char *text, size_t len);

/* --- parsing --- */

typedef struct s3xml_delete_entry {
	char *key;        /* NUL-terminated, owned by the s3xml_delete */
	size_t key_len;
	char *version_id; /* NULL when absent */
} s3xml_delete_entry;

typedef struct s3xml_delete {
	bool quiet;
	size_t count;
	s3xml_delete_entry entries[]; /* count of them */
} s3xml_delete;

/* <Delete><Quiet>true</Quiet><Object><Key>k</Key><VersionId>v</VersionId>
 * </Object>...</Delete>: 1..S3XML_MAX_OBJECTS objects, each with a Key.
 * 0 (*out to free with s3xml_delete_free), ERR_PARSE (malformed: err says
 * why), ERR_LIMIT (too many objects, too large), ERR_NOMEM. */
int s3xml_parse_delete(const char *body, size_t len, s3xml_delete **out, char *err, size_t errcap);
void s3xml_delete_free(s3xml_delete **d);

/* <CreateBucketConfiguration><LocationConstraint>x</LocationConstraint>
 * </CreateBucketConfiguration>: location gets x ("" when absent). An empty
 * body is valid (no configuration). 0, ERR_PARSE, ERR_LIMIT. */
int s3xml_parse_create_bucket(const char *body, size_t len, char *location, size_t cap, char *err,
			      size_t errcap);

typedef struct s3xml_part {
	int number;    /* 1..10000 */
	char etag[80]; /* as sent, quotes removed */
} s3xml_part;

typedef struct s3xml_complete {
	size_t count;
	s3xml_part parts[];
} s3xml_complete;

/* <CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"..."</ETag>
 * </Part>...</CompleteMultipartUpload>: 1..S3XML_MAX_PARTS parts, in the
 * order given (the caller checks the order: InvalidPartOrder). 0, ERR_PARSE,
 * ERR_LIMIT, ERR_NOMEM. */
int s3xml_parse_complete(const char *body, size_t len, s3xml_complete **out, char *err, size_t errcap);
void s3xml_complete_free(s3xml_complete **c);

typedef enum s3xml_versioning_status {
	S3XML_VERSIONING_NONE = 0, /* no Status element */
	S3XML_VERSIONING_ENABLED,
	S3XML_VERSIONING_SUSPENDED,
} s3xml_versioning_status;

typedef enum s3xml_mfa_delete {
	S3XML_MFA_ABSENT = 0,
	S3XML_MFA_DISABLED,
	S3XML_MFA_ENABLED,
} s3xml_mfa_delete;

/* <VersioningConfiguration><Status>Enabled|Suspended</Status>
 * <MfaDelete>Enabled|Disabled</MfaDelete></VersioningConfiguration>: any
 * other value, or an element repeated, is ERR_PARSE. 0, ERR_PARSE,
 * ERR_LIMIT. */
int s3xml_parse_versioning(const char *body, size_t len, s3xml_versioning_status *status, s3xml_mfa_delete *mfa,
			   char *err, size_t errcap);

struct s3cors;

/* <CORSConfiguration><CORSRule><ID>..</ID><AllowedOrigin>..</AllowedOrigin>
 * <AllowedMethod>..</AllowedMethod><AllowedHeader>..</AllowedHeader>
 * <ExposeHeader>..</ExposeHeader><MaxAgeSeconds>..</MaxAgeSeconds>
 * </CORSRule>...</CORSConfiguration> (s3cors.h): 1..S3CORS_MAX_RULES rules,
 * each with at least one AllowedOrigin and AllowedMethod. 0 (*out to free
 * with s3cors_free), ERR_PARSE (malformed, or a rule lacking a part),
 * ERR_INVAL (well-formed but not allowed: a method S3 does not know, more
 * than one '*' in an origin or header; err says which: InvalidRequest),
 * ERR_LIMIT (too many rules or values, too long), ERR_NOMEM. */
int s3xml_parse_cors(const char *body, size_t len, struct s3cors **out, char *err, size_t errcap);

#endif
