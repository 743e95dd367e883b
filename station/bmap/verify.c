/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Verify: read a destination back from the media (page cache dropped, then
 * O_DIRECT) and check it. With range checksums, a pool of workers reads and
 * hashes whole ranges in parallel. Without them, the calling thread reads
 * (decompresses) the image and a comparer thread reads the device and
 * compares byte for byte.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "source-format.h"
#include "target.h"
#include "util.h"

/* A read of the device failed: the message names the bytes and blocks
 * that could not be read, and the bmap range they belong to, so that an
 * operator can tell a bad card from a bad image. */
static int verify_read_failed(struct engine *e, int err, uint64_t off, size_t len, size_t range)
{
	uint64_t bs = e->map ? bmap_map_get_block_size(e->map) : 0, end = off + len - 1;

	if (!bs)
		return engine_fail(e, err, "cannot read '%s' at bytes %" PRIu64 "-%" PRIu64 ": %s",
				   e->target->name, off, end, strerror(-err));
	const struct bmap_range *rg = &bmap_map_get_ranges(e->map)[range];

	return engine_fail(e, err,
			   "cannot read '%s' at bytes %" PRIu64 "-%" PRIu64 " (blocks %" PRIu64
			   "-%" PRIu64 " of blocks range %" PRIu64 "-%" PRIu64 "): %s",
			   e->target->name, off, end, off / bs, end / bs, rg->first, rg->last,
			   strerror(-err));
}

/* One whole range read back and hashed. */
static int verify_range(struct engine *e, size_t i, uint8_t *buf, struct range_hash *h)
{
	uint64_t off, len;

	bmap_map_range_bytes(e->map, i, &off, &len);
	range_hash_start(h);
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done > ENGINE_SLOT_SIZE ? ENGINE_SLOT_SIZE : (size_t)(len - done);
		ssize_t got;

		if (engine_stopped(e))
			return -ECANCELED;
		got = target_pread(e->target, buf, n, off + done);
		if (got < 0)
			return verify_read_failed(e, (int)got, off + done, n, i);
		if ((size_t)got < n)
			return engine_fail(e, -EIO,
					   "'%s' ends at byte %" PRIu64
					   ", before the image's mapped data does",
					   e->target->name, off + done + (uint64_t)got);
		range_hash_update(h, buf, n);
		engine_progress(e, n);
		done += n;
	}
	return range_hash_end(e, h, i);
}

static void *verify_worker(void *arg)
{
	struct engine *e = arg;
	struct range_hash h;
	uint8_t *buf = NULL;
	size_t i;

	if (range_hash_init(e, &h) < 0)
		return NULL;
	if (posix_memalign((void **)&buf, 4096, ENGINE_SLOT_SIZE) != 0)
		engine_fail(e, -ENOMEM, "out of memory");
	else
		while (engine_take_range(e, &i))
			if (verify_range(e, i, buf, &h) < 0 && atomic_load(&e->failed))
				break;
	free(buf);
	range_hash_free(&h);
	return NULL;
}

struct comparer {
	struct engine_consumer c;
	uint64_t first_diff;
	size_t bad_ranges, first_bad, last_bad_range;
	bool any_diff;
};

static void *compare_thread(void *arg)
{
	struct comparer *cmp = arg;
	struct engine *e = cmp->c.e;
	struct bmap_target *t = e->target;
	struct range_hash h;
	uint8_t *buf = NULL;
	struct chunk *ch;
	bool open = false;
	size_t range = 0;

	if (range_hash_init(e, &h) < 0)
		return NULL;
	if (posix_memalign((void **)&buf, 4096, ENGINE_SLOT_SIZE) != 0) {
		engine_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	while ((ch = ring_next(cmp->c.ring, cmp->c.index))) {
		ssize_t n = target_pread(t, buf, ch->len, ch->off);

		/* Lazy ranges end where the next begins. */
		if (ch->range_start && open) {
			range_hash_end(e, &h, range);
			open = false;
		}
		range = ch->range;

		if (n < 0) {
			verify_read_failed(e, (int)n, ch->off, ch->len, ch->range);
			ring_release(cmp->c.ring, cmp->c.index);
			break;
		}
		if ((size_t)n < ch->len) {
			engine_fail(e, -EIO, "'%s' ends at byte %" PRIu64 ", before the image does",
				    t->name, ch->off + (uint64_t)n);
			ring_release(cmp->c.ring, cmp->c.index);
			break;
		}
		if (ch->range_start) {
			range_hash_start(&h);
			open = true;
		}
		range_hash_update(&h, buf, ch->len);
		if (ch->range_end) {
			range_hash_end(e, &h, ch->range);
			open = false;
		}
		if (memcmp(buf, ch->data, ch->len) != 0) {
			size_t i = 0;

			while (buf[i] == ch->data[i])
				i++;
			if (!cmp->any_diff) {
				cmp->any_diff = true;
				cmp->first_diff = ch->off + i;
				cmp->first_bad = ch->range;
			}
			if (cmp->bad_ranges == 0 || cmp->last_bad_range != ch->range) {
				cmp->bad_ranges++;
				cmp->last_bad_range = ch->range;
			}
		}
		engine_progress(e, ch->len);
		ring_release(cmp->c.ring, cmp->c.index);
	}
	/* No bmap: the whole image is one range; lazy: the last one. */
	if (open && !atomic_load(&e->failed) && !ring_error(e->ring))
		range_hash_end(e, &h, range);
out:
	free(buf);
	range_hash_free(&h);
	return NULL;
}

/* Compare mode: the calling thread reads the image (mapped ranges, or all). */
static int read_image(struct engine *e)
{
	struct bmap_source *src = e->source;
	size_t slot = ring_slot_size(e->ring);
	size_t n_ranges = e->map ? bmap_map_get_range_count(e->map) : 1;

	for (size_t i = 0; i < n_ranges; i++) {
		uint64_t off = 0, len = UINT64_MAX, pos = bmap_source_tell(src);
		int r;

		if (e->map)
			bmap_map_range_bytes(e->map, i, &off, &len);
		if (off > pos) {
			r = bmap_source_skip(src, off - pos);
			if (r < 0)
				return engine_fail_ctx(e, r, NULL);
		}
		for (uint64_t done = 0; done < len;) {
			size_t n = len - done > slot ? slot : (size_t)(len - done);
			struct chunk *ch;
			ssize_t got;

			if (engine_stopped(e))
				return -ECANCELED;
			ch = ring_acquire(e->ring);
			if (!ch)
				return ring_error(e->ring);
			r = engine_wait(e, off + done + n);
			if (r < 0)
				return r;
			got = bmap_source_read(src, ch->data, n);
			if (got < 0)
				return engine_fail_ctx(e, (int)got, NULL);
			if (got == 0 && !e->map)
				return 0;
			if ((size_t)got < n && e->map)
				return engine_fail(e, -EPIPE,
						   "%s ends at byte %" PRIu64
						   ", inside a mapped range: the bmap does not belong "
						   "to this image, or the image is truncated",
						   e->image_name, off + done + (uint64_t)got);
			ch->len = (size_t)got;
			ch->off = off + done;
			ch->range = i;
			ch->range_start = done == 0;
			done += (uint64_t)got;
			ch->range_end = done == len;
			ring_publish(e->ring);
		}
	}
	return 0;
}

/* Compare mode without a map, a self-mapped image: its data as it is read
 * (each run between holes is a range). */
static int read_image_lazy(struct engine *e)
{
	struct bmap_source *src = e->source;
	size_t slot = ring_slot_size(e->ring), range = 0;
	uint64_t prev_end = 0, range_off = 0;
	bool any = false;

	for (;;) {
		uint64_t len, off;
		bool start;
		int r;

		r = source_next_data(src, &len);
		if (r < 0)
			return engine_fail_ctx(e, r, NULL);
		if (len == 0)
			return 0;
		off = bmap_source_tell(src);
		start = !any || off != prev_end;
		if (any && start)
			range++;
		if (start)
			range_off = off;
		for (uint64_t done = 0; done < len;) {
			size_t n = len - done > slot ? slot : (size_t)(len - done);
			struct chunk *ch;
			ssize_t got;

			/* Ranges cut as copy cuts them (format-cut.c). */
			if (off + done - range_off >= FORMAT_CUT_PIECE) {
				start = true;
				range++;
				range_off = off + done;
			}
			if (n > range_off + FORMAT_CUT_PIECE - (off + done))
				n = (size_t)(range_off + FORMAT_CUT_PIECE - (off + done));

			if (engine_stopped(e))
				return -ECANCELED;
			ch = ring_acquire(e->ring);
			if (!ch)
				return ring_error(e->ring);
			got = bmap_source_read(src, ch->data, n);
			if (got < 0)
				return engine_fail_ctx(e, (int)got, NULL);
			if ((size_t)got < n)
				return engine_fail(e, -EPIPE, "%s ends at byte %" PRIu64 ", inside its data",
						   e->image_name, off + done + (uint64_t)got);
			ch->len = n;
			ch->off = off + done;
			ch->range = range;
			ch->range_start = start;
			start = false;
			done += n;
			ring_publish(e->ring);
		}
		any = true;
		prev_end = off + len;
	}
}

static void compare(struct engine *e, struct comparer *cmp)
{
	pthread_t tid;

	if (engine_init_ring(e, 1) < 0) {
		engine_fail_ctx(e, -ENOMEM, NULL);
		return;
	}
	cmp->c = (struct engine_consumer){ .e = e, .ring = e->ring, .index = 0 };
	if (pthread_create(&tid, NULL, compare_thread, cmp) != 0) {
		engine_fail(e, -EAGAIN, "cannot start a thread");
		return;
	}
	if (e->lazy)
		read_image_lazy(e);
	else if (read_image(e) >= 0 && e->map && bmap_source_get_raw_fd(e->source) < 0)
		/* As copy reads a stream: to its end, refused when longer. */
		engine_drain_stream(e);
	ring_close(e->ring);
	pthread_join(tid, NULL);
}

int bmap_verify(struct bmap_ctx *ctx, struct bmap_target *dst, const struct bmap_map *map,
		struct bmap_source *image, const struct bmap_copy_opts *opts,
		struct bmap_verify_result *ret_result)
{
	bool checksums = map && bmap_map_has_range_checksums(map);
	struct bmap_verify_result res = { .compared_bytes = !checksums };
	struct comparer cmp = { 0 };
	struct engine e;
	double t0 = now_monotonic();
	_cleanup_(bmap_map_freep) struct bmap_map *work = NULL;
	int r;

	if (!checksums && !image)
		return bmap_error(ctx, -EINVAL,
				  "the bmap has no checksums: the image is needed to compare with");
	/* What copy refuses, verify refuses too: a raw image file that is not
	 * the bmap's size is another image (the reference's copy says so). */
	if (map && image && !(opts && opts->wait) && engine_check_raw_size(ctx, image, map, "verified") < 0)
		return -EINVAL;
	r = target_drop_cache(dst);
	if (r < 0)
		return bmap_error(ctx, r, "cannot flush '%s' before reading it back: %s", dst->name,
				  strerror(-r));
	target_set_direct(dst, true); /* best effort: the cache was dropped anyway */
	/* The ranges copy hashed a self-mapped image's data by (its map cut,
	 * format-cut.c), so that the data digests agree. */
	if (image && map) {
		r = source_work_map(image, map, &work);
		if (r < 0)
			return r;
		if (work)
			map = work;
	}

	r = engine_init(&e, ctx, map, opts);
	if (r < 0)
		return r;
	e.source = image;
	e.target = dst;
	e.check = checksums;
	e.image_name = image ? bmap_source_get_name(image) : "";
	e.total = map ? bmap_map_get_mapped_bytes(map) : 0;
	e.lazy = !map && image && opts && opts->source_map &&
		 bmap_source_get_format(image) != BMAP_FORMAT_RAW;
	if (e.lazy)
		e.n_digests = 0;

	if (checksums)
		engine_run_workers(&e, verify_worker);
	else
		compare(&e, &cmp);
	r = engine_status(&e);
	if (r < 0)
		goto out;

	res.bytes_read = atomic_load(&e.done);
	engine_data_digest(&e, res.data_sha256);
	res.seconds = now_monotonic() - t0;
	if (checksums) {
		res.bad_ranges = atomic_load(&e.bad_ranges);
		res.first_bad = e.first_bad;
	} else {
		res.bad_ranges = cmp.bad_ranges;
		res.first_bad = cmp.first_bad;
		res.first_bad_offset = cmp.first_diff;
	}
	if (res.bad_ranges && map) {
		const struct bmap_range *rg = &bmap_map_get_ranges(map)[res.first_bad];
		char where[64] = "";
		uint64_t off, len;

		bmap_map_range_bytes(map, res.first_bad, &off, &len);
		if (!checksums)
			snprintf(where, sizeof(where), ", first difference at byte %" PRIu64,
				 res.first_bad_offset);
		r = bmap_error(ctx, -EBADMSG,
			       "'%s' does not match: %zu of %zu ranges are bad; the first is "
			       "blocks %" PRIu64 "-%" PRIu64 " (bytes %" PRIu64 "-%" PRIu64 ")%s",
			       dst->name, res.bad_ranges, bmap_map_get_range_count(map), rg->first,
			       rg->last, off, off + len - 1, where);
	} else if (res.bad_ranges) {
		r = bmap_error(ctx, -EBADMSG,
			       "'%s' does not match the image: first difference at byte %" PRIu64,
			       dst->name, res.first_bad_offset);
	}
	if (ret_result)
		*ret_result = res;
out:
	engine_done(&e);
	return r;
}
