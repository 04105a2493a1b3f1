/*
 * rejoin.c - the epoch history of this region's log, and the rejoin of a
 * region whose history parted from the primary's (docs/FAILOVER.md,
 * "Rejoin"):
 *
 *   1. GET /internal/v1/replication/history from the primary; the
 *      divergence point D is the last position up to which both histories
 *      give the same epoch everywhere (at most both last positions);
 *   2. our entries above D, newest first, in one transaction: the rows they
 *      touched are read (after), the inverse changeset applied, the rows
 *      read again (before); the quarantine file REGION-eOLD-to-eNEW.jsonl
 *      (one JSON line per transaction, in position order) is written and
 *      fsynced; then the entries above D are deleted, the applied position
 *      set to D, the history cut; COMMIT. A crash before the COMMIT leaves
 *      nothing reverted and the same file rewritten next time;
 *   3. the stream resumes from D + 1 with prev_epoch = our epoch at D;
 *   4. an entry above D that is gone (trimmed) or a migration (no inverse):
 *      the whole database is copied to the quarantine folder and a snapshot
 *      of the primary replaces it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "failover/history.h"
#include "replication/internal.h"

/* --- the history --- */

#define HISTORY_MAX 256

/* The history and the rejoin's state (rejoin.h). */
struct repl_history {
	uint64_t epoch[HISTORY_MAX], first[HISTORY_MAX]; /* epoch i starts at position first[i] */
	int n;
	bool synced;                 /* secondary: checked against the current primary */
	bool rejoining;              /* a rejoin in flight */
	uint64_t quarantined_total;
};

repl_history *history_new(void)
{
	return calloc(1, sizeof(repl_history));
}

void history_free(repl_history **h)
{
	free(*h);
	*h = NULL;
}

bool history_synced(const repl *r)
{
	return r->history->synced;
}

void history_set_synced(repl *r, bool synced)
{
	r->history->synced = synced;
}

uint64_t history_quarantined_total(const repl *r)
{
	return r->history->quarantined_total;
}

int history_length(const repl *r)
{
	return r->history->n;
}

uint64_t history_last_epoch(const repl *r)
{
	const repl_history *h = r->history;
	return h->n ? h->epoch[h->n - 1] : 0;
}

bool rejoin_running(const repl *r)
{
	return r->history->rejoining;
}

void rejoin_forget(repl *r)
{
	r->history->rejoining = false;
}

/* The end of a rejoin: done runs exactly once, after the flag is down. */
static void rejoin_end(repl *r, void (*done)(repl *r, bool ok), bool ok)
{
	r->history->rejoining = false;
	done(r, ok);
}

int history_load(repl *r)
{
	enum { MAX = HISTORY_MAX };
	sqlite3_stmt *st = db_stmt(r->env.reader, "SELECT epoch, first_seq FROM repl_epochs ORDER BY epoch");
	if (!st)
		return ERR_DB;
	/* read into a copy: a read that fails half way (SQLITE_BUSY, an I/O
	 * error) must not leave a truncated history behind */
	uint64_t epochs[MAX], firsts[MAX];
	int n = 0, rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == MAX) { /* keep the newest, as history_add does */
			memmove(epochs, epochs + 1, (MAX - 1) * sizeof epochs[0]);
			memmove(firsts, firsts + 1, (MAX - 1) * sizeof firsts[0]);
			n--;
		}
		epochs[n] = (uint64_t)sqlite3_column_int64(st, 0);
		firsts[n] = (uint64_t)sqlite3_column_int64(st, 1);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		log_error("cannot read the epoch history: %s", sqlite3_errstr(rc));
		return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? ERR_AGAIN : ERR_DB;
	}
	memcpy(r->history->epoch, epochs, (size_t)n * sizeof epochs[0]);
	memcpy(r->history->first, firsts, (size_t)n * sizeof firsts[0]);
	r->history->n = n;
	return 0;
}

void history_add(repl *r, uint64_t epoch, uint64_t first_seq)
{
	if (r->history->n > 0 && r->history->epoch[r->history->n - 1] >= epoch) {
		if (r->history->epoch[r->history->n - 1] == epoch)
			r->history->first[r->history->n - 1] = first_seq;
		return;
	}
	if (r->history->n == HISTORY_MAX) { /* keep the newest: drop the oldest */
		memmove(r->history->epoch, r->history->epoch + 1, (HISTORY_MAX - 1) * sizeof r->history->epoch[0]);
		memmove(r->history->first, r->history->first + 1, (HISTORY_MAX - 1) * sizeof r->history->first[0]);
		r->history->n--;
	}
	r->history->epoch[r->history->n] = epoch;
	r->history->first[r->history->n] = first_seq;
	r->history->n++;
}

uint64_t history_epoch_at(const repl *r, uint64_t seq)
{
	return history_epoch_of(r->history->epoch, r->history->first, r->history->n, seq);
}

void history_json(repl *r, buf *out)
{
	buf_printf(out, "{\"region\":\"%s\",\"role\":\"%s\",\"epoch\":%llu,\"last_seq\":%llu,\"history\":[",
		   r->env.self->name, r->primary ? "primary" : "secondary", (unsigned long long)r->epoch,
		   (unsigned long long)r->position);
	for (int i = 0; i < r->history->n; i++)
		buf_printf(out, "%s[%llu,%llu]", i ? "," : "", (unsigned long long)r->history->epoch[i],
			   (unsigned long long)r->history->first[i]);
	buf_adds(out, "]}");
}

/* --- reverting into the quarantine --- */

typedef struct revert_job {
	repl *r;
	uint64_t from_last;      /* our last position */
	uint64_t d;              /* the divergence point */
	uint64_t new_epoch;      /* the primary's */
	uint64_t epoch_at_d;
	char path[CONFIG_PATH_MAX + 96];
	int count;
	bool need_snapshot;
	char error[200];
	void (*done)(repl *r, bool ok);
} revert_job;

static json_t *value_json(sqlite3_value *v)
{
	switch (sqlite3_value_type(v)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_value_int64(v));
	case SQLITE_FLOAT:
		return json_real(sqlite3_value_double(v));
	case SQLITE_TEXT:
		return json_stringn((const char *)sqlite3_value_text(v), (size_t)sqlite3_value_bytes(v));
	case SQLITE_BLOB: {
		size_t n = (size_t)sqlite3_value_bytes(v);
		char *hex = malloc(2 * n + 1);
		if (!hex)
			return json_null();
		util_hex(sqlite3_value_blob(v), n, hex);
		json_t *o = json_pack("{s:s}", "hex", hex);
		free(hex);
		return o;
	}
	default:
		return json_null();
	}
}

/* The whole current row of table with the primary key values pk (from a
 * changeset), as a JSON object in *out; JSON null when there is none. 0, or
 * ERR_DB (a statement failed: SQLITE_BUSY, IOERR, ...) / ERR_NOMEM with
 * *out NULL: the quarantine must not record a row it could not read as a
 * row that does not exist, so the caller fails the whole revert. */
static int read_row(db_conn *db, const char *table, int ncol, const unsigned char *pkflags, sqlite3_value **pk,
		    json_t **out)
{
	sqlite3 *h = db_handle(db);
	*out = NULL;
	char *cols_sql = sqlite3_mprintf("SELECT name FROM pragma_table_info(%Q) ORDER BY cid", table);
	sqlite3_stmt *cs = NULL;
	buf where;
	buf_init(&where, 4096);
	char names[64][64];
	int n = 0, rc = 0, src;
	if (!cols_sql || sqlite3_prepare_v2(h, cols_sql, -1, &cs, NULL) != SQLITE_OK) {
		rc = ERR_DB;
	} else {
		while ((src = sqlite3_step(cs)) == SQLITE_ROW && n < 64)
			snprintf(names[n++], 64, "%s", sqlite3_column_text(cs, 0));
		if (src != SQLITE_ROW && src != SQLITE_DONE)
			rc = ERR_DB;
	}
	sqlite3_finalize(cs);
	sqlite3_free(cols_sql);
	int bound = 0;
	for (int i = 0; rc == 0 && i < ncol && i < n; i++)
		if (pkflags[i]) {
			char *w = sqlite3_mprintf("%s\"%w\" IS ?%d", bound ? " AND " : "", names[i], bound + 1);
			if (!w || buf_adds(&where, w) != 0)
				rc = ERR_NOMEM;
			sqlite3_free(w);
			bound++;
		}
	json_t *row = NULL;
	char *sql = rc == 0 && bound ? sqlite3_mprintf("SELECT * FROM \"%w\" WHERE %s", table, where.data) : NULL;
	sqlite3_stmt *st = NULL;
	if (rc == 0 && bound && (!sql || sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK))
		rc = ERR_DB;
	if (rc == 0 && st) {
		int b = 0;
		for (int i = 0; i < ncol; i++)
			if (pkflags[i])
				sqlite3_bind_value(st, ++b, pk[i]);
		src = sqlite3_step(st);
		if (src == SQLITE_ROW) {
			row = json_object();
			for (int c = 0; row && c < sqlite3_column_count(st); c++)
				json_object_set_new(row, sqlite3_column_name(st, c), value_json(sqlite3_column_value(st, c)));
			if (!row)
				rc = ERR_NOMEM;
		} else if (src != SQLITE_DONE) {
			rc = ERR_DB;
		}
	}
	if (rc != 0)
		log_error("rejoin: cannot read a row of %s for the quarantine: %s", table,
			  rc == ERR_NOMEM ? "out of memory" : sqlite3_errmsg(h));
	sqlite3_finalize(st);
	sqlite3_free(sql);
	buf_free(&where);
	if (rc == 0)
		*out = row ? row : json_null();
	return rc;
}

typedef struct touched {
	char table[64];
	int ncol;
	unsigned char pkflags[64];
	sqlite3_value *pk[64]; /* duplicated values */
} touched;

static int abort_on_conflict(void *arg, int reason, sqlite3_changeset_iter *it)
{
	(*(int *)arg)++;
	return SQLITE_CHANGESET_ABORT;
}

/* Revert one entry: the JSON line of it in *line. 0, ERR_CONFLICT. */
static int revert_entry(db_conn *db, uint64_t seq, uint64_t epoch, int64_t time_ms, const void *payload,
			int len, json_t **line)
{
	sqlite3_changeset_iter *it = NULL;
	touched *t = NULL;
	int nt = 0, cap = 0;
	int rc = 0;
	if (sqlite3changeset_start(&it, len, (void *)payload) != SQLITE_OK)
		return ERR_CONFLICT;
	while (sqlite3changeset_next(it) == SQLITE_ROW) {
		const char *table;
		int ncol, op, indirect;
		unsigned char *pkf;
		int npk;
		sqlite3changeset_op(it, &table, &ncol, &op, &indirect);
		sqlite3changeset_pk(it, &pkf, &npk);
		if (nt == cap) {
			cap = cap ? cap * 2 : 16;
			touched *nt2 = realloc(t, (size_t)cap * sizeof *t);
			if (!nt2) {
				rc = ERR_NOMEM;
				break;
			}
			t = nt2;
		}
		touched *x = &t[nt];
		memset(x, 0, sizeof *x);
		snprintf(x->table, sizeof x->table, "%s", table);
		x->ncol = ncol < 64 ? ncol : 64;
		for (int i = 0; i < x->ncol; i++) {
			x->pkflags[i] = pkf[i];
			if (!pkf[i])
				continue;
			sqlite3_value *v = NULL;
			if (op == SQLITE_INSERT)
				sqlite3changeset_new(it, i, &v);
			else
				sqlite3changeset_old(it, i, &v);
			x->pk[i] = v ? sqlite3_value_dup(v) : NULL;
		}
		nt++;
	}
	sqlite3changeset_finalize(it);
	json_t *changes = json_array();
	json_t **after = calloc((size_t)(nt ? nt : 1), sizeof *after);
	if (rc == 0 && after) {
		for (int i = 0; i < nt && rc == 0; i++)
			rc = read_row(db, t[i].table, t[i].ncol, t[i].pkflags, t[i].pk, &after[i]);
		int n2 = 0;
		void *inv = NULL;
		int conflicts = 0;
		if (rc == 0 &&
		    (sqlite3changeset_invert(len, payload, &n2, &inv) != SQLITE_OK ||
		     sqlite3changeset_apply(db_handle(db), n2, inv, NULL, abort_on_conflict, &conflicts) != SQLITE_OK ||
		     conflicts))
			rc = ERR_CONFLICT;
		sqlite3_free(inv);
		for (int i = 0; i < nt && rc == 0; i++) {
			json_t *before = NULL;
			rc = read_row(db, t[i].table, t[i].ncol, t[i].pkflags, t[i].pk, &before);
			json_t *change = rc == 0 ? json_pack("{s:s,s:o,s:o}", "table", t[i].table, "before", before,
							     "after", after[i]) : NULL;
			after[i] = NULL; /* taken by json_pack's "o" (released by it on failure too) */
			if (rc == 0 && (!changes || !change || json_array_append_new(changes, change) != 0))
				rc = ERR_NOMEM;
		}
	} else if (rc == 0) {
		rc = ERR_NOMEM;
	}
	for (int i = 0; i < nt; i++) {
		if (after)
			json_decref(after[i]);
		for (int c = 0; c < t[i].ncol; c++)
			sqlite3_value_free(t[i].pk[c]);
	}
	free(after);
	free(t);
	if (rc != 0) {
		json_decref(changes);
		return rc;
	}
	char iso[32];
	util_iso8601(time_ms, iso);
	*line = json_pack("{s:I,s:I,s:s,s:o}", "epoch", (json_int_t)epoch, "position", (json_int_t)seq, "time",
			  iso, "changes", changes);
	return *line ? 0 : ERR_NOMEM;
}

/* Writer thread, inside a batch transaction (its savepoint is rolled back
 * on failure: nothing is reverted then). */
static int revert_exec(db_conn *db, void *arg)
{
	revert_job *j = arg;
	uint64_t n = j->from_last - j->d;
	json_t **lines = calloc((size_t)n, sizeof *lines);
	if (!lines)
		return ERR_NOMEM;
	int rc = 0;
	uint64_t old_epoch = 0;
	for (uint64_t seq = j->from_last; seq > j->d && rc == 0; seq--) {
		sqlite3_stmt *st = db_stmt(db, "SELECT epoch, kind, committed_at, payload FROM repl_log WHERE seq = ?1");
		if (!st) {
			rc = ERR_DB;
			break;
		}
		sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
		int src = sqlite3_step(st);
		if (src != SQLITE_ROW && src != SQLITE_DONE) {
			/* the log could not be read (I/O error, busy): not a reason
			 * to throw the database away for a snapshot; the revert
			 * fails as a whole and the next rejoin tries again */
			snprintf(j->error, sizeof j->error, "cannot read entry %llu: %s", (unsigned long long)seq,
				 sqlite3_errstr(src));
			sqlite3_reset(st);
			rc = ERR_DB;
			break;
		}
		if (src != SQLITE_ROW || sqlite3_column_int(st, 1) != LOG_CHANGESET) {
			sqlite3_reset(st);
			snprintf(j->error, sizeof j->error, "entry %llu is %s", (unsigned long long)seq,
				 "gone from the log or a migration");
			j->need_snapshot = true;
			rc = ERR_NOTFOUND;
			break;
		}
		uint64_t e = (uint64_t)sqlite3_column_int64(st, 0);
		if (e > old_epoch)
			old_epoch = e;
		int64_t t = sqlite3_column_int64(st, 2);
		int len = sqlite3_column_bytes(st, 3);
		void *copy = malloc(len ? (size_t)len : 1);
		if (!copy) {
			sqlite3_reset(st);
			rc = ERR_NOMEM;
			break;
		}
		memcpy(copy, sqlite3_column_blob(st, 3), (size_t)len);
		sqlite3_reset(st);
		rc = revert_entry(db, seq, e, t, copy, len, &lines[seq - j->d - 1]);
		free(copy);
		if (rc == ERR_CONFLICT) {
			snprintf(j->error, sizeof j->error, "entry %llu does not revert cleanly", (unsigned long long)seq);
			j->need_snapshot = true;
		}
	}
	if (rc == 0) {
		buf out;
		buf_init(&out, (size_t)1 << 30);
		for (uint64_t i = 0; i < n && rc == 0; i++) {
			char *text = json_dumps(lines[i], JSON_COMPACT);
			if (!text || buf_adds(&out, text) != 0 || buf_addc(&out, '\n') != 0)
				rc = ERR_NOMEM;
			free(text);
		}
		char dir[CONFIG_PATH_MAX + 16];
		snprintf(dir, sizeof dir, "%s/quarantine", j->r->env.self->data_dir);
		snprintf(j->path, sizeof j->path, "%s/%s-e%llu-to-e%llu.jsonl", dir, j->r->env.self->name,
			 (unsigned long long)old_epoch, (unsigned long long)j->new_epoch);
		if (rc == 0 && (util_mkdirs(dir, 0700) != 0 || util_write_file(j->path, out.data, out.len, 0600) != 0)) {
			snprintf(j->error, sizeof j->error, "cannot write the quarantine file: %s", strerror(errno));
			rc = ERR_IO;
		}
		buf_free(&out);
	}
	for (uint64_t i = 0; i < n; i++)
		json_decref(lines[i]);
	free(lines);
	if (rc != 0)
		return rc;
	/* the file is durable: now the log and the state follow */
	if (db_exec_int(db, "DELETE FROM repl_log WHERE seq > ?1", (int64_t)j->d, 0) != 0 ||
	    db_exec_int(db, "UPDATE repl_state SET last_seq = ?1, applied_seq = ?1, applied_epoch = ?2 WHERE id = 1",
			(int64_t)j->d, (int64_t)j->epoch_at_d) != 0 ||
	    db_exec_int(db, "DELETE FROM repl_epochs WHERE first_seq > ?1 AND epoch <> (SELECT max(epoch) FROM "
			    "repl_epochs WHERE first_seq <= ?1)", (int64_t)j->d, 0) != 0)
		return ERR_DB;
	j->count = (int)n;
	return 0;
}

static void revert_done(void *arg, int rc, uint64_t unused)
{
	revert_job *j = arg;
	repl *r = j->r;
	applier_release(r);
	if (rc == 0) {
		applier_reset_position(r, j->d);
		r->history->quarantined_total += (uint64_t)j->count;
		repl_view_publish(r);
		bool history_ok = history_load(r) == 0;
		if (!history_ok) /* the revert is committed, our copy of the history stale */
			log_error("rejoin: the history could not be read back after the revert; rejoining again");
		char f[CONFIG_PATH_MAX + 160];
		snprintf(f, sizeof f, "\"count\":%d,\"file\":\"%s\",\"from\":%llu,\"to\":%llu,\"epoch\":%llu", j->count,
			 j->path, (unsigned long long)j->d + 1, (unsigned long long)j->from_last,
			 (unsigned long long)j->new_epoch);
		log_event(LOG_WARN, "quarantine", f,
			  "rejoin: %d transactions (positions %llu..%llu) never reached the primary; "
			  "reverted and written to the quarantine",
			  j->count, (unsigned long long)j->d + 1, (unsigned long long)j->from_last);
		/* not synced until the history is read: the next rejoin reads it */
		rejoin_end(r, j->done, history_ok);
	} else if (j->need_snapshot) {
		/* keep everything we have, then take the primary's copy */
		char path[CONFIG_PATH_MAX + 96];
		snprintf(path, sizeof path, "%s/quarantine", r->env.self->data_dir);
		if (util_mkdirs(path, 0700) != 0) /* the VACUUM INTO below fails then, and says so */
			log_error("rejoin: cannot create %s: %s", path, strerror(errno));
		snprintf(path, sizeof path, "%s/quarantine/%s-to-e%llu-at-%llu.db", r->env.self->data_dir,
			 r->env.self->name, (unsigned long long)j->new_epoch, (unsigned long long)j->from_last);
		/* on a connection of its own: the loop's reader may have
		 * statements in progress, and VACUUM refuses to run then */
		unlink(path);
		sqlite3 *copy = NULL;
		int vrc = sqlite3_open_v2(r->env.db_path, &copy, SQLITE_OPEN_READWRITE, NULL);
		char *sql = sqlite3_mprintf("VACUUM INTO %Q", path);
		if (vrc == SQLITE_OK)
			vrc = sqlite3_exec(copy, sql, NULL, NULL, NULL);
		if (vrc != SQLITE_OK)
			log_error("rejoin: VACUUM INTO failed: %s", copy ? sqlite3_errmsg(copy) : sqlite3_errstr(vrc));
		sqlite3_free(sql);
		sqlite3_close_v2(copy);
		if (vrc == SQLITE_OK && chmod(path, 0600) != 0) /* personal data (the folder is 0700 too) */
			log_warn("rejoin: cannot make %s private (%s); its folder is 0700", path, strerror(errno));
		char f[CONFIG_PATH_MAX + 160];
		snprintf(f, sizeof f,
			 "\"count\":%llu,\"file\":\"%s\",\"from\":%llu,\"to\":%llu,\"epoch\":%llu,\"snapshot\":true",
			 (unsigned long long)(j->from_last - j->d), path, (unsigned long long)j->d + 1,
			 (unsigned long long)j->from_last, (unsigned long long)j->new_epoch);
		if (vrc != SQLITE_OK) {
			log_error("rejoin: cannot copy the database to %s; staying out of the stream", path);
			rejoin_end(r, j->done, false);
		} else {
			log_event(LOG_WARN, "quarantine", f,
				  "rejoin: %s; the whole database was copied to the quarantine and a snapshot of "
				  "the primary replaces it",
				  j->error);
			r->history->quarantined_total += j->from_last - j->d;
			snapshot_require(r);
			rejoin_end(r, j->done, true);
		}
	} else {
		log_error("rejoin: cannot revert (%s): %s", err_str(rc), j->error);
		rejoin_end(r, j->done, false);
	}
	free(j);
}

/* --- the rejoin --- */

typedef struct rejoin_ctx {
	repl *r;
	void (*done)(repl *r, bool ok);
} rejoin_ctx;

static void history_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	rejoin_ctx *c = arg;
	repl *r = c->r;
	void (*done)(repl *, bool) = c->done;
	free(c);
	if (r->stopping) {
		rejoin_end(r, done, false);
		return;
	}
	if (rc != 0) { /* the link client logs its failed connections */
		rejoin_end(r, done, false);
		return;
	}
	if (resp->status != 200) {
		log_warn("rejoin: the primary answered %d to the history request; rejoining later", resp->status);
		rejoin_end(r, done, false);
		return;
	}
	json_t *o = json_loadb(body, len, 0, NULL);
	json_t *h = json_object_get(o, "history");
	json_t *ep = json_object_get(o, "epoch"), *last = json_object_get(o, "last_seq");
	const char *role = json_string_value(json_object_get(o, "role"));
	if (!role || strcmp(role, "primary") != 0) {
		log_info("rejoin: %s is not the primary (any more); rejoining later", r->env.peer->name);
		json_decref(o);
		rejoin_end(r, done, false);
		return;
	}
	uint64_t pe[256], pf[256];
	int pn = 0;
	bool ok = json_is_array(h) && json_array_size(h) <= 256 && json_is_integer(ep) && json_integer_value(ep) >= 0 &&
		  json_is_integer(last) && json_integer_value(last) >= 0;
	size_t i;
	json_t *row;
	json_array_foreach(h, i, row) {
		json_t *e = json_array_get(row, 0), *f = json_array_get(row, 1);
		if (!ok || !json_is_integer(e) || !json_is_integer(f) || json_integer_value(e) < 0 ||
		    json_integer_value(f) < 0) {
			ok = false;
			break;
		}
		pe[pn] = (uint64_t)json_integer_value(e);
		pf[pn] = (uint64_t)json_integer_value(f);
		pn++;
	}
	if (!ok) { /* another version, or a bug: never guess a divergence point */
		log_error("rejoin: the primary's history answer is malformed; rejoining later");
		json_decref(o);
		rejoin_end(r, done, false);
		return;
	}
	uint64_t their_epoch = (uint64_t)json_integer_value(ep);
	uint64_t their_last = (uint64_t)json_integer_value(last);
	json_decref(o);
	history_rejoin_plan plan = history_rejoin(r->epoch, r->history->epoch, r->history->first, r->history->n, r->position,
						   their_epoch, pe, pf, pn, their_last);
	if (plan.action == HISTORY_REJOIN_DEPOSED) {
		log_info("rejoin: %s answers as primary of epoch %llu, older than ours (%llu): a deposed primary, "
			 "not ours to follow", r->env.peer->name, (unsigned long long)their_epoch,
			 (unsigned long long)r->epoch);
		rejoin_end(r, done, false);
		return;
	}
	election_learn(r, their_epoch);
	if (plan.action == HISTORY_REJOIN_IN_SYNC) {
		rejoin_end(r, done, true);
		return;
	}
	uint64_t d = plan.d;
	revert_job *j = calloc(1, sizeof *j);
	if (!j) {
		log_error("rejoin: cannot revert positions %llu..%llu: out of memory; staying out of the stream, "
			  "retrying", (unsigned long long)plan.from, (unsigned long long)plan.to);
		rejoin_end(r, done, false);
		return;
	}
	*j = (revert_job){.r = r, .from_last = plan.to, .d = d, .new_epoch = their_epoch,
			  .epoch_at_d = plan.epoch_at_d, .done = done};
	log_warn("rejoin: this region's log parted from the primary's (epoch %llu) after position %llu; "
		 "reverting positions %llu..%llu into the quarantine",
		 (unsigned long long)their_epoch, (unsigned long long)d, (unsigned long long)d + 1,
		 (unsigned long long)r->position);
	applier_hold(r);
	if (repl_submit(r, revert_exec, revert_done, j) != 0) {
		log_warn("rejoin: the writer queue refused the revert (full or stopping); rejoining later");
		applier_release(r);
		free(j);
		rejoin_end(r, done, false);
	}
}

void rejoin_start(repl *r, void (*done)(repl *r, bool ok))
{
	r->history->rejoining = true;
	/* our history as the database has it (an earlier read may have failed) */
	if (history_load(r) != 0) {
		log_warn("rejoin: cannot read this region's epoch history; retrying later");
		rejoin_end(r, done, false);
		return;
	}
	rejoin_ctx *c = calloc(1, sizeof *c);
	char headers[64];
	snprintf(headers, sizeof headers, "X-Tandem-Epoch: %llu\r\n", (unsigned long long)r->epoch);
	if (!c) {
		log_error("rejoin: out of memory; rejoining later");
		rejoin_end(r, done, false);
		return;
	}
	c->r = r;
	c->done = done;
	http_client *control = applier_control_client(r);
	if (!control ||
	    http_client_request(control, "GET", "/internal/v1/replication/history", headers, NULL, 0, 0,
				history_answer, c) != 0) {
		log_warn("rejoin: cannot ask %s for its history now; rejoining later", r->env.peer->name);
		free(c);
		rejoin_end(r, done, false);
	}
}
