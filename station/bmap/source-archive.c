/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The container layer of the image sources: a tar archive found in the
 * decoded bytes, or a zip found in the raw input, read through libarchive
 * (its format readers only: what is under a tar stays with our decoders),
 * whose first regular file member is the image the format layer sees.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "source-codec.h"
#include "util.h"

/* Decoded bytes are handed to libarchive in chunks of this size; a tar
 * member's data blocks point into them (no copy). */
#define ARC_BUF_SIZE (1024u * 1024)
#define TAR_BLOCK 512

struct source_archive {
	enum bmap_container kind;
	struct archive *a;
	char *archive_what; /* s->what before it named the member */
	char *member;
	uint64_t member_size;
	bool size_known;

	uint64_t pos; /* member bytes read or dropped */
	/* The data block libarchive gave last, not yet read; its image offset
	 * (above pos: a hole of a sparse member, read as zeros, comes first). */
	const uint8_t *blk;
	size_t blk_len;
	uint64_t blk_off;
	bool done; /* libarchive said the member ended */

	uint8_t pre[TAR_BLOCK];
	size_t pre_len;
	bool pre_given;
	uint8_t *buf;
	int codec_err; /* the codec's failure (its detail is in the context) */
	bool codec_eof;
};

const char *bmap_container_name(enum bmap_container c)
{
	switch (c) {
	case BMAP_CONTAINER_NONE:
		return "none";
	case BMAP_CONTAINER_TAR:
		return "tar";
	case BMAP_CONTAINER_ZIP:
		return "zip";
	}
	return "unknown";
}

/* An octal tar number field: digits after optional spaces, ended by a space,
 * a NUL or the field's end; false when there are none or others. */
static bool tar_octal(const uint8_t *f, size_t len, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0, digits = 0;

	while (i < len && f[i] == ' ')
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++, digits++)
		v = v * 8 + (uint64_t)(f[i] - '0');
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return false;
	*ret = v;
	return digits > 0;
}

/* A tar header is recognised by its checksum (the sum of its bytes with the
 * checksum field read as spaces; old tars summed signed bytes), and besides
 * by "ustar" at 257 or, for a v7 header, a name and a known type: a disk
 * image whose first sector happens to sum right is not taken for a tar. */
static bool tar_header(const uint8_t *h, size_t len)
{
	uint64_t want, mode;
	unsigned int sum = 0;
	int ssum = 0;

	if (len < TAR_BLOCK)
		return false;
	if (!tar_octal(h + 148, 8, &want))
		want = UINT64_MAX;
	for (size_t i = 0; i < TAR_BLOCK; i++) {
		uint8_t b = i >= 148 && i < 156 ? ' ' : h[i];

		sum += b;
		ssum += (int8_t)b;
	}
	/* A ustar header whose checksum is wrong is a damaged tar, for
	 * libarchive to refuse: an image does not start with that magic. */
	if (memcmp(h + 257, "ustar\0" "00", 8) == 0 || memcmp(h + 257, "ustar  \0", 8) == 0)
		return true;
	if (want != sum && (int64_t)want != ssum)
		return false;
	if (memcmp(h + 257, "ustar", 5) == 0)
		return true;
	return h[0] != '\0' && tar_octal(h + 100, 8, &mode) &&
	       (h[156] == '\0' || (h[156] >= '0' && h[156] <= '7'));
}

enum bmap_container source_archive_detect(const uint8_t *buf, size_t len, bool raw)
{
	if (raw && len >= 4 && memcmp(buf, "PK\003\004", 4) == 0)
		return BMAP_CONTAINER_ZIP;
	if (tar_header(buf, len))
		return BMAP_CONTAINER_TAR;
	return BMAP_CONTAINER_NONE;
}

/* libarchive's input: the bytes peeked to find the tar first, then the
 * codec's output. A codec's failure keeps its own detail (in the context). */
static la_ssize_t arc_read_cb(struct archive *a, void *data, const void **ret_buf)
{
	struct bmap_source *s = data;
	struct source_archive *c = s->arc;
	size_t done = 0;

	if (!c->pre_given) {
		c->pre_given = true;
		if (c->pre_len > 0) {
			*ret_buf = c->pre;
			return (la_ssize_t)c->pre_len;
		}
	}
	while (done < ARC_BUF_SIZE && !c->codec_eof) {
		ssize_t n = s->codec->read(s, c->buf + done, ARC_BUF_SIZE - done);

		if (n < 0) {
			c->codec_err = (int)n;
			archive_set_error(a, EIO, "%s", bmap_ctx_get_error(s->ctx));
			return ARCHIVE_FATAL;
		}
		if (n == 0)
			c->codec_eof = true;
		done += (size_t)n;
	}
	*ret_buf = c->buf;
	return (la_ssize_t)done;
}

/* The detail of a failed libarchive call, @doing what. */
static int arc_fail(struct bmap_source *s, const char *doing)
{
	struct source_archive *c = s->arc;
	const char *why = archive_error_string(c->a);
	const char *kind = bmap_container_name(c->kind);
	uint64_t at = (uint64_t)archive_filter_bytes(c->a, -1);
	char where[128];

	if (c->codec_err)
		return c->codec_err;
	if (!why)
		why = "unknown error";
	/* Only a ustar header with a wrong checksum gets this far unrecognised. */
	if (c->kind == BMAP_CONTAINER_TAR && strstr(why, "Unrecognized archive format"))
		why = "a ustar header whose checksum does not match (a damaged tar)";
	/* Offsets in the archive; for one under a codec, in its input too. */
	if (s->comp == BMAP_COMP_RAW)
		snprintf(where, sizeof(where), "archive offset %" PRIu64, at);
	else
		snprintf(where, sizeof(where),
			 "archive offset %" PRIu64 ", %s input offset %" PRIu64, at,
			 bmap_compression_name(s->comp), s->in_pos);
	if (c->codec_eof || strstr(why, "runcated"))
		return bmap_error(s->ctx, -EPIPE, "%s is truncated: the %s archive ends %s (%s; %s)",
				  s->what, kind, doing, why, where);
	return bmap_error(s->ctx, -EBADMSG, "%s is corrupt %s: %s (%s)", s->what, doing, why,
			  where);
}

/* Skips members up to the first regular file (hard links hold no data). */
static int arc_first_file(struct bmap_source *s, struct archive_entry **ret)
{
	struct source_archive *c = s->arc;

	for (unsigned int i = 0;; i++) {
		struct archive_entry *e;
		int r = archive_read_next_header(c->a, &e);

		if (r == ARCHIVE_EOF)
			return bmap_error(s->ctx, -ENOENT,
					  "%s holds no regular file (%u other member(s)): the image "
					  "must be the archive's first regular file",
					  s->what, i);
		if (r < ARCHIVE_WARN)
			return arc_fail(s, i ? "in a member's header" : "in its first header");
		if (archive_entry_filetype(e) == AE_IFREG && !archive_entry_hardlink(e)) {
			*ret = e;
			return 0;
		}
		bmap_log(s->ctx, BMAP_LOG_DEBUG, "%s: skipping member '%s' (not a regular file)",
			 s->what, archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
		if (archive_read_data_skip(c->a) < ARCHIVE_WARN)
			return arc_fail(s, "in a member before the image");
	}
}

/* An uncompressed archive in a regular file: a truncated one is refused
 * now, before anything is written, not when its end is reached (a tar's
 * member must fit in the file, a zip must end with its directory). */
static int check_whole(struct bmap_source *s, struct archive_entry *e)
{
	struct source_archive *c = s->arc;
	uint8_t tail[65536 + 22];
	struct stat st;
	off_t start;
	uint64_t at, size, tail_len;
	ssize_t n;

	if (s->comp != BMAP_COMP_RAW || !s->seekable || fstat(s->fd, &st) < 0)
		return 0;
	size = (uint64_t)st.st_size;
	if (c->kind == BMAP_CONTAINER_TAR) {
		/* libarchive has read the header and perhaps more of the file:
		 * the member's data starts where its header ended. */
		at = (uint64_t)archive_filter_bytes(c->a, 0);
		if (!c->size_known || archive_entry_sparse_count(e) > 0 ||
		    at + c->member_size <= size)
			return 0;
		return bmap_error(s->ctx, -EPIPE,
				  "%s is truncated: the member's %" PRIu64 " bytes would end at byte "
				  "%" PRIu64 " of the archive, which has %" PRIu64 "; nothing was "
				  "written",
				  s->what, c->member_size, at + c->member_size, size);
	}
	start = lseek(s->fd, 0, SEEK_CUR);
	if (start < 0)
		return 0;
	(void)start;
	tail_len = size < sizeof(tail) ? size : sizeof(tail);
	n = loop_pread(s->fd, tail, (size_t)tail_len, size - tail_len);
	if (n != (ssize_t)tail_len)
		return 0;
	for (size_t i = tail_len >= 22 ? tail_len - 22 + 1 : 0; i-- > 0;)
		if (memcmp(tail + i, "PK\005\006", 4) == 0)
			return 0;
	return bmap_error(s->ctx, -EPIPE,
			  "%s is truncated: the zip archive has no end of central directory "
			  "(its last %" PRIu64 " bytes); nothing was written",
			  s->what, tail_len);
}

int source_archive_open(struct bmap_source *s, enum bmap_container kind, const uint8_t *pre,
			size_t pre_len)
{
	struct source_archive *c;
	struct archive_entry *e = NULL;
	const char *kname = bmap_container_name(kind);
	char *what;
	void *p;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return source_nomem(s);
	s->arc = c;
	c->kind = kind;
	if (pre_len > sizeof(c->pre))
		pre_len = sizeof(c->pre);
	if (pre_len > 0) /* @pre may be NULL then (found by fuzz-source-tar) */
		memcpy(c->pre, pre, pre_len);
	c->pre_len = pre_len;
	if (posix_memalign(&p, 4096, ARC_BUF_SIZE) != 0)
		return source_nomem(s);
	c->buf = p;
	c->a = archive_read_new();
	if (!c->a)
		return source_nomem(s);
	/* Format readers only: with no filter registered libarchive reads its
	 * input as it comes (a tar's compression was our codec's). A zip is
	 * read front to back, as it comes from a pipe as well. */
	if (kind == BMAP_CONTAINER_TAR)
		r = archive_read_support_format_tar(c->a);
	else
		r = archive_read_support_format_zip_streamable(c->a);
	if (r != ARCHIVE_OK)
		return bmap_error(s->ctx, -ENOTSUP, "libarchive cannot read %s archives: %s", kname,
				  archive_error_string(c->a));
	/* "tar archive 'x.tar.zst'", "the tar archive on standard input" */
	if ((strcmp(s->name, "standard input") == 0
		     ? asprintf(&what, "the %s archive on standard input", kname)
		     : asprintf(&what, "%s archive '%s'", kname, s->name)) < 0)
		return source_nomem(s);
	c->archive_what = s->what;
	s->what = what;
	if (archive_read_open(c->a, s, NULL, arc_read_cb, NULL) != ARCHIVE_OK)
		return arc_fail(s, "in its first header");
	r = arc_first_file(s, &e);
	if (r < 0)
		return r;

	c->member = strdup(archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
	if (!c->member)
		return source_nomem(s);
	c->size_known = archive_entry_size_is_set(e) && archive_entry_size(e) >= 0;
	c->member_size = c->size_known ? (uint64_t)archive_entry_size(e) : 0;
	if (asprintf(&what, "member '%s' of %s", c->member, s->what) < 0)
		return source_nomem(s);
	free(s->what);
	s->what = what;
	r = check_whole(s, e);
	if (r < 0)
		return r;
	if (archive_entry_is_encrypted(e))
		return bmap_error(s->ctx, -ENOTSUP,
				  "%s is encrypted: decrypt the archive first (e.g. with unzip) "
				  "and flash the image it holds",
				  s->what);
	bmap_log(s->ctx, BMAP_LOG_INFO, "the image is %s", s->what);
	return 0;
}

ssize_t source_archive_read(struct bmap_source *s, void *buf, size_t len)
{
	struct source_archive *c = s->arc;
	size_t done = 0;

	while (done < len) {
		size_t k;

		if (c->blk_off > c->pos) {
			/* A hole of a sparse member. */
			k = c->blk_off - c->pos < len - done ? (size_t)(c->blk_off - c->pos)
							     : len - done;
			if (buf)
				memset((uint8_t *)buf + done, 0, k);
		} else if (c->blk_len > 0) {
			k = c->blk_len < len - done ? c->blk_len : len - done;
			if (buf)
				memcpy((uint8_t *)buf + done, c->blk, k);
			c->blk += k;
			c->blk_len -= k;
			c->blk_off += k;
		} else if (c->done) {
			break;
		} else {
			const void *b;
			size_t sz;
			la_int64_t off;
			int r = archive_read_data_block(c->a, &b, &sz, &off);

			if (r == ARCHIVE_EOF) {
				c->done = true;
				/* A sparse member's last hole. */
				if (c->size_known && c->member_size > c->pos)
					c->blk_off = c->member_size;
				continue;
			}
			if (r < ARCHIVE_WARN)
				return arc_fail(s, "in the image's data");
			if (off < 0 || (uint64_t)off < c->pos)
				return bmap_error(s->ctx, -EBADMSG,
						  "%s is corrupt: its data goes back to offset "
						  "%" PRId64 " after %" PRIu64 " bytes",
						  s->what, (int64_t)off, c->pos);
			c->blk = b;
			c->blk_len = sz;
			c->blk_off = (uint64_t)off;
			continue;
		}
		c->pos += k;
		done += k;
	}
	return (ssize_t)done;
}

enum bmap_container bmap_source_get_container(const struct bmap_source *s)
{
	return s->arc ? s->arc->kind : BMAP_CONTAINER_NONE;
}

const char *bmap_source_get_member(const struct bmap_source *s)
{
	return s->arc ? s->arc->member : NULL;
}

bool bmap_source_get_member_size(const struct bmap_source *s, uint64_t *ret_size)
{
	if (!s->arc || !s->arc->size_known)
		return false;
	*ret_size = s->arc->member_size;
	return true;
}

void source_archive_free(struct bmap_source *s)
{
	struct source_archive *c = s->arc;

	if (!c)
		return;
	if (c->a)
		archive_read_free(c->a);
	free(c->archive_what);
	free(c->member);
	free(c->buf);
	free(c);
	s->arc = NULL;
}
