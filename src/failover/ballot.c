/* ballot.c - voter messages as JSON; see ballot.h. */
#include "failover/ballot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"

int ballot_parse(int kind, const char *body, size_t len, const char *peer, ballot *b, char *err,
		 size_t errcap)
{
	memset(b, 0, sizeof *b);
	json_error_t je;
	json_t *o = json_loadb(body, len, 0, &je);
	if (!o || !json_is_object(o)) {
		snprintf(err, errcap, "the body must be a JSON object");
		json_decref(o);
		return ERR_INVAL;
	}
	const char *name_key = kind == BALLOT_LEASE ? "holder" : kind == BALLOT_VOTE ? "candidate" : "from";
	json_t *epoch = json_object_get(o, "epoch");
	json_t *who = json_object_get(o, name_key);
	int rc = 0;
	if (!json_is_integer(epoch) || json_integer_value(epoch) < 1) {
		snprintf(err, errcap, "epoch must be an integer >= 1");
		rc = ERR_INVAL;
	} else if (!json_is_string(who) || strlen(json_string_value(who)) >= sizeof b->who) {
		snprintf(err, errcap, "%s must be a region name", name_key);
		rc = ERR_INVAL;
	} else if (!peer || strcmp(peer, json_string_value(who)) != 0) {
		snprintf(err, errcap, "%s must be the sender's own name", name_key);
		rc = ERR_INVAL;
	}
	if (rc == 0) {
		b->epoch = (uint64_t)json_integer_value(epoch);
		snprintf(b->who, sizeof b->who, "%s", json_string_value(who));
		json_t *v = json_object_get(o, "boot_id");
		if (json_is_string(v))
			snprintf(b->boot_id, sizeof b->boot_id, "%s", json_string_value(v));
		if (kind == BALLOT_VOTE) {
			json_t *le = json_object_get(o, "last_epoch"), *ls = json_object_get(o, "last_seq");
			if (!json_is_integer(le) || !json_is_integer(ls) || json_integer_value(le) < 0 ||
			    json_integer_value(ls) < 0) {
				snprintf(err, errcap, "last_epoch and last_seq must be integers >= 0");
				rc = ERR_INVAL;
			} else {
				b->last_epoch = (uint64_t)json_integer_value(le);
				b->last_seq = (uint64_t)json_integer_value(ls);
			}
			b->pre = json_is_true(json_object_get(o, "pre"));
			b->force = json_is_true(json_object_get(o, "force"));
		}
	}
	json_decref(o);
	return rc;
}

int ballot_read(http_request *req, int kind, const char *peer, ballot *b)
{
	size_t len;
	const char *body = http_request_body(req, &len);
	char err[160];
	if (ballot_parse(kind, body, len, peer, b, err, sizeof err) == 0)
		return 0;
	ballot_error(req, 400, "bad_request", err);
	return ERR_INVAL;
}

void ballot_error(http_request *req, int status, const char *code, const char *message)
{
	json_t *o = json_pack("{s:b,s:{s:s,s:s}}", "granted", 0, "error", "code", code, "message", message);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, status, text, text ? strlen(text) : 0);
	free(text);
}

void ballot_answer(http_request *req, const voter_answer *a, const char *boot_id)
{
	json_t *o;
	int status = 200;
	if (a->granted) {
		o = json_pack("{s:b,s:I,s:s}", "granted", 1, "promised_epoch", (json_int_t)a->promised_epoch,
			      "boot_id", boot_id ? boot_id : "");
	} else {
		const char *code = a->reason ? a->reason : "refused";
		char msg[160];
		if (strcmp(code, "lease_held") == 0)
			snprintf(msg, sizeof msg, "a lease granted to %s binds for %lld ms more", a->holder,
				 (long long)a->remaining_ms);
		else if (strcmp(code, "stale_epoch") == 0)
			snprintf(msg, sizeof msg, "epoch %llu or newer is known here",
				 (unsigned long long)a->promised_epoch);
		else if (strcmp(code, "behind") == 0)
			snprintf(msg, sizeof msg, "the candidate's data is behind this voter's");
		else
			snprintf(msg, sizeof msg, "the voter could not record its state");
		status = strcmp(code, "io") == 0 ? 503 : 409;
		o = json_pack("{s:b,s:I,s:s,s:I,s:{s:s,s:s}}", "granted", 0, "promised_epoch",
			      (json_int_t)a->promised_epoch, "holder", a->holder, "remaining_ms",
			      (json_int_t)a->remaining_ms, "error", "code", code, "message", msg);
	}
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, status, text, text ? strlen(text) : 0);
	free(text);
}

int ballot_parse_answer(const char *body, size_t len, bool *granted, uint64_t *promised,
			int64_t *remaining_ms, char *reason, size_t reasoncap)
{
	json_error_t je;
	json_t *o = json_loadb(body, len, 0, &je);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		return ERR_PARSE;
	}
	*granted = json_is_true(json_object_get(o, "granted"));
	json_t *p = json_object_get(o, "promised_epoch");
	*promised = json_is_integer(p) && json_integer_value(p) > 0 ? (uint64_t)json_integer_value(p) : 0;
	json_t *r = json_object_get(o, "remaining_ms");
	*remaining_ms = json_is_integer(r) ? (int64_t)json_integer_value(r) : 0;
	json_t *e = json_object_get(o, "error");
	const char *code = json_is_object(e) ? json_string_value(json_object_get(e, "code")) : NULL;
	snprintf(reason, reasoncap, "%s", code ? code : "");
	json_decref(o);
	return 0;
}
