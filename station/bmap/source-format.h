/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to the image sources: the format layer, between the decoded
 * bytes (codec layer, source.c) and the image the engines read. A format
 * (format-<name>.c) turns the decoded bytes into the image's bytes (the
 * virtual disk) and, when the format carries its own map, says where its
 * data is. Raw images have no format object: the decoded bytes are the
 * image.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "source-codec.h"

struct source_format {
	enum bmap_format format;
	/* Reads and checks the header (the first bytes of the decoded
	 * stream), sets s->fmt_state; -errno with a detail. */
	int (*open)(struct bmap_source *s);
	/* Image bytes from s->out_pos on, at most @len (> 0): > 0 bytes,
	 * 0 at the image's end, -errno with a detail. */
	ssize_t (*read)(struct bmap_source *s, void *buf, size_t len);
	/* Skips @n image bytes: 0, -EPIPE (with a detail) past the end. */
	int (*skip)(struct bmap_source *s, uint64_t n);
	/* Moves s->out_pos to the start of the next data at or after it
	 * (over the hole before it) and sets *@ret_len to the data bytes
	 * that follow there (one piece; the next may continue it); 0 at
	 * the image's end. */
	int (*next_data)(struct bmap_source *s, uint64_t *ret_len);
	/* Optional: how many image bytes from s->out_pos on are of one kind
	 * (0 at the image's end), and whether they are zeros known without
	 * reading them (a fill of zeros, a hole); -errno. */
	int64_t (*run)(struct bmap_source *s, bool *ret_zero);
	/* Optional, thread-safe: @len image bytes at @off (short only at
	 * the end). NULL when the format is read as a stream. */
	ssize_t (*pread)(struct bmap_source *s, void *buf, size_t len, uint64_t off);
	/* Optional: whether pread works for this image (NULL: it always
	 * does; a sparse image only once its chunks were indexed). */
	bool (*random)(const struct bmap_source *s);
	/* Optional, thread-safe, with pread: how many image bytes from @off
	 * on, up to @max (> 0) at least, are of one kind (> 0; 0 at the
	 * image's end; the next run may be of the same kind), and whether
	 * they are zeros known without reading them; -errno with a detail. */
	int64_t (*prun)(struct bmap_source *s, uint64_t off, uint64_t max, bool *ret_zero);
	/* The map as far as it is known: *ret_complete false while a
	 * stream has not been read to its end. Owned by the format. */
	const struct bmap_map *(*map)(struct bmap_source *s, bool *ret_complete);
	void (*info)(struct bmap_source *s, struct bmap_format_info *ret);
	void (*free)(struct bmap_source *s);
};

extern const struct source_format source_format_qcow2;
extern const struct source_format source_format_simg;

/* The format of the first decoded bytes (raw when none matches). */
enum bmap_format source_format_detect(const uint8_t *buf, size_t len);
/* Opens the format layer of @s when its first decoded bytes name one. */
int source_format_open(struct bmap_source *s);

/* ---- the decoded stream under a format (source.c) ---- */

/* Reads decoded bytes: @len of them except at the end of the input
 * (fewer, 0 at the end); -errno with a detail. */
ssize_t source_dec_read(struct bmap_source *s, void *buf, size_t len);
/* Skips @n decoded bytes (a seek for a raw regular file): 0, or -EPIPE
 * when the input ends first (no detail: the format words it). */
int source_dec_skip(struct bmap_source *s, uint64_t n);

/* The raw file under a format can be read at any offset (pread(s->fd)):
 * a regular file, not compressed, read from its first byte. */
bool source_dec_random(const struct bmap_source *s);

/* Thread-safe read of @len image bytes at @off, for a source that
 * source_can_pread(): a raw file, or a format that reads at random. */
bool source_can_pread(const struct bmap_source *s);
ssize_t source_pread(struct bmap_source *s, void *buf, size_t len, uint64_t off);

/* The format's run; without one, everything left is one run of data
 * (INT64_MAX). */
int64_t source_run(struct bmap_source *s, bool *ret_zero);
/* The format's next_data (see above) with the source's sticky error. */
int source_next_data(struct bmap_source *s, uint64_t *ret_len);

/* Appends the byte span [@off, @off + @len) of the image to @map,
 * rounded out to its blocks and merged with the last range. */
int source_map_add(struct bmap_map *map, uint64_t off, uint64_t len);
/* A copy of @map at @block_size (ranges rounded out); NULL on -ENOMEM. */
struct bmap_map *source_map_rescale(const struct bmap_map *map, uint32_t block_size);

/* ---- the engines' work map of a self-mapped image (format-cut.c) ---- */

/* Ranges of the work map: at most this many bytes each. */
#define FORMAT_CUT_PIECE ((uint64_t)16 << 20)
/* A copy of @map whose ranges are cut into pieces of at most @piece bytes
 * (whole blocks) from each range's start; never merged again. 0 or
 * -ENOMEM. */
int format_map_cut(const struct bmap_map *map, uint64_t piece, struct bmap_map **ret_map);

/* The work map of @src's @map for copy and verify: @map itself (NULL in
 * *@ret_map) unless @src is a self-mapped image and @map has no range
 * checksums (the image's own map, or a bmap without them), when it is
 * format_map_cut() at FORMAT_CUT_PIECE. 0 or -ENOMEM. */
int source_work_map(struct bmap_source *src, const struct bmap_map *map,
		    struct bmap_map **ret_map);

/* Thread-safe (the format's prun): how many image bytes from @off on (up
 * to @max at least) are of one kind, and whether they are zeros known
 * without reading them; -ENOTSUP when the format cannot tell at random. */
int64_t source_prun(struct bmap_source *s, uint64_t off, uint64_t max, bool *ret_zero);
