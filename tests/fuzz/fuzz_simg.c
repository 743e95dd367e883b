/* Fuzz target: the Android sparse image parser (format-simg.c) both ways it
 * reads: from a file (a memfd: the chunk headers are walked at open) and as
 * a stream (a pipe: chunks checked as they come). Each opened image has its
 * map read through (skipping the data, CRC32 chunks checked), then the same
 * input is read as a disk front to back, at most 1 MiB of it. A file that
 * its chunk index reads at random (no CRC32 chunks) also has that first MiB
 * read through the index, at a few offsets, and its runs asked for: the
 * bytes must be the stream's (format-simg-index.c). */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bmap.h"
#include "source-format.h"
#include "source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PIECE (256u * 1024)

/* The input in a file, or in a pipe big enough to hold it whole (a
 * stream, without a writer thread); -1 when it does not fit. */
static int input_fd(const uint8_t *data, size_t size, int pipe_mode)
{
	int fds[2];

	if (!pipe_mode) {
		int fd = memfd_create("fuzz-simg", MFD_CLOEXEC);

		if (fd < 0 || write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
			abort();
		return fd;
	}
	if (pipe2(fds, O_CLOEXEC) < 0)
		abort();
	if (fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) < (int)size ||
	    write(fds[1], data, size) != (ssize_t)size) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	close(fds[1]);
	return fds[0];
}

/* The disk's first bytes through the chunk index and through the stream:
 * the same, or abort(). */
static void random_reads(const uint8_t *data, size_t size, uint8_t *buf, uint8_t *ran)
{
	struct bmap_ctx *ctx = bmap_ctx_new();
	struct bmap_source *src = NULL;
	int fd = input_fd(data, size, 0);
	ssize_t n = 0, k;

	if (!ctx)
		abort();
	if (bmap_source_open_fd(ctx, fd, "fuzz", &src) == 0 && source_can_pread(src)) {
		while (n < (ssize_t)PIECE && (k = bmap_source_read(src, buf + n, PIECE - (size_t)n)) > 0)
			n += k;
		if (n > 0) {
			const size_t offs[] = { 0, 1, 4095, 4096, (size_t)n / 2, (size_t)n - 1 };

			for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
				size_t want = (size_t)n - offs[i];
				bool zero;

				if (source_pread(src, ran, want, offs[i]) != (ssize_t)want ||
				    memcmp(ran, buf + offs[i], want) != 0)
					abort();
				k = source_prun(src, offs[i], want, &zero);
				if (k <= 0)
					abort();
				for (ssize_t j = 0; zero && j < k && (size_t)j < want; j++)
					if (buf[offs[i] + (size_t)j])
						abort();
			}
		}
	}
	bmap_source_free(src);
	bmap_ctx_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *buf, *ran;

	if (size < 4 || data[0] != 0x3a || data[1] != 0xff || data[2] != 0x26 || data[3] != 0xed)
		return -1; /* not added to the corpus */
	if (!buf && !(buf = malloc(PIECE)))
		abort();
	if (!ran && !(ran = malloc(PIECE)))
		abort();
	for (int pipe_mode = 0; pipe_mode < 2; pipe_mode++) {
		for (int pass = 0; pass < 2; pass++) {
			struct bmap_ctx *ctx = bmap_ctx_new();
			struct bmap_format_info info;
			struct bmap_source *src = NULL;
			struct bmap_map *map = NULL;
			int fd = input_fd(data, size, pipe_mode);

			if (!ctx)
				abort();
			if (fd >= 0 && bmap_source_open_fd(ctx, fd, "fuzz", &src) == 0) {
				(void)bmap_source_get_format_info(src, &info);
				if (pass == 0) {
					(void)bmap_source_read_map(src, &map);
				} else {
					for (int i = 0; i < 4; i++)
						if (bmap_source_read(src, buf, PIECE) <= 0)
							break;
				}
			}
			bmap_map_free(map);
			bmap_source_free(src);
			bmap_ctx_free(ctx);
		}
	}
	random_reads(data, size, buf, ran);
	return 0;
}
