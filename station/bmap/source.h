/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Image sources: a sequential reader of an image's bytes, decompressing
 * zstd, gzip (ISA-L), xz, bzip2, lz4 or lzo as recognised by magic bytes,
 * from a file, a pipe or a URL, and taking the image out of a tar or zip
 * archive. Concatenated streams / multi-member files are read whole.
 */
#pragma once

#include "bmap.h"

struct bmap_source;

/* @path "-" means standard input; an http://, https://, ftp:// or file: URL
 * (bmap_location_is_url()) is fetched with libcurl (see bmap.h's URLs). */
int bmap_source_open(struct bmap_ctx *ctx, const char *path, struct bmap_source **ret_source);
/* bmap_source_open() whose waits for input from a pipe, a FIFO or a socket
 * (also the wait for the first bytes, inside the open) last only until
 * @cancel_fd becomes readable (e.g. a pipe a signal handler writes to):
 * then the read fails with -EINTR. A read() of such input that never
 * returns is not interrupted by a signal otherwise (it is restarted, or
 * the signal goes to another thread). @cancel_fd -1: no cancelling. */
int bmap_source_open_cancel(struct bmap_ctx *ctx, const char *path, int cancel_fd,
			    struct bmap_source **ret_source);
/* A compressed image in a local regular file is checked whole when opened
 * (source-whole.c): one cut short is refused then with -EPIPE ("... is
 * truncated: <where>; nothing was written"), before a copy opens its
 * destination, instead of failing once part of it was written. gzip has no
 * index to check: it is decoded once for it. Pipes and URLs cannot be
 * checked in advance. @check false (the default is true) skips it, for a
 * caller that shows what it can of a cut image (info). */
void bmap_ctx_set_check_whole(struct bmap_ctx *ctx, bool check);
/* Takes ownership of @fd. @name is used in messages. */
int bmap_source_open_fd(struct bmap_ctx *ctx, int fd, const char *name,
			struct bmap_source **ret_source);
/* bmap_source_open_fd() with bmap_source_open_cancel()'s @cancel_fd (which
 * also ends the whole-file check of a .tar.gz, source-whole.c). */
int bmap_source_open_fd_cancel(struct bmap_ctx *ctx, int fd, const char *name, int cancel_fd,
			       struct bmap_source **ret_source);
/* A raw image in the regular file @fd (taken), read from the file's first
 * byte at image offsets, whatever its first bytes are: nothing is detected
 * from them. For a file still being filled (its first bytes may not be there
 * yet; see bmap_copy_opts.wait) and for another reader of a raw image. */
int bmap_source_open_raw_fd(struct bmap_ctx *ctx, int fd, const char *name,
			    struct bmap_source **ret_source);
enum bmap_compression bmap_source_get_compression(const struct bmap_source *s);
const char *bmap_source_get_name(const struct bmap_source *s);
/* The archive the image is taken from (BMAP_CONTAINER_NONE: none), the
 * name of its member that is the image (NULL without an archive), and that
 * member's size (false when the archive does not say). */
enum bmap_container bmap_source_get_container(const struct bmap_source *s);
const char *bmap_source_get_member(const struct bmap_source *s);
bool bmap_source_get_member_size(const struct bmap_source *s, uint64_t *ret_size);

/* Reads the next bytes of the image (decompressed). Returns the number of
 * bytes read: less than @len only at the end of the image, 0 at the end;
 * -errno on failure with a detail in the context naming the file and what
 * is wrong (truncated input, corrupt data at compressed offset N, I/O). */
ssize_t bmap_source_read(struct bmap_source *s, void *buf, size_t len);
/* Skips @n bytes of image data (a seek for raw regular files). Reaching the
 * end of the image early is -EPIPE ("truncated"). */
int bmap_source_skip(struct bmap_source *s, uint64_t n);
/* Says, before the first read, that only @map's ranges will be read (the
 * rest skipped): a decoder may then decode what holds none of them last
 * (xz, by blocks), its integrity still checked before the end of the image
 * is reported. Changes no byte that is read. */
void bmap_source_want(struct bmap_source *s, const struct bmap_map *map);
/* bmap_source_want(), from a caller that checks every byte it reads
 * against @map's range checksums: what holds none of them need not be
 * decoded at all (an xz image's blocks without mapped data are then never
 * decoded: a damaged one cannot reach what is copied, as the unmapped bytes
 * of a raw image are never read). */
void bmap_source_want_only(struct bmap_source *s, const struct bmap_map *map);
/* Bytes received from the network so far (a URL); 0 for a file or a pipe.
 * Safe to call from any thread while another reads. */
uint64_t bmap_source_get_transferred(const struct bmap_source *s);
/* Image bytes consumed so far (read or skipped). */
uint64_t bmap_source_tell(const struct bmap_source *s);
/* Compressed bytes consumed so far (file position for raw). */
uint64_t bmap_source_input_pos(const struct bmap_source *s);
/* For a raw, seekable regular file: its fd (callers may pread it instead of
 * reading sequentially); -1 otherwise. */
int bmap_source_get_raw_fd(const struct bmap_source *s);
/* The descriptor read, whatever it is (for telling whether a destination
 * is the image itself). */
int bmap_source_get_fd(const struct bmap_source *s);
struct bmap_source *bmap_source_free(struct bmap_source *s);

/* ---- self-mapped images (qcow2, Android sparse) ---- */

/* The image's format: what the bytes read are (a qcow2 or sparse image
 * reads as its virtual disk, holes as zeros). */
enum bmap_format bmap_source_get_format(const struct bmap_source *s);
/* Bytes of the image (the virtual disk of a self-mapped one, a raw regular
 * file's size); 0 when not known (a raw stream). */
uint64_t bmap_source_get_image_size(const struct bmap_source *s);
/* A copy of the map a self-mapped image carries (its data; holes are not
 * mapped), at the format's own granularity, for the caller to free.
 * -ENODATA for a raw image; -EAGAIN while a sparse image read as a stream
 * (a pipe, compressed) has not been read to its end: copy it with
 * opts.source_map, or bmap_source_read_map(). */
int bmap_source_get_map(struct bmap_source *s, struct bmap_map **ret_map);
/* The map copy and verify work by for @s and @map: a copy of @map cut into
 * 16 MiB pieces when @s is a self-mapped image and @map has no range
 * checksums, else NULL (see format-cut.c). For a copy of such an image from
 * another source (a spill file of its disk), so that its data digest is the
 * one a copy from @s gives. 0 or -ENOMEM. */
int bmap_source_work_map(struct bmap_source *s, const struct bmap_map *map,
			 struct bmap_map **ret_map);
/* Reads the rest of the image to learn its map (a stream is consumed). */
int bmap_source_read_map(struct bmap_source *s, struct bmap_map **ret_map);
/* Header facts of a self-mapped image (-ENODATA for raw). */
int bmap_source_get_format_info(struct bmap_source *s, struct bmap_format_info *ret);
