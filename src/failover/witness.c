/* witness.c - the witness process; see witness.h. */
#include "failover/witness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/privdrop.h"
#include "core/tls.h"
#include "core/util.h"
#include "failover/ballot.h"
#include "failover/voter.h"
#include "http/server.h"

typedef struct witness {
	const config *cfg;
	struct event_base *base;
	http_server *server;
	voter *voter;
	struct event *sigterm, *sigint, *log_timer;
	uint64_t leases_granted, leases_refused, votes_granted, votes_refused;
} witness;

static bool peer_is_region(const witness *w, const char *peer)
{
	return peer && config_region_find(w->cfg, peer) != NULL;
}

static void witness_on_request(http_request *req, void *arg)
{
	witness *w = arg;
	const http_message *m = http_request_message(req);
	const char *peer = http_request_peer_name(req);
	bool region = peer_is_region(w, peer);
	bool admin = peer && strcmp(peer, "admin") == 0;
	if (!region && !admin) {
		log_warn("refused a peer without a known certificate name");
		ballot_error(req, 403, "forbidden", "unknown peer");
		return;
	}
	ballot b;
	voter_answer a;
	if (strcmp(m->target, "/internal/v1/status") == 0 && strcmp(m->method, "GET") == 0) {
		char vs[512], json[768];
		voter_status(w->voter, vs, sizeof vs);
		snprintf(json, sizeof json,
			 "{\"witness\":true,%s,\"leases\":{\"granted\":%llu,\"refused\":%llu},"
			 "\"votes\":{\"granted\":%llu,\"refused\":%llu},\"time_ms\":%lld}",
			 vs, (unsigned long long)w->leases_granted, (unsigned long long)w->leases_refused,
			 (unsigned long long)w->votes_granted, (unsigned long long)w->votes_refused,
			 (long long)util_now_ms());
		http_response_header(req, "Content-Type", "application/json");
		http_respond(req, 200, json, strlen(json));
		return;
	}
	if (!region) {
		ballot_error(req, 403, "forbidden", "only regions vote and take leases");
		return;
	}
	if (strcmp(m->target, "/internal/v1/lease") == 0 && strcmp(m->method, "POST") == 0) {
		if (ballot_read(req, BALLOT_LEASE, peer, &b) != 0)
			return;
		uint64_t before = voter_promised(w->voter);
		if (voter_lease(w->voter, b.epoch, b.who, &a) != 0) /* answered 503 io: nothing granted */
			log_error("refused a lease to %s in epoch %llu: the voter state cannot be persisted", b.who,
				  (unsigned long long)b.epoch);
		if (a.granted) {
			w->leases_granted++;
			if (b.epoch > before)
				log_info("lease granted to %s in epoch %llu", b.who, (unsigned long long)b.epoch);
		} else {
			w->leases_refused++;
		}
		ballot_answer(req, &a, b.boot_id);
		return;
	}
	if (strcmp(m->target, "/internal/v1/vote") == 0 && strcmp(m->method, "POST") == 0) {
		if (ballot_read(req, BALLOT_VOTE, peer, &b) != 0)
			return;
		/* the witness holds no data: it never finds a candidate behind */
		if (voter_vote(w->voter, b.epoch, b.who, false, b.pre, b.force, &a) != 0) /* 503 io */
			log_error("refused a vote to %s in epoch %llu: the voter state cannot be persisted", b.who,
				  (unsigned long long)b.epoch);
		if (!b.pre) {
			if (a.granted) {
				w->votes_granted++;
				log_info("voted for %s in epoch %llu%s", b.who, (unsigned long long)b.epoch,
					 b.force ? " (forced)" : "");
			} else {
				w->votes_refused++;
				log_info("refused %s a vote in epoch %llu: %s", b.who, (unsigned long long)b.epoch,
					 a.reason);
			}
		}
		ballot_answer(req, &a, b.boot_id);
		return;
	}
	ballot_error(req, 404, "not_found", "no such witness route");
}

static void witness_signal(evutil_socket_t sig, short what, void *arg)
{
	witness *w = arg;
	log_info("signal %d: stopping", (int)sig);
	event_base_loopexit(w->base, NULL);
}

static void witness_flush_logs(evutil_socket_t fd, short what, void *arg)
{
	log_flush();
}

int witness_main(const config *cfg, int ready_fd)
{
	witness w = {.cfg = cfg};
	char err[1024];
	int status = 1;
	SSL_CTX *ssl = NULL;
	log_setup("witness", log_level_parse(cfg->log_level) < 0 ? LOG_INFO
								 : (log_level)log_level_parse(cfg->log_level));
	signal(SIGPIPE, SIG_IGN);
	if (!cfg->witness.listen[0]) {
		fprintf(stderr, "tandem: %s: no [witness] section with listen\n", cfg->path);
		return 1;
	}
	umask(077); /* voter.json: 0600 */
	privdrop drop; /* as the regions: see core/privdrop.h */
	if (privdrop_plan(cfg->user, cfg->user_given, &drop, err, sizeof err) != 0) {
		fprintf(stderr, "tandem: %s\n", err);
		return 1;
	}
	if (privdrop_make_dir(&drop, cfg->witness.data_dir) != 0) {
		fprintf(stderr, "tandem: %s: cannot create: %m\n", cfg->witness.data_dir);
		return 1;
	}
	char path[CONFIG_PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/voter.json", cfg->witness.data_dir);
	w.voter = voter_open(path, &cfg->failover, err, sizeof err);
	if (!w.voter) {
		fprintf(stderr, "tandem: %s\n", err);
		return 1;
	}
	ssl = tls_server_new(cfg->witness.tls_cert, cfg->witness.tls_key, cfg->ca_file, err, sizeof err);
	w.base = event_base_new();
	if (!ssl || !w.base) {
		fprintf(stderr, "tandem: %s\n", ssl ? "cannot create the event loop" : err);
		goto out;
	}
	http_server_config scfg = {
		/* small messages (votes) from two regions: tight bounds, and a
		 * per-address cap so one address cannot take all 256 connections */
		.limits = {.max_header_bytes = 16384, .max_headers = 100, .max_body_bytes = 65536,
			   .max_target_bytes = 1024},
		.header_timeout_ms = cfg->limits.header_timeout_ms,
		.idle_timeout_ms = cfg->limits.idle_timeout_ms,
		.body_timeout_ms = cfg->limits.body_timeout_ms,
		.write_timeout_ms = cfg->limits.write_timeout_ms,
		.max_unsent_bytes = 1024 * 1024,
		.max_buffered_bytes = 64 * 1024 * 1024,
		.max_connections = 256,
		.max_connections_per_address = 64,
		.ssl_ctx = ssl,
	};
	http_handlers h = {.on_request = witness_on_request, .arg = &w};
	w.server = http_server_new(w.base, &scfg, &h);
	if (!w.server || http_server_listen(w.server, cfg->witness.listen) != 0) {
		fprintf(stderr, "tandem: cannot listen on %s\n", cfg->witness.listen);
		goto out;
	}
	/* bound and keys read: the votes' directory to the user, then drop */
	if (privdrop_own(&drop, cfg->witness.data_dir, err, sizeof err) != 0 ||
	    privdrop_apply(&drop, err, sizeof err) != 0 ||
	    (drop.drop && privdrop_check_dir(cfg->witness.data_dir, err, sizeof err) != 0)) {
		fprintf(stderr, "tandem: %s\n", err);
		goto out;
	}
	if (drop.drop)
		log_info("running as user %s (uid %d, gid %d)", drop.user, (int)drop.uid, (int)drop.gid);
	else if (geteuid() == 0 && cfg->user_given) /* asked for explicitly */
		log_info("running as root: %s", drop.why);
	else if (geteuid() == 0)
		log_warn("running as root: %s", drop.why);
	w.sigterm = evsignal_new(w.base, SIGTERM, witness_signal, &w);
	w.sigint = evsignal_new(w.base, SIGINT, witness_signal, &w);
	w.log_timer = event_new(w.base, -1, EV_PERSIST, witness_flush_logs, &w);
	struct timeval every = {0, 100000};
	if (!w.sigterm || !w.sigint || !w.log_timer || evsignal_add(w.sigterm, NULL) != 0 ||
	    evsignal_add(w.sigint, NULL) != 0 || evtimer_add(w.log_timer, &every) != 0) {
		/* out of memory before serving anything: no witness rather than
		 * one that cannot stop or flush its log */
		fprintf(stderr, "tandem: out of memory setting up the witness's events\n");
		goto out;
	}
	log_info("witness serving https://%s (promised epoch %llu, pid %d)", cfg->witness.listen,
		 (unsigned long long)voter_promised(w.voter), (int)getpid());
	if (ready_fd >= 0) {
		ssize_t unused = write(ready_fd, "ready\n", 6);
		(void)unused;
		close(ready_fd);
	}
	event_base_dispatch(w.base);
	status = 0;
out:
	http_server_free(&w.server);
	if (w.sigterm)
		event_free(w.sigterm);
	if (w.sigint)
		event_free(w.sigint);
	if (w.log_timer)
		event_free(w.log_timer);
	log_flush();
	voter_free(&w.voter);
	SSL_CTX_free(ssl);
	if (w.base)
		event_base_free(w.base);
	return status;
}
