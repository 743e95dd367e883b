/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image sources: every codec against files made by the real command-line
 * tools, from files and pipes, concatenated streams, skip(), and the wording
 * of truncated and corrupt inputs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "source.h"
#include "bmap-private.h"

#define DATA_SIZE (3u * 1024 * 1024 + 12345)

struct codec_case {
	enum bmap_compression comp;
	const char *ext;
	/* Shell command: $1 is the input, $2 the output. */
	const char *cmd;
};

static const struct codec_case cases[] = {
    {BMAP_COMP_ZSTD, "zst", "zstd -q -c \"$1\" > \"$2\""},
    /* From a pipe zstd cannot shrink the window to the input's size, so
     * the frame asks for 256 MiB: beyond libzstd's default limit. */
    {BMAP_COMP_ZSTD, "long.zst", "cat \"$1\" | zstd -q --long=28 -c > \"$2\""},
    {BMAP_COMP_GZIP, "gz", "gzip -c \"$1\" > \"$2\""},
    {BMAP_COMP_XZ, "xz", "xz -c \"$1\" > \"$2\""},
    /* Many blocks: the threaded decoder's path. */
    {BMAP_COMP_XZ, "mt.xz", "xz -T2 --block-size=256KiB -c \"$1\" > \"$2\""},
    {BMAP_COMP_BZIP2, "bz2", "bzip2 -c \"$1\" > \"$2\""},
    {BMAP_COMP_LZ4, "lz4", "lz4 -q -c \"$1\" > \"$2\""},
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static struct {
	char *dir;
	char *raw_path;
	uint8_t *data;
	char *paths[N_CASES];
	/* The same data compressed in two halves, then concatenated. */
	char *cat_paths[N_CASES];
	int fds_at_start;
} g;

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

/* Incompressible runs, zero runs and repetitive text, as in disk images. */
static void make_data(uint8_t *p, size_t len)
{
	for (size_t off = 0, i = 0; off < len; off += 65536, i++) {
		size_t n = len - off < 65536 ? len - off : 65536;

		switch (i % 3) {
		case 0:
			tu_pattern(p + off, n, (uint32_t)i);
			break;
		case 1:
			memset(p + off, 0, n);
			break;
		default:
			for (size_t j = 0; j < n; j++)
				p[off + j] = (uint8_t) "bmap-station image line\n"[j % 24];
			break;
		}
	}
}

static char *compress_to(const struct codec_case *c, const char *in, const char *name)
{
	char *out = tu_path(g.dir, name);

	run("sh -c '%s' sh %s %s", c->cmd, in, out);
	return out;
}

static int group_setup(void **state)
{
	char name[256];
	char *half1, *half2;

	(void)state;
	g.fds_at_start = count_fds();
	g.dir = tu_mkdtemp();
	g.raw_path = tu_path(g.dir, "image.raw");
	g.data = malloc(DATA_SIZE);
	assert_non_null(g.data);
	make_data(g.data, DATA_SIZE);
	tu_write_file(g.raw_path, g.data, DATA_SIZE);

	half1 = tu_path(g.dir, "half1.raw");
	half2 = tu_path(g.dir, "half2.raw");
	tu_write_file(half1, g.data, DATA_SIZE / 2);
	tu_write_file(half2, g.data + DATA_SIZE / 2, DATA_SIZE - DATA_SIZE / 2);

	for (size_t i = 0; i < N_CASES; i++) {
		char *p1, *p2;

		snprintf(name, sizeof(name), "image.%s", cases[i].ext);
		g.paths[i] = compress_to(&cases[i], g.raw_path, name);

		snprintf(name, sizeof(name), "h1.%s", cases[i].ext);
		p1 = compress_to(&cases[i], half1, name);
		snprintf(name, sizeof(name), "h2.%s", cases[i].ext);
		p2 = compress_to(&cases[i], half2, name);
		snprintf(name, sizeof(name), "cat.%s", cases[i].ext);
		g.cat_paths[i] = tu_path(g.dir, name);
		run("cat %s %s > %s", p1, p2, g.cat_paths[i]);
		free(p1);
		free(p2);
	}
	free(half1);
	free(half2);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	tu_rmtree(g.dir);
	for (size_t i = 0; i < N_CASES; i++) {
		free(g.paths[i]);
		free(g.cat_paths[i]);
	}
	free(g.dir);
	free(g.raw_path);
	free(g.data);
	return 0;
}

/* Reads to the end in odd-sized pieces; returns the total or the error. */
static ssize_t read_all(struct bmap_source *s, uint8_t *buf, size_t cap)
{
	static const size_t chunks[] = {1, 7, 4093, 65537, 1048583, 3, 262144};
	size_t done = 0;

	for (size_t i = 0;; i++) {
		size_t want = chunks[i % (sizeof(chunks) / sizeof(chunks[0]))];
		ssize_t n;

		if (want > cap - done)
			want = cap - done;
		if (want == 0)
			return (ssize_t)done;
		n = bmap_source_read(s, buf + done, want);
		if (n < 0)
			return n;
		done += (size_t)n;
		if ((size_t)n < want) {
			/* Once short, always at the end. */
			assert_int_equal(bmap_source_read(s, buf, 16), 0);
			return (ssize_t)done;
		}
	}
}

static void check_whole(struct bmap_ctx *ctx, struct bmap_source *s, enum bmap_compression comp)
{
	uint8_t *buf = malloc(DATA_SIZE + 4096);
	ssize_t n;

	assert_non_null(buf);
	assert_int_equal(bmap_source_get_compression(s), comp);
	n = read_all(s, buf, DATA_SIZE + 4096);
	if (n < 0)
		fail_msg("read failed: %zd: %s", n, bmap_ctx_get_error(ctx));
	assert_int_equal(n, DATA_SIZE);
	assert_memory_equal(buf, g.data, DATA_SIZE);
	assert_int_equal(bmap_source_tell(s), DATA_SIZE);
	free(buf);
}

static uint64_t file_size(const char *path)
{
	size_t len;
	char *p = tu_read_file(path, &len);

	free(p);
	return len;
}

/* ---- tests -------------------------------------------------------------- */

static void test_detect(void **state)
{
	static const uint8_t zstd[] = {0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00};
	static const uint8_t gzip[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00};
	static const uint8_t xz[] = {0xfd, '7', 'z', 'X', 'Z', 0x00, 0x00};
	static const uint8_t lz4[] = {0x04, 0x22, 0x4d, 0x18, 0x64, 0x40};
	static const uint8_t zeros[16];

	(void)state;
	assert_int_equal(bmap_compression_detect(zstd, sizeof(zstd)), BMAP_COMP_ZSTD);
	assert_int_equal(bmap_compression_detect(gzip, sizeof(gzip)), BMAP_COMP_GZIP);
	assert_int_equal(bmap_compression_detect(xz, sizeof(xz)), BMAP_COMP_XZ);
	assert_int_equal(bmap_compression_detect("BZh91AY&SY", 10), BMAP_COMP_BZIP2);
	assert_int_equal(bmap_compression_detect(lz4, sizeof(lz4)), BMAP_COMP_LZ4);

	/* Too short for a sure answer, or almost a magic: raw. */
	assert_int_equal(bmap_compression_detect(xz, 5), BMAP_COMP_RAW);
	assert_int_equal(bmap_compression_detect(zstd, 3), BMAP_COMP_RAW);
	assert_int_equal(bmap_compression_detect("BZh0", 4), BMAP_COMP_RAW);
	assert_int_equal(bmap_compression_detect("BZh", 3), BMAP_COMP_RAW);
	assert_int_equal(bmap_compression_detect(zeros, sizeof(zeros)), BMAP_COMP_RAW);
	assert_int_equal(bmap_compression_detect(zeros, 0), BMAP_COMP_RAW);

	assert_string_equal(bmap_compression_name(BMAP_COMP_RAW), "raw");
	assert_string_equal(bmap_compression_name(BMAP_COMP_ZSTD), "zstd");
	assert_string_equal(bmap_compression_name(BMAP_COMP_GZIP), "gzip");
	assert_string_equal(bmap_compression_name(BMAP_COMP_XZ), "xz");
	assert_string_equal(bmap_compression_name(BMAP_COMP_BZIP2), "bzip2");
	assert_string_equal(bmap_compression_name(BMAP_COMP_LZ4), "lz4");
}

/* The real files, recognised by content whatever their names. */
static void test_detect_files(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();

	(void)state;
	for (size_t i = 0; i < N_CASES; i++) {
		char *renamed = tu_path(g.dir, "no-suffix");
		struct bmap_source *s;

		run("cp %s %s", g.paths[i], renamed);
		assert_int_equal(bmap_source_open(ctx, renamed, &s), 0);
		assert_int_equal(bmap_source_get_compression(s), cases[i].comp);
		assert_string_equal(bmap_source_get_name(s), renamed);
		bmap_source_free(s);
		free(renamed);
	}
	bmap_ctx_free(ctx);
}

static void test_raw(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s;

	(void)state;
	assert_int_equal(bmap_source_open(ctx, g.raw_path, &s), 0);
	assert_true(bmap_source_get_raw_fd(s) >= 0);
	check_whole(ctx, s, BMAP_COMP_RAW);
	assert_int_equal(bmap_source_input_pos(s), DATA_SIZE);
	bmap_source_free(s);
	bmap_ctx_free(ctx);
}

static void test_codec(void **state)
{
	const struct codec_case *c = *state;
	size_t i = (size_t)(c - cases);
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s;

	assert_int_equal(bmap_source_open(ctx, g.paths[i], &s), 0);
	assert_int_equal(bmap_source_get_raw_fd(s), -1);
	check_whole(ctx, s, c->comp);
	assert_int_equal(bmap_source_input_pos(s), file_size(g.paths[i]));
	bmap_source_free(s);
	bmap_ctx_free(ctx);
}

static void test_concatenated(void **state)
{
	const struct codec_case *c = *state;
	size_t i = (size_t)(c - cases);
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s;

	assert_int_equal(bmap_source_open(ctx, g.cat_paths[i], &s), 0);
	check_whole(ctx, s, c->comp);
	assert_int_equal(bmap_source_input_pos(s), file_size(g.cat_paths[i]));
	bmap_source_free(s);
	bmap_ctx_free(ctx);
}

struct writer {
	int fd;
	const uint8_t *buf;
	size_t len;
};

/* Dribbles the first bytes one at a time so that the magic arrives in
 * pieces, then writes the rest in pipe-sized chunks. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	size_t off = 0;

	while (off < w->len) {
		size_t n = off < 6 ? 1 : 65536;
		ssize_t r;

		if (n > w->len - off)
			n = w->len - off;
		r = write(w->fd, w->buf + off, n);
		if (r <= 0)
			break;
		off += (size_t)r;
		if (off <= 6)
			usleep(1000);
	}
	close(w->fd);
	return NULL;
}

struct feed {
	struct writer w;
	pthread_t thread;
	uint8_t *file;
	size_t len;
};

/* Returns the read end of a pipe a thread writes @path's bytes into. */
static int feed_start(struct feed *f, const char *path)
{
	int fds[2];

	f->file = (uint8_t *)tu_read_file(path, &f->len);
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	f->w = (struct writer){.fd = fds[1], .buf = f->file, .len = f->len};
	assert_int_equal(pthread_create(&f->thread, NULL, writer_main, &f->w), 0);
	return fds[0];
}

static void feed_stop(struct feed *f)
{
	pthread_join(f->thread, NULL);
	free(f->file);
}

static void check_pipe(const char *path, enum bmap_compression comp)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s;
	struct feed f;
	int fd = feed_start(&f, path);

	assert_int_equal(bmap_source_open_fd(ctx, fd, "pipe-image", &s), 0);
	assert_int_equal(bmap_source_get_raw_fd(s), -1);
	check_whole(ctx, s, comp);
	assert_int_equal(bmap_source_input_pos(s), f.len);
	bmap_source_free(s);
	feed_stop(&f);
	bmap_ctx_free(ctx);
}

static void test_pipe(void **state)
{
	const struct codec_case *c = *state;

	check_pipe(g.cat_paths[c - cases], c->comp);
}

static void test_pipe_raw(void **state)
{
	(void)state;
	check_pipe(g.raw_path, BMAP_COMP_RAW);
}

static void test_stdin(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s;
	int saved = dup(STDIN_FILENO);
	int fd = open(g.paths[0], O_RDONLY | O_CLOEXEC);

	(void)state;
	assert_true(saved >= 0 && fd >= 0);
	assert_int_equal(dup2(fd, STDIN_FILENO), STDIN_FILENO);
	close(fd);
	assert_int_equal(bmap_source_open(ctx, "-", &s), 0);
	check_whole(ctx, s, BMAP_COMP_ZSTD);
	bmap_source_free(s);
	/* Freeing the source left our standard input open. */
	assert_true(fcntl(STDIN_FILENO, F_GETFD) >= 0);
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
	bmap_ctx_free(ctx);
}

/* Reads, skips and reads again; checks the bytes after each skip. */
static void check_skip(struct bmap_ctx *ctx, struct bmap_source *s)
{
	static const uint64_t steps[][2] = {
	    /* read, skip */
	    {100, 1000}, {0, 70000}, {4096, 1048576}, {1, 0}, {333, 2 * 65536 + 17},
	};
	uint8_t *buf = malloc(DATA_SIZE);
	uint64_t pos = 0;
	ssize_t n;
	int r;

	assert_non_null(buf);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		n = bmap_source_read(s, buf, steps[i][0]);
		assert_int_equal(n, steps[i][0]);
		assert_memory_equal(buf, g.data + pos, steps[i][0]);
		pos += steps[i][0];
		r = bmap_source_skip(s, steps[i][1]);
		if (r < 0)
			fail_msg("skip: %s", bmap_ctx_get_error(ctx));
		pos += steps[i][1];
		assert_int_equal(bmap_source_tell(s), pos);
	}
	n = bmap_source_read(s, buf, DATA_SIZE);
	assert_int_equal(n, DATA_SIZE - pos);
	assert_memory_equal(buf, g.data + pos, DATA_SIZE - pos);
	free(buf);
}

static void test_skip(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s;

	(void)state;
	/* Raw file (seeks), every codec (decodes and discards). */
	assert_int_equal(bmap_source_open(ctx, g.raw_path, &s), 0);
	check_skip(ctx, s);
	bmap_source_free(s);
	for (size_t i = 0; i < N_CASES; i++) {
		assert_int_equal(bmap_source_open(ctx, g.cat_paths[i], &s), 0);
		check_skip(ctx, s);
		bmap_source_free(s);
	}
	bmap_ctx_free(ctx);
}

/* A raw pipe cannot seek: skip() reads and discards, peeked bytes first. */
static void test_skip_pipe_raw(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s;
	struct feed f;
	int fd = feed_start(&f, g.raw_path);

	(void)state;
	assert_int_equal(bmap_source_open_fd(ctx, fd, "pipe-image", &s), 0);
	assert_int_equal(bmap_source_get_compression(s), BMAP_COMP_RAW);
	check_skip(ctx, s);
	bmap_source_free(s);
	feed_stop(&f);
	bmap_ctx_free(ctx);
}

static void check_skip_past_end(const char *path)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s;
	uint8_t buf[16];

	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(bmap_source_skip(s, DATA_SIZE - 10), 0);
	assert_int_equal(bmap_source_skip(s, 11), -EPIPE);
	assert_non_null(strstr(bmap_ctx_get_error(ctx), "truncated"));
	assert_non_null(strstr(bmap_ctx_get_error(ctx), path));
	assert_int_equal(bmap_source_tell(s), DATA_SIZE);
	assert_int_equal(bmap_source_read(s, buf, sizeof(buf)), 0);
	bmap_source_free(s);
	bmap_ctx_free(ctx);
}

static void test_skip_past_end(void **state)
{
	(void)state;
	check_skip_past_end(g.raw_path);
	check_skip_past_end(g.paths[0]);
	check_skip_past_end(g.paths[2]);
}

/* Opening the file @path fails with @err, naming it, saying @word and
 * that nothing was written. */
static void expect_open_refused(struct bmap_ctx *ctx, const char *path, int err,
				const char *word)
{
	struct bmap_source *s = NULL;
	int r = bmap_source_open(ctx, path, &s);

	if (r != err || !strstr(bmap_ctx_get_error(ctx), path) ||
	    !strstr(bmap_ctx_get_error(ctx), word) ||
	    !strstr(bmap_ctx_get_error(ctx), "nothing was written"))
		fail_msg("%s: open: %d '%s', wanted %d with '%s'", path, r,
			 bmap_ctx_get_error(ctx), err, word);
	bmap_source_free(s);
}

/* A plain .gz is not decoded in advance (source-whole.c: that would double
 * a copy's work): the file opens, and its damage is found when reached,
 * with @word and the file's name, without "nothing was written". */
static void expect_read_fails(struct bmap_ctx *ctx, const char *path, const char *word)
{
	uint8_t *buf = malloc(DATA_SIZE + 4096);
	struct bmap_source *s;

	assert_non_null(buf);
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_true(read_all(s, buf, DATA_SIZE + 4096) < 0);
	if (!strstr(bmap_ctx_get_error(ctx), word) || !strstr(bmap_ctx_get_error(ctx), path) ||
	    strstr(bmap_ctx_get_error(ctx), "nothing was written"))
		fail_msg("%s: unexpected error: %s", path, bmap_ctx_get_error(ctx));
	bmap_source_free(s);
	free(buf);
}

static void test_truncated(void **state)
{
	const struct codec_case *c = *state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	uint8_t *buf = malloc(DATA_SIZE);
	char name[64];
	struct bmap_source *s;
	size_t len;
	char *file = tu_read_file(g.paths[c - cases], &len);
	char *path;
	ssize_t n;

	snprintf(name, sizeof(name), "truncated.%s", c->ext);
	path = tu_path(g.dir, name);
	tu_write_file(path, file, len / 2);

	/* A file is found cut when it is opened, before anything is read
	 * (a plain .gz when the cut is reached). */
	if (c->comp == BMAP_COMP_GZIP)
		expect_read_fails(ctx, path, "truncated");
	else
		expect_open_refused(ctx, path, -EPIPE, "truncated");
	/* Without the check (info), the file opens and the cut is found
	 * when reached. */
	bmap_ctx_set_check_whole(ctx, false);
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(read_all(s, buf, DATA_SIZE), -EPIPE);
	assert_null(strstr(bmap_ctx_get_error(ctx), "nothing was written"));
	bmap_source_free(s);
	bmap_ctx_set_check_whole(ctx, true);
	/* From a pipe, when its end is reached. */
	{
		struct feed f;
		int fd = feed_start(&f, path);

		assert_int_equal(bmap_source_open_fd(ctx, fd, path, &s), 0);
		n = read_all(s, buf, DATA_SIZE);
		assert_int_equal(n, -EPIPE);
		assert_non_null(strstr(bmap_ctx_get_error(ctx), path));
		assert_non_null(strstr(bmap_ctx_get_error(ctx), "truncated"));
		/* The error sticks. */
		assert_int_equal(bmap_source_read(s, buf, 1), -EPIPE);
		bmap_source_free(s);
		feed_stop(&f);
	}

	free(path);
	free(file);
	free(buf);
	bmap_ctx_free(ctx);
}

static void test_corrupt(void **state)
{
	const struct codec_case *c = *state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	uint8_t *buf = malloc(DATA_SIZE);
	char name[64];
	struct bmap_source *s;
	size_t len;
	char *file = tu_read_file(g.paths[c - cases], &len);
	char *path;
	ssize_t n;

	for (size_t i = len / 2; i < len / 2 + 32; i++)
		file[i] ^= 0xa5;
	snprintf(name, sizeof(name), "corrupt.%s", c->ext);
	path = tu_path(g.dir, name);
	tu_write_file(path, file, len);

	{
		assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		n = read_all(s, buf, DATA_SIZE);
		assert_true(n < 0);
		if (!strstr(bmap_ctx_get_error(ctx), "corrupt"))
			fail_msg("unexpected error: %s", bmap_ctx_get_error(ctx));
		assert_non_null(strstr(bmap_ctx_get_error(ctx), path));
		bmap_source_free(s);
	}

	free(path);
	free(file);
	free(buf);
	bmap_ctx_free(ctx);
}

/*
 * A seekable multi-block xz file is decoded two blocks at a time (the
 * reader's and the helper's, see source-xz.c). With a look-ahead buffer
 * smaller than a block the reader takes over the helper's decoder halfway
 * through every other block; damage in any block (the reader's or the
 * helper's) is reported, never a hang; a source freed halfway stops the
 * helper.
 */
static void test_xz_blocks(void **state)
{
	static const char *const aheads[] = {"", "100000", "1"};
	struct bmap_ctx *ctx = bmap_ctx_new();
	const char *mt = g.paths[4];
	uint8_t *buf = malloc(DATA_SIZE);
	struct bmap_source *s;
	size_t len;
	char *file = tu_read_file(mt, &len);
	char *path = tu_path(g.dir, "blocks.xz");

	(void)state;
	assert_non_null(buf);
	for (size_t a = 0; a < sizeof(aheads) / sizeof(aheads[0]); a++) {
		setenv("BMAP_XZ_AHEAD", aheads[a], 1);
		assert_int_equal(bmap_source_open(ctx, mt, &s), 0);
		check_whole(ctx, s, BMAP_COMP_XZ);
		assert_int_equal(bmap_source_input_pos(s), len);
		bmap_source_free(s);

		/* Freed while the helper is busy. */
		assert_int_equal(bmap_source_open(ctx, mt, &s), 0);
		assert_int_equal(bmap_source_read(s, buf, 4096), 4096);
		assert_memory_equal(buf, g.data, 4096);
		bmap_source_free(s);

		/* One damaged byte, in turn in each eighth of the file. */
		for (size_t k = 1; k < 8; k++) {
			size_t at = len * k / 8;
			ssize_t n;

			file[at] ^= 0x55;
			tu_write_file(path, file, len);
			file[at] ^= 0x55;
			assert_int_equal(bmap_source_open(ctx, path, &s), 0);
			n = read_all(s, buf, DATA_SIZE);
			if (n >= 0 || !strstr(bmap_ctx_get_error(ctx), "corrupt") ||
			    !strstr(bmap_ctx_get_error(ctx), path))
				fail_msg("byte %zu damaged, ahead '%s': %zd: %s", at, aheads[a], n,
					 bmap_ctx_get_error(ctx));
			bmap_source_free(s);
		}
	}
	unsetenv("BMAP_XZ_AHEAD");

	/* Windows of 32 MiB (a smaller look-ahead buffer) and 64 MiB (one
	 * decoder: two would not fit the budget) decode all the same. */
	for (int dict = 32; dict <= 64; dict *= 2) {
		run("xz -c -T2 --block-size=256KiB --lzma2=preset=6,dict=%dMiB %s > %s", dict,
		    g.raw_path, path);
		assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		check_whole(ctx, s, BMAP_COMP_XZ);
		bmap_source_free(s);
	}
	free(path);
	free(file);
	free(buf);
	bmap_ctx_free(ctx);
}

/* The compressed offset and total size of block @block (1-based) of an .xz
 * file, from `xz --robot -lvv`. */
/* @map with the SHA-256 of each range of @img, through a 2.0 bmap file. */
static struct bmap_map *checksummed_map(struct bmap_ctx *ctx, const struct bmap_map *map,
					const uint8_t *img)
{
	char *path = tu_path(g.dir, "checksummed.bmap");
	const struct bmap_range *rg = bmap_map_get_ranges(map);
	struct bmap_writer *w;
	struct bmap_map *out;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(bmap_writer_new(ctx, fd, path, bmap_map_get_image_size(map), 4096,
					 "sha256", &w), 0);
	for (size_t i = 0; i < bmap_map_get_range_count(map); i++) {
		uint64_t off, len;
		uint8_t d[32];

		bmap_map_range_bytes(map, i, &off, &len);
		assert_int_equal(bmap_digest_buffer("sha256", img + off, len, d), 0);
		assert_int_equal(bmap_writer_add_range(w, rg[i].first, rg[i].last, d), 0);
	}
	assert_int_equal(bmap_writer_finish(w), 0);
	bmap_writer_free(w);
	close(fd);
	assert_int_equal(bmap_map_load(ctx, path, &out), 0);
	assert_true(bmap_map_has_range_checksums(out));
	free(path);
	return out;
}

static void xz_block_at(const char *path, int block, size_t *ret_off, size_t *ret_size)
{
	char cmd[4096], line[512];
	FILE *f;
	bool found = false;

	snprintf(cmd, sizeof(cmd), "xz --robot -lvv '%s'", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		int st, nb, num;
		unsigned long long off, uoff, size;

		if (sscanf(line, "block\t%d\t%d\t%d\t%llu\t%llu\t%llu", &st, &nb, &num, &off, &uoff,
			   &size) == 6 &&
		    num == block) {
			*ret_off = (size_t)off;
			*ret_size = (size_t)size;
			found = true;
		}
	}
	pclose(f);
	assert_true(found);
}

/* Blocks of zeros between mapped data: told what is wanted, the xz reader
 * passes them over when they are skipped and decodes them after the last
 * block, so the data read is the same and a damaged block of zeros still
 * fails the image, at its end. Told by a caller that checks what it reads
 * against range checksums (bmap_source_want_only), it never decodes them:
 * a damaged block of zeros is never seen, one of data still fails. */
static void test_xz_deferred(void **state)
{
	enum { BS = 64 << 10, NB = 12 };
	static const char *const aheads[] = {"", "1"};
	struct bmap_ctx *ctx = bmap_ctx_new();
	size_t size = (size_t)NB * BS - 1000, len, zoff, zsize, doff, dsize;
	uint8_t *img = calloc(1, size), *buf = malloc(size);
	char *raw = tu_path(g.dir, "deferred.raw"), *path = tu_path(g.dir, "deferred.xz");
	char *bad = tu_path(g.dir, "deferred-bad.xz"), *file;
	struct bmap_map *map, *cmap;
	/* Mapped: inside block 1, blocks 4 to 5 (crossing), block 11's end
	 * (the image's last, short block). Blocks 0, 2, 3, 6-10 hold none. */
	static const uint64_t ranges[][2] = {
		{ BS / 4096 + 2, BS / 4096 + 5 },
		{ 4 * BS / 4096 + 3, 5 * BS / 4096 + 7 },
		{ 11 * BS / 4096 + 1, (NB * BS - 1000 + 4095) / 4096 - 1 },
	};

	(void)state;
	assert_non_null(img);
	assert_non_null(buf);
	make_data(img + BS, BS);
	make_data(img + 4 * BS, 2 * BS);
	make_data(img + 11 * BS, BS - 1000);
	tu_write_file(raw, img, size);
	run("xz -c -T1 --block-size=%d %s > %s", BS, raw, path);
	assert_int_equal(bmap_map_new(ctx, size, 4096, &map), 0);
	for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++)
		assert_int_equal(bmap_map_append_range(map, ranges[r][0], ranges[r][1]), 0);
	cmap = checksummed_map(ctx, map, img);

	file = tu_read_file(path, &len);
	xz_block_at(path, 8, &zoff, &zsize);   /* zeros */
	xz_block_at(path, 5, &doff, &dsize);   /* mapped data */
	for (size_t a = 0; a < 2 * sizeof(aheads) / sizeof(aheads[0]); a++) {
		bool only = a >= sizeof(aheads) / sizeof(aheads[0]);

		setenv("BMAP_XZ_AHEAD", aheads[a % 2], 1);
		for (int damage = 0; damage < 3; damage++) {
			const char *use = damage ? bad : path;
			struct bmap_source *s;
			bool failed = false;
			int r = 0;

			if (damage) {
				size_t at = damage == 1 ? zoff + zsize / 2 : doff + dsize / 2;

				file[at] ^= 0x55;
				tu_write_file(bad, file, len);
				file[at] ^= 0x55;
			}
			assert_int_equal(bmap_source_open(ctx, use, &s), 0);
			if (only)
				bmap_source_want_only(s, cmap);
			else
				bmap_source_want(s, map);
			for (size_t i = 0; i < bmap_map_get_range_count(map) && !failed; i++) {
				uint64_t off, rlen;

				bmap_map_range_bytes(map, i, &off, &rlen);
				r = bmap_source_skip(s, off - bmap_source_tell(s));
				if (r == 0 && bmap_source_read(s, buf, rlen) != (ssize_t)rlen)
					r = -1;
				if (r < 0)
					failed = true;
				else
					assert_memory_equal(buf, img + off, rlen);
			}
			/* The block of zeros is decoded after the last one. */
			if (damage == 1 && failed)
				fail_msg("ahead '%s': a damaged block of zeros failed a read of "
					 "mapped data: %s",
					 aheads[a], bmap_ctx_get_error(ctx));
			if (!failed) {
				r = bmap_source_skip(s, size - bmap_source_tell(s));
				if (r == 0)
					r = (int)bmap_source_read(s, buf, 1);
				failed = r < 0;
			}
			if ((damage == 0 || (damage == 1 && only)) && (failed || r != 0))
				fail_msg("ahead '%s'%s, damage %d: %d: %s", aheads[a % 2],
					 only ? ", checksummed" : "", damage, r, bmap_ctx_get_error(ctx));
			if (damage == 0 || (damage == 1 && only))
				assert_int_equal(bmap_source_tell(s), size);
			if (damage && !(damage == 1 && only) && (!failed || !strstr(bmap_ctx_get_error(ctx), "corrupt")))
				fail_msg("damaged block %s, ahead '%s': no error (%d: %s)",
					 damage == 1 ? "of zeros" : "of data", aheads[a % 2], r,
					 bmap_ctx_get_error(ctx));
			bmap_source_free(s);
		}
	}
	unsetenv("BMAP_XZ_AHEAD");
	bmap_map_free(cmap);
	bmap_map_free(map);
	free(file);
	free(bad);
	free(path);
	free(raw);
	free(buf);
	free(img);
	bmap_ctx_free(ctx);
}

/* Zero padding after the last member (dd conv=sync, tape blocks) is fine,
 * as gzip says; anything else after it is not. */
static void test_trailing_data(void **state)
{
	const struct codec_case *c = *state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	uint8_t *buf = malloc(DATA_SIZE + 16);
	char name[64];
	struct bmap_source *s;
	size_t len;
	char *file = tu_read_file(g.paths[c - cases], &len);
	char *padded = calloc(1, len + 5000);
	char *path;

	memcpy(padded, file, len);
	snprintf(name, sizeof(name), "padded.%s", c->ext);
	path = tu_path(g.dir, name);
	/* xz stream padding must be a multiple of four bytes. */
	tu_write_file(path, padded, len + 4096);
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	check_whole(ctx, s, c->comp);
	assert_int_equal(bmap_source_input_pos(s), len + 4096);
	bmap_source_free(s);

	padded[len + 3000] = 'x';
	tu_write_file(path, padded, len + 4096);
	/* Found when the file is opened, before anything is read (a plain
	 * .gz when it is reached)... */
	if (c->comp == BMAP_COMP_GZIP)
		expect_read_fails(ctx, path, "corrupt");
	else
		expect_open_refused(ctx, path, -EBADMSG, "corrupt");
	/* ...and from a pipe when it is reached. */
	{
		struct feed f;
		int fd = feed_start(&f, path);

		assert_int_equal(bmap_source_open_fd(ctx, fd, path, &s), 0);
		assert_true(read_all(s, buf, DATA_SIZE + 16) < 0);
		if (!strstr(bmap_ctx_get_error(ctx), "corrupt"))
			fail_msg("unexpected error: %s", bmap_ctx_get_error(ctx));
		assert_non_null(strstr(bmap_ctx_get_error(ctx), path));
		bmap_source_free(s);
		feed_stop(&f);
	}

	free(path);
	free(padded);
	free(file);
	free(buf);
	bmap_ctx_free(ctx);
}

static void test_empty_and_tiny_raw(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *path = tu_path(g.dir, "empty.img");
	struct bmap_source *s;
	uint8_t buf[16];

	(void)state;
	tu_write_file(path, "", 0);
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(bmap_source_get_compression(s), BMAP_COMP_RAW);
	assert_int_equal(bmap_source_read(s, buf, sizeof(buf)), 0);
	assert_int_equal(bmap_source_tell(s), 0);
	bmap_source_free(s);

	/* Shorter than any magic, and starting like one. */
	tu_write_file(path, "BZh", 3);
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(bmap_source_get_compression(s), BMAP_COMP_RAW);
	assert_int_equal(bmap_source_read(s, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "BZh", 3);
	assert_int_equal(bmap_source_read(s, buf, sizeof(buf)), 0);
	bmap_source_free(s);

	free(path);
	bmap_ctx_free(ctx);
}

static void test_open_missing(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *path = tu_path(g.dir, "missing.img.zst");
	struct bmap_source *s = NULL;

	(void)state;
	assert_int_equal(bmap_source_open(ctx, path, &s), -ENOENT);
	assert_null(s);
	assert_non_null(strstr(bmap_ctx_get_error(ctx), path));
	assert_int_equal(bmap_source_open(ctx, g.dir, &s), -EISDIR);
	free(path);
	bmap_ctx_free(ctx);
}

/* Every source closed its descriptor, on success and on failure. */
static void test_no_fd_leak(void **state)
{
	(void)state;
	assert_int_equal(count_fds(), g.fds_at_start);
}

/* clang-format off */
#define CODEC_TEST(fn, i, label) { #fn "/" label, fn, NULL, NULL, (void *)&cases[i] }
#define PER_CODEC(fn)								\
	CODEC_TEST(fn, 0, "zstd"), CODEC_TEST(fn, 1, "zstd-long"),		\
	CODEC_TEST(fn, 2, "gzip"), CODEC_TEST(fn, 3, "xz"),			\
	CODEC_TEST(fn, 4, "xz-mt"), CODEC_TEST(fn, 5, "bzip2"),			\
	CODEC_TEST(fn, 6, "lz4")
/* clang-format on */

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_detect_files),
		cmocka_unit_test(test_raw),
		PER_CODEC(test_codec),
		PER_CODEC(test_concatenated),
		PER_CODEC(test_pipe),
		cmocka_unit_test(test_pipe_raw),
		cmocka_unit_test(test_stdin),
		cmocka_unit_test(test_skip),
		cmocka_unit_test(test_skip_pipe_raw),
		cmocka_unit_test(test_skip_past_end),
		PER_CODEC(test_truncated),
		PER_CODEC(test_corrupt),
		PER_CODEC(test_trailing_data),
		cmocka_unit_test(test_xz_blocks),
		cmocka_unit_test(test_xz_deferred),
		cmocka_unit_test(test_empty_and_tiny_raw),
		cmocka_unit_test(test_open_missing),
		cmocka_unit_test(test_no_fd_leak),
	};
	/* clang-format on */

	_Static_assert(N_CASES == 7, "PER_CODEC lists every case");
	/* A reader failing early must not kill the test through its writer. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
