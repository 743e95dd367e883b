/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What copy and verify do before their engine runs (see bmaptool.h), for
 * one destination (struct setup) or several (bmaptool-multi.c): their
 * arguments' checks, the image and its map, the size a destination needs,
 * the destination.
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

/* The bmap for IMAGE: --bmap, discovered, or computed from a raw sparse
 * file's holes. Returns 0 with *ret_map NULL for --nobmap. */
static int load_map(struct bmap_ctx *ctx, const char *image, const char *bmap_arg, bool nobmap,
		    struct bmap_source *src, const char *cmd, struct bmap_map **ret_map)
{
	_cleanup_free_ char *found = NULL, *name = shown(image), *found_name = NULL;
	bool url = bmap_location_is_url(image);
	int r, raw_fd;

	*ret_map = NULL;
	if (nobmap)
		return 0;
	if (bmap_arg) {
		struct stat a, b;

		if (strcmp(image, "-") != 0 && stat(bmap_arg, &a) == 0 && stat(image, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			error("the bmap file '%s' is the image file itself", bmap_arg);
			return -EINVAL;
		}
		r = bmap_map_load_location(ctx, bmap_arg, ret_map);
		if (r < 0)
			error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	/* A self-mapped image's own map, before any bmap found next to it. */
	r = format_map(ctx, src, name, ret_map);
	if (r <= 0)
		return r;
	/* At a URL each candidate is a request: one that fails otherwise than
	 * "not there" (a login refused, a server down) is not passed over. */
	r = url ? bmap_discover_url(ctx, image, &found)
		: strcmp(image, "-") != 0 ? bmap_discover(image, &found) : -ENOENT;
	if (r < 0 && r != -ENOENT) {
		error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	if (r == 0) {
		found_name = shown(found);
		info("discovered bmap file '%s'", found_name);
		r = bmap_map_load_location(ctx, found, ret_map);
		if (r < 0)
			error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
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
	       const char *cmd, struct bmap_source **ret_src, struct bmap_map **ret_map)
{
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
	return load_map(ctx, image, bmap_arg, nobmap, *ret_src, cmd, ret_map);
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
	       bool nobmap, const char *dest, struct bmap_target_opts *topts)
{
	int r;

	*s = (struct setup){ .ctx = ctx_new() };
	catch_signals();
	r = open_image(s->ctx, image, bmap_arg, nobmap, cmd, &s->src, &s->map);
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
}
