/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A complete image cache entry checked again, after a card written from it
 * failed its read-back: a card copied from a complete entry is not hashed
 * on the way (bmap_copy_opts.source_checked), so a byte of the entry that
 * changed since it was filled (a bad disk, a hand) shows first as a card
 * that does not read back right. Which of the two is at fault decides what
 * the next card gets: a damaged entry is removed (the next card fills it
 * again), a bad card leaves the entry in use.
 *
 * What is checked is the file the card was copied from (its open fd), not
 * whatever the entry's name holds now: cards copied from one damaged entry
 * each find it damaged, also after the first of them removed its name, and
 * an entry filled again under that name meanwhile is neither checked for
 * nor removed by them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "cache.h"

/* Removes @path if it still names the file open as @fd: 1 removed, 0 it
 * names another file or none (already removed), -errno. */
static int unlink_same(const char *path, int fd)
{
	struct stat a, b;

	if (fstat(fd, &a) < 0)
		return -errno;
	if (stat(path, &b) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return 0;
	return unlink(path) < 0 ? (errno == ENOENT ? 0 : -errno) : 1;
}

int cache_entry_check(const struct cache_use *u, int data_fd, const struct bmap_map *map,
		      atomic_int *cancel, char *why, size_t why_len)
{
	struct bmap_target_opts topts = {.mode = BMAP_TARGET_READ,
					 .image_size = bmap_map_get_image_size(map)};
	struct bmap_copy_opts vopts = {.cancel = cancel};
	struct bmap_verify_result res = {0};
	struct bmap_ctx *ctx;
	struct bmap_target *t = NULL;
	char self[64];
	int fd, r;

	if (!u->path || data_fd < 0)
		return 0;
	/* A description of its own (the copy's offset and flags are not
	 * touched), of the same file even if its name was removed. */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", data_fd);
	fd = open(self, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fd = fcntl(data_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	ctx = bmap_ctx_new();
	r = ctx ? bmap_target_open_fd(ctx, fd, u->path, &topts, &t) : -ENOMEM;
	if (r >= 0)
		r = bmap_verify(ctx, t, map, NULL, &vopts, &res);
	bmap_target_free(t); /* (an adopted fd stays the caller's) */
	bmap_ctx_free(ctx);
	close(fd);
	if (r == -EINTR)
		return snprintf(why, why_len, "interrupted"), -EINTR;
	if (r != -EBADMSG)
		return 0; /* the entry is right, or cannot be told: the card failed */
	const struct bmap_range *rg = &bmap_map_get_ranges(map)[res.first_bad];

	/* Readers that have it open go on with their copy; no new one finds it. */
	r = unlink_same(u->path, data_fd);
	if (r < 0)
		snprintf(why, why_len,
			 "the image cache entry '%s' is damaged (blocks range %" PRIu64 "-%" PRIu64
			 " does not match the bmap) and cannot be removed: %s; remove it",
			 u->path, rg->first, rg->last, strerror(-r));
	else
		snprintf(why, why_len,
			 "the image cache entry '%s' is damaged (blocks range %" PRIu64 "-%" PRIu64
			 " does not match the bmap): %s, the next card fills it again; put this "
			 "card in again",
			 u->path, rg->first, rg->last,
			 r > 0 ? "it was removed" : "it was removed already");
	return -EBADMSG;
}
