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
 */
#include "edge/edge.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/util.h"
#include "http/client.h"
#include "http/server.h"

#define EDGE_POOL 16          /* keep-alive connections per origin */
#define EDGE_HEADERS_MAX 65536 /* the header lines relayed one way */

typedef struct edge edge;

typedef struct origin {
	edge *e;
	int idx;
	const edge_origin_conf *conf;
	http_client *pool[EDGE_POOL];
	int inflight[EDGE_POOL];
	http_client *probe;
	bool probing;
	bool healthy;
} origin;

struct edge {
	const config *cfg;
	const edge_conf *ec;
	struct event_base *base;
	http_server *srv;
	SSL_CTX *server_ctx, *client_ctx;
	origin origins[EDGECONF_MAX_ORIGINS];
	int norigins;
	struct event *probe_timer, *sigterm, *sigint, *stop_timer;
	char via[64];
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
	char rid[33];
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

static void answer_error(http_request *req, int status, const char *code, const char *msg)
{
	char body[256];
	snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, status, body, strlen(body));
}

static void pxy_free(pxy *p)
{
	buf_free(&p->headers);
	free(p);
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

/* The next origin to try: configured order, healthy first, not tried. */
static int pick(edge *e, unsigned tried)
{
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < e->norigins; i++)
			if (!(tried & (1u << i)) && (pass == 1 || e->origins[i].healthy))
				return i;
	return -1;
}

static void send_to(pxy *p);

static void relay(pxy *p, const http_message *resp, const char *body, size_t len)
{
	http_request *req = p->req;
	buf lines;
	buf_init(&lines, EDGE_HEADERS_MAX);
	for (size_t i = 0; i < resp->field_count; i++) {
		const http_field *f = &resp->fields[i];
		if (hop_by_hop(f->name, f->name_len) || (f->name_len == 4 && strncasecmp(f->name, "date", 4) == 0))
			continue;
		buf_add(&lines, f->name, f->name_len);
		buf_adds(&lines, ": ");
		buf_add(&lines, f->value, f->value_len);
		buf_adds(&lines, "\r\n");
	}
	buf_printf(&lines, "Via: %s\r\nX-Tandem-Edge: %s\r\nX-Cache: miss\r\n", p->e->via, p->e->ec->name);
	if (lines.len >= EDGE_HEADERS_MAX - 1 || http_response_header_lines(req, lines.data, lines.len) != 0) {
		buf_free(&lines);
		answer_error(req, 502, "bad_gateway", "the origin's answer has too many headers");
		return;
	}
	buf_free(&lines);
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

static void answered(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	pxy *p = arg;
	edge *e = p->e;
	origin *o = &e->origins[p->origin];
	o->inflight[p->slot]--;
	bool failed = rc != 0 || resp->status == 502 || resp->status == 503 || resp->status == 504;
	if (!failed) {
		if (!http_request_is_closed(p->req))
			relay(p, resp, body, len);
		else
			http_respond(p->req, 502, NULL, 0); /* discarded: the client left */
		pxy_free(p);
		return;
	}
	char why[160];
	if (rc != 0)
		snprintf(why, sizeof why, "%s", rc == ERR_AGAIN ? "timeout" : http_client_error(o->pool[p->slot], NULL));
	else
		snprintf(why, sizeof why, "answered %d", resp->status);
	mark(e, p->origin, false, why);
	int next = p->retryable && p->attempts < 2 ? pick(e, p->tried) : -1;
	if (next >= 0 && !http_request_is_closed(p->req)) {
		log_info("edge %s: request %s: %s at %s, sent to %s", e->ec->name, p->rid, why, o->conf->name,
			 e->origins[next].conf->name);
		p->origin = next;
		send_to(p);
		return;
	}
	if (rc == 0)
		relay(p, resp, body, len); /* the origin's own 5xx */
	else if (rc == ERR_AGAIN)
		answer_error(p->req, 504, "gateway_timeout", "the region did not answer in time");
	else
		answer_error(p->req, 502, "bad_gateway", "no region could be reached");
	pxy_free(p);
}

static void send_to(pxy *p)
{
	edge *e = p->e;
	origin *o = &e->origins[p->origin];
	int best = 0;
	for (int i = 1; i < EDGE_POOL; i++)
		if (o->inflight[i] < o->inflight[best])
			best = i;
	p->slot = best;
	p->tried |= 1u << p->origin;
	p->attempts++;
	const http_message *m = http_request_message(p->req);
	size_t len;
	const char *body = http_request_body(p->req, &len);
	if (http_client_request(o->pool[best], m->method, m->target, p->headers.data, body, len, 0, answered, p) !=
	    0) {
		answer_error(p->req, 503, "overloaded", "out of memory");
		pxy_free(p);
		return;
	}
	o->inflight[best]++;
}

static void on_request(http_request *req, void *arg)
{
	edge *e = arg;
	pxy *p = calloc(1, sizeof *p);
	if (!p) {
		answer_error(req, 503, "overloaded", "out of memory");
		return;
	}
	p->e = e;
	p->req = req;
	util_request_id(p->rid);
	const http_message *m = http_request_message(req);
	buf_init(&p->headers, EDGE_HEADERS_MAX);
	bool keyed = false;
	for (size_t i = 0; i < m->field_count; i++) {
		const http_field *f = &m->fields[i];
		if (hop_by_hop(f->name, f->name_len) ||
		    (f->name_len == 9 && strncasecmp(f->name, "forwarded", 9) == 0))
			continue; /* a client's own Forwarded is not believed */
		if (f->name_len == 15 && strncasecmp(f->name, "idempotency-key", 15) == 0)
			keyed = true;
		buf_add(&p->headers, f->name, f->name_len);
		buf_adds(&p->headers, ": ");
		buf_add(&p->headers, f->value, f->value_len);
		buf_adds(&p->headers, "\r\n");
	}
	const char *peer = http_request_peer(req);
	bool v6 = peer && strchr(peer, ':');
	buf_printf(&p->headers, "Forwarded: for=%s%s%s;proto=%s\r\nVia: %s\r\n", v6 ? "\"[" : "", peer ? peer : "unknown",
		   v6 ? "]\"" : "", e->ec->tls ? "https" : "http", e->via);
	if (p->headers.len >= EDGE_HEADERS_MAX - 1) {
		answer_error(req, 431, "headers_too_large", "the request's headers are too large to relay");
		pxy_free(p);
		return;
	}
	p->head = strcmp(m->method, "HEAD") == 0;
	p->retryable = keyed || p->head || strcmp(m->method, "GET") == 0 || strcmp(m->method, "OPTIONS") == 0;
	p->origin = pick(e, 0);
	send_to(p);
}

static void probe_answered(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	origin *o = arg;
	o->probing = false;
	char why[96];
	snprintf(why, sizeof why, "probe %s", rc ? "failed" : "answered non-200");
	mark(o->e, o->idx, rc == 0 && resp->status == 200, why);
}

static void probe_tick(evutil_socket_t fd, short what, void *arg)
{
	edge *e = arg;
	for (int i = 0; i < e->norigins; i++) {
		origin *o = &e->origins[i];
		if (o->probing)
			continue;
		if (http_client_request(o->probe, "GET", e->ec->probe_path, NULL, NULL, 0, 0, probe_answered, o) == 0)
			o->probing = true;
	}
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
	if (ec->tls && !(e.server_ctx = tls_server_new(ec->tls_cert, ec->tls_key, NULL, err, sizeof err))) {
		fprintf(stderr, "tandem: [edge %s]: %s\n", ec->name, err);
		goto out;
	}
	if (!(e.client_ctx = tls_client_new(cfg->ca_file, NULL, NULL, err, sizeof err))) {
		fprintf(stderr, "tandem: [edge %s]: %s\n", ec->name, err);
		goto out;
	}
	http_limits limits = {.max_header_bytes = cfg->limits.max_header_bytes, .max_headers = cfg->limits.max_headers,
			      .max_body_bytes = ec->max_body_bytes, .max_target_bytes = cfg->limits.max_url_bytes};
	e.norigins = ec->norigins;
	for (int i = 0; i < ec->norigins; i++) {
		origin *o = &e.origins[i];
		o->e = &e;
		o->idx = i;
		o->conf = &ec->origins[i];
		o->healthy = true; /* until a failure or a probe says otherwise */
		SSL_CTX *ctx = o->conf->https ? e.client_ctx : NULL;
		for (int k = 0; k < EDGE_POOL; k++)
			if (!(o->pool[k] = http_client_new(e.base, ctx, o->conf->host, o->conf->port, NULL, &limits,
							   ec->response_timeout_ms)))
				goto oom;
		if (!(o->probe = http_client_new(e.base, ctx, o->conf->host, o->conf->port, NULL, &limits,
						 ec->probe_interval_ms > 0 ? ec->probe_interval_ms : 1000)))
			goto oom;
	}
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
		.ssl_ctx = e.server_ctx,
	};
	http_handlers h = {.on_request = on_request, .arg = &e};
	e.srv = http_server_new(e.base, &scfg, &h);
	if (!e.srv)
		goto oom;
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
	http_server_free(&e.srv);
	for (int i = 0; i < e.norigins; i++) {
		for (int k = 0; k < EDGE_POOL; k++)
			http_client_free(&e.origins[i].pool[k]);
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
	SSL_CTX_free(e.server_ctx);
	SSL_CTX_free(e.client_ctx);
	event_base_free(e.base);
	log_flush();
	return status;
}
