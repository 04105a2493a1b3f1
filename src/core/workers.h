/*
 * workers.h - a small thread pool whose completions run on the event loop.
 *
 * work(arg) runs on a pool thread (it must not touch loop-owned state);
 * done(arg) then runs on the loop thread. Used for CPU-heavy steps (argon2id
 * password hashing) that must never stall the event loop.
 * Requires evthread_use_pthreads() before the event base was created.
 *
 * Two lanes, each with its own queue and bound: a thread always takes an
 * URGENT job before a BULK one, and BULK jobs run on at most threads - 1
 * threads at once (1 with a single thread), so one thread is kept for
 * URGENT work: a login never waits behind a flood of signups, at most for
 * the one job its thread may be finishing (none with two threads or more).
 */
#ifndef TANDEM_WORKERS_H
#define TANDEM_WORKERS_H

#include <event2/event.h>

typedef struct workers workers;

typedef enum workers_lane {
	WORKERS_URGENT, /* logins: a user is waiting at a sign-in screen */
	WORKERS_BULK    /* signups: many may come at once, none may starve logins */
} workers_lane;

/* NULL on failure (threads or memory). queue_max bounds the waiting jobs of
 * each lane. */
workers *workers_new(struct event_base *base, int threads, int queue_max);
/* 0, or ERR_AGAIN when the lane's queue is full or the pool is stopping
 * (nothing queued; done() will not run), ERR_NOMEM. */
int workers_submit(workers *w, workers_lane lane, void (*work)(void *), void (*done)(void *), void *arg);
/* Finish queued jobs, join the threads, free; no-op on NULL; resets *w.
 * Completions not yet delivered are run before returning. */
void workers_free(workers **w);

/* A queue of callbacks to run on the loop thread, posted from any thread. */
typedef struct loop_queue loop_queue;
loop_queue *loop_queue_new(struct event_base *base);
/* Post fn(arg) to run on the loop thread; 0 or ERR_NOMEM. Thread-safe. */
int loop_queue_post(loop_queue *q, void (*fn)(void *), void *arg);
/* Run everything posted so far now (on the loop thread). */
void loop_queue_run(loop_queue *q);
void loop_queue_free(loop_queue **q);

#endif
