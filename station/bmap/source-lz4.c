/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* lz4 images: liblz4's frame decoder, concatenated and skippable frames. */
#include <errno.h>
#include <stdlib.h>
#include <lz4frame.h>

#include "source-codec.h"

struct lz4_state {
	LZ4F_dctx *dctx;
	/* Inside a frame: the input must not end here. */
	bool in_frame;
	/* liblz4 holds no output: it needs input to make progress. */
	bool drained;
};

static int lz4_init(struct bmap_source *s)
{
	struct lz4_state *l = calloc(1, sizeof(*l));

	if (!l)
		return source_nomem(s);
	if (LZ4F_isError(LZ4F_createDecompressionContext(&l->dctx, LZ4F_VERSION))) {
		free(l);
		return source_nomem(s);
	}
	l->drained = true;
	s->codec_state = l;
	return 0;
}

static ssize_t lz4_read(struct bmap_source *s, void *buf, size_t len)
{
	struct lz4_state *l = s->codec_state;
	char *out = buf;
	size_t left = len;

	while (left > 0) {
		size_t dst_size, src_size, ret;

		if (s->in_avail == 0 && l->drained) {
			ssize_t n = source_fill(s);

			if (n < 0)
				return n;
			if (n == 0) {
				if (l->in_frame)
					return source_truncated(s);
				break;
			}
		}
		/* Between frames: zero padding ends the image, as with gzip;
		 * anything but a frame or skippable frame is garbage. */
		if (!l->in_frame && s->in_avail > 0) {
			uint8_t b = s->in_next[0];

			if (b == 0) {
				int r = source_check_padding(s);

				if (r < 0)
					return r;
				break;
			}
			if (b != 0x04 && (b & 0xf0) != 0x50)
				return source_trailing_garbage(s);
		}

		dst_size = left;
		src_size = s->in_avail;
		/* Writes straight into @buf when a whole block fits there. */
		ret = LZ4F_decompress(l->dctx, out, &dst_size, s->in_next, &src_size, NULL);
		source_consume(s, src_size);
		out += dst_size;
		left -= dst_size;
		if (LZ4F_isError(ret))
			return source_corrupt(s, LZ4F_getErrorName(ret));
		/* 0: a frame ended and is fully flushed; the context then
		 * starts on the next frame by itself. */
		l->in_frame = ret != 0;
		if (src_size == 0 && dst_size == 0 && s->in_avail > 0 && l->drained)
			return source_corrupt(s, "the decoder made no progress");
		l->drained = !l->in_frame || left > 0;
	}
	return (ssize_t)(len - left);
}

static void lz4_free(struct bmap_source *s)
{
	struct lz4_state *l = s->codec_state;

	LZ4F_freeDecompressionContext(l->dctx);
	free(l);
	s->codec_state = NULL;
}

const struct source_codec source_codec_lz4 = {
    .comp = BMAP_COMP_LZ4,
    .init = lz4_init,
    .read = lz4_read,
    .free = lz4_free,
};
