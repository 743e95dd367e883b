/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the copy and verify engines share: the first error of any thread,
 * progress, the per-range hashing, and a pool of range workers.
 *
 * Every range's data is hashed once with SHA-256. That digest checks the
 * range when the bmap's checksums are SHA-256 (the usual case), and the
 * digests of all ranges, in order, make the mapped-data digest: the SHA-256
 * of the concatenated per-range SHA-256 digests. It identifies the mapped
 * data as well as one SHA-256 over all of it would, costs no second pass,
 * and lets different ranges be hashed on different cores.
 *
 * Two shapes run on this:
 *  - a pipeline (streams): the calling thread reads or decompresses in order
 *    into a ring of buffers; consumer threads write and hash;
 *  - a worker pool (random access on both sides: a raw image file, or a
 *    device read back): each worker takes whole ranges, largest first, and
 *    reads, hashes and writes them with its own buffer.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include "bmap-private.h"
#include "ring.h"
#include "sha256-ni.h"

#define ENGINE_SLOT_SIZE (4u << 20)
#define ENGINE_SLOTS 4 /* 16 MiB: enough to keep decoder, writer and hasher busy */
#define ENGINE_MAX_WORKERS 4

struct bmap_target;

struct engine {
	struct bmap_ctx *ctx;
	struct ring *ring; /* pipeline shape only */
	const struct bmap_map *map;
	const struct bmap_copy_opts *opts;
	const char *image_name; /* for messages */
	struct bmap_source *source;
	struct bmap_target *target;

	pthread_mutex_t lock;
	char error[1024]; /* first failure, copied into ctx at the end */
	bool has_error;
	atomic_int failed;

	/* progress */
	atomic_uint_fast64_t done;
	uint64_t total;
	double last_progress;

	/* per-range hashing */
	bool check;             /* compare with the bmap's range checksums */
	bool source_checked;    /* bmap_copy_opts.source_checked, with SHA-256 checksums */
	bool abort_on_mismatch; /* copy stops; verify counts */
	/* No map: the ranges are the self-mapped image's data, found as it
	 * is read (opts->source_map). range_sha256 then grows, and only the
	 * one thread that hashes touches it until the end. */
	bool lazy;
	size_t n_digests, digests_cap;
	uint8_t *range_sha256;  /* n_digests * 32 */
	atomic_size_t bad_ranges;
	size_t first_bad;       /* under lock */

	/* worker pool */
	size_t *order;          /* range indexes, largest first (or in order) */
	bool in_order;          /* image order, for an image still being filled */
	atomic_size_t next;
};

int engine_init(struct engine *e, struct bmap_ctx *ctx, const struct bmap_map *map,
		const struct bmap_copy_opts *opts);
/* The pipeline shape: a ring with @n_consumers consumers. */
int engine_init_ring(struct engine *e, unsigned n_consumers);
void engine_done(struct engine *e);
/* engine_fail() with the context's detail (a format's or a source's
 * words, copied: other threads may record theirs meanwhile), and @what
 * in parentheses after it when not NULL. */
int engine_fail_ctx(struct engine *e, int err, const char *what);
/* Records the first failure and stops everything; returns @err. */
int engine_fail(struct engine *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool engine_stopped(struct engine *e);
bool engine_cancelled(const struct engine *e);
void engine_progress(struct engine *e, uint64_t bytes);
/* With opts->wait: returns once the image's bytes below @end can be read;
 * records the failure (engine_fail) and returns it when they never will. */
int engine_wait(struct engine *e, uint64_t end);
/* The final status: the first error's detail goes to the context. */
int engine_status(struct engine *e);
/* The mapped-data digest (see above). */
void engine_data_digest(const struct engine *e, uint8_t out[32]);

/* Hashing one range: SHA-256 always, the bmap's own type when it differs.
 * The SHA-256 is OpenSSL's, or, for a hash one of two lanes hashed in
 * lockstep (range_hash_init_lane), the x86 SHA extensions' where the CPU
 * has them (ni_on; BMAP_SHA_NI=0 forces OpenSSL): one stream is
 * latency-bound, and two cost little more than one. */
struct range_hash {
	struct bmap_digest *sha256; /* NULL with ni_on */
	struct bmap_digest *other;
	struct sha256_ni ni;
	bool ni_on;
	bool off; /* the source was checked (bmap_copy_opts.source_checked) */
	/* This range so far: bytes hashed, and zeros not hashed yet (a range
	 * that begins with zeros; one of zeros alone is never hashed: its
	 * digest is engine_zero_sha256()'s). */
	uint64_t fed, zeros;
};
int range_hash_init(struct engine *e, struct range_hash *h);
/* A hash for range_hash_update2(): the SHA extensions where they are. */
int range_hash_init_lane(struct engine *e, struct range_hash *h);
void range_hash_free(struct range_hash *h);
void range_hash_start(struct range_hash *h);
void range_hash_update(struct range_hash *h, const void *buf, size_t len);
/* @len bytes each into two ranges' hashes, in lockstep where both are ni_on. */
void range_hash_update2(struct range_hash *a, const void *da, struct range_hash *b,
			const void *db, size_t len);
/* @len zero bytes (a chunk marked zero): hashed only when data follows
 * them in the range (see above). */
void range_hash_zeros(struct range_hash *h, uint64_t len);
/* Stores the range's SHA-256 and checks the bmap's checksum; returns
 * -EBADMSG after recording a mismatch. */
int range_hash_end(struct engine *e, struct range_hash *h, size_t range);

/* The SHA-256 of @len zero bytes (zero-digest.c), memoized: with @ni
 * (the SHA extensions) at most 1 MiB of zeros is hashed for any length,
 * without them each length once. 0 or -ENOMEM. */
int engine_zero_sha256(uint64_t len, bool ni, uint8_t out[32]);

/* Pipeline consumer: hashes and checks each range as its chunks pass. */
struct engine_consumer {
	struct engine *e;
	struct ring *ring;
	unsigned index;
};
void *engine_range_hasher(void *arg);
/* copy.c: writes the chunks of a consumer's ring (struct engine_consumer)
 * to the target. */
void *copy_writer_thread(void *arg);
/* copy-lanes.c: a copy worker of an image read at random (argument: the
 * engine), for engine_run_workers(). */
void *copy_worker(void *arg);

/* ---- the copy's producers for self-mapped images (copy-format.c) ---- */

/* A zero run of a sparse image at least this long goes as one chunk of no
 * data, written by BLKZEROOUT; at most this much per chunk (progress). */
#define ZERO_MIN (64u << 10)
#define ZERO_MAX ((uint64_t)64 << 20)

/* A piece at image offset @at, at most @max bytes (@left to the range's
 * end): a zero run of ZERO_MIN or more passed over (its length, *@ret_zero
 * set), else data read into @buf up to where such a run begins (its
 * length); -1 after engine_fail(). */
int64_t copy_format_piece(struct engine *e, uint8_t *buf, size_t max, uint64_t at,
			  uint64_t left, const char *what, bool *ret_zero);
/* No map: the data of a self-mapped image as it is read, each run between
 * holes a range, into the ring. */
int copy_produce_source_map(struct engine *e);

/* Worker pool: runs @thread(e) on up to ENGINE_MAX_WORKERS threads; each
 * takes ranges with engine_take_range() until it returns false. Ranges come
 * largest first. */
int engine_run_workers(struct engine *e, void *(*thread)(void *e));
bool engine_take_range(struct engine *e, size_t *ret_range);

/* A stream whose mapped data was read, read on to its end: the decoder
 * checks its integrity, and one longer than the map's image size is
 * refused (engine_fail()). One that ends early, after all its mapped data,
 * is taken, as the reference takes it (the rest is unmapped). */
int engine_drain_stream(struct engine *e);
/* A raw image file not of the map's image size (refused before anything is
 * done: "nothing was @done"); 0 for anything else. */
int engine_check_raw_size(struct bmap_ctx *ctx, struct bmap_source *src,
			  const struct bmap_map *map, const char *done);
