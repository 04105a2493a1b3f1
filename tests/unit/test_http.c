/*
 * test_http.c - the HTTP server and client together, in one process, on
 * loopback: keep-alive, chunked bodies both ways, Expect: 100-continue,
 * Connection: close and reconnection, TLS with verification (and its
 * failure), request timeouts, graceful shutdown.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/certs.h"
#include "core/err.h"
#include "core/tls.h"
#include "http/client.h"
#include "http/server.h"
#include "test.h"

static struct event_base *base;
static http_limits limits = {16384, 100, 1 << 20, 0};
static http_request *parked; /* a request the handler did not answer yet */
static int requests_seen;

/* The test server: /echo answers the method, body and a header as JSON-ish
 * text; /chunked streams three chunks; /close answers with Connection:
 * close; /park does not answer (until the test says). */
static void on_request(http_request *req, void *arg)
{
	const http_message *m = http_request_message(req);
	requests_seen++;
	if (strcmp(m->target, "/chunked") == 0) {
		http_respond_start(req, 200);
		http_respond_chunk(req, "one,", 4);
		http_respond_chunk(req, "two,", 4);
		http_respond_chunk(req, "three", 5);
		http_respond_end(req);
		return;
	}
	if (strcmp(m->target, "/park") == 0) {
		parked = req;
		return;
	}
	size_t len;
	const char *body = http_request_body(req, &len);
	char out[2048];
	size_t hl = 0;
	const char *h = http_message_field(m, "X-Test", &hl);
	int n = snprintf(out, sizeof out, "%s|%.*s|%.*s", m->method, (int)len, body, (int)hl, h ? h : "");
	if (strcmp(m->target, "/close") == 0)
		http_response_header(req, "Connection", "close");
	http_respond(req, 200, out, (size_t)n);
}

typedef struct result {
	int done;
	int rc;
	int status;
	char body[2048];
} result;

static void on_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	result *r = arg;
	r->done = 1;
	r->rc = rc;
	if (rc == 0) {
		r->status = resp->status;
		snprintf(r->body, sizeof r->body, "%.*s", (int)len, body);
	}
}

static void run_until(result *r, int count)
{
	for (int i = 0; i < 2000; i++) {
		int done = 0;
		for (int k = 0; k < count; k++)
			done += r[k].done;
		if (done == count)
			return;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static http_server *start_server(SSL_CTX *ctx, int *port)
{
	http_server_config cfg = {.limits = limits, .header_timeout_ms = 5000, .idle_timeout_ms = 5000,
				  .max_connections = 100, .ssl_ctx = ctx, .common_headers = "X-Common: 1\r\n"};
	http_handlers h = {.on_request = on_request};
	http_server *srv = http_server_new(base, &cfg, &h);
	CHECK(srv != NULL);
	CHECK_EQ_INT(http_server_listen(srv, "127.0.0.1:0"), 0);
	*port = http_server_port(srv);
	CHECK(*port > 0);
	return srv;
}

static void test_keep_alive_and_bodies(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	result r[5];
	memset(r, 0, sizeof r);
	CHECK_EQ_INT(http_client_request(c, "GET", "/echo", "X-Test: a\r\n", NULL, 0, 0, on_answer, &r[0]), 0);
	CHECK_EQ_INT(http_client_request(c, "POST", "/echo", NULL, "hello", 5, 0, on_answer, &r[1]), 0);
	CHECK_EQ_INT(http_client_request(c, "POST", "/echo", NULL, "chunky body", 11, HTTP_CLIENT_CHUNKED,
					 on_answer, &r[2]), 0);
	CHECK_EQ_INT(http_client_request(c, "PUT", "/echo", NULL, "after 100", 9,
					 HTTP_CLIENT_EXPECT_CONTINUE, on_answer, &r[3]), 0);
	CHECK_EQ_INT(http_client_request(c, "GET", "/chunked", NULL, NULL, 0, 0, on_answer, &r[4]), 0);
	run_until(r, 5);
	CHECK_EQ_STR(r[0].body, "GET||a");
	CHECK_EQ_STR(r[1].body, "POST|hello|");
	CHECK_EQ_STR(r[2].body, "POST|chunky body|");
	CHECK_EQ_STR(r[3].body, "PUT|after 100|");
	CHECK_EQ_STR(r[4].body, "one,two,three");
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_INT(r[i].rc, 0);
		CHECK_EQ_INT(r[i].status, 200);
	}
	CHECK_EQ_INT(http_server_connections(srv), 1); /* all on one keep-alive connection */
	http_client_free(&c);
	http_server_free(&srv);
	CHECK(c == NULL && srv == NULL);
}

static void test_connection_close_then_reconnect(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	result r[2];
	memset(r, 0, sizeof r);
	http_client_request(c, "GET", "/close", NULL, NULL, 0, 0, on_answer, &r[0]);
	http_client_request(c, "GET", "/echo", "X-Test: again\r\n", NULL, 0, 0, on_answer, &r[1]);
	run_until(r, 2);
	CHECK_EQ_INT(r[0].rc, 0);
	CHECK_EQ_STR(r[0].body, "GET||");
	CHECK_EQ_INT(r[1].rc, 0);
	CHECK_EQ_STR(r[1].body, "GET||again");
	http_client_free(&c);
	http_server_free(&srv);
}

static void test_timeout_and_refused(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 300);
	result r;
	memset(&r, 0, sizeof r);
	parked = NULL;
	http_client_request(c, "GET", "/park", NULL, NULL, 0, 0, on_answer, &r);
	run_until(&r, 1);
	CHECK_EQ_INT(r.rc, ERR_AGAIN);
	CHECK(parked != NULL);
	if (parked)
		http_respond(parked, 200, "late", 4); /* the peer is gone: discarded safely */
	http_client_free(&c);
	http_server_free(&srv);
	/* nothing listens there any more */
	c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 2000);
	memset(&r, 0, sizeof r);
	http_client_request(c, "GET", "/echo", NULL, NULL, 0, 0, on_answer, &r);
	run_until(&r, 1);
	CHECK_EQ_INT(r.rc, ERR_IO);
	http_client_free(&c);
}

static void shutdown_done(void *arg)
{
	*(int *)arg = 1;
}

static void test_graceful_shutdown_waits_for_parked_request(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	result r;
	memset(&r, 0, sizeof r);
	parked = NULL;
	http_client_request(c, "GET", "/park", NULL, NULL, 0, 0, on_answer, &r);
	for (int i = 0; i < 500 && !parked; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	CHECK(parked != NULL);
	int stopped = 0;
	http_server_shutdown(srv, shutdown_done, &stopped);
	CHECK_EQ_INT(stopped, 0); /* a request is in flight */
	http_respond(parked, 200, "finished", 8);
	run_until(&r, 1);
	for (int i = 0; i < 200 && !stopped; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	CHECK_EQ_INT(r.rc, 0);
	CHECK_EQ_STR(r.body, "finished");
	CHECK_EQ_INT(stopped, 1);
	http_client_free(&c);
	http_server_free(&srv);
}

static void test_tls_verified_and_refused(void)
{
	char dir[] = "/tmp/tandem-test-http-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	const char *names[] = {"eu"};
	char err[512], cert[256], key[256], ca[256];
	CHECK_EQ_INT(certs_ensure(dir, names, 1, err, sizeof err), 0);
	snprintf(cert, sizeof cert, "%s/eu.pem", dir);
	snprintf(key, sizeof key, "%s/eu.key", dir);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	SSL_CTX *sctx = tls_server_new(cert, key, NULL, err, sizeof err);
	SSL_CTX *cctx = tls_client_new(ca, NULL, NULL, err, sizeof err);
	SSL_CTX *wrong = tls_client_new(cert, NULL, NULL, err, sizeof err); /* not a CA */
	CHECK(sctx && cctx && wrong);
	int port;
	http_server *srv = start_server(sctx, &port);
	http_client *c = http_client_new(base, cctx, "127.0.0.1", port, NULL, &limits, 5000);
	result r[2];
	memset(r, 0, sizeof r);
	http_client_request(c, "POST", "/echo", NULL, "secret", 6, 0, on_answer, &r[0]);
	run_until(r, 1);
	CHECK_EQ_INT(r[0].rc, 0);
	CHECK_EQ_STR(r[0].body, "POST|secret|");
	http_client_free(&c);
	/* the name must match too: "eu" is in the certificate, "us" is not */
	http_client *bad = http_client_new(base, wrong, "127.0.0.1", port, NULL, &limits, 5000);
	http_client_request(bad, "GET", "/echo", NULL, NULL, 0, 0, on_answer, &r[1]);
	run_until(&r[1], 1);
	CHECK_EQ_INT(r[1].rc, ERR_TLS);
	http_client_free(&bad);
	result r3 = {0};
	http_client *misnamed = http_client_new(base, cctx, "127.0.0.1", port, "us", &limits, 5000);
	http_client_request(misnamed, "GET", "/echo", NULL, NULL, 0, 0, on_answer, &r3);
	run_until(&r3, 1);
	CHECK_EQ_INT(r3.rc, ERR_TLS);
	http_client_free(&misnamed);
	http_server_free(&srv);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	SSL_CTX_free(wrong);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK_EQ_INT(system(cmd), 0);
}

int main(void)
{
	evthread_use_pthreads();
	base = event_base_new();
	RUN(test_keep_alive_and_bodies);
	RUN(test_connection_close_then_reconnect);
	RUN(test_timeout_and_refused);
	RUN(test_graceful_shutdown_waits_for_parked_request);
	RUN(test_tls_verified_and_refused);
	event_base_free(base);
	return TEST_SUMMARY();
}
