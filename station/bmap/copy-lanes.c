/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The copy engine's workers for an image read at random (copy.c): each
 * takes whole ranges, two at a time where their SHA-256 can be computed in
 * lockstep (read, hash, write, in 1 MiB pieces through a writer thread of
 * its own); zeros the format knows of go by BLKZEROOUT, unread.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "source-format.h"
#include "target.h"
#include "util.h"

/* Per worker: a 1 MiB piece is hashed while the previous ones are written. */
#define COPY_WORKER_CHUNK (1u << 20)
#define COPY_WORKER_SLOTS 4

/* A worker's range in progress: a worker keeps two, so that their pieces
 * are hashed in lockstep (range_hash_update2: one SHA-256 stream is
 * latency-bound, two cost little more than one). */
struct lane {
	size_t i;
	uint64_t off, len, done;
	struct range_hash h;
	bool busy;
	const uint8_t *data; /* this round's piece, published, to hash */
	size_t n;
	/* What the format said of the image from run_off to run_end: zeros
	 * known without reading them, or not (source_prun). */
	uint64_t run_off, run_end;
	bool run_zero, no_runs;
};

static void lane_start(struct engine *e, struct lane *l)
{
	bmap_map_range_bytes(e->map, l->i, &l->off, &l->len);
	l->done = 0;
	l->busy = true;
	l->run_off = l->run_end = 0;
	range_hash_start(&l->h);
}

/* The format's run at @at (up to @max) into the lane: 1, or 0 when the
 * format tells none (a raw file, qcow2); -1 after engine_fail(). */
static int lane_run(struct engine *e, struct lane *l, uint64_t at, uint64_t max)
{
	bool zero;
	int64_t k;

	if (l->no_runs)
		return 0;
	if (at >= l->run_off && at < l->run_end)
		return 1;
	k = source_prun(e->source, at, max, &zero);
	if (k == -ENOTSUP) {
		l->no_runs = true;
		return 0;
	}
	if (k < 0)
		return engine_fail_ctx(e, (int)k, NULL), -1;
	if (k == 0)
		return 0;
	l->run_off = at;
	l->run_end = at + (uint64_t)k;
	l->run_zero = zero;
	return 1;
}

/* A zero run of ZERO_MIN or more at the lane's next byte: its length (up
 * to the range's end and ZERO_MAX), else 0, when the piece read is data
 * (*@ret_data: up to where, a zero run of ZERO_MIN or more beginning
 * there). -1 after engine_fail(). */
static int64_t lane_zeros(struct engine *e, struct lane *l, uint64_t at, size_t *ret_data)
{
	uint64_t end = l->off + l->len;
	int r = lane_run(e, l, at, end - at);
	uint64_t z;

	if (r <= 0)
		return r;
	z = (l->run_end < end ? l->run_end : end) - at;
	if (l->run_zero && z >= ZERO_MIN)
		return (int64_t)(z < ZERO_MAX ? z : ZERO_MAX);
	/* Data: up to a long zero run that begins in this piece. */
	if (!l->run_zero && l->run_end < end && l->run_end - at < *ret_data) {
		uint64_t d = l->run_end - at;

		r = lane_run(e, l, l->run_end, end - l->run_end);
		if (r < 0)
			return -1;
		if (r > 0 && l->run_zero &&
		    (l->run_end < end ? l->run_end : end) - l->run_off >= ZERO_MIN)
			*ret_data = (size_t)d;
	}
	return 0;
}

/* Zeros the format knows of at the lane's next bytes: each run a chunk of
 * no data for the writer (BLKZEROOUT), never read, and into the range's
 * hash (never hashed when the range is nothing else); a range that ends
 * so is checked, and the lane takes the next one (with @refill) until it
 * has data to read or no range is left. Before any data piece of the
 * round is acquired: a zero chunk takes a slot too, and the slots of the
 * round's data are reused only after their hashing. -1 after
 * engine_fail(). */
static int lane_pass_zeros(struct engine *e, struct ring *ring, struct lane *l, bool *more,
			   bool refill)
{
	while (l->busy) {
		uint64_t at = l->off + l->done;
		size_t n = COPY_WORKER_CHUNK;
		struct chunk *ch;
		int64_t z;

		if (engine_stopped(e))
			return -1;
		z = lane_zeros(e, l, at, &n);
		if (z <= 0)
			return (int)z;
		ch = ring_acquire(ring);
		if (!ch)
			return -1;
		ch->len = (size_t)z;
		ch->off = at;
		ch->zero = true;
		ring_publish(ring);
		range_hash_zeros(&l->h, (uint64_t)z);
		l->done += (uint64_t)z;
		if (l->done < l->len)
			continue;
		l->busy = false;
		if (range_hash_end(e, &l->h, l->i) < 0)
			return -1;
		if (!refill || !*more)
			break;
		if (engine_take_range(e, &l->i))
			lane_start(e, l);
		else
			*more = false;
	}
	return 0;
}

/* Reads the lane's next piece (an image read at random: a raw file,
 * qcow2, an indexed sparse image) into a slot of @ring and publishes it to the worker's writer.
 * It is hashed after that, while being written: the slot is reused only
 * COPY_WORKER_SLOTS acquires later, after this round's hashing. */
static int lane_piece(struct engine *e, struct ring *ring, struct lane *l)
{
	const struct bmap_range *rg = &bmap_map_get_ranges(e->map)[l->i];
	uint64_t at = l->off + l->done;
	size_t n = l->len - l->done > COPY_WORKER_CHUNK ? COPY_WORKER_CHUNK
							 : (size_t)(l->len - l->done);
	struct chunk *ch;
	ssize_t got;
	int64_t z;

	if (engine_stopped(e))
		return -ECANCELED;
	/* Data here (lane_zeros() passed the zeros): how much of it. */
	z = lane_zeros(e, l, at, &n);
	if (z < 0)
		return -1;
	ch = ring_acquire(ring);
	if (!ch)
		return -ECANCELED;
	if (engine_wait(e, at + n) < 0)
		return -1;
	got = source_pread(e->source, ch->data, n, at);
	if (got < 0 && bmap_source_get_format(e->source) != BMAP_FORMAT_RAW)
		return engine_fail_ctx(e, (int)got, NULL);
	if (got < 0)
		return engine_fail(e, (int)got, "cannot read %s at byte %" PRIu64 ": %s",
				   e->image_name, at, strerror((int)-got));
	if ((size_t)got < n)
		return engine_fail(e, -EPIPE,
				   "%s ends at byte %" PRIu64 ", inside blocks range %" PRIu64
				   "-%" PRIu64 ": the bmap does not belong to this image",
				   e->image_name, at + (uint64_t)got, rg->first, rg->last);
	ch->len = n;
	ch->off = at;
	l->data = ch->data;
	l->n = n;
	ring_publish(ring);
	return 0;
}

/* This round's pieces into their ranges' hashes; a range whose last piece
 * this was is checked. */
static int lanes_hash(struct engine *e, struct lane *lanes)
{
	struct lane *a = &lanes[0], *b = &lanes[1];
	bool ad = a->busy, bd = b->busy;

	if (ad && bd) {
		size_t m = a->n < b->n ? a->n : b->n;

		range_hash_update2(&a->h, a->data, &b->h, b->data, m);
		range_hash_update(&a->h, a->data + m, a->n - m);
		range_hash_update(&b->h, b->data + m, b->n - m);
	} else if (ad) {
		range_hash_update(&a->h, a->data, a->n);
	} else if (bd) {
		range_hash_update(&b->h, b->data, b->n);
	}
	for (int k = 0; k < 2; k++) {
		struct lane *l = &lanes[k];

		if (!l->busy)
			continue;
		l->done += l->n;
		if (l->done < l->len)
			continue;
		l->busy = false;
		if (range_hash_end(e, &l->h, l->i) < 0)
			return -1;
	}
	return 0;
}

/* Whole ranges of an image read at random, read and hashed by the worker
 * and handed to its own writer thread, so writing overlaps hashing. */
void *copy_worker(void *arg)
{
	struct engine *e = arg;
	struct engine_consumer writer = { .e = e, .index = 0 };
	struct lane lanes[2] = { 0 };
	bool more = true;
	pthread_t tid;

	_Static_assert(COPY_WORKER_SLOTS >= 3, "two published pieces are hashed after a third "
					       "acquire: it must not reuse their slots");
	if (range_hash_init_lane(e, &lanes[0].h) < 0)
		return NULL;
	if (range_hash_init_lane(e, &lanes[1].h) < 0)
		goto out_hash;
	if (ring_new(COPY_WORKER_SLOTS, COPY_WORKER_CHUNK, 1, &writer.ring) < 0) {
		engine_fail(e, -ENOMEM, "out of memory for the copy buffers");
		goto out;
	}
	if (pthread_create(&tid, NULL, copy_writer_thread, &writer) != 0) {
		engine_fail(e, -EAGAIN, "cannot start a thread");
		goto out;
	}
	while (!atomic_load(&e->failed)) {
		/* Two ranges at once from the start, the largest two together:
		 * hashing is what the CPUs spend most on after decoding, and
		 * a pair costs ~60% of two alone; pairing only once every
		 * worker had its first range left the largest ranges, most of
		 * the data, hashed alone. Never for an image still being
		 * filled: it is read in order. */
		bool pair = lanes[0].h.ni_on && !e->in_order;

		for (int k = 0; k < 2 && more; k++) {
			if (lanes[k].busy || (lanes[!k].busy && !pair))
				continue;
			if (engine_take_range(e, &lanes[k].i))
				lane_start(e, &lanes[k]);
			else
				more = false;
		}
		if (!lanes[0].busy && !lanes[1].busy)
			break;
		if (lane_pass_zeros(e, writer.ring, &lanes[0], &more, true) < 0 ||
		    lane_pass_zeros(e, writer.ring, &lanes[1], &more, pair || !lanes[0].busy) < 0)
			break;
		if (!lanes[0].busy && !lanes[1].busy)
			continue;
		if ((lanes[0].busy && lane_piece(e, writer.ring, &lanes[0]) < 0) ||
		    (lanes[1].busy && lane_piece(e, writer.ring, &lanes[1]) < 0) ||
		    lanes_hash(e, lanes) < 0)
			break;
	}
	if (atomic_load(&e->failed))
		ring_abort(writer.ring, -ECANCELED);
	ring_close(writer.ring);
	pthread_join(tid, NULL);
out:
	ring_free(writer.ring);
	range_hash_free(&lanes[1].h);
out_hash:
	range_hash_free(&lanes[0].h);
	return NULL;
}
