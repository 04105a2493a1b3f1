/*
 * formdata.c - multipart/form-data: the boundary of a Content-Type and the
 * one file part of a body (formdata.h). A body is a sequence of parts
 * between delimiters:
 *
 *   [preamble CRLF] --B [LWSP] CRLF headers CRLF CRLF data
 *                   CRLF --B [LWSP] CRLF headers CRLF CRLF data
 *                   CRLF --B-- [epilogue]
 *
 * Each step checks what remains of the body before it reads (lengths, not
 * NUL terminators: a body may hold any byte), so a truncated or crafted body
 * ends in an error code, never a read past its end.
 */
#include "http/formdata.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 2046 bchars (a space only inside). */
static bool is_bchar(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       strchr("'()+_,-./:=? ", c) != NULL;
}

/* RFC 7230 tchar. */
static bool is_tchar(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * A cursor over one header value's parameters: "; name=value; ...".
 * Reads the next parameter into name/value (NUL-terminated). 1 when one was
 * read, 0 at the end, ERR_PARSE / ERR_LIMIT on bad syntax or length.
 */
static int next_param(const char **pp, const char *end, char *name, size_t ncap, char *value, size_t vcap)
{
	const char *p = *pp;
	while (p < end && is_ows(*p))
		p++;
	if (p == end)
		return 0;
	if (*p++ != ';')
		return ERR_PARSE;
	while (p < end && is_ows(*p))
		p++;
	size_t n = 0;
	while (p < end && is_tchar(*p)) {
		if (n + 1 >= ncap)
			return ERR_LIMIT;
		name[n++] = *p++;
	}
	name[n] = '\0';
	if (n == 0 || p == end || *p++ != '=')
		return ERR_PARSE;
	size_t v = 0;
	if (p < end && *p == '"') {
		p++;
		for (;;) {
			if (p == end)
				return ERR_PARSE; /* unterminated */
			char c = *p++;
			if (c == '"')
				break;
			if (c == '\\') {
				if (p == end)
					return ERR_PARSE;
				c = *p++;
			}
			if ((unsigned char)c < 0x20 && c != '\t')
				return ERR_PARSE;
			if (c == 0x7f)
				return ERR_PARSE;
			if (v + 1 >= vcap)
				return ERR_LIMIT;
			value[v++] = c;
		}
	} else {
		while (p < end && is_tchar(*p)) {
			if (v + 1 >= vcap)
				return ERR_LIMIT;
			value[v++] = *p++;
		}
		if (v == 0)
			return ERR_PARSE;
	}
	value[v] = '\0';
	*pp = p;
	return 1;
}

int formdata_boundary(const char *content_type, size_t len, char *out, size_t cap)
{
	static const char type[] = "multipart/form-data";
	if (cap)
		out[0] = '\0';
	const char *p = content_type, *end = content_type + len;
	while (p < end && is_ows(*p))
		p++;
	const char *t = p;
	while (p < end && *p != ';' && !is_ows(*p))
		p++;
	if ((size_t)(p - t) != sizeof type - 1 || strncasecmp(t, type, sizeof type - 1) != 0)
		return ERR_NOTFOUND;
	char name[32], value[FORMDATA_BOUNDARY_MAX + 2];
	int rc;
	bool found = false;
	while ((rc = next_param(&p, end, name, sizeof name, value, sizeof value)) == 1) {
		if (strcasecmp(name, "boundary") != 0)
			continue;
		size_t n = strlen(value);
		bool ok = !found && n > 0 && n <= FORMDATA_BOUNDARY_MAX && n + 1 <= cap && value[n - 1] != ' ';
		for (size_t i = 0; ok && i < n; i++)
			ok = is_bchar(value[i]);
		if (!ok) { /* bad, or a second one: which would be meant? */
			if (cap)
				out[0] = '\0';
			return ERR_INVAL;
		}
		memcpy(out, value, n + 1);
		found = true;
	}
	if (rc < 0 || !found) {
		if (cap)
			out[0] = '\0';
		return ERR_INVAL;
	}
	return 0;
}

/* After a delimiter: "--" closes the body (*closed), else optional LWSP and
 * CRLF. Returns where the next part starts, or NULL when malformed. */
static const char *after_delimiter(const char *p, const char *end, bool *closed)
{
	*closed = false;
	if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
		*closed = true;
		return p + 2;
	}
	while (p < end && is_ows(*p))
		p++;
	if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
		return NULL;
	return p + 2;
}

/* The headers of one part, [h, hend): the file's name and type when it is
 * a file (*is_file). 0, ERR_PARSE, ERR_LIMIT. */
static int part_headers(const char *h, const char *hend, formdata_file *f, bool *is_file)
{
	bool disposition = false;
	*is_file = false;
	f->filename[0] = f->content_type[0] = '\0';
	while (h < hend) {
		const char *eol = memchr(h, '\r', (size_t)(hend - h));
		const char *lend = eol ? eol : hend;
		if (eol && (hend - eol < 2 || eol[1] != '\n'))
			return ERR_PARSE; /* a bare CR */
		const char *colon = memchr(h, ':', (size_t)(lend - h));
		if (!colon || colon == h)
			return ERR_PARSE;
		size_t nlen = (size_t)(colon - h);
		const char *v = colon + 1, *vend = lend;
		while (v < vend && is_ows(*v))
			v++;
		while (vend > v && is_ows(vend[-1]))
			vend--;
		for (const char *c = v; c < vend; c++)
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
				return ERR_PARSE;
		if (nlen == 19 && strncasecmp(h, "Content-Disposition", 19) == 0) {
			if (disposition)
				return ERR_PARSE;
			disposition = true;
			const char *t = v;
			while (t < vend && is_tchar(*t))
				t++;
			if (t - v != 9 || strncasecmp(v, "form-data", 9) != 0)
				return ERR_PARSE;
			char name[32], value[FORMDATA_VALUE_MAX];
			int rc;
			while ((rc = next_param(&t, vend, name, sizeof name, value, sizeof value)) == 1) {
				if (strcasecmp(name, "filename") != 0)
					continue; /* name=, filename*= (RFC 7578 4.2: not to be used) */
				memcpy(f->filename, value, strlen(value) + 1);
				/* filename="": a browser's form with no file chosen */
				*is_file = value[0] != '\0';
			}
			if (rc < 0)
				return rc;
		} else if (nlen == 12 && strncasecmp(h, "Content-Type", 12) == 0) {
			size_t n = (size_t)(vend - v);
			if (n >= sizeof f->content_type)
				return ERR_LIMIT;
			memcpy(f->content_type, v, n);
			f->content_type[n] = '\0';
		}
		h = eol ? eol + 2 : hend;
	}
	return disposition ? 0 : ERR_PARSE;
}

int formdata_find_file(const char *body, size_t len, const char *boundary, formdata_file *out)
{
	memset(out, 0, sizeof *out);
	size_t blen = strlen(boundary);
	if (blen == 0 || blen > FORMDATA_BOUNDARY_MAX)
		return ERR_PARSE;
	/* "\r\n--" boundary: the delimiter; the first may start the body */
	char delim[FORMDATA_BOUNDARY_MAX + 5];
	memcpy(delim, "\r\n--", 4);
	memcpy(delim + 4, boundary, blen);
	size_t dlen = blen + 4;
	const char *end = body + len, *p;
	if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
		p = body + dlen - 2;
	} else {
		const char *d = memmem(body, len, delim, dlen); /* after a preamble */
		if (!d)
			return ERR_PARSE;
		p = d + dlen;
	}
	bool closed;
	p = after_delimiter(p, end, &closed);
	if (!p)
		return ERR_PARSE;
	int parts = 0, files = 0;
	formdata_file found = {0};
	while (!closed) {
		if (++parts > FORMDATA_MAX_PARTS)
			return ERR_LIMIT;
		/* headers end at the first empty line (a part may have none
		 * only in theory: it then lacks its Content-Disposition) */
		const char *hend;
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
			hend = p;
		} else {
			size_t window = (size_t)(end - p);
			if (window > FORMDATA_HEADERS_MAX + 4)
				window = FORMDATA_HEADERS_MAX + 4;
			hend = memmem(p, window, "\r\n\r\n", 4);
			if (!hend)
				return window == FORMDATA_HEADERS_MAX + 4 ? ERR_LIMIT : ERR_PARSE;
		}
		formdata_file f;
		bool is_file;
		int rc = part_headers(p, hend, &f, &is_file);
		if (rc != 0)
			return rc;
		const char *data = hend + (hend == p ? 2 : 4);
		/* the data ends at the first delimiter line: CRLF --B followed
		 * by "--" or LWSP CRLF; "--B" and more on its line is data (RFC
		 * 2046 forbids it, senders do not check) */
		const char *d = data, *next = NULL;
		for (;;) {
			d = memmem(d, (size_t)(end - d), delim, dlen);
			if (!d)
				return ERR_PARSE; /* no closing delimiter: truncated */
			next = after_delimiter(d + dlen, end, &closed);
			if (next)
				break;
			d++;
		}
		if (is_file) {
			if (++files > 1)
				return ERR_CONFLICT;
			found = f;
			found.data = data;
			found.len = (size_t)(d - data);
		}
		p = next;
	}
	if (!files)
		return ERR_NOTFOUND;
	*out = found;
	return 0;
}
