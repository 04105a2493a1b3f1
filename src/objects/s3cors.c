/*
 * s3cors.c - CORS rules of a bucket and their matching; see s3cors.h.
 */
#include "objects/s3cors.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "objects/s3xml.h"

s3cors *s3cors_new(void)
{
	return calloc(1, sizeof(s3cors) + S3CORS_MAX_RULES * sizeof(s3cors_rule));
}

static void list_free(s3cors_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	l->count = 0;
}

void s3cors_free(s3cors **c)
{
	if (!*c)
		return;
	for (size_t i = 0; i < (*c)->count; i++) {
		s3cors_rule *r = &(*c)->rules[i];
		free(r->id);
		list_free(&r->origins);
		list_free(&r->headers);
		list_free(&r->expose);
	}
	free(*c);
	*c = NULL;
}

static const struct {
	const char *name;
	unsigned bit;
} methods[] = {{"GET", S3CORS_GET}, {"PUT", S3CORS_PUT}, {"POST", S3CORS_POST},
	       {"DELETE", S3CORS_DELETE}, {"HEAD", S3CORS_HEAD}};

unsigned s3cors_method(const char *name)
{
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(name, methods[i].name) == 0)
			return methods[i].bit;
	return 0;
}

static bool eq_n(const char *a, const char *b, size_t n, bool nocase)
{
	return nocase ? strncasecmp(a, b, n) == 0 : memcmp(a, b, n) == 0;
}

bool s3cors_wildcard(const char *pattern, const char *s, bool nocase)
{
	const char *star = strchr(pattern, '*');
	size_t sl = strlen(s);
	if (!star)
		return nocase ? strcasecmp(pattern, s) == 0 : strcmp(pattern, s) == 0;
	/* one wildcard (the parser allows no more): prefix and suffix, not
	 * overlapping */
	size_t pre = (size_t)(star - pattern), suf = strlen(star + 1);
	if (pre + suf > sl)
		return false;
	return eq_n(pattern, s, pre, nocase) && eq_n(star + 1, s + sl - suf, suf, nocase);
}

static bool list_matches(const s3cors_list *l, const char *s, bool nocase)
{
	for (size_t i = 0; i < l->count; i++)
		if (s3cors_wildcard(l->items[i], s, nocase))
			return true;
	return false;
}

/* Every name of the comma-separated list matches an AllowedHeader. */
static bool headers_allowed(const s3cors_rule *r, const char *list)
{
	if (!list)
		return true;
	const char *p = list;
	int names = 0;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *end = p;
		while (*end && *end != ',')
			end++;
		size_t n = (size_t)(end - p);
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		char name[S3CORS_MAX_VALUE + 1];
		if (n > S3CORS_MAX_VALUE || ++names > 64)
			return false;
		memcpy(name, p, n);
		name[n] = '\0';
		if (!list_matches(&r->headers, name, true))
			return false;
		p = end;
	}
	return true;
}

const s3cors_rule *s3cors_match(const s3cors *c, const char *origin, unsigned method,
				const char *request_headers)
{
	if (!c || !origin || !method)
		return NULL;
	for (size_t i = 0; i < c->count; i++) {
		const s3cors_rule *r = &c->rules[i];
		if ((r->methods & method) && list_matches(&r->origins, origin, false) &&
		    headers_allowed(r, request_headers))
			return r;
	}
	return NULL;
}

int s3cors_to_xml(const s3cors *c, buf *b)
{
	int rc = buf_adds(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			      "<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (size_t i = 0; rc == 0 && i < c->count; i++) {
		const s3cors_rule *r = &c->rules[i];
		rc = buf_adds(b, "<CORSRule>");
		if (rc == 0 && r->id)
			rc = s3xml_elem(b, "ID", r->id);
		for (size_t k = 0; rc == 0 && k < r->headers.count; k++)
			rc = s3xml_elem(b, "AllowedHeader", r->headers.items[k]);
		for (size_t k = 0; rc == 0 && k < sizeof methods / sizeof methods[0]; k++)
			if (r->methods & methods[k].bit)
				rc = s3xml_elem(b, "AllowedMethod", methods[k].name);
		for (size_t k = 0; rc == 0 && k < r->origins.count; k++)
			rc = s3xml_elem(b, "AllowedOrigin", r->origins.items[k]);
		for (size_t k = 0; rc == 0 && k < r->expose.count; k++)
			rc = s3xml_elem(b, "ExposeHeader", r->expose.items[k]);
		if (rc == 0 && r->max_age >= 0)
			rc = buf_printf(b, "<MaxAgeSeconds>%ld</MaxAgeSeconds>", r->max_age);
		if (rc == 0)
			rc = buf_adds(b, "</CORSRule>");
	}
	if (rc == 0)
		rc = buf_adds(b, "</CORSConfiguration>");
	return rc == 0 ? 0 : ERR_LIMIT;
}

static int add_list(buf *b, const char *name, const s3cors_list *l)
{
	if (!l->count)
		return 0;
	int rc = buf_printf(b, "%s: ", name);
	for (size_t i = 0; rc == 0 && i < l->count; i++)
		rc = buf_printf(b, "%s%s", i ? ", " : "", l->items[i]);
	return rc == 0 ? buf_adds(b, "\r\n") : rc;
}

/* Is s safe as a header value (no CR, LF or other control byte)? */
static bool header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return false;
	return true;
}

int s3cors_headers(const s3cors_rule *r, const char *origin, bool preflight, const char *request_headers,
		   buf *b)
{
	/* a rule open to every origin answers "*", as S3 (no credentials then) */
	bool any = false;
	for (size_t i = 0; i < r->origins.count; i++)
		if (strcmp(r->origins.items[i], "*") == 0)
			any = true;
	if (!header_safe(origin) || (request_headers && !header_safe(request_headers)))
		return ERR_INVAL; /* cannot happen: the HTTP parser refuses such bytes */
	int rc;
	if (any)
		rc = buf_adds(b, "Access-Control-Allow-Origin: *\r\n");
	else
		rc = buf_printf(b, "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\n"
				   "Vary: Origin, Access-Control-Request-Headers, Access-Control-Request-Method\r\n",
				origin);
	if (rc == 0) {
		rc = buf_adds(b, "Access-Control-Allow-Methods: ");
		bool first = true;
		for (size_t k = 0; rc == 0 && k < sizeof methods / sizeof methods[0]; k++)
			if (r->methods & methods[k].bit) {
				rc = buf_printf(b, "%s%s", first ? "" : ", ", methods[k].name);
				first = false;
			}
		if (rc == 0)
			rc = buf_adds(b, "\r\n");
	}
	if (rc == 0 && preflight && request_headers && request_headers[0])
		rc = buf_printf(b, "Access-Control-Allow-Headers: %s\r\n", request_headers);
	if (rc == 0)
		rc = add_list(b, "Access-Control-Expose-Headers", &r->expose);
	if (rc == 0 && r->max_age >= 0)
		rc = buf_printf(b, "Access-Control-Max-Age: %ld\r\n", r->max_age);
	return rc == 0 ? 0 : ERR_LIMIT;
}
