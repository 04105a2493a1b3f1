/*
 * edgeconf.c - the [edge NAME] sections (edgeconf.h): read with libinih
 * from the deployment's file, checked, every problem reported with its
 * FILE:LINE.
 */
#include "edge/edgeconf.h"

#include <ctype.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "edge/sni.h"

typedef struct reader {
	const char *path;
	char dir[EDGECONF_PATH_MAX];
	FILE *file;
	int line;
	buf *errors;
	int error_count;
	edge_confs *c;
	edge_conf *cur;
	char section[160];
} reader;

static void error_at(reader *r, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error_at(reader *r, int line, const char *fmt, ...)
{
	r->error_count++;
	if (r->error_count > 20)
		return;
	buf_printf(r->errors, "%s:%d: ", r->path, line);
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(r->errors, fmt, ap);
	va_end(ap);
	buf_addc(r->errors, '\n');
}

static char *read_line(char *str, int num, void *stream)
{
	reader *r = stream;
	char *s = fgets(str, num, r->file);
	if (s)
		r->line++;
	return s;
}

static void section_start(reader *r, const char *section)
{
	snprintf(r->section, sizeof r->section, "%s", section);
	r->cur = NULL;
	if (strncmp(section, "edge ", 5) != 0)
		return;
	const char *name = section + 5;
	if (!name[0] || strlen(name) >= sizeof r->c->edges[0].name) {
		error_at(r, r->line, "[edge NAME]: a name of 1 to 31 characters");
		return;
	}
	for (int i = 0; i < r->c->count; i++)
		if (strcmp(r->c->edges[i].name, name) == 0) {
			error_at(r, r->line, "[edge %s] appears twice (first at line %d)", name, r->c->edges[i].line);
			return;
		}
	if (r->c->count == EDGECONF_MAX_EDGES) {
		error_at(r, r->line, "at most %d [edge] sections", EDGECONF_MAX_EDGES);
		return;
	}
	edge_conf *e = r->cur = &r->c->edges[r->c->count++];
	memset(e, 0, sizeof *e);
	snprintf(e->name, sizeof e->name, "%s", name);
	e->line = r->line;
	e->tls = true;
	e->http2 = true;
	e->connect_timeout_ms = 1000;
	e->max_origin_connections = 1024;
	e->response_timeout_ms = 10000;
	e->ecs_prefix = -1;
	e->probe_interval_ms = 1000;
	snprintf(e->probe_path, sizeof e->probe_path, "/readyz");
	e->max_body_bytes = 16u << 20;
	e->stream_upload_bytes = 1u << 20;
	e->max_upload_bytes = 5ULL << 30;
	e->retry_buffer_bytes = 1u << 20;
	e->max_upload_memory_bytes = 256u << 20;
	e->cache_bytes = 64u << 20;
	e->cache_max_object_bytes = 1u << 20;
}

static void path_value(reader *r, const char *value, char *out, size_t cap)
{
	int n = value[0] == '/' ? snprintf(out, cap, "%s", value) : snprintf(out, cap, "%s/%s", r->dir, value);
	if (n < 0 || (size_t)n >= cap)
		error_at(r, r->line, "path too long");
}

/* "NAME=https://host:port" or "http://host:port" (no path). */
static int origin_parse(const char *text, edge_origin_conf *o)
{
	memset(o, 0, sizeof *o);
	const char *eq = strchr(text, '=');
	const char *url = text;
	if (eq) {
		size_t n = (size_t)(eq - text);
		if (!n || n >= sizeof o->name)
			return -1;
		memcpy(o->name, text, n);
		url = eq + 1;
	}
	if (strncmp(url, "https://", 8) == 0) {
		o->https = true;
		url += 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		url += 7;
	} else {
		return -1;
	}
	if (strchr(url, '/'))
		return -1;
	if (util_split_hostport(url, o->host, sizeof o->host, &o->port) != 0 || o->port <= 0)
		return -1;
	if (!o->name[0]) {
		size_t n = strnlen(o->host, sizeof o->name - 1);
		memcpy(o->name, o->host, n);
		o->name[n] = '\0';
	}
	return 0;
}

/* "cert = NAME CERTFILE KEYFILE": a certificate served by SNI. */
static void cert_line(reader *r, const char *value)
{
	edge_conf *e = r->cur;
	char copy[3 * EDGECONF_PATH_MAX];
	if (strlen(value) >= sizeof copy) {
		error_at(r, r->line, "cert: line too long");
		return;
	}
	snprintf(copy, sizeof copy, "%s", value);
	char *save = NULL;
	char *name = strtok_r(copy, " \t", &save);
	char *certfile = name ? strtok_r(NULL, " \t", &save) : NULL;
	char *keyfile = certfile ? strtok_r(NULL, " \t", &save) : NULL;
	if (!keyfile || strtok_r(NULL, " \t", &save)) {
		error_at(r, r->line, "cert: NAME CERTFILE KEYFILE");
		return;
	}
	if (!edge_sni_name_valid(name)) {
		error_at(r, r->line, "cert: '%.80s' is not a host name or *.domain", name);
		return;
	}
	for (int i = 0; i < e->ncerts; i++)
		if (strcasecmp(e->certs[i].name, name) == 0) {
			error_at(r, r->line, "cert: %s appears twice (first at line %d)", name, e->certs[i].line);
			return;
		}
	if (e->ncerts == EDGECONF_MAX_CERTS) {
		error_at(r, r->line, "cert: at most %d per edge", EDGECONF_MAX_CERTS);
		return;
	}
	edge_cert_conf *c = &e->certs[e->ncerts];
	memset(c, 0, sizeof *c);
	snprintf(c->name, sizeof c->name, "%s", name);
	c->line = r->line;
	int before = r->error_count;
	path_value(r, certfile, c->cert, sizeof c->cert);
	path_value(r, keyfile, c->key, sizeof c->key);
	if (r->error_count != before)
		return;
	if (access(c->cert, R_OK) != 0) {
		error_at(r, r->line, "cert: %s: cannot read: %m", c->cert);
		return;
	}
	if (access(c->key, R_OK) != 0) {
		error_at(r, r->line, "cert: %s: cannot read: %m", c->key);
		return;
	}
	e->ncerts++;
}

static void edge_key(reader *r, const char *name, const char *value)
{
	edge_conf *e = r->cur;
	if (!e)
		return;
	long long v;
	if (strcmp(name, "listen") == 0) {
		char host[128];
		int port;
		if (util_split_hostport(value, host, sizeof host, &port) != 0 || strlen(value) >= sizeof e->listen)
			error_at(r, r->line, "listen: HOST:PORT");
		else
			snprintf(e->listen, sizeof e->listen, "%s", value);
	} else if (strcmp(name, "metrics_listen") == 0) {
		char host[128];
		int port;
		if (util_split_hostport(value, host, sizeof host, &port) != 0 || strlen(value) >= sizeof e->metrics_listen)
			error_at(r, r->line, "metrics_listen: HOST:PORT");
		else
			snprintf(e->metrics_listen, sizeof e->metrics_listen, "%s", value);
	} else if (strcmp(name, "origins") == 0 || strcmp(name, "host_origins") == 0) {
		char copy[1024];
		snprintf(copy, sizeof copy, "%s", value);
		char *save = NULL, *t = strtok_r(copy, ", ", &save);
		int group = 0;
		if (strcmp(name, "host_origins") == 0) {
			if (!t || strchr(t, '=') || strchr(t, '/') || strchr(t, ':') || strlen(t) >= sizeof e->group_host[0]) {
				error_at(r, r->line, "host_origins: HOST [NAME=]URL, ... (a host name first)");
				return;
			}
			if (e->ngroups == EDGECONF_MAX_GROUPS - 1) {
				error_at(r, r->line, "host_origins: at most %d", EDGECONF_MAX_GROUPS - 1);
				return;
			}
			group = ++e->ngroups;
			snprintf(e->group_host[group], sizeof e->group_host[group], "%s", t);
			for (char *c = e->group_host[group]; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			t = strtok_r(NULL, ", ", &save);
		} else { /* a second `origins =` replaces the first */
			int kept = 0;
			for (int i = 0; i < e->norigins; i++)
				if (e->origins[i].group != 0)
					e->origins[kept++] = e->origins[i];
			e->norigins = kept;
		}
		int in_group = 0;
		for (; t; t = strtok_r(NULL, ", ", &save)) {
			if (e->norigins == EDGECONF_MAX_ORIGINS || in_group == EDGECONF_MAX_GROUP) {
				error_at(r, r->line, "%s: at most %d origins (%d in all)", name, EDGECONF_MAX_GROUP,
					 EDGECONF_MAX_ORIGINS);
				break;
			}
			if (origin_parse(t, &e->origins[e->norigins]) != 0) {
				error_at(r, r->line, "%s: '%s' is not [NAME=]https://HOST:PORT or http://HOST:PORT", name, t);
				continue;
			}
			e->origins[e->norigins++].group = group;
			in_group++;
		}
		if (!in_group)
			error_at(r, r->line, "%s: no origin", name);
	} else if (strcmp(name, "tls") == 0) {
		if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
			error_at(r, r->line, "tls: on or off");
		e->tls = strcmp(value, "off") != 0;
	} else if (strcmp(name, "tls_cert") == 0) {
		path_value(r, value, e->tls_cert, sizeof e->tls_cert);
	} else if (strcmp(name, "tls_key") == 0) {
		path_value(r, value, e->tls_key, sizeof e->tls_key);
	} else if (strcmp(name, "cert") == 0) {
		cert_line(r, value);
	} else if (strcmp(name, "http2") == 0) {
		if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
			error_at(r, r->line, "http2: on or off");
		e->http2 = strcmp(value, "off") != 0;
	} else if (strcmp(name, "server_names") == 0) {
		if (strlen(value) >= sizeof e->server_names || strpbrk(value, "/:@\"\\"))
			error_at(r, r->line, "server_names: host names separated by spaces (at most %zu bytes)",
				 sizeof e->server_names - 1);
		else
			snprintf(e->server_names, sizeof e->server_names, "%s", value);
	} else if (strcmp(name, "connect_timeout_ms") == 0) {
		if (util_parse_int(value, 10, 60000, &v) != 0)
			error_at(r, r->line, "connect_timeout_ms: 10..60000");
		else
			e->connect_timeout_ms = (int)v;
	} else if (strcmp(name, "resolve") == 0) {
		if (!value[0] || strlen(value) >= sizeof e->resolve || strpbrk(value, " /:@"))
			error_at(r, r->line, "resolve: a DNS name (the latency-routed name of the regions)");
		else
			snprintf(e->resolve, sizeof e->resolve, "%s", value);
	} else if (strcmp(name, "resolvers") == 0) {
		char copy[1024];
		snprintf(copy, sizeof copy, "%s", value);
		e->nresolvers = 0;
		for (char *save = NULL, *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			char host[128];
			int port;
			if (e->nresolvers == EDGECONF_MAX_RESOLVERS) {
				error_at(r, r->line, "resolvers: at most %d", EDGECONF_MAX_RESOLVERS);
				break;
			}
			if (util_split_hostport(t, host, sizeof host, &port) != 0 || strlen(t) >= sizeof e->resolvers[0])
				error_at(r, r->line, "resolvers: '%s' is not IP:PORT", t);
			else
				snprintf(e->resolvers[e->nresolvers++], sizeof e->resolvers[0], "%s", t);
		}
	} else if (strcmp(name, "ecs") == 0) {
		if (util_parse_cidr(value, e->ecs_addr, &e->ecs_family, &e->ecs_prefix) != 0)
			error_at(r, r->line, "ecs: an address prefix (10.1.0.0/24, 2001:db8::/56)");
		else
			e->ecs_family = e->ecs_family == 6 ? 2 : 1;
	} else if (strcmp(name, "max_origin_connections") == 0) {
		if (util_parse_int(value, 1, 65536, &v) != 0)
			error_at(r, r->line, "max_origin_connections: 1..65536");
		else
			e->max_origin_connections = (int)v;
	} else if (strcmp(name, "response_timeout_ms") == 0) {
		if (util_parse_int(value, 100, 600000, &v) != 0)
			error_at(r, r->line, "response_timeout_ms: 100..600000");
		else
			e->response_timeout_ms = (int)v;
	} else if (strcmp(name, "probe_interval_ms") == 0) {
		if (util_parse_int(value, 0, 60000, &v) != 0)
			error_at(r, r->line, "probe_interval_ms: 0..60000 (0: no probes)");
		else
			e->probe_interval_ms = (int)v;
	} else if (strcmp(name, "probe_path") == 0) {
		if (value[0] != '/' || strlen(value) >= sizeof e->probe_path || strpbrk(value, " \r\n"))
			error_at(r, r->line, "probe_path: a path starting with /");
		else
			snprintf(e->probe_path, sizeof e->probe_path, "%s", value);
	} else if (strcmp(name, "max_body_bytes") == 0) {
		if (util_parse_int(value, 1024, 1LL << 30, &v) != 0)
			error_at(r, r->line, "max_body_bytes: 1024..1073741824");
		else
			e->max_body_bytes = (size_t)v;
	} else if (strcmp(name, "stream_upload_bytes") == 0) {
		if (util_parse_int(value, 0, 1LL << 30, &v) != 0)
			error_at(r, r->line, "stream_upload_bytes: 0..1073741824 (bodies larger are streamed)");
		else
			e->stream_upload_bytes = (size_t)v;
	} else if (strcmp(name, "max_upload_bytes") == 0) {
		if (util_parse_int(value, 1024, 1LL << 42, &v) != 0)
			error_at(r, r->line, "max_upload_bytes: 1024..4398046511104");
		else
			e->max_upload_bytes = (unsigned long long)v;
	} else if (strcmp(name, "retry_buffer_bytes") == 0) {
		if (util_parse_int(value, 0, 64LL << 20, &v) != 0)
			error_at(r, r->line, "retry_buffer_bytes: 0..67108864");
		else
			e->retry_buffer_bytes = (size_t)v;
	} else if (strcmp(name, "max_upload_memory_bytes") == 0) {
		if (util_parse_int(value, 1LL << 20, 1LL << 40, &v) != 0)
			error_at(r, r->line, "max_upload_memory_bytes: 1048576..1099511627776");
		else
			e->max_upload_memory_bytes = (size_t)v;
	} else if (strcmp(name, "cache_bytes") == 0) {
		if (util_parse_int(value, 0, 1LL << 40, &v) != 0)
			error_at(r, r->line, "cache_bytes: 0..1099511627776 (0: no cache)");
		else
			e->cache_bytes = (size_t)v;
	} else if (strcmp(name, "disk_cache_dir") == 0) {
		if (value[0])
			path_value(r, value, e->disk_cache_dir, sizeof e->disk_cache_dir);
	} else if (strcmp(name, "disk_cache_bytes") == 0) {
		if (util_parse_int(value, 0, 1LL << 50, &v) != 0)
			error_at(r, r->line, "disk_cache_bytes: 0..1125899906842624");
		else
			e->disk_cache_bytes = (size_t)v;
	} else if (strcmp(name, "cache_max_object_bytes") == 0) {
		if (util_parse_int(value, 1, 1LL << 30, &v) != 0)
			error_at(r, r->line, "cache_max_object_bytes: 1..1073741824");
		else
			e->cache_max_object_bytes = (size_t)v;
	} else {
		error_at(r, r->line, "unknown key '%s' in [edge %s]", name, e->name);
	}
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	reader *r = user;
	if (strcmp(section, r->section) != 0)
		section_start(r, section);
	if (name && strncmp(section, "edge ", 5) == 0)
		edge_key(r, name, value);
	return 1; /* the other sections are the core config's and the DNS's */
}

/* path without empty and "." components and a final slash ("a//./b/" ->
 * "a/b"): the same directory written two ways compares equal. */
static void dir_normal(const char *path, char *out, size_t cap)
{
	size_t n = 0;
	for (const char *p = path; *p && n + 1 < cap;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		bool skip = (len == 0 && p != path) || (len == 1 && p[0] == '.' && p != path);
		if (!skip) {
			if (n && out[n - 1] != '/' && n + 1 < cap)
				out[n++] = '/';
			for (size_t i = 0; i < len && n + 1 < cap; i++)
				out[n++] = p[i];
			if (len == 0 && n + 1 < cap) /* the root's slash */
				out[n++] = '/';
		}
		p += len + (end ? 1 : 0);
		if (!end)
			break;
	}
	out[n] = '\0';
}

int edgeconf_load(const char *path, edge_confs *out, char *err, size_t errcap)
{
	memset(out, 0, sizeof *out);
	buf errors;
	buf_init(&errors, errcap > 0 ? errcap : 1);
	reader r = {.path = path, .errors = &errors, .c = out};
	const char *slash = strrchr(path, '/');
	if (slash && slash != path)
		snprintf(r.dir, sizeof r.dir, "%.*s", (int)(slash - path), path);
	else
		snprintf(r.dir, sizeof r.dir, "%s", slash ? "/" : ".");
	r.file = fopen(path, "r");
	if (!r.file) {
		snprintf(err, errcap, "%s: cannot read: %m", path);
		buf_free(&errors);
		return ERR_IO;
	}
	int rc = ini_parse_stream(read_line, &r, handler, &r);
	fclose(r.file);
	if (rc < 0)
		error_at(&r, 0, "cannot read the file");
	for (int i = 0; i < out->count; i++) {
		edge_conf *e = &out->edges[i];
		if (!e->listen[0])
			error_at(&r, e->line, "[edge %s] needs listen = HOST:PORT", e->name);
		bool any = false;
		for (int k = 0; k < e->norigins; k++)
			any |= e->origins[k].group == 0;
		if (!any)
			error_at(&r, e->line, "[edge %s] needs origins = URL, URL", e->name);
		if (e->resolve[0] && !e->nresolvers)
			error_at(&r, e->line, "[edge %s] resolve = NAME needs resolvers = IP:PORT, ...", e->name);
		if (e->resolve[0] && e->ecs_prefix < 0 && e->listen[0]) { /* ECS: the listen address */
			char host[128];
			int port;
			if (util_split_hostport(e->listen, host, sizeof host, &port) == 0 &&
			    util_parse_cidr(host, e->ecs_addr, &e->ecs_family, &e->ecs_prefix) == 0) {
				if (e->ecs_family == 6) { /* a /56, as resolvers send (RFC 7871 11.1) */
					e->ecs_prefix = 56;
					memset(e->ecs_addr + 7, 0, 9);
				}
				e->ecs_family = e->ecs_family == 6 ? 2 : 1;
			} else {
				error_at(&r, e->line, "[edge %s] listens on a name: give ecs = PREFIX", e->name);
			}
		}
		if (e->disk_cache_dir[0] && !e->disk_cache_bytes)
			error_at(&r, e->line, "[edge %s] disk_cache_dir needs disk_cache_bytes > 0", e->name);
		if (e->disk_cache_bytes && !e->disk_cache_dir[0])
			error_at(&r, e->line, "[edge %s] disk_cache_bytes needs disk_cache_dir", e->name);
		if (e->disk_cache_bytes && !e->cache_bytes)
			error_at(&r, e->line, "[edge %s] a disk tier needs the memory cache (cache_bytes > 0)", e->name);
		/* each edge empties its directory at start and names files by a counter of its own */
		for (int k = 0; k < i && e->disk_cache_dir[0]; k++) {
			char a[sizeof e->disk_cache_dir], b[sizeof e->disk_cache_dir];
			dir_normal(e->disk_cache_dir, a, sizeof a);
			dir_normal(out->edges[k].disk_cache_dir, b, sizeof b);
			if (strcmp(a, b) == 0)
				error_at(&r, e->line, "[edge %s] disk_cache_dir is [edge %s]'s: each edge needs its own",
					 e->name, out->edges[k].name);
		}
		if (e->tls && (!e->tls_cert[0] || !e->tls_key[0]))
			error_at(&r, e->line, "[edge %s] tls = on needs tls_cert and tls_key (or tls = off)", e->name);
		if (!e->tls && e->ncerts)
			error_at(&r, e->certs[0].line, "[edge %s] cert needs tls = on", e->name);
	}
	int result = 0;
	if (r.error_count) {
		snprintf(err, errcap, "%.*s", (int)errors.len, errors.data ? errors.data : "");
		result = ERR_CONFIG;
	}
	buf_free(&errors);
	return result;
}

const edge_conf *edgeconf_find(const edge_confs *c, const char *name)
{
	for (int i = 0; i < c->count; i++)
		if (strcmp(c->edges[i].name, name) == 0)
			return &c->edges[i];
	return NULL;
}
