/*
 * test_query.c - unit tests for src/region/query.c: every filter compiles to
 * SQL that runs against a real in-memory SQLite records table, and the tests
 * check which rows come back and in what order (not the SQL text); errors are
 * checked with their exact parameter, position and message; cursors page
 * through 100 records under several sorts, also while records are inserted.
 */
#include "region/query.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "test.h"

#define CREATED "2026-01-01T00:00:00.000Z"
#define OTHER_LIST \
	"cursor belongs to another list (another collection, filter or sort); start again without it"

static sqlite3 *db_open(void)
{
	sqlite3 *db = NULL;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
		fprintf(stderr, "sqlite3_open: %s\n", sqlite3_errmsg(db));
		exit(2);
	}
	const char *schema = "CREATE TABLE records (id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
	                     "collection TEXT NOT NULL, version INTEGER NOT NULL, "
	                     "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
	                     "data TEXT NOT NULL)";
	if (sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "schema: %s\n", sqlite3_errmsg(db));
		exit(2);
	}
	return db;
}

/* Insert a record of owner "u" (updated_at NULL: same as created_at). */
static void db_insert(sqlite3 *db, const char *id, const char *created_at, const char *updated_at,
                      const char *data)
{
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db,
	                   "INSERT INTO records VALUES (?, 'u', 'c', 1, ?, ?, json(?))", -1, &st,
	                   NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, created_at, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, updated_at ? updated_at : created_at, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, data, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		fprintf(stderr, "insert %s: %s\n", id, sqlite3_errmsg(db));
		exit(2);
	}
	sqlite3_finalize(st);
}

/* Append word to the space-separated list in out (of size n), truncated
 * to fit. */
static void append_word(char *out, size_t n, const char *word)
{
	size_t used = strlen(out), len = strlen(word);
	if (used && used + 1 < n)
		out[used++] = ' ';
	if (len > n - 1 - used)
		len = n - 1 - used;
	memcpy(out + used, word, len);
	out[used + len] = '\0';
}

/*
 * Run one page: the compiled filter/sort/cursor over the records of owner
 * "u", at most limit rows (-1: all), the way the list handler does it. The
 * ids go space-separated into out; *next (if next) gets the cursor of the
 * last row (NULL when there is no row). Returns the number of rows, or the
 * compile error (err filled), or ERR_DB after printing the SQLite error.
 */
static int run_page(sqlite3 *db, const char *filter, const char *sort, const char *cursor,
                    int limit, char *out, size_t n, char **next, query_error *err)
{
	list_query *q = NULL;
	sqlite3_stmt *st = NULL;
	char sql[80000];
	int rows = 0, rc;

	out[0] = '\0';
	if (next)
		*next = NULL;
	rc = list_query_compile("c", filter, sort, cursor, &q, err);
	if (rc)
		return rc;
	const char *keys = list_query_keys(q);
	snprintf(sql, sizeof sql,
	         "SELECT id, owner, collection, version, created_at, updated_at, data%s%s "
	         "FROM records WHERE owner = ? AND (%s) %s LIMIT ?",
	         keys[0] ? ", " : "", keys, list_query_where(q), list_query_order(q));
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "prepare: %s\n%s\n", sqlite3_errmsg(db), sql);
		rc = ERR_DB;
		goto done;
	}
	sqlite3_bind_text(st, 1, "u", -1, SQLITE_STATIC);
	int index = list_query_bind(q, st, 2);
	if (index < 0 || index != sqlite3_bind_parameter_count(st)) {
		fprintf(stderr, "bind: %d of %d\n", index, sqlite3_bind_parameter_count(st));
		rc = ERR_DB;
		goto done;
	}
	sqlite3_bind_int(st, index, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		append_word(out, n, (const char *)sqlite3_column_text(st, 0));
		rows++;
		if (next) {
			free(*next);
			*next = NULL;
			rc = list_query_cursor(q, st, 7, 0, next);
			if (rc) {
				fprintf(stderr, "list_query_cursor: %d\n", rc);
				goto done;
			}
		}
	}
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "step: %s\n", sqlite3_errmsg(db));
		rc = ERR_DB;
		goto done;
	}
	rc = rows;
done:
	if (rc < 0 && next) {
		free(*next);
		*next = NULL;
	}
	sqlite3_finalize(st);
	list_query_free(&q);
	return rc;
}

/* The ids a filter selects, sorted by id, or "ERROR <pos>: <message>". */
static const char *sel(sqlite3 *db, const char *filter)
{
	static char out[8192];
	query_error err;
	int rc = run_page(db, filter, NULL, NULL, -1, out, sizeof out, NULL, &err);
	if (rc < 0 && rc != ERR_DB)
		snprintf(out, sizeof out, "ERROR %d: %s", err.pos, err.message);
	else if (rc < 0)
		snprintf(out, sizeof out, "SQL ERROR");
	return out;
}

/* The ids in the order of a sort. */
static const char *sorted(sqlite3 *db, const char *filter, const char *sort)
{
	static char out[8192];
	query_error err;
	int rc = run_page(db, filter, sort, NULL, -1, out, sizeof out, NULL, &err);
	if (rc < 0 && rc != ERR_DB)
		snprintf(out, sizeof out, "ERROR %d: %s", err.pos, err.message);
	else if (rc < 0)
		snprintf(out, sizeof out, "SQL ERROR");
	return out;
}

/* Whether compiling fails exactly as expected; prints the difference. */
static bool fails(const char *filter, const char *sort, const char *cursor, int code,
                  const char *param, int pos, const char *message)
{
	list_query *q = (list_query *)1; /* must be reset to NULL */
	query_error err;
	int rc = list_query_compile("c", filter, sort, cursor, &q, &err);
	bool ok = rc == code && q == NULL && err.param && strcmp(err.param, param) == 0 &&
	          err.pos == pos && strcmp(err.message, message) == 0;
	if (!ok) {
		fprintf(stderr, "  filter=[%s] sort=[%s]\n    got rc %d %s pos %d \"%s\"\n"
		                "    want rc %d %s pos %d \"%s\"\n",
		        filter ? filter : "(null)", sort ? sort : "(null)", rc,
		        rc ? err.param : "-", rc ? err.pos : 0, rc ? err.message : "", code, param, pos,
		        message);
		if (rc == 0)
			list_query_free(&q);
	}
	return ok;
}

static bool filter_fails(const char *filter, int pos, const char *message)
{
	return fails(filter, NULL, NULL, ERR_PARSE, "filter", pos, message);
}

static bool sort_fails(const char *sort, int pos, const char *message)
{
	return fails(NULL, sort, NULL, ERR_PARSE, "sort", pos, message);
}

/* ---- base64url, to look inside cursors and to craft bad ones ---------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64_encode(const char *in, char *out)
{
	size_t len = strlen(in), o = 0;
	const unsigned char *s = (const unsigned char *)in;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		size_t n = len - i >= 3 ? 3 : len - i;
		if (n > 1)
			v |= (uint32_t)s[i + 1] << 8;
		if (n > 2)
			v |= s[i + 2];
		for (size_t k = 0; k <= n; k++)
			out[o++] = b64[(v >> (18 - 6 * k)) & 63];
	}
	out[o] = '\0';
}

static void b64_decode(const char *in, char *out)
{
	size_t len = strlen(in), o = 0;
	uint32_t v = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		v = (v << 6) | (uint32_t)(strchr(b64, in[i]) - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((v >> bits) & 0xFF);
		}
	}
	out[o] = '\0';
}

/* ---- empty query, SQL fragments --------------------------------------- */

static void test_empty_query(void)
{
	const char *blank[] = {NULL, ""};
	for (int i = 0; i < 2; i++) {
		list_query *q = NULL;
		query_error err;
		CHECK_EQ_INT(list_query_compile("c", blank[i], blank[i], blank[i], &q, &err), 0);
		CHECK_EQ_STR(list_query_where(q), "1");
		CHECK_EQ_STR(list_query_order(q), "ORDER BY id ASC");
		CHECK_EQ_STR(list_query_keys(q), "");
		CHECK_EQ_INT(list_query_key_count(q), 0);
		list_query_free(&q);
		CHECK(q == NULL);
	}
	list_query_free(NULL); /* no-op */
	list_query *q = NULL;
	list_query_free(&q);

	/* a blank filter or sort is none; err may be NULL */
	CHECK_EQ_INT(list_query_compile("c", " ", " \t", NULL, &q, NULL), 0);
	CHECK_EQ_STR(list_query_where(q), "1");
	CHECK_EQ_STR(list_query_order(q), "ORDER BY id ASC");
	list_query_free(&q);
	CHECK_EQ_INT(list_query_compile("c", " \t\n", "-priority, created_at", NULL, &q, NULL), 0);
	CHECK_EQ_STR(list_query_where(q), "1");
	CHECK_EQ_STR(list_query_order(q),
	             "ORDER BY json_extract(data, '$.priority') DESC, created_at ASC, id ASC");
	CHECK_EQ_STR(list_query_keys(q), "json_extract(data, '$.priority'), created_at");
	CHECK_EQ_INT(list_query_key_count(q), 2);
	list_query_free(&q);
	CHECK_EQ_INT(list_query_compile("c", "a = 1 &&", NULL, NULL, &q, NULL), ERR_PARSE);
	CHECK(q == NULL);
}

/* ---- operators on each type ------------------------------------------- */

static sqlite3 *typed_db(void)
{
	sqlite3 *db = db_open();
	db_insert(db, "r01", CREATED, NULL, "{\"s\":\"apple\",\"n\":3,\"b\":true}");
	db_insert(db, "r02", CREATED, NULL, "{\"s\":\"banana\",\"n\":3.5,\"b\":false}");
	db_insert(db, "r03", CREATED, NULL, "{\"s\":\"cherry\",\"n\":-2,\"b\":null}");
	db_insert(db, "r04", CREATED, NULL, "{\"s\":\"3\",\"n\":\"3\"}");
	db_insert(db, "r05", CREATED, NULL, "{\"s\":\"Apple pie\",\"n\":10}");
	db_insert(db, "r06", CREATED, NULL, "{}");
	db_insert(db, "r07", CREATED, NULL, "{\"s\":null,\"n\":null}");
	db_insert(db, "r08", CREATED, NULL, "{\"s\":[\"apple\"],\"n\":{\"x\":3},\"b\":1}");
	db_insert(db, "r09", CREATED, NULL, "{\"a\":{\"b\":{\"c\":\"deep\"}},\"n\":3.0}");
	return db;
}

static void test_string_operators(void)
{
	sqlite3 *db = typed_db();
	CHECK_EQ_STR(sel(db, "s = 'apple'"), "r01");
	CHECK_EQ_STR(sel(db, "s != 'apple'"), "r02 r03 r04 r05 r06 r07 r08 r09");
	CHECK_EQ_STR(sel(db, "s < 'banana'"), "r01 r04 r05");
	CHECK_EQ_STR(sel(db, "s <= 'banana'"), "r01 r02 r04 r05");
	CHECK_EQ_STR(sel(db, "s > 'banana'"), "r03");
	CHECK_EQ_STR(sel(db, "s >= 'banana'"), "r02 r03");
	CHECK_EQ_STR(sel(db, "s ~ 'an'"), "r02");
	CHECK_EQ_STR(sel(db, "s ~ 'pp'"), "r01 r05");
	CHECK_EQ_STR(sel(db, "s ~ 'App'"), "r05"); /* case-sensitive */
	CHECK_EQ_STR(sel(db, "s ~ ''"), "r01 r02 r03 r04 r05"); /* every text */
	CHECK_EQ_STR(sel(db, "s~'pie'"), "r05");                  /* no blanks needed */
	sqlite3_close(db);
}

static void test_number_operators(void)
{
	sqlite3 *db = typed_db();
	CHECK_EQ_STR(sel(db, "n = 3"), "r01 r09"); /* 3 and 3.0 */
	CHECK_EQ_STR(sel(db, "n != 3"), "r02 r03 r04 r05 r06 r07 r08");
	CHECK_EQ_STR(sel(db, "n < 3"), "r03");
	CHECK_EQ_STR(sel(db, "n <= 3"), "r01 r03 r09");
	CHECK_EQ_STR(sel(db, "n > 3"), "r02 r05");
	CHECK_EQ_STR(sel(db, "n >= 3.5"), "r02 r05");
	CHECK_EQ_STR(sel(db, "n = 3.5"), "r02");
	CHECK_EQ_STR(sel(db, "n = -2"), "r03");
	CHECK_EQ_STR(sel(db, "n = 1e1"), "r05");
	CHECK_EQ_STR(sel(db, "n = 1E+1"), "r05");
	CHECK_EQ_STR(sel(db, "n > -2.5e0"), "r01 r02 r03 r05 r09");
	CHECK_EQ_STR(sel(db, "n < 99999999999999999999"), "r01 r02 r03 r05 r09"); /* a double */
	CHECK_EQ_STR(sel(db, "n > -9223372036854775808"), "r01 r02 r03 r05 r09");
	CHECK_EQ_STR(sel(db, "n = -0"), "");
	sqlite3_close(db);
}

static void test_bool_and_null(void)
{
	sqlite3 *db = typed_db();
	CHECK_EQ_STR(sel(db, "b = true"), "r01");
	CHECK_EQ_STR(sel(db, "b != true"), "r02 r03 r04 r05 r06 r07 r08 r09");
	CHECK_EQ_STR(sel(db, "b = false"), "r02");
	CHECK_EQ_STR(sel(db, "b != false"), "r01 r03 r04 r05 r06 r07 r08 r09");
	/* null matches JSON null and a missing field */
	CHECK_EQ_STR(sel(db, "b = null"), "r03 r04 r05 r06 r07 r09");
	CHECK_EQ_STR(sel(db, "b != null"), "r01 r02 r08");
	CHECK_EQ_STR(sel(db, "s = null"), "r06 r07 r09");
	CHECK_EQ_STR(sel(db, "s != null"), "r01 r02 r03 r04 r05 r08");
	sqlite3_close(db);
}

/* A string never matches a number and vice versa, true is not 1, and an
 * object or array is neither a string nor a number. */
static void test_type_strictness(void)
{
	sqlite3 *db = typed_db();
	CHECK_EQ_STR(sel(db, "n = '3'"), "r04");
	CHECK_EQ_STR(sel(db, "n = 3"), "r01 r09");
	CHECK_EQ_STR(sel(db, "s = 3"), "");
	CHECK_EQ_STR(sel(db, "s = '3'"), "r04");
	/* SQLite alone would put every number below any text */
	CHECK_EQ_STR(sel(db, "n < 'z'"), "r04");
	CHECK_EQ_STR(sel(db, "s > 0"), "");
	CHECK_EQ_STR(sel(db, "b = 1"), "r08");
	CHECK_EQ_STR(sel(db, "b = true"), "r01");
	CHECK_EQ_STR(sel(db, "b = 0"), "");
	CHECK_EQ_STR(sel(db, "n ~ '3'"), "r04");
	/* the array ["apple"] and the object {"x":3} match nothing typed */
	CHECK_EQ_STR(sel(db, "s = 'apple' || s = '[\"apple\"]'"), "r01");
	CHECK_EQ_STR(sel(db, "n = '{\"x\":3}'"), "");
	sqlite3_close(db);
}

/* A missing field (or a path through a non-object) is null, and unequal to
 * any string, number or boolean; it never passes an ordering comparison. */
static void test_missing_fields_and_paths(void)
{
	sqlite3 *db = typed_db();
	CHECK_EQ_STR(sel(db, "zz != 3"), "r01 r02 r03 r04 r05 r06 r07 r08 r09");
	CHECK_EQ_STR(sel(db, "zz != 'x'"), "r01 r02 r03 r04 r05 r06 r07 r08 r09");
	CHECK_EQ_STR(sel(db, "zz != true"), "r01 r02 r03 r04 r05 r06 r07 r08 r09");
	CHECK_EQ_STR(sel(db, "zz < 3 || zz >= 3 || zz < 'a' || zz >= 'a' || zz ~ ''"), "");
	CHECK_EQ_STR(sel(db, "zz = null"), "r01 r02 r03 r04 r05 r06 r07 r08 r09");
	CHECK_EQ_STR(sel(db, "a.b.c = 'deep'"), "r09");
	CHECK_EQ_STR(sel(db, "a.b = 'deep'"), "");
	CHECK_EQ_STR(sel(db, "a.b.c.d = null"), "r01 r02 r03 r04 r05 r06 r07 r08 r09");
	CHECK_EQ_STR(sel(db, "n.x = 3"), "r08");
	CHECK_EQ_STR(sel(db, "s.x != 1"), "r01 r02 r03 r04 r05 r06 r07 r08 r09");
	CHECK_EQ_STR(sel(db, "_ = null && A_1.b2 = null"), "r01 r02 r03 r04 r05 r06 r07 r08 r09");
	sqlite3_close(db);
}

static void test_string_literals(void)
{
	sqlite3 *db = db_open();
	db_insert(db, "q1", CREATED, NULL, "{\"q\":\"it's\"}");
	db_insert(db, "q2", CREATED, NULL, "{\"q\":\"back\\\\slash\"}");
	db_insert(db, "q3", CREATED, NULL, "{\"q\":\"h\\u00e9llo w\\u00f6rld\"}");
	db_insert(db, "q4", CREATED, NULL, "{\"q\":\"''\"}");
	CHECK_EQ_STR(sel(db, "q = 'it''s'"), "q1");
	CHECK_EQ_STR(sel(db, "q = 'it\\'s'"), "q1");
	CHECK_EQ_STR(sel(db, "q = 'back\\\\slash'"), "q2");
	CHECK_EQ_STR(sel(db, "q ~ '\\\\'"), "q2");
	CHECK_EQ_STR(sel(db, "q ~ '\xc3\xa9'"), "q3");
	CHECK_EQ_STR(sel(db, "q = 'h\xc3\xa9llo w\xc3\xb6rld'"), "q3");
	CHECK_EQ_STR(sel(db, "q = ''''''"), "q4");
	CHECK_EQ_STR(sel(db, "q ~ ''''"), "q1 q4");
	CHECK_EQ_STR(sel(db, "q = ''"), "");
	CHECK_EQ_STR(sel(db, "q = 'a' || q = 'b) || q = (c'"), ""); /* quotes hide syntax */
	sqlite3_close(db);
}

/* ---- the record columns ----------------------------------------------- */

static void test_columns(void)
{
	sqlite3 *db = db_open();
	db_insert(db, "a1", "2026-01-01T00:00:01.000Z", "2026-03-01T00:00:00.000Z",
	          "{\"id\":\"a2\",\"created_at\":5}");
	db_insert(db, "a2", "2026-01-01T00:00:02.000Z", "2026-02-01T00:00:00.000Z", "{}");
	db_insert(db, "b10", "2026-01-01T00:00:03.000Z", "2026-01-01T00:00:03.000Z",
	          "{\"id\":{\"x\":1}}");
	CHECK_EQ_STR(sel(db, "id = 'a2'"), "a2"); /* the column, not data.id */
	CHECK_EQ_STR(sel(db, "id != 'a2'"), "a1 b10");
	CHECK_EQ_STR(sel(db, "id < 'a2'"), "a1");
	CHECK_EQ_STR(sel(db, "id <= 'a2'"), "a1 a2");
	CHECK_EQ_STR(sel(db, "id > 'a2'"), "b10");
	CHECK_EQ_STR(sel(db, "id >= 'a2'"), "a2 b10");
	CHECK_EQ_STR(sel(db, "id ~ '1'"), "a1 b10");
	CHECK_EQ_STR(sel(db, "id ~ 'A'"), "");
	CHECK_EQ_STR(sel(db, "created_at >= '2026-01-01T00:00:02.000Z'"), "a2 b10");
	CHECK_EQ_STR(sel(db, "created_at < '2026-01-01T00:00:02'"), "a1");
	CHECK_EQ_STR(sel(db, "updated_at > '2026-01-15'"), "a1 a2");
	CHECK_EQ_STR(sel(db, "updated_at ~ '-03-'"), "a1");
	CHECK_EQ_STR(sel(db, "updated_at != '2026-02-01T00:00:00.000Z'"), "a1 b10");
	/* data.NAME reaches a data field named like a record field */
	CHECK_EQ_STR(sel(db, "data.id.x = 1"), "b10");
	CHECK_EQ_STR(sel(db, "data.id = 'a2'"), "a1");
	CHECK_EQ_STR(sel(db, "data.created_at = 5"), "a1");
	sqlite3_close(db);
}

/* ---- && binds tighter than ||, parentheses ------------------------------ */

static void test_precedence(void)
{
	sqlite3 *db = db_open();
	db_insert(db, "p1", CREATED, NULL, "{\"x\":1,\"y\":0,\"z\":0}");
	db_insert(db, "p2", CREATED, NULL, "{\"x\":0,\"y\":1,\"z\":1}");
	db_insert(db, "p3", CREATED, NULL, "{\"x\":0,\"y\":1,\"z\":0}");
	db_insert(db, "p4", CREATED, NULL, "{\"x\":0,\"y\":0,\"z\":1}");
	CHECK_EQ_STR(sel(db, "x = 1 || y = 1 && z = 1"), "p1 p2");
	CHECK_EQ_STR(sel(db, "y = 1 && z = 1 || x = 1"), "p1 p2");
	CHECK_EQ_STR(sel(db, "(x = 1 || y = 1) && z = 1"), "p2");
	CHECK_EQ_STR(sel(db, "x = 1 || (y = 1 && z = 1)"), "p1 p2");
	CHECK_EQ_STR(sel(db, "x != 1 && (y = 1 || z = 1)"), "p2 p3 p4");
	CHECK_EQ_STR(sel(db, "((x = 1))"), "p1");
	CHECK_EQ_STR(sel(db, "( ( y=1 )&&( z=0||x=1 ) )||( x=0&&y=0 )"), "p3 p4");
	CHECK_EQ_STR(sel(db, "x=1||y=1||z=1"), "p1 p2 p3 p4");
	CHECK_EQ_STR(sel(db, "x=0&&y=1&&z=0"), "p3");
	CHECK_EQ_STR(sel(db, "\tx = 1\n||\r\nz = 1 "), "p1 p2 p4");
	sqlite3_close(db);
}

/* ---- errors, with exact positions --------------------------------------- */

static void test_filter_errors(void)
{
	CHECK(filter_fails("a", 2, "unexpected end of filter, expected an operator"));
	CHECK(filter_fails("a =", 4, "unexpected end of filter, expected a value"));
	CHECK(filter_fails("a = ", 5, "unexpected end of filter, expected a value"));
	CHECK(filter_fails("a == 1", 3, "unknown operator '=='"));
	CHECK(filter_fails("a =! 1", 3, "unknown operator '=!'"));
	CHECK(filter_fails("a <> 1", 3, "unknown operator '<>'"));
	CHECK(filter_fails("a = 'x", 5, "unterminated string"));
	CHECK(filter_fails("a = 'x\\", 5, "unterminated string"));
	CHECK(filter_fails("a = 'it''", 5, "unterminated string"));
	CHECK(filter_fails("a = 'x\\n'", 7, "invalid escape '\\n' in string (only \\' and \\\\)"));
	CHECK(filter_fails("a = 'caf\xc3'", 9, "invalid UTF-8 in string"));
	CHECK(filter_fails("(a = 1", 7, "unexpected end of filter, expected ')'"));
	CHECK(filter_fails("((a = 1)", 9, "unexpected end of filter, expected ')'"));
	CHECK(filter_fails("(a = 1 b = 2)", 8, "expected '&&', '||' or ')', found 'b'"));
	CHECK(filter_fails("a = 1 b = 2", 7,
	                   "expected '&&', '||' or the end of the filter, found 'b'"));
	CHECK(filter_fails("a = 'x' 'y'", 9,
	                   "expected '&&', '||' or the end of the filter, found a string"));
	CHECK(filter_fails("a = 1 \xc3\xa9", 7,
	                   "expected '&&', '||' or the end of the filter, found U+00E9"));
	CHECK(filter_fails("a = true.x", 9,
	                   "expected '&&', '||' or the end of the filter, found '.'"));
	CHECK(filter_fails("a = 1)", 6, "unmatched ')'"));
	CHECK(filter_fails("a = 1 & b = 2", 7, "unknown operator '&'"));
	CHECK(filter_fails("a = 1 | b = 2", 7, "unknown operator '|'"));
	CHECK(filter_fails("a < true", 3, "operator < needs a string or a number"));
	CHECK(filter_fails("a <= false", 3, "operator <= needs a string or a number"));
	CHECK(filter_fails("a.b > null", 5, "operator > needs a string or a number"));
	CHECK(filter_fails("a >= null", 3, "operator >= needs a string or a number"));
	CHECK(filter_fails("a ~ 3", 3, "operator ~ needs a string"));
	CHECK(filter_fails("a ~ null", 3, "operator ~ needs a string"));
	CHECK(filter_fails("a ~ true", 3, "operator ~ needs a string"));
	CHECK(filter_fails("id = 3", 6, "id can only be compared with a string"));
	CHECK(filter_fails("created_at > null", 14, "created_at can only be compared with a string"));
	CHECK(filter_fails("x = 1 && updated_at = true", 23,
	                   "updated_at can only be compared with a string"));
	CHECK(filter_fails("id ~ 1.5", 6, "id can only be compared with a string"));
	CHECK(filter_fails("a = foo", 5, "unknown value 'foo' (strings are written in single quotes)"));
	CHECK(filter_fails("a = TRUE", 5,
	                   "unknown value 'TRUE' (strings are written in single quotes)"));
	CHECK(filter_fails("a = \"x\"", 5,
	                   "expected a value after '=', found '\"' "
	                   "(strings are written in single quotes)"));
	CHECK(filter_fails("a = = 1", 5, "expected a value after '=', found '='"));
	CHECK(filter_fails("a != .5", 6, "expected a value after '!=', found '.'"));
	CHECK(filter_fails("a = 01", 5, "invalid number '01'"));
	CHECK(filter_fails("a = 1.", 5, "invalid number '1.'"));
	CHECK(filter_fails("a = -", 5, "invalid number '-'"));
	CHECK(filter_fails("a = 1e", 5, "invalid number '1e'"));
	CHECK(filter_fails("a = 3abc", 5, "invalid number '3abc'"));
	CHECK(filter_fails("a = 0x10", 5, "invalid number '0x10'"));
	CHECK(filter_fails("a = 1-2", 5, "invalid number '1-2'"));
	CHECK(filter_fails("a. = 1", 3, "expected a name after '.'"));
	CHECK(filter_fails("a.b. = 1", 5, "expected a name after '.'"));
	CHECK(filter_fails("a.1 = 1", 3, "expected a name after '.'"));
	CHECK(filter_fails("a .b = 1", 3, "expected an operator after the field name, found '.'"));
	CHECK(filter_fails("a 1", 3, "expected an operator after the field name, found '1'"));
	CHECK(filter_fails("a && b = 1", 3,
	                   "expected an operator after the field name, found '&&'"));
	CHECK(filter_fails("= 1", 1, "expected a field name or '(', found '='"));
	CHECK(filter_fails("()", 2, "expected a field name or '(', found ')'"));
	CHECK(filter_fails("1 = a", 1, "expected a field name or '(', found '1'"));
	CHECK(filter_fails("'a' = a", 1, "expected a field name or '(', found a string"));
	CHECK(filter_fails("a = 1 || || b = 2", 10, "expected a field name or '(', found '||'"));
	CHECK(filter_fails("x = 1 && (y = 2 || )", 20, "expected a field name or '(', found ')'"));
	CHECK(filter_fails("a = 1 &&", 9, "unexpected end of filter, expected a field name or '('"));
	CHECK(filter_fails("a=1&&b", 7, "unexpected end of filter, expected an operator"));
	CHECK(filter_fails("a = 1 && \x01", 10,
	                   "expected a field name or '(', found control character 0x01"));
	CHECK(filter_fails("a = 1 && \xff", 10, "expected a field name or '(', found byte 0xFF"));
	CHECK(filter_fails("a = 1 b.c = 2", 7,
	                   "expected '&&', '||' or the end of the filter, found 'b.c'"));
	CHECK(filter_fails("a = 1 abcdefghijklmnopqrstuvwxyz0123", 7,
	                   "expected '&&', '||' or the end of the filter, "
	                   "found 'abcdefghijklmnopqrstuvwx...'"));
	CHECK(filter_fails("a = 1 \xc3", 7,
	                   "expected '&&', '||' or the end of the filter, found byte 0xC3"));
	CHECK(filter_fails("a = 123456789012345678901234567890x", 5,
	                   "invalid number '123456789012345678901234...'"));
	CHECK(filter_fails("a = 'x\\\t'", 7, "invalid escape in string (only \\' and \\\\)"));
	/* positions count characters, not bytes: 'é' is one character */
	CHECK(filter_fails("a = '\xc3\xa9' && b", 13, "unexpected end of filter, expected an operator"));
	CHECK(filter_fails("a = '\xe2\x82\xac\xf0\x9f\x98\x80' b", 10,
	                   "expected '&&', '||' or the end of the filter, found 'b'"));
}

static void test_sort_errors(void)
{
	CHECK(sort_fails("a,,b", 3, "empty sort key"));
	CHECK(sort_fails("a, ,b", 4, "empty sort key"));
	CHECK(sort_fails("a,", 3, "empty sort key"));
	CHECK(sort_fails(",a", 1, "empty sort key"));
	CHECK(sort_fails("-", 2, "expected a field name after '-'"));
	CHECK(sort_fails("a,+", 4, "expected a field name after '+'"));
	CHECK(sort_fails("--a", 2, "expected a field name, found '-a'"));
	CHECK(sort_fails("1a", 1, "expected a field name, found '1a'"));
	CHECK(sort_fails("a,- b", 4, "expected a field name, found ' '"));
	CHECK(sort_fails("a b", 2, "unexpected ' ' in sort key"));
	CHECK(sort_fails("a;b", 2, "unexpected ';' in sort key"));
	CHECK(sort_fails("a.b,c.", 7, "expected a name after '.'"));
	CHECK(sort_fails("a,-a", 3, "sort key 'a' appears twice"));
	CHECK(sort_fails("x, id, -id", 8, "sort key 'id' appears twice"));
	CHECK(sort_fails("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz,"
	                 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
	                 80,
	                 "sort key 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl...' "
	                 "appears twice"));
	CHECK(sort_fails("a,b,\xc3\xa9", 5, "expected a field name, found U+00E9"));
}

static void test_limits(void)
{
	static char s[8192];
	char *p;
	list_query *q = NULL;

	/* filter length: 4096 bytes pass, 4097 do not */
	memset(s, 0, sizeof s);
	strcpy(s, "a = '");
	memset(s + 5, 'x', 4090);
	s[4095] = '\'';
	CHECK_EQ_INT(list_query_compile("c", s, NULL, NULL, &q, NULL), 0);
	list_query_free(&q);
	s[4095] = 'x';
	s[4096] = '\'';
	CHECK(fails(s, NULL, NULL, ERR_LIMIT, "filter", 4097, "filter is longer than 4096 bytes"));

	/* 64 comparisons pass, the 65th is reported where it starts */
	p = s;
	for (int i = 0; i < 64; i++)
		p += sprintf(p, "%sa = %d", i ? " || " : "", i);
	CHECK_EQ_INT(list_query_compile("c", s, NULL, NULL, &q, NULL), 0);
	list_query_free(&q);
	int pos = (int)strlen(s) + 5;
	strcat(s, " || b = 1");
	CHECK(fails(s, NULL, NULL, ERR_LIMIT, "filter", pos, "more than 64 comparisons"));

	/* 32 levels of parentheses pass, the 33rd '(' does not */
	memset(s, 0, sizeof s);
	memset(s, '(', 32);
	strcat(s, "a = 1");
	memset(s + strlen(s), ')', 32);
	CHECK_EQ_INT(list_query_compile("c", s, NULL, NULL, &q, NULL), 0);
	list_query_free(&q);
	memset(s, 0, sizeof s);
	strcpy(s, "b = 2 && ");
	memset(s + 9, '(', 33);
	strcat(s, "a = 1");
	memset(s + strlen(s), ')', 33);
	CHECK(fails(s, NULL, NULL, ERR_LIMIT, "filter", 42, "parentheses nested deeper than 32"));

	/* field paths: 256 characters and 16 names pass, longer or deeper do not */
	memset(s, 0, sizeof s);
	memset(s, 'f', 256);
	CHECK_EQ_INT(list_query_compile("c", NULL, s, NULL, &q, NULL), 0);
	list_query_free(&q);
	strcat(s, " = 1");
	CHECK_EQ_INT(list_query_compile("c", s, NULL, NULL, &q, NULL), 0);
	list_query_free(&q);
	memset(s, 0, sizeof s);
	strcpy(s, "x = 1 || ");
	memset(s + 9, 'f', 257);
	CHECK(fails(NULL, s + 9, NULL, ERR_LIMIT, "sort", 1,
	            "field path is longer than 256 characters"));
	strcat(s, " = 1");
	CHECK(fails(s, NULL, NULL, ERR_LIMIT, "filter", 10,
	            "field path is longer than 256 characters"));
	CHECK_EQ_INT(list_query_compile("c", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p = 1",
	                                "-a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p", NULL, &q, NULL),
	             0);
	list_query_free(&q);
	CHECK(fails("x = 1 && a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q = 1", NULL, NULL, ERR_LIMIT, "filter",
	            10, "field path has more than 16 names"));
	CHECK(fails(NULL, "x, -a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q", NULL, ERR_LIMIT, "sort", 5,
	            "field path has more than 16 names"));

	/* sort: 8 keys pass (id among them or not), a 9th does not */
	CHECK_EQ_INT(list_query_compile("c", NULL, "a,b,c,d,e,f,g,h", NULL, &q, NULL), 0);
	CHECK_EQ_INT(list_query_key_count(q), 8);
	list_query_free(&q);
	CHECK(fails(NULL, "a,b,c,d,e,f,g,h,-i", NULL, ERR_LIMIT, "sort", 17, "more than 8 sort keys"));
	memset(s, 0, sizeof s);
	memset(s, ' ', 4097);
	s[0] = 'a';
	CHECK(fails(NULL, s, NULL, ERR_LIMIT, "sort", 4097, "sort is longer than 4096 bytes"));

	/* cursor length */
	memset(s, 0, sizeof s);
	memset(s, 'A', 4100);
	CHECK(fails(NULL, NULL, s, ERR_LIMIT, "cursor", 0, "cursor is longer than 4096 characters"));
}

/* ---- sort orders -------------------------------------------------------- */

static sqlite3 *sort_db(void)
{
	sqlite3 *db = db_open();
	db_insert(db, "s1", "2026-01-01T00:00:05.000Z", NULL, "{\"priority\":2,\"name\":\"b\"}");
	db_insert(db, "s2", "2026-01-01T00:00:01.000Z", NULL, "{\"priority\":1,\"name\":\"a\"}");
	db_insert(db, "s3", "2026-01-01T00:00:03.000Z", NULL, "{}");
	db_insert(db, "s4", "2026-01-01T00:00:02.000Z", NULL, "{\"priority\":2,\"name\":\"a\"}");
	db_insert(db, "s5", "2026-01-01T00:00:04.000Z", NULL, "{\"priority\":null,\"name\":\"c\"}");
	db_insert(db, "s6", "2026-01-01T00:00:06.000Z", NULL, "{\"priority\":1.5}");
	db_insert(db, "s7", "2026-01-01T00:00:08.000Z", NULL, "{\"priority\":\"high\"}");
	db_insert(db, "s8", "2026-01-01T00:00:07.000Z", NULL, "{\"priority\":true}");
	return db;
}

/* NULL (missing or null) first ascending, then numbers (true is 1), then
 * text; ties broken by id ascending unless id is sorted explicitly. */
static void test_sort_orders(void)
{
	sqlite3 *db = sort_db();
	CHECK_EQ_STR(sorted(db, NULL, NULL), "s1 s2 s3 s4 s5 s6 s7 s8");
	CHECK_EQ_STR(sorted(db, NULL, "-id"), "s8 s7 s6 s5 s4 s3 s2 s1");
	CHECK_EQ_STR(sorted(db, NULL, "id,priority"), "s1 s2 s3 s4 s5 s6 s7 s8");
	CHECK_EQ_STR(sorted(db, NULL, "priority"), "s3 s5 s2 s8 s6 s1 s4 s7");
	CHECK_EQ_STR(sorted(db, NULL, "+priority"), "s3 s5 s2 s8 s6 s1 s4 s7");
	CHECK_EQ_STR(sorted(db, NULL, "-priority"), "s7 s1 s4 s6 s2 s8 s3 s5");
	CHECK_EQ_STR(sorted(db, NULL, "-priority,name"), "s7 s4 s1 s6 s8 s2 s3 s5");
	CHECK_EQ_STR(sorted(db, NULL, "-priority,-name"), "s7 s1 s4 s6 s2 s8 s5 s3");
	CHECK_EQ_STR(sorted(db, NULL, "priority,-id"), "s5 s3 s8 s2 s6 s4 s1 s7");
	CHECK_EQ_STR(sorted(db, NULL, "name"), "s3 s6 s7 s8 s2 s4 s1 s5");
	CHECK_EQ_STR(sorted(db, NULL, "name,-priority"), "s7 s6 s8 s3 s4 s2 s1 s5");
	CHECK_EQ_STR(sorted(db, NULL, "created_at"), "s2 s4 s3 s5 s1 s6 s8 s7");
	CHECK_EQ_STR(sorted(db, NULL, " -created_at "), "s7 s8 s6 s1 s5 s3 s4 s2");
	CHECK_EQ_STR(sorted(db, "priority != null", "-priority"), "s7 s1 s4 s6 s2 s8");
	sqlite3_close(db);
}

/* ---- cursor paging ------------------------------------------------------ */

/* Page through filter/sort with limit rows a page; the ids of all pages go
 * space-separated into out. Returns the number of pages, or -1 (printed) on
 * an error or when paging does not end. */
static int page_all(sqlite3 *db, const char *filter, const char *sort, int limit, char *out,
                    size_t n)
{
	static char page[8192];
	char *cursor = NULL, *next = NULL;
	query_error err;
	int pages = 0;
	out[0] = '\0';
	for (;;) {
		int rows = run_page(db, filter, sort, cursor, limit, page, sizeof page, &next, &err);
		free(cursor);
		cursor = next;
		if (rows < 0) {
			fprintf(stderr, "page %d of sort [%s]: %d %s\n", pages, sort, rows,
			        rows == ERR_DB ? "" : err.message);
			free(cursor);
			return -1;
		}
		if (rows == 0)
			break;
		if (++pages > 200) { /* a cursor that does not move on */
			fprintf(stderr, "sort [%s]: more than 200 pages\n", sort);
			free(cursor);
			return -1;
		}
		append_word(out, n, page);
		if (rows < limit)
			break;
	}
	free(cursor);
	return pages;
}

/* 100 records: priority missing, null, duplicate integers, reals, text and
 * booleans; group with many ties; created_at in pairs. */
static sqlite3 *paging_db(void)
{
	sqlite3 *db = db_open();
	char id[24], created[48], data[160];
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "r%03d", (i * 37) % 100); /* not in insertion order */
		snprintf(created, sizeof created, "2026-01-01T00:%02d:00.000Z", i / 2);
		int r = (i * 13) % 17;
		if (r == 0)
			snprintf(data, sizeof data, "{\"group\":\"g%d\"}", i % 3);
		else if (r == 1)
			snprintf(data, sizeof data, "{\"priority\":null,\"group\":\"g%d\"}", i % 3);
		else if (r == 2)
			snprintf(data, sizeof data, "{\"priority\":2.5,\"group\":null}");
		else if (r == 3)
			snprintf(data, sizeof data, "{\"priority\":\"p%d\",\"group\":\"g%d\"}", i % 4, i % 3);
		else if (r == 4)
			snprintf(data, sizeof data, "{\"priority\":%s}", i % 2 ? "true" : "false");
		else
			snprintf(data, sizeof data, "{\"priority\":%d,\"group\":\"g%d\"}", r % 5, i % 3);
		db_insert(db, id, created, NULL, data);
	}
	return db;
}

static size_t count_words(const char *s)
{
	size_t n = 0;
	for (const char *p = s; *p; p++)
		if (*p != ' ' && (p == s || p[-1] == ' '))
			n++;
	return n;
}

/* Every record exactly once, in the order of a single query, for limits 7
 * (and 1 and 100) and many sorts. */
static void test_cursor_paging(void)
{
	static const char *sorts[] = {
		NULL,           "-id",           "priority",         "-priority",
		"-priority,created_at", "group,-priority", "created_at", "-created_at,priority",
		"priority,id",  "-priority,-id", "-group,-created_at,priority", "group,priority,created_at",
		"missing",      "-missing",
	};
	static char all[8192], paged[8192];
	sqlite3 *db = paging_db();
	for (size_t i = 0; i < sizeof sorts / sizeof sorts[0]; i++) {
		CHECK_EQ_INT(run_page(db, NULL, sorts[i], NULL, -1, all, sizeof all, NULL, NULL), 100);
		CHECK_EQ_INT(page_all(db, NULL, sorts[i], 7, paged, sizeof paged), 15);
		CHECK_EQ_STR(paged, all);
		CHECK_EQ_INT(count_words(paged), 100);
		CHECK_EQ_INT(page_all(db, NULL, sorts[i], 1, paged, sizeof paged), 100);
		CHECK_EQ_STR(paged, all);
		CHECK_EQ_INT(page_all(db, NULL, sorts[i], 100, paged, sizeof paged), 1);
		CHECK_EQ_STR(paged, all);
	}
	/* with a filter too */
	int rows = run_page(db, "priority != null && group != 'g1'", "-priority,group", NULL, -1, all,
	                    sizeof all, NULL, NULL);
	CHECK(rows > 20 && rows < 90);
	CHECK(page_all(db, "priority != null && group != 'g1'", "-priority,group", 7, paged,
	               sizeof paged) == (rows + 6) / 7);
	CHECK_EQ_STR(paged, all);
	/* no record seen twice in the whole set */
	CHECK_EQ_INT(page_all(db, NULL, "group", 7, paged, sizeof paged), 15);
	bool seen[100] = {false};
	int words = 0;
	for (char *w = strtok(paged, " "); w; w = strtok(NULL, " "), words++) {
		int k = atoi(w + 1);
		CHECK(w[0] == 'r' && k >= 0 && k < 100 && !seen[k]);
		if (k >= 0 && k < 100)
			seen[k] = true;
	}
	CHECK_EQ_INT(words, 100);
	sqlite3_close(db);
}

/* Small deterministic generator for the insert test. */
static uint32_t lcg(uint32_t *state)
{
	*state = *state * 1103515245u + 12345u;
	return (*state >> 16) & 0x7fff;
}

/* Records inserted between pages: each record that existed at the start is
 * seen exactly once; the rows seen are in sort order; a new record is seen
 * exactly when it sorts after the last row seen before it was inserted. */
static void paging_with_inserts(const char *sort)
{
	enum { ORIGINAL = 100, MAX_ROWS = 200 };
	static char full[MAX_ROWS * 6], page[256];
	char seen[MAX_ROWS][24], inserted[MAX_ROWS][24], after_row[MAX_ROWS][24];
	size_t nseen = 0, ninserted = 0;
	char *cursor = NULL, *next = NULL;
	uint32_t rng = 42;
	query_error err;
	sqlite3 *db = paging_db();

	for (int pages = 0; pages < 40; pages++) {
		int rows = run_page(db, NULL, sort, cursor, 7, page, sizeof page, &next, &err);
		free(cursor);
		cursor = next;
		CHECK(rows >= 0);
		if (rows <= 0)
			break;
		for (char *w = strtok(page, " "); w && nseen < MAX_ROWS; w = strtok(NULL, " "))
			snprintf(seen[nseen++], sizeof seen[0], "%s", w);
		CHECK(nseen < MAX_ROWS); /* else rows repeat */
		if (nseen >= MAX_ROWS)
			break;
		if (rows < 7)
			break;
		for (int k = 0; k < 3 && ninserted < MAX_ROWS - ORIGINAL; k++) {
			char data[160], created[48];
			int r = (int)(lcg(&rng) % 8);
			snprintf(inserted[ninserted], sizeof inserted[0], "n%03zu", ninserted);
			snprintf(created, sizeof created, "2026-01-01T00:%02d:30.000Z",
			         (int)(lcg(&rng) % 50));
			if (r == 0)
				snprintf(data, sizeof data, "{\"group\":\"g1\"}");
			else if (r == 1)
				snprintf(data, sizeof data, "{\"priority\":\"p%d\"}", (int)(lcg(&rng) % 4));
			else
				snprintf(data, sizeof data, "{\"priority\":%d,\"group\":\"g%d\"}",
				         (int)(lcg(&rng) % 5), (int)(lcg(&rng) % 3));
			db_insert(db, inserted[ninserted], created, NULL, data);
			snprintf(after_row[ninserted], sizeof after_row[0], "%s", seen[nseen - 1]);
			ninserted++;
		}
	}
	free(cursor);

	/* the final order of everything; positions in it are stable */
	CHECK_EQ_INT(run_page(db, NULL, sort, NULL, -1, full, sizeof full, NULL, NULL),
	             ORIGINAL + (int)ninserted);
	char order[MAX_ROWS][24];
	size_t norder = 0;
	for (char *w = strtok(full, " "); w && norder < MAX_ROWS; w = strtok(NULL, " "))
		snprintf(order[norder++], sizeof order[0], "%s", w);
	size_t pos_seen[MAX_ROWS];
	for (size_t i = 0; i < nseen; i++) {
		pos_seen[i] = norder;
		for (size_t k = 0; k < norder; k++)
			if (strcmp(order[k], seen[i]) == 0)
				pos_seen[i] = k;
		CHECK(pos_seen[i] < norder);
		if (i > 0)
			CHECK(pos_seen[i] > pos_seen[i - 1]); /* in order, no repeats */
	}
	int originals = 0;
	for (size_t i = 0; i < nseen; i++)
		originals += seen[i][0] == 'r';
	CHECK_EQ_INT(originals, ORIGINAL);
	for (size_t j = 0; j < ninserted; j++) {
		size_t pos_new = norder, pos_after = norder;
		bool was_seen = false;
		for (size_t k = 0; k < norder; k++) {
			if (strcmp(order[k], inserted[j]) == 0)
				pos_new = k;
			if (strcmp(order[k], after_row[j]) == 0)
				pos_after = k;
		}
		for (size_t i = 0; i < nseen; i++)
			was_seen |= strcmp(seen[i], inserted[j]) == 0;
		CHECK(pos_new < norder && pos_after < norder);
		CHECK(was_seen == (pos_new > pos_after));
	}
	CHECK(ninserted >= 30);
	sqlite3_close(db);
}

static void test_cursor_paging_with_inserts(void)
{
	paging_with_inserts(NULL);
	paging_with_inserts("priority");
	paging_with_inserts("-priority");
	paging_with_inserts("-priority,created_at");
	paging_with_inserts("group,-created_at");
	paging_with_inserts("-group,priority,-id");
}

/* Values JSON cannot carry as such: infinite reals and text that is not
 * valid UTF-8 (SQLite decodes a lone surrogate escape to such bytes). */
static void test_cursor_special_values(void)
{
	static char all[1024], paged[1024];
	sqlite3 *db = db_open();
	db_insert(db, "v1", CREATED, NULL, "{\"v\":1e400}");
	db_insert(db, "v2", CREATED, NULL, "{\"v\":-1e400}");
	db_insert(db, "v3", CREATED, NULL, "{\"v\":\"\\udc00\"}");
	db_insert(db, "v4", CREATED, NULL, "{\"v\":\"\\ud800x\"}");
	db_insert(db, "v5", CREATED, NULL, "{\"v\":\"a\\u0000b\"}");
	db_insert(db, "v6", CREATED, NULL, "{\"v\":\"a\"}");
	db_insert(db, "v7", CREATED, NULL, "{\"v\":1.7976931348623157e308}");
	db_insert(db, "v8", CREATED, NULL, "{\"v\":0.1}");
	db_insert(db, "v9", CREATED, NULL, "{\"v\":1e400}");
	db_insert(db, "w1", CREATED, NULL, "{\"v\":\"\\u00e9\\u0001\\\"\\\\\"}");
	db_insert(db, "w2", CREATED, NULL, "{\"v\":-9223372036854775808}");
	db_insert(db, "w3", CREATED, NULL, "{\"v\":0.30000000000000004}");
	db_insert(db, "w4", CREATED, NULL, "{\"v\":0.3}");
	const char *sorts[] = {"v", "-v", "v,-id"};
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(run_page(db, NULL, sorts[i], NULL, -1, all, sizeof all, NULL, NULL), 13);
		CHECK_EQ_INT(page_all(db, NULL, sorts[i], 1, paged, sizeof paged), 13);
		CHECK_EQ_STR(paged, all);
		CHECK_EQ_INT(page_all(db, NULL, sorts[i], 2, paged, sizeof paged), 7);
		CHECK_EQ_STR(paged, all);
	}
	CHECK_EQ_STR(sel(db, "v = 1e400"), "v1 v9");
	CHECK_EQ_STR(sel(db, "v < -1e308"), "v2"); /* -Inf only */

	/* look inside: the tagged forms are used */
	char page[64], *cursor = NULL, json[512];
	CHECK_EQ_INT(run_page(db, "id = 'v1'", "v", NULL, 1, page, sizeof page, &cursor, NULL), 1);
	b64_decode(cursor, json);
	CHECK(strstr(json, ",{\"inf\":1},\"v1\"]") != NULL);
	free(cursor);
	CHECK_EQ_INT(run_page(db, "id = 'v3'", "-v", NULL, 1, page, sizeof page, &cursor, NULL), 1);
	b64_decode(cursor, json);
	CHECK(strstr(json, ",{\"b64\":\"7bCA\"},\"v3\"]") != NULL);
	free(cursor);
	sqlite3_close(db);
}

static void test_cursor_errors(void)
{
	static char all[8192], page[8192];
	char *cursor = NULL, *after_first = NULL, json[1024], crafted[2048], fp[32];
	query_error err;
	sqlite3 *db = paging_db();

	CHECK_EQ_INT(run_page(db, NULL, "-priority", NULL, 7, page, sizeof page, &cursor, NULL), 7);
	/* the same sort spelled otherwise is the same sort */
	CHECK_EQ_INT(run_page(db, NULL, " -priority , id", cursor, 7, page, sizeof page, NULL, NULL),
	             7);
	/* a different sort is rejected */
	CHECK(fails(NULL, "priority", cursor, ERR_PARSE, "cursor", 0, OTHER_LIST));
	CHECK(fails(NULL, "-priority,-id", cursor, ERR_PARSE, "cursor", 0,
	            OTHER_LIST));
	CHECK(fails(NULL, "-priority,group", cursor, ERR_PARSE, "cursor", 0,
	            OTHER_LIST));
	CHECK(fails(NULL, NULL, cursor, ERR_PARSE, "cursor", 0, OTHER_LIST));
	CHECK(fails(NULL, "-prio", cursor, ERR_PARSE, "cursor", 0, OTHER_LIST));
	/* so is a different filter (issue 8: a cursor from another query) */
	CHECK(fails("group = 'g1'", "-priority", cursor, ERR_PARSE, "cursor", 0, OTHER_LIST));
	CHECK_EQ_INT(run_page(db, "group = 'g1'", "-priority", cursor, 7, page, sizeof page, NULL, &err),
	             ERR_PARSE);

	/* the cursor's content: [fingerprint, priority, id] */
	b64_decode(cursor, json);
	CHECK(json[0] == '[' && json[1] == '"' && json[18] == '"' && json[19] == ',');
	memcpy(fp, json + 2, 16);
	fp[16] = '\0';
	/* crafted cursors: the well-formed one works and starts after its row */
	CHECK_EQ_INT(run_page(db, NULL, "-priority", NULL, -1, all, sizeof all, NULL, NULL), 100);
	snprintf(json, sizeof json, "[\"%s\",\"zzz\",\"r000\"]", fp);
	b64_encode(json, crafted);
	CHECK_EQ_INT(run_page(db, NULL, "-priority", crafted, -1, page, sizeof page, NULL, NULL), 100);
	CHECK_EQ_STR(page, all);
	snprintf(json, sizeof json, "[\"%s\",null,\"r999\"]", fp);
	b64_encode(json, crafted);
	CHECK_EQ_INT(run_page(db, NULL, "-priority", crafted, -1, page, sizeof page, NULL, NULL), 0);
	/* the first row's cursor gives everything else */
	CHECK_EQ_INT(run_page(db, NULL, "-priority", NULL, 1, page, sizeof page, &after_first, NULL), 1);
	CHECK_EQ_INT(run_page(db, NULL, "-priority", after_first, -1, page, sizeof page, NULL, NULL),
	             99);
	CHECK_EQ_STR(page, all + 5);
	free(after_first);

	const char *bad_json[] = {
		"[\"%s\",1]",                    /* too few values */
		"[\"%s\",1,\"r000\",2]",         /* too many */
		"[\"%s\",true,\"r000\"]",        /* a boolean key value */
		"[\"%s\",[1],\"r000\"]",         /* an array */
		"[\"%s\",1,null]",               /* the id must be a string */
		"[\"%s\",1,5]",                  /* the id must be a string */
		"[\"%s\",{\"inf\":2},\"r000\"]", /* bad tag */
		"[\"%s\",{\"inf\":1,\"b64\":\"\"},\"r000\"]",
		"[\"%s\",{\"b64\":\"A\"},\"r000\"]",
		"[\"%s\",{\"b64\":\"A=\"},\"r000\"]",
		"[\"%s\",{\"x\":1},\"r000\"]",
		"[\"%s\",1e999,\"r000\"]",
		"[\"%s\",1,\"r000\"] x",
		"{\"%s\":1}",
		"[\"%s\",1,\"r000\"",
	};
	for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
		snprintf(json, sizeof json, bad_json[i], fp);
		b64_encode(json, crafted);
		CHECK(fails(NULL, "-priority", crafted, ERR_PARSE, "cursor", 0, "invalid cursor"));
	}
	const char *bad_text[] = {"not base64!", "A", "AAAAA", "AB", "ab==", "aGVsbG8", "W10", "WzFd",
	                          "+/+/", "eyJh Ig"};
	for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++)
		CHECK(fails(NULL, "-priority", bad_text[i], ERR_PARSE, "cursor", 0, "invalid cursor"));
	/* the base64url of ["a"] is valid but not for this sort */
	b64_encode("[\"a\"]", crafted);
	CHECK(fails(NULL, "-priority", crafted, ERR_PARSE, "cursor", 0,
	            OTHER_LIST));
	/* non-canonical base64: the last character has stray low bits */
	size_t n = strlen(cursor);
	char last = cursor[n - 1];
	const char *alphabet = b64;
	int value = (int)(strchr(alphabet, last) - alphabet);
	if (n % 4 != 0) {
		cursor[n - 1] = alphabet[value ^ 1];
		CHECK(fails(NULL, "-priority", cursor, ERR_PARSE, "cursor", 0, "invalid cursor"));
	}
	free(cursor);

	/* filter errors come first, then sort, then cursor */
	CHECK(fails("a =", "a,,b", "garbage!", ERR_PARSE, "filter", 4,
	            "unexpected end of filter, expected a value"));
	CHECK(fails("a = 1", "a,,b", "garbage!", ERR_PARSE, "sort", 3, "empty sort key"));
	sqlite3_close(db);
}

/* ---- bind and cursor API edge cases ------------------------------------ */

static void test_bind_and_cursor_api(void)
{
	sqlite3 *db = sort_db();
	list_query *q = NULL;
	sqlite3_stmt *st = NULL;
	char *cursor = (char *)1;
	static char data[5000];

	CHECK_EQ_INT(list_query_compile("c", "name = 'a' || priority > 1.5 || id ~ 's'", "-priority", NULL,
	                                &q, NULL),
	             0);
	/* the statement has fewer parameters than the query */
	sqlite3_prepare_v2(db, "SELECT ?1, ?2", -1, &st, NULL);
	CHECK_EQ_INT(list_query_bind(q, st, 1), ERR_DB);
	sqlite3_finalize(st);
	sqlite3_prepare_v2(db, "SELECT ?, ?, ?, ?, ?", -1, &st, NULL);
	CHECK_EQ_INT(list_query_bind(q, st, 2), 5);
	CHECK_EQ_INT(list_query_bind(q, st, 1), 4);
	sqlite3_finalize(st);

	/* list_query_cursor: a BLOB key, an id that is not text, bad columns */
	sqlite3_prepare_v2(db, "SELECT 'x', x'00', 3", -1, &st, NULL);
	CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_EQ_INT(list_query_cursor(q, st, 1, 0, &cursor), ERR_UNSUPPORTED);
	CHECK(cursor == NULL);
	CHECK_EQ_INT(list_query_cursor(q, st, 0, 2, &cursor), ERR_INVAL);
	CHECK_EQ_INT(list_query_cursor(q, st, 3, 0, &cursor), ERR_INVAL);
	CHECK_EQ_INT(list_query_cursor(q, st, 0, 3, &cursor), ERR_INVAL);
	CHECK_EQ_INT(list_query_cursor(q, st, -1, 0, &cursor), ERR_INVAL);
	CHECK_EQ_INT(list_query_cursor(q, st, 2, 0, &cursor), 0);
	CHECK(cursor != NULL);
	free(cursor);
	sqlite3_finalize(st);
	list_query_free(&q);

	/* a text key too long for a cursor that compile would accept (3000
	 * bytes still fit) */
	snprintf(data, sizeof data, "{\"t\":\"%03000d\"}", 0);
	db_insert(db, "fits", CREATED, NULL, data);
	CHECK_EQ_INT(list_query_compile("c", "t != null", "t", NULL, &q, NULL), 0);
	sqlite3_prepare_v2(db, "SELECT id, json_extract(data, '$.t') FROM records WHERE id = 'fits'",
	                   -1, &st, NULL);
	CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_EQ_INT(list_query_cursor(q, st, 1, 0, &cursor), 0);
	sqlite3_finalize(st);
	list_query_free(&q);
	CHECK_EQ_INT(list_query_compile("c", "t != null", "t", cursor, &q, NULL), 0);
	list_query_free(&q);
	free(cursor);
	snprintf(data, sizeof data, "{\"t\":\"%03100d\"}", 0);
	db_insert(db, "long", CREATED, NULL, data);
	CHECK_EQ_INT(list_query_compile("c", "t != null", "t", NULL, &q, NULL), 0);
	sqlite3_prepare_v2(db, "SELECT id, json_extract(data, '$.t') FROM records WHERE id = 'long'",
	                   -1, &st, NULL);
	CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_EQ_INT(list_query_cursor(q, st, 1, 0, &cursor), ERR_LIMIT);
	CHECK(cursor == NULL);
	sqlite3_finalize(st);
	list_query_free(&q);

	/* the statement may outlive the query: text is bound by copy */
	CHECK_EQ_INT(list_query_compile("c", "name = 'b'", NULL, NULL, &q, NULL), 0);
	char sql[512];
	snprintf(sql, sizeof sql, "SELECT id FROM records WHERE %s", list_query_where(q));
	sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	CHECK_EQ_INT(list_query_bind(q, st, 1), 2);
	list_query_free(&q);
	CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "s1");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* ---- issue 8, section 4: unknown fields, version, cursors of other lists - */

/* Compiling fails with this API code, parameter, position and message. */
static bool fails_code(const char *filter, const char *sort, const char *code, const char *param,
                       int pos, const char *message)
{
	list_query *q = NULL;
	query_error err;
	int rc = list_query_compile("c", filter, sort, NULL, &q, &err);
	bool ok = rc == ERR_PARSE && q == NULL && err.code && strcmp(err.code, code) == 0 &&
	          strcmp(err.param, param) == 0 && err.pos == pos && strcmp(err.message, message) == 0;
	if (!ok) {
		fprintf(stderr, "  filter=[%s] sort=[%s]\n    got rc %d %s %s pos %d \"%s\"\n",
		        filter ? filter : "(null)", sort ? sort : "(null)", rc,
		        rc ? err.code : "-", rc ? err.param : "-", rc ? err.pos : 0,
		        rc ? err.message : "");
		list_query_free(&q);
	}
	return ok;
}

/* Before: "owner = 'u'" silently filtered on data.owner (and found nothing);
 * the record's own top-level names that a list cannot use are refused. */
static void test_unknown_fields(void)
{
	CHECK(fails_code("owner = 'u'", NULL, "unknown_field", "filter", 1,
	                 "unknown field 'owner': a list holds only your own records; for a field of "
	                 "data write data.owner"));
	CHECK(fails_code("a = 1 && collection = 'c'", NULL, "unknown_field", "filter", 10,
	                 "unknown field 'collection': the collection is in the path; for a field of "
	                 "data write data.collection"));
	CHECK(fails_code("owner.name = 'x'", NULL, "unknown_field", "filter", 1,
	                 "unknown field 'owner.name': a list holds only your own records; for a "
	                 "field of data write data.owner.name"));
	CHECK(fails_code("(data = null)", NULL, "unknown_field", "filter", 2,
	                 "unknown field 'data': name a field inside it (data.NAME)"));
	CHECK(fails_code("id.x = 1", NULL, "unknown_field", "filter", 1,
	                 "unknown field 'id.x': id has no fields; for a field of data write "
	                 "data.id.x"));
	CHECK(fails_code("version.major > 1", NULL, "unknown_field", "filter", 1,
	                 "unknown field 'version.major': version has no fields; for a field of data "
	                 "write data.version.major"));
	CHECK(fails_code(NULL, "title,-owner", "unknown_field", "sort", 8,
	                 "unknown field 'owner': a list holds only your own records; for a field of "
	                 "data write data.owner"));
	CHECK(fails_code(NULL, "data", "unknown_field", "sort", 1,
	                 "unknown field 'data': name a field inside it (data.NAME)"));
	CHECK(fails_code(NULL, "created_at.day", "unknown_field", "sort", 1,
	                 "unknown field 'created_at.day': created_at has no fields; for a field of "
	                 "data write data.created_at.day"));
	/* other errors keep their codes */
	CHECK(fails_code("a = ", NULL, "invalid_filter", "filter", 5,
	                 "unexpected end of filter, expected a value"));
	CHECK(fails_code(NULL, "a,,b", "invalid_sort", "sort", 3, "empty sort key"));

	/* names that only start like a reserved one are data paths */
	sqlite3 *db = db_open();
	db_insert(db, "o1", CREATED, NULL, "{\"owners\":1,\"owner\":\"x\",\"datax\":2}");
	db_insert(db, "o2", CREATED, NULL, "{\"owner\":\"y\",\"data\":{\"owner\":\"x\"}}");
	CHECK_EQ_STR(sel(db, "owners = 1"), "o1");
	CHECK_EQ_STR(sel(db, "datax = 2"), "o1");
	CHECK_EQ_STR(sel(db, "data.owner = 'x'"), "o1");
	CHECK_EQ_STR(sel(db, "data.data.owner = 'x'"), "o2");
	CHECK_EQ_STR(sorted(db, NULL, "-data.owner"), "o2 o1");
	sqlite3_close(db);
}

/* version is the record's column (a number): filterable and sortable. */
static void test_version_column(void)
{
	sqlite3 *db = db_open();
	db_insert(db, "v1", CREATED, NULL, "{\"version\":9}");
	db_insert(db, "v2", CREATED, NULL, "{}");
	db_insert(db, "v3", CREATED, NULL, "{}");
	sqlite3_exec(db, "UPDATE records SET version = 3 WHERE id = 'v2';"
	                 "UPDATE records SET version = 2 WHERE id = 'v3'", NULL, NULL, NULL);
	CHECK_EQ_STR(sel(db, "version = 1"), "v1"); /* the column, not data.version */
	CHECK_EQ_STR(sel(db, "version != 1"), "v2 v3");
	CHECK_EQ_STR(sel(db, "version >= 2"), "v2 v3");
	CHECK_EQ_STR(sel(db, "version < 2.5"), "v1 v3");
	CHECK_EQ_STR(sel(db, "data.version = 9"), "v1");
	CHECK_EQ_STR(sorted(db, NULL, "-version"), "v2 v3 v1");
	CHECK_EQ_STR(sorted(db, "version > 1", "version"), "v3 v2");
	CHECK(filter_fails("version = '2'", 11, "version can only be compared with a number"));
	CHECK(filter_fails("version = null", 11, "version can only be compared with a number"));
	CHECK(filter_fails("version ~ 'x'", 11, "version can only be compared with a number"));
	CHECK(filter_fails("version ~ 2", 9, "operator ~ needs a string field"));
	/* paging by version with cursors */
	char page[256], *cursor = NULL, *next = NULL;
	CHECK_EQ_INT(run_page(db, NULL, "-version", NULL, 2, page, sizeof page, &cursor, NULL), 2);
	CHECK_EQ_STR(page, "v2 v3");
	CHECK_EQ_INT(run_page(db, NULL, "-version", cursor, 2, page, sizeof page, &next, NULL), 1);
	CHECK_EQ_STR(page, "v1");
	free(cursor);
	free(next);
	sqlite3_close(db);
}

/* A cursor belongs to its collection, filter and sort: before, one from
 * another collection or filter silently positioned an unrelated list. */
static void test_cursor_of_another_list(void)
{
	sqlite3 *db = paging_db();
	char page[8192], *cursor = NULL;
	list_query *q = NULL;
	query_error err;
	CHECK_EQ_INT(run_page(db, "priority > 1", "-priority", NULL, 5, page, sizeof page, &cursor,
	                      NULL),
	             5);
	/* the same list, spelled otherwise */
	CHECK_EQ_INT(list_query_compile("c", "priority>1", " -priority, id", cursor, &q, &err), 0);
	list_query_free(&q);
	/* another collection */
	CHECK_EQ_INT(list_query_compile("d", "priority > 1", "-priority", cursor, &q, &err), ERR_PARSE);
	CHECK_EQ_STR(err.code, "invalid_cursor");
	CHECK_EQ_STR(err.message, OTHER_LIST);
	CHECK(q == NULL);
	/* another filter: other value, other type, other field, none */
	const char *filters[] = {"priority > 2", "priority > 1.0", "priority > '1'", "group > 1", NULL,
	                         "priority > 1 && priority > 1"};
	for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
		CHECK_EQ_INT(list_query_compile("c", filters[i], "-priority", cursor, &q, &err), ERR_PARSE);
		CHECK_EQ_STR(err.code, "invalid_cursor");
	}
	free(cursor);

	/* list_query_cursor_values: the id must be text */
	CHECK_EQ_INT(list_query_compile("c", NULL, NULL, NULL, &q, &err), 0);
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db, "SELECT 5, 'r001'", -1, &st, NULL);
	CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
	sqlite3_value *vals[1] = {sqlite3_value_dup(sqlite3_column_value(st, 0))};
	CHECK_EQ_INT(list_query_cursor_values(q, vals, &cursor), ERR_INVAL);
	CHECK(cursor == NULL);
	sqlite3_value_free(vals[0]);
	vals[0] = sqlite3_value_dup(sqlite3_column_value(st, 1));
	CHECK_EQ_INT(list_query_cursor_values(q, vals, &cursor), 0);
	sqlite3_value_free(vals[0]);
	sqlite3_finalize(st);
	list_query_free(&q);
	/* and it starts the page after r001 */
	CHECK_EQ_INT(run_page(db, NULL, NULL, cursor, 1, page, sizeof page, NULL, NULL), 1);
	CHECK_EQ_STR(page, "r002");
	free(cursor);
	sqlite3_close(db);
}

int main(void)
{
	RUN(test_empty_query);
	RUN(test_string_operators);
	RUN(test_number_operators);
	RUN(test_bool_and_null);
	RUN(test_type_strictness);
	RUN(test_missing_fields_and_paths);
	RUN(test_string_literals);
	RUN(test_columns);
	RUN(test_precedence);
	RUN(test_filter_errors);
	RUN(test_sort_errors);
	RUN(test_limits);
	RUN(test_sort_orders);
	RUN(test_cursor_paging);
	RUN(test_cursor_paging_with_inserts);
	RUN(test_cursor_special_values);
	RUN(test_cursor_errors);
	RUN(test_bind_and_cursor_api);
	RUN(test_unknown_fields);
	RUN(test_version_column);
	RUN(test_cursor_of_another_list);
	return TEST_SUMMARY();
}
