/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool: a drop-in C implementation of the bmap tool. This file is the
 * command-line front end only: option parsing, messages and exit codes;
 * the work is done by libbmap.
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
#include "util.h"
#include "version.h"

#define EXIT_USAGE 2

static enum bmap_log_level log_max = BMAP_LOG_INFO;

__attribute__((format(printf, 2, 3))) static void msg(enum bmap_log_level level,
						      const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if (level > log_max)
		return;
	fprintf(stderr, "bmaptool: %s: ", names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define error(...) msg(BMAP_LOG_ERROR, __VA_ARGS__)
#define warning(...) msg(BMAP_LOG_WARNING, __VA_ARGS__)
#define info(...) msg(BMAP_LOG_INFO, __VA_ARGS__)

static void lib_log(void *userdata, enum bmap_log_level level, const char *text)
{
	(void)userdata;
	msg(level, "%s", text);
}

static struct bmap_ctx *ctx_new(void)
{
	struct bmap_ctx *ctx = bmap_ctx_new();

	if (!ctx) {
		error("out of memory");
		exit(EXIT_FAILURE);
	}
	bmap_ctx_set_log_fn(ctx, lib_log, NULL);
	return ctx;
}

static int usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bmaptool: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'bmaptool %s--help' for more information.\n", cmd ? cmd : "");
	return EXIT_USAGE;
}

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
	"for byte what the reference bmaptool 3.6 writes.\n"
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
	_cleanup_free_ char *tmp_path = NULL;
	_cleanup_close_ int img_fd = -1, out_fd = -1;
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
	 * so it writes a seekable temporary file: next to OUTPUT (renamed over
	 * it when complete, so a failure never leaves half a bmap), or in
	 * $TMPDIR when the bmap goes to standard output. */
	if (output) {
		if (asprintf(&tmp_path, "%s.tmpXXXXXX", output) < 0) {
			error("out of memory");
			goto out;
		}
		out_fd = mkostemp(tmp_path, O_CLOEXEC);
		if (out_fd < 0) {
			error("cannot create the output file '%s': %m", output);
			free(tmp_path);
			tmp_path = NULL;
			goto out;
		}
		/* mkostemp makes 0600; give the bmap the usual mode. */
		mode_t mask = umask(0);

		umask(mask);
		fchmod(out_fd, 0666 & ~mask);
	} else {
		const char *dir = getenv("TMPDIR");

		out_fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (out_fd < 0) {
			error("cannot create a temporary file in '%s': %m",
			      dir && *dir ? dir : "/tmp");
			goto out;
		}
	}

	r = bmap_create(ctx, img_fd, image, out_fd, output ? output : "(standard output)", &opts,
			&res);
	if (r < 0) {
		error("%s", bmap_ctx_get_error(ctx));
		goto out;
	}
	if (output) {
		if (fsync(out_fd) < 0 || rename(tmp_path, output) < 0) {
			error("cannot write the output file '%s': %m", output);
			goto out;
		}
		free(tmp_path);
		tmp_path = NULL;
	} else {
		r = copy_out(out_fd, STDOUT_FILENO);
		if (r < 0) {
			error("cannot write the bmap to standard output: %s", strerror(-r));
			goto out;
		}
	}
	if (res.mapped_blocks == res.blocks_count) {
		char human[32];

		warning("all %s are mapped, no holes in '%s'", human_size(res.image_size, human),
			image);
		warning("was the image handled incorrectly and holes were expanded?");
	}
	ret = EXIT_SUCCESS;
out:
	if (tmp_path)
		unlink(tmp_path);
	bmap_ctx_free(ctx);
	return ret;
}

/* ---- info ---- */

static const char info_help[] =
	"Usage: bmaptool info [OPTIONS] IMAGE\n"
	"\n"
	"Show what is known about IMAGE before flashing it: where its block map comes\n"
	"from (the --bmap file, a bmap discovered next to the image, or the holes of a\n"
	"raw sparse image), the format version, sizes, mapped blocks, ranges, the\n"
	"checksum type, whether the bmap's own checksum is good, and the image's\n"
	"compression (detected from its magic bytes).\n"
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

/* ---- main ---- */

static const char main_help[] =
	"Usage: bmaptool [OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"Create and inspect block maps (bmap files) of disk images.\n"
	"\n"
	"Commands:\n"
	"  create    generate the bmap of a sparse image file\n"
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
