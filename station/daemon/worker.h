/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The worker: the child process that flashes one card. It opens the disk
 * (O_EXCL, flock), checks DISKSEQ, copies with libbmap, syncs, verifies per
 * the profile, and reports to the daemon over a pipe, one line per message:
 *
 *   content-before TEXT
 *   progress writing|verifying DONE TOTAL
 *   content-after TEXT
 *   result OUTCOME BYTES DATA_SHA256|- READBACK_SHA256|-
 *   error TEXT
 *   note TEXT          (for the daemon's log, e.g. the cache's doings, the discard)
 *
 * It never touches SQLite or libudev (the daemon's), and ends with _exit().
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

struct worker_job {
	const char *devnode;
	uint64_t diskseq; /* expected; 0 = do not check */
	const char *image;
	const char *bmap; /* NULL: discovered next to the image */
	const char *bmap_sha256; /* hex, as the journal recorded it; NULL: not checked */
	const struct sig_policy *sig; /* the profile's signature rule, or NULL */
	const char *signer;      /* the signer the journal recorded, NULL: unsigned */
	enum verify_mode verify;
	const char *cache_dir; /* NULL or "": no decompress-once cache */
	uint64_t cache_max_size;
	bool discard; /* discard the unmapped ranges once the image is written */
};

/* Runs in the child; writes messages to @fd; returns the exit status. */
int worker_run(const struct worker_job *job, int fd);

struct bmap_ctx;
struct bmap_map;
struct bmap_target;
/* The job's discard step (worker-discard.c), after the copy: the unmapped
 * ranges of @map on @dst are discarded and @note (for a 'note' line) says
 * how many bytes, or that the card does not support it (not a failure).
 * Returns 0, or -errno with the detail in @ctx. */
int worker_discard(struct bmap_ctx *ctx, struct bmap_target *dst, const struct bmap_map *map,
		   atomic_int *cancel, char *note, size_t note_size);

/* Parent side: one parsed line. */
struct worker_msg {
	enum {
		WMSG_PROGRESS,
		WMSG_CONTENT_BEFORE,
		WMSG_CONTENT_AFTER,
		WMSG_RESULT,
		WMSG_ERROR,
		WMSG_NOTE,
	} type;
	char phase[16];
	uint64_t done, total;
	char outcome[32];
	uint64_t bytes;
	char data_sha256[65], readback_sha256[65];
	const char *text; /* points into the parsed line */
};
int worker_parse_line(char *line, struct worker_msg *m);
