/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to the image sources: the state shared by source.c and the
 * per-codec decoders (source-<codec>.c), and the helpers the decoders use to
 * pull compressed input and to word their errors the same way.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bmap-private.h"
#include "source.h"

/* Compressed input is read in chunks of this size. */
#define SOURCE_IN_BUF_SIZE (1024u * 1024)

struct source_codec {
	enum bmap_compression comp;
	/* Sets s->codec_state; -errno with a detail on failure. */
	int (*init)(struct bmap_source *s);
	/* Decodes into @buf, at most @len bytes (@len > 0). Returns > 0 bytes
	 * produced, 0 at the clean end of the image, -errno with a detail. */
	ssize_t (*read)(struct bmap_source *s, void *buf, size_t len);
	/* Optional: skips what it can of the next @n image bytes without
	 * decoding them now (their integrity is still checked before the
	 * image's end is reported); returns the bytes skipped, <= @n, or
	 * -errno. What it leaves is read and dropped. */
	int64_t (*skip)(struct bmap_source *s, uint64_t n);
	/* Optional: the first @len decoded bytes, without consuming them or
	 * starting what bmap_source_want() must come before (xz by blocks);
	 * returns how many (fewer at the end), or -errno. Without it, the
	 * format layer reads them and serves them again. */
	ssize_t (*peek)(struct bmap_source *s, void *buf, size_t len);
	/* Optional: the caller will read only @map's ranges (see
	 * bmap_source_want). */
	void (*want)(struct bmap_source *s, const struct bmap_map *map);
	void (*free)(struct bmap_source *s);
};

/* Where the (compressed) bytes come from when it is not s->fd: a URL
 * (source-url.c). The codecs above see only source_fill(). */
struct source_input {
	/* Like read(2) without EINTR: bytes read, 0 at the end, -errno with a
	 * detail (-EINTR, without one, when s->cancel_fd became readable). */
	ssize_t (*read)(struct bmap_source *s, void *buf, size_t len);
	/* Optional: the input will be read at @map's ranges only (a raw image);
	 * skip() then passes over the rest without fetching it. */
	void (*want)(struct bmap_source *s, const struct bmap_map *map);
	/* Optional: passes over the next @n bytes; returns how many it passed
	 * (<= @n; the rest is read and dropped) or -errno. */
	int64_t (*skip)(struct bmap_source *s, uint64_t n);
	/* Bytes received from the network so far (any thread may ask). */
	uint64_t (*transferred)(const struct bmap_source *s);
	void (*free)(struct bmap_source *s);
};

extern const struct source_input source_input_url;
/* Starts fetching @url into @s (its input): the first response's status is
 * checked before this returns. */
int source_url_start(struct bmap_source *s, const char *url);

struct bmap_source {
	struct bmap_ctx *ctx;
	int fd;		/* -1 for a URL */
	const struct source_input *input; /* NULL: read s->fd */
	void *input_state;
	int cancel_fd; /* readable: stop waiting for input (-1: never) */
	char *name;
	/* "image file 'x.zst'" or "the image on standard input", for messages. */
	char *what;
	enum bmap_compression comp;
	const struct source_codec *codec;
	void *codec_state;

	/* A regular file read from its start: raw reads can seek and pread. */
	bool seekable;
	bool want_only; /* bmap_source_want_only(): the rest is never read */
	bool at_start;

	/* Compressed input not yet handed to the decoder. */
	uint8_t *in_buf;
	size_t in_size;
	const uint8_t *in_next;
	size_t in_avail;
	bool in_eof;

	uint64_t in_pos;  /* input bytes consumed by the decoder */
	uint64_t dec_pos; /* decoded bytes read or skipped */
	uint64_t out_pos; /* image bytes read or skipped (dec_pos for raw) */
	bool eof;         /* the decoded stream ended */
	bool out_eof;     /* the image ended */
	int err; /* sticky: a failed decoder or format is not resumed */

	/* The archive the image is a member of (source-archive.c); NULL:
	 * none, the decoded bytes are the image's. */
	struct source_archive *arc;

	/* The image's format (source-format.h); NULL: raw. */
	enum bmap_format format;
	const struct source_format *fmt;
	void *fmt_state;
	/* Decoded bytes read ahead to find an archive or the format, served
	 * first (a tar header is 512 bytes). */
	uint8_t fpeek[512];
	size_t fpeek_len, fpeek_pos;

	uint8_t *scratch; /* skip() target for sources that cannot seek */
};

extern const struct source_codec source_codec_zstd;
extern const struct source_codec source_codec_gzip;
extern const struct source_codec source_codec_xz;
extern const struct source_codec source_codec_bzip2;
extern const struct source_codec source_codec_lz4;
extern const struct source_codec source_codec_lzo;

/* ---- the container layer (source-archive.c) ---- */

/* The archive the first decoded bytes @buf start (a tar header, by its
 * checksum), or for the raw input @raw the zip it is; never by name. */
enum bmap_container source_archive_detect(const uint8_t *buf, size_t len, bool raw);
/* Opens the archive over the codec's output and moves to its first regular
 * file member; @pre (@pre_len bytes) are decoded bytes already read, handed
 * to libarchive first. Sets s->arc; -errno with a detail naming the
 * archive. */
int source_archive_open(struct bmap_source *s, enum bmap_container kind, const uint8_t *pre,
			size_t pre_len);
/* The member's next bytes into @buf (NULL: dropped), at most @len: > 0,
 * 0 at the member's end, -errno with a detail. */
ssize_t source_archive_read(struct bmap_source *s, void *buf, size_t len);
void source_archive_free(struct bmap_source *s);

/* A regular file's compressed stream (from its position) whole, checked
 * before anything is decoded (source-whole.c): -EPIPE with "<what> is
 * truncated: <where>; nothing was written", 0 otherwise and for pipes and
 * URLs, which cannot be checked in advance. The codec is at the file's
 * start again after it. */
int source_check_whole(struct bmap_source *s);

/* Makes s->in_avail > 0 if any input is left. Returns s->in_avail, 0 at the
 * end of the input, -errno with a detail on a read error. */
ssize_t source_fill(struct bmap_source *s);

static inline void source_consume(struct bmap_source *s, size_t n)
{
	s->in_next += n;
	s->in_avail -= n;
	s->in_pos += n;
}

/* -EPIPE: "<what> is truncated: the <codec> stream ends early (...)". */
int source_truncated(struct bmap_source *s);
/* -EBADMSG: "<what> is corrupt: <codec> data error at compressed offset N (@why)". */
int source_corrupt(struct bmap_source *s, const char *why);
int source_nomem(struct bmap_source *s);

/* -EBADMSG: "<what> is corrupt: unexpected data after the end of the <codec>
 * stream at compressed offset N". */
int source_trailing_garbage(struct bmap_source *s);
/* At the end of a stream, when the next input byte is zero: accepts the
 * rest of the input if it is all zeros (padding, as gzip tolerates) and
 * consumes it. 0 when it was padding, -EBADMSG otherwise. */
int source_check_padding(struct bmap_source *s);
