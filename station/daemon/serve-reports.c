/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dashboard's reports: /reports (the CLI report's filters as query
 * arguments, an HTML table a page at a time) and /history (one serial's
 * jobs, oldest first, as `history SERIAL`), each also as the CSV or JSON
 * download that `report --format csv|json` prints (format=csv|json): the
 * same journal_report_filtered(), never a second renderer. source=line
 * reads the line's PostgreSQL (central_open_pg() over serve_pg_open()),
 * station=NAME one station. Downloads and line reports run on a worker
 * thread (serve-work.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>

#include "outcome.h"
#include "report-views.h"
#include "report.h"
#include "serve-internal.h"
#include "serve-pages.h"
#include "serve.h"
#include "sync.h"

#define PER_PAGE_DEFAULT 50
#define PER_PAGE_MAX 500
/* A line report copies every matching central row: longer than a page. */
#define REPORT_STATEMENT_MS 30000

/* What one request asked for: the arguments as given (kept for the links)
 * and as the report reads them. */
struct reports_args {
	bool history;
	const char *since, *until, *profile, *slot, *outcome, *serial, *source, *station;
	const char *format, *per_arg, *page_arg;
	char since_t[JOURNAL_TIME_MAX], until_t[JOURNAL_TIME_MAX];
	struct report_filter flt;
	enum report_format fmt;
	bool download, line;
	unsigned per;
	uint64_t page;
};

/* An argument, or NULL when absent or empty (an empty form field). */
static const char *arg(const struct serve_request *req, const char *key)
{
	const char *v = req->arg(req, key);

	return v && *v ? v : NULL;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* @s percent-encoded for a query string: only unreserved characters stay. */
static void url_encode(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p))
			fputc(*p, out);
		else
			fprintf(out, "%%%02X", *p);
	}
}

/* One "key=value" of a link's query, inside an HTML attribute. */
static void query_arg(FILE *out, bool *first, const char *key, const char *value)
{
	if (!value)
		return;
	fputs(*first ? "?" : "&amp;", out);
	*first = false;
	fprintf(out, "%s=", key);
	url_encode(out, value);
}

/* @a's page (its path and filters) at @page (0: none) in @format (NULL: HTML). */
static void page_link(FILE *out, const struct reports_args *a, uint64_t page, const char *format)
{
	char n[24];
	bool first = true;

	fputs(a->history ? "/history" : "/reports", out);
	query_arg(out, &first, "serial", a->serial);
	query_arg(out, &first, "since", a->since);
	query_arg(out, &first, "until", a->until);
	query_arg(out, &first, "profile", a->profile);
	query_arg(out, &first, "slot", a->slot);
	query_arg(out, &first, "outcome", a->outcome);
	query_arg(out, &first, "source", a->source);
	query_arg(out, &first, "station", a->station);
	if (!format)
		query_arg(out, &first, "per", a->per_arg);
	if (page > 0) {
		snprintf(n, sizeof(n), "%" PRIu64, page);
		query_arg(out, &first, "page", n);
	}
	query_arg(out, &first, "format", format);
}

static int bad_request(struct serve_reply *reply, const char *what, const char *value)
{
	html_page_begin(reply->body, "Bad request", "reports");
	fputs("<h1>Bad request</h1>\n<p class=\"error\">", reply->body);
	html_text(reply->body, what);
	if (value) {
		fputs(": ", reply->body);
		html_text(reply->body, value);
	}
	fputs("</p>\n", reply->body);
	html_page_end(reply->body);
	return 400;
}

/* Reads and checks @req's arguments as `report` checks its options. */
static int parse_args(const struct serve_request *req, struct reports_args *a,
		      struct serve_reply *reply)
{
	uint64_t v;
	enum outcome o;

	a->since = arg(req, "since");
	a->until = arg(req, "until");
	a->profile = arg(req, "profile");
	a->slot = arg(req, "slot");
	a->outcome = arg(req, "outcome");
	a->serial = arg(req, "serial");
	a->source = arg(req, "source");
	a->station = arg(req, "station");
	a->format = arg(req, "format");
	a->per_arg = arg(req, "per");
	a->page_arg = arg(req, "page");
	if (a->history && !a->serial)
		return bad_request(reply, "a history needs a serial (history?serial=SERIAL)", NULL);
	if (a->since && journal_parse_time(a->since, false, a->since_t) < 0)
		return bad_request(reply, "since is not a UTC date or date-time such as "
				   "2026-11-26 or 2026-11-26T05:00Z, today, yesterday", a->since);
	if (a->until && journal_parse_time(a->until, true, a->until_t) < 0)
		return bad_request(reply, "until is not a UTC date or date-time such as "
				   "2026-11-26 or 2026-11-26T05:00Z, today, yesterday", a->until);
	if (a->since && a->until && strcmp(a->since_t, a->until_t) >= 0)
		return bad_request(reply, "since is not before until", NULL);
	if (a->outcome && outcome_from_name(a->outcome, &o) < 0)
		return bad_request(reply, "unknown outcome (success, failed, verify_failed, "
				   "removed, timeout, interrupted, refused, ignored, running)",
				   a->outcome);
	if (a->source && strcmp(a->source, "line") != 0 && strcmp(a->source, "station") != 0)
		return bad_request(reply, "source is station or line", a->source);
	a->line = a->source && strcmp(a->source, "line") == 0;
	if (a->station && !a->line)
		return bad_request(reply, "station=NAME reads the line's copy: give source=line",
				   NULL);
	a->download = a->format != NULL;
	if (!a->format || strcmp(a->format, "html") == 0) {
		a->download = false;
		a->fmt = REPORT_TABLE;
	} else if (strcmp(a->format, "csv") == 0) {
		a->fmt = REPORT_CSV;
	} else if (strcmp(a->format, "json") == 0) {
		a->fmt = REPORT_JSON;
	} else {
		return bad_request(reply, "unknown format (html, csv or json)", a->format);
	}
	a->per = PER_PAGE_DEFAULT;
	if (a->per_arg) {
		if (parse_u64(a->per_arg, 1, PER_PAGE_MAX, &v) < 0)
			return bad_request(reply, "per is a page size from 1 to 500", a->per_arg);
		a->per = (unsigned)v;
	}
	a->page = 1;
	if (a->page_arg && parse_u64(a->page_arg, 1, INT64_MAX / PER_PAGE_MAX, &a->page) < 0)
		return bad_request(reply, "page is a page number from 1", a->page_arg);
	a->flt = (struct report_filter){
		.since = a->since ? a->since_t : NULL,
		.until = a->until ? a->until_t : NULL,
		.profile = a->profile,
		.slot = a->slot,
		.outcome = a->outcome,
		.serial = a->serial,
	};
	return 200;
}

static void field(FILE *out, const char *label, const char *name, const char *value,
		  const char *hint)
{
	fprintf(out, "<label>%s <input name=\"%s\" value=\"", label, name);
	if (value)
		html_text(out, value);
	fputs("\"", out);
	if (hint) {
		fputs(" placeholder=\"", out);
		html_text(out, hint);
		fputs("\"", out);
	}
	fputs("></label>\n", out);
}

static void filter_form(FILE *out, const struct serve_ctx *ctx, const struct reports_args *a)
{
	char per[16];

	fprintf(out, "<form class=\"filters\" method=\"get\" action=\"%s\">\n",
		a->history ? "/history" : "/reports");
	if (a->history) {
		fputs("<input type=\"hidden\" name=\"serial\" value=\"", out);
		html_text(out, a->serial);
		fputs("\">\n", out);
	} else {
		field(out, "Serial", "serial", a->serial, NULL);
	}
	field(out, "Since", "since", a->since, "2026-11-26, today");
	field(out, "Until", "until", a->until, "2026-11-27T05:00");
	field(out, "Profile", "profile", a->profile, NULL);
	field(out, "Slot", "slot", a->slot, NULL);
	fputs("<label>Outcome <select name=\"outcome\"><option value=\"\">any</option>", out);
	for (enum outcome o = OUTCOME_RUNNING; o <= OUTCOME_IGNORED; o++)
		fprintf(out, "<option%s>%s</option>",
			a->outcome && strcmp(a->outcome, outcome_name(o)) == 0 ? " selected" : "",
			outcome_name(o));
	fputs("</select></label>\n", out);
	if (ctx->pg_conninfo) {
		fprintf(out, "<label>Source <select name=\"source\"><option value=\"station\">"
			     "this station</option><option value=\"line\"%s>the line</option>"
			     "</select></label>\n", a->line ? " selected" : "");
		field(out, "Station", "station", a->station, "with the line");
	}
	snprintf(per, sizeof(per), "%u", a->per);
	field(out, "Per page", "per", per, NULL);
	fputs("<button type=\"submit\">Show</button>\n</form>\n", out);
}

static void cell(FILE *out, const char *s)
{
	fputs("<td>", out);
	html_text(out, s);
	fputs("</td>", out);
}

struct table_ctx {
	FILE *out;
	const struct reports_args *a;
	bool station_col;
};

static int table_row(void *userdata, const struct report_job *r)
{
	struct table_ctx *t = userdata;
	FILE *out = t->out;
	enum outcome o;
	bool known = r->outcome && outcome_from_name(r->outcome, &o) == 0;

	fprintf(out, "<tr><td class=\"num\">%" PRId64 "</td>", r->job);
	if (t->station_col)
		cell(out, r->station);
	cell(out, r->started);
	cell(out, r->slot);
	cell(out, r->devnode);
	fputs("<td>", out);
	if (r->serial) {
		struct reports_args h = { .history = true, .serial = r->serial,
					  .source = t->a->source, .station = t->a->station };

		fputs("<a href=\"", out);
		page_link(out, &h, 0, NULL);
		fputs("\">", out);
		html_text(out, r->serial);
		fputs("</a>", out);
	} else {
		html_text(out, NULL);
	}
	fputs("</td>", out);
	cell(out, r->profile);
	/* The class is our own name for a known outcome, never the row's text. */
	fprintf(out, "<td class=\"outcome-%s\">", known ? outcome_name(o) : "unknown");
	html_text(out, r->outcome);
	fputs("</td>", out);
	if (r->throughput >= 0)
		fprintf(out, "<td class=\"num\">%.1f</td>", r->throughput / 1e6);
	else
		fputs("<td class=\"num\">-</td>", out);
	if (r->duration >= 0)
		fprintf(out, "<td class=\"num\">%.1f</td>", r->duration);
	else
		fputs("<td class=\"num\">-</td>", out);
	cell(out, r->error);
	fputs("</tr>\n", out);
	return ferror(out) ? -EIO : 0;
}

static void pager(FILE *out, const struct reports_args *a, uint64_t total, uint64_t pages)
{
	fprintf(out, "<p class=\"pager\">%" PRIu64 " job%s, page %" PRIu64 " of %" PRIu64 ".",
		total, total == 1 ? "" : "s", a->page, pages);
	if (a->page > 1) {
		/* Past the end (the jobs were fewer than the link said): the last. */
		fputs(" <a rel=\"prev\" href=\"", out);
		page_link(out, a, a->page - 1 < pages ? a->page - 1 : pages, NULL);
		fputs("\">previous</a>", out);
	}
	if (a->page < pages) {
		fputs(" <a rel=\"next\" href=\"", out);
		page_link(out, a, a->page + 1, NULL);
		fputs("\">next</a>", out);
	}
	fputs("</p>\n", out);
}

static int html_report(const struct serve_ctx *ctx, struct journal *j,
		       const struct reports_args *a, bool several, FILE *out)
{
	struct table_ctx t = { out, a, several };
	uint64_t total = 0, pages;
	int r;

	r = journal_report_count(j, &a->flt, &total);
	if (r < 0)
		return r;
	pages = total ? (total + a->per - 1) / a->per : 1;
	if (a->history) {
		html_page_begin(out, "History", "reports");
		fputs("<h1>History of <span class=\"serial\">", out);
		html_text(out, a->serial);
		fputs("</span></h1>\n", out);
	} else {
		html_page_begin(out, "Reports", "reports");
		fputs("<h1>Reports</h1>\n", out);
	}
	filter_form(out, ctx, a);
	fputs("<p class=\"downloads\">Download: <a href=\"", out);
	page_link(out, a, 0, "csv");
	fputs("\">CSV</a> <a href=\"", out);
	page_link(out, a, 0, "json");
	fputs("\">JSON</a></p>\n", out);
	pager(out, a, total, pages);
	fprintf(out, "<table class=\"jobs\"><thead><tr><th>Job</th>%s<th>Started (UTC)</th>"
		     "<th>Slot</th><th>Device</th><th>Serial</th><th>Profile</th><th>Outcome</th>"
		     "<th>MB/s</th><th>Duration (s)</th><th>Error</th></tr></thead>\n<tbody>\n",
		several ? "<th>Station</th>" : "");
	if (a->page <= pages)
		r = journal_report_page(j, &a->flt, a->history, (a->page - 1) * a->per, a->per,
					table_row, &t);
	if (r < 0)
		return r;
	fputs("</tbody></table>\n", out);
	pager(out, a, total, pages);
	html_page_end(out);
	return 0;
}

static int reports_serve(const struct serve_ctx *ctx, const struct serve_request *req,
			 struct serve_reply *reply, bool history)
{
	struct reports_args a = { .history = history };
	struct journal *central = NULL, *j = ctx->journal;
	char *dir = NULL, *err = NULL;
	PGconn *pg;
	int status, r;

	status = parse_args(req, &a, reply);
	if (status != 200)
		return status;
	if (a.line) {
		if (!ctx->pg_conninfo)
			return bad_request(reply, "no line copy: serve runs without --pg or "
					   "sync.conninfo", NULL);
		/* On a worker thread (serve-work.c), over serve's read-only
		 * connection: a PostgreSQL that does not answer costs 3 s,
		 * then 10 s of saying so without trying. */
		pg = serve_pg_open(ctx->pg_conninfo, REPORT_STATEMENT_MS, &err);
		r = pg ? central_open_pg(pg, ctx->pg_conninfo, a.station, &a.flt, &central, &dir,
					 &err)
		       : -ENOTCONN;
		PQfinish(pg);
		if (r < 0) {
			/* central_open()'s messages never hold the password. */
			html_page_begin(reply->body, "Line unavailable", "reports");
			fputs("<h1>The line's copy cannot be read</h1>\n<p class=\"error\">",
			      reply->body);
			html_text(reply->body, err ? err : "cannot read the central copy");
			fputs("</p>\n", reply->body);
			html_page_end(reply->body);
			free(err);
			return 502;
		}
		j = central;
	}
	if (!j) {
		/* No journal yet (serve started first) or unreadable: said so. */
		html_page_begin(reply->body, "Reports", "reports");
		fputs("<h1>Reports</h1>\n<p class=\"notice\">", reply->body);
		html_text(reply->body, ctx->journal_error ? ctx->journal_error : "no journal");
		fputs("</p>\n", reply->body);
		html_page_end(reply->body);
		return 503;
	}
	if (a.download) {
		reply->content_type = a.fmt == REPORT_CSV ? "text/csv; charset=utf-8"
							  : "application/json; charset=utf-8";
		if (history)
			reply->disposition = a.fmt == REPORT_CSV
				? "attachment; filename=\"bmap-station-history.csv\""
				: "attachment; filename=\"bmap-station-history.json\"";
		else
			reply->disposition = a.fmt == REPORT_CSV
				? "attachment; filename=\"bmap-station-report.csv\""
				: "attachment; filename=\"bmap-station-report.json\"";
		r = journal_report_filtered(j, &a.flt, history, a.fmt, reply->body);
	} else {
		r = html_report(ctx, j, &a, a.line, reply->body);
	}
	central_close(central, dir);
	return r < 0 ? r : 200;
}

int serve_reports_page(const struct serve_ctx *ctx, const struct serve_request *req,
		       struct serve_reply *reply)
{
	return reports_serve(ctx, req, reply, false);
}

int serve_history_page(const struct serve_ctx *ctx, const struct serve_request *req,
		       struct serve_reply *reply)
{
	return reports_serve(ctx, req, reply, true);
}
