/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The decompress-once image cache: the mapped ranges of a compressed image
 * (or of any image at a URL), decompressed into a sparse raw file and
 * verified against the bmap's checksums, so that N cards cost one
 * decompression (one download). Used by the workers;
 * the station sweeps it at its start.
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bmap_ctx;
struct bmap_map;

struct fill_state;

struct cache_use {
	int lock_fd;    /* holds a shared lock on the entry while it is read */
	int data_fd;    /* the raw image to copy from, open for reading (the
			 * caller may take it: set it to -1 then) */
	char *path;     /* its name */
	bool built;     /* this call started filling it */
	/* The entry is still being filled: copy from it with cache_wait as the
	 * copy's wait function (userdata: this struct), and ask cache_finished
	 * for the fill's verdict before calling the card good. */
	bool filling;
	/* cache_acquire*() failed because the entry's fill failed (the image
	 * is bad: its reason is in why), not because the cache cannot serve. */
	bool fill_failed;
	/* private */
	struct fill_state *fill;
	int fill_fd;
	uint64_t ino;
	atomic_int *cancel;
};

#define CACHE_USE_NULL { .lock_fd = -1, .fill_fd = -1, .data_fd = -1 }

/* A verified raw copy of the mapped data for @map of the image open as
 * @image_fd (named @image in messages; a regular file at offset 0, the one
 * the worker opened, whatever the name holds by now): served from the
 * cache, or being filled there by a process of its own (forked by the first
 * worker to ask, belonging to no card) while every worker reads along as
 * far as it is filled. Readers never wait for each other. Entries are keyed
 * by the SHA-256 of the image file's identity (device, inode, size, mtime,
 * ctime) and the bmap's content; older entries nobody uses are evicted to
 * stay under @max_size, parts being filled counted, stale files (parts
 * whose filler died, temp files of earlier versions) removed. -errno with
 * @why when the cache cannot serve: the caller copies from the image.
 * @image_fd -1: @image is a URL, fetched by the filler (resumed where a
 * connection broke, as the source does), the entry keyed by the URL
 * without credentials and the bmap; such a caller never copies from the
 * network instead. */
int cache_acquire(struct bmap_ctx *ctx, const char *dir, uint64_t max_size, int image_fd,
		  const char *image, const struct bmap_map *map, atomic_int *cancel,
		  struct cache_use *ret, char *why, size_t why_len);
/* The same for a self-mapped image (qcow2, Android sparse) without a bmap,
 * open as @image_fd (a regular file), of virtual disk size @virtual_size
 * holding @data_size bytes of data (what the entry takes in the cache;
 * @virtual_size when its map is not known before it is read):
 * the entry is its virtual disk with the bmap its filler made of it
 * (cache-self.c), returned as *@ret_map (with SHA-256 range checksums; for
 * the caller to free). Returns once the entry is complete (never filling):
 * nothing of it can be checked before its bmap is made. A fill that fails
 * (a simg's wrong CRC32) fails with its reason in @why and leaves no entry. */
int cache_acquire_self(struct bmap_ctx *ctx, const char *dir, uint64_t max_size, int image_fd,
		       const char *image, uint64_t virtual_size, uint64_t data_size,
		       atomic_int *cancel, struct cache_use *ret, struct bmap_map **ret_map, char *why,
		       size_t why_len);
/* A bmap_wait_fn: returns once the entry's bytes below @end are filled;
 * -errno with @why when the fill failed or its process is gone. */
int cache_wait(void *cache_use, uint64_t end, char *why, size_t why_len);
/* 0 once the whole entry is filled and verified (at once when it was
 * complete already); -errno with @why when the fill failed. */
int cache_finished(struct cache_use *u, char *why, size_t why_len);
/* The fill's verdict so far, without waiting: 0 complete (or not
 * filling), 1 still running, -errno with @why when it failed. */
int cache_fill_status(struct cache_use *u, char *why, size_t why_len);
/* A URL's fill that is still downloading: 1 with the bytes received so far
 * and what the server announced (0: not said); else 0. */
int cache_download(struct cache_use *u, uint64_t *ret_done, uint64_t *ret_total);
void cache_release(struct cache_use *u);
/* After a card copied from the complete entry @u without hashing failed its
 * read-back (cache-check.c): the file the card was copied from, open as
 * @data_fd, is checked against @map. 0 when it matches (the card is at
 * fault), -EBADMSG with @why when it does not: then the entry's name was
 * removed if it still names that file. -EINTR once @cancel is set. */
int cache_entry_check(const struct cache_use *u, int data_fd, const struct bmap_map *map,
		      atomic_int *cancel, char *why, size_t why_len);
/* At the station's start, before any worker runs: removes what fills that
 * died left in @dir ("" or NULL: no cache), parts, temp files of earlier
 * versions and state files of keys with neither entry nor part, and logs
 * what it removed. */
void cache_sweep(const char *dir);
