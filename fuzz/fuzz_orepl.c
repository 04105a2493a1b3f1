/*
 * fuzz_orepl.c - libFuzzer target for the object replication messages
 * (src/objects/oreplmsg.c): what a region parses from the other region's
 * POSTs on the link.
 *
 * The first byte picks the route: 0 a version body (the u32-length framing,
 * then the JSON), 1 a tombstone, 2 a bucket, 3 a segment's request target;
 * the rest is the body or target. Checked beyond "no crash":
 *  - a split frame lies within the input and its parts add up to it;
 *  - a parsed version has NUL-terminated fields within their buffers, a
 *    key of key_len bytes (1..META_KEY_MAX), a valid version id and HLC, and
 *    an inline segment only when the data ends its part;
 *  - a parsed bucket has a name; its CORS copy (if any) is freed;
 *  - a parsed segment query has a 32-hex transfer id and bounded numbers.
 */
#include "objects/oreplmsg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_orepl: %s\n", what);
		abort();
	}
}

static void check_str(const char *s, size_t cap, const char *what)
{
	check(memchr(s, '\0', cap) != NULL, what);
}

static void fuzz_version(const char *body, size_t len, int remove)
{
	oreplmsg_frame f;
	const char *why = NULL;
	size_t data_len = 0;
	const char *json = body;
	size_t jlen = len;
	if (!remove) {
		if (oreplmsg_split(body, len, &f, &why) != 0) {
			check(why != NULL, "split failed without a reason");
			return;
		}
		if (body)
			check(f.json >= body && f.json + f.json_len <= body + len, "frame JSON outside the body");
		else
			check(f.json_len == 0 && !f.data, "a frame out of nothing");
		if (f.data) {
			check(f.data == f.json + f.json_len && f.data + f.data_len == body + len, "frame data misplaced");
			check(4 + f.json_len + f.data_len == len, "frame parts do not add up");
		}
		json = f.json;
		jlen = f.json_len;
		data_len = f.data_len;
	}
	oreplmsg_version *m = malloc(sizeof *m);
	if (!m)
		return;
	int rc = oreplmsg_parse_version(json, jlen, remove, data_len, m, &why);
	if (rc != 0) {
		check(rc == ERR_PARSE && why != NULL, "a failure without ERR_PARSE and a reason");
		free(m);
		return;
	}
	const meta_object *o = &m->ob;
	check_str(o->bucket, sizeof o->bucket, "bucket");
	check(o->bucket[0] != '\0', "empty bucket");
	check(o->key_len >= 1 && o->key_len <= META_KEY_MAX, "key length");
	check(meta_version_id_valid(o->version_id), "version id");
	check_str(o->hlc, sizeof o->hlc, "hlc");
	check_str(o->origin, sizeof o->origin, "origin");
	check_str(o->owner, sizeof o->owner, "owner");
	check_str(o->etag, sizeof o->etag, "etag");
	check_str(o->content_type, sizeof o->content_type, "content type");
	check_str(o->sha256, sizeof o->sha256, "sha256");
	check_str(o->manifest, sizeof o->manifest, "manifest");
	check_str(o->headers, sizeof o->headers, "headers");
	check_str(m->xfer, sizeof m->xfer, "xfer");
	check_str(m->tomb_hlc, sizeof m->tomb_hlc, "tomb hlc");
	check_str(m->tomb_origin, sizeof m->tomb_origin, "tomb origin");
	check_str(m->cond_etag, sizeof m->cond_etag, "cond etag");
	check(o->parts <= 10000, "parts");
	if (remove)
		check(!m->has_seg && !m->has_tomb && !m->has_decide && data_len == 0, "a tombstone with extras");
	if (data_len)
		check(m->has_seg, "inline data without seg");
	if (m->has_seg) {
		check(!o->delete_marker, "a delete marker with data");
		check(m->seg_part >= 0 && m->seg_part <= 9999 && m->seg_off >= 0 && m->seg_size >= 0, "seg bounds");
		check((uint64_t)m->seg_off + data_len == (uint64_t)m->seg_size, "inline data does not end its part");
		check(strlen(m->xfer) == 32, "seg without a transfer id");
	}
	if (m->has_tomb)
		check(m->tomb_hlc[0] && m->tomb_origin[0] && !m->has_decide, "tomb fields");
	free(m);
}

static void fuzz_bucket(const char *body, size_t len)
{
	meta_bucket b;
	char *cors = NULL;
	bool removed = false;
	const char *why = NULL;
	int rc = oreplmsg_parse_bucket(body, len, &b, &cors, &removed, &why);
	if (rc != 0) {
		check(cors == NULL && why != NULL, "a failed bucket left CORS or no reason");
		return;
	}
	check_str(b.name, sizeof b.name, "bucket name");
	check(b.name[0] != '\0', "empty bucket name");
	check_str(b.owner, sizeof b.owner, "bucket owner");
	check_str(b.region, sizeof b.region, "bucket region");
	if (cors)
		check(strlen(cors) <= META_CORS_MAX, "CORS too long");
	free(cors);
}

static void fuzz_segment(const char *body, size_t len)
{
	char *target = malloc(len + 1);
	if (!target)
		return;
	memcpy(target, body, len);
	target[len] = '\0';
	char xfer[33];
	long long part, off, size;
	const char *why = NULL;
	if (oreplmsg_parse_segment(target, xfer, &part, &off, &size, &why) == 0) {
		check(strlen(xfer) == 32 && strspn(xfer, "0123456789abcdef") == 32, "xfer id");
		check(part >= 0 && part <= 9999 && off >= 0 && size >= 0, "segment numbers");
	} else {
		check(why != NULL, "segment failure without a reason");
	}
	free(target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* a copy of exactly the body: reads past it are caught by ASan */
	size_t len = size - 1;
	char *body = malloc(len ? len : 1);
	if (!body)
		return 0;
	memcpy(body, data + 1, len);
	switch (data[0] % 4) {
	case 0:
		fuzz_version(len ? body : NULL, len, 0);
		break;
	case 1:
		fuzz_version(body, len, 1);
		break;
	case 2:
		fuzz_bucket(body, len);
		break;
	default:
		fuzz_segment(body, len);
		break;
	}
	free(body);
	return 0;
}
