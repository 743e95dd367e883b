/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's log: one line per event on stderr, with the priority prefix
 * journald reads (<3> error ... <6> info, as sd-daemon.h defines), every
 * line through the sanitizer as a whole (device strings inside an error
 * text, say); and how a card is named in it.
 */
#include <stdarg.h>
#include <stdio.h>

#include "manager.h"
#include "sanitize.h"

void log_at(int prio, const char *fmt, ...)
{
	char line[2048], safe[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "<%d>bmap-station: %s\n", prio, printable(line, safe, sizeof(safe)));
}

const char *card_label(const struct card *c, char *buf, size_t len)
{
	char serial[128];

	snprintf(buf, len, "%s (serial %s%s%s)", c->dev.devnode ? c->dev.devnode : c->dev.sysname,
		 printable(c->dev.serial, serial, sizeof(serial)), c->slot_name ? ", slot " : "",
		 c->slot_name ? c->slot_name : "");
	return buf;
}
