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

/*
 * The charts read the last days of a journal that may hold years: the
 * index on started must be the one used. Without statistics (the journal
 * is never ANALYZEd) SQLite prefers the one on outcome, which holds most
 * rows; "+outcome" is the same value but no index's, so the charts' queries
 * below write it so.
 */

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
		" WHERE started >= :since AND +outcome NOT IN ('ignored', 'running')"
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
		" +outcome = 'success' AND throughput IS NOT NULL"
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
		" WHERE started >= :since AND +outcome NOT IN ('success', 'ignored', 'running')"
		" GROUP BY +outcome, reason ORDER BY n DESC, outcome, reason LIMIT :limit";
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

/* The select list of journal_metrics_jobs(): the bounds are ours, as numbers. */
static char *metrics_sql(const struct metrics_buckets *b)
{
	char *sql = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sql, &len);

	if (!f)
		return NULL;
	fputs("SELECT coalesce(profile, '') AS p, outcome, count(*), total(bytes_written),"
	      " count(duration), total(duration)", f);
	for (size_t i = 0; i < b->n_duration; i++)
		fprintf(f, ", count(*) FILTER (WHERE duration <= %.17g)", b->duration[i]);
	fputs(", count(throughput) FILTER (WHERE duration IS NOT NULL),"
	      " total(throughput) FILTER (WHERE duration IS NOT NULL)", f);
	for (size_t i = 0; i < b->n_throughput; i++)
		fprintf(f, ", count(*) FILTER (WHERE duration IS NOT NULL AND throughput <= %.17g)",
			b->throughput[i]);
	fputs(" FROM main.jobs WHERE job > :after AND job <= :upto AND outcome <> 'running'"
	      " GROUP BY p, outcome ORDER BY p, outcome", f);
	if (fclose(f) != 0) {
		free(sql);
		return NULL;
	}
	return sql;
}

int journal_metrics_jobs(struct journal *j, int64_t after, int64_t upto,
			 const struct metrics_buckets *b,
			 int (*fn)(void *userdata, const struct metrics_agg *a), void *userdata)
{
	sqlite3_stmt *st = NULL;
	char *sql;
	int rc, r;

	if (!j || !b || !fn || b->n_duration > METRICS_MAX_LE || b->n_throughput > METRICS_MAX_LE)
		return -EINVAL;
	sql = metrics_sql(b);
	if (!sql)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "preparing the metrics' query");
	B(sqlite3_bind_int64(st, bind_index(st, ":after"), after));
	B(sqlite3_bind_int64(st, bind_index(st, ":upto"), upto));
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct metrics_agg a = {
			.profile = text(st, 0),
			.outcome = text(st, 1),
			.count = (uint64_t)sqlite3_column_int64(st, 2),
			.bytes_written = sqlite3_column_double(st, 3),
			.n_duration = (uint64_t)sqlite3_column_int64(st, 4),
			.sum_duration = sqlite3_column_double(st, 5),
		};
		int c = 6;

		for (size_t i = 0; i < b->n_duration; i++)
			a.duration_le[i] = (uint64_t)sqlite3_column_int64(st, c++);
		a.n_throughput = (uint64_t)sqlite3_column_int64(st, c++);
		a.sum_throughput = sqlite3_column_double(st, c++);
		for (size_t i = 0; i < b->n_throughput; i++)
			a.throughput_le[i] = (uint64_t)sqlite3_column_int64(st, c++);
		r = fn(userdata, &a);
		if (r < 0)
			goto out;
		rc = SQLITE_OK;
	}
	r = rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "adding up the jobs");
out:
	sqlite3_finalize(st);
	return r;
}

int journal_metrics_bounds(struct journal *j, int64_t *ret_newest, int64_t *ret_oldest_running)
{
	/* Both answered from an index (the rowid, jobs_outcome), not a scan. */
	static const char sql[] =
		"SELECT (SELECT coalesce(max(job), 0) FROM main.jobs),"
		" (SELECT coalesce(min(job), 0) FROM main.jobs WHERE outcome = 'running')";
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_newest = sqlite3_column_int64(st, 0);
		*ret_oldest_running = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : journal_sqlfail(j, rc, "reading the newest jobs");
}

int journal_job_started(struct journal *j, int64_t job, char **ret)
{
	sqlite3_stmt *st = NULL;
	const char *v;
	int rc = sqlite3_prepare_v2(j->db, "SELECT started FROM main.jobs WHERE job = ?1", -1, &st,
				    NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, job);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		v = rc == SQLITE_ROW ? text(st, 0) : NULL;
		*ret = v ? strdup(v) : NULL;
		sqlite3_finalize(st);
		return v && !*ret ? -ENOMEM : 0;
	}
	sqlite3_finalize(st);
	return journal_sqlfail(j, rc, "reading a job's start");
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
