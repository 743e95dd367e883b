/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The worker's discard step (profile discard = true): once the image is on
 * the card, its unmapped ranges are discarded through libbmap, and the note
 * for the daemon's log says what was done (see worker.h).
 */
#include <inttypes.h>
#include <stdio.h>

#include "bmap.h"
#include "util.h"
#include "worker.h"

int worker_discard(struct bmap_ctx *ctx, struct bmap_target *dst, const struct bmap_map *map,
		   atomic_int *cancel, char *note, size_t note_size)
{
	struct bmap_discard_result res;
	char h[32];
	int r;

	/* dst comes from bmap_target_open() in write mode, after every guard
	 * and the DISKSEQ check; the library refuses any other target. */
	r = bmap_target_discard_unmapped(ctx, dst, map, cancel, &res);
	if (r < 0)
		return r;
	if (res.unsupported)
		snprintf(note, note_size,
			 "device %s does not support discard: the unmapped ranges were not "
			 "discarded",
			 bmap_target_get_name(dst));
	else
		snprintf(note, note_size,
			 "discarded %s (%" PRIu64 " bytes) in %" PRIu64 " unmapped ranges of %s",
			 human_size(res.bytes, h), res.bytes, res.ranges, bmap_target_get_name(dst));
	return 0;
}
