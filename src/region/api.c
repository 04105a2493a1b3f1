/*
 * api.c - the region's HTTP front: routes a request to its handler, owns the
 * per-request call object, and writes every answer with the headers each
 * one carries (X-Tandem-Region, X-Request-Id, Cache-Control), an error body
 * of the one shape {"error": {"code", "message"}}, one access-log line and
 * the metrics.
 *
 * A call lives from api_on_request() to api_finish(). Reads are answered on
 * the loop thread, except lists, which run on the reader threads (list.c);
 * writes go to the writer thread (api_submit_write) and are answered from the
 * completion, once durable.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/jsonpos.h"
#include "core/log.h"
#include "core/util.h"
#include "http/forwarded.h"
#include "region/cors.h"
#include "region/internal.h"

typedef void (*api_handler)(api_call *call);

typedef struct api_method {
	const char *method;
	api_handler handler;
} api_method;

typedef struct api_route {
	const char *pattern;     /* segments; "{...}" matches any one segment */
	api_method methods[5];
	const char *allow;       /* the Allow header for 405 (and for OPTIONS) */
	bool no_store;           /* answers hold a user's data or credentials: never cached */
} api_route;

static void api_healthz(api_call *call);
static void api_readyz(api_call *call);

/* The routes by name: an index is also the route's row in the metrics. */
enum api_route_id {
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_SIGNUP,
	ROUTE_LOGIN,
	ROUTE_REFRESH,
	ROUTE_LOGOUT,
	ROUTE_ME,
	ROUTE_RECORDS,
	ROUTE_RECORD,
	ROUTE_FILES,
	ROUTE_FILE_UPLOADS,
	ROUTE_FILE_URL,
	ROUTE_FILE,
	API_ROUTE_COUNT
};

/* /metrics is not here: it is served on the region's metrics_listen only
 * (metrics.c), never on the public API port */
static const api_route api_routes[API_ROUTE_COUNT] = {
	[ROUTE_HEALTHZ] = {"/healthz", {{"GET", api_healthz}}, "GET, HEAD", false},
	[ROUTE_READYZ] = {"/readyz", {{"GET", api_readyz}}, "GET, HEAD", false},
	[ROUTE_SIGNUP] = {"/v1/auth/signup", {{"POST", auth_signup}}, "POST", true},
	[ROUTE_LOGIN] = {"/v1/auth/login", {{"POST", auth_login}}, "POST", true},
	[ROUTE_REFRESH] = {"/v1/auth/refresh", {{"POST", auth_refresh}}, "POST", true},
	[ROUTE_LOGOUT] = {"/v1/auth/logout", {{"POST", auth_logout}}, "POST", true},
	[ROUTE_ME] = {"/v1/me", {{"GET", auth_me}}, "GET, HEAD", true},
	[ROUTE_RECORDS] = {"/v1/collections/{collection}/records",
			   {{"GET", records_list}, {"POST", records_create}},
			   "GET, HEAD, POST",
			   true},
	[ROUTE_RECORD] = {"/v1/collections/{collection}/records/{id}",
			  {{"GET", records_get}, {"PUT", records_update}, {"PATCH", records_update},
			   {"DELETE", records_delete}},
			  "GET, HEAD, PUT, PATCH, DELETE",
			  true},
	/* files: uploads before {id}, so that the fixed segment wins */
	[ROUTE_FILES] = {"/v1/files", {{"GET", files_index}, {"POST", files_upload}}, "GET, HEAD, POST", true},
	[ROUTE_FILE_UPLOADS] = {"/v1/files/uploads", {{"POST", files_presign_upload}}, "POST", true},
	[ROUTE_FILE_URL] = {"/v1/files/{id}/url", {{"POST", files_url}}, "POST", true},
	[ROUTE_FILE] = {"/v1/files/{id}", {{"GET", files_get}, {"DELETE", files_remove}}, "GET, HEAD, DELETE", true},
};

/* The files routes: served in the region that takes them, primary or not
 * (objects are multi-writer: docs/OBJECTS.md), never forwarded. */
static bool api_files_route(int index)
{
	return index >= ROUTE_FILES && index <= ROUTE_FILE;
}

const char *api_route_pattern(int index);
int api_route_count(void);

const char *api_route_pattern(int index)
{
	return index >= 0 && index < API_ROUTE_COUNT ? api_routes[index].pattern : "(unmatched)";
}

int api_route_count(void)
{
	return API_ROUTE_COUNT;
}

void api_json_string(buf *b, const char *s)
{
	buf_addc(b, '"');
	buf_add_json_escaped(b, s, strlen(s));
	buf_addc(b, '"');
}

void api_header(api_call *call, const char *name, const char *value)
{
	buf_printf(&call->headers, "%s: %s\r\n", name, value);
}

void api_error(api_call *call, int status, const char *code, const char *fmt, ...)
{
	char message[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	call->status = status;
	buf_reset(&call->body);
	buf_printf(&call->body, "{\"error\":{\"code\":\"%s\",\"message\":", code);
	api_json_string(&call->body, message);
	buf_adds(&call->body, "}}");
}

static void api_call_free(api_call *call)
{
	buf_free(&call->body);
	buf_free(&call->headers);
	if (call->json)
		json_decref(call->json);
	free(call->data_text);
	/* the password may sit in the call: wipe before freeing */
	explicit_bzero(call->password, sizeof call->password);
	explicit_bzero(call->refresh_token, sizeof call->refresh_token);
	free(call);
}

/* The answer's header lines (ours, then the common ones); the read
 * transaction ends. */
static void api_finish_headers(api_call *call)
{
	http_request *req = call->req;
	region *rg = call->rg;
	api_read_end(call);
	/* our own header lines ("Name: value\r\n"), made from validated parts
	 * (or read back from a stored answer that we made) */
	if (call->headers.len)
		http_response_header_lines(req, call->headers.data, call->headers.len);
	buf *h = &call->headers;
	buf_reset(h);
	if (call->replayed)
		buf_adds(h, "Idempotent-Replayed: true\r\n");
	buf_printf(h, "X-Tandem-Region: %s\r\nX-Request-Id: %s\r\n", rg->self->name, call->request_id);
	if (call->body.len)
		buf_adds(h, "Content-Type: application/json\r\n");
	if (!call->preflight) {
		/* Nothing the API answers belongs in a shared cache (an edge,
		 * docs/EDGE.md "Cache"): personal answers hold a user's data or
		 * credentials, and the rest (health, readiness, errors of
		 * unknown routes) must be live. A file's bytes may sit in the
		 * client's own cache (it revalidates with If-None-Match):
		 * private, which a shared cache never stores either. */
		bool personal = call->route_index >= 0 && api_routes[call->route_index].no_store;
		buf_adds(h, personal && call->cache_private ? "Cache-Control: private\r\n" : "Cache-Control: no-store\r\n");
	}
	/* CORS: a forwarded call's answer gets them from the region the
	 * browser talks to; a preflight already has its own */
	if (!call->via_link && !call->preflight) {
		size_t olen = 0;
		const char *origin = http_message_field(call->msg, "Origin", &olen);
		if (cors_answer_headers(rg->cors, origin, olen, h) != 0)
			log_warn("request %s: the CORS headers do not fit the answer", call->request_id);
	}
	http_response_header_lines(req, h->data, h->len);
}

void api_finish(api_call *call)
{
	http_request *req = call->req;
	region *rg = call->rg;
	if (call->status == 0) { /* cannot happen: every path sets a status */
		log_error("BUG: no status for %s", call->route);
		api_error(call, 500, "internal_error", "internal error");
	}
	api_finish_headers(call);
	int64_t duration = util_mono_us() - call->start_us;
	/* log first: answering may reset the parser that holds the method. A
	 * health probe that passes is not logged (the DNS's and the edges'
	 * probes come every second from each; /metrics counts them): only a
	 * failing one is */
	bool probe_ok = call->status == 200 && (strcmp(call->route, "/readyz") == 0 || strcmp(call->route, "/healthz") == 0);
	if (!probe_ok)
		log_request(call->msg->method, call->route, call->status, duration, call->request_id);
	/* handed over, not copied: a large answer exists once in memory */
	http_respond_take(req, call->status, &call->body);
	metrics_request(rg->metrics, call->route_index, call->status, duration);
	api_call_free(call);
}

void api_stream_begin(api_call *call, int status, uint64_t length)
{
	call->status = status;
	buf_reset(&call->body);
	api_finish_headers(call);
	log_request(call->msg->method, call->route, call->status, util_mono_us() - call->start_us,
		    call->request_id);
	http_respond_start_length(call->req, status, length);
}

void api_stream_end(api_call *call, bool complete)
{
	if (complete)
		http_respond_end(call->req);
	else
		http_request_abort(call->req);
	metrics_request(call->rg->metrics, call->route_index, call->status, util_mono_us() - call->start_us);
	api_call_free(call);
}

/* --- writes --- */

static int api_write_exec(db_conn *db, void *arg)
{
	api_call *call = arg;
	if (call->rg->capture && !capture_batch_active(call->rg->capture)) {
		/* this region stopped being the primary after the gate let the
		 * write in (it waited for the lag, or queued behind a batch): a
		 * write committed now would never reach the other region.
		 * Nothing is written; the client retries (at the new primary,
		 * where a forwarded retry lands) */
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "not_primary",
			  "this region stopped being the primary before the write ran; nothing was written, retry");
		return ERR_CONFLICT;
	}
	int rc = idempotency_check(db, call);
	if (rc != 0)
		return rc < 0 ? rc : 0; /* answered from the stored response, or 422 */
	rc = call->write(db, call);
	if (rc == 0 && call->status >= 200 && call->status < 300 && call->rg->capture &&
	    capture_pending_seq(call->rg->capture)) {
		/* the position this batch gets; in the stored answer too, so a
		 * replay can wait for the same write's replication */
		char lsn[48];
		snprintf(lsn, sizeof lsn, "%llu/%llu", (unsigned long long)capture_epoch(call->rg->capture),
			 (unsigned long long)capture_pending_seq(call->rg->capture));
		api_header(call, "X-Tandem-LSN", lsn);
	}
	if (rc == 0 && call->has_idem && call->status >= 200 && call->status < 300) {
		rc = idempotency_store(db, call);
		if (rc < 0)
			api_error(call, 500, "internal_error", "cannot record the idempotency key");
	}
	if (rc < 0 && call->status < 400)
		api_error(call, 500, "internal_error", "the write failed");
	return rc;
}

static void api_global_acked(void *arg, bool ok)
{
	api_call *call = arg;
	if (!ok) {
		/* durable here, not confirmed there: say so, keep the position */
		char lsn[48];
		const char *h = call->headers.data ? strstr(call->headers.data, "X-Tandem-LSN: ") : NULL;
		snprintf(lsn, sizeof lsn, "%.*s", h ? (int)strcspn(h + 14, "\r") : 0, h ? h + 14 : "");
		buf_reset(&call->headers);
		call->replayed = false;
		api_header(call, "X-Tandem-LSN", lsn);
		api_header(call, "Retry-After", "1");
		if (call->has_idem)
			api_error(call, 503, "replication_timeout",
				  "the write is durable in this region but the other region did not confirm it "
				  "in time; retry with the same Idempotency-Key to get the result once it does");
		else
			/* without a key a retry is a new write: the client must know
			 * that this one may well be saved */
			api_error(call, 503, "replication_timeout",
				  "the write is durable in this region but the other region did not confirm it "
				  "in time, and it had no Idempotency-Key: %s; read it back (X-Tandem-LSN) "
				  "before writing again, and send an Idempotency-Key to make retries safe",
				  strcmp(call->msg->method, "POST") == 0 && call->route_index == ROUTE_RECORDS
					  ? "a retry without a key creates a second record"
					  : "a retry without a key applies the write a second time");
	}
	api_finish(call);
}

/* A revocation (logout, refresh-token reuse) is in force here once
 * committed; this says whether the other region confirmed it too. When it
 * did not (cut off, slow), the answer stands: the session has ended where
 * tokens are checked against the newest state, and a secondary cut off
 * from this primary refuses tokens after auth_max_staleness_s. */
static void api_revocation_acked(void *arg, bool ok)
{
	api_call *call = arg;
	api_header(call, "X-Tandem-Durability", ok ? "global" : "local");
	if (!ok)
		log_warn("a session ended here; the other region has not confirmed it (request %s)",
			 call->request_id);
	api_finish(call);
}

static void api_write_done(void *arg, int rc, uint64_t seq)
{
	api_call *call = arg;
	call->seq = seq;
	if (call->write_counted) {
		call->write_counted = false;
		repl_write_finished(call->rg->repl);
	}
	const char *gate_code, *gate_message;
	if (rc == 0 && call->status >= 200 && call->status < 300 &&
	    repl_ack_gate(call->rg->repl, &gate_code, &gate_message) != 0) {
		/* committed as the lease ended or as this region lost touch with
		 * every other voter: not acknowledged. If the next primary lacks
		 * it, it goes to this region's quarantine when it rejoins; a
		 * retry with the same key lands exactly once */
		buf_reset(&call->headers);
		call->replayed = false;
		api_header(call, "Retry-After", "1");
		if (strcmp(gate_code, "no_lease") == 0)
			api_error(call, 503, gate_code,
				  "this region lost its lease while the write committed; it is not acknowledged: "
				  "retry with the same Idempotency-Key");
		else
			api_error(call, 503, gate_code,
				  "this region lost touch with the other region and the witness while the write "
				  "committed; it is not acknowledged: retry with the same Idempotency-Key");
		api_finish(call);
		return;
	}
	if (rc == ERR_IO || rc == ERR_AGAIN) { /* the batch did not reach the disk (or the database was busy) */
		buf_reset(&call->headers);
		call->replayed = false;
		api_error(call, 503, "storage_unavailable",
			  "the write could not be made durable; nothing was saved, retry");
		api_header(call, "Retry-After", "1");
	}
	if (call->replayed)
		metrics_idempotent_replay(call->rg->metrics);
	if (rc == 0 && call->revocation && seq) {
		/* ending a session is always a global write, whatever was asked:
		 * wait (bounded) for the other region, and say what happened */
		call->seq = seq;
		repl_wait_confirmed(call->rg->repl, seq, call->rg->cfg->replication.global_ack_wait_ms,
				    api_revocation_acked, call);
		return;
	}
	if (call->durability_global && call->status >= 200 && call->status < 300) {
		/* RPO 0 for this write: answer only once the other region has it */
		uint64_t lsn = seq;
		const char *h = call->headers.data ? strstr(call->headers.data, "X-Tandem-LSN: ") : NULL;
		if (h) {
			char text[48];
			snprintf(text, sizeof text, "%.*s", (int)strcspn(h + 14, "\r"), h + 14);
			repl_parse_lsn(text, &lsn);
		}
		if (lsn) {
			call->seq = lsn;
			repl_wait_acked(call->rg->repl, lsn, call->rg->cfg->replication.global_ack_wait_ms,
					api_global_acked, call);
			return;
		}
	}
	api_finish(call);
}

static void api_submit_now(api_call *call)
{
	/* counted before it can reach the writer, then the gate once more: a
	 * switchover steps down only with no write in flight, after telling
	 * the view; one of the two sees the other (repl_write_started), so a
	 * write is either counted in time or refused here (it may have waited
	 * for the lag since the first gate) */
	repl_write_started(call->rg->repl);
	const char *code, *message;
	if (repl_write_gate(call->rg->repl, &code, &message) != 0) {
		repl_write_finished(call->rg->repl);
		api_header(call, "Retry-After", "1");
		api_error(call, 503, code, "%s", message);
		api_finish(call);
		return;
	}
	int rc = committer_submit(call->rg->writer, api_write_exec, api_write_done, call);
	if (rc == 0)
		call->write_counted = true;
	else
		repl_write_finished(call->rg->repl);
	if (rc != 0) {
		api_error(call, 503, "overloaded", "too many writes waiting; retry shortly");
		api_header(call, "Retry-After", "1");
		api_finish(call);
	}
}

static void api_lag_ok(void *arg, bool ok)
{
	api_call *call = arg;
	if (!ok) {
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "replication_lag",
			  "the other region lags behind more than the RPO budget; retry shortly");
		api_finish(call);
		return;
	}
	api_submit_now(call);
}

void api_submit_write(api_call *call)
{
	/* backpressure: while the secondary is connected but further behind
	 * than the RPO budget, new writes wait (bounded) for it to catch up */
	repl_wait_lag(call->rg->repl, call->rg->cfg->replication.backpressure_wait_ms, api_lag_ok, call);
}

/* --- request helpers --- */

void api_read_begin(api_call *call)
{
	sqlite3_stmt *st = db_stmt(call->rg->reader, "BEGIN");
	if (st && sqlite3_step(st) == SQLITE_DONE)
		call->read_txn = true;
	if (st)
		sqlite3_reset(st);
}

void api_read_end(api_call *call)
{
	if (!call->read_txn)
		return;
	sqlite3_stmt *st = db_stmt(call->rg->reader, "COMMIT");
	if (st) {
		sqlite3_step(st);
		sqlite3_reset(st);
	}
	call->read_txn = false;
}

bool api_request_header(api_call *call, const char *name, char *out, size_t cap)
{
	size_t len;
	const char *v = http_message_field(call->msg, name, &len);
	if (!v)
		return false;
	if (len >= cap)
		len = cap - 1;
	memcpy(out, v, len);
	out[len] = '\0';
	return true;
}

bool api_parse_json_object(api_call *call, bool merge_patch_ok)
{
	char type[128];
	if (!api_request_header(call, "Content-Type", type, sizeof type)) {
		api_error(call, 415, "unsupported_media_type",
			  "Content-Type must be application/json");
		return false;
	}
	char *semi = strchr(type, ';');
	if (semi)
		*semi = '\0';
	for (char *e = type + strlen(type); e > type && (e[-1] == ' ' || e[-1] == '\t');)
		*--e = '\0';
	bool ok = strcasecmp(type, "application/json") == 0 ||
		  (merge_patch_ok && strcasecmp(type, "application/merge-patch+json") == 0);
	if (!ok) {
		api_error(call, 415, "unsupported_media_type", "Content-Type must be %s, not %s",
			  merge_patch_ok ? "application/json or application/merge-patch+json"
					 : "application/json",
			  type);
		return false;
	}
	size_t len;
	const char *body = http_request_body(call->req, &len);
	json_error_t jerr;
	call->json = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!call->json) {
		/* jansson's own text names its internals: say it in words */
		char message[256];
		if (jsonpos_describe(body, len, &jerr, message, sizeof message) != 0) {
			api_header(call, "Retry-After", "1");
			api_error(call, 503, "overloaded", "%s", message);
		} else {
			api_error(call, 400, "malformed_json", "%s", message);
		}
		return false;
	}
	if (!json_is_object(call->json)) {
		api_error(call, 400, "not_an_object", "the body must be a JSON object");
		return false;
	}
	return true;
}

static bool api_authenticate_mode(api_call *call, bool allow_revoked);

bool api_authenticate(api_call *call)
{
	return api_authenticate_mode(call, false);
}

bool api_authenticate_allow_revoked(api_call *call)
{
	return api_authenticate_mode(call, true);
}

static bool api_authenticate_mode(api_call *call, bool allow_revoked)
{
	region *rg = call->rg;
	char auth[1200];
	if (!api_request_header(call, "Authorization", auth, sizeof auth)) {
		api_header(call, "WWW-Authenticate", "Bearer");
		api_error(call, 401, "missing_token", "an access token is required (Authorization: Bearer ...)");
		return false;
	}
	if (strncasecmp(auth, "Bearer ", 7) != 0) {
		api_header(call, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		api_error(call, 401, "invalid_token", "the Authorization header must be Bearer <token>");
		return false;
	}
	const char *tok = auth + 7;
	while (*tok == ' ')
		tok++;
	token_claims claims;
	int v = token_verify_cached(&rg->secrets, tok, strlen(tok), call->now_ms / 1000, &claims);
	if (v == TOKEN_EXPIRED) {
		api_header(call, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		api_error(call, 401, "token_expired", "the access token has expired; refresh it");
		return false;
	}
	if (v != TOKEN_OK) {
		api_header(call, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		api_error(call, 401, "invalid_token", "the access token is not valid");
		return false;
	}
	/* a region that has not heard from the primary for too long may have
	 * missed logouts: refuse rather than accept a revoked token */
	int max_s = rg->cfg->auth.auth_max_staleness_s;
	if (max_s > 0 && rg->repl && repl_primary_silence_ms(rg->repl) > (int64_t)max_s * 1000) {
		api_header(call, "Retry-After", "5");
		api_error(call, 503, "region_isolated",
			  "this region has not heard from the primary region for more than %d s and cannot tell "
			  "whether this token was revoked; retry shortly, or use the other region",
			  max_s);
		return false;
	}
	sqlite3_stmt *st = db_stmt(rg->reader, "SELECT revoked_at FROM sessions WHERE id = ?1 AND user_id = ?2");
	if (!st) {
		api_error(call, 500, "internal_error", "cannot check the session");
		return false;
	}
	sqlite3_bind_text(st, 1, claims.session_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, claims.user_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	bool revoked = rc != SQLITE_ROW || sqlite3_column_type(st, 0) != SQLITE_NULL;
	sqlite3_reset(st);
	if (revoked && allow_revoked && rc == SQLITE_ROW) {
		call->session_revoked = true;
	} else if (revoked) {
		api_header(call, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		api_error(call, 401, "token_revoked", "the session of this token has ended; log in again");
		return false;
	}
	snprintf(call->user_id, sizeof call->user_id, "%s", claims.user_id);
	snprintf(call->session_id, sizeof call->session_id, "%s", claims.session_id);
	call->authenticated = true;
	return true;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Percent-decode [s, s+len) ('+' is a space in query strings). NULL if bad. */
static char *url_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			if (i + 2 >= len) {
				free(out);
				return NULL;
			}
			int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
			if (h < 0 || l < 0) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(h * 16 + l);
			i += 2;
		} else if (s[i] == '+') {
			out[o++] = ' ';
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	if (strlen(out) != o) { /* an encoded NUL */
		free(out);
		return NULL;
	}
	return out;
}

char *api_query_param(api_call *call, const char *name, bool *bad)
{
	*bad = false;
	const char *q = call->query;
	size_t nlen = strlen(name);
	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t plen = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', plen);
		size_t klen = eq ? (size_t)(eq - q) : plen;
		if (klen == nlen && memcmp(q, name, nlen) == 0) {
			const char *v = eq ? eq + 1 : q + plen;
			char *out = url_decode(v, plen - (size_t)(v - q));
			if (!out)
				*bad = true;
			return out;
		}
		q = amp ? amp + 1 : NULL;
	}
	return NULL;
}

/* --- small routes --- */

static void api_healthz(api_call *call)
{
	call->status = 200;
	buf_adds(&call->body, "{\"status\":\"ok\"}");
	api_finish(call);
}

static void api_readyz(api_call *call)
{
	region *rg = call->rg;
	call->status = rg->shutting_down ? 503 : 200;
	buf_printf(&call->body, "{\"status\":\"%s\",\"region\":", rg->shutting_down ? "stopping" : "ready");
	api_json_string(&call->body, rg->self->name);
	buf_printf(&call->body, ",\"role\":\"%s\",\"epoch\":%llu,\"position\":%llu",
		   repl_is_primary(rg->repl) ? "primary" : "secondary",
		   (unsigned long long)repl_epoch(rg->repl), (unsigned long long)repl_position(rg->repl));
	/* reads go on whatever this says: "open", or why writes are refused */
	const char *gate = "open", *message;
	if (!repl_is_primary(rg->repl))
		gate = "not_primary";
	else if (repl_write_gate_peek(rg->repl, &gate, &message) == 0)
		gate = "open";
	buf_printf(&call->body, ",\"write_gate\":\"%s\"", gate);
	buf_printf(&call->body, ",\"schema_version\":%d}", db_schema_version(rg->reader));
	api_finish(call);
}

/* --- routing --- */

/* Does the path (segments) match the pattern? */
static bool api_route_match(const api_route *r, const api_call *call)
{
	const char *p = r->pattern;
	int i = 0;
	while (*p) {
		if (*p != '/' || i >= call->segment_count)
			return false;
		p++;
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (p[0] != '{' && (len != call->segment_lens[i] || memcmp(p, call->segments[i], len) != 0))
			return false;
		p += len;
		i++;
	}
	return i == call->segment_count;
}

static bool api_valid_request_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("-_.:", s[i]))
			return false;
	return true;
}

/* --- forwarding and read consistency --- */

static bool api_is_write(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0 ||
	       strcmp(method, "DELETE") == 0;
}

typedef struct api_pending {
	api_call *call;
	api_handler handler;
} api_pending;

static void api_forward_applied(void *arg, bool ok)
{
	api_call *call = arg;
	if (!ok)
		log_warn("forwarded write %s not applied here within the wait; answering anyway",
			 call->request_id);
	api_finish(call);
}

static void api_forward_answer(void *arg, int rc, int status, const char *headers, size_t headers_len,
			       const char *body, size_t body_len)
{
	api_call *call = arg;
	if (rc == 0 && status == 409 && !call->forward_retried && strstr(headers, "X-Tandem-Epoch: ") &&
	    memmem(body, body_len, "stale_epoch", 11)) {
		/* we were behind on epochs: learn and forward once more */
		const char *h = strstr(headers, "X-Tandem-Epoch: ");
		char text[24];
		long long e = 0;
		snprintf(text, sizeof text, "%.*s", (int)strcspn(h + 16, "\r"), h + 16);
		if (util_parse_int(text, 0, INT64_MAX, &e) == 0)
			repl_learn_epoch(call->rg->repl, (uint64_t)e);
		call->forward_retried = true;
		repl_forward(call->rg->repl, call->req, call->request_id, api_forward_answer, call);
		return;
	}
	if (rc != 0) {
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "primary_unavailable",
			  "the primary region cannot be reached to take this write; retry shortly "
			  "(with the same Idempotency-Key)");
		api_finish(call);
		return;
	}
	call->status = status;
	buf_reset(&call->body);
	buf_add(&call->body, body, body_len);
	buf_add(&call->headers, headers, headers_len);
	/* session consistency: the client's next read here sees this write */
	uint64_t lsn = 0;
	const char *h = strcasestr(call->headers.data ? call->headers.data : "", "X-Tandem-LSN: ");
	if (h) {
		char text[48];
		snprintf(text, sizeof text, "%.*s", (int)strcspn(h + 14, "\r"), h + 14);
		repl_parse_lsn(text, &lsn);
	}
	if (lsn) {
		repl_wait_position(call->rg->repl, lsn, call->rg->cfg->replication.min_lsn_wait_ms,
				   api_forward_applied, call);
		return;
	}
	api_finish(call);
}

static void api_consistent(void *arg, bool ok)
{
	api_pending *p = arg;
	api_call *call = p->call;
	api_handler handler = p->handler;
	free(p);
	if (!ok) {
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "not_caught_up",
			  "this region has not caught up with the requested position in time; retry shortly");
		api_finish(call);
		return;
	}
	handler(call);
}

/* Run the handler, after what consistency and the region's role ask for. */
static void api_dispatch(api_call *call, api_handler handler)
{
	region *rg = call->rg;
	const char *method = call->msg->method;
	bool v1 = strncmp(call->route, "/v1/", 4) == 0;
	char value[64];
	call->durability_global = strcmp(rg->cfg->replication.write_durability, "global") == 0;
	if (api_request_header(call, "X-Tandem-Durability", value, sizeof value)) {
		if (strcmp(value, "global") == 0)
			call->durability_global = true;
		else if (strcmp(value, "local") == 0)
			call->durability_global = false;
		else {
			api_error(call, 400, "invalid_durability", "X-Tandem-Durability must be local or global");
			api_finish(call);
			return;
		}
	}
	if (v1 && api_is_write(method) && !api_files_route(call->route_index)) {
		if (call->via_link && api_request_header(call, "X-Tandem-Epoch", value, sizeof value)) {
			/* fencing: a forward from an older epoch is refused, one from a
			 * newer epoch deposes us */
			long long e = 0;
			util_parse_int(value, 0, INT64_MAX, &e);
			if (!repl_forwarded_epoch_ok(rg->repl, (uint64_t)e)) {
				char json[160];
				snprintf(json, sizeof json, "%llu", (unsigned long long)repl_promised_epoch(rg->repl));
				api_header(call, "X-Tandem-Epoch", json);
				api_error(call, 409, "stale_epoch", "the forwarding region knows an older epoch");
				api_finish(call);
				return;
			}
		}
		if (!repl_is_primary(rg->repl)) {
			if (call->via_link) { /* never forward twice */
				api_header(call, "Retry-After", "1");
				api_error(call, 503, "not_primary", "this region is not the primary");
				api_finish(call);
				return;
			}
			repl_forward(rg->repl, call->req, call->request_id, api_forward_answer, call);
			return;
		}
		const char *code, *message;
		if (repl_write_gate(rg->repl, &code, &message) != 0) {
			api_header(call, "Retry-After", "1");
			api_error(call, 503, code, "%s", message);
			api_finish(call);
			return;
		}
		handler(call);
		return;
	}
	if (!v1) {
		handler(call);
		return;
	}
	/* reads: Min-LSN, then the consistency mode */
	uint64_t min_seq = 0;
	/* a token from a session this region has not applied yet (it was just
	 * created in the other region): wait for that position, so a client can
	 * move between regions at any moment */
	char auth[1200];
	if (api_request_header(call, "Authorization", auth, sizeof auth) &&
	    strncasecmp(auth, "Bearer ", 7) == 0) {
		token_claims claims;
		const char *tok = auth + 7;
		if (token_verify_cached(&rg->secrets, tok, strlen(tok), call->now_ms / 1000, &claims) == TOKEN_OK &&
		    claims.seq > repl_position(rg->repl))
			min_seq = claims.seq;
	}
	uint64_t asked = 0;
	if (api_request_header(call, "X-Tandem-Min-LSN", value, sizeof value) &&
	    repl_parse_lsn(value, &asked) != 0) {
		api_error(call, 400, "invalid_lsn", "X-Tandem-Min-LSN must be a position (EPOCH/SEQ)");
		api_finish(call);
		return;
	}
	if (asked > min_seq)
		min_seq = asked;
	const char *mode = rg->cfg->replication.read_consistency;
	if (api_request_header(call, "X-Tandem-Consistency", value, sizeof value)) {
		if (strcmp(value, "eventual") && strcmp(value, "session") && strcmp(value, "global")) {
			api_error(call, 400, "invalid_consistency",
				  "X-Tandem-Consistency must be eventual, session or global");
			api_finish(call);
			return;
		}
		mode = strcmp(value, "global") == 0 ? "global" : "local";
	}
	int wait = rg->cfg->replication.min_lsn_wait_ms;
	if (min_seq == 0 && strcmp(mode, "global") != 0) {
		handler(call);
		return;
	}
	api_pending *p = malloc(sizeof *p);
	if (!p) {
		api_error(call, 503, "overloaded", "out of memory");
		api_finish(call);
		return;
	}
	p->call = call;
	p->handler = handler;
	if (min_seq)
		repl_wait_position(rg->repl, min_seq, wait, api_consistent, p);
	else
		repl_wait_global(rg->repl, wait, api_consistent, p);
}

/*
 * OPTIONS on a route. A CORS preflight (Origin and Access-Control-Request-
 * Method) from an allowed origin: 204 with the Access-Control-Allow-* lines;
 * from any other origin (or with CORS off): 403 origin_not_allowed, without
 * them, so the browser refuses the actual request. A plain OPTIONS: 204 with
 * Allow. No authentication: browsers send preflights without credentials.
 */
static void api_options(api_call *call, const api_route *r)
{
	size_t olen = 0, mlen = 0;
	const char *origin = http_message_field(call->msg, "Origin", &olen);
	const char *asked = http_message_field(call->msg, "Access-Control-Request-Method", &mlen);
	if (!origin || !asked) {
		call->status = 204;
		api_header(call, "Allow", r->allow);
		api_finish(call);
		return;
	}
	call->preflight = true;
	if (cors_preflight_headers(call->rg->cors, origin, olen, r->allow, &call->headers) != 0) {
		call->preflight = false; /* an ordinary answer: Vary as any other */
		api_error(call, 403, "origin_not_allowed",
			  "this origin may not call the API from a browser (see [api] cors_origins)");
		api_finish(call);
		return;
	}
	call->status = 204;
	api_finish(call);
}

static void api_route_request(http_request *req, region *rg, bool via_link);

void api_on_request(http_request *req, void *arg)
{
	api_route_request(req, arg, false);
}

void api_on_link_request(http_request *req, void *arg)
{
	api_route_request(req, arg, true);
}

/* Answer from on_head with a JSON error (the body is not read; the
 * connection closes after the answer). */
static void api_head_error(http_request *req, int status, const char *code, const char *message,
			   const char *www_authenticate)
{
	char body[512], rid[33];
	util_request_id(rid);
	int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
	http_response_header(req, "Content-Type", "application/json");
	http_response_header(req, "X-Request-Id", rid);
	http_response_header(req, "Cache-Control", "no-store");
	if (www_authenticate)
		http_response_header(req, "WWW-Authenticate", www_authenticate);
	log_request(http_request_message(req)->method, "/v1/files", status, 0, rid);
	http_respond(req, status, body, n > 0 && (size_t)n < sizeof body ? (size_t)n : 0);
}

void api_on_head(http_request *req, void *arg)
{
	region *rg = arg;
	const http_message *m = http_request_message(req);
	const char *t = m->target;
	size_t plen = strcspn(t, "?");
	if (strcmp(m->method, "POST") != 0 || plen != 9 || strncmp(t, "/v1/files", 9) != 0)
		return; /* every other route keeps the JSON body limit */
	/* an upload's body may be 10 MiB: a client without a valid token is
	 * refused before any of it is read (the session's revocation is
	 * checked by the handler, against the database) */
	size_t alen = 0;
	const char *auth = http_message_field(m, "Authorization", &alen);
	if (!auth) {
		api_head_error(req, 401, "missing_token", "an access token is required (Authorization: Bearer ...)",
			       "Bearer");
		return;
	}
	const char *tok = auth + 7;
	size_t tlen = alen > 7 ? alen - 7 : 0;
	while (tlen && *tok == ' ') {
		tok++;
		tlen--;
	}
	token_claims claims;
	int v = alen > 7 && strncasecmp(auth, "Bearer ", 7) == 0
			? token_verify_cached(&rg->secrets, tok, tlen, util_now_ms() / 1000, &claims)
			: TOKEN_MALFORMED;
	if (v == TOKEN_EXPIRED) {
		api_head_error(req, 401, "token_expired", "the access token has expired; refresh it",
			       "Bearer error=\"invalid_token\"");
		return;
	}
	if (v != TOKEN_OK) {
		api_head_error(req, 401, "invalid_token", "the access token is not valid",
			       "Bearer error=\"invalid_token\"");
		return;
	}
	size_t limit = files_body_limit(rg);
	if (m->content_length >= 0 && (uint64_t)m->content_length > limit) {
		char message[160];
		snprintf(message, sizeof message, "a file may have at most %zu bytes ([files] max_file_bytes)",
			 rg->cfg->files.max_file_bytes);
		api_head_error(req, 413, "file_too_large", message, NULL);
		return;
	}
	http_request_set_body_limit(req, limit);
}

/* The client address a trusted proxy (an edge) passed in Forwarded (RFC
 * 7239): the last for= of the last Forwarded field, the one the proxy
 * itself added (an edge drops the client's own); http/forwarded.h says
 * which forms count. Anything else leaves out as it was: the proxy. */
static void api_forwarded_for(const http_message *m, char *out, size_t cap)
{
	const http_field *last = NULL;
	for (size_t i = 0; i < m->field_count; i++)
		if (m->fields[i].name_len == 9 && strncasecmp(m->fields[i].name, "forwarded", 9) == 0)
			last = &m->fields[i];
	if (last)
		http_forwarded_for(last->value, last->value_len, out, cap);
}

static void api_route_request(http_request *req, region *rg, bool via_link)
{
	api_call *call = calloc(1, sizeof *call);
	if (!call) {
		http_respond(req, 503, NULL, 0);
		return;
	}
	call->rg = rg;
	call->req = req;
	call->via_link = via_link;
	call->msg = http_request_message(req);
	snprintf(call->client_addr, sizeof call->client_addr, "%s", http_request_peer(req));
	if (via_link) /* the region that forwarded it knows the client */
		api_request_header(call, "X-Forwarded-For", call->client_addr, sizeof call->client_addr);
	else if (config_trusted_proxy(&rg->cfg->api, call->client_addr)) /* an edge: its client */
		api_forwarded_for(call->msg, call->client_addr, sizeof call->client_addr);
	call->start_us = util_mono_us();
	call->now_ms = util_now_ms();
	call->route = "(unmatched)";
	call->route_index = -1;
	buf_init(&call->body, 64 * 1024 * 1024);
	buf_init(&call->headers, 8192);
	if (!api_request_header(call, "X-Request-Id", call->request_id, sizeof call->request_id) ||
	    !api_valid_request_id(call->request_id))
		util_request_id(call->request_id);

	/* target: origin-form, or absolute-form (path after the authority) */
	const char *t = call->msg->target;
	if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
		t = strchr(strstr(t, "//") + 2, '/');
		if (!t)
			t = "/";
	}
	const char *q = strchr(t, '?');
	call->query = q ? q + 1 : NULL;
	size_t plen = q ? (size_t)(q - t) : strlen(t);
	/* split the path into segments */
	const char *p = t, *pend = t + plen;
	while (p < pend && *p == '/') {
		p++;
		const char *slash = memchr(p, '/', (size_t)(pend - p));
		const char *seg_end = slash ? slash : pend;
		if (call->segment_count == API_PATH_SEGMENTS) {
			call->segment_count++; /* too deep: matches nothing */
			break;
		}
		call->segments[call->segment_count] = p;
		call->segment_lens[call->segment_count] = (size_t)(seg_end - p);
		call->segment_count++;
		p = seg_end;
	}
	const char *method = call->msg->method;
	bool head = strcmp(method, "HEAD") == 0;
	for (int i = 0; i < API_ROUTE_COUNT && call->segment_count <= API_PATH_SEGMENTS; i++) {
		const api_route *r = &api_routes[i];
		if (!api_route_match(r, call))
			continue;
		call->route = r->pattern;
		call->route_index = i;
		if (strcmp(method, "OPTIONS") == 0) {
			api_options(call, r);
			return;
		}
		for (int m = 0; m < 5 && r->methods[m].method; m++) {
			if (strcmp(r->methods[m].method, method) == 0 ||
			    (head && strcmp(r->methods[m].method, "GET") == 0)) {
				api_dispatch(call, r->methods[m].handler);
				return;
			}
		}
		api_header(call, "Allow", r->allow);
		api_error(call, 405, "method_not_allowed", "%s is not allowed here; allowed: %s",
			  method, r->allow);
		api_finish(call);
		return;
	}
	api_error(call, 404, "not_found", "no such route");
	api_finish(call);
}
