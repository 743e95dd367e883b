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
	POLICY_WAIT,   /* the image's bmap is being read (probe.c): ask again */
};

/* What a bmap says that the decision needs. */
struct bmap_facts {
	uint64_t image_size;
	char sha256[65]; /* of the bmap's XML as parsed (a clearsigned one's text), hex */
	char signer[41]; /* the valid signature's key fingerprint, "" when unsigned */
	char bmap[2048]; /* the bmap found next to an image URL, "" when one was given */
};

/*
 * How the decision learns a bmap's facts, its signature checked as @sig
 * says: 0 with @ret, -EAGAIN when they are being read (the decision is
 * POLICY_WAIT), -EKEYREJECTED with @why when the signature is not accepted
 * (the card is refused), or -errno with @why. `check` reads the bmap there
 * and then (policy_bmap_facts_now); `run` never parses in its event loop
 * (probe.c).
 */
/* @bmap NULL: the profile's @image is a URL with no bmap given; the bmap is
 * looked for next to it (bmap_discover_url()) and named in ret->bmap. */
typedef int (*policy_facts_fn)(void *userdata, const char *image, const char *bmap,
			       const struct sig_policy *sig, struct bmap_facts *ret, char *why,
			       size_t why_len);
int policy_bmap_facts_now(void *userdata, const char *image, const char *bmap,
			  const struct sig_policy *sig, struct bmap_facts *ret, char *why,
			  size_t why_len);

struct bmap_ctx;
struct bmap_map;
/* A profile's bmap (a file or a URL, fetched whole) as the probe and the
 * worker read it: its signature (clearsigned, or BMAP.asc, BMAP.sig next to
 * it, at a URL each a HEAD request first) verified as @sig says,
 * then the verified bytes parsed. -EKEYREJECTED when the signature is not
 * accepted; the detail in @ctx in every failure. @ret_signer (41 bytes)
 * gets the signer's fingerprint, "" when unsigned. */
int policy_load_bmap(struct bmap_ctx *ctx, const char *path, const struct sig_policy *sig,
		     struct bmap_map **ret_map, char *ret_signer);

struct policy_decision {
	enum policy_verdict verdict;
	const struct profile *profile; /* the matching profile, when one matched */
	uint64_t image_size;	       /* POLICY_QUEUE: what the image needs */
	char *bmap;		       /* POLICY_QUEUE: the bmap found (owned), or NULL */
	char bmap_sha256[65];	       /* POLICY_QUEUE with a bmap */
	char signer[41];	       /* POLICY_QUEUE: the bmap's signer, "" when unsigned */
	char why[1024];		       /* why not (every verdict but POLICY_QUEUE) */
};

enum outcome policy_outcome(enum policy_verdict v);

/*
 * The decision for the medium in @d, sitting in slot @slot (or NULL), in
 * the order a card meets the checks: tagged, a profile, once per serial
 * (against @journal; NULL skips it), the safety gate, removable only, and
 * the profile's image and bmap as they are now (it fits the card), the
 * bmap's facts through @facts. Free with policy_decision_clear().
 */
void policy_decide(const struct station_config *cfg, const struct device *d, const char *slot,
		   struct journal *journal, policy_facts_fn facts, void *userdata,
		   struct policy_decision *ret);
void policy_decision_clear(struct policy_decision *d);

/* Only the once-per-serial rule, again at job start: 0, or -EEXIST with @why. */
int policy_once_per_serial(const struct profile *p, const struct device *d, struct journal *journal,
			   char *why, size_t why_len);

/* Only the image check, again at job start (the files may have changed). */
int policy_image(const struct profile *p, const struct device *d, policy_facts_fn facts,
		 void *userdata, struct policy_decision *ret);
