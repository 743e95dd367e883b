/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What report.c shares with the other report queries (report-pages.c,
 * report-charts.c), so that they select the same rows in the same order as
 * `report` does: where the rows come from, the filter, and the order.
 */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>

struct journal;
struct report_filter;

/* "main.jobs", or the union of it and the attached stations' jobs. malloc'd. */
char *report_source(const struct journal *j);
/* The filter's WHERE clause over :since, :until, :profile, :slot, :outcome, :serial. */
extern const char report_where[];
/* Prepares @sql on @j with @flt (NULL: all) bound to report_where's parameters. */
int report_prepare(struct journal *j, const char *sql, const struct report_filter *flt,
		   sqlite3_stmt **ret);
/* The ORDER BY of the jobs report: newest first, or @oldest_first. */
const char *report_order(const struct journal *j, bool oldest_first);

/* report-pages.c: steps @st, whose columns are REPORT_JOB_COLS, handing each
 * row to @fn; a negative return of @fn stops and is returned. */
#define REPORT_JOB_COLS \
	"job, station, started, slot, devnode, serial, profile, outcome, error, throughput, duration"
struct report_job;
int report_jobs_each(struct journal *j, sqlite3_stmt *st,
		     int (*fn)(void *userdata, const struct report_job *r), void *userdata);

/* A journal time ("2026-11-26T05:41:12.345Z") as Unix seconds with its
 * milliseconds, exactly (julianday() arithmetic would not be); NULL stays. */
#define JOURNAL_UNIX_TIME(x) \
	"(CAST(strftime('%s', " x ") AS REAL) + coalesce(CAST(substr(" x ", 21, 3) AS REAL), 0) / 1000)"
