/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The station: listens for block-disk hotplug events (libudev), matches each
 * inserted card against the profiles, checks the safety gate, records a job
 * row and forks one worker per card (up to max_workers, the rest queued in
 * arrival order), follows their progress over pipes, and records outcomes.
 * Only this process touches SQLite and libudev; workers never do.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libudev.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bmap.h"
#include "config.h"
#include "device.h"
#include "journal.h"
#include "station.h"
#include "sanitize.h"
#include "util.h"
#include "worker.h"

#define MONITOR_RCVBUF (128 * 1024 * 1024)
#define KILL_GRACE 5.0 /* seconds between SIGTERM and SIGKILL */
/* The journal waits this long for another process's lock, then the write is
 * retried from the main loop, so a long lock never freezes the station. */
#define JOURNAL_WAIT_MS 500
#define JOURNAL_RETRY 1.0	/* seconds between retries of a failed write */
#define JOURNAL_NAG 30.0	/* seconds between reminders while it fails */
#define JOURNAL_STOP_GRACE 20.0 /* on stop, how long unrecorded rows are retried */

enum slot_state { ST_IDLE, ST_WAITING, ST_RUNNING, ST_DONE };

/* One known disk (keyed by syspath) and its current job, if any. */
struct slot {
	struct slot *next;
	struct device dev;
	char *slot_name;
	enum slot_state state;
	bool handled; /* this insertion was dealt with */
	uint64_t handled_diskseq;
	uint64_t queue_seq;

	/* the profile's settings, copied: a reload may free the profile */
	char *profile, *image, *bmap;
	enum verify_mode verify;
	bool discard;
	uint64_t image_size;
	char *bmap_sha256;

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
	char outcome[32];
	uint64_t bytes;
	char data_sha256[65], readback_sha256[65];
	double live_at;   /* last live-state write */
	uint64_t live_done; /* and the progress it had */
};

/* A hook command running (never through a shell; see config.h). */
struct hook_run {
	struct hook_run *next;
	pid_t pid;
	int fd; /* its stdout and stderr */
	int64_t job;
	enum hook_event event;
	char *command;
	char out[4096];
	size_t out_len;
	double started, deadline;
	bool timed_out;
};

/*
 * A record the journal refused (disk full, locked, I/O error), kept in memory
 * and written again until it lands: a job's end, a row for a card that was
 * not written (refused, ignored), or what a hook did. Nothing the station
 * did goes unrecorded while it runs.
 */
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
};

struct station {
	struct station_config *cfg;
	struct journal *journal;
	struct udev *udev;
	struct udev_monitor *mon;
	int sfd;
	struct slot *slots;
	unsigned running;
	uint64_t next_seq;
	bool stopping;
	double stop_deadline;
	struct hook_run *hooks;
	struct pending *pending, **pending_tail;
	double pending_retry_at, pending_nag_at;
	bool interrupt_done; /* rows left running by an earlier run are closed */
	double live_failing, live_nag_at;
	double start_retry_at;
};


/* One event, one line: whatever a message carries (device strings inside an
 * error text, say) goes through printable() as a whole. */
__attribute__((format(printf, 1, 2))) static void logmsg(const char *fmt, ...)
{
	char line[2048], safe[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "bmap-station: %s\n", printable(line, safe, sizeof(safe)));
}

static const char *slot_label(const struct slot *sl, char *buf, size_t len)
{
	char serial[128];

	snprintf(buf, len, "%s (serial %s%s%s)", sl->dev.devnode ? sl->dev.devnode : sl->dev.sysname,
		 printable(sl->dev.serial, serial, sizeof(serial)), sl->slot_name ? ", slot " : "",
		 sl->slot_name ? sl->slot_name : "");
	return buf;
}

static void slot_reset_job(struct slot *sl)
{
	free(sl->error);
	free(sl->content_before);
	free(sl->content_after);
	free(sl->profile);
	free(sl->image);
	free(sl->bmap);
	free(sl->bmap_sha256);
	sl->error = sl->content_before = sl->content_after = NULL;
	sl->profile = sl->image = sl->bmap = sl->bmap_sha256 = NULL;
	sl->job = 0;
	sl->start_failed_at = sl->start_nag_at = 0;
	sl->pid = 0;
	sl->kill_at = 0;
	sl->pipe_fd = -1;
	sl->removed = sl->timed_out = sl->stopping = sl->reaped = false;
	sl->line_len = 0;
	sl->done = sl->total = 0;
	sl->outcome[0] = '\0';
	sl->bytes = 0;
	strcpy(sl->data_sha256, "-");
	strcpy(sl->readback_sha256, "-");
}

static void slot_free(struct slot *sl)
{
	slot_reset_job(sl);
	device_clear(&sl->dev);
	free(sl->slot_name);
	free(sl);
}

static struct slot *slot_find(struct station *st, const char *syspath)
{
	for (struct slot *sl = st->slots; sl; sl = sl->next)
		if (strcmp(sl->dev.syspath, syspath) == 0)
			return sl;
	return NULL;
}

static void fill_start(const struct station *st, const struct slot *sl, struct job_start *js)
{
	memset(js, 0, sizeof(*js));
	js->station = st->cfg->name;
	js->slot = sl->slot_name;
	js->devnode = sl->dev.devnode;
	js->syspath = sl->dev.syspath;
	js->diskseq = sl->dev.diskseq;
	js->serial = sl->dev.serial;
	js->reader_serial = sl->dev.reader_serial;
	js->vendor = sl->dev.vendor;
	js->model = sl->dev.model;
	js->bus = sl->dev.bus;
	js->id_path = sl->dev.id_path;
	js->size = sl->dev.size;
	js->removable = sl->dev.removable;
	js->mmc_cid = sl->dev.mmc_cid;
	js->mmc_manfid = sl->dev.mmc_manfid;
	js->mmc_oemid = sl->dev.mmc_oemid;
	js->mmc_name = sl->dev.mmc_name;
	js->mmc_date = sl->dev.mmc_date;
	js->profile = sl->profile;
	js->image = sl->image;
	js->image_size = sl->image_size;
	js->bmap = sl->bmap;
	js->bmap_sha256 = sl->bmap_sha256;
}

/* ---- records the journal could not take yet ---- */

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
	free(js);
}

static struct job_start *job_start_copy(const struct job_start *s)
{
	struct job_start *js = calloc(1, sizeof(*js));
	bool oom = false;

	if (!js)
		return NULL;
	*js = (struct job_start){ .diskseq = s->diskseq, .size = s->size,
				  .removable = s->removable, .image_size = s->image_size };
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

/* Keeps @p (NULL: out of memory, said in the log) for pending_flush(). */
static void pending_add(struct station *st, struct pending *p, const char *what)
{
	if (!p || !(p->what = strdup(what))) {
		logmsg("%s: out of memory, this record is LOST", what);
		if (p)
			pending_free(p);
		return;
	}
	p->since = now_monotonic();
	p->tries = 1;
	*st->pending_tail = p;
	st->pending_tail = &p->next;
	logmsg("%s: the journal cannot take it now (%s); kept in memory and retried every %.0f s",
	       what, journal_error(st->journal), JOURNAL_RETRY);
	if (st->pending_retry_at == 0)
		st->pending_retry_at = p->since + JOURNAL_RETRY;
	if (st->pending_nag_at == 0)
		st->pending_nag_at = p->since + JOURNAL_NAG;
}

/* Writes a job's end; when the journal refuses, keeps it to try again. */
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

static int record_end(struct station *st, int64_t job, const struct job_end *e, const char *what)
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

static int record_once_row(struct station *st, const struct job_start *js, const struct job_end *e,
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

static void record_hook(struct station *st, const struct hook_record *h, const char *what)
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
static void pending_flush(struct station *st, bool now)
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
			logmsg("%s: dropped, the journal will not take it: %s", p->what,
			       journal_error(st->journal));
		else
			logmsg("%s: recorded after %.1f s (%u tries)", p->what, t - p->since,
			       p->tries + 1);
		st->pending = p->next;
		pending_free(p);
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
		logmsg("%u record(s) still wait for the journal, the oldest (%s) for %.0f s: %s", n,
		       st->pending->what, t - st->pending->since, journal_error(st->journal));
		st->pending_nag_at = t + JOURNAL_NAG;
	}
}

/* At exit: what could not be recorded goes to the log, in full. */
static void pending_give_up(struct station *st)
{
	while (st->pending) {
		struct pending *p = st->pending;

		if (p->kind == PENDING_END)
			logmsg("%s: NOT RECORDED (the journal kept refusing: %s); it ended %s%s%s "
			       "at %s; the next start marks the job interrupted",
			       p->what, journal_error(st->journal), outcome_name(p->je.outcome),
			       p->je.error ? ": " : "", p->je.error ? p->je.error : "",
			       p->je.finished);
		else
			logmsg("%s: NOT RECORDED (the journal kept refusing: %s)", p->what,
			       journal_error(st->journal));
		st->pending = p->next;
		pending_free(p);
	}
	st->pending_tail = &st->pending;
}

/* A card that will not be written: one row, start and end at once. */
static void record_once(struct station *st, struct slot *sl, enum outcome o, const char *why)
{
	struct job_start js;
	struct job_end je = { .outcome = o, .error = why };
	char label[512], what[1024];
	int64_t job;
	int r;

	fill_start(st, sl, &js);
	snprintf(what, sizeof(what), "%s: %s (%s)", slot_label(sl, label, sizeof(label)),
		 outcome_name(o), why);
	snprintf(sl->outcome, sizeof(sl->outcome), "%s", outcome_name(o));
	r = record_once_row(st, &js, &je, &job, what);
	if (r == -EINVAL)
		logmsg("%s: not recorded: %s", what, journal_error(st->journal));
	if (r < 0)
		return; /* kept for later, said in the log */
	logmsg("%s: %s (job %" PRId64 "): %s", slot_label(sl, label, sizeof(label)),
	       outcome_name(o), job, why);
	sl->job = job;
	snprintf(sl->outcome, sizeof(sl->outcome), "%s", outcome_name(o));
}

/* What the profile's image needs: its bmap (image size) and the bmap's hash. */
static int load_image_facts(struct slot *sl, char *why, size_t why_len)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	_cleanup_free_ char *found = NULL;
	const char *path = sl->bmap;
	struct stat st;
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	/* The image may have been deleted or replaced since the profile was
	 * loaded: a card is only queued while it is there to read. */
	if (stat(sl->image, &st) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot read image '%s': %s", sl->image, strerror(-r));
		goto out;
	}
	if (!path && bmap_discover(sl->image, &found) == 0)
		path = found;
	if (path) {
		r = bmap_map_load(ctx, path, &map);
		if (r < 0) {
			snprintf(why, why_len, "%s", bmap_ctx_get_error(ctx));
		} else {
			char hex[65];

			sl->image_size = bmap_map_get_image_size(map);
			hex_encode(bmap_map_get_file_sha256(map), 32, hex);
			free(sl->bmap_sha256);
			sl->bmap_sha256 = strdup(hex);
			if (!sl->bmap)
				sl->bmap = strdup(path);
		}
	} else {
		sl->image_size = (uint64_t)st.st_size; /* a raw image mapped from its holes */
	}
out:
	bmap_map_free(map);
	bmap_ctx_free(ctx);
	return r;
}

/* The profile's image as it is now, for this card: false when the card was
 * recorded failed (image or bmap unreadable) or refused (too small). */
static bool image_fits(struct station *st, struct slot *sl)
{
	char why[PATH_MAX + 256], h1[32], h2[32];

	if (load_image_facts(sl, why, sizeof(why)) < 0) {
		record_once(st, sl, OUTCOME_FAILED, why);
		sl->state = ST_DONE;
		return false;
	}
	if (sl->dev.size < sl->image_size) {
		snprintf(why, sizeof(why), "too small for the image: %s < %s",
			 human_size(sl->dev.size, h1), human_size(sl->image_size, h2));
		record_once(st, sl, OUTCOME_REFUSED, why);
		sl->state = ST_DONE;
		return false;
	}
	return true;
}

/* ---- hooks ---- */

struct hook_values {
	const char *slot, *serial, *devnode, *profile, *outcome;
	int64_t job;
};

/* @arg with every placeholder replaced; the values go into argv as they
 * are, so quotes, ';' or '$()' in a serial are just characters. */
static char *hook_expand(const char *arg, const struct hook_values *v)
{
	static const char *const names[] = { "%slot", "%serial", "%devnode", "%profile",
					     "%outcome", "%job" };
	char job[32] = "";
	const char *vals[6];
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	if (v->job > 0)
		snprintf(job, sizeof(job), "%" PRId64, v->job);
	vals[0] = v->slot;
	vals[1] = v->serial;
	vals[2] = v->devnode;
	vals[3] = v->profile;
	vals[4] = v->outcome;
	vals[5] = job;
	while (*arg) {
		size_t i;

		for (i = 0; i < ARRAY_SIZE(names); i++)
			if (strncmp(arg, names[i], strlen(names[i])) == 0)
				break;
		if (i < ARRAY_SIZE(names)) {
			fputs(vals[i] ? vals[i] : "", f);
			arg += strlen(names[i]);
		} else {
			fputc(*arg++, f);
		}
	}
	fclose(f);
	return out;
}

/* The command for the journal: each argument single-quoted, for display. */
static char *hook_display(char *const *argv)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; argv[i]; i++) {
		fputs(i ? " '" : "'", f);
		for (const char *c = argv[i]; *c; c++)
			if (*c == '\'')
				fputs("'\\''", f);
			else
				fputc(*c, f);
		fputc('\'', f);
	}
	fclose(f);
	return out;
}

static void hook_start(struct station *st, char *const *tmpl, enum hook_event ev,
		       const struct hook_values *v)
{
	struct hook_run *h;
	char **argv;
	size_t n = 0;
	int fds[2];

	while (tmpl[n])
		n++;
	argv = calloc(n + 1, sizeof(char *));
	h = calloc(1, sizeof(*h));
	if (!argv || !h)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (!(argv[i] = hook_expand(tmpl[i], v)))
			goto fail;
	h->command = hook_display(argv);
	if (!h->command || pipe2(fds, O_CLOEXEC) < 0)
		goto fail;
	fflush(stderr);
	h->pid = fork();
	if (h->pid < 0) {
		close(fds[0]);
		close(fds[1]);
		goto fail;
	}
	if (h->pid == 0) {
		sigset_t none;
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* Its own process group, so a time-out kills what it started. */
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		execv(argv[0], argv);
		fprintf(stderr, "cannot run %s: %m\n", argv[0]);
		_exit(127);
	}
	setpgid(h->pid, h->pid); /* also here: no race with a quick time-out */
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	h->fd = fds[0];
	h->job = v->job;
	h->event = ev;
	h->started = now_monotonic();
	h->deadline = h->started + st->cfg->hook_timeout;
	h->next = st->hooks;
	st->hooks = h;
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	return;
fail:
	logmsg("cannot run the %s hook %s: %m", hook_event_name(ev), tmpl[0]);
	if (argv)
		for (size_t i = 0; i < n; i++)
			free(argv[i]);
	free(argv);
	if (h)
		free(h->command);
	free(h);
}

/* The station's hook for @ev, then the profile's. */
static void run_hooks(struct station *st, const struct slot *sl, enum hook_event ev,
		      const char *outcome, int64_t job)
{
	struct hook_values v = {
		.slot = sl->slot_name, .serial = sl->dev.serial, .devnode = sl->dev.devnode,
		.profile = sl->profile, .outcome = outcome, .job = job,
	};

	if (st->cfg->hooks.argv[ev])
		hook_start(st, st->cfg->hooks.argv[ev], ev, &v);
	if (!sl->profile)
		return;
	for (size_t i = 0; i < st->cfg->n_profiles; i++)
		if (strcmp(st->cfg->profiles[i].name, sl->profile) == 0 &&
		    st->cfg->profiles[i].hooks.argv[ev])
			hook_start(st, st->cfg->profiles[i].hooks.argv[ev], ev, &v);
}

static void hook_read(struct hook_run *h)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(h->fd, buf, sizeof(buf))) > 0) {
		size_t room = sizeof(h->out) - h->out_len;

		if ((size_t)n > room)
			n = (ssize_t)room; /* keep the start; the rest is dropped */
		memcpy(h->out + h->out_len, buf, (size_t)n);
		h->out_len += (size_t)n;
	}
}

/* Records a finished hook; returns true when @pid was one. */
static bool hook_reaped(struct station *st, pid_t pid, int status)
{
	for (struct hook_run **p = &st->hooks; *p; p = &(*p)->next) {
		struct hook_run *h = *p;
		struct hook_record rec;
		char command[512];

		if (h->pid != pid)
			continue;
		hook_read(h);
		close(h->fd);
		rec = (struct hook_record){
			.job = h->job, .event = hook_event_name(h->event), .command = h->command,
			.duration = now_monotonic() - h->started,
			.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 0,
			.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0,
			.timed_out = h->timed_out, .output = h->out, .output_len = h->out_len,
		};
		/* The command holds device strings (%serial). */
		printable(h->command, command, sizeof(command));
		{
			char what[700];

			snprintf(what, sizeof(what), "the %s hook of job %" PRId64 " (%s)",
				 rec.event, h->job, command);
			record_hook(st, &rec, what);
		}
		if (rec.signal || rec.exit_status)
			logmsg("the %s hook %s %s %d%s", rec.event, command,
			       rec.signal ? "was killed by signal" : "exited with status",
			       rec.signal ? rec.signal : rec.exit_status,
			       h->timed_out ? " (over hook_timeout)" : "");
		*p = h->next;
		free(h->command);
		free(h);
		return true;
	}
	return false;
}

/* ---- live state (table live, read by status and watch) ---- */

static void live_update(struct station *st, struct slot *sl, bool force)
{
	struct live_row l = { 0 };
	double now = now_monotonic();
	enum outcome o;

	if (!sl->dev.tagged || !sl->dev.syspath)
		return;
	if (!force && (now - sl->live_at < 0.5 || sl->done == sl->live_done))
		return;
	sl->live_at = now;
	sl->live_done = sl->done;
	l.syspath = sl->dev.syspath;
	l.station = st->cfg->name;
	l.slot = sl->slot_name;
	l.devnode = sl->dev.devnode;
	l.serial = sl->dev.serial;
	l.profile = sl->profile;
	l.job = sl->job;
	l.error = sl->error;
	switch (sl->state) {
	case ST_WAITING:
		l.state = "waiting";
		break;
	case ST_RUNNING:
		l.state = strcmp(sl->phase, "verifying") == 0 ? "verifying" : "writing";
		l.done = sl->done;
		l.total = sl->total;
		if (now > sl->started && sl->done)
			l.rate = (double)sl->done / (now - sl->started);
		break;
	default:
		if (!sl->outcome[0] || outcome_from_name(sl->outcome, &o) < 0)
			return;
		l.last_outcome = sl->outcome;
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
			logmsg("cannot update the live state (status, watch): %s",
			       journal_error(st->journal));
			st->live_nag_at = now + JOURNAL_NAG;
		}
		if (!st->live_failing)
			st->live_failing = now;
	} else if (st->live_failing) {
		logmsg("the live state is written again (after %.1f s)", now - st->live_failing);
		st->live_failing = st->live_nag_at = 0;
	}
}

static void enqueue(struct station *st, struct slot *sl)
{
	const struct profile *p;
	struct device_identity id = {
		.devnode = sl->dev.devnode, .serial = sl->dev.serial, .vendor = sl->dev.vendor,
		.model = sl->dev.model, .bus = sl->dev.bus, .id_path = sl->dev.id_path,
		.size = sl->dev.size, .removable = sl->dev.removable,
	};
	const char *why_match = NULL;
	char why[1024];

	slot_reset_job(sl);
	if (!sl->dev.tagged) {
		snprintf(why, sizeof(why), "not tagged '%s' by the udev rules",
			 st->cfg->require_tag);
		record_once(st, sl, OUTCOME_IGNORED, why);
		sl->state = ST_DONE;
		return;
	}
	p = config_match(st->cfg, &id, sl->slot_name, &why_match);
	if (!p) {
		snprintf(why, sizeof(why), "no profile matches%s%s", why_match ? ": " : "",
			 why_match ? why_match : "");
		record_once(st, sl, OUTCOME_IGNORED, why);
		sl->state = ST_DONE;
		return;
	}
	sl->profile = strdup(p->name);
	sl->image = strdup(p->image);
	sl->bmap = p->bmap ? strdup(p->bmap) : NULL;
	sl->verify = p->verify;
	sl->discard = p->discard;
	if (p->once_per_serial) {
		int64_t earlier;
		char ser[128];

		if (!sl->dev.serial) {
			record_once(st, sl, OUTCOME_REFUSED,
				    "no serial, and the profile has once_per_serial = true");
			sl->state = ST_DONE;
			return;
		}
		if (journal_serial_passed(st->journal, sl->dev.serial, p->name, &earlier) == 0) {
			snprintf(why, sizeof(why),
				 "serial %s already passed with profile %s (job %" PRId64
				 "); 'bmap-station forget' allows it again",
				 printable(sl->dev.serial, ser, sizeof(ser)), p->name, earlier);
			record_once(st, sl, OUTCOME_REFUSED, why);
			sl->state = ST_DONE;
			return;
		}
	}
	if (device_gate(&sl->dev, st->cfg->max_device_size, why, sizeof(why)) < 0) {
		record_once(st, sl, OUTCOME_REFUSED, why);
		sl->state = ST_DONE;
		return;
	}
	if (p->removable_only && !sl->dev.removable) {
		record_once(st, sl, OUTCOME_REFUSED,
			    "not removable, and the profile has removable_only = true");
		sl->state = ST_DONE;
		return;
	}
	if (!image_fits(st, sl))
		return;
	sl->state = ST_WAITING;
	sl->queue_seq = ++st->next_seq;
}

/* A job whose worker could not even start. */
static void end_job_early(struct station *st, struct slot *sl, const struct job_end *je)
{
	char label[512], what[640];

	snprintf(what, sizeof(what), "%s: job %" PRId64 " %s",
		 slot_label(sl, label, sizeof(label)), sl->job, outcome_name(je->outcome));
	logmsg("%s: %s", what, je->error);
	record_end(st, sl->job, je, what);
	snprintf(sl->outcome, sizeof(sl->outcome), "%s", outcome_name(je->outcome));
	sl->state = ST_DONE;
}

static int start_worker(struct station *st, struct slot *sl)
{
	struct job_start js;
	struct worker_job wj = {
		.devnode = sl->dev.devnode, .diskseq = sl->dev.diskseq, .image = sl->image,
		.bmap = sl->bmap, .verify = sl->verify, .cache_dir = st->cfg->cache_dir,
		.cache_max_size = st->cfg->cache_max_size, .discard = sl->discard,
	};
	char label[512];
	int fds[2];
	pid_t pid, parent;

	/* The profile's files as they are now: a card that waited in the queue
	 * gets what they hold when its job starts, and its row says so; the
	 * worker checks the bmap again once it has loaded it. */
	if (!image_fits(st, sl))
		return 0;
	wj.bmap = sl->bmap;
	wj.bmap_sha256 = sl->bmap_sha256;
	fill_start(st, sl, &js);
	/* The row comes first, committed: a job never runs unrecorded. */
	if (journal_job_start(st->journal, &js, &sl->job) < 0) {
		double now = now_monotonic();

		if (!sl->start_failed_at || now >= sl->start_nag_at) {
			logmsg("%s: cannot record the job, so the card is NOT written; "
			       "retrying every %.0f s: %s",
			       slot_label(sl, label, sizeof(label)), JOURNAL_RETRY,
			       journal_error(st->journal));
			sl->start_nag_at = now + JOURNAL_NAG;
		}
		if (!sl->start_failed_at)
			sl->start_failed_at = now;
		return -EIO;
	}
	if (sl->start_failed_at) {
		logmsg("%s: job %" PRId64 " recorded after waiting %.1f s for the journal",
		       slot_label(sl, label, sizeof(label)), sl->job,
		       now_monotonic() - sl->start_failed_at);
		sl->start_failed_at = 0;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		struct job_end je = { .outcome = OUTCOME_FAILED, .error = "cannot create a pipe" };
		int r = -errno;

		end_job_early(st, sl, &je);
		return r;
	}
	fflush(stderr);
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		struct job_end je = { .outcome = OUTCOME_FAILED, .error = "cannot fork a worker" };
		int r = -errno;

		close(fds[0]);
		close(fds[1]);
		end_job_early(st, sl, &je);
		return r;
	}
	if (pid == 0) {
		/* Nobody would record what a worker does once the station is
		 * gone (even killed with SIGKILL): it dies with it, and the
		 * next start marks its job interrupted. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(EXIT_FAILURE);
		/* The other workers' pipes: their end of file is theirs alone. */
		for (struct slot *o = st->slots; o; o = o->next)
			if (o->pipe_fd >= 0)
				close(o->pipe_fd);
		close(fds[0]);
		_exit(worker_run(&wj, fds[1]));
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	sl->pid = pid;
	sl->pipe_fd = fds[0];
	sl->started = now_monotonic();
	sl->timeout = st->cfg->job_timeout;
	sl->state = ST_RUNNING;
	snprintf(sl->phase, sizeof(sl->phase), "starting");
	st->running++;
	logmsg("%s: profile %s: job %" PRId64 " started (worker %d)",
	       slot_label(sl, label, sizeof(label)), sl->profile, sl->job, (int)pid);
	run_hooks(st, sl, HOOK_START, NULL, sl->job);
	live_update(st, sl, true);
	return 0;
}

/* Rows an earlier run left 'running' (it was killed, or the power went)
 * are closed before this run starts a job of its own. */
static bool interrupt_earlier(struct station *st)
{
	int n;

	if (st->interrupt_done)
		return true;
	n = journal_interrupt_running(st->journal, "the station stopped during the job");
	if (n < 0) {
		logmsg("cannot close the jobs an earlier run left running; no card is written "
		       "until that works (retrying every %.0f s): %s",
		       JOURNAL_RETRY, journal_error(st->journal));
		return false;
	}
	if (n > 0)
		logmsg("%d job(s) left running by an earlier run marked interrupted", n);
	st->interrupt_done = true;
	return true;
}

static void schedule(struct station *st)
{
	double now = now_monotonic();

	/* After a failed write, wait a little: each try may wait for a lock. */
	if (now < st->start_retry_at)
		return;
	st->start_retry_at = 0;
	while (!st->stopping && st->running < st->cfg->max_workers) {
		struct slot *next = NULL;

		for (struct slot *sl = st->slots; sl; sl = sl->next)
			if (sl->state == ST_WAITING && (!next || sl->queue_seq < next->queue_seq))
				next = sl;
		if (!next)
			return;
		if (!interrupt_earlier(st) || start_worker(st, next) == -EIO) {
			st->start_retry_at = now + JOURNAL_RETRY;
			return;
		}
	}
}

static void handle_line(struct station *st, struct slot *sl, char *line)
{
	struct worker_msg m;

	if (worker_parse_line(line, &m) < 0)
		return;
	switch (m.type) {
	case WMSG_PROGRESS:
		snprintf(sl->phase, sizeof(sl->phase), "%s", m.phase);
		sl->done = m.done;
		sl->total = m.total;
		live_update(st, sl, false);
		break;
	case WMSG_CONTENT_BEFORE:
		free(sl->content_before);
		sl->content_before = strdup(m.text);
		break;
	case WMSG_CONTENT_AFTER:
		free(sl->content_after);
		sl->content_after = strdup(m.text);
		break;
	case WMSG_ERROR:
		free(sl->error);
		sl->error = strdup(m.text);
		break;
	case WMSG_NOTE: {
		char label[512];

		logmsg("%s: %s", slot_label(sl, label, sizeof(label)), m.text);
		break;
	}
	case WMSG_RESULT:
		snprintf(sl->outcome, sizeof(sl->outcome), "%s", m.outcome);
		sl->bytes = m.bytes;
		snprintf(sl->data_sha256, sizeof(sl->data_sha256), "%s", m.data_sha256);
		snprintf(sl->readback_sha256, sizeof(sl->readback_sha256), "%s",
			 m.readback_sha256);
		break;
	}
}

/* Reads what the worker wrote; returns true at end of file. */
static bool read_pipe(struct station *st, struct slot *sl)
{
	for (;;) {
		ssize_t n = read(sl->pipe_fd, sl->line + sl->line_len,
				 sizeof(sl->line) - 1 - sl->line_len);
		char *start, *nl;

		if (n < 0)
			return errno != EAGAIN && errno != EINTR;
		if (n == 0)
			return true;
		sl->line_len += (size_t)n;
		sl->line[sl->line_len] = '\0';
		start = sl->line;
		while ((nl = strchr(start, '\n'))) {
			*nl = '\0';
			handle_line(st, sl, start);
			start = nl + 1;
		}
		sl->line_len -= (size_t)(start - sl->line);
		memmove(sl->line, start, sl->line_len);
		if (sl->line_len == sizeof(sl->line) - 1)
			sl->line_len = 0; /* an overlong line: drop it */
	}
}

static void finish_job(struct station *st, struct slot *sl)
{
	struct job_end je = { 0 };
	enum outcome o = OUTCOME_FAILED;
	char why[256], label[512];
	const char *err;

	/* The worker's last lines (its error, its result) may still be in the
	 * pipe: read them before looking at sl->error, which they replace. */
	if (sl->pipe_fd >= 0) {
		read_pipe(st, sl);
		close(sl->pipe_fd);
		sl->pipe_fd = -1;
	}
	err = sl->error;
	if (sl->removed) {
		o = OUTCOME_REMOVED;
		err = "the card was removed during the job";
	} else if (sl->timed_out) {
		o = OUTCOME_TIMEOUT;
		snprintf(why, sizeof(why), "the job took longer than job_timeout (%u s)",
			 sl->timeout);
		err = why;
	} else if (sl->stopping) {
		o = OUTCOME_INTERRUPTED;
		err = "the station was stopped during the job";
	} else if (sl->outcome[0] && outcome_from_name(sl->outcome, &o) == 0) {
		/* as the worker said */
	} else {
		o = OUTCOME_FAILED;
		if (WIFSIGNALED(sl->wstatus))
			snprintf(why, sizeof(why), "the worker died of signal %d",
				 WTERMSIG(sl->wstatus));
		else
			snprintf(why, sizeof(why), "the worker ended (status %d) without a result",
				 WEXITSTATUS(sl->wstatus));
		err = why;
	}
	je.outcome = o;
	je.error = o == OUTCOME_SUCCESS ? NULL : err;
	je.bytes_written = sl->bytes;
	je.data_sha256 = strcmp(sl->data_sha256, "-") ? sl->data_sha256 : NULL;
	je.readback_sha256 = strcmp(sl->readback_sha256, "-") ? sl->readback_sha256 : NULL;
	je.content_after = sl->content_after;
	/* What the disk held is known only once the worker opened it. */
	je.content_before = sl->content_before;
	logmsg("%s: job %" PRId64 " %s%s%s (%.1f s)", slot_label(sl, label, sizeof(label)),
	       sl->job, outcome_name(o), je.error ? ": " : "", je.error ? je.error : "",
	       now_monotonic() - sl->started);
	{
		char what[640];

		snprintf(what, sizeof(what), "%s: the end of job %" PRId64 " (%s)",
			 slot_label(sl, label, sizeof(label)), sl->job, outcome_name(o));
		int r = record_end(st, sl->job, &je, what);

		if (r < 0 && r != -EAGAIN)
			logmsg("%s: not recorded: %s", what, journal_error(st->journal));
	}
	st->running--;
	sl->pid = 0;
	sl->kill_at = 0; /* a stop deadline belongs to this worker, not the next */
	sl->state = ST_DONE;
	snprintf(sl->outcome, sizeof(sl->outcome), "%s", outcome_name(o));
	{
		/* je.error may be sl->error itself: copy before freeing. */
		char *e = je.error ? strdup(je.error) : NULL;

		free(sl->error);
		sl->error = e;
	}
	live_update(st, sl, true);
	run_hooks(st, sl, o == OUTCOME_SUCCESS ? HOOK_SUCCESS : HOOK_FAILURE, outcome_name(o),
		  sl->job);
}

static void reap(struct station *st)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			return;
		if (hook_reaped(st, pid, status))
			continue;
		for (struct slot *sl = st->slots; sl; sl = sl->next)
			if (sl->state == ST_RUNNING && sl->pid == pid) {
				sl->wstatus = status;
				finish_job(st, sl);
				break;
			}
	}
}

static void stop_worker(struct slot *sl)
{
	if (sl->pid > 0 && sl->kill_at == 0) {
		kill(sl->pid, SIGTERM);
		sl->kill_at = now_monotonic() + KILL_GRACE;
	}
}

static void handle_device(struct station *st, struct udev_device *u, const char *action)
{
	struct device d;
	struct slot *sl;
	char label[512];
	bool removal;

	if (device_from_udev(u, st->cfg->require_tag, &d) < 0)
		return;
	if (device_never_candidate(&d)) {
		device_clear(&d);
		return;
	}
	sl = slot_find(st, d.syspath);
	removal = strcmp(action, "remove") == 0 || d.size == 0;
	if (!sl) {
		if (removal) {
			device_clear(&d);
			return;
		}
		sl = calloc(1, sizeof(*sl));
		if (!sl) {
			device_clear(&d);
			return;
		}
		sl->pipe_fd = -1;
		sl->next = st->slots;
		st->slots = sl;
	}

	if (removal) {
		if (sl->dev.size > 0 && sl->dev.tagged)
			run_hooks(st, sl, HOOK_REMOVE, NULL, sl->job);
		if (sl->state == ST_RUNNING) {
			sl->removed = true;
			stop_worker(sl);
			logmsg("%s: removed during job %" PRId64 ", stopping its worker",
			       slot_label(sl, label, sizeof(label)), sl->job);
		} else if (sl->state == ST_WAITING) {
			logmsg("%s: removed before its turn", slot_label(sl, label, sizeof(label)));
			sl->state = ST_IDLE;
		}
		sl->handled = false;
		if (sl->state != ST_RUNNING) {
			sl->state = ST_IDLE;
			if (sl->dev.tagged)
				journal_live_clear(st->journal, sl->dev.syspath);
		}
		sl->dev.size = 0;
		device_clear(&d);
		return;
	}

	/* udev's re-probe after our own writes, or a change on the same medium. */
	if (udev_device_get_property_value(u, "SYNTH_UUID") || sl->state == ST_RUNNING ||
	    sl->state == ST_WAITING || (sl->handled && (d.diskseq == 0 || d.diskseq ==
								     sl->handled_diskseq))) {
		device_clear(&d);
		return;
	}

	/* A new medium in this device: an insertion. */
	device_clear(&sl->dev);
	sl->dev = d;
	free(sl->slot_name);
	sl->slot_name = sl->dev.id_path && config_slot_name(st->cfg, sl->dev.id_path)
				? strdup(config_slot_name(st->cfg, sl->dev.id_path))
				: NULL;
	sl->handled = true;
	sl->handled_diskseq = sl->dev.diskseq;
	{
		enum outcome last;

		/* Seen by an earlier run (a restart, or events lost and the disks
		 * looked at again): an interrupted job is done again, anything
		 * else was dealt with. */
		if (journal_last_outcome(st->journal, sl->dev.syspath, sl->dev.diskseq, &last) == 0 &&
		    last != OUTCOME_INTERRUPTED && last != OUTCOME_RUNNING) {
			sl->state = ST_DONE;
			return;
		}
	}
	logmsg("%s: inserted (%s, %" PRIu64 " bytes)", slot_label(sl, label, sizeof(label)),
	       action, sl->dev.size);
	enqueue(st, sl);
	live_update(st, sl, true);
	if (sl->dev.tagged) {
		run_hooks(st, sl, HOOK_INSERT, sl->outcome[0] ? sl->outcome : NULL, sl->job);
		if (strcmp(sl->outcome, "refused") == 0)
			run_hooks(st, sl, HOOK_FAILURE, sl->outcome, sl->job);
	}
	schedule(st);
}

static void enumerate(struct station *st)
{
	struct udev_enumerate *en = udev_enumerate_new(st->udev);
	struct udev_list_entry *e;

	if (!en)
		return;
	udev_enumerate_add_match_subsystem(en, "block");
	udev_enumerate_add_match_property(en, "DEVTYPE", "disk");
	/* A disk udev is still working on has no tags or identity yet: its
	 * event comes through the monitor, opened before this scan. */
	udev_enumerate_add_match_is_initialized(en);
	udev_enumerate_scan_devices(en);
	udev_list_entry_foreach(e, udev_enumerate_get_list_entry(en))
	{
		struct udev_device *u =
			udev_device_new_from_syspath(st->udev, udev_list_entry_get_name(e));

		if (!u)
			continue;
		handle_device(st, u, "present");
		udev_device_unref(u);
	}
	udev_enumerate_unref(en);
}

static void drain_monitor(struct station *st)
{
	for (;;) {
		struct udev_device *u;

		errno = 0;
		u = udev_monitor_receive_device(st->mon);
		if (!u) {
			if (errno == ENOBUFS) {
				logmsg("udev events were lost (ENOBUFS); looking at every disk again");
				enumerate(st);
				continue;
			}
			return;
		}
		handle_device(st, u, udev_device_get_action(u) ? udev_device_get_action(u)
							      : "change");
		udev_device_unref(u);
	}
}

static void reload(struct station *st, const char *path)
{
	struct station_config *cfg = NULL;
	char *err = NULL;

	if (config_load(path, &cfg, &err) < 0) {
		logmsg("SIGHUP: keeping the old configuration: %s", err ? err : "cannot load");
		free(err);
		return;
	}
	if (strcmp(cfg->database, st->cfg->database) != 0)
		logmsg("SIGHUP: the database setting changed; it takes effect at the next start");
	config_keep_database(cfg, st->cfg);
	config_free(st->cfg);
	st->cfg = cfg;
	logmsg("SIGHUP: configuration reloaded from %s (%zu profiles)", path, cfg->n_profiles);
	schedule(st);
}

/* Whether the medium is still there: sysfs size, read directly. udevd
 * holds back events for a disk we keep locked (flock) until we let go, so
 * a card pulled mid-job shows up here first. */
static bool medium_gone(const struct slot *sl)
{
	char path[PATH_MAX], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/size", sl->dev.syspath);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strtoull(buf, NULL, 10) == 0;
}

static void check_timers(struct station *st)
{
	double now = now_monotonic();
	char label[512];

	for (struct hook_run *h = st->hooks; h; h = h->next) {
		hook_read(h);
		if (!h->timed_out && now > h->deadline) {
			h->timed_out = true;
			kill(-h->pid, SIGKILL);
		}
	}

	for (struct slot *sl = st->slots; sl; sl = sl->next) {
		if (sl->state != ST_RUNNING)
			continue;
		/* Progress lines are written at most twice a second: the last one
		 * before a pause gets out here. */
		live_update(st, sl, false);
		if (!sl->removed && medium_gone(sl)) {
			sl->removed = true;
			stop_worker(sl);
			logmsg("%s: medium gone during job %" PRId64 ", stopping its worker",
			       slot_label(sl, label, sizeof(label)), sl->job);
		}
		if (!sl->timed_out && sl->timeout && now - sl->started > sl->timeout) {
			sl->timed_out = true;
			kill(sl->pid, SIGKILL);
		}
		if (sl->kill_at && now > sl->kill_at) {
			kill(sl->pid, SIGKILL);
			sl->kill_at = 0;
		}
	}
}

static int setup(struct station *st, const char *config_path)
{
	char *err = NULL;
	sigset_t mask;

	st->pending_tail = &st->pending;
	if (config_load(config_path, &st->cfg, &err) < 0) {
		logmsg("%s", err ? err : "cannot load the configuration");
		free(err);
		return -EINVAL;
	}
	if (journal_open(st->cfg->database, false, &st->journal, &err) < 0) {
		logmsg("%s", err ? err : "cannot open the journal");
		free(err);
		return -EIO;
	}
	journal_live_clear(st->journal, NULL);
	journal_set_busy_timeout(st->journal, JOURNAL_WAIT_MS);
	interrupt_earlier(st);

	/* The image cache's filler outlives the worker that forked it (it
	 * belongs to no card): it comes back to the station, which reaps it,
	 * and it stops once it finds itself anyone else's child. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	st->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (st->sfd < 0) {
		logmsg("signalfd: %m");
		return -errno;
	}

	st->udev = udev_new();
	if (!st->udev) {
		logmsg("cannot talk to udev");
		return -EIO;
	}
	/* The monitor first, then the devices already present: a card can be
	 * seen twice (deduplicated) but never missed. */
	st->mon = udev_monitor_new_from_netlink(st->udev, "udev");
	if (!st->mon || udev_monitor_filter_add_match_subsystem_devtype(st->mon, "block", "disk") < 0 ||
	    udev_monitor_enable_receiving(st->mon) < 0) {
		logmsg("cannot listen to udev events (is systemd-udevd running?)");
		return -EIO;
	}
	udev_monitor_set_receive_buffer_size(st->mon, MONITOR_RCVBUF);
	fcntl(udev_monitor_get_fd(st->mon), F_SETFL, O_NONBLOCK);
	logmsg("station '%s' running: %zu profile(s), up to %u worker(s), journal %s",
	       st->cfg->name, st->cfg->n_profiles, st->cfg->max_workers, st->cfg->database);
	enumerate(st);
	return 0;
}

int station_run(const char *config_path)
{
	struct station st = { .sfd = -1 };
	int ret = EXIT_FAILURE;

	if (setup(&st, config_path) < 0)
		goto out;
	for (;;) {
		struct pollfd pfd[2 + 64];
		struct slot *owners[64];
		nfds_t n = 0;
		int r;

		if (st.stopping && st.running == 0 && !st.hooks) {
			pending_flush(&st, false);
			if (!st.pending)
				break;
			if (st.stop_deadline == 0) {
				st.stop_deadline = now_monotonic() + JOURNAL_STOP_GRACE;
				logmsg("stopping: waiting up to %.0f s for the journal to take "
				       "what it still lacks",
				       JOURNAL_STOP_GRACE);
			} else if (now_monotonic() > st.stop_deadline) {
				pending_give_up(&st);
				break;
			}
		}
		pfd[n++] = (struct pollfd){ .fd = st.sfd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = udev_monitor_get_fd(st.mon), .events = POLLIN };
		for (struct slot *sl = st.slots; sl && n < 2 + 64; sl = sl->next)
			if (sl->state == ST_RUNNING && sl->pipe_fd >= 0) {
				owners[n - 2] = sl;
				pfd[n++] = (struct pollfd){ .fd = sl->pipe_fd, .events = POLLIN };
			}
		r = poll(pfd, n, 500);
		if (r < 0 && errno != EINTR) {
			logmsg("poll: %m");
			break;
		}
		for (nfds_t i = 2; r > 0 && i < n; i++)
			if (pfd[i].revents) {
				struct slot *sl = owners[i - 2];

				if (read_pipe(&st, sl)) {
					close(sl->pipe_fd);
					sl->pipe_fd = -1;
				}
			}
		if (r > 0 && pfd[0].revents) {
			struct signalfd_siginfo si;

			while (read(st.sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					reap(&st);
				} else if (si.ssi_signo == SIGHUP) {
					reload(&st, config_path);
				} else if (!st.stopping) {
					logmsg("signal %u: stopping; running jobs are interrupted",
					       si.ssi_signo);
					st.stopping = true;
					for (struct slot *sl = st.slots; sl; sl = sl->next)
						if (sl->state == ST_RUNNING) {
							sl->stopping = true;
							stop_worker(sl);
						}
				}
			}
		}
		if (r > 0 && pfd[1].revents && !st.stopping)
			drain_monitor(&st);
		reap(&st);
		check_timers(&st);
		pending_flush(&st, false);
		schedule(&st);
	}
	logmsg("stopped");
	ret = EXIT_SUCCESS;
out:
	pending_give_up(&st);
	while (st.slots) {
		struct slot *next = st.slots->next;

		if (st.slots->pipe_fd >= 0)
			close(st.slots->pipe_fd);
		slot_free(st.slots);
		st.slots = next;
	}
	if (st.mon)
		udev_monitor_unref(st.mon);
	if (st.udev)
		udev_unref(st.udev);
	if (st.sfd >= 0)
		close(st.sfd);
	journal_close(st.journal);
	config_free(st.cfg);
	return ret;
}

int station_check(const char *config_path, FILE *out)
{
	struct station_config *cfg = NULL;
	struct udev *udev = NULL;
	struct udev_enumerate *en = NULL;
	struct udev_list_entry *e;
	char *err = NULL;
	int ret = EXIT_FAILURE;

	if (config_load(config_path, &cfg, &err) < 0) {
		fprintf(stderr, "bmap-station: %s\n", err ? err : "cannot load the configuration");
		free(err);
		return EXIT_FAILURE;
	}
	fprintf(out, "configuration %s: ok\n", config_path);
	fprintf(out, "station '%s', journal %s, up to %u workers, require_tag '%s'\n", cfg->name,
		cfg->database, cfg->max_workers, cfg->require_tag);
	for (size_t i = 0; i < cfg->n_profiles; i++)
		fprintf(out, "profile %s: image %s, verify %s%s%s\n", cfg->profiles[i].name,
			cfg->profiles[i].image, verify_mode_name(cfg->profiles[i].verify),
			cfg->profiles[i].removable_only ? ", removable only" : "",
			cfg->profiles[i].discard ? ", discard" : "");

	udev = udev_new();
	en = udev ? udev_enumerate_new(udev) : NULL;
	if (!en) {
		fprintf(stderr, "bmap-station: cannot talk to udev\n");
		goto out;
	}
	udev_enumerate_add_match_subsystem(en, "block");
	udev_enumerate_add_match_property(en, "DEVTYPE", "disk");
	/* A disk udev is still working on has no tags or identity yet: its
	 * event comes through the monitor, opened before this scan. */
	udev_enumerate_add_match_is_initialized(en);
	udev_enumerate_scan_devices(en);
	fprintf(out, "\n%-14s %-20s %-10s %s\n", "DEVICE", "SERIAL", "SIZE", "PROFILE OR WHY NOT");
	udev_list_entry_foreach(e, udev_enumerate_get_list_entry(en))
	{
		struct udev_device *u = udev_device_new_from_syspath(udev, udev_list_entry_get_name(e));
		struct device d;
		const struct profile *p = NULL;
		const char *why_match = NULL, *slot;
		char why[1024] = "", h[32], ser[64];

		if (!u)
			continue;
		if (device_from_udev(u, cfg->require_tag, &d) < 0 || device_never_candidate(&d)) {
			udev_device_unref(u);
			continue;
		}
		slot = d.id_path ? config_slot_name(cfg, d.id_path) : NULL;
		if (d.size == 0) {
			snprintf(why, sizeof(why), "no medium");
		} else if (!d.tagged) {
			snprintf(why, sizeof(why), "ignored: not tagged '%s'", cfg->require_tag);
		} else {
			struct device_identity id = {
				.devnode = d.devnode, .serial = d.serial, .vendor = d.vendor,
				.model = d.model, .bus = d.bus, .id_path = d.id_path,
				.size = d.size, .removable = d.removable,
			};

			p = config_match(cfg, &id, slot, &why_match);
			if (!p)
				snprintf(why, sizeof(why), "ignored: no profile matches%s%s",
					 why_match ? ": " : "", why_match ? why_match : "");
			else if (device_gate(&d, cfg->max_device_size, why + 9,
					     sizeof(why) - 9) < 0)
				memcpy(why, "refused: ", 9);
			else if (p->removable_only && !d.removable)
				snprintf(why, sizeof(why), "refused: not removable (profile %s)",
					 p->name);
			else
				snprintf(why, sizeof(why), "profile %s%s%s", p->name,
					 slot ? ", slot " : "", slot ? slot : "");
		}
		fprintf(out, "%-14s %-20s %-10s %s\n", d.devnode ? d.devnode : d.sysname,
			printable(d.serial, ser, sizeof(ser)), human_size(d.size, h), why);
		device_clear(&d);
		udev_device_unref(u);
	}
	ret = EXIT_SUCCESS;
out:
	if (en)
		udev_enumerate_unref(en);
	if (udev)
		udev_unref(udev);
	config_free(cfg);
	return ret;
}
