/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xz images through liblzma.
 *
 * A regular file with several blocks (as xz -T writes) is decoded by blocks,
 * two at a time, through its index (source-xz-blocks.c). Anything else (a
 * pipe, a single block, a file whose index cannot be read) goes through one
 * stream decoder: concatenated streams and stream padding, and a damaged
 * file gets the stream decoder's own diagnosis.
 */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <lzma.h>

#include "source-xz.h"

/* From a pipe: what liblzma's threaded decoder may hold. */
#define XZ_MEMLIMIT_THREADING ((uint64_t)32 << 20)

struct xz_state {
	lzma_stream strm;
	bool done;
	/* liblzma holds no output: it needs input to make progress. */
	bool drained;
	struct xz_par *par; /* non-NULL: decoding by blocks */
};

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
	r = xz_par_open(s, &x->par);
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
		return xz_par_read(s, x->par, buf, len);
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

	return x->par ? xz_par_skip(s, x->par, n) : 0;
}

static ssize_t xz_peek(struct bmap_source *s, void *buf, size_t len)
{
	struct xz_state *x = s->codec_state;

	return x->par ? xz_par_peek(s, x->par, buf, len) : -ENOTSUP;
}

static void xz_want(struct bmap_source *s, const struct bmap_map *map)
{
	struct xz_state *x = s->codec_state;

	if (x->par)
		xz_par_want(x->par, map, s->want_only);
}

static void xz_free(struct bmap_source *s)
{
	struct xz_state *x = s->codec_state;

	xz_par_free(x->par);
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
    .peek = xz_peek,
    .free = xz_free,
};
