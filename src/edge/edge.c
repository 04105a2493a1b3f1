/*
 * edge.c - the edge's proxy (edge.h has the contract, docs/EDGE.md the
 * design). One thread, one event loop: the client-side HTTP server, a pool
 * of keep-alive client connections per origin, and the probes.
 *
 * A proxied request:
 *
 *   pick an origin (configured order, healthy first; all unhealthy: all)
 *     -> send on its least busy connection
 *     -> answer: 2xx..4xx, or a 5xx other than 502/503/504: relay it
 *     -> no connection, timeout, 502/503/504: the origin is marked
 *        unhealthy; retryable (GET/HEAD/OPTIONS, Idempotency-Key) and
 *        not retried yet: the next origin, at once; else relay / 502 / 504
 *
 * With the cache (cache.h decides, this file does the I/O), a GET or HEAD
 * first looks up:
 *
 *   fresh                 -> served (X-Cache: hit, Age)
 *   stale, client allows  -> served (X-Cache: stale)
 *   stale-while-revalidate-> served (X-Cache: stale); a GET also starts a
 *                            background refresh: a detached copy of the
 *                            request, unless a fetch of the key is pending
 *   must validate         -> sent with our validators (the client's own
 *                            conditionals dropped): 304 -> stored headers
 *                            updated, served (X-Cache: revalidated); 200 ->
 *                            stored, relayed; every origin failing or a 5xx
 *                            -> served stale if the entry allows it
 *   miss (GET)            -> coalesced: the first miss of a key fetches,
 *                            later ones wait (at most CACHE_MAX_WAITERS) and
 *                            look up again when it ends; a waiter that still
 *                            misses fetches on its own
 *
 * A request body larger than stream_upload_bytes (or chunked, of unknown
 * length) is streamed (see "streamed uploads" below); smaller ones are
 * collected whole first (max_body_bytes), as are answers' bodies that
 * decide a retry.
 *
 * Any answer to a GET is offered to cache_store; a 2xx/3xx to an unsafe
 * method invalidates the URL (and Location, Content-Location). POST
 * /_edge/purge (a bearer token derived from the secrets file) removes URLs
 * or prefixes.
 */
#include "edge/edge.h"

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/secrets.h"
#include "core/tls.h"
#include "edge/sni.h"
#include "core/util.h"
#include "edge/cache.h"
#include "edge/resolve.h"
#include "http/client.h"
#include "http/h2.h"
#include "http/server.h"

#define EDGE_HEADERS_MAX 65536 /* the header lines relayed one way */
#define EDGE_PURGE_PATH "/_edge/purge"
#define EDGE_PURGE_LABEL "tandem edge purge v1"
/* A streamed upload's body waiting for its origin, at most (beyond it the
 * client is not read), and what the origin's connection may queue. */
#define EDGE_UPLOAD_WINDOW (256 * 1024)
/* What may come to upload_data at once after a pause: one HTTP/2 stream's
 * window (the client fills it while paused; resumed, it comes in one piece),
 * more than one HTTP/1.1 read. up_held's bound: the retry buffer, two
 * windows and one such piece. */
#define EDGE_UPLOAD_PIECE_MAX (H2_UPLOAD_WINDOW + H2_INITIAL_WINDOW + 64 * 1024)

typedef struct edge edge;

typedef struct origin {
	edge *e;
	int idx;
	const edge_origin_conf *conf;
	http_client **pool;               /* [0, npool) made; each carries one request at a time */
	int *inflight;
	int npool;                        /* at most max_origin_connections */
	SSL_CTX *ctx;                     /* the origin's TLS (NULL: plain) */
	http_client *probe;
	bool probing;
	bool healthy;
	unsigned long attempts, failures; /* requests sent to it, and those that failed there */
	int write_gate;      /* a tandem region's /readyz "write_gate": 1 "open" (it takes writes
			      * itself), 0 anything else (a secondary, no lease...), -1 not said */
} origin;

struct edge {
	const config *cfg;
	const edge_conf *ec;
	struct event_base *base;
	http_server *srv;
	edge_sni *sni;           /* the listener's certificates (NULL: tls = off) */
	SSL_CTX *client_ctx;
	origin origins[EDGECONF_MAX_ORIGINS];
	int norigins;
	int order[EDGECONF_MAX_ORIGINS]; /* preference: configured, or what resolve = NAME answers first */
	edge_resolver *resolver;          /* NULL: no resolve = NAME */
	struct event *probe_timer, *sigterm, *sigint, *stop_timer;
	char via[64];
	cache *cache;            /* NULL: cache_bytes = 0 */
	bool purge_enabled;      /* the secrets file could be read */
	char purge_token[65];    /* hex of secrets_derive(EDGE_PURGE_LABEL) */
	bool stopping;           /* tearing down: answers (ERR_IO from freed clients) only end requests */
	http_server *metrics;    /* metrics_listen: /metrics and /health (NULL: none) */
	int pool_max;            /* connections per origin: max_origin_connections, within the
				  * origins' max_connections_per_address minus the probe's */
	/* answers, by how they were made (X-Cache), and what went wrong */
	unsigned long n_hit, n_miss, n_stale, n_revalidated, n_bad_gateway, n_gateway_timeout, n_failovers,
		n_stream_cuts, n_uploads, n_upload_replays, n_upload_cuts, n_upload_refused;
	/* what the streamed uploads in progress may hold (each reserves its
	 * buffer's bound, upload_reserve()): max_upload_memory_bytes */
	size_t upload_reserved;
};

typedef struct pxy {
	edge *e;
	http_request *req;
	buf headers;        /* the lines sent to the origin */
	unsigned tried;     /* bit per origin */
	int attempts;
	int origin, slot;
	bool retryable;
	bool head;
	bool write;          /* not GET, HEAD or OPTIONS */
	int group;           /* the origins it goes to: 0 `origins`, k the k-th `host_origins` */
	bool background;     /* a stale-while-revalidate refresh: req is a detached copy, no client */
	char *key;           /* leading the coalesced fetch of this key (cache_fetch_done at the end) */
	cache_entry *entry;  /* the stored answer this request revalidates */
	int64_t sent_at;     /* request_time for the cache (RFC 9111 4.2.3) */
	char rid[33];
	/* a streamed answer (stream_head): relayed as it arrives */
	bool streaming;
	bool stream_gone;    /* the client left mid-stream: the origin's request is abandoned */
	bool req_done;       /* the client's request was answered already (an error at the head) */
	bool tee;            /* a GET's answer small enough to store: a copy kept in tee_buf */
	buf tee_buf;
	uint64_t streamed;   /* body bytes relayed */
	/* a streamed upload (the request's body relayed as it arrives) */
	bool upload;
	bool up_replayable;  /* every byte received is still in up_held (from offset 0) */
	bool up_body_done;   /* the client's body ended */
	bool up_client_failed; /* it failed (answered here, the origin's request abandoned) */
	bool up_origin_ended; /* the origin has the whole body */
	bool up_answered;    /* the origin's answer began: no more body to it */
	bool up_in_flight;   /* a request to an origin carries it */
	bool up_cut;         /* up_held could not take a piece: the upload is abandoned */
	bool up_started;     /* that request is the one its connection is sending (its
			      * on_room came): before, it may wait behind another's upload */
	buf up_held;         /* the body from offset up_base: kept for a replay, or not yet sent */
	size_t up_reserved;  /* its bound, counted in e->upload_reserved while it lives */
	uint64_t up_base;
	uint64_t up_received, up_sent; /* from the client; to the current origin */
} pxy;

/* Hop-by-hop and framing headers: never relayed either way (RFC 9110 7.6.1). */
static bool hop_by_hop(const char *name, size_t len)
{
	static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
					  "transfer-encoding", "upgrade", "proxy-authenticate",
					  "proxy-authorization", "content-length", "expect", "host"};
	for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
		if (strlen(hop[i]) == len && strncasecmp(hop[i], name, len) == 0)
			return true;
	return false;
}

/* A field the message's Connection header names: hop-by-hop for this
 * connection only, never relayed (RFC 9110 7.6.1). */
static bool named_by_connection(const http_message *m, const char *name, size_t len)
{
	for (size_t i = 0; i < m->field_count; i++) {
		const http_field *f = &m->fields[i];
		if (f->name_len != 10 || strncasecmp(f->name, "connection", 10) != 0)
			continue;
		const char *v = f->value, *end = f->value + f->value_len;
		while (v < end) {
			while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
				v++;
			const char *t = v;
			while (v < end && *v != ',' && *v != ' ' && *v != '\t')
				v++;
			if ((size_t)(v - t) == len && len && strncasecmp(t, name, len) == 0)
				return true;
		}
	}
	return false;
}

static void answer_error(http_request *req, int status, const char *code, const char *msg)
{
	char body[256];
	snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, status, body, strlen(body));
}

static void background_done(void *arg, int status, const char *head, size_t head_len, const char *body,
			    size_t body_len)
{
	/* the answer to a background refresh's detached request: nobody reads it */
}

/* The end of a proxied request, whatever happened: the coalesced fetch it
 * led ends (its waiters look up again, finding what was just stored), the
 * entry it held is released, a background refresh's detached request is
 * answered so that it is freed. */
static void pxy_free(pxy *p)
{
	if (p->key) {
		if (!p->e->stopping) /* else waiters' requests are gone with the server */
			cache_fetch_done(p->e->cache, p->key);
		free(p->key);
	}
	cache_entry_release(&p->entry);
	if (p->background)
		http_respond(p->req, 204, NULL, 0);
	buf_free(&p->headers);
	buf_free(&p->tee_buf);
	buf_free(&p->up_held);
	p->e->upload_reserved -= p->up_reserved;
	free(p);
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static void mark(edge *e, int i, bool healthy, const char *why)
{
	origin *o = &e->origins[i];
	if (o->healthy == healthy)
		return;
	o->healthy = healthy;
	if (healthy)
		log_info("edge %s: origin %s is healthy again", e->ec->name, o->conf->name);
	else
		log_warn("edge %s: origin %s is unhealthy (%s): its attempts are skipped until a probe succeeds",
			 e->ec->name, o->conf->name, why);
}

/* The next origin to try: in order of preference, healthy first, not
 * tried. A write goes first to a healthy origin that takes writes itself
 * (its probe said write_gate "open": the primary): straight there, not
 * forwarded by a secondary, and, during a failover, not to a cut-off old
 * primary that refuses them while its reads still work. */
static int pick(edge *e, unsigned tried, bool write, int group)
{
	for (int pass = write ? 0 : 1; pass < 3; pass++)
		for (int k = 0; k < e->norigins; k++) {
			int i = e->order[k];
			const origin *o = &e->origins[i];
			if ((tried & (1u << i)) || o->conf->group != group)
				continue;
			if ((pass == 0 && o->healthy && o->write_gate == 1) || (pass == 1 && o->healthy) || pass == 2)
				return i;
		}
	return -1;
}

/* What resolve = NAME answered: the origins at those addresses first (in
 * their configured order), then the others (failover targets). An answer
 * naming none of them leaves the configured order. */
static void resolved(void *arg, const char addrs[][EDGE_RESOLVE_ADDR_TEXT], int n, uint32_t ttl)
{
	edge *e = arg;
	int order[EDGECONF_MAX_ORIGINS], k = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < e->norigins; i++) {
			bool named = false;
			for (int a = 0; a < n; a++)
				named |= strcmp(addrs[a], e->origins[i].conf->host) == 0;
			if (named == (pass == 0))
				order[k++] = i;
		}
	if (memcmp(order, e->order, sizeof(int) * (size_t)e->norigins) == 0)
		return;
	memcpy(e->order, order, sizeof(int) * (size_t)e->norigins);
	log_info("edge %s: %s answers %s (ttl %u s): origin %s first", e->ec->name, e->ec->resolve,
		 n ? addrs[0] : "nothing", ttl, e->origins[order[0]].conf->name);
}

static void send_to(pxy *p);

/* The origin's answer's header lines, minus hop-by-hop ones (and Date,
 * X-Cache: ours), plus Via, X-Tandem-Edge, X-Cache: miss, on p's answer.
 * 0 or ERR_LIMIT. */
static int relay_headers(pxy *p, const http_message *resp)
{
	buf lines;
	buf_init(&lines, EDGE_HEADERS_MAX);
	for (size_t i = 0; i < resp->field_count; i++) {
		const http_field *f = &resp->fields[i];
		if (hop_by_hop(f->name, f->name_len) || named_by_connection(resp, f->name, f->name_len) ||
		    (f->name_len == 4 && strncasecmp(f->name, "date", 4) == 0) ||
		    (f->name_len == 7 && strncasecmp(f->name, "x-cache", 7) == 0))
			continue;
		buf_add(&lines, f->name, f->name_len);
		buf_adds(&lines, ": ");
		buf_add(&lines, f->value, f->value_len);
		buf_adds(&lines, "\r\n");
	}
	buf_printf(&lines, "Via: %s\r\nX-Tandem-Edge: %s\r\nX-Cache: miss\r\n", p->e->via, p->e->ec->name);
	int rc = lines.len >= EDGE_HEADERS_MAX - 1 || http_response_header_lines(p->req, lines.data, lines.len) != 0
			 ? ERR_LIMIT
			 : 0;
	buf_free(&lines);
	return rc;
}

static void relay(pxy *p, const http_message *resp, const char *body, size_t len)
{
	http_request *req = p->req;
	if (p->background)
		return;
	if (http_request_is_closed(req)) {
		http_respond(req, 502, NULL, 0); /* discarded: the client left */
		return;
	}
	p->e->n_miss++;
	if (relay_headers(p, resp) != 0) {
		answer_error(req, 502, "bad_gateway", "the origin's answer has too many headers");
		return;
	}
	if (p->head) {
		/* a HEAD relays the length of what a GET would get */
		size_t n;
		const char *cl = http_message_field(resp, "Content-Length", &n);
		char tmp[24];
		long long v = 0;
		if (cl && n < sizeof tmp) {
			memcpy(tmp, cl, n);
			tmp[n] = '\0';
			if (util_parse_int(tmp, 0, INT64_MAX, &v) != 0)
				v = 0;
		}
		http_respond_start_length(req, resp->status, (uint64_t)v);
		http_respond_end(req);
		return;
	}
	http_respond(req, resp->status, body, len);
}

/* Answer req from a stored entry: its headers, Age, ours, X-Cache: how. */
static void serve_entry(edge *e, http_request *req, const cache_entry *ce, const char *how)
{
	if (how[0] == 'h')
		e->n_hit++;
	else if (how[0] == 's')
		e->n_stale++;
	else
		e->n_revalidated++;
	if (http_request_is_closed(req)) {
		http_respond(req, 502, NULL, 0); /* discarded: the client left */
		return;
	}
	size_t hlen, blen;
	const char *lines = cache_entry_headers(ce, &hlen);
	const char *body = cache_entry_body(ce, &blen);
	char ours[256];
	int n = snprintf(ours, sizeof ours, "Age: %lld\r\nVia: %s\r\nX-Tandem-Edge: %s\r\nX-Cache: %s\r\n",
			 (long long)cache_entry_age(ce, now_s()), e->via, e->ec->name, how);
	if (n < 0 || (size_t)n >= sizeof ours || http_response_header_lines(req, lines, hlen) != 0 ||
	    http_response_header_lines(req, ours, (size_t)n) != 0) {
		answer_error(req, 502, "bad_gateway", "the stored answer has too many headers");
		return;
	}
	if (cache_entry_not_modified_for(ce, http_request_message(req))) {
		http_respond(req, 304, NULL, 0); /* the client has it already */
		return;
	}
	if (strcmp(http_request_message(req)->method, "HEAD") == 0) {
		/* HEAD from a stored GET: the length a GET would get, no body */
		http_respond_start_length(req, cache_entry_status(ce), blen);
		http_respond_end(req);
		return;
	}
	http_respond(req, cache_entry_status(ce), body, blen);
}

/* An answer came: offer it to the cache (a GET's), or invalidate (an
 * unsafe method's). */
static void cache_answer(pxy *p, const http_message *resp, const char *body, size_t len)
{
	edge *e = p->e;
	if (!e->cache)
		return;
	const http_message *m = http_request_message(p->req);
	if (strcmp(m->method, "GET") == 0) {
		int rc = cache_store(e->cache, m, resp, body, len, p->sent_at, now_s());
		if (rc != CACHE_STORED)
			log_debug("edge %s: request %s: not stored: %s", e->ec->name, p->rid,
				  cache_store_reason(e->cache)); /* no URL in logs: it may name a user's data */
	} else if (!p->head) {
		int n = cache_invalidate_after(e->cache, m, resp);
		if (n > 0)
			log_debug("edge %s: request %s: %s invalidated %d stored answer(s)", e->ec->name, p->rid,
				  m->method, n);
	}
}

/* --- streamed answers ---
 *
 * An answer is relayed as it arrives unless the whole of it decides what
 * happens next: a 502/503/504 (retried at the next origin, or a stale entry
 * served instead), our own revalidation's 304 or 5xx, a background refresh
 * (nobody to relay to), HEAD and bodiless statuses. A streamed body goes
 * to the client piece by piece; when the client's unsent output is full
 * (max_unsent_bytes), the origin's connection stops being read until it
 * drains, so a client that reads slowly holds one window of the answer,
 * not all of it, and the origin is slowed by TCP. A GET's answer of at most
 * cache_max_object_bytes is also copied (the tee) and offered to the cache
 * once complete. A client that leaves mid-stream: the origin's request is
 * abandoned (its connection closed). An origin that fails mid-stream: the
 * client's connection is closed, so it sees a short body, never a
 * complete-looking one. No retry once a byte was relayed.
 */
static http_client *client_of(pxy *p)
{
	return p->e->origins[p->origin].pool[p->slot];
}

/* p leads the coalesced fetch of its key, and what it streams will not be
 * stored: its waiters are let go at once (they look up again, miss, and
 * fetch on their own), not held until the stream ends (an endless one:
 * never). */
static void stream_release_waiters(pxy *p)
{
	if (!p->key)
		return;
	cache_fetch_done(p->e->cache, p->key);
	free(p->key);
	p->key = NULL;
}

static void stream_abandon(pxy *p)
{
	if (p->stream_gone)
		return;
	p->stream_gone = true;
	http_client_abort(client_of(p)); /* answered() follows with ERR_IO */
}

static void stream_drained(http_request *req, void *arg)
{
	pxy *p = arg;
	if (http_request_is_closed(req))
		stream_abandon(p);
	else
		http_client_resume(client_of(p));
}

static bool stream_head(void *arg, const http_message *resp)
{
	pxy *p = arg;
	edge *e = p->e;
	int st = resp->status;
	p->up_answered = true; /* an upload's body stops here (a failover sends it again) */
	if (e->stopping || p->background || p->head || st < 200 || st == 204 || st == 304 || st == 502 || st == 503 ||
	    st == 504 || (p->entry && st >= 500))
		return false;
	p->streaming = true;
	e->n_miss++;
	if (http_request_is_closed(p->req)) {
		stream_abandon(p);
		return true; /* the bytes that come meanwhile are dropped */
	}
	if (relay_headers(p, resp) != 0) {
		answer_error(p->req, 502, "bad_gateway", "the origin's answer has too many headers");
		p->req_done = true;
		stream_abandon(p);
		return true;
	}
	size_t n;
	const char *cl = http_message_field(resp, "Content-Length", &n);
	long long length = -1;
	if (cl && n < 24) {
		char tmp[24];
		memcpy(tmp, cl, n);
		tmp[n] = '\0';
		if (util_parse_int(tmp, 0, INT64_MAX, &length) != 0)
			length = -1;
	}
	if (e->cache && strcmp(http_request_message(p->req)->method, "GET") == 0 &&
	    (length < 0 || (unsigned long long)length <= e->ec->cache_max_object_bytes)) {
		buf_init(&p->tee_buf, e->ec->cache_max_object_bytes);
		p->tee = true;
	}
	if (!p->tee || !cache_response_may_store(e->cache, http_request_message(p->req), resp))
		stream_release_waiters(p);
	if (length >= 0)
		http_respond_start_length(p->req, st, (uint64_t)length);
	else
		http_respond_start(p->req, st); /* chunked to the client */
	return true;
}

static void stream_data(void *arg, const char *data, size_t len)
{
	pxy *p = arg;
	if (p->stream_gone || p->req_done)
		return;
	if (http_request_is_closed(p->req)) {
		stream_abandon(p);
		return;
	}
	if (p->tee && buf_add(&p->tee_buf, data, len) != 0) { /* over cache_max_object_bytes: not stored */
		p->tee = false;
		buf_free(&p->tee_buf);
		stream_release_waiters(p);
	}
	http_respond_chunk(p->req, data, len);
	p->streamed += len;
	if (http_request_output_room(p->req) == 0) {
		http_client_pause(client_of(p));
		http_request_on_drain(p->req, stream_drained, p);
	}
}

/* The end of a streamed answer. */
static void stream_end(pxy *p, int rc, const http_message *resp, const char *why)
{
	edge *e = p->e;
	if (rc == 0 && !p->stream_gone) {
		/* offered to the cache first: the request (its method, URL, fields) ends with the answer */
		if (p->tee || strcmp(http_request_message(p->req)->method, "GET") != 0)
			cache_answer(p, resp, p->tee_buf.data ? p->tee_buf.data : "", p->tee_buf.len);
		else if (e->cache) /* a GET's answer too large to keep: what was stored for it is stale */
			cache_forget(e->cache, http_request_message(p->req));
		http_respond_end(p->req);
	} else {
		if (!p->stream_gone) {
			e->n_stream_cuts++;
			log_warn("edge %s: request %s: the answer from %s was cut after %llu bytes (%s): the client's "
				 "connection is closed",
				 e->ec->name, p->rid, e->origins[p->origin].conf->name, (unsigned long long)p->streamed,
				 why);
			mark(e, p->origin, false, why);
		}
		if (!p->req_done)
			http_request_abort(p->req); /* a short body, never a complete-looking one */
	}
	pxy_free(p);
}

/* --- streamed uploads ---
 *
 * A request body over stream_upload_bytes (or chunked) is not collected:
 * the server hands its pieces to upload_data as they arrive and they go to
 * the origin's connection as it takes them (upload_pump). What waits here
 * (up_held past up_sent) is bounded by EDGE_UPLOAD_WINDOW: beyond it the
 * client's body is paused (TCP, or HTTP/2 flow control, pushes back), and
 * resumed when the origin's connection has room again (upload_room). So
 * an upload of any size holds about retry_buffer_bytes + two windows here.
 *
 * Retry: the first retry_buffer_bytes of the body are kept (up_replayable)
 * while no more than that has arrived; an origin that fails then (no
 * connection, closed, 502/503/504) gets the usual rule (retryable method,
 * one retry), and the body is sent again from its start. Past it, a failed
 * origin means a 502 for the client and no repeat. An origin that answers
 * before the body ended (413, 401...) gets no more of it; its answer is
 * relayed and the client's connection (HTTP/2: stream) closed after it.
 * The client's body failing (too large: 413, too slow: 408, bad framing:
 * 400, client gone) answers here and abandons the origin's request (its
 * connection closed, so the origin sees a cut body, never a complete one).
 */
static http_client *client_of(pxy *p);

static size_t upload_pending(const pxy *p)
{
	return (size_t)(p->up_base + p->up_held.len - p->up_sent);
}

/* Send what the origin's connection has room for; end its body once the
 * client's ended and all is sent; pause or resume the client's body. */
static void upload_pump(pxy *p)
{
	if (p->up_in_flight && p->up_started && !p->up_answered && !p->up_client_failed && !p->up_cut) {
		http_client *oc = client_of(p);
		while (upload_pending(p) > 0) {
			size_t room = http_client_upload_room(oc);
			size_t n = upload_pending(p);
			if (n > room)
				n = room;
			if (n == 0 || http_client_upload_write(oc, p->up_held.data + (p->up_sent - p->up_base), n) != 0)
				break;
			p->up_sent += n;
		}
		if (!p->up_replayable && p->up_sent > p->up_base) { /* sent and not kept: dropped */
			size_t drop = (size_t)(p->up_sent - p->up_base);
			memmove(p->up_held.data, p->up_held.data + drop, p->up_held.len - drop);
			p->up_held.len -= drop;
			p->up_base = p->up_sent;
		}
		if (p->up_body_done && upload_pending(p) == 0 && !p->up_origin_ended) {
			p->up_origin_ended = true;
			http_client_upload_end(oc);
		}
	}
	if (p->up_body_done || p->up_client_failed || p->up_cut)
		return;
	if (upload_pending(p) >= EDGE_UPLOAD_WINDOW && !p->up_answered)
		http_request_body_pause(p->req);
	else
		http_request_body_resume(p->req);
}

/* Called only for the upload its connection is sending (not one queued
 * behind another's: writing then would go into that other's body). */
static void upload_room(void *arg)
{
	pxy *p = arg;
	p->up_started = true;
	upload_pump(p);
}

static void upload_data(http_request *req, void *arg, const char *data, size_t len)
{
	pxy *p = arg;
	edge *e = p->e;
	p->up_received += len;
	if (p->up_cut)
		return;
	if (p->up_answered && !p->up_replayable)
		return; /* the origin answered: the rest is dropped */
	if (p->up_replayable && p->up_received > e->ec->retry_buffer_bytes) {
		/* past what is kept for a replay: from now on only what waits is held */
		p->up_replayable = false;
		size_t drop = (size_t)(p->up_sent - p->up_base);
		if (drop) /* (none held yet: up_held.data is NULL, not for memmove) */
			memmove(p->up_held.data, p->up_held.data + drop, p->up_held.len - drop);
		p->up_held.len -= drop;
		p->up_base = p->up_sent;
		if (p->up_answered)
			return;
	}
	if (buf_add(&p->up_held, data, len) != 0) {
		/* cannot happen (paused at EDGE_UPLOAD_WINDOW, pieces up to EDGE_UPLOAD_PIECE_MAX), but
		 * if it does the body has a hole now: never sent on (nor replayed) as if whole */
		log_error("edge %s: request %s: an upload's buffer overflowed; request cut", e->ec->name, p->rid);
		p->up_cut = true;
		p->up_replayable = false; /* (counted as cut in answered) */
		http_request_body_pause(req);
		if (p->streaming)
			stream_abandon(p);
		else if (p->up_in_flight)
			http_client_abort(client_of(p)); /* answered(): a 502, not repeated */
		return;
	}
	upload_pump(p);
}

static void upload_end(http_request *req, void *arg, int rc)
{
	pxy *p = arg;
	edge *e = p->e;
	if (rc == 0) {
		p->up_body_done = true;
		upload_pump(p);
		return;
	}
	p->up_client_failed = true;
	e->n_upload_cuts++;
	log_info("edge %s: request %s: the client's body failed after %llu bytes (%s): the origin's request is "
		 "abandoned",
		 e->ec->name, p->rid, (unsigned long long)p->up_received, err_str(rc));
	if (p->streaming) { /* the origin's answer is being relayed: cut both */
		stream_abandon(p);
		return;
	}
	if (rc == ERR_LIMIT)
		answer_error(req, 413, "payload_too_large", "the request body is larger than max_upload_bytes");
	else if (rc == ERR_AGAIN)
		answer_error(req, 408, "request_timeout", "the request body stopped arriving");
	else if (rc == ERR_PARSE)
		answer_error(req, 400, "bad_request", "the request body's framing is broken");
	else
		http_respond(req, 400, NULL, 0); /* the client is gone: discarded */
	if (p->up_in_flight)
		http_client_abort(client_of(p)); /* answered() frees p */
	else
		pxy_free(p);
}

static void answered(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	pxy *p = arg;
	edge *e = p->e;
	origin *o = &e->origins[p->origin];
	o->inflight[p->slot]--;
	if (e->stopping) {
		/* the clients are being freed (their requests end with ERR_IO):
		 * no retry on a freed pool, no answer to a freed server's request */
		pxy_free(p);
		return;
	}
	p->up_in_flight = false;
	if (p->streaming) {
		stream_end(p, rc, resp, rc == 0 ? "" : rc == ERR_AGAIN ? "timeout" : http_client_error(o->pool[p->slot], NULL));
		return;
	}
	if (p->up_client_failed) { /* answered in upload_end already */
		pxy_free(p);
		return;
	}
	bool failed = rc != 0 || resp->status == 502 || resp->status == 503 || resp->status == 504;
	const http_message *m = http_request_message(p->req);
	if (!failed) {
		if (p->entry && resp->status == 304) {
			/* our revalidation: the stored answer is good, with the 304's fields */
			if (cache_update_304(e->cache, p->entry, resp, p->sent_at, now_s()) != 0)
				log_warn("edge %s: request %s: a 304 could not update the stored answer: dropped",
					 e->ec->name, p->rid);
			if (!p->background)
				serve_entry(e, p->req, p->entry, "revalidated");
		} else if (p->entry && resp->status >= 500 && cache_entry_usable_on_error(p->entry, m, now_s())) {
			if (!p->background)
				serve_entry(e, p->req, p->entry, "stale");
		} else {
			cache_answer(p, resp, body, len);
			relay(p, resp, body, len);
		}
		pxy_free(p);
		return;
	}
	char why[160];
	if (rc != 0)
		snprintf(why, sizeof why, "%s", rc == ERR_AGAIN ? "timeout" : http_client_error(o->pool[p->slot], NULL));
	else
		snprintf(why, sizeof why, "answered %d", resp->status);
	o->failures++;
	if (rc == 0 && resp->status == 503 && p->write)
		o->write_gate = 0; /* it refuses writes (no lease, no primary to forward to): its reads go on */
	else
		mark(e, p->origin, false, why);
	/* a streamed upload goes again only while all of its body is still here */
	bool replayable = !p->upload || p->up_replayable;
	int next = p->retryable && replayable && p->attempts < 2 ? pick(e, p->tried, p->write, p->group) : -1;
	if (next >= 0 && (p->background || !http_request_is_closed(p->req))) {
		e->n_failovers++;
		if (p->upload)
			e->n_upload_replays++;
		log_info("edge %s: request %s: %s at %s, sent to %s%s", e->ec->name, p->rid, why, o->conf->name,
			 e->origins[next].conf->name, p->upload ? " (its body replayed)" : "");
		p->origin = next;
		send_to(p);
		return;
	}
	if (p->upload && rc != 0 && !p->up_replayable) {
		e->n_upload_cuts++;
		e->n_bad_gateway++;
		log_warn("edge %s: request %s: %s at %s after %llu bytes of its body: not repeated (more than "
			 "retry_buffer_bytes were sent)",
			 e->ec->name, p->rid, why, o->conf->name, (unsigned long long)p->up_sent);
		answer_error(p->req, 502, "bad_gateway",
			     "the region failed while the upload was being relayed; it was not repeated");
		pxy_free(p);
		return;
	}
	if (p->entry && cache_entry_usable_on_error(p->entry, m, now_s())) {
		/* every origin failed: the stored answer allows being served stale */
		log_info("edge %s: request %s: %s: served stale from the cache", e->ec->name, p->rid, why);
		if (!p->background)
			serve_entry(e, p->req, p->entry, "stale");
	} else if (p->background) {
		log_info("edge %s: request %s: background refresh failed: %s", e->ec->name, p->rid, why);
	} else if (rc == 0) {
		relay(p, resp, body, len); /* the origin's own 5xx */
	} else if (rc == ERR_AGAIN) {
		e->n_gateway_timeout++;
		answer_error(p->req, 504, "gateway_timeout", "the region did not answer in time");
	} else {
		e->n_bad_gateway++;
		answer_error(p->req, 502, "bad_gateway", "no region could be reached");
	}
	pxy_free(p);
}

static void send_to(pxy *p)
{
	edge *e = p->e;
	origin *o = &e->origins[p->origin];
	/* an idle connection, else a new one (a request never waits behind
	 * another: a write waiting out its global durability must not hold up
	 * the reads), else, at max_origin_connections, the least busy */
	int best = -1;
	for (int i = 0; i < o->npool && best < 0; i++)
		if (o->inflight[i] == 0)
			best = i;
	if (best < 0 && o->npool < e->pool_max) {
		const edge_conf *ec = e->ec;
		http_limits limits = {.max_header_bytes = e->cfg->limits.max_header_bytes,
				      .max_headers = e->cfg->limits.max_headers,
				      .max_body_bytes = ec->max_body_bytes,
				      .max_target_bytes = e->cfg->limits.max_url_bytes};
		http_client *c = http_client_new(e->base, o->ctx, o->conf->host, o->conf->port, NULL, &limits,
						 ec->response_timeout_ms);
		if (c) {
			http_client_set_connect_timeout(c, ec->connect_timeout_ms);
			best = o->npool;
			o->pool[o->npool] = c;
			o->inflight[o->npool++] = 0;
		}
	}
	if (best < 0) {
		best = 0;
		for (int i = 1; i < o->npool; i++)
			if (o->inflight[i] < o->inflight[best])
				best = i;
	}
	if (o->npool == 0) {
		if (!p->background)
			answer_error(p->req, 503, "overloaded", "out of memory");
		pxy_free(p);
		return;
	}
	p->slot = best;
	p->tried |= 1u << p->origin;
	p->attempts++;
	const http_message *m = http_request_message(p->req);
	size_t len;
	const char *body = http_request_body(p->req, &len);
	if (p->attempts == 1)
		p->sent_at = now_s();
	int rc;
	if (p->upload) {
		/* the body follows as it arrives (upload_pump), from its start */
		p->up_sent = 0;
		p->up_origin_ended = false;
		p->up_answered = false;
		p->up_in_flight = true;
		p->up_started = false; /* until its on_room: it may wait behind another request */
		rc = http_client_request_upload(o->pool[best], m->method, m->target, p->headers.data,
						m->chunked ? -1 : m->content_length, EDGE_UPLOAD_WINDOW,
						p->group > 0 ? HTTP_CLIENT_OWN_HOST : 0, stream_head, stream_data,
						upload_room, answered, p);
	} else {
		rc = http_client_request_streamed(o->pool[best], m->method, m->target, p->headers.data, body, len,
						  p->group > 0 ? HTTP_CLIENT_OWN_HOST : 0, stream_head, stream_data,
						  answered, p);
	}
	if (rc != 0) {
		p->up_in_flight = false;
		if (!p->background)
			answer_error(p->req, 503, "overloaded", "out of memory");
		pxy_free(p);
		return;
	}
	o->inflight[best]++;
	o->attempts++;
}

/* The header lines sent to the origin: the client's minus hop-by-hop ones
 * and its Forwarded, plus ours; when revalidating a stored answer, the
 * client's own conditionals are replaced by the entry's validators (a 304
 * then answers our question, not the client's). 0 or ERR_LIMIT. */
static int build_headers(pxy *p, bool *keyed)
{
	edge *e = p->e;
	const http_message *m = http_request_message(p->req);
	buf_reset(&p->headers);
	for (size_t i = 0; i < m->field_count; i++) {
		const http_field *f = &m->fields[i];
		if (hop_by_hop(f->name, f->name_len) || named_by_connection(m, f->name, f->name_len) ||
		    (f->name_len == 9 && strncasecmp(f->name, "forwarded", 9) == 0))
			continue; /* a client's own Forwarded is not believed */
		if (p->entry && ((f->name_len == 13 && strncasecmp(f->name, "if-none-match", 13) == 0) ||
				 (f->name_len == 17 && strncasecmp(f->name, "if-modified-since", 17) == 0)))
			continue;
		if (f->name_len == 15 && strncasecmp(f->name, "idempotency-key", 15) == 0)
			*keyed = true;
		buf_add(&p->headers, f->name, f->name_len);
		buf_adds(&p->headers, ": ");
		buf_add(&p->headers, f->value, f->value_len);
		buf_adds(&p->headers, "\r\n");
	}
	if (p->group > 0) { /* the client's Host, which an S3 signature covers */
		size_t n;
		const char *host = http_message_field(m, "Host", &n);
		if (host) {
			buf_adds(&p->headers, "Host: ");
			buf_add(&p->headers, host, n);
			buf_adds(&p->headers, "\r\n");
		}
	}
	if (p->entry) {
		const char *etag = cache_entry_etag(p->entry), *lm = cache_entry_last_modified(p->entry);
		if (etag)
			buf_printf(&p->headers, "If-None-Match: %s\r\n", etag);
		if (lm)
			buf_printf(&p->headers, "If-Modified-Since: %s\r\n", lm);
	}
	const char *peer = http_request_peer(p->req);
	bool v6 = peer && strchr(peer, ':');
	buf_printf(&p->headers, "Forwarded: for=%s%s%s;proto=%s\r\nVia: %s\r\n", v6 ? "\"[" : "", peer ? peer : "unknown",
		   v6 ? "]\"" : "", e->ec->tls ? "https" : "http", e->via);
	return p->headers.len >= EDGE_HEADERS_MAX - 1 ? ERR_LIMIT : 0;
}

/* The origin group of a request: the `host_origins` whose host is the
 * request's Host (its port aside, any case) or a parent of it (a bucket's
 * virtual host: photos.s3.app.example under s3.app.example); else 0. */
static int host_group(const edge *e, const http_message *m)
{
	size_t n;
	const char *h = http_message_field(m, "Host", &n);
	if (!h || e->ec->ngroups == 0)
		return 0;
	const char *colon = h[0] == '[' ? NULL : memchr(h, ':', n);
	if (colon)
		n = (size_t)(colon - h);
	for (int k = 1; k <= e->ec->ngroups; k++) {
		const char *g = e->ec->group_host[k];
		size_t gl = strlen(g);
		if (n == gl && strncasecmp(h, g, n) == 0)
			return k;
		if (n > gl + 1 && h[n - gl - 1] == '.' && strncasecmp(h + n - gl, g, gl) == 0)
			return k;
	}
	return 0;
}

/* Send p to the first origin (headers built). */
static void dispatch(pxy *p)
{
	bool keyed = false;
	p->group = host_group(p->e, http_request_message(p->req));
	if (build_headers(p, &keyed) != 0) {
		if (!p->background)
			answer_error(p->req, 431, "headers_too_large", "the request's headers are too large to relay");
		pxy_free(p);
		return;
	}
	const char *method = http_request_message(p->req)->method;
	p->head = strcmp(method, "HEAD") == 0;
	p->retryable = keyed || p->head || strcmp(method, "GET") == 0 || strcmp(method, "OPTIONS") == 0;
	p->write = !(p->head || strcmp(method, "GET") == 0 || strcmp(method, "OPTIONS") == 0);
	/* a host group (an object store): PUT and DELETE are idempotent there (RFC 9110 9.2.2;
	 * an object written twice is the same object), so they may go to the other region too */
	if (p->group > 0)
		p->retryable |= strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;
	p->origin = pick(p->e, 0, p->write, p->group);
	send_to(p);
}

static pxy *pxy_new(edge *e, http_request *req)
{
	pxy *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->e = e;
	p->req = req;
	util_request_id(p->rid);
	buf_init(&p->headers, EDGE_HEADERS_MAX);
	return p;
}

/* A stale-while-revalidate hit on a GET: refresh the entry with a detached
 * copy of the request, unless a fetch of the key is pending already. */
static void refresh_in_background(edge *e, http_request *req, cache_entry *ce)
{
	char key[CACHE_KEY_MAX];
	if (cache_request_key(http_request_message(req), key, sizeof key) < 0)
		return;
	int rc = cache_fetch_begin(e->cache, key, NULL, req);
	if (rc == 0)
		cache_fetch_cancel(e->cache, key, req); /* being fetched already */
	if (rc != 1)
		return;
	pxy *p = NULL;
	http_request *copy = http_request_detach(req, background_done, NULL);
	if (!copy || !(p = pxy_new(e, copy)) || !(p->key = strdup(key))) {
		log_warn("edge %s: out of memory: no background refresh", e->ec->name);
		if (copy)
			http_respond(copy, 204, NULL, 0);
		if (p) {
			p->req = NULL;
			buf_free(&p->headers);
			free(p);
		}
		cache_fetch_done(e->cache, key);
		return;
	}
	p->background = true;
	p->entry = cache_entry_hold(ce); /* revalidated with its validators */
	log_debug("edge %s: request %s: background refresh", e->ec->name, p->rid);
	dispatch(p);
}

static void route(pxy *p, bool coalesce);

/* A coalesced fetch this request waited for has ended: look up again. */
static void waiter_woken(void *arg)
{
	route(arg, false);
}

/* Look up the cache, then serve, wait or send to an origin. coalesce:
 * a miss may wait for a pending fetch (false once it has waited). */
static void route(pxy *p, bool coalesce)
{
	edge *e = p->e;
	const http_message *m = http_request_message(p->req);
	bool get = strcmp(m->method, "GET") == 0;
	if (!e->cache || (!get && strcmp(m->method, "HEAD") != 0)) {
		dispatch(p);
		return;
	}
	cache_entry *ce = NULL;
	cache_verdict v = cache_lookup(e->cache, m, now_s(), &ce);
	switch (v) {
	case CACHE_FRESH:
		serve_entry(e, p->req, ce, "hit");
		cache_entry_release(&ce);
		pxy_free(p);
		return;
	case CACHE_STALE_REFRESH:
		if (get && coalesce)
			refresh_in_background(e, p->req, ce); /* before answering: req is copied */
		/* fall through */
	case CACHE_STALE_OK:
		serve_entry(e, p->req, ce, "stale");
		cache_entry_release(&ce);
		pxy_free(p);
		return;
	case CACHE_VALIDATE:
		if (cache_request_only_if_cached(m)) {
			/* stored, but not usable without the origin (RFC 9111 5.2.1.7) */
			cache_entry_release(&ce);
			answer_error(p->req, 504, "not_cached", "only-if-cached, and nothing usable is stored");
			pxy_free(p);
			return;
		}
		p->entry = ce;
		break;
	case CACHE_MISS:
		if (cache_request_only_if_cached(m)) {
			answer_error(p->req, 504, "not_cached", "only-if-cached, and nothing usable is stored");
			pxy_free(p);
			return;
		}
		/* not with Authorization: such an answer is not shared unless the
		 * origin says so (RFC 9111 3.5), so one user's request must not wait
		 * for another's (each would fetch again after it anyway) */
		if (get && coalesce && !http_message_field(m, "Authorization", NULL)) {
			char key[CACHE_KEY_MAX];
			int rc = cache_request_key(m, key, sizeof key) < 0 ? ERR_LIMIT
									   : cache_fetch_begin(e->cache, key, waiter_woken, p);
			if (rc == 0)
				return; /* waits for the pending fetch of key */
			if (rc == 1 && !(p->key = strdup(key)))
				cache_fetch_done(e->cache, key); /* no memory to lead: fetch alone */
		}
		break;
	}
	dispatch(p);
}

/* POST /_edge/purge, {"url": U} or {"prefix": P}: U and P are "/path" (on
 * every host) or "http[s]://host/path" (on that host only). Authorization:
 * Bearer <the purge token>. */
static void purge(edge *e, http_request *req)
{
	const http_message *m = http_request_message(req);
	if (strcmp(m->method, "POST") != 0) {
		http_response_header(req, "Allow", "POST");
		answer_error(req, 405, "method_not_allowed", "purge is a POST");
		return;
	}
	size_t alen;
	const char *auth = http_message_field(m, "Authorization", &alen);
	if (!auth || alen < 7 || strncasecmp(auth, "Bearer ", 7) != 0) {
		http_response_header(req, "WWW-Authenticate", "Bearer");
		answer_error(req, 401, "unauthenticated", "purge needs Authorization: Bearer <purge token>");
		return;
	}
	if (!e->purge_enabled || alen - 7 != 64 || CRYPTO_memcmp(auth + 7, e->purge_token, 64) != 0) {
		log_warn("edge %s: purge refused from %s: wrong token", e->ec->name, http_request_peer(req));
		answer_error(req, 403, "forbidden", "the purge token is not this deployment's");
		return;
	}
	size_t blen;
	const char *body = http_request_body(req, &blen);
	json_error_t jerr;
	json_t *j = json_loadb(body, blen, 0, &jerr);
	const char *url = j ? json_string_value(json_object_get(j, "url")) : NULL;
	const char *prefix = j ? json_string_value(json_object_get(j, "prefix")) : NULL;
	const char *what = url ? url : prefix;
	if (!json_is_object(j) || !what || (url && prefix)) {
		json_decref(j);
		answer_error(req, 400, "bad_request", "the body is a JSON object with url or prefix (one of them)");
		return;
	}
	char host[256] = "";
	const char *path = what;
	size_t skip = strncmp(what, "https://", 8) == 0 ? 8 : strncmp(what, "http://", 7) == 0 ? 7 : 0;
	if (skip) {
		const char *slash = strchr(what + skip, '/');
		size_t hl = slash ? (size_t)(slash - what - skip) : strlen(what + skip);
		if (hl == 0 || hl >= sizeof host) {
			json_decref(j);
			answer_error(req, 400, "bad_request", "the URL's host is empty or too long");
			return;
		}
		memcpy(host, what + skip, hl);
		for (size_t i = 0; i < hl; i++)
			host[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
		path = slash ? slash : "/";
	}
	if (path[0] != '/') {
		json_decref(j);
		answer_error(req, 400, "bad_request", "a URL is /path or http[s]://host/path");
		return;
	}
	int n = url ? cache_purge_url(e->cache, skip ? host : NULL, path)
		    : cache_purge_prefix(e->cache, skip ? host : NULL, path);
	log_info("edge %s: purge by %s of %s%s%s: %d stored answer(s) removed", e->ec->name, url ? "url" : "prefix",
		 host, skip ? "" : "(every host)", path, n);
	json_decref(j);
	char out[64];
	snprintf(out, sizeof out, "{\"purged\":%d}", n);
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, 200, out, strlen(out));
}

/* The head of a request: a body over stream_upload_bytes (or chunked) is
 * streamed to the origin as it arrives (see "streamed uploads"). */
static void on_head(http_request *req, void *arg)
{
	edge *e = arg;
	const http_message *m = http_request_message(req);
	size_t threshold = e->ec->stream_upload_bytes < e->ec->max_body_bytes ? e->ec->stream_upload_bytes
									       : e->ec->max_body_bytes;
	/* a body of unknown length is streamed only for methods that carry one: over HTTP/2 a
	 * GET whose HEADERS lack END_STREAM reads as chunked until its (empty) end */
	bool carries = strcmp(m->method, "GET") != 0 && strcmp(m->method, "HEAD") != 0 &&
		       strcmp(m->method, "OPTIONS") != 0 && strcmp(m->method, "DELETE") != 0;
	if (strncmp(m->target, "/_edge/", 7) == 0 ||
	    !((m->chunked && carries) || (m->content_length > 0 && (uint64_t)m->content_length > threshold)))
		return;
	if (m->content_length > 0 && (unsigned long long)m->content_length > e->ec->max_upload_bytes) {
		/* announced over the bound: refused here, the origin never asked (the body is not read) */
		answer_error(req, 413, "payload_too_large", "the request body is larger than max_upload_bytes");
		return;
	}
	/* every upload in progress holds up to its buffer's bound (and, over
	 * HTTP/2, a stream window in the server, counted there): all of them
	 * together at most max_upload_memory_bytes, so many uploads at once,
	 * or one HTTP/2 connection with 100 of them, cannot hold more */
	size_t reserve = e->ec->retry_buffer_bytes + 2 * EDGE_UPLOAD_WINDOW + EDGE_UPLOAD_PIECE_MAX;
	if (e->upload_reserved + reserve > e->ec->max_upload_memory_bytes) {
		e->n_upload_refused++;
		http_response_header(req, "Retry-After", "1");
		answer_error(req, 503, "overloaded",
			     "too many uploads in progress at this edge (max_upload_memory_bytes); try again");
		return;
	}
	pxy *p = pxy_new(e, req);
	if (!p)
		return; /* collected, as a small one */
	p->upload = true;
	p->up_replayable = true;
	p->up_reserved = reserve;
	e->upload_reserved += reserve;
	buf_init(&p->up_held, reserve);
	if (http_request_stream_body(req, e->ec->max_upload_bytes, upload_data, upload_end, p) != 0) {
		pxy_free(p);
		return;
	}
	e->n_uploads++;
	http_request_set_data(req, p);
}

static void on_request(http_request *req, void *arg)
{
	edge *e = arg;
	pxy *up = http_request_data(req);
	if (up) { /* a streamed upload (on_head): to an origin at once, its body follows */
		dispatch(up);
		return;
	}
	const http_message *m = http_request_message(req);
	if (strncmp(m->target, "/_edge/", 7) == 0) {
		/* the edge's own paths: never proxied */
		if (strcmp(m->target, EDGE_PURGE_PATH) == 0 && e->cache)
			purge(e, req);
		else
			answer_error(req, 404, "not_found", "no such edge endpoint");
		return;
	}
	pxy *p = pxy_new(e, req);
	if (!p) {
		answer_error(req, 503, "overloaded", "out of memory");
		return;
	}
	route(p, true);
}

static void probe_answered(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	origin *o = arg;
	o->probing = false;
	if (rc == 0) {
		size_t n;
		const char *ct = http_message_field(resp, "Content-Type", &n);
		static const char field[] = "\"write_gate\":", open[] = "\"write_gate\":\"open\"";
		if (ct && n >= 16 && strncasecmp(ct, "application/json", 16) == 0 && memmem(body, len, field, sizeof field - 1))
			o->write_gate = memmem(body, len, open, sizeof open - 1) != NULL;
		else
			o->write_gate = -1;
	}
	char why[96];
	snprintf(why, sizeof why, "probe %s", rc ? "failed" : "answered non-200");
	bool up = rc == 0 && (o->conf->group ? resp->status < 500 : resp->status == 200);
	mark(o->e, o->idx, up, why);
}

static void probe_tick(evutil_socket_t fd, short what, void *arg)
{
	edge *e = arg;
	for (int i = 0; i < e->norigins; i++) {
		origin *o = &e->origins[i];
		if (o->probing)
			continue;
		/* a host group's origin (an object store) is probed at "/": any answer below 500
		 * (an S3 endpoint's 403 to an anonymous ListBuckets) says it is up */
		const char *path = o->conf->group ? "/" : e->ec->probe_path;
		if (http_client_request(o->probe, "GET", path, NULL, NULL, 0, 0, probe_answered, o) == 0)
			o->probing = true;
	}
}

/* --- metrics_listen: /metrics (Prometheus text) and /health (JSON, what
 * `tandem status` shows) --- */

static void buf_add_json_string(buf *b, const char *s)
{
	buf_addc(b, '"');
	buf_add_json_escaped(b, s, strlen(s));
	buf_addc(b, '"');
}

static const char *gate_name(int g)
{
	return g == 1 ? "open" : g == 0 ? "closed" : "unknown";
}

static void render_metrics(edge *e, buf *b)
{
	const char *n = e->ec->name;
	buf_printf(b,
		   "# HELP tandem_edge_answers_total Answers, by how they were made (X-Cache).\n"
		   "# TYPE tandem_edge_answers_total counter\n"
		   "tandem_edge_answers_total{edge=\"%s\",cache=\"hit\"} %lu\n"
		   "tandem_edge_answers_total{edge=\"%s\",cache=\"miss\"} %lu\n"
		   "tandem_edge_answers_total{edge=\"%s\",cache=\"stale\"} %lu\n"
		   "tandem_edge_answers_total{edge=\"%s\",cache=\"revalidated\"} %lu\n"
		   "# HELP tandem_edge_errors_total The edge's own error answers: no origin reached, or its answer late.\n"
		   "# TYPE tandem_edge_errors_total counter\n"
		   "tandem_edge_errors_total{edge=\"%s\",code=\"bad_gateway\"} %lu\n"
		   "tandem_edge_errors_total{edge=\"%s\",code=\"gateway_timeout\"} %lu\n"
		   "# HELP tandem_edge_failovers_total Requests sent to another origin after a failure.\n"
		   "# TYPE tandem_edge_failovers_total counter\n"
		   "tandem_edge_failovers_total{edge=\"%s\"} %lu\n"
		   "# HELP tandem_edge_stream_cuts_total Streamed answers an origin cut off (the client saw a short body).\n"
		   "# TYPE tandem_edge_stream_cuts_total counter\n"
		   "tandem_edge_stream_cuts_total{edge=\"%s\"} %lu\n"
		   "# HELP tandem_edge_client_connections Client connections open.\n"
		   "# TYPE tandem_edge_client_connections gauge\n"
		   "tandem_edge_client_connections{edge=\"%s\"} %d\n",
		   n, e->n_hit, n, e->n_miss, n, e->n_stale, n, e->n_revalidated, n, e->n_bad_gateway, n,
		   e->n_gateway_timeout, n, e->n_failovers, n, e->n_stream_cuts, n, e->srv ? http_server_connections(e->srv) : 0);
	buf_printf(b,
		   "# HELP tandem_edge_uploads_total Request bodies streamed to an origin as they arrived, those sent "
		   "again to another origin, those cut (the client's body failed, or the origin past "
		   "retry_buffer_bytes), and those refused 503 (max_upload_memory_bytes reached).\n"
		   "# TYPE tandem_edge_uploads_total counter\n"
		   "tandem_edge_uploads_total{edge=\"%s\",outcome=\"streamed\"} %lu\n"
		   "tandem_edge_uploads_total{edge=\"%s\",outcome=\"replayed\"} %lu\n"
		   "tandem_edge_uploads_total{edge=\"%s\",outcome=\"cut\"} %lu\n"
		   "tandem_edge_uploads_total{edge=\"%s\",outcome=\"refused\"} %lu\n",
		   n, e->n_uploads, n, e->n_upload_replays, n, e->n_upload_cuts, n, e->n_upload_refused);
	buf_adds(b, "# HELP tandem_edge_origin_up Whether the origin is taken as healthy (probes, failed attempts).\n"
		    "# TYPE tandem_edge_origin_up gauge\n");
	for (int i = 0; i < e->norigins; i++)
		buf_printf(b, "tandem_edge_origin_up{edge=\"%s\",origin=\"%s\"} %d\n", n, e->origins[i].conf->name,
			   e->origins[i].healthy ? 1 : 0);
	buf_adds(b, "# HELP tandem_edge_origin_preference The origin's place in the order (0: tried first; resolve =).\n"
		    "# TYPE tandem_edge_origin_preference gauge\n");
	for (int k = 0; k < e->norigins; k++)
		buf_printf(b, "tandem_edge_origin_preference{edge=\"%s\",origin=\"%s\"} %d\n", n,
			   e->origins[e->order[k]].conf->name, k);
	buf_adds(b, "# HELP tandem_edge_origin_requests_total Requests sent to the origin, and those that failed there.\n"
		    "# TYPE tandem_edge_origin_requests_total counter\n");
	for (int i = 0; i < e->norigins; i++)
		buf_printf(b,
			   "tandem_edge_origin_requests_total{edge=\"%s\",origin=\"%s\",result=\"sent\"} %lu\n"
			   "tandem_edge_origin_requests_total{edge=\"%s\",origin=\"%s\",result=\"failed\"} %lu\n",
			   n, e->origins[i].conf->name, e->origins[i].attempts, n, e->origins[i].conf->name,
			   e->origins[i].failures);
	buf_adds(b, "# HELP tandem_edge_origin_connections Keep-alive connections opened to the origin (max_origin_connections).\n"
		    "# TYPE tandem_edge_origin_connections gauge\n");
	for (int i = 0; i < e->norigins; i++)
		buf_printf(b, "tandem_edge_origin_connections{edge=\"%s\",origin=\"%s\"} %d\n", n,
			   e->origins[i].conf->name, e->origins[i].npool);
	cache_stats cs = {0};
	if (e->cache)
		cache_get_stats(e->cache, &cs);
	buf_printf(b,
		   "# HELP tandem_edge_cache_bytes Bytes stored, by tier.\n"
		   "# TYPE tandem_edge_cache_bytes gauge\n"
		   "tandem_edge_cache_bytes{edge=\"%s\",tier=\"memory\"} %zu\n"
		   "tandem_edge_cache_bytes{edge=\"%s\",tier=\"disk\"} %zu\n"
		   "# HELP tandem_edge_cache_entries Answers stored, by tier.\n"
		   "# TYPE tandem_edge_cache_entries gauge\n"
		   "tandem_edge_cache_entries{edge=\"%s\",tier=\"memory\"} %zu\n"
		   "tandem_edge_cache_entries{edge=\"%s\",tier=\"disk\"} %zu\n"
		   "# HELP tandem_edge_cache_events_total Answers stored, evicted from memory, invalidated or purged,\n"
		   "# written to and promoted from disk, and disk files dropped as unreadable.\n"
		   "# TYPE tandem_edge_cache_events_total counter\n"
		   "tandem_edge_cache_events_total{edge=\"%s\",event=\"stored\"} %lu\n"
		   "tandem_edge_cache_events_total{edge=\"%s\",event=\"evicted\"} %lu\n"
		   "tandem_edge_cache_events_total{edge=\"%s\",event=\"invalidated\"} %lu\n"
		   "tandem_edge_cache_events_total{edge=\"%s\",event=\"disk_written\"} %lu\n"
		   "tandem_edge_cache_events_total{edge=\"%s\",event=\"disk_promoted\"} %lu\n"
		   "tandem_edge_cache_events_total{edge=\"%s\",event=\"disk_errors\"} %lu\n",
		   n, cs.bytes, n, cs.disk_bytes, n, cs.entries, n, cs.disk_entries, n, cs.stored, n, cs.evicted, n,
		   cs.invalidated, n, cs.disk_written, n, cs.disk_promoted, n, cs.disk_errors);
}

static void render_health(edge *e, buf *b)
{
	buf_adds(b, "{\"edge\":");
	buf_add_json_string(b, e->ec->name);
	buf_printf(b, ",\"resolve\":");
	if (e->ec->resolve[0])
		buf_add_json_string(b, e->ec->resolve);
	else
		buf_adds(b, "null");
	buf_adds(b, ",\"origins\":[");
	for (int k = 0; k < e->norigins; k++) {
		const origin *o = &e->origins[e->order[k]];
		buf_printf(b, "%s{\"name\":", k ? "," : "");
		buf_add_json_string(b, o->conf->name);
		buf_printf(b, ",\"group\":");
		buf_add_json_string(b, e->ec->group_host[o->conf->group]);
		buf_printf(b, ",\"healthy\":%s,\"write_gate\":\"%s\",\"connections\":%d,\"sent\":%lu,\"failed\":%lu}",
			   o->healthy ? "true" : "false", gate_name(o->write_gate), o->npool, o->attempts, o->failures);
	}
	cache_stats cs = {0};
	if (e->cache)
		cache_get_stats(e->cache, &cs);
	buf_printf(b,
		   "],\"answers\":{\"hit\":%lu,\"miss\":%lu,\"stale\":%lu,\"revalidated\":%lu,\"bad_gateway\":%lu,"
		   "\"gateway_timeout\":%lu},\"failovers\":%lu,\"cache\":{\"on\":%s,\"bytes\":%zu,\"entries\":%zu,"
		   "\"disk_bytes\":%zu,\"disk_entries\":%zu}}\n",
		   e->n_hit, e->n_miss, e->n_stale, e->n_revalidated, e->n_bad_gateway, e->n_gateway_timeout,
		   e->n_failovers, e->cache ? "true" : "false", cs.bytes, cs.entries, cs.disk_bytes, cs.disk_entries);
}

static void on_metrics_request(http_request *req, void *arg)
{
	edge *e = arg;
	const http_message *m = http_request_message(req);
	bool get = strcmp(m->method, "GET") == 0 || strcmp(m->method, "HEAD") == 0;
	buf b;
	buf_init(&b, 1 << 20);
	int status = 200;
	const char *type = "text/plain; version=0.0.4";
	if (get && strcmp(m->target, "/metrics") == 0) {
		render_metrics(e, &b);
	} else if (get && strcmp(m->target, "/health") == 0) {
		render_health(e, &b);
		type = "application/json";
	} else {
		status = get ? 404 : 405;
		type = "application/json";
		buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", get ? "not_found" : "method_not_allowed",
			   get ? "this listener serves /metrics and /health" : "only GET");
	}
	http_response_header(req, "Content-Type", type);
	http_respond(req, status, b.data ? b.data : "", b.len);
	buf_free(&b);
}

static void stopped(void *arg)
{
	edge *e = arg;
	event_base_loopexit(e->base, NULL);
}

static void stop_timeout(evutil_socket_t fd, short what, void *arg)
{
	edge *e = arg;
	log_warn("edge %s: shutdown timeout: closing the remaining connections", e->ec->name);
	event_base_loopexit(e->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	edge *e = arg;
	log_info("signal %d: graceful shutdown", (int)sig);
	if (e->probe_timer)
		event_del(e->probe_timer);
	struct timeval tv = util_timeval_ms(e->cfg->limits.shutdown_timeout_ms);
	evtimer_add(e->stop_timer, &tv);
	http_server_shutdown(e->srv, stopped, e);
}

int edge_purge_token(const config *cfg, char out[65], char *err, size_t errcap)
{
	static secrets s; /* large; one caller at a time (start-up, the CLI) */
	if (secrets_load(cfg->secrets_file, &s, err, errcap) != 0)
		return ERR_CONFIG;
	unsigned char key[32];
	secrets_derive(&s, EDGE_PURGE_LABEL, key);
	util_hex(key, sizeof key, out);
	OPENSSL_cleanse(key, sizeof key);
	secrets_clear(&s);
	return 0;
}

/* The listener's certificates: the default one (tls_cert, tls_key) and
 * one per "cert =" line, chosen by SNI (edge/sni.h); ALPN offers h2 when
 * the config says http2 = on. 0, or -1 with a reason in err. */
static int edge_tls_setup(edge *e, const edge_conf *ec, char *err, size_t errcap)
{
	SSL_CTX *ctx = tls_server_new(ec->tls_cert, ec->tls_key, NULL, err, errcap);
	if (!ctx)
		return -1;
	if (!(e->sni = edge_sni_new(ctx))) {
		snprintf(err, errcap, "out of memory");
		return -1;
	}
	for (int i = 0; i < ec->ncerts; i++) {
		const edge_cert_conf *c = &ec->certs[i];
		char reason[400];
		SSL_CTX *extra = tls_server_new(c->cert, c->key, NULL, reason, sizeof reason);
		if (!extra) {
			snprintf(err, errcap, "cert %s (line %d): %s", c->name, c->line, reason);
			return -1;
		}
		if (edge_sni_add(e->sni, c->name, extra) != 0) {
			snprintf(err, errcap, "cert %s (line %d): a bad or repeated name", c->name, c->line);
			return -1;
		}
	}
	if (ec->http2)
		edge_sni_each(e->sni, tls_server_offer_h2);
	return 0;
}

int edge_main(const config *cfg, const edge_confs *ecs, const char *name, int ready_fd)
{
	log_setup("edge", log_level_parse(cfg->log_level) < 0 ? LOG_INFO : (log_level)log_level_parse(cfg->log_level));
	signal(SIGPIPE, SIG_IGN);
	const edge_conf *ec = edgeconf_find(ecs, name);
	if (!ec) {
		fprintf(stderr, "tandem: %s: no [edge %s] section\n", cfg->path, name);
		return 1;
	}
	evthread_use_pthreads();
	static edge e; /* one per process */
	memset(&e, 0, sizeof e);
	e.cfg = cfg;
	e.ec = ec;
	snprintf(e.via, sizeof e.via, "1.1 tandem-edge-%s", ec->name);
	char err[512];
	int status = 1;
	e.base = event_base_new();
	if (!e.base) {
		fprintf(stderr, "tandem: out of memory\n");
		return 1;
	}
	if (ec->tls && edge_tls_setup(&e, ec, err, sizeof err) != 0) {
		fprintf(stderr, "tandem: [edge %s]: %s\n", ec->name, err);
		goto out;
	}
	if (!(e.client_ctx = tls_client_new(cfg->ca_file, NULL, NULL, err, sizeof err))) {
		fprintf(stderr, "tandem: [edge %s]: %s\n", ec->name, err);
		goto out;
	}
	if (ec->cache_bytes > 0 && !(e.cache = cache_new(ec->cache_bytes, ec->cache_max_object_bytes)))
		goto oom;
	if (e.cache && ec->disk_cache_bytes && cache_set_disk(e.cache, ec->disk_cache_dir, ec->disk_cache_bytes, err,
							      sizeof err) != 0) {
		fprintf(stderr, "tandem: [edge %s]: the disk cache: %s\n", ec->name, err);
		goto out;
	}
	if (e.cache) {
		if (edge_purge_token(cfg, e.purge_token, err, sizeof err) == 0)
			e.purge_enabled = true;
		else
			log_warn("edge %s: purge refused (403) until restarted: %s", ec->name, err);
	}
	http_limits limits = {.max_header_bytes = cfg->limits.max_header_bytes, .max_headers = cfg->limits.max_headers,
			      .max_body_bytes = ec->max_body_bytes, .max_target_bytes = cfg->limits.max_url_bytes};
	/* The origins are this deployment's regions, with this file's [limits]: a
	 * region closes at once the connections from one address past
	 * max_connections_per_address, which would look like the origin failing
	 * (marked unhealthy, requests failed over or answered 502). So the pool
	 * stays within it, one left for the probe; past it requests queue. */
	e.pool_max = ec->max_origin_connections;
	if (cfg->limits.max_connections_per_address > 0 && e.pool_max > cfg->limits.max_connections_per_address - 1) {
		e.pool_max = cfg->limits.max_connections_per_address > 1 ? cfg->limits.max_connections_per_address - 1 : 1;
		log_debug("edge %s: at most %d connection(s) per origin (max_connections_per_address %d, one for the "
			 "probe), not max_origin_connections %d",
			 ec->name, e.pool_max, cfg->limits.max_connections_per_address, ec->max_origin_connections);
	}
	e.norigins = ec->norigins;
	for (int i = 0; i < ec->norigins; i++) {
		origin *o = &e.origins[i];
		o->e = &e;
		o->idx = i;
		o->conf = &ec->origins[i];
		o->healthy = true; /* until a failure or a probe says otherwise */
		o->write_gate = -1;
		e.order[i] = i;
		SSL_CTX *ctx = o->ctx = o->conf->https ? e.client_ctx : NULL;
		o->pool = calloc((size_t)e.pool_max, sizeof *o->pool);
		o->inflight = calloc((size_t)e.pool_max, sizeof *o->inflight);
		if (!o->pool || !o->inflight)
			goto oom;
		if (!(o->probe = http_client_new(e.base, ctx, o->conf->host, o->conf->port, NULL, &limits,
						 ec->probe_interval_ms > 0 ? ec->probe_interval_ms : 1000)))
			goto oom;
		http_client_set_connect_timeout(o->probe, ec->connect_timeout_ms);
	}
	if (ec->resolve[0] && !(e.resolver = edge_resolver_new(e.base, ec, resolved, &e)))
		goto oom;
	http_server_config scfg = {
		.limits = limits,
		.header_timeout_ms = cfg->limits.header_timeout_ms,
		.idle_timeout_ms = cfg->limits.idle_timeout_ms,
		.body_timeout_ms = cfg->limits.body_timeout_ms,
		.write_timeout_ms = cfg->limits.write_timeout_ms,
		.max_unsent_bytes = cfg->limits.max_unsent_bytes,
		.max_buffered_bytes = cfg->limits.max_buffered_bytes,
		.max_connections = cfg->limits.max_connections,
		.max_connections_per_address = cfg->limits.max_connections_per_address,
		.ssl_ctx = e.sni ? edge_sni_default(e.sni) : NULL,
		.http2 = ec->http2,
	};
	http_handlers h = {.on_head = on_head, .on_request = on_request, .arg = &e};
	e.srv = http_server_new(e.base, &scfg, &h);
	if (!e.srv)
		goto oom;
	if (ec->metrics_listen[0]) {
		http_server_config mcfg = {.limits = {.max_header_bytes = 8192, .max_headers = 64, .max_body_bytes = 0},
					   .header_timeout_ms = 5000,
					   .idle_timeout_ms = 60000,
					   .max_connections = 16};
		http_handlers mh = {.on_request = on_metrics_request, .arg = &e};
		if (!(e.metrics = http_server_new(e.base, &mcfg, &mh)))
			goto oom;
		if (http_server_listen(e.metrics, ec->metrics_listen) != 0) {
			fprintf(stderr, "tandem: [edge %s]: cannot listen on %s (metrics_listen): %s\n", ec->name,
				ec->metrics_listen, strerror(errno));
			goto out;
		}
	}
	if (http_server_listen(e.srv, ec->listen) != 0) {
		fprintf(stderr, "tandem: [edge %s]: cannot listen on %s: %s\n", ec->name, ec->listen, strerror(errno));
		goto out;
	}
	e.sigterm = evsignal_new(e.base, SIGTERM, on_signal, &e);
	e.sigint = evsignal_new(e.base, SIGINT, on_signal, &e);
	e.stop_timer = evtimer_new(e.base, stop_timeout, &e);
	if (!e.sigterm || !e.sigint || !e.stop_timer)
		goto oom;
	evsignal_add(e.sigterm, NULL);
	evsignal_add(e.sigint, NULL);
	if (ec->probe_interval_ms > 0) {
		e.probe_timer = event_new(e.base, -1, EV_PERSIST, probe_tick, &e);
		if (!e.probe_timer)
			goto oom;
		struct timeval tv = util_timeval_ms(ec->probe_interval_ms);
		event_add(e.probe_timer, &tv);
	}
	log_info("edge %s: serving %s://%s, %d origin(s)", ec->name, ec->tls ? "https" : "http", ec->listen,
		 ec->norigins);
	if (ready_fd >= 0) {
		ssize_t unused = write(ready_fd, "ready\n", 6);
		(void)unused;
		close(ready_fd);
	}
	event_base_dispatch(e.base);
	status = 0;
	log_info("edge %s: stopped", ec->name);
	goto out;
oom:
	fprintf(stderr, "tandem: out of memory\n");
out:
	e.stopping = true;
	edge_resolver_free(&e.resolver);
	http_server_free(&e.metrics);
	http_server_free(&e.srv);
	for (int i = 0; i < e.norigins; i++) {
		for (int k = 0; k < e.origins[i].npool; k++)
			http_client_free(&e.origins[i].pool[k]);
		free(e.origins[i].pool);
		free(e.origins[i].inflight);
		http_client_free(&e.origins[i].probe);
	}
	if (e.probe_timer)
		event_free(e.probe_timer);
	if (e.sigterm)
		event_free(e.sigterm);
	if (e.sigint)
		event_free(e.sigint);
	if (e.stop_timer)
		event_free(e.stop_timer);
	cache_free(&e.cache);
	OPENSSL_cleanse(e.purge_token, sizeof e.purge_token);
	edge_sni_free(&e.sni);
	SSL_CTX_free(e.client_ctx);
	event_base_free(e.base);
	log_flush();
	return status;
}
