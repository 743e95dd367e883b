/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The journal's live table: the state of each card the running station
 * knows, rewritten by the daemon as its jobs progress and read by `status`
 * and `watch`. Not an audit record: it may lag, and it is never synced.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "journal-internal.h"
#include "table.h"
#include "util.h"

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

int journal_status(struct journal *j, bool json, FILE *out)
{
	static const char sql_table[] =
		"SELECT coalesce(slot, '-'), coalesce(devnode, '-'), coalesce(serial, '-'),"
		" coalesce(profile, '-'),"
		/* A URL's image coming into the cache, which the card follows. */
		" CASE WHEN state = 'downloading' THEN printf('downloading %d MiB of %s', done >> 20,"
		"   CASE WHEN total > 0 THEN printf('%d MiB', (total + 1048575) >> 20) ELSE '?' END)"
		"   ELSE state END,"
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
	/* Minimum widths keep the columns in place from one call to the next
	 * (a status polled every second); device strings are cut at 63. */
	static const struct table_col cols[] = {
		{ "SLOT", 63, false, 8 },  { "DEVICE", 63, false, 14 }, { "SERIAL", 63, false, 20 },
		{ "PROFILE", 63, false, 14 }, { "STATE", 63, false, 10 }, { "%", 63, true, 4 },
		{ "MB/S", 63, true, 7 },   { "LEFT", 63, true, 6 },    { "LAST", 63, false, 0 },
	};
	struct table_value v[ARRAY_SIZE(cols)];
	struct table_json js;
	struct table *t = NULL;
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(j->db, json ? sql_json : sql_table, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return journal_sqlfail(j, rc, "reading the live state");
	if (json)
		table_json_begin(&js, out, "  ");
	else if (table_new(cols, ARRAY_SIZE(cols), " ", &t) < 0)
		r = -ENOMEM;
	while (r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (json) {
			table_json_add(&js, (const char *)sqlite3_column_text(st, 0),
				       (size_t)sqlite3_column_bytes(st, 0));
			continue;
		}
		for (size_t i = 0; i < ARRAY_SIZE(cols); i++)
			v[i] = (struct table_value){ sqlite3_column_text(st, (int)i),
						     (size_t)sqlite3_column_bytes(st, (int)i), false };
		r = table_add_row(t, v);
	}
	if (r < 0)
		r = journal_fail(j, -ENOMEM, "formatting the live state");
	else if (rc != SQLITE_DONE)
		r = journal_sqlfail(j, rc, "reading the live state");
	else if (json)
		table_json_end(&js);
	else
		table_print(t, out);
	table_free(t);
	sqlite3_finalize(st);
	return r;
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
