/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The copy's producers for self-mapped images (see engine.h): a piece of
 * the image either data, read into a slot, or a run of zeros the format
 * knows of (a sparse image's fill of zeros), passed on as a chunk of no
 * data for the writer to zero (BLKZEROOUT); and, without a map, the image's
 * data as the image says where it is.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "source-format.h"

/* A self-mapped image's piece at image offset @at, at most @max bytes
 * (@left to the range's end): a zero run of ZERO_MIN or more is passed
 * over (returns its length with *@ret_zero set: a chunk of no data),
 * otherwise data is read into @buf up to where such a run begins (its
 * length). -1 after engine_fail(). */
int64_t copy_format_piece(struct engine *e, uint8_t *buf, size_t max, uint64_t at,
			    uint64_t left, const char *what, bool *ret_zero)
{
	struct bmap_source *src = e->source;
	uint64_t pos = bmap_source_tell(src);
	size_t got = 0;
	int r;

	*ret_zero = false;
	if (at > pos) {
		r = bmap_source_skip(src, at - pos);
		if (r < 0)
			return engine_fail_ctx(e, r, what), -1;
	}
	while (got < max) {
		bool zero;
		int64_t run = source_run(src, &zero);
		size_t k;
		ssize_t n;

		if (run < 0)
			return engine_fail_ctx(e, (int)run, NULL), -1;
		if (zero && (uint64_t)run >= ZERO_MIN) {
			uint64_t z = (uint64_t)run < left ? (uint64_t)run : left;

			if (got > 0)
				break;
			z = z < ZERO_MAX ? z : ZERO_MAX;
			r = bmap_source_skip(src, z);
			if (r < 0)
				return engine_fail_ctx(e, r, NULL), -1;
			*ret_zero = true;
			return (int64_t)z;
		}
		k = run == 0 || (uint64_t)run > max - got ? max - got : (size_t)run;
		n = bmap_source_read(src, buf + got, k);
		if (n < 0)
			return engine_fail_ctx(e, (int)n, NULL), -1;
		if ((size_t)n < k)
			return engine_fail(e, -EPIPE,
					   "%s ends at byte %" PRIu64 ", inside %s: the bmap does not "
					   "belong to this image, or the image is truncated",
					   e->image_name, at + got + (uint64_t)n, what), -1;
		got += k;
	}
	return (int64_t)got;
}

/* A new range at @off, the current one being a whole piece of the cut
 * (FORMAT_CUT_PIECE): the chunk so far published. */
static void next_piece(struct engine *e, struct chunk **ch, bool *start, size_t *range,
		       uint64_t *range_off, uint64_t off)
{
	if (*ch)
		ring_publish(e->ring);
	*ch = NULL;
	*start = true;
	(*range)++;
	*range_off = off;
}

/* No map, a self-mapped image: its data as the image says where it is
 * (a sparse image's chunks), contiguous pieces packed into whole slots. A
 * range is each run of data between holes. */
int copy_produce_source_map(struct engine *e)
{
	struct bmap_source *src = e->source;
	size_t slot = ring_slot_size(e->ring), range = 0;
	struct chunk *ch = NULL;
	bool any = false;
	uint64_t prev_end = 0, range_off = 0;

	for (;;) {
		uint64_t len, off;
		bool start;
		int r;

		if (engine_stopped(e))
			return -ECANCELED;
		r = source_next_data(src, &len);
		if (r < 0)
			return engine_fail_ctx(e, r, NULL);
		off = bmap_source_tell(src);
		if (ch && (len == 0 || off != ch->off + ch->len)) {
			ring_publish(e->ring);
			ch = NULL;
		}
		if (len == 0)
			return 0;
		start = !any || off != prev_end;
		if (start && any)
			range++;
		if (start)
			range_off = off;
		any = true;
		/* Cut as copy cuts the map of an image read at random
		 * (format-cut.c), so that the data digests agree. */
		if (!start && off - range_off >= FORMAT_CUT_PIECE)
			next_piece(e, &ch, &start, &range, &range_off, off);
		/* A fill of zeros: no buffer, BLKZEROOUT (see writer_thread). */
		bool zero;
		int64_t z = source_run(src, &zero);

		if (z < 0)
			return engine_fail_ctx(e, (int)z, NULL);
		if (zero && (uint64_t)z >= ZERO_MIN) {
			uint64_t n = (uint64_t)z < len ? (uint64_t)z : len;

			if (n > ZERO_MAX)
				n = ZERO_MAX;
			if (n > range_off + FORMAT_CUT_PIECE - off)
				n = range_off + FORMAT_CUT_PIECE - off;
			if (ch)
				ring_publish(e->ring);
			ch = ring_acquire(e->ring);
			if (!ch)
				return ring_error(e->ring);
			*ch = (struct chunk){ .data = ch->data, .len = (size_t)n, .off = off,
					      .range = range, .range_start = start, .zero = true };
			r = bmap_source_skip(src, n);
			if (r < 0)
				return engine_fail_ctx(e, r, NULL);
			ring_publish(e->ring);
			ch = NULL;
			prev_end = off + n;
			continue;
		}
		while (len > 0) {
			size_t n;
			ssize_t got;

			if (off - range_off >= FORMAT_CUT_PIECE)
				next_piece(e, &ch, &start, &range, &range_off, off);
			if (!ch) {
				ch = ring_acquire(e->ring);
				if (!ch)
					return ring_error(e->ring);
				ch->off = off;
				ch->range = range;
				ch->range_start = start;
				start = false;
			}
			n = slot - ch->len < len ? slot - ch->len : (size_t)len;
			if (n > range_off + FORMAT_CUT_PIECE - off)
				n = (size_t)(range_off + FORMAT_CUT_PIECE - off);
			got = bmap_source_read(src, ch->data + ch->len, n);
			if (got < 0)
				return engine_fail_ctx(e, (int)got, NULL);
			if ((size_t)got < n)
				return engine_fail(e, -EPIPE, "%s ends at byte %" PRIu64 ", inside its data",
						   e->image_name, off + (uint64_t)got);
			ch->len += n;
			off += n;
			len -= n;
			if (ch->len == slot) {
				if (engine_stopped(e))
					return -ECANCELED;
				ring_publish(e->ring);
				ch = NULL;
			}
		}
		prev_end = off;
	}
}

