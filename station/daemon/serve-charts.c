/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dashboard's charts, drawn here as SVG (no external assets, no
 * scripts: the page works on a line without internet and the CSP forbids
 * code): yield per hour and profile, throughput per card, failures by
 * reason over the last days (days=N), and /charts showing them with a text
 * legend. Every label goes through html_text(), which is right for SVG too.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report-views.h"
#include "report.h"
#include "sanitize.h"
#include "serve-pages.h"
#include "serve.h"
#include "util.h"

#define DAYS_DEFAULT 3
#define DAYS_MAX 31
#define MAX_SERIES 8  /* profiles drawn in the yield chart; more are listed only */
#define MAX_BARS 20   /* cards or reasons in a bar chart */
#define W 760         /* the SVG's size, its plot area inside the margins */
#define H 320
#define ML 60
#define MR 180
#define MT 30
#define MB 50
#define LABEL_CHARS 28 /* a bar's label, cut with an ellipsis */

static const char *const palette[MAX_SERIES] = {
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
};

/* The period a chart covers: from the start of the hour @days ago. */
struct period {
	unsigned days;
	time_t start;
	char since[JOURNAL_TIME_MAX];
};

static int period_from(const struct serve_request *req, struct period *p)
{
	const char *v = req->arg(req, "days");
	char *end;
	struct tm tm;
	long d = DAYS_DEFAULT;

	if (v && *v) {
		errno = 0;
		d = strtol(v, &end, 10);
		if (errno || *end || d < 1 || d > DAYS_MAX)
			return -EINVAL;
	}
	p->days = (unsigned)d;
	p->start = time(NULL) - (time_t)d * 86400;
	p->start -= p->start % 3600;
	gmtime_r(&p->start, &tm);
	strftime(p->since, sizeof(p->since), "%Y-%m-%dT%H:00:00.000Z", &tm);
	return 0;
}

/* ---- what the charts show, read once for the SVG and the legend ---- */

struct series {
	char *profile;
	unsigned passed, ended;
	unsigned *hour_passed, *hour_ended; /* per hour of the period */
};

struct yield_data {
	const struct period *p;
	size_t hours;
	struct series s[MAX_SERIES];
	size_t n;
	bool more; /* profiles not drawn: more than MAX_SERIES */
};

static int yield_add(void *userdata, const char *hour, const char *profile, unsigned passed,
		     unsigned ended)
{
	struct yield_data *y = userdata;
	struct tm tm = { 0 };
	size_t i;
	long h;

	for (i = 0; i < y->n; i++)
		if (strcmp(y->s[i].profile, profile) == 0)
			break;
	if (i == y->n) {
		if (y->n == MAX_SERIES) {
			y->more = true;
			return 0;
		}
		y->s[i].profile = strdup(profile);
		y->s[i].hour_passed = calloc(y->hours, sizeof(unsigned));
		y->s[i].hour_ended = calloc(y->hours, sizeof(unsigned));
		y->n++;
		if (!y->s[i].profile || !y->s[i].hour_passed || !y->s[i].hour_ended)
			return -ENOMEM;
	}
	y->s[i].passed += passed;
	y->s[i].ended += ended;
	if (!hour || sscanf(hour, "%4d-%2d-%2dT%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			    &tm.tm_hour) != 4)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	h = (long)((timegm(&tm) - y->p->start) / 3600);
	if (h >= 0 && (size_t)h < y->hours) {
		y->s[i].hour_passed[h] += passed;
		y->s[i].hour_ended[h] += ended;
	}
	return 0;
}

static void yield_free(struct yield_data *y)
{
	for (size_t i = 0; i < y->n; i++) {
		free(y->s[i].profile);
		free(y->s[i].hour_passed);
		free(y->s[i].hour_ended);
	}
}

static int yield_read(struct journal *j, const struct period *p, struct yield_data *y)
{
	*y = (struct yield_data){ .p = p, .hours = (size_t)p->days * 24 + 1 };
	return journal_chart_yield(j, p->since, yield_add, y);
}

struct bar {
	char *label;
	double value;
};

struct bars {
	struct bar b[MAX_BARS];
	size_t n;
};

static int bars_add(struct bars *bs, const char *a, const char *sep, const char *b,
		    double value)
{
	char *l = NULL;

	/* A value that is no number (a duration of 0, a row written by
	 * hand) has no bar: "inf" is no SVG length, and the axis's steps
	 * would never reach it. */
	if (bs->n == MAX_BARS || !isfinite(value))
		return 0;
	if (asprintf(&l, "%s%s%s", a ? a : "-", sep, b ? b : "-") < 0)
		return -ENOMEM;
	bs->b[bs->n++] = (struct bar){ l, value };
	return 0;
}

static void bars_free(struct bars *bs)
{
	for (size_t i = 0; i < bs->n; i++)
		free(bs->b[i].label);
}

static int tput_add(void *userdata, const struct report_job *r)
{
	return bars_add(userdata, r->slot, " ", r->serial, r->throughput / 1e6);
}

static int fail_add(void *userdata, const char *outcome, const char *reason, unsigned count)
{
	return bars_add(userdata, outcome, ": ", reason, count);
}

/* ---- SVG ---- */

/* A round step for an axis up to @v in about four steps: 1, 2, 2.5 or 5
 * times a power of ten. */
static double nice_step(double v)
{
	double e = 1e-3, q = v / 4;

	if (!(v > 0))
		return 0.25;
	if (q > 1e15)
		return q;
	/* No libm for this: the power of ten by steps. */
	while (e * 10 <= q)
		e *= 10;
	return q <= e ? e : q <= 2 * e ? 2 * e : q <= 2.5 * e ? 2.5 * e : q <= 5 * e ? 5 * e
											 : 10 * e;
}

static void svg_begin(FILE *out, const char *title)
{
	fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		     "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\""
		     " viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"sans-serif\""
		     " font-size=\"12\">\n<title>", W, H, W, H);
	html_text(out, title);
	fputs("</title>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n", out);
	fprintf(out, "<text x=\"%d\" y=\"18\" font-size=\"14\" font-weight=\"bold\">", ML);
	html_text(out, title);
	fputs("</text>\n", out);
}

static void svg_end(FILE *out)
{
	fputs("</svg>\n", out);
}

/* A label for SVG or HTML: made printable and cut to @max characters. */
static void label_text(FILE *out, const char *s, size_t max)
{
	char buf[LABEL_CHARS * 4 + 8];

	sanitize(buf, sizeof(buf), s ? s : "-", s ? strlen(s) : 1, max, true);
	html_text(out, buf);
}

static void yield_svg(FILE *out, const struct yield_data *y)
{
	const int pw = W - ML - MR, ph = H - MT - MB;
	size_t step = y->p->days <= 2 ? 6 : y->p->days <= 7 ? 24 : 24 * ((y->p->days + 6) / 7);
	char title[64];

	snprintf(title, sizeof(title), "Yield per hour and profile, last %u day%s", y->p->days,
		 y->p->days == 1 ? "" : "s");
	svg_begin(out, title);
	for (int pct = 0; pct <= 100; pct += 25) {
		double yy = MT + ph - ph * pct / 100.0;

		fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#dddddd\"/>"
			     "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>\n",
			ML, yy, ML + pw, yy, ML - 6, yy + 4, pct);
	}
	for (size_t h = 0; h < y->hours; h += step) {
		time_t t = y->p->start + (time_t)h * 3600;
		double xx = ML + (double)pw * (double)h / (double)(y->hours - 1);
		struct tm tm;
		char l[32];

		gmtime_r(&t, &tm);
		strftime(l, sizeof(l), "%m-%d %H:00", &tm);
		fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#999999\"/>"
			     "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
			xx, MT + ph, xx, MT + ph + 5, xx, MT + ph + 18, l);
	}
	fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">hour (UTC)</text>\n"
		     "<text x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">"
		     "yield (passed / ended) %%</text>\n",
		ML + pw / 2, H - 10, MT + ph / 2, MT + ph / 2);
	for (size_t i = 0; i < y->n; i++) {
		const struct series *s = &y->s[i];
		bool open = false;

		for (size_t h = 0; h < y->hours; h++) {
			double xx, yy;

			if (!s->hour_ended[h])
				continue;
			xx = ML + (double)pw * (double)h / (double)(y->hours - 1);
			yy = MT + ph - ph * (double)s->hour_passed[h] / s->hour_ended[h];
			if (!open)
				fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\""
					     " points=\"", palette[i]);
			fprintf(out, "%s%.1f,%.1f", open ? " " : "", xx, yy);
			open = true;
		}
		if (open)
			fputs("\"/>\n", out);
		for (size_t h = 0; h < y->hours; h++) {
			if (!s->hour_ended[h])
				continue;
			fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
				ML + (double)pw * (double)h / (double)(y->hours - 1),
				MT + ph - ph * (double)s->hour_passed[h] / s->hour_ended[h],
				palette[i]);
		}
		fprintf(out, "<rect x=\"%d\" y=\"%zu\" width=\"12\" height=\"12\" fill=\"%s\"/>"
			     "<text x=\"%d\" y=\"%zu\">", W - MR + 16, MT + i * 18, palette[i],
			W - MR + 32, MT + i * 18 + 10);
		label_text(out, *s->profile ? s->profile : "(no profile)", 16);
		if (s->ended)
			fprintf(out, " %.1f%%", 100.0 * s->passed / s->ended);
		fputs("</text>\n", out);
	}
	if (!y->n)
		fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">no job ended in this"
			     " period</text>\n", ML + pw / 2, MT + ph / 2);
	svg_end(out);
}

/* Horizontal bars, one per row, the value axis along the bottom. */
static void bars_svg(FILE *out, const char *title, const struct bars *bs, const char *unit,
		     int decimals)
{
	const int left = 230, pw = W - left - 80, ph = H - MT - MB;
	double max = 0, top, bh, step;
	int ticks;

	for (size_t i = 0; i < bs->n; i++)
		if (bs->b[i].value > max)
			max = bs->b[i].value;
	step = nice_step(max);
	ticks = max > 0 ? (int)(max / step) + (max / step > (int)(max / step)) : 4;
	top = step * ticks;
	bh = (double)ph / (bs->n ? (double)bs->n : 1);
	svg_begin(out, title);
	for (int k = 0; k <= ticks; k++) {
		double xx = left + pw * (double)k / ticks;

		fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#dddddd\"/>"
			     "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
			xx, MT, xx, MT + ph, xx, MT + ph + 16, step * k);
	}
	fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", left + pw / 2, H - 10);
	html_text(out, unit);
	fputs("</text>\n", out);
	for (size_t i = 0; i < bs->n; i++) {
		double yy = MT + bh * (double)i, w = pw * bs->b[i].value / top;

		fprintf(out, "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\""
			     " fill=\"%s\"/>\n<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">",
			left, yy + bh * 0.15, w, bh * 0.7, palette[0], left - 6, yy + bh / 2 + 4);
		label_text(out, bs->b[i].label, LABEL_CHARS);
		fprintf(out, "</text>\n<text x=\"%.1f\" y=\"%.1f\">", left + w + 4,
			yy + bh / 2 + 4);
		fprintf(out, "%.*f", decimals, bs->b[i].value);
		fputs("</text>\n", out);
	}
	if (!bs->n)
		fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">nothing in this"
			     " period</text>\n", left + pw / 2, MT + ph / 2);
	svg_end(out);
}

/* ---- the routes ---- */

enum chart { CHART_YIELD, CHART_THROUGHPUT, CHART_FAILURES };

static const struct {
	const char *name, *title, *alt;
} charts[] = {
	[CHART_YIELD] = { "yield", "Yield per hour and profile",
			  "Yield per hour, one line per profile" },
	[CHART_THROUGHPUT] = { "throughput", "Throughput per card (successful jobs, MB/s)",
			       "Throughput of the newest successful jobs in MB/s" },
	[CHART_FAILURES] = { "failures", "Failures by reason",
			     "Jobs that did not succeed, per outcome and reason" },
};

static int chart_read(struct journal *j, enum chart c, const struct period *p,
		      struct yield_data *y, struct bars *bs)
{
	*bs = (struct bars){ 0 };
	switch (c) {
	case CHART_YIELD:
		return yield_read(j, p, y);
	case CHART_THROUGHPUT:
		return journal_chart_throughput(j, p->since, MAX_BARS, tput_add, bs);
	case CHART_FAILURES:
		return journal_chart_failures(j, p->since, MAX_BARS, fail_add, bs);
	}
	return -EINVAL;
}

static int not_found(struct serve_reply *reply)
{
	reply->content_type = "text/plain; charset=utf-8";
	fputs("no such chart (yield.svg, throughput.svg, failures.svg)\n", reply->body);
	return 404;
}

int serve_chart_svg(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply)
{
	static const char prefix[] = "/charts/";
	const char *name = req->path;
	struct yield_data y = { 0 };
	struct bars bs = { 0 };
	struct period p;
	size_t c, l;
	int r;

	if (!name || strncmp(name, prefix, sizeof(prefix) - 1) != 0)
		return not_found(reply);
	name += sizeof(prefix) - 1;
	for (c = 0; c < ARRAY_SIZE(charts); c++) {
		l = strlen(charts[c].name);
		if (strncmp(name, charts[c].name, l) == 0 && strcmp(name + l, ".svg") == 0)
			break;
	}
	if (c == ARRAY_SIZE(charts))
		return not_found(reply);
	if (period_from(req, &p) < 0) {
		reply->content_type = "text/plain; charset=utf-8";
		fprintf(reply->body, "days is a number of days from 1 to %d\n", DAYS_MAX);
		return 400;
	}
	if (!ctx->journal) {
		reply->content_type = "text/plain; charset=utf-8";
		fputs("no journal\n", reply->body);
		return 503;
	}
	r = chart_read(ctx->journal, (enum chart)c, &p, &y, &bs);
	if (r >= 0) {
		char title[96];

		reply->content_type = "image/svg+xml";
		reply->no_store = true;
		snprintf(title, sizeof(title), "%s, last %u day%s", charts[c].title, p.days,
			 p.days == 1 ? "" : "s");
		if (c == CHART_YIELD)
			yield_svg(reply->body, &y);
		else if (c == CHART_THROUGHPUT)
			bars_svg(reply->body, title, &bs, "MB/s", 1);
		else
			bars_svg(reply->body, title, &bs, "jobs", 0);
	}
	yield_free(&y);
	bars_free(&bs);
	return r < 0 ? r : 200;
}

/* The legend under a chart: what it draws, as a table anyone can read. */
static void legend(FILE *out, enum chart c, const struct yield_data *y, const struct bars *bs)
{
	if (c == CHART_YIELD) {
		fputs("<table class=\"legend\"><thead><tr><th>Colour</th><th>Profile</th>"
		      "<th>Passed</th><th>Ended</th><th>Yield</th></tr></thead><tbody>\n", out);
		for (size_t i = 0; i < y->n; i++) {
			fprintf(out, "<tr><td><svg width=\"12\" height=\"12\"><rect width=\"12\""
				     " height=\"12\" fill=\"%s\"/></svg></td><td>", palette[i]);
			html_text(out, *y->s[i].profile ? y->s[i].profile : "(no profile)");
			fprintf(out, "</td><td class=\"num\">%u</td><td class=\"num\">%u</td>",
				y->s[i].passed, y->s[i].ended);
			if (y->s[i].ended)
				fprintf(out, "<td class=\"num\">%.1f%%</td></tr>\n",
					100.0 * y->s[i].passed / y->s[i].ended);
			else
				fputs("<td class=\"num\">-</td></tr>\n", out);
		}
		fputs("</tbody></table>\n", out);
		if (y->more)
			fprintf(out, "<p>Only the first %d profiles are drawn and listed.</p>\n",
				MAX_SERIES);
		return;
	}
	fprintf(out, "<table class=\"legend\"><thead><tr><th>%s</th><th>%s</th></tr></thead>"
		     "<tbody>\n", c == CHART_THROUGHPUT ? "Slot and serial" : "Outcome and reason",
		c == CHART_THROUGHPUT ? "MB/s" : "Jobs");
	for (size_t i = 0; i < bs->n; i++) {
		fputs("<tr><td>", out);
		html_text(out, bs->b[i].label);
		fprintf(out, c == CHART_THROUGHPUT ? "</td><td class=\"num\">%.1f</td></tr>\n"
						   : "</td><td class=\"num\">%.0f</td></tr>\n",
			bs->b[i].value);
	}
	fputs("</tbody></table>\n", out);
}

int serve_charts_page(const struct serve_ctx *ctx, const struct serve_request *req,
		      struct serve_reply *reply)
{
	FILE *out = reply->body;
	struct period p;
	int r = 0;

	if (period_from(req, &p) < 0) {
		html_page_begin(out, "Bad request", "charts");
		fprintf(out, "<h1>Bad request</h1>\n<p class=\"error\">days is a number of days"
			     " from 1 to %d</p>\n", DAYS_MAX);
		html_page_end(out);
		return 400;
	}
	reply->no_store = true;
	if (!ctx->journal) {
		/* No journal yet (serve started first) or unreadable: said so. */
		html_page_begin(out, "Charts", "charts");
		fputs("<h1>Charts</h1>\n<p class=\"notice\">", out);
		html_text(out, ctx->journal_error ? ctx->journal_error : "no journal");
		fputs("</p>\n", out);
		html_page_end(out);
		return 503;
	}
	html_page_begin(out, "Charts", "charts");
	fprintf(out, "<h1>Charts</h1>\n<form class=\"filters\" method=\"get\" action=\"/charts\">"
		     "<label>Last <input name=\"days\" value=\"%u\"> days (since %s)</label>"
		     "<button type=\"submit\">Show</button></form>\n", p.days, p.since);
	for (size_t c = 0; c < ARRAY_SIZE(charts) && r >= 0; c++) {
		struct yield_data y = { 0 };
		struct bars bs = { 0 };

		r = chart_read(ctx->journal, (enum chart)c, &p, &y, &bs);
		if (r >= 0) {
			fprintf(out, "<figure class=\"chart\"><img src=\"/charts/%s.svg?days=%u\""
				     " width=\"%d\" height=\"%d\" alt=\"%s\">\n<figcaption>%s",
				charts[c].name, p.days, W, H, charts[c].alt, charts[c].title);
			legend(out, (enum chart)c, &y, &bs);
			fputs("</figcaption></figure>\n", out);
		}
		yield_free(&y);
		bars_free(&bs);
	}
	html_page_end(out);
	return r < 0 ? r : 200;
}
