/*
 * server.c - `tandem dns` (server.h has the contract): sockets, threads,
 * the UDP and TCP paths. The answer itself is zone.c's.
 *
 *   main thread: bind every socket (so that a bad address fails the start,
 *                before any thread runs), drop privileges, start the
 *                workers, wait for SIGTERM/SIGINT, stop them, join
 *   worker i:    its own event_base; per address a UDP socket (read up to
 *                64 datagrams per wakeup, answer each) and a TCP listener
 *                whose connections are bufferevents on that base
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/privdrop.h"
#include "core/util.h"
#include "core/secrets.h"
#include "dns/cookie.h"
#include "dns/dnssec.h"
#include "dns/health.h"
#include "dns/rrl.h"
#include "dns/server.h"
#include "dns/xfr.h"

#define UDP_BURST 64
#define UDP_MAX_ANSWER 1232        /* RFC 9715: avoids IP fragmentation */
#define TCP_MAX_CONNS 256          /* per thread */
#define TCP_IDLE_S 10
#define TCP_MAX_PENDING (256 * 1024) /* unread answers per connection */
#define MAX_THREADS 64

typedef struct worker worker;

typedef struct dns_srv {
	const dns_conf *dc;
	dns_cookie_key cookie_key; /* from the secrets file: the same in every instance */
	const dns_server_conf *sc;
	dns_secondary secondaries[DNS_XFR_MAX_SECONDARIES]; /* sc's, with their TSIG secrets */
	dns_health *health;        /* the regions' health (health.h); NULL without routes */
	worker *workers;
	int nworkers;
} dns_srv;

struct worker {
	dns_srv *srv;
	struct event_base *base;
	evutil_socket_t udp[DNSCONF_MAX_LISTEN];
	evutil_socket_t tcp[DNSCONF_MAX_LISTEN];
	struct event *udp_ev[DNSCONF_MAX_LISTEN];
	struct evconnlistener *lis[DNSCONF_MAX_LISTEN];
	int nsock;
	int conns;
	dns_rrl *rrl;              /* this thread's UDP rate limits */
	struct bufferevent *conn[TCP_MAX_CONNS]; /* open TCP connections (freed at the end) */
	pthread_t thread;
	bool started;
	uint32_t rand;             /* xorshift32 state: weighted routes (no lock, no syscall) */
	dnssec_signer *signer;     /* this thread's signatures cache (dnssec.h) */
	struct event *stop_ev;     /* made active by worker_stop: breaks the loop */
	uint8_t out[65535 + 2];    /* one answer at a time per thread */
};

/* The answer to one message from `from`: FORMERR/NOTIMP/BADVERS for what
 * does not parse, else the zones' (with a fresh server cookie when the
 * client sent a cookie). *cookie_ok: the client's server cookie was valid
 * (its address is not forged). 0 when nothing is sent. */
static size_t answer(worker *w, const uint8_t *msg, size_t len, bool tcp, const struct sockaddr *from,
		     uint8_t *out, size_t outcap, bool *cookie_ok)
{
	dns_query q;
	*cookie_ok = false;
	dns_parse_result r = dns_parse_query(msg, len, &q);
	if (r != DNS_PARSE_OK)
		return dns_answer_error(msg, len, r, out, outcap < UDP_MAX_ANSWER ? outcap : UDP_MAX_ANSWER,
					UDP_MAX_ANSWER);
	size_t cap = DNS_UDP_MIN;
	if (tcp)
		cap = outcap;
	else if (q.edns && q.udp_size > DNS_UDP_MIN)
		cap = q.udp_size < UDP_MAX_ANSWER ? q.udp_size : UDP_MAX_ANSWER;
	uint8_t sc[DNS_SERVER_COOKIE_BYTES];
	const uint8_t *scp = NULL;
	if (q.cookie && from) {
		uint32_t now = (uint32_t)(util_now_ms() / 1000);
		*cookie_ok = q.server_cookie_len &&
			     dns_cookie_valid(&w->srv->cookie_key, q.client_cookie, q.server_cookie,
					      q.server_cookie_len, from, now);
		if (dns_cookie_make(&w->srv->cookie_key, q.client_cookie, from, now, sc) == 0)
			scp = sc;
	}
	w->rand ^= w->rand << 13;
	w->rand ^= w->rand >> 17;
	w->rand ^= w->rand << 5;
	dns_route_env env = {
		.health = dns_health_current(w->srv->health),
		.map = w->srv->sc->latency_map,
		.from = from,
		.rand = w->rand,
		.signer = w->signer,
	};
	return dns_answer(w->srv->dc->zones, w->srv->dc->nzones, &q, out, cap, UDP_MAX_ANSWER, scp, &env);
}

/* --- UDP --- */

/* Over the rate, a slipped answer: the question with TC and nothing else,
 * so that a real client asks again over TCP. 0 for what gets no answer. */
static size_t slip_answer(const uint8_t *msg, size_t len, uint8_t *out, size_t cap)
{
	dns_query q;
	dns_parse_result r = dns_parse_query(msg, len, &q);
	if (r != DNS_PARSE_OK)
		return 0; /* malformed and over the rate: nothing */
	dns_writer w;
	if (dns_w_begin(&w, out, cap, &q, DNS_R_NOERROR, true) != 0)
		return 0;
	dns_w_flags(&w, DNS_F_TC, 0);
	return dns_w_length(&w);
}

static void udp_read(evutil_socket_t fd, short what, void *arg)
{
	worker *w = arg;
	uint8_t in[65536];
	for (int i = 0; i < UDP_BURST; i++) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof from;
		ssize_t n = recvfrom(fd, in, sizeof in, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
		if (n < 0)
			return; /* EAGAIN: drained (errors on UDP are per datagram) */
		/* answered first (cheap: no I/O), then limited: a valid server
		 * cookie proves the address, and such answers are not limited */
		bool cookie_ok;
		size_t len = answer(w, in, (size_t)n, false, (struct sockaddr *)&from, w->out, UDP_MAX_ANSWER,
				    &cookie_ok);
		if (!cookie_ok) {
			dns_rrl_verdict v = dns_rrl_check(w->rrl, (struct sockaddr *)&from, util_mono_us() / 1000);
			if (v == DNS_RRL_DROP)
				continue;
			if (v == DNS_RRL_SLIP)
				len = slip_answer(in, (size_t)n, w->out, UDP_MAX_ANSWER);
		}
		if (len)
			(void)sendto(fd, w->out, len, MSG_DONTWAIT, (struct sockaddr *)&from, fromlen);
		/* a full socket buffer drops the answer: the client retries, as
		 * for any lost datagram */
	}
}

/* --- TCP --- */

static void tcp_close(struct bufferevent *bev, worker *w)
{
	for (int i = 0; i < TCP_MAX_CONNS; i++)
		if (w->conn[i] == bev) {
			w->conn[i] = NULL;
			break;
		}
	bufferevent_free(bev);
	w->conns--;
}

/* One message of a transfer onto the connection, with its length. */
static int xfr_out(void *arg, const uint8_t *msg, size_t len)
{
	struct evbuffer *out = arg;
	uint8_t lenb[2] = {(uint8_t)(len >> 8), (uint8_t)len};
	if (evbuffer_add(out, lenb, 2) != 0 || evbuffer_add(out, msg, len) != 0)
		return ERR_NOMEM;
	return 0;
}

static void tcp_read(struct bufferevent *bev, void *arg)
{
	worker *w = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	for (;;) {
		if (evbuffer_get_length(out) > TCP_MAX_PENDING) {
			/* answers pile up unread: stop reading until they drain
			 * (tcp_write turns reading on again) */
			bufferevent_disable(bev, EV_READ);
			return;
		}
		uint8_t lenb[2];
		if (evbuffer_copyout(in, lenb, 2) < 2)
			return;
		size_t mlen = (size_t)lenb[0] << 8 | lenb[1];
		if (evbuffer_get_length(in) < 2 + mlen)
			return; /* (at most 65537 bytes are ever held: the watermark) */
		uint8_t msg[65535];
		evbuffer_drain(in, 2);
		evbuffer_remove(in, msg, mlen);
		struct sockaddr_storage peer;
		socklen_t plen = sizeof peer;
		bool cookie_ok;
		bool have_peer = getpeername(bufferevent_getfd(bev), (struct sockaddr *)&peer, &plen) == 0;
		dns_query q;
		if (dns_parse_query(msg, mlen, &q) == DNS_PARSE_OK && (q.qtype == DNS_T_AXFR || q.qtype == DNS_T_IXFR)) {
			/* a transfer: its messages, each signed, go out at once (a
			 * zone's size, bounded by the zone file's limits) */
			dns_srv *srv = w->srv;
			if (dns_xfr_answer(srv->dc->zones, srv->dc->nzones, srv->secondaries, srv->sc->nsecondaries, &q, msg,
					   mlen, have_peer ? (struct sockaddr *)&peer : NULL, (uint64_t)(util_now_ms() / 1000),
					   xfr_out, out) != 0) {
				tcp_close(bev, w);
				return;
			}
			continue;
		}
		size_t len = answer(w, msg, mlen, true, have_peer ? (struct sockaddr *)&peer : NULL, w->out + 2, 65535,
				    &cookie_ok);
		if (!len) {
			tcp_close(bev, w); /* a response or garbage: RFC 7766 lets us close */
			return;
		}
		w->out[0] = (uint8_t)(len >> 8);
		w->out[1] = (uint8_t)len;
		if (evbuffer_add(out, w->out, len + 2) != 0) {
			tcp_close(bev, w);
			return;
		}
	}
}

static void tcp_write(struct bufferevent *bev, void *arg)
{
	/* drained below the low watermark: reading may go on */
	if (!(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		tcp_read(bev, arg);
	}
}

static void tcp_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		tcp_close(bev, arg);
}

static void tcp_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *addr, int alen, void *arg)
{
	worker *w = arg;
	if (w->conns >= TCP_MAX_CONNS) {
		evutil_closesocket(fd); /* full: the client tries another server or later */
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	w->conns++;
	for (int i = 0; i < TCP_MAX_CONNS; i++)
		if (!w->conn[i]) {
			w->conn[i] = bev;
			break;
		}
	struct timeval idle = {TCP_IDLE_S, 0};
	bufferevent_set_timeouts(bev, &idle, &idle);
	bufferevent_setwatermark(bev, EV_READ, 0, 65537); /* one message and its length at most */
	bufferevent_setwatermark(bev, EV_WRITE, TCP_MAX_PENDING / 2, 0);
	bufferevent_setcb(bev, tcp_read, tcp_write, tcp_event, w);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* --- sockets --- */

static int bind_socket(const char *hostport, int type, char *err, size_t errcap)
{
	char host[64];
	int port;
	if (util_split_hostport(hostport, host, sizeof host, &port) != 0) {
		snprintf(err, errcap, "listen address '%s' is not HOST:PORT", hostport);
		return -1;
	}
	struct sockaddr_storage ss;
	int sslen = sizeof ss;
	char text[80];
	snprintf(text, sizeof text, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&ss, &sslen) != 0) {
		snprintf(err, errcap, "listen address '%s' is not an IP address and port", hostport);
		return -1;
	}
	int fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
	    (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
	    bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 ||
	    (type == SOCK_STREAM && listen(fd, 1024) != 0)) {
		snprintf(err, errcap, "cannot listen on %s (%s): %s", hostport, type == SOCK_STREAM ? "TCP" : "UDP",
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Stop a started worker's loop. Not event_base_loopbreak from here: a
 * loop that has not begun yet clears the break when it does (libevent),
 * and the worker would run on (a SIGTERM just after start hung the
 * stop); an active event stays active until the loop runs it. */
static void worker_stop(worker *w)
{
	event_active(w->stop_ev, EV_READ, 0); /* (thread-safe: evthread_use_pthreads) */
}

static void *worker_run(void *arg)
{
	worker *w = arg;
	event_base_dispatch(w->base);
	return NULL;
}

static void worker_free(worker *w)
{
	for (int i = 0; i < TCP_MAX_CONNS; i++)
		if (w->conn[i])
			bufferevent_free(w->conn[i]);
	if (w->stop_ev)
		event_free(w->stop_ev);
	for (int i = 0; i < w->nsock; i++) {
		if (w->udp_ev[i])
			event_free(w->udp_ev[i]);
		if (w->lis[i])
			evconnlistener_free(w->lis[i]); /* closes its socket */
		else if (w->tcp[i] >= 0)
			close(w->tcp[i]);
		if (w->udp[i] >= 0)
			close(w->udp[i]);
	}
	if (w->base)
		event_base_free(w->base);
	dns_rrl_free(&w->rrl);
	dnssec_signer_free(&w->signer);
}


static volatile sig_atomic_t stop_signal;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	stop_signal = (sig_atomic_t)sig;
	event_base_loopbreak(arg);
}

int dns_server_main(const config *cfg, const dns_conf *dc, const char *name, int ready_fd)
{
	char err[512];
	log_setup("dns", log_level_parse(cfg->log_level) < 0 ? LOG_INFO : (log_level)log_level_parse(cfg->log_level));
	signal(SIGPIPE, SIG_IGN);
	const dns_server_conf *sc = dnsconf_server(dc, name);
	if (!sc) {
		fprintf(stderr, "tandem: %s: no [dns %s] section\n", cfg->path, name);
		return 1;
	}
	if (dc->nzones == 0) {
		fprintf(stderr, "tandem: %s: no [zone ...] section: nothing to serve\n", cfg->path);
		return 1;
	}
	privdrop drop;
	if (privdrop_plan(cfg->user, cfg->user_given, &drop, err, sizeof err) != 0) {
		fprintf(stderr, "tandem: %s\n", err);
		return 1;
	}
	evthread_use_pthreads();
	dns_srv srv = {.dc = dc, .sc = sc, .nworkers = sc->threads};
	{
		static secrets sec; /* (large; read once) */
		if (secrets_load(cfg->secrets_file, &sec, err, sizeof err) != 0) {
			fprintf(stderr, "tandem: %s\n", err);
			return 1;
		}
		int krc = dns_cookie_key_derive(sec.response_key, sizeof sec.response_key, &srv.cookie_key);
		OPENSSL_cleanse(&sec, sizeof sec);
		if (krc != 0) {
			fprintf(stderr, "tandem: cannot derive the DNS cookie secret\n");
			return 1;
		}
	}
	/* the secondaries' TSIG secrets, from the same file */
	memcpy(srv.secondaries, sc->secondaries, sizeof srv.secondaries);
	if (dns_xfr_load_keys(cfg->secrets_file, srv.secondaries, sc->nsecondaries, err, sizeof err) != 0) {
		fprintf(stderr, "tandem: %s\n", err);
		return 1;
	}
	/* the signed zones' keys, from the same file, before privileges go */
	bool signing = false;
	for (int i = 0; i < dc->nzones; i++) {
		if (!dns_zone_dnssec(dc->zones[i]))
			continue;
		dnssec_keys *keys;
		if (dnssec_keys_load(cfg->secrets_file, dns_zone_origin(dc->zones[i]), &keys, err, sizeof err) != 0) {
			fprintf(stderr, "tandem: %s\n", err);
			return 1;
		}
		dns_zone_set_keys(dc->zones[i], keys);
		signing = true;
	}
	srv.workers = calloc((size_t)sc->threads, sizeof *srv.workers);
	struct event_base *main_base = event_base_new();
	int status = 1;
	if (!srv.workers || !main_base) {
		fprintf(stderr, "tandem: out of memory\n");
		goto out;
	}
	for (int t = 0; t < srv.nworkers; t++) {
		worker *w = &srv.workers[t];
		w->srv = &srv;
		w->rand = (uint32_t)(util_mono_us() * 2654435761u) ^ (uint32_t)(t + 1) * 0x9e3779b9u;
		if (!w->rand)
			w->rand = 1;
		for (int i = 0; i < DNSCONF_MAX_LISTEN; i++)
			w->udp[i] = w->tcp[i] = -1;
		w->base = event_base_new();
		w->rrl = dns_rrl_new(16384, (unsigned)sc->rrl_rate, (unsigned)sc->rrl_slip);
		if (signing)
			w->signer = dnssec_signer_new(DNSSEC_CACHE_DEFAULT);
		if (w->base)
			w->stop_ev = event_new(w->base, -1, 0, on_stop, w->base);
		if (!w->base || !w->stop_ev || !w->rrl || (signing && !w->signer)) {
			fprintf(stderr, "tandem: cannot create an event loop\n");
			goto out;
		}
		for (int i = 0; i < sc->nlisten; i++) {
			w->nsock = i + 1;
			w->udp[i] = bind_socket(sc->listen[i], SOCK_DGRAM, err, sizeof err);
			if (w->udp[i] >= 0)
				w->tcp[i] = bind_socket(sc->listen[i], SOCK_STREAM, err, sizeof err);
			if (w->udp[i] < 0 || w->tcp[i] < 0) {
				fprintf(stderr, "tandem: %s\n", err);
				goto out;
			}
			w->udp_ev[i] = event_new(w->base, w->udp[i], EV_READ | EV_PERSIST, udp_read, w);
			w->lis[i] = evconnlistener_new(w->base, tcp_accept, w, LEV_OPT_CLOSE_ON_FREE, -1, w->tcp[i]);
			if (!w->udp_ev[i] || event_add(w->udp_ev[i], NULL) != 0 || !w->lis[i]) {
				fprintf(stderr, "tandem: out of memory\n");
				goto out;
			}
		}
	}
	/* the checker's CA and metrics socket, before privileges go */
	if (dc->regions.n > 0 || sc->metrics_listen[0]) {
		srv.health = dns_health_new(cfg, dc, sc, err, sizeof err);
		if (!srv.health) {
			fprintf(stderr, "tandem: %s\n", err);
			goto out;
		}
	}
	if (privdrop_apply(&drop, err, sizeof err) != 0) {
		fprintf(stderr, "tandem: %s\n", err);
		goto out;
	}
	if (!drop.drop && drop.why[0])
		log_info("%s", drop.why);
	struct event *sigterm = evsignal_new(main_base, SIGTERM, on_signal, main_base);
	struct event *sigint = evsignal_new(main_base, SIGINT, on_signal, main_base);
	if (!sigterm || !sigint || event_add(sigterm, NULL) != 0 || event_add(sigint, NULL) != 0) {
		fprintf(stderr, "tandem: cannot watch signals\n");
		if (sigterm)
			event_free(sigterm);
		if (sigint)
			event_free(sigint);
		goto out;
	}
	for (int t = 0; t < srv.nworkers; t++) {
		if (pthread_create(&srv.workers[t].thread, NULL, worker_run, &srv.workers[t]) != 0) {
			fprintf(stderr, "tandem: cannot start a thread\n");
			for (int k = 0; k < t; k++)
				worker_stop(&srv.workers[k]);
			event_free(sigterm);
			event_free(sigint);
			goto out;
		}
		srv.workers[t].started = true;
	}
	if (srv.health && dns_health_start(srv.health) != 0) {
		fprintf(stderr, "tandem: cannot start the health checks' thread\n");
		for (int k = 0; k < srv.nworkers; k++)
			worker_stop(&srv.workers[k]);
		event_free(sigterm);
		event_free(sigint);
		goto out;
	}
	buf zones;
	buf_init(&zones, 4096);
	for (int i = 0; i < dc->nzones; i++) {
		char z[4 * DNS_NAME_MAX + 2];
		dns_name_to_text(dns_zone_origin(dc->zones[i]), z, sizeof z);
		buf_printf(&zones, "%s%s", i ? " " : "", z); /* (cut at 4 KiB: a log line) */
	}
	log_info("dns %s serving %.*s on %s%s (UDP and TCP, %d thread%s)", sc->name, (int)zones.len,
		 zones.data ? zones.data : "", sc->listen[0], sc->nlisten > 1 ? " and more" : "", srv.nworkers,
		 srv.nworkers == 1 ? "" : "s");
	buf_free(&zones);
	if (ready_fd >= 0) {
		ssize_t unused = write(ready_fd, "ready\n", 6);
		(void)unused;
		close(ready_fd);
	}
	event_base_dispatch(main_base);
	log_info("signal %d: stopping", (int)stop_signal);
	event_free(sigterm);
	event_free(sigint);
	status = 0;
out:
	for (int t = 0; srv.workers && t < srv.nworkers; t++) {
		worker *w = &srv.workers[t];
		if (w->started) {
			worker_stop(w);
			pthread_join(w->thread, NULL);
		}
	}
	for (int t = 0; srv.workers && t < srv.nworkers; t++)
		worker_free(&srv.workers[t]);
	dns_health_free(&srv.health); /* after the workers: they read its view */
	free(srv.workers);
	OPENSSL_cleanse(&srv.cookie_key, sizeof srv.cookie_key);
	OPENSSL_cleanse(srv.secondaries, sizeof srv.secondaries);
	if (main_base)
		event_base_free(main_base);
	return status;
}
