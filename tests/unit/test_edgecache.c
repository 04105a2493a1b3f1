/*
 * test_edgecache.c - the edge's cache (src/edge/cache.c): Cache-Control
 * parsing, freshness (explicit, CDN-Cache-Control, Expires, heuristic), Age,
 * Vary, storability, stale handling, 304 updates, invalidation, the LRU
 * byte bound and coalescing bookkeeping. Time is injected: every call gets
 * `now` from the test, no sleeps. Messages are parsed from raw text with
 * the real parser, as the edge gets them.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "edge/cache.h"
#include "http/parser.h"
#include "test.h"

#define T0 1700000000LL /* the test's clock starts here */

static const http_limits limits = {.max_header_bytes = 16384, .max_headers = 64, .max_body_bytes = 1 << 20};

/* A parsed message: request or response text with its head only (a body,
 * if any, is given to cache_store separately). */
typedef struct msg {
	http_parser *p;
	const http_message *m;
} msg;

static msg parse(http_kind kind, const char *text)
{
	msg r = {.p = http_parser_new(kind, &limits)};
	size_t used = 0;
	int rc = http_parser_feed(r.p, text, strlen(text), &used);
	if (kind == HTTP_RESPONSE && rc == HTTP_PARSE_HEAD)
		rc = http_parser_feed(r.p, text + used, strlen(text) - used, &used);
	if (rc < 0) {
		fprintf(stderr, "cannot parse: %s\n%s\n", http_parser_error(r.p), text);
		abort();
	}
	r.m = http_parser_message(r.p);
	return r;
}

static void done(msg *m)
{
	http_parser_free(&m->p);
}

/* Store resp (head text, Content-Length: 0 added) for a GET of target with
 * extra request lines; returns cache_store's code. */
static int store(cache *c, const char *req_lines, const char *resp_head, const char *body, int64_t t)
{
	char rq[2048], rs[4096];
	snprintf(rq, sizeof rq, "GET /a HTTP/1.1\r\nHost: Example.test\r\n%s\r\n", req_lines);
	snprintf(rs, sizeof rs, "%sContent-Length: 0\r\n\r\n", resp_head);
	msg q = parse(HTTP_REQUEST, rq), s = parse(HTTP_RESPONSE, rs);
	int rc = cache_store(c, q.m, s.m, body, body ? strlen(body) : 0, t, t);
	done(&q);
	done(&s);
	return rc;
}

static cache_verdict look(cache *c, const char *req_lines, int64_t now, cache_entry **e)
{
	char rq[2048];
	snprintf(rq, sizeof rq, "GET /a HTTP/1.1\r\nHost: example.test\r\n%s\r\n", req_lines);
	msg q = parse(HTTP_REQUEST, rq);
	cache_verdict v = cache_lookup(c, q.m, now, e);
	done(&q);
	return v;
}

static cache_verdict look_release(cache *c, const char *req_lines, int64_t now)
{
	cache_entry *e = NULL;
	cache_verdict v = look(c, req_lines, now, &e);
	cache_entry_release(&e);
	return v;
}

static void test_cache_control_parsing(void)
{
	cache_control cc;
	cache_control_init(&cc);
	const char *v = "public, Max-Age=60 , s-maxage=\"30\", no-cache=\"Set-Cookie, X\", stale-while-revalidate=5,"
			"stale-if-error=notanumber, must-revalidate, foo=bar, max-stale";
	cache_control_parse(&cc, v, strlen(v));
	CHECK(cc.any && cc.public_ && cc.no_cache && cc.must_revalidate && !cc.private_ && !cc.no_store);
	CHECK_EQ_INT(cc.max_age, 60);
	CHECK_EQ_INT(cc.s_maxage, 30);
	CHECK_EQ_INT(cc.stale_while_revalidate, 5);
	CHECK_EQ_INT(cc.stale_if_error, -1); /* malformed: absent */
	CHECK(cc.max_stale > 1000000);
	/* a malformed max-age counts as 0 (stale), a duplicate takes the smaller */
	cache_control_init(&cc);
	cache_control_parse(&cc, "max-age=abc", 11);
	CHECK_EQ_INT(cc.max_age, 0);
	cache_control_init(&cc);
	cache_control_parse(&cc, "max-age=100", 11);
	cache_control_parse(&cc, "max-age=10", 10);
	CHECK_EQ_INT(cc.max_age, 10);
	/* huge values clamp at 2^31 */
	cache_control_init(&cc);
	cache_control_parse(&cc, "max-age=99999999999999999999", 28);
	CHECK_EQ_INT(cc.max_age, 2147483648LL);
	/* an unterminated quote and stray commas do not run past the end */
	cache_control_init(&cc);
	cache_control_parse(&cc, ",,private=\"abc", 14);
	CHECK(cc.private_);
	cache_control_init(&cc);
	cache_control_parse(&cc, "", 0);
	CHECK(!cc.any);
}

static void test_http_dates(void)
{
	CHECK_EQ_INT(cache_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", 29), 784111777);
	CHECK_EQ_INT(cache_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 30), 784111777);
	CHECK_EQ_INT(cache_parse_http_date("Sun Nov  6 08:49:37 1994", 24), 784111777);
	CHECK_EQ_INT(cache_parse_http_date("0", 1), -1);
	CHECK_EQ_INT(cache_parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT", 29), -1);
	CHECK_EQ_INT(cache_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMTx", 30), -1);
}

static void test_accept_encoding_normalised(void)
{
	char out[128];
	const char *a = " GZIP;q=0.8, br , identity;q=0, gzip, deflate;q=0.000";
	CHECK(cache_normalize_accept_encoding(a, strlen(a), out, sizeof out) > 0);
	CHECK_EQ_STR(out, "br,gzip");
	const char *b = "br, gzip";
	CHECK(cache_normalize_accept_encoding(b, strlen(b), out, sizeof out) > 0);
	CHECK_EQ_STR(out, "br,gzip");
	CHECK_EQ_INT(cache_normalize_accept_encoding("", 0, out, sizeof out), 0);
	CHECK_EQ_INT(cache_normalize_accept_encoding("gzip,br", 7, out, 4), -1);
	CHECK_EQ_STR(out, "");
}

static void test_fresh_then_stale_and_age(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: \"v1\"\r\n", "hello", T0),
		     CACHE_STORED);
	cache_entry *e = NULL;
	CHECK_EQ_INT(look(c, "", T0 + 10, &e), CACHE_FRESH);
	CHECK(e && cache_entry_age(e, T0 + 10) == 10 && cache_entry_status(e) == 200);
	size_t len;
	CHECK(strcmp(cache_entry_body(e, &len), "hello") == 0 && len == 5);
	CHECK_EQ_STR(cache_entry_etag(e), "\"v1\"");
	cache_entry_release(&e);
	CHECK(e == NULL);
	CHECK_EQ_INT(look_release(c, "", T0 + 59), CACHE_FRESH);
	CHECK_EQ_INT(look_release(c, "", T0 + 60), CACHE_VALIDATE); /* fresh only while lifetime > age */
	/* the request's own limits */
	CHECK_EQ_INT(look_release(c, "Cache-Control: max-age=5\r\n", T0 + 10), CACHE_VALIDATE);
	CHECK_EQ_INT(look_release(c, "Cache-Control: min-fresh=55\r\n", T0 + 10), CACHE_VALIDATE);
	CHECK_EQ_INT(look_release(c, "Cache-Control: no-cache\r\n", T0 + 10), CACHE_VALIDATE);
	CHECK_EQ_INT(look_release(c, "Pragma: no-cache\r\n", T0 + 10), CACHE_VALIDATE);
	CHECK_EQ_INT(look_release(c, "Cache-Control: max-stale=30\r\n", T0 + 80), CACHE_STALE_OK);
	CHECK_EQ_INT(look_release(c, "Cache-Control: max-stale=10\r\n", T0 + 80), CACHE_VALIDATE);
	/* HEAD uses the stored GET; POST never looks */
	msg h = parse(HTTP_REQUEST, "HEAD /a HTTP/1.1\r\nHost: example.test\r\n\r\n");
	CHECK_EQ_INT(cache_lookup(c, h.m, T0 + 1, &e), CACHE_FRESH);
	cache_entry_release(&e);
	done(&h);
	msg p = parse(HTTP_REQUEST, "POST /a HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_INT(cache_lookup(c, p.m, T0 + 1, &e), CACHE_MISS);
	CHECK(e == NULL);
	done(&p);
	cache_free(&c);
	CHECK(c == NULL);
}

/* RFC 9111 4.2.3: the age of an answer that was already old, and one whose
 * Date lies in the past (apparent age), and the delay of the request. */
static void test_age_computation(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	char rq[] = "GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n";
	msg q = parse(HTTP_REQUEST, rq);
	/* Age: 20 from upstream, the request took 2 s: corrected age 22 */
	msg s = parse(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nCache-Control: max-age=100\r\nAge: 20\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_INT(cache_store(c, q.m, s.m, "", 0, T0, T0 + 2), CACHE_STORED);
	cache_entry *e = NULL;
	CHECK_EQ_INT(cache_lookup(c, q.m, T0 + 2, &e), CACHE_FRESH);
	CHECK_EQ_INT(cache_entry_age(e, T0 + 2), 22);
	CHECK_EQ_INT(cache_entry_age(e, T0 + 12), 32);
	cache_entry_release(&e);
	done(&s);
	/* Date 50 s before it arrived: apparent age 50 beats Age: 3 */
	msg s2 = parse(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nCache-Control: max-age=100\r\nAge: 3\r\n"
				      "Date: Tue, 14 Nov 2023 22:12:30 GMT\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_INT(cache_parse_http_date("Tue, 14 Nov 2023 22:12:30 GMT", 29), T0 - 50);
	CHECK_EQ_INT(cache_store(c, q.m, s2.m, "", 0, T0, T0), CACHE_STORED);
	CHECK_EQ_INT(cache_lookup(c, q.m, T0, &e), CACHE_FRESH);
	CHECK_EQ_INT(cache_entry_age(e, T0), 50);
	CHECK_EQ_INT(cache_entry_age(e, T0 + 49), 99);
	cache_entry_release(&e);
	CHECK_EQ_INT(cache_lookup(c, q.m, T0 + 50, &e), CACHE_VALIDATE);
	cache_entry_release(&e);
	done(&s2);
	done(&q);
	cache_free(&c);
}

static void test_cdn_cache_control_and_expires(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	/* CDN-Cache-Control wins over Cache-Control (RFC 9213) */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nCDN-Cache-Control: max-age=30\r\n", "x", T0),
		     CACHE_STORED);
	CHECK_EQ_INT(look_release(c, "", T0 + 29), CACHE_FRESH);
	CHECK_EQ_INT(look_release(c, "", T0 + 31), CACHE_VALIDATE);
	/* ... and Expires is then ignored */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCDN-Cache-Control: no-store\r\nCache-Control: max-age=300\r\n", "x", T0),
		     CACHE_NOT_STORABLE);
	CHECK_EQ_INT(look_release(c, "", T0), CACHE_MISS); /* the older one was replaced by nothing */
	/* Expires - Date */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
				  "Expires: Tue, 14 Nov 2023 22:14:20 GMT\r\nETag: \"e\"\r\n", "x", T0),
		     CACHE_STORED);
	cache_entry *e = NULL;
	CHECK_EQ_INT(look(c, "", T0, &e), CACHE_FRESH);
	CHECK_EQ_INT(cache_entry_lifetime(e), 60);
	cache_entry_release(&e);
	/* an invalid Expires is in the past: stored for revalidation only */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nExpires: 0\r\nETag: \"e\"\r\n", "x", T0), CACHE_STORED);
	CHECK_EQ_INT(look_release(c, "", T0), CACHE_VALIDATE);
	/* max-age beats Expires, s-maxage beats max-age */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nExpires: 0\r\nCache-Control: max-age=10, s-maxage=100\r\n", "x", T0),
		     CACHE_STORED);
	CHECK_EQ_INT(look(c, "", T0, &e), CACHE_FRESH);
	CHECK_EQ_INT(cache_entry_lifetime(e), 100);
	cache_entry_release(&e);
	cache_free(&c);
}

static void test_heuristic_freshness(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	cache_entry *e = NULL;
	/* Date - Last-Modified = 1000 s: 10% = 100 s */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
				  "Last-Modified: Tue, 14 Nov 2023 21:56:40 GMT\r\n", "x", T0),
		     CACHE_STORED);
	CHECK_EQ_INT(look(c, "", T0, &e), CACHE_FRESH);
	CHECK_EQ_INT(cache_entry_lifetime(e), 100);
	CHECK_EQ_STR(cache_entry_last_modified(e), "Tue, 14 Nov 2023 21:56:40 GMT");
	cache_entry_release(&e);
	/* a year old: capped at a day */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
				  "Last-Modified: Mon, 14 Nov 2022 22:13:20 GMT\r\n", "x", T0),
		     CACHE_STORED);
	CHECK_EQ_INT(look(c, "", T0, &e), CACHE_FRESH);
	CHECK_EQ_INT(cache_entry_lifetime(e), CACHE_HEURISTIC_MAX_S);
	cache_entry_release(&e);
	/* a status not cacheable by default gets no heuristic (and is not stored
	 * without explicit freshness) */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 302 Found\r\nLocation: /b\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
				  "Last-Modified: Tue, 14 Nov 2023 21:56:40 GMT\r\n", "x", T0),
		     CACHE_NOT_STORABLE);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 302 Found\r\nLocation: /b\r\nCache-Control: max-age=5\r\n", "", T0),
		     CACHE_STORED);
	/* no validator and no freshness: pointless to keep */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\n", "x", T0), CACHE_NOT_STORABLE);
	CHECK_EQ_STR(cache_store_reason(c), "neither fresh nor revalidatable");
	cache_free(&c);
}

static void test_storability(void)
{
	cache *c = cache_new(1 << 20, 16);
	const char *ok = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n";
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60, no-store\r\n", "x", T0), CACHE_NOT_STORABLE);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60, private\r\n", "x", T0), CACHE_NOT_STORABLE);
	CHECK_EQ_INT(store(c, "Cache-Control: no-store\r\n", ok, "x", T0), CACHE_NOT_STORABLE);
	/* Authorization: only with public, s-maxage or must-revalidate */
	CHECK_EQ_INT(store(c, "Authorization: Bearer t\r\n", ok, "x", T0), CACHE_NOT_STORABLE);
	CHECK_EQ_INT(store(c, "Authorization: Bearer t\r\n", "HTTP/1.1 200 OK\r\nCache-Control: public, max-age=6\r\n", "x", T0),
		     CACHE_STORED);
	CHECK_EQ_INT(store(c, "Authorization: Bearer t\r\n", "HTTP/1.1 200 OK\r\nCache-Control: s-maxage=6\r\n", "x", T0),
		     CACHE_STORED);
	CHECK_EQ_INT(store(c, "Authorization: Bearer t\r\n", "HTTP/1.1 200 OK\r\nCache-Control: max-age=6, must-revalidate\r\n",
			   "x", T0),
		     CACHE_STORED);
	/* Set-Cookie only when public */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nSet-Cookie: a=b\r\n", "x", T0),
		     CACHE_NOT_STORABLE);
	/* statuses */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 500 Oops\r\nCache-Control: max-age=60\r\n", "x", T0), CACHE_NOT_STORABLE);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 206 Partial\r\nCache-Control: max-age=60\r\nContent-Range: bytes 0-0/9\r\n", "x",
			   T0),
		     CACHE_NOT_STORABLE);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: *\r\n", "x", T0), CACHE_NOT_STORABLE);
	/* larger than cache_max_object_bytes (16 here) */
	CHECK_EQ_INT(store(c, "", ok, "0123456789abcdefg", T0), ERR_LIMIT);
	CHECK_EQ_INT(store(c, "", ok, "0123456789abcdef", T0), CACHE_STORED);
	/* only GET stores */
	msg q = parse(HTTP_REQUEST, "HEAD /a HTTP/1.1\r\nHost: example.test\r\n\r\n");
	msg s = parse(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_INT(cache_store(c, q.m, s.m, "", 0, T0, T0), CACHE_NOT_STORABLE);
	done(&q);
	done(&s);
	cache_free(&c);
	/* cache_bytes = 0: no cache */
	c = cache_new(0, 16);
	CHECK_EQ_INT(store(c, "", ok, "x", T0), CACHE_NOT_STORABLE);
	CHECK_EQ_INT(look_release(c, "", T0), CACHE_MISS);
	cache_free(&c);
}

/* cache_response_may_store, from the head alone, agrees with cache_store
 * on every rule it can judge there (the edge lets coalesced waiters go on
 * its word while a stream is still arriving). */
static void test_head_verdict(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	static const struct {
		const char *req, *resp;
	} cases[] = {
		{"", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"},
		{"", "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Type: text/event-stream\r\n"},
		{"", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60, private\r\n"},
		{"Cache-Control: no-store\r\n", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"},
		{"Authorization: Bearer t\r\n", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"},
		{"Authorization: Bearer t\r\n", "HTTP/1.1 200 OK\r\nCache-Control: public, max-age=6\r\n"},
		{"", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nSet-Cookie: a=b\r\n"},
		{"", "HTTP/1.1 500 Oops\r\nCache-Control: max-age=60\r\n"},
		{"", "HTTP/1.1 206 Partial\r\nCache-Control: max-age=60\r\nContent-Range: bytes 0-0/9\r\n"},
		{"", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: *\r\n"},
		{"", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: Accept-Language\r\n"},
		{"", "HTTP/1.1 302 Found\r\nCache-Control: max-age=60\r\nLocation: /b\r\n"},
		{"", "HTTP/1.1 201 Created\r\nCache-Control: max-age=60\r\n"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char rq[512], rs[512];
		snprintf(rq, sizeof rq, "GET /a HTTP/1.1\r\nHost: example.test\r\n%s\r\n", cases[i].req);
		snprintf(rs, sizeof rs, "%sContent-Length: 0\r\n\r\n", cases[i].resp);
		msg q = parse(HTTP_REQUEST, rq), r = parse(HTTP_RESPONSE, rs);
		bool may = cache_response_may_store(c, q.m, r.m);
		done(&q);
		done(&r);
		int stored = store(c, cases[i].req, cases[i].resp, "x", T0);
		if (may != (stored == CACHE_STORED))
			fprintf(stderr, "case %zu: may_store %d, cache_store %d\n", i, may, stored);
		CHECK_EQ_INT(may, stored == CACHE_STORED);
	}
	msg q = parse(HTTP_REQUEST, "HEAD /a HTTP/1.1\r\nHost: example.test\r\n\r\n");
	msg r = parse(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 0\r\n\r\n");
	CHECK(!cache_response_may_store(c, q.m, r.m));
	done(&q);
	done(&r);
	cache_free(&c);
}

static void test_negative_caching(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 404 Not Found\r\nCache-Control: max-age=10\r\n", "nope", T0), CACHE_STORED);
	cache_entry *e = NULL;
	CHECK_EQ_INT(look(c, "", T0 + 9, &e), CACHE_FRESH);
	CHECK_EQ_INT(cache_entry_status(e), 404);
	cache_entry_release(&e);
	CHECK_EQ_INT(look_release(c, "", T0 + 10), CACHE_VALIDATE);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 410 Gone\r\nCache-Control: max-age=10\r\n", "", T0), CACHE_STORED);
	CHECK_EQ_INT(look_release(c, "", T0 + 1), CACHE_FRESH);
	cache_free(&c);
}

static void test_vary(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	const char *r = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: Accept-Encoding, X-Lang\r\n";
	CHECK_EQ_INT(store(c, "Accept-Encoding: gzip, br\r\nX-Lang: fr\r\n", r, "fr-gz", T0), CACHE_STORED);
	CHECK_EQ_INT(store(c, "X-Lang: fr\r\n", r, "fr-plain", T0), CACHE_STORED);
	cache_entry *e = NULL;
	size_t len;
	/* same codings in another order, another case, with a q=0 extra: the same variant */
	CHECK_EQ_INT(look(c, "Accept-Encoding: BR;q=0.5,gzip, zstd;q=0\r\nX-Lang: fr\r\n", T0, &e), CACHE_FRESH);
	CHECK(e && strcmp(cache_entry_body(e, &len), "fr-gz") == 0);
	cache_entry_release(&e);
	CHECK_EQ_INT(look(c, "X-Lang: fr\r\n", T0, &e), CACHE_FRESH);
	CHECK(e && strcmp(cache_entry_body(e, &len), "fr-plain") == 0);
	cache_entry_release(&e);
	CHECK_EQ_INT(look_release(c, "X-Lang: de\r\n", T0), CACHE_MISS);
	CHECK_EQ_INT(look_release(c, "Accept-Encoding: gzip\r\nX-Lang: fr\r\n", T0), CACHE_MISS);
	/* an empty value differs from an absent one */
	CHECK_EQ_INT(look_release(c, "X-Lang: fr\r\nAccept-Encoding: \r\n", T0), CACHE_MISS);
	/* a newer answer for one variant replaces only that one */
	CHECK_EQ_INT(store(c, "X-Lang: fr\r\n", r, "fr-plain-2", T0 + 5), CACHE_STORED);
	cache_stats st;
	cache_get_stats(c, &st);
	CHECK_EQ_INT(st.entries, 2);
	cache_free(&c);
}

static void test_stale_while_revalidate_and_if_error(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	msg q = parse(HTTP_REQUEST, "GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n");
	msg qe = parse(HTTP_REQUEST, "GET /a HTTP/1.1\r\nHost: example.test\r\nCache-Control: stale-if-error=500\r\n\r\n");
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=10, stale-while-revalidate=20, "
				  "stale-if-error=100\r\n", "x", T0),
		     CACHE_STORED);
	cache_entry *e = NULL;
	CHECK_EQ_INT(look(c, "", T0 + 5, &e), CACHE_FRESH);
	cache_entry_release(&e);
	CHECK_EQ_INT(look(c, "", T0 + 25, &e), CACHE_STALE_REFRESH);
	cache_entry_release(&e);
	CHECK_EQ_INT(look(c, "", T0 + 31, &e), CACHE_VALIDATE);
	CHECK(cache_entry_usable_on_error(e, q.m, T0 + 31));
	CHECK(cache_entry_usable_on_error(e, q.m, T0 + 110));
	CHECK(!cache_entry_usable_on_error(e, q.m, T0 + 111));
	CHECK(cache_entry_usable_on_error(e, qe.m, T0 + 400)); /* the request allows more */
	cache_entry_release(&e);
	/* without stale-if-error: a day at most; must-revalidate: never */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=10\r\n", "x", T0), CACHE_STORED);
	CHECK_EQ_INT(look(c, "", T0 + 100, &e), CACHE_VALIDATE);
	CHECK(cache_entry_usable_on_error(e, q.m, T0 + 100));
	CHECK(!cache_entry_usable_on_error(e, q.m, T0 + 10 + CACHE_STALE_ON_ERROR_MAX_S + 1));
	cache_entry_release(&e);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=10, must-revalidate, stale-while-revalidate=50\r\n",
			   "x", T0),
		     CACHE_STORED);
	CHECK_EQ_INT(look(c, "", T0 + 20, &e), CACHE_VALIDATE);
	CHECK(!cache_entry_usable_on_error(e, q.m, T0 + 20));
	cache_entry_release(&e);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: s-maxage=10\r\n", "x", T0), CACHE_STORED);
	CHECK_EQ_INT(look(c, "", T0 + 20, &e), CACHE_VALIDATE);
	CHECK(!cache_entry_usable_on_error(e, q.m, T0 + 20)); /* s-maxage implies proxy-revalidate */
	cache_entry_release(&e);
	/* no-cache: stored, always validated */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: no-cache, max-age=60\r\nETag: \"n\"\r\n", "x", T0),
		     CACHE_STORED);
	CHECK_EQ_INT(look_release(c, "", T0 + 1), CACHE_VALIDATE);
	done(&q);
	done(&qe);
	cache_free(&c);
}

static void test_304_updates_stored_headers(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=10\r\nETag: \"v1\"\r\nX-Version: 1\r\n"
				  "Content-Type: text/plain\r\n", "body", T0),
		     CACHE_STORED);
	cache_entry *e = NULL;
	CHECK_EQ_INT(look(c, "", T0 + 20, &e), CACHE_VALIDATE);
	msg s = parse(HTTP_RESPONSE, "HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=100\r\nETag: \"v1\"\r\n"
				     "X-Version: 2\r\nContent-Length: 99\r\nConnection: keep-alive\r\n\r\n");
	CHECK_EQ_INT(cache_update_304(c, e, s.m, T0 + 20, T0 + 20), 0);
	done(&s);
	cache_entry_release(&e);
	CHECK_EQ_INT(look(c, "", T0 + 50, &e), CACHE_FRESH);
	size_t len;
	const char *h = cache_entry_headers(e, &len);
	CHECK(strstr(h, "X-Version: 2\r\n") && !strstr(h, "X-Version: 1"));
	CHECK(strstr(h, "Content-Type: text/plain\r\n") && strstr(h, "Cache-Control: max-age=100\r\n"));
	CHECK(!strstr(h, "Content-Length") && !strstr(h, "Connection"));
	CHECK(strcmp(cache_entry_body(e, &len), "body") == 0);
	CHECK_EQ_INT(cache_entry_age(e, T0 + 50), 30);
	cache_entry_release(&e);
	cache_free(&c);
}

static void test_invalidation_after_unsafe_methods(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	const char *ok = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 0\r\n\r\n";
	const char *targets[] = {"/a", "/b", "/c", "/d"};
	for (int i = 0; i < 4; i++) {
		char rq[256];
		snprintf(rq, sizeof rq, "GET %s HTTP/1.1\r\nHost: example.test\r\n\r\n", targets[i]);
		msg q = parse(HTTP_REQUEST, rq), s = parse(HTTP_RESPONSE, ok);
		CHECK_EQ_INT(cache_store(c, q.m, s.m, "", 0, T0, T0), CACHE_STORED);
		done(&q);
		done(&s);
	}
	msg post = parse(HTTP_REQUEST, "POST /a HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\n\r\n");
	msg fail = parse(HTTP_RESPONSE, "HTTP/1.1 500 Oops\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_INT(cache_invalidate_after(c, post.m, fail.m), 0); /* an error: nothing changed */
	msg created = parse(HTTP_RESPONSE, "HTTP/1.1 201 Created\r\nLocation: http://EXAMPLE.test/b\r\n"
					   "Content-Location: /c#frag\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_INT(cache_invalidate_after(c, post.m, created.m), 3);
	msg other = parse(HTTP_RESPONSE, "HTTP/1.1 201 Created\r\nLocation: http://other.test/d\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_INT(cache_invalidate_after(c, post.m, other.m), 0); /* another host's URL: left alone */
	msg get = parse(HTTP_REQUEST, "GET /d HTTP/1.1\r\nHost: example.test\r\n\r\n");
	CHECK_EQ_INT(cache_invalidate_after(c, get.m, created.m), 0); /* a safe method */
	cache_stats st;
	cache_get_stats(c, &st);
	CHECK_EQ_INT(st.entries, 1);
	CHECK_EQ_INT(st.invalidated, 3);
	done(&post);
	done(&fail);
	done(&created);
	done(&other);
	done(&get);
	cache_free(&c);
}

static void store_target(cache *c, const char *host, const char *target, size_t body_len)
{
	static char body[8192];
	memset(body, 'b', sizeof body);
	char rq[256];
	snprintf(rq, sizeof rq, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, host);
	msg q = parse(HTTP_REQUEST, rq);
	msg s = parse(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 0\r\n\r\n");
	CHECK_EQ_INT(cache_store(c, q.m, s.m, body, body_len, T0, T0), CACHE_STORED);
	done(&q);
	done(&s);
}

static bool present(cache *c, const char *host, const char *target)
{
	char rq[256];
	snprintf(rq, sizeof rq, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, host);
	msg q = parse(HTTP_REQUEST, rq);
	cache_entry *e = NULL;
	bool hit = cache_lookup(c, q.m, T0, &e) == CACHE_FRESH;
	cache_entry_release(&e);
	done(&q);
	return hit;
}

static void test_purge(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	store_target(c, "h1", "/img/a", 1);
	store_target(c, "h1", "/img/b", 1);
	store_target(c, "h2", "/img/a", 1);
	store_target(c, "h1", "/css/a", 1);
	CHECK_EQ_INT(cache_purge_url(c, "h1", "/img/a"), 1);
	CHECK(!present(c, "h1", "/img/a") && present(c, "h2", "/img/a"));
	CHECK_EQ_INT(cache_purge_url(c, NULL, "/img/a"), 1);
	CHECK(!present(c, "h2", "/img/a"));
	CHECK_EQ_INT(cache_purge_prefix(c, NULL, "/img/"), 1);
	CHECK(!present(c, "h1", "/img/b") && present(c, "h1", "/css/a"));
	CHECK_EQ_INT(cache_purge_prefix(c, "h2", "/"), 0);
	CHECK_EQ_INT(cache_purge_prefix(c, "h1", "/"), 1);
	cache_free(&c);
}

/* The byte bound holds and the least recently used entry goes first; an
 * entry held by a reader survives its eviction until released. */
static void test_lru_byte_bound(void)
{
	cache *c = cache_new(5000, 4096);
	store_target(c, "h", "/1", 1500);
	store_target(c, "h", "/2", 1500);
	cache_entry *held = NULL;
	msg q = parse(HTTP_REQUEST, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
	CHECK_EQ_INT(cache_lookup(c, q.m, T0, &held), CACHE_FRESH); /* /1 is now the most recent */
	done(&q);
	store_target(c, "h", "/3", 1500);
	cache_stats st;
	cache_get_stats(c, &st);
	CHECK(st.bytes <= 5000);
	CHECK(present(c, "h", "/1") && !present(c, "h", "/2") && present(c, "h", "/3"));
	CHECK_EQ_INT(st.evicted, 1);
	/* evict /1 while held: still readable */
	store_target(c, "h", "/4", 1500);
	store_target(c, "h", "/5", 1500);
	cache_get_stats(c, &st);
	CHECK(st.bytes <= 5000 && st.entries == 2);
	CHECK(!cache_entry_current(held));
	size_t len;
	cache_entry_body(held, &len);
	CHECK_EQ_INT(len, 1500);
	cache_entry_release(&held);
	/* an object larger than the whole cache is refused, nothing evicted */
	cache *small = cache_new(1000, 4096);
	store_target(small, "h", "/1", 100);
	msg q2 = parse(HTTP_REQUEST, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
	msg s2 = parse(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 0\r\n\r\n");
	static char big[2000];
	CHECK_EQ_INT(cache_store(small, q2.m, s2.m, big, sizeof big, T0, T0), ERR_LIMIT);
	CHECK(present(small, "h", "/1"));
	done(&q2);
	done(&s2);
	cache_free(&small);
	cache_free(&c);
}

/* Files of the disk tier in dir. */
static int disk_files(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += strstr(de->d_name, ".tdc") != NULL;
	if (d)
		closedir(d);
	return n;
}

/* The disk tier: what memory evicts goes to files (0600) and comes back,
 * whole (status, headers, body, age), when looked up; Vary variants stay
 * apart; the disk bound evicts its own LRU; purges reach it; a damaged
 * file is a miss, never served; a new cache empties the directory. */
static void test_disk_tier(void)
{
	char dir[] = "/tmp/tandem-test-edgedisk-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char sub[64];
	snprintf(sub, sizeof sub, "%s/tier", dir);
	char err[256];
	cache *c = cache_new(5000, 4096);
	CHECK_EQ_INT(cache_set_disk(c, sub, 13000, err, sizeof err), 0);
	struct stat st;
	CHECK(stat(sub, &st) == 0 && (st.st_mode & 0777) == 0700);
	store_target(c, "h", "/1", 1500);
	store_target(c, "h", "/2", 1500);
	store_target(c, "h", "/3", 1500);
	store_target(c, "h", "/4", 1500); /* memory holds 2 (1787 bytes each): /1 and /2 go to disk */
	cache_stats cs;
	cache_get_stats(c, &cs);
	CHECK_EQ_INT(cs.entries, 2);
	CHECK_EQ_INT(cs.disk_entries, 2);
	CHECK_EQ_INT(disk_files(sub), 2);
	char path[512];
	DIR *d = opendir(sub);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strstr(de->d_name, ".tdc"))
			snprintf(path, sizeof path, "%s/%s", sub, de->d_name);
	closedir(d);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* /1 comes back from disk, whole, and is in memory again (its file gone) */
	msg q = parse(HTTP_REQUEST, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
	cache_entry *e = NULL;
	CHECK_EQ_INT(cache_lookup(c, q.m, T0 + 10, &e), CACHE_FRESH);
	done(&q);
	size_t len, hl;
	const char *body = cache_entry_body(e, &len);
	CHECK_EQ_INT(len, 1500);
	CHECK(body[0] == 'b' && body[1499] == 'b');
	CHECK_EQ_INT(cache_entry_status(e), 200);
	CHECK(strstr(cache_entry_headers(e, &hl), "Cache-Control: max-age=60") != NULL);
	CHECK_EQ_INT(cache_entry_age(e, T0 + 10), 10);
	CHECK_EQ_INT(cache_entry_lifetime(e), 60);
	cache_entry_release(&e);
	cache_get_stats(c, &cs);
	CHECK_EQ_INT(cs.disk_promoted, 1);
	CHECK_EQ_INT(cs.entries, 2);       /* /1 back, and /3 went down in its place */
	CHECK_EQ_INT(cs.disk_entries, 2);
	CHECK_EQ_INT(disk_files(sub), 2);
	/* the disk bound: a file counts in whole 4 KiB blocks plus its index
	 * record (about 4.2 KB each here), so 13000 bytes hold 3 such entries
	 * (1591 bytes each); the oldest goes */
	for (int i = 5; i <= 9; i++) {
		char t[16];
		snprintf(t, sizeof t, "/%d", i);
		store_target(c, "h", t, 1500);
	}
	cache_get_stats(c, &cs);
	CHECK(cs.disk_bytes <= 13000 && cs.disk_bytes > 3 * 4096 && cs.disk_entries == 3);
	CHECK_EQ_INT(disk_files(sub), 3);
	int found = 0;
	for (int i = 1; i <= 9; i++) {
		char t[16];
		snprintf(t, sizeof t, "/%d", i);
		found += present(c, "h", t);
	}
	CHECK_EQ_INT(found, 5); /* memory's 2 and disk's 3 (lookups swap them, none lost) */
	/* purge reaches the disk tier */
	CHECK_EQ_INT(cache_purge_prefix(c, "h", "/"), 5);
	cache_get_stats(c, &cs);
	CHECK_EQ_INT(cs.entries, 0);
	CHECK_EQ_INT(cs.disk_entries, 0);
	CHECK_EQ_INT(disk_files(sub), 0);
	/* a damaged file: a miss, counted, the file removed */
	for (int i = 1; i <= 4; i++) {
		char t[16];
		snprintf(t, sizeof t, "/%d", i);
		store_target(c, "h", t, 1500);
	}
	d = opendir(sub);
	int damaged = 0;
	while (d && (de = readdir(d)))
		if (strstr(de->d_name, ".tdc")) { /* /1's and /2's: the magic overwritten */
			snprintf(path, sizeof path, "%s/%s", sub, de->d_name);
			FILE *f = fopen(path, "r+b");
			CHECK(f != NULL);
			if (f) {
				fputc('X', f);
				fclose(f);
				damaged++;
			}
		}
	closedir(d);
	CHECK_EQ_INT(damaged, 2);
	CHECK(!present(c, "h", "/1"));
	CHECK(!present(c, "h", "/2"));
	CHECK(present(c, "h", "/4")); /* memory's are untouched */
	cache_get_stats(c, &cs);
	CHECK_EQ_INT(cs.disk_errors, 2);
	CHECK_EQ_INT(cs.disk_entries, 0);
	CHECK_EQ_INT(disk_files(sub), 0);
	/* Vary: two variants of one URL on disk, each found by its own request */
	cache_free(&c);
	CHECK_EQ_INT(disk_files(sub), 0); /* freed with the cache */
	c = cache_new(3000, 4096);
	CHECK_EQ_INT(cache_set_disk(c, sub, 1 << 20, err, sizeof err), 0);
	static char big[1500];
	memset(big, 'v', sizeof big);
	const char *langs[] = {"en", "de"};
	for (int i = 0; i < 2; i++) {
		char rq[256];
		snprintf(rq, sizeof rq, "GET /v HTTP/1.1\r\nHost: h\r\nAccept-Language: %s\r\n\r\n", langs[i]);
		msg vq = parse(HTTP_REQUEST, rq);
		msg vs = parse(HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: Accept-Language\r\n"
					      "Content-Length: 0\r\n\r\n");
		big[0] = langs[i][0];
		CHECK_EQ_INT(cache_store(c, vq.m, vs.m, big, sizeof big, T0, T0), CACHE_STORED);
		done(&vq);
		done(&vs);
	}
	store_target(c, "h", "/x", 1500); /* memory holds 1: both variants are on disk now */
	cache_get_stats(c, &cs);
	CHECK_EQ_INT(cs.disk_entries, 2);
	for (int i = 1; i >= 0; i--) {
		char rq[256];
		snprintf(rq, sizeof rq, "GET /v HTTP/1.1\r\nHost: h\r\nAccept-Language: %s\r\n\r\n", langs[i]);
		msg vq = parse(HTTP_REQUEST, rq);
		e = NULL;
		CHECK_EQ_INT(cache_lookup(c, vq.m, T0, &e), CACHE_FRESH);
		done(&vq);
		if (e)
			CHECK(cache_entry_body(e, &len)[0] == langs[i][0]);
		cache_entry_release(&e);
	}
	cache_free(&c);
	/* an earlier run's files are removed by a new cache on the directory */
	c = cache_new(3000, 4096);
	CHECK_EQ_INT(cache_set_disk(c, sub, 1 << 20, err, sizeof err), 0);
	store_target(c, "h", "/1", 1500);
	store_target(c, "h", "/2", 1500);
	store_target(c, "h", "/3", 1500);
	CHECK(disk_files(sub) >= 1);
	cache *again = cache_new(3000, 4096);
	CHECK_EQ_INT(cache_set_disk(again, sub, 1 << 20, err, sizeof err), 0);
	CHECK_EQ_INT(disk_files(sub), 0);
	cache_free(&again);
	cache_free(&c);
	/* a directory that cannot be made */
	c = cache_new(3000, 4096);
	CHECK(cache_set_disk(c, "/proc/nope/tier", 1000, err, sizeof err) != 0);
	CHECK(strstr(err, "/proc/nope/tier") != NULL);
	cache_free(&c);
	rmdir(sub);
	rmdir(dir);
}

static int woken[8];
static void wake(void *arg)
{
	woken[(int)(long)arg]++;
}

static cache *reentrant_cache;
static int reentrant_rc = -99;
static void wake_and_begin(void *arg)
{
	woken[(int)(long)arg]++;
	reentrant_rc = cache_fetch_begin(reentrant_cache, "k", wake, (void *)7L);
}

static void test_coalescing_bookkeeping(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	memset(woken, 0, sizeof woken);
	CHECK_EQ_INT(cache_fetch_begin(c, "k", wake, (void *)0L), 1); /* the leader */
	CHECK_EQ_INT(cache_fetch_begin(c, "k", wake, (void *)1L), 0);
	CHECK_EQ_INT(cache_fetch_begin(c, "k", wake, (void *)2L), 0);
	CHECK_EQ_INT(cache_fetch_begin(c, "k2", wake, (void *)3L), 1); /* another key */
	cache_fetch_cancel(c, "k", (void *)2L);
	cache_stats st;
	cache_get_stats(c, &st);
	CHECK_EQ_INT(st.pending, 2);
	cache_fetch_done(c, "k");
	CHECK(woken[0] == 0 && woken[1] == 1 && woken[2] == 0 && woken[3] == 0);
	cache_fetch_done(c, "k");
	CHECK_EQ_INT(woken[1], 1); /* once */
	/* bounded waiters */
	for (int i = 0; i < CACHE_MAX_WAITERS; i++)
		CHECK_EQ_INT(cache_fetch_begin(c, "k2", wake, (void *)4L), 0);
	CHECK_EQ_INT(cache_fetch_begin(c, "k2", wake, (void *)4L), ERR_LIMIT);
	cache_fetch_done(c, "k2");
	CHECK_EQ_INT(woken[4], CACHE_MAX_WAITERS);
	/* a waiter woken may lead a new fetch of the same key */
	reentrant_cache = c;
	CHECK_EQ_INT(cache_fetch_begin(c, "k", wake, (void *)0L), 1);
	CHECK_EQ_INT(cache_fetch_begin(c, "k", wake_and_begin, (void *)5L), 0);
	cache_fetch_done(c, "k");
	CHECK_EQ_INT(reentrant_rc, 1);
	cache_get_stats(c, &st);
	CHECK_EQ_INT(st.pending, 1);
	cache_free(&c); /* with a fetch pending: freed, nobody woken */
	CHECK_EQ_INT(woken[7], 0);
}

static bool not_modified(cache_entry *e, const char *lines)
{
	char rq[1024];
	snprintf(rq, sizeof rq, "GET /a HTTP/1.1\r\nHost: example.test\r\n%s\r\n", lines);
	msg q = parse(HTTP_REQUEST, rq);
	bool r = cache_entry_not_modified_for(e, q.m);
	done(&q);
	return r;
}

/* A client's own conditionals against a stored answer. */
static void test_client_conditionals(void)
{
	cache *c = cache_new(1 << 20, 1 << 16);
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: W/\"v1\"\r\n"
				  "Last-Modified: Tue, 14 Nov 2023 21:56:40 GMT\r\n", "x", T0),
		     CACHE_STORED);
	cache_entry *e = NULL;
	CHECK_EQ_INT(look(c, "", T0, &e), CACHE_FRESH);
	CHECK(not_modified(e, "If-None-Match: \"v0\", \"v1\"\r\n")); /* weak comparison */
	CHECK(not_modified(e, "If-None-Match: \"v0\"\r\nIf-None-Match: W/\"v1\"\r\n"));
	CHECK(not_modified(e, "If-None-Match: *\r\n"));
	CHECK(!not_modified(e, "If-None-Match: \"v2\"\r\n"));
	CHECK(!not_modified(e, "If-None-Match: \"v2\"\r\nIf-Modified-Since: Tue, 14 Nov 2023 22:00:00 GMT\r\n"));
	CHECK(not_modified(e, "If-Modified-Since: Tue, 14 Nov 2023 22:00:00 GMT\r\n"));
	CHECK(!not_modified(e, "If-Modified-Since: Tue, 14 Nov 2023 21:00:00 GMT\r\n"));
	CHECK(!not_modified(e, "If-Modified-Since: garbage\r\n"));
	CHECK(!not_modified(e, ""));
	cache_entry_release(&e);
	/* only a 200 */
	CHECK_EQ_INT(store(c, "", "HTTP/1.1 404 Not Found\r\nCache-Control: max-age=60\r\nETag: \"n\"\r\n", "", T0),
		     CACHE_STORED);
	CHECK_EQ_INT(look(c, "", T0, &e), CACHE_FRESH);
	CHECK(!not_modified(e, "If-None-Match: \"n\"\r\n"));
	cache_entry_release(&e);
	cache_free(&c);
}

/* Many tiny answers: each file counts at least a 4 KiB block plus its
 * index record against the disk bound, so their number (and the index's
 * memory) stays bounded by it, not by their bytes (before: 2,000 answers of
 * 10 bytes made 2,000 index records under a 64 KiB bound). */
static void test_disk_tier_counts_blocks(void)
{
	char dir[] = "/tmp/tandem-test-edgedisk-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char sub[64], err[256];
	snprintf(sub, sizeof sub, "%s/tier", dir);
	cache *c = cache_new(2000, 1024);
	CHECK_EQ_INT(cache_set_disk(c, sub, 64 * 1024, err, sizeof err), 0);
	for (int i = 0; i < 2000; i++) {
		char t[16];
		snprintf(t, sizeof t, "/t%d", i);
		store_target(c, "h", t, 10);
	}
	cache_stats cs;
	cache_get_stats(c, &cs);
	CHECK(cs.disk_entries <= 16 && cs.disk_entries >= 8);
	CHECK(cs.disk_bytes <= 64 * 1024);
	CHECK_EQ_INT(disk_files(sub), (int)cs.disk_entries);
	cache_free(&c);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK_EQ_INT(system(cmd), 0);
}

int main(void)
{
	RUN(test_cache_control_parsing);
	RUN(test_http_dates);
	RUN(test_accept_encoding_normalised);
	RUN(test_fresh_then_stale_and_age);
	RUN(test_age_computation);
	RUN(test_cdn_cache_control_and_expires);
	RUN(test_heuristic_freshness);
	RUN(test_storability);
	RUN(test_head_verdict);
	RUN(test_negative_caching);
	RUN(test_vary);
	RUN(test_stale_while_revalidate_and_if_error);
	RUN(test_304_updates_stored_headers);
	RUN(test_invalidation_after_unsafe_methods);
	RUN(test_purge);
	RUN(test_lru_byte_bound);
	RUN(test_disk_tier);
	RUN(test_disk_tier_counts_blocks);
	RUN(test_coalescing_bookkeeping);
	RUN(test_client_conditionals);
	return TEST_SUMMARY();
}
