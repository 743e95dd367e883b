/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image sources: opening a file, a pipe or a URL (its input: source-url.c),
 * recognising its compression from
 * magic bytes, raw images, and the input buffer and error wording shared
 * with the decoders in source-<codec>.c. Whether the decoded bytes are an
 * archive is the container layer's business (source-archive.c), what the
 * image is (a raw image, or a format such as qcow2) the format layer's
 * (source-format.c); reading and skipping through them is source-read.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source-format.h"
#include "url.h"
#include "util.h"

/* Enough for every magic we recognise, a tar header's included. */
#define SOURCE_PEEK_SIZE 512

enum bmap_compression bmap_compression_detect(const void *buf, size_t len)
{
	static const uint8_t zstd[] = {0x28, 0xb5, 0x2f, 0xfd};
	/* The third byte is the method; gzip only ever defined 8 (deflate). */
	static const uint8_t gzip[] = {0x1f, 0x8b, 0x08};
	static const uint8_t xz[] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
	static const uint8_t lz4[] = {0x04, 0x22, 0x4d, 0x18};
	static const uint8_t lzo[] = {0x89, 'L', 'Z', 'O', 0x00, '\r', '\n', 0x1a, '\n'};
	const uint8_t *p = buf;

	if (len >= sizeof(zstd) && memcmp(p, zstd, sizeof(zstd)) == 0)
		return BMAP_COMP_ZSTD;
	if (len >= sizeof(gzip) && memcmp(p, gzip, sizeof(gzip)) == 0)
		return BMAP_COMP_GZIP;
	if (len >= sizeof(xz) && memcmp(p, xz, sizeof(xz)) == 0)
		return BMAP_COMP_XZ;
	if (len >= 4 && memcmp(p, "BZh", 3) == 0 && p[3] >= '1' && p[3] <= '9')
		return BMAP_COMP_BZIP2;
	if (len >= sizeof(lz4) && memcmp(p, lz4, sizeof(lz4)) == 0)
		return BMAP_COMP_LZ4;
	if (len >= sizeof(lzo) && memcmp(p, lzo, sizeof(lzo)) == 0)
		return BMAP_COMP_LZO;
	return BMAP_COMP_RAW;
}

const char *bmap_compression_name(enum bmap_compression c)
{
	switch (c) {
	case BMAP_COMP_RAW:
		return "raw";
	case BMAP_COMP_ZSTD:
		return "zstd";
	case BMAP_COMP_GZIP:
		return "gzip";
	case BMAP_COMP_XZ:
		return "xz";
	case BMAP_COMP_BZIP2:
		return "bzip2";
	case BMAP_COMP_LZ4:
		return "lz4";
	case BMAP_COMP_LZO:
		return "lzo";
	}
	return "unknown";
}

/* ---- reading the input -------------------------------------------------- */

/* One read() of the input: bytes read, 0 at its end, -errno. Input that may
 * keep us waiting (a pipe) is waited for in poll() next to s->cancel_fd, so
 * that the wait can end (-EINTR): a signal's EINTR alone cannot end it, as
 * it may arrive just before the read() or in another thread. */
static ssize_t source_read_some(struct bmap_source *s, void *buf, size_t len)
{
	if (s->input)
		return s->input->read(s, buf, len);
	for (;;) {
		ssize_t n;

		if (s->cancel_fd >= 0 && !s->seekable) {
			struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
					       { .fd = s->cancel_fd, .events = POLLIN } };

			if (poll(p, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (p[1].revents)
				return -EINTR;
		}
		n = read(s->fd, buf, len);
		if (n >= 0 || errno != EINTR)
			return n < 0 ? -errno : n;
	}
}

/* The detail of a failed read of the input, @pos bytes into it. */
static int source_read_error(struct bmap_source *s, int r, const char *where, uint64_t pos)
{
	if (r == -EINTR)
		return bmap_error(s->ctx, r, "interrupted while waiting for %s (%s %" PRIu64 ")",
				  s->what, where, pos);
	/* An input of its own (a URL) said what went wrong, better. */
	if (s->input)
		return r;
	return bmap_error(s->ctx, r, "cannot read %s (%s %" PRIu64 "): %s", s->what, where, pos,
			  strerror(-r));
}

/* ---- helpers for the decoders ------------------------------------------ */

ssize_t source_fill(struct bmap_source *s)
{
	ssize_t n;

	if (s->in_avail > 0)
		return (ssize_t)s->in_avail;
	if (s->in_eof)
		return 0;
	n = source_read_some(s, s->in_buf, s->in_size);
	if (n < 0)
		return source_read_error(s, (int)n, "at compressed offset", s->in_pos);
	if (n == 0)
		s->in_eof = true;
	s->in_next = s->in_buf;
	s->in_avail = (size_t)n;
	return n;
}

int source_truncated(struct bmap_source *s)
{
	return bmap_error(s->ctx, -EPIPE,
			  "%s is truncated: the %s stream ends early (after %" PRIu64
			  " compressed bytes)",
			  s->what, bmap_compression_name(s->comp), s->in_pos);
}

int source_corrupt(struct bmap_source *s, const char *why)
{
	return bmap_error(s->ctx, -EBADMSG,
			  "%s is corrupt: %s data error at compressed offset %" PRIu64 " (%s)",
			  s->what, bmap_compression_name(s->comp), s->in_pos, why);
}

int source_nomem(struct bmap_source *s)
{
	return bmap_error(s->ctx, -ENOMEM, "out of memory decoding %s", s->what);
}

int source_trailing_garbage(struct bmap_source *s)
{
	return bmap_error(s->ctx, -EBADMSG,
			  "%s is corrupt: unexpected data after the end of the %s stream at "
			  "compressed offset %" PRIu64,
			  s->what, bmap_compression_name(s->comp), s->in_pos);
}

int source_check_padding(struct bmap_source *s)
{
	for (;;) {
		ssize_t n = source_fill(s);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return 0;
		for (size_t i = 0; i < s->in_avail; i++) {
			if (s->in_next[i] != 0) {
				source_consume(s, i);
				return source_trailing_garbage(s);
			}
		}
		source_consume(s, s->in_avail);
	}
}

/* ---- raw images ---------------------------------------------------------- */

static ssize_t raw_read(struct bmap_source *s, void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	/* Bytes peeked from a pipe come first. */
	if (s->in_avail > 0) {
		done = len < s->in_avail ? len : s->in_avail;
		memcpy(buf, s->in_next, done);
		source_consume(s, done);
	}
	if (done == len || s->in_eof)
		return (ssize_t)done;

	while (done < len) {
		n = source_read_some(s, (char *)buf + done, len - done);
		if (n < 0)
			return source_read_error(s, (int)n, "at offset", s->in_pos);
		if (n == 0) {
			s->in_eof = true;
			break;
		}
		done += (size_t)n;
		s->in_pos += (uint64_t)n;
	}
	return (ssize_t)done;
}

static const struct source_codec source_codec_raw = {
    .comp = BMAP_COMP_RAW,
    .read = raw_read,
};

static const struct source_codec *source_codec_for(enum bmap_compression c)
{
	switch (c) {
	case BMAP_COMP_RAW:
		return &source_codec_raw;
	case BMAP_COMP_ZSTD:
		return &source_codec_zstd;
	case BMAP_COMP_GZIP:
		return &source_codec_gzip;
	case BMAP_COMP_XZ:
		return &source_codec_xz;
	case BMAP_COMP_BZIP2:
		return &source_codec_bzip2;
	case BMAP_COMP_LZ4:
		return &source_codec_lz4;
	case BMAP_COMP_LZO:
		return &source_codec_lzo;
	}
	return NULL;
}

/* ---- opening ------------------------------------------------------------- */

static int source_alloc_in_buf(struct bmap_source *s)
{
	void *p;

	if (s->in_buf)
		return 0;
	/* Page aligned: the kernel copies whole pages into it fastest. */
	if (posix_memalign(&p, 4096, SOURCE_IN_BUF_SIZE) != 0)
		return source_nomem(s);
	s->in_buf = p;
	s->in_size = SOURCE_IN_BUF_SIZE;
	s->in_next = s->in_buf;
	return 0;
}

/* Finds the magic bytes without losing any: a regular file is peeked with
 * pread() and left where it was; anything else is read into the input
 * buffer, which the decoder (or raw_read) consumes first. */
static int source_peek(struct bmap_source *s, uint8_t *magic, size_t *ret_len)
{
	ssize_t n;
	int r;

	if (s->seekable) {
		off_t off = lseek(s->fd, 0, SEEK_CUR);

		n = off < 0 ? -errno : loop_pread(s->fd, magic, SOURCE_PEEK_SIZE, (uint64_t)off);
		if (n < 0)
			return bmap_error(s->ctx, (int)n, "cannot read %s: %s", s->what,
					  strerror((int)-n));
		*ret_len = (size_t)n;
		return 0;
	}

	r = source_alloc_in_buf(s);
	if (r < 0)
		return r;
	/* A pipe may deliver the first bytes in pieces. */
	while (s->in_avail < SOURCE_PEEK_SIZE) {
		n = source_read_some(s, s->in_buf + s->in_avail, s->in_size - s->in_avail);
		if (n < 0)
			return source_read_error(s, (int)n, "at offset", s->in_avail);
		if (n == 0) {
			s->in_eof = true;
			break;
		}
		s->in_avail += (size_t)n;
	}
	*ret_len = s->in_avail < SOURCE_PEEK_SIZE ? s->in_avail : SOURCE_PEEK_SIZE;
	memcpy(magic, s->in_buf, *ret_len);
	return 0;
}

/* The container layer: a zip in the raw input @magic, or a tar in the
 * first decoded bytes (peeked where the codec can, else read ahead and
 * handed to libarchive first, or served again first when they are no tar).
 * A failure to read them is the first read's, as for the format. */
static int open_container(struct bmap_source *s, const uint8_t *magic, size_t magic_len)
{
	enum bmap_container kind;
	ssize_t n = -ENOTSUP;

	if (s->comp == BMAP_COMP_RAW) {
		kind = source_archive_detect(magic, magic_len, true);
		if (kind == BMAP_CONTAINER_NONE) {
			/* The magic of a raw file's format is in the bytes just
			 * peeked; a decoder's output is peeked by the format
			 * layer itself. */
			s->format = source_format_detect(magic, magic_len);
			return 0;
		}
		return source_archive_open(s, kind, NULL, 0);
	}
	if (s->codec->peek) {
		uint8_t buf[SOURCE_PEEK_SIZE];

		n = s->codec->peek(s, buf, sizeof(buf));
		if (n >= 0) {
			kind = source_archive_detect(buf, (size_t)n, false);
			return kind ? source_archive_open(s, kind, NULL, 0) : 0;
		}
	}
	if (n != -ENOTSUP)
		return 0;
	n = source_dec_read(s, s->fpeek, sizeof(s->fpeek));
	if (n < 0)
		return 0;
	s->fpeek_len = (size_t)n;
	s->fpeek_pos = 0;
	s->dec_pos = 0;
	kind = source_archive_detect(s->fpeek, s->fpeek_len, false);
	if (kind == BMAP_CONTAINER_NONE)
		return 0;
	s->fpeek_len = 0;
	return source_archive_open(s, kind, s->fpeek, (size_t)n);
}

/* A source owning @fd (closed on failure; -1: none), named; @what (NULL:
 * "image file '@name'") is what messages call it. */
static int source_alloc(struct bmap_ctx *ctx, int fd, const char *name, const char *what,
			struct bmap_source **ret_source)
{
	struct bmap_source *s;

	s = calloc(1, sizeof(*s));
	if (!s) {
		if (fd >= 0)
			close(fd);
		return bmap_error(ctx, -ENOMEM, "out of memory opening image '%s'", name);
	}
	s->ctx = ctx;
	s->fd = fd;
	s->cancel_fd = -1;
	s->name = strdup(name);
	if (!s->name || (what ? !(s->what = strdup(what))
			      : asprintf(&s->what, "image file '%s'", name) < 0)) {
		s->what = NULL;
		bmap_source_free(s);
		return bmap_error(ctx, -ENOMEM, "out of memory opening image '%s'", name);
	}
	*ret_source = s;
	return 0;
}

/* source_alloc(), stat'ed. */
static int source_new(struct bmap_ctx *ctx, int fd, const char *name, const char *what,
		      struct stat *ret_st, struct bmap_source **ret_source)
{
	struct bmap_source *s;
	int r;

	r = source_alloc(ctx, fd, name, what, &s);
	if (r < 0)
		return r;
	if (fstat(fd, ret_st) < 0) {
		r = -errno;
		r = bmap_error(ctx, r, "cannot stat %s: %s", s->what, strerror(-r));
		bmap_source_free(s);
		return r;
	}
	*ret_source = s;
	return 0;
}

int bmap_source_open_raw_fd(struct bmap_ctx *ctx, int fd, const char *name,
			    struct bmap_source **ret_source)
{
	struct bmap_source *s;
	struct stat st;
	int r;

	r = source_new(ctx, fd, name, NULL, &st, &s);
	if (r < 0)
		return r;
	if (!S_ISREG(st.st_mode)) {
		r = bmap_error(ctx, -EINVAL, "%s is not a regular file", s->what);
		goto fail;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		r = -errno;
		r = bmap_error(ctx, r, "cannot seek in %s: %s", s->what, strerror(-r));
		goto fail;
	}
	s->seekable = true;
	s->at_start = true;
	s->comp = BMAP_COMP_RAW;
	s->codec = &source_codec_raw;
	*ret_source = s;
	return 0;

fail:
	bmap_source_free(s);
	return r;
}

static int source_detect(struct bmap_source *s);

static int open_fd(struct bmap_ctx *ctx, int fd, const char *name, const char *what,
		   int cancel_fd, struct bmap_source **ret_source)
{
	struct bmap_source *s;
	struct stat st;
	int r;

	r = source_new(ctx, fd, name, what, &st, &s);
	if (r < 0)
		return r;
	s->cancel_fd = cancel_fd;
	if (S_ISDIR(st.st_mode)) {
		r = bmap_error(ctx, -EISDIR, "%s is a directory", s->what);
		goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		off_t off = lseek(fd, 0, SEEK_CUR);

		s->seekable = off >= 0;
		s->at_start = off == 0;
		/* Doubles the kernel's readahead: we read front to back. */
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	r = source_detect(s);
	if (r < 0)
		goto fail;
	*ret_source = s;
	return 0;

fail:
	bmap_source_free(s);
	return r;
}

/* The compression from the first bytes, the codec set up, then the
 * container (tar, zip) and the format. */
static int source_detect(struct bmap_source *s)
{
	uint8_t magic[SOURCE_PEEK_SIZE];
	size_t magic_len = 0;
	int r;

	r = source_peek(s, magic, &magic_len);
	if (r < 0)
		return r;
	s->comp = bmap_compression_detect(magic, magic_len);
	s->codec = source_codec_for(s->comp);
	if (s->comp != BMAP_COMP_RAW) {
		r = source_alloc_in_buf(s);
		if (r < 0)
			return r;
		r = s->codec->init(s);
		if (r < 0)
			return r;
		/* A local file cut short is refused now, before a destination
		 * is opened, not once part of it was written. */
		r = source_check_whole(s);
		if (r < 0)
			return r;
	}
	/* A tar or zip around the image, then the image's format. */
	r = open_container(s, magic, magic_len);
	if (r < 0)
		return r;
	return source_format_open(s);
}

int bmap_source_open_fd(struct bmap_ctx *ctx, int fd, const char *name,
			struct bmap_source **ret_source)
{
	return open_fd(ctx, fd, name, NULL, -1, ret_source);
}

int bmap_source_open_fd_cancel(struct bmap_ctx *ctx, int fd, const char *name, int cancel_fd,
			       struct bmap_source **ret_source)
{
	return open_fd(ctx, fd, name, NULL, cancel_fd, ret_source);
}

int bmap_source_open(struct bmap_ctx *ctx, const char *path, struct bmap_source **ret_source)
{
	return bmap_source_open_cancel(ctx, path, -1, ret_source);
}

/* A URL: fetched through the URL input (source-url.c), named in messages
 * without its credentials. */
static int open_url(struct bmap_ctx *ctx, const char *url, int cancel_fd,
		    struct bmap_source **ret_source)
{
	_cleanup_free_ char *disp = bmap_url_display(url), *what = NULL;
	struct bmap_source *s;
	int r;

	if (!disp || asprintf(&what, "image '%s'", disp) < 0) {
		what = NULL;
		return bmap_error(ctx, -ENOMEM, "out of memory opening an image URL");
	}
	r = source_alloc(ctx, -1, disp, what, &s);
	if (r < 0)
		return r;
	s->cancel_fd = cancel_fd;
	r = source_url_start(s, url);
	if (r >= 0)
		r = source_detect(s);
	if (r < 0) {
		bmap_source_free(s);
		return r;
	}
	*ret_source = s;
	return 0;
}

int bmap_source_open_cancel(struct bmap_ctx *ctx, const char *path, int cancel_fd,
			    struct bmap_source **ret_source)
{
	int fd, r;

	if (bmap_location_is_url(path)) {
		_cleanup_free_ char *local = NULL;

		r = url_file_path(path, &local);
		if (r < 0)
			return bmap_error(ctx, r, "cannot open image '%s': only local file: URLs "
						  "are read", path);
		if (r == 0)
			return open_url(ctx, path, cancel_fd, ret_source);
		fd = open(local, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			r = -errno;
			return bmap_error(ctx, r, "cannot open image file '%s': %s", local,
					  strerror(-r));
		}
		return open_fd(ctx, fd, local, NULL, cancel_fd, ret_source);
	}

	if (strcmp(path, "-") == 0) {
		/* Our own descriptor, so that freeing the source leaves fd 0 alone. */
		fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
		if (fd < 0) {
			r = -errno;
			return bmap_error(ctx, r, "cannot use standard input: %s", strerror(-r));
		}
		return open_fd(ctx, fd, "standard input", "the image on standard input", cancel_fd,
			       ret_source);
	}

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		return bmap_error(ctx, r, "cannot open image file '%s': %s", path, strerror(-r));
	}
	return open_fd(ctx, fd, path, NULL, cancel_fd, ret_source);
}

struct bmap_source *bmap_source_free(struct bmap_source *s)
{
	if (!s)
		return NULL;
	if (s->fmt && s->fmt->free && s->fmt_state)
		s->fmt->free(s);
	source_archive_free(s);
	if (s->codec && s->codec->free && s->codec_state)
		s->codec->free(s);
	if (s->input && s->input->free && s->input_state)
		s->input->free(s);
	if (s->fd >= 0)
		close(s->fd);
	free(s->in_buf);
	free(s->scratch);
	free(s->what);
	free(s->name);
	free(s);
	return NULL;
}
