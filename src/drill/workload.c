/*
 * workload.c - the drill's client workload: an open-loop schedule of writes
 * spread over both regions, and reads at a smaller rate per region, on its
 * own thread and libevent loop, with the project's HTTP client.
 *
 * Write i is due at start + i / rate, goes to region i % 2, carries a
 * unique marker in its data and a unique Idempotency-Key, and asks for
 * `global` durability for global_percent of the writes. It is retried with
 * the same key until acknowledged (2xx) or the run ends: after a 503 (or
 * another retryable status) once its Retry-After, bounded to 200-500 ms, has
 * passed; after a connection error or a timeout after 200 ms. Any other
 * answer (a 4xx) ends it as failed. Every attempt is recorded (drill_op),
 * and every acknowledgement with its time, position and durability.
 *
 * A write's life:
 *
 *   scheduled --> queue --(a connection is free)--> in flight --2xx--> ACKED
 *                   ^                                   |  \--4xx--> FAILED
 *                   +-------- retry heap <-- 503/error -+
 *                                          (end of run: UNACKED)
 *
 * Probing: after a region answered "unavailable" (a connection error, a
 * timeout, a 503 other than the `global` durability ones), it gets at most
 * one new attempt every 250 ms until one succeeds, so a dead region is not
 * hammered with reconnections; attempts still in flight keep running, so a
 * request hanging in a partition does not hold back the next probe.
 *
 * Threads: the workload's loop runs on its thread only; the drill's thread
 * touches the workload only through the atomic phase and counters, and
 * reads the results after workload_stop() joined the thread.
 */
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/util.h"
#include "drill/internal.h"
#include "http/client.h"

#define WORKLOAD_MAGIC 0x574c4f44u
#define READ_POOL 8
#define WRITE_TIMEOUT_MS 15000
#define READ_TIMEOUT_MS 5000
#define TICK_US 2000
#define PROBE_INTERVAL_US 250000
#define RETRY_MIN_MS 200
#define RETRY_MAX_MS 500
#define RETRY_DEFAULT_MS 300

enum { PHASE_RUN = 0, PHASE_DRAIN = 1, PHASE_STOP = 2 };

typedef struct wl_region wl_region;

typedef struct wl_conn {
	workload *w;
	wl_region *region;
	http_client *client;
	int busy;
	int kind;            /* op_kind */
	uint32_t write_index;
	int64_t send_ms;
} wl_conn;

struct wl_region {
	workload_region cfg;
	int index;
	char host[64];
	int port;
	wl_conn **writers;
	int nwriters;
	wl_conn *readers[READ_POOL];
	int nreaders;
	uint32_t *queue;     /* ring of write indices ready to be sent */
	size_t qhead, qlen, qcap;
	int inflight;
	int probing;
	int64_t next_probe_us;
	char last_acked_id[32];
	uint64_t reads_due;  /* reads scheduled so far */
	long reads_skipped;  /* due while every read connection was busy */
	char auth[1200];     /* "Authorization: Bearer ...\r\n" */
};

typedef struct retry_item {
	int64_t due_us;
	uint32_t index;
} retry_item;

struct workload {
	unsigned magic;
	workload_config cfg;
	struct event_base *base;
	struct event *tick;
	pthread_t thread;
	int thread_started;
	wl_region regions[DRILL_REGIONS];
	drill_write *writes;
	size_t total;          /* writes in the schedule */
	uint32_t next_write;   /* writes scheduled so far */
	size_t unfinished;     /* scheduled, neither acknowledged nor failed */
	drill_op *ops;
	size_t nops, capops;
	retry_item *heap;
	size_t nheap, capheap;
	int64_t start_us, start_ms;
	int64_t drain_deadline_us;
	int stopping;          /* clients being freed: ignore their callbacks */
	atomic_int phase;
	atomic_int drain_ms;
	atomic_long acked, errors, pending;
};

static int64_t wl_wall_ms(const workload *w)
{
	return w->start_ms + (util_mono_us() - w->start_us) / 1000;
}

/* ---- the retry heap (min-heap on due time) ---- */

static int heap_push(workload *w, int64_t due_us, uint32_t index)
{
	if (w->nheap == w->capheap) {
		size_t cap = w->capheap ? w->capheap * 2 : 1024;
		retry_item *h = realloc(w->heap, cap * sizeof *h);
		if (!h)
			return ERR_NOMEM;
		w->heap = h;
		w->capheap = cap;
	}
	size_t i = w->nheap++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (w->heap[parent].due_us <= due_us)
			break;
		w->heap[i] = w->heap[parent];
		i = parent;
	}
	w->heap[i] = (retry_item){due_us, index};
	return 0;
}

static retry_item heap_pop(workload *w)
{
	retry_item top = w->heap[0];
	retry_item last = w->heap[--w->nheap];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		int64_t best = last.due_us;
		if (l < w->nheap && w->heap[l].due_us < best) {
			m = l;
			best = w->heap[l].due_us;
		}
		if (r < w->nheap && w->heap[r].due_us < best)
			m = r;
		if (m == i)
			break;
		w->heap[i] = w->heap[m];
		i = m;
	}
	if (w->nheap)
		w->heap[i] = last;
	return top;
}

/* ---- queues and records ---- */

static void queue_push(wl_region *r, uint32_t index)
{
	/* every write is in at most one place: the ring never overflows */
	r->queue[(r->qhead + r->qlen) % r->qcap] = index;
	r->qlen++;
}

static uint32_t queue_pop(wl_region *r)
{
	uint32_t index = r->queue[r->qhead];
	r->qhead = (r->qhead + 1) % r->qcap;
	r->qlen--;
	return index;
}

static drill_op *op_add(workload *w)
{
	if (w->nops == w->capops) {
		size_t cap = w->capops ? w->capops * 2 : 4096;
		drill_op *o = realloc(w->ops, cap * sizeof *o);
		if (!o)
			return NULL; /* the sample is lost; counters still move */
		w->ops = o;
		w->capops = cap;
	}
	drill_op *op = &w->ops[w->nops++];
	memset(op, 0, sizeof *op);
	return op;
}

void workload_marker(const workload *w, uint32_t index, char out[48])
{
	snprintf(out, 48, "%s-%u", w->cfg.run_id, index);
}

/* The error code of an error body, "" when none. */
static void error_code(const char *body, size_t len, char *out, size_t cap)
{
	out[0] = '\0';
	json_t *j = json_loadb(body, len, 0, NULL);
	const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
	if (code)
		snprintf(out, cap, "%s", code);
	json_decref(j);
}

static int retry_after_ms(const http_message *m)
{
	size_t n;
	const char *v = http_message_field(m, "Retry-After", &n);
	int ms = RETRY_DEFAULT_MS;
	if (v && n > 0 && n < 8) {
		char text[8];
		memcpy(text, v, n);
		text[n] = '\0';
		long long s;
		if (util_parse_int(text, 0, 3600, &s) == 0)
			ms = (int)(s * 1000);
	}
	if (ms < RETRY_MIN_MS)
		ms = RETRY_MIN_MS;
	if (ms > RETRY_MAX_MS)
		ms = RETRY_MAX_MS;
	return ms;
}

static int retryable_status(int status)
{
	return status == 503 || status == 502 || status == 504 || status == 500 || status == 429 ||
	       status == 408;
}

/* ---- writes ---- */

static void write_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg);

static void send_write(wl_conn *c, uint32_t index)
{
	workload *w = c->w;
	wl_region *r = c->region;
	drill_write *wr = &w->writes[index];
	char marker[48], target[128], headers[1500], data[256];
	workload_marker(w, index, marker);
	snprintf(target, sizeof target, "/v1/collections/%s/records", r->cfg.collection);
	snprintf(headers, sizeof headers,
		 "%sContent-Type: application/json\r\nIdempotency-Key: drill-%s\r\n%s", r->auth, marker,
		 wr->global ? "X-Tandem-Durability: global\r\n" : "");
	int n = snprintf(data, sizeof data, "{\"m\":\"%s\",\"i\":%u,\"r\":\"%s\",\"g\":%s}", marker,
			 index, r->cfg.name, wr->global ? "true" : "false");
	wr->attempts++;
	c->busy = 1;
	c->kind = OP_WRITE;
	c->write_index = index;
	c->send_ms = wl_wall_ms(w);
	r->inflight++;
	int rc = http_client_request(c->client, "POST", target, headers, data, (size_t)n, 0,
				     write_answer, c);
	if (rc != 0) /* not queued: the callback will not run */
		write_answer(rc, NULL, NULL, 0, c);
}

static void write_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	wl_conn *c = arg;
	workload *w = c->w;
	wl_region *r = c->region;
	c->busy = 0;
	r->inflight--;
	if (w->stopping)
		return;
	drill_write *wr = &w->writes[c->write_index];
	int64_t now = wl_wall_ms(w);
	drill_op *op = op_add(w);
	char code[40] = "";
	if (op) {
		op->send_ms = c->send_ms;
		op->done_ms = now;
		op->write_index = c->write_index;
		op->region = (uint8_t)r->index;
		op->kind = OP_WRITE;
		op->global = wr->global;
		op->status = (int16_t)(rc == 0 ? resp->status : 0);
	}
	if (rc == 0 && resp->status >= 200 && resp->status < 300) {
		wr->state = WRITE_ACKED;
		wr->ack_ms = now;
		wr->status = (int16_t)resp->status;
		size_t n;
		const char *v = http_message_field(resp, "X-Tandem-LSN", &n);
		if (v && n < 40) {
			char lsn[40];
			memcpy(lsn, v, n);
			lsn[n] = '\0';
			long long e, s;
			if (sscanf(lsn, "%lld/%lld", &e, &s) == 2) {
				wr->lsn_epoch = e;
				wr->lsn_seq = s;
			}
		}
		v = http_message_field(resp, "Idempotent-Replayed", &n);
		wr->replayed = v && n == 4 && strncmp(v, "true", 4) == 0;
		json_t *j = json_loadb(body, len, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		if (id) {
			snprintf(wr->id, sizeof wr->id, "%s", id);
			snprintf(r->last_acked_id, sizeof r->last_acked_id, "%s", id);
		}
		json_decref(j);
		if (op)
			op->ok = 1;
		r->probing = 0;
		w->unfinished--;
		atomic_fetch_add(&w->acked, 1);
		atomic_fetch_sub(&w->pending, 1);
		return;
	}
	atomic_fetch_add(&w->errors, 1);
	int64_t delay_ms;
	if (rc == 0) {
		error_code(body, len, code, sizeof code);
		snprintf(wr->error, sizeof wr->error, "%d:%.32s", resp->status, code[0] ? code : "-");
		wr->status = (int16_t)resp->status;
		if (!retryable_status(resp->status)) { /* a refusal: retrying changes nothing */
			wr->state = WRITE_FAILED;
			w->unfinished--;
			atomic_fetch_sub(&w->pending, 1);
			if (op)
				snprintf(op->cls, sizeof op->cls, "%s", wr->error);
			return;
		}
		delay_ms = retry_after_ms(resp);
		if (strcmp(code, "replication_timeout") != 0 && strcmp(code, "replication_lag") != 0)
			r->probing = 1;
	} else {
		/* a refused or reset connection surfaces as a TLS error from the
		 * TLS bufferevent: both mean "could not talk to the region" */
		snprintf(wr->error, sizeof wr->error, "%s", rc == ERR_AGAIN ? "timeout" : "connection");
		wr->status = 0;
		delay_ms = RETRY_MIN_MS;
		r->probing = 1;
	}
	if (op)
		snprintf(op->cls, sizeof op->cls, "%s", wr->error);
	if (heap_push(w, util_mono_us() + delay_ms * 1000, c->write_index) != 0) {
		wr->state = WRITE_UNACKED; /* out of memory: give this one up */
		w->unfinished--;
		atomic_fetch_sub(&w->pending, 1);
	}
}

static wl_conn *conn_new(workload *w, wl_region *r, int timeout_ms)
{
	wl_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	http_limits limits = {65536, 200, 4 << 20, 0};
	c->w = w;
	c->region = r;
	const char *tls_name = r->cfg.tls_name[0] ? r->cfg.tls_name : r->cfg.name;
	c->client = http_client_new(w->base, w->cfg.api_ctx, r->host, r->port, tls_name, &limits, timeout_ms);
	if (!c->client) {
		free(c);
		return NULL;
	}
	return c;
}

static wl_conn *idle_writer(workload *w, wl_region *r)
{
	for (int i = 0; i < r->nwriters; i++)
		if (!r->writers[i]->busy)
			return r->writers[i];
	if (r->nwriters == w->cfg.pool_max)
		return NULL;
	wl_conn *c = conn_new(w, r, WRITE_TIMEOUT_MS);
	if (c)
		r->writers[r->nwriters++] = c;
	return c;
}

static void dispatch(workload *w, wl_region *r, int64_t now_us)
{
	while (r->qlen > 0) {
		if (r->inflight >= w->cfg.pool_max)
			return;
		if (r->probing && now_us < r->next_probe_us)
			return;
		wl_conn *c = idle_writer(w, r);
		if (!c)
			return;
		if (r->probing)
			r->next_probe_us = now_us + PROBE_INTERVAL_US;
		send_write(c, queue_pop(r));
	}
}

/* ---- reads ---- */

static void read_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	wl_conn *c = arg;
	workload *w = c->w;
	c->busy = 0;
	if (w->stopping)
		return;
	drill_op *op = op_add(w);
	if (!op)
		return;
	op->send_ms = c->send_ms;
	op->done_ms = wl_wall_ms(w);
	op->region = (uint8_t)c->region->index;
	op->kind = OP_READ;
	op->status = (int16_t)(rc == 0 ? resp->status : 0);
	if (rc == 0 && (resp->status == 200 || resp->status == 404)) {
		op->ok = 1;
		op->missing = resp->status == 404;
		return;
	}
	if (rc == 0) {
		char code[32];
		error_code(body, len, code, sizeof code);
		snprintf(op->cls, sizeof op->cls, "%d:%.31s", resp->status, code[0] ? code : "-");
	} else {
		snprintf(op->cls, sizeof op->cls, "%s", rc == ERR_AGAIN ? "timeout" : "connection");
	}
}

static void issue_read(workload *w, wl_region *r)
{
	wl_conn *c = NULL;
	for (int i = 0; i < r->nreaders && !c; i++)
		if (!r->readers[i]->busy)
			c = r->readers[i];
	if (!c && r->nreaders < READ_POOL) {
		c = conn_new(w, r, READ_TIMEOUT_MS);
		if (c)
			r->readers[r->nreaders++] = c;
	}
	if (!c) {
		r->reads_skipped++;
		return;
	}
	char target[160];
	if (r->last_acked_id[0])
		snprintf(target, sizeof target, "/v1/collections/%s/records/%s", r->cfg.collection,
			 r->last_acked_id);
	else
		snprintf(target, sizeof target, "/v1/collections/%s/records?limit=1", r->cfg.collection);
	c->busy = 1;
	c->kind = OP_READ;
	c->send_ms = wl_wall_ms(w);
	if (http_client_request(c->client, "GET", target, r->auth, NULL, 0, 0, read_answer, c) != 0)
		read_answer(ERR_NOMEM, NULL, NULL, 0, c);
}

/* ---- the loop ---- */

static int64_t write_due_us(const workload *w, uint32_t i)
{
	return w->start_us + (int64_t)((double)i * 1e6 / w->cfg.rate);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	workload *w = arg;
	int64_t now = util_mono_us();
	int phase = atomic_load(&w->phase);
	if (phase == PHASE_RUN) {
		while (w->next_write < w->total && write_due_us(w, w->next_write) <= now) {
			uint32_t i = w->next_write++;
			drill_write *wr = &w->writes[i];
			wr->index = i;
			wr->region = (uint8_t)(i % DRILL_REGIONS);
			wr->global = (uint8_t)(((uint64_t)(i + 1) * (unsigned)w->cfg.global_percent) / 100 >
					       ((uint64_t)i * (unsigned)w->cfg.global_percent) / 100);
			wr->sched_ms = w->start_ms + (write_due_us(w, i) - w->start_us) / 1000;
			wr->lsn_epoch = wr->lsn_seq = -1;
			wr->state = WRITE_PENDING;
			w->unfinished++;
			atomic_fetch_add(&w->pending, 1);
			queue_push(&w->regions[wr->region], i);
		}
		if (w->cfg.read_rate > 0) {
			for (int k = 0; k < DRILL_REGIONS; k++) {
				wl_region *r = &w->regions[k];
				/* regions read half an interval apart */
				double interval = 1e6 / w->cfg.read_rate;
				while ((double)(now - w->start_us) >=
				       ((double)r->reads_due + 0.5 * k / DRILL_REGIONS) * interval) {
					r->reads_due++;
					if ((double)(now - w->start_us) / 1e6 < w->cfg.duration_s)
						issue_read(w, r);
				}
			}
		}
	} else if (w->drain_deadline_us == 0) {
		w->drain_deadline_us = now + (int64_t)atomic_load(&w->drain_ms) * 1000;
	}
	while (w->nheap && w->heap[0].due_us <= now) {
		retry_item it = heap_pop(w);
		queue_push(&w->regions[w->writes[it.index].region], it.index);
	}
	for (int k = 0; k < DRILL_REGIONS; k++)
		dispatch(w, &w->regions[k], now);
	if (phase == PHASE_STOP ||
	    (phase == PHASE_DRAIN && (w->unfinished == 0 || now >= w->drain_deadline_us)))
		event_base_loopbreak(w->base);
}

static void *workload_thread(void *arg)
{
	workload *w = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the drill thread's */
	event_base_dispatch(w->base);
	/* stop: close every connection; in-flight answers are dropped */
	w->stopping = 1;
	for (int k = 0; k < DRILL_REGIONS; k++) {
		wl_region *r = &w->regions[k];
		for (int i = 0; i < r->nwriters; i++) {
			http_client_free(&r->writers[i]->client);
			free(r->writers[i]);
		}
		r->nwriters = 0;
		for (int i = 0; i < r->nreaders; i++) {
			http_client_free(&r->readers[i]->client);
			free(r->readers[i]);
		}
		r->nreaders = 0;
	}
	for (uint32_t i = 0; i < w->next_write; i++)
		if (w->writes[i].state == WRITE_PENDING)
			w->writes[i].state = WRITE_UNACKED;
	return NULL;
}

workload *workload_new(const workload_config *wc, char *err, size_t errcap)
{
	workload *w = calloc(1, sizeof *w);
	if (!w) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	w->magic = WORKLOAD_MAGIC;
	w->cfg = *wc;
	w->total = (size_t)wc->rate * (size_t)wc->duration_s;
	w->writes = calloc(w->total ? w->total : 1, sizeof *w->writes);
	w->base = event_base_new();
	if (!w->writes || !w->base)
		goto fail;
	w->tick = event_new(w->base, -1, EV_PERSIST, tick, w);
	if (!w->tick)
		goto fail;
	for (int k = 0; k < DRILL_REGIONS; k++) {
		wl_region *r = &w->regions[k];
		r->cfg = wc->regions[k];
		r->index = k;
		if (util_split_hostport(r->cfg.api, r->host, sizeof r->host, &r->port) != 0) {
			snprintf(err, errcap, "region %s: bad api address '%s'", r->cfg.name, r->cfg.api);
			workload_free(&w);
			return NULL;
		}
		/* (not snprintf: both fields live in *w, which -Wrestrict dislikes) */
		static const char bearer[] = "Authorization: Bearer ";
		size_t tl = strnlen(r->cfg.token, sizeof r->cfg.token - 1);
		memcpy(r->auth, bearer, sizeof bearer - 1);
		memcpy(r->auth + sizeof bearer - 1, r->cfg.token, tl);
		memcpy(r->auth + sizeof bearer - 1 + tl, "\r\n", 3);
		r->writers = calloc((size_t)wc->pool_max, sizeof *r->writers);
		r->qcap = w->total + 1;
		r->queue = calloc(r->qcap, sizeof *r->queue);
		if (!r->writers || !r->queue)
			goto fail;
	}
	return w;
fail:
	snprintf(err, errcap, "out of memory for %zu writes", w->total);
	workload_free(&w);
	return NULL;
}

int workload_start(workload *w)
{
	assert(w->magic == WORKLOAD_MAGIC);
	w->start_us = util_mono_us();
	w->start_ms = util_now_ms();
	struct timeval tv = {0, TICK_US};
	event_add(w->tick, &tv);
	if (pthread_create(&w->thread, NULL, workload_thread, w) != 0)
		return -1;
	w->thread_started = 1;
	return 0;
}

int64_t workload_start_ms(const workload *w)
{
	return w->start_ms;
}

void workload_progress(const workload *w, long *acked, long *errors, long *pending)
{
	*acked = atomic_load(&((workload *)w)->acked);
	*errors = atomic_load(&((workload *)w)->errors);
	*pending = atomic_load(&((workload *)w)->pending);
}

void workload_stop(workload *w, int drain_ms)
{
	assert(w->magic == WORKLOAD_MAGIC);
	if (!w->thread_started)
		return;
	atomic_store(&w->drain_ms, drain_ms);
	atomic_store(&w->phase, PHASE_DRAIN);
	pthread_join(w->thread, NULL);
	w->thread_started = 0;
	w->total = w->next_write;
}

const drill_write *workload_writes(const workload *w, size_t *n)
{
	*n = w->thread_started ? 0 : w->next_write;
	return w->writes;
}

const drill_op *workload_ops(const workload *w, size_t *n)
{
	*n = w->thread_started ? 0 : w->nops;
	return w->ops;
}

const workload_config *workload_config_of(const workload *w)
{
	return &w->cfg;
}

void workload_free(workload **pw)
{
	workload *w = *pw;
	if (!w)
		return;
	if (w->thread_started) {
		atomic_store(&w->phase, PHASE_STOP);
		pthread_join(w->thread, NULL);
	}
	for (int k = 0; k < DRILL_REGIONS; k++) {
		free(w->regions[k].writers);
		free(w->regions[k].queue);
	}
	if (w->tick)
		event_free(w->tick);
	if (w->base)
		event_base_free(w->base);
	free(w->writes);
	free(w->ops);
	free(w->heap);
	w->magic = 0;
	free(w);
	*pw = NULL;
}
