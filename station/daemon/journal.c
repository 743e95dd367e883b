/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The journal (sqlite3): opening and migrating the file, the job rows the
 * daemon writes around each worker, and the reports (table, CSV, JSON) that
 * `bmap-station report` prints from it. Times are UTC ISO 8601 strings with
 * milliseconds, so the file reads well in the stock sqlite3 shell.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal.h"
#include "sanitize.h"
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
};

#define JOURNAL_VERSION ((int)ARRAY_SIZE(migrations))

static const char sql_insert[] =
	"INSERT INTO jobs (station, started, finished, duration, slot, devnode, syspath,"
	" diskseq, serial, reader_serial, vendor, model, bus, id_path, size, removable,"
	" mmc_cid, mmc_manfid, mmc_oemid, mmc_name, mmc_date, content_before, content_after,"
	" profile, image, image_size, bmap, bmap_sha256, outcome, error, bytes_written,"
	" data_sha256, readback_sha256)"
	" VALUES (:station, :started, :finished, :duration, :slot, :devnode, :syspath,"
	" :diskseq, :serial, :reader_serial, :vendor, :model, :bus, :id_path, :size, :removable,"
	" :mmc_cid, :mmc_manfid, :mmc_oemid, :mmc_name, :mmc_date, :content_before,"
	" :content_after, :profile, :image, :image_size, :bmap, :bmap_sha256, :outcome, :error,"
	" :bytes_written, :data_sha256, :readback_sha256)";

/*
 * :duration is the monotonic measurement when this process started the job;
 * NULL falls back to the wall-clock difference (a job from before a restart).
 */
static const char sql_end[] =
	"UPDATE jobs SET finished = :finished, duration = d.dur, outcome = :outcome,"
	" error = :error, bytes_written = :bytes_written,"
	" throughput = CASE WHEN d.dur > 0 THEN :bytes_written / d.dur END,"
	" data_sha256 = :data_sha256, readback_sha256 = :readback_sha256,"
	" content_after = :content_after,"
	" content_before = coalesce(:content_before_end, content_before)"
	" FROM (SELECT coalesce(:duration, max(0.0, round((julianday(:finished)"
	"       - julianday(started)) * 86400.0, 3))) AS dur"
	"       FROM jobs WHERE job = :job) AS d"
	" WHERE job = :job AND outcome = 'running'";

/*
 * The true end of an interrupted job is unknown (the daemon was down), so
 * finished is when it was noticed and duration/throughput stay NULL.
 */
static const char sql_interrupt[] = "UPDATE jobs SET outcome = 'interrupted', error = :error,"
				    " finished = :finished WHERE outcome = 'running'";

static const char sql_outcome[] = "SELECT outcome FROM jobs WHERE job = :job";

/* A job started by this process: its monotonic start, for an exact duration. */
struct journal_start {
	int64_t job;
	double t0;
};

struct journal {
	sqlite3 *db;
	char *path;
	char *error;
	bool readonly;
	int busy_ms;
	sqlite3_stmt *insert, *end, *interrupt, *outcome, *last, *live;
	struct journal_start *starts;
	size_t n_starts, cap_starts;
	int n_attached; /* other stations' journals, attached as s1, s2, ... */
};

static int journal_fail(struct journal *j, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int journal_fail(struct journal *j, int err, const char *fmt, ...)
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

static int journal_errno_from_sqlite(sqlite3 *db, int rc)
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

/* Records sqlite's last error on @j with what we were doing; returns -errno. */
static int journal_sqlfail(struct journal *j, int rc, const char *what)
{
	int err = journal_errno_from_sqlite(j->db, rc);

	if (!err)
		err = -EIO;
	if (j->readonly && ((rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_CANTOPEN))
		return journal_fail(j, err,
				    "%s: %s (a read-only reader needs the journal's -wal and -shm "
				    "files, which the daemon keeps; start it once, or read as a "
				    "user who may write the directory)",
				    what, sqlite3_errmsg(j->db));
	return journal_fail(j, err, "%s: %s", what, sqlite3_errmsg(j->db));
}

/* "2026-11-26T05:41:12.345Z" (UTC); @buf needs 40 bytes. */
static void journal_now(char buf[static 40])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 40 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

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

static int journal_exec(struct journal *j, const char *sql, const char *what)
{
	int rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, what);
	return 0;
}

/* Ends a failed write transaction; the error already recorded stays. */
static void journal_rollback(struct journal *j)
{
	if (!sqlite3_get_autocommit(j->db))
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
}

static int journal_commit(struct journal *j, const char *what)
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

	/* Refuse a foreign or newer file before switching it to WAL. */
	r = journal_check_header(j, &version);
	if (r < 0)
		return r;
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
	int rc, r, version;

	if (!path || !ret)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->readonly = readonly;
	j->path = strdup(path);
	if (!j->path) {
		r = -ENOMEM;
		goto out_free;
	}
	flags |= readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
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
	rc = sqlite3_create_function(j->db, "bmap_utf8", 1,
				     SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
				     journal_sql_utf8, NULL, NULL);
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
	free(j->starts);
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

/* A cached statement, reset and with every parameter NULL again. */
static int journal_stmt(struct journal *j, sqlite3_stmt **st, const char *sql)
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

/* An unknown name gives index 0, which sqlite's binds refuse (SQLITE_RANGE). */
static int bind_index(sqlite3_stmt *st, const char *name)
{
	return sqlite3_bind_parameter_index(st, name);
}

static int bind_text(sqlite3_stmt *st, const char *name, const char *s)
{
	int idx = bind_index(st, name);

	if (!s)
		return sqlite3_bind_null(st, idx);
	return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

/* A job number, or NULL for none (0). */
static int bind_job(sqlite3_stmt *st, int64_t job)
{
	int idx = bind_index(st, ":job");

	return job > 0 ? sqlite3_bind_int64(st, idx, job) : sqlite3_bind_null(st, idx);
}

static int bind_u64(sqlite3_stmt *st, const char *name, uint64_t v)
{
	int idx = bind_index(st, name);

	if (v > INT64_MAX)
		return sqlite3_bind_double(st, idx, (double)v);
	return sqlite3_bind_int64(st, idx, (int64_t)v);
}

/* 0 means unknown for sizes and diskseq (the kernel's diskseq starts at 1). */
static int bind_u64_known(sqlite3_stmt *st, const char *name, uint64_t v)
{
	if (!v)
		return sqlite3_bind_null(st, bind_index(st, name));
	return bind_u64(st, name, v);
}

/* Binds in sequence until one fails; @rc keeps the first error. */
#define B(call)                      \
	do {                         \
		if (rc == SQLITE_OK) \
			rc = (call); \
	} while (0)

static int bind_start(sqlite3_stmt *st, const struct job_start *s)
{
	int rc = SQLITE_OK;

	B(bind_text(st, ":station", s->station));
	B(bind_text(st, ":slot", s->slot));
	B(bind_text(st, ":devnode", s->devnode));
	B(bind_text(st, ":syspath", s->syspath));
	B(bind_u64_known(st, ":diskseq", s->diskseq));
	B(bind_text(st, ":serial", s->serial));
	B(bind_text(st, ":reader_serial", s->reader_serial));
	B(bind_text(st, ":vendor", s->vendor));
	B(bind_text(st, ":model", s->model));
	B(bind_text(st, ":bus", s->bus));
	B(bind_text(st, ":id_path", s->id_path));
	B(bind_u64_known(st, ":size", s->size));
	B(sqlite3_bind_int(st, bind_index(st, ":removable"), s->removable ? 1 : 0));
	B(bind_text(st, ":mmc_cid", s->mmc_cid));
	B(bind_text(st, ":mmc_manfid", s->mmc_manfid));
	B(bind_text(st, ":mmc_oemid", s->mmc_oemid));
	B(bind_text(st, ":mmc_name", s->mmc_name));
	B(bind_text(st, ":mmc_date", s->mmc_date));
	B(bind_text(st, ":content_before", s->content_before));
	B(bind_text(st, ":profile", s->profile));
	B(bind_text(st, ":image", s->image));
	B(bind_u64_known(st, ":image_size", s->image_size));
	B(bind_text(st, ":bmap", s->bmap));
	B(bind_text(st, ":bmap_sha256", s->bmap_sha256));
	return rc;
}

static int bind_end(sqlite3_stmt *st, const struct job_end *e)
{
	int rc = SQLITE_OK;

	B(bind_text(st, ":outcome", outcome_name(e->outcome)));
	B(bind_text(st, ":error", e->error));
	B(bind_u64(st, ":bytes_written", e->bytes_written));
	B(bind_text(st, ":data_sha256", e->data_sha256));
	B(bind_text(st, ":readback_sha256", e->readback_sha256));
	B(bind_text(st, ":content_after", e->content_after));
	return rc;
}

static int journal_writable(struct journal *j)
{
	if (j->readonly)
		return journal_fail(j, -EROFS, "opened read-only");
	return 0;
}

static bool outcome_final(enum outcome o)
{
	return o > OUTCOME_RUNNING && o <= OUTCOME_IGNORED;
}

/* Inserts one row in its own transaction; @e NULL for a running job. */
static int journal_insert(struct journal *j, const struct job_start *s, const struct job_end *e,
			  int64_t *ret_job)
{
	char now[40];
	int rc, r;

	r = journal_writable(j);
	if (r < 0)
		return r;
	r = journal_stmt(j, &j->insert, sql_insert);
	if (r < 0)
		return r;
	/* A row recorded late keeps the time it happened. */
	if (e && e->finished)
		snprintf(now, sizeof(now), "%s", e->finished);
	else
		journal_now(now);
	rc = bind_start(j->insert, s);
	if (rc == SQLITE_OK)
		rc = bind_text(j->insert, ":started", now);
	if (rc == SQLITE_OK && e) {
		rc = bind_end(j->insert, e);
		if (rc == SQLITE_OK)
			rc = bind_text(j->insert, ":finished", now);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_double(j->insert, bind_index(j->insert, ":duration"),
						 0.0);
	} else if (rc == SQLITE_OK) {
		rc = bind_text(j->insert, ":outcome", outcome_name(OUTCOME_RUNNING));
	}
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "binding a job");
	r = journal_exec(j, "BEGIN IMMEDIATE", "starting a job");
	if (r < 0)
		return r;
	rc = sqlite3_step(j->insert);
	if (rc != SQLITE_DONE) {
		r = journal_sqlfail(j, rc, "writing a job");
		goto out_rollback;
	}
	r = journal_commit(j, "committing a job");
	if (r < 0)
		goto out_reset;
	*ret_job = sqlite3_last_insert_rowid(j->db);
	r = 0;
	goto out_reset;

out_rollback:
	journal_rollback(j);
out_reset:
	sqlite3_reset(j->insert);
	return r;
}

int journal_job_start(struct journal *j, const struct job_start *s, int64_t *ret_job)
{
	double t0;
	int64_t job;
	int r;

	if (!j || !s || !ret_job)
		return -EINVAL;
	t0 = now_monotonic();
	r = journal_insert(j, s, NULL, &job);
	if (r < 0)
		return r;
	/* Without room here the duration falls back to the wall clock. */
	if (j->n_starts == j->cap_starts) {
		size_t cap = j->cap_starts ? 2 * j->cap_starts : 8;
		struct journal_start *n = reallocarray(j->starts, cap, sizeof(*n));

		if (n) {
			j->starts = n;
			j->cap_starts = cap;
		}
	}
	if (j->n_starts < j->cap_starts)
		j->starts[j->n_starts++] = (struct journal_start){ .job = job, .t0 = t0 };
	*ret_job = job;
	return 0;
}

int journal_job_once(struct journal *j, const struct job_start *s, const struct job_end *e,
		     int64_t *ret_job)
{
	int64_t job;
	int r;

	if (!j || !s || !e || !ret_job)
		return -EINVAL;
	if (!outcome_final(e->outcome))
		return journal_fail(j, -EINVAL,
				    "a job without a final outcome cannot be written once");
	r = journal_insert(j, s, e, &job);
	if (r < 0)
		return r;
	*ret_job = job;
	return 0;
}

/* After a failed update: why @job could not be ended. */
static int journal_explain_end(struct journal *j, int64_t job)
{
	int rc, r;

	r = journal_stmt(j, &j->outcome, sql_outcome);
	if (r < 0)
		return r;
	rc = sqlite3_bind_int64(j->outcome, bind_index(j->outcome, ":job"), job);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(j->outcome);
	if (rc == SQLITE_DONE)
		r = journal_fail(j, -ENOENT, "ending job %" PRId64 ": no such job", job);
	else if (rc == SQLITE_ROW)
		r = journal_fail(j, -EALREADY, "ending job %" PRId64 ": already ended (%s)", job,
				 sqlite3_column_text(j->outcome, 0));
	else
		r = journal_sqlfail(j, rc, "ending a job");
	sqlite3_reset(j->outcome);
	return r;
}

int journal_job_end(struct journal *j, int64_t job, const struct job_end *e)
{
	char now[40];
	double t1 = e && e->ended > 0 ? e->ended : now_monotonic();
	size_t slot = SIZE_MAX;
	int rc, r;

	if (!j || !e)
		return -EINVAL;
	if (!outcome_final(e->outcome))
		return journal_fail(j, -EINVAL, "ending job %" PRId64 ": not a final outcome",
				    job);
	r = journal_writable(j);
	if (r < 0)
		return r;
	r = journal_stmt(j, &j->end, sql_end);
	if (r < 0)
		return r;
	if (e->finished)
		snprintf(now, sizeof(now), "%s", e->finished);
	else
		journal_now(now);
	for (size_t i = 0; i < j->n_starts; i++)
		if (j->starts[i].job == job)
			slot = i;
	rc = bind_end(j->end, e);
	if (rc == SQLITE_OK)
		rc = bind_text(j->end, ":finished", now);
	if (rc == SQLITE_OK)
		rc = bind_text(j->end, ":content_before_end", e->content_before);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(j->end, bind_index(j->end, ":job"), job);
	if (rc == SQLITE_OK && slot != SIZE_MAX) {
		/* Milliseconds, like the timestamps. */
		double dur = (double)(int64_t)((t1 - j->starts[slot].t0) * 1000.0 + 0.5) / 1000.0;

		rc = sqlite3_bind_double(j->end, bind_index(j->end, ":duration"), dur);
	}
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "binding a job's end");
	r = journal_exec(j, "BEGIN IMMEDIATE", "ending a job");
	if (r < 0)
		return r;
	rc = sqlite3_step(j->end);
	if (rc != SQLITE_DONE) {
		r = journal_sqlfail(j, rc, "ending a job");
		goto out_rollback;
	}
	if (sqlite3_changes(j->db) != 1) {
		r = journal_explain_end(j, job);
		goto out_rollback;
	}
	r = journal_commit(j, "committing a job's end");
	if (r < 0)
		goto out_reset;
	if (slot != SIZE_MAX)
		j->starts[slot] = j->starts[--j->n_starts];
	goto out_reset;

out_rollback:
	journal_rollback(j);
out_reset:
	sqlite3_reset(j->end);
	return r;
}

int journal_last_outcome(struct journal *j, const char *syspath, uint64_t diskseq,
			 enum outcome *ret)
{
	static const char sql[] = "SELECT outcome FROM jobs WHERE syspath = :syspath AND "
				  "diskseq = :diskseq ORDER BY job DESC LIMIT 1";
	int rc, r;

	if (!syspath || !diskseq)
		return -ENOENT;
	r = journal_stmt(j, &j->last, sql);
	if (r < 0)
		return r;
	rc = bind_text(j->last, ":syspath", syspath);
	if (rc == SQLITE_OK)
		rc = bind_u64(j->last, ":diskseq", diskseq);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(j->last);
	if (rc == SQLITE_ROW)
		r = outcome_from_name((const char *)sqlite3_column_text(j->last, 0), ret) < 0
			    ? -ENOENT
			    : 0;
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = journal_sqlfail(j, rc, "looking up a card");
	sqlite3_reset(j->last);
	return r;
}

int journal_serial_passed(struct journal *j, const char *serial, const char *profile,
			  int64_t *ret_job)
{
	static const char sql[] =
		"SELECT job FROM jobs WHERE serial = :serial AND profile = :profile"
		" AND outcome = 'success' AND started > coalesce((SELECT max(at) FROM"
		" forgotten WHERE serial = :serial), '') ORDER BY job DESC LIMIT 1";
	sqlite3_stmt *st = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "looking up a serial");
	rc = bind_text(st, ":serial", serial);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":profile", profile);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_job = sqlite3_column_int64(st, 0);
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = -ENOENT;
	} else {
		r = journal_sqlfail(j, rc, "looking up a serial");
	}
	sqlite3_finalize(st);
	return r;
}

int journal_hook_record(struct journal *j, const struct hook_record *h)
{
	static const char sql[] =
		"INSERT INTO hooks (job, event, command, finished, duration, exit_status, signal,"
		" timed_out, output) VALUES (:job, :event, :command, :finished, :duration,"
		" :exit_status, :signal, :timed_out, :output)";
	sqlite3_stmt *st = NULL;
	char now[40];
	int rc, r;

	r = journal_writable(j);
	if (r < 0)
		return r;
	journal_now(now);
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = bind_job(st, h->job);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":event", h->event);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":command", h->command);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":finished", now);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_double(st, bind_index(st, ":duration"), h->duration);
	if (rc == SQLITE_OK)
		rc = h->signal ? sqlite3_bind_null(st, bind_index(st, ":exit_status"))
			       : sqlite3_bind_int(st, bind_index(st, ":exit_status"), h->exit_status);
	if (rc == SQLITE_OK)
		rc = h->signal ? sqlite3_bind_int(st, bind_index(st, ":signal"), h->signal)
			       : sqlite3_bind_null(st, bind_index(st, ":signal"));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, bind_index(st, ":timed_out"), h->timed_out);
	if (rc == SQLITE_OK)
		rc = h->output ? sqlite3_bind_text(st, bind_index(st, ":output"), h->output,
						   (int)h->output_len, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, bind_index(st, ":output"));
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "recording a hook");
	sqlite3_finalize(st);
	return r;
}

int journal_live_set(struct journal *j, const struct live_row *l)
{
	static const char sql[] =
		"INSERT OR REPLACE INTO live (syspath, station, slot, devnode, serial, profile,"
		" state, job, done, total, rate, last_outcome, error, updated) VALUES (:syspath,"
		" :station, :slot, :devnode, :serial, :profile, :state, :job, :done, :total, :rate,"
		" :last_outcome, :error, :updated)";
	sqlite3_stmt *st;
	char now[40];
	int rc, r;

	r = journal_writable(j);
	if (r < 0)
		return r;
	/* Written twice a second per card: the statement is kept prepared. */
	r = journal_stmt(j, &j->live, sql);
	if (r < 0)
		return r;
	st = j->live;
	journal_now(now);
	/* Live state need not survive a power cut: no fsync for it (in WAL
	 * mode NORMAL syncs only at checkpoints); the job rows keep FULL. */
	sqlite3_exec(j->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	/* Nor wait for another process's lock: the next update comes soon,
	 * and the daemon's loop must not stall on what is only a display. */
	sqlite3_busy_timeout(j->db, 0);
	rc = bind_text(st, ":syspath", l->syspath);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":station", l->station);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":slot", l->slot);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":devnode", l->devnode);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":serial", l->serial);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":profile", l->profile);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":state", l->state);
	if (rc == SQLITE_OK)
		rc = bind_job(st, l->job);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, bind_index(st, ":done"), (int64_t)l->done);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, bind_index(st, ":total"), (int64_t)l->total);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_double(st, bind_index(st, ":rate"), l->rate);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":last_outcome", l->last_outcome);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":error", l->error);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":updated", now);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "updating the live state");
	sqlite3_reset(st);
	sqlite3_busy_timeout(j->db, j->busy_ms);
	sqlite3_exec(j->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
	return r;
}

int journal_live_clear(struct journal *j, const char *syspath)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	r = journal_writable(j);
	if (r < 0)
		return r;
	rc = sqlite3_prepare_v2(j->db,
				syspath ? "DELETE FROM live WHERE syspath = :syspath"
					: "DELETE FROM live",
				-1, &st, NULL);
	if (rc == SQLITE_OK && syspath)
		rc = bind_text(st, ":syspath", syspath);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "clearing the live state");
	sqlite3_finalize(st);
	return r;
}

struct table_cell {
	char *text;
	size_t width;
};

static int table_cell_set(struct table_cell *c, const unsigned char *s, size_t n, size_t max);

/*
 * One row of the status table: each cell made safe like the report's (device
 * strings may hold controls, escapes, invalid UTF-8), cut at 63 code points,
 * padded by code points so that the columns line up.
 */
static int status_table_row(FILE *out, const unsigned char *const *v, const size_t *len)
{
	static const int width[9] = { 8, 14, 20, 14, 10, 4, 7, 6, 0 };
	static const bool right[9] = { [5] = true, [6] = true, [7] = true };

	for (size_t i = 0; i < 9; i++) {
		struct table_cell c;
		int pad;

		if (table_cell_set(&c, v[i], len[i], 63) < 0)
			return -ENOMEM;
		pad = width[i] > (int)c.width ? width[i] - (int)c.width : 0;
		fprintf(out, "%s%*s%s%*s", i ? " " : "", right[i] ? pad : 0, "", c.text,
			right[i] || i == 8 ? 0 : pad, "");
		free(c.text);
	}
	fputc('\n', out);
	return 0;
}

int journal_status(struct journal *j, bool json, FILE *out)
{
	static const char sql_table[] =
		"SELECT coalesce(slot, '-'), coalesce(devnode, '-'), coalesce(serial, '-'),"
		" coalesce(profile, '-'), state,"
		" CASE WHEN total > 0 THEN printf('%d%%', done * 100 / total) ELSE '-' END,"
		" CASE WHEN rate > 0 THEN printf('%.1f', rate / 1e6) ELSE '-' END,"
		" CASE WHEN rate > 0 AND total > done THEN printf('%d:%02d',"
		"   CAST((total - done) / rate AS INTEGER) / 60,"
		"   CAST((total - done) / rate AS INTEGER) % 60) ELSE '-' END,"
		" coalesce(last_outcome, '-')"
		" FROM live ORDER BY coalesce(slot, devnode)";
	static const char sql_json[] =
		"SELECT json_object('slot', bmap_utf8(slot), 'devnode', bmap_utf8(devnode),"
		" 'serial', bmap_utf8(serial),"
		" 'profile', bmap_utf8(profile), 'state', state, 'job', job, 'done', done,"
		" 'total', total,"
		" 'percent', CASE WHEN total > 0 THEN done * 100 / total END,"
		" 'mbps', CASE WHEN rate > 0 THEN round(rate / 1e6, 1) END,"
		" 'seconds_left', CASE WHEN rate > 0 AND total > done THEN"
		"   CAST((total - done) / rate AS INTEGER) END,"
		" 'last_outcome', last_outcome, 'error', bmap_utf8(error), 'updated', updated)"
		" FROM live ORDER BY coalesce(slot, devnode)";
	static const char *const heads[] = { "SLOT", "DEVICE", "SERIAL", "PROFILE", "STATE",
					     "%", "MB/S", "LEFT", "LAST" };
	static const size_t head_len[] = { 4, 6, 6, 7, 5, 1, 4, 4, 4 };
	sqlite3_stmt *st = NULL;
	bool first = true;
	int rc;

	rc = sqlite3_prepare_v2(j->db, json ? sql_json : sql_table, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "reading the live state");
	if (json)
		fputc('[', out);
	else
		status_table_row(out, (const unsigned char *const *)heads, head_len);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (json) {
			fputs(first ? "\n  " : ",\n  ", out);
			fputs((const char *)sqlite3_column_text(st, 0), out);
		} else {
			const unsigned char *v[9];
			size_t len[9];

			for (int i = 0; i < 9; i++) {
				v[i] = sqlite3_column_text(st, i);
				len[i] = (size_t)sqlite3_column_bytes(st, i);
			}
			if (status_table_row(out, v, len) < 0) {
				sqlite3_finalize(st);
				return journal_fail(j, -ENOMEM, "formatting the live state");
			}
		}
		first = false;
	}
	if (json)
		fputs(first ? "]\n" : "\n]\n", out);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "reading the live state");
}

int journal_live_foreach(struct journal *j, int (*fn)(void *userdata, const struct live_row *l),
			 void *userdata)
{
	static const char sql[] =
		"SELECT syspath, station, slot, devnode, serial, profile, state, job, done, total,"
		" rate, last_outcome, error FROM live ORDER BY coalesce(slot, devnode)";
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "reading the live state");
	while (r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct live_row l = {
			.syspath = (const char *)sqlite3_column_text(st, 0),
			.station = (const char *)sqlite3_column_text(st, 1),
			.slot = (const char *)sqlite3_column_text(st, 2),
			.devnode = (const char *)sqlite3_column_text(st, 3),
			.serial = (const char *)sqlite3_column_text(st, 4),
			.profile = (const char *)sqlite3_column_text(st, 5),
			.state = (const char *)sqlite3_column_text(st, 6),
			.job = sqlite3_column_int64(st, 7),
			.done = (uint64_t)sqlite3_column_int64(st, 8),
			.total = (uint64_t)sqlite3_column_int64(st, 9),
			.rate = sqlite3_column_double(st, 10),
			.last_outcome = (const char *)sqlite3_column_text(st, 11),
			.error = (const char *)sqlite3_column_text(st, 12),
		};

		r = fn(userdata, &l);
	}
	if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = journal_sqlfail(j, rc, "reading the live state");
	sqlite3_finalize(st);
	return r;
}

int journal_today(struct journal *j, struct day_counts *ret)
{
	static const char sql[] =
		"SELECT count(*) FILTER (WHERE outcome NOT IN ('ignored', 'running')),"
		" count(*) FILTER (WHERE outcome = 'success'),"
		" count(*) FILTER (WHERE outcome IN ('failed', 'verify_failed', 'removed',"
		"   'timeout', 'refused'))"
		" FROM jobs WHERE started >= strftime('%Y-%m-%dT00:00:00', 'now')";
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ret->flashed = (unsigned)sqlite3_column_int(st, 0);
		ret->passed = (unsigned)sqlite3_column_int(st, 1);
		ret->failed = (unsigned)sqlite3_column_int(st, 2);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : journal_sqlfail(j, rc, "counting today's jobs");
}

int journal_forget(struct journal *j, const char *serial)
{
	static const char sql[] = "INSERT INTO forgotten (serial, at) VALUES (:serial, :at)";
	sqlite3_stmt *st = NULL;
	char now[40];
	int rc, r;

	r = journal_writable(j);
	if (r < 0)
		return r;
	journal_now(now);
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":serial", serial);
	if (rc == SQLITE_OK)
		rc = bind_text(st, ":at", now);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "forgetting a serial");
	sqlite3_finalize(st);
	return r;
}

int journal_interrupt_running(struct journal *j, const char *error)
{
	char now[40];
	int rc, r, n;

	if (!j)
		return -EINVAL;
	r = journal_writable(j);
	if (r < 0)
		return r;
	r = journal_stmt(j, &j->interrupt, sql_interrupt);
	if (r < 0)
		return r;
	journal_now(now);
	rc = bind_text(j->interrupt, ":error", error);
	if (rc == SQLITE_OK)
		rc = bind_text(j->interrupt, ":finished", now);
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "binding interrupted jobs");
	r = journal_exec(j, "BEGIN IMMEDIATE", "interrupting running jobs");
	if (r < 0)
		return r;
	rc = sqlite3_step(j->interrupt);
	if (rc != SQLITE_DONE) {
		r = journal_sqlfail(j, rc, "interrupting running jobs");
		journal_rollback(j);
		goto out_reset;
	}
	n = sqlite3_changes(j->db);
	r = journal_commit(j, "committing interrupted jobs");
	if (r < 0)
		goto out_reset;
	/* No running job remains, so none of their start times matter. */
	j->n_starts = 0;
	r = n;
out_reset:
	sqlite3_reset(j->interrupt);
	return r;
}

/* --- reports ------------------------------------------------------------ */

/*
 * Where reports read from: this journal's jobs, and those of the journals
 * attached for other stations (schema names s1, s2, ... are ours).
 */
static char *report_source(const struct journal *j)
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
static const char report_where[] =
	"(:since IS NULL OR started >= :since) AND (:until IS NULL OR started < :until)"
	" AND (:profile IS NULL OR profile = :profile) AND (:slot IS NULL OR slot = :slot)"
	" AND (:outcome IS NULL OR outcome = :outcome) AND (:serial IS NULL OR serial = :serial)";

static int report_prepare(struct journal *j, const char *sql, const struct report_filter *flt,
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

/* RFC 4180: quoted when needed, quotes doubled. Lines end in LF. */
static void csv_field(FILE *out, const unsigned char *s, size_t n)
{
	bool quote = false;

	if (!s)
		return;
	for (size_t i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
			quote = true;
	if (!quote) {
		fwrite(s, 1, n, out);
		return;
	}
	fputc('"', out);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			fputc('"', out);
		fputc(s[i], out);
	}
	fputc('"', out);
}

/*
 * What a report lists: @names are the CSV/JSON columns (SQL expressions over
 * the query's rows, named by themselves), @table the aligned table's.
 */
struct table_col {
	const char *title;
	const char *expr; /* SQL over the row; names and literals are ours only */
	size_t max;       /* display columns, an ellipsis included */
	bool right;
};

struct report_kind {
	const char *const *names;
	size_t n_names;
	const struct table_col *table;
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

static int report_csv(struct journal *j, const struct report_kind *k, sqlite3_stmt *st, FILE *out)
{
	int rc;

	for (size_t i = 0; i < k->n_names; i++)
		fprintf(out, "%s%s", i ? "," : "", k->names[i]);
	fputc('\n', out);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const unsigned char *v = sqlite3_column_text(st, i);

			if (i)
				fputc(',', out);
			csv_field(out, v, (size_t)sqlite3_column_bytes(st, i));
		}
		fputc('\n', out);
	}
	return rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "reading the jobs");
}

/*
 * One json_object() per row, streamed in order; only the array's brackets
 * and commas come from here. (json_group_array would build the whole report
 * in memory, and sqlite 3.40 cannot order inside an aggregate.)
 */
static int report_json(struct journal *j, sqlite3_stmt *st, FILE *out)
{
	bool first = true;
	int rc;

	fputc('[', out);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fputs(first ? "\n" : ",\n", out);
		fwrite(sqlite3_column_text(st, 0), 1, (size_t)sqlite3_column_bytes(st, 0), out);
		first = false;
	}
	fputs(first ? "]\n" : "\n]\n", out);
	return rc == SQLITE_DONE ? 0 : journal_sqlfail(j, rc, "reading the jobs");
}

/* @s made safe for a terminal and cut to @max code points with an ellipsis. */
static int table_cell_set(struct table_cell *c, const unsigned char *s, size_t n, size_t max)
{
	size_t len = (s ? n : 1) + 4;

	c->text = malloc(len);
	if (!c->text)
		return -ENOMEM;
	c->width = sanitize(c->text, len, (const char *)s, n, max, true);
	return 0;
}

static void table_print_cell(FILE *out, const char *text, size_t w, const struct table_col *col,
			     size_t width, bool last)
{
	size_t pad = width - w;

	if (col->right)
		fprintf(out, "%*s", (int)pad, "");
	fputs(text, out);
	if (!col->right && !last)
		fprintf(out, "%*s", (int)pad, "");
}

/* The aligned table of @st's rows; @skip[i] leaves out @k->table[i]. */
static int report_table(struct journal *j, const struct report_kind *k, const bool *skip,
			sqlite3_stmt *st, FILE *out)
{
	const struct table_col *cols[32];
	struct table_cell *cells = NULL, *n;
	size_t rows = 0, cap = 0, ncols = 0, width[32];
	int rc, r;

	for (size_t c = 0; c < k->n_table && ncols < ARRAY_SIZE(cols); c++)
		if (!skip || !skip[c])
			cols[ncols++] = &k->table[c];
	for (size_t c = 0; c < ncols; c++)
		width[c] = strlen(cols[c]->title);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (rows == cap) {
			cap = cap ? 2 * cap : 64;
			n = reallocarray(cells, cap * ncols, sizeof(*cells));
			if (!n) {
				r = -ENOMEM;
				goto out_free;
			}
			cells = n;
		}
		for (size_t c = 0; c < ncols; c++) {
			struct table_cell *cell = &cells[rows * ncols + c];

			r = table_cell_set(cell, sqlite3_column_text(st, (int)c),
					   (size_t)sqlite3_column_bytes(st, (int)c), cols[c]->max);
			if (r < 0) {
				/* Keep the cells so far freeable. */
				for (size_t i = 0; i < c; i++)
					free(cells[rows * ncols + i].text);
				goto out_free;
			}
			if (cell->width > width[c])
				width[c] = cell->width;
		}
		rows++;
	}
	if (rc != SQLITE_DONE) {
		r = journal_sqlfail(j, rc, "reading the jobs");
		goto out_free;
	}
	for (size_t c = 0; c < ncols; c++) {
		if (c)
			fputs("  ", out);
		table_print_cell(out, cols[c]->title, strlen(cols[c]->title), cols[c], width[c],
				 c == ncols - 1);
	}
	fputc('\n', out);
	for (size_t row = 0; row < rows; row++) {
		for (size_t c = 0; c < ncols; c++) {
			const struct table_cell *cell = &cells[row * ncols + c];

			if (c)
				fputs("  ", out);
			table_print_cell(out, cell->text, cell->width, cols[c], width[c],
					 c == ncols - 1);
		}
		fputc('\n', out);
	}
	r = 0;
out_free:
	for (size_t i = 0; i < rows * ncols; i++)
		free(cells[i].text);
	free(cells);
	return r;
}

/* Report columns: the ones promised in journal.h first, then the rest. */
static const char *const report_columns[] = {
	"job", "started", "finished", "slot", "devnode", "serial", "vendor", "model", "size",
	"profile", "image", "outcome", "error", "bytes_written", "data_sha256", "readback_sha256",
	"station", "duration", "throughput", "syspath", "diskseq", "reader_serial", "bus",
	"id_path", "removable", "mmc_cid", "mmc_manfid", "mmc_oemid", "mmc_name", "mmc_date",
	"content_before", "content_after", "image_size", "bmap", "bmap_sha256",
};

#define JOBS_STATION_COL 1

static const struct table_col job_table[] = {
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

static const struct table_col summary_table[] = {
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
	"  sum(outcome IN ('success', 'failed', 'verify_failed', 'removed', 'timeout'))"    \
	"   AS ended FROM k GROUP BY day, profile),"                                         \
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
	"  iif(ended > 0, round(100.0 * passed / ended, 1), NULL) AS yield_pct,"            \
	"  round(ds.median, 3) AS median_s, round(ds.p95, 3) AS p95_s,"                      \
	"  round(ts.median / 1e6, 1) AS median_mbps FROM g"                                  \
	"  LEFT JOIN ds ON ds.day = g.day AND ds.profile IS g.profile"                       \
	"  LEFT JOIN ts ON ts.day = g.day AND ts.profile IS g.profile)"                      \
	" SELECT %s FROM s ORDER BY day, profile"

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
	/* Job numbers repeat across stations: then the start time orders. */
	if (j->n_attached == 0)
		order = oldest_first ? "job" : "job DESC";
	else
		order = oldest_first ? "started, station, job" : "started DESC, station, job DESC";
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

/* @n digits at @s into @ret; false when they are not all digits. */
static bool parse_digits(const char *s, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return true;
}

int journal_parse_time(const char *s, bool until, char ret[static JOURNAL_TIME_MAX])
{
	struct tm tm = { 0 };
	bool date_only = true;
	time_t t;
	int year, mon, day, hour = 0, min = 0, sec = 0;

	if (!s || !ret)
		return -EINVAL;
	if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0) {
		t = time(NULL);
		gmtime_r(&t, &tm);
		tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		if (s[0] == 'y')
			tm.tm_mday--;
	} else {
		if (strlen(s) < 10 || !parse_digits(s, 4, &year) || s[4] != '-' ||
		    !parse_digits(s + 5, 2, &mon) || s[7] != '-' || !parse_digits(s + 8, 2, &day))
			return -EINVAL;
		s += 10;
		if (*s == 'T' || *s == ' ') {
			date_only = false;
			if (!parse_digits(s + 1, 2, &hour) || s[3] != ':' ||
			    !parse_digits(s + 4, 2, &min))
				return -EINVAL;
			s += 6;
			if (*s == ':') {
				if (!parse_digits(s + 1, 2, &sec))
					return -EINVAL;
				s += 3;
			}
		}
		/* The journal is UTC: a Z is allowed, no other zone. */
		if (*s == 'Z')
			s++;
		if (*s || year < 1970 || hour > 23 || min > 59 || sec > 59)
			return -EINVAL;
		tm = (struct tm){ .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
				  .tm_hour = hour, .tm_min = min, .tm_sec = sec };
		/* timegm() would take 2026-02-30 as March 2nd. */
		t = timegm(&tm);
		if (t == (time_t)-1 || !gmtime_r(&t, &tm) || tm.tm_year != year - 1900 ||
		    tm.tm_mon != mon - 1 || tm.tm_mday != day)
			return -EINVAL;
	}
	/* A day alone for --until means up to its end. */
	if (until && date_only)
		tm.tm_mday++;
	t = timegm(&tm);
	if (t == (time_t)-1 || !gmtime_r(&t, &tm))
		return -EINVAL;
	strftime(ret, JOURNAL_TIME_MAX, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
	return 0;
}

#undef B
