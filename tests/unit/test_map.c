/* Unit tests for the bmap parser (every version, every refusal) and the 2.0 writer. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "bmap-private.h"
#include "util.h"

#define SHA256_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define SHA1_A "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"

/* Fills in the self-checksum the way the reference does: hash the text with
 * the digits as ASCII '0', then put the digest in their place. */
static char *with_self_checksum(const char *text, const char *elem, const char *type)
{
	char *s = strdup(text), tag[64], hex[2 * BMAP_DIGEST_MAX + 1];
	uint8_t d[BMAP_DIGEST_MAX];
	int len = bmap_digest_size(type);
	char *pos;

	assert_non_null(s);
	snprintf(tag, sizeof(tag), "<%s> ", elem);
	pos = strstr(s, tag);
	assert_non_null(pos);
	pos += strlen(tag);
	memset(pos, '0', 2 * (size_t)len);
	assert_int_equal(bmap_digest_buffer(type, s, strlen(s), d), 0);
	hex_encode(d, (size_t)len, hex);
	memcpy(pos, hex, 2 * (size_t)len);
	return s;
}

static const char v20_template[] =
	"<?xml version=\"1.0\" ?>\n"
	"<bmap version=\"%s\">\n"
	"    <ImageSize> %s </ImageSize>\n"
	"    <BlockSize> %s </BlockSize>\n"
	"    <BlocksCount> %s </BlocksCount>\n"
	"    <MappedBlocksCount> %s </MappedBlocksCount>\n"
	"    <ChecksumType> %s </ChecksumType>\n"
	"    <BmapFileChecksum> %s </BmapFileChecksum>\n"
	"    <BlockMap>\n"
	"%s"
	"    </BlockMap>\n"
	"</bmap>\n";

struct v20 {
	const char *version, *image_size, *block_size, *blocks, *mapped, *type, *ranges;
};

static char *make_v20(const struct v20 *v)
{
	char *text, *res, zeros[2 * BMAP_DIGEST_MAX + 1];
	const char *type = v->type ? v->type : "sha256";
	int len = bmap_digest_size(type);

	memset(zeros, '0', sizeof(zeros));
	zeros[len > 0 ? 2 * len : 64] = '\0';
	assert_true(asprintf(&text, v20_template, v->version ? v->version : "2.0",
			     v->image_size ? v->image_size : "40960",
			     v->block_size ? v->block_size : "4096", v->blocks ? v->blocks : "10",
			     v->mapped ? v->mapped : "3", type, zeros,
			     v->ranges ? v->ranges
				       : "        <Range chksum=\"" SHA256_A "\"> 0-1 </Range>\n"
					 "        <Range chksum=\"" SHA256_A "\"> 5 </Range>\n") > 0);
	if (len < 0)
		return text;
	res = with_self_checksum(text, "BmapFileChecksum", type);
	free(text);
	return res;
}

static int parse_str(const char *text, struct bmap_map **map, struct bmap_ctx *ctx)
{
	return bmap_map_parse(ctx, "test.bmap", text, strlen(text), map);
}

static void expect_refusal(const char *text, const char *needle)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	int r = parse_str(text, &map, ctx);

	if (r >= 0)
		fail_msg("accepted a bad bmap; expected an error containing '%s'", needle);
	if (!strstr(bmap_ctx_get_error(ctx), needle))
		fail_msg("error '%s' does not contain '%s'", bmap_ctx_get_error(ctx), needle);
	assert_non_null(strstr(bmap_ctx_get_error(ctx), "test.bmap"));
	bmap_ctx_free(ctx);
}

static void test_parse_v20(void **state)
{
	(void)state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	char *text = make_v20(&(struct v20){ 0 });
	uint64_t off, len;

	assert_int_equal(parse_str(text, &map, ctx), 0);
	assert_string_equal(bmap_map_get_version(map), "2.0");
	assert_int_equal(bmap_map_get_image_size(map), 40960);
	assert_int_equal(bmap_map_get_block_size(map), 4096);
	assert_int_equal(bmap_map_get_blocks_count(map), 10);
	assert_int_equal(bmap_map_get_mapped_blocks(map), 3);
	assert_int_equal(bmap_map_get_range_count(map), 2);
	assert_int_equal(bmap_map_get_ranges(map)[1].first, 5);
	assert_int_equal(bmap_map_get_ranges(map)[1].last, 5);
	assert_string_equal(bmap_map_get_checksum_type(map), "sha256");
	assert_true(bmap_map_has_range_checksums(map));
	assert_true(bmap_map_has_self_checksum(map));
	assert_int_equal(bmap_map_get_range_checksum(map, 0)[0], 0x9f);
	bmap_map_range_bytes(map, 1, &off, &len);
	assert_int_equal(off, 5 * 4096);
	assert_int_equal(len, 4096);
	bmap_map_free(map);
	free(text);
	bmap_ctx_free(ctx);
}

static void test_parse_v14(void **state)
{
	(void)state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	char *text = make_v20(&(struct v20){ .version = "1.4" });

	assert_int_equal(parse_str(text, &map, ctx), 0);
	assert_string_equal(bmap_map_get_version(map), "1.4");
	assert_true(bmap_map_has_self_checksum(map));
	assert_true(bmap_map_has_range_checksums(map));
	bmap_map_free(map);
	free(text);
	bmap_ctx_free(ctx);
}

static const char v13[] =
	"<?xml version=\"1.0\" ?>\n"
	"<bmap version=\"1.3\">\n"
	"    <!-- Image size in bytes: 16.5 KiB -->\n"
	"    <ImageSize> 16897 </ImageSize>\n"
	"    <BlockSize> 4096 </BlockSize>\n"
	"    <BlocksCount> 5 </BlocksCount>\n"
	"    <MappedBlocksCount> 2     </MappedBlocksCount>\n"
	"    <BmapFileSHA1> 0000000000000000000000000000000000000000 </BmapFileSHA1>\n"
	"    <BlockMap>\n"
	"        <Range sha1=\"" SHA1_A "\"> 0 </Range>\n"
	"        <Range sha1=\"" SHA1_A "\"> 4 </Range>\n"
	"    </BlockMap>\n"
	"</bmap>\n";

static void test_parse_v13(void **state)
{
	(void)state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	char *text = with_self_checksum(v13, "BmapFileSHA1", "sha1");
	uint64_t off, len;

	assert_int_equal(parse_str(text, &map, ctx), 0);
	assert_string_equal(bmap_map_get_checksum_type(map), "sha1");
	assert_int_equal(bmap_map_get_checksum_size(map), 20);
	assert_true(bmap_map_has_self_checksum(map));
	assert_true(bmap_map_has_range_checksums(map));
	/* The partial last block is cut at the image's end. */
	bmap_map_range_bytes(map, 1, &off, &len);
	assert_int_equal(off, 4 * 4096);
	assert_int_equal(len, 16897 - 4 * 4096);
	assert_int_equal(bmap_map_get_mapped_bytes(map), 4096 + 16897 - 4 * 4096);
	bmap_map_free(map);

	/* A changed byte anywhere breaks the self-checksum. */
	*strstr(text, "16.5 KiB") = '7';
	expect_refusal(text, "own checksum does not match");
	free(text);
	bmap_ctx_free(ctx);
}

static const char v12[] =
	"<?xml version=\"1.0\" ?>\n"
	"<bmap version=\"1.2\">\n"
	"    <ImageSize> 8192 </ImageSize>\n"
	"    <BlockSize> 4096 </BlockSize>\n"
	"    <BlocksCount> 2 </BlocksCount>\n"
	"    <BlockMap>\n"
	"        <Range sha1=\"not-even-hex\"> 1 </Range>\n"
	"    </BlockMap>\n"
	"    <MappedBlocksCount> 1 </MappedBlocksCount>\n"
	"</bmap>\n";

static void test_parse_v12(void **state)
{
	(void)state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;

	/* Below 1.3 the reference ignores sha1=, and so do we. */
	assert_int_equal(parse_str(v12, &map, ctx), 0);
	assert_null(bmap_map_get_checksum_type(map));
	assert_false(bmap_map_has_range_checksums(map));
	assert_false(bmap_map_has_self_checksum(map));
	assert_null(bmap_map_get_range_checksum(map, 0));
	assert_int_equal(bmap_map_get_mapped_blocks(map), 1);
	bmap_map_free(map);
	bmap_ctx_free(ctx);
}

static void test_parse_no_range_checksums(void **state)
{
	(void)state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	char *text = make_v20(&(struct v20){ .ranges = "        <Range> 0-1 </Range>\n"
						       "        <Range> 5 </Range>\n" });

	assert_int_equal(parse_str(text, &map, ctx), 0);
	assert_false(bmap_map_has_range_checksums(map));
	assert_null(bmap_map_get_range_checksum(map, 0));
	assert_true(bmap_map_has_self_checksum(map));
	bmap_map_free(map);
	free(text);
	bmap_ctx_free(ctx);
}

static void refuse(const struct v20 *v, const char *needle)
{
	char *text = make_v20(v);

	expect_refusal(text, needle);
	free(text);
}

static void test_refusals(void **state)
{
	(void)state;
	refuse(&(struct v20){ .version = "3.0" }, "not supported");
	refuse(&(struct v20){ .version = "abc" }, "bad format version");
	refuse(&(struct v20){ .blocks = "11" }, "BlocksCount 11 does not match");
	refuse(&(struct v20){ .image_size = "40961" }, "does not match ImageSize");
	refuse(&(struct v20){ .block_size = "1000", .blocks = "41" }, "not a power of two");
	refuse(&(struct v20){ .block_size = "256", .blocks = "160" }, "not a power of two");
	refuse(&(struct v20){ .image_size = "x" }, "<ImageSize> is not a number");
	refuse(&(struct v20){ .mapped = "4" }, "MappedBlocksCount is 4 but the ranges hold 3");
	refuse(&(struct v20){ .type = "crc32" }, "unknown checksum type 'crc32'");
	refuse(&(struct v20){ .ranges = "        <Range> 5 </Range>\n"
					"        <Range> 0-1 </Range>\n" },
	       "ranges must ascend");
	refuse(&(struct v20){ .ranges = "        <Range> 0-3 </Range>\n"
					"        <Range> 3 </Range>\n" , .mapped = "5"},
	       "overlaps");
	refuse(&(struct v20){ .ranges = "        <Range> 4-2 </Range>\n", .mapped = "3" },
	       "reversed");
	refuse(&(struct v20){ .ranges = "        <Range> 8-10 </Range>\n", .mapped = "3" },
	       "beyond the image's 10 blocks");
	refuse(&(struct v20){ .ranges = "        <Range> 1-b </Range>\n" }, "bad range '1-b'");
	refuse(&(struct v20){ .ranges = "        <Range chksum=\"abcd\"> 0-2 </Range>\n" },
	       "not 64 hex digits");
	refuse(&(struct v20){ .ranges = "        <Range chksum=\"" SHA1_A "\"> 0-2 </Range>\n" },
	       "not 64 hex digits");
	refuse(&(struct v20){ .ranges = "        <Range chksum=\"zz"
					"86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
					"\"> 0-2 </Range>\n" },
	       "not 64 hex digits");

	/* Errors carry the line number libxml2 gives. */
	refuse(&(struct v20){ .ranges = "        <Range> 4-2 </Range>\n", .mapped = "3" },
	       "line 10");
	expect_refusal("<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\">\n<ImageSize>\n",
		       "not well-formed XML");
	expect_refusal("<?xml version=\"1.0\" ?>\n<bmapx version=\"2.0\"/>\n", "not <bmap>");
	expect_refusal("<?xml version=\"1.0\"?>\n<!DOCTYPE bmap [<!ENTITY x \"1\">]>\n"
		       "<bmap version=\"2.0\"/>\n",
		       "DOCTYPE");
}

static void test_self_checksum_mismatch(void **state)
{
	(void)state;
	char *text = make_v20(&(struct v20){ 0 });
	char *p = strstr(text, "<BmapFileChecksum> ") + strlen("<BmapFileChecksum> ");

	*p = *p == 'a' ? 'b' : 'a';
	expect_refusal(text, "own checksum does not match");
	free(text);
}

static void test_load_errors(void **state)
{
	(void)state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	char *dir = tu_mkdtemp();

	assert_int_equal(bmap_map_load(ctx, "/nonexistent/x.bmap", &map), -ENOENT);
	assert_non_null(strstr(bmap_ctx_get_error(ctx), "/nonexistent/x.bmap"));
	assert_int_equal(bmap_map_load(ctx, dir, &map), -EISDIR);
	tu_rmtree(dir);
	free(dir);
	bmap_ctx_free(ctx);
}

/* The writer: the reference 3.6's layout, placeholders patched, self-checksum good. */
static void test_writer(void **state)
{
	(void)state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_writer *w = NULL;
	struct bmap_map *map = NULL;
	char *dir = tu_mkdtemp(), *path = tu_path(dir, "out.bmap"), *text;
	uint8_t digest[32];
	int fd;

	memset(digest, 0xab, sizeof(digest));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(bmap_writer_new(ctx, fd, path, 4096 * 1000 + 100, 4096, "sha256", &w), 0);
	assert_int_equal(bmap_writer_add_range(w, 0, 1, digest), 0);
	assert_int_equal(bmap_writer_add_range(w, 7, 7, NULL), 0);
	assert_int_equal(bmap_writer_add_range(w, 7, 9, NULL), -EINVAL); /* not ascending */
	assert_int_equal(bmap_writer_add_range(w, 1000, 1000, digest), 0);
	assert_int_equal(bmap_writer_add_range(w, 1001, 1001, digest), -EINVAL); /* beyond */
	assert_int_equal(bmap_writer_finish(w), 0);
	bmap_writer_free(w);
	close(fd);

	text = tu_read_file(path, NULL);
	assert_non_null(strstr(text, "<bmap version=\"2.0\">\n"
				     "    <!-- Image size in bytes: 3.9 MiB -->\n"
				     "    <ImageSize> 4096100 </ImageSize>\n"));
	assert_non_null(strstr(text, "    <!-- Count of mapped blocks: 16.0 KiB or 0.4%    -->\n"
				     "    <MappedBlocksCount> 4    </MappedBlocksCount>\n"));
	assert_non_null(strstr(text, "        <Range chksum=\"abababab"));
	assert_non_null(strstr(text, "ab\"> 0-1 </Range>\n        <Range> 7 </Range>\n"));
	assert_non_null(strstr(text, "> 1000 </Range>\n    </BlockMap>\n</bmap>\n"));
	assert_int_equal(bmap_map_load(ctx, path, &map), 0);
	assert_true(bmap_map_has_self_checksum(map));
	assert_int_equal(bmap_map_get_mapped_blocks(map), 4);
	bmap_map_free(map);
	free(text);
	tu_rmtree(dir);
	free(dir);
	free(path);
	bmap_ctx_free(ctx);
}

static void test_human_size(void **state)
{
	(void)state;
	char b[32];

	assert_string_equal(human_size(0, b), "0 bytes");
	assert_string_equal(human_size(1, b), "1 byte");
	assert_string_equal(human_size(511, b), "511 bytes");
	assert_string_equal(human_size(512, b), "0.5 KiB");
	assert_string_equal(human_size(24576, b), "24.0 KiB");
	assert_string_equal(human_size(1048575, b), "1024.0 KiB");
	assert_string_equal(human_size(2147483648ull, b), "2.0 GiB");
	assert_string_equal(human_size(1023ull << 40, b), "1023.0 TiB");
}

/* The reference prints the TiB value labelled EiB past 1024 TiB (2^62
 * bytes: "4194304.0 EiB"): a hostile ImageSize was shown a million times
 * too big. */
static void test_human_size_past_tib(void **state)
{
	(void)state;
	char b[32];

	assert_string_equal(human_size(1ull << 50, b), "1.0 PiB");
	assert_string_equal(human_size(1ull << 60, b), "1.0 EiB");
	assert_string_equal(human_size(1ull << 62, b), "4.0 EiB");
	assert_string_equal(human_size(UINT64_MAX, b), "16.0 EiB");
}

static void test_discover(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp(), *img = tu_path(dir, "disk.img.zst"), *found = NULL;
	char *b1 = tu_path(dir, "disk.img.zst.bmap"), *b2 = tu_path(dir, "disk.img.bmap"),
	     *b3 = tu_path(dir, "disk.bmap");

	tu_write_file(img, "x", 1);
	assert_int_equal(bmap_discover(img, &found), -ENOENT);
	tu_write_file(b3, "x", 1);
	assert_int_equal(bmap_discover(img, &found), 0);
	assert_string_equal(found, b3);
	free(found);
	tu_write_file(b2, "x", 1);
	assert_int_equal(bmap_discover(img, &found), 0);
	assert_string_equal(found, b2);
	free(found);
	tu_write_file(b1, "x", 1);
	assert_int_equal(bmap_discover(img, &found), 0);
	assert_string_equal(found, b1);
	free(found);
	/* An image named like a bmap is never its own bmap. */
	assert_int_equal(bmap_discover(b3, &found), -ENOENT);
	tu_rmtree(dir);
	free(dir);
	free(img);
	free(b1);
	free(b2);
	free(b3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v20),
		cmocka_unit_test(test_parse_v14),
		cmocka_unit_test(test_parse_v13),
		cmocka_unit_test(test_parse_v12),
		cmocka_unit_test(test_parse_no_range_checksums),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_self_checksum_mismatch),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_writer),
		cmocka_unit_test(test_human_size),
		cmocka_unit_test(test_human_size_past_tib),
		cmocka_unit_test(test_discover),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
