/*
 * The copy workers' two lanes: each worker hashes two ranges in lockstep
 * with the x86 SHA extensions. Ranges of uneven sizes (longer and shorter
 * than a worker's 1 MiB piece, ending mid-piece) are copied from an image
 * whose bmap's checksums OpenSSL computed (BMAP_SHA_NI=0), so a lane that
 * hashes a wrong byte fails the copy; the mapped-data digest is compared
 * with the one of a copy hashed by OpenSSL alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "bmap-private.h"
#include "source.h"
#include "sha256-ni.h"

/* Data islands (offset, length): uneven, in no size order, so that lanes
 * pair ranges of different lengths and refill while the other lane is
 * mid-range. */
static const struct {
	uint64_t off, len;
} islands[] = {
	{ 0, 4096 },
	{ 1u << 20, (5u << 20) + 12288 },
	{ 8u << 20, (3u << 20) + 4096 },
	{ 13u << 20, 700u << 10 },
	{ 15u << 20, (2u << 20) + 8192 },
	{ 19u << 20, 1u << 20 },
	{ 22u << 20, 65536 },
	{ 24u << 20, (4u << 20) - 4096 },
	{ 30u << 20, 12288 },
};
#define IMG_SIZE (32u << 20)

struct fixture {
	char *dir, *img, *bad, *bmap, *out;
	struct bmap_ctx *ctx;
	struct bmap_map *map;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	uint8_t *buf = malloc(6u << 20);
	int ifd, ofd;

	f->dir = tu_mkdtemp();
	f->img = tu_path(f->dir, "disk.img");
	f->bad = tu_path(f->dir, "bad.img");
	f->bmap = tu_path(f->dir, "disk.img.bmap");
	f->out = tu_path(f->dir, "card.img");
	f->ctx = bmap_ctx_new();
	tu_truncate(f->img, IMG_SIZE);
	for (size_t i = 0; i < sizeof(islands) / sizeof(islands[0]); i++) {
		tu_pattern(buf, (size_t)islands[i].len, (uint32_t)i + 7);
		tu_pwrite(f->img, buf, (size_t)islands[i].len, islands[i].off);
	}
	free(buf);
	/* The bmap's checksums by OpenSSL only. */
	setenv("BMAP_SHA_NI", "0", 1);
	ifd = open(f->img, O_RDONLY | O_CLOEXEC);
	ofd = open(f->bmap, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_int_equal(bmap_create(f->ctx, ifd, f->img, ofd, f->bmap,
				     &(struct bmap_create_opts){ 0 }, NULL),
			 0);
	close(ifd);
	close(ofd);
	unsetenv("BMAP_SHA_NI");
	assert_int_equal(bmap_map_load(f->ctx, f->bmap, &f->map), 0);
	assert_int_equal(bmap_map_get_range_count(f->map), sizeof(islands) / sizeof(islands[0]));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	bmap_map_free(f->map);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f->img);
	free(f->bad);
	free(f->bmap);
	free(f->out);
	bmap_ctx_free(f->ctx);
	free(f);
	return 0;
}

static int do_copy(struct fixture *f, const char *image, struct bmap_copy_result *res)
{
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE, .image_size = IMG_SIZE };
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	int r;

	assert_int_equal(bmap_source_open(f->ctx, image, &src), 0);
	assert_int_equal(bmap_target_open(f->ctx, f->out, &topts, &dst), 0);
	r = bmap_copy(f->ctx, src, f->map, dst, NULL, res);
	bmap_target_free(dst);
	bmap_source_free(src);
	return r;
}

/* Every range's lockstep SHA-256 matches OpenSSL's (the copy checks each
 * against the bmap), and so does the mapped-data digest. */
static void test_lanes_hash_as_openssl(void **state)
{
	struct fixture *f = *state;
	struct bmap_copy_result lanes, openssl;

	assert_int_equal(do_copy(f, f->img, &lanes), 0);
	tu_assert_same_file(f->img, f->out);
	setenv("BMAP_SHA_NI", "0", 1);
	assert_int_equal(do_copy(f, f->img, &openssl), 0);
	unsetenv("BMAP_SHA_NI");
	assert_int_equal(lanes.bytes_written, openssl.bytes_written);
	assert_memory_equal(lanes.data_sha256, openssl.data_sha256, 32);
}

/* A byte changed near the end of a range hashed in the second lane (the
 * second largest range goes with the largest) is caught and named. */
static void test_lanes_mismatch_in_second_lane(void **state)
{
	struct fixture *f = *state;
	char *data = tu_read_file(f->img, NULL), want[96];
	uint64_t off, len;

	bmap_map_range_bytes(f->map, 2, &off, &len); /* 3 MiB + 4 KiB, the second largest */
	data[off + len - 100] ^= 0x40;
	tu_truncate(f->bad, IMG_SIZE);
	tu_pwrite(f->bad, data, IMG_SIZE, 0);
	assert_int_equal(do_copy(f, f->bad, NULL), -EBADMSG);
	snprintf(want, sizeof(want), "checksum mismatch for blocks range %" PRIu64 "-%" PRIu64,
		 bmap_map_get_ranges(f->map)[2].first, bmap_map_get_ranges(f->map)[2].last);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), want));
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lanes_hash_as_openssl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lanes_mismatch_in_second_lane, setup,
						teardown),
	};

	if (!sha256_ni_available()) {
		printf("test_copy_lanes: skipped: no x86 SHA extensions, so no second lane\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
