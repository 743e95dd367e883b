/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Creating a bmap: the mapped blocks of a sparse file (scan.c) or of a
 * self-mapped image's virtual disk (its own map), each range hashed.
 * Ranges are gathered in batches (of range count, not bytes) and hashed on
 * several threads (a range's digest is serial, but different ranges are
 * independent), then written in order; an image read as a stream (a
 * sparse image) is hashed in order by one thread. Memory is bounded by the
 * batch size, whatever the image size.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "source-format.h"
#include "sha256-ni.h"
#include "util.h"

#define HASH_CHUNK (256 * 1024) /* stays in L2 between read and hash */
#define BATCH_RANGES 16384
#define MAX_THREADS 8

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
	struct bmap_source *src; /* a self-mapped image: read through it, not fd */
	struct bmap_writer *w;
	atomic_int *cancel;

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
			 r == -ENODATA ? "the file shrank while being read"
			 : c->src      ? bmap_ctx_get_error(c->ctx)
				       : strerror(-r));
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
	ssize_t got;

	if (c->cancel && atomic_load(c->cancel))
		return -EINTR;
	got = c->src ? source_pread(c->src, buf, n, off) : loop_pread(c->fd, buf, n, off);

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
		if (r == -EINTR)
			return bmap_error(c->ctx, r, "interrupted");
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
	c.cancel = opts ? opts->cancel : NULL;
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

/* A stream (a sparse image): its ranges hashed in order, by this thread;
 * then the rest of it read, so that its own checks run. */
static int hash_in_order(struct creator *c, const struct bmap_map *map)
{
	_cleanup_(bmap_digest_freep) struct bmap_digest *d = bmap_digest_new(c->cs_type);
	_cleanup_free_ uint8_t *buf = malloc(HASH_CHUNK);
	uint8_t digest[BMAP_DIGEST_MAX];
	int r;

	if (!d || !buf)
		return bmap_error(c->ctx, -ENOMEM, "out of memory");
	for (size_t i = 0; i < bmap_map_get_range_count(map); i++) {
		const struct bmap_range *rg = &bmap_map_get_ranges(map)[i];
		uint64_t off, len;

		bmap_map_range_bytes(map, i, &off, &len);
		r = bmap_source_skip(c->src, off - bmap_source_tell(c->src));
		if (r < 0)
			return r;
		bmap_digest_reset(d);
		for (uint64_t done = 0; done < len;) {
			size_t n = len - done < HASH_CHUNK ? (size_t)(len - done) : HASH_CHUNK;
			ssize_t got;

			if (c->cancel && atomic_load(c->cancel))
				return bmap_error(c->ctx, -EINTR, "interrupted");
			got = bmap_source_read(c->src, buf, n);
			if (got < 0)
				return (int)got;
			if ((size_t)got < n)
				return bmap_error(c->ctx, -EPIPE, "image file '%s' ends inside its data",
						  c->name);
			bmap_digest_update(d, buf, n);
			done += n;
		}
		bmap_digest_final(d, digest);
		r = bmap_writer_add_range(c->w, rg->first, rg->last, digest);
		if (r < 0)
			return r;
	}
	r = bmap_source_skip(c->src, c->size - bmap_source_tell(c->src));
	if (r == 0 && bmap_source_read(c->src, buf, 1) < 0)
		r = -EIO;
	return r;
}

int bmap_create_from_source(struct bmap_ctx *ctx, struct bmap_source *src,
			    const struct bmap_map *map, int out_fd, const char *out_name,
			    const struct bmap_create_opts *opts, struct bmap_create_result *ret_result)
{
	struct creator c = {
		.ctx = ctx, .fd = -1, .name = bmap_source_get_name(src), .cs_type = "sha256",
		.lock = PTHREAD_MUTEX_INITIALIZER, .src = src,
	};
	struct bmap_map *scaled = NULL;
	const struct bmap_range *rg;
	int r;

	c.bs = opts && opts->block_size ? opts->block_size : 4096;
	c.checksums = !(opts && opts->no_checksum);
	c.threads = opts && opts->threads ? opts->threads : default_threads();
	c.cancel = opts ? opts->cancel : NULL;
	if (c.threads > MAX_THREADS)
		c.threads = MAX_THREADS;
	if (c.bs < 512 || (c.bs & (c.bs - 1)))
		return bmap_error(ctx, -EINVAL, "block size %" PRIu32 " is not a power of two >= 512",
				  c.bs);
	c.size = bmap_map_get_image_size(map);
	if (c.size == 0)
		return bmap_error(ctx, -EINVAL, "cannot generate bmap for the zero-sized disk of '%s'",
				  c.name);
	c.sha_ni = sha256_ni_available() && !(secure_getenv("BMAP_SHA_NI") &&
					      strcmp(secure_getenv("BMAP_SHA_NI"), "0") == 0);
	/* The bmap's blocks, rounded out from the format's (clusters). */
	scaled = source_map_rescale(map, c.bs);
	c.jobs = malloc(BATCH_RANGES * sizeof(*c.jobs));
	c.order = malloc(BATCH_RANGES * sizeof(*c.order));
	if (!scaled || !c.jobs || !c.order) {
		r = bmap_error(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	r = bmap_writer_new(ctx, out_fd, out_name, c.size, c.bs, c.cs_type, &c.w);
	if (r < 0)
		goto out;
	rg = bmap_map_get_ranges(scaled);
	if (c.checksums && !source_can_pread(src)) {
		r = hash_in_order(&c, scaled);
	} else {
		for (size_t i = 0; i < bmap_map_get_range_count(scaled) && r >= 0; i++)
			r = on_range(&c, rg[i].first, rg[i].last);
		if (r >= 0)
			r = flush_batch(&c);
	}
	if (r >= 0)
		r = bmap_writer_finish(c.w);
	if (r >= 0 && ret_result) {
		ret_result->image_size = c.size;
		ret_result->blocks_count = (c.size + c.bs - 1) / c.bs;
		ret_result->mapped_blocks = bmap_writer_get_mapped_blocks(c.w);
	}
out:
	bmap_map_free(scaled);
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
