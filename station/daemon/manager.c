/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The queue and the workers, as systemd-udevd's manager: cards waiting in
 * arrival order get a worker (up to max_workers), each job's row is
 * committed before its worker is forked, workers are reaped (hooks too),
 * stopped (SIGTERM) on removal (a pull or a swap, also as sysfs tells it:
 * size 0, a new DISKSEQ), job_timeout or shutdown, and killed (SIGKILL)
 * when they have not stopped KILL_GRACE seconds later.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "manager.h"
#include "policy.h"
#include "sanitize.h"
#include "util.h"
#include "worker.h"

#define KILL_GRACE 5.0 /* seconds between SIGTERM and SIGKILL */

/* A job whose worker could not even start. */
static void end_job_early(struct station *st, struct card *c, const struct job_end *je)
{
	char label[512], what[640];

	snprintf(what, sizeof(what), "%s: job %" PRId64 " %s", card_label(c, label, sizeof(label)),
		 c->job, outcome_name(je->outcome));
	card_set_outcome(c, je->outcome);
	log_card(4, c, "job %" PRId64 " %s: %s", c->job, outcome_name(je->outcome), je->error);
	outbox_job_end(st, c->job, je, what);
	card_set_outcome(c, je->outcome);
	c->state = CARD_DONE;
	hooks_run_end(st, c);
}

int manager_start_worker(struct station *st, struct card *c)
{
	struct job_start js;
	struct worker_job wj = {
	    .devnode = c->dev.devnode,
	    .diskseq = c->dev.diskseq,
	    .image = c->image,
	    .bmap = c->bmap,
	    .verify = c->verify,
	    .cache_dir = st->cfg->cache_dir,
	    .cache_max_size = st->cfg->cache_max_size,
	    .discard = c->discard,
	};
	int fds[2];
	pid_t pid, parent;

	/* The profile's files as they are now: a card that waited in the queue
	 * gets what they hold when its job starts, and its row says so; the
	 * worker checks the bmap again once it has loaded it. */
	if (card_check_image(st, c) <= 0)
		return 0; /* recorded, or its bmap changed and is being read */
	/* Once per serial, asked again now: a card with the same serial may
	 * have passed while this one waited. */
	if (c->once_per_serial) {
		struct profile p = {.name = c->profile, .once_per_serial = true};
		char why[512];

		if (policy_once_per_serial(&p, &c->dev, st->journal, why, sizeof(why)) < 0) {
			card_record_once(st, c, OUTCOME_REFUSED, why);
			hooks_run_end(st, c);
			return 0;
		}
	}
	wj.bmap = c->bmap;
	wj.bmap_sha256 = c->bmap_sha256;
	wj.sig = &c->sig;
	wj.signer = c->signer;
	card_fill_start(st, c, &js);
	/* The row comes first, committed: a job never runs unrecorded. */
	if (journal_job_start(st->journal, &js, &c->job) < 0) {
		double now = now_monotonic();

		if (!c->start_failed_at || now >= c->start_nag_at) {
			log_card(3, c,
				 "cannot record the job, so the card is NOT written; "
				 "retrying every %.0f s: %s",
				 JOURNAL_RETRY, journal_error(st->journal));
			c->start_nag_at = now + JOURNAL_NAG;
		}
		if (!c->start_failed_at)
			c->start_failed_at = now;
		return -EIO;
	}
	if (c->start_failed_at) {
		log_card(6, c, "job %" PRId64 " recorded after waiting %.1f s for the journal",
			 c->job, now_monotonic() - c->start_failed_at);
		c->start_failed_at = 0;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		struct job_end je = {.outcome = OUTCOME_FAILED, .error = "cannot create a pipe"};
		int r = -errno;

		end_job_early(st, c, &je);
		return r;
	}
	fflush(stderr);
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		struct job_end je = {.outcome = OUTCOME_FAILED, .error = "cannot fork a worker"};
		int r = -errno;

		close(fds[0]);
		close(fds[1]);
		end_job_early(st, c, &je);
		return r;
	}
	if (pid == 0) {
		/* Nobody would record what a worker does once the station is
		 * gone (even killed with SIGKILL): it dies with it, and the
		 * next start marks its job interrupted. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(EXIT_FAILURE);
		/* The other workers' pipes: their end of file is theirs alone. */
		for (struct card *o = st->cards; o; o = o->next)
			if (o->pipe_fd >= 0)
				close(o->pipe_fd);
		close(fds[0]);
		_exit(worker_run(&wj, fds[1]));
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	c->pid = pid;
	c->pipe_fd = fds[0];
	c->started = now_monotonic();
	c->timeout = st->cfg->job_timeout;
	c->state = CARD_RUNNING;
	snprintf(c->phase, sizeof(c->phase), "starting");
	st->running++;
	log_card(6, c, "profile %s: job %" PRId64 " started (worker %d)", c->profile, c->job,
		 (int)pid);
	hooks_run(st, c, HOOK_START, NULL, c->job);
	card_live_update(st, c, true);
	return 0;
}

/* Rows an earlier run left 'running' (it was killed, or the power went)
 * are closed before this run starts a job of its own. */
bool manager_interrupt_earlier(struct station *st)
{
	int n;

	if (st->interrupt_done)
		return true;
	/* Ends kept by an earlier run (outbox file) land first: their jobs
	 * ended, they were not interrupted. */
	outbox_flush(st, true);
	if (outbox_has_ends(st))
		return false;
	n = journal_interrupt_running(st->journal, "the station stopped during the job");
	if (n < 0) {
		log_err("cannot close the jobs an earlier run left running; no card is written "
			"until that works (retrying every %.0f s): %s",
			JOURNAL_RETRY, journal_error(st->journal));
		return false;
	}
	if (n > 0)
		log_notice("%d job(s) left running by an earlier run marked interrupted", n);
	st->interrupt_done = true;
	return true;
}

/* A card whose serial is being written right now with the same
 * once_per_serial profile waits: if that job passes, this one is refused. */
static bool serial_held(const struct station *st, const struct card *c)
{
	if (!c->once_per_serial || !c->dev.serial)
		return false;
	for (const struct card *o = st->cards; o; o = o->next)
		if (o != c && o->state == CARD_RUNNING && o->once_per_serial && o->dev.serial &&
		    strcmp(o->dev.serial, c->dev.serial) == 0 &&
		    strcmp(o->profile, c->profile) == 0)
			return true;
	return false;
}

void manager_schedule(struct station *st)
{
	double now = now_monotonic();

	/* After a failed write, wait a little: each try may wait for a lock. */
	if (now < st->start_retry_at)
		return;
	st->start_retry_at = 0;
	while (!st->stopping && st->running < st->cfg->max_workers) {
		struct card *next = NULL;

		for (struct card *c = st->cards; c; c = c->next)
			if (c->state == CARD_WAITING && (!next || c->queue_seq < next->queue_seq) &&
			    !serial_held(st, c) && !card_disk_busy(st, c))
				next = c;
		if (!next)
			return;
		if (!manager_interrupt_earlier(st) || manager_start_worker(st, next) == -EIO) {
			st->start_retry_at = now + JOURNAL_RETRY;
			return;
		}
	}
}

void manager_reap(struct station *st)
{
	for (;;) {
		struct hook_record rec;
		struct hook_run *h;
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			return;
		if ((h = hook_reaped(st, pid, status, &rec))) {
			char what[700], command[512];

			snprintf(what, sizeof(what), "the %s hook of job %" PRId64 " (%s)",
				 rec.event, rec.job,
				 printable(rec.command, command, sizeof(command)));
			outbox_hook(st, &rec, what);
			hook_done(st, h);
			continue;
		}
		if (probe_reaped(st, pid, status))
			continue;
		if (prefill_reaped(st, pid, status))
			continue;
		for (struct card *c = st->cards; c; c = c->next)
			if (c->state == CARD_RUNNING && c->pid == pid) {
				c->wstatus = status;
				card_finish_job(st, c);
				/* Its medium left during the job: nothing stays. */
				if (c->left)
					card_drop(st, c);
				break;
			}
	}
}

void manager_stop_worker(struct card *c)
{
	if (c->pid > 0 && c->kill_at == 0) {
		kill(c->pid, SIGTERM);
		c->kill_at = now_monotonic() + KILL_GRACE;
	}
}

/* A number from the disk's sysfs folder: -ENOENT without that file (the
 * disk is gone, or an old kernel has no such attribute), 0 when it cannot
 * be read. */
static int64_t disk_attr(const struct card *c, const char *name)
{
	char path[PATH_MAX], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", c->dev.syspath, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return (int64_t)(strtoull(buf, NULL, 10) & INT64_MAX);
}

/* Whether the medium is still there: sysfs size, read directly. udevd
 * holds back events for a disk we keep locked (flock) until we let go, so
 * a card pulled mid-job shows up here first. */
static bool medium_gone(const struct card *c)
{
	int64_t size = disk_attr(c, "size");

	return size == -ENOENT || size == 0;
}

/* Whether another medium is in the disk (a card swapped mid-job): its
 * DISKSEQ, which the kernel raises on every media change, as it is now.
 * The swap's own event waits, like a pull's, until our worker lets go. */
static bool medium_changed(const struct card *c, uint64_t *ret_now)
{
	int64_t seq = disk_attr(c, "diskseq");

	if (seq <= 0 || !c->dev.diskseq || (uint64_t)seq == c->dev.diskseq)
		return false;
	*ret_now = (uint64_t)seq;
	return true;
}

void manager_check_timers(struct station *st)
{
	double now = now_monotonic();
	uint64_t seq;

	hooks_check_timers(st);
	probe_check_timers(st);
	prefill_check_timers(st);

	for (struct card *c = st->cards; c; c = c->next) {
		if (c->state != CARD_RUNNING)
			continue;
		/* Progress lines are written at most twice a second: the last one
		 * before a pause gets out here. */
		card_live_update(st, c, false);
		if (!c->removed && medium_gone(c)) {
			c->removed = true;
			manager_stop_worker(c);
			log_card(5, c, "medium gone during job %" PRId64 ", stopping its worker",
				 c->job);
		}
		if (!c->removed && medium_changed(c, &seq)) {
			c->removed = true;
			manager_stop_worker(c);
			log_card(5, c,
				 "another medium in the disk during job %" PRId64
				 " (DISKSEQ %" PRIu64 ", now %" PRIu64 "), stopping its worker",
				 c->job, c->dev.diskseq, seq);
		}
		/* Over job_timeout: asked to stop first (SIGTERM), so that the
		 * worker syncs and closes the card and reports; killed only when
		 * it has not ended after KILL_GRACE. The cache's filler is not
		 * the worker's: it goes on for the other cards. */
		if (!c->timed_out && c->timeout && now - c->started > c->timeout) {
			c->timed_out = true;
			log_card(5, c,
				 "job %" PRId64 " over job_timeout (%u s): stopping its worker "
				 "(SIGTERM, SIGKILL after %.0f s)",
				 c->job, c->timeout, KILL_GRACE);
			manager_stop_worker(c);
		}
		if (c->kill_at && now > c->kill_at) {
			kill(c->pid, SIGKILL);
			c->kill_at = 0;
		}
	}
}
