/* workers.c - thread pool with loop-thread completions; see workers.h. */
#include "core/workers.h"

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

struct workers {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	task *head, *tail;
	int queued, queue_max;
	bool stopping;
	pthread_t *threads;
	int thread_count;
	loop_queue *completions;
};

static void *workers_main(void *arg)
{
	workers *w = arg;
	for (;;) {
		pthread_mutex_lock(&w->lock);
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->wake, &w->lock);
		task *t = w->head;
		if (!t) { /* stopping and drained */
			pthread_mutex_unlock(&w->lock);
			return NULL;
		}
		w->head = t->next;
		if (!w->head)
			w->tail = NULL;
		w->queued--;
		pthread_mutex_unlock(&w->lock);
		t->work(t->arg);
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

int workers_submit(workers *w, void (*work)(void *), void (*done)(void *), void *arg)
{
	task *t = malloc(sizeof *t);
	if (!t)
		return ERR_NOMEM;
	*t = (task){work, done, arg, NULL};
	pthread_mutex_lock(&w->lock);
	if (w->stopping || w->queued >= w->queue_max) {
		pthread_mutex_unlock(&w->lock);
		free(t);
		return ERR_AGAIN;
	}
	if (w->tail)
		w->tail->next = t;
	else
		w->head = t;
	w->tail = t;
	w->queued++;
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
