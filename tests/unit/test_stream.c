/*
 * test_stream.c - the primary's side of replication (src/replication/
 * stream.c) without a network: a subscriber gets the log from its `from`
 * in order (and later entries as they commit), the refusals of a stream
 * request (diverged, snapshot required), acknowledgements advance
 * acked_seq and wake the waiters of ctl_wait_acked (what repl_wait_acked
 * posts to the control thread), a stale-epoch or foreign ack is refused,
 * and the trim never removes an entry not yet acknowledged unless it is
 * past the retention bounds (log_max_age_s, log_max_bytes).
 *
 * The file is included (as test_election.c does) with these seams put in
 * by macros around the #include (production code is unchanged):
 *
 *   - an in-memory server side: the request (target, X-Tandem-Epoch, body)
 *     is a fake the test fills, and what stream.c answers (status, code,
 *     the chunks of the stream) is recorded in it;
 *   - the election hooks (learn, heard, lease) and the view publish are
 *     stand-ins that record their calls;
 *   - the trim job goes through the real repl_submit to a real committer on
 *     a temporary database (the log is a real repl_log table).
 */
#include <event2/thread.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "faultvfs.h"
#include "replication/capture.h"
#include "replication/internal.h"
#include "store/committer.h"
#include "store/db.h"
#include "test.h"

/* --- the in-memory server side --- */

typedef struct fake_req {
	http_message m;
	http_field epoch_field;
	char epoch_text[24];
	const char *body;
	int status;          /* 0: not answered */
	char code[48];
	buf out;             /* the stream's bytes */
	bool ended, aborted, closed, drain_registered;
} fake_req;

static void fake_req_init(fake_req *f, const char *target, uint64_t epoch, const char *body)
{
	*f = (fake_req){.body = body ? body : ""};
	f->m.kind = HTTP_REQUEST;
	f->m.method = body ? "POST" : "GET";
	f->m.target = target;
	if (epoch) {
		snprintf(f->epoch_text, sizeof f->epoch_text, "%llu", (unsigned long long)epoch);
		f->epoch_field = (http_field){.name = "X-Tandem-Epoch", .name_len = 14, .value = f->epoch_text,
					      .value_len = strlen(f->epoch_text)};
		f->m.fields = &f->epoch_field;
		f->m.field_count = 1;
	}
	buf_init(&f->out, 1 << 20);
}

static const http_message *fake_request_message(const http_request *req)
{
	return &((const fake_req *)req)->m;
}

static const char *fake_request_body(const http_request *req, size_t *len)
{
	const fake_req *f = (const fake_req *)req;
	*len = strlen(f->body);
	return f->body;
}

static int fake_response_header(http_request *req, const char *name, const char *value)
{
	return 0;
}

static void fake_respond(http_request *req, int status, const char *body, size_t len)
{
	fake_req *f = (fake_req *)req;
	f->status = status;
	const char *c = strstr(body, "\"code\":\"");
	snprintf(f->code, sizeof f->code, "%.*s", c ? (int)strcspn(c + 8, "\"") : 0, c ? c + 8 : "");
}

static void fake_repl_answer(http_request *req, int status, const char *code, const char *json_or_message)
{
	fake_req *f = (fake_req *)req;
	f->status = status;
	snprintf(f->code, sizeof f->code, "%s", code ? code : "");
}

static void fake_respond_start(http_request *req, int status)
{
	((fake_req *)req)->status = status;
}

static void fake_respond_chunk(http_request *req, const char *data, size_t len)
{
	CHECK_EQ_INT(buf_add(&((fake_req *)req)->out, data, len), 0);
}

static void fake_respond_end(http_request *req)
{
	((fake_req *)req)->ended = true;
}

static void fake_request_abort(http_request *req)
{
	((fake_req *)req)->aborted = true;
}

static bool fake_request_is_closed(const http_request *req)
{
	return ((const fake_req *)req)->closed;
}

static size_t fake_output_pending(const http_request *req)
{
	return 0;
}

static size_t fake_output_room(const http_request *req)
{
	return 1 << 20;
}

static void fake_on_drain(http_request *req, http_drain_fn fn, void *arg)
{
	((fake_req *)req)->drain_registered = true;
}

/* --- the election's side --- */

static uint64_t learned;
static int heard;

static void fake_election_learn(repl *r, uint64_t epoch)
{
	learned = epoch;
}

static void fake_election_heard(repl *r)
{
	heard++;
}

static bool fake_election_lease_valid(const repl *r)
{
	return false;
}

static void fake_view_publish(repl *r)
{
}

#define http_request_message fake_request_message
#define http_request_body fake_request_body
#define http_response_header fake_response_header
#define http_respond fake_respond
#define http_respond_start fake_respond_start
#define http_respond_chunk fake_respond_chunk
#define http_respond_end fake_respond_end
#define http_request_abort fake_request_abort
#define http_request_is_closed fake_request_is_closed
#define http_request_output_pending fake_output_pending
#define http_request_output_room fake_output_room
#define http_request_on_drain fake_on_drain
#define repl_answer fake_repl_answer
#define election_learn fake_election_learn
#define election_heard fake_election_heard
#define election_lease_valid fake_election_lease_valid
#define repl_view_publish fake_view_publish
#include "replication/stream.c"
#undef repl_view_publish
#undef election_lease_valid
#undef election_heard
#undef election_learn
#undef repl_answer
#undef http_request_on_drain
#undef http_request_output_room
#undef http_request_output_pending
#undef http_request_is_closed
#undef http_request_abort
#undef http_respond_end
#undef http_respond_chunk
#undef http_respond_start
#undef http_respond
#undef http_response_header
#undef http_request_body
#undef http_request_message

static char dir[] = "/tmp/tandem-test-stream-XXXXXX";
static struct event_base *tbase;
static config cfg;
static committer *writer;
static db_conn *rd;
static int ndb;

/* Append entry seq of epoch to the log (through a connection of its own:
 * the writer's belongs to its thread), committed at committed_at. */
static char dbpath[200];
static void log_entry(uint64_t seq, uint64_t epoch, int64_t committed_at, size_t payload_len)
{
	char err[256];
	db_conn *c = db_open(dbpath, false, err, sizeof err);
	CHECK(c != NULL);
	sqlite3_stmt *st = NULL;
	CHECK_EQ_INT(sqlite3_prepare_v2(db_handle(c), "INSERT INTO repl_log VALUES (?1, ?2, ?3, ?4, ?5)", -1, &st,
					NULL),
		     SQLITE_OK);
	unsigned char payload[4096];
	CHECK(payload_len <= sizeof payload);
	memset(payload, (int)seq, sizeof payload);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)epoch);
	sqlite3_bind_int(st, 3, LOG_CHANGESET);
	sqlite3_bind_int64(st, 4, committed_at);
	sqlite3_bind_blob(st, 5, payload, (int)payload_len, SQLITE_TRANSIENT);
	CHECK_EQ_INT(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	db_close(&c);
}

static int64_t count(const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;
	if (sqlite3_prepare_v2(db_handle(rd), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* A primary whose log holds entries 1..n of epoch 1, committed now. */
static repl *open_primary(uint64_t n)
{
	char err[256];
	snprintf(dbpath, sizeof dbpath, "%s/primary%d.db", dir, ndb++);
	db_conn *w = db_open(dbpath, false, err, sizeof err);
	CHECK(w != NULL);
	CHECK_EQ_INT(capture_bootstrap(w, "primary", err, sizeof err), 0);
	for (uint64_t s = 1; s <= n; s++)
		log_entry(s, 1, util_now_ms(), 16);
	writer = committer_new(tbase, w, 16, 100);
	CHECK(writer != NULL);
	rd = db_open(dbpath, true, err, sizeof err);
	CHECK(rd != NULL);
	repl *r = calloc(1, sizeof *r);
	CHECK(r != NULL);
	CHECK_EQ_INT(repl_parts_new(r), 0);
	r->env = (repl_env){.base = tbase, .cfg = &cfg, .self = &cfg.regions[0], .peer = &cfg.regions[1],
			    .reader = rd, .writer = writer};
	r->ctl_done = loop_queue_new(tbase);
	CHECK(r->ctl_done != NULL);
	r->primary = true;
	r->epoch = 1;
	r->position = n;
	history_add(r, 1, 1);
	learned = 0;
	heard = 0;
	return r;
}

static void close_primary(repl *r)
{
	r->stopping = true;
	stream_stop(r);
	stream_fail_waiters(r);
	committer_free(&writer);
	loop_queue_free(&r->ctl_done);
	db_close(&rd);
	repl_parts_free(r);
	free(r);
}

/* The seqs of the frames in a subscriber's output, in order (heartbeats
 * left out); how many. */
static int stream_seqs(fake_req *f, uint64_t *seqs, int max)
{
	int n = 0;
	size_t off = 0;
	for (;;) {
		frame fr;
		size_t used;
		int rc = frame_decode((const unsigned char *)f->out.data + off, f->out.len - off, &fr, &used);
		CHECK(rc >= 0);
		if (rc <= 0)
			break;
		off += used;
		if (fr.type != FRAME_HEARTBEAT && n < max)
			seqs[n++] = fr.seq;
	}
	CHECK_EQ_INT(off, f->out.len); /* only whole frames were sent */
	return n;
}

static void stream_req(repl *r, fake_req *f, const char *target, uint64_t epoch)
{
	fake_req_init(f, target, epoch, NULL);
	stream_handle(r, (http_request *)f, "us");
}

static void ack(repl *r, fake_req *f, uint64_t epoch, const char *body)
{
	fake_req_init(f, "/internal/v1/replication/ack", epoch, body);
	stream_handle_ack(r, (http_request *)f, "us");
	buf_free(&f->out);
}

/* Rule: a subscriber gets exactly the entries from its `from` on, in
 * order and without gaps, and then each entry as it commits; asking from
 * N acknowledges N - 1 (what it has). */
static void test_a_subscriber_gets_entries_from_its_from(void)
{
	repl *r = open_primary(5);
	fake_req f;
	stream_req(r, &f, "/internal/v1/replication/stream?from=3&prev_epoch=1", 1);
	CHECK_EQ_INT(f.status, 200);
	CHECK(r->stream->subs != NULL);
	uint64_t seqs[16];
	int n = stream_seqs(&f, seqs, 16);
	CHECK_EQ_INT(n, 3);
	for (int i = 0; i < n; i++)
		CHECK_EQ_INT(seqs[i], 3 + (uint64_t)i);
	CHECK_EQ_INT(r->stream->acked_seq, 2);
	/* entries 6 and 7 commit: only they go out */
	log_entry(6, 1, util_now_ms(), 16);
	log_entry(7, 2, util_now_ms(), 16);
	history_add(r, 2, 7);
	r->position = 7;
	buf_reset(&f.out);
	stream_on_committed(r);
	n = stream_seqs(&f, seqs, 16);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(seqs[0], 6);
	CHECK_EQ_INT(seqs[1], 7);
	/* nothing new: nothing sent */
	buf_reset(&f.out);
	stream_on_committed(r);
	CHECK_EQ_INT(f.out.len, 0);
	/* the subscriber went away: its stream ends at the next commit */
	f.closed = true;
	stream_on_committed(r);
	CHECK(f.ended);
	CHECK(r->stream->subs == NULL);
	buf_free(&f.out);
	close_primary(r);
}

/* Rule: a stream request the log cannot serve is refused, with the code
 * that tells the secondary what to do: ahead of the log or a different
 * entry before `from` (diverged: rejoin), before the oldest entry kept
 * (snapshot_required), no `from` (bad_request), not the primary. */
static void test_stream_requests_refused(void)
{
	repl *r = open_primary(5);
	struct {
		const char *target;
		int status;
		const char *code;
	} cases[] = {
		{"/internal/v1/replication/stream?from=7&prev_epoch=1", 409, "diverged"},
		{"/internal/v1/replication/stream?from=4&prev_epoch=2", 409, "diverged"},
		{"/internal/v1/replication/stream?from=1&prev_epoch=0", 410, "snapshot_required"},
		{"/internal/v1/replication/stream", 400, "bad_request"},
		{"/internal/v1/replication/stream?from=0", 400, "bad_request"},
	};
	/* the oldest entry is trimmed away */
	char err[256];
	db_conn *c = db_open(dbpath, false, err, sizeof err);
	CHECK(c != NULL);
	CHECK_EQ_INT(db_exec(c, "DELETE FROM repl_log WHERE seq = 1"), 0);
	db_close(&c);
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		fake_req f;
		stream_req(r, &f, cases[k].target, 1);
		CHECK_EQ_INT(f.status, cases[k].status);
		CHECK_EQ_STR(f.code, cases[k].code);
		CHECK_EQ_INT(f.out.len, 0);
		CHECK(r->stream->subs == NULL);
		buf_free(&f.out);
	}
	CHECK_EQ_INT(r->stream->acked_seq, 0); /* no refused request counted as an ack */
	r->primary = false;
	fake_req f;
	stream_req(r, &f, "/internal/v1/replication/stream?from=2&prev_epoch=1", 1);
	CHECK_EQ_INT(f.status, 409);
	CHECK_EQ_STR(f.code, "not_primary");
	buf_free(&f.out);
	close_primary(r);
}

static int woke, woke_ok;

static void on_acked(void *arg, bool ok)
{
	woke++;
	woke_ok += ok;
}

/* Rule: an ack of the primary's entry moves acked_seq forward (never
 * back) and wakes exactly the waiters it covers; the isolation gate hears
 * the secondary. */
static void test_acks_advance_and_wake_waiters(void)
{
	repl *r = open_primary(5);
	woke = woke_ok = 0;
	ctl_wait_acked(r, 4, 60000, on_acked, NULL);
	ctl_wait_acked(r, 5, 60000, on_acked, NULL);
	CHECK_EQ_INT(woke, 0);
	fake_req f;
	ack(r, &f, 1, "{\"seq\":3,\"epoch\":1}");
	CHECK_EQ_INT(f.status, 200);
	CHECK_EQ_INT(r->stream->acked_seq, 3);
	CHECK_EQ_INT(woke, 0);
	CHECK_EQ_INT(heard, 1);
	ack(r, &f, 1, "{\"seq\":4,\"epoch\":1}");
	CHECK_EQ_INT(r->stream->acked_seq, 4);
	CHECK_EQ_INT(woke, 1);
	CHECK_EQ_INT(woke_ok, 1);
	ack(r, &f, 1, "{\"seq\":2,\"epoch\":1}"); /* a late, older ack */
	CHECK_EQ_INT(f.status, 200);
	CHECK_EQ_INT(r->stream->acked_seq, 4);
	ack(r, &f, 1, "{\"seq\":5}"); /* without the entry's epoch (older secondaries) */
	CHECK_EQ_INT(r->stream->acked_seq, 5);
	CHECK_EQ_INT(woke, 2);
	CHECK_EQ_INT(woke_ok, 2);
	/* already acknowledged: answered at once */
	ctl_wait_acked(r, 5, 60000, on_acked, NULL);
	CHECK_EQ_INT(woke_ok, 3);
	CHECK(r->stream->ack_waiters == NULL);
	close_primary(r);
}

/* Rule: an ack that cannot be the primary's entry does not count: from a
 * past epoch (409 stale_epoch: a deposed primary's secondary), beyond the
 * log, of an entry of another epoch (diverged), or not a position. A
 * newer epoch in an ack deposes this primary (learned). */
static void test_stale_and_foreign_acks_refused(void)
{
	repl *r = open_primary(5);
	r->epoch = 3;
	history_add(r, 3, 5); /* entry 5 is of epoch 3 */
	woke = woke_ok = 0;
	ctl_wait_acked(r, 1, 60000, on_acked, NULL);
	struct {
		uint64_t epoch;
		const char *body;
		int status;
		const char *code;
	} cases[] = {
		{2, "{\"seq\":3,\"epoch\":1}", 409, "stale_epoch"},
		{3, "{\"seq\":6,\"epoch\":3}", 409, "diverged"},
		{3, "{\"seq\":5,\"epoch\":2}", 409, "diverged"},
		{3, "{\"seq\":-1}", 400, "bad_request"},
		{3, "{\"seq\":\"4\"}", 400, "bad_request"},
		{3, "not json", 400, "bad_request"},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		fake_req f;
		ack(r, &f, cases[k].epoch, cases[k].body);
		CHECK_EQ_INT(f.status, cases[k].status);
		CHECK_EQ_STR(f.code, cases[k].code);
		CHECK_EQ_INT(r->stream->acked_seq, 0);
		CHECK_EQ_INT(woke, 0);
	}
	CHECK_EQ_INT(heard, 0); /* no refused ack counts as hearing the secondary */
	CHECK_EQ_INT(learned, 0);
	fake_req f;
	ack(r, &f, 4, "{\"seq\":1,\"epoch\":1}");
	CHECK_EQ_INT(learned, 4);
	close_primary(r);
}

/* Run the control loop until the trim job is done. */
static void trim_now(repl *r)
{
	stream_trim(-1, EV_TIMEOUT, r);
	for (int i = 0; i < 1000 && r->stream->trim_running; i++)
		event_base_loop(tbase, EVLOOP_ONCE);
	CHECK(!r->stream->trim_running);
}

/* Rule: the trim deletes acknowledged entries only, unless an entry is
 * past the retention bounds (older than log_max_age_s, or beyond
 * log_max_bytes counted from the newest, keeping at least the newest);
 * without a secondary configured it trims through the position; a region
 * that is not primary does not trim. */
static void test_trim_keeps_what_is_not_acknowledged(void)
{
	repl *r = open_primary(5);
	r->stream->acked_seq = 2;
	trim_now(r);
	CHECK_EQ_INT(count("SELECT min(seq) FROM repl_log"), 3);
	CHECK_EQ_INT(count("SELECT count(*) FROM repl_log"), 3);
	CHECK_EQ_INT(r->stream->trimmed_through, 2);
	/* again: nothing more goes */
	trim_now(r);
	CHECK_EQ_INT(count("SELECT count(*) FROM repl_log"), 3);
	/* not primary: no trim even with everything acknowledged */
	r->primary = false;
	r->stream->acked_seq = 5;
	trim_now(r);
	CHECK_EQ_INT(count("SELECT count(*) FROM repl_log"), 3);
	r->primary = true;
	r->stream->acked_seq = 2;
	/* retention by age: entries 6, 7 are ancient, the rest recent */
	log_entry(6, 1, util_now_ms() - (int64_t)cfg.replication.log_max_age_s * 1000 - 60000, 16);
	log_entry(7, 1, util_now_ms(), 16);
	r->position = 7;
	trim_now(r);
	CHECK_EQ_INT(count("SELECT count(*) FROM repl_log WHERE seq = 6"), 0);
	CHECK_EQ_INT(count("SELECT count(*) FROM repl_log"), 4); /* 3, 4, 5, 7 */
	/* retention by size: only the newest that fit in log_max_bytes stay
	 * (8 and 9 of 3000 bytes each, bound 6010: 8 and 9; 3..7 of 16 bytes
	 * each, not acknowledged, go) */
	int64_t max_before = cfg.replication.log_max_bytes;
	cfg.replication.log_max_bytes = 6010;
	log_entry(8, 1, util_now_ms(), 3000);
	log_entry(9, 1, util_now_ms(), 3000);
	r->position = 9;
	trim_now(r);
	CHECK_EQ_INT(count("SELECT min(seq) FROM repl_log"), 8);
	CHECK_EQ_INT(count("SELECT count(*) FROM repl_log"), 2);
	/* a single entry larger than the bound is kept */
	cfg.replication.log_max_bytes = 100;
	trim_now(r);
	CHECK_EQ_INT(count("SELECT count(*) FROM repl_log"), 1);
	CHECK_EQ_INT(count("SELECT seq FROM repl_log"), 9);
	cfg.replication.log_max_bytes = max_before;
	close_primary(r);
	/* no secondary configured: nobody to wait for */
	r = open_primary(4);
	r->env.peer = NULL;
	trim_now(r);
	CHECK_EQ_INT(count("SELECT count(*) FROM repl_log"), 0);
	CHECK_EQ_INT(r->stream->trimmed_through, 4);
	close_primary(r);
}

static void keep_alive(evutil_socket_t fd, short what, void *arg)
{
}

int main(void)
{
	evthread_use_pthreads();
	tbase = event_base_new();
	CHECK(tbase != NULL);
	/* a pending event keeps the loop waiting for the writer's wakeup */
	struct event *keep = event_new(tbase, -1, EV_PERSIST, keep_alive, NULL);
	CHECK(keep != NULL);
	struct timeval second = {1, 0};
	evtimer_add(keep, &second);
	CHECK_EQ_INT(faultvfs_install(), SQLITE_OK);
	CHECK(mkdtemp(dir) != NULL);
	config_defaults(&cfg);
	cfg.region_count = 2;
	snprintf(cfg.regions[0].name, sizeof cfg.regions[0].name, "eu");
	snprintf(cfg.regions[0].data_dir, sizeof cfg.regions[0].data_dir, "%s", dir);
	snprintf(cfg.regions[1].name, sizeof cfg.regions[1].name, "us");
	RUN(test_a_subscriber_gets_entries_from_its_from);
	RUN(test_stream_requests_refused);
	RUN(test_acks_advance_and_wake_waiters);
	RUN(test_stale_and_foreign_acks_refused);
	RUN(test_trim_keeps_what_is_not_acknowledged);
	event_free(keep);
	event_base_free(tbase);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
