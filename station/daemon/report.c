/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Report queries over the journal's jobs: `report` (filtered, one journal or
 * several stations' attached), `history`, `--summary` per day and profile,
 * and the day's counts the live view shows. table.c renders the rows.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal-internal.h"
#include "report-internal.h"
#include "report.h"
#include "table.h"
#include "util.h"

/*
 * SQL function bmap_utf8(x): text (or a blob) with every invalid UTF-8
 * sequence replaced by U+FFFD; other values unchanged. sqlite's JSON
 * functions copy bytes as they are, which would make the report invalid JSON.
 */
static void journal_sql_utf8(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	static const unsigned char repl[] = { 0xef, 0xbf, 0xbd };
	int type = sqlite3_value_type(argv[0]);
	const unsigned char *s;
	unsigned char *out, *o;
	size_t n, i;
	uint32_t cp;
	bool valid = true;

	(void)argc;
	if (type != SQLITE_TEXT && type != SQLITE_BLOB) {
		sqlite3_result_value(ctx, argv[0]);
		return;
	}
	s = type == SQLITE_TEXT ? sqlite3_value_text(argv[0]) : sqlite3_value_blob(argv[0]);
	n = (size_t)sqlite3_value_bytes(argv[0]);
	for (i = 0; i < n;) {
		int l = utf8_next(s + i, n - i, &cp);

		if (l < 0) {
			valid = false;
			break;
		}
		i += (size_t)l;
	}
	if (valid) {
		if (type == SQLITE_TEXT)
			sqlite3_result_value(ctx, argv[0]);
		else
			sqlite3_result_text(ctx, (const char *)s, (int)n, SQLITE_TRANSIENT);
		return;
	}
	/* At worst every byte becomes three. */
	o = out = malloc(3 * n + 1);
	if (!out) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	for (i = 0; i < n;) {
		int l = utf8_next(s + i, n - i, &cp);

		if (l > 0) {
			memcpy(o, s + i, (size_t)l);
			o += l;
			i += (size_t)l;
		} else {
			memcpy(o, repl, sizeof(repl));
			o += sizeof(repl);
			i += (size_t)-l;
		}
	}
	sqlite3_result_text(ctx, (const char *)out, (int)(o - out), free);
}

/* SQL function bmap_in_yield(outcome): 1 when the job counts in a yield. */
static void report_sql_in_yield(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const unsigned char *name = sqlite3_value_text(argv[0]);
	enum outcome o;

	(void)argc;
	sqlite3_result_int(ctx, name && outcome_from_name((const char *)name, &o) == 0 &&
					outcome_in_yield(o));
}

int report_register_functions(sqlite3 *db)
{
	int rc = sqlite3_create_function(db, "bmap_utf8", 1,
					 SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
					 NULL, journal_sql_utf8, NULL, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_create_function(db, "bmap_in_yield", 1,
					     SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
					     NULL, report_sql_in_yield, NULL, NULL);
	return rc;
}

/*
 * The yield, in percent with one decimal: passed (success) over the jobs
 * that ran to an end of their own (bmap_in_yield(), outcome_in_yield()),
 * NULL when none did. The one formula for `report --summary` and the live
 * view's day, over columns named passed and ended.
 */
#define YIELD_ENDED "sum(bmap_in_yield(outcome))"
#define YIELD_PCT "iif(ended > 0, round(100.0 * passed / ended, 1), NULL)"

/*
 * Where reports read from: this journal's jobs, and those of the journals
 * attached for other stations (schema names s1, s2, ... are ours).
 */
char *report_source(const struct journal *j)
{
	size_t len = 0;
	char *sql = NULL;
	FILE *f;

	if (j->n_attached == 0)
		return strdup("main.jobs");
	f = open_memstream(&sql, &len);
	if (!f)
		return NULL;
	fputs("(SELECT * FROM main.jobs", f);
	for (int i = 1; i <= j->n_attached; i++)
		fprintf(f, " UNION ALL SELECT * FROM s%d.jobs", i);
	fputc(')', f);
	if (fclose(f) != 0) {
		free(sql);
		return NULL;
	}
	return sql;
}

/* Every filter is a bound parameter; NULL means "any". */
const char report_where[] =
	"(:since IS NULL OR started >= :since) AND (:until IS NULL OR started < :until)"
	" AND (:profile IS NULL OR profile = :profile) AND (:slot IS NULL OR slot = :slot)"
	" AND (:outcome IS NULL OR outcome = :outcome) AND (:serial IS NULL OR serial = :serial)";

int report_prepare(struct journal *j, const char *sql, const struct report_filter *flt,
		   sqlite3_stmt **ret)
{
	static const struct report_filter none = { 0 };
	sqlite3_stmt *st = NULL;
	int rc;

	if (!flt)
		flt = &none;
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "preparing the report");
	B(bind_text(st, ":since", flt->since));
	B(bind_text(st, ":until", flt->until));
	B(bind_text(st, ":profile", flt->profile));
	B(bind_text(st, ":slot", flt->slot));
	B(bind_text(st, ":outcome", flt->outcome));
	B(bind_text(st, ":serial", flt->serial));
	if (rc != SQLITE_OK) {
		int r = journal_sqlfail(j, rc, "binding the report's filters");

		sqlite3_finalize(st);
		return r;
	}
	*ret = st;
	return 0;
}

/*
 * What a report lists: @names are the CSV/JSON columns (SQL expressions over
 * the query's rows, named by themselves), @table the aligned table's.
 */
struct report_col {
	const char *title;
	const char *expr; /* SQL over the row; names and literals are ours only */
	size_t max;       /* display columns, an ellipsis included */
	bool right;
};

struct report_kind {
	const char *const *names;
	size_t n_names;
	const struct report_col *table;
	size_t n_table;
};

/*
 * The select list of one report in @format: the table's expressions (less
 * those @skip leaves out), the CSV columns, or one json_object() of them per
 * row, made by sqlite so that nothing is escaped here.
 */
static char *report_columns_sql(const struct report_kind *k, enum report_format format,
				const bool *skip)
{
	size_t len = 0;
	char *sql = NULL;
	FILE *f = open_memstream(&sql, &len);
	bool first = true;

	if (!f)
		return NULL;
	if (format == REPORT_TABLE) {
		for (size_t i = 0; i < k->n_table; i++) {
			if (skip && skip[i])
				continue;
			fprintf(f, "%s%s", first ? "" : ", ", k->table[i].expr);
			first = false;
		}
	} else {
		if (format == REPORT_JSON)
			fputs("json_object(", f);
		for (size_t i = 0; i < k->n_names; i++) {
			if (format == REPORT_JSON)
				fprintf(f, "%s'%s', bmap_utf8(%s)", i ? ", " : "", k->names[i],
					k->names[i]);
			else
				fprintf(f, "%s%s", i ? ", " : "", k->names[i]);
		}
		if (format == REPORT_JSON)
			fputc(')', f);
	}
	if (fclose(f) != 0) {
		free(sql);
		return NULL;
	}
	return sql;
}

/* Columns enough for every report; report_columns[] has fewer. */
#define REPORT_MAX_COLS 64

/* The values of @st's current row, as table.c takes them. */
static size_t report_row(sqlite3_stmt *st, struct table_value v[static REPORT_MAX_COLS])
{
	size_t n = (size_t)sqlite3_column_count(st);

	if (n > REPORT_MAX_COLS)
		n = REPORT_MAX_COLS;
	for (size_t i = 0; i < n; i++) {
		int type = sqlite3_column_type(st, (int)i);

		/* The type first: sqlite3_column_text() converts a number. */
		v[i].number = type == SQLITE_INTEGER || type == SQLITE_FLOAT;
		v[i].s = sqlite3_column_text(st, (int)i);
		v[i].n = (size_t)sqlite3_column_bytes(st, (int)i);
	}
	return n;
}

static int report_csv(struct journal *j, const struct report_kind *k, sqlite3_stmt *st, FILE *out)
{
	struct table_value v[REPORT_MAX_COLS];
	size_t n;
	int rc;

	n = k->n_names < REPORT_MAX_COLS ? k->n_names : REPORT_MAX_COLS;
	for (size_t i = 0; i < n; i++)
		v[i] = (struct table_value){ (const unsigned char *)k->names[i],
					     strlen(k->names[i]), false };
	table_csv_row(out, v, n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n = report_row(st, v);
		table_csv_row(out, v, n);
	}
	return rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "reading the jobs");
}

/*
 * One json_object() per row, streamed in order; only the array's brackets
 * and commas come from table.c. (json_group_array would build the whole
 * report in memory, and sqlite 3.40 cannot order inside an aggregate.)
 */
static int report_json(struct journal *j, sqlite3_stmt *st, FILE *out)
{
	struct table_json js;
	int rc;

	table_json_begin(&js, out, NULL);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		table_json_add(&js, (const char *)sqlite3_column_text(st, 0),
			       (size_t)sqlite3_column_bytes(st, 0));
	table_json_end(&js);
	return rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "reading the jobs");
}

/* The aligned table of @st's rows; @skip[i] leaves out @k->table[i]. */
static int report_table(struct journal *j, const struct report_kind *k, const bool *skip,
			sqlite3_stmt *st, FILE *out)
{
	struct table_col cols[REPORT_MAX_COLS];
	struct table_value v[REPORT_MAX_COLS];
	struct table *t = NULL;
	size_t ncols = 0;
	int rc, r;

	for (size_t c = 0; c < k->n_table && ncols < ARRAY_SIZE(cols); c++)
		if (!skip || !skip[c])
			cols[ncols++] = (struct table_col){ k->table[c].title, k->table[c].max,
							    k->table[c].right, 0 };
	r = table_new(cols, ncols, NULL, &t);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		report_row(st, v);
		r = table_add_row(t, v);
		if (r < 0)
			goto out_free;
	}
	if (rc != SQLITE_DONE) {
		r = journal_sqlfail(j, rc, "reading the jobs");
		goto out_free;
	}
	table_print(t, out);
	r = 0;
out_free:
	table_free(t);
	return r;
}

/* Report columns: the ones promised in report.h first, then the rest. */
static const char *const report_columns[] = {
	"job", "started", "finished", "slot", "devnode", "serial", "vendor", "model", "size",
	"profile", "image", "outcome", "error", "bytes_written", "data_sha256", "readback_sha256",
	"station", "duration", "throughput", "syspath", "diskseq", "reader_serial", "bus",
	"id_path", "removable", "mmc_cid", "mmc_manfid", "mmc_oemid", "mmc_name", "mmc_date",
	"content_before", "content_after", "image_size", "bmap", "bmap_sha256", "signer",
};

#define JOBS_STATION_COL 1

static const struct report_col job_table[] = {
	{ "JOB", "job", 10, true },
	{ "STATION", "station", 16, false }, /* only when several journals are read */
	{ "STARTED", "started", 24, false },
	{ "SLOT", "slot", 16, false },
	{ "DEVNODE", "devnode", 16, false },
	{ "SERIAL", "serial", 24, false },
	{ "PROFILE", "profile", 20, false },
	{ "OUTCOME", "outcome", 13, false },
	{ "MB/S", "iif(throughput IS NULL, NULL, printf('%.1f', throughput / 1e6))", 10, true },
	{ "DURATION", "iif(duration IS NULL, NULL, printf('%.1f', duration))", 10, true },
	{ "ERROR", "error", 60, false },
};

static const struct report_kind jobs_kind = {
	report_columns, ARRAY_SIZE(report_columns), job_table, ARRAY_SIZE(job_table),
};

static const char *const summary_columns[] = {
	"day", "profile", "cards", "passed", "failed", "verify_failed", "removed",
	"timeout", "interrupted", "refused", "yield_pct", "median_s", "p95_s", "median_mbps",
};

static const struct report_col summary_table[] = {
	{ "DAY", "day", 10, false },
	{ "PROFILE", "profile", 20, false },
	{ "CARDS", "cards", 10, true },
	{ "PASSED", "passed", 10, true },
	{ "FAILED", "failed", 10, true },
	{ "VERIFY_FAILED", "verify_failed", 13, true },
	{ "REMOVED", "removed", 10, true },
	{ "TIMEOUT", "timeout", 10, true },
	{ "INTERRUPTED", "interrupted", 11, true },
	{ "REFUSED", "refused", 10, true },
	{ "YIELD%", "iif(yield_pct IS NULL, NULL, printf('%.1f', yield_pct))", 8, true },
	{ "MEDIAN_S", "iif(median_s IS NULL, NULL, printf('%.1f', median_s))", 10, true },
	{ "P95_S", "iif(p95_s IS NULL, NULL, printf('%.1f', p95_s))", 10, true },
	{ "MEDIAN_MB/S", "iif(median_mbps IS NULL, NULL, printf('%.1f', median_mbps))", 11, true },
};

static const struct report_kind summary_kind = {
	summary_columns, ARRAY_SIZE(summary_columns), summary_table, ARRAY_SIZE(summary_table),
};

/*
 * Per profile and UTC day of `started`. cards: every job but ignored ones;
 * yield: success over the jobs that ran to an end of their own (success,
 * failed, verify_failed, removed, timeout), so refusals, interruptions and
 * jobs still running do not count. Median: the middle value (the mean of
 * the two middle ones for an even count); p95: nearest rank, the value at
 * rank ceil(0.95 n). Both over successful jobs only.
 */
#define SUMMARY_SQL                                                                          \
	"WITH k AS (SELECT substr(started, 1, 10) AS day, profile, outcome, duration,"       \
	"  throughput FROM %s WHERE outcome <> 'ignored' AND %s),"                          \
	" g AS (SELECT day, profile, count(*) AS cards,"                                    \
	"  sum(outcome = 'success') AS passed, sum(outcome = 'failed') AS failed,"          \
	"  sum(outcome = 'verify_failed') AS verify_failed,"                                \
	"  sum(outcome = 'removed') AS removed, sum(outcome = 'timeout') AS timeout,"       \
	"  sum(outcome = 'interrupted') AS interrupted, sum(outcome = 'refused') AS refused," \
	"  " YIELD_ENDED " AS ended FROM k GROUP BY day, profile),"                          \
	" d AS (SELECT day, profile, duration AS v,"                                        \
	"  row_number() OVER (PARTITION BY day, profile ORDER BY duration) AS rn,"          \
	"  count(*) OVER (PARTITION BY day, profile) AS n"                                  \
	"  FROM k WHERE outcome = 'success' AND duration IS NOT NULL),"                     \
	" ds AS (SELECT day, profile,"                                                      \
	"  avg(v) FILTER (WHERE rn IN ((n + 1) / 2, (n + 2) / 2)) AS median,"                \
	"  max(v) FILTER (WHERE rn = (19 * n + 19) / 20) AS p95 FROM d GROUP BY day, profile)," \
	" t AS (SELECT day, profile, throughput AS v,"                                      \
	"  row_number() OVER (PARTITION BY day, profile ORDER BY throughput) AS rn,"        \
	"  count(*) OVER (PARTITION BY day, profile) AS n"                                  \
	"  FROM k WHERE outcome = 'success' AND throughput IS NOT NULL),"                   \
	" ts AS (SELECT day, profile,"                                                      \
	"  avg(v) FILTER (WHERE rn IN ((n + 1) / 2, (n + 2) / 2)) AS median"                 \
	"  FROM t GROUP BY day, profile),"                                                   \
	" s AS (SELECT g.day AS day, g.profile AS profile, cards, passed, failed,"          \
	"  verify_failed, removed, timeout, interrupted, refused,"                          \
	"  " YIELD_PCT " AS yield_pct,"                                                     \
	"  round(ds.median, 3) AS median_s, round(ds.p95, 3) AS p95_s,"                      \
	"  round(ts.median / 1e6, 1) AS median_mbps FROM g"                                  \
	"  LEFT JOIN ds ON ds.day = g.day AND ds.profile IS g.profile"                       \
	"  LEFT JOIN ts ON ts.day = g.day AND ts.profile IS g.profile)"                      \
	" SELECT %s FROM s ORDER BY day, profile"

const char *report_order(const struct journal *j, bool oldest_first)
{
	/* Job numbers repeat across stations: then the start time orders. */
	if (j->n_attached == 0)
		return oldest_first ? "job" : "job DESC";
	return oldest_first ? "started, station, job" : "started DESC, station, job DESC";
}

static int report_run(struct journal *j, const struct report_filter *flt, bool summary,
		      bool oldest_first, enum report_format fmt, FILE *out)
{
	const struct report_kind *k = summary ? &summary_kind : &jobs_kind;
	bool skip[ARRAY_SIZE(job_table)] = { false };
	char *src = NULL, *list = NULL, *sql = NULL;
	const char *order;
	sqlite3_stmt *st = NULL;
	int r;

	if (fmt != REPORT_TABLE && fmt != REPORT_CSV && fmt != REPORT_JSON)
		return -EINVAL;
	/* One station: its table stays as it always was. */
	if (!summary && j->n_attached == 0)
		skip[JOBS_STATION_COL] = true;
	src = report_source(j);
	list = report_columns_sql(k, fmt, summary ? NULL : skip);
	if (!src || !list) {
		r = -ENOMEM;
		goto out_free;
	}
	order = report_order(j, oldest_first);
	if (summary)
		r = asprintf(&sql, SUMMARY_SQL, src, report_where, list);
	else
		r = asprintf(&sql, "SELECT %s FROM %s WHERE %s ORDER BY %s", list, src,
			     report_where, order);
	if (r < 0) {
		sql = NULL;
		r = -ENOMEM;
		goto out_free;
	}
	r = report_prepare(j, sql, flt, &st);
	if (r < 0)
		goto out_free;
	switch (fmt) {
	case REPORT_TABLE:
		r = report_table(j, k, summary ? NULL : skip, st, out);
		break;
	case REPORT_CSV:
		r = report_csv(j, k, st, out);
		break;
	case REPORT_JSON:
		r = report_json(j, st, out);
		break;
	}
	if (r < 0)
		goto out_free;
	if (fflush(out) != 0 || ferror(out))
		r = journal_fail(j, errno ? -errno : -EIO, "writing the report: %m");
out_free:
	sqlite3_finalize(st);
	free(sql);
	free(list);
	free(src);
	return r;
}

int journal_report(struct journal *j, enum report_format fmt, FILE *out)
{
	if (!j || !out)
		return -EINVAL;
	return report_run(j, NULL, false, false, fmt, out);
}

int journal_report_filtered(struct journal *j, const struct report_filter *flt,
			    bool oldest_first, enum report_format fmt, FILE *out)
{
	if (!j || !out)
		return -EINVAL;
	return report_run(j, flt, false, oldest_first, fmt, out);
}

int journal_summary(struct journal *j, const struct report_filter *flt, enum report_format fmt,
		    FILE *out)
{
	if (!j || !out)
		return -EINVAL;
	return report_run(j, flt, true, false, fmt, out);
}

int journal_attach(struct journal *j, const char *path, char **ret_error)
{
	struct journal *other = NULL;
	sqlite3_stmt *st = NULL;
	char sql[64];
	int rc, r;

	if (!j || !path)
		return -EINVAL;
	/* The same checks as for the first one: a journal, of this version. */
	r = journal_open(path, true, &other, ret_error);
	if (r < 0)
		return r;
	journal_close(other);
	if (j->n_attached + 1 >= sqlite3_limit(j->db, SQLITE_LIMIT_ATTACHED, -1)) {
		r = journal_fail(j, -E2BIG, "cannot read more than %d journals at once",
				 sqlite3_limit(j->db, SQLITE_LIMIT_ATTACHED, -1));
		goto out_error;
	}
	/* The file name is bound, never pasted; the connection's read-only
	 * flag carries over to what it attaches. */
	snprintf(sql, sizeof(sql), "ATTACH DATABASE :path AS s%d", j->n_attached + 1);
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":path", path);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		r = journal_errno_from_sqlite(j->db, rc);
		r = journal_fail(j, r < 0 ? r : -EIO, "attaching %s: %s", path,
				 sqlite3_errmsg(j->db));
		goto out_error;
	}
	j->n_attached++;
	return 0;

out_error:
	if (ret_error)
		*ret_error = strdup(journal_error(j));
	return r;
}

int journal_today(struct journal *j, struct day_counts *ret)
{
	static const char sql[] =
		"SELECT flashed, passed, ended - passed, refused, interrupted, " YIELD_PCT
		" FROM (SELECT count(*) FILTER (WHERE outcome NOT IN ('ignored', 'running'))"
		"  AS flashed, count(*) FILTER (WHERE outcome = 'success') AS passed,"
		"  coalesce(" YIELD_ENDED ", 0) AS ended,"
		"  count(*) FILTER (WHERE outcome = 'refused') AS refused,"
		"  count(*) FILTER (WHERE outcome = 'interrupted') AS interrupted"
		"  FROM jobs WHERE started >= strftime('%Y-%m-%dT00:00:00', 'now'))";
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ret->flashed = (unsigned)sqlite3_column_int(st, 0);
		ret->passed = (unsigned)sqlite3_column_int(st, 1);
		ret->failed = (unsigned)sqlite3_column_int(st, 2);
		ret->refused = (unsigned)sqlite3_column_int(st, 3);
		ret->interrupted = (unsigned)sqlite3_column_int(st, 4);
		ret->yield_pct = sqlite3_column_type(st, 5) == SQLITE_NULL
					 ? -1
					 : sqlite3_column_double(st, 5);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : journal_sqlfail(j, rc, "counting today's jobs");
}

