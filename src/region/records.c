/*
 * records.c - the records API: JSON objects in named collections, owned by
 * the user who created them and visible to no one else (another user's
 * record is "not found", never "forbidden": its existence is not revealed).
 *
 * Each record has a version, starting at 1 and bumped by every change; the
 * ETag is the version, so If-Match / If-None-Match give optimistic
 * concurrency and cheap revalidation. A single record is read on the event
 * loop's read-only connection (one row by primary key: bounded work); lists
 * run on the reader threads (list.c); writes on the writer thread
 * (read-check-write in one transaction, so If-Match is checked against the
 * row being changed).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "region/internal.h"
#include "region/query.h"

/* Validate the {collection} segment into call->collection; 400 otherwise. */
static bool read_collection(api_call *call)
{
	const char *s = call->segments[2];
	size_t n = call->segment_lens[2];
	bool ok = n >= 1 && n <= 64 && s[0] >= 'a' && s[0] <= 'z';
	for (size_t i = 1; ok && i < n; i++)
		ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_';
	if (!ok) {
		api_error(call, 400, "invalid_collection",
			  "collection names match ^[a-z][a-z0-9_]{0,63}$");
		return false;
	}
	memcpy(call->collection, s, n);
	call->collection[n] = '\0';
	return true;
}

/* The {id} segment; ids that cannot exist are simply not found. */
static bool read_record_id(api_call *call)
{
	const char *s = call->segments[4];
	size_t n = call->segment_lens[4];
	bool ok = n >= 1 && n < sizeof call->record_id;
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)s[i]) != 0;
	if (!ok) {
		api_error(call, 404, "record_not_found", "no such record");
		return false;
	}
	memcpy(call->record_id, s, n);
	call->record_id[n] = '\0';
	return true;
}

bool records_begin(api_call *call, bool with_id)
{
	if (!api_authenticate(call) || !read_collection(call) || (with_id && !read_record_id(call))) {
		api_finish(call);
		return false;
	}
	return true;
}

/* Append a JSON string of column col; rc is sticky (0 or the first error). */
static void json_column(buf *b, sqlite3_stmt *st, int col, int *rc)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (*rc == 0 && !s)
		*rc = ERR_NOMEM; /* NOT NULL columns: only a failed conversion gives NULL */
	if (*rc == 0)
		*rc = buf_addc(b, '"');
	if (*rc == 0)
		*rc = buf_add_json_escaped(b, s, n);
	if (*rc == 0)
		*rc = buf_addc(b, '"');
}

static void json_text(buf *b, const char *s, int *rc)
{
	if (*rc == 0)
		*rc = buf_adds(b, s);
}

int records_json(buf *b, sqlite3_stmt *st)
{
	int rc = 0;
	json_text(b, "{\"id\":", &rc);
	json_column(b, st, 0, &rc);
	json_text(b, ",\"collection\":", &rc);
	json_column(b, st, 2, &rc);
	json_text(b, ",\"owner\":", &rc);
	json_column(b, st, 1, &rc);
	if (rc == 0)
		rc = buf_printf(b, ",\"version\":%lld,\"created_at\":", (long long)sqlite3_column_int64(st, 3));
	json_column(b, st, 4, &rc);
	json_text(b, ",\"updated_at\":", &rc);
	json_column(b, st, 5, &rc);
	json_text(b, ",\"data\":", &rc);
	const void *data = sqlite3_column_text(st, 6);
	if (rc == 0 && !data)
		rc = ERR_NOMEM;
	if (rc == 0)
		rc = buf_add(b, data, (size_t)sqlite3_column_bytes(st, 6));
	json_text(b, "}", &rc);
	return rc;
}

static void etag_of(long long version, char out[32])
{
	snprintf(out, 32, "\"%lld\"", version);
}

/* Does an If-Match / If-None-Match list match this ETag? Weak comparison
 * (W/ prefixes ignored), "*" matches any existing record. */
static bool etag_list_matches(const char *list, const char *etag)
{
	const char *p = list;
	size_t elen = strlen(etag);
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (*p == '*')
			return true;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		const char *end = p;
		if (*end == '"') {
			end = strchr(end + 1, '"');
			end = end ? end + 1 : p + strlen(p);
		} else {
			while (*end && *end != ',')
				end++;
		}
		if ((size_t)(end - p) == elen && memcmp(p, etag, elen) == 0)
			return true;
		p = end;
	}
	return false;
}

/*
 * Is [s, s+len) an If-Match / If-None-Match value (RFC 9110 section 13.1.1)?
 * "*", or a comma-separated list of entity tags, each [W/]"opaque". An
 * unquoted `6` is not an ETag: compared as one it could never match and the
 * client would get 412 for a mistake in its own request.
 */
static bool etag_list_valid(const char *s, size_t len)
{
	size_t i = 0, tags = 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < len && s[i] == '*') {
		for (i++; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
			;
		return i == len;
	}
	bool after_tag = false; /* a tag was read: only OWS, then ',' or the end, may follow */
	while (i < len) {
		if (s[i] == ' ' || s[i] == '\t') {
			i++;
			continue;
		}
		if (s[i] == ',') { /* empty list elements are allowed */
			after_tag = false;
			i++;
			continue;
		}
		if (after_tag)
			return false;
		if (i + 1 < len && s[i] == 'W' && s[i + 1] == '/')
			i += 2;
		if (i >= len || s[i] != '"')
			return false;
		for (i++; i < len && s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c < 0x21 || c == 0x7f) /* etagc: %x21 / %x23-7E / obs-text */
				return false;
		}
		if (i >= len)
			return false;
		i++;
		tags++;
		after_tag = true;
	}
	return tags > 0;
}

/* Copy the request's If-Match or If-None-Match into out (empty if absent).
 * A malformed or oversized value is answered 400 invalid_precondition
 * (not answered: the caller finishes the call) and false returned. */
static bool read_precondition(api_call *call, const char *name, char *out, size_t cap)
{
	size_t len = 0;
	const char *v = http_message_field(call->msg, name, &len);
	out[0] = '\0';
	if (!v)
		return true;
	if (len >= cap) {
		api_error(call, 400, "invalid_precondition", "%s is too long (at most %zu bytes)", name, cap - 1);
		return false;
	}
	if (!etag_list_valid(v, len)) {
		api_error(call, 400, "invalid_precondition",
			  "%s must be \"*\" or a list of quoted ETags such as \"6\" (with the quotes)", name);
		return false;
	}
	memcpy(out, v, len);
	out[len] = '\0';
	return true;
}

/* Read the row just written back into the answer (writer thread). */
static int answer_with_record(db_conn *db, api_call *call, int status)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT " RECORD_COLUMNS " FROM records WHERE id = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, call->record_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return ERR_DB;
	}
	char etag[32];
	etag_of(sqlite3_column_int64(st, 3), etag);
	buf_reset(&call->body);
	int rc = records_json(&call->body, st);
	sqlite3_reset(st);
	if (rc != 0)
		return rc; /* rolled back: never a truncated answer */
	api_header(call, "ETag", etag);
	call->status = status;
	return 0;
}

/* --- create --- */

static int create_write(db_conn *db, api_call *call)
{
	char now_iso[32];
	util_new_id(call->record_id);
	util_iso8601(call->now_ms, now_iso);
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO records (" RECORD_COLUMNS ") VALUES (?1,?2,?3,1,?4,?4,?5)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, call->record_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, call->user_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, call->collection, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, now_iso, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, call->data_text, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	char location[160];
	snprintf(location, sizeof location, "/v1/collections/%s/records/%s", call->collection,
		 call->record_id);
	api_header(call, "Location", location);
	return answer_with_record(db, call, 201);
}

void records_create(api_call *call)
{
	if (!records_begin(call, false))
		return;
	if (!api_parse_json_object(call, false)) {
		api_finish(call);
		return;
	}
	if (!idempotency_prepare(call, false, NULL))
		return;
	call->data_text = json_dumps(call->json, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!call->data_text) {
		api_error(call, 500, "internal_error", "cannot encode the record");
		api_finish(call);
		return;
	}
	call->write = create_write;
	api_submit_write(call);
}

/* --- get --- */

void records_get(api_call *call)
{
	api_read_begin(call);
	if (!records_begin(call, true))
		return;
	/* a GET never has If-Match: the field holds If-None-Match here */
	if (!read_precondition(call, "If-None-Match", call->if_match, sizeof call->if_match)) {
		api_finish(call);
		return;
	}
	sqlite3_stmt *st = db_stmt(call->rg->reader, "SELECT " RECORD_COLUMNS " FROM records "
						     "WHERE id = ?1 AND owner = ?2 AND collection = ?3");
	if (!st) {
		api_error(call, 500, "internal_error", "cannot read the record");
		api_finish(call);
		return;
	}
	sqlite3_bind_text(st, 1, call->record_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, call->user_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, call->collection, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		api_error(call, 404, "record_not_found", "no such record");
	} else {
		char etag[32];
		etag_of(sqlite3_column_int64(st, 3), etag);
		api_header(call, "ETag", etag);
		if (call->if_match[0] && etag_list_matches(call->if_match, etag)) { /* If-None-Match */
			call->status = 304;
		} else {
			call->status = 200;
			if (records_json(&call->body, st) != 0) {
				buf_reset(&call->body);
				api_error(call, 500, "internal_error", "cannot build the answer");
			}
		}
	}
	sqlite3_reset(st);
	api_finish(call);
}

/* --- update (PUT replaces data, PATCH merges, RFC 7396) --- */

/* RFC 7396 MergePatch(target, patch): returns the new value (a new
 * reference); target may be NULL. NULL on allocation failure. */
static json_t *merge_patch(json_t *target, json_t *patch)
{
	if (!json_is_object(patch))
		return json_deep_copy(patch);
	json_t *result = json_is_object(target) ? json_deep_copy(target) : json_object();
	if (!result)
		return NULL;
	const char *key;
	json_t *value;
	json_object_foreach(patch, key, value) {
		if (json_is_null(value)) {
			json_object_del(result, key);
		} else {
			json_t *merged = merge_patch(json_object_get(result, key), value);
			if (!merged || json_object_set_new(result, key, merged) != 0) {
				json_decref(result);
				return NULL;
			}
		}
	}
	return result;
}

static int update_write(db_conn *db, api_call *call)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT version, data FROM records "
				       "WHERE id = ?1 AND owner = ?2 AND collection = ?3");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, call->record_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, call->user_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, call->collection, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		api_error(call, 404, "record_not_found", "no such record");
		return ERR_NOTFOUND;
	}
	long long version = sqlite3_column_int64(st, 0);
	char etag[32];
	etag_of(version, etag);
	if (call->if_match[0] && !etag_list_matches(call->if_match, etag)) {
		sqlite3_reset(st);
		api_header(call, "ETag", etag);
		api_error(call, 412, "precondition_failed",
			  "the record has changed (current ETag %s); fetch it and retry", etag);
		return ERR_CONFLICT;
	}
	if (call->patch) {
		json_t *current = json_loadb((const char *)sqlite3_column_text(st, 1),
					     (size_t)sqlite3_column_bytes(st, 1), 0, NULL);
		json_t *merged = merge_patch(current, call->json);
		json_decref(current);
		free(call->data_text);
		call->data_text = merged ? json_dumps(merged, JSON_COMPACT) : NULL;
		json_decref(merged);
	} else {
		call->data_text = json_dumps(call->json, JSON_COMPACT);
	}
	sqlite3_reset(st);
	if (!call->data_text)
		return ERR_NOMEM;
	char now_iso[32];
	util_iso8601(call->now_ms, now_iso);
	st = db_stmt(db, "UPDATE records SET data = ?2, version = version + 1, updated_at = ?3 WHERE id = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, call->record_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, call->data_text, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, now_iso, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	return answer_with_record(db, call, 200);
}

void records_update(api_call *call)
{
	if (!records_begin(call, true))
		return;
	call->patch = strcmp(call->msg->method, "PATCH") == 0;
	if (!api_parse_json_object(call, call->patch)) {
		api_finish(call);
		return;
	}
	if (!read_precondition(call, "If-Match", call->if_match, sizeof call->if_match)) {
		api_finish(call);
		return;
	}
	if (!idempotency_prepare(call, false, NULL))
		return;
	call->write = update_write;
	api_submit_write(call);
}

/* --- delete --- */

static int delete_write(db_conn *db, api_call *call)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT version FROM records "
				       "WHERE id = ?1 AND owner = ?2 AND collection = ?3");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, call->record_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, call->user_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, call->collection, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	long long version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW) {
		api_error(call, 404, "record_not_found", "no such record");
		return ERR_NOTFOUND;
	}
	char etag[32];
	etag_of(version, etag);
	if (call->if_match[0] && !etag_list_matches(call->if_match, etag)) {
		api_header(call, "ETag", etag);
		api_error(call, 412, "precondition_failed",
			  "the record has changed (current ETag %s); fetch it and retry", etag);
		return ERR_CONFLICT;
	}
	st = db_stmt(db, "DELETE FROM records WHERE id = ?1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_text(st, 1, call->record_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	call->status = 204;
	return 0;
}

void records_delete(api_call *call)
{
	if (!records_begin(call, true))
		return;
	if (!read_precondition(call, "If-Match", call->if_match, sizeof call->if_match)) {
		api_finish(call);
		return;
	}
	if (!idempotency_prepare(call, false, NULL))
		return;
	call->write = delete_write;
	api_submit_write(call);
}
