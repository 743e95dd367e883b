/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The copy engine. A raw image file (or a qcow2 image, or an uncompressed
 * sparse image without CRC32 chunks, read at random; their own map cut into
 * 16 MiB ranges, format-cut.c) is copied by a pool of workers, each taking
 * whole ranges, two at a time where their SHA-256 can be computed in
 * lockstep (copy-lanes.c). A
 * stream (compressed, or a pipe) is read or decompressed by the calling
 * thread into a ring of 4 MiB aligned buffers, and a writer thread and a
 * hasher thread consume it, so
 * decompression, hashing and writing overlap. Block devices are written with
 * O_DIRECT. Each range's checksum is checked as its data passes. What a
 * self-mapped image's data is made of (zero runs, the map as it streams) is
 * read by copy-format.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine.h"
#include "source-format.h"
#include "target.h"
#include "util.h"

void *copy_writer_thread(void *arg)
{
	struct engine_consumer *c = arg;
	struct engine *e = c->e;
	struct bmap_target *t = e->target;
	struct chunk *ch;

	while ((ch = ring_next(c->ring, c->index))) {
		size_t len = ch->len; /* the slot is reused once released */
		uint64_t end = ch->off + ch->len;
		int r = 0;

		if (ch->off + ch->len > t->size && t->blockdev)
			r = engine_fail(e, -ENOSPC,
					"the image does not fit on device '%s' (%" PRIu64
					" bytes): it goes on past byte %" PRIu64,
					t->name, t->size, t->size);
		else if ((r = ch->zero ? target_write_zeros(t, ch->off, ch->len)
				       : target_pwrite(t, ch->data, ch->len, ch->off)) < 0)
			engine_fail(e, r, "cannot write to '%s' at byte %" PRIu64 " (%zu bytes): %s",
				    t->name, ch->off, ch->len, strerror(-r));
		ring_release(c->ring, c->index);
		if (r < 0) {
			ring_abort(c->ring, r); /* wakes this ring's producer */
			break;
		}
		if (e->opts->written)
			e->opts->written(e->opts->written_userdata, end);
		engine_progress(e, len);
	}
	return NULL;
}

/* Reads exactly @len image bytes at image offset @off into @buf. */
static int read_image(struct engine *e, int raw_fd, uint8_t *buf, size_t len, uint64_t off,
		      const char *what)
{
	struct bmap_source *src = e->source;
	ssize_t n;
	int r;

	if (raw_fd >= 0) {
		n = loop_pread(raw_fd, buf, len, off);
	} else {
		uint64_t pos = bmap_source_tell(src);

		if (off > pos) {
			r = bmap_source_skip(src, off - pos);
			if (r == -EPIPE)
				return engine_fail(e, -EPIPE,
						   "%s ends before byte %" PRIu64
						   " (%s): the bmap does not belong to this image, "
						   "or the image is truncated",
						   e->image_name, off, what);
			if (r < 0)
				return engine_fail_ctx(e, r, NULL);
		}
		n = bmap_source_read(src, buf, len);
	}
	if (n < 0)
		return engine_fail(e, (int)n, "%s",
				   raw_fd >= 0 ? strerror((int)-n) : bmap_ctx_get_error(e->ctx));
	if ((size_t)n < len)
		return engine_fail(e, -EPIPE,
				   "%s ends at byte %" PRIu64 ", inside %s: the bmap does not belong "
				   "to this image, or the image is truncated",
				   e->image_name, off + (uint64_t)n, what);
	return 0;
}

static int produce_ranges(struct engine *e, int raw_fd)
{
	const struct bmap_map *map = e->map;
	size_t n_ranges = bmap_map_get_range_count(map);
	size_t slot = ring_slot_size(e->ring);

	for (size_t i = 0; i < n_ranges; i++) {
		const struct bmap_range *rg = &bmap_map_get_ranges(map)[i];
		uint64_t off, len;
		char what[96];

		bmap_map_range_bytes(map, i, &off, &len);
		snprintf(what, sizeof(what), "blocks range %" PRIu64 "-%" PRIu64, rg->first,
			 rg->last);
		for (uint64_t done = 0; done < len;) {
			struct chunk *ch;
			size_t n = len - done > slot ? slot : (size_t)(len - done);
			int64_t z;

			if (engine_stopped(e))
				return -ECANCELED;
			ch = ring_acquire(e->ring);
			if (!ch)
				return ring_error(e->ring);
			if (raw_fd < 0 && bmap_source_get_format(e->source) != BMAP_FORMAT_RAW) {
				z = copy_format_piece(e, ch->data, n, off + done, len - done, what,
						 &ch->zero);
				if (z < 0)
					return -1;
				n = (size_t)z;
			} else if (read_image(e, raw_fd, ch->data, n, off + done, what) < 0) {
				return -1;
			}
			ch->len = n;
			ch->off = off + done;
			ch->range = i;
			ch->range_start = done == 0;
			done += n;
			ch->range_end = done == len;
			ring_publish(e->ring);
		}
	}
	return 0;
}

/* No map: every byte of the image, in order. */
static int produce_all(struct engine *e, int raw_fd)
{
	size_t slot = ring_slot_size(e->ring);
	uint64_t off = 0;

	for (;;) {
		struct chunk *ch;
		ssize_t n;

		if (engine_stopped(e))
			return -ECANCELED;
		ch = ring_acquire(e->ring);
		if (!ch)
			return ring_error(e->ring);
		/* A file still being filled: its end is where it is once the
		 * filler says everything up to there is in. */
		if (raw_fd >= 0 && engine_wait(e, off + slot) < 0)
			return -1;
		if (raw_fd >= 0)
			n = loop_pread(raw_fd, ch->data, slot, off);
		else
			n = bmap_source_read(e->source, ch->data, slot);
		if (n < 0)
			return engine_fail(e, (int)n, "%s",
					   raw_fd >= 0 ? strerror((int)-n)
						       : bmap_ctx_get_error(e->ctx));
		if (n == 0)
			return 0; /* the slot is simply not published */
		ch->len = (size_t)n;
		ch->off = off;
		ch->range_start = off == 0;
		off += (uint64_t)n;
		ring_publish(e->ring);
		if ((size_t)n < slot && raw_fd >= 0)
			return 0;
	}
}

static int copy_stream(struct engine *e, int raw_fd)
{
	struct engine_consumer cons[2];
	pthread_t tids[2];
	unsigned started = 0;
	int r;

	r = engine_init_ring(e, 2);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 2; i++) {
		cons[i] = (struct engine_consumer){ .e = e, .ring = e->ring, .index = i };
		if (pthread_create(&tids[i], NULL, i == 0 ? copy_writer_thread : engine_range_hasher,
				   &cons[i]) != 0) {
			engine_fail(e, -EAGAIN, "cannot start a thread");
			break;
		}
		started++;
	}
	if (started == 2) {
		if (e->map) {
			/* Each range checked against its checksum as it passes:
			 * what holds no mapped data need not be decoded. */
			if (raw_fd < 0 && e->check)
				bmap_source_want_only(e->source, e->map);
			else if (raw_fd < 0)
				bmap_source_want(e->source, e->map);
			r = produce_ranges(e, raw_fd);
		} else if (e->lazy) {
			r = copy_produce_source_map(e);
		} else {
			r = produce_all(e, raw_fd);
		}
		if (r >= 0 && e->map && raw_fd < 0)
			engine_drain_stream(e);
	}
	ring_close(e->ring);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	return 0;
}

/* Whether @a and @b are one file (also through a hard link or a
 * /dev/fd path) or one device. */
static bool same_file(const struct stat *a, const struct stat *b)
{
	if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
		return a->st_rdev == b->st_rdev;
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* An archive's member whose header gives its size: a member that cannot
 * hold the bmap's data (too short for its last range, or longer than its
 * image: not the image, e.g. a README first in a zip) is refused now, not
 * when the copy reaches its end. */
static int check_member(struct bmap_ctx *ctx, struct bmap_source *src, const struct bmap_map *map)
{
	uint64_t size, off = 0, len = 0, end;
	size_t n = map ? bmap_map_get_range_count(map) : 0;

	if (!map || bmap_source_get_format(src) != BMAP_FORMAT_RAW ||
	    !bmap_source_get_member_size(src, &size))
		return 0;
	if (n)
		bmap_map_range_bytes(map, n - 1, &off, &len);
	end = off + len;
	if (size >= end && size <= bmap_map_get_image_size(map))
		return 0;
	return bmap_error(ctx, -EINVAL,
			  "member '%s' of %s archive '%s' is %" PRIu64 " bytes but the bmap "
			  "describes a %" PRIu64 "-byte image with data up to byte %" PRIu64
			  ": the bmap does not belong to this image (the image must be the "
			  "archive's first regular file); nothing was written",
			  bmap_source_get_member(src),
			  bmap_container_name(bmap_source_get_container(src)),
			  bmap_source_get_name(src), size, bmap_map_get_image_size(map), end);
}

/* What can be checked before the first write, so that a refused copy
 * leaves @dst as it was. A raw image file still being filled (@opts->wait)
 * has no final size yet: its filler checks it. */
static int check_before(struct bmap_ctx *ctx, struct bmap_source *src, const struct bmap_map *map,
			struct bmap_target *dst, const struct bmap_copy_opts *opts)
{
	int raw_fd = bmap_source_get_raw_fd(src);
	bool filling = opts && opts->wait;
	struct stat st, dst_st;
	int r;

	if (fstat(bmap_source_get_fd(src), &st) == 0 && fstat(dst->fd, &dst_st) == 0 &&
	    same_file(&st, &dst_st))
		return bmap_error(ctx, -EINVAL,
				  "'%s' is the image itself ('%s' is that same %s); nothing was "
				  "written",
				  dst->name, bmap_source_get_name(src),
				  S_ISBLK(st.st_mode) ? "device" : "file");
	if (map && bmap_source_get_format(src) != BMAP_FORMAT_RAW &&
	    bmap_source_get_image_size(src) != bmap_map_get_image_size(map))
		return bmap_error(ctx, -EINVAL,
				  "the disk in image file '%s' is %" PRIu64 " bytes but the bmap "
				  "describes a %" PRIu64 "-byte image: the bmap does not belong to "
				  "this image; nothing was written",
				  bmap_source_get_name(src), bmap_source_get_image_size(src),
				  bmap_map_get_image_size(map));
	r = check_member(ctx, src, map);
	if (r < 0)
		return r;
	if (raw_fd < 0 || filling || fstat(raw_fd, &st) < 0)
		return 0;
	if (map && engine_check_raw_size(ctx, src, map, "written") < 0)
		return -EINVAL;
	if (!map && st.st_size == 0)
		return bmap_error(ctx, -EINVAL,
				  "image file '%s' is empty: nothing to copy; nothing was written",
				  bmap_source_get_name(src));
	return 0;
}

/* The end of a copy that went well, to a regular file: its final size,
 * once a filler said the whole image passed its checks. */
static int finish_file(struct engine *e, struct bmap_target *dst, uint64_t size)
{
	char why[512] = "";
	int r;

	if (!dst->drop_content)
		return 0;
	if (e->opts->wait) {
		r = e->opts->wait(e->opts->wait_userdata, UINT64_MAX, why, sizeof(why));
		if (r < 0)
			return bmap_error(e->ctx, r, "%s", *why ? why : strerror(-r));
	}
	r = target_finish(dst, size);
	if (r < 0)
		return bmap_error(e->ctx, r, "cannot size '%s' to %" PRIu64 " bytes: %s",
				  dst->name, size, strerror(-r));
	return 0;
}

int bmap_copy(struct bmap_ctx *ctx, struct bmap_source *src, const struct bmap_map *map,
	      struct bmap_target *dst, const struct bmap_copy_opts *opts,
	      struct bmap_copy_result *ret_result)
{
	struct engine e;
	int raw_fd = bmap_source_get_raw_fd(src);
	uint64_t expected = map ? bmap_map_get_mapped_bytes(map) : 0;
	uint64_t image_size = bmap_source_get_image_size(src);
	double t0 = now_monotonic();
	_cleanup_(bmap_map_freep) struct bmap_map *work = NULL;
	int r, rs;

	r = check_before(ctx, src, map, dst, opts);
	if (r < 0)
		return r;
	if (map && dst->blockdev && dst->size < bmap_map_get_image_size(map))
		return bmap_error(ctx, -ENOSPC, "device '%s' is smaller than the image", dst->name);
	/* A self-mapped image's own map, cut for the workers (format-cut.c). */
	r = source_work_map(src, map, &work);
	if (r < 0)
		return r;
	if (work)
		map = work;

	r = engine_init(&e, ctx, map, opts);
	if (r < 0)
		return r;
	e.source = src;
	e.target = dst;
	e.check = map && bmap_map_has_range_checksums(map) && !(opts && opts->no_verify);
	e.source_checked = opts && opts->source_checked && map && bmap_map_has_range_checksums(map) &&
			   strcmp(bmap_map_get_checksum_type(map), "sha256") == 0;
	e.abort_on_mismatch = true;
	e.image_name = bmap_source_get_name(src);
	e.lazy = !map && opts && opts->source_map &&
		 bmap_source_get_format(src) != BMAP_FORMAT_RAW;
	if (e.lazy)
		e.n_digests = 0;
	if (map)
		e.total = expected;
	else if (!e.lazy)
		e.total = image_size;

	/* An image still being filled is filled in order: so it is read. */
	e.in_order = opts && opts->wait;
	/* A spill's decoder reports how far it wrote: only a stream does. */
	if (map && source_can_pread(src) && !(opts && opts->written))
		engine_run_workers(&e, copy_worker);
	else
		copy_stream(&e, raw_fd);
	r = engine_status(&e);
	if (r >= 0 && map && atomic_load(&e.done) != expected)
		r = bmap_error(ctx, -EIO,
			       "wrote %" PRIu64 " bytes but the bmap maps %" PRIu64
			       ": the bmap does not belong to this image",
			       (uint64_t)atomic_load(&e.done), expected);
	/* A stream that was empty: nothing was written, and nothing is. */
	if (r >= 0 && !map && !e.lazy && atomic_load(&e.done) == 0)
		r = bmap_error(ctx, -EINVAL,
			       "image '%s' is empty (0 bytes): nothing to copy; nothing was written",
			       e.image_name);
	if (r >= 0)
		r = finish_file(&e, dst,
				map		? bmap_map_get_image_size(map)
				: e.lazy	? image_size
						: atomic_load(&e.done));

	/* Synced even after a failure or an interruption: what was written is
	 * on the media and the device is left consistent. */
	if (r >= 0 && opts && opts->syncing)
		opts->syncing(opts->syncing_userdata);
	rs = bmap_target_sync(dst);
	if (r >= 0 && rs < 0)
		r = bmap_error(ctx, rs, "cannot sync '%s': %s (the data may not be on the media)",
			       dst->name, strerror(-rs));
	if (r >= 0 && ret_result) {
		ret_result->bytes_written = atomic_load(&e.done);
		engine_data_digest(&e, ret_result->data_sha256);
		ret_result->seconds = now_monotonic() - t0;
		ret_result->unhashed = e.source_checked;
	}
	engine_done(&e);
	return r;
}
