/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gzip images through ISA-L's igzip inflate (several times zlib's speed),
 * checking each member's header and CRC; multi-member files (pigz, cat of
 * .gz files) are read whole, and zero padding after the last member is
 * tolerated as gzip does.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

#include "source-codec.h"

struct gzip_state {
	struct inflate_state st;
	/* Inside a member: the input must not end here. */
	bool in_member;
	bool started;
	/* ISA-L holds no output: it needs input to make progress. */
	bool drained;
};

static const char *gzip_strerror(int ret)
{
	switch (ret) {
	case ISAL_INVALID_BLOCK:
		return "invalid deflate block";
	case ISAL_INVALID_SYMBOL:
		return "invalid deflate symbol";
	case ISAL_INVALID_LOOKBACK:
		return "invalid lookback distance";
	case ISAL_INVALID_WRAPPER:
		return "invalid gzip header";
	case ISAL_UNSUPPORTED_METHOD:
		return "unsupported compression method";
	case ISAL_INCORRECT_CHECKSUM:
		return "CRC mismatch";
	}
	return "inflate error";
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ISA-L says ISAL_INCORRECT_CHECKSUM for a bad CRC32 and for a bad ISIZE
 * alike: the member's trailer, the 8 bytes it just consumed (@end: after
 * them, @consumed of them in this call), tells which. */
static int gzip_checksum_error(struct bmap_source *s, const struct gzip_state *g,
			       const uint8_t *end, uint32_t consumed)
{
	char why[160];
	uint32_t crc, isize;

	if (consumed < 8)
		return source_corrupt(s, "CRC or length mismatch");
	crc = le32(end - 8);
	isize = le32(end - 4);
	if (crc == g->st.crc && isize != g->st.total_out) {
		snprintf(why, sizeof(why),
			 "length mismatch: the member's trailer says %u bytes (ISIZE, modulo 2^32), "
			 "its data is %u",
			 isize, g->st.total_out);
		return source_corrupt(s, why);
	}
	return source_corrupt(s, "CRC mismatch");
}

static int gzip_init(struct bmap_source *s)
{
	struct gzip_state *g = calloc(1, sizeof(*g));

	if (!g)
		return source_nomem(s);
	isal_inflate_init(&g->st);
	/* ISA-L parses the header and verifies CRC32 and ISIZE itself. */
	g->st.crc_flag = ISAL_GZIP;
	g->drained = true;
	s->codec_state = g;
	return 0;
}

static ssize_t gzip_read(struct bmap_source *s, void *buf, size_t len)
{
	struct gzip_state *g = s->codec_state;
	/* ISA-L counts in 32 bits; the caller's loop asks again for the rest. */
	uint32_t want = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;

	g->st.next_out = buf;
	g->st.avail_out = want;
	while (g->st.avail_out > 0) {
		uint32_t avail;
		int ret;

		if (s->in_avail == 0 && g->drained) {
			ssize_t n = source_fill(s);

			if (n < 0)
				return n;
			if (n == 0) {
				if (g->in_member || !g->started)
					return source_truncated(s);
				break;
			}
		}
		if (!g->in_member && s->in_avail > 0) {
			if (g->started && s->in_next[0] == 0) {
				int r = source_check_padding(s);

				if (r < 0)
					return r;
				break;
			}
			/* ISA-L would wait for a whole header before judging it. */
			if (g->started && s->in_next[0] != 0x1f)
				return source_trailing_garbage(s);
			if (g->started) {
				/* Another member follows: a fresh header, CRC and window. */
				isal_inflate_reset(&g->st);
				g->st.crc_flag = ISAL_GZIP;
			}
			g->in_member = true;
			g->started = true;
		}

		avail = s->in_avail > UINT32_MAX ? UINT32_MAX : (uint32_t)s->in_avail;
		g->st.next_in = (uint8_t *)s->in_next;
		g->st.avail_in = avail;
		ret = isal_inflate(&g->st);
		source_consume(s, avail - g->st.avail_in);
		if (ret == ISAL_INCORRECT_CHECKSUM && g->st.block_state == ISAL_BLOCK_FINISH)
			return gzip_checksum_error(s, g, g->st.next_in, avail - g->st.avail_in);
		if (ret < 0)
			return source_corrupt(s, gzip_strerror(ret));
		/* At a member's end ISA-L hands back what it read ahead, so
		 * s->in_next is at the next member's first byte. */
		if (g->st.block_state == ISAL_BLOCK_FINISH)
			g->in_member = false;
		/* A finished member is fully flushed; otherwise output left over
		 * means ISA-L flushed all it had and wants input. */
		g->drained = !g->in_member || g->st.avail_out > 0;
	}
	return (ssize_t)(want - g->st.avail_out);
}

static void gzip_free(struct bmap_source *s)
{
	free(s->codec_state);
	s->codec_state = NULL;
}

const struct source_codec source_codec_gzip = {
    .comp = BMAP_COMP_GZIP,
    .init = gzip_init,
    .read = gzip_read,
    .free = gzip_free,
};
