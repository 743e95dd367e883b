/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What bmaptool's commands share: messages, usage errors and the options
 * every command takes, the signals that stop a copy, the progress display
 * (bmaptool-common.c); what copy and verify do before their engine runs
 * (bmaptool-setup.c). bmaptool.c dispatches to one file per command:
 * bmaptool-create.c, -copy.c, -verify.c, -info.c; several destinations are
 * bmaptool-multi.c's.
 */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "bmap.h"

#define EXIT_USAGE 2

/* The commands, called with argv[0] the command's name; each returns the
 * exit status. */
int cmd_create(int argc, char **argv);
int cmd_copy(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* Options every command takes as well, in its getopt_long() table. */
#define COMMON_LONGOPTS                                                                      \
	{ "help", no_argument, NULL, 'h' }, { "quiet", no_argument, NULL, 'q' },             \
	{ "debug", no_argument, NULL, 'd' }
/* -q and -d (and --insecure where a command has it): sets log_max (or
 * url_insecure) and returns true; false for any other option. */
bool handle_common(int c);

/* --insecure, for the commands that read URLs (copy, verify, info): https
 * servers' certificates are not checked by the contexts ctx_new() makes. */
#define OPT_INSECURE 0x1001
#define URL_LONGOPTS { "insecure", no_argument, NULL, OPT_INSECURE }
extern bool url_insecure;
/* How messages name @location (a path, or a URL without its credentials):
 * malloc'd; exits when out of memory. */
char *shown(const char *location);

/* Messages above this level are not printed (-q: errors, -d: debug). */
extern enum bmap_log_level log_max;

/* "bmaptool: LEVEL: ..." on standard error, one whole line at a time
 * (threads may print), clearing the status line first if one is shown. */
void msg(enum bmap_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define error(...) msg(BMAP_LOG_ERROR, __VA_ARGS__)
#define warning(...) msg(BMAP_LOG_WARNING, __VA_ARGS__)
#define info(...) msg(BMAP_LOG_INFO, __VA_ARGS__)

/* One line on the terminal, redrawn in place ("\r"), that msg() clears
 * before a message; status_line_clear() removes it. */
void status_line(const char *text);
void status_line_clear(void);

/* A context whose library messages are printed; exits when out of memory. */
struct bmap_ctx *ctx_new(void);

/* Prints the usage error and the --help hint for command @cmd ("copy ", or
 * NULL); returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Set by SIGINT and SIGTERM once catch_signals() ran: copies stop. */
extern atomic_int interrupted;
void catch_signals(void);
/* Readable once SIGINT or SIGTERM came (after catch_signals(); else -1):
 * the image's source stops waiting for input from a pipe on it. */
int interrupt_fd(void);

/* One destination's progress: percent, speed and time left on a terminal,
 * 'PROGRESS n' lines to a psplash FIFO. */
struct progress {
	const struct bmap_source *src; /* a URL's: its bytes fetched are shown */
	bool tty;
	const char *psplash;
	double start;
	int last_percent;
	bool printed;
};

/* Whether progress goes to the terminal: both outputs are one, and not -q. */
bool progress_on_tty(void);
/* Progress goes to a terminal only, unless -q; psplash gets it regardless. */
void progress_setup(struct progress *p, struct bmap_copy_opts *copts);
void progress_end(struct progress *p);
void psplash_write(const char *pipe_path, int percent);

/* "1m 2.5s"; @buf needs 32 bytes. */
const char *human_time(double seconds, char buf[static 32]);

/* The info lines about the map that copy prints before it writes: the
 * format version ("(none)" without a map), blocks and mapped blocks. */
void print_map_info(const struct bmap_map *map);

/* ---- copy and verify, before their engine runs (bmaptool-setup.c) ---- */

/* Their arguments: IMAGE and at least one DEST (@n_args counts both), not
 * --nobmap with --bmap. 0, or the usage error's exit status. @cmd is
 * "copy " or "verify " (as usage_error() takes it). */
int check_image_dest_args(const char *cmd, int n_args, const char *bmap_arg, bool nobmap);

/* Opens IMAGE ('-': standard input) and its map: --bmap, discovered, or
 * computed from a raw sparse file's holes; *ret_map is NULL for --nobmap.
 * Reads from a pipe end at SIGINT or SIGTERM (interrupt_fd()). Prints what
 * went wrong. @cmd is "copy" or "verify". */
int open_image(struct bmap_ctx *ctx, const char *image, const char *bmap_arg, bool nobmap,
	       const char *cmd, struct bmap_source **ret_src, struct bmap_map **ret_map);

/* The size a destination must have: the map's image size, a raw image
 * file's size without a map, 0 when unknown (a stream without a map). */
uint64_t image_size_of(const struct bmap_map *map, struct bmap_source *src);

/* One image, its map and one destination, as copy and verify open them. */
struct setup {
	struct bmap_ctx *ctx;
	struct bmap_source *src;
	struct bmap_map *map; /* NULL with --nobmap */
	struct bmap_target *dst;
};

/* Catches SIGINT and SIGTERM, opens the image and its map (open_image()),
 * then DEST with @topts (in BMAP_TARGET_WRITE mode its image_size is set
 * from the image). Prints what went wrong; setup_free() in any case. */
int setup_open(struct setup *s, const char *cmd, const char *image, const char *bmap_arg,
	       bool nobmap, const char *dest, struct bmap_target_opts *topts);
void setup_free(struct setup *s);

/* ---- self-mapped images (bmaptool-formats.c) ---- */

/* The map a qcow2 or Android sparse image @src carries, and an info line
 * saying so: 0 with *ret_map set, or NULL for a sparse image read as a
 * stream (its map comes as it is read: bmap_copy_opts.source_map); 1 for a
 * raw image (nothing done); < 0 after printing the error. */
int format_map(struct bmap_ctx *ctx, struct bmap_source *src, const char *image,
	       struct bmap_map **ret_map);
/* `info IMAGE` of a self-mapped image (no --bmap): 0 printed, 1 a raw
 * image (nothing printed), < 0 after printing the error. */
int format_info(struct bmap_ctx *ctx, const char *image, bool json);
/* info's partition listing (bmaptool-partitions.c): the partition table of
 * IMAGE's data, each partition's file system, label, size and bytes mapped
 * by @map, as text lines or as JSON members (", \"partitions\": [...]")
 * inside the object being printed. A failure is a warning (and nulls):
 * returns -errno then, 0 otherwise. */
int info_partitions(struct bmap_ctx *ctx, const char *image, const struct bmap_map *map,
		    bool json);
/* `create IMAGE` of a self-mapped image: its bmap into @out_fd. 0 done, 1 a
 * raw image (nothing done), < 0 after printing the error. */
int format_create(struct bmap_ctx *ctx, const char *image, int out_fd, const char *out_name,
		  const struct bmap_create_opts *opts, struct bmap_create_result *ret_result);
