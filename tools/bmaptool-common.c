/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What bmaptool's commands share (see bmaptool.h): messages, usage errors,
 * the common options, signals, progress.
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

bool url_insecure;

struct bmap_ctx *ctx_new(void)
{
	struct bmap_ctx *ctx = bmap_ctx_new();

	if (!ctx) {
		error("out of memory");
		exit(EXIT_FAILURE);
	}
	bmap_ctx_set_log_fn(ctx, lib_log, NULL);
	bmap_ctx_set_tls_insecure(ctx, url_insecure);
	return ctx;
}

char *shown(const char *location)
{
	char *s = bmap_location_is_url(location) ? bmap_url_display(location) : strdup(location);

	if (!s) {
		error("out of memory");
		exit(EXIT_FAILURE);
	}
	return s;
}

bool handle_common(int c)
{
	switch (c) {
	case 'q':
		log_max = BMAP_LOG_ERROR;
		return true;
	case 'd':
		log_max = BMAP_LOG_DEBUG;
		return true;
	case OPT_INSECURE:
		url_insecure = true;
		return true;
	default:
		return false;
	}
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

atomic_int interrupted;
/* Written to by the handler, never read: readable once a signal came. */
static int interrupt_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;

	(void)sig;
	interrupted = 1;
	if (interrupt_pipe[1] >= 0)
		(void)!write(interrupt_pipe[1], "", 1);
	errno = saved;
}

void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	/* Without the pipe a wait for input is not cut short: the flag still
	 * stops the copy at its next piece. */
	if (interrupt_pipe[0] < 0 && pipe2(interrupt_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		interrupt_pipe[0] = interrupt_pipe[1] = -1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int interrupt_fd(void)
{
	return interrupt_pipe[0];
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
	if (p->src && bmap_source_get_transferred(p->src) > 0)
		fprintf(stderr, "  (%.1f MiB downloaded, %.1f MiB written)",
			(double)bmap_source_get_transferred(p->src) / 1048576.0,
			(double)done / 1048576.0);
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
