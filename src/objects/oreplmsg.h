/*
 * oreplmsg.h - the object replication messages as pure functions (no I/O,
 * no database): what the receiver (orepl.c) parses from the other region's
 * POSTs on the link, so that the parsing can be fuzzed on its own
 * (fuzz/fuzz_orepl.c). docs/OBJECTS.md "Replication" describes the routes.
 *
 *   POST /internal/v1/objects/segment?xfer=X&part=P&off=O&size=S   raw bytes
 *   POST /internal/v1/objects/version   JSON, or a framed body:
 *        u32 big-endian length L | L bytes of JSON | the final segment
 *   POST /internal/v1/objects/remove    JSON (a tombstone)
 *   POST /internal/v1/objects/bucket    JSON
 *
 * Every field is bounded by the size of what it is parsed into (meta.h);
 * the bytes are untrusted (a region's certificate is required to send
 * them, but a bug or a compromised peer must not corrupt memory here).
 * Failures: ERR_PARSE with *why a static message for the 400 answer; the
 * output is then unspecified (the caller drops it).
 */
#ifndef TANDEM_OBJECTS_OREPLMSG_H
#define TANDEM_OBJECTS_OREPLMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objects/hlc.h"
#include "objects/meta.h"

/* A version body split into its JSON and its inline data. */
typedef struct oreplmsg_frame {
	const char *json;
	size_t json_len;
	const char *data; /* the final segment; NULL, data_len 0 when none */
	size_t data_len;
} oreplmsg_frame;

/* Split a version's body (pointers into body; body may be NULL when len is
 * 0): a body starting with '{' is JSON alone, anything else of 4 bytes or
 * more is framed. 0 or ERR_PARSE (the length is past the body's end). */
int oreplmsg_split(const char *body, size_t len, oreplmsg_frame *out, const char **why);

/* A version (or, remove true, a tombstone) message. */
typedef struct oreplmsg_version {
	meta_object ob;   /* bucket, key, version_id, hlc, origin; for a version
			   * also owner .. parts, acl, delete_marker */
	char xfer[33];    /* the transfer holding its data (a version with data) */
	bool has_seg;     /* its final segment came inline: */
	long long seg_part, seg_off, seg_size;
	bool has_tomb;    /* a tombstone of the same (key, version id) to apply first */
	char tomb_hlc[HLC_STR_LEN + 1];
	char tomb_origin[32];
	bool has_decide;  /* a conditional write for the records' primary */
	meta_cond cond;
	char cond_etag[80];
} oreplmsg_version;

/* Parse a version (remove false) or tombstone (remove true) message's JSON;
 * data_len: the inline bytes that came with it (they need "seg" and must
 * end their part). 0 or ERR_PARSE. */
int oreplmsg_parse_version(const char *json, size_t len, bool remove, size_t data_len, oreplmsg_version *out,
			   const char **why);

/* A bucket message: its configuration, or that it is gone (*removed).
 * *cors: a malloc'd copy of its CORS XML (NULL: none), the caller's to
 * free, also set to NULL on failure. 0, ERR_PARSE, ERR_NOMEM. */
int oreplmsg_parse_bucket(const char *json, size_t len, meta_bucket *b, char **cors, bool *removed,
			  const char **why);

/* The segment route's query (the request target after '?' or whole):
 * xfer (32 lowercase hex), part 0..9999, off and size >= 0. 0 or ERR_PARSE. */
int oreplmsg_parse_segment(const char *target, char xfer[33], long long *part, long long *off, long long *size,
			   const char **why);

#endif
