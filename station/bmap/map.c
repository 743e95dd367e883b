/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The block map model and its parser: bmap files of every version the
 * reference bmaptool wrote (1.2 .. 2.0), validated strictly.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "bmap-private.h"
#include "util.h"

struct bmap_map {
	char version[16]; /* as written, e.g. "2.0"; "" when computed */
	unsigned major, minor;
	uint64_t image_size;
	uint32_t block_size;
	uint64_t blocks_count;
	uint64_t mapped_blocks;
	char checksum_type[16]; /* "" when the file has none */
	size_t cs_len;          /* bytes of one digest, 0 when none */

	struct bmap_range *ranges;
	uint8_t *digests;    /* n_ranges * cs_len */
	uint8_t *has_digest; /* one flag per range */
	size_t n_ranges, cap;
	bool all_digests;

	bool has_self_checksum;
	uint8_t file_sha256[32];
};

static int map_grow(struct bmap_map *map)
{
	size_t cap = map->cap ? map->cap * 2 : 64;
	void *p;

	p = realloc(map->ranges, cap * sizeof(*map->ranges));
	if (!p)
		return -ENOMEM;
	map->ranges = p;
	p = realloc(map->has_digest, cap);
	if (!p)
		return -ENOMEM;
	map->has_digest = p;
	if (map->cs_len) {
		p = realloc(map->digests, cap * map->cs_len);
		if (!p)
			return -ENOMEM;
		map->digests = p;
	}
	map->cap = cap;
	return 0;
}

int bmap_map_new(struct bmap_ctx *ctx, uint64_t image_size, uint32_t block_size,
		 struct bmap_map **ret_map)
{
	struct bmap_map *map;

	if (block_size < 512 || (block_size & (block_size - 1)))
		return bmap_error(ctx, -EINVAL, "block size %" PRIu32 " is not a power of two >= 512",
				  block_size);
	map = calloc(1, sizeof(*map));
	if (!map)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	map->image_size = image_size;
	map->block_size = block_size;
	map->blocks_count = (image_size + block_size - 1) / block_size;
	*ret_map = map;
	return 0;
}

int bmap_map_append_range(struct bmap_map *map, uint64_t first, uint64_t last)
{
	int r;

	if (first > last || last >= map->blocks_count)
		return -EINVAL;
	if (map->n_ranges) {
		struct bmap_range *prev = &map->ranges[map->n_ranges - 1];

		if (first <= prev->last)
			return -EINVAL;
		if (first == prev->last + 1) {
			map->mapped_blocks += last - prev->last;
			prev->last = last;
			return 0;
		}
	}
	if (map->n_ranges == map->cap) {
		r = map_grow(map);
		if (r < 0)
			return r;
	}
	map->ranges[map->n_ranges] = (struct bmap_range){ first, last };
	map->has_digest[map->n_ranges] = 0;
	map->n_ranges++;
	map->mapped_blocks += last - first + 1;
	return 0;
}

struct bmap_map *bmap_map_free(struct bmap_map *map)
{
	if (map) {
		free(map->ranges);
		free(map->digests);
		free(map->has_digest);
		free(map);
	}
	return NULL;
}

const char *bmap_map_get_version(const struct bmap_map *map)
{
	return map->version;
}

uint64_t bmap_map_get_image_size(const struct bmap_map *map)
{
	return map->image_size;
}

uint32_t bmap_map_get_block_size(const struct bmap_map *map)
{
	return map->block_size;
}

uint64_t bmap_map_get_blocks_count(const struct bmap_map *map)
{
	return map->blocks_count;
}

uint64_t bmap_map_get_mapped_blocks(const struct bmap_map *map)
{
	return map->mapped_blocks;
}

void bmap_map_range_bytes(const struct bmap_map *map, size_t i, uint64_t *ret_off,
			  uint64_t *ret_len)
{
	uint64_t off = map->ranges[i].first * map->block_size;
	uint64_t end = (map->ranges[i].last + 1) * map->block_size;

	if (end > map->image_size)
		end = map->image_size;
	*ret_off = off;
	*ret_len = end - off;
}

uint64_t bmap_map_get_mapped_bytes(const struct bmap_map *map)
{
	uint64_t bytes = map->mapped_blocks * map->block_size;

	/* Only the last block of the image can be partial. */
	if (map->n_ranges && map->ranges[map->n_ranges - 1].last == map->blocks_count - 1)
		bytes -= map->blocks_count * map->block_size - map->image_size;
	return bytes;
}

size_t bmap_map_get_range_count(const struct bmap_map *map)
{
	return map->n_ranges;
}

const struct bmap_range *bmap_map_get_ranges(const struct bmap_map *map)
{
	return map->ranges;
}

const char *bmap_map_get_checksum_type(const struct bmap_map *map)
{
	return map->checksum_type[0] ? map->checksum_type : NULL;
}

bool bmap_map_has_range_checksums(const struct bmap_map *map)
{
	return map->cs_len && map->all_digests;
}

size_t bmap_map_get_checksum_size(const struct bmap_map *map)
{
	return map->cs_len;
}

const uint8_t *bmap_map_get_range_checksum(const struct bmap_map *map, size_t i)
{
	if (!map->cs_len || !map->has_digest[i])
		return NULL;
	return map->digests + i * map->cs_len;
}

bool bmap_map_has_self_checksum(const struct bmap_map *map)
{
	return map->has_self_checksum;
}

const uint8_t *bmap_map_get_file_sha256(const struct bmap_map *map)
{
	return map->file_sha256;
}

/* ---- parsing ---- */

/* The library never prints: libxml2 reports some errors (encodings) through
 * its generic handler even with XML_PARSE_NOERROR (found by fuzz_bmap). */
static void xml_silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

struct parse {
	struct bmap_ctx *ctx;
	const char *name;
	const char *buf;
	size_t len;
	struct bmap_map *map;
};

#define perr(p, node, fmt, ...)                                                              \
	bmap_error((p)->ctx, -EBADMSG, "bmap file '%s'%s%.0ld: " fmt, (p)->name,             \
		   (node) ? " line " : "", (node) ? xmlGetLineNo(node) : 0L, ##__VA_ARGS__)

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

/* Parses a decimal number surrounded by optional whitespace. */
static int parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	s = skip_ws(s);
	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	s = skip_ws(s);
	if (*s)
		return -EINVAL;
	*ret = v;
	return 0;
}

static xmlNode *find_child(xmlNode *parent, const char *name)
{
	for (xmlNode *n = parent->children; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
			return n;
	return NULL;
}

/* The element's text content, trimmed, malloc'd; NULL when missing. */
static char *node_text(xmlNode *n)
{
	xmlChar *c = xmlNodeGetContent(n);
	char *s, *start, *end;

	if (!c)
		return NULL;
	start = (char *)skip_ws((const char *)c);
	end = start + strlen(start);
	while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
			       end[-1] == '\r'))
		end--;
	s = strndup(start, (size_t)(end - start));
	xmlFree(c);
	return s;
}

static int get_number(struct parse *p, xmlNode *root, const char *name, uint64_t *ret)
{
	xmlNode *n = find_child(root, name);
	_cleanup_free_ char *text = NULL;

	if (!n)
		return perr(p, root, "missing <%s>", name);
	text = node_text(n);
	if (!text || parse_u64(text, ret) < 0)
		return perr(p, n, "<%s> is not a number: '%s'", name, text ? text : "");
	return 0;
}

static int parse_version(struct parse *p, xmlNode *root)
{
	struct bmap_map *map = p->map;
	_cleanup_free_ char *v = NULL;
	xmlChar *attr = xmlGetProp(root, (const xmlChar *)"version");
	char *dot, *end;
	unsigned long major, minor;

	if (!attr)
		return perr(p, root, "<bmap> has no version attribute");
	v = strdup((const char *)attr);
	xmlFree(attr);
	if (!v)
		return -ENOMEM;
	dot = strchr(v, '.');
	if (!dot || dot == v || strlen(v) >= sizeof(map->version))
		return perr(p, root, "bad format version '%s' (expected MAJOR.MINOR)", v);
	errno = 0;
	major = strtoul(v, &end, 10);
	if (errno || end != dot)
		return perr(p, root, "bad format version '%s' (expected MAJOR.MINOR)", v);
	minor = strtoul(dot + 1, &end, 10);
	if (errno || *end || end == dot + 1)
		return perr(p, root, "bad format version '%s' (expected MAJOR.MINOR)", v);
	if (major > 2)
		return perr(p, root,
			    "format version %s is not supported (only versions up to 2.x are); "
			    "a newer bmaptool wrote this file",
			    v);
	if (major < 1)
		return perr(p, root, "format version %s is not supported", v);
	map->major = (unsigned)major;
	map->minor = (unsigned)minor;
	snprintf(map->version, sizeof(map->version), "%s", v);
	return 0;
}

/* Version 1.3 used SHA-1 and "sha1" names; 1.4 and 2.x name their type.
 * Before 1.3 there were no checksums (the reference ignores sha1= there). */
static int parse_checksum_type(struct parse *p, xmlNode *root, const char **ret_attr,
			       const char **ret_self)
{
	struct bmap_map *map = p->map;
	int size;

	*ret_attr = *ret_self = NULL;
	if (map->major >= 2 || (map->major == 1 && map->minor >= 4)) {
		xmlNode *n = find_child(root, "ChecksumType");
		_cleanup_free_ char *t = NULL;

		if (!n)
			return perr(p, root, "missing <ChecksumType> (required in version %s)",
				    map->version);
		t = node_text(n);
		if (!t || !*t)
			return perr(p, n, "empty <ChecksumType>");
		for (char *c = t; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		size = bmap_digest_size(t);
		if (size < 0 || strlen(t) >= sizeof(map->checksum_type))
			return perr(p, n,
				    "unknown checksum type '%s' (supported: md5, sha1, sha224, "
				    "sha256, sha384, sha512)",
				    t);
		snprintf(map->checksum_type, sizeof(map->checksum_type), "%s", t);
		*ret_attr = "chksum";
		*ret_self = "BmapFileChecksum";
	} else if (map->major == 1 && map->minor == 3) {
		size = bmap_digest_size("sha1");
		snprintf(map->checksum_type, sizeof(map->checksum_type), "sha1");
		*ret_attr = "sha1";
		*ret_self = "BmapFileSHA1";
	} else {
		return 0;
	}
	map->cs_len = (size_t)size;
	return 0;
}

/* Parses "A-B" or "N" into a block range. */
static int parse_range_text(const char *s, uint64_t *first, uint64_t *last)
{
	const char *dash = strchr(s, '-');
	char a[32];

	if (!dash)
		return parse_u64(s, first) < 0 ? -EINVAL : (*last = *first, 0);
	if ((size_t)(dash - s) >= sizeof(a))
		return -EINVAL;
	memcpy(a, s, (size_t)(dash - s));
	a[dash - s] = '\0';
	if (parse_u64(a, first) < 0 || parse_u64(dash + 1, last) < 0)
		return -EINVAL;
	return 0;
}

static int parse_ranges(struct parse *p, xmlNode *root, const char *cs_attr)
{
	struct bmap_map *map = p->map;
	xmlNode *blockmap = find_child(root, "BlockMap");
	uint64_t sum = 0;
	int r;

	if (!blockmap)
		return perr(p, root, "missing <BlockMap>");
	map->all_digests = map->cs_len > 0;
	for (xmlNode *n = blockmap->children; n; n = n->next) {
		_cleanup_free_ char *text = NULL;
		uint64_t first, last;
		xmlChar *cs;

		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)n->name, "Range") != 0)
			return perr(p, n, "unexpected <%s> inside <BlockMap>", n->name);
		text = node_text(n);
		if (!text || parse_range_text(text, &first, &last) < 0)
			return perr(p, n, "bad range '%s' (expected 'A-B' or 'N')",
				    text ? text : "");
		if (first > last)
			return perr(p, n, "range %s is reversed", text);
		if (last >= map->blocks_count)
			return perr(p, n, "range %s is beyond the image's %" PRIu64 " blocks", text,
				    map->blocks_count);
		if (map->n_ranges) {
			const struct bmap_range *prev = &map->ranges[map->n_ranges - 1];

			if (first <= prev->last)
				return perr(p, n,
					    "range %s overlaps or comes before the previous range "
					    "%" PRIu64 "-%" PRIu64 " (ranges must ascend)",
					    text, prev->first, prev->last);
		}
		if (map->n_ranges == map->cap) {
			r = map_grow(map);
			if (r < 0)
				return bmap_error(p->ctx, r, "out of memory");
		}
		map->ranges[map->n_ranges] = (struct bmap_range){ first, last };
		map->has_digest[map->n_ranges] = 0;
		cs = cs_attr ? xmlGetProp(n, (const xmlChar *)cs_attr) : NULL;
		if (cs) {
			const char *hex = skip_ws((const char *)cs);
			size_t hl = strlen(hex);

			while (hl && (hex[hl - 1] == ' ' || hex[hl - 1] == '\t'))
				hl--;
			r = hex_decode(hex, hl, map->digests + map->n_ranges * map->cs_len,
				       map->cs_len);
			if (r < 0) {
				r = perr(p, n,
					 "checksum of range %s is not %zu hex digits of %s: '%s'",
					 text, 2 * map->cs_len, map->checksum_type, (const char *)cs);
				xmlFree(cs);
				return r;
			}
			xmlFree(cs);
			map->has_digest[map->n_ranges] = 1;
		} else {
			map->all_digests = false;
		}
		map->n_ranges++;
		sum += last - first + 1;
	}
	map->mapped_blocks = sum;
	return 0;
}

/* The self-checksum covers the whole file with its own hex digits replaced
 * by ASCII '0'. Found right after the element's opening tag, as written. */
static int check_self_checksum(struct parse *p, xmlNode *root, const char *elem)
{
	struct bmap_map *map = p->map;
	xmlNode *n = find_child(root, elem);
	_cleanup_free_ char *want = NULL;
	_cleanup_(bmap_digest_freep) struct bmap_digest *d = NULL;
	char tag[64], got_hex[2 * BMAP_DIGEST_MAX + 1];
	uint8_t got[BMAP_DIGEST_MAX], zeros[2 * BMAP_DIGEST_MAX];
	const char *pos, *digits;

	if (!n)
		return 0; /* nothing to check */
	want = node_text(n);
	if (!want || strlen(want) != 2 * map->cs_len ||
	    hex_decode(want, strlen(want), got, map->cs_len) < 0)
		return perr(p, n, "<%s> is not %zu hex digits: '%s'", elem, 2 * map->cs_len,
			    want ? want : "");
	snprintf(tag, sizeof(tag), "<%s>", elem);
	pos = memmem(p->buf, p->len, tag, strlen(tag));
	if (!pos)
		return perr(p, n, "cannot locate <%s> in the file's bytes", elem);
	digits = pos + strlen(tag);
	while ((size_t)(digits - p->buf) < p->len && (*digits == ' ' || *digits == '\t' ||
						     *digits == '\n' || *digits == '\r'))
		digits++;
	if ((size_t)(digits - p->buf) + 2 * map->cs_len > p->len ||
	    memcmp(digits, want, 2 * map->cs_len) != 0)
		return perr(p, n, "cannot locate the digits of <%s> in the file's bytes", elem);

	memset(zeros, '0', sizeof(zeros));
	d = bmap_digest_new(map->checksum_type);
	if (!d)
		return bmap_error(p->ctx, -ENOMEM, "out of memory");
	if (bmap_digest_update(d, p->buf, (size_t)(digits - p->buf)) < 0 ||
	    bmap_digest_update(d, zeros, 2 * map->cs_len) < 0 ||
	    bmap_digest_update(d, digits + 2 * map->cs_len,
			       p->len - (size_t)(digits - p->buf) - 2 * map->cs_len) < 0 ||
	    bmap_digest_final(d, got) < 0)
		return bmap_error(p->ctx, -EIO, "hashing failed");
	hex_encode(got, map->cs_len, got_hex);
	for (char *c = want; *c; c++)
		if (*c >= 'A' && *c <= 'F')
			*c = (char)(*c - 'A' + 'a');
	if (strcmp(got_hex, want) != 0)
		return perr(p, n,
			    "the bmap file's own checksum does not match: calculated %s, "
			    "should be %s (the file was modified or damaged)",
			    got_hex, want);
	map->has_self_checksum = true;
	return 0;
}

int bmap_map_parse(struct bmap_ctx *ctx, const char *name, const void *buf, size_t len,
		   struct bmap_map **ret_map)
{
	struct parse p = { .ctx = ctx, .name = name, .buf = buf, .len = len };
	xmlParserCtxt *xctx = NULL;
	xmlDoc *doc = NULL;
	xmlNode *root;
	const char *cs_attr, *self_elem;
	uint64_t bs, blocks, mapped;
	xmlGenericErrorFunc old_handler;
	void *old_handler_ctx;
	int r;

	if (len > BMAP_FILE_MAX_SIZE)
		return bmap_error(ctx, -EFBIG, "bmap file '%s' is too large (%zu bytes, limit %u)",
				  name, len, BMAP_FILE_MAX_SIZE);
	if (len > INT32_MAX)
		return bmap_error(ctx, -EFBIG, "bmap file '%s' is too large", name);

	p.map = calloc(1, sizeof(*p.map));
	if (!p.map)
		return bmap_error(ctx, -ENOMEM, "out of memory");

	old_handler = xmlGenericError;
	old_handler_ctx = xmlGenericErrorContext;
	xmlSetGenericErrorFunc(NULL, xml_silent);
	xctx = xmlNewParserCtxt();
	if (!xctx) {
		r = bmap_error(ctx, -ENOMEM, "out of memory");
		goto out;
	}
	/* No network, no entity substitution, no DTD loading. */
	doc = xmlCtxtReadMemory(xctx, buf, (int)len, name, NULL,
				XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlCtxtGetLastError(xctx);

		r = bmap_error(ctx, -EBADMSG, "bmap file '%s' line %d: not well-formed XML: %s",
			       name, e ? e->line : 0,
			       e && e->message ? e->message : "parse error\n");
		/* libxml2 ends its messages with a newline. */
		ctx->error[strcspn(ctx->error, "\n")] = '\0';
		goto out;
	}
	if (doc->intSubset || doc->extSubset) {
		r = bmap_error(ctx, -EBADMSG,
			       "bmap file '%s': DOCTYPE declarations are not allowed in a bmap",
			       name);
		goto out;
	}
	root = xmlDocGetRootElement(doc);
	if (!root || strcmp((const char *)root->name, "bmap") != 0) {
		r = perr(&p, root, "the root element is not <bmap>");
		goto out;
	}
	r = parse_version(&p, root);
	if (r < 0)
		goto out;
	r = get_number(&p, root, "ImageSize", &p.map->image_size);
	if (r < 0)
		goto out;
	r = get_number(&p, root, "BlockSize", &bs);
	if (r < 0)
		goto out;
	if (bs < 512 || bs > (1u << 30) || (bs & (bs - 1))) {
		r = perr(&p, find_child(root, "BlockSize"),
			 "BlockSize %" PRIu64 " is not a power of two between 512 and 1 GiB", bs);
		goto out;
	}
	p.map->block_size = (uint32_t)bs;
	r = get_number(&p, root, "BlocksCount", &blocks);
	if (r < 0)
		goto out;
	if (p.map->image_size == 0) {
		r = perr(&p, find_child(root, "ImageSize"), "ImageSize is 0");
		goto out;
	}
	if (blocks != p.map->image_size / bs + (p.map->image_size % bs != 0)) {
		r = perr(&p, find_child(root, "BlocksCount"),
			 "inconsistent bmap: BlocksCount %" PRIu64 " does not match ImageSize %" PRIu64
			 " with BlockSize %" PRIu64 " (expected %" PRIu64 ")",
			 blocks, p.map->image_size, bs,
			 p.map->image_size / bs + (p.map->image_size % bs != 0));
		goto out;
	}
	p.map->blocks_count = blocks;
	r = get_number(&p, root, "MappedBlocksCount", &mapped);
	if (r < 0)
		goto out;
	r = parse_checksum_type(&p, root, &cs_attr, &self_elem);
	if (r < 0)
		goto out;
	r = parse_ranges(&p, root, cs_attr);
	if (r < 0)
		goto out;
	if (mapped != p.map->mapped_blocks) {
		r = perr(&p, find_child(root, "MappedBlocksCount"),
			 "MappedBlocksCount is %" PRIu64 " but the ranges hold %" PRIu64 " blocks",
			 mapped, p.map->mapped_blocks);
		goto out;
	}
	if (self_elem) {
		r = check_self_checksum(&p, root, self_elem);
		if (r < 0)
			goto out;
	}
	r = bmap_digest_buffer("sha256", buf, len, p.map->file_sha256);
	if (r < 0) {
		r = bmap_error(ctx, r, "hashing failed");
		goto out;
	}
	*ret_map = p.map;
	p.map = NULL;
	r = 0;
out:
	xmlFreeDoc(doc);
	xmlFreeParserCtxt(xctx);
	xmlSetGenericErrorFunc(old_handler_ctx, old_handler);
	bmap_map_free(p.map);
	return r;
}

int bmap_map_load(struct bmap_ctx *ctx, const char *path, struct bmap_map **ret_map)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bmap_error(ctx, -errno, "cannot open bmap file '%s': %m", path);
	if (fstat(fd, &st) < 0)
		return bmap_error(ctx, -errno, "cannot stat bmap file '%s': %m", path);
	if (S_ISDIR(st.st_mode))
		return bmap_error(ctx, -EISDIR, "bmap file '%s' is a directory", path);
	if (!S_ISREG(st.st_mode))
		return bmap_error(ctx, -EINVAL, "bmap file '%s' is not a regular file", path);
	if ((uint64_t)st.st_size > BMAP_FILE_MAX_SIZE)
		return bmap_error(ctx, -EFBIG,
				  "bmap file '%s' is too large (%" PRIu64 " bytes, limit %u)", path,
				  (uint64_t)st.st_size, BMAP_FILE_MAX_SIZE);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	n = loop_read(fd, buf, (size_t)st.st_size);
	if (n < 0)
		return bmap_error(ctx, (int)n, "cannot read bmap file '%s': %s", path,
				  strerror((int)-n));
	return bmap_map_parse(ctx, path, buf, (size_t)n, ret_map);
}

int bmap_discover(const char *image_path, char **ret_path)
{
	_cleanup_free_ char *base = strdup(image_path);
	char *slash, *dot;

	if (!base)
		return -ENOMEM;
	slash = strrchr(base, '/');
	for (;;) {
		char *cand;
		struct stat st;

		if (asprintf(&cand, "%s.bmap", base) < 0)
			return -ENOMEM;
		if (strcmp(cand, image_path) != 0 && stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			*ret_path = cand;
			return 0;
		}
		free(cand);
		dot = strrchr(base, '.');
		if (!dot || (slash && dot < slash) || dot == base || (slash && dot == slash + 1))
			return -ENOENT;
		*dot = '\0';
	}
}
