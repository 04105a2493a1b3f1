/*
 * up.c - `tandem init` and `tandem up`: the whole local deployment on one
 * machine, on loopback.
 *
 * init creates, under DIR (default ./tandem-data), what a deployment needs
 * and does not have yet: tandem.ini (ports from --port-base), secrets.ini
 * (mode 0600) and certs/ (development CA). up does the same, then starts
 * every component as a child process (`tandem witness`, `tandem region ...`,
 * `tandem dns ...`, then `tandem edge ...`: each on its own loopback
 * address unless --address), waits until each says it is ready, writes
 * DIR/endpoints.json and supervises: a child that
 * dies is reported and not restarted (drills kill them on purpose); SIGINT
 * or SIGTERM stops every child gracefully.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/certs.h"
#include "core/config.h"
#include "core/err.h"
#include "core/privdrop.h"
#include "core/secrets.h"
#include "core/util.h"
#include "dns/dnsconf.h"
#include "edge/edgeconf.h"
#include "objects/s3keys.h"

#define DEFAULT_DATA "tandem-data"
#define DEFAULT_PORT_BASE 8443
#define READY_TIMEOUT_MS 30000
#define DEV_S3_TENANT "dev" /* the tenant of the development S3 key pair */
#define UP_ZONE "tandem.test"    /* the zone the local deployment's DNS serves */

static const char usage_up[] =
	"usage: tandem up [--data DIR] [--port-base N] [--address IP] [--config FILE] [--print-config]\n"
	"\n"
	"Start the whole local deployment on loopback, creating on first use the\n"
	"config (DIR/tandem.ini), the secrets (DIR/secrets.ini) and certificates\n"
	"(DIR/certs/). Writes DIR/endpoints.json once every component is ready.\n"
	"Ctrl-C or SIGTERM stops everything cleanly.\n"
	"\n"
	"  --data DIR       where everything lives (default ./" DEFAULT_DATA ")\n"
	"  --port-base N    first port; every port is N + offset (default 8443)\n"
	"  --address IP     every component on IP, instead of one loopback address\n"
	"                   each (eu 127.0.0.2, us .3, witness .4, DNS .5 and .6,\n"
	"                   edges .7 and .8);\n"
	"                   for systems with only 127.0.0.1 on loopback (macOS)\n"
	"  --config FILE    use this config instead of DIR/tandem.ini\n"
	"  --print-config   print the config that would be used, and exit\n";

static const char usage_init[] =
	"usage: tandem init [--data DIR] [--port-base N] [--address IP]\n"
	"\n"
	"Create the config, secrets and certificates of a local deployment under\n"
	"DIR (default ./" DEFAULT_DATA ") without starting anything. Existing files\n"
	"are kept. --address IP: every component on IP (see tandem up --help).\n";

typedef struct up_options {
	char data[PATH_MAX];
	char config_path[PATH_MAX];
	int port_base;
	int port_base_given;
	char address[64];        /* --address: every component on it ("": one loopback address each) */
	int config_given;
	int print_config;
} up_options;

static int parse_options(int argc, char **argv, up_options *o, int allow_up_only, const char *usage)
{
	memset(o, 0, sizeof *o);
	snprintf(o->data, sizeof o->data, "%s", DEFAULT_DATA);
	o->port_base = DEFAULT_PORT_BASE;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			fputs(usage, stdout);
			return 0;
		}
		if (strcmp(a, "--print-config") == 0 && allow_up_only) {
			o->print_config = 1;
			continue;
		}
		if (i + 1 >= argc)
			return cli_fail("option %s needs a value (see tandem %s --help)", a, argv[0]);
		const char *v = argv[++i];
		if (strcmp(a, "--data") == 0) {
			snprintf(o->data, sizeof o->data, "%s", v);
		} else if (strcmp(a, "--port-base") == 0) {
			long long n;
			if (util_parse_int(v, 1024, 65000, &n) != 0)
				return cli_fail("--port-base must be a number from 1024 to 65000, not '%s'", v);
			o->port_base = (int)n;
			o->port_base_given = 1;
		} else if (strcmp(a, "--address") == 0) {
			struct in_addr a4;
			if (inet_pton(AF_INET, v, &a4) != 1)
				return cli_fail("--address must be an IPv4 address, not '%s'", v);
			snprintf(o->address, sizeof o->address, "%s", v);
		} else if (strcmp(a, "--config") == 0 && allow_up_only) {
			snprintf(o->config_path, sizeof o->config_path, "%s", v);
			o->config_given = 1;
		} else {
			return cli_fail("unknown option '%s' (see tandem %s --help)", a, argv[0]);
		}
	}
	/* absolute data dir, so children and endpoints.json do not depend on cwd */
	if (o->data[0] != '/') {
		char cwd[PATH_MAX], abs[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd))
			return cli_fail("cannot read the current directory: %s", strerror(errno));
		if (snprintf(abs, sizeof abs, "%s/%s", cwd, o->data) >= (int)sizeof abs)
			return cli_fail("--data path too long");
		memcpy(o->data, abs, sizeof abs);
	}
	if (!o->config_given)
		snprintf(o->config_path, sizeof o->config_path, "%.*s/tandem.ini", PATH_MAX - 16, o->data);
	return -1;
}

/* The [deployment] user lines of a generated config (see privdrop.h). */
static void user_lines(char *out, size_t cap, const char *data, const privdrop *p, int reachable)
{
	static const char what[] =
		"; started as root, each process drops to this user once it has bound its\n"
		"; ports and read its keys (empty: stays root; absent: tandem if it exists)\n";
	if (p && p->drop && reachable)
		snprintf(out, cap, "%suser = %s\n", what, p->user);
	else if (p && p->drop)
		snprintf(out, cap,
			 "%s; %.200s is not reachable by user %s (a directory on the way may not be\n"
			 "; searched by it): the processes stay root. Move the deployment, or open\n"
			 "; the way (chmod o+x), and set user = %s\n"
			 "user =\n",
			 what, data, p->user, p->user);
	else
		snprintf(out, cap, "%s; user = " PRIVDROP_DEFAULT_USER "\n", what);
}

/* Where each component listens: its own loopback address by default (so
 * that DNS can answer one address per region, and network rules can tell
 * them apart), or one address for all (--address). */
typedef struct up_addresses {
	char eu[64], us[64], witness[64], dns[2][64], edge[2][64];
	bool one;  /* --address: every component on it */
} up_addresses;

static void addresses_for(const up_options *o, up_addresses *a)
{
	const char *one = o->address[0] ? o->address : NULL;
	snprintf(a->eu, sizeof a->eu, "%s", one ? one : "127.0.0.2");
	snprintf(a->us, sizeof a->us, "%s", one ? one : "127.0.0.3");
	snprintf(a->witness, sizeof a->witness, "%s", one ? one : "127.0.0.4");
	snprintf(a->dns[0], sizeof a->dns[0], "%s", one ? one : "127.0.0.5");
	snprintf(a->dns[1], sizeof a->dns[1], "%s", one ? one : "127.0.0.6");
	snprintf(a->edge[0], sizeof a->edge[0], "%s", one ? one : "127.0.0.7");
	snprintf(a->edge[1], sizeof a->edge[1], "%s", one ? one : "127.0.0.8");
	a->one = one != NULL;
}

/* The generated config: relative paths, so DIR can move. user: the
 * [deployment] user lines. */
static void generated_config(buf *b, int port_base, const char *user, const up_addresses *a)
{
	char proxies[160];
	/* with --address the edges share the clients' address: trusting it
	 * would let any local client name its own address, so none is */
	snprintf(proxies, sizeof proxies, "%s%s%s", a->one ? "" : a->edge[0], a->one ? "" : ", ", a->one ? "" : a->edge[1]);
	buf_printf(b,
		   "; tandem deployment config, generated by `tandem up`.\n"
		   "; Every process of the deployment reads this one file. Relative paths\n"
		   "; are relative to this file's directory. Check: tandem config check FILE\n"
		   "\n"
		   "[deployment]\n"
		   "name = local\n"
		   "data_dir = data\n"
		   "secrets_file = secrets.ini\n"
		   "ca_file = certs/ca.pem\n"
		   "certs_dir = certs\n"
		   "log_level = info\n"
		   "%s"
		   "\n"
		   "[limits]\n"
		   "max_header_bytes = 16384\n"
		   "max_headers = 100\n"
		   "max_body_bytes = 1048576\n"
		   "header_timeout_ms = 10000\n"
		   "idle_timeout_ms = 60000\n"
		   "max_connections = 10000\n"
		   "shutdown_timeout_ms = 10000\n"
		   "write_batch_max = 512\n"
		   "write_queue_max = 10000\n"
		   "; bounded work and memory (docs/SECURITY.md)\n"
		   "query_timeout_ms = 2000\n"
		   "query_max_scan_rows = 200000\n"
		   "page_max_bytes = 4194304\n"
		   "query_threads = 2\n"
		   "query_queue_max = 1024\n"
		   "max_unsent_bytes = 8388608\n"
		   "write_timeout_ms = 10000\n"
		   "max_buffered_bytes = 134217728\n"
		   "body_timeout_ms = 30000\n"
		   "max_connections_per_address = 256\n"
		   "max_url_bytes = 8192\n"
		   "\n"
		   "[auth]\n"
		   "access_token_ttl = 900\n"
		   "refresh_token_ttl = 2592000\n"
		   "argon2_t_cost = 2\n"
		   "argon2_m_cost_kib = 19456\n"
		   "argon2_parallelism = 1\n"
		   "login_max_failures_account = 5\n"
		   "login_max_failures_address = 20\n"
		   "login_window = 900\n"
		   "idempotency_ttl = 86400\n"
		   "hash_threads = 2\n"
		   "signup_max_per_address = 10\n"
		   "signup_window = 3600\n"
		   "login_max_in_flight_account = 2\n"
		   "login_max_in_flight_address = 8\n"
		   "; a secondary cut off from the primary this long refuses tokens (0: never)\n"
		   "auth_max_staleness_s = 30\n"
		   "\n"
		   "[api]\n"
		   "; origins allowed to call the API from a browser (\"*\": any, for development)\n"
		   "cors_origins =\n"
		   "; the edges: a request from them is taken to come from its Forwarded: for=\n"
		   "; address (per-address limits); from anyone else Forwarded is ignored\n"
		   "trusted_proxies = %s\n"
		   "\n"
		   "[replication]\n"
		   "; defaults per request (X-Tandem-Consistency, X-Tandem-Durability override them)\n"
		   "read_consistency = session\n"
		   "write_durability = local\n"
		   "; the primary slows writes down while the secondary lags more than this (<= 30 s)\n"
		   "rpo_budget_ms = 10000\n"
		   "backpressure_wait_ms = 2000\n"
		   "min_lsn_wait_ms = 5000\n"
		   "global_ack_wait_ms = 5000\n"
		   "heartbeat_ms = 250\n"
		   "reconnect_min_ms = 100\n"
		   "reconnect_max_ms = 2000\n"
		   "log_max_bytes = 268435456\n"
		   "log_max_age = 3600\n"
		   "; artificial one-way delay on the link, for tests and benchmarks only\n"
		   "link_delay_ms = 0\n"
		   "\n"
		   "[failover]\n"
		   "; leases and elections (docs/FAILOVER.md); tandem config check refuses unsafe timings\n"
		   "lease_ms = 4000\n"
		   "renew_ms = 1000\n"
		   "election_timeout_ms = 3000\n"
		   "max_drift_ppm = 10000\n"
		   "lease_margin_ms = 200\n"
		   "grant_margin_ms = 200\n"
		   "vote_retry_ms = 250\n"
		   "switchover_timeout_ms = 5000\n"
		   "; a primary that heard from no other voter this long refuses writes (503 no_quorum)\n"
		   "isolation_ms = 1000\n"
		   "\n"
		   "[drill]\n"
		   "rpo_budget_s = 30\n"
		   "rto_budget_s = 60\n"
		   "\n"
		   "; the S3 API of each region (s3_listen; docs/OBJECTS.md)\n"
		   "[objects]\n"
		   "max_put_bytes = 16777216\n"
		   "max_key_bytes = 1024\n"
		   "max_metadata_bytes = 2048\n"
		   "; multipart: a completed object's size, uploads in progress per region, and how long\n"
		   "; an upload may stay unfinished before a sweep aborts it (7 days)\n"
		   "max_object_bytes = 5368709120\n"
		   "max_uploads = 10000\n"
		   "multipart_expiry_s = 604800\n"
		   "; replication: compare every bucket with the other region this often and repair\n"
		   "; what differs (seconds; 0: never)\n"
		   "anti_entropy_s = 600\n"
		   "; a deleted version's tombstone is kept this long: a region down for longer could bring\n"
		   "; back what was deleted meanwhile (days)\n"
		   "tombstone_days = 30\n"
		   "; virtual-host style requests BUCKET.domain (empty: path-style only)\n"
		   "domain =\n"
		   "\n"
		   "; the mobile files API (POST /v1/files): one file's size, 10 MiB\n"
		   "[files]\n"
		   "max_file_bytes = 10485760\n"
		   "\n"
		   "; the third voter, meant for a third location\n"
		   "[witness]\n"
		   "listen = %s:%d\n"
		   "tls_cert = certs/witness.pem\n"
		   "tls_key = certs/witness.key\n"
		   "\n"
		   "; roles are the initial ones: afterwards they live in each region's state\n"
		   "[region eu]\n"
		   "role = primary\n"
		   "api_listen = %s:%d\n"
		   "link_listen = %s:%d\n"
		   "metrics_listen = %s:%d\n"
		   "s3_listen = %s:%d\n"
		   "tls_cert = certs/eu.pem\n"
		   "tls_key = certs/eu.key\n"
		   "\n"
		   "[region us]\n"
		   "role = secondary\n"
		   "api_listen = %s:%d\n"
		   "link_listen = %s:%d\n"
		   "metrics_listen = %s:%d\n"
		   "s3_listen = %s:%d\n"
		   "tls_cert = certs/us.pem\n"
		   "tls_key = certs/us.key\n",
		   user, proxies, a->witness, port_base + 4, a->eu, port_base, a->eu, port_base + 2, a->eu, port_base + 5, a->eu,
		   port_base + 7, a->us, port_base + 1, a->us, port_base + 3, a->us, port_base + 6, a->us, port_base + 8);
	/* the deployment's DNS (docs/DNS.md): two instances, the NS set */
	buf_printf(b,
		   "\n"
		   "; the deployment's authoritative DNS (docs/DNS.md): api.%s answers the\n"
		   "; nearest healthy region (latency routing, health checks of each /readyz)\n"
		   "[zone %s]\n"
		   "soa = ns1 hostmaster 1 3600 600 86400 30\n"
		   "record = @ NS ns1\n"
		   "record = @ NS ns2\n"
		   "record = ns1 A %s\n"
		   "record = ns2 A %s\n"
		   "route = api latency eu=%s us=%s ttl=10\n"
		   "; the app's name: the edges (its points of presence, [edge ...] below)\n"
		   "record = app A %s\n"
		   "%s%s%s"
		   "record = s3.app CNAME app\n"
		   "; signed online (ECDSA P-256 keys in the secrets file's [dnssec]; `tandem dns ds`\n"
		   "; prints the DS for the parent zone)\n"
		   "dnssec = on\n",
		   UP_ZONE, UP_ZONE, a->dns[0], a->dns[1], a->eu, a->us, a->edge[0], a->one ? "" : "record = app A ",
		   a->one ? "" : a->edge[1], a->one ? "" : "\n");
	for (int i = 0; i < 2; i++)
		buf_printf(b,
			   "\n"
			   "[dns ns%d]\n"
			   "listen = %s:%d\n"
			   "threads = 2\n"
			   "; /metrics and /health (what `tandem status` shows), plain HTTP\n"
			   "metrics_listen = %s:%d\n"
			   "; clients (their subnet, or their resolver) -> regions in order of preference\n"
			   "latency_map = 10.1.0.0/16 eu us, 127.0.0.2/32 eu us, 10.2.0.0/16 us eu, 127.0.0.3/32 us eu\n"
			   "; the edges: the EU point of presence (.7) nearer eu, the US one (.8) nearer us\n"
			   "latency_map = 127.0.0.7/32 eu us, 127.0.0.8/32 us eu\n"
			   "latency_map = default eu us\n"
			   "health_interval_ms = 1000\n"
			   "health_timeout_ms = 1000\n"
			   "health_failures = 3\n"
			   "health_recoveries = 2\n",
			   i + 1, a->dns[i], port_base + 9 + i, a->dns[i], port_base + 11 + i);
	/* the edges (docs/EDGE.md): both list both regions; each asks the DNS
	 * which is nearer to it (ECS: its own address) and tries that one first */
	static const char *const pops[2][2] = {{"eu-pop", "EU"}, {"us-pop", "US"}};
	for (int i = 0; i < 2; i++)
		buf_printf(b,
			   "\n"
			   "; the %s point of presence: TLS for app.%s, a cache, failover inside a request\n"
			   "[edge %s]\n"
			   "listen = %s:%d\n"
			   "server_names = app.%s s3.app.%s\n"
			   "tls_cert = certs/%s.pem\n"
			   "tls_key = certs/%s.key\n"
			   "origins = eu=https://%s:%d, us=https://%s:%d\n"
			   "; the object store: s3.app.%s (path-style) goes to the regions' S3 endpoints\n"
			   "host_origins = s3.app.%s eu=https://%s:%d, us=https://%s:%d\n"
			   "resolve = api.%s\n"
			   "resolvers = %s:%d, %s:%d\n"
			   "connect_timeout_ms = 1000\n"
			   "response_timeout_ms = 10000\n"
			   "probe_interval_ms = 1000\n"
			   "cache_bytes = 67108864\n",
			   pops[i][1], UP_ZONE, pops[i][0], a->edge[i], port_base + 13 + (a->one ? i : 0), UP_ZONE, UP_ZONE,
			   pops[i][0], pops[i][0], a->eu, port_base, a->us, port_base + 1, UP_ZONE, UP_ZONE, a->eu,
			   port_base + 7, a->us, port_base + 8, UP_ZONE, a->dns[0],
			   port_base + 9, a->dns[1], port_base + 10);
}

/*
 * As root, for a new config: the user the processes will drop to, created
 * if missing (where useradd exists), and whether it can reach DIR; DIR is
 * made mode 0711 when created here, so that it can pass to its data (the
 * files in DIR stay root's: the config, secrets and keys, read before the
 * drop). Fills the config's user lines.
 */
static void plan_user(const up_options *o, bool dir_existed, char *lines, size_t cap)
{
	char err[512] = "";
	privdrop p;
	if (geteuid() != 0) { /* nothing to drop: the default, commented */
		user_lines(lines, cap, o->data, NULL, 0);
		return;
	}
	if (privdrop_create_user(PRIVDROP_DEFAULT_USER, err, sizeof err) < 0 ||
	    privdrop_plan("", false, &p, err, sizeof err) != 0 || !p.drop) {
		fprintf(stderr, "tandem: note: %s; the processes will run as root\n", err[0] ? err : p.why);
		user_lines(lines, cap, o->data, NULL, 0);
		return;
	}
	if (!dir_existed && chmod(o->data, 0711) != 0)
		fprintf(stderr, "tandem: note: %s: chmod 0711: %s\n", o->data, strerror(errno));
	int reachable = privdrop_can_reach(&p, o->data) == 1;
	if (!reachable)
		fprintf(stderr, "tandem: note: %s is not reachable by user %s: the config says user = "
				"(empty), the processes will stay root\n", o->data, p.user);
	user_lines(lines, cap, o->data, &p, reachable);
}

/* Create what is missing under o->data. 0, or 1 after printing why. */
static int ensure_deployment(const up_options *o, config *cfg)
{
	bool dir_existed = access(o->data, F_OK) == 0;
	if (util_mkdirs(o->data, 0700) != 0)
		return cli_fail("%s: cannot create: %s", o->data, strerror(errno));
	if (!o->config_given && access(o->config_path, F_OK) != 0) {
		char user[1024];
		plan_user(o, dir_existed, user, sizeof user);
		buf b;
		buf_init(&b, 65536);
		up_addresses addrs;
		addresses_for(o, &addrs);
		generated_config(&b, o->port_base, user, &addrs);
		int rc = util_write_file(o->config_path, b.data, b.len, 0644);
		buf_free(&b);
		if (rc != 0)
			return cli_fail("%s: cannot write: %s", o->config_path, strerror(errno));
		fprintf(stderr, "tandem: created %s\n", o->config_path);
	} else if (o->port_base_given && !o->config_given) {
		fprintf(stderr, "tandem: %s exists, --port-base ignored (remove the file to regenerate it)\n",
			o->config_path);
	}
	char err[4096];
	if (cli_load_config(o->config_path, cfg) != 0)
		return 1;
	if (access(cfg->secrets_file, F_OK) != 0) {
		if (secrets_create(cfg->secrets_file) != 0)
			return cli_fail("%s: cannot create: %s", cfg->secrets_file, strerror(errno));
		fprintf(stderr, "tandem: created %s (mode 0600)\n", cfg->secrets_file);
	}
	if (cli_dnssec_init_keys(cfg->path, cfg->secrets_file) != 0)
		return 1;
	/* a development S3 key pair (endpoints.json shows it) */
	char id[S3KEYS_ID_LEN + 12], secret[S3KEYS_SECRET_LEN + 24];
	int krc = s3keys_find_tenant(cfg->secrets_file, DEV_S3_TENANT, id, secret, err, sizeof err);
	if (krc == ERR_NOTFOUND)
		krc = s3keys_create(cfg->secrets_file, DEV_S3_TENANT, id, secret, err, sizeof err);
	memset(secret, 0, sizeof secret);
	if (krc != 0)
		return cli_fail("%s", err);
	if (cli_ensure_certs(cfg, err, sizeof err) != 0)
		return cli_fail("%s", err);
	return 0;
}

/* Add "IP:host" of hostport to sans (once; not 127.0.0.1, which every
 * certificate names, nor a name, which is not an address). */
static void san_ip(char *sans, size_t cap, const char *hostport)
{
	char host[64], entry[80];
	int port;
	unsigned char a[16];
	if (!hostport[0] || util_split_hostport(hostport, host, sizeof host, &port) != 0 ||
	    strcmp(host, "127.0.0.1") == 0 ||
	    (inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1))
		return;
	snprintf(entry, sizeof entry, "IP:%s", host);
	if (strstr(sans, entry))
		return;
	size_t n = strlen(sans);
	snprintf(sans + n, cap - n, "%s%s", n ? "," : "", entry);
}

/* The certificate of an edge whose tls_cert and tls_key are
 * CERTS_DIR/NAME.pem and .key (an operator's own certificate elsewhere is
 * left alone): NAME into name; its names (server_names, the listen
 * address) into sans. false when it is not one of ours. */
static bool edge_cert(const config *cfg, const edge_conf *e, char *name, size_t namecap, char *sans, size_t cap)
{
	size_t dl = strlen(cfg->certs_dir);
	const char *c = e->tls_cert, *k = e->tls_key;
	if (!e->tls || strncmp(c, cfg->certs_dir, dl) != 0 || c[dl] != '/' || strncmp(k, cfg->certs_dir, dl) != 0 ||
	    k[dl] != '/')
		return false;
	const char *stem = c + dl + 1;
	size_t sl = strlen(stem);
	if (sl < 5 || sl >= namecap + 4 || strcmp(stem + sl - 4, ".pem") != 0 || strchr(stem, '/') ||
	    strncmp(k + dl + 1, stem, sl - 4) != 0 || strcmp(k + dl + 1 + sl - 4, ".key") != 0)
		return false;
	snprintf(name, namecap, "%.*s", (int)(sl - 4), stem);
	sans[0] = '\0';
	char copy[sizeof e->server_names];
	snprintf(copy, sizeof copy, "%s", e->server_names);
	for (char *save = NULL, *t = strtok_r(copy, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
		size_t n = strlen(sans);
		snprintf(sans + n, cap - n, "%sDNS:%s", n ? "," : "", t);
	}
	san_ip(sans, cap, e->listen);
	return true;
}

int cli_ensure_certs(const config *cfg, char *err, size_t errcap)
{
	static char sans[CONFIG_MAX_REGIONS + 2 + EDGECONF_MAX_EDGES][1024];
	static char edge_names[EDGECONF_MAX_EDGES][40];
	const char *names[CONFIG_MAX_REGIONS + 2 + EDGECONF_MAX_EDGES];
	const char *san_of[CONFIG_MAX_REGIONS + 2 + EDGECONF_MAX_EDGES];
	static dns_conf dc;
	/* routed names answer with the regions' addresses: their certificates
	 * name them, so that a client connecting to what DNS answered verifies
	 * (a config whose DNS part does not load: `tandem dns` refuses it with
	 * the reason; certificates are made without those names meanwhile) */
	char dnserr[256];
	bool have_dns = dnsconf_load(cfg->path, &dc, dnserr, sizeof dnserr) == 0;
	size_t count = 0;
	for (int i = 0; i < cfg->region_count; i++) {
		const config_region *r = &cfg->regions[i];
		char *s = sans[count];
		s[0] = '\0';
		san_ip(s, sizeof sans[0], r->api_listen);
		san_ip(s, sizeof sans[0], r->link_listen);
		san_ip(s, sizeof sans[0], r->metrics_listen);
		san_ip(s, sizeof sans[0], r->s3_listen);
		for (int z = 0; have_dns && z < dc.nzones; z++)
			for (size_t k = 0; k < dns_zone_routes(dc.zones[z]); k++) {
				const dns_route *route;
				const dns_name *owner = dns_zone_route(dc.zones[z], k, &route);
				bool ours = false;
				for (int j = 0; j < route->n; j++)
					ours |= strcmp(dc.regions.name[route->r[j].region], r->name) == 0;
				char text[4 * DNS_NAME_MAX + 2], entry[sizeof text + 8];
				dns_name_to_text(owner, text, sizeof text);
				size_t tl = strlen(text), n = strlen(s);
				if (tl > 1)
					text[tl - 1] = '\0'; /* no final dot */
				for (char *c = text; *c; c++)
					*c = (char)tolower((unsigned char)*c);
				int el = snprintf(entry, sizeof entry, "%sDNS:%s", n ? "," : "", text);
				if (ours && el > 0 && n + (size_t)el < sizeof sans[0]) /* (else left out: 1 KiB of names) */
					memcpy(s + n, entry, (size_t)el + 1);
			}
		names[count] = r->name;
		san_of[count++] = s;
	}
	names[count] = "admin"; /* the command line's client certificate */
	san_of[count++] = NULL;
	if (cfg->witness.listen[0]) {
		sans[count][0] = '\0';
		san_ip(sans[count], sizeof sans[0], cfg->witness.listen);
		names[count] = "witness";
		san_of[count] = sans[count];
		count++;
	}
	if (have_dns)
		dnsconf_free(&dc);
	/* the edges' certificates: their server names (the config's edges
	 * being wrong is `tandem edge`'s and `config check`'s to say) */
	static edge_confs ecs;
	char ecerr[256];
	if (edgeconf_load(cfg->path, &ecs, ecerr, sizeof ecerr) == 0)
		for (int i = 0; i < ecs.count; i++)
			if (edge_cert(cfg, &ecs.edges[i], edge_names[i], sizeof edge_names[i], sans[count],
				      sizeof sans[0])) {
				names[count] = edge_names[i];
				san_of[count] = sans[count];
				count++;
			}
	return certs_ensure_sans(cfg->certs_dir, names, san_of, count, err, errcap);
}

int cmd_init(int argc, char **argv)
{
	up_options o;
	int rc = parse_options(argc, argv, &o, 0, usage_init);
	if (rc >= 0)
		return rc;
	static config cfg;
	if (ensure_deployment(&o, &cfg) != 0)
		return 1;
	printf("%s\n", o.config_path);
	return 0;
}

/* --- supervision --- */

typedef enum child_kind { CHILD_REGION, CHILD_WITNESS, CHILD_DNS, CHILD_EDGE } child_kind;

typedef struct child {
	child_kind kind;
	char name[64];
	pid_t pid;
	int alive;
} child;

static const char *const kind_names[] = {"region", "witness", "dns", "edge"};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	stop_requested = sig;
}

/* Start `tandem region` for region name, `tandem witness`, or `tandem
 * dns` for server name; wait for its "ready" line. */
static int start_child(const config *cfg, child_kind kind, const char *name, child *c)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return cli_fail("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		return cli_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		char fdtext[16];
		int wfd = dup(fds[1]); /* without O_CLOEXEC */
		snprintf(fdtext, sizeof fdtext, "%d", wfd);
		setenv("TANDEM_READY_FD", fdtext, 1);
		signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the parent, which stops us in order */
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n <= 0)
			_exit(127);
		self[n] = '\0';
		if (kind == CHILD_REGION)
			execl(self, "tandem", "region", "--config", cfg->path, "--region", name, (char *)NULL);
		else if (kind == CHILD_DNS)
			execl(self, "tandem", "dns", "--config", cfg->path, "--name", name, (char *)NULL);
		else if (kind == CHILD_EDGE)
			execl(self, "tandem", "edge", "--config", cfg->path, "--name", name, (char *)NULL);
		else
			execl(self, "tandem", "witness", "--config", cfg->path, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	c->kind = kind;
	snprintf(c->name, sizeof c->name, "%s", kind == CHILD_WITNESS ? "witness" : name);
	c->pid = pid;
	c->alive = 1;
	struct pollfd p = {.fd = fds[0], .events = POLLIN};
	char line[16] = "";
	int n = 0;
	int rc = poll(&p, 1, READY_TIMEOUT_MS);
	if (rc > 0)
		n = (int)read(fds[0], line, sizeof line - 1);
	close(fds[0]);
	if (n <= 0 || strncmp(line, "ready", 5) != 0) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid)
			c->alive = 0;
		return cli_fail("%s %s did not start (see its error above)", kind == CHILD_WITNESS ? "the" : kind_names[kind],
				c->name);
	}
	return 0;
}

/* The region an edge prefers: the first the deployment's DNS latency map
 * gives for its ECS subnet (the first server's map). "" when not known. */
static void edge_preferred_region(const dns_conf *dc, const edge_conf *e, char *out, size_t cap)
{
	out[0] = '\0';
	if (!e->resolve[0] || e->ecs_prefix < 0 || dc->nservers < 1 || !dc->servers[0].latency_map)
		return;
	dns_prefs prefs;
	dns_latency_lookup(dc->servers[0].latency_map, e->ecs_family == 2 ? 6 : 4, e->ecs_addr, &prefs);
	if (prefs.n > 0 && prefs.region[0] < dc->regions.n)
		snprintf(out, cap, "%s", dc->regions.name[prefs.region[0]]);
}

static int write_endpoints(const up_options *o, const config *cfg, const dns_conf *dc, const edge_confs *ecs,
			   const child *children, int n)
{
	buf b;
	buf_init(&b, 65536);
	buf_adds(&b, "{\n  \"ca\": \"");
	buf_add_json_escaped(&b, cfg->ca_file, strlen(cfg->ca_file));
	buf_adds(&b, "\",\n  \"config\": \"");
	buf_add_json_escaped(&b, cfg->path, strlen(cfg->path));
	buf_adds(&b, "\",\n  \"regions\": {");
	int shown = 0;
	for (int i = 0; i < n; i++) {
		const config_region *r = config_region_find(cfg, children[i].name);
		if (!r)
			continue;
		buf_printf(&b, "%s\n    \"%s\": {\"api\": \"https://%s\", \"link\": \"%s\", ", shown++ ? "," : "",
			   r->name, r->api_listen, r->link_listen);
		/* where Prometheus scrapes this region (plain HTTP, loopback) */
		if (r->metrics_listen[0])
			buf_printf(&b, "\"metrics\": \"http://%s\", ", r->metrics_listen);
		else
			buf_adds(&b, "\"metrics\": null, ");
		if (r->s3_listen[0])
			buf_printf(&b, "\"s3\": \"https://%s\", ", r->s3_listen);
		buf_printf(&b, "\"pid\": %d}", (int)children[i].pid);
	}
	buf_adds(&b, "\n  }");
	{
		char id[S3KEYS_ID_LEN + 12], secret[S3KEYS_SECRET_LEN + 24], err[512];
		if (s3keys_find_tenant(cfg->secrets_file, DEV_S3_TENANT, id, secret, err, sizeof err) == 0)
			buf_printf(&b, ",\n  \"s3_keys\": {\"access_key_id\": \"%s\", \"secret_access_key\": \"%s\"}",
				   id, secret);
		memset(secret, 0, sizeof secret);
	}
	for (int i = 0; i < n; i++)
		if (children[i].kind == CHILD_WITNESS)
			buf_printf(&b, ",\n  \"witness\": {\"addr\": \"%s\", \"pid\": %d}", cfg->witness.listen,
				   (int)children[i].pid);
	/* the DNS instances (the NS set) and the zone they serve */
	bool any_dns = false;
	for (int i = 0; i < n; i++) {
		const dns_server_conf *sc = children[i].kind == CHILD_DNS ? dnsconf_server(dc, children[i].name) : NULL;
		char host[64];
		int port;
		if (!sc || util_split_hostport(sc->listen[0], host, sizeof host, &port) != 0)
			continue;
		buf_printf(&b, "%s\n    \"%s\": {\"address\": \"%s\", \"port\": %d, ", any_dns ? "," : ",\n  \"dns\": {",
			   sc->name, host, port);
		if (sc->metrics_listen[0])
			buf_printf(&b, "\"metrics\": \"http://%s\", ", sc->metrics_listen);
		buf_printf(&b, "\"pid\": %d}", (int)children[i].pid);
		any_dns = true;
	}
	if (any_dns)
		buf_adds(&b, "\n  }");
	/* the edges: what a client uses (https://NAME:PORT, NAME resolving to
	 * the edge's address), and the region it prefers (its first origin once
	 * resolved: the DNS's latency map for its address) */
	bool any_edge = false;
	for (int i = 0; i < n; i++) {
		const edge_conf *e = children[i].kind == CHILD_EDGE ? edgeconf_find(ecs, children[i].name) : NULL;
		char host[64], first[64] = "", region[32] = "";
		int port;
		if (!e || util_split_hostport(e->listen, host, sizeof host, &port) != 0)
			continue;
		sscanf(e->server_names, "%63s", first);
		edge_preferred_region(dc, e, region, sizeof region);
		buf_printf(&b, "%s\n    \"%s\": {\"url\": \"%s://%s:%d\", \"address\": \"%s\", \"port\": %d, ",
			   any_edge ? "," : ",\n  \"edges\": {", e->name, e->tls ? "https" : "http", first[0] ? first : host,
			   port, host, port);
		if (region[0])
			buf_printf(&b, "\"region\": \"%s\", ", region);
		buf_printf(&b, "\"pid\": %d}", (int)children[i].pid);
		any_edge = true;
	}
	if (any_edge)
		buf_adds(&b, "\n  }");
	if (dc->nzones > 0) {
		char zone[4 * DNS_NAME_MAX + 2];
		dns_name_to_text(dns_zone_origin(dc->zones[0]), zone, sizeof zone);
		size_t zl = strlen(zone);
		if (zl > 1)
			zone[zl - 1] = '\0'; /* "tandem.test", as users write it */
		buf_adds(&b, ",\n  \"zone\": \"");
		buf_add_json_escaped(&b, zone, strlen(zone));
		buf_adds(&b, "\"");
	}
	buf_adds(&b, "\n}\n");
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%.*s/endpoints.json", PATH_MAX - 32, o->data);
	int rc = util_write_file(path, b.data, b.len, 0600); /* it holds the development S3 secret */
	buf_free(&b);
	if (rc != 0)
		return cli_fail("%s: cannot write: %s", path, strerror(errno));
	return 0;
}

static void stop_children(child *children, int n)
{
	for (int i = 0; i < n; i++)
		if (children[i].alive)
			kill(children[i].pid, SIGTERM);
	/* wait up to 20 s for graceful exits, then kill */
	for (int waited = 0; waited < 200; waited++) {
		int left = 0;
		for (int i = 0; i < n; i++) {
			if (!children[i].alive)
				continue;
			int status;
			if (waitpid(children[i].pid, &status, WNOHANG) == children[i].pid)
				children[i].alive = 0;
			else
				left++;
		}
		if (!left)
			return;
		usleep(100000);
	}
	for (int i = 0; i < n; i++)
		if (children[i].alive) {
			fprintf(stderr, "tandem: %s did not stop in time; killing it\n", children[i].name);
			kill(children[i].pid, SIGKILL);
			waitpid(children[i].pid, NULL, 0);
		}
}

int cmd_up(int argc, char **argv)
{
	up_options o;
	int rc = parse_options(argc, argv, &o, 1, usage_up);
	if (rc >= 0)
		return rc;
	if (o.print_config) {
		if (access(o.config_path, F_OK) == 0) {
			size_t len;
			char *text = util_read_file(o.config_path, 1 << 20, &len);
			if (!text)
				return cli_fail("%s: cannot read: %s", o.config_path, strerror(errno));
			fwrite(text, 1, len, stdout);
			free(text);
		} else {
			char user[1024];
			user_lines(user, sizeof user, o.data, NULL, 0);
			buf b;
			buf_init(&b, 65536);
			up_addresses addrs;
			addresses_for(&o, &addrs);
			generated_config(&b, o.port_base, user, &addrs);
			fwrite(b.data, 1, b.len, stdout);
			buf_free(&b);
		}
		return 0;
	}
	static config cfg;
	if (ensure_deployment(&o, &cfg) != 0)
		return 1;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	static dns_conf dc;
	char dnserr[4096];
	if (dnsconf_load(cfg.path, &dc, dnserr, sizeof dnserr) != 0) {
		fprintf(stderr, "%s", dnserr);
		return cli_fail("%s: the DNS sections are not valid", cfg.path);
	}
	static edge_confs ecs;
	char edgeerr[4096];
	if (edgeconf_load(cfg.path, &ecs, edgeerr, sizeof edgeerr) != 0) {
		fprintf(stderr, "%s", edgeerr);
		dnsconf_free(&dc);
		return cli_fail("%s: the [edge] sections are not valid", cfg.path);
	}
	child children[CONFIG_MAX_REGIONS + 1 + DNSCONF_MAX_SERVERS + EDGECONF_MAX_EDGES];
	memset(children, 0, sizeof children);
	int n = 0;
	if (cfg.witness.listen[0]) { /* first: the regions' first lease needs a majority */
		if (start_child(&cfg, CHILD_WITNESS, NULL, &children[n]) != 0) {
			n++;
			stop_children(children, n);
			dnsconf_free(&dc);
			return 1;
		}
		n++;
	}
	for (int i = 0; i < cfg.region_count + dc.nservers + ecs.count; i++) {
		/* the regions, then the DNS instances (their first checks find
		 * the regions up), then the edges (their first resolution finds
		 * the DNS up) */
		child_kind kind = i < cfg.region_count			   ? CHILD_REGION
				  : i < cfg.region_count + dc.nservers ? CHILD_DNS
								       : CHILD_EDGE;
		const char *name = kind == CHILD_REGION ? cfg.regions[i].name
				   : kind == CHILD_DNS	    ? dc.servers[i - cfg.region_count].name
							    : ecs.edges[i - cfg.region_count - dc.nservers].name;
		if (start_child(&cfg, kind, name, &children[n]) != 0) {
			n++;
			stop_children(children, n);
			dnsconf_free(&dc);
			return 1;
		}
		n++;
	}
	if (write_endpoints(&o, &cfg, &dc, &ecs, children, n) != 0) {
		stop_children(children, n);
		dnsconf_free(&dc);
		return 1;
	}
	printf("tandem is up (%s)\n", o.data);
	for (int i = 0; i < n; i++) {
		const config_region *r = config_region_find(&cfg, children[i].name);
		const dns_server_conf *sc = dnsconf_server(&dc, children[i].name);
		if (children[i].kind == CHILD_REGION && r)
			printf("  region %-4s https://%s  metrics %s%s  (pid %d)\n", children[i].name,
			       r->api_listen, r->metrics_listen[0] ? "http://" : "",
			       r->metrics_listen[0] ? r->metrics_listen : "(none)", (int)children[i].pid);
		else if (children[i].kind == CHILD_DNS && sc)
			printf("  dns    %-4s %s (UDP, TCP)  metrics %s%s  (pid %d)\n", children[i].name, sc->listen[0],
			       sc->metrics_listen[0] ? "http://" : "", sc->metrics_listen[0] ? sc->metrics_listen : "(none)",
			       (int)children[i].pid);
		else if (children[i].kind == CHILD_EDGE && edgeconf_find(&ecs, children[i].name)) {
			const edge_conf *e = edgeconf_find(&ecs, children[i].name);
			char first[64] = "";
			sscanf(e->server_names, "%63s", first);
			printf("  edge   %-6s %s://%s  (%s%s%s; pid %d)\n", e->name, e->tls ? "https" : "http", e->listen,
			       first[0] ? "serving " : "", first, first[0] ? ", TLS" : "plain", (int)children[i].pid);
		} else
			printf("  witness     %s  (pid %d)\n", cfg.witness.listen, (int)children[i].pid);
	}
	printf("  CA          %s\n  endpoints   %s/endpoints.json\nCtrl-C stops everything.\n",
	       cfg.ca_file, o.data);
	fflush(stdout);

	while (!stop_requested) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECHILD) { /* every child is gone: wait for the stop signal */
				pause();
				continue;
			}
			break;
		}
		for (int i = 0; i < n; i++) {
			if (children[i].pid != pid)
				continue;
			children[i].alive = 0;
			const char *kind = children[i].kind == CHILD_WITNESS ? "" : kind_names[children[i].kind];
			const char *space = children[i].kind == CHILD_WITNESS ? "" : " ";
			if (WIFSIGNALED(status))
				fprintf(stderr, "tandem: %s%s%s (pid %d) was killed by signal %d; not restarting it\n", kind,
					space, children[i].name, (int)pid, WTERMSIG(status));
			else
				fprintf(stderr, "tandem: %s%s%s (pid %d) exited with status %d; not restarting it\n", kind,
					space, children[i].name, (int)pid, WEXITSTATUS(status));
		}
	}
	fprintf(stderr, "tandem: stopping\n");
	stop_children(children, n);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%.*s/endpoints.json", PATH_MAX - 32, o.data);
	unlink(path);
	dnsconf_free(&dc);
	return 0;
}
