/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool copy: its options, and the copy to one destination (several:
 * bmaptool-multi.c), with --discard of the unmapped ranges afterwards.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap.h"
#include "bmaptool.h"
#include "source.h"
#include "bmaptool-multi.h"
#include "util.h"

static const char copy_help[] =
	"Usage: bmaptool copy [OPTIONS] IMAGE DEST [DEST...]\n"
	"\n"
	"Copy the mapped blocks of IMAGE (a file, '-' for standard input, or an\n"
	"http://, https://, ftp:// or file: URL; raw or compressed with zstd, gzip,\n"
	"xz, bzip2 or lz4, recognised by magic bytes) to DEST, a block device or a\n"
	"regular file. Each range's checksum is checked as its data passes. The bmap\n"
	"is --bmap FILE, or the map a qcow2 or Android sparse image carries (the\n"
	"data of its virtual disk; a sparse image may be compressed or come from a\n"
	"pipe), or found next to the image (IMAGE.bmap, then the name without each\n"
	"extension), or, for a raw sparse image, computed from its holes.\n"
	"\n"
	"A block device must be a whole disk, not mounted or held, not read-only and\n"
	"big enough; it is checked before any byte is written, locked while writing,\n"
	"and synced when copy returns. A regular file is changed only once the checks\n"
	"before the first write passed (the bmap fits the image, the image is not\n"
	"empty, DEST is not the image); a missing DEST becomes a new file, never on\n"
	"the file system of the device nodes (/dev).\n"
	"\n"
	"A URL is fetched while the copy writes (credentials in the URL or ~/.netrc,\n"
	"proxies from the environment as curl takes them, redirects followed); its\n"
	"bmap is --bmap FILE or URL, or found next to it (\".bmap\" added to the URL's\n"
	"path, then each extension taken off). A broken connection is resumed from\n"
	"the last byte received, a few times. Of a raw image with a bmap, on a server\n"
	"that takes Range requests, only the mapped ranges are fetched. Messages\n"
	"never show a URL's password.\n"
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
	"  -b, --bmap FILE          the bmap file (or URL) to use\n"
	"      --nobmap             copy every byte of the image, without a bmap\n"
	"      --no-verify          do not check the ranges' checksums while copying\n"
	"      --psplash-pipe PIPE  write 'PROGRESS n' lines to the psplash FIFO PIPE\n"
	"      --removable-device   refuse DEST unless it is a removable device\n"
	"      --discard            after copying, discard (TRIM) the unmapped ranges of\n"
	"                           the image on DEST (BLKDISCARD; holes in a file), so\n"
	"                           the card knows they are free; never past the image\n"
	"      --insecure           do not check the certificate of an https server\n"
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

int cmd_copy(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bmap", required_argument, NULL, 'b' },
		{ "nobmap", no_argument, NULL, 'n' },
		{ "no-verify", no_argument, NULL, 'V' },
		{ "psplash-pipe", required_argument, NULL, 'P' },
		{ "removable-device", no_argument, NULL, 'R' },
		{ "discard", no_argument, NULL, 'D' },
		URL_LONGOPTS,
		COMMON_LONGOPTS,
		{}
	};
	const char *bmap_arg = NULL, *image, *dest;
	bool nobmap = false, removable = false, discard = false;
	struct bmap_copy_opts copts = { .cancel = &interrupted };
	struct progress prog = { .last_percent = -1 };
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE };
	struct bmap_copy_result res;
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
	r = check_image_dest_args("copy ", argc - optind, bmap_arg, nobmap);
	if (r)
		return r;
	if (argc - optind > 2)
		return multi_run(&(struct multi_args){
			.image = argv[optind], .bmap = bmap_arg, .nobmap = nobmap,
			.no_verify = copts.no_verify, .removable = removable, .discard = discard,
			.psplash = prog.psplash, .dests = argv + optind + 1,
			.n_dests = (size_t)(argc - optind - 1) });
	image = argv[optind];
	dest = argv[optind + 1];

	topts.removable_only = removable;
	if (setup_open(&s, "copy", image, bmap_arg, nobmap, dest, &topts) < 0)
		goto out;
	/* No map without --nobmap: a sparse image's, as it streams. */
	copts.source_map = !s.map && !nobmap;
	if (s.map && bmap_target_is_blockdev(s.dst) && bmap_map_has_range_checksums(s.map) &&
	    copts.no_verify)
		info("--no-verify: the ranges' checksums are not checked");
	print_map_info(s.map);
	info("copying image '%s' to %s '%s'", bmap_source_get_name(s.src),
	     bmap_target_is_blockdev(s.dst) ? "block device" : "file", dest);

	prog.src = s.src;
	progress_setup(&prog, &copts);
	r = bmap_copy(s.ctx, s.src, s.map, s.dst, &copts, &res);
	progress_end(&prog);
	if (r < 0) {
		if (r == -EINTR && bmap_target_is_changed(s.dst))
			error("%s; '%s' was synced and closed, its content is incomplete",
			      bmap_ctx_get_error(s.ctx), dest);
		else if (r == -EINTR)
			error("%s; nothing was written to '%s'", bmap_ctx_get_error(s.ctx), dest);
		else if (bmap_target_is_changed(s.dst))
			error("%s; '%s' was written to before that: its content is incomplete",
			      bmap_ctx_get_error(s.ctx), dest);
		else
			error("%s", bmap_ctx_get_error(s.ctx));
		goto out;
	}
	/* A stream's own map is complete once it was copied. */
	if (discard && copts.source_map && bmap_source_get_map(s.src, &s.map) < 0) {
		error("%s", bmap_ctx_get_error(s.ctx));
		goto out;
	}
	if (discard && discard_unmapped(s.ctx, s.dst, s.map, dest) < 0)
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
	setup_free(&s);
	return ret;
}
