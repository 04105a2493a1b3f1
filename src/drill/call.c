/*
 * call.c - one blocking HTTPS request from the drill's own thread (admin
 * status, the fault switch, sign-up, reading the final data back), on the
 * project's HTTP client: a fresh connection per call, the loop run until
 * the answer or the timeout. The workload has its own loop on its thread.
 */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "drill/internal.h"
#include "http/client.h"

typedef struct call_wait {
	struct event_base *base;
	int done;
	drill_reply *out;
} call_wait;

static void call_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	call_wait *w = arg;
	w->done = 1;
	w->out->rc = rc;
	if (rc == 0) {
		w->out->status = resp->status;
		w->out->json = json_loadb(body, len, 0, NULL);
		w->out->body = malloc(len + 1);
		if (w->out->body) { /* without it the caller sees no body */
			memcpy(w->out->body, body, len);
			w->out->body[len] = '\0';
			w->out->body_len = len;
		}
		size_t n;
		const char *lsn = http_message_field(resp, "X-Tandem-LSN", &n);
		if (lsn && n < sizeof w->out->lsn) {
			memcpy(w->out->lsn, lsn, n);
			w->out->lsn[n] = '\0';
		}
	}
	event_base_loopbreak(w->base);
}

void drill_call(struct event_base *base, SSL_CTX *ctx, const char *hostport, const char *sni,
		const char *method, const char *target, const char *headers, const char *body,
		int timeout_ms, drill_reply *out)
{
	memset(out, 0, sizeof *out);
	char host[64];
	int port;
	if (util_split_hostport(hostport, host, sizeof host, &port) != 0) {
		out->rc = ERR_INVAL;
		return;
	}
	http_limits limits = {65536, 200, 64 << 20, 0};
	http_client *c = http_client_new(base, ctx, host, port, sni, &limits, timeout_ms);
	call_wait w = {.base = base, .out = out};
	if (!c) {
		out->rc = ERR_NOMEM;
		return;
	}
	int rc = http_client_request(c, method, target, headers, body, body ? strlen(body) : 0, 0,
				     call_answer, &w);
	if (rc != 0) {
		out->rc = rc;
		http_client_free(&c);
		return;
	}
	while (!w.done)
		event_base_dispatch(base);
	http_client_free(&c);
}

void reply_free(drill_reply *r)
{
	json_decref(r->json);
	r->json = NULL;
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}
