/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The image cache's filler for a self-mapped image (a qcow2 of any
 * variant, an Android sparse image plain or compressed) that came without
 * a bmap: it unpacks the image's virtual disk once into KEY.part (its holes
 * not written; a sparse image's CRC32 chunks checked as it is read, a wrong
 * one failing the fill), then writes KEY.bmap, the 2.0 bmap of that disk
 * (the image's own map at 4 KiB blocks, the SHA-256 of each range hashed
 * from the bytes just written, as `bmaptool create disk.qcow2` would), and
 * names KEY.bmap, then KEY.img. Every card is then copied from KEY.img with
 * KEY.bmap, as from any entry of a compressed image, and read back against
 * its checksums; a damaged entry is found by cache_entry_check().
 *
 * The image's own map carries no checksums (and a sparse image read as a
 * stream tells its map only at its end), so a reader cannot check what it
 * would read from the part before the filler is done: the workers of a
 * self-mapped image wait for the entry to be complete (cache_acquire_self).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bmap-private.h"
#include "cache-private.h"
#include "source.h"

void cache_self_bmap_path(const char *path, char *out, size_t len)
{
	size_t n = strlen(path);

	if (n > 4 && strcmp(path + n - 4, ".img") == 0)
		n -= 4;
	snprintf(out, len, "%.*s.bmap", (int)n, path);
}

/* The bmap of the disk just filled into @part (open as @part_fd), by @map:
 * written to @bmap (a temp file first), hashed from the part (its pages are
 * still in memory); @cancel stops it. */
static int write_bmap(struct bmap_ctx *ctx, int part_fd, const char *part,
		      const struct bmap_map *map, const char *bmap, atomic_int *cancel)
{
	struct bmap_create_opts opts = {.block_size = 4096, .cancel = cancel};
	struct bmap_source *raw = NULL;
	char tmp[PATH_MAX];
	int out, fd, r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", bmap) >= sizeof(tmp))
		return bmap_error(ctx, -ENAMETOOLONG, "the name '%s.tmp' is too long", bmap);
	out = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return bmap_error(ctx, -errno, "cannot create '%s': %m", tmp);
	fd = fcntl(part_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = bmap_source_open_raw_fd(ctx, fd, part, &raw);
	if (r >= 0)
		r = bmap_create_from_source(ctx, raw, map, out, tmp, &opts, NULL);
	bmap_source_free(raw);
	if (r >= 0 && fsync(out) < 0)
		r = bmap_error(ctx, -errno, "cannot write '%s': %m", tmp);
	if (r >= 0 && rename(tmp, bmap) < 0)
		r = bmap_error(ctx, -errno, "cannot name '%s': %m", bmap);
out:
	close(out);
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Whether the file open as @fd is not what @before says: written to,
 * truncated or grown since. */
static bool image_changed(int fd, const struct stat *before)
{
	struct stat now;

	return fstat(fd, &now) < 0 || now.st_size != before->st_size ||
	       now.st_mtim.tv_sec != before->st_mtim.tv_sec ||
	       now.st_mtim.tv_nsec != before->st_mtim.tv_nsec ||
	       now.st_ctim.tv_sec != before->st_ctim.tv_sec ||
	       now.st_ctim.tv_nsec != before->st_ctim.tv_nsec;
}

_Noreturn void cache_self_run(struct filler *f, int image_fd, const char *image,
			      const char *part, const char *path)
{
	struct bmap_target_opts topts = {
	    .mode = BMAP_TARGET_WRITE,
	    .keep_size = true, /* sized by the parent: readers may have it open */
	};
	struct bmap_copy_opts copts = {
	    .cancel = f->cancel, .written = cache_fill_written, .written_userdata = f};
	char bmap[PATH_MAX];
	struct bmap_ctx *ctx;
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	struct bmap_map *map = NULL;
	uint64_t size = 0;
	struct stat before;
	int r;

	cache_filler_setup(f, part);
	cache_self_bmap_path(path, bmap, sizeof(bmap));
	ctx = bmap_ctx_new();
	r = ctx ? 0 : -ENOMEM;
	if (r >= 0 && fstat(image_fd, &before) < 0)
		r = bmap_error(ctx, -errno, "cannot stat '%s': %m", image);
	if (r >= 0)
		r = bmap_source_open_fd(ctx, image_fd, image, &src);
	if (r >= 0 && bmap_source_get_format(src) == BMAP_FORMAT_RAW)
		r = bmap_error(ctx, -EINVAL, "'%s' is no longer a qcow2 or Android sparse image",
				   image);
	if (r >= 0) {
		size = bmap_source_get_image_size(src);
		topts.image_size = size;
		/* A sparse image read as a stream: its map as it is read. */
		r = bmap_source_get_map(src, &map);
		if (r == -EAGAIN) {
			copts.source_map = true;
			r = 0;
		}
	}
	if (r >= 0)
		r = bmap_target_open(ctx, part, &topts, &dst);
	if (r >= 0)
		r = bmap_copy(ctx, src, map, dst, &copts, NULL);
	if (r >= 0 && !map)
		r = bmap_source_get_map(src, &map);
	if (r >= 0 && fsync(bmap_target_get_fd(dst)) < 0)
		r = bmap_error(ctx, -errno, "cannot write '%s': %m", part);
	/* The bmap is made of what was unpacked, and nothing checks that
	 * against the image (it has no checksums, or a simg only some CRC32s):
	 * an image written to while it was read (cp onto it, rsync --inplace)
	 * would give an entry of old and new bytes that every card then
	 * passes. */
	/* (its bmap would be named next to another fill's part) */
	if (r >= 0 && !cache_filler_owns_part(f, part))
		r = bmap_error(ctx, -ESTALE, "'%s' was replaced by another fill of the same image",
			       part);
	if (r >= 0 && image_changed(image_fd, &before))
		r = bmap_error(ctx, -EIO,
			       "the image '%s' changed while it was unpacked into the image cache: "
			       "nothing of it is served; put the card in again once it is complete",
			       image);
	if (r >= 0)
		r = write_bmap(ctx, bmap_target_get_fd(dst), part, map, bmap, f->cancel);
	bmap_target_free(dst);
	bmap_source_free(src);
	bmap_map_free(map);
	/* (a KEY.bmap there on a failure is another fill's: left alone) */
	cache_filler_end(f, ctx, r, size, part, path);
}
