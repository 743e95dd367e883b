/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one sanitizer: device strings, labels, names and error texts made safe to print. */
#include <stdint.h>
#include <string.h>

#include "sanitize.h"
#include "util.h"

size_t sanitize(char *buf, size_t len, const char *s, size_t n, size_t max_chars, bool ellipsis)
{
	static const char dots[] = "\xe2\x80\xa6";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, w = 0, cut = 0;

	if (len == 0)
		return 0;
	if (!s) {
		p = (const unsigned char *)"-";
		n = 1;
	}
	while (n > 0) {
		uint32_t cp;
		int l = utf8_next(p, n, &cp);
		size_t step = (size_t)(l < 0 ? -l : l);
		bool bad = l < 0 || utf8_unsafe(cp);
		size_t out = bad ? 1 : step;

		if (w + 1 == max_chars)
			cut = i;
		if (w == max_chars) {
			/* One character too many: the last kept one gives way to "…". */
			if (ellipsis && cut + sizeof(dots) <= len) {
				memcpy(buf + cut, dots, sizeof(dots) - 1);
				i = cut + sizeof(dots) - 1;
			}
			break;
		}
		if (i + out >= len)
			break;
		if (bad)
			buf[i] = '?';
		else
			memcpy(buf + i, p, step);
		i += out;
		p += step;
		n -= step;
		w++;
	}
	buf[i] = '\0';
	return w;
}

const char *printable(const char *s, char *buf, size_t len)
{
	sanitize(buf, len, s, s ? strlen(s) : 0, SIZE_MAX, false);
	return buf;
}
