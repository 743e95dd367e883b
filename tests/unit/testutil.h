/* Helpers for the cmocka unit tests: temporary folders and files. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* A fresh temporary directory under $TMPDIR (or /tmp); removed by tu_rmtree. */
char *tu_mkdtemp(void);
void tu_rmtree(const char *dir);
/* Path join into a malloc'd string. */
char *tu_path(const char *dir, const char *name);
/* Writes @len bytes at @off of @path (created if needed, not truncated). */
void tu_pwrite(const char *path, const void *buf, size_t len, uint64_t off);
/* Creates (or truncates) @path to @size bytes, all a hole. */
void tu_truncate(const char *path, uint64_t size);
/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
char *tu_read_file(const char *path, size_t *ret_len);
void tu_write_file(const char *path, const void *buf, size_t len);
/* Fills @buf with a deterministic pattern from @seed. */
void tu_pattern(void *buf, size_t len, uint32_t seed);

/* A growing buffer of bytes, for images built in a test (@p freed by the
 * test); tu_put16/32 append little-endian values. */
struct tu_buf {
	uint8_t *p;
	size_t len, cap;
};
void tu_put(struct tu_buf *b, const void *data, size_t len);
void tu_put16(struct tu_buf *b, uint16_t v);
void tu_put32(struct tu_buf *b, uint32_t v);
/* Android sparse images: the file header (version 1.0, headers of 28 and
 * 12 bytes) and a chunk's header (its total size @data bytes more). */
void tu_simg_header(struct tu_buf *b, uint32_t blk_sz, uint32_t total_blks,
		    uint32_t total_chunks);
void tu_simg_chunk(struct tu_buf *b, uint16_t type, uint32_t blocks, uint32_t data);
/* Fails the test unless files @a and @b hold the same bytes. */
void tu_assert_same_file(const char *a, const char *b);
