/* test_jsonpos.c - JSON parse errors in words: the place is the first byte of
 * the offending token (line, column in characters), the words never jansson's
 * own text. Each case parses with the flags the API uses. */
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/jsonpos.h"
#include "test.h"

static const char *describe(const char *text)
{
	static char out[256];
	json_error_t e;
	json_t *j = json_loadb(text, strlen(text), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	if (j) {
		json_decref(j);
		return "(parsed)";
	}
	int rc = jsonpos_describe(text, strlen(text), &e, out, sizeof out);
	return rc == 0 ? out : "(error)";
}

static void test_syntax_points_at_the_token(void)
{
	CHECK_EQ_STR(describe("x"), "malformed JSON at line 1, column 1: invalid value x (strings need double "
				    "quotes; literals are true, false, null)");
	CHECK_EQ_STR(describe("{\"a\":1,}"), "malformed JSON at line 1, column 8: unexpected '}'");
	CHECK_EQ_STR(describe("{\"a\" 1}"),
		     "malformed JSON at line 1, column 6: unexpected value 1 (is a ':' or ',' missing?)");
	CHECK_EQ_STR(describe("{\"a\":tru}"), "malformed JSON at line 1, column 6: invalid value tru (strings "
					      "need double quotes; literals are true, false, null)");
	CHECK_EQ_STR(describe("{\"a\":01}"), "malformed JSON at line 1, column 6: invalid number 01");
	CHECK_EQ_STR(describe("{\"a\":-}"), "malformed JSON at line 1, column 6: invalid number -");
	CHECK_EQ_STR(describe("{'a':1}"), "malformed JSON at line 1, column 2: unexpected character '''");
	CHECK_EQ_STR(describe("{\"a\" \"b\"}"),
		     "malformed JSON at line 1, column 6: unexpected string (is a ':' or ',' missing?)");
	/* lines and columns count characters, not bytes */
	CHECK_EQ_STR(describe("{\n  \"a\": 1,\n  \"b\": x\n}"),
		     "malformed JSON at line 3, column 8: invalid value x (strings need double quotes; literals "
		     "are true, false, null)");
	CHECK_EQ_STR(describe("{\"\xc3\xa9\": \xc3\xbc}"),
		     "malformed JSON at line 1, column 7: unexpected character (byte 0xc3)");
}

static void test_inside_strings(void)
{
	CHECK_EQ_STR(describe("{\"a\":\"\\q\"}"), "malformed JSON at line 1, column 7: invalid escape in a string");
	CHECK_EQ_STR(describe("{\"a\":\"x\x01\"}"), "malformed JSON at line 1, column 8: unescaped control "
						    "character in a string (write it as \\u00XX)");
	CHECK_EQ_STR(describe("{\"a\":\"\xff\"}"), "malformed JSON at line 1, column 7: invalid UTF-8 (byte 0xff)");
	CHECK_EQ_STR(describe("{\"a\":\"\\u0000\"}"),
		     "malformed JSON at line 1, column 6: \\u0000 is not allowed in a string");
}

static void test_ends_and_extras(void)
{
	CHECK_EQ_STR(describe(""), "malformed JSON: the body is empty");
	CHECK_EQ_STR(describe(" \r\n"), "malformed JSON: the body is empty");
	CHECK_EQ_STR(describe("[1,2"),
		     "malformed JSON at line 1, column 5: the body ends before the JSON value is complete");
	CHECK_EQ_STR(describe("{\"a\":\"abc"), "malformed JSON at line 1, column 10: the body ends inside a string");
	CHECK_EQ_STR(describe("{\"a\":1}x"), "malformed JSON at line 1, column 8: unexpected text after the JSON value");
	CHECK_EQ_STR(describe("{\"a\":1,\"a\":2}"), "malformed JSON at line 1, column 8: duplicate key in an object");
	CHECK_EQ_STR(describe("{\"a\":1e999}"), "malformed JSON at line 1, column 6: number out of range: 1e999");
	char deep[3001];
	memset(deep, '[', 3000);
	deep[3000] = '\0';
	const char *d = describe(deep);
	CHECK(strstr(d, "nested too deeply") != NULL);
}

/* No message may carry jansson's wording, whatever the bytes. */
static void test_never_library_text(void)
{
	const char *cases[] = {"x", "{", "{\"a\"", "{\"a\":", "[1,]", "{\"a\":[}", "\"\\u12\"", "nul", "{,}", "]"};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *d = describe(cases[i]);
		CHECK(strncmp(d, "malformed JSON", 14) == 0);
		CHECK(strstr(d, "near") == NULL && strstr(d, "expected near") == NULL && strstr(d, "JSON_") == NULL &&
		      strstr(d, "token") == NULL);
	}
}

int main(void)
{
	RUN(test_syntax_points_at_the_token);
	RUN(test_inside_strings);
	RUN(test_ends_and_extras);
	RUN(test_never_library_text);
	return TEST_SUMMARY();
}
