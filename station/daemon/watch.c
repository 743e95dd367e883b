/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * 'bmap-station watch': a full-screen view for a kiosk screen, over SSH or on
 * a Linux console. It reads the journal's live table (WAL: it never blocks
 * the daemon) twice a second and draws one progress bar per card with plain
 * ANSI sequences, then restores the terminal however it ends.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "report.h"
#include "sanitize.h"
#include "util.h"
#include "watch.h"

#define RED "\033[1;37;41m"
#define GREEN "\033[1;30;42m"
#define YELLOW "\033[33m"
#define BOLD "\033[1m"
#define OFF "\033[0m"

static volatile sig_atomic_t watch_stop;
static struct termios saved_tio;
static bool tio_saved;

static void on_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

static void terminal_restore(void)
{
	/* Cursor back, main screen back, line discipline as it was. */
	fputs("\033[0m\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
}

static void terminal_setup(void)
{
	struct termios t;

	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
		tio_saved = true;
		t = saved_tio;
		t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &t);
	}
	fputs("\033[?1049h\033[?25l", stdout);
}

struct frame {
	int width;
	int rows;
};

/* A device string cut or padded to @width characters for one column. */
static const char *safe(const char *s, char *buf, size_t len, size_t width)
{
	size_t w = sanitize(buf, len, s && *s ? s : "-", s && *s ? strlen(s) : 1, width, false);
	size_t i = strlen(buf);

	for (; w < width && i + 2 <= len; w++)
		buf[i++] = ' ';
	buf[i] = '\0';
	return buf;
}

static int draw_row(void *userdata, const struct live_row *l)
{
	struct frame *f = userdata;
	char slot[8 * 4 + 1], serial[16 * 4 + 1], profile[12 * 4 + 1];
	/* 74 columns of text around the bar: nothing wraps at the terminal's width. */
	int bar = f->width - 75, fill = 0, pct = -1;
	const char *where = l->slot ? l->slot : l->devnode;
	bool running = strcmp(l->state, "writing") == 0 || strcmp(l->state, "verifying") == 0 ||
		       strcmp(l->state, "downloading") == 0;
	const char *colour = running			       ? YELLOW
			     : strcmp(l->state, "done") == 0   ? GREEN
			     : strcmp(l->state, "waiting") == 0 ? ""
								: RED;

	if (bar < 10)
		bar = 10;
	if (l->total) {
		pct = (int)(l->done * 100 / l->total);
		fill = (int)((uint64_t)bar * l->done / l->total);
	} else if (!running && strcmp(l->state, "done") == 0) {
		pct = 100;
		fill = bar;
	}
	if (!l->slot && where && strncmp(where, "/dev/", 5) == 0)
		where += 5;
	printf("%s %s %s %s%-9s" OFF " [", safe(where, slot, sizeof(slot), 8),
	       safe(l->serial, serial, sizeof(serial), 16),
	       safe(l->profile, profile, sizeof(profile), 12), colour, l->state);
	for (int i = 0; i < bar; i++)
		fputs(i < fill ? "#" : ".", stdout);
	if (pct >= 0)
		printf("] %3d%%", pct);
	else
		printf("]     ");
	if (running && l->rate > 0) {
		double left = l->total > l->done ? (double)(l->total - l->done) / l->rate : 0;

		printf(" %6.1f MB/s %2d:%02d", l->rate / 1e6, (int)left / 60, (int)left % 60);
	}
	fputs("\033[K\n", stdout);
	f->rows++;
	return 0;
}

static int draw(struct journal *j)
{
	struct frame f = { .width = 100 };
	struct winsize ws;
	struct day_counts c = { 0 };
	char now[32];
	time_t t = time(NULL);
	pid_t pid;
	int r;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col)
		f.width = ws.ws_col;
	strftime(now, sizeof(now), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
	printf("\033[H" BOLD "bmap-station" OFF "   %s   (q to quit)\033[K\n", now);
	/* The live table keeps what a station that died last wrote. */
	if (journal_station_pid(j, &pid) == 0)
		printf(RED " station not running " OFF " (the cards as it left them)");
	printf("\033[K\n");
	printf(BOLD "%-8s %-16s %-12s %-9s  progress" OFF "\033[K\n", "SLOT", "SERIAL", "PROFILE",
	       "STATE");
	r = journal_live_foreach(j, draw_row, &f);
	if (r < 0)
		return r;
	if (f.rows == 0)
		printf("(no cards)\033[K\n");
	r = journal_today(j, &c);
	if (r < 0)
		return r;
	/* The yield is report --summary's (journal_today()): refusals and
	 * interruptions are not failures of a card, so they are shown apart. */
	printf("\033[K\n" BOLD "today" OFF ": flashed %u, " GREEN " passed %u " OFF ", " RED
	       " failed %u " OFF ", yield ",
	       c.flashed, c.passed, c.failed);
	if (c.yield_pct >= 0)
		printf("%.1f%%", c.yield_pct);
	else
		fputs("-", stdout);
	if (c.refused || c.interrupted)
		printf("  (not counted: %u refused, %u interrupted)", c.refused, c.interrupted);
	fputs("\033[K\n\033[J", stdout);
	fflush(stdout);
	return 0;
}

int watch_run(struct journal *j)
{
	struct sigaction sa = { .sa_handler = on_signal };
	bool keys = true; /* standard input still gives keys */
	int r = 0;

	if (!isatty(STDOUT_FILENO)) {
		fprintf(stderr, "bmap-station: watch needs a terminal; use 'status' in scripts\n");
		return -ENOTTY;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* One write per frame: a terminal never shows half a screen. */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	terminal_setup();
	while (!watch_stop) {
		/* poll() passes over a negative fd: then it only waits. */
		struct pollfd p = { .fd = keys ? STDIN_FILENO : -1, .events = POLLIN };
		ssize_t n;
		char key;

		r = draw(j);
		if (r < 0)
			break;
		/* Twice a second, or at once for a key. */
		if (poll(&p, 1, 500) <= 0 || !p.revents)
			continue;
		n = read(STDIN_FILENO, &key, 1);
		if (n == 1 && (key == 'q' || key == 'Q'))
			break;
		/*
		 * End of file (</dev/null, a closed pipe, a hung-up terminal)
		 * stays readable: polling it again would return at once, for
		 * ever, at 100% CPU. Stop reading keys; keep showing.
		 */
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			keys = false;
	}
	terminal_restore();
	if (r < 0)
		fprintf(stderr, "bmap-station: watch: %s\n", journal_error(j));
	return r;
}
