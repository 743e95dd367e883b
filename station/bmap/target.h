/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal view of a destination, for the copy and verify engines. */
#pragma once

#include <limits.h>
#include <pthread.h>
#include "bmap-private.h"

struct bmap_target {
	int fd;
	bool owns_fd;
	char *name;
	char disk[NAME_MAX + 1]; /* kernel name of the whole disk */
	bool blockdev;
	bool direct;     /* O_DIRECT is on; set before any worker runs */
	bool writable;   /* opened in BMAP_TARGET_WRITE mode: every guard passed */
	pthread_mutex_t bounce_lock;
	uint64_t size;
	unsigned sector_size;
	bool no_sync;    /* a scratch file: never synced */
};

int target_pwrite(struct bmap_target *t, const void *buf, size_t len, uint64_t off);
/* @len zero bytes at @off: BLKZEROOUT where the device takes it, a hole in
 * a file, else written; 0 or -errno. */
int target_write_zeros(struct bmap_target *t, uint64_t off, uint64_t len);
#define TARGET_ZEROS_SIZE (1u << 20)
extern const uint8_t target_zeros[TARGET_ZEROS_SIZE];
int target_drop_cache(struct bmap_target *t);
/* Reads @len bytes at @off; returns the bytes read (fewer at the end). */
ssize_t target_pread(struct bmap_target *t, void *buf, size_t len, uint64_t off);
/* Writes all @len bytes at @off; 0 or -errno. */
int target_set_direct(struct bmap_target *t, bool on);
/* A number from /sys/block/<disk>/@attr (e.g. "queue/discard_max_bytes"). */
int target_sysfs_u64(const struct bmap_target *t, const char *attr, uint64_t *ret);
