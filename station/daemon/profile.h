/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The profile model: what to write onto a card (image, bmap, verify mode,
 * hooks) and which devices a profile is for (its match block), and matching
 * a device's identity against a configuration's profiles.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct station_config;

enum verify_mode {
	VERIFY_READBACK,  /* read the card back through the device, bypassing the cache */
	VERIFY_CHECKSUMS, /* check range checksums while copying only */
	VERIFY_NONE,
};

/* Commands run on station events, each an argv (never through a shell):
 * placeholders %slot %serial %devnode %profile %outcome %job in an argument
 * are replaced by their values. */
enum hook_event { HOOK_INSERT, HOOK_START, HOOK_SUCCESS, HOOK_FAILURE, HOOK_REMOVE, HOOK_EVENTS };

struct hooks {
	char **argv[HOOK_EVENTS]; /* NULL-terminated argv, or NULL */
};

const char *hook_event_name(enum hook_event e); /* "on_insert", ... */

/* Every given key must fit; strings are fnmatch(3) globs. NULL / 0 = any. */
struct match {
	char *slot, *bus, *vendor, *model, *serial;
	uint64_t min_size, max_size; /* bytes; 0 = no bound */
};

/* A profile's rule for signed bmaps (see signature.c in libbmap). */
enum sig_mode {
	SIG_OPTIONAL, /* default: a signature there (clearsigned, BMAP.asc, BMAP.sig)
		       * is verified, an unsigned bmap is taken */
	SIG_REQUIRED, /* an unsigned bmap is refused too */
};

struct sig_policy {
	enum sig_mode mode;
	char *keyring;        /* binary keyring file; NULL: the default keyring of
			       * the station's user (GNUPGHOME or ~/.gnupg) */
	char **fingerprints;  /* NULL-terminated, 40 uppercase hex each; NULL: any
			       * valid signer */
};

const char *sig_mode_name(enum sig_mode m); /* "optional", "required" */
/* A deep copy (a card keeps its own: a reload may free the profile). */
int sig_policy_copy(struct sig_policy *dst, const struct sig_policy *src);
void sig_policy_clear(struct sig_policy *s);

struct profile {
	char *name;
	char *image;
	char *bmap; /* NULL: discovered next to the image */
	enum verify_mode verify;
	bool removable_only; /* default true */
	bool once_per_serial; /* refuse a serial that already passed with this profile */
	bool discard;         /* discard (TRIM) the unmapped ranges after the copy */
	struct hooks hooks;   /* run after the station's own hooks */
	struct match match;
	struct sig_policy sig; /* signature, keyring, fingerprints */
};

/* What the station knows of a device when matching. Strings may be NULL. */
struct device_identity {
	const char *devnode;
	const char *serial;  /* ID_SERIAL_SHORT, else ID_SERIAL, else MMC serial */
	const char *vendor;
	const char *model;
	const char *bus;     /* ID_BUS, "mmc" for native MMC */
	const char *id_path; /* ID_PATH */
	uint64_t size;       /* bytes */
	bool removable;
};

/* The first profile whose match block fits @id (slot name as given), or NULL.
 * When no profile fits, *ret_why (if given) says why the closest one did not
 * (a static or cfg-owned string is fine; e.g. "serial does not match"). */
const struct profile *config_match(const struct station_config *cfg,
				   const struct device_identity *id, const char *slot_name,
				   const char **ret_why);

const char *verify_mode_name(enum verify_mode m);

/* Frees what @p holds (not @p itself). */
void profile_free(struct profile *p);
