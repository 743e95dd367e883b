/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bmaptool copy: its options, and the copy to one destination (several:
 * bmaptool-multi.c), with --discard of the unmapped ranges afterwards.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
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
	"xz, bzip2, lz4 or lzo (lzop), and the first regular file of a tar (plain or\n"
	"compressed: .tar.gz, .tgz, .tar.zst, ...) or zip archive, all recognised by\n"
	"magic bytes) to DEST, a block device or a regular file. Each range's\n"
	"checksum is checked as its data passes. The bmap is --bmap FILE, or the map\n"
	"a qcow2 or Android sparse image carries (the data of its virtual disk; a\n"
	"sparse image may be compressed or come from a pipe), or found next to the\n"
	"image (IMAGE.bmap, then the name without each extension), or, for a raw\n"
	"sparse image, computed from its holes.\n"
	"\n"
	"A signed bmap (clearsigned, or with a detached signature: --bmap-sig, else\n"
	"BMAP.asc, then BMAP.sig) is verified with GnuPG first; a signature that does\n"
	"not verify ends the copy with exit status 1 before DEST is opened.\n"
	"\n"
	"A block device (a whole disk or a partition) must not be mounted or held,\n"
	"not read-only and big enough; it is checked before any byte is written,\n"
	"locked while writing, and synced when copy returns. /dev/null and /dev/zero\n"
	"are taken to time a copy (nothing synced, no size check). A regular file is\n"
	"changed only once the checks before the first write passed (the bmap fits\n"
	"the image, the image is not empty, DEST is not the image); a missing DEST\n"
	"becomes a new file, never on the file system of the device nodes (/dev).\n"
	"A compressed image or archive in a local file is checked whole first (its\n"
	"frames, end marker or index; a .tar.gz, which has none, is decoded once):\n"
	"one cut short is refused before DEST is opened. From a plain .gz, a pipe or\n"
	"a URL the cut is only found when the copy reaches it, with DEST then\n"
	"incomplete.\n"
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
	SIG_HELP
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

/* "copying image 'a.img' to file 'a'": a path's last component. */
static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash && slash[1] ? slash + 1 : path;
}

struct syncing {
	struct progress *prog;
	const char *dest;
};

/* Before the sync, which may take long on a card: the progress line goes. */
static void say_syncing(void *userdata)
{
	struct syncing *s = userdata;

	progress_end(s->prog);
	info("synchronizing '%s'", s->dest);
}

int cmd_copy(int argc, char **argv)
{
	struct image_opts o;
	const char *image, *dest;
	struct bmap_copy_opts copts = { .cancel = &interrupted };
	struct progress prog = { .last_percent = -1 };
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE };
	struct bmap_copy_result res;
	struct setup s = {};
	char dest_str[PATH_MAX + 32];
	int r, ret = EXIT_FAILURE;

	r = parse_image_opts(CMD_COPY, copy_help, argc, argv, &o);
	if (r != ARGS_PARSED)
		return r;
	copts.no_verify = o.no_verify;
	prog.psplash = o.psplash;
	if (o.args.n > 2) {
		ret = multi_run(&(struct multi_args){
			.image = o.args.v[0], .bmap = o.bmap, .nobmap = o.nobmap, .sig = o.sig,
			.no_verify = o.no_verify, .removable = o.removable, .discard = o.discard,
			.psplash = o.psplash, .dests = o.args.v + 1,
			.n_dests = (size_t)(o.args.n - 1) });
		image_opts_done(&o);
		return ret;
	}
	image = o.args.v[0];
	dest = o.args.v[1];

	topts.removable_only = o.removable;
	if (setup_open(&s, "copy", image, o.bmap, o.nobmap, &o.sig, dest, &topts) < 0)
		goto out;
	/* No map without --nobmap: a sparse image's, as it streams. */
	copts.source_map = !s.map && !o.nobmap;
	if (s.map && bmap_target_is_blockdev(s.dst) && bmap_map_has_range_checksums(s.map) &&
	    copts.no_verify)
		info("--no-verify: the ranges' checksums are not checked");
	/* The reference's lines, in its order and words (a file by its last
	 * component, a device by its path); ours where it has none. */
	if (o.nobmap)
		info("no bmap given, copy entire image to '%s'", dest);
	else
		print_map_info(s.map);
	if (bmap_target_is_blockdev(s.dst))
		snprintf(dest_str, sizeof(dest_str), "block device '%s'", dest);
	else
		snprintf(dest_str, sizeof(dest_str), "file '%s'", base_name(dest));
	if (s.bmap_path)
		info("copying image '%s' to %s using bmap file '%s'", base_name(bmap_source_get_name(s.src)), dest_str,
		     base_name(s.bmap_path));
	else if (!o.nobmap)
		info("copying image '%s' to %s", base_name(bmap_source_get_name(s.src)), dest_str);
	copts.syncing = say_syncing;
	copts.syncing_userdata = &(struct syncing){ .prog = &prog, .dest = dest };

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
	if (o.discard && copts.source_map && bmap_source_get_map(s.src, &s.map) < 0) {
		error("%s", bmap_ctx_get_error(s.ctx));
		goto out;
	}
	if (o.discard && discard_unmapped(s.ctx, s.dst, s.map, dest) < 0)
		goto out;
	{
		char t[32], sp[32], hex[65];

		hex_encode(res.data_sha256, 32, hex);
		info("copying time: %s, copying speed %s/sec", human_time(res.seconds, t),
		     human_size(res.seconds > 0 ? (uint64_t)((double)res.bytes_written / res.seconds)
						: res.bytes_written,
				sp));
		info("sha256 of the data written: %s", hex);
	}
	ret = EXIT_SUCCESS;
out:
	setup_free(&s);
	image_opts_done(&o);
	return ret;
}
