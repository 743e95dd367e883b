/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What serve.c (the command line and settings) hands to serve-http.c (the
 * HTTP server), and the pages' functions serve-routes.c lists.
 */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

#include "serve.h"

struct serve_settings {
	struct serve_ctx ctx;   /* journal and journal_error: serve-http.c's */
	const char *listen;     /* as given, for messages */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool loopback;
	char *tls_cert, *tls_key; /* PEM text, or NULL: plain HTTP */
	char *password;           /* HTTP Basic's, or NULL: none asked */
};

/* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0": a numeric address and a
 * port. -EINVAL when @s is not one. */
int serve_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len,
		       bool *ret_loopback);

/* Serves until SIGTERM or SIGINT: 0, or -errno when it could not start. */
int serve_http_run(struct serve_settings *set);

/* The pages (serve-routes.c lists them). */
int serve_live_page(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply);
int serve_live_json(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply);
int serve_line_page(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply);
int serve_static(const struct serve_ctx *ctx, const struct serve_request *req,
		 struct serve_reply *reply);
