/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Creating a bmap: find the mapped blocks of a sparse file (FIEMAP, as the
 * reference does, falling back to SEEK_DATA/SEEK_HOLE) and hash each range.
 * Ranges are gathered in batches (of range count, not bytes) and hashed on several threads (a range's
 * digest is serial, but different ranges are independent), then written in
 * order. Memory is bounded by the batch size, whatever the image size.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "bmap-private.h"
#include "sha256-ni.h"
#include "util.h"

#define FIEMAP_EXTENTS 512
#define HASH_CHUNK (256 * 1024) /* stays in L2 between read and hash */
#define BATCH_RANGES 16384
#define MAX_THREADS 8

/* ---- scanning ---- */

struct scan {
	uint64_t size, blocks;
	uint32_t bs;
	bool have;
	uint64_t first, last;
	bmap_range_fn fn;
	void *userdata;
};

/* Adds the byte span [start, end) as blocks; merges with the pending run. */
static int scan_add(struct scan *s, uint64_t start, uint64_t end)
{
	uint64_t first, last;
	int r;

	if (end > s->size)
		end = s->size;
	if (start >= end)
		return 0;
	first = start / s->bs;
	last = (end - 1) / s->bs;
	if (s->have && first <= s->last + 1) {
		if (last > s->last)
			s->last = last;
		return 0;
	}
	if (s->have) {
		r = s->fn(s->userdata, s->first, s->last);
		if (r < 0)
			return r;
	}
	s->have = true;
	s->first = first;
	s->last = last;
	return 0;
}

static int scan_fiemap(struct bmap_ctx *ctx, int fd, const char *name, struct scan *s)
{
	_cleanup_free_ struct fiemap *fm = NULL;
	uint64_t start = 0;
	bool first_call = true;
	int r;

	/* Zeroed: valgrind does not model what FS_IOC_FIEMAP writes back. */
	fm = calloc(1, sizeof(*fm) + FIEMAP_EXTENTS * sizeof(struct fiemap_extent));
	if (!fm)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	while (start < s->size) {
		bool last_seen = false;

		memset(fm, 0, sizeof(*fm));
		fm->fm_start = start;
		fm->fm_length = s->size - start;
		/* Sync once, like the reference: delayed allocations become real. */
		fm->fm_flags = first_call ? FIEMAP_FLAG_SYNC : 0;
		fm->fm_extent_count = FIEMAP_EXTENTS;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			if (first_call && (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL))
				return -EOPNOTSUPP;
			return bmap_error(ctx, -errno, "FIEMAP failed on '%s': %m", name);
		}
		first_call = false;
		if (fm->fm_mapped_extents == 0)
			break;
		for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
			const struct fiemap_extent *e = &fm->fm_extents[i];

			/* Unwritten (fallocated) extents count as mapped, as in
			 * the reference: flags are deliberately ignored. */
			r = scan_add(s, e->fe_logical, e->fe_logical + e->fe_length);
			if (r < 0)
				return r;
			start = e->fe_logical + e->fe_length;
			if (e->fe_flags & FIEMAP_EXTENT_LAST)
				last_seen = true;
		}
		if (last_seen)
			break;
	}
	return 0;
}

static int scan_seek(struct bmap_ctx *ctx, int fd, const char *name, struct scan *s)
{
	uint64_t pos = 0;
	int r;

	while (pos < s->size) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)
				break;
			if (errno == EINVAL && pos == 0) {
				/* No SEEK_DATA: everything is data. */
				return scan_add(s, 0, s->size);
			}
			return bmap_error(ctx, -errno, "SEEK_DATA failed on '%s': %m", name);
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return bmap_error(ctx, -errno, "SEEK_HOLE failed on '%s': %m", name);
		r = scan_add(s, (uint64_t)data, (uint64_t)hole);
		if (r < 0)
			return r;
		pos = (uint64_t)hole;
	}
	return 0;
}

int bmap_scan_file(struct bmap_ctx *ctx, int fd, const char *name, uint64_t size,
		   uint32_t block_size, bmap_range_fn fn, void *userdata)
{
	struct scan s = {
		.size = size, .bs = block_size, .fn = fn, .userdata = userdata,
		.blocks = (size + block_size - 1) / block_size,
	};
	int r;

	r = scan_fiemap(ctx, fd, name, &s);
	if (r == -EOPNOTSUPP) {
		bmap_log(ctx, BMAP_LOG_DEBUG, "FIEMAP not supported on '%s', using SEEK_HOLE",
			 name);
		s.have = false;
		r = scan_seek(ctx, fd, name, &s);
	}
	if (r < 0)
		return r;
	if (s.have)
		return fn(userdata, s.first, s.last);
	return 0;
}

/* ---- hashing in parallel ---- */

struct job {
	uint64_t first, last;
	uint8_t digest[BMAP_DIGEST_MAX];
};

struct creator {
	struct bmap_ctx *ctx;
	int fd;
	const char *name;
	uint64_t size;
	uint32_t bs;
	const char *cs_type;
	bool checksums;
	unsigned threads;
	bool sha_ni; /* two ranges per thread (sha256-ni.c) */
	struct bmap_writer *w;

	struct job *jobs;
	size_t n_jobs;
	size_t *order; /* job indexes, largest first */
	atomic_size_t next;
	atomic_uint planned, running; /* hashing threads to start, started */
	atomic_int error;
	char error_msg[256];
	pthread_mutex_t lock;
};

static void hash_fail(struct creator *c, const struct job *j, int r)
{
	int expected = 0;

	if (atomic_compare_exchange_strong(&c->error, &expected, r)) {
		pthread_mutex_lock(&c->lock);
		snprintf(c->error_msg, sizeof(c->error_msg), "blocks %" PRIu64 "-%" PRIu64 ": %s",
			 j->first, j->last,
			 r == -ENODATA ? "the file shrank while being read" : strerror(-r));
		pthread_mutex_unlock(&c->lock);
	}
}

/* The bytes of @j: its blocks, the last one cut at the image's end. */
static void job_span(const struct creator *c, const struct job *j, uint64_t *off, uint64_t *end)
{
	*off = j->first * c->bs;
	*end = (j->last + 1) * c->bs;
	if (*end > c->size)
		*end = c->size;
}

/* Reads up to @max image bytes at @off, no further than @end; returns how
 * many, or -errno (-ENODATA: the file shrank under us). */
static ssize_t read_piece(const struct creator *c, uint8_t *buf, size_t max, uint64_t off,
			  uint64_t end)
{
	size_t n = end - off > max ? max : (size_t)(end - off);
	ssize_t got = loop_pread(c->fd, buf, n, off);

	if (got < 0)
		return got;
	return (size_t)got == n ? got : -ENODATA;
}

static int hash_range(struct creator *c, struct job *j, uint8_t *buf, struct bmap_digest *d)
{
	uint64_t off, end;

	job_span(c, j, &off, &end);
	bmap_digest_reset(d);
	while (off < end) {
		ssize_t n = read_piece(c, buf, HASH_CHUNK, off, end);

		if (n < 0)
			return (int)n;
		bmap_digest_update(d, buf, (size_t)n);
		off += (uint64_t)n;
	}
	return bmap_digest_final(d, j->digest);
}

static void *hash_thread(void *arg)
{
	struct creator *c = arg;
	uint8_t *buf = NULL;
	struct bmap_digest *d = bmap_digest_new(c->cs_type);

	if (!d || posix_memalign((void **)&buf, 4096, HASH_CHUNK) != 0) {
		atomic_store(&c->error, -ENOMEM);
		goto out;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&c->next, 1);
		struct job *j;
		int r;

		if (i >= c->n_jobs || atomic_load(&c->error))
			break;
		j = &c->jobs[c->order[i]];
		r = hash_range(c, j, buf, d);
		if (r < 0) {
			hash_fail(c, j, r);
			break;
		}
	}
out:
	free(buf);
	bmap_digest_free(d);
	return NULL;
}

/* ---- two ranges per thread, with the SHA extensions ---- */

/* Each lane reads its piece (256 KiB measured best of 32 KiB-1 MiB). */
#define LANE_CHUNK HASH_CHUNK

struct lane {
	struct job *job;
	uint64_t off, end;
	struct sha256_ni sha;
	uint8_t *buf;
	size_t n; /* bytes in buf */
};

/* Gives the lane the next range, largest first; false when none is left. */
static bool lane_take(struct creator *c, struct lane *l)
{
	size_t i = atomic_fetch_add(&c->next, 1);

	if (i >= c->n_jobs)
		return false;
	l->job = &c->jobs[c->order[i]];
	job_span(c, l->job, &l->off, &l->end);
	sha256_ni_init(&l->sha);
	return true;
}

static void *hash_thread_ni(void *arg)
{
	struct creator *c = arg;
	struct lane lanes[2] = { 0 };
	uint8_t *buf = NULL;

	if (posix_memalign((void **)&buf, 4096, 2 * LANE_CHUNK) != 0) {
		atomic_store(&c->error, -ENOMEM);
		return NULL;
	}
	lanes[0].buf = buf;
	lanes[1].buf = buf + LANE_CHUNK;
	atomic_fetch_add(&c->running, 1);
	while (!atomic_load(&c->error)) {
		struct lane *a = &lanes[0], *b = &lanes[1];
		size_t m;

		/* A second range only once every thread has its first:
		 * the largest ranges go to different threads, never paired
		 * in one thread while another waits to start. */
		bool pair = atomic_load(&c->running) >= atomic_load(&c->planned);

		for (int i = 0; i < 2; i++) {
			struct lane *l = &lanes[i];
			ssize_t n;

			if (!l->job && ((lanes[!i].job && !pair) || !lane_take(c, l)))
				continue;
			n = read_piece(c, l->buf, LANE_CHUNK, l->off, l->end);
			if (n < 0) {
				hash_fail(c, l->job, (int)n);
				goto out;
			}
			l->n = (size_t)n;
		}
		if (!a->job && !b->job)
			break;
		if (!a->job || !b->job) {
			struct lane *l = a->job ? a : b;

			sha256_ni_update(&l->sha, l->buf, l->n);
		} else {
			m = a->n < b->n ? a->n : b->n;
			sha256_ni_update2(&a->sha, a->buf, &b->sha, b->buf, m);
			sha256_ni_update(&a->sha, a->buf + m, a->n - m);
			sha256_ni_update(&b->sha, b->buf + m, b->n - m);
		}
		for (int i = 0; i < 2; i++) {
			struct lane *l = &lanes[i];

			if (!l->job)
				continue;
			l->off += l->n;
			if (l->off == l->end) {
				sha256_ni_final(&l->sha, l->job->digest);
				l->job = NULL;
			}
		}
	}
out:
	free(buf);
	return NULL;
}

static uint64_t job_bytes(const struct creator *c, const struct job *j)
{
	return (j->last - j->first + 1) * (uint64_t)c->bs;
}

static int by_size_desc(const void *a, const void *b, void *arg)
{
	const struct creator *c = arg;
	uint64_t sa = job_bytes(c, &c->jobs[*(const size_t *)a]);
	uint64_t sb = job_bytes(c, &c->jobs[*(const size_t *)b]);

	return sa < sb ? 1 : sa > sb ? -1 : 0;
}

static int flush_batch(struct creator *c)
{
	pthread_t tids[MAX_THREADS];
	unsigned started = 0, want;
	int r;

	if (!c->n_jobs)
		return 0;
	if (c->checksums) {
		for (size_t i = 0; i < c->n_jobs; i++)
			c->order[i] = i;
		/* Largest first balances the threads (LPT scheduling). */
		qsort_r(c->order, c->n_jobs, sizeof(*c->order), by_size_desc, c);
		atomic_store(&c->next, 0);
		want = c->threads < c->n_jobs ? c->threads : (unsigned)c->n_jobs;
		atomic_store(&c->running, 0);
		atomic_store(&c->planned, want);
		for (unsigned t = 1; t < want; t++) {
			if (pthread_create(&tids[started], NULL,
					   c->sha_ni ? hash_thread_ni : hash_thread, c) != 0) {
				atomic_store(&c->planned, started + 1);
				break;
			}
			started++;
		}
		if (c->sha_ni)
			hash_thread_ni(c);
		else
			hash_thread(c);
		for (unsigned t = 0; t < started; t++)
			pthread_join(tids[t], NULL);
		r = atomic_load(&c->error);
		if (r < 0)
			return bmap_error(c->ctx, r, "cannot read image file '%s': %s", c->name,
					  c->error_msg[0] ? c->error_msg : strerror(-r));
	}
	for (size_t i = 0; i < c->n_jobs; i++) {
		r = bmap_writer_add_range(c->w, c->jobs[i].first, c->jobs[i].last,
					  c->checksums ? c->jobs[i].digest : NULL);
		if (r < 0)
			return r;
	}
	c->n_jobs = 0;
	return 0;
}

static int on_range(void *userdata, uint64_t first, uint64_t last)
{
	struct creator *c = userdata;

	c->jobs[c->n_jobs++] = (struct job){ .first = first, .last = last };
	if (c->n_jobs == BATCH_RANGES)
		return flush_batch(c);
	return 0;
}

static unsigned default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

static int open_check_image(struct bmap_ctx *ctx, int fd, const char *name, uint64_t *ret_size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return bmap_error(ctx, -errno, "cannot stat image file '%s': %m", name);
	if (S_ISDIR(st.st_mode))
		return bmap_error(ctx, -EISDIR, "image file '%s' is a directory", name);
	if (!S_ISREG(st.st_mode))
		return bmap_error(ctx, -EINVAL,
				  "image file '%s' is not a regular file (a bmap is made from a "
				  "sparse image file)",
				  name);
	if (st.st_size == 0)
		return bmap_error(ctx, -EINVAL, "cannot generate bmap for zero-sized image file '%s'",
				  name);
	*ret_size = (uint64_t)st.st_size;
	return 0;
}

int bmap_create(struct bmap_ctx *ctx, int image_fd, const char *image_name, int out_fd,
		const char *out_name, const struct bmap_create_opts *opts,
		struct bmap_create_result *ret_result)
{
	struct creator c = {
		.ctx = ctx, .fd = image_fd, .name = image_name, .cs_type = "sha256",
		.lock = PTHREAD_MUTEX_INITIALIZER,
	};
	int r;

	c.bs = opts && opts->block_size ? opts->block_size : 4096;
	c.checksums = !(opts && opts->no_checksum);
	c.threads = opts && opts->threads ? opts->threads : default_threads();
	if (c.threads > MAX_THREADS)
		c.threads = MAX_THREADS;
	if (c.bs < 512 || (c.bs & (c.bs - 1)))
		return bmap_error(ctx, -EINVAL, "block size %" PRIu32 " is not a power of two >= 512",
				  c.bs);
	r = open_check_image(ctx, image_fd, image_name, &c.size);
	if (r < 0)
		return r;
	posix_fadvise(image_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	/* BMAP_SHA_NI=0 hashes through OpenSSL only (the tests compare both). */
	c.sha_ni = sha256_ni_available() && !(secure_getenv("BMAP_SHA_NI") &&
					      strcmp(secure_getenv("BMAP_SHA_NI"), "0") == 0);

	c.jobs = malloc(BATCH_RANGES * sizeof(*c.jobs));
	c.order = malloc(BATCH_RANGES * sizeof(*c.order));
	if (!c.jobs || !c.order) {
		r = bmap_error(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	r = bmap_writer_new(ctx, out_fd, out_name, c.size, c.bs, c.cs_type, &c.w);
	if (r < 0)
		goto out;
	r = bmap_scan_file(ctx, image_fd, image_name, c.size, c.bs, on_range, &c);
	if (r >= 0)
		r = flush_batch(&c);
	if (r >= 0)
		r = bmap_writer_finish(c.w);
	if (r >= 0 && ret_result) {
		ret_result->image_size = c.size;
		ret_result->blocks_count = (c.size + c.bs - 1) / c.bs;
		ret_result->mapped_blocks = bmap_writer_get_mapped_blocks(c.w);
	}
out:
	bmap_writer_free(c.w);
	free(c.jobs);
	free(c.order);
	return r;
}

static int map_add(void *userdata, uint64_t first, uint64_t last)
{
	return bmap_map_append_range(userdata, first, last);
}

int bmap_map_from_file(struct bmap_ctx *ctx, int fd, const char *name, uint32_t block_size,
		       struct bmap_map **ret_map)
{
	struct bmap_map *map = NULL;
	uint64_t size;
	int r;

	r = open_check_image(ctx, fd, name, &size);
	if (r < 0)
		return r;
	r = bmap_map_new(ctx, size, block_size, &map);
	if (r < 0)
		return r;
	r = bmap_scan_file(ctx, fd, name, size, block_size, map_add, map);
	if (r < 0) {
		bmap_map_free(map);
		return r == -ENOMEM ? bmap_error(ctx, r, "out of memory") : r;
	}
	*ret_map = map;
	return 0;
}
