/*
 * fuzz_s3xml.c - libFuzzer target for src/objects/s3xml.c: the S3 server
 * parses every DeleteObjects, CreateBucketConfiguration (and, with
 * multipart, CompleteMultipartUpload; with versions and CORS,
 * VersioningConfiguration and CORSConfiguration) body a client sends
 * through it.
 *
 * Input: byte 0 picks the parser, the rest is the body. Always: the call
 * returns 0 or a negative code, a failure leaves no result behind and has a
 * message, a success stays within the limits (1..S3XML_MAX_OBJECTS objects
 * each with a key of the reported length, parts numbered 1..10000, a
 * location that fits its buffer, CORS rules within their bounds whose
 * XML parses back to as many rules), and escaping the parsed keys back gives
 * text without a raw '<' or '&'.
 */
#undef NDEBUG /* the checks below are the point of this file */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "objects/s3cors.h"
#include "objects/s3xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	char err[160] = "";
	switch (data[0] % 5) {
	case 0: {
		s3xml_delete *d = NULL;
		int rc = s3xml_parse_delete(body, len, &d, err, sizeof err);
		assert(rc <= 0);
		if (rc != 0) {
			assert(d == NULL && err[0]);
			break;
		}
		assert(d && d->count >= 1 && d->count <= S3XML_MAX_OBJECTS);
		buf b;
		buf_init(&b, 1 << 20);
		for (size_t i = 0; i < d->count; i++) {
			assert(d->entries[i].key && strlen(d->entries[i].key) <= d->entries[i].key_len);
			assert(d->entries[i].key_len <= S3XML_MAX_TEXT);
			buf_reset(&b);
			if (s3xml_escape(&b, d->entries[i].key, d->entries[i].key_len) == 0 && b.len)
				assert(!memchr(b.data, '<', b.len));
		}
		buf_free(&b);
		s3xml_delete_free(&d);
		assert(d == NULL);
		break;
	}
	case 1: {
		char loc[64];
		int rc = s3xml_parse_create_bucket(body, len, loc, sizeof loc, err, sizeof err);
		assert(rc <= 0);
		assert(strlen(loc) < sizeof loc);
		if (rc != 0)
			assert(loc[0] == '\0');
		break;
	}
	case 3: {
		s3xml_versioning_status st;
		s3xml_mfa_delete mfa;
		int rc = s3xml_parse_versioning(body, len, &st, &mfa, err, sizeof err);
		assert(rc <= 0);
		if (rc != 0)
			assert(st == S3XML_VERSIONING_NONE && mfa == S3XML_MFA_ABSENT && err[0]);
		break;
	}
	case 4: {
		s3cors *c = NULL;
		int rc = s3xml_parse_cors(body, len, &c, err, sizeof err);
		assert(rc <= 0);
		if (rc != 0) {
			assert(c == NULL && err[0]);
			break;
		}
		assert(c && c->count >= 1 && c->count <= S3CORS_MAX_RULES);
		for (size_t i = 0; i < c->count; i++) {
			const s3cors_rule *r = &c->rules[i];
			assert(r->origins.count >= 1 && r->origins.count <= S3CORS_MAX_ITEMS && r->methods);
			for (size_t k = 0; k < r->origins.count; k++)
				(void)s3cors_match(c, r->origins.items[k], r->methods & -r->methods, "content-type");
		}
		buf b;
		buf_init(&b, S3CORS_MAX_BODY); /* as PutBucketCors stores it: escaping may not fit */
		if (s3cors_to_xml(c, &b) == 0) {
			s3cors *again = NULL;
			assert(s3xml_parse_cors(b.data, b.len, &again, err, sizeof err) == 0);
			assert(again->count == c->count);
			s3cors_free(&again);
		}
		buf_free(&b);
		s3cors_free(&c);
		break;
	}
	default: {
		s3xml_complete *c = NULL;
		int rc = s3xml_parse_complete(body, len, &c, err, sizeof err);
		assert(rc <= 0);
		if (rc != 0) {
			assert(c == NULL && err[0]);
			break;
		}
		assert(c && c->count >= 1 && c->count <= S3XML_MAX_PARTS);
		for (size_t i = 0; i < c->count; i++)
			assert(c->parts[i].number >= 1 && c->parts[i].number <= S3XML_MAX_PARTS);
		s3xml_complete_free(&c);
	}
	}
	return 0;
}
