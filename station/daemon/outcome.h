/* SPDX-License-Identifier: GPL-2.0-or-later */
/* How a job ended: an enum everywhere, a name only in the journal and reports. */
#pragma once

#include <stdbool.h>

enum outcome {
	OUTCOME_RUNNING, /* not an outcome: the job row exists, no end yet */
	OUTCOME_SUCCESS,
	OUTCOME_FAILED,
	OUTCOME_VERIFY_FAILED,
	OUTCOME_REMOVED,
	OUTCOME_TIMEOUT,
	OUTCOME_INTERRUPTED,
	OUTCOME_REFUSED,
	OUTCOME_IGNORED,
};

const char *outcome_name(enum outcome o); /* "running", "success", ... */
int outcome_from_name(const char *name, enum outcome *ret);

/*
 * Whether a job with outcome @o counts in a yield: it ran to an end of its
 * own (success, failed, verify_failed, removed, timeout). Refused, ignored
 * and interrupted jobs never wrote a card through, and running ones have
 * not ended. The one definition, for `report --summary` and `watch`.
 */
bool outcome_in_yield(enum outcome o);
