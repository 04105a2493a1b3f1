/*
 * repl.c - replication lifecycle, the link server, waits, and status.
 *
 * The link is an HTTPS server with mutual TLS on link_listen. A peer is
 * accepted only with a certificate from the deployment's CA (the TLS layer
 * checks that) whose common name is a region of this deployment, or
 * "admin" (the command line), which may only read status. Routes:
 *
 *   GET  /internal/v1/replication/stream?from=SEQ   regions  (stream.c)
 *   POST /internal/v1/replication/ack               regions  (stream.c)
 *   GET  /internal/v1/position                      regions, admin
 *   GET  /internal/v1/status                        regions, admin
 *   GET  /internal/v1/verify                        regions, admin
 *   *    /v1/...                                    regions: forwarded API calls
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/ratelog.h"
#include "core/log.h"
#include "core/util.h"
#include "replication/internal.h"

/* --- waits --- */

static void waiter_fire(waiter *w, bool ok)
{
	/* unlink first: the callback may add new waiters */
	waiter **pp = w->list;
	while (*pp && *pp != w)
		pp = &(*pp)->next;
	if (*pp)
		*pp = w->next;
	if (w->timer)
		event_free(w->timer);
	repl_wait_cb cb = w->cb;
	void *arg = w->arg;
	free(w);
	cb(arg, ok);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	waiter_fire(arg, false);
}

void waitlist_add(repl *r, waiter **list, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	waiter *w = calloc(1, sizeof *w);
	if (!w) {
		cb(arg, false);
		return;
	}
	w->seq = seq;
	w->cb = cb;
	w->arg = arg;
	w->r = r;
	w->list = list;
	w->timer = evtimer_new(r->env.base, waiter_timeout, w);
	if (!w->timer) {
		free(w);
		cb(arg, false);
		return;
	}
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	evtimer_add(w->timer, &tv);
	w->next = *list;
	*list = w;
}

void waitlist_advance(waiter **list, uint64_t reached)
{
	bool again = true;
	while (again) {
		again = false;
		for (waiter *w = *list; w; w = w->next) {
			if (w->seq <= reached) {
				waiter_fire(w, true);
				again = true; /* the list changed under us */
				break;
			}
		}
	}
}

void waitlist_fail_all(waiter **list)
{
	while (*list)
		waiter_fire(*list, false);
}

void repl_wait_position(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	if (seq <= r->position) {
		cb(arg, true);
		return;
	}
	if (r->stopping || timeout_ms <= 0) {
		cb(arg, false);
		return;
	}
	waitlist_add(r, &r->position_waiters, seq, timeout_ms, cb, arg);
}

void repl_wait_acked(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	if (seq <= r->acked_seq) {
		cb(arg, true);
		return;
	}
	if (r->stopping) {
		cb(arg, false);
		return;
	}
	waitlist_add(r, &r->ack_waiters, seq, timeout_ms, cb, arg);
}

void repl_wait_confirmed(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	if (seq > r->acked_seq && (!r->primary || !r->subs)) {
		cb(arg, false);
		return;
	}
	repl_wait_acked(r, seq, timeout_ms, cb, arg);
}

int64_t repl_primary_silence_ms(repl *r)
{
	if (r->primary && repl_lease_valid(r))
		return 0;
	if (!r->fresh_mono)
		return INT64_MAX;
	int64_t d = voter_clock_ms() - r->fresh_mono;
	return d > 0 ? d : 0;
}

void repl_wait_lag(repl *r, int timeout_ms, repl_wait_cb cb, void *arg)
{
	/* only while the secondary is connected: a lost region must not stop
	 * the surviving one from taking writes */
	if (!r->primary || !r->subs || stream_lag_ms(r) <= r->env.cfg->replication.rpo_budget_ms) {
		cb(arg, true);
		return;
	}
	r->backpressure_waits++;
	waitlist_add(r, &r->lag_waiters, 0, timeout_ms, cb, arg);
}

bool repl_is_primary(const repl *r)
{
	return r->primary;
}

uint64_t repl_epoch(const repl *r)
{
	return r->epoch;
}

uint64_t repl_position(const repl *r)
{
	return r->position;
}

void repl_on_committed(repl *r, uint64_t seq)
{
	if (seq > r->position)
		r->position = seq;
	waitlist_advance(&r->position_waiters, r->position);
	stream_on_committed(r);
}

int repl_parse_lsn(const char *s, uint64_t *seq)
{
	const char *slash = strchr(s, '/');
	const char *num = slash ? slash + 1 : s;
	long long v;
	if (slash) {
		long long e;
		char epoch[24];
		size_t n = (size_t)(slash - s);
		if (n == 0 || n >= sizeof epoch)
			return ERR_INVAL;
		memcpy(epoch, s, n);
		epoch[n] = '\0';
		if (util_parse_int(epoch, 0, INT64_MAX, &e) != 0)
			return ERR_INVAL;
	}
	if (util_parse_int(num, 0, INT64_MAX, &v) != 0)
		return ERR_INVAL;
	*seq = (uint64_t)v;
	return 0;
}

/* --- answers on the link --- */

void repl_answer(http_request *req, int status, const char *code, const char *json_or_message)
{
	buf b;
	buf_init(&b, 1 << 20);
	if (code) {
		buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
		buf_add_json_escaped(&b, json_or_message, strlen(json_or_message));
		buf_adds(&b, "\"}}");
	} else {
		buf_adds(&b, json_or_message);
	}
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, status, b.data, b.len);
	buf_free(&b);
}

/* --- status --- */

static int64_t repl_lag_ms(repl *r)
{
	return r->primary ? stream_lag_ms(r) : applier_lag_ms(r);
}

void repl_status_json(repl *r, buf *out)
{
	int64_t now = util_now_ms();
	buf_printf(out, "{\"region\":\"%s\",\"role\":\"%s\",\"epoch\":%llu,", r->env.self->name,
		   r->primary ? "primary" : "secondary", (unsigned long long)r->epoch);
	if (r->primary) {
		uint64_t lag_pos = r->position > r->acked_seq ? r->position - r->acked_seq : 0;
		buf_printf(out,
			   "\"last_seq\":%llu,\"applied_seq\":%llu,\"peer_acked_seq\":%llu,"
			   "\"lag\":{\"positions\":%llu,\"seconds\":%.3f},"
			   "\"link\":{\"state\":\"%s\",\"subscribers\":%d},",
			   (unsigned long long)r->position, (unsigned long long)r->position,
			   (unsigned long long)r->acked_seq, (unsigned long long)(r->env.peer ? lag_pos : 0),
			   r->env.peer ? (double)stream_lag_ms(r) / 1000.0 : 0.0,
			   r->subs ? "up" : (r->env.peer ? "down" : "none"), r->subs ? 1 : 0);
		if (r->degraded_since_ms) {
			char iso[32];
			util_iso8601(r->degraded_since_ms, iso);
			buf_printf(out, "\"degraded\":true,\"degraded_since\":\"%s\",", iso);
		} else {
			buf_adds(out, "\"degraded\":false,");
		}
	} else {
		uint64_t lag_pos = r->primary_seq > r->position ? r->primary_seq - r->position : 0;
		buf_printf(out,
			   "\"last_seq\":%llu,\"applied_seq\":%llu,\"primary_seq\":%llu,"
			   "\"lag\":{\"positions\":%llu,\"seconds\":%.3f},\"link\":{\"state\":\"%s\"",
			   (unsigned long long)r->primary_seq, (unsigned long long)r->position,
			   (unsigned long long)r->primary_seq, (unsigned long long)lag_pos,
			   (double)applier_lag_ms(r) / 1000.0, r->streaming ? "up" : "down");
		if (!r->streaming && r->link_down_since_ms) {
			char iso[32];
			util_iso8601(r->link_down_since_ms, iso);
			buf_printf(out, ",\"down_since\":\"%s\"", iso);
		}
		buf_printf(out, "},\"degraded\":%s,", r->streaming ? "false" : "true");
	}
	election_status_json(r, out);
	buf_printf(out, "\"time_ms\":%lld}", (long long)now);
}

void repl_metrics(repl *r, buf *out)
{
	const char *n = r->env.self->name;
	uint64_t lag_pos = r->primary ? (r->position > r->acked_seq ? r->position - r->acked_seq : 0)
				      : (r->primary_seq > r->position ? r->primary_seq - r->position : 0);
	if (!r->env.peer)
		lag_pos = 0;
	const char *gate_code, *gate_message;
	int no_quorum = r->primary && repl_write_gate_peek(r, &gate_code, &gate_message) != 0 &&
			strcmp(gate_code, "no_quorum") == 0;
	buf_printf(out,
		   "# HELP tandem_replication_position Last committed (primary) or applied (secondary) position.\n"
		   "# TYPE tandem_replication_position gauge\n"
		   "tandem_replication_position{region=\"%s\"} %llu\n"
		   "# HELP tandem_replication_epoch The term of the current primary.\n"
		   "# TYPE tandem_replication_epoch gauge\n"
		   "tandem_replication_epoch{region=\"%s\"} %llu\n"
		   "# HELP tandem_replication_lag_positions Positions the secondary is behind.\n"
		   "# TYPE tandem_replication_lag_positions gauge\n"
		   "tandem_replication_lag_positions{region=\"%s\"} %llu\n"
		   "# HELP tandem_replication_lag_seconds Age of the oldest write the secondary lacks.\n"
		   "# TYPE tandem_replication_lag_seconds gauge\n"
		   "tandem_replication_lag_seconds{region=\"%s\"} %.3f\n"
		   "# HELP tandem_replication_applied_total Log entries applied (secondary).\n"
		   "# TYPE tandem_replication_applied_total counter\n"
		   "tandem_replication_applied_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_replication_degraded 1 while the other region is not replicating.\n"
		   "# TYPE tandem_replication_degraded gauge\n"
		   "tandem_replication_degraded{region=\"%s\"} %d\n"
		   "# HELP tandem_forwarded_writes_total Writes forwarded to the primary.\n"
		   "# TYPE tandem_forwarded_writes_total counter\n"
		   "tandem_forwarded_writes_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_forwarded_write_failures_total Forwarded writes that got no answer from the primary.\n"
		   "# TYPE tandem_forwarded_write_failures_total counter\n"
		   "tandem_forwarded_write_failures_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_forwarded_write_seconds_total Time forwarded writes took, answer and local apply included.\n"
		   "# TYPE tandem_forwarded_write_seconds_total counter\n"
		   "tandem_forwarded_write_seconds_total{region=\"%s\"} %.6f\n"
		   "# HELP tandem_backpressure_waits_total Writes slowed down because the secondary lagged past the RPO budget.\n"
		   "# TYPE tandem_backpressure_waits_total counter\n"
		   "tandem_backpressure_waits_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_no_quorum_refusals_total Writes refused or not acknowledged because the primary heard from no other voter for isolation_ms.\n"
		   "# TYPE tandem_no_quorum_refusals_total counter\n"
		   "tandem_no_quorum_refusals_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_no_quorum 1 while this primary refuses writes because it heard from no other voter (isolated).\n"
		   "# TYPE tandem_no_quorum gauge\n"
		   "tandem_no_quorum{region=\"%s\"} %d\n",
		   n, (unsigned long long)r->position, n, (unsigned long long)r->epoch, n,
		   (unsigned long long)lag_pos, n, r->env.peer ? (double)repl_lag_ms(r) / 1000.0 : 0.0, n,
		   (unsigned long long)r->applied_entries, n,
		   r->env.peer && (r->primary ? r->degraded_since_ms != 0 : !r->streaming), n,
		   (unsigned long long)r->forwarded, n, (unsigned long long)r->forward_failed, n,
		   r->forward_seconds_total, n, (unsigned long long)r->backpressure_waits, n,
		   (unsigned long long)r->no_quorum_refusals, n, no_quorum);
}

/* --- verify: a digest per table, at a known position --- */

static const char *const verify_tables[] = {"users", "sessions", "refresh_tokens", "records",
					    "idempotency"};

/* Digest of every replicated table, in one read transaction together with
 * the position it reflects. */
static int repl_digest(repl *r, buf *out)
{
	sqlite3 *db = db_handle(r->env.reader);
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return ERR_DB;
	uint64_t pos = 0;
	char role[16];
	uint64_t last = 0, applied = 0;
	if (capture_read_state(r->env.reader, role, NULL, &last, &applied) == 0)
		pos = r->primary ? last : applied;
	buf_printf(out, "{\"region\":\"%s\",\"position\":%llu,\"tables\":{", r->env.self->name,
		   (unsigned long long)pos);
	for (size_t i = 0; i < sizeof verify_tables / sizeof verify_tables[0]; i++) {
		char *sql = sqlite3_mprintf("SELECT * FROM \"%w\" ORDER BY 1, 2", verify_tables[i]);
		sqlite3_stmt *st = NULL;
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		long long rows = 0;
		if (sql && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
			while (sqlite3_step(st) == SQLITE_ROW) {
				rows++;
				int cols = sqlite3_column_count(st);
				for (int c = 0; c < cols; c++) {
					unsigned char type = (unsigned char)sqlite3_column_type(st, c);
					const void *v = sqlite3_column_blob(st, c);
					uint32_t len = (uint32_t)sqlite3_column_bytes(st, c);
					EVP_DigestUpdate(md, &type, 1);
					EVP_DigestUpdate(md, &len, sizeof len);
					if (len)
						EVP_DigestUpdate(md, v, len);
				}
			}
		}
		sqlite3_finalize(st);
		sqlite3_free(sql);
		unsigned char d[32];
		unsigned int dl = 32;
		EVP_DigestFinal_ex(md, d, &dl);
		EVP_MD_CTX_free(md);
		char hex[65];
		util_hex(d, 32, hex);
		buf_printf(out, "%s\"%s\":{\"rows\":%lld,\"sha256\":\"%s\"}", i ? "," : "", verify_tables[i],
			   rows, hex);
	}
	buf_adds(out, "}}");
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return 0;
}

typedef struct verify_wait {
	repl *r;
	http_request *req;
} verify_wait;

static void verify_ready(void *arg, bool ok)
{
	verify_wait *v = arg;
	buf b;
	buf_init(&b, 1 << 20);
	if (repl_digest(v->r, &b) == 0)
		repl_answer(v->req, 200, NULL, b.data);
	else
		repl_answer(v->req, 500, "internal_error", "cannot compute the digest");
	buf_free(&b);
	free(v);
}

/* --- the link server --- */

static bool peer_is_region(repl *r, const char *peer)
{
	return peer && config_region_find(r->env.cfg, peer) != NULL;
}

static char *query_value(const char *target, const char *name)
{
	const char *q = strchr(target, '?');
	size_t n = strlen(name);
	while (q) {
		q++;
		if (strncmp(q, name, n) == 0 && q[n] == '=') {
			const char *v = q + n + 1;
			size_t len = strcspn(v, "&");
			return strndup(v, len);
		}
		q = strchr(q, '&');
	}
	return NULL;
}

static void link_on_request(http_request *req, void *arg)
{
	repl *r = arg;
	const http_message *m = http_request_message(req);
	const char *peer = http_request_peer_name(req);
	bool region_peer = peer_is_region(r, peer);
	bool admin = peer && strcmp(peer, "admin") == 0;
	if (!region_peer && !admin) {
		log_warn("link: refused a peer without a known certificate name");
		repl_answer(req, 403, "forbidden", "unknown peer");
		return;
	}
	if (region_peer && election_isolated(r, peer)) {
		http_request_abort(req); /* fault switch: as if the network dropped it */
		return;
	}
	const char *t = m->target;
	if (strcmp(t, "/internal/v1/lease") == 0 || strcmp(t, "/internal/v1/vote") == 0 ||
	    strcmp(t, "/internal/v1/handover") == 0) {
		if (!region_peer || strcmp(m->method, "POST") != 0) {
			repl_answer(req, region_peer ? 405 : 403, region_peer ? "method_not_allowed" : "forbidden",
				    "voter messages are POSTs between regions");
			return;
		}
		if (t[13] == 'l')
			election_handle_lease(r, req, peer);
		else if (t[13] == 'v')
			election_handle_vote(r, req, peer);
		else
			election_handle_handover(r, req, peer);
		return;
	}
	if (strncmp(t, "/internal/v1/admin/", 19) == 0) {
		if (!admin) {
			repl_answer(req, 403, "forbidden", "admin actions need the admin certificate");
			return;
		}
		election_handle_admin(r, req, peer);
		return;
	}
	if (strcmp(t, "/internal/v1/replication/history") == 0 && strcmp(m->method, "GET") == 0) {
		if (!link_epoch_check(r, req))
			return;
		buf b;
		buf_init(&b, 1 << 16);
		history_json(r, &b);
		repl_answer(req, 200, NULL, b.data);
		buf_free(&b);
		return;
	}
	if (strncmp(t, "/v1/", 4) == 0) {
		if (!region_peer) {
			repl_answer(req, 403, "forbidden", "only regions forward API calls");
			return;
		}
		r->env.api_request(req, r->env.api_arg);
		return;
	}
	if (strncmp(t, "/internal/v1/replication/stream", 31) == 0 && strcmp(m->method, "GET") == 0) {
		if (!region_peer) {
			repl_answer(req, 403, "forbidden", "only regions stream");
			return;
		}
		stream_handle(r, req, peer);
		return;
	}
	if (strcmp(t, "/internal/v1/replication/snapshot") == 0 && strcmp(m->method, "GET") == 0) {
		if (!region_peer || !r->primary) {
			repl_answer(req, region_peer ? 409 : 403, region_peer ? "not_primary" : "forbidden",
				    "snapshots come from the primary, to regions");
			return;
		}
		snapshot_serve(r, req);
		return;
	}
	if (strcmp(t, "/internal/v1/replication/ack") == 0 && strcmp(m->method, "POST") == 0) {
		if (!region_peer) {
			repl_answer(req, 403, "forbidden", "only regions acknowledge");
			return;
		}
		stream_handle_ack(r, req, peer);
		return;
	}
	if (strcmp(t, "/internal/v1/position") == 0) {
		char json[256];
		snprintf(json, sizeof json, "{\"role\":\"%s\",\"epoch\":%llu,\"position\":%llu}",
			 r->primary ? "primary" : "secondary", (unsigned long long)r->epoch,
			 (unsigned long long)r->position);
		repl_answer(req, 200, NULL, json);
		return;
	}
	if (strcmp(t, "/internal/v1/status") == 0) {
		buf b;
		buf_init(&b, 1 << 16);
		repl_status_json(r, &b);
		repl_answer(req, 200, NULL, b.data);
		buf_free(&b);
		return;
	}
	if (strncmp(t, "/internal/v1/verify", 19) == 0) {
		/* ?at=SEQ: answer once this region has that position; a region
		 * already past it says so (the caller retries at a newer one) */
		char *at = query_value(t, "at");
		uint64_t seq = 0;
		if (at && repl_parse_lsn(at, &seq) != 0) {
			free(at);
			repl_answer(req, 400, "bad_request", "at must be a position");
			return;
		}
		free(at);
		verify_wait *v = calloc(1, sizeof *v);
		if (!v) {
			repl_answer(req, 503, "overloaded", "out of memory");
			return;
		}
		v->r = r;
		v->req = req;
		repl_wait_position(r, seq, r->env.cfg->replication.min_lsn_wait_ms, verify_ready, v);
		return;
	}
	repl_answer(req, 404, "not_found", "no such link route");
}

repl *repl_new(const repl_env *env, char *err, size_t errcap)
{
	repl *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	r->env = *env;
	buf_init(&r->frames, (size_t)FRAME_MAX_PAYLOAD + FRAME_HEADER_BYTES + 1);
	char role[16];
	uint64_t last = 0, applied = 0;
	if (capture_read_state(env->reader, role, &r->epoch, &last, &applied) != 0) {
		snprintf(err, errcap, "cannot read the replication state");
		free(r);
		return NULL;
	}
	r->primary = strcmp(role, "primary") == 0;
	r->position = r->primary ? last : applied;
	r->received_seq = r->position;
	if (election_init(r, err, errcap) != 0 || history_load(r) != 0) {
		if (!err[0])
			snprintf(err, errcap, "cannot read the epoch history");
		voter_free(&r->voter);
		free(r);
		return NULL;
	}
	r->acked_seq = 0;
	capture_set_enabled(env->capture, r->primary);
	int delay = env->cfg->replication.link_delay_ms;
	if (link_delay_init(r, delay) != 0) {
		snprintf(err, errcap, "out of memory");
		free(r);
		return NULL;
	}
	if (delay > 0)
		log_warn("artificial link delay of %d ms each way (for tests and benchmarks only)", delay);
	return r;
}

int repl_start(repl *r, char *err, size_t errcap)
{
	if (r->env.self->link_listen[0]) {
		const config_limits *l = &r->env.cfg->limits;
		/* The link serves one peer region (mutual TLS), with long answers:
		 * the stream and snapshots are produced as the socket drains
		 * (max_unsent_bytes per connection); a peer that reads nothing is
		 * given idle_timeout_ms, not the clients' write_timeout_ms, since a
		 * region busy restoring a snapshot may pause reading; its own memory
		 * budget, so an API flood does not refuse the replication stream; a
		 * per-address cap well above the few connections a peer opens, so
		 * one address cannot take all 256 before the peer connects. */
		http_server_config scfg = {
			.limits = {.max_header_bytes = l->max_header_bytes, .max_headers = l->max_headers,
				   .max_body_bytes = l->max_body_bytes, .max_target_bytes = l->max_url_bytes},
			.header_timeout_ms = l->header_timeout_ms,
			.idle_timeout_ms = l->idle_timeout_ms,
			.body_timeout_ms = l->body_timeout_ms,
			.write_timeout_ms = l->idle_timeout_ms,
			.max_unsent_bytes = l->max_unsent_bytes,
			.max_buffered_bytes = l->max_buffered_bytes,
			.max_connections = 256,
			.max_connections_per_address = 64,
			.ssl_ctx = r->env.link_server_ctx,
		};
		http_handlers h = {.on_request = link_on_request, .arg = r};
		r->link = http_server_new(r->env.base, &scfg, &h);
		if (!r->link || http_server_listen(r->link, r->env.self->link_listen) != 0) {
			snprintf(err, errcap, "cannot listen on the link address %s", r->env.self->link_listen);
			return ERR_IO;
		}
	}
	if (!r->primary && !r->env.peer) {
		snprintf(err, errcap, "a secondary needs a primary to replicate from");
		return ERR_CONFIG;
	}
	int rc = r->primary ? stream_start(r) : applier_start(r);
	if (rc == 0)
		rc = election_start(r);
	if (rc != 0)
		snprintf(err, errcap, "cannot start replication: %s", err_str(rc));
	return rc;
}

static void repl_link_closed(void *arg)
{
}

void repl_shutdown(repl *r)
{
	r->stopping = true;
	election_stop(r);
	link_delay_flush(r);
	stream_stop(r);
	applier_stop(r);
	waitlist_fail_all(&r->position_waiters);
	waitlist_fail_all(&r->ack_waiters);
	waitlist_fail_all(&r->lag_waiters);
	if (r->link)
		http_server_shutdown(r->link, repl_link_closed, r);
}

void repl_free(repl **pr)
{
	repl *r = *pr;
	if (!r)
		return;
	if (!r->stopping)
		repl_shutdown(r);
	http_server_free(&r->link);
	election_free(r);
	buf_free(&r->frames);
	ratelog_free(&r->connect_log);
	free(r);
	*pr = NULL;
}
