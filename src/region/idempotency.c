/*
 * idempotency.c - Idempotency-Key: a retried write gets the first answer.
 *
 * On a write with the header, the writer thread first looks the key up
 * in its scope (the owner): the user of an authenticated call; for the
 * anonymous auth calls (signup, login, refresh, logout by refresh token) a
 * keyed hash of the credential they present (the account's email, or the
 * refresh token), so that two clients choosing the same key never meet:
 *   - absent: the write runs; if it succeeds (2xx) its answer (status,
 *     header lines, body) is stored in the same transaction as the write, so
 *     either both are durable or neither is;
 *   - present with the same request hash: the stored answer is replayed,
 *     with Idempotent-Replayed: true, and nothing is written;
 *   - present with another request: 422 idempotency_key_reused.
 * Only successes are stored: a failed write changed nothing and may simply
 * run again. The request hash covers method, target, If-Match and body; for
 * the anonymous calls it is keyed (HMAC under a key derived from the secrets
 * file), as their bodies hold passwords and tokens: the database alone then
 * gives no fast hash to guess them against.
 *
 * A stored answer may have gone stale: before replaying it, the call's
 * replay_check (when set) may refuse, e.g. a refresh whose answer's refresh
 * token was itself used since, or whose session ended: that replay would
 * hand out credentials of a family that has moved on (treated as reuse).
 *
 * Answers holding credentials (signup, login, refresh) are stored sealed:
 * AES-256-GCM under HMAC(response_key, body), so neither the database nor the
 * secrets file alone can recover the tokens; only the same request can.
 * Keys are kept idempotency_ttl (>= 24 h) and purged after.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "region/internal.h"

/* The scope of an anonymous call's key: "anon:" and 32 hex digits of
 * HMAC(idem_key, route NUL credential). */
static void anonymous_owner(api_call *call, const char *credential)
{
	buf in;
	buf_init(&in, 4096);
	unsigned char mac[32];
	if (buf_adds(&in, call->route) != 0 || buf_addc(&in, '\0') != 0 || buf_adds(&in, credential) != 0)
		abort(); /* cannot happen: route and credential are bounded well below the limit */
	util_hmac_sha256(call->rg->idem_key, sizeof call->rg->idem_key, in.data, in.len, mac);
	explicit_bzero(in.data, in.len);
	buf_free(&in);
	memcpy(call->idem_owner, "anon:", 5);
	util_hex(mac, 16, call->idem_owner + 5);
}

bool idempotency_prepare(api_call *call, bool sealed, const char *credential)
{
	if (!api_request_header(call, "Idempotency-Key", call->idem_key, sizeof call->idem_key))
		return true;
	size_t raw_len;
	const char *raw = http_message_field(call->msg, "Idempotency-Key", &raw_len);
	bool ok = raw_len > 0 && raw_len < sizeof call->idem_key;
	for (size_t i = 0; ok && i < raw_len; i++)
		if ((unsigned char)raw[i] < 0x21 || (unsigned char)raw[i] > 0x7e)
			ok = false;
	if (!ok) {
		api_error(call, 400, "invalid_idempotency_key",
			  "Idempotency-Key must be 1 to 255 visible ASCII characters");
		api_finish(call);
		return false;
	}
	call->has_idem = true;
	call->sealed = sealed;
	size_t blen;
	const char *body = http_request_body(call->req, &blen);
	char if_match[128] = "";
	api_request_header(call, "If-Match", if_match, sizeof if_match);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int outlen = 32;
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, call->msg->method, strlen(call->msg->method) + 1) != 1 ||
	    EVP_DigestUpdate(md, call->msg->target, strlen(call->msg->target) + 1) != 1 ||
	    EVP_DigestUpdate(md, if_match, strlen(if_match) + 1) != 1 ||
	    EVP_DigestUpdate(md, body, blen) != 1 ||
	    EVP_DigestFinal_ex(md, call->request_hash, &outlen) != 1)
		abort(); /* cannot happen: SHA-256 is always there */
	EVP_MD_CTX_free(md);
	if (credential) {
		unsigned char keyed[32];
		util_hmac_sha256(call->rg->idem_key, sizeof call->rg->idem_key, call->request_hash,
				 sizeof call->request_hash, keyed);
		memcpy(call->request_hash, keyed, sizeof keyed);
		anonymous_owner(call, credential);
	} else {
		snprintf(call->idem_owner, sizeof call->idem_owner, "%s", call->user_id);
	}
	if (sealed)
		util_hmac_sha256(call->rg->secrets.response_key, sizeof call->rg->secrets.response_key,
				 body, blen, call->seal_key);
	return true;
}

/* AES-256-GCM; out gets nonce(12) || ciphertext || tag(16). */
static int seal(const unsigned char key[32], const char *in, size_t len, buf *out)
{
	unsigned char nonce[12];
	util_random(nonce, sizeof nonce);
	static const unsigned char tag_room[16];
	/* nonce, then the plaintext (encrypted in place), then room for the tag */
	if (buf_add(out, nonce, sizeof nonce) != 0 || buf_add(out, in, len) != 0 ||
	    buf_add(out, tag_room, sizeof tag_room) != 0)
		return ERR_NOMEM;
	unsigned char *ct = (unsigned char *)out->data + 12;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0, rc = ERR_TLS;
	if (ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
	    EVP_EncryptUpdate(ctx, ct, &n, ct, (int)len) == 1 &&
	    EVP_EncryptFinal_ex(ctx, ct + n, &f) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, ct + len) == 1)
		rc = 0;
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

static int unseal(const unsigned char key[32], const unsigned char *in, size_t len, buf *out)
{
	if (len < 28)
		return ERR_PARSE;
	size_t clen = len - 28;
	if (buf_add(out, in, clen) != 0) /* room */
		return ERR_NOMEM;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0, rc = ERR_AUTH;
	if (ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in) == 1 &&
	    EVP_DecryptUpdate(ctx, (unsigned char *)out->data, &n, in + 12, (int)clen) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)(in + 12 + clen)) == 1 &&
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)out->data + n, &f) == 1)
		rc = 0;
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int idempotency_check(db_conn *db, api_call *call)
{
	if (!call->has_idem)
		return 0;
	sqlite3_stmt *st = db_stmt(db, "SELECT request_hash, status, headers, body, sealed "
				       "FROM idempotency WHERE owner = ?1 AND key = ?2");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, call->idem_owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, call->idem_key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return ERR_DB;
	}
	const void *hash = sqlite3_column_blob(st, 0);
	if (sqlite3_column_bytes(st, 0) != 32 || memcmp(hash, call->request_hash, 32) != 0) {
		sqlite3_reset(st);
		api_error(call, 422, "idempotency_key_reused",
			  "this Idempotency-Key was used for a different request");
		return 1;
	}
	int status = sqlite3_column_int(st, 1);
	const char *headers = (const char *)sqlite3_column_text(st, 2);
	const unsigned char *body = sqlite3_column_blob(st, 3);
	size_t blen = (size_t)sqlite3_column_bytes(st, 3);
	int sealed = sqlite3_column_int(st, 4);
	buf_reset(&call->body);
	buf_reset(&call->headers);
	int out = 0;
	if (sealed)
		out = unseal(call->seal_key, body, blen, &call->body);
	else if (blen)
		out = buf_add(&call->body, body, blen);
	if (out == 0)
		out = buf_adds(&call->headers, headers ? headers : "");
	sqlite3_reset(st);
	if (out != 0) {
		buf_reset(&call->headers);
		api_error(call, 500, "internal_error", "cannot replay the stored response");
		return 1;
	}
	call->status = status;
	call->replayed = true;
	if (call->replay_check) {
		int check = call->replay_check(db, call);
		if (check != 0) { /* refused (answered otherwise) or failed */
			call->replayed = false;
			buf_reset(&call->headers);
			return check < 0 ? check : 1;
		}
	}
	return 1;
}

int idempotency_store(db_conn *db, api_call *call)
{
	buf sealed;
	buf_init(&sealed, call->body.len + 64);
	const void *body = call->body.data ? call->body.data : "";
	size_t blen = call->body.len;
	if (call->sealed) {
		if (seal(call->seal_key, body, blen, &sealed) != 0) {
			buf_free(&sealed);
			return ERR_TLS;
		}
		body = sealed.data;
		blen = sealed.len;
	}
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO idempotency (owner, key, request_hash, status, "
				       "headers, body, sealed, created_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)");
	int rc = ERR_DB;
	if (st) {
		sqlite3_bind_text(st, 1, call->idem_owner, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, call->idem_key, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, call->request_hash, 32, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, call->status);
		sqlite3_bind_text(st, 5, call->headers.data ? call->headers.data : "", -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 6, body, (int)blen, SQLITE_STATIC);
		sqlite3_bind_int(st, 7, call->sealed);
		sqlite3_bind_int64(st, 8, call->now_ms);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ERR_DB;
		if (rc)
			log_error("cannot store idempotency key: %s", sqlite3_errmsg(db_handle(db)));
		sqlite3_reset(st);
	}
	buf_free(&sealed);
	return rc;
}

int idempotency_purge(db_conn *db, int64_t older_than_ms)
{
	sqlite3_stmt *st = db_stmt(db, "DELETE FROM idempotency WHERE created_at < ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, older_than_ms);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : ERR_DB;
	sqlite3_reset(st);
	return rc;
}
