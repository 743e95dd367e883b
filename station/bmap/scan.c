/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scanning a sparse file for its mapped blocks: FIEMAP, as the reference
 * does (unwritten extents count as mapped), falling back to
 * SEEK_DATA/SEEK_HOLE; runs of blocks are handed over in order.
 */
#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bmap-private.h"
#include "util.h"

#define FIEMAP_EXTENTS 512

struct scan {
	uint64_t size, blocks;
	uint32_t bs;
	bool have;
	uint64_t first, last;
	bmap_range_fn fn;
	void *userdata;
};

/* Adds the byte span [start, end) as blocks; merges with the pending run. */
static int scan_add(struct scan *s, uint64_t start, uint64_t end)
{
	uint64_t first, last;
	int r;

	if (end > s->size)
		end = s->size;
	if (start >= end)
		return 0;
	first = start / s->bs;
	last = (end - 1) / s->bs;
	if (s->have && first <= s->last + 1) {
		if (last > s->last)
			s->last = last;
		return 0;
	}
	if (s->have) {
		r = s->fn(s->userdata, s->first, s->last);
		if (r < 0)
			return r;
	}
	s->have = true;
	s->first = first;
	s->last = last;
	return 0;
}

static int scan_fiemap(struct bmap_ctx *ctx, int fd, const char *name, struct scan *s)
{
	_cleanup_free_ struct fiemap *fm = NULL;
	uint64_t start = 0;
	bool first_call = true;
	int r;

	/* Zeroed: valgrind does not model what FS_IOC_FIEMAP writes back. */
	fm = calloc(1, sizeof(*fm) + FIEMAP_EXTENTS * sizeof(struct fiemap_extent));
	if (!fm)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	while (start < s->size) {
		bool last_seen = false;

		memset(fm, 0, sizeof(*fm));
		fm->fm_start = start;
		fm->fm_length = s->size - start;
		/* Sync once, like the reference: delayed allocations become real. */
		fm->fm_flags = first_call ? FIEMAP_FLAG_SYNC : 0;
		fm->fm_extent_count = FIEMAP_EXTENTS;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			if (first_call && (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL))
				return -EOPNOTSUPP;
			return bmap_error(ctx, -errno, "FIEMAP failed on '%s': %m", name);
		}
		first_call = false;
		if (fm->fm_mapped_extents == 0)
			break;
		for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *e = &fm->fm_extents[i];

			/* Unwritten (fallocated) extents count as mapped, as in
			 * the reference: flags are deliberately ignored. */
			r = scan_add(s, e->fe_logical, e->fe_logical + e->fe_length);
			if (r < 0)
				return r;
			start = e->fe_logical + e->fe_length;
			if (e->fe_flags & FIEMAP_EXTENT_LAST)
				last_seen = true;
		}
		if (last_seen)
			break;
	}
	return 0;
}

static int scan_seek(struct bmap_ctx *ctx, int fd, const char *name, struct scan *s)
{
	uint64_t pos = 0;
	int r;

	while (pos < s->size) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)
				break;
			if (errno == EINVAL && pos == 0) {
				/* No SEEK_DATA: everything is data. */
				return scan_add(s, 0, s->size);
			}
			return bmap_error(ctx, -errno, "SEEK_DATA failed on '%s': %m", name);
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return bmap_error(ctx, -errno, "SEEK_HOLE failed on '%s': %m", name);
		r = scan_add(s, (uint64_t)data, (uint64_t)hole);
		if (r < 0)
			return r;
		pos = (uint64_t)hole;
	}
	return 0;
}

int bmap_scan_file(struct bmap_ctx *ctx, int fd, const char *name, uint64_t size,
		   uint32_t block_size, bmap_range_fn fn, void *userdata)
{
	struct scan s = {
		.size = size, .bs = block_size, .fn = fn, .userdata = userdata,
		.blocks = (size + block_size - 1) / block_size,
	};
	int r;

	r = scan_fiemap(ctx, fd, name, &s);
	if (r == -EOPNOTSUPP) {
		bmap_log(ctx, BMAP_LOG_DEBUG, "FIEMAP not supported on '%s', using SEEK_HOLE",
			 name);
		s.have = false;
		r = scan_seek(ctx, fd, name, &s);
	}
	if (r < 0)
		return r;
	if (s.have)
		return fn(userdata, s.first, s.last);
	return 0;
}

