/* Unit tests for discard.c: the gaps between mapped ranges (sector rounding,
 * the partial last block, ranges not at 0, no ranges) and the discard of a
 * regular file target (holes punched, guards, cancel). Block devices are
 * tested on loop devices by integration/copy-discard.sh. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "bmap.h"
#include "discard.h"

struct gap {
	uint64_t off, len;
};

/* A map of @size bytes, block size @bs, with @n ranges given as first, last pairs. */
static struct bmap_map *mk_map(uint64_t size, uint32_t bs, size_t n, const uint64_t *ranges)
{
	struct bmap_map *map = NULL;

	assert_int_equal(bmap_map_new(NULL, size, bs, &map), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(bmap_map_append_range(map, ranges[2 * i], ranges[2 * i + 1]), 0);
	return map;
}

/* Every gap of @map must be @want[0..n), in order, and then no more. */
static void expect_gaps(const struct bmap_map *map, uint64_t limit, uint32_t align,
			const struct gap *want, size_t n)
{
	size_t cursor = 0, i = 0;
	uint64_t off, len;

	while (discard_next_gap(map, limit, align, &cursor, &off, &len)) {
		assert_true(i < n);
		assert_int_equal(off, want[i].off);
		assert_int_equal(len, want[i].len);
		i++;
	}
	assert_int_equal(i, n);
	/* Asking again at the end gives nothing. */
	assert_false(discard_next_gap(map, limit, align, &cursor, &off, &len));
}

static void test_gaps_no_ranges(void **state)
{
	(void)state;
	/* An odd size: the last partial sector is never discarded. */
	struct bmap_map *map = mk_map(10000, 4096, 0, NULL);

	expect_gaps(map, 10000, 512, (struct gap[]){ { 0, 9728 } }, 1);
	expect_gaps(map, 10000, 1, (struct gap[]){ { 0, 10000 } }, 1);
	expect_gaps(map, 10000, 4096, (struct gap[]){ { 0, 8192 } }, 1);
	/* Smaller than one sector: nothing. */
	expect_gaps(map, 10000, 16384, NULL, 0);
	bmap_map_free(map);
}

static void test_gaps_first_range_not_at_zero(void **state)
{
	(void)state;
	struct bmap_map *map = mk_map(65536, 4096, 1, (uint64_t[]){ 2, 3 });

	expect_gaps(map, 65536, 512, (struct gap[]){ { 0, 8192 }, { 16384, 49152 } }, 2);
	bmap_map_free(map);

	/* Ranges at both ends: only the gap between them. */
	map = mk_map(65536, 4096, 2, (uint64_t[]){ 0, 1, 5, 15 });
	expect_gaps(map, 65536, 512, (struct gap[]){ { 8192, 12288 } }, 1);
	bmap_map_free(map);

	/* Fully mapped: nothing. */
	map = mk_map(65536, 4096, 1, (uint64_t[]){ 0, 15 });
	expect_gaps(map, 65536, 512, NULL, 0);
	bmap_map_free(map);
}

static void test_gaps_sector_rounding(void **state)
{
	(void)state;
	/* 512-byte blocks on a 4 KiB-sector device: gaps are cut inward to
	 * whole sectors; a sector shared with mapped data is never touched. */
	struct bmap_map *map = mk_map(65536, 512, 4, (uint64_t[]){ 1, 1, 9, 9, 30, 30, 100, 101 });

	/* [0,512): no whole sector. [1024,4608): none. [5120,15360): 8192-12288.
	 * [15872,51200): 16384-49152. [52224,65536): 53248-65536. */
	expect_gaps(map, 65536, 4096,
		    (struct gap[]){ { 8192, 4096 }, { 16384, 32768 }, { 53248, 12288 } }, 3);
	/* With 512-byte sectors the gaps are exact. */
	expect_gaps(map, 65536, 512,
		    (struct gap[]){ { 0, 512 },
				    { 1024, 3584 },
				    { 5120, 10240 },
				    { 15872, 35328 },
				    { 52224, 13312 } },
		    5);
	bmap_map_free(map);
}

static void test_gaps_partial_last_block(void **state)
{
	(void)state;
	/* 3 blocks and 1000 bytes; the last (partial) block unmapped: the gap
	 * ends at the image's end, rounded down to a sector. */
	uint64_t size = 3 * 4096 + 1000;
	struct bmap_map *map = mk_map(size, 4096, 1, (uint64_t[]){ 0, 0 });

	expect_gaps(map, size, 512, (struct gap[]){ { 4096, 12800 - 4096 } }, 1);
	expect_gaps(map, size, 1, (struct gap[]){ { 4096, size - 4096 } }, 1);
	/* A limit below the image's size (a smaller file) cuts the gap too. */
	expect_gaps(map, 8192 + 100, 512, (struct gap[]){ { 4096, 4096 } }, 1);
	/* A limit above it is cut to the image's size. */
	expect_gaps(map, 1 << 20, 512, (struct gap[]){ { 4096, 12800 - 4096 } }, 1);
	bmap_map_free(map);

	/* The partial last block mapped: nothing after it. */
	map = mk_map(size, 4096, 2, (uint64_t[]){ 0, 0, 3, 3 });
	expect_gaps(map, size, 512, (struct gap[]){ { 4096, 8192 } }, 1);
	bmap_map_free(map);

	/* Unaligned image end at 512: 1000 bytes past block 3 is 1.95
	 * sectors; only the first whole sector of the tail goes. */
	map = mk_map(size, 512, 1, (uint64_t[]){ 0, 23 });
	expect_gaps(map, size, 512, (struct gap[]){ { 12288, 512 } }, 1);
	bmap_map_free(map);
}

/* ---- discarding a regular file (holes punched) ---- */

#define FILE_IMG (5u * 4096 + 700) /* odd: a partial last block */
#define FILE_EXTRA 8192u            /* past the image: never touched */

struct fixture {
	char *dir, *path;
	struct bmap_ctx *ctx;
	struct bmap_map *map;
	uint8_t *pattern;
	size_t size;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = tu_mkdtemp();
	f->path = tu_path(f->dir, "card.img");
	f->ctx = bmap_ctx_new();
	f->size = FILE_IMG + FILE_EXTRA;
	f->pattern = malloc(f->size);
	memset(f->pattern, 0xA5, f->size);
	tu_pwrite(f->path, f->pattern, f->size, 0);
	/* Blocks 1 and 3 mapped: gaps 0, 2, and 4 to the image's end. */
	f->map = mk_map(FILE_IMG, 4096, 2, (uint64_t[]){ 1, 1, 3, 3 });
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	bmap_map_free(f->map);
	bmap_ctx_free(f->ctx);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f->path);
	free(f->pattern);
	free(f);
	return 0;
}

static struct bmap_target *open_file(struct fixture *f, enum bmap_target_mode mode)
{
	/* keep_size: the pre-filled file is not truncated, so what is
	 * punched shows. */
	struct bmap_target_opts topts = { .mode = mode, .image_size = FILE_IMG, .keep_size = true };
	struct bmap_target *t = NULL;

	assert_int_equal(bmap_target_open(f->ctx, f->path, &topts, &t), 0);
	return t;
}

static void test_discard_file_punches_gaps(void **state)
{
	struct fixture *f = *state;
	struct bmap_target *t = open_file(f, BMAP_TARGET_WRITE);
	struct bmap_discard_result res;
	size_t len;
	uint8_t *got;
	int r;

	r = bmap_target_discard_unmapped(f->ctx, t, f->map, NULL, &res);
	bmap_target_free(t);
	if (r == 0 && res.unsupported)
		skip(); /* $TMPDIR's file system cannot punch holes */
	assert_int_equal(r, 0);
	assert_true(res.punched);
	assert_int_equal(res.ranges, 3);
	assert_int_equal(res.bytes, 4096 + 4096 + 700 + 4096);

	got = (uint8_t *)tu_read_file(f->path, &len);
	assert_int_equal(len, f->size);
	for (size_t i = 0; i < len; i++) {
		bool gap = i < FILE_IMG && (i < 4096 || (i >= 8192 && i < 12288) || i >= 16384);

		if (got[i] != (gap ? 0 : 0xA5))
			fail_msg("byte %zu is 0x%02x, expected 0x%02x", i, got[i], gap ? 0 : 0xA5);
	}
	free(got);
}

static void test_discard_needs_write_mode(void **state)
{
	struct fixture *f = *state;
	struct bmap_target *t = open_file(f, BMAP_TARGET_READ);
	struct bmap_discard_result res = { .bytes = 12345 };
	size_t len;
	char *got;

	assert_int_equal(bmap_target_discard_unmapped(f->ctx, t, f->map, NULL, &res), -EBADF);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "card.img"));
	assert_int_equal(res.bytes, 12345); /* ret_* untouched on failure */
	bmap_target_free(t);
	got = tu_read_file(f->path, &len);
	assert_memory_equal(got, f->pattern, f->size);
	free(got);
}

static void test_discard_cancelled(void **state)
{
	struct fixture *f = *state;
	struct bmap_target *t = open_file(f, BMAP_TARGET_WRITE);
	atomic_int cancel = 1;
	size_t len;
	char *got;

	assert_int_equal(bmap_target_discard_unmapped(f->ctx, t, f->map, &cancel, NULL), -EINTR);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "interrupted"));
	bmap_target_free(t);
	got = tu_read_file(f->path, &len);
	assert_memory_equal(got, f->pattern, f->size);
	free(got);
}

static void test_discard_without_map(void **state)
{
	struct fixture *f = *state;
	struct bmap_target *t = open_file(f, BMAP_TARGET_WRITE);
	struct bmap_discard_result res;
	size_t len;
	char *got;

	/* --nobmap: every byte is written, nothing is unmapped. */
	assert_int_equal(bmap_target_discard_unmapped(f->ctx, t, NULL, NULL, &res), 0);
	assert_int_equal(res.bytes, 0);
	assert_int_equal(res.ranges, 0);
	assert_false(res.unsupported);
	bmap_target_free(t);
	got = tu_read_file(f->path, &len);
	assert_memory_equal(got, f->pattern, f->size);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gaps_no_ranges),
		cmocka_unit_test(test_gaps_first_range_not_at_zero),
		cmocka_unit_test(test_gaps_sector_rounding),
		cmocka_unit_test(test_gaps_partial_last_block),
		cmocka_unit_test_setup_teardown(test_discard_file_punches_gaps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_needs_write_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_cancelled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discard_without_map, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
