/*
 * forward.c - write forwarding, secondary -> primary, on the API thread.
 *
 * A client write that reaches a secondary goes to the primary over the link
 * (same mutual TLS as the rest of the link, bound to the same source
 * address), on connections of its own, made on the API thread's loop: the
 * control thread (leases, stream, acks) never waits behind forwarded
 * traffic, and the API never touches the control thread's clients. The
 * answer comes back to repl_forward's callback on the API thread. The epoch
 * header comes from the published view; the artificial link delay of tests
 * and benchmarks applies both ways, through a delay line on this loop.
 *
 * State: struct forwarder, API thread only; the clients are made at the
 * first forward and live until forwarder_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/log.h"
#include "core/ratelog.h"
#include "core/util.h"
#include "replication/internal.h"

typedef struct fwd_client {
	http_client *client;
	int in_flight;
} fwd_client;

struct forwarder {
	repl *r;
	bool opened;                 /* the clients were made */
	fwd_client clients[REPL_FORWARD_CLIENTS];
	delay_line delay;
	struct ratelog *connect_log; /* failed connections, once per 10 s per cause */
	uint64_t forwarded, failed;
	double seconds_total;
};

forwarder *forwarder_new(repl *r)
{
	forwarder *fw = calloc(1, sizeof *fw);
	if (!fw)
		return NULL;
	fw->r = r;
	if (delay_line_init(&fw->delay, r->api_base, r->env.cfg->replication.link_delay_ms) != 0) {
		free(fw);
		return NULL;
	}
	return fw;
}

/* A forwarding connection could not be made: logged as the control
 * thread's link clients are (applier.c), with this thread's own limiter. */
static void forward_connect_failed(void *arg, const http_client *c, const char *why, int sys_errno)
{
	forwarder *fw = arg;
	if (fw->r->api_stopping)
		return;
	if (!fw->connect_log)
		fw->connect_log = ratelog_new(10000); /* NULL: every attempt is logged */
	char where[300], cause[512];
	http_client_hostport(c, where, sizeof where);
	snprintf(cause, sizeof cause, "%s %s", where, why);
	unsigned held = 0;
	if (fw->connect_log && !ratelog_allow(fw->connect_log, cause, util_mono_us() / 1000, &held))
		return;
	if (held)
		log_warn("link: cannot connect to %s at %s to forward writes: %s (and %u more times since the last "
			 "report)", http_client_name(c), where, why, held);
	else
		log_warn("link: cannot connect to %s at %s to forward writes: %s", http_client_name(c), where, why);
}

/* Make the clients (first use). 0, or ERR_NOMEM / ERR_INVAL with none made. */
static int forwarder_open(forwarder *fw)
{
	if (fw->opened)
		return 0;
	repl *r = fw->r;
	char host[64];
	int port;
	if (util_split_hostport(r->env.peer->link_listen, host, sizeof host, &port) != 0)
		return ERR_INVAL;
	http_limits limits = {16384, 100, 64 * 1024 * 1024, 0};
	for (int i = 0; i < REPL_FORWARD_CLIENTS; i++) {
		http_client *c = http_client_new(r->api_base, r->env.link_client_ctx, host, port, r->env.peer->name,
						 &limits, r->env.cfg->replication.forward_timeout_ms);
		if (!c) {
			for (int k = 0; k < i; k++)
				http_client_free(&fw->clients[k].client);
			return ERR_NOMEM;
		}
		/* source_host is set by election_init, before the threads start */
		if (election_source_host(r)[0])
			http_client_set_source(c, election_source_host(r));
		http_client_on_connect_failed(c, forward_connect_failed, fw);
		fw->clients[i] = (fwd_client){c, 0};
	}
	fw->opened = true;
	return 0;
}

void forwarder_free(forwarder **pfw)
{
	forwarder *fw = *pfw;
	if (!fw)
		return;
	delay_line_flush(&fw->delay);
	/* detach each client before freeing it: the callbacks of what was
	 * queued run during the free */
	for (int i = 0; i < REPL_FORWARD_CLIENTS; i++) {
		http_client *c = fw->clients[i].client;
		fw->clients[i].client = NULL;
		http_client_free(&c);
	}
	ratelog_free(&fw->connect_log);
	free(fw);
	*pfw = NULL;
}

void forwarder_reset(forwarder *fw)
{
	if (!fw || !fw->opened)
		return;
	int in_flight = 0;
	for (int i = 0; i < REPL_FORWARD_CLIENTS; i++)
		in_flight += fw->clients[i].in_flight;
	/* detach each client before freeing it: its requests are answered
	 * (with an error) during the free, and must find no client to reuse */
	for (int i = 0; i < REPL_FORWARD_CLIENTS; i++) {
		http_client *c = fw->clients[i].client;
		fw->clients[i].client = NULL;
		http_client_free(&c);
	}
	fw->opened = false;
	if (in_flight > 0)
		log_info("primary now: %d forwarded write(s) still waiting for the old primary answered "
			 "primary_unavailable (clients retry here)",
			 in_flight);
}

void forwarder_metrics(forwarder *fw, buf *out, const char *n)
{
	uint64_t forwarded = fw ? fw->forwarded : 0, failed = fw ? fw->failed : 0;
	double seconds = fw ? fw->seconds_total : 0;
	buf_printf(out,
		   "# HELP tandem_forwarded_writes_total Writes forwarded to the primary.\n"
		   "# TYPE tandem_forwarded_writes_total counter\n"
		   "tandem_forwarded_writes_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_forwarded_write_failures_total Forwarded writes that got no answer from the primary.\n"
		   "# TYPE tandem_forwarded_write_failures_total counter\n"
		   "tandem_forwarded_write_failures_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_forwarded_write_seconds_total Time forwarded writes took, answer and local apply included.\n"
		   "# TYPE tandem_forwarded_write_seconds_total counter\n"
		   "tandem_forwarded_write_seconds_total{region=\"%s\"} %.6f\n",
		   n, (unsigned long long)forwarded, n, (unsigned long long)failed, n, seconds);
}


typedef struct forward {
	forwarder *fw;
	fwd_client *via;
	int64_t start_us;
	repl_forward_cb cb;
	void *arg;
} forward;

static bool hop_by_hop(const char *name, size_t len)
{
	static const char *const names[] = {"connection", "keep-alive", "te", "trailer", "transfer-encoding",
					    "upgrade", "host", "content-length", "expect", "date",
					    "proxy-connection", "x-forwarded-for"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
			return true;
	return false;
}

static void forward_answer_now(int rc, const http_message *resp, const char *body, size_t len, void *arg);

typedef struct delayed_answer {
	forward *f;
	int rc;
	int status;
	buf headers;
	buf body;
} delayed_answer;

static void forward_answer_delayed(void *arg)
{
	delayed_answer *d = arg;
	forward *f = d->f;
	forwarder *fw = f->fw;
	f->via->in_flight--;
	fw->seconds_total += (double)(util_mono_us() - f->start_us) / 1e6;
	if (d->rc != 0)
		fw->failed++;
	f->cb(f->arg, d->rc, d->status, d->headers.data ? d->headers.data : "", d->headers.len,
	      d->body.data ? d->body.data : "", d->body.len);
	buf_free(&d->headers);
	buf_free(&d->body);
	free(d);
	free(f);
}

static bool forward_keep_header(const http_field *h);

/* With a link delay: copy the answer and hand it over after the delay. */
static void forward_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	forward *f = arg;
	if (f->fw->delay.delay_ms <= 0 || f->fw->r->api_stopping) {
		forward_answer_now(rc, resp, body, len, arg);
		return;
	}
	delayed_answer *d = calloc(1, sizeof *d);
	if (!d) {
		forward_answer_now(ERR_NOMEM, NULL, NULL, 0, arg);
		return;
	}
	d->f = f;
	d->rc = rc;
	buf_init(&d->headers, 64 * 1024);
	buf_init(&d->body, 64 * 1024 * 1024);
	if (rc == 0) {
		d->status = resp->status;
		for (size_t i = 0; i < resp->field_count; i++)
			if (forward_keep_header(&resp->fields[i]))
				buf_printf(&d->headers, "%.*s: %.*s\r\n", (int)resp->fields[i].name_len,
					   resp->fields[i].name, (int)resp->fields[i].value_len, resp->fields[i].value);
		if (buf_add(&d->body, body, len) != 0) {
			/* never a cut body that looks whole: an error, as if unanswered */
			log_error("forward: out of memory copying the primary's answer for the link delay");
			d->rc = ERR_NOMEM;
		}
	}
	delay_line_post(&f->fw->delay, forward_answer_delayed, d);
}

static void forward_answer_now(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	forward *f = arg;
	forwarder *fw = f->fw;
	f->via->in_flight--;
	fw->seconds_total += (double)(util_mono_us() - f->start_us) / 1e6;
	if (rc != 0) {
		fw->failed++;
		f->cb(f->arg, rc, 0, NULL, 0, NULL, 0);
		free(f);
		return;
	}
	buf headers;
	buf_init(&headers, 64 * 1024);
	for (size_t i = 0; i < resp->field_count; i++) {
		const http_field *h = &resp->fields[i];
		if (forward_keep_header(h))
			buf_printf(&headers, "%.*s: %.*s\r\n", (int)h->name_len, h->name, (int)h->value_len,
				   h->value);
	}
	f->cb(f->arg, 0, resp->status, headers.data ? headers.data : "", headers.len, body, len);
	buf_free(&headers);
	free(f);
}

/* Headers of the primary's answer that go back to the client: the
 * answering region adds its own region, request id, type and caching. */
static bool forward_keep_header(const http_field *h)
{
	return !(hop_by_hop(h->name, h->name_len) ||
		 (h->name_len == 15 && strncasecmp(h->name, "x-tandem-region", 15) == 0) ||
		 (h->name_len == 12 && strncasecmp(h->name, "x-request-id", 12) == 0) ||
		 (h->name_len == 12 && strncasecmp(h->name, "content-type", 12) == 0) ||
		 (h->name_len == 13 && strncasecmp(h->name, "cache-control", 13) == 0));
}

typedef struct forward_out {
	forward *f;
	char *method, *target, *headers, *body;
	size_t body_len;
} forward_out;

static void forward_send(void *arg)
{
	forward_out *o = arg;
	forward *f = o->f;
	if (f->fw->r->api_stopping || !f->via->client ||
	    http_client_request(f->via->client, o->method, o->target, o->headers, o->body, o->body_len, 0,
				forward_answer, f) != 0)
		forward_answer(ERR_IO, NULL, NULL, 0, f);
	free(o->method);
	free(o->target);
	free(o->headers);
	free(o->body);
	free(o);
}

void repl_forward(repl *r, http_request *req, const char *request_id, repl_forward_cb cb, void *arg)
{
	const http_message *m = http_request_message(req);
	forwarder *fw = r->fwd;
	repl_view v;
	repl_view_read(r, &v);
	/* the least busy connection to the primary */
	fwd_client *via = NULL;
	if (fw && !r->api_stopping && r->env.peer && !v.peer_isolated && forwarder_open(fw) == 0)
		for (int i = 0; i < REPL_FORWARD_CLIENTS; i++)
			if (fw->clients[i].client && (!via || fw->clients[i].in_flight < via->in_flight))
				via = &fw->clients[i];
	forward *f = calloc(1, sizeof *f);
	if (!via || !f) {
		free(f);
		cb(arg, ERR_AGAIN, 0, NULL, 0, NULL, 0);
		return;
	}
	buf headers;
	buf_init(&headers, 64 * 1024);
	for (size_t i = 0; i < m->field_count; i++) {
		const http_field *h = &m->fields[i];
		if (hop_by_hop(h->name, h->name_len) ||
		    (h->name_len == 12 && strncasecmp(h->name, "x-request-id", 12) == 0) ||
		    (h->name_len == 14 && strncasecmp(h->name, "x-tandem-epoch", 14) == 0))
			continue;
		buf_printf(&headers, "%.*s: %.*s\r\n", (int)h->name_len, h->name, (int)h->value_len, h->value);
	}
	/* the epoch: the view's, or one learned on this thread from a
	 * stale_epoch answer that the control thread has not absorbed yet (the
	 * API's one retry of such a forward must carry it, or it is refused
	 * again) */
	uint64_t epoch = v.epoch;
	uint64_t learned = atomic_load(&r->api_learned);
	if (learned > epoch)
		epoch = learned;
	buf_printf(&headers, "X-Request-Id: %s\r\nX-Forwarded-For: %s\r\nX-Tandem-Epoch: %llu\r\n", request_id,
		   http_request_peer(req), (unsigned long long)epoch);
	size_t blen;
	const char *body = http_request_body(req, &blen);
	*f = (forward){fw, via, util_mono_us(), cb, arg};
	fw->forwarded++;
	via->in_flight++;
	forward_out *o = calloc(1, sizeof *o);
	if (o) {
		o->f = f;
		o->method = strdup(m->method);
		o->target = strdup(m->target);
		o->headers = buf_take(&headers, NULL);
		o->body = malloc(blen ? blen : 1);
		o->body_len = blen;
	}
	if (!o || !o->method || !o->target || !o->body) {
		if (o) {
			free(o->method);
			free(o->target);
			free(o->headers);
			free(o->body);
			free(o);
		}
		buf_free(&headers);
		forward_answer_now(ERR_NOMEM, NULL, NULL, 0, f);
		return;
	}
	if (blen)
		memcpy(o->body, body, blen);
	delay_line_post(&fw->delay, forward_send, o);
}
