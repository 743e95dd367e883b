/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What bmaptool's commands share (see bmaptool.h): messages, usage errors,
 * signals, progress, and an image's map.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "bmaptool.h"
#include "source.h"
#include "util.h"

enum bmap_log_level log_max = BMAP_LOG_INFO;

/* Under stderr's own lock (flockfile). */
static bool status_shown;

void msg(enum bmap_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if (level > log_max)
		return;
	flockfile(stderr);
	if (status_shown) {
		fputs("\r\033[K", stderr);
		status_shown = false;
	}
	fprintf(stderr, "bmaptool: %s: ", names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void status_line(const char *text)
{
	flockfile(stderr);
	fprintf(stderr, "\r\033[K%s", text);
	fflush(stderr);
	status_shown = true;
	funlockfile(stderr);
}

void status_line_clear(void)
{
	flockfile(stderr);
	if (status_shown)
		fputs("\r\033[K", stderr);
	status_shown = false;
	funlockfile(stderr);
}

static void lib_log(void *userdata, enum bmap_log_level level, const char *text)
{
	(void)userdata;
	msg(level, "%s", text);
}

struct bmap_ctx *ctx_new(void)
{
	struct bmap_ctx *ctx = bmap_ctx_new();

	if (!ctx) {
		error("out of memory");
		exit(EXIT_FAILURE);
	}
	bmap_ctx_set_log_fn(ctx, lib_log, NULL);
	return ctx;
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bmaptool: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'bmaptool %s--help' for more information.\n", cmd ? cmd : "");
	return EXIT_USAGE;
}

volatile int interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void psplash_write(const char *pipe_path, int percent)
{
	char line[32];
	int fd, n;

	/* Like the reference: opened non-blocking each time, errors ignored
	 * (psplash may not be listening). */
	fd = open(pipe_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "PROGRESS %d\n", percent);
	(void)!write(fd, line, (size_t)n);
	close(fd);
}

static void on_progress(void *userdata, uint64_t done, uint64_t total)
{
	struct progress *p = userdata;
	double elapsed = now_monotonic() - p->start;
	double rate = elapsed > 0 ? (double)done / elapsed : 0;
	int percent = total ? (int)(done * 100 / total) : 0;

	if (p->psplash && total && percent != p->last_percent)
		psplash_write(p->psplash, percent);
	p->last_percent = percent;
	if (!p->tty)
		return;
	if (total) {
		double left = rate > 0 ? (double)(total - done) / rate : 0;

		fprintf(stderr, "\r\033[Kbmaptool: %3d%%  %7.1f MB/s  %d:%02d left", percent,
			rate / 1e6, (int)left / 60, (int)left % 60);
	} else {
		fprintf(stderr, "\r\033[Kbmaptool: %7.1f MiB  %7.1f MB/s", (double)done / 1048576.0,
			rate / 1e6);
	}
	p->printed = true;
}

void progress_end(struct progress *p)
{
	if (p->printed)
		fputs("\r\033[K", stderr);
	p->printed = false;
}

const char *human_time(double seconds, char buf[static 32])
{
	int s = (int)seconds, h = s / 3600, m = s / 60 % 60;
	int n = 0;

	if (h)
		n += snprintf(buf + n, 32 - (size_t)n, "%dh ", h);
	if (m)
		n += snprintf(buf + n, 32 - (size_t)n, "%dm ", m);
	snprintf(buf + n, 32 - (size_t)n, "%.1fs", seconds - 60.0 * (h * 60 + m));
	return buf;
}

/* The bmap for IMAGE: --bmap, the map a self-mapped image carries,
 * discovered, or computed from a raw sparse file's holes. Returns 0 with
 * *ret_map NULL for --nobmap (and a sparse image read as a stream). */
static int load_map(struct bmap_ctx *ctx, const char *image, const char *bmap_arg, bool nobmap,
		    struct bmap_source *src, const char *cmd, struct bmap_map **ret_map)
{
	_cleanup_free_ char *found = NULL;
	int r, raw_fd;

	*ret_map = NULL;
	if (nobmap)
		return 0;
	if (bmap_arg) {
		struct stat a, b;

		if (strcmp(image, "-") != 0 && stat(bmap_arg, &a) == 0 && stat(image, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			error("the bmap file '%s' is the image file itself", bmap_arg);
			return -EINVAL;
		}
		r = bmap_map_load(ctx, bmap_arg, ret_map);
		if (r < 0)
			error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	/* A self-mapped image's own map, before any bmap found next to it. */
	r = format_map(ctx, src, image, ret_map);
	if (r <= 0)
		return r;
	if (strcmp(image, "-") != 0 && bmap_discover(image, &found) == 0) {
		info("discovered bmap file '%s'", found);
		r = bmap_map_load(ctx, found, ret_map);
		if (r < 0)
			error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	raw_fd = bmap_source_get_raw_fd(src);
	if (raw_fd >= 0) {
		info("no bmap found for '%s': using the holes of the raw sparse image "
		     "(its data is not checksummed)",
		     image);
		r = bmap_map_from_file(ctx, raw_fd, image, 4096, ret_map);
		if (r < 0)
			error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	error("bmap file not found for %s '%s'; give it with --bmap FILE, or use --nobmap to "
	      "%s every byte without a bmap",
	      strcmp(image, "-") == 0 ? "the image on" : bmap_compression_name(
		      bmap_source_get_compression(src)),
	      strcmp(image, "-") == 0 ? "standard input" : image,
	      strcmp(cmd, "copy") == 0 ? "flash" : "compare");
	return -ENOENT;
}

int open_image(struct bmap_ctx *ctx, const char *image, const char *bmap_arg, bool nobmap,
		      const char *cmd, struct bmap_source **ret_src, struct bmap_map **ret_map)
{
	int r = bmap_source_open(ctx, image, ret_src);

	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	return load_map(ctx, image, bmap_arg, nobmap, *ret_src, cmd, ret_map);
}

bool progress_on_tty(void)
{
	return isatty(STDERR_FILENO) && isatty(STDOUT_FILENO) && log_max >= BMAP_LOG_INFO;
}

void progress_setup(struct progress *p, struct bmap_copy_opts *copts)
{
	p->tty = progress_on_tty();
	p->start = now_monotonic();
	if (p->tty || p->psplash) {
		copts->progress = on_progress;
		copts->progress_userdata = p;
	}
}

void print_map_info(const struct bmap_map *map)
{
	char h1[32], h2[32];

	info("block map format version %s",
	     map && *bmap_map_get_version(map) ? bmap_map_get_version(map) : "(none)");
	if (!map)
		return;
	info("%" PRIu64 " blocks of size %" PRIu32 " (%s), mapped %" PRIu64 " blocks (%s or %.1f%%)",
	     bmap_map_get_blocks_count(map), bmap_map_get_block_size(map),
	     human_size(bmap_map_get_image_size(map), h1), bmap_map_get_mapped_blocks(map),
	     human_size(bmap_map_get_mapped_bytes(map), h2),
	     (double)bmap_map_get_mapped_blocks(map) * 100.0 /
		     (double)bmap_map_get_blocks_count(map));
}
