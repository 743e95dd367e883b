/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening a destination by its path without a race: the path is opened
 * first and what was opened is checked (fstat() of the descriptor), never
 * a stat() of the name followed by an open() that may find something else.
 * A missing destination becomes a new regular file only in a real folder:
 * never on the file system of the device nodes (a mistyped device name
 * would fill RAM and report success), never through a dangling symbolic
 * link. Nothing is written or truncated here (see target_setup()).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "bmap-private.h"
#include "target.h"
#include "util.h"

/* How often a name that appears and disappears under us is tried again. */
#define OPEN_TRIES 3

static bool path_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Whether the mount holding @dev is a devtmpfs. statfs() cannot say: a
 * devtmpfs reports TMPFS_MAGIC, as /dev/shm does; the mount table can. */
static bool is_devtmpfs(dev_t dev)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t size = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &size, f) > 0) {
		unsigned maj, min;
		const char *fstype = strstr(line, " - ");

		/* "36 25 0:6 / /dev rw,nosuid - devtmpfs udev rw,...": bind
		 * mounts of one file system share its major:minor. */
		if (sscanf(line, "%*s %*s %u:%u", &maj, &min) == 2 && maj == major(dev) &&
		    min == minor(dev) && fstype && strncmp(fstype + 3, "devtmpfs ", 9) == 0)
			found = true;
	}
	free(line);
	fclose(f);
	return found;
}

/* Whether @dev, the file system of @real (the resolved path of a folder or
 * of an open file, "" when unknown), is where device nodes live: a
 * devtmpfs, or below /dev (but /dev/shm) /dev's own file system, which is a
 * tmpfs or a plain folder on some machines. A regular file there is a
 * device name that does not exist. */
static bool on_device_fs(dev_t dev, const char *real)
{
	struct stat d;

	if (is_devtmpfs(dev))
		return true;
	if (!path_below(real, "/dev") || path_below(real, "/dev/shm"))
		return false;
	return stat("/dev", &d) == 0 && d.st_dev == dev;
}

/* The path @fd was opened as (@path), resolved: symbolic links, "..", "//"
 * (realpath() of @path where /proc is not mounted). @buf: PATH_MAX bytes. */
static void fd_path(int fd, const char *path, char *buf)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, buf, PATH_MAX - 1);
	if (n > 0)
		buf[n] = '\0';
	else if (!realpath(path, buf))
		snprintf(buf, PATH_MAX, "%s", path);
}

static int missing_device(struct bmap_ctx *ctx, const char *path, const char *real,
			  const char *fs)
{
	return bmap_error(ctx, -ENOENT,
			  "device '%s'%s%s%s does not exist (is the card inserted? check the name "
			  "with lsblk); a regular file is not made in %s, the file system of the "
			  "device nodes; nothing was written",
			  path, strcmp(path, real) ? " (that is " : "", strcmp(path, real) ? real : "",
			  strcmp(path, real) ? ")" : "", fs);
}

/* @path does not exist: creates it as a regular file in its folder as
 * opened, so that the folder checked is the one the file goes into. -EEXIST
 * when something else got that name meanwhile (the caller opens it again). */
static int create_file(struct bmap_ctx *ctx, struct bmap_target *t, const char *path)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	char dir[PATH_MAX], real_dir[PATH_MAX], real[PATH_MAX + NAME_MAX + 2], link[PATH_MAX];
	struct stat st;
	ssize_t n;
	int dfd, r;

	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 ||
	    (size_t)(base - path) >= sizeof(dir))
		return bmap_error(ctx, -ENOENT, "'%s' does not exist", path);
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		r = -errno;
		if (dfd >= 0)
			close(dfd);
		return bmap_error(ctx, r, "cannot create '%s': its folder '%s': %s", path, dir,
				  strerror(-r));
	}
	fd_path(dfd, dir, real_dir);
	snprintf(real, sizeof(real), "%s/%s", strcmp(real_dir, "/") ? real_dir : "", base);
	if (on_device_fs(st.st_dev, real_dir)) {
		r = missing_device(ctx, path, real, real_dir);
		close(dfd);
		return r;
	}
	t->created_name = strdup(base);
	if (!t->created_name) {
		close(dfd);
		return bmap_error(ctx, -ENOMEM, "out of memory");
	}
	/* O_EXCL: never through a symbolic link (EEXIST even when dangling). */
	t->fd = openat(dfd, base, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);
	if (t->fd < 0) {
		r = -errno;
		n = r == -EEXIST ? readlinkat(dfd, base, link, sizeof(link) - 1) : -1;
		close(dfd);
		free(t->created_name);
		t->created_name = NULL;
		if (r == -EEXIST && n < 0)
			return -EEXIST;
		if (r != -EEXIST)
			return bmap_error(ctx, r, "cannot create '%s': %s", path, strerror(-r));
		link[n] = '\0';
		return bmap_error(ctx, -ENOENT,
				  "'%s' is a symbolic link to '%s', which does not exist%s; "
				  "nothing was written",
				  path, link,
				  path_below(link, "/dev") ? " (is the card inserted? check the "
							     "name with lsblk)"
							   : "");
	}
	t->dir_fd = dfd;
	return 0;
}

static int open_error(struct bmap_ctx *ctx, const char *path, const struct bmap_target_opts *opts,
		      int r)
{
	struct stat st;

	if (r == -ENOENT && path_below(path, "/dev") && !path_below(path, "/dev/shm"))
		return bmap_error(ctx, r,
				  "device '%s' does not exist (is the card inserted? check the name "
				  "with lsblk)",
				  path);
	if (r == -ENOENT)
		return bmap_error(ctx, r, "'%s' does not exist", path);
	if (r == -EISDIR)
		return bmap_error(ctx, r, "'%s' is a directory", path);
	if (r == -EBUSY)
		return bmap_error(ctx, r,
				  "device '%s' is busy: mounted, or held open exclusively by "
				  "another process (unmount it first); nothing was written",
				  path);
	/* The stat() only words the message. */
	if (opts->mode == BMAP_TARGET_WRITE &&
	    (r == -EROFS || (r == -EACCES && stat(path, &st) == 0 && S_ISBLK(st.st_mode))))
		return bmap_error(ctx, r, "cannot open '%s' for writing: %s", path, strerror(-r));
	return bmap_error(ctx, r, "cannot open '%s': %s", path, strerror(-r));
}

/* Opens @path into t->fd: as it is, or created when missing (copy only). */
static int open_path(struct bmap_ctx *ctx, struct bmap_target *t, const char *path,
		     const struct bmap_target_opts *opts)
{
	/* O_EXCL without O_CREAT: EBUSY for a block device that is mounted or
	 * held; nothing for any other file. So the flags need no stat(). */
	int flags = opts->mode == BMAP_TARGET_READ ? O_RDONLY : O_RDWR | O_EXCL;

	for (int tries = 1;; tries++) {
		int r;

		t->fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
		if (t->fd >= 0)
			return 0;
		r = -errno;
		if (r != -ENOENT || opts->mode != BMAP_TARGET_WRITE)
			return open_error(ctx, path, opts, r);
		r = create_file(ctx, t, path);
		if (r != -EEXIST || tries == OPEN_TRIES)
			return r == -EEXIST ? open_error(ctx, path, opts, r) : r;
	}
}

int bmap_target_open(struct bmap_ctx *ctx, const char *path, const struct bmap_target_opts *opts,
		     struct bmap_target **ret_target)
{
	struct bmap_target *t = target_alloc(path);
	char real[PATH_MAX];
	struct stat st;
	int r;

	if (!t)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	t->owns_fd = true;
	r = open_path(ctx, t, path, opts);
	if (r < 0)
		goto fail;
	if (fstat(t->fd, &st) < 0) {
		r = bmap_error(ctx, -errno, "cannot stat '%s': %m", path);
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		r = bmap_error(ctx, -EISDIR, "'%s' is a directory", path);
		goto fail;
	}
	if (opts->mode == BMAP_TARGET_WRITE && S_ISREG(st.st_mode) && !t->created_name) {
		fd_path(t->fd, path, real);
		if (on_device_fs(st.st_dev, real)) {
			r = bmap_error(ctx, -EINVAL,
				       "'%s' is a regular file on the file system of the device "
				       "nodes, not a device (left by a copy to a mistyped name?): "
				       "remove it, and check the name with lsblk; nothing was "
				       "written",
				       path);
			goto fail;
		}
	}
	r = target_setup(ctx, t, opts);
	if (r < 0)
		goto fail;
	*ret_target = t;
	return 0;

fail:
	bmap_target_free(t);
	return r;
}
