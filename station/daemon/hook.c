/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hooks: the programs a configuration runs on a card's events (never
 * through a shell), each in its own process group with its output captured
 * and a time limit. A finished hook is handed back as a record; the caller
 * writes it to the journal (hooks never do).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "manager.h"
#include "sanitize.h"
#include "util.h"

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

struct hook_values {
	const char *slot, *serial, *devnode, *profile, *outcome;
	int64_t job;
};

/* @arg with every placeholder replaced; the values go into argv as they
 * are, so quotes, ';' or '$()' in a serial are just characters. */
static char *hook_expand(const char *arg, const struct hook_values *v)
{
	static const char *const names[] = {"%slot",	"%serial",  "%devnode",
					    "%profile", "%outcome", "%job"};
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
	log_warn("cannot run the %s hook %s: %m", hook_event_name(ev), tmpl[0]);
	if (argv)
		for (size_t i = 0; i < n; i++)
			free(argv[i]);
	free(argv);
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

struct hook_run *hook_reaped(struct station *st, pid_t pid, int status, struct hook_record *ret)
{
	for (struct hook_run **p = &st->hooks; *p; p = &(*p)->next) {
		struct hook_run *h = *p;
		char command[512];

		if (h->pid != pid)
			continue;
		hook_read(h);
		close(h->fd);
		h->fd = -1;
		*ret = (struct hook_record){
		    .job = h->job,
		    .event = hook_event_name(h->event),
		    .command = h->command,
		    .duration = now_monotonic() - h->started,
		    .exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 0,
		    .signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0,
		    .timed_out = h->timed_out,
		    .output = h->out,
		    .output_len = h->out_len,
		};
		/* The command holds device strings (%serial); log_at() cleans it. */
		if (ret->signal || ret->exit_status)
			log_warn("the %s hook %s %s %d%s", ret->event,
				 printable(h->command, command, sizeof(command)),
				 ret->signal ? "was killed by signal" : "exited with status",
				 ret->signal ? ret->signal : ret->exit_status,
				 h->timed_out ? " (over hook_timeout)" : "");
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

void hooks_check_timers(struct station *st)
{
	double now = now_monotonic();

	for (struct hook_run *h = st->hooks; h; h = h->next) {
		hook_read(h);
		if (!h->timed_out && now > h->deadline) {
			h->timed_out = true;
			kill(-h->pid, SIGKILL);
		}
	}
}
