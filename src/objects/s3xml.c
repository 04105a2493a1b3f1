/*
 * s3xml.c - S3 XML answers and request bodies; see s3xml.h.
 *
 * The parsers share one walker over expat's events: it keeps the stack of
 * open element names (bounded depth) and the current element's text
 * (bounded), and calls the body's own start/end functions with the path.
 * Anything outside the limits stops expat at once (XML_StopParser), so the
 * work per body is bounded by its size.
 */
#include "objects/s3xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "core/err.h"
#include "objects/s3cors.h"

/* --- writing --- */

int s3xml_escape(buf *b, const char *s, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *rep = NULL;
		char num[8];
		switch (c) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		default:
			if (c < 0x20 || c == 0x7f) { /* as S3 writes them */
				snprintf(num, sizeof num, "&#x%X;", c);
				rep = num;
			}
		}
		if (!rep)
			continue;
		if (buf_add(b, s + start, i - start) != 0 || buf_adds(b, rep) != 0)
			return ERR_LIMIT;
		start = i + 1;
	}
	return buf_add(b, s + start, len - start) == 0 ? 0 : ERR_LIMIT;
}

int s3xml_elem_n(buf *b, const char *tag, const char *text, size_t len)
{
	if (buf_printf(b, "<%s>", tag) != 0 || s3xml_escape(b, text, len) != 0 ||
	    buf_printf(b, "</%s>", tag) != 0)
		return ERR_LIMIT;
	return 0;
}

int s3xml_elem(buf *b, const char *tag, const char *text)
{
	return s3xml_elem_n(b, tag, text, strlen(text));
}

/* --- the walker --- */

typedef struct walker walker;
typedef int (*walk_fn)(walker *w, const char *text, size_t len);

struct walker {
	XML_Parser parser;
	const char *root;
	const char *names[S3XML_MAX_DEPTH];
	int depth;
	char text[S3XML_MAX_TEXT + 1];
	size_t text_len;
	int rc;         /* first error */
	char *err;
	size_t errcap;
	walk_fn on_start; /* text unused there */
	walk_fn on_end;
	void *arg;
};

static void walk_fail(walker *w, int rc, const char *msg)
{
	if (w->rc == 0) {
		w->rc = rc;
		snprintf(w->err, w->errcap, "%s", msg);
	}
	XML_StopParser(w->parser, XML_FALSE);
}

/* Is the open path root/a/b (depth-1 names after the root)? */
static bool walk_at(const walker *w, const char *a, const char *b)
{
	int want = 1 + (a != NULL) + (b != NULL);
	if (w->depth != want)
		return false;
	return (!a || strcmp(w->names[1], a) == 0) && (!b || strcmp(w->names[2], b) == 0);
}

static void XMLCALL walk_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	walker *w = arg;
	if (w->rc)
		return;
	if (w->depth == S3XML_MAX_DEPTH) {
		walk_fail(w, ERR_LIMIT, "XML nested too deeply");
		return;
	}
	if (w->depth == 0 && strcmp(name, w->root) != 0) {
		walk_fail(w, ERR_PARSE, "unexpected root element");
		return;
	}
	/* names live as long as expat's element: copy the pointer only while
	 * open (expat keeps the name storage until the matching end tag) */
	w->names[w->depth++] = name;
	w->text_len = 0;
	if (w->on_start) {
		int rc = w->on_start(w, NULL, 0);
		if (rc != 0)
			walk_fail(w, rc, rc == ERR_LIMIT ? "too many elements" : "unexpected element");
	}
}

static void XMLCALL walk_end(void *arg, const XML_Char *name)
{
	walker *w = arg;
	if (w->rc)
		return;
	w->text[w->text_len] = '\0';
	int rc = w->on_end(w, w->text, w->text_len);
	if (rc != 0)
		walk_fail(w, rc, rc == ERR_NOMEM ? "out of memory" : "unexpected element or value");
	w->depth--;
	w->text_len = 0;
}

static void XMLCALL walk_text(void *arg, const XML_Char *s, int len)
{
	walker *w = arg;
	if (w->rc || len <= 0)
		return;
	if (w->text_len + (size_t)len > S3XML_MAX_TEXT) {
		walk_fail(w, ERR_LIMIT, "an XML value is too long");
		return;
	}
	memcpy(w->text + w->text_len, s, (size_t)len);
	w->text_len += (size_t)len;
}

static void XMLCALL walk_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
				 const XML_Char *pubid, int has_internal_subset)
{
	walk_fail(arg, ERR_PARSE, "a DOCTYPE is not allowed");
}

static void XMLCALL walk_entity(void *arg, const XML_Char *name, int is_param, const XML_Char *value,
				int value_len, const XML_Char *base, const XML_Char *sysid,
				const XML_Char *pubid, const XML_Char *notation)
{
	walk_fail(arg, ERR_PARSE, "entity declarations are not allowed");
}

/* Parse body with w's callbacks; 0 or the first error (err set). */
static int walk(walker *w, const char *body, size_t len)
{
	if (len > S3XML_MAX_BODY) {
		snprintf(w->err, w->errcap, "the XML body is too large");
		return ERR_LIMIT;
	}
	w->parser = XML_ParserCreate("UTF-8");
	if (!w->parser) {
		snprintf(w->err, w->errcap, "out of memory");
		return ERR_NOMEM;
	}
	XML_SetUserData(w->parser, w);
	XML_SetElementHandler(w->parser, walk_start, walk_end);
	XML_SetCharacterDataHandler(w->parser, walk_text);
	XML_SetStartDoctypeDeclHandler(w->parser, walk_doctype);
	XML_SetEntityDeclHandler(w->parser, walk_entity);
	/* no external entities are ever fetched: no handler is set for them,
	 * and a DOCTYPE is refused before any could be declared */
	XML_SetParamEntityParsing(w->parser, XML_PARAM_ENTITY_PARSING_NEVER);
	enum XML_Status st = XML_Parse(w->parser, body, (int)len, XML_TRUE);
	if (st != XML_STATUS_OK && w->rc == 0) {
		w->rc = ERR_PARSE;
		snprintf(w->err, w->errcap, "malformed XML: %s at line %lu",
			 XML_ErrorString(XML_GetErrorCode(w->parser)),
			 (unsigned long)XML_GetCurrentLineNumber(w->parser));
	}
	XML_ParserFree(w->parser);
	w->parser = NULL;
	return w->rc;
}

static bool text_is_true(const char *t)
{
	return strcmp(t, "true") == 0 || strcmp(t, "TRUE") == 0 || strcmp(t, "True") == 0;
}

/* --- DeleteObjects --- */

typedef struct delete_state {
	s3xml_delete *d;
	bool have_key;
} delete_state;

static int delete_start(walker *w, const char *text, size_t len)
{
	delete_state *st = w->arg;
	if (walk_at(w, "Object", NULL)) {
		if (st->d->count == S3XML_MAX_OBJECTS)
			return ERR_LIMIT;
		st->d->count++;
		st->have_key = false;
	}
	return 0;
}

static int delete_end(walker *w, const char *text, size_t len)
{
	delete_state *st = w->arg;
	s3xml_delete_entry *e = st->d->count ? &st->d->entries[st->d->count - 1] : NULL;
	if (walk_at(w, "Quiet", NULL)) {
		st->d->quiet = text_is_true(text);
	} else if (walk_at(w, "Object", "Key") && e) {
		if (e->key)
			return ERR_PARSE;
		e->key = strdup(text);
		e->key_len = len;
		if (!e->key)
			return ERR_NOMEM;
	} else if (walk_at(w, "Object", "VersionId") && e) {
		free(e->version_id);
		e->version_id = strdup(text);
		if (!e->version_id)
			return ERR_NOMEM;
	} else if (walk_at(w, "Object", NULL) && e) {
		if (!e->key)
			return ERR_PARSE; /* an Object without a Key */
	}
	return 0;
}

int s3xml_parse_delete(const char *body, size_t len, s3xml_delete **out, char *err, size_t errcap)
{
	*out = NULL;
	s3xml_delete *d = calloc(1, sizeof *d + S3XML_MAX_OBJECTS * sizeof(s3xml_delete_entry));
	if (!d) {
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	delete_state st = {.d = d};
	walker w = {.root = "Delete", .err = err, .errcap = errcap, .on_start = delete_start,
		    .on_end = delete_end, .arg = &st};
	int rc = walk(&w, body, len);
	if (rc == 0 && d->count == 0) {
		snprintf(err, errcap, "no Object to delete");
		rc = ERR_PARSE;
	}
	if (rc != 0) {
		s3xml_delete_free(&d);
		return rc;
	}
	*out = d;
	return 0;
}

void s3xml_delete_free(s3xml_delete **d)
{
	if (!*d)
		return;
	for (size_t i = 0; i < (*d)->count; i++) {
		free((*d)->entries[i].key);
		free((*d)->entries[i].version_id);
	}
	free(*d);
	*d = NULL;
}

/* --- CreateBucketConfiguration --- */

typedef struct create_state {
	char *location;
	size_t cap;
} create_state;

static int create_end(walker *w, const char *text, size_t len)
{
	create_state *st = w->arg;
	if (walk_at(w, "LocationConstraint", NULL)) {
		if (len >= st->cap)
			return ERR_LIMIT;
		memcpy(st->location, text, len + 1);
	}
	return 0;
}

int s3xml_parse_create_bucket(const char *body, size_t len, char *location, size_t cap, char *err,
			      size_t errcap)
{
	location[0] = '\0';
	size_t i = 0;
	while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
		i++;
	if (i == len)
		return 0;
	create_state st = {.location = location, .cap = cap};
	walker w = {.root = "CreateBucketConfiguration", .err = err, .errcap = errcap,
		    .on_end = create_end, .arg = &st};
	int rc = walk(&w, body, len);
	if (rc != 0)
		location[0] = '\0';
	return rc;
}

/* --- CompleteMultipartUpload --- */

typedef struct complete_state {
	s3xml_complete *c;
} complete_state;

static int complete_start(walker *w, const char *text, size_t len)
{
	complete_state *st = w->arg;
	if (walk_at(w, "Part", NULL)) {
		if (st->c->count == S3XML_MAX_PARTS)
			return ERR_LIMIT;
		s3xml_part *p = &st->c->parts[st->c->count++];
		p->number = 0;
		p->etag[0] = '\0';
	}
	return 0;
}

static int complete_end(walker *w, const char *text, size_t len)
{
	complete_state *st = w->arg;
	s3xml_part *p = st->c->count ? &st->c->parts[st->c->count - 1] : NULL;
	if (walk_at(w, "Part", "PartNumber") && p) {
		int n = 0;
		if (len == 0 || len > 5)
			return ERR_PARSE;
		for (size_t i = 0; i < len; i++) {
			if (text[i] < '0' || text[i] > '9')
				return ERR_PARSE;
			n = n * 10 + (text[i] - '0');
		}
		if (n < 1 || n > S3XML_MAX_PARTS)
			return ERR_PARSE;
		p->number = n;
	} else if (walk_at(w, "Part", "ETag") && p) {
		if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
			text++;
			len -= 2;
		}
		if (len >= sizeof p->etag)
			return ERR_PARSE;
		memcpy(p->etag, text, len);
		p->etag[len] = '\0';
	} else if (walk_at(w, "Part", NULL) && p) {
		if (!p->number || !p->etag[0])
			return ERR_PARSE;
	}
	return 0;
}

int s3xml_parse_complete(const char *body, size_t len, s3xml_complete **out, char *err, size_t errcap)
{
	*out = NULL;
	s3xml_complete *c = calloc(1, sizeof *c + S3XML_MAX_PARTS * sizeof(s3xml_part));
	if (!c) {
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	complete_state st = {.c = c};
	walker w = {.root = "CompleteMultipartUpload", .err = err, .errcap = errcap,
		    .on_start = complete_start, .on_end = complete_end, .arg = &st};
	int rc = walk(&w, body, len);
	if (rc == 0 && c->count == 0) {
		snprintf(err, errcap, "no Part");
		rc = ERR_PARSE;
	}
	if (rc != 0) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void s3xml_complete_free(s3xml_complete **c)
{
	free(*c);
	*c = NULL;
}

/* --- VersioningConfiguration --- */

typedef struct versioning_state {
	s3xml_versioning_status status;
	s3xml_mfa_delete mfa;
	bool have_status, have_mfa;
} versioning_state;

static int versioning_end(walker *w, const char *text, size_t len)
{
	versioning_state *st = w->arg;
	if (walk_at(w, "Status", NULL)) {
		if (st->have_status)
			return ERR_PARSE;
		st->have_status = true;
		if (strcmp(text, "Enabled") == 0)
			st->status = S3XML_VERSIONING_ENABLED;
		else if (strcmp(text, "Suspended") == 0)
			st->status = S3XML_VERSIONING_SUSPENDED;
		else
			return ERR_PARSE;
	} else if (walk_at(w, "MfaDelete", NULL)) {
		if (st->have_mfa)
			return ERR_PARSE;
		st->have_mfa = true;
		if (strcmp(text, "Enabled") == 0)
			st->mfa = S3XML_MFA_ENABLED;
		else if (strcmp(text, "Disabled") == 0)
			st->mfa = S3XML_MFA_DISABLED;
		else
			return ERR_PARSE;
	}
	return 0;
}

int s3xml_parse_versioning(const char *body, size_t len, s3xml_versioning_status *status, s3xml_mfa_delete *mfa,
			   char *err, size_t errcap)
{
	versioning_state st = {0};
	walker w = {.root = "VersioningConfiguration", .err = err, .errcap = errcap, .on_end = versioning_end,
		    .arg = &st};
	int rc = walk(&w, body, len);
	*status = rc == 0 ? st.status : S3XML_VERSIONING_NONE;
	*mfa = rc == 0 ? st.mfa : S3XML_MFA_ABSENT;
	return rc;
}

/* --- CORSConfiguration --- */

typedef struct cors_state {
	s3cors *c;
	char why[160]; /* the reason of an ERR_INVAL */
} cors_state;

static int cors_start(walker *w, const char *text, size_t len)
{
	cors_state *st = w->arg;
	if (walk_at(w, "CORSRule", NULL)) {
		if (st->c->count == S3CORS_MAX_RULES)
			return ERR_LIMIT;
		s3cors_rule *r = &st->c->rules[st->c->count++];
		r->max_age = -1;
	}
	return 0;
}

static int cors_add(s3cors_list *l, const char *text, size_t len)
{
	if (l->count == S3CORS_MAX_ITEMS || len > S3CORS_MAX_VALUE)
		return ERR_LIMIT;
	char *v = strdup(text);
	if (!v)
		return ERR_NOMEM;
	l->items[l->count++] = v;
	return 0;
}

static bool one_wildcard_at_most(const char *s)
{
	const char *star = strchr(s, '*');
	return !star || !strchr(star + 1, '*');
}

static int cors_end(walker *w, const char *text, size_t len)
{
	cors_state *st = w->arg;
	s3cors_rule *r = st->c->count ? &st->c->rules[st->c->count - 1] : NULL;
	if (!r || w->depth != 3 || strcmp(w->names[1], "CORSRule") != 0) {
		if (walk_at(w, "CORSRule", NULL) && r && (!r->origins.count || !r->methods))
			return ERR_PARSE; /* S3: AllowedOrigin and AllowedMethod are required */
		return 0;
	}
	const char *name = w->names[2];
	if (strcmp(name, "AllowedOrigin") == 0) {
		if (!one_wildcard_at_most(text)) {
			snprintf(st->why, sizeof st->why, "AllowedOrigin \"%.64s\" can not have more than one wildcard.",
				 text);
			return ERR_INVAL;
		}
		return cors_add(&r->origins, text, len);
	}
	if (strcmp(name, "AllowedHeader") == 0) {
		if (!one_wildcard_at_most(text)) {
			snprintf(st->why, sizeof st->why, "AllowedHeader \"%.64s\" can not have more than one wildcard.",
				 text);
			return ERR_INVAL;
		}
		return cors_add(&r->headers, text, len);
	}
	if (strcmp(name, "ExposeHeader") == 0)
		return cors_add(&r->expose, text, len);
	if (strcmp(name, "AllowedMethod") == 0) {
		unsigned m = s3cors_method(text);
		if (!m) {
			snprintf(st->why, sizeof st->why, "Found unsupported HTTP method in CORS config. Unsupported "
				 "method is %.16s", text);
			return ERR_INVAL;
		}
		r->methods |= m;
		return 0;
	}
	if (strcmp(name, "MaxAgeSeconds") == 0) {
		long v = 0;
		if (len == 0 || len > 9)
			return ERR_PARSE;
		for (size_t i = 0; i < len; i++) {
			if (text[i] < '0' || text[i] > '9')
				return ERR_PARSE;
			v = v * 10 + (text[i] - '0');
		}
		r->max_age = v;
		return 0;
	}
	if (strcmp(name, "ID") == 0) {
		if (r->id || len > 255)
			return ERR_PARSE;
		r->id = strdup(text);
		return r->id ? 0 : ERR_NOMEM;
	}
	return ERR_PARSE; /* an element S3's schema does not have */
}

int s3xml_parse_cors(const char *body, size_t len, s3cors **out, char *err, size_t errcap)
{
	*out = NULL;
	if (len > S3CORS_MAX_BODY) {
		snprintf(err, errcap, "the CORS configuration is larger than %d bytes", S3CORS_MAX_BODY);
		return ERR_LIMIT;
	}
	cors_state st = {.c = s3cors_new()};
	if (!st.c) {
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	walker w = {.root = "CORSConfiguration", .err = err, .errcap = errcap, .on_start = cors_start,
		    .on_end = cors_end, .arg = &st};
	int rc = walk(&w, body, len);
	if (rc == ERR_INVAL && st.why[0])
		snprintf(err, errcap, "%s", st.why);
	if (rc == 0 && st.c->count == 0) {
		snprintf(err, errcap, "no CORSRule");
		rc = ERR_PARSE;
	}
	if (rc != 0) {
		s3cors_free(&st.c);
		return rc;
	}
	*out = st.c;
	return 0;
}
