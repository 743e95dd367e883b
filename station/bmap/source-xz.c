/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xz images through liblzma.
 *
 * A regular file with several blocks (as xz -T writes) is decoded by blocks,
 * two at a time: the .xz index says where each block is and how big, so
 * while the reading thread decodes one block straight into the caller's
 * buffers, a helper thread decodes the next one into a buffer of at most
 * XZ_AHEAD_MAX bytes. When the reader reaches that block it drains the
 * buffer and, for a block bigger than the buffer, carries on with the
 * helper's decoder where it stopped. Memory: two decoders (two windows) and
 * one block buffer, within XZ_PAR_BUDGET beyond the first window, whatever
 * the image size; liblzma's own threaded decoder
 * holds whole input and output blocks per thread (about 80 MiB for the
 * 24 MiB blocks of xz -6 -T2).
 *
 * A caller that says which image bytes it will read (bmap_source_want: the
 * mapped ranges) gets the blocks that hold none of them decoded last: they
 * go to the end of the decoding order, are passed over when skipped, and
 * are decoded, their output dropped, once the image's last block is
 * through, so their checks still pass or fail before the end of the image
 * is reported. Mapped data comes out without waiting for the blocks of
 * zeros between it (cards reading along the station's cache fill get it
 * sooner).
 *
 * Anything else (a pipe, a single block, a file whose index cannot be read)
 * goes through one stream decoder: concatenated streams and stream padding,
 * and a damaged file gets the stream decoder's own diagnosis.
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

#include "source-codec.h"
#include "util.h"

/* The helper decodes at most this much of a block ahead of the reader. */
#define XZ_AHEAD_MAX ((size_t)32 << 20)
/* What decoding two blocks at a time may add: the second decoder (its
 * window) and the look-ahead buffer. With the rest of a copy (about 21 MiB)
 * that keeps a copy under 64 MiB plus the image's window. Below
 * XZ_AHEAD_MIN of buffer, one decoder does it all. */
#define XZ_PAR_BUDGET ((uint64_t)40 << 20)
#define XZ_AHEAD_MIN ((uint64_t)4 << 20)
/* From a pipe: what liblzma's threaded decoder may hold. */
#define XZ_MEMLIMIT_THREADING ((uint64_t)32 << 20)
/* Compressed input is read in pieces of this size per decoder. */
#define XZ_IN_SIZE ((size_t)256 << 10)
/* The index of a sane image is a few KiB; past this the stream decoder is used. */
#define XZ_INDEX_MEMLIMIT ((uint64_t)64 << 20)

struct xz_block {
	uint64_t in_off;   /* file offset of the block header */
	uint64_t in_size;  /* header, data, padding and check */
	uint64_t unpadded; /* as the index gives it */
	uint64_t out_size;
	lzma_check check;
};

/* One block being decoded. */
struct xz_dec {
	lzma_stream strm;
	lzma_filter filters[LZMA_FILTERS_MAX + 1];
	lzma_block opts; /* the block decoder keeps a pointer to it */
	size_t block;
	uint64_t in_pos, in_end; /* file offsets of the compressed bytes left */
	uint64_t out_done;
	bool finished;
	int err; /* -errno; why and err_off say what and where */
	const char *why;
	uint64_t err_off;
	uint8_t in[XZ_IN_SIZE];
};

enum xz_mode { XZ_NEXT, XZ_STREAM, XZ_AHEAD };

struct xz_par {
	int fd;
	uint64_t base;	   /* file offset of the .xz data */
	uint64_t in_total; /* its size */
	struct xz_block *blocks;
	size_t n_blocks;
	/* The decoding order, positions -> blocks: the blocks that hold wanted
	 * bytes in image order, then (from n_live on) the others. */
	size_t *order;
	size_t n_live;
	bool *deferred; /* not wanted: decoded last, passed over when skipped */
	bool *done;     /* decoded (under lock) */
	size_t img_next;  /* the block the reader delivers next, in image order */
	bool dropping;    /* past the image's end: decoding the deferred blocks */
	size_t drop_pos;  /* then, the position it decodes next */
	uint8_t *scratch; /* where their output goes */
	struct xz_dec *cur; /* the reader's */
	enum xz_mode mode;

	/* Shared with the helper, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t helper;
	bool helper_started, quit;
	size_t next_claim, ahead_block; /* positions */
	enum { AHEAD_IDLE, AHEAD_WORKING, AHEAD_READY } ahead_state;
	struct xz_dec *ahead; /* the helper's while WORKING, the reader's otherwise */
	uint8_t *buf;
	size_t buf_size, buf_len, buf_pos;
};

struct xz_state {
	lzma_stream strm;
	bool done;
	/* liblzma holds no output: it needs input to make progress. */
	bool drained;
	struct xz_par *par; /* non-NULL: decoding by blocks */
};

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

static void dec_free_filters(struct xz_dec *d)
{
	for (size_t i = 0; i < LZMA_FILTERS_MAX && d->filters[i].id != LZMA_VLI_UNKNOWN; i++) {
		free(d->filters[i].options);
		d->filters[i].options = NULL;
	}
	d->filters[0].id = LZMA_VLI_UNKNOWN;
}

/* Reads and checks block @i's header into d->opts and d->filters. */
static int dec_header(struct xz_par *p, struct xz_dec *d, size_t i)
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
	dec_free_filters(d);
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

static int dec_start(struct xz_par *p, struct xz_dec *d, size_t i)
{
	lzma_block *block = &d->opts;
	lzma_ret ret;

	if (dec_header(p, d, i) < 0)
		return d->err;
	ret = lzma_block_decoder(&d->strm, block);
	/* The decoder copied the filter options it needs. */
	dec_free_filters(d);
	if (ret != LZMA_OK) {
		dec_fail(d, lzma_errno(ret), lzma_why(ret));
		return d->err;
	}
	d->in_pos += block->header_size;
	return 0;
}

/* Decodes up to @len bytes of the block into @out; returns how many, or
 * -errno (d->err). d->finished once the block and its check are through. */
static ssize_t dec_run(struct xz_par *p, struct xz_dec *d, uint8_t *out, size_t len)
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

static void *xz_helper(void *arg)
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
			if (p->quit || (p->ahead_state == AHEAD_IDLE && p->next_claim < p->n_blocks))
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
		if (dec_start(p, d, i) == 0) {
			while (p->buf_len < want && !d->finished && !d->err) {
				ssize_t n = dec_run(p, d, p->buf + p->buf_len, want - p->buf_len);

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

/* ---- the reader's side -------------------------------------------------- */

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

static ssize_t par_read(struct bmap_source *s, struct xz_par *p, uint8_t *buf, size_t len);

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
	while ((n = par_read(s, p, p->scratch, XZ_IN_SIZE)) > 0)
		;
	return n;
}

static ssize_t par_read(struct bmap_source *s, struct xz_par *p, uint8_t *buf, size_t len)
{
	for (;;) {
		ssize_t n;

		switch (p->mode) {
		case XZ_STREAM:
			n = dec_run(p, p->cur, buf, len);
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
				if (!p->dropping && p->n_live < p->n_blocks)
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
				if (dec_start(p, p->cur, b) < 0)
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
static int64_t par_skip(struct bmap_source *s, struct xz_par *p, uint64_t n)
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
			got = par_read(s, p, p->scratch, want);
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
 * decoded. */
static void par_want(struct xz_par *p, const struct bmap_map *map)
{
	size_t n_ranges = bmap_map_get_range_count(map), r = 0, live = 0;
	uint64_t start = 0;

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
	for (size_t b = 0; b < p->n_blocks; b++)
		if (p->deferred[b])
			p->order[live++] = b;
}

static void dec_free(struct xz_dec *d)
{
	if (!d)
		return;
	lzma_end(&d->strm);
	dec_free_filters(d);
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

static void par_free(struct xz_par *p)
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

/* 1: the source is decoded by blocks; 0: it is not for that; -errno. */
static int par_open(struct bmap_source *s, struct xz_par **ret)
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
	if (!p->blocks || !p->order || !p->deferred || !p->done || !p->cur || !p->ahead ||
	    p->n_blocks != n) {
		par_free(p);
		return source_nomem(s);
	}
	/* The second decoder's window and the look-ahead buffer share
	 * XZ_PAR_BUDGET: a big window (xz -8, -9) gets a smaller buffer, or
	 * one decoder only. (A damaged first header is the reader's to
	 * report.) */
	if (dec_header(p, p->cur, 0) == 0) {
		window = lzma_raw_decoder_memusage(p->cur->filters);
		dec_free_filters(p->cur);
	}
	p->cur->err = 0;
	if (window + XZ_AHEAD_MIN > XZ_PAR_BUDGET) {
		par_free(p);
		return 0;
	}
	p->buf_size = max_out < ahead_max() ? (size_t)max_out : ahead_max();
	if (p->buf_size > XZ_PAR_BUDGET - window)
		p->buf_size = (size_t)(XZ_PAR_BUDGET - window);
	if (p->buf_size == 0)
		p->buf_size = 1;
	p->buf = malloc(p->buf_size);
	if (!p->buf) {
		par_free(p);
		return source_nomem(s);
	}
	*ret = p;
	return 1;
}

/* ---- the codec ------------------------------------------------------------ */

static int xz_init(struct bmap_source *s)
{
	struct xz_state *x = calloc(1, sizeof(*x));
	lzma_stream init = LZMA_STREAM_INIT;
	lzma_ret ret;
	int r;

	if (!x)
		return source_nomem(s);
	x->strm = init;
	x->drained = true;
	r = par_open(s, &x->par);
	if (r < 0) {
		free(x);
		return r;
	}
	if (r > 0) {
		s->codec_state = x;
		return 0;
	}
#if LZMA_VERSION >= 50040002
	{
		/* From a pipe, liblzma's threaded decoder, but only as far as
		 * its whole-block buffers fit in XZ_MEMLIMIT_THREADING; beyond
		 * that it decodes in one thread. */
		lzma_mt mt;

		memset(&mt, 0, sizeof(mt));
		mt.flags = LZMA_CONCATENATED;
		mt.threads = 2;
		mt.timeout = 0; /* block until output or end: we have nothing else to do */
		mt.memlimit_threading = XZ_MEMLIMIT_THREADING;
		mt.memlimit_stop = UINT64_MAX;
		ret = lzma_stream_decoder_mt(&x->strm, &mt);
	}
#else
	ret = lzma_stream_decoder(&x->strm, UINT64_MAX, LZMA_CONCATENATED);
#endif
	if (ret != LZMA_OK) {
		free(x);
		if (ret == LZMA_MEM_ERROR)
			return source_nomem(s);
		return bmap_error(s->ctx, -EINVAL, "cannot set up the xz decoder for %s (error %d)",
				  s->what, (int)ret);
	}
	s->codec_state = x;
	return 0;
}

static ssize_t xz_read(struct bmap_source *s, void *buf, size_t len)
{
	struct xz_state *x = s->codec_state;

	if (x->par)
		return par_read(s, x->par, buf, len);
	if (x->done)
		return 0;
	x->strm.next_out = buf;
	x->strm.avail_out = len;
	while (x->strm.avail_out > 0) {
		lzma_action action;
		lzma_ret ret;

		if (s->in_avail == 0 && x->drained) {
			ssize_t n = source_fill(s);

			if (n < 0)
				return n;
		}
		/* With LZMA_CONCATENATED only LZMA_FINISH lets liblzma say
		 * whether the input ended at a stream boundary. */
		action = s->in_avail == 0 && s->in_eof ? LZMA_FINISH : LZMA_RUN;
		x->strm.next_in = s->in_next;
		x->strm.avail_in = s->in_avail;
		ret = lzma_code(&x->strm, action);
		source_consume(s, s->in_avail - x->strm.avail_in);

		switch (ret) {
		case LZMA_OK:
			break;
		case LZMA_STREAM_END:
			x->done = true;
			return (ssize_t)(len - x->strm.avail_out);
		case LZMA_BUF_ERROR:
			/* No progress twice in a row: only at LZMA_FINISH, when
			 * the input stopped inside a stream. */
			return source_truncated(s);
		case LZMA_MEM_ERROR:
			return source_nomem(s);
		case LZMA_MEMLIMIT_ERROR:
			return bmap_error(s->ctx, -ENOMEM,
					  "%s needs more memory to decode than allowed", s->what);
		case LZMA_FORMAT_ERROR:
			return source_corrupt(s, "not in the .xz format");
		case LZMA_OPTIONS_ERROR:
			return source_corrupt(s, "unsupported compression options");
		case LZMA_DATA_ERROR:
			return source_corrupt(s, "compressed data is corrupt");
		default:
			return source_corrupt(s, "decoder error");
		}
		x->drained = x->strm.avail_out > 0;
	}
	return (ssize_t)(len - x->strm.avail_out);
}

static int64_t xz_skip(struct bmap_source *s, uint64_t n)
{
	struct xz_state *x = s->codec_state;

	return x->par ? par_skip(s, x->par, n) : 0;
}

static void xz_want(struct bmap_source *s, const struct bmap_map *map)
{
	struct xz_state *x = s->codec_state;

	/* Only before the first block is started. */
	if (x->par && x->par->img_next == 0 && x->par->mode == XZ_NEXT && !x->par->helper_started)
		par_want(x->par, map);
}

static void xz_free(struct bmap_source *s)
{
	struct xz_state *x = s->codec_state;

	par_free(x->par);
	lzma_end(&x->strm);
	free(x);
	s->codec_state = NULL;
}

const struct source_codec source_codec_xz = {
    .comp = BMAP_COMP_XZ,
    .init = xz_init,
    .read = xz_read,
    .skip = xz_skip,
    .want = xz_want,
    .free = xz_free,
};
