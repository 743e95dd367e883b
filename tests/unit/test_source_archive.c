/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The container layer (source-archive.c): tars of every header format (v7,
 * ustar, GNU, pax, GNU and pax sparse members) and zips made by the real
 * tools, plain and compressed, from files and pipes: the member's bytes,
 * positions (tell is the member's, input_pos the file's), skips inside the
 * member, the member's name and size, no raw fd; and a raw image that is
 * no tar is left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "source.h"

#define IMG_SIZE (1024u * 1024 + 777)

static struct {
	char *dir;
	uint8_t *data;
} g;

static int setup(void **state)
{
	char *img;

	(void)state;
	g.dir = tu_mkdtemp();
	g.data = calloc(1, IMG_SIZE);
	/* Data, holes of several sizes, data at the odd end. */
	tu_pattern(g.data, 5000, 1);
	tu_pattern(g.data + 300000, 70000, 2);
	tu_pattern(g.data + IMG_SIZE - 777, 777, 3);
	img = tu_path(g.dir, "disk.img");
	tu_truncate(img, IMG_SIZE);
	tu_pwrite(img, g.data, 5000, 0);
	tu_pwrite(img, g.data + 300000, 70000, 300000);
	tu_pwrite(img, g.data + IMG_SIZE - 777, 777, IMG_SIZE - 777);
	free(img);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmtree(g.dir);
	free(g.dir);
	free(g.data);
	return 0;
}

/* Runs @cmd in the test folder; skips the test when @prog is missing. */
static void make(const char *prog, const char *cmd)
{
	char line[1024];

	snprintf(line, sizeof(line), "command -v %s >/dev/null 2>&1", prog);
	if (system(line) != 0) {
		print_message("no %s: not tested\n", prog);
		skip();
	}
	snprintf(line, sizeof(line), "cd '%s' && %s", g.dir, cmd);
	assert_int_equal(system(line), 0);
}

/* Reads @name's image: the member's bytes, with a skip in the middle. */
static void check(const char *name, enum bmap_compression comp, enum bmap_container kind,
		  bool pipe)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *path = tu_path(g.dir, name);
	uint8_t *buf = malloc(IMG_SIZE + 10);
	struct bmap_source *s;
	uint64_t size = 0;
	ssize_t n;
	FILE *f = NULL;

	if (pipe) {
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "cat '%s'", path);
		f = popen(cmd, "r");
		assert_non_null(f);
		assert_int_equal(
		    bmap_source_open_fd(ctx, fcntl(fileno(f), F_DUPFD_CLOEXEC, 3), name, &s), 0);
	} else if (bmap_source_open(ctx, path, &s) < 0) {
		fail_msg("%s: %s", name, bmap_ctx_get_error(ctx));
	}
	assert_int_equal(bmap_source_get_compression(s), comp);
	assert_int_equal(bmap_source_get_container(s), kind);
	assert_string_equal(bmap_source_get_member(s), "disk.img");
	if (bmap_source_get_member_size(s, &size))
		assert_int_equal(size, IMG_SIZE);
	assert_int_equal(bmap_source_get_raw_fd(s), -1);
	assert_int_equal(bmap_source_get_format(s), BMAP_FORMAT_RAW);

	/* 4096 bytes, a skip over the first hole, the rest. */
	n = bmap_source_read(s, buf, 4096);
	assert_int_equal(n, 4096);
	assert_int_equal(bmap_source_skip(s, 300000 - 4096), 0);
	assert_int_equal(bmap_source_tell(s), 300000);
	n = bmap_source_read(s, buf + 300000, IMG_SIZE + 10 - 300000);
	if (n < 0)
		fail_msg("%s: %s", name, bmap_ctx_get_error(ctx));
	assert_int_equal(n, IMG_SIZE - 300000);
	assert_memory_equal(buf, g.data, 4096);
	assert_memory_equal(buf + 300000, g.data + 300000, IMG_SIZE - 300000);
	assert_int_equal(bmap_source_tell(s), IMG_SIZE);
	assert_int_equal(bmap_source_read(s, buf, 10), 0);
	/* The input read so far: within the file (libarchive reads ahead). */
	if (!pipe) {
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_true(bmap_source_input_pos(s) > 0);
		assert_true(bmap_source_input_pos(s) <= (uint64_t)st.st_size);
	}
	bmap_source_free(s);
	if (f)
		pclose(f);
	free(buf);
	free(path);
	bmap_ctx_free(ctx);
}

static void test_tar_formats(void **state)
{
	(void)state;
	make("tar", "tar --format=v7 -cf v7.tar disk.img && tar --format=ustar -cf ustar.tar "
		    "disk.img && tar --format=gnu -cf gnu.tar disk.img && tar --format=pax -cf "
		    "pax.tar disk.img && tar --format=gnu -S -cf gnu-sparse.tar disk.img && "
		    "tar --format=pax -S -cf pax-sparse.tar disk.img");
	static const char *const names[] = {"v7.tar",	"ustar.tar",	  "gnu.tar",
					    "pax.tar", "gnu-sparse.tar", "pax-sparse.tar"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		check(names[i], BMAP_COMP_RAW, BMAP_CONTAINER_TAR, false);
		check(names[i], BMAP_COMP_RAW, BMAP_CONTAINER_TAR, true);
	}
}

static void test_tar_compressed(void **state)
{
	(void)state;
	make("zstd", "tar -cf - disk.img | zstd -q -c > disk.tar.zst && tar -cf - disk.img | "
		     "gzip -c > disk.tgz && tar --format=pax -S -cf - disk.img | xz -c > disk.txz");
	check("disk.tar.zst", BMAP_COMP_ZSTD, BMAP_CONTAINER_TAR, false);
	check("disk.tar.zst", BMAP_COMP_ZSTD, BMAP_CONTAINER_TAR, true);
	check("disk.tgz", BMAP_COMP_GZIP, BMAP_CONTAINER_TAR, false);
	check("disk.txz", BMAP_COMP_XZ, BMAP_CONTAINER_TAR, false);
}

/* A .tar.gz is decoded whole when opened, to find a cut before a card is
 * written: a cancel fd that is readable (a SIGTERM came) ends that at once,
 * whether the image is opened by its name or from an fd (the station's
 * worker reopens the file its cache is keyed on: with bmap_source_open_fd()
 * the check ran to its end, and a job_timeout's worker was SIGKILLed). */
static void test_tar_gz_check_cancelled(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *path = tu_path(g.dir, "cancel.tgz");
	struct bmap_source *s = NULL;
	int p[2], fd;

	(void)state;
	make("gzip", "tar -cf - disk.img | gzip -c > cancel.tgz");
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(bmap_source_open_cancel(ctx, path, p[0], &s), -EINTR);
	assert_null(s);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(bmap_source_open_fd_cancel(ctx, fd, path, p[0], &s), -EINTR);
	assert_null(s);
	/* Without a cancel, it opens. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(bmap_source_open_fd_cancel(ctx, fd, path, -1, &s), 0);
	bmap_source_free(s);
	close(p[0]);
	close(p[1]);
	free(path);
	bmap_ctx_free(ctx);
}

static void test_tar_directories_first(void **state)
{
	(void)state;
	make("tar", "mkdir -p d/e && ln -sf disk.img link && tar -cf dirs-first.tar d link "
		    "disk.img");
	check("dirs-first.tar", BMAP_COMP_RAW, BMAP_CONTAINER_TAR, false);
}

static void test_zip(void **state)
{
	(void)state;
	make("zip", "zip -q deflated.zip disk.img && zip -q -0 stored.zip disk.img && "
		    "zip -q - disk.img > streamed.zip");
	check("deflated.zip", BMAP_COMP_RAW, BMAP_CONTAINER_ZIP, false);
	check("deflated.zip", BMAP_COMP_RAW, BMAP_CONTAINER_ZIP, true);
	check("stored.zip", BMAP_COMP_RAW, BMAP_CONTAINER_ZIP, false);
	check("streamed.zip", BMAP_COMP_RAW, BMAP_CONTAINER_ZIP, true);
}

/* A raw image whose first sector is no tar header stays a raw image, with
 * its raw fd; so does a compressed one. */
static void test_not_an_archive(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *path = tu_path(g.dir, "disk.img");
	struct bmap_source *s;

	(void)state;
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(bmap_source_get_container(s), BMAP_CONTAINER_NONE);
	assert_null(bmap_source_get_member(s));
	assert_true(bmap_source_get_raw_fd(s) >= 0);
	bmap_source_free(s);
	free(path);
	bmap_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tar_formats),
		cmocka_unit_test(test_tar_compressed),
		cmocka_unit_test(test_tar_gz_check_cancelled),
		cmocka_unit_test(test_tar_directories_first),
		cmocka_unit_test(test_zip),
		cmocka_unit_test(test_not_an_archive),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
