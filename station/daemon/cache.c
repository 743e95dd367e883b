/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The decompress-once image cache (see cache.h).
 *
 * Per entry KEY, in the cache folder:
 *   KEY.img   a complete entry (verified against the bmap as it was made)
 *   KEY.lock  every reader of the entry (or of its part) holds a shared
 *             flock; eviction takes it exclusively, never waiting for it
 *   KEY.part  the entry while it is filled
 *   KEY.fill  the fill's state (struct fill_state), mapped shared by the
 *             filler and its readers; the filler holds an OFD write lock on
 *             it for as long as it lives, so a reader can tell a filler
 *             that died from one that is slow
 *
 * The filler is a process of its own, forked by the first worker that
 * finds no entry: it belongs to no card (a card pulled or timed out does not
 * stop it for the others) and decompresses as fast as it can, while every
 * worker, the first one included, writes its card from the part as far as
 * it is filled. So no card waits for the decompression to finish, and no
 * reader ever waits for another.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bmap-private.h"
#include "cache.h"
#include "source.h"
#include "util.h"

/* The entry's name: SHA-256 over the image file's identity and the bmap's
 * content. The identity is the text "DEV INO SIZE MTIME CTIME" (times as
 * seconds.nanoseconds): a write in place changes the ctime, which nobody can
 * set back, a replacement the inode. Content is not hashed: that cost a
 * tenth of a decompression for every card, and an entry holds only data
 * checked against the bmap's checksums as it was filled. */
static int cache_key(int fd, const struct bmap_map *map, char out[65])
{
	struct bmap_digest *d;
	uint8_t digest[32];
	struct stat st;
	char id[160];
	int n;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ESPIPE; /* a pipe is read once: nothing to key a cache on */
	n = snprintf(id, sizeof(id), "%" PRIu64 " %" PRIu64 " %" PRIu64 " %lld.%09ld %lld.%09ld",
		     (uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
		     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
		     st.st_ctim.tv_nsec);
	d = bmap_digest_new("sha256");
	if (!d)
		return -ENOMEM;
	bmap_digest_update(d, id, (size_t)n);
	bmap_digest_update(d, bmap_map_get_file_sha256(map), 32);
	bmap_digest_final(d, digest);
	bmap_digest_free(d);
	hex_encode(digest, 32, out);
	return 0;
}

/* ---- the fill's shared state ---- */

enum { FILL_RUNNING = 1, FILL_DONE = 2 };

struct fill_state {
	_Atomic uint64_t ino;	  /* the part being filled; 0 while a fill is set up */
	_Atomic uint64_t written; /* every mapped byte below this is in the part */
	_Atomic int32_t status;	  /* FILL_RUNNING, FILL_DONE, or -errno */
	char error[512];	  /* why it failed: written before status */
};

#define FILL_MAP_SIZE 4096u
#define FILL_POLL_MS 5

/* The filler's lock: an OFD write lock on the whole KEY.fill. */
static int fill_lock(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* Whether a live process holds KEY.fill's lock (fails safe: "alive"). */
static bool fill_alive(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return true;
	return fl.l_type != F_UNLCK;
}

/* The same for the part named @part ("KEY.part") in folder @dirfd. */
static bool fill_alive_at(int dirfd, const char *part)
{
	char name[80];
	int fd;
	bool alive;

	snprintf(name, sizeof(name), "%.64s.fill", part);
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	alive = fill_alive(fd);
	close(fd);
	return alive;
}

/* Maps KEY.fill shared, creating it as needed; returns the fd too. */
static struct fill_state *fill_map(const char *path, int *ret_fd)
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

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Frees room for @need bytes by removing the oldest entries nobody uses. */
static int cache_evict(const char *dir, const char *keep, uint64_t need, uint64_t max_size)
{
	struct entry {
		char name[80];
		time_t mtime;
		uint64_t size;
	} *e = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		struct stat st;

		if (len > 5 && len < sizeof(e->name) &&
		    strcmp(de->d_name + len - 5, ".part") == 0 &&
		    fstatat(dirfd(d), de->d_name, &st, 0) == 0) {
			/* A part whose filler died (killed, a power cut) is removed;
			 * one being filled takes room too. */
			if (strncmp(de->d_name, keep, 64) != 0 &&
			    !fill_alive_at(dirfd(d), de->d_name))
				unlinkat(dirfd(d), de->d_name, 0);
			else
				total += (uint64_t)st.st_blocks * 512;
			continue;
		}
		if (len < 5 || len >= sizeof(e->name) || strcmp(de->d_name + len - 4, ".img") ||
		    fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		total += (uint64_t)st.st_blocks * 512;
		if (strncmp(de->d_name, keep, 64) == 0)
			continue;
		if (n == cap) {
			struct entry *p = realloc(e, (cap = cap ? 2 * cap : 16) * sizeof(*e));

			if (!p) {
				r = -ENOMEM;
				goto out;
			}
			e = p;
		}
		snprintf(e[n].name, sizeof(e[n].name), "%s", de->d_name);
		e[n].mtime = st.st_mtime;
		e[n].size = (uint64_t)st.st_blocks * 512;
		n++;
	}
	while (total + need > max_size) {
		size_t oldest = SIZE_MAX;
		char lock[PATH_MAX], img[PATH_MAX];
		int fd;

		for (size_t i = 0; i < n; i++)
			if (e[i].size && (oldest == SIZE_MAX || e[i].mtime < e[oldest].mtime))
				oldest = i;
		if (oldest == SIZE_MAX) {
			r = -ENOSPC;
			break;
		}
		snprintf(img, sizeof(img), "%s/%s", dir, e[oldest].name);
		snprintf(lock, sizeof(lock), "%s/%.64s.lock", dir, e[oldest].name);
		/* An entry a worker is reading holds a shared lock: it stays. */
		fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
			unlink(img);
			unlink(lock);
			snprintf(lock, sizeof(lock), "%s/%.64s.fill", dir, e[oldest].name);
			unlink(lock);
			total -= e[oldest].size;
		}
		if (fd >= 0)
			close(fd);
		e[oldest].size = 0;
	}
out:
	closedir(d);
	free(e);
	return r;
}

/* ---- the filler ---- */

struct filler {
	struct fill_state *fill;
	atomic_int *cancel;
	pid_t worker, daemon;
};

/* The writer's progress, published to the readers. A filler whose worker
 * and station are both gone (reparented elsewhere: the station died) stops:
 * nobody would read what it makes. */
static void fill_written(void *userdata, uint64_t end)
{
	struct filler *f = userdata;
	pid_t parent = getppid();

	atomic_store(&f->fill->written, end);
	if (parent != f->worker && parent != f->daemon)
		*f->cancel = 1;
}

/* The forked filler: decompresses @image into @part, checked against the
 * bmap range by range, and names it @path once complete. Never returns. */
static _Noreturn void fill_run(struct filler *f, int image_fd, const char *image,
			       const struct bmap_map *map, const char *part, const char *path)
{
	struct bmap_target_opts topts = {
	    .mode = BMAP_TARGET_WRITE,
	    .image_size = bmap_map_get_image_size(map),
	    .keep_size = true, /* sized by the parent: readers may have it open */
	};
	struct bmap_copy_opts copts = {
	    .cancel = f->cancel, .written = fill_written, .written_userdata = f};
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	int r = ctx ? 0 : -ENOMEM;

	if (r >= 0)
		r = bmap_source_open_fd(ctx, image_fd, image, &src);
	if (r >= 0)
		r = bmap_target_open(ctx, part, &topts, &dst);
	if (r >= 0)
		r = bmap_copy(ctx, src, map, dst, &copts, NULL);
	if (r >= 0 && fsync(bmap_target_get_fd(dst)) < 0)
		r = -errno;
	bmap_target_free(dst);
	bmap_source_free(src);
	/* Only a complete, verified entry gets its name. */
	if (r >= 0 && rename(part, path) < 0)
		r = -errno;
	if (r >= 0) {
		atomic_store(&f->fill->written, bmap_map_get_image_size(map));
		atomic_store(&f->fill->status, FILL_DONE);
	} else {
		const char *e = ctx ? bmap_ctx_get_error(ctx) : "";

		snprintf(f->fill->error, sizeof(f->fill->error),
			 "filling the image cache failed: %s", *e ? e : strerror(-r));
		atomic_store(&f->fill->status, r == -EINTR || r == -ECANCELED ? -EINTR : r);
		unlink(part);
	}
	bmap_ctx_free(ctx);
	_exit(r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}

/* With KEY.fill's lock held (@lock_fd): a new, empty part of the image's
 * size, the shared state reset for it, and the filler forked. The filler
 * keeps the lock; the caller's @lock_fd is closed either way. */
static int fill_start(struct cache_use *u, int lock_fd, int image_fd, const char *image,
		      const struct bmap_map *map, atomic_int *cancel, const char *part,
		      const char *path, char *why, size_t why_len)
{
	struct fill_state *fill = u->fill;
	struct filler f = {.fill = fill, .cancel = cancel, .daemon = getppid()};
	struct stat st;
	pid_t pid;
	int fd, r;

	atomic_store(&fill->ino, 0);
	atomic_store(&fill->written, 0);
	fill->error[0] = '\0';
	atomic_store(&fill->status, FILL_RUNNING);
	/* A new inode: a reader of an earlier, dead fill cannot mistake it. */
	unlink(part);
	fd = open(part, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)bmap_map_get_image_size(map)) < 0 ||
	    fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot create '%s': %s", part, strerror(-r));
		goto fail;
	}
	close(fd);
	fd = -1;
	atomic_store(&fill->ino, (uint64_t)st.st_ino);
	u->ino = (uint64_t)st.st_ino;
	f.worker = getpid();
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot fork the cache's filler: %s", strerror(-r));
		goto fail;
	}
	if (pid == 0) {
		/* Nothing of the worker's but the lock and the image: not its
		 * pipe to the station (whose end of file says the worker is
		 * done), nor the card, nor the entry's reader lock. */
		int keep_lo = lock_fd < image_fd ? lock_fd : image_fd;
		int keep_hi = lock_fd < image_fd ? image_fd : lock_fd;

		if (keep_lo > 3)
			close_range(3, (unsigned)keep_lo - 1, 0);
		if (keep_hi > keep_lo + 1)
			close_range((unsigned)keep_lo + 1, (unsigned)keep_hi - 1, 0);
		close_range((unsigned)keep_hi + 1, ~0u, 0);
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

/* ---- readers ---- */

/* The fill's end: 0 once complete, -errno with @why when it failed or
 * stopped. @end: also done once that much is written. */
static int fill_wait(struct cache_use *u, uint64_t end, char *why, size_t why_len)
{
	struct fill_state *fill = u->fill;

	for (unsigned i = 1;; i++) {
		int32_t status = atomic_load(&fill->status);

		if (atomic_load(&fill->ino) != u->ino)
			return snprintf(why, why_len,
					"the image cache's entry '%s' was refilled under this job",
					u->path),
			       -ESTALE;
		if (status < 0)
			return snprintf(why, why_len, "%s", fill->error), status;
		if (status == FILL_DONE || atomic_load(&fill->written) >= end)
			return 0;
		if (u->cancel && *u->cancel)
			return snprintf(why, why_len, "interrupted"), -EINTR;
		/* Every 100 ms: is the filler still there? Its state, read
		 * again after that, says whether it ended well. */
		if (i % (100 / FILL_POLL_MS) == 0 && !fill_alive(u->fill_fd)) {
			status = atomic_load(&fill->status);
			if (status == FILL_DONE ||
			    (status == FILL_RUNNING && atomic_load(&fill->written) >= end))
				return 0;
			if (status < 0)
				return snprintf(why, why_len, "%s", fill->error), status;
			return snprintf(why, why_len,
					"filling the image cache stopped: its process is gone "
					"(killed?) with '%s' incomplete",
					u->path),
			       -EPIPE;
		}
		/* A fast card that caught up with the fill waits at most this
		 * long for each piece. */
		sleep_ms(FILL_POLL_MS);
	}
}

int cache_wait(void *userdata, uint64_t end, char *why, size_t why_len)
{
	return fill_wait(userdata, end, why, why_len);
}

int cache_finished(struct cache_use *u, char *why, size_t why_len)
{
	if (!u->filling)
		return 0;
	return fill_wait(u, UINT64_MAX, why, why_len);
}

int cache_fill_status(struct cache_use *u, char *why, size_t why_len)
{
	int32_t status;

	if (!u->filling)
		return 0;
	status = atomic_load(&u->fill->status);
	if (atomic_load(&u->fill->ino) != u->ino)
		return 1; /* refilled: this fill's verdict is not known */
	if (status < 0)
		return snprintf(why, why_len, "%s", u->fill->error), status;
	return status == FILL_DONE ? 0 : 1;
}

/* The entry being filled, opened as a reader would: 0 with u->path set,
 * -EAGAIN while a fill is set up or has just ended (look again). */
static int follow(struct cache_use *u, const char *part)
{
	int32_t status = atomic_load(&u->fill->status);
	uint64_t ino = atomic_load(&u->fill->ino);
	struct stat st;
	int fd;

	if (status < 0 && ino)
		return status; /* this fill failed; the job goes without the cache */
	if (status != FILL_RUNNING || !ino)
		return -EAGAIN;
	/* Opened first, then checked: renamed into place meanwhile, it is
	 * looked for again. */
	fd = open(part, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -EAGAIN;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_ino != ino) {
		close(fd);
		return -EAGAIN;
	}
	u->ino = ino;
	u->filling = true;
	u->data_fd = fd;
	u->path = strdup(part);
	return u->path ? 0 : -ENOMEM;
}

int cache_acquire(struct bmap_ctx *ctx, const char *dir, uint64_t max_size, int image_fd,
		  const char *image, const struct bmap_map *map, atomic_int *cancel,
		  struct cache_use *ret, char *why, size_t why_len)
{
	char key[65], lock[PATH_MAX], path[PATH_MAX], part[PATH_MAX], fillp[PATH_MAX];
	int r;

	(void)ctx;
	*ret = (struct cache_use){.lock_fd = -1, .fill_fd = -1, .data_fd = -1, .cancel = cancel};
	if (!bmap_map_has_range_checksums(map))
		return snprintf(why, why_len, "the bmap has no checksums to verify a cache with"),
		       -EINVAL;
	if (bmap_map_get_mapped_bytes(map) > max_size)
		return snprintf(why, why_len, "the image's data is larger than cache_max_size"),
		       -EFBIG;
	r = cache_key(image_fd, map, key);
	if (r < 0)
		return snprintf(why, why_len,
				r == -ESPIPE ? "'%s' is not a regular file: nothing to cache"
					     : "cannot stat '%s'",
				image),
		       r;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return snprintf(why, why_len, "cannot create '%s': %m", dir), -errno;
	snprintf(lock, sizeof(lock), "%s/%s.lock", dir, key);
	snprintf(path, sizeof(path), "%s/%s.img", dir, key);
	snprintf(part, sizeof(part), "%s/%s.part", dir, key);
	snprintf(fillp, sizeof(fillp), "%s/%s.fill", dir, key);
	ret->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (ret->lock_fd < 0)
		return snprintf(why, why_len, "cannot open '%s': %m", lock), -errno;
	/* Readers share the entry; only eviction, which never waits, takes it
	 * exclusively. */
	if (flock(ret->lock_fd, LOCK_SH) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot lock '%s': %s", lock, strerror(-r));
		goto fail;
	}
	ret->fill = fill_map(fillp, &ret->fill_fd);
	if (!ret->fill) {
		r = -errno;
		snprintf(why, why_len, "cannot map '%s': %s", fillp, strerror(-r));
		goto fail;
	}
	/* A fill being set up or just ending is looked at again, for a while. */
	for (unsigned tries = 0; tries < 400; tries++) {
		int lock_fd;

		ret->data_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (ret->data_fd >= 0)
			goto complete;
		lock_fd = open(fillp, O_RDWR | O_CLOEXEC);
		if (lock_fd < 0) {
			r = -errno;
			snprintf(why, why_len, "cannot open '%s': %s", fillp, strerror(-r));
			goto fail;
		}
		r = fill_lock(lock_fd);
		if (r == 0) {
			/* Nobody fills it: this worker starts a filler, unless
			 * one finished just now. */
			ret->data_fd = open(path, O_RDONLY | O_CLOEXEC);
			if (ret->data_fd >= 0) {
				close(lock_fd);
				goto complete;
			}
			r = cache_evict(dir, key, bmap_map_get_mapped_bytes(map), max_size);
			if (r < 0) {
				close(lock_fd);
				snprintf(why, why_len, "no room in the cache (cache_max_size)");
				goto fail;
			}
			r = fill_start(ret, lock_fd, image_fd, image, map, cancel, part, path, why,
				       why_len);
			if (r < 0)
				goto fail;
			ret->built = true;
			ret->filling = true;
			ret->data_fd = open(part, O_RDONLY | O_CLOEXEC);
			if (ret->data_fd < 0) {
				r = -errno;
				snprintf(why, why_len, "cannot open '%s': %s", part, strerror(-r));
				goto fail;
			}
			ret->path = strdup(part);
			if (!ret->path) {
				r = -ENOMEM;
				goto fail;
			}
			return 0;
		}
		close(lock_fd);
		if (r != -EAGAIN && r != -EACCES) {
			snprintf(why, why_len, "cannot lock '%s': %s", fillp, strerror(-r));
			goto fail;
		}
		/* Another worker's filler runs: read along. */
		r = follow(ret, part);
		if (r == 0)
			return 0;
		if (r != -EAGAIN) {
			snprintf(why, why_len, "%s", ret->fill->error);
			goto fail;
		}
		if (cancel && *cancel) {
			r = -EINTR;
			snprintf(why, why_len, "interrupted");
			goto fail;
		}
		sleep_ms(5);
	}
	r = -ETIMEDOUT;
	snprintf(why, why_len, "the image cache's entry '%s' did not become readable", path);
	goto fail;
complete:
	ret->path = strdup(path);
	if (ret->path)
		return 0;
	r = -ENOMEM;
fail:
	cache_release(ret);
	return r;
}

void cache_release(struct cache_use *u)
{
	if (u->lock_fd >= 0)
		close(u->lock_fd);
	u->lock_fd = -1;
	if (u->fill)
		munmap(u->fill, FILL_MAP_SIZE);
	u->fill = NULL;
	if (u->fill_fd >= 0)
		close(u->fill_fd);
	u->fill_fd = -1;
	if (u->data_fd >= 0)
		close(u->data_fd);
	u->data_fd = -1;
	free(u->path);
	u->path = NULL;
}
