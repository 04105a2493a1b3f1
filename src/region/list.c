/*
 * list.c - GET /v1/collections/{c}/records: a page of the caller's records,
 * filtered and sorted (query.h), computed on a reader thread (readers.h)
 * within a budget (budget.h), never on the event loop: the cost of a list
 * depends on the caller's filter, and a loop stalled for seconds costs the
 * primary its lease.
 *
 *   loop thread                          reader thread (own connection)
 *   records_list: auth, parameters,
 *   compile; end the loop's read
 *   transaction; submit  ---- job ---->  list_run: wait check, prepare, bind,
 *                                        budget (deadline, rows examined),
 *                                        step, build the page into a
 *                                        bounded buffer (every buf_* checked)
 *   list_done: the page (200) or  <----  outcome
 *   the error; api_finish
 *
 * Page: at most `limit` records and, from the second record on, at most
 * page_max_bytes of answer; a page always holds one record (else paging could
 * not progress), so one record larger than the budget makes a page alone.
 * When a page ends early, next_cursor is the cursor of its last record, so
 * nothing is skipped. A page that cannot be built is a 500 with the error
 * body, never a truncated 200.
 *
 * Consistency: a read with Min-LSN or session/global consistency waited on
 * the loop (api.c) before this handler ran, so the position it asked for was
 * committed (durable) before the job was queued; the reader thread's
 * statement starts its WAL read transaction after that, so its snapshot
 * holds everything the loop saw (WAL readers see every commit completed
 * before their transaction starts). It may be newer: a list is never older
 * than what the client was promised.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "region/internal.h"
#include "region/query.h"
#include "store/budget.h"

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 1000
/* The largest single record a page holds (the largest answer api.c builds). */
#define LIST_RECORD_MAX ((size_t)64 * 1024 * 1024)
/* What follows the items: "],\"next_cursor\":\"<cursor>\"}" */
#define LIST_TAIL_MAX (LIST_QUERY_MAX_CURSOR + 32)
/* The columns of the page's SELECT: RECORD_COLUMNS, then the sort keys. */
#define LIST_ID_COLUMN 0
#define LIST_FIRST_KEY_COLUMN 7

typedef enum list_outcome {
	LIST_OK,                 /* page holds the answer */
	LIST_WAITED_TOO_LONG,    /* queued longer than the deadline: 503 overloaded */
	LIST_TIMEOUT,            /* 400 query_too_expensive */
	LIST_SCAN_LIMIT,         /* 400 query_too_expensive */
	LIST_CURSOR_UNAVAILABLE, /* the last record's sort values do not fit a cursor */
	LIST_RECORD_TOO_LARGE,   /* one record is larger than LIST_RECORD_MAX */
	LIST_FAILED,             /* detail says why (logged by the loop) */
} list_outcome;

typedef struct list_job {
	api_call *call;          /* loop side only */
	/* the request, read-only on the reader thread */
	list_query *q;
	char user_id[API_ID_MAX];
	char collection[72];
	long long limit;
	size_t page_max;
	int timeout_ms;
	int64_t max_rows;
	int64_t queued_us;
	/* the result, written on the reader thread, read after done() */
	list_outcome outcome;
	buf page;                /* the whole answer body when LIST_OK */
	int64_t rows_examined;   /* for the log */
	int64_t ran_us;
	char detail[200];        /* no record contents: it is logged */
} list_job;

static void list_job_free(list_job *j)
{
	list_query_free(&j->q);
	buf_free(&j->page);
	free(j);
}

/* --- reader thread ------------------------------------------------------ */

/* Record why the job failed (db: add SQLite's message). Returns 0, the
 * value list_run hands to done(). */
static int list_fail(list_job *j, list_outcome outcome, const char *detail, sqlite3 *db)
{
	j->outcome = outcome;
	if (db)
		snprintf(j->detail, sizeof j->detail, "%s: %s", detail, sqlite3_errmsg(db));
	else
		snprintf(j->detail, sizeof j->detail, "%s", detail);
	return 0;
}

/* Take back what was appended to b after its first len bytes. */
static void page_truncate(buf *b, size_t len)
{
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

/* Step st and build the page into j->page.
 * Sets j->outcome (and returns 0); b says why a statement was stopped. */
static int list_build_page(list_job *j, sqlite3_stmt *st, const query_budget *b)
{
	size_t keys = list_query_key_count(j->q);
	sqlite3_value **last = calloc(keys + 1, sizeof *last); /* the last record's cursor values */
	char *next = NULL;
	long long n = 0;
	bool more = false;
	int step, rc;

	/* room for the budget, plus one record past it (the first record of a
	 * page is always taken; a later one is appended, then taken back) */
	buf_init(&j->page, j->page_max + LIST_RECORD_MAX);
	if (!last || buf_adds(&j->page, "{\"items\":[") != 0) {
		list_fail(j, LIST_FAILED, "out of memory", NULL);
		goto done;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == j->limit) { /* one more exists: the page ends before it */
			more = true;
			break;
		}
		size_t before = j->page.len;
		rc = n > 0 ? buf_addc(&j->page, ',') : 0;
		if (rc == 0)
			rc = records_json(&j->page, st);
		if (rc == 0 && j->page.len - before > LIST_RECORD_MAX)
			rc = ERR_LIMIT; /* one record's own bound, first or not */
		if (rc == ERR_LIMIT && n > 0) {
			/* past the buffer's room (page_max_bytes + one record), so
			 * past the budget too: the record starts the next page, and
			 * is judged there, as its first */
			page_truncate(&j->page, before);
			more = true;
			break;
		}
		if (rc) {
			list_fail(j, rc == ERR_LIMIT ? LIST_RECORD_TOO_LARGE : LIST_FAILED,
				  "cannot encode a record", NULL);
			goto done;
		}
		/* the byte budget, from the second record on: take it back */
		if (n > 0 && j->page.len + LIST_TAIL_MAX > j->page_max) {
			page_truncate(&j->page, before);
			more = true;
			break;
		}
		n++;
		for (size_t i = 0; i <= keys; i++) {
			int col = i < keys ? LIST_FIRST_KEY_COLUMN + (int)i : LIST_ID_COLUMN;
			sqlite3_value_free(last[i]);
			last[i] = sqlite3_value_dup(sqlite3_column_value(st, col));
			if (!last[i]) {
				list_fail(j, LIST_FAILED, "out of memory", NULL);
				goto done;
			}
		}
	}
	if (!more && step != SQLITE_DONE) {
		if (b->exceeded == BUDGET_TIME)
			list_fail(j, LIST_TIMEOUT, "deadline", NULL);
		else if (b->exceeded == BUDGET_ROWS)
			list_fail(j, LIST_SCAN_LIMIT, "rows examined", NULL);
		else
			list_fail(j, LIST_FAILED, "the list query failed", sqlite3_db_handle(st));
		goto done;
	}
	if (more && list_query_cursor_values(j->q, last, &next) != 0) {
		/* never a silent null: that would look like the end of the list */
		list_fail(j, LIST_CURSOR_UNAVAILABLE, "cursor", NULL);
		goto done;
	}
	rc = buf_adds(&j->page, "],\"next_cursor\":");
	if (rc == 0 && next)
		rc = buf_printf(&j->page, "\"%s\"}", next); /* base64url: nothing to escape */
	else if (rc == 0)
		rc = buf_adds(&j->page, "null}");
	if (rc != 0) {
		list_fail(j, LIST_FAILED, "cannot end the page", NULL);
		goto done;
	}
	j->outcome = LIST_OK;
done:
	if (j->outcome != LIST_OK)
		buf_free(&j->page);
	free(next);
	for (size_t i = 0; last && i <= keys; i++)
		sqlite3_value_free(last[i]);
	free(last);
	return 0;
}

static int list_run(db_conn *db, void *arg)
{
	list_job *j = arg;
	sqlite3 *h = db_handle(db);
	sqlite3_stmt *st = NULL;
	int64_t start = util_mono_us();
	int rc;

	j->outcome = LIST_FAILED; /* until a page is built */
	/* a job that waited out its whole deadline in the queue is not worth
	 * starting: its client is better served by a quick 503 and a retry */
	if (start - j->queued_us > (int64_t)j->timeout_ms * 1000)
		return list_fail(j, LIST_WAITED_TOO_LONG, "waited too long", NULL);
	const char *keys = list_query_keys(j->q);
	/* the row counter comes before the filter so that it counts every row
	 * the scan visits (budget.h) */
	char *sql = sqlite3_mprintf("SELECT " RECORD_COLUMNS "%s%s FROM records WHERE owner = ?1 AND "
				    "collection = ?2 AND " BUDGET_EXAMINED_SQL " AND (%s) %s LIMIT %lld",
				    keys[0] ? ", " : "", keys, list_query_where(j->q),
				    list_query_order(j->q), j->limit + 1);
	if (!sql)
		return list_fail(j, LIST_FAILED, "out of memory", NULL);
	rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
	sqlite3_free(sql);
	if (rc != SQLITE_OK)
		return list_fail(j, LIST_FAILED, "cannot prepare the list query", h);
	if (sqlite3_bind_text(st, 1, j->user_id, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, j->collection, -1, SQLITE_STATIC) != SQLITE_OK ||
	    list_query_bind(j->q, st, 3) < 0) {
		sqlite3_finalize(st);
		return list_fail(j, LIST_FAILED, "cannot bind the list query", NULL);
	}
	query_budget b = {
		.deadline_us = start + (int64_t)j->timeout_ms * 1000,
		.max_rows = j->max_rows,
	};
	budget_begin(h, &b);
	list_build_page(j, st, &b);
	budget_end(h);
	j->rows_examined = b.rows;
	j->ran_us = util_mono_us() - start;
	sqlite3_finalize(st);
	return 0;
}

static int list_reader_init(db_conn *db, void *arg)
{
	return budget_register(db_handle(db));
}

readers *list_readers_new(region *rg, const char *db_path, char *err, size_t errcap)
{
	/* the queue is small per job (no page yet) and each waiting list
	 * holds a connection; a list that waits past its deadline is refused
	 * when its turn comes, so a long queue costs no unbounded work */
	int threads = rg->cfg->limits.query_threads;
	return readers_new(rg->base, db_path, threads, rg->cfg->limits.query_queue_max,
			   list_reader_init, NULL, err, errcap);
}

/* --- loop thread --------------------------------------------------------- */

/* Add fields (a JSON fragment from trusted values, "\"k\":1") to the error
 * object api_error() just wrote, machine-readable next to the message. */
static void list_error_fields(api_call *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void list_error_fields(api_call *call, const char *fmt, ...)
{
	char fields[128];
	va_list ap;
	buf *b = &call->body;
	va_start(ap, fmt);
	vsnprintf(fields, sizeof fields, fmt, ap);
	va_end(ap);
	if (b->len < 2 || strcmp(b->data + b->len - 2, "}}") != 0)
		return; /* defensive: not the shape api_error writes */
	b->len -= 2;
	b->data[b->len] = '\0';
	if (buf_printf(b, ",%s}}", fields) != 0)
		buf_adds(b, "}}"); /* cannot fail: the two bytes were just freed */
}

static void list_too_expensive(api_call *call, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void list_too_expensive(api_call *call, const char *reason, const char *fmt, ...)
{
	char what[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	api_error(call, 400, "query_too_expensive",
		  "%s; narrow the query: filter on id (indexed) or with fewer and cheaper conditions "
		  "(~ over long strings is costly), keep the default sort (by id) so that a page can "
		  "stop early, or ask for a smaller limit",
		  what);
	list_error_fields(call, "\"reason\":\"%s\"", reason);
	metrics_list_refused(call->rg->metrics, reason);
}

/* One line per refused expensive list, for operators tuning the limits. */
static void list_log_refusal(const list_job *j, const char *reason)
{
	log_info("list query %s refused (%s): %lld rows examined in %lld ms", j->call->request_id, reason,
		 (long long)j->rows_examined, (long long)(j->ran_us / 1000));
}

static void list_done(void *arg, int rc)
{
	list_job *j = arg;
	api_call *call = j->call;
	const config_limits *l = &call->rg->cfg->limits;
	if (rc == ERR_AGAIN) { /* cancelled: the region is stopping */
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "shutting_down", "the region is stopping; retry shortly");
		goto out;
	}
	switch (j->outcome) {
	case LIST_OK:
		/* hand the page over: no copy of up to page_max_bytes on the loop */
		buf_free(&call->body);
		call->body = j->page;
		buf_init(&j->page, 0);
		call->status = 200;
		break;
	case LIST_WAITED_TOO_LONG:
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "overloaded", "too many list queries waiting; retry shortly");
		metrics_list_refused(call->rg->metrics, "overloaded");
		break;
	case LIST_TIMEOUT:
		list_log_refusal(j, "timeout");
		list_too_expensive(call, "timeout", "the query ran longer than %d ms (query_timeout_ms)",
				   l->query_timeout_ms);
		break;
	case LIST_SCAN_LIMIT:
		list_log_refusal(j, "scan_limit");
		list_too_expensive(call, "scan_limit",
				   "the query examined more than %lld records (query_max_scan_rows)",
				   (long long)l->query_max_scan_rows);
		break;
	case LIST_CURSOR_UNAVAILABLE:
		api_error(call, 500, "cursor_unavailable",
			  "cannot page after this record (its sort values are too large for a cursor); "
			  "use a larger limit or another sort");
		break;
	case LIST_RECORD_TOO_LARGE:
		api_error(call, 500, "internal_error",
			  "a record of this page is larger than an answer may be (%zu MiB)",
			  LIST_RECORD_MAX >> 20);
		break;
	case LIST_FAILED:
		log_error("list query (%s): %s", call->request_id, j->detail);
		api_error(call, 500, "internal_error", "the query failed");
		break;
	}
out:
	list_job_free(j);
	api_finish(call);
}

/* Answer a compile error: 400 with the code, and the parameter and position
 * next to the message when there is a position. */
static void list_query_error(api_call *call, const query_error *qerr)
{
	const char *param = qerr->param ? qerr->param : "filter";
	const char *code = qerr->code ? qerr->code : "invalid_filter";
	if (qerr->pos > 0) {
		api_error(call, 400, code, "%s at position %d: %s", param, qerr->pos, qerr->message);
		list_error_fields(call, "\"parameter\":\"%s\",\"position\":%d", param, qerr->pos);
	} else {
		api_error(call, 400, code, "%s: %s", param, qerr->message);
	}
}

void records_list(api_call *call)
{
	api_read_begin(call);
	if (!records_begin(call, false))
		return;
	if (http_request_server_overloaded(call->req)) {
		/* a page can be megabytes that the server would refuse to queue
		 * (http_respond): do not build it (docs/SECURITY.md) */
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "overloaded", "the server holds too much data for clients now; retry later");
		http_request_close_after(call->req); /* as the server's own 503 overloaded */
		http_request_note_overloaded(call->req);
		api_finish(call);
		return;
	}
	region *rg = call->rg;
	bool bad_f = false, bad_s = false, bad_c = false, bad_l = false;
	char *filter = api_query_param(call, "filter", &bad_f);
	char *sort = api_query_param(call, "sort", &bad_s);
	char *cursor = api_query_param(call, "cursor", &bad_c);
	char *limit_text = api_query_param(call, "limit", &bad_l);
	long long limit = LIST_DEFAULT_LIMIT;
	list_job *j = NULL;
	query_error qerr;

	if (bad_f || bad_s || bad_c || bad_l) {
		api_error(call, 400, "invalid_query", "a query parameter is not valid percent-encoding");
		goto answer;
	}
	if (limit_text && util_parse_int(limit_text, 1, LIST_MAX_LIMIT, &limit) != 0) {
		api_error(call, 400, "invalid_limit", "limit must be an integer from 1 to %d",
			  LIST_MAX_LIMIT);
		goto answer;
	}
	j = calloc(1, sizeof *j);
	if (!j) {
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "overloaded", "out of memory");
		goto answer;
	}
	memset(&qerr, 0, sizeof qerr);
	if (list_query_compile(call->collection, filter, sort, cursor, &j->q, &qerr) != 0) {
		list_query_error(call, &qerr);
		goto answer;
	}
	j->call = call;
	snprintf(j->user_id, sizeof j->user_id, "%s", call->user_id);
	snprintf(j->collection, sizeof j->collection, "%s", call->collection);
	j->limit = limit;
	j->page_max = rg->cfg->limits.page_max_bytes;
	j->timeout_ms = rg->cfg->limits.query_timeout_ms;
	j->max_rows = rg->cfg->limits.query_max_scan_rows;
	j->queued_us = util_mono_us();
	/* the loop's connection must not keep a snapshot while the call waits */
	api_read_end(call);
	if (readers_submit(rg->readers, list_run, list_done, j) != 0) {
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "overloaded", "too many list queries waiting; retry shortly");
		metrics_list_refused(rg->metrics, "overloaded");
		goto answer;
	}
	j = NULL; /* the pool's now, until list_done */
	free(filter);
	free(sort);
	free(cursor);
	free(limit_text);
	return;
answer:
	if (j)
		list_job_free(j);
	free(filter);
	free(sort);
	free(cursor);
	free(limit_text);
	api_finish(call);
}
