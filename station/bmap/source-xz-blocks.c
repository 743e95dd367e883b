/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xz images of several blocks, decoded by blocks (see source-xz.h): the .xz
 * index says where each block is and how big, so while the reading thread
 * decodes one block straight into the caller's buffers, a helper thread
 * decodes the next one into a buffer of at most XZ_AHEAD_MAX bytes. When
 * the reader reaches that block it drains the buffer and, for a block
 * bigger than the buffer, carries on with the helper's decoder where it
 * stopped. Memory: two decoders (two windows) and one block buffer, within
 * XZ_PAR_BUDGET beyond the first window, whatever the image size;
 * liblzma's own threaded decoder holds whole input and output blocks per
 * thread (about 80 MiB for the 24 MiB blocks of xz -6 -T2).
 *
 * A caller that says which image bytes it will read (bmap_source_want: the
 * mapped ranges) gets the blocks that hold none of them decoded last: they
 * go to the end of the decoding order, are passed over when skipped, and
 * are decoded, their output dropped, once the image's last block is
 * through, so their checks still pass or fail before the end of the image
 * is reported; a caller that checks all it reads against range checksums
 * (bmap_source_want_only) has them never decoded. Mapped data comes out without waiting for the blocks of
 * zeros between it (cards reading along the station's cache fill get it
 * sooner).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lzma.h>

#include "source-xz.h"
#include "util.h"

/* ---- block decoding (reader and helper alike; no bmap_ctx here) ------- */

static void dec_fail(struct xz_dec *d, int err, const char *why)
{
	d->err = err;
	d->why = why;
	d->err_off = d->in_pos;
}

static const char *lzma_why(lzma_ret ret)
{
	switch (ret) {
	case LZMA_MEM_ERROR:
		return "out of memory";
	case LZMA_OPTIONS_ERROR:
		return "unsupported compression options";
	case LZMA_FORMAT_ERROR:
		return "not in the .xz format";
	default:
		return "compressed data is corrupt";
	}
}

static int lzma_errno(lzma_ret ret)
{
	return ret == LZMA_MEM_ERROR ? -ENOMEM : -EBADMSG;
}

void xz_dec_free_filters(struct xz_dec *d)
{
	for (size_t i = 0; i < LZMA_FILTERS_MAX && d->filters[i].id != LZMA_VLI_UNKNOWN; i++) {
		free(d->filters[i].options);
		d->filters[i].options = NULL;
	}
	d->filters[0].id = LZMA_VLI_UNKNOWN;
}

/* Reads and checks block @i's header into d->opts and d->filters. */
int xz_dec_header(struct xz_par *p, struct xz_dec *d, size_t i)
{
	const struct xz_block *b = &p->blocks[i];
	lzma_block *block = &d->opts;
	uint8_t hdr[1024];
	ssize_t n;
	lzma_ret ret;

	d->block = i;
	d->in_pos = p->base + b->in_off;
	d->in_end = d->in_pos + b->in_size;
	d->out_done = 0;
	d->finished = false;
	d->err = 0;
	d->strm.avail_in = 0;
	xz_dec_free_filters(d);
	*block = (lzma_block){.version = 1, .check = b->check, .filters = d->filters};

	n = loop_pread(p->fd, hdr, 1, d->in_pos);
	if (n == 1) {
		block->header_size = lzma_block_header_size_decode(hdr[0]);
		n = loop_pread(p->fd, hdr, block->header_size, d->in_pos);
	}
	if (n < 0) {
		dec_fail(d, (int)n, NULL);
		return d->err;
	}
	if (n == 0 || (size_t)n < block->header_size || hdr[0] == 0 ||
	    block->header_size >= b->in_size) {
		dec_fail(d, -EBADMSG, "bad block header");
		return d->err;
	}
	ret = lzma_block_header_decode(block, NULL, hdr);
	if (ret == LZMA_OK)
		ret = lzma_block_compressed_size(block, b->unpadded);
	if (ret == LZMA_OK && block->uncompressed_size != LZMA_VLI_UNKNOWN &&
	    block->uncompressed_size != b->out_size)
		ret = LZMA_DATA_ERROR;
	if (ret != LZMA_OK) {
		dec_fail(d, lzma_errno(ret), lzma_why(ret));
		return d->err;
	}
	block->uncompressed_size = b->out_size;
	return 0;
}

int xz_dec_start(struct xz_par *p, struct xz_dec *d, size_t i)
{
	lzma_block *block = &d->opts;
	lzma_ret ret;

	if (xz_dec_header(p, d, i) < 0)
		return d->err;
	ret = lzma_block_decoder(&d->strm, block);
	/* The decoder copied the filter options it needs. */
	xz_dec_free_filters(d);
	if (ret != LZMA_OK) {
		dec_fail(d, lzma_errno(ret), lzma_why(ret));
		return d->err;
	}
	d->in_pos += block->header_size;
	return 0;
}

/* Decodes up to @len bytes of the block into @out; returns how many, or
 * -errno (d->err). d->finished once the block and its check are through. */
ssize_t xz_dec_run(struct xz_par *p, struct xz_dec *d, uint8_t *out, size_t len)
{
	d->strm.next_out = out;
	d->strm.avail_out = len;
	while (d->strm.avail_out > 0 && !d->finished) {
		lzma_ret ret;
		size_t before_in, before_out;

		if (d->strm.avail_in == 0 && d->in_pos < d->in_end) {
			size_t want = d->in_end - d->in_pos < XZ_IN_SIZE
					  ? (size_t)(d->in_end - d->in_pos)
					  : XZ_IN_SIZE;
			ssize_t n = loop_pread(p->fd, d->in, want, d->in_pos);

			if (n <= 0) {
				dec_fail(d, n < 0 ? (int)n : -EPIPE,
					 n < 0 ? NULL : "the file ends early");
				return d->err;
			}
			d->strm.next_in = d->in;
			d->strm.avail_in = (size_t)n;
			d->in_pos += (uint64_t)n;
		}
		before_in = d->strm.avail_in;
		before_out = d->strm.avail_out;
		ret = lzma_code(&d->strm, LZMA_RUN);
		d->out_done += before_out - d->strm.avail_out;
		if (ret == LZMA_STREAM_END) {
			if (d->strm.avail_in != 0 || d->in_pos != d->in_end) {
				dec_fail(d, -EBADMSG, "a block is shorter than the index says");
				return d->err;
			}
			d->finished = true;
		} else if (ret != LZMA_OK) {
			dec_fail(d, lzma_errno(ret), lzma_why(ret));
			return d->err;
		} else if (d->strm.avail_in == 0 && d->in_pos == d->in_end && before_in == 0 &&
			   before_out == d->strm.avail_out) {
			dec_fail(d, -EBADMSG, "a block is longer than the index says");
			return d->err;
		}
	}
	return (ssize_t)(len - d->strm.avail_out);
}

void *xz_helper(void *arg)
{
	struct xz_par *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct xz_dec *d;
		size_t i, want;

		for (;;) {
			/* Blocks the reader decoded out of turn are done. */
			while (p->next_claim < p->n_blocks && p->done[p->order[p->next_claim]])
				p->next_claim++;
			if (p->quit ||
			    (p->ahead_state == AHEAD_IDLE && p->next_claim < p->claim_end))
				break;
			pthread_cond_wait(&p->cond, &p->lock);
		}
		if (p->quit)
			break;
		p->ahead_block = p->next_claim++;
		i = p->order[p->ahead_block];
		p->done[i] = true;
		p->ahead_state = AHEAD_WORKING;
		d = p->ahead;
		pthread_mutex_unlock(&p->lock);

		want = p->blocks[i].out_size < p->buf_size ? (size_t)p->blocks[i].out_size
							   : p->buf_size;
		p->buf_pos = 0;
		p->buf_len = 0;
		if (xz_dec_start(p, d, i) == 0) {
			while (p->buf_len < want && !d->finished && !d->err) {
				ssize_t n =
				    xz_dec_run(p, d, p->buf + p->buf_len, want - p->buf_len);

				if (n > 0)
					p->buf_len += (size_t)n;
				pthread_mutex_lock(&p->lock);
				bool quit = p->quit;
				pthread_mutex_unlock(&p->lock);
				if (quit)
					break;
			}
		}

		pthread_mutex_lock(&p->lock);
		p->ahead_state = AHEAD_READY;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void dec_free(struct xz_dec *d)
{
	if (!d)
		return;
	lzma_end(&d->strm);
	xz_dec_free_filters(d);
	free(d);
}

static struct xz_dec *dec_new(void)
{
	struct xz_dec *d = malloc(sizeof(*d));
	lzma_stream init = LZMA_STREAM_INIT;

	if (!d)
		return NULL;
	memset(d, 0, offsetof(struct xz_dec, in));
	d->strm = init;
	d->filters[0].id = LZMA_VLI_UNKNOWN;
	return d;
}

void xz_par_free(struct xz_par *p)
{
	if (!p)
		return;
	if (p->helper_started) {
		pthread_mutex_lock(&p->lock);
		p->quit = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->helper, NULL);
	}
	dec_free(p->cur);
	dec_free(p->ahead);
	free(p->buf);
	free(p->scratch);
	free(p->order);
	free(p->deferred);
	free(p->done);
	free(p->blocks);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* Reads the index of the .xz file at the source's position: the blocks'
 * places and sizes. NULL when the file has no readable index (left to the
 * stream decoder to diagnose) or when memory is short. */
static lzma_index *read_index(int fd, uint64_t base, uint64_t size)
{
	lzma_stream st = LZMA_STREAM_INIT;
	lzma_index *idx = NULL;
	uint8_t *in = malloc(XZ_IN_SIZE);
	uint64_t pos = 0;
	lzma_ret ret = LZMA_PROG_ERROR;

	if (in && lzma_file_info_decoder(&st, &idx, XZ_INDEX_MEMLIMIT, size) == LZMA_OK) {
		for (;;) {
			if (st.avail_in == 0) {
				size_t want =
				    size - pos < XZ_IN_SIZE ? (size_t)(size - pos) : XZ_IN_SIZE;
				ssize_t n = want ? loop_pread(fd, in, want, base + pos) : 0;

				if (n <= 0) {
					ret = LZMA_BUF_ERROR;
					break;
				}
				st.next_in = in;
				st.avail_in = (size_t)n;
				pos += (uint64_t)n;
			}
			ret = lzma_code(&st, LZMA_RUN);
			if (ret == LZMA_SEEK_NEEDED) {
				pos = st.seek_pos;
				st.avail_in = 0;
			} else if (ret != LZMA_OK) {
				break;
			}
		}
	}
	lzma_end(&st);
	free(in);
	if (ret != LZMA_STREAM_END) {
		if (idx)
			lzma_index_end(idx, NULL);
		return NULL;
	}
	return idx;
}

/* BMAP_XZ_AHEAD (bytes) lowers XZ_AHEAD_MAX: the tests use it to have
 * every block bigger than the buffer. */
static size_t ahead_max(void)
{
	const char *e = secure_getenv("BMAP_XZ_AHEAD");
	char *end;
	unsigned long long v;

	if (!e || !*e)
		return XZ_AHEAD_MAX;
	errno = 0;
	v = strtoull(e, &end, 10);
	if (errno || *end || v == 0 || v > XZ_AHEAD_MAX)
		return XZ_AHEAD_MAX;
	return (size_t)v;
}

int xz_par_open(struct bmap_source *s, struct xz_par **ret)
{
	lzma_index_iter it;
	lzma_index *idx;
	struct xz_par *p;
	struct stat st;
	off_t base;
	uint64_t max_out = 0, window = 0;
	size_t n;

	if (!s->seekable || fstat(s->fd, &st) < 0)
		return 0;
	base = lseek(s->fd, 0, SEEK_CUR);
	if (base < 0 || st.st_size <= base)
		return 0;
	idx = read_index(s->fd, (uint64_t)base, (uint64_t)(st.st_size - base));
	if (!idx)
		return 0;
	n = (size_t)lzma_index_block_count(idx);
	if (n < 2) {
		lzma_index_end(idx, NULL);
		return 0;
	}

	p = calloc(1, sizeof(*p));
	if (!p) {
		lzma_index_end(idx, NULL);
		return source_nomem(s);
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->fd = s->fd;
	p->base = (uint64_t)base;
	p->in_total = (uint64_t)(st.st_size - base);
	p->mode = XZ_NEXT;
	p->blocks = calloc(n, sizeof(*p->blocks));
	p->order = calloc(n, sizeof(*p->order));
	p->deferred = calloc(n, sizeof(*p->deferred));
	p->done = calloc(n, sizeof(*p->done));
	if (p->blocks && p->order && p->deferred && p->done) {
		lzma_index_iter_init(&it, idx);
		while (p->n_blocks < n && !lzma_index_iter_next(&it, LZMA_INDEX_ITER_BLOCK)) {
			struct xz_block *b = &p->blocks[p->n_blocks++];

			b->in_off = it.block.compressed_file_offset;
			b->in_size = it.block.total_size;
			b->unpadded = it.block.unpadded_size;
			b->out_size = it.block.uncompressed_size;
			b->check = it.stream.flags->check;
			p->order[p->n_blocks - 1] = p->n_blocks - 1;
			if (b->out_size > max_out)
				max_out = b->out_size;
		}
	}
	lzma_index_end(idx, NULL);
	p->cur = dec_new();
	p->ahead = dec_new();
	p->n_live = p->n_blocks;
	p->claim_end = p->n_blocks;
	if (!p->blocks || !p->order || !p->deferred || !p->done || !p->cur || !p->ahead ||
	    p->n_blocks != n) {
		xz_par_free(p);
		return source_nomem(s);
	}
	/* The second decoder's window and the look-ahead buffer share
	 * XZ_PAR_BUDGET: a big window (xz -8, -9) gets a smaller buffer, or
	 * one decoder only. (A damaged first header is the reader's to
	 * report.) */
	if (xz_dec_header(p, p->cur, 0) == 0) {
		window = lzma_raw_decoder_memusage(p->cur->filters);
		xz_dec_free_filters(p->cur);
	}
	p->cur->err = 0;
	if (window + XZ_AHEAD_MIN > XZ_PAR_BUDGET) {
		xz_par_free(p);
		return 0;
	}
	p->buf_size = max_out < ahead_max() ? (size_t)max_out : ahead_max();
	if (p->buf_size > XZ_PAR_BUDGET - window)
		p->buf_size = (size_t)(XZ_PAR_BUDGET - window);
	if (p->buf_size == 0)
		p->buf_size = 1;
	p->buf = malloc(p->buf_size);
	if (!p->buf) {
		xz_par_free(p);
		return source_nomem(s);
	}
	*ret = p;
	return 1;
}
