/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool copy / verify IMAGE DEST1 DEST2 ...: one image, every destination
 * at once, each on its own (see bmaptool-multi.h).
 *
 * Every DEST is opened and guarded first; a refused one is reported and
 * counted failed, the others go on. Then one thread per destination runs
 * bmap_copy() (or bmap_verify()) with a context, a source, a progress and a
 * result of its own, so that a failing or pulled card ends only itself:
 *  - a raw image file is read by every destination straight from the file
 *    (a file description each: sources are not thread-safe), the page cache
 *    making it one read of the disk;
 *  - a compressed image or a pipe is decoded once, by a thread of its own,
 *    into a spill file (bmaptool-spill.c) that every destination copies from
 *    as far as it is filled. A destination is good only once the whole
 *    stream passed its checks; when the decoder fails, so does everyone
 *    still depending on it, with the decoder's error.
 * verify reads each destination back in parallel; it needs the image only
 * to compare bytes (no checksums in the bmap, or --nobmap), from the raw
 * file or the spill as above.
 *
 * All output is the main thread's, destinations' lines prefixed with the
 * destination's name, as each one ends; then a summary. Exit 0 only when
 * every destination succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bmaptool.h"
#include "bmaptool-multi.h"
#include "source.h"
#include "util.h"

enum outcome {
	DEST_RUNNING,
	DEST_OK,
	DEST_REFUSED,    /* a guard said no: nothing was written */
	DEST_FAILED,
	DEST_GONE,       /* the medium went away */
	DEST_INTERRUPTED,
};

struct multi;

struct dest {
	struct multi *m;
	const char *name;  /* as given */
	const char *label; /* its last component, for the status line */
	struct bmap_ctx *ctx;
	struct bmap_target *target;
	struct bmap_source *src; /* its own reader; NULL when verify needs none */
	struct bmap_copy_opts copts;
	pthread_t tid;
	bool started;
	atomic_bool ended;
	bool reported;
	enum outcome outcome;
	char why[1024];
	struct bmap_copy_result cres;
	struct bmap_verify_result vres;
	atomic_uint_fast64_t done, total;
};

struct multi {
	const struct multi_args *a;
	pthread_mutex_t lock;
	pthread_cond_t ended; /* a destination ended: its lines are due */
	struct bmap_map *map;
	struct spill *spill;
	uint64_t image_size; /* 0: unknown (a stream without a bmap) */
	struct dest *d;
	size_t n;
};

/* ---- the same destination twice ---- */

struct dest_id {
	char kind; /* 'b' device, 'f' file, 'p' a file to be created, 0 unknown */
	dev_t dev;
	ino_t ino;
	char path[PATH_MAX];
};

static void dest_identity(const char *name, struct dest_id *id)
{
	char dir[PATH_MAX], base[PATH_MAX], real[PATH_MAX];
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(name, &st) == 0) {
		id->kind = S_ISBLK(st.st_mode) ? 'b' : 'f';
		id->dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
		id->ino = st.st_ino;
		return;
	}
	if (errno != ENOENT || strlen(name) >= sizeof(dir))
		return; /* the open says what is wrong with it */
	/* Not there yet: its folder's real path and its own name. */
	snprintf(dir, sizeof(dir), "%s", name);
	snprintf(base, sizeof(base), "%s", name);
	if (!realpath(dirname(dir), real))
		return;
	if (snprintf(id->path, sizeof(id->path), "%s/%s", real, basename(base)) <
	    (int)sizeof(id->path))
		id->kind = 'p';
}

static bool same_id(const struct dest_id *a, const struct dest_id *b)
{
	if (!a->kind || a->kind != b->kind)
		return false;
	if (a->kind == 'p')
		return strcmp(a->path, b->path) == 0;
	return a->dev == b->dev && (a->kind == 'b' || a->ino == b->ino);
}

/* A usage error when two DESTs are one, or a DEST is the image. */
static int check_distinct(const struct multi_args *a)
{
	const char *cmd = a->verify ? "verify " : "copy ";
	struct dest_id *ids = calloc(a->n_dests, sizeof(*ids)), image;
	int ret = 0;

	if (!ids) {
		error("out of memory");
		return EXIT_FAILURE;
	}
	memset(&image, 0, sizeof(image));
	if (strcmp(a->image, "-") != 0)
		dest_identity(a->image, &image);
	for (size_t i = 0; i < a->n_dests && !ret; i++) {
		dest_identity(a->dests[i], &ids[i]);
		if (same_id(&ids[i], &image))
			ret = usage_error(cmd, "DEST '%s' is the image '%s' itself", a->dests[i],
					  a->image);
		for (size_t j = 0; j < i && !ret; j++)
			if (same_id(&ids[i], &ids[j]))
				ret = usage_error(cmd, "DEST '%s' and DEST '%s' are the same %s",
						  a->dests[j], a->dests[i],
						  ids[i].kind == 'b' ? "device" : "file");
	}
	free(ids);
	return ret;
}

/* ---- per destination ---- */

static void dest_log(void *userdata, enum bmap_log_level level, const char *text)
{
	struct dest *d = userdata;

	msg(level, "%s: %s", d->name, text);
}

static void dest_progress(void *userdata, uint64_t done, uint64_t total)
{
	struct dest *d = userdata;

	atomic_store(&d->done, done);
	atomic_store(&d->total, total);
}

/* The end of a destination's copy or verify: @r and what it means. */
static void dest_end(struct dest *d, int r)
{
	struct multi *m = d->m;
	char why[1024];

	if (r >= 0 && m->spill) {
		/* Good only if the whole stream passed its checks. */
		r = spill_verdict(m->spill, why, sizeof(why));
		if (r < 0)
			snprintf(d->why, sizeof(d->why), "%s", why);
	} else if (r < 0) {
		snprintf(d->why, sizeof(d->why), "%s", bmap_ctx_get_error(d->ctx));
		/* Bad data may be the image's: the decoder's verdict names it. */
		if (m->spill && (r == -EBADMSG || r == -EPIPE) &&
		    spill_verdict(m->spill, why, sizeof(why)) < 0)
			snprintf(d->why, sizeof(d->why), "%s", why);
	}
	if (r >= 0)
		d->outcome = DEST_OK;
	else if (r == -EINTR)
		d->outcome = DEST_INTERRUPTED;
	else if (bmap_target_medium_gone(d->target, r))
		d->outcome = DEST_GONE;
	else
		d->outcome = DEST_FAILED;
	pthread_mutex_lock(&m->lock);
	atomic_store(&d->ended, true);
	pthread_cond_signal(&m->ended);
	pthread_mutex_unlock(&m->lock);
}

static void *copy_thread(void *arg)
{
	struct dest *d = arg;

	dest_end(d, bmap_copy(d->ctx, d->src, d->m->map, d->target, &d->copts, &d->cres));
	return NULL;
}

static void *verify_thread(void *arg)
{
	struct dest *d = arg;
	int r = bmap_verify(d->ctx, d->target, d->m->map, d->src, &d->copts, &d->vres);

	dest_end(d, r);
	return NULL;
}

/* Its result lines, as single-destination copy and verify print them. */
static void dest_report(struct multi *m, struct dest *d)
{
	char t[32], sz[32], sp[32], hex[65];
	const char *verb = m->a->verify ? "verifying" : "writing";

	switch (d->outcome) {
	case DEST_OK:
		if (m->a->verify) {
			hex_encode(d->vres.data_sha256, 32, hex);
			info("%s: verified %s in %s (%s/sec): everything matches", d->name,
			     human_size(d->vres.bytes_read, sz), human_time(d->vres.seconds, t),
			     human_size(d->vres.seconds > 0 ? (uint64_t)((double)d->vres.bytes_read /
									 d->vres.seconds)
							    : d->vres.bytes_read,
					sp));
			info("%s: sha256 of the data read back: %s", d->name, hex);
		} else {
			hex_encode(d->cres.data_sha256, 32, hex);
			info("%s: copying time: %s, copying speed %s/sec", d->name,
			     human_time(d->cres.seconds, t),
			     human_size(d->cres.seconds > 0
						? (uint64_t)((double)d->cres.bytes_written /
							     d->cres.seconds)
						: d->cres.bytes_written,
					sp));
			info("%s: sha256 of the data written: %s", d->name, hex);
		}
		break;
	case DEST_INTERRUPTED:
		if (m->a->verify)
			error("%s: interrupted", d->name);
		else
			error("%s: interrupted; '%s' was synced and closed, its content is "
			      "incomplete",
			      d->name, d->name);
		break;
	case DEST_GONE:
		error("%s: the medium went away (card pulled?) while %s: %s", d->name, verb,
		      d->why);
		break;
	default:
		error("%s: %s", d->name, d->why);
		break;
	}
}

/* ---- opening ---- */

/* Every destination opened and guarded; the refused ones say why. */
static size_t open_dests(struct multi *m)
{
	const struct multi_args *a = m->a;
	struct bmap_target_opts topts = {
		.mode = a->verify ? BMAP_TARGET_READ : BMAP_TARGET_WRITE,
		.removable_only = a->removable,
	};
	uint64_t image_size = m->image_size;
	size_t n_open = 0;

	if (!a->verify)
		topts.image_size = image_size;
	for (size_t i = 0; i < m->n; i++) {
		struct dest *d = &m->d[i];
		int r;

		d->ctx = bmap_ctx_new();
		if (!d->ctx) {
			error("out of memory");
			exit(EXIT_FAILURE);
		}
		bmap_ctx_set_log_fn(d->ctx, dest_log, d);
		d->copts = (struct bmap_copy_opts){ .no_verify = a->no_verify,
						    .cancel = &interrupted,
						    .progress = dest_progress,
						    .progress_userdata = d };
		/* Until the engine's first word on it. */
		atomic_store(&d->total, m->map ? bmap_map_get_mapped_bytes(m->map) : image_size);
		r = bmap_target_open(d->ctx, d->name, &topts, &d->target);
		if (r < 0)
			snprintf(d->why, sizeof(d->why), "%s", bmap_ctx_get_error(d->ctx));
		else if (a->verify && m->map && bmap_target_get_size(d->target) < image_size)
			snprintf(d->why, sizeof(d->why),
				 "'%s' is smaller (%" PRIu64 " bytes) than the image (%" PRIu64
				 " bytes)",
				 d->name, bmap_target_get_size(d->target), image_size);
		else {
			n_open++;
			continue;
		}
		d->target = bmap_target_free(d->target);
		d->outcome = DEST_REFUSED;
		d->reported = true;
		error("%s: %s", d->name, d->why);
	}
	return n_open;
}

/* Fails every destination still waiting to start, with @why. */
static void fail_waiting(struct multi *m, const char *why)
{
	for (size_t i = 0; i < m->n; i++) {
		struct dest *d = &m->d[i];

		if (d->outcome != DEST_RUNNING || d->started)
			continue;
		d->outcome = DEST_FAILED;
		d->reported = true;
		snprintf(d->why, sizeof(d->why), "%s", why);
	}
}

/* Each destination's reader: its own description of the raw image file,
 * a reader of the spill, or none (verify against checksums). */
static int open_readers(struct multi *m, struct bmap_source *src)
{
	int raw_fd = bmap_source_get_raw_fd(src);

	for (size_t i = 0; i < m->n; i++) {
		struct dest *d = &m->d[i];
		char path[64];
		int fd, r;

		if (d->outcome != DEST_RUNNING)
			continue;
		if (m->spill) {
			r = spill_open_reader(m->spill, d->ctx, &d->src);
			if (r < 0)
				return r;
			d->copts.wait = spill_wait;
			d->copts.wait_userdata = m->spill;
			continue;
		}
		if (raw_fd < 0)
			continue; /* verify with checksums */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", raw_fd);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			error("cannot open image file '%s' again through %s: %s (is /proc mounted?)",
			      m->a->image, path, strerror(-r));
			return r;
		}
		r = bmap_source_open_raw_fd(d->ctx, fd, bmap_source_get_name(src), &d->src);
		if (r < 0) {
			error("%s", bmap_ctx_get_error(d->ctx));
			return r;
		}
	}
	return 0;
}

/* ---- while they run ---- */

/* A destination's outcome as the main thread may read it: its thread
 * writes it before it says it ended. */
static enum outcome outcome_now(const struct dest *d)
{
	if (d->started && !atomic_load(&d->ended))
		return DEST_RUNNING;
	return d->outcome;
}

/* One line with every destination: "loop3 45%  loop4 done  loop5 failed". */
static void draw_status(struct multi *m)
{
	char line[4096];
	size_t n = 0;
	bool ended;

	n += (size_t)snprintf(line + n, sizeof(line) - n, "bmaptool:");
	if (m->spill && m->map) {
		uint64_t w = spill_progress(m->spill, &ended), size = bmap_map_get_image_size(m->map);

		if (!ended && size)
			n += (size_t)snprintf(line + n, sizeof(line) - n, " image %3d%% |",
					      (int)((w < size ? w : size) * 100 / size));
	}
	for (size_t i = 0; i < m->n && n < sizeof(line) - 64; i++) {
		struct dest *d = &m->d[i];
		uint64_t done = atomic_load(&d->done), total = atomic_load(&d->total);
		const char *sep = i ? "  " : " ";
		enum outcome o = outcome_now(d);

		if (o == DEST_RUNNING && total)
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%.24s %3d%%", sep,
					      d->label, (int)((done < total ? done : total) * 100 / total));
		else if (o == DEST_RUNNING) /* a stream without a bmap */
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%.24s %.1f MiB", sep,
					      d->label, (double)done / 1048576.0);
		else
			n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%.24s %s", sep, d->label,
					      o == DEST_OK ? "done" : "failed");
	}
	status_line(line);
}

/* psplash gets the slowest destination still going. */
static void psplash_update(struct multi *m, int *last)
{
	int lowest = 101;

	for (size_t i = 0; i < m->n; i++) {
		struct dest *d = &m->d[i];
		uint64_t total = atomic_load(&d->total);
		int p = total ? (int)(atomic_load(&d->done) * 100 / total) : 0;
		enum outcome o = outcome_now(d);

		if (o == DEST_RUNNING || o == DEST_OK)
			lowest = p < lowest ? p : lowest;
	}
	if (lowest <= 100 && lowest != *last)
		psplash_write(m->a->psplash, lowest);
	*last = lowest;
}

/* Until a destination ends, or a tenth of a second (the status line,
 * psplash, and the signal flag). */
static void wait_ended(struct multi *m)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 100 * 1000 * 1000;
	if (ts.tv_nsec >= 1000 * 1000 * 1000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000 * 1000 * 1000;
	}
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++)
		if (m->d[i].started && !m->d[i].reported && atomic_load(&m->d[i].ended))
			goto out; /* ended since we looked */
	pthread_cond_timedwait(&m->ended, &m->lock, &ts);
out:
	pthread_mutex_unlock(&m->lock);
}

/* Until every started destination ended: their lines as they end, the
 * status line on a terminal. */
static void watch(struct multi *m)
{
	bool tty = progress_on_tty();
	double last_draw = 0;
	int last_psplash = -1;

	for (;;) {
		bool all = true;

		for (size_t i = 0; i < m->n; i++) {
			struct dest *d = &m->d[i];

			if (!d->started || d->reported)
				continue;
			if (!atomic_load(&d->ended)) {
				all = false;
				continue;
			}
			pthread_join(d->tid, NULL);
			d->started = false;
			d->reported = true;
			dest_report(m, d);
		}
		if (all)
			break;
		if (interrupted && m->spill)
			spill_stop(m->spill);
		if (m->a->psplash)
			psplash_update(m, &last_psplash);
		if (tty && now_monotonic() - last_draw >= 0.25) {
			draw_status(m);
			last_draw = now_monotonic();
		}
		wait_ended(m);
	}
	status_line_clear();
}

/* ---- the summary ---- */

static int summary(struct multi *m)
{
	static const char *const kind[] = {
		[DEST_RUNNING] = "not started", [DEST_REFUSED] = "refused",
		[DEST_FAILED] = "failed", [DEST_GONE] = "removed",
		[DEST_INTERRUPTED] = "interrupted",
	};
	const char *what = m->a->verify ? "verified" : "copied to";
	size_t ok = 0;

	for (size_t i = 0; i < m->n; i++)
		ok += m->d[i].outcome == DEST_OK;
	if (ok == m->n) {
		info("%s %zu of %zu destinations", what, ok, m->n);
		return EXIT_SUCCESS;
	}
	error("%s %zu of %zu destinations; %zu failed:", what, ok, m->n, m->n - ok);
	for (size_t i = 0; i < m->n; i++) {
		struct dest *d = &m->d[i];

		if (d->outcome == DEST_OK)
			continue;
		if (d->outcome == DEST_INTERRUPTED)
			error("  %s: interrupted", d->name);
		else
			error("  %s: %s: %s", d->name, kind[d->outcome], d->why);
	}
	return EXIT_FAILURE;
}

/* ---- the command ---- */

static void announce(struct multi *m, struct bmap_source *src, size_t n_open)
{
	const struct bmap_map *map = m->map;
	char list[2048] = "";
	size_t n = 0;

	for (size_t i = 0; i < m->n && n < sizeof(list) - 1; i++)
		if (m->d[i].outcome == DEST_RUNNING)
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%s'%s'", n ? ", " : "",
					      m->d[i].name);
	if (m->a->verify) {
		info("verifying %zu destination%s against %s: %s", n_open, n_open == 1 ? "" : "s",
		     map && bmap_map_has_range_checksums(map) ? "the bmap's checksums"
							      : "the image, byte for byte",
		     list);
		return;
	}
	if (map && bmap_map_has_range_checksums(map) && m->a->no_verify)
		info("--no-verify: the ranges' checksums are not checked");
	info("block map format version %s",
	     map && *bmap_map_get_version(map) ? bmap_map_get_version(map) : "(none)");
	if (map) {
		char h1[32], h2[32];

		info("%" PRIu64 " blocks of size %" PRIu32 " (%s), mapped %" PRIu64
		     " blocks (%s or %.1f%%)",
		     bmap_map_get_blocks_count(map), bmap_map_get_block_size(map),
		     human_size(bmap_map_get_image_size(map), h1), bmap_map_get_mapped_blocks(map),
		     human_size(bmap_map_get_mapped_bytes(map), h2),
		     (double)bmap_map_get_mapped_blocks(map) * 100.0 /
			     (double)bmap_map_get_blocks_count(map));
	}
	info("copying image '%s' to %zu destination%s%s: %s", m->a->image, n_open,
	     n_open == 1 ? "" : "s",
	     bmap_source_get_raw_fd(src) >= 0 ? " (each reading the image file)" : "", list);
}

int multi_run(const struct multi_args *a)
{
	struct multi m = { .a = a, .n = a->n_dests, .lock = PTHREAD_MUTEX_INITIALIZER,
			   .ended = PTHREAD_COND_INITIALIZER };
	struct bmap_source *src = NULL;
	struct bmap_ctx *ctx;
	size_t n_open;
	bool need_image;
	int r, ret;

	ret = check_distinct(a);
	if (ret)
		return ret;
	m.d = calloc(m.n, sizeof(*m.d));
	if (!m.d) {
		error("out of memory");
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < m.n; i++) {
		const char *slash = strrchr(a->dests[i], '/');

		m.d[i].m = &m;
		m.d[i].name = a->dests[i];
		m.d[i].label = slash && slash[1] ? slash + 1 : a->dests[i];
	}
	ctx = ctx_new();
	catch_signals();
	if (open_image(ctx, a->image, a->bmap, a->nobmap, a->verify ? "verify" : "copy", &src,
		       &m.map) < 0) {
		ret = EXIT_FAILURE;
		goto out;
	}
	if (m.map) {
		m.image_size = bmap_map_get_image_size(m.map);
	} else {
		struct stat st;
		int fd = bmap_source_get_raw_fd(src);

		/* --nobmap: a raw file's size still refuses a small device. */
		if (fd >= 0 && fstat(fd, &st) == 0)
			m.image_size = (uint64_t)st.st_size;
	}
	/* A stream is decoded once; a raw file is read by each; verify against
	 * checksums reads no image at all. No room for the spill: no
	 * destination is touched. */
	need_image = !a->verify || !m.map || !bmap_map_has_range_checksums(m.map);
	if (need_image && bmap_source_get_raw_fd(src) < 0) {
		bool compressed = bmap_source_get_compression(src) != BMAP_COMP_RAW;

		r = spill_new(a->image, compressed ? "decompressing" : "reading",
			      m.map ? bmap_map_get_mapped_bytes(m.map) : 0,
			      m.map ? bmap_map_get_range_count(m.map) : 0, &m.spill);
		if (r < 0) {
			fail_waiting(&m, "no spill file for the image (nothing was written)");
			ret = summary(&m);
			goto out;
		}
	}
	n_open = open_dests(&m);
	if (n_open == 0) {
		ret = summary(&m);
		goto out;
	}
	announce(&m, src, n_open);
	if (m.spill && spill_start(m.spill, ctx, src, m.map, a->no_verify) < 0) {
		fail_waiting(&m, "the image could not be decoded into a spill file");
		ret = summary(&m);
		goto out;
	}
	if (need_image && open_readers(&m, src) < 0) {
		fail_waiting(&m, "the image could not be opened for it");
		ret = summary(&m);
		goto out;
	}
	for (size_t i = 0; i < m.n; i++) {
		struct dest *d = &m.d[i];

		if (d->outcome != DEST_RUNNING)
			continue;
		if (pthread_create(&d->tid, NULL, a->verify ? verify_thread : copy_thread, d) != 0) {
			d->outcome = DEST_FAILED;
			d->reported = true;
			snprintf(d->why, sizeof(d->why), "cannot start a thread");
			error("%s: %s", d->name, d->why);
			continue;
		}
		d->started = true;
	}
	watch(&m);
	ret = summary(&m);
out:
	m.spill = spill_free(m.spill);
	for (size_t i = 0; i < m.n; i++) {
		bmap_source_free(m.d[i].src);
		bmap_target_free(m.d[i].target);
		bmap_ctx_free(m.d[i].ctx);
	}
	free(m.d);
	bmap_map_free(m.map);
	bmap_source_free(src);
	bmap_ctx_free(ctx);
	return ret;
}
