/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * HTML output for the dashboard's pages: the one escaping of values (after
 * the one sanitizer) and the page frame every page shares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sanitize.h"
#include "serve.h"

void html_text(FILE *out, const char *s)
{
	size_t n, len;
	char *buf;

	if (!s)
		s = "-";
	n = strlen(s);
	/* A character becomes at most 4 bytes, and "…" is not asked for. */
	len = n * 4 + 8;
	buf = malloc(len);
	if (!buf) {
		fputs("?", out);
		return;
	}
	sanitize(buf, len, s, n, (size_t)-1, false);
	for (const char *p = buf; *p; p++) {
		/* U+FFFE and U+FFFF pass sanitize() (valid UTF-8, no control)
		 * but XML 1.0 forbids them: an SVG holding one is no SVG. */
		if ((unsigned char)p[0] == 0xef && (unsigned char)p[1] == 0xbf &&
		    ((unsigned char)p[2] == 0xbe || (unsigned char)p[2] == 0xbf)) {
			fputc('?', out);
			p += 2;
			continue;
		}
		switch (*p) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		case '\'': fputs("&#39;", out); break;
		default: fputc(*p, out);
		}
	}
	free(buf);
}

static const struct {
	const char *key, *href, *label;
} nav[] = {
	{ "live", "/", "Station" },
	{ "line", "/line", "Line" },
	{ "reports", "/reports", "Reports" },
	{ "charts", "/charts", "Charts" },
};

void html_page_begin(FILE *out, const char *title, const char *active)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
	      out);
	html_text(out, title);
	fputs("</title>\n<link rel=\"stylesheet\" href=\"/static/style.css\">\n</head><body>\n"
	      "<nav>", out);
	for (size_t i = 0; i < sizeof(nav) / sizeof(nav[0]); i++)
		fprintf(out, "<a href=\"%s\"%s>%s</a>", nav[i].href,
			active && strcmp(active, nav[i].key) == 0 ? " class=\"active\"" : "",
			nav[i].label);
	fputs("</nav>\n<main>\n", out);
}

void html_page_end(FILE *out)
{
	fputs("</main>\n</body></html>\n", out);
}
