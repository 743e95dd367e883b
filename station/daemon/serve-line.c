/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The line page (/line): every station of the line, from the central
 * PostgreSQL that `bmap-station sync` fills (read-only here).
 *
 * What it can show: the live table is not synced (it changes twice a
 * second and is no record), so the page is built from the central jobs:
 * per station, today's (UTC) counts and yield (the one definition,
 * outcome_in_yield()), how far its sync has come (bmap_sync), and one row
 * per slot with the slot's newest job of the last 7 days: serial, profile,
 * outcome ("running" while the job has no end: the card is being
 * written), started, finished. It refreshes itself every 10 s.
 *
 * Names for the browser tests: <section class="station" id="station-NAME">
 * (NAME with every byte but A-Z a-z 0-9 - _ made '_'), its
 * <table class="slots"> with one <tr class="slot outcome-OUTCOME"> per
 * slot, #line-state (why there is no data, else absent).
 *
 * One connection, kept between requests (one request at a time uses it).
 * The page runs on a worker thread (serve-work.c), never on the one that
 * answers the live page; still a PostgreSQL that does not answer would
 * hold a worker: connecting gives up after 3 s, a statement after 5 s, and
 * after a failure the page says so for 10 s without trying again.
 *
 * Also the read-only connection the line reports use (serve_pg_open()).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>

#include "manager.h"
#include "outcome.h"
#include "serve-internal.h"
#include "sync.h"

#define LINE_RETRY_S 10
#define LINE_STATEMENT_MS 5000
#define LINE_DAYS "7"

/* serve_pg_open()'s last failure, for every thread. */
static pthread_mutex_t pg_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pg_error;
static time_t pg_failed_at;

/* The line page's one connection and its failure, under page_lock. */
static pthread_mutex_t page_lock = PTHREAD_MUTEX_INITIALIZER;
static PGconn *line_pg;
static char *line_error;
static time_t line_failed_at;

/* "host=... dbname=...: connecting: <libpq's words>" on one line. */
static char *pg_message(const char *conninfo, const char *what, const char *detail)
{
	char *shown = NULL, *err = NULL, *msg = NULL;
	size_t n;

	sync_conninfo_shown(conninfo, &shown, &err);
	free(err);
	if (asprintf(&msg, "%s: %s: %s", shown ? shown : "the central database", what,
		     detail ? detail : "failed") < 0)
		msg = NULL;
	free(shown);
	for (char *p = msg; p && *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	n = msg ? strlen(msg) : 0;
	while (n && msg[n - 1] == ' ')
		msg[--n] = '\0';
	return msg;
}

struct pg_conn *serve_pg_open(const char *conninfo, unsigned statement_timeout_ms,
			      char **ret_error)
{
	/* Earlier keywords are defaults the conninfo (dbname, expanded) may
	 * override: a conninfo of its own options= would drop settings given
	 * that way, so the session's are SET once connected. */
	static const char *const keys[] = { "connect_timeout", "keepalives_idle",
					    "keepalives_interval", "keepalives_count",
					    "tcp_user_timeout", "fallback_application_name",
					    "dbname", NULL };
	const char *values[] = { "3", "10", "5", "2", "20000", "bmap-station-serve", conninfo,
				 NULL };
	char set[160], *msg = NULL;
	PGresult *res = NULL;
	bool failed;
	PGconn *pg;

	*ret_error = NULL;
	pthread_mutex_lock(&pg_lock);
	if (pg_failed_at && time(NULL) - pg_failed_at < LINE_RETRY_S) {
		*ret_error = strdup(pg_error ? pg_error : "the central database failed");
		pthread_mutex_unlock(&pg_lock);
		return NULL;
	}
	pthread_mutex_unlock(&pg_lock);
	pg = PQconnectdbParams(keys, values, 1);
	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		msg = pg_message(conninfo, "connecting", pg ? PQerrorMessage(pg) : "out of memory");
	} else {
		snprintf(set, sizeof(set),
			 "SET statement_timeout = %u; SET default_transaction_read_only = on",
			 statement_timeout_ms);
		res = PQexec(pg, set);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			msg = pg_message(conninfo, "setting up the session", PQerrorMessage(pg));
		PQclear(res);
	}
	failed = msg || !pg || PQstatus(pg) != CONNECTION_OK;
	pthread_mutex_lock(&pg_lock);
	free(pg_error);
	pg_error = failed && msg ? strdup(msg) : NULL;
	pg_failed_at = failed ? time(NULL) : 0;
	pthread_mutex_unlock(&pg_lock);
	if (failed) {
		log_warn("serve: %s; retrying in %d s", msg ? msg : "connecting failed",
			 LINE_RETRY_S);
		PQfinish(pg);
		*ret_error = msg ? msg : strdup("connecting failed");
		return NULL;
	}
	free(msg);
	return pg;
}

/* Remembers why the central database cannot be read, for the page and once
 * in the log: "host=... dbname=...: reading the stations: <libpq's words>"
 * (the conninfo as shown never holds the password, libpq's message none). */
static void line_fail(const char *conninfo, const char *what, const char *detail)
{
	free(line_error);
	line_error = pg_message(conninfo, what, detail);
	line_failed_at = time(NULL);
	PQfinish(line_pg);
	line_pg = NULL;
	log_warn("serve: line page: %s; retrying in %d s", line_error ? line_error : what,
		 LINE_RETRY_S);
}

/* The page's connection, serve_pg_open()'s (which logs its failures). */
static PGconn *line_connect(const char *conninfo)
{
	char *err = NULL;

	if (line_pg && PQstatus(line_pg) == CONNECTION_OK)
		return line_pg;
	PQfinish(line_pg);
	line_pg = NULL;
	if (line_error && time(NULL) - line_failed_at < LINE_RETRY_S)
		return NULL;
	line_pg = serve_pg_open(conninfo, LINE_STATEMENT_MS, &err);
	free(line_error);
	line_error = err;
	if (!line_pg) {
		line_failed_at = time(NULL);
		return NULL;
	}
	return line_pg;
}

static PGresult *line_query(PGconn *pg, const char *conninfo, const char *what,
			    const char *sql)
{
	PGresult *res = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* 42P01: no table yet, no station has synced. */
		line_fail(conninfo, what, state && strcmp(state, "42P01") == 0
					? "no station has synced into it yet (no bmap_jobs table)"
					: PQerrorMessage(pg));
		PQclear(res);
		return NULL;
	}
	return res;
}

/* "'success','failed',...": the outcomes a yield counts. */
static void yield_outcomes(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int o = OUTCOME_RUNNING; o <= OUTCOME_IGNORED; o++)
		if (outcome_in_yield((enum outcome)o))
			n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s'%s'", n ? "," : "",
					      outcome_name((enum outcome)o));
}

static void put_id(FILE *out, const char *prefix, const char *name)
{
	fputs(prefix, out);
	for (const char *p = name; *p; p++)
		fputc((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
			      ? *p
			      : '_',
		      out);
}

static const char *cell(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static void put_station(FILE *out, PGresult *st, int i, PGresult *slots)
{
	const char *name = PQgetvalue(st, i, 0);
	long passed = atol(PQgetvalue(st, i, 2)), ended = atol(PQgetvalue(st, i, 3));
	bool any = false;

	fputs("<section class=\"station\" id=\"", out);
	put_id(out, "station-", name);
	fputs("\">\n<h2>", out);
	html_text(out, name);
	fprintf(out, "</h2>\n<p class=\"today\">Today: <span class=\"flashed\">%s</span> flashed, "
		     "<span class=\"passed\">%ld</span> passed, <span class=\"failed\">%ld</span> "
		     "failed, <span class=\"refused\">%s</span> refused, yield <span "
		     "class=\"yield\">",
		PQgetvalue(st, i, 1), passed, ended - passed, PQgetvalue(st, i, 4));
	if (ended > 0)
		fprintf(out, "%.1f%%", 100.0 * (double)passed / (double)ended);
	else
		fputs("-", out);
	fputs("</span></p>\n<p class=\"synced\">Central copy up to job ", out);
	html_text(out, cell(st, i, 5));
	fputs(", synced ", out);
	html_text(out, cell(st, i, 6));
	fputs("</p>\n", out);
	for (int k = 0; k < PQntuples(slots); k++) {
		const char *outcome = cell(slots, k, 3);

		if (strcmp(PQgetvalue(slots, k, 0), name) != 0)
			continue;
		if (!any)
			fputs("<table class=\"slots\"><thead><tr><th>Slot</th><th>Serial</th>"
			      "<th>Profile</th><th>Last job</th><th>Started</th><th>Finished</th>"
			      "</tr></thead><tbody>\n",
			      out);
		any = true;
		fputs("<tr class=\"slot ", out);
		put_id(out, "outcome-", outcome ? outcome : "none");
		fputs("\"><td>", out);
		html_text(out, cell(slots, k, 1));
		fputs("</td><td>", out);
		html_text(out, cell(slots, k, 2));
		fputs("</td><td>", out);
		html_text(out, cell(slots, k, 4));
		fputs("</td><td class=\"", out);
		put_id(out, "outcome-", outcome ? outcome : "none");
		fputs("\">", out);
		html_text(out, outcome);
		fputs("</td><td>", out);
		html_text(out, cell(slots, k, 5));
		fputs("</td><td>", out);
		html_text(out, cell(slots, k, 6));
		fputs("</td></tr>\n", out);
	}
	if (any)
		fputs("</tbody></table>\n", out);
	else
		fputs("<p>No job in the last " LINE_DAYS " days.</p>\n", out);
	fputs("</section>\n", out);
}

static int line_page(const struct serve_ctx *ctx, const struct serve_request *req,
		     struct serve_reply *reply)
{
	char in_yield[128], sql[1536];
	PGresult *st = NULL, *slots = NULL;
	FILE *out = reply->body;
	PGconn *pg = NULL;

	(void)req;
	reply->no_store = true;
	html_page_begin(out, "Line", "line");
	/* The page reloads itself (a meta refresh is no script: the CSP
	 * allows it). */
	fputs("<meta http-equiv=\"refresh\" content=\"10\">\n<h1>Line</h1>\n", out);
	if (!ctx->pg_conninfo) {
		fputs("<p id=\"line-state\" class=\"notice\">No central database: set "
		      "sync.conninfo in the configuration or give serve --pg CONNINFO.</p>\n",
		      out);
		goto out;
	}
	pg = line_connect(ctx->pg_conninfo);
	yield_outcomes(in_yield, sizeof(in_yield));
	/* Every station that synced, with today's counts (UTC days, as the
	 * journal's times). */
	snprintf(sql, sizeof(sql),
		 "SELECT s.station, count(j.job) FILTER (WHERE j.outcome NOT IN ('ignored',"
		 " 'running')), count(j.job) FILTER (WHERE j.outcome = 'success'),"
		 " count(j.job) FILTER (WHERE j.outcome IN (%s)),"
		 " count(j.job) FILTER (WHERE j.outcome = 'refused'), s.last_job,"
		 " to_char(s.updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
		 " FROM bmap_sync s LEFT JOIN bmap_jobs j ON j.station = s.station AND"
		 " j.started >= to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T00:00:00\"')"
		 " GROUP BY s.station, s.last_job, s.updated ORDER BY s.station",
		 in_yield);
	if (pg)
		st = line_query(pg, ctx->pg_conninfo, "reading the stations", sql);
	if (st)
		slots = line_query(pg, ctx->pg_conninfo, "reading the slots",
				   "SELECT DISTINCT ON (station, coalesce(slot, devnode)) station,"
				   " coalesce(slot, devnode), serial, outcome, profile, started,"
				   " finished FROM bmap_jobs WHERE outcome <> 'ignored' AND"
				   " started >= to_char((now() - interval '" LINE_DAYS " days')"
				   " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
				   " ORDER BY station, coalesce(slot, devnode), job DESC");
	if (!slots) {
		fputs("<p id=\"line-state\" class=\"notice\">The central database cannot be "
		      "read: ",
		      out);
		html_text(out, line_error ? line_error : "failed");
		fputs("</p>\n", out);
		goto out;
	}
	if (PQntuples(st) == 0)
		fputs("<p id=\"line-state\" class=\"notice\">No station has synced yet.</p>\n",
		      out);
	for (int i = 0; i < PQntuples(st); i++)
		put_station(out, st, i, slots);
out:
	PQclear(st);
	PQclear(slots);
	html_page_end(out);
	return 200;
}

int serve_line_page(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply)
{
	int r;

	pthread_mutex_lock(&page_lock);
	r = line_page(ctx, req, reply);
	pthread_mutex_unlock(&page_lock);
	return r;
}
