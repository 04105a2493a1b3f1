/*
 * test.h - the unit test harness: one binary per module (tests/unit/test_X.c
 * tests src/.../X.c), each test a function registered in main() with RUN().
 * A failed CHECK prints file:line and the expression and marks the test failed;
 * the binary exits non-zero if any test failed and prints "N passed, N failed".
 */
#ifndef TANDEM_TEST_H
#define TANDEM_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test__failed_checks;
static int test__passed, test__failed;

#define CHECK(expr)                                                            \
	do {                                                                   \
		if (!(expr)) {                                                 \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,    \
				__LINE__, #expr);                              \
			test__failed_checks++;                                 \
		}                                                              \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                     \
	do {                                                                   \
		long long test__a = (long long)(a), test__b = (long long)(b);   \
		if (test__a != test__b) {                                      \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, test__a, test__b); \
			test__failed_checks++;                                 \
		}                                                              \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                     \
	do {                                                                   \
		const char *test__a = (a), *test__b = (b);                     \
		if (!test__a || !test__b || strcmp(test__a, test__b) != 0) {   \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" != \"%s\")\n", \
				__FILE__, __LINE__, #a, #b,                    \
				test__a ? test__a : "(null)",                  \
				test__b ? test__b : "(null)");                 \
			test__failed_checks++;                                 \
		}                                                              \
	} while (0)

#define RUN(fn)                                                                \
	do {                                                                   \
		int test__before = test__failed_checks;                        \
		fn();                                                          \
		if (test__failed_checks == test__before) {                     \
			test__passed++;                                        \
		} else {                                                       \
			test__failed++;                                        \
			fprintf(stderr, "FAIL %s\n", #fn);                     \
		}                                                              \
	} while (0)

#define TEST_SUMMARY()                                                         \
	(printf("%s: %d passed, %d failed\n", __FILE__, test__passed,          \
		test__failed),                                                 \
	 test__failed ? 1 : 0)

#endif
