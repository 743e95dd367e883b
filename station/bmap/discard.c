/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Discard (TRIM) of a destination's unmapped ranges: the gaps between the
 * bmap's ranges within the image, cut inward to the device's logical
 * sectors, handed to a block device as BLKDISCARD (a regular file gets the
 * same gaps punched as holes), in pieces that a cancel flag can stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bmap-private.h"
#include "discard.h"
#include "target.h"
#include "util.h"

/* The most asked for at once (less when the device says so): a big gap goes
 * in several pieces, so that a cancel is seen between them and no single
 * request keeps a slow card busy for long. */
#define DISCARD_PIECE_MAX (1ull << 30)

/* @v rounded up to a multiple of @a; false when that does not fit. */
static bool round_up(uint64_t v, uint32_t a, uint64_t *ret)
{
	uint64_t rem = v % a;

	if (rem == 0) {
		*ret = v;
		return true;
	}
	if (v > UINT64_MAX - (a - rem))
		return false;
	*ret = v + (a - rem);
	return true;
}

bool discard_next_gap(const struct bmap_map *map, uint64_t limit, uint32_t align, size_t *cursor,
		      uint64_t *ret_off, uint64_t *ret_len)
{
	size_t n = bmap_map_get_range_count(map);

	if (align == 0)
		align = 1;
	if (limit > bmap_map_get_image_size(map))
		limit = bmap_map_get_image_size(map);
	/* Gap i lies before range i; gap n after the last range. Range byte
	 * spans are cut at the image's size, so a partial last block is only
	 * ever discarded up to the image's end. */
	for (; *cursor <= n; (*cursor)++) {
		size_t i = *cursor;
		uint64_t start = 0, end = limit, off, len;

		if (i > 0) {
			bmap_map_range_bytes(map, i - 1, &off, &len);
			start = off + len;
		}
		if (start >= limit)
			break; /* every later gap starts further on */
		if (i < n) {
			bmap_map_range_bytes(map, i, &off, &len);
			if (off < end)
				end = off;
		}
		/* Inward: the sectors a gap shares with mapped data (or with
		 * what lies past the image) are left alone. */
		if (!round_up(start, align, &start))
			break;
		end = end / align * align;
		if (end > start) {
			*ret_off = start;
			*ret_len = end - start;
			(*cursor)++;
			return true;
		}
	}
	*cursor = n + 1;
	return false;
}

static int discard_piece(struct bmap_target *t, uint64_t off, uint64_t len)
{
	if (t->blockdev) {
		uint64_t range[2] = { off, len };

		return ioctl(t->fd, BLKDISCARD, range) < 0 ? -errno : 0;
	}
	if (off > INT64_MAX || len > INT64_MAX - off)
		return -EFBIG;
	if (fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

int bmap_target_discard_unmapped(struct bmap_ctx *ctx, struct bmap_target *t,
				 const struct bmap_map *map, atomic_int *cancel,
				 struct bmap_discard_result *ret_result)
{
	struct bmap_discard_result res = { .punched = !t->blockdev };
	uint32_t align = t->blockdev ? t->sector_size : 1;
	uint64_t limit, piece = DISCARD_PIECE_MAX, max_bytes = 0, off, len;
	bool know_max = false;
	double t0 = now_monotonic();
	size_t cursor = 0;
	int r;

	/* Only a destination that passed every guard of bmap_target_open() in
	 * write mode: never a device that was refused, or opened to be read. */
	if (!t->writable)
		return bmap_error(ctx, -EBADF,
				  "'%s' was not opened for writing: its unmapped ranges are not "
				  "discarded",
				  t->name);
	if (!map)
		goto done; /* every byte is written: nothing is unmapped */

	limit = bmap_map_get_image_size(map);
	if (limit > t->size)
		limit = t->size;
	if (t->blockdev) {
		know_max = target_sysfs_u64(t, "queue/discard_max_bytes", &max_bytes) >= 0;
		if (know_max && max_bytes == 0) {
			bmap_log(ctx, BMAP_LOG_DEBUG,
				 "device '%s': /sys/block/%s/queue/discard_max_bytes is 0", t->name,
				 t->disk);
			res.unsupported = true;
			goto done;
		}
		if (know_max && max_bytes < piece)
			piece = max_bytes;
	}
	piece = piece / align * align;
	if (piece == 0)
		piece = align;

	while (discard_next_gap(map, limit, align, &cursor, &off, &len)) {
		for (uint64_t done = 0; done < len;) {
			uint64_t n = len - done < piece ? len - done : piece;

			if (cancel && *cancel)
				r = -EINTR;
			else
				r = discard_piece(t, off + done, n);
			if (r == -EOPNOTSUPP || r == -ENOTTY || r == -ENOSYS ||
			    (r == -EINVAL && t->blockdev && !know_max)) {
				bmap_log(ctx, BMAP_LOG_DEBUG, "%s '%s' at byte %" PRIu64 ": %s",
					 t->blockdev ? "BLKDISCARD on" : "punching a hole in", t->name,
					 off + done, strerror(-r));
				res.unsupported = true;
				goto done;
			}
			if (r == -EINTR)
				return bmap_error(ctx, r,
						  "interrupted while discarding the unmapped ranges of "
						  "'%s' (at byte %" PRIu64 ")",
						  t->name, off + done);
			if (r < 0)
				return bmap_error(ctx, r,
						  "cannot discard bytes %" PRIu64 "-%" PRIu64
						  " of '%s' (an unmapped range): %s",
						  off + done, off + done + n - 1, t->name, strerror(-r));
			done += n;
			res.bytes += n;
		}
		res.ranges++;
	}
done:
	if (res.bytes && fsync(t->fd) < 0)
		return bmap_error(ctx, -errno, "cannot sync '%s' after discarding: %m", t->name);
	res.seconds = now_monotonic() - t0;
	if (ret_result)
		*ret_result = res;
	return 0;
}
