/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The outbox: journal writes kept in memory while the journal refuses them
 * (disk full, locked, I/O error) and written again, in order, until they
 * land: a job's end, a row for a card that was not written (refused,
 * ignored), what a hook did. Nothing the station did goes unrecorded while
 * it runs; what still waits at exit goes to the log in full.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "manager.h"
#include "outbox-file.h"
#include "util.h"

/* One record the journal refused. */
enum pending_kind { PENDING_END, PENDING_ONCE, PENDING_HOOK };

struct pending {
	struct pending *next;
	enum pending_kind kind;
	int64_t job;	       /* PENDING_END */
	struct job_start *js;  /* PENDING_ONCE */
	struct job_end je;     /* PENDING_END, PENDING_ONCE */
	struct hook_record hr; /* PENDING_HOOK */
	char *what;	       /* for the log */
	double since;
	unsigned tries;
	bool in_file; /* PENDING_END: also in the outbox file, survives a crash */
};

/* strdup() that keeps NULL; sets *@oom when a copy fails. */
static char *dup_or_null(const char *s, bool *oom)
{
	char *c;

	if (!s)
		return NULL;
	c = strdup(s);
	if (!c)
		*oom = true;
	return c;
}

static void job_end_clear(struct job_end *e)
{
	free((char *)e->error);
	free((char *)e->data_sha256);
	free((char *)e->readback_sha256);
	free((char *)e->content_after);
	free((char *)e->content_before);
	free((char *)e->finished);
	memset(e, 0, sizeof(*e));
}

/* A copy of @e that owns its strings, with the time it ended. */
static int job_end_copy(struct job_end *dst, const struct job_end *e)
{
	char now[JOURNAL_TIMESTAMP_MAX];
	bool oom = false;

	journal_timestamp(now);
	*dst = (struct job_end){
	    .outcome = e->outcome,
	    .bytes_written = e->bytes_written,
	    .ended = e->ended > 0 ? e->ended : now_monotonic(),
	};
	dst->error = dup_or_null(e->error, &oom);
	dst->data_sha256 = dup_or_null(e->data_sha256, &oom);
	dst->readback_sha256 = dup_or_null(e->readback_sha256, &oom);
	dst->content_after = dup_or_null(e->content_after, &oom);
	dst->content_before = dup_or_null(e->content_before, &oom);
	dst->finished = dup_or_null(e->finished ? e->finished : now, &oom);
	if (oom) {
		job_end_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

static void job_start_free(struct job_start *js)
{
	if (!js)
		return;
	free((char *)js->station);
	free((char *)js->slot);
	free((char *)js->devnode);
	free((char *)js->syspath);
	free((char *)js->serial);
	free((char *)js->reader_serial);
	free((char *)js->vendor);
	free((char *)js->model);
	free((char *)js->bus);
	free((char *)js->id_path);
	free((char *)js->mmc_cid);
	free((char *)js->mmc_manfid);
	free((char *)js->mmc_oemid);
	free((char *)js->mmc_name);
	free((char *)js->mmc_date);
	free((char *)js->content_before);
	free((char *)js->profile);
	free((char *)js->image);
	free((char *)js->bmap);
	free((char *)js->bmap_sha256);
	free((char *)js->signer);
	free(js);
}

static struct job_start *job_start_copy(const struct job_start *s)
{
	struct job_start *js = calloc(1, sizeof(*js));
	bool oom = false;

	if (!js)
		return NULL;
	*js = (struct job_start){.diskseq = s->diskseq,
				 .size = s->size,
				 .removable = s->removable,
				 .image_size = s->image_size};
	js->station = dup_or_null(s->station, &oom);
	js->slot = dup_or_null(s->slot, &oom);
	js->devnode = dup_or_null(s->devnode, &oom);
	js->syspath = dup_or_null(s->syspath, &oom);
	js->serial = dup_or_null(s->serial, &oom);
	js->reader_serial = dup_or_null(s->reader_serial, &oom);
	js->vendor = dup_or_null(s->vendor, &oom);
	js->model = dup_or_null(s->model, &oom);
	js->bus = dup_or_null(s->bus, &oom);
	js->id_path = dup_or_null(s->id_path, &oom);
	js->mmc_cid = dup_or_null(s->mmc_cid, &oom);
	js->mmc_manfid = dup_or_null(s->mmc_manfid, &oom);
	js->mmc_oemid = dup_or_null(s->mmc_oemid, &oom);
	js->mmc_name = dup_or_null(s->mmc_name, &oom);
	js->mmc_date = dup_or_null(s->mmc_date, &oom);
	js->content_before = dup_or_null(s->content_before, &oom);
	js->profile = dup_or_null(s->profile, &oom);
	js->image = dup_or_null(s->image, &oom);
	js->bmap = dup_or_null(s->bmap, &oom);
	js->bmap_sha256 = dup_or_null(s->bmap_sha256, &oom);
	js->signer = dup_or_null(s->signer, &oom);
	if (oom) {
		job_start_free(js);
		return NULL;
	}
	return js;
}

static void pending_free(struct pending *p)
{
	job_start_free(p->js);
	job_end_clear(&p->je);
	free((char *)p->hr.event);
	free((char *)p->hr.command);
	free((char *)p->hr.output);
	free(p->what);
	free(p);
}

/* Keeps @p (NULL: out of memory, said in the log) for outbox_flush(). */
static void pending_add(struct station *st, struct pending *p, const char *what)
{
	if (!p || !(p->what = strdup(what))) {
		log_err("%s: out of memory, this record is LOST", what);
		if (p)
			pending_free(p);
		return;
	}
	p->since = now_monotonic();
	p->tries = 1;
	if (p->kind == PENDING_END && !p->in_file) {
		int r = outbox_file_append(st->outbox_fd, p->job, &p->je);

		if (r < 0 && st->outbox_fd >= 0)
			log_err("%s: cannot keep it in %s either (%s): it is lost if the station "
				"dies before the journal takes it",
				what, st->outbox_path, strerror(-r));
		p->in_file = r >= 0;
		st->outbox_dirty |= p->in_file;
	}
	*st->pending_tail = p;
	st->pending_tail = &p->next;
	log_warn("%s: the journal cannot take it now (%s); kept in memory and retried every %.0f s",
		 what, journal_error(st->journal), JOURNAL_RETRY);
	if (st->pending_retry_at == 0)
		st->pending_retry_at = p->since + JOURNAL_RETRY;
	if (st->pending_nag_at == 0)
		st->pending_nag_at = p->since + JOURNAL_NAG;
}

/* @e stamped with the time the job ended (now), whenever it is recorded. */
static const struct job_end *stamp_end(struct job_end *at, const struct job_end *e,
				       char now[JOURNAL_TIMESTAMP_MAX])
{
	*at = *e;
	journal_timestamp(now);
	if (!at->finished)
		at->finished = now;
	if (at->ended <= 0)
		at->ended = now_monotonic();
	return at;
}

/* Writes a job's end; when the journal refuses, keeps it to try again. */
int outbox_job_end(struct station *st, int64_t job, const struct job_end *e, const char *what)
{
	char now[JOURNAL_TIMESTAMP_MAX];
	struct job_end at;
	struct pending *p;
	int r;

	e = stamp_end(&at, e, now);
	/* Behind earlier records, or the journal is known to fail: queue. */
	if (!st->pending) {
		r = journal_job_end(st->journal, job, e);
		if (r >= 0 || r == -EALREADY || r == -ENOENT || r == -EINVAL)
			return r;
	}
	p = calloc(1, sizeof(*p));
	if (p) {
		p->kind = PENDING_END;
		p->job = job;
		if (job_end_copy(&p->je, e) < 0) {
			free(p);
			p = NULL;
		}
	}
	pending_add(st, p, what);
	return -EAGAIN;
}

int outbox_job_once(struct station *st, const struct job_start *js, const struct job_end *e,
		    int64_t *ret_job, const char *what)
{
	char now[JOURNAL_TIMESTAMP_MAX];
	struct job_end at;
	struct pending *p;
	int r;

	e = stamp_end(&at, e, now);
	if (!st->pending) {
		r = journal_job_once(st->journal, js, e, ret_job);
		if (r >= 0 || r == -EINVAL)
			return r;
	}
	p = calloc(1, sizeof(*p));
	if (p) {
		p->kind = PENDING_ONCE;
		p->js = job_start_copy(js);
		if (!p->js || job_end_copy(&p->je, e) < 0) {
			pending_free(p);
			p = NULL;
		}
	}
	pending_add(st, p, what);
	return -EAGAIN;
}

void outbox_hook(struct station *st, const struct hook_record *h, const char *what)
{
	struct pending *p;
	bool oom = false;

	if (!st->pending && journal_hook_record(st->journal, h) >= 0)
		return;
	p = calloc(1, sizeof(*p));
	if (p) {
		p->kind = PENDING_HOOK;
		p->hr = *h;
		p->hr.event = dup_or_null(h->event, &oom);
		p->hr.command = dup_or_null(h->command, &oom);
		p->hr.output = NULL;
		if (h->output && h->output_len) {
			char *o = malloc(h->output_len);

			if (o)
				memcpy(o, h->output, h->output_len);
			else
				oom = true;
			p->hr.output = o;
		}
		if (oom) {
			pending_free(p);
			p = NULL;
		}
	}
	pending_add(st, p, what);
}

static int pending_write(struct station *st, struct pending *p)
{
	int64_t job;

	switch (p->kind) {
	case PENDING_END:
		return journal_job_end(st->journal, p->job, &p->je);
	case PENDING_ONCE:
		return journal_job_once(st->journal, p->js, &p->je, &job);
	case PENDING_HOOK:
		return journal_hook_record(st->journal, &p->hr);
	}
	return -EINVAL;
}

/* Writes the kept records in order, until the journal refuses one. */
void outbox_flush(struct station *st, bool now)
{
	double t = now_monotonic();

	if (!st->pending || (!now && t < st->pending_retry_at))
		return;
	while (st->pending) {
		struct pending *p = st->pending;
		int r = pending_write(st, p);

		if (r < 0 && r != -EALREADY && r != -ENOENT && r != -EINVAL) {
			p->tries++;
			break;
		}
		if (r < 0)
			log_err("%s: dropped, the journal will not take it: %s", p->what,
				journal_error(st->journal));
		else
			log_notice("%s: recorded after %.1f s (%u tries)", p->what, t - p->since,
				   p->tries + 1);
		st->pending = p->next;
		pending_free(p);
	}
	if (!outbox_has_ends(st) && st->outbox_dirty) {
		int r = outbox_file_clear(st->outbox_fd);

		if (r < 0)
			log_err("cannot empty %s: %s (its job ends are written again, and "
				"dropped as already recorded, at the next start)",
				st->outbox_path, strerror(-r));
		st->outbox_dirty = false;
	}
	if (!st->pending) {
		st->pending_tail = &st->pending;
		st->pending_retry_at = st->pending_nag_at = 0;
		return;
	}
	st->pending_retry_at = t + JOURNAL_RETRY;
	if (t >= st->pending_nag_at) {
		unsigned n = 0;

		for (struct pending *p = st->pending; p; p = p->next)
			n++;
		log_warn("%u record(s) still wait for the journal, the oldest (%s) for %.0f s: %s",
			 n, st->pending->what, t - st->pending->since, journal_error(st->journal));
		st->pending_nag_at = t + JOURNAL_NAG;
	}
}

/* At exit: what could not be recorded goes to the log, in full. */
void outbox_give_up(struct station *st)
{
	while (st->pending) {
		struct pending *p = st->pending;

		if (p->kind == PENDING_END && p->in_file)
			log_err("%s: not recorded yet (the journal kept refusing: %s); it ended "
				"%s%s%s at %s; kept in %s, the next start records it",
				p->what, journal_error(st->journal), outcome_name(p->je.outcome),
				p->je.error ? ": " : "", p->je.error ? p->je.error : "",
				p->je.finished, st->outbox_path);
		else if (p->kind == PENDING_END)
			log_err("%s: NOT RECORDED (the journal kept refusing: %s); it ended %s%s%s "
				"at %s; the next start marks the job interrupted",
				p->what, journal_error(st->journal), outcome_name(p->je.outcome),
				p->je.error ? ": " : "", p->je.error ? p->je.error : "",
				p->je.finished);
		else
			log_err("%s: NOT RECORDED (the journal kept refusing: %s)", p->what,
				journal_error(st->journal));
		st->pending = p->next;
		pending_free(p);
	}
	st->pending_tail = &st->pending;
}

bool outbox_has_ends(const struct station *st)
{
	for (const struct pending *p = st->pending; p; p = p->next)
		if (p->kind == PENDING_END)
			return true;
	return false;
}

/* One end read back from the file: queued first, as it was. */
static int outbox_take(void *userdata, int64_t job, const struct job_end *e)
{
	struct station *st = userdata;
	struct pending *p = calloc(1, sizeof(*p));
	char what[128];

	if (!p)
		return -ENOMEM;
	p->kind = PENDING_END;
	p->job = job;
	p->in_file = true;
	if (job_end_copy(&p->je, e) < 0) {
		free(p);
		return -ENOMEM;
	}
	snprintf(what, sizeof(what), "the end of job %" PRId64 " (%s, kept by an earlier run)", job,
		 outcome_name(e->outcome));
	if (!(p->what = strdup(what))) {
		pending_free(p);
		return -ENOMEM;
	}
	p->since = now_monotonic();
	*st->pending_tail = p;
	st->pending_tail = &p->next;
	return 0;
}

int outbox_open(struct station *st)
{
	unsigned bad = 0, n = 0;
	int r;

	if (asprintf(&st->outbox_path, "%s.outbox", st->cfg->database) < 0) {
		st->outbox_path = NULL;
		return -ENOMEM;
	}
	st->outbox_fd = open(st->outbox_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (st->outbox_fd < 0) {
		r = -errno;
		log_err("cannot open %s (where job ends wait when the journal refuses them): %s",
			st->outbox_path, strerror(-r));
		return r;
	}
	r = outbox_file_read(st->outbox_fd, outbox_take, st, &bad);
	if (r < 0) {
		log_err("cannot read %s: %s; move it away to start without it", st->outbox_path,
			strerror(-r));
		return r;
	}
	for (struct pending *p = st->pending; p; p = p->next)
		n++;
	if (bad)
		log_warn("%s: %u line(s) that are not a whole job end (torn by a crash?) left out",
			 st->outbox_path, bad);
	if (n) {
		log_notice("%s: %u job end(s) kept by an earlier run; they are written before any "
			   "job is marked interrupted",
			   st->outbox_path, n);
		st->outbox_dirty = true;
	}
	return 0;
}

void outbox_close(struct station *st)
{
	if (st->outbox_fd >= 0)
		close(st->outbox_fd);
	st->outbox_fd = -1;
	free(st->outbox_path);
	st->outbox_path = NULL;
}
