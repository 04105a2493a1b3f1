/*
 * sigv4.c - AWS Signature Version 4 for S3: the verifier and the signer
 * (contract and order of the checks in sigv4.h).
 *
 * Both directions build the canonical request with one function,
 * canonical_request(), from decoded parts: the verifier decodes the path and
 * the query of the request-target and hands them over with the received
 * fields; the signer hands over its caller's unencoded path, parameters and
 * headers. So a verifier bug that the signer shares still shows in the unit
 * tests, which check both against AWS's published signatures.
 *
 *   canonical request      = method \n path \n query \n headers \n signed \n payload
 *   string to sign         = "AWS4-HMAC-SHA256" \n amz-date \n scope \n hex(sha256(creq))
 *   signing key            = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), "s3"),
 *                                 "aws4_request")
 *   signature              = hex(HMAC(signing key, string to sign))
 */
#include "objects/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/err.h"
#include "core/util.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define SERVICE "s3"
#define TERMINATOR "aws4_request"
/* The canonical request holds the request head once more: bounded by what the
 * HTTP parser accepted, this is only a backstop. */
#define CANONICAL_MAX (1u << 20)

/* ------------------------------------------------------------- errors */

static int sv_fail(sigv4_error *e, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Fill e and return ERR_AUTH (the one code for "answer with e"). */
static int sv_fail(sigv4_error *e, int status, const char *code, const char *fmt, ...)
{
	va_list ap;
	e->status = status;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	return ERR_AUTH;
}

static int sv_internal(sigv4_error *e, int err)
{
	sv_fail(e, 500, "InternalError", "We encountered an internal error. Please try again.");
	return err == ERR_NOMEM ? ERR_NOMEM : ERR_AUTH;
}

#define MSG_SIGNATURE                                                                              \
	"The request signature we calculated does not match the signature you provided. Check "   \
	"your key and signing method."
#define MSG_EXPECT_CREDENTIAL                                                                      \
	"the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."

/* ------------------------------------------------------------- encoding */

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

/* S3's UriEncode: unreserved bytes as they are, '/' too in a path, every
 * other byte %XX (upper-case hex). 0 or the buf error. */
static int uri_encode(buf *b, const char *s, size_t n, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int rc;
		if (is_unreserved(c) || (keep_slash && c == '/')) {
			rc = buf_addc(b, (char)c);
		} else {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			rc = buf_add(b, esc, 3);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) into out (room for n bytes); '+' becomes a space when
 * plus_is_space. *outlen gets the length. 0, or ERR_PARSE on a '%' not
 * followed by two hex digits (out then undefined). */
static int percent_decode(const char *s, size_t n, bool plus_is_space, char *out, size_t *outlen)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n)
				return ERR_PARSE;
			int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
			if (hi < 0 || lo < 0)
				return ERR_PARSE;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (s[i] == '+' && plus_is_space) {
			out[o++] = ' ';
		} else {
			out[o++] = s[i];
		}
	}
	*outlen = o;
	return 0;
}

/* ------------------------------------------------------------- hashing */

static void hmac(const void *key, size_t keylen, const char *data, size_t len, unsigned char out[32])
{
	util_hmac_sha256(key, keylen, data, len, out);
}

void sigv4_signing_key(const char *secret, const char *date, const char *region,
		       unsigned char out[32])
{
	unsigned char k[32];
	char seed[4 + SIGV4_SECRET_MAX + 1];
	size_t slen = strnlen(secret, SIGV4_SECRET_MAX);
	memcpy(seed, "AWS4", 4);
	memcpy(seed + 4, secret, slen);
	hmac(seed, 4 + slen, date, strlen(date), k);
	hmac(k, 32, region, strlen(region), k);
	hmac(k, 32, SERVICE, strlen(SERVICE), k);
	hmac(k, 32, TERMINATOR, strlen(TERMINATOR), out);
	OPENSSL_cleanse(seed, sizeof seed);
	OPENSSL_cleanse(k, sizeof k);
}

/* hex(HMAC(key, prefix \n date \n scope \n lines)), lines already joined. */
static void sign_string(const unsigned char key[32], const char *prefix, const char *amz_date,
			const char *scope, const char *rest, char out[SIGV4_SIGNATURE_HEX + 1])
{
	char sts[64 + 17 + SIGV4_SCOPE_MAX + 3 * (SIGV4_SIGNATURE_HEX + 1) + 8];
	int n = snprintf(sts, sizeof sts, "%s\n%s\n%s\n%s", prefix, amz_date, scope, rest);
	if (n < 0 || (size_t)n >= sizeof sts)
		abort(); /* cannot happen: every part is bounded above */
	unsigned char mac[32];
	hmac(key, 32, sts, (size_t)n, mac);
	util_hex(mac, 32, out);
}

void sigv4_chunk_signature(const sigv4_chain *c, const char *previous,
			   const unsigned char data_sha256[32], char out[SIGV4_SIGNATURE_HEX + 1])
{
	char hash[65], rest[3 * 65 + 4];
	util_hex(data_sha256, 32, hash);
	snprintf(rest, sizeof rest, "%.64s\n%s\n%s", previous, SIGV4_EMPTY_SHA256, hash);
	sign_string(c->key, "AWS4-HMAC-SHA256-PAYLOAD", c->amz_date, c->scope, rest, out);
}

void sigv4_trailer_signature(const sigv4_chain *c, const char *previous,
			     const unsigned char trailer_sha256[32],
			     char out[SIGV4_SIGNATURE_HEX + 1])
{
	char hash[65], rest[2 * 65 + 4];
	util_hex(trailer_sha256, 32, hash);
	snprintf(rest, sizeof rest, "%.64s\n%s", previous, hash);
	sign_string(c->key, "AWS4-HMAC-SHA256-TRAILER", c->amz_date, c->scope, rest, out);
}

void sigv4_amz_date(int64_t t, char out[17])
{
	time_t tt = (time_t)t;
	struct tm tm;
	/* a year beyond 9999 cannot be written in 4 digits: the epoch instead
	 * (such a date is never accepted anyway) */
	if (!gmtime_r(&tt, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	unsigned v[6] = {(unsigned)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday,
			 (unsigned)tm.tm_hour, (unsigned)tm.tm_min, (unsigned)tm.tm_sec};
	char *o = out;
	for (int i = 0; i < 6; i++) {
		if (i == 0) {
			*o++ = (char)('0' + v[0] / 1000 % 10);
			*o++ = (char)('0' + v[0] / 100 % 10);
		}
		if (i == 3)
			*o++ = 'T';
		*o++ = (char)('0' + v[i] / 10 % 10);
		*o++ = (char)('0' + v[i] % 10);
	}
	*o++ = 'Z';
	*o = '\0';
}

/* "YYYYMMDDTHHMMSSZ" -> seconds; 0 or ERR_PARSE. */
static int parse_amz_date(const char *s, size_t n, int64_t *out)
{
	if (n != 16 || s[8] != 'T' || s[15] != 'Z')
		return ERR_PARSE;
	for (int i = 0; i < 15; i++)
		if (i != 8 && (s[i] < '0' || s[i] > '9'))
			return ERR_PARSE;
#define D2(i) ((s[i] - '0') * 10 + (s[(i) + 1] - '0'))
	struct tm tm = {0};
	tm.tm_year = D2(0) * 100 + D2(2) - 1900;
	tm.tm_mon = D2(4) - 1;
	tm.tm_mday = D2(6);
	tm.tm_hour = D2(9);
	tm.tm_min = D2(11);
	tm.tm_sec = D2(13);
#undef D2
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return ERR_PARSE;
	int mday = tm.tm_mday, mon = tm.tm_mon;
	time_t t = timegm(&tm);
	/* timegm normalises 31 February into March: refuse instead */
	if (t == (time_t)-1 || tm.tm_mday != mday || tm.tm_mon != mon)
		return ERR_PARSE;
	*out = (int64_t)t;
	return 0;
}

/* An HTTP Date ("Fri, 24 May 2013 00:00:00 GMT", IMF-fixdate) -> seconds. */
static int parse_http_date(const char *s, size_t n, int64_t *out)
{
	char tmp[64];
	if (n >= sizeof tmp)
		return ERR_PARSE;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	struct tm tm = {0};
	const char *end = strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return ERR_PARSE;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return ERR_PARSE;
	*out = (int64_t)t;
	return 0;
}

/* ------------------------------------------------------------- canonical request */

/* A decoded query parameter (pointers into a scratch buffer or the caller's). */
typedef struct qparam {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
} qparam;

typedef struct encoded_param {
	size_t name_off, name_len, value_off, value_len;
} encoded_param;

static int compare_encoded(const void *a, const void *b, void *arg)
{
	const encoded_param *x = a, *y = b;
	const char *base = arg;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(base + x->name_off, base + y->name_off, n);
	if (c)
		return c;
	if (x->name_len != y->name_len)
		return x->name_len < y->name_len ? -1 : 1;
	n = x->value_len < y->value_len ? x->value_len : y->value_len;
	c = memcmp(base + x->value_off, base + y->value_off, n);
	if (c)
		return c;
	return x->value_len == y->value_len ? 0 : (x->value_len < y->value_len ? -1 : 1);
}

/* Append the canonical query string of q (every name and value encoded,
 * sorted by name then value, "name=value" joined by '&'), leaving out the
 * parameter named skip (NULL: none). 0, ERR_LIMIT or ERR_NOMEM. */
static int canonical_query(buf *out, const qparam *q, size_t n, const char *skip)
{
	if (n == 0)
		return 0;
	buf enc;
	buf_init(&enc, CANONICAL_MAX);
	encoded_param *items = calloc(n, sizeof *items);
	int rc = items ? 0 : ERR_NOMEM;
	size_t count = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		if (skip && q[i].name_len == strlen(skip) && memcmp(q[i].name, skip, q[i].name_len) == 0)
			continue;
		encoded_param *it = &items[count++];
		it->name_off = enc.len;
		rc = uri_encode(&enc, q[i].name, q[i].name_len, false);
		it->name_len = enc.len - it->name_off;
		it->value_off = enc.len;
		if (!rc)
			rc = uri_encode(&enc, q[i].value, q[i].value_len, false);
		it->value_len = enc.len - it->value_off;
	}
	if (rc)
		goto done;
	qsort_r(items, count, sizeof *items, compare_encoded, enc.data ? enc.data : "");
	for (size_t i = 0; !rc && i < count; i++) {
		if (i)
			rc = buf_addc(out, '&');
		if (!rc)
			rc = buf_add(out, enc.data + items[i].name_off, items[i].name_len);
		if (!rc)
			rc = buf_addc(out, '=');
		if (!rc && items[i].value_len)
			rc = buf_add(out, enc.data + items[i].value_off, items[i].value_len);
	}
done:
	free(items);
	buf_free(&enc);
	return rc;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Append a header value trimmed, with inner runs of spaces/tabs as one space. */
static int add_trimmed(buf *out, const char *v, size_t n)
{
	size_t i = 0;
	while (i < n && is_space(v[i]))
		i++;
	while (n > i && is_space(v[n - 1]))
		n--;
	bool space = false;
	for (; i < n; i++) {
		if (is_space(v[i])) {
			space = true;
			continue;
		}
		if (space && buf_addc(out, ' '))
			return ERR_LIMIT;
		space = false;
		int rc = buf_addc(out, v[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static bool name_is(const char *name, size_t len, const char *want, size_t want_len)
{
	return len == want_len && strncasecmp(name, want, len) == 0;
}

/* Does the ';'-separated list hold name (exactly)? */
static bool list_has(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && memcmp(p, name, n) == 0)
			return true;
		if (!end)
			break;
		p = end + 1;
	}
	return false;
}

/* Append "name:value\n" for each name of the signed list (in its order). A
 * signed header absent from the request fails (SignatureDoesNotMatch's
 * cousin: the client signed what we did not receive), except Expect, which
 * proxies drop after answering 100-continue themselves. */
static int canonical_headers(buf *out, const char *signed_list, const http_field *f, size_t nf,
			     sigv4_error *e)
{
	for (const char *p = signed_list; *p;) {
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int rc = buf_add(out, p, len);
		if (!rc)
			rc = buf_addc(out, ':');
		bool found = false;
		for (size_t i = 0; !rc && i < nf; i++) {
			if (!name_is(f[i].name, f[i].name_len, p, len))
				continue;
			if (found)
				rc = buf_addc(out, ',');
			if (!rc)
				rc = add_trimmed(out, f[i].value, f[i].value_len);
			found = true;
		}
		if (!rc && !found) {
			if (name_is(p, len, "expect", 6))
				rc = buf_adds(out, "100-continue");
			else
				return sv_fail(e, 403, "AccessDenied",
					       "The request signed header '%.*s', which it does not carry",
					       (int)(len > 64 ? 64 : len), p);
		}
		if (!rc)
			rc = buf_addc(out, '\n');
		if (rc)
			return sv_internal(e, rc);
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

/* The canonical request into out (see the top of the file). path is decoded
 * (NULL or empty: "/"). 0; ERR_AUTH or ERR_NOMEM with e set. */
static int canonical_request(buf *out, const char *method, const char *path, size_t path_len,
			     const qparam *q, size_t nq, const char *skip, const char *signed_list,
			     const http_field *f, size_t nf, const char *payload_hash, sigv4_error *e)
{
	int rc = buf_adds(out, method);
	if (!rc)
		rc = buf_addc(out, '\n');
	if (!rc)
		rc = path_len ? uri_encode(out, path, path_len, true) : buf_addc(out, '/');
	if (!rc)
		rc = buf_addc(out, '\n');
	if (!rc)
		rc = canonical_query(out, q, nq, skip);
	if (!rc)
		rc = buf_addc(out, '\n');
	if (rc)
		return sv_internal(e, rc);
	rc = canonical_headers(out, signed_list, f, nf, e);
	if (rc)
		return rc;
	rc = buf_printf(out, "\n%s\n%s", signed_list, payload_hash);
	return rc ? sv_internal(e, rc) : 0;
}

/* The signature of a canonical request. */
static void request_signature(const unsigned char key[32], const char *amz_date, const char *scope,
			      const buf *creq, char out[SIGV4_SIGNATURE_HEX + 1])
{
	unsigned char h[32];
	char hex[65];
	util_sha256(creq->data ? creq->data : "", creq->len, h);
	util_hex(h, 32, hex);
	sign_string(key, ALGORITHM, amz_date, scope, hex, out);
}

/* ------------------------------------------------------------- verifier */

typedef struct key_entry {
	bool used;
	uint64_t last_use;
	char access_key_id[SIGV4_KEY_ID_MAX + 1];
	char date[9];
	char region[SIGV4_REGION_MAX + 1];
	char secret[SIGV4_SECRET_MAX + 1];
	unsigned char key[32];
} key_entry;

#define VERIFIER_MAGIC 0x53494734u /* "SIG4" */

struct sigv4_verifier {
	unsigned magic;
	char region[SIGV4_REGION_MAX + 1]; /* "" accepts any */
	char also[256];                    /* ",us,ap," : accepted too */
	int64_t max_skew_s;
	sigv4_lookup_fn lookup;
	void *lookup_arg;
	sigv4_clock_fn clock;
	void *clock_arg;
	key_entry cache[SIGV4_KEY_CACHE];
	uint64_t tick, derived, cached;
};

sigv4_verifier *sigv4_verifier_new(const sigv4_config *cfg)
{
	if (!cfg || !cfg->lookup || (cfg->region && strlen(cfg->region) > SIGV4_REGION_MAX))
		return NULL;
	sigv4_verifier *v = calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->magic = VERIFIER_MAGIC;
	if (cfg->region)
		strcpy(v->region, cfg->region);
	if (cfg->also && cfg->also[0] && snprintf(v->also, sizeof v->also, ",%s,", cfg->also) >= (int)sizeof v->also) {
		free(v);
		return NULL;
	}
	v->max_skew_s = cfg->max_skew_s > 0 ? cfg->max_skew_s : SIGV4_MAX_SKEW_S;
	v->lookup = cfg->lookup;
	v->lookup_arg = cfg->lookup_arg;
	v->clock = cfg->clock;
	v->clock_arg = cfg->clock_arg;
	return v;
}

void sigv4_verifier_free(sigv4_verifier **pv)
{
	if (!pv || !*pv)
		return;
	sigv4_verifier *v = *pv;
	if (v->magic != VERIFIER_MAGIC)
		abort(); /* a freed or foreign pointer: cannot go on safely */
	OPENSSL_cleanse(v, sizeof *v);
	free(v);
	*pv = NULL;
}

void sigv4_verifier_stats(const sigv4_verifier *v, uint64_t *derived, uint64_t *cached)
{
	*derived = v->derived;
	*cached = v->cached;
}

void sigv4_result_clear(sigv4_result *r)
{
	OPENSSL_cleanse(&r->chain, sizeof r->chain);
}

/* The signing key of (access key, date, region) for this secret: from the
 * cache when the same secret derived it, else derived and remembered in the
 * free or least recently used slot. Cannot fail. */
static void verifier_key(sigv4_verifier *v, const char *akid, const char *date, const char *region,
			 const char *secret, unsigned char out[32])
{
	key_entry *slot = &v->cache[0];
	size_t slen = strlen(secret);
	for (size_t i = 0; i < SIGV4_KEY_CACHE; i++) {
		key_entry *e = &v->cache[i];
		if (e->used && strcmp(e->access_key_id, akid) == 0 && strcmp(e->date, date) == 0 &&
		    strcmp(e->region, region) == 0 && strlen(e->secret) == slen &&
		    CRYPTO_memcmp(e->secret, secret, slen) == 0) {
			e->last_use = ++v->tick;
			memcpy(out, e->key, 32);
			v->cached++;
			return;
		}
		if (!e->used || (slot->used && e->last_use < slot->last_use))
			slot = e;
	}
	sigv4_signing_key(secret, date, region, out);
	v->derived++;
	OPENSSL_cleanse(slot, sizeof *slot);
	slot->used = true;
	slot->last_use = ++v->tick;
	snprintf(slot->access_key_id, sizeof slot->access_key_id, "%s", akid);
	snprintf(slot->date, sizeof slot->date, "%s", date);
	snprintf(slot->region, sizeof slot->region, "%s", region);
	memcpy(slot->secret, secret, slen + 1);
	memcpy(slot->key, out, 32);
}

/* How often a field is present (case-insensitive name). */
static size_t field_count(const http_message *m, const char *name)
{
	size_t n = 0, len = strlen(name);
	for (size_t i = 0; i < m->field_count; i++)
		if (name_is(m->fields[i].name, m->fields[i].name_len, name, len))
			n++;
	return n;
}

/* The parts of a request's authentication, header or query form. */
typedef struct auth_parts {
	bool presigned;
	const char *credential;    /* not NUL-terminated */
	size_t credential_len;
	const char *signed_headers;
	size_t signed_headers_len;
	const char *signature;
	size_t signature_len;
	const char *expires;       /* presigned */
	size_t expires_len;
	const char *amz_date;      /* presigned (header auth: from the fields) */
	size_t amz_date_len;
	const char *content_sha256; /* presigned: X-Amz-Content-Sha256, optional */
	size_t content_sha256_len;
	/* parsed */
	char access_key_id[SIGV4_KEY_ID_MAX + 1];
	char date[9];
	char region[SIGV4_REGION_MAX + 1];
	char signed_list[1024];
	char amz_date_text[17];
	int64_t request_time;
	int64_t expires_s;
} auth_parts;

/* The error prefix and code of a malformed credential, header or query. */
static int malformed(sigv4_error *e, bool presigned, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int malformed(sigv4_error *e, bool presigned, const char *fmt, ...)
{
	char detail[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	if (presigned)
		return sv_fail(e, 400, "AuthorizationQueryParametersError",
			       "Error parsing the X-Amz-Credential parameter; %s", detail);
	return sv_fail(e, 400, "AuthorizationHeaderMalformed",
		       "The authorization header is malformed; %s", detail);
}

/* Parse "AKID/YYYYMMDD/REGION/s3/aws4_request" and check it against the
 * verifier's region. 0 or ERR_AUTH. */
static int parse_credential(const sigv4_verifier *v, auth_parts *a, sigv4_error *e)
{
	const char *s = a->credential;
	size_t n = a->credential_len;
	/* the four parts after the key id hold no '/': find them from the right */
	size_t cut[4];
	int found = 0;
	for (size_t i = n; i-- > 0 && found < 4;)
		if (s[i] == '/')
			cut[found++] = i;
	if (found < 4 || cut[3] == 0)
		return malformed(e, a->presigned, MSG_EXPECT_CREDENTIAL);
	size_t akid_len = cut[3];
	const char *date = s + cut[3] + 1, *region = s + cut[2] + 1, *service = s + cut[1] + 1,
		   *term = s + cut[0] + 1;
	size_t date_len = cut[2] - cut[3] - 1, region_len = cut[1] - cut[2] - 1,
	       service_len = cut[0] - cut[1] - 1, term_len = n - cut[0] - 1;
	if (akid_len > SIGV4_KEY_ID_MAX || date_len != 8 || region_len == 0 ||
	    region_len > SIGV4_REGION_MAX)
		return malformed(e, a->presigned, MSG_EXPECT_CREDENTIAL);
	for (size_t i = 0; i < akid_len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return malformed(e, a->presigned, MSG_EXPECT_CREDENTIAL);
	for (size_t i = 0; i < 8; i++)
		if (date[i] < '0' || date[i] > '9')
			return malformed(e, a->presigned, MSG_EXPECT_CREDENTIAL);
	for (size_t i = 0; i < region_len; i++)
		if (!is_unreserved((unsigned char)region[i]))
			return malformed(e, a->presigned, MSG_EXPECT_CREDENTIAL);
	if (!(service_len == 2 && memcmp(service, SERVICE, 2) == 0))
		return malformed(e, a->presigned,
				 "incorrect service \"%.*s\". This endpoint belongs to \"s3\".",
				 (int)(service_len > 32 ? 32 : service_len), service);
	if (!(term_len == strlen(TERMINATOR) && memcmp(term, TERMINATOR, term_len) == 0))
		return malformed(e, a->presigned,
				 "incorrect terminal \"%.*s\". This endpoint uses \"aws4_request\".",
				 (int)(term_len > 32 ? 32 : term_len), term);
	memcpy(a->access_key_id, s, akid_len);
	a->access_key_id[akid_len] = '\0';
	memcpy(a->date, date, 8);
	a->date[8] = '\0';
	memcpy(a->region, region, region_len);
	a->region[region_len] = '\0';
	char as_item[SIGV4_REGION_MAX + 3];
	snprintf(as_item, sizeof as_item, ",%s,", a->region);
	if (v->region[0] && strcmp(a->region, v->region) != 0 && !(v->also[0] && strstr(v->also, as_item)))
		return malformed(e, a->presigned, "the region '%s' is wrong; expecting '%s'",
				 a->region, v->region);
	return 0;
}

/* Copy and check the SignedHeaders list: lower-case header names separated
 * by ';', host among them. 0 or ERR_AUTH. */
static int parse_signed_headers(auth_parts *a, sigv4_error *e)
{
	const char *s = a->signed_headers;
	size_t n = a->signed_headers_len;
	const char *what = a->presigned ? "X-Amz-SignedHeaders" : "SignedHeaders";
	if (n == 0 || n >= sizeof a->signed_list)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool name_char = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
				 (c && strchr("!#$%&'*+-.^_`|~", c));
		if (c == ';') {
			if (i == 0 || i == n - 1 || s[i - 1] == ';')
				goto bad;
		} else if (!name_char) {
			goto bad;
		}
	}
	memcpy(a->signed_list, s, n);
	a->signed_list[n] = '\0';
	if (!list_has(a->signed_list, "host")) {
		if (a->presigned)
			return sv_fail(e, 400, "AuthorizationQueryParametersError",
				       "X-Amz-SignedHeaders must include the host header");
		return sv_fail(e, 400, "AuthorizationHeaderMalformed",
			       "The authorization header is malformed; 'host' must be a signed header");
	}
	return 0;
bad:
	if (a->presigned)
		return sv_fail(e, 400, "AuthorizationQueryParametersError",
			       "%s must be lower-case header names separated by ';'", what);
	return sv_fail(e, 400, "AuthorizationHeaderMalformed",
		       "The authorization header is malformed; %s must be lower-case header names "
		       "separated by ';'",
		       what);
}

/* Split the Authorization value "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
 * Signature=..." (components in any order, optional spaces after commas). */
static int parse_authorization(const char *s, size_t n, auth_parts *a, sigv4_error *e)
{
	size_t alen = strlen(ALGORITHM);
	if (n < alen || memcmp(s, ALGORITHM, alen) != 0 || (n > alen && !is_space(s[alen])))
		return sv_fail(e, 400, "InvalidRequest",
			       "The authorization mechanism you have provided is not supported. "
			       "Please use AWS4-HMAC-SHA256.");
	size_t i = alen;
	while (i < n) {
		while (i < n && (is_space(s[i]) || s[i] == ','))
			i++;
		if (i >= n)
			break;
		size_t start = i;
		while (i < n && s[i] != ',')
			i++;
		size_t end = i;
		while (end > start && is_space(s[end - 1]))
			end--;
		const char *c = s + start;
		size_t clen = end - start;
		const char *eq = memchr(c, '=', clen);
		if (!eq)
			goto bad_component;
		size_t klen = (size_t)(eq - c), vlen = clen - klen - 1;
		const char **dst;
		size_t *dlen;
		if (klen == 10 && memcmp(c, "Credential", 10) == 0) {
			dst = &a->credential;
			dlen = &a->credential_len;
		} else if (klen == 13 && memcmp(c, "SignedHeaders", 13) == 0) {
			dst = &a->signed_headers;
			dlen = &a->signed_headers_len;
		} else if (klen == 9 && memcmp(c, "Signature", 9) == 0) {
			dst = &a->signature;
			dlen = &a->signature_len;
		} else {
			goto bad_component;
		}
		if (*dst)
			goto bad_component; /* twice */
		*dst = eq + 1;
		*dlen = vlen;
		continue;
	bad_component:
		return sv_fail(e, 400, "AuthorizationHeaderMalformed",
			       "The authorization header is malformed; the authorization component "
			       "\"%.*s\" is malformed.",
			       (int)(clen > 64 ? 64 : clen), c);
	}
	if (!a->credential || !a->signed_headers || !a->signature)
		return sv_fail(e, 400, "AuthorizationHeaderMalformed",
			       "The authorization header is malformed; the authorization header "
			       "requires three components: Credential, SignedHeaders, and Signature.");
	return 0;
}

/* The decoded query of a request-target: params point into scratch. */
typedef struct parsed_target {
	char *scratch;    /* malloc'd: decoded path and parameters */
	const char *path; /* decoded; path_len 0 means "/" */
	size_t path_len;
	qparam params[SIGV4_QUERY_MAX];
	size_t count;
} parsed_target;

/* Decode the path and query of target. 0; ERR_AUTH (InvalidURI, too many
 * parameters) or ERR_NOMEM with e set. */
static int parse_target(const char *target, parsed_target *t, sigv4_error *e)
{
	const char *p = target;
	/* absolute-form (a proxy's request line): skip scheme and authority */
	const char *scheme = strstr(p, "://");
	if (scheme && p[0] != '/') {
		p = strchr(scheme + 3, '/');
		if (!p)
			p = "";
	}
	const char *q = strchr(p, '?');
	size_t path_len = q ? (size_t)(q - p) : strlen(p);
	size_t total = strlen(p);
	t->scratch = malloc(total + 1);
	if (!t->scratch)
		return sv_internal(e, ERR_NOMEM);
	char *o = t->scratch;
	size_t dl;
	if (percent_decode(p, path_len, false, o, &dl))
		return sv_fail(e, 400, "InvalidURI", "Couldn't parse the specified URI.");
	t->path = o;
	t->path_len = dl;
	o += dl;
	if (!q)
		return 0;
	const char *s = q + 1;
	while (*s) {
		const char *amp = strchr(s, '&');
		size_t len = amp ? (size_t)(amp - s) : strlen(s);
		if (len) {
			if (t->count == SIGV4_QUERY_MAX)
				return sv_fail(e, 400, "InvalidRequest",
					       "The request has more than %d query parameters",
					       SIGV4_QUERY_MAX);
			const char *eq = memchr(s, '=', len);
			size_t nlen = eq ? (size_t)(eq - s) : len;
			qparam *qp = &t->params[t->count++];
			if (percent_decode(s, nlen, true, o, &dl))
				return sv_fail(e, 400, "InvalidURI", "Couldn't parse the specified URI.");
			qp->name = o;
			qp->name_len = dl;
			o += dl;
			qp->value = o;
			qp->value_len = 0;
			if (eq) {
				if (percent_decode(eq + 1, len - nlen - 1, true, o, &dl))
					return sv_fail(e, 400, "InvalidURI",
						       "Couldn't parse the specified URI.");
				qp->value_len = dl;
				o += dl;
			}
		}
		if (!amp)
			break;
		s = amp + 1;
	}
	return 0;
}

/* The one parameter named name (exact case); NULL when absent; *dup set when
 * it appears more than once. */
static const qparam *query_param(const parsed_target *t, const char *name, bool *dup)
{
	const qparam *found = NULL;
	size_t n = strlen(name);
	for (size_t i = 0; i < t->count; i++) {
		if (t->params[i].name_len == n && memcmp(t->params[i].name, name, n) == 0) {
			if (found)
				*dup = true;
			found = &t->params[i];
		}
	}
	return found;
}

/* Is s a lowercase 64-hex-digit string? */
static bool is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The payload mode of an x-amz-content-sha256 value. 0 or ERR_AUTH. */
static int parse_payload(const char *s, size_t n, bool presigned, sigv4_result *r)
{
	static const struct {
		const char *text;
		sigv4_payload mode;
	} modes[] = {
		{"UNSIGNED-PAYLOAD", SIGV4_PAYLOAD_UNSIGNED},
		{"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", SIGV4_PAYLOAD_STREAMING},
		{"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", SIGV4_PAYLOAD_STREAMING_TRAILER},
		{"STREAMING-UNSIGNED-PAYLOAD-TRAILER", SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER},
	};
	if (is_hex64(s, n)) {
		r->payload = SIGV4_PAYLOAD_SHA256;
		for (size_t i = 0; i < 32; i++)
			r->payload_sha256[i] = (unsigned char)(hex_value(s[2 * i]) << 4 |
							       hex_value(s[2 * i + 1]));
		return 0;
	}
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		if (n == strlen(modes[i].text) && memcmp(s, modes[i].text, n) == 0) {
			if (presigned && modes[i].mode != SIGV4_PAYLOAD_UNSIGNED)
				break;
			r->payload = modes[i].mode;
			return 0;
		}
	}
	return sv_fail(&r->error, 400, "InvalidArgument",
		       "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
		       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
		       "STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid sha256 value.");
}

static bool is_streaming(sigv4_payload p)
{
	return p == SIGV4_PAYLOAD_STREAMING || p == SIGV4_PAYLOAD_STREAMING_TRAILER ||
	       p == SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
}

/* The query-string form: X-Amz-* parameters. 0 or ERR_AUTH. */
static int presigned_parts(const parsed_target *t, auth_parts *a, sigv4_error *e)
{
	static const char *const required[] = {"X-Amz-Algorithm",     "X-Amz-Credential",
					       "X-Amz-Signature",     "X-Amz-Date",
					       "X-Amz-SignedHeaders", "X-Amz-Expires"};
	const qparam *p[6];
	bool dup = false;
	for (int i = 0; i < 6; i++)
		p[i] = query_param(t, required[i], &dup);
	const qparam *sha = query_param(t, "X-Amz-Content-Sha256", &dup);
	if (dup)
		return sv_fail(e, 400, "AuthorizationQueryParametersError",
			       "An X-Amz-* authentication parameter appears more than once.");
	for (int i = 0; i < 6; i++)
		if (!p[i])
			return sv_fail(e, 400, "AuthorizationQueryParametersError",
				       "Query-string authentication version 4 requires the "
				       "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, "
				       "X-Amz-SignedHeaders, and X-Amz-Expires parameters.");
	if (!(p[0]->value_len == strlen(ALGORITHM) &&
	      memcmp(p[0]->value, ALGORITHM, p[0]->value_len) == 0))
		return sv_fail(e, 400, "AuthorizationQueryParametersError",
			       "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
	a->presigned = true;
	a->credential = p[1]->value;
	a->credential_len = p[1]->value_len;
	a->signature = p[2]->value;
	a->signature_len = p[2]->value_len;
	a->amz_date = p[3]->value;
	a->amz_date_len = p[3]->value_len;
	a->signed_headers = p[4]->value;
	a->signed_headers_len = p[4]->value_len;
	a->expires = p[5]->value;
	a->expires_len = p[5]->value_len;
	if (sha) {
		a->content_sha256 = sha->value;
		a->content_sha256_len = sha->value_len;
	}
	if (parse_amz_date(a->amz_date, a->amz_date_len, &a->request_time))
		return sv_fail(e, 400, "AuthorizationQueryParametersError",
			       "X-Amz-Date must be in the ISO8601 Long Format "
			       "\"yyyyMMdd'T'HHmmss'Z'\"");
	memcpy(a->amz_date_text, a->amz_date, 16);
	a->amz_date_text[16] = '\0';
	/* 1..604800, digits only */
	int64_t x = 0;
	bool ok = a->expires_len > 0 && a->expires_len <= 7;
	for (size_t i = 0; ok && i < a->expires_len; i++) {
		if (a->expires[i] < '0' || a->expires[i] > '9')
			ok = false;
		else
			x = x * 10 + (a->expires[i] - '0');
	}
	if (!ok)
		return sv_fail(e, 400, "AuthorizationQueryParametersError",
			       "X-Amz-Expires should be a number");
	if (x < 1)
		return sv_fail(e, 400, "AuthorizationQueryParametersError",
			       "X-Amz-Expires must be non-negative");
	if (x > SIGV4_EXPIRES_MAX)
		return sv_fail(e, 400, "AuthorizationQueryParametersError",
			       "X-Amz-Expires must be less than a week (in seconds) that is; the "
			       "maximum expires is 604800 seconds");
	a->expires_s = x;
	return 0;
}

/* The header form's date: x-amz-date, else Date. 0 or ERR_AUTH. */
static int header_date(const http_message *m, auth_parts *a, sigv4_error *e)
{
	size_t len;
	const char *d = http_message_field(m, "x-amz-date", &len);
	if (field_count(m, "x-amz-date") > 1 || field_count(m, "date") > 1)
		goto bad;
	if (d) {
		if (parse_amz_date(d, len, &a->request_time))
			goto bad;
		memcpy(a->amz_date_text, d, 16);
		a->amz_date_text[16] = '\0';
		return 0;
	}
	d = http_message_field(m, "date", &len);
	if (!d || parse_http_date(d, len, &a->request_time))
		goto bad;
	sigv4_amz_date(a->request_time, a->amz_date_text);
	return 0;
bad:
	return sv_fail(e, 403, "AccessDenied",
		       "AWS authentication requires a valid Date or x-amz-date header");
}

/* The time checks of step 6 (sigv4.h). */
static int check_time(const sigv4_verifier *v, const auth_parts *a, sigv4_error *e)
{
	int64_t now = v->clock ? v->clock(v->clock_arg) : util_now_ms() / 1000;
	if (a->presigned) {
		if (a->request_time > now + v->max_skew_s)
			return sv_fail(e, 403, "AccessDenied", "Request is not valid yet");
		if (now > a->request_time + a->expires_s)
			return sv_fail(e, 403, "AccessDenied", "Request has expired");
		return 0;
	}
	int64_t d = now - a->request_time;
	if (d > v->max_skew_s || d < -v->max_skew_s)
		return sv_fail(e, 403, "RequestTimeTooSkewed",
			       "The difference between the request time and the current time is too "
			       "large.");
	return 0;
}

/* The signature as given: 64 hex digits, read case-insensitively. */
static int parse_signature(auth_parts *a, char out[SIGV4_SIGNATURE_HEX + 1], sigv4_error *e)
{
	if (a->signature_len != SIGV4_SIGNATURE_HEX)
		goto bad;
	for (size_t i = 0; i < SIGV4_SIGNATURE_HEX; i++) {
		char c = a->signature[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			goto bad;
		out[i] = c;
	}
	out[SIGV4_SIGNATURE_HEX] = '\0';
	return 0;
bad:
	/* a signature of the wrong shape cannot match: answer as AWS does */
	return sv_fail(e, 403, "SignatureDoesNotMatch", MSG_SIGNATURE);
}

/* Every x-amz-* header present must be signed, so that none can be added on
 * the way or by whoever holds a presigned URL (an ACL making the object
 * public, a storage class, checksums...). A presigned request may carry an
 * unsigned x-amz-content-sha256: its payload hash comes from the URL, the
 * header is not read. */
static int check_amz_headers_signed(const http_message *m, const char *signed_list, bool presigned,
				    sigv4_error *e)
{
	for (size_t i = 0; i < m->field_count; i++) {
		const http_field *f = &m->fields[i];
		if (f->name_len < 6 || strncasecmp(f->name, "x-amz-", 6) != 0)
			continue;
		if (presigned && name_is(f->name, f->name_len, "x-amz-content-sha256", 20))
			continue;
		char lower[128];
		if (f->name_len >= sizeof lower)
			goto bad;
		for (size_t j = 0; j < f->name_len; j++)
			lower[j] = (char)((f->name[j] >= 'A' && f->name[j] <= 'Z') ? f->name[j] + 32
										    : f->name[j]);
		lower[f->name_len] = '\0';
		if (!list_has(signed_list, lower))
			goto bad;
	}
	return 0;
bad:
	return sv_fail(e, 403, "AccessDenied",
		       "There were headers present in the request which were not signed");
}

int sigv4_verify(sigv4_verifier *v, const http_message *m, sigv4_result *out)
{
	if (v->magic != VERIFIER_MAGIC)
		abort(); /* a freed or foreign verifier */
	memset(out, 0, sizeof *out);
	out->decoded_length = -1;
	sigv4_error *e = &out->error;
	parsed_target t = {0};
	auth_parts a = {0};
	buf creq;
	buf_init(&creq, CANONICAL_MAX);
	char secret[SIGV4_SECRET_MAX + 1] = {0};
	int rc;

	if ((rc = parse_target(m->target ? m->target : "/", &t, e)))
		goto done;
	size_t auth_len = 0;
	const char *auth = http_message_field(m, "authorization", &auth_len);
	bool dup = false;
	bool query_auth = query_param(&t, "X-Amz-Algorithm", &dup) ||
			  query_param(&t, "X-Amz-Credential", &dup) ||
			  query_param(&t, "X-Amz-Signature", &dup);
	if (auth && query_auth) {
		rc = sv_fail(e, 400, "InvalidArgument",
			     "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
			     "parameter, Signature query string parameter or the Authorization header "
			     "should be specified");
		goto done;
	}
	if (query_param(&t, "X-Amz-Security-Token", &dup) || field_count(m, "x-amz-security-token")) {
		rc = sv_fail(e, 400, "InvalidToken",
			     "Temporary credentials (X-Amz-Security-Token) are not supported by this "
			     "server: sign with an access key of its own");
		goto done;
	}
	if (!auth && !query_auth && query_param(&t, "AWSAccessKeyId", &dup) &&
	    query_param(&t, "Signature", &dup)) {
		/* a SigV2 presigned URL (older SDKs' default): say so, not "anonymous" */
		rc = sv_fail(e, 400, "InvalidRequest",
			     "The authorization mechanism you have provided is not supported. Please "
			     "use AWS4-HMAC-SHA256.");
		goto done;
	}
	if (!auth && !query_auth) {
		sv_fail(e, 403, "AccessDenied", "Access Denied");
		rc = ERR_NOTFOUND;
		goto done;
	}
	if (auth) {
		if (field_count(m, "authorization") > 1) {
			rc = sv_fail(e, 400, "InvalidArgument",
				     "The request carries more than one Authorization header");
			goto done;
		}
		if ((rc = parse_authorization(auth, auth_len, &a, e)))
			goto done;
	} else if ((rc = presigned_parts(&t, &a, e))) {
		goto done;
	}
	if ((rc = parse_credential(v, &a, e)) || (rc = parse_signed_headers(&a, e)))
		goto done;
	if (!a.presigned && (rc = header_date(m, &a, e)))
		goto done;
	if (memcmp(a.date, a.amz_date_text, 8) != 0) {
		rc = malformed(e, a.presigned,
			       "Invalid credential date \"%s\". This date is not the same as "
			       "X-Amz-Date: \"%.8s\".",
			       a.date, a.amz_date_text);
		goto done;
	}
	if ((rc = check_amz_headers_signed(m, a.signed_list, a.presigned, e)))
		goto done;

	/* the payload hash that goes into the canonical request */
	const char *payload_text = "UNSIGNED-PAYLOAD";
	size_t payload_len = strlen(payload_text);
	if (!a.presigned) {
		payload_text = http_message_field(m, "x-amz-content-sha256", &payload_len);
		if (!payload_text) {
			rc = sv_fail(e, 400, "InvalidRequest",
				     "Missing required header for this request: x-amz-content-sha256");
			goto done;
		}
		if (field_count(m, "x-amz-content-sha256") > 1) {
			rc = sv_fail(e, 400, "InvalidArgument",
				     "The request carries more than one x-amz-content-sha256 header");
			goto done;
		}
	} else if (a.content_sha256) {
		payload_text = a.content_sha256;
		payload_len = a.content_sha256_len;
	}
	if ((rc = parse_payload(payload_text, payload_len, a.presigned, out)))
		goto done;
	if (is_streaming(out->payload)) {
		size_t dl;
		const char *d = http_message_field(m, "x-amz-decoded-content-length", &dl);
		char tmp[24];
		long long x;
		if (!d || dl == 0 || dl >= sizeof tmp ||
		    (memcpy(tmp, d, dl), tmp[dl] = '\0', util_parse_int(tmp, 0, INT64_MAX / 2, &x))) {
			rc = sv_fail(e, 411, "MissingContentLength",
				     "You must provide a valid x-amz-decoded-content-length header with "
				     "an aws-chunked body.");
			goto done;
		}
		out->decoded_length = x;
	}

	char given[SIGV4_SIGNATURE_HEX + 1];
	if ((rc = parse_signature(&a, given, e)))
		goto done;

	/* the key: unknown keys are told apart from bad signatures, as S3 does */
	rc = v->lookup(v->lookup_arg, a.access_key_id, secret);
	secret[SIGV4_SECRET_MAX] = '\0';
	if (rc == ERR_NOTFOUND) {
		rc = sv_fail(e, 403, "InvalidAccessKeyId",
			     "The AWS Access Key Id you provided does not exist in our records.");
		goto done;
	}
	if (rc) {
		rc = sv_internal(e, rc);
		goto done;
	}
	if ((rc = check_time(v, &a, e)))
		goto done;

	sigv4_chain *c = &out->chain;
	verifier_key(v, a.access_key_id, a.date, a.region, secret, c->key);
	memcpy(c->amz_date, a.amz_date_text, sizeof c->amz_date);
	snprintf(c->scope, sizeof c->scope, "%s/%s/" SERVICE "/" TERMINATOR, a.date, a.region);

	char payload_hash[80];
	snprintf(payload_hash, sizeof payload_hash, "%.*s", (int)payload_len, payload_text);
	rc = canonical_request(&creq, m->method ? m->method : "", t.path, t.path_len, t.params,
			       t.count, a.presigned ? "X-Amz-Signature" : NULL, a.signed_list,
			       m->fields, m->field_count, payload_hash, e);
	if (rc)
		goto done;
	request_signature(c->key, c->amz_date, c->scope, &creq, c->seed);
	if (CRYPTO_memcmp(c->seed, given, SIGV4_SIGNATURE_HEX) != 0) {
		rc = sv_fail(e, 403, "SignatureDoesNotMatch", MSG_SIGNATURE);
		goto done;
	}
	snprintf(out->access_key_id, sizeof out->access_key_id, "%s", a.access_key_id);
	snprintf(out->region, sizeof out->region, "%s", a.region);
	out->presigned = a.presigned;
	out->request_time = a.request_time;
	rc = 0;
done:
	if (rc)
		sigv4_result_clear(out);
	OPENSSL_cleanse(secret, sizeof secret);
	free(t.scratch);
	buf_free(&creq);
	return rc;
}

int sigv4_payload_check(const sigv4_result *r, const unsigned char body_sha256[32],
			sigv4_error *err)
{
	if (r->payload != SIGV4_PAYLOAD_SHA256)
		return 0;
	if (CRYPTO_memcmp(r->payload_sha256, body_sha256, 32) == 0)
		return 0;
	return sv_fail(err, 400, "XAmzContentSHA256Mismatch",
		       "The provided 'x-amz-content-sha256' header does not match what was "
		       "computed.");
}

/* ------------------------------------------------------------- signer */

typedef struct lower_header {
	char name[128];
} lower_header;

static int compare_names(const void *a, const void *b)
{
	return strcmp(((const lower_header *)a)->name, ((const lower_header *)b)->name);
}

/* What sigv4_sign and sigv4_presign share: the sorted signed-header list, the
 * headers as fields, the query parameters and the scope. */
typedef struct sign_parts {
	http_field *fields;
	qparam *params;
	size_t param_count;
	char signed_list[1024];
	char amz_date[17];
	char date[9];
	char scope[SIGV4_SCOPE_MAX + 1];
	char credential[SIGV4_KEY_ID_MAX + SIGV4_SCOPE_MAX + 2];
	unsigned char key[32];
} sign_parts;

static void sign_parts_free(sign_parts *s)
{
	free(s->fields);
	free(s->params);
	OPENSSL_cleanse(s->key, sizeof s->key);
}

/* extra: room for that many more query parameters (presign's own). */
static int sign_parts_init(const sigv4_sign_params *p, size_t extra, sign_parts *s)
{
	memset(s, 0, sizeof *s);
	if (!p->method || !p->path || !p->access_key_id || !p->secret_access_key || !p->region ||
	    strlen(p->access_key_id) > SIGV4_KEY_ID_MAX || strchr(p->access_key_id, '/') ||
	    strlen(p->secret_access_key) > SIGV4_SECRET_MAX || !p->region[0] ||
	    strlen(p->region) > SIGV4_REGION_MAX || p->header_count > 64 ||
	    p->query_count > SIGV4_QUERY_MAX)
		return ERR_INVAL;
	lower_header names[64];
	for (size_t i = 0; i < p->header_count; i++) {
		const char *n = p->headers[i].name;
		size_t len = n ? strlen(n) : 0;
		if (len == 0 || len >= sizeof names[i].name || !p->headers[i].value)
			return ERR_INVAL;
		for (size_t j = 0; j < len; j++) {
			char c = n[j];
			if (c <= ' ' || c >= 0x7f || c == ':' || c == ';')
				return ERR_INVAL;
			names[i].name[j] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
		}
		names[i].name[len] = '\0';
	}
	qsort(names, p->header_count, sizeof names[0], compare_names);
	bool host = false;
	size_t used = 0;
	for (size_t i = 0; i < p->header_count; i++) {
		if (i && strcmp(names[i].name, names[i - 1].name) == 0)
			continue; /* repeated: one name, values joined */
		host = host || strcmp(names[i].name, "host") == 0;
		int n = snprintf(s->signed_list + used, sizeof s->signed_list - used, "%s%s",
				 used ? ";" : "", names[i].name);
		if (n < 0 || (size_t)n >= sizeof s->signed_list - used)
			return ERR_LIMIT;
		used += (size_t)n;
	}
	if (!host)
		return ERR_INVAL;
	s->fields = calloc(p->header_count ? p->header_count : 1, sizeof *s->fields);
	s->params = calloc(p->query_count + extra + 1, sizeof *s->params);
	if (!s->fields || !s->params)
		return ERR_NOMEM;
	for (size_t i = 0; i < p->header_count; i++) {
		s->fields[i].name = p->headers[i].name;
		s->fields[i].name_len = strlen(p->headers[i].name);
		s->fields[i].value = p->headers[i].value;
		s->fields[i].value_len = strlen(p->headers[i].value);
	}
	for (size_t i = 0; i < p->query_count; i++) {
		if (!p->query[i].name)
			return ERR_INVAL;
		qparam *q = &s->params[s->param_count++];
		q->name = p->query[i].name;
		q->name_len = strlen(q->name);
		q->value = p->query[i].value ? p->query[i].value : "";
		q->value_len = strlen(q->value);
	}
	sigv4_amz_date(p->now_s, s->amz_date);
	memcpy(s->date, s->amz_date, 8);
	s->date[8] = '\0';
	snprintf(s->scope, sizeof s->scope, "%s/%s/" SERVICE "/" TERMINATOR, s->date, p->region);
	snprintf(s->credential, sizeof s->credential, "%s/%s", p->access_key_id, s->scope);
	sigv4_signing_key(p->secret_access_key, s->date, p->region, s->key);
	return 0;
}

static void add_param(sign_parts *s, const char *name, const char *value)
{
	qparam *q = &s->params[s->param_count++];
	q->name = name;
	q->name_len = strlen(name);
	q->value = value;
	q->value_len = strlen(value);
}

static int sign_common(const sigv4_sign_params *p, sign_parts *s, const char *payload_hash,
		       char sig[SIGV4_SIGNATURE_HEX + 1])
{
	sigv4_error e;
	buf creq;
	buf_init(&creq, CANONICAL_MAX);
	int rc = canonical_request(&creq, p->method, p->path, strlen(p->path), s->params,
				   s->param_count, NULL, s->signed_list, s->fields, p->header_count,
				   payload_hash, &e);
	if (rc == 0)
		request_signature(s->key, s->amz_date, s->scope, &creq, sig);
	buf_free(&creq);
	/* a header to sign that is missing cannot happen here (the list comes
	 * from the headers); what remains is memory */
	return rc == 0 ? 0 : (rc == ERR_NOMEM ? ERR_NOMEM : ERR_LIMIT);
}

int sigv4_sign(const sigv4_sign_params *p, buf *out)
{
	sign_parts s;
	char sig[SIGV4_SIGNATURE_HEX + 1];
	int rc = sign_parts_init(p, 0, &s);
	if (!rc)
		rc = sign_common(p, &s, p->payload_hash ? p->payload_hash : "UNSIGNED-PAYLOAD", sig);
	if (!rc)
		rc = buf_printf(out, ALGORITHM " Credential=%s, SignedHeaders=%s, Signature=%s",
				s.credential, s.signed_list, sig);
	sign_parts_free(&s);
	return rc;
}

int sigv4_presign(const sigv4_sign_params *p, buf *out)
{
	if (p->expires_s < 1 || p->expires_s > SIGV4_EXPIRES_MAX)
		return ERR_INVAL;
	sign_parts s;
	char sig[SIGV4_SIGNATURE_HEX + 1], expires[24];
	int rc = sign_parts_init(p, 5, &s);
	if (rc)
		goto done;
	snprintf(expires, sizeof expires, "%lld", (long long)p->expires_s);
	add_param(&s, "X-Amz-Algorithm", ALGORITHM);
	add_param(&s, "X-Amz-Credential", s.credential);
	add_param(&s, "X-Amz-Date", s.amz_date);
	add_param(&s, "X-Amz-Expires", expires);
	add_param(&s, "X-Amz-SignedHeaders", s.signed_list);
	/* a presigned URL never carries a payload hash: whoever uses it sends any body */
	rc = sign_common(p, &s, "UNSIGNED-PAYLOAD", sig);
	if (rc)
		goto done;
	/* the URL: the same encoding and order as the canonical query */
	rc = p->path[0] ? uri_encode(out, p->path, strlen(p->path), true) : buf_addc(out, '/');
	if (!rc)
		rc = buf_addc(out, '?');
	if (!rc)
		rc = canonical_query(out, s.params, s.param_count, NULL);
	if (!rc)
		rc = buf_printf(out, "&X-Amz-Signature=%s", sig);
done:
	sign_parts_free(&s);
	return rc;
}
