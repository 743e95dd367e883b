/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The journal: one SQLite file (WAL) recording every job of the station:
 * what was written onto which card, when, and how it ended. Only the daemon
 * writes it; reports read it (report.h). journal.c opens and migrates it,
 * journal-jobs.c and journal-live.c own its tables.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "outcome.h"

/* Everything known when a job starts (or is refused/ignored). NULL = unknown. */
struct job_start {
	const char *station;
	const char *slot;
	const char *devnode;
	const char *syspath;
	uint64_t diskseq;
	const char *serial;
	const char *reader_serial; /* a USB reader's own serial when the card's is known */
	const char *vendor;
	const char *model;
	const char *bus;
	const char *id_path;
	uint64_t size;
	bool removable;
	const char *mmc_cid, *mmc_manfid, *mmc_oemid, *mmc_name, *mmc_date; /* native MMC */
	const char *content_before; /* e.g. "gpt 1234-..." from libblkid, or "none" */
	const char *profile;
	const char *image;
	uint64_t image_size;
	const char *bmap;
	const char *bmap_sha256;
	const char *signer; /* the bmap's valid signer's fingerprint, NULL when unsigned */
};

struct job_end {
	enum outcome outcome;
	const char *error;     /* NULL on success */
	uint64_t bytes_written;
	const char *data_sha256;     /* hex */
	const char *readback_sha256; /* hex */
	const char *content_after;
	/* What the disk held before writing, when known only once the worker
	 * opened it (NULL keeps what the start row said). */
	const char *content_before;
	/* When the job really ended, for an end recorded late (the journal was
	 * full or locked): a journal_timestamp() and now_monotonic(). NULL and
	 * 0 mean now. */
	const char *finished;
	double ended;
};

struct journal;

/* Opens (creating and migrating as needed) the journal at @path: WAL mode,
 * synchronous FULL, a busy timeout. @readonly for reports. Checked first:
 * a regular file (never a FIFO, whose open() would block), not empty,
 * ours, not newer, not damaged (PRAGMA quick_check; -EBADMSG). A journal
 * is created only where there is no file at all, never by a reader.
 * -errno and a malloc'd message naming the file on failure. */
int journal_open(const char *path, bool readonly, struct journal **ret, char **ret_error);
/*
 * For `run`: takes the journal's single-instance lock (PATH.lock, holding
 * the pid, kept until journal_close()) before anything else, then
 * journal_open()s it for writing. -EBUSY, with a message naming the pid
 * that holds it, when another station runs on this journal: nothing of the
 * journal is touched then.
 */
int journal_open_station(const char *path, struct journal **ret, char **ret_error);
/* Whether a station runs on @j's journal: 1 and its pid in *ret_pid (0 when
 * it cannot be read), 0 when none holds the journal, -errno when that
 * cannot be told (the lock file is not readable). */
int journal_station_pid(const struct journal *j, pid_t *ret_pid);
void journal_close(struct journal *j);
/* Once SQLite found the file damaged (a corrupt page), the message saying so
 * with the way out; NULL while it is not known to be. journal_open()
 * refuses a damaged file (PRAGMA quick_check); this is for damage found
 * later, which no retry repairs. */
const char *journal_damaged(const struct journal *j);
/* The last error's text (sqlite's message with context). */
const char *journal_error(const struct journal *j);
/* How long a write waits for another process's lock before failing with
 * -EBUSY (journal_open() sets 5 s). The daemon waits less and retries from
 * its main loop, so that a long lock does not freeze it. */
void journal_set_busy_timeout(struct journal *j, int ms);
/* Now, as the journal writes times: "2026-11-26T05:41:12.345Z". */
#define JOURNAL_TIMESTAMP_MAX 40
void journal_timestamp(char buf[static JOURNAL_TIMESTAMP_MAX]);

/* A running job row, written (durably) before the worker starts. */
int journal_job_start(struct journal *j, const struct job_start *s, int64_t *ret_job);
/* The job's outcome, durable when this returns. Started/finished times are
 * UTC ISO 8601 with milliseconds; duration and throughput are derived. */
int journal_job_end(struct journal *j, int64_t job, const struct job_end *e);
/* A job that never ran (refused or ignored): start and end in one row. */
int journal_job_once(struct journal *j, const struct job_start *s, const struct job_end *e,
		     int64_t *ret_job);
/* On start-up: jobs left running by a crash become interrupted. Returns how many. */
int journal_interrupt_running(struct journal *j, const char *error);

/* The outcome of the newest job for one insertion (syspath + DISKSEQ in this
 * boot: DISKSEQ restarts at every boot): 0 and *ret when there is one,
 * -ENOENT when there is none. The station uses it to leave alone, after a
 * restart, cards it has already dealt with. Each job row records the boot
 * (/proc/sys/kernel/random/boot_id, or the file BMAP_STATION_BOOT_ID_FILE
 * names). */
int journal_last_outcome(struct journal *j, const char *syspath, uint64_t diskseq,
			 enum outcome *ret);

/* What one hook did (table hooks). */
struct hook_record {
	int64_t job;         /* 0: none (e.g. on_remove of a card with no job) */
	const char *event;   /* "on_success", ... */
	const char *command; /* argv as run, shell-quoted for display */
	double duration;
	int exit_status;     /* when it exited */
	int signal;          /* when it was killed (0: not) */
	bool timed_out;
	const char *output;  /* stdout and stderr, possibly cut */
	size_t output_len;
};
int journal_hook_record(struct journal *j, const struct hook_record *h);

/* The live state of one card (table live), for status and watch. */
struct live_row {
	const char *syspath, *station, *slot, *devnode, *serial, *profile;
	const char *state; /* waiting, writing, verifying, done, failed, refused, removed */
	int64_t job;
	uint64_t done, total;
	double rate; /* bytes/s */
	const char *last_outcome, *error;
};
int journal_live_set(struct journal *j, const struct live_row *l);
/* Forgets one card's live row (NULL: all of them, when the station starts). */
int journal_live_clear(struct journal *j, const char *syspath);
/* Calls @fn for each live row (strings valid during the call only). */
int journal_live_foreach(struct journal *j, int (*fn)(void *userdata, const struct live_row *l),
			 void *userdata);
/* 'bmap-station status': the live rows as a table or a JSON array. */
int journal_status(struct journal *j, bool json, FILE *out);

/* For once_per_serial profiles: the newest success of @serial with @profile
 * since the serial was last forgotten. 0 and *ret_job, or -ENOENT. */
int journal_serial_passed(struct journal *j, const char *serial, const char *profile,
			  int64_t *ret_job);
/* 'bmap-station forget SERIAL': its earlier successes no longer count. The
 * jobs themselves are kept. */
int journal_forget(struct journal *j, const char *serial);
