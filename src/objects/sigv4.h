/*
 * sigv4.h - AWS Signature Version 4 for the S3 API: verify a request signed
 * in its Authorization header or in a presigned URL, and sign (presigned
 * URLs for the files API, and requests in tests) through the same code.
 *
 * What the verifier checks, in this order, and what it answers on failure
 * (the S3 error code, its HTTP status, and a message in AWS's words):
 *
 *   1. which mechanism: the Authorization header or X-Amz-Algorithm in the
 *      query (both: InvalidArgument; neither: anonymous, ERR_NOTFOUND, the
 *      caller decides whether the resource is public); X-Amz-Security-Token
 *      (temporary STS credentials): InvalidToken, we have no STS
 *   2. the syntax of the header / the query parameters and the credential
 *      scope AKID/YYYYMMDD/REGION/s3/aws4_request: AuthorizationHeaderMalformed
 *      or AuthorizationQueryParametersError; the date: AccessDenied (header)
 *   3. host is signed, and every x-amz-* header present is (presigned: but
 *      x-amz-content-sha256, which is not read): AccessDenied
 *   4. x-amz-content-sha256 (header auth): present (InvalidRequest), a hex
 *      SHA-256 or one of the payload modes below (InvalidArgument)
 *   5. the access key: the caller's lookup callback (InvalidAccessKeyId)
 *   6. the time: more than max_skew_s (15 min) from now: RequestTimeTooSkewed;
 *      presigned: expired (AccessDenied "Request has expired") or dated in
 *      the future beyond the skew (AccessDenied "Request is not valid yet")
 *   7. the signature, compared in constant time: SignatureDoesNotMatch
 *
 * The canonical request is built exactly as S3 builds it: the path decoded
 * and re-encoded once per segment (S3 does not double-encode, and a client's
 * choice of which bytes to escape on the wire does not matter), the query
 * parameters decoded ('+' as a space, as S3 and form encoding read it) and
 * re-encoded, sorted by name then value; the signed headers lower-cased, with
 * values trimmed and inner runs of whitespace collapsed, repeated fields
 * joined by ','; the payload hash from x-amz-content-sha256 (presigned:
 * UNSIGNED-PAYLOAD unless the query carries X-Amz-Content-Sha256).
 *
 * A verifier keeps a small cache of derived signing keys per (access key,
 * date, region), so that the four HMACs of the key derivation run once per
 * key and day; an entry is used only while the secret the lookup returns is
 * the same (a rotated secret misses). A verifier is not thread-safe: one per
 * event-loop thread. Secrets and signing keys never reach a log or a
 * message; they are wiped from memory when dropped.
 */
#ifndef TANDEM_OBJECTS_SIGV4_H
#define TANDEM_OBJECTS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/parser.h"

#define SIGV4_KEY_ID_MAX 128    /* access key id, bytes */
#define SIGV4_SECRET_MAX 128    /* secret access key, bytes */
#define SIGV4_REGION_MAX 63     /* region name in the credential scope */
#define SIGV4_SCOPE_MAX 96      /* "YYYYMMDD/region/s3/aws4_request" */
#define SIGV4_QUERY_MAX 256     /* query parameters in a request */
#define SIGV4_SIGNATURE_HEX 64
#define SIGV4_MAX_SKEW_S 900    /* RequestTimeTooSkewed beyond this (AWS: 15 min) */
#define SIGV4_EXPIRES_MAX 604800 /* X-Amz-Expires: 1..7 days */
#define SIGV4_KEY_CACHE 32      /* derived signing keys remembered by a verifier */

/* SHA-256 of no bytes: the payload hash of an empty body. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* What x-amz-content-sha256 says about the body. */
typedef enum sigv4_payload {
	SIGV4_PAYLOAD_SHA256 = 0,   /* a hex SHA-256 of the body: the caller checks the body
				     * against it (sigv4_payload_check) before committing */
	SIGV4_PAYLOAD_UNSIGNED,     /* UNSIGNED-PAYLOAD (every presigned URL without
				     * X-Amz-Content-Sha256) */
	SIGV4_PAYLOAD_STREAMING,    /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD: aws-chunked body,
				     * each chunk signed (chunked.h) */
	SIGV4_PAYLOAD_STREAMING_TRAILER,          /* ...-PAYLOAD-TRAILER: the same plus a
						   * signed trailer */
	SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER:
						   * aws-chunked, chunks unsigned, trailer
						   * checksum */
} sigv4_payload;

/* An S3 error: what to answer. The message never holds a secret. */
typedef struct sigv4_error {
	int status;        /* 400, 403, 411 or 500 */
	const char *code;  /* S3 error code, a static string ("SignatureDoesNotMatch") */
	char message[256]; /* AWS's wording where it has one */
} sigv4_error;

/* What the chunk signatures of an aws-chunked body chain from (chunked.h). */
typedef struct sigv4_chain {
	unsigned char key[32];           /* the signing key (secret-derived: wiped by
					  * sigv4_result_clear) */
	char amz_date[17];               /* "20130524T000000Z" */
	char scope[SIGV4_SCOPE_MAX + 1]; /* "20130524/us-east-1/s3/aws4_request" */
	char seed[SIGV4_SIGNATURE_HEX + 1]; /* the request's signature */
} sigv4_chain;

typedef struct sigv4_result {
	/* on success */
	char access_key_id[SIGV4_KEY_ID_MAX + 1];
	char region[SIGV4_REGION_MAX + 1]; /* from the credential scope */
	bool presigned;
	sigv4_payload payload;
	unsigned char payload_sha256[32]; /* SIGV4_PAYLOAD_SHA256 only */
	int64_t decoded_length;           /* x-amz-decoded-content-length (streaming modes,
					   * required there); -1 otherwise */
	int64_t request_time;             /* seconds since the epoch, from the signed date */
	sigv4_chain chain;                /* streaming modes: the seed of the chunk chain */
	/* on failure */
	sigv4_error error;
} sigv4_result;

/* The caller's key store. Copy the secret of access_key_id (NUL-terminated,
 * at most SIGV4_SECRET_MAX bytes) into secret and return 0; ERR_NOTFOUND for
 * an unknown or revoked key; another negative code when the lookup itself
 * failed (the request is then answered 500 InternalError). */
typedef int (*sigv4_lookup_fn)(void *arg, const char *access_key_id,
			       char secret[SIGV4_SECRET_MAX + 1]);
/* Seconds since the epoch (tests inject a clock). */
typedef int64_t (*sigv4_clock_fn)(void *arg);

typedef struct sigv4_config {
	const char *region;    /* the region clients sign for; NULL or "": any region
				* (the scope's region is still part of the signature) */
	const char *also;      /* other region names accepted, comma separated (the
				* deployment's other regions: a client signing for one is
				* served by the other after a failover); NULL: none */
	int64_t max_skew_s;    /* 0: SIGV4_MAX_SKEW_S */
	sigv4_lookup_fn lookup;
	void *lookup_arg;
	sigv4_clock_fn clock;  /* NULL: the wall clock */
	void *clock_arg;
} sigv4_config;

typedef struct sigv4_verifier sigv4_verifier;

/* A verifier; the config is copied. NULL on allocation failure or when
 * lookup is NULL or region is too long. */
sigv4_verifier *sigv4_verifier_new(const sigv4_config *cfg);
/* Free (wipes the key cache); no-op on NULL; resets *v. */
void sigv4_verifier_free(sigv4_verifier **v);

/*
 * Verify the request m (as parsed: method, target, fields). Returns
 *   0             authenticated: out->access_key_id, payload, ... are set
 *   ERR_NOTFOUND  no authentication at all (anonymous); out->error holds
 *                 AccessDenied for when the resource is not public
 *   ERR_AUTH      refused: out->error says what to answer
 *   ERR_NOMEM     out->error is InternalError (500)
 * out is always fully written; call sigv4_result_clear() when done with it
 * (it may hold the signing key).
 */
int sigv4_verify(sigv4_verifier *v, const http_message *m, sigv4_result *out);

/* Wipe the secret-derived parts of a result. Cannot fail. */
void sigv4_result_clear(sigv4_result *r);

/* For SIGV4_PAYLOAD_SHA256: does the body's SHA-256 (computed by the caller
 * while receiving it) match the signed one? 0; or ERR_AUTH with err set to
 * XAmzContentSHA256Mismatch (400). Other payload modes: 0 (nothing signed). */
int sigv4_payload_check(const sigv4_result *r, const unsigned char body_sha256[32],
			sigv4_error *err);

/* How many signing keys a verifier derived and how many it took from its
 * cache (for tests and metrics). */
void sigv4_verifier_stats(const sigv4_verifier *v, uint64_t *derived, uint64_t *cached);

/* ------------------------------------------------------------- signing */

typedef struct sigv4_param {
	const char *name;  /* unencoded */
	const char *value; /* unencoded; NULL or "" for a bare name ("?uploads") */
} sigv4_param;

typedef struct sigv4_sign_params {
	const char *method;            /* "GET", "PUT", ... */
	const char *path;              /* unencoded, from '/': "/bucket/a b/ü.png" */
	const sigv4_param *query;      /* unencoded query parameters, signed */
	size_t query_count;
	const sigv4_param *headers;    /* the headers to sign, any case and order; must
					* hold host (and, for sigv4_sign, the x-amz-date
					* header with the value of sigv4_amz_date(now_s)) */
	size_t header_count;
	const char *payload_hash;      /* sigv4_sign: hex SHA-256, UNSIGNED-PAYLOAD or a
					* STREAMING-* value; NULL: UNSIGNED-PAYLOAD.
					* sigv4_presign ignores it (UNSIGNED-PAYLOAD) */
	const char *access_key_id;
	const char *secret_access_key;
	const char *region;
	int64_t now_s;                 /* the signing time, seconds since the epoch */
	int64_t expires_s;             /* sigv4_presign: X-Amz-Expires, 1..604800 */
} sigv4_sign_params;

/* "YYYYMMDDTHHMMSSZ" of t (seconds since the epoch, UTC). */
void sigv4_amz_date(int64_t t, char out[17]);

/* Sign a request in an Authorization header: append its value
 * ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...") to
 * out. 0; ERR_INVAL (bad parameters: no host header, a name with a space...),
 * ERR_LIMIT or ERR_NOMEM, out then holding whatever was appended. */
int sigv4_sign(const sigv4_sign_params *p, buf *out);

/* Presign: append "path?query" (the encoded path, the caller's query
 * parameters and the X-Amz-* ones, X-Amz-Signature last) to out; the caller
 * puts "https://host" in front. Signs host and any other headers given.
 * 0; ERR_INVAL (expires out of range, no host...), ERR_LIMIT or ERR_NOMEM. */
int sigv4_presign(const sigv4_sign_params *p, buf *out);

/* The signature of one aws-chunked chunk (string to sign
 * "AWS4-HMAC-SHA256-PAYLOAD\n" date scope previous-signature empty-hash
 * chunk-hash) or of the trailer ("AWS4-HMAC-SHA256-TRAILER\n" date scope
 * previous-signature trailer-hash) as lowercase hex. Cannot fail. */
void sigv4_chunk_signature(const sigv4_chain *c, const char *previous,
			   const unsigned char data_sha256[32], char out[SIGV4_SIGNATURE_HEX + 1]);
void sigv4_trailer_signature(const sigv4_chain *c, const char *previous,
			     const unsigned char trailer_sha256[32],
			     char out[SIGV4_SIGNATURE_HEX + 1]);

/* The signing key of (secret, YYYYMMDD date, region) for service s3. */
void sigv4_signing_key(const char *secret, const char *date, const char *region,
		       unsigned char out[32]);

#endif
