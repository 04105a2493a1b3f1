/*
 * test_sigv4.c - unit tests for src/objects/sigv4.c.
 *
 * The requests are real HTTP heads parsed by src/http/parser.c, as the S3
 * server will hand them over. sigv4.c is included, for allocation faults. The known-answer tests use AWS's published
 * examples; each expected signature is AWS's value, copied from the pages
 * named beside it (credentials AKIAIOSFODNN7EXAMPLE /
 * wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, time 20130524T000000Z,
 * region us-east-1):
 *   [H] https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
 *   [Q] https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
 *   [S] https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
 *   [T] https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html
 * The other tests sign with sigv4_sign/sigv4_presign (pinned to the same
 * vectors) and check one rule each; the clock is injected.
 */
#include "test.h"

#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "http/parser.h"
#include "objects/chunked.h"
#include "objects/sigv4.h"

/* Allocation fault injection (as tests/unit/test_parser.c): the allocations
 * sigv4.c makes itself go through these; the one at which the countdown
 * reaches zero fails. A negative countdown never fails. sigv4.c is included
 * so that its allocations (not buf.c's) are the ones counted. */
static long alloc_countdown = -1;

static bool alloc_should_fail(void)
{
	if (alloc_countdown < 0)
		return false;
	return alloc_countdown-- == 0;
}

static void *test_malloc(size_t size)
{
	return alloc_should_fail() ? NULL : malloc(size);
}

static void *test_calloc(size_t count, size_t size)
{
	return alloc_should_fail() ? NULL : calloc(count, size);
}

#define malloc(size) test_malloc(size)
#define calloc(count, size) test_calloc(count, size)
#include "objects/sigv4.c"
#undef malloc
#undef calloc

#define AKID "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define T2013 1369353600 /* 20130524T000000Z */
#define AMZ_2013 "20130524T000000Z"
#define CRED_2013 AKID "/20130524/us-east-1/s3/aws4_request"

/* ------------------------------------------------------------- fixtures */

static int64_t fake_now = T2013;
static int lookup_calls;
static const char *current_secret = SECRET;
static int lookup_fails; /* a lookup that fails itself (ERR_IO) */

static int64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

static int lookup(void *arg, const char *akid, char secret[SIGV4_SECRET_MAX + 1])
{
	(void)arg;
	lookup_calls++;
	if (lookup_fails)
		return ERR_IO;
	if (strcmp(akid, AKID) != 0)
		return ERR_NOTFOUND;
	snprintf(secret, SIGV4_SECRET_MAX + 1, "%s", current_secret);
	return 0;
}

static sigv4_verifier *verifier(const char *region)
{
	fake_now = T2013;
	current_secret = SECRET;
	lookup_fails = 0;
	sigv4_config cfg = {
		.region = region,
		.lookup = lookup,
		.clock = fake_clock,
	};
	sigv4_verifier *v = sigv4_verifier_new(&cfg);
	CHECK(v != NULL);
	return v;
}

static const http_limits limits = {
	.max_header_bytes = 32768,
	.max_headers = 100,
	.max_body_bytes = 1 << 20,
};

/* Parse the head of raw (with "\n" line ends turned into CRLF) and verify it.
 * Returns the sigv4_verify code; r gets the result. */
static int verify_raw(sigv4_verifier *v, const char *raw, sigv4_result *r)
{
	buf b;
	buf_init(&b, 1 << 20);
	for (const char *p = raw; *p; p++) {
		if (*p == '\n')
			buf_addc(&b, '\r');
		buf_addc(&b, *p);
	}
	buf_adds(&b, "\r\n");
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits);
	size_t used = 0;
	int prc = http_parser_feed(p, b.data, b.len, &used);
	CHECK(prc == HTTP_PARSE_HEAD || prc == HTTP_PARSE_DONE);
	int rc = ERR_PARSE;
	if (prc == HTTP_PARSE_HEAD || prc == HTTP_PARSE_DONE)
		rc = sigv4_verify(v, http_parser_message(p), r);
	http_parser_free(&p);
	buf_free(&b);
	return rc;
}

/* Verify and expect an S3 error code (NULL: success). */
static void expect(sigv4_verifier *v, const char *raw, const char *code, int status)
{
	sigv4_result r;
	int rc = verify_raw(v, raw, &r);
	if (!code) {
		if (rc != 0)
			fprintf(stderr, "unexpected %s: %s\n", r.error.code, r.error.message);
		CHECK_EQ_INT(rc, 0);
	} else {
		CHECK(rc != 0);
		CHECK_EQ_STR(r.error.code, code);
		CHECK_EQ_INT(r.error.status, status);
		/* no failure hands out the signing key */
		static const unsigned char zero[32];
		CHECK(memcmp(r.chain.key, zero, 32) == 0);
	}
	sigv4_result_clear(&r);
}

/* ------------------------------------------------------------- AWS's examples */

/* [H] Example: GET Object (Range). */
static const char *const GET_OBJECT =
	"GET /test.txt HTTP/1.1\n"
	"Host: examplebucket.s3.amazonaws.com\n"
	"Authorization: AWS4-HMAC-SHA256 Credential=" CRED_2013 ","
	"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
	"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\n"
	"Range: bytes=0-9\n"
	"x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
	"x-amz-date: 20130524T000000Z\n";

static void test_aws_get_object(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	sigv4_result r;
	CHECK_EQ_INT(verify_raw(v, GET_OBJECT, &r), 0);
	CHECK_EQ_STR(r.access_key_id, AKID);
	CHECK_EQ_STR(r.region, "us-east-1");
	CHECK(!r.presigned);
	CHECK_EQ_INT(r.payload, SIGV4_PAYLOAD_SHA256);
	CHECK_EQ_INT(r.request_time, T2013);
	CHECK_EQ_STR(r.chain.seed, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	/* the empty body matches the signed payload hash */
	unsigned char h[32];
	sigv4_error e;
	util_sha256("", 0, h);
	CHECK_EQ_INT(sigv4_payload_check(&r, h, &e), 0);
	sigv4_result_clear(&r);
	/* one flipped digit of the signature */
	char *bad = strdup(GET_OBJECT);
	char *sig = strstr(bad, "Signature=f0e8") + 10;
	sig[0] = 'e';
	expect(v, bad, "SignatureDoesNotMatch", 403);
	free(bad);
	sigv4_verifier_free(&v);
	CHECK(v == NULL);
}

/* The header signer reproduces the same Authorization value. */
static void test_aws_get_object_signer(void)
{
	sigv4_param headers[] = {
		{"Host", "examplebucket.s3.amazonaws.com"},
		{"Range", "bytes=0-9"},
		{"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
		{"x-amz-date", AMZ_2013},
	};
	sigv4_sign_params p = {
		.method = "GET",
		.path = "/test.txt",
		.headers = headers,
		.header_count = 4,
		.payload_hash = SIGV4_EMPTY_SHA256,
		.access_key_id = AKID,
		.secret_access_key = SECRET,
		.region = "us-east-1",
		.now_s = T2013,
	};
	buf b;
	buf_init(&b, 4096);
	CHECK_EQ_INT(sigv4_sign(&p, &b), 0);
	CHECK_EQ_STR(b.data, "AWS4-HMAC-SHA256 Credential=" CRED_2013 ", "
			     "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
			     "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	buf_free(&b);
	/* no host header: refused */
	p.headers = headers + 1;
	p.header_count = 3;
	buf_init(&b, 4096);
	CHECK_EQ_INT(sigv4_sign(&p, &b), ERR_INVAL);
	buf_free(&b);
}

/* [H] Example: PUT Object, "/test$file.text": '$' is encoded %24 in the
 * canonical URI whether the client sent it raw or escaped. */
static const char *const PUT_OBJECT_FMT =
	"PUT %s HTTP/1.1\n"
	"Host: examplebucket.s3.amazonaws.com\n"
	"Date: Fri, 24 May 2013 00:00:00 GMT\n"
	"Authorization: AWS4-HMAC-SHA256 Credential=" CRED_2013 ","
	"SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
	"Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd\n"
	"x-amz-date: 20130524T000000Z\n"
	"x-amz-storage-class: REDUCED_REDUNDANCY\n"
	"x-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
	"Content-Length: 21\n";

static void test_aws_put_object(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	char raw[2048];
	const char *targets[] = {"/test$file.text", "/test%24file.text", "/test%24file%2etext"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(raw, sizeof raw, PUT_OBJECT_FMT, targets[i]);
		sigv4_result r;
		CHECK_EQ_INT(verify_raw(v, raw, &r), 0);
		CHECK_EQ_INT(r.payload, SIGV4_PAYLOAD_SHA256);
		/* the caller's body check: AWS's body matches, another does not */
		unsigned char h[32];
		sigv4_error e;
		util_sha256("Welcome to Amazon S3.", 21, h);
		CHECK_EQ_INT(sigv4_payload_check(&r, h, &e), 0);
		util_sha256("Welcome to Amazon S4.", 21, h);
		CHECK_EQ_INT(sigv4_payload_check(&r, h, &e), ERR_AUTH);
		CHECK_EQ_STR(e.code, "XAmzContentSHA256Mismatch");
		CHECK_EQ_INT(e.status, 400);
		sigv4_result_clear(&r);
	}
	/* S3 does not double-encode: "%2524" names the key "test%24file.text" */
	snprintf(raw, sizeof raw, PUT_OBJECT_FMT, "/test%2524file.text");
	expect(v, raw, "SignatureDoesNotMatch", 403);
	/* the storage class is signed: changing it breaks the signature */
	snprintf(raw, sizeof raw, PUT_OBJECT_FMT, "/test$file.text");
	char *sc = strstr(raw, "REDUCED_REDUNDANCY");
	memcpy(sc, "STANDARD_IA_XXXXXX", 18);
	expect(v, raw, "SignatureDoesNotMatch", 403);
	sigv4_verifier_free(&v);
}

/* [H] Example: GET Bucket Lifecycle ("?lifecycle", a bare name -> "lifecycle="). */
static void test_aws_get_bucket_lifecycle(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	expect(v,
	       "GET /?lifecycle HTTP/1.1\n"
	       "Host: examplebucket.s3.amazonaws.com\n"
	       "Authorization: AWS4-HMAC-SHA256 Credential=" CRED_2013 ","
	       "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
	       "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543\n"
	       "x-amz-date: 20130524T000000Z\n"
	       "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\n",
	       NULL, 0);
	/* "lifecycle=" is the same canonical query */
	expect(v,
	       "GET /?lifecycle= HTTP/1.1\n"
	       "Host: examplebucket.s3.amazonaws.com\n"
	       "Authorization: AWS4-HMAC-SHA256 Credential=" CRED_2013 ","
	       "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
	       "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543\n"
	       "x-amz-date: 20130524T000000Z\n"
	       "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\n",
	       NULL, 0);
	sigv4_verifier_free(&v);
}

/* [H] Example: Get Bucket (List Objects), "?max-keys=2&prefix=J"; the query
 * is sorted, so the other order verifies too. */
static void test_aws_list_objects(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	const char *targets[] = {"/?max-keys=2&prefix=J", "/?prefix=J&max-keys=2"};
	for (size_t i = 0; i < 2; i++) {
		char raw[1024];
		snprintf(raw, sizeof raw,
			 "GET %s HTTP/1.1\n"
			 "Host: examplebucket.s3.amazonaws.com\n"
			 "Authorization: AWS4-HMAC-SHA256 Credential=" CRED_2013 ","
			 "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
			 "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7\n"
			 "x-amz-date: 20130524T000000Z\n"
			 "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\n",
			 targets[i]);
		expect(v, raw, NULL, 0);
	}
	sigv4_verifier_free(&v);
}

#define PRESIGNED_QUERY                                                                            \
	"X-Amz-Algorithm=AWS4-HMAC-SHA256"                                                         \
	"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"       \
	"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
#define PRESIGNED_SIG "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"

/* [Q] Example: presigned GET /test.txt for 86400 s; the signer builds
 * exactly AWS's URL, and the verifier accepts it until it expires. */
static void test_aws_presigned(void)
{
	sigv4_param host[] = {{"host", "examplebucket.s3.amazonaws.com"}};
	sigv4_sign_params p = {
		.method = "GET",
		.path = "/test.txt",
		.headers = host,
		.header_count = 1,
		.access_key_id = AKID,
		.secret_access_key = SECRET,
		.region = "us-east-1",
		.now_s = T2013,
		.expires_s = 86400,
	};
	buf b;
	buf_init(&b, 4096);
	CHECK_EQ_INT(sigv4_presign(&p, &b), 0);
	CHECK_EQ_STR(b.data, "/test.txt?" PRESIGNED_QUERY "&X-Amz-Signature=" PRESIGNED_SIG);
	buf_free(&b);

	sigv4_verifier *v = verifier("us-east-1");
	const char *raw = "GET /test.txt?" PRESIGNED_QUERY "&X-Amz-Signature=" PRESIGNED_SIG
			  " HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n";
	sigv4_result r;
	CHECK_EQ_INT(verify_raw(v, raw, &r), 0);
	CHECK(r.presigned);
	CHECK_EQ_INT(r.payload, SIGV4_PAYLOAD_UNSIGNED);
	CHECK_EQ_STR(r.access_key_id, AKID);
	sigv4_result_clear(&r);
	/* expiry: valid through date + expires, expired one second later */
	fake_now = T2013 + 86400;
	expect(v, raw, NULL, 0);
	fake_now = T2013 + 86401;
	expect(v, raw, "AccessDenied", 403);
	verify_raw(v, raw, &r);
	CHECK_EQ_STR(r.error.message, "Request has expired");
	/* dated in the future: fine within the skew, not beyond */
	fake_now = T2013 - 900;
	expect(v, raw, NULL, 0);
	fake_now = T2013 - 901;
	expect(v, raw, "AccessDenied", 403);
	verify_raw(v, raw, &r);
	CHECK_EQ_STR(r.error.message, "Request is not valid yet");
	fake_now = T2013;
	/* a different host (the URL used elsewhere) breaks it */
	expect(v,
	       "GET /test.txt?" PRESIGNED_QUERY "&X-Amz-Signature=" PRESIGNED_SIG
	       " HTTP/1.1\nHost: otherbucket.s3.amazonaws.com\n",
	       "SignatureDoesNotMatch", 403);
	/* the parameters in another order still verify (the query is sorted) */
	expect(v,
	       "GET /test.txt?X-Amz-Signature=" PRESIGNED_SIG
	       "&X-Amz-SignedHeaders=host&X-Amz-Expires=86400&X-Amz-Date=20130524T000000Z"
	       "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
	       "&X-Amz-Algorithm=AWS4-HMAC-SHA256 HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n",
	       NULL, 0);
	/* whoever holds the URL cannot add an x-amz-* header (an ACL...) */
	expect(v,
	       "GET /test.txt?" PRESIGNED_QUERY "&X-Amz-Signature=" PRESIGNED_SIG
	       " HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\nx-amz-acl: public-read\n",
	       "AccessDenied", 403);
	/* ...but an unsigned x-amz-content-sha256 is not read, so allowed */
	expect(v,
	       "GET /test.txt?" PRESIGNED_QUERY "&X-Amz-Signature=" PRESIGNED_SIG
	       " HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\nx-amz-content-sha256: UNSIGNED-PAYLOAD\n",
	       NULL, 0);
	/* an extra parameter that was not signed breaks it */
	expect(v,
	       "GET /test.txt?" PRESIGNED_QUERY "&X-Amz-Signature=" PRESIGNED_SIG
	       "&response-content-type=text%2Fhtml HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n",
	       "SignatureDoesNotMatch", 403);
	sigv4_verifier_free(&v);
}

/* [S] the seed signature of the chunked upload example (66560 bytes of 'a'). */
static void test_aws_streaming_seed(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	sigv4_result r;
	CHECK_EQ_INT(
		verify_raw(v,
			   "PUT /examplebucket/chunkObject.txt HTTP/1.1\n"
			   "Host: s3.amazonaws.com\n"
			   "x-amz-date: 20130524T000000Z\n"
			   "x-amz-storage-class: REDUCED_REDUNDANCY\n"
			   "Authorization: AWS4-HMAC-SHA256 Credential=" CRED_2013 ","
			   "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;"
			   "x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
			   "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\n"
			   "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\n"
			   "Content-Encoding: aws-chunked\n"
			   "x-amz-decoded-content-length: 66560\n"
			   "Content-Length: 66824\n",
			   &r),
		0);
	CHECK_EQ_INT(r.payload, SIGV4_PAYLOAD_STREAMING);
	CHECK_EQ_INT(r.decoded_length, 66560);
	CHECK_EQ_STR(r.chain.seed, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
	CHECK_EQ_STR(r.chain.amz_date, AMZ_2013);
	CHECK_EQ_STR(r.chain.scope, "20130524/us-east-1/s3/aws4_request");
	/* the chain's first link: AWS's first chunk signature (64 KiB of 'a') */
	char *data = malloc(65536);
	memset(data, 'a', 65536);
	unsigned char h[32];
	util_sha256(data, 65536, h);
	char sig[65];
	sigv4_chunk_signature(&r.chain, r.chain.seed, h, sig);
	CHECK_EQ_STR(sig, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
	free(data);
	sigv4_result_clear(&r);
	sigv4_verifier_free(&v);
}

/* [T] the seed signature of the example with a trailing checksum. */
static void test_aws_trailer_seed(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	sigv4_result r;
	CHECK_EQ_INT(
		verify_raw(v,
			   "PUT /examplebucket/chunkObject.txt HTTP/1.1\n"
			   "Host: s3.amazonaws.com\n"
			   "x-amz-date: 20130524T000000Z\n"
			   "x-amz-storage-class: REDUCED_REDUNDANCY\n"
			   "Authorization: AWS4-HMAC-SHA256 Credential=" CRED_2013 ","
			   "SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;"
			   "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"
			   "Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e\n"
			   "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER\n"
			   "Content-Encoding: aws-chunked\n"
			   "x-amz-decoded-content-length: 66560\n"
			   "x-amz-trailer: x-amz-checksum-crc32c\n"
			   "Content-Length: 66824\n",
			   &r),
		0);
	CHECK_EQ_INT(r.payload, SIGV4_PAYLOAD_STREAMING_TRAILER);
	CHECK_EQ_STR(r.chain.seed, "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
	sigv4_result_clear(&r);
	sigv4_verifier_free(&v);
}

/* ------------------------------------------------------------- canonicalization */

/* Sign the GET of target_path (unencoded) with query params and headers;
 * returns the Authorization value (static). */
static const char *auth_for(const char *method, const char *path, const sigv4_param *q, size_t nq,
			    const sigv4_param *h, size_t nh, const char *payload, int64_t now)
{
	static char out[1024];
	sigv4_sign_params p = {
		.method = method,
		.path = path,
		.query = q,
		.query_count = nq,
		.headers = h,
		.header_count = nh,
		.payload_hash = payload,
		.access_key_id = AKID,
		.secret_access_key = SECRET,
		.region = "us-east-1",
		.now_s = now,
	};
	buf b;
	buf_init(&b, sizeof out - 1);
	int rc = sigv4_sign(&p, &b);
	CHECK_EQ_INT(rc, 0);
	snprintf(out, sizeof out, "%s", rc ? "" : b.data);
	buf_free(&b);
	return out;
}

#define STD_HEADERS(host)                                                                         \
	{"host", host}, {"x-amz-date", AMZ_2013}, { "x-amz-content-sha256", SIGV4_EMPTY_SHA256 }

/* Header values are trimmed and inner whitespace collapsed; the order of the
 * fields in the request does not matter; a repeated field is one header with
 * its values joined by ','. */
static void test_header_canonicalization(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	sigv4_param h[] = {STD_HEADERS("example.com"),
			   {"x-amz-meta-note", "a b c"},
			   {"x-amz-meta-list", "1"},
			   {"X-Amz-Meta-List", "2"}};
	const char *auth = auth_for("GET", "/b/k", NULL, 0, h, 6, SIGV4_EMPTY_SHA256, T2013);
	CHECK(strstr(auth, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-list;"
			   "x-amz-meta-note,") != NULL);
	char raw[2048];
	snprintf(raw, sizeof raw,
		 "GET /b/k HTTP/1.1\n"
		 "X-AMZ-META-NOTE: \t a   b \t c  \n"
		 "x-amz-meta-list: 1\n"
		 "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\n"
		 "Authorization: %s\n"
		 "HOST: example.com\n"
		 "x-amz-meta-list:2\n"
		 "X-Amz-Date: " AMZ_2013 "\n",
		 auth);
	expect(v, raw, NULL, 0);
	/* the repeated field in the other order is another value ("2,1") */
	snprintf(raw, sizeof raw,
		 "GET /b/k HTTP/1.1\n"
		 "x-amz-meta-note: a b c\n"
		 "x-amz-meta-list: 2\n"
		 "x-amz-meta-list: 1\n"
		 "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\n"
		 "Authorization: %s\n"
		 "Host: example.com\n"
		 "X-Amz-Date: " AMZ_2013 "\n",
		 auth);
	expect(v, raw, "SignatureDoesNotMatch", 403);
	/* a space inside a value is not nothing: "ab c" differs from "a b c" */
	snprintf(raw, sizeof raw,
		 "GET /b/k HTTP/1.1\n"
		 "x-amz-meta-note: ab c\n"
		 "x-amz-meta-list: 1\n"
		 "x-amz-meta-list: 2\n"
		 "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\n"
		 "Authorization: %s\n"
		 "Host: example.com\n"
		 "X-Amz-Date: " AMZ_2013 "\n",
		 auth);
	expect(v, raw, "SignatureDoesNotMatch", 403);
	/* Authorization's components in another order, without spaces */
	const char *cred = strstr(auth, "Credential=");
	const char *sh = strstr(auth, "SignedHeaders=");
	const char *sig = strstr(auth, "Signature=");
	snprintf(raw, sizeof raw,
		 "GET /b/k HTTP/1.1\n"
		 "x-amz-meta-note: a b c\n"
		 "x-amz-meta-list: 1\n"
		 "x-amz-meta-list: 2\n"
		 "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\n"
		 "Authorization: AWS4-HMAC-SHA256 %s,%.*s,%.*s\n"
		 "Host: example.com\n"
		 "X-Amz-Date: " AMZ_2013 "\n",
		 sig, (int)(sig - sh - 2), sh, (int)(sh - cred - 2), cred);
	expect(v, raw, NULL, 0);
	sigv4_verifier_free(&v);
}

/* Query encoding: the signed value "a b+c~ü/=&" may travel with a space as
 * %20 or '+', '~' raw or %7E, hex in either case; a literal '+' must travel
 * as %2B (a raw '+' is a space, as S3 reads it). Path segments likewise, where
 * '+' is a literal plus and '/' separates segments. */
static void test_query_and_path_encoding(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	sigv4_param q[] = {{"prefix", "a b+c~\xc3\xbc/=&"}, {"delimiter", "/"}, {"uploads", NULL}};
	sigv4_param h[] = {STD_HEADERS("example.com")};
	const char *path = "/bucket/a b/\xc3\xbc+~!.txt";
	char auth[1024];
	snprintf(auth, sizeof auth, "%s", auth_for("GET", path, q, 3, h, 3, SIGV4_EMPTY_SHA256, T2013));
	static const struct {
		const char *target;
		const char *code;
	} cases[] = {
		{"/bucket/a%20b/%C3%BC%2B~%21.txt?prefix=a%20b%2Bc~%C3%BC%2F%3D%26&delimiter=%2F&uploads",
		 NULL},
		{"/bucket/a%20b/%c3%bc+%7E!.txt?uploads=&delimiter=/&prefix=a+b%2bc%7e%c3%bc/%3D%26",
		 NULL},
		/* a raw '+' in the query is a space, not the plus that was signed */
		{"/bucket/a%20b/%C3%BC+~!.txt?prefix=a+b+c~%C3%BC%2F%3D%26&delimiter=%2F&uploads",
		 "SignatureDoesNotMatch"},
		/* in the path '+' is a plus: "a+b" is not "a b" */
		{"/bucket/a+b/%C3%BC+~!.txt?prefix=a%20b%2Bc~%C3%BC%2F%3D%26&delimiter=%2F&uploads",
		 "SignatureDoesNotMatch"},
		/* %2F in the path is a '/' like any other */
		{"/bucket%2Fa%20b/%C3%BC+~!.txt?prefix=a%20b%2Bc~%C3%BC%2F%3D%26&delimiter=%2F&uploads",
		 NULL},
		/* a broken escape */
		{"/bucket/a%2/x?uploads", "InvalidURI"},
		{"/bucket/x?prefix=%G1", "InvalidURI"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char raw[2048];
		snprintf(raw, sizeof raw,
			 "GET %s HTTP/1.1\nHost: example.com\nx-amz-date: " AMZ_2013
			 "\nx-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\nAuthorization: %s\n",
			 cases[i].target, auth);
		expect(v, raw, cases[i].code, cases[i].code ? (cases[i].code[0] == 'S' ? 403 : 400) : 0);
	}
	/* the presigned form of the same: the URL the signer builds verifies */
	sigv4_sign_params p = {
		.method = "PUT",
		.path = path,
		.query = q,
		.query_count = 3,
		.headers = h,
		.header_count = 1,
		.access_key_id = AKID,
		.secret_access_key = SECRET,
		.region = "us-east-1",
		.now_s = T2013,
		.expires_s = 60,
	};
	buf b;
	buf_init(&b, 4096);
	CHECK_EQ_INT(sigv4_presign(&p, &b), 0);
	/* sorted by byte: "X-Amz-*" before the lower-case names; the signature last */
	CHECK(strncmp(b.data, "/bucket/a%20b/%C3%BC%2B~%21.txt?X-Amz-Algorithm=", 48) == 0);
	CHECK(strstr(b.data, "&X-Amz-SignedHeaders=host&delimiter=%2F&prefix=a%20b%2Bc~%C3%BC%2F%3D%26"
			     "&uploads=&X-Amz-Signature=") != NULL);
	char raw[4096];
	snprintf(raw, sizeof raw, "PUT %s HTTP/1.1\nHost: example.com\nContent-Length: 0\n", b.data);
	expect(v, raw, NULL, 0);
	buf_free(&b);
	sigv4_verifier_free(&v);
}

/* ------------------------------------------------------------- every error */

/* A header-auth GET of /b/k signed at `signed_at` with the std headers,
 * with `extra` header lines appended after the signing. */
static void signed_get(char *raw, size_t cap, int64_t signed_at, const char *extra)
{
	char date[17];
	sigv4_amz_date(signed_at, date);
	sigv4_param h[] = {{"host", "example.com"},
			   {"x-amz-date", date},
			   {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
	const char *auth = auth_for("GET", "/b/k", NULL, 0, h, 3, SIGV4_EMPTY_SHA256, signed_at);
	snprintf(raw, cap,
		 "GET /b/k HTTP/1.1\nHost: example.com\nx-amz-date: %s\n"
		 "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\nAuthorization: %s\n%s",
		 date, auth, extra);
}

/* RequestTimeTooSkewed exactly beyond 15 minutes either way. */
static void test_skew_boundaries(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	char raw[2048];
	signed_get(raw, sizeof raw, T2013, "");
	fake_now = T2013 + 900;
	expect(v, raw, NULL, 0);
	fake_now = T2013 + 901;
	expect(v, raw, "RequestTimeTooSkewed", 403);
	fake_now = T2013 - 900;
	expect(v, raw, NULL, 0);
	fake_now = T2013 - 901;
	expect(v, raw, "RequestTimeTooSkewed", 403);
	fake_now = T2013;
	/* the Date header when there is no x-amz-date */
	sigv4_param h[] = {{"host", "example.com"},
			   {"date", "Fri, 24 May 2013 00:00:00 GMT"},
			   {"x-amz-content-sha256", SIGV4_EMPTY_SHA256}};
	const char *auth = auth_for("GET", "/b/k", NULL, 0, h, 3, SIGV4_EMPTY_SHA256, T2013);
	snprintf(raw, sizeof raw,
		 "GET /b/k HTTP/1.1\nHost: example.com\nDate: Fri, 24 May 2013 00:00:00 GMT\n"
		 "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\nAuthorization: %s\n",
		 auth);
	expect(v, raw, NULL, 0);
	fake_now = T2013 + 901;
	expect(v, raw, "RequestTimeTooSkewed", 403);
	sigv4_verifier_free(&v);
}

static void test_errors_header_auth(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	char raw[4096], good[2048];
	signed_get(good, sizeof good, T2013, "");
	const char *auth_line = strstr(good, "Authorization: ");
	const char *sig = strstr(good, "Signature=") + 10;
	/* replace one piece of the Authorization header */
#define WITH_AUTH(value)                                                                           \
	snprintf(raw, sizeof raw,                                                                  \
		 "GET /b/k HTTP/1.1\nHost: example.com\nx-amz-date: " AMZ_2013                     \
		 "\nx-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\nAuthorization: %s\n",            \
		 value)
	char a[1024];

	/* anonymous: no authentication at all */
	sigv4_result r;
	CHECK_EQ_INT(verify_raw(v, "GET /b/k HTTP/1.1\nHost: example.com\n", &r), ERR_NOTFOUND);
	CHECK_EQ_STR(r.error.code, "AccessDenied");

	/* InvalidAccessKeyId */
	snprintf(a, sizeof a,
		 "AWS4-HMAC-SHA256 Credential=AKIDUNKNOWN/20130524/us-east-1/s3/aws4_request, "
		 "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=%.64s",
		 sig);
	WITH_AUTH(a);
	expect(v, raw, "InvalidAccessKeyId", 403);

	/* SignatureDoesNotMatch: the right key id with another secret */
	current_secret = "another-secret";
	expect(v, good, "SignatureDoesNotMatch", 403);
	current_secret = SECRET;
	expect(v, good, NULL, 0);
	/* ... a signature of the wrong shape */
	snprintf(a, sizeof a,
		 "AWS4-HMAC-SHA256 Credential=" CRED_2013
		 ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=%.63s",
		 sig);
	WITH_AUTH(a);
	expect(v, raw, "SignatureDoesNotMatch", 403);
	/* ... upper-case hex is the same signature */
	snprintf(a, sizeof a, "%.*s", (int)(strchr(auth_line, '\n') - auth_line - 15), auth_line + 15);
	for (char *p = strstr(a, "Signature=") + 10; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
	WITH_AUTH(a);
	expect(v, raw, NULL, 0);

	/* AuthorizationHeaderMalformed: credential, scope, components */
	static const struct {
		const char *credential;
		const char *signed_headers;
		const char *message_part;
	} malformed[] = {
		{AKID "/20130524/us-east-1/s3", "host;x-amz-content-sha256;x-amz-date", "mal-formed"},
		{AKID "/2013052/us-east-1/s3/aws4_request", "host;x-amz-content-sha256;x-amz-date",
		 "mal-formed"},
		{AKID "/20130524/eu-west-1/s3/aws4_request", "host;x-amz-content-sha256;x-amz-date",
		 "the region 'eu-west-1' is wrong; expecting 'us-east-1'"},
		{AKID "/20130524/us-east-1/ec2/aws4_request", "host;x-amz-content-sha256;x-amz-date",
		 "incorrect service \"ec2\""},
		{AKID "/20130524/us-east-1/s3/aws5_request", "host;x-amz-content-sha256;x-amz-date",
		 "incorrect terminal \"aws5_request\""},
		{AKID "/20130525/us-east-1/s3/aws4_request", "host;x-amz-content-sha256;x-amz-date",
		 "Invalid credential date \"20130525\""},
		{CRED_2013, "x-amz-content-sha256;x-amz-date", "'host' must be a signed header"},
		{CRED_2013, "host;X-Amz-Date", "lower-case"},
		{CRED_2013, "host;;x-amz-date", "lower-case"},
	};
	for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
		snprintf(a, sizeof a,
			 "AWS4-HMAC-SHA256 Credential=%s, SignedHeaders=%s, Signature=%.64s",
			 malformed[i].credential, malformed[i].signed_headers, sig);
		WITH_AUTH(a);
		expect(v, raw, "AuthorizationHeaderMalformed", 400);
		verify_raw(v, raw, &r);
		if (!strstr(r.error.message, malformed[i].message_part))
			fprintf(stderr, "case %zu: message \"%s\"\n", i, r.error.message);
		CHECK(strstr(r.error.message, malformed[i].message_part) != NULL);
	}
	WITH_AUTH("AWS4-HMAC-SHA256 Credential=" CRED_2013 ", Signature=00");
	expect(v, raw, "AuthorizationHeaderMalformed", 400);
	WITH_AUTH("AWS4-HMAC-SHA256 Credential=" CRED_2013 ", Credential=" CRED_2013
		  ", SignedHeaders=host, Signature=00");
	expect(v, raw, "AuthorizationHeaderMalformed", 400);
	WITH_AUTH("AWS4-HMAC-SHA256 Credential=" CRED_2013 ", Region=x, SignedHeaders=host, "
		  "Signature=00");
	expect(v, raw, "AuthorizationHeaderMalformed", 400);
	/* another mechanism (SigV2) */
	WITH_AUTH("AWS " AKID ":frJIUN8DYpKDtOLCwo//yllqDzg=");
	expect(v, raw, "InvalidRequest", 400);
	WITH_AUTH("AWS4-HMAC-SHA512 Credential=" CRED_2013);
	expect(v, raw, "InvalidRequest", 400);

	/* AccessDenied: no usable date; an x-amz-* header that was not signed */
	snprintf(raw, sizeof raw,
		 "GET /b/k HTTP/1.1\nHost: example.com\nx-amz-content-sha256: " SIGV4_EMPTY_SHA256
		 "\nAuthorization: %.*s\n",
		 (int)(strchr(auth_line, '\n') - auth_line - 15), auth_line + 15);
	expect(v, raw, "AccessDenied", 403);
	snprintf(raw, sizeof raw,
		 "GET /b/k HTTP/1.1\nHost: example.com\nx-amz-date: 2013-05-24T00:00:00Z\n"
		 "x-amz-content-sha256: " SIGV4_EMPTY_SHA256 "\nAuthorization: %.*s\n",
		 (int)(strchr(auth_line, '\n') - auth_line - 15), auth_line + 15);
	expect(v, raw, "AccessDenied", 403);
	signed_get(raw, sizeof raw, T2013, "x-amz-acl: public-read\n");
	expect(v, raw, "AccessDenied", 403);
	verify_raw(v, raw, &r);
	CHECK_EQ_STR(r.error.message, "There were headers present in the request which were not signed");
	/* ...a header that is not x-amz-* and not signed is fine */
	signed_get(raw, sizeof raw, T2013, "User-Agent: test\n");
	expect(v, raw, NULL, 0);

	/* InvalidRequest: no x-amz-content-sha256 */
	sigv4_param h[] = {{"host", "example.com"}, {"x-amz-date", AMZ_2013}};
	snprintf(raw, sizeof raw,
		 "GET /b/k HTTP/1.1\nHost: example.com\nx-amz-date: " AMZ_2013 "\nAuthorization: %s\n",
		 auth_for("GET", "/b/k", NULL, 0, h, 2, SIGV4_EMPTY_SHA256, T2013));
	expect(v, raw, "InvalidRequest", 400);
	verify_raw(v, raw, &r);
	CHECK_EQ_STR(r.error.message, "Missing required header for this request: x-amz-content-sha256");
	/* InvalidArgument: a payload hash that is none of the accepted forms */
	sigv4_param h2[] = {{"host", "example.com"}, {"x-amz-date", AMZ_2013},
			    {"x-amz-content-sha256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"}};
	snprintf(raw, sizeof raw,
		 "GET /b/k HTTP/1.1\nHost: example.com\nx-amz-date: " AMZ_2013
		 "\nx-amz-content-sha256: %s\nAuthorization: %s\n",
		 h2[2].value, auth_for("GET", "/b/k", NULL, 0, h2, 3, h2[2].value, T2013));
	expect(v, raw, "InvalidArgument", 400);
	/* MissingContentLength: a streaming body without its decoded length */
	sigv4_param h3[] = {{"host", "example.com"}, {"x-amz-date", AMZ_2013},
			    {"x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}};
	snprintf(raw, sizeof raw,
		 "PUT /b/k HTTP/1.1\nHost: example.com\nx-amz-date: " AMZ_2013
		 "\nx-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\nContent-Length: 0\n"
		 "Authorization: %s\n",
		 auth_for("PUT", "/b/k", NULL, 0, h3, 3, h3[2].value, T2013));
	expect(v, raw, "MissingContentLength", 411);
	/* InvalidArgument: both mechanisms at once */
	snprintf(raw, sizeof raw,
		 "GET /test.txt?%s&X-Amz-Signature=" PRESIGNED_SIG
		 " HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\nAuthorization: %.*s\n",
		 PRESIGNED_QUERY, (int)(strchr(auth_line, '\n') - auth_line - 15), auth_line + 15);
	expect(v, raw, "InvalidArgument", 400);
	/* InvalidToken: temporary credentials */
	signed_get(raw, sizeof raw, T2013, "x-amz-security-token: FQoGZXIvYXdzE\n");
	expect(v, raw, "InvalidToken", 400);
	/* InternalError when the key store itself fails; the message says nothing more */
	lookup_fails = 1;
	expect(v, good, "InternalError", 500);
	lookup_fails = 0;
#undef WITH_AUTH
	sigv4_verifier_free(&v);
}

static void test_errors_presigned(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	static const struct {
		const char *query;
		const char *code;
		const char *message_part;
	} cases[] = {
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AKID
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
		 "&X-Amz-SignedHeaders=host&X-Amz-Signature=" PRESIGNED_SIG,
		 "AuthorizationQueryParametersError", "requires the X-Amz-Algorithm"},
		{PRESIGNED_QUERY "&X-Amz-Signature=" PRESIGNED_SIG "&X-Amz-Expires=86400",
		 "AuthorizationQueryParametersError", "more than once"},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA1&X-Amz-Credential=" AKID
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
		 "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=" PRESIGNED_SIG,
		 "AuthorizationQueryParametersError", "only supports"},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AKID
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
		 "&X-Amz-Expires=0&X-Amz-SignedHeaders=host&X-Amz-Signature=" PRESIGNED_SIG,
		 "AuthorizationQueryParametersError", "non-negative"},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AKID
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
		 "&X-Amz-Expires=604801&X-Amz-SignedHeaders=host&X-Amz-Signature=" PRESIGNED_SIG,
		 "AuthorizationQueryParametersError", "604800"},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AKID
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
		 "&X-Amz-Expires=1h&X-Amz-SignedHeaders=host&X-Amz-Signature=" PRESIGNED_SIG,
		 "AuthorizationQueryParametersError", "should be a number"},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AKID
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524&X-Amz-Expires=86400"
		 "&X-Amz-SignedHeaders=host&X-Amz-Signature=" PRESIGNED_SIG,
		 "AuthorizationQueryParametersError", "ISO8601"},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AKID
		 "%2F20130524%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
		 "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=" PRESIGNED_SIG,
		 "AuthorizationQueryParametersError",
		 "Error parsing the X-Amz-Credential parameter; the region 'us-west-2' is wrong"},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AKID
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
		 "&X-Amz-Expires=86400&X-Amz-SignedHeaders=range&X-Amz-Signature=" PRESIGNED_SIG,
		 "AuthorizationQueryParametersError", "host"},
		{PRESIGNED_QUERY "&X-Amz-Signature=" PRESIGNED_SIG "&X-Amz-Security-Token=abc",
		 "InvalidToken", "not supported"},
		{PRESIGNED_QUERY "&X-Amz-Signature=" PRESIGNED_SIG
		 "&X-Amz-Content-Sha256=STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
		 "InvalidArgument", "x-amz-content-sha256"},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDOTHER"
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
		 "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=" PRESIGNED_SIG,
		 "InvalidAccessKeyId", "does not exist"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char raw[2048];
		snprintf(raw, sizeof raw, "GET /test.txt?%s HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n",
			 cases[i].query);
		sigv4_result r;
		int rc = verify_raw(v, raw, &r);
		CHECK_EQ_INT(rc, ERR_AUTH);
		CHECK_EQ_STR(r.error.code, cases[i].code);
		if (!strstr(r.error.message, cases[i].message_part))
			fprintf(stderr, "case %zu: %s: \"%s\"\n", i, r.error.code, r.error.message);
		CHECK(strstr(r.error.message, cases[i].message_part) != NULL);
	}
	sigv4_verifier_free(&v);
}

/* A verifier for any region takes the scope's region (still signed). */
static void test_any_region(void)
{
	sigv4_verifier *v = verifier(NULL);
	expect(v, GET_OBJECT, NULL, 0);
	sigv4_verifier_free(&v);
	v = verifier("eu-central-1");
	expect(v, GET_OBJECT, "AuthorizationHeaderMalformed", 400);
	sigv4_verifier_free(&v);
}

/* The signing key is derived once per (key, date, region, secret). */
static void test_key_cache(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	uint64_t derived, cached;
	expect(v, GET_OBJECT, NULL, 0);
	expect(v, GET_OBJECT, NULL, 0);
	expect(v, GET_OBJECT, NULL, 0);
	sigv4_verifier_stats(v, &derived, &cached);
	CHECK_EQ_INT(derived, 1);
	CHECK_EQ_INT(cached, 2);
	/* a rotated secret must not reuse the old key */
	current_secret = "rotated";
	expect(v, GET_OBJECT, "SignatureDoesNotMatch", 403);
	sigv4_verifier_stats(v, &derived, &cached);
	CHECK_EQ_INT(derived, 2);
	current_secret = SECRET;
	expect(v, GET_OBJECT, NULL, 0);
	/* fill the cache with other days: the oldest entries are dropped, never more kept */
	char raw[2048];
	for (int i = 0; i < SIGV4_KEY_CACHE + 5; i++) {
		fake_now = T2013 + (int64_t)i * 86400;
		signed_get(raw, sizeof raw, fake_now, "");
		expect(v, raw, NULL, 0);
	}
	fake_now = T2013;
	sigv4_verifier_stats(v, &derived, &cached);
	uint64_t before = derived;
	expect(v, GET_OBJECT, NULL, 0); /* evicted: derived again */
	sigv4_verifier_stats(v, &derived, &cached);
	CHECK_EQ_INT(derived, before + 1);
	sigv4_verifier_free(&v);
	sigv4_verifier_free(&v); /* no-op on NULL */
}

/* The derivation depends on each of its inputs (its value is pinned by every
 * AWS vector above). */
static void test_signing_key_inputs(void)
{
	unsigned char a[32], b[32];
	sigv4_signing_key(SECRET, "20130524", "us-east-1", a);
	sigv4_signing_key(SECRET, "20130525", "us-east-1", b);
	CHECK(memcmp(a, b, 32) != 0);
	sigv4_signing_key(SECRET, "20130524", "us-east-2", b);
	CHECK(memcmp(a, b, 32) != 0);
	sigv4_signing_key("x" SECRET, "20130524", "us-east-1", b);
	CHECK(memcmp(a, b, 32) != 0);
	sigv4_signing_key(SECRET, "20130524", "us-east-1", b);
	CHECK(memcmp(a, b, 32) == 0);
}

static void test_amz_date(void)
{
	char d[17];
	sigv4_amz_date(T2013, d);
	CHECK_EQ_STR(d, AMZ_2013);
	sigv4_amz_date(1709251199, d);
	CHECK_EQ_STR(d, "20240229T235959Z");
	sigv4_amz_date(0, d);
	CHECK_EQ_STR(d, "19700101T000000Z");
	/* 31 February is refused, not rolled into March */
	sigv4_verifier *v = verifier("us-east-1");
	char raw[2048];
	signed_get(raw, sizeof raw, T2013, "");
	char *x = strstr(raw, "x-amz-date: ") + 12;
	memcpy(x, "20130231", 8);
	expect(v, raw, "AccessDenied", 403);
	sigv4_verifier_free(&v);
}

/* ------------------------------------------------------------- botocore */

/* Requests as botocore 1.43 (awscli's) sends them, captured before sending by
 * tests/unit/gen_sigv4_vectors.py: a real client's encoding of a key with
 * every awkward character ("a b/\u00fc+~!$&'()*,;=:@.txt"), of an awkward
 * prefix, its default aws-chunked PUT body with a trailing CRC32 or SHA-256
 * (STREAMING-UNSIGNED-PAYLOAD-TRAILER), its presigned GET/PUT URLs (3600 s)
 * and a SigV2 presigned URL (its default without signature_version
 * s3v4), refused. Signed at 20130524T000000Z with AWS's example key. */
static const struct {
	const char *head;
	const char *body;
} BOTOCORE[] = {
	{"GET /bucket/a%20b/%C3%BC%2B~%21%24%26%27%28%29%2A%2C%3B%3D%3A%40.txt HTTP/1.1\r\n"
	 "Host: example.com\r\n"
	 "x-amz-checksum-mode: ENABLED\r\n"
	 "User-Agent: Botocore/1.43.11 ua/2.1 os/linux#6.18.44-fc-v1098 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/e,b,Z,D,N cfg/retry-mode#legacy\r\n"
	 "X-Amz-Date: 20130524T000000Z\r\n"
	 "X-Amz-Content-SHA256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n"
	 "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-checksum-mode;x-amz-content-sha256;x-amz-date, Signature=4fadd2591d934cc9ce768fbf27692eecc089f56cefedb7f694a5b8864807178f\r\n"
	 "amz-sdk-invocation-id: f88a891d-1eb8-442c-97d0-f888eff9d968\r\n"
	 "amz-sdk-request: attempt=1\r\n",
	 ""},
	{"GET /bucket?list-type=2&prefix=a%20b%2Bc~%C3%BC%2F%3D%26&delimiter=%2F&start-after=x%20y&encoding-type=url HTTP/1.1\r\n"
	 "Host: example.com\r\n"
	 "User-Agent: Botocore/1.43.11 ua/2.1 os/linux#6.18.44-fc-v1098 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/e,b,Z,D,N cfg/retry-mode#legacy\r\n"
	 "X-Amz-Date: 20130524T000000Z\r\n"
	 "X-Amz-Content-SHA256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n"
	 "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=6f0a3075dddc20cf602386bea923c22d8cac66bb0e79319a4b3f3daf5d5a6d71\r\n"
	 "amz-sdk-invocation-id: 28e3dcce-7ff0-441c-84bc-ac3635d65aae\r\n"
	 "amz-sdk-request: attempt=1\r\n",
	 ""},
	{"PUT /bucket/a%20b/%C3%BC%2B~%21%24%26%27%28%29%2A%2C%3B%3D%3A%40.txt HTTP/1.1\r\n"
	 "Host: example.com\r\n"
	 "Content-Type: text/plain\r\n"
	 "User-Agent: Botocore/1.43.11 ua/2.1 os/linux#6.18.44-fc-v1098 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/e,b,Z,D,N,U cfg/retry-mode#legacy\r\n"
	 "Expect: 100-continue\r\n"
	 "Transfer-Encoding: chunked\r\n"
	 "Content-Encoding: aws-chunked\r\n"
	 "X-Amz-Trailer: x-amz-checksum-crc32\r\n"
	 "X-Amz-Decoded-Content-Length: 11\r\n"
	 "x-amz-sdk-checksum-algorithm: CRC32\r\n"
	 "X-Amz-Date: 20130524T000000Z\r\n"
	 "X-Amz-Content-SHA256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n"
	 "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=content-encoding;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-sdk-checksum-algorithm;x-amz-trailer, Signature=5c2c8a58b8db314a9ba9bc11ee2a8f6c868e75fa1d0c3d68b73678f555ac639d\r\n"
	 "amz-sdk-invocation-id: 14c0d6a8-9187-499e-8cad-8a753093d6d6\r\n"
	 "amz-sdk-request: attempt=1\r\n",
	 "b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"},
	{"PUT /bucket/k HTTP/1.1\r\n"
	 "Host: example.com\r\n"
	 "x-amz-sdk-checksum-algorithm: SHA256\r\n"
	 "User-Agent: Botocore/1.43.11 ua/2.1 os/linux#6.18.44-fc-v1098 md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/Y,e,b,Z,D,N cfg/retry-mode#legacy\r\n"
	 "Expect: 100-continue\r\n"
	 "Transfer-Encoding: chunked\r\n"
	 "Content-Encoding: aws-chunked\r\n"
	 "X-Amz-Trailer: x-amz-checksum-sha256\r\n"
	 "X-Amz-Decoded-Content-Length: 11\r\n"
	 "X-Amz-Date: 20130524T000000Z\r\n"
	 "X-Amz-Content-SHA256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n"
	 "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-sdk-checksum-algorithm;x-amz-trailer, Signature=076592aded0e3c007495a57f398b919fbf786d2d1c7515192e77ae228b2564ba\r\n"
	 "amz-sdk-invocation-id: 0b78d932-68e6-4be2-899d-1062c9cc7cb5\r\n"
	 "amz-sdk-request: attempt=1\r\n",
	 "b\r\nhello world\r\n0\r\nx-amz-checksum-sha256:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=\r\n\r\n"},
	{"GET /bucket/a%20b/%C3%BC%2B~%21%24%26%27%28%29%2A%2C%3B%3D%3A%40.txt?response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=%2F%2F1R4oiXWGKMKkPcpPVmKjQ5LhQ%3D&Expires=1796287848 HTTP/1.1\r\n"
	 "Host: example.com\r\n",
	 ""},
	{"GET /bucket/a%20b/%C3%BC%2B~%21%24%26%27%28%29%2A%2C%3B%3D%3A%40.txt?response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=9384a0a5b1f2e0311a95ab82f720590b76ff4bc94b3e0c26719f91c8ba2e7a36 HTTP/1.1\r\n"
	 "Host: example.com\r\n",
	 ""},
	{"PUT /bucket/a%20b/%C3%BC%2B~%21%24%26%27%28%29%2A%2C%3B%3D%3A%40.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=5d7b5ffb42aafc6ebbe79814cf13273e29ac7e22694a751023a8c11e3e1de0c5 HTTP/1.1\r\n"
	 "Host: example.com\r\n",
	 ""},
};

/* Verify a head with CRLF line ends as given. */
static int verify_crlf(sigv4_verifier *v, const char *head, sigv4_result *r)
{
	http_parser *p = http_parser_new(HTTP_REQUEST, &limits);
	size_t used = 0;
	char *raw = malloc(strlen(head) + 3);
	sprintf(raw, "%s\r\n", head);
	int prc = http_parser_feed(p, raw, strlen(raw), &used);
	CHECK(prc == HTTP_PARSE_HEAD || prc == HTTP_PARSE_DONE);
	int rc = sigv4_verify(v, http_parser_message(p), r);
	http_parser_free(&p);
	free(raw);
	return rc;
}

static int collect(void *arg, const char *data, size_t len)
{
	return buf_add(arg, data, len);
}

/* What the S3 server will do: verify the head, then decode the body with the
 * decoder the result asks for. */
static void test_botocore_requests(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	size_t n = sizeof BOTOCORE / sizeof BOTOCORE[0], sigv2 = 0;
	for (size_t i = 0; i < n; i++) {
		sigv4_result r;
		int rc = verify_crlf(v, BOTOCORE[i].head, &r);
		if (strstr(BOTOCORE[i].head, "AWSAccessKeyId=")) {
			/* SigV2: refused as such, not taken for an anonymous request */
			CHECK_EQ_INT(rc, ERR_AUTH);
			CHECK_EQ_STR(r.error.code, "InvalidRequest");
			CHECK(strstr(r.error.message, "Please use AWS4-HMAC-SHA256") != NULL);
			sigv2++;
			continue;
		}
		if (rc)
			fprintf(stderr, "botocore %zu: %s %s\n", i, r.error.code, r.error.message);
		CHECK_EQ_INT(rc, 0);
		if (rc == 0 && r.payload == SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER) {
			/* the server reads x-amz-trailer from the head it parsed */
			const char *t = strstr(BOTOCORE[i].head, "X-Amz-Trailer: ") + 15;
			char trailer[64];
			snprintf(trailer, sizeof trailer, "%.*s", (int)strcspn(t, "\r"), t);
			buf out;
			buf_init(&out, 1024);
			awschunked_config cfg = {.mode = r.payload,
						 .decoded_length = r.decoded_length,
						 .trailer = trailer,
						 .sink = collect,
						 .sink_arg = &out};
			sigv4_error e;
			awschunked *d = awschunked_new(&cfg, &e);
			CHECK(d != NULL);
			size_t used;
			CHECK_EQ_INT(awschunked_feed(d, BOTOCORE[i].body, strlen(BOTOCORE[i].body), &used),
				     AWSCHUNKED_DONE);
			CHECK_EQ_INT(used, strlen(BOTOCORE[i].body));
			CHECK_EQ_STR(out.data, "hello world");
			const char *name;
			CHECK(awschunked_checksum(d, &name) != NULL);
			CHECK_EQ_STR(name, trailer);
			awschunked_free(&d);
			buf_free(&out);
		}
		sigv4_result_clear(&r);
	}
	CHECK_EQ_INT(sigv2, 1);
	sigv4_verifier_free(&v);
}


/* Every allocation of a verification and of a signing failing in turn: the
 * answer is ERR_NOMEM with InternalError (500), nothing leaks (ASan), and
 * once no allocation fails the request verifies. */
static void test_allocation_failures(void)
{
	sigv4_verifier *v = verifier("us-east-1");
	bool done = false;
	for (long k = 0; !done && k < 100; k++) {
		sigv4_result r;
		alloc_countdown = k;
		int rc = verify_raw(v, "GET /b/k?list-type=2&prefix=a HTTP/1.1\nHost: x\n"
				       "x-amz-date: " AMZ_2013 "\nx-amz-content-sha256: " SIGV4_EMPTY_SHA256
				       "\nAuthorization: AWS4-HMAC-SHA256 Credential=" CRED_2013
				       ", SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
				       "Signature=0000000000000000000000000000000000000000000000000000000000000000\n",
				    &r);
		done = alloc_countdown >= 0; /* no allocation failed */
		alloc_countdown = -1;
		if (done) {
			CHECK_EQ_STR(r.error.code, "SignatureDoesNotMatch");
		} else {
			CHECK_EQ_INT(rc, ERR_NOMEM);
			CHECK_EQ_STR(r.error.code, "InternalError");
			CHECK_EQ_INT(r.error.status, 500);
		}
	}
	CHECK(done);
	/* the signers */
	sigv4_param h[] = {{"host", "x"}, {"x-amz-date", AMZ_2013}};
	sigv4_param q[] = {{"prefix", "a b"}};
	sigv4_sign_params p = {.method = "GET", .path = "/b/k", .query = q, .query_count = 1,
			       .headers = h, .header_count = 2, .access_key_id = AKID,
			       .secret_access_key = SECRET, .region = "us-east-1", .now_s = T2013,
			       .expires_s = 60};
	for (int presign = 0; presign < 2; presign++) {
		done = false;
		for (long k = 0; !done && k < 100; k++) {
			buf b;
			buf_init(&b, 4096);
			alloc_countdown = k;
			int rc = presign ? sigv4_presign(&p, &b) : sigv4_sign(&p, &b);
			done = alloc_countdown >= 0;
			alloc_countdown = -1;
			CHECK_EQ_INT(rc, done ? 0 : ERR_NOMEM);
			buf_free(&b);
		}
		CHECK(done);
	}
	/* a verifier that cannot be allocated */
	alloc_countdown = 0;
	sigv4_config cfg = {.lookup = lookup};
	CHECK(sigv4_verifier_new(&cfg) == NULL);
	alloc_countdown = -1;
	sigv4_verifier_free(&v);
}

/* A deployment's regions share their keys: a client that signed for us is
 * served by eu when an edge fails over there (sigv4_config.also); a name
 * that is not one of them is still refused, and without `also` so is us. */
static void test_other_regions_of_the_deployment(void)
{
	sigv4_param headers[] = {
		{"Host", "s3.app.example"},
		{"x-amz-content-sha256", SIGV4_EMPTY_SHA256},
		{"x-amz-date", AMZ_2013},
	};
	sigv4_sign_params p = {.method = "GET", .path = "/photos/cat.jpg", .headers = headers, .header_count = 3,
			       .payload_hash = SIGV4_EMPTY_SHA256, .access_key_id = AKID,
			       .secret_access_key = SECRET, .region = "us", .now_s = T2013};
	buf auth;
	buf_init(&auth, 4096);
	CHECK_EQ_INT(sigv4_sign(&p, &auth), 0);
	char raw[2048];
	snprintf(raw, sizeof raw,
		 "GET /photos/cat.jpg HTTP/1.1\nHost: s3.app.example\nx-amz-content-sha256: %s\nx-amz-date: %s\n"
		 "Authorization: %s\n",
		 SIGV4_EMPTY_SHA256, AMZ_2013, auth.data);
	buf_free(&auth);
	fake_now = T2013;
	current_secret = SECRET;
	lookup_fails = 0;
	sigv4_config with = {.region = "eu", .also = "us,ap", .lookup = lookup, .clock = fake_clock};
	sigv4_verifier *v = sigv4_verifier_new(&with);
	CHECK(v != NULL);
	expect(v, raw, NULL, 0);
	sigv4_verifier_free(&v);
	sigv4_config other = {.region = "eu", .also = "usa,ap", .lookup = lookup, .clock = fake_clock};
	v = sigv4_verifier_new(&other); /* "us" is not "usa": whole names only */
	expect(v, raw, "AuthorizationHeaderMalformed", 400);
	sigv4_verifier_free(&v);
	v = verifier("eu"); /* no other region accepted */
	expect(v, raw, "AuthorizationHeaderMalformed", 400);
	sigv4_verifier_free(&v);
}

int main(void)
{
	RUN(test_other_regions_of_the_deployment);
	RUN(test_aws_get_object);
	RUN(test_aws_get_object_signer);
	RUN(test_aws_put_object);
	RUN(test_aws_get_bucket_lifecycle);
	RUN(test_aws_list_objects);
	RUN(test_aws_presigned);
	RUN(test_aws_streaming_seed);
	RUN(test_aws_trailer_seed);
	RUN(test_header_canonicalization);
	RUN(test_query_and_path_encoding);
	RUN(test_skew_boundaries);
	RUN(test_errors_header_auth);
	RUN(test_errors_presigned);
	RUN(test_any_region);
	RUN(test_key_cache);
	RUN(test_signing_key_inputs);
	RUN(test_amz_date);
	RUN(test_botocore_requests);
	RUN(test_allocation_failures);
	return TEST_SUMMARY();
}
