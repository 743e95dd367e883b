/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The journal's job rows (tables jobs, hooks, forgotten): a row written
 * durably before each worker starts and ended when it ends, refusals in one
 * row, jobs a crash left running, the look-ups the station decides by, and
 * what each hook did.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bmap.h"
#include "journal-internal.h"
#include "util.h"

static const char sql_insert[] =
	"INSERT INTO jobs (station, started, finished, duration, slot, devnode, syspath,"
	" diskseq, serial, reader_serial, vendor, model, bus, id_path, size, removable,"
	" mmc_cid, mmc_manfid, mmc_oemid, mmc_name, mmc_date, content_before, content_after,"
	" profile, image, image_size, bmap, bmap_sha256, outcome, error, bytes_written,"
	" data_sha256, readback_sha256, boot_id, signer)"
	" VALUES (:station, :started, :finished, :duration, :slot, :devnode, :syspath,"
	" :diskseq, :serial, :reader_serial, :vendor, :model, :bus, :id_path, :size, :removable,"
	" :mmc_cid, :mmc_manfid, :mmc_oemid, :mmc_name, :mmc_date, :content_before,"
	" :content_after, :profile, :image, :image_size, :bmap, :bmap_sha256, :outcome, :error,"
	" :bytes_written, :data_sha256, :readback_sha256, :boot_id, :signer)";

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

/*
 * The id of the boot this process runs in, which the kernel makes anew at
 * every boot: BMAP_STATION_BOOT_ID_FILE names another file to read it from
 * (tests fake a reboot with it). NULL when it cannot be read: then no row
 * of this process matches an earlier one (a card is flashed again rather
 * than skipped).
 */
static const char *journal_boot_id(struct journal *j)
{
	const char *path = secure_getenv("BMAP_STATION_BOOT_ID_FILE");
	char buf[sizeof(j->boot_id)];
	ssize_t n;
	int fd;

	if (j->boot_id_read)
		return j->boot_id[0] ? j->boot_id : NULL;
	j->boot_id_read = true;
	fd = open(path && *path ? path : "/proc/sys/kernel/random/boot_id",
		  O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	buf[strcspn(buf, " \t\r\n")] = '\0';
	/* A uuid: nothing that needs care anywhere it is shown. */
	if (!buf[0] || buf[strspn(buf, "0123456789abcdefABCDEF-")] != '\0')
		return NULL;
	memcpy(j->boot_id, buf, sizeof(buf));
	return j->boot_id;
}

/* An image or bmap URL is recorded as messages show it: a password in it
 * never reaches the journal (nor its copies: reports, sync). */
static int bind_location(sqlite3_stmt *st, const char *name, const char *location)
{
	_cleanup_free_ char *shown = NULL;

	if (!location)
		return bind_text(st, name, NULL);
	shown = bmap_url_display(location);
	if (!shown)
		return SQLITE_NOMEM;
	return bind_text(st, name, shown);
}

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
	B(bind_location(st, ":image", s->image));
	B(bind_u64_known(st, ":image_size", s->image_size));
	B(bind_location(st, ":bmap", s->bmap));
	B(bind_text(st, ":bmap_sha256", s->bmap_sha256));
	B(bind_text(st, ":signer", s->signer));
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
		rc = bind_text(j->insert, ":boot_id", journal_boot_id(j));
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
	/* DISKSEQ restarts at every boot, and boots number disks in the same
	 * order: only this boot's rows are this insertion's. */
	static const char sql[] = "SELECT outcome FROM jobs WHERE syspath = :syspath AND "
				  "diskseq = :diskseq AND boot_id = :boot_id "
				  "ORDER BY job DESC LIMIT 1";
	const char *boot_id = journal_boot_id(j);
	int rc, r;

	if (!syspath || !diskseq || !boot_id)
		return -ENOENT;
	r = journal_stmt(j, &j->last, sql);
	if (r < 0)
		return r;
	rc = bind_text(j->last, ":syspath", syspath);
	if (rc == SQLITE_OK)
		rc = bind_u64(j->last, ":diskseq", diskseq);
	if (rc == SQLITE_OK)
		rc = bind_text(j->last, ":boot_id", boot_id);
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
