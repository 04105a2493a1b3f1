/*
 * drill.c - the drill's script (docs/DRILL.md):
 *
 *   network      as root: a private network namespace, one loopback address
 *                per component, partitions with nftables; else the fault switch
 *   deployment   a fresh one (`tandem init` into DATA, addresses rewritten in
 *                namespace mode), or the one of --config
 *   start        witness, then the regions; each one's log in REPORT/logs/
 *   warm-up      both regions serve, one primary; a user per region
 *   workload     from t = 0 to the duration, on its own thread; the object
 *                workload (S3 PUT/DELETE into a bucket it creates) on another
 *   fault        at fault_at (a third of the run by default); every region
 *                still running is listed at once (object RPO)
 *   heal         at heal_at (two thirds)
 *   stop         the workload drains (unacknowledged writes retried, bounded)
 *   converge     both regions at the same position (bounded), no object write
 *                pending (bounded), `tandem verify`, each region's objects
 *                listed twice ~1 s apart, the object lag histograms
 *   collect      the final primary's records, the quarantine files, the logs
 *   check        RPO, RTO, duplicates, two primaries, documented errors
 *   report       text (or --json), report.json, timeline.svg; exit 0 / 1
 *
 * While the workload runs, this thread polls every region's status twice a
 * second (roles as seen from outside, for the report) and watches its
 * children; the logs stay the evidence for "never two primaries".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "core/err.h"
#include "core/tls.h"
#include "core/util.h"
#include "drill/internal.h"
#include "edge/edgeconf.h"
#include "objects/s3keys.h"

#define STATUS_POLL_MS 500
#define PROGRESS_MS 5000
#define DRAIN_MS 10000
#define CONVERGE_TIMEOUT_MS 60000
#define MARKER_FILE ".tandem-drill"
#define OBJ_SETTLE_MS 30000      /* for the object outboxes to drain after the heal */
#define OBJ_BUCKET_WAIT_MS 15000 /* for the bucket to reach the other region */
#define OBJ_LAG_SAMPLES 8192     /* status polls kept per region */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

void drill_options_defaults(drill_options *o)
{
	memset(o, 0, sizeof *o);
	o->rate = 500;
	o->read_rate = -1;
	o->duration_s = 30;
	o->fault_at_s = -1;
	o->heal_at_s = -1;
	o->global_percent = 20;
	o->object_rate = -1;
	o->report_dir[0] = '\0'; /* chosen by drill_default_report() */
	o->net = DRILL_NET_AUTO;
}

void run_event(drill_run_state *s, const char *kind, const char *component, const char *fmt, ...)
{
	if (s->nevents == s->capevents) {
		size_t cap = s->capevents ? s->capevents * 2 : 64;
		drill_event *e = realloc(s->events, cap * sizeof *e);
		if (!e)
			return;
		s->events = e;
		s->capevents = cap;
	}
	drill_event *e = &s->events[s->nevents++];
	memset(e, 0, sizeof *e);
	e->t_ms = util_now_ms();
	snprintf(e->kind, sizeof e->kind, "%s", kind);
	snprintf(e->component, sizeof e->component, "%s", component);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof e->text, fmt, ap);
	va_end(ap);
	if (!s->opt->quiet)
		fprintf(stderr, "drill: %6.1f s  %-10s %s\n", s->t0_ms ? run_t(s, e->t_ms) : 0.0, kind,
			e->text);
}

double run_t(const drill_run_state *s, int64_t ms)
{
	return (double)(ms - s->t0_ms) / 1000.0;
}

static void say(const drill_run_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const drill_run_state *s, const char *fmt, ...)
{
	if (s->opt->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("drill: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static const char *str_or(const char *s, const char *otherwise)
{
	return s ? s : otherwise;
}

/* ---- the deployment ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* A fresh data directory: created, or emptied when an earlier drill made it. */
static int fresh_dir(const char *dir, char *err, size_t errcap)
{
	char marker[PATH_MAX];
	snprintf(marker, sizeof marker, "%.*s/" MARKER_FILE, PATH_MAX - 32, dir);
	DIR *d = opendir(dir);
	if (d) {
		int empty = 1;
		struct dirent *e;
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				empty = 0;
		closedir(d);
		if (!empty) {
			if (access(marker, F_OK) != 0) {
				snprintf(err, errcap,
					 "%s exists and was not made by tandem drill; choose another --data", dir);
				return -1;
			}
			if (nftw(dir, remove_entry, 32, FTW_DEPTH | FTW_PHYS) != 0) {
				snprintf(err, errcap, "cannot empty %s: %s", dir, strerror(errno));
				return -1;
			}
		}
	}
	if (util_mkdirs(dir, 0700) != 0) {
		snprintf(err, errcap, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (util_write_file(marker, "tandem drill deployment: emptied by the next drill\n", 51, 0644) !=
	    0) {
		snprintf(err, errcap, "cannot write %s: %s", marker, strerror(errno));
		return -1;
	}
	return 0;
}

/* Can a listener bind host:port? (IPv4 host; 0 also when the host is not
 * an address of this machine.) */
static int addr_free(const char *host, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
		return 1; /* not an IPv4 literal: let the component say what is wrong */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as the components do */
	int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 || errno != EADDRINUSE;
	close(fd);
	return ok;
}

static int port_free(int port)
{
	return addr_free("127.0.0.1", port);
}

/* A port base in 20000-28980 with base..base+14 free (tandem init's
 * ports; the drill's edges take base+13 and base+14). */
static int pick_port_base(void)
{
	for (int attempt = 0; attempt < 200; attempt++) {
		uint32_t r;
		util_random(&r, sizeof r);
		int base = 20000 + (int)(r % 599) * 15;
		int ok = 1;
		for (int p = base; p < base + 15 && ok; p++)
			ok = port_free(p);
		if (ok)
			return base;
	}
	return 20000;
}

/* The address a component gets in namespace mode. */
static const char *netns_address(const char *component)
{
	if (strcmp(component, "eu") == 0)
		return "127.0.0.2";
	if (strcmp(component, "us") == 0)
		return "127.0.0.3";
	if (strcmp(component, "witness") == 0)
		return "127.0.0.4";
	return NULL;
}

/*
 * The drill's workload is one client address carrying the load of a whole
 * population (up to 2,048 connections per region, start_workload), which
 * the per-address cap meant for real clients (256) would refuse during a
 * failover, when waiting writes pile up: its fresh deployment allows it.
 */
#define DRILL_CONNECTIONS_PER_ADDRESS 8192

/*
 * Rewrite the fresh deployment's config text in place: in [limits]
 * max_connections_per_address becomes DRILL_CONNECTIONS_PER_ADDRESS; with
 * netns, in [region X] api_listen and link_listen, in [witness] listen, the
 * host becomes the component's own loopback address (ports kept). 0 or -1.
 */
static int rewrite_config(const char *path, bool netns, char *err, size_t errcap)
{
	size_t len;
	char *text = util_read_file(path, 1 << 20, &len);
	if (!text) {
		snprintf(err, errcap, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	buf out;
	buf_init(&out, 2 << 20);
	char section[64] = "";
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *p = line + strspn(line, " \t");
		if (*p == '[') {
			snprintf(section, sizeof section, "%.*s", (int)strcspn(p + 1, "]"), p + 1);
			if (strncmp(section, "edge ", 5) != 0) /* tandem up's edges: the drill writes its own */
				buf_printf(&out, "%s\n", line);
			continue;
		}
		if (strncmp(section, "edge ", 5) == 0)
			continue;
		if (strcmp(section, "limits") == 0 && strncmp(p, "max_connections_per_address", 27) == 0 &&
		    strchr(" \t=", p[27])) {
			buf_printf(&out, "max_connections_per_address = %d\n", DRILL_CONNECTIONS_PER_ADDRESS);
			continue;
		}
		const char *component = NULL;
		if (!netns)
			; /* the addresses stay */
		else if (strncmp(section, "region ", 7) == 0 &&
		    (strncmp(p, "api_listen", 10) == 0 || strncmp(p, "link_listen", 11) == 0))
			component = section + 7;
		else if (strcmp(section, "witness") == 0 && strncmp(p, "listen", 6) == 0)
			component = "witness";
		const char *addr = component ? netns_address(component) : NULL;
		const char *eq = strchr(p, '=');
		const char *colon = eq ? strrchr(eq, ':') : NULL;
		if (addr && eq && colon) {
			buf_printf(&out, "%.*s= %s%s\n", (int)(eq - line), line, addr, colon);
			continue;
		}
		if (component && !addr) {
			snprintf(err, errcap, "no namespace address for component '%s'", component);
			free(text);
			buf_free(&out);
			return -1;
		}
		buf_printf(&out, "%s\n", line);
	}
	free(text);
	int rc = util_write_file(path, out.data, out.len, 0644);
	buf_free(&out);
	if (rc != 0) {
		snprintf(err, errcap, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int absolute(const char *in, char *out, size_t cap)
{
	if (in[0] == '/') {
		snprintf(out, cap, "%s", in);
		return 0;
	}
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return -1;
	if (snprintf(out, cap, "%s/%s", cwd, in) >= (int)cap)
		return -1;
	return 0;
}

/*
 * Where the report goes without --report. It holds the fresh deployment
 * (keys and secrets included) and every log, so never the current directory
 * (often a source tree): next to the deployment given with --data or
 * --config (in its parent directory, as PARENT/drill-report), else a new
 * private directory under $TMPDIR or /tmp. Created mode 0700 either way.
 * 0, or -1 with the reason in err.
 */
static int drill_default_report(drill_options *o, char *err, size_t errcap)
{
	char abs[PATH_MAX];
	const char *given = o->data_dir[0] ? o->data_dir : o->config_path;
	if (given[0]) {
		if (absolute(given, abs, sizeof abs) != 0) {
			snprintf(err, errcap, "path too long: %s", given);
			return -1;
		}
		/* the deployment's directory: DATA itself, or the config's */
		char *slash = strrchr(abs, '/');
		if (!o->data_dir[0] && slash)
			*slash = '\0';
		while (strlen(abs) > 1 && abs[strlen(abs) - 1] == '/')
			abs[strlen(abs) - 1] = '\0';
		slash = strrchr(abs, '/');
		if (slash)
			slash[slash == abs ? 1 : 0] = '\0';
		snprintf(o->report_dir, sizeof o->report_dir, "%.*s%sdrill-report", PATH_MAX - 32, abs,
			 strcmp(abs, "/") == 0 ? "" : "/");
		return 0;
	}
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/' || strlen(tmp) > PATH_MAX - 64)
		tmp = "/tmp";
	snprintf(o->report_dir, sizeof o->report_dir, "%s/tandem-drill-XXXXXX", tmp);
	if (!mkdtemp(o->report_dir)) { /* mode 0700, a name nobody else holds */
		snprintf(err, errcap, "cannot create a report directory under %s: %s", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

/* The names of the drill's edges: the one in front of region k is
 * "edge-" + its name (the config's regions: eu primary, us secondary). */
static const char *const drill_edges[DRILL_REGIONS] = {"edge-eu", "edge-us"};

/*
 * --via edge: two [edge] sections in the fresh deployment's config, edge-eu
 * trying eu first and edge-us trying us first (the other region: the
 * failover inside a request), on 127.0.0.1 (the drill's own address, which
 * no partition rule matches: the edges keep reaching both regions, as an
 * edge outside both regions would), TLS with their own certificates, probes
 * every second. 0 or -1.
 */
static int add_edges(drill_run_state *s, int base, char *err, size_t errcap)
{
	const char *eu = s->netns ? "127.0.0.2" : "127.0.0.1", *us = s->netns ? "127.0.0.3" : "127.0.0.1";
	buf b;
	buf_init(&b, 4096);
	for (int k = 0; k < DRILL_REGIONS; k++)
		buf_printf(&b,
			   "\n; tandem drill --via edge: the edge in front of %s\n"
			   "[edge %s]\n"
			   "listen = 127.0.0.1:%d\n"
			   "tls_cert = certs/%s.pem\n"
			   "tls_key = certs/%s.key\n"
			   "origins = %s=https://%s:%d, %s=https://%s:%d\n"
			   "connect_timeout_ms = 1000\n"
			   "response_timeout_ms = 10000\n"
			   "probe_interval_ms = 1000\n"
			   "; as many as the workload's own connections to a region (start_workload)\n"
			   "max_origin_connections = 4096\n",
			   k ? "us" : "eu", drill_edges[k], base + 13 + k, drill_edges[k], drill_edges[k],
			   k ? "us" : "eu", k ? us : eu, base + k, k ? "eu" : "us", k ? eu : us, base + 1 - k);
	int fd = open(s->config_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	int ok = fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len;
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	if (!ok) {
		snprintf(err, errcap, "cannot append the edges to %s: %s", s->config_path, strerror(errno));
		return -1;
	}
	/* the edges' certificates, and the regions' again when the namespace
	 * moved them (the edges verify the addresses they connect to) */
	char *argv[] = {s->self, "certs", "--config", s->config_path, NULL};
	char log[PATH_MAX];
	snprintf(log, sizeof log, "%.*s/init.log", PATH_MAX - 16, s->logs_dir);
	buf out;
	buf_init(&out, 16384);
	int rc = command_run(argv, NULL, &out, log, 120000);
	if (rc != 0)
		snprintf(err, errcap, "tandem certs failed (exit %d): %.300s", rc, out.data ? out.data : "");
	buf_free(&out);
	return rc == 0 ? 0 : -1;
}

static int prepare_deployment(drill_run_state *s, char *err, size_t errcap)
{
	const drill_options *o = s->opt;
	if (o->config_path[0]) {
		if (absolute(o->config_path, s->config_path, sizeof s->config_path) != 0) {
			snprintf(err, errcap, "--config path too long");
			return -1;
		}
		say(s, "using the deployment of %s", s->config_path);
		return 0;
	}
	char data[PATH_MAX];
	if (o->data_dir[0])
		snprintf(data, sizeof data, "%s", o->data_dir);
	else
		snprintf(data, sizeof data, "%.*s/deployment", PATH_MAX - 16, o->report_dir);
	char abs[PATH_MAX];
	if (absolute(data, abs, sizeof abs) != 0) {
		snprintf(err, errcap, "--data path too long");
		return -1;
	}
	if (fresh_dir(abs, err, errcap) != 0)
		return -1;
	int base = o->port_base ? o->port_base : pick_port_base();
	char port[16];
	snprintf(port, sizeof port, "%d", base);
	/* one address (127.0.0.1) for every component, as the drill expects:
	 * its network namespace mode gives them their own (rewrite_config) */
	char *argv[] = {s->self, "init", "--address", "127.0.0.1", "--data", abs, "--port-base", port, NULL};
	char log[PATH_MAX];
	snprintf(log, sizeof log, "%.*s/init.log", PATH_MAX - 16, s->logs_dir);
	buf out;
	buf_init(&out, 16384);
	int rc = command_run(argv, NULL, &out, log, 120000);
	if (rc != 0) {
		snprintf(err, errcap, "tandem init failed (exit %d): %.300s", rc, out.data ? out.data : "");
		buf_free(&out);
		return -1;
	}
	buf_free(&out);
	snprintf(s->config_path, sizeof s->config_path, "%.*s/tandem.ini", PATH_MAX - 16, abs);
	if (rewrite_config(s->config_path, s->netns, err, errcap) != 0)
		return -1;
	if (o->via_edge && add_edges(s, base, err, errcap) != 0)
		return -1;
	say(s, "fresh deployment in %s (port base %d%s)", abs, base,
	    s->netns ? "; eu 127.0.0.2, us 127.0.0.3, witness 127.0.0.4 in a private network namespace"
		     : "");
	return 0;
}

/* Components from the config: the two regions, then the witness if any. */
static int setup_components(drill_run_state *s, char *err, size_t errcap)
{
	config *cfg = &s->cfg;
	if (cfg->region_count != DRILL_REGIONS) {
		snprintf(err, errcap, "the drill needs exactly %d regions; %s has %d", DRILL_REGIONS,
			 s->config_path, cfg->region_count);
		return -1;
	}
	s->ncomps = 0;
	s->witness = -1;
	/* the initial primary first: it is region 0 of the workload's output */
	for (int k = 0; k < DRILL_REGIONS; k++) {
		const config_region *r = &cfg->regions[k];
		drill_component *c = &s->comps[s->ncomps];
		memset(c, 0, sizeof *c);
		snprintf(c->name, sizeof c->name, "%s", r->name);
		snprintf(c->api, sizeof c->api, "%s", r->api_listen);
		snprintf(c->link, sizeof c->link, "%s", r->link_listen);
		snprintf(c->data_dir, sizeof c->data_dir, "%s", r->data_dir);
		s->region_comp[k] = s->ncomps++;
	}
	if (cfg->witness.listen[0]) {
		drill_component *c = &s->comps[s->ncomps];
		memset(c, 0, sizeof *c);
		snprintf(c->name, sizeof c->name, "witness");
		c->is_witness = 1;
		snprintf(c->link, sizeof c->link, "%s", cfg->witness.listen);
		snprintf(c->data_dir, sizeof c->data_dir, "%s", cfg->witness.data_dir);
		s->witness = s->ncomps++;
	}
	for (int k = 0; k < DRILL_REGIONS; k++)
		s->edge_comp[k] = -1;
	if (s->opt->via_edge) {
		static edge_confs ecs;
		if (edgeconf_load(s->config_path, &ecs, err, errcap) != 0)
			return -1;
		for (int k = 0; k < DRILL_REGIONS; k++) {
			const edge_conf *e = edgeconf_find(&ecs, drill_edges[k]);
			if (!e) {
				snprintf(err, errcap, "%s: no [edge %s]", s->config_path, drill_edges[k]);
				return -1;
			}
			drill_component *c = &s->comps[s->ncomps];
			memset(c, 0, sizeof *c);
			snprintf(c->name, sizeof c->name, "%s", e->name);
			c->is_edge = 1;
			snprintf(c->api, sizeof c->api, "%s", e->listen);
			s->edge_comp[k] = s->ncomps++;
		}
	}
	for (int i = 0; i < s->ncomps; i++) {
		drill_component *c = &s->comps[i];
		char path[PATH_MAX]; /* c lives inside s: no overlapping snprintf */
		snprintf(path, sizeof path, "%.*s/%s.log", PATH_MAX - 64, s->logs_dir, c->name);
		memcpy(c->log_path, path, sizeof path);
		unlink(c->log_path); /* this run's log only */
	}
	/* nftables needs one address per component */
	if (s->netns) {
		char hosts[DRILL_MAX_COMPONENTS][64];
		for (int i = 0; i < s->ncomps; i++) {
			int port;
			hosts[i][0] = '\0';
			if (s->comps[i].is_edge) /* on the drill's own address, outside every rule */
				continue;
			util_split_hostport(s->comps[i].link, hosts[i], sizeof hosts[i], &port);
			for (int j = 0; j < i; j++)
				if (strcmp(hosts[i], hosts[j]) == 0) {
					snprintf(err, errcap,
						 "%s and %s share the address %s: nftables partitions need one "
						 "address per component (or use --net switch)",
						 s->comps[i].name, s->comps[j].name, hosts[i]);
					return -1;
				}
		}
	}
	return 0;
}

/* ---- observing the deployment ---- */

static void view_region(drill_run_state *s, int k, region_view *v)
{
	drill_component *c = &s->comps[s->region_comp[k]];
	memset(v, 0, sizeof *v);
	drill_reply r;
	drill_call(s->base, s->admin_ctx, c->link, c->name, "GET", "/internal/v1/status", NULL, NULL,
		   1500, &r);
	if (r.rc == 0 && r.status == 200 && r.json) {
		v->reachable = 1;
		snprintf(v->role, sizeof v->role, "%s",
			 str_or(json_string_value(json_object_get(r.json, "role")), "?"));
		v->epoch = json_integer_value(json_object_get(r.json, "epoch"));
		v->last_seq = json_integer_value(json_object_get(r.json, "last_seq"));
		v->applied_seq = json_integer_value(json_object_get(r.json, "applied_seq"));
		json_t *objects = json_object_get(r.json, "objects");
		v->objects_pending = json_is_integer(json_object_get(objects, "pending"))
					     ? json_integer_value(json_object_get(objects, "pending"))
					     : -1;
		json_t *lag = json_object_get(objects, "lag_seconds");
		if (s->ol && json_is_number(lag) && s->obj_nlag[k] < OBJ_LAG_SAMPLES) {
			if (!s->obj_lag[k])
				s->obj_lag[k] = calloc(OBJ_LAG_SAMPLES, sizeof *s->obj_lag[k]);
			if (s->obj_lag[k]) /* without memory the lag goes unsampled */
				s->obj_lag[k][s->obj_nlag[k]++] = json_number_value(lag);
		}
	}
	reply_free(&r);
}

/* Poll every region; record role changes as events. Returns the index of
 * the primary (by status), -1 when none or several. */
static int observe(drill_run_state *s)
{
	int primary = -1, primaries = 0;
	for (int k = 0; k < DRILL_REGIONS; k++) {
		region_view v;
		drill_component *c = &s->comps[s->region_comp[k]];
		if (c->alive)
			view_region(s, k, &v);
		else
			memset(&v, 0, sizeof v);
		region_view *old = &s->last_view[k];
		if (!s->have_view || v.reachable != old->reachable || strcmp(v.role, old->role) != 0 ||
		    v.epoch != old->epoch) {
			if (v.reachable)
				run_event(s, "role", c->name, "%s: %s, epoch %lld (status)", c->name, v.role,
					  v.epoch);
			else
				run_event(s, "role", c->name, "%s: unreachable (status)", c->name);
		}
		*old = v;
		if (v.reachable && strcmp(v.role, "primary") == 0) {
			primary = k;
			primaries++;
		}
	}
	s->have_view = 1;
	return primaries == 1 ? primary : -1;
}

static void watch_children(drill_run_state *s)
{
	for (int i = 0; i < s->ncomps; i++) {
		drill_component *c = &s->comps[i];
		if (c->alive && component_reap(c)) {
			int st = c->last_status;
			run_event(s, "note", c->name, "%s (pid %d) died on its own: %s %d", c->name, (int)c->pid,
				  WIFSIGNALED(st) ? "signal" : "exit status",
				  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		}
	}
}

/* Sleep until wall time t_ms, observing. -1 when interrupted. */
static int wait_until(drill_run_state *s, int64_t t_ms)
{
	while (!interrupted) {
		int64_t now = util_now_ms();
		if (now >= t_ms)
			return 0;
		if (now >= s->next_poll_ms) {
			observe(s);
			watch_children(s);
			s->next_poll_ms = now + STATUS_POLL_MS;
		}
		if (s->wl && now >= s->next_progress_ms && !s->opt->quiet) {
			long acked, errors, pending;
			workload_progress(s->wl, &acked, &errors, &pending);
			fprintf(stderr, "drill: %6.1f s  progress   %ld acknowledged, %ld failed attempts, %ld pending;",
				run_t(s, now), acked, errors, pending);
			if (s->ol) {
				long oacked, oerrors;
				objload_progress(s->ol, &oacked, &oerrors);
				fprintf(stderr, " objects %ld acknowledged, %ld failed attempts;", oacked, oerrors);
			}
			for (int k = 0; k < DRILL_REGIONS; k++)
				fprintf(stderr, " %s %s", s->comps[s->region_comp[k]].name,
					s->last_view[k].reachable ? s->last_view[k].role : "down");
			fputc('\n', stderr);
			s->next_progress_ms = now + PROGRESS_MS;
		}
		int64_t step = t_ms - util_now_ms();
		if (step > 100)
			step = 100;
		if (step > 0)
			usleep((useconds_t)step * 1000);
	}
	return -1;
}

/* Both regions serve, one is primary, the secondary has caught up. */
static int wait_converged(drill_run_state *s, int timeout_ms, int64_t *position)
{
	int64_t deadline = util_now_ms() + timeout_ms;
	int stable = 0;
	while (!interrupted && util_now_ms() < deadline) {
		region_view v[DRILL_REGIONS];
		int primaries = 0, p = -1;
		for (int k = 0; k < DRILL_REGIONS; k++) {
			view_region(s, k, &v[k]);
			if (v[k].reachable && strcmp(v[k].role, "primary") == 0) {
				primaries++;
				p = k;
			}
		}
		int ok = primaries == 1 && v[1 - p].reachable && strcmp(v[1 - p].role, "secondary") == 0 &&
			 v[1 - p].applied_seq == v[p].last_seq;
		if (ok && ++stable >= 2) {
			*position = v[p].last_seq;
			snprintf(s->final_primary, sizeof s->final_primary, "%s",
				 s->comps[s->region_comp[p]].name);
			return 0;
		}
		if (!ok)
			stable = 0;
		usleep(250000);
	}
	return -1;
}

/* ---- sign-up ---- */

static int sign_up(drill_run_state *s, int k, workload_region *wr, char *err, size_t errcap)
{
	drill_component *c = &s->comps[s->region_comp[k]];
	char password[33], email[128], body[512];
	unsigned char raw[16];
	util_random(raw, sizeof raw);
	util_hex(raw, sizeof raw, password);
	util_random(raw, 4);
	char tag[9];
	util_hex(raw, 4, tag);
	snprintf(email, sizeof email, "drill-%s-%s@example.com", tag, c->name);
	snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
	char headers[128];
	snprintf(headers, sizeof headers, "Content-Type: application/json\r\nIdempotency-Key: signup-%s-%s\r\n",
		 tag, c->name);
	for (int attempt = 0; attempt < 40 && !interrupted; attempt++) {
		drill_reply r;
		drill_call(s->base, s->api_ctx, c->api, c->name, "POST", "/v1/auth/signup", headers, body,
			   15000, &r);
		if (r.rc == 0 && r.status == 201 && r.json) {
			const char *token = json_string_value(json_object_get(r.json, "access_token"));
			const char *uid = json_string_value(
				json_object_get(json_object_get(r.json, "user"), "id"));
			snprintf(wr->token, sizeof wr->token, "%s", token ? token : "");
			snprintf(wr->user_id, sizeof wr->user_id, "%s", uid ? uid : "");
			reply_free(&r);
			return token ? 0 : -1;
		}
		snprintf(err, errcap, "sign-up in %s: %s %d", c->name, r.rc ? "error" : "status",
			 r.rc ? r.rc : r.status);
		reply_free(&r);
		usleep(250000);
	}
	return -1;
}

/* ---- collecting the results ---- */

static void url_escape(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (; *in && n + 4 < cap; in++) {
		unsigned char ch = (unsigned char)*in;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			out[n++] = (char)ch;
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	out[n] = '\0';
}

/* Every record of the drill's collections, from the final primary:
 * s->final_records = marker -> [ids]. 0 or -1 (reason in readback_error). */
static int read_back(drill_run_state *s)
{
	const workload_config *wc = workload_config_of(s->wl);
	int p = -1;
	for (int k = 0; k < DRILL_REGIONS; k++)
		if (strcmp(s->comps[s->region_comp[k]].name, s->final_primary) == 0)
			p = k;
	if (p < 0) {
		snprintf(s->readback_error, sizeof s->readback_error, "no primary to read from");
		return -1;
	}
	drill_component *c = &s->comps[s->region_comp[p]];
	s->final_records = json_object();
	for (int k = 0; k < DRILL_REGIONS; k++) {
		const workload_region *wr = &wc->regions[k];
		char cursor[1024] = "";
		char headers[1300];
		snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\nX-Tandem-Consistency: global\r\n",
			 wr->token);
		for (int page = 0; page < 100000; page++) {
			char target[1400], esc[1100];
			url_escape(cursor, esc, sizeof esc);
			snprintf(target, sizeof target, "/v1/collections/%s/records?limit=1000%s%s",
				 wr->collection, cursor[0] ? "&cursor=" : "", esc);
			drill_reply r;
			drill_call(s->base, s->api_ctx, c->api, c->name, "GET", target, headers, NULL, 30000, &r);
			if (r.rc != 0 || r.status != 200 || !r.json) {
				snprintf(s->readback_error, sizeof s->readback_error,
					 "listing %s in %s: %s %d", wr->collection, c->name,
					 r.rc ? "error" : "status", r.rc ? r.rc : r.status);
				reply_free(&r);
				return -1;
			}
			size_t i;
			json_t *item;
			json_array_foreach(json_object_get(r.json, "items"), i, item) {
				const char *marker =
					json_string_value(json_object_get(json_object_get(item, "data"), "m"));
				const char *id = json_string_value(json_object_get(item, "id"));
				if (!marker || !id)
					continue;
				json_t *ids = json_object_get(s->final_records, marker);
				if (!ids) {
					ids = json_array();
					json_object_set_new(s->final_records, marker, ids);
				}
				json_array_append_new(ids, json_string(id));
			}
			const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
			if (!next || !next[0]) {
				reply_free(&r);
				break;
			}
			snprintf(cursor, sizeof cursor, "%s", next);
			reply_free(&r);
		}
	}
	return 0;
}

/* The drill's marker of a quarantined row, if it is one of ours. */
static const char *row_marker(json_t *row, json_t **parsed)
{
	*parsed = NULL;
	json_t *data = json_object_get(row, "data");
	if (json_is_string(data)) {
		*parsed = json_loads(json_string_value(data), 0, NULL);
		data = *parsed;
	}
	return json_string_value(json_object_get(data, "m"));
}

/* Quarantine files: sizes before the run, so only this run's lines count. */
static json_t *quarantine_sizes(drill_run_state *s)
{
	json_t *sizes = json_object();
	for (int k = 0; k < DRILL_REGIONS; k++) {
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%.*s/quarantine", PATH_MAX - 16,
			 s->comps[s->region_comp[k]].data_dir);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d))) {
			size_t n = strlen(e->d_name);
			int jsonl = n > 6 && strcmp(e->d_name + n - 6, ".jsonl") == 0;
			int db = n > 3 && strcmp(e->d_name + n - 3, ".db") == 0;
			if (!jsonl && !db)
				continue;
			char path[PATH_MAX * 2];
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			struct stat st;
			if (stat(path, &st) == 0)
				json_object_set_new(sizes, path, json_integer(st.st_size));
		}
		closedir(d);
	}
	return sizes;
}

/*
 * A whole-database copy in the quarantine (the rejoin's fallback when a
 * transaction cannot be reverted alone): the drill's records in it count as
 * quarantined (the final data is looked at first, so records the new
 * primary kept are not counted lost).
 */
static void scan_quarantine_copy(drill_run_state *s, const char *path)
{
	const workload_config *wc = workload_config_of(s->wl);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT id, data FROM records WHERE collection IN (?1, ?2)", -1, &st,
			       NULL) != SQLITE_OK) {
		run_event(s, "note", "drill", "cannot read the quarantine copy %.300s: %s", path,
			  db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return;
	}
	sqlite3_bind_text(st, 1, wc->regions[0].collection, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, wc->regions[1].collection, -1, SQLITE_STATIC);
	json_array_append_new(s->quarantine_files, json_string(path));
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *data = (const char *)sqlite3_column_text(st, 1);
		json_t *j = data ? json_loads(data, 0, NULL) : NULL;
		const char *marker = json_string_value(json_object_get(j, "m"));
		if (marker && !json_object_get(s->quarantine, marker))
			json_object_set_new(s->quarantine, marker,
					    json_pack("{s:s?, s:s}", "id", id, "file", path));
		json_decref(j);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void scan_quarantine(drill_run_state *s, json_t *before)
{
	s->quarantine = json_object();
	s->quarantine_files = json_array();
	json_t *now = quarantine_sizes(s);
	const char *path;
	json_t *size;
	json_object_foreach(now, path, size) {
		long long skip = json_integer_value(json_object_get(before, path));
		size_t plen = strlen(path);
		if (plen > 3 && strcmp(path + plen - 3, ".db") == 0) {
			if (!json_object_get(before, path)) /* a copy from before the run is not ours */
				scan_quarantine_copy(s, path);
			continue;
		}
		if (json_integer_value(size) <= skip)
			continue;
		size_t len;
		char *text = util_read_file(path, 1u << 30, &len);
		if (!text)
			continue;
		json_array_append_new(s->quarantine_files, json_string(path));
		char *save = NULL;
		for (char *line = strtok_r(text + skip, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			json_t *j = json_loads(line, 0, NULL);
			if (!j)
				continue;
			s->quarantine_lines++;
			size_t i;
			json_t *ch;
			json_array_foreach(json_object_get(j, "changes"), i, ch) {
				if (strcmp(str_or(json_string_value(json_object_get(ch, "table")), ""), "records") != 0)
					continue;
				json_t *after = json_object_get(ch, "after");
				json_t *parsed;
				const char *marker = row_marker(after, &parsed);
				if (marker)
					json_object_set_new(
						s->quarantine, marker,
						json_pack("{s:s?, s:I, s:I, s:s, s:s?}", "id",
							  json_string_value(json_object_get(after, "id")), "epoch",
							  json_integer_value(json_object_get(j, "epoch")), "position",
							  json_integer_value(json_object_get(j, "position")), "file",
							  path, "time", json_string_value(json_object_get(j, "time"))));
				json_decref(parsed);
			}
			json_decref(j);
		}
		free(text);
	}
	json_decref(now);
}

static void run_verify(drill_run_state *s)
{
	char log[PATH_MAX];
	snprintf(log, sizeof log, "%.*s/verify.log", PATH_MAX - 16, s->logs_dir);
	for (int attempt = 0; attempt < 3; attempt++) {
		buf out;
		buf_init(&out, sizeof s->verify_output - 1);
		char *argv[] = {s->self, "verify", "--config", s->config_path, NULL};
		s->verify_code = command_run(argv, NULL, &out, log, 60000);
		snprintf(s->verify_output, sizeof s->verify_output, "%s", out.data ? out.data : "");
		buf_free(&out);
		if (s->verify_code != 2) /* 2: no common position yet; try again */
			return;
		sleep(1);
	}
}

/* ---- the run ---- */

static void stop_all(drill_run_state *s)
{
	/* regions first (they log their last writes_off), the witness last */
	for (int i = 0; i < s->ncomps; i++) {
		drill_component *c = &s->comps[i];
		if (c->is_witness || !c->alive)
			continue;
		int st = component_stop(c, 20000);
		run_event(s, "stop", c->name, "%s stopped at the end (%s %d)", c->name,
			  WIFSIGNALED(st) ? "signal" : "exit status",
			  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	}
	for (int i = 0; i < s->ncomps; i++) {
		drill_component *c = &s->comps[i];
		if (!c->alive)
			continue;
		int st = component_stop(c, 20000);
		run_event(s, "stop", c->name, "%s stopped at the end (%s %d)", c->name,
			  WIFSIGNALED(st) ? "signal" : "exit status",
			  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	}
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Choose how partitions are made; enter the namespace when it is nftables. */
static int choose_network(drill_run_state *s, char *err, size_t errcap)
{
	const drill_options *o = s->opt;
	if (o->net == DRILL_NET_SWITCH) {
		snprintf(s->net_method, sizeof s->net_method, "fault-switch");
		snprintf(s->net_note, sizeof s->net_note, "asked for (--net switch)");
		return 0;
	}
	char reason[300] = "";
	if (geteuid() != 0) {
		snprintf(reason, sizeof reason, "not root: nftables and network namespaces need root");
	} else if (o->config_path[0] && o->net == DRILL_NET_AUTO) {
		snprintf(reason, sizeof reason,
			 "--config given: its addresses are used as they are (--net nftables to insist)");
	} else {
		buf out;
		buf_init(&out, 1024);
		char *argv[] = {"nft", "--version", NULL};
		int rc = command_run(argv, NULL, &out, NULL, 10000);
		buf_free(&out);
		if (rc != 0)
			snprintf(reason, sizeof reason, "nft is not installed (Debian package nftables)");
		else if (fault_enter_netns(reason, sizeof reason) == 0) {
			s->netns = 1;
			snprintf(s->net_method, sizeof s->net_method, "nftables");
			snprintf(s->net_note, sizeof s->net_note,
				 "root: a private network namespace, one loopback address per component");
			return 0;
		}
	}
	if (o->net == DRILL_NET_NFTABLES) {
		snprintf(err, errcap, "--net nftables: %s", reason);
		return -1;
	}
	snprintf(s->net_method, sizeof s->net_method, "fault-switch");
	snprintf(s->net_note, sizeof s->net_note, "%.255s", reason);
	return 0;
}

/* Network, deployment, config, components started and settled. 0, or -1
 * with the reason in err (whatever started is stopped by the caller). */
static int setup(drill_run_state *s, char *err, size_t errcap)
{
	if (choose_network(s, err, errcap) != 0)
		return -1;
	say(s, "scenario %s: %s", s->sc->name, s->sc->summary);
	say(s, "partitions: %s (%s)", s->net_method, s->net_note);
	if (prepare_deployment(s, err, errcap) != 0 || config_load(s->config_path, &s->cfg, err, errcap) != 0 ||
	    setup_components(s, err, errcap) != 0)
		return -1;
	char cert[CONFIG_PATH_MAX + 16], key[CONFIG_PATH_MAX + 16];
	snprintf(cert, sizeof cert, "%s/admin.pem", s->cfg.certs_dir);
	snprintf(key, sizeof key, "%s/admin.key", s->cfg.certs_dir);
	s->admin_ctx = tls_client_new(s->cfg.ca_file, cert, key, err, errcap);
	if (!s->admin_ctx)
		return -1;
	s->api_ctx = tls_client_new(s->cfg.ca_file, NULL, NULL, err, errcap);
	if (!s->api_ctx)
		return -1;
	/* the drill starts every component itself (to kill it, to read its log):
	 * a deployment already running cannot be drilled */
	for (int i = 0; i < s->ncomps; i++) {
		const char *addrs[2] = {s->comps[i].api, s->comps[i].link};
		for (int k = 0; k < 2; k++) {
			char host[64];
			int port;
			if (!addrs[k][0] || util_split_hostport(addrs[k], host, sizeof host, &port) != 0)
				continue;
			if (!addr_free(host, port)) {
				snprintf(err, errcap,
					 "%s's address %s is in use: is this deployment running? The drill starts "
					 "its components itself; stop it first",
					 s->comps[i].name, addrs[k]);
				return -1;
			}
		}
	}
	s->quarantine_before = quarantine_sizes(s);
	/* the witness first, then the regions in config order */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < s->ncomps; i++) {
			drill_component *c = &s->comps[i];
			if (c->is_witness != (pass == 0))
				continue;
			if (component_start(c, s->config_path, DRILL_READY_TIMEOUT_MS, err, errcap) != 0)
				return -1;
			say(s, "%s ready (pid %d, log %s)", c->name, (int)c->pid, c->log_path);
		}
	if (s->witness < 0)
		say(s, "no [witness] in the config: running without one");
	int64_t position;
	if (wait_converged(s, 30000, &position) != 0) {
		snprintf(err, errcap, "the regions did not settle into one primary and one caught-up "
				      "secondary within 30 s (see %s)", s->logs_dir);
		return -1;
	}
	return 0;
}

/* ---- objects ---- */

typedef struct first_s3_key {
	char id[S3KEYS_ID_LEN + 12];
	char tenant[S3KEYS_NAME_MAX + 1];
} first_s3_key;

static void take_first_key(void *arg, const char *id, const char *tenant)
{
	first_s3_key *f = arg;
	if (!f->id[0]) {
		snprintf(f->id, sizeof f->id, "%s", id);
		snprintf(f->tenant, sizeof f->tenant, "%s", tenant ? tenant : id);
	}
}

/*
 * The object workload: its config, the first S3 key of the secrets file,
 * its bucket (created in the first region, waited for in the other). When
 * there is nothing to run (--object-rate 0, no s3_listen, no key), s->ol
 * stays NULL and s->obj_note says why. 0, or -1 with the reason in err.
 */
static int prepare_objects(drill_run_state *s, const char *run_id, char *err, size_t errcap)
{
	const drill_options *o = s->opt;
	int rate = o->object_rate >= 0 ? o->object_rate : (o->rate / 20 > 2 ? o->rate / 20 : 2);
	if (rate == 0) {
		snprintf(s->obj_note, sizeof s->obj_note, "no object workload: --object-rate 0");
		return 0;
	}
	objload_config oc;
	memset(&oc, 0, sizeof oc);
	for (int k = 0; k < DRILL_REGIONS; k++) {
		const config_region *r = &s->cfg.regions[k];
		if (!r->s3_listen[0]) {
			snprintf(s->obj_note, sizeof s->obj_note,
				 "no object workload: region %s has no s3_listen", r->name);
			return 0;
		}
		snprintf(oc.region[k], sizeof oc.region[k], "%s", r->name);
		snprintf(oc.s3[k], sizeof oc.s3[k], "%s", r->s3_listen);
	}
	first_s3_key first;
	memset(&first, 0, sizeof first);
	char id[S3KEYS_ID_LEN + 12], secret[S3KEYS_SECRET_LEN + 24];
	if (s3keys_list(s->cfg.secrets_file, take_first_key, &first, err, errcap) != 0)
		return -1;
	if (!first.id[0] ||
	    s3keys_find_tenant(s->cfg.secrets_file, first.tenant, id, secret, err, errcap) != 0) {
		snprintf(s->obj_note, sizeof s->obj_note,
			 "no object workload: no [s3] key in %.150s (tandem keys create NAME)",
			 s->cfg.secrets_file);
		return 0;
	}
	snprintf(oc.access_key_id, sizeof oc.access_key_id, "%s", id);
	snprintf(oc.secret, sizeof oc.secret, "%s", secret);
	OPENSSL_cleanse(secret, sizeof secret);
	snprintf(oc.run_id, sizeof oc.run_id, "%s", run_id);
	snprintf(oc.bucket, sizeof oc.bucket, "drill-%s", run_id);
	oc.ctx = s->api_ctx;
	oc.rate = rate;
	oc.duration_s = o->duration_s;
	int rc = objs3_create_bucket(s->base, &oc, OBJ_BUCKET_WAIT_MS, err, errcap);
	if (rc == 0) {
		s->ol = objload_new(&oc, err, errcap);
		rc = s->ol ? 0 : -1;
	}
	OPENSSL_cleanse(oc.secret, sizeof oc.secret);
	return rc;
}

/* Right after the fault: every region still running, listed (object RPO). */
static void objects_at_fault(drill_run_state *s)
{
	if (!s->ol)
		return;
	const objload_config *oc = objload_config_of(s->ol);
	for (int k = 0; k < DRILL_REGIONS; k++) {
		if (!s->comps[s->region_comp[k]].alive)
			continue;
		obj_state *st = &s->obj_at_fault[k];
		if (objs3_list(s->base, oc, k, objload_key_count(s->ol), st) != 0 && !st->error[0])
			snprintf(st->error, sizeof st->error, "listing failed");
		st->done_ms = util_now_ms();
		run_event(s, "note", oc->region[k], "objects of %s listed after the fault (%lld ms)%s%s",
			  oc->region[k], (long long)(st->done_ms - st->at_ms), st->taken ? "" : ": ",
			  st->taken ? "" : st->error);
	}
}

/* After the heal: wait (bounded) until no region has object writes pending. */
static void objects_settle(drill_run_state *s)
{
	int64_t t = util_now_ms(), deadline = t + OBJ_SETTLE_MS;
	while (!interrupted && util_now_ms() < deadline) {
		int drained = 1;
		for (int k = 0; k < DRILL_REGIONS; k++) {
			region_view v;
			view_region(s, k, &v);
			drained &= v.reachable && v.objects_pending == 0;
		}
		if (drained) {
			s->obj_drained = 1;
			break;
		}
		usleep(250000);
	}
	s->obj_drain_s = (double)(util_now_ms() - t) / 1000.0;
}

/* The value of a region's metric line "NAME{region=...} V" from /metrics;
 * -1 when it cannot be read. */
static double region_metric(drill_run_state *s, int k, const char *name)
{
	const char *addr = s->cfg.regions[k].metrics_listen;
	char host[64];
	int port;
	if (!addr[0] || util_split_hostport(addr, host, sizeof host, &port) != 0)
		return -1;
	drill_reply r;
	drill_call(s->base, NULL, addr, host, "GET", "/metrics", NULL, NULL, 5000, &r);
	double v = -1;
	size_t n = strlen(name);
	for (char *p = r.rc == 0 && r.status == 200 ? r.body : NULL; p && *p;) {
		char *eol = strchr(p, '\n');
		if (strncmp(p, name, n) == 0 && p[n] == '{') {
			char *close = strstr(p, "} ");
			if (close && (!eol || close < eol))
				v = strtod(close + 2, NULL);
			break;
		}
		p = eol ? eol + 1 : NULL;
	}
	reply_free(&r);
	return v;
}

/* objects.repairs of a region's status (what its anti-entropy queued again
 * since it started); -1 when unknown. */
static long long region_repairs(drill_run_state *s, int k)
{
	drill_component *c = &s->comps[s->region_comp[k]];
	drill_reply r;
	drill_call(s->base, s->admin_ctx, c->link, c->name, "GET", "/internal/v1/status", NULL, NULL, 1500, &r);
	json_t *v = json_object_get(json_object_get(r.json, "objects"), "repairs");
	long long n = r.rc == 0 && r.status == 200 && json_is_integer(v) ? json_integer_value(v) : -1;
	reply_free(&r);
	return n;
}

/*
 * One anti-entropy pass in each region, asked for (POST
 * /internal/v1/objects/anti-entropy) once the outboxes are empty, waited for
 * (its end in the log, up to 15 s), then the outboxes again: what the
 * outbox missed is repaired as the design says, and counted for the report
 * (s->obj_ae_repairs) rather than waited out for anti_entropy_s.
 */
static void objects_anti_entropy(drill_run_state *s)
{
	static const char passes_metric[] = "tandem_objects_anti_entropy_passes_total";
	double before[DRILL_REGIONS];
	long long repairs0[DRILL_REGIONS];
	for (int k = 0; k < DRILL_REGIONS; k++) {
		drill_component *c = &s->comps[s->region_comp[k]];
		before[k] = region_metric(s, k, passes_metric);
		repairs0[k] = region_repairs(s, k);
		drill_reply r;
		drill_call(s->base, s->admin_ctx, c->link, c->name, "POST", "/internal/v1/objects/anti-entropy",
			   NULL, "", 5000, &r);
		if (r.rc != 0 || r.status != 202)
			run_event(s, "note", c->name, "anti-entropy pass in %s not started: %s %d", c->name,
				  r.rc ? "error" : "status", r.rc ? r.rc : r.status);
		reply_free(&r);
	}
	int64_t deadline = util_now_ms() + 15000;
	int done = 0;
	while (!done && !interrupted && util_now_ms() < deadline) {
		usleep(200000);
		done = 1;
		for (int k = 0; k < DRILL_REGIONS; k++) {
			if (!s->obj_ae_ran[k])
				s->obj_ae_ran[k] = before[k] >= 0 && region_metric(s, k, passes_metric) > before[k];
			done &= s->obj_ae_ran[k];
		}
	}
	for (int k = 0; k < DRILL_REGIONS; k++) {
		long long after = region_repairs(s, k);
		s->obj_ae_repairs[k] = after >= 0 && repairs0[k] >= 0 ? (long)(after - repairs0[k]) : -1;
		if (s->obj_ae_repairs[k])
			run_event(s, "note", s->comps[s->region_comp[k]].name,
				  "objects: anti-entropy in %s queued %ld write(s) the outbox had not delivered%s",
				  s->comps[s->region_comp[k]].name, s->obj_ae_repairs[k],
				  s->obj_ae_repairs[k] < 0 ? " (unknown: -1)" : "");
	}
	objects_settle(s);
}

/* A region's tandem_objects_replication_seconds histogram from /metrics:
 * {"count", "p50_le_s", "p99_le_s"} (null: beyond the last bound), or
 * {"error"}. */
static json_t *objects_histogram(drill_run_state *s, int k)
{
	const char *addr = s->cfg.regions[k].metrics_listen;
	if (!addr[0])
		return json_pack("{s:s}", "error", "no metrics_listen");
	char host[64];
	int port;
	if (util_split_hostport(addr, host, sizeof host, &port) != 0)
		return json_pack("{s:s}", "error", "bad metrics_listen");
	drill_reply r;
	drill_call(s->base, NULL, addr, host, "GET", "/metrics", NULL, NULL, 5000, &r);
	if (r.rc != 0 || r.status != 200 || !r.body) {
		json_t *e = json_pack("{s:s, s:i}", "error", "GET /metrics failed", "status", r.status);
		reply_free(&r);
		return e;
	}
	double le[32];
	unsigned long long cum[32];
	int n = 0;
	unsigned long long total = 0;
	char *save = NULL;
	for (char *line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		static const char prefix[] = "tandem_objects_replication_seconds_bucket{";
		if (strncmp(line, prefix, sizeof prefix - 1) != 0)
			continue;
		char *l = strstr(line, "le=\""), *close = strstr(line, "} ");
		if (!l || !close)
			continue;
		unsigned long long v = strtoull(close + 2, NULL, 10);
		if (strncmp(l + 4, "+Inf", 4) == 0)
			total = v;
		else if (n < 32) {
			le[n] = strtod(l + 4, NULL);
			cum[n++] = v;
		}
	}
	reply_free(&r);
	json_t *h = json_pack("{s:I}", "count", (json_int_t)total);
	const double qs[2] = {0.5, 0.99};
	const char *names[2] = {"p50_le_s", "p99_le_s"};
	for (int q = 0; q < 2; q++) {
		json_t *v = json_null();
		for (int i = 0; i < n && total; i++)
			if ((double)cum[i] >= qs[q] * (double)total) {
				v = json_real(le[i]);
				break;
			}
		json_object_set_new(h, names[q], v);
	}
	return h;
}

/* The final state: both regions listed twice ~1 s apart; the histograms. */
static void objects_final(drill_run_state *s)
{
	const objload_config *oc = objload_config_of(s->ol);
	for (int round = 0; round < 2 && !interrupted; round++) {
		if (round)
			sleep(1);
		for (int k = 0; k < DRILL_REGIONS; k++) {
			obj_state *st = &s->obj_final[k][round];
			objs3_list(s->base, oc, k, objload_key_count(s->ol), st);
			st->done_ms = util_now_ms();
		}
	}
	s->obj_histogram = json_object();
	for (int k = 0; k < DRILL_REGIONS; k++)
		json_object_set_new(s->obj_histogram, oc->region[k], objects_histogram(s, k));
}

/* A user per region, then the workload's thread: schedule time 0 is now.
 * 0 or -1 with the reason in err. */
static int start_workload(drill_run_state *s, char *err, size_t errcap)
{
	const drill_options *o = s->opt;
	workload_config wc;
	memset(&wc, 0, sizeof wc);
	unsigned char raw[4];
	util_random(raw, sizeof raw);
	util_hex(raw, sizeof raw, wc.run_id);
	for (int k = 0; k < DRILL_REGIONS; k++) {
		drill_component *c = &s->comps[s->region_comp[k]];
		snprintf(wc.regions[k].name, sizeof wc.regions[k].name, "%s", c->name);
		snprintf(wc.regions[k].api, sizeof wc.regions[k].api, "%s", c->api);
		if (s->edge_comp[k] >= 0) { /* the clients near region k: through its edge */
			const drill_component *e = &s->comps[s->edge_comp[k]];
			snprintf(wc.regions[k].api, sizeof wc.regions[k].api, "%s", e->api);
			snprintf(wc.regions[k].tls_name, sizeof wc.regions[k].tls_name, "%s", e->name);
		}
		snprintf(wc.regions[k].collection, sizeof wc.regions[k].collection, "drill_%s_%s", wc.run_id,
			 c->name);
		for (char *p = wc.regions[k].collection; *p; p++)
			if (*p == '-')
				*p = '_';
		if (sign_up(s, k, &wc.regions[k], err, errcap) != 0)
			return -1;
	}
	wc.api_ctx = s->api_ctx;
	wc.rate = o->rate;
	wc.read_rate = o->read_rate >= 0 ? o->read_rate : (o->rate / 10 > 2 ? o->rate / 10 : 2);
	wc.duration_s = o->duration_s;
	wc.global_percent = o->global_percent;
	/* connections per region: enough that `global` writes waiting out their
	 * confirmation (up to global_ack_wait_ms while the other region is
	 * down: rate/2 * share * 5 s in flight) never hold local writes back;
	 * a region serves max_connections (10,000 by default) */
	wc.pool_max = o->rate < 256 ? 256 : o->rate > 2048 ? 2048 : o->rate;
	if (s->cfg.limits.max_connections_per_address < wc.pool_max * 2)
		say(s, "warning: max_connections_per_address is %d in %s; the workload may open up to %d "
		       "connections to a region from one address, and the ones over the cap are refused "
		       "(counted as connection errors): raise it for the drill",
		    s->cfg.limits.max_connections_per_address, s->config_path, wc.pool_max * 2);
	if (prepare_objects(s, wc.run_id, err, errcap) != 0)
		return -1;
	s->wl = workload_new(&wc, err, errcap);
	if (!s->wl)
		return -1;
	if (workload_start(s->wl) != 0) {
		snprintf(err, errcap, "cannot start the workload thread");
		return -1;
	}
	if (s->ol && objload_start(s->ol) != 0) {
		snprintf(err, errcap, "cannot start the object workload thread");
		return -1;
	}
	s->t0_ms = workload_start_ms(s->wl);
	say(s, "workload: %d writes/s over both regions (%d%% global), %d reads/s per region, %d s",
	    o->rate, o->global_percent, wc.read_rate, o->duration_s);
	if (s->ol)
		say(s, "objects: %d writes/s (PUT 16 KiB..1 MiB, DELETE) over both regions into bucket %s",
		    objload_config_of(s->ol)->rate, objload_config_of(s->ol)->bucket);
	else
		say(s, "%s", s->obj_note);
	run_event(s, "note", "drill", "workload started (run %s)", wc.run_id);
	return 0;
}

/* Fault, heal, the end of the schedule, the drain. -1 when interrupted. */
static int play_scenario(drill_run_state *s)
{
	const drill_options *o = s->opt;
	double fault_at = o->fault_at_s >= 0 ? o->fault_at_s : o->duration_s / 3.0;
	double heal_at = o->heal_at_s >= 0 ? o->heal_at_s : 2.0 * o->duration_s / 3.0;
	if (wait_until(s, s->t0_ms + (int64_t)(fault_at * 1000)) != 0)
		return -1;
	int p = observe(s);
	if (p < 0) /* no clear primary seen: the config's */
		for (int k = 0; k < DRILL_REGIONS; k++)
			if (strcmp(s->cfg.regions[k].role, "primary") == 0)
				p = k;
	snprintf(s->primary_at_fault, sizeof s->primary_at_fault, "%s",
		 s->comps[s->region_comp[p < 0 ? 0 : p]].name);
	s->fault_ms = util_now_ms();
	if (fault_inject(s) != 0) {
		s->fault_failed = 1;
		run_event(s, "note", s->fault_target[0] ? s->fault_target : "drill", "fault failed: %s",
			  s->fault_detail);
	}
	objects_at_fault(s);
	if (wait_until(s, s->t0_ms + (int64_t)(heal_at * 1000)) != 0)
		return -1;
	s->heal_ms = util_now_ms();
	if (fault_heal(s) != 0)
		run_event(s, "note", "drill", "heal failed: %s", s->heal_detail);
	if (wait_until(s, s->t0_ms + (int64_t)o->duration_s * 1000) != 0)
		return -1;
	s->end_ms = util_now_ms();
	say(s, "workload ends; retrying unacknowledged writes for up to %d s", DRAIN_MS / 1000);
	if (s->ol) /* both drain at once */
		objload_drain(s->ol, DRAIN_MS);
	workload_stop(s->wl, DRAIN_MS);
	if (s->ol)
		objload_stop(s->ol, DRAIN_MS);
	run_event(s, "note", "drill", "workload stopped");
	return 0;
}

/* Convergence, verify, the final data, the quarantine. -1 when interrupted. */
static int collect(drill_run_state *s)
{
	int64_t t = util_now_ms();
	s->converged = wait_converged(s, CONVERGE_TIMEOUT_MS, &s->final_position) == 0;
	s->converge_s = (double)(util_now_ms() - t) / 1000.0;
	if (interrupted)
		return -1;
	if (s->ol) {
		objects_settle(s);
		double first = s->obj_drain_s;
		objects_anti_entropy(s);
		s->obj_drain_s += first;
		say(s, "objects: %s after %.1f s (anti-entropy repaired %ld + %ld)",
		    s->obj_drained ? "nothing pending" : "still pending", s->obj_drain_s, s->obj_ae_repairs[0],
		    s->obj_ae_repairs[1]);
	}
	if (s->converged) {
		say(s, "converged after %.1f s at position %lld, primary %s", s->converge_s,
		    (long long)s->final_position, s->final_primary);
		run_verify(s);
		say(s, "tandem verify: exit %d", s->verify_code);
		if (read_back(s) != 0)
			say(s, "reading the final data failed: %s", s->readback_error);
	} else {
		snprintf(s->readback_error, sizeof s->readback_error,
			 "the regions did not converge within %d s", CONVERGE_TIMEOUT_MS / 1000);
		say(s, "%s", s->readback_error);
	}
	if (s->ol && !interrupted)
		objects_final(s);
	scan_quarantine(s, s->quarantine_before);
	return 0;
}

static int run(drill_run_state *s)
{
	char err[16384] = "";
	/* 0700: the report holds the deployment's keys and every log */
	if (util_mkdirs(s->opt->report_dir, 0700) != 0 || util_mkdirs(s->logs_dir, 0700) != 0) {
		fprintf(stderr, "tandem: cannot create %s: %s\n", s->logs_dir, strerror(errno));
		return 1;
	}
	if (component_self(s->self, sizeof s->self) != 0) {
		fprintf(stderr, "tandem: cannot find this executable\n");
		return 1;
	}
	int rc = setup(s, err, sizeof err);
	if (rc == 0)
		rc = start_workload(s, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "tandem: drill: %s\n", err);
	else if (play_scenario(s) != 0 || collect(s) != 0)
		rc = -1;
	if (rc != 0 && interrupted)
		fprintf(stderr, "tandem: drill interrupted (signal %d); stopping everything\n",
			(int)interrupted);
	if (rc != 0 && s->wl)
		workload_stop(s->wl, 0);
	if (rc != 0 && s->ol)
		objload_stop(s->ol, 0);
	fault_cleanup(s); /* a fault still in place (an interrupted run) slows the stops */
	stop_all(s);
	if (rc != 0)
		return 1;
	check_parse_logs(s);
	check_all(s);
	if (report_write_files(s, err, sizeof err) != 0)
		fprintf(stderr, "tandem: %s\n", err);
	if (s->opt->json) {
		char *text = json_dumps(s->report, JSON_INDENT(2) | JSON_SORT_KEYS);
		if (text)
			printf("%s\n", text);
		free(text);
	} else {
		report_print_text(s, stdout);
	}
	fflush(stdout);
	return s->exit_code;
}

int drill_run(const drill_options *given)
{
	drill_options options = *given, *o = &options;
	if (!o->report_dir[0]) {
		char err[PATH_MAX + 128];
		if (drill_default_report(o, err, sizeof err) != 0) {
			fprintf(stderr, "tandem: drill: %s\n", err);
			return 1;
		}
	}
	drill_run_state *s = calloc(1, sizeof *s);
	if (!s) {
		fprintf(stderr, "tandem: out of memory\n");
		return 1;
	}
	s->opt = o;
	s->sc = scenario_find(o->scenario);
	s->verify_code = -1; /* not run */
	snprintf(s->logs_dir, sizeof s->logs_dir, "%.*s/logs", PATH_MAX - 16, o->report_dir);
	raise_fd_limit();
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->base = event_base_new();
	int code = s->base ? run(s) : 1;
	workload_free(&s->wl);
	objload_free(&s->ol);
	for (int k = 0; k < DRILL_REGIONS; k++) {
		obj_state_free(&s->obj_at_fault[k]);
		obj_state_free(&s->obj_final[k][0]);
		obj_state_free(&s->obj_final[k][1]);
		free(s->obj_lag[k]);
	}
	json_decref(s->obj_histogram);
	SSL_CTX_free(s->admin_ctx);
	SSL_CTX_free(s->api_ctx);
	if (s->base)
		event_base_free(s->base);
	json_decref(s->final_records);
	json_decref(s->quarantine_before);
	json_decref(s->quarantine);
	json_decref(s->quarantine_files);
	json_decref(s->role_events);
	json_decref(s->report);
	free(s->intervals);
	free(s->events);
	free(s);
	return code;
}
