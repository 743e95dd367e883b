/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The work map of a self-mapped image (format-cut.c) and what reads it:
 * ranges cut into 16 MiB pieces for the engines (never merged again, every
 * block kept), while `create` still writes the format's merged ranges; the
 * chunk index that reads an uncompressed Android sparse image without CRC32
 * chunks at random (format-simg-index.c), and one with CRC32 chunks still
 * read as a stream; a copy that takes the pieces in parallel, whose data
 * digest is over the pieces and the same whether the image is read at
 * random or from a pipe; fills of zeros written without a buffer; and the
 * memoized SHA-256 of runs of zeros (zero-digest.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "bmap-private.h"
#include "engine.h"
#include "source-format.h"
#include "source.h"

#define BS 4096u
#define MiB (1u << 20)

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = tu_mkdtemp();
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmtree(dir);
	free(dir);
	return 0;
}

/* ---- format_map_cut ---- */

static struct bmap_map *map_of(uint64_t size, uint32_t bs, const uint64_t (*r)[2], size_t n)
{
	struct bmap_map *map = NULL;

	assert_int_equal(bmap_map_new(NULL, size, bs, &map), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(bmap_map_append_range(map, r[i][0], r[i][1]), 0);
	return map;
}

static void expect(const struct bmap_map *map, const uint64_t (*want)[2], size_t n)
{
	assert_int_equal(bmap_map_get_range_count(map), n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(bmap_map_get_ranges(map)[i].first, want[i][0]);
		assert_int_equal(bmap_map_get_ranges(map)[i].last, want[i][1]);
	}
}

static void test_cut_pieces(void **state)
{
	/* 100 MiB + 1000 bytes of 4 KiB blocks: a range of 40 MiB, one of a
	 * block, one of 16 MiB exactly and one to the image's end, whose
	 * last block is partial. */
	const uint64_t size = 100ull * MiB + 1000, last_block = size / BS;
	const uint64_t in[][2] = { { 0, 10239 }, { 10300, 10300 }, { 12000, 16095 },
				   { 20000, last_block } };
	const uint64_t want[][2] = {
		{ 0, 4095 },	  { 4096, 8191 },   { 8192, 10239 }, { 10300, 10300 },
		{ 12000, 16095 }, { 20000, 24095 }, { 24096, last_block },
	};
	struct bmap_map *map = map_of(size, BS, in, 4), *cut = NULL;

	(void)state;
	assert_int_equal(format_map_cut(map, 16 * MiB, &cut), 0);
	expect(cut, want, 7);
	assert_int_equal(bmap_map_get_mapped_blocks(cut), bmap_map_get_mapped_blocks(map));
	assert_int_equal(bmap_map_get_mapped_bytes(cut), bmap_map_get_mapped_bytes(map));
	assert_int_equal(bmap_map_get_image_size(cut), size);
	assert_int_equal(bmap_map_get_block_size(cut), BS);
	bmap_map_free(cut);

	/* A piece that is not whole blocks is rounded down to them; one
	 * smaller than a block is a block. */
	assert_int_equal(format_map_cut(map, 3 * BS + 100, &cut), 0);
	assert_int_equal(bmap_map_get_ranges(cut)[0].last, 2);
	assert_int_equal(bmap_map_get_ranges(cut)[1].first, 3);
	assert_int_equal(bmap_map_get_mapped_blocks(cut), bmap_map_get_mapped_blocks(map));
	bmap_map_free(cut);
	assert_int_equal(format_map_cut(map, 100, &cut), 0);
	assert_int_equal(bmap_map_get_range_count(cut), bmap_map_get_mapped_blocks(map));
	bmap_map_free(cut);

	/* An empty map stays empty. */
	bmap_map_free(map);
	map = map_of(size, BS, NULL, 0);
	assert_int_equal(format_map_cut(map, 16 * MiB, &cut), 0);
	assert_int_equal(bmap_map_get_range_count(cut), 0);
	bmap_map_free(cut);
	bmap_map_free(map);
}

/* ---- Android sparse images made here ---- */

/* The disk: data (RAW, 1 MiB), a fill of 0x5a5aa5a5 (20 MiB), a fill of
 * zeros (40 MiB), a hole (DONT_CARE, 8 MiB), data (RAW, 64 KiB + 4 KiB),
 * a fill of zeros (16 KiB); with @crc, a CRC32 chunk at the end (over
 * the disk, holes as zeros). Returns the disk's bytes (@ret_size). */
#define RAW1 (1 * MiB)
#define FILL1 (20 * MiB)
#define ZERO1 (40 * MiB)
#define HOLE1 (8 * MiB)
#define RAW2 (68 * 1024)
#define ZERO2 (16 * 1024)

static uint8_t *make_simg(const char *path, bool crc, size_t *ret_size)
{
	const size_t size = (size_t)RAW1 + FILL1 + ZERO1 + HOLE1 + RAW2 + ZERO2;
	uint8_t *disk = calloc(1, size), *p;
	struct tu_buf b = { 0 };
	uint32_t v = 0x5a5aa5a5u;

	assert_non_null(disk);
	tu_pattern(disk, RAW1, 71);
	for (size_t i = 0; i < FILL1; i += 4)
		memcpy(disk + RAW1 + i, &v, 4);
	p = disk + RAW1 + FILL1 + ZERO1 + HOLE1;
	tu_pattern(p, RAW2, 72);
	tu_simg_header(&b, BS, (uint32_t)(size / BS), crc ? 7 : 6);
	tu_simg_chunk(&b, 0xcac1, RAW1 / BS, RAW1);
	tu_put(&b, disk, RAW1);
	tu_simg_chunk(&b, 0xcac2, FILL1 / BS, 4);
	tu_put32(&b, v);
	tu_simg_chunk(&b, 0xcac2, ZERO1 / BS, 4);
	tu_put32(&b, 0);
	tu_simg_chunk(&b, 0xcac3, HOLE1 / BS, 0);
	tu_simg_chunk(&b, 0xcac1, RAW2 / BS, RAW2);
	tu_put(&b, p, RAW2);
	tu_simg_chunk(&b, 0xcac2, ZERO2 / BS, 4);
	tu_put32(&b, 0);
	if (crc) {
		uint8_t *crcbuf = disk;
		uint32_t c = 0xffffffffu;
		/* zlib's CRC32, bitwise: the test needs no library for it. */
		for (size_t i = 0; i < size; i++) {
			c ^= crcbuf[i];
			for (int k = 0; k < 8; k++)
				c = c >> 1 ^ (0xedb88320u & -(c & 1));
		}
		tu_simg_chunk(&b, 0xcac4, 0, 4);
		tu_put32(&b, ~c);
	}
	tu_write_file(path, b.p, b.len);
	free(b.p);
	*ret_size = size;
	return disk;
}

/* The map the sparse image gives: data, then data up to the hole, then
 * data to the end (the zeros of a FILL are data). */
static void test_simg_index(void **state)
{
	char *path = tu_path(dir, "index.simg"), *crc_path = tu_path(dir, "crc.simg");
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s;
	size_t size;
	uint8_t *disk = make_simg(path, false, &size), *buf = malloc(size);
	const uint64_t offs[][2] = {
		{ 0, 4096 },	       { RAW1 - 100, 200 }, { RAW1 + 3, 4093 },
		{ RAW1 + FILL1 - 2, 9 }, { RAW1 + FILL1 + ZERO1 - 4096, HOLE1 + 8192 },
		{ 0, 0 },	       { 7, 3 * MiB },	    { size - ZERO2 - 5, ZERO2 + 5 },
	};
	bool zero;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(bmap_source_get_format(s), BMAP_FORMAT_SIMG);
	/* Read at random, from the chunk index. */
	assert_true(source_can_pread(s));
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		memset(buf, 0xee, offs[i][1] + 1);
		assert_int_equal(source_pread(s, buf, offs[i][1], offs[i][0]), (ssize_t)offs[i][1]);
		assert_memory_equal(buf, disk + offs[i][0], offs[i][1]);
	}
	assert_int_equal(source_pread(s, buf, size, 0), (ssize_t)size);
	assert_memory_equal(buf, disk, size);
	/* Short only at the disk's end. */
	assert_int_equal(source_pread(s, buf, 100, size - 10), 10);
	assert_int_equal(source_pread(s, buf, 100, size), 0);
	/* Its runs: data, the zeros of the fill and the hole as one run
	 * (up to as far as asked), data again. */
	assert_int_equal(source_prun(s, 10, 1, &zero), RAW1 - 10);
	assert_false(zero);
	assert_int_equal(source_prun(s, RAW1 + 8, 1, &zero), FILL1 - 8);
	assert_false(zero);
	assert_int_equal(source_prun(s, RAW1 + FILL1 + 4096, 1, &zero), ZERO1 - 4096);
	assert_true(zero);
	assert_int_equal(source_prun(s, RAW1 + FILL1 + 4096, ZERO1 + HOLE1, &zero),
			 ZERO1 + HOLE1 - 4096);
	assert_true(zero);
	assert_int_equal(source_prun(s, size - ZERO2, 1, &zero), ZERO2);
	assert_true(zero);
	assert_int_equal(source_prun(s, size, 1, &zero), 0);
	/* And the stream still reads the same bytes. */
	assert_int_equal(bmap_source_read(s, buf, size), (ssize_t)size);
	assert_memory_equal(buf, disk, size);
	bmap_source_free(s);

	/* With a CRC32 chunk: a stream, so that the CRC is checked. */
	free(disk);
	disk = make_simg(crc_path, true, &size);
	assert_int_equal(bmap_source_open(ctx, crc_path, &s), 0);
	assert_false(source_can_pread(s));
	assert_int_equal(source_prun(s, 0, 1, &zero), -ENOTSUP);
	assert_int_equal(bmap_source_read(s, buf, size), (ssize_t)size);
	assert_memory_equal(buf, disk, size);
	assert_int_equal(bmap_source_read(s, buf, 1), 0);
	bmap_source_free(s);

	bmap_ctx_free(ctx);
	free(buf);
	free(disk);
	free(path);
	free(crc_path);
}

/* The digest of the mapped data as the engine cuts it: the SHA-256 of
 * each piece's SHA-256, the pieces of FORMAT_CUT_PIECE bytes from each
 * range's start. */
static void cut_digest(const uint8_t *disk, const uint64_t (*ranges)[2], size_t n,
		       uint8_t out[32])
{
	uint8_t *d = NULL;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		for (uint64_t off = ranges[i][0]; off < ranges[i][1]; off += FORMAT_CUT_PIECE) {
			uint64_t len = ranges[i][1] - off < FORMAT_CUT_PIECE ? ranges[i][1] - off
									    : FORMAT_CUT_PIECE;

			d = realloc(d, (k + 1) * 32);
			assert_non_null(d);
			bmap_sha256(disk + off, len, d + 32 * k++);
		}
	bmap_sha256(d, 32 * k, out);
	free(d);
}

static void test_copy_cut(void **state)
{
	char *path = tu_path(dir, "copy.simg");
	char *out = tu_path(dir, "copy.out"), *bmap_path = tu_path(dir, "copy.bmap");
	size_t size;
	uint8_t *disk = make_simg(path, false, &size), want[32], first[32];
	/* Its own map: the hole apart, two ranges. */
	const uint64_t ranges[][2] = { { 0, RAW1 + FILL1 + ZERO1 },
				       { RAW1 + FILL1 + ZERO1 + HOLE1, size } };
	char cmd[512];

	(void)state;
	cut_digest(disk, ranges, 2, want);
	snprintf(cmd, sizeof(cmd), "cat '%s'", path);
	for (int mode = 0; mode < 3; mode++) {
		/* 0: the file, at random; 1: from a pipe, its map found as it
		 * streams; 2: the file, with the SHA extensions off. */
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE, .image_size = size,
						  .keep_size = true };
		struct bmap_copy_opts copts = { .source_map = mode == 1 };
		struct bmap_copy_result res;
		struct bmap_verify_result vres;
		struct bmap_target *t;
		struct bmap_source *s;
		struct bmap_map *map = NULL;
		uint8_t *old = malloc(size), *got;
		size_t len;
		FILE *f = NULL;
		int fd;

		if (mode == 2)
			setenv("BMAP_SHA_NI", "0", 1);
		memset(old, 0xaa, size);
		tu_write_file(out, old, size);
		if (mode == 1) {
			f = popen(cmd, "r");
			assert_non_null(f);
			assert_int_equal(bmap_source_open_fd(ctx, dup(fileno(f)), "pipe", &s), 0);
		} else {
			assert_int_equal(bmap_source_open(ctx, path, &s), 0);
			assert_int_equal(bmap_source_get_map(s, &map), 0);
			/* The map the format gives stays merged. */
			assert_int_equal(bmap_map_get_range_count(map), 2);
		}
		assert_int_equal(bmap_target_open(ctx, out, &topts, &t), 0);
		assert_int_equal(bmap_copy(ctx, s, map, t, &copts, &res), 0);
		assert_int_equal(res.bytes_written, size - HOLE1);
		assert_memory_equal(res.data_sha256, want, 32);
		if (mode == 0)
			memcpy(first, res.data_sha256, 32);
		got = (uint8_t *)tu_read_file(out, &len);
		assert_int_equal(len, size);
		/* The data, and 0xAA in the hole: not written. */
		assert_memory_equal(got, disk, RAW1 + FILL1 + ZERO1);
		for (size_t i = 0; i < HOLE1; i++)
			assert_int_equal(got[RAW1 + FILL1 + ZERO1 + i], 0xaa);
		assert_memory_equal(got + RAW1 + FILL1 + ZERO1 + HOLE1,
				    disk + RAW1 + FILL1 + ZERO1 + HOLE1, RAW2 + ZERO2);
		/* The fill of zeros was not written with a buffer: a hole
		 * punched in the file. */
		fd = open(out, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(lseek(fd, RAW1 + FILL1, SEEK_HOLE), RAW1 + FILL1);
		close(fd);
		free(got);
		free(old);
		bmap_target_free(t);
		bmap_source_free(s);
		if (f)
			pclose(f);

		/* verify compares the card with the image over the same
		 * pieces: the same digest. */
		if (mode != 1) {
			struct bmap_target_opts vopts = { .mode = BMAP_TARGET_READ };

			assert_int_equal(bmap_source_open(ctx, path, &s), 0);
			assert_int_equal(bmap_target_open(ctx, out, &vopts, &t), 0);
			assert_int_equal(bmap_verify(ctx, t, map, s, &copts, &vres), 0);
			assert_int_equal(vres.bad_ranges, 0);
			assert_memory_equal(vres.data_sha256, want, 32);
			bmap_target_free(t);
			bmap_source_free(s);
		}
		bmap_map_free(map);
		bmap_ctx_free(ctx);
		unsetenv("BMAP_SHA_NI");
	}

	/* create writes the format's ranges as they are: two, not cut. */
	{
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_source *s;
		struct bmap_map *map = NULL, *written = NULL;
		int fd = open(bmap_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		assert_true(fd >= 0);
		assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		assert_int_equal(bmap_source_get_map(s, &map), 0);
		assert_int_equal(bmap_create_from_source(ctx, s, map, fd, bmap_path, NULL, NULL), 0);
		close(fd);
		assert_int_equal(bmap_map_load(ctx, bmap_path, &written), 0);
		assert_int_equal(bmap_map_get_range_count(written), 2);
		assert_int_equal(bmap_map_get_ranges(written)[0].first, 0);
		assert_int_equal(bmap_map_get_ranges(written)[0].last,
				 (RAW1 + FILL1 + ZERO1) / BS - 1);
		assert_true(bmap_map_has_range_checksums(written));
		bmap_map_free(written);
		bmap_map_free(map);
		bmap_source_free(s);
		bmap_ctx_free(ctx);
	}
	free(disk);
	free(path);
	free(out);
	free(bmap_path);
}

/* ---- the SHA-256 of zeros ---- */

static void test_zero_sha256(void **state)
{
	const uint64_t lens[] = { 0, 1, 63, 64, 65, MiB - 1, MiB, MiB + 1, 3 * MiB + 4097,
				  16 * MiB, 3 * MiB + 4097, 1, 0 };
	uint8_t *zeros = calloc(1, 16 * MiB), got[32], want[32];

	(void)state;
	assert_non_null(zeros);
	for (int ni = 0; ni < 2; ni++) {
		if (ni && !sha256_ni_available())
			continue;
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			bmap_sha256(zeros, lens[i], want);
			assert_int_equal(engine_zero_sha256(lens[i], ni, got), 0);
			assert_memory_equal(got, want, 32);
		}
	}
	free(zeros);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cut_pieces),
		cmocka_unit_test(test_simg_index),
		cmocka_unit_test(test_copy_cut),
		cmocka_unit_test(test_zero_sha256),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
