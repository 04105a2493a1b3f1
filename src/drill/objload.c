/*
 * objload.c - the drill's object workload: S3 PUTs and DELETEs into one
 * bucket, in both regions, signed with SigV4 by the drill itself, on a
 * thread and libevent loop of their own; and the drill thread's own S3
 * calls (creating the bucket, listing it).
 *
 * Why its own thread: a PUT body is 16 KiB..1 MiB of generated content with
 * its MD5 (the ETag that names the write) and SHA-256 (signed) computed
 * before it is sent, a few milliseconds each; on the records workload's
 * loop that would delay its 2 ms schedule and distort the records' RTO.
 *
 * Schedule (open loop, like the records): object write j is due at
 * start + j / rate and goes to region (j + j / 4) % 2 (alternating, the
 * DELETEs too). Its key and kind come from a
 * generator seeded by the run id (the same run id gives the same plan):
 *
 *   j % 4 == 3        DELETE of a key an earlier write named
 *   j % 5 == 1        PUT of the key of write j - 1 (mostly the other
 *                     region, 1/rate earlier): concurrent versions of one key
 *   otherwise         PUT of a random key of the pool (about total/3 keys,
 *                     so keys are rewritten, in both regions)
 *
 * A PUT's body starts with "tandem-drill RUN write J key K region R" and is
 * filled from a generator seeded by (run, j): each write's ETag is unique
 * and a retry sends the same bytes. A write is retried until acknowledged
 * (2xx) or the run ends: after a 5xx or 429 in 300 ms, after a connection
 * error or timeout in 200 ms; any other answer ends it as failed. Every
 * attempt is recorded (obj_op); the write keeps its first send time and its
 * acknowledgement time, which the checks order writes by (objcheck.c).
 *
 * Threads: the loop runs on its thread only; the drill's thread touches the
 * workload through the atomic phase and counters, and reads the results
 * after objload_stop() joined the thread.
 */
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "core/util.h"
#include "drill/internal.h"
#include "http/client.h"

#define OBJLOAD_MAGIC 0x4f424a4cu
#define OBJ_POOL 16              /* connections per region */
#define OBJ_TIMEOUT_MS 15000
#define OBJ_TICK_US 5000
#define OBJ_RETRY_5XX_MS 300
#define OBJ_RETRY_CONN_MS 200
#define OBJ_KEYS_MAX 100000

enum { OPHASE_RUN = 0, OPHASE_DRAIN = 1, OPHASE_STOP = 2 };

typedef struct ol_conn {
	objload *o;
	int region;
	http_client *client;
	int busy;
	uint32_t index;
	int64_t send_ms;
} ol_conn;

typedef struct ol_retry {
	int64_t due_us;
	uint32_t index;
} ol_retry;

struct objload {
	unsigned magic;
	objload_config cfg;
	struct event_base *base;
	struct event *tick;
	pthread_t thread;
	int thread_started;
	uint64_t seed;
	uint32_t nkeys;
	obj_write *writes;
	size_t total;
	uint32_t next;            /* writes scheduled so far */
	size_t unfinished;
	ol_conn *conns[DRILL_REGIONS][OBJ_POOL];
	int nconns[DRILL_REGIONS];
	char host[DRILL_REGIONS][64];
	int port[DRILL_REGIONS];
	uint32_t *queue[DRILL_REGIONS];
	size_t qhead[DRILL_REGIONS], qlen[DRILL_REGIONS], qcap;
	ol_retry *retries;
	size_t nretries, capretries;
	obj_op *ops;
	size_t nops, capops;
	unsigned char *body;      /* the body being sent (OBJ_MAX_BYTES) */
	int64_t start_us, start_ms, drain_deadline_us;
	int stopping;
	atomic_int phase;
	atomic_int drain_ms;
	atomic_long acked, errors;
};

/* ---- deterministic generators ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void objload_key_name(uint32_t key, char out[OBJ_KEY_NAME_MAX])
{
	snprintf(out, OBJ_KEY_NAME_MAX, "k%05u", key);
}

long objload_key_parse(const char *name)
{
	if (name[0] != 'k' || strlen(name) < 6 || strlen(name) > 7)
		return -1;
	long v = 0;
	for (const char *p = name + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v < OBJ_KEYS_MAX ? v : -1;
}

/* Fill o->body for write w (the same bytes on every call). Returns its size. */
static size_t make_body(objload *o, const obj_write *w)
{
	char key[OBJ_KEY_NAME_MAX];
	objload_key_name(w->key, key);
	int n = snprintf((char *)o->body, 200, "tandem-drill %s write %u key %s region %s\n", o->cfg.run_id,
			 w->index, key, o->cfg.region[w->region]);
	uint64_t x = mix64(o->seed ^ ((uint64_t)w->index << 20));
	for (size_t i = (size_t)n; i < w->size; i += 8) {
		x = mix64(x);
		size_t k = w->size - i < 8 ? w->size - i : 8;
		memcpy(o->body + i, &x, k);
	}
	return w->size;
}

static void digest_hex(const EVP_MD *md, const unsigned char *data, size_t len, char *out)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	EVP_Digest(data, len, d, &dl, md, NULL);
	util_hex(d, dl, out);
}

/* Plan write j: region, kind, key, size. */
static void plan(objload *o, uint32_t j, obj_write *w)
{
	uint64_t r = mix64(o->seed + j);
	w->index = j;
	/* alternate, shifted every 4 writes so the DELETEs (j % 4 == 3) alternate too */
	w->region = (uint8_t)((j + j / 4) % DRILL_REGIONS);
	if (j >= 4 && j % 4 == 3) {
		w->kind = OBJ_DELETE;
		w->key = o->writes[(r >> 8) % j].key;
	} else if (j > 0 && j % 5 == 1) {
		w->kind = OBJ_PUT;
		w->key = o->writes[j - 1].key;
	} else {
		w->kind = OBJ_PUT;
		w->key = (uint32_t)((r >> 8) % o->nkeys);
	}
	if (w->kind == OBJ_PUT)
		w->size = OBJ_MIN_BYTES + (uint32_t)((r >> 32) % (OBJ_MAX_BYTES - OBJ_MIN_BYTES + 1));
}

/* ---- signing ---- */

/* "Authorization: ...\r\nx-amz-date: ...\r\nx-amz-content-sha256: ...\r\n" for a
 * request to region; 0 or a negative code (out then unusable). */
static int sign_headers(const objload_config *oc, int region, int port, const char *method,
			const char *path, const sigv4_param *query, size_t nquery, const char *sha_hex,
			buf *out)
{
	char host[96], amz_date[17];
	snprintf(host, sizeof host, "%s:%d", oc->region[region], port);
	int64_t now = (int64_t)time(NULL);
	sigv4_amz_date(now, amz_date);
	sigv4_param headers[] = {
		{"host", host},
		{"x-amz-content-sha256", sha_hex},
		{"x-amz-date", amz_date},
	};
	sigv4_sign_params p = {
		.method = method,
		.path = path,
		.query = query,
		.query_count = nquery,
		.headers = headers,
		.header_count = 3,
		.payload_hash = sha_hex,
		.access_key_id = oc->access_key_id,
		.secret_access_key = oc->secret,
		.region = oc->region[region],
		.now_s = now,
	};
	buf auth;
	buf_init(&auth, 1024);
	int rc = sigv4_sign(&p, &auth);
	if (rc == 0)
		rc = buf_printf(out, "Authorization: %s\r\nx-amz-date: %s\r\nx-amz-content-sha256: %s\r\n",
				auth.data, amz_date, sha_hex);
	buf_free(&auth);
	return rc;
}

/* The S3 error code of an XML error body ("" when none). */
static void s3_error_code(const char *body, size_t len, char *out, size_t cap)
{
	out[0] = '\0';
	if (!body)
		return;
	const char *end = body + len;
	const char *a = memmem(body, len, "<Code>", 6);
	if (!a)
		return;
	a += 6;
	const char *b = memmem(a, (size_t)(end - a), "</Code>", 7);
	if (b)
		snprintf(out, cap, "%.*s", (int)(b - a), a);
}

/* ---- the loop ---- */

static int64_t ol_wall_ms(const objload *o)
{
	return o->start_ms + (util_mono_us() - o->start_us) / 1000;
}

static obj_op *op_add(objload *o)
{
	if (o->nops == o->capops) {
		size_t cap = o->capops ? o->capops * 2 : 1024;
		obj_op *n = realloc(o->ops, cap * sizeof *n);
		if (!n)
			return NULL; /* the sample is lost; the write's own record stays */
		o->ops = n;
		o->capops = cap;
	}
	obj_op *op = &o->ops[o->nops++];
	memset(op, 0, sizeof *op);
	return op;
}

static void finish(objload *o, obj_write *w, int state)
{
	w->state = (uint8_t)state;
	o->unfinished--;
}

static void retry_later(objload *o, uint32_t index, int delay_ms)
{
	if (o->nretries == o->capretries) {
		size_t cap = o->capretries ? o->capretries * 2 : 256;
		ol_retry *n = realloc(o->retries, cap * sizeof *n);
		if (!n) { /* out of memory: give this one up */
			finish(o, &o->writes[index], WRITE_UNACKED);
			return;
		}
		o->retries = n;
		o->capretries = cap;
	}
	o->retries[o->nretries++] = (ol_retry){util_mono_us() + (int64_t)delay_ms * 1000, index};
}

static void answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	ol_conn *c = arg;
	objload *o = c->o;
	c->busy = 0;
	if (o->stopping)
		return;
	obj_write *w = &o->writes[c->index];
	obj_op *op = op_add(o);
	int64_t now = ol_wall_ms(o);
	int status = rc == 0 ? resp->status : 0;
	if (op) {
		op->send_ms = c->send_ms;
		op->done_ms = now;
		op->write_index = c->index;
		op->region = (uint8_t)c->region;
		op->status = (int16_t)status;
	}
	w->status = (int16_t)status;
	if (rc == 0 && status >= 200 && status < 300) {
		w->ack_ms = now;
		finish(o, w, WRITE_ACKED);
		if (op)
			op->ok = 1;
		atomic_fetch_add(&o->acked, 1);
		return;
	}
	atomic_fetch_add(&o->errors, 1);
	int delay;
	if (rc == 0) {
		char code[40];
		s3_error_code(body, len, code, sizeof code);
		snprintf(w->error, sizeof w->error, "%u:%.32s", (unsigned)status % 1000u, code[0] ? code : "-");
		delay = OBJ_RETRY_5XX_MS;
	} else {
		snprintf(w->error, sizeof w->error, "%s", rc == ERR_AGAIN ? "timeout" : "connection");
		delay = OBJ_RETRY_CONN_MS;
	}
	if (op)
		snprintf(op->cls, sizeof op->cls, "%s", w->error);
	if (rc == 0 && status < 500 && status != 429) {
		finish(o, w, WRITE_FAILED); /* a refusal: retrying changes nothing */
		return;
	}
	retry_later(o, c->index, delay);
}

static void send_write(objload *o, ol_conn *c, uint32_t index)
{
	obj_write *w = &o->writes[index];
	int k = c->region;
	char key[OBJ_KEY_NAME_MAX], path[128], sha[65];
	objload_key_name(w->key, key);
	snprintf(path, sizeof path, "/%s/%s", o->cfg.bucket, key);
	size_t len = 0;
	if (w->kind == OBJ_PUT) {
		len = make_body(o, w);
		if (!w->etag[0])
			digest_hex(EVP_md5(), o->body, len, w->etag);
		digest_hex(EVP_sha256(), o->body, len, sha);
	} else {
		snprintf(sha, sizeof sha, "%s", SIGV4_EMPTY_SHA256);
	}
	const char *method = w->kind == OBJ_PUT ? "PUT" : "DELETE";
	buf headers;
	buf_init(&headers, 4096);
	int rc = sign_headers(&o->cfg, k, o->port[k], method, path, NULL, 0, sha, &headers);
	if (rc == 0 && w->kind == OBJ_PUT)
		rc = buf_printf(&headers, "Content-Type: application/octet-stream\r\n");
	w->attempts++;
	c->busy = 1;
	c->index = index;
	c->send_ms = ol_wall_ms(o);
	if (!w->send_ms)
		w->send_ms = c->send_ms;
	if (rc == 0)
		rc = http_client_request(c->client, method, path, headers.data, (const char *)o->body,
					 len, 0, answer, c);
	buf_free(&headers);
	if (rc != 0) /* not queued: the callback will not run */
		answer(rc, NULL, NULL, 0, c);
}

static ol_conn *idle_conn(objload *o, int k)
{
	for (int i = 0; i < o->nconns[k]; i++)
		if (!o->conns[k][i]->busy)
			return o->conns[k][i];
	if (o->nconns[k] == OBJ_POOL)
		return NULL;
	ol_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	http_limits limits = {65536, 200, 1 << 20, 0};
	c->o = o;
	c->region = k;
	c->client = http_client_new(o->base, o->cfg.ctx, o->host[k], o->port[k], o->cfg.region[k],
				    &limits, OBJ_TIMEOUT_MS);
	if (!c->client) {
		free(c);
		return NULL;
	}
	o->conns[k][o->nconns[k]++] = c;
	return c;
}

static void queue_push(objload *o, int k, uint32_t index)
{
	/* every write is in at most one place: the ring never overflows */
	o->queue[k][(o->qhead[k] + o->qlen[k]) % o->qcap] = index;
	o->qlen[k]++;
}

static int64_t due_us(const objload *o, uint32_t j)
{
	return o->start_us + (int64_t)((double)j * 1e6 / o->cfg.rate);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	objload *o = arg;
	int64_t now = util_mono_us();
	int phase = atomic_load(&o->phase);
	if (phase == OPHASE_RUN) {
		while (o->next < o->total && due_us(o, o->next) <= now) {
			uint32_t j = o->next++;
			obj_write *w = &o->writes[j];
			plan(o, j, w);
			w->sched_ms = o->start_ms + (due_us(o, j) - o->start_us) / 1000;
			w->state = WRITE_PENDING;
			o->unfinished++;
			queue_push(o, w->region, j);
		}
	} else if (o->drain_deadline_us == 0) {
		o->drain_deadline_us = now + (int64_t)atomic_load(&o->drain_ms) * 1000;
	}
	for (size_t i = 0; i < o->nretries;) {
		if (o->retries[i].due_us <= now) {
			uint32_t index = o->retries[i].index;
			o->retries[i] = o->retries[--o->nretries];
			queue_push(o, o->writes[index].region, index);
		} else {
			i++;
		}
	}
	for (int k = 0; k < DRILL_REGIONS; k++)
		while (o->qlen[k] > 0) {
			ol_conn *c = idle_conn(o, k);
			if (!c)
				break;
			uint32_t index = o->queue[k][o->qhead[k]];
			o->qhead[k] = (o->qhead[k] + 1) % o->qcap;
			o->qlen[k]--;
			send_write(o, c, index);
		}
	if (phase == OPHASE_STOP ||
	    (phase == OPHASE_DRAIN && (o->unfinished == 0 || now >= o->drain_deadline_us)))
		event_base_loopbreak(o->base);
}

static void *objload_thread(void *arg)
{
	objload *o = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the drill thread's */
	event_base_dispatch(o->base);
	o->stopping = 1; /* in-flight answers are dropped */
	for (int k = 0; k < DRILL_REGIONS; k++) {
		for (int i = 0; i < o->nconns[k]; i++) {
			http_client_free(&o->conns[k][i]->client);
			free(o->conns[k][i]);
		}
		o->nconns[k] = 0;
	}
	for (uint32_t i = 0; i < o->next; i++)
		if (o->writes[i].state == WRITE_PENDING)
			o->writes[i].state = WRITE_UNACKED;
	return NULL;
}

objload *objload_new(const objload_config *oc, char *err, size_t errcap)
{
	objload *o = calloc(1, sizeof *o);
	if (!o) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	o->magic = OBJLOAD_MAGIC;
	o->cfg = *oc;
	o->total = (size_t)oc->rate * (size_t)oc->duration_s;
	o->nkeys = (uint32_t)(o->total / 3 < 8 ? 8 : o->total / 3 > OBJ_KEYS_MAX ? OBJ_KEYS_MAX
											 : o->total / 3);
	for (const char *p = oc->run_id; *p; p++)
		o->seed = mix64(o->seed ^ (unsigned char)*p);
	o->writes = calloc(o->total ? o->total : 1, sizeof *o->writes);
	o->body = malloc(OBJ_MAX_BYTES);
	o->qcap = o->total + 1;
	o->base = event_base_new();
	if (!o->writes || !o->body || !o->base)
		goto fail;
	o->tick = event_new(o->base, -1, EV_PERSIST, tick, o);
	if (!o->tick)
		goto fail;
	for (int k = 0; k < DRILL_REGIONS; k++) {
		if (util_split_hostport(oc->s3[k], o->host[k], sizeof o->host[k], &o->port[k]) != 0) {
			snprintf(err, errcap, "region %s: bad s3_listen '%s'", oc->region[k], oc->s3[k]);
			objload_free(&o);
			return NULL;
		}
		o->queue[k] = calloc(o->qcap, sizeof *o->queue[k]);
		if (!o->queue[k])
			goto fail;
	}
	return o;
fail:
	snprintf(err, errcap, "out of memory for %zu object writes", o->total);
	objload_free(&o);
	return NULL;
}

int objload_start(objload *o)
{
	assert(o->magic == OBJLOAD_MAGIC);
	o->start_us = util_mono_us();
	o->start_ms = util_now_ms();
	struct timeval tv = {0, OBJ_TICK_US};
	event_add(o->tick, &tv);
	if (pthread_create(&o->thread, NULL, objload_thread, o) != 0)
		return -1;
	o->thread_started = 1;
	return 0;
}

void objload_drain(objload *o, int drain_ms)
{
	assert(o->magic == OBJLOAD_MAGIC);
	if (atomic_load(&o->phase) != OPHASE_RUN)
		return;
	atomic_store(&o->drain_ms, drain_ms);
	atomic_store(&o->phase, OPHASE_DRAIN);
}

void objload_stop(objload *o, int drain_ms)
{
	assert(o->magic == OBJLOAD_MAGIC);
	if (!o->thread_started)
		return;
	objload_drain(o, drain_ms);
	if (drain_ms == 0)
		atomic_store(&o->phase, OPHASE_STOP);
	pthread_join(o->thread, NULL);
	o->thread_started = 0;
	o->total = o->next;
}

void objload_progress(const objload *o, long *acked, long *errors)
{
	*acked = atomic_load(&((objload *)o)->acked);
	*errors = atomic_load(&((objload *)o)->errors);
}

const obj_write *objload_writes(const objload *o, size_t *n)
{
	*n = o->thread_started ? 0 : o->next;
	return o->writes;
}

const obj_op *objload_ops(const objload *o, size_t *n)
{
	*n = o->thread_started ? 0 : o->nops;
	return o->ops;
}

const objload_config *objload_config_of(const objload *o)
{
	return &o->cfg;
}

uint32_t objload_key_count(const objload *o)
{
	return o->nkeys;
}

void objload_free(objload **po)
{
	objload *o = *po;
	if (!o)
		return;
	if (o->thread_started) {
		atomic_store(&o->phase, OPHASE_STOP);
		pthread_join(o->thread, NULL);
	}
	for (int k = 0; k < DRILL_REGIONS; k++)
		free(o->queue[k]);
	if (o->tick)
		event_free(o->tick);
	if (o->base)
		event_base_free(o->base);
	free(o->writes);
	free(o->ops);
	free(o->retries);
	free(o->body);
	OPENSSL_cleanse(o->cfg.secret, sizeof o->cfg.secret);
	o->magic = 0;
	free(o);
	*po = NULL;
}

/* ---- the drill thread's S3 calls ---- */

static void query_escape(const char *in, buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *in; in++) {
		unsigned char ch = (unsigned char)*in;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~')
			buf_printf(out, "%c", ch);
		else
			buf_printf(out, "%%%c%c", hex[ch >> 4], hex[ch & 15]);
	}
}

void objs3_call(struct event_base *base, const objload_config *oc, int region, const char *method,
		const char *path, const sigv4_param *query, size_t nquery, int timeout_ms,
		drill_reply *out)
{
	memset(out, 0, sizeof *out);
	char host[64];
	int port;
	if (util_split_hostport(oc->s3[region], host, sizeof host, &port) != 0) {
		out->rc = ERR_INVAL;
		return;
	}
	buf target, headers;
	buf_init(&target, 4096);
	buf_init(&headers, 4096);
	buf_printf(&target, "%s", path);
	for (size_t i = 0; i < nquery; i++) {
		buf_printf(&target, "%c", i ? '&' : '?');
		query_escape(query[i].name, &target);
		buf_printf(&target, "=");
		query_escape(query[i].value ? query[i].value : "", &target);
	}
	int rc = sign_headers(oc, region, port, method, path, query, nquery, SIGV4_EMPTY_SHA256, &headers);
	if (rc == 0 && target.data)
		drill_call(base, oc->ctx, oc->s3[region], oc->region[region], method, target.data,
			   headers.data, NULL, timeout_ms, out);
	else
		out->rc = rc ? rc : ERR_NOMEM;
	buf_free(&target);
	buf_free(&headers);
}

int objs3_create_bucket(struct event_base *base, const objload_config *oc, int timeout_ms, char *err,
			size_t errcap)
{
	char path[80];
	snprintf(path, sizeof path, "/%s", oc->bucket);
	drill_reply r;
	objs3_call(base, oc, 0, "PUT", path, NULL, 0, 15000, &r);
	if (r.rc != 0 || r.status != 200) {
		char code[40] = "";
		s3_error_code(r.body, r.body_len, code, sizeof code);
		snprintf(err, errcap, "creating the bucket %s in %s (%s): %s %d %s", oc->bucket,
			 oc->region[0], oc->s3[0], r.rc ? "error" : "status", r.rc ? r.rc : r.status, code);
		reply_free(&r);
		return -1;
	}
	reply_free(&r);
	/* the other region learns of it by replication: writes there wait for it */
	int64_t deadline = util_now_ms() + timeout_ms;
	for (;;) {
		objs3_call(base, oc, 1, "HEAD", path, NULL, 0, 5000, &r);
		int ok = r.rc == 0 && r.status == 200;
		int rc = r.rc, status = r.status;
		reply_free(&r);
		if (ok)
			return 0;
		if (util_now_ms() >= deadline) {
			snprintf(err, errcap, "the bucket %s did not reach %s within %d s (last: %s %d)",
				 oc->bucket, oc->region[1], timeout_ms / 1000, rc ? "error" : "status",
				 rc ? rc : status);
			return -1;
		}
		usleep(100000);
	}
}

/* The text of the first <tag>...</tag> in [p, end), into out; the end of
 * the element, or NULL when there is none. */
static const char *xml_elem(const char *p, const char *end, const char *tag, char *out, size_t cap)
{
	char open[48], close[48];
	int no = snprintf(open, sizeof open, "<%s>", tag), nc = snprintf(close, sizeof close, "</%s>", tag);
	const char *a = memmem(p, (size_t)(end - p), open, (size_t)no);
	if (!a)
		return NULL;
	a += no;
	const char *b = memmem(a, (size_t)(end - a), close, (size_t)nc);
	if (!b)
		return NULL;
	snprintf(out, cap, "%.*s", (int)(b - a), a);
	return b + nc;
}

void obj_state_free(obj_state *st)
{
	free(st->etag);
	st->etag = NULL;
}

int objs3_list(struct event_base *base, const objload_config *oc, int region, uint32_t nkeys,
	       obj_state *st)
{
	obj_state_free(st);
	memset(st, 0, sizeof *st);
	st->at_ms = util_now_ms();
	st->nkeys = nkeys;
	st->etag = calloc(nkeys ? nkeys : 1, sizeof *st->etag);
	if (!st->etag) {
		snprintf(st->error, sizeof st->error, "out of memory");
		return -1;
	}
	char path[80], token[1024] = "";
	snprintf(path, sizeof path, "/%s", oc->bucket);
	for (int page = 0; page < 10000; page++) {
		sigv4_param q[3] = {{"list-type", "2"}, {"max-keys", "1000"}, {"continuation-token", token}};
		drill_reply r;
		objs3_call(base, oc, region, "GET", path, q, token[0] ? 3 : 2, 15000, &r);
		if (r.rc != 0 || r.status != 200 || !r.body) {
			snprintf(st->error, sizeof st->error, "listing %s in %s: %s %d", oc->bucket,
				 oc->region[region], r.rc ? "error" : "status", r.rc ? r.rc : r.status);
			reply_free(&r);
			return -1;
		}
		const char *p = r.body, *end = r.body + r.body_len;
		for (;;) {
			const char *c = memmem(p, (size_t)(end - p), "<Contents>", 10);
			if (!c)
				break;
			const char *ce = memmem(c, (size_t)(end - c), "</Contents>", 11);
			if (!ce)
				break;
			char key[1100], etag[128];
			if (xml_elem(c, ce, "Key", key, sizeof key) && xml_elem(c, ce, "ETag", etag, sizeof etag)) {
				long k = objload_key_parse(key);
				/* the ETag is quoted: "&quot;hex&quot;" (or raw quotes) */
				char *hex = etag;
				if (strncmp(hex, "&quot;", 6) == 0)
					hex += 6;
				else if (hex[0] == '"')
					hex++;
				hex[strspn(hex, "0123456789abcdef")] = '\0';
				if (k >= 0 && (uint32_t)k < nkeys)
					snprintf(st->etag[k], sizeof st->etag[k], "%.32s", hex);
				else
					st->foreign++;
			}
			p = ce + 11;
		}
		char truncated[8] = "";
		xml_elem(r.body, end, "IsTruncated", truncated, sizeof truncated);
		int more = strcmp(truncated, "true") == 0 &&
			   xml_elem(r.body, end, "NextContinuationToken", token, sizeof token);
		reply_free(&r);
		if (!more) {
			st->taken = 1;
			return 0;
		}
	}
	snprintf(st->error, sizeof st->error, "listing %s in %s: too many pages", oc->bucket,
		 oc->region[region]);
	return -1;
}
