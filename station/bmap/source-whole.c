/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Finding that a local compressed image is cut short before anything is
 * decoded from it, so that a truncated .zst, .tar.xz, ... is refused before
 * the destination is opened rather than after part of it was written: each
 * codec's framing is walked (or its end structures read) with pread(), and
 * a .tar.gz, whose gzip has neither an index nor an end marker, is decoded
 * once (a plain .gz is not: see gzip_walk()).
 * Pipes and URLs cannot be read twice and are not checked.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lzma.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "source-codec.h"
#include "util.h"

#define WHOLE_BUF_SIZE (64u * 1024)

/* The file read through a window: headers a few bytes apart cost one
 * pread() between them, headers far apart one each. Offsets are relative to @base (the image's start
 * in the file). */
struct whole {
	struct bmap_source *s;
	uint64_t base, size;
	uint64_t win_off;
	size_t win_len;
	uint8_t win[WHOLE_BUF_SIZE];
	/* Set by the walkers: where the cut structure started, what it is. */
	char detail[512];
};

/* The @len (<= WHOLE_BUF_SIZE) bytes at @off: 0 with *@ret, 1 when the file ends
 * before them, -errno. */
static int at(struct whole *w, uint64_t off, size_t len, const uint8_t **ret)
{
	ssize_t n;

	if (off > w->size || len > w->size - off)
		return 1;
	if (off < w->win_off || off + len > w->win_off + w->win_len) {
		/* A page for a header: frames of incompressible data put
		 * theirs 128 KiB apart, of zeros a few bytes apart. */
		size_t want = len > 4096 ? len : 4096;

		if (want > w->size - off)
			want = (size_t)(w->size - off);

		n = loop_pread(w->s->fd, w->win, want, w->base + off);
		if (n < 0)
			return bmap_error(w->s->ctx, (int)n, "cannot read %s: %s", w->s->what,
					  strerror((int)-n));
		w->win_off = off;
		w->win_len = (size_t)n;
		if ((size_t)n < len)
			return 1;
	}
	*ret = w->win + (off - w->win_off);
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int data_end(struct whole *w, uint64_t *ret);

/* Between frames the decoders accept zero padding to the end and refuse
 * anything else that does not start as a frame: 0 when a frame may start
 * at @off, 1 at a clean end, 2 (detail set) on such data. */
static int frame_starts(struct whole *w, uint64_t off, uint8_t first, uint8_t skippable,
			const char *codec)
{
	const uint8_t *p;
	uint64_t last = 0;
	int r = at(w, off, 1, &p);

	if (r != 0)
		return r;
	if (p[0] == first || (p[0] & 0xf0) == skippable)
		return 0;
	if (p[0] == 0) {
		r = data_end(w, &last);
		if (r < 0 || last <= off)
			return r < 0 ? r : 1;
	}
	snprintf(w->detail, sizeof(w->detail),
		 "unexpected data after the end of the %s stream at byte %" PRIu64 "%s", codec,
		 w->base + off, last ? " (after zero padding)" : "");
	return 2;
}

/* The @unit ("zstd frame") that starts at @start runs past the file's end,
 * @where in it (NULL: not said): says so in the detail; 1, as a cut. */
static int cut_at_end(struct whole *w, const char *unit, uint64_t start, const char *where)
{
	snprintf(w->detail, sizeof(w->detail),
		 "the %s that starts at byte %" PRIu64 " is cut at byte %" PRIu64
		 ", the file's end%s%s",
		 unit, w->base + start, w->base + w->size, where ? ", " : "", where ? where : "");
	return 1;
}

/* ---- zstd: frames of blocks, each with a 3-byte header ---------------- */

static int zstd_walk(struct whole *w)
{
	uint64_t off = 0;

	for (;;) {
		uint64_t start = off;
		bool tail = false;
		ZSTD_frameHeader fh;
		const uint8_t *p;
		size_t hs, zr;
		int r = frame_starts(w, off, 0x28, 0x50, "zstd");

		if (r != 0)
			return r == 1 ? 0 : r;
		r = at(w, off, 8, &p);
		if (r != 0)
			goto cut_or_err;
		if ((le32(p) & 0xfffffff0u) == ZSTD_MAGIC_SKIPPABLE_START) {
			off += 8 + (uint64_t)le32(p + 4);
			if (off > w->size)
				goto cut;
			continue;
		}
		if (le32(p) != ZSTD_MAGICNUMBER)
			return 0; /* garbage, for the decoder to name */
		/* The longest frame header is 18 bytes. */
		hs = w->size - off < ZSTD_FRAMEHEADERSIZE_MAX ? (size_t)(w->size - off)
							      : ZSTD_FRAMEHEADERSIZE_MAX;
		r = at(w, off, hs, &p);
		if (r < 0)
			return r;
		zr = ZSTD_getFrameHeader(&fh, p, hs);
		if (ZSTD_isError(zr))
			return 0; /* damaged: the decoder says so */
		if (zr > 0)
			goto cut; /* more header than file */
		off += fh.headerSize;
		for (;;) {
			uint32_t bh, size;

			r = at(w, off, 3, &p);
			if (r != 0)
				goto cut_or_err;
			bh = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
			size = bh >> 3;
			/* An RLE block holds its one byte; a reserved type is damage. */
			if (((bh >> 1) & 3) == 3)
				return 0;
			off += 3 + (((bh >> 1) & 3) == 1 ? 1 : size);
			if (off > w->size)
				goto cut;
			if (bh & 1)
				break;
		}
		tail = true;
		if (fh.checksumFlag)
			off += 4;
		if (off > w->size)
			goto cut;
		continue;
	cut_or_err:
		if (r < 0)
			return r;
	cut:
		return cut_at_end(w, "zstd frame", start,
				  tail ? "in its checksum" : "before its last block's end");
	}
}

/* ---- lz4: a frame's blocks, each with its size, up to the end mark ----- */

static int lz4_walk(struct whole *w)
{
	uint64_t off = 0;

	for (;;) {
		uint64_t start = off;
		bool tail = false;
		const uint8_t *p;
		uint8_t flg;
		int r = frame_starts(w, off, 0x04, 0x50, "lz4");

		if (r != 0)
			return r == 1 ? 0 : r;
		r = at(w, off, 8, &p);
		if (r != 0)
			goto cut_or_err;
		if ((le32(p) & 0xfffffff0u) == 0x184d2a50u) {
			off += 8 + (uint64_t)le32(p + 4);
			if (off > w->size)
				goto cut;
			continue;
		}
		if (le32(p) != 0x184d2204u)
			return 0;
		flg = p[4];
		if ((flg >> 6) != 1)
			return 0;
		/* magic, FLG, BD, content size, dictionary id, header checksum */
		off += 4 + 2 + ((flg & 0x08) ? 8 : 0) + ((flg & 0x01) ? 4 : 0) + 1;
		for (;;) {
			uint32_t bs;

			r = at(w, off, 4, &p);
			if (r != 0)
				goto cut_or_err;
			bs = le32(p);
			off += 4;
			if (bs == 0)
				break;
			/* the data (the high bit says stored), its checksum */
			off += (bs & 0x7fffffffu) + ((flg & 0x10) ? 4 : 0);
			if (off > w->size)
				goto cut;
		}
		tail = true;
		if (flg & 0x04)
			off += 4;
		if (off > w->size)
			goto cut;
		continue;
	cut_or_err:
		if (r < 0)
			return r;
	cut:
		return cut_at_end(w, "lz4 frame", start,
				  tail ? "in its content checksum" : "before its end mark");
	}
}

/* ---- lzop: a header, then blocks up to one of uncompressed size 0 ------ */

#define LZOP_ADLER32_D 0x001u
#define LZOP_ADLER32_C 0x002u
#define LZOP_EXTRA 0x040u
#define LZOP_CRC32_D 0x100u
#define LZOP_CRC32_C 0x200u
#define LZOP_MULTIPART 0x400u
#define LZOP_FILTER 0x800u
#define LZOP_RESERVED 0x000fc000u

static int lzo_walk(struct whole *w)
{
	static const uint8_t magic[9] = {0x89, 'L', 'Z', 'O', 0x00, '\r', '\n', 0x1a, '\n'};
	uint64_t off = 0;

	for (;;) {
		uint64_t start = off;
		const uint8_t *p;
		uint32_t flags, version;
		int r = frame_starts(w, off, 0x89, 0x89, "lzop");

		if (r != 0)
			return r == 1 ? 0 : r;
		r = at(w, off, 9 + 2, &p);
		if (r != 0)
			goto cut_or_err;
		if (memcmp(p, magic, sizeof(magic)) != 0)
			return 0;
		version = (uint32_t)p[9] << 8 | p[10];
		/* version, library version, [version needed], method, [level] */
		off += 9 + 4 + (version >= 0x0940 ? 4 : 1);
		r = at(w, off, 4, &p);
		if (r != 0)
			goto cut_or_err;
		flags = be32(p);
		/* What the decoder refuses, it names better than a cut would. */
		if (flags & (LZOP_FILTER | LZOP_MULTIPART | LZOP_RESERVED))
			return 0;
		off += 4;
		/* mode, mtime (and its high half from 0.94 on), the name */
		off += version >= 0x0940 ? 12 : 8;
		r = at(w, off, 1, &p);
		if (r != 0)
			goto cut_or_err;
		off += 1 + p[0] + 4;
		if (flags & LZOP_EXTRA) {
			r = at(w, off, 4, &p);
			if (r != 0)
				goto cut_or_err;
			off += 4 + (uint64_t)be32(p) + 4;
		}
		for (;;) {
			uint32_t dlen, clen;

			r = at(w, off, 4, &p);
			if (r != 0)
				goto cut_or_err;
			dlen = be32(p);
			off += 4;
			if (dlen == 0)
				break;
			r = at(w, off, 4, &p);
			if (r != 0)
				goto cut_or_err;
			clen = be32(p);
			if (clen > dlen)
				return 0; /* damaged: the decoder says so */
			off += 4 + ((flags & LZOP_ADLER32_D) ? 4 : 0) +
			       ((flags & LZOP_CRC32_D) ? 4 : 0);
			if (clen < dlen)
				off += ((flags & LZOP_ADLER32_C) ? 4 : 0) +
				       ((flags & LZOP_CRC32_C) ? 4 : 0);
			off += clen;
			if (off > w->size)
				goto cut;
		}
		continue;
	cut_or_err:
		if (r < 0)
			return r;
	cut:
		return cut_at_end(w, "lzop file", start, "before its end-of-stream block");
	}
}

/* ---- the end of the file: bzip2's marker, xz's footer ----------------- */

/* Where the file ends but for zero padding: after its last non-zero byte
 * (0: all zeros), read back in windows. */
static int data_end(struct whole *w, uint64_t *ret)
{
	uint64_t end = w->size;

	while (end > 0) {
		uint64_t from = end > WHOLE_BUF_SIZE ? end - WHOLE_BUF_SIZE : 0;
		const uint8_t *p;
		int r = at(w, from, (size_t)(end - from), &p);

		if (r != 0)
			return r < 0 ? r : 0;
		for (; end > from; end--)
			if (p[end - from - 1] != 0) {
				*ret = end;
				return 0;
			}
	}
	*ret = 0;
	return 0;
}

/* The stream that ends at @end is whole and so is the file when only
 * zeros follow; else the bytes there start another stream, cut (1), or
 * are not one (2, the decoder's "corrupt": data after the end). */
static int after_last(struct whole *w, uint64_t end, uint64_t last, const char *codec,
		      const uint8_t *next, const uint8_t *magic, size_t magic_len)
{
	if (end >= last)
		return 0;
	if (last - end >= magic_len && memcmp(next, magic, magic_len) == 0) {
		char unit[32];

		snprintf(unit, sizeof(unit), "%s stream", codec);
		return cut_at_end(w, unit, end, NULL);
	}
	snprintf(w->detail, sizeof(w->detail),
		 "unexpected data after the end of the %s stream at byte %" PRIu64, codec,
		 w->base + end);
	return 2;
}

/* A bzip2 stream ends with the 48-bit magic 0x177245385090 and the 32-bit
 * combined CRC, bit-aligned, padded to a byte: the last stream's is right
 * before the zero padding (its last bit one is the magic's, at most 6
 * bytes before the end), searched at every bit shift in the last 64 KiB. */
static int bzip2_walk(struct whole *w)
{
	uint64_t last, stop, from, v = 0, found = 0, end;
	const uint8_t *p;
	int r = data_end(w, &last);

	if (r < 0)
		return r;
	stop = w->size - last < 6 ? w->size : last + 6;
	from = stop > WHOLE_BUF_SIZE ? stop - WHOLE_BUF_SIZE : 0;
	r = at(w, from, (size_t)(stop - from), &p);
	if (r != 0)
		return r < 0 ? r : 0;
	for (uint64_t bit = 0; bit < (stop - from) * 8; bit++) {
		v = (v << 1 | ((p[bit / 8] >> (7 - bit % 8)) & 1)) & 0xffffffffffffull;
		if (v == 0x177245385090ull)
			found = bit + 1;
	}
	if (!found) {
		snprintf(w->detail, sizeof(w->detail),
			 "its last bzip2 stream has no end-of-stream marker: it is cut at byte "
			 "%" PRIu64 ", the file's end",
			 w->base + w->size);
		return 1;
	}
	end = from + (found + 32 + 7) / 8;
	if (end > w->size) {
		snprintf(w->detail, sizeof(w->detail),
			 "its last bzip2 stream is cut at byte %" PRIu64 ", the file's end, in "
			 "its end-of-stream marker",
			 w->base + w->size);
		return 1;
	}
	return after_last(w, end, last, "bzip2", p + (end - from), (const uint8_t *)"BZh", 3);
}

/* An xz stream ends with a 12-byte footer ("YZ" last, its CRC32 first)
 * that points back to the index; liblzma's file-info decoder reads them
 * from the end and checks them against the file's size, as the block
 * decoder does. */
static int xz_walk(struct whole *w)
{
	static const uint8_t magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
	lzma_stream st = LZMA_STREAM_INIT;
	lzma_index *idx = NULL;
	lzma_stream_flags flags;
	const uint8_t *p;
	uint64_t last, from, end = 0, pos = 0;
	lzma_ret ret;
	int r = data_end(w, &last);

	if (r < 0)
		return r;
	from = last > WHOLE_BUF_SIZE ? last - WHOLE_BUF_SIZE : 0;
	r = at(w, from, (size_t)(last - from), &p);
	if (r != 0)
		return r < 0 ? r : 0;
	/* The last footer in the last 64 KiB, by its magic and CRC. */
	for (uint64_t i = last - from >= 12 ? last - from - 12 + 1 : 0; i-- > 0 && !end;)
		if (p[i + 10] == 'Y' && p[i + 11] == 'Z' &&
		    lzma_stream_footer_decode(&flags, p + i) == LZMA_OK)
			end = from + i + 12;
	if (!end) {
		snprintf(w->detail, sizeof(w->detail),
			 "it ends at byte %" PRIu64 " without the xz stream footer that ends "
			 "every xz stream (cut inside its blocks or its index)",
			 w->base + w->size);
		return 1;
	}
	if (end < last) {
		/* Stream padding (zeros in fours), then a stream or garbage. */
		while (end + 4 <= last && le32(p + (end - from)) == 0)
			end += 4;
		return after_last(w, end, last, "xz", p + (end - from), magic, sizeof(magic));
	}
	if (lzma_file_info_decoder(&st, &idx, UINT64_MAX, w->size) != LZMA_OK)
		return source_nomem(w->s);
	for (;;) {
		if (st.avail_in == 0) {
			size_t want = w->size - pos < WHOLE_BUF_SIZE ? (size_t)(w->size - pos)
								     : WHOLE_BUF_SIZE;
			ssize_t n = want ? loop_pread(w->s->fd, w->win, want, w->base + pos) : 0;

			if (n <= 0) {
				ret = LZMA_BUF_ERROR;
				break;
			}
			w->win_len = 0; /* the window now holds something else */
			st.next_in = w->win;
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
	lzma_end(&st);
	if (idx)
		lzma_index_end(idx, NULL);
	if (ret == LZMA_STREAM_END)
		return 0;
	if (ret == LZMA_MEM_ERROR)
		return source_nomem(w->s);
	/* A footer ends the file but its index is not where it says or does
	 * not add up: a stream cut and followed by another's end, or damage. */
	snprintf(w->detail, sizeof(w->detail),
		 "its xz index and stream footer do not match its %" PRIu64 " bytes", w->size);
	return 1;
}

/* ---- gzip: decoded once ------------------------------------------------ */

/* A gzip member has no index and no end marker to find from the end (its
 * trailer is a CRC and a length, 8 bytes that look like any others): only
 * decoding it finds where it ends. That pass is made for a .tar.gz only,
 * which issue 11 wants refused whole: for a plain .gz it would double the
 * copy's decoding (bench-copy's .gz went from 7.6x the reference's speed to
 * 3.4x), so a plain .gz cut short fails at its cut, as the reference's does,
 * after writing what came before it. The codec is then started again from
 * the file's start. */
static int gzip_walk(struct whole *w)
{
	struct bmap_source *s = w->s;
	uint8_t *buf = malloc(SOURCE_IN_BUF_SIZE);
	size_t got = 0;
	ssize_t n = 0;
	bool tar;
	int r;

	if (!buf)
		return source_nomem(s);
	/* A tar's first header is in the first 512 decoded bytes. */
	while (got < 512) {
		n = s->codec->read(s, buf + got, 512 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	tar = n >= 0 && source_archive_detect(buf, got, false) == BMAP_CONTAINER_TAR;
	if (!tar && n > 0)
		n = 0;
	while (tar && n > 0) {
		if (s->cancel_fd >= 0) {
			struct pollfd pf = {.fd = s->cancel_fd, .events = POLLIN};

			if (poll(&pf, 1, 0) > 0) {
				n = -EINTR;
				break;
			}
		}
		n = s->codec->read(s, buf, SOURCE_IN_BUF_SIZE);
	}
	free(buf);
	if (n < 0 && n != -EINTR) {
		/* The decoder's own words (they name the offset), kept. */
		snprintf(w->detail, sizeof(w->detail), "%s",
			 s->ctx ? bmap_ctx_get_error(s->ctx) : "");
	}
	s->codec->free(s);
	s->in_next = s->in_buf;
	s->in_avail = 0;
	s->in_eof = false;
	s->in_pos = 0;
	if (lseek(s->fd, (off_t)w->base, SEEK_SET) < 0) {
		r = -errno;
		return bmap_error(s->ctx, r, "cannot seek in %s: %s", s->what, strerror(-r));
	}
	r = s->codec->init(s);
	if (r < 0)
		return r;
	if (n == -EINTR)
		return bmap_error(s->ctx, -EINTR, "interrupted while checking %s", s->what);
	return n < 0 ? (int)n : 0;
}

void bmap_ctx_set_check_whole(struct bmap_ctx *ctx, bool check)
{
	if (ctx)
		ctx->no_check_whole = !check;
}

static int (*const walkers[])(struct whole *w) = {
    [BMAP_COMP_ZSTD] = zstd_walk, [BMAP_COMP_GZIP] = gzip_walk, [BMAP_COMP_XZ] = xz_walk,
    [BMAP_COMP_BZIP2] = bzip2_walk, [BMAP_COMP_LZ4] = lz4_walk, [BMAP_COMP_LZO] = lzo_walk,
};

int source_check_whole(struct bmap_source *s)
{
	struct whole *w;
	struct stat st;
	off_t base;
	int r;

	if ((s->ctx && s->ctx->no_check_whole) || !s->seekable || s->input || s->fd < 0 || s->comp == BMAP_COMP_RAW ||
	    (size_t)s->comp >= sizeof(walkers) / sizeof(walkers[0]))
		return 0;
	base = lseek(s->fd, 0, SEEK_CUR);
	if (base < 0 || fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < base)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return source_nomem(s);
	w->s = s;
	w->base = (uint64_t)base;
	w->size = (uint64_t)(st.st_size - base);
	r = walkers[s->comp] ? walkers[s->comp](w) : 0;
	if (s->comp == BMAP_COMP_GZIP && r < 0 && w->detail[0]) {
		/* Already "<what> is truncated: ..." or "... is corrupt: ...". */
		char msg[sizeof(w->detail)];

		memcpy(msg, w->detail, sizeof(msg));
		r = bmap_error(s->ctx, r, "%s; nothing was written", msg);
	}
	if (r > 0) {
		char detail[sizeof(w->detail)];

		memcpy(detail, w->detail, sizeof(detail));
		r = r == 2 ? bmap_error(s->ctx, -EBADMSG, "%s is corrupt: %s; nothing was written",
					s->what, detail)
			   : bmap_error(s->ctx, -EPIPE, "%s is truncated: %s; nothing was written",
					s->what, detail);
	}
	free(w);
	return r;
}
