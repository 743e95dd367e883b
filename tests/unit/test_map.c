/* Unit tests for the bmap parser (every version, every refusal) and the 2.0 writer. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* Builds a 2.0 bmap with @extra (elements) right after the root's start tag
 * and @ranges in its BlockMap, its own checksum filled in. */
static char *make_with(const char *root_attrs, const char *extra, const char *ranges,
		       const char *mapped)
{
	char *text, *res;

	assert_true(asprintf(&text,
			     "<?xml version=\"1.0\" ?>\n"
			     "<bmap version=\"2.0\"%s>\n%s"
			     "    <ImageSize> 40960 </ImageSize>\n"
			     "    <BlockSize> 4096 </BlockSize>\n"
			     "    <BlocksCount> 10 </BlocksCount>\n"
			     "    <MappedBlocksCount> %s </MappedBlocksCount>\n"
			     "    <ChecksumType> sha256 </ChecksumType>\n"
			     "    <BmapFileChecksum> %064d </BmapFileChecksum>\n"
			     "    <BlockMap>\n%s    </BlockMap>\n"
			     "</bmap>\n",
			     root_attrs, extra, mapped, 0, ranges) > 0);
	res = with_self_checksum(text, "BmapFileChecksum", "sha256");
	free(text);
	return res;
}

/* " a0=\"\" a1=\"\" ..." with @n attributes. */
static char *attributes(size_t n, const char *prefix)
{
	char *s = malloc(n * 24 + 1), *p = s;

	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, " %sa%zu=\"\"", prefix, i);
	*p = '\0';
	return s;
}

static void expect_accepted(const char *text, size_t ranges)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;

	if (parse_str(text, &map, ctx) < 0)
		fail_msg("refused: %s", bmap_ctx_get_error(ctx));
	assert_int_equal(bmap_map_get_range_count(map), ranges);
	assert_true(bmap_map_has_self_checksum(map));
	bmap_map_free(map);
	bmap_ctx_free(ctx);
}

/* libxml2 2.9 checks an element's attributes for duplicates pairwise: a
 * valid bmap with one element of 100k attributes took 50 s of CPU, during
 * which the station's event loop stood still. Refused now, at the latest
 * a read after libxml2's attribute array outgrew any element the limit
 * allows (the integration test bmap-parse-cost bounds the CPU time). */
static void test_many_attributes_quadratic(void **state)
{
	(void)state;
	char *a100k = attributes(100000, ""), *a33 = attributes(33, ""), *a32 = attributes(32, "");
	char *x, *text;

	assert_true(asprintf(&x, "    <x%s/>\n", a100k) > 0);
	text = make_with("", x, "        <Range> 5 </Range>\n", "1");
	expect_refusal(text, "more than 32 attributes");
	free(x);
	free(text);

	/* The limit itself is exact, wherever the element is. */
	assert_true(asprintf(&x, "    <x%s/>\n", a33) > 0);
	text = make_with("", x, "        <Range> 5 </Range>\n", "1");
	expect_refusal(text, "<x> has more than 32 attributes");
	free(x);
	free(text);
	text = make_with(a33, "", "        <Range> 5 </Range>\n", "1");
	expect_refusal(text, "<bmap> has more than 32 attributes");
	free(text);
	assert_true(asprintf(&x, "    <x%s/>\n", a32) > 0);
	text = make_with("", x, "        <Range> 5 </Range>\n", "1");
	expect_accepted(text, 1);
	free(x);
	free(text);
	free(a100k);
	free(a33);
	free(a32);
}

/* libxml2 2.9 looks a namespace prefix up linearly among the declarations
 * in scope (and checks one element's declarations pairwise). */
static void test_many_namespaces_quadratic(void **state)
{
	(void)state;
	char decls[64 * 40] = "", inner[32 * 40] = "", *x, *text, *end;

	for (int i = 0; i < 20; i++)
		sprintf(decls + strlen(decls), " xmlns:p%d=\"urn:p%d\"", i, i);
	for (int i = 20; i < 40; i++)
		sprintf(inner + strlen(inner), " xmlns:p%d=\"urn:p%d\"", i, i);
	/* 20 declarations on the root, 20 more on a child: 40 in scope. */
	assert_true(asprintf(&x, "    <x%s><p0:y/></x>\n", inner) > 0);
	text = make_with(decls, x, "        <Range> 5 </Range>\n", "1");
	expect_refusal(text, "more than 32 XML namespaces");
	free(x);
	free(text);
	/* 100k on one element: refused while libxml2 still reads them. */
	x = malloc(100000 * 32 + 16);
	assert_non_null(x);
	end = x + sprintf(x, "    <x");
	for (int i = 0; i < 100000; i++)
		end += sprintf(end, " xmlns:q%d=\"u\"", i);
	strcpy(end, "/>\n");
	text = make_with("", x, "        <Range> 5 </Range>\n", "1");
	expect_refusal(text, "more than 32 XML namespaces are declared");
	free(x);
	free(text);
	/* 20 are fine, and names with a declared prefix match as they did. */
	text = make_with(decls, "    <p1:z p2:q=\"1\"/>\n", "        <p3:Range> 5 </p3:Range>\n",
			 "1");
	expect_accepted(text, 1);
	free(text);
}

/* An ImageSize near 2^64 wrapped blocks * block_size: the last block's
 * span came out as a whole block past the image's end, and a computed
 * map's block count as 0. */
static void test_huge_image_size_wrapped_block_arithmetic(void **state)
{
	(void)state;
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	uint64_t off, len;
	char *text;

	refuse(&(struct v20){ .image_size = "18446744073709551615", .blocks = "4503599627370496",
			      .mapped = "1", .ranges = "        <Range> 4503599627370495 </Range>\n" },
	       "ImageSize 18446744073709551615 is larger than any image can be");
	refuse(&(struct v20){ .image_size = "9223372036854775808", .blocks = "2251799813685248",
			      .mapped = "1", .ranges = "        <Range> 2251799813685247 </Range>\n" },
	       "is larger than any image can be");
	/* The largest an image can be (off_t) is accepted, its end exact. */
	text = make_v20(&(struct v20){ .image_size = "9223372036854775807",
				       .blocks = "2251799813685248", .mapped = "1",
				       .ranges = "        <Range> 2251799813685247 </Range>\n" });
	assert_int_equal(parse_str(text, &map, ctx), 0);
	bmap_map_range_bytes(map, 0, &off, &len);
	assert_true(off == INT64_MAX - 4095 && len == 4095);
	assert_int_equal(bmap_map_get_mapped_bytes(map), 4095);
	map = bmap_map_free(map);
	free(text);

	/* A map computed for such a size (the model itself never wraps). */
	assert_int_equal(bmap_map_new(ctx, UINT64_MAX, 4096, &map), 0);
	assert_true(bmap_map_get_blocks_count(map) == UINT64_C(1) << 52);
	assert_int_equal(bmap_map_append_range(map, 0, 0), 0);
	assert_int_equal(bmap_map_append_range(map, (UINT64_C(1) << 52) - 1,
						(UINT64_C(1) << 52) - 1),
			 0);
	bmap_map_range_bytes(map, 1, &off, &len);
	assert_true(off == UINT64_MAX - 4095 && len == 4095);
	assert_true(bmap_map_get_mapped_bytes(map) == 4096 + 4095);
	bmap_map_free(map);
	bmap_ctx_free(ctx);
}

/* Valid, if no writer puts them there: the header after <BlockMap>. The
 * ranges are then read in a second pass over the file, checked alike. */
static void test_header_after_blockmap(void **state)
{
	(void)state;
	static const char tmpl[] =
		"<?xml version=\"1.0\" ?>\n"
		"<bmap version=\"2.0\">\n"
		"    <BlockMap>\n%s    </BlockMap>\n"
		"    <ImageSize> 40960 </ImageSize>\n"
		"    <BlockSize> %s </BlockSize>\n"
		"    <BlocksCount> 10 </BlocksCount>\n"
		"    <MappedBlocksCount> 3 </MappedBlocksCount>\n"
		"    <ChecksumType> sha256 </ChecksumType>\n"
		"    <BmapFileChecksum> %064d </BmapFileChecksum>\n"
		"</bmap>\n";
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	char *text, *signed_text;

	assert_true(asprintf(&text, tmpl,
			     "        <Range chksum=\"" SHA256_A "\"> 0-1 </Range>\n"
			     "        <Range> 5 </Range>\n",
			     "4096", 0) > 0);
	signed_text = with_self_checksum(text, "BmapFileChecksum", "sha256");
	assert_int_equal(parse_str(signed_text, &map, ctx), 0);
	assert_int_equal(bmap_map_get_range_count(map), 2);
	assert_int_equal(bmap_map_get_ranges(map)[1].first, 5);
	assert_int_equal(bmap_map_get_range_checksum(map, 0)[0], 0x9f);
	assert_null(bmap_map_get_range_checksum(map, 1));
	assert_false(bmap_map_has_range_checksums(map));
	assert_true(bmap_map_has_self_checksum(map));
	bmap_map_free(map);
	free(text);
	free(signed_text);

	/* A bad range is reported once the header has passed... */
	assert_true(asprintf(&text, tmpl, "        <Range> 4-2 </Range>\n", "4096", 0) > 0);
	expect_refusal(text, "line 4: range 4-2 is reversed");
	free(text);
	/* ... and a bad header before any range. */
	assert_true(asprintf(&text, tmpl, "        <Range> 4-2 </Range>\n", "1000", 0) > 0);
	expect_refusal(text, "BlockSize 1000 is not a power of two");
	free(text);
	bmap_ctx_free(ctx);
}

/* Failures keep the DOM parser's order whatever the elements' order: a 1.2
 * bmap's MappedBlocksCount comes after its ranges, yet its absence is
 * reported before a bad range. */
static void test_failure_order(void **state)
{
	(void)state;
	static const char no_mapped[] = "<?xml version=\"1.0\" ?>\n"
					"<bmap version=\"1.2\">\n"
					"    <ImageSize> 8192 </ImageSize>\n"
					"    <BlockSize> 4096 </BlockSize>\n"
					"    <BlocksCount> 2 </BlocksCount>\n"
					"    <BlockMap>\n"
					"        <Range> 1-0 </Range>\n"
					"    </BlockMap>\n"
					"</bmap>\n";
	static const char malformed_late[] = "<?xml version=\"1.0\" ?>\n"
					     "<bmap version=\"9.0\">\n"
					     "    <BlockMap>\n"
					     "</bmap>\n";

	expect_refusal(no_mapped, "missing <MappedBlocksCount>");
	/* Well-formedness before anything else, however late the fault. */
	expect_refusal(malformed_late, "not well-formed XML");
}

/* Text is collected within bounds but trimmed as before: whitespace around
 * a value may be as long as it likes. */
static void test_long_whitespace_around_values(void **state)
{
	(void)state;
	size_t n = 1 << 20;
	char *ws = malloc(n + 1), *range, *text;

	assert_non_null(ws);
	memset(ws, ' ', n);
	ws[n] = '\0';
	ws[n / 2] = '\n';
	assert_true(asprintf(&range, "        <Range>%s5%s</Range>\n", ws, ws) > 0);
	text = make_with("", "", range, "1");
	expect_accepted(text, 1);
	free(text);
	free(range);
	free(ws);
}

/* Ranges are kept in one array, their digests in one arena with a bit per
 * range: every range and digest must come back as written. */
static void test_many_ranges_kept(void **state)
{
	(void)state;
	size_t n = 100000, len = n * 120 + 1;
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_map *map = NULL;
	char *ranges = malloc(len), *p = ranges, size[32], blocks[32], mapped[32], *text;
	uint8_t want[32];

	assert_non_null(ranges);
	for (size_t i = 0; i < n; i++) {
		if (i % 7 == 3) { /* some without a checksum */
			p += sprintf(p, "<Range> %zu </Range>\n", 2 * i);
			continue;
		}
		p += sprintf(p, "<Range chksum=\"%08zx", i);
		memset(p, 'a', 56);
		p += 56;
		p += sprintf(p, "\"> %zu-%zu </Range>\n", 2 * i, 2 * i);
	}
	snprintf(size, sizeof(size), "%zu", 2 * n * 4096);
	snprintf(blocks, sizeof(blocks), "%zu", 2 * n);
	snprintf(mapped, sizeof(mapped), "%zu", n);
	text = make_v20(&(struct v20){ .image_size = size, .blocks = blocks, .mapped = mapped,
				       .ranges = ranges });
	assert_int_equal(parse_str(text, &map, ctx), 0);
	assert_int_equal(bmap_map_get_range_count(map), n);
	assert_false(bmap_map_has_range_checksums(map));
	for (size_t i = 0; i < n; i++) {
		const uint8_t *cs = bmap_map_get_range_checksum(map, i);

		assert_true(bmap_map_get_ranges(map)[i].first == 2 * i);
		assert_true(bmap_map_get_ranges(map)[i].last == 2 * i);
		if (i % 7 == 3) {
			assert_null(cs);
			continue;
		}
		assert_non_null(cs);
		want[0] = (uint8_t)(i >> 24);
		want[1] = (uint8_t)(i >> 16);
		want[2] = (uint8_t)(i >> 8);
		want[3] = (uint8_t)i;
		memset(want + 4, 0xaa, 28);
		assert_memory_equal(cs, want, 32);
	}
	bmap_map_free(map);
	free(text);
	free(ranges);
	bmap_ctx_free(ctx);
}

/* `--bmap FIFO` with no writer hung in open(), for ever. A pipe cannot be
 * read twice (the self-checksum needs a second pass): both are refused
 * with a way out, without waiting. The child's alarm only turns a hang
 * into a failure; nothing here is timed. */
static void test_load_fifo_hung_in_open(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp(), *fifo = tu_path(dir, "f.bmap"), *proc;
	int status, fds[2];
	pid_t pid;

	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(pipe(fds), 0);
	assert_true(asprintf(&proc, "/proc/self/fd/%d", fds[0]) > 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct bmap_ctx *ctx = bmap_ctx_new();
		struct bmap_map *map = NULL;
		int bad = 0;

		alarm(60);
		if (bmap_map_load(ctx, fifo, &map) != -EINVAL ||
		    !strstr(bmap_ctx_get_error(ctx), "is not a regular file (it is a FIFO"))
			bad |= 1;
		close(fds[1]);
		if (bmap_map_load(ctx, proc, &map) != -EINVAL ||
		    !strstr(bmap_ctx_get_error(ctx), "save the bmap to a file"))
			bad |= 2;
		bmap_ctx_free(ctx);
		free(dir);
		free(fifo);
		free(proc);
		_exit(bad);
	}
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("bmap_map_load on a FIFO or pipe: %s %d",
			 WIFSIGNALED(status) ? "killed by signal" : "failed check",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	tu_rmtree(dir);
	free(dir);
	free(fifo);
	free(proc);
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
		cmocka_unit_test(test_many_attributes_quadratic),
		cmocka_unit_test(test_many_namespaces_quadratic),
		cmocka_unit_test(test_huge_image_size_wrapped_block_arithmetic),
		cmocka_unit_test(test_header_after_blockmap),
		cmocka_unit_test(test_failure_order),
		cmocka_unit_test(test_long_whitespace_around_values),
		cmocka_unit_test(test_many_ranges_kept),
		cmocka_unit_test(test_load_fifo_hung_in_open),
		cmocka_unit_test(test_writer),
		cmocka_unit_test(test_human_size),
		cmocka_unit_test(test_human_size_past_tib),
		cmocka_unit_test(test_discover),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
