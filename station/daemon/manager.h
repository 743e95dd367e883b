/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's shared state, as systemd-udevd's manager: the station (its
 * configuration, journal, udev monitor, cards, hooks and outbox) and one
 * card per medium in a disk, plus the cards whose medium left while their
 * worker still runs (freed once it is reaped): the list is bounded by the
 * disks present, never by history. What each part does lives in
 * its own file: card.c (a card's job, from queue to recorded end),
 * manager.c (the queue and the workers), udev-scan.c (events into cards),
 * policy.c (what a card gets), probe.c (bmaps read outside the loop),
 * hook.c, outbox.c, log.c, station.c (the loop).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "device.h"
#include "journal.h"

#define JOURNAL_RETRY 1.0 /* seconds between retries of a failed write */
#define JOURNAL_NAG 30.0  /* seconds between reminders while it fails */

/* CARD_PROBING: waiting for its profile's bmap to be read (probe.c) before
 * it is queued, or again before its job starts when the bmap changed. */
enum card_state { CARD_IDLE, CARD_PROBING, CARD_WAITING, CARD_RUNNING, CARD_DONE };

/* One medium in a disk (syspath + DISKSEQ) and its job. */
struct card {
	struct card *next;
	struct device dev;
	char *slot_name; /* the configured port it sits in, if any */
	enum card_state state;
	uint64_t queue_seq;
	double queued_at; /* when it joined the queue (monotonic) */
	/* Its medium left (pulled, or swapped for another) while its worker
	 * ran: no longer its disk's card (card_find() skips it, a new medium
	 * there is a new card); freed once the worker is reaped. */
	bool left;

	/* the profile's settings, copied: a reload may free the profile */
	char *profile, *image, *bmap;
	enum verify_mode verify;
	bool discard, once_per_serial;
	uint64_t image_size;
	char *bmap_sha256;
	struct sig_policy sig; /* signature, keyring, fingerprints */
	char *signer;          /* the bmap's valid signer (fingerprint), or NULL */

	/* the job row could not be written yet (journal full or locked) */
	double start_failed_at, start_nag_at;

	/* the running job */
	int64_t job;
	pid_t pid;
	int pipe_fd;
	double started, kill_at;
	unsigned timeout; /* job_timeout when the job started: a reload does not touch it */
	bool removed, timed_out, stopping, reaped;
	int wstatus;
	char line[4096];
	size_t line_len;
	char phase[16];
	uint64_t done, total;
	char *error, *content_before, *content_after;
	bool has_outcome;
	enum outcome outcome;
	uint64_t bytes;
	char data_sha256[65], readback_sha256[65];
	double live_at;	    /* last live-state write */
	uint64_t live_done; /* and the progress it had */
};

struct hook_run;
struct pending;
struct probe;
struct bmap_facts;

struct station {
	struct station_config *cfg;
	struct journal *journal;
	struct udev *udev;
	struct udev_monitor *mon;
	int sfd;
	struct card *cards;
	unsigned running;
	uint64_t next_seq;
	bool stopping;
	double stop_deadline;
	struct hook_run *hooks;
	struct probe *probes;
	struct pending *pending, **pending_tail;
	int outbox_fd;	    /* JOURNAL.outbox: kept job ends (outbox-file.c) */
	char *outbox_path;
	bool outbox_dirty;  /* it holds lines that may no longer wait */
	double pending_retry_at, pending_nag_at;
	bool interrupt_done; /* rows left running by an earlier run are closed */
	double live_failing, live_nag_at;
	double start_retry_at;
	/* the image cache's prefill (cache-prefill.c): its process (and group
	 * leader), 0 when none runs */
	pid_t prefill_pid;
	double prefill_started, prefill_kill_at;
	bool prefill_again; /* a reload came while it was ending: start anew */
};

/* log.c */
__attribute__((format(printf, 2, 3))) void log_at(int prio, const char *fmt, ...);
#define log_err(...) log_at(3, __VA_ARGS__)
#define log_warn(...) log_at(4, __VA_ARGS__)
#define log_notice(...) log_at(5, __VA_ARGS__)
#define log_info(...) log_at(6, __VA_ARGS__)
/* A line about card @c: "DEVNODE (serial S, slot N): ...", with the card's
 * SERIAL, DEVNODE, SLOT, PROFILE, JOB, OUTCOME as journal fields. */
__attribute__((format(printf, 3, 4))) void log_card(int prio, const struct card *c,
						     const char *fmt, ...);
const char *card_label(const struct card *c, char *buf, size_t len);

/* card.c */
struct card *card_new(struct station *st);
void card_free(struct card *c);
struct card *card_find(struct station *st, const char *syspath);
void card_drop(struct station *st, struct card *c);
void card_gone(struct station *st, struct card *c, const char *how);
bool card_disk_busy(const struct station *st, const struct card *c);
void card_reset_job(struct card *c);
void card_fill_start(const struct station *st, const struct card *c, struct job_start *js);
void card_set_outcome(struct card *c, enum outcome o);
void card_record_once(struct station *st, struct card *c, enum outcome o, const char *why);
int card_check_image(struct station *st, struct card *c);
void card_probed(struct station *st);
void card_enqueue(struct station *st, struct card *c);
void card_live_update(struct station *st, struct card *c, bool force);
bool card_read_pipe(struct station *st, struct card *c);
void card_finish_job(struct station *st, struct card *c);

/* manager.c */
int manager_start_worker(struct station *st, struct card *c);
void manager_schedule(struct station *st);
bool manager_interrupt_earlier(struct station *st);
void manager_reap(struct station *st);
void manager_stop_worker(struct card *c);
void manager_check_timers(struct station *st);

/* cache-prefill.c */
/* Forks the prefill for st->cfg's profiles (station.cache_prefill), or
 * marks it to start once the one ending is reaped. */
void prefill_start(struct station *st);
/* @group (shutdown): the prefill and its filler get SIGTERM, SIGKILL after
 * a grace; else (reload) only the prefill stops, a fill under way goes on. */
void prefill_stop(struct station *st, bool group);
bool prefill_reaped(struct station *st, pid_t pid, int status);
bool prefill_running(const struct station *st);
void prefill_check_timers(struct station *st);

/* udev-scan.c */
void udev_scan_device(struct station *st, struct udev_device *u, const char *action);
void udev_scan_enumerate(struct station *st);
void udev_scan_drain(struct station *st);

/* probe.c */
int probe_bmap_facts(void *station, const char *image, const char *bmap,
		     const struct sig_policy *sig,
		     struct bmap_facts *ret, char *why,
		     size_t why_len);
bool probe_reaped(struct station *st, pid_t pid, int status);
void probe_check_timers(struct station *st);
void probe_free_all(struct station *st);

/* hook.c */
void hooks_run(struct station *st, const struct card *c, enum hook_event ev, const char *outcome,
	       int64_t job);
/* on_success or on_failure for the outcome @c was recorded with. */
void hooks_run_end(struct station *st, const struct card *c);
/* A finished hook's record (strings owned by the hook until hook_done()),
 * or NULL when @pid is not a hook. */
struct hook_run *hook_reaped(struct station *st, pid_t pid, int status, struct hook_record *ret);
void hook_done(struct station *st, struct hook_run *h);
void hooks_check_timers(struct station *st);

/* outbox.c */
int outbox_job_end(struct station *st, int64_t job, const struct job_end *e, const char *what);
int outbox_job_once(struct station *st, const struct job_start *js, const struct job_end *e,
		    int64_t *ret_job, const char *what);
void outbox_hook(struct station *st, const struct hook_record *h, const char *what);
void outbox_flush(struct station *st, bool now);
void outbox_give_up(struct station *st);
int outbox_open(struct station *st);
void outbox_close(struct station *st);
bool outbox_has_ends(const struct station *st);
