/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A hook's keeper: the process the station forks for each hook, between it
 * and the hook program. It holds the hook to hook_timeout, with everything
 * the hook starts, and reports what the hook did.
 *
 * The keeper is a child subreaper, so whatever the hook leaves behind
 * (background jobs, setsid, double forks) is reparented to the keeper, never
 * to the station or init: the hook's processes are exactly the keeper's
 * descendants, and at hook_timeout it kills them level by level until it
 * has no child left. It also reads the hook's output as it comes (the first
 * 4 KiB kept, the rest read and dropped), so a talkative hook never blocks
 * on a full pipe. The station only reaps the keeper and reads its report;
 * a cgroup per hook would do the same, but the unit's ProtectControlGroups
 * and cgroup v1 hosts leave none writable.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hook-keeper.h"
#include "util.h"

#define KILL_BATCH 256 /* children killed per pass; more passes take the rest */

/* Nothing of the station's stays open here (its journal, the udev socket,
 * locks, other hooks' and workers' pipes): a keeper may outlive the
 * station, and must not hold what a restarted one needs. */
static void keeper_close_fds(int keep)
{
	struct rlimit rl;
	int max = 65536, r;

	if (keep < 3) {
		r = close_range(3, ~0U, 0);
	} else {
		r = keep > 3 ? close_range(3, (unsigned)keep - 1, 0) : 0;
		if (r == 0)
			r = close_range((unsigned)keep + 1, ~0U, 0);
	}
	if (r == 0)
		return;
	/* No close_range (an old kernel, or a seccomp filter): one by one. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)max)
		max = (int)rl.rlim_cur;
	for (int fd = 3; fd < max; fd++)
		if (fd != keep)
			close(fd);
}

/* The keeper's children, from /proc (the fourth field of stat is the
 * parent): a process the keeper has not reaped keeps its pid, so none of
 * these can be another's by the time it is killed. */
static size_t keeper_children(pid_t self, pid_t *pids, size_t max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while (n < max && (e = readdir(d))) {
		char path[300], buf[512], *p;
		int fd, ppid;
		ssize_t len;
		char state;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		/* The name in parentheses may hold anything, ')' too. */
		p = strrchr(buf, ')');
		if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 && ppid == self)
			pids[n++] = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return n;
}

/* SIGKILL to every child, each reaped; the ones they leave come back to
 * the keeper (it is their subreaper) and go in the next pass. */
static void keeper_kill_all(pid_t hook, struct hook_report *rep, double started)
{
	pid_t self = getpid(), pids[KILL_BATCH];
	size_t n;

	while ((n = keeper_children(self, pids, KILL_BATCH)) > 0) {
		for (size_t i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		for (size_t i = 0; i < n; i++) {
			int status;

			if (waitpid(pids[i], &status, 0) != pids[i])
				continue;
			if (pids[i] == hook) {
				rep->wstatus = status;
				rep->duration = now_monotonic() - started;
				rep->timed_out = true;
			} else {
				rep->leftovers++;
			}
		}
	}
	/* Children /proc did not show (none should be left): reaped blind. */
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* Reads what is there: the start kept, the rest dropped. False at end of
 * file or on an error (nothing more will come). */
static bool keeper_read(int fd, struct hook_report *rep)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		size_t room = sizeof(rep->output) - rep->output_len;

		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0)
			return false;
		if ((size_t)n < room)
			room = (size_t)n;
		memcpy(rep->output + rep->output_len, buf, room);
		rep->output_len += (uint32_t)room;
	}
}

/* The hook program itself, after fork: a clean slate, then execve. */
__attribute__((noreturn)) static void keeper_exec(char *const *argv, char *const *envp, int out)
{
	sigset_t none;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	/* execve keeps ignored signals ignored: the keeper's SIGPIPE, and
	 * whatever the station ignores, would reach the program. */
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (null >= 0)
		dup2(null, STDIN_FILENO);
	dup2(out, STDOUT_FILENO);
	dup2(out, STDERR_FILENO);
	execve(argv[0], argv, envp);
	dprintf(STDERR_FILENO, "cannot run %s: %m\n", argv[0]);
	_exit(127);
}

void hook_keeper_run(char *const *argv, char *const *envp, unsigned timeout, int report_fd)
{
	static struct hook_report rep;
	double started = now_monotonic(), deadline = started + timeout;
	bool out_open = true;
	int out[2] = {-1, -1}, sfd;
	sigset_t chld;
	pid_t hook;

	/* Its own process group (the station's last resort kills it whole). */
	setpgid(0, 0);
	keeper_close_fds(report_fd);
	/* 0..2 open, so that the pipe below is none of them. */
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			_exit(EXIT_FAILURE);
	signal(SIGPIPE, SIG_IGN); /* a station gone: the report is lost, no more */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		dprintf(STDERR_FILENO,
			"<4>bmap-station: the %s hook: cannot be a child subreaper (%m): what it "
			"leaves behind is not stopped at hook_timeout\n",
			argv[0]);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_SETMASK, &chld, NULL);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || pipe2(out, O_CLOEXEC) < 0) {
		rep.wstatus = 127 << 8;
		rep.output_len = (uint32_t)snprintf(rep.output, sizeof(rep.output),
						    "cannot run %s: %m\n", argv[0]);
		goto report;
	}
	hook = fork();
	if (hook < 0) {
		rep.wstatus = 127 << 8;
		rep.output_len = (uint32_t)snprintf(rep.output, sizeof(rep.output),
						    "cannot run %s: fork: %m\n", argv[0]);
		goto report;
	}
	if (hook == 0)
		keeper_exec(argv, envp, out[1]);
	close(out[1]);
	fcntl(out[0], F_SETFL, O_NONBLOCK);

	for (;;) {
		struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN},
					{.fd = out[0], .events = POLLIN}};
		struct signalfd_siginfo si;
		double left;
		int status;
		pid_t pid;

		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (pid == hook) {
				rep.wstatus = status;
				rep.duration = now_monotonic() - started;
			}
		/* No child left: the hook and all it started have ended. */
		if (pid < 0 && errno == ECHILD)
			break;
		left = deadline - now_monotonic();
		if (left <= 0) {
			keeper_kill_all(hook, &rep, started);
			break;
		}
		if (poll(pfd, out_open ? 2 : 1, (int)(left * 1000) + 1) < 0 && errno != EINTR) {
			/* Nothing to wait with: the hook ends here, with all it started. */
			keeper_kill_all(hook, &rep, started);
			break;
		}
		while (read(sfd, &si, sizeof(si)) == sizeof(si))
			;
		if (out_open && pfd[1].revents && !keeper_read(out[0], &rep))
			out_open = false;
	}
	/* What the hook wrote last, and anything its leftovers did. */
	if (out_open)
		keeper_read(out[0], &rep);
report:
	loop_write(report_fd, &rep, offsetof(struct hook_report, output) + rep.output_len);
	_exit(EXIT_SUCCESS);
}
