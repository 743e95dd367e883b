/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A bmap's checks in the order their failures have always been reported
 * (well-formedness, root, version, header fields, ranges, counts, the
 * file's own checksum), and the passes over the file that order needs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map-parse.h"
#include "util.h"

/* ---- the header, checked in the order the messages always came ---- */

static int get_number(struct map_parse *p, enum field f, bool report, uint64_t *ret)
{
	struct map_field *fl = &p->fields[f];
	const char *text;

	if (!fl->seen)
		return report ? map_perr(p, p->root_line, "missing <%s>", map_field_names[f])
			      : -EAGAIN;
	text = map_text_get(&fl->text);
	if (fl->text.truncated || map_parse_u64(text, ret) < 0)
		return MAP_FAIL(report, p, fl->line, "<%s> is not a number: '%s'",
				map_field_names[f], text);
	return 0;
}

static int parse_version(struct map_parse *p, bool report)
{
	struct bmap_map *map = p->map;
	const char *v = p->version, *dot = strchr(v, '.');
	char *end;
	unsigned long major, minor;

	if (!p->has_version)
		return MAP_FAIL(report, p, p->root_line, "<bmap> has no version attribute");
	if (p->version_truncated || !dot || dot == v || strlen(v) >= sizeof(map->version))
		return MAP_FAIL(report, p, p->root_line,
				"bad format version '%s' (expected MAJOR.MINOR)", v);
	errno = 0;
	major = strtoul(v, &end, 10);
	if (errno || end != dot)
		return MAP_FAIL(report, p, p->root_line,
				"bad format version '%s' (expected MAJOR.MINOR)", v);
	minor = strtoul(dot + 1, &end, 10);
	if (errno || *end || end == dot + 1)
		return MAP_FAIL(report, p, p->root_line,
				"bad format version '%s' (expected MAJOR.MINOR)", v);
	if (major > 2)
		return MAP_FAIL(report, p, p->root_line,
				"format version %s is not supported (only versions up to 2.x are); "
				"a newer bmaptool wrote this file",
				v);
	if (major < 1)
		return MAP_FAIL(report, p, p->root_line, "format version %s is not supported", v);
	map->major = (unsigned)major;
	map->minor = (unsigned)minor;
	snprintf(map->version, sizeof(map->version), "%s", v);
	return 0;
}

/* Version 1.3 used SHA-1 and "sha1" names; 1.4 and 2.x name their type.
 * Before 1.3 there were no checksums (the reference ignores sha1= there). */
static int parse_checksum_type(struct map_parse *p, bool report)
{
	struct bmap_map *map = p->map;
	int size;

	p->cs_attr = NULL;
	p->self_field = -1;
	if (map->major >= 2 || (map->major == 1 && map->minor >= 4)) {
		struct map_field *fl = &p->fields[F_CHECKSUM_TYPE];
		char *t;

		if (!fl->seen)
			return report ? map_perr(p, p->root_line,
						 "missing <ChecksumType> (required in version %s)",
						 map->version)
				      : -EAGAIN;
		t = map_text_get(&fl->text);
		if (!*t)
			return MAP_FAIL(report, p, fl->line, "empty <ChecksumType>");
		for (char *c = t; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		size = bmap_digest_size(t);
		if (size < 0 || strlen(t) >= sizeof(map->checksum_type))
			return MAP_FAIL(report, p, fl->line,
					"unknown checksum type '%s' (supported: md5, sha1, sha224, "
					"sha256, sha384, sha512)",
					t);
		snprintf(map->checksum_type, sizeof(map->checksum_type), "%s", t);
		p->cs_attr = "chksum";
		p->self_field = F_FILE_CHECKSUM;
	} else if (map->major == 1 && map->minor == 3) {
		size = bmap_digest_size("sha1");
		snprintf(map->checksum_type, sizeof(map->checksum_type), "sha1");
		p->cs_attr = "sha1";
		p->self_field = F_FILE_SHA1;
	} else {
		return 0;
	}
	map->cs_len = (size_t)size;
	return 0;
}

int map_check_header(struct map_parse *p, bool report)
{
	struct bmap_map *map = p->map;
	long size_line = p->fields[F_IMAGE_SIZE].line;
	uint64_t bs, blocks, expected;
	int r;

	r = parse_version(p, report);
	if (r < 0)
		return r;
	r = get_number(p, F_IMAGE_SIZE, report, &map->image_size);
	if (r < 0)
		return r;
	r = get_number(p, F_BLOCK_SIZE, report, &bs);
	if (r < 0)
		return r;
	if (bs < 512 || bs > (1u << 30) || (bs & (bs - 1)))
		return MAP_FAIL(report, p, p->fields[F_BLOCK_SIZE].line,
				"BlockSize %" PRIu64 " is not a power of two between 512 and 1 GiB",
				bs);
	map->block_size = (uint32_t)bs;
	r = get_number(p, F_BLOCKS_COUNT, report, &blocks);
	if (r < 0)
		return r;
	if (map->image_size == 0)
		return MAP_FAIL(report, p, size_line, "ImageSize is 0");
	/* Offsets are off_t: beyond, block arithmetic near 2^64 would wrap. */
	if (map->image_size > INT64_MAX)
		return MAP_FAIL(report, p, size_line,
				"ImageSize %" PRIu64
				" is larger than any image can be (at most %" PRId64 " bytes)",
				map->image_size, INT64_MAX);
	expected = map->image_size / bs + (map->image_size % bs != 0);
	if (blocks != expected)
		return MAP_FAIL(report, p, p->fields[F_BLOCKS_COUNT].line,
				"inconsistent bmap: BlocksCount %" PRIu64
				" does not match ImageSize %" PRIu64 " with BlockSize %" PRIu64
				" (expected %" PRIu64 ")",
				blocks, map->image_size, bs, expected);
	map->blocks_count = blocks;
	if (report || p->fields[F_MAPPED].seen) {
		r = get_number(p, F_MAPPED, report, &p->mapped);
		if (r < 0)
			return r;
	}
	r = parse_checksum_type(p, report);
	if (r < 0)
		return r;
	if (report && !p->fields[F_BLOCK_MAP].seen)
		return map_perr(p, p->root_line, "missing <BlockMap>");
	return 0;
}
/* ---- the bmap's own checksum ---- */

enum self_state {
	SELF_NONE,	/* no element to check */
	SELF_BAD_TEXT,	/* the element does not hold 2 * cs_len hex digits */
	SELF_NO_TAG,	/* "<TAG>" is nowhere in the raw bytes */
	SELF_NO_DIGITS, /* ... but the digits after it are not the element's */
	SELF_READY,	/* the digits are at *ret_off: the file can be hashed */
};

/* The self-checksum covers the whole file with its own hex digits replaced
 * by ASCII '0'; the first pass found where the writer put them. */
static enum self_state self_state(struct map_parse *p, uint64_t *ret_off)
{
	struct bmap_map *map = p->map;
	struct map_field *fl;
	const struct map_tag_scan *scan;
	const char *want;
	size_t n = 2 * map->cs_len;
	uint8_t bin[BMAP_DIGEST_MAX];

	if (p->self_field < 0 || !p->fields[p->self_field].seen)
		return SELF_NONE;
	fl = &p->fields[p->self_field];
	want = map_text_get(&fl->text);
	if (fl->text.truncated || strlen(want) != n || hex_decode(want, n, bin, map->cs_len) < 0)
		return SELF_BAD_TEXT;
	scan = &p->in->scan[p->self_field == F_FILE_SHA1 ? MAP_SCAN_SHA1 : MAP_SCAN_CHECKSUM];
	if (!scan->found)
		return SELF_NO_TAG;
	if (scan->state == SCAN_WS || scan->n_digits < n || memcmp(scan->digits, want, n) != 0)
		return SELF_NO_DIGITS;
	*ret_off = scan->digits_off;
	return SELF_READY;
}

/* A failure of the input (read, size, changed, hash) as a message. */
static int input_failed(struct map_parse *p, int r)
{
	if (r == -ENOMEM)
		return bmap_error(p->ctx, r, "out of memory");
	if (r == -EFBIG)
		return bmap_error(p->ctx, r, "bmap file '%s' is too large (more than %u bytes)",
				  p->name, BMAP_FILE_MAX_SIZE);
	if (r == -ESTALE)
		return bmap_error(p->ctx, r,
				  "bmap file '%s' changed while it was read (was it being "
				  "written?); try again",
				  p->name);
	if (r == -EIO)
		return bmap_error(p->ctx, r, "hashing failed");
	return bmap_error(p->ctx, r, "cannot read bmap file '%s': %s", p->name, strerror(-r));
}

static int check_self(struct map_parse *p, enum self_state state, uint64_t off,
		      const uint8_t *computed)
{
	struct bmap_map *map = p->map;
	struct map_field *fl = &p->fields[p->self_field];
	const char *elem = map_field_names[p->self_field];
	char *want = map_text_get(&fl->text), got_hex[2 * BMAP_DIGEST_MAX + 1];
	uint8_t got[BMAP_DIGEST_MAX];
	size_t n = 2 * map->cs_len;
	int r;

	if (state == SELF_BAD_TEXT)
		return map_perr(p, fl->line, "<%s> is not %zu hex digits: '%s'", elem, n, want);
	if (state == SELF_NO_TAG)
		return map_perr(p, fl->line, "cannot locate <%s> in the file's bytes", elem);
	if (state == SELF_NO_DIGITS)
		return map_perr(p, fl->line, "cannot locate the digits of <%s> in the file's bytes",
				elem);
	if (computed) {
		memcpy(got, computed, map->cs_len);
	} else {
		r = map_input_begin(p->in, p->in->pass + 1, map->checksum_type, off, n);
		if (r >= 0)
			r = map_input_drain(p->in);
		if (r >= 0)
			r = map_input_end(p->in, got);
		if (r < 0)
			return input_failed(p, r);
	}
	hex_encode(got, map->cs_len, got_hex);
	for (char *c = want; *c; c++)
		if (*c >= 'A' && *c <= 'F')
			*c = (char)(*c - 'A' + 'a');
	if (strcmp(got_hex, want) != 0)
		return map_perr(p, fl->line,
				"the bmap file's own checksum does not match: calculated %s, "
				"should be %s (the file was modified or damaged)",
				got_hex, want);
	map->has_self_checksum = true;
	return 0;
}

/* ---- the passes and the order of the checks ---- */

static int parse_all(struct map_parse *p)
{
	struct bmap_map *map = p->map;
	uint8_t self[BMAP_DIGEST_MAX];
	enum self_state state;
	bool computed = false;
	uint64_t off = 0;
	int r;

	p->pass = 1;
	r = map_input_begin(p->in, 1, NULL, 0, 0);
	if (r < 0)
		return input_failed(p, r);
	r = map_parse_pass(p);
	if (r < 0)
		return r;
	r = map_input_end(p->in, NULL);
	if (r < 0)
		return input_failed(p, r);
	if (!p->root_seen || !p->root_is_bmap)
		return map_perr(p, p->root_seen ? p->root_line : 0,
				"the root element is not <bmap>");
	r = map_check_header(p, true);
	if (r < 0)
		return r;
	state = self_state(p, &off);
	if (!p->ranges_done) {
		/* The header came after <BlockMap>: read the file again for
		 * the ranges, hashing it for its own checksum on the way. */
		p->pass = 2;
		r = map_input_begin(p->in, 2, state == SELF_READY ? map->checksum_type : NULL, off,
				    2 * map->cs_len);
		if (r < 0)
			return input_failed(p, r);
		r = map_parse_pass(p);
		if (r < 0)
			return r;
		r = map_input_end(p->in, self);
		if (r < 0)
			return input_failed(p, r);
		computed = state == SELF_READY;
	}
	if (p->range_r)
		return bmap_error(p->ctx, p->range_r, "%s", p->range_msg);
	map->mapped_blocks = p->sum;
	if (p->mapped != p->sum)
		return map_perr(p, p->fields[F_MAPPED].line,
				"MappedBlocksCount is %" PRIu64 " but the ranges hold %" PRIu64
				" blocks",
				p->mapped, p->sum);
	if (state != SELF_NONE) {
		r = check_self(p, state, off, computed ? self : NULL);
		if (r < 0)
			return r;
	}
	memcpy(map->file_sha256, p->in->sha_first, sizeof(map->file_sha256));
	return 0;
}

/* The library never prints: libxml2 reports some errors (encodings) through
 * its generic handler even with XML_PARSE_NOERROR (found by fuzz_bmap). */
static void xml_silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

int map_parse_input(struct bmap_ctx *ctx, struct map_input *in, struct bmap_map **ret_map)
{
	xmlGenericErrorFunc old_handler = xmlGenericError;
	void *old_handler_ctx = xmlGenericErrorContext;
	struct map_parse *p;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	p->ctx = ctx;
	p->name = in->name;
	p->in = in;
	p->self_field = -1;
	p->map = calloc(1, sizeof(*p->map));
	if (!p->map) {
		free(p);
		return bmap_error(ctx, -ENOMEM, "out of memory");
	}
	xmlSetGenericErrorFunc(NULL, xml_silent);
	r = parse_all(p);
	xmlSetGenericErrorFunc(old_handler_ctx, old_handler);
	if (r >= 0) {
		map_trim(p->map);
		*ret_map = p->map;
		p->map = NULL;
		r = 0;
	}
	bmap_map_free(p->map);
	free(p);
	return r;
}
