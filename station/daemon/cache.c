/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The decompress-once image cache (see cache.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap-private.h"
#include "cache.h"
#include "source.h"
#include "util.h"

/* The entry's name: SHA-256 over the image file's content and the bmap's.
 * Hashing the compressed file costs about a tenth of decompressing it, and
 * no change to the image can go unnoticed (a new mtime or inode alone would
 * miss an in-place rewrite that kept them). */
static int cache_key(const char *image, const struct bmap_map *map, char out[65])
{
	_cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
	struct bmap_digest *d;
	uint8_t buf[1 << 16], digest[32];
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ESPIPE; /* a pipe is read once: nothing to key a cache on */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	d = bmap_digest_new("sha256");
	if (!d)
		return -ENOMEM;
	while ((n = loop_read(fd, buf, sizeof(buf))) > 0)
		bmap_digest_update(d, buf, (size_t)n);
	bmap_digest_update(d, bmap_map_get_file_sha256(map), 32);
	bmap_digest_final(d, digest);
	bmap_digest_free(d);
	if (n < 0)
		return (int)n;
	hex_encode(digest, 32, out);
	return 0;
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

static int cache_build(struct bmap_ctx *ctx, const char *image, const struct bmap_map *map,
		       volatile int *cancel, const char *path, char *why, size_t why_len)
{
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE };
	struct bmap_copy_opts copts = { .cancel = cancel };
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	char tmp[PATH_MAX + 32];
	int r;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	topts.image_size = bmap_map_get_image_size(map);
	r = bmap_source_open(ctx, image, &src);
	if (r >= 0)
		r = bmap_target_open(ctx, tmp, &topts, &dst);
	/* Every range is checked against the bmap as it passes. */
	if (r >= 0)
		r = bmap_copy(ctx, src, map, dst, &copts, NULL);
	if (r >= 0 && fsync(bmap_target_get_fd(dst)) < 0)
		r = -errno;
	bmap_target_free(dst);
	bmap_source_free(src);
	/* Only a complete, verified entry gets its name. */
	if (r >= 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		snprintf(why, why_len, "building the cache failed: %s",
			 *bmap_ctx_get_error(ctx) ? bmap_ctx_get_error(ctx) : strerror(-r));
		unlink(tmp);
	}
	return r;
}

int cache_acquire(struct bmap_ctx *ctx, const char *dir, uint64_t max_size, const char *image,
		  const struct bmap_map *map, volatile int *cancel, struct cache_use *ret,
		  char *why, size_t why_len)
{
	char key[65], lock[PATH_MAX], path[PATH_MAX];
	struct stat st;
	int fd, r;

	if (!bmap_map_has_range_checksums(map))
		return snprintf(why, why_len, "the bmap has no checksums to verify a cache with"),
		       -EINVAL;
	if (bmap_map_get_mapped_bytes(map) > max_size)
		return snprintf(why, why_len, "the image's data is larger than cache_max_size"),
		       -EFBIG;
	r = cache_key(image, map, key);
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
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return snprintf(why, why_len, "cannot open '%s': %m", lock), -errno;
	/* One worker builds; the others wait here, then read what it made. */
	if (flock(fd, LOCK_EX) < 0) {
		r = -errno;
		close(fd);
		return snprintf(why, why_len, "cannot lock '%s': %s", lock, strerror(-r)), r;
	}
	ret->built = false;
	if (stat(path, &st) < 0) {
		r = cache_evict(dir, key, bmap_map_get_mapped_bytes(map), max_size);
		if (r < 0) {
			close(fd);
			return snprintf(why, why_len, "no room in the cache (cache_max_size)"), r;
		}
		r = cache_build(ctx, image, map, cancel, path, why, why_len);
		if (r < 0) {
			close(fd);
			return r;
		}
		ret->built = true;
	}
	/* Readers share the entry; eviction needs it unused. */
	flock(fd, LOCK_SH);
	ret->lock_fd = fd;
	ret->path = strdup(path);
	if (!ret->path) {
		close(fd);
		return -ENOMEM;
	}
	return 0;
}

void cache_release(struct cache_use *u)
{
	if (u->lock_fd >= 0)
		close(u->lock_fd);
	u->lock_fd = -1;
	free(u->path);
	u->path = NULL;
}
