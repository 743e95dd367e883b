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

/* The result @r of a destination's copy or verify, and its reason in
 * d->why: good only if the whole stream passed its checks too. */
static int with_verdict(struct dest *d, int r)
{
	struct multi *m = d->m;
	char why[1024];

	if (r >= 0 && m->spill) {
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
	return r;
}

/* The end of a destination: what @r means, and the main thread told. */
static void dest_end(struct dest *d, int r)
{
	struct multi *m = d->m;

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
	int r = bmap_copy(d->ctx, d->src, d->m->map, d->target, &d->copts, &d->cres);

	r = with_verdict(d, r);
	/* --discard once the image is written and synced (--nobmap: every
	 * byte was written, nothing to discard). */
	if (r >= 0 && d->m->a->discard && d->m->map) {
		r = bmap_target_discard_unmapped(d->ctx, d->target, d->m->map, &interrupted,
						 &d->dres);
		if (r < 0)
			snprintf(d->why, sizeof(d->why), "%s; the image itself was written and synced",
				 bmap_ctx_get_error(d->ctx));
		else
			d->discarded = true;
	}
	dest_end(d, r);
	return NULL;
}

static void *verify_thread(void *arg)
{
	struct dest *d = arg;
	int r = bmap_verify(d->ctx, d->target, d->m->map, d->src, &d->copts, &d->vres);

	dest_end(d, with_verdict(d, r));
	return NULL;
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

/* Until a destination ends, or a tenth of a second (the status line,
 * psplash, and the signal flag). */
static void wait_ended(struct multi *m)
{
	struct timespec ts = deadline_in_ms(100);

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
			multi_report(m, d);
		}
		if (all)
			break;
		if (interrupted && m->spill)
			spill_stop(m->spill);
		if (m->a->psplash)
			multi_psplash(m, &last_psplash);
		if (tty && now_monotonic() - last_draw >= 0.25) {
			multi_status_line(m);
			last_draw = now_monotonic();
		}
		wait_ended(m);
	}
	status_line_clear();
}

/* ---- the command ---- */

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
	if (open_image(ctx, a->image, a->bmap, a->nobmap, &a->sig, a->verify ? "verify" : "copy",
		       &src, &m.map, NULL) < 0) {
		ret = EXIT_FAILURE;
		goto out;
	}
	m.image_size = image_size_of(m.map, src);
	/* A qcow2's or sparse image's own map, cut as a copy from the image
	 * cuts it: every destination copies from the spill file, raw, and
	 * gets the data digest a copy from the image gives. */
	{
		struct bmap_map *work = NULL;

		if (bmap_source_work_map(src, m.map, &work) < 0) {
			error("%s", bmap_ctx_get_error(ctx));
			ret = EXIT_FAILURE;
			goto out;
		}
		if (work) {
			bmap_map_free(m.map);
			m.map = work;
		}
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
			ret = multi_summary(&m);
			goto out;
		}
	}
	n_open = open_dests(&m);
	if (n_open == 0) {
		ret = multi_summary(&m);
		goto out;
	}
	multi_announce(&m, src, n_open);
	if (m.spill && spill_start(m.spill, ctx, src, m.map, a->no_verify) < 0) {
		fail_waiting(&m, "the image could not be decoded into a spill file");
		ret = multi_summary(&m);
		goto out;
	}
	if (need_image && open_readers(&m, src) < 0) {
		fail_waiting(&m, "the image could not be opened for it");
		ret = multi_summary(&m);
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
	ret = multi_summary(&m);
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
