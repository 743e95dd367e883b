/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Destinations: guarding a block device (a disk or a partition), a regular
 * file or /dev/null before any byte is written (opening one by its path: target-open.c), writing and reading
 * it, and making sure data reached the media afterwards. Every refusal of a
 * destination happens here, before the copy starts; a regular file is not
 * changed until the copy's own checks passed (target_finish()).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "bmap-private.h"
#include "target.h"
#include "util.h"

#define LOCK_WAIT_MS 5000

static int read_sysfs_u64(const char *path, uint64_t *ret)
{
	char buf[64];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	return parse_size(strtok(buf, "\n"), ret);
}

int target_sysfs_u64(const struct bmap_target *t, const char *attr, uint64_t *ret)
{
	char path[PATH_MAX];

	if (!t->blockdev || !t->disk[0])
		return -ENODEV;
	snprintf(path, sizeof(path), "/sys/block/%s/%s", t->disk, attr);
	return read_sysfs_u64(path, ret);
}

/* The kernel name of the whole disk holding @dev ("sdb" for sdb1). */
static int disk_name(dev_t dev, char *out, size_t len, bool *ret_is_partition)
{
	char path[PATH_MAX], link[PATH_MAX], *base, *slash;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(dev), minor(dev));
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = '\0';
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", major(dev), minor(dev));
	*ret_is_partition = access(path, F_OK) == 0;
	slash = strrchr(link, '/');
	if (!slash)
		return -EINVAL;
	if (*ret_is_partition) {
		/* .../block/sdb/sdb1: the parent directory is the disk. */
		*slash = '\0';
		slash = strrchr(link, '/');
		if (!slash)
			return -EINVAL;
	}
	base = slash + 1;
	snprintf(out, len, "%s", base);
	return 0;
}

/* A partition's whole disk, opened only to be locked: udev locks the whole
 * disk when it probes any of its partitions (systemd's block device
 * locking), so that is the lock that keeps it off. -1 when no node in /dev
 * is that disk (then the partition's own lock is all there is). */
static int open_disk_node(const struct bmap_target *t)
{
	char path[PATH_MAX];
	uint64_t maj = 0, min = 0;
	unsigned a, b;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/sys/block/%s/dev", t->disk);
	{
		_cleanup_close_ int dfd = open(path, O_RDONLY | O_CLOEXEC);
		char buf[32];
		ssize_t n = dfd >= 0 ? read(dfd, buf, sizeof(buf) - 1) : -1;

		if (n <= 0)
			return -1;
		buf[n] = '\0';
		if (sscanf(buf, "%u:%u", &a, &b) != 2)
			return -1;
		maj = a;
		min = b;
	}
	snprintf(path, sizeof(path), "/dev/%s", t->disk);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || major(st.st_rdev) != maj ||
	    minor(st.st_rdev) != min) {
		close(fd);
		return -1;
	}
	return fd;
}

static int lock_device(struct bmap_ctx *ctx, struct bmap_target *t, bool exclusive)
{
	int fd = t->fd;

	if (t->partition) {
		t->disk_fd = open_disk_node(t);
		if (t->disk_fd >= 0)
			fd = t->disk_fd;
	}
	/* udev takes a shared lock while probing; wait it out, but not forever.
	 * Reading back only needs to keep writers (other tools) off. */
	for (int waited = 0;; waited += 50) {
		if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK)
			return bmap_error(ctx, -errno, "cannot lock device '%s': %m", t->name);
		if (waited >= LOCK_WAIT_MS)
			return bmap_error(ctx, -EBUSY,
					  "device '%s' stays locked by another process (flock); "
					  "is another flashing tool using it?",
					  t->name);
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
	}
}

static int check_blockdev(struct bmap_ctx *ctx, struct bmap_target *t,
			  const struct bmap_target_opts *opts, dev_t rdev)
{
	char disk[NAME_MAX + 1];
	bool is_partition = false;
	int ro = 0, r;
	uint64_t v;

	r = disk_name(rdev, disk, sizeof(disk), &is_partition);
	if (r < 0)
		return bmap_error(ctx, r, "cannot find device '%s' in /sys/dev/block: %s", t->name,
				  strerror(-r));
	/* A partition has the guards of a disk: O_EXCL (also refused while its
	 * disk is held), not read-only, big enough (its own size); removable
	 * and discard limits are its disk's. */
	t->partition = is_partition;
	snprintf(t->disk, sizeof(t->disk), "%s", disk);
	if (ioctl(t->fd, BLKGETSIZE64, &t->size) < 0)
		return bmap_error(ctx, -errno, "cannot get the size of device '%s': %m", t->name);
	if (ioctl(t->fd, BLKSSZGET, &t->sector_size) < 0 || t->sector_size < 512)
		t->sector_size = 512;
	if (opts->mode == BMAP_TARGET_WRITE) {
		if (ioctl(t->fd, BLKROGET, &ro) < 0)
			return bmap_error(ctx, -errno, "cannot ask whether device '%s' is read-only: %m",
					  t->name);
		if (ro)
			return bmap_error(ctx, -EROFS,
					  "device '%s' is read-only (write-protect switch, or "
					  "'blockdev --setro'); nothing was written",
					  t->name);
	}
	if (opts->removable_only) {
		if (target_sysfs_u64(t, "removable", &v) < 0 || v != 1)
			return bmap_error(ctx, -EPERM,
					  "device '%s' (%s) is not removable, and --removable-device "
					  "was given; nothing was written",
					  t->name, disk);
	}
	if (opts->image_size && t->size < opts->image_size) {
		char h1[32], h2[32];

		return bmap_error(ctx, -ENOSPC,
				  "device '%s' is too small for the image: %" PRIu64
				  " bytes (%s) < %" PRIu64 " bytes (%s); nothing was written",
				  t->name, t->size, human_size(t->size, h1), opts->image_size,
				  human_size(opts->image_size, h2));
	}
	return 0;
}

struct bmap_target *target_alloc(const char *name)
{
	struct bmap_target *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->fd = -1;
	t->dir_fd = -1;
	t->disk_fd = -1;
	t->name = strdup(name);
	if (!t->name) {
		free(t);
		return NULL;
	}
	t->sector_size = 512;
	pthread_mutex_init(&t->bounce_lock, NULL);
	return t;
}

/* Character devices: /dev/null and /dev/zero (memory devices 1:3, 1:5)
 * take what is written and keep nothing, so a copy to one times reading and
 * decompressing an image: nothing to sync, no size, nothing to read back.
 * Any other (a tty, a tape, /dev/full) is refused: writes at offsets mean
 * nothing there. */
static int setup_chardev(struct bmap_ctx *ctx, struct bmap_target *t,
			 const struct bmap_target_opts *opts, dev_t rdev)
{
	if (major(rdev) != 1 || (minor(rdev) != 3 && minor(rdev) != 5))
		return bmap_error(ctx, -EINVAL,
				  "'%s' is a character device (%u:%u), not a block device or a "
				  "regular file; of character devices only /dev/null and /dev/zero "
				  "are taken (to time a copy: what is written is dropped)",
				  t->name, major(rdev), minor(rdev));
	if (opts->mode != BMAP_TARGET_WRITE)
		return bmap_error(ctx, -EINVAL,
				  "'%s' is /dev/%s: it keeps nothing that was written, so there is "
				  "nothing to read back",
				  t->name, minor(rdev) == 3 ? "null" : "zero");
	if (opts->removable_only)
		return bmap_error(ctx, -EPERM,
				  "'%s' is a character device, not a removable block device, and "
				  "--removable-device was given; nothing was written",
				  t->name);
	t->chardev = true;
	t->no_sync = true;
	t->size = opts->image_size;
	t->writable = true;
	return 0;
}

int target_setup(struct bmap_ctx *ctx, struct bmap_target *t, const struct bmap_target_opts *opts)
{
	struct stat st;
	int r;

	if (fstat(t->fd, &st) < 0)
		return bmap_error(ctx, -errno, "cannot stat '%s': %m", t->name);
	t->no_sync = opts->no_sync;
	if (S_ISBLK(st.st_mode)) {
		t->blockdev = true;
		r = check_blockdev(ctx, t, opts, st.st_rdev);
		if (r < 0)
			return r;
		r = lock_device(ctx, t, opts->mode == BMAP_TARGET_WRITE);
		if (r < 0)
			return r;
		/* Writes and read-back go around the page cache. */
		target_set_direct(t, true);
		/* Every guard passed: discard.c acts only on such a target. */
		t->writable = opts->mode == BMAP_TARGET_WRITE;
		return 0;
	}
	if (S_ISCHR(st.st_mode))
		return setup_chardev(ctx, t, opts, st.st_rdev);
	if (!S_ISREG(st.st_mode))
		return bmap_error(ctx, -EINVAL, "'%s' is neither a block device nor a regular file",
				  t->name);
	if (opts->mode == BMAP_TARGET_WRITE && !opts->keep_size) {
		/* Not truncated nor sized yet: a copy that is refused (a bmap
		 * of another image, an empty image, the image itself) must
		 * leave it as it was. The copy does it (target_finish()). */
		t->drop_content = true;
		t->size = opts->image_size;
	} else {
		t->size = (uint64_t)st.st_size;
	}
	t->writable = opts->mode == BMAP_TARGET_WRITE;
	return 0;
}

int bmap_target_open_fd(struct bmap_ctx *ctx, int fd, const char *name,
			const struct bmap_target_opts *opts, struct bmap_target **ret_target)
{
	struct bmap_target *t = target_alloc(name);
	int r;

	if (!t)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	t->fd = fd;
	r = target_setup(ctx, t, opts);
	/* An adopted regular file is the caller's scratch file (a spill, a
	 * part being filled): sized at once, as readers of it expect. */
	if (r >= 0 && t->drop_content) {
		r = target_finish(t, opts->image_size);
		if (r < 0)
			bmap_error(ctx, r, "cannot size '%s' to %" PRIu64 " bytes: %s", t->name,
				   opts->image_size, strerror(-r));
	}
	if (r < 0) {
		bmap_target_free(t);
		return r;
	}
	*ret_target = t;
	return 0;
}

bool bmap_target_is_blockdev(const struct bmap_target *t)
{
	return t->blockdev;
}

int bmap_target_get_fd(const struct bmap_target *t)
{
	return t->fd;
}

uint64_t bmap_target_get_size(const struct bmap_target *t)
{
	return t->size;
}

const char *bmap_target_get_name(const struct bmap_target *t)
{
	return t->name;
}

bool bmap_target_is_changed(const struct bmap_target *t)
{
	return atomic_load(&t->changed);
}

/* The first change of @t: a regular file's old content goes now, after
 * every check before the copy, not when it was opened. */
static int target_touch(struct bmap_target *t)
{
	int r = 0;

	pthread_mutex_lock(&t->bounce_lock);
	if (!atomic_load(&t->changed)) {
		if (t->drop_content && ftruncate(t->fd, 0) < 0)
			r = -errno;
		else
			atomic_store(&t->changed, true);
	}
	pthread_mutex_unlock(&t->bounce_lock);
	return r;
}

int target_finish(struct bmap_target *t, uint64_t size)
{
	int r;

	if (!t->drop_content)
		return 0;
	r = target_touch(t);
	if (r < 0)
		return r;
	if (ftruncate(t->fd, (off_t)size) < 0)
		return -errno;
	t->size = size;
	return 0;
}

bool bmap_target_medium_gone(const struct bmap_target *t, int err)
{
	uint64_t size = 0;

	if (err == -ENODEV || err == -ENXIO || err == -ENOMEDIUM)
		return true;
	if (!t->blockdev)
		return false;
	/* A pulled card reader's device stays, with no medium: size 0. */
	if (ioctl(t->fd, BLKGETSIZE64, &size) < 0)
		return errno == ENODEV || errno == ENXIO || errno == ENOMEDIUM;
	return size == 0;
}

/* O_DIRECT wants sector-aligned offsets, lengths and buffers. A piece that
 * is not aligned (the image's last partial sector, or bmap blocks smaller
 * than the sector) is read-modify-written through a bounce buffer, so bytes
 * outside the piece keep their value, under a lock since two pieces may
 * share a sector. */
static int bounce_io(struct bmap_target *t, void *buf, size_t len, uint64_t off, bool write)
{
	uint64_t ss = t->sector_size, start = off / ss * ss;
	uint64_t end = (off + len + ss - 1) / ss * ss;
	size_t span = (size_t)(end - start);
	uint8_t *b = NULL;
	ssize_t n;
	int r = 0;

	if (posix_memalign((void **)&b, 4096, span) != 0)
		return -ENOMEM;
	pthread_mutex_lock(&t->bounce_lock);
	n = loop_pread(t->fd, b, span, start);
	if (n < 0) {
		r = (int)n;
	} else if (write) {
		/* Block devices are whole sectors long: a short read is an error. */
		if ((size_t)n < span)
			r = -ENOSPC;
		else {
			memcpy(b + (off - start), buf, len);
			r = loop_pwrite(t->fd, b, span, start);
		}
	} else {
		size_t avail = (size_t)n > off - start ? (size_t)n - (size_t)(off - start) : 0;

		if (avail > len)
			avail = len;
		memcpy(buf, b + (off - start), avail);
		r = (int)avail;
	}
	pthread_mutex_unlock(&t->bounce_lock);
	free(b);
	return r;
}

int target_pwrite(struct bmap_target *t, const void *buf, size_t len, uint64_t off)
{
	size_t head;
	int r;

	if (!atomic_load(&t->changed) && (r = target_touch(t)) < 0)
		return r;
	if (!t->direct)
		return loop_pwrite(t->fd, buf, len, off);
	if (off % t->sector_size || (uintptr_t)buf % 4096)
		return bounce_io(t, (void *)buf, len, off, true);
	head = len / t->sector_size * t->sector_size;
	if (head) {
		r = loop_pwrite(t->fd, buf, head, off);
		if (r < 0 || head == len)
			return r;
	}
	return bounce_io(t, (uint8_t *)buf + head, len - head, off + head, true);
}

/* Zeros for whoever writes or hashes them (O_DIRECT-aligned). */
const uint8_t target_zeros[TARGET_ZEROS_SIZE] __attribute__((aligned(4096)));

int target_write_zeros(struct bmap_target *t, uint64_t off, uint64_t len)
{
	int r;

	if (!atomic_load(&t->changed) && (r = target_touch(t)) < 0)
		return r;
	/* A device that takes BLKZEROOUT zeroes the range itself (the page
	 * cache of it is dropped by the kernel); a file gets a hole. What
	 * cannot is written zeros. */
	if (t->blockdev && off % 512 == 0 && len % 512 == 0) {
		uint64_t range[2] = { off, len };

		if (ioctl(t->fd, BLKZEROOUT, range) == 0)
			return 0;
	} else if (!t->blockdev &&
		   fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			     (off_t)len) == 0) {
		return 0;
	}
	while (len > 0) {
		size_t n = len < TARGET_ZEROS_SIZE ? (size_t)len : TARGET_ZEROS_SIZE;

		r = target_pwrite(t, target_zeros, n, off);

		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

ssize_t target_pread(struct bmap_target *t, void *buf, size_t len, uint64_t off)
{
	size_t head;
	ssize_t n;
	int r;

	if (!t->direct)
		return loop_pread(t->fd, buf, len, off);
	if (off % t->sector_size || (uintptr_t)buf % 4096)
		return bounce_io(t, buf, len, off, false);
	head = len / t->sector_size * t->sector_size;
	if (head) {
		n = loop_pread(t->fd, buf, head, off);
		if (n < 0 || (size_t)n < head || head == len)
			return n;
	}
	r = bounce_io(t, (uint8_t *)buf + head, len - head, off + head, false);
	return r < 0 ? r : (ssize_t)(head + (size_t)r);
}

/* Drops what the page cache holds of the device so reads come from the media. */
int target_drop_cache(struct bmap_target *t)
{
	if (fsync(t->fd) < 0 && errno != EINVAL)
		return -errno;
	if (t->blockdev && ioctl(t->fd, BLKFLSBUF, 0) < 0 && errno != EACCES && errno != EPERM)
		return -errno;
	posix_fadvise(t->fd, 0, 0, POSIX_FADV_DONTNEED);
	return 0;
}

int target_set_direct(struct bmap_target *t, bool on)
{
	int fl = fcntl(t->fd, F_GETFL);

	if (fl < 0)
		return -errno;
	if (fcntl(t->fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT) < 0)
		return -errno;
	t->direct = on;
	return 0;
}

int bmap_target_sync(struct bmap_target *t)
{
	if (t->no_sync)
		return 0;
	if (fsync(t->fd) < 0)
		return -errno;
	/* Let the kernel see the new partition table. Best effort: devices
	 * without partition support (loop without -P) answer EINVAL, and the
	 * data is safe either way. */
	if (t->blockdev && !t->partition)
		(void)ioctl(t->fd, BLKRRPART, 0);
	return 0;
}

struct bmap_target *bmap_target_free(struct bmap_target *t)
{
	if (t) {
		struct stat a, b;

		/* A file made for a copy that was refused: gone again, if the
		 * name still is that file. */
		if (t->created_name && !atomic_load(&t->changed) && fstat(t->fd, &a) == 0 &&
		    fstatat(t->dir_fd, t->created_name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			(void)unlinkat(t->dir_fd, t->created_name, 0);
		if (t->owns_fd && t->fd >= 0)
			close(t->fd);
		if (t->dir_fd >= 0)
			close(t->dir_fd);
		if (t->disk_fd >= 0)
			close(t->disk_fd);
		free(t->created_name);
		free(t->name);
		pthread_mutex_destroy(&t->bounce_lock);
		free(t);
	}
	return NULL;
}
