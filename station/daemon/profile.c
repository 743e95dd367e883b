/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Profiles: what a profile is (image, bmap, verify mode, signature rule,
 * match block),
 * reading and validating the configuration's profiles list, and matching a
 * device's identity against them (the first that fits wins).
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap.h"
#include "config-parser.h"
#include "config.h"
#include "util.h"

/* The settings a profile and its match block may hold. */
static const char *const profile_keys[] = {
    "name", "image", "bmap", "verify", "removable_only", "once_per_serial", "discard", "hooks",
    "match", "signature", "keyring", "fingerprints", NULL,
};
static const char *const match_keys[] = {
    "slot", "bus", "vendor", "model", "serial", "min_size", "max_size", NULL,
};

static const char *const verify_names[] = {
    [VERIFY_READBACK] = "readback",
    [VERIFY_CHECKSUMS] = "checksums",
    [VERIFY_NONE] = "none",
};

const char *verify_mode_name(enum verify_mode m)
{
	if ((unsigned)m >= ARRAY_SIZE(verify_names))
		return "unknown";
	return verify_names[m];
}

static const char *const sig_mode_names[] = {
    [SIG_OPTIONAL] = "optional",
    [SIG_REQUIRED] = "required",
};

const char *sig_mode_name(enum sig_mode m)
{
	return (unsigned)m < ARRAY_SIZE(sig_mode_names) ? sig_mode_names[m] : "unknown";
}

void sig_policy_clear(struct sig_policy *s)
{
	free(s->keyring);
	for (char **f = s->fingerprints; f && *f; f++)
		free(*f);
	free(s->fingerprints);
	*s = (struct sig_policy){0};
}

int sig_policy_copy(struct sig_policy *dst, const struct sig_policy *src)
{
	size_t n = 0;

	*dst = (struct sig_policy){.mode = src->mode};
	if (src->keyring && !(dst->keyring = strdup(src->keyring)))
		goto oom;
	while (src->fingerprints && src->fingerprints[n])
		n++;
	if (src->fingerprints) {
		dst->fingerprints = calloc(n + 1, sizeof(char *));
		if (!dst->fingerprints)
			goto oom;
		for (size_t i = 0; i < n; i++)
			if (!(dst->fingerprints[i] = strdup(src->fingerprints[i])))
				goto oom;
	}
	return 0;
oom:
	sig_policy_clear(dst);
	return -ENOMEM;
}

/* signature = "optional" | "required", keyring = "FILE", fingerprints = [ "FPR", ... ]:
 * each fingerprint 40 hex digits (spaces allowed, as gpg prints them). */
static int config_parse_sig(struct config_ctx *c, const config_setting_t *e, struct sig_policy *sp)
{
	const config_setting_t *s;
	int r, n;

	s = config_setting_get_member(e, "signature");
	if (s) {
		const char *v = NULL;
		size_t i;

		r = config_get_string(c, s, false, &v);
		if (r < 0)
			return r;
		for (i = 0; i < ARRAY_SIZE(sig_mode_names); i++)
			if (strcmp(v, sig_mode_names[i]) == 0)
				break;
		if (i == ARRAY_SIZE(sig_mode_names))
			return config_fail(c, s, NULL, "\"%s\" is not optional or required", v);
		sp->mode = (enum sig_mode)i;
	}
	s = config_setting_get_member(e, "keyring");
	if (s) {
		r = config_dup_path(c, s, &sp->keyring);
		if (r < 0)
			return r;
	}
	s = config_setting_get_member(e, "fingerprints");
	if (!s)
		return 0;
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return config_fail(c, s, NULL, "must be a list of fingerprints: [ \"FPR\", ... ]");
	n = config_setting_length(s);
	if (n == 0)
		return config_fail(c, s, NULL,
				   "is empty: no signer could pass (leave it out for any valid "
				   "signer)");
	sp->fingerprints = calloc((size_t)n + 1, sizeof(char *));
	if (!sp->fingerprints)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		const config_setting_t *f = config_setting_get_elem(s, (unsigned)i);
		const char *v = NULL;
		char hex[41];
		size_t k = 0;

		r = config_get_string(c, f, false, &v);
		if (r < 0)
			return r;
		for (const char *q = v; *q && k <= 40; q++) {
			if (*q == ' ')
				continue;
			if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
			      (*q >= 'A' && *q <= 'F')))
				return config_fail(c, f, NULL,
						   "\"%s\" is not a fingerprint: 40 hex digits, as "
						   "'gpg --fingerprint' shows them",
						   v);
			if (k < 40)
				hex[k] = (char)(*q >= 'a' ? *q - 'a' + 'A' : *q);
			k++;
		}
		if (k != 40)
			return config_fail(c, f, NULL,
					   "\"%s\" has %zu hex digits, a fingerprint has 40 (a key "
					   "ID is not enough)",
					   v, k);
		hex[40] = '\0';
		if (!(sp->fingerprints[i] = strdup(hex)))
			return -ENOMEM;
	}
	return 0;
}

static int config_parse_match(struct config_ctx *c, const config_setting_t *g, struct match *m)
{
	const struct {
		const char *key;
		char **dst;
	} globs[] = {
	    {"slot", &m->slot},	  {"bus", &m->bus},	  {"vendor", &m->vendor},
	    {"model", &m->model}, {"serial", &m->serial},
	};
	const config_setting_t *s, *smin, *smax;
	int r;

	r = config_need_group(c, g);
	if (r < 0)
		return r;
	r = config_check_members(c, g, match_keys);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(globs); i++) {
		s = config_setting_get_member(g, globs[i].key);
		if (!s)
			continue;
		r = config_dup_string(c, s, false, globs[i].dst);
		if (r < 0)
			return r;
	}
	smin = config_setting_get_member(g, "min_size");
	if (smin) {
		r = config_get_size(c, smin, &m->min_size);
		if (r < 0)
			return r;
	}
	smax = config_setting_get_member(g, "max_size");
	if (smax) {
		r = config_get_size(c, smax, &m->max_size);
		if (r < 0)
			return r;
		/* 0 means "no bound" inside; written out it is surely a mistake. */
		if (m->max_size == 0)
			return config_fail(c, smax, NULL,
					   "must be greater than 0 (leave it out for no bound)");
	}
	if (smin && smax && m->min_size > m->max_size) {
		char lo[32], hi[32];

		human_size(m->min_size, lo);
		human_size(m->max_size, hi);
		if (strcmp(lo, hi) == 0)
			return config_fail(c, smin, NULL,
					   "%" PRIu64 " bytes is above max_size %" PRIu64
					   " bytes: no device can fit",
					   m->min_size, m->max_size);
		return config_fail(c, smin, NULL, "%s is above max_size %s: no device can fit", lo,
				   hi);
	}
	return 0;
}

static int config_parse_profile(struct config_ctx *c, const config_setting_t *e, struct profile *p)
{
	const config_setting_t *s;
	int r;

	p->verify = VERIFY_READBACK;
	p->removable_only = true;

	r = config_need_group(c, e);
	if (r < 0)
		return r;
	r = config_check_members(c, e, profile_keys);
	if (r < 0)
		return r;

	s = config_setting_get_member(e, "name");
	if (!s)
		return config_fail(c, e, "name", "missing: a profile needs a name");
	r = config_dup_string(c, s, false, &p->name);
	if (r < 0)
		return r;

	s = config_setting_get_member(e, "image");
	if (!s)
		return config_fail(c, e, "image", "missing: profile \"%s\" needs an image",
				   p->name);
	r = config_dup_location(c, s, &p->image);
	if (r < 0)
		return r;

	s = config_setting_get_member(e, "bmap");
	if (s) {
		r = config_dup_location(c, s, &p->bmap);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "verify");
	if (s) {
		const char *v = NULL;
		size_t i;

		r = config_get_string(c, s, true, &v);
		if (r < 0)
			return r;
		for (i = 0; i < ARRAY_SIZE(verify_names); i++)
			if (strcmp(v, verify_names[i]) == 0)
				break;
		if (i == ARRAY_SIZE(verify_names))
			return config_fail(c, s, NULL, "\"%s\" is not readback, checksums or none",
					   v);
		p->verify = (enum verify_mode)i;
	}

	s = config_setting_get_member(e, "removable_only");
	if (s) {
		r = config_get_bool(c, s, &p->removable_only);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "once_per_serial");
	if (s) {
		r = config_get_bool(c, s, &p->once_per_serial);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "discard");
	if (s) {
		r = config_get_bool(c, s, &p->discard);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "hooks");
	if (s) {
		r = config_parse_hooks(c, s, &p->hooks);
		if (r < 0)
			return r;
	}

	s = config_setting_get_member(e, "match");
	if (s) {
		r = config_parse_match(c, s, &p->match);
		if (r < 0)
			return r;
	}
	return config_parse_sig(c, e, &p->sig);
}

int config_parse_profiles(struct config_ctx *c, const config_setting_t *root,
			  struct station_config *cfg)
{
	const config_setting_t *list = config_setting_get_member(root, "profiles");
	int n, r;

	if (!list)
		return config_fail(c, root, "profiles",
				   "no profiles: the station would never write a card");
	r = config_need_list(c, list);
	if (r < 0)
		return r;
	n = config_setting_length(list);
	if (n == 0)
		return config_fail(c, list, NULL,
				   "no profiles: the station would never write a card");
	cfg->profiles = calloc((size_t)n, sizeof(*cfg->profiles));
	if (!cfg->profiles)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);

		cfg->n_profiles++;
		r = config_parse_profile(c, e, &cfg->profiles[i]);
		if (r < 0)
			return r;
		for (int j = 0; j < i; j++)
			if (strcmp(cfg->profiles[j].name, cfg->profiles[i].name) == 0)
				return config_fail(
				    c, config_setting_get_member(e, "name"), NULL,
				    "duplicate profile name \"%s\" (also profiles.[%d], line %u)",
				    cfg->profiles[i].name, j, config_member_line(list, j, "name"));
		/* A card is never written straight from the network: a slow or
		 * broken server would leave it half written, and N cards would
		 * download N times. */
		if (bmap_location_is_url(cfg->profiles[i].image) &&
		    (!cfg->cache_dir || !*cfg->cache_dir))
			return config_fail(c, config_setting_get_member(e, "image"), NULL,
					   "profile \"%s\" takes its image from a URL, which needs "
					   "the image cache: set station.cache_dir",
					   cfg->profiles[i].name);
	}
	return 0;
}

void profile_free(struct profile *p)
{
	free(p->name);
	free(p->image);
	free(p->bmap);
	free(p->match.slot);
	free(p->match.bus);
	free(p->match.vendor);
	free(p->match.model);
	free(p->match.serial);
	hooks_free(&p->hooks);
	sig_policy_clear(&p->sig);
}

/*
 * A given glob fits a known value it matches. An unknown value fits only "*"
 * ("anything, even unknown"); but for the slot, a device in no named slot
 * never fits a profile that names one: slot = "*" means "any named slot".
 */
static bool config_glob_fits(const char *glob, const char *value, bool is_slot)
{
	if (!glob)
		return true;
	if (!value)
		return !is_slot && strcmp(glob, "*") == 0;
	return fnmatch(glob, value, 0) == 0;
}

/* Counts the given keys of @p that fit; says in @why what the first misfit was. */
static bool config_profile_fits(const struct profile *p, const struct device_identity *id,
				const char *slot_name, unsigned *ret_fitting, char *why,
				size_t why_size)
{
	const struct match *m = &p->match;
	const struct {
		const char *key, *glob, *value;
	} globs[] = {
	    {"slot", m->slot, slot_name},      {"bus", m->bus, id->bus},
	    {"vendor", m->vendor, id->vendor}, {"model", m->model, id->model},
	    {"serial", m->serial, id->serial},
	};
	char have[32], want[32];
	unsigned fitting = 0;
	bool fits = true;

	why[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(globs); i++) {
		bool ok;

		if (!globs[i].glob)
			continue;
		ok = config_glob_fits(globs[i].glob, globs[i].value, i == 0);
		fitting += ok;
		if (ok || !fits)
			continue;
		fits = false;
		if (i == 0 && !slot_name)
			snprintf(why, why_size,
				 "profile \"%s\": the device is in no named slot, "
				 "the profile wants slot \"%s\"",
				 p->name, m->slot);
		else if (!globs[i].value)
			snprintf(why, why_size, "profile \"%s\": %s unknown does not match \"%s\"",
				 p->name, globs[i].key, globs[i].glob);
		else
			snprintf(why, why_size, "profile \"%s\": %s \"%s\" does not match \"%s\"",
				 p->name, globs[i].key, globs[i].value, globs[i].glob);
	}
	if (m->min_size) {
		bool ok = id->size >= m->min_size;

		fitting += ok;
		if (!ok && fits) {
			fits = false;
			human_size(id->size, have);
			human_size(m->min_size, want);
			if (strcmp(have, want) == 0)
				snprintf(why, why_size,
					 "profile \"%s\": size %" PRIu64
					 " bytes is below min_size %" PRIu64 " bytes",
					 p->name, id->size, m->min_size);
			else
				snprintf(why, why_size,
					 "profile \"%s\": size %s is below min_size %s", p->name,
					 have, want);
		}
	}
	if (m->max_size) {
		bool ok = id->size <= m->max_size;

		fitting += ok;
		if (!ok && fits) {
			fits = false;
			human_size(id->size, have);
			human_size(m->max_size, want);
			if (strcmp(have, want) == 0)
				snprintf(why, why_size,
					 "profile \"%s\": size %" PRIu64
					 " bytes is above max_size %" PRIu64 " bytes",
					 p->name, id->size, m->max_size);
			else
				snprintf(why, why_size,
					 "profile \"%s\": size %s is above max_size %s", p->name,
					 have, want);
		}
	}
	*ret_fitting = fitting;
	return fits;
}

/*
 * The reason handed out through *ret_why lives here: valid until the next
 * config_match() call, and not thread-safe (the daemon matches in its one
 * thread).
 */
static char config_why[512];

const struct profile *config_match(const struct station_config *cfg,
				   const struct device_identity *id, const char *slot_name,
				   const char **ret_why)
{
	char why[sizeof(config_why)];
	unsigned best = 0;
	bool have_best = false;

	if (!cfg || !id || cfg->n_profiles == 0) {
		if (ret_why)
			*ret_why = "no profiles";
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_profiles; i++) {
		unsigned fitting;

		if (config_profile_fits(&cfg->profiles[i], id, slot_name, &fitting, why,
					sizeof(why)))
			return &cfg->profiles[i];
		/* The closest misfit: most keys fitting, the earliest on a tie. */
		if (!have_best || fitting > best) {
			have_best = true;
			best = fitting;
			memcpy(config_why, why, sizeof(config_why));
		}
	}
	if (ret_why)
		*ret_why = config_why;
	return NULL;
}
