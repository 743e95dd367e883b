/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The room the image cache takes (see cache-private.h for its files):
 * what counts against cache_max_size (complete entries and their bmaps,
 * parts being filled, fill states), the stale files that are removed on
 * sight (parts and KEY.bmap.tmp whose filler died: SIGKILL, a power cut;
 * temp files of versions before the filler, KEY.img.tmp.PID), eviction of
 * the oldest entries nobody reads, and the sweep at the station's start.
 */
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

#include "cache-private.h"
#include "manager.h"
#include "util.h"

enum cache_file { CF_OTHER, CF_IMG, CF_PART, CF_FILL, CF_LOCK, CF_BMAP, CF_BMAP_TMP, CF_OLD_TMP };

/* What a name in the cache folder is: KEY followed by a known suffix. */
static enum cache_file classify(const char *name)
{
	static const struct {
		const char *suffix;
		enum cache_file kind;
	} kinds[] = {
	    {".img", CF_IMG},	{".part", CF_PART},	    {".fill", CF_FILL},
	    {".lock", CF_LOCK}, {".bmap", CF_BMAP}, {".bmap.tmp", CF_BMAP_TMP}};
	const char *rest = name + 64;

	for (int i = 0; i < 64; i++)
		if (!name[i] || !strchr("0123456789abcdef", name[i]))
			return CF_OTHER;
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (strcmp(rest, kinds[i].suffix) == 0)
			return kinds[i].kind;
	/* Before the filler, a worker built KEY.img.tmp.PID itself; one killed
	 * (job_timeout, its station's death, a power cut) left it behind, and
	 * no version that makes them runs any more. */
	if (strncmp(rest, ".img.tmp.", 9) == 0 && rest[9] &&
	    strspn(rest + 9, "0123456789") == strlen(rest + 9))
		return CF_OLD_TMP;
	return CF_OTHER;
}

struct entry {
	char name[80];
	time_t mtime;
	uint64_t size;
};

struct scan {
	struct entry *e; /* complete entries other than the caller's */
	size_t n, cap;
	uint64_t total;	       /* bytes that count against cache_max_size */
	unsigned removed;      /* stale files removed */
	uint64_t removed_size; /* and the bytes they took */
};

static void removed(struct scan *s, int dirfd, const char *name, const struct stat *st)
{
	if (unlinkat(dirfd, name, 0) == 0) {
		s->removed++;
		s->removed_size += (uint64_t)st->st_blocks * 512;
	}
}

/* Removes @name (a part, a temp bmap) of a fill that died, taking the
 * fill's lock for it: a new fill of that key, which replaces the part
 * under that lock, cannot come between the look and the removal. False
 * when a filler holds the lock (it lives) or the name is another file. */
static bool removed_if_dead(struct scan *s, int dirfd, const char *name, const struct stat *st)
{
	char fill[80];
	struct stat now;
	bool gone = false;
	int fd;

	snprintf(fill, sizeof(fill), "%.64s.fill", name);
	fd = openat(dirfd, fill, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	if (cache_fill_lock(fd) == 0 && fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_dev == st->st_dev && now.st_ino == st->st_ino) {
		removed(s, dirfd, name, st);
		gone = true;
	}
	close(fd); /* (and the lock with it) */
	return gone;
}

/* Reads @dir: stale files removed, the rest counted, complete entries
 * listed (but @keep's). */
static int scan(DIR *d, const char *keep, struct scan *s)
{
	struct dirent *de;

	while ((de = readdir(d))) {
		enum cache_file kind = classify(de->d_name);
		bool mine = keep && strncmp(de->d_name, keep, 64) == 0;
		struct stat st;

		if (kind == CF_OTHER || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		switch (kind) {
		case CF_OLD_TMP:
			removed(s, dirfd(d), de->d_name, &st);
			break;
		case CF_BMAP_TMP:
			/* A self-mapped image's bmap being written: left behind
			 * by a filler that died. */
			if (!removed_if_dead(s, dirfd(d), de->d_name, &st))
				s->total += (uint64_t)st.st_blocks * 512;
			break;
		case CF_PART:
			/* The caller holds this key's fill lock and replaces its
			 * part: the new one is what it asks room for. */
			if (mine)
				break;
			if (!removed_if_dead(s, dirfd(d), de->d_name, &st)) {
				/* A part being filled takes what it will hold. */
				uint64_t size = cache_fill_size_at(dirfd(d), de->d_name);
				uint64_t now = (uint64_t)st.st_blocks * 512;

				s->total += size > now ? size : now;
			}
			break;
		case CF_IMG:
			s->total += (uint64_t)st.st_blocks * 512;
			if (mine)
				break;
			if (s->n == s->cap) {
				size_t cap = s->cap ? 2 * s->cap : 16;
				struct entry *p = realloc(s->e, cap * sizeof(*p));

				if (!p)
					return -ENOMEM;
				s->e = p;
				s->cap = cap;
			}
			snprintf(s->e[s->n].name, sizeof(s->e[s->n].name), "%.79s", de->d_name);
			s->e[s->n].mtime = st.st_mtime;
			s->e[s->n].size = (uint64_t)st.st_blocks * 512;
			s->n++;
			break;
		default:
			s->total += (uint64_t)st.st_blocks * 512;
			break;
		}
	}
	return 0;
}

int cache_evict(const char *dir, const char *keep, uint64_t need, uint64_t max_size)
{
	struct scan s = {0};
	DIR *d = opendir(dir);
	int r;

	if (!d)
		return -errno;
	r = scan(d, keep, &s);
	while (r == 0 && s.total + need > max_size) {
		size_t oldest = SIZE_MAX;
		char lock[PATH_MAX], file[PATH_MAX];
		int fd;

		for (size_t i = 0; i < s.n; i++)
			if (s.e[i].size && (oldest == SIZE_MAX || s.e[i].mtime < s.e[oldest].mtime))
				oldest = i;
		if (oldest == SIZE_MAX) {
			r = -ENOSPC;
			break;
		}
		snprintf(lock, sizeof(lock), "%s/%.64s.lock", dir, s.e[oldest].name);
		/* An entry a worker is reading holds a shared lock: it stays. */
		fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
			static const char *const files[] = {".img", ".fill", ".bmap", ".lock"};

			/* KEY.lock last: a worker that opened it meanwhile waits
			 * for this lock, then sees it removed and opens the new
			 * one (cache_lock_entry), and finds none of the entry's
			 * other files; one that came after finds them gone too. */
			for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
				snprintf(file, sizeof(file), "%s/%.64s%s", dir, s.e[oldest].name,
					 files[i]);
				unlink(file);
			}
			s.total -= s.e[oldest].size;
		}
		if (fd >= 0)
			close(fd);
		s.e[oldest].size = 0;
	}
	closedir(d);
	free(s.e);
	return r;
}

/* At the start, with no worker running: also the KEY.lock and KEY.fill of
 * keys that have neither an entry nor a part any more (a fill that failed
 * or was killed), when nobody holds them. */
static void sweep_orphans(DIR *d, struct scan *s)
{
	struct dirent *de;

	rewinddir(d);
	while ((de = readdir(d))) {
		char name[80];
		struct stat st;
		bool used = false;
		int fd;

		if (classify(de->d_name) != CF_LOCK)
			continue;
		snprintf(name, sizeof(name), "%.64s.img", de->d_name);
		used = fstatat(dirfd(d), name, &st, 0) == 0;
		snprintf(name, sizeof(name), "%.64s.part", de->d_name);
		used = used || fstatat(dirfd(d), name, &st, 0) == 0;
		if (used || cache_fill_alive_at(dirfd(d), de->d_name))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			snprintf(name, sizeof(name), "%.64s.fill", de->d_name);
			if (fstatat(dirfd(d), name, &st, 0) == 0)
				removed(s, dirfd(d), name, &st);
			/* the bmap of a self-mapped image's entry that is gone */
			snprintf(name, sizeof(name), "%.64s.bmap", de->d_name);
			if (fstatat(dirfd(d), name, &st, 0) == 0)
				removed(s, dirfd(d), name, &st);
			if (fstat(fd, &st) == 0)
				removed(s, dirfd(d), de->d_name, &st);
		}
		close(fd);
	}
}

void cache_sweep(const char *dir)
{
	struct scan s = {0};
	char h[32];
	DIR *d;

	if (!dir || !*dir)
		return;
	d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			log_warn("image cache '%s': cannot read it: %m", dir);
		return;
	}
	if (scan(d, NULL, &s) == 0)
		sweep_orphans(d, &s);
	closedir(d);
	free(s.e);
	if (s.removed)
		log_info("image cache '%s': removed %u stale file(s), %s (%" PRIu64
			 " bytes): parts of fills whose process died, temp files of an "
			 "earlier version, state files of fills that ended",
			 dir, s.removed, human_size(s.removed_size, h), s.removed_size);
}
