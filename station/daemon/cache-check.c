/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A complete image cache entry checked again, after a card written from it
 * failed its read-back: a card copied from a complete entry is not hashed
 * on the way (bmap_copy_opts.source_checked), so a byte of the entry that
 * changed since it was filled (a bad disk, a hand) shows first as a card
 * that does not read back right. Which of the two is at fault decides what
 * the next card gets: a damaged entry is removed (the next card fills it
 * again), a bad card leaves the entry in use.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bmap.h"
#include "cache.h"

int cache_entry_check(const struct cache_use *u, const struct bmap_map *map, char *why,
		      size_t why_len)
{
	struct bmap_target_opts topts = {.mode = BMAP_TARGET_READ,
					 .image_size = bmap_map_get_image_size(map)};
	struct bmap_verify_result res = {0};
	struct bmap_ctx *ctx;
	struct bmap_target *t = NULL;
	int r;

	if (!u->path || !(ctx = bmap_ctx_new()))
		return 0;
	r = bmap_target_open(ctx, u->path, &topts, &t);
	if (r >= 0)
		r = bmap_verify(ctx, t, map, NULL, NULL, &res);
	bmap_target_free(t);
	bmap_ctx_free(ctx);
	if (r != -EBADMSG)
		return 0; /* the entry is right, or cannot be told: the card failed */
	const struct bmap_range *rg = &bmap_map_get_ranges(map)[res.first_bad];

	/* Readers that have it open go on with their copy; no new one finds it. */
	if (unlink(u->path) < 0 && errno != ENOENT)
		snprintf(why, why_len,
			 "the image cache entry '%s' is damaged (blocks range %" PRIu64 "-%" PRIu64
			 " does not match the bmap) and cannot be removed: %m; remove it",
			 u->path, rg->first, rg->last);
	else
		snprintf(why, why_len,
			 "the image cache entry '%s' is damaged (blocks range %" PRIu64 "-%" PRIu64
			 " does not match the bmap): it was removed, the next card fills it "
			 "again; put this card in again",
			 u->path, rg->first, rg->last);
	return -EBADMSG;
}
