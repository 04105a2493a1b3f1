/*
 * test_applier.c - the secondary's applier (src/replication/applier.c) fed
 * frames through its real decode path (applier_on_data, frame_decode) and
 * applied by a real committer on a temporary database, without a network:
 * ordering across chunk boundaries, duplicates, gaps, schema entries in
 * order with data, a batch that cannot be committed (SQLITE_IOERR /
 * SQLITE_BUSY from tests/unit/faultvfs.h), and acknowledgements sent only
 * for what is durable.
 *
 * The file is included (as test_election.c does) to reach the static
 * functions, with these seams put in by macros around the #include
 * (production code is unchanged):
 *
 *   - an in-memory link: the stream request (http_client_stream) and the
 *     acks (http_client_request) are recorded, not sent; the test calls
 *     the applier's data callback itself and answers the acks;
 *   - the election hooks the applier calls (contact, learn, isolation) and
 *     the view publish are no-ops: the election is test_election.c's;
 *   - repl_submit is the real one (repl.c): jobs go to a real committer
 *     whose completions come back through a loop_queue on the test's
 *     event_base, as on the control thread.
 *
 * Each test names the rule it pins; breaking that rule in applier.c makes
 * it fail (checked once by hand for each, see the commit message).
 */
#include <event2/thread.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "faultvfs.h"
#include "replication/capture.h"
#include "replication/internal.h"
#include "store/committer.h"
#include "store/db.h"
#include "test.h"

static struct event_base *tbase;
static db_conn *reader; /* the current secondary's database, read-only */

/* --- the in-memory link --- */

static char dummy_client; /* the address stands for "a client" */

typedef struct sent_ack {
	char body[96];
	uint64_t durable; /* applied_seq on disk when the ack went out */
	http_client_cb cb;
	void *arg;
} sent_ack;

static sent_ack acks[64];
static int nacks;
static char stream_target[160];
static int nstreams;

static uint64_t durable_applied(void)
{
	uint64_t applied = 0;
	CHECK_EQ_INT(capture_read_state(reader, NULL, NULL, NULL, &applied), 0);
	return applied;
}

static int fake_client_request(http_client *c, const char *method, const char *target, const char *headers,
			       const char *body, size_t len, int flags, http_client_cb cb, void *arg)
{
	if (strcmp(target, "/internal/v1/replication/ack") != 0 ||
	    nacks == (int)(sizeof acks / sizeof acks[0]))
		return ERR_LIMIT;
	sent_ack *a = &acks[nacks++];
	snprintf(a->body, sizeof a->body, "%.*s", (int)len, body);
	a->durable = durable_applied();
	a->cb = cb;
	a->arg = arg;
	return 0;
}

static int fake_client_stream(http_client *c, const char *method, const char *target, const char *headers,
			      http_client_data_cb on_data, http_client_cb cb, void *arg)
{
	snprintf(stream_target, sizeof stream_target, "%s", target);
	nstreams++;
	return 0;
}

static void fake_client_free(http_client **c)
{
	*c = NULL;
}

static http_client *fake_link_client_new(repl *r, const char *hostport, const char *sni, int timeout_ms,
					 size_t max_body)
{
	return (http_client *)&dummy_client;
}

static void fake_election_contact(repl *r, uint64_t epoch)
{
}

static void fake_election_learn(repl *r, uint64_t epoch)
{
}

static bool fake_election_isolated(const repl *r, const char *peer)
{
	return false;
}

static void fake_view_publish(repl *r)
{
}

#define http_client_request fake_client_request
#define http_client_stream fake_client_stream
#define http_client_free fake_client_free
#define link_client_new fake_link_client_new
#define election_contact fake_election_contact
#define election_learn fake_election_learn
#define election_isolated fake_election_isolated
#define repl_view_publish fake_view_publish
#include "replication/applier.c"
#undef repl_view_publish
#undef election_isolated
#undef election_learn
#undef election_contact
#undef link_client_new
#undef http_client_free
#undef http_client_stream
#undef http_client_request

static char dir[] = "/tmp/tandem-test-applier-XXXXXX";
static config cfg;
static committer *writer;
static sqlite3 *src; /* the "primary": changesets are recorded on it */
static int ndb;

/* --- the primary's entries, framed --- */

/* Frame of the changeset of sql run on the source database (table t or u). */
static void put_change(buf *out, uint64_t epoch, uint64_t seq, const char *table, const char *sql)
{
	sqlite3_session *s = NULL;
	CHECK_EQ_INT(sqlite3session_create(src, "main", &s), SQLITE_OK);
	CHECK_EQ_INT(sqlite3session_attach(s, table), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(src, sql, NULL, NULL, NULL), SQLITE_OK);
	int n = 0;
	void *p = NULL;
	CHECK_EQ_INT(sqlite3session_changeset(s, &n, &p), SQLITE_OK);
	sqlite3session_delete(s);
	CHECK(n > 0);
	CHECK_EQ_INT(frame_encode(out, FRAME_CHANGESET, epoch, seq, 1000 + (int64_t)seq, p, (uint32_t)n), 0);
	sqlite3_free(p);
}

/* Frame of a schema entry: 4-byte version, then the SQL. */
static void put_schema(buf *out, uint64_t epoch, uint64_t seq, int version, const char *sql)
{
	unsigned char payload[256];
	size_t n = strlen(sql);
	CHECK(n + 4 <= sizeof payload);
	payload[0] = (unsigned char)(version >> 24);
	payload[1] = (unsigned char)(version >> 16);
	payload[2] = (unsigned char)(version >> 8);
	payload[3] = (unsigned char)version;
	memcpy(payload + 4, sql, n);
	CHECK_EQ_INT(frame_encode(out, FRAME_SCHEMA, epoch, seq, 1000 + (int64_t)seq, payload, (uint32_t)(n + 4)), 0);
}

/* Hand the bytes to the applier as the stream client would, `step` bytes
 * per callback (frame boundaries fall inside chunks), and empty out. */
static void feed(repl *r, buf *out, size_t step)
{
	for (size_t off = 0; off < out->len; off += step)
		applier_on_data(r, out->data + off, out->len - off < step ? out->len - off : step);
	buf_reset(out);
}

/* --- a secondary --- */

static repl *open_secondary(void)
{
	char path[200], err[256];
	snprintf(path, sizeof path, "%s/secondary%d.db", dir, ndb++);
	db_conn *w = db_open(path, false, err, sizeof err);
	CHECK(w != NULL);
	CHECK_EQ_INT(capture_bootstrap(w, "secondary", err, sizeof err), 0);
	CHECK_EQ_INT(db_exec(w, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 0);
	writer = committer_new(tbase, w, 16, 100);
	CHECK(writer != NULL);
	reader = db_open(path, true, err, sizeof err);
	CHECK(reader != NULL);
	repl *r = calloc(1, sizeof *r);
	CHECK(r != NULL);
	CHECK_EQ_INT(repl_parts_new(r), 0);
	r->env = (repl_env){.base = tbase, .cfg = &cfg, .self = &cfg.regions[0], .peer = &cfg.regions[1],
			    .reader = reader, .writer = writer};
	r->ctl_done = loop_queue_new(tbase);
	CHECK(r->ctl_done != NULL);
	history_set_synced(r, true); /* no rejoin first: rejoin.c has its own test */
	r->epoch = 1;
	history_add(r, 1, 1);
	nacks = 0;
	nstreams = 0;
	stream_target[0] = '\0';
	CHECK_EQ_INT(applier_start(r), 0);
	return r;
}

static void close_secondary(repl *r)
{
	r->stopping = true;
	applier_stop(r);
	committer_free(&writer);
	loop_queue_free(&r->ctl_done);
	waitlist_fail_all(&r->position_waiters);
	db_close(&reader);
	repl_parts_free(r);
	free(r);
	/* a fresh source: the next secondary starts from an empty t */
	CHECK_EQ_INT(sqlite3_exec(src, "DELETE FROM t; DROP TABLE IF EXISTS u", NULL, NULL, NULL), SQLITE_OK);
}

/* A pending event keeps the loop waiting for the writer's wakeup (the
 * completions' event is activated from the writer thread, never added). */
static void keep_alive(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the control loop until every job handed to the writer is done. */
static void settle(repl *r)
{
	for (int i = 0; i < 1000 && r->applier->pending_applies > 0; i++)
		event_base_loop(tbase, EVLOOP_ONCE);
	CHECK_EQ_INT(r->applier->pending_applies, 0);
}

/* Run the reconnect the applier asked for, if it did (a restart is a zero
 * timeout, or 20 ms while the writer still held entries of the stream). */
static void run_due(repl *r)
{
	for (int i = 0; i < 100 && evtimer_pending(r->applier->reconnect, NULL); i++)
		event_base_loop(tbase, EVLOOP_ONCE);
}

static int64_t count(const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;
	if (sqlite3_prepare_v2(db_handle(reader), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* The primary answers the oldest unanswered ack with 200. */
static int answered;
static void answer_acks(void)
{
	http_message ok = {.kind = HTTP_RESPONSE, .status = 200};
	while (answered < nacks) {
		sent_ack *a = &acks[answered++];
		a->cb(0, &ok, "{\"ok\":true}", 11, a->arg);
	}
}

/* Rule: entries are applied in seq order whatever the chunking, each job
 * moves applied_seq with the data, and the position follows the durable
 * applied_seq. Frames cut every 7 bytes must all arrive whole. */
static void test_in_order_apply_across_chunks(void)
{
	repl *r = open_secondary();
	CHECK_EQ_INT(nstreams, 1);
	CHECK(strstr(stream_target, "from=1&prev_epoch=0") != NULL);
	buf out;
	buf_init(&out, 1 << 20);
	put_change(&out, 1, 1, "t", "INSERT INTO t VALUES (1, 'a')");
	put_change(&out, 1, 2, "t", "INSERT INTO t VALUES (2, 'b')");
	put_change(&out, 1, 3, "t", "UPDATE t SET v = 'c' WHERE id = 1");
	feed(r, &out, 7);
	CHECK_EQ_INT(r->applier->pending_applies, 3);
	CHECK_EQ_INT(r->applier->received_seq, 3);
	CHECK_EQ_INT(r->applier->frames.len, 0); /* no undecoded tail left */
	settle(r);
	CHECK(!r->applier->apply_failed);
	CHECK_EQ_INT(r->position, 3);
	CHECK_EQ_INT(r->applier->applied_entries, 3);
	CHECK(r->applier->unapplied == NULL);
	CHECK_EQ_INT(durable_applied(), 3);
	CHECK_EQ_INT(count("SELECT count(*) FROM t"), 2);
	CHECK_EQ_INT(count("SELECT count(*) FROM t WHERE id = 1 AND v = 'c'"), 1);
	buf_free(&out);
	close_secondary(r);
}

/* Rule: the region is fresh (repl_primary_silence_ms, which decides
 * whether a secondary may answer tokens) only as of a heartbeat whose
 * position it has applied: entries received but still in the writer queue
 * do not count. Before, any heartbeat or frame that arrived made it fresh,
 * so right after a partition healed a secondary answered a token whose
 * logout was still in its queue (CI's ASan run: 200 for a logged-out
 * token). A claim not yet met waits; a newer heartbeat does not replace it. */
static void test_freshness_waits_for_what_the_heartbeat_names(void)
{
	repl *r = open_secondary();
	CHECK_EQ_INT(r->fresh_mono, 0);
	buf out;
	buf_init(&out, 1 << 16);
	CHECK_EQ_INT(frame_encode(&out, FRAME_HEARTBEAT, 1, 2, 5000, NULL, 0), 0);
	int64_t t_claim = voter_clock_ms();
	feed(r, &out, 5);
	CHECK_EQ_INT(r->fresh_mono, 0); /* the primary is at 2, this region at 0 */
	put_change(&out, 1, 1, "t", "INSERT INTO t VALUES (1, 'a')");
	put_change(&out, 1, 2, "t", "INSERT INTO t VALUES (2, 'b')");
	feed(r, &out, 64);
	CHECK_EQ_INT(r->applier->received_seq, 2);
	CHECK_EQ_INT(r->fresh_mono, 0); /* received, not applied */
	settle(r);
	CHECK_EQ_INT(r->position, 2);
	CHECK(r->fresh_mono >= t_claim && r->fresh_mono <= voter_clock_ms()); /* as of the heartbeat */
	/* a heartbeat of what is applied: fresh as of now */
	int64_t before = r->fresh_mono;
	usleep(2000);
	CHECK_EQ_INT(frame_encode(&out, FRAME_HEARTBEAT, 1, 2, 5100, NULL, 0), 0);
	feed(r, &out, 64);
	CHECK(r->fresh_mono > before);
	/* the primary moves on to 4: freshness stays until 4 is applied, and a
	 * later heartbeat (at 5) waits behind that claim */
	before = r->fresh_mono;
	usleep(2000);
	CHECK_EQ_INT(frame_encode(&out, FRAME_HEARTBEAT, 1, 4, 5200, NULL, 0), 0);
	feed(r, &out, 64);
	int64_t t4 = voter_clock_ms();
	usleep(2000);
	CHECK_EQ_INT(frame_encode(&out, FRAME_HEARTBEAT, 1, 5, 5300, NULL, 0), 0);
	feed(r, &out, 64);
	CHECK_EQ_INT(r->fresh_mono, before);
	put_change(&out, 1, 3, "t", "INSERT INTO t VALUES (3, 'c')");
	put_change(&out, 1, 4, "t", "INSERT INTO t VALUES (4, 'd')");
	feed(r, &out, 64);
	settle(r);
	CHECK_EQ_INT(r->position, 4);
	CHECK(r->fresh_mono > before && r->fresh_mono <= t4); /* as of the heartbeat at 4 */
	buf_free(&out);
	close_secondary(r);
}

/* Rule: an entry already received is not handed to the writer again, and
 * one that reaches the writer anyway (the stream resumed from before it)
 * is refused there as a duplicate (ERR_EXISTS) without restarting the
 * stream or applying it twice. */
static void test_a_duplicate_is_ignored(void)
{
	repl *r = open_secondary();
	buf out;
	buf_init(&out, 1 << 20);
	put_change(&out, 1, 1, "t", "INSERT INTO t VALUES (1, 'a')");
	put_change(&out, 1, 2, "t", "UPDATE t SET v = v || 'x'");
	buf copy;
	buf_init(&copy, 1 << 20);
	CHECK_EQ_INT(buf_add(&copy, out.data, out.len), 0);
	feed(r, &out, out.len);
	settle(r);
	CHECK_EQ_INT(r->position, 2);
	/* the same frames again on the same stream: dropped before the writer */
	CHECK_EQ_INT(buf_add(&out, copy.data, copy.len), 0);
	feed(r, &out, 5);
	CHECK_EQ_INT(r->applier->pending_applies, 0);
	/* and through the writer (as if received_seq were behind) */
	r->applier->received_seq = 0;
	CHECK_EQ_INT(buf_add(&out, copy.data, copy.len), 0);
	feed(r, &out, out.len);
	CHECK_EQ_INT(r->applier->pending_applies, 2);
	settle(r);
	CHECK(!r->applier->apply_failed);
	run_due(r);
	CHECK_EQ_INT(nstreams, 1); /* no restart */
	CHECK_EQ_INT(r->position, 2);
	CHECK_EQ_INT(durable_applied(), 2);
	CHECK_EQ_INT(count("SELECT count(*) FROM t WHERE v = 'ax'"), 1); /* not 'axx' */
	buf_free(&copy);
	buf_free(&out);
	close_secondary(r);
}

/* Rule: a gap (entry 4 after 2) is never applied; the stream is dropped
 * and asked again from the entry after the last one applied (from=3,
 * with that entry's epoch), and what arrives on the old stream meanwhile
 * is ignored. */
static void test_a_gap_is_refused_and_the_stream_restarts(void)
{
	repl *r = open_secondary();
	buf out;
	buf_init(&out, 1 << 20);
	put_change(&out, 1, 1, "t", "INSERT INTO t VALUES (1, 'a')");
	put_change(&out, 1, 2, "t", "INSERT INTO t VALUES (2, 'b')");
	feed(r, &out, out.len);
	settle(r);
	sqlite3_exec(src, "INSERT INTO t VALUES (3, 'c')", NULL, NULL, NULL); /* entry 3, lost */
	put_change(&out, 1, 4, "t", "INSERT INTO t VALUES (4, 'd')");
	feed(r, &out, out.len);
	CHECK_EQ_INT(r->applier->pending_applies, 1);
	settle(r);
	CHECK(r->applier->apply_failed);
	CHECK_EQ_INT(r->position, 2);
	CHECK_EQ_INT(durable_applied(), 2);
	CHECK_EQ_INT(count("SELECT count(*) FROM t WHERE id = 4"), 0);
	/* the old stream goes on: nothing of it is taken */
	put_change(&out, 1, 5, "t", "INSERT INTO t VALUES (5, 'e')");
	feed(r, &out, out.len);
	CHECK_EQ_INT(r->applier->pending_applies, 0);
	run_due(r);
	CHECK_EQ_INT(nstreams, 2);
	CHECK(strstr(stream_target, "from=3&prev_epoch=1") != NULL);
	CHECK(!r->applier->apply_failed);
	CHECK_EQ_INT(r->applier->received_seq, 2);
	buf_free(&out);
	close_secondary(r);
}

/* Rule: a schema entry is applied in its place among the data entries:
 * the table it creates exists for the changeset after it, in the same
 * stream chunk, and the schema version moves with it. A newer epoch's
 * first entry starts a row of the epoch history. */
static void test_a_schema_entry_applies_in_order_with_data(void)
{
	repl *r = open_secondary();
	int version = (int)count("PRAGMA user_version");
	CHECK(version >= 0);
	CHECK_EQ_INT(sqlite3_exec(src, "CREATE TABLE u (id INTEGER PRIMARY KEY, w TEXT)", NULL, NULL, NULL),
		     SQLITE_OK);
	buf out;
	buf_init(&out, 1 << 20);
	put_change(&out, 1, 1, "t", "INSERT INTO t VALUES (1, 'a')");
	put_schema(&out, 2, 2, version + 1, "CREATE TABLE u (id INTEGER PRIMARY KEY, w TEXT)");
	put_change(&out, 2, 3, "u", "INSERT INTO u VALUES (7, 'z')");
	feed(r, &out, 11);
	CHECK_EQ_INT(r->applier->pending_applies, 3);
	settle(r);
	CHECK(!r->applier->apply_failed);
	CHECK_EQ_INT(r->position, 3);
	CHECK_EQ_INT(count("PRAGMA user_version"), version + 1);
	CHECK_EQ_INT(count("SELECT count(*) FROM u WHERE id = 7 AND w = 'z'"), 1);
	CHECK_EQ_INT(count("SELECT first_seq FROM repl_epochs WHERE epoch = 2"), 2);
	CHECK_EQ_INT(history_epoch_at(r, 3), 2);
	CHECK_EQ_INT(r->epoch, 2);
	buf_free(&out);
	close_secondary(r);
}

/* Rule: a batch the writer cannot commit (an I/O error at the fsync, or
 * a database kept busy) applies nothing, moves no position, sends no ack
 * for it, and the stream restarts from the last durable entry + 1; the
 * entries then apply from there. */
static void test_a_failed_commit_restarts_from_the_durable_position(void)
{
	struct {
		faultvfs_method m;
		int code;
	} faults[] = {{FAULTVFS_SYNC, SQLITE_IOERR}, {FAULTVFS_WRITE, SQLITE_IOERR}, {FAULTVFS_SHMLOCK, SQLITE_BUSY}};
	for (size_t k = 0; k < sizeof faults / sizeof faults[0]; k++) {
		repl *r = open_secondary();
		answered = 0;
		buf out, again;
		buf_init(&out, 1 << 20);
		buf_init(&again, 1 << 20);
		put_change(&out, 1, 1, "t", "INSERT INTO t VALUES (1, 'a')");
		feed(r, &out, out.len);
		settle(r);
		answer_acks();
		CHECK_EQ_INT(nacks, 1);
		put_change(&out, 1, 2, "t", "INSERT INTO t VALUES (2, 'b')");
		put_change(&out, 1, 3, "t", "INSERT INTO t VALUES (3, 'c')");
		CHECK_EQ_INT(buf_add(&again, out.data, out.len), 0);
		faultvfs_arm(faults[k].m, 1, faults[k].code, -1);
		feed(r, &out, out.len);
		settle(r);
		faultvfs_disarm();
		CHECK(faultvfs_injected() > 0);
		CHECK(r->applier->apply_failed);
		CHECK_EQ_INT(r->position, 1);
		CHECK_EQ_INT(durable_applied(), 1);
		CHECK_EQ_INT(count("SELECT count(*) FROM t"), 1);
		CHECK_EQ_INT(nacks, 1); /* nothing acknowledged beyond 1 */
		CHECK(r->applier->unapplied == NULL);
		run_due(r);
		CHECK_EQ_INT(nstreams, 2);
		CHECK(strstr(stream_target, "from=2&prev_epoch=1") != NULL);
		/* the new stream sends 2 and 3 again: they apply */
		feed(r, &again, again.len);
		settle(r);
		CHECK(!r->applier->apply_failed);
		CHECK_EQ_INT(r->position, 3);
		CHECK_EQ_INT(durable_applied(), 3);
		answer_acks();
		CHECK(nacks >= 2 && strstr(acks[nacks - 1].body, "\"seq\":3,") != NULL);
		buf_free(&again);
		buf_free(&out);
		close_secondary(r);
	}
}

/* Rule: bytes that are not a frame (bad magic) and a heartbeat of an
 * older epoch (a deposed primary still streaming) both drop the stream:
 * nothing of it is applied, and the next stream asks from the last applied
 * entry + 1; after the stale heartbeat the histories are checked first
 * (synced false: a rejoin before streaming). */
static void test_a_bad_or_stale_stream_is_dropped(void)
{
	repl *r = open_secondary();
	buf out;
	buf_init(&out, 1 << 20);
	put_change(&out, 1, 1, "t", "INSERT INTO t VALUES (1, 'a')");
	feed(r, &out, out.len);
	settle(r);
	CHECK_EQ_INT(buf_adds(&out, "XX not a frame, but long enough to be refused by the decoder"), 0);
	feed(r, &out, out.len);
	CHECK(r->applier->apply_failed);
	CHECK_EQ_INT(r->applier->frames.len, 0);
	CHECK_EQ_INT(r->applier->pending_applies, 0);
	run_due(r);
	CHECK_EQ_INT(nstreams, 2);
	CHECK(strstr(stream_target, "from=2&prev_epoch=1") != NULL);
	/* the primary is at epoch 3 now; a heartbeat of epoch 2 arrives, with
	 * an entry behind it on the same stream */
	r->epoch = 3;
	CHECK_EQ_INT(frame_encode(&out, FRAME_HEARTBEAT, 2, 9, 5000, NULL, 0), 0);
	put_change(&out, 2, 2, "t", "INSERT INTO t VALUES (2, 'b')");
	feed(r, &out, out.len);
	CHECK(r->applier->apply_failed);
	CHECK(!history_synced(r));
	CHECK_EQ_INT(r->applier->pending_applies, 0);
	CHECK_EQ_INT(r->applier->primary_seq, 1); /* the stale heartbeat's position was not taken */
	CHECK_EQ_INT(count("SELECT count(*) FROM t"), 1);
	buf_free(&out);
	history_set_synced(r, true); /* the next connect would rejoin (rejoin.c's test) */
	close_secondary(r);
}

/* Rule: an ack names only what is durable in the secondary's database:
 * when each ack goes out, applied_seq on disk is at least the seq it
 * acknowledges, and it carries the entry's epoch; while an ack is in
 * flight the next one waits and then names the latest position; a failed
 * ack is said again. */
static void test_acks_follow_durable_apply(void)
{
	repl *r = open_secondary();
	answered = 0;
	buf out;
	buf_init(&out, 1 << 20);
	put_change(&out, 1, 1, "t", "INSERT INTO t VALUES (1, 'a')");
	put_change(&out, 1, 2, "t", "INSERT INTO t VALUES (2, 'b')");
	feed(r, &out, out.len);
	CHECK_EQ_INT(nacks, 0); /* received is not applied */
	settle(r);
	CHECK(nacks >= 1);
	CHECK(r->applier->ack_in_flight);
	/* entry 3 received, not yet applied: the next ack names 2, not 3 */
	put_change(&out, 2, 3, "t", "INSERT INTO t VALUES (3, 'c')");
	feed(r, &out, out.len);
	int before = nacks;
	answered = nacks - 1;
	http_message ok = {.kind = HTTP_RESPONSE, .status = 200};
	acks[answered].cb(0, &ok, "{}", 2, acks[answered].arg);
	answered++;
	CHECK_EQ_INT(nacks, before + 1);
	CHECK(strstr(acks[nacks - 1].body, "{\"seq\":2,\"epoch\":1}") != NULL);
	settle(r);
	before = nacks;
	answer_acks(); /* the answer lets the next ack go: position 3 */
	CHECK_EQ_INT(nacks, before + 1);
	CHECK(strstr(acks[nacks - 1].body, "{\"seq\":3,\"epoch\":2}") != NULL);
	for (int i = 0; i < nacks; i++) {
		unsigned long long seq = 0;
		CHECK(sscanf(acks[i].body, "{\"seq\":%llu", &seq) == 1);
		CHECK(seq >= 1 && seq <= acks[i].durable);
	}
	/* a refused ack: the position is said again after the pause */
	http_message bad = {.kind = HTTP_RESPONSE, .status = 503};
	put_change(&out, 2, 4, "t", "INSERT INTO t VALUES (4, 'd')");
	feed(r, &out, out.len);
	settle(r);
	before = nacks;
	acks[answered].cb(0, &bad, "", 0, acks[answered].arg);
	answered++;
	CHECK(r->applier->ack_in_flight);
	CHECK_EQ_INT(r->applier->ack_sent, 0);
	for (int i = 0; i < 100 && nacks == before; i++)
		event_base_loop(tbase, EVLOOP_ONCE); /* the 200 ms retry timer */
	CHECK_EQ_INT(nacks, before + 1);
	CHECK(strstr(acks[nacks - 1].body, "{\"seq\":4,\"epoch\":2}") != NULL);
	answer_acks();
	buf_free(&out);
	close_secondary(r);
}

/* Rule: an entry that does not apply (the secondary's data diverged from
 * the primary's) is retried at once the first time, then after a doubling
 * backoff, never in a tight loop: a heartbeat does not reset the backoff;
 * the status names the entry and the attempts, the failures are counted;
 * once the entry applies, all of it clears. (Before: the stream restarted
 * at once, for ever, about 50 times a second with an error line each.) */
static void test_an_entry_that_does_not_apply_backs_off(void)
{
	repl *r = open_secondary();
	char path[200];
	snprintf(path, sizeof path, "%s/secondary%d.db", dir, ndb - 1);
	sqlite3 *side = NULL;
	CHECK_EQ_INT(sqlite3_open(path, &side), SQLITE_OK);
	sqlite3_busy_timeout(side, 5000);
	/* a row the primary never logged: its insert of id 1 conflicts */
	CHECK_EQ_INT(sqlite3_exec(side, "INSERT INTO t VALUES (1, 'diverged')", NULL, NULL, NULL), SQLITE_OK);
	buf entry, hb, out;
	buf_init(&entry, 1 << 20);
	buf_init(&hb, 4096);
	buf_init(&out, 1 << 20);
	put_change(&entry, 1, 1, "t", "INSERT INTO t VALUES (1, 'a')");
	CHECK_EQ_INT(frame_encode(&hb, FRAME_HEARTBEAT, 1, 1, 5000, NULL, 0), 0);
	const int min = cfg.replication.reconnect_min_ms, max = cfg.replication.reconnect_max_ms;

	/* first failure: restart at once */
	buf_add(&out, entry.data, entry.len);
	feed(r, &out, out.len);
	settle(r);
	CHECK(r->applier->apply_failed);
	CHECK_EQ_INT(r->applier->fail_count, 1);
	CHECK_EQ_INT(applier_apply_failures(r), 1);
	CHECK_EQ_INT(r->applier->backoff_ms, min);
	run_due(r);
	CHECK_EQ_INT(nstreams, 2);

	/* the same entry again, after a heartbeat: backoff, doubling */
	for (int k = 2; k <= 4; k++) {
		buf_add(&out, hb.data, hb.len);
		buf_add(&out, entry.data, entry.len);
		feed(r, &out, out.len);
		settle(r);
		CHECK_EQ_INT(r->applier->fail_count, k);
		CHECK(evtimer_pending(r->applier->reconnect, NULL));
		int expect = min;
		for (int i = 1; i < k; i++)
			expect = rules_backoff_next(expect, max);
		CHECK_EQ_INT(r->applier->backoff_ms, expect); /* the next wait: it grows */
		buf_add(&out, hb.data, hb.len); /* a heartbeat of the old stream resets nothing */
		feed(r, &out, out.len);
		CHECK_EQ_INT(r->applier->backoff_ms, expect);
		/* the wait is not run in real time: fire the timer now */
		event_active(r->applier->reconnect, EV_TIMEOUT, 0);
		event_base_loop(tbase, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		CHECK_EQ_INT(nstreams, k + 1);
	}
	CHECK_EQ_INT(applier_apply_failures(r), 4);
	buf st;
	buf_init(&st, 4096);
	applier_status_json(r, &st);
	CHECK(st.data && strstr(st.data, "\"apply_error\":{\"seq\":1,\"attempts\":4,") != NULL);

	/* repaired: the entry applies, the failure state clears */
	CHECK_EQ_INT(sqlite3_exec(side, "DELETE FROM t WHERE id = 1", NULL, NULL, NULL), SQLITE_OK);
	buf_add(&out, entry.data, entry.len);
	feed(r, &out, out.len);
	settle(r);
	CHECK_EQ_INT(r->position, 1);
	CHECK_EQ_INT(r->applier->fail_count, 0);
	CHECK_EQ_INT(r->applier->backoff_ms, min);
	buf_reset(&st);
	applier_status_json(r, &st);
	CHECK(strstr(st.data, "apply_error") == NULL);
	CHECK_EQ_INT(count("SELECT count(*) FROM t WHERE id = 1 AND v = 'a'"), 1);
	answer_acks();
	sqlite3_close(side);
	buf_free(&st);
	buf_free(&entry);
	buf_free(&hb);
	buf_free(&out);
	close_secondary(r);
}

int main(void)
{
	evthread_use_pthreads();
	tbase = event_base_new();
	CHECK(tbase != NULL);
	struct event *keep = event_new(tbase, -1, EV_PERSIST, keep_alive, NULL);
	CHECK(keep != NULL);
	struct timeval second = {1, 0};
	evtimer_add(keep, &second);
	CHECK_EQ_INT(faultvfs_install(), SQLITE_OK); /* before any connection */
	CHECK(mkdtemp(dir) != NULL);
	config_defaults(&cfg);
	cfg.region_count = 2;
	snprintf(cfg.regions[0].name, sizeof cfg.regions[0].name, "eu");
	snprintf(cfg.regions[0].data_dir, sizeof cfg.regions[0].data_dir, "%s", dir);
	snprintf(cfg.regions[1].name, sizeof cfg.regions[1].name, "us");
	snprintf(cfg.regions[1].link_listen, sizeof cfg.regions[1].link_listen, "127.0.0.1:9");
	CHECK_EQ_INT(sqlite3_open(":memory:", &src), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(src, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", NULL, NULL, NULL), SQLITE_OK);
	RUN(test_in_order_apply_across_chunks);
	RUN(test_a_duplicate_is_ignored);
	RUN(test_a_gap_is_refused_and_the_stream_restarts);
	RUN(test_a_schema_entry_applies_in_order_with_data);
	RUN(test_a_failed_commit_restarts_from_the_durable_position);
	RUN(test_acks_follow_durable_apply);
	RUN(test_a_bad_or_stale_stream_is_dropped);
	RUN(test_an_entry_that_does_not_apply_backs_off);
	RUN(test_freshness_waits_for_what_the_heartbeat_names);
	sqlite3_close(src);
	event_free(keep);
	event_base_free(tbase);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
