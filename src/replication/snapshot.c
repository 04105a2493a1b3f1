/*
 * snapshot.c - catching up from a copy of the primary when its log no
 * longer holds what the secondary needs (a long outage, past the log's
 * size/age bound).
 *
 *   secondary                                    primary
 *   stream?from=N  ---------------------------->  410 snapshot_required
 *   GET /internal/v1/replication/snapshot ------>  VACUUM INTO a temporary file
 *   <--- the file, streamed to disk (fsync) ----   (one read transaction: the data
 *                                                  and repl_state.last_seq agree)
 *   restore (writer thread, alone): backup API copies the file over the live
 *   database in one transaction; then role = secondary, applied_seq = the
 *   snapshot's last_seq, the copied log is dropped
 *   stream?from=last_seq+1 -------------------->  the usual stream again
 *
 * A crash at any point leaves either the old database or the restored one
 * (the backup commits atomically), and the stream resumes from whatever
 * applied_seq the database holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "replication/internal.h"

#define SNAPSHOT_PIECE (1024 * 1024)

typedef struct fetch fetch;

/* The secondary's catching-up state (snapshot.h has its diagram). */
struct repl_snapshot {
	fetch *fetch;      /* the fetch in progress, or NULL */
	bool required;     /* the primary's log no longer reaches back to us */
	bool restoring;    /* the restore job is in the writer queue */
	char status[96];   /* "", "required", "fetching", "restoring", "failed: REASON" */
};

repl_snapshot *snapshot_new(void)
{
	return calloc(1, sizeof(repl_snapshot));
}

void snapshot_free(repl_snapshot **s)
{
	free(*s);
	*s = NULL;
}

void snapshot_require(repl *r)
{
	r->snapshot->required = true;
	if (!snapshot_busy(r))
		snprintf(r->snapshot->status, sizeof r->snapshot->status, "required");
}

bool snapshot_required(const repl *r)
{
	return r->snapshot->required;
}

bool snapshot_busy(const repl *r)
{
	return r->snapshot->fetch || r->snapshot->restoring;
}

const char *snapshot_status(const repl *r)
{
	return r->snapshot->status;
}

/* An attempt is over without a restore: still required, the reason shown
 * until the next attempt starts. */
static void snapshot_failed(repl *r, const char *why)
{
	r->snapshot->required = true;
	snprintf(r->snapshot->status, sizeof r->snapshot->status, "failed: %.80s", why);
}

/* --- primary --- */

/* A snapshot being sent: the file is read a piece at a time as the link
 * drains (http_request_on_drain), so a slow link holds back reading the
 * file, not memory: at most max_unsent_bytes of it are queued. */
typedef struct snapshot_send {
	int fd;
	char piece[SNAPSHOT_PIECE];
	size_t total;
} snapshot_send;

static void snapshot_send_free(snapshot_send *ss)
{
	close(ss->fd);
	free(ss);
}

/* Queue pieces while there is room; then wait for the drain. Ends the
 * answer at the end of the file; a read error or a peer gone cuts it (an
 * incomplete chunked body, which the secondary refuses, rather than a short
 * snapshot that looks complete). */
static void snapshot_send_more(http_request *req, void *arg)
{
	snapshot_send *ss = arg;
	while (!http_request_is_closed(req) && http_request_output_room(req) > 0) {
		ssize_t n = read(ss->fd, ss->piece, sizeof ss->piece);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_error("snapshot: cannot read the copy: %s; the answer is cut", strerror(errno));
			http_request_abort(req);
			snapshot_send_free(ss);
			return;
		}
		if (n == 0) {
			http_respond_end(req);
			log_info("snapshot of %zu bytes sent", ss->total);
			snapshot_send_free(ss);
			return;
		}
		http_respond_chunk(req, ss->piece, (size_t)n);
		ss->total += (size_t)n;
	}
	if (http_request_is_closed(req)) {
		log_warn("snapshot: the peer went away after %zu bytes", ss->total);
		http_respond_end(req);
		snapshot_send_free(ss);
		return;
	}
	http_request_on_drain(req, snapshot_send_more, ss);
}

/*
 * VACUUM INTO copies the whole database: seconds for a large one, far too
 * long for the control thread (a lease round could wait behind it). It runs
 * as an exclusive job of the writer thread, on a connection of its own; the
 * control thread streams the copy once it is made.
 */
typedef struct snapshot_make {
	repl *r;
	http_request *req;
	const char *db_path;
	char tmp[CONFIG_PATH_MAX + 64];
	char error[200];
} snapshot_make;

static int snapshot_make_exec(db_conn *unused, void *arg) /* writer thread, alone */
{
	snapshot_make *m = arg;
	unlink(m->tmp);
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(m->db_path, &db, SQLITE_OPEN_READWRITE, NULL);
	char *sql = sqlite3_mprintf("VACUUM INTO %Q", m->tmp);
	char *msg = NULL;
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	sqlite3_free(sql);
	sqlite3_close_v2(db);
	if (rc != SQLITE_OK) {
		snprintf(m->error, sizeof m->error, "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		unlink(m->tmp);
		return ERR_DB;
	}
	return 0;
}

static void snapshot_make_done(void *arg, int rc, uint64_t unused) /* control thread */
{
	snapshot_make *m = arg;
	http_request *req = m->req;
	if (rc != 0) {
		log_error("snapshot: VACUUM INTO failed: %s", m->error[0] ? m->error : err_str(rc));
		unlink(m->tmp);
		free(m);
		repl_answer(req, 500, "internal_error", "cannot make a snapshot");
		return;
	}
	int fd = open(m->tmp, O_RDONLY | O_CLOEXEC);
	unlink(m->tmp); /* the open descriptor keeps it readable */
	free(m);
	if (fd < 0) {
		repl_answer(req, 500, "internal_error", "cannot read the snapshot");
		return;
	}
	snapshot_send *ss = malloc(sizeof *ss);
	if (!ss) {
		close(fd);
		repl_answer(req, 500, "internal_error", "out of memory");
		return;
	}
	ss->fd = fd;
	ss->total = 0;
	http_response_header(req, "Content-Type", "application/vnd.sqlite3");
	http_respond_start(req, 200);
	snapshot_send_more(req, ss);
}

void snapshot_serve(repl *r, http_request *req)
{
	snapshot_make *m = calloc(1, sizeof *m);
	if (!m) {
		repl_answer(req, 500, "internal_error", "out of memory");
		return;
	}
	m->r = r;
	m->req = req;
	m->db_path = r->env.db_path;
	static unsigned serial; /* control thread only: two snapshots at once get two files */
	snprintf(m->tmp, sizeof m->tmp, "%s/snapshot-out-%d-%u.db", r->env.self->data_dir, (int)getpid(), ++serial);
	if (repl_submit_exclusive(r, snapshot_make_exec, snapshot_make_done, m) != 0) {
		free(m);
		repl_answer(req, 503, "overloaded", "the writer queue is full; retry shortly");
	}
}

/* --- secondary --- */

typedef struct restore_job {
	repl *r;
	char path[CONFIG_PATH_MAX + 64];
	uint64_t seq;
	uint64_t epoch;
	char error[200];
} restore_job;

/* Writer thread, alone, outside any transaction. */
static int restore_exec(db_conn *dst, void *arg)
{
	restore_job *j = arg;
	sqlite3 *src = NULL;
	/* read-write: the copy is ours (a temporary file), and it is marked
	 * as a secondary's before the backup, so that the one backup
	 * transaction brings data and role together: a database restored
	 * without its marking would start as a primary of the primary's
	 * epoch (an error or a crash between two transactions did that) */
	int rc = sqlite3_open_v2(j->path, &src, SQLITE_OPEN_READWRITE, NULL);
	sqlite3_stmt *st = NULL;
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(src, "SELECT last_seq, epoch FROM repl_state WHERE id = 1", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		j->seq = (uint64_t)sqlite3_column_int64(st, 0);
		j->epoch = (uint64_t)sqlite3_column_int64(st, 1);
	} else {
		snprintf(j->error, sizeof j->error, "the snapshot has no replication state");
		rc = SQLITE_CORRUPT;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK) {
		/* what was the primary's is now a secondary that applied it all */
		rc = sqlite3_exec(src,
				  "BEGIN IMMEDIATE; UPDATE repl_state SET role = 'secondary', "
				  "applied_seq = last_seq, applied_epoch = epoch WHERE id = 1; "
				  "DELETE FROM repl_log; COMMIT;",
				  NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			snprintf(j->error, sizeof j->error, "cannot mark the snapshot as a secondary's: %s",
				 sqlite3_errmsg(src));
			/* on our own temporary copy, which is deleted anyway */
			(void)sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
		}
	}
	if (rc == SQLITE_OK) {
		sqlite3_backup *b = sqlite3_backup_init(db_handle(dst), "main", src, "main");
		if (!b) {
			rc = sqlite3_errcode(db_handle(dst));
		} else {
			rc = sqlite3_backup_step(b, -1);
			int fin = sqlite3_backup_finish(b);
			rc = rc == SQLITE_DONE ? fin : rc;
		}
		if (rc != SQLITE_OK)
			snprintf(j->error, sizeof j->error, "backup failed: %s", sqlite3_errmsg(db_handle(dst)));
	}
	sqlite3_close_v2(src);
	return rc == SQLITE_OK ? 0 : ERR_DB;
}

static void restore_done(void *arg, int rc, uint64_t unused)
{
	restore_job *j = arg;
	repl *r = j->r;
	unlink(j->path);
	applier_release(r);
	r->snapshot->restoring = false;
	if (rc == 0) {
		log_info("snapshot restored: this region is at position %llu (epoch %llu)",
			 (unsigned long long)j->seq, (unsigned long long)j->epoch);
		if (j->epoch > r->epoch)
			r->epoch = j->epoch;
		r->snapshot->required = false;
		r->snapshot->status[0] = '\0';
		/* the primary's history came with its data; if it cannot be
		 * read now, a rejoin reads it before streaming */
		history_set_synced(r, history_load(r) == 0);
		applier_reset_position(r, j->seq); /* publishes the view, wakes the waiters */
	} else {
		log_error("snapshot restore failed: %s", j->error[0] ? j->error : err_str(rc));
		char why[120];
		snprintf(why, sizeof why, "restore: %.100s", j->error[0] ? j->error : err_str(rc));
		snapshot_failed(r, why);
	}
	bool ok = rc == 0;
	free(j);
	applier_resume(r, ok);
}

struct fetch {
	repl *r;
	http_client *client;
	int fd;
	char path[CONFIG_PATH_MAX + 64];
	size_t bytes;
	bool failed;
};

static void fetch_data(void *arg, const char *data, size_t len)
{
	fetch *f = arg;
	while (!f->failed && len > 0) {
		ssize_t n = write(f->fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("snapshot: cannot write %s: %s", f->path, strerror(errno));
			f->failed = true;
			break;
		}
		data += n;
		len -= (size_t)n;
		f->bytes += (size_t)n;
	}
}

static void fetch_free(evutil_socket_t fd, short what, void *arg)
{
	fetch *f = arg;
	http_client_free(&f->client);
	free(f);
}

static void fetch_done(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	fetch *f = arg;
	repl *r = f->r;
	bool ok = rc == 0 && resp->status == 200 && !f->failed && f->bytes > 0 && fsync(f->fd) == 0;
	close(f->fd);
	char why[80];
	if (rc != 0)
		snprintf(why, sizeof why, "fetch: %s", err_str(rc));
	else if (resp->status != 200)
		snprintf(why, sizeof why, "fetch: the primary answered %d", resp->status);
	else if (f->failed)
		snprintf(why, sizeof why, "fetch: cannot write the copy to disk");
	else if (f->bytes == 0)
		snprintf(why, sizeof why, "fetch: empty answer");
	else
		snprintf(why, sizeof why, "fetch: cannot sync the copy to disk");
	r->snapshot->fetch = NULL;
	restore_job *j = ok ? calloc(1, sizeof *j) : NULL;
	if (ok && !j)
		snprintf(why, sizeof why, "restore: out of memory");
	if (j) {
		j->r = r;
		snprintf(j->path, sizeof j->path, "%s", f->path);
		log_info("snapshot of %zu bytes received; restoring", f->bytes);
		applier_hold(r);
		r->snapshot->restoring = true;
		snprintf(r->snapshot->status, sizeof r->snapshot->status, "restoring");
		if (repl_submit_exclusive(r, restore_exec, restore_done, j) != 0) {
			applier_release(r);
			r->snapshot->restoring = false;
			snprintf(why, sizeof why, "restore: the writer queue is full");
			free(j);
			j = NULL;
		}
	}
	if (!j) {
		/* pins the bug: the status stayed "fetching" for ever here and
		 * the retry waited for a stream attempt to meet 410 again */
		log_error("snapshot fetch failed (%s); retrying after the reconnect backoff", why);
		unlink(f->path);
		snapshot_failed(r, why);
		applier_resume(r, false);
	}
	/* the client cannot be freed from inside its own callback: next turn */
	struct timeval now = {0, 0};
	if (event_base_once(r->env.base, -1, EV_TIMEOUT, fetch_free, f, &now) != 0)
		log_error("snapshot: cannot schedule a cleanup (a connection leaks)");
}

int snapshot_fetch(repl *r)
{
	fetch *f = calloc(1, sizeof *f);
	if (!f)
		return ERR_NOMEM;
	f->r = r;
	snprintf(f->path, sizeof f->path, "%s/snapshot-in.db", r->env.self->data_dir);
	f->fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f->client = link_client_new(r, r->env.peer->link_listen, r->env.peer->name, 30000, 1 << 20);
	if (f->fd < 0 || !f->client ||
	    http_client_stream(f->client, "GET", "/internal/v1/replication/snapshot", NULL, fetch_data,
			       fetch_done, f) != 0) {
		if (f->fd >= 0)
			close(f->fd);
		http_client_free(&f->client);
		free(f);
		snapshot_failed(r, "fetch: cannot start (the file or the link client)");
		return ERR_IO;
	}
	r->snapshot->fetch = f;
	snprintf(r->snapshot->status, sizeof r->snapshot->status, "fetching");
	log_info("catching up from a snapshot of the primary");
	return 0;
}
