/*
 * fuzz_query.c - libFuzzer target for src/region/query.c.
 *
 * The input is split at NUL bytes into filter, sort and cursor. A failed
 * compile must leave no query and a sane error (known parameter, position
 * inside it or just past its end, a message). A successful compile must give
 * SQL that prepares and runs against a small in-memory records table, with
 * exactly as many parameters as list_query_bind() binds; the cursor of every
 * row must compile again with the same filter and sort (the same list) and
 * run.
 *
 * So that the fuzzer can reach the cursor decoder past the fingerprint check,
 * a cursor part starting with '[' is taken as a JSON array: its first element
 * is replaced with the fingerprint of the list (taken from a real cursor of
 * the same filter and sort) and the result base64url-encoded.
 */
#include "region/query.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static sqlite3 *db;

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_query: %s\n%s\n", what, detail ? detail : "");
	abort();
}

static void setup(void)
{
	static const char *const rows[] = {
		"('a', 'u', 'c', 1, '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', "
		"'{\"n\":3,\"s\":\"apple\",\"b\":true,\"o\":{\"x\":1,\"y\":[1,2]}}')",
		"('b', 'u', 'c', 1, '2026-01-01T00:00:01.000Z', '2026-01-01T00:00:01.000Z', "
		"'{\"n\":3.5,\"s\":\"3\",\"b\":false,\"o\":null}')",
		"('c', 'u', 'c', 2, '2026-01-01T00:00:01.000Z', '2026-01-03T00:00:00.000Z', "
		"'{\"n\":null,\"s\":\"\\u00e9t\\u00e9\",\"o\":{\"x\":\"1\"}}')",
		"('d', 'u', 'c', 1, '2026-01-01T00:00:02.000Z', '2026-01-01T00:00:02.000Z', '{}')",
		"('e', 'u', 'c', 1, '2026-01-01T00:00:03.000Z', '2026-01-01T00:00:03.000Z', "
		"'{\"n\":1e400,\"s\":\"\\udc00\",\"b\":1,\"a\":{\"b\":{\"c\":{\"d\":-0.0}}}}')",
		"('f', 'u', 'c', 1, '2026-01-01T00:00:03.000Z', '2026-01-01T00:00:04.000Z', "
		"'{\"n\":-9223372036854775808,\"s\":\"a\\u0000b\",\"b\":[true]}')",
		"('g', 'v', 'c', 1, '2026-01-01T00:00:04.000Z', '2026-01-01T00:00:04.000Z', "
		"'{\"n\":3,\"s\":\"apple\"}')",
	};
	char sql[1024];
	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		die("sqlite3_open", NULL);
	if (sqlite3_exec(db,
	                 "CREATE TABLE records (id TEXT PRIMARY KEY, owner TEXT NOT NULL, "
	                 "collection TEXT NOT NULL, version INTEGER NOT NULL, "
	                 "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, data TEXT NOT NULL)",
	                 NULL, NULL, NULL) != SQLITE_OK)
		die("schema", sqlite3_errmsg(db));
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		snprintf(sql, sizeof sql, "INSERT INTO records VALUES %s", rows[i]);
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
			die(sqlite3_errmsg(db), sql);
	}
}

/* Characters of s (UTF-8 sequences), for the bound on error positions. */
static int chars(const char *s)
{
	int n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

static void check_error(int rc, const list_query *q, const query_error *err, const char *filter,
                        const char *sort, const char *cursor)
{
	if (q != NULL)
		die("failed compile left a query", NULL);
	if (rc != ERR_PARSE && rc != ERR_LIMIT && rc != ERR_NOMEM)
		die("unexpected error code", err_str(rc));
	if (!err->param || !err->code || err->message[0] == '\0')
		die("error without parameter, code or message", err->message);
	char expected[32];
	snprintf(expected, sizeof expected, "invalid_%s", err->param);
	if (strcmp(err->code, expected) != 0 && strcmp(err->code, "unknown_field") != 0)
		die("code does not match the parameter", err->code);
	const char *text = strcmp(err->param, "filter") == 0   ? filter
	                   : strcmp(err->param, "sort") == 0   ? sort
	                   : strcmp(err->param, "cursor") == 0 ? cursor
	                                                       : NULL;
	if (!text)
		die("unknown parameter", err->param);
	if (err->pos < 0 || err->pos > chars(text) + 1)
		die("position out of range", err->message);
	if (strlen(err->message) >= sizeof err->message)
		die("message not terminated", NULL);
}

/*
 * Prepare and run q over the table, as the list handler does (owner and
 * collection bound first). Aborts if the SQL does not prepare, the binding
 * count is off, or a step fails. With cursors, *first gets the cursor of the
 * first row (if none yet) and every row's cursor is compiled again with sort.
 */
static void run(const list_query *q, const char *filter, const char *sort, char **first, int depth)
{
	const char *keys = list_query_keys(q);
	sqlite3_stmt *st = NULL;
	char *sql = sqlite3_mprintf("SELECT id, owner, collection, version, created_at, updated_at, "
	                            "data%s%s FROM records WHERE owner = ?1 AND collection = ?2 AND "
	                            "(%s) %s LIMIT 20",
	                            keys[0] ? ", " : "", keys, list_query_where(q),
	                            list_query_order(q));
	if (!sql)
		die("sqlite3_mprintf", NULL);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		die(sqlite3_errmsg(db), sql);
	sqlite3_bind_text(st, 1, "u", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, "c", -1, SQLITE_STATIC);
	int next = list_query_bind(q, st, 3);
	if (next != sqlite3_bind_parameter_count(st) + 1)
		die("parameter count does not match", sql);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char *cursor = NULL;
		int crc = list_query_cursor(q, st, 7, 0, &cursor);
		if (crc != 0 || !cursor)
			die("list_query_cursor failed", err_str(crc));
		if (depth == 0) {
			list_query *again = NULL;
			query_error err;
			crc = list_query_compile("c", filter, sort, cursor, &again, &err);
			if (crc != 0)
				die("own cursor rejected", err.message);
			run(again, filter, sort, NULL, depth + 1);
			list_query_free(&again);
		}
		if (first && !*first)
			*first = cursor;
		else
			free(cursor);
	}
	if (rc != SQLITE_DONE)
		die(sqlite3_errmsg(db), sql);
	sqlite3_finalize(st);
	sqlite3_free(sql);
}

static char *base64url(const char *in, size_t len)
{
	char *out = malloc(len / 3 * 4 + 5);
	size_t o = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
		size_t n = len - i >= 3 ? 3 : len - i;
		if (n > 1)
			v |= (uint32_t)(unsigned char)in[i + 1] << 8;
		if (n > 2)
			v |= (unsigned char)in[i + 2];
		for (size_t k = 0; k <= n; k++)
			out[o++] = b64[(v >> (18 - 6 * k)) & 63];
	}
	out[o] = '\0';
	return out;
}

/* The fingerprint inside a real cursor (a malloc'd string), or NULL. */
static char *cursor_fingerprint(const char *cursor)
{
	size_t len = strlen(cursor), o = 0;
	char *raw = malloc(len + 1);
	uint32_t v = 0;
	int bits = 0;
	if (!raw)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		v = (v << 6) | (uint32_t)(strchr(b64, cursor[i]) - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			raw[o++] = (char)((v >> bits) & 0xFF);
		}
	}
	json_t *root = json_loadb(raw, o, JSON_ALLOW_NUL, NULL);
	free(raw);
	const char *fp = json_string_value(json_array_get(root, 0));
	char *copy = fp ? strdup(fp) : NULL;
	json_decref(root);
	return copy;
}

/* Turn a '['-JSON cursor part into a cursor for filter and sort; NULL to use
 * it raw. */
static char *crafted_cursor(const char *json_text, const char *filter, const char *sort)
{
	list_query *q = NULL;
	char *first = NULL, *fp = NULL, *dumped = NULL, *out = NULL;
	json_t *root = json_loads(json_text, JSON_ALLOW_NUL, NULL);
	if (!json_is_array(root) || json_array_size(root) == 0)
		goto done;
	if (list_query_compile("c", filter, sort, NULL, &q, NULL) != 0)
		goto done;
	run(q, filter, sort, &first, 1);
	if (!first || !(fp = cursor_fingerprint(first)))
		goto done;
	json_array_set_new(root, 0, json_string(fp));
	dumped = json_dumps(root, JSON_COMPACT);
	if (dumped)
		out = base64url(dumped, strlen(dumped));
done:
	free(dumped);
	free(fp);
	free(first);
	list_query_free(&q);
	json_decref(root);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *input, *parts[3], *crafted = NULL;
	if (!db)
		setup();
	if (size > 16384)
		return 0;
	input = malloc(size + 3);
	if (!input)
		return 0;
	memcpy(input, data, size);
	memset(input + size, 0, 3);
	parts[0] = input;
	parts[1] = parts[0] + strlen(parts[0]) + 1;
	if (parts[1] > input + size)
		parts[1] = input + size + 1;
	parts[2] = parts[1] + strlen(parts[1]) + 1;
	if (parts[2] > input + size + 2)
		parts[2] = input + size + 2;
	const char *filter = parts[0], *sort = parts[1], *cursor = parts[2];
	if (cursor[0] == '[' && (crafted = crafted_cursor(cursor, filter, sort)) != NULL)
		cursor = crafted;

	list_query *q = (list_query *)&q; /* must be reset */
	query_error err;
	int rc = list_query_compile("c", filter, sort, cursor, &q, &err);
	if (rc != 0)
		check_error(rc, q, &err, filter, sort, cursor);
	else
		run(q, filter, sort, NULL, 0);
	list_query_free(&q);
	free(crafted);
	free(input);
	return 0;
}
