/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What bmaptool's commands do with a self-mapped image (qcow2, Android
 * sparse; see bmaptool.h): take the map it carries when no --bmap is given,
 * say where the map came from, show its header facts (info) and write the
 * bmap of its virtual disk (create).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap.h"
#include "bmaptool.h"
#include "source.h"
#include "util.h"

/* "the qcow2 image's cluster tables" */
static const char *map_origin(enum bmap_format f)
{
	return f == BMAP_FORMAT_QCOW2 ? "the qcow2 image's cluster tables"
				      : "the Android sparse image's chunks";
}

int format_map(struct bmap_ctx *ctx, struct bmap_source *src, const char *image,
	       struct bmap_map **ret_map)
{
	enum bmap_format f = bmap_source_get_format(src);
	char h[32];
	int r;

	*ret_map = NULL;
	if (f == BMAP_FORMAT_RAW)
		return 1;
	r = bmap_source_get_map(src, ret_map);
	if (r == -EAGAIN) {
		info("%s '%s' (a disk of %s): the map comes from its chunks as the image is "
		     "read (a stream); its data carries no checksums but its CRC32 chunks",
		     bmap_format_name(f), image, human_size(bmap_source_get_image_size(src), h));
		return 0;
	}
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	info("%s image '%s' (a disk of %s): the map comes from %s; its data carries no "
	     "checksums%s",
	     bmap_format_name(f), image, human_size(bmap_source_get_image_size(src), h),
	     map_origin(f), f == BMAP_FORMAT_SIMG ? " but its CRC32 chunks" : "");
	return 0;
}

/* ---- info ---- */

/* "a, b" as ["a", "b"]. */
static void json_features(const char *list)
{
	char *copy = strdup(list), *save = NULL, *tok;
	bool first = true;

	printf("[");
	for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		printf("%s", first ? "" : ", ");
		json_write_string(stdout, tok);
		first = false;
	}
	printf("]");
	free(copy);
}

static void json_counts(const struct bmap_format_info *fi)
{
	if (fi->format == BMAP_FORMAT_QCOW2) {
		printf(", \"qcow2\": {\"version\": %s, \"cluster_size\": %" PRIu32
		       ", \"subcluster_size\": %" PRIu32 ", \"compression_type\": \"%s\", "
		       "\"features\": ",
		       fi->version, fi->cluster_size, fi->subcluster_size, fi->compression);
		json_features(fi->features);
		printf(", \"clusters\": {\"allocated\": %" PRIu64 ", \"zero\": %" PRIu64
		       ", \"compressed\": %" PRIu64 ", \"unallocated\": %" PRIu64 "}}",
		       fi->allocated, fi->zero, fi->compressed, fi->unallocated);
	} else {
		printf(", \"simg\": {\"version\": \"%s\", \"block_size\": %" PRIu32
		       ", \"chunks\": {\"raw\": %" PRIu64 ", \"fill\": %" PRIu64
		       ", \"dont_care\": %" PRIu64 ", \"crc32\": %" PRIu64 "}}",
		       fi->version, fi->cluster_size, fi->raw_chunks, fi->fill_chunks,
		       fi->dont_care_chunks, fi->crc_chunks);
	}
}

int format_info(struct bmap_ctx *ctx, const char *image, bool json)
{
	struct bmap_source *src = NULL;
	struct bmap_map *map = NULL;
	struct bmap_format_info fi;
	enum bmap_format f;
	char h1[32], h2[32];
	int r, ret = 1;

	r = bmap_source_open(ctx, image, &src);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		return -1;
	}
	f = bmap_source_get_format(src);
	if (f == BMAP_FORMAT_RAW)
		goto out;
	ret = -1;
	/* A sparse image in a stream: its map is read through the image. */
	r = bmap_source_read_map(src, &map);
	if (r >= 0)
		r = bmap_source_get_format_info(src, &fi);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}
	uint64_t blocks = bmap_map_get_blocks_count(map), mapped = bmap_map_get_mapped_blocks(map);
	double pct = blocks ? (double)mapped * 100.0 / (double)blocks : 0;

	if (json) {
		printf("{\"image\": ");
		json_write_string(stdout, image);
		printf(", \"format\": \"%s\", \"compression\": \"%s\", \"bmap\": null, "
		       "\"bmap_source\": \"image\", \"map_source\": \"%s\", \"version\": null, "
		       "\"image_size\": %" PRIu64 ", \"block_size\": %" PRIu32 ", \"blocks\": %" PRIu64
		       ", \"mapped_blocks\": %" PRIu64 ", \"mapped_bytes\": %" PRIu64
		       ", \"mapped_percent\": %.1f, \"ranges\": %zu, \"checksum_type\": null, "
		       "\"range_checksums\": \"none\", \"bmap_checksum\": \"n/a\", "
		       "\"bmap_sha256\": null",
		       f == BMAP_FORMAT_QCOW2 ? "qcow2" : "simg",
		       bmap_compression_name(bmap_source_get_compression(src)), map_origin(f),
		       fi.virtual_size, bmap_map_get_block_size(map), blocks, mapped,
		       bmap_map_get_mapped_bytes(map), pct, bmap_map_get_range_count(map));
		json_counts(&fi);
		if (bmap_source_get_container(src)) {
			uint64_t msize;

			printf(", \"container\": \"%s\", \"member\": ",
			       bmap_container_name(bmap_source_get_container(src)));
			json_write_string(stdout, bmap_source_get_member(src));
			if (bmap_source_get_member_size(src, &msize))
				printf(", \"member_size\": %" PRIu64, msize);
			else
				printf(", \"member_size\": null");
		} else {
			printf(", \"container\": null, \"member\": null, \"member_size\": null");
		}
		info_partitions(ctx, image, map, true);
		printf("}\n");
	} else {
		printf("image:          %s\n", image);
		printf("format:         %s, version %s\n", bmap_format_name(f), fi.version);
		printf("compression:    %s\n", bmap_compression_name(bmap_source_get_compression(src)));
		/* A sparse image inside a tar (a qcow2 there is refused). */
		if (bmap_source_get_container(src))
			printf("archive:        %s archive, member '%s'\n",
			       bmap_container_name(bmap_source_get_container(src)),
			       bmap_source_get_member(src));
		printf("bmap:           none; the map comes from %s\n", map_origin(f));
		printf("image size:     %" PRIu64 " bytes (%s): the virtual disk\n", fi.virtual_size,
		       human_size(fi.virtual_size, h1));
		if (f == BMAP_FORMAT_QCOW2) {
			printf("cluster size:   %" PRIu32 " bytes", fi.cluster_size);
			if (fi.subcluster_size != fi.cluster_size)
				printf(" (subclusters of %" PRIu32 ")", fi.subcluster_size);
			printf("\nclusters:       %" PRIu64 " allocated, %" PRIu64 " zero, %" PRIu64
			       " compressed (%s), %" PRIu64 " unallocated\n",
			       fi.allocated, fi.zero, fi.compressed, fi.compression, fi.unallocated);
			printf("features:       %s\n", fi.features[0] ? fi.features : "none");
		} else {
			printf("sparse blocks:  %" PRIu32 " bytes\n", fi.cluster_size);
			printf("chunks:         %" PRIu64 " raw, %" PRIu64 " fill, %" PRIu64
			       " don't care, %" PRIu64 " CRC32\n",
			       fi.raw_chunks, fi.fill_chunks, fi.dont_care_chunks, fi.crc_chunks);
		}
		printf("block size:     %" PRIu32 " bytes\n", bmap_map_get_block_size(map));
		printf("blocks:         %" PRIu64 "\n", blocks);
		printf("mapped:         %" PRIu64 " blocks, %s, %.1f%%\n", mapped,
		       human_size(bmap_map_get_mapped_bytes(map), h2), pct);
		printf("ranges:         %zu\n", bmap_map_get_range_count(map));
		printf("checksum type:  none (%s)\n",
		       f == BMAP_FORMAT_SIMG ? "the image's CRC32 chunks were checked" : "qcow2 has none");
		info_partitions(ctx, image, map, false);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		error("cannot write to standard output: %m");
		goto out;
	}
	ret = 0;
out:
	bmap_map_free(map);
	bmap_source_free(src);
	return ret;
}

/* ---- create ---- */

int format_create(struct bmap_ctx *ctx, const char *image, int out_fd, const char *out_name,
		  const struct bmap_create_opts *opts, struct bmap_create_result *ret_result)
{
	struct bmap_source *src = NULL;
	struct bmap_map *map = NULL;
	int r;

	r = bmap_source_open(ctx, image, &src);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		return -1;
	}
	if (bmap_source_get_format(src) == BMAP_FORMAT_RAW) {
		bmap_source_free(src);
		return 1;
	}
	r = bmap_source_get_map(src, &map);
	if (r == -EAGAIN) {
		/* A compressed sparse image: its map is learnt by reading it
		 * once; a second reading hashes its data. */
		r = bmap_source_read_map(src, &map);
		bmap_source_free(src);
		src = NULL;
		if (r >= 0)
			r = bmap_source_open(ctx, image, &src);
	}
	if (r >= 0) {
		info("the map of '%s' comes from %s", image, map_origin(bmap_source_get_format(src)));
		r = bmap_create_from_source(ctx, src, map, out_fd, out_name, opts, ret_result);
	}
	if (r < 0)
		error("%s", bmap_ctx_get_error(ctx));
	bmap_map_free(map);
	bmap_source_free(src);
	return r < 0 ? -1 : 0;
}
