/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The chunk index of an Android sparse image read at random (see
 * format-simg.h): a regular uncompressed file without CRC32 chunks has
 * every chunk header walked at open; the index keeps where each chunk's
 * blocks begin on the disk and where its data lies in the file (a RAW
 * chunk) or its pattern (FILL), so that any bytes of the disk are read
 * with one binary search and preads, from any thread: the copy engine then
 * copies such an image in parallel as it copies a raw file. An image with
 * CRC32 chunks is not indexed: it is read as a stream, front to back, so
 * that every CRC is checked. Neither is one of more than SIMG_INDEX_MAX
 * chunks (a hostile header would otherwise size a huge index).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format-simg.h"
#include "util.h"

struct simg_entry {
	uint64_t voff;  /* the chunk's first byte on the disk */
	uint64_t where; /* RAW: its data's offset in the file */
	uint32_t fill;  /* FILL: its pattern, as the bytes are in the file */
	uint16_t type;
};

struct simg_index {
	struct simg_entry *e;
	size_t n, cap;
	uint64_t size; /* the disk's */
	int fd;
};

struct simg_index *simg_index_new(int fd, uint64_t size, uint32_t n_chunks)
{
	struct simg_index *x;

	if (n_chunks > SIMG_INDEX_MAX)
		return NULL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->cap = n_chunks ? n_chunks : 1;
	x->e = malloc(x->cap * sizeof(*x->e));
	if (!x->e) {
		free(x);
		return NULL;
	}
	x->fd = fd;
	x->size = size;
	return x;
}

struct simg_index *simg_index_free(struct simg_index *x)
{
	if (x) {
		free(x->e);
		free(x);
	}
	return NULL;
}

int simg_index_add(struct simg_index *x, uint16_t type, uint64_t voff, uint64_t len,
		   uint64_t where, const uint8_t fill[4])
{
	struct simg_entry *e;

	if (len == 0 || type == SIMG_CHUNK_CRC32)
		return 0;
	if (x->n == x->cap)
		return -EINVAL; /* more chunks than the header said: the walk refuses it */
	e = &x->e[x->n++];
	*e = (struct simg_entry){ .voff = voff, .where = where, .type = type };
	if (fill)
		memcpy(&e->fill, fill, 4);
	return 0;
}

/* The entry whose blocks hold disk byte @off (< x->size). */
static size_t find(const struct simg_index *x, uint64_t off)
{
	size_t lo = 0, hi = x->n;

	/* The last entry that begins at or before @off. */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (x->e[mid].voff <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static uint64_t entry_end(const struct simg_index *x, size_t i)
{
	return i + 1 < x->n ? x->e[i + 1].voff : x->size;
}

static bool entry_zero(const struct simg_entry *e)
{
	return e->type == SIMG_CHUNK_DONT_CARE || (e->type == SIMG_CHUNK_FILL && e->fill == 0);
}

/* @len bytes of pattern @fill for disk offset @off (chunks begin on
 * blocks, multiples of 4: the phase is @off % 4). */
static void fill_bytes(uint8_t *p, size_t len, uint64_t off, uint32_t fill)
{
	uint8_t q[4];

	if (fill == 0) {
		memset(p, 0, len);
		return;
	}
	memcpy(q, &fill, 4);
	for (size_t i = 0; i < len && i < 4; i++)
		p[i] = q[(off + i) & 3];
	for (size_t done = 4; done < len;) {
		size_t k = done < len - done ? done : len - done;

		memcpy(p + done, p, k);
		done += k;
	}
}

ssize_t simg_index_pread(struct bmap_source *s, const struct simg_index *x, void *buf,
			 size_t len, uint64_t off)
{
	uint8_t *p = buf;
	size_t i, done = 0;

	if (off >= x->size || x->n == 0)
		return 0;
	if (len > x->size - off)
		len = (size_t)(x->size - off);
	for (i = find(x, off); done < len; i++) {
		const struct simg_entry *e = &x->e[i];
		uint64_t at = off + done, end = entry_end(x, i);
		size_t k = end - at < len - done ? (size_t)(end - at) : len - done;
		ssize_t n;

		switch (e->type) {
		case SIMG_CHUNK_RAW:
			n = loop_pread(x->fd, p + done, k, e->where + (at - e->voff));
			if (n < 0)
				return bmap_error(s->ctx, (int)n, "cannot read %s at byte %" PRIu64 ": %s",
						  s->what, e->where + (at - e->voff), strerror((int)-n));
			if ((size_t)n < k)
				return bmap_error(s->ctx, -EPIPE,
						  "%s is truncated: it ends at byte %" PRIu64
						  ", inside a RAW chunk's data (was it changed while "
						  "it was read?)",
						  s->what, e->where + (at - e->voff) + (uint64_t)n);
			break;
		case SIMG_CHUNK_FILL:
			fill_bytes(p + done, k, at, e->fill);
			break;
		default:
			memset(p + done, 0, k);
			break;
		}
		done += k;
	}
	return (ssize_t)len;
}

int64_t simg_index_run(const struct simg_index *x, uint64_t off, uint64_t max, bool *ret_zero)
{
	size_t i;
	uint64_t end;
	bool zero;

	*ret_zero = false;
	if (off >= x->size || x->n == 0)
		return 0;
	i = find(x, off);
	zero = entry_zero(&x->e[i]);
	end = entry_end(x, i);
	/* Chunks of the same kind that follow, as far as the caller cares. */
	while (end - off < max && ++i < x->n && entry_zero(&x->e[i]) == zero)
		end = entry_end(x, i);
	*ret_zero = zero;
	return end - off > INT64_MAX ? INT64_MAX : (int64_t)(end - off);
}
