/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool create: the bmap of a sparse image file, written to a file in
 * place or streamed to standard output, a FIFO or a device.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap.h"
#include "bmaptool.h"
#include "util.h"

static const char create_help[] =
	"Usage: bmaptool create [OPTIONS] IMAGE\n"
	"\n"
	"Generate the block map (bmap, format 2.0) of a sparse image file: the ranges\n"
	"of blocks that hold data, each with its SHA-256 checksum. The output is byte\n"
	"for byte what the reference bmaptool 3.6 writes. For a qcow2 or Android\n"
	"sparse image it is the bmap of the virtual disk: the image's own map rounded\n"
	"out to the blocks, checksums of the disk's data. IMAGE is a local file: a\n"
	"URL is refused (its holes cannot be found through a download).\n"
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

int cmd_create(int argc, char **argv)
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
	/* create finds holes with SEEK_HOLE/FIEMAP and reads at random: a
	 * download has no holes to find. */
	if (bmap_location_is_url(image)) {
		_cleanup_free_ char *name = shown(image);

		error("cannot create a bmap of the URL '%s': create needs the image as a local "
		      "sparse file (download it with its holes, e.g. bmaptool copy --nobmap URL "
		      "FILE, then run create on FILE)",
		      name);
		return EXIT_FAILURE;
	}

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
		r = bmap_create(ctx, img_fd, image, out_fd, output ? output : "(standard output)", &opts,
			&res);
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
