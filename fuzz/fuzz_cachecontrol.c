/*
 * fuzz_cachecontrol.c - libFuzzer target for what the edge's cache parses
 * from untrusted peers (src/edge/cache.c): Cache-Control directives, HTTP
 * dates, Accept-Encoding normalisation, and, through a real store and
 * lookup, Vary names and secondary keys and the cache key. The input is
 * split at newlines into: a Cache-Control value, a Vary value, an
 * Accept-Encoding value, a request target. Must never crash; the
 * normalised Accept-Encoding is bounded, lowercase and sorted; a stored
 * answer is found again by the same request.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edge/cache.h"
#include "http/parser.h"

/* The next piece of the input up to a newline, without CR/LF. */
static const char *piece(const char **p, const char *end, size_t *len)
{
	const char *s = *p;
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	*len = nl ? (size_t)(nl - s) : (size_t)(end - s);
	*p = nl ? nl + 1 : end;
	return s;
}

static const http_message *parse(http_parser *hp, const char *text, size_t len)
{
	size_t used = 0;
	int rc = http_parser_feed(hp, text, len, &used);
	if (rc == HTTP_PARSE_HEAD)
		rc = http_parser_feed(hp, text + used, len - used, &used);
	return rc == HTTP_PARSE_DONE ? http_parser_message(hp) : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *end = in + size, *p = in;
	cache_control cc;
	cache_control_init(&cc);
	cache_control_parse(&cc, in, size);
	assert(cc.max_age >= -1 && cc.max_age <= 2147483648LL);
	(void)cache_parse_http_date(in, size);
	char norm[64];
	int n = cache_normalize_accept_encoding(in, size, norm, sizeof norm);
	assert(n >= -1 && n < (int)sizeof norm);
	if (n > 0) {
		assert(strlen(norm) == (size_t)n);
		for (int i = 0; i < n; i++)
			assert(!(norm[i] >= 'A' && norm[i] <= 'Z'));
	}

	size_t ccl, vl, ael, tl;
	const char *ccv = piece(&p, end, &ccl);
	const char *vary = piece(&p, end, &vl);
	const char *ae = piece(&p, end, &ael);
	const char *target = piece(&p, end, &tl);
	static char req[8192], resp[8192];
	int rl = snprintf(req, sizeof req, "GET /%.*s HTTP/1.1\r\nHost: h\r\nAccept-Encoding: %.*s\r\n\r\n", (int)tl, target,
			  (int)ael, ae);
	int sl = snprintf(resp, sizeof resp,
			  "HTTP/1.1 200 OK\r\nCache-Control: %.*s\r\nVary: %.*s\r\nETag: \"x\"\r\nContent-Length: 0\r\n\r\n",
			  (int)ccl, ccv, (int)vl, vary);
	if (rl <= 0 || sl <= 0 || (size_t)rl >= sizeof req || (size_t)sl >= sizeof resp)
		return 0;
	http_limits lim = {.max_header_bytes = 16384, .max_headers = 32, .max_body_bytes = 1024};
	http_parser *qp = http_parser_new(HTTP_REQUEST, &lim), *sp = http_parser_new(HTTP_RESPONSE, &lim);
	cache *c = cache_new(1 << 16, 1024);
	const http_message *q = qp ? parse(qp, req, (size_t)rl) : NULL;
	const http_message *s = sp ? parse(sp, resp, (size_t)sl) : NULL;
	if (c && q && s) {
		int rc = cache_store(c, q, s, "body", 4, 1000, 1000);
		cache_entry *e = NULL;
		cache_verdict v = cache_lookup(c, q, 1000, &e);
		if (rc == CACHE_STORED)
			assert(v != CACHE_MISS && e != NULL);
		cache_entry_release(&e);
		cache_purge_prefix(c, NULL, "/");
		cache_stats st;
		cache_get_stats(c, &st);
		assert(st.entries == 0 && st.bytes == 0);
	}
	cache_free(&c);
	http_parser_free(&qp);
	http_parser_free(&sp);
	return 0;
}
