/* Fuzz target: the bmap parser, on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "bmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;

	if (bmap_map_parse(ctx, "fuzz.bmap", data, size, &map) == 0) {
		/* Walk what was accepted: every range must be inside the image. */
		for (size_t i = 0; i < bmap_map_get_range_count(map); i++) {
			uint64_t off, len;

			bmap_map_range_bytes(map, i, &off, &len);
			if (off + len > bmap_map_get_image_size(map))
				__builtin_trap();
		}
		bmap_map_free(map);
	}
	bmap_ctx_free(ctx);
	return 0;
}
