/*
 * mailbox.h - the one way the region's threads hand work to each other: a
 * bounded FIFO of closures (fn, arg) that run on the thread of the event
 * base the mailbox belongs to (its owner).
 *
 *   any thread                         owner thread (its event_base)
 *   mailbox_post(fn, arg) --+
 *   mailbox_post_node(n) ---+--> queue --event_active--> fn(arg), fn(arg), ...
 *                                          (one batch per wake-up)
 *
 * Two kinds of post:
 *   - mailbox_post: allocates its node, counts against the bound; refused
 *     (ERR_AGAIN, nothing queued) when the mailbox is full or closed. For
 *     requests a caller can answer "busy" to.
 *   - mailbox_post_node: intrusive (the caller embeds a mailbox_node in its
 *     own object), never refused, never counted: for completions that must
 *     never be dropped (an answer to a request already accepted).
 *
 * Order: every closure runs in the order it was posted (one queue for both
 * kinds); closures posted from one thread run in that thread's order.
 *
 * Shutdown contract: mailbox_close() refuses further mailbox_post (the
 * bound's ERR_AGAIN: the caller answers as it would for "busy"); intrusive
 * posts are still queued. Closures queued and not yet run are run by
 * mailbox_run() (the owner, or whoever holds the owner role once the owner
 * thread has stopped) and by mailbox_free(), which runs everything left on
 * the calling thread: nothing queued is ever dropped.
 */
#ifndef TANDEM_MAILBOX_H
#define TANDEM_MAILBOX_H

#include <stdbool.h>

#include <event2/event.h>

typedef struct mailbox mailbox;

typedef void (*mailbox_fn)(void *arg);

/* An intrusive node: embed it, fill fn and arg, post it. The owner thread
 * unlinks it before calling fn, so fn may free the object that holds it or
 * post the node again. */
typedef struct mailbox_node {
	mailbox_fn fn;
	void *arg;
	struct mailbox_node *next;
	bool counted; /* internal: allocated by mailbox_post */
} mailbox_node;

/* A mailbox whose closures run on base's thread; max bounds the closures
 * queued by mailbox_post (>= 1). NULL on allocation failure. Requires
 * evthread_use_pthreads() before base was created. */
mailbox *mailbox_new(struct event_base *base, int max);
/* Queue fn(arg). Thread-safe. 0; ERR_AGAIN when max closures are queued
 * or the mailbox is closed; ERR_NOMEM. On failure nothing is queued and
 * fn will not run. */
int mailbox_post(mailbox *mb, mailbox_fn fn, void *arg);
/* Queue an intrusive node (n->fn, n->arg set by the caller). Thread-safe,
 * cannot fail; queued even when closed (see the shutdown contract). The
 * node must not be queued already. */
void mailbox_post_node(mailbox *mb, mailbox_node *n);
/* Run what is queued now, in order, on the calling thread (the owner's
 * event does this by itself); closures posted meanwhile run too. */
void mailbox_run(mailbox *mb);
/* Refuse mailbox_post from now on. Thread-safe; idempotent. */
void mailbox_close(mailbox *mb);
/* Closures queued and not run yet (both kinds). Thread-safe. */
int mailbox_pending(mailbox *mb);
/* Run everything still queued (on the calling thread), free; no-op on
 * NULL; resets *mb. The owner thread must have stopped using it. */
void mailbox_free(mailbox **mb);

#endif
