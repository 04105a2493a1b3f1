/*
 * admin.c - `tandem status` and `tandem verify`: the operator's view of a
 * running deployment, over each region's link with the deployment's
 * "admin" client certificate (mutual TLS, read-only routes).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "cli/admin.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "core/tls.h"
#include "core/util.h"
#include "dns/dnsconf.h"
#include "edge/edgeconf.h"
#include "http/client.h"

static const char usage_status[] =
	"usage: tandem status --config FILE [--json]\n"
	"\n"
	"Show, for each region: role, epoch, last and applied position, lag in\n"
	"positions and seconds, link state, and whether the deployment is degraded.\n"
	"Unreachable regions are shown as such. Then, for each DNS instance with a\n"
	"metrics_listen: the health of every region its routed names answer; for each\n"
	"edge with one: its origins in order (health, write gate) and its cache.\n";

static const char usage_verify[] =
	"usage: tandem verify --config FILE\n"
	"\n"
	"Compare the data of both regions at the same position (a SHA-256 digest\n"
	"per table). Exit 0 when identical, 1 when they differ, 2 when no common\n"
	"position could be reached (a region down, or writes too busy to catch).\n";

typedef struct admin_call {
	struct event_base *base;
	http_client *client;
	int done;
	int rc;
	int status;
	json_t *json;
	char why[192];   /* the client's reason when rc != 0 */
	int why_errno;
} admin_call;

static void admin_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	admin_call *a = arg;
	a->done = 1;
	a->rc = rc;
	if (rc == 0) {
		a->status = resp->status;
		a->json = json_loadb(body, len, 0, NULL);
	} else {
		const char *why = http_client_error(a->client, &a->why_errno);
		snprintf(a->why, sizeof a->why, "%s", why[0] ? why : err_str(rc));
	}
	event_base_loopbreak(a->base);
}

/* admin_request over ctx (NULL: plain HTTP, the DNS instances' loopback
 * metrics listener). */
static json_t *request_over(admin *ad, SSL_CTX *ctx, const char *hostport, const char *name, const char *method,
			    const char *target, const char *body, int timeout_ms, int *status, char *err,
			    size_t errcap);

json_t *admin_request(admin *ad, const char *hostport, const char *name, const char *method,
		      const char *target, const char *body, int timeout_ms, int *status, char *err, size_t errcap)
{
	return request_over(ad, ad->ctx, hostport, name, method, target, body, timeout_ms, status, err, errcap);
}

static json_t *request_over(admin *ad, SSL_CTX *ctx, const char *hostport, const char *name, const char *method,
			    const char *target, const char *body, int timeout_ms, int *status, char *err,
			    size_t errcap)
{
	char host[64];
	int port;
	*status = 0;
	if (!hostport[0] || util_split_hostport(hostport, host, sizeof host, &port) != 0) {
		snprintf(err, errcap, "no address");
		return NULL;
	}
	http_limits limits = {16384, 100, 16 << 20, 0};
	http_client *c = http_client_new(ad->base, ctx, host, port, name, &limits, timeout_ms);
	admin_call a = {.base = ad->base, .client = c};
	if (!c || http_client_request(c, method, target, body ? "Content-Type: application/json\r\n" : NULL, body,
				      body ? strlen(body) : 0, 0, admin_answer, &a) != 0) {
		http_client_free(&c);
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	while (!a.done)
		event_base_dispatch(ad->base);
	http_client_free(&c);
	if (a.rc != 0) {
		/* nothing listens there: the component is not running (the
		 * usual case, worth saying plainly); anything else is a fault
		 * on the way to it, said with its cause */
		if (a.why_errno == ECONNREFUSED)
			snprintf(err, errcap, "not running (connection refused)");
		else
			snprintf(err, errcap, "unreachable (%s)", a.why);
		json_decref(a.json);
		return NULL;
	}
	*status = a.status;
	if (!a.json)
		snprintf(err, errcap, "answered %d without JSON", a.status);
	return a.json;
}

/* GET target from region r; returns the parsed JSON (caller decrefs) or NULL
 * with a reason in err. */
static json_t *admin_get(admin *ad, const config_region *r, const char *target, int timeout_ms,
			 char *err, size_t errcap)
{
	if (!r->link_listen[0]) {
		snprintf(err, errcap, "no link_listen");
		return NULL;
	}
	int status;
	json_t *j = admin_request(ad, r->link_listen, r->name, "GET", target, NULL, timeout_ms, &status, err, errcap);
	if (status && (status != 200 || !j)) {
		snprintf(err, errcap, "answered %d", status);
		json_decref(j);
		return NULL;
	}
	return j;
}

int admin_open(int argc, char **argv, const char *usage, config *cfg, admin *ad, int *json_out)
{
	const char *path = NULL;
	if (json_out)
		*json_out = 0;
	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(usage, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--json") == 0 && json_out)
			*json_out = 1;
		else if (ad->extra_opts && ad->extra_opts(ad, argc, argv, &i) == 0)
			continue;
		else
			return cli_fail("unknown option '%s' (see tandem %s --help)", argv[i], argv[0]);
	}
	if (!path)
		return cli_fail("%s needs --config FILE", argv[0]);
	char err[4096];
	if (cli_load_config(path, cfg) != 0)
		return 1;
	char cert[CONFIG_PATH_MAX + 16], key[CONFIG_PATH_MAX + 16];
	snprintf(cert, sizeof cert, "%s/admin.pem", cfg->certs_dir);
	snprintf(key, sizeof key, "%s/admin.key", cfg->certs_dir);
	ad->ctx = tls_client_new(cfg->ca_file, cert, key, err, sizeof err);
	if (!ad->ctx)
		return cli_fail("%s (run tandem certs --config %s)", err, path);
	ad->base = event_base_new();
	ad->cfg = cfg;
	return -1;
}

void admin_close(admin *ad)
{
	SSL_CTX_free(ad->ctx);
	if (ad->base) {
		/* callbacks a freed connection left deferred hold its last
		 * reference: run them, or freeing the base leaks it */
		event_base_loop(ad->base, EVLOOP_NONBLOCK);
		event_base_free(ad->base);
	}
}

static long long jint(json_t *o, const char *path1, const char *path2)
{
	json_t *v = json_object_get(o, path1);
	if (path2)
		v = json_object_get(v, path2);
	return json_integer_value(v);
}

/* The health state of every [dns] instance with a metrics_listen (its
 * /health, plain HTTP on loopback): {NAME: {...} or {"error": why}}. A
 * config whose DNS part does not load gives {"error": why} under "-". */
static json_t *dns_status(admin *ad, const char *path)
{
	static dns_conf dc;
	char err[2048];
	json_t *all = json_object();
	if (dnsconf_load(path, &dc, err, sizeof err) != 0) {
		json_object_set_new(all, "-", json_pack("{s:s}", "error", err));
		return all;
	}
	for (int i = 0; i < dc.nservers; i++) {
		const dns_server_conf *sc = &dc.servers[i];
		if (!sc->metrics_listen[0])
			continue;
		int status;
		char why[256];
		json_t *j = request_over(ad, NULL, sc->metrics_listen, NULL, "GET", "/health", NULL, 3000, &status, why,
					 sizeof why);
		if (j && status != 200) {
			json_decref(j);
			j = NULL;
			snprintf(why, sizeof why, "answered %d", status);
		}
		json_object_set_new(all, sc->name, j ? j : json_pack("{s:s}", "error", why));
	}
	dnsconf_free(&dc);
	return all;
}

/* The /health of every [edge] with a metrics_listen: {NAME: {...} or
 * {"error": why}}. */
static json_t *edge_status(admin *ad, const char *path)
{
	static edge_confs ecs;
	char err[2048];
	json_t *all = json_object();
	if (edgeconf_load(path, &ecs, err, sizeof err) != 0) {
		json_object_set_new(all, "-", json_pack("{s:s}", "error", err));
		return all;
	}
	for (int i = 0; i < ecs.count; i++) {
		const edge_conf *e = &ecs.edges[i];
		if (!e->metrics_listen[0])
			continue;
		int status;
		char why[256];
		json_t *j = request_over(ad, NULL, e->metrics_listen, NULL, "GET", "/health", NULL, 3000, &status, why,
					 sizeof why);
		if (j && status != 200) {
			json_decref(j);
			j = NULL;
			snprintf(why, sizeof why, "answered %d", status);
		}
		json_object_set_new(all, e->name, j ? j : json_pack("{s:s}", "error", why));
	}
	return all;
}

/* One line per edge: its origins in the order it tries them, and its cache. */
static void print_edges(json_t *edges)
{
	const char *name;
	json_t *d;
	json_object_foreach(edges, name, d) {
		const char *error = json_string_value(json_object_get(d, "error"));
		if (error) {
			printf("edge %-8s %s\n", name, error);
			continue;
		}
		printf("edge %-8s", name);
		size_t i;
		json_t *o;
		json_array_foreach(json_object_get(d, "origins"), i, o) {
			const char *group = json_string_value(json_object_get(o, "group"));
			printf(" %s%s%s %s%s", group && group[0] ? group : "", group && group[0] ? ":" : "",
			       json_string_value(json_object_get(o, "name")),
			       json_is_true(json_object_get(o, "healthy")) ? "healthy" : "UNHEALTHY",
			       strcmp(json_string_value(json_object_get(o, "write_gate")) ?: "", "open") == 0 ? " (writes)" : "");
		}
		json_t *c = json_object_get(d, "cache"), *a = json_object_get(d, "answers");
		if (json_is_true(json_object_get(c, "on")))
			printf("; cache %lld entries %.1f MiB", jint(c, "entries", NULL),
			       (double)jint(c, "bytes", NULL) / 1048576.0);
		if (jint(c, "disk_entries", NULL))
			printf(" (disk %lld, %.1f MiB)", jint(c, "disk_entries", NULL),
			       (double)jint(c, "disk_bytes", NULL) / 1048576.0);
		printf("; %lld hits %lld misses, %lld failovers\n", jint(a, "hit", NULL), jint(a, "miss", NULL),
		       jint(d, "failovers", NULL));
	}
}

/* One line per DNS instance: each region's health, role and RTT. */
static void print_dns(json_t *dns)
{
	const char *name;
	json_t *d;
	json_object_foreach(dns, name, d) {
		const char *error = json_string_value(json_object_get(d, "error"));
		if (error) {
			printf("dns %-8s %s\n", name, error);
			continue;
		}
		printf("dns %-8s%s", name, json_is_true(json_object_get(d, "fail_open")) ? " FAIL OPEN (every region "
											 "unhealthy: all answered)" : "");
		const char *region;
		json_t *r;
		json_object_foreach(json_object_get(d, "regions"), region, r) {
			bool healthy = json_is_true(json_object_get(r, "healthy"));
			const char *since = json_string_value(json_object_get(r, "since"));
			const char *last = json_string_value(json_object_get(r, "last_error"));
			printf("  %s %s", region, healthy ? "healthy" : "unhealthy");
			if (!healthy)
				printf(" since %.32s (%.120s)", since ? since : "?", last ? last : "?");
			else {
				const char *role = json_string_value(json_object_get(r, "role"));
				printf(" (%s, rtt %.1f ms)", role ? role : "?", json_number_value(json_object_get(r, "rtt_ms")));
			}
		}
		printf("\n");
	}
}

int cmd_status(int argc, char **argv)
{
	static config cfg;
	admin ad = {0};
	int as_json;
	int rc = admin_open(argc, argv, usage_status, &cfg, &ad, &as_json);
	if (rc >= 0)
		return rc;
	json_t *all = json_object();
	for (int i = 0; i < cfg.region_count; i++) {
		char err[256];
		json_t *s = admin_get(&ad, &cfg.regions[i], "/internal/v1/status", 3000, err, sizeof err);
		if (!s) {
			s = json_pack("{s:s, s:s}", "region", cfg.regions[i].name, "error", err);
		}
		json_object_set_new(all, cfg.regions[i].name, s);
	}
	json_t *dns = dns_status(&ad, cfg.path);
	json_t *edges = edge_status(&ad, cfg.path);
	if (as_json) {
		json_t *top = json_pack("{s:o, s:o, s:o}", "regions", all, "dns", dns, "edges", edges);
		char *text = json_dumps(top, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("%s\n", text);
		free(text);
		json_decref(top);
	} else {
		printf("%-8s %-10s %6s %10s %10s %9s %9s %-6s %-18s %s\n", "region", "role", "epoch", "last",
		       "applied", "lag(pos)", "lag(s)", "link", "objects(pend/lag)", "degraded");
		const char *key;
		json_t *s;
		json_object_foreach(all, key, s) {
			const char *error = json_string_value(json_object_get(s, "error"));
			if (error) {
				printf("%-8s %s\n", key, error);
				continue;
			}
			/* one line per region, whatever it says; a primary has no lag
			 * (it is the reference), so its lag columns show "-" */
			const char *role = json_string_value(json_object_get(s, "role"));
			const char *link = json_string_value(json_object_get(json_object_get(s, "link"), "state"));
			json_t *lag = json_object_get(s, "lag");
			char lag_pos[32] = "-", lag_s[32] = "-", degraded[96];
			if (!role || strcmp(role, "primary") != 0) {
				snprintf(lag_pos, sizeof lag_pos, "%lld", jint(lag, "positions", NULL));
				snprintf(lag_s, sizeof lag_s, "%.3f", json_number_value(json_object_get(lag, "seconds")));
			}
			const char *since = json_string_value(json_object_get(s, "degraded_since"));
			bool is_degraded = json_is_true(json_object_get(s, "degraded"));
			if (is_degraded && since)
				snprintf(degraded, sizeof degraded, "yes (since %.64s)", since);
			else
				snprintf(degraded, sizeof degraded, "%s", is_degraded ? "yes" : "no");
			/* object replication is two-way: each region's own writes
			 * not yet at the other, and the oldest one's age */
			json_t *obj = json_object_get(s, "objects");
			char objs[48] = "-";
			if (json_is_true(json_object_get(obj, "replicated")))
				snprintf(objs, sizeof objs, "%lld/%.1fs", jint(obj, "pending", NULL),
					 json_number_value(json_object_get(obj, "lag_seconds")));
			printf("%-8s %-10s %6lld %10lld %10lld %9s %9s %-6s %-18s %s\n", key, role ? role : "?",
			       jint(s, "epoch", NULL), jint(s, "last_seq", NULL), jint(s, "applied_seq", NULL), lag_pos,
			       lag_s, link ? link : "-", objs, degraded);
		}
		json_decref(all);
		print_dns(dns);
		json_decref(dns);
		print_edges(edges);
		json_decref(edges);
	}
	admin_close(&ad);
	return 0;
}

/* Compare one bucket's rows (versions, delete markers, tombstones) in both
 * regions by digests of key ranges, split where a digest covers only part
 * of a range (more than 10,000 rows). rows_a and rows_b count them. 1 same,
 * 0 different, -1 with a message printed. */
/* The bucket's configuration stamps (versioning, ACL, CORS) in both
 * regions: 1 the same (or the bucket absent from one: its rows say so), 0
 * different, -1 error. */
static int verify_bucket_stamps(admin *ad, const config_region *ra, const config_region *rb, const char *bucket)
{
	char target[128], err[256], text[2][200]; /* three stamps (objects/meta.h) */
	snprintf(target, sizeof target, "/internal/v1/objects/bucket-stamps?bucket=%s", bucket);
	for (int i = 0; i < 2; i++) {
		json_t *s = admin_get(ad, i ? rb : ra, target, 10000, err, sizeof err);
		if (!s && strstr(err, "404"))
			return 1;
		if (!s) {
			fprintf(stderr, "tandem: region %s: %s\n", (i ? rb : ra)->name, err);
			return -1;
		}
		const char *v = json_string_value(json_object_get(s, "versioning")),
			   *a = json_string_value(json_object_get(s, "acl")), *c = json_string_value(json_object_get(s, "cors"));
		snprintf(text[i], sizeof text[i], "%s %s %s", v ? v : "?", a ? a : "?", c ? c : "?");
		json_decref(s);
	}
	return strcmp(text[0], text[1]) == 0;
}

static int verify_bucket(admin *ad, const config_region *ra, const config_region *rb, const char *bucket,
			 long long *rows_a, long long *rows_b)
{
	int conf = verify_bucket_stamps(ad, ra, rb, bucket);
	if (conf <= 0)
		return conf;
	/* a stack of ranges as hex pairs (from, to; to "" = the end) */
	size_t cap = 16, depth = 1;
	char **stack = calloc(cap * 2, sizeof *stack);
	if (!stack)
		return -1;
	stack[0] = strdup("");
	stack[1] = strdup("");
	int result = 1;
	char err[256];
	while (depth && result == 1) {
		depth--;
		char *from = stack[2 * depth], *to = stack[2 * depth + 1];
		char *target = malloc(strlen(bucket) + strlen(from) + strlen(to) + 80);
		json_t *d[2] = {NULL, NULL};
		if (!from || !to || !target) {
			result = -1;
		} else {
			sprintf(target, "/internal/v1/objects/digest?bucket=%s&from=%s%s%s", bucket, from, to[0] ? "&to=" : "",
				to);
			for (int i = 0; i < 2 && result == 1; i++) {
				d[i] = admin_get(ad, i ? rb : ra, target, 10000, err, sizeof err);
				if (!d[i] && strstr(err, "404")) {
					d[i] = json_pack("{s:i, s:s, s:b, s:s}", "rows", 0, "sha256", "none", "truncated", 0,
							 "split", "");
				} else if (!d[i]) {
					fprintf(stderr, "tandem: region %s: %s\n", (i ? rb : ra)->name, err);
					result = -1;
				}
			}
		}
		if (result == 1) {
			bool ta = json_is_true(json_object_get(d[0], "truncated")),
			     tb = json_is_true(json_object_get(d[1], "truncated"));
			const char *sa = json_string_value(json_object_get(d[0], "sha256")),
				   *sb = json_string_value(json_object_get(d[1], "sha256"));
			const char *split = json_string_value(json_object_get(d[0], "split"));
			if (!ta && !tb) {
				*rows_a += jint(d[0], "rows", NULL);
				*rows_b += jint(d[1], "rows", NULL);
				if (!sa || !sb || strcmp(sa, sb) != 0)
					result = 0;
			} else if (split && split[0] && strcmp(split, from) != 0) {
				if (depth + 2 > cap) {
					char **p = realloc(stack, cap * 4 * sizeof *stack);
					if (!p)
						result = -1;
					else {
						stack = p;
						cap *= 2;
					}
				}
				if (result == 1) {
					stack[2 * depth] = strdup(split);
					stack[2 * depth + 1] = strdup(to);
					stack[2 * depth + 2] = strdup(from);
					stack[2 * depth + 3] = strdup(split);
					depth += 2;
				}
			} else {
				result = 0; /* cannot divide further: many versions of one key, and they differ */
			}
		}
		json_decref(d[0]);
		json_decref(d[1]);
		free(target);
		free(from);
		free(to);
	}
	while (depth) {
		depth--;
		free(stack[2 * depth]);
		free(stack[2 * depth + 1]);
	}
	free(stack);
	return result;
}

/* Every bucket of either region, compared; objects are written in both
 * regions at once, so a difference is looked at again a few times (a write
 * in flight) before it is reported. 1 same, 0 different, -1 error. */
static int verify_objects(admin *ad, const config_region *ra, const config_region *rb)
{
	char err[256];
	json_t *names = json_object();
	for (int i = 0; i < 2; i++) {
		json_t *b = admin_get(ad, i ? rb : ra, "/internal/v1/objects/buckets", 10000, err, sizeof err);
		if (!b) {
			json_decref(names);
			if (strstr(err, "503")) {
				printf("objects: no object store\n");
				return 1;
			}
			fprintf(stderr, "tandem: region %s: %s\n", (i ? rb : ra)->name, err);
			return -1;
		}
		size_t k;
		json_t *v;
		json_array_foreach(json_object_get(b, "buckets"), k, v)
			json_object_set_new(names, json_string_value(v), json_true());
		json_decref(b);
	}
	int same = 1;
	const char *bucket;
	json_t *unused;
	printf("objects: %s vs %s\n", ra->name, rb->name);
	json_object_foreach(names, bucket, unused) {
		long long na = 0, nb = 0;
		int r = 0;
		for (int attempt = 0; attempt < 10; attempt++) {
			na = nb = 0;
			r = verify_bucket(ad, ra, rb, bucket, &na, &nb);
			if (r != 0)
				break;
			usleep(300000);
		}
		if (r < 0) {
			json_decref(names);
			return -1;
		}
		same &= r;
		printf("  %-24s %8lld rows  %8lld rows  %s\n", bucket, na, nb, r ? "identical" : "DIFFERENT");
	}
	json_decref(names);
	return same;
}

int cmd_verify(int argc, char **argv)
{
	static config cfg;
	admin ad = {0};
	int unused;
	int rc = admin_open(argc, argv, usage_verify, &cfg, &ad, &unused);
	if (rc >= 0)
		return rc;
	if (cfg.region_count != 2) {
		admin_close(&ad);
		return cli_fail("verify compares two regions; %s has %d", cfg.path, cfg.region_count);
	}
	/* the primary first: its digest names the position to compare at */
	int primary = -1;
	char err[256];
	for (int i = 0; i < 2; i++) {
		json_t *p = admin_get(&ad, &cfg.regions[i], "/internal/v1/position", 3000, err, sizeof err);
		if (!p) {
			fprintf(stderr, "tandem: region %s: %s\n", cfg.regions[i].name, err);
			admin_close(&ad);
			return 2;
		}
		if (strcmp(json_string_value(json_object_get(p, "role")), "primary") == 0)
			primary = i;
		json_decref(p);
	}
	if (primary < 0) {
		admin_close(&ad);
		fprintf(stderr, "tandem: no region is primary\n");
		return 2;
	}
	const config_region *pr = &cfg.regions[primary], *sr = &cfg.regions[1 - primary];
	for (int attempt = 0; attempt < 20; attempt++) {
		json_t *a = admin_get(&ad, pr, "/internal/v1/verify", 10000, err, sizeof err);
		if (!a) {
			fprintf(stderr, "tandem: region %s: %s\n", pr->name, err);
			admin_close(&ad);
			return 2;
		}
		long long pos = jint(a, "position", NULL);
		char target[64];
		snprintf(target, sizeof target, "/internal/v1/verify?at=%lld", pos);
		json_t *b = admin_get(&ad, sr, target, 10000, err, sizeof err);
		if (!b) {
			json_decref(a);
			fprintf(stderr, "tandem: region %s: %s\n", sr->name, err);
			admin_close(&ad);
			return 2;
		}
		long long bpos = jint(b, "position", NULL);
		if (bpos != pos) { /* the primary moved on; try again at a newer position */
			json_decref(a);
			json_decref(b);
			continue;
		}
		printf("position %lld: %s (primary) vs %s\n", pos, pr->name, sr->name);
		int same = 1;
		const char *table;
		json_t *ta;
		json_object_foreach(json_object_get(a, "tables"), table, ta) {
			json_t *tb = json_object_get(json_object_get(b, "tables"), table);
			const char *da = json_string_value(json_object_get(ta, "sha256"));
			const char *db = json_string_value(json_object_get(tb, "sha256"));
			int eq = da && db && strcmp(da, db) == 0;
			same &= eq;
			printf("  %-16s %8lld rows  %8lld rows  %s\n", table, jint(ta, "rows", NULL),
			       jint(tb, "rows", NULL), eq ? "identical" : "DIFFERENT");
		}
		json_decref(a);
		json_decref(b);
		int objects_same = verify_objects(&ad, pr, sr);
		admin_close(&ad);
		if (objects_same < 0)
			return 2;
		same &= objects_same;
		printf("%s\n", same ? "identical" : "the regions DIFFER");
		return same ? 0 : 1;
	}
	admin_close(&ad);
	fprintf(stderr, "tandem: could not catch both regions at the same position (writes too busy)\n");
	return 2;
}
