/*
 * metrics.c - /metrics in the Prometheus text format (version 0.0.4):
 * requests by route and status class, a latency histogram per route,
 * write batches and fsync time from the committer, open connections.
 * Updated on the loop thread only, so plain counters suffice.
 *
 * /metrics is served on its own plain-HTTP listener ([region NAME]
 * metrics_listen, loopback in the generated config), never on the public API
 * port: it tells anyone who can read it the traffic, the replication state
 * and the failover timeline of the region (docs/SECURITY.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/looplag.h"
#include "objects/orepl.h"
#include "region/internal.h"

/* Bound of one rendering: 16 routes x 20 lines plus the replication block is
 * a few tens of KiB; a larger text means a bug, answered as 500. */
#define METRICS_TEXT_MAX (4 * 1024 * 1024)

#define METRICS_ROUTES 16
static const double bucket_bounds_ms[] = {1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000};
#define METRICS_BUCKETS ((int)(sizeof bucket_bounds_ms / sizeof bucket_bounds_ms[0]))

const char *api_route_pattern(int index);
int api_route_count(void);

struct metrics {
	/* route index + 1 (0 = unmatched) x status class 1xx..5xx */
	unsigned long long requests[METRICS_ROUTES + 1][6];
	unsigned long long buckets[METRICS_ROUTES + 1][METRICS_BUCKETS + 1];
	double duration_sum_s[METRICS_ROUTES + 1];
	unsigned long long replays;
	unsigned long long list_refused[3]; /* by list_refusals[] */
};

/* Why a list query was refused (docs/SECURITY.md, "Bounded work per request"). */
static const char *const list_refusals[] = {"timeout", "scan_limit", "overloaded"};

metrics *metrics_new(void)
{
	return calloc(1, sizeof(metrics));
}

void metrics_free(metrics **m)
{
	free(*m);
	*m = NULL;
}

void metrics_request(metrics *m, int route_index, int status, int64_t duration_us)
{
	int r = route_index + 1;
	if (r < 0 || r > METRICS_ROUTES)
		r = 0;
	int cls = status / 100;
	if (cls < 1 || cls > 5)
		cls = 0;
	m->requests[r][cls]++;
	double ms = (double)duration_us / 1000.0;
	int b = 0;
	while (b < METRICS_BUCKETS && ms > bucket_bounds_ms[b])
		b++;
	m->buckets[r][b]++;
	m->duration_sum_s[r] += ms / 1000.0;
}

void metrics_idempotent_replay(metrics *m)
{
	m->replays++;
}

void metrics_list_refused(metrics *m, const char *reason)
{
	for (size_t i = 0; i < sizeof list_refusals / sizeof list_refusals[0]; i++)
		if (strcmp(list_refusals[i], reason) == 0)
			m->list_refused[i]++;
}

void metrics_render(region *rg, buf *out)
{
	metrics *m = rg->metrics;
	const char *region_name = rg->self->name;
	int routes = api_route_count();
	if (routes > METRICS_ROUTES)
		routes = METRICS_ROUTES;
	buf_adds(out, "# HELP tandem_http_requests_total Requests answered, by route and status class.\n"
		      "# TYPE tandem_http_requests_total counter\n");
	for (int r = 0; r <= routes; r++)
		for (int c = 1; c <= 5; c++)
			if (m->requests[r][c])
				buf_printf(out, "tandem_http_requests_total{region=\"%s\",route=\"%s\",status=\"%dxx\"} %llu\n",
					   region_name, api_route_pattern(r - 1), c, m->requests[r][c]);
	buf_adds(out, "# HELP tandem_http_request_duration_seconds Time from a complete request to its answer.\n"
		      "# TYPE tandem_http_request_duration_seconds histogram\n");
	for (int r = 0; r <= routes; r++) {
		unsigned long long total = 0;
		for (int c = 0; c <= 5; c++)
			total += m->requests[r][c];
		if (!total)
			continue;
		unsigned long long cum = 0;
		for (int b = 0; b <= METRICS_BUCKETS; b++) {
			cum += m->buckets[r][b];
			if (b < METRICS_BUCKETS)
				buf_printf(out, "tandem_http_request_duration_seconds_bucket{region=\"%s\",route=\"%s\",le=\"%g\"} %llu\n",
					   region_name, api_route_pattern(r - 1), bucket_bounds_ms[b] / 1000.0, cum);
			else
				buf_printf(out, "tandem_http_request_duration_seconds_bucket{region=\"%s\",route=\"%s\",le=\"+Inf\"} %llu\n",
					   region_name, api_route_pattern(r - 1), cum);
		}
		buf_printf(out, "tandem_http_request_duration_seconds_sum{region=\"%s\",route=\"%s\"} %.6f\n",
			   region_name, api_route_pattern(r - 1), m->duration_sum_s[r]);
		buf_printf(out, "tandem_http_request_duration_seconds_count{region=\"%s\",route=\"%s\"} %llu\n",
			   region_name, api_route_pattern(r - 1), total);
	}
	committer_stats cs;
	committer_get_stats(rg->writer, &cs);
	buf_printf(out,
		   "# HELP tandem_write_batches_total Group commits (one transaction, one fsync each).\n"
		   "# TYPE tandem_write_batches_total counter\n"
		   "tandem_write_batches_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_writes_total Writes committed through the group commit.\n"
		   "# TYPE tandem_writes_total counter\n"
		   "tandem_writes_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_write_batches_failed_total Group commits that could not be made durable.\n"
		   "# TYPE tandem_write_batches_failed_total counter\n"
		   "tandem_write_batches_failed_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_commit_seconds_total Time spent in COMMIT (fsync).\n"
		   "# TYPE tandem_commit_seconds_total counter\n"
		   "tandem_commit_seconds_total{region=\"%s\"} %.6f\n"
		   "# HELP tandem_write_queue Writes waiting for the writer thread.\n"
		   "# TYPE tandem_write_queue gauge\n"
		   "tandem_write_queue{region=\"%s\"} %d\n"
		   "# HELP tandem_idempotent_replays_total Writes answered from a stored Idempotency-Key.\n"
		   "# TYPE tandem_idempotent_replays_total counter\n"
		   "tandem_idempotent_replays_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_http_connections Open client connections.\n"
		   "# TYPE tandem_http_connections gauge\n"
		   "tandem_http_connections{region=\"%s\"} %d\n",
		   region_name, (unsigned long long)cs.batches, region_name,
		   (unsigned long long)cs.writes, region_name, (unsigned long long)cs.failed_batches,
		   region_name, (double)cs.commit_us_total / 1e6, region_name, cs.queued, region_name,
		   m->replays, region_name, http_server_connections(rg->server));
	/* bounded memory per client and in total (docs/SECURITY.md) */
	buf_printf(out,
		   "# HELP tandem_http_buffered_bytes Bytes held for client connections (input, unsent "
		   "output, request bodies), bounded by max_buffered_bytes.\n"
		   "# TYPE tandem_http_buffered_bytes gauge\n"
		   "tandem_http_buffered_bytes{region=\"%s\"} %zu\n"
		   "# HELP tandem_http_overloaded_total Requests answered 503 overloaded over max_buffered_bytes.\n"
		   "# TYPE tandem_http_overloaded_total counter\n"
		   "tandem_http_overloaded_total{region=\"%s\"} %lu\n"
		   "# HELP tandem_http_refused_per_address_total Connections closed at once over "
		   "max_connections_per_address.\n"
		   "# TYPE tandem_http_refused_per_address_total counter\n"
		   "tandem_http_refused_per_address_total{region=\"%s\"} %lu\n",
		   region_name, http_server_buffered(rg->server), region_name,
		   http_server_overloaded(rg->server), region_name,
		   http_server_refused_per_address(rg->server));
	orepl_stats os;
	node_objects_stats(rg, &os);
	if (os.enabled) {
		buf_printf(out,
			   "# HELP tandem_objects_replication_pending Local object writes not yet at the other region.\n"
			   "# TYPE tandem_objects_replication_pending gauge\n"
			   "tandem_objects_replication_pending{region=\"%s\"} %lld\n"
			   "# HELP tandem_objects_replication_pending_bytes Their bytes.\n"
			   "# TYPE tandem_objects_replication_pending_bytes gauge\n"
			   "tandem_objects_replication_pending_bytes{region=\"%s\"} %lld\n"
			   "# HELP tandem_objects_replication_oldest_pending_seconds Age of the oldest one.\n"
			   "# TYPE tandem_objects_replication_oldest_pending_seconds gauge\n"
			   "tandem_objects_replication_oldest_pending_seconds{region=\"%s\"} %.3f\n"
			   "# HELP tandem_objects_replication_shipped_total Local writes the other region took.\n"
			   "# TYPE tandem_objects_replication_shipped_total counter\n"
			   "tandem_objects_replication_shipped_total{region=\"%s\"} %llu\n"
			   "# HELP tandem_objects_replication_failed_total Local writes the other region refused for good.\n"
			   "# TYPE tandem_objects_replication_failed_total counter\n"
			   "tandem_objects_replication_failed_total{region=\"%s\"} %llu\n"
			   "# HELP tandem_objects_replication_applied_total Writes of the other region applied here.\n"
			   "# TYPE tandem_objects_replication_applied_total counter\n"
			   "tandem_objects_replication_applied_total{region=\"%s\"} %llu\n"
			   "# HELP tandem_objects_replication_errors_total Shipping attempts that failed and were retried.\n"
			   "# TYPE tandem_objects_replication_errors_total counter\n"
			   "tandem_objects_replication_errors_total{region=\"%s\"} %llu\n"
			   "# HELP tandem_objects_replication_seconds From a local write's commit to the other "
			   "region's acknowledgement.\n"
			   "# TYPE tandem_objects_replication_seconds histogram\n",
			   region_name, (long long)os.pending, region_name, (long long)os.pending_bytes, region_name,
			   (double)os.lag_ms / 1000.0, region_name, (unsigned long long)os.shipped, region_name,
			   (unsigned long long)os.failed, region_name, (unsigned long long)os.applied, region_name,
			   (unsigned long long)os.errors);
		for (int b = 0; b < 12; b++)
			buf_printf(out, "tandem_objects_replication_seconds_bucket{region=\"%s\",le=\"%g\"} %llu\n",
				   region_name, ORPL_LAG_BOUNDS[b], (unsigned long long)os.lag_buckets[b]);
		buf_printf(out,
			   "tandem_objects_replication_seconds_bucket{region=\"%s\",le=\"+Inf\"} %llu\n"
			   "tandem_objects_replication_seconds_sum{region=\"%s\"} %.6f\n"
			   "tandem_objects_replication_seconds_count{region=\"%s\"} %llu\n"
			   "# HELP tandem_objects_anti_entropy_passes_total Comparisons of every bucket with the other region.\n"
			   "# TYPE tandem_objects_anti_entropy_passes_total counter\n"
			   "tandem_objects_anti_entropy_passes_total{region=\"%s\"} %llu\n"
			   "# HELP tandem_objects_anti_entropy_repairs_total Versions, tombstones and buckets the other "
			   "region lacked, queued again by anti-entropy.\n"
			   "# TYPE tandem_objects_anti_entropy_repairs_total counter\n"
			   "tandem_objects_anti_entropy_repairs_total{region=\"%s\"} %llu\n",
			   region_name, (unsigned long long)os.lag_count, region_name, os.lag_sum_s, region_name,
			   (unsigned long long)os.lag_count, region_name, (unsigned long long)os.ae_passes, region_name,
			   (unsigned long long)os.repairs);
	}
	buf_adds(out, "# HELP tandem_list_queries_refused_total List queries refused: past their deadline "
		      "or rows-examined cap (400), or queue full (503).\n"
		      "# TYPE tandem_list_queries_refused_total counter\n");
	for (size_t i = 0; i < sizeof list_refusals / sizeof list_refusals[0]; i++)
		buf_printf(out, "tandem_list_queries_refused_total{region=\"%s\",reason=\"%s\"} %llu\n",
			   region_name, list_refusals[i], m->list_refused[i]);
}

/* A JSON error answer of the metrics listener. */
static void metrics_error(http_request *req, int status, const char *code, const char *message)
{
	char body[256];
	int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, status, body, (size_t)n < sizeof body ? (size_t)n : sizeof body - 1);
}

void metrics_on_request(http_request *req, void *arg)
{
	region *rg = arg;
	const http_message *m = http_request_message(req);
	const char *t = m->target;
	size_t plen = strcspn(t, "?");
	/* scrapes are not access-logged: every 15 s forever would drown the log */
	if (plen != 8 || memcmp(t, "/metrics", 8) != 0) {
		metrics_error(req, 404, "not_found", "only /metrics is served here");
		return;
	}
	if (strcmp(m->method, "GET") != 0 && strcmp(m->method, "HEAD") != 0) {
		http_response_header(req, "Allow", "GET, HEAD");
		metrics_error(req, 405, "method_not_allowed", "/metrics allows GET and HEAD");
		return;
	}
	buf text;
	buf_init(&text, METRICS_TEXT_MAX);
	metrics_render(rg, &text);
	repl_metrics(rg->repl, &text);
	looplag_metrics(rg->api_lag, &text, "tandem_api_loop_lag_seconds",
			"How late the API thread's loop (requests, TLS, answers) ran its 50 ms timer.", rg->self->name);
	/* an append that would pass the bound fails and is dropped; no line is
	 * near 64 KiB, so a text that close to the bound may have lost some */
	if (!text.data || text.len + 64 * 1024 > METRICS_TEXT_MAX) {
		log_error("BUG: /metrics text reached its bound (%d bytes)", METRICS_TEXT_MAX);
		buf_free(&text);
		metrics_error(req, 500, "internal_error", "the metrics do not fit their bound");
		return;
	}
	http_response_header(req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	http_response_header(req, "Cache-Control", "no-store");
	http_respond(req, 200, text.data, text.len);
	buf_free(&text);
}
