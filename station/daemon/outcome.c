/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Job outcomes: their names in the journal and reports, and which count in a yield. */
#include <errno.h>
#include <string.h>

#include "outcome.h"

static const char *const names[] = {
	[OUTCOME_RUNNING] = "running",
	[OUTCOME_SUCCESS] = "success",
	[OUTCOME_FAILED] = "failed",
	[OUTCOME_VERIFY_FAILED] = "verify_failed",
	[OUTCOME_REMOVED] = "removed",
	[OUTCOME_TIMEOUT] = "timeout",
	[OUTCOME_INTERRUPTED] = "interrupted",
	[OUTCOME_REFUSED] = "refused",
	[OUTCOME_IGNORED] = "ignored",
};

const char *outcome_name(enum outcome o)
{
	if ((unsigned)o >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[o];
}

int outcome_from_name(const char *name, enum outcome *ret)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0) {
			*ret = (enum outcome)i;
			return 0;
		}
	return -EINVAL;
}

bool outcome_in_yield(enum outcome o)
{
	switch (o) {
	case OUTCOME_SUCCESS:
	case OUTCOME_FAILED:
	case OUTCOME_VERIFY_FAILED:
	case OUTCOME_REMOVED:
	case OUTCOME_TIMEOUT:
		return true;
	case OUTCOME_RUNNING:
	case OUTCOME_INTERRUPTED:
	case OUTCOME_REFUSED:
	case OUTCOME_IGNORED:
		return false;
	}
	return false;
}
