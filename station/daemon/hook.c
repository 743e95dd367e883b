/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hooks: the programs a configuration runs on a card's events, their
 * arguments and environment (never a shell), each under a keeper
 * (hook-keeper.c) that reads its output and holds it, with all it starts,
 * to hook_timeout. A finished hook is handed back as a record; the caller
 * writes it to the journal (hooks never do).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hook-keeper.h"
#include "manager.h"
#include "sanitize.h"
#include "util.h"

#define HOOK_KEEPER_GRACE 5.0 /* seconds past hook_timeout before the keeper itself is killed */

/* A hook running: its keeper (hook-keeper.c), which runs the command
 * (never through a shell; see config.h) and reports what it did. */
struct hook_run {
	struct hook_run *next;
	pid_t pid; /* the keeper's */
	int fd;	   /* the keeper's report */
	int64_t job;
	enum hook_event event;
	unsigned timeout;
	char *command;
	double started, kill_at;
	bool killed; /* the keeper overran hook_timeout itself */
	struct hook_report report;
};

/* What a hook is told, as %placeholders in its arguments and, every one of
 * them and more, in its environment (BMAP_STATION_SERIAL, ...). */
struct hook_values {
	const char *slot, *serial, *devnode, *profile, *outcome, *event, *station;
	int64_t job;
};

static const struct {
	const char *placeholder; /* NULL: in the environment only */
	const char *env;
} hook_fields[] = {
    {"%slot", "BMAP_STATION_SLOT="},	   {"%serial", "BMAP_STATION_SERIAL="},
    {"%devnode", "BMAP_STATION_DEVNODE="}, {"%profile", "BMAP_STATION_PROFILE="},
    {"%outcome", "BMAP_STATION_OUTCOME="}, {"%job", "BMAP_STATION_JOB="},
    {NULL, "BMAP_STATION_EVENT="},	   {NULL, "BMAP_STATION_NAME="},
};

/* @v's values in hook_fields' order, NULL as "" (@job holds the number). */
static void hook_field_values(const struct hook_values *v, char job[static 32],
			      const char *vals[static ARRAY_SIZE(hook_fields)])
{
	job[0] = '\0';
	if (v->job > 0)
		snprintf(job, 32, "%" PRId64, v->job);
	vals[0] = v->slot;
	vals[1] = v->serial;
	vals[2] = v->devnode;
	vals[3] = v->profile;
	vals[4] = v->outcome;
	vals[5] = job;
	vals[6] = v->event;
	vals[7] = v->station;
	for (size_t i = 0; i < ARRAY_SIZE(hook_fields); i++)
		if (!vals[i])
			vals[i] = "";
}

/* @arg with every placeholder replaced; the values go into argv as they
 * are, so quotes, ';' or '$()' in a serial are just characters (a leading
 * '-' is the program's business: the README says to put "--" first). */
static char *hook_expand(const char *arg, const char *const *vals)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	while (*arg) {
		size_t i;

		for (i = 0; i < ARRAY_SIZE(hook_fields); i++)
			if (hook_fields[i].placeholder &&
			    strncmp(arg, hook_fields[i].placeholder,
				    strlen(hook_fields[i].placeholder)) == 0)
				break;
		if (i < ARRAY_SIZE(hook_fields)) {
			fputs(vals[i], f);
			arg += strlen(hook_fields[i].placeholder);
		} else {
			fputc(*arg++, f);
		}
	}
	fclose(f);
	return out;
}

/* The station's environment with every value in a BMAP_STATION_* variable
 * (set, empty when unknown, so none is ever inherited from the station's
 * own environment); the first ARRAY_SIZE(hook_fields) entries are ours. */
static char **hook_env(const char *const *vals)
{
	size_t n = 0, k = 0;
	char **env;

	for (char **e = environ; *e; e++)
		n++;
	env = calloc(n + ARRAY_SIZE(hook_fields) + 1, sizeof(char *));
	if (!env)
		return NULL;
	for (; k < ARRAY_SIZE(hook_fields); k++)
		if (asprintf(&env[k], "%s%s", hook_fields[k].env, vals[k]) < 0) {
			env[k] = NULL;
			goto fail;
		}
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "BMAP_STATION_", strlen("BMAP_STATION_")) != 0)
			env[k++] = *e;
	return env;
fail:
	for (size_t i = 0; i < k; i++)
		free(env[i]);
	free(env);
	return NULL;
}

static void hook_env_free(char **env)
{
	if (!env)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(hook_fields); i++)
		free(env[i]);
	free(env);
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
	const char *vals[ARRAY_SIZE(hook_fields)];
	struct hook_run *h;
	char **argv, **env = NULL, job[32];
	size_t n = 0;
	int fds[2];

	hook_field_values(v, job, vals);
	while (tmpl[n])
		n++;
	argv = calloc(n + 1, sizeof(char *));
	h = calloc(1, sizeof(*h));
	if (!argv || !h)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (!(argv[i] = hook_expand(tmpl[i], vals)))
			goto fail;
	h->command = hook_display(argv);
	env = hook_env(vals);
	if (!h->command || !env || pipe2(fds, O_CLOEXEC) < 0)
		goto fail;
	h->timeout = st->cfg->hook_timeout;
	fflush(stderr);
	h->pid = fork();
	if (h->pid < 0) {
		close(fds[0]);
		close(fds[1]);
		goto fail;
	}
	if (h->pid == 0)
		hook_keeper_run(argv, env, h->timeout, fds[1]);
	setpgid(h->pid, h->pid); /* as the keeper does: no race with a quick kill */
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	h->fd = fds[0];
	h->job = v->job;
	h->event = ev;
	h->started = now_monotonic();
	h->kill_at = h->started + h->timeout + HOOK_KEEPER_GRACE;
	h->next = st->hooks;
	st->hooks = h;
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	hook_env_free(env);
	return;
fail:
	log_warn("cannot run the %s hook %s: %m", hook_event_name(ev), tmpl[0]);
	if (argv)
		for (size_t i = 0; i < n; i++)
			free(argv[i]);
	free(argv);
	hook_env_free(env);
	if (h)
		free(h->command);
	free(h);
}

/* The station's hook for @ev, then the profile's. */
void hooks_run(struct station *st, const struct card *c, enum hook_event ev, const char *outcome,
	       int64_t job)
{
	struct hook_values v = {
	    .slot = c->slot_name,
	    .serial = c->dev.serial,
	    .devnode = c->dev.devnode,
	    .profile = c->profile,
	    .outcome = outcome,
	    .event = hook_event_name(ev),
	    .station = st->cfg->name,
	    .job = job,
	};

	if (st->cfg->hooks.argv[ev])
		hook_start(st, st->cfg->hooks.argv[ev], ev, &v);
	if (!c->profile)
		return;
	for (size_t i = 0; i < st->cfg->n_profiles; i++)
		if (strcmp(st->cfg->profiles[i].name, c->profile) == 0 &&
		    st->cfg->profiles[i].hooks.argv[ev])
			hook_start(st, st->cfg->profiles[i].hooks.argv[ev], ev, &v);
}

/* Every outcome but success is a failure, whether a worker ran or not (a
 * missing image, a refusal, a pulled card, a time-out, a stop); a card no
 * profile wants (ignored) is none of the station's business. */
void hooks_run_end(struct station *st, const struct card *c)
{
	if (!c->has_outcome || c->outcome == OUTCOME_RUNNING || c->outcome == OUTCOME_IGNORED)
		return;
	hooks_run(st, c, c->outcome == OUTCOME_SUCCESS ? HOOK_SUCCESS : HOOK_FAILURE,
		  outcome_name(c->outcome), c->job);
}

/* The keeper's report, there in full once it has exited; false when it
 * died without one. */
static bool hook_take_report(struct hook_run *h)
{
	const size_t head = offsetof(struct hook_report, output);
	char *p = (char *)&h->report;
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(h->report) && (n = read(h->fd, p + got, sizeof(h->report) - got)) > 0)
		got += (size_t)n;
	if (got < head)
		return false;
	if (h->report.output_len > got - head)
		h->report.output_len = (uint32_t)(got - head);
	return true;
}

struct hook_run *hook_reaped(struct station *st, pid_t pid, int status, struct hook_record *ret)
{
	for (struct hook_run **p = &st->hooks; *p; p = &(*p)->next) {
		struct hook_run *h = *p;
		const struct hook_report *r = &h->report;
		char command[512];
		bool reported;

		if (h->pid != pid)
			continue;
		reported = hook_take_report(h);
		close(h->fd);
		h->fd = -1;
		if (!reported) {
			/* Only the keeper's own end is known. */
			h->report = (struct hook_report){.wstatus = status};
			log_err("the %s hook %s: its keeper ended without a report (%s %d)",
				hook_event_name(h->event),
				printable(h->command, command, sizeof(command)),
				WIFSIGNALED(status) ? "signal" : "status",
				WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		}
		*ret = (struct hook_record){
		    .job = h->job,
		    .event = hook_event_name(h->event),
		    .command = h->command,
		    .duration = reported ? r->duration : now_monotonic() - h->started,
		    .exit_status = WIFEXITED(r->wstatus) ? WEXITSTATUS(r->wstatus) : 0,
		    .signal = WIFSIGNALED(r->wstatus) ? WTERMSIG(r->wstatus) : 0,
		    /* it, or what it left behind, overran hook_timeout */
		    .timed_out = r->timed_out || r->leftovers || h->killed,
		    .output = r->output,
		    .output_len = r->output_len,
		};
		/* The command holds device strings (%serial); log_at() cleans it. */
		if (reported && (ret->signal || ret->exit_status))
			log_warn("the %s hook %s %s %d%s", ret->event,
				 printable(h->command, command, sizeof(command)),
				 ret->signal ? "was killed by signal" : "exited with status",
				 ret->signal ? ret->signal : ret->exit_status,
				 r->timed_out ? " (over hook_timeout)" : "");
		if (r->leftovers)
			log_warn("the %s hook %s left %" PRIu32 " process(es) running at "
				 "hook_timeout (%u s): killed",
				 ret->event, printable(h->command, command, sizeof(command)),
				 r->leftovers, h->timeout);
		*p = h->next;
		return h;
	}
	return NULL;
}

void hook_done(struct station *st, struct hook_run *h)
{
	(void)st;
	free(h->command);
	free(h);
}

/* The keeper enforces hook_timeout; this is for a keeper that does not end
 * (stuck killing a process that will not die). */
void hooks_check_timers(struct station *st)
{
	double now = now_monotonic();
	char command[512];

	for (struct hook_run *h = st->hooks; h; h = h->next)
		if (!h->killed && now > h->kill_at) {
			h->killed = true;
			kill(-h->pid, SIGKILL);
			log_err("the %s hook %s: its keeper did not end %.0f s after hook_timeout; "
				"killed with its process group",
				hook_event_name(h->event),
				printable(h->command, command, sizeof(command)), HOOK_KEEPER_GRACE);
		}
}
