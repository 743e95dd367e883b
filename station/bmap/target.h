/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal view of a destination, for the copy and verify engines. */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include "bmap-private.h"

struct bmap_target {
	int fd;
	bool owns_fd;
	char *name;
	char disk[NAME_MAX + 1]; /* kernel name of the whole disk */
	bool blockdev;
	bool partition;  /* a block device that is a partition of t->disk */
	bool chardev;    /* /dev/null or /dev/zero: written to, never synced */
	int disk_fd;     /* a partition's whole disk, locked against udev; or -1 */
	bool direct;     /* O_DIRECT is on; set before any worker runs */
	bool writable;   /* opened in BMAP_TARGET_WRITE mode: every guard passed */
	pthread_mutex_t bounce_lock; /* also for the first write (target_touch) */
	uint64_t size;
	unsigned sector_size;
	bool no_sync;    /* a scratch file: never synced */
	/* A regular file copied to: its old content goes (truncated to 0) only
	 * at the first write or at target_finish(), once every check before the
	 * copy passed; it gets its final size at target_finish(). */
	bool drop_content;
	atomic_bool changed; /* written to, or truncated */
	/* Created by bmap_target_open(): removed again by bmap_target_free()
	 * when nothing was ever written to it (a refused copy leaves no file). */
	int dir_fd;          /* its folder (O_PATH), or -1 */
	char *created_name;  /* its name in dir_fd */
};

/* Allocates a target named @name (fd -1); NULL when out of memory. */
struct bmap_target *target_alloc(const char *name);
/* The guards and the set-up of an opened t->fd (bmap_target_open*()). */
int target_setup(struct bmap_ctx *ctx, struct bmap_target *t, const struct bmap_target_opts *opts);
/* A regular file: gives it its final @size (after dropping its old content
 * if nothing was written yet). Called by the copy once the image passed
 * every check; nothing for other targets. */
int target_finish(struct bmap_target *t, uint64_t size);

/* Writes all @len bytes at @off; 0 or -errno. */
int target_pwrite(struct bmap_target *t, const void *buf, size_t len, uint64_t off);
/* @len zero bytes at @off: BLKZEROOUT where the device takes it, a hole in
 * a file, else written; 0 or -errno. */
int target_write_zeros(struct bmap_target *t, uint64_t off, uint64_t len);
#define TARGET_ZEROS_SIZE (1u << 20)
extern const uint8_t target_zeros[TARGET_ZEROS_SIZE];
int target_drop_cache(struct bmap_target *t);
/* Reads @len bytes at @off; returns the bytes read (fewer at the end). */
ssize_t target_pread(struct bmap_target *t, void *buf, size_t len, uint64_t off);
int target_set_direct(struct bmap_target *t, bool on);
/* A number from /sys/block/<disk>/@attr (e.g. "queue/discard_max_bytes"). */
int target_sysfs_u64(const struct bmap_target *t, const char *attr, uint64_t *ret);
