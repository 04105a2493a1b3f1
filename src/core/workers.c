/* workers.c - thread pool with loop-thread completions; see workers.h. */
#include "core/workers.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"

typedef struct task {
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
	struct task *next;
} task;

struct loop_queue {
	pthread_mutex_t lock;
	task *head, *tail;
	struct event *wakeup;
};

static void loop_queue_cb(evutil_socket_t fd, short what, void *arg)
{
	loop_queue_run(arg);
}

loop_queue *loop_queue_new(struct event_base *base)
{
	loop_queue *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	pthread_mutex_init(&q->lock, NULL);
	q->wakeup = event_new(base, -1, 0, loop_queue_cb, q);
	if (!q->wakeup) {
		pthread_mutex_destroy(&q->lock);
		free(q);
		return NULL;
	}
	return q;
}

int loop_queue_post(loop_queue *q, void (*fn)(void *), void *arg)
{
	task *t = malloc(sizeof *t);
	if (!t)
		return ERR_NOMEM;
	t->done = fn;
	t->work = NULL;
	t->arg = arg;
	t->next = NULL;
	pthread_mutex_lock(&q->lock);
	bool was_empty = q->head == NULL;
	if (q->tail)
		q->tail->next = t;
	else
		q->head = t;
	q->tail = t;
	pthread_mutex_unlock(&q->lock);
	if (was_empty)
		event_active(q->wakeup, 0, 0);
	return 0;
}

void loop_queue_run(loop_queue *q)
{
	pthread_mutex_lock(&q->lock);
	task *t = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->lock);
	while (t) {
		task *next = t->next;
		t->done(t->arg);
		free(t);
		t = next;
	}
}

void loop_queue_free(loop_queue **pq)
{
	loop_queue *q = *pq;
	if (!q)
		return;
	loop_queue_run(q);
	event_free(q->wakeup);
	pthread_mutex_destroy(&q->lock);
	free(q);
	*pq = NULL;
}

typedef struct lane_queue {
	task *head, *tail;
	int queued;
} lane_queue;

struct workers {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	lane_queue lanes[2];  /* indexed by workers_lane */
	int queue_max;        /* per lane */
	int bulk_running, bulk_max;
	bool stopping;
	pthread_t *threads;
	int thread_count;
	loop_queue *completions;
};

static task *lane_pop(lane_queue *q)
{
	task *t = q->head;
	q->head = t->next;
	if (!q->head)
		q->tail = NULL;
	q->queued--;
	return t;
}

/* The next job this thread may run, or NULL when it should wait (or, if
 * stopping and nothing is queued, exit). Under the lock. */
static task *workers_next(workers *w, bool *bulk)
{
	if (w->lanes[WORKERS_URGENT].head) {
		*bulk = false;
		return lane_pop(&w->lanes[WORKERS_URGENT]);
	}
	if (w->lanes[WORKERS_BULK].head && w->bulk_running < w->bulk_max) {
		*bulk = true;
		w->bulk_running++;
		return lane_pop(&w->lanes[WORKERS_BULK]);
	}
	return NULL;
}

static void *workers_main(void *arg)
{
	workers *w = arg;
	for (;;) {
		pthread_mutex_lock(&w->lock);
		bool bulk = false;
		task *t;
		while (!(t = workers_next(w, &bulk))) {
			if (w->stopping && !w->lanes[WORKERS_BULK].head) { /* stopping and drained */
				pthread_mutex_unlock(&w->lock);
				return NULL;
			}
			pthread_cond_wait(&w->wake, &w->lock);
		}
		pthread_mutex_unlock(&w->lock);
		t->work(t->arg);
		if (bulk) {
			pthread_mutex_lock(&w->lock);
			w->bulk_running--;
			/* a bulk slot is free: a waiting thread may take the next one */
			pthread_cond_broadcast(&w->wake);
			pthread_mutex_unlock(&w->lock);
		}
		if (loop_queue_post(w->completions, t->done, t->arg) != 0)
			t->done(t->arg); /* cannot happen in practice; never lose a completion */
		free(t);
	}
}

workers *workers_new(struct event_base *base, int threads, int queue_max)
{
	workers *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->queue_max = queue_max;
	w->bulk_max = threads > 1 ? threads - 1 : 1;
	w->completions = loop_queue_new(base);
	w->threads = calloc((size_t)threads, sizeof *w->threads);
	if (!w->completions || !w->threads)
		goto fail;
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&w->threads[i], NULL, workers_main, w) != 0)
			goto fail;
		w->thread_count++;
	}
	return w;
fail:
	workers_free(&w);
	return NULL;
}

int workers_submit(workers *w, workers_lane lane, void (*work)(void *), void (*done)(void *), void *arg)
{
	assert(lane == WORKERS_URGENT || lane == WORKERS_BULK);
	task *t = malloc(sizeof *t);
	if (!t)
		return ERR_NOMEM;
	*t = (task){work, done, arg, NULL};
	lane_queue *q = &w->lanes[lane];
	pthread_mutex_lock(&w->lock);
	if (w->stopping || q->queued >= w->queue_max) {
		pthread_mutex_unlock(&w->lock);
		free(t);
		return ERR_AGAIN;
	}
	if (q->tail)
		q->tail->next = t;
	else
		q->head = t;
	q->tail = t;
	q->queued++;
	/* one waiter: any thread can take an URGENT job, and any waiting
	 * thread a BULK one while a bulk slot is free (none can otherwise; a
	 * slot freed later broadcasts). Waking all four for each job made
	 * three of them fight for the lock and sleep again: a GET's open
	 * paid those context switches (docs/BENCHMARKS.md). */
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

void workers_free(workers **pw)
{
	workers *w = *pw;
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->wake);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < w->thread_count; i++)
		pthread_join(w->threads[i], NULL);
	if (w->completions)
		loop_queue_free(&w->completions);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w->threads);
	free(w);
	*pw = NULL;
}
