/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The image cache's filler (see cache-private.h for the files): the process
 * that decompresses an image (a file, or a URL it downloads) into KEY.part, and the lock on KEY.fill that
 * tells its readers whether it lives.
 *
 * The filler is forked by the first worker that finds no entry, but
 * belongs to no card: when that worker ends (its card pulled, timed out or
 * simply done) the filler is reparented to the station (a child
 * subreaper) and goes on for the other cards. When the station is gone,
 * killed with SIGKILL too, nobody would read what it makes: it ends at
 * once, and takes its part with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap-private.h"
#include "cache-private.h"
#include "source.h"

int cache_fill_lock(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

bool cache_fill_alive(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return true;
	return fl.l_type != F_UNLCK;
}

/* KEY.fill of the entry whose file @name is in @dirfd, read-only, or -1. */
static int open_fill_at(int dirfd, const char *name)
{
	char fill[80];

	snprintf(fill, sizeof(fill), "%.64s.fill", name);
	return openat(dirfd, fill, O_RDONLY | O_CLOEXEC);
}

bool cache_fill_alive_at(int dirfd, const char *name)
{
	int fd = open_fill_at(dirfd, name);
	bool alive;

	if (fd < 0)
		return false;
	alive = cache_fill_alive(fd);
	close(fd);
	return alive;
}

uint64_t cache_fill_size_at(int dirfd, const char *name)
{
	int fd = open_fill_at(dirfd, name);
	uint64_t size;

	if (fd < 0)
		return 0;
	/* A plain read of an aligned 64-bit field another process stores
	 * atomically: it sees the old or the new value. */
	if (pread(fd, &size, sizeof(size), offsetof(struct fill_state, size)) != sizeof(size))
		size = 0;
	close(fd);
	return size;
}

struct fill_state *cache_fill_map(const char *path, int *ret_fd)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	struct stat st;
	void *p;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 ||
	    ((uint64_t)st.st_size < FILL_MAP_SIZE && ftruncate(fd, FILL_MAP_SIZE) < 0)) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, FILL_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	*ret_fd = fd;
	return p;
}

/* ---- the filler ---- */

/* In the filler, for its parent-death signal's handler. */
static pid_t filler_station;
static char filler_part[PATH_MAX];

/* The kernel sends the parent-death signal each time the filler's parent
 * dies: once when the worker that forked it ends (the filler is then the
 * station's child, and goes on), and again when the station dies, or at
 * once if the station died first (the worker dies with it): then any
 * other process is its parent. Checked here, in the handler: at the next
 * piece written (seconds away with bzip2), then draining the decoder and
 * syncing the part, the filler outlived a SIGKILLed station by 2-3 s. */
static void on_parent_death(int sig)
{
	(void)sig;
	if (getppid() == filler_station)
		return;
	unlink(filler_part);
	_exit(EXIT_FAILURE);
}

static atomic_int *filler_cancel;

static void on_filler_stop(int sig)
{
	(void)sig;
	if (filler_cancel)
		*filler_cancel = 1;
}

/* In the forked filler, before anything else: its own handlers (the
 * worker's SIGTERM handler also writes to the worker's cancel pipe, whose
 * number, closed here, the part or a socket may get), a reload's SIGUSR1
 * ignored (a fill under way goes on), then the signals the fork waited
 * for, @was. */
static void filler_signals(struct filler *f, const sigset_t *was)
{
	struct sigaction sa = {.sa_handler = on_filler_stop};

	filler_cancel = f->cancel;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGUSR1, SIG_IGN);
	sigprocmask(SIG_SETMASK, was, NULL);
}

/* The writer's progress, published to the readers. */
void cache_fill_written(void *userdata, uint64_t end)
{
	struct filler *f = userdata;

	atomic_store(&f->fill->written, end);
	if (f->src)
		atomic_store(&f->fill->downloaded, bmap_source_get_transferred(f->src));
}

/* The forked filler: decompresses @image (the file open as @image_fd, or
 * the URL @image when it is -1) into @part, checked against the bmap range
 * by range, and names it @path once complete. Never returns. */
static _Noreturn void fill_run(struct filler *f, int image_fd, const char *image,
			       const struct bmap_map *map, const char *part, const char *path)
{
	struct bmap_target_opts topts = {
	    .mode = BMAP_TARGET_WRITE,
	    .image_size = bmap_map_get_image_size(map),
	    .keep_size = true, /* sized by the parent: readers may have it open */
	};
	struct bmap_copy_opts copts = {
	    .cancel = f->cancel, .written = cache_fill_written, .written_userdata = f};
	struct bmap_ctx *ctx;
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	int r;

	cache_filler_setup(f, part);
	ctx = bmap_ctx_new();
	r = ctx ? 0 : -ENOMEM;
	if (r >= 0)
		r = image_fd >= 0 ? bmap_source_open_fd(ctx, image_fd, image, &src)
				  : bmap_source_open(ctx, image, &src);
	f->src = src;
	if (r >= 0)
		r = bmap_target_open(ctx, part, &topts, &dst);
	if (r >= 0)
		r = bmap_copy(ctx, src, map, dst, &copts, NULL);
	if (r >= 0 && fsync(bmap_target_get_fd(dst)) < 0)
		r = -errno;
	if (src)
		atomic_store(&f->fill->downloaded, bmap_source_get_transferred(src));
	f->src = NULL;
	bmap_target_free(dst);
	bmap_source_free(src);
	cache_filler_end(f, ctx, r, bmap_map_get_image_size(map), part, path);
}

void cache_filler_setup(struct filler *f, const char *part)
{
	/* Restarted: the worker's end is only looked at, never an error. */
	struct sigaction sa = {.sa_handler = on_parent_death, .sa_flags = SA_RESTART};
	pid_t parent;

	filler_station = f->station;
	snprintf(filler_part, sizeof(filler_part), "%s", part);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGRTMIN, &sa, NULL) < 0 || prctl(PR_SET_PDEATHSIG, SIGRTMIN) < 0)
		_exit(EXIT_FAILURE);
	/* A parent that died before the signal was set sent none. */
	parent = getppid();
	if (parent != f->worker && parent != f->station) {
		unlink(part);
		_exit(EXIT_FAILURE);
	}
}

bool cache_filler_owns_part(const struct filler *f, const char *part)
{
	struct stat st;

	return stat(part, &st) == 0 && (uint64_t)st.st_ino == atomic_load(&f->fill->ino);
}

_Noreturn void cache_filler_end(struct filler *f, struct bmap_ctx *ctx, int r, uint64_t size,
				const char *part, const char *path)
{
	/* An eviction racing a new fill can leave a second filler of the key
	 * (with a KEY.fill of its own) whose part took the name: never named,
	 * nor removed, by this one. */
	bool mine = cache_filler_owns_part(f, part);

	if (r >= 0 && !mine) {
		r = -ESTALE;
		if (ctx)
			bmap_error(ctx, r, "'%s' was replaced by another fill of the same image", part);
	}
	/* Only a complete, verified entry gets its name. */
	if (r >= 0 && rename(part, path) < 0)
		r = -errno;
	if (r >= 0) {
		atomic_store(&f->fill->written, size);
		atomic_store(&f->fill->status, FILL_DONE);
	} else {
		const char *e = ctx ? bmap_ctx_get_error(ctx) : "";

		snprintf(f->fill->error, sizeof(f->fill->error),
			 "filling the image cache failed: %s", *e ? e : strerror(-r));
		atomic_store(&f->fill->status, r == -EINTR || r == -ECANCELED ? -EINTR : r);
		if (mine)
			unlink(part);
	}
	bmap_ctx_free(ctx);
	_exit(r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}

int cache_fill_start(struct cache_use *u, int lock_fd, int image_fd, const char *image,
		     const struct bmap_map *map, uint64_t self_size, uint64_t self_data,
		     atomic_int *cancel, const char *part, const char *path, char *why,
		     size_t why_len)
{
	/* A self-mapped image (@map NULL): its virtual disk, its data. */
	uint64_t image_size = map ? bmap_map_get_image_size(map) : self_size;
	uint64_t mapped = map ? bmap_map_get_mapped_bytes(map) : self_data;
	struct fill_state *fill = u->fill;
	struct filler f = {.fill = fill, .cancel = cancel, .station = getppid()};
	sigset_t stop, was;
	struct stat st;
	pid_t pid;
	int fd, r;

	atomic_store(&fill->ino, 0);
	atomic_store(&fill->written, 0);
	atomic_store(&fill->downloaded, 0);
	atomic_store(&fill->download_size, 0);
	/* What the part will take, counted against cache_max_size from the
	 * start (its blocks are only what is filled so far). */
	atomic_store(&fill->size, mapped);
	fill->error[0] = '\0';
	atomic_store(&fill->status, FILL_RUNNING);
	/* A new inode: a reader of an earlier, dead fill cannot mistake it. */
	unlink(part);
	fd = open(part, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)image_size) < 0 ||
	    fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot create '%s': %s", part, strerror(-r));
		goto fail;
	}
	close(fd);
	fd = -1;
	/* A filler forked with a cancel already set (a reload's SIGUSR1 to
	 * the prefill, a card pulled) would fail at once, failing the cards
	 * that read along it: the stop signals wait from this check to the
	 * fork (the child inherits none of them pending). */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGUSR1);
	sigprocmask(SIG_BLOCK, &stop, &was);
	if (cancel && *cancel) {
		sigprocmask(SIG_SETMASK, &was, NULL);
		r = -EINTR;
		snprintf(why, why_len, "interrupted");
		goto fail;
	}
	atomic_store(&fill->ino, (uint64_t)st.st_ino);
	u->ino = (uint64_t)st.st_ino;
	f.worker = getpid();
	fflush(NULL);
	pid = fork();
	if (pid != 0)
		sigprocmask(SIG_SETMASK, &was, NULL);
	if (pid < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot fork the cache's filler: %s", strerror(-r));
		goto fail;
	}
	if (pid == 0) {
		/* Nothing of the worker's but the lock and the image: not its
		 * pipe to the station (whose end of file says the worker is
		 * done), nor the card, nor the entry's reader lock. */
		int keep_lo = image_fd >= 0 && image_fd < lock_fd ? image_fd : lock_fd;
		int keep_hi = image_fd > lock_fd ? image_fd : lock_fd;

		if (keep_lo > 3)
			close_range(3, (unsigned)keep_lo - 1, 0);
		if (keep_hi > keep_lo + 1)
			close_range((unsigned)keep_lo + 1, (unsigned)keep_hi - 1, 0);
		close_range((unsigned)keep_hi + 1, ~0u, 0);
		filler_signals(&f, &was);
		if (!map)
			cache_self_run(&f, image_fd, image, part, path);
		fill_run(&f, image_fd, image, map, part, path);
	}
	close(lock_fd);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(part);
	snprintf(fill->error, sizeof(fill->error), "%s", why);
	atomic_store(&fill->status, r);
	close(lock_fd);
	return r;
}
