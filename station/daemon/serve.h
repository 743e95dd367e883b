/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `bmap-station serve`: the read-only web dashboard (libmicrohttpd) and
 * Prometheus metrics. serve-http.c owns the HTTP server (listening, TLS,
 * password, limits, headers), serve-work.c its worker threads; each page
 * is a function behind the small interface below, in a file of its own
 * (serve-live.c, serve-line.c, serve-reports.c, serve-charts.c,
 * serve-metrics.c), listed in serve_routes[] (serve-routes.c).
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

struct journal;
struct station_config;

/* What every page may read. Pages run on the server's polling thread or on
 * a worker thread (serve-work.c), several at once, each with a journal
 * connection of its thread's own: a page keeps no state between requests
 * but under a lock of its own (serve-line.c). */
struct serve_ctx {
	struct journal *journal;            /* the station's journal, read-only */
	const char *journal_path;
	const char *pg_conninfo;            /* the line's PostgreSQL, or NULL */
	const struct station_config *config; /* NULL with --db */
	const char *station_name;
	/* Why journal is NULL (it does not exist yet, cannot be read), to
	 * be shown on the page; NULL while the journal is open. */
	const char *journal_error;
};

struct serve_request {
	const char *path;   /* the URL's path, decoded, without the query */
	/* A query argument's value (decoded) or NULL when absent. */
	const char *(*arg)(const struct serve_request *req, const char *key);
	void *impl;         /* serve.c's */
};

struct serve_reply {
	FILE *body;               /* a stream the page writes into (memory or a file) */
	const char *content_type; /* default "text/html; charset=utf-8" */
	const char *disposition;  /* Content-Disposition (downloads), or NULL */
	bool no_store;            /* Cache-Control: no-store (live data) */
};

/* Returns the HTTP status (200, 400, 404...) or -errno, which serve.c turns
 * into a 500 without the detail (the detail goes to its log). */
typedef int (*serve_page_fn)(const struct serve_ctx *ctx, const struct serve_request *req,
			     struct serve_reply *reply);

struct serve_route {
	/* exact path, or a prefix when it ends in '/' ("/" itself is exact:
	 * the home page); the longest prefix wins */
	const char *path;
	serve_page_fn fn;
};

/* Terminated by { NULL, NULL }. */
extern const struct serve_route serve_routes[];

/* `bmap-station serve [--config FILE | --db FILE] [--pg CONNINFO]
 * [--listen ADDR:PORT]`, @argv[0] being "serve". An exit status. */
int serve_command(int argc, char **argv);

/* serve-html.c: every value that reaches a page goes through these. */

/* @s (NULL: "-") as HTML text or attribute value: first made printable as
 * everywhere else (sanitize(): controls, bidi overrides and invalid UTF-8
 * become '?'; so do U+FFFE and U+FFFF, which XML 1.0 forbids: the SVGs),
 * then & < > " ' escaped. Numbers printed into a page, the JSON or an SVG
 * are checked isfinite() first ("-" or null otherwise). */
void html_text(FILE *out, const char *s);

/* The page's head (title escaped, the one stylesheet /static/style.css, the
 * navigation with @active marked) and its end. Scripts only as
 * <script src="/static/NAME.js"> (the CSP forbids inline code). */
void html_page_begin(FILE *out, const char *title, const char *active);
void html_page_end(FILE *out);
