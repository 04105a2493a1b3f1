/*
 * cors.c - the CORS policy of the API (see cors.h): the configured origins,
 * normalized once, and the header lines of answers and preflights.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "region/cors.h"

#define CORS_ORIGIN_MAX 256 /* longer Origin values are not origins we configure */

struct cors_policy {
	bool any;                          /* "*" */
	int count;                         /* configured origins */
	char (*origins)[CORS_ORIGIN_MAX];  /* normalized: lower case, no default port */
};

/*
 * Normalize an origin "scheme://host[:port]" into out (lower case, default
 * port dropped). false when it is not such an origin (no path, no userinfo,
 * a non-empty host, http or https only) or does not fit.
 */
static bool cors_normalize(const char *in, size_t len, char out[CORS_ORIGIN_MAX])
{
	if (len == 0 || len >= CORS_ORIGIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c <= ' ' || c >= 0x7f)
			return false;
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	size_t scheme = strncmp(out, "https://", 8) == 0 ? 8 : strncmp(out, "http://", 7) == 0 ? 7 : 0;
	if (!scheme)
		return false;
	char *host = out + scheme;
	if (!*host || *host == ':' || strpbrk(host, "/@?#\\"))
		return false;
	/* a serialized origin never names the scheme's default port */
	const char *dflt = scheme == 8 ? ":443" : ":80";
	size_t hlen = strlen(host), dlen = strlen(dflt);
	if (hlen > dlen && strcmp(host + hlen - dlen, dflt) == 0)
		host[hlen - dlen] = '\0';
	return true;
}

cors_policy *cors_new(const char *origins)
{
	cors_policy *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	const char *s = origins ? origins : "";
	while (*s == ' ' || *s == '\t')
		s++;
	if (strcmp(s, "*") == 0) {
		p->any = true;
		return p;
	}
	int items = 0;
	for (const char *q = s; *q; q++)
		if (*q != ',' && *q != ' ' && *q != '\t' && (q == s || strchr(", \t", q[-1])))
			items++;
	if (items == 0)
		return p;
	p->origins = calloc((size_t)items, sizeof *p->origins);
	if (!p->origins) {
		free(p);
		return NULL;
	}
	const char *q = s;
	while (*q) {
		q += strspn(q, ", \t");
		size_t n = strcspn(q, ", \t");
		if (n && p->count < items && cors_normalize(q, n, p->origins[p->count]))
			p->count++;
		q += n;
	}
	return p;
}

void cors_free(cors_policy **p)
{
	if (!*p)
		return;
	free((*p)->origins);
	free(*p);
	*p = NULL;
}

bool cors_enabled(const cors_policy *p)
{
	return p->any || p->count > 0;
}

bool cors_allows(const cors_policy *p, const char *origin, size_t len, const char **allow_origin)
{
	if (!origin)
		return false;
	if (p->any) {
		*allow_origin = "*";
		return true;
	}
	char norm[CORS_ORIGIN_MAX];
	if (!cors_normalize(origin, len, norm))
		return false;
	for (int i = 0; i < p->count; i++)
		if (strcmp(norm, p->origins[i]) == 0) {
			*allow_origin = p->origins[i];
			return true;
		}
	return false;
}

int cors_answer_headers(const cors_policy *p, const char *origin, size_t len, buf *out)
{
	if (!cors_enabled(p))
		return 0;
	/* even without an Origin (or with one refused): a cache must not hand
	 * this answer to a page of an allowed origin, nor the reverse */
	int rc = buf_adds(out, "Vary: Origin\r\n");
	const char *allow;
	if (rc == 0 && cors_allows(p, origin, len, &allow))
		rc = buf_printf(out, "Access-Control-Allow-Origin: %s\r\nAccess-Control-Expose-Headers: %s\r\n",
				allow, CORS_EXPOSE_HEADERS);
	return rc;
}

int cors_preflight_headers(const cors_policy *p, const char *origin, size_t len, const char *methods,
			   buf *out)
{
	const char *allow;
	if (!cors_allows(p, origin, len, &allow))
		return ERR_INVAL;
	return buf_printf(out,
			  "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Methods: %s\r\n"
			  "Access-Control-Allow-Headers: %s\r\nAccess-Control-Max-Age: %d\r\nVary: Origin\r\n",
			  allow, methods, CORS_ALLOW_HEADERS, CORS_MAX_AGE_S);
}
