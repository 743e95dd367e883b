/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bzip2 images through libbz2, including the concatenated streams that
 * pbzip2 and lbzip2 write.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <bzlib.h>

#include "source-codec.h"

struct bzip2_state {
	bz_stream strm;
	bool live;	/* strm is initialised and must be ended */
	bool in_stream; /* the input must not end here */
	bool started;
	/* libbz2 holds no output: it needs input to make progress. */
	bool drained;
};

static int bzip2_setup(struct bmap_source *s, struct bzip2_state *b)
{
	int ret;

	b->strm = (bz_stream){0};
	ret = BZ2_bzDecompressInit(&b->strm, 0, 0);
	if (ret != BZ_OK) {
		if (ret == BZ_MEM_ERROR)
			return source_nomem(s);
		return bmap_error(s->ctx, -EINVAL,
				  "cannot set up the bzip2 decoder for %s (error %d)", s->what,
				  ret);
	}
	b->live = true;
	return 0;
}

static int bzip2_init(struct bmap_source *s)
{
	struct bzip2_state *b = calloc(1, sizeof(*b));
	int r;

	if (!b)
		return source_nomem(s);
	r = bzip2_setup(s, b);
	if (r < 0) {
		free(b);
		return r;
	}
	b->drained = true;
	s->codec_state = b;
	return 0;
}

static const char *bzip2_strerror(int ret)
{
	switch (ret) {
	case BZ_DATA_ERROR:
		return "CRC mismatch or invalid block";
	case BZ_DATA_ERROR_MAGIC:
		return "not a bzip2 stream";
	}
	return "decoder error";
}

static ssize_t bzip2_read(struct bmap_source *s, void *buf, size_t len)
{
	struct bzip2_state *b = s->codec_state;
	/* libbz2 counts in unsigned int; the caller's loop asks for the rest. */
	unsigned int want = len > UINT_MAX ? UINT_MAX : (unsigned int)len;

	b->strm.next_out = buf;
	b->strm.avail_out = want;
	while (b->strm.avail_out > 0) {
		unsigned int avail;
		int ret, r;

		if (s->in_avail == 0 && b->drained) {
			ssize_t n = source_fill(s);

			if (n < 0)
				return n;
			if (n == 0) {
				if (b->in_stream)
					return source_truncated(s);
				break;
			}
		}
		if (!b->in_stream) {
			if (b->started && s->in_next[0] == 0) {
				r = source_check_padding(s);
				if (r < 0)
					return r;
				break;
			}
			if (b->started && s->in_next[0] != 'B')
				return source_trailing_garbage(s);
			if (b->started) {
				/* Another stream follows: libbz2 has no reset. */
				char *out = b->strm.next_out;
				unsigned int left = b->strm.avail_out;

				BZ2_bzDecompressEnd(&b->strm);
				b->live = false;
				r = bzip2_setup(s, b);
				if (r < 0)
					return r;
				b->strm.next_out = out;
				b->strm.avail_out = left;
			}
			b->in_stream = true;
			b->started = true;
		}

		avail = s->in_avail > UINT_MAX ? UINT_MAX : (unsigned int)s->in_avail;
		b->strm.next_in = (char *)s->in_next;
		b->strm.avail_in = avail;
		ret = BZ2_bzDecompress(&b->strm);
		source_consume(s, avail - b->strm.avail_in);
		if (ret == BZ_STREAM_END)
			b->in_stream = false;
		else if (ret == BZ_MEM_ERROR)
			return source_nomem(s);
		else if (ret != BZ_OK)
			return source_corrupt(s, bzip2_strerror(ret));
		/* A finished stream is fully flushed. */
		b->drained = !b->in_stream || b->strm.avail_out > 0;
	}
	return (ssize_t)(want - b->strm.avail_out);
}

static void bzip2_free(struct bmap_source *s)
{
	struct bzip2_state *b = s->codec_state;

	if (b->live)
		BZ2_bzDecompressEnd(&b->strm);
	free(b);
	s->codec_state = NULL;
}

const struct source_codec source_codec_bzip2 = {
    .comp = BMAP_COMP_BZIP2,
    .init = bzip2_init,
    .read = bzip2_read,
    .free = bzip2_free,
};
