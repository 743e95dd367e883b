/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The station's live page (/) and its JSON (/api/live): one tile per slot
 * or card from the journal's live table, and today's counts and yield.
 * /static/live.js polls /api/live every 400 ms and updates the tiles in
 * place; without script the page shows the state it was loaded with.
 *
 * Names the browser tests and live.js rely on (keep them stable):
 *   tile           <section class="tile state-STATE [pull-passed|pull-failed]"
 *                  id="slot-NAME"> for a configured slot (state "empty"
 *                  while it holds no card), id="card-DEV" for a card in no
 *                  configured slot; NAME and DEV with every byte but
 *                  A-Z a-z 0-9 - _ made '_'
 *   in a tile      .slot .state .serial .profile .devnode .percent .mbps
 *                  .left .outcome .error .pull, and <progress class="bar">
 *   page           #tiles, #journal-state (why there is no data, else
 *                  empty), #today-flashed #today-passed #today-failed
 *                  #today-refused #today-yield, #updated
 *   /api/live      { "station", "journal": "ok"|"missing", "message",
 *                    "updated", "today": { flashed, passed, failed,
 *                    refused, interrupted, yield_pct }, "tiles": [ { "id",
 *                    "class", "slot", "devnode", "serial", "profile",
 *                    "state", "job", "done", "total", "percent", "mbps",
 *                    "seconds_left", "last_outcome", "error", "pull" } ] }
 * Every string from a device goes through html_text() here and through
 * the same sanitizer (then \u-escaped < > & ' ") in the JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "journal.h"
#include "report.h"
#include "sanitize.h"
#include "serve-internal.h"

struct tile {
	char *id, *slot, *devnode, *serial, *profile, *state, *last_outcome, *error;
	int64_t job;
	uint64_t done, total;
	double rate;
	bool card;
};

struct tiles {
	struct tile *v;
	size_t n, cap;
	bool oom;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* "slot-" or "card-" and @name with anything but [A-Za-z0-9_-] as '_'. */
static char *tile_id(const char *prefix, const char *name)
{
	size_t pl = strlen(prefix), n = strlen(name);
	char *id = malloc(pl + n + 1);

	if (!id)
		return NULL;
	memcpy(id, prefix, pl);
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		id[pl + i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					     (c >= '0' && c <= '9') || c == '-' || c == '_'
				     ? c
				     : '_';
	}
	id[pl + n] = '\0';
	return id;
}

static struct tile *tiles_add(struct tiles *t)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 8;
		struct tile *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	memset(&t->v[t->n], 0, sizeof(t->v[0]));
	return &t->v[t->n++];
}

static struct tile *tiles_find_slot(struct tiles *t, const char *slot)
{
	for (size_t i = 0; slot && i < t->n; i++)
		if (!t->v[i].card && t->v[i].slot && strcmp(t->v[i].slot, slot) == 0 &&
		    strcmp(t->v[i].state, "empty") == 0)
			return &t->v[i];
	return NULL;
}

static int add_live_row(void *userdata, const struct live_row *l)
{
	struct tiles *t = userdata;
	struct tile *tl = tiles_find_slot(t, l->slot);

	if (tl) {
		free(tl->state);
	} else {
		const char *name = l->devnode ? strrchr(l->devnode, '/') : NULL;

		tl = tiles_add(t);
		if (!tl)
			return -ENOMEM;
		name = name ? name + 1 : l->devnode ? l->devnode : l->syspath ? l->syspath : "?";
		tl->id = tile_id("card-", name);
		tl->slot = dup_or_null(l->slot);
		tl->card = true;
	}
	tl->devnode = dup_or_null(l->devnode);
	tl->serial = dup_or_null(l->serial);
	tl->profile = dup_or_null(l->profile);
	tl->state = strdup(l->state ? l->state : "unknown");
	tl->last_outcome = dup_or_null(l->last_outcome);
	tl->error = dup_or_null(l->error);
	tl->job = l->job;
	tl->done = l->done;
	tl->total = l->total;
	/* A rate that is no number (9e999 reads as inf) would print "inf"
	 * into the JSON, which no browser parses: unknown, as none. */
	tl->rate = isfinite(l->rate) && l->rate > 0 ? l->rate : 0;
	if (!tl->id || !tl->state)
		t->oom = true;
	return 0;
}

static void tiles_free(struct tiles *t)
{
	for (size_t i = 0; i < t->n; i++) {
		struct tile *tl = &t->v[i];

		free(tl->id);
		free(tl->slot);
		free(tl->devnode);
		free(tl->serial);
		free(tl->profile);
		free(tl->state);
		free(tl->last_outcome);
		free(tl->error);
	}
	free(t->v);
}

/* The configured slots first (each a tile, empty or not), then the cards
 * in no configured slot, as the live table orders them. */
static int tiles_load(const struct serve_ctx *ctx, struct tiles *t)
{
	int r = 0;

	for (size_t i = 0; ctx->config && i < ctx->config->n_slots; i++) {
		struct tile *tl = tiles_add(t);

		if (!tl)
			return -ENOMEM;
		tl->slot = strdup(ctx->config->slots[i].name);
		tl->id = tile_id("slot-", ctx->config->slots[i].name);
		tl->state = strdup("empty");
		if (!tl->slot || !tl->id || !tl->state)
			return -ENOMEM;
	}
	if (ctx->journal)
		r = journal_live_foreach(ctx->journal, add_live_row, t);
	if (r >= 0 && t->oom)
		r = -ENOMEM;
	/* A live row in a slot the configuration does not name (--db, or a
	 * slot renamed since) still gets its slot's id when it is the only
	 * one of that name. */
	for (size_t i = 0; r >= 0 && i < t->n; i++) {
		struct tile *tl = &t->v[i];
		bool unique = tl->card && tl->slot;

		for (size_t k = 0; unique && k < t->n; k++)
			if (k != i && t->v[k].slot && strcmp(t->v[k].slot, tl->slot) == 0)
				unique = false;
		if (unique) {
			char *id = tile_id("slot-", tl->slot);

			if (!id)
				return -ENOMEM;
			free(tl->id);
			tl->id = id;
		}
	}
	return r;
}

/* Done cards are to be pulled with the good ones, failed ones apart. */
static const char *tile_pull(const struct tile *tl)
{
	if (strcmp(tl->state, "done") == 0)
		return "passed";
	if (strcmp(tl->state, "failed") == 0)
		return "failed";
	return NULL;
}

/* The state as a class name: a-z and '_' only (it comes from the journal). */
static void put_state_class(FILE *out, const char *state)
{
	fputs("state-", out);
	for (const char *p = state; *p; p++)
		fputc((*p >= 'a' && *p <= 'z') ? *p : '_', out);
}

/* The seconds left, when there is a finite number of them. */
static bool seconds_left(const struct tile *tl, uint64_t *ret)
{
	double s;

	if (!(tl->rate > 0) || tl->total <= tl->done)
		return false;
	s = (double)(tl->total - tl->done) / tl->rate;
	if (!isfinite(s) || s >= 9.2e18)
		return false;
	*ret = (uint64_t)s;
	return true;
}

static void put_left(FILE *out, const struct tile *tl)
{
	uint64_t s;

	if (seconds_left(tl, &s)) {
		if (s >= 3600)
			fprintf(out, "%" PRIu64 ":%02u:%02u", s / 3600, (unsigned)(s / 60 % 60),
				(unsigned)(s % 60));
		else
			fprintf(out, "%u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
	} else {
		fputs("-", out);
	}
}

static void put_tile_html(FILE *out, const struct tile *tl)
{
	const char *pull = tile_pull(tl);
	unsigned pct = tl->total ? (unsigned)(tl->done * 100 / tl->total) : 0;
	/* A done card's bar is full (its row keeps no byte counts). */
	unsigned bar = strcmp(tl->state, "done") == 0 ? 100 : pct > 100 ? 100 : pct;

	fputs("<section class=\"tile ", out);
	put_state_class(out, tl->state);
	if (pull)
		fprintf(out, " pull-%s", pull);
	fputs("\" id=\"", out);
	html_text(out, tl->id);
	fputs("\">\n<h2 class=\"slot\">", out);
	html_text(out, tl->slot ? tl->slot : tl->devnode);
	fputs("</h2>\n<p class=\"state\">", out);
	html_text(out, tl->state);
	fputs("</p>\n<progress class=\"bar\" max=\"100\" value=\"", out);
	fprintf(out, "%u\"></progress>\n<dl>", bar);
	fputs("<dt>serial</dt><dd class=\"serial\">", out);
	html_text(out, tl->serial);
	fputs("</dd><dt>profile</dt><dd class=\"profile\">", out);
	html_text(out, tl->profile);
	fputs("</dd><dt>device</dt><dd class=\"devnode\">", out);
	html_text(out, tl->devnode);
	fputs("</dd><dt>done</dt><dd class=\"percent\">", out);
	if (tl->total)
		fprintf(out, "%u%%", pct);
	else
		fputs("-", out);
	fputs("</dd><dt>MB/s</dt><dd class=\"mbps\">", out);
	if (tl->rate > 0)
		fprintf(out, "%.1f", tl->rate / 1e6);
	else
		fputs("-", out);
	fputs("</dd><dt>left</dt><dd class=\"left\">", out);
	put_left(out, tl);
	fputs("</dd><dt>last</dt><dd class=\"outcome\">", out);
	html_text(out, tl->last_outcome);
	fputs("</dd></dl>\n<p class=\"error\">", out);
	if (tl->error)
		html_text(out, tl->error);
	fputs("</p>\n<p class=\"pull\">", out);
	if (pull)
		fprintf(out, "pull: %s", pull);
	fputs("</p>\n</section>\n", out);
}

/* A JSON string of @s made printable as everywhere else; < > & ' are
 * escaped too, so that the JSON is inert even pasted into HTML. */
static void json_str(FILE *out, const char *s)
{
	size_t n, len;
	char *buf;

	if (!s) {
		fputs("null", out);
		return;
	}
	n = strlen(s);
	len = n * 4 + 8;
	buf = malloc(len);
	if (!buf) {
		fputs("\"?\"", out);
		return;
	}
	sanitize(buf, len, s, n, (size_t)-1, false);
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)buf; *p; p++) {
		if (*p == '"' || *p == '\\' || *p == '<' || *p == '>' || *p == '&' || *p == '\'' ||
		    *p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
	free(buf);
}

static void put_tile_json(FILE *out, const struct tile *tl)
{
	uint64_t left;

	fputs("{\"id\":", out);
	json_str(out, tl->id);
	fputs(",\"class\":\"tile ", out);
	put_state_class(out, tl->state);
	if (tile_pull(tl))
		fprintf(out, " pull-%s", tile_pull(tl));
	fputs("\",\"slot\":", out);
	json_str(out, tl->slot);
	fputs(",\"devnode\":", out);
	json_str(out, tl->devnode);
	fputs(",\"serial\":", out);
	json_str(out, tl->serial);
	fputs(",\"profile\":", out);
	json_str(out, tl->profile);
	fputs(",\"state\":", out);
	json_str(out, tl->state);
	fprintf(out, ",\"job\":%" PRId64 ",\"done\":%" PRIu64 ",\"total\":%" PRIu64, tl->job,
		tl->done, tl->total);
	if (tl->total)
		fprintf(out, ",\"percent\":%" PRIu64, tl->done * 100 / tl->total);
	else
		fputs(",\"percent\":null", out);
	if (tl->rate > 0)
		fprintf(out, ",\"mbps\":%.1f", tl->rate / 1e6);
	else
		fputs(",\"mbps\":null", out);
	if (seconds_left(tl, &left))
		fprintf(out, ",\"seconds_left\":%" PRIu64, left);
	else
		fputs(",\"seconds_left\":null", out);
	fputs(",\"last_outcome\":", out);
	json_str(out, tl->last_outcome);
	fputs(",\"error\":", out);
	json_str(out, tl->error);
	fputs(",\"pull\":", out);
	json_str(out, tile_pull(tl));
	fputc('}', out);
}

/* Today's counts, or all -1 (shown "-") without a journal. */
static int load_today(const struct serve_ctx *ctx, struct day_counts *d, bool *ret_known)
{
	*ret_known = false;
	memset(d, 0, sizeof(*d));
	d->yield_pct = -1;
	if (!ctx->journal)
		return 0;
	if (journal_today(ctx->journal, d) < 0)
		return -EIO;
	*ret_known = true;
	return 0;
}

int serve_live_page(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply)
{
	struct tiles t = { 0 };
	struct day_counts d;
	bool known;
	FILE *out = reply->body;
	char now[JOURNAL_TIMESTAMP_MAX];
	int r;

	(void)req;
	reply->no_store = true;
	r = tiles_load(ctx, &t);
	if (r >= 0)
		r = load_today(ctx, &d, &known);
	if (r < 0)
		goto out;
	html_page_begin(out, ctx->station_name, "live");
	fputs("<header class=\"live\"><h1>Station ", out);
	html_text(out, ctx->station_name);
	fputs("</h1>\n<p class=\"today\">Today: <span id=\"today-flashed\">", out);
	if (known)
		fprintf(out, "%u</span> flashed, <span id=\"today-passed\">%u</span> passed, "
			     "<span id=\"today-failed\">%u</span> failed, "
			     "<span id=\"today-refused\">%u</span> refused, yield "
			     "<span id=\"today-yield\">",
			d.flashed, d.passed, d.failed, d.refused);
	else
		fputs("-</span> flashed, <span id=\"today-passed\">-</span> passed, "
		      "<span id=\"today-failed\">-</span> failed, "
		      "<span id=\"today-refused\">-</span> refused, yield "
		      "<span id=\"today-yield\">",
		      out);
	if (d.yield_pct >= 0 && isfinite(d.yield_pct))
		fprintf(out, "%.1f%%", d.yield_pct);
	else
		fputs("-", out);
	journal_timestamp(now);
	fputs("</span></p>\n<p class=\"updated\">as of <span id=\"updated\">", out);
	html_text(out, now);
	fputs("</span></p></header>\n<p id=\"journal-state\">", out);
	if (!ctx->journal)
		html_text(out, ctx->journal_error ? ctx->journal_error : "no journal");
	else if (t.n == 0)
		fputs("No card yet: the tiles appear when cards are plugged in.", out);
	fputs("</p>\n<div id=\"tiles\">\n", out);
	for (size_t i = 0; i < t.n; i++)
		put_tile_html(out, &t.v[i]);
	fputs("</div>\n<script src=\"/static/live.js\"></script>\n", out);
	html_page_end(out);
	r = 200;
out:
	tiles_free(&t);
	return r;
}

int serve_live_json(const struct serve_ctx *ctx, const struct serve_request *req,
		    struct serve_reply *reply)
{
	struct tiles t = { 0 };
	struct day_counts d;
	bool known;
	FILE *out = reply->body;
	char now[JOURNAL_TIMESTAMP_MAX];
	int r;

	(void)req;
	reply->content_type = "application/json";
	reply->no_store = true;
	r = tiles_load(ctx, &t);
	if (r >= 0)
		r = load_today(ctx, &d, &known);
	if (r < 0)
		goto out;
	journal_timestamp(now);
	fputs("{\"station\":", out);
	json_str(out, ctx->station_name);
	fprintf(out, ",\"journal\":\"%s\",\"message\":", ctx->journal ? "ok" : "missing");
	json_str(out, ctx->journal ? NULL : ctx->journal_error ? ctx->journal_error
								 : "no journal");
	fputs(",\"updated\":", out);
	json_str(out, now);
	if (known) {
		fprintf(out, ",\"today\":{\"flashed\":%u,\"passed\":%u,\"failed\":%u,"
			     "\"refused\":%u,\"interrupted\":%u,\"yield_pct\":",
			d.flashed, d.passed, d.failed, d.refused, d.interrupted);
		if (d.yield_pct >= 0 && isfinite(d.yield_pct))
			fprintf(out, "%.1f}", d.yield_pct);
		else
			fputs("null}", out);
	} else {
		fputs(",\"today\":null", out);
	}
	fputs(",\"tiles\":[", out);
	for (size_t i = 0; i < t.n; i++) {
		if (i)
			fputc(',', out);
		put_tile_json(out, &t.v[i]);
	}
	fputs("]}\n", out);
	r = 200;
out:
	tiles_free(&t);
	return r;
}
