/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool info: what is known about an image before flashing it (its map's
 * origin, version, sizes, ranges, checksums, compression), as text or JSON.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "bmaptool.h"
#include "source.h"
#include "util.h"

static const char info_help[] =
	"Usage: bmaptool info [OPTIONS] IMAGE\n"
	"\n"
	"Show what is known about IMAGE before flashing it: where its block map comes\n"
	"from (the --bmap file, a bmap discovered next to the image, the holes of a\n"
	"raw sparse image, or the map a qcow2 or Android sparse image carries), the\n"
	"format version, sizes, mapped blocks, ranges, the checksum type, whether the\n"
	"bmap's own checksum is good, and the image's compression (detected from its\n"
	"magic bytes). For a qcow2 image: its version, cluster size, allocated, zero,\n"
	"compressed and unallocated clusters and features; for a sparse image: its\n"
	"chunks. For every image: its partition table and each partition's start,\n"
	"size, file system, label and mapped bytes (libblkid reads the image's data).\n"
	"\n"
	"IMAGE may be an http://, https://, ftp:// or file: URL: its first bytes are\n"
	"fetched for the compression, and its bmap is --bmap or found next to it\n"
	"(\".bmap\" added to the URL's path, then each extension taken off).\n"
	"\n"
	"Options:\n"
	"  -b, --bmap FILE      use this bmap file (or URL) instead of discovering one\n"
	"      --json           print one JSON object\n"
	"      --insecure       do not check the certificate of an https server\n"
	"  -q, --quiet          print errors only\n"
	"  -d, --debug          print debugging messages\n"
	"  -h, --help           show this help\n";

static int detect_file_compression(const char *path, enum bmap_compression *ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t magic[16];
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = loop_read(fd, magic, sizeof(magic));
	if (n < 0)
		return (int)n;
	*ret = bmap_compression_detect(magic, (size_t)n);
	return 0;
}

/* An image URL's compression (from its first bytes: one request, cut off
 * there) and its bmap's location (--bmap, or discovered). Prints what went
 * wrong. */
static int url_facts(struct bmap_ctx *ctx, const char *image, const char *bmap_arg,
		     enum bmap_compression *ret_comp, char **ret_bmap)
{
	struct bmap_source *src = NULL;
	_cleanup_free_ char *name = shown(image);
	int r;

	r = bmap_source_open_cancel(ctx, image, interrupt_fd(), &src);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		return r;
	}
	*ret_comp = bmap_source_get_compression(src);
	bmap_source_free(src);
	if (bmap_arg) {
		*ret_bmap = strdup(bmap_arg);
		r = *ret_bmap ? 0 : -ENOMEM;
	} else {
		r = bmap_discover_url(ctx, image, ret_bmap);
	}
	if (r == -ENOENT)
		error("no bmap found for %s image '%s' (looked for IMAGE.bmap and the names "
		      "without each extension); give one with --bmap",
		      bmap_compression_name(*ret_comp), name);
	else if (r < 0)
		error("%s", bmap_ctx_get_error(ctx));
	return r;
}

int cmd_info(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bmap", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'J' },
		URL_LONGOPTS,
		COMMON_LONGOPTS,
		{}
	};
	const char *bmap_arg = NULL, *image, *source;
	_cleanup_free_ char *bmap_path = NULL, *name = NULL, *bmap_name = NULL;
	struct bmap_map *map = NULL;
	enum bmap_compression comp = BMAP_COMP_RAW;
	struct bmap_ctx *ctx;
	bool json = false;
	struct stat st;
	char h1[32], h2[32], sha[65];
	int c, r, ret = EXIT_FAILURE;

	while ((c = getopt_long(argc, argv, "b:hqd", longopts, NULL)) != -1) {
		if (handle_common(c))
			continue;
		switch (c) {
		case 'b':
			bmap_arg = optarg;
			break;
		case 'J':
			json = true;
			break;
		case 'h':
			fputs(info_help, stdout);
			return EXIT_SUCCESS;
		default:
			return usage_error("info ", "bad usage");
		}
	}
	if (argc - optind != 1)
		return usage_error("info ", argc - optind ? "too many arguments"
							 : "the IMAGE argument is missing");
	image = argv[optind];
	ctx = ctx_new();
	name = shown(image);

	if (bmap_location_is_url(image)) {
		r = url_facts(ctx, image, bmap_arg, &comp, &bmap_path);
		if (r < 0)
			goto out;
		source = bmap_arg ? "given" : "discovered";
		r = bmap_map_load_location(ctx, bmap_path, &map);
		goto loaded;
	}
	if (stat(image, &st) < 0) {
		error("cannot open image file '%s': %m", image);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		error("image file '%s' is a directory", image);
		goto out;
	}
	if (!bmap_arg) {
		r = format_info(ctx, image, json);
		if (r <= 0) {
			ret = r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
			goto out;
		}
	}
	r = detect_file_compression(image, &comp);
	if (r < 0) {
		error("cannot read image file '%s': %s", image, strerror(-r));
		goto out;
	}

	if (bmap_arg) {
		source = "given";
		bmap_path = strdup(bmap_arg);
	} else if (bmap_discover(image, &bmap_path) == 0) {
		source = "discovered";
	} else if (comp == BMAP_COMP_RAW && S_ISREG(st.st_mode)) {
		source = "computed";
	} else {
		error("no bmap found for %s image '%s' (looked for IMAGE.bmap and the names "
		      "without each extension); give one with --bmap",
		      bmap_compression_name(comp), image);
		goto out;
	}
	if (strcmp(source, "computed") == 0) {
		_cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			error("cannot open image file '%s': %m", image);
			goto out;
		}
		r = bmap_map_from_file(ctx, fd, image, 4096, &map);
	} else {
		if (bmap_arg && strcmp(bmap_arg, image) == 0) {
			error("the bmap file and the image file are the same file '%s'", image);
			goto out;
		}
		r = bmap_map_load_location(ctx, bmap_path, &map);
	}
loaded:
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}

	uint64_t mapped = bmap_map_get_mapped_blocks(map);
	uint64_t blocks = bmap_map_get_blocks_count(map);
	double pct = blocks ? (double)mapped * 100.0 / (double)blocks : 0;
	const char *cstype = bmap_map_get_checksum_type(map);
	const char *self = !strcmp(source, "computed")       ? "n/a"
			   : bmap_map_has_self_checksum(map) ? "good"
							     : "absent";
	const char *ranges_cs = bmap_map_has_range_checksums(map) ? "every range"
				: cstype && bmap_map_get_range_count(map) &&
						bmap_map_get_range_checksum(map, 0)
					? "some ranges"
					: "none";
	const char *version = bmap_map_get_version(map);

	if (strcmp(source, "computed") == 0)
		sha[0] = '\0';
	else
		hex_encode(bmap_map_get_file_sha256(map), 32, sha);

	if (json) {
		bmap_name = shown(bmap_path ? bmap_path : "");
		printf("{\"image\": ");
		json_write_string(stdout, name);
		printf(", \"compression\": \"%s\", \"bmap\": ", bmap_compression_name(comp));
		if (strcmp(source, "computed") == 0)
			printf("null");
		else
			json_write_string(stdout, bmap_name);
		printf(", \"bmap_source\": \"%s\", \"version\": ", source);
		if (*version)
			json_write_string(stdout, version);
		else
			printf("null");
		printf(", \"image_size\": %" PRIu64 ", \"block_size\": %" PRIu32
		       ", \"blocks\": %" PRIu64 ", \"mapped_blocks\": %" PRIu64
		       ", \"mapped_bytes\": %" PRIu64 ", \"mapped_percent\": %.1f"
		       ", \"ranges\": %zu, \"checksum_type\": ",
		       bmap_map_get_image_size(map), bmap_map_get_block_size(map), blocks, mapped,
		       bmap_map_get_mapped_bytes(map), pct, bmap_map_get_range_count(map));
		if (cstype)
			json_write_string(stdout, cstype);
		else
			printf("null");
		printf(", \"range_checksums\": \"%s\", \"bmap_checksum\": \"%s\", "
		       "\"bmap_sha256\": ",
		       ranges_cs, self);
		if (sha[0])
			printf("\"%s\"", sha);
		else
			printf("null");
		info_partitions(ctx, image, map, true);
		printf("}\n");
	} else {
		bmap_name = shown(bmap_path ? bmap_path : "");
		printf("image:          %s\n", name);
		printf("compression:    %s\n", bmap_compression_name(comp));
		if (strcmp(source, "computed") == 0)
			printf("bmap:           none; computed from the holes of the image\n");
		else
			printf("bmap:           %s (%s)\n", bmap_name, source);
		if (*version)
			printf("format version: %s\n", version);
		printf("image size:     %" PRIu64 " bytes (%s)\n", bmap_map_get_image_size(map),
		       human_size(bmap_map_get_image_size(map), h1));
		printf("block size:     %" PRIu32 " bytes\n", bmap_map_get_block_size(map));
		printf("blocks:         %" PRIu64 "\n", blocks);
		printf("mapped:         %" PRIu64 " blocks, %s, %.1f%%\n", mapped,
		       human_size(bmap_map_get_mapped_bytes(map), h2), pct);
		printf("ranges:         %zu\n", bmap_map_get_range_count(map));
		printf("checksum type:  %s (%s)\n", cstype ? cstype : "none", ranges_cs);
		printf("bmap checksum:  %s\n", self);
		if (sha[0])
			printf("bmap sha256:    %s\n", sha);
		info_partitions(ctx, image, map, false);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		error("cannot write to standard output: %m");
		goto out;
	}
	ret = EXIT_SUCCESS;
out:
	bmap_map_free(map);
	bmap_ctx_free(ctx);
	return ret;
}
