/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared parts of the copy and verify engines (see engine.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "source-format.h"
#include "target.h"
#include "util.h"

int engine_init(struct engine *e, struct bmap_ctx *ctx, const struct bmap_map *map,
		const struct bmap_copy_opts *opts)
{
	static const struct bmap_copy_opts no_opts;

	memset(e, 0, sizeof(*e));
	e->ctx = ctx;
	e->map = map;
	e->opts = opts ? opts : &no_opts;
	pthread_mutex_init(&e->lock, NULL);
	e->n_digests = map ? bmap_map_get_range_count(map) : 1;
	e->digests_cap = e->n_digests ? e->n_digests : 1;
	e->range_sha256 = calloc(e->digests_cap, 32);
	if (!e->range_sha256)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	return 0;
}

int engine_init_ring(struct engine *e, unsigned n_consumers)
{
	size_t slot = ENGINE_SLOT_SIZE;
	int r;

	/* A small image gets small slots (whole 64 KiB, O_DIRECT-aligned):
	 * no 16 MiB of buffers for a 1 MiB image. */
	if (e->map) {
		uint64_t want = bmap_map_get_image_size(e->map) / ENGINE_SLOTS;

		want = (want + 65535) & ~(uint64_t)65535;
		if (want < slot)
			slot = want ? (size_t)want : 65536;
	}
	r = ring_new(ENGINE_SLOTS, slot, n_consumers, &e->ring);

	if (r < 0)
		return bmap_error(e->ctx, r, "out of memory for the copy buffers");
	return 0;
}

void engine_done(struct engine *e)
{
	e->ring = ring_free(e->ring);
	free(e->range_sha256);
	free(e->order);
	pthread_mutex_destroy(&e->lock);
}

int engine_fail(struct engine *e, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&e->lock);
	if (!e->has_error) {
		va_start(ap, fmt);
		vsnprintf(e->error, sizeof(e->error), fmt, ap);
		va_end(ap);
		e->has_error = true;
		atomic_store(&e->failed, err < 0 ? err : -ECANCELED);
	}
	pthread_mutex_unlock(&e->lock);
	if (e->ring)
		ring_abort(e->ring, err);
	return err;
}

int engine_fail_ctx(struct engine *e, int err, const char *what)
{
	char detail[sizeof(e->ctx->error)];

	bmap_ctx_copy_error(e->ctx, detail, sizeof(detail));
	return what ? engine_fail(e, err, "%s (%s)", detail, what)
		    : engine_fail(e, err, "%s", detail);
}

bool engine_stopped(struct engine *e)
{
	if (atomic_load(&e->failed))
		return true;
	if (engine_cancelled(e)) {
		engine_fail(e, -EINTR, "interrupted");
		return true;
	}
	return false;
}

bool engine_cancelled(const struct engine *e)
{
	return e->opts->cancel && *e->opts->cancel;
}

void engine_progress(struct engine *e, uint64_t bytes)
{
	uint64_t done = atomic_fetch_add(&e->done, bytes) + bytes;
	double now;

	if (!e->opts->progress)
		return;
	/* Several workers may get here; one reports at a time. */
	if (pthread_mutex_trylock(&e->lock) != 0)
		return;
	now = now_monotonic();
	if (now - e->last_progress >= 0.25 || done == e->total) {
		e->last_progress = now;
		e->opts->progress(e->opts->progress_userdata, done, e->total);
	}
	pthread_mutex_unlock(&e->lock);
}

int engine_wait(struct engine *e, uint64_t end)
{
	char why[512] = "";
	int r;

	if (!e->opts->wait)
		return 0;
	r = e->opts->wait(e->opts->wait_userdata, end, why, sizeof(why));
	if (r < 0)
		return engine_fail(e, r, "%s", *why ? why : strerror(-r));
	return 0;
}

int engine_status(struct engine *e)
{
	int r = atomic_load(&e->failed);

	if (!r && e->ring)
		r = ring_error(e->ring);
	if (r < 0 && e->has_error)
		bmap_error(e->ctx, r, "%s", e->error);
	else if (r < 0)
		bmap_error(e->ctx, r, "%s", strerror(-r));
	return r;
}

void engine_data_digest(const struct engine *e, uint8_t out[32])
{
	bmap_digest_buffer("sha256", e->range_sha256, e->n_digests * 32, out);
}

/* ---- per-range hashing ---- */

/* The SHA extensions, unless BMAP_SHA_NI=0 (the tests compare both). */
static bool sha_ni_wanted(void)
{
	const char *env = secure_getenv("BMAP_SHA_NI");

	return sha256_ni_available() && !(env && strcmp(env, "0") == 0);
}

static int hash_init(struct engine *e, struct range_hash *h, bool lane)
{
	const char *type = e->map ? bmap_map_get_checksum_type(e->map) : NULL;
	bool other = e->check && type && strcmp(type, "sha256") != 0;

	memset(h, 0, sizeof(*h));
	if (e->source_checked) {
		h->off = true;
		return 0;
	}
	/* One stream alone: OpenSSL's was faster here (bench-formats' simg,
	 * one 2 GiB range: 1.54 s against 1.61 s, 7 runs each). */
	h->ni_on = lane && sha_ni_wanted();
	if (!h->ni_on)
		h->sha256 = bmap_digest_new("sha256");
	if (other)
		h->other = bmap_digest_new(type);
	if ((!h->ni_on && !h->sha256) || (other && !h->other)) {
		range_hash_free(h);
		return engine_fail(e, -ENOMEM, "out of memory");
	}
	return 0;
}

int range_hash_init(struct engine *e, struct range_hash *h)
{
	return hash_init(e, h, false);
}

int range_hash_init_lane(struct engine *e, struct range_hash *h)
{
	return hash_init(e, h, true);
}

void range_hash_free(struct range_hash *h)
{
	h->sha256 = bmap_digest_free(h->sha256);
	h->other = bmap_digest_free(h->other);
}

void range_hash_start(struct range_hash *h)
{
	h->fed = h->zeros = 0;
	if (h->off)
		return;
	if (h->ni_on)
		sha256_ni_init(&h->ni);
	else
		bmap_digest_reset(h->sha256);
	if (h->other)
		bmap_digest_reset(h->other);
}

static void feed(struct range_hash *h, const void *buf, size_t len)
{
	if (h->ni_on)
		sha256_ni_update(&h->ni, buf, len);
	else
		bmap_digest_update(h->sha256, buf, len);
	if (h->other)
		bmap_digest_update(h->other, buf, len);
	h->fed += len;
}

/* The zeros a range began with, now that more follows. */
static void feed_zeros(struct range_hash *h)
{
	uint64_t len = h->zeros;

	h->zeros = 0;
	while (len > 0) {
		size_t n = len < TARGET_ZEROS_SIZE ? (size_t)len : TARGET_ZEROS_SIZE;

		feed(h, target_zeros, n);
		len -= n;
	}
}

void range_hash_update(struct range_hash *h, const void *buf, size_t len)
{
	if (h->off || len == 0)
		return;
	if (h->zeros)
		feed_zeros(h);
	feed(h, buf, len);
}

void range_hash_update2(struct range_hash *a, const void *da, struct range_hash *b,
			const void *db, size_t len)
{
	if (a->off && b->off)
		return;
	if (!a->ni_on || !b->ni_on || a->off || b->off) {
		range_hash_update(a, da, len);
		range_hash_update(b, db, len);
		return;
	}
	if (a->zeros)
		feed_zeros(a);
	if (b->zeros)
		feed_zeros(b);
	sha256_ni_update2(&a->ni, da, &b->ni, db, len);
	a->fed += len;
	b->fed += len;
	if (a->other)
		bmap_digest_update(a->other, da, len);
	if (b->other)
		bmap_digest_update(b->other, db, len);
}

/* Where range @range's SHA-256 goes; the array grows in lazy mode. */
static uint8_t *range_digest(struct engine *e, size_t range)
{
	if (e->lazy && range >= e->digests_cap) {
		size_t cap = e->digests_cap * 2 > range ? e->digests_cap * 2 : range + 1;
		uint8_t *p = reallocarray(e->range_sha256, cap, 32);

		if (!p)
			return NULL;
		e->range_sha256 = p;
		e->digests_cap = cap;
	}
	if (e->lazy && range >= e->n_digests)
		e->n_digests = range + 1;
	return e->range_sha256 + range * 32;
}

void range_hash_zeros(struct range_hash *h, uint64_t len)
{
	if (h->off)
		return;
	h->zeros += len;
	if (h->fed)
		feed_zeros(h);
}

int range_hash_end(struct engine *e, struct range_hash *h, size_t range)
{
	uint8_t *mine = range_digest(e, range), other[BMAP_DIGEST_MAX];
	const uint8_t *got = mine, *want;
	size_t cs_len;

	if (!mine)
		return engine_fail(e, -ENOMEM, "out of memory");
	if (h->off) {
		/* Checked when the source was made; read back against it later. */
		memcpy(mine, bmap_map_get_range_checksum(e->map, range), 32);
		return 0;
	}
	if (h->zeros && !h->fed && !h->other) {
		/* Zeros alone: the digest of so many zeros, memoized. */
		if (engine_zero_sha256(h->zeros, sha_ni_wanted(), mine) < 0)
			return engine_fail(e, -ENOMEM, "out of memory");
		h->zeros = 0;
	} else {
		if (h->zeros)
			feed_zeros(h);
		if (h->ni_on)
			sha256_ni_final(&h->ni, mine);
		else
			bmap_digest_final(h->sha256, mine);
	}
	if (!e->check)
		return 0;
	want = bmap_map_get_range_checksum(e->map, range);
	if (!want)
		return 0;
	if (h->other) {
		bmap_digest_final(h->other, other);
		got = other;
	}
	cs_len = bmap_map_get_checksum_size(e->map);
	if (memcmp(got, want, cs_len) == 0)
		return 0;

	const struct bmap_range *rg = &bmap_map_get_ranges(e->map)[range];
	char hg[2 * BMAP_DIGEST_MAX + 1], hw[2 * BMAP_DIGEST_MAX + 1];

	hex_encode(got, cs_len, hg);
	hex_encode(want, cs_len, hw);
	if (e->abort_on_mismatch)
		return engine_fail(e, -EBADMSG,
				   "checksum mismatch for blocks range %" PRIu64 "-%" PRIu64
				   ": calculated %s, should be %s (image file %s)",
				   rg->first, rg->last, hg, hw, e->image_name);
	pthread_mutex_lock(&e->lock);
	if (atomic_fetch_add(&e->bad_ranges, 1) == 0 || range < e->first_bad)
		e->first_bad = range;
	pthread_mutex_unlock(&e->lock);
	return -EBADMSG;
}

void *engine_range_hasher(void *arg)
{
	struct engine_consumer *c = arg;
	struct engine *e = c->e;
	struct range_hash h;
	struct chunk *ch;
	bool open = false;
	size_t range = 0;

	if (range_hash_init(e, &h) < 0)
		return NULL;
	while ((ch = ring_next(c->ring, c->index))) {
		if (ch->range_start) {
			/* Ranges found as the image is read end where the next
			 * begins (their last chunk is not known in advance). */
			if (open && range_hash_end(e, &h, range) < 0 && e->abort_on_mismatch) {
				ring_release(c->ring, c->index);
				break;
			}
			range_hash_start(&h);
			open = true;
		}
		range = ch->range;
		if (ch->zero)
			range_hash_zeros(&h, ch->len);
		else
			range_hash_update(&h, ch->data, ch->len);
		if (ch->range_end) {
			open = false;
			if (range_hash_end(e, &h, ch->range) < 0 && e->abort_on_mismatch) {
				ring_release(c->ring, c->index);
				break;
			}
		}
		ring_release(c->ring, c->index);
	}
	/* A range of unknown length (no bmap, lazy) ends with the stream. */
	if (open && !atomic_load(&e->failed) && !ring_error(c->ring))
		range_hash_end(e, &h, range);
	range_hash_free(&h);
	return NULL;
}

/* ---- worker pool ---- */

bool engine_take_range(struct engine *e, size_t *ret_range)
{
	size_t i = atomic_fetch_add(&e->next, 1);

	if (i >= bmap_map_get_range_count(e->map) || engine_stopped(e))
		return false;
	*ret_range = e->order[i];
	return true;
}

static int by_size_desc(const void *a, const void *b, void *arg)
{
	const struct bmap_range *r = arg;
	const struct bmap_range *ra = &r[*(const size_t *)a], *rb = &r[*(const size_t *)b];
	uint64_t sa = ra->last - ra->first, sb = rb->last - rb->first;

	if (sa != sb)
		return sa < sb ? 1 : -1;
	/* Equal sizes keep disk order. */
	return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

int engine_run_workers(struct engine *e, void *(*thread)(void *e))
{
	size_t n = bmap_map_get_range_count(e->map);
	pthread_t tids[ENGINE_MAX_WORKERS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want, started = 0;

	e->order = malloc((n ? n : 1) * sizeof(*e->order));
	if (!e->order)
		return engine_fail(e, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		e->order[i] = i;
	/* Largest first balances the workers (LPT scheduling). */
	if (!e->in_order)
		qsort_r(e->order, n, sizeof(*e->order), by_size_desc,
			(void *)bmap_map_get_ranges(e->map));
	atomic_store(&e->next, 0);

	/* One more worker than cores: while one waits for I/O, the others hash. */
	want = cpus > 0 ? (unsigned)cpus + 1 : 2;
	if (want > ENGINE_MAX_WORKERS)
		want = ENGINE_MAX_WORKERS;
	if (want > n)
		want = n ? (unsigned)n : 1;
	for (unsigned t = 0; t < want; t++) {
		if (pthread_create(&tids[t], NULL, thread, e) != 0)
			break;
		started++;
	}
	if (!started)
		thread(e);
	for (unsigned t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	return atomic_load(&e->failed);
}

/* A stream is read to its end: the decoder checks its integrity (CRCs) and
 * an image longer than the bmap says means the bmap is not this image's.
 * One that ends early, after all its mapped data, is copied, as the
 * reference copies it: what is missing is unmapped (the image was cut
 * after its last data), and a regular DEST still gets the bmap's size. */
int engine_drain_stream(struct engine *e)
{
	uint64_t size = bmap_map_get_image_size(e->map), pos = bmap_source_tell(e->source);
	uint8_t extra;
	ssize_t n;
	int r;

	if (pos < size) {
		r = bmap_source_skip(e->source, size - pos);
		if (r == -EPIPE) {
			bmap_log(e->ctx, BMAP_LOG_INFO,
				 "%s ends at byte %" PRIu64 ", before the bmap's image size (%" PRIu64
				 " bytes), after all its mapped data: the rest is unmapped",
				 e->image_name, bmap_source_tell(e->source), size);
			return 0;
		}
		if (r < 0)
			return engine_fail_ctx(e, r, NULL);
	}
	n = bmap_source_read(e->source, &extra, 1);
	if (n < 0)
		return engine_fail_ctx(e, (int)n, NULL);
	if (n > 0)
		return engine_fail(e, -EBADMSG,
				   "%s is longer than the bmap's image size (%" PRIu64
				   " bytes): the bmap does not belong to this image, or the "
				   "image is corrupt",
				   e->image_name, size);
	return 0;
}

int engine_check_raw_size(struct bmap_ctx *ctx, struct bmap_source *src,
			  const struct bmap_map *map, const char *done)
{
	int raw_fd = bmap_source_get_raw_fd(src);
	struct stat st;

	if (raw_fd < 0 || bmap_source_get_format(src) != BMAP_FORMAT_RAW || fstat(raw_fd, &st) < 0 ||
	    (uint64_t)st.st_size == bmap_map_get_image_size(map))
		return 0;
	return bmap_error(ctx, -EINVAL,
			  "image file '%s' is %" PRIu64 " bytes but the bmap describes a "
			  "%" PRIu64 "-byte image: the bmap does not belong to this image; "
			  "nothing was %s",
			  bmap_source_get_name(src), (uint64_t)st.st_size,
			  bmap_map_get_image_size(map), done);
}
