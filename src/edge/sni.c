/*
 * sni.c - certificates by server name (sni.h): a short array searched in
 * the ClientHello's servername callback. At most EDGE_SNI_MAX entries, so a
 * linear scan costs less than a handshake's first hash; exact names are
 * looked for before wildcards, whatever the order of the config.
 */
#include "edge/sni.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

#define EDGE_SNI_MAGIC 0x534e4931u /* "SNI1" */

typedef struct sni_entry {
	char name[EDGE_SNI_NAME_MAX + 1]; /* lowercase; "*.x.y" for a wildcard */
	SSL_CTX *ctx;
} sni_entry;

struct edge_sni {
	unsigned magic;
	SSL_CTX *default_ctx;
	sni_entry entries[EDGE_SNI_MAX];
	int count;
};

/* The servername callback of the default context: switch the connection
 * to the picked context before the certificate is chosen. An unknown name
 * is not an error (the default certificate is served, as most servers do). */
static int sni_servername_cb(SSL *ssl, int *alert, void *arg)
{
	const edge_sni *s = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	SSL_CTX *ctx = edge_sni_pick(s, name);
	if (ctx != SSL_get_SSL_CTX(ssl) && !SSL_set_SSL_CTX(ssl, ctx)) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

edge_sni *edge_sni_new(SSL_CTX *default_ctx)
{
	edge_sni *s = calloc(1, sizeof *s);
	if (!s) {
		SSL_CTX_free(default_ctx);
		return NULL;
	}
	s->magic = EDGE_SNI_MAGIC;
	s->default_ctx = default_ctx;
	SSL_CTX_set_tlsext_servername_callback(default_ctx, sni_servername_cb);
	SSL_CTX_set_tlsext_servername_arg(default_ctx, s);
	return s;
}

void edge_sni_free(edge_sni **ps)
{
	edge_sni *s = *ps;
	if (!s)
		return;
	for (int i = 0; i < s->count; i++)
		SSL_CTX_free(s->entries[i].ctx);
	SSL_CTX_free(s->default_ctx);
	s->magic = 0;
	free(s);
	*ps = NULL;
}

static bool host_valid(const char *name)
{
	size_t len = strlen(name), label = 0;
	if (len == 0 || len > EDGE_SNI_NAME_MAX || name[0] == '.' || name[len - 1] == '.')
		return false;
	for (const char *c = name; *c; c++) {
		if (*c == '.') {
			if (label == 0)
				return false; /* an empty label */
			label = 0;
			continue;
		}
		bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			  *c == '-';
		if (!ok || ++label > 63)
			return false;
	}
	return true;
}

bool edge_sni_name_valid(const char *name)
{
	if (strncmp(name, "*.", 2) == 0)
		return host_valid(name + 2) && strchr(name + 2, '.') != NULL;
	return host_valid(name);
}

int edge_sni_add(edge_sni *s, const char *name, SSL_CTX *ctx)
{
	if (!edge_sni_name_valid(name)) {
		SSL_CTX_free(ctx);
		return ERR_INVAL;
	}
	for (int i = 0; i < s->count; i++)
		if (strcasecmp(s->entries[i].name, name) == 0) {
			SSL_CTX_free(ctx);
			return ERR_EXISTS;
		}
	if (s->count == EDGE_SNI_MAX) {
		SSL_CTX_free(ctx);
		return ERR_LIMIT;
	}
	sni_entry *e = &s->entries[s->count++];
	size_t n = strlen(name);
	for (size_t i = 0; i <= n; i++)
		e->name[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
	e->ctx = ctx;
	return 0;
}

SSL_CTX *edge_sni_pick(const edge_sni *s, const char *servername)
{
	if (!servername || !servername[0] || strlen(servername) > EDGE_SNI_NAME_MAX)
		return s->default_ctx;
	for (int i = 0; i < s->count; i++)
		if (s->entries[i].name[0] != '*' && strcasecmp(s->entries[i].name, servername) == 0)
			return s->entries[i].ctx;
	/* one label deep: the rest after the first '.', which must leave a
	 * non-empty first label */
	const char *dot = strchr(servername, '.');
	if (!dot || dot == servername || !dot[1])
		return s->default_ctx;
	for (int i = 0; i < s->count; i++)
		if (s->entries[i].name[0] == '*' && strcasecmp(s->entries[i].name + 2, dot + 1) == 0)
			return s->entries[i].ctx;
	return s->default_ctx;
}

SSL_CTX *edge_sni_default(const edge_sni *s)
{
	return s->default_ctx;
}

void edge_sni_each(edge_sni *s, void (*fn)(SSL_CTX *ctx))
{
	fn(s->default_ctx);
	for (int i = 0; i < s->count; i++)
		fn(s->entries[i].ctx);
}
