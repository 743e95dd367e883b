/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sync's pieces that need no PostgreSQL: the conninfo shown without its
 * password, the configuration's sync group, and a journal writer for the sync-*.sh integration tests
 * (test_sync --write ...), which writes through the journal's own C API so
 * that the journals synced have the schema a station writes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "journal-internal.h"
#include "journal.h"
#include "sync.h"

static void test_shown_hides_password(void **state)
{
	static const char *const forms[] = {
		"host=/tmp/x port=5433 user=audit password=s3cr3t-pw dbname=line",
		"postgresql://audit:s3cr3t-pw@db.example:5433/line?sslmode=verify-full",
		"postgresql://audit@db.example/line?password=s3cr3t-pw",
	};
	char *shown = NULL, *err = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		assert_int_equal(sync_conninfo_shown(forms[i], &shown, &err), 0);
		assert_null(strstr(shown, "s3cr3t-pw"));
		assert_null(strstr(shown, "password"));
		assert_non_null(strstr(shown, "user=audit"));
		free(shown);
	}
}

static void test_bad_conninfo_hides_password(void **state)
{
	/* libpq quotes what it cannot read: here, the password's neighbour. */
	static const char *const bad[] = {
		"host=x password=s3cr3t-pw s3cr3t-pw",
		"password='s3cr3t-pw",
		"postgresql://audit:s3cr3t-pw@[host/db",
		"postgresql://audit:s3cr3t-pw@host/db?s3cr3t-pw=1",
	};
	char *shown = NULL, *err = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sync_conninfo_shown(bad[i], &shown, &err), -EINVAL);
		assert_non_null(err);
		assert_null(strstr(err, "s3cr3t"));
		free(err);
		err = NULL;
	}
}

/* Writes @text to a configuration file in $TMPDIR and loads it. */
static int load(const char *text, struct station_config **ret, char **ret_error)
{
	char path[4096];
	FILE *f;
	int r;

	snprintf(path, sizeof(path), "%s/test_sync-%d.conf", getenv("TMPDIR") ? getenv("TMPDIR")
									: "/tmp", (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	r = config_load(path, ret, ret_error);
	unlink(path);
	return r;
}

static void test_config_sync_group(void **state)
{
	static const char profiles[] = "profiles = ({ name = \"p\"; image = \"/x.img\"; });\n";
	struct station_config *cfg = NULL;
	char *err = NULL, text[512];

	(void)state;
	snprintf(text, sizeof(text), "station = { name = \"line-1\"; };\n%s", profiles);
	assert_int_equal(load(text, &cfg, &err), 0);
	assert_null(cfg->sync_conninfo);
	assert_null(cfg->sync_station);
	config_free(cfg);

	snprintf(text, sizeof(text), "sync = { conninfo = \"host=db user=a\";"
		 " station_name = \"l7\"; };\n%s", profiles);
	assert_int_equal(load(text, &cfg, &err), 0);
	assert_string_equal(cfg->sync_conninfo, "host=db user=a");
	assert_string_equal(cfg->sync_station, "l7");
	config_free(cfg);

	/* A typo is named, with its line. */
	snprintf(text, sizeof(text), "sync = {\n conninf = \"host=db\"; };\n%s", profiles);
	assert_true(load(text, &cfg, &err) < 0);
	assert_non_null(strstr(err, ":2:"));
	assert_non_null(strstr(err, "conninf"));
	free(err);
	err = NULL;
	snprintf(text, sizeof(text), "sync = { conninfo = 5; };\n%s", profiles);
	assert_true(load(text, &cfg, &err) < 0);
	free(err);
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * test_sync --write DB STATION COUNT DELAY_MS [LEAVE]: COUNT jobs, DELAY_MS
 * apart, each with an on_start hook record whose output is not valid UTF-8
 * nor free of NUL bytes; every third job stays running for two more jobs
 * (a row that changes after it may have been copied), every tenth forgets
 * its serial. The last LEAVE jobs (default 0) are left running.
 * test_sync --end-running DB: every job still running ends (interrupted).
 */
static int write_jobs(const char *path, const char *station, int count, long delay, int leave)
{
	static const char output[] = "out\xff\xfe put\0after NUL";
	int64_t *running;
	struct journal *j = NULL;
	char *err = NULL, serial[64], slot[16];
	int n_running = 0;

	running = calloc((size_t)count + 1, sizeof(*running));
	if (!running || journal_open(path, false, &j, &err) < 0) {
		fprintf(stderr, "test_sync: %s\n", err ? err : "out of memory");
		return 1;
	}
	for (int i = 1; i <= count; i++) {
		struct job_start s = { .station = station, .profile = i % 2 ? "pi" : "gw",
				       .slot = slot, .serial = serial, .devnode = "/dev/loop9",
				       .syspath = "/sys/devices/virtual/block/loop9",
				       .diskseq = (uint64_t)i, .size = 1ull << 30,
				       .image = "/srv/a.img", .image_size = 123456789 };
		struct job_end e = { .outcome = i % 4 ? OUTCOME_SUCCESS : OUTCOME_VERIFY_FAILED,
				     .bytes_written = (uint64_t)i * 1000003,
				     .error = i % 4 ? NULL : "read back \xc3\x28 differs" };
		struct hook_record h = { .event = "on_start", .command = "/bin/true 'x'",
					 .duration = 0.125 * i, .exit_status = i % 3,
					 .output = output, .output_len = sizeof(output) - 1 };
		int64_t job;

		snprintf(serial, sizeof(serial), "%s-card-%d", station, i);
		snprintf(slot, sizeof(slot), "s%d", i % 4);
		if (journal_job_start(j, &s, &job) < 0)
			goto fail;
		h.job = job;
		if (journal_hook_record(j, &h) < 0)
			goto fail;
		if (i % 3 == 0 || i > count - leave) {
			running[n_running++] = job;
		} else if (journal_job_end(j, job, &e) < 0) {
			goto fail;
		}
		/* A job left running two jobs ago ends now. */
		if (i <= count - leave && n_running && running[0] <= job - 2) {
			if (journal_job_end(j, running[0], &e) < 0)
				goto fail;
			memmove(running, running + 1, (size_t)--n_running * sizeof(*running));
		}
		if (i % 10 == 0 && journal_forget(j, serial) < 0)
			goto fail;
		if (delay)
			nap_ms(delay);
	}
	/* The last @leave jobs were added last and never ended. */
	for (int k = 0; k < n_running - (leave < n_running ? leave : n_running); k++) {
		struct job_end e = { .outcome = OUTCOME_SUCCESS, .bytes_written = 7 };

		if (journal_job_end(j, running[k], &e) < 0)
			goto fail;
	}
	free(running);
	journal_close(j);
	return 0;
fail:
	fprintf(stderr, "test_sync: %s\n", journal_error(j));
	free(running);
	journal_close(j);
	return 1;
}

static int end_running(const char *path)
{
	struct journal *j = NULL;
	char *err = NULL;
	int r;

	if (journal_open(path, false, &j, &err) < 0) {
		fprintf(stderr, "test_sync: %s\n", err);
		return 1;
	}
	r = journal_interrupt_running(j, "ended by test_sync --end-running");
	journal_close(j);
	return r < 0;
}

/*
 * test_sync --dump DB SQL: the rows of SQL on the journal DB (read-only, with
 * the journal's SQL functions, bmap_utf8()), one a line, columns joined by
 * '|': NULL as N, integers in decimal, doubles as the hex of their IEEE bits
 * (exact), text and blobs as the upper-case hex of their bytes.
 */
static int dump(const char *path, const char *sql)
{
	struct journal *j = NULL;
	sqlite3_stmt *st = NULL;
	char *err = NULL;
	int rc;

	if (journal_open(path, true, &j, &err) < 0) {
		fprintf(stderr, "test_sync: %s\n", err);
		return 1;
	}
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			const unsigned char *b;
			double d;
			uint64_t bits;

			if (c)
				putchar('|');
			switch (sqlite3_column_type(st, c)) {
			case SQLITE_NULL:
				putchar('N');
				break;
			case SQLITE_INTEGER:
				printf("%lld", (long long)sqlite3_column_int64(st, c));
				break;
			case SQLITE_FLOAT:
				d = sqlite3_column_double(st, c);
				memcpy(&bits, &d, sizeof(bits));
				printf("%016llX", (unsigned long long)bits);
				break;
			default:
				b = sqlite3_column_blob(st, c);
				for (int i = 0; i < sqlite3_column_bytes(st, c); i++)
					printf("%02X", b[i]);
			}
		}
		putchar('\n');
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE)
		fprintf(stderr, "test_sync: %s\n", sqlite3_errmsg(j->db));
	sqlite3_finalize(st);
	journal_close(j);
	return rc != SQLITE_DONE || fflush(stdout) != 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shown_hides_password),
		cmocka_unit_test(test_bad_conninfo_hides_password),
		cmocka_unit_test(test_config_sync_group),
	};

	if ((argc == 6 || argc == 7) && strcmp(argv[1], "--write") == 0)
		return write_jobs(argv[2], argv[3], atoi(argv[4]), atol(argv[5]),
				  argc == 7 ? atoi(argv[6]) : 0);
	if (argc == 4 && strcmp(argv[1], "--dump") == 0)
		return dump(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "--end-running") == 0)
		return end_running(argv[2]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
