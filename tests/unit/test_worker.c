/*
 * Unit tests for the station's worker (station/daemon/worker.c), the child
 * that flashes one card: run in a forked process as the daemon runs it,
 * with a regular file as the card, its pipe read back line by line.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "bmap.h"
#include "cache.h"
#include "worker.h"

#define IMG_SIZE (2u * 1024 * 1024)

/* The cancel flags are read by the engine's threads while a signal handler
 * or another thread sets them: they must be atomic, not volatile int (a
 * data race). Checked where the type is declared, at compile time. */
_Static_assert(_Generic(((struct bmap_copy_opts *)0)->cancel, atomic_int *: 1, default: 0),
	       "bmap_copy_opts.cancel must be atomic_int *");
_Static_assert(_Generic(((struct cache_use *)0)->cancel, atomic_int *: 1, default: 0),
	       "cache_use.cancel must be atomic_int *");

struct fixture {
	char *dir, *img, *bmap, *card;
};

/* An image with two data ranges, its bmap, and a card file name. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct bmap_create_opts opts = {0};
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *buf = malloc(256 * 1024);
	int ifd, ofd;

	f->dir = tu_mkdtemp();
	f->img = tu_path(f->dir, "disk.img");
	f->bmap = tu_path(f->dir, "disk.img.bmap");
	f->card = tu_path(f->dir, "card.img");
	tu_truncate(f->img, IMG_SIZE);
	tu_pattern(buf, 256 * 1024, 1);
	tu_pwrite(f->img, buf, 256 * 1024, 0);
	tu_pattern(buf, 256 * 1024, 2);
	tu_pwrite(f->img, buf, 256 * 1024, 1024 * 1024);
	free(buf);
	ifd = open(f->img, O_RDONLY | O_CLOEXEC);
	ofd = open(f->bmap, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_int_equal(bmap_create(ctx, ifd, f->img, ofd, f->bmap, &opts, NULL), 0);
	close(ifd);
	close(ofd);
	bmap_ctx_free(ctx);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rmtree(f->dir);
	free(f->dir);
	free(f->img);
	free(f->bmap);
	free(f->card);
	free(f);
	return 0;
}

/* Runs worker_run(@job) in a child as the daemon does (SIGTERM blocked,
 * for its signalfd), with a SIGTERM already pending when @sigterm; returns
 * what it wrote to its pipe (malloc'd) and its wait status. */
static char *run_worker(const struct worker_job *job, bool sigterm, int *ret_status)
{
	size_t len = 0, cap = 4096;
	char *out;
	int fds[2];
	pid_t pid;
	ssize_t n;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sigset_t mask;

		close(fds[0]);
		sigemptyset(&mask);
		sigaddset(&mask, SIGTERM);
		sigaddset(&mask, SIGCHLD);
		sigprocmask(SIG_BLOCK, &mask, NULL);
		/* The daemon's SIGTERM (a job_timeout, a pulled card) may
		 * come right after the fork, before the worker set up. */
		if (sigterm)
			kill(getpid(), SIGTERM);
		_exit(worker_run(job, fds[1]));
	}
	close(fds[1]);
	/* Allocated after the fork: the child (under valgrind too) leaks
	 * nothing of its own. */
	out = malloc(cap);
	while ((n = read(fds[0], out + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2)
			out = realloc(out, cap *= 2);
	}
	out[len] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, ret_status, 0), pid);
	return out;
}

/* Regression: the worker unblocked the signals it inherited before it
 * installed its SIGTERM handler, so a SIGTERM sent right after the fork
 * killed it by default action: no result, no sync, "died of signal 15". */
static void test_worker_sigterm_before_handler(void **state)
{
	struct fixture *f = *state;
	struct worker_job job = {
	    .devnode = f->card, .image = f->img, .bmap = f->bmap, .verify = VERIFY_CHECKSUMS};
	int status;
	char *out = run_worker(&job, true, &status);

	if (WIFSIGNALED(status))
		fail_msg("the worker died of signal %d; its pipe: %s", WTERMSIG(status), out);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_non_null(strstr(out, "result interrupted "));
	free(out);
}

/* The same job without the signal succeeds: the test above sees the
 * signal's effect, not a broken job. */
static void test_worker_flashes_file(void **state)
{
	struct fixture *f = *state;
	struct worker_job job = {
	    .devnode = f->card, .image = f->img, .bmap = f->bmap, .verify = VERIFY_READBACK};
	int status;
	char *out = run_worker(&job, false, &status);

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(out, "result success "));
	tu_assert_same_file(f->img, f->card);
	free(out);
}

/* Regression: verify = "none" behaved like "checksums" (the worker never
 * set no_verify): an image whose data no longer fits its bmap's range
 * checksums failed the card. With none, nothing is checked: the card gets
 * the image's bytes and succeeds; checksums and readback still fail it. */
static void test_worker_verify_none_checks_nothing(void **state)
{
	struct fixture *f = *state;
	struct worker_job job = {.devnode = f->card, .image = f->img, .bmap = f->bmap};
	int status;
	char *out;

	/* One byte of the second range changed after the bmap was made. */
	tu_pwrite(f->img, "X", 1, 1024 * 1024 + 4242);

	job.verify = VERIFY_CHECKSUMS;
	out = run_worker(&job, false, &status);
	assert_true(WIFEXITED(status));
	assert_non_null(strstr(out, "result failed "));
	assert_non_null(strstr(out, "checksum"));
	free(out);

	job.verify = VERIFY_READBACK;
	out = run_worker(&job, false, &status);
	assert_true(WIFEXITED(status));
	assert_non_null(strstr(out, "result failed "));
	free(out);

	job.verify = VERIFY_NONE;
	out = run_worker(&job, false, &status);
	assert_true(WIFEXITED(status));
	if (!strstr(out, "result success "))
		fail_msg("verify = none checked the data: %s", out);
	assert_int_equal(WEXITSTATUS(status), 0);
	tu_assert_same_file(f->img, f->card);
	free(out);
}

/* The worker checks the signature again on the bytes it parses (what the
 * probe verified may have been replaced since): a profile that requires a
 * signature refuses an unsigned bmap there too, before the card is opened,
 * and a bmap whose signer is not the one the journal recorded fails. */
static void test_worker_verifies_signature_again(void **state)
{
	struct fixture *f = *state;
	struct sig_policy required = {.mode = SIG_REQUIRED};
	struct sig_policy optional = {.mode = SIG_OPTIONAL};
	struct worker_job job = {.devnode = f->card, .image = f->img, .bmap = f->bmap,
				 .verify = VERIFY_CHECKSUMS, .sig = &required};
	int status;
	char *out = run_worker(&job, false, &status);

	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	if (!strstr(out, "result refused ") || !strstr(out, "a signature is required"))
		fail_msg("an unsigned bmap passed a required signature: %s", out);
	/* Never opened, so never created. */
	assert_int_equal(access(f->card, F_OK), -1);
	free(out);

	job.sig = &optional;
	job.signer = "0123456789ABCDEF0123456789ABCDEF01234567";
	out = run_worker(&job, false, &status);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	if (!strstr(out, "result failed ") || !strstr(out, "signer changed"))
		fail_msg("a signer other than the journal's went unnoticed: %s", out);
	assert_int_equal(access(f->card, F_OK), -1);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_worker_sigterm_before_handler, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_worker_flashes_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_worker_verifies_signature_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_worker_verify_none_checks_nothing, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
