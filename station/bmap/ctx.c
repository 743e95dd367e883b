/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The library context: last error detail and the log callback. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bmap-private.h"

struct bmap_ctx *bmap_ctx_new(void)
{
	struct bmap_ctx *ctx = calloc(1, sizeof(struct bmap_ctx));

	if (ctx && pthread_mutex_init(&ctx->error_lock, NULL) != 0) {
		free(ctx);
		ctx = NULL;
	}
	return ctx;
}

struct bmap_ctx *bmap_ctx_free(struct bmap_ctx *ctx)
{
	if (ctx)
		pthread_mutex_destroy(&ctx->error_lock);
	free(ctx);
	return NULL;
}

void bmap_ctx_set_log_fn(struct bmap_ctx *ctx, bmap_log_fn fn, void *userdata)
{
	ctx->log_fn = fn;
	ctx->log_userdata = userdata;
}

const char *bmap_ctx_get_error(const struct bmap_ctx *ctx)
{
	return ctx->error;
}

int bmap_error(struct bmap_ctx *ctx, int err, const char *fmt, ...)
{
	char msg[sizeof(ctx->error)];
	va_list ap;

	if (ctx) {
		/* Formatted apart: the arguments may be the detail itself. */
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		pthread_mutex_lock(&ctx->error_lock);
		memcpy(ctx->error, msg, strlen(msg) + 1);
		pthread_mutex_unlock(&ctx->error_lock);
	}
	return err;
}

void bmap_ctx_copy_error(struct bmap_ctx *ctx, char *buf, size_t len)
{
	pthread_mutex_lock(&ctx->error_lock);
	snprintf(buf, len, "%s", ctx->error);
	pthread_mutex_unlock(&ctx->error_lock);
}

void bmap_log(struct bmap_ctx *ctx, enum bmap_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!ctx || !ctx->log_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->log_fn(ctx->log_userdata, level, msg);
}
