/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The reading side of an xz image decoded by blocks (see source-xz.h and
 * source-xz-blocks.c): blocks delivered in image order, from the helper's
 * buffer or decoded here; the blocks the caller does not want (no mapped
 * data) passed over when skipped and decoded last, their output dropped,
 * so that their checks still decide before the end of the image is
 * reported; or, for a caller that checks what it reads against range
 * checksums (bmap_source_want_only), never decoded.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "source-xz.h"

static int par_error(struct bmap_source *s, const struct xz_par *p, const struct xz_dec *d)
{
	s->in_pos = d->err_off - p->base;
	if (d->err == -ENOMEM)
		return source_nomem(s);
	if (d->err == -EPIPE)
		return source_truncated(s);
	if (!d->why)
		return bmap_error(s->ctx, d->err,
				  "cannot read %s (at compressed offset %" PRIu64 "): %s", s->what,
				  s->in_pos, strerror(-d->err));
	return source_corrupt(s, d->why);
}

/* The block the reader decodes next: the image's next one, or past the
 * image's end the next deferred one not yet decoded; n_blocks at the end. */
static size_t next_block(struct xz_par *p)
{
	size_t b = p->n_blocks;

	if (!p->dropping)
		return p->img_next;
	pthread_mutex_lock(&p->lock);
	while (p->drop_pos < p->n_blocks && p->done[p->order[p->drop_pos]] &&
	       !(p->ahead_state != AHEAD_IDLE && p->ahead_block == p->drop_pos))
		p->drop_pos++;
	if (p->drop_pos < p->n_blocks)
		b = p->order[p->drop_pos];
	pthread_mutex_unlock(&p->lock);
	return b;
}

/* Past the image's last block: the deferred ones, decoded and dropped.
 * 0 at the end of the image, -errno when one of them is damaged. */
static ssize_t par_drop_deferred(struct bmap_source *s, struct xz_par *p)
{
	ssize_t n;

	if (!p->scratch && !(p->scratch = malloc(XZ_IN_SIZE)))
		return source_nomem(s);
	p->dropping = true;
	p->drop_pos = p->n_live;
	while ((n = xz_par_read(s, p, p->scratch, XZ_IN_SIZE)) > 0)
		;
	return n;
}

ssize_t xz_par_read(struct bmap_source *s, struct xz_par *p, uint8_t *buf, size_t len)
{
	for (;;) {
		ssize_t n;

		switch (p->mode) {
		case XZ_STREAM:
			n = xz_dec_run(p, p->cur, buf, len);
			if (n < 0)
				return par_error(s, p, p->cur);
			s->in_pos = p->cur->in_pos - p->base;
			if (p->cur->finished)
				p->mode = XZ_NEXT;
			if (n > 0)
				return n;
			break;

		case XZ_AHEAD:
			n = (ssize_t)(p->buf_len - p->buf_pos < len ? p->buf_len - p->buf_pos
								    : len);
			memcpy(buf, p->buf + p->buf_pos, (size_t)n);
			p->buf_pos += (size_t)n;
			if (p->buf_pos == p->buf_len) {
				struct xz_dec *d = p->ahead;

				/* A block bigger than the buffer: the reader takes
				 * over the helper's decoder and finishes it. */
				if (d->finished) {
					p->mode = XZ_NEXT;
				} else {
					p->ahead = p->cur;
					p->cur = d;
					p->mode = XZ_STREAM;
				}
				pthread_mutex_lock(&p->lock);
				p->ahead_state = AHEAD_IDLE;
				pthread_cond_broadcast(&p->cond);
				pthread_mutex_unlock(&p->lock);
			}
			if (n > 0)
				return n;
			break;

		case XZ_NEXT: {
			size_t b = next_block(p);

			if (b == p->n_blocks) {
				if (!p->dropping && p->n_live < p->claim_end)
					return par_drop_deferred(s, p);
				/* The index and the stream footers were read first. */
				s->in_pos = p->in_total;
				return 0;
			}
			pthread_mutex_lock(&p->lock);
			if (p->ahead_state != AHEAD_IDLE && p->order[p->ahead_block] == b) {
				while (p->ahead_state != AHEAD_READY)
					pthread_cond_wait(&p->cond, &p->lock);
				pthread_mutex_unlock(&p->lock);
				if (p->ahead->err)
					return par_error(s, p, p->ahead);
				s->in_pos = p->ahead->in_pos - p->base;
				p->mode = XZ_AHEAD;
			} else {
				/* The reader decodes it: claimed, if it is the next
				 * claim (a deferred block read out of turn is not:
				 * it is only marked done). */
				if (p->next_claim < p->n_blocks && p->order[p->next_claim] == b)
					p->next_claim++;
				else if (!p->deferred[b] || p->done[b]) {
					pthread_mutex_unlock(&p->lock);
					return bmap_error(s->ctx, -EPROTO,
							  "xz block decoding lost its place in %s",
							  s->what);
				}
				p->done[b] = true;
				pthread_cond_broadcast(&p->cond);
				pthread_mutex_unlock(&p->lock);
				if (xz_dec_start(p, p->cur, b) < 0)
					return par_error(s, p, p->cur);
				p->mode = XZ_STREAM;
				/* The helper starts once the reader has its block. */
				if (!p->helper_started && p->n_blocks > 1)
					p->helper_started =
					    pthread_create(&p->helper, NULL, xz_helper, p) == 0;
			}
			if (p->dropping)
				p->drop_pos++;
			else
				p->img_next++;
			break;
		}
		}
	}
}

/* Whole deferred blocks within the next @n bytes are passed over (decoded
 * at the end, see the top); the rest of the block being read is read and
 * dropped first. */
int64_t xz_par_skip(struct bmap_source *s, struct xz_par *p, uint64_t n)
{
	uint64_t skipped = 0;

	if (p->dropping)
		return 0;
	while (skipped < n) {
		if (p->mode != XZ_NEXT) {
			size_t want = n - skipped < XZ_IN_SIZE ? (size_t)(n - skipped) : XZ_IN_SIZE;
			ssize_t got;

			if (!p->scratch && !(p->scratch = malloc(XZ_IN_SIZE)))
				return source_nomem(s);
			got = xz_par_read(s, p, p->scratch, want);
			if (got <= 0)
				return got < 0 ? got : (int64_t)skipped;
			skipped += (uint64_t)got;
			continue;
		}
		if (p->img_next == p->n_blocks || !p->deferred[p->img_next] ||
		    p->blocks[p->img_next].out_size > n - skipped)
			break;
		skipped += p->blocks[p->img_next].out_size;
		p->img_next++;
	}
	return (int64_t)skipped;
}

/* Marks the blocks that hold none of @map's ranges deferred, before any is
 * decoded; with @only, past claim_end: never decoded. */
void xz_par_want(struct xz_par *p, const struct bmap_map *map, bool only)
{
	size_t n_ranges = bmap_map_get_range_count(map), r = 0, live = 0;
	uint64_t start = 0;

	if (p->img_next != 0 || p->mode != XZ_NEXT || p->helper_started)
		return; /* only before the first block is started */

	for (size_t b = 0; b < p->n_blocks; b++) {
		uint64_t end = start + p->blocks[b].out_size, off = 0, len = 0;
		bool wanted = false;

		/* Ranges are sorted and disjoint: skip those ending before. */
		while (r < n_ranges) {
			bmap_map_range_bytes(map, r, &off, &len);
			if (off + len > start)
				break;
			r++;
		}
		wanted = r < n_ranges && off < end;
		p->deferred[b] = !wanted;
		start = end;
	}
	for (size_t b = 0; b < p->n_blocks; b++)
		if (!p->deferred[b])
			p->order[live++] = b;
	p->n_live = live;
	p->claim_end = only ? live : p->n_blocks;
	for (size_t b = 0; b < p->n_blocks; b++)
		if (p->deferred[b])
			p->order[live++] = b;
}

ssize_t xz_par_peek(struct bmap_source *s, struct xz_par *p, uint8_t *buf, size_t len)
{
	struct xz_dec *d = p->ahead;
	size_t n = 0;

	if (p->helper_started || p->img_next != 0)
		return -ENOTSUP;
	/* The helper restarts this decoder on its first block anyway. */
	if (xz_dec_start(p, d, 0) < 0)
		return par_error(s, p, d);
	while (n < len && !d->finished) {
		ssize_t k = xz_dec_run(p, d, buf + n, len - n);

		if (k < 0)
			return par_error(s, p, d);
		n += (size_t)k;
	}
	return (ssize_t)n;
}
