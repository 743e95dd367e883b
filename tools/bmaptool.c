/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool: a drop-in C implementation of the bmap tool. This file is the
 * command-line front end only: option parsing, messages and exit codes for
 * one destination (several: bmaptool-multi.c); the work is done by libbmap.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "bmaptool.h"
#include "bmaptool-multi.h"
#include "source.h"
#include "util.h"
#include "version.h"

/* Options every command takes as well. */
enum { OPT_COMMON_HELP = 'h', OPT_COMMON_QUIET = 'q', OPT_COMMON_DEBUG = 'd' };
#define COMMON_LONGOPTS                                                                      \
	{ "help", no_argument, NULL, 'h' }, { "quiet", no_argument, NULL, 'q' },             \
	{ "debug", no_argument, NULL, 'd' }

static bool handle_common(int c)
{
	switch (c) {
	case 'q':
		log_max = BMAP_LOG_ERROR;
		return true;
	case 'd':
		log_max = BMAP_LOG_DEBUG;
		return true;
	default:
		return false;
	}
}

/* ---- create ---- */

static const char create_help[] =
	"Usage: bmaptool create [OPTIONS] IMAGE\n"
	"\n"
	"Generate the block map (bmap, format 2.0) of a sparse image file: the ranges\n"
	"of blocks that hold data, each with its SHA-256 checksum. The output is byte\n"
	"for byte what the reference bmaptool 3.6 writes. For a qcow2 or Android\n"
	"sparse image it is the bmap of the virtual disk: the image's own map rounded\n"
	"out to the blocks, checksums of the disk's data.\n"
	"\n"
	"Options:\n"
	"  -o, --output FILE    write the bmap to FILE (default: standard output)\n"
	"      --blocksize N    block size in bytes, a power of two >= 512 (default 4096)\n"
	"      --no-checksum    do not put checksums of the ranges in the bmap\n"
	"  -q, --quiet          print errors only\n"
	"  -d, --debug          print debugging messages\n"
	"  -h, --help           show this help\n";

/* Copies the finished bmap in @fd to @out_fd. */
static int copy_out(int fd, int out_fd)
{
	char buf[65536];
	uint64_t off = 0;

	for (;;) {
		ssize_t n = loop_pread(fd, buf, sizeof(buf), off);
		int r;

		if (n < 0)
			return (int)n;
		if (n == 0)
			return 0;
		r = loop_write(out_fd, buf, (size_t)n);
		if (r < 0)
			return r;
		off += (uint64_t)n;
	}
}

static int cmd_create(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "blocksize", required_argument, NULL, 'B' },
		{ "no-checksum", no_argument, NULL, 'N' },
		COMMON_LONGOPTS,
		{}
	};
	struct bmap_create_opts opts = { .block_size = 4096 };
	struct bmap_create_result res;
	const char *output = NULL, *image;
	_cleanup_close_ int img_fd = -1, out_fd = -1;
	int stream_fd = -1;
	bool created = false;
	struct bmap_ctx *ctx;
	int c, r, ret = EXIT_FAILURE;

	while ((c = getopt_long(argc, argv, "o:hqd", longopts, NULL)) != -1) {
		uint64_t v;

		if (handle_common(c))
			continue;
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'B':
			if (parse_size(optarg, &v) < 0 || v < 512 || v > (1u << 30) ||
			    (v & (v - 1)))
				return usage_error("create ",
						   "invalid --blocksize '%s': a power of two from "
						   "512 to 1G is needed",
						   optarg);
			opts.block_size = (uint32_t)v;
			break;
		case 'N':
			opts.no_checksum = true;
			break;
		case 'h':
			fputs(create_help, stdout);
			return EXIT_SUCCESS;
		default:
			return usage_error("create ", "bad usage");
		}
	}
	if (argc - optind != 1)
		return usage_error("create ", argc - optind ? "too many arguments"
							   : "the IMAGE argument is missing");
	image = argv[optind];

	ctx = ctx_new();
	img_fd = open(image, O_RDONLY | O_CLOEXEC);
	if (img_fd < 0) {
		error("cannot open image file '%s': %m", image);
		goto out;
	}

	/* The writer patches its placeholders in place and hashes the result,
	 * so it needs a seekable, readable file. A regular OUTPUT is written in
	 * place, as the reference does (through symlinks, keeping its mode);
	 * standard output, a FIFO or a device get a finished copy from a
	 * temporary file in $TMPDIR. */
	if (output) {
		struct stat st;

		if (stat(output, &st) == 0 && !S_ISREG(st.st_mode)) {
			if (S_ISDIR(st.st_mode)) {
				error("the output '%s' is a directory", output);
				goto out;
			}
			stream_fd = open(output, O_WRONLY | O_CLOEXEC);
			if (stream_fd < 0) {
				error("cannot open the output '%s': %m", output);
				goto out;
			}
		} else {
			created = stat(output, &st) < 0;
			out_fd = open(output, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
			if (out_fd < 0) {
				error("cannot open the output file '%s': %m", output);
				goto out;
			}
		}
	} else {
		stream_fd = STDOUT_FILENO;
	}
	if (out_fd < 0) {
		const char *dir = getenv("TMPDIR");

		out_fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (out_fd < 0) {
			error("cannot create a temporary file in '%s': %m",
			      dir && *dir ? dir : "/tmp");
			goto out;
		}
	}

	r = format_create(ctx, image, out_fd, output ? output : "(standard output)", &opts, &res);
	if (r < 0)
		goto out;
	if (r == 1)
		r = bmap_create(ctx, img_fd, image, out_fd, output ? output : "(standard output)",
				&opts, &res);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}
	if (stream_fd >= 0) {
		r = copy_out(out_fd, stream_fd);
		if (r < 0) {
			error("cannot write the bmap to %s: %s", output ? output : "standard output",
			      strerror(-r));
			goto out;
		}
	} else if (fsync(out_fd) < 0) {
		error("cannot write the output file '%s': %m", output);
		goto out;
	}
	if (res.mapped_blocks == res.blocks_count) {
		char human[32];

		warning("all %s are mapped, no holes in '%s'", human_size(res.image_size, human),
			image);
		warning("was the image handled incorrectly and holes were expanded?");
	}
	ret = EXIT_SUCCESS;
out:
	/* Never leave half a bmap behind: a file we created goes, one we
	 * truncated stays empty. */
	if (ret != EXIT_SUCCESS && created)
		unlink(output);
	else if (ret != EXIT_SUCCESS && output && stream_fd < 0 && out_fd >= 0)
		(void)!ftruncate(out_fd, 0);
	if (stream_fd >= 0 && stream_fd != STDOUT_FILENO)
		close(stream_fd);
	bmap_ctx_free(ctx);
	return ret;
}

/* ---- info ---- */

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
	"chunks.\n"
	"\n"
	"Options:\n"
	"  -b, --bmap FILE      use this bmap file instead of discovering one\n"
	"      --json           print one JSON object\n"
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

static int cmd_info(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bmap", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'J' },
		COMMON_LONGOPTS,
		{}
	};
	const char *bmap_arg = NULL, *image, *source;
	_cleanup_free_ char *bmap_path = NULL;
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
		r = bmap_map_load(ctx, bmap_path, &map);
	}
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
		printf("{\"image\": ");
		json_write_string(stdout, image);
		printf(", \"compression\": \"%s\", \"bmap\": ", bmap_compression_name(comp));
		if (strcmp(source, "computed") == 0)
			printf("null");
		else
			json_write_string(stdout, bmap_path);
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
			printf("\"%s\"}\n", sha);
		else
			printf("null}\n");
	} else {
		printf("image:          %s\n", image);
		printf("compression:    %s\n", bmap_compression_name(comp));
		if (strcmp(source, "computed") == 0)
			printf("bmap:           none; computed from the holes of the image\n");
		else
			printf("bmap:           %s (%s)\n", bmap_path, source);
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

/* ---- copy and verify ---- */

static const char copy_help[] =
	"Usage: bmaptool copy [OPTIONS] IMAGE DEST [DEST...]\n"
	"\n"
	"Copy the mapped blocks of IMAGE (a file, or '-' for standard input; raw or\n"
	"compressed with zstd, gzip, xz, bzip2 or lz4, recognised by magic bytes) to\n"
	"DEST, a block device or a regular file. Each range's checksum is checked as\n"
	"its data passes. The bmap is --bmap FILE, or the map a qcow2 or Android\n"
	"sparse image carries (the data of its virtual disk; a sparse image may be\n"
	"compressed or come from a pipe), or found next to the image (IMAGE.bmap,\n"
	"then the name without each extension), or, for a raw sparse image, computed\n"
	"from its holes.\n"
	"\n"
	"A block device must be a whole disk, not mounted or held, not read-only and\n"
	"big enough; it is checked before any byte is written, locked while writing,\n"
	"and synced when copy returns.\n"
	"\n"
	"With several DESTs the image is read and decoded once and written to all of\n"
	"them at once; each is guarded, written, synced and reported on its own (its\n"
	"lines start with its name), and one failing or pulled does not stop the\n"
	"others. A compressed image or a pipe is decoded into a spill file in $TMPDIR\n"
	"or /var/tmp (deleted at once), so a slow card never holds back a fast one.\n"
	"A summary names the destinations that failed; the exit status is 0 only when\n"
	"all succeeded. The same device or file named twice is a usage error.\n"
	"\n"
	"Options:\n"
	"  -b, --bmap FILE          the bmap file to use\n"
	"      --nobmap             copy every byte of the image, without a bmap\n"
	"      --no-verify          do not check the ranges' checksums while copying\n"
	"      --psplash-pipe PIPE  write 'PROGRESS n' lines to the psplash FIFO PIPE\n"
	"      --removable-device   refuse DEST unless it is a removable device\n"
	"      --discard            after copying, discard (TRIM) the unmapped ranges of\n"
	"                           the image on DEST (BLKDISCARD; holes in a file), so\n"
	"                           the card knows they are free; never past the image\n"
	"  -q, --quiet              print errors only\n"
	"  -d, --debug              print debugging messages\n"
	"  -h, --help               show this help\n";

/* --discard, once the image is written: the unmapped ranges are discarded
 * (never past the image's end). A device that cannot is warned about only. */
static int discard_unmapped(struct bmap_ctx *ctx, struct bmap_target *dst,
			    const struct bmap_map *map, const char *dest)
{
	struct bmap_discard_result res;
	char h[32];
	int r;

	if (!map) {
		info("--discard: nothing to discard with --nobmap (every byte was written)");
		return 0;
	}
	r = bmap_target_discard_unmapped(ctx, dst, map, &interrupted, &res);
	if (r < 0) {
		error("%s; the image itself was written and synced", bmap_ctx_get_error(ctx));
		return r;
	}
	if (res.unsupported)
		warning("%s '%s' does not support discard: the unmapped ranges were not discarded",
			res.punched ? "the file system of" : "device", dest);
	else
		info("discarded %s (%" PRIu64 " bytes) in %" PRIu64 " unmapped ranges of '%s'%s",
		     human_size(res.bytes, h), res.bytes, res.ranges, dest,
		     res.punched ? " (holes punched in the file)" : "");
	return 0;
}

static int cmd_copy(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bmap", required_argument, NULL, 'b' },
		{ "nobmap", no_argument, NULL, 'n' },
		{ "no-verify", no_argument, NULL, 'V' },
		{ "psplash-pipe", required_argument, NULL, 'P' },
		{ "removable-device", no_argument, NULL, 'R' },
		{ "discard", no_argument, NULL, 'D' },
		COMMON_LONGOPTS,
		{}
	};
	const char *bmap_arg = NULL, *image, *dest;
	bool nobmap = false, removable = false, discard = false;
	struct bmap_copy_opts copts = { .cancel = &interrupted };
	struct progress prog = { .last_percent = -1 };
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE };
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	struct bmap_map *map = NULL;
	struct bmap_copy_result res;
	struct bmap_ctx *ctx;
	int c, r, ret = EXIT_FAILURE;

	while ((c = getopt_long(argc, argv, "b:hqd", longopts, NULL)) != -1) {
		if (handle_common(c))
			continue;
		switch (c) {
		case 'b':
			bmap_arg = optarg;
			break;
		case 'n':
			nobmap = true;
			break;
		case 'V':
			copts.no_verify = true;
			break;
		case 'P':
			prog.psplash = optarg;
			break;
		case 'R':
			removable = true;
			break;
		case 'D':
			discard = true;
			break;
		case 'h':
			fputs(copy_help, stdout);
			return EXIT_SUCCESS;
		default:
			return usage_error("copy ", "bad usage");
		}
	}
	if (argc - optind < 2)
		return usage_error("copy ", "IMAGE and DEST are needed");
	if (nobmap && bmap_arg)
		return usage_error("copy ", "--nobmap and --bmap cannot be used together");
	if (argc - optind > 2)
		return multi_run(&(struct multi_args){
			.image = argv[optind], .bmap = bmap_arg, .nobmap = nobmap,
			.no_verify = copts.no_verify, .removable = removable, .discard = discard,
			.psplash = prog.psplash, .dests = argv + optind + 1,
			.n_dests = (size_t)(argc - optind - 1) });
	image = argv[optind];
	dest = argv[optind + 1];

	ctx = ctx_new();
	catch_signals();
	if (open_image(ctx, image, bmap_arg, nobmap, "copy", &src, &map) < 0)
		goto out;
	/* No map without --nobmap: a sparse image's, as it streams. */
	copts.source_map = !map && !nobmap;

	if (map)
		topts.image_size = bmap_map_get_image_size(map);
	else
		topts.image_size = bmap_source_get_image_size(src);
	topts.removable_only = removable;
	r = bmap_target_open(ctx, dest, &topts, &dst);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}
	if (map && bmap_target_is_blockdev(dst) && bmap_map_has_range_checksums(map) &&
	    copts.no_verify)
		info("--no-verify: the ranges' checksums are not checked");
	print_map_info(map);
	info("copying image '%s' to %s '%s'", image,
	     bmap_target_is_blockdev(dst) ? "block device" : "file", dest);

	progress_setup(&prog, &copts);
	r = bmap_copy(ctx, src, map, dst, &copts, &res);
	progress_end(&prog);
	if (r < 0) {
		if (r == -EINTR)
			error("interrupted; '%s' was synced and closed, its content is incomplete",
			      dest);
		else
			error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}
	/* A stream's own map is complete once it was copied. */
	if (discard && copts.source_map && bmap_source_get_map(src, &map) < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}
	if (discard && discard_unmapped(ctx, dst, map, dest) < 0)
		goto out;
	{
		char t[32], sp[32], hex[65];

		hex_encode(res.data_sha256, 32, hex);
		info("synchronizing '%s'", dest);
		info("copying time: %s, copying speed %s/sec", human_time(res.seconds, t),
		     human_size(res.seconds > 0 ? (uint64_t)((double)res.bytes_written / res.seconds)
						: res.bytes_written,
				sp));
		info("sha256 of the data written: %s", hex);
	}
	ret = EXIT_SUCCESS;
out:
	bmap_target_free(dst);
	bmap_map_free(map);
	bmap_source_free(src);
	bmap_ctx_free(ctx);
	return ret;
}

static const char verify_help[] =
	"Usage: bmaptool verify [OPTIONS] IMAGE DEST [DEST...]\n"
	"\n"
	"Read DEST (a block device or a file) back from the media, bypassing the page\n"
	"cache, and check every mapped range against the bmap's checksums. When the\n"
	"bmap has no checksums, with --nobmap, or for a qcow2 or Android sparse image\n"
	"and its own map, DEST is compared byte for byte with IMAGE (decompressed as\n"
	"needed; the virtual disk of such an image). Prints the SHA-256 over all\n"
	"mapped data as read back, the same digest 'copy' prints for what it wrote.\n"
	"\n"
	"With several DESTs all are read back at the same time, each reported on its\n"
	"own (its lines start with its name), then a summary names those that failed.\n"
	"A compressed image or a pipe needed for a byte comparison is decoded once,\n"
	"into a spill file in $TMPDIR or /var/tmp (deleted at once).\n"
	"\n"
	"Options:\n"
	"  -b, --bmap FILE      the bmap file to use\n"
	"      --nobmap         compare every byte of the image with DEST\n"
	"  -q, --quiet          print errors only\n"
	"  -d, --debug          print debugging messages\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 when everything matches (on every DEST), 1 when something does\n"
	"not (the first bad range is named) or on failure, 2 on usage errors.\n";

static int cmd_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bmap", required_argument, NULL, 'b' },
		{ "nobmap", no_argument, NULL, 'n' },
		COMMON_LONGOPTS,
		{}
	};
	const char *bmap_arg = NULL, *image, *dest;
	bool nobmap = false;
	struct bmap_copy_opts copts = { .cancel = &interrupted };
	struct progress prog = { .last_percent = -1 };
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_READ };
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	struct bmap_map *map = NULL;
	struct bmap_verify_result res;
	struct bmap_ctx *ctx;
	int c, r, ret = EXIT_FAILURE;

	while ((c = getopt_long(argc, argv, "b:hqd", longopts, NULL)) != -1) {
		if (handle_common(c))
			continue;
		switch (c) {
		case 'b':
			bmap_arg = optarg;
			break;
		case 'n':
			nobmap = true;
			break;
		case 'h':
			fputs(verify_help, stdout);
			return EXIT_SUCCESS;
		default:
			return usage_error("verify ", "bad usage");
		}
	}
	if (argc - optind < 2)
		return usage_error("verify ", "IMAGE and DEST are needed");
	if (nobmap && bmap_arg)
		return usage_error("verify ", "--nobmap and --bmap cannot be used together");
	if (argc - optind > 2)
		return multi_run(&(struct multi_args){
			.verify = true, .image = argv[optind], .bmap = bmap_arg, .nobmap = nobmap,
			.dests = argv + optind + 1, .n_dests = (size_t)(argc - optind - 1) });
	image = argv[optind];
	dest = argv[optind + 1];

	ctx = ctx_new();
	catch_signals();
	if (open_image(ctx, image, bmap_arg, nobmap, "verify", &src, &map) < 0)
		goto out;
	copts.source_map = !map && !nobmap;
	r = bmap_target_open(ctx, dest, &topts, &dst);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}
	if (map && bmap_target_get_size(dst) < bmap_map_get_image_size(map)) {
		error("'%s' is smaller (%" PRIu64 " bytes) than the image (%" PRIu64 " bytes)", dest,
		      bmap_target_get_size(dst), bmap_map_get_image_size(map));
		goto out;
	}
	info("verifying '%s' against %s", dest,
	     map && bmap_map_has_range_checksums(map) ? "the bmap's checksums"
						      : "the image, byte for byte");
	progress_setup(&prog, &copts);
	r = bmap_verify(ctx, dst, map, src, &copts, &res);
	progress_end(&prog);
	if (r < 0 && r != -EBADMSG) {
		error("%s", r == -EINTR ? "interrupted" : bmap_ctx_get_error(ctx));
		goto out;
	}
	if (r == -EBADMSG) {
		error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}
	{
		char t[32], sz[32], sp[32], hex[65];

		hex_encode(res.data_sha256, 32, hex);
		info("verified %s in %s (%s/sec): everything matches",
		     human_size(res.bytes_read, sz), human_time(res.seconds, t),
		     human_size(res.seconds > 0 ? (uint64_t)((double)res.bytes_read / res.seconds)
						: res.bytes_read,
				sp));
		info("sha256 of the data read back: %s", hex);
	}
	ret = EXIT_SUCCESS;
out:
	bmap_target_free(dst);
	bmap_map_free(map);
	bmap_source_free(src);
	bmap_ctx_free(ctx);
	return ret;
}

/* ---- main ---- */

static const char main_help[] =
	"Usage: bmaptool [OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"Flash disk images quickly with block maps (bmap files), and check the result.\n"
	"\n"
	"Commands:\n"
	"  create    generate the bmap of a sparse image file\n"
	"  copy      write an image's mapped blocks to a device or file\n"
	"  verify    read a device or file back and check it against the image\n"
	"  info      show an image's block map, sizes and compression\n"
	"\n"
	"Options:\n"
	"  -q, --quiet      print errors only\n"
	"  -d, --debug      print debugging messages\n"
	"  -h, --help       show this help ('bmaptool COMMAND --help' for a command)\n"
	"      --version    show the version\n"
	"\n"
	"Messages go to standard error. Exit status: 0 success, 1 failure, 2 usage error.\n";

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "version", no_argument, NULL, 'V' },
		COMMON_LONGOPTS,
		{}
	};
	static const struct {
		const char *name;
		int (*fn)(int argc, char **argv);
	} commands[] = {
		{ "create", cmd_create },
		{ "copy", cmd_copy },
		{ "verify", cmd_verify },
		{ "info", cmd_info },
	};
	int c;

	/* '+': stop at the command name; its options are its own. */
	while ((c = getopt_long(argc, argv, "+hqd", longopts, NULL)) != -1) {
		if (handle_common(c))
			continue;
		switch (c) {
		case 'V':
			printf("bmaptool %s\n", BMAP_STATION_VERSION);
			return EXIT_SUCCESS;
		case 'h':
			fputs(main_help, stdout);
			return EXIT_SUCCESS;
		default:
			return usage_error(NULL, "bad usage");
		}
	}
	if (optind >= argc)
		return usage_error(NULL, "no command given");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			argv += optind;
			argc -= optind;
			optind = 1;
			return commands[i].fn(argc, argv);
		}
	}
	return usage_error(NULL, "unknown command '%s'", argv[optind]);
}
