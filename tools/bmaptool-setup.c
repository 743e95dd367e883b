/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What copy and verify do before their engine runs (see bmaptool.h), for
 * one destination (struct setup) or several (bmaptool-multi.c): their
 * arguments' checks, the image and its map (a bmap file's signature checked
 * first, as info does too), the size a destination needs, the destination.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bmap.h"
#include "bmaptool.h"
#include "source.h"
#include "util.h"

int check_image_dest_args(const char *cmd, int n_args, const char *bmap_arg, bool nobmap)
{
	if (n_args < 2)
		return usage_error(cmd, "IMAGE and DEST are needed");
	if (nobmap && bmap_arg)
		return usage_error(cmd, "--nobmap and --bmap cannot be used together");
	return 0;
}

int check_sig_args(const char *cmd, const struct sig_args *sa, bool nobmap)
{
	if (sa->bmap_sig && sa->no_verify)
		return usage_error(cmd, "--bmap-sig and --no-sig-verify cannot be used together");
	if (sa->no_verify && sa->keyring)
		return usage_error(cmd, "--no-sig-verify and --keyring cannot be used together");
	if (sa->no_verify && sa->fingerprint)
		return usage_error(cmd, "--no-sig-verify and --fingerprint cannot be used together");
	/* No bmap, no signature to check: asking for one is a mistake. */
	if (nobmap && (sa->bmap_sig || sa->fingerprint || sa->keyring))
		return usage_error(cmd, "--nobmap and --%s cannot be used together",
				   sa->bmap_sig ? "bmap-sig" : sa->fingerprint ? "fingerprint"
									: "keyring");
	return 0;
}

int load_bmap(struct bmap_ctx *ctx, const char *path, const struct sig_args *sa,
	      struct bmap_map **ret_map, struct bmap_sig_result *ret_sig, char **ret_sig_path)
{
	_cleanup_free_ void *bytes = NULL, *sig = NULL, *xml = NULL;
	_cleanup_free_ char *found = NULL, *sig_name = NULL;
	const char *sig_path = sa->bmap_sig;
	struct bmap_sig_result res;
	size_t len, sig_len = 0, xml_len;
	struct bmap_sig_opts o = {
		.keyring = sa->keyring,
		.fingerprints = sa->fingerprint ? &sa->fingerprint : NULL,
		.n_fingerprints = sa->fingerprint ? 1 : 0,
		.no_verify = sa->no_verify,
	};
	bool url = bmap_location_is_url(path), clearsigned;
	_cleanup_free_ char *name = shown(path);
	int r;

	/* At a URL the bmap is fetched once, whole (it is small; the bytes
	 * verified are the bytes parsed); a file is looked at first. */
	if (url) {
		r = bmap_fetch_small(ctx, path, BMAP_FILE_MAX_SIZE, &bytes, &len);
		if (r < 0)
			goto fail;
		clearsigned = bmap_sig_is_clearsigned(bytes, len);
	} else {
		clearsigned = bmap_sig_file_is_clearsigned(path);
	}
	if (clearsigned) {
		info("discovered inline signature");
		if (sig_path) {
			error("bmap file '%s' is clearsigned: it needs no --bmap-sig ('%s')", name,
			      sig_path);
			return -EINVAL;
		}
	} else if (!sa->no_verify && !sig_path) {
		r = url ? bmap_sig_discover_url(ctx, path, &found) : bmap_sig_discover(path, &found);
		if (r < 0 && r != -ENOENT)
			goto fail;
		if (r == 0) {
			_cleanup_free_ char *found_name = shown(found);

			sig_path = found;
			info("discovered signature file for bmap '%s'", found_name);
		} else if (sa->fingerprint) {
			error("no signature found but --fingerprint given");
			return -ENOKEY;
		} else if (sa->keyring) {
			error("no signature found but --keyring given");
			return -ENOKEY;
		}
	}
	if (!sig_path && !clearsigned) {
		/* Not signed: parsed as it streams from the file, never
		 * whole in memory (a bmap may have 256 MiB). */
		if (ret_sig)
			*ret_sig = (struct bmap_sig_result){ .status = BMAP_SIG_NONE };
		if (ret_sig_path)
			*ret_sig_path = NULL;
		r = url ? bmap_map_parse(ctx, name, bytes, len, ret_map)
			: bmap_map_load(ctx, path, ret_map);
		if (r < 0)
			goto fail;
		return 0;
	}
	/* Signed: the bytes verified are the bytes parsed, read once. */
	if (!url) {
		r = bmap_blob_load(ctx, "bmap file", path, BMAP_FILE_MAX_SIZE, &bytes, &len);
		if (r < 0)
			goto fail;
	}
	if (sig_path && !sa->no_verify) {
		r = bmap_location_is_url(sig_path)
			    ? bmap_fetch_small(ctx, sig_path, BMAP_SIG_FILE_MAX_SIZE, &sig, &sig_len)
			    : bmap_blob_load(ctx, "bmap signature file", sig_path,
					     BMAP_SIG_FILE_MAX_SIZE, &sig, &sig_len);
		if (r < 0)
			goto fail;
	}
	if (sig)
		sig_name = shown(sig_path);
	r = bmap_sig_verify(ctx, name, bytes, len, sig_name, sig, sig_len, &o, &res, &xml,
			    &xml_len);
	if (r < 0)
		goto fail;
	if (res.status == BMAP_SIG_VALID)
		info("successfully verified bmap file signature of %s (fingerprint %s)",
		     res.uid[0] ? res.uid : "an unknown user ID", res.fingerprint);
	else if (res.status == BMAP_SIG_UNCHECKED)
		info("--no-sig-verify: the signature of bmap file '%s' is not checked", name);
	r = bmap_map_parse(ctx, name, xml, xml_len, ret_map);
	if (r < 0)
		goto fail;
	if (ret_sig)
		*ret_sig = res;
	if (ret_sig_path)
		*ret_sig_path = sig ? shown(sig_path) : NULL; /* a URL without its password */
	return 0;
fail:
	error("%s", bmap_ctx_get_error(ctx));
	return r;
}

/* The bmap for IMAGE: --bmap, discovered, or computed from a raw sparse
 * file's holes. Returns 0 with *ret_map NULL for --nobmap. */
static int load_map(struct bmap_ctx *ctx, const char *image, const char *bmap_arg, bool nobmap,
		    const struct sig_args *sa, struct bmap_source *src, const char *cmd,
		    struct bmap_map **ret_map, char **ret_path)
{
	_cleanup_free_ char *found = NULL, *name = shown(image), *found_name = NULL;
	bool url = bmap_location_is_url(image);
	int r, raw_fd;

	*ret_map = NULL;
	*ret_path = NULL;
	if (nobmap)
		return 0;
	if (bmap_arg) {
		struct stat a, b;

		if (strcmp(image, "-") != 0 && stat(bmap_arg, &a) == 0 && stat(image, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			error("the bmap file '%s' is the image file itself", bmap_arg);
			return -EINVAL;
		}
		r = load_bmap(ctx, bmap_arg, sa, ret_map, NULL, NULL);
		if (r >= 0 && !(*ret_path = strdup(bmap_arg)))
			return -ENOMEM;
		return r;
	}
	/* A self-mapped image's own map, before any bmap found next to it. */
	r = format_map(ctx, src, name, ret_map);
	if (r < 0)
		return r;
	if (r > 0) {
		/* At a URL each candidate is a request: one that fails
		 * otherwise than "not there" (a login refused, a server down)
		 * is not passed over. */
		int d = url ? bmap_discover_url(ctx, image, &found)
			: strcmp(image, "-") != 0 ? bmap_discover(image, &found) : -ENOENT;

		if (d < 0 && d != -ENOENT) {
			error("%s", bmap_ctx_get_error(ctx));
			return d;
		}
		if (d == 0) {
			found_name = shown(found);
			info("discovered bmap file '%s'", found_name);
			r = load_bmap(ctx, found, sa, ret_map, NULL, NULL);
			if (r >= 0) {
				*ret_path = found;
				found = NULL;
			}
			return r;
		}
	}
	/* No bmap file: a signature or a signer asked for cannot be had. */
	if (sa->bmap_sig || sa->fingerprint || sa->keyring) {
		*ret_map = bmap_map_free(*ret_map);
		if (sa->bmap_sig)
			error("the bmap signature file was specified, but bmap file was not found");
		else
			error("no signature found but --%s given",
			      sa->fingerprint ? "fingerprint" : "keyring");
		return sa->bmap_sig ? -ENOENT : -ENOKEY;
	}
	if (r == 0)
		return 0;
	raw_fd = bmap_source_get_raw_fd(src);
	if (raw_fd >= 0) {
		info("no bmap found for '%s': using the holes of the raw sparse image "
		     "(its data is not checksummed)",
		     image);
		r = bmap_map_from_file(ctx, raw_fd, image, 4096, ret_map);
		if (r < 0)
			error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	error("bmap file not found for %s '%s'; give it with --bmap FILE, or use --nobmap to "
	      "%s every byte without a bmap",
	      strcmp(image, "-") == 0 ? "the image on" : bmap_compression_name(
		      bmap_source_get_compression(src)),
	      strcmp(image, "-") == 0 ? "standard input" : name,
	      strcmp(cmd, "copy") == 0 ? "flash" : "compare");
	return -ENOENT;
}

int open_image(struct bmap_ctx *ctx, const char *image, const char *bmap_arg, bool nobmap,
	       const struct sig_args *sa, const char *cmd, struct bmap_source **ret_src,
	       struct bmap_map **ret_map, char **ret_bmap_path)
{
	_cleanup_free_ char *path = NULL;
	int r = bmap_source_open_cancel(ctx, image, interrupt_fd(), ret_src);

	if (r < 0) {
		/* -EINTR: a signal while a pipe's first bytes were awaited. */
		if (r == -EINTR)
			error("%s; nothing was %s", bmap_ctx_get_error(ctx),
			      strcmp(cmd, "copy") == 0 ? "written" : "verified");
		else
			error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	r = load_map(ctx, image, bmap_arg, nobmap, sa, *ret_src, cmd, ret_map, &path);
	if (r >= 0 && ret_bmap_path) {
		*ret_bmap_path = path;
		path = NULL;
	}
	return r;
}

uint64_t image_size_of(const struct bmap_map *map, struct bmap_source *src)
{
	struct stat st;
	int fd;

	if (map)
		return bmap_map_get_image_size(map);
	/* A self-mapped image: its disk. */
	if (bmap_source_get_format(src) != BMAP_FORMAT_RAW)
		return bmap_source_get_image_size(src);
	/* --nobmap: a raw file's size still refuses a small device. */
	fd = bmap_source_get_raw_fd(src);
	if (fd >= 0 && fstat(fd, &st) == 0)
		return (uint64_t)st.st_size;
	return 0;
}

int setup_open(struct setup *s, const char *cmd, const char *image, const char *bmap_arg,
	       bool nobmap, const struct sig_args *sa, const char *dest,
	       struct bmap_target_opts *topts)
{
	int r;

	*s = (struct setup){ .ctx = ctx_new() };
	catch_signals();
	r = open_image(s->ctx, image, bmap_arg, nobmap, sa, cmd, &s->src, &s->map, &s->bmap_path);
	if (r < 0)
		return r;
	if (topts->mode == BMAP_TARGET_WRITE)
		topts->image_size = image_size_of(s->map, s->src);
	r = bmap_target_open(s->ctx, dest, topts, &s->dst);
	if (r < 0)
		error("%s", bmap_ctx_get_error(s->ctx));
	return r;
}

void setup_free(struct setup *s)
{
	s->dst = bmap_target_free(s->dst);
	s->map = bmap_map_free(s->map);
	s->src = bmap_source_free(s->src);
	s->ctx = bmap_ctx_free(s->ctx);
	free(s->bmap_path);
	s->bmap_path = NULL;
}
