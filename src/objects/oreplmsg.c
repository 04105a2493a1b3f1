/*
 * oreplmsg.c - parsing of the object replication messages; see oreplmsg.h.
 * jansson parses the JSON (bounded by the link's body limit); every string
 * is checked against the size of its field before it is copied.
 */
#include "objects/oreplmsg.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"

static int bad(const char **why, const char *msg)
{
	*why = msg;
	return ERR_PARSE;
}

/* The string member k of o, at most max bytes, or NULL. */
static const char *jstr(json_t *o, const char *k, size_t max)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_string(v) || json_string_length(v) > max)
		return NULL;
	return json_string_value(v);
}

/* Hex text h of at most max bytes into out, NUL-terminated (out holds
 * max + 1); its length, or -1 (h NULL or not hex). */
static long unhex(const char *h, char *out, size_t max)
{
	if (!h)
		return -1;
	long n = util_unhex(h, out, max);
	if (n >= 0)
		out[n] = '\0';
	return n;
}

static bool valid_hlc(const char *s)
{
	hlc_ts t;
	return s && hlc_decode(s, strlen(s), &t) == 0;
}

static bool is_hex_id(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int oreplmsg_split(const char *body, size_t len, oreplmsg_frame *out, const char **why)
{
	*out = (oreplmsg_frame){.json = body ? body : "", .json_len = body ? len : 0};
	if (!body || len < 4 || body[0] == '{')
		return 0;
	const unsigned char *u = (const unsigned char *)body;
	size_t jlen = (size_t)u[0] << 24 | (size_t)u[1] << 16 | (size_t)u[2] << 8 | u[3];
	if (jlen > len - 4)
		return bad(why, "the version's JSON is longer than the body");
	out->json = body + 4;
	out->json_len = jlen;
	out->data = body + 4 + jlen;
	out->data_len = len - 4 - jlen;
	return 0;
}

/* The fields of a version with data or a delete marker. */
static int parse_object(json_t *j, size_t data_len, oreplmsg_version *m, const char **why)
{
	meta_object *o = &m->ob;
	const char *owner = jstr(j, "owner", sizeof o->owner - 1), *etag = jstr(j, "etag", sizeof o->etag - 1),
		   *ct = jstr(j, "content_type", sizeof o->content_type - 1), *sha = jstr(j, "sha256", 64),
		   *manifest = jstr(j, "manifest", META_UPLOAD_ID_LEN), *xid = jstr(j, "xfer", 32);
	json_t *size = json_object_get(j, "size"), *parts = json_object_get(j, "parts");
	long hlen = unhex(jstr(j, "headers", 2 * (META_HEADERS_MAX - 1)), o->headers, META_HEADERS_MAX - 1);
	if (!owner || !etag || !ct || !sha || !manifest || !xid || !json_is_integer(size) ||
	    json_integer_value(size) < 0 || !json_is_integer(parts) || json_integer_value(parts) < 0 ||
	    json_integer_value(parts) > 10000 || hlen < 0)
		return bad(why, "a version's fields are missing or malformed");
	snprintf(o->owner, sizeof o->owner, "%s", owner);
	snprintf(o->etag, sizeof o->etag, "%s", etag);
	snprintf(o->content_type, sizeof o->content_type, "%s", ct);
	snprintf(o->sha256, sizeof o->sha256, "%s", sha);
	snprintf(o->manifest, sizeof o->manifest, "%s", manifest);
	snprintf(m->xfer, sizeof m->xfer, "%s", xid);
	o->size = (uint64_t)json_integer_value(size);
	o->parts = (uint32_t)json_integer_value(parts);
	o->mtime_ms = json_integer_value(json_object_get(j, "mtime_ms"));
	o->crc32 = (uint32_t)json_integer_value(json_object_get(j, "crc32"));
	o->crc32c = (uint32_t)json_integer_value(json_object_get(j, "crc32c"));
	o->acl = json_integer_value(json_object_get(j, "acl")) == META_ACL_PUBLIC_READ ? META_ACL_PUBLIC_READ
											: META_ACL_PRIVATE;
	o->delete_marker = json_is_true(json_object_get(j, "delete_marker"));

	json_t *tomb = json_object_get(j, "tomb");
	if (tomb) {
		const char *th = jstr(tomb, "hlc", HLC_STR_LEN), *tor = jstr(tomb, "origin", sizeof m->tomb_origin - 1);
		if (!valid_hlc(th) || !tor || !tor[0] || json_object_get(j, "decide"))
			return bad(why, "tomb needs hlc and origin (and no decide)");
		m->has_tomb = true;
		snprintf(m->tomb_hlc, sizeof m->tomb_hlc, "%s", th);
		snprintf(m->tomb_origin, sizeof m->tomb_origin, "%s", tor);
	}
	json_t *dec = json_object_get(j, "decide");
	if (dec) {
		const char *c = jstr(dec, "cond", 8), *ce = jstr(dec, "etag", sizeof m->cond_etag - 1);
		if (!c || !ce || (strcmp(c, "absent") != 0 && strcmp(c, "etag") != 0) || o->delete_marker)
			return bad(why, "decide needs cond (absent or etag) and etag");
		m->has_decide = true;
		m->cond = strcmp(c, "absent") == 0 ? META_COND_ABSENT : META_COND_ETAG;
		snprintf(m->cond_etag, sizeof m->cond_etag, "%s", ce);
	}
	json_t *seg = json_object_get(j, "seg");
	if (data_len && !seg)
		return bad(why, "data after the version's JSON without seg");
	if (o->delete_marker) {
		if (o->parts)
			return bad(why, "a delete marker has no parts");
		if (seg)
			return bad(why, "a delete marker has no data");
		return 0;
	}
	if (seg) {
		/* the transfer's final segment came with the version */
		json_t *sp = json_object_get(seg, "part"), *so = json_object_get(seg, "off"),
		       *ss = json_object_get(seg, "size");
		if (!json_is_integer(sp) || !json_is_integer(so) || !json_is_integer(ss) || json_integer_value(sp) < 0 ||
		    json_integer_value(sp) > 9999 || json_integer_value(so) < 0 || json_integer_value(ss) < 0 ||
		    !is_hex_id(xid, 32) ||
		    (uint64_t)json_integer_value(so) + data_len != (uint64_t)json_integer_value(ss))
			return bad(why, "seg needs part, off and size, and ends its part");
		m->has_seg = true;
		m->seg_part = json_integer_value(sp);
		m->seg_off = json_integer_value(so);
		m->seg_size = json_integer_value(ss);
	}
	return 0;
}

int oreplmsg_parse_version(const char *json, size_t len, bool remove, size_t data_len, oreplmsg_version *m,
			   const char **why)
{
	memset(m, 0, sizeof *m);
	json_t *j = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return bad(why, "the body must be a JSON object");
	}
	meta_object *o = &m->ob;
	int rc = 0;
	const char *bucket = jstr(j, "bucket", META_BUCKET_MAX), *vid = jstr(j, "version_id", META_VERSION_ID_LEN),
		   *ts = jstr(j, "hlc", HLC_STR_LEN), *origin = jstr(j, "origin", sizeof o->origin - 1);
	long klen = unhex(jstr(j, "key", 2 * META_KEY_MAX), o->key, META_KEY_MAX);
	if (!bucket || !bucket[0] || !vid || !meta_version_id_valid(vid) || !valid_hlc(ts) || !origin || !origin[0] ||
	    klen <= 0) {
		rc = bad(why, "a version needs bucket, key, version_id, hlc and origin");
		goto done;
	}
	snprintf(o->bucket, sizeof o->bucket, "%s", bucket);
	o->key_len = (size_t)klen;
	snprintf(o->version_id, sizeof o->version_id, "%s", vid);
	snprintf(o->hlc, sizeof o->hlc, "%s", ts);
	snprintf(o->origin, sizeof o->origin, "%s", origin);
	if (remove && data_len)
		rc = bad(why, "a tombstone has no data");
	else if (!remove)
		rc = parse_object(j, data_len, m, why);
done:
	json_decref(j);
	return rc;
}

int oreplmsg_parse_bucket(const char *json, size_t len, meta_bucket *b, char **cors, bool *removed,
			  const char **why)
{
	memset(b, 0, sizeof *b);
	*cors = NULL;
	*removed = false;
	json_t *j = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES, NULL);
	int rc = 0;
	if (!json_is_object(j)) {
		rc = bad(why, "the body must be a JSON object");
		goto done;
	}
	const char *name = jstr(j, "name", META_BUCKET_MAX);
	if (!name || !name[0]) {
		rc = bad(why, "a bucket needs its name");
		goto done;
	}
	snprintf(b->name, sizeof b->name, "%s", name);
	*removed = json_is_true(json_object_get(j, "removed"));
	if (*removed)
		goto done;
	const char *owner = jstr(j, "owner", sizeof b->owner - 1), *region = jstr(j, "region", sizeof b->region - 1);
	json_t *c = json_object_get(j, "cors");
	if (!owner || !region || (c && (!json_is_string(c) || json_string_length(c) > META_CORS_MAX))) {
		rc = bad(why, "a bucket's fields are missing or malformed");
		goto done;
	}
	/* the stamps (meta_bucket); absent (a sender before them): "", the
	 * oldest */
	static const char *const names[] = {"versioning_stamp", "acl_stamp", "cors_stamp"};
	char *stamps[] = {b->versioning_stamp, b->acl_stamp, b->cors_stamp};
	for (size_t i = 0; i < 3; i++) {
		json_t *v = json_object_get(j, names[i]);
		const char *s = v ? jstr(j, names[i], META_STAMP_LEN) : "";
		hlc_ts ts;
		if (!s || (v && strlen(s) != json_string_length(v)) || !meta_stamp_valid(s, &ts)) {
			rc = bad(why, "a bucket's stamp is malformed");
			goto done;
		}
		snprintf(stamps[i], META_STAMP_LEN + 1, "%s", s);
	}
	snprintf(b->owner, sizeof b->owner, "%s", owner);
	snprintf(b->region, sizeof b->region, "%s", region);
	b->created_ms = json_integer_value(json_object_get(j, "created_ms"));
	json_int_t v = json_integer_value(json_object_get(j, "versioning"));
	b->versioning = v == META_VERSIONING_ENABLED ? META_VERSIONING_ENABLED
			: v == META_VERSIONING_SUSPENDED ? META_VERSIONING_SUSPENDED : META_VERSIONING_OFF;
	b->acl = json_integer_value(json_object_get(j, "acl")) == META_ACL_PUBLIC_READ ? META_ACL_PUBLIC_READ
											 : META_ACL_PRIVATE;
	if (c && !(*cors = strdup(json_string_value(c)))) {
		*why = "out of memory";
		rc = ERR_NOMEM;
	}
done:
	json_decref(j);
	return rc;
}

int oreplmsg_parse_segment(const char *target, char xfer[33], long long *part, long long *off, long long *size,
			   const char **why)
{
	char id[40], part_s[24], off_s[24], size_s[24];
	if (!util_query_param(target, "xfer", id, sizeof id) || !is_hex_id(id, 32) ||
	    !util_query_param(target, "part", part_s, sizeof part_s) || util_parse_int(part_s, 0, 9999, part) != 0 ||
	    !util_query_param(target, "off", off_s, sizeof off_s) || util_parse_int(off_s, 0, INT64_MAX, off) != 0 ||
	    !util_query_param(target, "size", size_s, sizeof size_s) ||
	    util_parse_int(size_s, 0, INT64_MAX, size) != 0)
		return bad(why, "a segment needs xfer (32 hex), part, off and size");
	memcpy(xfer, id, 33);
	return 0;
}
