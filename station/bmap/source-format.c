/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The format layer of the image sources (see source-format.h): which
 * format the decoded bytes are, by magic, and what the engines and tools
 * ask of a self-mapped image whatever its format (its map, its size, its
 * header facts, random reads).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "source-format.h"
#include "util.h"

const char *bmap_format_name(enum bmap_format f)
{
	switch (f) {
	case BMAP_FORMAT_RAW:
		return "raw";
	case BMAP_FORMAT_QCOW2:
		return "qcow2";
	case BMAP_FORMAT_SIMG:
		return "Android sparse";
	}
	return "unknown";
}

enum bmap_format source_format_detect(const uint8_t *buf, size_t len)
{
	/* qcow2: "QFI\xfb"; Android sparse: 0xed26ff3a, little-endian. */
	if (len >= 4 && memcmp(buf, "QFI\xfb", 4) == 0)
		return BMAP_FORMAT_QCOW2;
	if (len >= 4 && buf[0] == 0x3a && buf[1] == 0xff && buf[2] == 0x26 && buf[3] == 0xed)
		return BMAP_FORMAT_SIMG;
	return BMAP_FORMAT_RAW;
}

static const struct source_format *format_for(enum bmap_format f)
{
	switch (f) {
	case BMAP_FORMAT_QCOW2:
		return &source_format_qcow2;
	case BMAP_FORMAT_SIMG:
		return &source_format_simg;
	case BMAP_FORMAT_RAW:
		break;
	}
	return NULL;
}

int source_format_open(struct bmap_source *s)
{
	/* A decoder's output: its first bytes, peeked where the codec can
	 * (xz by blocks, whose order bmap_source_want() may still change),
	 * else read ahead and served again first, so a raw compressed image
	 * loses nothing. A failure here is the first read's: the image is
	 * taken as raw and the read says what is wrong (sticky in s->err
	 * once bytes were consumed). */
	if (s->comp != BMAP_COMP_RAW || s->arc) {
		uint8_t magic[8];
		ssize_t n = -ENOTSUP;

		if (s->codec->peek && !s->arc && !s->fpeek_len)
			n = s->codec->peek(s, magic, sizeof(magic));
		if (n == -ENOTSUP) {
			/* The bytes the container layer read ahead, or new ones. */
			if (!s->fpeek_len && !s->err) {
				ssize_t k = source_dec_read(s, s->fpeek, sizeof(s->fpeek));

				if (k < 0)
					return 0;
				s->fpeek_len = (size_t)k;
				s->fpeek_pos = 0;
				s->dec_pos = 0;
			}
			n = s->fpeek_len < sizeof(magic) ? (ssize_t)s->fpeek_len : (ssize_t)sizeof(magic);
			memcpy(magic, s->fpeek, (size_t)n);
		}
		if (n < 0)
			return 0;
		s->format = source_format_detect(magic, (size_t)n);
	}
	if (s->arc && s->format == BMAP_FORMAT_QCOW2)
		return bmap_error(s->ctx, -ENOTSUP,
				  "%s is a qcow2 image, which needs random access: it cannot be "
				  "read from inside an archive; extract it first",
				  s->what);
	s->fmt = format_for(s->format);
	if (!s->fmt)
		return 0;
	return s->fmt->open(s);
}

bool source_dec_random(const struct bmap_source *s)
{
	return s->comp == BMAP_COMP_RAW && !s->arc && s->seekable && s->at_start;
}

bool source_can_pread(const struct bmap_source *s)
{
	if (s->fmt)
		return s->fmt->pread && (!s->fmt->random || s->fmt->random(s));
	return bmap_source_get_raw_fd(s) >= 0;
}

ssize_t source_pread(struct bmap_source *s, void *buf, size_t len, uint64_t off)
{
	if (s->fmt)
		return s->fmt->pread(s, buf, len, off);
	return loop_pread(s->fd, buf, len, off);
}

int64_t source_prun(struct bmap_source *s, uint64_t off, uint64_t max, bool *ret_zero)
{
	*ret_zero = false;
	if (!s->fmt || !s->fmt->prun || !source_can_pread(s))
		return -ENOTSUP;
	return s->fmt->prun(s, off, max ? max : 1, ret_zero);
}

enum bmap_format bmap_source_get_format(const struct bmap_source *s)
{
	return s->format;
}

uint64_t bmap_source_get_image_size(const struct bmap_source *s)
{
	struct bmap_format_info info;
	struct stat st;

	if (s->fmt) {
		memset(&info, 0, sizeof(info));
		s->fmt->info((struct bmap_source *)s, &info);
		return info.virtual_size;
	}
	if (bmap_source_get_raw_fd(s) >= 0 && fstat(s->fd, &st) == 0)
		return (uint64_t)st.st_size;
	return 0;
}

/* A copy of @map: the engines and tools own theirs. */
static struct bmap_map *map_dup(struct bmap_ctx *ctx, const struct bmap_map *map)
{
	struct bmap_map *copy = NULL;
	const struct bmap_range *rg = bmap_map_get_ranges(map);

	if (bmap_map_new(ctx, bmap_map_get_image_size(map), bmap_map_get_block_size(map), &copy) <
	    0)
		return NULL;
	for (size_t i = 0; i < bmap_map_get_range_count(map); i++)
		if (bmap_map_append_range(copy, rg[i].first, rg[i].last) < 0)
			return bmap_map_free(copy);
	return copy;
}

int bmap_source_get_map(struct bmap_source *s, struct bmap_map **ret_map)
{
	const struct bmap_map *map;
	struct bmap_map *copy;
	bool complete = false;

	if (!s->fmt)
		return -ENODATA;
	map = s->fmt->map(s, &complete);
	if (!map || !complete)
		return -EAGAIN;
	copy = map_dup(s->ctx, map);
	if (!copy)
		return bmap_error(s->ctx, -ENOMEM, "out of memory");
	*ret_map = copy;
	return 0;
}

int64_t source_run(struct bmap_source *s, bool *ret_zero)
{
	int64_t n;

	*ret_zero = false;
	if (!s->fmt || !s->fmt->run)
		return INT64_MAX;
	if (s->err)
		return s->err;
	n = s->fmt->run(s, ret_zero);
	if (n < 0)
		s->err = (int)n;
	return n;
}

int source_next_data(struct bmap_source *s, uint64_t *ret_len)
{
	int r;

	if (!s->fmt)
		return bmap_error(s->ctx, -EINVAL, "%s is a raw image: it has no map", s->what);
	if (s->err)
		return s->err;
	r = s->fmt->next_data(s, ret_len);
	if (r < 0)
		s->err = r;
	return r;
}

int bmap_source_read_map(struct bmap_source *s, struct bmap_map **ret_map)
{
	int r = bmap_source_get_map(s, ret_map);

	if (r != -EAGAIN)
		return r;
	/* Through the data, not over it: a stream's checks (CRC32 chunks,
	 * the decoder's) run, and its map is complete only at its end. */
	for (;;) {
		uint64_t len;

		r = source_next_data(s, &len);
		if (r < 0)
			return r;
		if (len == 0)
			break;
		r = bmap_source_skip(s, len);
		if (r < 0)
			return r;
	}
	return bmap_source_get_map(s, ret_map);
}

int bmap_source_get_format_info(struct bmap_source *s, struct bmap_format_info *ret)
{
	if (!s->fmt)
		return -ENODATA;
	memset(ret, 0, sizeof(*ret));
	ret->format = s->format;
	s->fmt->info(s, ret);
	return 0;
}

int source_map_add(struct bmap_map *map, uint64_t off, uint64_t len)
{
	uint64_t bs = bmap_map_get_block_size(map), first, last;
	size_t n = bmap_map_get_range_count(map);

	if (len == 0)
		return 0;
	first = off / bs;
	last = (off + len - 1) / bs;
	/* Pieces that share a block with the last range continue it. */
	if (n) {
		const struct bmap_range *prev = &bmap_map_get_ranges(map)[n - 1];

		if (last <= prev->last)
			return 0;
		if (first <= prev->last)
			first = prev->last + 1;
	}
	return bmap_map_append_range(map, first, last);
}

struct bmap_map *source_map_rescale(const struct bmap_map *map, uint32_t block_size)
{
	struct bmap_map *out = NULL;

	if (bmap_map_new(NULL, bmap_map_get_image_size(map), block_size, &out) < 0)
		return NULL;
	for (size_t i = 0; i < bmap_map_get_range_count(map); i++) {
		uint64_t off, len;

		bmap_map_range_bytes(map, i, &off, &len);
		if (source_map_add(out, off, len) < 0)
			return bmap_map_free(out);
	}
	return out;
}
