/*
 * oae.c - anti-entropy of object replication (oae.h has the contract).
 *
 * A pass walks this region's buckets one by one; for each, first its
 * configuration's stamps there (one of ours newer: the bucket is queued
 * again), then a stack of key ranges starts with the whole bucket:
 *
 *   pop a range -> local digest -> GET the other region's digest
 *     equal                       -> next range
 *     small enough, or no split   -> GET its entries -> queue what the
 *                                    other lacks -> next range
 *     else                        -> push both halves (at a middle key)
 *   stack empty -> next bucket; no bucket left -> the pass is done
 *
 * One request at a time on one connection; local digests are bounded
 * (OAE_MAX_ROWS rows) so one step never holds the S3 loop long.
 */
#include "objects/oae.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "http/client.h"
#include "http/server.h"
#include "objects/meta.h"
#include "store/committer.h"

#define OAE_TIMEOUT_MS 30000

typedef struct range {
	char *from, *to; /* bytes; to NULL: to the end */
	size_t from_len, to_len;
} range;

typedef struct repair {
	char key[META_KEY_MAX + 1];
	size_t key_len;
	char version_id[META_VERSION_ID_LEN + 1];
} repair;

struct oae {
	orepl_env env;
	char host[128];
	int port;
	http_client *client;
	struct event *timer;
	bool running, stopping;
	/* the pass */
	char bucket[META_BUCKET_MAX + 1];
	meta_bucket conf;            /* its configuration here, read when the pass came to it */
	range *stack;
	size_t depth, cap;
	range cur;
	meta_digest local;
	int64_t started_ms;
	uint64_t ranges, pass_repairs;
	/* a batch of repairs being committed */
	repair *fix;
	size_t nfix;
	_Atomic uint64_t passes, repairs;
	_Atomic int64_t last_ms;
};

static void step(oae *a);
static void next_bucket(oae *a);
static void get(oae *a, const char *target, http_client_cb cb);

/* ------------------------------------------------------------- helpers */

static char *hex_of(const char *s, size_t len)
{
	char *h = malloc(len * 2 + 1);
	if (h) {
		util_hex(s, len, h);
		h[len * 2] = '\0';
	}
	return h;
}

static void range_free(range *r)
{
	free(r->from);
	free(r->to);
	*r = (range){0};
}

static int push(oae *a, const char *from, size_t from_len, const char *to, size_t to_len, bool to_end)
{
	if (a->depth == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		void *p = realloc(a->stack, cap * sizeof *a->stack);
		if (!p)
			return ERR_NOMEM;
		a->stack = p;
		a->cap = cap;
	}
	range r = {0};
	r.from = malloc(from_len + 1);
	r.to = to_end ? NULL : malloc(to_len + 1);
	if (!r.from || (!to_end && !r.to)) {
		range_free(&r);
		return ERR_NOMEM;
	}
	memcpy(r.from, from, from_len);
	r.from[from_len] = '\0';
	r.from_len = from_len;
	if (!to_end) {
		memcpy(r.to, to, to_len);
		r.to[to_len] = '\0';
		r.to_len = to_len;
	}
	a->stack[a->depth++] = r;
	return 0;
}

/* The query of a range: bucket=&from=&to= (to omitted: the end). */
static int range_target(char *out, size_t cap, const char *route, const char *bucket, const range *r)
{
	char *f = hex_of(r->from, r->from_len), *t = r->to ? hex_of(r->to, r->to_len) : NULL;
	int n = -1;
	if (f && (t || !r->to))
		n = snprintf(out, cap, "/internal/v1/objects/%s?bucket=%s&from=%s%s%s", route, bucket, f,
			     t ? "&to=" : "", t ? t : "");
	free(f);
	free(t);
	return n > 0 && (size_t)n < cap ? 0 : ERR_LIMIT;
}

static void pass_end(oae *a, const char *why)
{
	a->running = false;
	range_free(&a->cur);
	while (a->depth)
		range_free(&a->stack[--a->depth]);
	a->last_ms = util_now_ms();
	if (why) {
		log_warn("objects anti-entropy: pass stopped (%s); the next one in %d s", why,
			 a->env.cfg->objects.anti_entropy_s);
		return;
	}
	a->passes++;
	if (a->pass_repairs)
		log_warn("objects anti-entropy: %llu version(s) or bucket(s) that %s lacked are queued again "
			 "(%llu ranges compared in %lld ms)",
			 (unsigned long long)a->pass_repairs, a->env.peer->name, (unsigned long long)a->ranges,
			 (long long)(util_now_ms() - a->started_ms));
	else
		log_info("objects anti-entropy: %s has every object of this region (%llu ranges compared in %lld ms)",
			 a->env.peer->name, (unsigned long long)a->ranges, (long long)(util_now_ms() - a->started_ms));
}

/* ------------------------------------------------------------- repairs */

static int fix_exec(db_conn *db, void *arg)
{
	oae *a = arg;
	for (size_t i = 0; i < a->nfix; i++) {
		int rc = meta_outbox_repair(db, a->bucket, a->fix[i].key, a->fix[i].key_len, a->fix[i].version_id);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void fix_done(void *arg, int rc, uint64_t seq)
{
	oae *a = arg;
	if (rc == 0) {
		a->repairs += a->nfix;
		a->pass_repairs += a->nfix;
	}
	free(a->fix);
	a->fix = NULL;
	a->nfix = 0;
	if (a->stopping) {
		pass_end(a, "stopping");
		return;
	}
	if (rc != 0) {
		pass_end(a, "cannot queue the repairs");
		return;
	}
	step(a);
}

static int fix_add(oae *a, const char *key, size_t key_len, const char *vid)
{
	void *p = realloc(a->fix, (a->nfix + 1) * sizeof *a->fix);
	if (!p)
		return ERR_NOMEM;
	a->fix = p;
	repair *f = &a->fix[a->nfix++];
	memcpy(f->key, key, key_len);
	f->key[key_len] = '\0';
	f->key_len = key_len;
	snprintf(f->version_id, sizeof f->version_id, "%s", vid);
	return 0;
}

/* The other region's entries of a range, parsed. */
typedef struct remote_set {
	meta_range_entry *e;
	size_t n;
} remote_set;

static const meta_range_entry *find(const remote_set *rs, bool tomb, const char *key, size_t key_len,
				    const char *vid)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->e[i].tombstone == tomb && rs->e[i].key_len == key_len && memcmp(rs->e[i].key, key, key_len) == 0 &&
		    strcmp(rs->e[i].version_id, vid) == 0)
			return &rs->e[i];
	return NULL;
}

/* Does the other region lack (or hold an older state of) local entry e?
 * What it has newer is its own pass's business. */
static bool lacks(const remote_set *rs, const meta_range_entry *e)
{
	const meta_range_entry *v = find(rs, false, e->key, e->key_len, e->version_id);
	const meta_range_entry *t = find(rs, true, e->key, e->key_len, e->version_id);
	if (!e->tombstone) {
		if (t && !meta_version_newer(e->hlc, e->origin, t->hlc, t->origin))
			return false; /* removed there after this was written */
		if (!v)
			return true;
		if (meta_version_newer(e->hlc, e->origin, v->hlc, v->origin))
			return true;
		return strcmp(e->hlc, v->hlc) == 0 && strcmp(e->origin, v->origin) == 0 && v->acl != e->acl;
	}
	if (v && !meta_version_newer(v->hlc, v->origin, e->hlc, e->origin))
		return true; /* it still has what was removed */
	return !t || meta_version_newer(e->hlc, e->origin, t->hlc, t->origin);
}

typedef struct leaf_ctx {
	oae *a;
	const remote_set *rs;
} leaf_ctx;

static int leaf_one(void *arg, const meta_range_entry *e)
{
	leaf_ctx *c = arg;
	if (!lacks(c->rs, e))
		return 0;
	return fix_add(c->a, e->key, e->key_len, e->version_id);
}

static void entries_answered(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	oae *a = arg;
	if (a->stopping) {
		pass_end(a, "stopping");
		return;
	}
	if (rc != 0 || resp->status != 200) {
		pass_end(a, rc != 0 ? "the link failed" : "the other region refused a list of entries");
		return;
	}
	json_t *j = json_loadb(body ? body : "", len, 0, NULL);
	json_t *arr = json_object_get(j, "entries");
	remote_set rs = {0};
	size_t n = json_array_size(arr);
	if (!json_is_array(arr) || n > OAE_MAX_ENTRIES || !(rs.e = calloc(n ? n : 1, sizeof *rs.e))) {
		json_decref(j);
		pass_end(a, "a malformed list of entries");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(arr, i);
		meta_range_entry *e = &rs.e[rs.n];
		const char *vid = json_string_value(json_object_get(x, "version_id"));
		const char *h = json_string_value(json_object_get(x, "hlc"));
		const char *o = json_string_value(json_object_get(x, "origin"));
		long kl = util_unhex(json_string_value(json_object_get(x, "key")), e->key, META_KEY_MAX);
		if (!vid || !h || !o || kl < 0 || strlen(vid) > META_VERSION_ID_LEN || strlen(h) > HLC_STR_LEN ||
		    strlen(o) >= sizeof e->origin)
			continue;
		e->key_len = (size_t)kl;
		e->tombstone = json_is_true(json_object_get(x, "tombstone"));
		snprintf(e->version_id, sizeof e->version_id, "%s", vid);
		snprintf(e->hlc, sizeof e->hlc, "%s", h);
		snprintf(e->origin, sizeof e->origin, "%s", o);
		e->acl = (int)json_integer_value(json_object_get(x, "acl"));
		rs.n++;
	}
	json_decref(j);
	leaf_ctx c = {a, &rs};
	rc = meta_range_entries(a->env.reader, a->bucket, a->cur.from, a->cur.from_len, a->cur.to, a->cur.to_len,
				!a->cur.to, OAE_MAX_ENTRIES, leaf_one, &c);
	free(rs.e);
	if (rc != 0 && rc != ERR_LIMIT) {
		pass_end(a, "cannot read objects.db");
		return;
	}
	if (!a->nfix) {
		step(a);
		return;
	}
	if (committer_submit(a->env.writer, fix_exec, fix_done, a) != 0) {
		free(a->fix);
		a->fix = NULL;
		a->nfix = 0;
		pass_end(a, "the writer is saturated");
	}
}

static void get(oae *a, const char *target, http_client_cb cb)
{
	if (http_client_request(a->client, "GET", target, NULL, NULL, 0, 0, cb, a) != 0)
		pass_end(a, "out of memory");
}

static void digest_answered(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	oae *a = arg;
	if (a->stopping) {
		pass_end(a, "stopping");
		return;
	}
	if (rc != 0 || (resp->status != 200 && resp->status != 404)) {
		pass_end(a, rc != 0 ? "the link failed" : "the other region refused a digest");
		return;
	}
	meta_digest remote = {0};
	bool gone = resp->status == 404; /* no such bucket there: every row is missing */
	if (!gone) {
		json_t *j = json_loadb(body ? body : "", len, 0, NULL);
		const char *sha = json_string_value(json_object_get(j, "sha256"));
		remote.rows = json_integer_value(json_object_get(j, "rows"));
		remote.truncated = json_is_true(json_object_get(j, "truncated"));
		long sl = util_unhex(json_string_value(json_object_get(j, "split")), remote.split, META_KEY_MAX);
		remote.split_len = sl > 0 ? (size_t)sl : 0;
		bool ok = sha && strlen(sha) == 64 && util_unhex(sha, remote.sha256, 32) == 32;
		json_decref(j);
		if (!ok) {
			pass_end(a, "a malformed digest");
			return;
		}
	}
	meta_digest *l = &a->local;
	if (!gone && !l->truncated && !remote.truncated && l->rows == remote.rows &&
	    memcmp(l->sha256, remote.sha256, 32) == 0) {
		step(a); /* the same rows */
		return;
	}
	if (!l->rows) {
		step(a); /* nothing here to send: what it has more is its own pass's */
		return;
	}
	/* divide at a middle key of the larger side, if that divides */
	bool use_local = l->truncated || gone || l->rows >= remote.rows;
	const char *split = use_local ? l->split : remote.split;
	size_t split_len = use_local ? l->split_len : remote.split_len;
	bool small = !l->truncated && !remote.truncated && l->rows <= OAE_LEAF && remote.rows <= OAE_LEAF;
	bool divides = split_len && (split_len != a->cur.from_len || memcmp(split, a->cur.from, split_len) != 0);
	if (gone || small || !divides) {
		char target[4096];
		if (gone) {
			/* the bucket itself first; its rows follow as entries */
			if (fix_add(a, "", 0, "") != 0) {
				pass_end(a, "out of memory");
				return;
			}
		}
		if (range_target(target, sizeof target, "entries", a->bucket, &a->cur) != 0) {
			pass_end(a, "a key too long to compare");
			return;
		}
		if (gone) {
			/* nothing to fetch: everything here is missing there */
			http_message ok = {.status = 200};
			entries_answered(0, &ok, "{\"entries\":[]}", 14, a);
			return;
		}
		get(a, target, entries_answered);
		return;
	}
	char *sp = malloc(split_len + 1);
	if (!sp) {
		pass_end(a, "out of memory");
		return;
	}
	memcpy(sp, split, split_len);
	if (push(a, sp, split_len, a->cur.to, a->cur.to_len, !a->cur.to) != 0 ||
	    push(a, a->cur.from, a->cur.from_len, sp, split_len, false) != 0) {
		free(sp);
		pass_end(a, "out of memory");
		return;
	}
	free(sp);
	step(a);
}

/* The next range of the bucket, or the next bucket. */
static void step(oae *a)
{
	if (a->stopping) {
		pass_end(a, "stopping");
		return;
	}
	range_free(&a->cur);
	if (!a->depth) {
		next_bucket(a);
		return;
	}
	a->cur = a->stack[--a->depth];
	a->ranges++;
	int rc = meta_digest_range(a->env.reader, a->bucket, a->cur.from, a->cur.from_len, a->cur.to, a->cur.to_len,
				   !a->cur.to, OAE_MAX_ROWS, &a->local);
	char target[4096];
	if (rc != 0 || range_target(target, sizeof target, "digest", a->bucket, &a->cur) != 0) {
		pass_end(a, rc != 0 ? "cannot read objects.db" : "a key too long to compare");
		return;
	}
	get(a, target, digest_answered);
}

/* The other region's stamps of the bucket's configuration: when one of
 * ours is newer (a configuration change it never got: an outbox row lost,
 * say), the bucket is queued again, as a version would be. A bucket it
 * lacks altogether is the digest's business (404: every row missing). */
static void stamps_answered(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	oae *a = arg;
	if (a->stopping) {
		pass_end(a, "stopping");
		return;
	}
	if (rc != 0 || (resp->status != 200 && resp->status != 404)) {
		pass_end(a, rc != 0 ? "the link failed" : "the other region refused a bucket's stamps");
		return;
	}
	if (resp->status == 404) {
		step(a);
		return;
	}
	json_t *j = json_loadb(body ? body : "", len, 0, NULL);
	const char *theirs[3] = {json_string_value(json_object_get(j, "versioning")),
				 json_string_value(json_object_get(j, "acl")),
				 json_string_value(json_object_get(j, "cors"))};
	const char *ours[3] = {a->conf.versioning_stamp, a->conf.acl_stamp, a->conf.cors_stamp};
	bool behind = false, ok = true;
	for (int i = 0; i < 3; i++) {
		if (!theirs[i])
			ok = false;
		else if (strcmp(ours[i], theirs[i]) > 0)
			behind = true;
	}
	json_decref(j);
	if (!ok) {
		pass_end(a, "malformed bucket stamps");
		return;
	}
	if (!behind) {
		step(a);
		return;
	}
	if (fix_add(a, "", 0, "") != 0 || committer_submit(a->env.writer, fix_exec, fix_done, a) != 0) {
		free(a->fix);
		a->fix = NULL;
		a->nfix = 0;
		pass_end(a, "the writer is saturated");
	}
}

static void next_bucket(oae *a)
{
	meta_bucket b;
	int rc = meta_bucket_next(a->env.reader, a->bucket, &b);
	if (rc == ERR_NOTFOUND) {
		pass_end(a, NULL);
		return;
	}
	if (rc != 0) {
		pass_end(a, "cannot read objects.db");
		return;
	}
	snprintf(a->bucket, sizeof a->bucket, "%s", b.name);
	a->conf = b;
	if (push(a, "", 0, NULL, 0, true) != 0) {
		pass_end(a, "out of memory");
		return;
	}
	/* first the bucket's configuration: its stamps there */
	char target[256];
	snprintf(target, sizeof target, "/internal/v1/objects/bucket-stamps?bucket=%s", a->bucket);
	get(a, target, stamps_answered);
}

void oae_run_now(oae *a)
{
	if (!a || a->running || a->stopping || !a->env.peer)
		return;
	a->running = true;
	a->started_ms = util_now_ms();
	a->ranges = a->pass_repairs = 0;
	a->bucket[0] = '\0';
	next_bucket(a);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	oae_run_now(arg);
}

/* ------------------------------------------------------------- serving */

static void answer(http_request *req, int status, const char *json)
{
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, status, json, strlen(json));
}

static void answer_json(http_request *req, json_t *o)
{
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text) {
		answer(req, 503, "{\"error\":{\"code\":\"overloaded\",\"message\":\"out of memory\"}}");
		return;
	}
	answer(req, 200, text);
	free(text);
}

static int entry_json(void *arg, const meta_range_entry *e)
{
	json_t *arr = arg;
	char *k = hex_of(e->key, e->key_len);
	json_t *o = k ? json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:I, s:i}", "key", k, "version_id",
				  e->version_id, "hlc", e->hlc, "origin", e->origin, "tombstone", e->tombstone, "etag",
				  e->etag, "delete_marker", e->delete_marker, "size", (json_int_t)e->size, "acl", e->acl)
		      : NULL;
	free(k);
	if (!o || json_array_append_new(arr, o) != 0)
		return ERR_NOMEM;
	return 0;
}

void oae_serve(const orepl_env *env, http_request *req)
{
	const http_message *m = http_request_message(req);
	const char *t = m->target + strlen("/internal/v1/objects/");
	db_conn *db = env->reader;
	if (strcmp(t, "buckets") == 0) {
		json_t *arr = json_array();
		meta_bucket b;
		char after[META_BUCKET_MAX + 1] = "";
		int rc;
		while (arr && (rc = meta_bucket_next(db, after, &b)) == 0 && json_array_size(arr) < 100000) {
			json_array_append_new(arr, json_string(b.name));
			snprintf(after, sizeof after, "%s", b.name);
		}
		answer_json(req, arr ? json_pack("{s:o}", "buckets", arr) : NULL);
		return;
	}
	if (strncmp(t, "bucket-stamps?", 14) == 0) {
		char name[META_BUCKET_MAX + 1];
		meta_bucket b;
		int rc = util_query_param(m->target, "bucket", name, sizeof name) ? meta_bucket_get(db, name, &b)
										     : ERR_INVAL;
		if (rc == ERR_INVAL)
			answer(req, 400, "{\"error\":{\"code\":\"bad_request\",\"message\":\"needs bucket\"}}");
		else if (rc == ERR_NOTFOUND)
			answer(req, 404, "{\"error\":{\"code\":\"no_such_bucket\",\"message\":\"no such bucket here\"}}");
		else if (rc != 0)
			answer(req, 503, "{\"error\":{\"code\":\"store_failed\",\"message\":\"cannot read objects.db\"}}");
		else
			answer_json(req, json_pack("{s:s, s:s, s:s}", "versioning", b.versioning_stamp, "acl", b.acl_stamp,
						   "cors", b.cors_stamp));
		return;
	}
	bool digest = strncmp(t, "digest?", 7) == 0, entries = strncmp(t, "entries?", 8) == 0;
	if (!digest && !entries) {
		answer(req, 404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such object replication route\"}}");
		return;
	}
	char bucket[META_BUCKET_MAX + 1], fh[2 * META_KEY_MAX + 1], th[2 * META_KEY_MAX + 1];
	char from[META_KEY_MAX + 1], to[META_KEY_MAX + 1];
	bool has_to = util_query_param(m->target, "to", th, sizeof th);
	long fl = util_query_param(m->target, "from", fh, sizeof fh) ? util_unhex(fh, from, META_KEY_MAX) : -1;
	long tl = has_to ? util_unhex(th, to, META_KEY_MAX) : 0;
	if (!util_query_param(m->target, "bucket", bucket, sizeof bucket) || fl < 0 || tl < 0) {
		answer(req, 400, "{\"error\":{\"code\":\"bad_request\",\"message\":\"needs bucket, from (hex) and "
				 "optionally to (hex)\"}}");
		return;
	}
	meta_bucket b;
	int rc = meta_bucket_get(db, bucket, &b);
	if (rc == ERR_NOTFOUND) {
		answer(req, 404, "{\"error\":{\"code\":\"no_such_bucket\",\"message\":\"no such bucket here\"}}");
		return;
	}
	if (digest) {
		meta_digest d;
		rc = rc ? rc : meta_digest_range(db, bucket, from, (size_t)fl, to, (size_t)tl, !has_to, OAE_MAX_ROWS, &d);
		if (rc != 0) {
			answer(req, 503, "{\"error\":{\"code\":\"store_failed\",\"message\":\"cannot read objects.db\"}}");
			return;
		}
		char sha[65];
		util_hex(d.sha256, 32, sha);
		sha[64] = '\0';
		char *sp = hex_of(d.split, d.split_len);
		answer_json(req, sp ? json_pack("{s:I, s:s, s:b, s:s}", "rows", (json_int_t)d.rows, "sha256", sha,
						"truncated", d.truncated, "split", sp)
				    : NULL);
		free(sp);
		return;
	}
	json_t *arr = json_array();
	rc = rc ? rc : arr ? meta_range_entries(db, bucket, from, (size_t)fl, to, (size_t)tl, !has_to, OAE_MAX_ENTRIES,
						entry_json, arr)
			   : ERR_NOMEM;
	if (rc != 0 && rc != ERR_LIMIT) {
		json_decref(arr);
		answer(req, 503, "{\"error\":{\"code\":\"store_failed\",\"message\":\"cannot read objects.db\"}}");
		return;
	}
	answer_json(req, json_pack("{s:o, s:b}", "entries", arr, "truncated", rc == ERR_LIMIT));
}

/* ----------------------------------------------------------- lifecycle */

oae *oae_new(const orepl_env *env)
{
	oae *a = calloc(1, sizeof *a);
	if (!a)
		return NULL;
	a->env = *env;
	if (env->peer && util_split_hostport(env->peer->link_listen, a->host, sizeof a->host, &a->port) != 0) {
		free(a);
		return NULL;
	}
	return a;
}

int oae_start(oae *a)
{
	if (!a->env.peer)
		return 0;
	http_limits limits = {16384, 100, 8 << 20, 0};
	a->client = http_client_new(a->env.base, a->env.client_ctx, a->host, a->port, a->env.peer->name, &limits,
				    OAE_TIMEOUT_MS);
	if (!a->client)
		return ERR_NOMEM;
	orepl_bind_source(&a->env, a->client);
	int every = a->env.cfg->objects.anti_entropy_s;
	if (every <= 0)
		return 0;
	a->timer = event_new(a->env.base, -1, EV_PERSIST, tick, a);
	if (!a->timer)
		return ERR_NOMEM;
	struct timeval tv = util_timeval_ms(every * 1000);
	event_add(a->timer, &tv);
	return 0;
}

void oae_stop(oae *a)
{
	if (!a || a->stopping)
		return;
	a->stopping = true;
	if (a->timer)
		event_del(a->timer);
	http_client_free(&a->client); /* a request in flight ends the pass */
}

void oae_free(oae **ap)
{
	oae *a = *ap;
	if (!a)
		return;
	oae_stop(a);
	range_free(&a->cur);
	while (a->depth)
		range_free(&a->stack[--a->depth]);
	free(a->stack);
	free(a->fix);
	if (a->timer)
		event_free(a->timer);
	free(a);
	*ap = NULL;
}

void oae_stats(oae *a, uint64_t *passes, uint64_t *repairs, int64_t *last_ms)
{
	*passes = a ? a->passes : 0;
	*repairs = a ? a->repairs : 0;
	*last_ms = a ? a->last_ms : 0;
}
