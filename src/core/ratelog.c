/* ratelog.c - once per interval per cause; see ratelog.h. */
#include "core/ratelog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ratelog_cause {
	char text[RATELOG_CAUSE_MAX];
	int64_t last_ms;     /* when it was last let through */
	unsigned suppressed; /* held back since then */
	bool used;
} ratelog_cause;

struct ratelog {
	int64_t interval_ms;
	ratelog_cause causes[RATELOG_CAUSES];
};

ratelog *ratelog_new(int64_t interval_ms)
{
	ratelog *rl = calloc(1, sizeof *rl);
	if (rl)
		rl->interval_ms = interval_ms;
	return rl;
}

void ratelog_free(ratelog **rl)
{
	free(*rl);
	*rl = NULL;
}

bool ratelog_allow(ratelog *rl, const char *cause, int64_t now_ms, unsigned *suppressed)
{
	ratelog_cause *slot = NULL, *oldest = &rl->causes[0];
	for (int i = 0; i < RATELOG_CAUSES; i++) {
		ratelog_cause *c = &rl->causes[i];
		if (c->used && strncmp(c->text, cause, RATELOG_CAUSE_MAX - 1) == 0) {
			slot = c;
			break;
		}
		/* a free slot counts as the oldest of all */
		if (!c->used ? oldest->used : (oldest->used && c->last_ms < oldest->last_ms))
			oldest = c;
	}
	if (!slot) { /* a new cause (or one pushed out): let it through */
		slot = oldest;
		snprintf(slot->text, sizeof slot->text, "%s", cause);
		slot->used = true;
		slot->suppressed = 0;
		slot->last_ms = now_ms;
		if (suppressed)
			*suppressed = 0;
		return true;
	}
	if (now_ms - slot->last_ms < rl->interval_ms) {
		slot->suppressed++;
		return false;
	}
	if (suppressed)
		*suppressed = slot->suppressed;
	slot->suppressed = 0;
	slot->last_ms = now_ms;
	return true;
}
