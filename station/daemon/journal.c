/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The journal's file (sqlite3): opening it (journal-check.c says whether it
 * can be trusted), checking it is ours, migrating its schema, and what every
 * statement shares (errors, transactions, cached
 * statements). The tables are journal-jobs.c's and journal-live.c's; the
 * reports are report.c's. Times are UTC ISO 8601 strings with milliseconds,
 * so the file reads well in the stock sqlite3 shell.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal-internal.h"
#include "util.h"

/* PRAGMA application_id: "bmst", so a foreign database is never migrated. */
#define JOURNAL_APP_ID 0x626d7374
#define JOURNAL_BUSY_MS 5000

/*
 * Schema migrations: migrations[i] takes a file from user_version i to i + 1.
 * Append only; never edit a step that has shipped.
 */
static const char *const migrations[] = {
	/* 0 -> 1: the jobs table. AUTOINCREMENT so a job number is never reused. */
	"CREATE TABLE jobs (\n"
	"\tjob INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"\tstation TEXT,\n"
	"\tstarted TEXT NOT NULL,\n"
	"\tfinished TEXT,\n"
	"\tduration REAL,\n"
	"\tslot TEXT,\n"
	"\tdevnode TEXT,\n"
	"\tsyspath TEXT,\n"
	"\tdiskseq INTEGER,\n"
	"\tserial TEXT,\n"
	"\treader_serial TEXT,\n"
	"\tvendor TEXT,\n"
	"\tmodel TEXT,\n"
	"\tbus TEXT,\n"
	"\tid_path TEXT,\n"
	"\tsize INTEGER,\n"
	"\tremovable INTEGER,\n"
	"\tmmc_cid TEXT,\n"
	"\tmmc_manfid TEXT,\n"
	"\tmmc_oemid TEXT,\n"
	"\tmmc_name TEXT,\n"
	"\tmmc_date TEXT,\n"
	"\tcontent_before TEXT,\n"
	"\tcontent_after TEXT,\n"
	"\tprofile TEXT,\n"
	"\timage TEXT,\n"
	"\timage_size INTEGER,\n"
	"\tbmap TEXT,\n"
	"\tbmap_sha256 TEXT,\n"
	"\toutcome TEXT NOT NULL,\n"
	"\terror TEXT,\n"
	"\tbytes_written INTEGER,\n"
	"\tthroughput REAL,\n"
	"\tdata_sha256 TEXT,\n"
	"\treadback_sha256 TEXT\n"
	");\n"
	"CREATE INDEX jobs_serial ON jobs(serial);\n"
	"CREATE INDEX jobs_started ON jobs(started);\n"
	"CREATE INDEX jobs_profile ON jobs(profile);\n"
	"CREATE INDEX jobs_outcome ON jobs(outcome);\n",
	/* 1 -> 2: 'bmap-station forget SERIAL' for once_per_serial profiles. The
	 * jobs stay as they were (an audit trail); a later row here makes the
	 * serial's earlier successes not count. */
	"CREATE TABLE forgotten (\n"
	"\tserial TEXT NOT NULL,\n"
	"\tat TEXT NOT NULL\n"
	");\n"
	"CREATE INDEX forgotten_serial ON forgotten(serial);\n",
	/* 2 -> 3: what each hook did. */
	"CREATE TABLE hooks (\n"
	"\tjob INTEGER,\n"
	"\tevent TEXT NOT NULL,\n"
	"\tcommand TEXT NOT NULL,\n"
	"\tfinished TEXT NOT NULL,\n"
	"\tduration REAL,\n"
	"\texit_status INTEGER,\n"
	"\tsignal INTEGER,\n"
	"\ttimed_out INTEGER NOT NULL DEFAULT 0,\n"
	"\toutput TEXT\n"
	");\n"
	"CREATE INDEX hooks_job ON hooks(job);\n",
	/* 3 -> 4: the live state of each card the running station knows, for
	 * 'status' and 'watch'. Rewritten by the daemon; not an audit record. */
	"CREATE TABLE live (\n"
	"\tsyspath TEXT PRIMARY KEY,\n"
	"\tstation TEXT,\n"
	"\tslot TEXT,\n"
	"\tdevnode TEXT,\n"
	"\tserial TEXT,\n"
	"\tprofile TEXT,\n"
	"\tstate TEXT NOT NULL,\n"
	"\tjob INTEGER,\n"
	"\tdone INTEGER,\n"
	"\ttotal INTEGER,\n"
	"\trate REAL,\n"
	"\tlast_outcome TEXT,\n"
	"\terror TEXT,\n"
	"\tupdated TEXT NOT NULL\n"
	");\n",
	/* 4 -> 5: the boot each job ran in (/proc/sys/kernel/random/boot_id).
	 * DISKSEQ restarts at every boot, so a card is one insertion only by
	 * syspath, DISKSEQ and boot. Rows from before have none. */
	"ALTER TABLE jobs ADD COLUMN boot_id TEXT;\n"
	"CREATE INDEX jobs_insertion ON jobs(syspath, diskseq, boot_id);\n",
	/* 5 -> 6: who signed the bmap each job wrote (the key's fingerprint),
	 * so a line can prove only released images went onto its cards. NULL:
	 * unsigned, or a row from before. */
	"ALTER TABLE jobs ADD COLUMN signer TEXT;\n",
};

#define JOURNAL_VERSION ((int)ARRAY_SIZE(migrations))

int journal_fail(struct journal *j, int err, const char *fmt, ...)
{
	char *msg = NULL, *full = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg && asprintf(&full, "journal %s: %s", j->path, msg) < 0)
		full = NULL;
	free(msg);
	free(j->error);
	j->error = full; /* NULL reads as "out of memory" */
	return err;
}

int journal_errno_from_sqlite(sqlite3 *db, int rc)
{
	int sys = sqlite3_system_errno(db);

	switch (rc & 0xff) {
	case SQLITE_OK:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return sys > 0 ? -sys : -ENOENT;
	case SQLITE_IOERR:
		return sys > 0 ? -sys : -EIO;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

int journal_sqlfail(struct journal *j, int rc, const char *what)
{
	int err = journal_errno_from_sqlite(j->db, rc);

	if (!err)
		err = -EIO;
	if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) {
		journal_fail(j, err, "%s: %s", what, sqlite3_errmsg(j->db));
		return journal_damage(j, j->error ? j->error : what);
	}
	if (j->readonly && ((rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_CANTOPEN))
		return journal_fail(j, err,
				    "%s: %s (a read-only reader needs the journal's -wal and -shm "
				    "files, which the daemon keeps; start it once, or read as a "
				    "user who may write the directory)",
				    what, sqlite3_errmsg(j->db));
	return journal_fail(j, err, "%s: %s", what, sqlite3_errmsg(j->db));
}

void journal_now(char buf[static 40])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 40 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

int journal_exec(struct journal *j, const char *sql, const char *what)
{
	int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, what);
	return 0;
}

void journal_rollback(struct journal *j)
{
	if (!sqlite3_get_autocommit(j->db))
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
}

int journal_commit(struct journal *j, const char *what)
{
	int r = journal_exec(j, "COMMIT", what);

	if (r < 0)
		journal_rollback(j);
	return r;
}

/* A single integer from @sql (a PRAGMA or a count). */
static int journal_query_int(struct journal *j, const char *sql, int64_t *ret)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "reading the schema");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = journal_sqlfail(j, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc,
				    "reading the schema");
		goto out_finalize;
	}
	*ret = sqlite3_column_int64(st, 0);
out_finalize:
	sqlite3_finalize(st);
	return r;
}

/* Whether the file is a journal this version may read (and migrate). */
static int journal_check_header(struct journal *j, int *ret_version)
{
	int64_t version, app_id, objects;
	int r;

	r = journal_query_int(j, "PRAGMA application_id", &app_id);
	if (r < 0)
		return r;
	r = journal_query_int(j, "PRAGMA user_version", &version);
	if (r < 0)
		return r;
	r = journal_query_int(j, "SELECT count(*) FROM sqlite_schema", &objects);
	if (r < 0)
		return r;
	if (app_id != JOURNAL_APP_ID && (app_id != 0 || version != 0 || objects != 0))
		return journal_fail(j, -EINVAL,
				    "not a bmap-station journal (application_id %" PRId64
				    ", user_version %" PRId64 "); refusing to touch it",
				    app_id, version);
	if (version > JOURNAL_VERSION)
		return journal_fail(j, -EPROTONOSUPPORT,
				    "schema version %" PRId64
				    " is newer than this bmap-station knows (%d); "
				    "a newer bmap-station wrote it, use that one",
				    version, JOURNAL_VERSION);
	*ret_version = (int)version;
	return 0;
}

static int journal_migrate(struct journal *j)
{
	char sql[128];
	int version, r;

	r = journal_exec(j, "BEGIN IMMEDIATE", "starting the migration");
	if (r < 0)
		return r;
	/* Again inside the transaction: another process may have migrated it. */
	r = journal_check_header(j, &version);
	if (r < 0)
		goto out_rollback;
	if (version == JOURNAL_VERSION) {
		journal_rollback(j);
		return 0;
	}
	for (int v = version; v < JOURNAL_VERSION; v++) {
		snprintf(sql, sizeof(sql), "migrating the schema to version %d", v + 1);
		r = journal_exec(j, migrations[v], sql);
		if (r < 0)
			goto out_rollback;
	}
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; PRAGMA user_version = %d",
		 JOURNAL_APP_ID, JOURNAL_VERSION);
	r = journal_exec(j, sql, "setting the schema version");
	if (r < 0)
		goto out_rollback;
	return journal_commit(j, "committing the migration");

out_rollback:
	journal_rollback(j);
	return r;
}

static int journal_setup_writer(struct journal *j)
{
	sqlite3_stmt *st = NULL;
	int persist = 1, version, rc, r;

	/* Refuse a foreign, newer or damaged file before writing anything. */
	r = journal_check_header(j, &version);
	if (r < 0)
		return r;
	if (version > 0) {
		r = journal_quick_check(j);
		if (r < 0)
			return r;
	}
	rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = journal_sqlfail(j, rc, "switching to WAL mode");
		goto out_finalize;
	}
	if (sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		r = journal_fail(j, -ENOTSUP, "cannot use WAL mode (journal_mode stays %s)",
				 sqlite3_column_text(st, 0));
		goto out_finalize;
	}
	/* A statement still active would keep the migration from committing. */
	sqlite3_finalize(st);
	st = NULL;
	/* Durable at each commit, not merely consistent. */
	r = journal_exec(j, "PRAGMA synchronous = FULL", "setting synchronous=FULL");
	if (r < 0)
		return r;
	/*
	 * Keep -wal and -shm after the last close: without them a read-only
	 * reader (an operator running reports) cannot open a WAL database in a
	 * directory it may not write.
	 */
	sqlite3_file_control(j->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	return journal_migrate(j);

out_finalize:
	sqlite3_finalize(st);
	return r;
}

int journal_open(const char *path, bool readonly, struct journal **ret, char **ret_error)
{
	struct journal *j;
	int flags = SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOMUTEX;
	bool create = false;
	int rc, r, version;

	if (!path || !ret)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->readonly = readonly;
	j->lock_fd = -1;
	j->path = strdup(path);
	if (!j->path) {
		r = -ENOMEM;
		goto out_free;
	}
	r = journal_check_file(j, &create);
	if (r < 0)
		goto out_error;
	flags |= readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, &j->db, flags, NULL);
	if (rc != SQLITE_OK) {
		if (!j->db) {
			r = -ENOMEM;
			goto out_free;
		}
		r = journal_errno_from_sqlite(j->db, rc);
		journal_fail(j, r, "cannot open%s: %s", readonly ? " for reading" : "",
			     strerror(-r));
		goto out_error;
	}
	journal_set_busy_timeout(j, JOURNAL_BUSY_MS);
	rc = report_register_functions(j->db);
	if (rc != SQLITE_OK) {
		r = journal_sqlfail(j, rc, "registering bmap_utf8()");
		goto out_error;
	}
	if (readonly) {
		r = journal_check_header(j, &version);
		if (r < 0)
			goto out_error;
		if (version == 0) {
			r = journal_fail(j, -EPROTO, "holds no journal yet (schema version 0)");
			goto out_error;
		}
		if (version < JOURNAL_VERSION) {
			r = journal_fail(j, -EPROTO,
					 "has schema version %d, older than %d; start the daemon "
					 "once to migrate it",
					 version, JOURNAL_VERSION);
			goto out_error;
		}
		r = journal_quick_check(j);
		if (r < 0)
			goto out_error;
	} else {
		r = journal_setup_writer(j);
		if (r < 0)
			goto out_error;
	}
	*ret = j;
	return 0;

out_error:
	if (ret_error)
		*ret_error = strdup(j->error ? j->error : "journal: out of memory");
out_free:
	journal_close(j);
	if (create)
		journal_uncreate(path);
	return r;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	sqlite3_finalize(j->insert);
	sqlite3_finalize(j->end);
	sqlite3_finalize(j->interrupt);
	sqlite3_finalize(j->outcome);
	sqlite3_finalize(j->last);
	sqlite3_finalize(j->live);
	sqlite3_close_v2(j->db);
	/* Last: the journal is closed before another station may open it. */
	if (j->lock_fd >= 0)
		close(j->lock_fd);
	free(j->starts);
	free(j->damage);
	free(j->error);
	free(j->path);
	free(j);
}

void journal_set_busy_timeout(struct journal *j, int ms)
{
	j->busy_ms = ms;
	sqlite3_busy_timeout(j->db, ms);
}

void journal_timestamp(char buf[static JOURNAL_TIMESTAMP_MAX])
{
	journal_now(buf);
}

const char *journal_error(const struct journal *j)
{
	if (!j)
		return "no journal";
	/* No message after a failure means it could not be allocated. */
	return j->error ? j->error : "journal: no error recorded (out of memory?)";
}

int journal_stmt(struct journal *j, sqlite3_stmt **st, const char *sql)
{
	int rc;

	if (!*st) {
		rc = sqlite3_prepare_v3(j->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
		if (rc != SQLITE_OK)
			return journal_sqlfail(j, rc, "preparing a statement");
	}
	sqlite3_reset(*st);
	sqlite3_clear_bindings(*st);
	return 0;
}

int journal_writable(struct journal *j)
{
	if (j->readonly)
		return journal_fail(j, -EROFS, "opened read-only");
	return 0;
}
