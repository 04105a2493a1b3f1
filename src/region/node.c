/*
 * node.c - the region node process: set up from the config, serve, and stop
 * gracefully.
 *
 * Start: secrets -> database (open, migrate) -> writer thread -> reader
 * threads (lists) -> hashing pool -> TLS -> listen (API, then /metrics) ->
 * drop root (when started as root: the data directory handed over to
 * [deployment] user, then setgroups/setgid/setuid; core/privdrop.h) ->
 * "ready". Files are created mode 0600 (umask 077).
 * SIGTERM/SIGINT: stop accepting, let the
 * requests in flight finish (their writes are committed and answered), then
 * drain the writer and exit 0. A second signal, or shutdown_timeout_ms,
 * ends the process at once; nothing acknowledged is lost either way, since
 * an answer is only sent after its commit is on disk.
 */
#include <argon2.h>
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/thread.h>

#include "core/err.h"
#include "core/log.h"
#include "core/looplag.h"
#include "core/privdrop.h"
#include "core/tls.h"
#include "core/util.h"
#include "objects/files.h"
#include "objects/objects.h"
#include "objects/orepl.h"
#include "region/cors.h"
#include "region/internal.h"
#include "region/region.h"

/* The main loop ends here only. The flag outlives the loop call that
 * sees the exit: a signal handled during start-up's wait for the first
 * lease (a non-blocking loop) must not leave event_base_dispatch() to run
 * until the shutdown timeout (a lone region took 10 s to stop). */
static void node_exit_loop(region *rg)
{
	rg->loop_done = true;
	event_base_loopexit(rg->base, NULL);
}

static void node_stop_loop(void *arg)
{
	node_exit_loop(arg);
}

static void node_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	region *rg = arg;
	log_warn("shutdown timeout: closing the remaining connections");
	node_exit_loop(rg);
}

static void node_signal(evutil_socket_t sig, short what, void *arg)
{
	region *rg = arg;
	if (rg->shutting_down) {
		log_warn("second signal: stopping now");
		node_exit_loop(rg);
		return;
	}
	rg->shutting_down = true;
	log_info("signal %d: graceful shutdown (finishing requests in flight)", (int)sig);
	/* replication goes on until the API has drained: forwarded writes in
	 * flight still need the link */
	int ms = rg->cfg->limits.shutdown_timeout_ms;
	struct timeval tv = util_timeval_ms(ms);
	evtimer_add(rg->shutdown_timer, &tv);
	http_server_shutdown(rg->server, node_stop_loop, rg);
}

static int purge_write(db_conn *db, void *arg)
{
	region *rg = arg;
	if (rg->capture && !capture_batch_active(rg->capture))
		return 0; /* no longer the primary: its deletions are the new primary's */
	return idempotency_purge(db, util_now_ms() - (int64_t)rg->cfg->auth.idempotency_ttl_s * 1000);
}

static void purge_done(void *arg, int rc, uint64_t seq)
{
	if (rc != 0)
		log_warn("idempotency key purge failed: %s", err_str(rc));
}

static void node_flush_logs(evutil_socket_t fd, short what, void *arg)
{
	log_flush();
}

/* Heap memory freed after a burst (the object store's 1-2 MiB buffers live
 * in the heap, mallopt in node_run) goes back to the system every
 * NODE_TRIM_S: M_TRIM_THRESHOLD only trims a heap's top, this also
 * releases free pages in its middle. Under steady traffic the buffers are
 * faulted in again once per period, not once per request. */
#define NODE_TRIM_S 10
static void node_trim(evutil_socket_t fd, short what, void *arg)
{
	malloc_trim(0);
}

static void node_purge(evutil_socket_t fd, short what, void *arg)
{
	region *rg = arg;
	if (!repl_is_primary(rg->repl))
		return; /* the primary's deletions replicate here */
	committer_submit(rg->writer, purge_write, purge_done, rg);
}

/* A batch with this position is durable (loop thread). */
static void node_committed(void *arg, uint64_t seq)
{
	region *rg = arg;
	if (rg->repl)
		repl_on_committed(rg->repl, seq);
}

static int node_fail(const char *fmt, const char *detail)
{
	fprintf(stderr, "tandem region: ");
	fprintf(stderr, fmt, detail);
	fprintf(stderr, "\n");
	return 1;
}

static bool node_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return strcmp(host, "localhost") == 0;
}

/*
 * The /metrics listener: plain HTTP, small limits (a scraper sends a few
 * headers and no body), few connections. 0, or -1 with err set (nothing
 * left listening; rg->metrics_server is freed by the caller's cleanup).
 */
static int node_listen_metrics(region *rg, char *err, size_t errcap)
{
	const char *addr = rg->self->metrics_listen;
	http_server_config mcfg = {
		.limits = {.max_header_bytes = 8192, .max_headers = 64, .max_body_bytes = 0},
		.header_timeout_ms = 5000,
		.idle_timeout_ms = 60000, /* above Prometheus' usual 15 to 60 s interval */
		.max_connections = 16,
		.ssl_ctx = NULL,
		.common_headers = NULL,
	};
	http_handlers mh = {.on_request = metrics_on_request, .arg = rg};
	rg->metrics_server = http_server_new(rg->base, &mcfg, &mh);
	if (!rg->metrics_server) {
		snprintf(err, errcap, "out of memory");
		return -1;
	}
	if (http_server_listen(rg->metrics_server, addr) != 0) {
		snprintf(err, errcap, "cannot listen on %s (metrics_listen): %s", addr, strerror(errno));
		return -1;
	}
	char host[64];
	int port;
	if (util_split_hostport(addr, host, sizeof host, &port) == 0 && !node_is_loopback(host))
		log_warn("metrics_listen %s is not a loopback address: /metrics has no TLS and no "
			 "authentication, keep that address off the internet", addr);
	log_info("serving http://%s/metrics", addr);
	return 0;
}

/* The link's thread: an object replication request for the object store
 * (objects/orepl.h), or ERR_AGAIN when it does not serve (not started yet,
 * stopping): the link answers 503 and the other region retries. */
static int node_objects_request(http_request *req, void *arg)
{
	region *rg = arg;
	pthread_mutex_lock(&rg->store_lock);
	int rc = rg->store ? objects_link_request(rg->store, req) : ERR_AGAIN;
	pthread_mutex_unlock(&rg->store_lock);
	return rc;
}

/* Is this region the records' primary now (any thread: the published view)? */
static bool node_is_primary(void *arg)
{
	region *rg = arg;
	return repl_is_primary(rg->repl);
}

/* The object store's replication figures (zero without one), any thread. */
void node_objects_stats(region *rg, orepl_stats *st)
{
	pthread_mutex_lock(&rg->store_lock);
	objects_repl_stats(rg->store, st);
	pthread_mutex_unlock(&rg->store_lock);
}

/* The status's "objects" fields (the link's thread): object lag next to
 * the records' lag. */
static void node_status_extra(buf *out, void *arg)
{
	orepl_stats st;
	node_objects_stats(arg, &st);
	buf_printf(out, "\"objects\":{\"replicated\":%s,\"pending\":%lld,\"pending_bytes\":%lld,"
		   "\"lag_seconds\":%.3f,\"shipped\":%llu,\"failed\":%llu,\"applied\":%llu,\"repairs\":%llu},",
		   st.enabled ? "true" : "false", (long long)st.pending, (long long)st.pending_bytes,
		   (double)st.lag_ms / 1000.0, (unsigned long long)st.shipped, (unsigned long long)st.failed,
		   (unsigned long long)st.applied, (unsigned long long)st.repairs);
}

int region_main(const config *cfg, const char *name, int ready_fd)
{
	region rg_storage;
	region *rg = &rg_storage;
	memset(rg, 0, sizeof *rg);
	pthread_mutex_init(&rg->store_lock, NULL);
	char err[1024];
	int status = 1;
	SSL_CTX *ssl = NULL;
	char component[64];
	objects *store = NULL; /* the S3 API: its own thread (objects/objects.h) */

	rg->cfg = cfg;
	rg->self = config_region_find(cfg, name);
	if (!rg->self)
		return node_fail("no region '%s' in the config", name);
	snprintf(component, sizeof component, "region:%s", name);
	int level = log_level_parse(cfg->log_level);
	log_setup(component, level < 0 ? LOG_INFO : (log_level)level);
	log_set_region(name);
	signal(SIGPIPE, SIG_IGN);
	/* argon2id allocates its working memory (19 MiB by default) per hash:
	 * keep such blocks mmap'd so that they go back to the system when
	 * freed (glibc would otherwise raise its threshold after the first
	 * free and keep them in the hashing threads' heaps for good). Below
	 * 4 MiB, blocks come from the heap, and free heap memory stays until
	 * 64 MiB collect at a heap's top or node_trim runs (every NODE_TRIM_S):
	 * the object store's 128 KiB - 2 MiB buffers (a PUT's body, a GET's
	 * pieces, a replication segment) are then reused from one request to
	 * the next. With a 256 KiB threshold each was a fresh mmap whose pages
	 * faulted in one by one: about 60 % of the CPU of a replicated 1 MiB
	 * object on this project's VMs, and a third of a 1 MiB GET's
	 * (docs/BENCHMARKS.md, "Object store"). */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_ARENA_MAX, 4);
	json_object_seed(0); /* before any thread uses jansson */
	umask(077); /* the database, its WAL, snapshots, quarantine files: 0600 */
	privdrop drop;
	if (privdrop_plan(cfg->user, cfg->user_given, &drop, err, sizeof err) != 0)
		return node_fail("%s", err);

	if (secrets_load(cfg->secrets_file, &rg->secrets, err, sizeof err) != 0)
		return node_fail("%s", err);
	if (privdrop_make_dir(&drop, rg->self->data_dir) != 0) {
		snprintf(err, sizeof err, "%s: cannot create data directory: %s", rg->self->data_dir,
			 strerror(errno));
		node_fail("%s", err);
		goto out;
	}
	char db_path[CONFIG_PATH_MAX + 16];
	snprintf(db_path, sizeof db_path, "%s/tandem.db", rg->self->data_dir);

	if (evthread_use_pthreads() != 0) {
		node_fail("%s", "libevent has no thread support");
		goto out;
	}
	/* the changelist folds the add+delete of a write event within one loop
	 * turn into nothing: fewer epoll_ctl calls per request */
	struct event_config *ecfg = event_config_new();
	if (ecfg)
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	/* the artificial link delay needs timers more precise than libevent's
	 * default coarse clock (4 ms steps here) */
	if (ecfg && cfg->replication.link_delay_ms > 0)
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	rg->base = ecfg ? event_base_new_with_config(ecfg) : NULL;
	event_config_free(ecfg);
	if (!rg->base) {
		node_fail("%s", "cannot create the event loop");
		goto out;
	}
	db_conn *wdb = db_open(db_path, false, err, sizeof err);
	if (!wdb) {
		node_fail("%s", err);
		goto out;
	}
	/* replication state first: the role lives in the database (it changes
	 * at failover), the config only gives the initial one */
	char role[16] = "";
	if (capture_bootstrap(wdb, rg->self->role, err, sizeof err) != 0 ||
	    capture_read_state(wdb, role, NULL, NULL, NULL) != 0) {
		db_close(&wdb);
		node_fail("%s", err[0] ? err : "cannot read the replication state");
		goto out;
	}
	/* only the primary migrates; a secondary receives each migration
	 * through the replication log, in order with the data */
	if (strcmp(role, "primary") == 0 &&
	    db_migrate(wdb, capture_log_schema, NULL, err, sizeof err) != 0) {
		db_close(&wdb);
		node_fail("%s", err);
		goto out;
	}
	rg->capture = capture_new();
	rg->writer = committer_new(rg->base, wdb, cfg->limits.write_batch_max, cfg->limits.write_queue_max);
	if (!rg->writer || !rg->capture) {
		if (!rg->writer)
			db_close(&wdb);
		node_fail("%s", "cannot start the writer thread");
		goto out;
	}
	committer_hooks hooks = capture_hooks(rg->capture, node_committed, rg);
	committer_set_hooks(rg->writer, &hooks);
	rg->reader = db_open(db_path, true, err, sizeof err);
	if (!rg->reader) {
		node_fail("%s", err);
		goto out;
	}
	/* list queries: reader threads with their own connections (list.c) */
	rg->readers = list_readers_new(rg, db_path, err, sizeof err);
	if (!rg->readers) {
		node_fail("%s", err);
		goto out;
	}
	rg->hashers = workers_new(rg->base, cfg->auth.hash_threads, 1024);
	{
		/* keyed table hashes: an attacker who cannot compute them cannot
		 * aim collisions or evictions at a victim's counter */
		unsigned char throttle_key[32];
		secrets_derive(&rg->secrets, "tandem throttle key v1", throttle_key);
		rg->login_limit = ratelimit_new(65536, throttle_key);
		rg->signup_limit = ratelimit_new(16384, throttle_key);
		explicit_bzero(throttle_key, sizeof throttle_key);
		secrets_derive(&rg->secrets, "tandem idempotency scope v1", rg->idem_key);
	}
	rg->metrics = metrics_new();
	rg->cors = cors_new(cfg->api.cors_origins);
	if (!rg->hashers || !rg->login_limit || !rg->signup_limit || !rg->metrics || !rg->cors) {
		node_fail("%s", "out of memory");
		goto out;
	}
	/* the dummy hash that unknown emails are verified against */
	{
		unsigned char salt[16], pw[16];
		util_random(salt, sizeof salt);
		util_random(pw, sizeof pw);
		if (argon2id_hash_encoded(cfg->auth.argon2_t_cost, cfg->auth.argon2_m_cost_kib,
					  cfg->auth.argon2_parallelism, pw, sizeof pw, salt, sizeof salt,
					  32, rg->dummy_hash, sizeof rg->dummy_hash) != ARGON2_OK) {
			node_fail("%s", "argon2id does not work with the configured parameters");
			goto out;
		}
	}

	ssl = tls_server_new(rg->self->tls_cert, rg->self->tls_key, NULL, err, sizeof err);
	if (!ssl) {
		node_fail("%s", err);
		goto out;
	}
	if (rg->self->link_listen[0]) {
		/* the link: mutual TLS with the deployment's CA, both ways */
		rg->link_server_ctx = tls_server_new(rg->self->tls_cert, rg->self->tls_key, cfg->ca_file,
						     err, sizeof err);
		if (rg->link_server_ctx)
			rg->link_client_ctx = tls_client_new(cfg->ca_file, rg->self->tls_cert,
							     rg->self->tls_key, err, sizeof err);
		if (!rg->link_server_ctx || !rg->link_client_ctx) {
			node_fail("%s", err);
			goto out;
		}
	}
	const config_region *peer = NULL;
	for (int i = 0; i < cfg->region_count; i++)
		if (&cfg->regions[i] != rg->self) {
			peer = &cfg->regions[i];
			break;
		}
	repl_env env = {
		.base = rg->base,
		.cfg = cfg,
		.self = rg->self,
		.peer = peer,
		.reader = rg->reader,
		.db_path = db_path,
		.writer = rg->writer,
		.capture = rg->capture,
		.link_server_ctx = rg->link_server_ctx,
		.link_client_ctx = rg->link_client_ctx,
		.api_request = api_on_link_request,
		.api_arg = rg,
		.objects_request = node_objects_request,
		.objects_arg = rg,
		.objects_body_max = ORPL_BODY_MAX,
		.status_extra = node_status_extra,
	};
	rg->repl = repl_new(&env, err, sizeof err);
	if (!rg->repl) {
		node_fail("%s", err);
		goto out;
	}
	char common[128];
	snprintf(common, sizeof common, "X-Tandem-Region: %s\r\n", name);
	http_server_config scfg = {
		.limits = {.max_header_bytes = cfg->limits.max_header_bytes,
			   .max_headers = cfg->limits.max_headers,
			   .max_body_bytes = cfg->limits.max_body_bytes,
			   .max_target_bytes = cfg->limits.max_url_bytes},
		.header_timeout_ms = cfg->limits.header_timeout_ms,
		.idle_timeout_ms = cfg->limits.idle_timeout_ms,
		.body_timeout_ms = cfg->limits.body_timeout_ms,
		.write_timeout_ms = cfg->limits.write_timeout_ms,
		.max_unsent_bytes = cfg->limits.max_unsent_bytes,
		.max_buffered_bytes = cfg->limits.max_buffered_bytes,
		.max_connections = cfg->limits.max_connections,
		.max_connections_per_address = cfg->limits.max_connections_per_address,
		.ssl_ctx = ssl,
		.common_headers = common,
	};
	http_handlers handlers = {.on_head = api_on_head, .on_request = api_on_request, .arg = rg};
	rg->server = http_server_new(rg->base, &scfg, &handlers);
	if (!rg->server) {
		node_fail("%s", "out of memory");
		goto out;
	}
	if (http_server_listen(rg->server, rg->self->api_listen) != 0) {
		snprintf(err, sizeof err, "cannot listen on %s: %s", rg->self->api_listen, strerror(errno));
		node_fail("%s", err);
		goto out;
	}
	if (rg->self->metrics_listen[0] && node_listen_metrics(rg, err, sizeof err) != 0) {
		node_fail("%s", err);
		goto out;
	}
	if (repl_start(rg->repl, err, sizeof err) != 0) {
		node_fail("%s", err);
		goto out;
	}
	/* the object store binds and opens its files now, while we may; a
	 * secrets file from before it (no [objects] KEK) keeps the rest working */
	if (rg->self->s3_listen[0] && rg->secrets.kek_current < 0)
		log_warn("s3_listen %s not served: the secrets file has no [objects] kek_id and kek.ID "
			 "(docs/OBJECTS.md)", rg->self->s3_listen);
	else if (rg->self->s3_listen[0] &&
		 objects_start(cfg, rg->self, &rg->secrets, &store, err, sizeof err) != 0) {
		node_fail("%s", err);
		goto out;
	}
	/* the ports are bound, the keys and secrets read, the database open:
	 * nothing left that needs root. What the region creates from now on
	 * (WAL, snapshots, quarantine files) goes into its data directory,
	 * handed over first, while we still may. */
	if (privdrop_own(&drop, rg->self->data_dir, err, sizeof err) != 0 ||
	    privdrop_apply(&drop, err, sizeof err) != 0 ||
	    (drop.drop && privdrop_check_dir(rg->self->data_dir, err, sizeof err) != 0)) {
		node_fail("%s", err);
		goto out;
	}
	if (store)
		objects_set_primary_fn(store, node_is_primary, rg);
	if (store && objects_run(store) != 0) {
		node_fail("%s", "cannot start the object store's thread");
		goto out;
	}
	pthread_mutex_lock(&rg->store_lock);
	rg->store = store;
	pthread_mutex_unlock(&rg->store_lock);
	/* the files API (/v1/files) on top of it: without an object store its
	 * routes answer 503 files_unavailable */
	if (store && files_new(store, rg->base, cfg, name, &rg->files, err, sizeof err) != 0) {
		node_fail("%s", err);
		goto out;
	}
	secrets_derive(&rg->secrets, "tandem files idempotency v1", rg->files_idem_key);
	if (store)
		files_s3_key(&rg->secrets, name, rg->files_key_id, rg->files_secret);
	if (drop.drop)
		log_info("running as user %s (uid %d, gid %d)", drop.user, (int)drop.uid, (int)drop.gid);
	else if (geteuid() == 0 && cfg->user_given) /* asked for explicitly */
		log_info("running as root: %s", drop.why);
	else if (geteuid() == 0)
		log_warn("running as root: %s", drop.why);
	rg->sigterm = evsignal_new(rg->base, SIGTERM, node_signal, rg);
	rg->sigint = evsignal_new(rg->base, SIGINT, node_signal, rg);
	rg->shutdown_timer = evtimer_new(rg->base, node_shutdown_timeout, rg);
	rg->purge_timer = event_new(rg->base, -1, EV_PERSIST, node_purge, rg);
	rg->log_timer = event_new(rg->base, -1, EV_PERSIST, node_flush_logs, rg);
	struct timeval log_every = {0, 100000};
	evtimer_add(rg->log_timer, &log_every);
	rg->trim_timer = event_new(rg->base, -1, EV_PERSIST, node_trim, rg);
	struct timeval trim_every = {NODE_TRIM_S, 0};
	if (rg->trim_timer)
		evtimer_add(rg->trim_timer, &trim_every);
	rg->api_lag = looplag_new(rg->base, 50, NULL, NULL); /* NULL: no histogram, said once */
	if (!rg->api_lag)
		log_warn("out of memory: tandem_api_loop_lag_seconds stays empty");
	struct timeval purge_every = {600, 0};
	evsignal_add(rg->sigterm, NULL);
	evsignal_add(rg->sigint, NULL);
	evtimer_add(rg->purge_timer, &purge_every);

	/* allowed from 2 s for tests (core/config.c), but no deployment wants it */
	if (cfg->auth.access_token_ttl_s < 60)
		log_warn("access_token_ttl is %d s: clients must refresh that often, and a difference of "
			 "that order between the regions' clocks ends tokens early (under 60 s is for tests)",
			 cfg->auth.access_token_ttl_s);
	log_info("serving https://%s (role %s, epoch %llu, position %llu, schema %d, pid %d)",
		 rg->self->api_listen, repl_is_primary(rg->repl) ? "primary" : "secondary",
		 (unsigned long long)repl_epoch(rg->repl), (unsigned long long)repl_position(rg->repl),
		 db_schema_version(rg->reader), (int)getpid());
	/* a primary is ready once it may take writes: its first lease round
	 * (bounded: without a majority it serves reads and says so) */
	int64_t lease_deadline = util_mono_us() + 2000000;
	while (repl_is_primary(rg->repl) && !repl_lease_valid(rg->repl) && util_mono_us() < lease_deadline &&
	       !rg->shutting_down) {
		/* the lease is the control thread's: look at its view now and then */
		event_base_loop(rg->base, EVLOOP_NONBLOCK);
		usleep(2000);
	}
	if (repl_is_primary(rg->repl) && !repl_lease_valid(rg->repl) && !rg->shutting_down)
		log_warn("no lease yet (the witness and the other region are unreachable): writes are refused "
			 "until a majority answers");
	if (ready_fd >= 0) {
		ssize_t unused = write(ready_fd, "ready\n", 6);
		(void)unused; /* the parent notices a missing line by itself */
		close(ready_fd);
	}
	if (!rg->loop_done)
		event_base_dispatch(rg->base);
	status = 0;
	log_info("stopped");
out:
	/* order: hashing jobs may still submit writes, and write completions
	 * answer requests, so the pool goes first, then the writer (which
	 * commits and answers everything queued), and the server last; list
	 * queries still running are interrupted and answered (503). The
	 * metrics listener reads all of them: it goes before any */
	/* the files API's pool first (no blob I/O left), then the object
	 * store (its writer queues the last completions to this loop), then
	 * those completions (objects/files.h, "Stop order") */
	files_stop(rg->files);
	pthread_mutex_lock(&rg->store_lock);
	rg->store = NULL; /* the link's object requests get 503 from here on */
	pthread_mutex_unlock(&rg->store_lock);
	objects_stop(&store); /* graceful: its requests in flight finish first */
	files_free(&rg->files);
	explicit_bzero(rg->files_secret, sizeof rg->files_secret);
	explicit_bzero(rg->files_idem_key, sizeof rg->files_idem_key);
	http_server_free(&rg->metrics_server);
	if (rg->repl)
		repl_shutdown(rg->repl);
	readers_free(&rg->readers);
	workers_free(&rg->hashers);
	committer_free(&rg->writer);
	repl_free(&rg->repl);
	http_server_free(&rg->server);
	db_close(&rg->reader);
	capture_free(&rg->capture);
	SSL_CTX_free(rg->link_server_ctx);
	SSL_CTX_free(rg->link_client_ctx);
	if (rg->sigterm)
		event_free(rg->sigterm);
	if (rg->sigint)
		event_free(rg->sigint);
	if (rg->shutdown_timer)
		event_free(rg->shutdown_timer);
	if (rg->purge_timer)
		event_free(rg->purge_timer);
	if (rg->log_timer)
		event_free(rg->log_timer);
	if (rg->trim_timer)
		event_free(rg->trim_timer);
	looplag_free(&rg->api_lag);
	log_flush();
	ratelimit_free(&rg->login_limit);
	ratelimit_free(&rg->signup_limit);
	explicit_bzero(rg->idem_key, sizeof rg->idem_key);
	metrics_free(&rg->metrics);
	cors_free(&rg->cors);
	SSL_CTX_free(ssl);
	if (rg->base)
		event_base_free(rg->base);
	secrets_clear(&rg->secrets);
	return status;
}
