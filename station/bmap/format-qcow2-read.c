/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading a qcow2 image's virtual disk (see format-qcow2.h): each read
 * looks its guest clusters up in the L2 tables (through a 4 KiB window of
 * the table, per reader), reads runs of standard clusters that follow each
 * other in the file with one pread, gives zeros for holes and decodes
 * compressed clusters (zlib as qemu writes it, raw deflate, with ISA-L;
 * zstd). Reads are thread-safe: each takes a reader of its own from a pool,
 * so the copy engine's workers decode compressed clusters on every core.
 * A reader holds at most one decoded cluster and the compressed bytes of
 * one cluster.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include "format-qcow2.h"
#include "util.h"

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- the pool of readers ---- */

static struct qcow2_reader *reader_take(struct qcow2 *q)
{
	struct qcow2_reader *r;

	pthread_mutex_lock(&q->lock);
	r = q->free_readers;
	if (r) {
		q->free_readers = r->next_free;
	} else if (q->n_readers < QCOW2_MAX_READERS) {
		r = calloc(1, sizeof(*r));
		if (r) {
			r->l2win_off = UINT64_MAX;
			r->out_cluster = UINT64_MAX;
			q->all[q->n_readers++] = r;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

static void reader_put(struct qcow2 *q, struct qcow2_reader *r)
{
	pthread_mutex_lock(&q->lock);
	r->next_free = q->free_readers;
	q->free_readers = r;
	pthread_mutex_unlock(&q->lock);
}

void qcow2_readers_free(struct qcow2 *q)
{
	for (unsigned i = 0; i < q->n_readers; i++) {
		struct qcow2_reader *r = q->all[i];

		free(r->in);
		free(r->out);
		free(r->inflate);
		ZSTD_freeDCtx(r->zstd);
		free(r);
	}
	q->n_readers = 0;
	q->free_readers = NULL;
}

/* ---- lookups and decoding ---- */

int qcow2_l2_entry(struct qcow2 *q, struct qcow2_reader *r, uint64_t vcl, uint64_t *ret_e,
		   uint64_t *ret_e2)
{
	uint64_t l1i = vcl / q->l2_entries, l2, byte, win, win_size;
	ssize_t n;

	*ret_e = *ret_e2 = 0;
	if (l1i >= q->l1_n)
		return 0;
	l2 = q->l1[l1i] & 0x00fffffffffffe00ull;
	if (!l2)
		return 0;
	win_size = q->cluster_size < sizeof(r->l2win) ? q->cluster_size : sizeof(r->l2win);
	byte = (vcl % q->l2_entries) * q->entry_size;
	win = l2 + (byte & ~(win_size - 1));
	if (r->l2win_off != win) {
		n = loop_pread(q->fd, r->l2win, win_size, win);
		if (n < 0 || (uint64_t)n < win_size) {
			r->l2win_off = UINT64_MAX;
			snprintf(r->error, sizeof(r->error),
				 "cannot read the L2 table at byte %" PRIu64 ": %s", win,
				 n < 0 ? strerror((int)-n) : "the file is shorter");
			return n < 0 ? (int)n : -EIO;
		}
		r->l2win_off = win;
	}
	*ret_e = be64(r->l2win + (byte & (win_size - 1)));
	if (q->ext_l2)
		*ret_e2 = be64(r->l2win + (byte & (win_size - 1)) + 8);
	return 0;
}

static int decode_fail(struct qcow2_reader *r, const struct qcow2_cluster *c, const char *why)
{
	snprintf(r->error, sizeof(r->error),
		 "the compressed cluster at byte %" PRIu64 " (%" PRIu64 " bytes) is corrupt: %s",
		 c->host_off, c->csize, why);
	return -EBADMSG;
}

int qcow2_decode(struct qcow2 *q, struct qcow2_reader *r, const struct qcow2_cluster *c,
		 uint8_t *out)
{
	ssize_t n;

	if (r->in_size < c->csize) {
		free(r->in);
		r->in = malloc(c->csize);
		r->in_size = r->in ? c->csize : 0;
		if (!r->in)
			return -ENOMEM;
	}
	n = loop_pread(q->fd, r->in, c->csize, c->host_off);
	if (n < 0 || (uint64_t)n < c->csize) {
		snprintf(r->error, sizeof(r->error),
			 "cannot read the compressed cluster at byte %" PRIu64 ": %s", c->host_off,
			 n < 0 ? strerror((int)-n) : "the file is shorter");
		return n < 0 ? (int)n : -EIO;
	}
	if (q->zstd) {
		size_t frame, got;

		if (!r->zstd && !(r->zstd = ZSTD_createDCtx()))
			return -ENOMEM;
		/* One frame per cluster, then the last sector's padding. */
		frame = ZSTD_findFrameCompressedSize(r->in, c->csize);
		if (ZSTD_isError(frame))
			return decode_fail(r, c, ZSTD_getErrorName(frame));
		got = ZSTD_decompressDCtx(r->zstd, out, q->cluster_size, r->in, frame);
		if (ZSTD_isError(got))
			return decode_fail(r, c, ZSTD_getErrorName(got));
		if (got != q->cluster_size)
			return decode_fail(r, c, "it decodes to less than a cluster");
		return 0;
	}
	struct inflate_state *st = r->inflate;
	int ret;

	if (!st && !(st = r->inflate = malloc(sizeof(*st))))
		return -ENOMEM;
	isal_inflate_init(st);
	st->crc_flag = ISAL_DEFLATE; /* raw deflate, no wrapper */
	st->next_in = r->in;
	st->avail_in = (uint32_t)c->csize;
	st->next_out = out;
	st->avail_out = (uint32_t)q->cluster_size;
	ret = isal_inflate_stateless(st);
	/* As qemu: a full cluster is enough, whatever follows it. */
	if (st->avail_out == 0 &&
	    (ret == ISAL_DECOMP_OK || ret == ISAL_END_INPUT || ret == ISAL_OUT_OVERFLOW))
		return 0;
	return decode_fail(r, c, ret == ISAL_DECOMP_OK || ret == ISAL_END_INPUT
					 ? "it decodes to less than a cluster"
					 : "invalid deflate data");
}

/* ---- reads ---- */

struct run {
	uint64_t host;
	uint8_t *dst;
	size_t len;
};

/* Reads a run of host bytes; what lies past the file's end reads as
 * zeros, as qemu reads it. */
static int run_flush(struct qcow2 *q, struct qcow2_reader *r, struct run *run)
{
	ssize_t n;

	if (!run->len)
		return 0;
	n = loop_pread(q->fd, run->dst, run->len, run->host);
	if (n < 0) {
		snprintf(r->error, sizeof(r->error), "cannot read byte %" PRIu64 ": %s", run->host,
			 strerror((int)-n));
		return (int)n;
	}
	if ((size_t)n < run->len)
		memset(run->dst + n, 0, run->len - (size_t)n);
	run->len = 0;
	return 0;
}

static int run_add(struct qcow2 *q, struct qcow2_reader *r, struct run *run, uint64_t host,
		   uint8_t *dst, size_t len)
{
	int e;

	if (run->len && run->host + run->len == host && run->dst + run->len == dst) {
		run->len += len;
		return 0;
	}
	e = run_flush(q, r, run);
	*run = (struct run){ .host = host, .dst = dst, .len = len };
	return e;
}

/* @n bytes of guest cluster @vcl from byte @in of it into @dst. */
static int read_cluster(struct qcow2 *q, struct qcow2_reader *r, struct run *run, uint64_t vcl,
			uint64_t in, uint8_t *dst, size_t n)
{
	struct qcow2_cluster c;
	uint64_t e, e2;
	int err;

	err = qcow2_l2_entry(q, r, vcl, &e, &e2);
	if (err < 0)
		return err;
	err = qcow2_classify(q, vcl, e, e2, &c, r->error, sizeof(r->error));
	if (err < 0)
		return err;
	switch (c.kind) {
	case QK_UNALLOCATED:
	case QK_ZERO:
		memset(dst, 0, n);
		return 0;
	case QK_COMPRESSED:
		err = run_flush(q, r, run);
		if (err < 0)
			return err;
		if (in == 0 && n == q->cluster_size)
			return qcow2_decode(q, r, &c, dst);
		if (r->out_cluster != vcl) {
			if (!r->out && !(r->out = malloc(q->cluster_size)))
				return -ENOMEM;
			r->out_cluster = UINT64_MAX;
			err = qcow2_decode(q, r, &c, r->out);
			if (err < 0)
				return err;
			r->out_cluster = vcl;
		}
		memcpy(dst, r->out + in, n);
		return 0;
	case QK_DATA:
		break;
	}
	if (!q->ext_l2)
		return run_add(q, r, run, c.host_off + in, dst, n);
	/* Subclusters: allocated ones from the file, the others zeros. */
	for (uint64_t done = 0; done < n;) {
		uint64_t p = in + done, k = p >> q->sub_bits;
		uint64_t piece = ((k + 1) << q->sub_bits) - p;

		if (piece > n - done)
			piece = n - done;
		if (c.alloc >> k & 1)
			err = run_add(q, r, run, c.host_off + p, dst + done, (size_t)piece);
		else
			memset(dst + done, 0, (size_t)piece);
		if (err < 0)
			return err;
		done += piece;
	}
	return 0;
}

ssize_t qcow2_pread(struct bmap_source *s, void *buf, size_t len, uint64_t off)
{
	struct qcow2 *q = s->fmt_state;
	struct qcow2_reader *r;
	struct run run = { 0 };
	int err = 0;

	if (off >= q->size)
		return 0;
	if (len > q->size - off)
		len = (size_t)(q->size - off);
	r = reader_take(q);
	if (!r)
		return bmap_error(s->ctx, -ENOMEM, "out of memory reading %s", s->what);
	for (size_t done = 0; done < len && err == 0;) {
		uint64_t pos = off + done, in = pos & (q->cluster_size - 1);
		size_t n = q->cluster_size - in < len - done ? (size_t)(q->cluster_size - in)
							     : len - done;

		err = read_cluster(q, r, &run, pos >> q->cluster_bits, in, (uint8_t *)buf + done, n);
		done += n;
	}
	if (err == 0)
		err = run_flush(q, r, &run);
	if (err < 0) {
		/* The context's detail is one string (bmap_error locks it):
		 * the last failing thread's words are there; the engine keeps
		 * the first failure it is told of. */
		pthread_mutex_lock(&q->lock);
		if (err == -ENOMEM)
			bmap_error(s->ctx, err, "out of memory reading %s", s->what);
		else
			bmap_error(s->ctx, err, "%s is %s: %s", s->what,
				   err == -EBADMSG ? "not a valid qcow2 image" : "unreadable",
				   r->error);
		pthread_mutex_unlock(&q->lock);
	}
	reader_put(q, r);
	return err < 0 ? err : (ssize_t)len;
}

ssize_t qcow2_read(struct bmap_source *s, void *buf, size_t len)
{
	return qcow2_pread(s, buf, len, s->out_pos);
}

int qcow2_skip(struct bmap_source *s, uint64_t n)
{
	struct qcow2 *q = s->fmt_state;

	if (n > q->size - s->out_pos)
		return bmap_error(s->ctx, -EPIPE,
				  "%s is truncated: its disk ends after %" PRIu64 " bytes, %" PRIu64
				  " bytes short of the data to skip",
				  s->what, q->size, n - (q->size - s->out_pos));
	return 0;
}

int qcow2_next_data(struct bmap_source *s, uint64_t *ret_len)
{
	struct qcow2 *q = s->fmt_state;
	size_t n = bmap_map_get_range_count(q->map);

	while (q->next_range < n) {
		uint64_t off, len;

		bmap_map_range_bytes(q->map, q->next_range, &off, &len);
		if (off + len <= s->out_pos) {
			q->next_range++;
			continue;
		}
		if (off > s->out_pos)
			s->out_pos = off;
		*ret_len = off + len - s->out_pos;
		return 0;
	}
	s->out_pos = q->size > s->out_pos ? q->size : s->out_pos;
	*ret_len = 0;
	return 0;
}
