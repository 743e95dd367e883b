/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reports: what `bmap-station report`, `history`, `--summary` and the live
 * view's day counts read from the journal's jobs (one journal, or several
 * stations' at once), rendered by table.c.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

struct journal;

/* Today's (UTC) jobs: flashed (every ended, refused or interrupted job, not
 * ignored), passed, failed (failed, verify_failed, removed, timeout), and
 * those the yield leaves out; the yield as `report --summary` has it
 * (outcome_in_yield()), -1 when no job ended. */
struct day_counts {
	unsigned flashed, passed, failed, refused, interrupted;
	double yield_pct;
};
int journal_today(struct journal *j, struct day_counts *ret);

enum report_format { REPORT_TABLE, REPORT_CSV, REPORT_JSON };

/* Lists the jobs, newest first. CSV has a header row with at least: job, started,
 * finished, slot, devnode, serial, vendor, model, size, profile, image, outcome,
 * error, bytes_written, data_sha256, readback_sha256. JSON is one array of
 * objects made by SQLite's JSON functions. */
int journal_report(struct journal *j, enum report_format fmt, FILE *out);

/*
 * What a report lists; every member NULL means "any", and they combine with
 * AND. @since and @until compare with `started` (UTC): since inclusive,
 * until exclusive; give them as journal_parse_time() returns them. The rest
 * are exact matches; @outcome is an outcome_name().
 */
struct report_filter {
	const char *since;
	const char *until;
	const char *profile;
	const char *slot;
	const char *outcome;
	const char *serial;
};

/* Room for a time from journal_parse_time(), "2026-11-26T05:00:00.000Z". */
#define JOURNAL_TIME_MAX 32

/*
 * A report bound from the command line, in UTC (the journal's time zone):
 * "2026-11-26", "2026-11-26T05:00", "2026-11-26T05:00:00", each with an
 * optional trailing Z (a space may stand for the T), "today" or "yesterday"
 * (UTC days). A day alone is its start, or for @until its end (the next
 * day's start), so since D until D is all of day D. -EINVAL when @s is none
 * of these or not a real date.
 */
int journal_parse_time(const char *s, bool until, char ret[static JOURNAL_TIME_MAX]);

/*
 * Adds another station's journal (opened read-only, checked like
 * journal_open() does) to what the reports of @j read. The `station` column
 * then tells the rows apart; the table shows it, and rows are ordered by
 * start time since job numbers repeat across stations.
 */
int journal_attach(struct journal *j, const char *path, char **ret_error);

/* journal_report() with @flt (NULL: all jobs), newest or @oldest_first. */
int journal_report_filtered(struct journal *j, const struct report_filter *flt,
			    bool oldest_first, enum report_format fmt, FILE *out);

/*
 * One row per UTC day of `started` and profile, oldest first, over the jobs
 * @flt selects: day, profile, cards (every job but ignored ones), passed
 * (success), one count per failing outcome (failed, verify_failed, removed,
 * timeout, interrupted, refused), yield_pct (passed over the jobs that ran
 * to an end of their own: success, failed, verify_failed, removed, timeout;
 * NULL when none), median_s and p95_s (duration of successful jobs; median
 * of an even count is the mean of the two middle values, p95 the nearest
 * rank ceil(0.95 n)), median_mbps (median throughput of successful jobs,
 * 1e6 bytes/s).
 */
int journal_summary(struct journal *j, const struct report_filter *flt, enum report_format fmt,
		    FILE *out);
