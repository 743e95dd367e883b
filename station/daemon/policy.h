/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What a card gets: one decision, used by `run` for every insertion and by `check`. */
#pragma once

#include <stdint.h>

#include "config.h"
#include "device.h"
#include "journal.h"

enum policy_verdict {
	POLICY_IGNORE, /* not ours: recorded 'ignored' */
	POLICY_REFUSE, /* ours, but must not be written: 'refused' */
	POLICY_FAIL,   /* ours, but the profile's image cannot be had: 'failed' */
	POLICY_QUEUE,  /* to be written with .profile */
};

struct policy_decision {
	enum policy_verdict verdict;
	const struct profile *profile; /* the matching profile, when one matched */
	uint64_t image_size;	       /* POLICY_QUEUE: what the image needs */
	char *bmap;		       /* POLICY_QUEUE: the bmap found (owned), or NULL */
	char bmap_sha256[65];	       /* POLICY_QUEUE with a bmap */
	char why[1024];		       /* why not (every verdict but POLICY_QUEUE) */
};

enum outcome policy_outcome(enum policy_verdict v);

/*
 * The decision for the medium in @d, sitting in slot @slot (or NULL), in
 * the order a card meets the checks: tagged, a profile, once per serial
 * (against @journal; NULL skips it), the safety gate, removable only, and
 * the profile's image and bmap as they are now (it fits the card). Reads
 * the image's bmap. Free with policy_decision_clear().
 */
void policy_decide(const struct station_config *cfg, const struct device *d, const char *slot,
		   struct journal *journal, struct policy_decision *ret);
void policy_decision_clear(struct policy_decision *d);

/* Only the once-per-serial rule, again at job start: 0, or -EEXIST with @why. */
int policy_once_per_serial(const struct profile *p, const struct device *d, struct journal *journal,
			   char *why, size_t why_len);

/* Only the image check, again at job start (the files may have changed). */
int policy_image(const struct profile *p, const struct device *d, struct policy_decision *ret);
