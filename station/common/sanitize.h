/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one sanitizer for strings that reach a terminal, a log line or a report. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * @s (@n bytes; NULL gives "-") into @buf (@len bytes, always terminated):
 * controls (C0, DEL, C1), bidi overrides and marks, BOM and invalid UTF-8
 * become '?'. At most @max_chars characters are kept, whole characters at a
 * time; with @ellipsis a longer text ends in "…" within that width. Returns
 * the characters written (the display width, one per code point).
 */
size_t sanitize(char *buf, size_t len, const char *s, size_t n, size_t max_chars, bool ellipsis);

/* A NUL-terminated @s made safe into @buf, for one log or output line. */
const char *printable(const char *s, char *buf, size_t len);
