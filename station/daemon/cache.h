/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The decompress-once image cache: the mapped ranges of a compressed image,
 * decompressed into a sparse raw file and verified against the bmap's
 * checksums, so that N cards cost one decompression. Used by the workers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bmap_ctx;
struct bmap_map;

struct cache_use {
	int lock_fd; /* holds a shared lock on the entry while it is read */
	char *path;  /* the raw image to copy from */
	bool built;  /* this call decompressed it */
};

/* A verified raw copy of @image's mapped data for @map: served from the
 * cache, or built there under an exclusive lock (other workers wait for it,
 * nobody ever reads half of one). Entries are keyed by the SHA-256 of the
 * image file's content and the bmap's content;
 * older entries nobody uses are evicted to stay under @max_size. -errno with
 * @why when the cache cannot serve: the caller copies from the image. */
int cache_acquire(struct bmap_ctx *ctx, const char *dir, uint64_t max_size, const char *image,
		  const struct bmap_map *map, volatile int *cancel, struct cache_use *ret,
		  char *why, size_t why_len);
void cache_release(struct cache_use *u);
