/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The image cache's insides, shared by its files: cache.c (keys, readers,
 * acquire), cache-fill.c (the filler process and its lock), cache-evict.c
 * (the room entries take, eviction, stale files). Not for other callers.
 *
 * Per entry KEY (64 hex digits), in the cache folder:
 *   KEY.img   a complete entry (verified against the bmap as it was made)
 *   KEY.lock  every reader of the entry (or of its part) holds a shared
 *             flock; eviction takes it exclusively, never waiting for it
 *   KEY.part  the entry while it is filled
 *   KEY.fill  the fill's state (struct fill_state), mapped shared by the
 *             filler and its readers; the filler holds an OFD write lock on
 *             it for as long as it lives, so a reader can tell a filler
 *             that died from one that is slow
 * and, left by versions before the filler, KEY.img.tmp.PID (removed).
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"

enum { FILL_RUNNING = 1, FILL_DONE = 2 };

struct fill_state {
	_Atomic uint64_t ino;	  /* the part being filled; 0 while a fill is set up */
	_Atomic uint64_t written; /* every mapped byte below this is in the part */
	_Atomic int32_t status;	  /* FILL_RUNNING, FILL_DONE, or -errno */
	char error[512];	  /* why it failed: written before status */
	_Atomic uint64_t size;	  /* the mapped bytes the part holds once filled */
	_Atomic uint64_t downloaded; /* a URL's bytes received so far (0: a file) */
	_Atomic uint64_t download_size; /* what the server announced (0: unknown) */
};

#define FILL_MAP_SIZE 4096u

/* cache-fill.c */
/* Takes the filler's lock (an OFD write lock on the whole KEY.fill open
 * as @fd) without waiting: 0, or -EAGAIN/-EACCES when a filler holds it. */
int cache_fill_lock(int fd);
/* Whether a live process holds KEY.fill's lock (fails safe: "alive"). */
bool cache_fill_alive(int fd);
/* The same for the entry whose file @name ("KEY.part", "KEY.lock", ...)
 * is in folder @dirfd. */
bool cache_fill_alive_at(int dirfd, const char *name);
/* The bytes the part of that entry holds once filled (0: unknown). */
uint64_t cache_fill_size_at(int dirfd, const char *name);
/* Maps KEY.fill shared, creating it as needed; *ret_fd its descriptor. */
struct fill_state *cache_fill_map(const char *path, int *ret_fd);
/* With KEY.fill's lock held (@lock_fd): a new, empty part of the image's
 * size, the shared state reset for it, and the filler forked. The filler
 * keeps the lock; the caller's @lock_fd is closed either way. */
int cache_fill_start(struct cache_use *u, int lock_fd, int image_fd, const char *image,
		     const struct bmap_map *map, atomic_int *cancel, const char *part,
		     const char *path, char *why, size_t why_len);

/* cache-evict.c */
/* Frees room for @need more bytes in @dir: stale files first (parts whose
 * filler died, temp files of earlier versions), then the oldest complete
 * entries nobody reads. Parts being filled count. @keep: the key being
 * filled by the caller (its old part is replaced, not counted). 0, or
 * -ENOSPC when what is in use leaves no room. */
int cache_evict(const char *dir, const char *keep, uint64_t need, uint64_t max_size);
