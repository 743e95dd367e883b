/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bmap format: libxml2's SAX events, read as a stream, turned into the
 * header and the ranges of every version the reference bmaptool wrote
 * (1.2 .. 2.0), validated strictly, failures reported in a fixed order.
 *
 * Streaming, not a DOM: a tree of a 246 MiB bmap of 11M ranges took 5.2 GB
 * and one of 240 MiB of unknown <x/> elements 8.4 GB; here memory is the
 * ranges kept (see struct bmap_map) plus a few KiB. The parser runs in
 * libxml2's pull mode with a read callback: its push mode (and so its
 * xmlTextReader) rescans what it holds on every chunk, quadratic in a long
 * comment. SAX2 callbacks, as the tree builder had: the same parser code,
 * so the same well-formedness verdicts and messages.
 *
 * libxml2 2.9 (Debian 12) checks an element's attributes for duplicates
 * pairwise and looks a namespace prefix up linearly among those in scope:
 * an element of 100k attributes took 50 s of CPU. No bmap element has more
 * than one attribute and a bmap declares no namespace, so more than
 * MAX_ATTRS attributes on an element or MAX_NS namespaces in scope are
 * refused, at the latest one read (4 KB) after libxml2's arrays outgrew
 * what the limits allow (see io_read): the rest is linear in the file.
 *
 * Failures come in the order the DOM parser gave them (well-formedness,
 * root, version, header fields, ranges, counts, self-checksum), whatever the
 * order of the file's elements: a header after <BlockMap> (unusual, but
 * valid) makes a second pass over the file for the ranges.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/SAX2.h>

#include "map-parse.h"
#include "util.h"

const char *const map_field_names[F_COUNT] = {
    "ImageSize",    "BlockSize",	"BlocksCount",	"MappedBlocksCount",
    "ChecksumType", "BmapFileChecksum", "BmapFileSHA1", "BlockMap",
};

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

const char *map_skip_ws(const char *s)
{
	while (is_ws(*s))
		s++;
	return s;
}

static long cur_line(const struct map_parse *p)
{
	return p->xctx ? (long)xmlSAX2GetLineNumber(p->xctx) : 0;
}

__attribute__((format(printf, 5, 0))) static void
vformat(const struct map_parse *p, char *buf, size_t size, long line, const char *fmt, va_list ap)
{
	int n = snprintf(buf, size, "bmap file '%s'%s%.0ld: ", p->name, line ? " line " : "", line);

	if (n >= 0 && (size_t)n < size)
		vsnprintf(buf + n, size - (size_t)n, fmt, ap);
}

int map_perr(struct map_parse *p, long line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vformat(p, msg, sizeof(msg), line, fmt, ap);
	va_end(ap);
	return bmap_error(p->ctx, -EBADMSG, "%s", msg);
}

/* The first bad range is reported only once everything before it in the
 * order of checks has passed. */
__attribute__((format(printf, 3, 4))) static int range_fail(struct map_parse *p, long line,
							    const char *fmt, ...)
{
	va_list ap;

	if (!p->range_r) {
		va_start(ap, fmt);
		vformat(p, p->range_msg, sizeof(p->range_msg), line, fmt, ap);
		va_end(ap);
		p->range_r = -EBADMSG;
	}
	return p->range_r;
}

/* Stops the parser with a failure of ours. @halt: from a SAX callback,
 * where xmlStopParser() is allowed (not from the read callback, where it
 * would free the buffer being filled; returning -1 there ends the input). */
__attribute__((format(printf, 4, 5))) static void stop(struct map_parse *p, bool halt, int r,
						       const char *fmt, ...)
{
	va_list ap;

	if (!p->stop_r) {
		va_start(ap, fmt);
		vsnprintf(p->stop_msg, sizeof(p->stop_msg), fmt, ap);
		va_end(ap);
		p->stop_r = r;
	}
	if (halt && p->xctx)
		xmlStopParser(p->xctx);
}

static void text_reset(struct map_text *t)
{
	t->len = t->trimmed = 0;
	t->started = t->truncated = false;
}

static void text_add(struct map_text *t, const xmlChar *c, int n)
{
	for (int i = 0; i < n && !t->truncated; i++) {
		bool ws = is_ws((char)c[i]);

		if (!t->started && ws)
			continue;
		t->started = true;
		if (t->len < TEXT_MAX) {
			t->s[t->len++] = (char)c[i];
			if (!ws)
				t->trimmed = t->len;
		} else if (!ws) {
			t->truncated = true;
		}
	}
}

char *map_text_get(struct map_text *t)
{
	if (t->truncated)
		memcpy(t->s + t->len, "...", 4);
	else
		t->s[t->trimmed] = '\0';
	return t->s;
}

int map_parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	s = map_skip_ws(s);
	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	s = map_skip_ws(s);
	if (*s)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Parses "A-B" or "N" into a block range. */
static int parse_range_text(const char *s, uint64_t *first, uint64_t *last)
{
	const char *dash = strchr(s, '-');
	char a[32];

	if (!dash)
		return map_parse_u64(s, first) < 0 ? -EINVAL : (*last = *first, 0);
	if ((size_t)(dash - s) >= sizeof(a))
		return -EINVAL;
	memcpy(a, s, (size_t)(dash - s));
	a[dash - s] = '\0';
	if (map_parse_u64(a, first) < 0 || map_parse_u64(dash + 1, last) < 0)
		return -EINVAL;
	return 0;
}

/* ---- SAX callbacks ---- */

/* A name as the DOM parser named it: the local name when its prefix is
 * declared (or it has none); "prefix:local" when not, which no name looked
 * for can be (NULL here). */
static const char *dom_name(const xmlChar *local, const xmlChar *prefix, const xmlChar *uri)
{
	return prefix && !uri ? NULL : (const char *)local;
}

static const char *print_name(char *buf, size_t size, const xmlChar *local, const xmlChar *prefix,
			      const xmlChar *uri)
{
	if (!prefix || uri)
		return (const char *)local;
	snprintf(buf, size, "%s:%s", prefix, local);
	return buf;
}

/* The first attribute named @name, as xmlGetProp() found it: its value is
 * [*ret_value, *ret_end), with '&' written "&#38;" (libxml2 leaves decoding
 * it to the tree builder; no valid value holds one). */
static bool find_attr(int n, const xmlChar **atts, const char *name, const char **ret_value,
		      const char **ret_end)
{
	for (int i = 0; i < n; i++, atts += 5) {
		const char *a = dom_name(atts[0], atts[1], atts[2]);

		if (a && strcmp(a, name) == 0) {
			*ret_value = (const char *)atts[3];
			*ret_end = (const char *)atts[4];
			return true;
		}
	}
	return false;
}

/* A value for a message: "&#38;" as '&', cut with "..." to fit @size.
 * Returns whether it was cut. */
static bool value_copy(char *buf, size_t size, const char *v, const char *end)
{
	size_t o = 0;

	while (v < end && o + 4 < size) {
		if (*v == '&' && end - v >= 5 && memcmp(v, "&#38;", 5) == 0) {
			buf[o++] = '&';
			v += 5;
		} else {
			buf[o++] = *v++;
		}
	}
	if (v < end) {
		memcpy(buf + o, "...", 4);
		return true;
	}
	buf[o] = '\0';
	return false;
}

static void root_start(struct map_parse *p, const char *name, int n, const xmlChar **atts)
{
	const char *v, *end;

	p->root_seen = true;
	p->root_line = cur_line(p);
	p->root_is_bmap = name && strcmp(name, "bmap") == 0;
	if (!p->root_is_bmap || p->pass > 1 || !find_attr(n, atts, "version", &v, &end))
		return;
	p->has_version = true;
	p->version_truncated = value_copy(p->version, sizeof(p->version), v, end);
}

static void blockmap_start(struct map_parse *p)
{
	p->blockmap_begun = true;
	p->in_blockmap = true;
	/* A second pass runs only once the whole header is known and valid. */
	p->ranges_live = p->pass > 1 || map_check_header(p, false) == 0;
	if (p->ranges_live) {
		p->ranges_done = true;
		p->map->all_digests = p->map->cs_len > 0;
	}
}

static void field_start(struct map_parse *p, const char *name)
{
	struct map_field *fl;
	int f;

	/* The first byte first: a bmap may hold millions of other elements. */
	for (f = 0; name && f < F_COUNT; f++)
		if (name[0] == map_field_names[f][0] && strcmp(name, map_field_names[f]) == 0)
			break;
	if (!name || f == F_COUNT)
		return;
	fl = &p->fields[f];
	if (f == F_BLOCK_MAP) {
		if (p->blockmap_begun)
			return;
		if (p->pass == 1) {
			fl->seen = true;
			fl->line = cur_line(p);
		}
		blockmap_start(p);
		return;
	}
	if (fl->seen || p->pass > 1)
		return;
	fl->seen = true;
	fl->line = cur_line(p);
	text_reset(&fl->text);
	p->capture = &fl->text;
	p->capture_depth = 2;
	p->capture_range = false;
}

static void range_start(struct map_parse *p, const char *name, const char *full, int n,
			const xmlChar **atts)
{
	const char *cs, *end;

	if (!p->ranges_live || p->range_r)
		return;
	if (!name || strcmp(name, "Range") != 0) {
		range_fail(p, cur_line(p), "unexpected <%s> inside <BlockMap>", full);
		return;
	}
	p->range_line = cur_line(p);
	text_reset(&p->range_text);
	p->capture = &p->range_text;
	p->capture_depth = 3;
	p->capture_range = true;
	p->range_cs = CS_NONE;
	if (p->cs_attr && find_attr(n, atts, p->cs_attr, &cs, &end)) {
		const char *hex = cs;
		size_t hl;

		while (hex < end && is_ws(*hex))
			hex++;
		hl = (size_t)(end - hex);
		while (hl && (hex[hl - 1] == ' ' || hex[hl - 1] == '\t'))
			hl--;
		p->range_cs =
		    hex_decode(hex, hl, p->range_digest, p->map->cs_len) == 0 ? CS_OK : CS_BAD;
		if (p->range_cs == CS_BAD)
			value_copy(p->range_cs_text, sizeof(p->range_cs_text), cs, end);
	}
}

/* Checks the range just ended and keeps it. */
static int range_end(struct map_parse *p)
{
	struct bmap_map *map = p->map;
	const char *text = map_text_get(&p->range_text);
	long line = p->range_line;
	uint64_t first, last;

	if (p->range_text.truncated || parse_range_text(text, &first, &last) < 0)
		return range_fail(p, line, "bad range '%s' (expected 'A-B' or 'N')", text);
	if (first > last)
		return range_fail(p, line, "range %s is reversed", text);
	if (last >= map->blocks_count)
		return range_fail(p, line, "range %s is beyond the image's %" PRIu64 " blocks",
				  text, map->blocks_count);
	if (map->n_ranges) {
		const struct bmap_range *prev = &map->ranges[map->n_ranges - 1];

		if (first <= prev->last)
			return range_fail(p, line,
					  "range %s overlaps or comes before the previous range "
					  "%" PRIu64 "-%" PRIu64 " (ranges must ascend)",
					  text, prev->first, prev->last);
	}
	if (p->range_cs == CS_BAD)
		return range_fail(p, line, "checksum of range %s is not %zu hex digits of %s: '%s'",
				  text, 2 * map->cs_len, map->checksum_type, p->range_cs_text);
	if (map_add_range(map, first, last, p->range_cs == CS_OK ? p->range_digest : NULL) < 0) {
		stop(p, true, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	if (p->range_cs == CS_NONE)
		map->all_digests = false;
	p->sum += last - first + 1;
	return 0;
}

/* Namespace declarations in scope: libxml2 2.9 looks a prefix up linearly
 * among them (and checks one element's pairwise), for every name. */
static bool too_many_namespaces(const struct map_parse *p)
{
	return p->xctx && p->xctx->nsNr > 2 * MAX_NS;
}

static void on_start(void *user, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri,
		     int nb_namespaces, const xmlChar **namespaces, int nb_attributes,
		     int nb_defaulted, const xmlChar **atts)
{
	struct map_parse *p = user;
	const char *name = dom_name(local, prefix, uri);
	char buf[256];
	const char *full = print_name(buf, sizeof(buf), local, prefix, uri);

	(void)namespaces;
	(void)nb_defaulted;
	p->depth++;
	if (nb_attributes > MAX_ATTRS) {
		stop(p, true, -EBADMSG,
		     "bmap file '%s' line %ld: <%s> has more than %d attributes (a bmap's elements "
		     "have one at most)",
		     p->name, cur_line(p), full, MAX_ATTRS);
		return;
	}
	if (nb_namespaces > MAX_NS || too_many_namespaces(p)) {
		stop(
		    p, true, -EBADMSG,
		    "bmap file '%s' line %ld: more than %d XML namespaces are declared around <%s> "
		    "(a bmap needs none)",
		    p->name, cur_line(p), MAX_NS, full);
		return;
	}
	if (p->depth == 1)
		root_start(p, name, nb_attributes, atts);
	else if (!p->root_is_bmap)
		return;
	else if (p->depth == 2)
		field_start(p, name);
	else if (p->depth == 3 && p->in_blockmap)
		range_start(p, name, full, nb_attributes, atts);
}

static void on_end(void *user, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri)
{
	struct map_parse *p = user;

	(void)local;
	(void)prefix;
	(void)uri;
	if (p->capture && p->depth == p->capture_depth) {
		if (p->capture_range)
			(void)range_end(p);
		p->capture = NULL;
	}
	if (p->in_blockmap && p->depth == 2)
		p->in_blockmap = false;
	p->depth--;
}

static void on_text(void *user, const xmlChar *ch, int len)
{
	struct map_parse *p = user;

	if (p->capture)
		text_add(p->capture, ch, len);
}

static void on_doctype(void *user, const xmlChar *name, const xmlChar *external_id,
		       const xmlChar *system_id)
{
	struct map_parse *p = user;

	(void)name;
	(void)external_id;
	(void)system_id;
	/* Before any of it is parsed: no entity ever gets defined. */
	stop(p, true, -EBADMSG, "bmap file '%s': DOCTYPE declarations are not allowed in a bmap",
	     p->name);
}

static int io_read(void *user, char *buf, int len)
{
	struct map_parse *p = user;
	ssize_t n;

	if (p->stop_r)
		return -1;
	/* An element being parsed with too many attributes or namespaces:
	 * refused before libxml2 reaches its end (see the top of this file). */
	if (p->xctx && p->xctx->maxatts > ATTS_EARLY_OUT) {
		stop(p, false, -EBADMSG,
		     "bmap file '%s' line %ld: an element has more than %d attributes (a bmap's "
		     "elements have one at most)",
		     p->name, cur_line(p), MAX_ATTRS);
		return -1;
	}
	if (too_many_namespaces(p)) {
		stop(p, false, -EBADMSG,
		     "bmap file '%s' line %ld: more than %d XML namespaces are declared (a bmap "
		     "needs none)",
		     p->name, cur_line(p), MAX_NS);
		return -1;
	}
	n = map_input_read(p->in, buf, len > 0 ? (size_t)len : 0);
	if (n >= 0)
		return (int)n;
	if (p->in->err == -EFBIG)
		stop(p, false, -EFBIG, "bmap file '%s' is too large (more than %u bytes)", p->name,
		     BMAP_FILE_MAX_SIZE);
	else
		stop(p, false, p->in->err, "cannot read bmap file '%s': %s", p->name,
		     strerror(-p->in->err));
	return -1;
}

int map_parse_pass(struct map_parse *p)
{
	xmlSAXHandler sax;
	xmlParserCtxt *xctx;
	int r;

	memset(&sax, 0, sizeof(sax));
	sax.initialized = XML_SAX2_MAGIC;
	sax.startElementNs = on_start;
	sax.endElementNs = on_end;
	sax.characters = on_text;
	sax.ignorableWhitespace = on_text;
	sax.cdataBlock = on_text;
	sax.internalSubset = on_doctype;
	xctx = xmlCreateIOParserCtxt(&sax, p, io_read, NULL, p, XML_CHAR_ENCODING_NONE);
	if (!xctx)
		return bmap_error(p->ctx, -ENOMEM, "out of memory");
	/* No network, no entity substitution, no DTD loading. */
	xmlCtxtUseOptions(xctx, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	p->xctx = xctx;
	p->depth = 0;
	p->root_seen = p->root_is_bmap = false;
	p->capture = NULL;
	p->blockmap_begun = p->in_blockmap = p->ranges_live = false;

	r = xmlParseDocument(xctx);
	if (p->stop_r) {
		r = bmap_error(p->ctx, p->stop_r, "%s", p->stop_msg);
	} else if (r < 0 || !xctx->wellFormed) {
		const xmlError *e = xmlCtxtGetLastError(xctx);

		r = bmap_error(p->ctx, -EBADMSG, "bmap file '%s' line %d: not well-formed XML: %s",
			       p->name, e ? e->line : 0,
			       e && e->message ? e->message : "parse error\n");
		/* libxml2 ends its messages with a newline. */
		if (p->ctx)
			p->ctx->error[strcspn(p->ctx->error, "\n")] = '\0';
	} else {
		r = 0;
	}
	p->xctx = NULL;
	xmlFreeParserCtxt(xctx);
	return r;
}
