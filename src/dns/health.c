/*
 * health.c - the health checker of a `tandem dns` instance and its metrics
 * listener (health.h has the design). Everything below dns_health_new runs
 * on the checker's own thread and event loop, except dns_health_current,
 * which any answering thread calls: the view is the only shared state, one
 * atomic word.
 *
 *   tick (every interval): for each region with no check in flight, send
 *          GET /readyz (the client keeps its connection alive; a region
 *          that died fails the next connect at once)
 *   answer: passed = 200 (and the RTT within max_rtt); read role and epoch;
 *          observe; on a change log it; publish the view
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/util.h"
#include "dns/health.h"
#include "http/client.h"
#include "http/server.h"

/* --- the state machine --- */

void dns_health_state_init(dns_health_state *s, int64_t now_ms)
{
	memset(s, 0, sizeof *s);
	s->healthy = true;
	s->since_ms = now_ms;
}

bool dns_health_observe(dns_health_state *s, const dns_health_params *p, bool ok, int64_t now_ms)
{
	s->checks++;
	if (!ok)
		s->failed++;
	if (ok == s->healthy) {
		s->streak = 0; /* a result that agrees ends any streak against it */
		return false;
	}
	s->streak++;
	if (s->streak < (s->healthy ? p->failures : p->recoveries))
		return false;
	s->healthy = !s->healthy;
	s->streak = 0;
	s->since_ms = now_ms;
	s->transitions++;
	return true;
}

dns_health_view dns_health_make_view(const dns_health_state *s, const bool *is_primary, const uint64_t *epoch,
				     int n)
{
	uint32_t healthy = 0;
	int primary = -1;
	for (int i = 0; i < n && i < DNS_REGIONS_MAX; i++) {
		if (!s[i].healthy)
			continue;
		healthy |= 1u << i;
		if (is_primary[i] && (primary < 0 || epoch[i] > epoch[primary]))
			primary = i;
	}
	return healthy | (primary >= 0 ? 1u << (8 + primary) : 0);
}

/* --- the checker --- */

typedef struct checked_region {
	struct dns_health *h;
	int index;
	char name[32];
	char hostport[128];
	http_client *client;
	dns_health_state st;
	bool in_flight;
	int64_t sent_us;
	int64_t rtt_us;            /* of the last check answered */
	bool is_primary;
	uint64_t epoch;
	int64_t since_wall_ms;     /* the current state's start, for display */
	char last_error[160];      /* why the last check failed ("" after a pass) */
} checked_region;

struct dns_health {
	char dns_name[32];
	struct event_base *base;
	struct event *tick;
	struct event *stop_ev;     /* made active to stop the thread (see dns_health_free) */
	SSL_CTX *ssl;
	http_server *metrics;
	char metrics_listen[128];
	dns_health_params params;
	int interval_ms, timeout_ms, max_rtt_ms;
	checked_region r[DNS_REGIONS_MAX];
	int n;
	bool fail_open;
	bool stopping;             /* freeing: answers of checks cut short count for nothing */
	_Atomic dns_health_view view;
	pthread_t thread;
	bool started;
};

static void publish(dns_health *h)
{
	dns_health_state st[DNS_REGIONS_MAX] = {{0}};
	bool primary[DNS_REGIONS_MAX] = {false};
	uint64_t epoch[DNS_REGIONS_MAX] = {0};
	for (int i = 0; i < h->n; i++) {
		st[i] = h->r[i].st;
		primary[i] = h->r[i].is_primary;
		epoch[i] = h->r[i].epoch;
	}
	dns_health_view v = dns_health_make_view(st, primary, epoch, h->n);
	if (h->n > 0) { /* (no region to check: nothing can fail) */
		bool fail_open = DNS_VIEW_HEALTHY(v) == 0;
		if (fail_open != h->fail_open) {
			if (fail_open)
				log_event(LOG_WARN, "dns_fail_open", NULL,
					  "every region is unhealthy: routed names answer all of them (fail open)");
			else
				log_event(LOG_INFO, "dns_fail_open_end", NULL, "a region is healthy again: fail open ends");
			h->fail_open = fail_open;
		}
	}
	atomic_store_explicit(&h->view, v, memory_order_release);
}

static void check_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	checked_region *cr = arg;
	dns_health *h = cr->h;
	cr->in_flight = false;
	if (h->stopping)
		return;
	cr->rtt_us = util_mono_us() - cr->sent_us;
	bool ok = rc == 0 && resp->status == 200;
	if (rc != 0) {
		const char *why = http_client_error(cr->client, NULL);
		snprintf(cr->last_error, sizeof cr->last_error, "%s", why[0] ? why : err_str(rc));
	} else if (resp->status != 200) {
		snprintf(cr->last_error, sizeof cr->last_error, "/readyz answered %d", resp->status);
	} else if (h->max_rtt_ms > 0 && cr->rtt_us > (int64_t)h->max_rtt_ms * 1000) {
		ok = false;
		snprintf(cr->last_error, sizeof cr->last_error, "round trip %lld ms over health_max_rtt_ms %d",
			 (long long)(cr->rtt_us / 1000), h->max_rtt_ms);
	} else {
		cr->last_error[0] = '\0';
	}
	if (rc == 0) {
		/* the role, for failover routes: a body we cannot read leaves the
		 * region healthy but with no role known */
		json_t *j = json_loadb(body, len, 0, NULL);
		const char *role = json_string_value(json_object_get(j, "role"));
		cr->is_primary = ok && role && strcmp(role, "primary") == 0;
		json_int_t e = json_integer_value(json_object_get(j, "epoch"));
		cr->epoch = e > 0 ? (uint64_t)e : 0;
		json_decref(j);
	} else {
		cr->is_primary = false;
	}
	if (dns_health_observe(&cr->st, &h->params, ok, util_mono_us() / 1000)) {
		cr->since_wall_ms = util_now_ms();
		char fields[96];
		snprintf(fields, sizeof fields, "\"dns_region\":\"%s\"", cr->name); /* (a checked name: no escaping) */
		if (cr->st.healthy)
			log_event(LOG_INFO, "dns_region_healthy", fields,
				  "region %s is healthy again after %d passed checks: back in the answers", cr->name,
				  h->params.recoveries);
		else
			log_event(LOG_WARN, "dns_region_unhealthy", fields,
				  "region %s is unhealthy after %d failed checks (%s): withdrawn from the answers",
				  cr->name, h->params.failures, cr->last_error);
	}
	publish(h);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	dns_health *h = arg;
	for (int i = 0; i < h->n; i++) {
		checked_region *cr = &h->r[i];
		if (cr->in_flight)
			continue; /* slower than the interval: its timeout ends it */
		cr->in_flight = true;
		cr->sent_us = util_mono_us();
		if (http_client_request(cr->client, "GET", "/readyz", NULL, NULL, 0, 0, check_answer, cr) != 0) {
			cr->in_flight = false;
			snprintf(cr->last_error, sizeof cr->last_error, "out of memory");
			if (dns_health_observe(&cr->st, &h->params, false, util_mono_us() / 1000))
				log_warn("region %s is unhealthy: its checks cannot be sent (out of memory)", cr->name);
			publish(h);
		}
	}
}

/* --- the metrics listener --- */

static void render_metrics(dns_health *h, buf *b)
{
	static const char *const help[][2] = {
		{"tandem_dns_region_healthy", "1 when the region is in the answers of routed names"},
		{"tandem_dns_region_primary", "1 when the region's /readyz says it is the primary (failover routes)"},
		{"tandem_dns_region_rtt_seconds", "round-trip time of the last health check"},
		{"tandem_dns_region_checks_total", "health checks answered, by result"},
		{"tandem_dns_region_transitions_total", "changes between healthy and unhealthy"},
	};
	for (size_t k = 0; k < sizeof help / sizeof help[0]; k++) {
		const char *type = strstr(help[k][0], "_total") ? "counter" : "gauge";
		buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", help[k][0], help[k][1], help[k][0], type);
		for (int i = 0; i < h->n; i++) {
			const checked_region *cr = &h->r[i];
			const char *l = cr->name;
			switch (k) {
			case 0:
				buf_printf(b, "%s{dns=\"%s\",region=\"%s\"} %d\n", help[k][0], h->dns_name, l, cr->st.healthy);
				break;
			case 1:
				buf_printf(b, "%s{dns=\"%s\",region=\"%s\"} %d\n", help[k][0], h->dns_name, l,
					   cr->is_primary && cr->st.healthy);
				break;
			case 2:
				buf_printf(b, "%s{dns=\"%s\",region=\"%s\"} %.6f\n", help[k][0], h->dns_name, l,
					   (double)cr->rtt_us / 1e6);
				break;
			case 3:
				buf_printf(b, "%s{dns=\"%s\",region=\"%s\",result=\"passed\"} %llu\n", help[k][0],
					   h->dns_name, l, (unsigned long long)(cr->st.checks - cr->st.failed));
				buf_printf(b, "%s{dns=\"%s\",region=\"%s\",result=\"failed\"} %llu\n", help[k][0],
					   h->dns_name, l, (unsigned long long)cr->st.failed);
				break;
			default:
				buf_printf(b, "%s{dns=\"%s\",region=\"%s\"} %llu\n", help[k][0], h->dns_name, l,
					   (unsigned long long)cr->st.transitions);
			}
		}
	}
	buf_printf(b, "# HELP tandem_dns_fail_open 1 while every region is unhealthy and routed names answer all\n"
		      "# TYPE tandem_dns_fail_open gauge\ntandem_dns_fail_open{dns=\"%s\"} %d\n",
		   h->dns_name, h->fail_open);
}

static void render_health(dns_health *h, buf *b)
{
	buf_printf(b, "{\"dns\":\"%s\",\"fail_open\":%s,\"interval_ms\":%d,\"regions\":{", h->dns_name,
		   h->fail_open ? "true" : "false", h->interval_ms);
	for (int i = 0; i < h->n; i++) {
		const checked_region *cr = &h->r[i];
		char since[32];
		util_iso8601(cr->since_wall_ms, since);
		buf_printf(b, "%s\"%s\":{\"healthy\":%s,\"since\":\"%s\",\"role\":\"%s\",\"epoch\":%llu,\"rtt_ms\":%.3f,"
			      "\"checks\":%llu,\"failed\":%llu,\"last_error\":",
			   i ? "," : "", cr->name, cr->st.healthy ? "true" : "false", since,
			   cr->is_primary ? "primary" : cr->st.checks ? "secondary" : "unknown",
			   (unsigned long long)cr->epoch, (double)cr->rtt_us / 1000.0, (unsigned long long)cr->st.checks,
			   (unsigned long long)cr->st.failed);
		if (cr->last_error[0]) {
			buf_addc(b, '"');
			buf_add_json_escaped(b, cr->last_error, strlen(cr->last_error));
			buf_addc(b, '"');
		} else {
			buf_adds(b, "null");
		}
		buf_addc(b, '}');
	}
	buf_adds(b, "}}\n");
}

static void on_metrics_request(http_request *req, void *arg)
{
	dns_health *h = arg;
	const http_message *m = http_request_message(req);
	bool get = strcmp(m->method, "GET") == 0 || strcmp(m->method, "HEAD") == 0;
	const char *path = m->target;
	buf b;
	buf_init(&b, 1 << 20); /* a few KiB for 8 regions; past 1 MiB: a bug, cut */
	int status = 200;
	const char *type = "text/plain; version=0.0.4";
	if (get && strcmp(path, "/metrics") == 0) {
		render_metrics(h, &b);
	} else if (get && strcmp(path, "/health") == 0) {
		render_health(h, &b);
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

/* --- life --- */

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void *health_run(void *arg)
{
	dns_health *h = arg;
	event_base_dispatch(h->base);
	return NULL;
}

dns_health *dns_health_new(const config *cfg, const dns_conf *dc, const dns_server_conf *sc, char *err,
			   size_t errcap)
{
	dns_health *h = calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	snprintf(h->dns_name, sizeof h->dns_name, "%s", sc->name);
	h->params.failures = sc->health_failures;
	h->params.recoveries = sc->health_recoveries;
	h->interval_ms = sc->health_interval_ms;
	h->timeout_ms = sc->health_timeout_ms;
	h->max_rtt_ms = sc->health_max_rtt_ms;
	atomic_init(&h->view, DNS_VIEW_ALL_HEALTHY);
	h->base = event_base_new();
	if (h->base)
		h->stop_ev = event_new(h->base, -1, 0, on_stop, h->base);
	if (!h->base || !h->stop_ev) {
		snprintf(err, errcap, "cannot create an event loop");
		goto fail;
	}
	if (dc->regions.n > 0) {
		h->ssl = tls_client_new(cfg->ca_file, NULL, NULL, err, errcap);
		if (!h->ssl)
			goto fail;
	}
	http_limits limits = {.max_header_bytes = 16384, .max_headers = 100, .max_body_bytes = 65536};
	int64_t now = util_mono_us() / 1000;
	for (int i = 0; i < dc->regions.n; i++) {
		checked_region *cr = &h->r[i];
		const config_region *reg = config_region_find(cfg, dc->regions.name[i]);
		char host[64];
		int port;
		cr->h = h;
		cr->index = i;
		snprintf(cr->name, sizeof cr->name, "%s", dc->regions.name[i]);
		if (!reg || !reg->api_listen[0] || util_split_hostport(reg->api_listen, host, sizeof host, &port) != 0) {
			snprintf(err, errcap, "%s:%d: region %s is routed to, but the config has no [region %s] with api_listen",
				 cfg->path, dc->regions.line[i], cr->name, cr->name);
			goto fail;
		}
		snprintf(cr->hostport, sizeof cr->hostport, "%s", reg->api_listen);
		cr->client = http_client_new(h->base, h->ssl, host, port, cr->name, &limits, h->timeout_ms);
		if (!cr->client) {
			snprintf(err, errcap, "out of memory");
			goto fail;
		}
		dns_health_state_init(&cr->st, now);
		cr->since_wall_ms = util_now_ms();
		h->n++;
	}
	if (h->n > 0) {
		h->tick = event_new(h->base, -1, EV_PERSIST, on_tick, h);
		struct timeval iv = {h->interval_ms / 1000, (h->interval_ms % 1000) * 1000};
		if (!h->tick || event_add(h->tick, &iv) != 0) {
			snprintf(err, errcap, "cannot start the health checks' timer");
			goto fail;
		}
	}
	if (sc->metrics_listen[0]) {
		http_server_config mcfg = {
			.limits = {.max_header_bytes = 8192, .max_headers = 64, .max_body_bytes = 0},
			.header_timeout_ms = 5000,
			.idle_timeout_ms = 60000,
			.max_connections = 16,
		};
		http_handlers mh = {.on_request = on_metrics_request, .arg = h};
		h->metrics = http_server_new(h->base, &mcfg, &mh);
		if (!h->metrics) {
			snprintf(err, errcap, "out of memory");
			goto fail;
		}
		if (http_server_listen(h->metrics, sc->metrics_listen) != 0) {
			snprintf(err, errcap, "cannot listen on %s (metrics_listen): %s", sc->metrics_listen,
				 strerror(errno));
			goto fail;
		}
		snprintf(h->metrics_listen, sizeof h->metrics_listen, "%s", sc->metrics_listen);
	}
	publish(h);
	return h;
fail:
	dns_health_free(&h);
	return NULL;
}

int dns_health_start(dns_health *h)
{
	if (h->tick)
		event_active(h->tick, EV_TIMEOUT, 0); /* the first checks at once, not an interval later */
	if (pthread_create(&h->thread, NULL, health_run, h) != 0)
		return ERR_IO;
	h->started = true;
	if (h->n)
		log_info("health checks of %d region%s every %d ms (unhealthy after %d failures, healthy after %d passes)",
			 h->n, h->n == 1 ? "" : "s", h->interval_ms, h->params.failures, h->params.recoveries);
	if (h->metrics_listen[0])
		log_info("serving http://%s/metrics and /health", h->metrics_listen);
	return 0;
}

dns_health_view dns_health_current(const dns_health *h)
{
	if (!h)
		return DNS_VIEW_ALL_HEALTHY;
	return atomic_load_explicit(&((dns_health *)h)->view, memory_order_acquire);
}

void dns_health_free(dns_health **hp)
{
	dns_health *h = *hp;
	if (!h)
		return;
	if (h->started) {
		/* an active event, not event_base_loopbreak: a loop that has not
		 * begun yet clears a break when it begins, and would run on
		 * (thread-safe: evthread_use_pthreads) */
		event_active(h->stop_ev, EV_READ, 0);
		pthread_join(h->thread, NULL);
	}
	h->stopping = true;
	for (int i = 0; i < DNS_REGIONS_MAX; i++)
		http_client_free(&h->r[i].client);
	http_server_free(&h->metrics);
	if (h->tick)
		event_free(h->tick);
	if (h->stop_ev)
		event_free(h->stop_ev);
	if (h->base)
		event_base_free(h->base);
	SSL_CTX_free(h->ssl);
	free(h);
	*hp = NULL;
}
