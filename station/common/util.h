/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers shared by the library, the tools and the daemon. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* The reference bmaptool's human_size(): "1 byte", "N bytes" below 512,
 * otherwise "%.1f KiB|MiB|GiB|TiB", then "PiB|EiB" where the reference
 * mislabels (it calls 1024 TiB "1024.0 EiB"). @buf needs 32 bytes. */
const char *human_size(uint64_t size, char buf[static 32]);

/* Lowercase hex of @len bytes into @out (2*len+1 bytes). */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* Parses exactly 2*@len hex digits; returns 0 or -EINVAL. */
int hex_decode(const char *in, size_t in_len, uint8_t *out, size_t len);

/* read()/write() until done or error; return bytes moved or -errno. */
ssize_t loop_read(int fd, void *buf, size_t len);
ssize_t loop_pread(int fd, void *buf, size_t len, uint64_t off);
int loop_write(int fd, const void *buf, size_t len);
int loop_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/* @path opened for reading (O_NONBLOCK, O_CLOEXEC) if it is a regular
 * file, else -1. A FIFO is never opened: even a non-blocking open counts
 * as its reader, and a second reader would take part of its data. */
int open_if_regular(const char *path);

/* Parses a size such as "4096", "64K", "4G", "1.5M" (binary units). */
int parse_size(const char *s, uint64_t *ret);

/* Monotonic clock in seconds. */
double now_monotonic(void);
/* CLOCK_REALTIME in @ms milliseconds, for pthread_cond_timedwait. */
struct timespec deadline_in_ms(long ms);

/* Writes @s as a JSON string literal (quotes included) to @f. */
#include <stdio.h>
void json_write_string(FILE *f, const char *s);

/*
 * UTF-8 per Unicode's Table 3-7 (no overlongs, surrogates or values above
 * U+10FFFF): the length of the valid character at @s (and its code point in
 * @ret_cp), or minus the length of the maximal invalid subpart to skip.
 */
int utf8_next(const unsigned char *s, size_t n, uint32_t *ret_cp);
/* Code points a terminal must not get from a device string: C0 and C1
 * controls, DEL, bidi overrides and marks, BOM. */
bool utf8_unsafe(uint32_t cp);
