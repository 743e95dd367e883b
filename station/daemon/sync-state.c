/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What sync tells without the network: the conninfo as it may be shown
 * (never a password), sync's messages scrubbed of it, and the state file
 * beside the journal (JOURNAL.sync) that `status` reads to say how far
 * behind the central copy is.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal-internal.h"
#include "report-internal.h"
#include "manager.h"
#include "sanitize.h"
#include "sync-internal.h"

int sync_conninfo_shown(const char *conninfo, char **ret_shown, char **ret_error)
{
	PQconninfoOption *opts;
	char *err = NULL, *shown = NULL;
	size_t len = 0;
	FILE *f;

	opts = PQconninfoParse(conninfo, &err);
	if (!opts) {
		/* libpq quotes the part it could not read, which may be the
		 * password: keep its words, not what it quoted. */
		char *m = NULL, *words = err ? malloc(strlen(err) * 2 + 8) : NULL;

		if (words) {
			char *o = words;

			for (const char *p = err; *p && *p != '\n'; p++) {
				const char *q = *p == '"' ? strchr(p + 1, '"') : NULL;

				if (q) {
					o = stpcpy(o, "\"...\"");
					p = q;
				} else {
					*o++ = *p;
				}
			}
			*o = '\0';
		}
		if (asprintf(&m, "not a libpq connection string or URI (%s)",
			     words ? words : "out of memory") < 0)
			m = NULL;
		free(words);
		PQfreemem(err);
		if (ret_error)
			*ret_error = m;
		else
			free(m);
		return -EINVAL;
	}
	f = open_memstream(&shown, &len);
	if (!f) {
		PQconninfoFree(opts);
		return -ENOMEM;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val || !*o->val || strcmp(o->keyword, "password") == 0)
			continue;
		fprintf(f, "%s%s=%s", ftell(f) ? " " : "", o->keyword, o->val);
	}
	PQconninfoFree(opts);
	if (fclose(f) != 0) {
		free(shown);
		return -ENOMEM;
	}
	*ret_shown = shown;
	return 0;
}

/* The password @conninfo gives, to scrub from messages; NULL when none. */
static char *conninfo_password(const char *conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	char *pw = NULL;

	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
			pw = strdup(o->val);
	PQconninfoFree(opts);
	return pw;
}

int sync_fail(struct sync_ctx *ctx, int err, const char *what, const char *detail)
{
	char *msg = NULL, *p;
	size_t n;

	if (!ctx->password && ctx->conninfo)
		ctx->password = conninfo_password(ctx->conninfo);
	if (asprintf(&msg, "%s: %s", what, detail ? detail : "unknown error") < 0) {
		free(ctx->error);
		ctx->error = NULL;
		return err;
	}
	/* libpq's messages end in a newline and may run over several lines. */
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	/* One line, single spaces. */
	for (char *o = p = msg; ; p++) {
		char ch = *p == '\n' || *p == '\t' ? ' ' : *p;

		if (ch == ' ' && o > msg && o[-1] == ' ')
			continue;
		*o++ = ch;
		if (!ch)
			break;
	}
	if (ctx->password)
		while ((p = strstr(msg, ctx->password)))
			memset(p, '*', strlen(ctx->password));
	free(ctx->error);
	ctx->error = msg;
	return err;
}

char *sync_state_path(const char *journal_path)
{
	char *p = NULL;

	if (asprintf(&p, "%s.sync", journal_path) < 0)
		return NULL;
	return p;
}

void sync_state_write(struct sync_ctx *ctx, bool up, const char *down_since)
{
	char *path = sync_state_path(ctx->journal_path), *tmp = NULL, now[40];
	char err[512];
	FILE *f = NULL;
	int fd;

	if (!path || asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		tmp = NULL;
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		log_warn("sync: cannot write its state %s: %m (status will not show it)", path);
		goto out;
	}
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	/* As the journal: its group (the folder is setgid) may read it. */
	fchmod(fd, 0640);
	journal_timestamp(now);
	fprintf(f, "station=%s\nupdated=%s\npid=%ld\nstate=%s\nlast_job=%" PRId64
		   "\nlast_hook=%" PRId64 "\nlast_forgotten=%" PRId64 "\n",
		ctx->station, now, (long)getpid(), up ? "up" : "down", ctx->pos.job,
		ctx->pos.hook, ctx->pos.forgotten);
	if (!up)
		fprintf(f, "down_since=%s\nerror=%s\n", down_since ? down_since : now,
			printable(ctx->error ? ctx->error : "unknown", err, sizeof(err)));
	if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) {
		f = NULL;
		unlink(tmp);
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) < 0) {
		log_warn("sync: cannot replace its state %s: %m", path);
		unlink(tmp);
	}
out:
	if (f)
		fclose(f);
	free(tmp);
	free(path);
}

/* One "key=value" of the state file, or NULL. */
static const char *state_get(char *const *keys, size_t n, const char *key)
{
	size_t l = strlen(key);

	for (size_t i = 0; i < n; i++)
		if (strncmp(keys[i], key, l) == 0 && keys[i][l] == '=')
			return keys[i] + l + 1;
	return NULL;
}

static int count_after(struct journal *j, const char *table, const char *key, int64_t after,
		       int64_t *ret)
{
	char sql[128];
	sqlite3_stmt *st = NULL;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE %s > ?1", table, key);
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, after);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : journal_sqlfail(j, rc, "counting rows not synced");
}

int sync_status_print(struct journal *j, const char *journal_path, FILE *out)
{
	char *path = sync_state_path(journal_path), *lines[16], line[600], a[200], b[600];
	const char *v;
	int64_t jobs = 0, hooks = 0, forgotten = 0;
	size_t n = 0;
	FILE *f;
	int r = 0;

	if (!path)
		return -ENOMEM;
	f = fopen(path, "re");
	free(path);
	if (!f)
		return 0; /* no sync ever ran on this journal */
	while (n < 16 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		lines[n] = strdup(line);
		if (lines[n])
			n++;
	}
	fclose(f);
	v = state_get(lines, n, "last_job");
	r = count_after(j, "jobs", "job", v ? strtoll(v, NULL, 10) : 0, &jobs);
	if (r >= 0)
		r = count_after(j, "hooks", "rowid",
				(v = state_get(lines, n, "last_hook")) ? strtoll(v, NULL, 10) : 0,
				&hooks);
	if (r >= 0)
		r = count_after(j, "forgotten", "rowid",
				(v = state_get(lines, n, "last_forgotten")) ? strtoll(v, NULL, 10)
									     : 0,
				&forgotten);
	if (r >= 0) {
		v = state_get(lines, n, "updated");
		fprintf(out, "central copy (sync as '%s'): ",
			printable(state_get(lines, n, "station"), a, sizeof(a)));
		if (jobs + hooks + forgotten == 0)
			fprintf(out, "up to date");
		else
			fprintf(out, "%" PRId64 " job(s), %" PRId64 " hook record(s), %" PRId64
				     " forgotten serial(s) behind", jobs, hooks, forgotten);
		fprintf(out, " (sync's state of %s)", printable(v, b, sizeof(b)));
		v = state_get(lines, n, "state");
		if (v && strcmp(v, "down") == 0)
			fprintf(out, "; PostgreSQL unreachable since %s: %s",
				printable(state_get(lines, n, "down_since"), a, sizeof(a)),
				printable(state_get(lines, n, "error"), b, sizeof(b)));
		fputc('\n', out);
	}
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	return r;
}

/* A state file's time ("2026-11-26T05:41:12.345Z") in Unix seconds, or -1. */
static double state_time(const char *s)
{
	struct tm tm = { 0 };
	double frac = 0;
	int n = 0;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return -1;
	if (s[n] == '.')
		frac = strtod(s + n, NULL);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (double)timegm(&tm) + frac;
}

int sync_health_read(struct journal *j, const char *journal_path, struct sync_health *ret)
{
	char *path = sync_state_path(journal_path), *lines[16], line[600];
	struct sync_health h = { .oldest_behind = -1, .last_success = -1 };
	sqlite3_stmt *st = NULL;
	const char *v;
	int64_t last_job;
	size_t n = 0;
	FILE *f;
	int rc, r;

	if (!path)
		return -ENOMEM;
	f = fopen(path, "re");
	free(path);
	if (!f) {
		*ret = h; /* no sync ever ran on this journal */
		return 0;
	}
	while (n < 16 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		lines[n] = strdup(line);
		if (lines[n])
			n++;
	}
	fclose(f);
	h.known = true;
	v = state_get(lines, n, "state");
	h.up = v && strcmp(v, "up") == 0;
	/* sync rewrites its state after every batch it copied and as a
	 * heartbeat while up; once down, down_since is when it last got through. */
	h.last_success = state_time(state_get(lines, n, h.up ? "updated" : "down_since"));
	last_job = (v = state_get(lines, n, "last_job")) ? strtoll(v, NULL, 10) : 0;
	r = count_after(j, "jobs", "job", last_job, &h.behind_jobs);
	if (r >= 0)
		r = count_after(j, "hooks", "rowid",
				(v = state_get(lines, n, "last_hook")) ? strtoll(v, NULL, 10) : 0,
				&h.behind_hooks);
	if (r >= 0)
		r = count_after(j, "forgotten", "rowid",
				(v = state_get(lines, n, "last_forgotten")) ? strtoll(v, NULL, 10)
									     : 0,
				&h.behind_forgotten);
	if (r >= 0) {
		rc = sqlite3_prepare_v2(j->db, "SELECT " JOURNAL_UNIX_TIME("min(started)")
					" FROM jobs WHERE job > ?1", -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(st, 1, last_job);
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (sqlite3_column_type(st, 0) != SQLITE_NULL)
				h.oldest_behind = sqlite3_column_double(st, 0);
			rc = SQLITE_OK;
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_OK)
			r = journal_sqlfail(j, rc, "reading the oldest job not synced");
	}
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	if (r >= 0)
		*ret = h;
	return r < 0 ? r : 0;
}
