/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The library context: last error detail and the log callback. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bmap-private.h"

struct bmap_ctx *bmap_ctx_new(void)
{
	return calloc(1, sizeof(struct bmap_ctx));
}

struct bmap_ctx *bmap_ctx_free(struct bmap_ctx *ctx)
{
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
	va_list ap;

	if (ctx) {
		va_start(ap, fmt);
		vsnprintf(ctx->error, sizeof(ctx->error), fmt, ap);
		va_end(ap);
	}
	return err;
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
