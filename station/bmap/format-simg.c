/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Android sparse images (simg, libsparse's format, magic 0xed26ff3a): a
 * file header, then chunks: RAW (blocks of data), FILL (a 4-byte pattern
 * over blocks), DONT_CARE (a hole) and CRC32 (the CRC of the image so far,
 * holes counted as zeros). Read front to back as a stream, so a sparse
 * image works from a pipe and through any codec: RAW and FILL chunks are
 * the map (a FILL of zeros is data too), which grows as the chunks go by.
 * A regular uncompressed file has its chunk headers walked at open, so its
 * map is known before the first byte is copied; without CRC32 chunks, it
 * is also read at random, through its chunk index (format-simg-index.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <isa-l/crc.h>

#include "format-simg.h"
#include "util.h"

#define SIMG_HDR 28
#define SIMG_CHUNK_HDR 12
#define SIMG_BUF (256u * 1024)

enum {
	CHUNK_RAW = SIMG_CHUNK_RAW,
	CHUNK_FILL = SIMG_CHUNK_FILL,
	CHUNK_DONT_CARE = SIMG_CHUNK_DONT_CARE,
	CHUNK_CRC32 = SIMG_CHUNK_CRC32,
};

struct simg {
	uint32_t blk_sz, total_blks, total_chunks;
	uint16_t minor, file_hdr_sz, chunk_hdr_sz;
	uint64_t size;

	/* The chunk being read: chunk - 1 (0-based), begun at dec_off. */
	uint32_t chunk;
	uint64_t dec_off;
	uint16_t type;
	uint64_t left;  /* its image bytes not read yet */
	uint8_t fill[4];
	uint64_t blocks; /* blocks of the chunks begun */
	bool ended;

	/* CRC32 of the image so far, holes as zeros: only while it can be
	 * known (a walked file without CRC32 chunks skips it). */
	uint32_t crc;
	bool crc_on;

	struct bmap_map *map;
	bool walked; /* the map came from the walk at open */
	bool map_complete;
	uint64_t n_raw, n_fill, n_dont_care, n_crc;
	uint8_t *buf; /* SIMG_BUF bytes: skipped data, fill patterns */
	struct simg_index *index; /* a walked file without CRC32 chunks */
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- CRC32 (IEEE, as zlib and libsparse) ---- */

#define CRC_POLY 0xedb88320u /* reflected: bit 31 is x^0 */

/* @a * @b modulo the CRC polynomial, both reflected. */
static uint32_t gf2_mul(uint32_t a, uint32_t b)
{
	uint32_t p = 0;

	for (int i = 0; i < 32; i++) {
		if (a & (0x80000000u >> i))
			p ^= b;
		b = (b >> 1) ^ (b & 1 ? CRC_POLY : 0); /* b *= x */
	}
	return p;
}

/* The CRC register @reg after @n more zero bytes: times x^(8n), by
 * squaring (any size in a few hundred steps). */
static uint32_t reg_shift(uint32_t reg, uint64_t n)
{
	uint32_t sq = 0x00800000u; /* x^8 */

	while (n) {
		if (n & 1)
			reg = gf2_mul(reg, sq);
		sq = gf2_mul(sq, sq);
		n >>= 1;
	}
	return reg;
}

/* The CRC of what @crc covered followed by @n zero bytes. */
static uint32_t crc32_zeros(uint32_t crc, uint64_t n)
{
	return ~reg_shift(~crc, n);
}

/* The CRC of what @crc covered followed by @k copies of the 4 bytes @q:
 * the register of q^k is built by doubling (the register is linear:
 * R(X||Y) = shift(R(X), |Y|) ^ R(Y) from a zero register), so a FILL
 * chunk of any size costs a few thousand steps, read or skipped. */
static uint32_t crc32_repeat(uint32_t crc, const uint8_t q[4], uint64_t k)
{
	uint32_t cur = ~crc32_gzip_refl(0xffffffffu, q, 4), acc = 0;
	uint64_t cur_len = 4;

	for (uint64_t left = k; left; left >>= 1) {
		if (left & 1)
			acc = reg_shift(acc, cur_len) ^ cur;
		if (left > 1) {
			cur = reg_shift(cur, cur_len) ^ cur;
			cur_len *= 2;
		}
	}
	return ~(reg_shift(~crc, 4 * k) ^ acc);
}

static void crc_update(struct simg *g, const void *buf, size_t len)
{
	if (g->crc_on)
		g->crc = crc32_gzip_refl(g->crc, buf, len);
}

/* Fills @len bytes at image offset @off with the chunk's pattern: chunks
 * start on blocks, blocks are multiples of 4, so the phase is @off % 4. */
static void fill_pattern(const struct simg *g, uint8_t *p, size_t len, uint64_t off)
{
	uint32_t v;

	memcpy(&v, g->fill, 4);
	if (v == 0) {
		memset(p, 0, len);
		return;
	}
	/* Four bytes at the right phase, then doubled: the pattern's period
	 * divides every length copied, so the phase holds. */
	for (size_t i = 0; i < len && i < 4; i++)
		p[i] = g->fill[(off + i) & 3];
	for (size_t done = 4; done < len;) {
		size_t k = done < len - done ? done : len - done;

		memcpy(p + done, p, k);
		done += k;
	}
}

/* The CRC over @n image bytes at @off that are not read into a buffer. */
static void crc_virtual(struct simg *g, uint64_t off, uint64_t n)
{
	if (!g->crc_on || n == 0)
		return;
	uint8_t head[4], q[4];
	size_t h;

	if (g->type == CHUNK_DONT_CARE || le32(g->fill) == 0) {
		g->crc = crc32_zeros(g->crc, n);
		return;
	}
	/* Up to the next multiple of 4, whole patterns, what is left. */
	h = (size_t)((4 - (off & 3)) & 3);
	if (h > n)
		h = (size_t)n;
	fill_pattern(g, head, h, off);
	g->crc = crc32_gzip_refl(g->crc, head, h);
	off += h;
	n -= h;
	fill_pattern(g, q, 4, 0);
	g->crc = crc32_repeat(g->crc, q, n / 4);
	fill_pattern(g, head, (size_t)(n & 3), 0);
	g->crc = crc32_gzip_refl(g->crc, head, (size_t)(n & 3));
}

/* ---- chunks ---- */

static int simg_bad(struct bmap_source *s, struct simg *g, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int simg_bad(struct bmap_source *s, struct simg *g, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return bmap_error(s->ctx, -EBADMSG,
			  "%s is not a valid Android sparse image: chunk %" PRIu32 " of %" PRIu32
			  " (at byte %" PRIu64 "): %s",
			  s->what, g->chunk, g->total_chunks, g->dec_off, why);
}

static int simg_truncated(struct bmap_source *s, struct simg *g, const char *where)
{
	return bmap_error(s->ctx, -EPIPE,
			  "%s is truncated: the Android sparse image ends %s chunk %" PRIu32
			  " of %" PRIu32 " (at byte %" PRIu64 ")",
			  s->what, where, g->chunk, g->total_chunks, g->dec_off);
}

/* Checks chunk header @h (chunk g->chunk, 1-based, already counted):
 * its type, and that its sizes agree; *@ret_data: bytes after the header. */
static int chunk_check(struct bmap_source *s, struct simg *g, const uint8_t *h,
		       uint64_t *ret_data)
{
	uint16_t type = le16(h);
	uint32_t blks = le32(h + 4), total = le32(h + 8);
	uint64_t data;

	switch (type) {
	case CHUNK_RAW:
		data = (uint64_t)blks * g->blk_sz;
		break;
	case CHUNK_FILL:
		data = 4;
		break;
	case CHUNK_DONT_CARE:
		data = 0;
		break;
	case CHUNK_CRC32:
		data = 4;
		if (blks != 0)
			return simg_bad(s, g, "a CRC32 chunk of %" PRIu32 " blocks", blks);
		break;
	default:
		return simg_bad(s, g, "unknown chunk type 0x%04" PRIx16, type);
	}
	if ((uint64_t)total != g->chunk_hdr_sz + data)
		return simg_bad(s, g,
				"its size is %" PRIu32 " bytes, a chunk of type 0x%04" PRIx16
				" and %" PRIu32 " blocks takes %" PRIu64,
				total, type, blks, g->chunk_hdr_sz + data);
	if (blks > g->total_blks - g->blocks)
		return simg_bad(s, g,
				"its %" PRIu32 " blocks go past the %" PRIu32
				" blocks the header gives the image",
				blks, g->total_blks);
	*ret_data = data;
	return 0;
}

static int chunk_counted(struct simg *g, uint16_t type)
{
	switch (type) {
	case CHUNK_RAW:
		return (int)++g->n_raw;
	case CHUNK_FILL:
		return (int)++g->n_fill;
	case CHUNK_DONT_CARE:
		return (int)++g->n_dont_care;
	default:
		return (int)++g->n_crc;
	}
}

/* After the last chunk: the blocks must add up, and a stream is read to
 * its end so that its decoder's own checks run (trailing bytes are
 * ignored, as libsparse does). */
static int simg_finish(struct bmap_source *s, struct simg *g)
{
	if (g->blocks != g->total_blks)
		return bmap_error(s->ctx, -EBADMSG,
				  "%s is not a valid Android sparse image: its %" PRIu32
				  " chunks hold %" PRIu64 " blocks, the header says %" PRIu32,
				  s->what, g->total_chunks, g->blocks, g->total_blks);
	if (!source_dec_random(s)) {
		ssize_t n;

		while ((n = source_dec_read(s, g->buf, SIMG_BUF)) > 0)
			;
		if (n < 0)
			return (int)n;
	}
	g->ended = true;
	g->map_complete = true;
	return 0;
}

/* Reads the next chunk's header (and a FILL's pattern, a CRC32's value). */
static int next_chunk(struct bmap_source *s, struct simg *g)
{
	uint8_t h[SIMG_CHUNK_HDR], v[4];
	uint64_t data, off;
	ssize_t n;
	int r;

	if (g->chunk == g->total_chunks)
		return simg_finish(s, g);
	g->dec_off = s->dec_pos;
	g->chunk++;
	n = source_dec_read(s, h, sizeof(h));
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(h) || source_dec_skip(s, g->chunk_hdr_sz - SIMG_CHUNK_HDR) < 0)
		return s->err ? s->err : simg_truncated(s, g, "inside the header of");
	r = chunk_check(s, g, h, &data);
	if (r < 0)
		return r;
	g->type = le16(h);
	if (!g->walked)
		chunk_counted(g, g->type);
	if (data == 4) {
		n = source_dec_read(s, v, 4);
		if (n < 0)
			return (int)n;
		if (n < 4)
			return simg_truncated(s, g, "inside");
	}
	off = g->blocks * g->blk_sz;
	g->left = (uint64_t)le32(h + 4) * g->blk_sz;
	g->blocks += le32(h + 4);
	if (g->type == CHUNK_FILL)
		memcpy(g->fill, v, 4);
	if (g->type == CHUNK_CRC32 && g->crc_on && le32(v) != g->crc)
		return simg_bad(s, g,
				"the CRC32 chunk says 0x%08" PRIx32 ", the image before it gives "
				"0x%08" PRIx32 ": the data is corrupt",
				le32(v), g->crc);
	if (!g->walked && (g->type == CHUNK_RAW || g->type == CHUNK_FILL) &&
	    source_map_add(g->map, off, g->left) < 0)
		return source_nomem(s);
	return 0;
}

/* Consumes up to @len image bytes of the current chunk into @p (NULL:
 * skipped); returns how many (0 at the end of the image) or -errno. */
static ssize_t simg_take(struct bmap_source *s, struct simg *g, uint8_t *p, uint64_t len)
{
	uint64_t off = s->out_pos, n;
	int r;

	while (g->left == 0) {
		if (g->ended)
			return 0;
		r = next_chunk(s, g);
		if (r < 0)
			return r;
	}
	n = len < g->left ? len : g->left;
	if (g->type == CHUNK_RAW) {
		/* Skipped data is still read for the CRC, unless nobody checks it. */
		for (uint64_t done = 0; done < n;) {
			size_t k = n - done < SIMG_BUF ? (size_t)(n - done) : SIMG_BUF;
			uint8_t *to = p ? p + done : g->buf;
			ssize_t got;

			if (!p && !g->crc_on) {
				if (source_dec_skip(s, n) < 0)
					return s->err ? s->err : simg_truncated(s, g, "inside");
				break;
			}
			got = source_dec_read(s, to, k);
			if (got < 0)
				return got;
			if ((size_t)got < k)
				return simg_truncated(s, g, "inside");
			crc_update(g, to, k);
			done += k;
		}
	} else if (p) {
		if (g->type == CHUNK_DONT_CARE)
			memset(p, 0, (size_t)n);
		else
			fill_pattern(g, p, (size_t)n, off);
		crc_update(g, p, (size_t)n);
	} else {
		crc_virtual(g, off, n);
	}
	g->left -= n;
	return (ssize_t)n;
}

static ssize_t simg_read(struct bmap_source *s, void *buf, size_t len)
{
	return simg_take(s, s->fmt_state, buf, len);
}

static int simg_skip(struct bmap_source *s, uint64_t n)
{
	struct simg *g = s->fmt_state;
	uint64_t pos = s->out_pos, end = pos + n;

	/* bmap_source_skip moves out_pos once it is done: simg_take reads
	 * the offset of a fill's phase from it, so it follows here. */
	while (s->out_pos < end) {
		ssize_t k = simg_take(s, g, NULL, end - s->out_pos);

		if (k < 0) {
			s->out_pos = pos;
			return (int)k;
		}
		if (k == 0) {
			s->out_pos = pos;
			return bmap_error(s->ctx, -EPIPE,
					  "%s is truncated: its image ends after %" PRIu64
					  " bytes, %" PRIu64 " bytes short of the data to skip",
					  s->what, g->size, end - g->size);
		}
		s->out_pos += (uint64_t)k;
	}
	s->out_pos = pos;
	return 0;
}

static int simg_next_data(struct bmap_source *s, uint64_t *ret_len)
{
	struct simg *g = s->fmt_state;
	int r;

	for (;;) {
		while (g->left == 0) {
			if (g->ended) {
				*ret_len = 0;
				return 0;
			}
			r = next_chunk(s, g);
			if (r < 0)
				return r;
		}
		if (g->type != CHUNK_DONT_CARE)
			break;
		crc_virtual(g, s->out_pos, g->left);
		s->out_pos += g->left;
		g->left = 0;
	}
	*ret_len = g->left;
	return 0;
}

static int64_t simg_run(struct bmap_source *s, bool *ret_zero)
{
	struct simg *g = s->fmt_state;
	int r;

	while (g->left == 0) {
		if (g->ended)
			return 0;
		r = next_chunk(s, g);
		if (r < 0)
			return r;
	}
	*ret_zero = g->type == CHUNK_DONT_CARE || (g->type == CHUNK_FILL && le32(g->fill) == 0);
	return g->left > INT64_MAX ? INT64_MAX : (int64_t)g->left;
}

/* ---- opening ---- */

/* A regular uncompressed file: every chunk header is read (pread, the
 * file position stays) and checked, so the map is known at once. */
static int simg_walk(struct bmap_source *s, struct simg *g)
{
	uint64_t off = g->file_hdr_sz, size, data;
	struct stat st;
	uint8_t h[SIMG_CHUNK_HDR];
	int r;

	if (fstat(s->fd, &st) < 0)
		return bmap_error(s->ctx, -errno, "cannot stat %s: %m", s->what);
	size = (uint64_t)st.st_size;
	/* No index past SIMG_INDEX_MAX chunks, nor without memory for it:
	 * such an image is read as a stream. */
	g->index = simg_index_new(s->fd, g->size, g->total_chunks);
	for (g->chunk = 1; g->chunk <= g->total_chunks; g->chunk++) {
		ssize_t n = off <= size ? loop_pread(s->fd, h, sizeof(h), off) : 0;
		uint64_t voff = g->blocks * g->blk_sz;

		g->dec_off = off;
		if (n < 0)
			return bmap_error(s->ctx, (int)n, "cannot read %s: %s", s->what,
					  strerror((int)-n));
		if ((size_t)n < sizeof(h))
			return simg_truncated(s, g, "inside the header of");
		r = chunk_check(s, g, h, &data);
		if (r < 0)
			return r;
		if (off + g->chunk_hdr_sz + data > size)
			return simg_truncated(s, g, "inside");
		if (g->index) {
			uint8_t fill[4];

			if (le16(h) == CHUNK_FILL &&
			    loop_pread(s->fd, fill, 4, off + g->chunk_hdr_sz) != 4)
				return simg_truncated(s, g, "inside");
			if (simg_index_add(g->index, le16(h), voff, (uint64_t)le32(h + 4) * g->blk_sz,
					   off + g->chunk_hdr_sz,
					   le16(h) == CHUNK_FILL ? fill : NULL) < 0)
				g->index = simg_index_free(g->index);
		}
		off += g->chunk_hdr_sz + data;
		g->blocks += le32(h + 4);
		if (chunk_counted(g, le16(h)) < 0)
			return -EINVAL;
		if ((le16(h) == CHUNK_RAW || le16(h) == CHUNK_FILL) &&
		    source_map_add(g->map, voff, (uint64_t)le32(h + 4) * g->blk_sz) < 0)
			return source_nomem(s);
	}
	if (g->blocks != g->total_blks)
		return simg_finish(s, g);
	g->chunk = 0;
	g->blocks = 0;
	g->walked = true;
	g->map_complete = true;
	g->crc_on = g->n_crc > 0;
	/* CRC32 chunks are checked: front to back, as a stream. */
	if (g->n_crc > 0)
		g->index = simg_index_free(g->index);
	return 0;
}

static void simg_free(struct bmap_source *s)
{
	struct simg *g = s->fmt_state;

	bmap_map_free(g->map);
	simg_index_free(g->index);
	free(g->buf);
	free(g);
	s->fmt_state = NULL;
}

static int simg_open(struct bmap_source *s)
{
	struct simg *g;
	uint8_t h[SIMG_HDR];
	uint32_t bs;
	ssize_t n;
	int r;

	g = calloc(1, sizeof(*g));
	if (!g)
		return source_nomem(s);
	s->fmt_state = g;
	g->buf = malloc(SIMG_BUF);
	if (!g->buf)
		return source_nomem(s);
	n = source_dec_read(s, h, sizeof(h));
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(h))
		return bmap_error(s->ctx, -EPIPE,
				  "%s is truncated: it ends inside the Android sparse image header",
				  s->what);
	g->minor = le16(h + 6);
	g->file_hdr_sz = le16(h + 8);
	g->chunk_hdr_sz = le16(h + 10);
	g->blk_sz = le32(h + 12);
	g->total_blks = le32(h + 16);
	g->total_chunks = le32(h + 20);
	if (le16(h + 4) != 1)
		return bmap_error(s->ctx, -EPROTONOSUPPORT,
				  "%s is an Android sparse image of major version %" PRIu16
				  ": only version 1 is known",
				  s->what, le16(h + 4));
	if (g->file_hdr_sz < SIMG_HDR || g->chunk_hdr_sz < SIMG_CHUNK_HDR || g->blk_sz == 0 ||
	    g->blk_sz % 4)
		return bmap_error(s->ctx, -EBADMSG,
				  "%s is not a valid Android sparse image: header of %" PRIu16
				  " bytes, chunk headers of %" PRIu16 ", blocks of %" PRIu32
				  " (at least 28, 12, and a multiple of 4)",
				  s->what, g->file_hdr_sz, g->chunk_hdr_sz, g->blk_sz);
	/* A larger header (a later minor version) is skipped. */
	if (source_dec_skip(s, g->file_hdr_sz - SIMG_HDR) < 0)
		return s->err ? s->err
			      : bmap_error(s->ctx, -EPIPE,
					   "%s is truncated: it ends inside the Android sparse "
					   "image header",
					   s->what);
	g->size = (uint64_t)g->total_blks * g->blk_sz;
	/* The map's blocks: the largest power of two that divides the
	 * sparse blocks (4096 for every image libsparse writes). */
	bs = g->blk_sz & -g->blk_sz;
	r = bmap_map_new(s->ctx, g->size, bs < 512 ? 512 : bs, &g->map);
	if (r < 0)
		return r;
	g->crc_on = true;
	g->crc = 0;
	if (source_dec_random(s))
		return simg_walk(s, g);
	return 0;
}

static const struct bmap_map *simg_map(struct bmap_source *s, bool *ret_complete)
{
	struct simg *g = s->fmt_state;

	*ret_complete = g->map_complete;
	return g->map;
}

static void simg_info(struct bmap_source *s, struct bmap_format_info *ret)
{
	struct simg *g = s->fmt_state;

	ret->virtual_size = g->size;
	snprintf(ret->version, sizeof(ret->version), "1.%" PRIu16, g->minor);
	ret->cluster_size = g->blk_sz;
	ret->subcluster_size = g->blk_sz;
	ret->raw_chunks = g->n_raw;
	ret->fill_chunks = g->n_fill;
	ret->dont_care_chunks = g->n_dont_care;
	ret->crc_chunks = g->n_crc;
	ret->counts_known = g->map_complete;
}

static bool simg_random(const struct bmap_source *s)
{
	const struct simg *g = s->fmt_state;

	return g->index != NULL;
}

static ssize_t simg_pread(struct bmap_source *s, void *buf, size_t len, uint64_t off)
{
	const struct simg *g = s->fmt_state;

	return simg_index_pread(s, g->index, buf, len, off);
}

static int64_t simg_prun(struct bmap_source *s, uint64_t off, uint64_t max, bool *ret_zero)
{
	const struct simg *g = s->fmt_state;

	return simg_index_run(g->index, off, max, ret_zero);
}

const struct source_format source_format_simg = {
	.format = BMAP_FORMAT_SIMG,
	.open = simg_open,
	.read = simg_read,
	.skip = simg_skip,
	.next_data = simg_next_data,
	.run = simg_run,
	.pread = simg_pread,
	.random = simg_random,
	.prun = simg_prun,
	.map = simg_map,
	.info = simg_info,
	.free = simg_free,
};
