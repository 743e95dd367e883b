/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal helpers shared by libbmap's files; never installed. */
#pragma once

#include <pthread.h>

#include <stdarg.h>
#include <stdbool.h>
#include "bmap.h"

struct bmap_ctx {
	char error[1024];
	pthread_mutex_t error_lock; /* the copy's threads record details too */
	bmap_log_fn log_fn;
	void *log_userdata;
	bool tls_insecure; /* URLs: servers' certificates not checked */
	bool no_check_whole; /* sources: see bmap_ctx_set_check_whole() */
};

/* Records a failure detail and returns @err (a -errno) so callers can
 * "return bmap_error(ctx, -EINVAL, ...)". */
int bmap_error(struct bmap_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The detail last recorded, copied into @buf (another thread of a copy
 * may be recording one meanwhile). */
void bmap_ctx_copy_error(struct bmap_ctx *ctx, char *buf, size_t len);
void bmap_log(struct bmap_ctx *ctx, enum bmap_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- digests (OpenSSL EVP) ---- */
struct bmap_digest;
/* Size in bytes of @name's digest, or -EINVAL when unknown. */
int bmap_digest_size(const char *name);
struct bmap_digest *bmap_digest_new(const char *name);
int bmap_digest_reset(struct bmap_digest *d);
int bmap_digest_update(struct bmap_digest *d, const void *buf, size_t len);
/* Writes bmap_digest_size() bytes. */
int bmap_digest_final(struct bmap_digest *d, uint8_t *out);
struct bmap_digest *bmap_digest_free(struct bmap_digest *d);
/* One-shot helper. */
int bmap_digest_buffer(const char *name, const void *buf, size_t len, uint8_t *out);

#define BMAP_DIGEST_MAX 64

static inline void bmap_digest_freep(struct bmap_digest **d)
{
	bmap_digest_free(*d);
}

static inline void bmap_map_freep(struct bmap_map **m)
{
	bmap_map_free(*m);
}
