/*
 * readers.c - reader threads with a connection each; see readers.h.
 *
 * One mutex guards the job queue, the completion list and the busy flags.
 * A job node is allocated once, at submit, and moves queue -> thread ->
 * completion list -> freed after done(), so delivering a completion cannot
 * fail for want of memory.
 */
#include "store/readers.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/err.h"

#define READERS_MAGIC 0x52656164u
/* While stopping, running statements are interrupted again this often: an
 * interrupt that lands before a statement starts is forgotten by SQLite. */
#define READERS_STOP_POLL_NS (10 * 1000 * 1000)

typedef struct readers_job {
	readers_run_fn run;
	readers_done_fn done;
	void *arg;
	int rc;
	struct readers_job *next;
} readers_job;

typedef struct reader_thread {
	readers *pool;
	db_conn *db;     /* used by this thread only while it runs */
	pthread_t thread;
	bool busy;       /* running a job (under pool->lock) */
} reader_thread;

struct readers {
	unsigned magic;
	pthread_mutex_t lock;
	pthread_cond_t wake;        /* a job was queued, or stopping */
	pthread_cond_t idle;        /* a thread finished a job */
	readers_job *head, *tail;   /* waiting jobs */
	int queued, queue_max;
	readers_job *done_head, *done_tail; /* completions for the loop */
	int busy;
	bool stopping;
	reader_thread *threads;
	int opened;                 /* connections opened */
	int started;                /* threads running */
	struct event *wakeup;       /* delivers completions on the loop */
};

static void job_append(readers_job **head, readers_job **tail, readers_job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

/* Run every completion posted so far (loop thread). */
static void readers_deliver(readers *r)
{
	pthread_mutex_lock(&r->lock);
	readers_job *j = r->done_head;
	r->done_head = r->done_tail = NULL;
	pthread_mutex_unlock(&r->lock);
	while (j) {
		readers_job *next = j->next;
		j->done(j->arg, j->rc);
		free(j);
		j = next;
	}
}

static void readers_wakeup_cb(evutil_socket_t fd, short what, void *arg)
{
	readers_deliver(arg);
}

static void *reader_main(void *arg)
{
	reader_thread *t = arg;
	readers *r = t->pool;
	for (;;) {
		pthread_mutex_lock(&r->lock);
		while (!r->head && !r->stopping)
			pthread_cond_wait(&r->wake, &r->lock);
		if (r->stopping) { /* readers_free cancels what is queued */
			pthread_mutex_unlock(&r->lock);
			return NULL;
		}
		readers_job *j = r->head;
		r->head = j->next;
		if (!r->head)
			r->tail = NULL;
		r->queued--;
		t->busy = true;
		r->busy++;
		pthread_mutex_unlock(&r->lock);

		j->rc = j->run(t->db, j->arg);

		pthread_mutex_lock(&r->lock);
		t->busy = false;
		r->busy--;
		bool was_empty = r->done_head == NULL;
		job_append(&r->done_head, &r->done_tail, j);
		pthread_cond_signal(&r->idle);
		pthread_mutex_unlock(&r->lock);
		if (was_empty)
			event_active(r->wakeup, 0, 0);
	}
}

readers *readers_new(struct event_base *base, const char *db_path, int threads, int queue_max,
		     readers_init_fn init, void *init_arg, char *err, size_t errcap)
{
	pthread_condattr_t attr;
	readers *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	r->magic = READERS_MAGIC;
	r->queue_max = queue_max;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* the stop poll's timeout */
	pthread_cond_init(&r->idle, &attr);
	pthread_condattr_destroy(&attr);
	r->threads = threads > 0 ? calloc((size_t)threads, sizeof *r->threads) : NULL;
	r->wakeup = event_new(base, -1, 0, readers_wakeup_cb, r);
	if (!r->threads || !r->wakeup) {
		snprintf(err, errcap, "%s", threads > 0 ? "out of memory" : "no reader threads");
		goto fail;
	}
	for (; r->opened < threads; r->opened++) {
		reader_thread *t = &r->threads[r->opened];
		t->pool = r;
		t->db = db_open(db_path, true, err, errcap);
		if (!t->db)
			goto fail;
		if (init && init(t->db, init_arg) != 0) {
			snprintf(err, errcap, "%s: cannot prepare a reader connection", db_path);
			r->opened++; /* so that it is closed */
			goto fail;
		}
	}
	for (; r->started < threads; r->started++) {
		if (pthread_create(&r->threads[r->started].thread, NULL, reader_main,
				   &r->threads[r->started]) != 0) {
			snprintf(err, errcap, "cannot start a reader thread");
			goto fail;
		}
	}
	return r;
fail:
	readers_free(&r);
	return NULL;
}

int readers_submit(readers *r, readers_run_fn run, readers_done_fn done, void *arg)
{
	assert(r->magic == READERS_MAGIC);
	readers_job *j = malloc(sizeof *j);
	if (!j)
		return ERR_NOMEM;
	*j = (readers_job){.run = run, .done = done, .arg = arg};
	pthread_mutex_lock(&r->lock);
	if (r->stopping || r->queued >= r->queue_max) {
		pthread_mutex_unlock(&r->lock);
		free(j);
		return ERR_AGAIN;
	}
	job_append(&r->head, &r->tail, j);
	r->queued++;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int readers_queued(readers *r)
{
	pthread_mutex_lock(&r->lock);
	int n = r->queued;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void readers_free(readers **pr)
{
	readers *r = *pr;
	if (!r)
		return;
	assert(r->magic == READERS_MAGIC);
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	/* cancel the waiting jobs: they never run, done() tells them so */
	while (r->head) {
		readers_job *j = r->head;
		r->head = j->next;
		j->rc = ERR_AGAIN;
		job_append(&r->done_head, &r->done_tail, j);
	}
	r->tail = NULL;
	r->queued = 0;
	pthread_cond_broadcast(&r->wake);
	while (r->busy > 0) {
		for (int i = 0; i < r->started; i++)
			if (r->threads[i].busy)
				sqlite3_interrupt(db_handle(r->threads[i].db));
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += READERS_STOP_POLL_NS;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->idle, &r->lock, &until);
	}
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < r->started; i++)
		pthread_join(r->threads[i].thread, NULL);
	readers_deliver(r);
	for (int i = 0; i < r->opened; i++)
		db_close(&r->threads[i].db);
	if (r->wakeup)
		event_free(r->wakeup);
	pthread_cond_destroy(&r->idle);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	free(r->threads);
	r->magic = 0;
	free(r);
	*pr = NULL;
}
