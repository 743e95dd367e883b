/* Fuzz target: the image sources (every codec by its magic bytes) and the
 * copy engine, from a pipe-like fd into a file sink, without a bmap. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bmap.h"
#include "source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_target_opts topts = { .mode = BMAP_TARGET_WRITE };
	struct bmap_source *src = NULL;
	struct bmap_target *dst = NULL;
	int in = memfd_create("fuzz-in", MFD_CLOEXEC);
	int out = memfd_create("fuzz-out", MFD_CLOEXEC);

	if (in < 0 || out < 0 || write(in, data, size) != (ssize_t)size ||
	    lseek(in, 0, SEEK_SET) != 0)
		abort();
	/* Bounded output: a decompression bomb stops at the sink's size. */
	if (bmap_source_open_fd(ctx, in, "fuzz", &src) == 0 &&
	    bmap_target_open_fd(ctx, out, "sink", &topts, &dst) == 0) {
		uint8_t buf[65536];
		uint64_t total = 0;
		ssize_t n;

		while (total < (64u << 20) && (n = bmap_source_read(src, buf, sizeof(buf))) > 0)
			total += (uint64_t)n;
	}
	bmap_target_free(dst);
	bmap_source_free(src);
	close(out);
	bmap_ctx_free(ctx);
	return 0;
}
