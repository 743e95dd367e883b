/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The image cache's files as eviction and its readers see them
 * (cache-evict.c, cache_lock_entry in cache.c): what counts against
 * cache_max_size, what is stale, and a reader's lock on an entry that was
 * evicted while it waited for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "cache-private.h"

#define KEY_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define MIB (1024u * 1024u)

/* @name in @dir holding @size bytes of data (blocks, not a hole). */
static void put(const char *dir, const char *name, size_t size)
{
	char *path = tu_path(dir, name);
	char *buf = malloc(size ? size : 1);

	assert_non_null(buf);
	tu_pattern(buf, size, 7);
	tu_write_file(path, buf, size);
	free(buf);
	free(path);
}

static bool exists(const char *dir, const char *name)
{
	char *path = tu_path(dir, name);
	struct stat st;
	bool r = stat(path, &st) == 0;

	free(path);
	return r;
}

/* Regression: KEY.bmap was not counted against cache_max_size and a
 * KEY.bmap.tmp left by a filler that died was never removed. A bmap is
 * room taken like the entry's; a stale temp bmap goes on sight. */
static void test_bmaps_count_and_stale_tmp_goes(void **state)
{
	char *dir = tu_mkdtemp();

	(void)state;
	put(dir, KEY_A ".img", MIB);
	put(dir, KEY_A ".lock", 0);
	put(dir, KEY_B ".bmap", MIB); /* the bmap of an entry being refilled */
	put(dir, KEY_B ".bmap.tmp", 4096);
	put(dir, KEY_B ".part", MIB); /* its filler died */
	/* 2 MiB in use, 1.5 MiB allowed: the one complete entry must go. */
	assert_int_equal(cache_evict(dir, NULL, 0, 3 * MIB / 2), 0);
	assert_false(exists(dir, KEY_B ".bmap.tmp"));
	assert_false(exists(dir, KEY_B ".part"));
	assert_false(exists(dir, KEY_A ".img"));
	assert_false(exists(dir, KEY_A ".lock"));
	assert_true(exists(dir, KEY_B ".bmap"));
	tu_rmtree(dir);
	free(dir);
}

/* A KEY.bmap.tmp whose filler lives (it holds KEY.fill's lock) is its
 * bmap being written: it stays, and counts. */
static void test_live_fill_tmp_stays(void **state)
{
	char *dir = tu_mkdtemp(), *fill = tu_path(dir, KEY_B ".fill");
	int fd, status;
	pid_t pid;

	(void)state;
	put(dir, KEY_A ".img", MIB);
	put(dir, KEY_B ".bmap.tmp", MIB);
	put(dir, KEY_B ".part", 4096);
	tu_truncate(fill, 4096); /* its state: zeros (size unknown) */
	/* The lock is held by another process, as a filler holds it. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int own = open(fill, O_RDWR | O_CLOEXEC);

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* gone with a test that failed */
		if (getppid() == 1 || own < 0 || cache_fill_lock(own) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	fd = open(fill, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (int i = 0; i < 200 && !cache_fill_alive(fd); i++)
		usleep(5000);
	assert_true(cache_fill_alive(fd));
	assert_int_equal(cache_evict(dir, NULL, 0, 3 * MIB / 2), 0);
	assert_true(exists(dir, KEY_B ".bmap.tmp"));
	assert_true(exists(dir, KEY_B ".part"));
	assert_false(exists(dir, KEY_A ".img"));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(fd);
	free(fill);
	tu_rmtree(dir);
	free(dir);
}

/* Regression: a reader that opened KEY.lock while eviction held it, then
 * waited for its shared lock, held it on the removed file once eviction
 * was done: the next eviction, locking the file named then, took the
 * entry from under it. cache_lock_entry ends holding the file named. */
static void test_lock_taken_on_the_named_file(void **state)
{
	char *dir = tu_mkdtemp(), *lock = tu_path(dir, KEY_A ".lock");
	int evictor, status;
	pid_t pid;

	(void)state;
	evictor = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(evictor >= 0);
	assert_int_equal(flock(evictor, LOCK_EX), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stat held, named;
		int fd, other, code;

		close(evictor); /* the lock is its open file's, shared across fork */
		if (cache_lock_entry(lock, &fd) < 0)
			code = 2;
		else if (fstat(fd, &held) < 0 || stat(lock, &named) < 0 ||
			 held.st_ino != named.st_ino)
			code = 1;
		else /* ... and a second eviction cannot take it from this reader */
			code = (other = open(lock, O_RDWR | O_CLOEXEC)) >= 0 &&
					       flock(other, LOCK_EX | LOCK_NB) < 0
				       ? 0
				       : 3;
		free(lock);
		free(dir);
		_exit(code);
	}
	/* The reader is in its wait (or about to be): eviction removes the
	 * lock it holds, then lets it go. */
	usleep(200 * 1000);
	assert_int_equal(unlink(lock), 0);
	close(evictor);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(lock);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bmaps_count_and_stale_tmp_goes),
		cmocka_unit_test(test_live_fill_tmp_stays),
		cmocka_unit_test(test_lock_taken_on_the_named_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
