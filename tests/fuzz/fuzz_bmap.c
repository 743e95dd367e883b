/* Fuzz target: the bmap parser, on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "bmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What an accepted map promises the engines: ranges ascending inside the
 * image, each one's byte span non-empty and inside the image without
 * wrapping (an ImageSize near 2^64 once made the last block's span a whole
 * block past the end), and the counts agreeing with the ranges. */
static void check_map(const struct bmap_map *map)
{
	const struct bmap_range *r = bmap_map_get_ranges(map);
	uint64_t size = bmap_map_get_image_size(map), bs = bmap_map_get_block_size(map);
	uint64_t blocks = bmap_map_get_blocks_count(map), sum = 0, bytes = 0, prev_end = 0;
	size_t n = bmap_map_get_range_count(map);

	if (blocks != size / bs + (size % bs != 0))
		__builtin_trap();
	for (size_t i = 0; i < n; i++) {
		uint64_t off, len;

		if (r[i].first > r[i].last || r[i].last >= blocks ||
		    (i && r[i].first <= r[i - 1].last))
			__builtin_trap();
		bmap_map_range_bytes(map, i, &off, &len);
		if (off > size || len == 0 || len > size - off || off < prev_end)
			__builtin_trap();
		if (bmap_map_has_range_checksums(map) && !bmap_map_get_range_checksum(map, i))
			__builtin_trap();
		prev_end = off + len;
		bytes += len;
		sum += r[i].last - r[i].first + 1;
	}
	if (sum != bmap_map_get_mapped_blocks(map) || bytes != bmap_map_get_mapped_bytes(map))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;

	if (bmap_map_parse(ctx, "fuzz.bmap", data, size, &map) == 0) {
		check_map(map);
		bmap_map_free(map);
	}
	bmap_ctx_free(ctx);
	return 0;
}
