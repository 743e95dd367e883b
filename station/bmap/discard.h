/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal view of discard.c: the gaps between a map's ranges, for tests. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bmap.h"

/*
 * The next gap of @map from *cursor on (start with *cursor = 0): unmapped
 * image bytes [*ret_off, *ret_off + *ret_len) before a mapped range or after
 * the last one, cut at @limit (the image's size, or less) and rounded inward
 * to multiples of @align (the device's logical sector size; 1 for a file),
 * so that it never reaches into mapped data nor past @limit. Gaps that
 * vanish in the rounding are skipped. Returns false when there is none left.
 */
bool discard_next_gap(const struct bmap_map *map, uint64_t limit, uint32_t align, size_t *cursor,
		      uint64_t *ret_off, uint64_t *ret_len);
