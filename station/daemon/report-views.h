/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The report queries behind the dashboard's pages: a report's rows a page
 * at a time (report-pages.c), and the aggregates its charts and /metrics
 * show (report-charts.c). The rows are those `report` selects, in its order;
 * strings passed to a callback are valid during the call only.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct journal;
struct report_filter;

/* How many jobs `report` with @flt lists. */
int journal_report_count(struct journal *j, const struct report_filter *flt, uint64_t *ret);

/* One job of a report's page, as the table shows it. */
struct report_job {
	int64_t job;
	const char *station, *started, *slot, *devnode, *serial, *profile, *outcome, *error;
	double throughput, duration; /* bytes/s and seconds; < 0 when unknown */
};

/* The jobs `report` with @flt lists (newest first, or @oldest_first as
 * `history`), from the @offset-th on, at most @limit of them. */
int journal_report_page(struct journal *j, const struct report_filter *flt, bool oldest_first,
			uint64_t offset, unsigned limit,
			int (*fn)(void *userdata, const struct report_job *r), void *userdata);

/* Per UTC hour ("2026-11-26T05") and profile, oldest first, of the jobs
 * started at or after @since: passed (success) and ended (those counted in
 * a yield, outcome_in_yield()). */
int journal_chart_yield(struct journal *j, const char *since,
			int (*fn)(void *userdata, const char *hour, const char *profile,
				  unsigned passed, unsigned ended),
			void *userdata);

/* The newest @limit successful jobs started at or after @since with a known
 * throughput (bytes/s), newest first. */
int journal_chart_throughput(struct journal *j, const char *since, unsigned limit,
			     int (*fn)(void *userdata, const struct report_job *r),
			     void *userdata);

/* The jobs started at or after @since that did not succeed (ignored and
 * running ones left out), per outcome and reason (the error up to its first
 * ':', "-" when none), most frequent first, at most @limit groups. */
int journal_chart_failures(struct journal *j, const char *since, unsigned limit,
			   int (*fn)(void *userdata, const char *outcome, const char *reason,
				     unsigned count),
			   void *userdata);

/* Histogram bounds ("le", ascending) for journal_metrics_jobs(). */
#define METRICS_MAX_LE 16
struct metrics_buckets {
	const double *duration;   /* seconds */
	size_t n_duration;        /* at most METRICS_MAX_LE */
	const double *throughput; /* bytes/s */
	size_t n_throughput;
};

/* What the ended jobs of one profile ("" for none) and outcome add up to;
 * every member but the names adds across job ranges. The histograms count
 * the jobs with a duration (and for throughput, with a throughput too). */
struct metrics_agg {
	const char *profile, *outcome;
	uint64_t count;
	double bytes_written;
	uint64_t n_duration, duration_le[METRICS_MAX_LE];
	double sum_duration;
	uint64_t n_throughput, throughput_le[METRICS_MAX_LE];
	double sum_throughput;
};

/* The jobs numbered in (@after, @upto] that ended (running ones left out: a
 * counter never goes down), per profile and outcome, ordered so. A row of
 * the journal never changes once its job ended, so what a range adds up to
 * can be kept. */
int journal_metrics_jobs(struct journal *j, int64_t after, int64_t upto,
			 const struct metrics_buckets *b,
			 int (*fn)(void *userdata, const struct metrics_agg *a), void *userdata);

/* The newest job number (0: none) and the oldest job still running (0:
 * none), both from the journal's own rows (not the attached ones). */
int journal_metrics_bounds(struct journal *j, int64_t *ret_newest, int64_t *ret_oldest_running);

/* Job @job's start time (malloc'd), or NULL in *ret when there is no such job. */
int journal_job_started(struct journal *j, int64_t job, char **ret);

/* The journal's schema version and the newest job's start (Unix seconds; < 0
 * with no job). */
int journal_metrics_info(struct journal *j, int64_t *ret_version, double *ret_last_started);
