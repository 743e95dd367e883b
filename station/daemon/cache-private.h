/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The image cache's insides, shared by its files: cache.c (keys, readers,
 * acquire), cache-fill.c (the filler process and its lock), cache-evict.c
 * (the room entries take, eviction, stale files). Not for other callers.
 *
 * Per entry KEY (64 hex digits), in the cache folder:
 *   KEY.img   a complete entry (verified against the bmap as it was made)
 *   KEY.lock  every reader of the entry (or of its part) holds a shared
 *             flock; eviction takes it exclusively, never waiting for it,
 *             and removes it last, after the entry's other files
 *   KEY.part  the entry while it is filled
 *   KEY.bmap  next to KEY.img of a self-mapped image (qcow2, Android
 *             sparse) that came without a bmap: the 2.0 bmap of its virtual
 *             disk, SHA-256 of each range, made by its filler (cache-self.c)
 *             and named before KEY.img (written as KEY.bmap.tmp first)
 *   KEY.fill  the fill's state (struct fill_state), mapped shared by the
 *             filler and its readers; the filler holds an OFD write lock on
 *             it for as long as it lives, so a reader can tell a filler
 *             that died from one that is slow
 * and, left by versions before the filler, KEY.img.tmp.PID (removed);
 * for the whole folder, .room.lock, held by the fill that makes room
 * (eviction) until its part is counted.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cache.h"

struct bmap_source;

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

/* cache.c */
/* Opens KEY.lock @lock (creating it) and takes its shared lock, on the
 * file that name still names once the lock is held: 0 with *ret_fd. */
int cache_lock_entry(const char *lock, int *ret_fd);

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
		     const struct bmap_map *map, uint64_t self_size, uint64_t self_data,
		     atomic_int *cancel,
		     const char *part, const char *path, char *why, size_t why_len);

/* The filler process's own state (cache-fill.c, cache-self.c). */
struct filler {
	struct fill_state *fill;
	struct bmap_source *src; /* for the bytes downloaded */
	atomic_int *cancel; /* the worker's flag: its SIGTERM handler, kept across the
			     * fork, stops the fill too (a station stopped as a whole) */
	pid_t worker, station;
};

/* In the forked filler, first: its parent-death signal set up (the part
 * removed and the process ended once the station is gone). */
void cache_filler_setup(struct filler *f, const char *part);
/* Whether @part is still the file this filler fills (its inode). */
bool cache_filler_owns_part(const struct filler *f, const char *part);
/* The filler's last step: with @r >= 0 the part named @path and the fill
 * done (@size written), else the fill failed with @ctx's error and the
 * part removed (if it is still this filler's). Frees @ctx; never returns. */
_Noreturn void cache_filler_end(struct filler *f, struct bmap_ctx *ctx, int r, uint64_t size,
				const char *part, const char *path);
/* A bmap_written_fn publishing the part's progress to the readers. */
void cache_fill_written(void *userdata, uint64_t end);

/* cache-self.c */
/* The forked filler of a self-mapped image without a bmap: its virtual
 * disk into @part (holes not written, a simg's CRC32 chunks checked), the
 * bmap of what was written into KEY.bmap (@path with .bmap for .img), then
 * @part named @path. Never returns. */
_Noreturn void cache_self_run(struct filler *f, int image_fd, const char *image,
			      const char *part, const char *path);
/* KEY.bmap for the entry @path (KEY.img) into @out. */
void cache_self_bmap_path(const char *path, char *out, size_t len);

/* cache-evict.c */
/* Frees room for @need more bytes in @dir: stale files first (parts whose
 * filler died, temp files of earlier versions), then the oldest complete
 * entries nobody reads. Parts being filled count. @keep: the key being
 * filled by the caller (its old part is replaced, not counted). 0, or
 * -ENOSPC when what is in use leaves no room. */
int cache_evict(const char *dir, const char *keep, uint64_t need, uint64_t max_size);
