/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lzo images: lzop files (header, then blocks of LZO1X data with the
 * adler32 or crc32 checksums the header's flags ask for) decoded with
 * liblzo2; concatenated files are read whole.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lzo/lzo1x.h>

#include "source-codec.h"

/* lzop's own limit on a block (its default is 256 KiB). */
#define LZO_MAX_BLOCK (64u * 1024 * 1024)

/* The header's flags (lzop's conf.h). */
#define F_ADLER32_D 0x00000001u
#define F_ADLER32_C 0x00000002u
#define F_H_EXTRA_FIELD 0x00000040u
#define F_CRC32_D 0x00000100u
#define F_CRC32_C 0x00000200u
#define F_MULTIPART 0x00000400u
#define F_H_FILTER 0x00000800u
#define F_H_CRC32 0x00001000u
#define F_RESERVED 0x000fc000u /* lzop refuses these too */

static const uint8_t lzop_magic[9] = {0x89, 'L', 'Z', 'O', 0x00, '\r', '\n', 0x1a, '\n'};

struct lzo_state {
	uint32_t flags;
	bool in_file; /* between a header and its end-of-stream block */
	uint64_t block; /* blocks decoded so far, for messages */
	/* A decoded block not yet read, when it did not fit the caller's buffer. */
	uint8_t *out;
	size_t out_size, out_len, out_pos;
	/* A compressed block that spans input buffers. */
	uint8_t *cbuf;
	size_t cbuf_size;
	/* The header's checksum covers the header as read. */
	uint32_t hsum;
};

static int lzop_init(struct bmap_source *s)
{
	struct lzo_state *z;

	if (lzo_init() != LZO_E_OK)
		return bmap_error(s->ctx, -ENOTSUP, "liblzo2 failed to initialise");
	z = calloc(1, sizeof(*z));
	if (!z)
		return source_nomem(s);
	s->codec_state = z;
	return 0;
}

/* @n input bytes into @buf (NULL: dropped); -EPIPE (truncated) when the
 * input ends first. Updates the header checksum while in a header. */
static int take(struct bmap_source *s, void *buf, size_t n, bool header)
{
	struct lzo_state *z = s->codec_state;
	uint8_t *p = buf;

	while (n > 0) {
		ssize_t avail = source_fill(s);
		size_t k;

		if (avail < 0)
			return (int)avail;
		if (avail == 0)
			return source_truncated(s);
		k = (size_t)avail < n ? (size_t)avail : n;
		if (header)
			z->hsum = (z->flags & F_H_CRC32) ? lzo_crc32(z->hsum, s->in_next, k)
							  : lzo_adler32(z->hsum, s->in_next, k);
		if (p) {
			memcpy(p, s->in_next, k);
			p += k;
		}
		source_consume(s, k);
		n -= k;
	}
	return 0;
}

static int take_u32(struct bmap_source *s, uint32_t *ret, bool header)
{
	uint8_t b[4];
	int r = take(s, b, 4, header);

	if (r < 0)
		return r;
	*ret = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return 0;
}

static int lzo_refuse(struct bmap_source *s, const char *why)
{
	return bmap_error(s->ctx, -ENOTSUP, "%s cannot be read: its lzop header %s", s->what, why);
}

/* One lzop header, after its magic. The checksum's kind is only known from
 * the flags, part of what it covers: the header is summed both ways until
 * then. */
static int read_header(struct bmap_source *s)
{
	struct lzo_state *z = s->codec_state;
	uint8_t b[8], name_len;
	uint32_t adler = 1, crc = 0, flags, want, sum;
	uint16_t version;
	int r;

	/* version, lib version, version needed (0.94 on), method, level: fixed
	 * fields read together up to the flags. */
	r = take(s, b, 4, false);
	if (r < 0)
		return r;
	version = (uint16_t)(b[0] << 8 | b[1]);
	adler = lzo_adler32(adler, b, 4);
	crc = lzo_crc32(crc, b, 4);
	if (version < 0x0900)
		return lzo_refuse(s, "is of a version before 0.90, which lzop itself no longer reads");
	{
		size_t more = version >= 0x0940 ? 4 : 1;
		uint8_t method;

		r = take(s, b, more, false);
		if (r < 0)
			return r;
		adler = lzo_adler32(adler, b, more);
		crc = lzo_crc32(crc, b, more);
		if (version >= 0x0940 && (uint16_t)(b[0] << 8 | b[1]) > 0x1040)
			return lzo_refuse(s, "needs an lzop newer than 1.04");
		method = version >= 0x0940 ? b[2] : b[0];
		/* 1, 2, 3: LZO1X-1, LZO1X-1(15), LZO1X-999, all one decoder. */
		if (method < 1 || method > 3)
			return lzo_refuse(s, "names a compression method other than LZO1X");
	}
	r = take(s, b, 4, false);
	if (r < 0)
		return r;
	adler = lzo_adler32(adler, b, 4);
	crc = lzo_crc32(crc, b, 4);
	flags = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	z->flags = flags;
	z->hsum = (flags & F_H_CRC32) ? crc : adler;
	if (flags & F_H_FILTER)
		return lzo_refuse(s, "asks for a filter (lzop --filter), which is not supported: "
				     "decompress it with lzop -d");
	if (flags & F_MULTIPART)
		return lzo_refuse(s, "is of a multi-part file, which is not supported");
	if (flags & F_RESERVED)
		return lzo_refuse(s, "has reserved flags set (damaged?)");
	/* mode, mtime (and its high half from 0.94 on) */
	r = take(s, NULL, version >= 0x0940 ? 12 : 8, true);
	if (r < 0)
		return r;
	r = take(s, &name_len, 1, true);
	if (r < 0)
		return r;
	r = take(s, NULL, name_len, true);
	if (r < 0)
		return r;
	sum = z->hsum;
	r = take_u32(s, &want, false);
	if (r < 0)
		return r;
	if (want != sum)
		return source_corrupt(s, "the lzop header's checksum does not match");
	if (flags & F_H_EXTRA_FIELD) {
		uint32_t len;

		z->hsum = (flags & F_H_CRC32) ? 0 : 1;
		r = take_u32(s, &len, true);
		if (r == 0)
			r = take(s, NULL, len, true);
		if (r < 0)
			return r;
		sum = z->hsum;
		r = take_u32(s, &want, false);
		if (r < 0)
			return r;
		if (want != sum)
			return source_corrupt(s, "the lzop extra field's checksum does not match");
	}
	z->in_file = true;
	z->block = 0;
	return 0;
}

/* Starts the next file when one follows (its magic), ends at the end of
 * the input or zero padding; anything else is garbage. 1: a file started. */
static int next_file(struct bmap_source *s)
{
	uint8_t m[sizeof(lzop_magic)];
	ssize_t n = source_fill(s);
	int r;

	if (n <= 0)
		return (int)n;
	if (s->in_next[0] == 0)
		return source_check_padding(s);
	if (s->in_next[0] != lzop_magic[0])
		return source_trailing_garbage(s);
	r = take(s, m, sizeof(m), false);
	if (r < 0)
		return r;
	if (memcmp(m, lzop_magic, sizeof(m)) != 0)
		return source_corrupt(s, "not an lzop file magic");
	r = read_header(s);
	return r < 0 ? r : 1;
}

static int check(struct bmap_source *s, bool crc, const void *p, size_t len, uint32_t want,
		 const char *what)
{
	struct lzo_state *z = s->codec_state;
	uint32_t got = crc ? lzo_crc32(0, p, len) : lzo_adler32(1, p, len);
	char why[128];

	if (got == want)
		return 0;
	snprintf(why, sizeof(why), "block %" PRIu64 ": the %s of its %s data does not match",
		 z->block, crc ? "crc32" : "adler32", what);
	return source_corrupt(s, why);
}

/* Decodes the next block into @dst (room for @room bytes) or into z->out;
 * 0 at the end of the image. */
static ssize_t read_block(struct bmap_source *s, uint8_t *dst, size_t room, bool *ret_in_out)
{
	struct lzo_state *z = s->codec_state;
	/* adler32 and crc32, of the uncompressed and of the compressed data */
	uint32_t dlen, clen, da = 0, dc = 0, ca = 0, cc = 0;
	bool packed;
	const uint8_t *src;
	lzo_uint out_len;
	int r;

	for (;;) {
		if (!z->in_file) {
			r = next_file(s);
			if (r <= 0)
				return r;
		}
		r = take_u32(s, &dlen, false);
		if (r < 0)
			return r;
		if (dlen != 0)
			break;
		z->in_file = false;
	}
	r = take_u32(s, &clen, false);
	if (r < 0)
		return r;
	if (dlen > LZO_MAX_BLOCK || clen > dlen)
		return source_corrupt(s, "a block's sizes are impossible");
	packed = clen < dlen;
	if (z->flags & F_ADLER32_D)
		r = take_u32(s, &da, false);
	if (r == 0 && (z->flags & F_CRC32_D))
		r = take_u32(s, &dc, false);
	if (r == 0 && packed && (z->flags & F_ADLER32_C))
		r = take_u32(s, &ca, false);
	if (r == 0 && packed && (z->flags & F_CRC32_C))
		r = take_u32(s, &cc, false);
	if (r < 0)
		return r;

	/* The compressed block where it is when the input buffer holds it. */
	if (source_fill(s) >= (ssize_t)clen) {
		src = s->in_next;
	} else {
		if (z->cbuf_size < clen) {
			free(z->cbuf);
			z->cbuf = malloc(clen);
			z->cbuf_size = z->cbuf ? clen : 0;
			if (!z->cbuf)
				return source_nomem(s);
		}
		r = take(s, z->cbuf, clen, false);
		if (r < 0)
			return r;
		src = z->cbuf;
	}
	*ret_in_out = room < dlen;
	if (*ret_in_out) {
		if (z->out_size < dlen) {
			free(z->out);
			z->out = malloc(dlen);
			z->out_size = z->out ? dlen : 0;
			if (!z->out)
				return source_nomem(s);
		}
		dst = z->out;
	}
	if (packed && (z->flags & F_ADLER32_C))
		r = check(s, false, src, clen, ca, "compressed");
	if (r == 0 && packed && (z->flags & F_CRC32_C))
		r = check(s, true, src, clen, cc, "compressed");
	if (r < 0)
		return r;
	if (!packed) {
		memcpy(dst, src, dlen);
	} else {
		out_len = dlen;
		r = lzo1x_decompress_safe(src, clen, dst, &out_len, NULL);
		if (r != LZO_E_OK || out_len != dlen)
			return source_corrupt(s, r == LZO_E_OK ? "a block decodes to another size"
							       : "an LZO1X block does not decode");
	}
	if (src == s->in_next)
		source_consume(s, clen);
	if (z->flags & F_ADLER32_D)
		r = check(s, false, dst, dlen, da, "uncompressed");
	if (r == 0 && (z->flags & F_CRC32_D))
		r = check(s, true, dst, dlen, dc, "uncompressed");
	if (r < 0)
		return r;
	z->block++;
	return (ssize_t)dlen;
}

static ssize_t lzo_read(struct bmap_source *s, void *buf, size_t len)
{
	struct lzo_state *z = s->codec_state;
	uint8_t *out = buf;
	size_t done = 0;

	while (done < len) {
		bool in_out = false;
		ssize_t n;

		if (z->out_pos < z->out_len) {
			size_t k = z->out_len - z->out_pos < len - done ? z->out_len - z->out_pos
									: len - done;

			memcpy(out + done, z->out + z->out_pos, k);
			z->out_pos += k;
			done += k;
			continue;
		}
		/* Straight into @buf when the block fits. */
		n = read_block(s, out + done, len - done, &in_out);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		if (in_out) {
			z->out_len = (size_t)n;
			z->out_pos = 0;
		} else {
			done += (size_t)n;
		}
	}
	return (ssize_t)done;
}

static void lzo_free(struct bmap_source *s)
{
	struct lzo_state *z = s->codec_state;

	free(z->out);
	free(z->cbuf);
	free(z);
	s->codec_state = NULL;
}

const struct source_codec source_codec_lzo = {
    .comp = BMAP_COMP_LZO,
    .init = lzop_init,
    .read = lzo_read,
    .free = lzo_free,
};
