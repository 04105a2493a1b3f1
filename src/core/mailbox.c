/*
 * mailbox.c - bounded cross-thread closures delivered in batches by one
 * event_active on the owner's base; see mailbox.h for the contract.
 */
#include "core/mailbox.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/err.h"

struct mailbox {
	pthread_mutex_t lock;
	mailbox_node *head, *tail;
	int counted;     /* queued by mailbox_post: what max bounds */
	int pending;     /* every queued node */
	int max;
	bool closed;
	bool armed;      /* the wake-up event is active and will run the queue */
	struct event *wakeup;
};

static void mailbox_wakeup(evutil_socket_t fd, short what, void *arg)
{
	mailbox_run(arg);
}

mailbox *mailbox_new(struct event_base *base, int max)
{
	mailbox *mb = calloc(1, sizeof *mb);
	if (!mb)
		return NULL;
	mb->max = max > 0 ? max : 1;
	if (pthread_mutex_init(&mb->lock, NULL) != 0) {
		free(mb);
		return NULL;
	}
	mb->wakeup = event_new(base, -1, 0, mailbox_wakeup, mb);
	if (!mb->wakeup) {
		pthread_mutex_destroy(&mb->lock);
		free(mb);
		return NULL;
	}
	return mb;
}

/* Append n (lock held); returns whether the owner must be woken. */
static bool mailbox_append(mailbox *mb, mailbox_node *n)
{
	n->next = NULL;
	if (mb->tail)
		mb->tail->next = n;
	else
		mb->head = n;
	mb->tail = n;
	mb->pending++;
	if (mb->armed)
		return false;
	mb->armed = true;
	return true;
}

int mailbox_post(mailbox *mb, mailbox_fn fn, void *arg)
{
	mailbox_node *n = malloc(sizeof *n);
	if (!n)
		return ERR_NOMEM;
	n->fn = fn;
	n->arg = arg;
	n->counted = true;
	pthread_mutex_lock(&mb->lock);
	if (mb->closed || mb->counted >= mb->max) {
		pthread_mutex_unlock(&mb->lock);
		free(n);
		return ERR_AGAIN;
	}
	mb->counted++;
	bool wake = mailbox_append(mb, n);
	pthread_mutex_unlock(&mb->lock);
	/* outside the lock: event_active takes the base's lock, and the owner
	 * may hold that one while it posts to us */
	if (wake)
		event_active(mb->wakeup, EV_TIMEOUT, 1);
	return 0;
}

void mailbox_post_node(mailbox *mb, mailbox_node *n)
{
	n->counted = false;
	pthread_mutex_lock(&mb->lock);
	bool wake = mailbox_append(mb, n);
	pthread_mutex_unlock(&mb->lock);
	if (wake)
		event_active(mb->wakeup, EV_TIMEOUT, 1);
}

void mailbox_run(mailbox *mb)
{
	for (;;) {
		/* take the whole batch at once: posters are held up only for
		 * the swap, never while closures run */
		pthread_mutex_lock(&mb->lock);
		mailbox_node *n = mb->head;
		mb->head = mb->tail = NULL;
		if (!n)
			mb->armed = false; /* the next post wakes us again */
		pthread_mutex_unlock(&mb->lock);
		if (!n)
			return;
		while (n) {
			mailbox_node *next = n->next;
			bool counted = n->counted;
			mailbox_fn fn = n->fn;
			void *arg = n->arg;
			pthread_mutex_lock(&mb->lock);
			mb->pending--;
			if (counted)
				mb->counted--;
			pthread_mutex_unlock(&mb->lock);
			if (counted)
				free(n); /* ours; an intrusive node belongs to its object */
			fn(arg);
			n = next;
		}
	}
}

void mailbox_close(mailbox *mb)
{
	pthread_mutex_lock(&mb->lock);
	mb->closed = true;
	pthread_mutex_unlock(&mb->lock);
}

int mailbox_pending(mailbox *mb)
{
	pthread_mutex_lock(&mb->lock);
	int n = mb->pending;
	pthread_mutex_unlock(&mb->lock);
	return n;
}

void mailbox_free(mailbox **pmb)
{
	mailbox *mb = *pmb;
	if (!mb)
		return;
	mailbox_close(mb);
	mailbox_run(mb);
	event_free(mb->wakeup);
	pthread_mutex_destroy(&mb->lock);
	free(mb);
	*pmb = NULL;
}
