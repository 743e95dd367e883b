/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One image, several destinations (bmaptool-multi.c), and the spill file
 * that lets a stream be decoded once for all of them (bmaptool-spill.c).
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bmap.h"
#include "bmaptool.h"

/* What `copy` or `verify` was asked, parsed by bmaptool-copy.c or -verify.c. */
struct multi_args {
	bool verify;           /* verify, else copy */
	const char *image;     /* a file or "-" */
	const char *bmap;      /* --bmap, or NULL */
	bool nobmap;
	struct sig_args sig;   /* the bmap's signature options */
	bool no_verify;        /* copy --no-verify */
	bool removable;        /* copy --removable-device */
	bool discard;          /* copy --discard */
	const char *psplash;   /* copy --psplash-pipe */
	char **dests;
	size_t n_dests;        /* >= 2 */
};

/* Runs the command on every destination at once; returns the exit status
 * (0: all succeeded, 1: any failed, 2: usage error). */
int multi_run(const struct multi_args *a);

/* ---- shared by bmaptool-multi.c and bmaptool-multi-print.c ---- */

enum outcome {
	DEST_RUNNING,
	DEST_OK,
	DEST_REFUSED,    /* a guard said no: nothing was written */
	DEST_FAILED,
	DEST_GONE,       /* the medium went away */
	DEST_INTERRUPTED,
};

struct multi;

/* One destination: its thread writes outcome, why and the results, then
 * sets ended; the main thread reads them only after that. */
struct dest {
	struct multi *m;
	const char *name;  /* as given */
	const char *label; /* its last component, for the status line */
	struct bmap_ctx *ctx;
	struct bmap_target *target;
	struct bmap_source *src; /* its own reader; NULL when verify needs none */
	struct bmap_copy_opts copts;
	pthread_t tid;
	bool started;      /* main thread: a thread runs it (until joined) */
	atomic_bool ended;
	bool reported;     /* main thread: its lines were printed */
	enum outcome outcome;
	char why[1024];
	struct bmap_copy_result cres;
	struct bmap_verify_result vres;
	bool discarded;    /* --discard ran: dres holds what it did */
	struct bmap_discard_result dres;
	atomic_uint_fast64_t done, total;
};

struct multi {
	const struct multi_args *a;
	pthread_mutex_t lock;
	pthread_cond_t ended; /* a destination ended: its lines are due */
	struct bmap_map *map;
	struct spill *spill;
	uint64_t image_size; /* 0: unknown (a stream without a bmap) */
	struct dest *d;
	size_t n;
};

/* What is about to happen (as the one-destination copy says it) and to
 * which of the destinations that were opened. */
void multi_announce(struct multi *m, struct bmap_source *src, size_t n_open);
/* A destination's result lines, once it ended. */
void multi_report(struct multi *m, struct dest *d);
/* The status line: every destination's percentage, the decoder's. */
void multi_status_line(struct multi *m);
/* The slowest destination still going to psplash, when it changed. */
void multi_psplash(struct multi *m, int *last);
/* "copied to N of M destinations" and each failed one; the exit status. */
int multi_summary(struct multi *m);

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
