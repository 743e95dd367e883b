/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The journal's single-instance lock: `run` holds an open-file-description
 * lock on JOURNAL.lock (next to the journal, holding its pid) for as long
 * as it runs, so that a second station on the same journal refuses to start
 * instead of marking the first one's jobs interrupted, and `status` and
 * `watch` can tell whether a station runs at all.
 *
 * A file of its own, not a lock on the journal: SQLite's POSIX locks on the
 * journal file belong to the process, and any close() of another
 * descriptor of that file would drop them. OFD locks (not flock) because
 * F_OFD_GETLK lets a reader test the lock without taking it: a reader
 * holding it even for a moment could make a starting station refuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal-internal.h"
#include "util.h"

/*
 * JOURNAL.lock for the journal at @path, the same for every name of the
 * journal (a symlink, a relative path): next to the file it resolves to, or
 * for a journal not created yet, in the folder it will be created in.
 */
static char *lock_path(const char *path)
{
	char *real = realpath(path, NULL), *dir = NULL, *copy = NULL, *ret = NULL;

	if (real) {
		if (asprintf(&ret, "%s.lock", real) < 0)
			ret = NULL;
		free(real);
		return ret;
	}
	copy = strdup(path);
	if (copy)
		dir = realpath(dirname(copy), NULL);
	free(copy);
	copy = strdup(path);
	if (dir && copy && asprintf(&ret, "%s/%s.lock", dir, basename(copy)) < 0)
		ret = NULL;
	/* The folder itself is missing: opening the journal will say so. */
	if (!dir && copy && asprintf(&ret, "%s.lock", path) < 0)
		ret = NULL;
	free(copy);
	free(dir);
	return ret;
}

/* The pid the holder wrote, 0 while it has not written it yet. */
static pid_t lock_read_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid;
	char *end;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n') || pid <= 0 || pid > INT32_MAX)
		return 0;
	return (pid_t)pid;
}

/* 1 when another open file description holds @fd's file, 0 when none, -errno. */
static int lock_held(int fd)
{
	struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(fd, F_OFD_GETLK, &l) < 0)
		return -errno;
	return l.l_type != F_UNLCK;
}

/* The holder's pid, given a moment to write it (it locks, then writes). */
static pid_t lock_holder_pid(int fd)
{
	pid_t pid = lock_read_pid(fd);

	for (int i = 0; !pid && i < 20; i++) {
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
		pid = lock_read_pid(fd);
	}
	return pid;
}

static int lock_fail(char **ret_error, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int lock_fail(char **ret_error, int err, const char *fmt, ...)
{
	va_list ap;

	if (ret_error) {
		va_start(ap, fmt);
		if (vasprintf(ret_error, fmt, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return err;
}

/* Takes the lock of the journal at @path for this process; its fd in *ret_fd. */
static int lock_take(const char *path, int *ret_fd, char **ret_error)
{
	struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	_cleanup_free_ char *lp = lock_path(path);
	char pid[24];
	int fd, r, n;

	if (!lp)
		return -ENOMEM;
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			return lock_fail(ret_error, r, "journal %s: its folder does not exist",
					 path);
		return lock_fail(ret_error, r,
				 "journal %s: cannot open its lock file %s: %s (the station needs "
				 "to write the journal's folder)",
				 path, lp, strerror(-r));
	}
	if (fcntl(fd, F_OFD_SETLK, &l) < 0) {
		pid_t holder;

		r = -errno;
		if (r != -EAGAIN && r != -EACCES) {
			close(fd);
			return lock_fail(ret_error, r, "journal %s: cannot lock %s: %s", path, lp,
					 strerror(-r));
		}
		holder = lock_holder_pid(fd);
		close(fd);
		if (holder > 0)
			return lock_fail(ret_error, -EBUSY,
					 "journal %s: another bmap-station (pid %" PRId32
					 ") is running on this journal; not starting a second one "
					 "(stop it first, or give this station a journal of its own)",
					 path, (int32_t)holder);
		return lock_fail(ret_error, -EBUSY,
				 "journal %s: another bmap-station is running on this journal "
				 "(it holds %s); not starting a second one",
				 path, lp);
	}
	n = snprintf(pid, sizeof(pid), "%" PRId32 "\n", (int32_t)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		r = errno ? -errno : -EIO;
		close(fd);
		return lock_fail(ret_error, r, "journal %s: cannot write %s: %s", path, lp,
				 strerror(-r));
	}
	*ret_fd = fd;
	return 0;
}

int journal_open_station(const char *path, struct journal **ret, char **ret_error)
{
	struct journal *j = NULL;
	int fd = -1, r;

	if (!path || !ret)
		return -EINVAL;
	/* First: a second station must not touch the journal at all. */
	r = lock_take(path, &fd, ret_error);
	if (r < 0)
		return r;
	r = journal_open(path, false, &j, ret_error);
	if (r < 0) {
		close(fd);
		return r;
	}
	j->lock_fd = fd;
	*ret = j;
	return 0;
}

int journal_station_pid(const struct journal *j, pid_t *ret_pid)
{
	_cleanup_free_ char *lp = NULL;
	int fd, r;

	if (!j || !ret_pid)
		return -EINVAL;
	/* This process is the station. */
	if (j->lock_fd >= 0) {
		*ret_pid = getpid();
		return 1;
	}
	lp = lock_path(j->path);
	if (!lp)
		return -ENOMEM;
	fd = open(lp, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		/* No station ever ran on it (with a lock file). */
		return errno == ENOENT ? 0 : -errno;
	r = lock_held(fd);
	if (r > 0)
		*ret_pid = lock_holder_pid(fd);
	close(fd);
	return r;
}
