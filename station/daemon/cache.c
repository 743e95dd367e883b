/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The decompress-once image cache (see cache.h): entry keys, readers, and
 * cache_acquire(), which serves an entry, follows a fill or starts one
 * (cache-private.h lists the files; cache-fill.c is the filler,
 * cache-evict.c the room they take).
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
#include "cache-private.h"
#include "source.h"
#include "util.h"

/* The entry's name: SHA-256 over the image file's identity and the bmap's
 * content. The identity is the text "DEV INO SIZE MTIME CTIME" (times as
 * seconds.nanoseconds): a write in place changes the ctime, which nobody can
 * set back, a replacement the inode. Content is not hashed: that cost a
 * tenth of a decompression for every card, and an entry holds only data
 * checked against the bmap's checksums as it was filled. */
static int cache_key(struct bmap_ctx *ctx, int fd, const char *image, const struct bmap_map *map,
		     char out[65], uint64_t *ret_length)
{
	struct bmap_url_identity uid;
	_cleanup_free_ char *shown = NULL;
	struct bmap_digest *d;
	uint8_t digest[32];
	struct stat st;
	char id[160];
	int n;

	/* A URL (@fd -1) has no identity to stat: the entry is the URL's, as
	 * messages show it (no credentials: the same image whoever logs in),
	 * in the version the server names now (ETag, Last-Modified, length:
	 * a file replaced there is another entry), for this bmap, whose
	 * checksums every filled byte passed. */
	if (fd < 0) {
		int r = bmap_url_identity(ctx, image, &uid);

		if (r < 0)
			return r;
		shown = bmap_url_display(image);
		if (!shown)
			return -ENOMEM;
		n = snprintf(id, sizeof(id), " %" PRId64 " %" PRId64 " ", uid.last_modified,
			     uid.length);
		d = bmap_digest_new("sha256");
		if (!d)
			return -ENOMEM;
		bmap_digest_update(d, "url ", 4);
		bmap_digest_update(d, shown, strlen(shown) + 1);
		bmap_digest_update(d, uid.etag, strlen(uid.etag) + 1);
		bmap_digest_update(d, id, (size_t)n);
		*ret_length = uid.length > 0 ? (uint64_t)uid.length : 0;
		goto bmap;
	}
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
bmap:
	/* A self-mapped image without a bmap (@map NULL): the entry is its
	 * virtual disk with the bmap its filler makes, another entry than the
	 * same file's with a bmap. */
	if (map)
		bmap_digest_update(d, bmap_map_get_file_sha256(map), 32);
	else
		bmap_digest_update(d, "self-mapped", 12);
	bmap_digest_final(d, digest);
	bmap_digest_free(d);
	hex_encode(digest, 32, out);
	return 0;
}

#define FILL_POLL_MS 5

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
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
		if (i % (100 / FILL_POLL_MS) == 0 && !cache_fill_alive(u->fill_fd)) {
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

int cache_download(struct cache_use *u, uint64_t *ret_done, uint64_t *ret_total)
{
	uint64_t done;

	if (!u->filling || atomic_load(&u->fill->status) != FILL_RUNNING ||
	    atomic_load(&u->fill->ino) != u->ino)
		return 0;
	done = atomic_load(&u->fill->downloaded);
	if (!done)
		return 0;
	*ret_done = done;
	*ret_total = atomic_load(&u->fill->download_size);
	return 1;
}

int cache_lock_entry(const char *lock, int *ret_fd)
{
	for (unsigned tries = 0; tries < 100; tries++) {
		struct stat held, named;
		int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		int r;

		if (fd < 0)
			return -errno;
		/* Readers share the entry; only eviction, which never waits,
		 * takes it exclusively. */
		if (flock(fd, LOCK_SH) < 0) {
			r = -errno;
			close(fd);
			return r;
		}
		/* Eviction removes KEY.lock while it holds it: a lock this
		 * reader waited for on the removed file guards nothing (the
		 * next eviction locks the file named now). */
		if (fstat(fd, &held) == 0 && stat(lock, &named) == 0 &&
		    held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
			*ret_fd = fd;
			return 0;
		}
		close(fd);
	}
	return -ESTALE;
}

/* The cache folder's room lock, .room.lock (no entry's name): -1 when it
 * cannot be had, then the fill goes without it. */
static int lock_room(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/.room.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void unlock_room(int fd)
{
	if (fd >= 0)
		close(fd);
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

/* cache_acquire(), or with @map NULL the entry of the self-mapped image
 * @image_fd of virtual size @self_size holding @self_data bytes of data
 * (cache_acquire_self). */
static int acquire(struct bmap_ctx *ctx, const char *dir, uint64_t max_size, int image_fd,
		   const char *image, const struct bmap_map *map, uint64_t self_size,
		   uint64_t self_data, atomic_int *cancel, struct cache_use *ret, char *why,
		   size_t why_len)
{
	char key[65], lock[PATH_MAX], path[PATH_MAX], part[PATH_MAX], fillp[PATH_MAX];
	uint64_t download_size = 0;
	uint64_t need = map ? bmap_map_get_mapped_bytes(map) : self_data;
	int r;

	*ret = (struct cache_use){.lock_fd = -1, .fill_fd = -1, .data_fd = -1, .cancel = cancel};
	if (map && !bmap_map_has_range_checksums(map))
		return snprintf(why, why_len, "the bmap has no checksums to verify a cache with"),
		       -EINVAL;
	if (need > max_size)
		return snprintf(why, why_len, "the image's data is larger than cache_max_size"),
		       -EFBIG;
	r = cache_key(ctx, image_fd, image, map, key, &download_size);
	if (r < 0 && image_fd < 0)
		return snprintf(why, why_len, "%s", bmap_ctx_get_error(ctx)), r;
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
	r = cache_lock_entry(lock, &ret->lock_fd);
	if (r < 0) {
		snprintf(why, why_len, "cannot lock '%s': %s", lock, strerror(-r));
		goto fail;
	}
	ret->fill = cache_fill_map(fillp, &ret->fill_fd);
	if (!ret->fill) {
		r = -errno;
		snprintf(why, why_len, "cannot map '%s': %s", fillp, strerror(-r));
		goto fail;
	}
	/* A fill being set up or just ending is looked at again, for a while. */
	for (unsigned tries = 0; tries < 400; tries++) {
		int lock_fd, room_fd;

		ret->data_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (ret->data_fd >= 0)
			goto complete;
		lock_fd = open(fillp, O_RDWR | O_CLOEXEC);
		if (lock_fd < 0) {
			r = -errno;
			snprintf(why, why_len, "cannot open '%s': %s", fillp, strerror(-r));
			goto fail;
		}
		r = cache_fill_lock(lock_fd);
		if (r == 0) {
			/* An earlier fill's failure is not this one's: readers
			 * that come while it is set up wait for it (follow). */
			atomic_store(&ret->fill->ino, 0);
			/* Nobody fills it: this worker starts a filler, unless
			 * one finished just now. */
			ret->data_fd = open(path, O_RDONLY | O_CLOEXEC);
			if (ret->data_fd >= 0) {
				close(lock_fd);
				goto complete;
			}
			/* Room is made and the part counted (created, its size
			 * published) by one fill at a time: two fills of other
			 * images would each find room for itself alone. */
			room_fd = lock_room(dir);
			r = cache_evict(dir, key, need, max_size);
			if (r < 0) {
				unlock_room(room_fd);
				close(lock_fd);
				if (r == -ENOSPC)
					snprintf(why, why_len,
						 "no room in the image cache '%s' (cache_max_size)", dir);
				else
					snprintf(why, why_len, "cannot make room in the image cache '%s': %s",
						 dir, strerror(-r));
				goto fail;
			}
			r = cache_fill_start(ret, lock_fd, image_fd, image, map, self_size, self_data, cancel,
					     part, path, why, why_len);
			unlock_room(room_fd);
			if (r < 0)
				goto fail;
			atomic_store(&ret->fill->download_size, download_size);
			ret->built = true;
			ret->filling = true;
			ret->data_fd = open(part, O_RDONLY | O_CLOEXEC);
			/* A fill that ended before this worker got the CPU back
			 * has named its part already. */
			if (ret->data_fd < 0 && errno == ENOENT &&
			    (ret->data_fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
				ret->filling = false;
				goto complete;
			}
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
			ret->fill_failed = r != -ENOMEM;
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

int cache_acquire(struct bmap_ctx *ctx, const char *dir, uint64_t max_size, int image_fd,
		  const char *image, const struct bmap_map *map, atomic_int *cancel,
		  struct cache_use *ret, char *why, size_t why_len)
{
	return acquire(ctx, dir, max_size, image_fd, image, map, 0, 0, cancel, ret, why, why_len);
}

int cache_acquire_self(struct bmap_ctx *ctx, const char *dir, uint64_t max_size, int image_fd,
		       const char *image, uint64_t virtual_size, uint64_t data_size, atomic_int *cancel,
		       struct cache_use *ret, struct bmap_map **ret_map, char *why,
		       size_t why_len)
{
	char bmap[PATH_MAX];
	bool built;
	int r;

	*ret_map = NULL;
	if (image_fd < 0)
		return snprintf(why, why_len, "'%s' is not a regular file: nothing to cache", image),
		       -ESPIPE;
	r = acquire(ctx, dir, max_size, image_fd, image, NULL, virtual_size, data_size, cancel, ret, why,
		    why_len);
	if (r < 0)
		return r;
	/* Its bmap is made at the fill's end: nothing of the part can be
	 * checked before (see cache-self.c). */
	if (ret->filling) {
		r = fill_wait(ret, UINT64_MAX, why, why_len);
		if (r < 0) {
			ret->fill_failed = r != -EINTR && r != -ESTALE;
			goto fail;
		}
		built = ret->built;
		cache_release(ret);
		r = acquire(ctx, dir, max_size, image_fd, image, NULL, virtual_size, data_size, cancel, ret,
			    why, why_len);
		if (r < 0)
			return r;
		ret->built = built;
		if (ret->filling) {
			r = -ESTALE;
			snprintf(why, why_len, "the image cache's entry '%s' was refilled under this job",
				 ret->path);
			goto fail;
		}
	}
	cache_self_bmap_path(ret->path, bmap, sizeof(bmap));
	r = bmap_map_load(ctx, bmap, ret_map);
	if (r < 0) {
		snprintf(why, why_len, "%s", bmap_ctx_get_error(ctx));
		goto fail;
	}
	return 0;
fail:
	cache_release(ret);
	return r;
}

void cache_release(struct cache_use *u)
{
	/* Nothing to read along any more (fill_failed stays: the caller's
	 * verdict on a failed acquire). */
	u->filling = false;
	u->built = false;
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
