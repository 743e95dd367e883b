/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The one decision on what a card gets: ignored (not ours), refused (ours
 * but not to be written), failed (the profile's image cannot be had) or
 * queued with a profile. `run` and `check` both ask here, so `check` says
 * what `run` will do. Pure but for reading the image's bmap (for an image
 * URL: asking whether it is there, and finding the bmap next to it, in the
 * probe's child for `run`) and asking the journal about earlier serials.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bmap.h"
#include "source.h"
#include "policy.h"
#include "sanitize.h"
#include "util.h"

enum outcome policy_outcome(enum policy_verdict v)
{
	switch (v) {
	case POLICY_IGNORE:
		return OUTCOME_IGNORED;
	case POLICY_REFUSE:
		return OUTCOME_REFUSED;
	case POLICY_FAIL:
		return OUTCOME_FAILED;
	case POLICY_QUEUE:
	case POLICY_WAIT:
		break;
	}
	return OUTCOME_RUNNING;
}

void policy_decision_clear(struct policy_decision *d)
{
	free(d->bmap);
	d->bmap = NULL;
}

int policy_once_per_serial(const struct profile *p, const struct device *d, struct journal *journal,
			   char *why, size_t why_len)
{
	char ser[128];
	int64_t earlier;

	if (!p->once_per_serial)
		return 0;
	if (!d->serial) {
		snprintf(why, why_len, "no serial, and the profile has once_per_serial = true");
		return -EEXIST;
	}
	/* Every card in that reader would carry the same serial: after one
	 * success, all later ones would be refused. */
	if (d->in_reader) {
		snprintf(why, why_len,
			 "serial %s is the card reader's, not the card's: once_per_serial cannot "
			 "tell its cards apart (use a native SD slot, whose cards give their own "
			 "serial, or once_per_serial = false for this slot)",
			 printable(d->serial, ser, sizeof(ser)));
		return -EEXIST;
	}
	if (journal && journal_serial_passed(journal, d->serial, p->name, &earlier) == 0) {
		snprintf(why, why_len,
			 "serial %s already passed with profile %s (job %" PRId64
			 "); 'bmap-station forget' allows it again",
			 printable(d->serial, ser, sizeof(ser)), p->name, earlier);
		return -EEXIST;
	}
	return 0;
}

int policy_load_bmap(struct bmap_ctx *ctx, const char *path, const struct sig_policy *sig,
		     struct bmap_map **ret_map, char *ret_signer)
{
	static const struct sig_policy none = {0};
	_cleanup_free_ void *bytes = NULL, *sigb = NULL, *xml = NULL;
	_cleanup_free_ char *sig_path = NULL, *name = NULL;
	struct bmap_sig_result res;
	size_t len = 0, sig_len = 0, xml_len, n = 0;
	bool url = bmap_location_is_url(path), clearsigned;
	struct bmap_sig_opts o;
	int r;

	sig = sig ? sig : &none;
	while (sig->fingerprints && sig->fingerprints[n])
		n++;
	o = (struct bmap_sig_opts){
	    .keyring = sig->keyring,
	    .fingerprints = (const char *const *)sig->fingerprints,
	    .n_fingerprints = n,
	    .required = sig->mode == SIG_REQUIRED,
	};
	/* Messages name a URL without its credentials. */
	name = url ? bmap_url_display(path) : strdup(path);
	if (!name)
		return -ENOMEM;
	/* At a URL the bmap is fetched once, whole: the bytes verified are the
	 * bytes parsed. */
	if (url) {
		r = bmap_fetch_small(ctx, path, BMAP_FILE_MAX_SIZE, &bytes, &len);
		if (r < 0)
			return r;
		clearsigned = bmap_sig_is_clearsigned(bytes, len);
		r = clearsigned ? -ENOENT : bmap_sig_discover_url(ctx, path, &sig_path);
		if (r < 0 && r != -ENOENT)
			return r;
	} else {
		if (bmap_sig_discover(path, &sig_path) < 0)
			sig_path = NULL;
		clearsigned = bmap_sig_file_is_clearsigned(path);
	}
	/* Unsigned and allowed to be: parsed as it streams from the file. */
	if (!sig_path && !o.required && !clearsigned) {
		r = url ? bmap_map_parse(ctx, name, bytes, len, ret_map)
			: bmap_map_load(ctx, path, ret_map);
		if (r >= 0)
			ret_signer[0] = '\0';
		return r;
	}
	if (!url) {
		r = bmap_blob_load(ctx, "bmap file", path, BMAP_FILE_MAX_SIZE, &bytes, &len);
		if (r < 0)
			return r;
	}
	if (bmap_sig_is_clearsigned(bytes, len))
		sig_path = (free(sig_path), NULL);
	if (sig_path) {
		r = bmap_location_is_url(sig_path)
			? bmap_fetch_small(ctx, sig_path, BMAP_SIG_FILE_MAX_SIZE, &sigb, &sig_len)
			: bmap_blob_load(ctx, "bmap signature file", sig_path,
					 BMAP_SIG_FILE_MAX_SIZE, &sigb, &sig_len);
		if (r < 0)
			return r;
	}
	if (sig_path && url) {
		char *shown = bmap_url_display(sig_path);

		if (!shown)
			return -ENOMEM;
		free(sig_path);
		sig_path = shown;
	}
	r = bmap_sig_verify(ctx, name, bytes, len, sig_path, sigb, sig_len, &o, &res, &xml,
			    &xml_len);
	if (r == -EBADMSG)
		return -EKEYREJECTED;
	if (r < 0)
		return r;
	r = bmap_map_parse(ctx, name, xml, xml_len, ret_map);
	if (r >= 0)
		snprintf(ret_signer, 41, "%s", res.status == BMAP_SIG_VALID ? res.fingerprint : "");
	return r;
}

int policy_bmap_facts_now(void *userdata, const char *image, const char *bmap,
			  const struct sig_policy *sig, struct bmap_facts *ret, char *why,
			  size_t why_len)
{
	_cleanup_free_ char *found = NULL;
	struct bmap_ctx *ctx;
	struct bmap_map *map = NULL;
	struct stat st;
	int r;

	(void)userdata;
	ret->bmap[0] = '\0';
	/* The station reads a profile's bmap more than once (here, then the
	 * worker): a pipe would be drained by the first read, or block it. */
	if (bmap && !bmap_location_is_url(bmap) && stat(bmap, &st) == 0 && !S_ISREG(st.st_mode))
		return snprintf(why, why_len,
				"bmap '%s' is not a regular file (a pipe?): give the profile a "
				"bmap file",
				bmap),
		       -EINVAL;
	ctx = bmap_ctx_new();
	if (!ctx)
		return snprintf(why, why_len, "out of memory"), -ENOMEM;
	/* An image URL that is not there fails its cards before a worker
	 * starts, naming the URL and the server's answer (a HEAD request). */
	if (image && bmap_location_is_url(image)) {
		_cleanup_free_ void *none = NULL;
		size_t len;

		r = bmap_fetch_small(ctx, image, 0, &none, &len);
		if (r < 0) {
			snprintf(why, why_len, "cannot read the image: %s", bmap_ctx_get_error(ctx));
			goto out;
		}
	}
	/* No bmap given for an image URL: looked for next to it, as the
	 * reference does (each candidate a small request). */
	if (!bmap) {
		r = bmap_discover_url(ctx, image, &found);
		if (r == -ENOENT) {
			_cleanup_free_ char *shown = bmap_url_display(image);

			snprintf(why, why_len,
				 "no bmap found next to the image URL %s: set bmap in the profile "
				 "(a URL image is cached, and only a bmap's checksums verify it)",
				 shown ? shown : "?");
			goto out;
		}
		if (r < 0) {
			snprintf(why, why_len, "%s", bmap_ctx_get_error(ctx));
			goto out;
		}
		if (strlen(found) >= sizeof(ret->bmap)) {
			r = -ENAMETOOLONG;
			snprintf(why, why_len, "the bmap URL found is too long");
			goto out;
		}
		bmap = found;
	}
	r = policy_load_bmap(ctx, bmap, sig, &map, ret->signer);
	if (r < 0) {
		snprintf(why, why_len, "%s", bmap_ctx_get_error(ctx));
	} else {
		ret->image_size = bmap_map_get_image_size(map);
		hex_encode(bmap_map_get_file_sha256(map), 32, ret->sha256);
		if (found)
			snprintf(ret->bmap, sizeof(ret->bmap), "%s", found);
	}
out:
	bmap_map_free(map);
	bmap_ctx_free(ctx);
	return r;
}

/* A qcow2 or Android sparse image's virtual disk size into @size (left as
 * it is for a raw image, or one that cannot be opened: the worker says
 * why); its format. Only the headers are read: a local file is not checked
 * whole here (gzip would be decoded in the event loop), the worker does. */
static enum bmap_format self_mapped_size(const char *image, uint64_t *size)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *src = NULL;
	enum bmap_format f = BMAP_FORMAT_RAW;

	if (!ctx)
		return f;
	bmap_ctx_set_check_whole(ctx, false);
	if (bmap_source_open(ctx, image, &src) >= 0) {
		f = bmap_source_get_format(src);
		if (f != BMAP_FORMAT_RAW && bmap_source_get_image_size(src) > 0)
			*size = bmap_source_get_image_size(src);
		else
			f = BMAP_FORMAT_RAW;
	}
	bmap_source_free(src);
	bmap_ctx_free(ctx);
	return f;
}

int policy_image(const struct profile *p, const struct device *d, policy_facts_fn facts,
		 void *userdata, struct policy_decision *ret)
{
	_cleanup_free_ char *found = NULL;
	const char *path = p->bmap;
	bool url = bmap_location_is_url(p->image);
	enum bmap_format selfmap = BMAP_FORMAT_RAW;
	struct bmap_facts f;
	char h1[32], h2[32];
	struct stat st;
	int r;

	ret->verdict = POLICY_FAIL;
	/* The image may have been deleted or replaced since the profile was
	 * loaded: a card is only queued while it is there to read. A URL is
	 * not asked here (the event loop never waits on a server): its bmap
	 * is, in the probe, and the cache's filler fetches the image. */
	if (url) {
		st.st_size = 0;
	} else if (stat(p->image, &st) < 0) {
		r = -errno;
		snprintf(ret->why, sizeof(ret->why), "cannot read image '%s': %s", p->image,
			 strerror(-r));
		return r;
	}
	if (!path && !url && bmap_discover(p->image, &found) == 0)
		path = found;
	if (path || url) {
		r = facts(userdata, p->image, path, &p->sig, &f, ret->why, sizeof(ret->why));
		if (r == -EAGAIN) {
			_cleanup_free_ char *shown = bmap_url_display(path ? path : p->image);

			ret->verdict = POLICY_WAIT;
			snprintf(ret->why, sizeof(ret->why), "reading the bmap %s%s",
				 path ? "" : "next to ", shown ? shown : "");
			return r;
		}
		/* Not a released image: never written, not a failure to fix
		 * on the station's side. */
		if (r == -EKEYREJECTED)
			ret->verdict = POLICY_REFUSE;
		if (r < 0)
			return r;
		ret->image_size = f.image_size;
		memcpy(ret->bmap_sha256, f.sha256, sizeof(f.sha256));
		memcpy(ret->signer, f.signer, sizeof(f.signer));
		free(ret->bmap);
		ret->bmap = strdup(f.bmap[0] ? f.bmap : path);
		if (!ret->bmap) {
			snprintf(ret->why, sizeof(ret->why), "out of memory");
			return -ENOMEM;
		}
	} else if (p->sig.mode == SIG_REQUIRED) {
		ret->verdict = POLICY_REFUSE;
		snprintf(ret->why, sizeof(ret->why),
			 "no bmap found for image '%s', and the profile has signature = "
			 "\"required\": only a signed bmap may be written",
			 p->image);
		return -EKEYREJECTED;
	} else {
		/* A raw image mapped from its holes, or one that carries its
		 * own map: sized by the disk it holds, not by its file. */
		ret->image_size = (uint64_t)st.st_size;
		selfmap = self_mapped_size(p->image, &ret->image_size);
	}
	if (d->size < ret->image_size) {
		ret->verdict = POLICY_REFUSE;
		snprintf(ret->why, sizeof(ret->why), "too small for the image: %s < %s%s%s%s",
			 human_size(d->size, h1), human_size(ret->image_size, h2),
			 selfmap ? " (the virtual disk of the " : "",
			 selfmap ? bmap_format_name(selfmap) : "", selfmap ? " image)" : "");
		return -ENOSPC;
	}
	ret->verdict = POLICY_QUEUE;
	ret->why[0] = '\0';
	return 0;
}

void policy_decide(const struct station_config *cfg, const struct device *d, const char *slot,
		   struct journal *journal, policy_facts_fn facts, void *userdata,
		   struct policy_decision *ret)
{
	struct device_identity id = {
	    .devnode = d->devnode,
	    .serial = d->serial,
	    .vendor = d->vendor,
	    .model = d->model,
	    .bus = d->bus,
	    .id_path = d->id_path,
	    .size = d->size,
	    .removable = d->removable,
	};
	const char *why_match = NULL;
	const struct profile *p;

	*ret = (struct policy_decision){.verdict = POLICY_IGNORE};
	if (!d->tagged) {
		snprintf(ret->why, sizeof(ret->why), "not tagged '%s' by the udev rules",
			 cfg->require_tag);
		return;
	}
	p = config_match(cfg, &id, slot, &why_match);
	if (!p) {
		snprintf(ret->why, sizeof(ret->why), "no profile matches%s%s",
			 why_match ? ": " : "", why_match ? why_match : "");
		return;
	}
	ret->profile = p;
	ret->verdict = POLICY_REFUSE;
	if (policy_once_per_serial(p, d, journal, ret->why, sizeof(ret->why)) < 0)
		return;
	if (device_gate(d, cfg->max_device_size, ret->why, sizeof(ret->why)) < 0)
		return;
	if (p->removable_only && !d->removable) {
		snprintf(ret->why, sizeof(ret->why),
			 "not removable, and the profile has removable_only = true");
		return;
	}
	policy_image(p, d, facts, userdata, ret);
}
