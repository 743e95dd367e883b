/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The block map's representation and the bytes of a bmap file as its parser
 * reads them: shared by map.c (the model), map-parse.c (the format) and
 * map-read.c (the file's bytes); never installed.
 */
#pragma once

#include "bmap-private.h"

struct bmap_map {
	char version[16]; /* as written, e.g. "2.0"; "" when computed */
	unsigned major, minor;
	uint64_t image_size;
	uint32_t block_size;
	uint64_t blocks_count;
	uint64_t mapped_blocks;
	char checksum_type[16]; /* "" when the file has none */
	size_t cs_len;		/* bytes of one digest, 0 when none */

	/* A bmap may hold millions of ranges: one array of them, their digests
	 * in one arena beside it (range i at i * cs_len, allocated with the
	 * first digest) and one bit per range saying whether it has one, so a
	 * range costs 16 bytes, a bit and its digest, never a malloc of its own. */
	struct bmap_range *ranges;
	uint8_t *digests;
	uint64_t *digest_bits;
	size_t n_ranges, cap;
	bool all_digests;

	bool has_self_checksum;
	uint8_t file_sha256[32];
};

/* Appends a range as it is (no merging, no checks: the callers have done
 * them) with its digest (cs_len bytes) or NULL. 0 or -ENOMEM. */
int map_add_range(struct bmap_map *map, uint64_t first, uint64_t last, const uint8_t *digest);
/* Gives the unused capacity back once the map is complete. */
void map_trim(struct bmap_map *map);

/* ---- the bytes of a bmap file (map-read.c) ---- */

/* A bmap file or a buffer, read from its start as often as the parser needs
 * (it needs a second pass for the bmap's own checksum, whose type and place
 * are known only once the first has parsed the header). */
struct map_input {
	const char *name;
	int fd; /* a regular file, read with pread(); -1: @mem */
	const uint8_t *mem;
	size_t mem_len;

	unsigned pass; /* 1, 2, ... */
	uint64_t pos;  /* bytes read in this pass */
	int err;       /* why the last read failed: -errno, -EFBIG past the limit */

	struct bmap_digest *sha; /* SHA-256 of what this pass read */
	uint8_t sha_first[32];	 /* ... and of what the first pass read */

	/* The first pass looks for the self-checksum elements in the raw bytes,
	 * as the writer placed them: the first "<TAG>", whitespace, the digits. */
	struct map_tag_scan {
		const char *tag;
		size_t matched;
		enum { SCAN_TAG, SCAN_WS, SCAN_DIGITS, SCAN_DONE } state;
		bool found;
		uint64_t digits_off;
		size_t n_digits;
		char digits[2 * BMAP_DIGEST_MAX];
	} scan[2]; /* <BmapFileChecksum>, <BmapFileSHA1> */

	/* A later pass hashes the file for its own checksum with the digits at
	 * [zero_off, zero_off + zero_len) read as ASCII '0'. */
	struct bmap_digest *self;
	uint64_t zero_off;
	size_t zero_len;
};

#define MAP_SCAN_CHECKSUM 0
#define MAP_SCAN_SHA1 1

/* Starts pass @pass from the file's first byte; with @self_type, the pass
 * also computes the self-checksum (see above). 0 or -ENOMEM. */
int map_input_begin(struct map_input *in, unsigned pass, const char *self_type, uint64_t zero_off,
		    size_t zero_len);
/* Up to @len bytes of the file: their count, 0 at its end, or -1 (in->err). */
ssize_t map_input_read(struct map_input *in, void *buf, size_t len);
/* Reads the rest of the file (a pass that does not parse). 0 or in->err. */
int map_input_drain(struct map_input *in);
/* Ends a pass: the first keeps its SHA-256, a later one must have read the
 * same bytes (-ESTALE: the file changed in between). @ret_self receives the
 * self-checksum when the pass computed one. */
int map_input_end(struct map_input *in, uint8_t *ret_self);
void map_input_release(struct map_input *in);

/* Parses a bmap from @in (map-parse.c). */
int map_parse_input(struct bmap_ctx *ctx, struct map_input *in, struct bmap_map **ret_map);
