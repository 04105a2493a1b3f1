/*
 * auth.c - accounts and sessions: signup, login, refresh (with rotation and
 * reuse detection), logout, me.
 *
 * Passwords are hashed with argon2id on the hashing pool, never on the event
 * loop. A session is a row; its access tokens (tokens.h) are accepted while
 * the row is not revoked; its refresh tokens are stored only as SHA-256
 * hashes, each usable once: presenting a used one revokes the whole session
 * (it was stolen, or the client is confused; either way the family ends).
 *
 * Limits (docs/SECURITY.md, "Authentication limits"): a login attempt is
 * reserved in the throttle counters before its hash and released after it
 * (ratelimit.c), so concurrent attempts cannot outrun the failure limits;
 * signups are counted per address when admitted to hashing and hashed in
 * the pool's bulk lane, logins in its urgent lane. Ending a session (logout,
 * reuse) is marked call->revocation: api.c waits for the other region and
 * says whether it confirmed (X-Tandem-Durability).
 */
#include <argon2.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "region/internal.h"

#define PASSWORD_MIN_CHARS 8
#define PASSWORD_MAX_BYTES 1024

/* --- input checks --- */

static bool email_valid(const char *s)
{
	size_t n = strlen(s);
	const char *at = strchr(s, '@');
	if (n < 3 || n > 254 || !at || strchr(at + 1, '@') || at == s || at - s > 64)
		return false;
	const char *domain = at + 1;
	if (!*domain || domain[0] == '.' || s[n - 1] == '.' || !strchr(domain, '.') ||
	    strstr(domain, ".."))
		return false;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c == 0x7f || c == '"' || c == '(' || c == ')' || c == ',' ||
		    c == ':' || c == ';' || c == '<' || c == '>' || c == '[' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* Read {"email","password"} into the call. Answers 400 and returns false when
 * they are missing or invalid. check_rules: signup's length/format rules. */
static bool read_credentials(api_call *call, bool check_rules)
{
	if (!api_parse_json_object(call, false))
		return false;
	const char *email = json_string_value(json_object_get(call->json, "email"));
	const char *password = json_string_value(json_object_get(call->json, "password"));
	if (!email || !password) {
		api_error(call, 400, "invalid_request", "email and password (strings) are required");
		return false;
	}
	if (strlen(email) >= sizeof call->email || (check_rules && !email_valid(email))) {
		api_error(call, 400, "invalid_email", "the email address is not valid");
		return false;
	}
	size_t plen = json_string_length(json_object_get(call->json, "password"));
	if (plen != strlen(password) || plen > PASSWORD_MAX_BYTES) {
		api_error(call, 400, "invalid_password", "the password must be at most %d bytes, without NUL",
			  PASSWORD_MAX_BYTES);
		return false;
	}
	if (check_rules && utf8_chars(password) < PASSWORD_MIN_CHARS) {
		api_error(call, 400, "password_too_short", "the password must have at least %d characters",
			  PASSWORD_MIN_CHARS);
		return false;
	}
	for (size_t i = 0; email[i]; i++)
		call->email[i] = (char)tolower((unsigned char)email[i]);
	call->email[strlen(email)] = '\0';
	memcpy(call->password, password, plen + 1);
	/* the parsed body still holds the password: drop it now */
	json_t *pw = json_object_get(call->json, "password");
	if (pw)
		json_string_set(pw, "");
	return true;
}

/* --- sessions and the token answer --- */

/* Sign an access token for the session and write the answer shared by
 * signup, login and refresh. 0, or ERR_NOMEM (call unaltered). */
static int auth_answer(api_call *call, const char *user_id, const char *email,
		       const char *created_at, const char *session_id, const char *refresh,
		       int status)
{
	const config_auth *a = &call->rg->cfg->auth;
	token_claims claims = {.issued_at = call->now_ms / 1000,
			       .expires_at = call->now_ms / 1000 + a->access_token_ttl_s,
			       /* the position of this very batch (writer thread) */
			       .seq = call->rg->capture ? capture_pending_seq(call->rg->capture) : 0};
	snprintf(claims.user_id, sizeof claims.user_id, "%s", user_id);
	snprintf(claims.session_id, sizeof claims.session_id, "%s", session_id);
	char *access = NULL;
	if (token_sign(&call->rg->secrets, &claims, &access) != 0)
		return ERR_NOMEM;
	buf *b = &call->body;
	buf_reset(b);
	buf_adds(b, "{\"user\":{\"id\":");
	api_json_string(b, user_id);
	buf_adds(b, ",\"email\":");
	api_json_string(b, email);
	buf_adds(b, ",\"created_at\":");
	api_json_string(b, created_at);
	buf_printf(b, "},\"access_token\":\"%s\",\"refresh_token\":\"%s\",\"token_type\":\"Bearer\","
		      "\"expires_in\":%d}",
		   access, refresh, a->access_token_ttl_s);
	explicit_bzero(access, strlen(access));
	free(access);
	call->status = status;
	return 0;
}

/* A new refresh token for the session: only its hash is stored; the token
 * goes to out (43 chars). Writer thread. 0 or ERR_DB. */
static int refresh_token_issue(db_conn *db, const char *session_id, int64_t now_ms,
			       int64_t expires_ms, char out[44])
{
	unsigned char hash[32];
	token_new_refresh(out, hash);
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) "
				       "VALUES (?1, ?2, ?3, ?4)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, session_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_int64(st, 4, expires_ms);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int auth_issue_session(db_conn *db, api_call *call, const char *user_id, const char *email,
		       const char *created_at, int status)
{
	region *rg = call->rg;
	const config_auth *a = &rg->cfg->auth;
	char session_id[27];
	util_new_id(session_id);
	char now_iso[32];
	util_iso8601(call->now_ms, now_iso);
	int64_t refresh_expires = call->now_ms + (int64_t)a->refresh_token_ttl_s * 1000;
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO sessions (id, user_id, created_at, expires_at) "
				       "VALUES (?1, ?2, ?3, ?4)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, now_iso, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, refresh_expires);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;

	char refresh[44];
	if (refresh_token_issue(db, session_id, call->now_ms, refresh_expires, refresh) != 0)
		return ERR_DB;
	rc = auth_answer(call, user_id, email, created_at, session_id, refresh, status);
	explicit_bzero(refresh, sizeof refresh);
	return rc;
}

/* --- signup --- */

static int signup_write(db_conn *db, api_call *call)
{
	char user_id[27], now_iso[32];
	util_new_id(user_id);
	util_iso8601(call->now_ms, now_iso);
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO users (id, email, password_hash, created_at) "
				       "VALUES (?1, ?2, ?3, ?4)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, user_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, call->email, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, call->password_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, now_iso, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int ext = sqlite3_extended_errcode(db_handle(db));
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		if (ext == SQLITE_CONSTRAINT_UNIQUE) {
			api_error(call, 409, "email_taken", "an account with this email already exists");
			return ERR_EXISTS;
		}
		return ERR_DB;
	}
	return auth_issue_session(db, call, user_id, call->email, now_iso, 201);
}

static void hash_work(void *arg)
{
	api_call *call = arg;
	const config_auth *a = &call->rg->cfg->auth;
	unsigned char salt[16];
	util_random(salt, sizeof salt);
	int rc = argon2id_hash_encoded(a->argon2_t_cost, a->argon2_m_cost_kib, a->argon2_parallelism,
				       call->password, strlen(call->password), salt, sizeof salt, 32,
				       call->password_hash, sizeof call->password_hash);
	if (rc != ARGON2_OK)
		call->password_hash[0] = '\0';
	explicit_bzero(call->password, sizeof call->password);
}

static void hash_done(void *arg)
{
	api_call *call = arg;
	if (!call->password_hash[0]) {
		log_error("password hashing failed");
		api_error(call, 500, "internal_error", "cannot hash the password");
		api_finish(call);
		return;
	}
	call->write = signup_write;
	api_submit_write(call);
}

/* The email is already taken (a fast check before spending a hash; the
 * UNIQUE constraint is the real guard). */
static bool email_taken(api_call *call)
{
	sqlite3_stmt *st = db_stmt(call->rg->reader, "SELECT 1 FROM users WHERE email = ?1");
	if (!st)
		return false;
	sqlite3_bind_text(st, 1, call->email, -1, SQLITE_STATIC);
	bool taken = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return taken;
}

/* Queue the hash; false when the pool refused it (answered 503, not finished:
 * the caller releases what it holds, then finishes). */
static bool submit_to_hashers(api_call *call, workers_lane lane, void (*work)(void *), void (*done)(void *))
{
	if (workers_submit(call->rg->hashers, lane, work, done, call) != 0) {
		api_error(call, 503, "overloaded", "too many sign-ins in progress; retry shortly");
		api_header(call, "Retry-After", "1");
		return false;
	}
	return true;
}

static void retry_after(api_call *call, int wait_s)
{
	char retry[16];
	snprintf(retry, sizeof retry, "%d", wait_s);
	api_header(call, "Retry-After", retry);
}

void auth_signup(api_call *call)
{
	region *rg = call->rg;
	const config_auth *a = &rg->cfg->auth;
	if (!read_credentials(call, true)) {
		api_finish(call);
		return;
	}
	if (!idempotency_prepare(call, true, call->email))
		return;
	if (!call->has_idem && email_taken(call)) {
		api_error(call, 409, "email_taken", "an account with this email already exists");
		api_finish(call);
		return;
	}
	/* counted before hashing, whatever the outcome: every admitted attempt
	 * costs a hash (a retry too), and concurrent ones cannot slip past */
	char address_key[80];
	snprintf(address_key, sizeof address_key, "s:%s", call->client_addr);
	int wait = ratelimit_take(rg->signup_limit, address_key, a->signup_max_per_address,
				  a->signup_window_s, call->now_ms);
	if (wait) {
		retry_after(call, wait);
		api_error(call, 429, "too_many_signups",
			  "too many signups from this address; retry in %d seconds", wait);
		api_finish(call);
		return;
	}
	/* the bulk lane: a flood of signups never delays a login's hash */
	if (!submit_to_hashers(call, WORKERS_BULK, hash_work, hash_done))
		api_finish(call);
}

/* --- login --- */

static int login_write(db_conn *db, api_call *call)
{
	/* user id, email and created_at were read before verifying */
	return auth_issue_session(db, call, call->user_id, call->email, call->created_at, 200);
}

static void verify_work(void *arg)
{
	api_call *call = arg;
	call->verified = argon2id_verify(call->password_hash, call->password,
					 strlen(call->password)) == ARGON2_OK;
	explicit_bzero(call->password, sizeof call->password);
}

static void login_keys(const api_call *call, char account_key[300], char address_key[80])
{
	snprintf(account_key, 300, "a:%s", call->email);
	snprintf(address_key, 80, "i:%s", call->client_addr);
}

/*
 * Reserve this attempt in the account's and the address's counters before
 * hashing (see ratelimit.c): failures + attempts in flight stay under the
 * failure limits, and the attempts in flight under their caps, however many
 * arrive at once. false when refused (answered 429 and finished; nothing
 * held).
 */
static bool login_reserve(api_call *call)
{
	region *rg = call->rg;
	const config_auth *a = &rg->cfg->auth;
	char account_key[300], address_key[80];
	login_keys(call, account_key, address_key);
	int wait = ratelimit_reserve(rg->login_limit, account_key, a->login_max_failures_account,
				     a->login_max_in_flight_account, a->login_window_s, call->now_ms);
	if (wait == 0) {
		wait = ratelimit_reserve(rg->login_limit, address_key, a->login_max_failures_address,
					 a->login_max_in_flight_address, a->login_window_s, call->now_ms);
		if (wait)
			ratelimit_release(rg->login_limit, account_key, RATELIMIT_NONE, a->login_window_s,
					  call->now_ms);
	}
	if (wait) {
		retry_after(call, wait);
		api_error(call, 429, "too_many_attempts", "too many login attempts; retry in %d seconds", wait);
		api_finish(call);
		return false;
	}
	call->login_reserved = true;
	return true;
}

typedef enum login_result {
	LOGIN_FAILED,  /* wrong password or unknown email: counts against both */
	LOGIN_OK,      /* clears the account's failures */
	LOGIN_ABORTED  /* not decided (server error, pool full): counts nowhere */
} login_result;

/* End the reserved attempt, once (later calls do nothing). */
static void login_release(api_call *call, login_result result)
{
	if (!call->login_reserved)
		return;
	call->login_reserved = false;
	region *rg = call->rg;
	int window = rg->cfg->auth.login_window_s;
	char account_key[300], address_key[80];
	login_keys(call, account_key, address_key);
	int64_t now = util_now_ms();
	ratelimit_release(rg->login_limit, account_key,
			  result == LOGIN_FAILED ? RATELIMIT_COUNT : result == LOGIN_OK ? RATELIMIT_RESET : RATELIMIT_NONE,
			  window, now);
	ratelimit_release(rg->login_limit, address_key, result == LOGIN_FAILED ? RATELIMIT_COUNT : RATELIMIT_NONE,
			  window, now);
}

static void verify_done(void *arg)
{
	api_call *call = arg;
	if (!call->verified || !call->user_id[0]) {
		login_release(call, LOGIN_FAILED);
		call->user_id[0] = '\0';
		api_error(call, 401, "invalid_credentials", "invalid email or password");
		api_finish(call);
		return;
	}
	login_release(call, LOGIN_OK);
	call->write = login_write;
	api_submit_write(call);
}

void auth_login(api_call *call)
{
	region *rg = call->rg;
	if (!read_credentials(call, false)) {
		api_finish(call);
		return;
	}
	if (!idempotency_prepare(call, true, call->email))
		return;
	if (!login_reserve(call))
		return;
	sqlite3_stmt *st = db_stmt(rg->reader, "SELECT id, password_hash, created_at FROM users WHERE email = ?1");
	if (!st) {
		login_release(call, LOGIN_ABORTED);
		api_error(call, 500, "internal_error", "cannot read the account");
		api_finish(call);
		return;
	}
	sqlite3_bind_text(st, 1, call->email, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(call->user_id, sizeof call->user_id, "%s", sqlite3_column_text(st, 0));
		snprintf(call->password_hash, sizeof call->password_hash, "%s", sqlite3_column_text(st, 1));
		snprintf(call->created_at, sizeof call->created_at, "%s", sqlite3_column_text(st, 2));
	} else {
		/* unknown email: verify against a dummy hash, same cost, same answer */
		snprintf(call->password_hash, sizeof call->password_hash, "%s", rg->dummy_hash);
	}
	sqlite3_reset(st);
	/* the urgent lane: never behind signups */
	if (!submit_to_hashers(call, WORKERS_URGENT, verify_work, verify_done)) {
		login_release(call, LOGIN_ABORTED);
		api_finish(call);
	}
}

/* --- refresh --- */

static int refresh_write(db_conn *db, api_call *call)
{
	unsigned char hash[32];
	util_sha256(call->refresh_token, strlen(call->refresh_token), hash);
	sqlite3_stmt *st = db_stmt(db, "SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.revoked_at, "
				       "u.email, u.created_at FROM refresh_tokens t "
				       "JOIN sessions s ON s.id = t.session_id JOIN users u ON u.id = s.user_id "
				       "WHERE t.hash = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return ERR_DB;
		api_error(call, 401, "invalid_refresh_token", "the refresh token is not valid");
		return 0;
	}
	char session_id[API_ID_MAX], user_id[API_ID_MAX], email[256], created_at[32];
	snprintf(session_id, sizeof session_id, "%s", sqlite3_column_text(st, 0));
	int64_t expires = sqlite3_column_int64(st, 1);
	bool used = sqlite3_column_type(st, 2) != SQLITE_NULL;
	snprintf(user_id, sizeof user_id, "%s", sqlite3_column_text(st, 3));
	bool revoked = sqlite3_column_type(st, 4) != SQLITE_NULL;
	snprintf(email, sizeof email, "%s", sqlite3_column_text(st, 5));
	snprintf(created_at, sizeof created_at, "%s", sqlite3_column_text(st, 6));
	sqlite3_reset(st);

	if (used) {
		/* reuse: end the whole session, and keep that change (return 0) */
		st = db_stmt(db, "UPDATE sessions SET revoked_at = ?2, revoke_reason = 'refresh_token_reused' "
				 "WHERE id = ?1 AND revoked_at IS NULL");
		if (!st)
			return ERR_DB;
		sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, call->now_ms);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return ERR_DB;
		/* the end of the session must reach the other region too */
		call->revocation = sqlite3_changes(db_handle(db)) > 0;
		log_warn("refresh token reused: session revoked");
		api_error(call, 401, "refresh_token_reused",
			  "this refresh token was already used; the session is revoked, log in again");
		return 0;
	}
	if (revoked) {
		api_error(call, 401, "token_revoked", "the session has ended; log in again");
		return 0;
	}
	if (call->now_ms >= expires) {
		api_error(call, 401, "refresh_token_expired", "the refresh token has expired; log in again");
		return 0;
	}
	st = db_stmt(db, "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, call->now_ms);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	/* the new pair continues the same session */
	char refresh[44];
	if (refresh_token_issue(db, session_id, call->now_ms, expires, refresh) != 0)
		return ERR_DB;
	rc = auth_answer(call, user_id, email, created_at, session_id, refresh, 200);
	explicit_bzero(refresh, sizeof refresh);
	return rc;
}

/* Revoke the session of the presented refresh token as reused; answers
 * 401 refresh_token_reused. Writer thread. 0 (keep the change) or ERR_DB. */
static int refresh_revoke_reused(db_conn *db, api_call *call)
{
	unsigned char hash[32];
	util_sha256(call->refresh_token, strlen(call->refresh_token), hash);
	sqlite3_stmt *st = db_stmt(db, "UPDATE sessions SET revoked_at = ?2, revoke_reason = 'refresh_token_reused' "
				       "WHERE revoked_at IS NULL AND id = "
				       "(SELECT session_id FROM refresh_tokens WHERE hash = ?1)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, call->now_ms);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	call->revocation = sqlite3_changes(db_handle(db)) > 0;
	if (call->revocation)
		log_warn("refresh replayed after its family moved on: session revoked");
	api_error(call, 401, "refresh_token_reused",
		  "this refresh was already answered and its refresh token has been used or its session "
		  "has ended since; the session is revoked, log in again");
	return 0;
}

/*
 * replay_check of refresh: the stored answer (call->body, unsealed) may be
 * replayed only while the refresh token it handed out is still unused and
 * its session alive. Otherwise the family has moved on (a further rotation,
 * a logout, a reuse): replaying would resurrect a rotated token, so the
 * replay is treated as reuse. Writer thread.
 */
static int refresh_replay_check(db_conn *db, api_call *call)
{
	json_t *answer = json_loadb(call->body.data, call->body.len, 0, NULL);
	const char *child = json_string_value(json_object_get(answer, "refresh_token"));
	int rc = 0;
	bool fresh = false;
	if (child) {
		unsigned char hash[32];
		util_sha256(child, strlen(child), hash);
		sqlite3_stmt *st = db_stmt(db, "SELECT 1 FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id "
					       "WHERE t.hash = ?1 AND t.used_at IS NULL AND s.revoked_at IS NULL "
					       "AND t.expires_at > ?2");
		if (!st) {
			rc = ERR_DB;
		} else {
			sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, call->now_ms);
			int step = sqlite3_step(st);
			sqlite3_reset(st);
			if (step == SQLITE_ROW)
				fresh = true;
			else if (step != SQLITE_DONE)
				rc = ERR_DB;
		}
	}
	json_decref(answer); /* held tokens: the call's body is wiped with it below */
	if (rc < 0 || fresh)
		return rc;
	explicit_bzero(call->body.data, call->body.len);
	rc = refresh_revoke_reused(db, call);
	return rc < 0 ? rc : 1;
}

void auth_refresh(api_call *call)
{
	if (!api_parse_json_object(call, false)) {
		api_finish(call);
		return;
	}
	const char *token = json_string_value(json_object_get(call->json, "refresh_token"));
	if (!token || strlen(token) == 0 || strlen(token) >= sizeof call->refresh_token) {
		api_error(call, 400, "invalid_request", "refresh_token (a string) is required");
		api_finish(call);
		return;
	}
	snprintf(call->refresh_token, sizeof call->refresh_token, "%s", token);
	if (!idempotency_prepare(call, true, call->refresh_token))
		return;
	call->write = refresh_write;
	call->replay_check = refresh_replay_check;
	api_submit_write(call);
}

/* --- logout, me --- */

/* End the session (call->session_id, or that of call->refresh_token when
 * by_refresh). An already ended session is a 204 too: logging out twice is
 * not an error. Writer thread. */
static int logout_session(db_conn *db, api_call *call, bool by_refresh)
{
	unsigned char hash[32];
	if (by_refresh) {
		util_sha256(call->refresh_token, strlen(call->refresh_token), hash);
		sqlite3_stmt *st = db_stmt(db, "SELECT session_id FROM refresh_tokens WHERE hash = ?1");
		if (!st)
			return ERR_DB;
		sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			snprintf(call->session_id, sizeof call->session_id, "%s", sqlite3_column_text(st, 0));
		sqlite3_reset(st);
		if (rc == SQLITE_DONE) {
			api_error(call, 401, "invalid_refresh_token", "the refresh token is not valid");
			return 0;
		}
		if (rc != SQLITE_ROW)
			return ERR_DB;
	}
	sqlite3_stmt *st = db_stmt(db, "UPDATE sessions SET revoked_at = ?2, revoke_reason = 'logout' "
				       "WHERE id = ?1 AND revoked_at IS NULL");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, call->session_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, call->now_ms);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	/* the end of the session must reach the other region (api_write_done) */
	call->revocation = sqlite3_changes(db_handle(db)) > 0;
	call->status = 204;
	return 0;
}

static int logout_write(db_conn *db, api_call *call)
{
	return logout_session(db, call, false);
}

static int logout_refresh_write(db_conn *db, api_call *call)
{
	return logout_session(db, call, true);
}

/*
 * POST /v1/auth/logout: with the access token (Authorization), or with the
 * refresh token alone in the body {"refresh_token": "..."} (an app that lost
 * its access token, or whose access token expired, can still end the
 * session). The answer says in X-Tandem-Durability whether the other region
 * confirmed the end of the session (see api_write_done).
 */
void auth_logout(api_call *call)
{
	size_t auth_len;
	if (http_message_field(call->msg, "Authorization", &auth_len)) {
		/* a revoked session is let through: logging out again is a 204 */
		if (!api_authenticate_allow_revoked(call)) {
			api_finish(call);
			return;
		}
		if (!idempotency_prepare(call, false, NULL))
			return;
		if (call->session_revoked && !call->has_idem) {
			call->status = 204;
			api_finish(call);
			return;
		}
		call->write = logout_write;
		api_submit_write(call);
		return;
	}
	size_t blen;
	http_request_body(call->req, &blen);
	if (blen == 0) {
		api_header(call, "WWW-Authenticate", "Bearer");
		api_error(call, 401, "missing_token",
			  "an access token (Authorization: Bearer ...) or a refresh_token in the body is required");
		api_finish(call);
		return;
	}
	if (!api_parse_json_object(call, false)) {
		api_finish(call);
		return;
	}
	const char *token = json_string_value(json_object_get(call->json, "refresh_token"));
	if (!token || strlen(token) == 0 || strlen(token) >= sizeof call->refresh_token) {
		api_error(call, 400, "invalid_request", "refresh_token (a string) is required without an access token");
		api_finish(call);
		return;
	}
	snprintf(call->refresh_token, sizeof call->refresh_token, "%s", token);
	if (!idempotency_prepare(call, false, call->refresh_token))
		return;
	call->write = logout_refresh_write;
	api_submit_write(call);
}

void auth_me(api_call *call)
{
	api_read_begin(call);
	if (!api_authenticate(call)) {
		api_finish(call);
		return;
	}
	sqlite3_stmt *st = db_stmt(call->rg->reader, "SELECT id, email, created_at FROM users WHERE id = ?1");
	if (!st) {
		api_error(call, 500, "internal_error", "cannot read the account");
		api_finish(call);
		return;
	}
	sqlite3_bind_text(st, 1, call->user_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		call->status = 200;
		buf_adds(&call->body, "{\"id\":");
		api_json_string(&call->body, (const char *)sqlite3_column_text(st, 0));
		buf_adds(&call->body, ",\"email\":");
		api_json_string(&call->body, (const char *)sqlite3_column_text(st, 1));
		buf_adds(&call->body, ",\"created_at\":");
		api_json_string(&call->body, (const char *)sqlite3_column_text(st, 2));
		buf_adds(&call->body, "}");
	} else {
		api_error(call, 401, "token_revoked", "the account of this token does not exist");
	}
	sqlite3_reset(st);
	api_finish(call);
}
