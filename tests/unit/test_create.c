/* Unit tests for create: crafted sparse files, checked range by range. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "bmap-private.h"
#include "util.h"

struct fixture {
	char *dir, *img, *out;
	struct bmap_ctx *ctx;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = tu_mkdtemp();
	f->img = tu_path(f->dir, "image.img");
	f->out = tu_path(f->dir, "image.bmap");
	f->ctx = bmap_ctx_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rmtree(f->dir);
	free(f->dir);
	free(f->img);
	free(f->out);
	bmap_ctx_free(f->ctx);
	free(f);
	return 0;
}

/* Runs create on f->img and loads the result back with the parser. */
static struct bmap_map *create(struct fixture *f, uint32_t bs, bool no_checksum, int *ret)
{
	struct bmap_create_opts opts = { .block_size = bs, .no_checksum = no_checksum };
	struct bmap_create_result res;
	struct bmap_map *map = NULL;
	int ifd = open(f->img, O_RDONLY | O_CLOEXEC);
	int ofd = open(f->out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int r;

	assert_true(ifd >= 0 && ofd >= 0);
	r = bmap_create(f->ctx, ifd, f->img, ofd, f->out, &opts, &res);
	close(ifd);
	close(ofd);
	if (ret)
		*ret = r;
	if (r < 0)
		return NULL;
	assert_int_equal(bmap_map_load(f->ctx, f->out, &map), 0);
	assert_int_equal(res.mapped_blocks, bmap_map_get_mapped_blocks(map));
	assert_true(bmap_map_has_self_checksum(map));
	return map;
}

/* Each range's checksum must be the SHA-256 of exactly its bytes. */
static void check_digests(struct fixture *f, struct bmap_map *map)
{
	size_t n = bmap_map_get_range_count(map);
	size_t len;
	char *data = tu_read_file(f->img, &len);

	assert_int_equal(len, bmap_map_get_image_size(map));
	for (size_t i = 0; i < n; i++) {
		uint64_t off, l;
		uint8_t d[32];

		bmap_map_range_bytes(map, i, &off, &l);
		assert_int_equal(bmap_digest_buffer("sha256", data + off, l, d), 0);
		assert_memory_equal(d, bmap_map_get_range_checksum(map, i), 32);
	}
	free(data);
}

static void expect_ranges(struct bmap_map *map, const uint64_t *pairs, size_t n)
{
	const struct bmap_range *r = bmap_map_get_ranges(map);

	assert_int_equal(bmap_map_get_range_count(map), n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].first, pairs[2 * i]);
		assert_int_equal(r[i].last, pairs[2 * i + 1]);
	}
}

static void write_pattern(const char *path, uint64_t off, size_t len, uint32_t seed)
{
	char *buf = malloc(len);

	tu_pattern(buf, len, seed);
	tu_pwrite(path, buf, len, off);
	free(buf);
}

static void test_single_block(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;

	tu_truncate(f->img, 1 << 20);
	write_pattern(f->img, 8 * 4096, 4096, 1);
	map = create(f, 4096, false, NULL);
	expect_ranges(map, (const uint64_t[]){ 8, 8 }, 1);
	assert_int_equal(bmap_map_get_blocks_count(map), 256);
	check_digests(f, map);
	bmap_map_free(map);
}

static void test_holes_at_start_and_end(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;

	tu_truncate(f->img, 4 << 20);
	write_pattern(f->img, 1 << 20, 3 * 4096, 2);
	write_pattern(f->img, (2 << 20) + 4096, 2 * 4096, 3);
	map = create(f, 4096, false, NULL);
	expect_ranges(map, (const uint64_t[]){ 256, 258, 513, 514 }, 2);
	check_digests(f, map);
	bmap_map_free(map);
}

static void test_partial_last_block(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;

	tu_truncate(f->img, 0);
	write_pattern(f->img, 0, 4096, 4);
	write_pattern(f->img, 5 * 4096, 1000, 5); /* size 5*4096+1000 */
	map = create(f, 4096, false, NULL);
	assert_int_equal(bmap_map_get_image_size(map), 5 * 4096 + 1000);
	assert_int_equal(bmap_map_get_blocks_count(map), 6);
	expect_ranges(map, (const uint64_t[]){ 0, 0, 5, 5 }, 2);
	check_digests(f, map); /* the last range is hashed only up to the end */
	bmap_map_free(map);
}

static void test_all_holes(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;

	tu_truncate(f->img, 10 << 20);
	map = create(f, 4096, false, NULL);
	assert_int_equal(bmap_map_get_range_count(map), 0);
	assert_int_equal(bmap_map_get_mapped_blocks(map), 0);
	bmap_map_free(map);
}

static void test_fully_mapped(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;

	tu_truncate(f->img, 0);
	write_pattern(f->img, 0, 300 * 1024 + 7, 6);
	map = create(f, 4096, false, NULL);
	expect_ranges(map, (const uint64_t[]){ 0, 75 }, 1);
	check_digests(f, map);
	bmap_map_free(map);
}

static void test_zero_blocks_stay_mapped(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;
	char zeros[8192] = { 0 };

	tu_truncate(f->img, 1 << 20);
	tu_pwrite(f->img, zeros, sizeof(zeros), 4096 * 3);
	map = create(f, 4096, false, NULL);
	expect_ranges(map, (const uint64_t[]){ 3, 4 }, 1);
	check_digests(f, map);
	bmap_map_free(map);
}

static void test_blocksize_512(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;

	tu_truncate(f->img, 1 << 20);
	write_pattern(f->img, 4096 * 2, 4096, 7);
	map = create(f, 512, false, NULL);
	assert_int_equal(bmap_map_get_block_size(map), 512);
	expect_ranges(map, (const uint64_t[]){ 16, 23 }, 1);
	check_digests(f, map);
	bmap_map_free(map);
}

static void test_blocksize_65536(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;

	tu_truncate(f->img, (1 << 20) + 100);
	write_pattern(f->img, 4096 * 17, 4096, 8);      /* inside block 1 */
	write_pattern(f->img, 4096 * 31, 4096 * 2, 9);  /* ends block 1, starts block 2 */
	write_pattern(f->img, (1 << 20), 100, 10);      /* the partial block 16 */
	map = create(f, 65536, false, NULL);
	assert_int_equal(bmap_map_get_blocks_count(map), 17);
	expect_ranges(map, (const uint64_t[]){ 1, 2, 16, 16 }, 2);
	check_digests(f, map);
	bmap_map_free(map);
}

static void test_no_checksum(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;
	char *text;

	tu_truncate(f->img, 1 << 20);
	write_pattern(f->img, 0, 4096, 11);
	map = create(f, 4096, true, NULL);
	assert_false(bmap_map_has_range_checksums(map));
	text = tu_read_file(f->out, NULL);
	assert_non_null(strstr(text, "        <Range> 0 </Range>\n"));
	assert_non_null(strstr(text, "<ChecksumType> sha256 </ChecksumType>"));
	free(text);
	bmap_map_free(map);
}

static void test_many_ranges(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map;

	/* More ranges than one hashing batch holds. */
	tu_truncate(f->img, 4096ull * 40000);
	{
		int fd = open(f->img, O_WRONLY | O_CLOEXEC);
		char b[4096];

		assert_true(fd >= 0);
		for (int i = 0; i < 40000; i += 2) {
			tu_pattern(b, sizeof(b), (uint32_t)i);
			assert_int_equal(pwrite(fd, b, sizeof(b), 4096LL * i), 4096);
		}
		close(fd);
	}
	map = create(f, 4096, false, NULL);
	assert_int_equal(bmap_map_get_range_count(map), 20000);
	assert_int_equal(bmap_map_get_ranges(map)[19999].first, 39998);
	check_digests(f, map);
	bmap_map_free(map);
}

/*
 * Ranges of uneven sizes, in one thread and in two: create hashes two ranges
 * at a time per thread where the CPU has the SHA extensions, and a range
 * goes on alone once its partner ends. Every digest must still be the
 * SHA-256 of its bytes (OpenSSL, in check_digests), and the bmap the same
 * as with OpenSSL alone (BMAP_SHA_NI=0).
 */
static void test_uneven_ranges(void **state)
{
	static const struct {
		uint64_t off;
		size_t len;
	} data[] = {
	    { 0, 512 },
	    { 65536, 300 * 1024 + 512 },
	    { 1 << 20, (1 << 20) + 4096 },
	    { 3 << 20, 512 },
	    { (3 << 20) + 8192, 131072 },
	    { 4 << 20, 3 * 131072 + 1024 },
	    { 6 << 20, 70 * 1024 },
	    { (7 << 20) + 1000, 5 * 512 + 100 },
	};
	struct fixture *f = *state;
	size_t len, len2;
	char *first, *second;

	tu_truncate(f->img, (7 << 20) + 1000 + 5 * 512 + 100);
	for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++)
		write_pattern(f->img, data[i].off, data[i].len, (uint32_t)i + 7);
	for (unsigned threads = 1; threads <= 2; threads++) {
		struct bmap_create_opts opts = { .block_size = 512, .threads = threads };
		struct bmap_map *map;
		int ifd, ofd;

		for (int ni = 1; ni >= 0; ni--) {
			setenv("BMAP_SHA_NI", ni ? "1" : "0", 1);
			ifd = open(f->img, O_RDONLY | O_CLOEXEC);
			ofd = open(f->out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			assert_true(ifd >= 0 && ofd >= 0);
			assert_int_equal(bmap_create(f->ctx, ifd, f->img, ofd, f->out, &opts, NULL),
					 0);
			close(ifd);
			close(ofd);
			if (ni) {
				first = tu_read_file(f->out, &len);
				assert_int_equal(bmap_map_load(f->ctx, f->out, &map), 0);
				assert_int_equal(bmap_map_get_range_count(map), 8);
				check_digests(f, map);
				bmap_map_free(map);
			}
		}
		unsetenv("BMAP_SHA_NI");
		second = tu_read_file(f->out, &len2);
		assert_int_equal(len, len2);
		assert_memory_equal(first, second, len);
		free(first);
		free(second);
	}
}

static void test_zero_size_refused(void **state)
{
	struct fixture *f = *state;
	int r;

	tu_truncate(f->img, 0);
	assert_null(create(f, 4096, false, &r));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "zero-sized"));
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), f->img));
}

static void test_map_from_file(void **state)
{
	struct fixture *f = *state;
	struct bmap_map *map = NULL;
	int fd;

	tu_truncate(f->img, 1 << 20);
	write_pattern(f->img, 4096 * 9, 4096 * 3, 12);
	fd = open(f->img, O_RDONLY | O_CLOEXEC);
	assert_int_equal(bmap_map_from_file(f->ctx, fd, f->img, 4096, &map), 0);
	close(fd);
	expect_ranges(map, (const uint64_t[]){ 9, 11 }, 1);
	assert_false(bmap_map_has_range_checksums(map));
	bmap_map_free(map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_single_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holes_at_start_and_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_last_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_holes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fully_mapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_blocks_stay_mapped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocksize_512, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blocksize_65536, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_checksum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uneven_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_size_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_from_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
