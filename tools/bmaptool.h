/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What bmaptool's commands share: messages, usage errors and the options
 * every command takes, the signals that stop a copy, the progress display
 * (bmaptool-common.c); what copy and verify do before their engine runs
 * (bmaptool-setup.c); their command lines (bmaptool-options.c). bmaptool.c
 * dispatches to one file per command:
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
/* The signature options of copy, verify and info (the reference 3.9's;
 * parsed in bmaptool-options.c). */
struct sig_args {
	const char *bmap_sig;    /* --bmap-sig FILE: the detached signature */
	const char *keyring;     /* --keyring FILE: verify against it only */
	const char *fingerprint; /* --fingerprint FPR: the signer wanted */
	bool no_verify;          /* --no-sig-verify */
};
#define SIG_HELP                                                                             \
	"      --bmap-sig FILE      the detached GPG signature of the bmap (default:\n"        \
	"                           BMAP.asc, then BMAP.sig, when one exists)\n"               \
	"      --keyring FILE       verify the signature against this keyring only (a\n"     \
	"                           binary keyring, as gpg exports it); default: the user's\n"         \
	"                           keyring ($GNUPGHOME or ~/.gnupg), read only\n"            \
	"      --fingerprint FPR    require a signature by this key\n"                        \
	"      --no-sig-verify      do not verify the bmap's signature\n"
/* The combinations the reference refuses: 0, or the usage error's status. */
int check_sig_args(const char *cmd, const struct sig_args *sa, bool nobmap);

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

/* ---- command lines (bmaptool-options.c) ---- */

/* parse_cmd_line() and option handlers: go on (any other value is the
 * exit status to stop with). */
#define ARGS_PARSED (-1)

/* A command's positional arguments in their order (into argv; v is
 * allocated). */
struct cmd_args {
	char **v;
	int n;
};

/* Called for each option of a command but -h, -q, -d: ARGS_PARSED, or the
 * exit status (a usage error's) to stop with. */
typedef int (*option_fn)(int c, const char *arg, void *userdata);

/* Parses argv (argv[0] the command's name) as argparse does: options
 * anywhere among the positionals (POSIXLY_CORRECT or not), "--" ends the
 * options; -q, -d and -h (prints @help) are handled here. Usage errors say
 * "bmaptool: error:" in argparse's words, with the --help hint of @cmd
 * ("copy "). Returns ARGS_PARSED with @ret set (free ret->v), or the exit
 * status. Long-only options use vals >= 256. */
int parse_cmd_line(const char *cmd, const char *help, int argc, char **argv, const char *shortopts,
		   const struct option *longopts, option_fn fn, void *userdata,
		   struct cmd_args *ret);
/* The usage error for getopt_long()'s '?' or ':' (with opterr = 0 and a
 * ':' in the option string); returns EXIT_USAGE. */
int usage_bad_option(const char *cmd, int c, char **argv, const struct option *longopts);

/* The commands that share one option table (bmaptool-options.c). */
enum { CMD_COPY = 1, CMD_VERIFY = 2, CMD_INFO = 4 };

/* What copy, verify and info were asked; a field per option. */
struct image_opts {
	const char *cmd;       /* "copy ", for usage_error() */
	const char *bmap;      /* --bmap */
	bool nobmap;           /* copy, verify */
	bool no_verify;        /* copy */
	const char *psplash;   /* copy --psplash-pipe */
	bool removable;        /* copy --removable-device */
	bool discard;          /* copy */
	bool json;             /* info */
	struct sig_args sig;   /* --bmap-sig, --keyring, --fingerprint, --no-sig-verify */
	struct cmd_args args;  /* IMAGE [DEST...] */
};

/* The command line of @which (one CMD_*), its positionals checked: IMAGE
 * for info, IMAGE and at least one DEST for copy and verify. ARGS_PARSED
 * (then image_opts_done()), or the exit status. */
int parse_image_opts(unsigned which, const char *help, int argc, char **argv,
		     struct image_opts *o);
void image_opts_done(struct image_opts *o);

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

/* The bmap file @path: its bytes, its signature (clearsigned, --bmap-sig, or
 * discovered as BMAP.asc, BMAP.sig) verified as @sa asks, then parsed.
 * Prints the reference's lines ("successfully verified bmap file signature
 * ...", "discovered a BAD GPG signature ...") and what went wrong; a
 * signature that does not verify fails before anything else is done.
 * @ret_sig (may be NULL) gets the verdict and @ret_sig_path (may be NULL)
 * the detached signature's path (malloc'd, NULL when none). */
int load_bmap(struct bmap_ctx *ctx, const char *path, const struct sig_args *sa,
	      struct bmap_map **ret_map, struct bmap_sig_result *ret_sig, char **ret_sig_path);

/* Opens IMAGE ('-': standard input) and its map: --bmap, discovered, or
 * computed from a raw sparse file's holes; *ret_map is NULL for --nobmap.
 * *ret_bmap_path (when not NULL): the bmap file read, NULL for none (to free).
 * A bmap file's signature is verified as @sa asks (load_bmap()).
 * Reads from a pipe end at SIGINT or SIGTERM (interrupt_fd()). Prints what
 * went wrong. @cmd is "copy" or "verify". */
int open_image(struct bmap_ctx *ctx, const char *image, const char *bmap_arg, bool nobmap,
	       const struct sig_args *sa, const char *cmd, struct bmap_source **ret_src,
	       struct bmap_map **ret_map, char **ret_bmap_path);

/* The size a destination must have: the map's image size, a raw image
 * file's size without a map, 0 when unknown (a stream without a map). */
uint64_t image_size_of(const struct bmap_map *map, struct bmap_source *src);

/* One image, its map and one destination, as copy and verify open them. */
struct setup {
	struct bmap_ctx *ctx;
	struct bmap_source *src;
	struct bmap_map *map; /* NULL with --nobmap */
	struct bmap_target *dst;
	char *bmap_path; /* the bmap file read, NULL for none */
};

/* Catches SIGINT and SIGTERM, opens the image and its map (open_image()),
 * then DEST with @topts (in BMAP_TARGET_WRITE mode its image_size is set
 * from the image). Prints what went wrong; setup_free() in any case. */
int setup_open(struct setup *s, const char *cmd, const char *image, const char *bmap_arg,
	       bool nobmap, const struct sig_args *sa, const char *dest,
	       struct bmap_target_opts *topts);
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
