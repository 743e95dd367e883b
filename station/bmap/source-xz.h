/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to the xz source: decoding a regular .xz file of several blocks
 * by blocks, two at a time, through its index (source-xz-blocks.c: the
 * decoders, the helper thread, opening; source-xz-order.c: the reader's
 * side), for source-xz.c, which decodes everything else as one stream.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <lzma.h>

#include "source-codec.h"

/* The helper decodes at most this much of a block ahead of the reader. */
#define XZ_AHEAD_MAX ((size_t)32 << 20)
/* What decoding two blocks at a time may add: the second decoder (its
 * window) and the look-ahead buffer. With the rest of a copy (about 21 MiB)
 * that keeps a copy under 64 MiB plus the image's window. Below
 * XZ_AHEAD_MIN of buffer, one decoder does it all. */
#define XZ_PAR_BUDGET ((uint64_t)40 << 20)
#define XZ_AHEAD_MIN ((uint64_t)4 << 20)
/* Compressed input is read in pieces of this size per decoder. */
#define XZ_IN_SIZE ((size_t)256 << 10)
/* The index of a sane image is a few KiB; past this the stream decoder is used. */
#define XZ_INDEX_MEMLIMIT ((uint64_t)64 << 20)

struct xz_block {
	uint64_t in_off;   /* file offset of the block header */
	uint64_t in_size;  /* header, data, padding and check */
	uint64_t unpadded; /* as the index gives it */
	uint64_t out_size;
	lzma_check check;
};

/* One block being decoded. */
struct xz_dec {
	lzma_stream strm;
	lzma_filter filters[LZMA_FILTERS_MAX + 1];
	lzma_block opts; /* the block decoder keeps a pointer to it */
	size_t block;
	uint64_t in_pos, in_end; /* file offsets of the compressed bytes left */
	uint64_t out_done;
	bool finished;
	int err; /* -errno; why and err_off say what and where */
	const char *why;
	uint64_t err_off;
	uint8_t in[XZ_IN_SIZE];
};

enum xz_mode { XZ_NEXT, XZ_STREAM, XZ_AHEAD };

struct xz_par {
	int fd;
	uint64_t base;	   /* file offset of the .xz data */
	uint64_t in_total; /* its size */
	struct xz_block *blocks;
	size_t n_blocks;
	/* The decoding order, positions -> blocks: the blocks that hold wanted
	 * bytes in image order, then (from n_live on) the others. */
	size_t *order;
	size_t n_live;
	size_t claim_end;   /* positions from here are never decoded (n_blocks: all are) */
	bool *deferred;	    /* not wanted: decoded last, passed over when skipped */
	bool *done;	    /* decoded (under lock) */
	size_t img_next;    /* the block the reader delivers next, in image order */
	bool dropping;	    /* past the image's end: decoding the deferred blocks */
	size_t drop_pos;    /* then, the position it decodes next */
	uint8_t *scratch;   /* where their output goes */
	struct xz_dec *cur; /* the reader's */
	enum xz_mode mode;

	/* Shared with the helper, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t helper;
	bool helper_started, quit;
	size_t next_claim, ahead_block; /* positions */
	enum { AHEAD_IDLE, AHEAD_WORKING, AHEAD_READY } ahead_state;
	struct xz_dec *ahead; /* the helper's while WORKING, the reader's otherwise */
	uint8_t *buf;
	size_t buf_size, buf_len, buf_pos;
};

/* ---- between source-xz-blocks.c and source-xz-order.c ---- */

/* Reads and checks block @i's header into d->opts and d->filters. */
int xz_dec_header(struct xz_par *p, struct xz_dec *d, size_t i);
void xz_dec_free_filters(struct xz_dec *d);
/* Starts decoding block @i with @d: 0 or d->err. */
int xz_dec_start(struct xz_par *p, struct xz_dec *d, size_t i);
/* Decodes up to @len bytes of the block into @out; returns how many, or
 * -errno (d->err). d->finished once the block and its check are through. */
ssize_t xz_dec_run(struct xz_par *p, struct xz_dec *d, uint8_t *out, size_t len);
/* The helper thread: decodes the next claimed block into p->buf. */
void *xz_helper(void *arg);

/* ---- for source-xz.c ---- */

/* 1 with *@ret set: @s is decoded by blocks; 0: it is not for that (a pipe,
 * one block, no readable index, a window too big for two decoders); -errno. */
int xz_par_open(struct bmap_source *s, struct xz_par **ret);
/* The codec's read, skip and want (see source-codec.h) for such a source. */
ssize_t xz_par_read(struct bmap_source *s, struct xz_par *p, uint8_t *buf, size_t len);
int64_t xz_par_skip(struct bmap_source *s, struct xz_par *p, uint64_t n);
/* @only: the blocks holding none of @map's bytes are never decoded. */
void xz_par_want(struct xz_par *p, const struct bmap_map *map, bool only);
/* The first @len bytes of the image, decoded by the helper's decoder
 * before the helper starts (nothing the reader does changes). */
ssize_t xz_par_peek(struct bmap_source *s, struct xz_par *p, uint8_t *buf, size_t len);
void xz_par_free(struct xz_par *p);
