/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to the Android sparse format: the chunk types (format-simg.c
 * reads the image as a stream and walks a file's chunk headers) and the
 * chunk index that reads a walked file at random (format-simg-index.c).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "source-format.h"

enum {
	SIMG_CHUNK_RAW = 0xcac1,
	SIMG_CHUNK_FILL = 0xcac2,
	SIMG_CHUNK_DONT_CARE = 0xcac3,
	SIMG_CHUNK_CRC32 = 0xcac4,
};

/* An image of more chunks is read as a stream (24 bytes an entry). */
#define SIMG_INDEX_MAX (1u << 19)

struct simg_index;

/* An empty index for @n_chunks chunks of a disk of @size bytes read from
 * @fd; NULL when out of memory or above SIMG_INDEX_MAX. */
struct simg_index *simg_index_new(int fd, uint64_t size, uint32_t n_chunks);
struct simg_index *simg_index_free(struct simg_index *x);
/* The next chunk, in disk order: its type, its first disk byte, its disk
 * bytes, where its data is in the file (RAW) and its pattern (FILL, else
 * NULL). A CRC32 chunk or an empty one is not kept. 0 or -EINVAL (more
 * chunks than the index was made for). */
int simg_index_add(struct simg_index *x, uint16_t type, uint64_t voff, uint64_t len,
		   uint64_t where, const uint8_t fill[4]);
/* Thread-safe: @len disk bytes at @off (short only at the disk's end);
 * -errno with a detail in @s's context. */
ssize_t simg_index_pread(struct bmap_source *s, const struct simg_index *x, void *buf,
			 size_t len, uint64_t off);
/* Thread-safe, as the format's prun: the bytes from @off on (up to @max at
 * least) that are zeros (DONT_CARE, a FILL of zeros) or not. */
int64_t simg_index_run(const struct simg_index *x, uint64_t off, uint64_t max, bool *ret_zero);
