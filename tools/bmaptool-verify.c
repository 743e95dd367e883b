/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool verify: its options, and reading one destination back (several:
 * bmaptool-multi.c) against the bmap's checksums or the image's bytes.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap.h"
#include "bmaptool.h"
#include "bmaptool-multi.h"
#include "util.h"

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
	"IMAGE and the bmap may be http://, https://, ftp:// or file: URLs, as for\n"
	"copy (see bmaptool copy --help).\n"
	"\n"
	"Options:\n"
	"  -b, --bmap FILE      the bmap file (or URL) to use\n"
	"      --nobmap         compare every byte of the image with DEST\n"
	"      --insecure       do not check the certificate of an https server\n"
	"  -q, --quiet          print errors only\n"
	"  -d, --debug          print debugging messages\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 when everything matches (on every DEST), 1 when something does\n"
	"not (the first bad range is named) or on failure, 2 on usage errors.\n";

int cmd_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bmap", required_argument, NULL, 'b' },
		{ "nobmap", no_argument, NULL, 'n' },
		URL_LONGOPTS,
		COMMON_LONGOPTS,
		{}
	};
	const char *bmap_arg = NULL, *image, *dest;
	bool nobmap = false;
	struct bmap_copy_opts copts = { .cancel = &interrupted };
	struct progress prog = { .last_percent = -1 };
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_READ };
	struct bmap_verify_result res;
	struct setup s;
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
	r = check_image_dest_args("verify ", argc - optind, bmap_arg, nobmap);
	if (r)
		return r;
	if (argc - optind > 2)
		return multi_run(&(struct multi_args){
			.verify = true, .image = argv[optind], .bmap = bmap_arg, .nobmap = nobmap,
			.dests = argv + optind + 1, .n_dests = (size_t)(argc - optind - 1) });
	image = argv[optind];
	dest = argv[optind + 1];

	if (setup_open(&s, "verify", image, bmap_arg, nobmap, dest, &topts) < 0)
		goto out;
	copts.source_map = !s.map && !nobmap;
	if (s.map && bmap_target_get_size(s.dst) < bmap_map_get_image_size(s.map)) {
		error("'%s' is smaller (%" PRIu64 " bytes) than the image (%" PRIu64 " bytes)", dest,
		      bmap_target_get_size(s.dst), bmap_map_get_image_size(s.map));
		goto out;
	}
	info("verifying '%s' against %s", dest,
	     s.map && bmap_map_has_range_checksums(s.map) ? "the bmap's checksums"
						      : "the image, byte for byte");
	prog.src = s.src;
	progress_setup(&prog, &copts);
	r = bmap_verify(s.ctx, s.dst, s.map, s.src, &copts, &res);
	progress_end(&prog);
	if (r < 0) {
		/* -EBADMSG: the first bad range; -EINTR: "interrupted ..." */
		error("%s", bmap_ctx_get_error(s.ctx));
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
	setup_free(&s);
	return ret;
}
