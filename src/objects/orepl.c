/*
 * orepl.c - two-way replication of the object store: the shipper of this
 * region's outbox and the receiver of the other region's writes (orepl.h
 * has the contract, docs/OBJECTS.md "Replication" the design).
 *
 * A shipping slot is a small state machine (one entry of the outbox at a
 * time, one connection to the other region's link):
 *
 *   IDLE --start--> (loaded from objects.db on the S3 loop)
 *        bucket / tombstone / marker ------------------------> SEND_META
 *        version with data --> READ (worker: one segment) --> SEND_SEGMENT
 *                                ^------- more segments -----------'
 *                                         last one sent --> SEND_META
 *   SEND_META --2xx--> COMMIT (outbox row dropped) --> IDLE
 *   any step --connection, timeout, 5xx--> BACKOFF --timer--> start again
 *   any step --4xx (refused for good)----> COMMIT as FAILED
 *   superseded (now a replica, or nothing left to send) --> COMMIT
 *
 * Everything here runs on the S3 thread, except the workers' blob I/O
 * (the slot or transfer it belongs to is not touched meanwhile) and
 * orepl_get_stats (atomics).
 */
#include "objects/orepl.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workers.h"
#include "http/client.h"
#include "http/server.h"
#include "objects/blobstore.h"
#include "objects/hlc.h"
#include "objects/meta.h"
#include "objects/oae.h"
#include "objects/oreplmsg.h"
#include "store/committer.h"

#define ORPL_POLL_MS 20       /* the outbox is looked at this often when slots are idle */
#define ORPL_STATS_MS 500     /* the outbox's size, for metrics and the status */
#define ORPL_TIMEOUT_MS 30000 /* one request on the link */
#define ORPL_HEADROOM 16384   /* before a segment: its version's length and JSON, when inline */

const double ORPL_LAG_BOUNDS[12] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

typedef enum slot_state {
	SLOT_IDLE = 0,
	SLOT_READ,         /* a worker reads the next segment */
	SLOT_SEND_SEGMENT, /* a segment is on the link */
	SLOT_SEND_META,    /* the version / remove / bucket message is on the link */
	SLOT_COMMIT,       /* the outbox row is being dropped */
	SLOT_BACKOFF,      /* waiting to start the entry again */
	SLOT_DELAY,        /* the artificial link delay before a send */
} slot_state;

typedef struct slot {
	orepl *r;
	slot_state state;
	meta_outbox_entry e;
	meta_object *ob;             /* the version being sent */
	meta_replica_blob *parts;    /* its blobs here, in order */
	size_t nparts, cap;
	size_t part;                 /* the part being sent */
	uint64_t off;                /* the next byte of it */
	char xfer[33];
	/* one segment, read by a worker at seg + ORPL_HEADROOM (the space
	 * before it takes the version's length and JSON when it goes inline);
	 * handed to the link's client without a copy (http_client_request_take) */
	char *seg;
	size_t seg_len;
	char *send_mem;              /* the request body's block, given to the client at send */
	const char *send_body;
	size_t send_len;
	int job_rc;
	meta_repl outcome;           /* what the commit records */
	http_client *client;
	struct event *timer;         /* back-off, link delay */
	int backoff_ms;
	char target[256];
	buf body;                    /* the request's body (JSON or a segment) */
	bool body_is_seg;
	/* the transfer's final segment goes with the version (one round trip
	 * for an object of up to ORPL_SEGMENT bytes): seg/seg_len, where */
	bool have_inline;
	size_t inline_part;
	uint64_t inline_off, inline_size;
	/* a decide slot (orepl_decide): one conditional write sent to the
	 * records' primary for its decision; its answer goes to dcb */
	bool decide;
	meta_cond cond;
	char cond_etag[80];
	orepl_decide_cb dcb;
	/* the entry's version exists and so does a tombstone of the same
	 * (key, version id): a delete written over again (an unversioned key
	 * deleted, then PUT, before the delete's entry was shipped). Without
	 * the tombstone the other region never learns of the delete, and the
	 * regions' rows differ for good (tandem verify, anti-entropy). It goes
	 * in the version's own message ("tomb"), applied there before the
	 * version in one transaction: no extra round trip. When the version is
	 * not ours to send (the other region's newer write replaced it), the
	 * tombstone goes alone (POST .../remove). */
	bool with_tomb;
	char tomb_hlc[HLC_STR_LEN + 1];
	char tomb_origin[32];
	void *darg;
} slot;

/* A transfer being received: the parts of one version, in order. */
typedef struct xfer {
	bool used, busy;             /* busy: a worker writes into it */
	char id[33];
	meta_replica_blob *blobs;    /* parts complete, in order */
	size_t n, cap;
	blob_sums sums0;             /* the first part's checksums */
	blobstore_writer *w;         /* the part being written */
	uint64_t cur_off, cur_size;
	int64_t last_ms;
} xfer;

/* A received request being handled. */
typedef struct rx {
	orepl *r;
	http_request *req;
	struct rx *prev, *next;
	xfer *x;
	const char *data;
	size_t len;
	bool final;
	int rc;
	/* version / remove / bucket */
	meta_object *ob;
	meta_blobs old;
	bool applied;
	int kind; /* 1 version, 2 remove, 3 bucket */
	meta_bucket b;
	char *cors;
	bool removed;
	/* a conditional write decided here (the records' primary) */
	bool decide;
	meta_cond cond;
	char cond_etag[80];
	char latest_hlc[HLC_STR_LEN + 1];
	char xfer_id[33];
	/* a tombstone of the same (key, version id) that came with the
	 * version: applied first, in the same transaction */
	bool has_tomb;
	char tomb_hlc[HLC_STR_LEN + 1];
	char tomb_origin[32];
} rx;

typedef struct waiter {
	int64_t seq;
	orepl_wait_cb cb;
	void *arg;
	struct event *timer;
	orepl *r;
	struct waiter *prev, *next;
} waiter;

struct orepl {
	orepl_env env;
	char host[128];
	int port;
	bool started, stopping;
	slot slots[ORPL_SLOTS];
	slot dslots[ORPL_DECIDE_SLOTS];  /* orepl_decide */
	bool (*is_primary)(void *arg);   /* the records' primary is this region? */
	void *primary_arg;
	int64_t cursor;              /* the highest outbox row handed to a slot */
	struct event *poll_ev, *stats_ev;
	xfer xfers[ORPL_XFERS];
	rx *live;
	waiter *waiters;
	/* stats (written on the S3 thread, read anywhere) */
	_Atomic int64_t pending, pending_bytes, oldest_ms;
	_Atomic uint64_t shipped, failed, applied, superseded, errors, lag_count;
	_Atomic uint64_t lag_buckets[12];
	_Atomic uint64_t lag_sum_us;
	_Atomic int64_t last_error_ms;
	oae *ae;                     /* anti-entropy (oae.h) */
	unsigned long ticks;         /* of stats_tick */
};

static void pump(orepl *r);
static void merge_clock(orepl *r, const char *text);
static void slot_start(slot *s);
static void slot_next(slot *s);

/* ------------------------------------------------------------ shipping */

static void slot_reset(slot *s)
{
	free(s->ob);
	s->ob = NULL;
	free(s->parts);
	s->parts = NULL;
	s->nparts = s->cap = 0;
	free(s->seg);
	s->seg = NULL;
	s->seg_len = 0;
	free(s->send_mem);
	s->send_mem = NULL;
	s->send_body = NULL;
	s->send_len = 0;
	s->part = 0;
	s->off = 0;
	s->have_inline = false;
	s->with_tomb = false;
	s->xfer[0] = '\0';
	buf_reset(&s->body);
}

static void waiters_done(orepl *r, int64_t seq, bool ok)
{
	for (waiter *w = r->waiters, *n; w; w = n) {
		n = w->next;
		if (seq && w->seq != seq)
			continue;
		if (w->prev)
			w->prev->next = w->next;
		else
			r->waiters = w->next;
		if (w->next)
			w->next->prev = w->prev;
		event_free(w->timer);
		w->cb(w->arg, ok);
		free(w);
	}
}

static int done_exec(db_conn *db, void *arg)
{
	slot *s = arg;
	return meta_outbox_done(db, &s->e, s->outcome == META_REPL_FAILED ? META_REPL_FAILED : META_REPL_COMPLETED);
}

static void done_committed(void *arg, int rc, uint64_t seq)
{
	slot *s = arg;
	orepl *r = s->r;
	s->state = SLOT_IDLE;
	if (rc != 0) {
		/* the row stays: shipped again after a restart (harmless) */
		log_error("objects replication: cannot drop outbox row %lld (%s)", (long long)s->e.seq, err_str(rc));
	}
	if (s->outcome == META_REPL_FAILED) {
		r->failed++;
	} else if (s->outcome == META_REPL_COMPLETED) {
		r->shipped++;
		double lag = (double)(util_now_ms() - s->e.created_ms) / 1000.0;
		if (lag < 0)
			lag = 0;
		for (int i = 0; i < 12; i++)
			if (lag <= ORPL_LAG_BOUNDS[i])
				r->lag_buckets[i]++;
		r->lag_count++;
		r->lag_sum_us += (uint64_t)(lag * 1e6);
	} else {
		r->superseded++;
	}
	waiters_done(r, s->e.seq, s->outcome != META_REPL_FAILED);
	slot_reset(s);
	if (!r->stopping)
		pump(r);
}

/* A decide slot's answer (0, ERR_CONFLICT, ERR_NOTFOUND, ERR_AGAIN, ERR_IO). */
static void decide_end(slot *s, int rc)
{
	orepl_decide_cb cb = s->dcb;
	void *arg = s->darg;
	s->dcb = NULL;
	slot_reset(s);
	s->state = SLOT_IDLE;
	if (cb)
		cb(arg, rc);
}

/* The entry is over: its row leaves the outbox (outcome COMPLETED, FAILED,
 * or NONE: superseded, nothing was sent). */
static void slot_finish(slot *s, meta_repl outcome)
{
	if (s->decide) {
		decide_end(s, outcome == META_REPL_COMPLETED ? 0 : ERR_IO);
		return;
	}
	s->outcome = outcome;
	s->state = SLOT_COMMIT;
	if (committer_submit(s->r->env.writer, done_exec, done_committed, s) != 0) {
		/* the writer is full or stopping: try the entry again later */
		s->state = SLOT_BACKOFF;
		struct timeval tv = util_timeval_ms(s->r->env.cfg->replication.reconnect_max_ms);
		evtimer_add(s->timer, &tv);
	}
}

/* Something went wrong that may go right later: start over after a back-off. */
static void slot_retry(slot *s, const char *why)
{
	orepl *r = s->r;
	r->errors++;
	r->last_error_ms = util_now_ms();
	if (s->decide) { /* the client is waiting: no retry here */
		log_warn("objects replication: a conditional write could not be decided at %s: %s", r->env.peer->name,
			 why);
		decide_end(s, ERR_IO);
		return;
	}
	const config_replication *c = &r->env.cfg->replication;
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : c->reconnect_min_ms;
	if (s->backoff_ms > c->reconnect_max_ms)
		s->backoff_ms = c->reconnect_max_ms;
	if (s->backoff_ms >= c->reconnect_max_ms)
		log_warn("objects replication: %s; outbox row %lld retried in %d ms", why, (long long)s->e.seq,
			 s->backoff_ms);
	slot_reset(s);
	if (r->stopping) {
		s->state = SLOT_IDLE;
		return;
	}
	s->state = SLOT_BACKOFF;
	struct timeval tv = util_timeval_ms(s->backoff_ms);
	evtimer_add(s->timer, &tv);
}

static void slot_answered(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	slot *s = arg;
	orepl *r = s->r;
	if (r->stopping) {
		if (s->decide)
			decide_end(s, ERR_IO);
		s->state = SLOT_IDLE;
		slot_reset(s);
		return;
	}
	char why[160];
	if (s->decide && rc == 0 && s->state == SLOT_SEND_META && resp->status != 200) {
		/* the decision: refused (412, 404), or ask again with a newer HLC */
		json_t *j = json_loadb(body ? body : "", len, 0, NULL);
		json_t *err = json_object_get(j, "error");
		const char *code = json_string_value(json_object_get(err, "code"));
		const char *latest = json_string_value(json_object_get(err, "hlc"));
		int out = ERR_IO;
		if (resp->status == 412)
			out = ERR_CONFLICT;
		else if (resp->status == 404 && code && strcmp(code, "no_such_key") == 0)
			out = ERR_NOTFOUND;
		else if (resp->status == 409 && code && strcmp(code, "stale_hlc") == 0 && latest) {
			merge_clock(r, latest);
			out = ERR_AGAIN;
		} else {
			log_warn("objects replication: %s could not decide a conditional write: %d %.*s", r->env.peer->name,
				 resp->status, (int)(len > 200 ? 200 : len), body ? body : "");
		}
		json_decref(j);
		decide_end(s, out);
		return;
	}
	if (rc != 0) {
		int e = 0;
		snprintf(why, sizeof why, "the link to %s: %s", r->env.peer->name, http_client_error(s->client, &e));
		slot_retry(s, why);
		return;
	}
	int st = resp->status;
	if (st >= 200 && st < 300) {
		s->backoff_ms = 0;
		if (s->state == SLOT_SEND_SEGMENT) {
			slot_next(s);
			return;
		}
		slot_finish(s, META_REPL_COMPLETED);
		return;
	}
	if (st == 404 || st == 409 || st >= 500 || st == 408 || st == 429) {
		/* a transfer the other side lost (restart, idle), or it is busy */
		snprintf(why, sizeof why, "%s answered %d: %.*s", r->env.peer->name, st, (int)(len > 100 ? 100 : len),
			 body ? body : "");
		slot_retry(s, why);
		return;
	}
	log_error("objects replication: %s refused outbox row %lld (%s/%.*s) for good: %d %.*s", r->env.peer->name,
		  (long long)s->e.seq, s->e.bucket, (int)(s->e.key_len > 64 ? 64 : s->e.key_len), s->e.key, st,
		  (int)(len > 200 ? 200 : len), body ? body : "");
	slot_finish(s, META_REPL_FAILED);
}

static void slot_send_now(slot *s)
{
	s->state = s->body_is_seg ? SLOT_SEND_SEGMENT : SLOT_SEND_META;
	const char *hdr = s->body_is_seg || s->have_inline ? "Content-Type: application/octet-stream\r\n"
							   : "Content-Type: application/json\r\n";
	int rc;
	if (s->send_mem) { /* the segment's block goes to the client as it is */
		char *mem = s->send_mem;
		s->send_mem = NULL;
		rc = http_client_request_take(s->client, "POST", s->target, hdr, mem, s->send_body, s->send_len, 0,
					      slot_answered, s);
	} else {
		rc = http_client_request(s->client, "POST", s->target, hdr, s->body.data ? s->body.data : "",
					 s->body.len, 0, slot_answered, s);
	}
	if (rc != 0)
		slot_retry(s, "cannot queue a request on the link");
}

/* Send target with s->body; the artificial link delay (tests, benchmarks)
 * holds it for one round trip first. */
static void slot_send(slot *s, bool segment)
{
	s->body_is_seg = segment;
	int delay = s->r->env.cfg->replication.link_delay_ms;
	if (delay > 0) {
		s->state = SLOT_DELAY;
		struct timeval tv = util_timeval_ms(2 * delay);
		evtimer_add(s->timer, &tv);
		return;
	}
	slot_send_now(s);
}

static void slot_timer(evutil_socket_t fd, short what, void *arg)
{
	slot *s = arg;
	if (s->r->stopping)
		return;
	if (s->state == SLOT_DELAY)
		slot_send_now(s);
	else if (s->state == SLOT_BACKOFF)
		slot_start(s);
}

static void json_set_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, json_string(v ? v : ""));
}

static void json_set_hex(json_t *o, const char *k, const void *v, size_t len)
{
	char *h = malloc(len * 2 + 1);
	if (!h)
		return; /* the receiver refuses the message: retried */
	util_hex(v, len, h);
	h[len * 2] = '\0';
	json_object_set_new(o, k, json_string(h));
	free(h);
}

/* s->body = the JSON of o; 0 or ERR_NOMEM. */
static int body_json(slot *s, json_t *o)
{
	buf_reset(&s->body);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text)
		return ERR_NOMEM;
	int rc = buf_adds(&s->body, text);
	free(text);
	return rc;
}

static void send_meta(slot *s, const char *route, json_t *o)
{
	snprintf(s->target, sizeof s->target, "/internal/v1/objects/%s", route);
	if (body_json(s, o) != 0) {
		slot_retry(s, "out of memory");
		return;
	}
	if (s->have_inline && s->body.len + 4 <= ORPL_HEADROOM) {
		/* u32 length of the JSON, the JSON, the final segment: the
		 * first two written just before the segment, in its block */
		size_t jl = s->body.len;
		char *at = s->seg + ORPL_HEADROOM - jl - 4;
		at[0] = (char)(jl >> 24);
		at[1] = (char)(jl >> 16);
		at[2] = (char)(jl >> 8);
		at[3] = (char)jl;
		memcpy(at + 4, s->body.data, jl);
		s->send_mem = s->seg;
		s->send_body = at;
		s->send_len = 4 + jl + s->seg_len;
		s->seg = NULL;
	} else if (s->have_inline) {
		/* a JSON longer than the headroom (long keys and headers): copied */
		size_t jl = s->body.len;
		char *json = malloc(jl ? jl : 1);
		unsigned char pre[4] = {(unsigned char)(jl >> 24), (unsigned char)(jl >> 16), (unsigned char)(jl >> 8),
					(unsigned char)jl};
		int rc = json ? 0 : ERR_NOMEM;
		if (json)
			memcpy(json, s->body.data, jl);
		buf_reset(&s->body);
		if (rc == 0 && (buf_add(&s->body, (const char *)pre, 4) != 0 || buf_add(&s->body, json, jl) != 0 ||
				buf_add(&s->body, s->seg + ORPL_HEADROOM, s->seg_len) != 0))
			rc = ERR_NOMEM;
		free(json);
		if (rc != 0) {
			slot_retry(s, "out of memory");
			return;
		}
	}
	slot_send(s, false);
}

static void send_version(slot *s)
{
	const meta_object *ob = s->ob;
	json_t *o = json_object();
	if (!o) {
		slot_retry(s, "out of memory");
		return;
	}
	json_set_str(o, "bucket", ob->bucket);
	json_set_hex(o, "key", ob->key, ob->key_len);
	json_set_str(o, "version_id", ob->version_id);
	json_set_str(o, "hlc", ob->hlc);
	json_set_str(o, "origin", ob->origin);
	json_set_str(o, "owner", ob->owner);
	json_object_set_new(o, "size", json_integer((json_int_t)ob->size));
	json_set_str(o, "etag", ob->etag);
	json_set_str(o, "content_type", ob->content_type);
	json_set_hex(o, "headers", ob->headers, strlen(ob->headers));
	json_object_set_new(o, "mtime_ms", json_integer(ob->mtime_ms));
	json_set_str(o, "sha256", ob->sha256);
	json_object_set_new(o, "crc32", json_integer(ob->crc32));
	json_object_set_new(o, "crc32c", json_integer(ob->crc32c));
	json_object_set_new(o, "acl", json_integer(ob->acl));
	json_object_set_new(o, "delete_marker", json_boolean(ob->delete_marker));
	json_set_str(o, "manifest", ob->manifest);
	json_object_set_new(o, "parts", json_integer(ob->parts));
	json_set_str(o, "xfer", s->xfer);
	if (s->have_inline)
		json_object_set_new(o, "seg", json_pack("{s:I, s:I, s:I}", "part", (json_int_t)s->inline_part, "off",
							(json_int_t)s->inline_off, "size", (json_int_t)s->inline_size));
	if (s->with_tomb)
		json_object_set_new(o, "tomb", json_pack("{s:s, s:s}", "hlc", s->tomb_hlc, "origin", s->tomb_origin));
	if (s->decide)
		json_object_set_new(o, "decide", json_pack("{s:s, s:s}", "cond",
							   s->cond == META_COND_ABSENT ? "absent" : "etag", "etag",
							   s->cond_etag));
	send_meta(s, "version", o);
}

/* Worker: read the next segment of the part being sent. */
static void read_work(void *arg)
{
	slot *s = arg;
	const meta_replica_blob *p = &s->parts[s->part];
	uint64_t n = p->size - s->off;
	if (n > ORPL_SEGMENT)
		n = ORPL_SEGMENT;
	s->seg_len = 0;
	blobstore_reader *rd = NULL;
	s->job_rc = blobstore_get_open(s->r->env.blobs, p->blob, &rd);
	if (s->job_rc == 0 && n)
		s->job_rc = blobstore_get_range(rd, s->off, n);
	char *seg = s->seg + ORPL_HEADROOM;
	while (s->job_rc == 0 && s->seg_len < n) {
		size_t got = 0;
		s->job_rc = blobstore_get_read(rd, seg + s->seg_len, (size_t)n - s->seg_len, &got);
		if (s->job_rc == 0 && got == 0)
			s->job_rc = ERR_CORRUPT; /* shorter than its row says */
		s->seg_len += got;
	}
	blobstore_get_close(&rd);
}

static void read_done(void *arg)
{
	slot *s = arg;
	orepl *r = s->r;
	if (r->stopping && s->decide) {
		decide_end(s, ERR_IO);
		return;
	}
	if (r->stopping) {
		s->state = SLOT_IDLE;
		slot_reset(s);
		return;
	}
	if (s->job_rc == ERR_NOTFOUND) {
		/* replaced or deleted meanwhile: its row says what to send now */
		slot_retry(s, "a blob went while it was sent");
		return;
	}
	if (s->job_rc != 0) {
		log_error("objects replication: cannot read %s/%.*s (version %s) to send it: %s; status FAILED",
			  s->ob->bucket, (int)(s->ob->key_len > 64 ? 64 : s->ob->key_len), s->ob->key, s->ob->version_id,
			  err_str(s->job_rc));
		slot_finish(s, META_REPL_FAILED);
		return;
	}
	const meta_replica_blob *p = &s->parts[s->part];
	if (s->part + 1 == s->nparts && s->off + s->seg_len >= p->size) {
		/* the last bytes of the version: they go with its metadata */
		s->have_inline = true;
		s->inline_part = s->part;
		s->inline_off = s->off;
		s->inline_size = p->size;
		s->part++;
		s->off = 0;
		send_version(s);
		return;
	}
	snprintf(s->target, sizeof s->target, "/internal/v1/objects/segment?xfer=%s&part=%zu&off=%llu&size=%llu",
		 s->xfer, s->part, (unsigned long long)s->off, (unsigned long long)p->size);
	buf_reset(&s->body);
	s->send_mem = s->seg; /* sent as it is */
	s->send_body = s->seg + ORPL_HEADROOM;
	s->send_len = s->seg_len;
	s->seg = NULL;
	s->off += s->seg_len;
	if (s->off >= p->size) {
		s->part++;
		s->off = 0;
	}
	slot_send(s, true);
}

/* The next step of a version with data: a segment, or the metadata. */
static void slot_next(slot *s)
{
	if (s->part >= s->nparts) {
		send_version(s);
		return;
	}
	if (!s->seg && !(s->seg = malloc(ORPL_HEADROOM + ORPL_SEGMENT))) {
		slot_retry(s, "out of memory");
		return;
	}
	s->state = SLOT_READ;
	if (workers_submit(s->r->env.pool, WORKERS_BULK, read_work, read_done, s) != 0)
		slot_retry(s, "the blob workers are saturated");
}

static int part_add(void *arg, const char *blob, uint64_t pos, uint64_t size)
{
	slot *s = arg;
	if (s->nparts == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		void *p = realloc(s->parts, cap * sizeof *s->parts);
		if (!p)
			return ERR_NOMEM;
		s->parts = p;
		s->cap = cap;
	}
	meta_replica_blob *b = &s->parts[s->nparts++];
	snprintf(b->blob, sizeof b->blob, "%s", blob);
	b->size = size;
	return 0;
}

static void send_bucket(slot *s)
{
	orepl *r = s->r;
	meta_bucket b;
	int rc = meta_bucket_get(r->env.reader, s->e.bucket, &b);
	if (rc != 0 && rc != ERR_NOTFOUND) {
		slot_retry(s, "cannot read objects.db");
		return;
	}
	json_t *o = json_object();
	if (!o) {
		slot_retry(s, "out of memory");
		return;
	}
	json_set_str(o, "name", s->e.bucket);
	if (rc == ERR_NOTFOUND) {
		json_object_set_new(o, "removed", json_true());
	} else {
		json_set_str(o, "owner", b.owner);
		json_set_str(o, "region", b.region);
		json_object_set_new(o, "created_ms", json_integer(b.created_ms));
		json_object_set_new(o, "versioning", json_integer(b.versioning));
		json_object_set_new(o, "acl", json_integer(b.acl));
		json_set_str(o, "versioning_stamp", b.versioning_stamp);
		json_set_str(o, "acl_stamp", b.acl_stamp);
		json_set_str(o, "cors_stamp", b.cors_stamp);
		if (b.has_cors) {
			char *x = malloc(META_CORS_MAX + 1);
			if (!x || meta_bucket_cors(r->env.reader, b.name, x, META_CORS_MAX + 1) != 0) {
				free(x);
				json_decref(o);
				slot_retry(s, "cannot read a bucket's CORS configuration");
				return;
			}
			json_set_str(o, "cors", x);
			free(x);
		}
	}
	send_meta(s, "bucket", o);
}

/* The tombstone of the entry's (key, version id). */
static void send_remove(slot *s, const char *ts, const char *origin)
{
	json_t *o = json_object();
	if (!o) {
		slot_retry(s, "out of memory");
		return;
	}
	json_set_str(o, "bucket", s->e.bucket);
	json_set_hex(o, "key", s->e.key, s->e.key_len);
	json_set_str(o, "version_id", s->e.version_id);
	json_set_str(o, "hlc", ts);
	json_set_str(o, "origin", origin);
	send_meta(s, "remove", o);
}

/* Load what the entry names now and send it. */
static void slot_start(slot *s)
{
	orepl *r = s->r;
	slot_reset(s);
	if (!s->e.key_len) {
		send_bucket(s);
		return;
	}
	s->ob = malloc(sizeof *s->ob);
	if (!s->ob) {
		slot_retry(s, "out of memory");
		return;
	}
	int rc = meta_object_version(r->env.reader, s->e.bucket, s->e.key, s->e.key_len, s->e.version_id, s->ob);
	if (rc == ERR_NOTFOUND) {
		char ts[HLC_STR_LEN + 1], origin[32];
		rc = meta_tombstone_get(r->env.reader, s->e.bucket, s->e.key, s->e.key_len, s->e.version_id, ts, origin);
		if (rc == ERR_NOTFOUND) {
			slot_finish(s, META_REPL_NONE); /* nothing to say (a tombstone expired) */
			return;
		}
		if (rc != 0) {
			slot_retry(s, "cannot read objects.db");
			return;
		}
		send_remove(s, ts, origin);
		return;
	}
	if (rc != 0) {
		slot_retry(s, "cannot read objects.db");
		return;
	}
	if (!s->decide) {
		rc = meta_tombstone_get(r->env.reader, s->e.bucket, s->e.key, s->e.key_len, s->e.version_id, s->tomb_hlc,
					s->tomb_origin);
		/* ours to deliver (the other region's came from it), or a repair */
		s->with_tomb = rc == 0 && (s->e.repair || strcmp(s->tomb_origin, r->env.self->name) == 0);
		if (rc != 0 && rc != ERR_NOTFOUND) {
			slot_retry(s, "cannot read objects.db");
			return;
		}
	}
	if (!s->e.repair && (s->ob->repl == META_REPL_REPLICA || strcmp(s->ob->origin, r->env.self->name) != 0)) {
		/* the other region's newer write replaced ours: it has it; our
		 * tombstone, if any, still goes */
		if (s->with_tomb) {
			char ts[HLC_STR_LEN + 1], origin[32];
			snprintf(ts, sizeof ts, "%s", s->tomb_hlc);
			snprintf(origin, sizeof origin, "%s", s->tomb_origin);
			s->with_tomb = false;
			send_remove(s, ts, origin);
			return;
		}
		slot_finish(s, META_REPL_NONE);
		return;
	}
	if (s->ob->delete_marker) {
		send_version(s);
		return;
	}
	if (s->ob->parts)
		rc = meta_manifest_parts(r->env.reader, s->ob->manifest, 0, s->ob->size, part_add, s);
	else
		rc = part_add(s, s->ob->blob, 0, s->ob->size);
	if (rc == 0 && s->ob->parts && s->nparts != s->ob->parts)
		rc = ERR_DB;
	if (rc != 0) {
		slot_retry(s, "cannot read a version's parts");
		return;
	}
	unsigned char rnd[16];
	util_random(rnd, sizeof rnd);
	util_hex(rnd, sizeof rnd, s->xfer);
	s->xfer[32] = '\0';
	slot_next(s);
}

void orepl_bind_source(const orepl_env *env, http_client *client)
{
	char host[64];
	int port;
	unsigned char a[16];
	if (client && util_split_hostport(env->self->link_listen, host, sizeof host, &port) == 0 &&
	    (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1) &&
	    strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
		http_client_set_source(client, host);
}

/* Another slot is sending a configuration of e's bucket. A bucket message
 * carries the state read when its slot started, with no clock of its own:
 * two of them in flight at once (created, then versioning enabled) could
 * be applied in the other order, and the older state would stay there for
 * good. So one bucket's entries go one at a time, in outbox order; object
 * versions and tombstones carry their HLC and need no such care. */
static bool bucket_busy(const orepl *r, const meta_outbox_entry *e)
{
	if (e->key_len)
		return false;
	for (int i = 0; i < ORPL_SLOTS; i++) {
		const slot *o = &r->slots[i];
		if (o->state != SLOT_IDLE && !o->decide && !o->e.key_len && strcmp(o->e.bucket, e->bucket) == 0)
			return true;
	}
	return false;
}

static void pump(orepl *r)
{
	if (!r->started || r->stopping || !r->env.peer)
		return;
	for (int i = 0; i < ORPL_SLOTS; i++) {
		slot *s = &r->slots[i];
		if (s->state != SLOT_IDLE)
			continue;
		meta_outbox_entry e;
		int rc = meta_outbox_next(r->env.reader, r->cursor, &e);
		if (rc != 0) {
			if (rc != ERR_NOTFOUND)
				log_error("objects replication: cannot read the outbox (%s)", err_str(rc));
			return;
		}
		if (bucket_busy(r, &e))
			return; /* taken again when that slot is done (the poll) */
		s->e = e;
		r->cursor = s->e.seq;
		s->backoff_ms = 0;
		slot_start(s);
	}
}

static void poll_tick(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

typedef struct expire_job {
	orepl *r;
	int64_t cutoff_ms;
	int dropped;
} expire_job;

static int expire_exec(db_conn *db, void *arg)
{
	expire_job *j = arg;
	return meta_tombstone_expire(db, j->cutoff_ms, 1000, &j->dropped);
}

static void expire_done(void *arg, int rc, uint64_t seq)
{
	expire_job *j = arg;
	if (rc == 0 && j->dropped)
		log_info("objects replication: %d tombstone(s) older than %d days dropped ([objects] tombstone_days)",
			 j->dropped, j->r->env.cfg->objects.tombstone_days);
	free(j);
}

static void stats_tick(evutil_socket_t fd, short what, void *arg)
{
	orepl *r = arg;
	/* tombstones past their keeping time, a batch a minute */
	if (++r->ticks % (60000 / ORPL_STATS_MS) == 1 && !r->stopping) {
		expire_job *j = calloc(1, sizeof *j);
		if (j) {
			j->r = r;
			j->cutoff_ms = util_now_ms() - (int64_t)r->env.cfg->objects.tombstone_days * 86400000;
			if (committer_submit(r->env.writer, expire_exec, expire_done, j) != 0)
				free(j);
		}
	}
	int64_t n = 0, bytes = 0, oldest = 0;
	if (meta_outbox_stats(r->env.reader, &n, &bytes, &oldest) == 0) {
		r->pending = n;
		r->pending_bytes = bytes;
		r->oldest_ms = oldest;
	}
	/* transfers the other side abandoned (a restart there, a failure) */
	int64_t now = util_now_ms();
	for (int i = 0; i < ORPL_XFERS; i++) {
		xfer *x = &r->xfers[i];
		if (x->used && !x->busy && now - x->last_ms > ORPL_XFER_IDLE_MS) {
			blobstore_put_abort(&x->w);
			for (size_t k = 0; k < x->n; k++)
				blobstore_delete(r->env.blobs, x->blobs[k].blob);
			free(x->blobs);
			*x = (xfer){0};
		}
	}
}

/* ----------------------------------------------------------- receiving */

static void rx_free(rx *q)
{
	orepl *r = q->r;
	if (q->prev)
		q->prev->next = q->next;
	else if (r->live == q)
		r->live = q->next;
	if (q->next)
		q->next->prev = q->prev;
	free(q->ob);
	free(q->cors);
	meta_blobs_free(&q->old);
	free(q);
}

static void rx_answer(rx *q, int status, const char *code, const char *msg)
{
	char body[512];
	if (code) {
		buf b;
		buf_init(&b, sizeof body);
		buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
		buf_add_json_escaped(&b, msg, strlen(msg));
		buf_adds(&b, "\"}}");
		http_response_header(q->req, "Content-Type", "application/json");
		http_respond(q->req, status, b.data, b.len);
		buf_free(&b);
	} else {
		snprintf(body, sizeof body, "{\"applied\":%s}", q->applied ? "true" : "false");
		http_response_header(q->req, "Content-Type", "application/json");
		http_respond(q->req, status, body, strlen(body));
	}
	rx_free(q);
}

static void xfer_drop(orepl *r, xfer *x, bool delete_blobs)
{
	blobstore_put_abort(&x->w);
	if (delete_blobs)
		for (size_t k = 0; k < x->n; k++)
			blobstore_delete(r->env.blobs, x->blobs[k].blob);
	free(x->blobs);
	*x = (xfer){0};
}

static xfer *xfer_find(orepl *r, const char *id)
{
	for (int i = 0; i < ORPL_XFERS; i++)
		if (r->xfers[i].used && strcmp(r->xfers[i].id, id) == 0)
			return &r->xfers[i];
	return NULL;
}

static void segment_work(void *arg)
{
	rx *q = arg;
	xfer *x = q->x;
	blobstore *bs = q->r->env.blobs;
	q->rc = 0;
	/* SHA-256 of a transfer's first part only: for a single-part version
	 * it is the whole object, checked against the version's sha256, the one
	 * end-to-end check of replicated bytes (docs/OBJECTS.md, "Integrity");
	 * MD5 and the CRCs come with the version, recomputing them here would
	 * check nothing the SHA-256 does not */
	if (!x->w)
		q->rc = blobstore_put_begin_sums(bs, x->n == 0 ? BLOBHASH_SHA256 : 0, &x->w);
	if (q->rc == 0 && q->len)
		q->rc = blobstore_put_write(x->w, q->data, q->len);
	if (q->rc == 0 && q->final) {
		blob_sums sums;
		char id[BLOBSTORE_ID_LEN + 1];
		snprintf(id, sizeof id, "%s", blobstore_writer_id(x->w));
		q->rc = blobstore_put_commit(&x->w, &sums);
		if (q->rc == 0) {
			if (x->n == x->cap) {
				size_t cap = x->cap ? x->cap * 2 : 4;
				void *p = realloc(x->blobs, cap * sizeof *x->blobs);
				if (!p) {
					blobstore_delete(bs, id);
					q->rc = ERR_NOMEM;
					return;
				}
				x->blobs = p;
				x->cap = cap;
			}
			snprintf(x->blobs[x->n].blob, sizeof x->blobs[x->n].blob, "%s", id);
			x->blobs[x->n].size = sums.size;
			if (x->n == 0)
				x->sums0 = sums;
			x->n++;
		}
	}
	if (q->rc != 0)
		blobstore_put_abort(&x->w);
}

static void segment_done(void *arg)
{
	rx *q = arg;
	orepl *r = q->r;
	xfer *x = q->x;
	x->busy = false;
	x->last_ms = util_now_ms();
	if (q->rc != 0) {
		log_error("objects replication: cannot store a received segment (%s)", err_str(q->rc));
		xfer_drop(r, x, true);
		rx_answer(q, 503, "store_failed", "cannot store the segment here; send the transfer again");
		return;
	}
	x->cur_off += q->len;
	if (q->final) {
		x->cur_off = 0;
		x->cur_size = 0;
	}
	rx_answer(q, 200, NULL, NULL);
}

/* Take segment q->data/q->len (bytes [off, off + len) of part `part`, of
 * `size` bytes, of transfer id) into its transfer and hand it to a worker;
 * done(q) runs on the S3 loop afterwards (q->rc). Answers and returns false
 * when it cannot be taken. */
static bool segment_accept(rx *q, const char *id, long long part, long long off, long long size,
			   void (*done)(void *arg))
{
	orepl *r = q->r;
	if (q->len > ORPL_SEGMENT || (uint64_t)off + q->len > (uint64_t)size) {
		rx_answer(q, 400, "bad_request", "a segment past its part's size, or too long");
		return false;
	}
	xfer *x = xfer_find(r, id);
	if (!x) {
		if (part != 0 || off != 0) {
			rx_answer(q, 404, "unknown_transfer", "no such transfer here (restarted?): send it again");
			return false;
		}
		for (int i = 0; i < ORPL_XFERS && !x; i++)
			if (!r->xfers[i].used)
				x = &r->xfers[i];
		if (!x) {
			rx_answer(q, 503, "busy", "too many transfers in progress here");
			return false;
		}
		*x = (xfer){.used = true};
		memcpy(x->id, id, sizeof x->id); /* 32 hex and the NUL: checked by the caller */
	}
	if (x->busy || (size_t)part != x->n || (uint64_t)off != x->cur_off ||
	    (off > 0 && (uint64_t)size != x->cur_size)) {
		rx_answer(q, 409, "out_of_order", "a segment out of order: send the transfer again");
		if (!x->busy)
			xfer_drop(r, x, true);
		return false;
	}
	x->cur_size = (uint64_t)size;
	x->busy = true;
	x->last_ms = util_now_ms();
	q->x = x;
	q->final = (uint64_t)off + q->len == (uint64_t)size;
	if (workers_submit(r->env.pool, WORKERS_BULK, segment_work, done, q) != 0) {
		x->busy = false;
		q->x = NULL;
		rx_answer(q, 503, "busy", "the blob workers are saturated");
		return false;
	}
	return true;
}

static void on_segment(rx *q, const char *target)
{
	char id[33];
	long long part, off, size;
	const char *why = NULL;
	if (oreplmsg_parse_segment(target, id, &part, &off, &size, &why) != 0) {
		rx_answer(q, 400, "bad_request", why);
		return;
	}
	q->data = http_request_body(q->req, &q->len);
	segment_accept(q, id, part, off, size, segment_done);
}

/* The HLC of what the other region wrote, merged into ours: what we write
 * next is newer. A clock far ahead is not merged (hlc.h), only logged. */
static void merge_clock(orepl *r, const char *text)
{
	hlc_ts t, out;
	if (hlc_decode(text, strlen(text), &t) == 0 && hlc_update(r->env.clock, t, &out) != 0)
		log_warn("objects replication: %s's clock is more than %d s ahead of ours; its HLC is not merged",
			 r->env.peer ? r->env.peer->name : "the other region", HLC_DEFAULT_MAX_DRIFT_MS / 1000);
}

static int version_exec(db_conn *db, void *arg)
{
	rx *q = arg;
	q->old.count = 0;
	if (q->kind == 1 && q->decide) {
		int rc = meta_replica_decide(db, q->ob, q->x->blobs, q->x->n, q->cond, q->cond_etag, q->latest_hlc,
					     &q->old);
		q->applied = rc == 0;
		return rc;
	}
	if (q->kind == 1 && q->has_tomb) {
		bool removed = false;
		int rc = meta_replica_remove(db, q->ob->bucket, q->ob->key, q->ob->key_len, q->ob->version_id,
					     q->tomb_hlc, q->tomb_origin, &removed, &q->old);
		if (rc != 0)
			return rc;
	}
	if (q->kind == 1)
		return meta_replica_put(db, q->ob, q->x ? q->x->blobs : NULL, q->x ? q->x->n : 0, &q->applied, &q->old);
	if (q->kind == 2)
		return meta_replica_remove(db, q->ob->bucket, q->ob->key, q->ob->key_len, q->ob->version_id, q->ob->hlc,
					   q->ob->origin, &q->applied, &q->old);
	return meta_replica_bucket(db, &q->b, q->cors, q->removed, &q->applied);
}

static void version_committed(void *arg, int rc, uint64_t seq)
{
	rx *q = arg;
	orepl *r = q->r;
	if (rc == 0) {
		for (size_t i = 0; i < q->old.count; i++)
			blobstore_delete(r->env.blobs, q->old.ids[i]);
		if (q->applied)
			r->applied++;
		if (q->kind != 3) {
			merge_clock(r, q->ob->hlc);
		} else {
			const char *stamps[] = {q->b.versioning_stamp, q->b.acl_stamp, q->b.cors_stamp};
			for (size_t i = 0; i < 3; i++)
				if (stamps[i][0]) {
					char t[HLC_STR_LEN + 1];
					memcpy(t, stamps[i], HLC_STR_LEN);
					t[HLC_STR_LEN] = '\0';
					merge_clock(r, t);
				}
		}
		if (q->has_tomb)
			merge_clock(r, q->tomb_hlc);
	}
	if (q->x)
		xfer_drop(r, q->x, rc != 0 || !q->applied);
	if (q->decide && rc == ERR_CONFLICT) {
		rx_answer(q, 412, "precondition_failed", "the condition does not hold at the records' primary");
		return;
	}
	if (q->decide && rc == ERR_NOTFOUND) {
		rx_answer(q, 404, "no_such_key", "If-Match: no such object at the records' primary");
		return;
	}
	if (q->decide && rc == ERR_AGAIN) {
		char body[160];
		snprintf(body, sizeof body, "{\"error\":{\"code\":\"stale_hlc\",\"message\":\"a newer version is "
			 "here\",\"hlc\":\"%s\"}}", q->latest_hlc);
		http_response_header(q->req, "Content-Type", "application/json");
		http_respond(q->req, 409, body, strlen(body));
		rx_free(q);
		return;
	}
	if (rc != 0) {
		log_error("objects replication: cannot apply a write from %s (%s)",
			  r->env.peer ? r->env.peer->name : "the other region", err_str(rc));
		rx_answer(q, rc == ERR_INVAL ? 400 : 503, rc == ERR_INVAL ? "bad_request" : "store_failed",
			  rc == ERR_INVAL ? "the parts do not fit the version" : "cannot apply it here now");
		return;
	}
	rx_answer(q, 200, NULL, NULL);
}

static void inline_done(void *arg);
static void version_ready(rx *q);

/* A version (kind 1) or tombstone (kind 2) message: its JSON, and for a
 * version the inline final segment in q->data/q->len. */
static void on_version(rx *q, const char *json, size_t jlen, int kind)
{
	orepl *r = q->r;
	q->kind = kind;
	oreplmsg_version *m = malloc(sizeof *m);
	if (!m) {
		rx_answer(q, 503, "overloaded", "out of memory");
		return;
	}
	const char *why = NULL;
	if (oreplmsg_parse_version(json, jlen, kind == 2, q->len, m, &why) != 0) {
		free(m);
		rx_answer(q, 400, "bad_request", why);
		return;
	}
	q->ob = malloc(sizeof *q->ob);
	if (!q->ob) {
		free(m);
		rx_answer(q, 503, "overloaded", "out of memory");
		return;
	}
	*q->ob = m->ob;
	q->has_tomb = m->has_tomb;
	snprintf(q->tomb_hlc, sizeof q->tomb_hlc, "%s", m->tomb_hlc);
	snprintf(q->tomb_origin, sizeof q->tomb_origin, "%s", m->tomb_origin);
	if (m->has_decide) {
		if (!r->is_primary || !r->is_primary(r->primary_arg)) {
			free(m);
			rx_answer(q, 409, "not_primary", "conditional writes are decided by the records' primary");
			return;
		}
		q->decide = true;
		q->cond = m->cond;
		snprintf(q->cond_etag, sizeof q->cond_etag, "%s", m->cond_etag);
	}
	if (kind == 1 && !q->ob->delete_marker) {
		snprintf(q->xfer_id, sizeof q->xfer_id, "%s", m->xfer);
		if (m->has_seg) {
			long long part = m->seg_part, off = m->seg_off, size = m->seg_size;
			free(m);
			segment_accept(q, q->xfer_id, part, off, size, inline_done);
			return;
		}
	}
	free(m);
	version_ready(q);
}

/* The inline final segment is stored: on to the version. */
static void inline_done(void *arg)
{
	rx *q = arg;
	orepl *r = q->r;
	xfer *x = q->x;
	x->busy = false;
	x->last_ms = util_now_ms();
	q->x = NULL;
	if (q->rc != 0) {
		log_error("objects replication: cannot store a received object (%s)", err_str(q->rc));
		xfer_drop(r, x, true);
		rx_answer(q, 503, "store_failed", "cannot store the data here; send it again");
		return;
	}
	x->cur_off = x->cur_size = 0;
	version_ready(q);
}

/* The version's data is here (or it has none): check it, apply it. */
static void version_ready(rx *q)
{
	orepl *r = q->r;
	meta_object *o = q->ob;
	if (q->kind == 1 && !o->delete_marker) {
		q->x = xfer_find(r, q->xfer_id);
		if (!q->x || q->x->busy || q->x->w) {
			q->x = NULL;
			rx_answer(q, 404, "unknown_transfer", "the version's data is not here: send it again");
			return;
		}
		size_t want = o->parts ? o->parts : 1;
		uint64_t total = 0;
		for (size_t i = 0; i < q->x->n; i++)
			total += q->x->blobs[i].size;
		char got[65] = "";
		if (!o->parts) {
			util_hex(q->x->sums0.sha256, 32, got);
			got[64] = '\0';
		}
		if (q->x->n != want || total != o->size || (!o->parts && o->sha256[0] && strcmp(got, o->sha256) != 0)) {
			xfer_drop(r, q->x, true);
			q->x = NULL;
			rx_answer(q, 409, "data_mismatch", "the data received does not match the version: send it again");
			return;
		}
	}
	if (q->x)
		q->x->busy = true; /* held by the commit */
	if (committer_submit(r->env.writer, version_exec, version_committed, q) != 0) {
		if (q->x)
			q->x->busy = false;
		q->x = NULL;
		rx_answer(q, 503, "overloaded", "the object store's writer is saturated");
	}
}

static void on_bucket(rx *q, const char *json, size_t jlen)
{
	orepl *r = q->r;
	q->kind = 3;
	const char *why = NULL;
	int rc = oreplmsg_parse_bucket(json, jlen, &q->b, &q->cors, &q->removed, &why);
	if (rc != 0) {
		rx_answer(q, rc == ERR_NOMEM ? 503 : 400, rc == ERR_NOMEM ? "overloaded" : "bad_request", why);
		return;
	}
	if (committer_submit(r->env.writer, version_exec, version_committed, q) != 0)
		rx_answer(q, 503, "overloaded", "the object store's writer is saturated");
}

void orepl_handle(orepl *r, http_request *req)
{
	const http_message *hm = http_request_message(req);
	if (strcmp(hm->method, "GET") == 0 && r->started && !r->stopping) {
		oae_serve(&r->env, req); /* digests and lists: read-only */
		return;
	}
	if (strcmp(hm->method, "POST") == 0 && strcmp(hm->target, "/internal/v1/objects/anti-entropy") == 0) {
		oae_run_now(r->ae);
		http_response_header(req, "Content-Type", "application/json");
		http_respond(req, 202, "{\"started\":true}", 16);
		return;
	}
	rx *q = calloc(1, sizeof *q);
	if (!q) {
		http_respond(req, 503, NULL, 0);
		return;
	}
	q->r = r;
	q->req = req;
	q->next = r->live;
	if (r->live)
		r->live->prev = q;
	r->live = q;
	if (r->stopping || !r->started) {
		rx_answer(q, 503, "stopping", "the object store is stopping");
		return;
	}
	const http_message *m = http_request_message(req);
	const char *t = m->target + strlen("/internal/v1/objects/");
	if (strcmp(m->method, "POST") != 0) {
		rx_answer(q, 405, "method_not_allowed", "object replication messages are POSTs");
		return;
	}
	if (strncmp(t, "segment?", 8) == 0) {
		on_segment(q, m->target);
		return;
	}
	size_t len;
	const char *body = http_request_body(req, &len);
	int kind = strcmp(t, "version") == 0 ? 1 : strcmp(t, "remove") == 0 ? 2 : strcmp(t, "bucket") == 0 ? 3 : 0;
	if (!kind) {
		rx_answer(q, 404, "not_found", "no such object replication route");
		return;
	}
	/* a version may carry its final segment: u32 length of the JSON, the
	 * JSON, then the bytes (oreplmsg.h) */
	oreplmsg_frame f = {.json = body ? body : "", .json_len = body ? len : 0};
	const char *why = NULL;
	if (kind == 1 && oreplmsg_split(body, len, &f, &why) != 0) {
		rx_answer(q, 400, "bad_request", why);
		return;
	}
	q->data = f.data;
	q->len = f.data_len;
	if (kind == 3)
		on_bucket(q, f.json, f.json_len);
	else
		on_version(q, f.json, f.json_len, kind);
}

/* ------------------------------------------------------------ lifecycle */

orepl *orepl_new(const orepl_env *env)
{
	orepl *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->env = *env;
	r->ae = oae_new(env);
	if (!r->ae ||
	    (env->peer && util_split_hostport(env->peer->link_listen, r->host, sizeof r->host, &r->port) != 0)) {
		oae_free(&r->ae);
		free(r);
		return NULL;
	}
	return r;
}

int orepl_start(orepl *r)
{
	r->started = true;
	if (!r->env.peer)
		return 0;
	http_limits limits = {16384, 100, 1 << 20, 0};
	for (int i = 0; i < ORPL_SLOTS; i++) {
		slot *s = &r->slots[i];
		s->r = r;
		buf_init(&s->body, ORPL_BODY_MAX);
		s->client = http_client_new(r->env.base, r->env.client_ctx, r->host, r->port, r->env.peer->name, &limits,
					    ORPL_TIMEOUT_MS);
		orepl_bind_source(&r->env, s->client);
		s->timer = evtimer_new(r->env.base, slot_timer, s);
		if (!s->client || !s->timer)
			return ERR_NOMEM;
	}
	for (int i = 0; i < ORPL_DECIDE_SLOTS; i++) {
		slot *s = &r->dslots[i];
		s->r = r;
		buf_init(&s->body, ORPL_BODY_MAX);
		s->client = http_client_new(r->env.base, r->env.client_ctx, r->host, r->port, r->env.peer->name, &limits,
					    r->env.cfg->replication.forward_timeout_ms);
		orepl_bind_source(&r->env, s->client);
		s->timer = evtimer_new(r->env.base, slot_timer, s);
		if (!s->client || !s->timer)
			return ERR_NOMEM;
	}
	r->poll_ev = event_new(r->env.base, -1, EV_PERSIST, poll_tick, r);
	r->stats_ev = event_new(r->env.base, -1, EV_PERSIST, stats_tick, r);
	if (!r->poll_ev || !r->stats_ev)
		return ERR_NOMEM;
	struct timeval p = util_timeval_ms(ORPL_POLL_MS), st = util_timeval_ms(ORPL_STATS_MS);
	event_add(r->poll_ev, &p);
	event_add(r->stats_ev, &st);
	stats_tick(-1, 0, r);
	return oae_start(r->ae);
}

void orepl_stop(orepl *r)
{
	if (!r || r->stopping)
		return;
	r->stopping = true;
	oae_stop(r->ae);
	if (r->poll_ev)
		event_del(r->poll_ev);
	if (r->stats_ev)
		event_del(r->stats_ev);
	for (int i = 0; i < ORPL_SLOTS + ORPL_DECIDE_SLOTS; i++) {
		slot *s = i < ORPL_SLOTS ? &r->slots[i] : &r->dslots[i - ORPL_SLOTS];
		if (s->timer)
			event_del(s->timer);
		/* a request on the link: its callback sees stopping */
		http_client_free(&s->client);
		/* a decide slot whose segment a worker is reading ends in
		 * read_done (its buffer is the worker's until then) */
		if (s->decide && s->dcb && s->state != SLOT_READ)
			decide_end(s, ERR_IO);
	}
	waiters_done(r, 0, false);
}

void orepl_free(orepl **rp)
{
	orepl *r = *rp;
	if (!r)
		return;
	orepl_stop(r);
	/* requests still in hand (their jobs were run by workers_free /
	 * committer_free before this, so only those never started remain) */
	while (r->live) {
		rx *q = r->live;
		http_request_abort(q->req);
		rx_free(q);
	}
	for (int i = 0; i < ORPL_XFERS; i++)
		if (r->xfers[i].used)
			xfer_drop(r, &r->xfers[i], true);
	for (int i = 0; i < ORPL_SLOTS + ORPL_DECIDE_SLOTS; i++) {
		slot *s = i < ORPL_SLOTS ? &r->slots[i] : &r->dslots[i - ORPL_SLOTS];
		slot_reset(s);
		buf_free(&s->body);
		if (s->timer)
			event_free(s->timer);
	}
	if (r->poll_ev)
		event_free(r->poll_ev);
	if (r->stats_ev)
		event_free(r->stats_ev);
	oae_free(&r->ae);
	free(r);
	*rp = NULL;
}

static void wait_timeout(evutil_socket_t fd, short what, void *arg)
{
	waiter *w = arg;
	orepl *r = w->r;
	if (w->prev)
		w->prev->next = w->next;
	else
		r->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	event_free(w->timer);
	w->cb(w->arg, false);
	free(w);
}

void orepl_wait(orepl *r, int64_t seq, int timeout_ms, orepl_wait_cb cb, void *arg)
{
	if (!r->env.peer || seq <= 0) {
		cb(arg, true);
		return;
	}
	if (r->stopping) {
		cb(arg, false);
		return;
	}
	int has = meta_outbox_has(r->env.reader, seq);
	if (has == 0) { /* already shipped (its commit came back first) */
		cb(arg, true);
		return;
	}
	waiter *w = calloc(1, sizeof *w);
	if (w)
		w->timer = evtimer_new(r->env.base, wait_timeout, w);
	if (!w || !w->timer || has < 0) {
		if (w && w->timer)
			event_free(w->timer);
		free(w);
		cb(arg, false);
		return;
	}
	w->seq = seq;
	w->cb = cb;
	w->arg = arg;
	w->r = r;
	w->next = r->waiters;
	if (r->waiters)
		r->waiters->prev = w;
	r->waiters = w;
	struct timeval tv = util_timeval_ms(timeout_ms);
	evtimer_add(w->timer, &tv);
	pump(r); /* now, rather than at the next poll */
}

void orepl_kick(orepl *r)
{
	pump(r);
}

void orepl_set_primary_fn(orepl *r, bool (*is_primary)(void *arg), void *arg)
{
	r->is_primary = is_primary;
	r->primary_arg = arg;
}

void orepl_decide(orepl *r, const meta_object *o, int cond, const char *etag, orepl_decide_cb cb, void *arg)
{
	slot *s = NULL;
	for (int i = 0; i < ORPL_DECIDE_SLOTS && !s && r->started && !r->stopping && r->env.peer; i++)
		if (r->dslots[i].state == SLOT_IDLE && r->dslots[i].client)
			s = &r->dslots[i];
	if (!s) {
		cb(arg, ERR_LIMIT);
		return;
	}
	slot_reset(s);
	s->ob = malloc(sizeof *s->ob);
	if (!s->ob || part_add(s, o->blob, 0, o->size) != 0) {
		slot_reset(s);
		cb(arg, ERR_NOMEM);
		return;
	}
	*s->ob = *o;
	s->decide = true;
	s->cond = cond == META_COND_ETAG ? META_COND_ETAG : META_COND_ABSENT;
	snprintf(s->cond_etag, sizeof s->cond_etag, "%s", etag ? etag : "");
	s->dcb = cb;
	s->darg = arg;
	unsigned char rnd[16];
	util_random(rnd, sizeof rnd);
	util_hex(rnd, sizeof rnd, s->xfer);
	s->xfer[32] = '\0';
	slot_next(s);
}

void orepl_get_stats(orepl *r, orepl_stats *out)
{
	*out = (orepl_stats){0};
	if (!r)
		return;
	out->enabled = r->env.peer != NULL;
	out->pending = r->pending;
	out->pending_bytes = r->pending_bytes;
	out->oldest_pending_ms = r->oldest_ms;
	out->shipped = r->shipped;
	out->failed = r->failed;
	out->applied = r->applied;
	out->superseded = r->superseded;
	out->errors = r->errors;
	for (int i = 0; i < 12; i++)
		out->lag_buckets[i] = r->lag_buckets[i];
	out->lag_count = r->lag_count;
	out->lag_sum_s = (double)r->lag_sum_us / 1e6;
	out->last_error_ms = r->last_error_ms;
	out->lag_ms = out->oldest_pending_ms ? util_now_ms() - out->oldest_pending_ms : 0;
	oae_stats(r->ae, &out->ae_passes, &out->repairs, &out->ae_last_ms);
	if (out->lag_ms < 0)
		out->lag_ms = 0;
}
