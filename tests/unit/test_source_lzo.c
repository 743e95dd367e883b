/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The lzo codec (source-lzo.c): lzop files written here with liblzo2 (every
 * checksum flag, stored and compressed blocks, an extra field) and by the
 * real lzop, read from files and pipes; damaged blocks, wrong checksums,
 * filters, truncation and trailing garbage refused with their reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lzo/lzo1x.h>

#include "testutil.h"
#include "source.h"

#define DATA_SIZE (2u * 1024 * 1024 + 4321)

#define F_ADLER32_D 0x001u
#define F_ADLER32_C 0x002u
#define F_H_EXTRA_FIELD 0x040u
#define F_CRC32_D 0x100u
#define F_CRC32_C 0x200u
#define F_H_FILTER 0x800u
#define F_H_CRC32 0x1000u

static const uint8_t magic[9] = {0x89, 'L', 'Z', 'O', 0x00, '\r', '\n', 0x1a, '\n'};

static struct {
	char *dir;
	uint8_t *data;
} g;

struct out {
	uint8_t *p;
	size_t len;
};

static void put(struct out *o, const void *b, size_t n)
{
	memcpy(o->p + o->len, b, n);
	o->len += n;
}

static void put32(struct out *o, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	put(o, b, 4);
}

/* Where block @i's compressed data starts, for the damage tests. */
static size_t block_data_at[64];

/* An lzop file of @data with @flags, in blocks of @bs. */
static struct out make_lzop(const uint8_t *data, size_t len, uint32_t flags, size_t bs)
{
	struct out o = {malloc(len + len / 8 + 4096 + 64 * 32), 0};
	uint8_t hdr[64], *cbuf = malloc(bs + bs / 16 + 64 + 3);
	void *wrk = malloc(LZO1X_1_MEM_COMPRESS);
	struct out h = {hdr, 0};
	size_t i = 0;

	assert_non_null(o.p);
	put(&o, magic, sizeof(magic));
	/* version 1.03, lib 2.08, needed 0.94, LZO1X-1, level 5 */
	put(&h, "\x10\x30\x20\x80\x09\x40\x01\x05", 8);
	put32(&h, flags);
	put32(&h, 0100644);
	put32(&h, 0);
	put32(&h, 0);
	put(&h, "\x03img", 4);
	put(&o, hdr, h.len);
	put32(&o, (flags & F_H_CRC32) ? lzo_crc32(0, hdr, h.len) : lzo_adler32(1, hdr, h.len));
	if (flags & F_H_EXTRA_FIELD) {
		uint8_t ex[8] = {0, 0, 0, 4, 'x', 't', 'r', 'a'};

		put(&o, ex, sizeof(ex));
		put32(&o, (flags & F_H_CRC32) ? lzo_crc32(0, ex, 8) : lzo_adler32(1, ex, 8));
	}
	for (size_t b = 0; i < len; b++) {
		size_t dlen = len - i < bs ? len - i : bs;
		lzo_uint clen = 0;

		assert_int_equal(lzo1x_1_compress(data + i, dlen, cbuf, &clen, wrk), LZO_E_OK);
		if (clen >= dlen) {
			memcpy(cbuf, data + i, dlen);
			clen = dlen;
		}
		put32(&o, (uint32_t)dlen);
		put32(&o, (uint32_t)clen);
		if (flags & F_ADLER32_D)
			put32(&o, lzo_adler32(1, data + i, dlen));
		if (flags & F_CRC32_D)
			put32(&o, lzo_crc32(0, data + i, dlen));
		if (clen < dlen && (flags & F_ADLER32_C))
			put32(&o, lzo_adler32(1, cbuf, clen));
		if (clen < dlen && (flags & F_CRC32_C))
			put32(&o, lzo_crc32(0, cbuf, clen));
		if (b < 64)
			block_data_at[b] = o.len;
		put(&o, cbuf, clen);
		i += dlen;
	}
	put32(&o, 0);
	free(cbuf);
	free(wrk);
	return o;
}

static char *write_tmp(const char *name, const void *p, size_t len)
{
	char *path = tu_path(g.dir, name);

	tu_write_file(path, p, len);
	return path;
}

/* Reads all of @path: its length, or -errno with the context's detail. */
static ssize_t read_path(struct bmap_ctx *ctx, const char *path, uint8_t *buf, size_t cap,
			 uint64_t *ret_in)
{
	struct bmap_source *s;
	size_t done = 0;
	int r = bmap_source_open(ctx, path, &s);

	if (r < 0)
		return r;
	assert_int_equal(bmap_source_get_compression(s), BMAP_COMP_LZO);
	for (;;) {
		/* Odd read sizes: blocks straddle the caller's buffers. */
		ssize_t n = bmap_source_read(s, buf + done, cap - done < 77777 ? cap - done : 77777);

		if (n < 0) {
			bmap_source_free(s);
			return n;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	assert_int_equal(bmap_source_tell(s), done);
	if (ret_in)
		*ret_in = bmap_source_input_pos(s);
	bmap_source_free(s);
	return (ssize_t)done;
}

static void expect_ok(const struct out *o, const char *name)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	uint8_t *buf = malloc(DATA_SIZE + 1);
	char *path = write_tmp(name, o->p, o->len);
	uint64_t in = 0;
	ssize_t n = read_path(ctx, path, buf, DATA_SIZE + 1, &in);

	if (n < 0)
		fail_msg("%s: %s", name, bmap_ctx_get_error(ctx));
	assert_int_equal(n, DATA_SIZE);
	assert_memory_equal(buf, g.data, DATA_SIZE);
	/* Every input byte was the decoder's. */
	assert_int_equal(in, o->len);
	free(path);
	free(buf);
	bmap_ctx_free(ctx);
}

/* Reading @o fails with @err and a detail holding @words (and the file). */
static void expect_error(const struct out *o, const char *name, int err, const char *words)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	uint8_t *buf = malloc(DATA_SIZE + 1);
	char *path = write_tmp(name, o->p, o->len);
	ssize_t n = read_path(ctx, path, buf, DATA_SIZE + 1, NULL);

	if (n != err || !strstr(bmap_ctx_get_error(ctx), words) ||
	    !strstr(bmap_ctx_get_error(ctx), path))
		fail_msg("%s: got %zd '%s', wanted %d with '%s'", name, n, bmap_ctx_get_error(ctx),
			 err, words);
	free(path);
	free(buf);
	bmap_ctx_free(ctx);
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(lzo_init(), LZO_E_OK);
	g.dir = tu_mkdtemp();
	g.data = malloc(DATA_SIZE);
	/* Compressible and incompressible stretches: stored blocks too. */
	tu_pattern(g.data, DATA_SIZE, 7);
	for (size_t i = 0; i < DATA_SIZE / 2; i++)
		g.data[i] = (uint8_t)(i / 1000);
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

static void test_flags(void **state)
{
	static const uint32_t flag_sets[] = {
	    0,
	    F_ADLER32_D,
	    F_ADLER32_D | F_ADLER32_C,
	    F_CRC32_D | F_CRC32_C | F_H_CRC32,
	    F_ADLER32_D | F_ADLER32_C | F_CRC32_D | F_CRC32_C,
	    F_ADLER32_D | F_H_EXTRA_FIELD,
	    F_CRC32_D | F_H_CRC32 | F_H_EXTRA_FIELD,
	};
	char name[64];

	(void)state;
	for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		struct out o = make_lzop(g.data, DATA_SIZE, flag_sets[i], 256 * 1024);

		snprintf(name, sizeof(name), "flags-%zu.lzo", i);
		expect_ok(&o, name);
		free(o.p);
	}
	/* Blocks larger than any read. */
	struct out big = make_lzop(g.data, DATA_SIZE, F_ADLER32_D, 1024 * 1024 + 3);

	expect_ok(&big, "big-blocks.lzo");
	free(big.p);
}

static void test_concatenated_and_pipe(void **state)
{
	struct out a = make_lzop(g.data, DATA_SIZE / 3, F_ADLER32_D, 65536);
	struct out b = make_lzop(g.data + DATA_SIZE / 3, DATA_SIZE - DATA_SIZE / 3,
				 F_CRC32_D | F_H_CRC32, 100000);
	struct out cat = {malloc(a.len + b.len + 100), 0};
	struct bmap_ctx *ctx = bmap_ctx_new();
	uint8_t *buf = malloc(DATA_SIZE + 1);
	char *path, cmd[512];
	ssize_t n;

	(void)state;
	put(&cat, a.p, a.len);
	put(&cat, b.p, b.len);
	expect_ok(&cat, "cat.lzo");

	/* From a pipe, with zero padding after it (as with gzip). */
	memset(cat.p + cat.len, 0, 100);
	cat.len += 100;
	path = write_tmp("padded.lzo", cat.p, cat.len);
	{
		struct bmap_source *s;
		size_t done = 0;
		FILE *f;
		int fd;

		snprintf(cmd, sizeof(cmd), "cat '%s'", path);
		f = popen(cmd, "r");
		assert_non_null(f);
		fd = fcntl(fileno(f), F_DUPFD_CLOEXEC, 3);
		assert_int_equal(bmap_source_open_fd(ctx, fd, "pipe", &s), 0);
		for (;;) {
			n = bmap_source_read(s, buf + done, DATA_SIZE + 1 - done);
			if (n < 0)
				fail_msg("pipe: %s", bmap_ctx_get_error(ctx));
			if (n == 0)
				break;
			done += (size_t)n;
		}
		assert_int_equal(done, DATA_SIZE);
		assert_memory_equal(buf, g.data, DATA_SIZE);
		bmap_source_free(s);
		pclose(f);
	}
	free(path);

	/* Garbage after the end. */
	cat.len -= 100;
	put(&cat, "garbage", 7);
	expect_error(&cat, "garbage.lzo", -EBADMSG, "unexpected data after the end");

	free(a.p);
	free(b.p);
	free(cat.p);
	free(buf);
	bmap_ctx_free(ctx);
}

static void test_damage(void **state)
{
	uint32_t all = F_ADLER32_D | F_ADLER32_C;
	struct out o;

	(void)state;
	/* A compressed block's byte: its compressed checksum says so. */
	o = make_lzop(g.data, DATA_SIZE, all, 256 * 1024);
	o.p[block_data_at[1] + 10] ^= 0x55;
	expect_error(&o, "bad-c.lzo", -EBADMSG, "block 1: the adler32 of its compressed data");
	free(o.p);

	/* Without a compressed checksum: the decoder or the data's checksum. */
	o = make_lzop(g.data, DATA_SIZE, F_CRC32_D, 256 * 1024);
	o.p[block_data_at[2] + 100] ^= 0x01;
	expect_error(&o, "bad-d.lzo", -EBADMSG, "corrupt");
	free(o.p);

	/* A stored (incompressible) block: only the data's checksum. */
	o = make_lzop(g.data, DATA_SIZE, F_CRC32_D, 256 * 1024);
	o.p[block_data_at[7] + 5] ^= 0x01;
	expect_error(&o, "bad-stored.lzo", -EBADMSG, "block 7: the crc32 of its uncompressed data");
	free(o.p);

	/* The header's checksum. */
	o = make_lzop(g.data, DATA_SIZE, all, 256 * 1024);
	o.p[sizeof(magic) + 18] ^= 0x01; /* inside the mode field */
	expect_error(&o, "bad-h.lzo", -EBADMSG, "header's checksum");
	free(o.p);

	/* Impossible sizes. */
	o = make_lzop(g.data, DATA_SIZE, 0, 256 * 1024);
	o.p[block_data_at[0] - 4] ^= 0x40; /* the compressed length's high byte */
	expect_error(&o, "bad-size.lzo", -EBADMSG, "sizes are impossible");
	free(o.p);

	/* Truncated inside a block, and before the end-of-stream block. */
	o = make_lzop(g.data, DATA_SIZE, all, 256 * 1024);
	o.len = block_data_at[3] + 17;
	expect_error(&o, "trunc.lzo", -EPIPE, "truncated");
	free(o.p);
	o = make_lzop(g.data, DATA_SIZE, all, 256 * 1024);
	o.len -= 4;
	expect_error(&o, "trunc-end.lzo", -EPIPE, "truncated");
	free(o.p);
}

static void test_refused(void **state)
{
	struct out o = make_lzop(g.data, 1000, F_H_FILTER, 256 * 1024);

	(void)state;
	expect_error(&o, "filter.lzo", -ENOTSUP, "filter");
	free(o.p);
}

/* A file the real lzop made (its defaults: adler32 of the data, 256 KiB
 * blocks), and one made with -9 (LZO1X-999) and --crc32. */
static void test_lzop_cli(void **state)
{
	char *raw = tu_path(g.dir, "cli.raw"), cmd[1024];
	const char *variants[] = {"-1", "-9 --crc32"};

	(void)state;
	if (system("command -v lzop >/dev/null 2>&1") != 0) {
		print_message("no lzop: its files are not tested\n");
		free(raw);
		skip();
	}
	tu_write_file(raw, g.data, DATA_SIZE);
	for (size_t i = 0; i < 2; i++) {
		size_t len;
		char *file;
		struct out o;

		snprintf(cmd, sizeof(cmd), "lzop -q -f %s -o '%s.lzo' '%s'", variants[i], raw, raw);
		assert_int_equal(system(cmd), 0);
		snprintf(cmd, sizeof(cmd), "%s.lzo", raw);
		file = tu_read_file(cmd, &len);
		o = (struct out){(uint8_t *)file, len};
		expect_ok(&o, i ? "cli-9.lzo" : "cli-1.lzo");
		free(file);
	}
	free(raw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_concatenated_and_pipe),
		cmocka_unit_test(test_damage),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_lzop_cli),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
