/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the journal's files share and nothing else sees: the connection,
 * error recording, transactions, cached statements and parameter binding.
 */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "journal.h"

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
	int lock_fd; /* the station's single-instance lock (journal-lock.c), or -1 */
	char *damage; /* why the file is damaged, once SQLite found it so */
	/* This boot's id, read once (journal-jobs.c); "" when it cannot be. */
	char boot_id[64];
	bool boot_id_read;
};

/* Records "journal PATH: message" as the last error; returns @err. */
int journal_fail(struct journal *j, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int journal_errno_from_sqlite(sqlite3 *db, int rc);
/* Records sqlite's last error on @j with what we were doing; returns -errno. */
int journal_sqlfail(struct journal *j, int rc, const char *what);
/* "2026-11-26T05:41:12.345Z" (UTC); @buf needs 40 bytes. */
void journal_now(char buf[static 40]);
int journal_exec(struct journal *j, const char *sql, const char *what);
/* Ends a failed write transaction; the error already recorded stays. */
void journal_rollback(struct journal *j);
int journal_commit(struct journal *j, const char *what);
/* A cached statement, reset and with every parameter NULL again. */
int journal_stmt(struct journal *j, sqlite3_stmt **st, const char *sql);
/* journal-check.c: records that the file is damaged (@detail: what found
 * it) with the way out; returns -EBADMSG. */
int journal_damage(struct journal *j, const char *detail);
/* Before SQLite opens the file: what it is; *ret_create when there is none. */
int journal_check_file(struct journal *j, bool *ret_create);
/* PRAGMA quick_check on the open file; journal_damage() when it fails. */
int journal_quick_check(struct journal *j);
/* After a failed first open: no empty journal stays where none was. */
void journal_uncreate(const char *path);
/* -EROFS (recorded) for a journal opened read-only. */
int journal_writable(struct journal *j);

/* report.c: the SQL functions reports use (bmap_utf8()), on a new connection. */
int report_register_functions(sqlite3 *db);

/* An unknown name gives index 0, which sqlite's binds refuse (SQLITE_RANGE). */
static inline int bind_index(sqlite3_stmt *st, const char *name)
{
	return sqlite3_bind_parameter_index(st, name);
}

static inline int bind_text(sqlite3_stmt *st, const char *name, const char *s)
{
	int idx = bind_index(st, name);

	if (!s)
		return sqlite3_bind_null(st, idx);
	return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

/* A job number, or NULL for none (0). */
static inline int bind_job(sqlite3_stmt *st, int64_t job)
{
	int idx = bind_index(st, ":job");

	return job > 0 ? sqlite3_bind_int64(st, idx, job) : sqlite3_bind_null(st, idx);
}

static inline int bind_u64(sqlite3_stmt *st, const char *name, uint64_t v)
{
	int idx = bind_index(st, name);

	if (v > INT64_MAX)
		return sqlite3_bind_double(st, idx, (double)v);
	return sqlite3_bind_int64(st, idx, (int64_t)v);
}

/* 0 means unknown for sizes and diskseq (the kernel's diskseq starts at 1). */
static inline int bind_u64_known(sqlite3_stmt *st, const char *name, uint64_t v)
{
	if (!v)
		return sqlite3_bind_null(st, bind_index(st, name));
	return bind_u64(st, name, v);
}

/* Binds in sequence until one fails; a local @rc keeps the first error. */
#define B(call)                      \
	do {                         \
		if (rc == SQLITE_OK) \
			rc = (call); \
	} while (0)
