/*
 * metrics.c - /metrics in the Prometheus text format (version 0.0.4):
 * requests by route and status class, a latency histogram per route,
 * write batches and fsync time from the committer, open connections.
 * Updated on the loop thread only, so plain counters suffice.
 */
#include <stdlib.h>
#include <string.h>

#include "region/internal.h"

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
	buf_adds(out, "# HELP tandem_list_queries_refused_total List queries refused: past their deadline "
		      "or rows-examined cap (400), or queue full (503).\n"
		      "# TYPE tandem_list_queries_refused_total counter\n");
	for (size_t i = 0; i < sizeof list_refusals / sizeof list_refusals[0]; i++)
		buf_printf(out, "tandem_list_queries_refused_total{region=\"%s\",reason=\"%s\"} %llu\n",
			   region_name, list_refusals[i], m->list_refused[i]);
}
