/*
 * test_workers.c - the hashing pool's lanes (src/core/workers.c): URGENT jobs
 * (logins) run before BULK ones (signups) already queued, BULK jobs never
 * take the last thread, and each lane has its own queue bound (the bug of
 * issue 8: 200 queued signups made a login wait 10 s). Deterministic: jobs
 * block on a gate the test opens; no sleeps (a timed wait only bounds a
 * failure, so a broken pool fails instead of hanging).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/err.h"
#include "core/workers.h"
#include "test.h"

static struct event_base *base;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int started;        /* gated jobs running */
static char order[32];     /* ids of the jobs in the order they ran */
static int order_len;
static int completions;    /* done() calls, on the loop thread */

typedef struct job {
	char id;
	bool gated;            /* blocks until the gate opens */
} job;

static void reset(void)
{
	pthread_mutex_lock(&lock);
	gate_open = false;
	started = 0;
	order_len = 0;
	memset(order, 0, sizeof order);
	pthread_mutex_unlock(&lock);
	completions = 0;
}

static void job_work(void *arg)
{
	job *j = arg;
	pthread_mutex_lock(&lock);
	order[order_len++] = j->id;
	if (j->gated) {
		started++;
		pthread_cond_broadcast(&changed);
		while (!gate_open)
			pthread_cond_wait(&changed, &lock);
	}
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

static void job_done(void *arg)
{
	completions++;
}

/* Wait (bounded: 10 s, only reached when the pool is broken) until
 * pred() holds. Under the lock. */
static bool wait_until(bool (*pred)(void))
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	while (!pred())
		if (pthread_cond_timedwait(&changed, &lock, &deadline) == ETIMEDOUT)
			return pred();
	return true;
}

static int want_started;
static bool enough_started(void)
{
	return started >= want_started;
}

static char want_ran;
static bool has_run(void)
{
	return memchr(order, want_ran, (size_t)order_len) != NULL;
}

static void open_gate(void)
{
	pthread_mutex_lock(&lock);
	gate_open = true;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

/* Run the loop until n completions arrived (bounded by 10 s of polling,
 * only reached when a completion is lost). */
static void run_loop_until(int n)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (completions < n) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 10)
			return;
		sched_yield();
	}
}

/* One thread busy; bulk b1 b2 then urgent u1 u2 queued: the urgent ones run
 * first, each lane in its own order. */
static void test_urgent_jobs_overtake_queued_bulk_jobs(void)
{
	reset();
	workers *w = workers_new(base, 1, 16);
	CHECK(w != NULL);
	job gate = {'g', true}, b1 = {'b', false}, b2 = {'c', false}, u1 = {'u', false}, u2 = {'v', false};
	CHECK_EQ_INT(workers_submit(w, WORKERS_URGENT, job_work, job_done, &gate), 0);
	pthread_mutex_lock(&lock);
	want_started = 1;
	CHECK(wait_until(enough_started));
	pthread_mutex_unlock(&lock);
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &b1), 0);
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &b2), 0);
	CHECK_EQ_INT(workers_submit(w, WORKERS_URGENT, job_work, job_done, &u1), 0);
	CHECK_EQ_INT(workers_submit(w, WORKERS_URGENT, job_work, job_done, &u2), 0);
	open_gate();
	run_loop_until(5);
	CHECK_EQ_INT(completions, 5);
	CHECK_EQ_STR(order, "guvbc");
	workers_free(&w);
	CHECK(w == NULL);
}

/* Two threads: a bulk job holds one, a second bulk job must wait for it
 * rather than take the last thread, which an urgent job then gets at once. */
static void test_bulk_jobs_never_take_the_last_thread(void)
{
	reset();
	workers *w = workers_new(base, 2, 16);
	CHECK(w != NULL);
	job b1 = {'b', true}, b2 = {'c', true}, u1 = {'u', false};
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &b1), 0);
	pthread_mutex_lock(&lock);
	want_started = 1;
	CHECK(wait_until(enough_started));
	pthread_mutex_unlock(&lock);
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &b2), 0);
	CHECK_EQ_INT(workers_submit(w, WORKERS_URGENT, job_work, job_done, &u1), 0);
	/* with the gate still closed, u1 runs (on the kept thread) */
	pthread_mutex_lock(&lock);
	want_ran = 'u';
	CHECK(wait_until(has_run));
	CHECK_EQ_INT(started, 1); /* b2 did not start: it waits for b1's thread */
	pthread_mutex_unlock(&lock);
	open_gate();
	run_loop_until(3);
	CHECK_EQ_INT(completions, 3);
	CHECK_EQ_STR(order, "buc");
	workers_free(&w);
}

/* Each lane is bounded on its own: a full bulk queue refuses bulk jobs but
 * still takes urgent ones; refused jobs never complete. */
static void test_each_lane_has_its_own_bound(void)
{
	reset();
	workers *w = workers_new(base, 1, 2);
	CHECK(w != NULL);
	job gate = {'g', true}, b[3] = {{'b', false}, {'c', false}, {'d', false}}, u1 = {'u', false};
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &gate), 0);
	pthread_mutex_lock(&lock);
	want_started = 1;
	CHECK(wait_until(enough_started));
	pthread_mutex_unlock(&lock);
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &b[0]), 0);
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &b[1]), 0);
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &b[2]), ERR_AGAIN);
	CHECK_EQ_INT(workers_submit(w, WORKERS_URGENT, job_work, job_done, &u1), 0);
	open_gate();
	run_loop_until(4);
	CHECK_EQ_INT(completions, 4);
	CHECK_EQ_STR(order, "gubc");
	workers_free(&w);
}

/* workers_free runs what is queued in both lanes, then every completion. */
static void test_free_drains_both_lanes(void)
{
	reset();
	workers *w = workers_new(base, 1, 8);
	job gate = {'g', true}, b1 = {'b', false}, u1 = {'u', false};
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &gate), 0);
	pthread_mutex_lock(&lock);
	want_started = 1;
	CHECK(wait_until(enough_started));
	pthread_mutex_unlock(&lock);
	CHECK_EQ_INT(workers_submit(w, WORKERS_BULK, job_work, job_done, &b1), 0);
	CHECK_EQ_INT(workers_submit(w, WORKERS_URGENT, job_work, job_done, &u1), 0);
	open_gate();
	workers_free(&w);
	CHECK_EQ_INT(completions, 3);
	CHECK_EQ_STR(order, "gub");
}

int main(void)
{
	evthread_use_pthreads();
	base = event_base_new();
	RUN(test_urgent_jobs_overtake_queued_bulk_jobs);
	RUN(test_bulk_jobs_never_take_the_last_thread);
	RUN(test_each_lane_has_its_own_bound);
	RUN(test_free_drains_both_lanes);
	event_base_free(base);
	return TEST_SUMMARY();
}
