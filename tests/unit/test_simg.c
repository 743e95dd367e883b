/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Android sparse images: images made here chunk by chunk (every chunk type,
 * larger headers, CRC32 chunks, a wrong CRC, hostile headers) and by the real
 * producer (img2simg, checked against simg2img), read from files, pipes and
 * through codecs, and copied by the engine with the image's own map.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <isa-l/crc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testutil.h"
#include "bmap-private.h"
#include "source.h"

#define BS 4096u

/* ---- building sparse images ---- */

static void put_zeros(struct tu_buf *b, size_t n)
{
	uint8_t *z = calloc(1, n ? n : 1);

	tu_put(b, z, n);
	free(z);
}

struct layout {
	uint16_t major, minor, file_hdr_sz, chunk_hdr_sz;
	uint32_t total_blks_delta; /* added to the true total */
	bool bad_crc;
	uint16_t odd_type;       /* non-zero: chunk 3 gets this type */
	uint32_t odd_total_sz;   /* non-zero: chunk 1's total_sz */
};

static void chunk_hdr(struct tu_buf *b, const struct layout *l, uint16_t type, uint32_t blocks,
		      uint32_t data)
{
	tu_put16(b, type);
	tu_put16(b, 0);
	tu_put32(b, blocks);
	tu_put32(b, l->chunk_hdr_sz + data);
	if (l->chunk_hdr_sz > 12)
		put_zeros(b, l->chunk_hdr_sz - 12u);
}

#define N_BLOCKS 14u

/* The image: RAW 0-2, DONT_CARE 3-4, FILL 5-6 (0xdeadbeef), CRC32, FILL 7
 * (zeros), DONT_CARE 8-12, RAW 13, CRC32. Mapped: 0-2, 5-7, 13. Fills
 * @img (N_BLOCKS * BS) with what it reads as. */
static struct tu_buf make_simg(const struct layout *l, uint8_t *img)
{
	static const uint8_t fill[4] = { 0xef, 0xbe, 0xad, 0xde };
	struct tu_buf b = { 0 };
	uint32_t crc;

	memset(img, 0, N_BLOCKS * BS);
	tu_pattern(img, 3 * BS, 7);
	for (size_t i = 5 * BS; i < 7 * BS; i++)
		img[i] = fill[i % 4];
	tu_pattern(img + 13 * BS, BS, 8);

	tu_put32(&b, 0xed26ff3a);
	tu_put16(&b, l->major);
	tu_put16(&b, l->minor);
	tu_put16(&b, l->file_hdr_sz);
	tu_put16(&b, l->chunk_hdr_sz);
	tu_put32(&b, BS);
	tu_put32(&b, N_BLOCKS + l->total_blks_delta);
	tu_put32(&b, 8);
	tu_put32(&b, 0);
	if (l->file_hdr_sz > 28)
		put_zeros(&b, l->file_hdr_sz - 28u);

	chunk_hdr(&b, l, 0xcac1, 3, 3 * BS);
	if (l->odd_total_sz)
		memcpy(b.p + b.len - l->chunk_hdr_sz + 8, &l->odd_total_sz, 4);
	tu_put(&b, img, 3 * BS);
	chunk_hdr(&b, l, 0xcac3, 2, 0);
	chunk_hdr(&b, l, l->odd_type ? l->odd_type : 0xcac2, 2, 4);
	tu_put(&b, fill, 4);
	crc = crc32_gzip_refl(0, img, 7 * BS);
	chunk_hdr(&b, l, 0xcac4, 0, 4);
	tu_put32(&b, l->bad_crc ? crc ^ 1 : crc);
	chunk_hdr(&b, l, 0xcac2, 1, 4);
	tu_put32(&b, 0);
	chunk_hdr(&b, l, 0xcac3, 5, 0);
	chunk_hdr(&b, l, 0xcac1, 1, BS);
	tu_put(&b, img + 13 * BS, BS);
	chunk_hdr(&b, l, 0xcac4, 0, 4);
	tu_put32(&b, crc32_gzip_refl(0, img, N_BLOCKS * BS));
	return b;
}

static const struct layout plain = { .major = 1, .file_hdr_sz = 28, .chunk_hdr_sz = 12 };

static struct {
	char *dir;
	uint8_t img[N_BLOCKS * BS];
} g;

static int group_setup(void **state)
{
	(void)state;
	g.dir = tu_mkdtemp();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	tu_rmtree(g.dir);
	free(g.dir);
	return 0;
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

static char *write_simg(const char *name, const struct layout *l)
{
	struct tu_buf b = make_simg(l, g.img);
	char *path = tu_path(g.dir, name);

	tu_write_file(path, b.p, b.len);
	free(b.p);
	return path;
}

/* A source reading @cmd's output through a pipe; *@ret_f to pclose(). */
static struct bmap_source *open_pipe(struct bmap_ctx *ctx, const char *cmd, FILE **ret_f)
{
	struct bmap_source *s;
	FILE *f = popen(cmd, "r");

	assert_non_null(f);
	assert_int_equal(bmap_source_open_fd(ctx, dup(fileno(f)), "pipe", &s), 0);
	*ret_f = f;
	return s;
}

static void expect_ranges(const struct bmap_map *map, const uint64_t (*want)[2], size_t n)
{
	assert_int_equal(bmap_map_get_range_count(map), n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(bmap_map_get_ranges(map)[i].first, want[i][0]);
		assert_int_equal(bmap_map_get_ranges(map)[i].last, want[i][1]);
	}
}

static const uint64_t handmade_ranges[][2] = { { 0, 2 }, { 5, 7 }, { 13, 13 } };

static void read_whole(struct bmap_source *s, uint8_t *buf, size_t len)
{
	assert_int_equal(bmap_source_read(s, buf, len), (ssize_t)len);
	assert_int_equal(bmap_source_read(s, buf, 1), 0);
}

/* ---- tests ---- */

static void test_file_map_and_bytes(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *path = write_simg("plain.simg", &plain);
	uint8_t *buf = malloc(sizeof(g.img));
	struct bmap_format_info info;
	struct bmap_source *s;
	struct bmap_map *map;

	(void)state;
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(bmap_source_get_format(s), BMAP_FORMAT_SIMG);
	assert_int_equal(bmap_source_get_image_size(s), sizeof(g.img));
	/* A regular file: the map is known before any byte is read. */
	assert_int_equal(bmap_source_get_map(s, &map), 0);
	assert_int_equal(bmap_map_get_block_size(map), BS);
	expect_ranges(map, handmade_ranges, 3);
	assert_int_equal(bmap_source_get_format_info(s, &info), 0);
	assert_true(info.counts_known);
	assert_int_equal(info.raw_chunks, 2);
	assert_int_equal(info.fill_chunks, 2);
	assert_int_equal(info.dont_care_chunks, 2);
	assert_int_equal(info.crc_chunks, 2);
	assert_string_equal(info.version, "1.0");
	read_whole(s, buf, sizeof(g.img));
	assert_memory_equal(buf, g.img, sizeof(g.img));
	bmap_map_free(map);
	bmap_source_free(s);
	bmap_ctx_free(ctx);
	free(buf);
	free(path);
}

/* From a pipe and through codecs: the map is known at the end only. */
static void test_stream_map(void **state)
{
	static const char *const cmds[] = { "cat", "zstd -q -c", "gzip -c", "xz -c" };
	char *path = write_simg("stream.simg", &plain);

	(void)state;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		uint8_t *buf = malloc(sizeof(g.img));
		char cmd[512], *comp = tu_path(g.dir, "stream.simg.c");
		struct bmap_source *s;
		struct bmap_map *map;
		FILE *f = NULL;

		snprintf(cmd, sizeof(cmd), "%s '%s'", cmds[i], path);
		if (i == 0) {
			s = open_pipe(ctx, cmd, &f);
		} else {
			/* A compressed file is a stream too. */
			run("%s > '%s'", cmd, comp);
			assert_int_equal(bmap_source_open(ctx, comp, &s), 0);
		}
		assert_int_equal(bmap_source_get_format(s), BMAP_FORMAT_SIMG);
		assert_int_equal(bmap_source_get_map(s, &map), -EAGAIN);
		read_whole(s, buf, sizeof(g.img));
		assert_memory_equal(buf, g.img, sizeof(g.img));
		assert_int_equal(bmap_source_get_map(s, &map), 0);
		expect_ranges(map, handmade_ranges, 3);
		bmap_map_free(map);
		bmap_source_free(s);
		if (f)
			pclose(f);
		bmap_ctx_free(ctx);
		free(buf);
		free(comp);
	}
	free(path);
}

/* Later minor versions may have larger headers: the rest is skipped. */
static void test_larger_headers(void **state)
{
	struct layout l = { .major = 1, .minor = 7, .file_hdr_sz = 40, .chunk_hdr_sz = 20 };
	char *path = write_simg("large.simg", &l);
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "cat '%s'", path);
	for (int pipe = 0; pipe < 2; pipe++) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		uint8_t *buf = malloc(sizeof(g.img));
		struct bmap_source *s;
		struct bmap_map *map;
		FILE *f = NULL;

		if (pipe)
			s = open_pipe(ctx, cmd, &f);
		else
			assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		read_whole(s, buf, sizeof(g.img));
		assert_memory_equal(buf, g.img, sizeof(g.img));
		assert_int_equal(bmap_source_get_map(s, &map), 0);
		expect_ranges(map, handmade_ranges, 3);
		bmap_map_free(map);
		bmap_source_free(s);
		if (f)
			pclose(f);
		bmap_ctx_free(ctx);
		free(buf);
	}
	free(path);
}

/* The engine copies only the data chunks: with the map given (a file) or
 * taken as the stream goes (a pipe); the holes of a target that is not
 * truncated keep what they held. */
static void test_copy_skips_holes(void **state)
{
	char *path = write_simg("copy.simg", &plain), *out = tu_path(g.dir, "copy.out");
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "cat '%s'", path);
	for (int pipe = 0; pipe < 2; pipe++) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE,
						  .image_size = sizeof(g.img),
						  .keep_size = true };
		struct bmap_copy_opts copts = { .source_map = pipe };
		uint8_t *old = malloc(sizeof(g.img)), *got;
		struct bmap_copy_result res;
		struct bmap_target *t;
		struct bmap_source *s;
		struct bmap_map *map = NULL;
		size_t len;
		FILE *f = NULL;

		memset(old, 0xaa, sizeof(g.img));
		tu_write_file(out, old, sizeof(g.img));
		if (pipe)
			s = open_pipe(ctx, cmd, &f);
		else
			assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		if (!pipe)
			assert_int_equal(bmap_source_get_map(s, &map), 0);
		assert_int_equal(bmap_target_open(ctx, out, &topts, &t), 0);
		assert_int_equal(bmap_copy(ctx, s, map, t, &copts, &res), 0);
		assert_int_equal(res.bytes_written, 7 * BS);
		got = (uint8_t *)tu_read_file(out, &len);
		assert_int_equal(len, sizeof(g.img));
		for (size_t b = 0; b < N_BLOCKS; b++) {
			bool mapped = b <= 2 || (b >= 5 && b <= 7) || b == 13;

			assert_memory_equal(got + b * BS, mapped ? g.img + b * BS : old, BS);
		}
		bmap_target_free(t);
		bmap_map_free(map);
		bmap_source_free(s);
		if (f)
			pclose(f);
		bmap_ctx_free(ctx);
		free(old);
		free(got);
	}
	free(path);
	free(out);
}

/* The same digest whichever way the map came: three ranges either way. */
static void test_digest_same_lazy_or_not(void **state)
{
	char *path = write_simg("digest.simg", &plain), *out = tu_path(g.dir, "digest.out");
	uint8_t digest[2][32];
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "cat '%s'", path);
	for (int pipe = 0; pipe < 2; pipe++) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE,
						  .image_size = sizeof(g.img) };
		struct bmap_copy_opts copts = { .source_map = pipe };
		struct bmap_copy_result res;
		struct bmap_target *t;
		struct bmap_source *s;
		struct bmap_map *map = NULL;
		FILE *f = NULL;

		if (pipe)
			s = open_pipe(ctx, cmd, &f);
		else
			assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		if (!pipe)
			assert_int_equal(bmap_source_get_map(s, &map), 0);
		assert_int_equal(bmap_target_open(ctx, out, &topts, &t), 0);
		assert_int_equal(bmap_copy(ctx, s, map, t, &copts, &res), 0);
		memcpy(digest[pipe], res.data_sha256, 32);
		bmap_target_free(t);
		bmap_map_free(map);
		bmap_source_free(s);
		if (f)
			pclose(f);
		bmap_ctx_free(ctx);
	}
	assert_memory_equal(digest[0], digest[1], 32);
	free(path);
	free(out);
}

/* A CRC32 chunk that does not match the data is refused, naming it, from a
 * file as from a pipe, by reading and by copying. */
static void test_wrong_crc(void **state)
{
	struct layout l = plain;
	char *path, cmd[512], *out = tu_path(g.dir, "crc.out");

	(void)state;
	l.bad_crc = true;
	path = write_simg("badcrc.simg", &l);
	snprintf(cmd, sizeof(cmd), "cat '%s'", path);
	for (int pipe = 0; pipe < 2; pipe++) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE,
						  .image_size = sizeof(g.img) };
		struct bmap_copy_opts copts = { .source_map = true };
		uint8_t *buf = malloc(sizeof(g.img));
		struct bmap_copy_result res;
		struct bmap_target *t;
		struct bmap_source *s;
		FILE *f = NULL;

		if (pipe)
			s = open_pipe(ctx, cmd, &f);
		else
			assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		assert_int_equal(bmap_source_read(s, buf, sizeof(g.img)), -EBADMSG);
		assert_non_null(strstr(bmap_ctx_get_error(ctx), "chunk 4 of 8"));
		assert_non_null(strstr(bmap_ctx_get_error(ctx), "CRC32"));
		bmap_source_free(s);
		if (f)
			pclose(f);

		if (pipe)
			s = open_pipe(ctx, cmd, &f);
		else
			assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		assert_int_equal(bmap_target_open(ctx, out, &topts, &t), 0);
		assert_int_equal(bmap_copy(ctx, s, NULL, t, &copts, &res), -EBADMSG);
		assert_non_null(strstr(bmap_ctx_get_error(ctx), "chunk 4 of 8"));
		bmap_target_free(t);
		bmap_source_free(s);
		if (f)
			pclose(f);
		bmap_ctx_free(ctx);
		free(buf);
	}
	free(path);
	free(out);
}

/* A CRC32 chunk after a large fill and a large hole, skipped: the hole
 * counts as zeros, the fill as its pattern, both computed without making
 * the bytes (checked against CRCs over real bytes). */
static void test_crc_over_hole(void **state)
{
	const uint32_t hole_blocks = 16384, fill_blocks = 4097; /* 64 MiB, 16 MiB */
	static const uint8_t pat[4] = { 0x78, 0x56, 0x34, 0x12 };
	struct bmap_ctx *ctx = bmap_ctx_new();
	uint8_t *zeros = calloc(1, 1 << 20), data[BS], *fill = malloc(BS);
	struct tu_buf b = { 0 };
	struct bmap_source *s;
	struct bmap_map *map;
	uint32_t crc;
	char *path = tu_path(g.dir, "hole.simg");

	(void)state;
	tu_pattern(data, BS, 3);
	crc = crc32_gzip_refl(0, data, BS);
	for (size_t i = 0; i < BS; i++)
		fill[i] = pat[i % 4];
	for (uint32_t i = 0; i < fill_blocks; i++)
		crc = crc32_gzip_refl(crc, fill, BS);
	for (uint32_t i = 0; i < hole_blocks / 256; i++)
		crc = crc32_gzip_refl(crc, zeros, 1 << 20);
	tu_simg_header(&b, BS, hole_blocks + fill_blocks + 1, 4);
	chunk_hdr(&b, &plain, 0xcac1, 1, BS);
	tu_put(&b, data, BS);
	chunk_hdr(&b, &plain, 0xcac2, fill_blocks, 4);
	tu_put(&b, pat, 4);
	chunk_hdr(&b, &plain, 0xcac3, hole_blocks, 0);
	chunk_hdr(&b, &plain, 0xcac4, 0, 4);
	tu_put32(&b, crc);
	tu_write_file(path, b.p, b.len);
	/* Through a codec: the stream decides the CRC. */
	run("zstd -q -c '%s' > '%s.zst'", path, path);
	free(path);
	path = tu_path(g.dir, "hole.simg.zst");
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(bmap_source_read_map(s, &map), 0);
	assert_int_equal(bmap_map_get_range_count(map), 1);
	assert_int_equal(bmap_map_get_mapped_bytes(map), (uint64_t)BS * (fill_blocks + 1));
	bmap_map_free(map);
	bmap_source_free(s);
	bmap_ctx_free(ctx);
	free(b.p);
	free(zeros);
	free(fill);
	free(path);
}

/* Skips that start and end inside chunks, at every phase of the fill
 * pattern: the CRC32 chunks still agree, and what is read is right. */
static void test_skip_inside_chunks(void **state)
{
	char *path = write_simg("skips.simg", &plain), cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "cat '%s'", path);
	for (uint64_t at = 1; at < sizeof(g.img); at += 4093) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		uint8_t *buf = malloc(sizeof(g.img));
		struct bmap_source *s;
		FILE *f;

		s = open_pipe(ctx, cmd, &f);
		assert_int_equal(bmap_source_skip(s, at), 0);
		assert_int_equal(bmap_source_read(s, buf, 3), 3);
		assert_memory_equal(buf, g.img + at, 3);
		assert_int_equal(bmap_source_skip(s, (sizeof(g.img) - at - 3) / 2), 0);
		read_whole(s, buf, sizeof(g.img) - bmap_source_tell(s));
		bmap_source_free(s);
		pclose(f);
		bmap_ctx_free(ctx);
		free(buf);
	}
	free(path);
}

struct bad_case {
	const char *name;
	struct layout l;
	const char *msg;
	int err;
};

static const struct bad_case bad_cases[] = {
	{ "major 2", { .major = 2, .file_hdr_sz = 28, .chunk_hdr_sz = 12 }, "major version 2",
	  -EPROTONOSUPPORT },
	{ "short chunk header", { .major = 1, .file_hdr_sz = 28, .chunk_hdr_sz = 8 },
	  "chunk headers of 8", -EBADMSG },
	{ "short file header", { .major = 1, .file_hdr_sz = 20, .chunk_hdr_sz = 12 },
	  "header of 20 bytes", -EBADMSG },
	{ "unknown chunk type", { .major = 1, .file_hdr_sz = 28, .chunk_hdr_sz = 12, .odd_type = 0xcac9 },
	  "chunk 3 of 8 (at byte 12340): unknown chunk type 0xcac9", -EBADMSG },
	{ "size mismatch", { .major = 1, .file_hdr_sz = 28, .chunk_hdr_sz = 12, .odd_total_sz = 99 },
	  "chunk 1 of 8 (at byte 28): its size is 99 bytes", -EBADMSG },
	{ "blocks short of the total", { .major = 1, .file_hdr_sz = 28, .chunk_hdr_sz = 12, .total_blks_delta = 3 },
	  "hold 14 blocks, the header says 17", -EBADMSG },
	{ "blocks past the total", { .major = 1, .file_hdr_sz = 28, .chunk_hdr_sz = 12, .total_blks_delta = (uint32_t)-2 },
	  "go past the 12 blocks", -EBADMSG },
};

/* Hostile or damaged headers: refused with the chunk and the reason, from
 * a file (at open, by the walk) and from a pipe (when the chunk comes). */
static void test_refusals(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char *path = write_simg("bad.simg", &c->l), cmd[512];

		snprintf(cmd, sizeof(cmd), "cat '%s'", path);
		for (int pipe = 0; pipe < 2; pipe++) {
			struct bmap_ctx *ctx = bmap_ctx_new();
			uint8_t *buf = malloc(sizeof(g.img) * 2);
			struct bmap_source *s = NULL;
			FILE *f = NULL;
			int r;

			if (pipe) {
				f = popen(cmd, "r");
				r = bmap_source_open_fd(ctx, dup(fileno(f)), "pipe", &s);
			} else {
				r = bmap_source_open(ctx, path, &s);
			}
			if (r == 0) {
				r = (int)bmap_source_read(s, buf, sizeof(g.img) * 2);
				if (r >= 0)
					r = (int)bmap_source_read(s, buf, 1);
			}
			if (r != c->err || !strstr(bmap_ctx_get_error(ctx), c->msg))
				fail_msg("%s (%s): got %d '%s', want %d '%s'", c->name,
					 pipe ? "pipe" : "file", r, bmap_ctx_get_error(ctx), c->err,
					 c->msg);
			bmap_source_free(s);
			if (f)
				pclose(f);
			bmap_ctx_free(ctx);
			free(buf);
		}
		free(path);
	}
}

/* Cut anywhere, the image is refused as truncated, never read past. */
static void test_truncated(void **state)
{
	struct tu_buf b = make_simg(&plain, g.img);
	char *path = tu_path(g.dir, "cut.simg");

	(void)state;
	for (size_t cut = 4; cut < b.len; cut += 1111) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		uint8_t *buf = malloc(sizeof(g.img));
		struct bmap_source *s;
		int r;

		tu_write_file(path, b.p, cut);
		r = bmap_source_open(ctx, path, &s);
		if (r == 0) {
			r = (int)bmap_source_read(s, buf, sizeof(g.img));
			bmap_source_free(s);
		}
		if (r != -EPIPE || !strstr(bmap_ctx_get_error(ctx), "truncated"))
			fail_msg("cut at %zu: %d '%s'", cut, r, bmap_ctx_get_error(ctx));
		bmap_ctx_free(ctx);
		free(buf);
	}
	free(b.p);
	free(path);
}

/* The real producer: img2simg's image reads as simg2img writes it back,
 * its map covers what img2simg kept, and a copy with it gives the data. */
static void test_img2simg(void **state)
{
	char *raw = tu_path(g.dir, "disk.raw"), *simg = tu_path(g.dir, "disk.simg");
	char *back = tu_path(g.dir, "disk.back"), *out = tu_path(g.dir, "disk.out");
	uint8_t *buf = malloc(1 << 20), *want, *got;
	size_t want_len, got_len;
	const size_t size = 24u << 20;

	(void)state;
	if (system("command -v img2simg >/dev/null && command -v simg2img >/dev/null") != 0)
		skip();
	tu_truncate(raw, size);
	for (int i = 0; i < 5; i++) {
		tu_pattern(buf, 1 << 20, (uint32_t)i + 40);
		tu_pwrite(raw, buf, (size_t)(3000 + i * 70000), (uint64_t)i * 4800000 + 8192);
	}
	memset(buf, 0, 1 << 20);
	tu_pwrite(raw, buf, 1 << 20, 22u << 20); /* zeros img2simg may fill */
	run("img2simg '%s' '%s' && simg2img '%s' '%s'", raw, simg, simg, back);
	want = (uint8_t *)tu_read_file(back, &want_len);
	assert_int_equal(want_len, size);

	for (int mode = 0; mode < 2; mode++) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE, .image_size = size };
		struct bmap_copy_opts copts = { .source_map = mode == 1 };
		struct bmap_copy_result res;
		struct bmap_source *s;
		struct bmap_target *t;
		struct bmap_map *map = NULL;
		FILE *f = NULL;
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "xz -0 -T2 -c '%s'", simg);
		if (mode == 0) {
			assert_int_equal(bmap_source_open(ctx, simg, &s), 0);
			assert_int_equal(bmap_source_get_map(s, &map), 0);
		} else {
			s = open_pipe(ctx, cmd, &f);
		}
		assert_int_equal(bmap_source_get_format(s), BMAP_FORMAT_SIMG);
		assert_int_equal(bmap_target_open(ctx, out, &topts, &t), 0);
		assert_int_equal(bmap_copy(ctx, s, map, t, &copts, &res), 0);
		got = (uint8_t *)tu_read_file(out, &got_len);
		assert_int_equal(got_len, size);
		/* Holes read as zeros on both sides: every byte must agree. */
		assert_memory_equal(got, want, size);
		if (!map)
			assert_int_equal(bmap_source_get_map(s, &map), 0);
		/* Every written byte is data img2simg kept; the 22 MiB zeros
		 * are either a fill (data) or a hole, never lost. */
		assert_true(res.bytes_written >= 5 * (3000 + 4 * 70000) / 2);
		assert_int_equal(res.bytes_written, bmap_map_get_mapped_bytes(map));
		free(got);
		bmap_target_free(t);
		bmap_map_free(map);
		bmap_source_free(s);
		if (f)
			pclose(f);
		bmap_ctx_free(ctx);
	}
	free(want);
	free(buf);
	free(raw);
	free(simg);
	free(back);
	free(out);
}

/* @path opened for bmap_create_from_source with its own map: a file's map
 * is known at open; a @stream's is read first, then it is opened again. */
static void open_for_create(struct bmap_ctx *ctx, const char *path, bool stream,
			    struct bmap_source **s, struct bmap_map **own)
{
	assert_int_equal(bmap_source_open(ctx, path, s), 0);
	if (stream) {
		assert_int_equal(bmap_source_read_map(*s, own), 0);
		bmap_source_free(*s);
		assert_int_equal(bmap_source_open(ctx, path, s), 0);
	} else {
		assert_int_equal(bmap_source_get_map(*s, own), 0);
	}
}

/* create from a sparse image: a file (its map known at open) and a
 * compressed one (its map read first, then hashed in order from a second
 * reading); the checksums are those of the data. */
static void test_create(void **state)
{
	char *path = write_simg("create.simg", &plain), *bmap = tu_path(g.dir, "create.bmap");
	char *comp = tu_path(g.dir, "create.simg.gz");
	uint8_t digest[32];

	(void)state;
	run("gzip -c '%s' > '%s'", path, comp);
	for (int c = 0; c < 2; c++) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_create_opts copts = { .block_size = 8192 };
		struct bmap_source *s;
		struct bmap_map *own, *made;
		int fd;

		open_for_create(ctx, c ? comp : path, c, &s, &own);
		fd = open(bmap, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		assert_int_equal(bmap_create_from_source(ctx, s, own, fd, bmap, &copts, NULL), 0);
		close(fd);
		bmap_source_free(s);
		assert_int_equal(bmap_map_load(ctx, bmap, &made), 0);
		/* 4 KiB chunks in 8 KiB blocks: 0-2 -> 0-1, 5-7 -> 2-3, 13 -> 6. */
		expect_ranges(made, (const uint64_t[][2]){ { 0, 3 }, { 6, 6 } }, 2);
		for (size_t i = 0; i < bmap_map_get_range_count(made); i++) {
			uint64_t off, len;

			bmap_map_range_bytes(made, i, &off, &len);
			bmap_sha256(g.img + off, len, digest);
			assert_memory_equal(digest, bmap_map_get_range_checksum(made, i), 32);
		}
		bmap_map_free(own);
		bmap_map_free(made);
		bmap_ctx_free(ctx);
	}
	free(path);
	free(bmap);
	free(comp);
}

/* Regression: create had no cancel, so the station's filler of a sparse
 * image went on hashing its part after a SIGTERM. Cancelled, both ways of
 * hashing (at random from a file, in order from a stream) stop with
 * -EINTR and "interrupted", and write no bmap. */
static void test_create_cancelled(void **state)
{
	char *path = write_simg("cancel.simg", &plain), *bmap = tu_path(g.dir, "cancel.bmap");
	char *comp = tu_path(g.dir, "cancel.simg.gz");
	atomic_int cancel = 1;

	(void)state;
	run("gzip -c '%s' > '%s'", path, comp);
	for (int c = 0; c < 2; c++) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_create_opts copts = { .block_size = 8192, .cancel = &cancel };
		struct bmap_source *s;
		struct bmap_map *own;
		struct stat st;
		int fd;

		open_for_create(ctx, c ? comp : path, c, &s, &own);
		fd = open(bmap, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		assert_int_equal(bmap_create_from_source(ctx, s, own, fd, bmap, &copts, NULL), -EINTR);
		assert_string_equal(bmap_ctx_get_error(ctx), "interrupted");
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(st.st_size, 0);
		close(fd);
		bmap_source_free(s);
		bmap_map_free(own);
		bmap_ctx_free(ctx);
	}
	free(path);
	free(bmap);
	free(comp);
}

/* Regression: skipping a FILL chunk computed its CRC over every byte of
 * it, so a 60-byte image whose one FILL chunk says 16 TiB kept `info` (or
 * any skip) busy for hours. Now it costs a few thousand steps: the child
 * reading its map must end well within 20 s of CPU. */
static void test_huge_fill_skipped_cheaply(void **state)
{
	static const uint8_t pat[4] = { 1, 2, 3, 4 };
	char *path = tu_path(g.dir, "hugefill.simg");
	struct tu_buf b = { 0 };
	int status;
	pid_t pid;

	(void)state;
	tu_simg_header(&b, BS, 0xffffffffu, 2);
	chunk_hdr(&b, &plain, 0xcac2, 0xffffffffu, 4);
	tu_put(&b, pat, 4);
	chunk_hdr(&b, &plain, 0xcac4, 0, 4);
	/* Wrong (the right one is 0: x has order 2^32 - 1 modulo the CRC
	 * polynomial, and this fill's bits are a multiple of it): reading the
	 * map must get to it and fail, not pass. */
	tu_put32(&b, 0x12345678);
	tu_write_file(path, b.p, b.len);
	free(b.p);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit cpu = { 20, 20 };
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_source *s;
		struct bmap_map *map;
		char cmd[512];
		FILE *f;
		int r;

		setrlimit(RLIMIT_CPU, &cpu);
		snprintf(cmd, sizeof(cmd), "cat '%s'", path);
		f = popen(cmd, "r");
		if (!f || bmap_source_open_fd(ctx, dup(fileno(f)), "pipe", &s) < 0)
			_exit(2);
		r = bmap_source_read_map(s, &map);
		r = r == -EBADMSG && strstr(bmap_ctx_get_error(ctx), "CRC32") ? 0 : 3;
		/* Nothing left behind: valgrind checks the child too. */
		bmap_source_free(s);
		pclose(f);
		bmap_ctx_free(ctx);
		free(path);
		_exit(r);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("reading the map of a huge fill: %s %d",
			 WIFSIGNALED(status) ? "killed by signal" : "exit",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	free(path);
}

/* A long fill of zeros is data, written without a buffer: a hole punched
 * in a file target (BLKZEROOUT on a device), zeros where the target held
 * 0xAA, and the digest that of the zeros; with the map given (a file) and
 * taken as the image streams (a pipe). */
static void test_zero_fill_written(void **state)
{
	const uint32_t fill_blocks = 300; /* 1.2 MiB */
	char *path = tu_path(g.dir, "zerofill.simg"), *out = tu_path(g.dir, "zerofill.out");
	const size_t size = (size_t)(fill_blocks + 2) * BS;
	uint8_t *img = calloc(1, size), digests[64], want[32];
	struct tu_buf b = { 0 };
	char cmd[512];

	(void)state;
	tu_pattern(img, BS, 21);
	tu_pattern(img + (fill_blocks + 1) * BS, BS, 22);
	tu_simg_header(&b, BS, fill_blocks + 2, 3);
	chunk_hdr(&b, &plain, 0xcac1, 1, BS);
	tu_put(&b, img, BS);
	chunk_hdr(&b, &plain, 0xcac2, fill_blocks, 4);
	tu_put32(&b, 0);
	chunk_hdr(&b, &plain, 0xcac1, 1, BS);
	tu_put(&b, img + (fill_blocks + 1) * BS, BS);
	tu_write_file(path, b.p, b.len);
	free(b.p);
	/* One range, the whole image: its digest is over every byte. */
	bmap_sha256(img, size, digests);
	bmap_sha256(digests, 32, want);
	snprintf(cmd, sizeof(cmd), "cat '%s'", path);
	for (int pipe = 0; pipe < 2; pipe++) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE, .image_size = size,
						  .keep_size = true };
		struct bmap_copy_opts copts = { .source_map = pipe };
		uint8_t *old = malloc(size), *got;
		struct bmap_copy_result res;
		struct bmap_target *t;
		struct bmap_source *s;
		struct bmap_map *map = NULL;
		size_t len;
		FILE *f = NULL;
		int fd;

		memset(old, 0xaa, size);
		tu_write_file(out, old, size);
		if (pipe)
			s = open_pipe(ctx, cmd, &f);
		else
			assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		if (!pipe)
			assert_int_equal(bmap_source_get_map(s, &map), 0);
		assert_int_equal(bmap_target_open(ctx, out, &topts, &t), 0);
		assert_int_equal(bmap_copy(ctx, s, map, t, &copts, &res), 0);
		assert_int_equal(res.bytes_written, size);
		assert_memory_equal(res.data_sha256, want, 32);
		got = (uint8_t *)tu_read_file(out, &len);
		assert_int_equal(len, size);
		assert_memory_equal(got, img, size);
		/* Not written: a hole where the zeros are. */
		fd = open(out, O_RDONLY | O_CLOEXEC);
		assert_int_equal(lseek(fd, BS, SEEK_HOLE), BS);
		close(fd);
		free(got);
		bmap_target_free(t);
		bmap_map_free(map);
		bmap_source_free(s);
		if (f)
			pclose(f);
		bmap_ctx_free(ctx);
		free(old);
	}
	free(img);
	free(path);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_map_and_bytes),
		cmocka_unit_test(test_stream_map),
		cmocka_unit_test(test_larger_headers),
		cmocka_unit_test(test_copy_skips_holes),
		cmocka_unit_test(test_digest_same_lazy_or_not),
		cmocka_unit_test(test_wrong_crc),
		cmocka_unit_test(test_crc_over_hole),
		cmocka_unit_test(test_skip_inside_chunks),
		cmocka_unit_test(test_huge_fill_skipped_cheaply),
		cmocka_unit_test(test_zero_fill_written),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_img2simg),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_create_cancelled),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
