/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading an image source: the decoded stream (the codec's output, the
 * bytes peeked for the format served first), and the image through its
 * format when it has one; skipping, positions, and the source's facts.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source-format.h"
#include "util.h"

#define SOURCE_SCRATCH_SIZE (256u * 1024)

enum bmap_compression bmap_source_get_compression(const struct bmap_source *s)
{
	return s->comp;
}

const char *bmap_source_get_name(const struct bmap_source *s)
{
	return s->name;
}

ssize_t source_dec_read(struct bmap_source *s, void *buf, size_t len)
{
	size_t done = 0;

	if (s->err)
		return s->err;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (s->fpeek_pos < s->fpeek_len) {
		done = s->fpeek_len - s->fpeek_pos < len ? s->fpeek_len - s->fpeek_pos : len;
		memcpy(buf, s->fpeek + s->fpeek_pos, done);
		s->fpeek_pos += done;
	}
	/* Decoders may stop short (at frame ends, after one pipe read); only
	 * the end of the input may make the caller's read short. */
	while (done < len && !s->eof) {
		/* In an archive, the decoded stream is its member's. */
		ssize_t n = s->arc ? source_archive_read(s, (char *)buf + done, len - done)
				   : s->codec->read(s, (char *)buf + done, len - done);

		if (n < 0) {
			s->err = (int)n;
			return n;
		}
		if (n == 0)
			s->eof = true;
		done += (size_t)n;
	}
	s->dec_pos += done;
	return (ssize_t)done;
}

ssize_t bmap_source_read(struct bmap_source *s, void *buf, size_t len)
{
	size_t done = 0;

	if (!s->fmt) {
		ssize_t n = source_dec_read(s, buf, len);

		if (n > 0)
			s->out_pos += (uint64_t)n;
		return n;
	}
	if (s->err)
		return s->err;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (done < len && !s->out_eof) {
		ssize_t n = s->fmt->read(s, (char *)buf + done, len - done);

		if (n < 0) {
			s->err = (int)n;
			return n;
		}
		if (n == 0)
			s->out_eof = true;
		done += (size_t)n;
		s->out_pos += (uint64_t)n;
	}
	return (ssize_t)done;
}

static int source_skip_short(struct bmap_source *s, uint64_t want)
{
	return bmap_error(s->ctx, -EPIPE,
			  "%s is truncated: the image ends after %" PRIu64 " bytes, %" PRIu64
			  " bytes short of the data to skip",
			  s->what, s->dec_pos, want);
}

/* 0, or -EPIPE with s->dec_pos at the end and *@ret_short the bytes missing. */
static int dec_skip(struct bmap_source *s, uint64_t n, uint64_t *ret_short)
{
	if (s->err)
		return s->err;
	if (s->fpeek_pos < s->fpeek_len) {
		size_t k = s->fpeek_len - s->fpeek_pos < n ? s->fpeek_len - s->fpeek_pos : (size_t)n;

		s->fpeek_pos += k;
		s->dec_pos += k;
		n -= k;
	}

	if (s->arc) {
		/* A member's bytes are read and dropped where they are (no copy). */
		while (n > 0 && !s->eof) {
			ssize_t got = source_archive_read(s, NULL, n < SSIZE_MAX ? (size_t)n : SSIZE_MAX);

			if (got < 0) {
				s->err = (int)got;
				return (int)got;
			}
			if (got == 0)
				s->eof = true;
			n -= (uint64_t)got;
			s->dec_pos += (uint64_t)got;
		}
		if (n > 0) {
			*ret_short = n;
			return -EPIPE;
		}
		return 0;
	}

	if (s->comp == BMAP_COMP_RAW && s->seekable && s->in_avail == 0) {
		struct stat st;
		off_t cur;
		uint64_t left;

		cur = lseek(s->fd, 0, SEEK_CUR);
		if (cur < 0 || fstat(s->fd, &st) < 0) {
			int r = -errno;

			return bmap_error(s->ctx, r, "cannot seek in %s: %s", s->what,
					  strerror(-r));
		}
		left =
		    (uint64_t)st.st_size > (uint64_t)cur ? (uint64_t)st.st_size - (uint64_t)cur : 0;
		if (n > left) {
			lseek(s->fd, (off_t)left, SEEK_CUR);
			s->dec_pos += left;
			s->in_pos += left;
			s->in_eof = true;
			*ret_short = n - left;
			return -EPIPE;
		}
		if (lseek(s->fd, (off_t)n, SEEK_CUR) < 0) {
			int r = -errno;

			return bmap_error(s->ctx, r, "cannot seek in %s: %s", s->what,
					  strerror(-r));
		}
		s->dec_pos += n;
		s->in_pos += n;
		return 0;
	}

	/* A raw image from an input that can pass over bytes without fetching
	 * them (a URL's ranged fetch): the bytes already here first. */
	if (s->comp == BMAP_COMP_RAW && !s->fmt && s->input && s->input->skip && n > 0 &&
	    !s->in_eof) {
		size_t k = s->in_avail < n ? s->in_avail : (size_t)n;
		int64_t got;

		source_consume(s, k);
		s->dec_pos += k;
		n -= k;
		got = n > 0 ? s->input->skip(s, n) : 0;
		if (got < 0) {
			s->err = (int)got;
			return (int)got;
		}
		s->in_pos += (uint64_t)got;
		s->dec_pos += (uint64_t)got;
		n -= (uint64_t)got;
	}
	if (s->codec->skip && n > 0 && !s->eof && !s->fmt) {
		int64_t k = s->codec->skip(s, n);

		if (k < 0) {
			s->err = (int)k;
			return (int)k;
		}
		s->dec_pos += (uint64_t)k;
		n -= (uint64_t)k;
	}
	if (n > 0 && !s->scratch) {
		s->scratch = malloc(SOURCE_SCRATCH_SIZE);
		if (!s->scratch)
			return source_nomem(s);
	}
	while (n > 0) {
		size_t chunk = n < SOURCE_SCRATCH_SIZE ? (size_t)n : SOURCE_SCRATCH_SIZE;
		ssize_t got = source_dec_read(s, s->scratch, chunk);

		if (got < 0)
			return (int)got;
		n -= (uint64_t)got;
		if ((size_t)got < chunk) {
			*ret_short = n;
			return -EPIPE;
		}
	}
	return 0;
}

int source_dec_skip(struct bmap_source *s, uint64_t n)
{
	uint64_t missing = 0;

	return dec_skip(s, n, &missing);
}

int bmap_source_skip(struct bmap_source *s, uint64_t n)
{
	uint64_t missing = 0;
	int r;

	if (s->fmt) {
		if (s->err)
			return s->err;
		r = s->fmt->skip(s, n);
		if (r < 0) {
			s->err = r;
			return r;
		}
		s->out_pos += n;
		return 0;
	}
	r = dec_skip(s, n, &missing);
	if (r == -EPIPE)
		r = source_skip_short(s, missing);
	s->out_pos = s->dec_pos;
	return r;
}

void bmap_source_want(struct bmap_source *s, const struct bmap_map *map)
{
	/* @map is in image bytes: a format's decoded bytes are something else. */
	if (map && !s->fmt && !s->arc && s->codec->want && s->out_pos == 0 && !s->err)
		s->codec->want(s, map);
	/* A raw image's bytes are the input's: it may fetch @map's alone. */
	if (map && !s->fmt && s->comp == BMAP_COMP_RAW && s->input && s->input->want &&
	    s->out_pos == 0 && !s->err)
		s->input->want(s, map);
}

void bmap_source_want_only(struct bmap_source *s, const struct bmap_map *map)
{
	s->want_only = map && bmap_map_has_range_checksums(map);
	bmap_source_want(s, map);
}

uint64_t bmap_source_tell(const struct bmap_source *s)
{
	return s->out_pos;
}

uint64_t bmap_source_input_pos(const struct bmap_source *s)
{
	return s->in_pos;
}

uint64_t bmap_source_get_transferred(const struct bmap_source *s)
{
	return s->input && s->input->transferred ? s->input->transferred(s) : 0;
}

int bmap_source_get_fd(const struct bmap_source *s)
{
	return s->fd;
}

int bmap_source_get_raw_fd(const struct bmap_source *s)
{
	/* Callers pread() at image offsets, which are file offsets only when
	 * the image starts at the file's start. */
	return s->comp == BMAP_COMP_RAW && !s->fmt && !s->arc && s->seekable && s->at_start ? s->fd
												 : -1;
}
