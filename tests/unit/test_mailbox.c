/*
 * test_mailbox.c - src/core/mailbox.c: closures run on the owner's loop in
 * the order posted; the bound refuses (ERR_AGAIN, nothing queued) and
 * frees up as closures run; intrusive nodes are never refused; two threads
 * posting at once lose nothing and keep each one's order; close and free
 * run what is left. No sleeps: threads are joined, the loop is run with
 * EVLOOP_NONBLOCK until nothing is left.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/err.h"
#include "core/mailbox.h"
#include "test.h"

static struct event_base *base;

typedef struct log_ {
	int n;
	intptr_t seen[20000];
	pthread_t thread[20000];
} log_;

static log_ seen;

static void record(void *arg)
{
	seen.thread[seen.n] = pthread_self();
	seen.seen[seen.n++] = (intptr_t)arg;
}

static void run_loop(mailbox *mb)
{
	for (int i = 0; i < 1000 && mailbox_pending(mb) > 0; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

static void test_order_and_batches(void)
{
	seen.n = 0;
	mailbox *mb = mailbox_new(base, 100);
	CHECK(mb != NULL);
	for (intptr_t i = 0; i < 50; i++)
		CHECK_EQ_INT(mailbox_post(mb, record, (void *)i), 0);
	CHECK_EQ_INT(seen.n, 0); /* nothing runs inside post */
	CHECK_EQ_INT(mailbox_pending(mb), 50);
	event_base_loop(base, EVLOOP_NONBLOCK); /* one wake-up runs the whole batch */
	CHECK_EQ_INT(seen.n, 50);
	for (int i = 0; i < 50; i++)
		CHECK_EQ_INT(seen.seen[i], i);
	CHECK_EQ_INT(mailbox_pending(mb), 0);
	mailbox_free(&mb);
	CHECK(mb == NULL);
}

static void test_bound_refuses_and_frees_up(void)
{
	seen.n = 0;
	mailbox *mb = mailbox_new(base, 3);
	for (intptr_t i = 0; i < 3; i++)
		CHECK_EQ_INT(mailbox_post(mb, record, (void *)i), 0);
	CHECK_EQ_INT(mailbox_post(mb, record, (void *)99), ERR_AGAIN);
	/* an intrusive node is not bound: completions are never refused */
	mailbox_node node = {.fn = record, .arg = (void *)3};
	mailbox_post_node(mb, &node);
	CHECK_EQ_INT(mailbox_pending(mb), 4);
	run_loop(mb);
	CHECK_EQ_INT(seen.n, 4);
	CHECK_EQ_INT(seen.seen[3], 3); /* FIFO across both kinds; 99 never ran */
	CHECK_EQ_INT(mailbox_post(mb, record, (void *)4), 0); /* room again */
	run_loop(mb);
	CHECK_EQ_INT(seen.n, 5);
	mailbox_free(&mb);
}

/* A closure that posts again (a completion posting the next step) runs in
 * the same drain, after what was queued before it. */
static mailbox *self_mb;
static void repost(void *arg)
{
	record(arg);
	if ((intptr_t)arg < 5)
		CHECK_EQ_INT(mailbox_post(self_mb, repost, (void *)((intptr_t)arg + 1)), 0);
}

static void test_post_from_a_closure(void)
{
	seen.n = 0;
	self_mb = mailbox_new(base, 2);
	CHECK_EQ_INT(mailbox_post(self_mb, repost, (void *)0), 0);
	run_loop(self_mb);
	CHECK_EQ_INT(seen.n, 6);
	for (int i = 0; i < 6; i++)
		CHECK_EQ_INT(seen.seen[i], i);
	mailbox_free(&self_mb);
}

typedef struct poster {
	mailbox *mb;
	intptr_t first;
	int count;
	int refused;
} poster;

static void *post_many(void *arg)
{
	poster *p = arg;
	for (int i = 0; i < p->count; i++)
		if (mailbox_post(p->mb, record, (void *)(p->first + i)) != 0)
			p->refused++;
	return NULL;
}

static void test_two_threads_post_concurrently(void)
{
	seen.n = 0;
	mailbox *mb = mailbox_new(base, 20000);
	poster a = {mb, 0, 5000, 0}, b = {mb, 100000, 5000, 0};
	pthread_t ta, tb;
	CHECK_EQ_INT(pthread_create(&ta, NULL, post_many, &a), 0);
	CHECK_EQ_INT(pthread_create(&tb, NULL, post_many, &b), 0);
	/* drain while they post: the owner and the posters race on the queue */
	while (seen.n < 5000)
		event_base_loop(base, EVLOOP_NONBLOCK);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	run_loop(mb);
	CHECK_EQ_INT(a.refused + b.refused, 0);
	CHECK_EQ_INT(seen.n, 10000);
	/* each poster's closures in its own order, all on this thread */
	intptr_t next_a = 0, next_b = 100000;
	bool ordered = true, here = true;
	for (int i = 0; i < seen.n; i++) {
		if (seen.seen[i] < 100000)
			ordered = ordered && seen.seen[i] == next_a++;
		else
			ordered = ordered && seen.seen[i] == next_b++;
		here = here && pthread_equal(seen.thread[i], pthread_self());
	}
	CHECK(ordered);
	CHECK(here);
	CHECK_EQ_INT(next_a, 5000);
	CHECK_EQ_INT(next_b, 105000);
	mailbox_free(&mb);
}

static void test_close_and_free_run_what_is_left(void)
{
	seen.n = 0;
	mailbox *mb = mailbox_new(base, 10);
	CHECK_EQ_INT(mailbox_post(mb, record, (void *)1), 0);
	mailbox_close(mb);
	CHECK_EQ_INT(mailbox_post(mb, record, (void *)2), ERR_AGAIN); /* refused once closed */
	mailbox_node node = {.fn = record, .arg = (void *)3};
	mailbox_post_node(mb, &node); /* a completion is still taken */
	mailbox_free(&mb);            /* the owner is gone: free runs them here */
	CHECK_EQ_INT(seen.n, 2);
	CHECK_EQ_INT(seen.seen[0], 1);
	CHECK_EQ_INT(seen.seen[1], 3);
	mailbox_free(&mb); /* no-op on NULL */
}

int main(void)
{
	evthread_use_pthreads();
	base = event_base_new();
	RUN(test_order_and_batches);
	RUN(test_bound_refuses_and_frees_up);
	RUN(test_post_from_a_closure);
	RUN(test_two_threads_post_concurrently);
	RUN(test_close_and_free_run_what_is_left);
	event_base_free(base);
	return TEST_SUMMARY();
}
