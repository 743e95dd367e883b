/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The spill file: a compressed image or a pipe, decoded once for several
 * destinations (see bmaptool-multi.h). One decoder thread copies the stream
 * through the bmap into a sparse temporary file, publishing how far it got
 * (bmap_copy_opts.written); every destination copies from that file as far
 * as it is filled (bmap_copy_opts.wait). So a fast card never waits for a
 * slow one and no card paces the decoder: what a slow card has not written
 * yet waits in the file (in the page cache, or on disk when memory is short),
 * not in memory of ours. The file is unlinked at once (O_TMPFILE where the
 * file system has it): nothing is left behind, even after a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "bmaptool.h"
#include "bmaptool-multi.h"
#include "source.h"
#include "util.h"

struct spill {
	int fd;
	char dir[PATH_MAX];
	char name[PATH_MAX + 64];  /* readers' image name, for messages */
	char announce[2 * PATH_MAX + 160]; /* where it went, said by spill_start() */

	/* the decoder */
	struct bmap_ctx *ctx;
	struct bmap_source *src;
	struct bmap_target *target;
	const struct bmap_map *map;
	bool no_verify;
	pthread_t tid;
	bool started;
	atomic_int stop;           /* its bmap_copy's cancel */

	pthread_mutex_t lock;
	pthread_cond_t cond;       /* on every change of the two below */
	uint64_t written;          /* every mapped byte below this is in the file */
	int status;                /* 0 running, 1 done, -errno failed */
	char error[1024];          /* why it failed */
};

/* An unlinked file in @dir: O_TMPFILE never has a name; elsewhere a name is
 * made and removed at once. */
static int open_unlinked(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	fd = open(dir, O_TMPFILE | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	if (snprintf(path, sizeof(path), "%s/bmaptool-spill.XXXXXX", dir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

/* Free bytes for us in @dir, or -errno. */
static int64_t room_in(const char *dir)
{
	struct statvfs v;

	if (statvfs(dir, &v) < 0)
		return -errno;
	if (v.f_frsize && v.f_bavail > (uint64_t)INT64_MAX / v.f_frsize)
		return INT64_MAX;
	return (int64_t)(v.f_bavail * v.f_frsize);
}

int spill_new(const char *image, const char *verb, uint64_t mapped, size_t n_ranges,
	      struct spill **ret)
{
	const char *tmpdir = getenv("TMPDIR");
	const char *dirs[2] = { tmpdir && *tmpdir ? tmpdir : "/var/tmp", "/var/tmp" };
	size_t n_dirs = strcmp(dirs[0], dirs[1]) == 0 ? 1 : 2;
	char why[2][PATH_MAX + 128], what[PATH_MAX + 4], h1[32], h2[32];
	uint64_t need = mapped;
	struct spill *s;
	int r = -ENOSPC;

	/* Each range may take a partial file system block at both ends. */
	if (mapped)
		need = n_ranges > (UINT64_MAX - mapped) / 8192 ? UINT64_MAX
							       : mapped + (uint64_t)n_ranges * 8192;
	s = calloc(1, sizeof(*s));
	if (!s) {
		error("out of memory");
		return -ENOMEM;
	}
	s->fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	for (size_t i = 0; i < n_dirs; i++) {
		int64_t room = room_in(dirs[i]);

		if (room < 0) {
			r = (int)room;
			snprintf(why[i], sizeof(why[i]), "'%s': %s", dirs[i], strerror(-r));
			continue;
		}
		/* Without a map the size is not known: the decoder's writes
		 * say when the room runs out. */
		if (mapped && (uint64_t)room < need) {
			r = -ENOSPC;
			snprintf(why[i], sizeof(why[i]), "'%s' has %s free", dirs[i],
				 human_size((uint64_t)room, h1));
			continue;
		}
		s->fd = open_unlinked(dirs[i]);
		if (s->fd >= 0) {
			snprintf(s->dir, sizeof(s->dir), "%s", dirs[i]);
			if (i > 0)
				info("not in TMPDIR for the spill file: %s", why[0]);
			break;
		}
		r = -errno;
		snprintf(why[i], sizeof(why[i]), "cannot create a file in '%s': %s", dirs[i],
			 strerror(-r));
	}
	if (strcmp(image, "-") == 0)
		snprintf(what, sizeof(what), "the image on standard input");
	else
	{
		_cleanup_free_ char *name = shown(image);

		snprintf(what, sizeof(what), "'%s'", name);
	}
	if (s->fd < 0) {
		if (mapped)
			error("no room for the spill file of %s (%s of mapped data): %s%s%s; set "
			      "TMPDIR to a folder with room",
			      what, human_size(need, h2), why[0], n_dirs > 1 ? ", " : "",
			      n_dirs > 1 ? why[1] : "");
		else
			error("no spill file for %s: %s%s%s; set TMPDIR to a folder with room",
			      what, why[0], n_dirs > 1 ? ", " : "", n_dirs > 1 ? why[1] : "");
		spill_free(s);
		return r;
	}
	snprintf(s->name, sizeof(s->name), "%s, decoded into %s",
		 strcmp(image, "-") == 0 ? "standard input" : image, s->dir);
	if (mapped)
		snprintf(s->announce, sizeof(s->announce),
			 "%s %s once, into a spill file in '%s' (%s of mapped data; already "
			 "deleted, nothing is left behind)",
			 verb, what, s->dir, human_size(mapped, h1));
	else
		snprintf(s->announce, sizeof(s->announce),
			 "%s %s once, into a spill file in '%s' (every byte: no bmap; already "
			 "deleted, nothing is left behind)",
			 verb, what, s->dir);
	*ret = s;
	return 0;
}

static void on_written(void *userdata, uint64_t end)
{
	struct spill *s = userdata;

	pthread_mutex_lock(&s->lock);
	s->written = end;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void *decode_thread(void *arg)
{
	struct spill *s = arg;
	struct bmap_copy_opts copts = {
		.no_verify = s->no_verify,
		.cancel = &s->stop,
		.written = on_written,
		.written_userdata = s,
	};
	int r = bmap_copy(s->ctx, s->src, s->map, s->target, &copts, NULL);

	pthread_mutex_lock(&s->lock);
	if (r < 0) {
		const char *e = bmap_ctx_get_error(s->ctx);

		snprintf(s->error, sizeof(s->error), "%s", *e ? e : strerror(-r));
		s->status = r;
	} else {
		s->status = 1;
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int spill_start(struct spill *s, struct bmap_ctx *ctx, struct bmap_source *src,
		const struct bmap_map *map, bool no_verify)
{
	struct bmap_target_opts topts = {
		.mode = BMAP_TARGET_WRITE,
		.image_size = map ? bmap_map_get_image_size(map) : 0,
		.no_sync = true, /* nobody needs it on the disk */
	};
	char name[PATH_MAX + 32];
	int r;

	s->ctx = ctx;
	s->src = src;
	s->map = map;
	s->no_verify = no_verify;
	snprintf(name, sizeof(name), "the spill file in '%s'", s->dir);
	r = bmap_target_open_fd(ctx, s->fd, name, &topts, &s->target);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	info("%s", s->announce);
	if (pthread_create(&s->tid, NULL, decode_thread, s) != 0) {
		error("cannot start a thread");
		return -EAGAIN;
	}
	s->started = true;
	return 0;
}

int spill_open_reader(struct spill *s, struct bmap_ctx *ctx, struct bmap_source **ret)
{
	char path[64];
	int fd;

	/* Our own file description: a reader's offset is its own. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		error("cannot open the spill file in '%s' again through %s: %s (is /proc "
		      "mounted?)",
		      s->dir, path, strerror(-r));
		return r;
	}
	return bmap_source_open_raw_fd(ctx, fd, s->name, ret);
}

int spill_wait(void *userdata, uint64_t end, char *why, size_t why_len)
{
	struct spill *s = userdata;
	int r = 0;

	pthread_mutex_lock(&s->lock);
	while (s->status == 0 && s->written < end && !interrupted) {
		/* A signal handler cannot signal a condition: look at the
		 * flag ten times a second. */
		struct timespec ts = deadline_in_ms(100);

		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	if (s->status < 0) {
		snprintf(why, why_len, "%s", s->error);
		r = s->status;
	} else if (s->status == 0 && s->written < end) {
		snprintf(why, why_len, "interrupted");
		r = -EINTR;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int spill_verdict(struct spill *s, char *why, size_t why_len)
{
	return spill_wait(s, UINT64_MAX, why, why_len);
}

uint64_t spill_progress(struct spill *s, bool *ret_ended)
{
	uint64_t w;

	pthread_mutex_lock(&s->lock);
	w = s->written;
	*ret_ended = s->status != 0;
	pthread_mutex_unlock(&s->lock);
	return w;
}

void spill_stop(struct spill *s)
{
	s->stop = 1;
}

struct spill *spill_free(struct spill *s)
{
	if (!s)
		return NULL;
	if (s->started) {
		s->stop = 1;
		pthread_join(s->tid, NULL);
	}
	bmap_target_free(s->target); /* does not own the fd */
	if (s->fd >= 0)
		close(s->fd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return NULL;
}
