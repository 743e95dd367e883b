/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* zstd images: libzstd's streaming decoder, concatenated and skippable frames. */
#include <errno.h>
#include <stdlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "source-codec.h"

/* 512 MiB: any image made with --long up to 29 or level 22. The frame header
 * decides the allocation, so a damaged or hostile image could otherwise ask
 * for 2 GiB (found by fuzz_source). */
#define SOURCE_ZSTD_WINDOW_LOG_MAX 29

struct zstd_state {
	ZSTD_DCtx *dctx;
	/* Inside a frame: the input must not end here. */
	bool in_frame;
	/* The decoder holds no output: it needs input to make progress. */
	bool drained;
};

static int zstd_init(struct bmap_source *s)
{
	struct zstd_state *z = calloc(1, sizeof(*z));

	if (!z)
		return source_nomem(s);
	z->drained = true;
	z->dctx = ZSTD_createDCtx();
	if (!z->dctx) {
		free(z);
		return source_nomem(s);
	}
	/* Images made with --long or -19 and up use windows beyond the
	 * default 128 MiB limit; the window is the decoder's only big buffer. */
	ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax, SOURCE_ZSTD_WINDOW_LOG_MAX);
	s->codec_state = z;
	return 0;
}

static ssize_t zstd_read(struct bmap_source *s, void *buf, size_t len)
{
	struct zstd_state *z = s->codec_state;
	ZSTD_outBuffer out = {buf, len, 0};

	while (out.pos < out.size) {
		ZSTD_inBuffer in;
		size_t ret;

		if (s->in_avail == 0 && z->drained) {
			ssize_t n = source_fill(s);

			if (n < 0)
				return n;
			if (n == 0) {
				if (z->in_frame)
					return source_truncated(s);
				break;
			}
		}
		/* Between frames: zero padding ends the image, as with gzip;
		 * anything but a frame or skippable frame is garbage. */
		if (!z->in_frame && s->in_avail > 0) {
			uint8_t b = s->in_next[0];

			if (b == 0) {
				int r = source_check_padding(s);

				if (r < 0)
					return r;
				break;
			}
			if (b != 0x28 && (b & 0xf0) != 0x50)
				return source_trailing_garbage(s);
		}

		in = (ZSTD_inBuffer){s->in_next, s->in_avail, 0};
		ret = ZSTD_decompressStream(z->dctx, &out, &in);
		source_consume(s, in.pos);
		if (ZSTD_isError(ret)) {
			if (ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge)
				return bmap_error(s->ctx, -ENOMEM,
						  "%s asks for a zstd window larger than 512 MiB "
						  "(made with --long=30 or more?); refused",
						  s->what);
			return source_corrupt(s, ZSTD_getErrorName(ret));
		}
		/* 0: a frame ended and is fully flushed; the next call starts
		 * the next frame, if any. */
		z->in_frame = ret != 0;
		/* Output left over means zstd flushed all it had; a full output
		 * buffer may leave decoded data inside to be flushed first. A
		 * finished frame is fully flushed. */
		z->drained = !z->in_frame || out.pos < out.size;
	}
	return (ssize_t)out.pos;
}

static void zstd_free(struct bmap_source *s)
{
	struct zstd_state *z = s->codec_state;

	ZSTD_freeDCtx(z->dctx);
	free(z);
	s->codec_state = NULL;
}

const struct source_codec source_codec_zstd = {
    .comp = BMAP_COMP_ZSTD,
    .init = zstd_init,
    .read = zstd_read,
    .free = zstd_free,
};
