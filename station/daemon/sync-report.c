/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The reports' row source for the whole line (`report --pg`): the central
 * copy's jobs, filtered in PostgreSQL, put into one temporary journal per
 * station, which report.c then reads as it reads several stations'
 * journals (--db A --db B). So every format, filter and summary is the
 * same code; only where the rows come from differs.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal-internal.h"
#include "report.h"
#include "sync-internal.h"

/* Stations a report reads at once: one journal each, attached (SQLite's
 * SQLITE_MAX_ATTACHED is 10 as Debian builds it). */
#define CENTRAL_MAX_STATIONS 10

__attribute__((format(printf, 2, 3))) static int central_fail(char **ret_error,
							       const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;

	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	if (ret_error)
		*ret_error = m;
	else
		free(m);
	return -EIO;
}

/* libpq's message, one line, with the password scrubbed (sync_fail()). */
static char *pg_error(const char *conninfo, const char *what, const char *msg)
{
	struct sync_ctx scrub = { .conninfo = conninfo };
	char *m;

	sync_fail(&scrub, -EIO, what, msg);
	m = scrub.error;
	free(scrub.password);
	return m;
}

/* The jobs of @station matching @flt into a new journal at @path. */
static int fill_station(PGconn *pg, const char *conninfo, const char *station,
			const struct report_filter *flt, const char *path, char **ret_error)
{
	const char *v[] = { station, flt->since, flt->until, flt->profile, flt->slot,
			    flt->outcome, flt->serial };
	char *sel = NULL, *ins = NULL, *err = NULL;
	struct journal *j = NULL;
	sqlite3_stmt *st = NULL;
	PGresult *res = NULL;
	size_t ls = 0, li = 0;
	FILE *fs, *fi;
	int r = -ENOMEM, rc;

	fs = open_memstream(&sel, &ls);
	fi = open_memstream(&ins, &li);
	if (!fs || !fi)
		goto out;
	fputs("SELECT job", fs);
	fputs("INSERT INTO jobs (job", fi);
	for (size_t i = 0; i < sync_n_job_cols; i++) {
		/* The report's STATION is the central name. */
		fprintf(fs, ", %s", sync_job_cols[i].name);
		fprintf(fi, ", %s", sync_job_cols[i].name);
	}
	fputs(" FROM bmap_jobs WHERE station = $1"
	      " AND ($2::text IS NULL OR started COLLATE \"C\" >= $2)"
	      " AND ($3::text IS NULL OR started COLLATE \"C\" < $3)"
	      " AND ($4::text IS NULL OR profile = $4) AND ($5::text IS NULL OR slot = $5)"
	      " AND ($6::text IS NULL OR outcome = $6) AND ($7::text IS NULL OR serial = $7)",
	      fs);
	fputs(") VALUES (?", fi);
	for (size_t i = 0; i < sync_n_job_cols; i++)
		fputs(", ?", fi);
	fputc(')', fi);
	if (fclose(fs) != 0 || fclose(fi) != 0) {
		fs = fi = NULL;
		goto out;
	}
	fs = fi = NULL;
	res = PQexecParams(pg, sel, 7, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = pg_error(conninfo, "reading the central jobs", PQresultErrorMessage(res));
		r = central_fail(ret_error, "%s", err ? err : "reading the central jobs failed");
		goto out;
	}
	r = journal_open(path, false, &j, ret_error);
	if (r < 0)
		goto out;
	rc = sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(j->db, ins, -1, &st, NULL);
	/* Every value as PostgreSQL's text: the columns' affinity makes the
	 * numbers numbers again. The station column gets the central name. */
	for (int row = 0; rc == SQLITE_OK && row < PQntuples(res); row++) {
		for (int c = 0; rc == SQLITE_OK && c < PQnfields(res); c++) {
			if (c == 1)
				rc = sqlite3_bind_text(st, 2, station, -1, SQLITE_STATIC);
			else if (PQgetisnull(res, row, c))
				rc = sqlite3_bind_null(st, c + 1);
			else
				rc = sqlite3_bind_text(st, c + 1, PQgetvalue(res, row, c), -1,
						       SQLITE_STATIC);
		}
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_DONE)
			rc = SQLITE_OK;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = central_fail(ret_error, "copying the central jobs of '%s' for the report: %s",
				 station, sqlite3_errmsg(j->db));
		goto out;
	}
	r = 0;
out:
	if (fs)
		fclose(fs);
	if (fi)
		fclose(fi);
	journal_close(j);
	PQclear(res);
	free(err);
	free(sel);
	free(ins);
	return r;
}

void central_close(struct journal *j, char *dir)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	char path[4096];

	journal_close(j);
	if (!dir)
		return;
	for (int i = 0; i < CENTRAL_MAX_STATIONS; i++)
		for (size_t s = 0; s < 3; s++) {
			snprintf(path, sizeof(path), "%s/%d.db%s", dir, i, suffixes[s]);
			unlink(path);
		}
	rmdir(dir);
	free(dir);
}

int central_open(const char *conninfo, const char *station, const struct report_filter *flt,
		 struct journal **ret, char **ret_dir, char **ret_error)
{
	PGconn *pg = sync_pg_open(conninfo);
	char *err = NULL;
	int r;

	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		err = pg_error(conninfo, "connecting to the central copy",
			       pg ? PQerrorMessage(pg) : "out of memory");
		r = central_fail(ret_error, "%s", err ? err : "cannot connect");
		free(err);
		PQfinish(pg);
		return r;
	}
	r = central_open_pg(pg, conninfo, station, flt, ret, ret_dir, ret_error);
	PQfinish(pg);
	return r;
}

int central_open_pg(struct pg_conn *pg, const char *conninfo, const char *station,
		    const struct report_filter *flt, struct journal **ret, char **ret_dir,
		    char **ret_error)
{
	static const struct report_filter none = { 0 };
	const char *tmp = getenv("TMPDIR"), *v[] = { station };
	struct journal *j = NULL;
	PGresult *res = NULL;
	char *dir = NULL, *err = NULL, path[4096];
	int n, r = -EIO;

	if (!flt)
		flt = &none;
	/* Read only: a report never creates or migrates the schema. */
	res = PQexecParams(pg,
			   "SELECT DISTINCT station FROM bmap_jobs WHERE $1::text IS NULL OR"
			   " station = $1 ORDER BY station",
			   1, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		err = pg_error(conninfo, "reading the central copy's stations (has "
			       "`bmap-station sync` run on it?)", PQresultErrorMessage(res));
		r = central_fail(ret_error, "%s", err ? err : "cannot read the stations");
		goto out;
	}
	n = PQntuples(res);
	if (n > CENTRAL_MAX_STATIONS) {
		r = central_fail(ret_error, "the central copy holds %d stations; a report reads "
			     "%d at most: choose one with --station", n, CENTRAL_MAX_STATIONS);
		goto out;
	}
	if (asprintf(&dir, "%s/bmap-station-pg.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		dir = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (!mkdtemp(dir)) {
		r = central_fail(ret_error, "cannot create a temporary folder %s: %m", dir);
		free(dir);
		dir = NULL;
		goto out;
	}
	/* No station (or none by that name): one empty journal, an empty report. */
	for (int i = 0; i < (n ? n : 1); i++) {
		snprintf(path, sizeof(path), "%s/%d.db", dir, i);
		r = fill_station(pg, conninfo, n ? PQgetvalue(res, i, 0) : "", n ? flt : &none,
				 path, ret_error);
		if (r < 0)
			goto out;
		r = i == 0 ? journal_open(path, true, &j, ret_error)
			   : journal_attach(j, path, ret_error);
		if (r < 0)
			goto out;
	}
	*ret = j;
	*ret_dir = dir;
	j = NULL;
	dir = NULL;
	r = 0;
out:
	PQclear(res);
	free(err);
	central_close(j, dir);
	return r;
}
