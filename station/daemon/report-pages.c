/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A report's rows a page at a time, for the dashboard's reports table: the
 * same rows, filter and order as `report` (report.c), with a count for the
 * pager and LIMIT/OFFSET for the page.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "journal-internal.h"
#include "report-internal.h"
#include "report-views.h"
#include "report.h"

int journal_report_count(struct journal *j, const struct report_filter *flt, uint64_t *ret)
{
	sqlite3_stmt *st = NULL;
	char *src, *sql = NULL;
	int rc, r;

	if (!j || !ret)
		return -EINVAL;
	src = report_source(j);
	if (!src || asprintf(&sql, "SELECT count(*) FROM %s WHERE %s", src, report_where) < 0) {
		free(src);
		return -ENOMEM;
	}
	r = report_prepare(j, sql, flt, &st);
	if (r >= 0) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*ret = (uint64_t)sqlite3_column_int64(st, 0);
		else
			r = journal_sqlfail(j, rc, "counting the jobs");
	}
	sqlite3_finalize(st);
	free(sql);
	free(src);
	return r < 0 ? r : 0;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static double col_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_double(st, i);
}

static void report_job_read(sqlite3_stmt *st, struct report_job *r)
{
	*r = (struct report_job){
		.job = sqlite3_column_int64(st, 0),
		.station = col_text(st, 1),
		.started = col_text(st, 2),
		.slot = col_text(st, 3),
		.devnode = col_text(st, 4),
		.serial = col_text(st, 5),
		.profile = col_text(st, 6),
		.outcome = col_text(st, 7),
		.error = col_text(st, 8),
		.throughput = col_real(st, 9),
		.duration = col_real(st, 10),
	};
}

int report_jobs_each(struct journal *j, sqlite3_stmt *st,
		     int (*fn)(void *userdata, const struct report_job *r), void *userdata)
{
	struct report_job row;
	int rc, r;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		report_job_read(st, &row);
		r = fn(userdata, &row);
		if (r < 0)
			return r;
	}
	return rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "reading the jobs");
}

int journal_report_page(struct journal *j, const struct report_filter *flt, bool oldest_first,
			uint64_t offset, unsigned limit,
			int (*fn)(void *userdata, const struct report_job *r), void *userdata)
{
	sqlite3_stmt *st = NULL;
	char *src, *sql = NULL;
	int r;

	if (!j || !fn || offset > INT64_MAX)
		return -EINVAL;
	src = report_source(j);
	if (!src || asprintf(&sql, "SELECT " REPORT_JOB_COLS " FROM %s WHERE %s ORDER BY %s"
			     " LIMIT %u OFFSET %lld", src, report_where,
			     report_order(j, oldest_first), limit, (long long)offset) < 0) {
		free(src);
		return -ENOMEM;
	}
	r = report_prepare(j, sql, flt, &st);
	if (r >= 0)
		r = report_jobs_each(j, st, fn, userdata);
	sqlite3_finalize(st);
	free(sql);
	free(src);
	return r < 0 ? r : 0;
}
