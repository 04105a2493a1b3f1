/*
 * config.c - load and validate the deployment's INI file; see config.h.
 *
 * libinih calls us once per name=value; to give line numbers for our own
 * semantic errors we feed it through ini_parse_stream() with a reader that
 * counts lines, so `line` is always the line being handled.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"

typedef struct config_reader {
	FILE *file;
	int line;
	config *c;
	buf *errors;
	int error_count;
	char dir[CONFIG_PATH_MAX]; /* directory of the config file */
	const char *path;
	config_region *region;     /* current [region X] section */
	char section[64];
	/* where each required key was seen, to report missing ones */
} config_reader;

static void config_error(config_reader *r, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void config_error(config_reader *r, int line, const char *fmt, ...)
{
	va_list ap;
	r->error_count++;
	if (r->error_count > 20)
		return;
	buf_printf(r->errors, "%s:%d: ", r->path, line);
	va_start(ap, fmt);
	buf_vprintf(r->errors, fmt, ap);
	va_end(ap);
	buf_addc(r->errors, '\n');
}

static char *config_read_line(char *str, int num, void *stream)
{
	config_reader *r = stream;
	char *s = fgets(str, num, r->file);
	if (s)
		r->line++;
	return s;
}

void config_defaults(config *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->name, sizeof c->name, "local");
	snprintf(c->log_level, sizeof c->log_level, "info");
	c->limits = (config_limits){
		.max_header_bytes = 16384,
		.max_headers = 100,
		.max_body_bytes = 1048576,
		.header_timeout_ms = 10000,
		.idle_timeout_ms = 60000,
		.max_connections = 10000,
		.shutdown_timeout_ms = 10000,
		.write_batch_max = 512,
		.write_queue_max = 10000,
		.query_timeout_ms = 2000,
		.query_max_scan_rows = 200000,
		.page_max_bytes = 4 * 1024 * 1024,
		.query_threads = 2,
		.query_queue_max = 1024,
		.max_unsent_bytes = 8 * 1024 * 1024,
		.write_timeout_ms = 10000,
		.max_buffered_bytes = 128 * 1024 * 1024,
		.body_timeout_ms = 30000,
		.max_connections_per_address = 256,
		.max_url_bytes = 8192,
	};
	c->auth = (config_auth){
		.access_token_ttl_s = 900,
		.refresh_token_ttl_s = 30 * 86400,
		.argon2_t_cost = 2,
		.argon2_m_cost_kib = 19456,
		.argon2_parallelism = 1,
		.login_max_failures_account = 5,
		.login_max_failures_address = 20,
		.login_window_s = 900,
		.idempotency_ttl_s = 86400,
		.hash_threads = 2,
		.signup_max_per_address = 10,
		.signup_window_s = 3600,
		.login_max_in_flight_account = 2,
		.login_max_in_flight_address = 8,
		.auth_max_staleness_s = 30,
	};
	c->replication = (config_replication){
		.read_consistency = "session",
		.write_durability = "local",
		.rpo_budget_ms = 10000,
		.backpressure_wait_ms = 2000,
		.min_lsn_wait_ms = 5000,
		.global_ack_wait_ms = 5000,
		.heartbeat_ms = 250,
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 2000,
		.log_max_bytes = 256LL * 1024 * 1024,
		.log_max_age_s = 3600,
		.link_delay_ms = 0,
		.forward_timeout_ms = 10000,
	};
	c->failover = (config_failover){
		.lease_ms = 4000,
		.renew_ms = 1000,
		.election_timeout_ms = 3000,
		.max_drift_ppm = 10000,
		.lease_margin_ms = 200,
		.grant_margin_ms = 200,
		.vote_retry_ms = 250,
		.switchover_timeout_ms = 5000,
		.isolation_ms = 1000,
	};
	c->drill = (config_drill){.rpo_budget_s = 30, .rto_budget_s = 60};
	c->objects = (config_objects){
		.max_put_bytes = 16 * 1024 * 1024,
		.max_key_bytes = 1024,
		.max_metadata_bytes = 2048,
		.max_object_bytes = 5368709120ULL,
		.max_uploads = 10000,
		.multipart_expiry_s = 7 * 86400,
		.anti_entropy_s = 600,
		.tombstone_days = 30,
	};
	c->files = (config_files){.max_file_bytes = 10 * 1024 * 1024}; /* the design record's 10 MB */
}

/* Resolve value against the config's directory into out. */
static int config_path(config_reader *r, const char *value, char *out)
{
	int n;
	if (value[0] == '/' || r->dir[0] == '\0')
		n = snprintf(out, CONFIG_PATH_MAX, "%s", value);
	else
		n = snprintf(out, CONFIG_PATH_MAX, "%s/%s", r->dir, value);
	if (n >= CONFIG_PATH_MAX) {
		config_error(r, r->line, "path too long (at most %d bytes)", CONFIG_PATH_MAX - 1);
		return ERR_CONFIG;
	}
	return 0;
}

static int config_int(config_reader *r, const char *name, const char *value, long long min,
		      long long max, long long *out)
{
	if (util_parse_int(value, min, max, out) != 0) {
		config_error(r, r->line, "%s must be an integer from %lld to %lld, not '%s'", name,
			     min, max, value);
		return ERR_CONFIG;
	}
	return 0;
}

static int config_string(config_reader *r, const char *name, const char *value, char *out,
			 size_t cap)
{
	if (strlen(value) >= cap) {
		config_error(r, r->line, "%s is too long (at most %zu bytes)", name, cap - 1);
		return ERR_CONFIG;
	}
	snprintf(out, cap, "%s", value);
	return 0;
}

/* A "HOST:PORT" value into out; an error naming the key otherwise. */
static void config_hostport(config_reader *r, const char *name, const char *value, char *out, size_t cap)
{
	char host[64];
	int port;
	if (util_split_hostport(value, host, sizeof host, &port) != 0)
		config_error(r, r->line, "%s must be HOST:PORT, not '%s'", name, value);
	else
		config_string(r, name, value, out, cap);
}

#define INT_KEY(key, field, min, max)                                               \
	if (strcmp(name, key) == 0) {                                               \
		long long v;                                                        \
		if (config_int(r, key, value, min, max, &v) == 0)                   \
			field = v;                                                  \
		return 1;                                                           \
	}

static int config_handle_limits(config_reader *r, const char *name, const char *value)
{
	config_limits *l = &r->c->limits;
	INT_KEY("max_header_bytes", l->max_header_bytes, 1024, 1048576);
	INT_KEY("max_headers", l->max_headers, 8, 10000);
	INT_KEY("max_body_bytes", l->max_body_bytes, 1024, 1073741824);
	INT_KEY("header_timeout_ms", l->header_timeout_ms, 100, 3600000);
	INT_KEY("idle_timeout_ms", l->idle_timeout_ms, 100, 86400000);
	INT_KEY("max_connections", l->max_connections, 1, 1000000);
	INT_KEY("shutdown_timeout_ms", l->shutdown_timeout_ms, 0, 600000);
	INT_KEY("write_batch_max", l->write_batch_max, 1, 100000);
	INT_KEY("write_queue_max", l->write_queue_max, 1, 10000000);
	INT_KEY("query_timeout_ms", l->query_timeout_ms, 10, 600000);
	INT_KEY("query_max_scan_rows", l->query_max_scan_rows, 100, 1000000000);
	INT_KEY("page_max_bytes", l->page_max_bytes, 65536, 256 * 1024 * 1024);
	INT_KEY("query_threads", l->query_threads, 1, 64);
	INT_KEY("query_queue_max", l->query_queue_max, 1, 1000000);
	INT_KEY("max_unsent_bytes", l->max_unsent_bytes, 65536, 1073741824);
	INT_KEY("write_timeout_ms", l->write_timeout_ms, 100, 3600000);
	INT_KEY("max_buffered_bytes", l->max_buffered_bytes, 1048576, 1LL << 40);
	INT_KEY("body_timeout_ms", l->body_timeout_ms, 100, 3600000);
	INT_KEY("max_connections_per_address", l->max_connections_per_address, 1, 1000000);
	INT_KEY("max_url_bytes", l->max_url_bytes, 256, 1048576);
	config_error(r, r->line, "unknown key '%s' in [limits]", name);
	return 1;
}

static int config_handle_auth(config_reader *r, const char *name, const char *value)
{
	config_auth *a = &r->c->auth;
	/* From 2 s, so that tests need not wait long for a token to expire: a
	 * short lifetime weakens nothing (a stolen token is good for less time),
	 * it costs refreshes, and the region warns under 60 s (docs/SECURITY.md).
	 * Not 1: exp is whole seconds, so a 1 s token may expire at once. */
	INT_KEY("access_token_ttl", a->access_token_ttl_s, 2, 86400);
	INT_KEY("refresh_token_ttl", a->refresh_token_ttl_s, 60, 365 * 86400);
	INT_KEY("argon2_t_cost", a->argon2_t_cost, 1, 100);
	INT_KEY("argon2_m_cost_kib", a->argon2_m_cost_kib, 8, 4194304);
	INT_KEY("argon2_parallelism", a->argon2_parallelism, 1, 64);
	INT_KEY("login_max_failures_account", a->login_max_failures_account, 1, 1000000);
	INT_KEY("login_max_failures_address", a->login_max_failures_address, 1, 1000000);
	INT_KEY("login_window", a->login_window_s, 1, 86400);
	INT_KEY("idempotency_ttl", a->idempotency_ttl_s, 86400, 365 * 86400);
	INT_KEY("hash_threads", a->hash_threads, 1, 64);
	INT_KEY("signup_max_per_address", a->signup_max_per_address, 1, 1000000);
	INT_KEY("signup_window", a->signup_window_s, 1, 86400);
	INT_KEY("login_max_in_flight_account", a->login_max_in_flight_account, 1, 1000);
	INT_KEY("login_max_in_flight_address", a->login_max_in_flight_address, 1, 100000);
	INT_KEY("auth_max_staleness_s", a->auth_max_staleness_s, 0, 86400);
	config_error(r, r->line, "unknown key '%s' in [auth]", name);
	return 1;
}

static int config_handle_api(config_reader *r, const char *name, const char *value)
{
	config_api *a = &r->c->api;
	if (strcmp(name, "cors_origins") == 0) {
		/* "*", or origins "scheme://host[:port]" separated by commas or spaces */
		bool ok = true;
		if (strcmp(value, "*") != 0) {
			char copy[sizeof a->cors_origins];
			snprintf(copy, sizeof copy, "%s", value);
			char *save = NULL;
			for (char *o = strtok_r(copy, ", \t", &save); o; o = strtok_r(NULL, ", \t", &save)) {
				if ((strncmp(o, "https://", 8) != 0 && strncmp(o, "http://", 7) != 0) ||
				    strchr(strstr(o, "//") + 2, '/') || strlen(strstr(o, "//") + 2) == 0) {
					config_error(r, r->line,
						     "cors_origins: '%s' is not an origin (scheme://host[:port], no path)", o);
					ok = false;
				}
			}
		}
		if (ok)
			config_string(r, name, value, a->cors_origins, sizeof a->cors_origins);
		return 1;
	}
	if (strcmp(name, "trusted_proxies") == 0) {
		char copy[1024];
		snprintf(copy, sizeof copy, "%s", value);
		a->nproxies = 0;
		char *save = NULL;
		for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
			if (a->nproxies == CONFIG_MAX_PROXIES) {
				config_error(r, r->line, "trusted_proxies: at most %d", CONFIG_MAX_PROXIES);
				break;
			}
			int i = a->nproxies;
			if (util_parse_cidr(t, a->proxy_addr[i], &a->proxy_family[i], &a->proxy_bits[i]) != 0)
				config_error(r, r->line, "trusted_proxies: '%s' is not an address or prefix", t);
			else
				a->nproxies++;
		}
		return 1;
	}
	config_error(r, r->line, "unknown key '%s' in [api]", name);
	return 1;
}

static int config_handle_replication(config_reader *r, const char *name, const char *value)
{
	config_replication *p = &r->c->replication;
	if (strcmp(name, "read_consistency") == 0) {
		if (strcmp(value, "eventual") && strcmp(value, "session") && strcmp(value, "global"))
			config_error(r, r->line, "read_consistency must be eventual, session or global, not '%s'",
				     value);
		else
			config_string(r, name, value, p->read_consistency, sizeof p->read_consistency);
		return 1;
	}
	if (strcmp(name, "write_durability") == 0) {
		if (strcmp(value, "local") && strcmp(value, "global"))
			config_error(r, r->line, "write_durability must be local or global, not '%s'", value);
		else
			config_string(r, name, value, p->write_durability, sizeof p->write_durability);
		return 1;
	}
	INT_KEY("rpo_budget_ms", p->rpo_budget_ms, 100, 30000);
	INT_KEY("backpressure_wait_ms", p->backpressure_wait_ms, 0, 60000);
	INT_KEY("min_lsn_wait_ms", p->min_lsn_wait_ms, 0, 60000);
	INT_KEY("global_ack_wait_ms", p->global_ack_wait_ms, 10, 60000);
	INT_KEY("heartbeat_ms", p->heartbeat_ms, 10, 10000);
	INT_KEY("reconnect_min_ms", p->reconnect_min_ms, 10, 60000);
	INT_KEY("reconnect_max_ms", p->reconnect_max_ms, 10, 600000);
	INT_KEY("log_max_bytes", p->log_max_bytes, 1024, 1LL << 40);
	INT_KEY("log_max_age", p->log_max_age_s, 1, 30 * 86400);
	INT_KEY("link_delay_ms", p->link_delay_ms, 0, 10000);
	INT_KEY("forward_timeout_ms", p->forward_timeout_ms, 100, 600000);
	config_error(r, r->line, "unknown key '%s' in [replication]", name);
	return 1;
}

static int config_handle_failover(config_reader *r, const char *name, const char *value)
{
	config_failover *f = &r->c->failover;
	if (!f->line)
		f->line = r->line;
	INT_KEY("lease_ms", f->lease_ms, 100, 600000);
	INT_KEY("renew_ms", f->renew_ms, 10, 600000);
	INT_KEY("election_timeout_ms", f->election_timeout_ms, 20, 600000);
	INT_KEY("max_drift_ppm", f->max_drift_ppm, 0, 100000);
	INT_KEY("lease_margin_ms", f->lease_margin_ms, 0, 60000);
	INT_KEY("grant_margin_ms", f->grant_margin_ms, 0, 60000);
	INT_KEY("vote_retry_ms", f->vote_retry_ms, 10, 60000);
	INT_KEY("switchover_timeout_ms", f->switchover_timeout_ms, 100, 600000);
	if (strcmp(name, "isolation_ms") == 0)
		f->isolation_line = r->line;
	INT_KEY("isolation_ms", f->isolation_ms, 0, 600000);
	config_error(r, r->line, "unknown key '%s' in [failover]", name);
	return 1;
}

static int config_handle_drill(config_reader *r, const char *name, const char *value)
{
	config_drill *d = &r->c->drill;
	INT_KEY("rpo_budget_s", d->rpo_budget_s, 0, 86400);
	INT_KEY("rto_budget_s", d->rto_budget_s, 1, 86400);
	config_error(r, r->line, "unknown key '%s' in [drill]", name);
	return 1;
}

static int config_handle_objects(config_reader *r, const char *name, const char *value)
{
	config_objects *o = &r->c->objects;
	INT_KEY("max_put_bytes", o->max_put_bytes, 1024, 5368709120LL);
	INT_KEY("max_key_bytes", o->max_key_bytes, 16, 1024);
	INT_KEY("max_metadata_bytes", o->max_metadata_bytes, 0, 8192);
	INT_KEY("max_object_bytes", o->max_object_bytes, 1024, 5497558138880LL); /* S3's 5 TiB */
	INT_KEY("max_uploads", o->max_uploads, 1, 1000000);
	INT_KEY("multipart_expiry_s", o->multipart_expiry_s, 1, 365 * 86400);
	INT_KEY("anti_entropy_s", o->anti_entropy_s, 0, 7 * 86400);
	INT_KEY("tombstone_days", o->tombstone_days, 1, 3650);
	if (strcmp(name, "domain") == 0) {
		/* a host name: what a Host header BUCKET.domain ends with */
		bool ok = true;
		for (const char *p = value; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
				ok = false;
		if (!ok)
			config_error(r, r->line, "domain must be a host name ([A-Za-z0-9.-]) or empty, not '%s'",
				     value);
		else
			config_string(r, name, value, o->domain, sizeof o->domain);
		return 1;
	}
	config_error(r, r->line, "unknown key '%s' in [objects]", name);
	return 1;
}

static int config_handle_files(config_reader *r, const char *name, const char *value)
{
	config_files *f = &r->c->files;
	/* at most a single S3 PUT's ceiling: a file is one blob */
	INT_KEY("max_file_bytes", f->max_file_bytes, 1024, 5368709120LL);
	config_error(r, r->line, "unknown key '%s' in [files]", name);
	return 1;
}

static int config_handle_witness(config_reader *r, const char *name, const char *value)
{
	config_witness *w = &r->c->witness;
	if (!w->line)
		w->line = r->line;
	if (strcmp(name, "listen") == 0)
		config_hostport(r, name, value, w->listen, sizeof w->listen);
	else if (strcmp(name, "data_dir") == 0)
		config_path(r, value, w->data_dir);
	else if (strcmp(name, "tls_cert") == 0)
		config_path(r, value, w->tls_cert);
	else if (strcmp(name, "tls_key") == 0)
		config_path(r, value, w->tls_key);
	else
		config_error(r, r->line, "unknown key '%s' in [witness]", name);
	return 1;
}

static int config_handle_deployment(config_reader *r, const char *name, const char *value)
{
	config *c = r->c;
	if (strcmp(name, "name") == 0)
		config_string(r, name, value, c->name, sizeof c->name);
	else if (strcmp(name, "data_dir") == 0)
		config_path(r, value, c->data_dir);
	else if (strcmp(name, "secrets_file") == 0)
		config_path(r, value, c->secrets_file);
	else if (strcmp(name, "ca_file") == 0)
		config_path(r, value, c->ca_file);
	else if (strcmp(name, "certs_dir") == 0)
		config_path(r, value, c->certs_dir);
	else if (strcmp(name, "user") == 0) {
		/* empty: stay as started (root stays root), said so explicitly */
		bool ok = true;
		for (const char *p = value; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
				ok = false;
		if (!ok)
			config_error(r, r->line, "user must be a user name ([A-Za-z0-9_.-]+) or empty, not '%s'", value);
		else if (config_string(r, name, value, c->user, sizeof c->user) == 0)
			c->user_given = 1;
	} else if (strcmp(name, "log_level") == 0) {
		if (strcmp(value, "debug") && strcmp(value, "info") && strcmp(value, "warn") &&
		    strcmp(value, "error"))
			config_error(r, r->line, "log_level must be debug, info, warn or error, not '%s'",
				     value);
		else
			config_string(r, name, value, c->log_level, sizeof c->log_level);
	} else
		config_error(r, r->line, "unknown key '%s' in [deployment]", name);
	return 1;
}

static int config_handle_region(config_reader *r, const char *name, const char *value)
{
	config_region *g = r->region;
	if (strcmp(name, "api_listen") == 0)
		config_hostport(r, name, value, g->api_listen, sizeof g->api_listen);
	else if (strcmp(name, "link_listen") == 0)
		config_hostport(r, name, value, g->link_listen, sizeof g->link_listen);
	else if (strcmp(name, "metrics_listen") == 0)
		config_hostport(r, name, value, g->metrics_listen, sizeof g->metrics_listen);
	else if (strcmp(name, "s3_listen") == 0)
		config_hostport(r, name, value, g->s3_listen, sizeof g->s3_listen);
	else if (strcmp(name, "data_dir") == 0)
		config_path(r, value, g->data_dir);
	else if (strcmp(name, "tls_cert") == 0)
		config_path(r, value, g->tls_cert);
	else if (strcmp(name, "tls_key") == 0)
		config_path(r, value, g->tls_key);
	else if (strcmp(name, "role") == 0) {
		if (strcmp(value, "primary") && strcmp(value, "secondary"))
			config_error(r, r->line, "role must be primary or secondary, not '%s'", value);
		else
			config_string(r, name, value, g->role, sizeof g->role);
	} else
		config_error(r, r->line, "unknown key '%s' in [region %s]", name, g->name);
	return 1;
}

static int config_valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 31 || !islower((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	config_reader *r = user;
	if (strcmp(section, r->section) != 0) {
		snprintf(r->section, sizeof r->section, "%s", section);
		r->region = NULL;
		if (strncmp(section, "region ", 7) == 0) {
			const char *rname = section + 7;
			if (!config_valid_name(rname)) {
				config_error(r, r->line,
					     "region name '%s' must match [a-z][a-z0-9-]{0,30}", rname);
			} else if (config_region_find(r->c, rname)) {
				config_error(r, r->line, "region '%s' is defined twice", rname);
			} else if (r->c->region_count == CONFIG_MAX_REGIONS) {
				config_error(r, r->line, "too many regions (at most %d)", CONFIG_MAX_REGIONS);
			} else {
				r->region = &r->c->regions[r->c->region_count++];
				snprintf(r->region->name, sizeof r->region->name, "%s", rname);
				r->region->line = r->line;
			}
		}
	}
	if (name == NULL) /* an empty section (INI_CALL_HANDLER_ON_NEW_SECTION) */
		return 1;
	if (strcmp(section, "deployment") == 0)
		return config_handle_deployment(r, name, value);
	if (strcmp(section, "limits") == 0)
		return config_handle_limits(r, name, value);
	if (strcmp(section, "auth") == 0)
		return config_handle_auth(r, name, value);
	if (strcmp(section, "api") == 0)
		return config_handle_api(r, name, value);
	if (strcmp(section, "replication") == 0)
		return config_handle_replication(r, name, value);
	if (strcmp(section, "witness") == 0)
		return config_handle_witness(r, name, value);
	if (strcmp(section, "failover") == 0)
		return config_handle_failover(r, name, value);
	if (strcmp(section, "drill") == 0)
		return config_handle_drill(r, name, value);
	if (strcmp(section, "objects") == 0)
		return config_handle_objects(r, name, value);
	if (strcmp(section, "files") == 0)
		return config_handle_files(r, name, value);
	if (strncmp(section, "region ", 7) == 0) {
		if (r->region)
			return config_handle_region(r, name, value);
		return 1; /* bad section already reported */
	}
	if (strncmp(section, "zone ", 5) == 0 || strncmp(section, "dns ", 4) == 0 || strncmp(section, "edge ", 5) == 0)
		return 1; /* DNS: read and checked by src/dns/dnsconf.c */
	if (section[0] == '\0')
		config_error(r, r->line, "key '%s' outside of any section", name);
	else
		config_error(r, r->line, "unknown section [%s]", section);
	return 1;
}

/*
 * The failover timings must keep the lease shorter than the grants it rests
 * on, in real time, whichever clocks drift (docs/FAILOVER.md, "The drift
 * inequality"):  (L(1-rho) - m_p)/(1-rho)  <  (L + m_v)/(1+rho).
 */
static void config_validate_failover(config_reader *r)
{
	config *c = r->c;
	config_failover *f = &c->failover;
	int line = f->line ? f->line : r->line;
	double rho = f->max_drift_ppm / 1e6;
	double lease_hi = (f->lease_ms * (1 - rho) - f->lease_margin_ms) / (1 - rho);
	double grant_lo = (f->lease_ms + f->grant_margin_ms) / (1 + rho);
	if (f->lease_ms * (1 - rho) - f->lease_margin_ms <= f->renew_ms)
		config_error(r, line, "[failover] lease_ms minus its margins (%.0f ms) must exceed renew_ms (%d)",
			     f->lease_ms * (1 - rho) - f->lease_margin_ms, f->renew_ms);
	if (!(lease_hi < grant_lo))
		config_error(r, line,
			     "[failover] unsafe timings: a lease may last %.1f ms but a grant may stop binding "
			     "after %.1f ms; raise grant_margin_ms or lease_margin_ms, or lower max_drift_ppm",
			     lease_hi, grant_lo);
	if (f->election_timeout_ms < 2 * f->renew_ms)
		config_error(r, line, "[failover] election_timeout_ms must be at least twice renew_ms");
	if (f->election_timeout_ms > f->lease_ms + f->grant_margin_ms)
		config_error(r, line, "[failover] election_timeout_ms must not exceed lease_ms + grant_margin_ms "
				      "(it would only delay failovers)");
	/* the isolation gate is only useful before the lease runs out */
	if (f->isolation_ms > 0 && f->isolation_ms >= f->lease_ms * (1 - rho) - f->lease_margin_ms)
		config_error(r, f->isolation_line ? f->isolation_line : line,
			     "[failover] isolation_ms (%d) must be below the lease's validity, lease_ms minus "
			     "its margins (%.0f ms); 0 turns the isolation gate off",
			     f->isolation_ms, f->lease_ms * (1 - rho) - f->lease_margin_ms);
	config_witness *w = &c->witness;
	if (w->listen[0]) {
		if (!w->data_dir[0] && c->data_dir[0])
			snprintf(w->data_dir, sizeof w->data_dir, "%.*s/witness", CONFIG_PATH_MAX - 16, c->data_dir);
		if (!w->data_dir[0])
			config_error(r, w->line, "[witness] needs data_dir (or set it in [deployment])");
		if (!w->tls_cert[0] || !w->tls_key[0])
			config_error(r, w->line, "[witness] needs tls_cert and tls_key");
		for (int i = 0; i < c->region_count; i++)
			if (strcmp(w->listen, c->regions[i].link_listen) == 0 ||
			    strcmp(w->listen, c->regions[i].api_listen) == 0 ||
			    strcmp(w->listen, c->regions[i].metrics_listen) == 0)
				config_error(r, w->line, "[witness] listen %s is already used by region %s", w->listen,
					     c->regions[i].name);
	}
}

/* metrics_listen may not share an address with any API, link or other
 * metrics listener (nor the witness, checked with it): the second bind would
 * fail at start, far from the line that caused it. */
static void config_validate_metrics_listen(config_reader *r, const config_region *g)
{
	const config *c = r->c;
	if (!g->metrics_listen[0])
		return;
	for (int j = 0; j < c->region_count; j++) {
		const config_region *o = &c->regions[j];
		const char *key = strcmp(g->metrics_listen, o->api_listen) == 0    ? "api_listen"
				  : strcmp(g->metrics_listen, o->link_listen) == 0 ? "link_listen"
				  : o < g && strcmp(g->metrics_listen, o->metrics_listen) == 0 ? "metrics_listen"
											  : NULL;
		if (key)
			config_error(r, g->line, "[region %s] metrics_listen %s is already the %s of region %s",
				     g->name, g->metrics_listen, key, o->name);
	}
}

/* Checks across keys, after the whole file is read. */
static void config_validate(config_reader *r)
{
	config *c = r->c;
	int primaries = 0;
	if (c->region_count == 0)
		config_error(r, r->line, "no [region NAME] section: at least one region is needed");
	for (int i = 0; i < c->region_count; i++) {
		config_region *g = &c->regions[i];
		if (!g->api_listen[0])
			config_error(r, g->line, "[region %s] needs api_listen", g->name);
		if (!g->tls_cert[0] || !g->tls_key[0])
			config_error(r, g->line, "[region %s] needs tls_cert and tls_key", g->name);
		if (!g->data_dir[0]) {
			if (c->data_dir[0]) {
				char dir[CONFIG_PATH_MAX]; /* g lives inside c: no overlapping snprintf */
				snprintf(dir, sizeof dir, "%.*s/%s", (int)(sizeof dir - 40), c->data_dir,
					 g->name);
				memcpy(g->data_dir, dir, sizeof dir);
			} else
				config_error(r, g->line, "[region %s] needs data_dir (or set it in [deployment])",
					     g->name);
		}
		if (!g->role[0])
			snprintf(g->role, sizeof g->role, "%s", i == 0 ? "primary" : "secondary");
		if (strcmp(g->role, "primary") == 0)
			primaries++;
		for (int j = 0; j < i; j++)
			if (g->api_listen[0] && strcmp(g->api_listen, c->regions[j].api_listen) == 0)
				config_error(r, g->line, "[region %s] api_listen %s is already used by region %s",
					     g->name, g->api_listen, c->regions[j].name);
		config_validate_metrics_listen(r, g);
		for (int j = 0; j < c->region_count && g->s3_listen[0]; j++) {
			const config_region *o = &c->regions[j];
			if (strcmp(g->s3_listen, o->api_listen) == 0 || strcmp(g->s3_listen, o->link_listen) == 0 ||
			    strcmp(g->s3_listen, o->metrics_listen) == 0 || (j < i && strcmp(g->s3_listen, o->s3_listen) == 0))
				config_error(r, g->line, "[region %s] s3_listen %s is already used by region %s",
					     g->name, g->s3_listen, o->name);
		}
	}
	if (c->region_count > 1) {
		for (int i = 0; i < c->region_count; i++)
			if (!c->regions[i].link_listen[0])
				config_error(r, c->regions[i].line,
					     "[region %s] needs link_listen: with several regions they talk over a link",
					     c->regions[i].name);
	}
	if (c->replication.reconnect_max_ms < c->replication.reconnect_min_ms)
		config_error(r, r->line, "reconnect_max_ms must be at least reconnect_min_ms");
	/* a healthy secondary hears a heartbeat every heartbeat_ms: a bound of a
	 * few heartbeats would have it refuse tokens at every late one */
	if (c->auth.auth_max_staleness_s > 0 &&
	    (int64_t)c->auth.auth_max_staleness_s * 1000 < 4 * (int64_t)c->replication.heartbeat_ms)
		config_error(r, r->line,
			     "[auth] auth_max_staleness_s (%d s) must span at least 4 replication heartbeats "
			     "(heartbeat_ms = %d), or be 0 (off)",
			     c->auth.auth_max_staleness_s, c->replication.heartbeat_ms);
	if (c->region_count > 0 && primaries != 1)
		config_error(r, c->regions[0].line, "exactly one region must have role = primary (found %d)",
			     primaries);
	config_validate_failover(r);
	if (!c->secrets_file[0])
		config_error(r, 1, "[deployment] needs secrets_file");
	if (!c->ca_file[0])
		config_error(r, 1, "[deployment] needs ca_file");
	if (!c->certs_dir[0] && c->ca_file[0]) {
		/* default: the directory holding the CA */
		snprintf(c->certs_dir, sizeof c->certs_dir, "%s", c->ca_file);
		char *slash = strrchr(c->certs_dir, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(c->certs_dir, sizeof c->certs_dir, ".");
	}
}

int config_load(const char *path, config *c, char *errbuf, size_t errcap)
{
	config_defaults(c);
	snprintf(c->path, sizeof c->path, "%s", path);
	buf errors;
	buf_init(&errors, 8192);
	config_reader r = {.c = c, .errors = &errors, .path = path};
	const char *slash = strrchr(path, '/');
	if (slash)
		snprintf(r.dir, sizeof r.dir, "%.*s", (int)(slash - path), path);
	r.file = fopen(path, "r");
	if (!r.file) {
		snprintf(errbuf, errcap, "%s: cannot open: %s", path, strerror(errno));
		buf_free(&errors);
		return ERR_IO;
	}
	int rc = ini_parse_stream(config_read_line, &r, config_handler, &r);
	fclose(r.file);
	if (rc > 0)
		config_error(&r, rc, "syntax error (expected [section] or name = value)");
	else if (rc < 0)
		config_error(&r, 0, "cannot parse (out of memory)");
	else
		config_validate(&r);
	if (r.error_count > 20)
		buf_printf(&errors, "%s: (%d more errors)\n", path, r.error_count - 20);
	snprintf(errbuf, errcap, "%s", errors.data ? errors.data : "");
	buf_free(&errors);
	return r.error_count ? ERR_CONFIG : 0;
}

const config_region *config_region_find(const config *c, const char *name)
{
	for (int i = 0; i < c->region_count; i++)
		if (strcmp(c->regions[i].name, name) == 0)
			return &c->regions[i];
	return NULL;
}

bool config_trusted_proxy(const config_api *api, const char *peer)
{
	for (int i = 0; peer && i < api->nproxies; i++)
		if (util_cidr_holds(api->proxy_addr[i], api->proxy_family[i], api->proxy_bits[i], peer))
			return true;
	return false;
}
