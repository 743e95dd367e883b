/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The work map of a self-mapped image (see source-format.h): the copy and
 * verify engines spread their work by ranges (a worker takes whole ranges,
 * each range is hashed as one stream), and a format's own map has few
 * huge ones (a qcow2 of 700 MiB of data may be a handful of ranges, an
 * Android sparse image whose holes are fills of zeros one range of the
 * whole disk), so there its ranges are cut into pieces of at most
 * FORMAT_CUT_PIECE bytes: decoding, hashing and writing spread over every
 * core, and a piece that is a fill of zeros alone is never hashed (its
 * digest is that of so many zeros). The cut is by offsets alone, from each
 * range's start, so that an image read as a stream, whose ranges are found
 * as it is read, is cut the same way (copy-format.c, verify.c) and its data
 * digest is the same. What the user gets of the map (create, info) stays
 * as the format made it.
 */
#include <errno.h>
#include <stdlib.h>

#include "map-internal.h"
#include "source-format.h"
#include "source.h"

int format_map_cut(const struct bmap_map *map, uint64_t piece, struct bmap_map **ret_map)
{
	uint64_t bs = bmap_map_get_block_size(map);
	struct bmap_map *out = NULL;
	int r;

	/* Whole blocks, at least one. */
	piece -= piece % bs;
	if (piece == 0)
		piece = bs;
	r = bmap_map_new(NULL, bmap_map_get_image_size(map), (uint32_t)bs, &out);
	if (r < 0)
		return r;
	for (size_t i = 0; i < bmap_map_get_range_count(map); i++) {
		uint64_t off, len;

		bmap_map_range_bytes(map, i, &off, &len);
		for (uint64_t end = off + len; off < end;) {
			uint64_t n = end - off > piece ? piece : end - off;
			uint64_t first = off / bs, last = (off + n - 1) / bs;

			/* Appended as they are: adjacent pieces are not merged. */
			if (map_add_range(out, first, last, NULL) < 0) {
				bmap_map_free(out);
				return -ENOMEM;
			}
			out->mapped_blocks += last - first + 1;
			off += n;
		}
	}
	map_trim(out);
	*ret_map = out;
	return 0;
}

int source_work_map(struct bmap_source *src, const struct bmap_map *map,
		    struct bmap_map **ret_map)
{
	*ret_map = NULL;
	if (!map || bmap_source_get_format(src) == BMAP_FORMAT_RAW ||
	    bmap_map_has_range_checksums(map))
		return 0;
	if (format_map_cut(map, FORMAT_CUT_PIECE, ret_map) < 0)
		return bmap_error(src->ctx, -ENOMEM, "out of memory");
	return 0;
}

int bmap_source_work_map(struct bmap_source *s, const struct bmap_map *map,
			 struct bmap_map **ret_map)
{
	return source_work_map(s, map, ret_map);
}
