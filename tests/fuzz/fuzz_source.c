/* Fuzz target: the image sources (every codec by its magic bytes) through the
 * copy engine into a file sink (a memfd), with a map of several ranges so the
 * engine both writes and skips.
 *
 * Built once per codec as well (fuzz-source-zstd, -gzip, -xz, -bzip2, -lz4,
 * -lzo, and for the containers -tar and -zip, with FUZZ_CODEC set): those only take inputs that start with the codec's
 * magic, so every execution exercises that decompressor. An input that
 * crashes one of them crashes the generic target (and fuzz-replay-source)
 * as it is. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bmap.h"
#include "source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifdef FUZZ_CODEC
static const struct {
	const char *name;
	const char *magic;
	size_t len;
	size_t at; /* the magic's offset */
} codecs[] = {
	{ "zstd", "\x28\xb5\x2f\xfd", 4, 0 },
	{ "gzip", "\x1f\x8b", 2, 0 },
	{ "xz", "\xfd" "7zXZ\0", 6, 0 },
	{ "bzip2", "BZh", 3, 0 },
	{ "lz4", "\x04\x22\x4d\x18", 4, 0 },
	{ "lzo", "\x89LZO\0\r\n\x1a\n", 9, 0 },
	/* The containers (source-archive.c): a plain tar's ustar header, a zip. */
	{ "tar", "ustar", 5, 257 },
	{ "zip", "PK\003\004", 4, 0 },
};

static bool wanted(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		if (strcmp(codecs[i].name, FUZZ_CODEC) == 0)
			return size >= codecs[i].at + codecs[i].len &&
			       memcmp(data + codecs[i].at, codecs[i].magic, codecs[i].len) == 0;
	abort(); /* a codec this file does not know: a build error */
}
#endif

/* 1 MiB image of 4 KiB blocks: the output of a decompression bomb stops
 * there, and the engine's buffers stay small (fast executions). */
#define IMAGE_BLOCKS 256u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		uint64_t first, last;
	} ranges[] = { { 0, 3 }, { 5, 5 }, { 16, 100 }, { 200, IMAGE_BLOCKS - 1 } };
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE };
	struct bmap_copy_opts copts = { 0 };
	struct bmap_copy_result result;
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	struct bmap_map *map = NULL;
	struct bmap_ctx *ctx;
	int in, out;

#ifdef FUZZ_CODEC
	if (!wanted(data, size))
		return -1; /* not added to the corpus */
#endif
	ctx = bmap_ctx_new();
	in = memfd_create("fuzz-in", MFD_CLOEXEC);
	out = memfd_create("fuzz-out", MFD_CLOEXEC);
	if (!ctx || in < 0 || out < 0 || write(in, data, size) != (ssize_t)size ||
	    lseek(in, 0, SEEK_SET) != 0 ||
	    bmap_map_new(ctx, (uint64_t)IMAGE_BLOCKS * 4096, 4096, &map) < 0)
		abort();
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		if (bmap_map_append_range(map, ranges[i].first, ranges[i].last) < 0)
			abort();
	topts.image_size = bmap_map_get_image_size(map);
	if (bmap_source_open_fd(ctx, in, "fuzz", &src) == 0 &&
	    bmap_target_open_fd(ctx, out, "sink", &topts, &dst) == 0)
		(void)bmap_copy(ctx, src, map, dst, &copts, &result);
	bmap_target_free(dst);
	close(out);
	bmap_source_free(src); /* owns in, even when opening failed */
	bmap_map_free(map);
	bmap_ctx_free(ctx);
	return 0;
}
