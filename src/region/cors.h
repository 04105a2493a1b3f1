/*
 * cors.h - which browser origins may call the API ([api] cors_origins) and
 * the CORS header lines of its answers (the Fetch standard's CORS protocol).
 *
 *   cors_origins = ""        no cross-origin access: no CORS header is sent,
 *                            every preflight is refused
 *   cors_origins = "*"       any origin (development): Allow-Origin "*"; the
 *                            API authenticates with bearer tokens, never
 *                            cookies, so no request is "credentialed"
 *   cors_origins = "https://app.example.com, http://localhost:3000"
 *                            exactly these origins; the allowed origin is
 *                            echoed (the configured spelling, never the
 *                            request's bytes) with Vary: Origin
 *
 * Origins compare as the Fetch standard serializes them: scheme and host
 * case-insensitively, a default port (:443 for https, :80 for http) the same
 * as none. The policy is immutable after cors_new(), so it is shared freely.
 */
#ifndef TANDEM_REGION_CORS_H
#define TANDEM_REGION_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

typedef struct cors_policy cors_policy;

/* The headers a browser may send on a cross-origin request (preflight answer). */
#define CORS_ALLOW_HEADERS                                                                            \
	"Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, X-Request-Id, "       \
	"X-Tandem-Consistency, X-Tandem-Durability, X-Tandem-Min-LSN"
/* The answer headers a page's script may read (beyond the CORS-safelisted ones). */
#define CORS_EXPOSE_HEADERS                                                                           \
	"ETag, Location, X-Tandem-LSN, X-Tandem-Region, X-Request-Id, Retry-After, Idempotent-Replayed"
/* How long a browser may cache a preflight answer: short, so that a change of
 * cors_origins reaches browsers within minutes (Chromium caps it at 7200). */
#define CORS_MAX_AGE_S 600

/* The policy of a cors_origins value (already validated by config.c: "", "*"
 * or scheme://host[:port] items separated by commas or spaces; an item that
 * is not such an origin is skipped). NULL only on allocation failure. */
cors_policy *cors_new(const char *origins);
/* No-op on NULL; resets *p. */
void cors_free(cors_policy **p);
/* Cross-origin access is configured at all (answers then vary by Origin). */
bool cors_enabled(const cors_policy *p);
/* May a page of this Origin (len bytes, not NUL-terminated) call the API?
 * On true, *allow_origin is the Access-Control-Allow-Origin value ("*" or the
 * configured origin), valid while the policy lives. Cannot fail. */
bool cors_allows(const cors_policy *p, const char *origin, size_t len, const char **allow_origin);
/* Append the header lines ("Name: value\r\n") of an answer to a request
 * carrying this Origin (NULL: none): Vary when enabled, and for an allowed
 * origin Access-Control-Allow-Origin and -Expose-Headers. 0 or the buf_add
 * error (out may then hold part of the lines). */
int cors_answer_headers(const cors_policy *p, const char *origin, size_t len, buf *out);
/* Append the lines of a successful preflight answer for an allowed origin:
 * Allow-Origin, -Allow-Methods (methods, the route's), -Allow-Headers,
 * -Max-Age, Vary. ERR_INVAL (nothing appended) when the origin is not
 * allowed; else 0 or the buf_add error. */
int cors_preflight_headers(const cors_policy *p, const char *origin, size_t len, const char *methods,
			   buf *out);

#endif
