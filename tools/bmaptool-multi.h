/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One image, several destinations (bmaptool-multi.c), and the spill file
 * that lets a stream be decoded once for all of them (bmaptool-spill.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bmap.h"

/* What `copy` or `verify` was asked, parsed by bmaptool.c. */
struct multi_args {
	bool verify;           /* verify, else copy */
	const char *image;     /* a file or "-" */
	const char *bmap;      /* --bmap, or NULL */
	bool nobmap;
	bool no_verify;        /* copy --no-verify */
	bool removable;        /* copy --removable-device */
	const char *psplash;   /* copy --psplash-pipe */
	char **dests;
	size_t n_dests;        /* >= 2 */
};

/* Runs the command on every destination at once; returns the exit status
 * (0: all succeeded, 1: any failed, 2: usage error). */
int multi_run(const struct multi_args *a);

/* ---- the spill file ---- */

struct spill;

/* An empty file in $TMPDIR or, when that is unset or has no room for
 * @mapped bytes in @n_ranges ranges (0: unknown), /var/tmp; unlinked as soon
 * as it is open (spill_start() sizes it, sparse). Prints why there was no
 * room; spill_start() says where it went. @verb says what happens to @image
 * ("decompressing"; "-": standard input). */
int spill_new(const char *image, const char *verb, uint64_t mapped, size_t n_ranges,
	      struct spill **ret);
/* The decoder thread: bmap_copy() of @src through @map (NULL: every byte)
 * into the spill, range checksums checked unless @no_verify. @ctx and @src
 * are the thread's until spill_free(). */
int spill_start(struct spill *s, struct bmap_ctx *ctx, struct bmap_source *src,
		const struct bmap_map *map, bool no_verify);
/* A reader's raw source on the spill (a file description of its own). */
int spill_open_reader(struct spill *s, struct bmap_ctx *ctx, struct bmap_source **ret);
/* bmap_copy_opts.wait for a reader (@userdata: the spill): 0 once the image
 * is decoded past @end, or the decoder's error. */
int spill_wait(void *userdata, uint64_t end, char *why, size_t why_len);
/* The decoder's end: 0 when the whole image passed its checks (a stream's
 * own check comes at its end), else its error in @why. Waits for it. */
int spill_verdict(struct spill *s, char *why, size_t why_len);
/* How far the image is decoded (bytes of image), and whether it is over. */
uint64_t spill_progress(struct spill *s, bool *ret_ended);
/* Nobody reads any more: the decoder stops. */
void spill_stop(struct spill *s);
/* Stops and joins the decoder, closes the file (space freed at once). */
struct spill *spill_free(struct spill *s);
