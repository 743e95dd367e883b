/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sync's side of PostgreSQL: connecting, the central schema and its
 * versioned migrations, and copying one batch of journal rows into it
 * (upserts keyed by station and job or row number, committed in the same
 * transaction as the station's position).
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal-internal.h"
#include "sync-internal.h"
#include "util.h"

/* Rows per table and transaction: a catch-up commits as it goes. */
#define SYNC_BATCH 500

/*
 * Central schema migrations: migrations[i] takes the database from version
 * i to i + 1 (table bmap_schema). Append only. Times stay the journal's
 * UTC ISO 8601 text, so that reports read the same from either, compared
 * bytewise (COLLATE "C": a locale's collation may skip punctuation); sizes
 * are numeric, as the journal's are unsigned 64-bit.
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE bmap_jobs (\n"
	" station text NOT NULL, job bigint NOT NULL, journal_station text,\n"
	" started text COLLATE \"C\" NOT NULL, finished text COLLATE \"C\",\n"
	" duration double precision, slot text,\n"
	" devnode text, syspath text, diskseq numeric, serial text, reader_serial text,\n"
	" vendor text, model text, bus text, id_path text, size numeric, removable integer,\n"
	" mmc_cid text, mmc_manfid text, mmc_oemid text, mmc_name text, mmc_date text,\n"
	" content_before text, content_after text, profile text, image text,\n"
	" image_size numeric, bmap text, bmap_sha256 text, outcome text NOT NULL, error text,\n"
	" bytes_written numeric, throughput double precision, data_sha256 text,\n"
	" readback_sha256 text, boot_id text, synced timestamptz NOT NULL DEFAULT now(),\n"
	" PRIMARY KEY (station, job));\n"
	"CREATE INDEX bmap_jobs_serial ON bmap_jobs (serial);\n"
	"CREATE INDEX bmap_jobs_started ON bmap_jobs (started);\n"
	"CREATE INDEX bmap_jobs_profile ON bmap_jobs (profile);\n"
	"CREATE INDEX bmap_jobs_outcome ON bmap_jobs (outcome);\n"
	"CREATE INDEX bmap_jobs_station ON bmap_jobs (station, started);\n"
	"CREATE TABLE bmap_hooks (\n"
	" station text NOT NULL, id bigint NOT NULL, job bigint, event text NOT NULL,\n"
	" command text NOT NULL, finished text NOT NULL, duration double precision,\n"
	" exit_status integer, signal integer, timed_out integer NOT NULL, output bytea,\n"
	" PRIMARY KEY (station, id));\n"
	"CREATE INDEX bmap_hooks_job ON bmap_hooks (station, job);\n"
	"CREATE TABLE bmap_forgotten (\n"
	" station text NOT NULL, id bigint NOT NULL, serial text NOT NULL, at text NOT NULL,\n"
	" PRIMARY KEY (station, id));\n"
	"CREATE INDEX bmap_forgotten_serial ON bmap_forgotten (serial);\n"
	"CREATE TABLE bmap_sync (\n"
	" station text PRIMARY KEY, last_job bigint NOT NULL DEFAULT 0,\n"
	" last_hook bigint NOT NULL DEFAULT 0, last_forgotten bigint NOT NULL DEFAULT 0,\n"
	" updated timestamptz NOT NULL DEFAULT now());\n",
};

#define SYNC_SCHEMA_VERSION ((int)ARRAY_SIZE(migrations))

#define T(n) { n, NULL, COL_TEXT }
#define N(n) { n, NULL, COL_NUM }
const struct sync_col sync_job_cols[] = {
	{ "station", "journal_station", COL_TEXT },
	T("started"), T("finished"), N("duration"), T("slot"), T("devnode"), T("syspath"),
	N("diskseq"), T("serial"), T("reader_serial"), T("vendor"), T("model"), T("bus"),
	T("id_path"), N("size"), N("removable"), T("mmc_cid"), T("mmc_manfid"), T("mmc_oemid"),
	T("mmc_name"), T("mmc_date"), T("content_before"), T("content_after"), T("profile"),
	T("image"), N("image_size"), T("bmap"), T("bmap_sha256"), T("outcome"), T("error"),
	N("bytes_written"), N("throughput"), T("data_sha256"), T("readback_sha256"),
	T("boot_id"),
};
const size_t sync_n_job_cols = ARRAY_SIZE(sync_job_cols);
static const struct sync_col hook_cols[] = {
	N("job"), T("event"), T("command"), T("finished"), N("duration"), N("exit_status"),
	N("signal"), N("timed_out"), { "output", NULL, COL_BYTES },
};
static const struct sync_col forgotten_cols[] = { T("serial"), T("at") };
#undef T
#undef N

struct table {
	const char *journal, *pg;
	const char *key, *pg_key; /* job, or the rowid (hooks and forgotten only append) */
	const struct sync_col *cols;
	size_t n_cols;
	char *select, *upsert;   /* built once */
	sqlite3_stmt *st;
};

static struct table tables[] = {
	{ "jobs", "bmap_jobs", "job", "job", sync_job_cols, ARRAY_SIZE(sync_job_cols), NULL, NULL, NULL },
	{ "hooks", "bmap_hooks", "rowid", "id", hook_cols, ARRAY_SIZE(hook_cols), NULL, NULL,
	  NULL },
	{ "forgotten", "bmap_forgotten", "rowid", "id", forgotten_cols,
	  ARRAY_SIZE(forgotten_cols), NULL, NULL, NULL },
};
enum { TABLE_JOBS, TABLE_HOOKS, TABLE_FORGOTTEN };

/* Appends to a growing string; false when out of memory (then *s is freed). */
__attribute__((format(printf, 2, 3))) static bool append(char **s, const char *fmt, ...)
{
	char *more = NULL, *joined = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&more, fmt, ap);
	va_end(ap);
	if (n >= 0 && asprintf(&joined, "%s%s", *s ? *s : "", more) < 0)
		joined = NULL;
	free(more);
	free(*s);
	*s = joined;
	return joined != NULL;
}

/* SELECT key, cols FROM table WHERE key > ?1 [AND key = ?2 ...] and the
 * matching upsert, whose $1 is the station and $2 the key. */
static int table_build(struct table *t)
{
	bool ok = true;

	if (t->select)
		return 0;
	ok = append(&t->select, "SELECT %s", t->key);
	for (size_t i = 0; ok && i < t->n_cols; i++)
		ok = append(&t->select, t->cols[i].kind == COL_TEXT ? ", bmap_utf8(%s)" : ", %s",
			    t->cols[i].name);
	ok = ok && append(&t->select, " FROM %s WHERE %s > ?1 AND (?2 IS NULL OR %s = ?2)"
			  " ORDER BY %s LIMIT %d", t->journal, t->key, t->key, t->key, SYNC_BATCH);
	ok = ok && append(&t->upsert, "INSERT INTO %s (station, %s", t->pg, t->pg_key);
	for (size_t i = 0; ok && i < t->n_cols; i++)
		ok = append(&t->upsert, ", %s", t->cols[i].pg ? t->cols[i].pg : t->cols[i].name);
	ok = ok && append(&t->upsert, ") VALUES ($1, $2");
	for (size_t i = 0; ok && i < t->n_cols; i++)
		ok = append(&t->upsert, ", $%zu", i + 3);
	ok = ok && append(&t->upsert, ") ON CONFLICT (station, %s) DO UPDATE SET ", t->pg_key);
	for (size_t i = 0; ok && i < t->n_cols; i++) {
		const char *c = t->cols[i].pg ? t->cols[i].pg : t->cols[i].name;

		ok = append(&t->upsert, "%s%s = EXCLUDED.%s", i ? ", " : "", c, c);
	}
	if (ok && t == &tables[TABLE_JOBS])
		ok = append(&t->upsert, ", synced = now()");
	if (!ok) {
		free(t->select);
		t->select = NULL;
		return -ENOMEM;
	}
	return 0;
}

static const char *pg_message(PGconn *pg, const PGresult *res)
{
	const char *m = res ? PQresultErrorMessage(res) : NULL;

	if (!m || !*m)
		m = PQerrorMessage(pg);
	return m && *m ? m : "no message from libpq";
}

/* Runs @sql (parameters as text); returns the result or NULL (recorded). */
static PGresult *pg_exec(struct sync_ctx *ctx, const char *what, const char *sql, int n,
			 const char *const *values, const int *lengths, const int *formats)
{
	PGresult *res = PQexecParams(ctx->pg, sql, n, NULL, values, lengths, formats, 0);
	ExecStatusType s = PQresultStatus(res);

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return res;
	sync_fail(ctx, PQstatus(ctx->pg) == CONNECTION_OK ? -EREMOTEIO : -ENOTCONN, what,
		  pg_message(ctx->pg, res));
	PQclear(res);
	return NULL;
}

/* @sql may hold several statements (the migrations do). */
static int pg_command(struct sync_ctx *ctx, const char *what, const char *sql)
{
	PGresult *res = PQexec(ctx->pg, sql);
	ExecStatusType s = PQresultStatus(res);
	int r = 0;

	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		r = sync_fail(ctx, PQstatus(ctx->pg) == CONNECTION_OK ? -EREMOTEIO : -ENOTCONN,
			      what, pg_message(ctx->pg, res));
	PQclear(res);
	return r;
}

static int pg_err(struct sync_ctx *ctx)
{
	return PQstatus(ctx->pg) == CONNECTION_OK ? -EREMOTEIO : -ENOTCONN;
}

static void pg_rollback(struct sync_ctx *ctx)
{
	if (PQstatus(ctx->pg) == CONNECTION_OK && PQtransactionStatus(ctx->pg) != PQTRANS_IDLE)
		PQclear(PQexec(ctx->pg, "ROLLBACK"));
}

/* CREATE ... IF NOT EXISTS says NOTICE; sync's log has no use for it. */
static void pg_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Stations starting at once migrate one after the other (an advisory lock
 * held to the end of the transaction), each in one transaction. */
static int pg_migrate(struct sync_ctx *ctx)
{
	char sql[160];
	PGresult *res;
	int version, r;

	r = pg_command(ctx, "starting the schema migration",
		       "BEGIN; SELECT pg_advisory_xact_lock(7011981144363364205);"
		       " CREATE TABLE IF NOT EXISTS bmap_schema (version integer NOT NULL)");
	if (r < 0)
		return r;
	res = pg_exec(ctx, "reading the schema version",
		      "SELECT coalesce(max(version), 0) FROM bmap_schema", 0, NULL, NULL, NULL);
	if (!res) {
		r = pg_err(ctx);
		goto out_rollback;
	}
	version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (version > SYNC_SCHEMA_VERSION) {
		snprintf(sql, sizeof(sql), "version %d, newer than this bmap-station knows (%d); "
			 "use the newer bmap-station", version, SYNC_SCHEMA_VERSION);
		r = sync_fail(ctx, -EPROTONOSUPPORT, "the central schema", sql);
		goto out_rollback;
	}
	for (int v = version; v < SYNC_SCHEMA_VERSION; v++) {
		r = pg_command(ctx, "migrating the central schema", migrations[v]);
		if (r < 0)
			goto out_rollback;
	}
	if (version < SYNC_SCHEMA_VERSION) {
		snprintf(sql, sizeof(sql), "DELETE FROM bmap_schema; INSERT INTO bmap_schema"
			 " VALUES (%d)", SYNC_SCHEMA_VERSION);
		r = pg_command(ctx, "setting the central schema version", sql);
		if (r < 0)
			goto out_rollback;
	}
	return pg_command(ctx, "committing the central schema", "COMMIT");

out_rollback:
	pg_rollback(ctx);
	return r;
}

void sync_pg_disconnect(struct sync_ctx *ctx)
{
	PQfinish(ctx->pg);
	ctx->pg = NULL;
}

PGconn *sync_pg_open(const char *conninfo)
{
	/* Earlier keywords are defaults that the conninfo (dbname, expanded)
	 * overrides: connect_timeout keeps an unreachable host from holding
	 * the loop longer than that, TCP keepalives and tcp_user_timeout a
	 * connection whose peer vanished (a cable pulled) mid-query. */
	static const char *const keys[] = { "connect_timeout", "keepalives_idle",
					    "keepalives_interval", "keepalives_count",
					    "tcp_user_timeout", "fallback_application_name",
					    "dbname", NULL };
	const char *values[] = { "10", "30", "10", "3", "60000", "bmap-station-sync", conninfo,
				 NULL };

	return PQconnectdbParams(keys, values, 1);
}

int sync_pg_connect(struct sync_ctx *ctx)
{
	int r;

	if (ctx->pg && PQstatus(ctx->pg) == CONNECTION_OK)
		return 0;
	sync_pg_disconnect(ctx);
	ctx->pg = sync_pg_open(ctx->conninfo);
	if (!ctx->pg)
		return sync_fail(ctx, -ENOMEM, "connecting", "out of memory");
	if (PQstatus(ctx->pg) != CONNECTION_OK) {
		r = sync_fail(ctx, -ENOTCONN, "connecting", PQerrorMessage(ctx->pg));
		sync_pg_disconnect(ctx);
		return r;
	}
	PQsetNoticeProcessor(ctx->pg, pg_quiet, NULL);
	r = pg_migrate(ctx);
	if (r < 0)
		sync_pg_disconnect(ctx);
	return r;
}

/* Upserts the rows @t's select gives for (@after, @only); *ret_max: the
 * highest key seen. Returns how many. */
static int copy_rows(struct sync_ctx *ctx, struct table *t, int64_t after, int64_t only,
		     int64_t *ret_max)
{
	const char *values[2 + ARRAY_SIZE(sync_job_cols)];
	int lengths[2 + ARRAY_SIZE(sync_job_cols)], formats[2 + ARRAY_SIZE(sync_job_cols)];
	char bufs[2 + ARRAY_SIZE(sync_job_cols)][32];
	int n = 0, rc;

	rc = sqlite3_bind_int64(t->st, 1, after);
	if (rc == SQLITE_OK)
		rc = only > 0 ? sqlite3_bind_int64(t->st, 2, only) : sqlite3_bind_null(t->st, 2);
	if (rc != SQLITE_OK)
		goto out_sqlite;
	while ((rc = sqlite3_step(t->st)) == SQLITE_ROW) {
		int64_t key = sqlite3_column_int64(t->st, 0);
		PGresult *res;

		values[0] = ctx->station;
		snprintf(bufs[1], sizeof(bufs[1]), "%" PRId64, key);
		values[1] = bufs[1];
		lengths[0] = lengths[1] = 0;
		formats[0] = formats[1] = 0;
		for (size_t i = 0; i < t->n_cols; i++) {
			int c = (int)i + 1, type = sqlite3_column_type(t->st, c);
			size_t p = i + 2;

			formats[p] = 0;
			lengths[p] = 0;
			if (type == SQLITE_NULL) {
				values[p] = NULL;
			} else if (t->cols[i].kind == COL_BYTES) {
				values[p] = sqlite3_column_blob(t->st, c);
				lengths[p] = sqlite3_column_bytes(t->st, c);
				formats[p] = 1;
				if (!values[p])
					values[p] = "";
			} else if (type == SQLITE_FLOAT) {
				snprintf(bufs[p], sizeof(bufs[p]), "%.17g",
					 sqlite3_column_double(t->st, c));
				values[p] = bufs[p];
			} else {
				values[p] = (const char *)sqlite3_column_text(t->st, c);
			}
		}
		res = pg_exec(ctx, "copying a row", t->upsert, (int)t->n_cols + 2, values,
			      lengths, formats);
		if (!res) {
			sqlite3_reset(t->st);
			return pg_err(ctx);
		}
		PQclear(res);
		if (key > *ret_max)
			*ret_max = key;
		n++;
	}
	sqlite3_reset(t->st);
	if (rc == SQLITE_DONE)
		return n;
out_sqlite:
	sqlite3_reset(t->st);
	return sync_fail(ctx, journal_errno_from_sqlite(ctx->j->db, rc), "reading the journal",
			 sqlite3_errmsg(ctx->j->db));
}

void sync_pg_finish(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
		sqlite3_finalize(tables[i].st);
		tables[i].st = NULL;
		free(tables[i].select);
		free(tables[i].upsert);
		tables[i].select = tables[i].upsert = NULL;
	}
}

static int prepare_tables(struct sync_ctx *ctx)
{
	for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
		struct table *t = &tables[i];
		int rc;

		if (table_build(t) < 0)
			return sync_fail(ctx, -ENOMEM, "preparing", "out of memory");
		if (t->st)
			continue;
		rc = sqlite3_prepare_v3(ctx->j->db, t->select, -1, SQLITE_PREPARE_PERSISTENT,
					&t->st, NULL);
		if (rc != SQLITE_OK)
			return sync_fail(ctx, journal_errno_from_sqlite(ctx->j->db, rc),
					 "reading the journal", sqlite3_errmsg(ctx->j->db));
	}
	return 0;
}

/* Locks this station's position row (a second sync of the same station
 * waits here) and reads it. */
static int read_position(struct sync_ctx *ctx, struct sync_position *ret)
{
	const char *v[] = { ctx->station };
	PGresult *res;

	res = pg_exec(ctx, "creating the station's position",
		      "INSERT INTO bmap_sync (station) VALUES ($1) ON CONFLICT DO NOTHING", 1, v,
		      NULL, NULL);
	if (!res)
		return pg_err(ctx);
	PQclear(res);
	res = pg_exec(ctx, "reading the station's position",
		      "SELECT last_job, last_hook, last_forgotten FROM bmap_sync"
		      " WHERE station = $1 FOR UPDATE", 1, v, NULL, NULL);
	if (!res)
		return pg_err(ctx);
	ret->job = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	ret->hook = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	ret->forgotten = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	PQclear(res);
	return 0;
}

/*
 * The journal changes a job row once after its insertion: a running job
 * ends (journal_job_end(), journal_interrupt_running() only touch rows whose
 * outcome is 'running'). So the jobs to copy again are exactly those the
 * central copy holds as running; hooks and forgotten rows are only appended.
 */
static int copy_ended(struct sync_ctx *ctx, int64_t upto)
{
	const char *v[] = { ctx->station };
	PGresult *res;
	int64_t ignored = 0;
	int n = 0, r;

	res = pg_exec(ctx, "reading the running jobs",
		      "SELECT job FROM bmap_jobs WHERE station = $1 AND outcome = 'running'"
		      " ORDER BY job", 1, v, NULL, NULL);
	if (!res)
		return pg_err(ctx);
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t job = strtoll(PQgetvalue(res, i, 0), NULL, 10);

		if (job > upto)
			break;
		r = copy_rows(ctx, &tables[TABLE_JOBS], job - 1, job, &ignored);
		if (r < 0) {
			PQclear(res);
			return r;
		}
		n += r;
	}
	PQclear(res);
	return n;
}

static int journal_max_job(struct sync_ctx *ctx, int64_t *ret)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ctx->j->db, "SELECT coalesce(max(job), 0) FROM jobs", -1, &st,
				NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return sync_fail(ctx, journal_errno_from_sqlite(ctx->j->db, rc),
				 "reading the journal", sqlite3_errmsg(ctx->j->db));
	return 0;
}

int sync_pg_batch(struct sync_ctx *ctx)
{
	struct sync_position pos, next;
	char vals[3][24];
	const char *v[4];
	PGresult *res;
	int r, n, total = 0;
	bool more = false;

	ctx->more = false;
	ctx->copied = 0;
	r = prepare_tables(ctx);
	if (r < 0)
		return r;
	/* One read snapshot of the journal: a hook's job is there with it. */
	r = journal_exec(ctx->j, "BEGIN", "starting a read");
	if (r < 0)
		return sync_fail(ctx, r, "reading the journal", journal_error(ctx->j));
	r = pg_command(ctx, "starting a transaction", "BEGIN");
	if (r < 0)
		goto out_sqlite;
	r = read_position(ctx, &pos);
	if (r < 0)
		goto out_rollback;
	r = journal_max_job(ctx, &ctx->journal_max_job);
	if (r < 0)
		goto out_rollback;
	next = pos;
	r = copy_ended(ctx, pos.job);
	if (r < 0)
		goto out_rollback;
	total += r;
	n = r = copy_rows(ctx, &tables[TABLE_JOBS], pos.job, 0, &next.job);
	if (r < 0)
		goto out_rollback;
	total += n;
	more |= n == SYNC_BATCH;
	n = r = copy_rows(ctx, &tables[TABLE_HOOKS], pos.hook, 0, &next.hook);
	if (r < 0)
		goto out_rollback;
	total += n;
	more |= n == SYNC_BATCH;
	n = r = copy_rows(ctx, &tables[TABLE_FORGOTTEN], pos.forgotten, 0, &next.forgotten);
	if (r < 0)
		goto out_rollback;
	total += n;
	more |= n == SYNC_BATCH;
	snprintf(vals[0], sizeof(vals[0]), "%" PRId64, next.job);
	snprintf(vals[1], sizeof(vals[1]), "%" PRId64, next.hook);
	snprintf(vals[2], sizeof(vals[2]), "%" PRId64, next.forgotten);
	v[0] = ctx->station;
	v[1] = vals[0];
	v[2] = vals[1];
	v[3] = vals[2];
	res = pg_exec(ctx, "recording the station's position",
		      "UPDATE bmap_sync SET last_job = $2, last_hook = $3, last_forgotten = $4,"
		      " updated = now() WHERE station = $1", 4, v, NULL, NULL);
	if (!res) {
		r = pg_err(ctx);
		goto out_rollback;
	}
	PQclear(res);
	r = pg_command(ctx, "committing", "COMMIT");
	if (r < 0)
		goto out_sqlite;
	journal_rollback(ctx->j);
	ctx->pos = next;
	ctx->copied = (unsigned)total;
	ctx->more = more;
	return total;

out_rollback:
	pg_rollback(ctx);
out_sqlite:
	journal_rollback(ctx->j);
	return r;
}
