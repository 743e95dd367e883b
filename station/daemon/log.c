/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's log: one line per event, every line through the sanitizer
 * as a whole (device strings inside an error text, say). On a terminal or
 * a pipe each line carries the priority prefix journald reads (<3> error
 * ... <6> info, as sd-daemon.h defines). When standard error is the journal
 * itself ($JOURNAL_STREAM names it), entries go through sd_journal_send()
 * with structured fields, so `journalctl SERIAL=X` or `JOB=N` finds a
 * card's lines: SERIAL, DEVNODE, SLOT, PROFILE, JOB, OUTCOME.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include "manager.h"
#include "sanitize.h"

/* Whether stderr is the journal's stream: "DEV:INO" of it in the environment. */
static bool stderr_is_journal(void)
{
	static int cached = -1;
	const char *e;
	unsigned long long dev, ino;
	struct stat st;

	if (cached >= 0)
		return cached;
	cached = 0;
	e = getenv("JOURNAL_STREAM");
	if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	    (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
		cached = 1;
	return cached;
}

/* "NAME=value" into @iov[*n] when @value is set. */
static void field(struct iovec *iov, size_t *n, char *buf, size_t len, const char *name,
		  const char *value)
{
	char safe[512];
	int l;

	if (!value || !*value)
		return;
	l = snprintf(buf, len, "%s=%s", name, printable(value, safe, sizeof(safe)));
	iov[*n] = (struct iovec){.iov_base = buf, .iov_len = l < (int)len ? (size_t)l : len - 1};
	(*n)++;
}

static void log_emit(int prio, const struct card *c, const char *line)
{
	char safe[2048], msg[2100], f[9][600], num[32];
	struct iovec iov[9];
	size_t n = 0;

	printable(line, safe, sizeof(safe));
	if (!stderr_is_journal()) {
		fprintf(stderr, "<%d>bmap-station: %s\n", prio, safe);
		return;
	}
	snprintf(num, sizeof(num), "%d", prio);
	iov[n++] = (struct iovec){
	    .iov_base = msg, .iov_len = (size_t)snprintf(msg, sizeof(msg), "MESSAGE=%s", safe)};
	field(iov, &n, f[1], sizeof(f[1]), "PRIORITY", num);
	field(iov, &n, f[2], sizeof(f[2]), "SYSLOG_IDENTIFIER", "bmap-station");
	if (c) {
		field(iov, &n, f[3], sizeof(f[3]), "SERIAL", c->dev.serial);
		field(iov, &n, f[4], sizeof(f[4]), "DEVNODE", c->dev.devnode);
		field(iov, &n, f[5], sizeof(f[5]), "SLOT", c->slot_name);
		field(iov, &n, f[6], sizeof(f[6]), "PROFILE", c->profile);
		if (c->job > 0) {
			snprintf(num, sizeof(num), "%lld", (long long)c->job);
			field(iov, &n, f[7], sizeof(f[7]), "JOB", num);
		}
		if (c->has_outcome)
			field(iov, &n, f[8], sizeof(f[8]), "OUTCOME", outcome_name(c->outcome));
	}
	if (sd_journal_sendv(iov, (int)n) < 0)
		fprintf(stderr, "<%d>bmap-station: %s\n", prio, safe);
}

void log_at(int prio, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_emit(prio, NULL, line);
}

void log_card(int prio, const struct card *c, const char *fmt, ...)
{
	char line[2048], label[512];
	size_t n;
	va_list ap;

	n = (size_t)snprintf(line, sizeof(line), "%s: ", card_label(c, label, sizeof(label)));
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	log_emit(prio, c, line);
}

const char *card_label(const struct card *c, char *buf, size_t len)
{
	char serial[128];

	snprintf(buf, len, "%s (serial %s%s%s)", c->dev.devnode ? c->dev.devnode : c->dev.sysname,
		 printable(c->dev.serial, serial, sizeof(serial)), c->slot_name ? ", slot " : "",
		 c->slot_name ? c->slot_name : "");
	return buf;
}
