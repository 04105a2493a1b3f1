/*
 * ratelog.h - rate limiting for repeated log lines: a failure that repeats
 * every reconnect (a refused port, an expired certificate) is logged once
 * per interval per cause, with the count of the ones held back, so that the
 * log says what is wrong without drowning in it.
 *
 * Causes are short strings ("connection refused", "certificate verify
 * failed: certificate has expired"); up to RATELOG_CAUSES distinct ones are
 * tracked, a new cause beyond that takes the slot least recently logged.
 * Not thread-safe: one owner (the event loop thread).
 */
#ifndef TANDEM_RATELOG_H
#define TANDEM_RATELOG_H

#include <stdbool.h>
#include <stdint.h>

#define RATELOG_CAUSES 8
#define RATELOG_CAUSE_MAX 192 /* longer causes are compared on this prefix */

typedef struct ratelog ratelog;

/* A limiter letting each cause through once per interval_ms. NULL on
 * allocation failure. */
ratelog *ratelog_new(int64_t interval_ms);
/* No-op on NULL; resets *rl. */
void ratelog_free(ratelog **rl);
/*
 * Should this occurrence of cause, at now_ms (any clock that does not go
 * back), be logged? true for the first occurrence of a cause and then at
 * most once per interval; *suppressed (may be NULL) gets how many
 * occurrences of this cause were held back since it was last let through.
 * Cannot fail.
 */
bool ratelog_allow(ratelog *rl, const char *cause, int64_t now_ms, unsigned *suppressed);

#endif
