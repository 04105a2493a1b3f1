/* test_formdata.c - the multipart/form-data parser (src/http/formdata.c):
 * boundaries from Content-Type values, the one file part of a body, what
 * browsers and curl send, and every malformed or over-limit shape ending in
 * its error code. Each truncation of a valid body is an error, never a read
 * past its end (run under SAN=1 for that). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/formdata.h"
#include "test.h"

static int find(const char *body, const char *boundary, formdata_file *f)
{
	return formdata_find_file(body, strlen(body), boundary, f);
}

static void test_boundary(void)
{
	char b[FORMDATA_BOUNDARY_MAX + 1];
	const char *ct = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
	CHECK_EQ_INT(formdata_boundary(ct, strlen(ct), b, sizeof b), 0);
	CHECK_EQ_STR(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW");
	ct = "Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b:c\"";
	CHECK_EQ_INT(formdata_boundary(ct, strlen(ct), b, sizeof b), 0);
	CHECK_EQ_STR(b, "a b:c");
	ct = "image/png";
	CHECK_EQ_INT(formdata_boundary(ct, strlen(ct), b, sizeof b), ERR_NOTFOUND);
	ct = "multipart/form-datax; boundary=a";
	CHECK_EQ_INT(formdata_boundary(ct, strlen(ct), b, sizeof b), ERR_NOTFOUND);
	const char *bad[] = {
		"multipart/form-data",                       /* none */
		"multipart/form-data; boundary=",            /* empty */
		"multipart/form-data; boundary=\"ends \"",   /* a trailing space */
		"multipart/form-data; boundary=a; boundary=b", /* two */
		"multipart/form-data; boundary=\"a\x01\"",   /* control char */
		"multipart/form-data; boundary=\"unterminated",
		"multipart/form-data; boundary=a<b",         /* not a token */
		"multipart/form-data; boundary=12345678901234567890123456789012345678901234567890123456789012345678901",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ_INT(formdata_boundary(bad[i], strlen(bad[i]), b, sizeof b), ERR_INVAL);
		CHECK_EQ_STR(b, "");
	}
	/* exactly 70 is allowed */
	ct = "multipart/form-data; boundary=1234567890123456789012345678901234567890123456789012345678901234567890";
	CHECK_EQ_INT(formdata_boundary(ct, strlen(ct), b, sizeof b), 0);
	CHECK_EQ_INT(strlen(b), 70);
}

static void test_browser_form(void)
{
	/* a preamble, a text field, the file, an epilogue */
	const char *body = "ignored preamble\r\n"
			   "--XyZ\r\n"
			   "Content-Disposition: form-data; name=\"caption\"\r\n\r\n"
			   "at the beach\r\n"
			   "--XyZ\r\n"
			   "Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".jpg\"\r\n"
			   "Content-Type: image/jpeg\r\n\r\n"
			   "JPEG\r\n--XyZnot a delimiter\r\n"
			   "--XyZ--\r\nepilogue";
	formdata_file f;
	CHECK_EQ_INT(find(body, "XyZ", &f), 0);
	CHECK_EQ_STR(f.filename, "a \"b\".jpg");
	CHECK_EQ_STR(f.content_type, "image/jpeg");
	CHECK_EQ_INT(f.len, strlen("JPEG\r\n--XyZnot a delimiter"));
	CHECK(memcmp(f.data, "JPEG\r\n--XyZnot a delimiter", f.len) == 0);
}

static void test_curl_form_and_empty_file(void)
{
	const char *body = "--b\r\ncontent-disposition: form-data; name=file; filename=x.txt\r\n\r\n\r\n--b--\r\n";
	formdata_file f;
	CHECK_EQ_INT(find(body, "b", &f), 0);
	CHECK_EQ_INT(f.len, 0);
	CHECK_EQ_STR(f.content_type, "");
	CHECK_EQ_STR(f.filename, "x.txt");
	/* a browser's form with no file chosen: filename="" is not a file */
	body = "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n"
	       "Content-Type: application/octet-stream\r\n\r\n\r\n--b--";
	CHECK_EQ_INT(find(body, "b", &f), ERR_NOTFOUND);
	/* binary data with NULs and CRs */
	char bin[] = "--b\r\nContent-Disposition: form-data; name=f; filename=z\r\n\r\n\0\r\r\n\0--b--";
	CHECK_EQ_INT(formdata_find_file(bin, sizeof bin - 1, "b", &f), ERR_PARSE); /* "\r\n\0--b": no delimiter */
	char bin2[] = "--b\r\nContent-Disposition: form-data; name=f; filename=z\r\n\r\n\0\r\r\n\0\r\n--b--";
	CHECK_EQ_INT(formdata_find_file(bin2, sizeof bin2 - 1, "b", &f), 0);
	CHECK_EQ_INT(f.len, 5);
}

static void test_errors(void)
{
	formdata_file f;
	struct {
		const char *body;
		int rc;
	} cases[] = {
		{"", ERR_PARSE},
		{"no delimiter at all", ERR_PARSE},
		{"--b--", ERR_NOTFOUND}, /* well-formed, no part */
		{"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--", ERR_NOTFOUND},
		{"--bX\r\n", ERR_PARSE},                        /* not followed by CRLF */
		{"--b\r\nContent-Disposition: form-data; filename=a\r\n\r\ndata", ERR_PARSE}, /* truncated */
		{"--b\r\nContent-Disposition: form-data; filename=a\r\n", ERR_PARSE},
		{"--b\r\nNoColonHere\r\n\r\nx\r\n--b--", ERR_PARSE},
		{"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", ERR_PARSE}, /* no disposition */
		{"--b\r\nContent-Disposition: attachment; filename=a\r\n\r\nx\r\n--b--", ERR_PARSE},
		{"--b\r\nContent-Disposition: form-data; filename=\"a\r\n\r\nx\r\n--b--", ERR_PARSE},
		{"--b\r\nContent-Disposition: form-data; filename=a\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",
		 ERR_PARSE},
		{"--b\r\nContent-Disposition: form-data; filename=a\r\n\r\nx\r\n--b\r\n"
		 "Content-Disposition: form-data; filename=c\r\n\r\ny\r\n--b--",
		 ERR_CONFLICT},
		{"--b\r\nContent-Disposition: form-data; filename=a\r\n\r\nx\r\n--b garbage", ERR_PARSE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = find(cases[i].body, "b", &f);
		if (rc != cases[i].rc)
			fprintf(stderr, "case %zu: %d, expected %d\n", i, rc, cases[i].rc);
		CHECK_EQ_INT(rc, cases[i].rc);
		CHECK(f.data == NULL && f.len == 0);
	}
}

static void test_limits(void)
{
	formdata_file f;
	/* FORMDATA_MAX_PARTS parts are fine, one more is not */
	char *body = malloc(64 * 1024);
	for (int parts = FORMDATA_MAX_PARTS; parts <= FORMDATA_MAX_PARTS + 1; parts++) {
		size_t n = 0;
		for (int i = 0; i < parts; i++)
			n += (size_t)sprintf(body + n, "--b\r\nContent-Disposition: form-data; name=f%d%s\r\n\r\nv\r\n", i,
					     i == 0 ? "; filename=x" : "");
		n += (size_t)sprintf(body + n, "--b--");
		CHECK_EQ_INT(formdata_find_file(body, n, "b", &f), parts == FORMDATA_MAX_PARTS ? 0 : ERR_LIMIT);
	}
	/* part headers beyond FORMDATA_HEADERS_MAX */
	size_t n = (size_t)sprintf(body, "--b\r\nContent-Disposition: form-data; filename=x\r\nX-Pad: ");
	memset(body + n, 'p', FORMDATA_HEADERS_MAX);
	n += FORMDATA_HEADERS_MAX;
	n += (size_t)sprintf(body + n, "\r\n\r\nx\r\n--b--");
	CHECK_EQ_INT(formdata_find_file(body, n, "b", &f), ERR_LIMIT);
	/* a filename longer than FORMDATA_VALUE_MAX */
	n = (size_t)sprintf(body, "--b\r\nContent-Disposition: form-data; filename=\"");
	memset(body + n, 'n', FORMDATA_VALUE_MAX);
	n += FORMDATA_VALUE_MAX;
	n += (size_t)sprintf(body + n, "\"\r\n\r\nx\r\n--b--");
	CHECK_EQ_INT(formdata_find_file(body, n, "b", &f), ERR_LIMIT);
	free(body);
}

/* Every prefix of a valid body is an error or the same answer, never a
 * read past its end (each prefix in a buffer of exactly its length, so
 * ASan sees an overrun). */
static void test_truncations(void)
{
	const char *body = "--bb\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.bin\"\r\n"
			   "Content-Type: application/x-thing\r\n\r\n0123456789\r\n--bb--\r\n";
	size_t len = strlen(body);
	for (size_t n = 0; n < len; n++) {
		char *copy = malloc(n ? n : 1);
		memcpy(copy, body, n);
		formdata_file f;
		int rc = formdata_find_file(copy, n, "bb", &f);
		/* complete once the closing delimiter is in */
		CHECK(rc == (n >= len - 2 ? 0 : ERR_PARSE));
		if (rc == 0)
			CHECK(f.len == 10 && f.data == copy + (strstr(body, "0123") - body));
		free(copy);
	}
}

int main(void)
{
	RUN(test_boundary);
	RUN(test_browser_form);
	RUN(test_curl_form_and_empty_file);
	RUN(test_errors);
	RUN(test_limits);
	RUN(test_truncations);
	return TEST_SUMMARY();
}
