/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The state of one bmap parse, shared by its SAX side (map-parse.c: events
 * into fields and ranges) and its checks (map-check.c: their order, the
 * passes over the file); never installed.
 */
#pragma once

#include <libxml/parser.h>

#include "map-internal.h"

/* Limits of what libxml2 2.9 parses in quadratic time (see map-parse.c):
 * attributes of one element, namespace declarations in scope. */
#define MAX_ATTRS 32
#define MAX_NS 32
/* libxml2 keeps the attributes it parses in ctxt->atts (maxatts entries,
 * grown by doubling, 5 per attribute): an element within MAX_ATTRS never
 * takes it past this. */
#define ATTS_EARLY_OUT (16 * MAX_ATTRS)
/* Longest text kept of an element: no valid value comes near it. */
#define TEXT_MAX 255

enum field {
	F_IMAGE_SIZE,
	F_BLOCK_SIZE,
	F_BLOCKS_COUNT,
	F_MAPPED,
	F_CHECKSUM_TYPE,
	F_FILE_CHECKSUM,
	F_FILE_SHA1,
	F_BLOCK_MAP,
	F_COUNT,
};

/* An element's text content (all text below it, as xmlNodeGetContent()
 * gave it), trimmed; past TEXT_MAX bytes only whether more came is kept. */
struct map_text {
	char s[TEXT_MAX + 4]; /* room for "..." */
	size_t len, trimmed;
	bool started, truncated;
};

struct map_field {
	bool seen; /* the first child of <bmap> of that name; later ones are ignored */
	long line;
	struct map_text text;
};

enum cs_state { CS_NONE, CS_OK, CS_BAD };

struct map_parse {
	struct bmap_ctx *ctx;
	const char *name;
	struct map_input *in;
	xmlParserCtxt *xctx;
	struct bmap_map *map;
	unsigned pass;

	int depth;
	bool root_seen, root_is_bmap;
	long root_line;
	bool has_version, version_truncated;
	char version[68];

	struct map_field fields[F_COUNT];
	uint64_t mapped;     /* MappedBlocksCount */
	const char *cs_attr; /* the ranges' checksum attribute, NULL when none */
	int self_field;	     /* F_FILE_CHECKSUM, F_FILE_SHA1 or -1 */

	struct map_text *capture; /* the element whose text is being collected */
	int capture_depth;
	bool capture_range;

	bool blockmap_begun, in_blockmap; /* the first <BlockMap>, this pass */
	bool ranges_live, ranges_done;	  /* validating and keeping ranges */
	long range_line;
	struct map_text range_text;
	enum cs_state range_cs;
	uint8_t range_digest[BMAP_DIGEST_MAX];
	char range_cs_text[256];
	uint64_t sum;

	/* Failures kept until their turn: the first bad range, and what stopped
	 * the parser (a DOCTYPE, too many attributes, a read error). */
	int range_r, stop_r;
	char range_msg[1024], stop_msg[1024];
};

extern const char *const map_field_names[F_COUNT];

/* ---- map-parse.c ---- */

/* One pass of libxml2 over p->in (already begun). 0, or the failure that
 * stopped it or the XML's, recorded in p->ctx. */
int map_parse_pass(struct map_parse *p);
/* The element's trimmed text ("..." appended when cut at TEXT_MAX). */
char *map_text_get(struct map_text *t);
/* Parses a decimal number surrounded by optional whitespace. */
int map_parse_u64(const char *s, uint64_t *ret);
const char *map_skip_ws(const char *s);
/* Records "bmap file 'NAME'[ line N]: MESSAGE" in p->ctx, returns -EBADMSG. */
int map_perr(struct map_parse *p, long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* In a check that only asks "is the header complete and valid yet?" nothing
 * is reported: the final check reports, in order. */
#define MAP_FAIL(report, p, line, ...) ((report) ? map_perr((p), (line), __VA_ARGS__) : -EBADMSG)

/* ---- map-check.c ---- */

/* @report: the final check, which reports the first failure; otherwise the
 * check at <BlockMap>'s start: can the ranges be validated as they come?
 * (MappedBlocksCount may still follow: version 1.2 put it after them.) */
int map_check_header(struct map_parse *p, bool report);
