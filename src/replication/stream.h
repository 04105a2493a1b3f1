/*
 * stream.h - the primary's side of replication (stream.c owns this state:
 * the subscribers, what the secondary acknowledged and when, since when it
 * is not streaming, the waits on its acks and lag, the heartbeat and trim
 * timers, and how far the log was trimmed). Control thread only; the other
 * files read it through the getters below.
 */
#ifndef TANDEM_REPLICATION_STREAM_H
#define TANDEM_REPLICATION_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "replication/replication.h"

typedef struct repl repl;
typedef struct repl_stream repl_stream;
typedef struct http_request http_request;

/* A new, stopped state (no subscriber, nothing acknowledged). NULL when out
 * of memory. */
repl_stream *stream_new(void);
/* Free the state; call stream_stop and stream_fail_waiters first (the
 * subscribers and waiters are not touched here). *s becomes NULL. No-op on
 * NULL. */
void stream_free(repl_stream **s);

/* Primary: start the heartbeat and trim timers. 0 (also when running), or
 * ERR_NOMEM with nothing left started (as after stream_stop): the caller
 * must not act as a primary others can follow (election.c steps down). */
int stream_start(repl *r);
/* End every stream and stop the timers. Cannot fail. */
void stream_stop(repl *r);
/* Answer every ack and lag waiter with false (a step-down, the stop): what
 * they wait for can no longer be confirmed here. Cannot fail. */
void stream_fail_waiters(repl *r);
/* A new term starts (promotion): nothing of it is acknowledged yet. */
void stream_reset_acks(repl *r);

/* Link routes (peer = the verified certificate name). Each answers the
 * request exactly once: 409 stale_epoch / not_primary / diverged, 410
 * snapshot_required, 400 for a malformed request, 503 overloaded when out
 * of memory (nothing subscribed). */
void stream_handle(repl *r, http_request *req, const char *peer);
void stream_handle_ack(repl *r, http_request *req, const char *peer);
/* Entries were committed: pump them to the subscribers. Cannot fail (a
 * subscriber whose connection is gone or whose next entry was trimmed is
 * ended, and must reconnect). */
void stream_on_committed(repl *r);
/* Cut the stream of peer at once, unanswered (fault switch). Cannot fail. */
void stream_drop(repl *r, const char *peer);

/* Lag of the secondary behind the primary, in ms (0 when caught up, when no
 * secondary is configured, or when the log cannot be read). */
int64_t stream_lag_ms(repl *r);
/* The highest position the secondary acknowledged (0 in a new term). */
uint64_t stream_acked_seq(const repl *r);
/* Are the heartbeat and trim timers running (stream_start done)? */
bool stream_running(const repl *r);
/* Does a secondary stream from this primary now? */
bool stream_has_subscriber(const repl *r);
/* Since when no secondary streams (wall clock ms), 0 while one does. */
int64_t stream_degraded_since_ms(const repl *r);
/* The primary's replication fields of the status (last_seq .. degraded),
 * appended to out; cut at out's maximum. */
void stream_status_json(repl *r, buf *out);

/* Waits, control thread; cb runs on the control thread exactly once (false:
 * timeout, stopping, out of memory, or a step-down). */
void ctl_wait_acked(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg);
/* As ctl_wait_acked, but false at once when no secondary streams. */
void ctl_wait_confirmed(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg);
/* Until the lag is within rpo_budget_ms (true at once without a streaming
 * secondary: a lost region must not stop the surviving one). */
void ctl_wait_lag(repl *r, int timeout_ms, repl_wait_cb cb, void *arg);

/* Fencing by epoch on link messages. The epoch a message carries
 * (X-Tandem-Epoch), 0 if none or malformed. */
uint64_t link_request_epoch(http_request *req);
/* A message of an older epoch is answered 409 stale_epoch (false: the
 * caller stops there); one of a newer epoch is learned (a primary steps
 * down) and may go on (true). */
bool link_epoch_check(repl *r, http_request *req);
/* Answer 409 stale_epoch to a message of epoch e (older than ours). */
void link_refuse_stale(repl *r, http_request *req, uint64_t e);

#endif
