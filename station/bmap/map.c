/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The block map model: an image's size, its block size and its mapped
 * ranges with their checksums, kept compactly, and the byte spans the
 * engines read from it (parsed by map-parse.c, or built by create.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "map-internal.h"

/* Grows by half, not by doubling: a bmap of millions of ranges then never
 * holds much more than it uses while it is parsed. */
static int map_grow(struct bmap_map *map)
{
	size_t cap = map->cap ? map->cap + map->cap / 2 : 64;
	size_t words = (cap + 63) / 64, old_words = (map->cap + 63) / 64;
	void *p;

	if (cap > SIZE_MAX / sizeof(*map->ranges) || (map->cs_len && cap > SIZE_MAX / map->cs_len))
		return -ENOMEM;
	p = realloc(map->ranges, cap * sizeof(*map->ranges));
	if (!p)
		return -ENOMEM;
	map->ranges = p;
	p = realloc(map->digest_bits, words * sizeof(*map->digest_bits));
	if (!p)
		return -ENOMEM;
	map->digest_bits = p;
	memset(map->digest_bits + old_words, 0, (words - old_words) * sizeof(*map->digest_bits));
	if (map->digests) {
		p = realloc(map->digests, cap * map->cs_len);
		if (!p)
			return -ENOMEM;
		map->digests = p;
	}
	map->cap = cap;
	return 0;
}

int map_add_range(struct bmap_map *map, uint64_t first, uint64_t last, const uint8_t *digest)
{
	size_t i = map->n_ranges;
	int r;

	if (i == map->cap) {
		r = map_grow(map);
		if (r < 0)
			return r;
	}
	if (digest) {
		/* Files without range checksums (1.2, --no-checksum) never pay
		 * for the arena. */
		if (!map->digests) {
			map->digests = malloc(map->cap * map->cs_len);
			if (!map->digests)
				return -ENOMEM;
		}
		memcpy(map->digests + i * map->cs_len, digest, map->cs_len);
		map->digest_bits[i / 64] |= UINT64_C(1) << (i % 64);
	}
	map->ranges[i] = (struct bmap_range){first, last};
	map->n_ranges++;
	return 0;
}

void map_trim(struct bmap_map *map)
{
	size_t n = map->n_ranges ? map->n_ranges : 1;
	void *p;

	if (map->cap <= n)
		return;
	/* Shrinking cannot lose data: a failed realloc keeps the old block. */
	p = realloc(map->ranges, n * sizeof(*map->ranges));
	if (p)
		map->ranges = p;
	p = realloc(map->digest_bits, (n + 63) / 64 * sizeof(*map->digest_bits));
	if (p)
		map->digest_bits = p;
	if (map->digests) {
		p = realloc(map->digests, n * map->cs_len);
		if (p)
			map->digests = p;
	}
	map->cap = n;
}

int bmap_map_new(struct bmap_ctx *ctx, uint64_t image_size, uint32_t block_size,
		 struct bmap_map **ret_map)
{
	struct bmap_map *map;

	if (block_size < 512 || (block_size & (block_size - 1)))
		return bmap_error(ctx, -EINVAL,
				  "block size %" PRIu32 " is not a power of two >= 512",
				  block_size);
	map = calloc(1, sizeof(*map));
	if (!map)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	map->image_size = image_size;
	map->block_size = block_size;
	/* Not (size + bs - 1) / bs: that wraps for a size near 2^64. */
	map->blocks_count = image_size / block_size + (image_size % block_size != 0);
	*ret_map = map;
	return 0;
}

int bmap_map_append_range(struct bmap_map *map, uint64_t first, uint64_t last)
{
	if (first > last || last >= map->blocks_count)
		return -EINVAL;
	if (map->n_ranges) {
		struct bmap_range *prev = &map->ranges[map->n_ranges - 1];

		if (first <= prev->last)
			return -EINVAL;
		if (first == prev->last + 1) {
			map->mapped_blocks += last - prev->last;
			prev->last = last;
			return 0;
		}
	}
	if (map_add_range(map, first, last, NULL) < 0)
		return -ENOMEM;
	map->mapped_blocks += last - first + 1;
	return 0;
}

struct bmap_map *bmap_map_free(struct bmap_map *map)
{
	if (map) {
		free(map->ranges);
		free(map->digests);
		free(map->digest_bits);
		free(map);
	}
	return NULL;
}

const char *bmap_map_get_version(const struct bmap_map *map)
{
	return map->version;
}

uint64_t bmap_map_get_image_size(const struct bmap_map *map)
{
	return map->image_size;
}

uint32_t bmap_map_get_block_size(const struct bmap_map *map)
{
	return map->block_size;
}

uint64_t bmap_map_get_blocks_count(const struct bmap_map *map)
{
	return map->blocks_count;
}

uint64_t bmap_map_get_mapped_blocks(const struct bmap_map *map)
{
	return map->mapped_blocks;
}

/* Only the last block can be partial, and only its end is the image's end:
 * every other block ends before image_size, so nothing here can wrap even
 * for an image size near 2^64 (where blocks_count * block_size would). */
void bmap_map_range_bytes(const struct bmap_map *map, size_t i, uint64_t *ret_off,
			  uint64_t *ret_len)
{
	const struct bmap_range *r = &map->ranges[i];
	uint64_t off = r->first * map->block_size;
	uint64_t end =
	    r->last + 1 >= map->blocks_count ? map->image_size : (r->last + 1) * map->block_size;

	*ret_off = off;
	*ret_len = end - off;
}

uint64_t bmap_map_get_mapped_bytes(const struct bmap_map *map)
{
	uint64_t tail;

	if (!map->n_ranges || map->ranges[map->n_ranges - 1].last != map->blocks_count - 1)
		return map->mapped_blocks * map->block_size;
	/* The last block counts only up to the image's end. */
	tail = map->image_size - (map->blocks_count - 1) * map->block_size;
	return (map->mapped_blocks - 1) * map->block_size + tail;
}

size_t bmap_map_get_range_count(const struct bmap_map *map)
{
	return map->n_ranges;
}

const struct bmap_range *bmap_map_get_ranges(const struct bmap_map *map)
{
	return map->ranges;
}

const char *bmap_map_get_checksum_type(const struct bmap_map *map)
{
	return map->checksum_type[0] ? map->checksum_type : NULL;
}

bool bmap_map_has_range_checksums(const struct bmap_map *map)
{
	return map->cs_len && map->all_digests;
}

size_t bmap_map_get_checksum_size(const struct bmap_map *map)
{
	return map->cs_len;
}

const uint8_t *bmap_map_get_range_checksum(const struct bmap_map *map, size_t i)
{
	if (!map->cs_len || !map->digests || !(map->digest_bits[i / 64] >> (i % 64) & 1))
		return NULL;
	return map->digests + i * map->cs_len;
}

bool bmap_map_has_self_checksum(const struct bmap_map *map)
{
	return map->has_self_checksum;
}

const uint8_t *bmap_map_get_file_sha256(const struct bmap_map *map)
{
	return map->file_sha256;
}
