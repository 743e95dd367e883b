/* Fuzz target: the qcow2 header, extension and table parser and its reads
 * (format-qcow2.c, format-qcow2-read.c). The input is a file (a memfd, as
 * qcow2 needs random access); when it opens, its map, its header facts and
 * pieces of its disk are read: the start of every mapped range (up to 64),
 * a few offsets taken from the input, and the first MiB in order. Reads are
 * bounded, so a disk of any size costs little. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bmap.h"
#include "source-format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PIECE (256u * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *buf;
	struct bmap_format_info info;
	struct bmap_source *src = NULL;
	struct bmap_map *map = NULL;
	struct bmap_ctx *ctx;
	int fd;

	if (size < 4 || memcmp(data, "QFI\xfb", 4) != 0)
		return -1; /* not added to the corpus */
	if (!buf && !(buf = malloc(PIECE)))
		abort();
	ctx = bmap_ctx_new();
	fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
	if (!ctx || fd < 0 || write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	if (bmap_source_open_fd(ctx, fd, "fuzz", &src) == 0) {
		uint64_t vsize = bmap_source_get_image_size(src);

		(void)bmap_source_get_format_info(src, &info);
		if (bmap_source_get_map(src, &map) == 0) {
			for (size_t i = 0; i < bmap_map_get_range_count(map) && i < 64; i++) {
				uint64_t off, len;

				bmap_map_range_bytes(map, i, &off, &len);
				(void)source_pread(src, buf, len < PIECE ? (size_t)len : PIECE, off);
			}
		}
		/* Offsets from the input's last bytes: anywhere in the disk. */
		for (size_t i = 0; i + 8 <= size && i < 32 && vsize; i += 8) {
			uint64_t off;

			memcpy(&off, data + size - 8 - i, 8);
			(void)source_pread(src, buf, 70000, off % vsize);
		}
		for (int i = 0; i < 4; i++)
			if (bmap_source_read(src, buf, PIECE) <= 0)
				break;
	}
	bmap_map_free(map);
	bmap_source_free(src); /* owns fd, even when opening failed */
	bmap_ctx_free(ctx);
	return 0;
}
