/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `bmap-station sync`: the journal's job rows, hook records and forgotten
 * serials copied into a central PostgreSQL, continuously and idempotently,
 * in a process of its own (the station never waits for the network).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct station_config;

/* `bmap-station sync [--config FILE | --db FILE] [--pg CONNINFO]
 * [--station NAME] [--once]`, @argv[0] being "sync". An exit status. */
int sync_command(int argc, char **argv);

/*
 * @conninfo (a libpq key=value string or URI) as it may be shown: its
 * settings as key=value without any password. -EINVAL and a message in
 * *ret_error (without the password either) when libpq cannot parse it.
 */
int sync_conninfo_shown(const char *conninfo, char **ret_shown, char **ret_error);

/* The state file sync keeps beside the journal (JOURNAL.sync), which
 * `status` reads without asking the network. */
char *sync_state_path(const char *journal_path);

/* For `status`: one line saying how far behind the central copy is, from
 * JOURNAL.sync and the journal; nothing when no sync ever ran on it. */
struct journal;
int sync_status_print(struct journal *j, const char *journal_path, FILE *out);

/* For /metrics: sync's health from JOURNAL.sync and the journal. known is
 * false when no sync ever ran on it; times are Unix seconds, -1 unknown. */
struct sync_health {
	bool known, up;
	double last_success;  /* the last batch that got through (or heartbeat) */
	double oldest_behind; /* start of the oldest job not in the central copy */
	int64_t behind_jobs, behind_hooks, behind_forgotten;
};
int sync_health_read(struct journal *j, const char *journal_path, struct sync_health *ret);

/*
 * For `report`, `history` and `report --summary --pg`: the central copy's
 * jobs of @station (NULL: every station, at most 10) that match @flt (NULL:
 * all), as a journal that the report functions read like several stations'
 * journals. *ret_dir is the temporary folder holding it: give both to
 * central_close(). -errno and a message without the password on failure.
 */
struct report_filter;
int central_open(const char *conninfo, const char *station, const struct report_filter *flt,
		 struct journal **ret, char **ret_dir, char **ret_error);
/* The same over a connection of the caller's (left open), made as it
 * chooses (serve's: read-only, short timeouts). */
struct pg_conn;
int central_open_pg(struct pg_conn *pg, const char *conninfo, const char *station,
		    const struct report_filter *flt, struct journal **ret, char **ret_dir,
		    char **ret_error);
void central_close(struct journal *j, char *dir);
