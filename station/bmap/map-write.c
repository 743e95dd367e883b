/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Writing bmap format 2.0 byte for byte as the reference bmaptool 3.6 does:
 * the mapped-count comment and value go into placeholders reserved before
 * the ranges are known, and the file's own checksum is filled in last.
 * Streaming, so memory stays flat whatever the number of ranges.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap-private.h"
#include "util.h"

#define WRITER_BUF (64 * 1024)

struct bmap_writer {
	struct bmap_ctx *ctx;
	int fd;
	char *fd_name;
	uint64_t image_size;
	uint32_t block_size;
	uint64_t blocks_count;
	char checksum_type[16];
	size_t cs_len;
	uint64_t mapped_blocks;
	uint64_t last_block; /* of the previous range, for order checks */
	bool any_range;

	uint64_t pos;            /* file offset of buf[0] */
	uint64_t mapped_pos1;    /* the "Count of mapped blocks" comment text */
	uint64_t mapped_pos2;    /* the MappedBlocksCount value */
	uint64_t checksum_pos;   /* the BmapFileChecksum digits */
	size_t used;
	char buf[WRITER_BUF];
};

static const char start_template[] =
	"<?xml version=\"1.0\" ?>\n"
	"<!-- This file contains the block map for an image file, which is basically\n"
	"     a list of useful (mapped) block numbers in the image file. In other words,\n"
	"     it lists only those blocks which contain data (boot sector, partition\n"
	"     table, file-system metadata, files, directories, extents, etc). These\n"
	"     blocks have to be copied to the target device. The other blocks do not\n"
	"     contain any useful data and do not have to be copied to the target\n"
	"     device.\n"
	"\n"
	"     The block map an optimization which allows to copy or flash the image to\n"
	"     the image quicker than copying of flashing the entire image. This is\n"
	"     because with bmap less data is copied: <MappedBlocksCount> blocks instead\n"
	"     of <BlocksCount> blocks.\n"
	"\n"
	"     Besides the machine-readable data, this file contains useful commentaries\n"
	"     which contain human-readable information like image size, percentage of\n"
	"     mapped data, etc.\n"
	"\n"
	"     The 'version' attribute is the block map file format version in the\n"
	"     'major.minor' format. The version major number is increased whenever an\n"
	"     incompatible block map format change is made. The minor number changes\n"
	"     in case of minor backward-compatible changes. -->\n"
	"\n"
	"<bmap version=\"2.0\">\n"
	"    <!-- Image size in bytes: %s -->\n"
	"    <ImageSize> %" PRIu64 " </ImageSize>\n"
	"\n"
	"    <!-- Size of a block in bytes -->\n"
	"    <BlockSize> %" PRIu32 " </BlockSize>\n"
	"\n"
	"    <!-- Count of blocks in the image file -->\n"
	"    <BlocksCount> %" PRIu64 " </BlocksCount>\n"
	"\n"
	"    <!-- Count of mapped blocks: ";

static int writer_flush(struct bmap_writer *w)
{
	int r;

	if (!w->used)
		return 0;
	r = loop_pwrite(w->fd, w->buf, w->used, w->pos);
	if (r < 0)
		return bmap_error(w->ctx, r, "cannot write bmap file '%s': %s", w->fd_name,
				  strerror(-r));
	w->pos += w->used;
	w->used = 0;
	return 0;
}

static int writer_put(struct bmap_writer *w, const char *s, size_t len)
{
	while (len) {
		size_t n = WRITER_BUF - w->used;
		int r;

		if (n > len)
			n = len;
		memcpy(w->buf + w->used, s, n);
		w->used += n;
		s += n;
		len -= n;
		if (w->used == WRITER_BUF) {
			r = writer_flush(w);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

__attribute__((format(printf, 2, 3))) static int writer_printf(struct bmap_writer *w,
							       const char *fmt, ...)
{
	char small[512], *s = small;
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return bmap_error(w->ctx, -EINVAL, "formatting failed");
	if ((size_t)n >= sizeof(small)) {
		s = malloc((size_t)n + 1);
		if (!s)
			return bmap_error(w->ctx, -ENOMEM, "out of memory");
		va_start(ap, fmt);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	r = writer_put(w, s, (size_t)n);
	if (s != small)
		free(s);
	return r;
}

static uint64_t writer_tell(const struct bmap_writer *w)
{
	return w->pos + w->used;
}

static int writer_spaces(struct bmap_writer *w, size_t n)
{
	int r = 0;

	while (n-- && r >= 0)
		r = writer_put(w, " ", 1);
	return r;
}

int bmap_writer_new(struct bmap_ctx *ctx, int fd, const char *fd_name, uint64_t image_size,
		    uint32_t block_size, const char *checksum_type, struct bmap_writer **ret_writer)
{
	struct bmap_writer *w;
	char human[32], blocks_str[32], zeros[2 * BMAP_DIGEST_MAX + 1];
	int size, r;

	if (image_size == 0)
		return bmap_error(ctx, -EINVAL, "cannot write a bmap for a zero-sized image");
	if (block_size < 512 || (block_size & (block_size - 1)))
		return bmap_error(ctx, -EINVAL, "block size %" PRIu32 " is not a power of two >= 512",
				  block_size);
	size = bmap_digest_size(checksum_type);
	if (size < 0 || strlen(checksum_type) >= sizeof(w->checksum_type))
		return bmap_error(ctx, -EINVAL, "unknown checksum type '%s'", checksum_type);

	w = calloc(1, sizeof(*w));
	if (!w)
		return bmap_error(ctx, -ENOMEM, "out of memory");
	w->ctx = ctx;
	w->fd = fd;
	w->fd_name = strdup(fd_name ? fd_name : "(bmap)");
	w->image_size = image_size;
	w->block_size = block_size;
	w->blocks_count = (image_size + block_size - 1) / block_size;
	snprintf(w->checksum_type, sizeof(w->checksum_type), "%s", checksum_type);
	w->cs_len = (size_t)size;

	human_size(image_size, human);
	snprintf(blocks_str, sizeof(blocks_str), "%" PRIu64, w->blocks_count);
	memset(zeros, '0', 2 * w->cs_len);
	zeros[2 * w->cs_len] = '\0';

	r = writer_printf(w, start_template, human, image_size, block_size, w->blocks_count);
	if (r < 0)
		goto fail;
	w->mapped_pos1 = writer_tell(w);
	r = writer_spaces(w, strlen(human));
	if (r >= 0)
		r = writer_printf(w, " or %6s   -->\n    <MappedBlocksCount> ", "");
	if (r < 0)
		goto fail;
	w->mapped_pos2 = writer_tell(w);
	r = writer_spaces(w, strlen(blocks_str));
	if (r >= 0)
		r = writer_printf(w,
				  " </MappedBlocksCount>\n\n"
				  "    <!-- Type of checksum used in this file -->\n"
				  "    <ChecksumType> %s </ChecksumType>\n\n"
				  "    <!-- The checksum of this bmap file. When it is calculated, "
				  "the value of\n"
				  "         the checksum has be zero (all ASCII \"0\" symbols).  -->\n"
				  "    <BmapFileChecksum> ",
				  w->checksum_type);
	if (r < 0)
		goto fail;
	w->checksum_pos = writer_tell(w);
	r = writer_printf(w,
			  "%s </BmapFileChecksum>\n\n"
			  "    <!-- The block map which consists of elements which may either be a\n"
			  "         range of blocks or a single block. The 'chksum' attribute\n"
			  "         (if present) is the checksum of this blocks range. -->\n"
			  "    <BlockMap>\n",
			  zeros);
	if (r < 0)
		goto fail;
	*ret_writer = w;
	return 0;
fail:
	bmap_writer_free(w);
	return r;
}

int bmap_writer_add_range(struct bmap_writer *w, uint64_t first, uint64_t last,
			  const uint8_t *digest)
{
	char attr[2 * BMAP_DIGEST_MAX + 16] = "";

	if (first > last || last >= w->blocks_count || (w->any_range && first <= w->last_block))
		return bmap_error(w->ctx, -EINVAL,
				  "invalid range %" PRIu64 "-%" PRIu64 " for a bmap of %" PRIu64
				  " blocks",
				  first, last, w->blocks_count);
	if (digest) {
		char hex[2 * BMAP_DIGEST_MAX + 1];

		hex_encode(digest, w->cs_len, hex);
		snprintf(attr, sizeof(attr), " chksum=\"%s\"", hex);
	}
	w->any_range = true;
	w->last_block = last;
	w->mapped_blocks += last - first + 1;
	if (first != last)
		return writer_printf(w, "        <Range%s> %" PRIu64 "-%" PRIu64 " </Range>\n", attr,
				     first, last);
	return writer_printf(w, "        <Range%s> %" PRIu64 " </Range>\n", attr, first);
}

uint64_t bmap_writer_get_mapped_blocks(const struct bmap_writer *w)
{
	return w->mapped_blocks;
}

static int writer_patch(struct bmap_writer *w, const char *s, uint64_t off)
{
	int r = loop_pwrite(w->fd, s, strlen(s), off);

	if (r < 0)
		return bmap_error(w->ctx, r, "cannot write bmap file '%s': %s", w->fd_name,
				  strerror(-r));
	return 0;
}

int bmap_writer_finish(struct bmap_writer *w)
{
	_cleanup_(bmap_digest_freep) struct bmap_digest *d = NULL;
	char human[32], text[96], hex[2 * BMAP_DIGEST_MAX + 1];
	uint8_t digest[BMAP_DIGEST_MAX];
	uint64_t end, off;
	int r;

	r = writer_printf(w, "    </BlockMap>\n</bmap>\n");
	if (r >= 0)
		r = writer_flush(w);
	if (r < 0)
		return r;
	end = w->pos;

	/* Python's "%.1f" and C's agree: both round the binary value half-even. */
	human_size(w->mapped_blocks * w->block_size, human);
	snprintf(text, sizeof(text), "%s or %.1f%%", human,
		 (double)w->mapped_blocks * 100.0 / (double)w->blocks_count);
	r = writer_patch(w, text, w->mapped_pos1);
	if (r < 0)
		return r;
	snprintf(text, sizeof(text), "%" PRIu64, w->mapped_blocks);
	r = writer_patch(w, text, w->mapped_pos2);
	if (r < 0)
		return r;

	d = bmap_digest_new(w->checksum_type);
	if (!d)
		return bmap_error(w->ctx, -ENOMEM, "out of memory");
	for (off = 0; off < end;) {
		ssize_t n = loop_pread(w->fd, w->buf, WRITER_BUF, off);

		if (n < 0)
			return bmap_error(w->ctx, (int)n,
					  "cannot read back bmap file '%s' to checksum it: %s",
					  w->fd_name, strerror((int)-n));
		if (n == 0)
			return bmap_error(w->ctx, -EIO, "bmap file '%s' shrank while being written",
					  w->fd_name);
		if ((uint64_t)n > end - off)
			n = (ssize_t)(end - off);
		bmap_digest_update(d, w->buf, (size_t)n);
		off += (uint64_t)n;
	}
	r = bmap_digest_final(d, digest);
	if (r < 0)
		return bmap_error(w->ctx, r, "hashing failed");
	hex_encode(digest, w->cs_len, hex);
	return writer_patch(w, hex, w->checksum_pos);
}

struct bmap_writer *bmap_writer_free(struct bmap_writer *w)
{
	if (w) {
		free(w->fd_name);
		free(w);
	}
	return NULL;
}
