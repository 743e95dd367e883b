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

/* Every job that ended (running ones left out: a counter never goes down),
 * per profile ("" for none) and outcome: how many and the bytes they wrote. */
int journal_metrics_jobs(struct journal *j,
			 int (*fn)(void *userdata, const char *profile, const char *outcome,
				   uint64_t count, double bytes_written),
			 void *userdata);

/* Every successful job with a known duration, per profile: its duration (s)
 * and throughput (bytes/s, < 0 when unknown). */
int journal_metrics_successes(struct journal *j,
			      int (*fn)(void *userdata, const char *profile, double duration,
					double throughput),
			      void *userdata);

/* The journal's schema version and the newest job's start (Unix seconds; < 0
 * with no job). */
int journal_metrics_info(struct journal *j, int64_t *ret_version, double *ret_last_started);
