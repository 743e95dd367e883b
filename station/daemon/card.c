/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One card: a medium in a disk (syspath + DISKSEQ), from the policy's
 * decision through the queue, its worker's progress lines and the live
 * table, to its recorded end and hooks, and its going: a card whose medium
 * left is freed (once its worker is reaped). When it leaves is udev-scan.c's
 * to say; the queue and the workers themselves are manager.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "manager.h"
#include "policy.h"
#include "sanitize.h"
#include "util.h"
#include "worker.h"

struct card *card_new(struct station *st)
{
	struct card *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->pipe_fd = -1;
	strcpy(c->data_sha256, "-");
	strcpy(c->readback_sha256, "-");
	c->next = st->cards;
	st->cards = c;
	return c;
}

void card_reset_job(struct card *c)
{
	free(c->error);
	free(c->content_before);
	free(c->content_after);
	free(c->profile);
	free(c->image);
	free(c->bmap);
	free(c->bmap_sha256);
	free(c->signer);
	sig_policy_clear(&c->sig);
	c->error = c->content_before = c->content_after = NULL;
	c->profile = c->image = c->bmap = c->bmap_sha256 = c->signer = NULL;
	c->job = 0;
	c->start_failed_at = c->start_nag_at = 0;
	c->pid = 0;
	c->kill_at = 0;
	c->pipe_fd = -1;
	c->removed = c->timed_out = c->stopping = c->reaped = false;
	c->line_len = 0;
	c->done = c->total = 0;
	c->has_outcome = false;
	c->bytes = 0;
	strcpy(c->data_sha256, "-");
	strcpy(c->readback_sha256, "-");
}

void card_free(struct card *c)
{
	card_reset_job(c);
	device_clear(&c->dev);
	free(c->slot_name);
	free(c);
}

/* The card of the medium now in the disk at @syspath. Linear, but in the
 * cards present: those that left are freed (card_gone()). */
struct card *card_find(struct station *st, const char *syspath)
{
	for (struct card *c = st->cards; c; c = c->next)
		if (!c->left && strcmp(c->dev.syspath, syspath) == 0)
			return c;
	return NULL;
}

void card_drop(struct station *st, struct card *c)
{
	for (struct card **p = &st->cards; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	card_free(c);
}

/*
 * The medium of @c left its disk, @how: "removed" (pulled) or swapped for
 * another (a new DISKSEQ, which may come before any event of the old one
 * going). A waiting card gets its row, 'removed' with the time; a running
 * job is stopped and ends 'removed', and its card is freed once the worker
 * is reaped; any other card is freed now. A new medium in the disk is a new
 * card. In the live view a card that went is no longer shown, but for one
 * whose job its going cut short: 'removed' stays until the disk gets
 * another medium or leaves itself (udev-scan.c).
 */
void card_gone(struct station *st, struct card *c, const char *how)
{
	char why[256];

	if (c->state == CARD_RUNNING) {
		c->removed = true;
		c->left = true;
		manager_stop_worker(c);
		log_card(6, c, "%s during job %" PRId64 ", stopping its worker", how, c->job);
		return;
	}
	if (c->state == CARD_WAITING || c->state == CARD_PROBING) {
		snprintf(why, sizeof(why),
			 "the card was %s before its job started (after %.1f s in the queue)", how,
			 now_monotonic() - c->queued_at);
		card_record_once(st, c, OUTCOME_REMOVED, why);
		card_live_update(st, c, true);
		hooks_run_end(st, c);
	}
	if (c->dev.tagged && !(c->has_outcome && c->outcome == OUTCOME_REMOVED))
		journal_live_clear(st->journal, c->dev.syspath);
	card_drop(st, c);
}

/* A job may not start while the worker of its disk's previous medium still
 * holds the disk (it would be refused as busy): it waits for its reaping. */
bool card_disk_busy(const struct station *st, const struct card *c)
{
	for (const struct card *o = st->cards; o; o = o->next)
		if (o != c && o->left && strcmp(o->dev.syspath, c->dev.syspath) == 0)
			return true;
	return false;
}

void card_fill_start(const struct station *st, const struct card *c, struct job_start *js)
{
	memset(js, 0, sizeof(*js));
	js->station = st->cfg->name;
	js->slot = c->slot_name;
	js->devnode = c->dev.devnode;
	js->syspath = c->dev.syspath;
	js->diskseq = c->dev.diskseq;
	js->serial = c->dev.serial;
	js->reader_serial = c->dev.reader_serial;
	js->vendor = c->dev.vendor;
	js->model = c->dev.model;
	js->bus = c->dev.bus;
	js->id_path = c->dev.id_path;
	js->size = c->dev.size;
	js->removable = c->dev.removable;
	js->mmc_cid = c->dev.mmc_cid;
	js->mmc_manfid = c->dev.mmc_manfid;
	js->mmc_oemid = c->dev.mmc_oemid;
	js->mmc_name = c->dev.mmc_name;
	js->mmc_date = c->dev.mmc_date;
	js->profile = c->profile;
	js->image = c->image;
	js->image_size = c->image_size;
	js->bmap = c->bmap;
	js->bmap_sha256 = c->bmap_sha256;
	js->signer = c->signer;
}

void card_set_outcome(struct card *c, enum outcome o)
{
	c->outcome = o;
	c->has_outcome = true;
}

/* A card that will not be written: one row, start and end at once. */
void card_record_once(struct station *st, struct card *c, enum outcome o, const char *why)
{
	struct job_start js;
	struct job_end je = {.outcome = o, .error = why};
	char label[512], what[1024];
	int64_t job;
	int r;

	card_fill_start(st, c, &js);
	snprintf(what, sizeof(what), "%s: %s (%s)", card_label(c, label, sizeof(label)),
		 outcome_name(o), why);
	card_set_outcome(c, o);
	c->state = CARD_DONE;
	r = outbox_job_once(st, &js, &je, &job, what);
	if (r == -EINVAL)
		log_err("%s: not recorded: %s", what, journal_error(st->journal));
	if (r < 0)
		return; /* kept for later, said in the log */
	log_card(6, c, "%s (job %" PRId64 "): %s", outcome_name(o), job, why);
	c->job = job;
}

/* Takes what the policy found out about the profile's image. */
static int card_take_image(struct card *c, struct policy_decision *d)
{
	c->image_size = d->image_size;
	free(c->bmap_sha256);
	c->bmap_sha256 = NULL;
	free(c->signer);
	c->signer = NULL;
	if (d->signer[0] && !(c->signer = strdup(d->signer)))
		return -ENOMEM;
	if (d->bmap) {
		if (!(c->bmap_sha256 = strdup(d->bmap_sha256)))
			return -ENOMEM;
		if (!c->bmap) {
			c->bmap = d->bmap;
			d->bmap = NULL;
		}
	}
	return 0;
}

/*
 * The profile's image as it is now, for this card: 1 when it fits, 0 when
 * the card was recorded failed (image or bmap unreadable) or refused (too
 * small), -EAGAIN while its bmap is being read (the card is CARD_PROBING).
 */
int card_check_image(struct station *st, struct card *c)
{
	/* The card's own copies: a reload may have freed the profile. */
	struct profile p = {.name = c->profile, .image = c->image, .bmap = c->bmap, .sig = c->sig};
	struct policy_decision d = {0};
	int r = 1;

	policy_image(&p, &c->dev, probe_bmap_facts, st, &d);
	if (d.verdict == POLICY_QUEUE && card_take_image(c, &d) < 0) {
		d.verdict = POLICY_FAIL;
		snprintf(d.why, sizeof(d.why), "out of memory");
	}
	if (d.verdict == POLICY_WAIT) {
		c->state = CARD_PROBING;
		r = -EAGAIN;
	} else if (d.verdict != POLICY_QUEUE) {
		card_record_once(st, c, policy_outcome(d.verdict), d.why);
		hooks_run_end(st, c);
		r = 0;
	}
	policy_decision_clear(&d);
	return r;
}

/* A probe ended: the cards that waited for a bmap go on, in their order. */
void card_probed(struct station *st)
{
	for (struct card *c = st->cards; c; c = c->next) {
		if (c->state != CARD_PROBING)
			continue;
		switch (card_check_image(st, c)) {
		case 1:
			c->state = CARD_WAITING;
			break;
		case 0: /* recorded, its on_failure run */
			card_live_update(st, c, true);
			break;
		}
	}
}

/* A new medium: what the policy says, recorded, or the card queued. */
void card_enqueue(struct station *st, struct card *c)
{
	struct policy_decision d;
	const struct profile *p;

	card_reset_job(c);
	policy_decide(st->cfg, &c->dev, c->slot_name, st->journal, probe_bmap_facts, st, &d);
	p = d.profile;
	if (p) {
		/* Its row names the profile, also when the card is refused. */
		c->profile = strdup(p->name);
		c->image = strdup(p->image);
		c->bmap = p->bmap ? strdup(p->bmap) : NULL;
		c->verify = p->verify;
		c->discard = p->discard;
		c->once_per_serial = p->once_per_serial;
		if (!c->profile || !c->image || (p->bmap && !c->bmap) ||
		    sig_policy_copy(&c->sig, &p->sig) < 0) {
			d.verdict = POLICY_FAIL;
			snprintf(d.why, sizeof(d.why), "out of memory");
		}
	}
	if (d.verdict == POLICY_QUEUE && card_take_image(c, &d) < 0) {
		d.verdict = POLICY_FAIL;
		snprintf(d.why, sizeof(d.why), "out of memory");
	}
	if (d.verdict == POLICY_WAIT) {
		/* In the queue's order from now: it goes on in card_probed(). */
		c->state = CARD_PROBING;
		c->queue_seq = ++st->next_seq;
		c->queued_at = now_monotonic();
	} else if (d.verdict != POLICY_QUEUE) {
		card_record_once(st, c, policy_outcome(d.verdict), d.why);
	} else {
		c->state = CARD_WAITING;
		c->queue_seq = ++st->next_seq;
		c->queued_at = now_monotonic();
	}
	policy_decision_clear(&d);
}

void card_live_update(struct station *st, struct card *c, bool force)
{
	struct live_row l = {0};
	double now = now_monotonic();
	enum outcome o;

	if (!c->dev.tagged || !c->dev.syspath)
		return;
	/* A card whose medium left keeps its row only while its disk is there
	 * and holds no other medium (whose card the row is then). */
	if (c->left && (card_find(st, c->dev.syspath) || access(c->dev.syspath, F_OK) < 0))
		return;
	if (!force && (now - c->live_at < 0.5 || c->done == c->live_done))
		return;
	c->live_at = now;
	c->live_done = c->done;
	l.syspath = c->dev.syspath;
	l.station = st->cfg->name;
	l.slot = c->slot_name;
	l.devnode = c->dev.devnode;
	l.serial = c->dev.serial;
	l.profile = c->profile;
	l.job = c->job;
	l.error = c->error;
	switch (c->state) {
	case CARD_PROBING:
	case CARD_WAITING:
		l.state = "waiting";
		break;
	case CARD_RUNNING:
		l.state = strcmp(c->phase, "verifying") == 0	  ? "verifying"
			  : strcmp(c->phase, "downloading") == 0 ? "downloading"
								  : "writing";
		l.done = c->done;
		l.total = c->total;
		if (now > c->started && c->done)
			l.rate = (double)c->done / (now - c->started);
		break;
	default:
		if (!c->has_outcome)
			return;
		o = c->outcome;
		l.last_outcome = outcome_name(o);
		l.state = o == OUTCOME_SUCCESS	 ? "done"
			  : o == OUTCOME_REFUSED ? "refused"
			  : o == OUTCOME_REMOVED ? "removed"
			  : o == OUTCOME_IGNORED ? "ignored"
						 : "failed";
		break;
	}
	if (journal_live_set(st->journal, &l) < 0) {
		/* Only a display: said once, then every JOURNAL_NAG seconds. */
		if (now >= st->live_nag_at) {
			log_warn("cannot update the live state (status, watch): %s",
				 journal_error(st->journal));
			st->live_nag_at = now + JOURNAL_NAG;
		}
		if (!st->live_failing)
			st->live_failing = now;
	} else if (st->live_failing) {
		log_info("the live state is written again (after %.1f s)", now - st->live_failing);
		st->live_failing = st->live_nag_at = 0;
	}
}

static void card_handle_line(struct station *st, struct card *c, char *line)
{
	struct worker_msg m;

	if (worker_parse_line(line, &m) < 0)
		return;
	switch (m.type) {
	case WMSG_PROGRESS:
		snprintf(c->phase, sizeof(c->phase), "%s", m.phase);
		c->done = m.done;
		c->total = m.total;
		card_live_update(st, c, false);
		break;
	case WMSG_CONTENT_BEFORE:
		free(c->content_before);
		c->content_before = strdup(m.text);
		break;
	case WMSG_CONTENT_AFTER:
		free(c->content_after);
		c->content_after = strdup(m.text);
		break;
	case WMSG_ERROR:
		free(c->error);
		c->error = strdup(m.text);
		break;
	case WMSG_NOTE:
		log_card(6, c, "%s", m.text);
		break;
	case WMSG_RESULT:
		c->has_outcome = outcome_from_name(m.outcome, &c->outcome) == 0;
		c->bytes = m.bytes;
		snprintf(c->data_sha256, sizeof(c->data_sha256), "%s", m.data_sha256);
		snprintf(c->readback_sha256, sizeof(c->readback_sha256), "%s", m.readback_sha256);
		break;
	}
}

/* Reads what the worker wrote; returns true at end of file. */
bool card_read_pipe(struct station *st, struct card *c)
{
	for (;;) {
		ssize_t n =
		    read(c->pipe_fd, c->line + c->line_len, sizeof(c->line) - 1 - c->line_len);
		char *start, *nl;

		if (n < 0)
			return errno != EAGAIN && errno != EINTR;
		if (n == 0)
			return true;
		c->line_len += (size_t)n;
		c->line[c->line_len] = '\0';
		start = c->line;
		while ((nl = strchr(start, '\n'))) {
			*nl = '\0';
			card_handle_line(st, c, start);
			start = nl + 1;
		}
		c->line_len -= (size_t)(start - c->line);
		memmove(c->line, start, c->line_len);
		if (c->line_len == sizeof(c->line) - 1)
			c->line_len = 0; /* an overlong line: drop it */
	}
}

void card_finish_job(struct station *st, struct card *c)
{
	struct job_end je = {0};
	enum outcome o = OUTCOME_FAILED;
	char why[256], label[512];
	const char *err;

	/* The worker's last lines (its error, its result) may still be in the
	 * pipe: read them before looking at c->error, which they replace. */
	if (c->pipe_fd >= 0) {
		card_read_pipe(st, c);
		close(c->pipe_fd);
		c->pipe_fd = -1;
	}
	err = c->error;
	if (c->removed) {
		o = OUTCOME_REMOVED;
		err = "the card was removed during the job";
	} else if (c->timed_out) {
		o = OUTCOME_TIMEOUT;
		snprintf(why, sizeof(why), "the job took longer than job_timeout (%u s)",
			 c->timeout);
		err = why;
	} else if (c->stopping) {
		o = OUTCOME_INTERRUPTED;
		err = "the station was stopped during the job";
	} else if (c->has_outcome) {
		o = c->outcome;
		/* as the worker said */
	} else {
		o = OUTCOME_FAILED;
		if (WIFSIGNALED(c->wstatus))
			snprintf(why, sizeof(why), "the worker died of signal %d",
				 WTERMSIG(c->wstatus));
		else
			snprintf(why, sizeof(why), "the worker ended (status %d) without a result",
				 WEXITSTATUS(c->wstatus));
		err = why;
	}
	je.outcome = o;
	je.error = o == OUTCOME_SUCCESS ? NULL : err;
	je.bytes_written = c->bytes;
	je.data_sha256 = strcmp(c->data_sha256, "-") ? c->data_sha256 : NULL;
	je.readback_sha256 = strcmp(c->readback_sha256, "-") ? c->readback_sha256 : NULL;
	je.content_after = c->content_after;
	/* What the disk held is known only once the worker opened it. */
	je.content_before = c->content_before;
	log_card(o == OUTCOME_SUCCESS ? 6 : 4, c, "job %" PRId64 " %s%s%s (%.1f s)", c->job,
		 outcome_name(o), je.error ? ": " : "", je.error ? je.error : "",
		 now_monotonic() - c->started);
	{
		char what[640];

		snprintf(what, sizeof(what), "%s: the end of job %" PRId64 " (%s)",
			 card_label(c, label, sizeof(label)), c->job, outcome_name(o));
		int r = outbox_job_end(st, c->job, &je, what);

		if (r < 0 && r != -EAGAIN)
			log_err("%s: not recorded: %s", what, journal_error(st->journal));
	}
	st->running--;
	c->pid = 0;
	c->kill_at = 0; /* a stop deadline belongs to this worker, not the next */
	c->state = CARD_DONE;
	card_set_outcome(c, o);
	{
		/* je.error may be c->error itself: copy before freeing. */
		char *e = je.error ? strdup(je.error) : NULL;

		free(c->error);
		c->error = e;
	}
	card_live_update(st, c, true);
	hooks_run_end(st, c);
}
