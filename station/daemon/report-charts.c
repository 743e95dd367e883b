/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The aggregates the dashboard draws and /metrics exposes: yield per hour
 * and profile, throughput per card, failures by reason, and the journal's
 * totals, from the same rows the reports read (report_source()).
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal-internal.h"
#include "report-internal.h"
#include "report-views.h"

/* Prepares @fmt with report_source() pasted at its one "{jobs}". */
static int charts_prepare(struct journal *j, const char *fmt, sqlite3_stmt **ret)
{
	char *src = report_source(j), *sql = NULL;
	const char *at = strstr(fmt, "{jobs}");
	int rc;

	if (!src || !at) {
		free(src);
		return -ENOMEM;
	}
	if (asprintf(&sql, "%.*s%s%s", (int)(at - fmt), fmt, src, at + 6) < 0) {
		free(src);
		return -ENOMEM;
	}
	free(src);
	rc = sqlite3_prepare_v2(j->db, sql, -1, ret, NULL);
	free(sql);
	return rc == SQLITE_OK ? 0 : journal_sqlfail(j, rc, "preparing a chart's query");
}

static int charts_since(struct journal *j, const char *fmt, const char *since, unsigned limit,
			sqlite3_stmt **ret)
{
	int rc = SQLITE_OK, r = charts_prepare(j, fmt, ret);

	if (r < 0)
		return r;
	B(bind_text(*ret, ":since", since));
	if (limit)
		B(sqlite3_bind_int64(*ret, bind_index(*ret, ":limit"), limit));
	if (rc != SQLITE_OK) {
		r = journal_sqlfail(j, rc, "binding a chart's query");
		sqlite3_finalize(*ret);
		*ret = NULL;
	}
	return r;
}

static const char *text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

int journal_chart_yield(struct journal *j, const char *since,
			int (*fn)(void *userdata, const char *hour, const char *profile,
				  unsigned passed, unsigned ended),
			void *userdata)
{
	static const char sql[] =
		"SELECT substr(started, 1, 13) AS hour, coalesce(profile, '') AS p,"
		" sum(outcome = 'success'), sum(bmap_in_yield(outcome)) FROM {jobs}"
		" WHERE started >= :since AND outcome NOT IN ('ignored', 'running')"
		" GROUP BY hour, p ORDER BY hour, p";
	sqlite3_stmt *st = NULL;
	int rc, r = charts_since(j, sql, since, 0, &st);

	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = fn(userdata, text(st, 0), text(st, 1), (unsigned)sqlite3_column_int64(st, 2),
		       (unsigned)sqlite3_column_int64(st, 3));
		if (r < 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "reading the yield per hour");
out:
	sqlite3_finalize(st);
	return r;
}

int journal_chart_throughput(struct journal *j, const char *since, unsigned limit,
			     int (*fn)(void *userdata, const struct report_job *r),
			     void *userdata)
{
	static const char sql[] =
		"SELECT " REPORT_JOB_COLS " FROM {jobs} WHERE started >= :since AND"
		" outcome = 'success' AND throughput IS NOT NULL"
		" ORDER BY started DESC, job DESC LIMIT :limit";
	sqlite3_stmt *st = NULL;
	int r = charts_since(j, sql, since, limit ? limit : 1, &st);

	if (r < 0)
		return r;
	r = report_jobs_each(j, st, fn, userdata);
	sqlite3_finalize(st);
	return r;
}

int journal_chart_failures(struct journal *j, const char *since, unsigned limit,
			   int (*fn)(void *userdata, const char *outcome, const char *reason,
				     unsigned count),
			   void *userdata)
{
	/* The part of an error before its first ':' names what failed
	 * ("verify", "writing /dev/sdb"); what follows is its detail. */
	static const char sql[] =
		"SELECT outcome, coalesce(nullif(trim(substr(error, 1,"
		"  instr(error || ':', ':') - 1)), ''), '-') AS reason, count(*) AS n FROM {jobs}"
		" WHERE started >= :since AND outcome NOT IN ('success', 'ignored', 'running')"
		" GROUP BY outcome, reason ORDER BY n DESC, outcome, reason LIMIT :limit";
	sqlite3_stmt *st = NULL;
	int rc, r = charts_since(j, sql, since, limit ? limit : 1, &st);

	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = fn(userdata, text(st, 0), text(st, 1), (unsigned)sqlite3_column_int64(st, 2));
		if (r < 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "reading the failures");
out:
	sqlite3_finalize(st);
	return r;
}

int journal_metrics_jobs(struct journal *j,
			 int (*fn)(void *userdata, const char *profile, const char *outcome,
				   uint64_t count, double bytes_written),
			 void *userdata)
{
	static const char sql[] =
		"SELECT coalesce(profile, '') AS p, outcome, count(*),"
		" total(bytes_written) FROM {jobs} WHERE outcome <> 'running'"
		" GROUP BY p, outcome ORDER BY p, outcome";
	sqlite3_stmt *st = NULL;
	int rc, r = charts_prepare(j, sql, &st);

	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = fn(userdata, text(st, 0), text(st, 1), (uint64_t)sqlite3_column_int64(st, 2),
		       sqlite3_column_double(st, 3));
		if (r < 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "counting the jobs");
out:
	sqlite3_finalize(st);
	return r;
}

int journal_metrics_successes(struct journal *j,
			      int (*fn)(void *userdata, const char *profile, double duration,
					double throughput),
			      void *userdata)
{
	static const char sql[] =
		"SELECT coalesce(profile, '') AS p, duration, throughput FROM {jobs}"
		" WHERE outcome = 'success' AND duration IS NOT NULL ORDER BY p";
	sqlite3_stmt *st = NULL;
	int rc, r = charts_prepare(j, sql, &st);

	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = fn(userdata, text(st, 0), sqlite3_column_double(st, 1),
		       sqlite3_column_type(st, 2) == SQLITE_NULL ? -1
								  : sqlite3_column_double(st, 2));
		if (r < 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "reading the job durations");
out:
	sqlite3_finalize(st);
	return r;
}

int journal_metrics_info(struct journal *j, int64_t *ret_version, double *ret_last_started)
{
	static const char sql[] =
		"SELECT (SELECT user_version FROM pragma_user_version),"
		" " JOURNAL_UNIX_TIME("max(started)") " FROM {jobs}";
	sqlite3_stmt *st = NULL;
	int rc, r = charts_prepare(j, sql, &st);

	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_version = sqlite3_column_int64(st, 0);
		*ret_last_started = sqlite3_column_type(st, 1) == SQLITE_NULL
					    ? -1
					    : sqlite3_column_double(st, 1);
		r = 0;
	} else {
		r = journal_sqlfail(j, rc, "reading the journal's version");
	}
	sqlite3_finalize(st);
	return r;
}
