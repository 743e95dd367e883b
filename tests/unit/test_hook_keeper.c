/*
 * Unit tests for a hook's keeper (hook-keeper.c), without the station: the
 * keeper is forked as hook.c forks it, runs small /bin/sh scripts, and its
 * report is read from its pipe. Output far past a pipe's size, processes
 * left behind (background, setsid, a double fork), a hook still running at
 * its time-out, the environment, signals the caller ignores, a program that
 * does not exist. The same through the daemon: the integration tests
 * station-hooks-big-output and station-hooks-leftover.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "hook-keeper.h"

/* Runs @script under a keeper; returns the bytes of report it sent. */
static size_t keep(const char *script, char *const *envp, unsigned timeout,
		   struct hook_report *rep)
{
	char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)script, NULL};
	size_t got = 0;
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		hook_keeper_run(argv, envp, timeout, fds[1]);
	close(fds[1]);
	memset(rep, 0, sizeof(*rep));
	while ((n = read(fds[0], (char *)rep + got, sizeof(*rep) - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return got;
}

/* How many processes have @token in their command line. */
static int with_token(const char *token)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int count = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[300], buf[4096];
		ssize_t n;
		int fd;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		for (ssize_t i = 0; i < n; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[n] = '\0';
		if (strstr(buf, token))
			count++;
	}
	closedir(d);
	return count;
}

static char *const no_env[] = {NULL};

/* 2 MiB is 32 pipes full: the keeper reads it all, keeps the start, and
 * the hook ends with its own status. */
static void test_hook_keeper_big_output_finishes(void **state)
{
	struct hook_report rep;
	size_t got;

	(void)state;
	got = keep("head -c 2097152 /dev/zero | tr '\\0' a; exit 5", no_env, 30, &rep);
	assert_int_equal(got, offsetof(struct hook_report, output) + HOOK_OUTPUT_MAX);
	assert_true(WIFEXITED(rep.wstatus));
	assert_int_equal(WEXITSTATUS(rep.wstatus), 5);
	assert_false(rep.timed_out);
	assert_int_equal(rep.leftovers, 0);
	assert_int_equal(rep.output_len, HOOK_OUTPUT_MAX);
	for (size_t i = 0; i < HOOK_OUTPUT_MAX; i++)
		assert_int_equal(rep.output[i], 'a');
}

/* A hook that ends at once, leaving a background job, a setsid child and a
 * double fork behind: all gone when the keeper reports. */
static void test_hook_keeper_kills_what_the_hook_left(void **state)
{
	char token[64], script[512];
	struct hook_report rep;

	(void)state;
	snprintf(token, sizeof(token), "1000.%d77", (int)getpid());
	snprintf(script, sizeof(script),
		 "sleep %s1 & setsid sleep %s2 </dev/null >/dev/null 2>&1 & "
		 "( setsid sh -c 'sleep %s3' </dev/null >/dev/null 2>&1 & ); echo done",
		 token, token, token);
	keep(script, no_env, 1, &rep);
	assert_true(WIFEXITED(rep.wstatus));
	assert_int_equal(WEXITSTATUS(rep.wstatus), 0);
	assert_false(rep.timed_out); /* the hook itself had ended */
	assert_true(rep.leftovers >= 3);
	assert_int_equal(with_token(token), 0);
	assert_int_equal(rep.output_len, 5);
	assert_memory_equal(rep.output, "done\n", 5);
}

/* Still running at its time-out: killed with what it started. */
static void test_hook_keeper_times_out(void **state)
{
	char token[64], script[256];
	struct hook_report rep;

	(void)state;
	snprintf(token, sizeof(token), "1000.%d78", (int)getpid());
	snprintf(script, sizeof(script), "setsid sleep %s1 & sleep %s2", token, token);
	keep(script, no_env, 1, &rep);
	assert_true(WIFSIGNALED(rep.wstatus));
	assert_int_equal(WTERMSIG(rep.wstatus), SIGKILL);
	assert_true(rep.timed_out);
	assert_true(rep.leftovers >= 1);
	assert_int_equal(with_token(token), 0);
}

/* The hook gets the environment it is given, and default signals: the
 * caller's ignored SIGPIPE would make `yes` fail on a closed pipe. */
static void test_hook_keeper_env_and_signals(void **state)
{
	char *const env[] = {(char *)"BMAP_STATION_SERIAL=--output=x", NULL};
	struct hook_report rep;
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);

	(void)state;
	keep("printf '%s\\n' \"$BMAP_STATION_SERIAL\"; yes | head -c 4", env, 30, &rep);
	signal(SIGPIPE, old);
	assert_true(WIFEXITED(rep.wstatus));
	assert_int_equal(WEXITSTATUS(rep.wstatus), 0);
	assert_int_equal(rep.output_len, strlen("--output=x\ny\ny\n"));
	assert_memory_equal(rep.output, "--output=x\ny\ny\n", rep.output_len);
}

static void test_hook_keeper_missing_program(void **state)
{
	char *argv[] = {(char *)"/nonexistent/hook", NULL};
	struct hook_report rep = {0};
	int fds[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		hook_keeper_run(argv, no_env, 30, fds[1]);
	close(fds[1]);
	while ((n = read(fds[0], (char *)&rep + got, sizeof(rep) - got)) > 0)
		got += (size_t)n;
	close(fds[0]);
	waitpid(pid, &status, 0);
	assert_true(got >= offsetof(struct hook_report, output));
	assert_true(WIFEXITED(rep.wstatus));
	assert_int_equal(WEXITSTATUS(rep.wstatus), 127);
	assert_non_null(memmem(rep.output, rep.output_len, "cannot run /nonexistent/hook", 28));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hook_keeper_big_output_finishes),
	    cmocka_unit_test(test_hook_keeper_kills_what_the_hook_left),
	    cmocka_unit_test(test_hook_keeper_times_out),
	    cmocka_unit_test(test_hook_keeper_env_and_signals),
	    cmocka_unit_test(test_hook_keeper_missing_program),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
