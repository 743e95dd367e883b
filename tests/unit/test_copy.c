/* Unit tests for the copy and verify engines, with regular files as targets. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "bmap-private.h"
#include "source.h"
#include "util.h"

#define IMG_SIZE (8u * 1024 * 1024 + 1000) /* a partial last block */

struct fixture {
	char *dir, *img, *bmap, *out;
	struct bmap_ctx *ctx;
	struct bmap_map *map;
};

/* An image with data islands, a run of zero data and a partial last block. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct bmap_create_opts opts = { 0 };
	char *buf = malloc(1 << 20), zeros[8192] = { 0 };
	int ifd, ofd;

	f->dir = tu_mkdtemp();
	f->img = tu_path(f->dir, "disk.img");
	f->bmap = tu_path(f->dir, "disk.img.bmap");
	f->out = tu_path(f->dir, "card.img");
	f->ctx = bmap_ctx_new();
	tu_truncate(f->img, IMG_SIZE);
	for (int i = 0; i < 6; i++) {
		tu_pattern(buf, 1 << 20, (uint32_t)i);
		tu_pwrite(f->img, buf, (size_t)(100 + i * 4096), (uint64_t)i * 1300000);
	}
	tu_pattern(buf, 1 << 20, 99);
	tu_pwrite(f->img, buf, 1 << 20, 5 << 20);
	tu_pwrite(f->img, zeros, sizeof(zeros), 7 << 20);
	tu_pwrite(f->img, buf, 1000, 8u * 1024 * 1024);
	free(buf);

	ifd = open(f->img, O_RDONLY | O_CLOEXEC);
	ofd = open(f->bmap, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_int_equal(bmap_create(f->ctx, ifd, f->img, ofd, f->bmap, &opts, NULL), 0);
	close(ifd);
	close(ofd);
	assert_int_equal(bmap_map_load(f->ctx, f->bmap, &f->map), 0);
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
	free(f->bmap);
	free(f->out);
	bmap_ctx_free(f->ctx);
	free(f);
	return 0;
}

static int do_copy(struct fixture *f, const char *image, const struct bmap_map *map,
		   const struct bmap_copy_opts *opts, struct bmap_copy_result *res)
{
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE };
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	int r;

	assert_int_equal(bmap_source_open(f->ctx, image, &src), 0);
	topts.image_size = map ? bmap_map_get_image_size(map) : IMG_SIZE;
	assert_int_equal(bmap_target_open(f->ctx, f->out, &topts, &dst), 0);
	r = bmap_copy(f->ctx, src, map, dst, opts, res);
	bmap_target_free(dst);
	bmap_source_free(src);
	return r;
}

static int do_verify(struct fixture *f, const char *image, const struct bmap_map *map,
		     struct bmap_verify_result *res)
{
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_READ };
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	int r;

	assert_int_equal(bmap_source_open(f->ctx, image, &src), 0);
	assert_int_equal(bmap_target_open(f->ctx, f->out, &topts, &dst), 0);
	r = bmap_verify(f->ctx, dst, map, src, NULL, res);
	bmap_target_free(dst);
	bmap_source_free(src);
	return r;
}

static void test_copy_raw_and_verify(void **state)
{
	struct fixture *f = *state;
	struct bmap_copy_result cr;
	struct bmap_verify_result vr;

	assert_int_equal(do_copy(f, f->img, f->map, NULL, &cr), 0);
	assert_int_equal(cr.bytes_written, bmap_map_get_mapped_bytes(f->map));
	tu_assert_same_file(f->img, f->out);
	assert_int_equal(do_verify(f, f->img, f->map, &vr), 0);
	assert_false(vr.compared_bytes);
	assert_int_equal(vr.bad_ranges, 0);
	/* The same digest for what was written and what was read back. */
	assert_memory_equal(cr.data_sha256, vr.data_sha256, 32);
}

static void test_copy_zstd_matches_raw(void **state)
{
	struct fixture *f = *state;
	struct bmap_copy_result raw, zst;
	char *zpath = tu_path(f->dir, "disk.img.zst"), cmd[1024];

	snprintf(cmd, sizeof(cmd), "zstd -q -f '%s' -o '%s'", f->img, zpath);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(do_copy(f, f->img, f->map, NULL, &raw), 0);
	assert_int_equal(do_copy(f, zpath, f->map, NULL, &zst), 0);
	tu_assert_same_file(f->img, f->out);
	assert_memory_equal(raw.data_sha256, zst.data_sha256, 32);
	free(zpath);
}

static void test_verify_names_bad_range(void **state)
{
	struct fixture *f = *state;
	struct bmap_verify_result vr;
	const struct bmap_range *rg;
	uint64_t off, len;

	assert_int_equal(do_copy(f, f->img, f->map, NULL, NULL), 0);
	/* Damage one byte in the middle of the third range. */
	bmap_map_range_bytes(f->map, 2, &off, &len);
	tu_pwrite(f->out, "\x42\x43", 2, off + len / 2);
	assert_int_equal(do_verify(f, f->img, f->map, &vr), -EBADMSG);
	assert_int_equal(vr.bad_ranges, 1);
	assert_int_equal(vr.first_bad, 2);
	rg = &bmap_map_get_ranges(f->map)[2];
	{
		char want[64];

		snprintf(want, sizeof(want), "blocks %llu-%llu", (unsigned long long)rg->first,
			 (unsigned long long)rg->last);
		assert_non_null(strstr(bmap_ctx_get_error(f->ctx), want));
	}
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "1 of"));
}

static void test_verify_compare_without_checksums(void **state)
{
	struct fixture *f = *state;
	struct bmap_verify_result vr;
	struct bmap_map *holes = NULL;
	int fd = open(f->img, O_RDONLY | O_CLOEXEC);

	assert_int_equal(bmap_map_from_file(f->ctx, fd, f->img, 4096, &holes), 0);
	close(fd);
	assert_int_equal(do_copy(f, f->img, holes, NULL, NULL), 0);
	assert_int_equal(do_verify(f, f->img, holes, &vr), 0);
	assert_true(vr.compared_bytes);
	tu_pwrite(f->out, "!", 1, 5 * 1024 * 1024 + 17);
	assert_int_equal(do_verify(f, f->img, holes, &vr), -EBADMSG);
	assert_int_equal(vr.first_bad_offset, 5 * 1024 * 1024 + 17);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "first difference at byte 5242897"));
	/* No map at all: the whole image byte for byte. */
	assert_int_equal(do_verify(f, f->img, NULL, &vr), -EBADMSG);
	assert_int_equal(vr.first_bad_offset, 5 * 1024 * 1024 + 17);
	bmap_map_free(holes);
}

static void test_copy_checksum_mismatch(void **state)
{
	struct fixture *f = *state;
	char *bad = tu_path(f->dir, "other.img");
	char *data = tu_read_file(f->img, NULL);
	uint64_t off, len;

	/* The same layout with one byte changed: the bmap's checksum must catch it. */
	bmap_map_range_bytes(f->map, 1, &off, &len);
	data[off + 3] ^= 1;
	tu_truncate(bad, IMG_SIZE);
	for (size_t i = 0; i < bmap_map_get_range_count(f->map); i++) {
		bmap_map_range_bytes(f->map, i, &off, &len);
		tu_pwrite(bad, data + off, len, off);
	}
	assert_int_equal(do_copy(f, bad, f->map, NULL, NULL), -EBADMSG);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "checksum mismatch for blocks range"));
	/* --no-verify copies it anyway. */
	assert_int_equal(do_copy(f, bad, f->map, &(struct bmap_copy_opts){ .no_verify = true },
			     NULL),
			 0);
	free(bad);
	free(data);
}

/* A source checked when it was made (the station's cache entry) is not
 * hashed again: a changed byte passes the copy, the result's digest is the
 * one the checksums give (the good image's), and the read-back finds it. */
static void test_copy_source_checked(void **state)
{
	struct fixture *f = *state;
	char *bad = tu_path(f->dir, "checked.img");
	char *data = tu_read_file(f->img, NULL);
	struct bmap_copy_opts checked = { .source_checked = true };
	struct bmap_copy_result good, res;
	struct bmap_verify_result vres;
	uint64_t off, len;

	assert_int_equal(do_copy(f, f->img, f->map, NULL, &good), 0);
	assert_false(good.unhashed);
	bmap_map_range_bytes(f->map, 2, &off, &len);
	data[off + 7] ^= 0x10;
	tu_write_file(bad, data, IMG_SIZE);
	assert_int_equal(do_copy(f, bad, f->map, &checked, &res), 0);
	assert_memory_equal(res.data_sha256, good.data_sha256, 32);
	/* The caller is told: the digest is the map's, not the data's. */
	assert_true(res.unhashed);
	assert_int_equal(do_verify(f, bad, f->map, &vres), -EBADMSG);
	assert_int_equal(vres.first_bad, 2);
	/* Without it the copy checks. */
	assert_int_equal(do_copy(f, bad, f->map, NULL, NULL), -EBADMSG);
	free(bad);
	free(data);
}

static void test_copy_wrong_size_image(void **state)
{
	struct fixture *f = *state;
	char *other = tu_path(f->dir, "short.img");

	tu_truncate(other, IMG_SIZE - 4096);
	assert_int_equal(do_copy(f, other, f->map, NULL, NULL), -EINVAL);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "does not belong to this image"));
	free(other);
}

static void test_copy_nobmap(void **state)
{
	struct fixture *f = *state;
	struct bmap_copy_result cr;

	assert_int_equal(do_copy(f, f->img, NULL, NULL, &cr), 0);
	assert_int_equal(cr.bytes_written, IMG_SIZE);
	tu_assert_same_file(f->img, f->out);
}

static void test_copy_cancelled(void **state)
{
	struct fixture *f = *state;
	atomic_int cancel = 1;

	assert_int_equal(do_copy(f, f->img, f->map, &(struct bmap_copy_opts){ .cancel = &cancel },
			     NULL),
			 -EINTR);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "interrupted"));
}

static void progress_count(void *userdata, uint64_t done, uint64_t total)
{
	uint64_t *last = userdata;

	assert_true(done <= total);
	*last = done;
}

static void test_copy_progress(void **state)
{
	struct fixture *f = *state;
	uint64_t last = 0;

	assert_int_equal(do_copy(f, f->img, f->map,
				 &(struct bmap_copy_opts){ .progress = progress_count,
							   .progress_userdata = &last },
				 NULL),
			 0);
	assert_int_equal(last, bmap_map_get_mapped_bytes(f->map));
}

/* ---- reading a file while another thread fills it (bmaptool's spill) ---- */

struct filling {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t written;  /* under lock */
	int status;        /* 0 running, 1 done, -errno failed */
	unsigned blocked;  /* waits that had to wait */
	const char *image; /* decoded by the filler */
	const struct bmap_map *map;
	int part_fd;
};

static void filling_written(void *userdata, uint64_t end)
{
	struct filling *fl = userdata;

	usleep(20 * 1000); /* a slow filler: readers catch up with it */
	pthread_mutex_lock(&fl->lock);
	fl->written = end;
	pthread_cond_broadcast(&fl->cond);
	pthread_mutex_unlock(&fl->lock);
}

static int filling_wait(void *userdata, uint64_t end, char *why, size_t why_len)
{
	struct filling *fl = userdata;
	int r = 0;

	pthread_mutex_lock(&fl->lock);
	if (!fl->status && fl->written < end)
		fl->blocked++;
	while (!fl->status && fl->written < end)
		pthread_cond_wait(&fl->cond, &fl->lock);
	if (fl->status < 0) {
		snprintf(why, why_len, "the filler failed");
		r = fl->status;
	}
	pthread_mutex_unlock(&fl->lock);
	return r;
}

static void *filling_thread(void *userdata)
{
	struct filling *fl = userdata;
	struct bmap_target_opts topts = {
		.mode = BMAP_TARGET_WRITE,
		.image_size = fl->map ? bmap_map_get_image_size(fl->map) : 0,
		.no_sync = true,
	};
	struct bmap_copy_opts copts = { .written = filling_written, .written_userdata = fl };
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	int r;

	r = bmap_source_open(ctx, fl->image, &src);
	if (r >= 0)
		r = bmap_target_open_fd(ctx, fl->part_fd, "part", &topts, &dst);
	if (r >= 0)
		r = bmap_copy(ctx, src, fl->map, dst, &copts, NULL);
	pthread_mutex_lock(&fl->lock);
	fl->status = r < 0 ? r : 1;
	pthread_cond_broadcast(&fl->cond);
	pthread_mutex_unlock(&fl->lock);
	bmap_target_free(dst);
	bmap_source_free(src);
	bmap_ctx_free(ctx);
	return NULL;
}

/* Starts filling a new part file from @image; returns a reader's source on it. */
static struct bmap_source *filling_start(struct fixture *f, struct filling *fl,
					 const char *image, const struct bmap_map *map,
					 pthread_t *tid)
{
	char *part = tu_path(f->dir, "part");
	struct bmap_source *src = NULL;
	int rfd;

	memset(fl, 0, sizeof(*fl));
	pthread_mutex_init(&fl->lock, NULL);
	pthread_cond_init(&fl->cond, NULL);
	fl->image = image;
	fl->map = map;
	unlink(part);
	fl->part_fd = open(part, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fl->part_fd >= 0);
	rfd = open(part, O_RDONLY | O_CLOEXEC);
	assert_true(rfd >= 0);
	free(part);
	/* Opened before any byte is in: nothing may be guessed from them. */
	assert_int_equal(bmap_source_open_raw_fd(f->ctx, rfd, "part", &src), 0);
	assert_int_equal(bmap_source_get_compression(src), BMAP_COMP_RAW);
	assert_true(bmap_source_get_raw_fd(src) >= 0);
	assert_int_equal(pthread_create(tid, NULL, filling_thread, fl), 0);
	return src;
}

static void filling_end(struct filling *fl, pthread_t tid)
{
	pthread_join(tid, NULL);
	assert_int_equal(fl->status, 1);
	close(fl->part_fd);
	pthread_cond_destroy(&fl->cond);
	pthread_mutex_destroy(&fl->lock);
}

static void test_copy_and_verify_while_filled(void **state)
{
	struct fixture *f = *state;
	char *zpath = tu_path(f->dir, "disk.img.zst"), cmd[1024];
	struct bmap_map *holes = NULL;
	int fd = open(f->img, O_RDONLY | O_CLOEXEC);

	snprintf(cmd, sizeof(cmd), "zstd -q -f '%s' -o '%s'", f->img, zpath);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(bmap_map_from_file(f->ctx, fd, f->img, 4096, &holes), 0);
	close(fd);

	/* With the map, and without (every byte; the file ends where the
	 * filler stops): copy from the part, then verify against a new one. */
	for (int with_map = 1; with_map >= 0; with_map--) {
		const struct bmap_map *map = with_map ? f->map : NULL;
		struct filling fl;
		struct bmap_copy_opts copts = { .wait = filling_wait, .wait_userdata = &fl };
		struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE,
						  .image_size = IMG_SIZE };
		struct bmap_copy_result cr, direct;
		struct bmap_verify_result vr;
		struct bmap_target *dst = NULL;
		struct bmap_source *src;
		pthread_t tid;

		assert_int_equal(do_copy(f, f->img, map, NULL, &direct), 0);
		src = filling_start(f, &fl, zpath, map, &tid);
		assert_int_equal(bmap_target_open(f->ctx, f->out, &topts, &dst), 0);
		assert_int_equal(bmap_copy(f->ctx, src, map, dst, &copts, &cr), 0);
		bmap_target_free(dst);
		bmap_source_free(src);
		filling_end(&fl, tid);
		assert_true(fl.blocked > 0);
		tu_assert_same_file(f->img, f->out);
		assert_int_equal(cr.bytes_written, direct.bytes_written);
		assert_memory_equal(cr.data_sha256, direct.data_sha256, 32);

		/* Verify compares with the part as it is filled (a map without
		 * checksums, or none). */
		src = filling_start(f, &fl, zpath, with_map ? holes : NULL, &tid);
		topts = (struct bmap_target_opts){ .mode = BMAP_TARGET_READ };
		assert_int_equal(bmap_target_open(f->ctx, f->out, &topts, &dst), 0);
		assert_int_equal(bmap_verify(f->ctx, dst, with_map ? holes : NULL, src, &copts, &vr),
				 0);
		assert_true(vr.compared_bytes);
		bmap_target_free(dst);
		bmap_source_free(src);
		filling_end(&fl, tid);
		assert_true(fl.blocked > 0);
	}
	bmap_map_free(holes);
	free(zpath);
}

static int wait_fails(void *userdata, uint64_t end, char *why, size_t why_len)
{
	(void)userdata;
	if (end < (2u << 20))
		return 0;
	snprintf(why, why_len, "the filler failed: corrupt input");
	return -EBADMSG;
}

/* The filler's failure is the reader's, with its words. */
static void test_copy_wait_fails(void **state)
{
	struct fixture *f = *state;
	struct bmap_copy_opts copts = { .wait = wait_fails };

	assert_int_equal(do_copy(f, f->img, f->map, &copts, NULL), -EBADMSG);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "the filler failed: corrupt input"));
	assert_int_equal(do_copy(f, f->img, NULL, &copts, NULL), -EBADMSG);
	assert_non_null(strstr(bmap_ctx_get_error(f->ctx), "the filler failed: corrupt input"));
}

static void test_medium_gone(void **state)
{
	struct fixture *f = *state;
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE, .image_size = 4096 };
	struct bmap_target *dst = NULL;

	assert_int_equal(bmap_target_open(f->ctx, f->out, &topts, &dst), 0);
	/* A file has no medium to lose: only the errors that say so count. */
	assert_false(bmap_target_medium_gone(dst, -EIO));
	assert_false(bmap_target_medium_gone(dst, -ENOSPC));
	assert_true(bmap_target_medium_gone(dst, -ENODEV));
	assert_true(bmap_target_medium_gone(dst, -ENOMEDIUM));
	assert_true(bmap_target_medium_gone(dst, -ENXIO));
	bmap_target_free(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_copy_raw_and_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_zstd_matches_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_names_bad_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_compare_without_checksums, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_copy_source_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_checksum_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_wrong_size_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_nobmap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_cancelled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_progress, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_and_verify_while_filled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_wait_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_medium_gone, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
