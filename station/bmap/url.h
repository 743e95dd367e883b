/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal to libbmap's URL transport (url.c, source-url.c): one libcurl
 * handle set up the same way for every request (certificates, ~/.netrc,
 * redirects, proxies), the facts a response's headers give, and the one
 * wording of transfer errors, which names the URL without its credentials.
 */
#pragma once

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "bmap-private.h"

/* Redirects followed before a request is called a loop. */
#define URL_MAX_REDIRS 10

/* What one request's header lines said (reset at each status line, so that
 * redirects' headers are forgotten) and what the transfer noticed. */
struct url_xfer {
	char errbuf[CURL_ERROR_SIZE];
	char reason[64];	/* the status line's text after the code */
	bool have_range;	/* a Content-Range header came */
	uint64_t range_first;	/* its first byte */
	uint64_t range_total;	/* its complete length (UINT64_MAX: '*') */
	bool excess;		/* more body bytes came than Content-Length said */
	bool accept_ranges;	/* "Accept-Ranges: bytes" */
	bool unread_at_close;	/* a connection closed with bytes still to read */
	char etag[128];		/* the ETag header's value ("" when none) */
};

/* Whether the finished transfer on @easy got more bytes than it announced:
 * seen by libcurl in its last read, or still unread when it closed a plain
 * http connection (over TLS unread bytes may be the close alert). */
bool url_excess(CURL *easy, const struct url_xfer *x);

/* One header line of a response (as libcurl hands them, "\r\n" and all)
 * into @x: a status line resets it. Server input: any bytes. */
void url_header_line(struct url_xfer *x, const char *buf, size_t len);
/* A new easy handle for @url, set up as every request of ours is, its header
 * and debug callbacks filling @x. -errno with a detail. */
int url_easy_new(struct bmap_ctx *ctx, const char *url, struct url_xfer *x, CURL **ret);
/* Clears @x before a new request on the same handle. */
void url_xfer_reset(struct url_xfer *x);
/* Whether the handle's last transfer was HTTP(S) (a status to check). */
bool url_is_http(CURL *easy);
/* The last response's status code (0 when there is none). */
long url_status(CURL *easy);
/* "HTTP 404 Not Found" into @buf. */
const char *url_status_text(long status, const struct url_xfer *x, char buf[static 96]);
/* The error of a finished transfer: curl's code, or the HTTP status when the
 * transfer itself went fine. "cannot fetch @what: ..." -errno. */
int url_fail(struct bmap_ctx *ctx, const char *what, CURL *easy, CURLcode rc,
	     const struct url_xfer *x);
/* A file: URL's local path (percent-decoded, malloc'd): 1; 0 for another
 * URL; -EINVAL for a file: URL of another host. A local file is opened as
 * a file (seekable; libcurl's file: cannot pause a transfer). */
int url_file_path(const char *url, char **ret_path);
/* The errno a curl code stands for (-ENOENT for a missing remote file). */
int url_errno(CURLcode rc);
