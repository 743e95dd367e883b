/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whether the journal's file can be trusted, before and while it is used:
 * a regular file, not a journal truncated to nothing, not damaged (PRAGMA
 * quick_check when it is opened, SQLite's verdict on every statement), and
 * the way out, in every message that says it is not.
 */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal-internal.h"
#include "util.h"

/* The way out of a damaged journal, in every message that says it is. */
#define JOURNAL_WAY_OUT                                                                    \
	"restore it from a backup or move it away (a station started without it creates a " \
	"new journal, and job numbers start again at 1)"

int journal_damage(struct journal *j, const char *detail)
{
	_cleanup_free_ char *d = strdup(detail);
	const char *prefix = "journal ";
	size_t skip = strlen(prefix) + strlen(j->path) + 2;

	/* @detail may be our own "journal PATH: ..." message: not twice. */
	if (d && strncmp(d, prefix, strlen(prefix)) == 0 && strlen(d) >= skip &&
	    strncmp(d + strlen(prefix), j->path, strlen(j->path)) == 0)
		memmove(d, d + skip, strlen(d + skip) + 1);
	journal_fail(j, -EBADMSG, "is damaged (%s): " JOURNAL_WAY_OUT, d ? d : "out of memory");
	/* Kept apart: later errors replace j->error. */
	if (!j->damage)
		j->damage = strdup(journal_error(j));
	return -EBADMSG;
}

const char *journal_damaged(const struct journal *j)
{
	if (!j || !j->damage)
		return NULL;
	return j->damage;
}

/*
 * PRAGMA quick_check: a page overwritten or a file cut short is found
 * here, when the journal is opened, rather than by a write that fails over
 * and over (the card waiting for its row forever). It reads every page once
 * (0.3 s for a journal of 200,000 jobs, 170 MB, on the test VM).
 */
int journal_quick_check(struct journal *j)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(j->db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *res = (const char *)sqlite3_column_text(st, 0);

		if (!res || strcmp(res, "ok") != 0)
			r = journal_damage(j, res ? res : "PRAGMA quick_check failed");
	} else {
		r = journal_sqlfail(j, rc, "checking the file (PRAGMA quick_check)");
	}
	sqlite3_finalize(st);
	return r;
}

/* Whether PATH-wal or PATH-shm exists: a journal was used there (the
 * station keeps both, SQLITE_FCNTL_PERSIST_WAL). */
static bool journal_was_used(const char *path)
{
	char name[PATH_MAX];

	return (snprintf(name, sizeof(name), "%s-wal", path) < (int)sizeof(name) &&
		access(name, F_OK) == 0) ||
	       (snprintf(name, sizeof(name), "%s-shm", path) < (int)sizeof(name) &&
		access(name, F_OK) == 0);
}

/*
 * What is at @path before SQLite opens it: SQLite's open() of a FIFO
 * blocks until a writer comes, and a device or a folder is no journal. A
 * journal is never made anew where one was: an empty file next to the WAL
 * files of a journal (a journal truncated, a file system repaired) is
 * refused. (An empty file alone is what `touch` or a sqlite3 shell that
 * looked before the first start leaves: that one becomes the journal.)
 * Only a writer creates a journal, only where there is no file at all
 * (*ret_create).
 */
int journal_check_file(struct journal *j, bool *ret_create)
{
	struct stat st;

	*ret_create = false;
	if (stat(j->path, &st) < 0) {
		int err = errno;

		if (err == ENOENT && !j->readonly) {
			*ret_create = true;
			return 0;
		}
		return journal_fail(j, -err, "cannot open%s: %s", j->readonly ? " for reading" : "",
				    strerror(err));
	}
	if (!S_ISREG(st.st_mode))
		return journal_fail(j, -EINVAL,
				    "is not a regular file (%s): a journal is an SQLite file",
				    S_ISFIFO(st.st_mode)  ? "a FIFO"
				    : S_ISDIR(st.st_mode) ? "a folder"
				    : S_ISBLK(st.st_mode) ? "a block device"
							  : "a device or socket");
	if (st.st_size == 0 && j->readonly)
		return journal_fail(j, -EPROTO,
				    "holds no journal yet (an empty file: if a journal was there, "
				    "it was truncated; restore it from a backup)");
	if (st.st_size == 0 && journal_was_used(j->path))
		return journal_fail(j, -EBADMSG,
				    "is an empty file, but its -wal and -shm files say a journal "
				    "was there: it was truncated; restore it from a backup, or "
				    "remove it and its -wal and -shm files to start a new journal "
				    "(job numbers start again at 1)");
	return 0;
}

/*
 * After a failed first open: no empty journal stays where there was none
 * (it would be refused as a truncated one). One that got its first page
 * stays: it holds no rows, and the next start migrates it.
 */
void journal_uncreate(const char *path)
{
	static const char *const suffixes[] = { "-wal", "-shm", "-journal", "" };
	char name[PATH_MAX];
	struct stat st;

	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 0)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++)
		if (snprintf(name, sizeof(name), "%s%s", path, suffixes[i]) < (int)sizeof(name))
			unlink(name);
}
