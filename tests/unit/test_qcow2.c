/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qcow2 images made by the real producer (qemu-img, qemu-io): every variant
 * (v2 and v3, clusters of 512 B to 2 MiB, zlib and zstd compressed clusters,
 * extended L2 entries, zero clusters, an odd virtual size whose last cluster
 * is compressed) reads as 'qemu-img convert -O raw' writes the disk, its map
 * is the allocated data, the copy engine writes that data; and the
 * refusals: backing file, encryption, external data file, corrupt and
 * unknown feature bits, streams, and hostile offsets and sizes patched into
 * a good image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "testutil.h"
#include "bmap-private.h"
#include "source.h"

#define MiB (1024u * 1024)
/* Not a multiple of any cluster size: the last cluster is partial (qemu
 * sizes disks in sectors). */
#define DISK_SIZE (6u * MiB + 12800)

static struct {
	char *dir, *raw;
} g;

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

static int group_setup(void **state)
{
	uint8_t *buf = malloc(MiB);

	(void)state;
	if (system("command -v qemu-img >/dev/null && command -v qemu-io >/dev/null") != 0) {
		free(buf);
		return 0; /* every test skips */
	}
	g.dir = tu_mkdtemp();
	g.raw = tu_path(g.dir, "disk.raw");
	tu_truncate(g.raw, DISK_SIZE);
	/* Data islands of incompressible and repetitive bytes, a zero run,
	 * and data up to the last byte (the partial last cluster). */
	for (int i = 0; i < 5; i++) {
		tu_pattern(buf, MiB, (uint32_t)i);
		if (i % 2)
			memset(buf + 1000, 'x', 30000);
		tu_pwrite(g.raw, buf, 70000 + (size_t)i * 9000, (uint64_t)i * 1200000 + 4096);
	}
	tu_pattern(buf, 12800, 9);
	tu_pwrite(g.raw, buf, 12800, 6u * MiB);
	free(buf);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (g.dir)
		tu_rmtree(g.dir);
	free(g.dir);
	free(g.raw);
	return 0;
}

#define NEED_QEMU()                                                                          \
	do {                                                                                 \
		if (!g.dir)                                                                  \
			skip();                                                              \
	} while (0)

struct variant {
	const char *name;
	const char *opts; /* qemu-img convert options */
	const char *version;
	unsigned cluster, sub;
	const char *compression;
	bool compressed;
};

static const struct variant variants[] = {
	{ "plain", "", "3", 65536, 65536, "zlib", false },
	{ "v2", "-o compat=0.10", "2", 65536, 65536, "zlib", false },
	{ "zlib", "-c", "3", 65536, 65536, "zlib", true },
	{ "zlib-v2", "-c -o compat=0.10", "2", 65536, 65536, "zlib", true },
	{ "zstd", "-c -o compression_type=zstd", "3", 65536, 65536, "zstd", true },
	{ "extl2", "-o extended_l2=on,cluster_size=64k", "3", 65536, 2048, "zlib", false },
	{ "extl2-zstd", "-c -o extended_l2=on,cluster_size=32k,compression_type=zstd", "3", 32768,
	  1024, "zstd", true },
	{ "c512", "-o cluster_size=512", "3", 512, 512, "zlib", false },
	{ "c512-zlib", "-c -o cluster_size=512", "3", 512, 512, "zlib", true },
	{ "c2m", "-o cluster_size=2M", "3", 2 * MiB, 2 * MiB, "zlib", false },
	{ "c2m-zstd", "-c -o cluster_size=2M,compression_type=zstd", "3", 2 * MiB, 2 * MiB, "zstd",
	  true },
};

static char *make_variant(const struct variant *v)
{
	char name[64];
	char *path;

	snprintf(name, sizeof(name), "%s.qcow2", v->name);
	path = tu_path(g.dir, name);
	run("qemu-img convert -q -O qcow2 %s '%s' '%s'", v->opts, g.raw, path);
	return path;
}

/* What qemu says the disk holds. */
static uint8_t *qemu_raw(const char *img, size_t *ret_len)
{
	char *out = tu_path(g.dir, "qemu.raw");
	uint8_t *data;

	run("qemu-img convert -q -O raw '%s' '%s'", img, out);
	data = (uint8_t *)tu_read_file(out, ret_len);
	unlink(out);
	free(out);
	return data;
}

static void check_variant(const struct variant *v)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *path = make_variant(v), *out = tu_path(g.dir, "card");
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE, .image_size = DISK_SIZE };
	struct bmap_format_info info;
	struct bmap_copy_result res;
	struct bmap_target *t;
	struct bmap_source *s;
	struct bmap_map *map;
	uint8_t *want, *got, *buf = malloc(DISK_SIZE);
	size_t want_len, got_len;

	want = qemu_raw(path, &want_len);
	assert_int_equal(want_len, DISK_SIZE);
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(bmap_source_get_format(s), BMAP_FORMAT_QCOW2);
	assert_int_equal(bmap_source_get_image_size(s), DISK_SIZE);
	assert_int_equal(bmap_source_get_format_info(s, &info), 0);
	assert_string_equal(info.version, v->version);
	assert_int_equal(info.cluster_size, v->cluster);
	assert_int_equal(info.subcluster_size, v->sub);
	assert_string_equal(info.compression, v->compression);
	if (v->compressed)
		assert_true(info.compressed > 0);
	else
		assert_int_equal(info.compressed, 0);

	/* Read front to back, the whole disk is qemu's. */
	assert_int_equal(bmap_source_read(s, buf, DISK_SIZE), DISK_SIZE);
	assert_int_equal(bmap_source_read(s, buf, 1), 0);
	if (memcmp(buf, want, DISK_SIZE) != 0)
		fail_msg("%s: the disk read differs from qemu-img's", v->name);

	/* The map: the data (every byte outside it is zero in qemu's
	 * output), at the (sub)cluster's granularity. */
	assert_int_equal(bmap_source_get_map(s, &map), 0);
	assert_int_equal(bmap_map_get_block_size(map), v->sub);
	assert_int_equal(bmap_map_get_image_size(map), DISK_SIZE);
	{
		uint64_t pos = 0, off, len;

		for (size_t i = 0; i <= bmap_map_get_range_count(map); i++) {
			if (i < bmap_map_get_range_count(map))
				bmap_map_range_bytes(map, i, &off, &len);
			else
				off = DISK_SIZE, len = 0;
			for (; pos < off; pos++)
				if (want[pos])
					fail_msg("%s: byte %llu is data but not mapped", v->name,
						 (unsigned long long)pos);
			pos = off + len;
		}
		/* The last (partial, data) cluster is mapped to the disk's end. */
		assert_int_equal(off == DISK_SIZE && pos == DISK_SIZE, 1);
	}

	/* The engine copies the map's ranges (workers reading at random). */
	assert_int_equal(bmap_target_open(ctx, out, &topts, &t), 0);
	assert_int_equal(bmap_copy(ctx, s, map, t, NULL, &res), 0);
	assert_int_equal(res.bytes_written, bmap_map_get_mapped_bytes(map));
	got = (uint8_t *)tu_read_file(out, &got_len);
	assert_int_equal(got_len, DISK_SIZE);
	if (memcmp(got, want, DISK_SIZE) != 0)
		fail_msg("%s: the copy differs from qemu-img's disk", v->name);

	free(got);
	bmap_target_free(t);
	bmap_map_free(map);
	bmap_source_free(s);
	bmap_ctx_free(ctx);
	free(want);
	free(buf);
	free(path);
	free(out);
}

static void test_variants(void **state)
{
	(void)state;
	NEED_QEMU();
	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
		check_variant(&variants[i]);
}

/* Zero clusters between data (qemu-io write -z on v3): holes, read as
 * zeros; what they held before is never read. */
static void test_zero_clusters(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *path = tu_path(g.dir, "zero.qcow2");
	struct bmap_format_info info;
	struct bmap_source *s;
	struct bmap_map *map;
	uint8_t *want, *buf = malloc(MiB);
	size_t len;

	(void)state;
	NEED_QEMU();
	run("qemu-img create -q -f qcow2 '%s' 1M && qemu-io -f qcow2 -c 'write -q -P 0xaa 0 256k' "
	    "-c 'write -q -z 64k 128k' '%s'",
	    path, path);
	want = qemu_raw(path, &len);
	assert_int_equal(bmap_source_open(ctx, path, &s), 0);
	assert_int_equal(bmap_source_get_format_info(s, &info), 0);
	assert_int_equal(info.allocated, 2);
	assert_int_equal(info.zero, 2);
	assert_int_equal(info.unallocated, 12);
	assert_int_equal(bmap_source_get_map(s, &map), 0);
	assert_int_equal(bmap_map_get_range_count(map), 2);
	assert_int_equal(bmap_map_get_ranges(map)[0].first, 0);
	assert_int_equal(bmap_map_get_ranges(map)[0].last, 0);
	assert_int_equal(bmap_map_get_ranges(map)[1].first, 3);
	assert_int_equal(bmap_map_get_ranges(map)[1].last, 3);
	assert_int_equal(bmap_source_read(s, buf, MiB), MiB);
	assert_memory_equal(buf, want, MiB);
	bmap_map_free(map);
	bmap_source_free(s);
	bmap_ctx_free(ctx);
	free(want);
	free(buf);
	free(path);
}

static void expect_refused(const char *path, int err, const char *const *words)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s = NULL;
	int r = bmap_source_open(ctx, path, &s);

	if (r == 0) {
		/* Some damage only shows when the cluster is read. */
		uint8_t *buf = malloc(DISK_SIZE);

		r = (int)bmap_source_read(s, buf, DISK_SIZE);
		free(buf);
		bmap_source_free(s);
	}
	if (r != err)
		fail_msg("%s: %d '%s', want %d", path, r, bmap_ctx_get_error(ctx), err);
	for (; *words; words++)
		if (!strstr(bmap_ctx_get_error(ctx), *words))
			fail_msg("%s: '%s' does not say '%s'", path, bmap_ctx_get_error(ctx), *words);
	bmap_ctx_free(ctx);
}

/* What cannot be read as the disk itself is refused, saying what it is. */
static void test_refused_features(void **state)
{
	char *base = tu_path(g.dir, "base.qcow2"), *over = tu_path(g.dir, "over.qcow2");
	char *luks = tu_path(g.dir, "luks.qcow2"), *ext = tu_path(g.dir, "ext.qcow2");
	char *datafile = tu_path(g.dir, "ext.data");

	(void)state;
	NEED_QEMU();
	run("qemu-img convert -q -O qcow2 '%s' '%s' && "
	    "qemu-img create -q -f qcow2 -b '%s' -F qcow2 '%s'", g.raw, base, base, over);
	expect_refused(over, -EOPNOTSUPP,
		       (const char *const[]){ "backing file", base, "(qcow2)", "qemu-img convert",
					      NULL });
	/* qemu-img times its key derivation on the thread's CPU clock, and on a
	 * loaded machine that can read 0 ms ("Unable to get accurate CPU
	 * usage"): tried again a few times. */
	run("for i in 1 2 3 4 5; do qemu-img create -q -f qcow2 --object secret,id=k,data=secret "
	    "-o encrypt.format=luks,encrypt.key-secret=k '%s' 1M && exit 0; sleep 0.5; done; "
	    "exit 1",
	    luks);
	expect_refused(luks, -EOPNOTSUPP, (const char *const[]){ "encrypted (LUKS)", NULL });
	run("qemu-img create -q -f qcow2 -o data_file='%s' '%s' 1M", datafile, ext);
	expect_refused(ext, -EOPNOTSUPP,
		       (const char *const[]){ "external data file", "ext.data", NULL });
	free(base);
	free(over);
	free(luks);
	free(ext);
	free(datafile);
}

/* A copy of a good image with bytes at @off replaced (big-endian @v of
 * @width bytes). */
static char *patched(const char *src, const char *name, uint64_t off, uint64_t v, int width)
{
	char *path = tu_path(g.dir, name);
	size_t len;
	char *data = tu_read_file(src, &len);

	assert_true(off + (uint64_t)width <= len);
	for (int i = 0; i < width; i++)
		data[off + (uint64_t)i] = (char)(v >> (8 * (width - 1 - i)));
	tu_write_file(path, data, len);
	free(data);
	return path;
}

static uint64_t be_at(const char *path, uint64_t off, int width)
{
	size_t len;
	uint8_t *data = (uint8_t *)tu_read_file(path, &len);
	uint64_t v = 0;

	for (int i = 0; i < width; i++)
		v = v << 8 | data[off + (uint64_t)i];
	free(data);
	return v;
}

struct hostile {
	const char *name;
	int field; /* see below */
	uint64_t value;
	int err;
	const char *words;
};

enum { F_CRYPT, F_INCOMPAT, F_CLUSTER_BITS, F_HDR_LEN, F_L1_OFF, F_L1_SIZE, F_VERSION,
       F_L1_ENTRY, F_L2_ENTRY, F_L2_COMPRESSED, F_SIZE };

static const struct hostile hostiles[] = {
	{ "aes", F_CRYPT, 1, -EOPNOTSUPP, "encrypted (AES)" },
	{ "corrupt", F_INCOMPAT, 2, -EOPNOTSUPP, "marked corrupt" },
	{ "unknown-bit", F_INCOMPAT, 1u << 9, -EOPNOTSUPP, "unknown incompatible feature (bit 9" },
	{ "version4", F_VERSION, 4, -EOPNOTSUPP, "qcow2 version 4" },
	{ "cluster-bits", F_CLUSTER_BITS, 22, -EBADMSG, "clusters of 2^22" },
	{ "header-length", F_HDR_LEN, 107, -EBADMSG, "a header of 107 bytes" },
	{ "l1-outside", F_L1_OFF, 1ull << 40, -EBADMSG, "L1 table" },
	{ "l1-in-header", F_L1_OFF, 0, -EBADMSG, "L1 table" },
	{ "l1-small", F_L1_SIZE, 0, -EBADMSG, "needs 1" },
	{ "l1-huge", F_L1_SIZE, 0xffffffff, -EBADMSG, "qemu's limit" },
	{ "size-huge", F_SIZE, 1ull << 62, -EBADMSG, "qemu's limit" },
	{ "l1-entry-reserved", F_L1_ENTRY, 1, -EBADMSG, "reserved bits" },
	{ "l2-outside", F_L1_ENTRY, 1ull << 40, -EBADMSG, "L2 table" },
	{ "cluster-in-header", F_L2_ENTRY, 0x8000000000000000ull | 512, -EBADMSG, "not on a cluster" },
	{ "cluster-header", F_L2_ENTRY, 0x8000000000000000ull, -EBADMSG, "host offset 0" },
	{ "cluster-past-end", F_L2_ENTRY, 1ull << 40, -EBADMSG, "past the end of the file" },
	{ "compressed-past-end", F_L2_COMPRESSED, 0, -EBADMSG, "goes past the end of the file" },
	{ "l2-reserved", F_L2_ENTRY, 2, -EBADMSG, "reserved bits" },
};

/* Offsets, sizes and bits from the file, each made hostile in a good image:
 * refused with the reason, never a crash, a huge allocation or a read
 * outside the file (ASan and valgrind run this too). */
static void test_hostile(void **state)
{
	char *good = tu_path(g.dir, "good.qcow2"), *comp = tu_path(g.dir, "goodc.qcow2");

	(void)state;
	NEED_QEMU();
	run("qemu-img convert -q -O qcow2 '%s' '%s' && qemu-img convert -q -c -O qcow2 '%s' '%s'",
	    g.raw, good, g.raw, comp);
	for (size_t i = 0; i < sizeof(hostiles) / sizeof(hostiles[0]); i++) {
		const struct hostile *h = &hostiles[i];
		const char *src = h->field == F_L2_COMPRESSED ? comp : good;
		uint64_t l1 = be_at(src, 40, 8), l2 = be_at(src, l1, 8) & 0x00fffffffffffe00ull;
		char name[64], *path = NULL;

		snprintf(name, sizeof(name), "%s.qcow2", h->name);
		switch (h->field) {
		case F_CRYPT:
			path = patched(src, name, 32, h->value, 4);
			break;
		case F_INCOMPAT:
			path = patched(src, name, 72, h->value, 8);
			break;
		case F_VERSION:
			path = patched(src, name, 4, h->value, 4);
			break;
		case F_CLUSTER_BITS:
			path = patched(src, name, 20, h->value, 4);
			break;
		case F_HDR_LEN:
			path = patched(src, name, 100, h->value, 4);
			break;
		case F_L1_OFF:
			path = patched(src, name, 40, h->value, 8);
			break;
		case F_L1_SIZE:
			path = patched(src, name, 36, h->value, 4);
			break;
		case F_SIZE:
			path = patched(src, name, 24, h->value, 8);
			break;
		case F_L1_ENTRY:
			path = patched(src, name, l1, h->value | (h->value == 1 ? l2 : 0), 8);
			break;
		case F_L2_ENTRY:
			/* The first data cluster: guest cluster 0. */
			path = patched(src, name, l2, h->value, 8);
			break;
		case F_L2_COMPRESSED: {
			/* The last guest cluster, compressed last, at the end of
			 * the file: its size stretched to the most sectors the
			 * entry can say. */
			uint64_t at = l2 + (DISK_SIZE / 65536) * 8, e = be_at(src, at, 8);
			unsigned x = 62 - (16 - 8);

			assert_true(e >> 62 & 1);
			path = patched(src, name, at, e | (((1ull << 8) - 1) << x), 8);
			break;
		}
		}
		expect_refused(path, h->err, (const char *const[]){ h->words, NULL });
		free(path);
	}
	free(good);
	free(comp);
}

/* The dirty bit (lazy refcounts) does not matter for reading. */
static void test_dirty_reads(void **state)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	char *good = tu_path(g.dir, "dirty-src.qcow2"), *dirty;
	struct bmap_source *s;
	uint8_t *want, *buf = malloc(DISK_SIZE);
	size_t len;

	(void)state;
	NEED_QEMU();
	run("qemu-img convert -q -O qcow2 -o lazy_refcounts=on '%s' '%s'", g.raw, good);
	dirty = patched(good, "dirty.qcow2", 72, 1, 8);
	want = qemu_raw(good, &len);
	assert_int_equal(bmap_source_open(ctx, dirty, &s), 0);
	assert_int_equal(bmap_source_read(s, buf, DISK_SIZE), DISK_SIZE);
	assert_memory_equal(buf, want, DISK_SIZE);
	bmap_source_free(s);
	bmap_ctx_free(ctx);
	free(want);
	free(buf);
	free(good);
	free(dirty);
}

/* qcow2 needs random access: a pipe or a compressed file is refused. */
static void test_stream_refused(void **state)
{
	char *path = tu_path(g.dir, "stream.qcow2"), cmd[512];
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *s = NULL;
	FILE *f;

	(void)state;
	NEED_QEMU();
	run("qemu-img convert -q -O qcow2 '%s' '%s' && zstd -q -f '%s'", g.raw, path, path);
	snprintf(cmd, sizeof(cmd), "cat '%s'", path);
	f = popen(cmd, "r");
	assert_int_equal(bmap_source_open_fd(ctx, dup(fileno(f)), "pipe", &s), -EOPNOTSUPP);
	assert_non_null(strstr(bmap_ctx_get_error(ctx), "random access"));
	assert_non_null(strstr(bmap_ctx_get_error(ctx), "from a pipe"));
	pclose(f);
	snprintf(cmd, sizeof(cmd), "%s.zst", path);
	assert_int_equal(bmap_source_open(ctx, cmd, &s), -EOPNOTSUPP);
	assert_non_null(strstr(bmap_ctx_get_error(ctx), "through a compression"));
	bmap_ctx_free(ctx);
	free(path);
}

/* create: a 2.0 bmap of the virtual disk whose checksums are those of
 * qemu's raw disk, and which copies the image with its checksums checked. */
static void test_create(void **state)
{
	static const size_t which[] = { 0, 2, 4, 5, 7 };

	(void)state;
	NEED_QEMU();
	for (size_t w = 0; w < sizeof(which) / sizeof(which[0]); w++) {
		const struct variant *v = &variants[which[w]];
		struct bmap_ctx *ctx = bmap_ctx_new();
		char *path = make_variant(v), *bmap = tu_path(g.dir, "v.bmap");
		char *out = tu_path(g.dir, "v.card");
		struct bmap_create_opts copts = { .block_size = 4096 };
		struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE, .image_size = DISK_SIZE };
		struct bmap_create_result cres;
		struct bmap_copy_result res;
		struct bmap_map *own, *made;
		struct bmap_source *s;
		struct bmap_target *t;
		uint8_t *want, digest[32];
		size_t want_len;
		int fd;

		want = qemu_raw(path, &want_len);
		assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		assert_int_equal(bmap_source_get_map(s, &own), 0);
		fd = open(bmap, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(bmap_create_from_source(ctx, s, own, fd, bmap, &copts, &cres), 0);
		close(fd);
		bmap_source_free(s);
		assert_int_equal(bmap_map_load(ctx, bmap, &made), 0);
		assert_int_equal(bmap_map_get_image_size(made), DISK_SIZE);
		assert_int_equal(bmap_map_get_block_size(made), 4096);
		assert_true(bmap_map_has_range_checksums(made));
		/* The format's map, rounded out to 4 KiB blocks. */
		assert_true(bmap_map_get_mapped_bytes(made) >= bmap_map_get_mapped_bytes(own));
		assert_true(bmap_map_get_mapped_bytes(made) <
			    bmap_map_get_mapped_bytes(own) + bmap_map_get_range_count(own) * 8192);
		for (size_t i = 0; i < bmap_map_get_range_count(made); i++) {
			uint64_t off, len;

			bmap_map_range_bytes(made, i, &off, &len);
			bmap_sha256(want + off, len, digest);
			assert_memory_equal(digest, bmap_map_get_range_checksum(made, i), 32);
		}
		/* copy --bmap with it: every range's checksum checked. */
		assert_int_equal(bmap_source_open(ctx, path, &s), 0);
		assert_int_equal(bmap_target_open(ctx, out, &topts, &t), 0);
		assert_int_equal(bmap_copy(ctx, s, made, t, NULL, &res), 0);
		assert_int_equal(res.bytes_written, bmap_map_get_mapped_bytes(made));
		bmap_target_free(t);
		bmap_source_free(s);
		bmap_map_free(own);
		bmap_map_free(made);
		bmap_ctx_free(ctx);
		free(want);
		free(path);
		free(bmap);
		free(out);
	}
}

/* Regression: the walk of the L2 tables read one table per L1 entry, so
 * an image whose L1 entries all name the same table (a 10 MiB file with
 * 1M of them and a disk size to match) made opening it read 64 GiB. Now
 * more tables than the file has clusters is refused at once; the child
 * opening it must end within 20 s of CPU. */
static void test_shared_l2_tables_refused(void **state)
{
	char *good = tu_path(g.dir, "shared-src.qcow2"), *path = tu_path(g.dir, "shared.qcow2");
	const uint64_t n = 1u << 20;
	uint64_t l1, l2, end, *entries;
	size_t len;
	char *data;
	int status;
	pid_t pid;

	(void)state;
	NEED_QEMU();
	run("qemu-img convert -q -O qcow2 '%s' '%s'", g.raw, good);
	l1 = be_at(good, 40, 8);
	l2 = be_at(good, l1, 8);
	data = tu_read_file(good, &len);
	end = (len + 65535) & ~65535ull;
	entries = malloc(n * 8);
	for (uint64_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++)
			((uint8_t *)&entries[i])[b] = (uint8_t)(l2 >> (56 - 8 * b));
	tu_write_file(path, data, len);
	tu_pwrite(path, entries, n * 8, end);
	free(entries);
	free(data);
	free(good);
	good = path;
	path = patched(good, "shared2.qcow2", 40, end, 8);
	unlink(good);
	free(good);
	good = path;
	path = patched(good, "shared3.qcow2", 36, n, 4);
	unlink(good);
	free(good);
	good = path;
	path = patched(good, "shared4.qcow2", 24, n * 8192 * 65536, 8);
	unlink(good);
	free(good);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit cpu = { 20, 20 };
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_source *s;
		int r;

		setrlimit(RLIMIT_CPU, &cpu);
		r = bmap_source_open(ctx, path, &s);
		r = r == -EBADMSG && strstr(bmap_ctx_get_error(ctx), "L2 tables") ? 0 : 3;
		/* Nothing left behind: valgrind checks the child too. */
		bmap_ctx_free(ctx);
		free(path);
		free(g.dir);
		free(g.raw);
		_exit(r);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("opening an image of shared L2 tables: %s %d",
			 WIFSIGNALED(status) ? "killed by signal" : "exit",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_variants),
		cmocka_unit_test(test_zero_clusters),
		cmocka_unit_test(test_refused_features),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_dirty_reads),
		cmocka_unit_test(test_stream_refused),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_shared_l2_tables_refused),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
